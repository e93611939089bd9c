/*
 * store.c - creating, opening and closing a store; key slots; statistics.
 *
 * A store directory holds:
 *   ckstore.keys      the key slots (keys.c); its presence marks a store
 *   data.mdb(-lock)   the data environment: meta, subjects, values, ...
 *   keyring.mdb(-lock) per-subject data keys (keyring.c)
 *
 * Opening reads and checks the key slots first, and opens the LMDB files
 * only once a slot has accepted the key: a wrong key writes nothing.
 */
#include "store.h"

#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define META_MAC_BYTES 32
#define PASSPHRASE_MAX 4096

/* Named databases of the data environment. */
static const char DB_META[] = "meta";
static const char DB_SUBJECTS[] = "subjects";
static const char DB_VALUES[] = "values";
static const char DB_KEYRING[] = "keys";
static const char DB_SCHEMA[] = "schema";
static const char DB_INDEX[] = "index";
static const char DB_CONSENTS[] = "consents";
static const char DB_CINDEX[] = "cindex";
static const char DB_CONTACTS[] = "contacts";
static const char DB_TOMBSTONES[] = "tombstones";
/* Of the keyring environment, beside DB_KEYRING (hold.c). */
static const char DB_HOLDS[] = "holds";
static const char DB_HOLD_KEYS[] = "hold_keys";

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* Copy the calling thread's detail message into the caller's errbuf: there
 * is no handle to ask once open or init has failed. */
static void export_error(ck_store *st, const ck_options *opts, int rc)
{
    if (opts == NULL || opts->errbuf == NULL || opts->errbuf_max == 0)
        return;
    const char *m = st != NULL ? ck_err__get(st) : "";
    snprintf(opts->errbuf, opts->errbuf_max, "%s", m[0] != '\0' ? m : ck_strerror(rc));
}

static int check_options(const ck_options *opts)
{
    if (opts == NULL || opts->version != CK_OPTIONS_VERSION)
        return CK_EINVAL;
    if (opts->key_file == NULL && opts->passphrase == NULL)
        return CK_EINVAL;
    if (opts->passphrase != NULL &&
        (opts->passphrase_len == 0 || opts->passphrase_len > PASSPHRASE_MAX))
        return CK_EINVAL;
    if (opts->kdf_cost < CK_KDF_DEFAULT || opts->kdf_cost > CK_KDF_SENSITIVE)
        return CK_EINVAL;
    return CK_OK;
}

static ck_store *store_new(const char *dir, unsigned flags)
{
    ck_store *st = ck_mem__calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->flags = flags;
    st->lock_fd = -1;
    st->dir = ck_mem__strndup(dir, strlen(dir));
    st->keys = ck_mem__smalloc(sizeof *st->keys);
    if (st->dir == NULL || st->keys == NULL || ck_errors__init(&st->errors) != CK_OK) {
        ck_mem__free(st->dir);
        ck_mem__sfree(st->keys);
        ck_mem__free(st);
        return NULL;
    }
    sodium_memzero(st->keys, sizeof *st->keys);
    randombytes_buf(st->nonce_prefix, sizeof st->nonce_prefix);
    if (pthread_mutex_init(&st->slots_lock, NULL) != 0) {
        ck_errors__fini(&st->errors);
        ck_mem__free(st->dir);
        ck_mem__sfree(st->keys);
        ck_mem__free(st);
        return NULL;
    }
    if (pthread_mutex_init(&st->keypool_lock, NULL) != 0) {
        pthread_mutex_destroy(&st->slots_lock);
        ck_errors__fini(&st->errors);
        ck_mem__free(st->dir);
        ck_mem__sfree(st->keys);
        ck_mem__free(st);
        return NULL;
    }
    return st;
}

CK_EXPORT void ck_close(ck_store *st)
{
    if (st == NULL)
        return;
    ck_audit__close(st);
    ck_schema__close(st);
    ck_env__close(&st->data);
    ck_env__close(&st->keyring);
    if (st->lock_fd >= 0)
        close(st->lock_fd);  /* releases its flock */
    ck_mem__sfree(st->keys); /* sodium_free wipes before releasing */
    for (unsigned i = 0; i < st->nkeypool; i++)
        ck_mem__sfree(st->keypool[i]);
    pthread_mutex_destroy(&st->keypool_lock);
    pthread_mutex_destroy(&st->slots_lock);
    ck_errors__fini(&st->errors);
    ck_mem__free(st->dir);
    ck_mem__free(st);
}

