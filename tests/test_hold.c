/*
 * test_hold.c - legal holds: an erasure keeps exactly the held fields the
 * subject holds, under a hold unlinked to it; the receipt says what, why
 * and until when; reading is audited first (and fails closed); the subject
 * is unreachable every way; the hold ends (refused, then destroyed with
 * its key scrubbed from the keyring file); a store made before holds.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "hold.h"
#include "fixture.h"

static const char SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"invoice_total\":{\"type\":\"int\",\"sensitivity\":\"personal\"},"
    "\"billing_address\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true},"
    "\"paid_on\":{\"type\":\"date\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"service\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\",\"invoice_total\",\"billing_address\",\"paid_on\"]},"
    "\"news\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\"]},"
    "\"invoicing\":{\"basis\":\"legal_obligation\",\"description\":\"Keep invoices 10 years "
    "(\\\"tax code\\\")\",\"benefit\":\"b\",\"fields\":[\"email\",\"invoice_total\","
    "\"billing_address\",\"paid_on\"],\"hold\":{\"fields\":[\"invoice_total\",\"billing_address\","
    "\"paid_on\"],\"days\":3650}},"
    "\"disputes\":{\"basis\":\"legal_obligation\",\"description\":\"Disputes\",\"benefit\":\"b\","
    "\"fields\":[\"city\"],\"hold\":{\"fields\":[\"city\"],\"days\":1}}}}";

#define T0  1800000000LL
#define DAY 86400LL

static int setup(void **state)
{
    return tu_fx_setup(state, "hold", T0, CK_INIT_CREATE_KEY_FILE, SCHEMA);
}

static void import_text(tu_fx *f, const char *text)
{
    ck_importer *imp;
    ck_import_options o = CK_IMPORT_OPTIONS_INIT;
    ck_import_stats s;
    assert_int_equal(ck_import_begin(&imp, f->st, &o), CK_OK);
    assert_int_equal(ck_import_feed(imp, text, strlen(text)), CK_OK);
    assert_int_equal(ck_import_finish(imp, &s), CK_OK);
    assert_int_equal(s.rejected, 0);
}

static const char CUSTOMER[] =
    "{\"ref\":\"H-1\",\"fields\":{\"email\":\"hana@example.fr\",\"city\":\"Brest\","
    "\"invoice_total\":123456,\"billing_address\":\"4 quai \\\"Nord\\\"\"},"
    "\"consent\":{\"news\":true}}\n"
    "{\"ref\":\"H-2\",\"fields\":{\"email\":\"other@example.fr\"},\"consent\":{\"news\":true}}\n";

/* The number of entries of a database of the keyring environment. */
static size_t keyring_entries(tu_fx *f, MDB_dbi dbi)
{
    MDB_txn *t;
    MDB_stat ms;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->keyring, &t), CK_OK);
    assert_int_equal(mdb_stat(t, dbi, &ms), 0);
    ck_env__read_end(&f->st->keyring, t);
    return ms.ms_entries;
}

/* The record stored at `id` in a database of the keyring environment. */
static size_t keyring_get(tu_fx *f, MDB_dbi dbi, const uint8_t *id, uint8_t *out, size_t max)
{
    MDB_txn *t;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->keyring, &t), CK_OK);
    MDB_val k = {16, (void *)id}, v;
    size_t n = 0;
    if (mdb_get(t, dbi, &k, &v) == 0) {
        assert_true(v.mv_size <= max);
        memcpy(out, v.mv_data, v.mv_size);
        n = v.mv_size;
    }
    ck_env__read_end(&f->st->keyring, t);
    return n;
}

static json_t *erase_ref(tu_fx *f, const char *ref)
{
    ck_who w = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
    char *receipt = NULL;
    assert_int_equal(ck_erase(&receipt, f->st, &w, "art17-request", "dpo"), CK_OK);
    json_t *j = json_loads(receipt, 0, NULL);
    assert_non_null(j);
    ck_free(receipt);
    return j;
}

/* The hold of `purpose` in a receipt, or NULL. */
static json_t *hold_of(json_t *receipt, const char *purpose)
{
    json_t *hs = json_object_get(receipt, "holds"), *h;
    size_t i;
    assert_true(json_is_array(hs));
    json_array_foreach(hs, i, h) if (strcmp(json_string_value(json_object_get(h, "purpose")),
                                            purpose) == 0) return h;
    return NULL;
}

static size_t count_entries(tu_fx *f, const char *action, const char *event)
{
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = action;
    ck_audit_cursor *c;
    assert_int_equal(ck_audit_query(&c, f->st, &flt), CK_OK);
    const ck_audit_record *r;
    size_t n = 0;
    while (ck_audit_next(c, &r) == CK_OK) {
        bool match = event == NULL;
        for (size_t i = 0; !match && i < r->n_detail; i++)
            match = strcmp(r->detail[i].key, "event") == 0 && r->detail[i].str != NULL &&
                    strcmp(r->detail[i].str, event) == 0;
        n += match;
    }
    ck_audit_cursor_free(c);
    return n;
}

