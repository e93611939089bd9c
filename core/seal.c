/*
 * seal.c - sealed field values.
 *
 * A value is msgpack-encoded (codec.c) and sealed with XChaCha20-Poly1305
 * under its subject's data key. The associated data binds the ciphertext to
 * its store, subject, field and record version: a record copied to another
 * subject or field, or from another store, fails to open with
 * CK_EINTEGRITY instead of being read as someone else's data.
 *
 * Key:   subject id (16) || field id (u16 BE)   -- a subject's values are
 *        adjacent, so a release reads one short key range.
 * Value: [u8 version=1][nonce 24][ciphertext][tag 16]; the plaintext is
 *        the write time (i64 BE, Unix seconds: retention counts from it)
 *        followed by the value's msgpack encoding.
 */
#include "store.h"

#include <errno.h>
#include <string.h>

#define AAD_BYTES (4 + CK_STORE_ID_BYTES + CK_SUBJECT_ID_BYTES + 2 + 1)

void ck_seal__value_key(uint8_t out[CK_VALUE_KEY_BYTES], const uint8_t sid[CK_SUBJECT_ID_BYTES],
                        uint16_t field_id)
{
    memcpy(out, sid, CK_SUBJECT_ID_BYTES);
    out[CK_SUBJECT_ID_BYTES] = (uint8_t)(field_id >> 8);
    out[CK_SUBJECT_ID_BYTES + 1] = (uint8_t)field_id;
}

