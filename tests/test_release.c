/*
 * test_release.c - subjects, writes, import and the release rules of
 * DESIGN.md section 4 through the public API, with a controlled clock.
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
    "\"phone\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true},"
    "\"first_name\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"postal_code\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"birth_date\":{\"type\":\"date\",\"sensitivity\":\"personal\"},"
    "\"allergies\":{\"type\":\"string\",\"sensitivity\":\"special\"},"
    "\"interests\":{\"type\":\"list\",\"sensitivity\":\"personal\"},"
    "\"spend\":{\"type\":\"int\",\"sensitivity\":\"personal\"},"
    "\"note\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"retention_days\":10}},"
    "\"purposes\":{"
    "\"marketing.email\":{\"basis\":\"consent\",\"description\":\"Offers by e-mail\","
    "\"benefit\":\"Discounts\",\"fields\":[\"email\",\"first_name\",\"allergies\"],"
    "\"channel\":{\"type\":\"email\",\"field\":\"email\",\"cap\":{\"count\":2,\"days\":30}}},"
    "\"analytics\":{\"basis\":\"legitimate_interest\",\"description\":\"Statistics\","
    "\"benefit\":\"Better shops\",\"fields\":[\"birth_date\",\"postal_code\",\"spend\",\"email\","
    "\"city\"],\"minimize\":{\"birth_date\":\"year\",\"postal_code\":\"prefix:2\","
    "\"spend\":\"band:100,1000\",\"email\":\"domain\"}},"
    "\"service\":{\"basis\":\"contract\",\"description\":\"Orders\",\"benefit\":\"Delivery\","
    "\"fields\":[\"email\",\"phone\",\"first_name\",\"city\",\"allergies\",\"note\","
    "\"interests\"]},"
    "\"health\":{\"basis\":\"consent\",\"description\":\"Diet advice\",\"benefit\":\"Safe "
    "meals\",\"fields\":[\"allergies\",\"first_name\"]}}}";

static int setup(void **state)
{
    return tu_fx_setup(state, "release", T0, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC, SCHEMA);
}

static void consent(tu_fx *f, const char *ref, const char *purpose, ck_consent_state s,
                    const char *const *fields, size_t nfields, const char *const *recips,
                    size_t nrecips, int64_t expires)
{
    ck_who w = tu_by_ref(ref);
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = purpose;
    c.state = s;
    c.fields = fields;
    c.nfields = nfields;
    c.recipients = recips;
    c.nrecipients = nrecips;
    c.expires = expires;
    c.source = "test";
    int rc = ck_consent_record(f->st, &w, &c, "tester");
    if (rc != CK_OK)
        fail_msg("consent %s: %s", purpose, ck_errmsg(f->st));
}

/* Release and return the JSON answer (caller frees with ck_free). */
static char *get(tu_fx *f, const char *ref, const char *purpose, const char *recipient)
{
    ck_request r = CK_REQUEST_INIT;
    r.actor = "crm";
    r.purpose = purpose;
    r.recipient = recipient;
    r.subject = tu_by_ref(ref);
    ck_result *res = NULL;
    int rc = ck_release(&res, f->st, &r);
    if (rc != CK_OK)
        fail_msg("release %s: %s", purpose, ck_errmsg(f->st));
    char *js = NULL;
    assert_int_equal(ck_result_json(&js, res), CK_OK);
    ck_result_free(res);
    return js;
}

