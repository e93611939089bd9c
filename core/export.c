/*
 * export.c - the customer's access and portability export (GDPR art. 15
 * and 20; DESIGN.md section 7): ck_export.
 *
 * One read transaction of the data environment is the snapshot every part
 * of the export comes from: the schema, the subject record, its values,
 * consent records and contact logs. The audit log, which is not in LMDB,
 * is walked with the subject's audit pseudonym as its filter while that
 * snapshot is held (entries appended meanwhile may or may not be seen).
 *
 * The text holds every value in full, so it is built in a secure buffer
 * and never passes through Jansson, whose heap is not wiped: values are
 * written by ck_value__append_json as release answers are, consents by the
 * writer ck_consent_json uses. Only each purpose's declaration - the
 * schema's own text - is built with Jansson. The export's own audit entry
 * is written (strict) before the text is handed out: if it cannot be,
 * nothing is.
 */
#include "audit.h"
#include "consent.h"
#include "value.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EXPORT_FORMAT 1
#define ACTOR_MAX     256

/* What the export says of the ref and aliases (docs/cli.md, "export"). */
static const char LOOKUP_NOTE[] =
    "The ref and the aliases are kept only as keyed hashes (blind indexes) that let the store "
    "find this subject: their text is not stored, so it cannot be shown here. The identifying "
    "fields listed are also indexed that way; their values are under \"fields\".";

typedef struct exp_ctx {
    ck_store *st;
    MDB_txn *txn;
    ck_schema *schema;
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    unsigned char *dk; /* guarded: the subject's data key */
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
    int64_t created;
    int64_t now;        /* the store's clock, read once */
    ck_subj subj;       /* the subject record (index entries) */
    ck_arena arena;     /* consent records, contact logs (wiped) */
    ck_arena varena;    /* one decoded value at a time (wiped) */
    ck_consent_list cl; /* every consent record */
    ck_buf *b;          /* the text being built (secure) */
    ck_buf hist;        /* the "history" array, built beside "releases" */
    int64_t nfields;    /* counts for the audit entry */
    int64_t nreleases;
} exp_ctx;

/* ------------------------------------------------------------------------ */
/* Writing into a buffer (every failure has a message)                       */
/* ------------------------------------------------------------------------ */

static int buf_fail(ck_store *st, int rc)
{
    if (rc == CK_ELIMIT)
        return ck_err__set(st, rc, "the export is larger than a buffer may grow");
    if (rc == CK_ENOMEM)
        return ck_err__set(st, rc, "out of memory");
    return ck_err__set(st, rc, "cannot write the export");
}

static int w_raw(ck_store *st, ck_buf *b, const char *s, size_t n)
{
    int rc = ck_buf__append(b, s, n);
    return rc == CK_OK ? rc : buf_fail(st, rc);
}

static int w_lit(ck_store *st, ck_buf *b, const char *s)
{
    return w_raw(st, b, s, strlen(s));
}

static int w_str(ck_store *st, ck_buf *b, const char *s)
{
    int rc = ck_value__json_string(b, s, strlen(s));
    return rc == CK_OK ? rc : buf_fail(st, rc);
}

/* `,"key":` (no comma when `first`). */
static int w_key(ck_store *st, ck_buf *b, const char *key, bool first)
{
    if (!first)
        CK_TRY(w_raw(st, b, ",", 1));
    CK_TRY(w_str(st, b, key));
    return w_raw(st, b, ":", 1);
}

static int w_int(ck_store *st, ck_buf *b, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%lld", (long long)v);
    return w_raw(st, b, t, (size_t)n);
}

/* A time in Unix seconds: RFC 3339 UTC, or the integer when it has no
 * such form (a year past 9999), as ck_consent_json writes times. */
static int w_time(ck_store *st, ck_buf *b, int64_t sec)
{
    char t[CK_TS_TEXT_MAX];
    ck_consent__time_text(t, sec, 0);
    if (t[0] == '\0')
        return w_int(st, b, sec);
    return w_str(st, b, t);
}

