/*
 * consent.c - consent records (append-only, sealed), the consent index and
 * contact logs. The record layouts are in consent.h and
 * docs/storage-format.md; the rules that read them are in release.c.
 */
#include "consent.h"

#include "audit.h"
#include "value.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CONSENT_RECORD_VERSION 1
#define CONTACT_RECORD_VERSION 1
#define CONSENT_AAD_BYTES      (4 + CK_STORE_ID_BYTES + CK_CONSENT_KEY_BYTES + 1)
#define CONTACT_AAD_BYTES      (4 + CK_STORE_ID_BYTES + CK_SUBJECT_ID_BYTES + 1 + 1)
#define CONSENT_HISTORY_MAX    100000u /* records of one subject shown */

static const char *const STATE_NAMES[] = {NULL,      "granted",  "withdrawn",
                                          "refused", "objected", "expired"};

const char *ck_consent__state_name(ck_consent_state s)
{
    return s >= CK_CONSENT_GRANTED && s <= CK_CONSENT_EXPIRED ? STATE_NAMES[s] : "unknown";
}

/* Only the states a caller records: "expired" is written by ck_purge. */
int ck_consent__state_parse(ck_consent_state *out, const char *s, size_t n)
{
    for (int i = CK_CONSENT_GRANTED; i <= CK_CONSENT_OBJECTED; i++) {
        if (strlen(STATE_NAMES[i]) == n && memcmp(STATE_NAMES[i], s, n) == 0) {
            *out = (ck_consent_state)i;
            return CK_OK;
        }
    }
    return CK_EINVAL;
}

int ck_channel__parse(ck_channel_type *out, const char *s)
{
    static const ck_channel_type all[] = {CK_CHANNEL_EMAIL, CK_CHANNEL_SMS, CK_CHANNEL_PHONE,
                                          CK_CHANNEL_POST};
    for (size_t i = 0; s != NULL && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(ck_schema__channel_name(all[i]), s) == 0) {
            *out = all[i];
            return CK_OK;
        }
    }
    return CK_EINVAL;
}

void ck_consent__ptag(uint8_t out[CK_PTAG_BYTES], const ck_store *st, const char *purpose,
                      size_t len)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, ck_store__subkey(st, CK_SUBKEY_BLIND), CK_KEY_BYTES, CK_PTAG_BYTES);
    crypto_generichash_update(&h, (const unsigned char *)"ckpt1", 5);
    crypto_generichash_update(&h, (const unsigned char *)purpose, len);
    crypto_generichash_final(&h, out, CK_PTAG_BYTES);
}

_Static_assert(sizeof((ck_schema_purpose *)0)->ptag == CK_PTAG_BYTES, "purpose tag size");

void ck_consent__ptag_of(uint8_t out[CK_PTAG_BYTES], const ck_store *st, const ck_schema_purpose *p)
{
    if (p->has_ptag)
        memcpy(out, p->ptag, CK_PTAG_BYTES);
    else
        ck_consent__ptag(out, st, p->name, p->name_len);
}

static void consent_key(uint8_t out[CK_CONSENT_KEY_BYTES], const uint8_t sid[CK_SUBJECT_ID_BYTES],
                        const uint8_t ptag[CK_PTAG_BYTES], uint32_t seq)
{
    memcpy(out, sid, CK_SUBJECT_ID_BYTES);
    memcpy(out + CK_SUBJECT_ID_BYTES, ptag, CK_PTAG_BYTES);
    ck_be32_put(out + CK_SUBJECT_ID_BYTES + CK_PTAG_BYTES, seq);
}

