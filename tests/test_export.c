/*
 * test_export.c - the customer's access and portability export
 * (ck_export), with a controlled clock: everything the test wrote,
 * recorded and released comes back exact, nothing of another subject does,
 * the export is audited before it is handed out (and hands out nothing
 * when it cannot be), and the CSV form quotes and defuses what it must.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <time.h>

#include "audit.h"
#include "fixture.h"

#define DAY  86400
#define HOUR 3600
#define T0   1767225600 /* 2026-01-01T00:00:00Z */

static const char SCHEMA[] =
    "{\"fields\":{"
    "\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true},"
    "\"first_name\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"born\":{\"type\":\"date\",\"sensitivity\":\"personal\",\"retention_days\":3650},"
    "\"score\":{\"type\":\"int\",\"sensitivity\":\"personal\"},"
    "\"ratio\":{\"type\":\"float\",\"sensitivity\":\"personal\"},"
    "\"vip\":{\"type\":\"bool\",\"sensitivity\":\"public\"},"
    "\"seen\":{\"type\":\"timestamp\",\"sensitivity\":\"personal\"},"
    "\"photo\":{\"type\":\"bytes\",\"sensitivity\":\"sensitive\"},"
    "\"interests\":{\"type\":\"list\",\"sensitivity\":\"personal\"},"
    "\"allergies\":{\"type\":\"string\",\"sensitivity\":\"special\"}},"
    "\"purposes\":{"
    "\"marketing.email\":{\"basis\":\"consent\",\"description\":\"Offers by e-mail\","
    "\"benefit\":\"Discounts\",\"fields\":[\"email\",\"first_name\"],"
    "\"channel\":{\"type\":\"email\",\"field\":\"email\",\"cap\":{\"count\":3,\"days\":30}}},"
    "\"analytics\":{\"basis\":\"legitimate_interest\",\"description\":\"Statistics\","
    "\"benefit\":\"Better shops\",\"fields\":[\"city\",\"born\"],"
    "\"minimize\":{\"born\":\"year\"}},"
    "\"service\":{\"basis\":\"contract\",\"description\":\"Orders\",\"benefit\":\"Delivery\","
    "\"fields\":[\"email\",\"first_name\",\"city\",\"score\"]},"
    "\"health\":{\"basis\":\"consent\",\"description\":\"Diet advice\",\"benefit\":\"Safe "
    "meals\",\"fields\":[\"allergies\",\"first_name\"]},"
    "\"partners\":{\"basis\":\"consent\",\"description\":\"Partner offers\","
    "\"benefit\":\"Partner discounts\",\"fields\":[\"email\",\"city\"]}}}";

static const char ALICE[] =
    "{\"email\":\"Alice.Martin@Example.org\",\"first_name\":\"Alice\",\"city\":\"Paris\","
    "\"born\":\"1990-05-17\",\"score\":-42,\"ratio\":0.25,\"vip\":true,"
    "\"seen\":\"2024-11-24T21:04:17.25+02:00\",\"photo\":\"AAEC/w==\","
    "\"interests\":[\"wine\",\"cheese, aged\"],\"allergies\":\"peanuts\"}";

static int setup(void **state)
{
    return tu_fx_setup(state, "export", T0, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC, SCHEMA);
}

static void consent(tu_fx *f, const char *ref, const ck_consent *c)
{
    ck_who w = tu_by_ref(ref);
    if (ck_consent_record(f->st, &w, c, "desk") != CK_OK)
        fail_msg("consent %s %s: %s", ref, c->purpose, ck_errmsg(f->st));
}

static void release(tu_fx *f, const char *ref, const char *purpose, const char *actor,
                    const char *recipient, const char *const *fields, size_t nfields)
{
    ck_request r = CK_REQUEST_INIT;
    r.actor = actor;
    r.purpose = purpose;
    r.recipient = recipient;
    r.subject = tu_by_ref(ref);
    r.fields = fields;
    r.nfields = nfields;
    ck_result *res = NULL;
    if (ck_release(&res, f->st, &r) != CK_OK)
        fail_msg("release %s %s: %s", ref, purpose, ck_errmsg(f->st));
    ck_result_free(res);
}

/* Export `ref` as JSON and parse it. */
static json_t *export_json(tu_fx *f, const char *ref)
{
    ck_who w = tu_by_ref(ref);
    char *text = NULL;
    if (ck_export(&text, f->st, &w, "dpo", 0) != CK_OK)
        fail_msg("export %s: %s", ref, ck_errmsg(f->st));
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        fail_msg("the export is not JSON: %s", je.text);
    ck_free(text);
    return j;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL)
        fail_msg("no string member %s", key);
    return s;
}