/* ------------------------------------------------------------------------ */
/* The meta record                                                          */
/* ------------------------------------------------------------------------ */

static void meta_mac(uint8_t out[META_MAC_BYTES], const ck_store *st, uint32_t format)
{
    uint8_t msg[7 + 4 + CK_STORE_ID_BYTES];
    memcpy(msg, "ckmeta1", 7);
    ck_be32_put(msg + 7, format);
    memcpy(msg + 11, st->store_id, CK_STORE_ID_BYTES);
    ck_crypto__mac(out, META_MAC_BYTES, msg, sizeof msg, ck_store__subkey(st, CK_SUBKEY_META));
}

static int put_meta(ck_store *st, MDB_txn *txn, const char *name, const void *p, size_t n)
{
    MDB_val k = {strlen(name), (void *)name}, v = {n, (void *)p};
    int mrc = mdb_put(txn, st->dbi_meta, &k, &v, 0);
    return mrc == 0 ? CK_OK : ck_err__mdb(st, mrc, "cannot write the meta record");
}

static int get_meta(ck_store *st, MDB_txn *txn, const char *name, void *out, size_t n)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int mrc = mdb_get(txn, st->dbi_meta, &k, &v);
    if (mrc == MDB_NOTFOUND || (mrc == 0 && v.mv_size != n))
        return ck_err__set(st, CK_EINTEGRITY, "the meta record is missing or malformed (%s)", name);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read the meta record");
    memcpy(out, v.mv_data, n);
    return CK_OK;
}

/* Open (or create, in a write transaction) every database of both
 * environments. Handles stay valid for the life of the environment. */
static int open_dbis(ck_store *st, MDB_txn *dtxn, MDB_txn *ktxn, unsigned flags)
{
    CK_TRY(ck_env__dbi(st, dtxn, DB_META, flags, &st->dbi_meta));
    CK_TRY(ck_env__dbi(st, dtxn, DB_SUBJECTS, flags, &st->dbi_subjects));
    CK_TRY(ck_env__dbi(st, dtxn, DB_VALUES, flags, &st->dbi_values));
    CK_TRY(ck_env__dbi(st, dtxn, DB_SCHEMA, flags, &st->dbi_schema));
    CK_TRY(ck_env__dbi(st, dtxn, DB_INDEX, flags | MDB_DUPSORT | MDB_DUPFIXED, &st->dbi_index));
    CK_TRY(ck_env__dbi(st, dtxn, DB_CONSENTS, flags, &st->dbi_consents));
    CK_TRY(ck_env__dbi(st, dtxn, DB_CINDEX, flags, &st->dbi_cindex));
    CK_TRY(ck_env__dbi(st, dtxn, DB_CONTACTS, flags, &st->dbi_contacts));
    CK_TRY(ck_env__dbi(st, dtxn, DB_TOMBSTONES, flags, &st->dbi_tombstones));
    CK_TRY(ck_env__dbi(st, ktxn, DB_KEYRING, flags, &st->dbi_keyring));
    /* The hold databases came after the first stores of format 1: one made
     * before them lacks them (has_holds false); ck_open makes them when it
     * opens such a store to write. */
    int mrc = mdb_dbi_open(ktxn, DB_HOLDS, flags, &st->dbi_holds);
    if (mrc == 0)
        mrc = mdb_dbi_open(ktxn, DB_HOLD_KEYS, flags, &st->dbi_hold_keys);
    st->has_holds = mrc == 0;
    if (mrc != 0 && !(mrc == MDB_NOTFOUND && (flags & MDB_CREATE) == 0))
        return ck_err__mdb(st, mrc, "cannot open the hold databases");
    return CK_OK;
}

static int make_hold_dbis_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    (void)ctx;
    int mrc = mdb_dbi_open(ktxn, DB_HOLDS, MDB_CREATE, &st->dbi_holds);
    if (mrc == 0)
        mrc = mdb_dbi_open(ktxn, DB_HOLD_KEYS, MDB_CREATE, &st->dbi_hold_keys);
    return mrc == 0 ? CK_OK : ck_err__mdb(st, mrc, "cannot create the hold databases");
}

