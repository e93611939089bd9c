/*
 * test_tcfmap.c - IAB TCF v2 TC strings mapped onto the schema's purposes
 * (ck_consent_tcf, core/tcfmap.c), through the public API with a
 * controlled clock: the state each mapping gives, the newest signal
 * winning, the evidence sealed with the record, the audit entries, the
 * release that follows, and the refusals that write nothing.
 *
 * TC strings are built here bit by bit with a small writer (as in
 * test_tcf.c), from the specification's field layout.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "ckstore.h"
#include "fixture.h"

#define T0 1767225600 /* the store's clock: 2026-01-01T00:00:00Z */

/* 2024-03-02T08:30:15.7Z in deciseconds, and in seconds. */
#define T_UPD     17093682157ULL
#define T_UPD_SEC 1709368215

static const char SCHEMA[] =
    "{\"fields\":{"
    "\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true},"
    "\"first_name\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{"
    "\"ads\":{\"basis\":\"consent\",\"description\":\"Partner ads\",\"benefit\":\"Offers\","
    "\"fields\":[\"email\",\"city\"],\"tcf\":{\"purposes\":[1,3,4],\"vendor\":755}},"
    "\"measure\":{\"basis\":\"legitimate_interest\",\"description\":\"Ad measurement\","
    "\"benefit\":\"Fewer ads\",\"fields\":[\"city\"],\"tcf\":{\"purposes\":[7,9],\"vendor\":755}},"
    "\"audience\":{\"basis\":\"legitimate_interest\",\"description\":\"Site statistics\","
    "\"benefit\":\"A better site\",\"fields\":[\"city\"],"
    "\"tcf\":{\"purposes\":[8,10],\"publisher\":true}},"
    "\"local\":{\"basis\":\"consent\",\"description\":\"Local offers\",\"benefit\":\"Discounts\","
    "\"fields\":[\"email\",\"city\"],"
    "\"tcf\":{\"purposes\":[1,3,4],\"special_features\":[1],\"publisher\":true}},"
    "\"basic\":{\"basis\":\"consent\",\"description\":\"Basic ads\",\"benefit\":\"Free site\","
    "\"fields\":[\"city\"],\"tcf\":{\"purposes\":[1]}},"
    "\"newsletter\":{\"basis\":\"consent\",\"description\":\"News\",\"benefit\":\"News\","
    "\"fields\":[\"email\"]},"
    "\"service\":{\"basis\":\"contract\",\"description\":\"Orders\",\"benefit\":\"Delivery\","
    "\"fields\":[\"email\",\"first_name\",\"city\"]}}}";

/* The purposes that declare "tcf", in name order (the result's order). */
enum { P_ADS, P_AUDIENCE, P_BASIC, P_LOCAL, P_MEASURE, N_MAPPED };
static const char *const MAPPED[N_MAPPED] = {"ads", "audience", "basic", "local", "measure"};

/* ------------------------------------------------------------------------ */
/* A bit writer and base64url encoder (as test_tcf.c)                       */
/* ------------------------------------------------------------------------ */

typedef struct bw {
    uint8_t b[512];
    size_t n; /* bits written */
} bw;

static void bw_u(bw *w, uint64_t v, unsigned int n)
{
    assert_true(w->n + n <= 8u * sizeof w->b);
    for (unsigned int i = n; i-- > 0;) {
        if ((v >> i) & 1u)
            w->b[w->n >> 3] |= (uint8_t)(0x80u >> (w->n & 7u));
        w->n++;
    }
}

#define ID(i) ((uint32_t)1 << ((i)-1))

/* Bit (id - 1) of `set` stands for id, written left to right. */
static void bw_set(bw *w, uint32_t set, unsigned int n)
{
    for (unsigned int id = 1; id <= n; id++)
        bw_u(w, (set >> (id - 1)) & 1u, 1);
}

