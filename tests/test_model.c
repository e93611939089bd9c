/*
 * test_model.c - a reference model of the release rules (docs/release.md)
 * checked against the library.
 *
 * The model is plain C written from docs/release.md alone: a schema, the
 * subjects' values and the time each was written, the current consent
 * record per (subject, purpose), contacts per (subject, channel) and the
 * subject's own caps. It knows nothing of crypto, LMDB or core/.
 * Minimisation: only `prefix:N` is modelled (code points); no other
 * minimisation is used by the schemas here.
 *
 *  - test_prec_*: the precedence of each adjacent pair of reasons of the
 *    table, written by hand and checked against the model AND the store.
 *  - test_random: a random schema, ~20 subjects and a random sequence of
 *    operations applied to both; every field of every release, and every
 *    `=` segment, is compared. CK_MODEL_SEED picks the seed (printed at
 *    start), CK_MODEL_STEPS the number of steps (default 3000: about 0.3 s,
 *    3.5 s under valgrind).
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>

#include <cmocka.h>

#include "ckstore.h"
#include "fixture.h"

#define DAY 86400
#define T0  1767225600 /* 2026-01-01T00:00:00Z */

#define M_MAXF        12  /* fields */
#define M_MAXP        8   /* purposes */
#define M_MAXS        20  /* subjects */
#define M_NCHAN       4   /* email, sms, phone, post */
#define M_NRECIP      3   /* recipients a release may name */
#define M_MAXCONTACTS 512 /* contacts kept per (subject, channel) */
#define LOG_N         40  /* operations remembered per subject */
#define LOG_W         320

#define DEFAULT_SEED  20260101u
#define DEFAULT_STEPS 3000L

static const char *const CHANNELS[M_NCHAN] = {"email", "sms", "phone", "post"};
/* "acme" and "globex" appear in consents; "initech" never does. */
static const char *const RECIPS[M_NRECIP] = {"acme", "globex", "initech"};
static const char *const STATES[] = {"?", "granted", "withdrawn", "refused", "objected"};
static const char *const BASES[] = {"?", "consent", "contract", "legal_obligation",
                                    "legitimate_interest"};
static const char *const SENS[] = {"?", "public", "personal", "sensitive", "special"};

enum { S_PUBLIC = 1, S_PERSONAL, S_SENSITIVE, S_SPECIAL };
enum { B_CONSENT = 1, B_CONTRACT, B_LEGAL, B_LI };

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

typedef struct mfield {
    char name[24];
    ck_type type; /* STRING, INT or DATE */
    int sens;
    int ident;
    int retention_days; /* 0: none */
} mfield;

typedef struct mpurpose {
    char name[32];
    int basis;
    int nf;
    int fields[M_MAXF]; /* schema field indexes, in the purpose's order */
    int prefix[M_MAXF]; /* by schema field index: N of prefix:N, 0 none */
    int chan;           /* channel index, -1: none */
    int chan_field;     /* schema field index of the address */
    int cap_count;
    int cap_days;
} mpurpose;

typedef struct mval {
    ck_type type;
    char s[48]; /* STRING */
    int64_t i;  /* INT */
    int32_t d;  /* DATE: days since 1970-01-01 */
} mval;

typedef struct mconsent {
    int present;
    ck_consent_state state;
    int all;         /* scope: every field (not explicit) */
    unsigned scope;  /* else: bit per schema field index */
    unsigned recips; /* bit per RECIPS index */
    int64_t expires; /* 0: never */
} mconsent;

typedef struct msubject {
    int has[M_MAXF];
    mval val[M_MAXF];
    int64_t written[M_MAXF];
    mconsent c[M_MAXP]; /* the current record per purpose */
    int64_t contacts[M_NCHAN][M_MAXCONTACTS];
    int ncontacts[M_NCHAN];
    int limit[M_NCHAN]; /* -1: no override */
} msubject;

typedef struct model {
    int nf;
    mfield f[M_MAXF];
    int np;
    mpurpose p[M_MAXP];
    int ns;
    msubject s[M_MAXS];
    int max_cap_days; /* longest window: older contacts may be dropped */
} model;

static int m_in_purpose(const mpurpose *p, int f)
{
    for (int i = 0; i < p->nf; i++)
        if (p->fields[i] == f)
            return 1;
    return 0;
}

/* The first n code points of a UTF-8 string. */
static void m_prefix(char *out, size_t max, const char *s, int n)
{
    size_t i = 0;
    for (int cp = 0; s[i] != '\0' && cp < n; cp++) {
        i++;
        while (((unsigned char)s[i] & 0xC0u) == 0x80u)
            i++;
    }
    if (i >= max)
        abort();
    memcpy(out, s, i);
    out[i] = '\0';
}

/* Does the subject hold a granted consent for p that has not expired? */
static int m_granted(const mconsent *c, int64_t now)
{
    return c->present && c->state == CK_CONSENT_GRANTED && (c->expires == 0 || now < c->expires);
}

/*
 * docs/release.md, "The reasons, in the order they are tried", row by row.
 * recip: index in RECIPS, -1 for none. On CK_RELEASED, *out is the value as
 * released (minimised).
 */
static ck_reason model_release(const model *m, int si, int pi, int recip, int f, int64_t now,
                               mval *out)
{
    const mpurpose *p = &m->p[pi];
    const msubject *s = &m->s[si];
    const mconsent *c = &s->c[pi];
    /* 1 */
    if (!m_in_purpose(p, f))
        return CK_WITHHELD_NOT_IN_PURPOSE;
    /* 2: the basis */
    if (p->basis == B_CONSENT) {
        if (!c->present)
            return CK_WITHHELD_NO_CONSENT;
        if (c->state == CK_CONSENT_REFUSED)
            return CK_WITHHELD_REFUSED;
        if (c->state == CK_CONSENT_WITHDRAWN)
            return CK_WITHHELD_WITHDRAWN;
        if (c->state == CK_CONSENT_OBJECTED)
            return CK_WITHHELD_OBJECTED;
        /* granted */
        if (c->expires != 0 && now >= c->expires)
            return CK_WITHHELD_EXPIRED;
        if (!c->all && !(c->scope & (1u << f)))
            return CK_WITHHELD_NO_CONSENT;
    }
    if (p->basis == B_LI && c->present && c->state == CK_CONSENT_OBJECTED)
        return CK_WITHHELD_OBJECTED;
    if (recip >= 0 && !(m_granted(c, now) && (c->recips & (1u << recip))))
        return CK_WITHHELD_RECIPIENT;
    /* 3 */
    if (m->f[f].sens == S_SPECIAL && !(m_granted(c, now) && !c->all && (c->scope & (1u << f))))
        return CK_WITHHELD_SPECIAL_CATEGORY;
    /* 4 */
    if (p->chan >= 0 && p->chan_field == f) {
        int cap = p->cap_count;
        int own = s->limit[p->chan];
        if (own >= 0 && own < cap)
            cap = own;
        int n = 0;
        for (int i = 0; i < s->ncontacts[p->chan]; i++) {
            int64_t t = s->contacts[p->chan][i];
            if (now - (int64_t)p->cap_days * DAY < t && t <= now)
                n++;
        }
        if (n >= cap)
            return CK_WITHHELD_CONTACT_CAP;
    }
    /* 5 */
    if (m->f[f].retention_days > 0 && s->has[f] &&
        now - s->written[f] >= (int64_t)m->f[f].retention_days * DAY)
        return CK_WITHHELD_RETENTION;
    /* 6 */
    if (!s->has[f])
        return CK_WITHHELD_UNSET;
    if (out != NULL) {
        *out = s->val[f];
        if (p->prefix[f] > 0)
            m_prefix(out->s, sizeof out->s, s->val[f].s, p->prefix[f]);
    }
    return CK_RELEASED;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */

static const char *const STR_POOL[] = {"Paris",  "Lyon", "Évry",     "ab",
                                       "a@x.fr", "",     "Zoë Ünal", "x"};
/* An identifying field named "email" must hold an e-mail address (its blind
 * index normalises it as one). */
static const char *const EMAIL_POOL[] = {"a@x.fr", "Zoé.Ünal@Example.FR", "b@y.com", "ab@cd"};
static const int64_t INT_POOL[] = {-3, 0, 42, 1000, 9007199254740993LL};
static const char *const DATE_POOL[] = {"1990-07-14", "2000-02-29", "1969-12-31", "2024-01-01",
                                        "0001-01-01"};
#define NSTR  (sizeof STR_POOL / sizeof STR_POOL[0])
#define NMAIL (sizeof EMAIL_POOL / sizeof EMAIL_POOL[0])
#define NINT  (sizeof INT_POOL / sizeof INT_POOL[0])
#define NDATE (sizeof DATE_POOL / sizeof DATE_POOL[0])

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int32_t days_from_civil(int y, int mo, int d)
{
    y -= mo <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + doe - 719468);
}