static void time_text(char out[32], int64_t t)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A "recorded" time (RFC 3339 UTC, 0 to 9 fraction digits) as a key that
 * sorts as the time does: the fraction padded to 9 digits. */
static void recorded_key(char out[40], const char *t)
{
    size_t n = strlen(t);
    assert_true(n >= 20 && n < 31 && t[n - 1] == 'Z');
    const char *dot = strchr(t, '.');
    size_t base = dot != NULL ? (size_t)(dot - t) : n - 1;
    size_t digits = dot != NULL ? n - 1 - base - 1 : 0;
    memcpy(out, t, base);
    out[base] = '.';
    for (size_t i = 0; i < 9; i++)
        out[base + 1 + i] = i < digits ? dot[1 + i] : '0';
    out[base + 10] = '\0';
}

static void assert_time(const json_t *o, const char *key, int64_t t)
{
    char want[32];
    time_text(want, t);
    assert_string_equal(jstr(o, key), want);
}

/* A JSON array of strings equals `want` (n items). */
static void assert_names(const json_t *a, const char *const *want, size_t n)
{
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_array_get(a, i)), want[i]);
}

/* The scenario of the completeness test: Alice (C-1) with every type of
 * value, an alias, a consent history, contacts, releases; Bob (C-2) with
 * releases of his own. */
static void scenario(tu_fx *f)
{
    tu_put(f, "C-1", ALICE);
    tu_put(f, "C-2", "{\"email\":\"bob@example.org\",\"city\":\"Lyon\"}");
    ck_who w1 = tu_by_ref("C-1");
    assert_int_equal(ck_alias_add(f->st, &w1, "card-0001", 0), CK_OK);
    f->now = T0 + DAY;
    tu_put(f, "C-1", "{\"first_name\":\"Alicia\"}");

    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "marketing.email";
    c.state = CK_CONSENT_GRANTED;
    c.source = "web-form, \"v3\"";
    c.notice = "notice-1";
    consent(f, "C-1", &c);
    f->now += HOUR;
    c = (ck_consent)CK_CONSENT_INIT;
    c.purpose = "marketing.email";
    c.state = CK_CONSENT_WITHDRAWN;
    consent(f, "C-1", &c);
    f->now += HOUR;
    static const char *const scope_email[] = {"email"};
    static const char *const acme[] = {"acme"};
    c = (ck_consent)CK_CONSENT_INIT;
    c.purpose = "marketing.email";
    c.state = CK_CONSENT_GRANTED;
    c.fields = scope_email;
    c.nfields = 1;
    c.recipients = acme;
    c.nrecipients = 1;
    c.expires = T0 + 30 * DAY;
    c.source = "shop";
    c.collector = "Jeanne";
    consent(f, "C-1", &c);
    f->now += HOUR;
    c = (ck_consent)CK_CONSENT_INIT;
    c.purpose = "analytics";
    c.state = CK_CONSENT_OBJECTED;
    consent(f, "C-1", &c);
    f->now += HOUR;
    static const char *const scope_allergies[] = {"allergies"};
    c = (ck_consent)CK_CONSENT_INIT;
    c.purpose = "health";
    c.state = CK_CONSENT_GRANTED;
    c.fields = scope_allergies;
    c.nfields = 1;
    consent(f, "C-1", &c);
    static const char *const other[] = {"other-partner"};
    c = (ck_consent)CK_CONSENT_INIT;
    c.purpose = "marketing.email";
    c.state = CK_CONSENT_GRANTED;
    c.recipients = other;
    c.nrecipients = 1;
    consent(f, "C-2", &c);

    f->now += HOUR;
    release(f, "C-1", "marketing.email", "crm", "acme", NULL, 0);
    release(f, "C-2", "marketing.email", "crm2", "other-partner", NULL, 0);
    /* contacts: two now, the customer's own cap of 2 */
    f->now += HOUR;
    assert_int_equal(ck_contact_record(f->st, &w1, "email", "mailer"), CK_OK);
    f->now += HOUR;
    assert_int_equal(ck_contact_record(f->st, &w1, "email", "mailer"), CK_OK);
    assert_int_equal(ck_contact_limit(f->st, &w1, "email", 2, "desk"), CK_OK);
    release(f, "C-1", "marketing.email", "crm", NULL, NULL, 0);
    release(f, "C-1", "analytics", "stats", NULL, NULL, 0);
    static const char *const email_score[] = {"email", "score"};
    release(f, "C-1", "service", "desk", NULL, email_score, 2);
    release(f, "C-1", "health", "nurse", NULL, NULL, 0);
    release(f, "C-2", "service", "crm2", NULL, NULL, 0);

    /* a segment that answers for both subjects */
    ck_segment_request sr = CK_SEGMENT_INIT;
    static const char *const city[] = {"city"};
    sr.actor = "batch";
    sr.purpose = "service";
    sr.fields = city;
    sr.nfields = 1;
    ck_cursor *cur = NULL;
    assert_int_equal(ck_segment(&cur, f->st, &sr), CK_OK);
    const ck_result *res;
    int n = 0;
    while (ck_segment_next(cur, &res) == CK_OK)
        n++;
    ck_cursor_free(cur);
    assert_int_equal(n, 2);
}

