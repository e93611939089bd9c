/*
 * tcfmap.c - IAB TCF v2 TC strings mapped onto the schema's purposes
 * (ck_consent_tcf): the string is decoded (tcf.c), each purpose that
 * declares "tcf" is read off its signals, and the changes become consent
 * records (consent.c) with the string sealed in them as evidence.
 *
 * The rules are in docs/tcf.md, "Mapping onto purposes". In short, for a
 * purpose mapped to TCF purposes P, special features F and a vendor V (or
 * the publisher): its signal is present when every purpose of P has its bit
 * (consent bits for a consent purpose, legitimate-interest bits for a
 * legitimate-interest one), every feature of F is opted in, and V has its
 * bit and no "not allowed" publisher restriction for a purpose of P (or, for
 * the publisher, the publisher TC segment gives every purpose of P its
 * bit). Present: granted. Absent: refused (consent) or objected
 * (legitimate interest).
 */
#include "consent.h"
#include "tcf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTICE_MAX 64 /* "cmp:4095/4095/v63" */

/* ------------------------------------------------------------------------ */
/* Reading a purpose's signal off the string                                */
/* ------------------------------------------------------------------------ */

/* Whether every signal mapping `m` names is present in `t`: the consent
 * signals (li false) or the legitimate-interest ones (li true). */
static bool signal_present(const ck_tcf *t, const ck_schema_tcf *m, bool li)
{
    uint32_t purposes = li ? t->purpose_li : t->purpose_consents;
    if ((purposes & m->purposes) != m->purposes)
        return false;
    if ((t->special_feature_optins & m->special_features) != m->special_features)
        return false;
    if (m->vendor != 0) {
        if (!ck_tcf__has(li ? &t->vendor_li : &t->vendor_consents, m->vendor))
            return false;
        /* The publisher may forbid the vendor a purpose whatever the
         * customer said. (Restrictions that switch the legal basis do not
         * matter here: the schema's basis says which bits are read.) */
        for (unsigned id = 1; id <= CK_SCHEMA_TCF_PURPOSE_MAX; id++)
            if (((m->purposes >> (id - 1)) & 1u) &&
                (ck_tcf__restrictions_for(t, id, m->vendor) & (1u << CK_TCF_NOT_ALLOWED)))
                return false;
    }
    if (m->publisher) {
        if (!(t->segments & CK_TCF_SEG_PUBLISHER))
            return false;
        uint32_t pub = li ? t->pub_li : t->pub_consents;
        if ((pub & m->purposes) != m->purposes)
            return false;
    }
    return true;
}

static ck_consent_state mapped_state(const ck_tcf *t, const ck_schema_purpose *p)
{
    bool li = p->basis == CK_BASIS_LEGITIMATE_INTEREST;
    if (signal_present(t, &p->tcf, li))
        return CK_CONSENT_GRANTED;
    return li ? CK_CONSENT_OBJECTED : CK_CONSENT_REFUSED;
}

/* ------------------------------------------------------------------------ */
/* The write                                                                */
/* ------------------------------------------------------------------------ */

typedef struct map_ctx {
    const ck_who *who;
    const ck_tcf *t;
    const char *tc;
    size_t len;
    const char *actor;
    int64_t at; /* the records' time (set in the transaction, from its clock) */
    /* The outcomes of the last run (the body may run again after the map
     * grew: each run starts afresh). Names live in `arena`. */
    ck_arena arena;
    ck_tcf_outcome *items;
    size_t n, applied;
} map_ctx;

/* What to do for purpose `p` of subject `s`, whose signal is `state`. */
static int decide(ck_wctx *w, const map_ctx *c, const ck_subj *s, const ck_schema_purpose *p,
                  ck_consent_state state, ck_tcf_action *action)
{
    uint8_t ptag[CK_PTAG_BYTES];
    ck_consent_cur cur;
    ck_consent_rec r;
    *action = CK_TCF_APPLIED;
    ck_consent__ptag_of(ptag, w->st, p);
    CK_TRY(ck_consent__current(&cur, w->st, w->txn, s->sid, ptag));
    if (!cur.present)
        return CK_OK;
    int rc = ck_consent__read(&r, w->st, w->txn, s->sid, ptag, cur.seq, s->dk, &w->arena);
    if (rc == CK_OK) {
        if (c->at < r.at)
            *action = CK_TCF_OLDER;
        else if (r.state == state && r.tc_string != NULL && strlen(r.tc_string) == c->len &&
                 memcmp(r.tc_string, c->tc, c->len) == 0)
            *action = CK_TCF_SAME;
    }
    ck_arena__reset(&w->arena);
    return rc;
}

