#!/usr/bin/env bash
# test_purge.sh - ckstore purge: usage and exit codes, a dry run that
# changes no byte, then the real run with the same figures, consent expiry
# marked once, text output, the audit entries. (Field retention needs a
# moving clock: tests/test_purge.c covers it; here a value not yet due is
# checked to stay.)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

export CKSTORE_DIR="$T/store" CKSTORE_KEY_FILE="$T/store.key"
ck() { "$CK" "$@"; }
# the files a purge could change (not LMDB's lock files)
files_digest() {
    (cd "$CKSTORE_DIR" && sha256sum data.mdb keyring.mdb audit-*.log | sha256sum)
}

expect_rc 0 ck init --no-passphrase
cat >"$T/schema.json" <<'JSON'
{"fields": {"email": {"type": "string", "sensitivity": "personal", "identifying": true,
                      "retention_days": 365},
            "city": {"type": "string", "sensitivity": "personal"}},
 "purposes": {"news": {"basis": "consent", "description": "d", "benefit": "b",
                       "fields": ["email", "city"]},
              "offers": {"basis": "consent", "description": "d", "benefit": "b",
                         "fields": ["city"]},
              "service": {"basis": "contract", "description": "d", "benefit": "b",
                          "fields": ["email", "city"]}}}
JSON
expect_rc 0 ck schema apply "$T/schema.json"
cat >"$T/people.jsonl" <<'JSONL'
{"ref":"C-1","fields":{"email":"one@example.fr","city":"Caen"},"consent":{"news":{"state":"granted","expires":"2020-01-01","recipients":["acme"]},"offers":{"state":"granted","expires":"2020-06-01"}}}
{"ref":"C-2","fields":{"email":"two@example.fr","city":"Metz"},"consent":{"news":{"state":"granted","expires":"2020-01-01"},"offers":true}}
{"ref":"C-3","fields":{"city":"Albi"},"consent":{"news":{"state":"granted","expires":"2999-01-01"},"offers":{"state":"refused","expires":"2020-01-01"}}}
JSONL
expect_rc 0 ck import "$T/people.jsonl"
expect_out '"imported":3'

# usage
expect_rc 2 ck purge
expect_err 'needs --actor'
expect_rc 2 ck purge --dry-run
expect_rc 2 ck purge --actor dpo extra
expect_rc 2 ck purge --actor dpo --batch 0
expect_rc 2 ck purge --actor dpo --batch 65537
expect_rc 2 ck purge --actor dpo --batch 3x
expect_rc 2 ck purge --actor dpo --force
expect_rc 0 ck purge --help
expect_out 'retention_days'
expect_out 'dry-run'

expect_rc 0 ck get --ref C-1 --purpose news --actor crm
expect_json 'd["withheld"] == {"email": "expired", "city": "expired"}'

# a dry run: the figures, and not a byte changed (audit log included)
before=$(files_digest)
expect_rc 0 ck purge --dry-run --actor dpo
cp "$T/out" "$T/dry.json"
expect_exact_dry='{"dry_run":true,"values_removed":0,"consents_expired":3,"subjects":2,"holds_expired":0,"by_field":{},"by_purpose":{"news":2,"offers":1}}'
if [ "$(cat "$T/dry.json")" = "$expect_exact_dry" ]; then ok; else fail "dry run printed $(cat "$T/dry.json")"; fi
expect_rc 0 ck --format text purge --dry-run --actor dpo --batch 1
expect_out '^dry run: nothing was changed'
expect_out '^consents to mark expired: 3 \(news: 2, offers: 1\)$'
expect_out '^values to remove: 0$'
after=$(files_digest)
if [ "$before" = "$after" ]; then ok; else fail "a dry run changed the store"; fi

# the real run, in batches of one: the same figures
expect_rc 0 ck purge --actor dpo --batch 1
expect_json 'd["dry_run"] is False'
pyjson check 'd == dict(json.load(open("'"$T"'/dry.json")), dry_run=False)'
if [ "$PYJSON_REPLY" = ok ]; then ok; else fail "real run figures differ from the dry run's"; fi
if [ "$before" != "$(files_digest)" ]; then ok; else fail "the real run changed nothing"; fi

expect_rc 0 ck get --ref C-1 --purpose news --actor crm
expect_json 'd["withheld"] == {"email": "expired", "city": "expired"}'
expect_rc 0 ck get --ref C-2 --purpose offers --actor crm
expect_json 'd["released"] == {"city": "Metz"}'
expect_rc 0 ck get --ref C-3 --purpose offers --actor crm
expect_json 'd["withheld"] == {"city": "refused"}'
expect_rc 0 ck consent show --ref C-1
expect_json 'd["current"]["news"]["state"] == "expired" and d["current"]["news"]["source"] == "purge" and d["current"]["news"]["recipients"] == ["acme"] and d["current"]["news"]["collector"] == "dpo" and len(d["history"]) == 4'
# a value not due yet stays
expect_rc 0 ck get --ref C-1 --purpose service --actor crm
expect_json 'd["released"] == {"email": "one@example.fr", "city": "Caen"}'

# twice: nothing more
expect_rc 0 ck --format text purge --actor dpo
expect_out '^consents marked expired: 0$'
expect_out '^subjects changed: 0$'
expect_rc 0 ck consent show --ref C-1
expect_json 'len(d["history"]) == 4'

# a new grant supersedes the expired record
expect_rc 0 ck consent grant --ref C-1 --purpose news --actor crm
expect_rc 0 ck get --ref C-1 --purpose news --actor crm
expect_json 'd["released"] == {"email": "one@example.fr", "city": "Caen"}'
expect_rc 0 ck purge --actor dpo
expect_json 'd["consents_expired"] == 0'

# the audit: one purge entry per subject changed, one consent entry per
# consent closed, no value; the chain verifies
expect_rc 0 ck audit log --action purge
expect_json 'len(rows) == 2 and all(r["actor"] == "dpo" and len(r["subject"]) == 32 for r in rows)'
expect_json 'sorted(r["detail"]["consents_expired"] for r in rows) == [1, 2]'
expect_rc 0 ck audit log --action consent --actor dpo
expect_json 'len(rows) == 3 and all(r["detail"] == {"state": "expired", "via": "purge"} for r in rows)'
for f in "$CKSTORE_DIR"/audit-*.log; do
    if grep -q 'example.fr\|Caen\|Metz\|C-1\|acme' "$f"; then fail "the audit log holds a value"; else ok; fi
done
expect_rc 0 ck audit verify
expect_rc 0 ck audit report
expect_json 'd["consents_now"]["purposes"]["news"]["expired"] == 1 and d["consent_changes"]["by_purpose"]["news"]["expired"] == 2'

# a store that does not open
expect_rc 3 "$CK" --store "$T/nowhere" purge --actor dpo

finish