static int32_t parse_date(const char *s)
{
    int y = 0, mo = 0, d = 0;
    if (sscanf(s, "%d-%d-%d", &y, &mo, &d) != 3)
        abort();
    return days_from_civil(y, mo, d);
}

static void date_text(char *out, size_t max, int32_t days)
{
    for (size_t i = 0; i < NDATE; i++)
        if (parse_date(DATE_POOL[i]) == days) {
            snprintf(out, max, "%s", DATE_POOL[i]);
            return;
        }
    snprintf(out, max, "day %" PRId32, days);
}

static void mval_text(char *out, size_t max, const mval *v)
{
    switch (v->type) {
    case CK_TYPE_STRING:
        snprintf(out, max, "\"%s\"", v->s);
        break;
    case CK_TYPE_INT:
        snprintf(out, max, "%" PRId64, v->i);
        break;
    default:
        date_text(out, max, v->d);
        break;
    }
}

static void ckval_text(char *out, size_t max, const ck_value *v)
{
    switch (v->type) {
    case CK_TYPE_STRING:
        snprintf(out, max, "\"%.*s\"", (int)v->u.str.len, v->u.str.ptr);
        break;
    case CK_TYPE_INT:
        snprintf(out, max, "%" PRId64, v->u.i);
        break;
    case CK_TYPE_DATE:
        date_text(out, max, v->u.date);
        break;
    default:
        snprintf(out, max, "(a value of type %d)", (int)v->type);
        break;
    }
}

static int value_equal(const mval *e, const ck_value *v)
{
    if (v->type != e->type)
        return 0;
    switch (e->type) {
    case CK_TYPE_STRING:
        return v->u.str.len == strlen(e->s) && memcmp(v->u.str.ptr, e->s, v->u.str.len) == 0;
    case CK_TYPE_INT:
        return v->u.i == e->i;
    default:
        return v->u.date == e->d;
    }
}

/* ------------------------------------------------------------------------ */
/* The world: a store and the model, driven together                        */
/* ------------------------------------------------------------------------ */

typedef struct world {
    tu_fx base; /* the store and its clock */
    model *m;
    uint64_t seed;
    uint64_t rng;
    long step;
    char schema[8192];
    char log[M_MAXS][LOG_N][LOG_W];
    unsigned nlog[M_MAXS];
    char clog[LOG_N][128]; /* clock moves */
    unsigned nclog;
    char pseudo[M_MAXS][M_MAXP][M_NRECIP + 1][64]; /* "" until seen */
    unsigned long reasons[CK_WITHHELD_UNSET + 1];
    unsigned long releases, segments, segment_hits, errors_checked;
} world;

static void ref_of(char *out, size_t max, int s)
{
    snprintf(out, max, "S%02u", (unsigned)s % 100u); /* s < M_MAXS <= 100 */
}

static void rel_time(char *out, size_t max, int64_t t)
{
    int64_t d = t - T0;
    const char *sign = d < 0 ? "-" : "+";
    if (d < 0)
        d = -d;
    snprintf(out, max, "T%s%" PRId64 "d%02" PRId64 ":%02" PRId64 ":%02" PRId64, sign, d / DAY,
             d % DAY / 3600, d % 3600 / 60, d % 60);
}

__attribute__((format(printf, 3, 4))) static void wlog(world *w, int s, const char *fmt, ...)
{
    char t[40];
    char msg[LOG_W - 80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rel_time(t, sizeof t, w->base.now);
    snprintf(w->log[s][w->nlog[s] % LOG_N], LOG_W, "step %ld %s: %s", w->step, t, msg);
    w->nlog[s]++;
}

/* Print everything a reader needs to replay a mismatch, then fail. */
__attribute__((format(printf, 3, 4))) static void mismatch(world *w, int s, const char *fmt, ...)
{
    char msg[1024];
    char t[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rel_time(t, sizeof t, w->base.now);
    fprintf(stderr, "\n=== MODEL MISMATCH: seed %" PRIu64 ", step %ld, now %s (%" PRId64 ") ===\n",
            w->seed, w->step, t, w->base.now);
    fprintf(stderr, "schema: %s\n", w->schema);
    if (s >= 0) {
        unsigned from = w->nlog[s] > LOG_N ? w->nlog[s] - LOG_N : 0;
        fprintf(stderr, "history of S%02d (last %u operations):\n", s, w->nlog[s] - from);
        for (unsigned i = from; i < w->nlog[s]; i++)
            fprintf(stderr, "  %s\n", w->log[s][i % LOG_N]);
    }
    unsigned from = w->nclog > LOG_N ? w->nclog - LOG_N : 0;
    fprintf(stderr, "clock moves (last %u):\n", w->nclog - from);
    for (unsigned i = from; i < w->nclog; i++)
        fprintf(stderr, "  %s\n", w->clog[i % LOG_N]);
    fprintf(stderr, "%s\n", msg);
    fail_msg("model mismatch: seed %" PRIu64 " step %ld: %s", w->seed, w->step, msg);
}

static int world_setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -1;
    w->m = calloc(1, sizeof *w->m);
    if (w->m == NULL)
        return -1;
    if (tu_fx_init(&w->base, "model", T0, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC, NULL) != CK_OK)
        return -1;
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    world *w = *state;
    tu_fx_fini(&w->base);
    free(w->m);
    free(w);
    return 0;
}

/* ---- the schema, as JSON ---- */

typedef struct sbuf {
    char *p;
    size_t len, max;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->max - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->max - b->len)
        abort();
    b->len += (size_t)n;
}

static const char *type_name(ck_type t)
{
    return t == CK_TYPE_STRING ? "string" : t == CK_TYPE_INT ? "int" : "date";
}

static void schema_to_json(const model *m, char *out, size_t max)
{
    sbuf b = {out, 0, max};
    sb_add(&b, "{\"fields\":{");
    for (int i = 0; i < m->nf; i++) {
        const mfield *f = &m->f[i];
        sb_add(&b, "%s\"%s\":{\"type\":\"%s\",\"sensitivity\":\"%s\"", i ? "," : "", f->name,
               type_name(f->type), SENS[f->sens]);
        if (f->ident)
            sb_add(&b, ",\"identifying\":true");
        if (f->retention_days)
            sb_add(&b, ",\"retention_days\":%d", f->retention_days);
        sb_add(&b, "}");
    }
    sb_add(&b, "},\"purposes\":{");
    for (int i = 0; i < m->np; i++) {
        const mpurpose *p = &m->p[i];
        sb_add(&b,
               "%s\"%s\":{\"basis\":\"%s\",\"description\":\"d\",\"benefit\":\"b\",\"fields\":[",
               i ? "," : "", p->name, BASES[p->basis]);
        for (int j = 0; j < p->nf; j++)
            sb_add(&b, "%s\"%s\"", j ? "," : "", m->f[p->fields[j]].name);
        sb_add(&b, "]");
        int nmin = 0;
        for (int j = 0; j < p->nf; j++)
            if (p->prefix[p->fields[j]] > 0) {
                sb_add(&b, "%s\"%s\":\"prefix:%d\"", nmin++ ? "," : ",\"minimize\":{",
                       m->f[p->fields[j]].name, p->prefix[p->fields[j]]);
            }
        if (nmin)
            sb_add(&b, "}");
        if (p->chan >= 0)
            sb_add(&b,
                   ",\"channel\":{\"type\":\"%s\",\"field\":\"%s\",\"cap\":{\"count\":%d,"
                   "\"days\":%d}}",
                   CHANNELS[p->chan], m->f[p->chan_field].name, p->cap_count, p->cap_days);
        sb_add(&b, "}");
    }
    sb_add(&b, "}}");
}

static void world_apply_schema(world *w)
{
    model *m = w->m;
    m->max_cap_days = 1;
    for (int i = 0; i < m->np; i++)
        if (m->p[i].chan >= 0 && m->p[i].cap_days > m->max_cap_days)
            m->max_cap_days = m->p[i].cap_days;
    for (int s = 0; s < M_MAXS; s++)
        for (int c = 0; c < M_NCHAN; c++)
            m->s[s].limit[c] = -1;
    schema_to_json(m, w->schema, sizeof w->schema);
    int rc = ck_schema_apply(w->base.st, w->schema, strlen(w->schema), 0, NULL);
    if (rc != CK_OK)
        fail_msg("schema apply: %s: %s\n%s", ck_strerror(rc), ck_errmsg(w->base.st), w->schema);
}

static int field_index(const model *m, const char *name)
{
    for (int i = 0; i < m->nf; i++)
        if (strcmp(m->f[i].name, name) == 0)
            return i;
    fail_msg("no field %s", name);
    return -1;
}

