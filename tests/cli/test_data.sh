#!/usr/bin/env bash
# End-to-end: put, alias and import through the CLI (docs/cli.md): writes,
# updates, deletions, per-line import errors, exit codes - and no customer
# value ever quoted in an error message.
. "$(dirname "$0")/lib.sh"
never_on_stderr SECRET-Badjson SECRET-noref +33612345678 +33698765432 Toulouse Nineteen Thirteen Alicia

S="$T/store"
K="$T/store.key"
ck() { "$CK" --store "$S" --key-file "$K" "$@"; }
# expect_no_err TEXT : the last stderr does not contain TEXT (a value).
expect_no_err() {
    if grep -qF -- "$1" "$T/err"; then
        fail "stderr quotes a value ($1):"
        sed 's/^/  stderr: /' "$T/err" >&2
    else
        ok
    fi
}

# get_service REF : release everything the contract purpose may see.
get_service() { expect_rc "${2:-0}" ck get --purpose service --actor test --ref "$1"; }

expect_rc 0 ck init
cat >"$T/schema.json" <<'JSON'
{"fields": {
   "email":       {"type": "string", "sensitivity": "personal", "identifying": true},
   "phone":       {"type": "string", "sensitivity": "personal", "identifying": true},
   "first_name":  {"type": "string", "sensitivity": "personal"},
   "city":        {"type": "string", "sensitivity": "personal"},
   "postal_code": {"type": "string", "sensitivity": "personal"},
   "birth_date":  {"type": "date",   "sensitivity": "personal", "retention_days": 1095},
   "allergies":   {"type": "string", "sensitivity": "special"},
   "interests":   {"type": "list",   "sensitivity": "personal"},
   "visits":      {"type": "int",    "sensitivity": "personal"}},
 "purposes": {
   "marketing.email": {"basis": "consent", "description": "Offers by e-mail",
                       "benefit": "Member-only discounts", "fields": ["email", "first_name"],
                       "channel": {"type": "email", "field": "email", "cap": {"count": 2, "days": 30}}},
   "analytics": {"basis": "legitimate_interest", "description": "Plan stores",
                 "benefit": "Stores planned for you", "fields": ["birth_date", "postal_code"],
                 "minimize": {"birth_date": "year", "postal_code": "prefix:2"}},
   "service": {"basis": "contract", "description": "Run the loyalty account",
               "benefit": "Your points", "fields": ["email", "phone", "first_name", "city",
               "postal_code", "birth_date", "interests", "visits"]}}}
JSON
expect_rc 0 ck schema apply "$T/schema.json"

# --------------------------------------------------------------------------
# help and usage
# --------------------------------------------------------------------------
for cmd in put import alias; do
    expect_rc 0 "$CK" "$cmd" --help
    expect_out "^usage: ckstore .* $cmd "
    expect_out "Exit codes"
done
expect_rc 2 ck put city=Paris
expect_err "exactly one of --subject, --ref, --lookup, --pseudonym, --alias"
expect_rc 2 ck put --ref C-1 --alias x city=Paris
expect_rc 2 ck put --ref C-1
expect_err "at least one FIELD=VALUE"
expect_rc 2 ck put --subject 00000000000000000000000000000000 --create city=Paris
expect_err "--create goes with --ref only"
expect_rc 2 ck put --ref C-1 --bogus city=Paris
expect_err "unknown option --bogus"
expect_rc 2 ck put --ref C-1 --bogus=secret-value city=Paris
expect_no_err "secret-value"
# An argument that is not FIELD=VALUE is named by position, never quoted.
expect_rc 2 ck put --ref C-1 --create city=Paris alice@example.org
expect_err "argument 2 is not FIELD=VALUE"
expect_no_err "alice@example.org"
expect_rc 2 ck put --ref C-1 --create =Paris
expect_err "argument 1 has no field name"
expect_rc 2 ck put --ref C-1 --create city=Paris city=Lyon
expect_err "field city is given twice"
expect_rc 2 ck put --ref C-1 --lookup novalue city=Paris
expect_err "--lookup needs FIELD=VALUE"
expect_rc 2 ck put --pseudonym abc city=Paris
expect_err "--pseudonym needs the context"
expect_rc 2 ck put --ref C-1 --pseudonym-purpose service city=Paris
expect_err "go with --pseudonym only"