/* One release entry of the export. */
static void assert_release(const json_t *r, const char *action, const char *actor,
                           const char *purpose, const char *recipient, const char *const *released,
                           size_t nrel, const char *const *withheld, size_t nwh)
{
    assert_string_equal(jstr(r, "action"), action);
    assert_string_equal(jstr(r, "actor"), actor);
    assert_string_equal(jstr(r, "purpose"), purpose);
    if (recipient != NULL)
        assert_string_equal(jstr(r, "recipient"), recipient);
    else
        assert_null(json_object_get(r, "recipient"));
    assert_true(json_integer_value(json_object_get(r, "seq")) > 0);
    assert_int_equal(strlen(jstr(r, "time")), 24); /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_names(json_object_get(r, "released"), released, nrel);
    const json_t *wh = json_object_get(r, "withheld");
    assert_true(json_is_object(wh));
    assert_int_equal(json_object_size(wh), nwh);
    for (size_t i = 0; i < nwh; i++)
        assert_string_equal(jstr(wh, withheld[2 * i]), withheld[2 * i + 1]);
}

static void assert_purpose(const json_t *ps, const char *name, const char *basis,
                           const char *description, const char *state, bool may_use)
{
    const json_t *p = json_object_get(ps, name);
    assert_non_null(p);
    assert_string_equal(jstr(p, "basis"), basis);
    assert_string_equal(jstr(p, "description"), description);
    assert_non_null(json_string_value(json_object_get(p, "benefit")));
    assert_true(json_is_array(json_object_get(p, "fields")));
    assert_string_equal(jstr(p, "consent"), state);
    assert_true(json_is_boolean(json_object_get(p, "may_use")));
    assert_int_equal(json_is_true(json_object_get(p, "may_use")), may_use);
}