static int init_keyring_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    MDB_txn *txn = ctx; /* the data transaction, still open */
    uint8_t be[4], mac[META_MAC_BYTES];
    CK_TRY(open_dbis(st, txn, ktxn, MDB_CREATE));
    ck_be32_put(be, CK_FORMAT_VERSION);
    meta_mac(mac, st, CK_FORMAT_VERSION);
    CK_TRY(put_meta(st, txn, "format", be, sizeof be));
    CK_TRY(put_meta(st, txn, "store_id", st->store_id, sizeof st->store_id));
    CK_TRY(put_meta(st, txn, "mac", mac, sizeof mac));
    return CK_OK;
}

static int init_data_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    (void)ctx;
    /* Both environments' databases are made together. The data write
     * transaction is taken first and the keyring's inside it, the order
     * every writer follows (docs/architecture.md): the keyring commits,
     * then the data. */
    return ck_env__write(st, &st->keyring, init_keyring_txn, txn);
}

static int check_meta(ck_store *st, MDB_txn *txn)
{
    uint8_t be[4], id[CK_STORE_ID_BYTES], mac[META_MAC_BYTES], want[META_MAC_BYTES];
    CK_TRY(get_meta(st, txn, "format", be, sizeof be));
    CK_TRY(get_meta(st, txn, "store_id", id, sizeof id));
    CK_TRY(get_meta(st, txn, "mac", mac, sizeof mac));
    uint32_t format = ck_be32_get(be);
    meta_mac(want, st, format);
    if (sodium_memcmp(mac, want, sizeof mac) != 0 ||
        sodium_memcmp(id, st->store_id, sizeof id) != 0)
        return ck_err__set(st, CK_EINTEGRITY,
                           "the data file does not belong to this key-slot file "
                           "(meta record mismatch)");
    if (format != st->format)
        return ck_err__set(st, CK_EINTEGRITY, "format versions disagree between files");
    return CK_OK;
}

/* Is `fd` still the file at `path`? A restore swaps the whole store
 * directory while holding the old lock exclusively: a handle that waited
 * on the old lock file must then lock the new one. */
static bool same_file(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Take the store lock shared (waiting while a compaction or a restore
 * holds it), so that ck_compact and ck_restore know whether another
 * process has the store open. A read-only handle on a store whose lock
 * file cannot be made goes without: it only reads. With
 * CK__OPEN_EXCLUSIVE, take it exclusively or fail with CK_EBUSY at once,
 * before any LMDB file is opened (LMDB forbids opening an environment
 * twice in one process: the other handle may be in this process). */
static int take_store_lock(ck_store *st)
{
    char *p = ck_mem__path_join(st->dir, CK_LOCK_FILE);
    if (p == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    int rc = CK_OK;
    for (int attempt = 0;; attempt++) {
        int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 && (st->flags & CK_OPEN_RDONLY) != 0)
            fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if ((st->flags & CK_OPEN_RDONLY) == 0)
                rc = ck_err__errno(st, errno, "cannot open the store lock", CK_LOCK_FILE);
            break;
        }
        int lrc, how = (st->flags & CK__OPEN_EXCLUSIVE) ? LOCK_EX | LOCK_NB : LOCK_SH;
        while ((lrc = flock(fd, how)) != 0 && errno == EINTR)
            ;
        if (lrc != 0) {
            int err = errno;
            close(fd);
            if (err == EWOULDBLOCK)
                rc = ck_err__set(st, CK_EBUSY,
                                 "the store is open elsewhere (another process "
                                 "or handle)");
            else
                rc = ck_err__errno(st, err, "cannot lock the store", CK_LOCK_FILE);
            break;
        }
        if (!same_file(fd, p)) {
            close(fd); /* the store was replaced while we waited: lock the new one */
            if (attempt < 16)
                continue;
            rc = ck_err__set(st, CK_EBUSY, "the store keeps being replaced");
            break;
        }
        st->lock_fd = fd;
        break;
    }
    ck_mem__free(p);
    return rc;
}