# --------------------------------------------------------------------------
# put: create, update, types, deletion
# --------------------------------------------------------------------------
# Without --create an unknown ref is not found, and nothing is created.
expect_rc 3 ck put --ref C-1 city=Paris
expect_rc 0 ck put --ref C-1 --create email=Alice@Example.org first_name=Alice city=Paris \
    birth_date=1990-05-17 'interests:=["wine","cheese"]' visits=3 postal_code=75011
expect_out '^\{"subject":"[0-9a-f]{32}"\}$'
json_of subject ID1
get_service C-1
expect_json 'd["released"] == {"email": "Alice@Example.org", "first_name": "Alice", "city": "Paris", "postal_code": "75011", "birth_date": "1990-05-17", "interests": ["wine", "cheese"], "visits": 3}'
expect_json 'd["withheld"] == {"phone": "unset"}'

# Update: the same subject; fields not named are kept. --create on an
# existing ref updates it too.
expect_rc 0 ck put --ref C-1 city=Lyon visits:=4
expect_out "^\\{\"subject\":\"$ID1\"\\}$"
expect_rc 0 ck put --ref C-1 --create first_name=Alicia
expect_out "$ID1"
get_service C-1
expect_json 'd["released"]["city"] == "Lyon" and d["released"]["visits"] == 4 and d["released"]["first_name"] == "Alicia" and d["released"]["email"] == "Alice@Example.org"'

# Every other way to name the subject reaches it.
expect_rc 0 ck put --subject "$ID1" phone=+33612345678
expect_out "$ID1"
expect_rc 0 ck put --lookup email=ALICE@example.ORG postal_code=69001
expect_out "$ID1"
expect_rc 0 ck --format text put --lookup phone=+33612345678 visits=5
expect_out "^subject: $ID1$"
expect_rc 3 ck put --subject 00000000000000000000000000000000 city=Paris
expect_rc 6 ck put --subject not-hex city=Paris

# An identifying field's look-up follows its value; a ref and an alias are
# trimmed; a phone number is looked up in E.164 whatever its spacing.
expect_rc 0 ck put --ref C-3 --create email=old@example.org phone=+33698765432
json_of subject ID3
expect_rc 0 ck put --ref ' C-3 ' email=new@example.org
expect_out "$ID3"
expect_rc 3 ck put --lookup email=old@example.org city=Paris
expect_err "no subject has this email"
expect_rc 0 ck put --lookup email=NEW@example.org city=Paris
expect_out "$ID3"
expect_rc 0 ck put --lookup 'phone=+33 6 98 76 54 32' email=
expect_out "$ID3"
expect_rc 3 ck put --lookup email=new@example.org city=Paris

# Wrong types: exit 6, the field named, the value never quoted, nothing
# written (all or none).
expect_rc 6 ck put --ref C-1 city=Nantes birth_date=SECRET-1990
expect_err "birth_date"
expect_no_err "SECRET-1990"
expect_rc 6 ck put --ref C-1 birth_date=2023-02-29
expect_err "birth_date: not a real calendar date"
expect_rc 6 ck put --ref C-1 visits=forty-two-SECRET
expect_err "visits"
expect_no_err "forty-two-SECRET"
expect_rc 6 ck put --ref C-1 'first_name:=4242424242'
expect_err "first_name"
expect_no_err "4242424242"
expect_rc 6 ck put --ref C-1 'interests:="SECRET-interest"'
expect_err "interests"
expect_no_err "SECRET-interest"
expect_rc 6 ck put --ref C-1 'interests:=["a",SECRET-json'
expect_err "interests: the value after := is not valid JSON"
expect_no_err "SECRET-json"
expect_rc 6 ck put --ref C-1 nickname=Al
expect_err 'unknown field "nickname"'
get_service C-1
expect_json 'd["released"]["city"] == "Lyon" and d["released"]["birth_date"] == "1990-05-17"'

