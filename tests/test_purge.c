/*
 * test_purge.c - ck_purge through the public API, with a controlled clock:
 * field retention (and the inbound contacts that keep a channel's address
 * alive), consent expiry, dry runs, batches, the audit entries, errors.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "ckstore.h"
#include "consent.h" /* internal: to write a contact log of the old layout */
#include "fixture.h"

#define DAY 86400
#define T0  1767225600 /* 2026-01-01T00:00:00Z */

/* email: identifying, the address of marketing.email's channel, kept 30
 * days; nick: identifying, 10 days; note: 10 days; city: no limit, kept 5
 * days after an erasure by the legal hold of "records". */
static const char SCHEMA[] =
    "{\"fields\":{"
    "\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true,"
    "\"retention_days\":30},"
    "\"nick\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true,"
    "\"retention_days\":10},"
    "\"note\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"retention_days\":10},"
    "\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{"
    "\"marketing.email\":{\"basis\":\"consent\",\"description\":\"Offers\",\"benefit\":\"Deals\","
    "\"fields\":[\"email\",\"city\"],"
    "\"channel\":{\"type\":\"email\",\"field\":\"email\",\"cap\":{\"count\":2,\"days\":30}}},"
    "\"news\":{\"basis\":\"consent\",\"description\":\"News\",\"benefit\":\"Know first\","
    "\"fields\":[\"city\"]},"
    "\"records\":{\"basis\":\"legal_obligation\",\"description\":\"Keep\",\"benefit\":\"Law\","
    "\"fields\":[\"city\"],\"hold\":{\"fields\":[\"city\"],\"days\":5}},"
    "\"service\":{\"basis\":\"contract\",\"description\":\"Orders\",\"benefit\":\"Delivery\","
    "\"fields\":[\"email\",\"nick\",\"note\",\"city\"]}}}";

static int setup(void **state)
{
    return tu_fx_setup(state, "purge", T0, CK_INIT_CREATE_KEY_FILE, SCHEMA);
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
    c.source = "web-form";
    if (ck_consent_record(f->st, &w, &c, "crm") != CK_OK)
        fail_msg("consent %s: %s", purpose, ck_errmsg(f->st));
}

/* The reason (or "released") of `field` for `purpose`. */
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
    if (ck_release(&res, f->st, &r) != CK_OK)
        fail_msg("release %s/%s: %s", purpose, field, ck_errmsg(f->st));
    snprintf(out, sizeof out, "%s", ck_reason_name(ck_result_field(res, 0)->reason));
    ck_result_free(res);
    return out;
}

/* Run a purge and return its figures (the caller json_decref's them). */
static json_t *purge(tu_fx *f, unsigned flags, unsigned batch)
{
    ck_purge_options o = CK_PURGE_OPTIONS_INIT;
    o.flags = flags;
    o.batch_subjects = batch;
    char *out = NULL;
    if (ck_purge(&out, f->st, &o, "dpo") != CK_OK)
        fail_msg("purge: %s", ck_errmsg(f->st));
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    if (j == NULL)
        fail_msg("purge figures are not JSON: %s", out);
    ck_free(out);
    return j;
}

static json_int_t num(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("figures: %s is not a number", key);
    return json_integer_value(v);
}

static json_int_t by(const json_t *j, const char *which, const char *name)
{
    return json_integer_value(json_object_get(json_object_get(j, which), name));
}

/* Every figure of two runs but "dry_run" is the same. */
static void assert_same_figures(json_t *a, json_t *b)
{
    json_t *ca = json_deep_copy(a), *cb = json_deep_copy(b);
    json_object_del(ca, "dry_run");
    json_object_del(cb, "dry_run");
    if (!json_equal(ca, cb)) {
        char *sa = json_dumps(a, JSON_COMPACT), *sb = json_dumps(b, JSON_COMPACT);
        fail_msg("figures differ: %s vs %s", sa, sb);
    }
    json_decref(ca);
    json_decref(cb);
}

static int find(tu_fx *f, const char *field, const char *value)
{
    unsigned char id[CK_SUBJECT_ID_BYTES];
    ck_who w = {CK_BY_LOOKUP, value, 0, field, NULL, NULL};
    return ck_subject_find(id, f->st, &w);
}

static char *consents_of(tu_fx *f, const char *ref)
{
    ck_who w = tu_by_ref(ref);
    char *js = NULL;
    if (ck_consent_json(&js, f->st, &w) != CK_OK)
        fail_msg("consent json of %s: %s", ref, ck_errmsg(f->st));
    return js;
}

