/*
 * subject.c - subjects, their data keys, blind indexes and field writes.
 *
 * Records (docs/storage-format.md):
 *   subjects: sid (16) -> [u8 version=1][nonce][sealed msgpack][tag]
 *             plaintext [1, created (int, Unix s), [entry (bin 35), ...]], an
 *             entry being an index key (19) and the tombstone tag (16) of
 *             the same value (zero for an alias).
 *             sealed under the subject's data key, AAD "cks1" || store id
 *             || sid || version. It lists every index entry that points at
 *             the subject, so that an update or an erasure removes them.
 *   index:    (dupsort) index key (19) -> sid (16): refs, aliases and
 *             identifying values, as keyed blind hashes (ident.c).
 */
#include "subject.h"

#include "value.h"

#include <errno.h>
#include <string.h>

#define SUBJECT_RECORD_VERSION 1
#define SUBJECT_AAD_BYTES      (4 + CK_STORE_ID_BYTES + CK_SUBJECT_ID_BYTES + 1)
#define UNIQUE_MAX             256 /* bytes of a ref or an alias */
#define PUT_JSON_MAX           (16u << 20)

/* ------------------------------------------------------------------------ */
/* Write context                                                             */
/* ------------------------------------------------------------------------ */

int ck_wctx__init(ck_wctx *w, ck_store *st, MDB_txn *txn, const ck_schema *schema)
{
    memset(w, 0, sizeof *w);
    w->st = st;
    w->txn = txn;
    w->schema = schema;
    w->scratch = (ck_buf)CK_BUF_SECURE_INIT;
    w->norm = (ck_buf)CK_BUF_SECURE_INIT;
    w->arena = (ck_arena)CK_ARENA_INIT;
    w->now = ck_store__now(st);
    w->dk = ck_store__key_take(st);
    if (w->dk == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    return CK_OK;
}

static void end_keyring_read(ck_wctx *w)
{
    if (w->ktxn != NULL) {
        ck_env__read_end(&w->st->keyring, w->ktxn);
        w->ktxn = NULL;
    }
}

void ck_wctx__fini(ck_wctx *w)
{
    end_keyring_read(w);
    if (w->cur_values != NULL)
        mdb_cursor_close(w->cur_values);
    if (w->cur_consents != NULL)
        mdb_cursor_close(w->cur_consents);
    if (w->cur_subjects != NULL)
        mdb_cursor_close(w->cur_subjects);
    if (w->cur_index != NULL)
        mdb_cursor_close(w->cur_index);
    ck_buf__free(&w->scratch);
    ck_buf__free(&w->norm);
    ck_arena__free(&w->arena);
    ck_mem__free(w->new_sids);
    ck_mem__sfree(w->new_dks);
    if (w->st != NULL)
        ck_store__key_give(w->st, w->dk);
    memset(w, 0, sizeof *w);
}

int ck_wctx__cursor(ck_wctx *w, MDB_dbi dbi, MDB_cursor **slot)
{
    if (*slot != NULL)
        return CK_OK;
    int mrc = ck_fault__hit("mdb_cursor_open") ? ENOMEM : mdb_cursor_open(w->txn, dbi, slot);
    if (mrc != 0) {
        *slot = NULL;
        return ck_err__mdb(w->st, mrc, "cannot open a write cursor");
    }
    return CK_OK;
}

void ck_wctx__rollback_new(ck_wctx *w, size_t mark)
{
    if (mark < w->n_new) {
        sodium_memzero(w->new_dks + mark * CK_KEY_BYTES, (w->n_new - mark) * CK_KEY_BYTES);
        w->n_new = mark;
    }
}

typedef struct keys_ctx {
    ck_wctx *w;
} keys_ctx;

static int commit_keys_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    ck_wctx *w = ((keys_ctx *)ctx)->w;
    for (size_t i = 0; i < w->n_new; i++)
        CK_TRY(ck_keyring__put(st, ktxn, w->new_sids + i * CK_SUBJECT_ID_BYTES,
                               w->new_dks + i * CK_KEY_BYTES));
    return CK_OK;
}

int ck_wctx__commit_keys(ck_wctx *w)
{
    end_keyring_read(w);
    if (w->n_new == 0)
        return CK_OK;
    keys_ctx kc = {w};
    return ck_env__write(w->st, &w->st->keyring, commit_keys_txn, &kc);
}

static int stage_key(ck_wctx *w, const uint8_t sid[CK_SUBJECT_ID_BYTES], unsigned char **dk_out)
{
    if (w->n_new == w->cap_new) {
        size_t cap = w->cap_new ? w->cap_new * 2 : 64;
        uint8_t *sids = ck_mem__malloc(cap * CK_SUBJECT_ID_BYTES);
        unsigned char *dks = ck_mem__smalloc(cap * CK_KEY_BYTES);
        if (sids == NULL || dks == NULL) {
            ck_mem__free(sids);
            ck_mem__sfree(dks);
            return ck_err__set(w->st, CK_ENOMEM, "out of memory");
        }
        if (w->n_new > 0) {
            memcpy(sids, w->new_sids, w->n_new * CK_SUBJECT_ID_BYTES);
            memcpy(dks, w->new_dks, w->n_new * CK_KEY_BYTES);
        }
        ck_mem__free(w->new_sids);
        ck_mem__sfree(w->new_dks);
        w->new_sids = sids;
        w->new_dks = dks;
        w->cap_new = cap;
    }
    memcpy(w->new_sids + w->n_new * CK_SUBJECT_ID_BYTES, sid, CK_SUBJECT_ID_BYTES);
    *dk_out = w->new_dks + w->n_new * CK_KEY_BYTES;
    randombytes_buf(*dk_out, CK_KEY_BYTES);
    w->n_new++;
    return CK_OK;
}

