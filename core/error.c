/*
 * error.c - status code texts and per-thread detail messages.
 *
 * A handle may be shared by several threads, so "the last error" is kept
 * per (store, thread): a pthread key per store maps the calling thread to
 * its own message slot. Slots are chained in the store and freed at close,
 * so a thread that exits does not need a destructor that could race with
 * ck_close.
 */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct ck_errslot {
    ck_errslot *next;
    char msg[CK_ERRMSG_MAX];
};

CK_EXPORT const char *ck_strerror(int rc)
{
    switch (rc) {
    case CK_OK:
        return "success";
    case CK_ENOTFOUND:
        return "not found";
    case CK_EKEY:
        return "wrong key, or unsafe or unusable key file";
    case CK_EINTEGRITY:
        return "integrity check failed (tampering or corruption)";
    case CK_EINVAL:
        return "invalid argument or input";
    case CK_EDENIED:
        return "access denied";
    case CK_EIO:
        return "input/output error";
    case CK_ENOMEM:
        return "out of memory";
    case CK_EFORMAT:
        return "unexpected file or record format";
    case CK_EEXIST:
        return "already exists";
    case CK_EBUSY:
        return "store busy";
    case CK_ENOSPC:
        return "no space left";
    case CK_EVERSION:
        return "store written by a newer version of ckstore";
    case CK_ELIMIT:
        return "size limit exceeded";
    case CK_EINTERNAL:
        return "internal error";
    case CK_EAMBIGUOUS:
        return "several subjects match";
    default:
        return "unknown error";
    }
}

const char *ck_shown(char out[CK_SHOWN_MAX], const char *name)
{
    size_t i = 0;
    for (; name != NULL && name[i] != '\0' && i < 48; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? '?' : (char)c;
    }
    /* Do not cut a UTF-8 sequence in the middle. */
    if (name != NULL && name[i] != '\0') {
        while (i > 0 && ((unsigned char)out[i] & 0xc0) == 0x80)
            i--;
        memcpy(out + i, "...", 4);
    } else {
        out[i] = '\0';
    }
    return out;
}

CK_EXPORT const char *ck_version(void)
{
    return CK_VERSION_STRING;
}

int ck_errors__init(ck_errors *e)
{
    memset(e, 0, sizeof *e);
    if (pthread_mutex_init(&e->lock, NULL) != 0)
        return CK_ENOMEM;
    if (pthread_key_create(&e->key, NULL) != 0) {
        pthread_mutex_destroy(&e->lock);
        return CK_ENOMEM;
    }
    e->key_made = true;
    e->fallback = ck_mem__calloc(1, sizeof *e->fallback);
    if (e->fallback == NULL) {
        ck_errors__fini(e);
        return CK_ENOMEM;
    }
    return CK_OK;
}

void ck_errors__fini(ck_errors *e)
{
    if (!e->key_made)
        return;
    pthread_key_delete(e->key);
    for (ck_errslot *s = e->slots, *next; s != NULL; s = next) {
        next = s->next;
        ck_mem__free(s);
    }
    ck_mem__free(e->fallback);
    pthread_mutex_destroy(&e->lock);
    memset(e, 0, sizeof *e);
}

/* The calling thread's slot, made on first use. If it cannot be made, the
 * shared fallback slot is used: a message may then be another thread's, but
 * a failure to report never hides the status code itself. */
static ck_errslot *slot_for_thread(ck_errors *e)
{
    ck_errslot *s = pthread_getspecific(e->key);
    if (s != NULL)
        return s;
    s = ck_mem__calloc(1, sizeof *s);
    if (s == NULL)
        return e->fallback;
    if (pthread_setspecific(e->key, s) != 0) {
        ck_mem__free(s);
        return e->fallback;
    }
    pthread_mutex_lock(&e->lock);
    s->next = e->slots;
    e->slots = s;
    pthread_mutex_unlock(&e->lock);
    return s;
}

int(ck_err__set)(ck_store *st, int rc, const char *fmt, ...)
{
    if (st == NULL || !st->errors.key_made)
        return rc;
    ck_errslot *s = slot_for_thread(&st->errors);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
    return rc;
}

const char *ck_err__get(ck_store *st)
{
    if (st == NULL || !st->errors.key_made)
        return "";
    ck_errslot *s = pthread_getspecific(st->errors.key);
    return s != NULL ? s->msg : "";
}

CK_EXPORT const char *ck_errmsg(ck_store *st)
{
    return ck_err__get(st);
}

int(ck_err__mdb)(ck_store *st, int mdb_rc, const char *what)
{
    int rc;
    switch (mdb_rc) {
    case MDB_NOTFOUND:
        rc = CK_ENOTFOUND;
        break;
    case MDB_MAP_FULL:
        rc = CK__MAPFULL;
        break;
    case ENOSPC:
        rc = CK_ENOSPC;
        break;
    case ENOMEM:
        rc = CK_ENOMEM;
        break;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        rc = CK_EINTEGRITY;
        break;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        rc = CK_EFORMAT;
        break;
    case EACCES:
    case EPERM:
        rc = CK_EDENIED;
        break;
    case MDB_READERS_FULL:
    case EAGAIN:
    case EBUSY:
        rc = CK_EBUSY;
        break;
    default:
        rc = CK_EIO;
        break;
    }
    return ck_err__set(st, rc, "%s: %s", what, mdb_strerror(mdb_rc));
}

int(ck_err__errno)(ck_store *st, int err, const char *what, const char *path)
{
    int rc;
    switch (err) {
    case ENOENT:
        rc = CK_ENOTFOUND;
        break;
    case EEXIST:
        rc = CK_EEXIST;
        break;
    case EACCES:
    case EPERM:
    case EROFS:
        rc = CK_EDENIED;
        break;
    case ENOSPC:
    case EDQUOT:
        rc = CK_ENOSPC;
        break;
    case ENOMEM:
        rc = CK_ENOMEM;
        break;
    default:
        rc = CK_EIO;
        break;
    }
    return ck_err__set(st, rc, "%s %s: %s", what, path != NULL ? path : "", strerror(err));
}
