/*
 * backup.c - a consistent, compacted copy of a store while it is in use.
 *
 * Each LMDB environment is copied logically, database by database and
 * entry by entry, from a snapshot taken in a read transaction (writers go
 * on) into a new environment: no page of the store is copied, so neither
 * its free pages nor the unused part of its pages in use - where the bytes
 * of erased subjects linger until LMDB reuses the space - reach the copy. The key-slot
 * file and the audit segments are copied as they are (the log's tail may be
 * cut by a concurrent append: the next open of the copy repairs a torn
 * tail). Everything is fsync'ed; on failure the directory is removed.
 */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_file(ck_store *st, const char *from_dir, const char *to_dir, const char *name)
{
    char *src = ck_mem__path_join(from_dir, name), *dst = ck_mem__path_join(to_dir, name);
    int in = -1, out = -1, rc = CK_OK;
    uint8_t *buf = ck_mem__malloc(1 << 16);
    if (src == NULL || dst == NULL || buf == NULL) {
        rc = ck_err__set(st, CK_ENOMEM, "out of memory");
        goto cleanup;
    }
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        rc = ck_err__errno(st, errno, "cannot open for the backup", name);
        goto cleanup;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = ck_err__errno(st, errno, "cannot create in the backup", name);
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(in, buf, 1 << 16);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ck_err__errno(st, errno, "cannot read for the backup", name);
            break;
        }
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = ck_err__errno(st, errno, "cannot write the backup", name);
                break;
            }
            done += w;
        }
        if (rc != CK_OK)
            break;
    }
    if (rc == CK_OK && fsync(out) != 0)
        rc = ck_err__errno(st, errno, "cannot fsync the backup", name);
cleanup:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    ck_mem__free(buf);
    ck_mem__free(src);
    ck_mem__free(dst);
    return rc;
}

/* Copy every named database of `e`, entry by entry, in key order, into a
 * new environment file `name` of `to_dir`. A logical copy rather than
 * mdb_env_copy2: LMDB leaves the bytes of deleted entries in the unused
 * part of pages still in use, and a page copy (even compacting) would
 * carry them over; pages written afresh are zero-filled by LMDB. */
static int copy_dbs(ck_store *st, MDB_txn *rt, MDB_txn *wt)
{
    MDB_dbi main;
    MDB_cursor *mc = NULL, *dc = NULL;
    int mrc = mdb_dbi_open(rt, NULL, 0, &main);
    if (mrc == 0)
        mrc = mdb_cursor_open(rt, main, &mc);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot list the databases to back up");
    int rc = CK_OK;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(mc, &k, &v, MDB_FIRST); rc == CK_OK && mrc == 0;
         mrc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
        char name[64];
        if (k.mv_size == 0 || k.mv_size >= sizeof name || memchr(k.mv_data, 0, k.mv_size)) {
            rc = ck_err__set(st, CK_EFORMAT, "the store holds an unexpected database");
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        MDB_dbi sdbi, ddbi;
        unsigned flags = 0;
        int r = mdb_dbi_open(rt, name, 0, &sdbi);
        if (r == 0)
            r = mdb_dbi_flags(rt, sdbi, &flags);
        if (r == 0)
            r = mdb_dbi_open(wt, name, (flags & (MDB_DUPSORT | MDB_DUPFIXED)) | MDB_CREATE, &ddbi);
        if (r == 0)
            r = mdb_cursor_open(rt, sdbi, &dc);
        MDB_val dk, dv;
        unsigned put = (flags & MDB_DUPSORT) ? MDB_APPENDDUP : MDB_APPEND;
        for (int g = r == 0 ? mdb_cursor_get(dc, &dk, &dv, MDB_FIRST) : r; r == 0 && g == 0;
             g = mdb_cursor_get(dc, &dk, &dv, MDB_NEXT)) {
            r = mdb_put(wt, ddbi, &dk, &dv, put);
            if (r != 0)
                break;
        }
        if (dc != NULL) {
            mdb_cursor_close(dc);
            dc = NULL;
        }
        if (r != 0)
            rc = ck_err__mdb(st, r, "cannot copy a database for the backup");
    }
    mdb_cursor_close(mc);
    if (rc == CK_OK && mrc != MDB_NOTFOUND && mrc != 0)
        rc = ck_err__mdb(st, mrc, "cannot list the databases to back up");
    return rc;
}