static void consent_aad(uint8_t aad[CONSENT_AAD_BYTES], const ck_store *st,
                        const uint8_t key[CK_CONSENT_KEY_BYTES])
{
    memcpy(aad, "ckc1", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    memcpy(aad + 4 + CK_STORE_ID_BYTES, key, CK_CONSENT_KEY_BYTES);
    aad[CONSENT_AAD_BYTES - 1] = CONSENT_RECORD_VERSION;
}

int ck_consent__current(ck_consent_cur *out, ck_store *st, MDB_txn *txn,
                        const uint8_t sid[CK_SUBJECT_ID_BYTES], const uint8_t ptag[CK_PTAG_BYTES])
{
    uint8_t key[CK_CINDEX_KEY_BYTES];
    memset(out, 0, sizeof *out);
    memcpy(key, ptag, CK_PTAG_BYTES);
    memcpy(key + CK_PTAG_BYTES, sid, CK_SUBJECT_ID_BYTES);
    MDB_val k = {sizeof key, key}, v;
    int mrc = mdb_get(txn, st->dbi_cindex, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return CK_OK;
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read the consent index");
    return ck_consent__current_decode(out, st, &v);
}

int ck_consent__current_decode(ck_consent_cur *out, ck_store *st, const MDB_val *v)
{
    memset(out, 0, sizeof *out);
    const uint8_t *p = v->mv_data;
    if (v->mv_size != CK_CINDEX_VAL_BYTES || p[0] < CK_CONSENT_GRANTED || p[0] > CK_CONSENT_EXPIRED)
        return ck_err__set(st, CK_EINTEGRITY, "a consent index entry is malformed");
    out->present = true;
    out->state = (ck_consent_state)p[0];
    out->expires = (int64_t)ck_be64_get(p + 1);
    out->seq = ck_be32_get(p + 9);
    return CK_OK;
}

/* Strings of a stored record are held to what a writer may write
 * (ck_codec__text_ok). Records authenticate before they are decoded; this
 * keeps the decoder's output safe even so. */
static int read_str_list(ck_mp *r, const char ***out, uint32_t *n, uint32_t max, ck_arena *arena)
{
    uint32_t cnt;
    if (ck_mp__array(r, &cnt) != CK_OK || cnt > max)
        return CK_EFORMAT;
    const char **v = cnt ? ck_arena__alloc(arena, cnt * sizeof *v) : NULL;
    if (cnt && v == NULL)
        return CK_ENOMEM;
    for (uint32_t i = 0; i < cnt; i++) {
        const char *s;
        uint32_t l;
        if (ck_mp__str(r, &s, &l) != CK_OK || !ck_codec__text_ok(s, l, CK_CONSENT_TEXT_MAX))
            return CK_EFORMAT;
        if ((v[i] = ck_arena__strndup(arena, s, l)) == NULL)
            return CK_ENOMEM;
    }
    *out = v;
    *n = cnt;
    return CK_OK;
}

static int read_opt_str(ck_mp *r, const char **out, ck_arena *arena)
{
    ck_mp_kind k;
    if (ck_mp__peek(r, &k) != CK_OK)
        return CK_EFORMAT;
    if (k == CK_MP_NIL) {
        *out = NULL;
        return ck_mp__nil(r);
    }
    const char *s;
    uint32_t l;
    if (ck_mp__str(r, &s, &l) != CK_OK || !ck_codec__text_ok(s, l, CK_CONSENT_TEXT_MAX))
        return CK_EFORMAT;
    *out = ck_arena__strndup(arena, s, l);
    return *out != NULL ? CK_OK : CK_ENOMEM;
}

/* The raw evidence of a record mapped from a TC string: nil, or 1 to
 * CK_TCF_TEXT_MAX bytes of base64url segments joined by '.' (what the
 * decoder accepted), so that it is safe to show as it is. */
static int read_tc_string(ck_mp *r, const char **out, ck_arena *arena)
{
    ck_mp_kind k;
    const char *s;
    uint32_t l;
    *out = NULL;
    if (ck_mp__peek(r, &k) != CK_OK)
        return CK_EFORMAT;
    if (k == CK_MP_NIL)
        return ck_mp__nil(r);
    if (ck_mp__str(r, &s, &l) != CK_OK || l == 0 || l > CK_TCF_TEXT_MAX)
        return CK_EFORMAT;
    for (uint32_t i = 0; i < l; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return CK_EFORMAT;
    }
    *out = ck_arena__strndup(arena, s, l);
    return *out != NULL ? CK_OK : CK_ENOMEM;
}

/* Decode a record's plaintext: 10 elements; an 11th, the raw evidence of
 * a TC string (or nil); a 12th, when it was recorded (real time, ns:
 * orders the history). Elements after those are ignored. */
int ck_consent__decode(ck_consent_rec *out, const uint8_t *p, size_t n, ck_arena *arena)
{
    ck_mp r;
    uint32_t cnt, ver, state;
    const char *s;
    uint32_t l;
    ck_mp__init(&r, p, n);
    memset(out, 0, sizeof *out);
    if (ck_mp__array(&r, &cnt) != CK_OK || cnt < 10 || ck_mp__u32(&r, &ver) != CK_OK || ver != 1)
        return CK_EFORMAT;
    if (ck_mp__str(&r, &s, &l) != CK_OK || !ck_codec__text_ok(s, l, CK_SCHEMA_NAME_MAX))
        return CK_EFORMAT;
    if ((out->purpose = ck_arena__strndup(arena, s, l)) == NULL)
        return CK_ENOMEM;
    if (ck_mp__u32(&r, &state) != CK_OK || state < CK_CONSENT_GRANTED || state > CK_CONSENT_EXPIRED)
        return CK_EFORMAT;
    out->state = (ck_consent_state)state;
    if (ck_mp__i64(&r, &out->at) != CK_OK || ck_mp__i64(&r, &out->expires) != CK_OK)
        return CK_EFORMAT;
    int rc = read_str_list(&r, &out->fields, &out->nfields, CK_SCHEMA_FIELDS_MAX, arena);
    if (rc == CK_OK)
        rc = read_str_list(&r, &out->recipients, &out->nrecipients, CK_CONSENT_RECIPS_MAX, arena);
    if (rc == CK_OK)
        rc = read_opt_str(&r, &out->source, arena);
    if (rc == CK_OK)
        rc = read_opt_str(&r, &out->notice, arena);
    if (rc == CK_OK)
        rc = read_opt_str(&r, &out->collector, arena);
    if (rc == CK_OK && cnt >= 11)
        rc = read_tc_string(&r, &out->tc_string, arena);
    if (rc == CK_OK && cnt >= 12 && ck_mp__u64(&r, &out->recorded_ns) != CK_OK)
        rc = CK_EFORMAT;
    return rc;
}

static int open_record(ck_consent_rec *out, ck_store *st, const uint8_t key[CK_CONSENT_KEY_BYTES],
                       const MDB_val *v, const unsigned char dk[CK_KEY_BYTES], ck_arena *arena)
{
    uint8_t aad[CONSENT_AAD_BYTES];
    const uint8_t *pt;
    size_t pt_len;
    consent_aad(aad, st, key);
    CK_TRY(ck_seal__record_open(&pt, &pt_len, st, v, CONSENT_RECORD_VERSION, aad, sizeof aad, dk,
                                arena, "a consent record"));
    int rc = ck_consent__decode(out, pt, pt_len, arena);
    if (rc != CK_OK)
        return ck_err__set(st, rc == CK_ENOMEM ? rc : CK_EINTEGRITY,
                           "a consent record does not decode");
    out->seq = ck_be32_get(key + CK_SUBJECT_ID_BYTES + CK_PTAG_BYTES);
    return CK_OK;
}

int ck_consent__read(ck_consent_rec *out, ck_store *st, MDB_txn *txn,
                     const uint8_t sid[CK_SUBJECT_ID_BYTES], const uint8_t ptag[CK_PTAG_BYTES],
                     uint32_t seq, const unsigned char dk[CK_KEY_BYTES], ck_arena *arena)
{
    uint8_t key[CK_CONSENT_KEY_BYTES];
    consent_key(key, sid, ptag, seq);
    MDB_val k = {sizeof key, key}, v;
    int mrc = mdb_get(txn, st->dbi_consents, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_EINTEGRITY, "the consent index names a missing record");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read a consent record");
    return open_record(out, st, key, &v, dk, arena);
}

bool ck_consent__scope_has(const ck_consent_rec *r, const char *name)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if (strcmp(r->fields[i], name) == 0)
            return true;
    return false;
}

bool ck_consent__recipient_has(const ck_consent_rec *r, const char *recipient)
{
    for (uint32_t i = 0; i < r->nrecipients; i++)
        if (strcmp(r->recipients[i], recipient) == 0)
            return true;
    return false;
}

int ck_consent__check(ck_store *st, const ck_schema *schema, const ck_consent *c,
                      const ck_schema_purpose **p_out)
{
    *p_out = NULL;
    if (c == NULL || c->version != CK_CONSENT_VERSION)
        return ck_err__set(st, CK_EINVAL, "ck_consent version %u is not supported",
                           c != NULL ? c->version : 0);
    if (c->purpose == NULL)
        return ck_err__set(st, CK_EINVAL, "a consent needs a purpose");
    const ck_schema_purpose *p = ck_schema__purpose(schema, c->purpose, strlen(c->purpose));
    if (p == NULL)
        return ck_err__set(st, CK_EINVAL, "unknown purpose \"%s\"",
                           ck_shown((char[CK_SHOWN_MAX]){0}, c->purpose));
    if (c->state < CK_CONSENT_GRANTED || c->state > CK_CONSENT_OBJECTED)
        return ck_err__set(st, CK_EINVAL, "%s: unknown consent state %d", p->name, (int)c->state);
    if (c->nfields > 0 && c->fields == NULL)
        return ck_err__set(st, CK_EINVAL, "%s: fields missing", p->name);
    for (size_t i = 0; i < c->nfields; i++) {
        const char *fn = c->fields[i];
        const ck_schema_field *f = fn != NULL ? ck_schema__field(schema, fn, strlen(fn)) : NULL;
        if (f == NULL)
            return ck_err__set(st, CK_EINVAL, "%s: unknown field in the scope", p->name);
        if (ck_schema__purpose_field(p, f->id) < 0)
            return ck_err__set(st, CK_EINVAL, "%s: field %s is not one of the purpose's fields",
                               p->name, f->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->fields[j], fn) == 0)
                return ck_err__set(st, CK_EINVAL, "%s: field %s is in the scope twice", p->name,
                                   f->name);
    }
    if (c->nrecipients > CK_CONSENT_RECIPS_MAX || (c->nrecipients > 0 && c->recipients == NULL))
        return ck_err__set(st, CK_EINVAL, "%s: at most %d recipients", p->name,
                           CK_CONSENT_RECIPS_MAX);
    for (size_t i = 0; i < c->nrecipients; i++)
        if (c->recipients[i] == NULL ||
            !ck_codec__text_ok(c->recipients[i], strlen(c->recipients[i]), CK_CONSENT_TEXT_MAX))
            return ck_err__set(st, CK_EINVAL,
                               "%s: a recipient is 1 to %d bytes of text without control "
                               "characters",
                               p->name, CK_CONSENT_TEXT_MAX);
    const char *ev[] = {c->source, c->notice, c->collector};
    for (size_t i = 0; i < 3; i++)
        if (ev[i] != NULL && !ck_codec__text_ok(ev[i], strlen(ev[i]), CK_CONSENT_TEXT_MAX))
            return ck_err__set(st, CK_EINVAL,
                               "%s: source, notice and collector are 1 to %d bytes of text",
                               p->name, CK_CONSENT_TEXT_MAX);
    if (c->expires < 0 || c->at < 0)
        return ck_err__set(st, CK_EINVAL, "%s: times are Unix seconds, not negative", p->name);
    *p_out = p;
    return CK_OK;
}