/* ------------------------------------------------------------------------ */
/* Field retention                                                           */
/* ------------------------------------------------------------------------ */

static void test_field_retention(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "A",
           "{\"note\":\"call back\",\"nick\":\"Zaza\",\"city\":\"Lyon\",\"email\":\"a@x.fr\"}");
    tu_put(f, "B", "{\"note\":\"old\",\"city\":\"Brest\"}");
    f->now = T0 + 5 * DAY;
    tu_put(f, "B", "{\"note\":\"rewritten\"}"); /* its clock restarts */

    /* Not due yet: nothing happens. */
    f->now = T0 + 10 * DAY - 1;
    json_t *j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 0);
    assert_int_equal(num(j, "subjects"), 0);
    assert_true(json_is_false(json_object_get(j, "dry_run")));
    json_decref(j);
    assert_string_equal(reason_of(f, "A", "service", NULL, "note"), "released");

    /* A's note and nick are 10 days old: what release withholds, purge removes. */
    f->now = T0 + 10 * DAY;
    assert_string_equal(reason_of(f, "A", "service", NULL, "note"), "retention");
    assert_string_equal(reason_of(f, "A", "service", NULL, "nick"), "retention");
    assert_int_equal(find(f, "nick", "Zaza"), CK_OK);
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 2);
    assert_int_equal(num(j, "consents_expired"), 0);
    assert_int_equal(num(j, "subjects"), 1);
    assert_int_equal(by(j, "by_field", "note"), 1);
    assert_int_equal(by(j, "by_field", "nick"), 1);
    assert_int_equal(json_object_size(json_object_get(j, "by_field")), 2);
    assert_int_equal(json_object_size(json_object_get(j, "by_purpose")), 0);
    json_decref(j);
    assert_string_equal(reason_of(f, "A", "service", NULL, "note"), "unset");
    assert_string_equal(reason_of(f, "A", "service", NULL, "nick"), "unset");
    /* the identifying field's blind index went with it */
    assert_int_equal(find(f, "nick", "Zaza"), CK_ENOTFOUND);
    /* fields without retention, or not due yet, stay */
    assert_string_equal(reason_of(f, "A", "service", NULL, "city"), "released");
    assert_string_equal(reason_of(f, "A", "service", NULL, "email"), "released");
    assert_int_equal(find(f, "email", "a@x.fr"), CK_OK);
    assert_string_equal(reason_of(f, "B", "service", NULL, "note"), "released");

    /* Purging again changes nothing. */
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 0);
    assert_int_equal(num(j, "subjects"), 0);
    json_decref(j);

    /* B's rewritten note is due 10 days after the rewrite. */
    f->now = T0 + 15 * DAY - 1;
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 0);
    json_decref(j);
    f->now = T0 + 15 * DAY;
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 1);
    assert_int_equal(by(j, "by_field", "note"), 1);
    json_decref(j);
    assert_string_equal(reason_of(f, "B", "service", NULL, "note"), "unset");
    assert_string_equal(reason_of(f, "B", "service", NULL, "city"), "released");

    /* The e-mail goes at 30 days, and with it the look-up. */
    f->now = T0 + 30 * DAY;
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 1);
    assert_int_equal(by(j, "by_field", "email"), 1);
    json_decref(j);
    assert_int_equal(find(f, "email", "a@x.fr"), CK_ENOTFOUND);
    assert_string_equal(reason_of(f, "A", "service", NULL, "city"), "released");
}

/* A contact the customer initiated keeps the channel's address alive; one
 * the company made does not. */