/* The reason (or "released") of `field` in a release. */
static const char *reason_of(tu_fx *f, const char *ref, const char *purpose, const char *recipient,
                             const char *field)
{
    static char out[64];
    ck_request r = CK_REQUEST_INIT;
    r.actor = "crm";
    r.purpose = purpose;
    r.recipient = recipient;
    r.subject = tu_by_ref(ref);
    r.fields = &field;
    r.nfields = 1;
    ck_result *res = NULL;
    int rc = ck_release(&res, f->st, &r);
    if (rc != CK_OK)
        fail_msg("release %s/%s: %s", purpose, field, ck_errmsg(f->st));
    assert_int_equal(ck_result_count(res), 1);
    snprintf(out, sizeof out, "%s", ck_reason_name(ck_result_field(res, 0)->reason));
    ck_result_free(res);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Subjects and writes                                                      */
/* ------------------------------------------------------------------------ */

static void test_put_find(void **state)
{
    tu_fx *f = *state;
    unsigned char id[CK_SUBJECT_ID_BYTES], id2[CK_SUBJECT_ID_BYTES];
    char hex[33];
    ck_who w = tu_by_ref("C-1");
    assert_int_equal(ck_put_json(id, f->st, &w, "{\"first_name\":\"Zoé\"}", 20, 0), CK_ENOTFOUND);
    const char *js = "{\"email\":\"  Zoe.Martin@Example.FR \",\"phone\":\"06 12 34 56 78\"}";
    assert_int_equal(ck_put_json(id, f->st, &w, js, strlen(js), CK_PUT_CREATE), CK_OK);
    /* by ref, by id, by normalised look-ups */
    assert_int_equal(ck_subject_find(id2, f->st, &w), CK_OK);
    assert_memory_equal(id, id2, sizeof id);
    ck_subject_id_hex(hex, id);
    ck_who wi = {CK_BY_ID, hex, 0, NULL, NULL, NULL};
    assert_int_equal(ck_subject_find(id2, f->st, &wi), CK_OK);
    ck_who we = {CK_BY_LOOKUP, "zoe.martin@example.fr", 0, "email", NULL, NULL};
    assert_int_equal(ck_subject_find(id2, f->st, &we), CK_OK);
    assert_memory_equal(id, id2, sizeof id);
    ck_who wp = {CK_BY_LOOKUP, "+33612345678", 0, "phone", NULL, NULL};
    assert_int_equal(ck_subject_find(id2, f->st, &wp), CK_OK);
    /* not identifying, unknown field, unknown value */
    ck_who wc = {CK_BY_LOOKUP, "Paris", 0, "city", NULL, NULL};
    assert_int_equal(ck_subject_find(id2, f->st, &wc), CK_EINVAL);
    ck_who wx = {CK_BY_LOOKUP, "x@y.z", 0, "email", NULL, NULL};
    assert_int_equal(ck_subject_find(id2, f->st, &wx), CK_ENOTFOUND);
    /* a new e-mail moves the index: the old one no longer finds it */
    js = "{\"email\":\"zoe@new.fr\"}";
    assert_int_equal(ck_put_json(NULL, f->st, &w, js, strlen(js), 0), CK_OK);
    assert_int_equal(ck_subject_find(id2, f->st, &we), CK_ENOTFOUND);
    ck_who wn = {CK_BY_LOOKUP, "ZOE@new.fr", 0, "email", NULL, NULL};
    assert_int_equal(ck_subject_find(id2, f->st, &wn), CK_OK);
    /* deleting the field removes its index entry */
    js = "{\"email\":null}";
    assert_int_equal(ck_put_json(NULL, f->st, &w, js, strlen(js), 0), CK_OK);
    assert_int_equal(ck_subject_find(id2, f->st, &wn), CK_ENOTFOUND);
    /* wrong types and unknown fields change nothing */
    js = "{\"first_name\":\"Ann\",\"birth_date\":\"2023-02-29\"}";
    assert_int_equal(ck_put_json(NULL, f->st, &w, js, strlen(js), 0), CK_EINVAL);
    assert_non_null(strstr(ck_errmsg(f->st), "birth_date"));
    assert_null(strstr(ck_errmsg(f->st), "2023"));
    js = "{\"first_name\":\"Ann\",\"shoe\":\"42\"}";
    assert_int_equal(ck_put_json(NULL, f->st, &w, js, strlen(js), 0), CK_EINVAL);
    char *a = get(f, "C-1", "service", NULL);
    assert_null(strstr(a, "Ann"));
    ck_free(a);
    /* typed put */
    ck_value v = {.type = CK_TYPE_INT, .u.i = 5};
    ck_field_value fv = {"first_name", &v};
    assert_int_equal(ck_put(NULL, f->st, &w, &fv, 1, 0), CK_EINVAL);
    v.type = CK_TYPE_STRING;
    v.u.str.ptr = "Ann";
    v.u.str.len = 3;
    assert_int_equal(ck_put(NULL, f->st, &w, &fv, 1, 0), CK_OK);
    a = get(f, "C-1", "service", NULL);
    assert_non_null(strstr(a, "\"first_name\":\"Ann\""));
    ck_free(a);
}

static void test_ambiguous_and_alias(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "A", "{\"email\":\"family@home.fr\"}");
    tu_put(f, "B", "{\"email\":\"FAMILY@home.fr\"}");
    unsigned char id[CK_SUBJECT_ID_BYTES];
    ck_who we = {CK_BY_LOOKUP, "family@home.fr", 0, "email", NULL, NULL};
    assert_int_equal(ck_subject_find(id, f->st, &we), CK_EAMBIGUOUS);
    /* an alias-only subject */
    assert_int_equal(ck_subject_create(id, f->st, NULL, 0), CK_OK);
    char hex[33];
    ck_subject_id_hex(hex, id);
    ck_who wi = {CK_BY_ID, hex, 0, NULL, NULL, NULL};
    assert_int_equal(ck_alias_add(f->st, &wi, "card-0042", 0), CK_OK);
    assert_int_equal(ck_alias_add(f->st, &wi, "card-0042", 0), CK_OK);
    ck_who wa = tu_by_ref("A");
    assert_int_equal(ck_alias_add(f->st, &wa, "card-0042", 0), CK_EEXIST);
    ck_who al = {CK_BY_ALIAS, " card-0042 ", 0, NULL, NULL, NULL};
    unsigned char got[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(got, f->st, &al), CK_OK);
    assert_memory_equal(got, id, sizeof id);
    assert_int_equal(ck_alias_remove(f->st, &wi, "card-0042", 0), CK_OK);
    assert_int_equal(ck_subject_find(got, f->st, &al), CK_ENOTFOUND);
    assert_int_equal(ck_alias_remove(f->st, &wi, "card-0042", 0), CK_ENOTFOUND);
    /* a ref is unique */
    assert_int_equal(ck_subject_create(NULL, f->st, "A", 0), CK_EEXIST);
}