static int purpose_index(const model *m, const char *name)
{
    for (int i = 0; i < m->np; i++)
        if (strcmp(m->p[i].name, name) == 0)
            return i;
    fail_msg("no purpose %s", name);
    return -1;
}

/* ---- operations on both ---- */

/* A value for field f: its JSON text and its model value. */
typedef struct wval {
    char json[80];
    mval v;
} wval;

static wval make_string(const char *s)
{
    wval x;
    memset(&x, 0, sizeof x);
    x.v.type = CK_TYPE_STRING;
    snprintf(x.v.s, sizeof x.v.s, "%s", s);
    snprintf(x.json, sizeof x.json, "\"%s\"", s);
    return x;
}

static wval make_int(int64_t i, int as_string)
{
    wval x;
    memset(&x, 0, sizeof x);
    x.v.type = CK_TYPE_INT;
    x.v.i = i;
    snprintf(x.json, sizeof x.json, as_string ? "\"%" PRId64 "\"" : "%" PRId64, i);
    return x;
}

static wval make_date(const char *d)
{
    wval x;
    memset(&x, 0, sizeof x);
    x.v.type = CK_TYPE_DATE;
    x.v.d = parse_date(d);
    snprintf(x.json, sizeof x.json, "\"%s\"", d);
    return x;
}

/* Set (v != NULL) or delete (v == NULL) fields f[0..n) of subject s. */
static void w_put(world *w, int s, const int *f, const wval *const *v, int n)
{
    char js[1024];
    char ref[8];
    char lg[LOG_W - 80];
    sbuf b = {js, 0, sizeof js};
    sbuf l = {lg, 0, sizeof lg};
    sb_add(&b, "{");
    sb_add(&l, "put");
    for (int i = 0; i < n; i++) {
        sb_add(&b, "%s\"%s\":%s", i ? "," : "", w->m->f[f[i]].name, v[i] ? v[i]->json : "null");
        sb_add(&l, " %s=%.40s", w->m->f[f[i]].name, v[i] ? v[i]->json : "null");
    }
    sb_add(&b, "}");
    ref_of(ref, sizeof ref, s);
    wlog(w, s, "%s", lg);
    ck_who who = tu_by_ref(ref);
    int rc = ck_put_json(NULL, w->base.st, &who, js, strlen(js), CK_PUT_CREATE);
    if (rc != CK_OK)
        mismatch(w, s, "ck_put_json(%s) failed: %s: %s", js, ck_strerror(rc),
                 ck_errmsg(w->base.st));
    msubject *ms = &w->m->s[s];
    for (int i = 0; i < n; i++) {
        if (v[i] != NULL) {
            ms->has[f[i]] = 1;
            ms->val[f[i]] = v[i]->v;
            ms->written[f[i]] = w->base.now;
        } else {
            ms->has[f[i]] = 0;
        }
    }
}

static void w_put1(world *w, int s, const char *field, const wval *v)
{
    int f = field_index(w->m, field);
    w_put(w, s, &f, &v, 1);
}

/* scope: 0 = all fields, else a bit per schema field index. */
static void w_consent(world *w, int s, int p, ck_consent_state state, unsigned scope,
                      unsigned recips, int64_t expires)
{
    const model *m = w->m;
    const char *fields[M_MAXF];
    const char *rc_names[M_NRECIP];
    size_t nf = 0, nr = 0;
    char lg[LOG_W - 80];
    sbuf l = {lg, 0, sizeof lg};
    sb_add(&l, "consent %s %s scope{", m->p[p].name, STATES[state]);
    for (int f = 0; f < m->nf; f++)
        if (scope & (1u << f)) {
            fields[nf++] = m->f[f].name;
            sb_add(&l, "%s%s", nf > 1 ? "," : "", m->f[f].name);
        }
    sb_add(&l, "%s} rcpt{", scope ? "" : "ALL");
    for (int r = 0; r < M_NRECIP; r++)
        if (recips & (1u << r)) {
            rc_names[nr++] = RECIPS[r];
            sb_add(&l, "%s%s", nr > 1 ? "," : "", RECIPS[r]);
        }
    if (expires) {
        char t[40];
        rel_time(t, sizeof t, expires);
        sb_add(&l, "} expires %s", t);
    } else {
        sb_add(&l, "} no expiry");
    }
    wlog(w, s, "%s", lg);
    char ref[8];
    ref_of(ref, sizeof ref, s);
    ck_who who = tu_by_ref(ref);
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = m->p[p].name;
    c.state = state;
    c.fields = nf ? fields : NULL;
    c.nfields = nf;
    c.recipients = nr ? rc_names : NULL;
    c.nrecipients = nr;
    c.expires = expires;
    c.source = "model";
    int rc = ck_consent_record(w->base.st, &who, &c, "model");
    if (rc != CK_OK)
        mismatch(w, s, "ck_consent_record(%s) failed: %s: %s", lg, ck_strerror(rc),
                 ck_errmsg(w->base.st));
    mconsent *mc = &w->m->s[s].c[p];
    mc->present = 1;
    mc->state = state;
    mc->all = scope == 0;
    mc->scope = scope;
    mc->recips = recips;
    mc->expires = expires;
}

static void w_contact(world *w, int s, int chan)
{
    char ref[8];
    ref_of(ref, sizeof ref, s);
    wlog(w, s, "contact %s", CHANNELS[chan]);
    ck_who who = tu_by_ref(ref);
    int rc = ck_contact_record(w->base.st, &who, CHANNELS[chan], "model");
    if (rc != CK_OK)
        mismatch(w, s, "ck_contact_record(%s) failed: %s: %s", CHANNELS[chan], ck_strerror(rc),
                 ck_errmsg(w->base.st));
    msubject *ms = &w->m->s[s];
    if (ms->ncontacts[chan] == M_MAXCONTACTS) {
        /* drop contacts too old to count in any window again */
        int k = 0;
        for (int i = 0; i < ms->ncontacts[chan]; i++)
            if (ms->contacts[chan][i] > w->base.now - (int64_t)w->m->max_cap_days * DAY)
                ms->contacts[chan][k++] = ms->contacts[chan][i];
        ms->ncontacts[chan] = k;
        if (k == M_MAXCONTACTS)
            fail_msg("too many contacts in the model");
    }
    ms->contacts[chan][ms->ncontacts[chan]++] = w->base.now;
}

static void w_limit(world *w, int s, int chan, int count)
{
    char ref[8];
    ref_of(ref, sizeof ref, s);
    wlog(w, s, "limit %s %d", CHANNELS[chan], count);
    ck_who who = tu_by_ref(ref);
    int rc = ck_contact_limit(w->base.st, &who, CHANNELS[chan], count, "model");
    if (rc != CK_OK)
        mismatch(w, s, "ck_contact_limit(%s, %d) failed: %s: %s", CHANNELS[chan], count,
                 ck_strerror(rc), ck_errmsg(w->base.st));
    w->m->s[s].limit[chan] = count;
}

static void w_set_time(world *w, int64_t t)
{
    char a[40], b[40];
    rel_time(a, sizeof a, w->base.now);
    rel_time(b, sizeof b, t);
    snprintf(w->clog[w->nclog % LOG_N], sizeof w->clog[0], "step %ld %s -> %s", w->step, a, b);
    w->nclog++;
    w->base.now = t;
}

static void w_advance(world *w, int64_t secs)
{
    w_set_time(w, w->base.now + secs);
}

/* The pseudonym cache slot of a context. */
static char *pseudo_slot(world *w, int s, int p, int recip)
{
    return w->pseudo[s][p][recip + 1];
}

/* Was this pseudonym given in any context (subject, purpose, recipient)?
 * It must be different in every other one. */
static int pseudo_taken(const world *w, const char *ps)
{
    for (int s = 0; s < M_MAXS; s++)
        for (int p = 0; p < M_MAXP; p++)
            for (int r = 0; r <= M_NRECIP; r++)
                if (strcmp(w->pseudo[s][p][r], ps) == 0)
                    return 1;
    return 0;
}

/*
 * Release fields[0..n) (n == 0: all the purpose's fields) of subject s for
 * purpose p and recipient recip (-1: none), and compare every field with the
 * model. Returns nothing: a difference fails the test.
 */