static void test_hold_kept_and_read(void **state)
{
    tu_fx *f = *state;
    import_text(f, CUSTOMER);
    ck_who w = {CK_BY_REF, "H-1", 0, NULL, NULL, NULL};
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
    assert_int_equal(ck_alias_add(f->st, &w, "loyal-7", 0), CK_OK);
    /* Its pseudonym for "news", to try after the erasure. */
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "news";
    r.subject = w;
    ck_result *res = NULL;
    assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
    char ps[128];
    snprintf(ps, sizeof ps, "%s", ck_result_subject(res));
    ck_result_free(res);

    json_t *j = erase_ref(f, "H-1");
    /* Two holds: invoicing keeps the two of its three fields the subject
     * has (no paid_on), disputes keeps the city. */
    assert_int_equal(json_array_size(json_object_get(j, "holds")), 2);
    json_t *inv = hold_of(j, "invoicing"), *dis = hold_of(j, "disputes");
    assert_non_null(inv);
    assert_non_null(dis);
    assert_string_equal(json_string_value(json_object_get(inv, "basis")), "legal_obligation");
    assert_string_equal(json_string_value(json_object_get(inv, "description")),
                        "Keep invoices 10 years (\"tax code\")");
    json_t *fl = json_object_get(inv, "fields");
    assert_int_equal(json_array_size(fl), 2);
    assert_string_equal(json_string_value(json_array_get(fl, 0)), "invoice_total");
    assert_string_equal(json_string_value(json_array_get(fl, 1)), "billing_address");
    assert_string_equal(json_string_value(json_object_get(inv, "until")),
                        "2037-01-12T08:00:00Z"); /* T0 + 3650 days */
    assert_string_equal(json_string_value(json_object_get(dis, "until")), "2027-01-16T08:00:00Z");
    assert_int_equal(json_array_size(json_object_get(dis, "fields")), 1);
    /* Everything else went: 4 values deleted, the email's and address's
     * index entries, the ref, the alias. */
    json_t *del = json_object_get(j, "deleted");
    assert_int_equal(json_integer_value(json_object_get(del, "values")), 4);
    assert_int_equal(json_integer_value(json_object_get(del, "index_entries")), 4);

    /* The hold id shares nothing with the subject id. */
    char inv_id[33], dis_id[33], hex[33];
    snprintf(inv_id, sizeof inv_id, "%s", json_string_value(json_object_get(inv, "hold")));
    snprintf(dis_id, sizeof dis_id, "%s", json_string_value(json_object_get(dis, "hold")));
    ck_subject_id_hex(hex, sid);
    assert_int_equal(strlen(inv_id), CK_HOLD_ID_CHARS);
    assert_string_not_equal(inv_id, hex);
    assert_string_not_equal(inv_id, dis_id);
    json_decref(j);

    /* The subject is unreachable every way. */
    unsigned char got[CK_SUBJECT_ID_BYTES];
    ck_who ways[] = {{CK_BY_REF, "H-1", 0, NULL, NULL, NULL},
                     {CK_BY_ID, hex, 0, NULL, NULL, NULL},
                     {CK_BY_LOOKUP, "hana@example.fr", 0, "email", NULL, NULL},
                     {CK_BY_LOOKUP, "4 quai \"Nord\"", 0, "billing_address", NULL, NULL},
                     {CK_BY_ALIAS, "loyal-7", 0, NULL, NULL, NULL},
                     {CK_BY_PSEUDONYM, ps, 0, NULL, "news", NULL}};
    for (size_t i = 0; i < CK_ARRAY_LEN(ways); i++) {
        assert_int_equal(ck_subject_find(got, f->st, &ways[i]), CK_ENOTFOUND);
        r.subject = ways[i];
        r.purpose = i == 5 ? "news" : "invoicing";
        assert_int_equal(ck_release(&res, f->st, &r), CK_ENOTFOUND);
    }
    ck_segment_request q = CK_SEGMENT_INIT;
    q.actor = "t";
    q.purpose = "invoicing";
    ck_cursor *c;
    assert_int_equal(ck_segment(&c, f->st, &q), CK_OK);
    const ck_result *sr;
    int n = 0;
    while (ck_segment_next(c, &sr) == CK_OK)
        n++;
    ck_cursor_free(c);
    assert_int_equal(n, 1); /* H-2 only */

    /* The hold reads back exactly the kept fields, audited first. */
    size_t reads = count_entries(f, "hold", "read");
    assert_int_equal(reads, 0);
    assert_int_equal(count_entries(f, "hold", "kept"), 2);
    char *text = NULL;
    assert_int_equal(ck_hold_get(&text, f->st, inv_id, "auditor"), CK_OK);
    json_t *h = json_loads(text, 0, NULL);
    ck_free(text);
    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "hold")), inv_id);
    assert_string_equal(json_string_value(json_object_get(h, "purpose")), "invoicing");
    assert_string_equal(json_string_value(json_object_get(h, "kept_at")), "2027-01-15T08:00:00Z");
    json_t *fv = json_object_get(h, "fields");
    assert_int_equal(json_object_size(fv), 2);
    assert_int_equal(json_integer_value(json_object_get(fv, "invoice_total")), 123456);
    assert_string_equal(json_string_value(json_object_get(fv, "billing_address")),
                        "4 quai \"Nord\"");
    json_decref(h);
    assert_int_equal(count_entries(f, "hold", "read"), 1);
    /* An entry that cannot be written: nothing is returned. */
    ck_audit__test_fail_next(f->st, CK_AUDIT_FAIL_WRITE);
    text = (char *)"untouched";
    assert_int_not_equal(ck_hold_get(&text, f->st, inv_id, "auditor"), CK_OK);
    assert_null(text);
    tu_fx_reopen(f, 0); /* the failed write poisoned the handle's log */
    assert_int_equal(count_entries(f, "hold", "read"), 1);
    assert_int_equal(ck_hold_get(&text, f->st, dis_id, "auditor"), CK_OK);
    assert_non_null(strstr(text, "\"fields\":{\"city\":\"Brest\"}"));
    ck_free(text);

    /* Bad ids and unknown holds. */
    assert_int_equal(ck_hold_get(&text, f->st, "abc", "auditor"), CK_EINVAL);
    assert_int_equal(ck_hold_get(&text, f->st, "zz975f77841a2d15b1464ac145b8e5c8", "auditor"),
                     CK_EINVAL);
    assert_int_equal(ck_hold_get(&text, f->st, hex, "auditor"), CK_ENOTFOUND);
    assert_int_equal(ck_hold_get(&text, f->st, inv_id, NULL), CK_EINVAL);

    /* A subject with none of the held fields leaves no hold. */
    j = erase_ref(f, "H-2");
    assert_int_equal(json_array_size(json_object_get(j, "holds")), 0);
    json_decref(j);
    assert_int_equal(keyring_entries(f, f->st->dbi_holds), 2);
    assert_int_equal(keyring_entries(f, f->st->dbi_hold_keys), 2);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);
}