static void test_complete(void **state)
{
    tu_fx *f = *state;
    scenario(f);
    f->now += HOUR;
    json_t *j = export_json(f, "C-1");

    /* the subject: id in hex, created */
    unsigned char id[CK_SUBJECT_ID_BYTES];
    char hex[2 * CK_SUBJECT_ID_BYTES + 1];
    ck_who w1 = tu_by_ref("C-1");
    assert_int_equal(ck_subject_find(id, f->st, &w1), CK_OK);
    ck_subject_id_hex(hex, id);
    assert_int_equal(json_integer_value(json_object_get(j, "format")), 1);
    assert_string_equal(jstr(j, "subject"), hex);
    assert_time(j, "created", T0);
    assert_time(j, "generated", f->now);

    /* every value, typed, in full, with its last write time */
    const json_t *fl = json_object_get(j, "fields");
    assert_int_equal(json_object_size(fl), 11);
    json_t *want = json_loads(ALICE, 0, NULL);
    json_object_set_new(want, "first_name", json_string("Alicia"));
    const char *name;
    json_t *wv;
    json_object_foreach(want, name, wv)
    {
        const json_t *got = json_object_get(fl, name);
        if (got == NULL)
            fail_msg("field %s missing from the export", name);
        if (!json_equal(json_object_get(got, "value"), wv))
            fail_msg("field %s: not the value written", name);
        assert_time(got, "updated", strcmp(name, "first_name") == 0 ? T0 + DAY : T0);
    }
    json_decref(want);
    assert_true(json_is_integer(json_object_get(json_object_get(fl, "score"), "value")));
    assert_true(json_is_real(json_object_get(json_object_get(fl, "ratio"), "value")));
    assert_string_equal(jstr(json_object_get(fl, "born"), "type"), "date");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(fl, "born"), "retention_days")), 3650);
    assert_string_equal(jstr(json_object_get(fl, "allergies"), "sensitivity"), "special");
    assert_true(json_is_true(json_object_get(json_object_get(fl, "email"), "identifying")));
    assert_true(json_is_false(json_object_get(json_object_get(fl, "city"), "identifying")));

    /* look-ups: counted, never shown */
    const json_t *lk = json_object_get(j, "lookups");
    assert_int_equal(json_integer_value(json_object_get(lk, "ref")), 1);
    assert_int_equal(json_integer_value(json_object_get(lk, "aliases")), 1);
    static const char *const ident[] = {"email"};
    assert_names(json_object_get(lk, "identifying_fields"), ident, 1);
    assert_non_null(strstr(jstr(lk, "note"), "keyed hashes"));
    char *text = json_dumps(j, JSON_COMPACT);
    assert_null(strstr(text, "card-0001"));
    assert_null(strstr(text, "C-1"));
    /* nothing of Bob */
    assert_null(strstr(text, "bob@example.org"));
    assert_null(strstr(text, "Lyon"));
    assert_null(strstr(text, "other-partner"));
    assert_null(strstr(text, "crm2"));
    free(text);

    /* consents: what ck_consent_json gives, plus when each was recorded */
    json_t *cs = json_deep_copy(json_object_get(j, "consents"));
    const json_t *hist = json_object_get(cs, "history");
    assert_int_equal(json_array_size(hist), 5);
    size_t i;
    json_t *rec;
    char prev[40] = "";
    json_array_foreach(hist, i, rec)
    {
        char r[40];
        recorded_key(r, jstr(rec, "recorded"));
        assert_true(strcmp(prev, r) <= 0); /* oldest first */
        memcpy(prev, r, sizeof r);
        json_object_del(rec, "recorded");
    }
    const char *p;
    json_object_foreach(json_object_get(cs, "current"), p, rec) json_object_del(rec, "recorded");
    char *cj = NULL;
    assert_int_equal(ck_consent_json(&cj, f->st, &w1), CK_OK);
    json_t *cjj = json_loads(cj, 0, NULL);
    assert_true(json_equal(cs, cjj));
    json_decref(cjj);
    ck_free(cj);
    json_decref(cs);
    const json_t *me = json_object_get(json_object_get(json_object_get(j, "consents"), "current"),
                                       "marketing.email");
    assert_string_equal(jstr(me, "collector"), "Jeanne");
    assert_time(me, "expires", T0 + 30 * DAY);
    assert_string_equal(
        jstr(json_array_get(json_object_get(json_object_get(j, "consents"), "history"), 0),
             "source"),
        "web-form, \"v3\"");

    /* contacts and the customer's own cap */
    const json_t *ct = json_object_get(json_object_get(j, "contacts"), "email");
    assert_non_null(ct);
    assert_int_equal(json_object_size(json_object_get(j, "contacts")), 1);
    const json_t *times = json_object_get(ct, "contacts");
    assert_int_equal(json_array_size(times), 2);
    char t1[32], t2[32];
    time_text(t1, T0 + DAY + 6 * HOUR);
    time_text(t2, T0 + DAY + 7 * HOUR);
    assert_string_equal(json_string_value(json_array_get(times, 0)), t1);
    assert_string_equal(json_string_value(json_array_get(times, 1)), t2);
    assert_int_equal(json_integer_value(json_object_get(ct, "limit")), 2);

    /* every purpose, why it exists and whether it may use the data now */
    const json_t *ps = json_object_get(j, "purposes");
    assert_int_equal(json_object_size(ps), 5);
    assert_purpose(ps, "marketing.email", "consent", "Offers by e-mail", "granted", true);
    assert_purpose(ps, "analytics", "legitimate_interest", "Statistics", "objected", false);
    assert_purpose(ps, "service", "contract", "Orders", "none", true);
    assert_purpose(ps, "health", "consent", "Diet advice", "granted", true);
    assert_purpose(ps, "partners", "consent", "Partner offers", "none", false);
    assert_string_equal(jstr(json_object_get(json_object_get(ps, "analytics"), "minimize"), "born"),
                        "year");
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(json_object_get(ps, "marketing.email"), "channel"),
                            "cap"),
            "count")),
        3);

    /* every release of Alice's data, none of Bob's */
    const json_t *rel = json_object_get(j, "releases");
    assert_int_equal(json_array_size(rel), 6);
    static const char *const r_email[] = {"email"};
    static const char *const w_first_nc[] = {"first_name", "no_consent"};
    assert_release(json_array_get(rel, 0), "release", "crm", "marketing.email", "acme", r_email, 1,
                   w_first_nc, 1);
    static const char *const w_cap[] = {"email", "contact_cap", "first_name", "no_consent"};
    assert_release(json_array_get(rel, 1), "release", "crm", "marketing.email", NULL, NULL, 0,
                   w_cap, 2);
    static const char *const w_obj[] = {"city", "objected", "born", "objected"};
    assert_release(json_array_get(rel, 2), "release", "stats", "analytics", NULL, NULL, 0, w_obj,
                   2);
    static const char *const r_es[] = {"email", "score"};
    assert_release(json_array_get(rel, 3), "release", "desk", "service", NULL, r_es, 2, NULL, 0);
    static const char *const r_all[] = {"allergies"};
    assert_release(json_array_get(rel, 4), "release", "nurse", "health", NULL, r_all, 1, w_first_nc,
                   1);
    static const char *const r_city[] = {"city"};
    assert_release(json_array_get(rel, 5), "segment", "batch", "service", NULL, r_city, 1, NULL, 0);
    for (i = 1; i < json_array_size(rel); i++)
        assert_true(json_integer_value(json_object_get(json_array_get(rel, i - 1), "seq")) <
                    json_integer_value(json_object_get(json_array_get(rel, i), "seq")));

    /* the other entries about Alice: 5 consent changes, 2 contacts, a limit */
    const json_t *h = json_object_get(j, "history");
    assert_int_equal(json_array_size(h), 8);
    static const char *const actions[] = {"consent", "consent", "consent", "consent",
                                          "consent", "contact", "contact", "contact"};
    for (i = 0; i < 8; i++)
        assert_string_equal(jstr(json_array_get(h, i), "action"), actions[i]);
    assert_string_equal(jstr(json_object_get(json_array_get(h, 1), "detail"), "state"),
                        "withdrawn");
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(json_array_get(h, 7), "detail"), "limit")),
                     2);
    json_decref(j);

    /* later: the consent has expired, and the first export is history */
    f->now = T0 + 31 * DAY;
    j = export_json(f, "C-1");
    assert_purpose(json_object_get(j, "purposes"), "marketing.email", "consent", "Offers by e-mail",
                   "expired", false);
    h = json_object_get(j, "history");
    assert_int_equal(json_array_size(h), 9);
    const json_t *ex = json_array_get(h, 8);
    assert_string_equal(jstr(ex, "action"), "export");
    assert_string_equal(jstr(ex, "actor"), "dpo");
    json_decref(j);

    /* Bob's export has his own releases only */
    j = export_json(f, "C-2");
    rel = json_object_get(j, "releases");
    assert_int_equal(json_array_size(rel), 3);
    for (i = 0; i < 3; i++)
        assert_string_equal(jstr(json_array_get(rel, i), "actor"), i < 2 ? "crm2" : "batch");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "lookups"), "aliases")),
                     0);
    assert_int_equal(json_object_size(json_object_get(j, "contacts")), 0);
    json_decref(j);
}

