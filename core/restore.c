/*
 * restore.c - put a backup in place of a store, replaying tombstones so
 * that no subject erased after the backup comes back.
 *
 * In order (ck_restore in ckstore.h states the contract):
 *   1. the backup is opened read-only with the caller's key and its audit
 *      log verified;
 *   2. the target: nothing, an empty directory, or a store that must open
 *      with the same key, share the backup's root key (tags compare only
 *      under it) and be held by nobody else: its store lock is taken
 *      exclusively and kept to the end;
 *   3. the tombstones: the union of the backup's, the target's and the
 *      files given (each authenticated), one entry per tag with the latest
 *      erasure time;
 *   4. a new directory beside the target, "<target>.restore-XXXXXX": the
 *      key slots (the target's when it holds a store, so that a secret
 *      removed after the backup stays removed), both environments copied
 *      entry by entry, the audit segments, the target's checkpoint signing
 *      key;
 *   5. in that copy, not yet visible: the union is written into its
 *      tombstones, every subject is opened (its record must authenticate)
 *      and the ones the tombstones name are erased again as ck_erase does
 *      (reason "restore-replay"), the restore is audited, and when
 *      something was erased the copy is compacted so that no byte of those
 *      subjects remains in its files;
 *   6. the copy is closed and fsync'ed, then put in place: renameat2
 *      RENAME_EXCHANGE swaps it with the old store in one atomic step (a
 *      plain rename when the target is absent or an empty directory), the
 *      parent directory is fsync'ed, and the old store, now at the
 *      temporary name, is renamed "<target>.replaced-XXXXXX" and kept.
 * A crash before the exchange leaves the old store whole at the target
 * (and a partial copy beside it); after, the new one. The old store is
 * never deleted: it holds what was written after the backup, its audit
 * entries included.
 */
#include "audit.h"
#include "tomb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STAGING_TAG ".restore-"
#define KEPT_TAG    ".replaced-"
#define SUFFIX_LEN  6 /* mkdtemp's XXXXXX */

/* Why a subject is erased again (counted in the result). */
enum { BY_ID = 0, BY_REF, BY_VALUE, BY_UNFINISHED };

typedef struct replay {
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    uint8_t why;
} replay;

typedef struct rs {
    const char *backup;
    const ck_options *opts;
    const ck_restore_options *ro;
    ck_restore_result res;
    char *dir;     /* the target, without trailing '/' */
    char *staging; /* the new store while it is made */
    char *kept;    /* where the old store went */
    bool target_exists, target_store, swapped;
    ck_store *b, *t, *n; /* backup, target, new */
    ck_tombset tombs;
    replay *rp;
    size_t nrp, caprp;
} rs;

/* Put `st`'s detail message (ck_strerror(rc) when it has none, or st is
 * NULL) in the caller's errbuf, prefixed with `what` if not NULL. Returns
 * rc. */
static int note(rs *r, ck_store *st, int rc, const char *what)
{
    const ck_options *o = r->opts;
    if (o->errbuf == NULL || o->errbuf_max == 0)
        return rc;
    const char *m = st != NULL ? ck_err__get(st) : "";
    if (m[0] == '\0')
        m = ck_strerror(rc);
    if (what != NULL)
        snprintf(o->errbuf, o->errbuf_max, "%s: %s", what, m);
    else
        snprintf(o->errbuf, o->errbuf_max, "%s", m);
    return rc;
}

