/*
 * erase.c - erasure by crypto-shredding, with tombstones and a receipt.
 *
 * One data write transaction holds the whole erasure; inside it:
 *   1. the subject is resolved and opened (data key, record);
 *   2. everything of it is deleted: values, consent records and their
 *      consent-index entries, contact logs, index entries, the record;
 *      tombstones are written for its ref and identifying values;
 *   3. the erasure is audited, strictly (before anything is destroyed);
 *   4. the data key is deleted from the keyring in a keyring transaction
 *      that commits (fsync'ed) - the point of no return - and the keyring
 *      file is then scrubbed of every stale copy of the wrapped key, under
 *      the keyring's writer lock so that no writer reuses a page meanwhile;
 *   5. the data transaction commits.
 * A crash after 4 and before 5 leaves records that nothing can decrypt any
 * more; erasing again cleans them up (without the key the record's index
 * list cannot be read, so the index is searched for the subject instead).
 */
#include "audit.h"
#include "consent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REASON_MAX 64

typedef struct erase_ctx {
    const ck_who *who;
    const char *reason;
    const char *actor;
    bool keep_tomb_time; /* a restore's replay: leave a tombstone's time as it is */
    /* results */
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
    uint64_t values, consents, contacts, index_entries, tombstones;
    uint64_t seq;
    uint8_t hash[CK_AUDIT_HASH_BYTES];
    int64_t at;
    uint64_t scrubbed; /* stale copies of the wrapped key overwritten */
} erase_ctx;

/* Delete every key of `dbi` that starts with `prefix`; count them. For the
 * consents database, also delete each record's consent-index entry. */
static int delete_prefix(ck_store *st, MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix,
                         size_t plen, bool consents, uint64_t *count)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot open a cursor");
    MDB_val k = {plen, (void *)prefix}, v;
    int rc = CK_OK;
    /* After mdb_cursor_del, MDB_NEXT gives the record that followed. */
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (consents && k.mv_size == CK_CONSENT_KEY_BYTES) {
            uint8_t ck[CK_CINDEX_KEY_BYTES];
            memcpy(ck, (const uint8_t *)k.mv_data + CK_SUBJECT_ID_BYTES, CK_PTAG_BYTES);
            memcpy(ck + CK_PTAG_BYTES, prefix, CK_SUBJECT_ID_BYTES);
            MDB_val cv = {sizeof ck, ck};
            int d = mdb_del(txn, st->dbi_cindex, &cv, NULL);
            if (d != 0 && d != MDB_NOTFOUND) {
                rc = ck_err__mdb(st, d, "cannot delete a consent-index entry");
                break;
            }
        }
        mrc = mdb_cursor_del(cur, 0);
        if (mrc != 0)
            break;
        (*count)++;
    }
    if (rc == CK_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = ck_err__mdb(st, mrc, "cannot delete a subject's records");
    mdb_cursor_close(cur);
    return rc;
}

/* Without the record (key already gone): find the subject's index entries
 * by walking the index. Slow, and only on the recovery path. */
static int delete_index_by_scan(ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                                uint64_t *count)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, st->dbi_index, &cur);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot open a cursor");
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size == CK_SUBJECT_ID_BYTES && memcmp(v.mv_data, sid, CK_SUBJECT_ID_BYTES) == 0) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != 0)
                break;
            (*count)++;
        }
    }
    mdb_cursor_close(cur);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return ck_err__mdb(st, mrc, "cannot delete index entries");
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* The keyring: delete, commit, scrub                                        */
/* ------------------------------------------------------------------------ */

typedef struct key_ctx {
    const uint8_t *sid;
    uint8_t rec[CK_KEYRING_RECORD_BYTES];
    bool have_rec;
    uint64_t scrubbed;
} key_ctx;

