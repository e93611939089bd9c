/*
 * test_tamper.c - a sealed subject record, consent record or contact log
 * that was changed on disk, or moved to another subject, is refused with
 * CK_EINTEGRITY and releases nothing; the consent index, trusted only to
 * refuse, cannot widen a consent.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "consent.h"
#include "fixture.h"

static const char SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"news\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\"],\"channel\":{\"type\":\"email\",\"field\":\"email\",\"cap\":"
    "{\"count\":5,\"days\":7}}}}}";

static int setup(void **state)
{
    if (tu_fx_setup(state, "tamper", TU_FX_WALL_CLOCK, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC,
                    SCHEMA) != 0)
        return -1;
    tu_fx *f = *state;
    const char *lines =
        "{\"ref\":\"A\",\"fields\":{\"email\":\"a@x.fr\"},\"consent\":{\"news\":true}}\n"
        "{\"ref\":\"B\",\"fields\":{\"email\":\"b@x.fr\"},\"consent\":{\"news\":false}}\n";
    ck_importer *imp;
    ck_import_options io = CK_IMPORT_OPTIONS_INIT;
    ck_import_stats s;
    ck_who a = {CK_BY_REF, "A", 0, NULL, NULL, NULL};
    if (ck_import_begin(&imp, f->st, &io) != CK_OK ||
        ck_import_feed(imp, lines, strlen(lines)) != CK_OK || ck_import_finish(imp, &s) != CK_OK ||
        s.imported != 2 || ck_contact_record(f->st, &a, "email", "mailer") != CK_OK) {
        tu_fx_teardown(state);
        return -1;
    }
    return 0;
}

static void sid_of(tu_fx *f, const char *ref, unsigned char sid[CK_SUBJECT_ID_BYTES])
{
    ck_who w = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
}

/* Apply `change` to the value of (dbi, key) in a write transaction. */
typedef struct edit {
    MDB_dbi dbi;
    uint8_t key[64];
    size_t klen;
    int flip;               /* flip a byte of the ciphertext at this offset */
    const MDB_val *replace; /* or replace the whole value */
} edit;

static int edit_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    (void)st;
    edit *e = ctx;
    MDB_val k = {e->klen, e->key}, v;
    if (mdb_get(txn, e->dbi, &k, &v) != 0)
        return CK_ENOTFOUND;
    uint8_t buf[4096];
    assert_true(v.mv_size <= sizeof buf);
    memcpy(buf, v.mv_data, v.mv_size);
    MDB_val nv = {v.mv_size, buf};
    if (e->replace != NULL)
        nv = *e->replace;
    else
        buf[e->flip] ^= 1;
    return mdb_put(txn, e->dbi, &k, &nv, 0) == 0 ? CK_OK : CK_EIO;
}

static int release(tu_fx *f, const char *ref)
{
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "news";
    r.subject.by = CK_BY_REF;
    r.subject.value = ref;
    ck_result *res = NULL;
    int rc = ck_release(&res, f->st, &r);
    if (rc == CK_OK) {
        rc = ck_result_field(res, 0)->reason == CK_RELEASED ? CK_OK : 1;
        ck_result_free(res);
    } else {
        assert_null(res);
    }
    return rc;
}

static void test_consent_record_flipped(void **state)
{
    tu_fx *f = *state;
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    sid_of(f, "A", sid);
    assert_int_equal(release(f, "A"), CK_OK);
    edit e = {f->st->dbi_consents, {0}, CK_CONSENT_KEY_BYTES, 30, NULL};
    memcpy(e.key, sid, CK_SUBJECT_ID_BYTES);
    ck_consent__ptag(e.key + CK_SUBJECT_ID_BYTES, f->st, "news", 4);
    ck_be32_put(e.key + CK_SUBJECT_ID_BYTES + CK_PTAG_BYTES, 1);
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e), CK_OK);
    assert_int_equal(release(f, "A"), CK_EINTEGRITY);
    ck_who w = {CK_BY_REF, "A", 0, NULL, NULL, NULL};
    char *js = NULL;
    assert_int_equal(ck_consent_json(&js, f->st, &w), CK_EINTEGRITY);
    assert_null(js);
}