/* The end of a hold: refused once its time is over, then destroyed by
 * ck_hold_expire - key and record deleted, no copy of the wrapped key left
 * in the keyring file. */
static void test_hold_expiry(void **state)
{
    tu_fx *f = *state;
    import_text(f, CUSTOMER);
    json_t *j = erase_ref(f, "H-1");
    char inv_id[33], dis_id[33];
    snprintf(inv_id, sizeof inv_id, "%s",
             json_string_value(json_object_get(hold_of(j, "invoicing"), "hold")));
    snprintf(dis_id, sizeof dis_id, "%s",
             json_string_value(json_object_get(hold_of(j, "disputes"), "hold")));
    json_decref(j);
    uint8_t dis_bin[16], keyrec[CK_KEYRING_RECORD_BYTES], rec[4096];
    size_t bl;
    assert_int_equal(sodium_hex2bin(dis_bin, 16, dis_id, 32, NULL, &bl, NULL), 0);
    assert_int_equal(keyring_get(f, f->st->dbi_hold_keys, dis_bin, keyrec, sizeof keyrec),
                     CK_KEYRING_RECORD_BYTES);
    size_t rec_len = keyring_get(f, f->st->dbi_holds, dis_bin, rec, sizeof rec);
    assert_true(rec_len > 9);
    char kpath[PATH_MAX];
    tu_path(kpath, sizeof kpath, f->dir, "keyring.mdb");
    /* Rewrite the hold's pages a few times so that stale copies exist. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ck_subject_create(NULL, f->st, NULL, 0), CK_OK);
    assert_int_equal(tu_file_contains(kpath, keyrec, sizeof keyrec), 1);

    uint64_t n = 99;
    assert_int_equal(ck_hold_expire(&n, f->st, "purge"), CK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(ck_hold_expire(&n, f->st, NULL), CK_EINVAL);

    /* A day later the disputes hold is over: nothing released... */
    f->now = T0 + DAY;
    char *text = NULL;
    assert_int_equal(ck_hold_get(&text, f->st, dis_id, "auditor"), CK_EDENIED);
    assert_null(text);
    assert_int_equal(count_entries(f, "hold", "read"), 0);
    assert_int_equal(ck_hold_get(&text, f->st, inv_id, "auditor"), CK_OK);
    ck_free(text);
    /* ...and expiry destroys it, audited, its key scrubbed. */
    assert_int_equal(ck_hold_expire(&n, f->st, "purge"), CK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ck_hold_get(&text, f->st, dis_id, "auditor"), CK_ENOTFOUND);
    assert_int_equal(keyring_get(f, f->st->dbi_hold_keys, dis_bin, keyrec + 0, 0), 0);
    assert_int_equal(tu_file_contains(kpath, keyrec, sizeof keyrec), 0);
    assert_int_equal(count_entries(f, "hold", "expired"), 1);
    tu_fx_reopen(f, 0);
    assert_int_equal(tu_file_contains(kpath, keyrec, sizeof keyrec), 0);
    assert_int_equal(ck_hold_get(&text, f->st, inv_id, "auditor"), CK_OK);
    ck_free(text);
    assert_int_equal(ck_hold_expire(&n, f->st, "purge"), CK_OK);
    assert_int_equal(n, 0);

    /* Ten years on, the invoices go too. */
    f->now = T0 + 3650 * DAY;
    assert_int_equal(ck_hold_expire(&n, f->st, "purge"), CK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ck_hold_get(&text, f->st, inv_id, "auditor"), CK_ENOTFOUND);
    assert_int_equal(keyring_entries(f, f->st->dbi_holds), 0);
    assert_int_equal(keyring_entries(f, f->st->dbi_hold_keys), 0);
    assert_int_equal(count_entries(f, "hold", "expired"), 2);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);
}