static void test_pseudonyms(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "P1", "{\"email\":\"p1@x.fr\",\"city\":\"Lyon\"}");
    tu_put(f, "P2", "{\"email\":\"p2@x.fr\",\"city\":\"Lyon\"}");
    consent(f, "P1", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, (const char *[]){"acme"}, 1,
            0);
    char ps[4][64];
    const char *ctx[4][2] = {{"service", NULL},
                             {"analytics", NULL},
                             {"marketing.email", NULL},
                             {"marketing.email", "acme"}};
    for (int i = 0; i < 4; i++) {
        ck_request r = CK_REQUEST_INIT;
        r.actor = "crm";
        r.purpose = ctx[i][0];
        r.recipient = ctx[i][1];
        r.subject = tu_by_ref("P1");
        ck_result *res;
        assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
        snprintf(ps[i], sizeof ps[i], "%s", ck_result_subject(res));
        assert_int_equal(strlen(ps[i]), 43);
        ck_result_free(res);
        /* stable */
        assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
        assert_string_equal(ps[i], ck_result_subject(res));
        ck_result_free(res);
        /* another subject gets another one */
        r.subject = tu_by_ref("P2");
        assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
        assert_string_not_equal(ps[i], ck_result_subject(res));
        ck_result_free(res);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ps[i], ps[j]);
    /* resolvable in its own context only */
    unsigned char a[CK_SUBJECT_ID_BYTES], b[CK_SUBJECT_ID_BYTES];
    ck_who w1 = tu_by_ref("P1");
    assert_int_equal(ck_subject_find(a, f->st, &w1), CK_OK);
    ck_who wp = {CK_BY_PSEUDONYM, ps[3], 0, NULL, "marketing.email", "acme"};
    assert_int_equal(ck_subject_find(b, f->st, &wp), CK_OK);
    assert_memory_equal(a, b, sizeof a);
    wp.recipient = NULL;
    assert_int_equal(ck_subject_find(b, f->st, &wp), CK_ENOTFOUND);
    wp.purpose = "service";
    assert_int_equal(ck_subject_find(b, f->st, &wp), CK_ENOTFOUND);
    ck_who wn = {CK_BY_PSEUDONYM, ps[0], 0, NULL, NULL, NULL};
    assert_int_equal(ck_subject_find(b, f->st, &wn), CK_EINVAL); /* no context */
    /* in a release, the request's context */
    ck_request r = CK_REQUEST_INIT;
    r.actor = "crm";
    r.purpose = "service";
    r.subject = wn;
    ck_result *res;
    assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
    assert_string_equal(ck_result_subject(res), ps[0]);
    ck_result_free(res);
    r.purpose = "analytics";
    assert_int_equal(ck_release(&res, f->st, &r), CK_ENOTFOUND);
}

