/*
 * store.h - the ck_store object and the modules that make it up: errors,
 * crypto, key slots, LMDB environments, the keyring and sealed values.
 *
 * Internal. See docs/architecture.md for how the pieces fit and
 * docs/storage-format.md for every byte that reaches a file.
 */
#ifndef CK_STORE_H
#define CK_STORE_H

#include "internal.h"

#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>

/* ------------------------------------------------------------------------ */
/* Errors (error.c)                                                          */
/* ------------------------------------------------------------------------ */

/* Per-thread detail messages of one store. */
typedef struct ck_errslot ck_errslot;
typedef struct ck_errors {
    pthread_key_t key;
    bool key_made;
    pthread_mutex_t lock; /* guards `slots` */
    ck_errslot *slots;    /* every slot ever handed out, freed at close */
    ck_errslot *fallback; /* used when a slot cannot be allocated */
} ck_errors;

int ck_errors__init(ck_errors *e);
void ck_errors__fini(ck_errors *e);

/* Record the detail of a failure for the calling thread and return `rc`, so
 * that `return ck_err__set(st, CK_EINVAL, "...")` reads naturally. The
 * format must never be given a customer value, an identifier or a key. */
int ck_err__set(ck_store *st, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Map an LMDB error to a CK_E* code and record it (what failed: `what`).
 * MDB_MAP_FULL becomes CK__MAPFULL, which only ck_env__write sees: it grows
 * the map and runs the transaction again. */
#define CK__MAPFULL (-1000)
int ck_err__mdb(ck_store *st, int mdb_rc, const char *what);
/* Map errno to a CK_E* code and record it with the file name involved
 * (a path, never a value). */
int ck_err__errno(ck_store *st, int err, const char *what, const char *path);
const char *ck_err__get(ck_store *st);

#ifdef __clang_analyzer__
/* scan-build cannot see across files that these return a failure code
 * (ck_err__set returns its `rc`, ck_err__mdb never CK_OK for an error),
 * and then follows impossible "failed but returned CK_OK" paths. Say so to
 * the analyzer only; real builds call the functions as they are. */
#define ck_err__set(st, rc, ...)           (ck_err__set((st), (rc), __VA_ARGS__), (rc))
#define ck_err__mdb(st, mrc, what)         (ck_err__mdb((st), (mrc), (what)) ?: CK_EINTERNAL)
#define ck_err__errno(st, err, what, path) (ck_err__errno((st), (err), (what), (path)) ?: CK_EIO)
#endif

/* A name from outside (a JSON key, a field or purpose asked for) made safe
 * to quote in a message: at most 48 bytes, control characters and '"'
 * replaced by '?', "..." when cut. Returns `out`. */
#define CK_SHOWN_MAX 56
const char *ck_shown(char out[CK_SHOWN_MAX], const char *name);

/* ------------------------------------------------------------------------ */
/* Crypto (crypto.c)                                                         */
/* ------------------------------------------------------------------------ */

#define CK_KEY_BYTES     32
#define CK_NONCE_BYTES   crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define CK_TAG_BYTES     crypto_aead_xchacha20poly1305_ietf_ABYTES    /* 16 */
#define CK_SEAL_OVERHEAD (CK_NONCE_BYTES + CK_TAG_BYTES)

/* Subkeys derived from the root key with crypto_kdf_derive_from_key,
 * context "ckstore1". The numbers are part of the format: never reuse one. */
typedef enum ck_subkey_id {
    CK_SUBKEY_KEK = 1,       /* wraps per-subject data keys */
    CK_SUBKEY_BLIND = 2,     /* blind indexes of refs and identifying fields */
    CK_SUBKEY_PSEUDONYM = 3, /* per-context pseudonyms */
    CK_SUBKEY_AUDIT = 4,     /* audit chain MAC and audit pseudonyms */
    CK_SUBKEY_META = 5,      /* MAC of the key-slot file and the meta record */
    CK_SUBKEY_TOMBSTONE = 6, /* tombstones of erased subjects */
    CK_SUBKEY_STORE = 7,     /* store-level sealed records (schema, ...) */
    CK_SUBKEY_COUNT_ = 8
} ck_subkey_id;

/* The unwrapped keys of an open store, in one guarded allocation. */
typedef struct ck_keys {
    unsigned char root[CK_KEY_BYTES];
    unsigned char sub[CK_SUBKEY_COUNT_][CK_KEY_BYTES];
} ck_keys;

/* Derive every subkey of keys->root. */
void ck_crypto__derive_all(ck_keys *keys);

/* out = nonce || XChaCha20-Poly1305(pt) (ct_len = pt_len + CK_SEAL_OVERHEAD).
 * `out` must have room for pt_len + CK_SEAL_OVERHEAD bytes and may not
 * overlap pt. */
void ck_crypto__seal(uint8_t *out, const uint8_t *pt, size_t pt_len, const uint8_t *aad,
                     size_t aad_len, const unsigned char key[CK_KEY_BYTES]);

/* The same with the nonce from the store handle: a random prefix drawn at
 * open and a counter (no system call per record). For every record a
 * store writes in bulk. */
void ck_crypto__seal_st(uint8_t *out, ck_store *st, const uint8_t *pt, size_t pt_len,
                        const uint8_t *aad, size_t aad_len, const unsigned char key[CK_KEY_BYTES]);

/* Inverse of ck_crypto__seal: `pt` receives ct_len - CK_SEAL_OVERHEAD bytes.
 * CK_OK, CK_EINTEGRITY (authentication failed) or CK_EFORMAT (too short). */
CK_MUST_CHECK int ck_crypto__open(uint8_t *pt, const uint8_t *ct, size_t ct_len, const uint8_t *aad,
                                  size_t aad_len, const unsigned char key[CK_KEY_BYTES]);

/* Keyed BLAKE2b of `n` bytes into `out_len` bytes. */
void ck_crypto__mac(uint8_t *out, size_t out_len, const void *msg, size_t n,
                    const unsigned char key[CK_KEY_BYTES]);

/* ------------------------------------------------------------------------ */
/* Key slots (keys.c): the file "ckstore.keys" in the store directory.       */
/* ------------------------------------------------------------------------ */

#define CK_KEYS_FILE "ckstore.keys"

typedef struct ck_slot {
    uint8_t type; /* ck_slot_type */
    uint8_t nonce[CK_NONCE_BYTES];
    uint8_t wrapped[CK_KEY_BYTES + CK_TAG_BYTES];
    /* passphrase slots only */
    uint8_t salt[crypto_pwhash_SALTBYTES];
    uint64_t opslimit;
    uint64_t memlimit;
} ck_slot;

typedef struct ck_slotfile {
    uint32_t format;
    uint8_t store_id[CK_STORE_ID_BYTES];
    ck_slot slots[2];
    unsigned nslots;
} ck_slotfile;

/* Parse the bytes of a key-slot file (everything but the MAC check, which
 * needs the root key). CK_OK, CK_EFORMAT, CK_EVERSION. */
int ck_keys__parse(ck_slotfile *out, const uint8_t *p, size_t n);
/* Check the file's MAC with the meta subkey. CK_OK or CK_EINTEGRITY. */
CK_MUST_CHECK int ck_keys__verify_mac(const uint8_t *p, size_t n,
                                      const unsigned char meta_key[CK_KEY_BYTES]);
/* Serialise (with its MAC) into `out`. */
int ck_keys__serialize(ck_buf *out, const ck_slotfile *sf,
                       const unsigned char meta_key[CK_KEY_BYTES]);

/* Read a key file: must be a regular file of exactly CK_KEY_FILE_BYTES,
 * owned by us, with no group/other permission. `out` is guarded memory. */
int ck_keys__read_key_file(ck_store *st, unsigned char out[CK_KEY_FILE_BYTES], const char *path);
/* Create a key file with fresh random bytes, mode 0600, O_EXCL. */
int ck_keys__create_key_file(ck_store *st, unsigned char out[CK_KEY_FILE_BYTES], const char *path);

/* Wrap `root` into slot `s` (type and, for passphrases, salt/limits set by
 * the caller) with the key-file bytes or the passphrase. */
int ck_keys__wrap_keyfile(ck_slot *s, const uint8_t store_id[CK_STORE_ID_BYTES],
                          const unsigned char root[CK_KEY_BYTES],
                          const unsigned char kf[CK_KEY_FILE_BYTES]);
int ck_keys__wrap_passphrase(ck_slot *s, const uint8_t store_id[CK_STORE_ID_BYTES],
                             const unsigned char root[CK_KEY_BYTES], const char *pass, size_t len,
                             ck_kdf_cost cost);
/* Unwrap: CK_OK, CK_EKEY (this secret does not open this slot), CK_ENOMEM. */
CK_MUST_CHECK int ck_keys__unwrap_keyfile(unsigned char root[CK_KEY_BYTES], const ck_slot *s,
                                          const uint8_t store_id[CK_STORE_ID_BYTES],
                                          const unsigned char kf[CK_KEY_FILE_BYTES]);
CK_MUST_CHECK int ck_keys__unwrap_passphrase(unsigned char root[CK_KEY_BYTES], const ck_slot *s,
                                             const uint8_t store_id[CK_STORE_ID_BYTES],
                                             const char *pass, size_t len);

/* Write the slot file atomically: temp file, fsync, rename, fsync dir. */
int ck_keys__write_file(ck_store *st, const char *dir, const ck_slotfile *sf);
/* Read the whole slot file into `out` (plain heap). */
int ck_keys__read_file(ck_store *st, ck_buf *out, const char *dir);

/* ------------------------------------------------------------------------ */
/* LMDB environments (env.c)                                                 */
/* ------------------------------------------------------------------------ */

/* One LMDB environment with the lock that lets a thread grow its map: LMDB
 * allows mdb_env_set_mapsize only while this process has no transaction
 * open, so every transaction holds `resize` for reading and a resize takes
 * it for writing. */
typedef struct ck_env {
    MDB_env *env;
    pthread_rwlock_t resize;
    bool resize_made;
    bool rdonly;
    const char *name; /* "data" or "keyring", for messages */
} ck_env;

/* A transaction body for ck_env__write. It may be run more than once (after
 * the map grew), so it must have no effect outside the transaction, or
 * undo it itself. */
typedef int (*ck_txn_fn)(ck_store *st, MDB_txn *txn, void *ctx);

int ck_env__open(ck_store *st, ck_env *e, const char *path, const char *name, size_t map_size,
                 unsigned ck_flags);
void ck_env__close(ck_env *e);
/* Run `fn` in a write transaction and commit it; on MDB_MAP_FULL (in fn or
 * at commit) grow the map and run it again; adopt a map grown by another
 * process (MDB_MAP_RESIZED). */
int ck_env__write(ck_store *st, ck_env *e, ck_txn_fn fn, void *ctx);
/* Grow the map ahead of a large write, so that at least `bytes` are free
 * past the pages in use: a transaction that fills the map is run again
 * from its start, which for a bulk import repeats all its work. A hint:
 * ck_env__write still grows the map if the estimate was short. */
int ck_env__reserve(ck_store *st, ck_env *e, size_t bytes);
/* Begin/end a read-only transaction (holds `resize` for reading). */
int ck_env__read_begin(ck_store *st, ck_env *e, MDB_txn **out);
void ck_env__read_end(ck_env *e, MDB_txn *txn);
/* End a read transaction by committing it, which keeps the database
 * handles it opened valid (LMDB: a handle opened in a transaction is
 * available once that transaction commits); NULL is a no-op. */
void ck_env__read_commit(ck_env *e, MDB_txn *txn);
/* Open a named database inside a transaction (creating it when writing). */
int ck_env__dbi(ck_store *st, MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *out);

/* ------------------------------------------------------------------------ */
/* The store                                                                 */
/* ------------------------------------------------------------------------ */

#define CK_DATA_FILE    "data.mdb"
#define CK_KEYRING_FILE "keyring.mdb"
/* Held shared by every open handle, exclusively by a compaction. */
#define CK_LOCK_FILE "ckstore.lock"
/* The first audit segment; audit.c names the others. */
#define CK_AUDIT_FIRST_SEGMENT "audit-000001.log"
#define CK_AUDIT_STAGE_FILE    "audit-stage" /* audit.c: the staging file */

struct ck_store {
    char *dir;
    unsigned flags;
    uint8_t store_id[CK_STORE_ID_BYTES];
    uint32_t format;
    ck_keys *keys; /* guarded memory, read-only while the store is open */
    ck_env data;
    ck_env keyring;
    MDB_dbi dbi_meta;
    MDB_dbi dbi_subjects;
    MDB_dbi dbi_values;
    MDB_dbi dbi_keyring;
    MDB_dbi dbi_schema;
    MDB_dbi dbi_index;          /* subject.c: blind index -> subject ids (dupsort) */
    MDB_dbi dbi_consents;       /* consent.c: sealed consent records */
    MDB_dbi dbi_cindex;         /* consent.c: purpose tag || sid -> current state */
    MDB_dbi dbi_contacts;       /* consent.c: sealed contact log per subject+channel */
    MDB_dbi dbi_tombstones;     /* erase.c: tombstone tag -> erasure time */
    MDB_dbi dbi_holds;          /* hold.c, keyring env: hold id -> sealed held values */
    MDB_dbi dbi_hold_keys;      /* hold.c, keyring env: hold id -> wrapped hold key */
    bool has_holds;             /* false only for a store made before holds existed,
                                   opened read-only (opening it to write makes them) */
    pthread_mutex_t slots_lock; /* serialises key-slot changes in-process */
    ck_errors errors;
    struct ck_schema_state *schema; /* schema.c: current schema, reloaded
                                       when another process changes it */
    struct ck_audit *audit;         /* audit.c: the open audit log */
    ck_audit_mode audit_mode;
    unsigned audit_flush_ms;
    uint8_t nonce_prefix[16];     /* random, drawn at open: see ck_crypto__seal_st */
    uint64_t nonce_ctr;           /* atomic */
    int lock_fd;                  /* CK_LOCK_FILE, flock'ed shared; -1 if none */
    pthread_mutex_t keypool_lock; /* guards keypool */
    unsigned char *keypool[16];   /* free guarded key buffers (CK_KEY_BYTES) */
    unsigned nkeypool;
    int64_t (*clock)(void *ctx); /* ck_options.clock; NULL = real time */
    void *clock_ctx;
};

/* A guarded buffer of CK_KEY_BYTES for a data key, from the store's pool
 * (sodium_malloc is a handful of system calls: too slow per request).
 * NULL when out of memory. Give it back (wiped) with ck_store__key_give. */
unsigned char *ck_store__key_take(ck_store *st);
void ck_store__key_give(ck_store *st, unsigned char *k);

/* A handle flag of its own (never in ck_options.flags): the store lock is
 * held exclusively from the open on. */
#define CK__OPEN_EXCLUSIVE 0x80000000u

/* Open the store in `dir` as ck_open does, and:
 *  - with keys_of != NULL, with the keys of that open store instead of a
 *    secret (no key derivation): the key-slot file of `dir` must name the
 *    same store and its MAC must hold under those keys (CK_EINTEGRITY
 *    otherwise); the secrets of `opts` are then not used;
 *  - with `exclusive`, holding the store lock exclusively (CK_EBUSY at once
 *    when any handle, of this process or another, has the store open),
 *    taken before any LMDB file is opened.
 * For a restore. */
int ck_store__open_ex(ck_store **out, const char *dir, const ck_options *opts,
                      const ck_store *keys_of, bool exclusive);

/* backup.c, for a restore. Copy file `name` of `from_dir` into `to_dir`
 * (created 0600, fsync'ed); copy environment `e` entry by entry into a new
 * file `name` of `to_dir` (as a backup does: no page is copied); copy the
 * audit segments; remove a directory of plain files. Errors go to `st`. */
int ck_backup__copy_file(ck_store *st, const char *from_dir, const char *to_dir, const char *name);
int ck_backup__copy_env(ck_store *st, ck_env *e, const char *to_dir, const char *name);
int ck_backup__copy_audit(ck_store *st, const char *from_dir, const char *to_dir);
void ck_backup__remove_dir(const char *dir);

/* Open both environments of st->dir and their databases again (after a
 * compaction replaced the files). */
int ck_store__reopen_envs(ck_store *st);

/* The store's clock: Unix seconds (ck_options.clock, or the real time). */
int64_t ck_store__now(const ck_store *st);

/* ------------------------------------------------------------------------ */
/* Hooks of the modules that live beside the store (called by store.c).      */
/* ------------------------------------------------------------------------ */

/* schema.c: load the current schema after the environments are open
 * (`dtxn` is a read transaction of the data environment); free it at close. */
int ck_schema__open(ck_store *st, MDB_txn *dtxn);
void ck_schema__close(ck_store *st);

/* audit.c: open the audit log of the store directory (create it at init),
 * recovering a torn last entry; close it, flushing pending entries. */
int ck_audit__open(ck_store *st, bool create);
void ck_audit__close(ck_store *st);

static inline const unsigned char *ck_store__subkey(const ck_store *st, ck_subkey_id id)
{
    return st->keys->sub[id];
}

/* ------------------------------------------------------------------------ */
/* Keyring (keyring.c): per-subject data keys, wrapped by the KEK.           */
/* ------------------------------------------------------------------------ */

/* Sealed records of other kinds: [u8 version][nonce][ciphertext][tag].
 * record_put seals the plaintext held in `scratch` straight into a new
 * page entry at `key` (MDB_RESERVE) and wipes the scratch; `what` names
 * the record in a message ("cannot write a consent record").
 * record_open checks the version, opens the record into `arena` memory
 * (wiped when the arena is) and gives the plaintext: CK_EINTEGRITY when it
 * is malformed or does not authenticate ("<what> is malformed", "<what>
 * does not authenticate"), CK_ENOMEM. */
int ck_seal__record_put(ck_store *st, MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                        uint8_t version, const uint8_t *aad, size_t aad_len, ck_buf *scratch,
                        const unsigned char k[CK_KEY_BYTES], const char *what);
/* record_put through `cur`, a write cursor on the database the record goes
 * to (its transaction a write one, still open): a put whose key sorts next
 * to the cursor's last one stays on that page instead of descending from
 * the root. Same record, same errors. */
int ck_seal__record_put_cur(ck_store *st, MDB_cursor *cur, const void *key, size_t klen,
                            uint8_t version, const uint8_t *aad, size_t aad_len, ck_buf *scratch,
                            const unsigned char k[CK_KEY_BYTES], const char *what);
int ck_seal__record_open(const uint8_t **pt, size_t *pt_len, ck_store *st, const MDB_val *v,
                         uint8_t version, const uint8_t *aad, size_t aad_len,
                         const unsigned char k[CK_KEY_BYTES], ck_arena *arena, const char *what);

/* A keyring record: [u8 version][nonce][wrapped data key][tag]. */
#define CK_KEYRING_RECORD_BYTES (1 + CK_SEAL_OVERHEAD + CK_KEY_BYTES)

/* Make a random data key for `sid` and store it wrapped (inside `txn` of the
 * keyring environment). `dk_out`, if not NULL, receives the key. */
int ck_keyring__create(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                       unsigned char dk_out[CK_KEY_BYTES]);
/* Fetch and unwrap the data key of `sid`. CK_ENOTFOUND, CK_EINTEGRITY. */
CK_MUST_CHECK int ck_keyring__get(ck_store *st, MDB_txn *ktxn,
                                  const uint8_t sid[CK_SUBJECT_ID_BYTES],
                                  unsigned char dk[CK_KEY_BYTES]);
/* The same through `kcur`, a cursor on st->dbi_keyring of a keyring read
 * transaction: kept over look-ups of ascending ids (a segment's
 * candidates), it finds an id on the page of the last one without a
 * descent from the root. */
CK_MUST_CHECK int ck_keyring__get_at(ck_store *st, MDB_cursor *kcur,
                                     const uint8_t sid[CK_SUBJECT_ID_BYTES],
                                     unsigned char dk[CK_KEY_BYTES]);
int ck_keyring__delete(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES]);

