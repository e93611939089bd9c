#!/usr/bin/env bash
# End-to-end: consent, get, segment and contact through the CLI - the
# release rules of DESIGN.md section 4 as a user of the tool sees them.
. "$(dirname "$0")/lib.sh"
never_on_stderr peanuts Atlantis

S="$T/store"
K="$T/store.key"
ck() { "$CK" --store "$S" --key-file "$K" "$@"; }
# get PURPOSE REF [ARGS...] : release for PURPOSE, exit 0 expected.
get() {
    local p=$1 r=$2
    shift 2
    expect_rc 0 ck get --purpose "$p" --actor crm --ref "$r" "$@"
}

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
   "interests":   {"type": "list",   "sensitivity": "personal"}},
 "purposes": {
   "marketing.email": {"basis": "consent", "description": "Offers by e-mail",
                       "benefit": "Member-only discounts", "fields": ["email", "first_name"],
                       "channel": {"type": "email", "field": "email", "cap": {"count": 2, "days": 30}}},
   "analytics": {"basis": "legitimate_interest", "description": "Plan stores",
                 "benefit": "Stores planned for you", "fields": ["birth_date", "postal_code"],
                 "minimize": {"birth_date": "year", "postal_code": "prefix:2"}},
   "service": {"basis": "contract", "description": "Run the loyalty account",
               "benefit": "Your points", "fields": ["email", "phone", "first_name", "city",
               "postal_code", "birth_date", "interests"]},
   "personalization": {"basis": "consent", "description": "Tailored offers",
                       "benefit": "Offers that fit you",
                       "fields": ["first_name", "city", "interests", "allergies"]},
   "partners": {"basis": "consent", "description": "Share with partners you choose",
                "benefit": "Partner offers", "fields": ["email", "city"]}}}
JSON
expect_rc 0 ck schema apply "$T/schema.json"
expect_rc 0 ck put --ref C-A --create email=Anne@Example.COM first_name=Anne city=Paris \
    birth_date=1990-05-17 postal_code=75011 allergies=peanuts 'interests:=["wine","books"]'
json_of subject IDA
expect_rc 0 ck put --ref C-B --create email=bob@example.org first_name=Bob city=Paris \
    birth_date=1980-01-02 postal_code=69001
expect_rc 0 ck put --ref C-C --create email=carol@example.org first_name=Carol city=Lyon

# --------------------------------------------------------------------------
# help and usage
# --------------------------------------------------------------------------
for cmd in consent get segment contact; do
    expect_rc 0 "$CK" "$cmd" --help
    expect_out "^usage: ckstore .* $cmd "
    expect_out "Exit codes"
done
expect_rc 2 ck get --actor crm --ref C-A
expect_err "get needs --purpose P and --actor A"
expect_rc 2 ck get --purpose service --ref C-A
expect_rc 2 ck get --purpose service --actor crm
expect_err "exactly one of"
expect_rc 2 ck get --purpose service --actor crm --ref C-A --subject "$IDA"
expect_rc 2 ck get --purpose service --actor crm --ref C-A extra
expect_rc 2 ck get --purpose service --actor crm --ref C-A --fields email,,city
expect_err "an empty name"
expect_rc 2 ck get --purpose service --actor crm --ref C-A --fields email --fields city
expect_rc 6 ck get --purpose telemarketing --actor crm --ref C-A
expect_err 'unknown purpose "telemarketing"'
expect_rc 6 ck get --purpose service --actor crm --ref C-A --fields email,shoe_size
expect_err 'unknown field "shoe_size"'
expect_rc 3 ck get --purpose service --actor crm --ref C-404
expect_rc 2 ck consent
expect_rc 2 ck consent frobnicate --ref C-A
expect_rc 2 ck consent grant --ref C-A --actor dpo
expect_err "consent grant needs --purpose P and --actor A"
expect_rc 2 ck consent grant --ref C-A --purpose marketing.email
expect_rc 2 ck consent grant --purpose marketing.email --actor dpo
expect_rc 6 ck consent grant --ref C-A --purpose telemarketing --actor dpo
expect_err 'unknown purpose "telemarketing"'
expect_rc 6 ck consent grant --ref C-A --purpose marketing.email --actor dpo --fields city
expect_err "field city is not one of the purpose's fields"
expect_rc 3 ck consent grant --ref C-404 --purpose marketing.email --actor dpo
expect_rc 3 ck consent show --ref C-404