# Deletion: FIELD= and FIELD:=null.
expect_rc 0 ck put --ref C-1 city= 'interests:=null'
get_service C-1
expect_json 'd["withheld"].get("city") == "unset" and d["withheld"].get("interests") == "unset" and "first_name" in d["released"]'
# An empty list is a value, not a deletion.
expect_rc 0 ck put --ref C-1 'interests:=[]'
get_service C-1
expect_json 'd["released"].get("interests") == []'

# --------------------------------------------------------------------------
# alias
# --------------------------------------------------------------------------
expect_rc 0 ck put --ref C-2 --create first_name=Bob
json_of subject ID2
expect_rc 2 ck alias
expect_rc 2 ck alias frobnicate --ref C-1 card-1
expect_rc 2 ck alias add --ref C-1
expect_err "needs one ALIAS"
expect_rc 2 ck alias add card-1
expect_rc 0 ck alias add --ref C-1 card-0001
expect_out '^\{"added":true\}$'
expect_rc 0 ck alias add --ref C-1 card-0001 # already its own: fine
expect_rc 0 ck get --purpose service --actor test --alias card-0001 --fields first_name
expect_json 'd["released"] == {"first_name": "Alicia"}'
expect_rc 0 ck put --alias card-0001 city=Nice
expect_out "$ID1"
# Held by another subject: exit 6 with a clear message; C-2 gets nothing.
expect_rc 6 ck alias add --ref C-2 card-0001
expect_err "alias add: the alias is already held by another subject"
expect_rc 0 ck put --alias card-0001 visits=6
expect_out "$ID1"
expect_rc 0 ck alias add --subject "$ID2" bob-app
expect_rc 0 ck put --alias bob-app city=Brest
expect_out "$ID2"
expect_rc 3 ck alias add --ref C-404 card-9
expect_rc 3 ck alias remove --ref C-2 card-0001 # not C-2's
expect_rc 0 ck alias remove --ref C-1 card-0001
expect_out '^\{"removed":true\}$'
expect_rc 3 ck get --purpose service --actor test --alias card-0001
expect_rc 3 ck alias remove --ref C-1 card-0001
# Free again: another subject may take it.
expect_rc 0 ck alias add --ref C-2 card-0001
expect_rc 0 ck put --alias card-0001 visits=1
expect_out "$ID2"

# --------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------
expect_rc 2 ck import
expect_rc 2 ck import a b
expect_rc 3 ck import "$T/missing.jsonl"
expect_rc 2 ck import --batch 0 "$T/missing.jsonl"
expect_rc 2 ck import --batch 12x "$T/missing.jsonl"

