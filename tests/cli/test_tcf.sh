#!/usr/bin/env bash
# End-to-end: tcf decode through the CLI (docs/tcf.md). No store, no key.
. "$(dirname "$0")/lib.sh"

# From the IAB's Java decoder tests, with the values they assert.
IAB=COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA
# Core (vendor bitfields), disclosed vendors and allowed vendors segments.
FULL=COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA.IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA
# Publisher restrictions, then publisher TC, allowed and disclosed segments.
RESTR=CP60aCAP63OPtEsAHDENDXEMAKAAAUJAAAYgAAAAAAChIAUACgAMADGCAAgAH_gAAkAKAAIABAALCgAA.cAAAKAAAAsSA.QALQAgAEQAUABYAA.IALoEAHg

expect_rc 0 "$CK" tcf --help
expect_out '^usage: ckstore \[--format json\|text\] tcf decode STRING\|-'
expect_rc 0 "$CK" --help
expect_out '^  tcf +decode IAB TCF v2 consent strings'
expect_rc 2 "$CK" tcf
expect_rc 2 "$CK" tcf frobnicate
expect_rc 2 "$CK" tcf decode
expect_rc 2 "$CK" tcf decode "$IAB" "$IAB"

# Decoding needs no store and no key, even when the environment names none.
expect_rc 0 "$CK" tcf decode "$IAB"
expect_out '^\{"version":2,"created":"2020-01-26T17:01:00Z","lastUpdated":"2021-02-02T17:01:00Z","cmpId":675,"cmpVersion":2,"consentScreen":1,"consentLanguage":"EN","vendorListVersion":15,"policyVersion":2,"isServiceSpecific":false,"useNonStandardTexts":false,"specialFeatureOptins":\[1\],"purposeConsents":\[2,10\],"purposeLegitimateInterests":\[2,9\],"purposeOneTreatment":true,"publisherCountryCode":"AA","vendorConsents":\[\],'
[ "$(wc -l <"$T/out")" -eq 1 ] || { echo "FAIL: JSON output is not one line"; FAILS=$((FAILS + 1)); }
# A store directory that does not exist is never looked at.
expect_rc 0 "$CK" --store "$T/no-such-store" --key-file "$T/no-such-key" tcf decode "$IAB"

expect_rc 0 "$CK" tcf decode "$FULL"
expect_out '"purposeConsents":\[3,4,5,6,7,8,9\]'
expect_out '"vendorConsents":\[23,37,47,48,53,65,98\],"vendorLegitimateInterests":\[37,47,48,53,65,98,129\]'
expect_out '"vendorsDisclosed":\[23,37,47,48,53,65,98,129\],"vendorsAllowed":\[12,23,37,47,48,53\]'

# The JSON shape: every key, in order, with its type.
expect_rc 0 "$CK" tcf decode "$RESTR"
if python3 - "$T/out" <<'PY'; then PASSES=$((PASSES + 1)); else echo "FAIL: JSON shape"; FAILS=$((FAILS + 1)); fi
import json, sys
d = json.load(open(sys.argv[1]))
keys = ["version", "created", "lastUpdated", "cmpId", "cmpVersion", "consentScreen",
        "consentLanguage", "vendorListVersion", "policyVersion", "isServiceSpecific",
        "useNonStandardTexts", "specialFeatureOptins", "purposeConsents",
        "purposeLegitimateInterests", "purposeOneTreatment", "publisherCountryCode",
        "vendorConsents", "vendorLegitimateInterests", "publisherRestrictions",
        "vendorsDisclosed", "vendorsAllowed", "publisherConsents",
        "publisherLegitimateInterests", "numCustomPurposes", "publisherCustomConsents",
        "publisherCustomLegitimateInterests"]
assert list(d) == keys, list(d)
assert d["created"] == "2024-03-01T12:00:00Z" and d["lastUpdated"] == "2024-03-02T08:30:15.7Z"
assert d["publisherRestrictions"] == [
    {"purposeId": 1, "restrictionType": 0, "vendorIds": [7]},
    {"purposeId": 2, "restrictionType": 1, "vendorIds": [1, 2, 10, 11, 12, 99]},
    {"purposeId": 2, "restrictionType": 2, "vendorIds": []},
    {"purposeId": 63, "restrictionType": 2, "vendorIds": []}], d["publisherRestrictions"]