# --------------------------------------------------------------------------
# consent: grant, withdraw, refuse, scope
# --------------------------------------------------------------------------
get marketing.email C-A
expect_json 'd["released"] == {} and d["withheld"] == {"email": "no_consent", "first_name": "no_consent"}'
expect_json 'd["purpose"] == "marketing.email" and len(d["subject"]) == 43'

expect_rc 0 ck consent grant --ref C-A --purpose marketing.email --actor dpo --source web-form \
    --notice v3 --collector shop-42
expect_out '^\{"recorded":true,"purpose":"marketing.email","state":"granted"\}$'
get marketing.email C-A
expect_json 'd["released"] == {"email": "Anne@Example.COM", "first_name": "Anne"} and d["withheld"] == {}'

expect_rc 0 ck consent withdraw --ref C-A --purpose marketing.email --actor dpo
expect_out '"state":"withdrawn"'
get marketing.email C-A
expect_json 'd["released"] == {} and d["withheld"] == {"email": "withdrawn", "first_name": "withdrawn"}'
expect_rc 0 ck --format text get --purpose marketing.email --actor crm --ref C-A
expect_out '^email: \(withheld: withdrawn\)$'
expect_out '^first_name: \(withheld: withdrawn\)$'

expect_rc 0 ck consent refuse --ref C-A --purpose marketing.email --actor dpo
expect_out '"state":"refused"'
get marketing.email C-A
expect_json 'd["withheld"] == {"email": "refused", "first_name": "refused"}'

# A scope: the fields outside it are withheld no_consent.
expect_rc 0 ck consent grant --ref C-A --purpose marketing.email --actor dpo --fields first_name
get marketing.email C-A
expect_json 'd["released"] == {"first_name": "Anne"} and d["withheld"] == {"email": "no_consent"}'
expect_rc 0 ck --format text get --purpose marketing.email --actor crm --ref C-A
expect_out '^first_name: Anne$'
expect_out '^email: \(withheld: no_consent\)$'

# show: the current state and the whole history, oldest first.
expect_rc 0 ck consent show --ref C-A
expect_json 'd["current"]["marketing.email"]["state"] == "granted" and d["current"]["marketing.email"]["fields"] == ["first_name"]'
expect_json '[r["state"] for r in d["history"]] == ["granted", "withdrawn", "refused", "granted"]'
expect_json 'd["history"][0]["source"] == "web-form" and d["history"][0]["notice"] == "v3" and d["history"][0]["collector"] == "shop-42" and d["history"][0]["fields"] == "all"'
expect_rc 0 ck --format text consent show --ref C-A
expect_out '^current:$'
expect_out '^  marketing\.email: state=granted fields=first_name '
expect_out '^history:$'
expect_out '^  marketing\.email: state=withdrawn '
expect_rc 0 ck consent show --ref C-C
expect_json 'd["current"] == {} and d["history"] == []'

# --------------------------------------------------------------------------
# recipients
# --------------------------------------------------------------------------
expect_rc 0 ck consent grant --ref C-A --purpose partners --actor dpo --recipient acme \
    --recipient globex
get partners C-A --recipient acme
expect_json 'd["released"] == {"email": "Anne@Example.COM", "city": "Paris"}'
get partners C-A --recipient globex
expect_json 'len(d["released"]) == 2'
get partners C-A --recipient initech
expect_json 'd["released"] == {} and d["withheld"] == {"email": "recipient", "city": "recipient"}'
expect_rc 0 ck consent show --ref C-A
expect_json 'd["current"]["partners"]["recipients"] == ["acme", "globex"]'
# A consent naming no recipient covers no recipient.
expect_rc 0 ck consent grant --ref C-B --purpose partners --actor dpo
get partners C-B --recipient acme
expect_json 'd["withheld"] == {"email": "recipient", "city": "recipient"}'
get partners C-B
expect_json 'd["released"] == {"email": "bob@example.org", "city": "Paris"}'
# Even a contract purpose needs a consent naming the recipient.
get service C-B --recipient acme --fields email
expect_json 'd["withheld"] == {"email": "recipient"}'

