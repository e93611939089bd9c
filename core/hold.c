/*
 * hold.c - legal holds: the values an erasure keeps for a legal
 * obligation, sealed under a key of their own, read for that obligation
 * only, destroyed when the obligation ends. Record layouts in hold.h and
 * docs/storage-format.md; what a hold keeps and links in SECURITY.md.
 */
#include "hold.h"

#include "value.h"

#include <string.h>

#define HOLD_KEY_AAD_BYTES (4 + CK_STORE_ID_BYTES + CK_HOLD_ID_BYTES + 1)
#define HOLD_AAD_BYTES     (4 + CK_STORE_ID_BYTES + CK_HOLD_ID_BYTES + 1 + 8)
#define HOLD_HEAD_BYTES    (1 + 8) /* version, until */
/* Expiry destroys holds in chunks of this many per transaction. */
#define EXPIRE_CHUNK 1024

static void key_aad(uint8_t aad[HOLD_KEY_AAD_BYTES], const ck_store *st,
                    const uint8_t id[CK_HOLD_ID_BYTES])
{
    memcpy(aad, "ckhk", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    memcpy(aad + 4 + CK_STORE_ID_BYTES, id, CK_HOLD_ID_BYTES);
    aad[HOLD_KEY_AAD_BYTES - 1] = CK_HOLD_RECORD_VERSION;
}

static void hold_aad(uint8_t aad[HOLD_AAD_BYTES], const ck_store *st,
                     const uint8_t id[CK_HOLD_ID_BYTES], const uint8_t until_be[8])
{
    memcpy(aad, "ckh1", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    memcpy(aad + 4 + CK_STORE_ID_BYTES, id, CK_HOLD_ID_BYTES);
    aad[4 + CK_STORE_ID_BYTES + CK_HOLD_ID_BYTES] = CK_HOLD_RECORD_VERSION;
    memcpy(aad + HOLD_AAD_BYTES - 8, until_be, 8);
}

/* ------------------------------------------------------------------------ */
/* Making a hold (inside an erasure)                                        */
/* ------------------------------------------------------------------------ */

void ck_hold__fini(ck_hold_new *h)
{
    if (h == NULL)
        return;
    ck_mem__free(h->rec);
    sodium_memzero(h->keyrec, sizeof h->keyrec);
    memset(h, 0, sizeof *h);
}

int ck_hold__make(ck_hold_new *out, bool *made, ck_wctx *w, const ck_subj *s,
                  const ck_schema_purpose *p, ck_arena *arena)
{
    ck_store *st = w->st;
    int rc;
    ck_buf pt = CK_BUF_SECURE_INIT, enc = CK_BUF_SECURE_INIT;
    unsigned char *hk = NULL;
    const ck_schema_field **kept = NULL;
    uint32_t nkept = 0;
    memset(out, 0, sizeof *out);
    *made = false;

    /* Which of the hold's fields the subject holds: their values are
     * opened again below, while the plaintext is written. */
    kept = ck_mem__malloc((p->hold.nfields > 0 ? p->hold.nfields : 1) * sizeof *kept);
    CK_ENSURE(kept != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    for (uint32_t i = 0; i < p->hold.nfields; i++) {
        const ck_schema_field *f = ck_schema__field_by_id(w->schema, p->hold.field_ids[i]);
        if (f == NULL)
            continue;
        uint8_t key[CK_VALUE_KEY_BYTES];
        ck_seal__value_key(key, s->sid, f->id);
        MDB_val k = {sizeof key, key}, v;
        int mrc = mdb_get(w->txn, st->dbi_values, &k, &v);
        if (mrc == MDB_NOTFOUND)
            continue;
        CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot read a value"));
        kept[nkept++] = f;
    }
    if (nkept == 0) {
        rc = CK_OK;
        goto cleanup;
    }

    /* The plaintext: [1, purpose, basis, description, kept_at, [[name,
     * type, value], ...]], each value as the codec encodes it. */
    ck_mp_writer mw;
    ck_mp_writer__init(&mw, &pt);
    ck_mp_writer__array(&mw, 6);
    ck_mp_writer__u64(&mw, 1);
    ck_mp_writer__str(&mw, p->name, p->name_len);
    ck_mp_writer__u64(&mw, (uint64_t)p->basis);
    ck_mp_writer__cstr(&mw, p->description);
    ck_mp_writer__i64(&mw, w->now);
    ck_mp_writer__array(&mw, nkept);
    for (uint32_t i = 0; i < nkept && mw.rc == CK_OK; i++) {
        const ck_schema_field *f = kept[i];
        ck_value v;
        CK_GUARD(ck_seal__get(st, w->txn, s->sid, f->id, s->dk, f->type, &v, &w->arena));
        ck_buf__reset(&enc);
        rc = ck_codec__encode(&enc, &v);
        ck_arena__reset(&w->arena);
        CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "cannot encode a value of field %s", f->name));
        ck_mp_writer__array(&mw, 3);
        ck_mp_writer__str(&mw, f->name, f->name_len);
        ck_mp_writer__u64(&mw, (uint64_t)f->type);
        ck_mp_writer__bin(&mw, enc.p, enc.len);
    }
    CK_ENSURE(mw.rc == CK_OK, ck_err__set(st, mw.rc, "cannot encode a hold"));

    /* A fresh id and a fresh key; the key wrapped, the record sealed. */
    hk = ck_store__key_take(st);
    CK_ENSURE(hk != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    randombytes_buf(out->id, sizeof out->id);
    randombytes_buf(hk, CK_KEY_BYTES);
    uint8_t kaad[HOLD_KEY_AAD_BYTES], aad[HOLD_AAD_BYTES], until_be[8];
    key_aad(kaad, st, out->id);
    out->keyrec[0] = CK_HOLD_RECORD_VERSION;
    ck_crypto__seal_st(out->keyrec + 1, st, hk, CK_KEY_BYTES, kaad, sizeof kaad,
                       ck_store__subkey(st, CK_SUBKEY_KEK));
    out->until = w->now + (int64_t)p->hold.days * 86400;
    ck_be64_put(until_be, (uint64_t)out->until);
    hold_aad(aad, st, out->id, until_be);
    CK_ENSURE(!ck_add_overflows(pt.len, HOLD_HEAD_BYTES + CK_SEAL_OVERHEAD, &out->rec_len),
              ck_err__set(st, CK_ELIMIT, "hold too large"));
    out->rec = ck_mem__malloc(out->rec_len);
    CK_ENSURE(out->rec != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    out->rec[0] = CK_HOLD_RECORD_VERSION;
    memcpy(out->rec + 1, until_be, 8);
    ck_crypto__seal_st(out->rec + HOLD_HEAD_BYTES, st, pt.p, pt.len, aad, sizeof aad, hk);
    ck_audit__pseudonym(out->pn, st, hk, out->id);

    /* What the receipt says: copies, since the schema snapshot goes away
     * before the receipt is written. */
    out->purpose = ck_arena__strndup(arena, p->name, p->name_len);
    out->description = ck_arena__strndup(arena, p->description, strlen(p->description));
    out->basis = p->basis;
    out->fields = ck_arena__alloc(arena, nkept * sizeof *out->fields);
    CK_ENSURE(out->purpose != NULL && out->description != NULL && out->fields != NULL,
              ck_err__set(st, CK_ENOMEM, "out of memory"));
    for (uint32_t i = 0; i < nkept; i++) {
        out->fields[i] = ck_arena__strndup(arena, kept[i]->name, kept[i]->name_len);
        CK_ENSURE(out->fields[i] != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    }
    out->nfields = nkept;
    *made = true;
    rc = CK_OK;
cleanup:
    if (rc != CK_OK)
        ck_hold__fini(out);
    ck_store__key_give(st, hk);
    ck_buf__free(&pt);
    ck_buf__free(&enc);
    ck_mem__free(kept);
    ck_arena__reset(&w->arena);
    return rc;
}

int ck_hold__put(ck_store *st, MDB_txn *ktxn, const ck_hold_new *h)
{
    MDB_val k = {CK_HOLD_ID_BYTES, (void *)h->id};
    MDB_val kv = {CK_KEYRING_RECORD_BYTES, (void *)h->keyrec};
    MDB_val rv = {h->rec_len, h->rec};
    int mrc = ck_mdb__put(ktxn, st->dbi_hold_keys, &k, &kv, MDB_NOOVERWRITE);
    if (mrc == 0)
        mrc = ck_mdb__put(ktxn, st->dbi_holds, &k, &rv, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST)
        return ck_err__set(st, CK_EINTERNAL, "hold id collision");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot write a hold");
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Reading a hold                                                           */
/* ------------------------------------------------------------------------ */

/* One kept field of an opened hold. The value's memory is the arena's. */
typedef struct held_field {
    const char *name; /* NUL-terminated, in the arena */
    ck_value value;
} held_field;

/* A hold opened with its key. Every pointer is into `arena`. */
typedef struct held {
    int64_t until;
    int64_t kept_at;
    const char *purpose;
    ck_basis basis;
    const char *description;
    held_field *fields;
    uint32_t nfields;
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
} held;

static int mp_cstr(ck_mp *r, ck_arena *a, size_t max, const char **out)
{
    const char *p;
    uint32_t n;
    CK_TRY(ck_mp__str(r, &p, &n));
    if (n < 1 || n > max || !ck_codec__utf8_valid(p, n) || memchr(p, '\0', n) != NULL)
        return CK_EFORMAT;
    *out = ck_arena__strndup(a, p, n);
    return *out != NULL ? CK_OK : CK_ENOMEM;
}

/* Decode an authenticated plaintext, bounded like any record. */
static int decode_hold(held *h, const uint8_t *pt, size_t n, ck_arena *a)
{
    ck_mp r;
    uint32_t cnt, ver, basis, nf;
    ck_mp__init(&r, pt, n);
    CK_TRY(ck_mp__array(&r, &cnt));
    if (cnt < 6)
        return CK_EFORMAT;
    CK_TRY(ck_mp__u32(&r, &ver));
    if (ver != 1)
        return CK_EFORMAT;
    CK_TRY(mp_cstr(&r, a, CK_SCHEMA_NAME_MAX, &h->purpose));
    CK_TRY(ck_mp__u32(&r, &basis));
    if (basis < CK_BASIS_CONSENT || basis > CK_BASIS_LEGITIMATE_INTEREST)
        return CK_EFORMAT;
    h->basis = (ck_basis)basis;
    CK_TRY(mp_cstr(&r, a, CK_SCHEMA_TEXT_MAX, &h->description));
    CK_TRY(ck_mp__i64(&r, &h->kept_at));
    CK_TRY(ck_mp__array(&r, &nf));
    if (nf < 1 || nf > CK_HOLD_FIELDS_MAX)
        return CK_EFORMAT;
    h->fields = ck_arena__alloc(a, nf * sizeof *h->fields);
    if (h->fields == NULL)
        return CK_ENOMEM;
    for (uint32_t i = 0; i < nf; i++) {
        uint32_t type, blen;
        const uint8_t *b;
        CK_TRY(ck_mp__array(&r, &cnt));
        if (cnt != 3)
            return CK_EFORMAT;
        CK_TRY(mp_cstr(&r, a, CK_SCHEMA_NAME_MAX, &h->fields[i].name));
        for (uint32_t j = 0; j < i; j++) /* the writer never repeats a field */
            if (strcmp(h->fields[j].name, h->fields[i].name) == 0)
                return CK_EFORMAT;
        CK_TRY(ck_mp__u32(&r, &type));
        if (type < CK_TYPE_STRING || type > CK_TYPE_LIST)
            return CK_EFORMAT;
        CK_TRY(ck_mp__bin(&r, &b, &blen));
        int rc = ck_codec__decode(&h->fields[i].value, (ck_type)type, b, blen, a);
        if (rc != CK_OK)
            return rc == CK_ENOMEM ? CK_ENOMEM : CK_EFORMAT;
    }
    h->nfields = nf;
    return CK_OK;
}

/*
 * Open hold `id` through `ktxn` (a keyring transaction): its key unwrapped
 * into `hk` (guarded, CK_KEY_BYTES), its record opened and decoded into
 * `h` (arena memory). `keyrec`, if not NULL, receives the wrapped key as
 * stored (to scrub it once deleted).
 * Returns CK_OK; CK_ENOTFOUND (no such hold); CK_EINTEGRITY (a record
 * malformed, or that does not authenticate - tampered, moved, or its
 * `until` changed); CK_ENOMEM.
 */
static int open_hold(held *h, unsigned char *hk, uint8_t *keyrec, ck_store *st, MDB_txn *ktxn,
                     const uint8_t id[CK_HOLD_ID_BYTES], ck_arena *a)
{
    memset(h, 0, sizeof *h);
    MDB_val k = {CK_HOLD_ID_BYTES, (void *)id}, kv, rv;
    int mrc = mdb_get(ktxn, st->dbi_hold_keys, &k, &kv);
    if (mrc == 0)
        mrc = mdb_get(ktxn, st->dbi_holds, &k, &rv);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_ENOTFOUND, "no such hold (never made, or expired and destroyed)");
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read a hold");
    const uint8_t *kr = kv.mv_data, *rec = rv.mv_data;
    if (kv.mv_size != CK_KEYRING_RECORD_BYTES || kr[0] != CK_HOLD_RECORD_VERSION ||
        rv.mv_size < HOLD_HEAD_BYTES + CK_SEAL_OVERHEAD || rec[0] != CK_HOLD_RECORD_VERSION)
        return ck_err__set(st, CK_EINTEGRITY, "a hold record is malformed");
    if (keyrec != NULL)
        memcpy(keyrec, kr, CK_KEYRING_RECORD_BYTES);
    uint8_t kaad[HOLD_KEY_AAD_BYTES], aad[HOLD_AAD_BYTES];
    key_aad(kaad, st, id);
    if (ck_crypto__open(hk, kr + 1, CK_KEYRING_RECORD_BYTES - 1, kaad, sizeof kaad,
                        ck_store__subkey(st, CK_SUBKEY_KEK)) != CK_OK) {
        sodium_memzero(hk, CK_KEY_BYTES);
        return ck_err__set(st, CK_EINTEGRITY, "a hold key does not authenticate");
    }
    h->until = (int64_t)ck_be64_get(rec + 1);
    hold_aad(aad, st, id, rec + 1);
    size_t n = rv.mv_size - HOLD_HEAD_BYTES - CK_SEAL_OVERHEAD;
    uint8_t *pt = ck_arena__alloc(a, n + 1);
    if (pt == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    if (ck_crypto__open(pt, rec + HOLD_HEAD_BYTES, rv.mv_size - HOLD_HEAD_BYTES, aad, sizeof aad,
                        hk) != CK_OK)
        return ck_err__set(st, CK_EINTEGRITY,
                           "a hold does not authenticate (tampered, moved, or its end changed)");
    int rc = decode_hold(h, pt, n, a);
    if (rc != CK_OK)
        return ck_err__set(st, rc == CK_ENOMEM ? CK_ENOMEM : CK_EINTEGRITY,
                           "a hold does not decode");
    ck_audit__pseudonym(h->pn, st, hk, id);
    return CK_OK;
}

static int parse_id(uint8_t id[CK_HOLD_ID_BYTES], ck_store *st, const char *hex)
{
    size_t bin_len = 0;
    if (hex == NULL || strlen(hex) != 2 * CK_HOLD_ID_BYTES ||
        sodium_hex2bin(id, CK_HOLD_ID_BYTES, hex, 2 * CK_HOLD_ID_BYTES, NULL, &bin_len, NULL) !=
            0 ||
        bin_len != CK_HOLD_ID_BYTES)
        return ck_err__set(st, CK_EINVAL, "a hold id is %d hexadecimal characters",
                           2 * CK_HOLD_ID_BYTES);
    return CK_OK;
}

static int append_cstr(ck_buf *b, const char *s)
{
    return ck_buf__append(b, s, strlen(s));
}

/* The JSON of an opened hold (values included: `b` is secure). */
static int hold_json(ck_buf *b, const held *h, const char *id_hex)
{
    char kept[CK_TS_TEXT_MAX], until[CK_TS_TEXT_MAX];
    ck_ts__text(kept, h->kept_at);
    ck_ts__text(until, h->until);
    CK_TRY(append_cstr(b, "{\"hold\":\""));
    CK_TRY(append_cstr(b, id_hex));
    CK_TRY(append_cstr(b, "\",\"purpose\":"));
    CK_TRY(ck_value__json_string(b, h->purpose, strlen(h->purpose)));
    CK_TRY(append_cstr(b, ",\"basis\":\""));
    CK_TRY(append_cstr(b, ck_schema__basis_name(h->basis)));
    CK_TRY(append_cstr(b, "\",\"description\":"));
    CK_TRY(ck_value__json_string(b, h->description, strlen(h->description)));
    CK_TRY(append_cstr(b, ",\"kept_at\":\""));
    CK_TRY(append_cstr(b, kept));
    CK_TRY(append_cstr(b, "\",\"until\":\""));
    CK_TRY(append_cstr(b, until));
    CK_TRY(append_cstr(b, "\",\"fields\":{"));
    for (uint32_t i = 0; i < h->nfields; i++) {
        if (i > 0)
            CK_TRY(append_cstr(b, ","));
        CK_TRY(ck_value__json_string(b, h->fields[i].name, strlen(h->fields[i].name)));
        CK_TRY(append_cstr(b, ":"));
        CK_TRY(ck_value__append_json(b, &h->fields[i].value));
    }
    return append_cstr(b, "}}");
}

CK_EXPORT int ck_hold_get(char **out, ck_store *st, const char *hold_id, const char *actor)
{
    if (out != NULL)
        *out = NULL;
    if (st == NULL || out == NULL)
        return CK_EINVAL;
    if (actor == NULL)
        return ck_err__set(st, CK_EINVAL, "reading a hold needs an actor");
    uint8_t id[CK_HOLD_ID_BYTES];
    CK_TRY(parse_id(id, st, hold_id));
    if (!st->has_holds)
        return ck_err__set(st, CK_ENOTFOUND, "no such hold (the store has none)");
    int rc;
    MDB_txn *ktxn = NULL;
    ck_arena a = CK_ARENA_INIT;
    ck_buf b = CK_BUF_SECURE_INIT;
    unsigned char *hk = ck_store__key_take(st);
    held h;
    CK_ENSURE(hk != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &ktxn));
    CK_GUARD(open_hold(&h, hk, NULL, st, ktxn, id, &a));
    ck_env__read_end(&st->keyring, ktxn);
    ktxn = NULL;
    int64_t now = ck_store__now(st);
    if (now >= h.until) {
        char until[CK_TS_TEXT_MAX];
        ck_ts__text(until, h.until);
        rc = ck_err__set(st, CK_EDENIED,
                         "this hold ended at %s: the obligation is over and nothing is released "
                         "(hold expire destroys it)",
                         until);
        goto cleanup;
    }

    /* Audited before anything is revealed: the hold's own pseudonym, the
     * obligation's purpose, the fields read. */
    const char **names = ck_arena__alloc(&a, h.nfields * sizeof *names);
    CK_ENSURE(names != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    for (uint32_t i = 0; i < h.nfields; i++)
        names[i] = h.fields[i].name;
    ck_audit_detail_item d[1] = {{"event", "read", 0}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = "hold";
    e.purpose = h.purpose;
    e.subject = h.pn;
    e.released = names;
    e.n_released = h.nfields;
    e.detail = d;
    e.n_detail = 1;
    CK_GUARD(ck_audit__append(st, &e, false, NULL, NULL));

    char hex[2 * CK_HOLD_ID_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, id, sizeof id);
    rc = hold_json(&b, &h, hex);
    CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "cannot write the hold as JSON"));
    *out = ck_out__strndup((const char *)b.p, b.len);
    CK_ENSURE(*out != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    rc = CK_OK;
cleanup:
    ck_env__read_end(&st->keyring, ktxn);
    ck_store__key_give(st, hk);
    ck_buf__free(&b);
    ck_arena__free(&a);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Expiry                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct expire_ctx {
    const char *actor;
    int64_t now;
    uint8_t after[CK_HOLD_ID_BYTES]; /* resume the walk past this id */
    bool have_after;
    /* this chunk */
    uint8_t (*ids)[CK_HOLD_ID_BYTES];
    uint8_t *keyrecs; /* their wrapped keys, to scrub */
    size_t n, nkeys;
    bool more; /* the walk stopped at a full chunk */
    bool audited;
} expire_ctx;

/* Under the keyring's writer lock: find up to EXPIRE_CHUNK holds due,
 * audit their end (strictly), delete their keys and records. */
static int expire_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    expire_ctx *c = ctx;
    int rc = CK_OK;
    ck_arena a = CK_ARENA_INIT;
    MDB_cursor *cur = NULL;
    unsigned char *hk = ck_store__key_take(st);
    ck_audit_entry *es = NULL;
    ck_audit_detail_item(*ds)[2] = NULL;
    held *hs = NULL;
    CK_ENSURE(hk != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    if (!c->audited) {
        c->n = c->nkeys = 0;
        c->more = false;
        /* The holds due, in id order, from where the last chunk ended. */
        int mrc = mdb_cursor_open(ktxn, st->dbi_holds, &cur);
        CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot open a cursor"));
        MDB_val k = {CK_HOLD_ID_BYTES, c->after}, v;
        mrc = mdb_cursor_get(cur, &k, &v, c->have_after ? MDB_SET_RANGE : MDB_FIRST);
        if (mrc == 0 && c->have_after && k.mv_size == CK_HOLD_ID_BYTES &&
            memcmp(k.mv_data, c->after, CK_HOLD_ID_BYTES) == 0)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            const uint8_t *rec = v.mv_data;
            CK_ENSURE(k.mv_size == CK_HOLD_ID_BYTES && v.mv_size >= HOLD_HEAD_BYTES,
                      ck_err__set(st, CK_EINTEGRITY, "a hold record is malformed"));
            memcpy(c->after, k.mv_data, CK_HOLD_ID_BYTES);
            c->have_after = true;
            if ((int64_t)ck_be64_get(rec + 1) > c->now)
                continue;
            memcpy(c->ids[c->n++], k.mv_data, CK_HOLD_ID_BYTES);
            if (c->n == EXPIRE_CHUNK) {
                c->more = true;
                break;
            }
        }
        CK_ENSURE(mrc == 0 || mrc == MDB_NOTFOUND, ck_err__mdb(st, mrc, "cannot read the holds"));
        mdb_cursor_close(cur);
        cur = NULL;
        if (c->n == 0)
            goto cleanup;

        /* Each one opens (a hold that does not is left alone: nothing is
         * destroyed), and its end is audited before it is destroyed. */
        hs = ck_mem__calloc(c->n, sizeof *hs);
        es = ck_mem__calloc(c->n, sizeof *es);
        ds = ck_mem__calloc(c->n, sizeof *ds);
        CK_ENSURE(hs != NULL && es != NULL && ds != NULL,
                  ck_err__set(st, CK_ENOMEM, "out of memory"));
        for (size_t i = 0; i < c->n; i++) {
            es[i] = (ck_audit_entry)CK_AUDIT_ENTRY_INIT;
            es[i].actor = c->actor;
            es[i].action = "hold";
            es[i].detail = ds[i];
            es[i].n_detail = 2;
            ds[i][0] = (ck_audit_detail_item){"event", "expired", 0};
            rc = open_hold(&hs[i], hk, c->keyrecs + c->nkeys * CK_KEYRING_RECORD_BYTES, st, ktxn,
                           c->ids[i], &a);
            if (rc == CK_ENOTFOUND) {
                /* A record without its key (the record was found): nothing
                 * can open it; it goes, unnamed. */
                ds[i][1] = (ck_audit_detail_item){"fields", NULL, 0};
                continue;
            }
            CK_GUARD(rc);
            c->nkeys++;
            ds[i][1] = (ck_audit_detail_item){"fields", NULL, (int64_t)hs[i].nfields};
            es[i].purpose = hs[i].purpose;
            es[i].subject = hs[i].pn;
        }
        CK_GUARD(ck_audit__append_many(st, es, c->n, true));
        c->audited = true;
    }
    for (size_t i = 0; i < c->n; i++) {
        MDB_val k = {CK_HOLD_ID_BYTES, c->ids[i]};
        int mrc = mdb_del(ktxn, st->dbi_hold_keys, &k, NULL);
        if (mrc == 0 || mrc == MDB_NOTFOUND)
            mrc = mdb_del(ktxn, st->dbi_holds, &k, NULL);
        CK_ENSURE(mrc == 0 || mrc == MDB_NOTFOUND, ck_err__mdb(st, mrc, "cannot delete a hold"));
    }
    rc = CK_OK;
cleanup:
    if (cur != NULL)
        mdb_cursor_close(cur);
    ck_store__key_give(st, hk);
    ck_mem__free(hs);
    ck_mem__free(es);
    ck_mem__free(ds);
    ck_arena__free(&a);
    return rc;
}

int ck_hold__plain_json(ck_buf *out, const uint8_t *pt, size_t n, int64_t until, const char *id_hex,
                        ck_arena *a)
{
    held h;
    memset(&h, 0, sizeof h);
    CK_TRY(decode_hold(&h, pt, n, a));
    h.until = until;
    return hold_json(out, &h, id_hex);
}

int ck_hold__count_due(uint64_t *out, ck_store *st)
{
    *out = 0;
    if (!st->has_holds)
        return CK_OK;
    int64_t now = ck_store__now(st);
    MDB_txn *ktxn = NULL;
    MDB_cursor *cur = NULL;
    int rc;
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &ktxn));
    int mrc = mdb_cursor_open(ktxn, st->dbi_holds, &cur);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot open a cursor"));
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        CK_ENSURE(k.mv_size == CK_HOLD_ID_BYTES && v.mv_size >= HOLD_HEAD_BYTES,
                  ck_err__set(st, CK_EINTEGRITY, "a hold record is malformed"));
        if ((int64_t)ck_be64_get((const uint8_t *)v.mv_data + 1) <= now)
            (*out)++;
    }
    CK_ENSURE(mrc == MDB_NOTFOUND, ck_err__mdb(st, mrc, "cannot read the holds"));
    rc = CK_OK;
cleanup:
    if (cur != NULL)
        mdb_cursor_close(cur);
    ck_env__read_end(&st->keyring, ktxn);
    return rc;
}

CK_EXPORT int ck_hold_expire(uint64_t *expired, ck_store *st, const char *actor)
{
    if (expired != NULL)
        *expired = 0;
    if (st == NULL)
        return CK_EINVAL;
    if (actor == NULL)
        return ck_err__set(st, CK_EINVAL, "expiring holds needs an actor");
    if ((st->flags & CK_OPEN_RDONLY) != 0)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    if (!st->has_holds)
        return CK_OK;
    int rc;
    expire_ctx c;
    memset(&c, 0, sizeof c);
    c.actor = actor;
    c.now = ck_store__now(st);
    c.ids = ck_mem__malloc(EXPIRE_CHUNK * sizeof *c.ids);
    c.keyrecs = ck_mem__malloc(EXPIRE_CHUNK * CK_KEYRING_RECORD_BYTES);
    CK_ENSURE(c.ids != NULL && c.keyrecs != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    do {
        c.audited = false;
        /* Audit, then the point of no return: keys and records deleted in
         * one commit; then every stale copy of the wrapped keys scrubbed. */
        CK_GUARD(ck_env__write(st, &st->keyring, expire_txn, &c));
        CK_GUARD(ck_keyring__scrub(st, c.keyrecs, c.nkeys, NULL));
        if (expired != NULL)
            *expired += c.n;
    } while (c.more);
    rc = CK_OK;
cleanup:
    if (c.keyrecs != NULL)
        sodium_memzero(c.keyrecs, EXPIRE_CHUNK * CK_KEYRING_RECORD_BYTES);
    ck_mem__free(c.ids);
    ck_mem__free(c.keyrecs);
    return rc;
}
