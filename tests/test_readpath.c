/*
 * test_readpath.c - the read path of releases and segments: the values of a
 * subject fetched by one cursor walk (ck_seal__fetch) and opened one by one
 * (ck_seal__open_at), data keys through a kept keyring cursor
 * (ck_keyring__get_at), consent index entries decoded from a segment's walk
 * (ck_consent__current_decode). Each must give exactly what the look-up of
 * one key gives - the same records, the same errors - and a release must
 * open no value that its rules do not let through.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "consent.h"
#include "fixture.h"
#include "value.h"

#define NSUBJ 120

/* Eight fields, ids 1..8 in this order; "news" declares three of them,
 * "svc" all of them. */
static const char SCHEMA[] =
    "{\"fields\":{"
    "\"f1\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"f2\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"f3\":{\"type\":\"int\",\"sensitivity\":\"personal\"},"
    "\"f4\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"f5\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"f6\":{\"type\":\"int\",\"sensitivity\":\"personal\"},"
    "\"f7\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"f8\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{"
    "\"news\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"f2\",\"f4\",\"f7\"]},"
    "\"svc\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"f1\",\"f2\",\"f3\",\"f4\",\"f5\",\"f6\",\"f7\",\"f8\"]}}}";

static const char *const FIELDS[8] = {"f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"};

/* Subject i (ref "s<i>") holds field j (1..8) when bit j-1 of mask(i) is
 * set: every pattern of set and unset fields, interleaved, and subject 0
 * holds none. */
static unsigned mask_of(int i)
{
    return (unsigned)(i * 37) & 0xffu;
}

static int setup(void **state)
{
    if (tu_fx_setup(state, "readpath", TU_FX_WALL_CLOCK, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC,
                    SCHEMA) != 0)
        return -1;
    tu_fx *f = *state;
    char line[1024];
    size_t cap = (size_t)NSUBJ * sizeof line, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int i = 0; i < NSUBJ; i++) {
        unsigned m = mask_of(i);
        int n = snprintf(line, sizeof line, "{\"ref\":\"s%d\",\"fields\":{", i);
        const char *sep = "";
        for (int j = 0; j < 8; j++) {
            if (!(m & (1u << j)))
                continue;
            if (j == 2 || j == 5)
                n += snprintf(line + n, sizeof line - (size_t)n, "%s\"%s\":%d", sep, FIELDS[j],
                              i * 10 + j);
            else
                n += snprintf(line + n, sizeof line - (size_t)n, "%s\"%s\":\"v%d.%d\"", sep,
                              FIELDS[j], i, j);
            sep = ",";
        }
        n += snprintf(line + n, sizeof line - (size_t)n, "},\"consent\":{\"news\":%s}}\n",
                      i % 3 == 0 ? "false" : "true");
        memcpy(text + len, line, (size_t)n);
        len += (size_t)n;
    }
    ck_importer *imp;
    ck_import_options io = CK_IMPORT_OPTIONS_INIT;
    ck_import_stats s;
    int rc = ck_import_begin(&imp, f->st, &io);
    if (rc == CK_OK)
        rc = ck_import_feed(imp, text, len);
    if (rc == CK_OK)
        rc = ck_import_finish(imp, &s);
    free(text);
    if (rc != CK_OK || s.imported != NSUBJ) {
        tu_fx_teardown(state);
        return -1;
    }
    return 0;
}

static void sid_of(tu_fx *f, int i, unsigned char sid[CK_SUBJECT_ID_BYTES])
{
    char ref[16];
    snprintf(ref, sizeof ref, "s%d", i);
    ck_who w = tu_by_ref(ref);
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
}

/* The data key of `sid`. */
static void key_of(tu_fx *f, const unsigned char *sid, unsigned char dk[CK_KEY_BYTES])
{
    MDB_txn *kt;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->keyring, &kt), CK_OK);
    assert_int_equal(ck_keyring__get(f->st, kt, sid, dk), CK_OK);
    ck_env__read_end(&f->st->keyring, kt);
}

/* Fetch `ids` of `sid` with `cur` and check every record against a
 * look-up of its key: the same bytes, or both absent. */