static void bw_letters(bw *w, const char *two)
{
    bw_u(w, (uint64_t)(two[0] - 'A'), 6);
    bw_u(w, (uint64_t)(two[1] - 'A'), 6);
}

/* Base64url of the bits, zero-padded to a multiple of 24 bits, appended to
 * `out` (NUL-terminated, room for `max` bytes). */
static void bw_emit(const bw *w, char *out, size_t max)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t bits = (w->n + 23) / 24 * 24;
    size_t len = strlen(out);
    for (size_t i = 0; i < bits; i += 6) {
        unsigned int v = 0;
        for (size_t k = i; k < i + 6; k++)
            v = v << 1 | (k < w->n ? (w->b[k >> 3] >> (7u - (k & 7u))) & 1u : 0u);
        assert_true(len + 2 <= max);
        out[len++] = A[v];
    }
    out[len] = '\0';
}

/* A vendor section in range encoding with single ids (ascending). */
static void bw_vendors(bw *w, const unsigned int *ids, size_t n)
{
    bw_u(w, n > 0 ? ids[n - 1] : 0, 16);
    bw_u(w, 1, 1);
    bw_u(w, n, 12);
    for (size_t k = 0; k < n; k++) {
        bw_u(w, 0, 1);
        bw_u(w, ids[k], 16);
    }
}

/* What a test string says. Id sets are bitsets (ID(n)). */
typedef struct tcs {
    uint64_t updated; /* deciseconds */
    unsigned int cmp_id, cmp_version, policy;
    uint32_t sfo, pc, pli;
    unsigned int vc[2], vli[2]; /* vendor ids, 0-terminated */
    unsigned int na_purpose;    /* a "not allowed" restriction for vendor 755, 0: none */
    bool pub;                   /* with a publisher TC segment */
    uint32_t pub_c, pub_li;
} tcs;

/* Everything every mapping of SCHEMA reads, set. */
static tcs all_signals(void)
{
    tcs s = {T_UPD,
             300,
             7,
             4,
             ID(1),
             ID(1) | ID(3) | ID(4),
             ID(7) | ID(8) | ID(9) | ID(10),
             {755, 0},
             {755, 0},
             0,
             true,
             ID(1) | ID(3) | ID(4),
             ID(8) | ID(10)};
    return s;
}

static size_t nids(const unsigned int *ids)
{
    return ids[0] == 0 ? 0 : ids[1] == 0 ? 1 : 2;
}

