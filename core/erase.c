/*
 * erase.c - erasure by crypto-shredding, with tombstones, legal holds and
 * a receipt; one subject (ck_erase) or a batch (ck_erase_many).
 *
 * A chunk of subjects (one for ck_erase, up to ERASE_CHUNK for a batch) is
 * erased in one data write transaction; inside it:
 *   1. each subject is resolved and opened (data key, record); the holds
 *      its legal_obligation purposes declare are made (hold.c): its kept
 *      values read and sealed under fresh keys, staged in memory;
 *   2. everything of it is deleted: values, consent records and their
 *      consent-index entries, contact logs, index entries, the record;
 *      tombstones are written for its ref and identifying values;
 *   3. the erasures (and the holds made) are audited, strictly, in one
 *      append - before anything is destroyed;
 *   4. ONE keyring transaction writes the holds and deletes every data key
 *      of the chunk, and commits (fsync'ed) - the point of no return;
 *      the keyring file is then scrubbed, in one pass, of every stale copy
 *      of the wrapped keys, under the keyring's writer lock so that no
 *      writer reuses a page meanwhile;
 *   5. the data transaction commits.
 * A crash before 4 leaves every subject whole (and erasable); after 4 and
 * before 5, records that nothing can decrypt any more, and the holds made:
 * erasing again cleans the records up (without the key a record's index
 * list cannot be read, so the index is searched for the subject instead).
 * The holds are written in the same keyring commit that destroys the keys,
 * so a subject is never erased without its holds.
 *
 * ck_env__write runs the data transaction again when the map grows. Before
 * the keyring commit nothing is done twice (the audit comes after the last
 * write that can fill the map); after it, the run only deletes again, from
 * what the first run recorded of each subject (its id and index entries).
 */
#include "hold.h"

#include "consent.h"
#include "value.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 64
/* Subjects erased per data transaction (and per audit append, keyring
 * commit and scrub) by ck_erase_many. */
#define ERASE_CHUNK 1024

/* One subject of a chunk. */
typedef struct erase_item {
    const ck_who *who;
    int rc;        /* CK_OK: erased; else why it was left alone */
    bool have_key; /* false: finishing an erasure cut after its key went */
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
    uint8_t (*ix)[CK_IX_ENTRY]; /* its index entries, from its record (heap) */
    uint32_t nix;
    uint64_t values, consents, contacts, index_entries, tombstones, scrubbed;
    uint64_t seq;
    uint8_t hash[CK_AUDIT_HASH_BYTES];
    ck_hold_new *holds; /* heap */
    uint32_t nholds;
} erase_item;

typedef struct erase_run {
    const char *reason;
    const char *actor;
    erase_item *items;
    size_t n;
    bool single;         /* ck_erase: a subject that cannot be erased fails the call */
    bool keep_tomb_time; /* a restore's replay: leave a tombstone's time as it is */
    bool keys_done;      /* the keyring commit happened: a run again only deletes */
    int64_t at;
    ck_arena arena; /* what the receipts say of the holds */
} erase_run;

static void item_reset(erase_item *it)
{
    const ck_who *who = it->who;
    ck_mem__free(it->ix);
    for (uint32_t i = 0; i < it->nholds; i++)
        ck_hold__fini(&it->holds[i]);
    ck_mem__free(it->holds);
    memset(it, 0, sizeof *it);
    it->who = who;
    it->rc = CK_ENOTFOUND;
}

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

/* Without the record (key already gone): find the index entries of the
 * subjects of `items` whose key was gone by walking the index once. Slow,
 * and only on the recovery path. */
typedef struct lost_sid {
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    erase_item *it;
} lost_sid;

static int lost_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CK_SUBJECT_ID_BYTES);
}

