/*
 * report.c - the DPO's summary of the audit log and of the consent index
 * (ck_audit_report_json), and the audit pseudonym of a named subject
 * (ck_audit_subject).
 *
 * The report counts; it never holds a value, a ref or an identifying
 * datum: every string in it is a name the audit log already holds (actor,
 * purpose, reason, channel, consent state) or a time. The consent part is
 * read from the consent index in the clear (state and expiry of each
 * subject and purpose), so nothing is decrypted.
 */
#include "audit.h"
#include "consent.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define EXPIRING_WINDOW_S (30 * 86400)

/* ------------------------------------------------------------------------ */
/* ck_audit_subject                                                          */
/* ------------------------------------------------------------------------ */

CK_EXPORT int ck_audit_subject(unsigned char out[CK_AUDIT_PSEUDONYM_BYTES], ck_store *st,
                               const ck_who *who)
{
    if (out == NULL || st == NULL || who == NULL)
        return CK_EINVAL;
    memset(out, 0, CK_AUDIT_PSEUDONYM_BYTES);
    int rc;
    MDB_txn *txn = NULL, *ktxn = NULL;
    ck_schema *schema = NULL;
    ck_buf norm = CK_BUF_SECURE_INIT;
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    unsigned char *dk = ck_store__key_take(st);
    if (dk == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    CK_GUARD(ck_env__read_begin(st, &st->data, &txn));
    if (who->by == CK_BY_LOOKUP)
        CK_GUARD(ck_schema__get(&schema, st, txn));
    CK_GUARD(ck_subject__resolve(sid, st, txn, schema, who, NULL, NULL, &norm));
    CK_GUARD(ck_env__read_begin(st, &st->keyring, &ktxn));
    CK_GUARD(ck_subject__data_key(st, ktxn, sid, dk));
    ck_audit__pseudonym(out, st, dk, sid);
    rc = CK_OK;
cleanup:
    ck_env__read_end(&st->keyring, ktxn);
    ck_schema__release(schema);
    ck_env__read_end(&st->data, txn);
    ck_buf__free(&norm);
    ck_store__key_give(st, dk);
    sodium_memzero(sid, sizeof sid);
    if (rc != CK_OK)
        memset(out, 0, CK_AUDIT_PSEUDONYM_BYTES);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Counters in Jansson objects                                               */
/* ------------------------------------------------------------------------ */

/* The object under `key` in `o`, created empty when absent; NULL when out of
 * memory. */
static json_t *sub(json_t *o, const char *key)
{
    if (o == NULL)
        return NULL;
    json_t *v = json_object_get(o, key);
    if (v != NULL)
        return v;
    v = json_object();
    if (v == NULL || json_object_set_new(o, key, v) != 0)
        return NULL;
    return v;
}

/* o[key] += by (created at 0). -1 when out of memory. */
static int add(json_t *o, const char *key, json_int_t by)
{
    if (o == NULL)
        return -1;
    json_t *v = json_object_get(o, key);
    if (v != NULL)
        return json_integer_set(v, json_integer_value(v) + by);
    return json_object_set_new(o, key, json_integer(by));
}

/* Milliseconds since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static json_t *time_json(uint64_t ms)
{
    time_t s = (time_t)(ms / 1000u);
    struct tm tm;
    char base[24], out[40];
    if (gmtime_r(&s, &tm) == NULL || strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return json_null();
    snprintf(out, sizeof out, "%s.%03uZ", base, (unsigned)(ms % 1000u));
    return json_string(out);
}

static bool is_state(const char *s)
{
    ck_consent_state st;
    return s != NULL && ck_consent__state_parse(&st, s, strlen(s)) == CK_OK;
}

/* ------------------------------------------------------------------------ */
/* The audit log part                                                        */
/* ------------------------------------------------------------------------ */

typedef struct report {
    const char *purpose; /* the filter's purpose, or NULL */
    json_t *purposes;    /* purpose -> {releases, segment_answers, fields_released,
                            withheld: {reason: n}} */
    json_t *actors;      /* actor -> {releases, segment_answers} */
    json_t *consents;    /* purpose -> {state: n} */
    json_t *contacts;    /* channel -> n */
    json_t *actions;     /* action -> n */
    json_int_t entries, releases, segment_answers, erasures, exports, schema_changes, key_ops,
        consent_changes, contact_entries;
    uint64_t first_ms, last_ms;
} report;

static bool purpose_ok(const report *r, const char *p)
{
    return r->purpose == NULL || (p != NULL && strcmp(p, r->purpose) == 0);
}

static const char *detail_str(const ck_audit_record *e, const char *key)
{
    for (size_t i = 0; i < e->n_detail; i++)
        if (e->detail[i].str != NULL && strcmp(e->detail[i].key, key) == 0)
            return e->detail[i].str;
    return NULL;
}

/* Count one consent entry: either "state" (with the entry's purpose) or,
 * for an import line, purpose -> state pairs. Returns the pairs counted
 * (0 when the purpose filter leaves none) or -1 when out of memory. */
static int count_consent(report *r, const ck_audit_record *e)
{
    const char *state = detail_str(e, "state");
    if (state != NULL && e->purpose != NULL) {
        if (!purpose_ok(r, e->purpose))
            return 0;
        return add(sub(r->consents, e->purpose), state, 1) == 0 ? 1 : -1;
    }
    int n = 0;
    for (size_t i = 0; i < e->n_detail; i++) {
        const ck_audit_detail_item *d = &e->detail[i];
        if (strcmp(d->key, "via") == 0 || strcmp(d->key, "state") == 0 || !is_state(d->str) ||
            !purpose_ok(r, d->key))
            continue;
        if (add(sub(r->consents, d->key), d->str, 1) != 0)
            return -1;
        n++;
    }
    return n;
}

static int count_answer(report *r, const ck_audit_record *e, bool is_release)
{
    json_t *p = sub(r->purposes, e->purpose != NULL ? e->purpose : "(none)");
    /* Both counters always appear, at 0 when the other kind counts. */
    if (add(p, "releases", is_release) != 0 || add(p, "segment_answers", !is_release) != 0 ||
        add(p, "fields_released", (json_int_t)e->n_released) != 0)
        return -1;
    json_t *wh = sub(p, "withheld");
    if (wh == NULL)
        return -1;
    for (size_t i = 0; i < e->n_withheld; i++)
        if (add(wh, e->withheld[i].reason, 1) != 0)
            return -1;
    json_t *a = sub(r->actors, e->actor);
    if (add(a, "releases", is_release) != 0 || add(a, "segment_answers", !is_release) != 0)
        return -1;
    if (is_release)
        r->releases++;
    else
        r->segment_answers++;
    return 0;
}

/* Count one entry. 1 counted, 0 left out by the purpose filter, -1 out of
 * memory. */
static int count_entry(report *r, const ck_audit_record *e)
{
    const char *a = e->action;
    if (strcmp(a, "consent") == 0) {
        int n = count_consent(r, e);
        if (n <= 0)
            return n;
        r->consent_changes += n;
    } else if (!purpose_ok(r, e->purpose)) {
        return 0;
    } else if (strcmp(a, "release") == 0 || strcmp(a, "segment") == 0) {
        if (count_answer(r, e, a[0] == 'r') != 0)
            return -1;
    } else if (strcmp(a, "contact") == 0) {
        const char *ch = detail_str(e, "channel");
        r->contact_entries++;
        if (add(r->contacts, ch != NULL ? ch : "(none)", 1) != 0)
            return -1;
    } else if (strcmp(a, "erase") == 0) {
        r->erasures++;
    } else if (strcmp(a, "export") == 0) {
        r->exports++;
    } else if (strcmp(a, "schema") == 0) {
        r->schema_changes++;
    } else if (strcmp(a, "key") == 0) {
        r->key_ops++;
    }
    if (add(r->actions, a, 1) != 0)
        return -1;
    if (r->entries == 0 || e->time_ms < r->first_ms)
        r->first_ms = e->time_ms;
    if (r->entries == 0 || e->time_ms > r->last_ms)
        r->last_ms = e->time_ms;
    r->entries++;
    return 1;
}

static int walk_log(report *r, ck_store *st, const ck_audit_filter *f)
{
    ck_audit_filter q = CK_AUDIT_FILTER_INIT;
    if (f != NULL) {
        q.actor = f->actor;
        q.since_ms = f->since_ms;
        q.until_ms = f->until_ms;
        /* The purpose is applied here, not by the query: an import line's
         * consent entry names its purposes in its detail only. */
    }
    ck_audit_cursor *c = NULL;
    int rc = ck_audit_query(&c, st, &q);
    if (rc != CK_OK)
        return rc;
    const ck_audit_record *e;
    while ((rc = ck_audit_next(c, &e)) == CK_OK) {
        if (count_entry(r, e) < 0) {
            rc = ck_err__set(st, CK_ENOMEM, "out of memory");
            break;
        }
    }
    ck_audit_cursor_free(c);
    return rc == CK_ENOTFOUND ? CK_OK : rc;
}

/* ------------------------------------------------------------------------ */
/* The consent index part                                                    */
/* ------------------------------------------------------------------------ */

typedef struct cstate {
    json_int_t granted, withdrawn, refused, objected, expired, expiring;
} cstate;

static int count_purpose(cstate *out, ck_store *st, MDB_cursor *cur, const ck_schema_purpose *p,
                         int64_t now)
{
    uint8_t ptag[CK_PTAG_BYTES];
    ck_consent__ptag_of(ptag, st, p);
    memset(out, 0, sizeof *out);
    MDB_val k = {CK_PTAG_BYTES, ptag}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != CK_CINDEX_KEY_BYTES || memcmp(k.mv_data, ptag, CK_PTAG_BYTES) != 0)
            return CK_OK;
        const uint8_t *q = v.mv_data;
        if (v.mv_size != CK_CINDEX_VAL_BYTES)
            return ck_err__set(st, CK_EINTEGRITY, "a consent index entry is malformed");
        int64_t exp = (int64_t)ck_be64_get(q + 1);
        switch (q[0]) {
        case CK_CONSENT_GRANTED:
            if (exp != 0 && exp <= now) {
                out->expired++;
            } else {
                out->granted++;
                if (exp != 0 && exp - now <= EXPIRING_WINDOW_S)
                    out->expiring++;
            }
            break;
        case CK_CONSENT_WITHDRAWN:
            out->withdrawn++;
            break;
        case CK_CONSENT_REFUSED:
            out->refused++;
            break;
        case CK_CONSENT_OBJECTED:
            out->objected++;
            break;
        case CK_CONSENT_EXPIRED: /* closed by a purge */
            out->expired++;
            break;
        default:
            return ck_err__set(st, CK_EINTEGRITY, "a consent index entry is malformed");
        }
    }
    if (mrc == MDB_NOTFOUND)
        return CK_OK;
    return ck_err__mdb(st, mrc, "cannot read the consent index");
}