/* The TC string of `s` into out (room for max bytes). */
static void tc_make(char *out, size_t max, const tcs *s)
{
    bw w;
    memset(&w, 0, sizeof w);
    bw_u(&w, 2, 6);
    bw_u(&w, s->updated, 36); /* Created */
    bw_u(&w, s->updated, 36); /* LastUpdated */
    bw_u(&w, s->cmp_id, 12);
    bw_u(&w, s->cmp_version, 12);
    bw_u(&w, 1, 6);
    bw_letters(&w, "FR");
    bw_u(&w, 150, 12);
    bw_u(&w, s->policy, 6);
    bw_u(&w, 0, 2);
    bw_set(&w, s->sfo, 12);
    bw_set(&w, s->pc, 24);
    bw_set(&w, s->pli, 24);
    bw_u(&w, 0, 1);
    bw_letters(&w, "FR");
    bw_vendors(&w, s->vc, nids(s->vc));
    bw_vendors(&w, s->vli, nids(s->vli));
    if (s->na_purpose != 0) {
        bw_u(&w, 1, 12);
        bw_u(&w, s->na_purpose, 6);
        bw_u(&w, 0, 2); /* not allowed */
        bw_u(&w, 1, 12);
        bw_u(&w, 0, 1);
        bw_u(&w, 755, 16);
    } else {
        bw_u(&w, 0, 12);
    }
    out[0] = '\0';
    bw_emit(&w, out, max);
    if (s->pub) {
        bw p;
        memset(&p, 0, sizeof p);
        bw_u(&p, 3, 3);
        bw_set(&p, s->pub_c, 24);
        bw_set(&p, s->pub_li, 24);
        bw_u(&p, 0, 6);
        size_t len = strlen(out);
        assert_true(len + 2 < max);
        out[len] = '.';
        out[len + 1] = '\0';
        bw_emit(&p, out, max);
    }
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

/* A store of `schema` holding subject C-1. */
static int open_with(void **state, const char *schema)
{
    if (tu_fx_setup(state, "tcfmap", T0, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC, schema) != 0)
        return -1;
    tu_fx *f = *state;
    const char *js = "{\"email\":\"zoe@example.fr\",\"city\":\"Paris\",\"first_name\":\"Zoé\"}";
    ck_who w = {CK_BY_REF, "C-1", 0, NULL, NULL, NULL};
    if (ck_put_json(NULL, f->st, &w, js, strlen(js), CK_PUT_CREATE) != CK_OK) {
        tu_fx_teardown(state);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    return open_with(state, SCHEMA);
}

static const ck_who WHO = {CK_BY_REF, "C-1", 0, NULL, NULL, NULL};

/* Map `tc`, expecting CK_OK; the result goes to *r (free it). */
static void map_ok(tu_fx *f, const char *tc, ck_tcf_result *r)
{
    ck_tcf_result init = CK_TCF_RESULT_INIT;
    *r = init;
    int rc = ck_consent_tcf(r, f->st, &WHO, tc, strlen(tc), "cmp-sync");
    if (rc != CK_OK)
        fail_msg("ck_consent_tcf: %d: %s", rc, ck_errmsg(f->st));
    assert_int_equal(r->count, N_MAPPED);
    for (size_t i = 0; i < N_MAPPED; i++)
        assert_string_equal(r->outcomes[i].purpose, MAPPED[i]);
}

static void map_tcs(tu_fx *f, const tcs *s, ck_tcf_result *r)
{
    char tc[512];
    tc_make(tc, sizeof tc, s);
    map_ok(f, tc, r);
}

static void expect_outcome(const ck_tcf_result *r, int i, ck_tcf_action action,
                           ck_consent_state state)
{
    if (r->outcomes[i].action != action || r->outcomes[i].state != state)
        fail_msg("%s: action %d state %d, expected action %d state %d", MAPPED[i],
                 (int)r->outcomes[i].action, (int)r->outcomes[i].state, (int)action, (int)state);
}

/* The reason (or "released") of `field` in a release for `purpose`. */
static const char *reason_of(tu_fx *f, const char *purpose, const char *field)
{
    static char out[64];
    ck_request q = CK_REQUEST_INIT;
    q.actor = "crm";
    q.purpose = purpose;
    q.subject = WHO;
    q.fields = &field;
    q.nfields = 1;
    ck_result *res = NULL;
    int rc = ck_release(&res, f->st, &q);
    if (rc != CK_OK)
        fail_msg("release %s/%s: %s", purpose, field, ck_errmsg(f->st));
    assert_int_equal(ck_result_count(res), 1);
    snprintf(out, sizeof out, "%s", ck_reason_name(ck_result_field(res, 0)->reason));
    ck_result_free(res);
    return out;
}

/* The subject's consents as parsed JSON (caller decrefs). */
static json_t *consents(tu_fx *f)
{
    char *text = NULL;
    assert_int_equal(ck_consent_json(&text, f->st, &WHO), CK_OK);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    ck_free(text);
    return j;
}

static size_t history_len(tu_fx *f)
{
    json_t *j = consents(f);
    size_t n = json_array_size(json_object_get(j, "history"));
    json_decref(j);
    return n;
}

/* Consent audit entries: how many, and how many of them say via "tcf". */
static void audit_counts(tu_fx *f, int *n_consent, int *n_tcf)
{
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "consent";
    ck_audit_cursor *c = NULL;
    const ck_audit_record *rec;
    assert_int_equal(ck_audit_query(&c, f->st, &flt), CK_OK);
    *n_consent = *n_tcf = 0;
    while (ck_audit_next(c, &rec) == CK_OK) {
        (*n_consent)++;
        for (size_t i = 0; i < rec->n_detail; i++)
            if (strcmp(rec->detail[i].key, "via") == 0 && rec->detail[i].str != NULL &&
                strcmp(rec->detail[i].str, "tcf") == 0)
                (*n_tcf)++;
    }
    ck_audit_cursor_free(c);
}

/* ------------------------------------------------------------------------ */
/* The states each mapping gives                                            */
/* ------------------------------------------------------------------------ */

static void test_all_granted(void **state)
{
    tu_fx *f = *state;
    ck_tcf_result r;
    tcs s = all_signals();
    map_tcs(f, &s, &r);
    for (int i = 0; i < N_MAPPED; i++)
        expect_outcome(&r, i, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    assert_int_equal(r.applied, N_MAPPED);
    assert_int_equal(r.at, T_UPD_SEC);
    ck_tcf_result_free(&r);
    assert_null(r.outcomes);
    assert_null(r.priv_);
    /* The release follows the records. */
    assert_string_equal(reason_of(f, "ads", "email"), "released");
    assert_string_equal(reason_of(f, "local", "city"), "released");
    assert_string_equal(reason_of(f, "basic", "city"), "released");
    assert_string_equal(reason_of(f, "measure", "city"), "released");
    assert_string_equal(reason_of(f, "audience", "city"), "released");
    /* A purpose that maps nothing is left alone. */
    assert_string_equal(reason_of(f, "newsletter", "email"), "no_consent");
    json_t *j = consents(f);
    assert_null(json_object_get(json_object_get(j, "current"), "newsletter"));
    assert_int_equal(json_array_size(json_object_get(j, "history")), N_MAPPED);
    json_decref(j);
}

static void test_purpose_bit_missing(void **state)
{
    tu_fx *f = *state;
    ck_tcf_result r;
    tcs s = all_signals();
    s.pc &= ~ID(4); /* ads and local map purpose 4 */
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    expect_outcome(&r, P_LOCAL, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    expect_outcome(&r, P_BASIC, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    assert_int_equal(r.applied, N_MAPPED);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "ads", "email"), "refused");
    assert_string_equal(reason_of(f, "local", "email"), "refused");
    assert_string_equal(reason_of(f, "basic", "city"), "released");
}

static void test_vendor_bit_missing(void **state)
{
    tu_fx *f = *state;
    ck_tcf_result r;
    tcs s = all_signals();
    s.vc[0] = 754; /* another vendor has consent, 755 has not */
    s.vli[0] = 0;  /* and 755 has no legitimate interest */
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    expect_outcome(&r, P_MEASURE, CK_TCF_APPLIED, CK_CONSENT_OBJECTED);
    /* The publisher mappings and the bare one do not read vendor bits. */
    expect_outcome(&r, P_LOCAL, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    expect_outcome(&r, P_AUDIENCE, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    expect_outcome(&r, P_BASIC, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "ads", "city"), "refused");
    assert_string_equal(reason_of(f, "measure", "city"), "objected");
}

static void test_restriction_not_allowed(void **state)
{
    tu_fx *f = *state;
    ck_tcf_result r;
    tcs s = all_signals();
    s.na_purpose = 3; /* the publisher does not allow vendor 755 purpose 3 */
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    expect_outcome(&r, P_MEASURE, CK_TCF_APPLIED, CK_CONSENT_GRANTED); /* maps 7 and 9 */
    ck_tcf_result_free(&r);
    s.na_purpose = 9;
    s.updated += 10;
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    expect_outcome(&r, P_MEASURE, CK_TCF_APPLIED, CK_CONSENT_OBJECTED);
    ck_tcf_result_free(&r);
}

static void test_publisher(void **state)
{
    tu_fx *f = *state;
    ck_tcf_result r;
    tcs s = all_signals();
    /* With the segment but without a bit of it. */
    s.pub_c &= ~ID(3);
    s.pub_li &= ~ID(10);
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_LOCAL, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    expect_outcome(&r, P_AUDIENCE, CK_TCF_APPLIED, CK_CONSENT_OBJECTED);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "audience", "city"), "objected");

    /* With every bit of the segment. */
    s = all_signals();
    s.updated += 10;
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_LOCAL, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    expect_outcome(&r, P_AUDIENCE, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "local", "email"), "released");

    /* Without the segment: the publisher's signals are absent. */
    s.pub = false;
    s.updated += 10;
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_LOCAL, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    expect_outcome(&r, P_AUDIENCE, CK_TCF_APPLIED, CK_CONSENT_OBJECTED);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "local", "email"), "refused");
    assert_string_equal(reason_of(f, "audience", "city"), "objected");
}