# Good lines 1, 6, 13 (an update of C-1), 14; every other line is bad in
# its own way; line 5 is blank.
cat >"$T/mixed.jsonl" <<'EOF'
{"ref":"C-10","fields":{"email":"ten@example.org","first_name":"Ten","city":"Paris"},"consent":{"marketing.email":true}}
{"ref":"C-11","fields":{"city":"SECRET-Badjson"
[{"ref":"C-12"}]
{"ref":"C-12","feilds":{"city":"Paris"}}

{"ref":"C-13","fields":{"first_name":"Thirteen","birth_date":"1985-12-31"}}
{"ref":"C-14","fields":{"nickname":"SECRET-nick"}}
{"ref":"C-15","fields":{"interests":"SECRET-notalist"}}
{"ref":"C-16","fields":{"birth_date":"2023-02-29"}}
{"ref":"C-17","consent":{"marketing.email":"SECRET-yes"}}
{"ref":"C-18","consent":{"telemarketing":true}}
{"fields":{"city":"SECRET-noref"}}
{"ref":"C-1","fields":{"city":"Toulouse"}}
{"ref":"C-19","fields":{"email":"nineteen@example.org","first_name":"Nineteen"},"consent":{"marketing.email":{"state":"granted","fields":["email"],"source":"web-form-v3"},"analytics":{"state":"objected"}}}
EOF
expect_rc 6 ck import "$T/mixed.jsonl"
expect_out '^\{"imported":4,"rejected":9,"created":3,"updated":1,"consents":3\}$'
expect_err '^ckstore: import: line 2: invalid JSON'
expect_err '^ckstore: import: line 3: not a JSON object$'
expect_err '^ckstore: import: line 4: unknown key "feilds"'
expect_err '^ckstore: import: line 7: unknown field "nickname"$'
expect_err '^ckstore: import: line 8: field interests: '
expect_err '^ckstore: import: line 9: field birth_date: not a real calendar date$'
expect_err '^ckstore: import: line 10: consent\.marketing\.email: expected true, false or an object$'
expect_err '^ckstore: import: line 11: unknown purpose "telemarketing"$'
expect_err '^ckstore: import: line 12: "ref" is required'
expect_err '^ckstore: import: 9 lines rejected$'
n=$(grep -c '^ckstore: import: line ' "$T/err" || true)
[ "$n" = 9 ] && ok || fail "expected 9 rejected lines on stderr, got $n"
for good in 1 5 6 13 14; do
    if grep -q "line $good:" "$T/err"; then fail "line $good was reported"; else ok; fi
done
if grep -q SECRET "$T/err"; then fail "an import message quotes a value:"; cat "$T/err" >&2; else ok; fi
cp "$T/err" "$T/mixed.err"
# Exactly the good lines landed.
get_service C-10
expect_json 'd["released"] == {"email": "ten@example.org", "first_name": "Ten", "city": "Paris"}'
get_service C-13
expect_json 'd["released"] == {"first_name": "Thirteen", "birth_date": "1985-12-31"}'
get_service C-19
expect_json 'd["released"]["first_name"] == "Nineteen"'
get_service C-1
expect_json 'd["released"]["city"] == "Toulouse" and d["released"]["first_name"] == "Alicia"'
for bad in C-11 C-12 C-14 C-15 C-16 C-17 C-18; do
    get_service "$bad" 3
done
# The consents came with them: true = all fields, the file's base name as
# the source; an object's own source and scope; an objection.
expect_rc 0 ck get --purpose marketing.email --actor test --ref C-10
expect_json 'd["released"] == {"email": "ten@example.org", "first_name": "Ten"}'
expect_rc 0 ck consent show --ref C-10
expect_json 'd["current"]["marketing.email"]["source"] == "mixed.jsonl" and d["current"]["marketing.email"]["state"] == "granted"'
expect_rc 0 ck get --purpose marketing.email --actor test --ref C-19
expect_json 'd["released"] == {"email": "nineteen@example.org"} and d["withheld"] == {"first_name": "no_consent"}'
expect_rc 0 ck consent show --ref C-19
expect_json 'd["current"]["marketing.email"]["source"] == "web-form-v3" and d["current"]["analytics"]["state"] == "objected"'
expect_rc 0 ck get --purpose analytics --actor test --ref C-19
expect_json 'd["withheld"] == {"birth_date": "objected", "postal_code": "objected"}'

# The same file in batches of 2: the same line numbers, now all updates.
expect_rc 6 ck import --batch 2 --source batch-test --actor importer "$T/mixed.jsonl"
expect_out '^\{"imported":4,"rejected":9,"created":0,"updated":4,"consents":3\}$'
diff <(grep 'line ' "$T/mixed.err") <(grep 'line ' "$T/err") >/dev/null && ok ||
    fail "rejections differ with --batch 2: $(diff <(grep 'line ' "$T/mixed.err") <(grep 'line ' "$T/err"))"
expect_rc 0 ck consent show --ref C-10
expect_json 'd["current"]["marketing.email"]["source"] == "batch-test" and len(d["history"]) == 2'
expect_rc 0 ck audit log --actor importer --action import
expect_out '"action":"import"'

# An all-good file: exit 0. Again: every line an update.
{
    for i in $(seq 1 50); do
        printf '{"ref":"G-%03d","fields":{"first_name":"G%d","visits":%d}}\n' "$i" "$i" "$i"
    done
    printf '\n\n' # blank lines are skipped
    printf '{"ref":"G-051","fields":{"city":"Lille"}}' # no final newline
} >"$T/good.jsonl"
expect_rc 0 ck import "$T/good.jsonl"
expect_out '^\{"imported":51,"rejected":0,"created":51,"updated":0,"consents":0\}$'
[ ! -s "$T/err" ] && ok || fail "a clean import wrote to stderr: $(cat "$T/err")"
expect_rc 0 ck import --batch 7 "$T/good.jsonl"
expect_out '^\{"imported":51,"rejected":0,"created":0,"updated":51,"consents":0\}$'
get_service G-051
expect_json 'd["released"] == {"city": "Lille"}'
get_service G-042
expect_json 'd["released"] == {"first_name": "G42", "visits": 42}'
expect_rc 0 ck --format text import "$T/good.jsonl"
expect_out '^imported 51 \(created 0, updated 51\), rejected 0, consents 0$'

# Standard input with "-": the source is "stdin".
printf '{"ref":"S-1","fields":{"first_name":"Stdin"},"consent":{"marketing.email":true}}\n{"ref":"S-2"\n' >"$T/stdin.jsonl"
rc=0
ck import - <"$T/stdin.jsonl" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 6 ] && ok || fail "import - : exit $rc"
expect_out '^\{"imported":1,"rejected":1,"created":1,"updated":0,"consents":1\}$'
expect_err '^ckstore: import: line 2: invalid JSON'
expect_rc 0 ck consent show --ref S-1
expect_json 'd["current"]["marketing.email"]["source"] == "stdin"'
# An empty input imports nothing, successfully.
rc=0
ck import - </dev/null >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] && ok || fail "import of empty stdin: exit $rc"
expect_out '^\{"imported":0,"rejected":0,"created":0,"updated":0,"consents":0\}$'

