#!/usr/bin/env bash
# End-to-end: ckstore consent tcf - IAB TCF v2 TC strings mapped onto the
# schema's purposes (docs/tcf.md, "Mapping onto purposes"): the output, the
# records and their evidence, the newest signal winning, the audit entries,
# and the exit codes of what is refused (which writes nothing).
. "$(dirname "$0")/lib.sh"

S="$T/store"
K="$T/store.key"
ck() { "$CK" --store "$S" --key-file "$K" "$@"; }
# The store's files but LMDB's lock files (which every open touches).
digest_data() {
    (cd "$1" && find . -type f ! -name '*-lock' -print0 | sort -z | xargs -0 sha256sum | sha256sum)
}

# expect_exact TEXT : the last stdout is exactly TEXT (one line).
expect_exact() {
    if [ "$(cat "$T/out")" = "$1" ]; then
        ok
    else
        fail "stdout is not: $1"
        sed 's/^/  stdout: /' "$T/out" >&2
    fi
}


# The strings of docs/tcf.md (built from the specification's layout; the
# decoded fields are checked below with ckstore tcf decode).
# S1, 2024-03-02T08:30:15.7Z: purposeConsents 1,3,4; purposeLegitimateInterests
#   7,8,10; no special feature; vendor 755 consent and LI; publisher TC
#   segment: consents 1,3,4, LI 8,10.
S1=CP60aCAP63OPtEsAHBFRCWEAALAAAANAAAqIF5wAQF5gXnABAXmAAAAA.dgAAACgAAAAA
# OLD, 2024-02-20T09:00:00Z: as S1 with LI 9 and special feature 1 too.
OLD=CP6TCSgP6TCSgEsAHBFRCWEIALAAAAPAAAqIF5wAQF5gXnABAXmAAAAA.dgAAACgAAAAA
# S3, 2024-03-05T18:00:00Z: as OLD, without vendor 755's consent.
S3=CP60aCAP7CahAEsAHBFRCWEIALAAAAPAAAqIAAALzgAgLzAA.dgAAACgAAAAA

expect_rc 0 "$CK" tcf decode "$S1"
expect_json 'd["lastUpdated"] == "2024-03-02T08:30:15.7Z" and d["purposeConsents"] == [1, 3, 4] and d["purposeLegitimateInterests"] == [7, 8, 10] and d["vendorConsents"] == [755] and d["publisherLegitimateInterests"] == [8, 10] and d["specialFeatureOptins"] == []'
expect_rc 0 "$CK" tcf decode "$S3"
expect_json 'd["lastUpdated"] == "2024-03-05T18:00:00Z" and d["vendorConsents"] == [] and d["vendorLegitimateInterests"] == [755] and d["specialFeatureOptins"] == [1]'

expect_rc 0 ck init
cat >"$T/schema.json" <<'JSON'
{"fields": {
   "email":      {"type": "string", "sensitivity": "personal", "identifying": true},
   "first_name": {"type": "string", "sensitivity": "personal"},
   "city":       {"type": "string", "sensitivity": "personal"}},
 "purposes": {
   "ads.personalised": {"basis": "consent",
                        "description": "Personalised ads from our ad partner",
                        "benefit": "Offers that match what you like",
                        "fields": ["email", "city"],
                        "tcf": {"purposes": [1, 3, 4], "vendor": 755}},
   "ads.measurement":  {"basis": "legitimate_interest",
                        "description": "Measure how our ads perform",
                        "benefit": "Fewer, better ads",
                        "fields": ["city"],
                        "tcf": {"purposes": [7, 9], "vendor": 755}},
   "site.audience":    {"basis": "legitimate_interest",
                        "description": "Audience statistics of our own site",
                        "benefit": "A site that works better",
                        "fields": ["city"],
                        "tcf": {"purposes": [8, 10], "publisher": true}},
   "offers.local":     {"basis": "consent",
                        "description": "Offers of the shop nearest to you",
                        "benefit": "Local discounts",
                        "fields": ["email", "city"],
                        "tcf": {"purposes": [1, 3, 4], "special_features": [1],
                                "publisher": true}},
   "service":          {"basis": "contract", "description": "Orders", "benefit": "Delivery",
                        "fields": ["email", "first_name", "city"]}}}
JSON
expect_rc 0 ck schema apply "$T/schema.json"
expect_rc 0 ck put --ref C-1 --create email=zoe@example.fr first_name=Zoé city=Paris
expect_rc 0 ck put --ref C-2 --create email=max@example.fr city=Lyon