/* ------------------------------------------------------------------------ */
/* Import                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct rejects {
    uint64_t lines[32];
    char reasons[32][200];
    int n;
} rejects;

static void on_reject(void *ctx, uint64_t line, const char *reason)
{
    rejects *r = ctx;
    if (r->n < 32) {
        r->lines[r->n] = line;
        snprintf(r->reasons[r->n], sizeof r->reasons[0], "%s", reason);
        r->n++;
    }
}

static void test_import_mixed(void **state)
{
    tu_fx *f = *state;
    const char *text = "{\"ref\":\"I-1\",\"fields\":{\"email\":\"a@b.fr\",\"city\":\"Paris\"},"
                       "\"consent\":{\"marketing.email\":true,\"analytics\":{\"state\":"
                       "\"objected\"}}}\n"                                   /* 1 ok */
                       "{\"ref\":\"I-2\",\"fields\":{\"email\":\"c@d.fr\"\n" /* 2 bad json */
                       "[1,2]\n"                                             /* 3 not obj */
                       "{\"ref\":\"I-3\",\"fields\":{\"shoe\":\"42\"}}\n"    /* 4 field */
                       "{\"ref\":\"I-4\",\"fields\":{\"spend\":\"lots\"}}\n" /* 5 type */
                       "{\"ref\":\"I-5\",\"fields\":{\"birth_date\":\"2023-02-29\"}}\n" /* 6 date */
                       "{\"ref\":\"I-6\",\"consent\":{\"marketing.email\":\"yes\"}}\n"  /* 7 consent
                                                                                         */
                       "{\"ref\":\"I-7\",\"consent\":{\"nope\":true}}\n" /* 8 purpose */
                       "\n"                                              /* 9 blank */
                       "{\"fields\":{\"city\":\"Nice\"}}\n"              /* 10 no ref */
                       "{\"ref\":\"I-8\",\"fields\":{\"city\":\"Nice\"},\"extra\":1}\n" /* 11 key */
                       "{\"ref\":\"I-9\",\"consent\":{\"health\":{\"state\":\"granted\",\"fields\":"
                       "[\"email\"]}}}\n"
                       "{\"ref\":\"I-10\",\"fields\":{\"spend\":\"1200\",\"interests\":[\"vélo\","
                       "\"jazz\"]}}"; /* 13 ok, no final newline */
    rejects rj = {0};
    ck_import_options o = CK_IMPORT_OPTIONS_INIT;
    o.on_reject = on_reject;
    o.ctx = &rj;
    o.batch_lines = 3;
    o.source = "file.jsonl";
    ck_importer *imp;
    assert_int_equal(ck_import_begin(&imp, f->st, &o), CK_OK);
    /* feed in awkward chunks */
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i += 7)
        assert_int_equal(ck_import_feed(imp, text + i, n - i < 7 ? n - i : 7), CK_OK);
    ck_import_stats s;
    assert_int_equal(ck_import_finish(imp, &s), CK_OK);
    assert_int_equal(s.lines, 13);
    assert_int_equal(s.imported, 2);
    assert_int_equal(s.created, 2);
    assert_int_equal(s.rejected, 10);
    assert_int_equal(s.consents, 2);
    const uint64_t bad[] = {2, 3, 4, 5, 6, 7, 8, 10, 11, 12};
    assert_int_equal(rj.n, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rj.lines[i], bad[i]);
        /* never a value in a reason */
        assert_null(strstr(rj.reasons[i], "c@d.fr"));
        assert_null(strstr(rj.reasons[i], "lots"));
        assert_null(strstr(rj.reasons[i], "2023-02-29"));
    }
    assert_non_null(strstr(rj.reasons[2], "shoe"));
    assert_non_null(strstr(rj.reasons[3], "spend"));
    assert_non_null(strstr(rj.reasons[6], "nope"));
    /* nothing of the bad lines landed */
    const char *refs[] = {"I-2", "I-3", "I-4", "I-5", "I-6", "I-7", "I-8", "I-9"};
    for (size_t i = 0; i < 8; i++) {
        unsigned char id[CK_SUBJECT_ID_BYTES];
        ck_who w = tu_by_ref(refs[i]);
        assert_int_equal(ck_subject_find(id, f->st, &w), CK_ENOTFOUND);
    }
    char *a = get(f, "I-1", "marketing.email", NULL);
    assert_non_null(strstr(a, "\"email\":\"a@b.fr\""));
    ck_free(a);
    assert_string_equal(reason_of(f, "I-1", "analytics", NULL, "city"), "objected");
    a = get(f, "I-10", "analytics", NULL);
    assert_non_null(strstr(a, "\"spend\":\">=1000\""));
    ck_free(a);
    /* the consent's evidence defaults to the source */
    ck_who w = tu_by_ref("I-1");
    char *cj;
    assert_int_equal(ck_consent_json(&cj, f->st, &w), CK_OK);
    assert_non_null(strstr(cj, "\"source\":\"file.jsonl\""));
    ck_free(cj);

    /* upsert: the same ref again updates, keeps the other fields */
    assert_int_equal(ck_import_begin(&imp, f->st, &o), CK_OK);
    const char *again = "{\"ref\":\"I-1\",\"fields\":{\"first_name\":\"Léa\"},"
                        "\"consent\":{\"marketing.email\":false}}\n";
    assert_int_equal(ck_import_feed(imp, again, strlen(again)), CK_OK);
    assert_int_equal(ck_import_finish(imp, &s), CK_OK);
    assert_int_equal(s.imported, 1);
    assert_int_equal(s.updated, 1);
    assert_int_equal(s.created, 0);
    a = get(f, "I-1", "service", NULL);
    assert_non_null(strstr(a, "\"first_name\":\"Léa\""));
    assert_non_null(strstr(a, "\"city\":\"Paris\""));
    ck_free(a);
    assert_string_equal(reason_of(f, "I-1", "marketing.email", NULL, "email"), "refused");
}

