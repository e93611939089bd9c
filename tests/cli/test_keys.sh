#!/usr/bin/env bash
# End-to-end: init, stats, passwd, key handling and exit codes through the CLI.
. "$(dirname "$0")/lib.sh"

S="$T/store"
K="$T/store.key"

# Usage errors.
expect_rc 2 "$CK"
expect_rc 2 "$CK" bogus
expect_err "unknown command"
expect_rc 0 "$CK" --help
expect_out "Commands:"
expect_rc 0 "$CK" init --help
expect_out "usage: ckstore"
expect_rc 2 "$CK" --store "$S" init --no-passphrase # no key at all
[ ! -e "$S" ] || { echo "FAIL: a refused init left $S"; FAILS=$((FAILS + 1)); }

# init creates the key file, mode 0600, and the store.
expect_rc 0 "$CK" --store "$S" --key-file "$K" init
expect_out '"key_file_created":true'
expect_out '"slots":\["key_file"\]'
[ "$(stat -c %a "$K")" = 600 ] || { echo "FAIL: key file mode $(stat -c %a "$K")"; FAILS=$((FAILS + 1)); }
[ "$(stat -c %s "$K")" = 32 ] || { echo "FAIL: key file size"; FAILS=$((FAILS + 1)); }
# A second init on the same directory is refused, the store untouched.
before=$(digest "$S")
"$CK" --store "$S" --key-file "$K" init </dev/null >"$T/out" 2>"$T/err" && rc=0 || rc=$?
[ "$rc" != 0 ] || { echo "FAIL: second init succeeded"; FAILS=$((FAILS + 1)); }
expect_err "already holds a store"
[ "$before" = "$(digest "$S")" ] || { echo "FAIL: second init changed the store"; FAILS=$((FAILS + 1)); }

# stats, JSON and text; CKSTORE_DIR / CKSTORE_KEY_FILE work like the options.
expect_rc 0 "$CK" --store "$S" --key-file "$K" stats
expect_out '"subjects":0'
expect_out '"format":1'
expect_rc 0 env CKSTORE_DIR="$S" CKSTORE_KEY_FILE="$K" "$CK" --format text stats
expect_out '^store id'

# An unsafe key file is refused with exit 4 and says how to fix it.
chmod 644 "$K"
expect_rc 4 "$CK" --store "$S" --key-file "$K" stats
expect_err "chmod 600"
chmod 600 "$K"

# Missing store: exit 3. No key anywhere and no terminal: exit 2.
expect_rc 3 "$CK" --store "$T/nowhere" --key-file "$K" stats
expect_rc 2 "$CK" --store "$S" stats

# A wrong key: exit 4, and no byte of the store changes.
head -c 32 /dev/urandom >"$T/other.key"
chmod 600 "$T/other.key"
before=$(digest "$S")
expect_rc 4 "$CK" --store "$S" --key-file "$T/other.key" stats
expect_rc 4 env CKSTORE_PASSPHRASE=guess "$CK" --store "$S" stats
[ "$before" = "$(digest "$S")" ] || { echo "FAIL: a wrong key changed the store"; FAILS=$((FAILS + 1)); }

# passwd: add a passphrase slot; both secrets open the store.
expect_rc 0 env CKSTORE_NEW_PASSPHRASE="first passphrase" \
    "$CK" --store "$S" --key-file "$K" passwd --set-passphrase --kdf-cost interactive
expect_out '"slots":\["key_file","passphrase"\]'
expect_rc 0 env CKSTORE_PASSPHRASE="first passphrase" "$CK" --store "$S" stats
expect_out '"kdf":\{"alg":"argon2id13"'
# Change it: the old one stops working.
expect_rc 0 env CKSTORE_PASSPHRASE="first passphrase" CKSTORE_NEW_PASSPHRASE="second one" \
    "$CK" --store "$S" passwd --set-passphrase --kdf-cost interactive
expect_rc 4 env CKSTORE_PASSPHRASE="first passphrase" "$CK" --store "$S" stats
expect_rc 0 env CKSTORE_PASSPHRASE="second one" "$CK" --store "$S" stats
# Replace the key file: the old one stops working.
expect_rc 0 env CKSTORE_PASSPHRASE="second one" "$CK" --store "$S" passwd --set-key-file "$T/new.key"
[ "$(stat -c %a "$T/new.key")" = 600 ] || { echo "FAIL: new key file mode"; FAILS=$((FAILS + 1)); }
expect_rc 4 "$CK" --store "$S" --key-file "$K" stats
expect_rc 0 "$CK" --store "$S" --key-file "$T/new.key" stats
# Remove the passphrase; the last slot cannot go.
expect_rc 0 "$CK" --store "$S" --key-file "$T/new.key" passwd --remove-passphrase
expect_out '"slots":\["key_file"\]'
expect_rc 4 "$CK" --store "$S" --key-file "$T/new.key" passwd --remove-key-file
expect_err "last key slot"
expect_rc 2 "$CK" --store "$S" --key-file "$T/new.key" passwd
# The passphrase never appears in any output.
if grep -rq "second one" "$T/out" "$T/err"; then
    echo "FAIL: a passphrase reached the output"
    FAILS=$((FAILS + 1))
fi

finish
