#!/usr/bin/env bash
# End-to-end: ckstore audit log / verify / checkpoint, tampering and torn
# tails through the CLI, exit codes.
. "$(dirname "$0")/lib.sh"
never_on_stderr Quimper Annabelle Bobbington

S="$T/store"
K="$T/store.key"
SEG="$S/audit-000001.log"

# Until cli/main.c registers the command, say so and pass.
if ! "$CK" audit --help >/dev/null 2>&1; then
    echo "SKIP: the audit command is not registered in cli/main.c yet"
    exit 0
fi


expect_rc 0 "$CK" --store "$S" --key-file "$K" init
[ "$(stat -c %a "$SEG")" = 600 ] || fail "audit segment mode $(stat -c %a "$SEG")"

# Usage.
expect_rc 2 "$CK" --store "$S" --key-file "$K" audit
expect_rc 2 "$CK" --store "$S" --key-file "$K" audit bogus
expect_err "unknown audit subcommand"
expect_rc 0 "$CK" audit --help
expect_out "checkpoint"
expect_rc 2 "$CK" --store "$S" --key-file "$K" audit log --since yesterday

# A fresh store has one entry: init.
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit verify
expect_out '^\{"ok":true,"entries":1,"segments":1,"head":\{"seq":1,"hash":"[0-9a-f]{64}","time":"[0-9-]+T[0-9:.]+Z"\}\}$'
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit log
expect_out '"seq":1,"time":"[0-9-]+T[0-9:.]+Z","actor":"ckstore","action":"init"'

# Key operations are logged (once store.c calls the audit hook; see
# docs/audit.md) - here the checkpoint is.
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit checkpoint
expect_out '^\{"seq":2,"hash":"[0-9a-f]{64}","time":"[^"]+Z","time_ms":[0-9]+,"store_id":"[0-9a-f]{32}","public_key":"[0-9a-f]{64}","signature":"[0-9a-f]{128}"\}$'
cp "$T/out" "$T/cp1.json"
[ "$(stat -c %a "$S/audit-signing.key")" = 600 ] || fail "signing key mode"
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit checkpoint
cp "$T/out" "$T/cp2.json"
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit verify --checkpoint "$T/cp1.json"
expect_out '"ok":true,"entries":3'
expect_out '"checkpoint":\{"seq":2'
expect_rc 0 "$CK" --store "$S" --key-file "$K" --format text audit verify
expect_out '^ok: 3 entries'

# Filters.
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit log --action checkpoint
[ "$(wc -l <"$T/out")" = 2 ] || fail "two checkpoint entries expected"
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit log --actor nobody
[ ! -s "$T/out" ] || fail "--actor nobody printed entries"
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit log --since 2000-01-01 --until 2999-01-01T00:00:00Z
[ "$(wc -l <"$T/out")" = 3 ] || fail "--since/--until"
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit log --until 946684800000
[ ! -s "$T/out" ] || fail "--until 2000 printed entries"

# A forged signature is refused (exit 5).
python3 - "$T/cp1.json" "$T/bad.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
s = c["signature"]
c["signature"] = ("0" if s[0] != "0" else "1") + s[1:]
json.dump(c, open(sys.argv[2], "w"))
EOF
expect_rc 5 "$CK" --store "$S" --key-file "$K" audit verify --checkpoint "$T/bad.json"
expect_err "signature"
expect_rc 6 "$CK" --store "$S" --key-file "$K" audit verify --checkpoint "$K"
expect_rc 3 "$CK" --store "$S" --key-file "$K" audit verify --checkpoint "$T/none.json"

# An unsafe signing key is refused (exit 4).
chmod 644 "$S/audit-signing.key"
expect_rc 4 "$CK" --store "$S" --key-file "$K" audit checkpoint
expect_err "chmod 600"
chmod 600 "$S/audit-signing.key"

# Removing the last complete entry: the chain alone cannot tell, the
# checkpoint that covered it can.
cp "$SEG" "$T/seg.orig"
size=$(stat -c %s "$SEG")
last_len=$(python3 - "$SEG" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
pos = last = 0
while pos + 4 <= len(b):
    n = struct.unpack(">I", b[pos:pos + 4])[0]
    last = 4 + n + 32
    pos += last
print(last)
EOF
)
truncate -s $((size - last_len)) "$SEG"
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit verify
expect_rc 5 "$CK" --store "$S" --key-file "$K" audit verify --checkpoint "$T/cp2.json"
expect_out '"ok":false,"problem":"checkpoint"'
expect_err "integrity failure"
cp "$T/seg.orig" "$SEG"

# A torn tail (crash mid-write): a warning, repaired, verify passes.
truncate -s $((size - 3)) "$SEG"
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit verify
expect_err "warning: the audit log ended in a torn entry"
expect_out '"ok":true'
expect_out '"recovered_bytes":'
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit log --action recover
expect_out '"action":"recover","detail":\{"segment":"audit-000001.log"'
cp "$T/seg.orig" "$SEG"

# Tampering: flip one byte inside entry 2 -> exit 5 naming it.
python3 - "$SEG" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = b.index(b"checkpoint")  # the action of entry 2
b[i] = ord("C")
open(p, "wb").write(b)
EOF
expect_rc 5 "$CK" --store "$S" --key-file "$K" audit verify
expect_out '"ok":false,"problem":"bad_hash","segment":"audit-000001.log","offset":[0-9]+,"seq":2'
expect_err "audit-000001.log.*entry 2"
expect_rc 5 "$CK" --store "$S" --key-file "$K" audit log
cp "$T/seg.orig" "$SEG"
expect_rc 0 "$CK" --store "$S" --key-file "$K" audit verify