static void check_fetch(tu_fx *f, MDB_txn *t, MDB_cursor *cur, const uint8_t *sid,
                        const uint16_t *ids, size_t n)
{
    MDB_val recs[16];
    assert_true(n <= 16);
    assert_int_equal(ck_seal__fetch(f->st, cur, sid, ids, n, recs), CK_OK);
    for (size_t i = 0; i < n; i++) {
        uint8_t key[CK_VALUE_KEY_BYTES];
        ck_seal__value_key(key, sid, ids[i]);
        MDB_val k = {sizeof key, key}, v;
        int mrc = mdb_get(t, f->st->dbi_values, &k, &v);
        if (mrc == MDB_NOTFOUND) {
            assert_null(recs[i].mv_data);
            assert_int_equal(recs[i].mv_size, 0);
        } else {
            assert_int_equal(mrc, 0);
            assert_ptr_equal(recs[i].mv_data, v.mv_data);
            assert_int_equal(recs[i].mv_size, v.mv_size);
        }
    }
}

/* Every subject, in ascending, descending and scattered order through one
 * kept cursor, with several sets of ids: what fetch finds is what a
 * look-up finds. Also the ids past every subject's last value, a subject
 * with no value, the last subject in the database and ids around it. */
static void test_fetch_equals_lookups(void **state)
{
    tu_fx *f = *state;
    uint8_t sids[NSUBJ][CK_SUBJECT_ID_BYTES];
    for (int i = 0; i < NSUBJ; i++)
        sid_of(f, i, sids[i]);
    static const uint16_t all[] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint16_t odd[] = {1, 3, 5, 7};
    static const uint16_t last2[] = {7, 8};
    static const uint16_t past[] = {8, 9, 200, 65535};
    static const uint16_t first[] = {0, 1};
    const struct {
        const uint16_t *ids;
        size_t n;
    } sets[] = {{all, 8}, {odd, 4}, {last2, 2}, {past, 4}, {first, 2}, {all + 3, 1}};
    MDB_txn *t;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->data, &t), CK_OK);
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(t, f->st->dbi_values, &cur), 0);
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        for (int i = 0; i < NSUBJ; i++)
            check_fetch(f, t, cur, sids[i], sets[s].ids, sets[s].n);
        for (int i = NSUBJ; i-- > 0;)
            check_fetch(f, t, cur, sids[i], sets[s].ids, sets[s].n);
        for (int i = 0; i < NSUBJ; i++)
            check_fetch(f, t, cur, sids[(i * 53) % NSUBJ], sets[s].ids, sets[s].n);
    }
    /* subject 0 holds no value: nothing found, whatever is asked */
    MDB_val recs[8];
    assert_int_equal(mask_of(0), 0);
    assert_int_equal(ck_seal__fetch(f->st, cur, sids[0], all, 8, recs), CK_OK);
    for (int j = 0; j < 8; j++)
        assert_null(recs[j].mv_data);
    /* the subject of the last value in the database, and ids beyond it */
    MDB_val k, v;
    assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_LAST), 0);
    assert_int_equal(k.mv_size, CK_VALUE_KEY_BYTES);
    uint8_t lastsid[CK_SUBJECT_ID_BYTES];
    memcpy(lastsid, k.mv_data, sizeof lastsid);
    uint16_t lastfid =
        (uint16_t)(((const uint8_t *)k.mv_data)[16] << 8 | ((const uint8_t *)k.mv_data)[17]);
    check_fetch(f, t, cur, lastsid, all, 8);
    uint16_t around[] = {lastfid, (uint16_t)(lastfid + 1)};
    assert_int_equal(ck_seal__fetch(f->st, cur, lastsid, around, 2, recs), CK_OK);
    assert_non_null(recs[0].mv_data);
    assert_null(recs[1].mv_data);
    /* ids before every subject and after every subject */
    uint8_t lo[CK_SUBJECT_ID_BYTES], hi[CK_SUBJECT_ID_BYTES];
    memset(lo, 0, sizeof lo);
    memset(hi, 0xff, sizeof hi);
    check_fetch(f, t, cur, lo, all, 8);
    check_fetch(f, t, cur, hi, all, 8);
    check_fetch(f, t, cur, hi, last2, 2);
    /* nothing asked: nothing read */
    assert_int_equal(ck_seal__fetch(f->st, cur, sids[1], all, 0, recs), CK_OK);
    mdb_cursor_close(cur);
    ck_env__read_end(&f->st->data, t);
}