/*
 * ck_keyring__scrub - overwrite with zeros every copy, anywhere in the
 * keyring file, of the `n` keyring records at `recs` (n * 73 bytes: wrapped
 * keys whose deletion was committed). LMDB never zeroes what it frees: a
 * deleted record stays in free pages, and in the unused part of pages in
 * use, until reused; with the KEK it would still unwrap the key.
 *
 * One pass over the file, whatever n (the erasure of a batch scrubs once),
 * inside a keyring write transaction that writes nothing: holding LMDB's
 * writer lock, no writer reuses a page meanwhile. Each record holds a
 * random nonce, so its 73 bytes occur nowhere else. A reader still holding
 * a snapshot from before the deletion reads zeros there and fails to
 * unwrap that key only. `hits`, if not NULL, receives per record the
 * number of copies overwritten (n entries). The file is fdatasync'ed when
 * anything was overwritten.
 * Returns CK_OK; CK_EIO; CK_ENOMEM.
 */
int ck_keyring__scrub(ck_store *st, const uint8_t *recs, size_t n, uint64_t *hits);

/* ------------------------------------------------------------------------ */
/* Sealed values (seal.c)                                                    */
/* ------------------------------------------------------------------------ */

/* Value record: [u8 version=1][nonce 24][ciphertext][tag 16], sealed under
 * the subject's data key with AAD = "ckv1" || store id || subject id ||
 * field id (u16 BE) || version. */
