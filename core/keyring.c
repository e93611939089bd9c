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
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Check and unwrap the keyring record `mrc`/`v` of a look-up of `sid`. */
static int keyring_open(ck_store *st, int mrc, const MDB_val *v,
                        const uint8_t sid[CK_SUBJECT_ID_BYTES], unsigned char dk[CK_KEY_BYTES])
{
    uint8_t aad[AAD_BYTES];
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "subject not found");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read the keyring");
    const uint8_t *rec = v->mv_data;
    if (v->mv_size != CK_KEYRING_RECORD_BYTES || rec[0] != KEYRING_VERSION)
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

int ck_keyring__get(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                    unsigned char dk[CK_KEY_BYTES])
{
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)sid}, v;
    int mrc = mdb_get(ktxn, st->dbi_keyring, &k, &v);
    return keyring_open(st, mrc, &v, sid, dk);
}

int ck_keyring__get_at(ck_store *st, MDB_cursor *kcur, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                       unsigned char dk[CK_KEY_BYTES])
{
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)sid}, v;
    int mrc = mdb_cursor_get(kcur, &k, &v, MDB_SET);
    return keyring_open(st, mrc, &v, sid, dk);
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

/* ------------------------------------------------------------------------ */
/* Scrubbing deleted records out of the keyring file                         */
/*                                                                          */
/* One pass finds every copy of any of n records. A record is 73 bytes; its  */
/* bytes 25..56 are ciphertext (pseudo-random; the nonce before them shares  */
/* its 16-byte prefix with every record the same handle wrote). Wherever a   */
/* copy starts, exactly one 8-byte-aligned word of the file falls within     */
/* its bytes 32..46, at offset 32 + d (d in 0..7): so each record is         */
/* entered 8 times, once per d, keyed by its word at 32 + d, and the file is */
/* read one aligned word at a time, each word tested against a bit filter    */
/* before the table is searched and the whole record compared. For a few    */
/* records, one memmem per record is faster (libc's is vectorised): about   */
/* 1 ms per record against 3-4 ms for the filtered pass over a 15 MB file.  */
/* ------------------------------------------------------------------------ */

#define SCRUB_WORD_AT    32
#define SCRUB_BITS_LOG2  20
#define SCRUB_MEMMEM_MAX 4 /* up to this many records: one memmem each */

typedef struct scrub_entry {
    uint64_t word;
    uint32_t rec; /* index of the record */
    uint32_t d;   /* the word is at SCRUB_WORD_AT + d in the record */
} scrub_entry;

typedef struct scrub_ctx {
    const uint8_t *recs;
    size_t n;
    uint64_t *hits;
    scrub_entry *tab; /* 8n, sorted by word */
    uint8_t *bits;    /* 2^SCRUB_BITS_LOG2 bits */
} scrub_ctx;

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t word_hash(uint64_t w)
{
    return (uint32_t)((w * 0x9E3779B97F4A7C15ull) >> (64 - SCRUB_BITS_LOG2));
}

static int entry_cmp(const void *a, const void *b)
{
    uint64_t x = ((const scrub_entry *)a)->word, y = ((const scrub_entry *)b)->word;
    return x < y ? -1 : x > y;
}