/* An audit time in ms, as `ckstore audit log` writes it:
 * "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static int w_time_ms(ck_store *st, ck_buf *b, uint64_t ms)
{
    time_t s = (time_t)(ms / 1000u);
    struct tm tm;
    char base[24], t[40];
    if (gmtime_r(&s, &tm) == NULL || strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return w_int(st, b, (int64_t)(ms / 1000u));
    snprintf(t, sizeof t, "%s.%03uZ", base, (unsigned)(ms % 1000u));
    return w_str(st, b, t);
}

/* ------------------------------------------------------------------------ */
/* JSON sections                                                             */
/* ------------------------------------------------------------------------ */

static int w_header(exp_ctx *e)
{
    ck_store *st = e->st;
    ck_buf *b = e->b;
    char hex[2 * CK_SUBJECT_ID_BYTES + 1];
    ck_subject_id_hex(hex, e->sid);
    CK_TRY(w_lit(st, b, "{\"format\":"));
    CK_TRY(w_int(st, b, EXPORT_FORMAT));
    CK_TRY(w_key(st, b, "generated", false));
    CK_TRY(w_time(st, b, e->now));
    CK_TRY(w_key(st, b, "subject", false));
    CK_TRY(w_str(st, b, hex));
    sodium_memzero(hex, sizeof hex);
    CK_TRY(w_key(st, b, "created", false));
    return w_time(st, b, e->created);
}

/* Every value held, in the schema's name order, decrypted and in full. */
static int w_fields(exp_ctx *e)
{
    ck_store *st = e->st;
    ck_buf *b = e->b;
    const ck_schema *s = e->schema;
    bool first = true;
    CK_TRY(w_key(st, b, "fields", false));
    CK_TRY(w_raw(st, b, "{", 1));
    for (uint32_t i = 0; i < s->nfields; i++) {
        const ck_schema_field *f = &s->fields[i];
        ck_value v;
        int64_t written = 0;
        ck_arena__reset(&e->varena);
        int rc =
            ck_seal__get_at(st, e->txn, e->sid, f->id, e->dk, f->type, &v, &written, &e->varena);
        if (rc == CK_ENOTFOUND)
            continue;
        CK_TRY(rc);
        CK_TRY(w_key(st, b, f->name, first));
        first = false;
        CK_TRY(w_lit(st, b, "{\"type\":"));
        CK_TRY(w_str(st, b, ck_schema__type_name(f->type)));
        CK_TRY(w_key(st, b, "sensitivity", false));
        CK_TRY(w_str(st, b, ck_schema__sensitivity_name(f->sensitivity)));
        CK_TRY(w_key(st, b, "identifying", false));
        CK_TRY(w_lit(st, b, f->identifying ? "true" : "false"));
        if (f->retention_days > 0) {
            CK_TRY(w_key(st, b, "retention_days", false));
            CK_TRY(w_int(st, b, f->retention_days));
        }
        CK_TRY(w_key(st, b, "value", false));
        rc = ck_value__append_json(b, &v);
        if (rc != CK_OK)
            return rc == CK_EINVAL ? ck_err__set(st, CK_EINTEGRITY,
                                                 "the value of field %s has no JSON form", f->name)
                                   : buf_fail(st, rc);
        CK_TRY(w_key(st, b, "updated", false));
        CK_TRY(w_time(st, b, written));
        CK_TRY(w_raw(st, b, "}", 1));
        e->nfields++;
    }
    ck_arena__reset(&e->varena);
    CK_TRY(w_raw(st, b, "}", 1));

    /* Every value record of the subject is one of a field of the schema
     * (removing a field deletes its values): a stray one would be data
     * held but not shown. */
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(e->txn, st->dbi_values, &cur);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read values");
    int64_t held = 0;
    MDB_val k = {CK_SUBJECT_ID_BYTES, e->sid}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < CK_SUBJECT_ID_BYTES || memcmp(k.mv_data, e->sid, CK_SUBJECT_ID_BYTES) != 0)
            break;
        held++;
    }
    mdb_cursor_close(cur);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return ck_err__mdb(st, mrc, "cannot read values");
    if (held != e->nfields)
        return ck_err__set(st, CK_EINTEGRITY,
                           "the subject holds %lld value(s) of fields the schema does not declare",
                           (long long)(held - e->nfields));
    return CK_OK;
}