# --------------------------------------------------------------------------
# special categories: only an explicit consent naming the field
# --------------------------------------------------------------------------
expect_rc 0 ck consent grant --ref C-A --purpose personalization --actor dpo
get personalization C-A
expect_json 'd["withheld"] == {"allergies": "special_category"} and d["released"]["city"] == "Paris"'
expect_json 'd["released"]["interests"] == ["wine", "books"]'
expect_rc 0 ck consent grant --ref C-A --purpose personalization --actor dpo \
    --fields first_name,allergies
get personalization C-A
expect_json 'd["released"] == {"first_name": "Anne", "allergies": "peanuts"} and d["withheld"] == {"city": "no_consent", "interests": "no_consent"}'
# Never released for a purpose that does not declare it.
get service C-A --fields allergies
expect_json 'd["withheld"] == {"allergies": "not_in_purpose"}'

# --------------------------------------------------------------------------
# legitimate interest, minimisation, objection
# --------------------------------------------------------------------------
get analytics C-A
expect_json 'd["released"] == {"birth_date": 1990, "postal_code": "75"}'
expect_rc 0 ck consent object --ref C-B --purpose analytics --actor dpo
expect_out '"state":"objected"'
get analytics C-B
expect_json 'd["withheld"] == {"birth_date": "objected", "postal_code": "objected"}'

# --------------------------------------------------------------------------
# expiry
# --------------------------------------------------------------------------
expect_rc 0 ck consent grant --ref C-B --purpose marketing.email --actor dpo --expires 2000-01-01
get marketing.email C-B
expect_json 'd["withheld"] == {"email": "expired", "first_name": "expired"}'
expect_rc 0 ck consent grant --ref C-B --purpose marketing.email --actor dpo \
    --expires 2001-02-03T04:05:06.5+02:00
get marketing.email C-B
expect_json 'd["withheld"]["email"] == "expired"'
expect_rc 0 ck consent grant --ref C-B --purpose marketing.email --actor dpo \
    --expires 2999-01-01T00:00:00Z
get marketing.email C-B
expect_json 'd["released"] == {"email": "bob@example.org", "first_name": "Bob"}'
# A date holds through that whole day, UTC: it expires at the next midnight.
expect_rc 0 ck consent grant --ref C-B --purpose marketing.email --actor dpo --expires 2998-06-15
expect_rc 0 ck consent show --ref C-B
expect_json 'd["current"]["marketing.email"]["expires"] == "2998-06-16T00:00:00Z"'
expect_rc 0 ck consent grant --ref C-B --purpose marketing.email --actor dpo --expires 2024-02-29
expect_rc 0 ck consent grant --ref C-B --purpose marketing.email --actor dpo \
    --expires 2998-06-15T12:30:00+02:00
expect_rc 0 ck consent show --ref C-B
expect_json 'd["current"]["marketing.email"]["expires"] == "2998-06-15T10:30:00Z"'
expect_json 'd["history"][-2]["expires"] == "2024-03-01T00:00:00Z"'
for bad in 2023-02-29 2100-02-29 2024-13-01 2024-04-31 2024-00-10 0000-01-01 1969-12-31 \
    2024-1-01 2024-01-01T24:00:00Z 2024-01-01T10:60:00Z 2024-01-01T10:00:60Z \
    2024-01-01T10:00:00 2024-01-01T10:00:00+0200 2024-01-01T10:00:00.Z 2024-01-01x tomorrow; do
    expect_rc 2 ck consent grant --ref C-B --purpose marketing.email --actor dpo --expires "$bad"
    expect_err "--expires needs a real date"
done
expect_rc 0 ck consent show --ref C-B
expect_json 'd["current"]["marketing.email"]["expires"] == "2998-06-15T10:30:00Z"'
# Leave C-B with a plain grant for the segment and contact checks below.
expect_rc 0 ck consent grant --ref C-B --purpose marketing.email --actor dpo

