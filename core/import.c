/*
 * import.c - JSON Lines in, one subject per line, each line atomic.
 *
 * A line is parsed and checked completely - JSON, keys, every field value
 * against its type, identifying values normalisable, every consent against
 * the schema - before anything of it is written, so a bad line writes
 * nothing and a good line cannot fail half-way except on a system error
 * (I/O, memory), which rolls the whole batch back. Good lines are written
 * in batches of `batch_lines`, one data transaction each (plus one keyring
 * transaction for the data keys of new subjects, committed first).
 *
 * A batch may be run twice (the map grew): nothing leaves the transaction
 * before it commits - rejected lines are reported, and counts added, only
 * after the commit; audit entries are appended at the end of the batch.
 */
#include "audit.h"
#include "consent.h"
#include "value.h"

#include <jansson.h>
#include <string.h>

#define LINE_MAX_BYTES    (16u << 20)
#define BATCH_DEFAULT     4096u
#define BATCH_MAX         (1u << 20)
#define REASON_MAX        160
#define LINE_CONSENTS_MAX CK_SCHEMA_PURPOSES_MAX
#define LINE_FIELDS_MAX   CK_SCHEMA_FIELDS_MAX

/* write_line: the ref has a tombstone and the options do not allow
 * re-creating it (internal status, becomes a reject). */
#define CK_ERASED_REF (-1001)

typedef struct imp_reject {
    uint64_t line;
    char reason[REASON_MAX];
} imp_reject;

/* A consent given in a line, for the audit entry written at batch end. */
typedef struct imp_audit {
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
    uint32_t first, n; /* slice of audit_consents */
} imp_audit;

typedef struct imp_audit_consent {
    const ck_schema_purpose *p;
    ck_consent_state state;
} imp_audit_consent;

typedef struct imp_lineref {
    size_t off, len;
    uint64_t no;
} imp_lineref;

struct ck_importer {
    ck_store *st;
    char *actor, *source;
    unsigned batch_lines;
    unsigned flags;
    void (*on_reject)(void *ctx, uint64_t line, const char *reason);
    void *ctx;

    ck_buf partial; /* secure: the line being assembled across feeds */
    bool partial_too_long;
    uint64_t lineno; /* lines seen so far */
    ck_buf batch;    /* secure: the lines of the batch, concatenated */
    imp_lineref *lines;
    size_t nlines, caplines;

    /* per attempt of a batch */
    ck_import_stats bs;
    imp_reject *rejects;
    size_t nrejects, caprejects;
    imp_audit *audits;
    size_t naudits, capaudits;
    imp_audit_consent *aconsents;
    size_t naconsents, capaconsents;

    ck_import_stats stats; /* committed */
    int err;
};

/* Grow an array of `size`-byte elements to hold one more. */
static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return CK_OK;
    size_t nc = *cap ? *cap * 2 : 64;
    void *q = ck_mem__malloc(nc * size);
    if (q == NULL)
        return CK_ENOMEM;
    if (n)
        memcpy(q, *p, n * size);
    ck_mem__free(*p);
    *p = q;
    *cap = nc;
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* One line                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct line_field {
    const ck_schema_field *f;
    ck_value v;
    bool del;
    /* identifying: the index key and tombstone tag of the value, made
     * when the line is checked (its normalisation is checked then) */
    uint8_t ixkey[CK_INDEX_KEY_BYTES], tomb[CK_TOMB_BYTES];
} line_field;

typedef struct line_consent {
    const ck_schema_purpose *p;
    ck_consent c;
} line_consent;

typedef struct parsed {
    json_t *root;
    const char *ref;
    size_t ref_len;
    uint8_t refkey[CK_INDEX_KEY_BYTES]; /* the ref's index key */
    uint8_t tomb[CK_TOMB_BYTES];        /* the ref's tombstone tag */
    line_field *fields;
    size_t nfields;
    line_consent *consents;
    size_t nconsents;
} parsed;

#define REJECT(...)                                                                                \
    do {                                                                                           \
        snprintf(reason, REASON_MAX, __VA_ARGS__);                                                 \
        return CK_EINVAL;                                                                          \
    } while (0)

