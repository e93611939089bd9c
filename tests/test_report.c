/*
 * test_report.c - the DPO's report (ck_audit_report_json) and the audit
 * pseudonym of a named subject (ck_audit_subject), through the public API,
 * with a controlled clock.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "ckstore.h"
#include "fixture.h"

#define DAY 86400
#define T0  1767225600 /* 2026-01-01T00:00:00Z */

static const char SCHEMA[] =
    "{\"fields\":{"
    "\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true},"
    "\"first_name\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"allergies\":{\"type\":\"string\",\"sensitivity\":\"special\"}},"
    "\"purposes\":{"
    "\"marketing.email\":{\"basis\":\"consent\",\"description\":\"Offers by e-mail\","
    "\"benefit\":\"Discounts\",\"fields\":[\"email\",\"first_name\",\"allergies\"],"
    "\"channel\":{\"type\":\"email\",\"field\":\"email\",\"cap\":{\"count\":2,\"days\":30}}},"
    "\"analytics\":{\"basis\":\"legitimate_interest\",\"description\":\"Statistics\","
    "\"benefit\":\"Better shops\",\"fields\":[\"city\"]},"
    "\"service\":{\"basis\":\"contract\",\"description\":\"Orders\",\"benefit\":\"Delivery\","
    "\"fields\":[\"email\",\"first_name\",\"city\"]},"
    "\"health\":{\"basis\":\"consent\",\"description\":\"Diet advice\",\"benefit\":\"Safe "
    "meals\",\"fields\":[\"allergies\",\"first_name\"]}}}";

/* Values of the test data: none may appear in a report. */
static const char *const SECRETS[] = {"alice@example.org",
                                      "bob@example.org",
                                      "Alice",
                                      "Bob",
                                      "Paris",
                                      "peanuts",
                                      "C-1",
                                      "C-2",
                                      "R-5",
                                      "R-6",
                                      "Lyon"};

/* The shared fixture, and what the releases and segment answers of the
 * scenario gave. */
typedef struct fx {
    tu_fx base;
    long released[4];     /* fields released, per purpose index */
    long withheld[4][12]; /* per purpose index and reason */
    long releases[4], answers[4];
} fx;

static const char *const PURPOSES[] = {"marketing.email", "analytics", "service", "health"};

static int purpose_index(const char *p)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(p, PURPOSES[i]) == 0)
            return i;
    fail_msg("unknown purpose %s", p);
    return -1;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (f == NULL || tu_fx_init(&f->base, "report", T0, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC,
                                NULL) != CK_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tu_fx_fini(&f->base);
    free(f);
    return 0;
}

static void consent(fx *f, const char *ref, const char *purpose, ck_consent_state s,
                    int64_t expires)
{
    ck_who w = tu_by_ref(ref);
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = purpose;
    c.state = s;
    c.expires = expires;
    c.source = "test";
    if (ck_consent_record(f->base.st, &w, &c, "desk") != CK_OK)
        fail_msg("consent %s %s: %s", ref, purpose, ck_errmsg(f->base.st));
}

static void tally(fx *f, const ck_result *res, int pi)
{
    for (size_t i = 0; i < ck_result_count(res); i++) {
        const ck_field_result *fr = ck_result_field(res, i);
        if (fr->reason == CK_RELEASED)
            f->released[pi]++;
        else
            f->withheld[pi][fr->reason]++;
    }
}

static void release(fx *f, const char *ref, const char *purpose, const char *actor)
{
    ck_request r = CK_REQUEST_INIT;
    r.actor = actor;
    r.purpose = purpose;
    r.subject = tu_by_ref(ref);
    ck_result *res = NULL;
    if (ck_release(&res, f->base.st, &r) != CK_OK)
        fail_msg("release %s %s: %s", ref, purpose, ck_errmsg(f->base.st));
    int pi = purpose_index(purpose);
    tally(f, res, pi);
    f->releases[pi]++;
    ck_result_free(res);
}

