#!/usr/bin/env bash
# End-to-end: schema apply / show through the CLI (docs/schema.md).
. "$(dirname "$0")/lib.sh"

S="$T/store"
K="$T/store.key"
EXAMPLE="${CK_SOURCE_DIR:?CK_SOURCE_DIR must name the source tree}/examples/schema.json"
ck() { "$CK" --store "$S" --key-file "$K" "$@"; }
# Every file but LMDB's lock files, whose reader table changes whenever a
# process opens the store.
store_digest() {
    (cd "$1" && find . -type f ! -name '*-lock' -print0 | sort -z | xargs -0 sha256sum | sha256sum)
}

expect_rc 0 "$CK" --store "$S" --key-file "$K" init
expect_rc 0 "$CK" schema --help
expect_out "usage: ckstore .* schema apply FILE"
expect_rc 2 ck schema
expect_rc 2 ck schema frobnicate
expect_rc 2 ck schema apply

# Nothing applied yet: show says not found.
expect_rc 3 ck schema show
expect_err "no schema has been applied"

# Apply the example.
expect_rc 0 ck schema apply "$EXAMPLE"
expect_out '^\{"version":1,"changed":true,"fields_added":\["allergies","birth_date","city","email",'
expect_out '"purposes_added":\["analytics","marketing.email","partners","personalization","service"\]'
expect_out '"fields_removed":\[\]'

# Show, and apply what show printed (from standard input): nothing changes.
expect_rc 0 ck schema show
expect_out '"version":1'
expect_out '"total_spend_cents":"band:5000,20000,100000"'
expect_out '"channel":\{"type":"email","field":"email","cap":\{"count":2,"days":30\}\}'
cp "$T/out" "$T/shown.json"
before=$(store_digest "$S")
"$CK" --store "$S" --key-file "$K" schema apply - <"$T/shown.json" >"$T/out" 2>"$T/err" && rc=0 || rc=$?
[ "$rc" = 0 ] || { echo "FAIL: apply of show output: exit $rc"; cat "$T/err"; FAILS=$((FAILS + 1)); }
expect_out '"version":1,"changed":false'
[ "$before" = "$(store_digest "$S")" ] || { echo "FAIL: an identical schema changed the store"; FAILS=$((FAILS + 1)); }

# An invalid file: exit 6, the path in the message, the store untouched.
sed 's/"year"/"yeer"/' "$EXAMPLE" >"$T/bad.json"
expect_rc 6 ck schema apply "$T/bad.json"
expect_err 'purposes\.analytics\.minimize\.birth_date: unknown minimisation "yeer"'
printf '{"fields":{"email":{"type":"strng","sensitivity":"personal"}}}' >"$T/bad2.json"
expect_rc 6 ck schema apply "$T/bad2.json"
expect_err 'fields\.email\.type: unknown type "strng" \(expected string, int, float, bool, date, timestamp, bytes, list\)'
printf '{"fields":\n  {"email": }' >"$T/bad3.json"
expect_rc 6 ck schema apply "$T/bad3.json"
expect_err 'line 2, column'
printf '' >"$T/empty.json"
expect_rc 6 ck schema apply "$T/empty.json"
expect_err 'schema: the file is empty'
expect_rc 3 ck schema apply "$T/missing.json"
[ "$before" = "$(store_digest "$S")" ] || { echo "FAIL: an invalid schema changed the store"; FAILS=$((FAILS + 1)); }

# A new field: version 2. Removing it again (it holds no value): version 3.
python3 - "$EXAMPLE" "$T/plus.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["fields"]["nickname"] = {"type": "string", "sensitivity": "personal"}
json.dump(s, open(sys.argv[2], "w"))
PY
expect_rc 0 ck schema apply "$T/plus.json"
expect_out '"version":2,"changed":true,"fields_added":\["nickname"\]'
expect_rc 0 ck --format text schema apply "$EXAMPLE"
expect_out '^schema version 3 applied'
expect_out '^fields removed: nickname'
# --force is accepted before or after FILE (nothing holds data here).
expect_rc 0 ck schema apply --force "$T/plus.json"
expect_out '"version":4'
expect_rc 0 ck schema apply "$EXAMPLE" --force
expect_out '"version":5,"changed":true,"fields_added":\[\],"fields_removed":\["nickname"\]'
expect_rc 0 ck schema show
expect_out '"version":5'

finish