/* B refused; its consent index entry is forged to "granted" and pointed at
 * A's record: the record does not open under B (AAD), nothing released. */
static void test_consent_index_cannot_widen(void **state)
{
    tu_fx *f = *state;
    unsigned char a[CK_SUBJECT_ID_BYTES], b[CK_SUBJECT_ID_BYTES];
    sid_of(f, "A", a);
    sid_of(f, "B", b);
    assert_int_equal(release(f, "B"), 1);
    uint8_t ptag[CK_PTAG_BYTES];
    ck_consent__ptag(ptag, f->st, "news", 4);
    /* index entry of B: granted */
    uint8_t val[CK_CINDEX_VAL_BYTES] = {CK_CONSENT_GRANTED};
    ck_be32_put(val + 9, 1);
    MDB_val nv = {sizeof val, val};
    edit e = {f->st->dbi_cindex, {0}, CK_CINDEX_KEY_BYTES, 0, &nv};
    memcpy(e.key, ptag, CK_PTAG_BYTES);
    memcpy(e.key + CK_PTAG_BYTES, b, CK_SUBJECT_ID_BYTES);
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e), CK_OK);
    /* B's record still says refused: the disagreement is an integrity error */
    assert_int_equal(release(f, "B"), CK_EINTEGRITY);
    /* A's granted record copied under B's key does not open under B */
    MDB_txn *t;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->data, &t), CK_OK);
    uint8_t ka[CK_CONSENT_KEY_BYTES];
    memcpy(ka, a, CK_SUBJECT_ID_BYTES);
    memcpy(ka + CK_SUBJECT_ID_BYTES, ptag, CK_PTAG_BYTES);
    ck_be32_put(ka + CK_SUBJECT_ID_BYTES + CK_PTAG_BYTES, 1);
    MDB_val k = {sizeof ka, ka}, av;
    assert_int_equal(mdb_get(t, f->st->dbi_consents, &k, &av), 0);
    uint8_t copy[4096];
    memcpy(copy, av.mv_data, av.mv_size);
    MDB_val cv = {av.mv_size, copy};
    ck_env__read_end(&f->st->data, t);
    edit e2 = {f->st->dbi_consents, {0}, CK_CONSENT_KEY_BYTES, 0, &cv};
    memcpy(e2.key, b, CK_SUBJECT_ID_BYTES);
    memcpy(e2.key + CK_SUBJECT_ID_BYTES, ptag, CK_PTAG_BYTES);
    ck_be32_put(e2.key + CK_SUBJECT_ID_BYTES + CK_PTAG_BYTES, 1);
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e2), CK_OK);
    assert_int_equal(release(f, "B"), CK_EINTEGRITY);
}

static void test_subject_record_and_contact_log_flipped(void **state)
{
    tu_fx *f = *state;
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    sid_of(f, "A", sid);
    /* the contact log: the release reads it for the channel's address */
    edit e = {f->st->dbi_contacts, {0}, CK_SUBJECT_ID_BYTES + 1, 30, NULL};
    memcpy(e.key, sid, CK_SUBJECT_ID_BYTES);
    e.key[CK_SUBJECT_ID_BYTES] = CK_CHANNEL_EMAIL;
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e), CK_OK);
    assert_int_equal(release(f, "A"), CK_EINTEGRITY);
    ck_who w = {CK_BY_REF, "A", 0, NULL, NULL, NULL};
    assert_int_equal(ck_contact_record(f->st, &w, "email", "mailer"), CK_EINTEGRITY);
    /* the subject record: any write to the subject opens it */
    edit s = {f->st->dbi_subjects, {0}, CK_SUBJECT_ID_BYTES, 30, NULL};
    memcpy(s.key, sid, CK_SUBJECT_ID_BYTES);
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &s), CK_OK);
    const char *js = "{\"email\":\"new@x.fr\"}";
    assert_int_equal(ck_put_json(NULL, f->st, &w, js, strlen(js), 0), CK_EINTEGRITY);
    assert_non_null(strstr(ck_errmsg(f->st), "does not authenticate"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_consent_record_flipped, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_consent_index_cannot_widen, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_subject_record_and_contact_log_flipped, setup,
                                        tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