static void pack_opt(ck_mp_writer *mw, const char *s)
{
    if (s == NULL)
        msgpack_pack_nil(&mw->pk);
    else
        ck_mp_writer__cstr(mw, s);
}

int ck_consent__append(ck_wctx *w, ck_subj *s, const ck_schema_purpose *p, const ck_consent *c,
                       uint32_t *seq_out)
{
    return ck_consent__append_ev(w, s, p, c, NULL, 0, seq_out);
}

int ck_consent__append_ev(ck_wctx *w, ck_subj *s, const ck_schema_purpose *p, const ck_consent *c,
                          const char *tc, size_t tc_len, uint32_t *seq_out)
{
    ck_store *st = w->st;
    uint8_t ptag[CK_PTAG_BYTES], key[CK_CONSENT_KEY_BYTES], aad[CONSENT_AAD_BYTES];
    if (tc != NULL && (tc_len == 0 || tc_len > CK_TCF_TEXT_MAX))
        return ck_err__set(st, CK_EINTERNAL, "%s: raw evidence of a bad size", p->name);
    ck_consent__ptag_of(ptag, st, p); /* the schema snapshot's, computed once */
    CK_TRY(ck_wctx__cursor(w, st->dbi_consents, &w->cur_consents));
    ck_consent_cur cur = {0};
    /* A subject created in this write has no record yet. */
    if (!s->is_new)
        CK_TRY(ck_consent__current(&cur, st, w->txn, s->sid, ptag));
    if (cur.present && cur.seq == UINT32_MAX)
        return ck_err__set(st, CK_ELIMIT, "%s: too many consent records", p->name);
    uint32_t seq = cur.present ? cur.seq + 1 : 1;
    int64_t at = c->at != 0 ? c->at : w->now;

    ck_mp_writer mw;
    ck_buf__reset(&w->scratch);
    ck_mp_writer__init(&mw, &w->scratch);
    /* 11th element: the raw evidence (nil when there is none); 12th: when
     * the record was made, in real-time nanoseconds, so that the history
     * keeps the order in which the store learned it even when `at` (which
     * a TC string may date in the past) ties or goes back. */
    struct timespec now_ts;
    clock_gettime(CLOCK_REALTIME, &now_ts);
    uint64_t recorded = (uint64_t)now_ts.tv_sec * 1000000000u + (uint64_t)now_ts.tv_nsec;
    ck_mp_writer__array(&mw, 12);
    ck_mp_writer__u64(&mw, 1);
    ck_mp_writer__str(&mw, p->name, p->name_len);
    ck_mp_writer__u64(&mw, (uint64_t)c->state);
    ck_mp_writer__i64(&mw, at);
    ck_mp_writer__i64(&mw, c->expires);
    ck_mp_writer__array(&mw, (uint32_t)c->nfields);
    for (size_t i = 0; i < c->nfields; i++)
        ck_mp_writer__cstr(&mw, c->fields[i]);
    ck_mp_writer__array(&mw, (uint32_t)c->nrecipients);
    for (size_t i = 0; i < c->nrecipients; i++)
        ck_mp_writer__cstr(&mw, c->recipients[i]);
    pack_opt(&mw, c->source);
    pack_opt(&mw, c->notice);
    pack_opt(&mw, c->collector);
    if (tc != NULL)
        ck_mp_writer__str(&mw, tc, tc_len);
    else
        msgpack_pack_nil(&mw.pk);
    ck_mp_writer__u64(&mw, recorded);
    if (mw.rc != CK_OK) {
        ck_buf__reset(&w->scratch);
        return ck_err__set(st, mw.rc, "cannot encode a consent record");
    }

    consent_key(key, s->sid, ptag, seq);
    consent_aad(aad, st, key);
    CK_TRY(ck_seal__record_put_cur(st, w->cur_consents, key, sizeof key, CONSENT_RECORD_VERSION,
                                   aad, sizeof aad, &w->scratch, s->dk,
                                   "cannot write a consent record"));

    uint8_t ckey[CK_CINDEX_KEY_BYTES], cval[CK_CINDEX_VAL_BYTES];
    memcpy(ckey, ptag, CK_PTAG_BYTES);
    memcpy(ckey + CK_PTAG_BYTES, s->sid, CK_SUBJECT_ID_BYTES);
    cval[0] = (uint8_t)c->state;
    ck_be64_put(cval + 1, (uint64_t)c->expires);
    ck_be32_put(cval + 9, seq);
    MDB_val ck = {sizeof ckey, ckey}, cv = {sizeof cval, cval};
    int mrc = ck_mdb__put(w->txn, st->dbi_cindex, &ck, &cv, 0);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot write the consent index");
    if (seq_out != NULL)
        *seq_out = seq;
    return CK_OK;
}