static int copy_env(ck_store *st, ck_env *e, const char *to_dir, const char *name)
{
    char *dst = ck_mem__path_join(to_dir, name);
    char *lock = NULL;
    MDB_env *de = NULL;
    MDB_txn *rt = NULL, *wt = NULL;
    int rc, mrc;
    if (dst == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    MDB_envinfo info;
    mdb_env_info(e->env, &info);
    mrc = mdb_env_create(&de);
    if (mrc == 0)
        mrc = mdb_env_set_maxdbs(de, 16);
    if (mrc == 0)
        mrc = mdb_env_set_mapsize(de, info.me_mapsize);
    if (mrc == 0)
        mrc = mdb_env_open(de, dst, MDB_NOSUBDIR, 0600);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot create the backup's environment"));
    CK_GUARD(ck_env__read_begin(st, e, &rt));
    mrc = mdb_txn_begin(de, NULL, 0, &wt);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot write the backup"));
    CK_GUARD(copy_dbs(st, rt, wt));
    mrc = mdb_txn_commit(wt);
    wt = NULL;
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot commit the backup"));
    mrc = mdb_env_sync(de, 1);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot fsync the backup"));
    rc = CK_OK;
cleanup:
    if (wt != NULL)
        mdb_txn_abort(wt);
    ck_env__read_end(e, rt);
    if (de != NULL)
        mdb_env_close(de);
    /* The lock file is made again when the copy is opened. */
    lock = ck_mem__malloc(strlen(dst) + sizeof "-lock");
    if (lock != NULL) {
        snprintf(lock, strlen(dst) + sizeof "-lock", "%s-lock", dst);
        unlink(lock);
    }
    ck_mem__free(lock);
    ck_mem__free(dst);
    return rc;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = ck_mem__path_join(dir, e->d_name);
            if (p != NULL)
                unlink(p);
            ck_mem__free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Copy every audit segment of `from_dir` into `to_dir`. */
static int copy_audit(ck_store *st, const char *from_dir, const char *to_dir)
{
    DIR *d = opendir(from_dir);
    if (d == NULL)
        return ck_err__errno(st, errno, "cannot list the store", from_dir);
    struct dirent *de;
    int rc = CK_OK;
    while (rc == CK_OK && (de = readdir(d)) != NULL) {
        unsigned no;
        char tail;
        if (sscanf(de->d_name, "audit-%6u.lo%c", &no, &tail) == 2 && tail == 'g' &&
            strlen(de->d_name) == strlen("audit-000001.log"))
            rc = copy_file(st, from_dir, to_dir, de->d_name);
    }
    closedir(d);
    return rc;
}

CK_EXPORT int ck_backup(ck_store *st, const char *dir, const char *actor)
{
    if (st == NULL)
        return CK_EINVAL;
    if (dir == NULL || actor == NULL)
        return ck_err__set(st, CK_EINVAL, "a backup needs a directory and an actor");
    if (mkdir(dir, 0700) != 0)
        return ck_err__errno(st, errno, "cannot create the backup directory", dir);
    int rc;
    /* Audited first (strictly): the copy of the log then holds it too. */
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = "backup";
    CK_GUARD(ck_audit__append(st, &e, true, NULL, NULL));
    CK_GUARD(copy_file(st, st->dir, dir, CK_KEYS_FILE));
    CK_GUARD(copy_env(st, &st->data, dir, CK_DATA_FILE));
    CK_GUARD(copy_env(st, &st->keyring, dir, CK_KEYRING_FILE));
    CK_GUARD(copy_audit(st, st->dir, dir));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CK_ENSURE(dfd >= 0, ck_err__errno(st, errno, "cannot open the backup directory", dir));
    int frc = fsync(dfd);
    int ferr = errno;
    close(dfd);
    CK_ENSURE(frc == 0, ck_err__errno(st, ferr, "cannot fsync the backup directory", dir));
    rc = CK_OK;
cleanup:
    if (rc != CK_OK)
        remove_dir(dir);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Compaction                                                                */
/* ------------------------------------------------------------------------ */

static int replace_file(ck_store *st, const char *from, const char *to)
{
    char *a = ck_mem__path_join(st->dir, from), *b = ck_mem__path_join(st->dir, to);
    int rc = CK_OK;
    if (a == NULL || b == NULL)
        rc = ck_err__set(st, CK_ENOMEM, "out of memory");
    else if (rename(a, b) != 0)
        rc = ck_err__errno(st, errno, "cannot put the compacted file in place", to);
    ck_mem__free(a);
    ck_mem__free(b);
    return rc;
}

static void unlink_in(ck_store *st, const char *name)
{
    char *p = ck_mem__path_join(st->dir, name);
    if (p != NULL)
        unlink(p);
    ck_mem__free(p);
}

CK_EXPORT int ck_compact(ck_store *st, const char *actor)
{
    if (st == NULL)
        return CK_EINVAL;
    if (actor == NULL)
        return ck_err__set(st, CK_EINVAL, "a compaction needs an actor");
    if ((st->flags & CK_OPEN_RDONLY) != 0)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (st->lock_fd >= 0)
            while (flock(st->lock_fd, LOCK_SH) != 0 && errno == EINTR)
                ;
        return ck_err__set(st, CK_EBUSY,
                           "the store is open in another process: compaction needs it alone");
    }
    int rc;
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = "compact";
    CK_GUARD(ck_audit__append(st, &e, true, NULL, NULL));
    unlink_in(st, CK_DATA_FILE ".compact");
    unlink_in(st, CK_KEYRING_FILE ".compact");
    CK_GUARD(copy_env(st, &st->data, st->dir, CK_DATA_FILE ".compact"));
    CK_GUARD(copy_env(st, &st->keyring, st->dir, CK_KEYRING_FILE ".compact"));
    /* From here the handle's environments are closed and reopened on the
     * new files; a failure leaves the old files in place (a rename is
     * atomic) and the handle unusable: reopen the store. */
    ck_env__close(&st->data);
    ck_env__close(&st->keyring);
    rc = replace_file(st, CK_DATA_FILE ".compact", CK_DATA_FILE);
    if (rc == CK_OK)
        rc = replace_file(st, CK_KEYRING_FILE ".compact", CK_KEYRING_FILE);
    unlink_in(st, CK_DATA_FILE "-lock");
    unlink_in(st, CK_KEYRING_FILE "-lock");
    if (rc == CK_OK) {
        int dfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0)
            rc = ck_err__errno(st, errno, "cannot fsync the store directory", st->dir);
        if (dfd >= 0)
            close(dfd);
    }
    int rrc = ck_store__reopen_envs(st);
    if (rc == CK_OK)
        rc = rrc;
cleanup:
    unlink_in(st, CK_DATA_FILE ".compact");
    unlink_in(st, CK_KEYRING_FILE ".compact");
    while (flock(st->lock_fd, LOCK_SH) != 0 && errno == EINTR)
        ;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* For restore.c                                                             */
/* ------------------------------------------------------------------------ */

int ck_backup__copy_file(ck_store *st, const char *from_dir, const char *to_dir, const char *name)
{
    return copy_file(st, from_dir, to_dir, name);
}

int ck_backup__copy_env(ck_store *st, ck_env *e, const char *to_dir, const char *name)
{
    return copy_env(st, e, to_dir, name);
}

int ck_backup__copy_audit(ck_store *st, const char *from_dir, const char *to_dir)
{
    return copy_audit(st, from_dir, to_dir);
}

void ck_backup__remove_dir(const char *dir)
{
    remove_dir(dir);
}