# A store whose audit log is gone does not open (exit 5).
mv "$SEG" "$T/gone.log"
expect_rc 5 "$CK" --store "$S" --key-file "$K" audit verify
expect_err "audit"
mv "$T/gone.log" "$SEG"

# No value, ref or key ever appears in the log: names only.
if grep -q "$(head -c 8 "$K" | od -An -tx1 | tr -d ' \n')" "$SEG"; then fail "key bytes in the log"; fi

# --------------------------------------------------------------------------
# audit log with a subject selector, audit report (a store of their own)
# --------------------------------------------------------------------------
S2="$T/store2"
K2="$T/store2.key"
ck2() { "$CK" --store "$S2" --key-file "$K2" "$@"; }
expect_rc 0 ck2 init
cat >"$T/schema2.json" <<'JSON'
{"fields": {
   "email":      {"type": "string", "sensitivity": "personal", "identifying": true},
   "first_name": {"type": "string", "sensitivity": "personal"},
   "city":       {"type": "string", "sensitivity": "personal"}},
 "purposes": {
   "marketing.email": {"basis": "consent", "description": "Offers by e-mail",
                       "benefit": "Discounts", "fields": ["email", "first_name"],
                       "channel": {"type": "email", "field": "email", "cap": {"count": 2, "days": 30}}},
   "service": {"basis": "contract", "description": "Orders", "benefit": "Delivery",
               "fields": ["email", "city"]}}}
JSON
expect_rc 0 ck2 schema apply "$T/schema2.json"
expect_rc 0 ck2 put --ref R-ANNE --create email=anne.secret@example.org first_name=Annabelle city=Quimper
expect_rc 0 ck2 put --ref R-BOB --create email=bob.secret@example.org first_name=Bobbington
expect_rc 0 ck2 consent grant --ref R-ANNE --purpose marketing.email --actor dpo
expect_rc 0 ck2 consent withdraw --ref R-BOB --purpose marketing.email --actor dpo
expect_rc 0 ck2 get --ref R-ANNE --purpose marketing.email --actor crm
expect_rc 0 ck2 get --ref R-BOB --purpose marketing.email --actor crm
expect_rc 0 ck2 get --ref R-BOB --purpose service --actor shop
expect_rc 0 ck2 contact record --ref R-ANNE --channel email --actor crm

expect_rc 0 ck2 audit log --ref R-ANNE
cp "$T/out" "$T/anne.jsonl"
expect_rc 0 ck2 audit log --lookup email=Anne.Secret@example.org
cmp -s "$T/out" "$T/anne.jsonl" || fail "--lookup and --ref give different entries"
expect_rc 0 ck2 audit log --ref R-BOB
cp "$T/out" "$T/bob.jsonl"
python3 - "$T/anne.jsonl" "$T/bob.jsonl" <<'PY' || fail "audit log --ref: wrong entries"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [e["action"] for e in a] == ["consent", "release", "contact"], a
assert [e["action"] for e in b] == ["consent", "release", "release"], b
sa = {e["subject"] for e in a}
sb = {e["subject"] for e in b}
assert len(sa) == 1 and len(sb) == 1 and sa != sb, (sa, sb)
PY
expect_rc 0 ck2 audit log --ref R-BOB --action release --purpose service
[ "$(wc -l <"$T/out")" = 1 ] || fail "--ref with --action and --purpose"
expect_rc 3 ck2 audit log --ref R-NOBODY
expect_rc 2 ck2 audit log --ref R-ANNE --subject 00000000000000000000000000000000
expect_rc 2 ck2 audit log --bogus

expect_rc 0 ck2 audit report
cp "$T/out" "$T/report.json"
python3 - "$T/report.json" <<'PY' || fail "audit report: unexpected content"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("entries", "range", "actions", "releases", "segment_answers", "purposes", "actors",
          "consent_changes", "contacts", "erasures", "exports", "schema_changes",
          "key_operations", "consents_now", "filter"):
    assert k in d, k
assert d["releases"] == 3, d["releases"]
assert d["purposes"]["marketing.email"]["withheld"] == {"withdrawn": 2}, d["purposes"]
assert d["actors"]["crm"]["releases"] == 2 and d["actors"]["shop"]["releases"] == 1
assert d["consent_changes"]["by_purpose"]["marketing.email"] == {"granted": 1, "withdrawn": 1}
assert d["contacts"] == {"total": 1, "by_channel": {"email": 1}}
m = d["consents_now"]["purposes"]["marketing.email"]
assert (m["granted"], m["withdrawn"], m["refused"], m["expired"]) == (1, 1, 0, 0), m
assert d["consents_now"]["purposes"]["service"]["granted"] == 0
PY
for v in anne.secret bob.secret Annabelle Bobbington Quimper R-ANNE R-BOB; do
    if grep -qi "$v" "$T/report.json"; then fail "audit report shows a value ($v)"; fi
done
# nor a pseudonym
pn=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["subject"])' "$T/anne.jsonl")
if grep -q "$pn" "$T/report.json"; then fail "audit report shows a pseudonym"; fi
expect_rc 0 ck2 audit report --purpose service --actor shop --since 2000-01-01 --until 2999-01-01
expect_out '"releases":1,'
expect_out '"purpose":"service"'
expect_rc 0 ck2 --format text audit report
expect_out '^Audit report: [0-9]+ entries'
expect_out 'marketing.email \(consent\): granted 1, withdrawn 1'
for v in anne.secret Annabelle Quimper R-ANNE; do
    if grep -qi "$v" "$T/out"; then fail "audit report (text) shows a value ($v)"; fi
done
expect_rc 2 ck2 audit report --since yesterday
expect_rc 2 ck2 audit report extra

finish