/* ------------------------------------------------------------------------ */
/* The rules                                                                */
/* ------------------------------------------------------------------------ */

static void test_consent_basis(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "R", "{\"email\":\"r@x.fr\",\"first_name\":\"Rémi\",\"allergies\":\"nuts\"}");
    /* no record */
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "email"), "no_consent");
    /* not in purpose comes first */
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "city"), "not_in_purpose");
    consent(f, "R", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, 0);
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "email"), "released");
    /* special field: a consent to all fields is not explicit */
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "allergies"),
                        "special_category");
    consent(f, "R", "marketing.email", CK_CONSENT_GRANTED, (const char *[]){"email", "allergies"},
            2, NULL, 0, 0);
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "allergies"), "released");
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "first_name"), "no_consent");
    /* recipients */
    assert_string_equal(reason_of(f, "R", "marketing.email", "acme", "email"), "recipient");
    consent(f, "R", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, (const char *[]){"acme"}, 1, 0);
    assert_string_equal(reason_of(f, "R", "marketing.email", "acme", "email"), "released");
    assert_string_equal(reason_of(f, "R", "marketing.email", "other", "email"), "recipient");
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "email"), "released");
    /* states */
    consent(f, "R", "marketing.email", CK_CONSENT_WITHDRAWN, NULL, 0, NULL, 0, 0);
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "email"), "withdrawn");
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "allergies"), "withdrawn");
    consent(f, "R", "marketing.email", CK_CONSENT_REFUSED, NULL, 0, NULL, 0, 0);
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "email"), "refused");
    /* expiry, at the boundary */
    consent(f, "R", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, T0 + 10 * DAY);
    f->now = T0 + 10 * DAY - 1;
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "email"), "released");
    f->now = T0 + 10 * DAY;
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "email"), "expired");
    /* precedence: expired before special_category and unset */
    assert_string_equal(reason_of(f, "R", "marketing.email", NULL, "allergies"), "expired");
}