static void test_contact_field_inbound(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "OUT", "{\"email\":\"out@x.fr\"}");
    tu_put(f, "IN", "{\"email\":\"in@x.fr\"}");
    ck_who wo = tu_by_ref("OUT"), wi = tu_by_ref("IN");
    f->now = T0 + 20 * DAY;
    assert_int_equal(ck_contact_record(f->st, &wo, "email", "mailer"), CK_OK);
    assert_int_equal(ck_contact_record_v2(f->st, &wo, "email", 0, "mailer"), CK_OK);
    assert_int_equal(ck_contact_record_v2(f->st, &wi, "email", CK_CONTACT_INBOUND, "inbox"), CK_OK);
    /* an inbound contact on another channel does not count for e-mail */
    assert_int_equal(ck_contact_record_v2(f->st, &wo, "sms", CK_CONTACT_INBOUND, "inbox"), CK_OK);

    f->now = T0 + 30 * DAY;
    assert_string_equal(reason_of(f, "OUT", "service", NULL, "email"), "retention");
    assert_string_equal(reason_of(f, "IN", "service", NULL, "email"), "released");
    json_t *d = purge(f, CK_PURGE_DRY_RUN, 0);
    json_t *j = purge(f, 0, 0);
    assert_same_figures(d, j);
    assert_int_equal(num(j, "values_removed"), 1);
    assert_int_equal(num(j, "subjects"), 1);
    json_decref(d);
    json_decref(j);
    assert_string_equal(reason_of(f, "OUT", "service", NULL, "email"), "unset");
    assert_int_equal(find(f, "email", "out@x.fr"), CK_ENOTFOUND);
    assert_string_equal(reason_of(f, "IN", "service", NULL, "email"), "released");
    assert_int_equal(find(f, "email", "in@x.fr"), CK_OK);

    /* 30 days after the inbound contact it goes too. */
    f->now = T0 + 50 * DAY - 1;
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 0);
    json_decref(j);
    f->now = T0 + 50 * DAY;
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 1);
    json_decref(j);
    assert_int_equal(find(f, "email", "in@x.fr"), CK_ENOTFOUND);
}

/* Inbound contacts never count toward the cap: the address is still
 * released, and outbound ones still do count. */
static void test_inbound_not_capped(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "K", "{\"email\":\"k@x.fr\",\"city\":\"Nice\"}");
    consent(f, "K", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, 0);
    ck_who w = tu_by_ref("K");
    for (int i = 0; i < 10; i++)
        assert_int_equal(ck_contact_record_v2(f->st, &w, "email", CK_CONTACT_INBOUND, "inbox"),
                         CK_OK);
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "released");
    assert_int_equal(ck_contact_record(f->st, &w, "email", "mailer"), CK_OK);
    assert_int_equal(ck_contact_record(f->st, &w, "email", "mailer"), CK_OK);
    assert_string_equal(reason_of(f, "K", "marketing.email", NULL, "email"), "contact_cap");
}

typedef struct old_log {
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    unsigned char dk[CK_KEY_BYTES];
    int64_t times[2];
} old_log;

/* A contact log as written before inbound contacts existed: 2 elements. */
static int put_old_log(ck_store *st, MDB_txn *txn, void *ctx)
{
    old_log *o = ctx;
    uint8_t key[CK_SUBJECT_ID_BYTES + 1], aad[4 + CK_STORE_ID_BYTES + sizeof key + 1];
    memcpy(key, o->sid, CK_SUBJECT_ID_BYTES);
    key[CK_SUBJECT_ID_BYTES] = CK_CHANNEL_EMAIL;
    memcpy(aad, "ckn1", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    memcpy(aad + 4 + CK_STORE_ID_BYTES, key, sizeof key);
    aad[sizeof aad - 1] = 1;
    ck_buf scratch = CK_BUF_SECURE_INIT;
    ck_mp_writer mw;
    ck_mp_writer__init(&mw, &scratch);
    ck_mp_writer__array(&mw, 2);
    ck_mp_writer__i64(&mw, -1);
    ck_mp_writer__array(&mw, 2);
    ck_mp_writer__i64(&mw, o->times[0]);
    ck_mp_writer__i64(&mw, o->times[1]);
    int rc = mw.rc;
    if (rc == CK_OK)
        rc = ck_seal__record_put(st, txn, st->dbi_contacts, key, sizeof key, 1, aad, sizeof aad,
                                 &scratch, o->dk, "cannot write a contact log");
    ck_buf__free(&scratch);
    return rc;
}

/* A log of the old layout still reads (its contacts count), and an
 * inbound contact added to it keeps them. */
static void test_old_contact_log(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "OLD", "{\"email\":\"old@x.fr\",\"city\":\"Vic\"}");
    consent(f, "OLD", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, 0);
    ck_store *st = f->st;
    ck_who w = tu_by_ref("OLD");
    old_log o = {.times = {T0 - DAY, T0}};
    assert_int_equal(ck_subject_find(o.sid, st, &w), CK_OK);
    MDB_txn *kt;
    assert_int_equal(ck_env__read_begin(st, &st->keyring, &kt), CK_OK);
    assert_int_equal(ck_keyring__get(st, kt, o.sid, o.dk), CK_OK);
    ck_env__read_end(&st->keyring, kt);
    assert_int_equal(ck_env__write(st, &st->data, put_old_log, &o), CK_OK);
    sodium_memzero(o.dk, sizeof o.dk);

    assert_string_equal(reason_of(f, "OLD", "marketing.email", NULL, "email"), "contact_cap");
    f->now = T0 + 10 * DAY;
    assert_int_equal(ck_contact_record_v2(st, &w, "email", CK_CONTACT_INBOUND, "inbox"), CK_OK);
    assert_string_equal(reason_of(f, "OLD", "marketing.email", NULL, "email"), "contact_cap");
    /* the window slides past the old contacts; the inbound one keeps the
     * address past its 30 days */
    f->now = T0 + 30 * DAY;
    assert_string_equal(reason_of(f, "OLD", "marketing.email", NULL, "email"), "released");
    json_t *j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 0);
    json_decref(j);
    f->now = T0 + 40 * DAY;
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "values_removed"), 1);
    json_decref(j);
}