static void w_release(world *w, int s, int p, int recip, const int *fields, int n)
{
    const model *m = w->m;
    char ref[8];
    ref_of(ref, sizeof ref, s);
    const char *names[M_MAXF];
    for (int i = 0; i < n; i++)
        names[i] = m->f[fields[i]].name;
    ck_request r = CK_REQUEST_INIT;
    r.actor = "model";
    r.purpose = m->p[p].name;
    r.recipient = recip >= 0 ? RECIPS[recip] : NULL;
    r.subject = tu_by_ref(ref);
    r.fields = n ? names : NULL;
    r.nfields = (size_t)n;
    ck_result *res = NULL;
    int rc = ck_release(&res, w->base.st, &r);
    char ctx[200];
    snprintf(ctx, sizeof ctx, "release S%02d purpose %s recipient %s", s, m->p[p].name,
             recip >= 0 ? RECIPS[recip] : "(none)");
    if (rc != CK_OK)
        mismatch(w, s, "%s failed: %s: %s", ctx, ck_strerror(rc), ck_errmsg(w->base.st));
    w->releases++;
    const int *want = n ? fields : m->p[p].fields;
    int count = n ? n : m->p[p].nf;
    char err[1024] = "";
    if (ck_result_count(res) != (size_t)count)
        snprintf(err, sizeof err, "%s: %zu fields in the answer, %d expected", ctx,
                 ck_result_count(res), count);
    for (int i = 0; i < count && err[0] == '\0'; i++) {
        const ck_field_result *fr = ck_result_field(res, (size_t)i);
        const char *fname = m->f[want[i]].name;
        mval ev;
        ck_reason er = model_release(m, s, p, recip, want[i], w->base.now, &ev);
        w->reasons[er]++;
        if (fr == NULL || fr->field == NULL || strcmp(fr->field, fname) != 0) {
            snprintf(err, sizeof err, "%s: answer field %d is %s, expected %s", ctx, i,
                     fr && fr->field ? fr->field : "(null)", fname);
        } else if (fr->reason != er) {
            snprintf(err, sizeof err, "%s field %s: expected %s, library says %s", ctx, fname,
                     ck_reason_name(er), ck_reason_name(fr->reason));
        } else if (er == CK_RELEASED && !value_equal(&ev, &fr->value)) {
            char a[96], b[96];
            mval_text(a, sizeof a, &ev);
            ckval_text(b, sizeof b, &fr->value);
            snprintf(err, sizeof err, "%s field %s: released, expected value %s, library gives %s",
                     ctx, fname, a, b);
        }
    }
    if (err[0] == '\0') {
        char *slot = pseudo_slot(w, s, p, recip);
        const char *ps = ck_result_subject(res);
        if (ps == NULL || strlen(ps) != 43)
            snprintf(err, sizeof err, "%s: bad pseudonym", ctx);
        else if (slot[0] == '\0' && pseudo_taken(w, ps))
            snprintf(err, sizeof err, "%s: pseudonym already seen in another context", ctx);
        else if (slot[0] == '\0')
            snprintf(slot, 64, "%s", ps);
        else if (strcmp(slot, ps) != 0)
            snprintf(err, sizeof err, "%s: pseudonym changed", ctx);
    }
    ck_result_free(res);
    if (err[0] != '\0')
        mismatch(w, s, "%s", err);
}

/* The reason the store gives for one field (for the hand-written tests). */
static ck_reason store_reason(world *w, int s, int p, int recip, int f, char *vtext, size_t vmax)
{
    char ref[8];
    ref_of(ref, sizeof ref, s);
    const char *name = w->m->f[f].name;
    ck_request r = CK_REQUEST_INIT;
    r.actor = "model";
    r.purpose = w->m->p[p].name;
    r.recipient = recip >= 0 ? RECIPS[recip] : NULL;
    r.subject = tu_by_ref(ref);
    r.fields = &name;
    r.nfields = 1;
    ck_result *res = NULL;
    int rc = ck_release(&res, w->base.st, &r);
    if (rc != CK_OK)
        fail_msg("release: %s: %s", ck_strerror(rc), ck_errmsg(w->base.st));
    assert_int_equal(ck_result_count(res), 1);
    ck_reason got = ck_result_field(res, 0)->reason;
    vtext[0] = '\0';
    if (got == CK_RELEASED)
        ckval_text(vtext, vmax, &ck_result_field(res, 0)->value);
    ck_result_free(res);
    return got;
}

/*
 * A hand-written expectation: the model AND the store must both give
 * `expected` for this field (and, when released, the same value).
 */
static void expect_reason(world *w, const char *ref, const char *purpose, const char *recip,
                          const char *field, ck_reason expected, int line)
{
    int s = (int)strtol(ref + 1, NULL, 10);
    int p = purpose_index(w->m, purpose);
    int f = field_index(w->m, field);
    int ri = -1;
    for (int i = 0; recip != NULL && i < M_NRECIP; i++)
        if (strcmp(RECIPS[i], recip) == 0)
            ri = i;
    if (recip != NULL && ri < 0)
        fail_msg("line %d: unknown recipient %s", line, recip);
    mval mv;
    ck_reason mr = model_release(w->m, s, p, ri, f, w->base.now, &mv);
    char got_text[96];
    ck_reason sr = store_reason(w, s, p, ri, f, got_text, sizeof got_text);
    if (mr != expected)
        fail_msg("line %d: %s/%s/%s: the MODEL says %s, expected %s", line, purpose,
                 recip ? recip : "-", field, ck_reason_name(mr), ck_reason_name(expected));
    if (sr != expected)
        fail_msg("line %d: %s/%s/%s: the LIBRARY says %s, expected %s", line, purpose,
                 recip ? recip : "-", field, ck_reason_name(sr), ck_reason_name(expected));
    if (expected == CK_RELEASED) {
        char want[96];
        mval_text(want, sizeof want, &mv);
        if (strcmp(want, got_text) != 0)
            fail_msg("line %d: %s/%s: model value %s, library value %s", line, purpose, field, want,
                     got_text);
    }
}

#define EXPECT(w, ref, purpose, recip, field, reason)                                              \
    expect_reason((w), (ref), (purpose), (recip), (field), (reason), __LINE__)

/* ------------------------------------------------------------------------ */
/* Hand-written precedence tests                                            */
/* ------------------------------------------------------------------------ */

/*
 * fields:   email  string personal, identifying, retention 3 days
 *           phone  string special
 *           allergy string special
 *           age    int personal
 *           dob    date sensitive
 *           city   string public
 *           note   string personal, retention 2 days
 * purposes: mail    consent             [email age allergy city]
 *                   channel email/email cap 1 per 10 days, city prefix:2
 *           service contract            [email phone allergy note city]
 *                   channel sms/phone cap 2 per 5 days
 *           stats   legitimate_interest [age dob city note]
 *           legal   legal_obligation    [email dob allergy]
 */
static void fixed_schema(world *w)
{
    model *m = w->m;
    static const struct {
        const char *name;
        ck_type type;
        int sens, ident, ret;
    } F[] = {
        {"email", CK_TYPE_STRING, S_PERSONAL, 1, 3},  {"phone", CK_TYPE_STRING, S_SPECIAL, 0, 0},
        {"allergy", CK_TYPE_STRING, S_SPECIAL, 0, 0}, {"age", CK_TYPE_INT, S_PERSONAL, 0, 0},
        {"dob", CK_TYPE_DATE, S_SENSITIVE, 0, 0},     {"city", CK_TYPE_STRING, S_PUBLIC, 0, 0},
        {"note", CK_TYPE_STRING, S_PERSONAL, 0, 2}};
    m->nf = (int)(sizeof F / sizeof F[0]);
    for (int i = 0; i < m->nf; i++) {
        snprintf(m->f[i].name, sizeof m->f[i].name, "%s", F[i].name);
        m->f[i].type = F[i].type;
        m->f[i].sens = F[i].sens;
        m->f[i].ident = F[i].ident;
        m->f[i].retention_days = F[i].ret;
    }
    static const struct {
        const char *name;
        int basis;
        const char *fields[6];
        int chan;
        const char *chan_field;
        int count, days;
    } P[] = {
        {"mail", B_CONSENT, {"email", "age", "allergy", "city"}, 0, "email", 1, 10},
        {"service", B_CONTRACT, {"email", "phone", "allergy", "note", "city"}, 1, "phone", 2, 5},
        {"stats", B_LI, {"age", "dob", "city", "note"}, -1, NULL, 0, 0},
        {"legal", B_LEGAL, {"email", "dob", "allergy"}, -1, NULL, 0, 0}};
    m->np = (int)(sizeof P / sizeof P[0]);
    for (int i = 0; i < m->np; i++) {
        mpurpose *p = &m->p[i];
        snprintf(p->name, sizeof p->name, "%s", P[i].name);
        p->basis = P[i].basis;
        for (int j = 0; j < 6 && P[i].fields[j] != NULL; j++)
            p->fields[p->nf++] = field_index(m, P[i].fields[j]);
        p->chan = P[i].chan;
        if (p->chan >= 0) {
            p->chan_field = field_index(m, P[i].chan_field);
            p->cap_count = P[i].count;
            p->cap_days = P[i].days;
        }
    }
    m->p[0].prefix[field_index(m, "city")] = 2;
    m->ns = 4;
    world_apply_schema(w);
}