/* {"at": time, "purposes": {P: {basis, granted, ...}}}, or JSON null when
 * no schema was applied. */
static int walk_consents(json_t **out, ck_store *st, const char *only, int64_t now)
{
    int rc;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    ck_schema *schema = NULL;
    json_t *o = NULL;
    *out = NULL;
    CK_GUARD(ck_env__read_begin(st, &st->data, &txn));
    rc = ck_schema__get(&schema, st, txn);
    if (rc == CK_ENOTFOUND) {
        *out = json_null();
        rc = CK_OK;
        goto cleanup;
    }
    CK_GUARD(rc);
    int mrc = mdb_cursor_open(txn, st->dbi_cindex, &cur);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot open a cursor"));
    o = json_object();
    CK_ENSURE(o != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    for (uint32_t i = 0; i < schema->npurposes; i++) {
        const ck_schema_purpose *p = &schema->purposes[i];
        if (only != NULL && strcmp(only, p->name) != 0)
            continue;
        cstate cs;
        CK_GUARD(count_purpose(&cs, st, cur, p, now));
        json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "basis",
                              ck_schema__basis_name(p->basis), "granted", cs.granted, "withdrawn",
                              cs.withdrawn, "refused", cs.refused, "objected", cs.objected,
                              "expired", cs.expired, "expiring_30d", cs.expiring);
        CK_ENSURE(j != NULL && json_object_set_new(o, p->name, j) == 0,
                  ck_err__set(st, CK_ENOMEM, "out of memory"));
    }
    *out = o;
    o = NULL;
    rc = CK_OK;
cleanup:
    json_decref(o);
    if (cur != NULL)
        mdb_cursor_close(cur);
    ck_schema__release(schema);
    ck_env__read_end(&st->data, txn);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* ck_audit_report_json                                                      */
/* ------------------------------------------------------------------------ */

static json_t *opt_string(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

CK_EXPORT int ck_audit_report_json(char **out, ck_store *st, const ck_audit_filter *f)
{
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (f != NULL && f->version != CK_AUDIT_FILTER_VERSION)
        return ck_err__set(st, CK_EINVAL, "ck_audit_filter version %u is not supported",
                           f->version);
    int rc;
    report r;
    memset(&r, 0, sizeof r);
    json_t *consents_now = NULL, *root = NULL;
    r.purpose = f != NULL ? f->purpose : NULL;
    r.purposes = json_object();
    r.actors = json_object();
    r.consents = json_object();
    r.contacts = json_object();
    r.actions = json_object();
    CK_ENSURE(r.purposes != NULL && r.actors != NULL && r.consents != NULL && r.contacts != NULL &&
                  r.actions != NULL,
              ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(walk_log(&r, st, f));
    int64_t now = ck_store__now(st);
    CK_GUARD(walk_consents(&consents_now, st, r.purpose, now));

    root = json_object();
    CK_ENSURE(root != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    json_t *filter =
        json_pack("{s:o, s:o, s:o, s:o}", "since",
                  f != NULL && f->since_ms != 0 ? time_json(f->since_ms) : json_null(), "until",
                  f != NULL && f->until_ms != 0 ? time_json(f->until_ms) : json_null(), "actor",
                  opt_string(f != NULL ? f->actor : NULL), "purpose", opt_string(r.purpose));
    json_t *range =
        json_pack("{s:o, s:o}", "first", r.entries ? time_json(r.first_ms) : json_null(), "last",
                  r.entries ? time_json(r.last_ms) : json_null());
    json_t *now_j = time_json((uint64_t)(now > 0 ? now : 0) * 1000u);
    int bad = json_object_set_new(root, "filter", filter) != 0;
    bad |= json_object_set_new(root, "range", range) != 0;
    bad |= json_object_set_new(root, "entries", json_integer(r.entries)) != 0;
    bad |= json_object_set_new(root, "actions", json_incref(r.actions)) != 0;
    bad |= json_object_set_new(root, "releases", json_integer(r.releases)) != 0;
    bad |= json_object_set_new(root, "segment_answers", json_integer(r.segment_answers)) != 0;
    bad |= json_object_set_new(root, "purposes", json_incref(r.purposes)) != 0;
    bad |= json_object_set_new(root, "actors", json_incref(r.actors)) != 0;
    bad |= json_object_set_new(
               root, "consent_changes",
               json_pack("{s:I, s:O}", "total", r.consent_changes, "by_purpose", r.consents)) != 0;
    bad |= json_object_set_new(
               root, "contacts",
               json_pack("{s:I, s:O}", "total", r.contact_entries, "by_channel", r.contacts)) != 0;
    bad |= json_object_set_new(root, "erasures", json_integer(r.erasures)) != 0;
    bad |= json_object_set_new(root, "exports", json_integer(r.exports)) != 0;
    bad |= json_object_set_new(root, "schema_changes", json_integer(r.schema_changes)) != 0;
    bad |= json_object_set_new(root, "key_operations", json_integer(r.key_ops)) != 0;
    bad |= json_object_set_new(root, "consents_now",
                               json_pack("{s:o, s:o}", "at", now_j, "purposes", consents_now)) != 0;
    consents_now = NULL; /* owned by the pack (or freed by it on failure) */
    CK_ENSURE(!bad, ck_err__set(st, CK_ENOMEM, "out of memory"));

    CK_ENSURE(ck_out__json(out, root, JSON_COMPACT | JSON_SORT_KEYS) == CK_OK,
              ck_err__set(st, CK_ENOMEM, "out of memory"));
    rc = CK_OK;
cleanup:
    json_decref(root);
    json_decref(consents_now);
    json_decref(r.purposes);
    json_decref(r.actors);
    json_decref(r.consents);
    json_decref(r.contacts);
    json_decref(r.actions);
    return rc;
}