static void test_other_bases(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "L",
           "{\"email\":\"Lou@Shop.FR\",\"birth_date\":\"1990-07-14\",\"postal_code\":\"69003\","
           "\"spend\":\"250\",\"allergies\":\"gluten\"}");
    /* legitimate interest: released, minimised, until the subject objects */
    char *a = get(f, "L", "analytics", NULL);
    assert_non_null(strstr(a, "\"birth_date\":1990"));
    assert_non_null(strstr(a, "\"postal_code\":\"69\""));
    assert_non_null(strstr(a, "\"spend\":\"100-1000\""));
    assert_non_null(strstr(a, "\"email\":\"Shop.FR\""));
    assert_non_null(strstr(a, "\"withheld\":{\"city\":\"unset\"}"));
    ck_free(a);
    consent(f, "L", "analytics", CK_CONSENT_OBJECTED, NULL, 0, NULL, 0, 0);
    assert_string_equal(reason_of(f, "L", "analytics", NULL, "birth_date"), "objected");
    assert_string_equal(reason_of(f, "L", "analytics", NULL, "city"), "objected");
    /* contract: no consent needed, but special still needs explicit consent */
    assert_string_equal(reason_of(f, "L", "service", NULL, "email"), "released");
    assert_string_equal(reason_of(f, "L", "service", NULL, "allergies"), "special_category");
    consent(f, "L", "service", CK_CONSENT_GRANTED, (const char *[]){"allergies"}, 1, NULL, 0, 0);
    assert_string_equal(reason_of(f, "L", "service", NULL, "allergies"), "released");
    /* explicit consent for ANOTHER purpose does not count */
    assert_string_equal(reason_of(f, "L", "health", NULL, "allergies"), "no_consent");
    /* a recipient needs a consent naming it, whatever the basis */
    assert_string_equal(reason_of(f, "L", "service", "partner", "email"), "recipient");
    /* unset is said only of a field that would otherwise be released */
    assert_string_equal(reason_of(f, "L", "service", NULL, "phone"), "unset");
    assert_string_equal(reason_of(f, "L", "marketing.email", NULL, "first_name"), "no_consent");
    /* an empty list is a value */
    tu_put(f, "L", "{\"interests\":[]}");
    a = get(f, "L", "service", NULL);
    assert_non_null(strstr(a, "\"interests\":[]"));
    ck_free(a);
}

static void test_retention(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "T", "{\"note\":\"call back\"}");
    f->now = T0 + 10 * DAY - 1;
    assert_string_equal(reason_of(f, "T", "service", NULL, "note"), "released");
    f->now = T0 + 10 * DAY;
    assert_string_equal(reason_of(f, "T", "service", NULL, "note"), "retention");
    /* a rewrite restarts the clock */
    tu_put(f, "T", "{\"note\":\"call back\"}");
    assert_string_equal(reason_of(f, "T", "service", NULL, "note"), "released");
}

static void test_contact_cap(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "K", "{\"email\":\"k@x.fr\",\"first_name\":\"Kim\"}");
    consent(f, "K", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, 0);
    ck_who w = tu_by_ref("K");
    assert_int_equal(ck_contact_record(f->st, &w, "email", "mailer"), CK_OK);
    f->now += DAY;
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "released");
    assert_int_equal(ck_contact_record(f->st, &w, "email", "mailer"), CK_OK);
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "contact_cap");
    /* only the channel's address field */
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "first_name"), "released");
    /* not for a purpose without the channel */
    assert_string_equal(reason_of(f, "K", "service", NULL, "email"), "released");
    /* the window slides: 30 days after the first contact */
    f->now = T0 + 30 * DAY - 1;
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "contact_cap");
    f->now = T0 + 30 * DAY;
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "released");
    /* do not contact */
    assert_int_equal(ck_contact_limit(f->st, &w, "email", 0, "dpo"), CK_OK);
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "contact_cap");
    assert_int_equal(ck_contact_limit(f->st, &w, "email", -1, "dpo"), CK_OK);
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "released");
    assert_int_equal(ck_contact_record(f->st, &w, "pigeon", "mailer"), CK_EINVAL);
    /* precedence: the basis comes before the cap */
    consent(f, "K", "marketing.email", CK_CONSENT_WITHDRAWN, NULL, 0, NULL, 0, 0);
    assert_int_equal(ck_contact_limit(f->st, &w, "email", 0, "dpo"), CK_OK);
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "withdrawn");
}