static void segment(fx *f, const char *purpose, const char *actor)
{
    ck_segment_request r = CK_SEGMENT_INIT;
    r.actor = actor;
    r.purpose = purpose;
    ck_cursor *c = NULL;
    assert_int_equal(ck_segment(&c, f->base.st, &r), CK_OK);
    const ck_result *res;
    int rc, pi = purpose_index(purpose);
    while ((rc = ck_segment_next(c, &res)) == CK_OK) {
        tally(f, res, pi);
        f->answers[pi]++;
    }
    assert_int_equal(rc, CK_ENOTFOUND);
    ck_cursor_free(c);
}

static void import(fx *f, const char *text)
{
    ck_import_options o = CK_IMPORT_OPTIONS_INIT;
    o.actor = "loader";
    o.source = "file.jsonl";
    ck_importer *imp;
    assert_int_equal(ck_import_begin(&imp, f->base.st, &o), CK_OK);
    assert_int_equal(ck_import_feed(imp, text, strlen(text)), CK_OK);
    ck_import_stats s;
    assert_int_equal(ck_import_finish(imp, &s), CK_OK);
    assert_int_equal(s.rejected, 0);
}

/*
 * The scenario, at T0 (then the clock moves to T0 + 6 days):
 *   C-1 marketing.email granted; analytics objected
 *   C-2 marketing.email granted until T0+10d (expiring); health refused
 *   C-3 marketing.email withdrawn
 *   C-4 marketing.email granted until T0+5d (expired at T0+6d)
 *   C-7 marketing.email granted until T0+60d (not expiring within 30 days)
 *   C-8 marketing.email granted, then erased
 *   R-5 (import) marketing.email granted, analytics objected (one entry)
 *   R-6 (import) marketing.email refused (an entry with its purpose)
 */
static void scenario(fx *f)
{
    assert_int_equal(ck_schema_apply(f->base.st, SCHEMA, strlen(SCHEMA), 0, NULL), CK_OK);
    tu_put(&f->base, "C-1",
           "{\"email\":\"alice@example.org\",\"first_name\":\"Alice\",\"city\":\"Paris\","
           "\"allergies\":\"peanuts\"}");
    tu_put(&f->base, "C-2", "{\"email\":\"bob@example.org\",\"first_name\":\"Bob\"}");
    tu_put(&f->base, "C-3", "{\"email\":\"c3@example.org\"}");
    tu_put(&f->base, "C-4", "{\"email\":\"c4@example.org\"}");
    tu_put(&f->base, "C-7", "{\"email\":\"c7@example.org\"}");
    tu_put(&f->base, "C-8", "{\"email\":\"c8@example.org\",\"city\":\"Lyon\"}");
    consent(f, "C-1", "marketing.email", CK_CONSENT_GRANTED, 0);
    consent(f, "C-1", "analytics", CK_CONSENT_OBJECTED, 0);
    consent(f, "C-2", "marketing.email", CK_CONSENT_GRANTED, T0 + 10 * DAY);
    consent(f, "C-2", "health", CK_CONSENT_REFUSED, 0);
    consent(f, "C-3", "marketing.email", CK_CONSENT_WITHDRAWN, 0);
    consent(f, "C-4", "marketing.email", CK_CONSENT_GRANTED, T0 + 5 * DAY);
    consent(f, "C-7", "marketing.email", CK_CONSENT_GRANTED, T0 + 60 * DAY);
    consent(f, "C-8", "marketing.email", CK_CONSENT_GRANTED, 0);
    import(f, "{\"ref\":\"R-5\",\"fields\":{\"email\":\"r5@example.org\"},"
              "\"consent\":{\"marketing.email\":true,\"analytics\":{\"state\":\"objected\"}}}\n"
              "{\"ref\":\"R-6\",\"fields\":{\"email\":\"r6@example.org\"},"
              "\"consent\":{\"marketing.email\":false}}\n");

    release(f, "C-1", "marketing.email", "crm");
    release(f, "C-3", "marketing.email", "crm");
    release(f, "C-1", "service", "shop");
    release(f, "C-2", "analytics", "crm");
    ck_who w1 = tu_by_ref("C-1");
    assert_int_equal(ck_contact_record(f->base.st, &w1, "email", "crm"), CK_OK);
    ck_who w8 = tu_by_ref("C-8");
    char *receipt = NULL;
    assert_int_equal(ck_erase(&receipt, f->base.st, &w8, "art17-request", "dpo"), CK_OK);
    ck_free(receipt);

    f->base.now = T0 + 6 * DAY;
    segment(f, "marketing.email", "mailer");
}