/* The data key of `sid`: staged in this write, or from the keyring. */
static int load_key(ck_wctx *w, const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    for (size_t i = w->n_new; i-- > 0;) {
        if (memcmp(w->new_sids + i * CK_SUBJECT_ID_BYTES, sid, CK_SUBJECT_ID_BYTES) == 0) {
            memcpy(w->dk, w->new_dks + i * CK_KEY_BYTES, CK_KEY_BYTES);
            return CK_OK;
        }
    }
    if (w->ktxn == NULL)
        CK_TRY(ck_env__read_begin(w->st, &w->st->keyring, &w->ktxn));
    return ck_subject__data_key(w->st, w->ktxn, sid, w->dk);
}

static int data_key_rc(ck_store *st, int rc)
{
    if (rc == CK_ENOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "subject not found (no data key)");
    return rc;
}

int ck_subject__data_key(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                         unsigned char dk[CK_KEY_BYTES])
{
    return data_key_rc(st, ck_keyring__get(st, ktxn, sid, dk));
}

int ck_subject__data_key_at(ck_store *st, MDB_cursor *kcur, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                            unsigned char dk[CK_KEY_BYTES])
{
    return data_key_rc(st, ck_keyring__get_at(st, kcur, sid, dk));
}

typedef struct write_ctx {
    ck_wfn fn;
    void *ctx;
} write_ctx;

static int write_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    write_ctx *wc = ctx;
    ck_schema *schema = NULL;
    ck_wctx w;
    int rc = ck_schema__get(&schema, st, txn);
    if (rc != CK_OK)
        return rc;
    rc = ck_wctx__init(&w, st, txn, schema);
    if (rc == CK_OK)
        rc = wc->fn(&w, wc->ctx);
    if (rc == CK_OK)
        rc = ck_wctx__commit_keys(&w);
    ck_wctx__fini(&w);
    ck_schema__release(schema);
    return rc;
}

int ck_subject__write(ck_store *st, ck_wfn fn, void *ctx)
{
    write_ctx wc = {fn, ctx};
    return ck_env__write(st, &st->data, write_txn, &wc);
}

/* ------------------------------------------------------------------------ */
/* Subject records                                                           */
/* ------------------------------------------------------------------------ */

void ck_subj__fini(ck_subj *s)
{
    ck_mem__free(s->ix);
    memset(s, 0, sizeof *s);
}