/* Subject S00 with every field set. */
static void fill_subject(world *w, int s)
{
    wval email = make_string("a@x.fr"), phone = make_string("0612"), allergy = make_string("nuts"),
         age = make_int(42, 0), dob = make_date("1990-07-14"), city = make_string("Évry"),
         note = make_string("call back");
    const wval *v[] = {&email, &phone, &allergy, &age, &dob, &city, &note};
    int f[] = {0, 1, 2, 3, 4, 5, 6};
    w_put(w, s, f, v, 7);
}

#define NONE_R ((const char *)NULL)

/* 1 not_in_purpose > the basis */
static void test_prec_purpose_before_basis(void **state)
{
    world *w = *state;
    fixed_schema(w);
    fill_subject(w, 0);
    EXPECT(w, "S00", "mail", NONE_R, "dob", CK_WITHHELD_NOT_IN_PURPOSE);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_NO_CONSENT);
    w_consent(w, 0, 0, CK_CONSENT_REFUSED, 0, 0, 0);
    EXPECT(w, "S00", "mail", NONE_R, "note", CK_WITHHELD_NOT_IN_PURPOSE);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_REFUSED);
    w_consent(w, 0, 2, CK_CONSENT_OBJECTED, 0, 0, 0);
    EXPECT(w, "S00", "stats", NONE_R, "email", CK_WITHHELD_NOT_IN_PURPOSE);
    EXPECT(w, "S00", "stats", NONE_R, "age", CK_WITHHELD_OBJECTED);
    /* not_in_purpose also before recipient and special */
    EXPECT(w, "S00", "legal", "acme", "phone", CK_WITHHELD_NOT_IN_PURPOSE);
    EXPECT(w, "S00", "legal", NONE_R, "email", CK_RELEASED);
}

/* 2 the state of the record > expired */
static void test_prec_state_before_expired(void **state)
{
    world *w = *state;
    fixed_schema(w);
    fill_subject(w, 0);
    int64_t exp = w->base.now + DAY;
    w_consent(w, 0, 0, CK_CONSENT_GRANTED, 0, 0, exp);
    w_set_time(w, exp - 1);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_RELEASED);
    EXPECT(w, "S00", "mail", NONE_R, "city", CK_RELEASED); /* "Év" */
    w_set_time(w, exp);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_EXPIRED);
    /* a withdrawal that carries a past expiry is a withdrawal */
    w_consent(w, 0, 0, CK_CONSENT_WITHDRAWN, 0, 0, exp - DAY / 2);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_WITHDRAWN);
    w_consent(w, 0, 0, CK_CONSENT_REFUSED, 0, 0, exp - DAY / 2);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_REFUSED);
    w_consent(w, 0, 0, CK_CONSENT_OBJECTED, 0, 0, exp - DAY / 2);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_OBJECTED);
    /* granted with expiry == now: expired at once */
    w_consent(w, 0, 0, CK_CONSENT_GRANTED, 0, 0, w->base.now);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_EXPIRED);
}

/* 2 expired > no_consent by scope; expired > special_category */
static void test_prec_expired_before_scope(void **state)
{
    world *w = *state;
    fixed_schema(w);
    fill_subject(w, 0);
    int64_t exp = w->base.now + DAY;
    w_consent(w, 0, 0, CK_CONSENT_GRANTED, 1u << field_index(w->m, "email"), 0, exp);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_RELEASED);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_NO_CONSENT);
    EXPECT(w, "S00", "mail", NONE_R, "allergy", CK_WITHHELD_NO_CONSENT);
    w_advance(w, DAY);
    EXPECT(w, "S00", "mail", NONE_R, "age", CK_WITHHELD_EXPIRED);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_WITHHELD_EXPIRED);
    EXPECT(w, "S00", "mail", NONE_R, "allergy", CK_WITHHELD_EXPIRED);
}

/* 2 no_consent by scope > recipient */
static void test_prec_scope_before_recipient(void **state)
{
    world *w = *state;
    fixed_schema(w);
    fill_subject(w, 0);
    unsigned email = 1u << field_index(w->m, "email");
    w_consent(w, 0, 0, CK_CONSENT_GRANTED, email, 0, 0);
    EXPECT(w, "S00", "mail", "acme", "age", CK_WITHHELD_NO_CONSENT);
    EXPECT(w, "S00", "mail", "acme", "email", CK_WITHHELD_RECIPIENT);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_RELEASED);
    w_consent(w, 0, 0, CK_CONSENT_GRANTED, email, 1u, 0); /* acme */
    EXPECT(w, "S00", "mail", "acme", "email", CK_RELEASED);
    EXPECT(w, "S00", "mail", "globex", "email", CK_WITHHELD_RECIPIENT);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_RELEASED);
    EXPECT(w, "S00", "mail", "globex", "age", CK_WITHHELD_NO_CONSENT);
}

/* 2 objected (legitimate interest) > recipient; other states do not matter */
static void test_prec_objected_before_recipient(void **state)
{
    world *w = *state;
    fixed_schema(w);
    fill_subject(w, 0);
    EXPECT(w, "S00", "stats", NONE_R, "dob", CK_RELEASED);
    EXPECT(w, "S00", "stats", "acme", "dob", CK_WITHHELD_RECIPIENT);
    w_consent(w, 0, 2, CK_CONSENT_GRANTED, 0, 1u, 0);
    EXPECT(w, "S00", "stats", "acme", "dob", CK_RELEASED);
    w_consent(w, 0, 2, CK_CONSENT_OBJECTED, 0, 1u, 0);
    EXPECT(w, "S00", "stats", NONE_R, "dob", CK_WITHHELD_OBJECTED);
    EXPECT(w, "S00", "stats", "acme", "dob", CK_WITHHELD_OBJECTED);
    EXPECT(w, "S00", "stats", "globex", "age", CK_WITHHELD_OBJECTED);
    /* withdrawn / refused are not objections to a legitimate interest */
    w_consent(w, 0, 2, CK_CONSENT_WITHDRAWN, 0, 1u, 0);
    EXPECT(w, "S00", "stats", NONE_R, "dob", CK_RELEASED);
    EXPECT(w, "S00", "stats", "acme", "dob", CK_WITHHELD_RECIPIENT);
    w_consent(w, 0, 2, CK_CONSENT_REFUSED, 0, 0, 0);
    EXPECT(w, "S00", "stats", NONE_R, "age", CK_RELEASED);
    /* contract and legal obligation: no state of a record withholds */
    w_consent(w, 0, 1, CK_CONSENT_OBJECTED, 0, 0, 0);
    EXPECT(w, "S00", "service", NONE_R, "email", CK_RELEASED);
    w_consent(w, 0, 1, CK_CONSENT_WITHDRAWN, 0, 0, 0);
    EXPECT(w, "S00", "service", NONE_R, "email", CK_RELEASED);
    w_consent(w, 0, 3, CK_CONSENT_REFUSED, 0, 0, 0);
    EXPECT(w, "S00", "legal", NONE_R, "dob", CK_RELEASED);
    EXPECT(w, "S00", "legal", "acme", "dob", CK_WITHHELD_RECIPIENT);
}

/* 2 recipient > 3 special_category */
static void test_prec_recipient_before_special(void **state)
{
    world *w = *state;
    fixed_schema(w);
    fill_subject(w, 0);
    unsigned allergy = 1u << field_index(w->m, "allergy");
    EXPECT(w, "S00", "service", NONE_R, "allergy", CK_WITHHELD_SPECIAL_CATEGORY);
    EXPECT(w, "S00", "service", "acme", "allergy", CK_WITHHELD_RECIPIENT);
    EXPECT(w, "S00", "legal", NONE_R, "allergy", CK_WITHHELD_SPECIAL_CATEGORY);
    /* a consent to all fields names the recipient but is not explicit */
    w_consent(w, 0, 1, CK_CONSENT_GRANTED, 0, 1u, 0);
    EXPECT(w, "S00", "service", "acme", "allergy", CK_WITHHELD_SPECIAL_CATEGORY);
    EXPECT(w, "S00", "service", "acme", "email", CK_RELEASED);
    EXPECT(w, "S00", "service", "globex", "allergy", CK_WITHHELD_RECIPIENT);
    w_consent(w, 0, 1, CK_CONSENT_GRANTED, allergy, 1u, 0);
    EXPECT(w, "S00", "service", "acme", "allergy", CK_RELEASED);
    EXPECT(w, "S00", "service", NONE_R, "allergy", CK_RELEASED);
    /* explicit consent for another purpose does not count */
    w_consent(w, 0, 0, CK_CONSENT_GRANTED, allergy, 0, 0);
    EXPECT(w, "S00", "legal", NONE_R, "allergy", CK_WITHHELD_SPECIAL_CATEGORY);
    EXPECT(w, "S00", "mail", NONE_R, "allergy", CK_RELEASED);
    /* an expired explicit consent no longer counts (contract basis) */
    w_consent(w, 0, 1, CK_CONSENT_GRANTED, allergy, 1u, w->base.now + 60);
    w_advance(w, 60);
    EXPECT(w, "S00", "service", NONE_R, "allergy", CK_WITHHELD_SPECIAL_CATEGORY);
    EXPECT(w, "S00", "service", "acme", "allergy", CK_WITHHELD_RECIPIENT);
    EXPECT(w, "S00", "service", NONE_R, "email", CK_RELEASED);
}