/* How the subject can be found: counts of the index entries its record
 * lists (the ref and aliases are blind-index hashes only). */
static int w_lookups(exp_ctx *e)
{
    ck_store *st = e->st;
    ck_buf *b = e->b;
    int64_t refs = 0, aliases = 0;
    bool first = true;
    for (uint32_t i = 0; i < e->subj.nix; i++) {
        if (e->subj.ix[i][0] == CK_INDEX_REF)
            refs++;
        else if (e->subj.ix[i][0] == CK_INDEX_ALIAS)
            aliases++;
    }
    CK_TRY(w_key(st, b, "lookups", false));
    CK_TRY(w_lit(st, b, "{\"ref\":"));
    CK_TRY(w_int(st, b, refs));
    CK_TRY(w_key(st, b, "aliases", false));
    CK_TRY(w_int(st, b, aliases));
    CK_TRY(w_key(st, b, "identifying_fields", false));
    CK_TRY(w_raw(st, b, "[", 1));
    for (uint32_t i = 0; i < e->subj.nix; i++) {
        const uint8_t *k = e->subj.ix[i];
        if (k[0] != CK_INDEX_FIELD)
            continue;
        const ck_schema_field *f = ck_schema__field_by_id(e->schema, (uint16_t)(k[1] << 8 | k[2]));
        if (f == NULL)
            return ck_err__set(st, CK_EINTEGRITY,
                               "the subject record names a field the schema does not declare");
        if (!first)
            CK_TRY(w_raw(st, b, ",", 1));
        first = false;
        CK_TRY(w_str(st, b, f->name));
    }
    CK_TRY(w_raw(st, b, "]", 1));
    CK_TRY(w_key(st, b, "note", false));
    CK_TRY(w_str(st, b, LOOKUP_NOTE));
    return w_raw(st, b, "}", 1);
}

static int w_consents(exp_ctx *e)
{
    CK_TRY(w_key(e->st, e->b, "consents", false));
    int rc = ck_consent__json(e->b, &e->cl, true);
    return rc == CK_OK ? rc : buf_fail(e->st, rc);
}

/* The contacts the store still counts, per channel, and the subject's own
 * cap. */
static int w_contacts(exp_ctx *e)
{
    static const ck_channel_type all[] = {CK_CHANNEL_EMAIL, CK_CHANNEL_SMS, CK_CHANNEL_PHONE,
                                          CK_CHANNEL_POST};
    ck_store *st = e->st;
    ck_buf *b = e->b;
    bool first = true;
    CK_TRY(w_key(st, b, "contacts", false));
    CK_TRY(w_raw(st, b, "{", 1));
    for (size_t c = 0; c < CK_ARRAY_LEN(all); c++) {
        ck_contact_log log;
        CK_TRY(ck_contact__get(&log, st, e->txn, e->sid, all[c], e->dk, &e->arena));
        if (log.n == 0 && log.override < 0)
            continue;
        CK_TRY(w_key(st, b, ck_schema__channel_name(all[c]), first));
        first = false;
        CK_TRY(w_lit(st, b, "{\"contacts\":["));
        for (uint32_t i = 0; i < log.n; i++) {
            if (i > 0)
                CK_TRY(w_raw(st, b, ",", 1));
            CK_TRY(w_time(st, b, log.times[i]));
        }
        CK_TRY(w_lit(st, b, "],\"limit\":"));
        if (log.override >= 0)
            CK_TRY(w_int(st, b, log.override));
        else
            CK_TRY(w_lit(st, b, "null"));
        CK_TRY(w_raw(st, b, "}", 1));
    }
    return w_raw(st, b, "}", 1);
}