static void test_special_feature(void **state)
{
    tu_fx *f = *state;
    ck_tcf_result r;
    tcs s = all_signals();
    s.sfo = ID(2); /* not feature 1, which local needs */
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_LOCAL, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    ck_tcf_result_free(&r);
}

static void test_li_objected_then_lifted(void **state)
{
    tu_fx *f = *state;
    ck_tcf_result r;
    tcs s = all_signals();
    s.pli &= ~ID(9);
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_MEASURE, CK_TCF_APPLIED, CK_CONSENT_OBJECTED);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "measure", "city"), "objected");

    /* A later string with the signal lifts the objection. */
    s.pli |= ID(9);
    s.updated += 36000; /* an hour later */
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_MEASURE, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    assert_int_equal(r.at, T_UPD_SEC + 3600);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "measure", "city"), "released");
    json_t *j = consents(f);
    json_t *cur = json_object_get(json_object_get(j, "current"), "measure");
    assert_string_equal(json_string_value(json_object_get(cur, "state")), "granted");
    assert_string_equal(json_string_value(json_object_get(cur, "at")), "2024-03-02T09:30:15Z");
    size_t n = 0, i;
    json_t *h;
    json_array_foreach(json_object_get(j, "history"), i, h)
    {
        n += strcmp(json_string_value(json_object_get(h, "purpose")), "measure") == 0;
    }
    assert_int_equal(n, 2);
    json_decref(j);
}