/* 3 special_category > 4 contact_cap */
static void test_prec_special_before_cap(void **state)
{
    world *w = *state;
    fixed_schema(w);
    fill_subject(w, 0);
    unsigned phone = 1u << field_index(w->m, "phone");
    w_limit(w, 0, 1, 0); /* sms: do not contact */
    EXPECT(w, "S00", "service", NONE_R, "phone", CK_WITHHELD_SPECIAL_CATEGORY);
    w_consent(w, 0, 1, CK_CONSENT_GRANTED, phone, 0, 0);
    EXPECT(w, "S00", "service", NONE_R, "phone", CK_WITHHELD_CONTACT_CAP);
    w_limit(w, 0, 1, -1);
    EXPECT(w, "S00", "service", NONE_R, "phone", CK_RELEASED);
    /* an own cap above the purpose's does not raise it */
    w_limit(w, 0, 1, 5);
    int64_t t1 = w->base.now;
    w_contact(w, 0, 1);
    w_advance(w, DAY);
    EXPECT(w, "S00", "service", NONE_R, "phone", CK_RELEASED);
    w_contact(w, 0, 1);
    EXPECT(w, "S00", "service", NONE_R, "phone", CK_WITHHELD_CONTACT_CAP);
    /* the window: a contact at t counts while now - 5 days < t */
    w_set_time(w, t1 + 5 * DAY - 1);
    EXPECT(w, "S00", "service", NONE_R, "phone", CK_WITHHELD_CONTACT_CAP);
    w_set_time(w, t1 + 5 * DAY);
    EXPECT(w, "S00", "service", NONE_R, "phone", CK_RELEASED);
    /* the cap is on the address field only */
    w_limit(w, 0, 1, 0);
    EXPECT(w, "S00", "service", NONE_R, "city", CK_RELEASED);
    EXPECT(w, "S00", "service", NONE_R, "phone", CK_WITHHELD_CONTACT_CAP);
}

/* 4 contact_cap > 5 retention */
static void test_prec_cap_before_retention(void **state)
{
    world *w = *state;
    fixed_schema(w);
    fill_subject(w, 0);
    int64_t t0 = w->base.now;
    w_consent(w, 0, 0, CK_CONSENT_GRANTED, 0, 0, 0);
    w_contact(w, 0, 0);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_WITHHELD_CONTACT_CAP);
    w_set_time(w, t0 + 3 * DAY); /* email's retention has run out too */
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_WITHHELD_CONTACT_CAP);
    EXPECT(w, "S00", "legal", NONE_R, "email", CK_WITHHELD_RETENTION);
    w_set_time(w, t0 + 10 * DAY);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_WITHHELD_RETENTION);
    /* a rewrite restarts retention */
    wval e = make_string("a@x.fr");
    w_put1(w, 0, "email", &e);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_RELEASED);
    w_set_time(w, t0 + 13 * DAY - 1);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_RELEASED);
    w_set_time(w, t0 + 13 * DAY);
    EXPECT(w, "S00", "mail", NONE_R, "email", CK_WITHHELD_RETENTION);
}

/* 5 retention > 6 unset; every other reason > unset */
static void test_prec_retention_before_unset(void **state)
{
    world *w = *state;
    fixed_schema(w);
    wval n = make_string("call back");
    w_put1(w, 1, "note", &n);
    int64_t t0 = w->base.now;
    w_set_time(w, t0 + 2 * DAY - 1);
    EXPECT(w, "S01", "service", NONE_R, "note", CK_RELEASED);
    w_set_time(w, t0 + 2 * DAY);
    EXPECT(w, "S01", "service", NONE_R, "note", CK_WITHHELD_RETENTION);
    EXPECT(w, "S01", "stats", NONE_R, "note", CK_WITHHELD_RETENTION);
    w_put1(w, 1, "note", NULL);
    EXPECT(w, "S01", "service", NONE_R, "note", CK_WITHHELD_UNSET);
    /* unset is said last: capped, special, recipient, consent all win */
    EXPECT(w, "S01", "service", NONE_R, "phone", CK_WITHHELD_SPECIAL_CATEGORY);
    EXPECT(w, "S01", "service", "acme", "city", CK_WITHHELD_RECIPIENT);
    EXPECT(w, "S01", "service", NONE_R, "city", CK_WITHHELD_UNSET);
    EXPECT(w, "S01", "mail", NONE_R, "city", CK_WITHHELD_NO_CONSENT);
    w_consent(w, 1, 0, CK_CONSENT_GRANTED, 0, 0, 0);
    w_limit(w, 1, 0, 0);
    EXPECT(w, "S01", "mail", NONE_R, "email", CK_WITHHELD_CONTACT_CAP);
    w_limit(w, 1, 0, -1);
    EXPECT(w, "S01", "mail", NONE_R, "email", CK_WITHHELD_UNSET);
    EXPECT(w, "S01", "mail", NONE_R, "age", CK_WITHHELD_UNSET);
}

/* ------------------------------------------------------------------------ */
/* The randomized test                                                      */
/* ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int rnd(world *w, int n)
{
    return (int)(rng_next(&w->rng) % (uint64_t)n);
}

static int64_t rnd64(world *w, int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rng_next(&w->rng) % (uint64_t)(hi - lo + 1));
}

static void shuffle(world *w, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = rnd(w, i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static void random_schema(world *w)
{
    model *m = w->m;
    m->nf = 6 + rnd(w, 5);
    for (int i = 0; i < m->nf; i++) {
        mfield *f = &m->f[i];
        if (i == 0) {
            snprintf(f->name, sizeof f->name, "email");
            f->type = CK_TYPE_STRING;
            f->ident = 1;
        } else {
            static const ck_type T[] = {CK_TYPE_STRING, CK_TYPE_INT, CK_TYPE_DATE};
            f->type = i == 1 ? CK_TYPE_STRING : T[rnd(w, 3)];
            snprintf(f->name, sizeof f->name, "f%d_%s", i, type_name(f->type));
        }
        f->sens = 1 + rnd(w, 3); /* public, personal, sensitive */
    }
    /* one special field (possibly a channel's address), sometimes two */
    m->f[rnd(w, m->nf)].sens = S_SPECIAL;
    if (rnd(w, 3) == 0)
        m->f[rnd(w, m->nf)].sens = S_SPECIAL;
    /* one or two fields with a short retention */
    m->f[rnd(w, m->nf)].retention_days = 1 + rnd(w, 3);
    if (rnd(w, 2) == 0)
        m->f[rnd(w, m->nf)].retention_days = 1 + rnd(w, 4);

    m->np = 4 + rnd(w, 3);
    int bases[4] = {B_CONSENT, B_CONTRACT, B_LEGAL, B_LI};
    shuffle(w, bases, 4);
    for (int i = 0; i < m->np; i++) {
        mpurpose *p = &m->p[i];
        p->basis = i < 4 ? bases[i] : 1 + rnd(w, 4);
        snprintf(p->name, sizeof p->name, "p%d.%s", i, BASES[p->basis]);
        int idx[M_MAXF];
        for (int j = 0; j < m->nf; j++)
            idx[j] = j;
        shuffle(w, idx, m->nf);
        int k = 2 + rnd(w, (m->nf < 7 ? m->nf : 7) - 1);
        for (int j = 0; j < k; j++)
            p->fields[p->nf++] = idx[j];
        p->chan = -1;
        if (i < 2 || rnd(w, 2) == 0) {
            /* two purposes at least with an e-mail channel on "email" */
            if (i < 2 && !m_in_purpose(p, 0))
                p->fields[p->nf++] = 0;
            int strings[M_MAXF], ns = 0;
            for (int j = 0; j < p->nf; j++)
                if (m->f[p->fields[j]].type == CK_TYPE_STRING)
                    strings[ns++] = p->fields[j];
            if (ns > 0) {
                p->chan = i < 2 ? 0 : (rnd(w, 3) == 0 ? 1 : 0);
                p->chan_field = i < 2 ? 0 : strings[rnd(w, ns)];
                p->cap_count = 1 + rnd(w, 3);
                p->cap_days = 1 + rnd(w, 5);
            }
        }
        if (rnd(w, 3) == 0) {
            int strings[M_MAXF], ns = 0;
            for (int j = 0; j < p->nf; j++)
                if (m->f[p->fields[j]].type == CK_TYPE_STRING)
                    strings[ns++] = p->fields[j];
            if (ns > 0)
                p->prefix[strings[rnd(w, ns)]] = 1 + rnd(w, 3);
        }
    }
    /* half of the time, a channel's address is a special field too */
    if (rnd(w, 2) == 0) {
        int i = rnd(w, m->np);
        if (m->p[i].chan >= 0)
            m->f[m->p[i].chan_field].sens = S_SPECIAL;
    }
    m->ns = M_MAXS;
}