/* Entries under a subject's prefix whose keys are not value keys (one byte
 * short or long) are skipped, as an exact look-up of each id skips them. */
typedef struct odd_keys {
    uint8_t sid[CK_SUBJECT_ID_BYTES];
} odd_keys;

static int put_odd_keys(ck_store *st, MDB_txn *txn, void *ctx)
{
    odd_keys *o = ctx;
    uint8_t key[CK_VALUE_KEY_BYTES + 1];
    memcpy(key, o->sid, CK_SUBJECT_ID_BYTES);
    key[16] = 0;
    key[17] = 3; /* f3: unset for s5 */
    key[18] = 0;
    uint8_t junk[60] = {CK_VALUE_RECORD_VERSION};
    MDB_val v = {sizeof junk, junk};
    MDB_val k17 = {CK_SUBJECT_ID_BYTES + 1, key};
    MDB_val k19 = {CK_VALUE_KEY_BYTES + 1, key};
    if (mdb_put(txn, st->dbi_values, &k17, &v, 0) != 0 ||
        mdb_put(txn, st->dbi_values, &k19, &v, 0) != 0)
        return CK_EIO;
    return CK_OK;
}

static void test_fetch_skips_other_keys(void **state)
{
    tu_fx *f = *state;
    odd_keys o;
    int i = 5; /* mask 0xb9: f1, f4, f5, f6, f8 */
    sid_of(f, i, o.sid);
    assert_int_equal(ck_env__write(f->st, &f->st->data, put_odd_keys, &o), CK_OK);
    MDB_txn *t;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->data, &t), CK_OK);
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(t, f->st->dbi_values, &cur), 0);
    static const uint16_t all[] = {1, 2, 3, 4, 5, 6, 7, 8};
    check_fetch(f, t, cur, o.sid, all, 8);
    MDB_val recs[8];
    assert_int_equal(ck_seal__fetch(f->st, cur, o.sid, all, 8, recs), CK_OK);
    for (int j = 0; j < 8; j++)
        assert_int_equal(recs[j].mv_data != NULL, (mask_of(i) >> j) & 1u);
    mdb_cursor_close(cur);
    ck_env__read_end(&f->st->data, t);
    /* and a release reads the real values around them */
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "svc";
    r.subject.by = CK_BY_REF;
    r.subject.value = "s5";
    ck_result *res = NULL;
    assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
    assert_int_equal(ck_result_count(res), 8);
    for (int j = 0; j < 8; j++)
        assert_int_equal(ck_result_field(res, (size_t)j)->reason,
                         (mask_of(i) >> j) & 1u ? CK_RELEASED : CK_WITHHELD_UNSET);
    ck_result_free(res);
}

/* ck_seal__open_at: what ck_seal__get_at gives for a good record; and each
 * check on a bad one. */
