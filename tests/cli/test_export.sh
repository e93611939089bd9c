#!/usr/bin/env bash
# test_export.sh - ckstore export: the whole export as JSON and the consent
# history as CSV, exit codes, the audit entry, and the values on standard
# output only (never on standard error, never in the audit log).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
never_on_stderr Rennes

export CKSTORE_DIR="$T/store" CKSTORE_KEY_FILE="$T/store.key"
ck() { "$CK" "$@"; }

# no_values FILE : none of the customers' values, refs or aliases is in FILE.
no_values() {
    local v
    for v in anne.moreau@example.fr Anne Rennes 1985-03-09 peanuts gluten-free C-1 card-42 \
        bob@example.org Brest C-2; do
        if grep -qF -- "$v" "$1"; then
            fail "$1 holds \"$v\""
        else
            ok
        fi
    done
}

expect_rc 0 ck init --no-passphrase
cat >"$T/schema.json" <<'JSON'
{"fields": {"email": {"type": "string", "sensitivity": "personal", "identifying": true},
            "first_name": {"type": "string", "sensitivity": "personal"},
            "city": {"type": "string", "sensitivity": "personal"},
            "born": {"type": "date", "sensitivity": "personal"},
            "points": {"type": "int", "sensitivity": "personal"},
            "diet": {"type": "list", "sensitivity": "special"}},
 "purposes": {
   "service": {"basis": "contract", "description": "Run the loyalty account",
               "benefit": "Your points", "fields": ["email", "first_name", "city", "points"]},
   "marketing.email": {"basis": "consent", "description": "Offers by e-mail",
                       "benefit": "Discounts", "fields": ["email", "first_name"],
                       "channel": {"type": "email", "field": "email",
                                   "cap": {"count": 2, "days": 30}}},
   "partners": {"basis": "consent", "description": "Share with partners you choose",
                "benefit": "Partner offers", "fields": ["email", "city"]}}}
JSON
expect_rc 0 ck schema apply "$T/schema.json"
expect_rc 0 ck put --ref C-1 --create email=anne.moreau@example.fr first_name=Anne city=Rennes \
    born=1985-03-09 points=120 'diet:=["peanuts","gluten-free"]'
json_of subject ID1
expect_rc 0 ck put --ref C-2 --create email=bob@example.org city=Brest
expect_rc 0 ck alias add --ref C-1 card-42
expect_rc 0 ck consent grant --ref C-1 --purpose marketing.email --actor crm \
    --source '=SUM(1,2) "web", form' --notice v1
expect_rc 0 ck consent withdraw --ref C-1 --purpose marketing.email --actor crm
expect_rc 0 ck consent grant --ref C-1 --purpose partners --actor crm --recipient acme \
    --recipient globex --fields email,city
expect_rc 0 ck consent grant --ref C-2 --purpose partners --actor crm --recipient globex
expect_rc 0 ck contact record --ref C-1 --channel email --actor mailer
expect_rc 0 ck get --ref C-1 --purpose partners --recipient acme --actor partner-feed
expect_rc 0 ck get --ref C-1 --purpose service --actor till
expect_rc 0 ck get --ref C-2 --purpose partners --recipient globex --actor bob-feed

# --------------------------------------------------------------------------
# help and usage
# --------------------------------------------------------------------------
expect_rc 0 ck export --help
expect_out '^usage: ckstore .* export SUBJECT --actor A'
expect_out 'Exit codes'
expect_out 'formula'
expect_rc 0 ck --help
expect_out '^  export '
expect_rc 2 ck export --ref C-1
expect_err 'export needs --actor A'
expect_rc 2 ck export --actor dpo
expect_err 'exactly one of'
expect_rc 2 ck export --ref C-1 --alias card-42 --actor dpo
expect_rc 2 ck export --ref C-1 --actor dpo --format xml
expect_err '--format must be json or csv'
expect_rc 2 ck export --ref C-1 --actor dpo --format csv --format json
expect_rc 2 ck export --ref C-1 --actor dpo extra
expect_rc 2 ck export --ref C-1 --actor dpo --bogus
expect_rc 2 ck --format text export --ref C-1 --actor dpo
expect_err 'machine-readable'
no_values "$T/err"

# unknown subject: 3; a look-up two subjects share: 6; nothing is printed
expect_rc 3 ck export --ref C-404 --actor dpo
[ -s "$T/out" ] && fail "output for an unknown subject" || ok
expect_err 'no subject'
expect_rc 3 ck export --alias no-such-card --actor dpo
expect_rc 3 ck export --subject 00000000000000000000000000000000 --actor dpo
expect_rc 0 ck put --ref C-3 --create email=Anne.Moreau@Example.FR
expect_rc 6 ck export --lookup email=anne.moreau@example.fr --actor dpo
[ -s "$T/out" ] && fail "output for an ambiguous look-up" || ok
no_values "$T/err"
expect_rc 0 ck audit log --action export
[ -s "$T/out" ] && fail "a refused export was audited" || ok

# --------------------------------------------------------------------------
# JSON: everything held, values on stdout only
# --------------------------------------------------------------------------
for sel in "--ref C-1" "--alias card-42" "--subject $ID1"; do
    # shellcheck disable=SC2086
    expect_rc 0 ck export $sel --actor dpo
    expect_json "d['subject'] == '$ID1'"
    [ -s "$T/err" ] && fail "export wrote to stderr" || ok