/* ------------------------------------------------------------------------ */
/* The newest signal wins                                                   */
/* ------------------------------------------------------------------------ */

static void test_older_string_ignored(void **state)
{
    tu_fx *f = *state;
    /* The customer withdrew "ads" an hour after the string was made. */
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "ads";
    c.state = CK_CONSENT_WITHDRAWN;
    c.source = "account page";
    c.at = T_UPD_SEC + 3600;
    assert_int_equal(ck_consent_record(f->st, &WHO, &c, "crm"), CK_OK);

    ck_tcf_result r;
    tcs s = all_signals();
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_ADS, CK_TCF_OLDER, CK_CONSENT_GRANTED);
    expect_outcome(&r, P_BASIC, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    assert_int_equal(r.applied, N_MAPPED - 1);
    char *js = NULL;
    assert_int_equal(ck_tcf_result_json(&js, &r), CK_OK);
    assert_non_null(strstr(js, "\"unchanged\":[{\"purpose\":\"ads\",\"state\":\"granted\","
                               "\"reason\":\"older than the current record\"}]"));
    ck_free(js);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "ads", "email"), "withdrawn");

    /* A string of exactly the record's time applies. */
    s.updated = (uint64_t)(T_UPD_SEC + 3600) * 10u;
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    ck_tcf_result_free(&r);
    assert_string_equal(reason_of(f, "ads", "email"), "released");

    /* Tenths of a second are dropped: 0.9 s later is the same second. */
    s.updated += 9;
    s.pc = 0;
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    ck_tcf_result_free(&r);
}