/* The newest consent record of purpose `name`, or NULL. */
static const ck_consent_rec *current_of(const ck_consent_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (ck_consent__is_current(l, i) && strcmp(l->recs[i].purpose, name) == 0)
            return &l->recs[i];
    return NULL;
}

/* Every purpose of the schema as it declares itself, and whether its
 * legal basis holds for the subject now: "consent" is the current state
 * of the subject's consent for it ("none" without a record, "expired" for
 * a granted one past its expiry), "may_use" what the release rules make
 * of it (docs/release.md, step 2). */
static int w_purposes(exp_ctx *e)
{
    ck_store *st = e->st;
    ck_buf *b = e->b;
    int64_t now = e->now;
    CK_TRY(w_key(st, b, "purposes", false));
    CK_TRY(w_raw(st, b, "{", 1));
    for (uint32_t i = 0; i < e->schema->npurposes; i++) {
        const ck_schema_purpose *p = &e->schema->purposes[i];
        bool ok = true;
        json_t *o = ck_schema__purpose_json(e->schema, p, &ok);
        char *text = ok && o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (text == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        size_t tl = strlen(text);
        int rc = w_key(st, b, p->name, i == 0);
        /* the declaration without its closing brace: the subject's state
         * follows, written here rather than through Jansson */
        if (rc == CK_OK)
            rc = tl >= 2 && text[tl - 1] == '}' ? w_raw(st, b, text, tl - 1)
                                                : ck_err__set(st, CK_EINTERNAL, "bad purpose JSON");
        ck_out__json_text_free(text);
        CK_TRY(rc);

        const ck_consent_rec *r = current_of(&e->cl, p->name);
        bool expired =
            r != NULL && r->state == CK_CONSENT_GRANTED && r->expires != 0 && now >= r->expires;
        const char *state = r == NULL ? "none"
                            : expired ? "expired"
                                      : ck_consent__state_name(r->state);
        bool may_use;
        switch (p->basis) {
        case CK_BASIS_CONSENT:
            may_use = r != NULL && r->state == CK_CONSENT_GRANTED && !expired;
            break;
        case CK_BASIS_LEGITIMATE_INTEREST:
            may_use = r == NULL || r->state != CK_CONSENT_OBJECTED;
            break;
        default: /* contract, legal obligation: no consent needed */
            may_use = true;
            break;
        }
        CK_TRY(w_key(st, b, "consent", false));
        CK_TRY(w_str(st, b, state));
        CK_TRY(w_key(st, b, "may_use", false));
        CK_TRY(w_lit(st, b, may_use ? "true" : "false"));
        CK_TRY(w_raw(st, b, "}", 1));
    }
    return w_raw(st, b, "}", 1);
}

/* One audit entry, as `ckstore audit log` prints it, without the subject
 * (it is this one). Releases always carry "released" and "withheld". */
static int w_audit_entry(ck_store *st, ck_buf *b, const ck_audit_record *r, bool release)
{
    CK_TRY(w_lit(st, b, "{\"seq\":"));
    CK_TRY(w_int(st, b, (int64_t)r->seq));
    CK_TRY(w_key(st, b, "time", false));
    CK_TRY(w_time_ms(st, b, r->time_ms));
    CK_TRY(w_key(st, b, "actor", false));
    CK_TRY(w_str(st, b, r->actor));
    CK_TRY(w_key(st, b, "action", false));
    CK_TRY(w_str(st, b, r->action));
    if (r->purpose != NULL) {
        CK_TRY(w_key(st, b, "purpose", false));
        CK_TRY(w_str(st, b, r->purpose));
    }
    if (r->recipient != NULL) {
        CK_TRY(w_key(st, b, "recipient", false));
        CK_TRY(w_str(st, b, r->recipient));
    }
    if (release || r->n_released > 0) {
        CK_TRY(w_key(st, b, "released", false));
        CK_TRY(w_raw(st, b, "[", 1));
        for (size_t i = 0; i < r->n_released; i++) {
            if (i > 0)
                CK_TRY(w_raw(st, b, ",", 1));
            CK_TRY(w_str(st, b, r->released[i]));
        }
        CK_TRY(w_raw(st, b, "]", 1));
    }
    if (release || r->n_withheld > 0) {
        CK_TRY(w_key(st, b, "withheld", false));
        CK_TRY(w_raw(st, b, "{", 1));
        for (size_t i = 0; i < r->n_withheld; i++) {
            CK_TRY(w_key(st, b, r->withheld[i].field, i == 0));
            CK_TRY(w_str(st, b, r->withheld[i].reason));
        }
        CK_TRY(w_raw(st, b, "}", 1));
    }
    if (r->n_detail > 0) {
        CK_TRY(w_key(st, b, "detail", false));
        CK_TRY(w_raw(st, b, "{", 1));
        for (size_t i = 0; i < r->n_detail; i++) {
            CK_TRY(w_key(st, b, r->detail[i].key, i == 0));
            if (r->detail[i].str != NULL)
                CK_TRY(w_str(st, b, r->detail[i].str));
            else
                CK_TRY(w_int(st, b, r->detail[i].num));
        }
        CK_TRY(w_raw(st, b, "}", 1));
    }
    return w_raw(st, b, "}", 1);
}

/* Every audit entry of the subject: releases and segment answers of its
 * data into "releases", the others (consent changes, contacts, earlier
 * exports) into "history", both oldest first. */
static int w_audit(exp_ctx *e)
{
    ck_store *st = e->st;
    ck_audit_filter f = CK_AUDIT_FILTER_INIT;
    ck_audit_cursor *c = NULL;
    const ck_audit_record *r;
    int64_t nhist = 0;
    f.subject = e->pn;
    CK_TRY(w_key(st, e->b, "releases", false));
    CK_TRY(w_raw(st, e->b, "[", 1));
    CK_TRY(ck_audit_query(&c, st, &f));
    int rc;
    while ((rc = ck_audit_next(c, &r)) == CK_OK) {
        bool release = strcmp(r->action, "release") == 0 || strcmp(r->action, "segment") == 0;
        ck_buf *b = release ? e->b : &e->hist;
        if ((release ? e->nreleases : nhist) > 0)
            rc = w_raw(st, b, ",", 1);
        if (rc == CK_OK)
            rc = w_audit_entry(st, b, r, release);
        if (rc != CK_OK)
            break;
        if (release)
            e->nreleases++;
        else
            nhist++;
    }
    ck_audit_cursor_free(c);
    if (rc != CK_ENOTFOUND)
        return rc;
    CK_TRY(w_raw(st, e->b, "]", 1));
    CK_TRY(w_key(st, e->b, "history", false));
    CK_TRY(w_raw(st, e->b, "[", 1));
    if (e->hist.len > 0)
        CK_TRY(w_raw(st, e->b, (const char *)e->hist.p, e->hist.len));
    return w_lit(st, e->b, "]}");
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                       */
/* ------------------------------------------------------------------------ */

/* One cell, RFC 4180: quoted when it holds a comma, a quote, CR or LF
 * (quotes doubled). A cell a spreadsheet would read as a formula - first
 * character = + - @, or tab or CR - gets a leading single quote. */
static int csv_cell(ck_store *st, ck_buf *b, const char *s, size_t n, bool first)
{
    if (!first)
        CK_TRY(w_raw(st, b, ",", 1));
    bool guard = n > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
                           s[0] == '\t' || s[0] == '\r');
    bool quote = false;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (quote)
        CK_TRY(w_raw(st, b, "\"", 1));
    if (guard)
        CK_TRY(w_raw(st, b, "'", 1));
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            CK_TRY(w_raw(st, b, "\"\"", 2));
        else
            CK_TRY(w_raw(st, b, &s[i], 1));
    }
    if (quote)
        CK_TRY(w_raw(st, b, "\"", 1));
    return CK_OK;
}

