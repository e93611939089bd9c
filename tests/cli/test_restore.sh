#!/usr/bin/env bash
# test_restore.sh - ckstore tombstones export and restore: a backup made
# before an erasure, restored, does not bring the customer back by any
# way, and nothing of her is in the restored store's files; restore into a
# new directory with an exported tombstone file; forged and truncated
# files, a wrong key, a busy store and a foreign directory change nothing.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

export CKSTORE_DIR="$T/store" CKSTORE_KEY_FILE="$T/store.key"
ck() { "$CK" "$@"; }

# digest_store DIR : like digest, without LMDB's lock files (opening an
# environment writes its reader table there).
digest_store() {
    (cd "$1" && find . -type f ! -name '*-lock' -print0 | sort -z | xargs -0 sha256sum | sha256sum)
}
# no_file_holds DIR HEX : no file of DIR holds the bytes HEX, nor HEX as text.
no_file_holds() {
    python3 - "$1" "$2" <<'PY'
import os, sys
d, h = sys.argv[1], sys.argv[2]
raw = bytes.fromhex(h)
bad = [n for n in os.listdir(d)
       if os.path.isfile(os.path.join(d, n))
       and (raw in open(os.path.join(d, n), 'rb').read()
            or h.encode() in open(os.path.join(d, n), 'rb').read())]
print(" ".join(bad))
sys.exit(1 if bad else 0)
PY
}

expect_rc 0 ck init --no-passphrase
cat >"$T/schema.json" <<'JSON'
{"fields": {"email": {"type": "string", "sensitivity": "personal", "identifying": true},
            "city": {"type": "string", "sensitivity": "personal"}},
 "purposes": {"service": {"basis": "contract", "description": "d", "benefit": "b",
                          "fields": ["email", "city"]}}}
