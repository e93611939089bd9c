/*
 * purge.c - field retention and consent expiry (ck_purge).
 *
 * For every subject, in id order, `batch` subjects per write transaction:
 *
 *   - each value of a field with retention_days > 0 whose age - from its
 *     write time (the start of the sealed plaintext, seal.c), or for a
 *     channel's address field from the later of that and the customer's
 *     last inbound contact on the channel (consent.c) - reaches the
 *     retention is deleted with ck_subject__set_field(.., NULL), the
 *     deletion ck_put makes: an identifying field's blind index goes with
 *     it;
 *   - each current consent record of a schema purpose that is granted and
 *     past its expiry gets a successor in state CK_CONSENT_EXPIRED (same
 *     scope, recipients and expiry; at = the expiry; source "purge").
 *
 * The rules are exactly the ones release.c applies (retention at
 * written + days * 86400 <= now; expiry at expires <= now), so a purge
 * removes what a release would already withhold, nothing else.
 *
 * One batch is one transaction: its audit entries are appended (strict)
 * before it commits, and a failure leaves the batches committed before it
 * and nothing of itself. Every step is idempotent (a value once deleted is
 * gone, an expired record is not granted), so running the purge again
 * after a failure or a crash finishes the job. A dry run walks the same
 * code over read transactions and writes nothing.
 *
 * Nothing here holds a value past one field: values are decrypted (the
 * write time is inside the ciphertext) into the write context's arena,
 * which is wiped at each reset.
 */
#include "audit.h"
#include "consent.h"
#include "hold.h"

#include <jansson.h>
#include <string.h>

#define PURGE_BATCH_DEFAULT 512u
#define PURGE_BATCH_MAX     65536u
/* Fields named by one "purge" entry: an entry is at most
 * CK_AUDIT_ENTRY_MAX bytes and a name up to CK_SCHEMA_NAME_MAX. */
#define PURGE_FIELDS_PER_ENTRY 256u
#define PURGE_SOURCE           "purge"

/* ------------------------------------------------------------------------ */
/* Counts by name (fields, purposes), kept in byte order of the names        */
/* ------------------------------------------------------------------------ */

typedef struct tally_item {
    char *name;
    uint64_t n;
} tally_item;

typedef struct tally {
    tally_item *v;
    size_t n, cap;
} tally;