/* Names from the file (keys) are shown through ck_shown: cut, and with
 * control characters replaced (a reason goes to a terminal). */
#define NAME_SHOWN "%s"
#define SHOWN(s)   ck_shown((char[CK_SHOWN_MAX]){0}, (s))

static int parse_expires(int64_t *out, const char *s, size_t n)
{
    int32_t days;
    if (ck_date__parse(&days, s, n) == CK_OK) {
        /* A date: the consent holds through that whole day (UTC). */
        *out = ((int64_t)days + 1) * 86400;
        return CK_OK;
    }
    ck_value ts;
    if (ck_ts__parse(&ts, s, n) == CK_OK) {
        *out = ts.u.ts.sec;
        return CK_OK;
    }
    return CK_EINVAL;
}

static int str_array(const char ***out, size_t *n, json_t *a, ck_arena *arena, size_t max)
{
    if (!json_is_array(a) || json_array_size(a) > max)
        return CK_EINVAL;
    size_t cnt = json_array_size(a);
    const char **v = ck_arena__alloc(arena, (cnt ? cnt : 1) * sizeof *v);
    if (v == NULL)
        return CK_ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        json_t *it = json_array_get(a, i);
        if (!json_is_string(it) || strlen(json_string_value(it)) != json_string_length(it))
            return CK_EINVAL;
        v[i] = json_string_value(it);
    }
    *out = v;
    *n = cnt;
    return CK_OK;
}

static int opt_string(const char **out, json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL)
        return CK_OK;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return CK_EINVAL;
    *out = json_string_value(v);
    return CK_OK;
}

static int parse_consent(ck_importer *imp, ck_wctx *w, line_consent *lc, const char *purpose,
                         json_t *jv, char *reason)
{
    ck_store *st = w->st;
    ck_consent *c = &lc->c;
    *c = (ck_consent)CK_CONSENT_INIT;
    c->purpose = purpose;
    c->source = imp->source;
    c->at = 0;
    if (json_is_true(jv)) {
        c->state = CK_CONSENT_GRANTED;
    } else if (json_is_false(jv)) {
        c->state = CK_CONSENT_REFUSED;
    } else if (json_is_object(jv)) {
        static const char *const keys[] = {"state",  "fields", "recipients", "expires",
                                           "source", "notice", "collector"};
        const char *key;
        json_t *v;
        json_object_foreach(jv, key, v)
        {
            bool known = false;
            for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
                known = known || strcmp(key, keys[i]) == 0;
            if (!known)
                REJECT("consent." NAME_SHOWN ": unknown key \"" NAME_SHOWN "\"", SHOWN(purpose),
                       SHOWN(key));
        }
        json_t *s = json_object_get(jv, "state");
        if (!json_is_string(s) || ck_consent__state_parse(&c->state, json_string_value(s),
                                                          json_string_length(s)) != CK_OK)
            REJECT("consent." NAME_SHOWN ".state: expected granted, withdrawn, refused or objected",
                   SHOWN(purpose));
        json_t *f = json_object_get(jv, "fields");
        if (f != NULL) {
            int rc =
                str_array((const char ***)&c->fields, &c->nfields, f, &w->arena, LINE_FIELDS_MAX);
            if (rc == CK_ENOMEM)
                return ck_err__set(st, rc, "out of memory");
            if (rc != CK_OK)
                REJECT("consent." NAME_SHOWN ".fields: expected a list of field names",
                       SHOWN(purpose));
            if (c->nfields == 0)
                REJECT("consent." NAME_SHOWN ".fields: an empty scope (leave it out for all "
                       "fields)",
                       SHOWN(purpose));
        }
        json_t *r = json_object_get(jv, "recipients");
        if (r != NULL) {
            int rc = str_array((const char ***)&c->recipients, &c->nrecipients, r, &w->arena,
                               CK_CONSENT_RECIPS_MAX);
            if (rc == CK_ENOMEM)
                return ck_err__set(st, rc, "out of memory");
            if (rc != CK_OK)
                REJECT("consent." NAME_SHOWN ".recipients: expected a list of names",
                       SHOWN(purpose));
        }
        json_t *e = json_object_get(jv, "expires");
        if (e != NULL && (!json_is_string(e) || parse_expires(&c->expires, json_string_value(e),
                                                              json_string_length(e)) != CK_OK))
            REJECT("consent." NAME_SHOWN ".expires: expected a date YYYY-MM-DD or an RFC 3339 "
                   "time",
                   SHOWN(purpose));
        const char *src;
        if (opt_string(&src, jv, "source") != CK_OK ||
            opt_string(&c->notice, jv, "notice") != CK_OK ||
            opt_string(&c->collector, jv, "collector") != CK_OK)
            REJECT("consent." NAME_SHOWN ": source, notice and collector are strings",
                   SHOWN(purpose));
        if (src != NULL)
            c->source = src;
    } else {
        REJECT("consent." NAME_SHOWN ": expected true, false or an object", SHOWN(purpose));
    }
    int rc = ck_consent__check(st, w->schema, c, &lc->p);
    if (rc == CK_EINVAL)
        REJECT("consent: %s", ck_err__get(st));
    return rc;
}