static int csv_cstr(ck_store *st, ck_buf *b, const char *s)
{
    return csv_cell(st, b, s != NULL ? s : "", s != NULL ? strlen(s) : 0, false);
}

/* A list in one cell, one item per line (items hold no control
 * character, so a line feed cannot be part of one). */
static int csv_list(ck_store *st, ck_buf *b, const char *const *v, uint32_t n, ck_buf *scratch)
{
    ck_buf__reset(scratch);
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0)
            CK_TRY(w_raw(st, scratch, "\n", 1));
        CK_TRY(w_lit(st, scratch, v[i]));
    }
    return csv_cell(st, b, (const char *)scratch->p, scratch->len, false);
}

static const char CSV_HEADER[] =
    "purpose,state,at,expires,fields,recipients,source,notice,collector,recorded\r\n";

/* The consent history, oldest first, one row per record. */
static int w_csv(exp_ctx *e)
{
    ck_store *st = e->st;
    ck_buf *b = e->b;
    ck_buf cell = CK_BUF_SECURE_INIT;
    int rc = w_lit(st, b, CSV_HEADER);
    for (size_t i = 0; i < e->cl.n && rc == CK_OK; i++) {
        const ck_consent_rec *r = &e->cl.recs[e->cl.order[i]];
        char at[CK_TS_TEXT_MAX], exp[CK_TS_TEXT_MAX], rec[CK_TS_TEXT_MAX];
        ck_consent__time_text(at, r->at, 0);
        ck_consent__time_text(exp, r->expires, 0);
        if (r->expires == 0)
            exp[0] = '\0';
        ck_consent__time_text(rec, (int64_t)(r->recorded_ns / 1000000000u),
                              (int32_t)(r->recorded_ns % 1000000000u));
        if (r->recorded_ns == 0)
            rec[0] = '\0';
        rc = csv_cell(st, b, r->purpose, strlen(r->purpose), true);
        if (rc == CK_OK)
            rc = csv_cstr(st, b, ck_consent__state_name(r->state));
        if (rc == CK_OK)
            rc = csv_cstr(st, b, at);
        if (rc == CK_OK)
            rc = csv_cstr(st, b, exp);
        if (rc == CK_OK)
            rc = r->nfields > 0 ? csv_list(st, b, r->fields, r->nfields, &cell)
                                : csv_cstr(st, b, "all");
        if (rc == CK_OK)
            rc = csv_list(st, b, r->recipients, r->nrecipients, &cell);
        if (rc == CK_OK)
            rc = csv_cstr(st, b, r->source);
        if (rc == CK_OK)
            rc = csv_cstr(st, b, r->notice);
        if (rc == CK_OK)
            rc = csv_cstr(st, b, r->collector);
        if (rc == CK_OK)
            rc = csv_cstr(st, b, rec);
        if (rc == CK_OK)
            rc = w_raw(st, b, "\r\n", 2);
    }
    ck_buf__free(&cell);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* ck_export                                                                 */
/* ------------------------------------------------------------------------ */

/* Read everything into e->b, inside the snapshot e->txn. */
static int build(exp_ctx *e, const ck_who *who, bool csv)
{
    ck_store *st = e->st;
    ck_buf norm = CK_BUF_SECURE_INIT;
    MDB_txn *ktxn = NULL;
    int rc;
    CK_GUARD(ck_schema__get(&e->schema, st, e->txn));
    CK_GUARD(ck_subject__resolve(e->sid, st, e->txn, e->schema, who, NULL, NULL, &norm));
    /* The data key only: the keyring's snapshot is not held longer. */
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &ktxn));
    rc = ck_subject__data_key(st, ktxn, e->sid, e->dk);
    ck_env__read_end(&st->keyring, ktxn);
    CK_GUARD(rc);
    ck_audit__pseudonym(e->pn, st, e->dk, e->sid);
    CK_GUARD(ck_consent__list(&e->cl, st, e->txn, e->sid, e->dk, &e->arena));
    if (csv) {
        rc = w_csv(e);
        goto cleanup;
    }
    CK_GUARD(ck_subject__read(&e->subj, st, e->txn, e->sid, e->dk, &e->arena));
    e->created = e->subj.created;
    CK_GUARD(w_header(e));
    CK_GUARD(w_fields(e));
    CK_GUARD(w_lookups(e));
    CK_GUARD(w_consents(e));
    CK_GUARD(w_contacts(e));
    CK_GUARD(w_purposes(e));
    CK_GUARD(w_audit(e));
    rc = CK_OK;