static void test_open_at(void **state)
{
    tu_fx *f = *state;
    uint8_t a[CK_SUBJECT_ID_BYTES], b[CK_SUBJECT_ID_BYTES];
    unsigned char dk[CK_KEY_BYTES];
    sid_of(f, 1, a); /* mask 37 = 0x25: f1, f3, f6 */
    sid_of(f, 2, b);
    key_of(f, a, dk);
    MDB_txn *t;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->data, &t), CK_OK);
    ck_arena ar = CK_ARENA_INIT;
    uint8_t key[CK_VALUE_KEY_BYTES];
    ck_seal__value_key(key, a, 3);
    MDB_val k = {sizeof key, key}, v;
    assert_int_equal(mdb_get(t, f->st->dbi_values, &k, &v), 0);
    ck_value out, ref;
    int64_t w1 = 0, w2 = 0;
    assert_int_equal(ck_seal__open_at(f->st, a, 3, dk, CK_TYPE_INT, &v, &out, &w1, &ar), CK_OK);
    assert_int_equal(ck_seal__get_at(f->st, t, a, 3, dk, CK_TYPE_INT, &ref, &w2, &ar), CK_OK);
    assert_int_equal(out.type, CK_TYPE_INT);
    assert_int_equal(out.u.i, 1 * 10 + 2);
    assert_int_equal(ref.u.i, out.u.i);
    assert_true(w1 > 0);
    assert_int_equal(w1, w2);
    /* another subject, another field: does not authenticate */
    assert_int_equal(ck_seal__open_at(f->st, b, 3, dk, CK_TYPE_INT, &v, &out, NULL, &ar),
                     CK_EINTEGRITY);
    assert_int_equal(ck_seal__open_at(f->st, a, 6, dk, CK_TYPE_INT, &v, &out, NULL, &ar),
                     CK_EINTEGRITY);
    assert_non_null(strstr(ck_errmsg(f->st), "does not authenticate"));
    /* authenticates, but not as that type */
    assert_int_equal(ck_seal__open_at(f->st, a, 3, dk, CK_TYPE_STRING, &v, &out, NULL, &ar),
                     CK_EFORMAT);
    /* flipped, short, wrong version */
    uint8_t copy[256];
    assert_true(v.mv_size <= sizeof copy);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[30] ^= 1;
    MDB_val bad = {v.mv_size, copy};
    assert_int_equal(ck_seal__open_at(f->st, a, 3, dk, CK_TYPE_INT, &bad, &out, NULL, &ar),
                     CK_EINTEGRITY);
    copy[30] ^= 1;
    copy[0] = CK_VALUE_RECORD_VERSION + 1;
    assert_int_equal(ck_seal__open_at(f->st, a, 3, dk, CK_TYPE_INT, &bad, &out, NULL, &ar),
                     CK_EINTEGRITY);
    assert_non_null(strstr(ck_errmsg(f->st), "malformed"));
    copy[0] = CK_VALUE_RECORD_VERSION;
    bad.mv_size = CK_SEAL_OVERHEAD;
    assert_int_equal(ck_seal__open_at(f->st, a, 3, dk, CK_TYPE_INT, &bad, &out, NULL, &ar),
                     CK_EINTEGRITY);
    ck_arena__free(&ar);
    ck_env__read_end(&f->st->data, t);
    sodium_memzero(dk, sizeof dk);
}

/* ck_keyring__get_at through one kept cursor, in both orders: the keys
 * ck_keyring__get gives; an unknown id; a record moved to another id. */
typedef struct move_key {
    uint8_t from[CK_SUBJECT_ID_BYTES], to[CK_SUBJECT_ID_BYTES];
} move_key;

static int move_key_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    move_key *m = ctx;
    MDB_val k = {CK_SUBJECT_ID_BYTES, m->from}, v;
    if (mdb_get(txn, st->dbi_keyring, &k, &v) != 0)
        return CK_ENOTFOUND;
    uint8_t copy[CK_KEYRING_RECORD_BYTES];
    memcpy(copy, v.mv_data, sizeof copy);
    MDB_val k2 = {CK_SUBJECT_ID_BYTES, m->to}, v2 = {sizeof copy, copy};
    return mdb_put(txn, st->dbi_keyring, &k2, &v2, 0) == 0 ? CK_OK : CK_EIO;
}

