#!/usr/bin/env bash
# test_erase.sh - ckstore erase: receipt, exit codes, nothing left to find,
# the audit entry, and tombstones against a re-import.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
never_on_stderr Caen

export CKSTORE_DIR="$T/store" CKSTORE_KEY_FILE="$T/store.key"
ck() { "$CK" "$@"; }

expect_rc 0 ck init --no-passphrase
cat >"$T/schema.json" <<'JSON'
{"fields": {"email": {"type": "string", "sensitivity": "personal", "identifying": true},
            "city": {"type": "string", "sensitivity": "personal"}},
 "purposes": {"service": {"basis": "contract", "description": "d", "benefit": "b",
                          "fields": ["email", "city"]}}}
JSON
expect_rc 0 ck schema apply "$T/schema.json"
printf '%s\n' '{"ref":"C-9","fields":{"email":"nine@example.fr","city":"Caen"}}' >"$T/one.jsonl"
expect_rc 0 ck import "$T/one.jsonl"

# usage and bad input change nothing
expect_rc 2 ck erase --ref C-9 --actor dpo
expect_rc 2 ck erase --reason art17 --actor dpo
expect_rc 6 ck erase --ref C-9 --reason "because she asked" --actor dpo
expect_rc 0 ck get --ref C-9 --purpose service --actor t

expect_rc 0 ck erase --lookup email=NINE@example.fr --reason art17-request --actor dpo
expect_out '"erased":true'
expect_out '"tombstones":2'
expect_out '"keyring_copies_scrubbed":[1-9]'
expect_rc 3 ck get --ref C-9 --purpose service --actor t
expect_rc 3 ck erase --ref C-9 --reason art17-request --actor dpo
expect_err 'not found|no subject'

expect_rc 0 ck audit log --action erase
expect_out '"action":"erase"'
expect_out '"reason":"art17-request"'
if grep -q 'nine@example.fr\|C-9\|Caen' "$T/out"; then
    echo "FAIL: the audit log holds a value" >&2
    FAILS=$((FAILS + 1))
fi
expect_rc 0 ck audit verify

# the old file does not bring her back, unless asked, and then as someone new
expect_rc 6 ck import "$T/one.jsonl"
expect_err 'line 1: ref: this customer was erased'
expect_rc 3 ck get --ref C-9 --purpose service --actor t
expect_rc 0 ck import --recreate-erased "$T/one.jsonl"
expect_out '"created":1'
expect_rc 0 ck get --ref C-9 --purpose service --actor t

# a backup after the erasure opens with the same key and verifies
expect_rc 0 ck backup "$T/bk" --actor dpo
expect_out '"backup"'
expect_rc 6 ck backup "$T/bk" --actor dpo
expect_rc 2 ck backup "$T/bk2"
expect_rc 0 "$CK" --store "$T/bk" audit verify
expect_rc 0 "$CK" --store "$T/bk" get --ref C-9 --purpose service --actor t
expect_rc 0 ck audit log --action backup
expect_out '"action":"backup"'

# compaction leaves nothing of her in any file of the store
expect_rc 0 ck compact --actor dpo
expect_out '"compacted":true'
expect_rc 2 ck compact
expect_rc 0 ck get --ref C-9 --purpose service --actor t
expect_rc 0 ck audit verify

finish