static void value_aad(uint8_t aad[AAD_BYTES], const ck_store *st,
                      const uint8_t sid[CK_SUBJECT_ID_BYTES], uint16_t field_id)
{
    memcpy(aad, "ckv1", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    ck_seal__value_key(aad + 4 + CK_STORE_ID_BYTES, sid, field_id);
    aad[AAD_BYTES - 1] = CK_VALUE_RECORD_VERSION;
}

/* The puts of this file write with mdb_cursor_put when given a cursor (a
 * write cursor on the database the record goes to: a put next to the one
 * before it, e.g. the next field of the same subject, then lands on the
 * page the cursor is on without a descent from the root), else with
 * mdb_put. MDB_RESERVE: the record is sealed straight into the page, no
 * intermediate copy. Both go through the fault-injection hook "mdb_put". */
static int reserve(MDB_txn *txn, MDB_dbi dbi, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    if (ck_fault__hit("mdb_put"))
        return EIO;
    return cur != NULL ? mdb_cursor_put(cur, k, v, MDB_RESERVE)
                       : mdb_put(txn, dbi, k, v, MDB_RESERVE);
}

int ck_seal__put(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                 uint16_t field_id, const unsigned char dk[CK_KEY_BYTES], const ck_value *v,
                 ck_buf *scratch)
{
    return ck_seal__put_at(st, txn, sid, field_id, dk, v, ck_store__now(st), scratch);
}

static int put_value(ck_store *st, MDB_txn *txn, MDB_cursor *cur,
                     const uint8_t sid[CK_SUBJECT_ID_BYTES], uint16_t field_id,
                     const unsigned char dk[CK_KEY_BYTES], const ck_value *v, int64_t written,
                     ck_buf *scratch)
{
    int rc;
    uint8_t key[CK_VALUE_KEY_BYTES], aad[AAD_BYTES], tbe[8];
    size_t rec_len;

    ck_buf__reset(scratch);
    ck_be64_put(tbe, (uint64_t)written);
    rc = ck_buf__append(scratch, tbe, sizeof tbe);
    if (rc == CK_OK)
        rc = ck_codec__encode(scratch, v);
    if (rc != CK_OK)
        return ck_err__set(st, rc, "cannot encode a value of field %u", (unsigned)field_id);
    if (ck_add_overflows(scratch->len, 1 + CK_SEAL_OVERHEAD, &rec_len))
        return ck_err__set(st, CK_ELIMIT, "value too large");

    ck_seal__value_key(key, sid, field_id);
    value_aad(aad, st, sid, field_id);
    MDB_val k = {sizeof key, key};
    MDB_val val = {rec_len, NULL};
    int mrc = reserve(txn, st->dbi_values, cur, &k, &val);
    if (mrc != 0) {
        rc = ck_err__mdb(st, mrc, "cannot write a value");
        goto cleanup;
    }
    uint8_t *rec = val.mv_data;
    rec[0] = CK_VALUE_RECORD_VERSION;
    ck_crypto__seal_st(rec + 1, st, scratch->p, scratch->len, aad, sizeof aad, dk);
    rc = CK_OK;
cleanup:
    ck_buf__reset(scratch); /* plaintext encoding: wiped when secure */
    return rc;
}

int ck_seal__put_at(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                    uint16_t field_id, const unsigned char dk[CK_KEY_BYTES], const ck_value *v,
                    int64_t written, ck_buf *scratch)
{
    return put_value(st, txn, NULL, sid, field_id, dk, v, written, scratch);
}

int ck_seal__put_cur(ck_store *st, MDB_cursor *cur, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                     uint16_t field_id, const unsigned char dk[CK_KEY_BYTES], const ck_value *v,
                     int64_t written, ck_buf *scratch)
{
    return put_value(st, NULL, cur, sid, field_id, dk, v, written, scratch);
}

int ck_seal__get(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                 uint16_t field_id, const unsigned char dk[CK_KEY_BYTES], ck_type type,
                 ck_value *out, ck_arena *arena)
{
    return ck_seal__get_at(st, txn, sid, field_id, dk, type, out, NULL, arena);
}

int ck_seal__get_at(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                    uint16_t field_id, const unsigned char dk[CK_KEY_BYTES], ck_type type,
                    ck_value *out, int64_t *written, ck_arena *arena)
{
    uint8_t key[CK_VALUE_KEY_BYTES];
    ck_seal__value_key(key, sid, field_id);
    MDB_val k = {sizeof key, key}, val;
    int mrc = mdb_get(txn, st->dbi_values, &k, &val);
    if (mrc == MDB_NOTFOUND)
        return CK_ENOTFOUND; /* unset: not an error worth a message */
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read a value");
    return ck_seal__open_at(st, sid, field_id, dk, type, &val, out, written, arena);
}

int ck_seal__open_at(ck_store *st, const uint8_t sid[CK_SUBJECT_ID_BYTES], uint16_t field_id,
                     const unsigned char dk[CK_KEY_BYTES], ck_type type, const MDB_val *val,
                     ck_value *out, int64_t *written, ck_arena *arena)
{
    int rc;
    uint8_t aad[AAD_BYTES];
    const uint8_t *rec = val->mv_data;
    if (val->mv_size < 1 + CK_SEAL_OVERHEAD || rec[0] != CK_VALUE_RECORD_VERSION)
        return ck_err__set(st, CK_EINTEGRITY, "value record of field %u is malformed",
                           (unsigned)field_id);
    size_t pt_len = val->mv_size - 1 - CK_SEAL_OVERHEAD;
    /* Decrypt into library-owned memory (the arena, wiped when reset): the
     * LMDB page is only valid until the transaction ends and must never
     * reach the caller. */
    uint8_t *pt = ck_arena__alloc(arena, pt_len + 1);
    if (pt == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    value_aad(aad, st, sid, field_id);
    rc = ck_crypto__open(pt, rec + 1, val->mv_size - 1, aad, sizeof aad, dk);
    if (rc != CK_OK)
        return ck_err__set(st, CK_EINTEGRITY,
                           "value record of field %u does not authenticate "
                           "(tampered, or moved from another subject or field)",
                           (unsigned)field_id);
    if (pt_len < 8)
        return ck_err__set(st, CK_EFORMAT, "value record of field %u is too short",
                           (unsigned)field_id);
    if (written != NULL)
        *written = (int64_t)ck_be64_get(pt);
    rc = ck_codec__decode(out, type, pt + 8, pt_len - 8, arena);
    if (rc != CK_OK)
        return ck_err__set(st, rc == CK_ENOMEM ? CK_ENOMEM : CK_EFORMAT,
                           "value of field %u does not decode as its type", (unsigned)field_id);
    return CK_OK;
}

int ck_seal__fetch(ck_store *st, MDB_cursor *cur, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                   const uint16_t *ids, size_t n, MDB_val *recs)
{
    for (size_t i = 0; i < n; i++)
        recs[i] = (MDB_val){0, NULL};
    if (n == 0)
        return CK_OK;
    uint8_t key[CK_VALUE_KEY_BYTES];
    ck_seal__value_key(key, sid, ids[0]);
    MDB_val k = {sizeof key, key}, v;
    /* The subject's values are adjacent, in field id order (the id is big
     * endian): one positioning, then the next entries while they are the
     * subject's and not past the last id asked. Only keys of exactly the
     * value key's size count, as an exact look-up of each would find. */
    int mrc = ck_fault__hit("mdb_cursor_get") ? EIO : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    size_t i = 0;
    while (mrc == 0) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size < CK_SUBJECT_ID_BYTES || memcmp(kp, sid, CK_SUBJECT_ID_BYTES) != 0)
            break;
        if (k.mv_size == CK_VALUE_KEY_BYTES) {
            uint16_t fid = (uint16_t)(kp[CK_SUBJECT_ID_BYTES] << 8 | kp[CK_SUBJECT_ID_BYTES + 1]);
            while (i < n && ids[i] < fid)
                i++; /* unset */
            if (i == n)
                break;
            if (ids[i] == fid)
                recs[i++] = v;
            if (i == n)
                break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        for (size_t j = 0; j < n; j++)
            recs[j] = (MDB_val){0, NULL};
        return ck_err__mdb(st, mrc, "cannot read a value");
    }
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Sealed records of other kinds (subject records, consent records, contact  */
/* logs): [u8 version][nonce 24][ciphertext][tag 16].                        */
/* ------------------------------------------------------------------------ */

static int record_put(ck_store *st, MDB_txn *txn, MDB_dbi dbi, MDB_cursor *cur, const void *key,
                      size_t klen, uint8_t version, const uint8_t *aad, size_t aad_len,
                      ck_buf *scratch, const unsigned char k[CK_KEY_BYTES], const char *what)
{
    MDB_val mk = {klen, (void *)key};
    MDB_val v = {1 + CK_SEAL_OVERHEAD + scratch->len, NULL};
    int mrc = reserve(txn, dbi, cur, &mk, &v);
    if (mrc != 0) {
        ck_buf__reset(scratch);
        return ck_err__mdb(st, mrc, what);
    }
    uint8_t *rec = v.mv_data;
    rec[0] = version;
    ck_crypto__seal_st(rec + 1, st, scratch->p, scratch->len, aad, aad_len, k);
    ck_buf__reset(scratch);
    return CK_OK;
}

int ck_seal__record_put(ck_store *st, MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                        uint8_t version, const uint8_t *aad, size_t aad_len, ck_buf *scratch,
                        const unsigned char k[CK_KEY_BYTES], const char *what)
{
    return record_put(st, txn, dbi, NULL, key, klen, version, aad, aad_len, scratch, k, what);
}

int ck_seal__record_put_cur(ck_store *st, MDB_cursor *cur, const void *key, size_t klen,
                            uint8_t version, const uint8_t *aad, size_t aad_len, ck_buf *scratch,
                            const unsigned char k[CK_KEY_BYTES], const char *what)
{
    return record_put(st, NULL, 0, cur, key, klen, version, aad, aad_len, scratch, k, what);
}

int ck_seal__record_open(const uint8_t **pt, size_t *pt_len, ck_store *st, const MDB_val *v,
                         uint8_t version, const uint8_t *aad, size_t aad_len,
                         const unsigned char k[CK_KEY_BYTES], ck_arena *arena, const char *what)
{
    const uint8_t *rec = v->mv_data;
    *pt = NULL;
    *pt_len = 0;
    if (v->mv_size < 1 + CK_SEAL_OVERHEAD || rec[0] != version)
        return ck_err__set(st, CK_EINTEGRITY, "%s is malformed", what);
    size_t n = v->mv_size - 1 - CK_SEAL_OVERHEAD;
    uint8_t *p = ck_arena__alloc(arena, n + 1);
    if (p == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    if (ck_crypto__open(p, rec + 1, v->mv_size - 1, aad, aad_len, k) != CK_OK)
        return ck_err__set(st, CK_EINTEGRITY, "%s does not authenticate", what);
    *pt = p;
    *pt_len = n;
    return CK_OK;
}