cleanup:
    ck_buf__free(&norm);
    return rc;
}

CK_EXPORT int ck_export(char **out, ck_store *st, const ck_who *who, const char *actor,
                        unsigned int flags)
{
    if (out != NULL)
        *out = NULL;
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    if ((flags & ~CK_EXPORT_CSV) != 0)
        return ck_err__set(st, CK_EINVAL, "unknown flags 0x%x", flags & ~CK_EXPORT_CSV);
    if (actor == NULL || !ck_codec__text_ok(actor, strlen(actor), ACTOR_MAX))
        return ck_err__set(st, CK_EINVAL, "an export needs an actor (1 to %d bytes of text)",
                           ACTOR_MAX);
    if (who == NULL)
        return ck_err__set(st, CK_EINVAL, "no subject given");
    /* The export is audited: a read-only handle cannot write the entry. */
    if ((st->flags & CK_OPEN_RDONLY) != 0)
        return ck_err__set(st, CK_EDENIED, "an export is audited: the store is open read-only");
    bool csv = (flags & CK_EXPORT_CSV) != 0;
    int rc;
    ck_buf b = CK_BUF_SECURE_INIT;
    exp_ctx e;
    memset(&e, 0, sizeof e);
    e.st = st;
    e.now = ck_store__now(st);
    e.b = &b;
    e.hist = (ck_buf)CK_BUF_SECURE_INIT;
    e.arena = (ck_arena)CK_ARENA_INIT;
    e.varena = (ck_arena)CK_ARENA_INIT;
    e.dk = ck_store__key_take(st);
    CK_ENSURE(e.dk != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(ck_env__read_begin(st, &st->data, &e.txn));
    rc = build(&e, who, csv);
    ck_env__read_end(&st->data, e.txn);
    e.txn = NULL;
    CK_GUARD(rc);

    /* Audited, and on disk, before anything is handed out. */
    ck_audit_detail_item d[4] = {{"format", csv ? "csv" : "json", 0},
                                 {"consents", NULL, (int64_t)e.cl.n},
                                 {"fields", NULL, e.nfields},
                                 {"releases", NULL, e.nreleases}};
    ck_audit_entry ae = CK_AUDIT_ENTRY_INIT;
    ae.actor = actor;
    ae.action = "export";
    ae.subject = e.pn;
    ae.detail = d;
    ae.n_detail = csv ? 2 : 4;
    CK_GUARD(ck_audit__append(st, &ae, true, NULL, NULL));

    *out = ck_out__strndup((const char *)b.p, b.len);
    CK_ENSURE(*out != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    rc = CK_OK;
cleanup:
    if (e.txn != NULL)
        ck_env__read_end(&st->data, e.txn);
    ck_schema__release(e.schema);
    ck_subj__fini(&e.subj);
    ck_consent__list_free(&e.cl);
    ck_arena__free(&e.varena);
    ck_arena__free(&e.arena);
    ck_buf__free(&e.hist);
    ck_buf__free(&b);
    ck_store__key_give(st, e.dk);
    sodium_memzero(e.sid, sizeof e.sid);
    return rc;
}