# --------------------------------------------------------------------------
# look-ups, pseudonyms, aliases
# --------------------------------------------------------------------------
# An e-mail look-up ignores case; the value comes back as written.
expect_rc 0 ck get --purpose service --actor crm --lookup email=anne@example.com --fields email
expect_json 'd["released"] == {"email": "Anne@Example.COM"}'
expect_rc 0 ck get --purpose service --actor crm --lookup 'email=  ANNE@EXAMPLE.COM ' --fields email
expect_json 'd["released"] == {"email": "Anne@Example.COM"}'
expect_rc 3 ck get --purpose service --actor crm --lookup email=nobody@example.com
expect_rc 6 ck get --purpose service --actor crm --lookup city=Paris
expect_err "not identifying"
expect_rc 6 ck get --purpose service --actor crm --lookup shoe=42
# A shared (family) address: ambiguous, exit 6.
expect_rc 0 ck put --ref C-D --create email=BOB@example.org first_name=Dora city=Nice
expect_rc 6 ck get --purpose service --actor crm --lookup email=bob@example.org
expect_err "subjects have this email"

# The pseudonym an answer gives reaches the subject again in its context...
get service C-A --fields first_name
json_of subject PS
expect_rc 0 ck get --purpose service --actor crm --pseudonym "$PS" --fields first_name
expect_json "d['subject'] == '$PS' and d['released'] == {'first_name': 'Anne'}"
# ...and nowhere else: another purpose does not know it.
expect_rc 3 ck get --purpose analytics --actor crm --pseudonym "$PS"
expect_err "no subject has this pseudonym in this context"
# Naming its context explicitly resolves it; the answer carries the
# pseudonym of the request's own context.
expect_rc 0 ck get --purpose analytics --actor crm --pseudonym "$PS" --pseudonym-purpose service
expect_json "d['subject'] != '$PS' and d['released']['birth_date'] == 1990"
json_of subject PSAN
expect_rc 0 ck get --purpose analytics --actor crm --pseudonym "$PSAN"
expect_json "d['subject'] == '$PSAN'"
# With a recipient, the context is (purpose, recipient).
get partners C-A --recipient acme
json_of subject PSACME
get partners C-A --recipient globex
json_of subject PSGLOBEX
[ -n "$PSACME" ] && [ "$PSACME" != "$PSGLOBEX" ] && ok || fail "two recipients got the same pseudonym"
expect_rc 0 ck get --purpose partners --actor crm --recipient acme --pseudonym "$PSACME"
expect_json "d['released']['email'] == 'Anne@Example.COM'"
expect_rc 3 ck get --purpose partners --actor crm --pseudonym "$PSACME"
expect_rc 3 ck get --purpose partners --actor crm --recipient globex --pseudonym "$PSACME"
expect_rc 6 ck get --purpose service --actor crm --pseudonym not-a-pseudonym
# A consent recorded by pseudonym: its context is the consent's purpose.
get marketing.email C-A
json_of subject PSM
expect_rc 0 ck consent withdraw --pseudonym "$PSM" --purpose marketing.email --actor dpo
get marketing.email C-A
expect_json 'd["withheld"]["first_name"] == "withdrawn"'
expect_rc 3 ck consent grant --pseudonym "$PS" --purpose marketing.email --actor dpo
expect_rc 0 ck consent grant --pseudonym "$PS" --pseudonym-purpose service \
    --purpose marketing.email --actor dpo
get marketing.email C-A
expect_json 'd["released"]["first_name"] == "Anne"'
expect_rc 0 ck consent show --pseudonym "$PS" --pseudonym-purpose service
expect_json 'd["current"]["marketing.email"]["state"] == "granted"'
expect_rc 2 ck consent show --pseudonym "$PS"
# By id and by alias.
expect_rc 0 ck get --purpose service --actor crm --subject "$IDA" --fields first_name
expect_json 'd["released"] == {"first_name": "Anne"}'
expect_rc 0 ck alias add --ref C-A anne-card
expect_rc 0 ck get --purpose service --actor crm --alias anne-card --fields city
expect_json 'd["released"] == {"city": "Paris"}'

# --------------------------------------------------------------------------
# segment
# --------------------------------------------------------------------------
expect_rc 2 ck segment --actor crm
expect_rc 2 ck segment --purpose service --actor crm --where city
expect_err "--where needs FIELD=VALUE"
expect_rc 2 ck segment --purpose service --actor crm --where 'city>Paris'
expect_rc 2 ck segment --purpose service --actor crm --where '=Paris'
expect_rc 2 ck segment --purpose service --actor crm --limit 0
expect_rc 2 ck segment --purpose service --actor crm --limit -3
expect_rc 2 ck segment --purpose service --actor crm stray
expect_rc 6 ck segment --purpose service --actor crm --where shoe=42
expect_rc 6 ck segment --purpose service --actor crm --where allergies=peanuts
expect_err "does not declare"
expect_rc 6 ck segment --purpose service --actor crm --where 'birth_date~19'
expect_rc 6 ck segment --purpose service --actor crm --where 'birth_date>=1990-02-30'
expect_rc 6 ck segment --purpose nope --actor crm