int ck_consent__audit(ck_store *st, const char *actor, const unsigned char dk[CK_KEY_BYTES],
                      const uint8_t sid[CK_SUBJECT_ID_BYTES], const char *purpose,
                      ck_consent_state state, const char *via)
{
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
    ck_audit__pseudonym(pn, st, dk, sid);
    ck_audit_detail_item d[2] = {{"state", ck_consent__state_name(state), 0}, {"via", via, 0}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = "consent";
    e.purpose = purpose;
    e.subject = pn;
    e.detail = d;
    e.n_detail = 2;
    return ck_audit__append(st, &e, true, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Public: recording and showing consent                                     */
/* ------------------------------------------------------------------------ */

typedef struct record_ctx {
    const ck_who *who;
    const ck_consent *c;
    const char *actor;
} record_ctx;

static int record_fn(ck_wctx *w, void *ctx)
{
    record_ctx *rc_ = ctx;
    const ck_schema_purpose *p;
    ck_subj s = {0};
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    CK_TRY(ck_consent__check(w->st, w->schema, rc_->c, &p));
    CK_TRY(ck_subject__resolve(sid, w->st, w->txn, w->schema, rc_->who, NULL, NULL, &w->norm));
    int rc = ck_subject__open(w, &s, sid);
    if (rc == CK_OK)
        rc = ck_consent__append(w, &s, p, rc_->c, NULL);
    /* Audited before the commit: a change that cannot be audited is not
     * made (if the commit then fails, the entry records an attempt). */
    if (rc == CK_OK)
        rc = ck_consent__audit(w->st, rc_->actor, s.dk, s.sid, p->name, rc_->c->state, "api");
    ck_subj__fini(&s);
    return rc;
}

CK_EXPORT int ck_consent_record(ck_store *st, const ck_who *who, const ck_consent *c,
                                const char *actor)
{
    if (st == NULL)
        return CK_EINVAL;
    if (actor == NULL)
        return ck_err__set(st, CK_EINVAL, "a consent change needs an actor");
    record_ctx rc_ = {who, c, actor};
    return ck_subject__write(st, record_fn, &rc_);
}

/* ------------------------------------------------------------------------ */
/* A subject's records, and their JSON (ck_consent_json, ck_export)          */
/* ------------------------------------------------------------------------ */

void ck_consent__list_free(ck_consent_list *l)
{
    if (l->recs != NULL) {
        sodium_memzero(l->recs, l->cap * sizeof *l->recs);
        ck_mem__free(l->recs);
    }
    ck_mem__free(l->order);
    memset(l, 0, sizeof *l);
}

/* Make room for one more record. */
static int list_grow(ck_store *st, ck_consent_list *l)
{
    if (l->n < l->cap)
        return CK_OK;
    size_t cap = l->cap ? l->cap * 2 : 16;
    ck_consent_rec *p = ck_mem__malloc(cap * sizeof *p);
    if (p == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    if (l->n > 0)
        memcpy(p, l->recs, l->n * sizeof *p);
    if (l->recs != NULL) {
        sodium_memzero(l->recs, l->cap * sizeof *l->recs);
        ck_mem__free(l->recs);
    }
    l->recs = p;
    l->cap = cap;
    return CK_OK;
}

/* order[] = the positions of `r`, stably sorted by when the store recorded
 * each record (bottom-up merge sort: the history may be long). */
static void sort_recorded(size_t *order, size_t *tmp, const ck_consent_rec *r, size_t n)
{
    size_t *src = order, *dst = tmp;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                dst[o++] = r[src[b]].recorded_ns < r[src[a]].recorded_ns ? src[b++] : src[a++];
            while (a < mid)
                dst[o++] = src[a++];
            while (b < hi)
                dst[o++] = src[b++];
        }
        size_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != order)
        memcpy(order, src, n * sizeof *order);
}

int ck_consent__list(ck_consent_list *out, ck_store *st, MDB_txn *txn,
                     const uint8_t sid[CK_SUBJECT_ID_BYTES], const unsigned char dk[CK_KEY_BYTES],
                     ck_arena *arena)
{
    int rc;
    MDB_cursor *cur = NULL;
    size_t *tmp = NULL;
    memset(out, 0, sizeof *out);
    int mrc = mdb_cursor_open(txn, st->dbi_consents, &cur);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot read consents"));
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)sid}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != CK_CONSENT_KEY_BYTES || memcmp(k.mv_data, sid, CK_SUBJECT_ID_BYTES) != 0)
            break;
        CK_ENSURE(out->n < CONSENT_HISTORY_MAX,
                  ck_err__set(st, CK_ELIMIT, "more than %u consent records", CONSENT_HISTORY_MAX));
        CK_GUARD(list_grow(st, out));
        CK_GUARD(open_record(&out->recs[out->n], st, k.mv_data, &v, dk, arena));
        out->n++;
    }
    CK_ENSURE(mrc == 0 || mrc == MDB_NOTFOUND, ck_err__mdb(st, mrc, "cannot read consents"));
    /* History in the order the store learned it, across purposes (records
     * of one purpose are adjacent in key order, not in time). */
    out->order = ck_mem__malloc((out->n ? out->n : 1) * sizeof *out->order);
    tmp = ck_mem__malloc((out->n ? out->n : 1) * sizeof *tmp);
    CK_ENSURE(out->order != NULL && tmp != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    sort_recorded(out->order, tmp, out->recs, out->n);
    rc = CK_OK;
cleanup:
    ck_mem__free(tmp);
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (rc != CK_OK)
        ck_consent__list_free(out);
    return rc;
}