/* The export is in the audit log, strict, with counts and no value. */
static void test_audited(void **state)
{
    tu_fx *f = *state;
    scenario(f);
    ck_who w1 = tu_by_ref("C-1");
    char *text = NULL;
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", 0), CK_OK);
    ck_free(text);
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo-2", CK_EXPORT_CSV), CK_OK);
    ck_free(text);

    unsigned char pn[CK_AUDIT_PSEUDONYM_BYTES];
    assert_int_equal(ck_audit_subject(pn, f->st, &w1), CK_OK);
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "export";
    ck_audit_cursor *c = NULL;
    assert_int_equal(ck_audit_query(&c, f->st, &flt), CK_OK);
    const ck_audit_record *r;
    int n = 0;
    while (ck_audit_next(c, &r) == CK_OK) {
        assert_non_null(r->subject);
        assert_memory_equal(r->subject, pn, CK_AUDIT_PSEUDONYM_BYTES);
        assert_null(r->purpose);
        assert_int_equal(r->n_released + r->n_withheld, 0);
        assert_string_equal(r->actor, n == 0 ? "dpo" : "dpo-2");
        assert_string_equal(r->detail[0].key, "format");
        assert_string_equal(r->detail[0].str, n == 0 ? "json" : "csv");
        assert_string_equal(r->detail[1].key, "consents");
        assert_int_equal(r->detail[1].num, 5);
        if (n == 0) {
            assert_int_equal(r->n_detail, 4);
            assert_string_equal(r->detail[2].key, "fields");
            assert_int_equal(r->detail[2].num, 11);
            assert_string_equal(r->detail[3].key, "releases");
            assert_int_equal(r->detail[3].num, 6);
        } else {
            assert_int_equal(r->n_detail, 2);
        }
        n++;
    }
    ck_audit_cursor_free(c);
    assert_int_equal(n, 2);

    /* the DPO's report counts them */
    char *rep = NULL;
    assert_int_equal(ck_audit_report_json(&rep, f->st, NULL), CK_OK);
    json_t *rj = json_loads(rep, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(rj, "exports")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(rj, "actions"), "export")),
                     2);
    json_decref(rj);
    ck_free(rep);

    /* no value, ref or alias anywhere in the log */
    static const char *const values[] = {"Alice.Martin@Example.org",
                                         "Alicia",
                                         "Paris",
                                         "peanuts",
                                         "cheese, aged",
                                         "C-1",
                                         "card-0001",
                                         "web-form",
                                         "Jeanne"};
    char log[PATH_MAX];
    tu_path(log, sizeof log, f->dir, "audit-000001.log");
    for (size_t i = 0; i < CK_ARRAY_LEN(values); i++)
        if (tu_file_contains(log, values[i], strlen(values[i])))
            fail_msg("the audit log holds \"%s\"", values[i]);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);
}