JSON
expect_rc 0 ck schema apply "$T/schema.json"
cat >"$T/people.jsonl" <<'JSONL'
{"ref":"C-1","fields":{"email":"one@example.fr","city":"Caen"}}
{"ref":"C-2","fields":{"email":"two@example.fr","city":"Rouen"}}
{"ref":"C-3","fields":{"email":"three@example.fr","city":"Evreux"}}
JSONL
expect_rc 0 ck import "$T/people.jsonl"
expect_rc 0 ck alias add --ref C-1 card-11
expect_rc 0 ck put --ref C-1 city=Caen
json_of subject SID
[ ${#SID} = 32 ] && ok || fail "no subject id: $SID"

expect_rc 0 ck backup "$T/bk" --actor dpo
expect_rc 0 ck erase --ref C-1 --reason art17-request --actor dpo

# tombstones export
expect_rc 2 ck tombstones export "$T/tombs"
expect_rc 2 ck tombstones
expect_rc 2 ck tombstones list --actor dpo
expect_rc 0 ck tombstones --help
expect_out 'usage: .*tombstones export FILE'
expect_rc 0 ck tombstones export "$T/tombs" --actor dpo
expect_json 'd["exported"] == 3 and d["file"].endswith("/tombs")'
[ "$(stat -c %a "$T/tombs")" = 600 ] && ok || fail "tombstone file mode"
if grep -q 'one@example.fr\|C-1' "$T/tombs"; then fail "the tombstone file holds a value"; else ok; fi
no_file_holds "$T" "$SID" >/dev/null && ok || fail "a file beside the store holds the id"
expect_rc 0 ck audit log --action tombstones_export
expect_out '"tombstones":3'

# usage
expect_rc 2 ck restore "$T/bk"
expect_rc 2 ck restore --actor dpo
expect_rc 2 ck restore "$T/bk" --actor dpo --bogus
expect_rc 0 ck restore --help
expect_out 'usage: .*restore BACKUP --actor A'

# busy: an import waiting on its input holds the store open
before=$(digest_store "$T/store")
mkfifo "$T/fifo"
"$CK" import - <"$T/fifo" >"$T/imp.out" 2>&1 &
imp=$!
exec 3>"$T/fifo"
for _ in $(seq 100); do
    ls -l "/proc/$imp/fd" 2>/dev/null | grep -q ckstore.lock && break
    sleep 0.1
done
expect_rc 1 ck restore "$T/bk" --actor dpo
expect_err 'busy|open elsewhere'
exec 3>&-
wait "$imp" || true
[ "$(digest_store "$T/store")" = "$before" ] && ok || fail "a busy restore changed the store"
[ -z "$(ls -d "$T"/store.restore-* 2>/dev/null)" ] && ok || fail "a busy restore left its copy"

# wrong key: exit 4, nothing changed
head -c 32 /dev/urandom >"$T/other.key"
chmod 600 "$T/other.key"
expect_rc 4 env CKSTORE_KEY_FILE="$T/other.key" "$CK" restore "$T/bk" --actor dpo
[ "$(digest_store "$T/store")" = "$before" ] && ok || fail "a wrong key changed the store"

# forged and truncated tombstone files: exit 5, nothing changed
python3 - "$T/tombs" "$T/forged" "$T/cut" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
c = bytes(b[:-24 - 32]) + bytes(b[-32:])  # one entry cut, MAC kept
b[36 + 5] ^= 0x10                           # a tag changed
open(sys.argv[2], 'wb').write(b)
open(sys.argv[3], 'wb').write(c)
PY
expect_rc 5 ck restore "$T/bk" --actor dpo --tombstones "$T/tombs" --tombstones "$T/forged"
expect_err 'modified, truncated or forged'
expect_rc 5 ck restore "$T/bk" --actor dpo --tombstones "$T/cut"
head -c 50 "$T/tombs" >"$T/short"
expect_rc 5 ck restore "$T/bk" --actor dpo --tombstones "$T/short"
expect_rc 3 ck restore "$T/bk" --actor dpo --tombstones "$T/missing"
[ "$(digest_store "$T/store")" = "$before" ] && ok || fail "a bad tombstone file changed the store"

# the restore
expect_rc 0 ck restore "$T/bk" --actor dpo
expect_json 'd["replayed"] == 1 and d["replayed_by"]["id"] == 1 and d["subjects"] == 3'
expect_json 'd["tombstones"]["target"] == 3 and d["tombstones"]["applied"] == 3'
expect_json 'd["kept"].startswith(d["restored"] + ".replaced-") and "after the backup" in d["warning"]'
expect_json 'd["audit"]["replaced_seq"] > d["audit"]["backup_seq"]'
json_of kept KEPT
[ -f "$KEPT/ckstore.keys" ] && ok || fail "the replaced store was not kept"

# C-1 is not reachable by any way; the others are as they were
expect_rc 3 ck get --ref C-1 --purpose service --actor t
expect_rc 3 ck get --lookup email=one@example.fr --purpose service --actor t
expect_rc 3 ck get --alias card-11 --purpose service --actor t
expect_rc 3 ck get --subject "$SID" --purpose service --actor t
expect_rc 0 ck get --ref C-2 --purpose service --actor t
expect_out '"city":"Rouen"'
expect_rc 0 ck segment --purpose service --actor t
[ "$(wc -l <"$T/out")" = 2 ] && ok || fail "the segment does not have 2 answers"
if grep -q 'Caen\|one@example.fr' "$T/out"; then fail "the segment has C-1"; else ok; fi
no_file_holds "$T/store" "$SID" >/dev/null && ok || fail "a file of the restored store holds her id"
expect_rc 0 ck audit verify
expect_rc 0 ck audit log --action restore
expect_out '"replayed":1'
expect_rc 0 ck audit log --action erase
expect_out '"reason":"restore-replay"'
# the backup's log is a prefix of the restored one
cmp -n "$(stat -c %s "$T/bk/audit-000001.log")" "$T/bk/audit-000001.log" \
    "$T/store/audit-000001.log" >/dev/null && ok || fail "the backup's log is not a prefix"
# an old file does not bring her back either
expect_rc 6 ck import "$T/people.jsonl"
expect_err 'line 1: ref: this customer was erased'

# text output carries the warning
expect_rc 0 ck --format text restore "$T/bk" --actor dpo
expect_out '^restored '
expect_out '^warning: .*kept at .*after the backup'

# the store is lost: a restore into a new directory needs the file
rm -rf "$T/store" "$T"/store.replaced-*
expect_rc 0 "$CK" --store "$T/new" restore "$T/bk" --actor dpo
expect_json 'd["replayed"] == 0 and d["kept"] is None'
expect_rc 0 "$CK" --store "$T/new" get --ref C-1 --purpose service --actor t
mkdir "$T/new2"
expect_rc 0 "$CK" --store "$T/new2" restore "$T/bk" --actor dpo --tombstones "$T/tombs"
expect_json 'd["replayed"] == 1 and d["tombstones"]["files"] == 3'
expect_rc 3 "$CK" --store "$T/new2" get --ref C-1 --purpose service --actor t
expect_rc 3 "$CK" --store "$T/new2" get --alias card-11 --purpose service --actor t
expect_rc 0 "$CK" --store "$T/new2" get --ref C-3 --purpose service --actor t
expect_rc 0 "$CK" --store "$T/new2" audit verify
no_file_holds "$T/new2" "$SID" >/dev/null && ok || fail "a file of the new store holds her id"

# a directory that is neither empty nor a store
mkdir "$T/junk"
echo x >"$T/junk/notes"
expect_rc 6 "$CK" --store "$T/junk" restore "$T/bk" --actor dpo
expect_err 'not empty'
# another store at the target
expect_rc 0 "$CK" --store "$T/other" --key-file "$T/store.key" init --no-passphrase
expect_rc 6 "$CK" --store "$T/other" restore "$T/bk" --actor dpo
expect_err 'another store'
# no backup there
expect_rc 3 "$CK" --store "$T/new3" restore "$T/nothing" --actor dpo

finish
