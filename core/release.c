/*
 * release.c - the query layer: what a purpose may see of a subject.
 *
 * The rules are DESIGN.md section 4, written out in docs/release.md, and
 * mirrored by the reference model of tests/test_model.c. For each field
 * asked, the first reason that applies wins:
 *
 *   1. not_in_purpose   the purpose does not declare the field
 *   2. the basis        consent: no record -> no_consent; refused,
 *                       withdrawn, objected; past expiry -> expired; a scope
 *                       that does not cover the field -> no_consent; a
 *                       recipient the record does not name -> recipient.
 *                       legitimate_interest: objected. Any basis: a request
 *                       naming a recipient needs a granted, unexpired
 *                       consent for the purpose that names it -> recipient.
 *   3. special_category a special field needs a granted consent for this
 *                       purpose whose scope names it
 *   4. contact_cap      the channel's address field, once the subject's cap
 *                       for the channel is reached in its window
 *   5. retention        the value is older than the field's retention
 *                       (a channel's address field: counted from the later
 *                       of its write and the customer's last inbound
 *                       contact on the channel)
 *   6. unset            no value - said only of a field that would
 *                       otherwise have been released
 *
 * Nothing is decrypted before the consent index allows it: a release whose
 * fields are all refused at steps 1-2 opens no value. The audit entry is
 * appended before the answer is handed out (fail closed).
 */
#include "audit.h"
#include "consent.h"
#include "value.h"

#include <string.h>

#define REQUEST_FIELDS_MAX CK_SCHEMA_FIELDS_MAX

static const char *const REASONS[] = {
    "released",  "not_in_purpose", "no_consent",       "refused",     "withdrawn", "expired",
    "recipient", "objected",       "special_category", "contact_cap", "retention", "unset"};

CK_EXPORT const char *ck_reason_name(ck_reason r)
{
    return (unsigned)r < sizeof REASONS / sizeof REASONS[0] ? REASONS[r] : "unknown";
}

struct ck_result {
    ck_arena arena;
    char subject[CK_PSEUDONYM_CHARS + 1];
    char *purpose;
    ck_field_result *fields;
    size_t n;
};

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */
/* ------------------------------------------------------------------------ */

/* One release context: a purpose, a recipient, two read transactions. */
typedef struct rel_ctx {
    ck_store *st;
    MDB_txn *txn, *ktxn;
    const ck_schema *schema;
    const ck_schema_purpose *p;
    const char *recipient;
    uint8_t ptag[CK_PTAG_BYTES];
    int64_t now;
    unsigned char *dk; /* guarded */
    /* per subject */
    const uint8_t *sid;
    ck_consent_cur cur;
    bool rec_loaded, rec_valid; /* record loaded; and it is granted, unexpired */
    ck_consent_rec rec;
    bool contacts_loaded;
    ck_contact_log contacts;
    /* Where rec and contacts are decoded: NULL for the arena of the answer
     * being built; a segment's own, reset at each subject, so that the
     * answer built after its predicates does not read them again. */
    ck_arena *subj_arena;
    /* Value records. With two or more fields that may be read (or in a
     * segment) they are fetched together, by one cursor walk over the
     * subject's adjacent values (ck_seal__fetch), when the rules first let
     * a value through; each is opened only when the rules let its field
     * through. The records point into txn's pages: never handed out. */
    const uint16_t *want; /* ascending ids of the fields the request may read */
    MDB_val *recs;        /* the subject's record of each, {0, NULL}: unset */
    size_t nwant;
    bool recs_loaded;
    bool segment;     /* cursors kept across the subjects of a segment */
    MDB_cursor *vcur; /* values, opened at the first fetch */
    MDB_cursor *kcur; /* keyring (segments): the data keys */
} rel_ctx;

/* Start on subject `sid`. `cindex`, when not NULL, is the value of its
 * consent index entry for the purpose, already read by a segment's walk. */
static int subject_begin(rel_ctx *rc, const uint8_t sid[CK_SUBJECT_ID_BYTES], const MDB_val *cindex)
{
    rc->sid = sid;
    rc->rec_loaded = rc->rec_valid = false;
    rc->contacts_loaded = false;
    rc->recs_loaded = false;
    if (rc->kcur != NULL)
        CK_TRY(ck_subject__data_key_at(rc->st, rc->kcur, sid, rc->dk));
    else
        CK_TRY(ck_subject__data_key(rc->st, rc->ktxn, sid, rc->dk));
    if (cindex != NULL)
        return ck_consent__current_decode(&rc->cur, rc->st, cindex);
    return ck_consent__current(&rc->cur, rc->st, rc->txn, sid, rc->ptag);
}