# A readable field: every subject of the contract purpose living in Paris.
get service C-B --fields city
json_of subject PSB
get service C-A --fields city
json_of subject PSA
expect_rc 0 ck segment --purpose service --actor crm --where city=Paris --fields city,first_name
expect_json "len(rows) == 2 and sorted(r['subject'] for r in rows) == sorted(['$PSA', '$PSB'])"
expect_json 'all(r["released"]["city"] == "Paris" and r["purpose"] == "service" for r in rows)'
expect_rc 0 ck segment --purpose service --actor crm --where 'city~Pa' --where 'birth_date>=1985-01-01'
expect_json "len(rows) == 1 and rows[0]['subject'] == '$PSA'"
expect_rc 0 ck segment --purpose service --actor crm --where 'birth_date<=1985-01-01' --fields first_name
expect_json "len(rows) == 1 and rows[0]['subject'] == '$PSB' and rows[0]['released'] == {'first_name': 'Bob'}"
expect_rc 0 ck segment --purpose service --actor crm --where interests=books --fields first_name
expect_json 'len(rows) == 1 and rows[0]["released"] == {"first_name": "Anne"}'
expect_rc 0 ck segment --purpose service --actor crm --where city=Paris --limit 1
expect_json 'len(rows) == 1'
expect_rc 0 ck segment --purpose service --actor crm --where city=Atlantis
[ ! -s "$T/out" ] && ok || fail "a segment that matches nobody printed something"
expect_rc 0 ck segment --purpose service --actor crm
expect_json 'len(rows) == 4'
# A consent purpose walks the consent index: only the subjects whose
# current consent is granted (C-A's and C-B's; C-C never consented).
get marketing.email C-B --fields first_name
json_of subject PSBM
get marketing.email C-A --fields first_name
json_of subject PSAM
expect_rc 0 ck segment --purpose marketing.email --actor crm --fields first_name
expect_json "sorted(r['subject'] for r in rows) == sorted(['$PSAM', '$PSBM'])"
expect_rc 0 ck consent refuse --ref C-B --purpose marketing.email --actor dpo
expect_rc 0 ck segment --purpose marketing.email --actor crm --fields first_name
expect_json "[r['subject'] for r in rows] == ['$PSAM']"
expect_rc 0 ck consent grant --ref C-B --purpose marketing.email --actor dpo
expect_rc 0 ck segment --purpose marketing.email --actor crm --fields first_name
expect_json 'len(rows) == 2'
# Minimised: the predicate reads the released form (a year), and an
# objection takes the subject out.
expect_rc 0 ck segment --purpose analytics --actor crm --where 'birth_date>=1900'
expect_json "len(rows) == 1 and rows[0]['subject'] == '$PSAN' and rows[0]['released']['birth_date'] == 1990"

# A withheld field: C-A's personalization scope does not cover city, so a
# predicate on city does not match C-A even though she lives in Paris;
# C-B's scope does.
expect_rc 0 ck consent grant --ref C-B --purpose personalization --actor dpo --fields city
get personalization C-B --fields city
json_of subject PSBP
expect_rc 0 ck segment --purpose personalization --actor crm --where city=Paris
expect_json "len(rows) == 1 and rows[0]['subject'] == '$PSBP' and rows[0]['released'] == {'city': 'Paris'}"
expect_json 'rows[0]["withheld"] == {"first_name": "no_consent", "interests": "no_consent", "allergies": "no_consent"}'
# C-A matches on a field her scope covers.
expect_rc 0 ck segment --purpose personalization --actor crm --where first_name=Anne
expect_json 'len(rows) == 1 and rows[0]["released"] == {"first_name": "Anne", "allergies": "peanuts"}'
expect_rc 0 ck --format text segment --purpose personalization --actor crm --where city=Paris
expect_out "^subject: $PSBP$"
expect_out '^  city: Paris$'
expect_out '^  allergies: \(withheld: no_consent\)$'