static int delete_index_by_scan(ck_store *st, MDB_txn *txn, erase_run *run)
{
    size_t n = 0;
    for (size_t i = 0; i < run->n; i++)
        n += run->items[i].rc == CK_OK && !run->items[i].have_key;
    if (n == 0)
        return CK_OK;
    lost_sid *lost = ck_mem__malloc(n * sizeof *lost);
    if (lost == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    n = 0;
    for (size_t i = 0; i < run->n; i++) {
        erase_item *it = &run->items[i];
        if (it->rc == CK_OK && !it->have_key) {
            memcpy(lost[n].sid, it->sid, CK_SUBJECT_ID_BYTES);
            lost[n++].it = it;
        }
    }
    qsort(lost, n, sizeof *lost, lost_cmp);
    MDB_cursor *cur;
    int rc = CK_OK;
    int mrc = mdb_cursor_open(txn, st->dbi_index, &cur);
    if (mrc != 0) {
        ck_mem__free(lost);
        return ck_err__mdb(st, mrc, "cannot open a cursor");
    }
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size != CK_SUBJECT_ID_BYTES)
            continue;
        lost_sid *hit = bsearch(v.mv_data, lost, n, sizeof *lost, lost_cmp);
        if (hit != NULL) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != 0)
                break;
            hit->it->index_entries++;
        }
    }
    mdb_cursor_close(cur);
    ck_mem__free(lost);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        rc = ck_err__mdb(st, mrc, "cannot delete index entries");
    return rc;
}

/* Delete everything of one subject inside the data transaction, from what
 * was recorded of it (so that a run again after the keyring commit can do
 * it without the key). Index entries of a subject without its record are
 * left to delete_index_by_scan. */
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

static int delete_subject(ck_wctx *w, erase_item *it, bool keep_tomb_time)
{
    ck_store *st = w->st;
    it->values = it->consents = it->contacts = it->index_entries = it->tombstones = 0;
    /* Tombstones first (their tags are in the record's entries), then the
     * index entries themselves. */
    for (uint32_t i = 0; i < it->nix; i++) {
        static const uint8_t zero[CK_TOMB_BYTES];
        const uint8_t *tag = it->ix[i] + CK_INDEX_KEY_BYTES;
        if (memcmp(tag, zero, CK_TOMB_BYTES) != 0) {
            CK_TRY(put_tomb(st, w->txn, tag, w->now, keep_tomb_time));
            it->tombstones++;
        }
        MDB_val k = {CK_INDEX_KEY_BYTES, it->ix[i]}, v = {CK_SUBJECT_ID_BYTES, it->sid};
        int mrc = mdb_del(w->txn, st->dbi_index, &k, &v);
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            return ck_err__mdb(st, mrc, "cannot delete an index entry");
        it->index_entries += mrc == 0;
    }
    /* And one of the subject's id, which a restore matches exactly (it is
     * not counted in the receipt's "tombstones", which are its values'). */
    uint8_t sidtag[CK_TOMB_BYTES];
    ck_subject__tomb_tag_sid(sidtag, st, it->sid);
    CK_TRY(put_tomb(st, w->txn, sidtag, w->now, keep_tomb_time));
    CK_TRY(delete_prefix(st, w->txn, st->dbi_values, it->sid, CK_SUBJECT_ID_BYTES, false,
                         &it->values));
    CK_TRY(delete_prefix(st, w->txn, st->dbi_consents, it->sid, CK_SUBJECT_ID_BYTES, true,
                         &it->consents));
    CK_TRY(delete_prefix(st, w->txn, st->dbi_contacts, it->sid, CK_SUBJECT_ID_BYTES, false,
                         &it->contacts));
    MDB_val k = {CK_SUBJECT_ID_BYTES, it->sid};
    int mrc = mdb_del(w->txn, st->dbi_subjects, &k, NULL);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return ck_err__mdb(st, mrc, "cannot delete the subject record");
    return CK_OK;
}

/* Resolve and open one subject, record what its deletion needs, make its
 * holds. `it->rc` says whether it is to be erased; the return value is a
 * failure of the whole chunk. */