static void test_same_string_twice(void **state)
{
    tu_fx *f = *state;
    char tc[512];
    ck_tcf_result r;
    tcs s = all_signals();
    tc_make(tc, sizeof tc, &s);
    map_ok(f, tc, &r);
    ck_tcf_result_free(&r);
    size_t n = history_len(f);
    int n1, t1, n2, t2;
    audit_counts(f, &n1, &t1);

    /* Sent again (with every visit): nothing appended, nothing audited. */
    map_ok(f, tc, &r);
    for (int i = 0; i < N_MAPPED; i++)
        expect_outcome(&r, i, CK_TCF_SAME, CK_CONSENT_GRANTED);
    assert_int_equal(r.applied, 0);
    char *js = NULL;
    assert_int_equal(ck_tcf_result_json(&js, &r), CK_OK);
    assert_non_null(strstr(js, "\"applied\":[],"));
    assert_non_null(strstr(js, "\"reason\":\"already recorded from this string\""));
    ck_free(js);
    ck_tcf_result_free(&r);
    assert_int_equal(history_len(f), n);
    audit_counts(f, &n2, &t2);
    assert_int_equal(n2, n1);

    /* Another consent in between: the same string applies again. */
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "basic";
    c.state = CK_CONSENT_REFUSED;
    c.at = T_UPD_SEC;
    assert_int_equal(ck_consent_record(f->st, &WHO, &c, "crm"), CK_OK);
    map_ok(f, tc, &r);
    expect_outcome(&r, P_BASIC, CK_TCF_APPLIED, CK_CONSENT_GRANTED);
    expect_outcome(&r, P_ADS, CK_TCF_SAME, CK_CONSENT_GRANTED);
    assert_int_equal(r.applied, 1);
    ck_tcf_result_free(&r);
}

static void test_future_string_clamped(void **state)
{
    tu_fx *f = *state;
    ck_tcf_result r;
    tcs s = all_signals();
    s.updated = (uint64_t)(T0 + 86400 * 365) * 10u; /* a year ahead of the clock */
    map_tcs(f, &s, &r);
    assert_int_equal(r.at, T0);
    ck_tcf_result_free(&r);
    /* A later signal, made before the string's claimed time, still wins. */
    f->now = T0 + 86400;
    s.updated = (uint64_t)(T0 + 3600) * 10u;
    s.pc = 0;
    map_tcs(f, &s, &r);
    expect_outcome(&r, P_ADS, CK_TCF_APPLIED, CK_CONSENT_REFUSED);
    assert_int_equal(r.at, T0 + 3600);
    ck_tcf_result_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Evidence and audit                                                       */
/* ------------------------------------------------------------------------ */

static void test_evidence_and_audit(void **state)
{
    tu_fx *f = *state;
    char tc[512];
    ck_tcf_result r;
    tcs s = all_signals();
    s.pc &= ~ID(1);
    tc_make(tc, sizeof tc, &s);
    map_ok(f, tc, &r);
    ck_tcf_result_free(&r);

    json_t *j = consents(f);
    json_t *ads = json_object_get(json_object_get(j, "current"), "ads");
    assert_string_equal(json_string_value(json_object_get(ads, "state")), "refused");
    assert_string_equal(json_string_value(json_object_get(ads, "source")), "tcf");
    assert_string_equal(json_string_value(json_object_get(ads, "notice")), "cmp:300/7/v4");
    assert_string_equal(json_string_value(json_object_get(ads, "tc_string")), tc);
    assert_string_equal(json_string_value(json_object_get(ads, "at")), "2024-03-02T08:30:15Z");
    assert_string_equal(json_string_value(json_object_get(ads, "fields")), "all");
    assert_int_equal(json_array_size(json_object_get(ads, "recipients")), 0);
    assert_null(json_object_get(ads, "expires"));
    assert_null(json_object_get(ads, "collector"));
    json_decref(j);

    /* A consent recorded otherwise has no tc_string. */
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "newsletter";
    c.state = CK_CONSENT_GRANTED;
    assert_int_equal(ck_consent_record(f->st, &WHO, &c, "crm"), CK_OK);
    j = consents(f);
    json_t *nl = json_object_get(json_object_get(j, "current"), "newsletter");
    assert_non_null(nl);
    assert_null(json_object_get(nl, "tc_string"));
    json_decref(j);

    /* One audit entry per record, via "tcf", by the actor, naming the
     * purpose; none holds the string. */
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "consent";
    flt.actor = "cmp-sync";
    ck_audit_cursor *cur = NULL;
    const ck_audit_record *rec;
    assert_int_equal(ck_audit_query(&cur, f->st, &flt), CK_OK);
    int n = 0;
    while (ck_audit_next(cur, &rec) == CK_OK) {
        assert_string_equal(rec->purpose, MAPPED[n]);
        assert_non_null(rec->subject);
        assert_int_equal(rec->n_detail, 2);
        assert_string_equal(rec->detail[0].key, "state");
        assert_string_equal(rec->detail[0].str,
                            n == P_ADS || n == P_BASIC || n == P_LOCAL ? "refused" : "granted");
        assert_string_equal(rec->detail[1].key, "via");
        assert_string_equal(rec->detail[1].str, "tcf");
        n++;
    }
    ck_audit_cursor_free(cur);
    assert_int_equal(n, N_MAPPED);
    char p[PATH_MAX];
    tu_path(p, sizeof p, f->dir, "audit-000001.log");
    assert_int_equal(tu_file_contains(p, tc, strlen(tc)), 0);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);
}