/* ------------------------------------------------------------------------ */
/* Consent expiry                                                            */
/* ------------------------------------------------------------------------ */

static void test_consent_expiry(void **state)
{
    tu_fx *f = *state;
    const char *scope[] = {"email"}, *recips[] = {"acme"};
    tu_put(f, "E", "{\"email\":\"e@x.fr\",\"city\":\"Pau\"}");
    tu_put(f, "R", "{\"city\":\"Dax\"}");
    consent(f, "E", "marketing.email", CK_CONSENT_GRANTED, scope, 1, recips, 1, T0 + 10 * DAY);
    consent(f, "E", "news", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, T0 + 100 * DAY);
    /* a refusal with an expiry is not a consent that expires */
    consent(f, "R", "news", CK_CONSENT_REFUSED, NULL, 0, NULL, 0, T0 + 5 * DAY);

    f->now = T0 + 10 * DAY - 1;
    assert_string_equal(reason_of(f, "E", "marketing.email", "acme", "email"), "released");
    json_t *j = purge(f, 0, 0);
    assert_int_equal(num(j, "consents_expired"), 0);
    json_decref(j);

    f->now = T0 + 10 * DAY;
    assert_string_equal(reason_of(f, "E", "marketing.email", "acme", "email"), "expired");
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "consents_expired"), 1);
    assert_int_equal(num(j, "values_removed"), 0);
    assert_int_equal(num(j, "subjects"), 1);
    assert_int_equal(by(j, "by_purpose", "marketing.email"), 1);
    assert_int_equal(json_object_size(json_object_get(j, "by_purpose")), 1);
    json_decref(j);

    /* release still says expired, for every field and recipient */
    assert_string_equal(reason_of(f, "E", "marketing.email", "acme", "email"), "expired");
    assert_string_equal(reason_of(f, "E", "marketing.email", NULL, "city"), "expired");
    assert_string_equal(reason_of(f, "E", "news", NULL, "city"), "released");
    assert_string_equal(reason_of(f, "R", "news", NULL, "city"), "refused");

    /* the record that closes it: same scope, recipients and expiry */
    char *js = consents_of(f, "E");
    json_t *c = json_loads(js, 0, NULL);
    assert_non_null(c);
    json_t *cur = json_object_get(json_object_get(c, "current"), "marketing.email");
    assert_string_equal(json_string_value(json_object_get(cur, "state")), "expired");
    assert_string_equal(json_string_value(json_object_get(cur, "source")), "purge");
    assert_string_equal(json_string_value(json_object_get(cur, "collector")), "dpo");
    assert_string_equal(json_string_value(json_object_get(cur, "expires")), "2026-01-11T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(cur, "at")), "2026-01-11T00:00:00Z");
    assert_string_equal(json_string_value(json_array_get(json_object_get(cur, "fields"), 0)),
                        "email");
    assert_string_equal(json_string_value(json_array_get(json_object_get(cur, "recipients"), 0)),
                        "acme");
    assert_int_equal(json_array_size(json_object_get(c, "history")), 3);
    json_decref(c);

    /* once only */
    f->now = T0 + 20 * DAY;
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "consents_expired"), 0);
    assert_int_equal(num(j, "subjects"), 0);
    json_decref(j);
    char *js2 = consents_of(f, "E");
    assert_string_equal(js, js2);
    ck_free(js);
    ck_free(js2);

    /* the report counts it as expired, and the change */
    char *rep = NULL;
    assert_int_equal(ck_audit_report_json(&rep, f->st, NULL), CK_OK);
    json_t *r = json_loads(rep, 0, NULL);
    ck_free(rep);
    json_t *now = json_object_get(json_object_get(json_object_get(r, "consents_now"), "purposes"),
                                  "marketing.email");
    assert_int_equal(json_integer_value(json_object_get(now, "expired")), 1);
    assert_int_equal(json_integer_value(json_object_get(now, "granted")), 0);
    json_t *chg = json_object_get(
        json_object_get(json_object_get(r, "consent_changes"), "by_purpose"), "marketing.email");
    assert_int_equal(json_integer_value(json_object_get(chg, "expired")), 1);
    json_decref(r);

    /* a segment does not visit it */
    ck_segment_request sr = CK_SEGMENT_INIT;
    sr.actor = "crm";
    sr.purpose = "marketing.email";
    ck_cursor *sc = NULL;
    const ck_result *res;
    assert_int_equal(ck_segment(&sc, f->st, &sr), CK_OK);
    assert_int_equal(ck_segment_next(sc, &res), CK_ENOTFOUND);
    ck_cursor_free(sc);

    /* a new grant supersedes it as usual; the state cannot be recorded by hand */
    ck_who w = tu_by_ref("E");
    ck_consent bad = CK_CONSENT_INIT;
    bad.purpose = "marketing.email";
    bad.state = CK_CONSENT_EXPIRED;
    assert_int_equal(ck_consent_record(f->st, &w, &bad, "crm"), CK_EINVAL);
    consent(f, "E", "marketing.email", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, 0);
    assert_string_equal(reason_of(f, "E", "marketing.email", NULL, "email"), "released");
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "consents_expired"), 0);
    json_decref(j);
    assert_string_equal(reason_of(f, "E", "marketing.email", NULL, "email"), "released");
    assert_int_equal(ck_segment(&sc, f->st, &sr), CK_OK);
    assert_int_equal(ck_segment_next(sc, &res), CK_OK);
    ck_cursor_free(sc);
}