bool ck_consent__is_current(const ck_consent_list *l, size_t i)
{
    return i + 1 == l->n || strcmp(l->recs[i].purpose, l->recs[i + 1].purpose) != 0;
}

void ck_consent__time_text(char out[CK_TS_TEXT_MAX], int64_t sec, int32_t nsec)
{
    ck_value v;
    memset(&v, 0, sizeof v);
    v.type = CK_TYPE_TIMESTAMP;
    v.u.ts.sec = sec;
    v.u.ts.nsec = nsec;
    if (ck_ts__format(out, CK_TS_TEXT_MAX, &v) != CK_OK)
        out[0] = '\0';
}

/* A time of a record: RFC 3339 UTC, or the integer when it has no such
 * form (a year past 9999). */
static int time_json(ck_buf *b, int64_t t)
{
    char text[CK_TS_TEXT_MAX];
    ck_consent__time_text(text, t, 0);
    if (text[0] != '\0')
        return ck_value__json_string(b, text, strlen(text));
    snprintf(text, sizeof text, "%lld", (long long)t);
    return ck_buf__append(b, text, strlen(text));
}

static int key_json(ck_buf *b, const char *key, bool first)
{
    if (!first)
        CK_TRY(ck_buf__append(b, ",", 1));
    CK_TRY(ck_value__json_string(b, key, strlen(key)));
    return ck_buf__append(b, ":", 1);
}