static int map_fn(ck_wctx *w, void *ctx)
{
    map_ctx *c = ctx;
    const ck_schema *schema = w->schema;
    const ck_tcf *t = c->t;
    ck_subj s = {0};
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    char notice[NOTICE_MAX];
    size_t mapped = 0;
    int rc;

    ck_arena__reset(&c->arena);
    c->items = NULL;
    c->n = c->applied = 0;
    for (uint32_t i = 0; i < schema->npurposes; i++)
        mapped += schema->purposes[i].tcf.set;
    if (mapped == 0)
        return ck_err__set(w->st, CK_EINVAL, "no purpose of the schema maps TCF signals");
    c->items = ck_arena__alloc(&c->arena, mapped * sizeof *c->items);
    if (c->items == NULL)
        return ck_err__set(w->st, CK_ENOMEM, "out of memory");

    /* The string's time, unless it claims to be from the future: recorded
     * at that time, it would silently outrank every signal given until
     * then. */
    c->at = (int64_t)(t->last_updated / 10);
    if (c->at > w->now && w->now > 0)
        c->at = w->now;
    snprintf(notice, sizeof notice, "cmp:%u/%u/v%u", (unsigned)t->cmp_id, (unsigned)t->cmp_version,
             (unsigned)t->policy_version);

    CK_TRY(ck_subject__resolve(sid, w->st, w->txn, schema, c->who, NULL, NULL, &w->norm));
    rc = ck_subject__open(w, &s, sid);
    for (uint32_t i = 0; rc == CK_OK && i < schema->npurposes; i++) {
        const ck_schema_purpose *p = &schema->purposes[i];
        if (!p->tcf.set)
            continue;
        ck_tcf_outcome *o = &c->items[c->n];
        o->state = mapped_state(t, p);
        o->purpose = ck_arena__dup(&c->arena, p->name, p->name_len + 1);
        if (o->purpose == NULL) {
            rc = ck_err__set(w->st, CK_ENOMEM, "out of memory");
            break;
        }
        c->n++;
        rc = decide(w, c, &s, p, o->state, &o->action);
        if (rc != CK_OK || o->action != CK_TCF_APPLIED)
            continue;
        ck_consent rec = CK_CONSENT_INIT;
        const ck_schema_purpose *checked;
        rec.purpose = p->name;
        rec.state = o->state;
        rec.source = "tcf";
        rec.notice = notice;
        rec.at = c->at;
        rc = ck_consent__check(w->st, schema, &rec, &checked);
        if (rc == CK_OK)
            rc = ck_consent__append_ev(w, &s, checked, &rec, c->tc, c->len, NULL);
        if (rc == CK_OK)
            c->applied++;
    }
    /* Audited once every record is in place and before the commit: a
     * change that cannot be audited is not made (if the commit then fails,
     * the entries record an attempt). */
    for (size_t i = 0; rc == CK_OK && i < c->n; i++)
        if (c->items[i].action == CK_TCF_APPLIED)
            rc = ck_consent__audit(w->st, c->actor, s.dk, s.sid, c->items[i].purpose,
                                   c->items[i].state, "tcf");
    ck_subj__fini(&s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Public                                                                   */
/* ------------------------------------------------------------------------ */

/* The storage of a result: its outcomes and their names. */
typedef struct result_store {
    ck_arena arena;
} result_store;

/* Hand the outcomes of the last run, and the arena that holds them, to
 * `out` (whose storage `rs` was allocated before the write, so that nothing
 * can fail once it committed). */
static void fill_result(ck_tcf_result *out, result_store *rs, map_ctx *c)
{
    rs->arena = c->arena;
    c->arena = (ck_arena)CK_ARENA_INIT;
    out->priv_ = rs;
    out->outcomes = c->items;
    out->count = c->n;
    out->applied = c->applied;
    out->at = c->at;
}

CK_EXPORT int ck_consent_tcf(ck_tcf_result *out, ck_store *st, const ck_who *who, const char *tc,
                             size_t len, const char *actor)
{
    int rc;
    char err[CK_ERRMSG_MAX];
    ck_tcf *t = NULL;
    result_store *rs = NULL;
    map_ctx c;
    memset(&c, 0, sizeof c);

    if (st == NULL)
        return CK_EINVAL;
    if (out != NULL) {
        if (out->version != CK_TCF_RESULT_VERSION)
            return ck_err__set(st, CK_EINVAL, "ck_tcf_result version %u is not supported",
                               out->version);
        ck_tcf_result init = CK_TCF_RESULT_INIT;
        *out = init;
    }
    if (actor == NULL)
        return ck_err__set(st, CK_EINVAL, "a consent change needs an actor");
    if (tc == NULL && len != 0)
        return ck_err__set(st, CK_EINVAL, "no TC string given");
    /* Decoded before the write: a malformed string costs other writers
     * nothing and writes nothing. */
    rc = ck_tcf__decode(&t, tc, len, err, sizeof err);
    if (rc == CK_ENOMEM)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    if (rc != CK_OK)
        return ck_err__set(st, rc, "%s", err);
    CK_ENSURE(
        t->last_updated >= 10,
        ck_err__set(st, CK_EINVAL,
                    "the TC string's lastUpdated is 1970-01-01T00:00:00Z: no time to record"));

    if (out != NULL) {
        rs = ck_mem__calloc(1, sizeof *rs);
        CK_ENSURE(rs != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    }
    c.who = who;
    c.t = t;
    c.tc = tc;
    c.len = len;
    c.actor = actor;
    CK_GUARD(ck_subject__write(st, map_fn, &c));
    if (out != NULL) {
        fill_result(out, rs, &c);
        rs = NULL;
    }
    rc = CK_OK;
cleanup:
    ck_mem__free(rs);
    ck_arena__free(&c.arena);
    ck_tcf__free(t);
    return rc;
}

CK_EXPORT void ck_tcf_result_free(ck_tcf_result *r)
{
    if (r == NULL)
        return;
    result_store *rs = r->priv_;
    if (rs != NULL) {
        ck_arena__free(&rs->arena);
        ck_mem__free(rs);
    }
    ck_tcf_result init = CK_TCF_RESULT_INIT;
    *r = init;
}

static const char *reason_text(ck_tcf_action a)
{
    switch (a) {
    case CK_TCF_OLDER:
        return "older than the current record";
    case CK_TCF_SAME:
        return "already recorded from this string";
    case CK_TCF_APPLIED:
        break;
    }
    return "applied";
}

CK_EXPORT int ck_tcf_result_json(char **out, const ck_tcf_result *r)
{
    int rc;
    char at[CK_TS_TEXT_MAX];
    json_t *root = NULL;
    if (out == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (r == NULL || r->version != CK_TCF_RESULT_VERSION || (r->count > 0 && r->outcomes == NULL))
        return CK_EINVAL;
    json_t *applied = json_array(), *unchanged = json_array();
    root = json_object();
    CK_ENSURE(root != NULL && applied != NULL && unchanged != NULL, CK_ENOMEM);
    if (r->at > 0 && ck_tcf__time_text(at, sizeof at, (uint64_t)r->at * 10u) == CK_OK)
        CK_ENSURE(json_object_set_new(root, "at", json_string(at)) == 0, CK_ENOMEM);
    for (size_t i = 0; i < r->count; i++) {
        const ck_tcf_outcome *o = &r->outcomes[i];
        json_t *item =
            o->action == CK_TCF_APPLIED
                ? json_pack("{s:s, s:s}", "purpose", o->purpose, "state",
                            ck_consent__state_name(o->state))
                : json_pack("{s:s, s:s, s:s}", "purpose", o->purpose, "state",
                            ck_consent__state_name(o->state), "reason", reason_text(o->action));
        CK_ENSURE(item != NULL, CK_ENOMEM);
        CK_ENSURE(json_array_append_new(o->action == CK_TCF_APPLIED ? applied : unchanged, item) ==
                      0,
                  CK_ENOMEM);
    }
    rc = json_object_set(root, "applied", applied);
    CK_ENSURE(rc == 0 && json_object_set(root, "unchanged", unchanged) == 0, CK_ENOMEM);
    rc = ck_out__json(out, root, JSON_COMPACT | JSON_PRESERVE_ORDER);
cleanup:
    json_decref(applied);
    json_decref(unchanged);
    json_decref(root);
    return rc;
}