static json_t *report(fx *f, const ck_audit_filter *flt)
{
    char *text = NULL;
    int rc = ck_audit_report_json(&text, f->base.st, flt);
    if (rc != CK_OK)
        fail_msg("report: %s", ck_errmsg(f->base.st));
    for (size_t i = 0; i < sizeof SECRETS / sizeof SECRETS[0]; i++)
        if (strstr(text, SECRETS[i]) != NULL)
            fail_msg("the report holds a value of the test data: %s", SECRETS[i]);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    ck_free(text);
    assert_non_null(j);
    return j;
}

/* The integer at a path of keys, NULL-terminated; -1 when absent. */
static long long at(const json_t *j, ...)
{
    va_list ap;
    va_start(ap, j);
    const char *k;
    while (j != NULL && (k = va_arg(ap, const char *)) != NULL)
        j = json_object_get(j, k);
    va_end(ap);
    return json_is_integer(j) ? (long long)json_integer_value(j) : -1;
}

static void check_consents_now(const json_t *j)
{
    const json_t *p = json_object_get(json_object_get(j, "consents_now"), "purposes");
    const json_t *m = json_object_get(p, "marketing.email");
    /* C-1, C-2, C-7, R-5; C-8 was erased, C-4 expired */
    assert_int_equal(at(m, "granted", NULL), 4);
    assert_int_equal(at(m, "expired", NULL), 1);
    assert_int_equal(at(m, "expiring_30d", NULL), 1);
    assert_int_equal(at(m, "withdrawn", NULL), 1);
    assert_int_equal(at(m, "refused", NULL), 1);
    assert_int_equal(at(m, "objected", NULL), 0);
    assert_string_equal(json_string_value(json_object_get(m, "basis")), "consent");
    const json_t *a = json_object_get(p, "analytics");
    assert_int_equal(at(a, "objected", NULL), 2);
    assert_int_equal(at(a, "granted", NULL), 0);
    assert_int_equal(at(p, "health", "refused", NULL), 1);
    assert_int_equal(at(p, "health", "granted", NULL), 0);
    assert_int_equal(at(p, "service", "granted", NULL), 0);
    assert_int_equal(json_object_size(p), 4);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "consents_now"), "at")),
        "2026-01-07T00:00:00.000Z");
}