static int key_delete_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    key_ctx *kc = ctx;
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)kc->sid}, v;
    int mrc = mdb_get(ktxn, st->dbi_keyring, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return CK_OK; /* already destroyed (an erasure interrupted after it) */
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read the keyring");
    kc->have_rec = v.mv_size == CK_KEYRING_RECORD_BYTES;
    if (kc->have_rec)
        memcpy(kc->rec, v.mv_data, CK_KEYRING_RECORD_BYTES);
    return ck_keyring__delete(st, ktxn, kc->sid);
}

/*
 * Overwrite every copy of the deleted record left in the keyring file.
 * Runs inside a keyring write transaction that writes nothing: holding
 * LMDB's writer lock, no writer can reuse a freed page while we scan. The
 * record holds a random 24-byte nonce, so its 73 bytes occur nowhere else.
 * A reader still holding a snapshot from before the deletion would read
 * zeros there and fail to unwrap that one key - the subject is erased.
 */
static int key_scrub_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    (void)ktxn;
    key_ctx *kc = ctx;
    if (!kc->have_rec)
        return CK_OK;
    /* Map the whole file read-only and search it in place (no copy into a
     * buffer); overwrite each hit with pwrite. */
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
    const uint8_t *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        int err = errno;
        close(fd);
        return ck_err__errno(st, err, "cannot map the keyring to scrub it", CK_KEYRING_FILE);
    }
    int rc = CK_OK;
    static const uint8_t zeros[CK_KEYRING_RECORD_BYTES];
    const uint8_t *p = map, *end = map + len;
    while (rc == CK_OK && (size_t)(end - p) >= CK_KEYRING_RECORD_BYTES) {
        const uint8_t *hit = memmem(p, (size_t)(end - p), kc->rec, CK_KEYRING_RECORD_BYTES);
        if (hit == NULL)
            break;
        if (pwrite(fd, zeros, sizeof zeros, (off_t)(hit - map)) != (ssize_t)sizeof zeros)
            rc = ck_err__errno(st, errno, "cannot scrub the keyring", CK_KEYRING_FILE);
        else
            kc->scrubbed++;
        p = hit + 1;
    }
    munmap((void *)map, len);
    if (rc == CK_OK && kc->scrubbed > 0 && fdatasync(fd) != 0)
        rc = ck_err__errno(st, errno, "cannot fsync the scrubbed keyring", CK_KEYRING_FILE);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The erasure                                                               */
/* ------------------------------------------------------------------------ */

/* Write tombstone `tag` with the erasure time. A replay keeps the time an
 * existing tombstone holds: it is the time of the erasure it stands for,
 * which a restore compares with the creation time of subjects. */
static int put_tomb(ck_store *st, MDB_txn *txn, const uint8_t tag[CK_TOMB_BYTES], int64_t now,
                    bool keep_time)
{
    uint8_t when[8];
    ck_be64_put(when, (uint64_t)now);
    MDB_val tk = {CK_TOMB_BYTES, (void *)tag}, tv = {sizeof when, when};
    int mrc = ck_mdb__put(txn, st->dbi_tombstones, &tk, &tv, keep_time ? MDB_NOOVERWRITE : 0);
    if (mrc != 0 && !(keep_time && mrc == MDB_KEYEXIST))
        return ck_err__mdb(st, mrc, "cannot write a tombstone");
    return CK_OK;
}

