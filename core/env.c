/*
 * env.c - LMDB environments: opening, transactions, and the map that grows.
 *
 * LMDB maps the whole database file and refuses writes past the map size
 * with MDB_MAP_FULL. The map can only be enlarged while this process has no
 * transaction open, and a transaction that hit MDB_MAP_FULL is dead. So a
 * write is a function that can be run again: ck_env__write runs it, and on
 * MDB_MAP_FULL aborts, takes the resize lock exclusively (waiting for this
 * process's readers to finish), doubles the map and runs it again. When
 * another process grew the map, LMDB says MDB_MAP_RESIZED at the next
 * transaction; we adopt the new size the same way.
 */
#include "store.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MAP      (64u << 20)
#define MAX_DBS          16
#define MAX_GROW_RETRIES 32
/* Double the map until this size, then grow by this much each time. */
#define GROW_STEP_MAX ((size_t)4 << 30)

int ck_env__open(ck_store *st, ck_env *e, const char *path, const char *name, size_t map_size,
                 unsigned ck_flags)
{
    int rc, mrc;
    memset(e, 0, sizeof *e);
    e->name = name;
    e->rdonly = (ck_flags & CK_OPEN_RDONLY) != 0;
    if (pthread_rwlock_init(&e->resize, NULL) != 0)
        return ck_err__set(st, CK_ENOMEM, "cannot create lock");
    e->resize_made = true;

    mrc = mdb_env_create(&e->env);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot create LMDB environment"));
    mrc = mdb_env_set_maxdbs(e->env, MAX_DBS);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "mdb_env_set_maxdbs"));
    /* The size only matters when creating: an existing file keeps its own
     * (LMDB takes the larger of the two). */
    mrc = mdb_env_set_mapsize(e->env, map_size != 0 ? map_size : DEFAULT_MAP);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "mdb_env_set_mapsize"));

    /* MDB_NOTLS: read transactions are not tied to a thread, so one handle
     * can serve a thread pool and a cursor may be drained by another thread.
     * MDB_NOSUBDIR: our files are named, the directory holds several. */
    unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
    if (ck_flags & CK_OPEN_NOSYNC)
        flags |= MDB_NOSYNC;
    if (e->rdonly)
        flags |= MDB_RDONLY;
    mrc = mdb_env_open(e->env, path, flags, 0600);
    if (mrc == ENOENT) {
        rc = ck_err__set(st, CK_ENOTFOUND, "the %s file of the store is missing", name);
        goto cleanup;
    }
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, name));

    /* Clear the reader slots of processes that died holding a read
     * transaction: they would pin old pages and make the file grow. */
    int dead = 0;
    mdb_reader_check(e->env, &dead);
    rc = CK_OK;
cleanup:
    if (rc != CK_OK)
        ck_env__close(e);
    return rc;
}

void ck_env__close(ck_env *e)
{
    if (e->env != NULL)
        mdb_env_close(e->env);
    if (e->resize_made)
        pthread_rwlock_destroy(&e->resize);
    memset(e, 0, sizeof *e);
}

/* Grow the map (or adopt the size another process set, when `adopt`). The
 * caller holds no transaction and not the resize lock. */
static int grow(ck_store *st, ck_env *e, bool adopt)
{
    int rc = CK_OK;
    pthread_rwlock_wrlock(&e->resize);
    if (adopt) {
        int mrc = mdb_env_set_mapsize(e->env, 0);
        if (mrc != 0)
            rc = ck_err__mdb(st, mrc, "cannot adopt the new map size");
    } else {
        MDB_envinfo info;
        mdb_env_info(e->env, &info);
        size_t cur = info.me_mapsize, next;
        size_t step = cur < GROW_STEP_MAX ? cur : GROW_STEP_MAX;
        if (ck_add_overflows(cur, step, &next)) {
            rc = ck_err__set(st, CK_ENOSPC, "the %s map cannot grow further", e->name);
        } else {
            int mrc = mdb_env_set_mapsize(e->env, next);
            if (mrc != 0)
                rc = ck_err__mdb(st, mrc, "cannot grow the map");
        }
    }
    pthread_rwlock_unlock(&e->resize);
    return rc;
}