static void subject_aad(uint8_t aad[SUBJECT_AAD_BYTES], const ck_store *st,
                        const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    memcpy(aad, "cks1", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    memcpy(aad + 4 + CK_STORE_ID_BYTES, sid, CK_SUBJECT_ID_BYTES);
    aad[SUBJECT_AAD_BYTES - 1] = SUBJECT_RECORD_VERSION;
}

static int ix_reserve(ck_store *st, ck_subj *s, uint32_t extra)
{
    if (s->nix + extra <= s->cap)
        return CK_OK;
    if (s->nix + extra > CK_SUBJECT_INDEX_MAX)
        return ck_err__set(st, CK_ELIMIT, "a subject holds at most %u index entries",
                           CK_SUBJECT_INDEX_MAX);
    uint32_t cap = s->cap ? s->cap * 2 : 8;
    while (cap < s->nix + extra)
        cap *= 2;
    void *p = ck_mem__malloc((size_t)cap * CK_IX_ENTRY);
    if (p == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    if (s->nix > 0)
        memcpy(p, s->ix, (size_t)s->nix * CK_IX_ENTRY);
    ck_mem__free(s->ix);
    s->ix = p;
    s->cap = cap;
    return CK_OK;
}

int ck_subject__new(ck_wctx *w, ck_subj *s)
{
    unsigned char *dk = NULL;
    memset(s, 0, sizeof *s);
    /* Through the subjects cursor: it stays where the record will go, and
     * ck_subject__save puts it there without another descent. */
    CK_TRY(ck_wctx__cursor(w, w->st->dbi_subjects, &w->cur_subjects));
    for (int attempt = 0;; attempt++) {
        randombytes_buf(s->sid, sizeof s->sid);
        MDB_val k = {CK_SUBJECT_ID_BYTES, s->sid}, v;
        int mrc = mdb_cursor_get(w->cur_subjects, &k, &v, MDB_SET);
        if (mrc == MDB_NOTFOUND)
            break;
        if (mrc != 0)
            return ck_err__mdb(w->st, mrc, "cannot read a subject");
        if (attempt > 3) /* 2^-128 each time: the RNG is broken */
            return ck_err__set(w->st, CK_EINTERNAL, "subject ids keep colliding");
    }
    CK_TRY(stage_key(w, s->sid, &dk));
    memcpy(w->dk, dk, CK_KEY_BYTES);
    s->dk = w->dk;
    s->created = w->now;
    s->is_new = true;
    s->dirty = true;
    return CK_OK;
}

/* Open and decode the sealed subject record `v` of s->sid into `s`
 * (created, index entries), with the data key s->dk. */
static int subject_decode(ck_store *st, ck_subj *s, const MDB_val *v, ck_arena *arena)
{
    uint8_t aad[SUBJECT_AAD_BYTES];
    const uint8_t *pt;
    size_t pt_len;
    subject_aad(aad, st, s->sid);
    CK_TRY(ck_seal__record_open(&pt, &pt_len, st, v, SUBJECT_RECORD_VERSION, aad, sizeof aad, s->dk,
                                arena, "a subject record"));

    ck_mp r;
    uint32_t n, ver, nix;
    int64_t created;
    ck_mp__init(&r, pt, pt_len);
    if (ck_mp__array(&r, &n) != CK_OK || n < 3 || ck_mp__u32(&r, &ver) != CK_OK || ver != 1 ||
        ck_mp__i64(&r, &created) != CK_OK || ck_mp__array(&r, &nix) != CK_OK ||
        nix > CK_SUBJECT_INDEX_MAX)
        return ck_err__set(st, CK_EINTEGRITY, "a subject record does not decode");
    s->created = created;
    CK_TRY(ix_reserve(st, s, nix));
    for (uint32_t i = 0; i < nix; i++) {
        const uint8_t *b;
        uint32_t bl;
        if (ck_mp__bin(&r, &b, &bl) != CK_OK || bl != CK_IX_ENTRY)
            return ck_err__set(st, CK_EINTEGRITY, "a subject record does not decode");
        memcpy(s->ix[s->nix++], b, CK_IX_ENTRY);
    }
    return CK_OK;
}

int ck_subject__open(ck_wctx *w, ck_subj *s, const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    ck_store *st = w->st;
    memset(s, 0, sizeof *s);
    memcpy(s->sid, sid, CK_SUBJECT_ID_BYTES);
    CK_TRY(ck_wctx__cursor(w, st->dbi_subjects, &w->cur_subjects));
    MDB_val k = {CK_SUBJECT_ID_BYTES, s->sid}, v;
    int mrc = mdb_cursor_get(w->cur_subjects, &k, &v, MDB_SET);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "subject not found");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read a subject");
    CK_TRY(load_key(w, sid));
    s->dk = w->dk;
    return subject_decode(st, s, &v, &w->arena);
}

int ck_subject__read(ck_subj *s, ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                     const unsigned char dk[CK_KEY_BYTES], ck_arena *arena)
{
    memset(s, 0, sizeof *s);
    memcpy(s->sid, sid, CK_SUBJECT_ID_BYTES);
    s->dk = dk;
    MDB_val k = {CK_SUBJECT_ID_BYTES, s->sid}, v;
    int mrc = mdb_get(txn, st->dbi_subjects, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "subject not found");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read a subject");
    return subject_decode(st, s, &v, arena);
}

int ck_subject__save(ck_wctx *w, ck_subj *s)
{
    ck_store *st = w->st;
    uint8_t aad[SUBJECT_AAD_BYTES];
    if (!s->dirty)
        return CK_OK;
    CK_TRY(ck_wctx__cursor(w, st->dbi_subjects, &w->cur_subjects));
    ck_mp_writer mw;
    ck_buf__reset(&w->scratch);
    ck_mp_writer__init(&mw, &w->scratch);
    ck_mp_writer__array(&mw, 3);
    ck_mp_writer__u64(&mw, 1);
    ck_mp_writer__i64(&mw, s->created);
    ck_mp_writer__array(&mw, s->nix);
    for (uint32_t i = 0; i < s->nix; i++)
        ck_mp_writer__bin(&mw, s->ix[i], CK_IX_ENTRY);
    if (mw.rc != CK_OK)
        return ck_err__set(st, mw.rc, "cannot encode a subject record");

    subject_aad(aad, st, s->sid);
    CK_TRY(ck_seal__record_put_cur(st, w->cur_subjects, s->sid, CK_SUBJECT_ID_BYTES,
                                   SUBJECT_RECORD_VERSION, aad, sizeof aad, &w->scratch, s->dk,
                                   "cannot write a subject"));
    s->dirty = false;
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Index entries                                                             */
/* ------------------------------------------------------------------------ */

static int ix_find(const ck_subj *s, const uint8_t key[CK_INDEX_KEY_BYTES])
{
    for (uint32_t i = 0; i < s->nix; i++)
        if (memcmp(s->ix[i], key, CK_INDEX_KEY_BYTES) == 0)
            return (int)i;
    return -1;
}

static void ix_drop(ck_subj *s, uint32_t i)
{
    memmove(s->ix[i], s->ix[i + 1], (size_t)(s->nix - i - 1) * CK_IX_ENTRY);
    s->nix--;
    s->dirty = true;
}

/* Add the index entry `key` -> s->sid (through `cur`, a cursor on the
 * index, when not NULL) and list it in the subject's record. */
static int index_put(ck_wctx *w, ck_subj *s, MDB_cursor *cur, const uint8_t key[CK_INDEX_KEY_BYTES],
                     const uint8_t *tomb)
{
    CK_TRY(ix_reserve(w->st, s, 1));
    MDB_val k = {CK_INDEX_KEY_BYTES, (void *)key}, v = {CK_SUBJECT_ID_BYTES, s->sid};
    int mrc = cur != NULL
                  ? (ck_fault__hit("mdb_put") ? EIO : mdb_cursor_put(cur, &k, &v, MDB_NODUPDATA))
                  : ck_mdb__put(w->txn, w->st->dbi_index, &k, &v, MDB_NODUPDATA);
    if (mrc != 0 && mrc != MDB_KEYEXIST)
        return ck_err__mdb(w->st, mrc, "cannot write an index entry");
    memcpy(s->ix[s->nix], key, CK_INDEX_KEY_BYTES);
    if (tomb != NULL)
        memcpy(s->ix[s->nix] + CK_INDEX_KEY_BYTES, tomb, CK_TOMB_BYTES);
    else
        memset(s->ix[s->nix] + CK_INDEX_KEY_BYTES, 0, CK_TOMB_BYTES);
    s->nix++;
    s->dirty = true;
    return CK_OK;
}

static int index_del(ck_wctx *w, ck_subj *s, const uint8_t key[CK_INDEX_KEY_BYTES])
{
    MDB_val k = {CK_INDEX_KEY_BYTES, (void *)key}, v = {CK_SUBJECT_ID_BYTES, s->sid};
    int mrc = mdb_del(w->txn, w->st->dbi_index, &k, &v);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return ck_err__mdb(w->st, mrc, "cannot delete an index entry");
    return CK_OK;
}

void ck_subject__tomb_tag(uint8_t out[CK_TOMB_BYTES], const ck_store *st, ck_index_kind kind,
                          uint16_t field_id, const uint8_t *norm, size_t n)
{
    uint8_t hdr[5 + 1 + 2] = {
        'c', 'k', 't', 'b', '1', (uint8_t)kind, (uint8_t)(field_id >> 8), (uint8_t)field_id};
    crypto_generichash_state h;
    crypto_generichash_init(&h, ck_store__subkey(st, CK_SUBKEY_TOMBSTONE), CK_KEY_BYTES,
                            CK_TOMB_BYTES);
    crypto_generichash_update(&h, hdr, sizeof hdr);
    crypto_generichash_update(&h, norm, n);
    crypto_generichash_final(&h, out, CK_TOMB_BYTES);
}

void ck_subject__tomb_tag_sid(uint8_t out[CK_TOMB_BYTES], const ck_store *st,
                              const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    ck_subject__tomb_tag(out, st, (ck_index_kind)0, 0, sid, CK_SUBJECT_ID_BYTES);
}

int ck_subject__unique_key(uint8_t out[CK_INDEX_KEY_BYTES], uint8_t *tomb, ck_store *st,
                           ck_index_kind kind, const char *raw, size_t n, ck_buf *norm)
{
    const char *what = kind == CK_INDEX_REF ? "ref" : "alias";
    if (raw == NULL)
        return ck_err__set(st, CK_EINVAL, "missing %s", what);
    ck_buf__reset(norm);
    int rc = ck_ident__normalize(norm, CK_NORM_EXACT, raw, n);
    if (rc != CK_OK)
        return ck_err__set(st, rc, "invalid %s (empty, or not UTF-8)", what);
    if (norm->len > UNIQUE_MAX)
        return ck_err__set(st, CK_EINVAL, "%s longer than %d bytes", what, UNIQUE_MAX);
    ck_ident__index_key(out, st, kind, 0, norm->p, norm->len);
    if (tomb != NULL)
        ck_subject__tomb_tag(tomb, st, kind, 0, norm->p, norm->len);
    ck_buf__reset(norm);
    return CK_OK;
}

int ck_subject__index_unique(ck_wctx *w, ck_subj *s, ck_index_kind kind, const char *raw, size_t n)
{
    uint8_t key[CK_INDEX_KEY_BYTES], tomb[CK_TOMB_BYTES];
    CK_TRY(ck_subject__unique_key(key, tomb, w->st, kind, raw, n, &w->norm));
    MDB_val k = {CK_INDEX_KEY_BYTES, key}, v;
    int mrc = mdb_get(w->txn, w->st->dbi_index, &k, &v);
    if (mrc == 0) {
        if (v.mv_size == CK_SUBJECT_ID_BYTES && memcmp(v.mv_data, s->sid, CK_SUBJECT_ID_BYTES) == 0)
            return CK_OK;
        return ck_err__set(w->st, CK_EEXIST, "this %s belongs to another subject",
                           kind == CK_INDEX_REF ? "ref" : "alias");
    }
    if (mrc != MDB_NOTFOUND)
        return ck_err__mdb(w->st, mrc, "cannot read the index");
    return index_put(w, s, NULL, key, kind == CK_INDEX_REF ? tomb : NULL);
}

int ck_subject__index_unique_new(ck_wctx *w, ck_subj *s, const uint8_t key[CK_INDEX_KEY_BYTES],
                                 const uint8_t *tomb)
{
    CK_TRY(ck_wctx__cursor(w, w->st->dbi_index, &w->cur_index));
    return index_put(w, s, w->cur_index, key, tomb);
}

int ck_subject__index_remove(ck_wctx *w, ck_subj *s, ck_index_kind kind, const char *raw, size_t n)
{
    uint8_t key[CK_INDEX_KEY_BYTES];
    CK_TRY(ck_subject__unique_key(key, NULL, w->st, kind, raw, n, &w->norm));
    int i = ix_find(s, key);
    if (i < 0)
        return ck_err__set(w->st, CK_ENOTFOUND, "the subject has no such %s",
                           kind == CK_INDEX_REF ? "ref" : "alias");
    CK_TRY(index_del(w, s, key));
    ix_drop(s, (uint32_t)i);
    return CK_OK;
}

/* Drop the subject's FIELD index entries of field `fid`. */
static int index_clear_field(ck_wctx *w, ck_subj *s, uint16_t fid)
{
    for (uint32_t i = s->nix; i-- > 0;) {
        const uint8_t *k = s->ix[i];
        if (k[0] == CK_INDEX_FIELD && ((uint16_t)(k[1] << 8 | k[2])) == fid) {
            CK_TRY(index_del(w, s, k));
            ix_drop(s, i);
        }
    }
    return CK_OK;
}

void ck_subject__field_keys(uint8_t key[CK_INDEX_KEY_BYTES], uint8_t tomb[CK_TOMB_BYTES],
                            const ck_store *st, uint16_t field_id, const uint8_t *norm, size_t n)
{
    ck_ident__index_key(key, st, CK_INDEX_FIELD, field_id, norm, n);
    ck_subject__tomb_tag(tomb, st, CK_INDEX_FIELD, field_id, norm, n);
}

static int check_value(ck_store *st, const ck_schema_field *f, const ck_value *v)
{
    if (v->type != f->type)
        return ck_err__set(st, CK_EINVAL, "field %s: a %s value was given for a %s field", f->name,
                           ck_schema__type_name(v->type), ck_schema__type_name(f->type));
    int rc = ck_codec__check(v);
    if (rc != CK_OK)
        return ck_err__set(st, rc, "field %s: invalid value (%s)", f->name,
                           rc == CK_ELIMIT ? "too large" : "not valid for its type");
    return CK_OK;
}

/* Write the checked value `v` of `f`; `key` and `tomb`, for an identifying
 * field, are its value's index key and tombstone tag. */
static int set_value(ck_wctx *w, ck_subj *s, const ck_schema_field *f, const ck_value *v,
                     const uint8_t *key, const uint8_t *tomb)
{
    ck_store *st = w->st;
    if (key != NULL && ix_find(s, key) < 0) {
        CK_TRY(index_clear_field(w, s, f->id));
        CK_TRY(index_put(w, s, NULL, key, tomb));
    }
    CK_TRY(ck_wctx__cursor(w, st->dbi_values, &w->cur_values));
    return ck_seal__put_cur(st, w->cur_values, s->sid, f->id, s->dk, v, w->now, &w->scratch);
}

int ck_subject__set_field(ck_wctx *w, ck_subj *s, const ck_schema_field *f, const ck_value *v)
{
    ck_store *st = w->st;
    if (v == NULL) {
        uint8_t key[CK_VALUE_KEY_BYTES];
        ck_seal__value_key(key, s->sid, f->id);
        MDB_val k = {sizeof key, key};
        int mrc = mdb_del(w->txn, st->dbi_values, &k, NULL);
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            return ck_err__mdb(st, mrc, "cannot delete a value");
        return f->identifying ? index_clear_field(w, s, f->id) : CK_OK;
    }
    CK_TRY(check_value(st, f, v));
    if (!f->identifying)
        return set_value(w, s, f, v, NULL, NULL);
    uint8_t key[CK_INDEX_KEY_BYTES], tomb[CK_TOMB_BYTES];
    ck_buf__reset(&w->norm);
    int rc =
        ck_ident__normalize(&w->norm, ck_ident__norm_kind_for(f->name), v->u.str.ptr, v->u.str.len);
    if (rc != CK_OK) {
        ck_buf__reset(&w->norm);
        return ck_err__set(st, rc, "field %s: the value cannot be normalised for look-ups",
                           f->name);
    }
    ck_subject__field_keys(key, tomb, st, f->id, w->norm.p, w->norm.len);
    ck_buf__reset(&w->norm);
    return set_value(w, s, f, v, key, tomb);
}

int ck_subject__set_field_keyed(ck_wctx *w, ck_subj *s, const ck_schema_field *f, const ck_value *v,
                                const uint8_t key[CK_INDEX_KEY_BYTES],
                                const uint8_t tomb[CK_TOMB_BYTES])
{
    CK_TRY(check_value(w->st, f, v));
    return set_value(w, s, f, v, f->identifying ? key : NULL, tomb);
}

/* ------------------------------------------------------------------------ */
/* Resolving a subject reference                                             */
/* ------------------------------------------------------------------------ */

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int subject_exists(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)sid}, v;
    int mrc = mdb_get(txn, st->dbi_subjects, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "subject not found");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read a subject");
    return CK_OK;
}