/* ------------------------------------------------------------------------ */
/* Dry run, batches, audit                                                   */
/* ------------------------------------------------------------------------ */

/* A store with something of everything to purge at T0 + 40 days. */
static void populate(tu_fx *f, int n)
{
    const char *recips[] = {"acme"};
    for (int i = 0; i < n; i++) {
        char ref[16], js[256];
        snprintf(ref, sizeof ref, "P-%02d", i);
        snprintf(
            js, sizeof js,
            "{\"email\":\"p%d@shop.fr\",\"nick\":\"nick%d\",\"note\":\"n%d\",\"city\":\"C%d\"}", i,
            i, i, i);
        tu_put(f, ref, js);
        if (i % 3 == 0)
            consent(f, ref, "marketing.email", CK_CONSENT_GRANTED, NULL, 0, recips, 1,
                    T0 + 20 * DAY);
        if (i % 4 == 0)
            consent(f, ref, "news", CK_CONSENT_GRANTED, NULL, 0, NULL, 0, T0 + 35 * DAY);
        if (i % 5 == 0) {
            ck_who w = tu_by_ref(ref);
            f->now = T0 + 15 * DAY;
            assert_int_equal(ck_contact_record_v2(f->st, &w, "email", CK_CONTACT_INBOUND, "in"),
                             CK_OK);
            f->now = T0;
        }
    }
    tu_put(f, "KEEP", "{\"city\":\"Albi\"}");
}

static void digest_file(unsigned char out[32], const tu_fx *f, const char *name)
{
    char p[PATH_MAX];
    size_t len;
    tu_path(p, sizeof p, f->dir, name);
    unsigned char *data = tu_read_file(p, &len);
    assert_non_null(data);
    crypto_generichash(out, 32, data, len, NULL, 0);
    free(data);
}