int ck_env__reserve(ck_store *st, ck_env *e, size_t bytes)
{
    if (e->rdonly)
        return CK_OK;
    pthread_rwlock_wrlock(&e->resize);
    int rc = CK_OK;
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(e->env, &info);
    mdb_env_stat(e->env, &ms);
    size_t used = ((size_t)info.me_last_pgno + 1) * ms.ms_psize;
    size_t want;
    if (ck_add_overflows(used, bytes, &want))
        want = SIZE_MAX;
    if (want > info.me_mapsize) {
        size_t next = info.me_mapsize;
        while (next < want) {
            size_t step = next < GROW_STEP_MAX ? next : GROW_STEP_MAX;
            if (ck_add_overflows(next, step, &next)) {
                next = want;
                break;
            }
        }
        int mrc = mdb_env_set_mapsize(e->env, next);
        if (mrc != 0)
            rc = ck_err__mdb(st, mrc, "cannot grow the map");
    }
    pthread_rwlock_unlock(&e->resize);
    return rc;
}

int ck_env__write(ck_store *st, ck_env *e, ck_txn_fn fn, void *ctx)
{
    if (e->rdonly)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    for (int attempt = 0; attempt < MAX_GROW_RETRIES; attempt++) {
        MDB_txn *txn = NULL;
        pthread_rwlock_rdlock(&e->resize);
        int mrc = ck_fault__hit("mdb_txn_begin") ? EIO : mdb_txn_begin(e->env, NULL, 0, &txn);
        if (mrc == MDB_MAP_RESIZED) {
            pthread_rwlock_unlock(&e->resize);
            CK_TRY(grow(st, e, true));
            continue;
        }
        if (mrc != 0) {
            pthread_rwlock_unlock(&e->resize);
            return ck_err__mdb(st, mrc, "cannot begin a write transaction");
        }
        int rc = fn(st, txn, ctx);
        if (rc == CK_OK) {
            if (ck_fault__hit("mdb_txn_commit")) {
                /* A failed commit frees the transaction (and releases the
                 * writer mutex); the injected failure must do the same. */
                mdb_txn_abort(txn);
                mrc = EIO;
            } else {
                mrc = mdb_txn_commit(txn);
            }
            txn = NULL; /* commit frees the transaction, even on failure */
            if (mrc != 0)
                rc = ck_err__mdb(st, mrc, "cannot commit");
        }
        if (txn != NULL)
            mdb_txn_abort(txn);
        pthread_rwlock_unlock(&e->resize);
        if (rc == CK__MAPFULL) {
            CK_TRY(grow(st, e, false));
            continue;
        }
        return rc;
    }
    return ck_err__set(st, CK_ENOSPC, "the %s map kept filling up", e->name);
}

int ck_env__read_begin(ck_store *st, ck_env *e, MDB_txn **out)
{
    *out = NULL;
    for (int attempt = 0; attempt < MAX_GROW_RETRIES; attempt++) {
        pthread_rwlock_rdlock(&e->resize);
        int mrc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, out);
        if (mrc == 0)
            return CK_OK; /* the lock is held until ck_env__read_end */
        pthread_rwlock_unlock(&e->resize);
        *out = NULL;
        if (mrc != MDB_MAP_RESIZED)
            return ck_err__mdb(st, mrc, "cannot begin a read transaction");
        CK_TRY(grow(st, e, true));
    }
    return ck_err__set(st, CK_EBUSY, "the %s map keeps being resized", e->name);
}

void ck_env__read_end(ck_env *e, MDB_txn *txn)
{
    if (txn == NULL)
        return;
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&e->resize);
}

void ck_env__read_commit(ck_env *e, MDB_txn *txn)
{
    if (txn == NULL)
        return;
    mdb_txn_commit(txn);
    pthread_rwlock_unlock(&e->resize);
}

int ck_env__dbi(ck_store *st, MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *out)
{
    int mrc = mdb_dbi_open(txn, name, flags, out);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_EFORMAT, "the store has no %s database", name);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, name);
    return CK_OK;
}