int ck_store__reopen_envs(ck_store *st)
{
    MDB_txn *dtxn = NULL, *ktxn = NULL;
    int rc;
    char *dpath = ck_mem__path_join(st->dir, CK_DATA_FILE);
    char *kpath = ck_mem__path_join(st->dir, CK_KEYRING_FILE);
    CK_ENSURE(dpath != NULL && kpath != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(ck_env__open(st, &st->data, dpath, "data", 0, st->flags));
    CK_GUARD(ck_env__open(st, &st->keyring, kpath, "keyring", 0, st->flags));
    CK_GUARD(ck_env__read_begin(st, &st->data, &dtxn));
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &ktxn));
    CK_GUARD(open_dbis(st, dtxn, ktxn, 0));
    rc = CK_OK;
cleanup:
    ck_env__read_commit(&st->data, dtxn);
    ck_env__read_commit(&st->keyring, ktxn);
    ck_mem__free(dpath);
    ck_mem__free(kpath);
    return rc;
}

static int open_envs(ck_store *st, size_t map_size)
{
    CK_TRY(take_store_lock(st));
    int rc;
    char *dpath = ck_mem__path_join(st->dir, CK_DATA_FILE);
    char *kpath = ck_mem__path_join(st->dir, CK_KEYRING_FILE);
    CK_ENSURE(dpath != NULL && kpath != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(ck_env__open(st, &st->data, dpath, "data", map_size, st->flags));
    CK_GUARD(ck_env__open(st, &st->keyring, kpath, "keyring", 0, st->flags));
    rc = CK_OK;
cleanup:
    ck_mem__free(dpath);
    ck_mem__free(kpath);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* ck_init                                                                  */
/* ------------------------------------------------------------------------ */

static void remove_store_files(const char *dir)
{
    static const char *const files[] = {CK_DATA_FILE, CK_DATA_FILE "-lock", CK_KEYRING_FILE,
                                        CK_KEYRING_FILE "-lock", CK_AUDIT_FIRST_SEGMENT,
                                        CK_AUDIT_STAGE_FILE, CK_LOCK_FILE,
                                        /* renamed into place just before a failed
                                           directory fsync */
                                        CK_KEYS_FILE};
    for (size_t i = 0; i < CK_ARRAY_LEN(files); i++) {
        char *p = ck_mem__path_join(dir, files[i]);
        if (p != NULL)
            unlink(p);
        ck_mem__free(p);
    }
}

static bool file_exists(const char *dir, const char *name)
{
    char *p = ck_mem__path_join(dir, name);
    bool yes = p != NULL && access(p, F_OK) == 0;
    ck_mem__free(p);
    return yes;
}

CK_EXPORT int ck_init(ck_store **out, const char *dir, const ck_options *opts)
{
    int rc;
    ck_store *st = NULL;
    unsigned char *kf = NULL;
    bool made_dir = false, made_key_file = false, made_files = false;
    ck_slotfile sf;

    if (out != NULL)
        *out = NULL;
    if (dir == NULL || check_options(opts) != CK_OK) {
        if (opts != NULL && opts->errbuf != NULL && opts->errbuf_max > 0)
            snprintf(opts->errbuf, opts->errbuf_max,
                     "invalid options: a store directory and a key file or passphrase are "
                     "needed");
        return CK_EINVAL;
    }
    st = store_new(dir, opts->flags & (CK_OPEN_NOSYNC));
    if (st == NULL)
        return CK_ENOMEM;

    if (mkdir(dir, 0700) == 0) {
        made_dir = true;
    } else if (errno != EEXIST) {
        rc = ck_err__errno(st, errno, "cannot create store directory", dir);
        goto cleanup;
    }
    if (file_exists(dir, CK_KEYS_FILE) || file_exists(dir, CK_DATA_FILE)) {
        rc = ck_err__set(st, CK_EEXIST, "%s already holds a store", dir);
        goto cleanup;
    }

    memset(&sf, 0, sizeof sf);
    sf.format = CK_FORMAT_VERSION;
    randombytes_buf(st->store_id, sizeof st->store_id);
    memcpy(sf.store_id, st->store_id, sizeof sf.store_id);
    st->format = CK_FORMAT_VERSION;
    randombytes_buf(st->keys->root, CK_KEY_BYTES);
    ck_crypto__derive_all(st->keys);

    if (opts->key_file != NULL) {
        kf = ck_mem__smalloc(CK_KEY_FILE_BYTES);
        CK_ENSURE(kf != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
        if ((opts->flags & CK_INIT_CREATE_KEY_FILE) && access(opts->key_file, F_OK) != 0 &&
            errno == ENOENT) {
            CK_GUARD(ck_keys__create_key_file(st, kf, opts->key_file));
            made_key_file = true;
        } else {
            CK_GUARD(ck_keys__read_key_file(st, kf, opts->key_file));
        }
        CK_GUARD(ck_keys__wrap_keyfile(&sf.slots[sf.nslots++], sf.store_id, st->keys->root, kf));
    }
    if (opts->passphrase != NULL) {
        rc = ck_keys__wrap_passphrase(&sf.slots[sf.nslots++], sf.store_id, st->keys->root,
                                      opts->passphrase, opts->passphrase_len, opts->kdf_cost);
        CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "cannot derive the passphrase key"));
    }

    made_files = true;
    st->audit_mode = opts->audit_mode;
    st->audit_flush_ms = opts->audit_flush_ms;
    st->clock = opts->clock;
    st->clock_ctx = opts->clock_ctx;
    CK_GUARD(open_envs(st, opts->map_size));
    CK_GUARD(ck_env__write(st, &st->data, init_data_txn, NULL));
    CK_GUARD(ck_audit__open(st, true));
    /* The key-slot file comes last: until it exists there is no store. */
    CK_GUARD(ck_keys__write_file(st, dir, &sf));
    rc = CK_OK;
cleanup:
    ck_mem__sfree(kf);
    if (rc != CK_OK) {
        export_error(st, opts, rc);
        ck_audit__close(st);
        ck_env__close(&st->data);
        ck_env__close(&st->keyring);
        if (made_files)
            remove_store_files(dir);
        if (made_key_file)
            unlink(opts->key_file);
        if (made_dir)
            rmdir(dir);
        ck_close(st);
        return rc;
    }
    if (out != NULL)
        *out = st;
    else
        ck_close(st);
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* ck_open                                                                  */
/* ------------------------------------------------------------------------ */

/* Find the slot of `type`, or NULL. */
static const ck_slot *find_slot(const ck_slotfile *sf, ck_slot_type type)
{
    for (unsigned i = 0; i < sf->nslots; i++)
        if (sf->slots[i].type == type)
            return &sf->slots[i];
    return NULL;
}

/* Unwrap the root key with the secrets in opts: the key file first, then
 * the passphrase. */
static int unlock_root(ck_store *st, const ck_slotfile *sf, const ck_options *opts)
{
    int rc = CK_EKEY;
    const char *why = "no key given";
    unsigned char *kf = NULL;

    if (opts->key_file != NULL) {
        const ck_slot *s = find_slot(sf, CK_SLOT_KEY_FILE);
        kf = ck_mem__smalloc(CK_KEY_FILE_BYTES);
        if (kf == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        rc = ck_keys__read_key_file(st, kf, opts->key_file);
        if (rc != CK_OK) {
            /* An unsafe or missing key file is reported as such, with the
             * message read_key_file set. */
            ck_mem__sfree(kf);
            return rc;
        }
        if (s == NULL) {
            rc = CK_EKEY;
            why = "the store has no key-file slot";
        } else {
            rc = ck_keys__unwrap_keyfile(st->keys->root, s, sf->store_id, kf);
            why = "the key file does not open this store";
        }
        if (rc == CK_OK || rc == CK_ENOMEM)
            goto cleanup;
    }
    if (opts->passphrase != NULL) {
        const ck_slot *s = find_slot(sf, CK_SLOT_PASSPHRASE);
        if (s == NULL) {
            rc = CK_EKEY;
            why = "the store has no passphrase slot";
        } else {
            rc = ck_keys__unwrap_passphrase(st->keys->root, s, sf->store_id, opts->passphrase,
                                            opts->passphrase_len);
            why = "wrong passphrase";
        }
    }
cleanup:
    ck_mem__sfree(kf);
    if (rc == CK_EKEY)
        return ck_err__set(st, CK_EKEY, "%s", why);
    if (rc == CK_ENOMEM)
        return ck_err__set(st, CK_ENOMEM, "out of memory while deriving the key");
    return rc;
}

/* ck_open, and ck_store__open_ex. */
static int open_store(ck_store **out, const char *dir, const ck_options *opts,
                      const ck_store *keys_of, bool exclusive)
{
    int rc;
    ck_store *st = NULL;
    ck_buf file = CK_BUF_INIT;
    ck_slotfile sf;
    MDB_txn *dtxn = NULL, *ktxn = NULL;

    if (out == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (dir == NULL || check_options(opts) != CK_OK) {
        if (opts != NULL && opts->errbuf != NULL && opts->errbuf_max > 0)
            snprintf(opts->errbuf, opts->errbuf_max,
                     "invalid options: a store directory and a key file or passphrase are "
                     "needed");
        return CK_EINVAL;
    }
    st = store_new(dir, opts->flags & (CK_OPEN_NOSYNC | CK_OPEN_RDONLY));
    if (st == NULL)
        return CK_ENOMEM;
    if (exclusive)
        st->flags |= CK__OPEN_EXCLUSIVE;

    CK_GUARD(ck_keys__read_file(st, &file, dir));
    rc = ck_keys__parse(&sf, file.p, file.len);
    if (rc == CK_EVERSION) {
        rc = ck_err__set(st, CK_EVERSION,
                         "the store in %s has format %u; this ckstore reads up to format %d", dir,
                         sf.format, CK_FORMAT_VERSION);
        goto cleanup;
    }
    CK_ENSURE(rc == CK_OK,
              ck_err__set(st, CK_EFORMAT, "%s/%s is not a valid key-slot file", dir, CK_KEYS_FILE));
    memcpy(st->store_id, sf.store_id, sizeof st->store_id);
    st->format = sf.format;

    if (keys_of == NULL) {
        CK_GUARD(unlock_root(st, &sf, opts));
        ck_crypto__derive_all(st->keys);
    } else {
        CK_ENSURE(sodium_memcmp(st->store_id, keys_of->store_id, sizeof st->store_id) == 0,
                  ck_err__set(st, CK_EINTEGRITY, "%s holds another store", dir));
        memcpy(st->keys, keys_of->keys, sizeof *st->keys);
    }
    CK_ENSURE(ck_keys__verify_mac(file.p, file.len, ck_store__subkey(st, CK_SUBKEY_META)) == CK_OK,
              ck_err__set(st, CK_EINTEGRITY, "the key-slot file was modified (MAC mismatch)"));

    /* Only now, with the key proven, touch the LMDB files. */
    CK_GUARD(open_envs(st, opts->map_size));
    CK_GUARD(ck_env__read_begin(st, &st->data, &dtxn));
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &ktxn));
    CK_GUARD(open_dbis(st, dtxn, ktxn, 0));
    CK_GUARD(check_meta(st, dtxn));
    CK_GUARD(ck_schema__open(st, dtxn));
    st->audit_mode = opts->audit_mode;
    st->audit_flush_ms = opts->audit_flush_ms;
    st->clock = opts->clock;
    st->clock_ctx = opts->clock_ctx;
    CK_GUARD(ck_audit__open(st, false));
    rc = CK_OK;
cleanup:
    /* Database handles opened in a read transaction stay valid after it
     * ends (LMDB: "the handle ... is available once the txn commits"), so
     * commit rather than abort. */
    ck_env__read_commit(&st->data, dtxn);
    ck_env__read_commit(&st->keyring, ktxn);
    ck_buf__free(&file);
    if (rc == CK_OK && !st->has_holds && (st->flags & CK_OPEN_RDONLY) == 0) {
        rc = ck_env__write(st, &st->keyring, make_hold_dbis_txn, NULL);
        st->has_holds = rc == CK_OK;
    }
    if (rc != CK_OK) {
        export_error(st, opts, rc);
        ck_close(st);
        return rc;
    }
    *out = st;
    return CK_OK;
}

CK_EXPORT int ck_open(ck_store **out, const char *dir, const ck_options *opts)
{
    return open_store(out, dir, opts, NULL, false);
}

int ck_store__open_ex(ck_store **out, const char *dir, const ck_options *opts,
                      const ck_store *keys_of, bool exclusive)
{
    return open_store(out, dir, opts, keys_of, exclusive);
}

/* ------------------------------------------------------------------------ */
/* Key slots                                                                */
/* ------------------------------------------------------------------------ */

typedef struct slot_change {
    const ck_slot *add; /* replaces the slot of its type, or is added */
    int remove_type;    /* or: remove the slot of this type */
} slot_change;

/* Runs under the LMDB writer lock, which serialises slot changes between
 * processes: re-read the file (another process may have changed it),
 * apply the change, write it back atomically. Writes nothing to LMDB. */
static int slot_change_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    (void)txn;
    const slot_change *c = ctx;
    int rc;
    ck_buf file = CK_BUF_INIT;
    ck_slotfile sf;
    CK_GUARD(ck_keys__read_file(st, &file, st->dir));
    rc = ck_keys__parse(&sf, file.p, file.len);
    CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "the key-slot file is not valid"));
    CK_ENSURE(ck_keys__verify_mac(file.p, file.len, ck_store__subkey(st, CK_SUBKEY_META)) == CK_OK,
              ck_err__set(st, CK_EINTEGRITY, "the key-slot file was modified (MAC mismatch)"));

    if (c->add != NULL) {
        unsigned i;
        for (i = 0; i < sf.nslots && sf.slots[i].type != c->add->type; i++)
            ;
        CK_ENSURE(i < CK_ARRAY_LEN(sf.slots), ck_err__set(st, CK_EINTERNAL, "too many slots"));
        sf.slots[i] = *c->add;
        if (i == sf.nslots)
            sf.nslots++;
    } else {
        unsigned i;
        for (i = 0; i < sf.nslots && sf.slots[i].type != c->remove_type; i++)
            ;
        CK_ENSURE(i < sf.nslots,
                  ck_err__set(st, CK_ENOTFOUND, "the store has no slot of that type"));
        CK_ENSURE(sf.nslots > 1, ck_err__set(st, CK_EDENIED,
                                             "refusing to remove the last key slot: the store "
                                             "could never be opened again"));
        sf.slots[i] = sf.slots[sf.nslots - 1];
        sf.nslots--;
    }
    CK_GUARD(ck_keys__write_file(st, st->dir, &sf));
    rc = CK_OK;
