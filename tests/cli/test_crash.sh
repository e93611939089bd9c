#!/usr/bin/env bash
# test_crash.sh - crash loop: an import is killed with SIGKILL at a random
# moment, the store is reopened, and its invariants are checked:
#  - every subject present is whole: all its fields and its consent (a
#    line is committed entirely or not at all), nothing half-imported;
#  - the subjects present are exactly a prefix of the file's batches' lines
#    (a batch commits whole, in order);
#  - the audit log verifies, its torn tail (if the kill cut an entry)
#    repaired at the next open, reported as a warning and not as tampering;
#  - the store stays usable: the next import completes it.
# Then erasures, one by one and in batches (erase --batch), killed mid-way.
# CK_CRASH_ITERATIONS (default 50) and CK_CRASH_SEED (default: from the
# clock) are printed so a failure can be replayed.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ITER=${CK_CRASH_ITERATIONS:-50}
SEED=${CK_CRASH_SEED:-$(date +%s)}
echo "crash loop: $ITER iterations, seed $SEED (CK_CRASH_SEED=$SEED to replay)"
RANDOM=$SEED

export CKSTORE_DIR="$T/store" CKSTORE_KEY_FILE="$T/store.key"
ck() { "$CK" "$@"; }

cat >"$T/schema.json" <<'JSON'
{"fields": {"email": {"type": "string", "sensitivity": "personal", "identifying": true},
            "city":  {"type": "string", "sensitivity": "personal"},
            "n":     {"type": "int",    "sensitivity": "personal"}},
 "purposes": {"service": {"basis": "contract", "description": "d", "benefit": "b",
                          "fields": ["email", "city", "n"]},
              "news": {"basis": "consent", "description": "d", "benefit": "b",
                       "fields": ["email"]}}}
JSON

LINES=3000
python3 - "$LINES" >"$T/in.jsonl" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print('{"ref":"r%d","fields":{"email":"p%d@x.fr","city":"City %d","n":%d},'
          '"consent":{"news":true}}' % (i, i, i % 97, i))
PY

# check_store ITER : the invariants above, on the store as it is now.
check_store() {
    local it=$1
    # Reopening repairs a torn audit tail (a warning, exit 0).
    expect_rc 0 ck audit verify
    # Every subject the contract purpose can see, with all its fields.
    expect_rc 0 ck segment --purpose service --actor crash-test
    local present whole
    present=$(wc -l <"$T/out")
    whole=$(grep -c '"withheld":{}' "$T/out" || true)
    if [ "$present" != "$whole" ]; then
        echo "FAIL (iteration $it, seed $SEED): $((present - whole)) half-written subjects" >&2
        FAILS=$((FAILS + 1))
    else
        PASSES=$((PASSES + 1))
    fi
    # Exactly the first $present refs are there (batches commit in order).
    expect_rc 0 ck segment --purpose news --actor crash-test
    local consented
    consented=$(wc -l <"$T/out")
    if [ "$consented" != "$present" ]; then
        echo "FAIL (iteration $it, seed $SEED): $present subjects but $consented consents" >&2
        FAILS=$((FAILS + 1))
    else
        PASSES=$((PASSES + 1))
    fi
    if [ "$present" -gt 0 ] && [ "$present" -lt "$LINES" ]; then
        PARTIAL=$((PARTIAL + 1))
    fi
    if [ "$present" -gt 0 ]; then
        local last=$((present - 1))
        expect_rc 0 ck get --purpose service --actor crash-test --ref "r$last"
        expect_rc 3 ck get --purpose service --actor crash-test --ref "r$present"
    fi
}

PARTIAL=0
for it in $(seq 1 "$ITER"); do
    rm -rf "$T/store" "$T/store.key"
    ck init --no-passphrase </dev/null >/dev/null
    ck schema apply "$T/schema.json" >/dev/null
    # Small batches so that a kill lands between, and inside, commits.
    "$CK" import --batch 50 "$T/in.jsonl" >/dev/null 2>&1 &
    pid=$!
    # Somewhere between 5 ms and about 0.4 s.
    sleep "0.$(printf '%03d' $((5 + RANDOM % 400)))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    check_store "$it"
    # The store is still usable: importing again completes it.
    if [ "$it" -eq "$ITER" ]; then
        expect_rc 0 ck import "$T/in.jsonl"
        expect_out "\"imported\":$LINES"
        check_store final
    fi