#define CK_VALUE_RECORD_VERSION 1
#define CK_VALUE_KEY_BYTES      (CK_SUBJECT_ID_BYTES + 2)

void ck_seal__value_key(uint8_t out[CK_VALUE_KEY_BYTES], const uint8_t sid[CK_SUBJECT_ID_BYTES],
                        uint16_t field_id);

/* Encode and seal `v` and put it in the values database. */
int ck_seal__put(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                 uint16_t field_id, const unsigned char dk[CK_KEY_BYTES], const ck_value *v,
                 ck_buf *scratch);
/* The same with the write time given (ck_seal__put uses the store's clock). */
int ck_seal__put_at(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                    uint16_t field_id, const unsigned char dk[CK_KEY_BYTES], const ck_value *v,
                    int64_t written, ck_buf *scratch);
/* ck_seal__put_at through `cur`, a write cursor on st->dbi_values (see
 * ck_seal__record_put_cur): the values of one subject are adjacent, so
 * writing them one after the other through the same cursor saves a
 * descent from the root for most of them. */
int ck_seal__put_cur(ck_store *st, MDB_cursor *cur, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                     uint16_t field_id, const unsigned char dk[CK_KEY_BYTES], const ck_value *v,
                     int64_t written, ck_buf *scratch);
/* Fetch, open and decode the value of (sid, field) into `out`, whose memory
 * (plaintext included) lives in `arena`, wiped when the caller resets it.
 * CK_ENOTFOUND when the field is unset; CK_EINTEGRITY when the record does
 * not authenticate (tampered, or moved from another subject or field);
 * CK_EFORMAT when it authenticates but does not decode as `type`. */