/* Parse and check a whole line. CK_EINVAL with `reason` for a bad line;
 * any other error stops the batch. */
static int parse_line(ck_importer *imp, ck_wctx *w, parsed *pl, const char *text, size_t len,
                      char *reason)
{
    ck_store *st = w->st;
    json_error_t jerr;
    memset(pl, 0, sizeof *pl);
    pl->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (pl->root == NULL)
        /* jerr.text may quote the input: give the position only. */
        REJECT("invalid JSON at column %d", jerr.column);
    if (!json_is_object(pl->root))
        REJECT("not a JSON object");
    /* One pass over the keys (the object keeps them in order: the first
     * unknown one is the one a reason names). */
    const char *key;
    json_t *v, *ref = NULL, *fields = NULL, *consent = NULL;
    json_object_foreach(pl->root, key, v)
    {
        if (strcmp(key, "ref") == 0)
            ref = v;
        else if (strcmp(key, "fields") == 0)
            fields = v;
        else if (strcmp(key, "consent") == 0)
            consent = v;
        else
            REJECT("unknown key \"" NAME_SHOWN "\" (expected ref, fields, consent)", SHOWN(key));
    }
    if (!json_is_string(ref))
        REJECT("\"ref\" is required and must be a string");
    pl->ref = json_string_value(ref);
    pl->ref_len = json_string_length(ref);
    {
        int rc = ck_subject__unique_key(pl->refkey, pl->tomb, st, CK_INDEX_REF, pl->ref,
                                        pl->ref_len, &w->norm);
        if (rc == CK_EINVAL)
            REJECT("ref: %s", ck_err__get(st));
        CK_TRY(rc);
    }

    if (fields != NULL) {
        if (!json_is_object(fields))
            REJECT("\"fields\" must be an object");
        size_t n = json_object_size(fields);
        if (n > LINE_FIELDS_MAX)
            REJECT("too many fields");
        pl->fields = ck_arena__alloc(&w->arena, (n ? n : 1) * sizeof *pl->fields);
        if (pl->fields == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        json_object_foreach(fields, key, v)
        {
            const ck_schema_field *f = ck_schema__field(w->schema, key, strlen(key));
            if (f == NULL)
                REJECT("unknown field \"" NAME_SHOWN "\"", SHOWN(key));
            line_field *lf = &pl->fields[pl->nfields++];
            lf->f = f;
            lf->del = json_is_null(v);
            if (lf->del)
                continue;
            char err[128];
            int rc = ck_value__from_json(&lf->v, f->type, v, &w->arena, err, sizeof err);
            if (rc == CK_EINVAL || rc == CK_ELIMIT)
                REJECT("field %s: %s", f->name, err);
            if (rc != CK_OK)
                return ck_err__set(st, rc, "out of memory");
            if (f->identifying) {
                ck_buf__reset(&w->norm);
                rc = ck_ident__normalize(&w->norm, ck_ident__norm_kind_for(f->name),
                                         lf->v.u.str.ptr, lf->v.u.str.len);
                if (rc == CK_OK)
                    ck_subject__field_keys(lf->ixkey, lf->tomb, st, f->id, w->norm.p, w->norm.len);
                ck_buf__reset(&w->norm);
                if (rc == CK_EINVAL)
                    REJECT("field %s: the value cannot be normalised for look-ups (%s)", f->name,
                           ck_ident__norm_kind_for(f->name) == CK_NORM_EMAIL ? "not an e-mail"
                           : ck_ident__norm_kind_for(f->name) == CK_NORM_PHONE
                               ? "not a phone number"
                               : "empty");
                CK_TRY(rc);
            }
        }
    }

    if (consent != NULL) {
        if (!json_is_object(consent))
            REJECT("\"consent\" must be an object");
        size_t n = json_object_size(consent);
        if (n > LINE_CONSENTS_MAX)
            REJECT("too many consents");
        pl->consents = ck_arena__alloc(&w->arena, (n ? n : 1) * sizeof *pl->consents);
        if (pl->consents == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        json_object_foreach(consent, key, v)
        {
            if (ck_schema__purpose(w->schema, key, strlen(key)) == NULL)
                REJECT("unknown purpose \"" NAME_SHOWN "\"", SHOWN(key));
            CK_TRY(parse_consent(imp, w, &pl->consents[pl->nconsents], key, v, reason));
            pl->nconsents++;
        }
    }
    return CK_OK;
}

static int write_line(ck_importer *imp, ck_wctx *w, const parsed *pl)
{
    ck_store *st = w->st;
    ck_subj s = {0};
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    int rc = ck_subject__find_unique(sid, w, pl->refkey, "ref");
    bool created = false;
    if (rc == CK_OK) {
        rc = ck_subject__open(w, &s, sid);
    } else if (rc == CK_ENOTFOUND) {
        bool erased = false;
        CK_TRY(ck_erase__tombstoned(&erased, st, w->txn, pl->tomb));
        if (erased && (imp->flags & CK_IMPORT_RECREATE_ERASED) == 0)
            return CK_ERASED_REF;
        /* The ref was just looked up in this transaction: it is free. */
        rc = ck_subject__new(w, &s);
        if (rc == CK_OK)
            rc = ck_subject__index_unique_new(w, &s, pl->refkey, pl->tomb);
        created = true;
    }
    for (size_t i = 0; rc == CK_OK && i < pl->nfields; i++) {
        const line_field *lf = &pl->fields[i];
        rc = lf->del ? ck_subject__set_field(w, &s, lf->f, NULL)
                     : ck_subject__set_field_keyed(w, &s, lf->f, &lf->v, lf->ixkey, lf->tomb);
    }
    if (rc == CK_OK)
        rc = ck_subject__save(w, &s);
    for (size_t i = 0; rc == CK_OK && i < pl->nconsents; i++)
        rc = ck_consent__append(w, &s, pl->consents[i].p, &pl->consents[i].c, NULL);
    if (rc == CK_OK && pl->nconsents > 0) {
        rc = grow((void **)&imp->audits, &imp->capaudits, imp->naudits, sizeof *imp->audits);
        for (size_t i = 0; rc == CK_OK && i < pl->nconsents; i++) {
            rc = grow((void **)&imp->aconsents, &imp->capaconsents, imp->naconsents,
                      sizeof *imp->aconsents);
            if (rc == CK_OK) {
                imp->aconsents[imp->naconsents] =
                    (imp_audit_consent){pl->consents[i].p, pl->consents[i].c.state};
                imp->naconsents++;
            }
        }
        if (rc == CK_OK) {
            imp_audit *a = &imp->audits[imp->naudits++];
            ck_audit__pseudonym(a->pn, st, s.dk, s.sid);
            a->first = (uint32_t)(imp->naconsents - pl->nconsents);
            a->n = (uint32_t)pl->nconsents;
        } else {
            rc = ck_err__set(st, CK_ENOMEM, "out of memory");
        }
    }
    if (rc == CK_OK) {
        imp->bs.imported++;
        if (created)
            imp->bs.created++;
        else
            imp->bs.updated++;
        imp->bs.consents += pl->nconsents;
    }
    ck_subj__fini(&s);
    return rc;
}

static int add_reject(ck_importer *imp, uint64_t line, const char *reason)
{
    if (grow((void **)&imp->rejects, &imp->caprejects, imp->nrejects, sizeof *imp->rejects) !=
        CK_OK)
        return ck_err__set(imp->st, CK_ENOMEM, "out of memory");
    imp_reject *r = &imp->rejects[imp->nrejects++];
    r->line = line;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    imp->bs.rejected++;
    return CK_OK;
}

/* The batch's audit entries: one "consent" entry per line that gave
 * consents (its details name each purpose and state), then one strict
 * "import" entry, whose fsync makes the whole batch's entries durable
 * before the batch commits. */
static int audit_batch(ck_importer *imp)
{
    ck_store *st = imp->st;
    /* Entries: one per line's slice of at most CK_AUDIT_DETAIL_MAX - 1
     * consents, then the import entry. */
    size_t ne = 1;
    for (size_t i = 0; i < imp->naudits; i++)
        ne += (imp->audits[i].n + CK_AUDIT_DETAIL_MAX - 2) / (CK_AUDIT_DETAIL_MAX - 1);
    ck_audit_entry *es = ck_mem__calloc(ne, sizeof *es);
    ck_audit_detail_item *ds = ck_mem__calloc(imp->naconsents + ne + 5, sizeof *ds);
    if (es == NULL || ds == NULL) {
        ck_mem__free(es);
        ck_mem__free(ds);
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    }
    size_t k = 0, nd = 0;
    for (size_t i = 0; i < imp->naudits; i++) {
        const imp_audit *a = &imp->audits[i];
        for (uint32_t done = 0; done < a->n;) {
            ck_audit_detail_item *d = &ds[nd];
            size_t m = 0;
            d[m++] = (ck_audit_detail_item){"via", "import", 0};
            uint32_t take = a->n - done;
            if (take > CK_AUDIT_DETAIL_MAX - 1)
                take = CK_AUDIT_DETAIL_MAX - 1;
            for (uint32_t j = 0; j < take; j++) {
                const imp_audit_consent *c = &imp->aconsents[a->first + done + j];
                d[m++] = (ck_audit_detail_item){c->p->name, ck_consent__state_name(c->state), 0};
            }
            ck_audit_entry *e = &es[k++];
            *e = (ck_audit_entry)CK_AUDIT_ENTRY_INIT;
            e->actor = imp->actor;
            e->action = "consent";
            e->subject = a->pn;
            if (a->n == 1)
                e->purpose = imp->aconsents[a->first].p->name;
            e->detail = d;
            e->n_detail = m;
            nd += m;
            done += take;
        }
    }
    ck_audit_detail_item *d = &ds[nd];
    d[0] = (ck_audit_detail_item){"lines", NULL, (int64_t)imp->nlines};
    d[1] = (ck_audit_detail_item){"created", NULL, (int64_t)imp->bs.created};
    d[2] = (ck_audit_detail_item){"updated", NULL, (int64_t)imp->bs.updated};
    d[3] = (ck_audit_detail_item){"rejected", NULL, (int64_t)imp->bs.rejected};
    d[4] = (ck_audit_detail_item){"consents", NULL, (int64_t)imp->bs.consents};
    ck_audit_entry *e = &es[k++];
    *e = (ck_audit_entry)CK_AUDIT_ENTRY_INIT;
    e->actor = imp->actor;
    e->action = "import";
    e->detail = d;
    e->n_detail = 5;
    /* Consent changes are strict: the batch's entries are fsync'ed before
     * the batch commits. */
    int rc = ck_audit__append_many(st, es, k, true);
    ck_mem__free(es);
    ck_mem__free(ds);
    return rc;
}

static int batch_fn(ck_wctx *w, void *ctx)
{
    ck_importer *imp = ctx;
    memset(&imp->bs, 0, sizeof imp->bs);
    imp->nrejects = imp->naudits = imp->naconsents = 0;
    char reason[REASON_MAX];
    for (size_t i = 0; i < imp->nlines; i++) {
        const imp_lineref *lr = &imp->lines[i];
        const char *text = (const char *)imp->batch.p + lr->off;
        parsed pl;
        reason[0] = '\0';
        int rc;
        if (lr->len == SIZE_MAX) {
            snprintf(reason, sizeof reason, "line longer than %u bytes", LINE_MAX_BYTES);
            rc = CK_EINVAL;
            memset(&pl, 0, sizeof pl);
        } else {
            rc = parse_line(imp, w, &pl, text, lr->len, reason);
        }
        if (rc == CK_OK) {
            rc = write_line(imp, w, &pl);
            if (rc == CK_ERASED_REF) {
                snprintf(reason, sizeof reason,
                         "ref: this customer was erased; the line is not imported (re-create "
                         "them as a new subject with --recreate-erased)");
                rc = CK_EINVAL;
            }
        }
        json_decref(pl.root);
        ck_arena__reset(&w->arena);
        if (rc == CK_EINVAL && reason[0] != '\0')
            rc = add_reject(imp, lr->no, reason);
        if (rc != CK_OK)
            return rc;
    }
    return audit_batch(imp);
}

static int run_batch(ck_importer *imp)
{
    if (imp->err != CK_OK)
        return imp->err;
    if (imp->nlines == 0)
        return CK_OK;
    /* A line of JSON becomes, once sealed and indexed, a few times its size
     * in pages (about 5x for typical profiles): make room for the whole
     * batch up front rather than rerunning it each time the map fills. */
    size_t room;
    if (ck_add_overflows(imp->batch.len, imp->batch.len, &room) ||
        ck_add_overflows(room, room, &room) || ck_add_overflows(room, room, &room))
        room = SIZE_MAX / 2;
    int rc = ck_env__reserve(imp->st, &imp->st->data, room);
    if (rc == CK_OK)
        rc = ck_subject__write(imp->st, batch_fn, imp);
    if (rc == CK_OK) {
        imp->stats.imported += imp->bs.imported;
        imp->stats.created += imp->bs.created;
        imp->stats.updated += imp->bs.updated;
        imp->stats.rejected += imp->bs.rejected;
        imp->stats.consents += imp->bs.consents;
        for (size_t i = 0; i < imp->nrejects; i++)
            if (imp->on_reject != NULL)
                imp->on_reject(imp->ctx, imp->rejects[i].line, imp->rejects[i].reason);
    } else {
        imp->err = rc;
    }
    ck_buf__reset(&imp->batch);
    imp->nlines = 0;
    imp->nrejects = imp->naudits = imp->naconsents = 0;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* Queue one complete line (without its '\n'); `too_long` marks a line cut
 * at LINE_MAX_BYTES. */
static int queue_line(ck_importer *imp, const char *s, size_t n, bool too_long)
{
    imp->lineno++;
    imp->stats.lines++;
    if (!too_long && blank(s, n))
        return CK_OK;
    if (grow((void **)&imp->lines, &imp->caplines, imp->nlines, sizeof *imp->lines) != CK_OK)
        return imp->err = ck_err__set(imp->st, CK_ENOMEM, "out of memory");
    imp_lineref *lr = &imp->lines[imp->nlines];
    lr->off = imp->batch.len;
    lr->len = too_long ? SIZE_MAX : n;
    lr->no = imp->lineno;
    if (!too_long) {
        int rc = ck_buf__append(&imp->batch, s, n);
        if (rc != CK_OK)
            return imp->err = ck_err__set(imp->st, rc, "out of memory");
    }
    imp->nlines++;
    if (imp->nlines >= imp->batch_lines)
        return run_batch(imp);
    return CK_OK;
}

CK_EXPORT int ck_import_begin(ck_importer **out, ck_store *st, const ck_import_options *opts)
{
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    *out = NULL;
    ck_import_options def = CK_IMPORT_OPTIONS_INIT;
    if (opts == NULL)
        opts = &def;
    if (opts->version != CK_IMPORT_OPTIONS_VERSION)
        return ck_err__set(st, CK_EINVAL, "ck_import_options version %u is not supported",
                           opts->version);
    if ((opts->flags & ~CK_IMPORT_RECREATE_ERASED) != 0)
        return ck_err__set(st, CK_EINVAL, "unknown import flags 0x%x", opts->flags);
    if (opts->batch_lines > BATCH_MAX)
        return ck_err__set(st, CK_EINVAL, "batch_lines is at most %u", BATCH_MAX);
    if ((st->flags & CK_OPEN_RDONLY) != 0)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    uint32_t sv = 0;
    CK_TRY(ck_schema_version(&sv, st));
    if (sv == 0)
        return ck_err__set(st, CK_ENOTFOUND, "no schema has been applied: nothing can be imported");
    const char *actor = opts->actor != NULL ? opts->actor : "import";
    const char *source = opts->source != NULL ? opts->source : "import";
    if (strlen(actor) == 0 || strlen(actor) > 256 || strlen(source) == 0 ||
        strlen(source) > CK_CONSENT_TEXT_MAX)
        return ck_err__set(st, CK_EINVAL, "actor and source are 1 to 256 bytes");
    ck_importer *imp = ck_mem__malloc(sizeof *imp);
    if (imp == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    memset(imp, 0, sizeof *imp);
    imp->st = st;
    imp->partial = (ck_buf)CK_BUF_SECURE_INIT;
    imp->batch = (ck_buf)CK_BUF_SECURE_INIT;
    imp->batch_lines = opts->batch_lines ? opts->batch_lines : BATCH_DEFAULT;
    imp->flags = opts->flags;
    imp->on_reject = opts->on_reject;
    imp->ctx = opts->ctx;
    imp->actor = ck_mem__strndup(actor, strlen(actor));
    imp->source = ck_mem__strndup(source, strlen(source));
    if (imp->actor == NULL || imp->source == NULL) {
        ck_import_free(imp);
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    }
    *out = imp;
    return CK_OK;
}

CK_EXPORT int ck_import_feed(ck_importer *imp, const char *data, size_t len)
{
    if (imp == NULL || (data == NULL && len > 0))
        return CK_EINVAL;
    if (imp->err != CK_OK)
        return imp->err;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl != NULL ? (size_t)(nl - data) : len;
        if (!imp->partial_too_long) {
            if (imp->partial.len + take > LINE_MAX_BYTES) {
                imp->partial_too_long = true;
                ck_buf__reset(&imp->partial);
            } else if (nl != NULL && imp->partial.len == 0) {
                /* The common case: a whole line in this chunk, no copy. */
                CK_TRY(queue_line(imp, data, take, false));
            } else {
                int rc = ck_buf__append(&imp->partial, data, take);
                if (rc != CK_OK)
                    return imp->err = ck_err__set(imp->st, rc, "out of memory");
                if (nl != NULL) {
                    rc = queue_line(imp, (const char *)imp->partial.p, imp->partial.len, false);
                    ck_buf__reset(&imp->partial);
                    CK_TRY(rc);
                }
            }
        }
        if (nl != NULL && imp->partial_too_long) {
            imp->partial_too_long = false;
            CK_TRY(queue_line(imp, NULL, 0, true));
        }
        if (nl == NULL)
            break;
        data = nl + 1;
        len -= take + 1;
    }
    return CK_OK;
}

CK_EXPORT void ck_import_stats_get(const ck_importer *imp, ck_import_stats *out)
{
    if (out == NULL)
        return;
    if (imp == NULL)
        memset(out, 0, sizeof *out);
    else
        *out = imp->stats;
}

CK_EXPORT int ck_import_finish(ck_importer *imp, ck_import_stats *out)
{
    if (imp == NULL)
        return CK_EINVAL;
    int rc = imp->err;
    if (rc == CK_OK && (imp->partial.len > 0 || imp->partial_too_long)) {
        rc = queue_line(imp, (const char *)imp->partial.p, imp->partial.len, imp->partial_too_long);
        ck_buf__reset(&imp->partial);
    }
    if (rc == CK_OK)
        rc = run_batch(imp);
    if (out != NULL)
        *out = imp->stats;
    ck_import_free(imp);
    return rc;
}

CK_EXPORT void ck_import_free(ck_importer *imp)
{
    if (imp == NULL)
        return;
    ck_buf__free(&imp->partial);
    ck_buf__free(&imp->batch);
    ck_mem__free(imp->lines);
    ck_mem__free(imp->rejects);
    ck_mem__free(imp->audits);
    ck_mem__free(imp->aconsents);
    ck_mem__free(imp->actor);
    ck_mem__free(imp->source);
    ck_mem__free(imp);
}