# --------------------------------------------------------------------------
# contact pressure
# --------------------------------------------------------------------------
expect_rc 2 ck contact
expect_rc 2 ck contact ring --ref C-C --channel email --actor crm
expect_rc 2 ck contact record --ref C-C --channel fax --actor crm
expect_err "--channel must be email, sms, phone or post"
expect_rc 2 ck contact record --ref C-C --channel email
expect_rc 2 ck contact record --ref C-C --channel email --actor crm --count 3
expect_rc 2 ck contact limit --ref C-C --channel email --actor crm
expect_rc 2 ck contact limit --ref C-C --channel email --actor crm --count -2
expect_rc 2 ck contact limit --ref C-C --channel email --actor crm --count many
expect_rc 3 ck contact record --ref C-404 --channel email --actor crm
expect_rc 2 ck contact limit --ref C-C --channel email --count 1 --inbound --actor crm

expect_rc 0 ck consent grant --ref C-C --purpose marketing.email --actor dpo
get marketing.email C-C
expect_json 'd["released"] == {"email": "carol@example.org", "first_name": "Carol"}'
expect_rc 0 ck contact record --ref C-C --channel email --actor mailer
expect_out '^\{"recorded":true,"channel":"email"\}$'
# Contacts the customer made do not count toward the cap.
for i in 1 2 3; do
    expect_rc 0 ck contact record --ref C-C --channel email --inbound --actor inbox
done
expect_out '^\{"recorded":true,"channel":"email","inbound":true\}$'
expect_rc 0 ck --format text contact record --ref C-C --channel email --inbound --actor inbox
expect_out '^inbound contact recorded on email$'
get marketing.email C-C
expect_json 'd["released"]["email"] == "carol@example.org"'
expect_rc 0 ck contact record --ref C-C --channel email --actor mailer
# The cap (2 in 30 days) is reached: the address is withheld, the rest not.
get marketing.email C-C
expect_json 'd["released"] == {"first_name": "Carol"} and d["withheld"] == {"email": "contact_cap"}'
# Only for the purposes that declare the channel.
get service C-C --fields email
expect_json 'd["released"] == {"email": "carol@example.org"}'
# Contacts on another channel do not count.
expect_rc 0 ck contact record --ref C-B --channel sms --actor mailer
expect_rc 0 ck contact record --ref C-B --channel sms --actor mailer
get marketing.email C-B
expect_json 'd["released"]["email"] == "bob@example.org"'

# The customer's own limit: 0 = do not contact; none removes it.
expect_rc 0 ck contact limit --ref C-B --channel email --count 0 --actor dpo
expect_out '^\{"channel":"email","limit":0\}$'
get marketing.email C-B
expect_json 'd["released"] == {"first_name": "Bob"} and d["withheld"] == {"email": "contact_cap"}'
expect_rc 0 ck contact limit --ref C-B --channel email --count none --actor dpo
expect_out '^\{"channel":"email","limit":null\}$'
get marketing.email C-B
expect_json 'd["released"]["email"] == "bob@example.org"'
# A limit above the purpose's cap does not raise it.
expect_rc 0 ck contact limit --ref C-C --channel email --count 10 --actor dpo
get marketing.email C-C
expect_json 'd["withheld"] == {"email": "contact_cap"}'
# The basis comes first: no consent says no_consent, not contact_cap.
expect_rc 0 ck consent withdraw --ref C-C --purpose marketing.email --actor dpo
get marketing.email C-C
expect_json 'd["withheld"] == {"email": "withdrawn", "first_name": "withdrawn"}'

# --------------------------------------------------------------------------
# the audit log: every release, names only
# --------------------------------------------------------------------------
expect_rc 0 ck audit log --action release --purpose marketing.email
expect_out '"action":"release","purpose":"marketing.email"'
expect_out '"withheld":\{"email":"contact_cap"\}'
expect_rc 0 ck audit log --action segment
expect_out '"action":"segment"'
expect_rc 0 ck audit log --action contact
expect_out '"detail":\{"channel":"email","limit":0\}'
expect_rc 0 ck audit log
for v in Anne@Example.COM anne@example.com peanuts carol@example.org Paris 1990-05-17 "$PS"; do
    if grep -qF -- "$v" "$T/out"; then fail "the audit log holds a value or pseudonym ($v)"; else ok; fi
done

finish