/* ------------------------------------------------------------------------ */
/* Refusals: nothing written                                                */
/* ------------------------------------------------------------------------ */

/* ck_consent_tcf fails with `want` and the message `msg` (when not NULL),
 * the result is empty, and the store's files have not changed. */
static void expect_refused(tu_fx *f, const ck_who *who, const char *tc, size_t len,
                           const char *actor, int want, const char *msg)
{
    unsigned char before[32], after[32];
    tu_digest_dir(before, f->dir);
    ck_tcf_result r = CK_TCF_RESULT_INIT;
    int rc = ck_consent_tcf(&r, f->st, who, tc, len, actor);
    if (rc != want || (msg != NULL && strcmp(ck_errmsg(f->st), msg) != 0))
        fail_msg("expected %d \"%s\", got %d \"%s\"", want, msg != NULL ? msg : "", rc,
                 ck_errmsg(f->st));
    assert_int_equal(r.count, 0);
    assert_null(r.outcomes);
    ck_tcf_result_free(&r);
    tu_digest_dir(after, f->dir);
    assert_memory_equal(before, after, 32);
}

static void test_malformed_changes_nothing(void **state)
{
    tu_fx *f = *state;
    char tc[512], err[CK_ERRMSG_MAX];
    char *json = NULL;
    tcs s = all_signals();
    tc_make(tc, sizeof tc, &s);
    /* Cut inside the core segment: the decoder's own message. */
    size_t cut = 30;
    assert_int_equal(ck_tcf_decode_json(&json, tc, cut, err, sizeof err), CK_EINVAL);
    assert_non_null(strstr(err, "truncated"));
    expect_refused(f, &WHO, tc, cut, "x", CK_EINVAL, err);
    expect_refused(f, &WHO, "CPX=", 4, "x", CK_EINVAL,
                   "'=' padding at offset 3: TC strings are base64url without padding");
    expect_refused(f, &WHO, "", 0, "x", CK_EINVAL, "the TC string is empty");
    expect_refused(f, &WHO, NULL, 0, "x", CK_EINVAL, "the TC string is empty");
    /* lastUpdated zero: no time to record. */
    s.updated = 0;
    tc_make(tc, sizeof tc, &s);
    expect_refused(f, &WHO, tc, strlen(tc), "x", CK_EINVAL,
                   "the TC string's lastUpdated is 1970-01-01T00:00:00Z: no time to record");
    /* Too long. */
    size_t big = CK_TCF_TEXT_MAX + 1;
    char *long_tc = malloc(big);
    assert_non_null(long_tc);
    memset(long_tc, 'A', big);
    expect_refused(f, &WHO, long_tc, big, "x", CK_ELIMIT, NULL);
    free(long_tc);
    assert_int_equal(history_len(f), 0);
}