# A larger file, streamed in several 1 MiB chunks (lines span chunks).
python3 - "$T/big.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(12000):
        f.write(json.dumps({"ref": "B-%05d" % i, "fields": {"first_name": "x" * 150, "visits": i}}) + "\n")
PY
[ "$(stat -c %s "$T/big.jsonl")" -gt 2097152 ] && ok || fail "big.jsonl is under 2 MiB"
expect_rc 0 ck import "$T/big.jsonl"
expect_out '^\{"imported":12000,"rejected":0,"created":12000,"updated":0,"consents":0\}$'
get_service B-11999
expect_json 'd["released"]["visits"] == 11999'

# No schema: import and put say so (exit 3).
S2="$T/store2"
expect_rc 0 "$CK" --store "$S2" --key-file "$K" init
expect_rc 3 "$CK" --store "$S2" --key-file "$K" import "$T/good.jsonl"
expect_rc 3 "$CK" --store "$S2" --key-file "$K" put --ref X --create city=Paris
: >"$T/empty.jsonl"
expect_rc 3 "$CK" --store "$S2" --key-file "$K" import "$T/empty.jsonl"

# No value reached the audit log.
expect_rc 0 ck audit log
for v in Alice@Example.org Toulouse ten@example.org Thirteen; do
    if grep -qF "$v" "$T/out"; then fail "the audit log holds a value ($v)"; else ok; fi
done

finish