assert d["vendorsDisclosed"] == [1, 8, 20, 21, 22, 23] and d["vendorsAllowed"] == [8, 20, 21, 22]
assert d["publisherConsents"] == [1, 24] and d["publisherLegitimateInterests"] == [2]
assert d["numCustomPurposes"] == 5
assert d["publisherCustomConsents"] == [1, 5] and d["publisherCustomLegitimateInterests"] == [3]
for k in keys:
    v = d[k]
    if isinstance(v, list) and k != "publisherRestrictions":
        assert all(isinstance(i, int) for i in v) and v == sorted(set(v)), k
PY

# Standard input: one string, surrounding whitespace ignored.
printf '  %s\n\n' "$IAB" >"$T/in"
"$CK" tcf decode - <"$T/in" >"$T/out" 2>"$T/err" && rc=0 || rc=$?
[ "$rc" = 0 ] || { echo "FAIL: decode - exited $rc"; cat "$T/err"; FAILS=$((FAILS + 1)); }
expect_out '"cmpId":675'
# --format text indents the same object.
"$CK" --format text tcf decode - <"$T/in" >"$T/out" 2>"$T/err" && rc=0 || rc=$?
[ "$rc" = 0 ] || { echo "FAIL: --format text decode - exited $rc"; FAILS=$((FAILS + 1)); }
expect_out '^  "cmpId": 675,$'
expect_out '^  "publisherCountryCode": "AA",$'
# Two strings on standard input are one malformed string.
printf '%s\n%s\n' "$IAB" "$IAB" >"$T/in2"
"$CK" tcf decode - <"$T/in2" >"$T/out" 2>"$T/err" && rc=0 || rc=$?
[ "$rc" = 6 ] || { echo "FAIL: two strings on stdin: exit $rc"; FAILS=$((FAILS + 1)); }
expect_err '^ckstore: tcf: character at offset 44 is not base64url$'
# Empty standard input (expect_rc closes it).
expect_rc 6 "$CK" tcf decode -
expect_err '^ckstore: tcf: the TC string is empty$'
# Too long, from standard input and from the command line.
python3 -c 'import sys; sys.stdout.write("A" * 70000)' >"$T/long"
"$CK" tcf decode - <"$T/long" >"$T/out" 2>"$T/err" && rc=0 || rc=$?
[ "$rc" = 6 ] || { echo "FAIL: long stdin: exit $rc"; FAILS=$((FAILS + 1)); }
expect_err 'tcf: the TC string is longer than 65536 bytes'
expect_rc 6 "$CK" tcf decode "$(head -c 65537 "$T/long")"
expect_err '^ckstore: tcf: the TC string is longer than 65536 bytes$'

# Malformed strings: exit 6 with the reason.
expect_rc 6 "$CK" tcf decode "${IAB}=="
expect_err "^ckstore: tcf: '=' padding at offset 44: TC strings are base64url without padding$"
expect_rc 6 "$CK" tcf decode "COtybn4PA+zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA"
expect_err '^ckstore: tcf: character at offset 9 is standard base64, not base64url'
expect_rc 6 "$CK" tcf decode "${IAB}..IAAA"
expect_err '^ckstore: tcf: segment 2 is empty \(at offset 45\)$'
expect_rc 6 "$CK" tcf decode "${IAB}."
expect_err '^ckstore: tcf: segment 2 is empty'
expect_rc 6 "$CK" tcf decode "${IAB:0:36}"
expect_err '^ckstore: tcf: core segment: truncated at bit 213 \(vendor consents: MaxVendorId\)$'
expect_rc 6 "$CK" tcf decode "BObdrPUOevsguAfDqFENCNAAAAAmeAAA"
expect_err '^ckstore: tcf: core segment: version 1 is not supported'
expect_rc 6 "$CK" tcf decode "${IAB}.gAAA"
expect_err '^ckstore: tcf: segment 2: unknown segment type 4$'
expect_rc 6 "$CK" tcf decode "${IAB}.IAAA.IAAA"
expect_err '^ckstore: tcf: segment 3: a second disclosed vendors segment$'
expect_rc 6 "$CK" tcf decode -- "-AAA"
expect_err '^ckstore: tcf: core segment: version 62 is not supported'
# Nothing on stdout when refused.
[ ! -s "$T/out" ] || { echo "FAIL: output on a refused string"; FAILS=$((FAILS + 1)); }

finish