static int scrub_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    (void)ktxn;
    scrub_ctx *c = ctx;
    for (size_t i = 0; c->hits != NULL && i < c->n; i++)
        c->hits[i] = 0; /* a re-run starts afresh */
    char *path = ck_mem__path_join(st->dir, CK_KEYRING_FILE);
    if (path == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    ck_mem__free(path);
    if (fd < 0)
        return ck_err__errno(st, errno, "cannot open the keyring to scrub it", CK_KEYRING_FILE);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return ck_err__errno(st, err, "cannot stat the keyring to scrub it", CK_KEYRING_FILE);
    }
    size_t len = (size_t)sb.st_size;
    if (len < CK_KEYRING_RECORD_BYTES) {
        close(fd);
        return CK_OK;
    }
    /* Map the file read-only and search it in place; overwrite each copy
     * with pwrite (the shared mapping sees it). */
    const uint8_t *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        int err = errno;
        close(fd);
        return ck_err__errno(st, err, "cannot map the keyring to scrub it", CK_KEYRING_FILE);
    }
    int rc = CK_OK;
    uint64_t total = 0;
    static const uint8_t zeros[CK_KEYRING_RECORD_BYTES];
    for (size_t i = 0; c->n <= SCRUB_MEMMEM_MAX && i < c->n && rc == CK_OK; i++) {
        const uint8_t *rec = c->recs + i * CK_KEYRING_RECORD_BYTES;
        const uint8_t *p = map, *end = map + len;
        while ((size_t)(end - p) >= CK_KEYRING_RECORD_BYTES) {
            const uint8_t *hit = memmem(p, (size_t)(end - p), rec, CK_KEYRING_RECORD_BYTES);
            if (hit == NULL)
                break;
            if (pwrite(fd, zeros, sizeof zeros, (off_t)(hit - map)) != (ssize_t)sizeof zeros) {
                rc = ck_err__errno(st, errno, "cannot scrub the keyring", CK_KEYRING_FILE);
                break;
            }
            total++;
            if (c->hits != NULL)
                c->hits[i]++;
            p = hit + CK_KEYRING_RECORD_BYTES;
        }
    }
    for (size_t q = 0; c->n > SCRUB_MEMMEM_MAX && rc == CK_OK && q + 8 <= len; q += 8) {
        uint64_t w = load64(map + q);
        uint32_t h = word_hash(w);
        if (!(c->bits[h >> 3] & (1u << (h & 7))))
            continue;
        scrub_entry key = {w, 0, 0};
        scrub_entry *e = bsearch(&key, c->tab, 8 * c->n, sizeof *e, entry_cmp);
        if (e == NULL)
            continue;
        while (e > c->tab && e[-1].word == w)
            e--;
        for (; e < c->tab + 8 * c->n && e->word == w; e++) {
            size_t back = SCRUB_WORD_AT + e->d;
            if (q < back || q - back + CK_KEYRING_RECORD_BYTES > len)
                continue;
            size_t at = q - back;
            const uint8_t *rec = c->recs + (size_t)e->rec * CK_KEYRING_RECORD_BYTES;
            if (memcmp(map + at, rec, CK_KEYRING_RECORD_BYTES) != 0)
                continue;
            if (pwrite(fd, zeros, sizeof zeros, (off_t)at) != (ssize_t)sizeof zeros) {
                rc = ck_err__errno(st, errno, "cannot scrub the keyring", CK_KEYRING_FILE);
                break;
            }
            total++;
            if (c->hits != NULL)
                c->hits[e->rec]++;
            break; /* this word is inside one copy only */
        }
    }
    munmap((void *)map, len);
    if (rc == CK_OK && total > 0 && fdatasync(fd) != 0)
        rc = ck_err__errno(st, errno, "cannot fsync the scrubbed keyring", CK_KEYRING_FILE);
    close(fd);
    return rc;
}

int ck_keyring__scrub(ck_store *st, const uint8_t *recs, size_t n, uint64_t *hits)
{
    if (n == 0)
        return CK_OK;
    int rc;
    scrub_ctx c = {recs, n, hits, NULL, NULL};
    size_t ntab;
    if (ck_mul_overflows(n, 8 * sizeof *c.tab, &ntab))
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    c.tab = ck_mem__malloc(ntab);
    c.bits = ck_mem__calloc(1, (size_t)1 << (SCRUB_BITS_LOG2 - 3));
    CK_ENSURE(c.tab != NULL && c.bits != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    for (size_t i = 0; i < n; i++) {
        for (uint32_t d = 0; d < 8; d++) {
            scrub_entry *e = &c.tab[8 * i + d];
            e->word = load64(recs + i * CK_KEYRING_RECORD_BYTES + SCRUB_WORD_AT + d);
            e->rec = (uint32_t)i;
            e->d = d;
            uint32_t h = word_hash(e->word);
            c.bits[h >> 3] = (uint8_t)(c.bits[h >> 3] | (1u << (h & 7)));
        }
    }
    qsort(c.tab, 8 * n, sizeof *c.tab, entry_cmp);
    rc = ck_env__write(st, &st->keyring, scrub_txn, &c);
cleanup:
    ck_mem__free(c.tab);
    ck_mem__free(c.bits);
    return rc;
}