done
expect_json "d['format'] == 1 and set(d) == {'format','generated','subject','created','fields','lookups','consents','contacts','purposes','releases','history'}"
expect_json "d['fields']['email']['value'] == 'anne.moreau@example.fr' and d['fields']['email']['identifying']"
expect_json "d['fields']['first_name']['value'] == 'Anne' and d['fields']['city']['value'] == 'Rennes'"
expect_json "d['fields']['born'] == {'type':'date','sensitivity':'personal','identifying':False,'value':'1985-03-09','updated':d['fields']['born']['updated']}"
expect_json "d['fields']['points']['value'] == 120 and d['fields']['diet']['value'] == ['peanuts','gluten-free']"
expect_json "d['fields']['diet']['sensitivity'] == 'special' and len(d['fields']) == 6"
expect_json "d['lookups']['ref'] == 1 and d['lookups']['aliases'] == 1 and d['lookups']['identifying_fields'] == ['email']"
expect_json "'card-42' not in json.dumps(d) and 'C-1' not in json.dumps(d)"
expect_json "[r['state'] for r in d['consents']['history']] == ['granted','withdrawn','granted']"
expect_json "d['consents']['history'][0]['source'] == '=SUM(1,2) \"web\", form' and d['consents']['history'][0]['notice'] == 'v1'"
expect_json "d['consents']['current']['partners']['recipients'] == ['acme','globex'] and d['consents']['current']['partners']['fields'] == ['email','city']"
expect_json "d['consents']['current']['marketing.email']['state'] == 'withdrawn'"
expect_json "len(d['contacts']['email']['contacts']) == 1 and d['contacts']['email']['limit'] is None"
expect_json "d['purposes']['service']['description'] == 'Run the loyalty account' and d['purposes']['service']['benefit'] == 'Your points'"
expect_json "d['purposes']['service']['may_use'] and d['purposes']['service']['consent'] == 'none'"
expect_json "not d['purposes']['marketing.email']['may_use'] and d['purposes']['marketing.email']['consent'] == 'withdrawn'"
expect_json "d['purposes']['partners']['may_use'] and d['purposes']['marketing.email']['channel']['cap']['count'] == 2"
expect_json "[(r['actor'], r['purpose']) for r in d['releases']] == [('partner-feed','partners'), ('till','service')]"
expect_json "d['releases'][0]['recipient'] == 'acme' and d['releases'][0]['released'] == ['email','city']"
expect_json "d['releases'][1]['released'] == ['email','first_name','city','points'] and d['releases'][1]['withheld'] == {}"
expect_json "'bob-feed' not in json.dumps(d) and 'Brest' not in json.dumps(d)"
expect_json "[h['action'] for h in d['history']] == ['consent','consent','consent','contact','export','export']"

# a look-up that names one subject
expect_rc 0 ck export --lookup email=BOB@example.org --actor dpo
expect_json "d['fields']['email']['value'] == 'bob@example.org' and [r['actor'] for r in d['releases']] == ['bob-feed']"
expect_json "d['lookups']['aliases'] == 0 and d['contacts'] == {}"

# --------------------------------------------------------------------------
# CSV: the consent history
# --------------------------------------------------------------------------
expect_rc 0 ck export --ref C-1 --actor dpo --format csv
[ -s "$T/err" ] && fail "export wrote to stderr" || ok
head -n 1 "$T/out" | cmp -s - <(printf 'purpose,state,at,expires,fields,recipients,source,notice,collector,recorded\r\n') &&
    ok || fail "CSV header"
expect_out "^marketing.email,granted,[0-9T:Z-]+,,all,,\"'=SUM\\(1,2\\) \"\"web\"\", form\",v1,,"
python3 - "$T/out" <<'PY' && ok || fail "the CSV does not read back"
import csv, sys
raw = open(sys.argv[1], newline="").read()
assert raw.endswith("\r\n") and raw.count("\r\n") == 4, raw
rows = list(csv.reader(open(sys.argv[1], newline="")))
assert rows[0] == ["purpose", "state", "at", "expires", "fields", "recipients", "source",
                   "notice", "collector", "recorded"], rows[0]
assert [r[0:2] for r in rows[1:]] == [["marketing.email", "granted"],
                                      ["marketing.email", "withdrawn"],
                                      ["partners", "granted"]], rows
assert rows[1][6] == "'=SUM(1,2) \"web\", form", rows[1]
assert rows[3][4] == "email\ncity" and rows[3][5] == "acme\nglobex", rows[3]
assert all(len(r) == 10 and r[9].endswith("Z") for r in rows[1:]), rows
PY

# the exports are audited: subject pseudonym, format and counts, no value
expect_rc 0 ck audit log --action export --ref C-1
expect_json "len(rows) == 4 and all(r['actor'] == 'dpo' for r in rows)"
expect_json "rows[-1]['detail'] == {'format':'csv','consents':3}"
expect_json "rows[0]['detail'] == {'format':'json','consents':3,'fields':6,'releases':2}"
expect_rc 0 ck audit log
no_values "$T/out"
expect_rc 0 ck audit verify

finish
