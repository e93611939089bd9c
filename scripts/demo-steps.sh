#!/usr/bin/env bash
# demo-steps.sh CKSTORE - the demonstration run by scripts/demo.sh.
#
# $1 is the path of the ckstore binary. Everything happens in a scratch
# directory made with mktemp -d and removed at the end; nothing outside it
# is touched.
set -euo pipefail

CK=$(realpath "${1:?usage: demo-steps.sh path/to/ckstore}")
HERE=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ckstore-demo.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
unset CKSTORE_PASSPHRASE CKSTORE_NEW_PASSPHRASE
export CKSTORE_DIR="$scratch/store" CKSTORE_KEY_FILE="$scratch/store.key"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {
    printf '$ ckstore %s\n' "$*" >&2
    "$CK" "$@"
}

step "1. Create a store: a random root key, wrapped by a new key file (mode 0600)"
run init --no-passphrase </dev/null
ls -l "$CKSTORE_KEY_FILE" | awk '{print "   key file:", $1, $NF}'

step "2. Apply a schema: fields with their sensitivity, purposes with their legal basis"
run schema apply "$HERE/examples/schema.json"
run --format text schema show | head -n 20 || true

step "3. A bad schema is refused with the exact place of the problem, and changes nothing"
printf '{"fields":{"email":{"type":"strng","sensitivity":"personal"}}}' >bad.json
run schema apply bad.json || echo "   (exit $? - nothing was changed)"

step "4. Add a passphrase slot next to the key file (the root key is rewrapped, no data touched)"
CKSTORE_NEW_PASSPHRASE="correct horse battery" run passwd --set-passphrase --kdf-cost interactive
run --format text stats

step "5. A wrong key is refused and writes nothing"
head -c 32 /dev/urandom >wrong.key && chmod 600 wrong.key
CKSTORE_KEY_FILE="$scratch/wrong.key" run stats || echo "   (exit $?)"

step "6. Every operation is in the tamper-evident audit log (names and pseudonyms, never values)"
run audit log
run audit checkpoint >checkpoint.json
cat checkpoint.json
run audit verify --checkpoint checkpoint.json

step "7. Tampering with the log is detected and the first bad entry named"
cp "$CKSTORE_DIR/audit-000001.log" audit.bak
printf '\x01' | dd of="$CKSTORE_DIR/audit-000001.log" bs=1 seek=20 conv=notrunc status=none
run audit verify || echo "   (exit $? - integrity failure)"
cp audit.bak "$CKSTORE_DIR/audit-000001.log"

step "8. Import customers with their consents: each line is atomic, bad lines are reported by number"
run import "$HERE/examples/customers.jsonl" || echo "   (exit $? - two lines were rejected, the others landed)"

step "9. The same customer, seen by three purposes: each releases only what its basis allows"
run get --ref C-000001 --purpose service --actor till-app
run get --ref C-000001 --purpose analytics --actor bi
run get --ref C-000001 --purpose personalization --actor web

step "10. A partner sees only what the customer agreed to share with that partner, under another pseudonym"
run get --lookup email=lea.martin@example.FR --purpose partners --recipient acme --actor partner-feed
run get --ref C-000001 --purpose partners --recipient globex --actor partner-feed

step "11. Withdrawing is one call, as easy as the grant"
run consent withdraw --ref C-000001 --purpose marketing.email --actor crm --source "unsubscribe link"
run --format text get --ref C-000001 --purpose marketing.email --actor mailer

step "12. A segment: only customers who may be reached, filtered only on what they agreed to release"
run segment --purpose personalization --actor web --where city=Paris

step "13. The audit log recorded every release and consent change - field names, never values"
run audit log | tail -n 3
run audit verify

step "14. Erasure: the key is destroyed first, the receipt says what went, an old file cannot bring her back"
run erase --ref C-000002 --reason art17-request --actor dpo
run get --ref C-000002 --purpose service --actor till-app || echo "   (exit $? - nothing left to find)"
run import "$HERE/examples/customers.jsonl" 2>&1 | grep -E "line 2|imported" || true

step "15. The customer's export: every value, consent and purpose, and every release of her data (audited first)"
run export --ref C-000001 --actor dpo >export.json
cut -c 1-1200 export.json | fold -w 100
echo "   (... $(wc -c <export.json) bytes in all: consents, purposes, releases, history)"
run export --ref C-000001 --actor dpo --format csv

step "16. Compaction: afterwards no byte of the erased customer is left in any file of the store"
run --format text compact --actor dpo

step "17. Retention and consent expiry: what a purge would do now (a dry run changes nothing)"
run --format text purge --dry-run --actor retention-job

step "18. A backup; then C-000003 is erased; restoring the backup does not bring her back"
run backup "$scratch/backup" --actor dpo
run erase --ref C-000003 --reason art17-request --actor dpo >/dev/null
run tombstones export "$scratch/tombstones.ck" --actor dpo
run --format text restore "$scratch/backup" --tombstones "$scratch/tombstones.ck" --actor dpo
run get --ref C-000003 --purpose service --actor till-app || echo "   (exit $? - still erased)"
run get --ref C-000001 --purpose service --actor till-app