static void test_keyring_cursor(void **state)
{
    tu_fx *f = *state;
    uint8_t sids[NSUBJ][CK_SUBJECT_ID_BYTES];
    for (int i = 0; i < NSUBJ; i++)
        sid_of(f, i, sids[i]);
    MDB_txn *kt;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->keyring, &kt), CK_OK);
    MDB_cursor *kc;
    assert_int_equal(mdb_cursor_open(kt, f->st->dbi_keyring, &kc), 0);
    unsigned char d1[CK_KEY_BYTES], d2[CK_KEY_BYTES];
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < NSUBJ; j++) {
            int i = pass == 0 ? j : (j * 53) % NSUBJ;
            assert_int_equal(ck_keyring__get(f->st, kt, sids[i], d1), CK_OK);
            assert_int_equal(ck_keyring__get_at(f->st, kc, sids[i], d2), CK_OK);
            assert_memory_equal(d1, d2, CK_KEY_BYTES);
        }
    }
    uint8_t nobody[CK_SUBJECT_ID_BYTES];
    memset(nobody, 0xfe, sizeof nobody);
    assert_int_equal(ck_keyring__get_at(f->st, kc, nobody, d2), CK_ENOTFOUND);
    assert_int_equal(ck_subject__data_key_at(f->st, kc, nobody, d2), CK_ENOTFOUND);
    assert_non_null(strstr(ck_errmsg(f->st), "no data key"));
    /* found again after a miss */
    assert_int_equal(ck_keyring__get_at(f->st, kc, sids[7], d2), CK_OK);
    mdb_cursor_close(kc);
    ck_env__read_end(&f->st->keyring, kt);
    move_key m;
    memcpy(m.from, sids[1], sizeof m.from);
    memcpy(m.to, nobody, sizeof m.to);
    assert_int_equal(ck_env__write(f->st, &f->st->keyring, move_key_txn, &m), CK_OK);
    assert_int_equal(ck_env__read_begin(f->st, &f->st->keyring, &kt), CK_OK);
    assert_int_equal(mdb_cursor_open(kt, f->st->dbi_keyring, &kc), 0);
    assert_int_equal(ck_keyring__get_at(f->st, kc, nobody, d2), CK_EINTEGRITY);
    mdb_cursor_close(kc);
    ck_env__read_end(&f->st->keyring, kt);
    sodium_memzero(d1, sizeof d1);
    sodium_memzero(d2, sizeof d2);
}

static void test_current_decode(void **state)
{
    tu_fx *f = *state;
    uint8_t raw[CK_CINDEX_VAL_BYTES + 1] = {CK_CONSENT_WITHDRAWN};
    ck_be64_put(raw + 1, 1234);
    ck_be32_put(raw + 9, 7);
    MDB_val v = {CK_CINDEX_VAL_BYTES, raw};
    ck_consent_cur cur;
    assert_int_equal(ck_consent__current_decode(&cur, f->st, &v), CK_OK);
    assert_true(cur.present);
    assert_int_equal(cur.state, CK_CONSENT_WITHDRAWN);
    assert_int_equal(cur.expires, 1234);
    assert_int_equal(cur.seq, 7);
    v.mv_size = CK_CINDEX_VAL_BYTES + 1;
    assert_int_equal(ck_consent__current_decode(&cur, f->st, &v), CK_EINTEGRITY);
    assert_false(cur.present);
    v.mv_size = CK_CINDEX_VAL_BYTES;
    raw[0] = CK_CONSENT_EXPIRED + 1;
    assert_int_equal(ck_consent__current_decode(&cur, f->st, &v), CK_EINTEGRITY);
    raw[0] = 0;
    assert_int_equal(ck_consent__current_decode(&cur, f->st, &v), CK_EINTEGRITY);
}

/* The purpose tags a loaded schema carries are the keyed hashes of the
 * purposes' names; a schema the store did not load gets them computed. */
static void test_purpose_tags(void **state)
{
    tu_fx *f = *state;
    MDB_txn *txn = NULL;
    ck_schema *schema = NULL;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->data, &txn), CK_OK);
    assert_int_equal(ck_schema__get(&schema, f->st, txn), CK_OK);
    assert_int_equal(schema->npurposes, 2);
    for (uint32_t i = 0; i < schema->npurposes; i++) {
        const ck_schema_purpose *p = &schema->purposes[i];
        uint8_t want[CK_PTAG_BYTES], got[CK_PTAG_BYTES];
        ck_consent__ptag(want, f->st, p->name, p->name_len);
        assert_true(p->has_ptag);
        ck_consent__ptag_of(got, f->st, p);
        assert_memory_equal(got, want, CK_PTAG_BYTES);
        ck_schema_purpose bare = *p; /* as in a schema parsed from a file */
        bare.has_ptag = false;
        memset(bare.ptag, 0, sizeof bare.ptag);
        ck_consent__ptag_of(got, f->st, &bare);
        assert_memory_equal(got, want, CK_PTAG_BYTES);
    }
    uint8_t a[CK_PTAG_BYTES], b[CK_PTAG_BYTES];
    ck_consent__ptag_of(a, f->st, &schema->purposes[0]);
    ck_consent__ptag_of(b, f->st, &schema->purposes[1]);
    assert_memory_not_equal(a, b, CK_PTAG_BYTES);
    ck_schema__release(schema);
    ck_env__read_end(&f->st->data, txn);
}

