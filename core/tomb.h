/*
 * tomb.h - tombstones as a set, and the tombstone file (internal API of
 * tomb.c, used by restore.c and the fuzz target).
 *
 * A tombstone is a tag (CK_TOMB_BYTES, a keyed hash: subject.h) and the
 * time of the erasure that left it. The tombstones DB of a store holds
 * them (erase.c); `ckstore tombstones export` writes them to a file that
 * outlives the store, so that a restore of an older backup can replay
 * them even when the store itself is lost.
 *
 * The file (docs/storage-format.md, "Tombstone files"):
 *
 *     "CKSTTOMB" (8) | u32 version = 1 | store id (16) | u64 count |
 *     count x (tag (16) | i64 erasure time) | MAC (32)
 *
 * big-endian, tags in strictly ascending byte order (one entry per tag),
 * MAC = BLAKE2b-256(key = the tombstone-file key, every byte before it),
 * the key derived from the TOMBSTONE subkey (crypto_kdf, id 1, context
 * "cktombf1"). Tags are comparable only under the root key that made
 * them, so the file names its store and only that store's key checks it.
 */
#ifndef CK_TOMB_H
#define CK_TOMB_H

#include "subject.h"

typedef struct ck_tomb {
    uint8_t tag[CK_TOMB_BYTES];
    int64_t at; /* the (latest) erasure that left it, Unix seconds */
} ck_tomb;

/* ------------------------------------------------------------------------ */
/* A set of tombstones                                                       */
/* ------------------------------------------------------------------------ */

/* Add entries in any order, then ck_tombset__seal: sorted by tag, one entry
 * per tag with the latest time. Lookups need a sealed set. */
typedef struct ck_tombset {
    ck_tomb *v;
    size_t n, cap;
} ck_tombset;

#define CK_TOMBSET_INIT                                                                            \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Most entries a set (and so a file) may hold. */
#define CK_TOMBSET_MAX ((size_t)1 << 26)

/* CK_OK, CK_ENOMEM, CK_ELIMIT (no message is set: the caller says what). */
int ck_tombset__add(ck_tombset *s, const uint8_t tag[CK_TOMB_BYTES], int64_t at);
void ck_tombset__seal(ck_tombset *s);
/* The entry of `tag` in a sealed set, or NULL. */
const ck_tomb *ck_tombset__find(const ck_tombset *s, const uint8_t tag[CK_TOMB_BYTES]);
void ck_tombset__free(ck_tombset *s);

/* Add every tombstone of `st` (one read transaction); *count, if not NULL,
 * receives how many the store holds. CK_EINTEGRITY for a malformed entry. */
int ck_tombset__load(ck_tombset *s, ck_store *st, uint64_t *count);
/* Write every entry of the sealed set `s` into the tombstones of `st` (one
 * write transaction), keeping the later time where a tag exists. */
int ck_tombset__store(ck_store *st, const ck_tombset *s);

/* ------------------------------------------------------------------------ */
/* The tombstone file                                                        */
/* ------------------------------------------------------------------------ */

#define CK_TOMBFILE_MAGIC        "CKSTTOMB"
#define CK_TOMBFILE_VERSION      1
#define CK_TOMBFILE_HEADER_BYTES (8 + 4 + CK_STORE_ID_BYTES + 8)
#define CK_TOMBFILE_ENTRY_BYTES  (CK_TOMB_BYTES + 8)
#define CK_TOMBFILE_MAC_BYTES    32

/* A parsed file: `entries` points into the bytes given to the parser. */
typedef struct ck_tombfile {
    uint32_t version;
    uint8_t store_id[CK_STORE_ID_BYTES];
    uint64_t count;
    const uint8_t *entries; /* count x CK_TOMBFILE_ENTRY_BYTES */
} ck_tombfile;

/*
 * ck_tombfile__parse - check the layout of `n` bytes (everything but the
 * MAC, which needs the store's key): magic, version, a count of at most
 * CK_TOMBSET_MAX that accounts for every byte, tags strictly ascending.
 * Returns CK_OK; CK_EVERSION for a newer version; CK_EFORMAT otherwise
 * (truncated, extended, unsorted, duplicate tag, not a tombstone file).
 */
int ck_tombfile__parse(ck_tombfile *out, const uint8_t *p, size_t n);

/* Entry `i` (< f->count) of a parsed file. */
void ck_tombfile__entry(ck_tomb *out, const ck_tombfile *f, uint64_t i);

/* The MAC key of `st`'s tombstone files, into guarded memory `out`. */
void ck_tombfile__mac_key(unsigned char out[CK_KEY_BYTES], const ck_store *st);

/* Check the last CK_TOMBFILE_MAC_BYTES of the `n` bytes against the MAC of
 * what precedes them. CK_OK or CK_EINTEGRITY (also when n is too short). */
CK_MUST_CHECK int ck_tombfile__verify_mac(const uint8_t *p, size_t n,
                                          const unsigned char key[CK_KEY_BYTES]);

/* The file of the sealed set `s` into `out`. CK_OK, CK_ENOMEM, CK_ELIMIT. */
int ck_tombfile__serialize(ck_buf *out, const uint8_t store_id[CK_STORE_ID_BYTES],
                           const ck_tombset *s, const unsigned char key[CK_KEY_BYTES]);

/*
 * ck_tombfile__read - read the tombstone file at `path`, check it belongs
 * to `st`'s store and that its MAC holds under `st`'s key (before its
 * layout is parsed), and add its entries to `s`. *count receives the
 * file's count.
 * Returns CK_OK; CK_ENOTFOUND (no such file); CK_EFORMAT (not a tombstone
 * file: no magic, shorter than an empty one, too large, or malformed
 * under a valid MAC); CK_EINTEGRITY (another store's file, or a MAC
 * mismatch: modified, truncated or forged); CK_EVERSION (an authentic file
 * of a newer version); CK_EIO; CK_ENOMEM.
 */
int ck_tombfile__read(ck_store *st, ck_tombset *s, const char *path, uint64_t *count);

#endif /* CK_TOMB_H */
