#!/usr/bin/env bash
# test_erase.sh - ckstore erase: receipt, exit codes, nothing left to find,
# the audit entry, and tombstones against a re-import; erase --batch; legal
# holds (hold show, hold expire).
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

# ---------------------------------------------------------------------------
# erase --batch: refs one per line, receipts as JSON Lines, unknown refs
# reported by line number (exit 3) while the others are still erased.
cat >"$T/batch.jsonl" <<'EOF'
{"ref":"B-1","fields":{"email":"b1@example.fr","city":"Rouen"}}
{"ref":"B-2","fields":{"email":"b2@example.fr","city":"Rouen"}}
{"ref":"B-3","fields":{"email":"b3@example.fr","city":"Rouen"}}
{"ref":"B-4","fields":{"email":"b4@example.fr","city":"Rouen"}}
EOF
expect_rc 0 ck import "$T/batch.jsonl"
printf 'B-1\nB-2\n\nNOPE\nB-1\r\n' >"$T/refs"
expect_rc 2 ck erase --batch "$T/refs" --ref B-3 --reason art17 --actor dpo
expect_rc 2 ck erase --batch "$T/refs" --actor dpo
expect_rc 6 ck erase --batch "$T/refs" --reason "no spaces" --actor dpo
expect_rc 3 ck erase --batch "$T/missing-file" --reason art17 --actor dpo
expect_rc 0 ck get --ref B-1 --purpose service --actor t
expect_rc 3 ck erase --batch "$T/refs" --reason art17-request --actor dpo
expect_json 'len(rows) == 2 and [r["line"] for r in rows] == [1, 2] and all(r["erased"] and r["holds"] == [] and r["keyring_copies_scrubbed"] >= 1 for r in rows)'
expect_err 'line 4: no subject has this ref'
expect_err 'line 5: no subject has this ref'
if grep -q 'line 3' "$T/err"; then fail "a blank line was reported"; else ok; fi
expect_rc 3 ck get --ref B-1 --purpose service --actor t
expect_rc 3 ck get --ref B-2 --purpose service --actor t
expect_rc 0 ck get --ref B-3 --purpose service --actor t
# from standard input; all found: exit 0
rc=0
printf 'B-3\nB-4\n' | "$CK" erase --batch - --reason art17-request --actor dpo >"$T/out" 2>"$T/err" || rc=$?
if [ "$rc" = 0 ]; then ok; else fail "erase --batch - exited $rc"; fi
expect_json 'len(rows) == 2 and [r["line"] for r in rows] == [1, 2]'
expect_rc 3 ck get --ref B-4 --purpose service --actor t
expect_rc 0 ck audit verify

# ---------------------------------------------------------------------------
# Legal holds: the schema declares one; the erasure keeps those fields only,
# in a hold read by its id, audited; expiry.
cat >"$T/schema2.json" <<'JSON'
{"fields": {"email": {"type": "string", "sensitivity": "personal", "identifying": true},
            "city": {"type": "string", "sensitivity": "personal"},
            "invoice_total": {"type": "int", "sensitivity": "personal"}},
 "purposes": {"service": {"basis": "contract", "description": "d", "benefit": "b",
                          "fields": ["email", "city"]},
              "invoicing": {"basis": "legal_obligation", "description": "Invoices, 10 years",
                            "benefit": "b", "fields": ["email", "invoice_total"],
                            "hold": {"fields": ["invoice_total"], "days": 3650}}}}
JSON
cat >"$T/bad-hold.json" <<'JSON'
{"fields": {"city": {"type": "string", "sensitivity": "personal"}},
 "purposes": {"service": {"basis": "contract", "description": "d", "benefit": "b",
                          "fields": ["city"], "hold": {"fields": ["city"], "days": 10}}}}
JSON
expect_rc 6 ck schema apply "$T/bad-hold.json"
expect_err 'purposes.service.hold: only a legal_obligation purpose keeps fields after an erasure'
expect_rc 0 ck schema apply "$T/schema2.json"
expect_rc 0 ck schema show
expect_json 'd["purposes"]["invoicing"]["hold"] == {"fields": ["invoice_total"], "days": 3650}'
printf '%s\n' '{"ref":"I-1","fields":{"email":"inv@example.fr","city":"Nancy","invoice_total":4242}}' >"$T/inv.jsonl"
expect_rc 0 ck import "$T/inv.jsonl"
expect_rc 0 ck erase --ref I-1 --reason art17-request --actor dpo
expect_json 'len(d["holds"]) == 1 and d["holds"][0]["purpose"] == "invoicing" and d["holds"][0]["basis"] == "legal_obligation" and d["holds"][0]["description"] == "Invoices, 10 years" and d["holds"][0]["fields"] == ["invoice_total"] and len(d["holds"][0]["hold"]) == 32 and d["holds"][0]["until"] > d["at"]'
pyjson value 'd["holds"][0]["hold"]'
HOLD=${PYJSON_REPLY#=}
expect_rc 3 ck get --ref I-1 --purpose invoicing --actor t
expect_rc 3 ck get --lookup email=inv@example.fr --purpose invoicing --actor t
expect_rc 2 ck hold show "$HOLD"
expect_rc 2 ck hold
expect_rc 6 ck hold show not-an-id --actor auditor
expect_rc 3 ck hold show 00000000000000000000000000000000 --actor auditor
expect_rc 0 ck hold show "$HOLD" --actor auditor
expect_json 'd["hold"] == "'"$HOLD"'" and d["fields"] == {"invoice_total": 4242} and d["purpose"] == "invoicing"'
expect_rc 0 ck audit log --action hold
expect_json 'len(rows) == 2 and rows[0]["detail"]["event"] == "kept" and rows[1]["detail"]["event"] == "read" and rows[1]["released"] == ["invoice_total"] and rows[0]["subject"] == rows[1]["subject"]'
if grep -q '4242\|inv@example.fr\|Nancy\|I-1' "$T/out"; then fail "the audit log holds a value"; else ok; fi
expect_rc 0 ck hold expire --actor dpo
expect_json 'd == {"expired": 0}'
expect_rc 2 ck hold expire
expect_rc 0 ck hold show "$HOLD" --actor auditor
# the hold survives a compaction
expect_rc 0 ck compact --actor dpo
expect_rc 0 ck hold show "$HOLD" --actor auditor
expect_rc 0 ck audit verify

finish