/* ------------------------------------------------------------------------ */
/* Releases and segments over changed records                                */
/* ------------------------------------------------------------------------ */

typedef struct edit {
    uint8_t key[CK_VALUE_KEY_BYTES];
    int flip;                         /* flip this byte of the record, or */
    uint8_t from[CK_VALUE_KEY_BYTES]; /* copy the record of this key over it */
    bool copy;
} edit;

static int edit_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    edit *e = ctx;
    MDB_val k = {CK_VALUE_KEY_BYTES, e->copy ? e->from : e->key}, v;
    if (mdb_get(txn, st->dbi_values, &k, &v) != 0)
        return CK_ENOTFOUND;
    uint8_t buf[1024];
    assert_true(v.mv_size <= sizeof buf);
    memcpy(buf, v.mv_data, v.mv_size);
    if (!e->copy)
        buf[e->flip] ^= 1;
    MDB_val k2 = {CK_VALUE_KEY_BYTES, e->key}, nv = {v.mv_size, buf};
    return mdb_put(txn, st->dbi_values, &k2, &nv, 0) == 0 ? CK_OK : CK_EIO;
}

static int release(tu_fx *f, const char *ref, const char *purpose, const char *const *fields,
                   size_t n, ck_result **out)
{
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = purpose;
    r.subject.by = CK_BY_REF;
    r.subject.value = ref;
    r.fields = fields;
    r.nfields = n;
    ck_result *res = NULL;
    int rc = ck_release(&res, f->st, &r);
    if (rc != CK_OK)
        assert_null(res);
    if (out != NULL)
        *out = res;
    else
        ck_result_free(res);
    return rc;
}

static int segment_all(tu_fx *f, const char *purpose, const char *city_field, int *n)
{
    ck_segment_request q = CK_SEGMENT_INIT;
    q.actor = "t";
    q.purpose = purpose;
    ck_predicate where = {city_field, CK_PRED_PREFIX, "v", 0};
    if (city_field != NULL) {
        q.where = &where;
        q.nwhere = 1;
    }
    ck_cursor *c;
    int rc = ck_segment(&c, f->st, &q);
    if (rc != CK_OK)
        return rc;
    const ck_result *r;
    *n = 0;
    while ((rc = ck_segment_next(c, &r)) == CK_OK)
        (*n)++;
    ck_cursor_free(c);
    return rc;
}

/* s4 (mask 0x94: f3, f5, f8; consent granted), with one of its value
 * records changed on disk: flipped (kind 0), the record of its f8 put
 * over its f5 (kind 1), the f2 record of s7 put as its f2, which it had
 * not set (kind 2). The change is refused through the fetched path of a
 * release of several fields and of a segment, and nothing is released;
 * the fields not asked are still read (only what is asked is opened). */