/* A unique index (ref, alias): one entry at most, no cursor needed - but
 * one is used when given (`cur` on the index, else `txn`). */
static int get_unique(uint8_t sid[CK_SUBJECT_ID_BYTES], ck_store *st, MDB_txn *txn, MDB_cursor *cur,
                      const uint8_t key[CK_INDEX_KEY_BYTES], const char *what)
{
    MDB_val k = {CK_INDEX_KEY_BYTES, (void *)key}, v;
    int mrc =
        cur != NULL ? mdb_cursor_get(cur, &k, &v, MDB_SET) : mdb_get(txn, st->dbi_index, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "no subject has this %s", what);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read the index");
    if (v.mv_size != CK_SUBJECT_ID_BYTES)
        return ck_err__set(st, CK_EINTEGRITY, "an index entry is malformed");
    memcpy(sid, v.mv_data, CK_SUBJECT_ID_BYTES);
    return CK_OK;
}

int ck_subject__find_unique(uint8_t sid[CK_SUBJECT_ID_BYTES], ck_wctx *w,
                            const uint8_t key[CK_INDEX_KEY_BYTES], const char *what)
{
    CK_TRY(ck_wctx__cursor(w, w->st->dbi_index, &w->cur_index));
    return get_unique(sid, w->st, NULL, w->cur_index, key, what);
}