static int note_text(rs *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int note_text(rs *r, int rc, const char *fmt, ...)
{
    const ck_options *o = r->opts;
    if (o->errbuf != NULL && o->errbuf_max > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(o->errbuf, o->errbuf_max, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = ck_mem__malloc(la + lb + 1);
    if (p != NULL) {
        memcpy(p, a, la);
        memcpy(p + la, b, lb + 1);
    }
    return p;
}

static int fsync_dir(const char *dir)
{
    if (ck_fault__hit("fsync")) {
        errno = EIO;
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

/* The directory that holds `path`. */
static char *parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return ck_mem__strndup(".", 1);
    return ck_mem__strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

static bool exists_in(const char *dir, const char *name)
{
    char *p = ck_mem__path_join(dir, name);
    bool yes = p != NULL && access(p, F_OK) == 0;
    ck_mem__free(p);
    return yes;
}

/* ------------------------------------------------------------------------ */
/* 2. The target                                                             */
/* ------------------------------------------------------------------------ */

static int dir_is_empty(rs *r, bool *empty)
{
    DIR *d = opendir(r->dir);
    if (d == NULL)
        return note_text(r, CK_EIO, "cannot list %s: %s", r->dir, strerror(errno));
    struct dirent *e;
    *empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            *empty = false;
    closedir(d);
    return CK_OK;
}

static int open_target(rs *r)
{
    struct stat sb;
    if (lstat(r->dir, &sb) != 0) {
        if (errno != ENOENT)
            return note_text(r, CK_EIO, "cannot stat %s: %s", r->dir, strerror(errno));
        return CK_OK; /* nothing there: the restore makes it */
    }
    r->target_exists = true;
    /* The exchange would move the link, not the store it points to. */
    if (S_ISLNK(sb.st_mode))
        return note_text(r, CK_EINVAL, "%s is a symbolic link: give the directory it points to",
                         r->dir);
    if (!S_ISDIR(sb.st_mode))
        return note_text(r, CK_EEXIST, "%s exists and is not a directory", r->dir);
    if (!exists_in(r->dir, CK_KEYS_FILE) && !exists_in(r->dir, CK_DATA_FILE)) {
        bool empty = false;
        CK_TRY(dir_is_empty(r, &empty));
        if (!empty)
            return note_text(r, CK_EEXIST,
                             "%s is not empty and holds no store: give an empty or new directory",
                             r->dir);
        return CK_OK;
    }
    r->target_store = true;
    char err[CK_ERRMSG_MAX] = "";
    ck_options o = *r->opts;
    o.flags = r->opts->flags & CK_OPEN_NOSYNC;
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    /* Ours alone (every handle holds the store lock shared), and kept so
     * until the end. */
    int rc = ck_store__open_ex(&r->t, r->dir, &o, NULL, true);
    if (rc == CK_EBUSY)
        return note_text(r, CK_EBUSY,
                         "the store in %s is open elsewhere (another process or handle): a "
                         "restore needs it alone",
                         r->dir);
    if (rc != CK_OK)
        return note_text(r, rc,
                         "the store in %s does not open (%s): its tombstones cannot be merged. "
                         "If it is damaged, move it away and restore into an empty directory "
                         "with --tombstones FILE exported from it earlier",
                         r->dir, err[0] != '\0' ? err : ck_strerror(rc));
    ck_store *t = r->t;
    if (sodium_memcmp(t->store_id, r->b->store_id, CK_STORE_ID_BYTES) != 0 ||
        sodium_memcmp(t->keys->root, r->b->keys->root, CK_KEY_BYTES) != 0)
        return note_text(r, CK_EEXIST,
                         "%s holds another store than the backup's (another root key): its "
                         "tombstones cannot be compared; move it away first",
                         r->dir);
    r->res.target_audit_seq = ck_audit__head_seq(t);
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* 3. The tombstones                                                         */
/* ------------------------------------------------------------------------ */

static int gather_tombstones(rs *r)
{
    int rc = ck_tombset__load(&r->tombs, r->b, &r->res.tombstones_backup);
    if (rc != CK_OK)
        return note(r, r->b, rc, "the backup's tombstones");
    if (r->t != NULL) {
        rc = ck_tombset__load(&r->tombs, r->t, &r->res.tombstones_target);
        if (rc != CK_OK)
            return note(r, r->t, rc, "the target's tombstones");
    }
    for (size_t i = 0; i < r->ro->n_tombstone_files; i++) {
        uint64_t n = 0;
        const char *path = r->ro->tombstone_files[i];
        if (path == NULL)
            return note_text(r, CK_EINVAL, "tombstone file %zu is NULL", i);
        rc = ck_tombfile__read(r->b, &r->tombs, path, &n);
        if (rc != CK_OK)
            return note(r, r->b, rc, NULL);
        r->res.tombstones_files += n;
    }
    ck_tombset__seal(&r->tombs);
    r->res.tombstones = r->tombs.n;
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* 4. The copy                                                               */
/* ------------------------------------------------------------------------ */

static int make_copy(rs *r)
{
    ck_store *b = r->b;
    int rc;
    r->staging = concat(r->dir, STAGING_TAG "XXXXXX");
    if (r->staging == NULL)
        return note_text(r, CK_ENOMEM, "out of memory");
    bool made = ck_fault__hit("mkdir") ? (errno = EIO, false) : mkdtemp(r->staging) != NULL;
    if (!made) {
        int err = errno;
        ck_mem__free(r->staging);
        r->staging = NULL;
        return note_text(r, err == ENOENT ? CK_ENOTFOUND : CK_EIO,
                         "cannot create the restore's directory beside %s: %s", r->dir,
                         strerror(err));
    }
    /* The target's key slots when it holds a store (same root key, its
     * current secrets); the backup's otherwise. */
    rc = ck_backup__copy_file(b, r->target_store ? r->dir : r->backup, r->staging, CK_KEYS_FILE);
    if (rc == CK_OK)
        rc = ck_backup__copy_env(b, &b->data, r->staging, CK_DATA_FILE);
    if (rc == CK_OK)
        rc = ck_backup__copy_env(b, &b->keyring, r->staging, CK_KEYRING_FILE);
    if (rc == CK_OK)
        rc = ck_backup__copy_audit(b, r->backup, r->staging);
    if (rc == CK_OK && r->target_store && exists_in(r->dir, "audit-signing.key"))
        rc = ck_backup__copy_file(b, r->dir, r->staging, "audit-signing.key");
    if (rc != CK_OK)
        return note(r, b, rc, "copying the backup");
    char err[CK_ERRMSG_MAX] = "";
    ck_options o = *r->opts;
    o.flags = r->opts->flags & CK_OPEN_NOSYNC;
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    rc = ck_store__open_ex(&r->n, r->staging, &o, b, true);
    if (rc != CK_OK)
        return note_text(r, rc, "opening the copy: %s", err[0] != '\0' ? err : ck_strerror(rc));
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* 5. The replay                                                             */
/* ------------------------------------------------------------------------ */

static int add_replay(rs *r, const uint8_t sid[CK_SUBJECT_ID_BYTES], uint8_t why)
{
    if (r->nrp == r->caprp) {
        size_t cap = r->caprp ? r->caprp * 2 : 16, bytes;
        if (ck_mul_overflows(cap, sizeof *r->rp, &bytes))
            return ck_err__set(r->n, CK_ELIMIT, "too many subjects to erase again");
        replay *p = ck_mem__realloc(r->rp, bytes);
        if (p == NULL)
            return ck_err__set(r->n, CK_ENOMEM, "out of memory");
        r->rp = p;
        r->caprp = cap;
    }
    memcpy(r->rp[r->nrp].sid, sid, CK_SUBJECT_ID_BYTES);
    r->rp[r->nrp].why = why;
    r->nrp++;
    return CK_OK;
}

/* A tombstone names `s` by this entry's tag, and `s` existed when that
 * erasure was made (a subject made later - a customer re-created with a
 * fresh consent - is someone new). */
static bool tag_names(const rs *r, const ck_subj *s, const uint8_t *tag)
{
    const ck_tomb *t = ck_tombset__find(&r->tombs, tag);
    return t != NULL && s->created <= t->at;
}

/* Which tombstone, if any, names subject `s`: its id's, exactly; else its
 * ref's; else, for a subject without a ref only, an identifying value's (a
 * value may be shared - a family e-mail address - and every erasure of a
 * subject with a ref left that ref's tag). Returns -1 for none. */
static int why_replay(const rs *r, const ck_subj *s)
{
    uint8_t tag[CK_TOMB_BYTES];
    ck_subject__tomb_tag_sid(tag, r->n, s->sid);
    if (ck_tombset__find(&r->tombs, tag) != NULL)
        return BY_ID;
    bool has_ref = false, by_value = false;
    for (uint32_t i = 0; i < s->nix; i++) {
        const uint8_t *e = s->ix[i];
        if (e[0] == CK_INDEX_REF) {
            has_ref = true;
            if (tag_names(r, s, e + CK_INDEX_KEY_BYTES))
                return BY_REF;
        } else if (e[0] == CK_INDEX_FIELD && tag_names(r, s, e + CK_INDEX_KEY_BYTES)) {
            by_value = true;
        }
    }
    return !has_ref && by_value ? BY_VALUE : -1;
}

/* Open every subject of the copy; list the ones to erase again. */
static int scan(rs *r)
{
    ck_store *n = r->n;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    ck_wctx w;
    bool wmade = false;
    int rc;
    CK_GUARD(ck_env__read_begin(n, &n->data, &txn));
    CK_GUARD(ck_wctx__init(&w, n, txn, NULL));
    wmade = true;
    int mrc = mdb_cursor_open(txn, n->dbi_subjects, &cur);
    CK_ENSURE(mrc == 0, ck_err__mdb(n, mrc, "cannot read the subjects"));
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        CK_ENSURE(k.mv_size == CK_SUBJECT_ID_BYTES,
                  ck_err__set(n, CK_EINTEGRITY, "a subject key of the backup is malformed"));
        uint8_t sid[CK_SUBJECT_ID_BYTES];
        memcpy(sid, k.mv_data, sizeof sid);
        r->res.subjects++;
        ck_subj s;
        rc = ck_subject__open(&w, &s, sid);
        if (rc == CK_ENOTFOUND) {
            /* Records without a data key: an erasure cut between its two
             * commits. Nothing can decrypt them; erasing again finishes. */
            rc = add_replay(r, sid, BY_UNFINISHED);
        } else if (rc == CK_OK) {
            int why = why_replay(r, &s);
            if (why >= 0)
                rc = add_replay(r, sid, (uint8_t)why);
        }
        ck_subj__fini(&s);
        ck_arena__reset(&w.arena);
        CK_GUARD(rc);
    }
    CK_ENSURE(mrc == MDB_NOTFOUND, ck_err__mdb(n, mrc, "cannot read the subjects"));
    rc = CK_OK;
cleanup:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (wmade)
        ck_wctx__fini(&w);
    ck_env__read_end(&n->data, txn);
    return rc;
}

static int replay_all(rs *r)
{
    ck_store *n = r->n;
    int rc;
    uint64_t *by[] = {&r->res.replayed_by_id, &r->res.replayed_by_ref, &r->res.replayed_by_value,
                      &r->res.replayed_unfinished};
    rc = ck_tombset__store(n, &r->tombs);
    if (rc != CK_OK)
        return note(r, n, rc, "writing the tombstones into the copy");
    rc = scan(r);
    if (rc != CK_OK)
        return note(r, n, rc, "reading the backup's subjects");
    for (size_t i = 0; i < r->nrp; i++) {
        rc = ck_erase__replay(n, r->rp[i].sid, r->ro->actor);
        if (rc != CK_OK)
            return note(r, n, rc, "erasing a subject again");
        r->res.replayed++;
        (*by[r->rp[i].why])++;
    }
    /* Audited in the restored log, before it is put in place. */
    ck_audit_detail_item d[] = {{"subjects", NULL, (int64_t)r->res.subjects},
                                {"replayed", NULL, (int64_t)r->res.replayed},
                                {"tombstones", NULL, (int64_t)r->res.tombstones},
                                {"tombstone_files", NULL, (int64_t)r->ro->n_tombstone_files},
                                {"backup_seq", NULL, (int64_t)r->res.backup_audit_seq},
                                {"replaced_seq", NULL, (int64_t)r->res.target_audit_seq}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = r->ro->actor;
    e.action = "restore";
    e.detail = d;
    e.n_detail = CK_ARRAY_LEN(d);
    rc = ck_audit__append(n, &e, true, &r->res.audit_seq, NULL);
    if (rc != CK_OK)
        return note(r, n, rc, "auditing the restore");
    /* The erased subjects' bytes are in free pages of the copy: rewrite
     * it, so that none of them reaches the target. */
    if (r->res.replayed > 0) {
        rc = ck_compact(n, r->ro->actor);
        if (rc != CK_OK)
            return note(r, n, rc, "compacting the copy");
    }
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* 6. In place                                                               */
/* ------------------------------------------------------------------------ */

static int put_in_place(rs *r)
{
    ck_close(r->n);
    r->n = NULL;
    /* LMDB's lock files of the closed copy: remade at the next open. */
    static const char *const locks[] = {CK_DATA_FILE "-lock", CK_KEYRING_FILE "-lock"};
    for (size_t i = 0; i < CK_ARRAY_LEN(locks); i++) {
        char *p = ck_mem__path_join(r->staging, locks[i]);
        if (p != NULL)
            unlink(p);
        ck_mem__free(p);
    }
    if (fsync_dir(r->staging) != 0)
        return note_text(r, CK_EIO, "cannot fsync %s: %s", r->staging, strerror(errno));
    /* Every allocation comes before the exchange, so that after it the
     * caller always learns where the old store is. */
    int rc;
    char *parent = parent_of(r->dir);
    char *name = r->target_store ? concat(r->dir, KEPT_TAG "XXXXXX") : NULL;
    if (name != NULL)
        r->res.kept = ck_out__alloc(strlen(name) + 1);
    if (parent == NULL || (r->target_store && (name == NULL || r->res.kept == NULL))) {
        rc = note_text(r, CK_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (name != NULL) {
        size_t nl = strlen(name), sl = strlen(r->staging);
        memcpy(name + nl - SUFFIX_LEN, r->staging + sl - SUFFIX_LEN, SUFFIX_LEN);
    }
    int xrc;
    if (ck_fault__hit("rename")) {
        errno = EIO;
        xrc = -1;
    } else if (r->target_store) {
        /* One atomic step: the old store to the temporary name, the new
         * one to the target. */
        xrc = renameat2(AT_FDCWD, r->staging, AT_FDCWD, r->dir, RENAME_EXCHANGE);
    } else {
        xrc = rename(r->staging, r->dir); /* absent, or an empty directory */
    }
    if (xrc != 0) {
        int err = errno;
        if (r->target_store && (err == EINVAL || err == ENOSYS))
            rc = note_text(r, CK_EIO,
                           "the file system of %s cannot exchange two directories atomically "
                           "(renameat2 RENAME_EXCHANGE): nothing was changed",
                           r->dir);
        else
            rc = note_text(r, err == ENOTEMPTY || err == EEXIST ? CK_EEXIST : CK_EIO,
                           "cannot put the restored store in place at %s: %s", r->dir,
                           strerror(err));
        goto cleanup;
    }
    r->swapped = true;
    if (r->target_store) {
        /* The temporary name now holds the old store (shorter than `name`). */
        memcpy(r->res.kept, r->staging, strlen(r->staging) + 1);
        r->kept = r->staging;
    } else {
        ck_mem__free(r->staging);
    }
    r->staging = NULL;
    if (fsync_dir(parent) != 0) {
        int err = errno;
        rc = note_text(r, CK_EIO,
                       "the restored store is in place at %s, but its directory could not be "
                       "fsync'ed (%s): a crash may still bring the old one back",
                       r->dir, strerror(err));
        goto cleanup;
    }
    if (r->kept != NULL && name != NULL && !ck_fault__hit("rename") && rename(r->kept, name) == 0) {
        memcpy(r->res.kept, name, strlen(name) + 1);
        fsync_dir(parent); /* a lost rename only leaves the old store at the first name */
    }
    rc = CK_OK;
cleanup:
    if (!r->swapped) {
        ck_free(r->res.kept);
        r->res.kept = NULL;
    }
    ck_mem__free(name);
    ck_mem__free(parent);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* ck_restore                                                                */
/* ------------------------------------------------------------------------ */

static int check_args(rs *r, const ck_restore_result *out, const char *dir, const char *backup)
{
    const ck_restore_options *ro = r->ro;
    const ck_options *o = r->opts;
    if (out != NULL && out->version != CK_RESTORE_RESULT_VERSION)
        return note_text(r, CK_EINVAL, "ck_restore_result version %u is not supported",
                         out->version);
    if (ro == NULL || ro->version != CK_RESTORE_OPTIONS_VERSION)
        return note_text(r, CK_EINVAL, "ck_restore_options missing or of an unknown version");
    if (ro->actor == NULL)
        return note_text(r, CK_EINVAL, "a restore needs an actor");
    if (ro->n_tombstone_files > 0 && ro->tombstone_files == NULL)
        return note_text(r, CK_EINVAL, "tombstone files counted but not given");
    if ((o->flags & ~(unsigned)CK_OPEN_NOSYNC) != 0)
        return note_text(r, CK_EINVAL, "a restore takes no flag but CK_OPEN_NOSYNC");
    if (dir == NULL || backup == NULL || dir[0] == '\0' || backup[0] == '\0')
        return note_text(r, CK_EINVAL, "a restore needs a target and a backup directory");
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 1 && dir[0] == '/')
        return note_text(r, CK_EINVAL, "the target cannot be /");
    r->dir = ck_mem__strndup(dir, n);
    if (r->dir == NULL)
        return note_text(r, CK_ENOMEM, "out of memory");
    /* Restoring a store onto itself would only find it busy: say why. */
    char *a = realpath(r->dir, NULL), *b = realpath(backup, NULL);
    bool same = a != NULL && b != NULL && strcmp(a, b) == 0;
    free(a);
    free(b);
    if (same)
        return note_text(r, CK_EINVAL, "the backup directory is the target itself");
    return CK_OK;
}

CK_EXPORT int ck_restore(ck_restore_result *out, const char *dir, const char *backup_dir,
                         const ck_options *opts, const ck_restore_options *ro)
{
    if (opts == NULL || opts->version != CK_OPTIONS_VERSION)
        return CK_EINVAL;
    if (opts->errbuf != NULL && opts->errbuf_max > 0)
        opts->errbuf[0] = '\0';
    rs r;
    memset(&r, 0, sizeof r);
    r.backup = backup_dir;
    r.opts = opts;
    r.ro = ro;
    r.tombs = (ck_tombset)CK_TOMBSET_INIT;
    r.res.version = CK_RESTORE_RESULT_VERSION;
    if (out != NULL && out->version == CK_RESTORE_RESULT_VERSION)
        *out = r.res;
    int rc;
    CK_GUARD(check_args(&r, out, dir, backup_dir));

    /* 1. The backup: read-only, with the caller's key; its log verifies. */
    char err[CK_ERRMSG_MAX] = "";
    ck_options bo = *opts;
    bo.flags = CK_OPEN_RDONLY;
    bo.errbuf = err;
    bo.errbuf_max = sizeof err;
    rc = ck_open(&r.b, backup_dir, &bo);
    CK_ENSURE(rc == CK_OK, note_text(&r, rc, "the backup in %s: %s", backup_dir,
                                     err[0] != '\0' ? err : ck_strerror(rc)));
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    rc = ck_audit_verify(&vr, r.b, NULL);
    CK_ENSURE(rc == CK_OK, note(&r, r.b, rc, "the backup's audit log does not verify"));
    r.res.backup_audit_seq = vr.head_seq;

    CK_GUARD(open_target(&r));       /* 2 */
    CK_GUARD(gather_tombstones(&r)); /* 3 */
    CK_GUARD(make_copy(&r));         /* 4 */
    CK_GUARD(replay_all(&r));        /* 5 */
    CK_GUARD(put_in_place(&r));      /* 6 */
    rc = CK_OK;
cleanup:
    ck_close(r.n);
    if (!r.swapped && r.staging != NULL)
        ck_backup__remove_dir(r.staging);
    ck_close(r.t); /* releases the store lock */
    ck_close(r.b);
    if (out != NULL && out->version == CK_RESTORE_RESULT_VERSION && (rc == CK_OK || r.swapped))
        *out = r.res;
    else
        ck_free(r.res.kept);
    ck_tombset__free(&r.tombs);
    ck_mem__free(r.rp);
    ck_mem__free(r.staging);
    ck_mem__free(r.kept);
    ck_mem__free(r.dir);
    return rc;
}