/* A contact the customer initiated does not count toward the cap. */
static void test_inbound_contacts(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "IN", "{\"email\":\"in@x.fr\",\"first_name\":\"Ines\"}");
    consent(f, "IN", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, 0);
    ck_who w = tu_by_ref("IN");
    for (int i = 0; i < 5; i++)
        assert_int_equal(ck_contact_record_v2(f->st, &w, "email", CK_CONTACT_INBOUND, "inbox"),
                         CK_OK);
    assert_string_equal(reason_of(f, "IN", "marketing.email", NULL, "email"), "released");
    /* outbound ones do, through either call */
    assert_int_equal(ck_contact_record_v2(f->st, &w, "email", 0, "mailer"), CK_OK);
    assert_string_equal(reason_of(f, "IN", "marketing.email", NULL, "email"), "released");
    assert_int_equal(ck_contact_record(f->st, &w, "email", "mailer"), CK_OK);
    assert_string_equal(reason_of(f, "IN", "marketing.email", NULL, "email"), "contact_cap");
    /* and an inbound one after the cap does not lift it */
    assert_int_equal(ck_contact_record_v2(f->st, &w, "email", CK_CONTACT_INBOUND, "inbox"), CK_OK);
    assert_string_equal(reason_of(f, "IN", "marketing.email", NULL, "email"), "contact_cap");
    /* bad flags, channel, actor: refused */
    assert_int_equal(ck_contact_record_v2(f->st, &w, "email", 0x2u, "inbox"), CK_EINVAL);
    assert_int_equal(ck_contact_record_v2(f->st, &w, "pigeon", CK_CONTACT_INBOUND, "inbox"),
                     CK_EINVAL);
    assert_int_equal(ck_contact_record_v2(f->st, &w, "email", CK_CONTACT_INBOUND, NULL), CK_EINVAL);
    assert_int_equal(ck_contact_record_v2(NULL, &w, "email", 0, "inbox"), CK_EINVAL);
    ck_who nobody = tu_by_ref("NOBODY");
    assert_int_equal(ck_contact_record_v2(f->st, &nobody, "email", CK_CONTACT_INBOUND, "inbox"),
                     CK_ENOTFOUND);
}

static void test_errors(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "E", "{\"city\":\"Metz\"}");
    ck_request r = CK_REQUEST_INIT;
    r.actor = "crm";
    r.purpose = "nope";
    r.subject = tu_by_ref("E");
    ck_result *res = (ck_result *)1;
    assert_int_equal(ck_release(&res, f->st, &r), CK_EINVAL);
    assert_null(res);
    r.purpose = "service";
    const char *fl[] = {"shoe"};
    r.fields = fl;
    r.nfields = 1;
    assert_int_equal(ck_release(&res, f->st, &r), CK_EINVAL);
    r.fields = NULL;
    r.nfields = 0;
    r.actor = NULL;
    assert_int_equal(ck_release(&res, f->st, &r), CK_EINVAL);
    r.actor = "crm";
    r.subject = tu_by_ref("nobody");
    assert_int_equal(ck_release(&res, f->st, &r), CK_ENOTFOUND);
    ck_who w = tu_by_ref("E");
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "health";
    c.state = CK_CONSENT_GRANTED;
    c.fields = (const char *[]){"email"};
    c.nfields = 1;
    assert_int_equal(ck_consent_record(f->st, &w, &c, "x"), CK_EINVAL);
    c.nfields = 0;
    c.purpose = "nope";
    assert_int_equal(ck_consent_record(f->st, &w, &c, "x"), CK_EINVAL);
}

static void test_consent_history(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "H", "{\"city\":\"Brest\"}");
    consent(f, "H", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, 0);
    f->now += 60;
    consent(f, "H", "health", CK_CONSENT_REFUSED, NULL, 0, NULL, 0, 0);
    f->now += 60;
    consent(f, "H", "marketing.email", CK_CONSENT_WITHDRAWN, NULL, 0, NULL, 0, 0);
    ck_who w = tu_by_ref("H");
    char *js;
    assert_int_equal(ck_consent_json(&js, f->st, &w), CK_OK);
    json_t *j = json_loads(js, 0, NULL);
    assert_non_null(j);
    json_t *cur = json_object_get(j, "current");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cur, "marketing.email"), "state")),
        "withdrawn");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cur, "health"), "state")),
                        "refused");
    json_t *h = json_object_get(j, "history");
    assert_int_equal(json_array_size(h), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "state")),
                        "granted");
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 1), "purpose")),
                        "health");
    json_decref(j);
    ck_free(js);
}