# --------------------------------------------------------------------------
# usage
# --------------------------------------------------------------------------
expect_rc 0 "$CK" consent --help
expect_out "consent tcf SUBJECT --tc STRING\|- --actor A"
expect_rc 2 ck consent tcf --ref C-1 --tc "$S1"
expect_err "consent tcf needs --tc STRING\|- and --actor A"
expect_rc 2 ck consent tcf --ref C-1 --actor crm
expect_rc 2 ck consent tcf --tc "$S1" --actor crm
expect_err "exactly one of"
expect_rc 2 ck consent tcf --ref C-1 --ref C-2 --tc "$S1" --actor crm
expect_rc 2 ck consent tcf --ref C-1 --tc "$S1" --tc "$S3" --actor crm
expect_err "--tc is given twice"
expect_rc 2 ck consent tcf --ref C-1 --tc "$S1" --actor crm extra
expect_rc 2 ck consent tcf --ref C-1 --tc "$S1" --actor crm --purpose ads.personalised
expect_rc 2 ck consent frobnicate --ref C-1
expect_err "grant, withdraw, refuse, object, show or tcf"

# --------------------------------------------------------------------------
# refused strings and subjects: exit code, message, nothing written
# --------------------------------------------------------------------------
before=$(digest_data "$S")
expect_rc 6 ck consent tcf --ref C-1 --tc "CPX=" --actor crm
expect_err "^ckstore: consent tcf: '=' padding at offset 3: TC strings are base64url without padding$"
expect_rc 6 ck consent tcf --ref C-1 --tc "${S1:0:30}" --actor crm
expect_err "consent tcf: core segment: truncated at bit"
expect_rc 6 ck consent tcf --ref C-1 --tc "${S1/./..}" --actor crm
expect_err "segment 2 is empty"
expect_rc 6 ck consent tcf --ref C-1 --tc "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA" --actor crm
expect_err "version 1 is not supported"
expect_rc 6 ck consent tcf --ref C-1 --tc - --actor crm # stdin closed: empty
expect_err "the TC string is empty"
expect_rc 3 ck consent tcf --ref C-404 --tc "$S1" --actor crm
[ "$(digest_data "$S")" = "$before" ] && ok || fail "a refused call changed the store"
head -c 70000 /dev/zero | tr '\0' A >"$T/long.txt"
got=0
ck consent tcf --ref C-1 --tc - --actor crm <"$T/long.txt" >"$T/out" 2>"$T/err" || got=$?
[ "$got" = 6 ] && ok || fail "a string over 65536 bytes: exit $got, expected 6"
expect_err "longer than 65536 bytes"

# --------------------------------------------------------------------------
# mapping
# --------------------------------------------------------------------------
expect_rc 0 ck consent tcf --ref C-1 --tc "$S1" --actor cmp-sync
expect_exact '{"at":"2024-03-02T08:30:15Z","applied":[{"purpose":"ads.measurement","state":"objected"},{"purpose":"ads.personalised","state":"granted"},{"purpose":"offers.local","state":"refused"},{"purpose":"site.audience","state":"granted"}],"unchanged":[]}'

# The release follows the records.
expect_rc 0 ck get --purpose ads.personalised --actor crm --ref C-1
expect_json 'd["released"] == {"email": "zoe@example.fr", "city": "Paris"}'
expect_rc 0 ck get --purpose ads.measurement --actor crm --ref C-1
expect_json 'd["withheld"] == {"city": "objected"}'
expect_rc 0 ck get --purpose offers.local --actor crm --ref C-1
expect_json 'd["withheld"] == {"email": "refused", "city": "refused"}'
expect_rc 0 ck get --purpose site.audience --actor crm --ref C-1
expect_json 'd["released"] == {"city": "Paris"}'

# The records: dated by the string, with the evidence.
expect_rc 0 ck consent show --ref C-1
expect_json 'all(r["at"] == "2024-03-02T08:30:15Z" and r["source"] == "tcf" and r["notice"] == "cmp:300/7/v4" and r["tc_string"] == "'"$S1"'" and r["fields"] == "all" and r["recipients"] == [] for r in d["history"]) and len(d["history"]) == 4'
expect_rc 0 ck --format text consent show --ref C-1
expect_out "^  ads.personalised: state=granted fields=all at=2024-03-02T08:30:15Z source=tcf notice=cmp:300/7/v4 tc_string=$S1$"

