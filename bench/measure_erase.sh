#!/usr/bin/env bash
# measure_erase.sh - the erasure figures of issue 6 through the CLI
# (docs/performance.md, "Erasure, batches and compaction"): a store of the
# peer data imported once, then 3 runs, each on its own copy: 50 single
# `erase` (each timed, process start included; median), one `erase --batch`
# of 1000 refs, `compact`.
#   CK=build-rel/ckstore DATA=import-100000.jsonl SCHEMA=bench-schema.json \
#       bash bench/measure_erase.sh
# DATA: the generator's lines with {"id":N, rewritten to {"ref":"N",;
# SCHEMA: the bench's fields and purposes plus a legal_obligation purpose
# with a hold (so every erasure keeps a hold). Both are made by
# `bash bench/measure_erase.sh --prepare GEN_OUTPUT` (below).
set -eu
if [ "${1:-}" = --prepare ]; then
    sed 's/^{"id":\([0-9]*\),/{"ref":"\1",/' "$2" >import-100000.jsonl
    python3 - <<'PY'
import json
F = ["email", "phone", "first_name", "last_name", "birth_date", "city", "postal_code",
     "loyalty_tier", "preferred_channel", "last_purchase_at", "total_spend_cents", "interests"]
fields = {f: {"type": "string", "sensitivity": "personal"} for f in F}
fields["email"]["identifying"] = fields["phone"]["identifying"] = True
scope = {"service": F,
         "personalization": ["first_name", "city", "loyalty_tier", "interests", "last_purchase_at"],
         "marketing.email": ["email", "first_name"], "marketing.sms": ["phone", "first_name"],
         "analytics": ["city", "postal_code", "loyalty_tier", "total_spend_cents", "birth_date"],
         "partners": ["email", "city"]}
P = {p: {"basis": "contract" if p == "service" else "consent", "description": "d",
         "benefit": "b", "fields": fl} for p, fl in scope.items()}
kept = ["last_name", "postal_code", "last_purchase_at", "total_spend_cents"]
P["invoicing"] = {"basis": "legal_obligation", "description": "Invoices kept 10 years (tax code)",
                  "benefit": "b", "fields": kept, "hold": {"fields": kept, "days": 3650}}
json.dump({"fields": fields, "purposes": P}, open("bench-schema.json", "w"))
PY
    exit 0
fi
DATA=${DATA:?DATA must name the import file}
SCHEMA=${SCHEMA:?SCHEMA must name the schema file}
CK=${CK:?CK must name a Release ckstore binary}
W=${WORKDIR:-/tmp/ck-erase-measure}
mkdir -p "$W" && rm -rf "$W/base" "$W/s"
export CKSTORE_KEY_FILE=$W/store.key
CKSTORE_DIR=$W/base "$CK" init --no-passphrase </dev/null >/dev/null
CKSTORE_DIR=$W/base "$CK" schema apply "$SCHEMA" >/dev/null
t0=$(date +%s.%N)
CKSTORE_DIR=$W/base "$CK" import --batch 100000 "$DATA"
echo "import: $(echo "$(date +%s.%N) - $t0" | bc) s"
for run in 1 2 3; do
    rm -rf "$W/s" && cp -a "$W/base" "$W/s"
    export CKSTORE_DIR=$W/s
    # single erasures: refs 1..50, each timed (process start included)
    : >"$W/single.$run"
    for i in $(seq 1 50); do
        a=$(date +%s%N)
        "$CK" erase --ref "$i" --reason art17-request --actor bench >/dev/null
        b=$(date +%s%N)
        echo $(((b - a) / 1000)) >>"$W/single.$run"
    done
    med=$(sort -n "$W/single.$run" | awk '{v[NR]=$1} END {print (v[25]+v[26])/2/1000}')
    # one batch of 1000 refs: 1001..2000
    seq 1001 2000 >"$W/refs"
    a=$(date +%s%N)
    "$CK" erase --batch "$W/refs" --reason art17-request --actor bench >"$W/batch.out.$run"
    b=$(date +%s%N)
    bs=$(echo "scale=3; ($b - $a) / 1000000000" | bc)
    n=$(grep -c '"erased":true' "$W/batch.out.$run")
    # compaction of the whole store
    before=$(du -sb "$W/s" | cut -f1)
    a=$(date +%s%N)
    "$CK" compact --actor bench >/dev/null
    b=$(date +%s%N)
    cs=$(echo "scale=3; ($b - $a) / 1000000000" | bc)
    after=$(du -sb "$W/s" | cut -f1)
    echo "run $run: single erase median ${med} ms; batch $n in ${bs} s = $(echo "$n / $bs" | bc)/s; compact ${cs} s ($before -> $after bytes)"
done