static void test_other_refusals(void **state)
{
    tu_fx *f = *state;
    char tc[512];
    tcs s = all_signals();
    tc_make(tc, sizeof tc, &s);
    size_t n = strlen(tc);
    expect_refused(f, &WHO, tc, n, NULL, CK_EINVAL, "a consent change needs an actor");
    ck_who nobody = {CK_BY_REF, "C-404", 0, NULL, NULL, NULL};
    expect_refused(f, &nobody, tc, n, "x", CK_ENOTFOUND, NULL);
    expect_refused(f, NULL, tc, n, "x", CK_EINVAL, "no subject given");
    ck_tcf_result r = CK_TCF_RESULT_INIT;
    r.version = 99;
    assert_int_equal(ck_consent_tcf(&r, f->st, &WHO, tc, n, "x"), CK_EINVAL);
    assert_string_equal(ck_errmsg(f->st), "ck_tcf_result version 99 is not supported");
    assert_int_equal(ck_consent_tcf(NULL, NULL, &WHO, tc, n, "x"), CK_EINVAL);
    /* Without a result: the call still records. */
    assert_int_equal(ck_consent_tcf(NULL, f->st, &WHO, tc, n, "x"), CK_OK);
    assert_int_equal(history_len(f), N_MAPPED);
    char *js = (char *)&js;
    assert_int_equal(ck_tcf_result_json(&js, NULL), CK_EINVAL);
    assert_null(js);
    ck_tcf_result_free(NULL);
}

static const char SCHEMA_UNMAPPED[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"first_name\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"newsletter\":{\"basis\":\"consent\",\"description\":\"News\","
    "\"benefit\":\"News\",\"fields\":[\"email\"]}}}";

static int setup_unmapped(void **state)
{
    return open_with(state, SCHEMA_UNMAPPED);
}

static void test_no_mapped_purpose(void **state)
{
    tu_fx *f = *state;
    char tc[512];
    tcs s = all_signals();
    tc_make(tc, sizeof tc, &s);
    expect_refused(f, &WHO, tc, strlen(tc), "x", CK_EINVAL,
                   "no purpose of the schema maps TCF signals");
    assert_int_equal(history_len(f), 0);
    /* Once a purpose maps signals, the same string applies. */
    char *shown = NULL;
    assert_int_equal(ck_schema_get_json(&shown, f->st), CK_OK);
    ck_free(shown);
    assert_int_equal(ck_schema_apply(f->st, SCHEMA, strlen(SCHEMA), 0, NULL), CK_OK);
    ck_tcf_result r;
    map_ok(f, tc, &r);
    assert_int_equal(r.applied, N_MAPPED);
    ck_tcf_result_free(&r);
}

static void test_read_only(void **state)
{
    tu_fx *f = *state;
    char tc[512];
    tcs s = all_signals();
    tc_make(tc, sizeof tc, &s);
    tu_fx_reopen(f, CK_OPEN_RDONLY);
    expect_refused(f, &WHO, tc, strlen(tc), "x", CK_EDENIED, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_granted, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_purpose_bit_missing, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_vendor_bit_missing, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_restriction_not_allowed, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_publisher, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_special_feature, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_li_objected_then_lifted, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_older_string_ignored, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_same_string_twice, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_future_string_clamped, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_evidence_and_audit, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_changes_nothing, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_other_refusals, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_no_mapped_purpose, setup_unmapped, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