static wval random_value(world *w, int f)
{
    switch (w->m->f[f].type) {
    case CK_TYPE_STRING:
        if (w->m->f[f].ident)
            return make_string(EMAIL_POOL[rnd(w, (int)NMAIL)]);
        return make_string(STR_POOL[rnd(w, (int)NSTR)]);
    case CK_TYPE_INT:
        return make_int(INT_POOL[rnd(w, (int)NINT)], rnd(w, 2));
    default:
        return make_date(DATE_POOL[rnd(w, (int)NDATE)]);
    }
}

static void op_put(world *w, int s)
{
    int idx[M_MAXF];
    for (int i = 0; i < w->m->nf; i++)
        idx[i] = i;
    shuffle(w, idx, w->m->nf);
    int n = 1 + rnd(w, 2);
    wval vals[2];
    const wval *v[2];
    for (int i = 0; i < n; i++) {
        vals[i] = random_value(w, idx[i]);
        v[i] = rnd(w, 5) == 0 ? NULL : &vals[i];
    }
    w_put(w, s, idx, v, n);
}

static void op_consent(world *w, int s)
{
    const model *m = w->m;
    int p = rnd(w, m->np);
    static const ck_consent_state ST[] = {CK_CONSENT_GRANTED, CK_CONSENT_GRANTED,
                                          CK_CONSENT_GRANTED, CK_CONSENT_WITHDRAWN,
                                          CK_CONSENT_REFUSED, CK_CONSENT_OBJECTED};
    ck_consent_state state = ST[rnd(w, 6)];
    unsigned scope = 0;
    if (rnd(w, 2) == 0) {
        const mpurpose *mp = &m->p[p];
        while (scope == 0)
            for (int j = 0; j < mp->nf; j++)
                if (rnd(w, 2) == 0)
                    scope |= 1u << mp->fields[j];
    }
    unsigned recips = (unsigned)rnd(w, 4); /* acme, globex bits */
    int64_t expires = 0;
    switch (rnd(w, 5)) {
    case 0:
    case 1:
        break;
    case 2:
        expires = w->base.now + rnd64(w, -2 * DAY, 0);
        break;
    default:
        expires = w->base.now + rnd64(w, 1, 3 * DAY);
        break;
    }
    if (expires == 0 && rnd(w, 10) == 0)
        expires = w->base.now; /* holds strictly before: already over */
    w_consent(w, s, p, state, scope, recips, expires);
}

/* Move the clock: a random step, or onto (or just before) an instant where
 * a rule changes its answer for some subject (a consent's expiry, the end
 * of a value's retention, a contact leaving a window), and then release
 * that subject for every purpose, so that the boundary is looked at. */
static void op_advance(world *w)
{
    const model *m = w->m;
    if (rnd(w, 3) == 0) {
        static const int64_t SPAN[] = {59, 3600, 6 * 3600, DAY};
        w_advance(w, rnd64(w, 1, SPAN[rnd(w, 4)]));
        return;
    }
    enum { MAXC = 1024 };
    int64_t ct[MAXC];
    int cs[MAXC];
    int n = 0, best = -1;
    for (int s = 0; s < m->ns; s++) {
        const msubject *ms = &m->s[s];
        int64_t t[M_MAXP + M_MAXF + M_MAXP * M_MAXCONTACTS];
        int nt = 0;
        for (int p = 0; p < m->np; p++)
            if (ms->c[p].present && ms->c[p].expires)
                t[nt++] = ms->c[p].expires;
        for (int f = 0; f < m->nf; f++)
            if (ms->has[f] && m->f[f].retention_days)
                t[nt++] = ms->written[f] + (int64_t)m->f[f].retention_days * DAY;
        for (int p = 0; p < m->np; p++) {
            const mpurpose *mp = &m->p[p];
            for (int j = 0; mp->chan >= 0 && j < ms->ncontacts[mp->chan]; j++)
                t[nt++] = ms->contacts[mp->chan][j] + (int64_t)mp->cap_days * DAY;
        }
        for (int j = 0; j < nt && n < MAXC; j++)
            if (t[j] > w->base.now) {
                ct[n] = t[j];
                cs[n] = s;
                if (best < 0 || t[j] < ct[best])
                    best = n;
                n++;
            }
    }
    if (n == 0) {
        w_advance(w, rnd64(w, 1, DAY));
        return;
    }
    int pick = rnd(w, 2) == 0 ? best : rnd(w, n);
    int64_t t = ct[pick] - rnd(w, 2);
    if (t <= w->base.now)
        t = ct[pick];
    w_set_time(w, t);
    for (int p = 0; p < m->np; p++)
        w_release(w, cs[pick], p, rnd(w, 3) == 0 ? rnd(w, M_NRECIP) : -1, NULL, 0);
}

static void op_release(world *w, int s)
{
    const model *m = w->m;
    int p = rnd(w, m->np);
    int recip = rnd(w, 2) == 0 ? -1 : rnd(w, M_NRECIP);
    if (rnd(w, 3) == 0) {
        w_release(w, s, p, recip, NULL, 0);
        return;
    }
    int idx[M_MAXF];
    for (int i = 0; i < m->nf; i++)
        idx[i] = i;
    shuffle(w, idx, m->nf);
    w_release(w, s, p, recip, idx, 1 + rnd(w, m->nf));
}

/* Requests the library must refuse. */
static void op_errors(world *w, int s)
{
    char ref[8];
    ref_of(ref, sizeof ref, s);
    ck_request r = CK_REQUEST_INIT;
    r.actor = "model";
    r.subject = tu_by_ref(ref);
    const char *bad_field[] = {"no_such_field"};
    if (rnd(w, 2) == 0) {
        r.purpose = "no.such.purpose";
    } else {
        r.purpose = w->m->p[rnd(w, w->m->np)].name;
        r.fields = bad_field;
        r.nfields = 1;
    }
    ck_result *res = (ck_result *)&r; /* must be set to NULL */
    int rc = ck_release(&res, w->base.st, &r);
    if (rc != CK_EINVAL || res != NULL) {
        ck_result_free(rc == CK_OK ? res : NULL);
        mismatch(w, s, "release for %s%s: expected CK_EINVAL and no answer, got %s", r.purpose,
                 r.fields ? " of an unknown field" : "", ck_strerror(rc));
    }
    w->errors_checked++;
}

/* The text of a predicate value that can match the field as released. */
static void pred_value(world *w, int p, int f, char *out, size_t max)
{
    const model *m = w->m;
    const msubject *ms = &m->s[rnd(w, m->ns)];
    if (ms->has[f] && rnd(w, 3) != 0) {
        const mval *v = &ms->val[f];
        if (v->type == CK_TYPE_STRING && m->p[p].prefix[f] > 0)
            m_prefix(out, max, v->s, m->p[p].prefix[f]);
        else if (v->type == CK_TYPE_STRING)
            snprintf(out, max, "%s", v->s);
        else if (v->type == CK_TYPE_INT)
            snprintf(out, max, "%" PRId64, v->i);
        else
            date_text(out, max, v->d);
        return;
    }
    switch (m->f[f].type) {
    case CK_TYPE_STRING: {
        const char *s =
            m->f[f].ident ? EMAIL_POOL[rnd(w, (int)NMAIL)] : STR_POOL[rnd(w, (int)NSTR)];
        int n = m->p[p].prefix[f];
        if (n == 0 && rnd(w, 4) == 0)
            n = 1 + rnd(w, 3);
        if (n > 0 && rnd(w, 4) != 0)
            m_prefix(out, max, s, n);
        else
            snprintf(out, max, "%s", s);
        break;
    }
    case CK_TYPE_INT:
        snprintf(out, max, "%" PRId64, INT_POOL[rnd(w, (int)NINT)]);
        break;
    default:
        snprintf(out, max, "%s", DATE_POOL[rnd(w, (int)NDATE)]);
        break;
    }
}