static int index_lookup(uint8_t sid[CK_SUBJECT_ID_BYTES], ck_store *st, MDB_txn *txn,
                        const uint8_t key[CK_INDEX_KEY_BYTES], const char *what)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, st->dbi_index, &cur);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot open the index");
    MDB_val k = {CK_INDEX_KEY_BYTES, (void *)key}, v;
    int rc = CK_OK;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    if (mrc == MDB_NOTFOUND) {
        rc = ck_err__set(st, CK_ENOTFOUND, "no subject has this %s", what);
    } else if (mrc != 0) {
        rc = ck_err__mdb(st, mrc, "cannot read the index");
    } else if (v.mv_size != CK_SUBJECT_ID_BYTES) {
        rc = ck_err__set(st, CK_EINTEGRITY, "an index entry is malformed");
    } else {
        size_t n = 0;
        mrc = mdb_cursor_count(cur, &n);
        if (mrc != 0)
            rc = ck_err__mdb(st, mrc, "cannot read the index");
        else if (n > 1)
            rc = ck_err__set(st, CK_EAMBIGUOUS, "%llu subjects have this %s", (unsigned long long)n,
                             what);
        else
            memcpy(sid, v.mv_data, CK_SUBJECT_ID_BYTES);
    }
    mdb_cursor_close(cur);
    return rc;
}