static void test_report_counts(void **state)
{
    fx *f = *state;
    scenario(f);
    json_t *j = report(f, NULL);

    /* releases and segment answers, per purpose, per actor, per reason */
    assert_int_equal(at(j, "releases", NULL), 4);
    assert_true(f->answers[0] == 4); /* C-1, C-2, C-7, R-5 */
    assert_int_equal(at(j, "segment_answers", NULL), 4);
    for (int pi = 0; pi < 4; pi++) {
        const json_t *p = json_object_get(json_object_get(j, "purposes"), PURPOSES[pi]);
        if (f->releases[pi] == 0 && f->answers[pi] == 0) {
            assert_null(p);
            continue;
        }
        assert_int_equal(at(p, "releases", NULL), f->releases[pi]);
        assert_int_equal(at(p, "segment_answers", NULL), f->answers[pi]);
        assert_int_equal(at(p, "fields_released", NULL), f->released[pi]);
        const json_t *wh = json_object_get(p, "withheld");
        for (int r = 1; r < 12; r++) {
            long long got = at(wh, ck_reason_name((ck_reason)r), NULL);
            assert_int_equal(got < 0 ? 0 : got, f->withheld[pi][r]);
        }
    }
    /* the withdrawn consent and the special field show up as reasons */
    assert_true(f->withheld[0][CK_WITHHELD_WITHDRAWN] == 3);
    assert_int_equal(at(j, "purposes", "marketing.email", "withheld", "withdrawn", NULL), 3);
    assert_true(at(j, "purposes", "marketing.email", "withheld", "special_category", NULL) >= 1);
    assert_int_equal(at(j, "actors", "crm", "releases", NULL), 3);
    assert_int_equal(at(j, "actors", "shop", "releases", NULL), 1);
    assert_int_equal(at(j, "actors", "mailer", "segment_answers", NULL), 4);

    /* consent changes, the import's pairs included */
    assert_int_equal(at(j, "consent_changes", "total", NULL), 11);
    const json_t *cc = json_object_get(json_object_get(j, "consent_changes"), "by_purpose");
    assert_int_equal(at(cc, "marketing.email", "granted", NULL), 6);
    assert_int_equal(at(cc, "marketing.email", "withdrawn", NULL), 1);
    assert_int_equal(at(cc, "marketing.email", "refused", NULL), 1);
    assert_int_equal(at(cc, "analytics", "objected", NULL), 2);
    assert_int_equal(at(cc, "health", "refused", NULL), 1);

    assert_int_equal(at(j, "contacts", "total", NULL), 1);
    assert_int_equal(at(j, "contacts", "by_channel", "email", NULL), 1);
    assert_int_equal(at(j, "erasures", NULL), 1);
    assert_int_equal(at(j, "exports", NULL), 0);
    assert_int_equal(at(j, "schema_changes", NULL), 1);
    assert_int_equal(at(j, "key_operations", NULL), 0);
    assert_int_equal(at(j, "actions", "import", NULL), 1);
    assert_int_equal(at(j, "actions", "consent", NULL), 10); /* 8 + 2 import entries */

    /* every entry of the log was walked */
    ck_audit_cursor *c = NULL;
    assert_int_equal(ck_audit_query(&c, f->base.st, NULL), CK_OK);
    const ck_audit_record *r;
    long long n = 0;
    while (ck_audit_next(c, &r) == CK_OK)
        n++;
    ck_audit_cursor_free(c);
    assert_int_equal(at(j, "entries", NULL), n);
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "range"), "first")));
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "range"), "last")));
    check_consents_now(j);
    json_decref(j);
}

static void test_report_filters(void **state)
{
    fx *f = *state;
    scenario(f);

    /* purpose: its entries only, the import's pair included */
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.purpose = "analytics";
    json_t *j = report(f, &flt);
    assert_int_equal(at(j, "consent_changes", "total", NULL), 2);
    assert_int_equal(at(j, "consent_changes", "by_purpose", "analytics", "objected", NULL), 2);
    assert_null(json_object_get(
        json_object_get(json_object_get(j, "consent_changes"), "by_purpose"), "marketing.email"));
    assert_int_equal(at(j, "releases", NULL), 1);
    assert_int_equal(at(j, "segment_answers", NULL), 0);
    assert_int_equal(at(j, "erasures", NULL), 0);
    assert_int_equal(at(j, "contacts", "total", NULL), 0);
    assert_int_equal(at(j, "entries", NULL), 3); /* 2 consent entries, 1 release */
    const json_t *p = json_object_get(json_object_get(j, "consents_now"), "purposes");
    assert_int_equal(json_object_size(p), 1);
    assert_int_equal(at(p, "analytics", "objected", NULL), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "filter"), "purpose")),
                        "analytics");
    json_decref(j);

    /* actor */
    flt = (ck_audit_filter)CK_AUDIT_FILTER_INIT;
    flt.actor = "crm";
    j = report(f, &flt);
    assert_int_equal(at(j, "releases", NULL), 3);
    assert_int_equal(at(j, "contacts", "total", NULL), 1);
    assert_int_equal(at(j, "consent_changes", "total", NULL), 0);
    assert_int_equal(at(j, "erasures", NULL), 0);
    assert_null(json_object_get(json_object_get(j, "actors"), "shop"));
    json_decref(j);

    /* time: nothing after the far future; everything before it */
    flt = (ck_audit_filter)CK_AUDIT_FILTER_INIT;
    flt.since_ms = UINT64_C(32503680000000); /* year 3000 */
    j = report(f, &flt);
    assert_int_equal(at(j, "entries", NULL), 0);
    assert_true(json_is_null(json_object_get(json_object_get(j, "range"), "first")));
    check_consents_now(j); /* the current state does not depend on the log */
    json_decref(j);
    flt = (ck_audit_filter)CK_AUDIT_FILTER_INIT;
    flt.until_ms = UINT64_C(32503680000000);
    j = report(f, &flt);
    assert_int_equal(at(j, "releases", NULL), 4);
    json_decref(j);

    /* bad version */
    flt = (ck_audit_filter)CK_AUDIT_FILTER_INIT;
    flt.version = 99;
    char *text = NULL;
    assert_int_equal(ck_audit_report_json(&text, f->base.st, &flt), CK_EINVAL);
    assert_null(text);
    assert_int_equal(ck_audit_report_json(NULL, f->base.st, NULL), CK_EINVAL);
}