static int pred_holds(const mval *v, const char *text)
{
    switch (v->type) {
    case CK_TYPE_STRING:
        return strcmp(v->s, text) == 0;
    case CK_TYPE_INT:
        return v->i == strtoll(text, NULL, 10);
    default:
        return v->d == parse_date(text);
    }
}

/* Make sure the pseudonym of every subject is known in this context. */
static void learn_pseudonyms(world *w, int p, int recip)
{
    for (int s = 0; s < w->m->ns; s++)
        if (pseudo_slot(w, s, p, recip)[0] == '\0') {
            int f = w->m->p[p].fields[0];
            w_release(w, s, p, recip, &f, 1);
        }
}

static void op_segment(world *w)
{
    const model *m = w->m;
    int p = rnd(w, m->np);
    const mpurpose *mp = &m->p[p];
    int recip = rnd(w, 3) == 0 ? rnd(w, M_NRECIP) : -1;
    ck_segment_request q = CK_SEGMENT_INIT;
    q.actor = "model";
    q.purpose = mp->name;
    q.recipient = recip >= 0 ? RECIPS[recip] : NULL;
    char val[64];
    ck_predicate where = {NULL, CK_PRED_EQ, val, 0};
    q.where = &where;
    q.nwhere = 1;
    ck_cursor *c = NULL;
    int rc;
    if (mp->nf < m->nf && rnd(w, 12) == 0) {
        /* a predicate on a field the purpose does not declare: an error */
        int f;
        do
            f = rnd(w, m->nf);
        while (m_in_purpose(mp, f));
        where.field = m->f[f].name;
        pred_value(w, p, f, val, sizeof val);
        rc = ck_segment(&c, w->base.st, &q);
        if (rc != CK_EINVAL) {
            ck_cursor_free(c);
            mismatch(w, -1,
                     "segment %s where %s = \"%s\" (not in the purpose): expected "
                     "CK_EINVAL, got %s",
                     mp->name, where.field, val, ck_strerror(rc));
        }
        w->errors_checked++;
        return;
    }
    int f = mp->fields[rnd(w, mp->nf)];
    where.field = m->f[f].name;
    pred_value(w, p, f, val, sizeof val);
    learn_pseudonyms(w, p, recip);

    int expected[M_MAXS], seen[M_MAXS] = {0};
    int nexp = 0;
    for (int s = 0; s < m->ns; s++) {
        mval v;
        expected[s] =
            model_release(m, s, p, recip, f, w->base.now, &v) == CK_RELEASED && pred_holds(&v, val);
        nexp += expected[s];
    }
    char ctx[256];
    snprintf(ctx, sizeof ctx, "segment %s recipient %s where %s = \"%s\"", mp->name,
             recip >= 0 ? RECIPS[recip] : "(none)", where.field, val);
    rc = ck_segment(&c, w->base.st, &q);
    if (rc != CK_OK)
        mismatch(w, -1, "%s failed: %s: %s", ctx, ck_strerror(rc), ck_errmsg(w->base.st));
    w->segments++;
    char err[1024] = "";
    int bad_s = -1;
    const ck_result *r;
    while (err[0] == '\0' && (rc = ck_segment_next(c, &r)) == CK_OK) {
        const char *ps = ck_result_subject(r);
        int s = -1;
        for (int i = 0; i < m->ns && ps != NULL; i++)
            if (strcmp(pseudo_slot(w, i, p, recip), ps) == 0)
                s = i;
        if (s < 0) {
            snprintf(err, sizeof err, "%s: an answer with an unknown pseudonym", ctx);
            break;
        }
        if (seen[s]++) {
            snprintf(err, sizeof err, "%s: S%02d answered twice", ctx, s);
            bad_s = s;
            break;
        }
        if (!expected[s]) {
            mval v;
            ck_reason er = model_release(m, s, p, recip, f, w->base.now, &v);
            char vt[96] = "";
            if (er == CK_RELEASED)
                mval_text(vt, sizeof vt, &v);
            snprintf(err, sizeof err, "%s: S%02d is in the segment; the model says %s %s", ctx, s,
                     ck_reason_name(er), vt);
            bad_s = s;
            break;
        }
        /* every field of the answer, as a release would give it */
        if (ck_result_count(r) != (size_t)mp->nf) {
            snprintf(err, sizeof err, "%s: S%02d: %zu fields in the answer, %d expected", ctx, s,
                     ck_result_count(r), mp->nf);
            bad_s = s;
            break;
        }
        for (int i = 0; i < mp->nf; i++) {
            const ck_field_result *fr = ck_result_field(r, (size_t)i);
            mval v;
            ck_reason er = model_release(m, s, p, recip, mp->fields[i], w->base.now, &v);
            if (fr->reason != er || (er == CK_RELEASED && !value_equal(&v, &fr->value))) {
                snprintf(err, sizeof err, "%s: S%02d field %s: expected %s, library says %s", ctx,
                         s, m->f[mp->fields[i]].name, ck_reason_name(er),
                         ck_reason_name(fr->reason));
                bad_s = s;
                break;
            }
        }
    }
    if (err[0] == '\0' && rc != CK_ENOTFOUND)
        snprintf(err, sizeof err, "%s: ck_segment_next: %s", ctx, ck_strerror(rc));
    ck_cursor_free(c);
    for (int s = 0; s < m->ns && err[0] == '\0'; s++)
        if (expected[s] && !seen[s]) {
            mval v;
            model_release(m, s, p, recip, f, w->base.now, &v);
            char vt[96];
            mval_text(vt, sizeof vt, &v);
            snprintf(err, sizeof err, "%s: S%02d (value %s, released) is missing from the segment",
                     ctx, s, vt);
            bad_s = s;
        }
    if (err[0] != '\0')
        mismatch(w, bad_s, "%s", err);
    w->segment_hits += (unsigned long)nexp;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return dflt;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end != '\0')
        fail_msg("%s: not a number", name);
    return (uint64_t)x;
}

static void test_random(void **state)
{
    world *w = *state;
    w->seed = env_u64("CK_MODEL_SEED", DEFAULT_SEED);
    long steps = (long)env_u64("CK_MODEL_STEPS", (uint64_t)DEFAULT_STEPS);
    w->rng = w->seed;
    printf("[ model    ] seed %" PRIu64 " (CK_MODEL_SEED), %ld steps (CK_MODEL_STEPS)\n", w->seed,
           steps);
    fflush(stdout);
    random_schema(w);
    world_apply_schema(w);
    printf("[ model    ] schema %s\n", w->schema);
    const model *m = w->m;
    /* subjects, by ref, each with a few values */
    for (int s = 0; s < m->ns; s++) {
        int idx[M_MAXF];
        for (int i = 0; i < m->nf; i++)
            idx[i] = i;
        shuffle(w, idx, m->nf);
        int n = 2 + rnd(w, 3);
        wval vals[M_MAXF];
        const wval *v[M_MAXF];
        for (int i = 0; i < n; i++) {
            vals[i] = random_value(w, idx[i]);
            v[i] = &vals[i];
        }
        w_put(w, s, idx, v, n);
    }
    /* a few "hot" subjects get half of the operations, so that their
     * consents, contacts and values interact */
    int hot[4];
    for (int i = 0; i < 4; i++)
        hot[i] = rnd(w, m->ns);
    for (w->step = 1; w->step <= steps; w->step++) {
        int s = rnd(w, 2) == 0 ? hot[rnd(w, 4)] : rnd(w, m->ns);
        int op = rnd(w, 100);
        if (op < 16)
            op_put(w, s);
        else if (op < 30)
            op_consent(w, s);
        else if (op < 40)
            w_contact(w, s, rnd(w, 4) == 0 ? rnd(w, M_NCHAN) : rnd(w, 2));
        else if (op < 44)
            w_limit(w, s, rnd(w, 3) == 0 ? 1 : 0, (int[]){-1, -1, 0, 1, 2, 5}[rnd(w, 6)]);
        else if (op < 52)
            op_advance(w);
        else if (op < 94)
            op_release(w, s);
        else if (op < 97)
            op_segment(w);
        else
            op_errors(w, s);
    }
    printf("[ model    ] %lu releases (field answers:", w->releases);
    for (int r = 0; r <= CK_WITHHELD_UNSET; r++)
        printf(" %s %lu", ck_reason_name((ck_reason)r), w->reasons[r]);
    printf("), %lu segments (%lu subjects matched), %lu refused requests; clock at +%" PRId64 "s\n",
           w->segments, w->segment_hits, w->errors_checked, w->base.now - T0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prec_purpose_before_basis, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_prec_state_before_expired, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_prec_expired_before_scope, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_prec_scope_before_recipient, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_prec_objected_before_recipient, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_prec_recipient_before_special, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_prec_special_before_cap, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_prec_cap_before_retention, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_prec_retention_before_unset, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_random, world_setup, world_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