int ck_subject__resolve(uint8_t sid[CK_SUBJECT_ID_BYTES], ck_store *st, MDB_txn *txn,
                        const ck_schema *schema, const ck_who *who, const char *ctx_purpose,
                        const char *ctx_recipient, ck_buf *norm)
{
    uint8_t key[CK_INDEX_KEY_BYTES];
    memset(sid, 0, CK_SUBJECT_ID_BYTES);
    if (who == NULL || who->value == NULL)
        return ck_err__set(st, CK_EINVAL, "no subject given");
    size_t n = who->len != 0 ? who->len : strlen(who->value);
    switch (who->by) {
    case CK_BY_ID:
        if (n != 2 * CK_SUBJECT_ID_BYTES)
            return ck_err__set(st, CK_EINVAL, "a subject id is %d hex characters",
                               2 * CK_SUBJECT_ID_BYTES);
        for (size_t i = 0; i < CK_SUBJECT_ID_BYTES; i++) {
            int hi = hex_nibble(who->value[2 * i]), lo = hex_nibble(who->value[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return ck_err__set(st, CK_EINVAL, "a subject id is hexadecimal");
            sid[i] = (uint8_t)(hi << 4 | lo);
        }
        return subject_exists(st, txn, sid);
    case CK_BY_REF:
    case CK_BY_ALIAS: {
        ck_index_kind kind = who->by == CK_BY_REF ? CK_INDEX_REF : CK_INDEX_ALIAS;
        CK_TRY(ck_subject__unique_key(key, NULL, st, kind, who->value, n, norm));
        return get_unique(sid, st, txn, NULL, key, kind == CK_INDEX_REF ? "ref" : "alias");
    }
    case CK_BY_LOOKUP: {
        if (who->field == NULL)
            return ck_err__set(st, CK_EINVAL, "a look-up needs a field");
        const ck_schema_field *f = ck_schema__field(schema, who->field, strlen(who->field));
        if (f == NULL)
            return ck_err__set(st, CK_EINVAL, "unknown field \"%s\"",
                               ck_shown((char[CK_SHOWN_MAX]){0}, who->field));
        if (!f->identifying)
            return ck_err__set(st, CK_EINVAL,
                               "field %s is not identifying: it has no look-up index", f->name);
        ck_buf__reset(norm);
        int rc = ck_ident__normalize(norm, ck_ident__norm_kind_for(f->name), who->value, n);
        if (rc != CK_OK) {
            ck_buf__reset(norm);
            return ck_err__set(st, rc == CK_ENOMEM ? rc : CK_ENOTFOUND,
                               "no subject has this %s (the value does not normalise)", f->name);
        }
        ck_ident__index_key(key, st, CK_INDEX_FIELD, f->id, norm->p, norm->len);
        ck_buf__reset(norm);
        return index_lookup(sid, st, txn, key, f->name);
    }
    case CK_BY_PSEUDONYM: {
        uint8_t ps[CK_PSEUDONYM_BYTES];
        const char *purpose = who->purpose != NULL ? who->purpose : ctx_purpose;
        const char *recipient = who->purpose != NULL ? who->recipient : ctx_recipient;
        if (purpose == NULL)
            return ck_err__set(st, CK_EINVAL, "a pseudonym needs its context (a purpose)");
        if (ck_ident__pseudonym_parse(ps, who->value, n) != CK_OK)
            return ck_err__set(st, CK_EINVAL, "a pseudonym is %d base64url characters",
                               CK_PSEUDONYM_CHARS);
        if (ck_ident__resolve(sid, st, purpose, recipient, ps) != CK_OK)
            return ck_err__set(st, CK_ENOTFOUND, "no subject has this pseudonym in this context");
        return subject_exists(st, txn, sid);
    }
    }
    return ck_err__set(st, CK_EINVAL, "unknown kind of subject reference %d", (int)who->by);
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                              */
/* ------------------------------------------------------------------------ */

CK_EXPORT void ck_subject_id_hex(char out[2 * CK_SUBJECT_ID_BYTES + 1],
                                 const unsigned char id[CK_SUBJECT_ID_BYTES])
{
    sodium_bin2hex(out, 2 * CK_SUBJECT_ID_BYTES + 1, id, CK_SUBJECT_ID_BYTES);
}

CK_EXPORT int ck_subject_find(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st,
                              const ck_who *who)
{
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    memset(out, 0, CK_SUBJECT_ID_BYTES);
    MDB_txn *txn = NULL;
    ck_schema *schema = NULL;
    ck_buf norm = CK_BUF_SECURE_INIT;
    int rc = ck_env__read_begin(st, &st->data, &txn);
    if (rc == CK_OK && who != NULL && who->by == CK_BY_LOOKUP)
        rc = ck_schema__get(&schema, st, txn);
    if (rc == CK_OK)
        rc = ck_subject__resolve(out, st, txn, schema, who, NULL, NULL, &norm);
    ck_schema__release(schema);
    ck_env__read_end(&st->data, txn);
    ck_buf__free(&norm);
    if (rc != CK_OK)
        memset(out, 0, CK_SUBJECT_ID_BYTES);
    return rc;
}

/* A ref whose subject was erased is not silently brought back. */
static int refuse_erased(ck_wctx *w, const char *ref, size_t n)
{
    uint8_t key[CK_INDEX_KEY_BYTES], tomb[CK_TOMB_BYTES];
    bool erased;
    CK_TRY(ck_subject__unique_key(key, tomb, w->st, CK_INDEX_REF, ref, n, &w->norm));
    CK_TRY(ck_erase__tombstoned(&erased, w->st, w->txn, tomb));
    if (erased)
        return ck_err__set(w->st, CK_EDENIED,
                           "this ref belonged to an erased subject: it is not re-created "
                           "(import it with --recreate-erased to make a new subject)");
    return CK_OK;
}

typedef struct create_ctx {
    const char *ref;
    size_t ref_len;
    uint8_t sid[CK_SUBJECT_ID_BYTES];
} create_ctx;

static int create_fn(ck_wctx *w, void *ctx)
{
    create_ctx *c = ctx;
    ck_subj s = {0};
    int rc = c->ref != NULL ? refuse_erased(w, c->ref, c->ref_len) : CK_OK;
    if (rc == CK_OK)
        rc = ck_subject__new(w, &s);
    if (rc == CK_OK && c->ref != NULL) {
        rc = ck_subject__index_unique(w, &s, CK_INDEX_REF, c->ref, c->ref_len);
        if (rc == CK_OK && s.nix == 0)
            rc = CK_EINTERNAL;
    }
    if (rc == CK_OK)
        rc = ck_subject__save(w, &s);
    if (rc == CK_OK)
        memcpy(c->sid, s.sid, CK_SUBJECT_ID_BYTES);
    ck_subj__fini(&s);
    return rc;
}

CK_EXPORT int ck_subject_create(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st,
                                const char *ref, size_t ref_len)
{
    if (st == NULL)
        return CK_EINVAL;
    if (out != NULL)
        memset(out, 0, CK_SUBJECT_ID_BYTES);
    create_ctx c = {ref, ref != NULL && ref_len == 0 ? strlen(ref) : ref_len, {0}};
    int rc = ck_subject__write(st, create_fn, &c);
    if (rc == CK_OK && out != NULL)
        memcpy(out, c.sid, CK_SUBJECT_ID_BYTES);
    return rc;
}

/* Find the subject `who` names inside a write, or create it (by ref) when
 * `create` is set. */
static int open_or_create(ck_wctx *w, ck_subj *s, const ck_who *who, bool create)
{
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    int rc = ck_subject__resolve(sid, w->st, w->txn, w->schema, who, NULL, NULL, &w->norm);
    if (rc == CK_OK)
        return ck_subject__open(w, s, sid);
    if (rc != CK_ENOTFOUND || !create || who->by != CK_BY_REF)
        return rc;
    CK_TRY(refuse_erased(w, who->value, who->len != 0 ? who->len : strlen(who->value)));
    CK_TRY(ck_subject__new(w, s));
    return ck_subject__index_unique(w, s, CK_INDEX_REF, who->value,
                                    who->len != 0 ? who->len : strlen(who->value));
}

#define PUT_FIELDS_MAX 1024

typedef struct put_ctx {
    const ck_who *who;
    const ck_field_value *fv;
    size_t n;
    unsigned flags;
    const char *json;
    size_t json_len;
    uint8_t sid[CK_SUBJECT_ID_BYTES];
} put_ctx;

static int put_one(ck_wctx *w, ck_subj *s, const ck_field_value *fv)
{
    if (fv->field == NULL)
        return ck_err__set(w->st, CK_EINVAL, "a field has no name");
    const ck_schema_field *f = ck_schema__field(w->schema, fv->field, strlen(fv->field));
    if (f == NULL)
        return ck_err__set(w->st, CK_EINVAL, "unknown field \"%s\"",
                           ck_shown((char[CK_SHOWN_MAX]){0}, fv->field));
    return ck_subject__set_field(w, s, f, fv->value);
}

static int check_dup_names(ck_store *st, const ck_field_value *fv, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (fv[i].field != NULL && fv[j].field != NULL && strcmp(fv[i].field, fv[j].field) == 0)
                return ck_err__set(st, CK_EINVAL, "field %.64s is given twice", fv[i].field);
    return CK_OK;
}

static int put_fn(ck_wctx *w, void *ctx)
{
    put_ctx *c = ctx;
    ck_subj s = {0};
    int rc = open_or_create(w, &s, c->who, (c->flags & CK_PUT_CREATE) != 0);
    for (size_t i = 0; rc == CK_OK && i < c->n; i++)
        rc = put_one(w, &s, &c->fv[i]);
    if (rc == CK_OK && c->json != NULL) {
        json_error_t jerr;
        json_t *obj = json_loadb(c->json, c->json_len, JSON_REJECT_DUPLICATES, &jerr);
        if (obj == NULL || !json_is_object(obj)) {
            rc = ck_err__set(w->st, CK_EINVAL, "%s",
                             obj == NULL ? "the fields are not valid JSON"
                                         : "the fields must be a JSON object");
        } else {
            const char *name;
            json_t *jv;
            json_object_foreach(obj, name, jv)
            {
                const ck_schema_field *f = ck_schema__field(w->schema, name, strlen(name));
                if (f == NULL) {
                    rc = ck_err__set(w->st, CK_EINVAL, "unknown field \"%s\"",
                                     ck_shown((char[CK_SHOWN_MAX]){0}, name));
                    break;
                }
                ck_value v;
                char err[128];
                if (json_is_null(jv)) {
                    rc = ck_subject__set_field(w, &s, f, NULL);
                } else {
                    rc = ck_value__from_json(&v, f->type, jv, &w->arena, err, sizeof err);
                    if (rc != CK_OK)
                        rc = ck_err__set(w->st, rc, "field %s: %s", f->name, err);
                    else
                        rc = ck_subject__set_field(w, &s, f, &v);
                }
                ck_arena__reset(&w->arena);
                if (rc != CK_OK)
                    break;
            }
        }
        json_decref(obj);
    }
    if (rc == CK_OK)
        rc = ck_subject__save(w, &s);
    if (rc == CK_OK)
        memcpy(c->sid, s.sid, CK_SUBJECT_ID_BYTES);
    ck_subj__fini(&s);
    return rc;
}

static int do_put(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st, put_ctx *c)
{
    if (out != NULL)
        memset(out, 0, CK_SUBJECT_ID_BYTES);
    if (c->who == NULL)
        return ck_err__set(st, CK_EINVAL, "no subject given");
    if ((c->flags & ~CK_PUT_CREATE) != 0)
        return ck_err__set(st, CK_EINVAL, "unknown flags 0x%x", c->flags);
    if ((c->flags & CK_PUT_CREATE) != 0 && c->who->by != CK_BY_REF)
        return ck_err__set(st, CK_EINVAL, "CK_PUT_CREATE needs a subject given by ref");
    int rc = ck_subject__write(st, put_fn, c);
    if (rc == CK_OK && out != NULL)
        memcpy(out, c->sid, CK_SUBJECT_ID_BYTES);
    return rc;
}

CK_EXPORT int ck_put(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st, const ck_who *who,
                     const ck_field_value *fv, size_t n, unsigned int flags)
{
    if (st == NULL)
        return CK_EINVAL;
    if (fv == NULL || n == 0 || n > PUT_FIELDS_MAX)
        return ck_err__set(st, CK_EINVAL, "give 1 to %d fields", PUT_FIELDS_MAX);
    CK_TRY(check_dup_names(st, fv, n));
    put_ctx c = {who, fv, n, flags, NULL, 0, {0}};
    return do_put(out, st, &c);
}

CK_EXPORT int ck_put_json(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st, const ck_who *who,
                          const char *json, size_t len, unsigned int flags)
{
    if (st == NULL)
        return CK_EINVAL;
    if (json == NULL)
        return ck_err__set(st, CK_EINVAL, "no fields given");
    if (len > PUT_JSON_MAX)
        return ck_err__set(st, CK_ELIMIT, "the fields' JSON is over %u bytes", PUT_JSON_MAX);
    put_ctx c = {who, NULL, 0, flags, json, len, {0}};
    return do_put(out, st, &c);
}

typedef struct alias_ctx {
    const ck_who *who;
    const char *alias;
    size_t len;
    bool add;
} alias_ctx;

static int alias_fn(ck_wctx *w, void *ctx)
{
    alias_ctx *c = ctx;
    ck_subj s = {0};
    int rc = open_or_create(w, &s, c->who, false);
    if (rc == CK_OK)
        rc = c->add ? ck_subject__index_unique(w, &s, CK_INDEX_ALIAS, c->alias, c->len)
                    : ck_subject__index_remove(w, &s, CK_INDEX_ALIAS, c->alias, c->len);
    if (rc == CK_OK)
        rc = ck_subject__save(w, &s);
    ck_subj__fini(&s);
    return rc;
}

static int alias_change(ck_store *st, const ck_who *who, const char *alias, size_t len, bool add)
{
    if (st == NULL)
        return CK_EINVAL;
    if (alias == NULL)
        return ck_err__set(st, CK_EINVAL, "no alias given");
    alias_ctx c = {who, alias, len != 0 ? len : strlen(alias), add};
    return ck_subject__write(st, alias_fn, &c);
}

CK_EXPORT int ck_alias_add(ck_store *st, const ck_who *who, const char *alias, size_t len)
{
    return alias_change(st, who, alias, len, true);
}

CK_EXPORT int ck_alias_remove(ck_store *st, const ck_who *who, const char *alias, size_t len)
{
    return alias_change(st, who, alias, len, false);
}
