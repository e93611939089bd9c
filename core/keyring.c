/*
 * keyring.c - per-subject data keys.
 *
 * Each subject's values are sealed under a data key of its own, random, kept
 * in the keyring environment wrapped by the key-encryption subkey. Erasing a
 * subject destroys this one record (crypto-shredding): the keyring is small
 * so that it can be rewritten quickly to leave no copy of the key behind.
 *
 * Record: key = subject id (16 bytes); value = [u8 version=1][nonce 24]
 * [wrapped key 32][tag 16], AAD = "ckk1" || store id || subject id ||
 * version, so a wrapped key moved to another subject does not open.
 */
#include "store.h"

#include <errno.h>
#include <string.h>

#define KEYRING_VERSION 1
#define AAD_BYTES       (4 + CK_STORE_ID_BYTES + CK_SUBJECT_ID_BYTES + 1)

static void keyring_aad(uint8_t aad[AAD_BYTES], const ck_store *st,
                        const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    memcpy(aad, "ckk1", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    memcpy(aad + 4 + CK_STORE_ID_BYTES, sid, CK_SUBJECT_ID_BYTES);
    aad[AAD_BYTES - 1] = KEYRING_VERSION;
}

int ck_keyring__put(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                    const unsigned char dk[CK_KEY_BYTES])
{
    uint8_t aad[AAD_BYTES];
    keyring_aad(aad, st, sid);
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)sid};
    MDB_val v = {CK_KEYRING_RECORD_BYTES, NULL};
    /* MDB_NOOVERWRITE: a subject id is random and new; finding it taken
     * means something is badly wrong, and overwriting would shred a key. */
    int mrc = ck_fault__hit("mdb_put")
                  ? EIO
                  : mdb_put(ktxn, st->dbi_keyring, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
    if (mrc == MDB_KEYEXIST)
        return ck_err__set(st, CK_EINTERNAL, "subject id collision in the keyring");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot write the keyring");
    uint8_t *rec = v.mv_data;
    rec[0] = KEYRING_VERSION;
    ck_crypto__seal_st(rec + 1, st, dk, CK_KEY_BYTES, aad, sizeof aad,
                       ck_store__subkey(st, CK_SUBKEY_KEK));
    return CK_OK;
}

int ck_keyring__create(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                       unsigned char dk_out[CK_KEY_BYTES])
{
    unsigned char *dk = ck_mem__smalloc(CK_KEY_BYTES);
    if (dk == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    randombytes_buf(dk, CK_KEY_BYTES);
    int rc = ck_keyring__put(st, ktxn, sid, dk);
    if (rc == CK_OK && dk_out != NULL)
        memcpy(dk_out, dk, CK_KEY_BYTES);
    ck_mem__sfree(dk);
    return rc;
}

int ck_keyring__get(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                    unsigned char dk[CK_KEY_BYTES])
{
    uint8_t aad[AAD_BYTES];
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)sid}, v;
    int mrc = mdb_get(ktxn, st->dbi_keyring, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "subject not found");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read the keyring");
    const uint8_t *rec = v.mv_data;
    if (v.mv_size != CK_KEYRING_RECORD_BYTES || rec[0] != KEYRING_VERSION)
        return ck_err__set(st, CK_EINTEGRITY, "a keyring record has the wrong size or version");
    keyring_aad(aad, st, sid);
    int rc = ck_crypto__open(dk, rec + 1, CK_KEYRING_RECORD_BYTES - 1, aad, sizeof aad,
                             ck_store__subkey(st, CK_SUBKEY_KEK));
    if (rc != CK_OK) {
        sodium_memzero(dk, CK_KEY_BYTES);
        return ck_err__set(st, CK_EINTEGRITY, "a keyring record does not authenticate");
    }
    return CK_OK;
}

int ck_keyring__delete(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)sid};
    int mrc = mdb_del(ktxn, st->dbi_keyring, &k, NULL);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "subject not found");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot delete from the keyring");
    return CK_OK;
}