static int str_member(ck_buf *b, const char *key, const char *s)
{
    if (s == NULL)
        return CK_OK;
    CK_TRY(key_json(b, key, false));
    return ck_value__json_string(b, s, strlen(s));
}

static int str_list_json(ck_buf *b, const char *const *v, uint32_t n)
{
    CK_TRY(ck_buf__append(b, "[", 1));
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0)
            CK_TRY(ck_buf__append(b, ",", 1));
        CK_TRY(ck_value__json_string(b, v[i], strlen(v[i])));
    }
    return ck_buf__append(b, "]", 1);
}

int ck_consent__record_json(ck_buf *b, const ck_consent_rec *r, bool with_recorded)
{
    const char *state = ck_consent__state_name(r->state);
    CK_TRY(ck_buf__append(b, "{", 1));
    CK_TRY(key_json(b, "purpose", true));
    CK_TRY(ck_value__json_string(b, r->purpose, strlen(r->purpose)));
    CK_TRY(key_json(b, "state", false));
    CK_TRY(ck_value__json_string(b, state, strlen(state)));
    CK_TRY(key_json(b, "fields", false));
    if (r->nfields > 0)
        CK_TRY(str_list_json(b, r->fields, r->nfields));
    else
        CK_TRY(ck_buf__append(b, "\"all\"", 5));
    CK_TRY(key_json(b, "recipients", false));
    CK_TRY(str_list_json(b, r->recipients, r->nrecipients));
    if (r->expires != 0) {
        CK_TRY(key_json(b, "expires", false));
        CK_TRY(time_json(b, r->expires));
    }
    CK_TRY(key_json(b, "at", false));
    CK_TRY(time_json(b, r->at));
    CK_TRY(str_member(b, "source", r->source));
    CK_TRY(str_member(b, "notice", r->notice));
    CK_TRY(str_member(b, "collector", r->collector));
    CK_TRY(str_member(b, "tc_string", r->tc_string));
    if (with_recorded && r->recorded_ns != 0) {
        char text[CK_TS_TEXT_MAX];
        ck_consent__time_text(text, (int64_t)(r->recorded_ns / 1000000000u),
                              (int32_t)(r->recorded_ns % 1000000000u));
        CK_TRY(str_member(b, "recorded", text[0] != '\0' ? text : NULL));
    }
    return ck_buf__append(b, "}", 1);
}

int ck_consent__json(ck_buf *b, const ck_consent_list *l, bool with_recorded)
{
    bool first = true;
    CK_TRY(ck_buf__append(b, "{\"current\":{", 12));
    for (size_t i = 0; i < l->n; i++) {
        if (!ck_consent__is_current(l, i))
            continue;
        CK_TRY(key_json(b, l->recs[i].purpose, first));
        CK_TRY(ck_consent__record_json(b, &l->recs[i], with_recorded));
        first = false;
    }
    CK_TRY(ck_buf__append(b, "},\"history\":[", 13));
    for (size_t i = 0; i < l->n; i++) {
        if (i > 0)
            CK_TRY(ck_buf__append(b, ",", 1));
        CK_TRY(ck_consent__record_json(b, &l->recs[l->order[i]], with_recorded));
    }
    return ck_buf__append(b, "]}", 2);
}