static int tally_add(ck_store *st, tally *t, const char *name, uint64_t n)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->v[mid].name, name);
        if (c == 0) {
            t->v[mid].n += n;
            return CK_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        tally_item *v = ck_mem__realloc(t->v, cap * sizeof *v);
        if (v == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        t->v = v;
        t->cap = cap;
    }
    char *copy = ck_mem__strndup(name, strlen(name));
    if (copy == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    memmove(&t->v[lo + 1], &t->v[lo], (t->n - lo) * sizeof *t->v);
    t->v[lo].name = copy;
    t->v[lo].n = n;
    t->n++;
    return CK_OK;
}

static void tally_clear(tally *t)
{
    for (size_t i = 0; i < t->n; i++)
        ck_mem__free(t->v[i].name);
    t->n = 0;
}

static void tally_free(tally *t)
{
    tally_clear(t);
    ck_mem__free(t->v);
    memset(t, 0, sizeof *t);
}

static int tally_merge(ck_store *st, tally *into, const tally *from)
{
    for (size_t i = 0; i < from->n; i++)
        CK_TRY(tally_add(st, into, from->v[i].name, from->v[i].n));
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct figures {
    uint64_t values, consents, subjects;
    uint64_t holds; /* legal holds whose time was over, destroyed */
    tally fields, purposes;
} figures;

static void figures_clear(figures *f)
{
    f->values = f->consents = f->subjects = 0;
    tally_clear(&f->fields);
    tally_clear(&f->purposes);
}

static void figures_free(figures *f)
{
    tally_free(&f->fields);
    tally_free(&f->purposes);
}

typedef struct purge_ctx {
    ck_store *st;
    const char *actor;
    bool apply; /* false: dry run */
    unsigned batch;
    int64_t now; /* one clock reading for the whole run */

    /* the walk */
    bool started;                      /* `last` is set */
    uint8_t last[CK_SUBJECT_ID_BYTES]; /* the last subject of the batches done */
    bool done;

    /* the batch in progress (reset each time its body runs: it may run
     * again after the map grew) */
    uint8_t *sids; /* batch * CK_SUBJECT_ID_BYTES */
    size_t nsids;
    bool batch_last; /* no subject after this batch */
    figures b;
    ck_audit_entry *ents; /* the batch's audit entries ... */
    size_t nents, capents;
    ck_arena aarena; /* ... and what they point at (names point into the schema) */

    figures total;
} purge_ctx;

static int entry_add(purge_ctx *c, ck_audit_entry **out)
{
    if (c->nents == c->capents) {
        size_t cap = c->capents ? c->capents * 2 : 64;
        ck_audit_entry *v = ck_mem__realloc(c->ents, cap * sizeof *v);
        if (v == NULL)
            return ck_err__set(c->st, CK_ENOMEM, "out of memory");
        c->ents = v;
        c->capents = cap;
    }
    *out = &c->ents[c->nents++];
    **out = (ck_audit_entry)CK_AUDIT_ENTRY_INIT;
    return CK_OK;
}

/* The audit entries of one changed subject: "purge" (the fields removed,
 * PURGE_FIELDS_PER_ENTRY per entry, and the counts), and one "consent"
 * entry per consent it closed. */
static int audit_subject(purge_ctx *c, const ck_subj *s, const ck_schema_field *const *rm,
                         uint32_t nrm, const ck_schema_purpose *const *ex, uint32_t nex)
{
    ck_store *st = c->st;
    uint8_t *pn = ck_arena__alloc(&c->aarena, CK_AUDIT_PSEUDONYM_BYTES);
    if (pn == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    ck_audit__pseudonym(pn, st, s->dk, s->sid);
    uint32_t done = 0;
    do {
        uint32_t k = nrm - done < PURGE_FIELDS_PER_ENTRY ? nrm - done : PURGE_FIELDS_PER_ENTRY;
        ck_audit_withheld_field *wh = k ? ck_arena__alloc(&c->aarena, k * sizeof *wh) : NULL;
        ck_audit_detail_item *d = ck_arena__alloc(&c->aarena, 2 * sizeof *d);
        ck_audit_entry *e = NULL;
        if ((k && wh == NULL) || d == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        for (uint32_t i = 0; i < k; i++)
            wh[i] = (ck_audit_withheld_field){rm[done + i]->name, "retention"};
        /* The counts are the subject's, in its first entry only. */
        d[0] = (ck_audit_detail_item){"values_removed", NULL, done == 0 ? (int64_t)nrm : 0};
        d[1] = (ck_audit_detail_item){"consents_expired", NULL, done == 0 ? (int64_t)nex : 0};
        CK_TRY(entry_add(c, &e));
        e->actor = c->actor;
        e->action = "purge";
        e->subject = pn;
        e->withheld = wh;
        e->n_withheld = k;
        e->detail = d;
        e->n_detail = 2;
        done += k;
    } while (done < nrm);
    for (uint32_t i = 0; i < nex; i++) {
        ck_audit_detail_item *d = ck_arena__alloc(&c->aarena, 2 * sizeof *d);
        ck_audit_entry *e = NULL;
        if (d == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        d[0] = (ck_audit_detail_item){"state", ck_consent__state_name(CK_CONSENT_EXPIRED), 0};
        d[1] = (ck_audit_detail_item){"via", PURGE_SOURCE, 0};
        CK_TRY(entry_add(c, &e));
        e->actor = c->actor;
        e->action = "consent";
        e->purpose = ex[i]->name;
        e->subject = pn;
        e->detail = d;
        e->n_detail = 2;
    }
    return CK_OK;
}

/* Close the granted, expired consent `cur` of (s, p) with an expired
 * record (when applying). The record is read in both modes, so that a dry
 * run fails where a real run would. */
static int expire_consent(ck_wctx *w, purge_ctx *c, ck_subj *s, const ck_schema_purpose *p,
                          const uint8_t ptag[CK_PTAG_BYTES], const ck_consent_cur *cur)
{
    ck_consent_rec r;
    CK_TRY(ck_consent__read(&r, w->st, w->txn, s->sid, ptag, cur->seq, s->dk, &w->arena));
    if (r.state != cur->state || r.expires != cur->expires || strcmp(r.purpose, p->name) != 0)
        return ck_err__set(w->st, CK_EINTEGRITY,
                           "the consent index disagrees with the consent record");
    if (!c->apply)
        return CK_OK;
    ck_consent e = CK_CONSENT_INIT;
    e.purpose = p->name;
    e.state = CK_CONSENT_EXPIRED;
    e.fields = r.fields;
    e.nfields = r.nfields;
    e.recipients = r.recipients;
    e.nrecipients = r.nrecipients;
    e.expires = r.expires;
    e.at = r.expires; /* when it stopped holding (> 0: it has an expiry) */
    e.source = PURGE_SOURCE;
    e.collector = c->actor;
    return ck_consent__append(w, s, p, &e, NULL);
}

/* Purge one subject inside the batch's transaction. */
static int purge_subject(ck_wctx *w, purge_ctx *c, const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    ck_store *st = w->st;
    const ck_schema *schema = w->schema;
    ck_subj s = {0};
    const ck_schema_field **rm = NULL;
    const ck_schema_purpose **ex = NULL;
    uint32_t nrm = 0, nex = 0;
    int rc = ck_subject__open(w, &s, sid);
    if (rc == CK_ENOTFOUND) {
        /* No data key: an erasure was interrupted between its commits
         * (erase finishes it). Nothing here can be read or purged. */
        rc = CK_OK;
        goto cleanup;
    }
    CK_GUARD(rc);
    rm = ck_mem__malloc((schema->nfields ? schema->nfields : 1) * sizeof *rm);
    ex = ck_mem__malloc((schema->npurposes ? schema->npurposes : 1) * sizeof *ex);
    CK_ENSURE(rm != NULL && ex != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));

    for (uint32_t i = 0; i < schema->nfields; i++) {
        const ck_schema_field *f = &schema->fields[i];
        if (f->retention_days == 0)
            continue;
        ck_value v;
        int64_t written = 0, keep = (int64_t)f->retention_days * 86400;
        rc = ck_seal__get_at(st, w->txn, s.sid, f->id, s.dk, f->type, &v, &written, &w->arena);
        ck_arena__reset(&w->arena); /* only the time is needed: wipe the value */
        if (rc == CK_ENOTFOUND)
            continue;
        CK_GUARD(rc);
        if (written + keep > c->now)
            continue;
        int64_t inbound = 0;
        rc = ck_contact__last_inbound(&inbound, st, w->txn, schema, s.sid, f->id, s.dk, &w->arena);
        ck_arena__reset(&w->arena);
        CK_GUARD(rc);
        if (inbound + keep > c->now)
            continue;
        if (c->apply)
            CK_GUARD(ck_subject__set_field(w, &s, f, NULL));
        rm[nrm++] = f;
    }

    for (uint32_t i = 0; i < schema->npurposes; i++) {
        const ck_schema_purpose *p = &schema->purposes[i];
        ck_consent_cur cur;
        uint8_t ptag[CK_PTAG_BYTES];
        ck_consent__ptag_of(ptag, st, p);
        CK_GUARD(ck_consent__current(&cur, st, w->txn, s.sid, ptag));
        if (!cur.present || cur.state != CK_CONSENT_GRANTED || cur.expires == 0 ||
            cur.expires > c->now)
            continue;
        rc = expire_consent(w, c, &s, p, ptag, &cur);
        ck_arena__reset(&w->arena);
        CK_GUARD(rc);
        ex[nex++] = p;
    }

    if (nrm == 0 && nex == 0) {
        rc = CK_OK;
        goto cleanup;
    }
    if (c->apply) {
        CK_GUARD(ck_subject__save(w, &s)); /* identifying fields: index entries dropped */
        CK_GUARD(audit_subject(c, &s, rm, nrm, ex, nex));
    }
    c->b.subjects++;
    c->b.values += nrm;
    c->b.consents += nex;
    for (uint32_t i = 0; i < nrm; i++)
        CK_GUARD(tally_add(st, &c->b.fields, rm[i]->name, 1));
    for (uint32_t i = 0; i < nex; i++)
        CK_GUARD(tally_add(st, &c->b.purposes, ex[i]->name, 1));
    rc = CK_OK;
cleanup:
    ck_mem__free(rm);
    ck_mem__free(ex);
    ck_subj__fini(&s);
    return rc;
}

/* The ids of the next batch: up to c->batch subjects after c->last. */
static int collect(purge_ctx *c, MDB_txn *txn)
{
    ck_store *st = c->st;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, st->dbi_subjects, &cur);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot walk the subjects");
    MDB_val k = {CK_SUBJECT_ID_BYTES, c->last}, v;
    mrc = mdb_cursor_get(cur, &k, &v, c->started ? MDB_SET_RANGE : MDB_FIRST);
    if (mrc == 0 && c->started && k.mv_size == CK_SUBJECT_ID_BYTES &&
        memcmp(k.mv_data, c->last, CK_SUBJECT_ID_BYTES) == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    c->nsids = 0;
    int rc = CK_OK;
    while (mrc == 0 && c->nsids < c->batch) {
        if (k.mv_size != CK_SUBJECT_ID_BYTES) {
            rc = ck_err__set(st, CK_EINTEGRITY, "a subject key is malformed");
            break;
        }
        memcpy(c->sids + c->nsids * CK_SUBJECT_ID_BYTES, k.mv_data, CK_SUBJECT_ID_BYTES);
        c->nsids++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == CK_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = ck_err__mdb(st, mrc, "cannot walk the subjects");
    c->batch_last = mrc == MDB_NOTFOUND;
    mdb_cursor_close(cur);
    return rc;
}

/* One batch: the body of a write transaction (or of a read one, dry). */
static int batch_fn(ck_wctx *w, void *ctx)
{
    purge_ctx *c = ctx;
    ck_store *st = w->st;
    figures_clear(&c->b);
    c->nents = 0;
    ck_arena__reset(&c->aarena);
    w->now = c->now;

    CK_TRY(collect(c, w->txn));
    for (size_t i = 0; i < c->nsids; i++)
        CK_TRY(purge_subject(w, c, c->sids + i * CK_SUBJECT_ID_BYTES));
    /* Fail closed: a change that cannot be audited is not committed (if
     * the commit then fails, the entries record an attempt). */
    if (c->apply && c->nents > 0)
        CK_TRY(ck_audit__append_many(st, c->ents, c->nents, true));
    return CK_OK;
}

/* A dry batch: the same body over read transactions. */
static int dry_batch(purge_ctx *c)
{
    ck_store *st = c->st;
    MDB_txn *txn = NULL;
    ck_schema *schema = NULL;
    ck_wctx w;
    bool w_made = false;
    int rc;
    CK_GUARD(ck_env__read_begin(st, &st->data, &txn));
    CK_GUARD(ck_schema__get(&schema, st, txn));
    rc = ck_wctx__init(&w, st, txn, schema);
    w_made = true;
    CK_GUARD(rc);
    CK_GUARD(batch_fn(&w, c));
cleanup:
    if (w_made)
        ck_wctx__fini(&w);
    ck_schema__release(schema);
    ck_env__read_end(&st->data, txn);
    return rc;
}

static int has_schema(bool *out, ck_store *st)
{
    MDB_txn *txn = NULL;
    ck_schema *schema = NULL;
    *out = false;
    int rc = ck_env__read_begin(st, &st->data, &txn);
    if (rc == CK_OK)
        rc = ck_schema__get(&schema, st, txn);
    if (rc == CK_OK)
        *out = true;
    else if (rc == CK_ENOTFOUND)
        rc = CK_OK;
    ck_schema__release(schema);
    ck_env__read_end(&st->data, txn);
    return rc;
}

static json_t *tally_json(const tally *t)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < t->n; i++) {
        if (json_object_set_new(o, t->v[i].name, json_integer((json_int_t)t->v[i].n)) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

static int figures_json(char **out, ck_store *st, const figures *f, bool dry)
{
    json_t *root = json_object();
    json_t *bf = tally_json(&f->fields), *bp = tally_json(&f->purposes);
    int rc = CK_OK;
    if (root == NULL || bf == NULL || bp == NULL ||
        json_object_set_new(root, "dry_run", json_boolean(dry)) != 0 ||
        json_object_set_new(root, "values_removed", json_integer((json_int_t)f->values)) != 0 ||
        json_object_set_new(root, "consents_expired", json_integer((json_int_t)f->consents)) != 0 ||
        json_object_set_new(root, "subjects", json_integer((json_int_t)f->subjects)) != 0 ||
        json_object_set_new(root, "holds_expired", json_integer((json_int_t)f->holds)) != 0 ||
        json_object_set(root, "by_field", bf) != 0 || json_object_set(root, "by_purpose", bp) != 0)
        rc = ck_err__set(st, CK_ENOMEM, "out of memory");
    if (rc == CK_OK && ck_out__json(out, root, JSON_COMPACT | JSON_PRESERVE_ORDER) != CK_OK)
        rc = ck_err__set(st, CK_ENOMEM, "out of memory");
    json_decref(bf);
    json_decref(bp);
    json_decref(root);
    return rc;
}

CK_EXPORT int ck_purge(char **out, ck_store *st, const ck_purge_options *opts, const char *actor)
{
    if (out != NULL)
        *out = NULL;
    if (st == NULL)
        return CK_EINVAL;
    ck_purge_options o = CK_PURGE_OPTIONS_INIT;
    if (opts != NULL) {
        if (opts->version != CK_PURGE_OPTIONS_VERSION)
            return ck_err__set(st, CK_EINVAL, "ck_purge_options version %u is not supported",
                               opts->version);
        o = *opts;
    }
    if ((o.flags & ~CK_PURGE_DRY_RUN) != 0)
        return ck_err__set(st, CK_EINVAL, "unknown purge flags 0x%x", o.flags);
    if (o.batch_subjects > PURGE_BATCH_MAX)
        return ck_err__set(st, CK_EINVAL, "at most %u subjects per batch", PURGE_BATCH_MAX);
    if (actor == NULL || !ck_codec__text_ok(actor, strlen(actor), CK_CONSENT_TEXT_MAX))
        return ck_err__set(st, CK_EINVAL, "a purge needs an actor (1 to %d bytes of text)",
                           CK_CONSENT_TEXT_MAX);

    int rc;
    bool schema_set;
    purge_ctx c;
    memset(&c, 0, sizeof c);
    c.st = st;
    c.actor = actor;
    c.apply = (o.flags & CK_PURGE_DRY_RUN) == 0;
    c.batch = o.batch_subjects ? o.batch_subjects : PURGE_BATCH_DEFAULT;
    c.now = ck_store__now(st);
    c.aarena = (ck_arena)CK_ARENA_INIT;
    if (c.apply && st->data.rdonly) {
        rc = ck_err__set(st, CK_EDENIED, "the store is open read-only (a dry run is allowed)");
        goto cleanup;
    }
    c.sids = ck_mem__malloc((size_t)c.batch * CK_SUBJECT_ID_BYTES);
    CK_ENSURE(c.sids != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(has_schema(&schema_set, st));
    while (schema_set && !c.done) {
        CK_GUARD(c.apply ? ck_subject__write(st, batch_fn, &c) : dry_batch(&c));
        /* Committed (or read): count it and move on. */
        c.total.values += c.b.values;
        c.total.consents += c.b.consents;
        c.total.subjects += c.b.subjects;
        CK_GUARD(tally_merge(st, &c.total.fields, &c.b.fields));
        CK_GUARD(tally_merge(st, &c.total.purposes, &c.b.purposes));
        if (c.nsids > 0) {
            memcpy(c.last, c.sids + (c.nsids - 1) * CK_SUBJECT_ID_BYTES, CK_SUBJECT_ID_BYTES);
            c.started = true;
        }
        c.done = c.batch_last || c.nsids == 0;
    }
    /* Legal holds whose time is over go the way an erasure's key goes. */
    CK_GUARD(c.apply ? ck_hold_expire(&c.total.holds, st, actor)
                     : ck_hold__count_due(&c.total.holds, st));
    if (out != NULL)
        CK_GUARD(figures_json(out, st, &c.total, !c.apply));
    rc = CK_OK;
cleanup:
    figures_free(&c.b);
    figures_free(&c.total);
    ck_mem__free(c.ents);
    ck_mem__free(c.sids);
    ck_arena__free(&c.aarena);
    return rc;
}