static int poke_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    uint8_t *id = ctx;
    MDB_val k = {16, id}, v;
    int mrc = mdb_get(ktxn, st->dbi_holds, &k, &v);
    if (mrc != 0)
        return CK_EINTERNAL;
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[8] ^= 1; /* the low byte of `until`: an earlier end */
    MDB_val nv = {v.mv_size, copy};
    mrc = mdb_put(ktxn, st->dbi_holds, &k, &nv, 0);
    free(copy);
    return mrc == 0 ? CK_OK : CK_EINTERNAL;
}

/* A hold whose end was moved does not open, and expiry destroys nothing. */
static void test_hold_tampered_end(void **state)
{
    tu_fx *f = *state;
    import_text(f, CUSTOMER);
    json_t *j = erase_ref(f, "H-1");
    char dis_id[33];
    snprintf(dis_id, sizeof dis_id, "%s",
             json_string_value(json_object_get(hold_of(j, "disputes"), "hold")));
    json_decref(j);
    uint8_t id[16];
    size_t bl;
    assert_int_equal(sodium_hex2bin(id, 16, dis_id, 32, NULL, &bl, NULL), 0);
    assert_int_equal(ck_env__write(f->st, &f->st->keyring, poke_txn, id), CK_OK);
    char *text = NULL;
    assert_int_equal(ck_hold_get(&text, f->st, dis_id, "auditor"), CK_EINTEGRITY);
    f->now = T0 + 2 * DAY;
    uint64_t n = 0;
    assert_int_equal(ck_hold_expire(&n, f->st, "purge"), CK_EINTEGRITY);
    assert_int_equal(n, 0);
    assert_int_equal(keyring_entries(f, f->st->dbi_holds), 2);
    assert_int_equal(count_entries(f, "hold", "expired"), 0);
}

static int drop_holds_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    (void)ctx;
    if (mdb_drop(ktxn, st->dbi_holds, 1) != 0 || mdb_drop(ktxn, st->dbi_hold_keys, 1) != 0)
        return CK_EINTERNAL;
    return CK_OK;
}

/* A store made before holds existed: read-only, it holds none; opened to
 * write, its hold databases are made. */
static void test_store_without_holds(void **state)
{
    tu_fx *f = *state;
    import_text(f, CUSTOMER);
    assert_int_equal(ck_env__write(f->st, &f->st->keyring, drop_holds_txn, NULL), CK_OK);
    tu_fx_reopen(f, CK_OPEN_RDONLY);
    assert_false(f->st->has_holds);
    char *text = NULL;
    assert_int_equal(ck_hold_get(&text, f->st, "a7975f77841a2d15b1464ac145b8e5c8", "auditor"),
                     CK_ENOTFOUND);
    ck_who w = {CK_BY_REF, "H-1", 0, NULL, NULL, NULL};
    assert_int_equal(ck_erase(NULL, f->st, &w, "art17-request", "dpo"), CK_EDENIED);
    tu_fx_reopen(f, 0);
    assert_true(f->st->has_holds);
    json_t *j = erase_ref(f, "H-1");
    assert_int_equal(json_array_size(json_object_get(j, "holds")), 2);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hold_kept_and_read, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_hold_expiry, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_hold_tampered_end, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_without_holds, setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