CK_EXPORT int ck_consent_json(char **out, ck_store *st, const ck_who *who)
{
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    *out = NULL;
    MDB_txn *txn = NULL, *ktxn = NULL;
    ck_schema *schema = NULL;
    ck_buf norm = CK_BUF_SECURE_INIT, b = CK_BUF_SECURE_INIT;
    ck_arena arena = CK_ARENA_INIT;
    ck_consent_list cl;
    unsigned char *dk = ck_mem__smalloc(CK_KEY_BYTES);
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    int rc;
    memset(&cl, 0, sizeof cl);
    CK_ENSURE(dk != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(ck_env__read_begin(st, &st->data, &txn));
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &ktxn));
    rc = ck_schema__get(&schema, st, txn);
    if (rc != CK_OK && rc != CK_ENOTFOUND)
        goto cleanup;
    CK_GUARD(ck_subject__resolve(sid, st, txn, schema, who, NULL, NULL, &norm));
    CK_GUARD(ck_subject__data_key(st, ktxn, sid, dk));
    CK_GUARD(ck_consent__list(&cl, st, txn, sid, dk, &arena));
    rc = ck_consent__json(&b, &cl, false);
    CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "cannot write the consents as JSON"));
    *out = ck_out__strndup((const char *)b.p, b.len);
    CK_ENSURE(*out != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    rc = CK_OK;
cleanup:
    ck_schema__release(schema);
    ck_env__read_end(&st->keyring, ktxn);
    ck_env__read_end(&st->data, txn);
    ck_consent__list_free(&cl);
    ck_arena__free(&arena);
    ck_buf__free(&b);
    ck_buf__free(&norm);
    ck_mem__sfree(dk);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Contacts                                                                  */
/* ------------------------------------------------------------------------ */

static void contact_key(uint8_t out[CK_SUBJECT_ID_BYTES + 1],
                        const uint8_t sid[CK_SUBJECT_ID_BYTES], ck_channel_type ch)
{
    memcpy(out, sid, CK_SUBJECT_ID_BYTES);
    out[CK_SUBJECT_ID_BYTES] = (uint8_t)ch;
}

static void contact_aad(uint8_t aad[CONTACT_AAD_BYTES], const ck_store *st,
                        const uint8_t key[CK_SUBJECT_ID_BYTES + 1])
{
    memcpy(aad, "ckn1", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    memcpy(aad + 4 + CK_STORE_ID_BYTES, key, CK_SUBJECT_ID_BYTES + 1);
    aad[CONTACT_AAD_BYTES - 1] = CONTACT_RECORD_VERSION;
}

int ck_contact__get(ck_contact_log *out, ck_store *st, MDB_txn *txn,
                    const uint8_t sid[CK_SUBJECT_ID_BYTES], ck_channel_type ch,
                    const unsigned char dk[CK_KEY_BYTES], ck_arena *arena)
{
    uint8_t key[CK_SUBJECT_ID_BYTES + 1], aad[CONTACT_AAD_BYTES];
    out->override = -1;
    out->n = 0;
    out->times = NULL;
    out->last_inbound = 0;
    contact_key(key, sid, ch);
    MDB_val k = {sizeof key, key}, v;
    int mrc = mdb_get(txn, st->dbi_contacts, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return CK_OK;
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read a contact log");
    const uint8_t *pt;
    size_t pt_len;
    contact_aad(aad, st, key);
    CK_TRY(ck_seal__record_open(&pt, &pt_len, st, &v, CONTACT_RECORD_VERSION, aad, sizeof aad, dk,
                                arena, "a contact log"));
    ck_mp r;
    uint32_t cnt, n;
    int64_t ov;
    ck_mp__init(&r, pt, pt_len);
    if (ck_mp__array(&r, &cnt) != CK_OK || cnt < 2 || ck_mp__i64(&r, &ov) != CK_OK || ov < -1 ||
        ov > (int64_t)CK_SCHEMA_CAP_COUNT_MAX || ck_mp__array(&r, &n) != CK_OK ||
        n > CK_CONTACT_TIMES_MAX)
        return ck_err__set(st, CK_EINTEGRITY, "a contact log does not decode");
    out->times = n ? ck_arena__alloc(arena, n * sizeof(int64_t)) : NULL;
    if (n && out->times == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++)
        if (ck_mp__i64(&r, &out->times[i]) != CK_OK)
            return ck_err__set(st, CK_EINTEGRITY, "a contact log does not decode");
    /* A 3rd element (logs written since inbound contacts exist): the time
     * of the customer's last inbound contact, 0 = none. Older logs have 2;
     * elements after the ones known are ignored. */
    int64_t inbound = 0;
    if (cnt >= 3 && (ck_mp__i64(&r, &inbound) != CK_OK || inbound < 0))
        return ck_err__set(st, CK_EINTEGRITY, "a contact log does not decode");
    out->override = (int32_t)ov;
    out->n = n;
    out->last_inbound = inbound;
    return CK_OK;
}

uint32_t ck_contact__count(const ck_contact_log *log, int64_t now, uint32_t days)
{
    int64_t from = now - (int64_t)days * 86400;
    uint32_t c = 0;
    for (uint32_t i = 0; i < log->n; i++)
        if (log->times[i] > from && log->times[i] <= now)
            c++;
    return c;
}

static int contact_put(ck_wctx *w, ck_subj *s, ck_channel_type ch, const ck_contact_log *log)
{
    ck_store *st = w->st;
    uint8_t key[CK_SUBJECT_ID_BYTES + 1], aad[CONTACT_AAD_BYTES];
    /* Keep what some window may still count, and at most the last
     * CK_CONTACT_TIMES_MAX (no cap counts more than CK_SCHEMA_CAP_COUNT_MAX). */
    int64_t keep_from = w->now - (int64_t)CK_SCHEMA_CAP_DAYS_MAX * 86400;
    uint32_t first = 0;
    while (first < log->n && log->times[first] <= keep_from)
        first++;
    if (log->n - first > CK_CONTACT_TIMES_MAX)
        first = log->n - CK_CONTACT_TIMES_MAX;
    ck_mp_writer mw;
    ck_buf__reset(&w->scratch);
    ck_mp_writer__init(&mw, &w->scratch);
    ck_mp_writer__array(&mw, 3);
    ck_mp_writer__i64(&mw, log->override);
    ck_mp_writer__array(&mw, log->n - first);
    for (uint32_t i = first; i < log->n; i++)
        ck_mp_writer__i64(&mw, log->times[i]);
    ck_mp_writer__i64(&mw, log->last_inbound);
    if (mw.rc != CK_OK) {
        ck_buf__reset(&w->scratch);
        return ck_err__set(st, mw.rc, "cannot encode a contact log");
    }
    contact_key(key, s->sid, ch);
    contact_aad(aad, st, key);
    CK_TRY(ck_seal__record_put(st, w->txn, st->dbi_contacts, key, sizeof key,
                               CONTACT_RECORD_VERSION, aad, sizeof aad, &w->scratch, s->dk,
                               "cannot write a contact log"));
    return CK_OK;
}

typedef struct contact_ctx {
    const ck_who *who;
    ck_channel_type ch;
    const char *channel;
    int limit;     /* ck_contact_limit: count, or -1 */
    bool is_limit; /* else: record a contact */
    bool inbound;  /* a contact the customer initiated: not counted */
    const char *actor;
} contact_ctx;

static int contact_fn(ck_wctx *w, void *ctx)
{
    contact_ctx *c = ctx;
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    ck_subj s = {0};
    ck_contact_log log;
    CK_TRY(ck_subject__resolve(sid, w->st, w->txn, w->schema, c->who, NULL, NULL, &w->norm));
    int rc = ck_subject__open(w, &s, sid);
    if (rc == CK_OK)
        rc = ck_contact__get(&log, w->st, w->txn, s.sid, c->ch, s.dk, &w->arena);
    int64_t *times = NULL;
    if (rc == CK_OK && c->inbound) {
        /* Only the last one matters (retention of the channel's address):
         * nothing more is kept. It never goes back if the clock does. */
        if (w->now > log.last_inbound)
            log.last_inbound = w->now;
    } else if (rc == CK_OK && !c->is_limit) {
        times = ck_arena__alloc(&w->arena, ((size_t)log.n + 1) * sizeof *times);
        if (times == NULL) {
            rc = ck_err__set(w->st, CK_ENOMEM, "out of memory");
        } else {
            if (log.n)
                memcpy(times, log.times, log.n * sizeof *times);
            /* Keep the times sorted even if the clock stepped back. */
            uint32_t i = log.n;
            while (i > 0 && times[i - 1] > w->now) {
                times[i] = times[i - 1];
                i--;
            }
            times[i] = w->now;
            log.times = times;
            log.n++;
        }
    } else if (rc == CK_OK) {
        log.override = c->limit;
    }
    if (rc == CK_OK)
        rc = contact_put(w, &s, c->ch, &log);
    if (rc == CK_OK) {
        uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
        ck_audit__pseudonym(pn, w->st, s.dk, s.sid);
        ck_audit_detail_item d[2] = {{"channel", c->channel, 0}, {"limit", NULL, c->limit}};
        if (c->inbound)
            d[1] = (ck_audit_detail_item){"direction", "inbound", 0};
        ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
        e.actor = c->actor;
        e.action = "contact";
        e.subject = pn;
        e.detail = d;
        e.n_detail = c->is_limit || c->inbound ? 2 : 1;
        /* A limit is the customer's wish, like a consent: strict. */
        rc = ck_audit__append(w->st, &e, c->is_limit, NULL, NULL);
    }
    ck_arena__reset(&w->arena);
    ck_subj__fini(&s);
    return rc;
}

static int contact_change(ck_store *st, const ck_who *who, const char *channel, int limit,
                          bool is_limit, bool inbound, const char *actor)
{
    if (st == NULL)
        return CK_EINVAL;
    ck_channel_type ch;
    if (ck_channel__parse(&ch, channel) != CK_OK)
        return ck_err__set(st, CK_EINVAL, "unknown channel (expected email, sms, phone or post)");
    if (actor == NULL)
        return ck_err__set(st, CK_EINVAL, "a contact change needs an actor");
    if (is_limit && (limit < -1 || limit > (int)CK_SCHEMA_CAP_COUNT_MAX))
        return ck_err__set(st, CK_EINVAL, "a contact limit is -1 (none) or 0 to %u",
                           CK_SCHEMA_CAP_COUNT_MAX);
    contact_ctx c = {who, ch, ck_schema__channel_name(ch), limit, is_limit, inbound, actor};
    return ck_subject__write(st, contact_fn, &c);
}

CK_EXPORT int ck_contact_record(ck_store *st, const ck_who *who, const char *channel,
                                const char *actor)
{
    return contact_change(st, who, channel, 0, false, false, actor);
}

CK_EXPORT int ck_contact_record_v2(ck_store *st, const ck_who *who, const char *channel,
                                   unsigned int flags, const char *actor)
{
    if (st == NULL)
        return CK_EINVAL;
    if ((flags & ~CK_CONTACT_INBOUND) != 0)
        return ck_err__set(st, CK_EINVAL, "unknown contact flags 0x%x", flags);
    return contact_change(st, who, channel, 0, false, (flags & CK_CONTACT_INBOUND) != 0, actor);
}

int ck_contact__last_inbound(int64_t *out, ck_store *st, MDB_txn *txn, const ck_schema *schema,
                             const uint8_t sid[CK_SUBJECT_ID_BYTES], uint16_t field_id,
                             const unsigned char dk[CK_KEY_BYTES], ck_arena *arena)
{
    bool seen[CK_CHANNEL_POST + 1] = {false};
    *out = 0;
    for (uint32_t i = 0; i < schema->npurposes; i++) {
        const ck_schema_channel *ch = &schema->purposes[i].channel;
        if (ch->type == CK_CHANNEL_NONE || ch->type > CK_CHANNEL_POST || ch->field_id != field_id ||
            seen[ch->type])
            continue;
        seen[ch->type] = true;
        ck_contact_log log;
        CK_TRY(ck_contact__get(&log, st, txn, sid, ch->type, dk, arena));
        if (log.last_inbound > *out)
            *out = log.last_inbound;
    }
    return CK_OK;
}

CK_EXPORT int ck_contact_limit(ck_store *st, const ck_who *who, const char *channel, int count,
                               const char *actor)
{
    return contact_change(st, who, channel, count, true, false, actor);
}