static int erase_fn(ck_wctx *w, void *ctx)
{
    erase_ctx *e = ctx;
    ck_store *st = w->st;
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    ck_subj s = {0};
    e->values = e->consents = e->contacts = e->index_entries = e->tombstones = 0;
    e->at = w->now;
    CK_TRY(ck_subject__resolve(sid, st, w->txn, w->schema, e->who, NULL, NULL, &w->norm));
    int rc = ck_subject__open(w, &s, sid);
    bool have_key = rc == CK_OK;
    if (rc == CK_ENOTFOUND) {
        /* The key is gone but records remain: an erasure was interrupted
         * between its two commits. Finish it. */
        rc = CK_OK;
        memcpy(s.sid, sid, sizeof sid);
    }
    if (rc == CK_OK && have_key)
        ck_audit__pseudonym(e->pn, st, s.dk, s.sid);
    else if (rc == CK_OK)
        memset(e->pn, 0, sizeof e->pn);

    /* Tombstones first (they need the record), then the index entries. */
    for (uint32_t i = 0; rc == CK_OK && have_key && i < s.nix; i++) {
        static const uint8_t zero[CK_TOMB_BYTES];
        const uint8_t *tag = s.ix[i] + CK_INDEX_KEY_BYTES;
        if (memcmp(tag, zero, CK_TOMB_BYTES) != 0) {
            rc = put_tomb(st, w->txn, tag, w->now, e->keep_tomb_time);
            e->tombstones += rc == CK_OK;
        }
        if (rc == CK_OK) {
            MDB_val k = {CK_INDEX_KEY_BYTES, s.ix[i]}, v = {CK_SUBJECT_ID_BYTES, s.sid};
            int mrc = mdb_del(w->txn, st->dbi_index, &k, &v);
            if (mrc != 0 && mrc != MDB_NOTFOUND)
                rc = ck_err__mdb(st, mrc, "cannot delete an index entry");
            else
                e->index_entries += mrc == 0;
        }
    }
    /* And one of the subject's id, which a restore matches exactly (it is
     * not counted in the receipt's "tombstones", which are its values'). */
    if (rc == CK_OK) {
        uint8_t tag[CK_TOMB_BYTES];
        ck_subject__tomb_tag_sid(tag, st, s.sid);
        rc = put_tomb(st, w->txn, tag, w->now, e->keep_tomb_time);
    }
    if (rc == CK_OK && !have_key)
        rc = delete_index_by_scan(st, w->txn, s.sid, &e->index_entries);
    if (rc == CK_OK)
        rc = delete_prefix(st, w->txn, st->dbi_values, s.sid, CK_SUBJECT_ID_BYTES, false,
                           &e->values);
    if (rc == CK_OK)
        rc = delete_prefix(st, w->txn, st->dbi_consents, s.sid, CK_SUBJECT_ID_BYTES, true,
                           &e->consents);
    if (rc == CK_OK)
        rc = delete_prefix(st, w->txn, st->dbi_contacts, s.sid, CK_SUBJECT_ID_BYTES, false,
                           &e->contacts);
    if (rc == CK_OK) {
        MDB_val k = {CK_SUBJECT_ID_BYTES, s.sid};
        int mrc = mdb_del(w->txn, st->dbi_subjects, &k, NULL);
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            rc = ck_err__mdb(st, mrc, "cannot delete the subject record");
    }

    /* Audited before anything is destroyed: an erasure that cannot be
     * audited is not made. */
    if (rc == CK_OK) {
        ck_audit_detail_item d[6] = {{"reason", e->reason, 0},
                                     {"values", NULL, (int64_t)e->values},
                                     {"consents", NULL, (int64_t)e->consents},
                                     {"contacts", NULL, (int64_t)e->contacts},
                                     {"index_entries", NULL, (int64_t)e->index_entries},
                                     {"tombstones", NULL, (int64_t)e->tombstones}};
        ck_audit_entry ae = CK_AUDIT_ENTRY_INIT;
        ae.actor = e->actor;
        ae.action = "erase";
        ae.subject = have_key ? e->pn : NULL;
        ae.detail = d;
        ae.n_detail = 6;
        rc = ck_audit__append(st, &ae, true, &e->seq, e->hash);
    }

    /* The point of no return: the data key, durably, then its residue. */
    if (rc == CK_OK) {
        key_ctx kc;
        memset(&kc, 0, sizeof kc);
        kc.sid = s.sid;
        rc = ck_wctx__commit_keys(w); /* ends the keyring read transaction */
        if (rc == CK_OK)
            rc = ck_env__write(st, &st->keyring, key_delete_txn, &kc);
        if (rc == CK_OK)
            rc = ck_env__write(st, &st->keyring, key_scrub_txn, &kc);
        sodium_memzero(kc.rec, sizeof kc.rec);
        e->scrubbed = kc.scrubbed;
    }
    ck_subj__fini(&s);
    return rc;
}