/* What can be seen of every subject: its consents and its service fields. */
static char *dump(tu_fx *f, int n)
{
    size_t cap = 1 << 16, len = 0;
    char *all = calloc(1, cap);
    for (int i = 0; i <= n; i++) {
        char ref[16];
        if (i < n)
            snprintf(ref, sizeof ref, "P-%02d", i);
        else
            snprintf(ref, sizeof ref, "KEEP");
        char *c = consents_of(f, ref);
        ck_request r = CK_REQUEST_INIT;
        r.actor = "crm";
        r.purpose = "service";
        r.subject = tu_by_ref(ref);
        ck_result *res = NULL;
        assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
        char *v = NULL;
        assert_int_equal(ck_result_json(&v, res), CK_OK);
        ck_result_free(res);
        size_t need = strlen(c) + strlen(v) + 2;
        if (len + need >= cap) {
            cap = 2 * (len + need);
            all = realloc(all, cap);
        }
        len += (size_t)snprintf(all + len, cap - len, "%s\n%s\n", c, v);
        ck_free(c);
        ck_free(v);
    }
    return all;
}

static void test_dry_run_changes_nothing(void **state)
{
    tu_fx *f = *state;
    populate(f, 12);
    f->now = T0 + 40 * DAY;
    char *before = dump(f, 12);
    /* The entries written so far may still be staged (docs/audit.md): a
     * reopen moves them to the segment, so the bytes compared are final. */
    tu_fx_reopen(f, 0);
    unsigned char d1[32], k1[32], a1[32], d2[32], k2[32], a2[32];
    digest_file(d1, f, "data.mdb");
    digest_file(k1, f, "keyring.mdb");
    digest_file(a1, f, "audit-000001.log");
    json_t *dry = purge(f, CK_PURGE_DRY_RUN, 0);
    json_t *dry_small = purge(f, CK_PURGE_DRY_RUN, 5);
    digest_file(d2, f, "data.mdb");
    digest_file(k2, f, "keyring.mdb");
    digest_file(a2, f, "audit-000001.log");
    /* not a byte of the store, not even of the audit log */
    assert_memory_equal(d1, d2, 32);
    assert_memory_equal(k1, k2, 32);
    assert_memory_equal(a1, a2, 32);
    char *after = dump(f, 12);
    assert_string_equal(before, after);
    assert_true(json_is_true(json_object_get(dry, "dry_run")));
    assert_same_figures(dry, dry_small);

    /* 12 x (note, nick); the e-mail of the 9 without an inbound contact
     * (i % 5 != 0); 4 marketing.email and 3 news consents expired. */
    assert_int_equal(num(dry, "values_removed"), 12 * 2 + 9);
    assert_int_equal(by(dry, "by_field", "email"), 9);
    assert_int_equal(by(dry, "by_field", "note"), 12);
    assert_int_equal(by(dry, "by_field", "nick"), 12);
    assert_int_equal(num(dry, "consents_expired"), 4 + 3);
    assert_int_equal(by(dry, "by_purpose", "marketing.email"), 4);
    assert_int_equal(by(dry, "by_purpose", "news"), 3);
    assert_int_equal(num(dry, "subjects"), 12);

    /* the real run, in batches of 5, gives the same figures */
    json_t *real = purge(f, 0, 5);
    assert_true(json_is_false(json_object_get(real, "dry_run")));
    assert_same_figures(dry, real);
    char *purged = dump(f, 12);
    assert_string_not_equal(before, purged);
    /* and leaves nothing for the next one */
    json_t *again = purge(f, CK_PURGE_DRY_RUN, 0);
    assert_int_equal(num(again, "values_removed"), 0);
    assert_int_equal(num(again, "consents_expired"), 0);
    assert_int_equal(num(again, "subjects"), 0);
    json_decref(again);
    json_decref(dry);
    json_decref(dry_small);
    json_decref(real);
    free(before);
    free(after);
    free(purged);
    assert_string_equal(reason_of(f, "P-00", "service", NULL, "email"), "released");
    assert_string_equal(reason_of(f, "P-01", "service", NULL, "email"), "unset");
    assert_string_equal(reason_of(f, "P-03", "marketing.email", "acme", "email"), "expired");
    assert_string_equal(reason_of(f, "KEEP", "service", NULL, "city"), "released");
    assert_int_equal(find(f, "nick", "nick7"), CK_ENOTFOUND);
    assert_int_equal(find(f, "email", "p7@shop.fr"), CK_ENOTFOUND);
    assert_int_equal(find(f, "email", "p5@shop.fr"), CK_OK);
}