cleanup:
    ck_buf__free(&file);
    return rc;
}

static int apply_slot_change(ck_store *st, const slot_change *c)
{
    pthread_mutex_lock(&st->slots_lock);
    int rc = ck_env__write(st, &st->data, slot_change_txn, (void *)c);
    pthread_mutex_unlock(&st->slots_lock);
    return rc;
}

CK_EXPORT int ck_slot_set_passphrase(ck_store *st, const char *pass, size_t len, ck_kdf_cost cost)
{
    if (st == NULL)
        return CK_EINVAL;
    if (pass == NULL || len == 0 || len > PASSPHRASE_MAX)
        return ck_err__set(st, CK_EINVAL, "a passphrase must have 1 to %d bytes", PASSPHRASE_MAX);
    if (cost < CK_KDF_DEFAULT || cost > CK_KDF_SENSITIVE)
        return ck_err__set(st, CK_EINVAL, "unknown key-derivation cost");
    if (st->flags & CK_OPEN_RDONLY)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    ck_slot slot;
    /* Derive outside the writer lock: Argon2id takes a good part of a
     * second and other writers need not wait for it. */
    int rc = ck_keys__wrap_passphrase(&slot, st->store_id, st->keys->root, pass, len, cost);
    if (rc != CK_OK)
        return ck_err__set(st, rc, "cannot derive the passphrase key");
    slot_change c = {&slot, 0};
    /* Logged once done: the log records what happened. If the entry cannot
     * be written the change stands and the caller gets the error. */
    rc = apply_slot_change(st, &c);
    return rc == CK_OK ? ck_audit__key_event(st, "ckstore", "passphrase", "set") : rc;
}