static void tampered_case(tu_fx *f, int kind)
{
    uint8_t s4[CK_SUBJECT_ID_BYTES], s7[CK_SUBJECT_ID_BYTES];
    sid_of(f, 4, s4);
    sid_of(f, 7, s7); /* mask 0x03: f1, f2 */
    int n;
    assert_int_equal(segment_all(f, "svc", NULL, &n), CK_ENOTFOUND);
    assert_int_equal(n, NSUBJ);
    assert_int_equal(release(f, "s4", "svc", NULL, 0, NULL), CK_OK);
    edit e = {{0}, 0, {0}, false};
    const char *bad = kind == 2 ? "f2" : "f5";
    if (kind == 0) {
        ck_seal__value_key(e.key, s4, 5);
        e.flip = 40;
    } else if (kind == 1) {
        ck_seal__value_key(e.key, s4, 5);
        ck_seal__value_key(e.from, s4, 8);
        e.copy = true;
    } else {
        ck_seal__value_key(e.key, s4, 2);
        ck_seal__value_key(e.from, s7, 2);
        e.copy = true;
    }
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e), CK_OK);
    ck_result *res = NULL;
    assert_int_equal(release(f, "s4", "svc", NULL, 0, &res), CK_EINTEGRITY);
    assert_null(res);
    assert_non_null(strstr(ck_errmsg(f->st), "does not authenticate"));
    const char *two[] = {bad, "f3"};
    assert_int_equal(release(f, "s4", "svc", two, 2, NULL), CK_EINTEGRITY);
    const char *two_rev[] = {"f3", bad};
    assert_int_equal(release(f, "s4", "svc", two_rev, 2, NULL), CK_EINTEGRITY);
    /* a segment reaching s4 stops at it with the error */
    assert_int_equal(segment_all(f, "svc", NULL, &n), CK_EINTEGRITY);
    assert_true(n < NSUBJ);
    const char *others[] = {"f3", "f8"};
    assert_int_equal(release(f, "s4", "svc", others, 2, &res), CK_OK);
    assert_int_equal(ck_result_field(res, 0)->reason, CK_RELEASED);
    assert_int_equal(ck_result_field(res, 1)->reason, CK_RELEASED);
    assert_int_equal(ck_result_field(res, 1)->value.u.str.len, 4);
    assert_memory_equal(ck_result_field(res, 1)->value.u.str.ptr, "v4.7", 4);
    ck_result_free(res);
    if (kind == 0) { /* flipped back: released again */
        assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e), CK_OK);
        assert_int_equal(release(f, "s4", "svc", NULL, 0, NULL), CK_OK);
        assert_int_equal(segment_all(f, "svc", NULL, &n), CK_ENOTFOUND);
        assert_int_equal(n, NSUBJ);
    }
}

static void test_tampered_value_flipped(void **state)
{
    tampered_case(*state, 0);
}

static void test_tampered_value_other_field(void **state)
{
    tampered_case(*state, 1);
}

static void test_tampered_value_other_subject(void **state)
{
    tampered_case(*state, 2);
}

/* A subject whose consent refuses, or whose consent's scope leaves a field
 * out: its bad records are never opened, so the release succeeds and
 * withholds them. "news" declares f2, f4, f7. */
static void test_refused_fields_not_opened(void **state)
{
    tu_fx *f = *state;
    /* s3 refused news (3 % 3 == 0); mask 111 = 0x6f: f1-f4, f6, f7 */
    uint8_t s3[CK_SUBJECT_ID_BYTES], s10[CK_SUBJECT_ID_BYTES];
    sid_of(f, 3, s3);
    sid_of(f, 10, s10); /* granted; mask 370 & 0xff = 0x72: f2, f5, f6, f7 */
    edit e = {{0}, 40, {0}, false};
    ck_seal__value_key(e.key, s3, 2);
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e), CK_OK);
    ck_seal__value_key(e.key, s3, 4);
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e), CK_OK);
    ck_result *res = NULL;
    assert_int_equal(release(f, "s3", "news", NULL, 0, &res), CK_OK);
    assert_int_equal(ck_result_count(res), 3);
    for (size_t i = 0; i < ck_result_count(res); i++)
        assert_int_equal(ck_result_field(res, i)->reason, CK_WITHHELD_REFUSED);
    ck_result_free(res);
    /* s10: a consent scoped to f7 only; its f2 is bad and out of scope */
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "news";
    c.state = CK_CONSENT_GRANTED;
    c.fields = (const char *[]){"f7"};
    c.nfields = 1;
    ck_who w = tu_by_ref("s10");
    assert_int_equal(ck_consent_record(f->st, &w, &c, "t"), CK_OK);
    ck_seal__value_key(e.key, s10, 2);
    assert_int_equal(ck_env__write(f->st, &f->st->data, edit_txn, &e), CK_OK);
    assert_int_equal(release(f, "s10", "news", NULL, 0, &res), CK_OK);
    assert_int_equal(ck_result_count(res), 3);
    assert_int_equal(ck_result_field(res, 0)->reason, CK_WITHHELD_NO_CONSENT); /* f2 */
    assert_int_equal(ck_result_field(res, 1)->reason, CK_WITHHELD_NO_CONSENT); /* f4 */
    assert_int_equal(ck_result_field(res, 2)->reason, CK_RELEASED);            /* f7 */
    assert_int_equal(ck_result_field(res, 2)->value.u.str.len, 5);
    assert_memory_equal(ck_result_field(res, 2)->value.u.str.ptr, "v10.6", 5);
    ck_result_free(res);
    /* a segment on news visits s10 and never opens its f2 */
    int n;
    assert_int_equal(segment_all(f, "news", "f7", &n), CK_ENOTFOUND);
    assert_true(n > 0);
    /* but asked through svc (contract), f2 is opened and refused */
    const char *f2[] = {"f2", "f7"};
    assert_int_equal(release(f, "s10", "svc", f2, 2, NULL), CK_EINTEGRITY);
}