static int count_exports(ck_store *st)
{
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "export";
    ck_audit_cursor *c = NULL;
    assert_int_equal(ck_audit_query(&c, st, &flt), CK_OK);
    const ck_audit_record *r;
    int n = 0;
    while (ck_audit_next(c, &r) == CK_OK)
        n++;
    ck_audit_cursor_free(c);
    return n;
}

/* An export whose audit entry cannot be written returns nothing. */
static void test_fail_closed(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "C-1", ALICE);
    ck_who w1 = tu_by_ref("C-1");
    char *text = (char *)"untouched";

    ck_audit__test_fail_next(f->st, CK_AUDIT_FAIL_WRITE);
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", 0), CK_EIO);
    assert_null(text);
    assert_int_equal(count_exports(f->st), 0);

    text = (char *)"untouched";
    ck_audit__test_fail_next(f->st, CK_AUDIT_FAIL_PARTIAL);
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", CK_EXPORT_CSV), CK_ENOSPC);
    assert_null(text);
    assert_int_equal(count_exports(f->st), 0);

    /* a failed fsync: the entry may be in the file, the export is not out */
    text = (char *)"untouched";
    ck_audit__test_fail_next(f->st, CK_AUDIT_FAIL_FSYNC);
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", 0), CK_EIO);
    assert_null(text);
    ck_close(f->st);

    /* a read-only handle cannot audit, so it cannot export */
    f->st = tu_fx_open(f, CK_OPEN_RDONLY | CK_OPEN_NOSYNC);
    text = (char *)"untouched";
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", 0), CK_EDENIED);
    assert_null(text);
    ck_close(f->st);

    /* a working handle exports again */
    f->st = tu_fx_open(f, CK_OPEN_NOSYNC);
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", 0), CK_OK);
    assert_non_null(strstr(text, "Alice.Martin@Example.org"));
    ck_free(text);
}

/* Unknown and ambiguous subjects, bad arguments: nothing out, nothing
 * audited. */