/* Index of field id `id` in rc->want; rc->nwant when absent. */
static size_t want_find(const rel_ctx *rc, uint16_t id)
{
    size_t lo = 0, hi = rc->nwant;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rc->want[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < rc->nwant && rc->want[lo] == id ? lo : rc->nwant;
}

/* Read, open and decode the value of field `f` of the current subject, as
 * ck_seal__get_at does (CK_ENOTFOUND when unset). */
static int read_value(rel_ctx *rc, const ck_schema_field *f, ck_value *raw, int64_t *written,
                      ck_arena *arena)
{
    size_t i = want_find(rc, f->id);
    if (i == rc->nwant || (rc->nwant < 2 && !rc->segment))
        return ck_seal__get_at(rc->st, rc->txn, rc->sid, f->id, rc->dk, f->type, raw, written,
                               arena);
    if (!rc->recs_loaded) {
        if (rc->vcur == NULL) {
            int mrc = mdb_cursor_open(rc->txn, rc->st->dbi_values, &rc->vcur);
            if (mrc != 0) {
                rc->vcur = NULL;
                return ck_err__mdb(rc->st, mrc, "cannot open a cursor");
            }
        }
        CK_TRY(ck_seal__fetch(rc->st, rc->vcur, rc->sid, rc->want, rc->nwant, rc->recs));
        rc->recs_loaded = true;
    }
    if (rc->recs[i].mv_data == NULL)
        return CK_ENOTFOUND; /* unset */
    return ck_seal__open_at(rc->st, rc->sid, f->id, rc->dk, f->type, &rc->recs[i], raw, written,
                            arena);
}

static bool cur_granted(const rel_ctx *rc)
{
    return rc->cur.present && rc->cur.state == CK_CONSENT_GRANTED &&
           (rc->cur.expires == 0 || rc->now < rc->cur.expires);
}

/* The current record, when the index says it is granted and unexpired;
 * checked against the index (which is only trusted to refuse). */
static int load_record(rel_ctx *rc, ck_arena *arena)
{
    if (rc->rec_loaded)
        return CK_OK;
    if (rc->subj_arena != NULL)
        arena = rc->subj_arena;
    rc->rec_loaded = true;
    rc->rec_valid = false;
    if (!cur_granted(rc))
        return CK_OK;
    CK_TRY(
        ck_consent__read(&rc->rec, rc->st, rc->txn, rc->sid, rc->ptag, rc->cur.seq, rc->dk, arena));
    if (rc->rec.state != rc->cur.state || rc->rec.expires != rc->cur.expires ||
        strcmp(rc->rec.purpose, rc->p->name) != 0)
        return ck_err__set(rc->st, CK_EINTEGRITY,
                           "the consent index disagrees with the consent record");
    rc->rec_valid = true;
    return CK_OK;
}

static int basis_reason(rel_ctx *rc, const ck_schema_field *f, ck_reason *out, ck_arena *arena)
{
    *out = CK_RELEASED;
    switch (rc->p->basis) {
    case CK_BASIS_CONSENT:
        if (!rc->cur.present) {
            *out = CK_WITHHELD_NO_CONSENT;
            return CK_OK;
        }
        switch (rc->cur.state) {
        case CK_CONSENT_REFUSED:
            *out = CK_WITHHELD_REFUSED;
            return CK_OK;
        case CK_CONSENT_WITHDRAWN:
            *out = CK_WITHHELD_WITHDRAWN;
            return CK_OK;
        case CK_CONSENT_OBJECTED:
            *out = CK_WITHHELD_OBJECTED;
            return CK_OK;
        case CK_CONSENT_EXPIRED: /* closed by a purge: as a granted one past expiry */
            *out = CK_WITHHELD_EXPIRED;
            return CK_OK;
        case CK_CONSENT_GRANTED:
            break;
        }
        if (!cur_granted(rc)) {
            *out = CK_WITHHELD_EXPIRED;
            return CK_OK;
        }
        CK_TRY(load_record(rc, arena));
        if (rc->rec.nfields > 0 && !ck_consent__scope_has(&rc->rec, f->name)) {
            *out = CK_WITHHELD_NO_CONSENT;
            return CK_OK;
        }
        break;
    case CK_BASIS_LEGITIMATE_INTEREST:
        if (rc->cur.present && rc->cur.state == CK_CONSENT_OBJECTED) {
            *out = CK_WITHHELD_OBJECTED;
            return CK_OK;
        }
        break;
    case CK_BASIS_CONTRACT:
    case CK_BASIS_LEGAL_OBLIGATION:
        break;
    }
    if (rc->recipient != NULL) {
        CK_TRY(load_record(rc, arena));
        if (!rc->rec_valid || !ck_consent__recipient_has(&rc->rec, rc->recipient))
            *out = CK_WITHHELD_RECIPIENT;
    }
    return CK_OK;
}

static int contact_reason(rel_ctx *rc, const ck_schema_field *f, ck_reason *out, ck_arena *arena)
{
    const ck_schema_channel *ch = &rc->p->channel;
    *out = CK_RELEASED;
    if (ch->type == CK_CHANNEL_NONE || ch->field_id != f->id)
        return CK_OK;
    if (!rc->contacts_loaded) {
        CK_TRY(ck_contact__get(&rc->contacts, rc->st, rc->txn, rc->sid, ch->type, rc->dk,
                               rc->subj_arena != NULL ? rc->subj_arena : arena));
        rc->contacts_loaded = true;
    }
    uint32_t cap = ch->cap_count;
    if (rc->contacts.override >= 0 && (uint32_t)rc->contacts.override < cap)
        cap = (uint32_t)rc->contacts.override;
    if (cap == 0 || ck_contact__count(&rc->contacts, rc->now, ch->cap_days) >= cap)
        *out = CK_WITHHELD_CONTACT_CAP;
    return CK_OK;
}

/* Evaluate field `f` for the current subject into `out`. */
static int eval_field(rel_ctx *rc, const ck_schema_field *f, ck_field_result *out, ck_arena *arena)
{
    memset(out, 0, sizeof *out);
    out->field = f->name;
    int pos = ck_schema__purpose_field(rc->p, f->id);
    if (pos < 0) {
        out->reason = CK_WITHHELD_NOT_IN_PURPOSE;
        return CK_OK;
    }
    CK_TRY(basis_reason(rc, f, &out->reason, arena));
    if (out->reason != CK_RELEASED)
        return CK_OK;
    if (f->sensitivity == CK_SENS_SPECIAL) {
        CK_TRY(load_record(rc, arena));
        if (!rc->rec_valid || rc->rec.nfields == 0 || !ck_consent__scope_has(&rc->rec, f->name)) {
            out->reason = CK_WITHHELD_SPECIAL_CATEGORY;
            return CK_OK;
        }
    }
    CK_TRY(contact_reason(rc, f, &out->reason, arena));
    if (out->reason != CK_RELEASED)
        return CK_OK;
    ck_value raw;
    int64_t written = 0;
    int rc_ = read_value(rc, f, &raw, &written, arena);
    if (rc_ == CK_ENOTFOUND) {
        out->reason = CK_WITHHELD_UNSET;
        return CK_OK;
    }
    CK_TRY(rc_);
    if (f->retention_days > 0 && written + (int64_t)f->retention_days * 86400 <= rc->now) {
        /* A channel's address counts from the customer's last inbound
         * contact when that is later (the rule ck_purge applies). */
        int64_t inbound = 0;
        CK_TRY(ck_contact__last_inbound(&inbound, rc->st, rc->txn, rc->schema, rc->sid, f->id,
                                        rc->dk, arena));
        if (inbound + (int64_t)f->retention_days * 86400 <= rc->now) {
            out->reason = CK_WITHHELD_RETENTION;
            return CK_OK;
        }
    }
    rc_ = ck_value__minimize(&out->value, &raw, &rc->p->min[pos], arena);
    if (rc_ != CK_OK)
        return ck_err__set(rc->st, rc_, "cannot minimise field %s", f->name);
    return CK_OK;
}

/* Audit one answer (fail closed: the caller releases nothing on error). */
static int audit_answer(rel_ctx *rc, const ck_result *r, const char *actor, const char *action)
{
#ifdef CK_BENCH_NO_AUDIT
    /* Only in the benchmark's ckstore-bench-noaudit (bench/CMakeLists.txt),
     * which measures what auditing costs a release; never in the library. */
    (void)rc, (void)r, (void)actor, (void)action;
    return CK_OK;
#endif
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
    const char *rel_stack[32];
    ck_audit_withheld_field wh_stack[32];
    const char **rel = rel_stack;
    ck_audit_withheld_field *wh = wh_stack;
    size_t nrel = 0, nwh = 0;
    if (r->n > 32) {
        rel = ck_arena__alloc((ck_arena *)&r->arena, r->n * sizeof *rel);
        wh = ck_arena__alloc((ck_arena *)&r->arena, r->n * sizeof *wh);
        if (rel == NULL || wh == NULL)
            return ck_err__set(rc->st, CK_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->n; i++) {
        if (r->fields[i].reason == CK_RELEASED) {
            rel[nrel++] = r->fields[i].field;
        } else {
            wh[nwh].field = r->fields[i].field;
            wh[nwh].reason = ck_reason_name(r->fields[i].reason);
            nwh++;
        }
    }
    ck_audit__pseudonym(pn, rc->st, rc->dk, rc->sid);
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = action;
    e.purpose = rc->p->name;
    e.recipient = rc->recipient;
    e.subject = pn;
    e.released = rel;
    e.n_released = nrel;
    e.withheld = wh;
    e.n_withheld = nwh;
    return ck_audit__append(rc->st, &e, false, NULL, NULL);
}

/* Fill `r` (reset first) with the answer for the current subject. */
static int answer(rel_ctx *rc, ck_result *r, const ck_schema_field *const *fields, size_t n)
{
    ck_arena__reset(&r->arena);
    r->fields = NULL;
    r->n = 0;
    r->purpose = ck_arena__dup(&r->arena, rc->p->name, rc->p->name_len + 1);
    r->fields = ck_arena__alloc(&r->arena, (n ? n : 1) * sizeof *r->fields);
    if (r->purpose == NULL || r->fields == NULL)
        return ck_err__set(rc->st, CK_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        CK_TRY(eval_field(rc, fields[i], &r->fields[i], &r->arena));
    r->n = n;
    uint8_t ps[CK_PSEUDONYM_BYTES];
    ck_ident__pseudonym(ps, rc->st, rc->p->name, rc->recipient, rc->sid);
    ck_ident__pseudonym_text(r->subject, ps);
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Request set-up shared by ck_release and ck_segment                        */
/* ------------------------------------------------------------------------ */

/* Arrays of a request small enough to live in its set-up (no allocation). */
#define SETUP_INLINE 16

typedef struct setup {
    ck_schema *schema;
    const ck_schema_field **fields;
    size_t nfields;
    uint16_t *want; /* ascending ids of the fields the request may read */
    MDB_val *recs;  /* rel_ctx.recs: one per want */
    size_t nwant, cap_want;
    void *heap; /* the arrays, when they do not fit inline */
    const ck_schema_field *fields_in[SETUP_INLINE];
    MDB_val recs_in[SETUP_INLINE];
    uint16_t want_in[SETUP_INLINE];
} setup;

static void setup_fini(setup *s)
{
    ck_mem__free(s->heap);
    ck_schema__release(s->schema);
    memset(s, 0, sizeof *s);
}

/* The arrays for `n` fields and up to `cap_want` fields read. */
static int setup_arrays(setup *su, ck_store *st, size_t n, size_t cap_want)
{
    if (n <= SETUP_INLINE && cap_want <= SETUP_INLINE) {
        su->fields = su->fields_in;
        su->recs = su->recs_in;
        su->want = su->want_in;
    } else {
        /* n and cap_want are bounded (REQUEST_FIELDS_MAX, SEGMENT_WHERE_MAX):
         * no overflow. */
        size_t nf = n ? n : 1, nw = cap_want ? cap_want : 1;
        uint8_t *p =
            ck_mem__malloc(nf * sizeof *su->fields + nw * sizeof *su->recs + nw * sizeof *su->want);
        if (p == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        su->heap = p;
        su->fields = (const ck_schema_field **)(void *)p;
        su->recs = (MDB_val *)(void *)(p + nf * sizeof *su->fields);
        su->want = (uint16_t *)(void *)(p + nf * sizeof *su->fields + nw * sizeof *su->recs);
    }
    su->cap_want = cap_want;
    return CK_OK;
}

/* Add field id `id` to the ascending set su->want (capacity reserved). */
static void want_add(setup *su, uint16_t id)
{
    size_t i = su->nwant;
    while (i > 0 && su->want[i - 1] > id)
        i--;
    if (i > 0 && su->want[i - 1] == id)
        return;
    memmove(su->want + i + 1, su->want + i, (su->nwant - i) * sizeof *su->want);
    su->want[i] = id;
    su->nwant++;
}

/* Point the context at the set-up's fields to read (after want_add). */
static void setup_want(setup *su, rel_ctx *rc)
{
    rc->want = su->want;
    rc->recs = su->recs;
    rc->nwant = su->nwant;
}

/* Check a request and set `su` and `rc` up for it. `extra_want`: room for
 * that many more fields to read (a segment's predicates). */
static int setup_request(setup *su, rel_ctx *rc, ck_store *st, const char *actor,
                         const char *purpose, const char *recipient, const char *const *fields,
                         size_t nfields, size_t extra_want)
{
    memset(su, 0, sizeof *su);
    if (actor == NULL || !ck_codec__text_ok(actor, strlen(actor), 256))
        return ck_err__set(st, CK_EINVAL, "a release needs an actor (1 to 256 bytes of text)");
    if (purpose == NULL)
        return ck_err__set(st, CK_EINVAL, "a release needs a purpose");
    if (recipient != NULL && !ck_codec__text_ok(recipient, strlen(recipient), 256))
        return ck_err__set(st, CK_EINVAL, "a recipient is 1 to 256 bytes of text");
    if (nfields > REQUEST_FIELDS_MAX || (nfields > 0 && fields == NULL))
        return ck_err__set(st, CK_EINVAL, "at most %d fields", REQUEST_FIELDS_MAX);
    CK_TRY(ck_schema__get(&su->schema, st, rc->txn));
    const ck_schema_purpose *p = ck_schema__purpose(su->schema, purpose, strlen(purpose));
    if (p == NULL)
        return ck_err__set(st, CK_EINVAL, "unknown purpose \"%s\"",
                           ck_shown((char[CK_SHOWN_MAX]){0}, purpose));
    size_t n = nfields ? nfields : p->nfields;
    CK_TRY(setup_arrays(su, st, n, n + extra_want));
    for (size_t i = 0; i < n; i++) {
        const ck_schema_field *f;
        if (nfields) {
            f = fields[i] != NULL ? ck_schema__field(su->schema, fields[i], strlen(fields[i]))
                                  : NULL;
            if (f == NULL)
                return ck_err__set(st, CK_EINVAL, "unknown field \"%s\"",
                                   ck_shown((char[CK_SHOWN_MAX]){0}, fields[i]));
            for (size_t j = 0; j < i; j++)
                if (su->fields[j] == f)
                    return ck_err__set(st, CK_EINVAL, "field %s is asked twice", f->name);
        } else {
            f = ck_schema__field_by_id(su->schema, p->field_ids[i]);
            if (f == NULL)
                return ck_err__set(st, CK_EINTERNAL, "a purpose names a missing field");
        }
        su->fields[i] = f;
        /* Only a field of the purpose can get as far as its value. */
        if (ck_schema__purpose_field(p, f->id) >= 0)
            want_add(su, f->id);
    }
    su->nfields = n;
    setup_want(su, rc);
    rc->st = st;
    rc->schema = su->schema;
    rc->p = p;
    rc->recipient = recipient;
    rc->now = ck_store__now(st);
    ck_consent__ptag_of(rc->ptag, st, p);
    return CK_OK;
}

static ck_result *result_new(void)
{
    ck_result *r = ck_mem__malloc(sizeof *r);
    if (r != NULL) {
        memset(r, 0, sizeof *r);
        r->arena = (ck_arena)CK_ARENA_INIT;
    }
    return r;
}

/* ------------------------------------------------------------------------ */
/* ck_release                                                                */
/* ------------------------------------------------------------------------ */

CK_EXPORT int ck_release(ck_result **out, ck_store *st, const ck_request *req)
{
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (req == NULL || req->version != CK_REQUEST_VERSION)
        return ck_err__set(st, CK_EINVAL, "ck_request version %u is not supported",
                           req != NULL ? req->version : 0);
    int rc;
    rel_ctx rx;
    setup su = {0};
    ck_buf norm = CK_BUF_SECURE_INIT;
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    ck_result *r = NULL;
    memset(&rx, 0, sizeof rx);
    rx.dk = ck_store__key_take(st);
    if (rx.dk == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    CK_GUARD(ck_env__read_begin(st, &st->data, &rx.txn));
    CK_GUARD(setup_request(&su, &rx, st, req->actor, req->purpose, req->recipient, req->fields,
                           req->nfields, 0));
    CK_GUARD(ck_subject__resolve(sid, st, rx.txn, su.schema, &req->subject, req->purpose,
                                 req->recipient, &norm));
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &rx.ktxn));
    r = result_new();
    CK_ENSURE(r != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(subject_begin(&rx, sid, NULL));
    CK_GUARD(answer(&rx, r, su.fields, su.nfields));
    CK_GUARD(audit_answer(&rx, r, req->actor, "release"));
    *out = r;
    r = NULL;
    rc = CK_OK;
cleanup:
    ck_result_free(r);
    ck_env__read_end(&st->keyring, rx.ktxn);
    setup_fini(&su);
    if (rx.vcur != NULL)
        mdb_cursor_close(rx.vcur);
    ck_env__read_end(&st->data, rx.txn);
    ck_buf__free(&norm);
    ck_store__key_give(st, rx.dk);
    return rc;
}

CK_EXPORT const char *ck_result_subject(const ck_result *r)
{
    return r != NULL ? r->subject : "";
}

CK_EXPORT size_t ck_result_count(const ck_result *r)
{
    return r != NULL ? r->n : 0;
}

CK_EXPORT const ck_field_result *ck_result_field(const ck_result *r, size_t i)
{
    return r != NULL && i < r->n ? &r->fields[i] : NULL;
}

static int result_json_buf(ck_buf *b, const ck_result *r)
{
    int rc = ck_buf__append(b, "{\"subject\":\"", 12);
    if (rc == CK_OK)
        rc = ck_buf__append(b, r->subject, strlen(r->subject));
    if (rc == CK_OK)
        rc = ck_buf__append(b, "\",\"purpose\":", 12);
    if (rc == CK_OK)
        rc = ck_value__json_string(b, r->purpose, strlen(r->purpose));
    for (int pass = 0; pass < 2 && rc == CK_OK; pass++) {
        rc = pass == 0 ? ck_buf__append(b, ",\"released\":{", 13)
                       : ck_buf__append(b, "},\"withheld\":{", 14);
        bool first = true;
        for (size_t i = 0; i < r->n && rc == CK_OK; i++) {
            const ck_field_result *f = &r->fields[i];
            if ((f->reason == CK_RELEASED) != (pass == 0))
                continue;
            if (!first)
                rc = ck_buf__append(b, ",", 1);
            first = false;
            if (rc == CK_OK)
                rc = ck_value__json_string(b, f->field, strlen(f->field));
            if (rc == CK_OK)
                rc = ck_buf__append(b, ":", 1);
            if (rc == CK_OK)
                rc = pass == 0 ? ck_value__append_json(b, &f->value)
                               : ck_value__json_string(b, ck_reason_name(f->reason),
                                                       strlen(ck_reason_name(f->reason)));
        }
    }
    if (rc == CK_OK)
        rc = ck_buf__append(b, "}}", 3); /* with the NUL */
    return rc;
}

CK_EXPORT int ck_result_json(char **out, const ck_result *r)
{
    if (out == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (r == NULL)
        return CK_EINVAL;
    ck_buf b = CK_BUF_SECURE_INIT;
    int rc = result_json_buf(&b, r);
    if (rc == CK_OK) {
        *out = ck_out__strndup((const char *)b.p, b.len - 1);
        if (*out == NULL)
            rc = CK_ENOMEM;
    }
    ck_buf__free(&b);
    return rc;
}

CK_EXPORT void ck_result_free(ck_result *r)
{
    if (r == NULL)
        return;
    ck_arena__free(&r->arena);
    sodium_memzero(r, sizeof *r);
    ck_mem__free(r);
}

/* ------------------------------------------------------------------------ */
/* Segments                                                                  */
/* ------------------------------------------------------------------------ */

#define SEGMENT_WHERE_MAX 64

typedef struct seg_pred {
    const ck_schema_field *f;
    ck_pred_op op;
    ck_value v; /* in the cursor's arena, of the released value's type */
} seg_pred;

struct ck_cursor {
    ck_store *st;
    rel_ctx rx;
    setup su;
    char *actor; /* copies: the request is borrowed for ck_segment only */
    char *recipient;
    seg_pred *preds;
    size_t npreds;
    ck_arena arena;      /* predicate values */
    ck_arena subj_arena; /* rx.subj_arena: the candidate's consent record, contacts */
    MDB_cursor *cur;
    MDB_val cindex; /* by_cindex: the candidate's index entry (in txn's pages) */
    bool by_cindex; /* walk the consent index (consent basis) or all subjects */
    bool started, done;
    uint64_t limit, emitted;
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    ck_result *res;
    int err; /* sticky error */
};

/* The type a field is released as under minimisation `m`. */
static ck_type released_type(const ck_schema_field *f, const ck_schema_min *m)
{
    switch (m->kind) {
    case CK_MIN_YEAR:
        return CK_TYPE_INT;
    case CK_MIN_PREFIX:
    case CK_MIN_DOMAIN:
    case CK_MIN_BAND:
        return CK_TYPE_STRING;
    case CK_MIN_NONE:
        break;
    }
    return f->type;
}

static int cmp_values(const ck_value *a, const ck_value *b)
{
    switch (a->type) {
    case CK_TYPE_INT:
        return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    case CK_TYPE_FLOAT:
        return (a->u.f > b->u.f) - (a->u.f < b->u.f);
    case CK_TYPE_DATE:
        return (a->u.date > b->u.date) - (a->u.date < b->u.date);
    case CK_TYPE_TIMESTAMP:
        if (a->u.ts.sec != b->u.ts.sec)
            return (a->u.ts.sec > b->u.ts.sec) - (a->u.ts.sec < b->u.ts.sec);
        return (a->u.ts.nsec > b->u.ts.nsec) - (a->u.ts.nsec < b->u.ts.nsec);
    case CK_TYPE_BOOL:
        return (a->u.b > b->u.b) - (a->u.b < b->u.b);
    case CK_TYPE_STRING:
    case CK_TYPE_BYTES: {
        size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
        int c = n ? memcmp(a->u.str.ptr, b->u.str.ptr, n) : 0;
        if (c != 0)
            return c;
        return (a->u.str.len > b->u.str.len) - (a->u.str.len < b->u.str.len);
    }
    case CK_TYPE_LIST:
        break;
    }
    return 1;
}

static bool pred_holds(const seg_pred *pr, const ck_value *v)
{
    switch (pr->op) {
    case CK_PRED_EQ:
        if (v->type == CK_TYPE_LIST) {
            for (size_t i = 0; i < v->u.list.count; i++) {
                const ck_str *it = &v->u.list.items[i];
                if (it->len == pr->v.u.str.len && memcmp(it->ptr, pr->v.u.str.ptr, it->len) == 0)
                    return true;
            }
            return false;
        }
        return cmp_values(v, &pr->v) == 0;
    case CK_PRED_PREFIX:
        return v->u.str.len >= pr->v.u.str.len &&
               memcmp(v->u.str.ptr, pr->v.u.str.ptr, pr->v.u.str.len) == 0;
    case CK_PRED_GE:
        return cmp_values(v, &pr->v) >= 0;
    case CK_PRED_LE:
        return cmp_values(v, &pr->v) <= 0;
    }
    return false;
}

static int setup_preds(ck_cursor *c, const ck_predicate *where, size_t n)
{
    ck_store *st = c->st;
    if (n > SEGMENT_WHERE_MAX || (n > 0 && where == NULL))
        return ck_err__set(st, CK_EINVAL, "at most %d predicates", SEGMENT_WHERE_MAX);
    c->preds = ck_mem__malloc((n ? n : 1) * sizeof *c->preds);
    if (c->preds == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const ck_predicate *w = &where[i];
        seg_pred *pr = &c->preds[i];
        const ck_schema_field *f =
            w->field != NULL ? ck_schema__field(c->su.schema, w->field, strlen(w->field)) : NULL;
        if (f == NULL)
            return ck_err__set(st, CK_EINVAL, "predicate %zu: unknown field", i + 1);
        int pos = ck_schema__purpose_field(c->rx.p, f->id);
        if (pos < 0)
            return ck_err__set(st, CK_EINVAL,
                               "predicate on %s: the purpose %s does not declare this field",
                               f->name, c->rx.p->name);
        ck_type t = released_type(f, &c->rx.p->min[pos]);
        if (w->value == NULL)
            return ck_err__set(st, CK_EINVAL, "predicate on %s: no value", f->name);
        size_t len = w->len != 0 ? w->len : strlen(w->value);
        bool ok;
        switch (w->op) {
        case CK_PRED_EQ:
            ok = true;
            break;
        case CK_PRED_PREFIX:
            ok = t == CK_TYPE_STRING;
            break;
        case CK_PRED_GE:
        case CK_PRED_LE:
            ok = t == CK_TYPE_INT || t == CK_TYPE_FLOAT || t == CK_TYPE_DATE ||
                 t == CK_TYPE_TIMESTAMP || t == CK_TYPE_STRING;
            break;
        default:
            return ck_err__set(st, CK_EINVAL, "predicate on %s: unknown operator", f->name);
        }
        if (!ok)
            return ck_err__set(st, CK_EINVAL, "predicate on %s: the operator does not apply to %s",
                               f->name, ck_schema__type_name(t));
        char err[128];
        /* A list field is compared item by item: the value is one string. */
        ck_type parse_t = t == CK_TYPE_LIST ? CK_TYPE_STRING : t;
        int rc = ck_value__from_text(&pr->v, parse_t, w->value, len, &c->arena, err, sizeof err);
        if (rc != CK_OK)
            return ck_err__set(st, rc, "predicate on %s: %s", f->name, err);
        pr->f = f;
        pr->op = w->op;
        want_add(&c->su, f->id);
    }
    c->npreds = n;
    setup_want(&c->su, &c->rx);
    return CK_OK;
}

/* Is some field of the answer past the basis and recipient rules? If not,
 * the purpose is not lawful for this subject and request: skip it. */
static bool lawful_for(const ck_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        switch (r->fields[i].reason) {
        case CK_RELEASED:
        case CK_WITHHELD_SPECIAL_CATEGORY:
        case CK_WITHHELD_CONTACT_CAP:
        case CK_WITHHELD_RETENTION:
        case CK_WITHHELD_UNSET:
            return true;
        default:
            break;
        }
    }
    return false;
}

CK_EXPORT int ck_segment(ck_cursor **out, ck_store *st, const ck_segment_request *req)
{
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (req == NULL || req->version != CK_SEGMENT_VERSION)
        return ck_err__set(st, CK_EINVAL, "ck_segment_request version %u is not supported",
                           req != NULL ? req->version : 0);
    int rc;
    ck_cursor *c = ck_mem__malloc(sizeof *c);
    if (c == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    memset(c, 0, sizeof *c);
    c->st = st;
    c->arena = (ck_arena)CK_ARENA_INIT;
    c->subj_arena = (ck_arena)CK_ARENA_INIT;
    c->rx.subj_arena = &c->subj_arena;
    c->limit = req->limit;
    c->rx.dk = ck_store__key_take(st);
    c->res = result_new();
    c->actor = req->actor != NULL ? ck_mem__strndup(req->actor, strlen(req->actor)) : NULL;
    c->recipient =
        req->recipient != NULL ? ck_mem__strndup(req->recipient, strlen(req->recipient)) : NULL;
    CK_ENSURE(c->rx.dk != NULL && c->res != NULL && (req->actor == NULL || c->actor != NULL) &&
                  (req->recipient == NULL || c->recipient != NULL),
              ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(ck_env__read_begin(st, &st->data, &c->rx.txn));
    CK_GUARD(setup_request(&c->su, &c->rx, st, c->actor, req->purpose, c->recipient, req->fields,
                           req->nfields, req->nwhere <= SEGMENT_WHERE_MAX ? req->nwhere : 0));
    CK_GUARD(setup_preds(c, req->where, req->nwhere));
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &c->rx.ktxn));
    c->by_cindex = c->rx.p->basis == CK_BASIS_CONSENT;
    /* Candidates come in ascending subject id order (the consent index is
     * purpose tag || sid): cursors kept over them find each one's data key
     * and values near the last one's. */
    c->rx.segment = true;
    int mrc = mdb_cursor_open(c->rx.txn, c->by_cindex ? st->dbi_cindex : st->dbi_subjects, &c->cur);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot open a cursor"));
    mrc = mdb_cursor_open(c->rx.ktxn, st->dbi_keyring, &c->rx.kcur);
    if (mrc != 0)
        c->rx.kcur = NULL;
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot open a cursor"));
    *out = c;
    c = NULL;
    rc = CK_OK;
cleanup:
    ck_cursor_free(c);
    return rc;
}

/* The next candidate subject id into c->sid; CK_ENOTFOUND at the end. */
static int next_candidate(ck_cursor *c)
{
    ck_store *st = c->st;
    MDB_val k, v;
    int mrc;
    if (c->by_cindex) {
        if (!c->started) {
            k.mv_size = CK_PTAG_BYTES;
            k.mv_data = c->rx.ptag;
            mrc = mdb_cursor_get(c->cur, &k, &v, MDB_SET_RANGE);
        } else {
            mrc = mdb_cursor_get(c->cur, &k, &v, MDB_NEXT);
        }
        c->started = true;
        for (; mrc == 0; mrc = mdb_cursor_get(c->cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != CK_CINDEX_KEY_BYTES ||
                memcmp(k.mv_data, c->rx.ptag, CK_PTAG_BYTES) != 0)
                return CK_ENOTFOUND;
            const uint8_t *p = v.mv_data;
            if (v.mv_size != CK_CINDEX_VAL_BYTES)
                return ck_err__set(st, CK_EINTEGRITY, "a consent index entry is malformed");
            int64_t exp = (int64_t)ck_be64_get(p + 1);
            /* Only granted, unexpired consents can release anything: the
             * others are never decrypted. */
            if (p[0] == CK_CONSENT_GRANTED && (exp == 0 || c->rx.now < exp)) {
                memcpy(c->sid, (const uint8_t *)k.mv_data + CK_PTAG_BYTES, CK_SUBJECT_ID_BYTES);
                c->cindex = v;
                return CK_OK;
            }
        }
    } else {
        mrc = mdb_cursor_get(c->cur, &k, &v, c->started ? MDB_NEXT : MDB_FIRST);
        c->started = true;
        if (mrc == 0) {
            if (k.mv_size != CK_SUBJECT_ID_BYTES)
                return ck_err__set(st, CK_EINTEGRITY, "a subject key is malformed");
            memcpy(c->sid, k.mv_data, CK_SUBJECT_ID_BYTES);
            return CK_OK;
        }
    }
    if (mrc == MDB_NOTFOUND)
        return CK_ENOTFOUND;
    return ck_err__mdb(st, mrc, "cannot walk the store");
}

CK_EXPORT int ck_segment_next(ck_cursor *c, const ck_result **out)
{
    if (out == NULL || c == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (c->err != CK_OK)
        return c->err;
    if (c->done || (c->limit != 0 && c->emitted >= c->limit))
        return CK_ENOTFOUND;
    int rc;
    for (;;) {
        rc = next_candidate(c);
        if (rc != CK_OK)
            break;
        ck_arena__reset(&c->subj_arena); /* the last candidate's record */
        rc = subject_begin(&c->rx, c->sid, c->by_cindex ? &c->cindex : NULL);
        if (rc == CK_ENOTFOUND)
            continue; /* a subject without a key: being erased */
        if (rc != CK_OK)
            break;
        if (c->rx.p->basis == CK_BASIS_LEGITIMATE_INTEREST && c->rx.cur.present &&
            c->rx.cur.state == CK_CONSENT_OBJECTED)
            continue;
        bool match = true;
        ck_arena__reset(&c->res->arena);
        for (size_t i = 0; i < c->npreds && match && rc == CK_OK; i++) {
            ck_field_result fr;
            rc = eval_field(&c->rx, c->preds[i].f, &fr, &c->res->arena);
            match = rc == CK_OK && fr.reason == CK_RELEASED && pred_holds(&c->preds[i], &fr.value);
        }
        if (rc != CK_OK)
            break;
        if (!match)
            continue;
        rc = answer(&c->rx, c->res, c->su.fields, c->su.nfields);
        if (rc != CK_OK)
            break;
        if (!lawful_for(c->res))
            continue;
        rc = audit_answer(&c->rx, c->res, c->actor, "segment");
        if (rc != CK_OK)
            break;
        c->emitted++;
        *out = c->res;
        return CK_OK;
    }
    if (rc == CK_ENOTFOUND) {
        c->done = true;
        return CK_ENOTFOUND;
    }
    c->err = rc;
    return rc;
}

CK_EXPORT void ck_cursor_free(ck_cursor *c)
{
    if (c == NULL)
        return;
    ck_store *st = c->st;
    if (c->cur != NULL)
        mdb_cursor_close(c->cur);
    if (c->rx.vcur != NULL)
        mdb_cursor_close(c->rx.vcur);
    if (c->rx.kcur != NULL)
        mdb_cursor_close(c->rx.kcur);
    ck_env__read_end(&st->keyring, c->rx.ktxn);
    setup_fini(&c->su);
    ck_env__read_end(&st->data, c->rx.txn);
    ck_result_free(c->res);
    ck_arena__free(&c->subj_arena);
    ck_arena__free(&c->arena);
    ck_mem__free(c->preds);
    ck_mem__free(c->actor);
    ck_mem__free(c->recipient);
    ck_store__key_give(st, c->rx.dk);
    ck_mem__free(c);
}