static void test_segment(void **state)
{
    tu_fx *f = *state;
    const char *cities[] = {"Paris", "Lyon", "Paris", "Paris", "Nice"};
    for (int i = 0; i < 5; i++) {
        char ref[8], js[128];
        snprintf(ref, sizeof ref, "S%d", i);
        snprintf(js, sizeof js, "{\"email\":\"s%d@x.fr\",\"city\":\"%s\",\"spend\":%d}", i,
                 cities[i], i * 300);
        tu_put(f, ref, js);
    }
    consent(f, "S0", "analytics", CK_CONSENT_OBJECTED, NULL, 0, NULL, 0, 0);
    ck_predicate where[] = {{"city", CK_PRED_EQ, "Paris", 0}};
    ck_segment_request q = CK_SEGMENT_INIT;
    q.actor = "crm";
    q.purpose = "analytics";
    q.where = where;
    q.nwhere = 1;
    q.fields = (const char *[]){"email"};
    q.nfields = 1;
    ck_cursor *c;
    assert_int_equal(ck_segment(&c, f->st, &q), CK_OK);
    const ck_result *r;
    int n = 0;
    int rc;
    while ((rc = ck_segment_next(c, &r)) == CK_OK) {
        assert_int_equal(ck_result_field(r, 0)->reason, CK_RELEASED);
        n++;
    }
    assert_int_equal(rc, CK_ENOTFOUND);
    ck_cursor_free(c);
    assert_int_equal(n, 2); /* S2, S3: S0 objected */
    /* consent basis: only the granted are visited; a predicate on a field
     * outside the subject's scope does not match */
    consent(f, "S1", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, 0);
    consent(f, "S2", "marketing.email", CK_CONSENT_GRANTED, (const char *[]){"email"}, 1, NULL, 0,
            0);
    consent(f, "S3", "marketing.email", CK_CONSENT_REFUSED, NULL, 0, NULL, 0, 0);
    ck_predicate w2[] = {{"first_name", CK_PRED_PREFIX, "", 0}};
    tu_put(f, "S1", "{\"first_name\":\"Ana\"}");
    tu_put(f, "S2", "{\"first_name\":\"Bob\"}");
    q.purpose = "marketing.email";
    q.where = w2;
    q.nwhere = 1;
    w2[0].value = "A";
    assert_int_equal(ck_segment(&c, f->st, &q), CK_OK);
    n = 0;
    while (ck_segment_next(c, &r) == CK_OK)
        n++;
    ck_cursor_free(c);
    assert_int_equal(n, 1); /* S1 */
    w2[0].value = "B";
    assert_int_equal(ck_segment(&c, f->st, &q), CK_OK);
    n = 0;
    while (ck_segment_next(c, &r) == CK_OK)
        n++;
    ck_cursor_free(c);
    assert_int_equal(n, 0); /* S2's first_name is outside its scope */
    /* range on a banded field compares the released label; on a field the
     * purpose does not declare: an error */
    ck_predicate w3[] = {{"phone", CK_PRED_EQ, "x", 0}};
    q.where = w3;
    assert_int_equal(ck_segment(&c, f->st, &q), CK_EINVAL);
    /* limit */
    q.purpose = "service";
    q.where = NULL;
    q.nwhere = 0;
    q.limit = 2;
    assert_int_equal(ck_segment(&c, f->st, &q), CK_OK);
    n = 0;
    while (ck_segment_next(c, &r) == CK_OK)
        n++;
    ck_cursor_free(c);
    assert_int_equal(n, 2);
}

static void test_audit_of_releases(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "A1", "{\"email\":\"secret@x.fr\"}");
    char *a = get(f, "A1", "service", NULL);
    ck_free(a);
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "release";
    ck_audit_cursor *c;
    assert_int_equal(ck_audit_query(&c, f->st, &flt), CK_OK);
    const ck_audit_record *rec;
    int n = 0;
    while (ck_audit_next(c, &rec) == CK_OK)
        n++;
    ck_audit_cursor_free(c);
    assert_int_equal(n, 1);
    /* no value in any file of the log */
    char p[PATH_MAX];
    tu_path(p, sizeof p, f->dir, "audit-000001.log");
    assert_int_equal(tu_file_contains(p, "secret@x.fr", 11), 0);
    assert_int_equal(tu_file_contains(p, "A1", 2), 0);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_find, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_ambiguous_and_alias, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pseudonyms, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_import_mixed, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_consent_basis, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_other_bases, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_contact_cap, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_inbound_contacts, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_consent_history, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_segment, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_audit_of_releases, setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