static void test_bad_requests(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "C-1", ALICE);
    tu_put(f, "C-2", "{\"email\":\"alice.martin@example.org\"}"); /* the same address */
    char *text = (char *)"untouched";
    ck_who w = tu_by_ref("C-404");
    assert_int_equal(ck_export(&text, f->st, &w, "dpo", 0), CK_ENOTFOUND);
    assert_null(text);
    ck_who id = {CK_BY_ID, "00000000000000000000000000000000", 0, NULL, NULL, NULL};
    assert_int_equal(ck_export(&text, f->st, &id, "dpo", 0), CK_ENOTFOUND);
    ck_who al = {CK_BY_ALIAS, "no-such-card", 0, NULL, NULL, NULL};
    assert_int_equal(ck_export(&text, f->st, &al, "dpo", CK_EXPORT_CSV), CK_ENOTFOUND);
    ck_who lk = {CK_BY_LOOKUP, "ALICE.MARTIN@example.org", 0, "email", NULL, NULL};
    assert_int_equal(ck_export(&text, f->st, &lk, "dpo", 0), CK_EAMBIGUOUS);
    assert_null(text);
    ck_who c1 = tu_by_ref("C-1");
    assert_int_equal(ck_export(&text, f->st, &c1, NULL, 0), CK_EINVAL);
    assert_int_equal(ck_export(&text, f->st, &c1, "", 0), CK_EINVAL);
    assert_int_equal(ck_export(&text, f->st, &c1, "bad\nactor", 0), CK_EINVAL);
    assert_int_equal(ck_export(&text, f->st, &c1, "dpo", 0x80), CK_EINVAL);
    assert_int_equal(ck_export(&text, f->st, NULL, "dpo", 0), CK_EINVAL);
    assert_int_equal(ck_export(NULL, f->st, &c1, "dpo", 0), CK_EINVAL);
    assert_int_equal(ck_export(&text, NULL, &c1, "dpo", 0), CK_EINVAL);
    assert_null(text);
    assert_int_equal(count_exports(f->st), 0);
    /* no message quotes the reference */
    assert_int_equal(ck_export(&text, f->st, &w, "dpo", 0), CK_ENOTFOUND);
    assert_null(strstr(ck_errmsg(f->st), "C-404"));
}

/* A value the schema cannot type (a record planted under a field id the
 * schema never gave) is data held but not shown: the export refuses. */
typedef struct plant_ctx {
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    unsigned char dk[CK_KEY_BYTES];
} plant_ctx;

static int plant_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    plant_ctx *p = ctx;
    ck_buf scratch = CK_BUF_SECURE_INIT;
    ck_value v = {.type = CK_TYPE_STRING, .u.str = {"hidden", 6}};
    int rc = ck_seal__put(st, txn, p->sid, 4000, p->dk, &v, &scratch);
    ck_buf__free(&scratch);
    return rc;
}

static void test_value_outside_schema(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "C-1", ALICE);
    ck_who w1 = tu_by_ref("C-1");
    plant_ctx p;
    assert_int_equal(ck_subject_find(p.sid, f->st, &w1), CK_OK);
    MDB_txn *kt;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->keyring, &kt), CK_OK);
    assert_int_equal(ck_keyring__get(f->st, kt, p.sid, p.dk), CK_OK);
    ck_env__read_end(&f->st->keyring, kt);
    assert_int_equal(ck_env__write(f->st, &f->st->data, plant_txn, &p), CK_OK);
    sodium_memzero(p.dk, sizeof p.dk);
    char *text = (char *)"untouched";
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", 0), CK_EINTEGRITY);
    assert_null(text);
    assert_non_null(strstr(ck_errmsg(f->st), "does not declare"));
    assert_int_equal(count_exports(f->st), 0);
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                       */
/* ------------------------------------------------------------------------ */

#define CSV_MAX_ROWS  8
#define CSV_MAX_CELLS 10

typedef struct csv {
    char *cell[CSV_MAX_ROWS][CSV_MAX_CELLS];
    int ncells[CSV_MAX_ROWS];
    int nrows;
} csv;

/* A strict RFC 4180 reader: rows end with CRLF; a quoted cell may hold
 * anything, with quotes doubled; an unquoted one holds no quote, CR or LF. */
static void csv_parse(csv *out, const char *s)
{
    memset(out, 0, sizeof *out);
    while (*s != '\0') {
        assert_true(out->nrows < CSV_MAX_ROWS);
        int r = out->nrows++;
        for (;;) {
            assert_true(out->ncells[r] < CSV_MAX_CELLS);
            char *c = calloc(1, strlen(s) + 1);
            size_t n = 0;
            if (*s == '"') {
                for (s++;; s++) {
                    assert_true(*s != '\0');
                    if (*s == '"' && s[1] == '"') {
                        c[n++] = '"';
                        s++;
                    } else if (*s == '"') {
                        s++;
                        break;
                    } else {
                        c[n++] = *s;
                    }
                }
            } else {
                for (; *s != ',' && *s != '\r' && *s != '\0'; s++) {
                    assert_true(*s != '"' && *s != '\n');
                    c[n++] = *s;
                }
            }
            out->cell[r][out->ncells[r]++] = c;
            if (*s == ',') {
                s++;
                continue;
            }
            assert_true(s[0] == '\r' && s[1] == '\n');
            s += 2;
            break;
        }
    }
}