static void test_audit_entries(void **state)
{
    tu_fx *f = *state;
    populate(f, 6);
    f->now = T0 + 40 * DAY;
    json_t *j = purge(f, 0, 4);
    assert_int_equal(num(j, "subjects"), 6);
    json_decref(j);

    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);

    /* one "purge" entry per subject changed, with its pseudonym */
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "purge";
    ck_audit_cursor *c = NULL;
    const ck_audit_record *rec;
    assert_int_equal(ck_audit_query(&c, f->st, &flt), CK_OK);
    int n = 0;
    int64_t removed = 0;
    while (ck_audit_next(c, &rec) == CK_OK) {
        n++;
        assert_string_equal(rec->actor, "dpo");
        assert_non_null(rec->subject);
        assert_int_equal(rec->n_released, 0);
        for (size_t i = 0; i < rec->n_withheld; i++)
            assert_string_equal(rec->withheld[i].reason, "retention");
        for (size_t i = 0; i < rec->n_detail; i++)
            if (strcmp(rec->detail[i].key, "values_removed") == 0) {
                assert_int_equal(rec->detail[i].num, (int64_t)rec->n_withheld);
                removed += rec->detail[i].num;
            }
    }
    ck_audit_cursor_free(c);
    assert_int_equal(n, 6);
    assert_int_equal(removed, 6 * 2 + 4);

    /* P-00's entry: its own pseudonym, its fields */
    unsigned char pn[CK_AUDIT_PSEUDONYM_BYTES];
    ck_who w = tu_by_ref("P-00");
    assert_int_equal(ck_audit_subject(pn, f->st, &w), CK_OK);
    flt.subject = pn;
    assert_int_equal(ck_audit_query(&c, f->st, &flt), CK_OK);
    assert_int_equal(ck_audit_next(c, &rec), CK_OK);
    assert_int_equal(rec->n_withheld, 2); /* note, nick: its e-mail had an inbound contact */
    assert_int_equal(ck_audit_next(c, &rec), CK_ENOTFOUND);
    ck_audit_cursor_free(c);

    /* one "consent" entry per consent closed */
    flt = (ck_audit_filter)CK_AUDIT_FILTER_INIT;
    flt.action = "consent";
    flt.actor = "dpo";
    assert_int_equal(ck_audit_query(&c, f->st, &flt), CK_OK);
    n = 0;
    while (ck_audit_next(c, &rec) == CK_OK) {
        n++;
        assert_non_null(rec->purpose);
        assert_non_null(rec->subject);
    }
    ck_audit_cursor_free(c);
    assert_int_equal(n, 2 + 2); /* P-00, P-03 marketing; P-00, P-04 news */

    /* no value, ref or identifying datum reached the log */
    char log[PATH_MAX];
    tu_path(log, sizeof log, f->dir, "audit-000001.log");
    const char *secrets[] = {"p1@shop.fr", "shop.fr", "nick1", "P-01", "acme"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (tu_file_contains(log, secrets[i], strlen(secrets[i])))
            fail_msg("the audit log holds %s", secrets[i]);
}

/* Many subjects in small batches: every one is reached once. */
/* A legal hold whose time is over: a dry run counts it, a purge destroys
 * it (ck_hold_expire), the next purge finds nothing. */
static void test_hold_expiry(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "H1", "{\"city\":\"Brest\",\"note\":\"n\"}");
    tu_put(f, "H2", "{\"note\":\"n\"}"); /* no held field: no hold */
    ck_who w = tu_by_ref("H1");
    char *receipt = NULL;
    assert_int_equal(ck_erase(&receipt, f->st, &w, "art17-request", "dpo"), CK_OK);
    json_t *r = json_loads(receipt, 0, NULL);
    ck_free(receipt);
    assert_non_null(r);
    const char *id =
        json_string_value(json_object_get(json_array_get(json_object_get(r, "holds"), 0), "hold"));
    assert_non_null(id);
    char hold[2 * CK_SUBJECT_ID_BYTES + 1];
    snprintf(hold, sizeof hold, "%s", id);
    json_decref(r);

    json_t *j = purge(f, 0, 0); /* not due yet */
    assert_int_equal(num(j, "holds_expired"), 0);
    json_decref(j);
    char *out = NULL;
    assert_int_equal(ck_hold_get(&out, f->st, hold, "auditor"), CK_OK);
    ck_free(out);

    f->now += 6 * DAY;
    j = purge(f, CK_PURGE_DRY_RUN, 0);
    assert_int_equal(num(j, "holds_expired"), 1);
    json_decref(j);
    out = NULL;
    assert_int_equal(ck_hold_get(&out, f->st, hold, "auditor"), CK_EDENIED); /* over, still there */
    assert_null(out);
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "holds_expired"), 1);
    json_decref(j);
    assert_int_equal(ck_hold_get(&out, f->st, hold, "auditor"), CK_ENOTFOUND);
    j = purge(f, 0, 0);
    assert_int_equal(num(j, "holds_expired"), 0);
    json_decref(j);
}