static bool reason_ok(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > REASON_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("_.:/+=-", c) != NULL))
            return false;
    }
    return true;
}

CK_EXPORT int ck_erase(char **out, ck_store *st, const ck_who *who, const char *reason,
                       const char *actor)
{
    if (out != NULL)
        *out = NULL;
    if (st == NULL)
        return CK_EINVAL;
    if (reason == NULL || !reason_ok(reason))
        return ck_err__set(st, CK_EINVAL,
                           "an erasure needs a reason code: 1 to %d characters of "
                           "[A-Za-z0-9_.:/+=-] (it goes to the audit log)",
                           REASON_MAX);
    if (actor == NULL)
        return ck_err__set(st, CK_EINVAL, "an erasure needs an actor");
    erase_ctx e;
    memset(&e, 0, sizeof e);
    e.who = who;
    e.reason = reason;
    e.actor = actor;
    int rc = ck_subject__write(st, erase_fn, &e);
    if (rc != CK_OK || out == NULL)
        return rc;
    char pn[2 * CK_AUDIT_PSEUDONYM_BYTES + 1], hs[2 * CK_AUDIT_HASH_BYTES + 1];
    char at[CK_TS_TEXT_MAX];
    sodium_bin2hex(pn, sizeof pn, e.pn, sizeof e.pn);
    sodium_bin2hex(hs, sizeof hs, e.hash, sizeof e.hash);
    ck_value tv;
    memset(&tv, 0, sizeof tv);
    tv.type = CK_TYPE_TIMESTAMP;
    tv.u.ts.sec = e.at;
    if (ck_ts__format(at, sizeof at, &tv) != CK_OK)
        snprintf(at, sizeof at, "%lld", (long long)e.at);
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "{\"erased\":true,\"subject\":\"%s\",\"at\":\"%s\",\"reason\":\"%s\","
                     "\"audit\":{\"seq\":%llu,\"hash\":\"%s\"},\"deleted\":{\"values\":%llu,"
                     "\"consents\":%llu,\"contacts\":%llu,\"index_entries\":%llu},"
                     "\"tombstones\":%llu,\"keyring_copies_scrubbed\":%llu}",
                     pn, at, reason, (unsigned long long)e.seq, hs, (unsigned long long)e.values,
                     (unsigned long long)e.consents, (unsigned long long)e.contacts,
                     (unsigned long long)e.index_entries, (unsigned long long)e.tombstones,
                     (unsigned long long)e.scrubbed);
    if (n < 0 || (size_t)n >= sizeof buf)
        return ck_err__set(st, CK_EINTERNAL, "receipt too long");
    *out = ck_out__strndup(buf, (size_t)n);
    if (*out == NULL)
        return ck_err__set(st, CK_ENOMEM,
                           "the subject was erased, but its receipt could not be made: out of "
                           "memory");
    return CK_OK;
}

int ck_erase__replay(ck_store *st, const uint8_t sid[CK_SUBJECT_ID_BYTES], const char *actor)
{
    char hex[2 * CK_SUBJECT_ID_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, sid, CK_SUBJECT_ID_BYTES);
    ck_who who = {CK_BY_ID, hex, 2 * CK_SUBJECT_ID_BYTES, NULL, NULL, NULL};
    erase_ctx e;
    memset(&e, 0, sizeof e);
    e.who = &who;
    e.reason = CK_ERASE_REPLAY_REASON;
    e.actor = actor;
    e.keep_tomb_time = true;
    return ck_subject__write(st, erase_fn, &e);
}

/* Is `tag` a tombstone? For import and subject creation. */
int ck_erase__tombstoned(bool *out, ck_store *st, MDB_txn *txn, const uint8_t tag[CK_TOMB_BYTES])
{
    MDB_val k = {CK_TOMB_BYTES, (void *)tag}, v;
    int mrc = mdb_get(txn, st->dbi_tombstones, &k, &v);
    *out = mrc == 0;
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return ck_err__mdb(st, mrc, "cannot read the tombstones");
    return CK_OK;
}