done

# Erasures killed mid-way: run erasures one after the other in their own
# process group and kill the group at a random moment, a few times. Every
# erasure that printed its receipt stays erased; the one that was cut is
# either done or finished by erasing again; the others are whole; the log
# verifies.
for round in 1 2 3 4 5; do
    : >"$T/receipts"
    setsid bash -c 'for i in $(seq '"$((round * 100))"' '"$((round * 100 + 60))"'); do
        "$0" erase --ref "r$i" --reason crash-test --actor crash-test >>"$1" 2>/dev/null || exit
    done' "$CK" "$T/receipts" &
    pgid=$!
    sleep "0.$(printf '%03d' $((20 + RANDOM % 300)))"
    kill -9 -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
    done_n=$(grep -c '"erased":true' "$T/receipts" || true)
    for i in $(seq $((round * 100)) $((round * 100 + done_n - 1))); do
        expect_rc 3 ck get --purpose service --actor crash-test --ref "r$i"
    done
    # The one that may have been cut: erase it (again); done or not found.
    cut=$((round * 100 + done_n))
    got=0
    "$CK" erase --ref "r$cut" --reason crash-test --actor crash-test >/dev/null 2>&1 || got=$?
    if [ "$got" != 0 ] && [ "$got" != 3 ]; then
        echo "FAIL (erase round $round, seed $SEED): re-erasing r$cut exited $got" >&2
        FAILS=$((FAILS + 1))
    fi
    expect_rc 3 ck get --purpose service --actor crash-test --ref "r$cut"
    expect_rc 0 ck get --purpose service --actor crash-test --ref "r$((round * 100 + 90))"
    expect_out '"withheld":\{\}'
    expect_rc 0 ck audit verify
done

# Batch erasures killed mid-way: every ref of the batch is, after the kill,
# either whole or gone (its key destroyed: not found); erasing the batch
# again completes it (exit 0, or 3 for the refs already erased); the refs
# after it are whole; the log verifies.
for round in 1 2 3; do
    first=$((1000 + round * 300))
    seq -f 'r%.0f' "$first" $((first + 199)) >"$T/batch"
    "$CK" erase --batch "$T/batch" --reason crash-test --actor crash-test >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((10 + RANDOM % 250)))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    expect_rc 0 ck segment --purpose service --actor crash-test
    left=$(grep -c '"withheld":{}' "$T/out" || true)
    total=$(wc -l <"$T/out")
    if [ "$left" != "$total" ]; then
        echo "FAIL (batch round $round, seed $SEED): $((total - left)) half-erased subjects visible" >&2
        FAILS=$((FAILS + 1))
    fi
    got=0
    "$CK" erase --batch "$T/batch" --reason crash-test --actor crash-test >/dev/null 2>&1 || got=$?
    if [ "$got" != 0 ] && [ "$got" != 3 ]; then
        echo "FAIL (batch round $round, seed $SEED): erasing the batch again exited $got" >&2
        FAILS=$((FAILS + 1))
    fi
    for i in "$first" $((first + 57)) $((first + 131)) $((first + 199)); do
        expect_rc 3 ck get --purpose service --actor crash-test --ref "r$i"
    done
    expect_rc 0 ck get --purpose service --actor crash-test --ref "r$((first + 250))"
    expect_out '"withheld":\{\}'
    expect_rc 0 ck audit verify
done

# A crash loop whose kills never land mid-import proves nothing.
echo "$PARTIAL of $ITER kills landed in the middle of the import"
if [ "$PARTIAL" -lt $((ITER / 4)) ]; then
    echo "FAIL: too few kills landed mid-import ($PARTIAL)" >&2
    FAILS=$((FAILS + 1))
fi

finish