CK_MUST_CHECK int ck_seal__get(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                               uint16_t field_id, const unsigned char dk[CK_KEY_BYTES],
                               ck_type type, ck_value *out, ck_arena *arena);
/* The same, also giving the value's write time (`written` may be NULL). */
CK_MUST_CHECK int ck_seal__get_at(ck_store *st, MDB_txn *txn,
                                  const uint8_t sid[CK_SUBJECT_ID_BYTES], uint16_t field_id,
                                  const unsigned char dk[CK_KEY_BYTES], ck_type type, ck_value *out,
                                  int64_t *written, ck_arena *arena);
/* Open and decode a value record of (sid, field) already fetched from the
 * values database (ck_seal__fetch), as ck_seal__get_at does: the same
 * checks, errors and memory rules, without the look-up (so never
 * CK_ENOTFOUND). `val` points into a read transaction's pages and must
 * stay valid (the transaction open) during the call. */
CK_MUST_CHECK int ck_seal__open_at(ck_store *st, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                                   uint16_t field_id, const unsigned char dk[CK_KEY_BYTES],
                                   ck_type type, const MDB_val *val, ck_value *out,
                                   int64_t *written, ck_arena *arena);
/* Fetch, without opening anything, the value records of fields ids[0..n)
 * (ascending, distinct) of `sid` with one walk of `cur`, a cursor on
 * st->dbi_values: the subject's values are adjacent, so this is one
 * positioning and a few steps instead of n look-ups from the root (and a
 * cursor kept over subjects in ascending id order finds the next one near
 * the last). recs[i] gets the record of ids[i], or {0, NULL} when unset.
 * The records point into the transaction's pages: valid until it ends,
 * never to be handed out. CK_OK, or an LMDB error (CK_EIO ...; every
 * recs[i] is then {0, NULL}). */
CK_MUST_CHECK int ck_seal__fetch(ck_store *st, MDB_cursor *cur,
                                 const uint8_t sid[CK_SUBJECT_ID_BYTES], const uint16_t *ids,
                                 size_t n, MDB_val *recs);

/* Wrap a given data key for `sid` into the keyring (ck_keyring__create
 * makes the key itself). CK_EINTERNAL if `sid` already has a key. */
int ck_keyring__put(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                    const unsigned char dk[CK_KEY_BYTES]);

#endif /* CK_STORE_H */