static void csv_free(csv *c)
{
    for (int r = 0; r < c->nrows; r++)
        for (int i = 0; i < c->ncells[r]; i++)
            free(c->cell[r][i]);
}

static void test_csv(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "C-1", ALICE);
    ck_who w1 = tu_by_ref("C-1");
    char *text = NULL;

    /* no consent yet: the header only */
    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", CK_EXPORT_CSV), CK_OK);
    assert_string_equal(text, "purpose,state,at,expires,fields,recipients,source,notice,"
                              "collector,recorded\r\n");
    ck_free(text);

    /* evidence no consent record can hold: a control character */
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "health";
    c.state = CK_CONSENT_GRANTED;
    c.source = "two\nlines";
    assert_int_equal(ck_consent_record(f->st, &w1, &c, "desk"), CK_EINVAL);

    f->now = T0 + DAY;
    static const char *const scope[] = {"email", "first_name"};
    static const char *const recips[] = {"+33 partner", "@handle", "plain"};
    c = (ck_consent)CK_CONSENT_INIT;
    c.purpose = "marketing.email";
    c.state = CK_CONSENT_GRANTED;
    c.fields = scope;
    c.nfields = 2;
    c.recipients = recips;
    c.nrecipients = 3;
    c.expires = T0 + 10 * DAY;
    c.source = "=HYPERLINK(\"http://x\",\"a, b\")";
    c.notice = "-1";
    c.collector = "Jeanne \"JJ\" Dupont";
    consent(f, "C-1", &c);
    f->now += HOUR;
    c = (ck_consent)CK_CONSENT_INIT;
    c.purpose = "marketing.email";
    c.state = CK_CONSENT_WITHDRAWN;
    c.source = "plain, with comma";
    consent(f, "C-1", &c);

    assert_int_equal(ck_export(&text, f->st, &w1, "dpo", CK_EXPORT_CSV), CK_OK);
    /* the raw cells, as RFC 4180 and the formula guard write them */
    assert_non_null(strstr(text, ",\"'=HYPERLINK(\"\"http://x\"\",\"\"a, b\"\")\","));
    assert_non_null(strstr(text, ",'-1,"));
    assert_non_null(strstr(text, ",\"Jeanne \"\"JJ\"\" Dupont\","));
    assert_non_null(strstr(text, ",\"email\nfirst_name\",\"'+33 partner\n@handle\nplain\","));
    assert_non_null(strstr(text, ",\"plain, with comma\","));

    csv t;
    csv_parse(&t, text);
    ck_free(text);
    assert_int_equal(t.nrows, 3);
    static const char *const header[] = {"purpose",    "state",  "at",     "expires",   "fields",
                                         "recipients", "source", "notice", "collector", "recorded"};
    for (int r = 0; r < 3; r++)
        assert_int_equal(t.ncells[r], 10);
    for (int i = 0; i < 10; i++)
        assert_string_equal(t.cell[0][i], header[i]);
    char at1[32], at2[32], exp[32];
    time_text(at1, T0 + DAY);
    time_text(at2, T0 + DAY + HOUR);
    time_text(exp, T0 + 10 * DAY);
    const char *row1[] = {"marketing.email",
                          "granted",
                          at1,
                          exp,
                          "email\nfirst_name",
                          "'+33 partner\n@handle\nplain",
                          "'=HYPERLINK(\"http://x\",\"a, b\")",
                          "'-1",
                          "Jeanne \"JJ\" Dupont"};
    const char *row2[] = {"marketing.email",   "withdrawn", at2, "", "all", "",
                          "plain, with comma", "",          ""};
    for (int i = 0; i < 9; i++) {
        assert_string_equal(t.cell[1][i], row1[i]);
        assert_string_equal(t.cell[2][i], row2[i]);
    }
    /* recorded: RFC 3339 with a fraction, in order */
    assert_true(strlen(t.cell[1][9]) > 20 && t.cell[1][9][strlen(t.cell[1][9]) - 1] == 'Z');
    char k1[40], k2[40];
    recorded_key(k1, t.cell[1][9]);
    recorded_key(k2, t.cell[2][9]);
    assert_true(strcmp(k1, k2) <= 0);
    csv_free(&t);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_complete, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_audited, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_value_outside_schema, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_csv, setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests_name("export", tests, NULL, NULL);
}