static void test_report_empty(void **state)
{
    fx *f = *state;
    json_t *j = report(f, NULL);
    assert_true(json_is_null(json_object_get(json_object_get(j, "consents_now"), "purposes")));
    assert_int_equal(at(j, "releases", NULL), 0);
    assert_true(at(j, "entries", NULL) >= 1); /* the store's "init" */
    json_decref(j);
}

static void test_audit_subject(void **state)
{
    fx *f = *state;
    scenario(f);
    unsigned char pn[CK_AUDIT_PSEUDONYM_BYTES], pn2[CK_AUDIT_PSEUDONYM_BYTES];
    ck_who w = tu_by_ref("C-1");
    assert_int_equal(ck_audit_subject(pn, f->base.st, &w), CK_OK);
    /* the same subject named otherwise: the same pseudonym */
    ck_who wl = {CK_BY_LOOKUP, "Alice@Example.org", 0, "email", NULL, NULL};
    assert_int_equal(ck_audit_subject(pn2, f->base.st, &wl), CK_OK);
    assert_memory_equal(pn, pn2, sizeof pn);
    unsigned char id[CK_SUBJECT_ID_BYTES];
    char hex[2 * CK_SUBJECT_ID_BYTES + 1];
    assert_int_equal(ck_subject_find(id, f->base.st, &w), CK_OK);
    ck_subject_id_hex(hex, id);
    ck_who wi = {CK_BY_ID, hex, 0, NULL, NULL, NULL};
    assert_int_equal(ck_audit_subject(pn2, f->base.st, &wi), CK_OK);
    assert_memory_equal(pn, pn2, sizeof pn);

    /* it is the subject of C-1's release entries, and of no one else's */
    ck_audit_cursor *c = NULL;
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "release";
    assert_int_equal(ck_audit_query(&c, f->base.st, &flt), CK_OK);
    const ck_audit_record *r;
    int mine = 0, others = 0;
    while (ck_audit_next(c, &r) == CK_OK) {
        assert_non_null(r->subject);
        if (memcmp(r->subject, pn, sizeof pn) == 0)
            mine++;
        else
            others++;
    }
    ck_audit_cursor_free(c);
    assert_int_equal(mine, 2);
    assert_int_equal(others, 2);
    /* and filtering on it gives C-1's entries: 2 consents, 2 releases, a
     * contact, a segment answer */
    flt = (ck_audit_filter)CK_AUDIT_FILTER_INIT;
    flt.subject = pn;
    assert_int_equal(ck_audit_query(&c, f->base.st, &flt), CK_OK);
    int n = 0;
    while (ck_audit_next(c, &r) == CK_OK)
        n++;
    ck_audit_cursor_free(c);
    assert_int_equal(n, 6);

    /* unknown, erased */
    ck_who wu = tu_by_ref("nobody");
    assert_int_equal(ck_audit_subject(pn2, f->base.st, &wu), CK_ENOTFOUND);
    static const unsigned char zero[CK_AUDIT_PSEUDONYM_BYTES] = {0};
    assert_memory_equal(pn2, zero, sizeof zero);
    ck_who we = tu_by_ref("C-8");
    assert_int_equal(ck_audit_subject(pn2, f->base.st, &we), CK_ENOTFOUND);
    assert_int_equal(ck_audit_subject(NULL, f->base.st, &w), CK_EINVAL);
    assert_int_equal(ck_audit_subject(pn2, f->base.st, NULL), CK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_subject, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