static void test_batches(void **state)
{
    tu_fx *f = *state;
    for (int i = 0; i < 40; i++) {
        char ref[16];
        snprintf(ref, sizeof ref, "B-%02d", i);
        tu_put(f, ref, i % 2 ? "{\"note\":\"x\"}" : "{\"city\":\"y\"}");
    }
    f->now = T0 + 10 * DAY;
    const unsigned sizes[] = {1, 3, 20, 40, 41, 0};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        json_t *j = purge(f, CK_PURGE_DRY_RUN, sizes[k]);
        assert_int_equal(num(j, "values_removed"), 20);
        assert_int_equal(num(j, "subjects"), 20);
        json_decref(j);
    }
    json_t *j = purge(f, 0, 3);
    assert_int_equal(num(j, "values_removed"), 20);
    json_decref(j);
    j = purge(f, 0, 3);
    assert_int_equal(num(j, "values_removed"), 0);
    json_decref(j);
}

static void test_errors(void **state)
{
    tu_fx *f = *state;
    tu_put(f, "X", "{\"note\":\"x\"}");
    f->now = T0 + 10 * DAY;
    char *out = (char *)1;
    ck_purge_options o = CK_PURGE_OPTIONS_INIT;
    assert_int_equal(ck_purge(&out, f->st, &o, NULL), CK_EINVAL);
    assert_null(out);
    assert_int_equal(ck_purge(NULL, f->st, &o, ""), CK_EINVAL);
    assert_int_equal(ck_purge(NULL, f->st, &o, "a\nb"), CK_EINVAL);
    assert_int_equal(ck_purge(NULL, NULL, &o, "dpo"), CK_EINVAL);
    o.version = 99;
    assert_int_equal(ck_purge(NULL, f->st, &o, "dpo"), CK_EINVAL);
    o = (ck_purge_options)CK_PURGE_OPTIONS_INIT;
    o.flags = 0x10;
    assert_int_equal(ck_purge(NULL, f->st, &o, "dpo"), CK_EINVAL);
    o.flags = 0;
    o.batch_subjects = 65537;
    assert_int_equal(ck_purge(NULL, f->st, &o, "dpo"), CK_EINVAL);
    /* none of these changed anything */
    assert_string_equal(reason_of(f, "X", "service", NULL, "note"), "retention");
    o.batch_subjects = 0;
    assert_int_equal(ck_purge(NULL, f->st, NULL, "dpo"), CK_OK); /* out optional */
    assert_string_equal(reason_of(f, "X", "service", NULL, "note"), "unset");

    /* read-only: a dry run only */
    tu_put(f, "Y", "{\"note\":\"y\"}");
    f->now = T0 + 30 * DAY;
    tu_fx_reopen(f, CK_OPEN_RDONLY);
    assert_int_equal(ck_purge(NULL, f->st, NULL, "dpo"), CK_EDENIED);
    o.flags = CK_PURGE_DRY_RUN;
    assert_int_equal(ck_purge(&out, f->st, &o, "dpo"), CK_OK);
    assert_non_null(strstr(out, "\"values_removed\":1"));
    ck_free(out);
}

/* A store without a schema has nothing to purge. */
static void test_no_schema(void **state)
{
    (void)state;
    tu_fx g;
    assert_int_equal(tu_fx_init(&g, "purge-empty", T0, CK_INIT_CREATE_KEY_FILE, NULL), CK_OK);
    char *out = NULL;
    assert_int_equal(ck_purge(&out, g.st, NULL, "dpo"), CK_OK);
    assert_string_equal(out,
                        "{\"dry_run\":false,\"values_removed\":0,\"consents_expired\":0,"
                        "\"subjects\":0,\"holds_expired\":0,\"by_field\":{},\"by_purpose\":{}}");
    ck_free(out);
    tu_fx_fini(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_field_retention, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_contact_field_inbound, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_inbound_not_capped, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_old_contact_log, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_consent_expiry, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_changes_nothing, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_audit_entries, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_hold_expiry, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, tu_fx_teardown),
        cmocka_unit_test(test_no_schema),
    };
    return cmocka_run_group_tests_name("purge", tests, NULL, NULL);
}