CK_EXPORT int ck_slot_set_key_file(ck_store *st, const char *path, unsigned int flags)
{
    int rc;
    if (st == NULL)
        return CK_EINVAL;
    if (path == NULL)
        return ck_err__set(st, CK_EINVAL, "no key file given");
    if (st->flags & CK_OPEN_RDONLY)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    unsigned char *kf = ck_mem__smalloc(CK_KEY_FILE_BYTES);
    if (kf == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    bool created = false;
    if (flags & CK_INIT_CREATE_KEY_FILE) {
        CK_GUARD(ck_keys__create_key_file(st, kf, path));
        created = true;
    } else {
        CK_GUARD(ck_keys__read_key_file(st, kf, path));
    }
    ck_slot slot;
    CK_GUARD(ck_keys__wrap_keyfile(&slot, st->store_id, st->keys->root, kf));
    slot_change c = {&slot, 0};
    CK_GUARD(apply_slot_change(st, &c));
    created = false; /* the slot now uses the file: never unlink it */
    CK_GUARD(ck_audit__key_event(st, "ckstore", "key_file", "set"));
    rc = CK_OK;
cleanup:
    if (rc != CK_OK && created)
        unlink(path);
    ck_mem__sfree(kf);
    return rc;
}

CK_EXPORT int ck_slot_remove(ck_store *st, ck_slot_type type)
{
    if (st == NULL)
        return CK_EINVAL;
    if (type != CK_SLOT_KEY_FILE && type != CK_SLOT_PASSPHRASE)
        return ck_err__set(st, CK_EINVAL, "unknown slot type");
    if (st->flags & CK_OPEN_RDONLY)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    slot_change c = {NULL, (int)type};
    int rc = apply_slot_change(st, &c);
    return rc == CK_OK ? ck_audit__key_event(st, "ckstore",
                                             type == CK_SLOT_KEY_FILE ? "key_file" : "passphrase",
                                             "removed")
                       : rc;
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

static uint64_t file_size(const char *dir, const char *name)
{
    struct stat sb;
    char *p = ck_mem__path_join(dir, name);
    uint64_t n = p != NULL && stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    ck_mem__free(p);
    return n;
}

unsigned char *ck_store__key_take(ck_store *st)
{
    unsigned char *k = NULL;
    pthread_mutex_lock(&st->keypool_lock);
    if (st->nkeypool > 0)
        k = st->keypool[--st->nkeypool];
    pthread_mutex_unlock(&st->keypool_lock);
    return k != NULL ? k : ck_mem__smalloc(CK_KEY_BYTES);
}

void ck_store__key_give(ck_store *st, unsigned char *k)
{
    if (k == NULL)
        return;
    sodium_memzero(k, CK_KEY_BYTES);
    pthread_mutex_lock(&st->keypool_lock);
    if (st->nkeypool < sizeof st->keypool / sizeof st->keypool[0]) {
        st->keypool[st->nkeypool++] = k;
        k = NULL;
    }
    pthread_mutex_unlock(&st->keypool_lock);
    ck_mem__sfree(k);
}

int64_t ck_store__now(const ck_store *st)
{
    if (st->clock != NULL)
        return st->clock(st->clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

CK_EXPORT int ck_stats_get(ck_stats *out, ck_store *st)
{
    int rc;
    MDB_txn *txn = NULL;
    ck_buf file = CK_BUF_INIT;
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    if (out->version != CK_STATS_VERSION)
        return ck_err__set(st, CK_EINVAL, "ck_stats version %u is not supported", out->version);
    ck_stats s = CK_STATS_INIT;
    s.format = st->format;
    memcpy(s.store_id, st->store_id, sizeof s.store_id);

    CK_GUARD(ck_env__read_begin(st, &st->data, &txn));
    MDB_stat ms;
    int mrc = mdb_stat(txn, st->dbi_subjects, &ms);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "mdb_stat"));
    s.subjects = ms.ms_entries;
    mrc = mdb_stat(txn, st->dbi_values, &ms);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "mdb_stat"));
    s.values = ms.ms_entries;
    MDB_envinfo info;
    mdb_env_info(st->data.env, &info);
    mdb_env_stat(st->data.env, &ms);
    s.map_bytes = info.me_mapsize;
    s.data_used_bytes = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    ck_env__read_end(&st->data, txn);
    txn = NULL;

    s.data_file_bytes = file_size(st->dir, CK_DATA_FILE);
    s.keyring_file_bytes = file_size(st->dir, CK_KEYRING_FILE);

    /* Slots as they are on disk now (another process may have changed
     * them since this one opened the store). */
    ck_slotfile sf;
    CK_GUARD(ck_keys__read_file(st, &file, st->dir));
    rc = ck_keys__parse(&sf, file.p, file.len);
    CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "the key-slot file is not valid"));
    for (unsigned i = 0; i < sf.nslots; i++) {
        s.slots |= 1u << sf.slots[i].type;
        if (sf.slots[i].type == CK_SLOT_PASSPHRASE) {
            s.kdf_opslimit = (uint32_t)sf.slots[i].opslimit;
            s.kdf_memlimit = sf.slots[i].memlimit;
        }
    }
    *out = s;
    rc = CK_OK;
cleanup:
    ck_env__read_end(&st->data, txn);
    ck_buf__free(&file);
    return rc;
}