/* Releases of every subject, all fields and subsets: the values and
 * reasons are those of the data imported (interleaved unset fields, a
 * subject with none). */
static void test_release_values(void **state)
{
    tu_fx *f = *state;
    for (int i = 0; i < NSUBJ; i++) {
        char ref[16];
        snprintf(ref, sizeof ref, "s%d", i);
        ck_result *res = NULL;
        assert_int_equal(release(f, ref, "svc", NULL, 0, &res), CK_OK);
        assert_int_equal(ck_result_count(res), 8);
        unsigned m = mask_of(i);
        for (int j = 0; j < 8; j++) {
            const ck_field_result *fr = ck_result_field(res, (size_t)j);
            if (!(m & (1u << j))) {
                assert_int_equal(fr->reason, CK_WITHHELD_UNSET);
                continue;
            }
            assert_int_equal(fr->reason, CK_RELEASED);
            if (j == 2 || j == 5) {
                assert_int_equal(fr->value.u.i, i * 10 + j);
            } else {
                char want[32];
                snprintf(want, sizeof want, "v%d.%d", i, j);
                assert_int_equal(fr->value.u.str.len, strlen(want));
                assert_memory_equal(fr->value.u.str.ptr, want, strlen(want));
            }
        }
        ck_result_free(res);
        /* fields asked in reverse order, with one not in the purpose */
        const char *rev[] = {"f8", "f6", "f1"};
        assert_int_equal(release(f, ref, "news", rev, 3, &res), CK_OK);
        assert_int_equal(ck_result_field(res, 0)->reason, CK_WITHHELD_NOT_IN_PURPOSE);
        assert_int_equal(ck_result_field(res, 2)->reason, CK_WITHHELD_NOT_IN_PURPOSE);
        ck_result_free(res);
        const char *news[] = {"f7", "f2"};
        assert_int_equal(release(f, ref, "news", news, 2, &res), CK_OK);
        for (int j = 0; j < 2; j++) {
            int fj = j == 0 ? 6 : 1;
            ck_reason want = i % 3 == 0       ? CK_WITHHELD_REFUSED
                             : (m >> fj) & 1u ? CK_RELEASED
                                              : CK_WITHHELD_UNSET;
            assert_int_equal(ck_result_field(res, (size_t)j)->reason, want);
        }
        ck_result_free(res);
    }
}

#ifdef CK_FAULT_INJECTION
#include "fault.h"

/* Every fault in a release of several fields fails it cleanly, releasing
 * nothing; the fetch's cursor read among them. */
static void test_release_every_fault(void **state)
{
    tu_fx *f = *state;
    unsigned long n;
    for (n = 1; n < 10000; n++) {
        ck_result *res = NULL;
        ck_request r = CK_REQUEST_INIT;
        r.actor = "t";
        r.purpose = "svc";
        r.subject.by = CK_BY_REF;
        r.subject.value = "s5";
        ck_fault__arm(n);
        int rc = ck_release(&res, f->st, &r);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc != CK_OK) {
            assert_true(rc == CK_ENOMEM || rc == CK_EIO || rc == CK_ENOSPC);
            assert_null(res);
        }
        ck_result_free(res);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 3 && n < 10000);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fetch_equals_lookups, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fetch_skips_other_keys, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_at, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_keyring_cursor, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_current_decode, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_purpose_tags, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_tampered_value_flipped, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_tampered_value_other_field, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_tampered_value_other_subject, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_refused_fields_not_opened, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_release_values, setup, tu_fx_teardown),
#ifdef CK_FAULT_INJECTION
        cmocka_unit_test_setup_teardown(test_release_every_fault, setup, tu_fx_teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