static int prepare_subject(ck_wctx *w, erase_run *run, erase_item *it)
{
    ck_store *st = w->st;
    ck_subj s = {0};
    int rc = ck_subject__resolve(it->sid, st, w->txn, w->schema, it->who, NULL, NULL, &w->norm);
    if (rc == CK_ENOTFOUND || rc == CK_EINVAL || rc == CK_EAMBIGUOUS) {
        it->rc = rc;
        return run->single ? rc : CK_OK;
    }
    CK_TRY(rc);
    rc = ck_subject__open(w, &s, it->sid);
    if (rc == CK_ENOTFOUND) {
        /* The key is gone but records remain: an erasure was cut between
         * its two commits. Finish it. */
        it->have_key = false;
        it->rc = CK_OK;
        return CK_OK;
    }
    if (rc == CK_EINTEGRITY && !run->single) {
        it->rc = rc; /* left as it is: the batch goes on */
        return CK_OK;
    }
    CK_GUARD(rc);
    it->have_key = true;
    ck_audit__pseudonym(it->pn, st, s.dk, s.sid);
    if (s.nix > 0) {
        it->ix = ck_mem__malloc((size_t)s.nix * CK_IX_ENTRY);
        CK_ENSURE(it->ix != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
        memcpy(it->ix, s.ix, (size_t)s.nix * CK_IX_ENTRY);
        it->nix = s.nix;
    }
    /* The holds, while its values can still be read. */
    for (uint32_t i = 0; i < w->schema->npurposes; i++) {
        const ck_schema_purpose *p = &w->schema->purposes[i];
        if (p->hold.nfields == 0)
            continue;
        if (it->holds == NULL) {
            it->holds = ck_mem__calloc(w->schema->npurposes, sizeof *it->holds);
            CK_ENSURE(it->holds != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
        }
        bool made;
        CK_GUARD(ck_hold__make(&it->holds[it->nholds], &made, w, &s, p, &run->arena));
        it->nholds += made;
    }
    it->rc = CK_OK;
    rc = CK_OK;
cleanup:
    ck_subj__fini(&s);
    return rc;
}

/* Audit every erasure of the chunk, and every hold made, in one strict
 * append: an erasure that cannot be audited is not made. */
static int audit_chunk(ck_store *st, erase_run *run)
{
    enum { ERASE_DETAILS = 7, HOLD_DETAILS = 3 };
    size_t ne = 0;
    for (size_t i = 0; i < run->n; i++)
        if (run->items[i].rc == CK_OK)
            ne += 1 + run->items[i].nholds;
    if (ne == 0)
        return CK_OK;
    int rc;
    ck_audit_entry *es = ck_mem__calloc(ne, sizeof *es);
    ck_audit_detail_item *ds = ck_mem__calloc(ne, ERASE_DETAILS * sizeof *ds);
    uint64_t *seqs = ck_mem__calloc(ne, sizeof *seqs);
    uint8_t(*hashes)[CK_AUDIT_HASH_BYTES] = ck_mem__calloc(ne, sizeof *hashes);
    CK_ENSURE(es != NULL && ds != NULL && seqs != NULL && hashes != NULL,
              ck_err__set(st, CK_ENOMEM, "out of memory"));
    size_t k = 0;
    for (size_t i = 0; i < run->n; i++) {
        erase_item *it = &run->items[i];
        if (it->rc != CK_OK)
            continue;
        ck_audit_detail_item *d = ds + k * ERASE_DETAILS;
        d[0] = (ck_audit_detail_item){"reason", run->reason, 0};
        d[1] = (ck_audit_detail_item){"values", NULL, (int64_t)it->values};
        d[2] = (ck_audit_detail_item){"consents", NULL, (int64_t)it->consents};
        d[3] = (ck_audit_detail_item){"contacts", NULL, (int64_t)it->contacts};
        d[4] = (ck_audit_detail_item){"index_entries", NULL, (int64_t)it->index_entries};
        d[5] = (ck_audit_detail_item){"tombstones", NULL, (int64_t)it->tombstones};
        d[6] = (ck_audit_detail_item){"holds", NULL, (int64_t)it->nholds};
        es[k] = (ck_audit_entry)CK_AUDIT_ENTRY_INIT;
        es[k].actor = run->actor;
        es[k].action = "erase";
        es[k].subject = it->have_key ? it->pn : NULL;
        es[k].detail = d;
        es[k].n_detail = it->nholds > 0 ? 7 : 6;
        k++;
        /* Each hold kept: right after its erasure, under its own
         * pseudonym (reads of the hold are audited under it too). */
        for (uint32_t h = 0; h < it->nholds; h++) {
            const ck_hold_new *hn = &it->holds[h];
            d = ds + k * ERASE_DETAILS;
            d[0] = (ck_audit_detail_item){"event", "kept", 0};
            d[1] = (ck_audit_detail_item){"fields", NULL, (int64_t)hn->nfields};
            d[2] = (ck_audit_detail_item){"until", NULL, hn->until};
            es[k] = (ck_audit_entry)CK_AUDIT_ENTRY_INIT;
            es[k].actor = run->actor;
            es[k].action = "hold";
            es[k].purpose = hn->purpose;
            es[k].subject = hn->pn;
            es[k].detail = d;
            es[k].n_detail = HOLD_DETAILS;
            k++;
        }
    }
    CK_GUARD(ck_audit__append_many_out(st, es, ne, true, seqs, hashes));
    k = 0;
    for (size_t i = 0; i < run->n; i++) {
        erase_item *it = &run->items[i];
        if (it->rc != CK_OK)
            continue;
        it->seq = seqs[k];
        memcpy(it->hash, hashes[k], CK_AUDIT_HASH_BYTES);
        k += 1 + it->nholds;
    }
    rc = CK_OK;
cleanup:
    ck_mem__free(es);
    ck_mem__free(ds);
    ck_mem__free(seqs);
    ck_mem__free(hashes);
    return rc;
}

/* The keyring transaction: holds written, data keys deleted (their
 * records kept in `keyrecs` for the scrub), one commit. */
typedef struct keys_ctx {
    erase_run *run;
    uint8_t *keyrecs; /* one per item (zero when it had none) */
    bool *have;
} keys_ctx;

static int keys_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    keys_ctx *kc = ctx;
    erase_run *run = kc->run;
    for (size_t i = 0; i < run->n; i++) {
        erase_item *it = &run->items[i];
        kc->have[i] = false;
        if (it->rc != CK_OK)
            continue;
        for (uint32_t h = 0; h < it->nholds; h++)
            CK_TRY(ck_hold__put(st, ktxn, &it->holds[h]));
        MDB_val k = {CK_SUBJECT_ID_BYTES, it->sid}, v;
        int mrc = mdb_get(ktxn, st->dbi_keyring, &k, &v);
        if (mrc == MDB_NOTFOUND)
            continue; /* already destroyed (an erasure cut after it) */
        if (mrc != 0)
            return ck_err__mdb(st, mrc, "cannot read the keyring");
        if (v.mv_size == CK_KEYRING_RECORD_BYTES) {
            memcpy(kc->keyrecs + i * CK_KEYRING_RECORD_BYTES, v.mv_data, CK_KEYRING_RECORD_BYTES);
            kc->have[i] = true;
        }
        CK_TRY(ck_keyring__delete(st, ktxn, it->sid));
    }
    return CK_OK;
}

/* The point of no return, then the residue: one keyring commit, one scrub. */
static int destroy_keys(ck_wctx *w, erase_run *run)
{
    ck_store *st = w->st;
    int rc;
    keys_ctx kc = {run, NULL, NULL};
    uint8_t *recs = NULL;
    uint64_t *hits = NULL;
    kc.keyrecs = ck_mem__calloc(run->n, CK_KEYRING_RECORD_BYTES);
    kc.have = ck_mem__calloc(run->n, sizeof *kc.have);
    recs = ck_mem__calloc(run->n, CK_KEYRING_RECORD_BYTES);
    hits = ck_mem__calloc(run->n, sizeof *hits);
    CK_ENSURE(kc.keyrecs != NULL && kc.have != NULL && recs != NULL && hits != NULL,
              ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(ck_wctx__commit_keys(w)); /* ends the keyring read transaction */
    CK_GUARD(ck_env__write(st, &st->keyring, keys_txn, &kc));
    run->keys_done = true;
    size_t m = 0;
    for (size_t i = 0; i < run->n; i++)
        if (kc.have[i])
            memcpy(recs + m++ * CK_KEYRING_RECORD_BYTES, kc.keyrecs + i * CK_KEYRING_RECORD_BYTES,
                   CK_KEYRING_RECORD_BYTES);
    CK_GUARD(ck_keyring__scrub(st, recs, m, hits));
    m = 0;
    for (size_t i = 0; i < run->n; i++)
        if (kc.have[i])
            run->items[i].scrubbed = hits[m++];
    rc = CK_OK;
cleanup:
    if (kc.keyrecs != NULL)
        sodium_memzero(kc.keyrecs, run->n * CK_KEYRING_RECORD_BYTES);
    if (recs != NULL)
        sodium_memzero(recs, run->n * CK_KEYRING_RECORD_BYTES);
    ck_mem__free(kc.keyrecs);
    ck_mem__free(kc.have);
    ck_mem__free(recs);
    ck_mem__free(hits);
    return rc;
}

static int erase_fn(ck_wctx *w, void *ctx)
{
    erase_run *run = ctx;
    if (run->keys_done) {
        /* The data transaction is run again (the map grew) after the keys
         * were destroyed: delete again, from what was recorded. */
        for (size_t i = 0; i < run->n; i++)
            if (run->items[i].rc == CK_OK)
                CK_TRY(delete_subject(w, &run->items[i], run->keep_tomb_time));
        return delete_index_by_scan(w->st, w->txn, run);
    }
    for (size_t i = 0; i < run->n; i++)
        item_reset(&run->items[i]);
    ck_arena__reset(&run->arena);
    run->at = w->now;
    for (size_t i = 0; i < run->n; i++) {
        erase_item *it = &run->items[i];
        CK_TRY(prepare_subject(w, run, it));
        /* Deleted at once, so that the same subject named twice (by ref,
         * then by e-mail) is not found the second time. */
        if (it->rc == CK_OK)
            CK_TRY(delete_subject(w, it, run->keep_tomb_time));
    }
    CK_TRY(delete_index_by_scan(w->st, w->txn, run));
    bool any = false;
    for (size_t i = 0; i < run->n && !any; i++)
        any = run->items[i].rc == CK_OK;
    if (!any)
        return CK_OK;
    CK_TRY(audit_chunk(w->st, run));
    return destroy_keys(w, run);
}

/* ------------------------------------------------------------------------ */
/* Receipts                                                                  */
/* ------------------------------------------------------------------------ */

static int appendf(ck_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int appendf(ck_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return CK_EINTERNAL;
    return ck_buf__append(b, tmp, (size_t)n);
}

/* The receipt of an erased subject, NUL-terminated, into `b`. */
static int receipt(ck_buf *b, const erase_run *run, const erase_item *it)
{
    char pn[2 * CK_AUDIT_PSEUDONYM_BYTES + 1], hs[2 * CK_AUDIT_HASH_BYTES + 1];
    char at[CK_TS_TEXT_MAX];
    sodium_bin2hex(pn, sizeof pn, it->pn, sizeof it->pn);
    sodium_bin2hex(hs, sizeof hs, it->hash, sizeof it->hash);
    ck_ts__text(at, run->at);
    ck_buf__reset(b);
    CK_TRY(appendf(b,
                   "{\"erased\":true,\"subject\":\"%s\",\"at\":\"%s\",\"reason\":\"%s\","
                   "\"audit\":{\"seq\":%llu,\"hash\":\"%s\"},\"deleted\":{\"values\":%llu,"
                   "\"consents\":%llu,\"contacts\":%llu,\"index_entries\":%llu},"
                   "\"tombstones\":%llu,\"keyring_copies_scrubbed\":%llu,\"holds\":[",
                   pn, at, run->reason, (unsigned long long)it->seq, hs,
                   (unsigned long long)it->values, (unsigned long long)it->consents,
                   (unsigned long long)it->contacts, (unsigned long long)it->index_entries,
                   (unsigned long long)it->tombstones, (unsigned long long)it->scrubbed));
    for (uint32_t h = 0; h < it->nholds; h++) {
        const ck_hold_new *hn = &it->holds[h];
        char id[2 * CK_HOLD_ID_BYTES + 1], until[CK_TS_TEXT_MAX];
        sodium_bin2hex(id, sizeof id, hn->id, sizeof hn->id);
        ck_ts__text(until, hn->until);
        CK_TRY(appendf(b, "%s{\"hold\":\"%s\",\"purpose\":\"%s\",\"basis\":\"%s\",\"description\":",
                       h > 0 ? "," : "", id, hn->purpose, ck_schema__basis_name(hn->basis)));
        CK_TRY(ck_value__json_string(b, hn->description, strlen(hn->description)));
        CK_TRY(appendf(b, ",\"until\":\"%s\",\"fields\":[", until));
        for (uint32_t f = 0; f < hn->nfields; f++)
            CK_TRY(appendf(b, "%s\"%s\"", f > 0 ? "," : "", hn->fields[f]));
        CK_TRY(appendf(b, "]}"));
    }
    return ck_buf__append(b, "]}", 3);
}

/* ------------------------------------------------------------------------ */
/* The calls                                                                 */
/* ------------------------------------------------------------------------ */

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

static int check_args(ck_store *st, const char *reason, const char *actor)
{
    if (reason == NULL || !reason_ok(reason))
        return ck_err__set(st, CK_EINVAL,
                           "an erasure needs a reason code: 1 to %d characters of "
                           "[A-Za-z0-9_.:/+=-] (it goes to the audit log)",
                           REASON_MAX);
    if (actor == NULL)
        return ck_err__set(st, CK_EINVAL, "an erasure needs an actor");
    if (!st->has_holds)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    return CK_OK;
}

/* Erase who[0..n) (n <= ERASE_CHUNK) in one chunk; run->items is the
 * caller's, of n elements. */
static int run_chunk(ck_store *st, erase_run *run, const ck_who *who, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&run->items[i], 0, sizeof run->items[i]);
        run->items[i].who = &who[i];
        run->items[i].rc = CK_ENOTFOUND;
    }
    run->n = n;
    run->keys_done = false;
    return ck_subject__write(st, erase_fn, run);
}

static void run_fini(erase_run *run, size_t n)
{
    for (size_t i = 0; run->items != NULL && i < n; i++)
        item_reset(&run->items[i]);
    ck_arena__free(&run->arena);
}

CK_EXPORT int ck_erase(char **out, ck_store *st, const ck_who *who, const char *reason,
                       const char *actor)
{
    if (out != NULL)
        *out = NULL;
    if (st == NULL)
        return CK_EINVAL;
    CK_TRY(check_args(st, reason, actor));
    int rc;
    erase_item item;
    ck_buf b = CK_BUF_INIT;
    erase_run run;
    memset(&run, 0, sizeof run);
    run.reason = reason;
    run.actor = actor;
    run.items = &item;
    run.single = true;
    run.arena = (ck_arena)CK_ARENA_INIT;
    CK_GUARD(run_chunk(st, &run, who, 1));
    if (out != NULL) {
        rc = receipt(&b, &run, &item);
        CK_ENSURE(rc == CK_OK, ck_err__set(st, rc == CK_ENOMEM ? rc : CK_EINTERNAL,
                                           "the subject was erased, but its receipt could not "
                                           "be made"));
        *out = ck_out__strndup((const char *)b.p, b.len - 1);
        CK_ENSURE(*out != NULL, ck_err__set(st, CK_ENOMEM,
                                            "the subject was erased, but its receipt could not "
                                            "be made: out of memory"));
    }
    rc = CK_OK;
cleanup:
    run_fini(&run, 1);
    ck_buf__free(&b);
    return rc;
}

CK_EXPORT int ck_erase_many(uint64_t *erased, ck_store *st, const ck_who *who, size_t n,
                            const char *reason, const char *actor, ck_erase_fn fn, void *ctx)
{
    if (erased != NULL)
        *erased = 0;
    if (st == NULL)
        return CK_EINVAL;
    if (n > 0 && who == NULL)
        return ck_err__set(st, CK_EINVAL, "no subjects given");
    CK_TRY(check_args(st, reason, actor));
    int rc;
    ck_buf b = CK_BUF_INIT;
    erase_run run;
    memset(&run, 0, sizeof run);
    run.reason = reason;
    run.actor = actor;
    run.arena = (ck_arena)CK_ARENA_INIT;
    size_t cap = n < ERASE_CHUNK ? n : ERASE_CHUNK;
    run.items = ck_mem__calloc(cap > 0 ? cap : 1, sizeof *run.items);
    CK_ENSURE(run.items != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    for (size_t off = 0; off < n; off += cap) {
        size_t m = n - off < cap ? n - off : cap;
        rc = run_chunk(st, &run, who + off, m);
        if (rc != CK_OK) {
            run_fini(&run, m);
            goto cleanup;
        }
        for (size_t i = 0; i < m; i++) {
            erase_item *it = &run.items[i];
            const char *text = NULL;
            if (it->rc == CK_OK) {
                rc = receipt(&b, &run, it);
                CK_ENSURE(rc == CK_OK,
                          ck_err__set(st, rc == CK_ENOMEM ? rc : CK_EINTERNAL,
                                      "subjects were erased, but a receipt could not be made"));
                text = (const char *)b.p;
                if (erased != NULL)
                    (*erased)++;
            }
            if (fn != NULL)
                fn(ctx, off + i, it->rc, text);
        }
        run_fini(&run, m);
        run.arena = (ck_arena)CK_ARENA_INIT;
    }
    rc = CK_OK;
cleanup:
    if (run.items != NULL)
        run_fini(&run, cap);
    ck_mem__free(run.items);
    ck_buf__free(&b);
    return rc;
}

/* Is `tag` a tombstone? For import and subject creation. */
int ck_erase__replay(ck_store *st, const uint8_t sid[CK_SUBJECT_ID_BYTES], const char *actor)
{
    char hex[2 * CK_SUBJECT_ID_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, sid, CK_SUBJECT_ID_BYTES);
    ck_who who = {CK_BY_ID, hex, 2 * CK_SUBJECT_ID_BYTES, NULL, NULL, NULL};
    erase_item item;
    erase_run run;
    memset(&run, 0, sizeof run);
    run.reason = CK_ERASE_REPLAY_REASON;
    run.actor = actor;
    run.items = &item;
    run.single = true;
    run.keep_tomb_time = true;
    run.arena = (ck_arena)CK_ARENA_INIT;
    int rc = run_chunk(st, &run, &who, 1);
    run_fini(&run, 1);
    return rc;
}

int ck_erase__tombstoned(bool *out, ck_store *st, MDB_txn *txn, const uint8_t tag[CK_TOMB_BYTES])
{
    MDB_val k = {CK_TOMB_BYTES, (void *)tag}, v;
    int mrc = mdb_get(txn, st->dbi_tombstones, &k, &v);
    *out = mrc == 0;
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return ck_err__mdb(st, mrc, "cannot read the tombstones");
    return CK_OK;
}