# Audited, via tcf, without the string.
expect_rc 0 ck audit log --action consent --actor cmp-sync
n=$(grep -c '"via":"tcf"' "$T/out" || true)
[ "$n" = 4 ] && ok || fail "expected 4 consent audit entries via tcf, got $n"
expect_out '"purpose":"offers.local"'
if grep -q -- "$S1" "$T/out" || grep -rqa -- "$S1" "$S"/audit-*.log; then
    fail "the TC string is in the audit log"
else
    ok
fi

# The same string again (with the next visit): nothing appended.
expect_rc 0 ck consent tcf --ref C-1 --tc "$S1" --actor cmp-sync
expect_json 'd["applied"] == [] and len(d["unchanged"]) == 4 and all(u["reason"] == "already recorded from this string" for u in d["unchanged"])'

# An older string: nothing changes, and it says so.
before=$(digest_data "$S")
expect_rc 0 ck consent tcf --ref C-1 --tc "$OLD" --actor cmp-sync
expect_exact '{"at":"2024-02-20T09:00:00Z","applied":[],"unchanged":[{"purpose":"ads.measurement","state":"granted","reason":"older than the current record"},{"purpose":"ads.personalised","state":"granted","reason":"older than the current record"},{"purpose":"offers.local","state":"granted","reason":"older than the current record"},{"purpose":"site.audience","state":"granted","reason":"older than the current record"}]}'
[ "$(digest_data "$S")" = "$before" ] && ok || fail "an older string changed the store"

# A newer one, from standard input with surrounding whitespace.
got=0
printf '  %s\n\n' "$S3" | ck consent tcf --ref C-1 --tc - --actor cmp-sync >"$T/out" 2>"$T/err" || got=$?
[ "$got" = 0 ] && ok || fail "consent tcf --tc - exit $got: $(cat "$T/err")"
expect_exact '{"at":"2024-03-05T18:00:00Z","applied":[{"purpose":"ads.measurement","state":"granted"},{"purpose":"ads.personalised","state":"refused"},{"purpose":"offers.local","state":"granted"},{"purpose":"site.audience","state":"granted"}],"unchanged":[]}'
expect_rc 0 ck get --purpose ads.personalised --actor crm --ref C-1
expect_json 'd["withheld"] == {"email": "refused", "city": "refused"}'
expect_rc 0 ck get --purpose ads.measurement --actor crm --ref C-1
expect_json 'd["released"] == {"city": "Paris"}'

# A consent recorded by hand after the string wins over an older string.
expect_rc 0 ck consent withdraw --ref C-2 --purpose site.audience --actor crm
expect_rc 0 ck consent object --ref C-2 --purpose site.audience --actor crm
expect_rc 0 ck --format text consent tcf --ref C-2 --tc "$S1" --actor cmp-sync
expect_out "^ads.personalised: granted$"
expect_out "^site.audience: unchanged \(older than the current record; the string says granted\)$"

# --------------------------------------------------------------------------
# a schema in which no purpose maps TCF signals
# --------------------------------------------------------------------------
cat >"$T/plain.json" <<'JSON'
{"fields": {
   "email":      {"type": "string", "sensitivity": "personal", "identifying": true},
   "first_name": {"type": "string", "sensitivity": "personal"},
   "city":       {"type": "string", "sensitivity": "personal"}},
 "purposes": {
   "service": {"basis": "contract", "description": "Orders", "benefit": "Delivery",
               "fields": ["email", "first_name", "city"]}}}
JSON
expect_rc 0 ck schema apply "$T/plain.json"
before=$(digest_data "$S")
expect_rc 6 ck consent tcf --ref C-1 --tc "$S3" --actor cmp-sync
expect_err "^ckstore: consent tcf: no purpose of the schema maps TCF signals$"
[ "$(digest_data "$S")" = "$before" ] && ok || fail "a refused call changed the store"

# A TCF mapping on a contract purpose is refused by the schema.
sed 's/"fields": \["email", "first_name", "city"\]}}}/"fields": ["email"], "tcf": {"purposes": [1]}}}}/' \
    "$T/plain.json" >"$T/bad.json"
expect_rc 6 ck schema apply "$T/bad.json"
expect_err "purposes.service.tcf: only a consent or legitimate_interest purpose maps TCF signals"

finish
