/*
 * schema.c - fields and purposes: the JSON loader and its validation, the
 * immutable snapshot and its lookups, the sealed versioned record, apply.
 *
 * The schema database of the data environment holds:
 *   "current"              -> u32 BE: the current version (absent: none yet)
 *   'v' || u32 BE version  -> [u8 1][nonce 24][ciphertext][tag 16]: the
 *                             msgpack record of that version, sealed under
 *                             the STORE subkey with AAD
 *                             "ckr1" || store id || "schema" || u32 BE version
 * Old versions are kept: they say what a field id meant when a value, a
 * consent or an audit entry was written.
 *
 * A snapshot never changes once built. The store holds the current one in
 * st->schema; ck_schema__get compares its version with "current" in the
 * caller's transaction and loads the newer record when another process
 * applied one. Only the pointer swap takes the mutex.
 */
#include "schema.h"

#include "audit.h"
#include "consent.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_VERSION 1
#define CURRENT_KEY    "current"
#define VKEY_BYTES     5
#define AAD_BYTES      (4 + CK_STORE_ID_BYTES + 6 + 4)
#define SHOWN_MAX      40 /* a quoted name or word in a message, NUL included */

/* ------------------------------------------------------------------------ */
/* Names of the enums                                                       */
/* ------------------------------------------------------------------------ */

static const char *const TYPE_NAMES[] = {NULL,   "string",    "int",   "float", "bool",
                                         "date", "timestamp", "bytes", "list"};
static const char *const SENS_NAMES[] = {NULL, "public", "personal", "sensitive", "special"};
static const char *const BASIS_NAMES[] = {NULL, "consent", "contract", "legal_obligation",
                                          "legitimate_interest"};
static const char *const CHANNEL_NAMES[] = {NULL, "email", "sms", "phone", "post"};

#define TYPES_EXPECTED   "string, int, float, bool, date, timestamp, bytes, list"
#define SENS_EXPECTED    "public, personal, sensitive, special"
#define BASIS_EXPECTED   "consent, contract, legal_obligation, legitimate_interest"
#define CHANNEL_EXPECTED "email, sms, phone, post"
#define MIN_EXPECTED     "year, prefix:N, domain, band:E1,E2,..."

static const char *enum_name(const char *const *names, size_t n, unsigned v)
{
    return v > 0 && v < n ? names[v] : "?";
}

const char *ck_schema__type_name(ck_type t)
{
    return enum_name(TYPE_NAMES, CK_ARRAY_LEN(TYPE_NAMES), (unsigned)t);
}

const char *ck_schema__sensitivity_name(ck_sensitivity s)
{
    return enum_name(SENS_NAMES, CK_ARRAY_LEN(SENS_NAMES), (unsigned)s);
}

const char *ck_schema__basis_name(ck_basis b)
{
    return enum_name(BASIS_NAMES, CK_ARRAY_LEN(BASIS_NAMES), (unsigned)b);
}

const char *ck_schema__channel_name(ck_channel_type c)
{
    return enum_name(CHANNEL_NAMES, CK_ARRAY_LEN(CHANNEL_NAMES), (unsigned)c);
}

/* The value of `s` in `names` (1..n-1), or 0. */
static unsigned enum_lookup(const char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 1; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return (unsigned)i;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Snapshots: lifetime and lookups                                          */
/* ------------------------------------------------------------------------ */

static ck_schema *schema_new(void)
{
    ck_schema *s = ck_mem__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1u);
    return s;
}

void ck_schema__retain(ck_schema *s)
{
    atomic_fetch_add_explicit(&s->refs, 1u, memory_order_relaxed);
}

void ck_schema__release(ck_schema *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1u, memory_order_acq_rel) != 1u)
        return;
    ck_arena__free(&s->arena);
    ck_mem__free(s);
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

typedef struct name_key {
    const char *p;
    size_t n;
} name_key;

static int field_key_cmp(const void *k, const void *e)
{
    const name_key *key = k;
    const ck_schema_field *f = e;
    return name_cmp(key->p, key->n, f->name, f->name_len);
}

static int purpose_key_cmp(const void *k, const void *e)
{
    const name_key *key = k;
    const ck_schema_purpose *p = e;
    return name_cmp(key->p, key->n, p->name, p->name_len);
}

static int id_key_cmp(const void *k, const void *e)
{
    uint16_t id = *(const uint16_t *)k;
    const ck_schema_field *f = *(const ck_schema_field *const *)e;
    return id < f->id ? -1 : id > f->id ? 1 : 0;
}

const ck_schema_field *ck_schema__field(const ck_schema *s, const char *name, size_t len)
{
    name_key k = {name, len};
    if (s == NULL || s->nfields == 0)
        return NULL;
    return bsearch(&k, s->fields, s->nfields, sizeof *s->fields, field_key_cmp);
}

const ck_schema_field *ck_schema__field_by_id(const ck_schema *s, uint16_t id)
{
    if (s == NULL || s->nfields == 0)
        return NULL;
    const ck_schema_field *const *f =
        bsearch(&id, s->by_id, s->nfields, sizeof *s->by_id, id_key_cmp);
    return f != NULL ? *f : NULL;
}

const ck_schema_purpose *ck_schema__purpose(const ck_schema *s, const char *name, size_t len)
{
    name_key k = {name, len};
    if (s == NULL || s->npurposes == 0)
        return NULL;
    return bsearch(&k, s->purposes, s->npurposes, sizeof *s->purposes, purpose_key_cmp);
}

int ck_schema__purpose_field(const ck_schema_purpose *p, uint16_t id)
{
    for (uint32_t i = 0; i < p->nfields; i++)
        if (p->field_ids[i] == id)
            return (int)i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Building and checking a snapshot (shared by the JSON loader and the      */
/* decoder)                                                                 */
/* ------------------------------------------------------------------------ */

static bool name_valid(const char *s, size_t n)
{
    if (n == 0 || n > CK_SCHEMA_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool text_valid(const char *s, size_t n)
{
    return n >= 1 && n <= CK_SCHEMA_TEXT_MAX && memchr(s, '\0', n) == NULL &&
           ck_codec__utf8_valid(s, n);
}

static int field_sort_cmp(const void *a, const void *b)
{
    const ck_schema_field *x = a, *y = b;
    return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static int field_id_sort_cmp(const void *a, const void *b)
{
    const ck_schema_field *x = *(const ck_schema_field *const *)a;
    const ck_schema_field *y = *(const ck_schema_field *const *)b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

static int purpose_sort_cmp(const void *a, const void *b)
{
    const ck_schema_purpose *x = a, *y = b;
    return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* Does minimisation `m` apply to a field of type `t`? */
static bool min_fits(const ck_schema_min *m, ck_type t)
{
    switch (m->kind) {
    case CK_MIN_NONE:
        return true;
    case CK_MIN_YEAR:
        return t == CK_TYPE_DATE || t == CK_TYPE_TIMESTAMP;
    case CK_MIN_PREFIX:
    case CK_MIN_DOMAIN:
        return t == CK_TYPE_STRING;
    case CK_MIN_BAND:
        return t == CK_TYPE_INT || t == CK_TYPE_FLOAT;
    }
    return false;
}

static bool min_args_valid(const ck_schema_min *m)
{
    switch (m->kind) {
    case CK_MIN_NONE:
    case CK_MIN_YEAR:
    case CK_MIN_DOMAIN:
        return m->prefix == 0 && m->nedges == 0;
    case CK_MIN_PREFIX:
        return m->prefix >= 1 && m->prefix <= CK_SCHEMA_PREFIX_MAX && m->nedges == 0;
    case CK_MIN_BAND:
        if (m->prefix != 0 || m->nedges < 1 || m->nedges > CK_SCHEMA_BAND_EDGES_MAX)
            return false;
        for (uint32_t i = 1; i < m->nedges; i++)
            if (m->edges[i - 1] >= m->edges[i])
                return false;
        return true;
    }
    return false;
}

/* The TCF mapping of a purpose: absent (all zero), or at least one TCF
 * purpose, ids in range, not both a vendor and the publisher, and only for
 * a purpose whose basis reads a TCF signal. */
static bool tcf_valid(const ck_schema_purpose *p)
{
    const ck_schema_tcf *t = &p->tcf;
    if (!t->set)
        return t->purposes == 0 && t->special_features == 0 && t->vendor == 0 && !t->publisher;
    return (p->basis == CK_BASIS_CONSENT || p->basis == CK_BASIS_LEGITIMATE_INTEREST) &&
           t->purposes != 0 && (t->purposes >> CK_SCHEMA_TCF_PURPOSE_MAX) == 0 &&
           (t->special_features >> CK_SCHEMA_TCF_FEATURE_MAX) == 0 &&
           !(t->vendor != 0 && t->publisher);
}

/* The hold of a purpose: absent (all zero), or only on a legal_obligation
 * purpose, 1..nfields distinct fields among the purpose's, bounded days. */
static bool hold_valid(const ck_schema_purpose *p)
{
    const ck_schema_hold *h = &p->hold;
    if (h->nfields == 0)
        return h->field_ids == NULL && h->days == 0;
    if (p->basis != CK_BASIS_LEGAL_OBLIGATION || h->nfields > p->nfields || h->field_ids == NULL ||
        h->days < 1 || h->days > CK_SCHEMA_HOLD_DAYS_MAX)
        return false;
    for (uint32_t j = 0; j < h->nfields; j++) {
        if (ck_schema__purpose_field(p, h->field_ids[j]) < 0)
            return false;
        for (uint32_t k = 0; k < j; k++)
            if (h->field_ids[k] == h->field_ids[j])
                return false;
    }
    return true;
}

/*
 * Sort the fields and purposes of a snapshot whose arrays were just filled,
 * build the id index, and check every invariant the rest of the library
 * relies on. The JSON loader has already said what is wrong in words; for
 * it a failure here is a bug. For the decoder it means a bad record.
 * CK_OK, CK_EFORMAT or CK_ENOMEM.
 */
static int finish(ck_schema *s, ck_schema_field *fields, ck_schema_purpose *purposes)
{
    if (fields == NULL || (s->npurposes > 0 && purposes == NULL))
        return CK_EINTERNAL;
    if (s->version < 1 || s->nfields < 1 || s->nfields > CK_SCHEMA_FIELDS_MAX ||
        s->npurposes > CK_SCHEMA_PURPOSES_MAX || s->next_field_id < 1 ||
        s->next_field_id > CK_SCHEMA_FIELD_ID_MAX + 1)
        return CK_EFORMAT;
    qsort(fields, s->nfields, sizeof *fields, field_sort_cmp);
    if (s->npurposes > 0)
        qsort(purposes, s->npurposes, sizeof *purposes, purpose_sort_cmp);
    const ck_schema_field **by_id = ck_arena__alloc(&s->arena, s->nfields * sizeof *by_id);
    if (by_id == NULL)
        return CK_ENOMEM;
    for (uint32_t i = 0; i < s->nfields; i++) {
        const ck_schema_field *f = &fields[i];
        if (!name_valid(f->name, f->name_len) || f->id == 0 || f->id >= s->next_field_id ||
            f->type < CK_TYPE_STRING || f->type > CK_TYPE_LIST || f->sensitivity < CK_SENS_PUBLIC ||
            f->sensitivity > CK_SENS_SPECIAL || (f->identifying && f->type != CK_TYPE_STRING) ||
            f->retention_days > CK_SCHEMA_RETENTION_MAX)
            return CK_EFORMAT;
        if (i > 0 &&
            name_cmp(fields[i - 1].name, fields[i - 1].name_len, f->name, f->name_len) == 0)
            return CK_EFORMAT;
        by_id[i] = f;
    }
    qsort(by_id, s->nfields, sizeof *by_id, field_id_sort_cmp);
    for (uint32_t i = 1; i < s->nfields; i++)
        if (by_id[i - 1]->id == by_id[i]->id)
            return CK_EFORMAT;
    s->fields = fields;
    s->by_id = by_id;
    s->purposes = purposes;

    for (uint32_t i = 0; purposes != NULL && i < s->npurposes; i++) {
        const ck_schema_purpose *p = &purposes[i];
        if (!name_valid(p->name, p->name_len) || p->basis < CK_BASIS_CONSENT ||
            p->basis > CK_BASIS_LEGITIMATE_INTEREST ||
            !text_valid(p->description, strlen(p->description)) ||
            !text_valid(p->benefit, strlen(p->benefit)) || p->nfields < 1 ||
            p->nfields > s->nfields)
            return CK_EFORMAT;
        if (i > 0 &&
            name_cmp(purposes[i - 1].name, purposes[i - 1].name_len, p->name, p->name_len) == 0)
            return CK_EFORMAT;
        for (uint32_t j = 0; j < p->nfields; j++) {
            const ck_schema_field *f = ck_schema__field_by_id(s, p->field_ids[j]);
            if (f == NULL || !min_args_valid(&p->min[j]) || !min_fits(&p->min[j], f->type))
                return CK_EFORMAT;
            /* Duplicates: a purpose's fields are few (at most nfields). */
            for (uint32_t k = 0; k < j; k++)
                if (p->field_ids[k] == p->field_ids[j])
                    return CK_EFORMAT;
        }
        const ck_schema_channel *c = &p->channel;
        if (c->type == CK_CHANNEL_NONE) {
            if (c->field_id != 0 || c->cap_count != 0 || c->cap_days != 0)
                return CK_EFORMAT;
        } else {
            const ck_schema_field *f = ck_schema__field_by_id(s, c->field_id);
            if (c->type > CK_CHANNEL_POST || f == NULL || f->type != CK_TYPE_STRING ||
                ck_schema__purpose_field(p, c->field_id) < 0 || c->cap_count < 1 ||
                c->cap_count > CK_SCHEMA_CAP_COUNT_MAX || c->cap_days < 1 ||
                c->cap_days > CK_SCHEMA_CAP_DAYS_MAX)
                return CK_EFORMAT;
        }
        if (!tcf_valid(p) || !hold_valid(p))
            return CK_EFORMAT;
    }
    return CK_OK;
}

/* A NUL-terminated copy of n bytes in the snapshot's arena. */
static char *arena_str(ck_schema *s, const char *p, size_t n)
{
    return ck_arena__strndup(&s->arena, p, n);
}

/* ------------------------------------------------------------------------ */
/* JSON loader                                                              */
/* ------------------------------------------------------------------------ */

typedef struct jctx {
    char *err;
    size_t err_max;
    ck_schema *s;
} jctx;

/* Record "path: problem" and return CK_EINVAL. */
static int jfail(jctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int jfail(jctx *c, const char *path, const char *fmt, ...)
{
    if (c->err != NULL && c->err_max > 0) {
        int n = snprintf(c->err, c->err_max, "%s: ", path);
        if (n >= 0 && (size_t)n < c->err_max) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_max - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return CK_EINVAL;
}

/* A word from the file, shown in a message: printable ASCII only (others
 * become '?'), at most 32 bytes then "...". A schema holds no customer
 * value, but a message must stay one readable line. */
static const char *shown(char out[SHOWN_MAX], const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 32) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        out[o++] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
    }
    out[o] = '\0';
    return out;
}

/* "prefix.name" into out. Names are checked (<= 64 bytes of a safe set)
 * before they are used in a path. */
static void path_cat(char *out, size_t max, const char *prefix, const char *name)
{
    /* A valid name keeps a path well below `max`; an over-long one is cut
     * (checking the result also tells the compiler the cut is intended). */
    if (snprintf(out, max, "%s.%s", prefix, name) >= (int)max)
        out[max - 1] = '\0';
}

/* Check that object `o` at `path` has only the keys in `allowed` (NULL-
 * terminated); `expected` lists them for the message. */
static int only_keys(jctx *c, json_t *o, const char *path, const char *const *allowed,
                     const char *expected)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            char sk[SHOWN_MAX], p[256];
            snprintf(p, sizeof p, "%s.%s", path, shown(sk, key, strlen(key)));
            return jfail(c, p, "unknown key (expected %s)", expected);
        }
    }
    return CK_OK;
}

/* A required string member naming an enum value. */
static int get_enum(jctx *c, json_t *o, const char *path, const char *key, const char *const *names,
                    size_t n, const char *what, const char *expected, unsigned *out)
{
    char p[256], sv[SHOWN_MAX];
    json_t *v = json_object_get(o, key);
    path_cat(p, sizeof p, path, key);
    if (v == NULL)
        return jfail(c, p, "missing (expected %s)", expected);
    if (!json_is_string(v))
        return jfail(c, p, "expected a string (%s)", expected);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    *out = enum_lookup(names, n, s, len);
    if (*out == 0)
        return jfail(c, p, "unknown %s \"%s\" (expected %s)", what, shown(sv, s, len), expected);
    return CK_OK;
}

/* An optional integer member in [lo, hi]; *out keeps its default when the
 * member is absent. */
static int get_uint(jctx *c, json_t *o, const char *path, const char *key, uint32_t lo, uint32_t hi,
                    bool required, uint32_t *out)
{
    char p[256];
    json_t *v = json_object_get(o, key);
    path_cat(p, sizeof p, path, key);
    if (v == NULL) {
        if (required)
            return jfail(c, p, "missing (expected an integer from %u to %u)", lo, hi);
        return CK_OK;
    }
    json_int_t i = json_is_integer(v) ? json_integer_value(v) : -1;
    if (!json_is_integer(v) || i < (json_int_t)lo || i > (json_int_t)hi)
        return jfail(c, p, "expected an integer from %u to %u", lo, hi);
    *out = (uint32_t)i;
    return CK_OK;
}

/* A required, non-empty text member (description, benefit). */
static int get_text(jctx *c, json_t *o, const char *path, const char *key, const char **out)
{
    char p[256];
    json_t *v = json_object_get(o, key);
    path_cat(p, sizeof p, path, key);
    if (v == NULL)
        return jfail(c, p, "missing (every purpose says, in plain language, %s)",
                     strcmp(key, "benefit") == 0 ? "what the customer gains"
                                                 : "what the data serve");
    if (!json_is_string(v))
        return jfail(c, p, "expected a string");
    size_t n = json_string_length(v);
    if (n == 0)
        return jfail(c, p, "must not be empty");
    if (n > CK_SCHEMA_TEXT_MAX)
        return jfail(c, p, "longer than %d bytes", CK_SCHEMA_TEXT_MAX);
    if (!text_valid(json_string_value(v), n))
        return jfail(c, p, "must be UTF-8 text without NUL");
    *out = arena_str(c->s, json_string_value(v), n);
    return *out != NULL ? CK_OK : CK_ENOMEM;
}

static const char *const FIELD_KEYS[] = {"type", "sensitivity", "identifying", "retention_days",
                                         NULL};
static const char *const PURPOSE_KEYS[] = {
    "basis", "description", "benefit", "fields", "minimize", "channel", "tcf", "hold", NULL};
static const char *const CHANNEL_KEYS[] = {"type", "field", "cap", NULL};
static const char *const CAP_KEYS[] = {"count", "days", NULL};
static const char *const TCF_KEYS[] = {"purposes", "special_features", "vendor", "publisher", NULL};
static const char *const HOLD_KEYS[] = {"fields", "days", NULL};
static const char *const TOP_KEYS[] = {"fields", "purposes", "version", NULL};

static int parse_field(jctx *c, const ck_schema *base, const char *name, size_t name_len, json_t *o,
                       ck_schema_field *f)
{
    char path[256];
    unsigned e = 0;
    path_cat(path, sizeof path, "fields", name);
    if (!json_is_object(o))
        return jfail(c, path, "expected an object with \"type\" and \"sensitivity\"");
    CK_TRY(only_keys(c, o, path, FIELD_KEYS, "type, sensitivity, identifying, retention_days"));
    CK_TRY(get_enum(c, o, path, "type", TYPE_NAMES, CK_ARRAY_LEN(TYPE_NAMES), "type",
                    TYPES_EXPECTED, &e));
    f->type = (ck_type)e;
    CK_TRY(get_enum(c, o, path, "sensitivity", SENS_NAMES, CK_ARRAY_LEN(SENS_NAMES), "sensitivity",
                    SENS_EXPECTED, &e));
    f->sensitivity = (ck_sensitivity)e;
    json_t *ident = json_object_get(o, "identifying");
    if (ident != NULL) {
        char p[256];
        path_cat(p, sizeof p, path, "identifying");
        if (!json_is_boolean(ident))
            return jfail(c, p, "expected true or false");
        f->identifying = json_is_true(ident);
        if (f->identifying && f->type != CK_TYPE_STRING)
            return jfail(c, p, "only a string field can be identifying");
    }
    CK_TRY(get_uint(c, o, path, "retention_days", 0, CK_SCHEMA_RETENTION_MAX, false,
                    &f->retention_days));
    f->name = arena_str(c->s, name, name_len);
    if (f->name == NULL)
        return CK_ENOMEM;
    f->name_len = name_len;

    /* Same name and same type: the same field, the same id. */
    const ck_schema_field *old = ck_schema__field(base, name, name_len);
    if (old != NULL && old->type == f->type) {
        f->id = old->id;
    } else {
        if (c->s->next_field_id > CK_SCHEMA_FIELD_ID_MAX) {
            jfail(c, path, "no field id left (all %u have been given out once)",
                  CK_SCHEMA_FIELD_ID_MAX);
            return CK_ELIMIT;
        }
        f->id = (uint16_t)c->s->next_field_id++;
    }
    return CK_OK;
}

/* Parse a decimal int64 of exactly `n` bytes ("-" allowed). */
static bool parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;
    if (n > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == n || n - i > 19)
        return false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

/* One minimisation: "year", "domain", "prefix:N", "band:E1,E2,...". */
static int parse_min(jctx *c, const char *path, json_t *v, const ck_schema_field *f,
                     ck_schema_min *m)
{
    char sv[SHOWN_MAX];
    if (!json_is_string(v))
        return jfail(c, path, "expected a string (%s)", MIN_EXPECTED);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    const char *needs = NULL;

    if (n == 4 && memcmp(s, "year", 4) == 0) {
        m->kind = CK_MIN_YEAR;
        needs = "\"year\" needs a date or timestamp field";
    } else if (n == 6 && memcmp(s, "domain", 6) == 0) {
        m->kind = CK_MIN_DOMAIN;
        needs = "\"domain\" needs a string field";
    } else if (n >= 6 && memcmp(s, "prefix", 6) == 0 && (n == 6 || s[6] == ':')) {
        int64_t p;
        if (n == 6 || !parse_i64(s + 7, n - 7, &p) || p < 1 || p > CK_SCHEMA_PREFIX_MAX)
            return jfail(c, path, "\"prefix:N\" needs N from 1 to %d", CK_SCHEMA_PREFIX_MAX);
        m->kind = CK_MIN_PREFIX;
        m->prefix = (uint32_t)p;
        needs = "\"prefix\" needs a string field";
    } else if (n >= 4 && memcmp(s, "band", 4) == 0 && (n == 4 || s[4] == ':')) {
        int64_t edges[CK_SCHEMA_BAND_EDGES_MAX];
        uint32_t k = 0;
        size_t i = 5;
        if (n <= 5)
            return jfail(c, path, "\"band:E1,E2,...\" needs at least one edge");
        while (i <= n) {
            const char *comma = memchr(s + i, ',', n - i);
            size_t end = comma != NULL ? (size_t)(comma - s) : n;
            if (k == CK_SCHEMA_BAND_EDGES_MAX)
                return jfail(c, path, "more than %d band edges", CK_SCHEMA_BAND_EDGES_MAX);
            if (!parse_i64(s + i, end - i, &edges[k]) || (k > 0 && edges[k - 1] >= edges[k]))
                return jfail(c, path, "band edges must be integers in strictly ascending order");
            k++;
            i = end + 1;
        }
        m->kind = CK_MIN_BAND;
        m->nedges = k;
        m->edges = ck_arena__dup(&c->s->arena, edges, k * sizeof edges[0]);
        if (m->edges == NULL)
            return CK_ENOMEM;
        needs = "\"band\" needs an int or float field";
    } else {
        return jfail(c, path, "unknown minimisation \"%s\" (expected %s)", shown(sv, s, n),
                     MIN_EXPECTED);
    }
    if (!min_fits(m, f->type))
        return jfail(c, path, "%s", needs);
    return CK_OK;
}

static int parse_channel(jctx *c, const char *ppath, json_t *o, ck_schema_purpose *p,
                         const ck_schema_field *fields, uint32_t nfields)
{
    char path[256], fp[256], sv[SHOWN_MAX];
    unsigned e;
    path_cat(path, sizeof path, ppath, "channel");
    if (!json_is_object(o))
        return jfail(c, path, "expected an object with \"type\", \"field\" and \"cap\"");
    CK_TRY(only_keys(c, o, path, CHANNEL_KEYS, "type, field, cap"));
    CK_TRY(get_enum(c, o, path, "type", CHANNEL_NAMES, CK_ARRAY_LEN(CHANNEL_NAMES), "channel type",
                    CHANNEL_EXPECTED, &e));
    p->channel.type = (ck_channel_type)e;

    json_t *fv = json_object_get(o, "field");
    path_cat(fp, sizeof fp, path, "field");
    if (fv == NULL)
        return jfail(c, fp, "missing (the field that holds the contact address)");
    if (!json_is_string(fv))
        return jfail(c, fp, "expected a field name");
    const char *fname = json_string_value(fv);
    size_t flen = json_string_length(fv);
    const ck_schema_field *f = NULL;
    for (uint32_t i = 0; i < nfields && f == NULL; i++)
        if (name_cmp(fields[i].name, fields[i].name_len, fname, flen) == 0)
            f = &fields[i];
    if (f == NULL)
        return jfail(c, fp, "unknown field \"%s\"", shown(sv, fname, flen));
    if (ck_schema__purpose_field(p, f->id) < 0)
        return jfail(c, fp, "field is not in the purpose's fields");
    if (f->type != CK_TYPE_STRING)
        return jfail(c, fp, "a channel needs a string field");
    p->channel.field_id = f->id;

    json_t *cap = json_object_get(o, "cap");
    char cp[256];
    path_cat(cp, sizeof cp, path, "cap");
    if (cap == NULL)
        return jfail(c, cp, "missing (the pressure cap: {\"count\": N, \"days\": D})");
    if (!json_is_object(cap))
        return jfail(c, cp, "expected an object {\"count\": N, \"days\": D}");
    CK_TRY(only_keys(c, cap, cp, CAP_KEYS, "count, days"));
    CK_TRY(get_uint(c, cap, cp, "count", 1, CK_SCHEMA_CAP_COUNT_MAX, true, &p->channel.cap_count));
    CK_TRY(get_uint(c, cap, cp, "days", 1, CK_SCHEMA_CAP_DAYS_MAX, true, &p->channel.cap_days));
    return CK_OK;
}

/* A set of TCF ids (1..max) given as an array of integers, into a bitmask
 * (bit id - 1). `what` names one id in messages ("TCF purpose"). */
static int get_tcf_ids(jctx *c, json_t *o, const char *path, const char *key, unsigned max,
                       bool required, const char *what, uint32_t *out)
{
    char p[256];
    json_t *v = json_object_get(o, key);
    path_cat(p, sizeof p, path, key);
    *out = 0;
    if (v == NULL)
        return required
                   ? jfail(c, p, "missing (the %ss this purpose stands for, e.g. [1, 4])", what)
                   : CK_OK;
    if (!json_is_array(v))
        return jfail(c, p, "expected an array of %s ids (1 to %u)", what, max);
    size_t n = json_array_size(v);
    if (required && n == 0)
        return jfail(c, p, "at least one %s (ids 1 to %u)", what, max);
    for (size_t i = 0; i < n; i++) {
        char ip[300];
        json_t *e = json_array_get(v, i);
        json_int_t id = json_is_integer(e) ? json_integer_value(e) : 0;
        snprintf(ip, sizeof ip, "%s[%zu]", p, i);
        if (id < 1 || id > (json_int_t)max)
            return jfail(c, ip, "%s ids are 1 to %u", what, max);
        uint32_t bit = 1u << (unsigned)(id - 1);
        if (*out & bit)
            return jfail(c, ip, "%s %u is listed twice", what, (unsigned)id);
        *out |= bit;
    }
    return CK_OK;
}

/* "tcf": {"purposes": [...], "special_features": [...], "vendor": N} or
 * {"purposes": [...], "publisher": true}. */
static int parse_tcf(jctx *c, const char *ppath, json_t *o, ck_schema_purpose *p)
{
    char path[256], pp[256];
    uint32_t v;
    ck_schema_tcf *t = &p->tcf;
    path_cat(path, sizeof path, ppath, "tcf");
    if (!json_is_object(o))
        return jfail(c, path, "expected an object {\"purposes\": [...], ...}");
    CK_TRY(only_keys(c, o, path, TCF_KEYS, "purposes, special_features, vendor, publisher"));
    if (p->basis != CK_BASIS_CONSENT && p->basis != CK_BASIS_LEGITIMATE_INTEREST)
        return jfail(c, path,
                     "only a consent or legitimate_interest purpose maps TCF signals (this "
                     "one's basis is %s)",
                     ck_schema__basis_name(p->basis));
    CK_TRY(get_tcf_ids(c, o, path, "purposes", CK_SCHEMA_TCF_PURPOSE_MAX, true, "TCF purpose",
                       &t->purposes));
    CK_TRY(get_tcf_ids(c, o, path, "special_features", CK_SCHEMA_TCF_FEATURE_MAX, false,
                       "TCF special feature", &v));
    t->special_features = (uint16_t)v;
    v = 0;
    CK_TRY(get_uint(c, o, path, "vendor", 1, CK_SCHEMA_TCF_VENDOR_MAX, false, &v));
    t->vendor = (uint16_t)v;
    json_t *pub = json_object_get(o, "publisher");
    if (pub != NULL) {
        path_cat(pp, sizeof pp, path, "publisher");
        if (!json_is_boolean(pub))
            return jfail(c, pp, "expected true or false");
        t->publisher = json_is_true(pub);
        if (t->publisher && t->vendor != 0)
            return jfail(c, path, "give vendor or publisher, not both");
    }
    t->set = true;
    return CK_OK;
}

/* The fields, as parsed so far (unsorted), are searched linearly here: the
 * loader runs once per apply and the lists are small. */
static const ck_schema_field *find_parsed(const ck_schema_field *fields, uint32_t n,
                                          const char *name, size_t len)
{
    for (uint32_t i = 0; i < n; i++)
        if (name_cmp(fields[i].name, fields[i].name_len, name, len) == 0)
            return &fields[i];
    return NULL;
}

/* Element i of the field-name array `fl` at `path`: the field it names,
 * which ids[0..i) must not hold already; NULL, with *rc set, if it is not
 * one. `ip` receives the element's path (for the caller's own checks). */
static const ck_schema_field *array_field(jctx *c, json_t *fl, size_t i, const char *path,
                                          const ck_schema_field *fields, uint32_t nfields,
                                          const uint16_t *ids, char ip[300], int *rc)
{
    char sv[SHOWN_MAX];
    json_t *v = json_array_get(fl, i);
    snprintf(ip, 300, "%s[%zu]", path, i);
    const ck_schema_field *f = NULL;
    if (!json_is_string(v)) {
        *rc = jfail(c, ip, "expected a field name");
        return NULL;
    }
    const char *fname = json_string_value(v);
    size_t flen = json_string_length(v);
    f = find_parsed(fields, nfields, fname, flen);
    if (f == NULL) {
        *rc = jfail(c, ip, "unknown field \"%s\"", shown(sv, fname, flen));
        return NULL;
    }
    for (size_t k = 0; k < i; k++) {
        if (ids[k] == f->id) {
            *rc = jfail(c, ip, "field \"%s\" is listed twice", f->name);
            return NULL;
        }
    }
    return f;
}

/* "hold": {"fields": [...], "days": N}: what an erasure keeps, and for how
 * long, for a legal obligation. Parsed after the purpose's fields. */
static int parse_hold(jctx *c, const char *ppath, json_t *o, ck_schema_purpose *p,
                      const ck_schema_field *fields, uint32_t nfields)
{
    char path[256], fp[256];
    path_cat(path, sizeof path, ppath, "hold");
    if (!json_is_object(o))
        return jfail(c, path, "expected an object {\"fields\": [...], \"days\": N}");
    CK_TRY(only_keys(c, o, path, HOLD_KEYS, "fields, days"));
    if (p->basis != CK_BASIS_LEGAL_OBLIGATION)
        return jfail(c, path,
                     "only a legal_obligation purpose keeps fields after an erasure (this "
                     "one's basis is %s)",
                     ck_schema__basis_name(p->basis));
    json_t *fl = json_object_get(o, "fields");
    path_cat(fp, sizeof fp, path, "fields");
    if (fl == NULL)
        return jfail(c, fp, "missing (the fields an erasure keeps for this obligation)");
    if (!json_is_array(fl))
        return jfail(c, fp, "expected an array of field names");
    size_t n = json_array_size(fl);
    if (n == 0)
        return jfail(c, fp, "a hold keeps at least one field");
    if (n > p->nfields)
        return jfail(c, fp, "more names than the purpose has fields");
    uint16_t *ids = ck_arena__alloc(&c->s->arena, n * sizeof *ids);
    if (ids == NULL)
        return CK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char ip[300];
        int rc;
        const ck_schema_field *f = array_field(c, fl, i, fp, fields, nfields, ids, ip, &rc);
        if (f == NULL)
            return rc;
        if (ck_schema__purpose_field(p, f->id) < 0)
            return jfail(c, ip, "field is not in the purpose's fields");
        ids[i] = f->id;
    }
    CK_TRY(get_uint(c, o, path, "days", 1, CK_SCHEMA_HOLD_DAYS_MAX, true, &p->hold.days));
    p->hold.nfields = (uint32_t)n;
    p->hold.field_ids = ids;
    return CK_OK;
}

static int parse_purpose(jctx *c, const char *name, size_t name_len, json_t *o,
                         ck_schema_purpose *p, const ck_schema_field *fields, uint32_t nfields)
{
    char path[256], sp[256], sv[SHOWN_MAX];
    unsigned e = 0;
    path_cat(path, sizeof path, "purposes", name);
    if (!json_is_object(o))
        return jfail(c, path, "expected an object");
    CK_TRY(only_keys(c, o, path, PURPOSE_KEYS,
                     "basis, description, benefit, fields, minimize, channel, tcf, hold"));
    CK_TRY(get_enum(c, o, path, "basis", BASIS_NAMES, CK_ARRAY_LEN(BASIS_NAMES), "basis",
                    BASIS_EXPECTED, &e));
    p->basis = (ck_basis)e;
    CK_TRY(get_text(c, o, path, "description", &p->description));
    CK_TRY(get_text(c, o, path, "benefit", &p->benefit));
    p->name = arena_str(c->s, name, name_len);
    if (p->name == NULL)
        return CK_ENOMEM;
    p->name_len = name_len;

    json_t *fl = json_object_get(o, "fields");
    path_cat(sp, sizeof sp, path, "fields");
    if (fl == NULL)
        return jfail(c, sp, "missing (the fields this purpose may use)");
    if (!json_is_array(fl))
        return jfail(c, sp, "expected an array of field names");
    size_t n = json_array_size(fl);
    if (n == 0)
        return jfail(c, sp, "a purpose needs at least one field");
    if (n > nfields)
        return jfail(c, sp, "more names than the schema has fields");
    uint16_t *ids = ck_arena__alloc(&c->s->arena, n * sizeof *ids);
    ck_schema_min *min = ck_arena__alloc(&c->s->arena, n * sizeof *min);
    if (ids == NULL || min == NULL)
        return CK_ENOMEM;
    memset(min, 0, n * sizeof *min);
    for (size_t i = 0; i < n; i++) {
        char ip[300];
        int rc;
        const ck_schema_field *f = array_field(c, fl, i, sp, fields, nfields, ids, ip, &rc);
        if (f == NULL)
            return rc;
        ids[i] = f->id;
    }
    p->nfields = (uint32_t)n;
    p->field_ids = ids;
    p->min = min;

    json_t *mz = json_object_get(o, "minimize");
    if (mz != NULL) {
        path_cat(sp, sizeof sp, path, "minimize");
        if (!json_is_object(mz))
            return jfail(c, sp, "expected an object {\"field\": \"minimisation\"}");
        const char *key;
        json_t *v;
        json_object_foreach(mz, key, v)
        {
            char mp[300];
            size_t klen = strlen(key);
            snprintf(mp, sizeof mp, "%s.%s", sp, shown(sv, key, klen));
            const ck_schema_field *f = find_parsed(fields, nfields, key, klen);
            if (f == NULL)
                return jfail(c, mp, "unknown field");
            int at = ck_schema__purpose_field(p, f->id);
            if (at < 0)
                return jfail(c, mp, "field is not in the purpose's fields");
            CK_TRY(parse_min(c, mp, v, f, &min[at]));
        }
    }
    json_t *ch = json_object_get(o, "channel");
    if (ch != NULL)
        CK_TRY(parse_channel(c, path, ch, p, fields, nfields));
    json_t *tcf = json_object_get(o, "tcf");
    if (tcf != NULL)
        CK_TRY(parse_tcf(c, path, tcf, p));
    json_t *hold = json_object_get(o, "hold");
    if (hold != NULL)
        CK_TRY(parse_hold(c, path, hold, p, fields, nfields));
    return CK_OK;
}

static int parse_root(jctx *c, const ck_schema *base, json_t *root)
{
    ck_schema *s = c->s;
    char sk[SHOWN_MAX];
    const char *key;
    json_t *v;

    if (!json_is_object(root))
        return jfail(c, "schema", "expected an object {\"fields\": {...}, \"purposes\": {...}}");
    json_object_foreach(root, key, v)
    {
        bool ok = false;
        for (size_t i = 0; TOP_KEYS[i] != NULL && !ok; i++)
            ok = strcmp(key, TOP_KEYS[i]) == 0;
        if (!ok)
            return jfail(c, shown(sk, key, strlen(key)), "unknown key (expected fields, purposes)");
    }
    v = json_object_get(root, "version");
    if (v != NULL && !(json_is_integer(v) && json_integer_value(v) >= 0))
        return jfail(c, "version", "expected a non-negative integer (it is ignored)");

    json_t *fo = json_object_get(root, "fields");
    if (fo == NULL)
        return jfail(c, "fields", "missing (a schema needs at least one field)");
    if (!json_is_object(fo))
        return jfail(c, "fields", "expected an object {\"name\": {\"type\": ...}}");
    size_t nf = json_object_size(fo);
    if (nf == 0)
        return jfail(c, "fields", "a schema needs at least one field");
    if (nf > CK_SCHEMA_FIELDS_MAX)
        return jfail(c, "fields", "more than %d fields", CK_SCHEMA_FIELDS_MAX);
    ck_schema_field *fields = ck_arena__alloc(&s->arena, nf * sizeof *fields);
    if (fields == NULL)
        return CK_ENOMEM;
    memset(fields, 0, nf * sizeof *fields);
    uint32_t i = 0;
    json_object_foreach(fo, key, v)
    {
        size_t klen = strlen(key);
        if (!name_valid(key, klen))
            return jfail(c, "fields",
                         "invalid field name \"%s\" (1 to %d bytes of a-z, 0-9, '_', '.', '-')",
                         shown(sk, key, klen), CK_SCHEMA_NAME_MAX);
        CK_TRY(parse_field(c, base, key, klen, v, &fields[i]));
        i++;
    }
    s->nfields = (uint32_t)nf;

    json_t *po = json_object_get(root, "purposes");
    ck_schema_purpose *purposes = NULL;
    size_t np = 0;
    if (po != NULL) {
        if (!json_is_object(po))
            return jfail(c, "purposes", "expected an object {\"name\": {\"basis\": ...}}");
        np = json_object_size(po);
        if (np > CK_SCHEMA_PURPOSES_MAX)
            return jfail(c, "purposes", "more than %d purposes", CK_SCHEMA_PURPOSES_MAX);
        purposes = ck_arena__alloc(&s->arena, (np > 0 ? np : 1) * sizeof *purposes);
        if (purposes == NULL)
            return CK_ENOMEM;
        memset(purposes, 0, (np > 0 ? np : 1) * sizeof *purposes);
        i = 0;
        json_object_foreach(po, key, v)
        {
            size_t klen = strlen(key);
            if (!name_valid(key, klen))
                return jfail(c, "purposes",
                             "invalid purpose name \"%s\" (1 to %d bytes of a-z, 0-9, '_', "
                             "'.', '-')",
                             shown(sk, key, klen), CK_SCHEMA_NAME_MAX);
            CK_TRY(parse_purpose(c, key, klen, v, &purposes[i], fields, s->nfields));
            i++;
        }
    }
    s->npurposes = (uint32_t)np;
    int rc = finish(s, fields, purposes);
    if (rc == CK_EFORMAT) {
        /* Every rule was checked above with a message: this is a bug. */
        jfail(c, "schema", "internal error: the loader built an inconsistent schema");
        return CK_EINTERNAL;
    }
    return rc;
}

int ck_schema__from_json(ck_schema **out, const ck_schema *base, const char *json, size_t len,
                         char *err, size_t err_max)
{
    int rc;
    json_t *root = NULL;
    json_error_t je;
    jctx c = {err, err_max, NULL};

    *out = NULL;
    if (err != NULL && err_max > 0)
        err[0] = '\0';
    if (json == NULL || len == 0)
        return jfail(&c, "schema", "the file is empty");
    if (len > CK_SCHEMA_JSON_MAX) {
        jfail(&c, "schema", "the file is larger than %u bytes", CK_SCHEMA_JSON_MAX);
        return CK_ELIMIT;
    }
    c.s = schema_new();
    if (c.s == NULL)
        return CK_ENOMEM;
    c.s->version = base != NULL ? base->version + 1 : 1;
    c.s->next_field_id = base != NULL ? base->next_field_id : 1;

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        char where[64];
        snprintf(where, sizeof where, "line %d, column %d", je.line, je.column);
        rc = jfail(&c, where, "%s", je.text);
        goto cleanup;
    }
    CK_GUARD(parse_root(&c, base, root));
    *out = c.s;
    c.s = NULL;
    rc = CK_OK;
cleanup:
    json_decref(root);
    ck_schema__release(c.s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* JSON output                                                              */
/* ------------------------------------------------------------------------ */

static json_t *min_json(const ck_schema_min *m)
{
    char buf[32 + CK_SCHEMA_BAND_EDGES_MAX * 21];
    switch (m->kind) {
    case CK_MIN_YEAR:
        return json_string("year");
    case CK_MIN_DOMAIN:
        return json_string("domain");
    case CK_MIN_PREFIX:
        snprintf(buf, sizeof buf, "prefix:%u", (unsigned)m->prefix);
        return json_string(buf);
    case CK_MIN_BAND: {
        size_t o = (size_t)snprintf(buf, sizeof buf, "band:");
        for (uint32_t i = 0; i < m->nedges && o < sizeof buf; i++)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%lld", i > 0 ? "," : "",
                                  (long long)m->edges[i]);
        return json_string(buf);
    }
    case CK_MIN_NONE:
        break;
    }
    return NULL;
}

/* json_object_set_new that remembers a failure in *ok. */
static void jset(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (o == NULL || v == NULL || json_object_set_new(o, key, v) != 0)
        *ok = false;
}

json_t *ck_schema__purpose_json(const ck_schema *s, const ck_schema_purpose *p, bool *ok)
{
    json_t *o = json_object();
    json_t *fl = json_array();
    json_t *mz = NULL;
    jset(o, "basis", json_string(ck_schema__basis_name(p->basis)), ok);
    jset(o, "description", json_string(p->description), ok);
    jset(o, "benefit", json_string(p->benefit), ok);
    for (uint32_t i = 0; i < p->nfields; i++) {
        const ck_schema_field *f = ck_schema__field_by_id(s, p->field_ids[i]);
        if (fl == NULL || json_array_append_new(fl, json_string(f->name)) != 0)
            *ok = false;
        if (p->min[i].kind != CK_MIN_NONE) {
            if (mz == NULL && (mz = json_object()) == NULL)
                *ok = false;
            jset(mz, f->name, min_json(&p->min[i]), ok);
        }
    }
    jset(o, "fields", fl, ok);
    if (mz != NULL)
        jset(o, "minimize", mz, ok);
    if (p->channel.type != CK_CHANNEL_NONE) {
        const ck_schema_field *f = ck_schema__field_by_id(s, p->channel.field_id);
        jset(o, "channel",
             json_pack("{s:s, s:s, s:{s:I, s:I}}", "type", ck_schema__channel_name(p->channel.type),
                       "field", f->name, "cap", "count", (json_int_t)p->channel.cap_count, "days",
                       (json_int_t)p->channel.cap_days),
             ok);
    }
    if (p->tcf.set) {
        json_t *t = json_object(), *pa = json_array(), *sa = json_array();
        for (unsigned id = 1; id <= CK_SCHEMA_TCF_PURPOSE_MAX; id++)
            if ((p->tcf.purposes >> (id - 1)) & 1u)
                if (pa == NULL || json_array_append_new(pa, json_integer(id)) != 0)
                    *ok = false;
        for (unsigned id = 1; id <= CK_SCHEMA_TCF_FEATURE_MAX; id++)
            if ((p->tcf.special_features >> (id - 1)) & 1u)
                if (sa == NULL || json_array_append_new(sa, json_integer(id)) != 0)
                    *ok = false;
        jset(t, "purposes", pa, ok);
        jset(t, "special_features", sa, ok);
        if (p->tcf.vendor != 0)
            jset(t, "vendor", json_integer(p->tcf.vendor), ok);
        if (p->tcf.publisher)
            jset(t, "publisher", json_true(), ok);
        jset(o, "tcf", t, ok);
    }
    if (p->hold.nfields > 0) {
        json_t *h = json_object(), *ha = json_array();
        for (uint32_t i = 0; i < p->hold.nfields; i++) {
            const ck_schema_field *f = ck_schema__field_by_id(s, p->hold.field_ids[i]);
            if (ha == NULL || json_array_append_new(ha, json_string(f->name)) != 0)
                *ok = false;
        }
        jset(h, "fields", ha, ok);
        jset(h, "days", json_integer((json_int_t)p->hold.days), ok);
        jset(o, "hold", h, ok);
    }
    return o;
}

int ck_schema__to_json(ck_buf *out, const ck_schema *s)
{
    int rc;
    bool ok = true;
    char *text = NULL;
    json_t *root = json_object();
    json_t *fo = json_object();
    json_t *po = json_object();
    jset(root, "version", json_integer((json_int_t)s->version), &ok);
    jset(root, "fields", fo, &ok);
    jset(root, "purposes", po, &ok);
    for (uint32_t i = 0; i < s->nfields && ok; i++) {
        const ck_schema_field *f = &s->fields[i];
        jset(fo, f->name,
             json_pack("{s:s, s:s, s:b, s:I}", "type", ck_schema__type_name(f->type), "sensitivity",
                       ck_schema__sensitivity_name(f->sensitivity), "identifying",
                       (int)f->identifying, "retention_days", (json_int_t)f->retention_days),
             &ok);
    }
    for (uint32_t i = 0; i < s->npurposes && ok; i++)
        jset(po, s->purposes[i].name, ck_schema__purpose_json(s, &s->purposes[i], &ok), &ok);
    CK_ENSURE(ok, CK_ENOMEM);
    text = json_dumps(root, JSON_COMPACT);
    CK_ENSURE(text != NULL, CK_ENOMEM);
    CK_GUARD(ck_buf__append(out, text, strlen(text)));
    rc = CK_OK;
cleanup:
    ck_out__json_text_free(text);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The msgpack record                                                       */
/*                                                                          */
/* map {"v": version, "next": next_field_id,                                */
/*      "fields":   [[id, name, type, sensitivity, identifying, retention]], */
/*      "purposes": [[name, basis, description, benefit, [field ids],      */
/*                    [min per field], channel (, tcf)]]}                   */
/* min: [0] | [1] | [2, N] | [3] | [4, [edges]]; channel: nil |             */
/* [type, field id, cap count, cap days]; tcf, only for a purpose that      */
/* declares it (8 elements; 7 otherwise, as before it existed):             */
/* [purposes bitmask, special features bitmask, vendor (0 none),            */
/* publisher (bool)]; hold, only for a purpose that declares one (9         */
/* elements, the 8th then nil: a hold's purpose has no tcf):               */
/* [[field ids], days]. Fields and purposes in name order, so that the     */
/* encoding is canonical.                                                   */
/* ------------------------------------------------------------------------ */

int ck_schema__encode(ck_buf *out, const ck_schema *s)
{
    ck_mp_writer w;
    ck_mp_writer__init(&w, out);
    ck_mp_writer__map(&w, 4);
    ck_mp_writer__cstr(&w, "v");
    ck_mp_writer__u64(&w, s->version);
    ck_mp_writer__cstr(&w, "next");
    ck_mp_writer__u64(&w, s->next_field_id);
    ck_mp_writer__cstr(&w, "fields");
    ck_mp_writer__array(&w, s->nfields);
    for (uint32_t i = 0; i < s->nfields; i++) {
        const ck_schema_field *f = &s->fields[i];
        ck_mp_writer__array(&w, 6);
        ck_mp_writer__u64(&w, f->id);
        ck_mp_writer__str(&w, f->name, f->name_len);
        ck_mp_writer__u64(&w, (uint64_t)f->type);
        ck_mp_writer__u64(&w, (uint64_t)f->sensitivity);
        ck_mp_writer__bool(&w, f->identifying);
        ck_mp_writer__u64(&w, f->retention_days);
    }
    ck_mp_writer__cstr(&w, "purposes");
    ck_mp_writer__array(&w, s->npurposes);
    for (uint32_t i = 0; i < s->npurposes; i++) {
        const ck_schema_purpose *p = &s->purposes[i];
        ck_mp_writer__array(&w, p->hold.nfields > 0 ? 9 : p->tcf.set ? 8 : 7);
        ck_mp_writer__str(&w, p->name, p->name_len);
        ck_mp_writer__u64(&w, (uint64_t)p->basis);
        ck_mp_writer__cstr(&w, p->description);
        ck_mp_writer__cstr(&w, p->benefit);
        ck_mp_writer__array(&w, p->nfields);
        for (uint32_t j = 0; j < p->nfields; j++)
            ck_mp_writer__u64(&w, p->field_ids[j]);
        ck_mp_writer__array(&w, p->nfields);
        for (uint32_t j = 0; j < p->nfields; j++) {
            const ck_schema_min *m = &p->min[j];
            ck_mp_writer__array(&w, m->kind == CK_MIN_PREFIX || m->kind == CK_MIN_BAND ? 2 : 1);
            ck_mp_writer__u64(&w, (uint64_t)m->kind);
            if (m->kind == CK_MIN_PREFIX)
                ck_mp_writer__u64(&w, m->prefix);
            if (m->kind == CK_MIN_BAND) {
                ck_mp_writer__array(&w, m->nedges);
                for (uint32_t k = 0; k < m->nedges; k++)
                    ck_mp_writer__i64(&w, m->edges[k]);
            }
        }
        if (p->channel.type == CK_CHANNEL_NONE) {
            msgpack_pack_nil(&w.pk);
        } else {
            ck_mp_writer__array(&w, 4);
            ck_mp_writer__u64(&w, (uint64_t)p->channel.type);
            ck_mp_writer__u64(&w, p->channel.field_id);
            ck_mp_writer__u64(&w, p->channel.cap_count);
            ck_mp_writer__u64(&w, p->channel.cap_days);
        }
        if (p->tcf.set) {
            ck_mp_writer__array(&w, 4);
            ck_mp_writer__u64(&w, p->tcf.purposes);
            ck_mp_writer__u64(&w, p->tcf.special_features);
            ck_mp_writer__u64(&w, p->tcf.vendor);
            ck_mp_writer__bool(&w, p->tcf.publisher);
        } else if (p->hold.nfields > 0) {
            msgpack_pack_nil(&w.pk);
        }
        if (p->hold.nfields > 0) {
            ck_mp_writer__array(&w, 2);
            ck_mp_writer__array(&w, p->hold.nfields);
            for (uint32_t j = 0; j < p->hold.nfields; j++)
                ck_mp_writer__u64(&w, p->hold.field_ids[j]);
            ck_mp_writer__u64(&w, p->hold.days);
        }
    }
    return w.rc;
}

/* Read a u32 no larger than `max`. */
static int mp_uint(ck_mp *r, uint32_t max, uint32_t *out)
{
    CK_TRY(ck_mp__u32(r, out));
    return *out <= max ? CK_OK : CK_EFORMAT;
}

/* Read an array header of exactly `n` elements. */
static int mp_tuple(ck_mp *r, uint32_t n)
{
    uint32_t got;
    CK_TRY(ck_mp__array(r, &got));
    return got == n ? CK_OK : CK_EFORMAT;
}

/* A string into the arena (NUL-terminated), 1..max bytes, no NUL inside. */
static int mp_string(ck_mp *r, ck_schema *s, size_t max, const char **out, size_t *len)
{
    const char *p;
    uint32_t n;
    CK_TRY(ck_mp__str(r, &p, &n));
    if (n < 1 || n > max || memchr(p, '\0', n) != NULL)
        return CK_EFORMAT;
    *out = arena_str(s, p, n);
    if (len != NULL)
        *len = n;
    return *out != NULL ? CK_OK : CK_ENOMEM;
}

static int decode_fields(ck_mp *r, ck_schema *s, ck_schema_field **out)
{
    uint32_t n, v;
    CK_TRY(ck_mp__array(r, &n));
    if (n < 1 || n > CK_SCHEMA_FIELDS_MAX)
        return CK_EFORMAT;
    ck_schema_field *fields = ck_arena__alloc(&s->arena, n * sizeof *fields);
    if (fields == NULL)
        return CK_ENOMEM;
    memset(fields, 0, n * sizeof *fields);
    for (uint32_t i = 0; i < n; i++) {
        ck_schema_field *f = &fields[i];
        CK_TRY(mp_tuple(r, 6));
        CK_TRY(mp_uint(r, CK_SCHEMA_FIELD_ID_MAX, &v));
        f->id = (uint16_t)v;
        CK_TRY(mp_string(r, s, CK_SCHEMA_NAME_MAX, &f->name, &f->name_len));
        CK_TRY(mp_uint(r, CK_TYPE_LIST, &v));
        f->type = (ck_type)v;
        CK_TRY(mp_uint(r, CK_SENS_SPECIAL, &v));
        f->sensitivity = (ck_sensitivity)v;
        CK_TRY(ck_mp__bool(r, &f->identifying));
        CK_TRY(mp_uint(r, CK_SCHEMA_RETENTION_MAX, &f->retention_days));
    }
    s->nfields = n;
    *out = fields;
    return CK_OK;
}

static int decode_min(ck_mp *r, ck_schema *s, ck_schema_min *m)
{
    uint32_t n, v;
    CK_TRY(ck_mp__array(r, &n));
    if (n < 1 || n > 2)
        return CK_EFORMAT;
    CK_TRY(mp_uint(r, CK_MIN_BAND, &v));
    m->kind = (ck_min_kind)v;
    if (n != (m->kind == CK_MIN_PREFIX || m->kind == CK_MIN_BAND ? 2u : 1u))
        return CK_EFORMAT;
    if (m->kind == CK_MIN_PREFIX)
        CK_TRY(mp_uint(r, CK_SCHEMA_PREFIX_MAX, &m->prefix));
    if (m->kind == CK_MIN_BAND) {
        CK_TRY(ck_mp__array(r, &m->nedges));
        if (m->nedges < 1 || m->nedges > CK_SCHEMA_BAND_EDGES_MAX)
            return CK_EFORMAT;
        int64_t *e = ck_arena__alloc(&s->arena, m->nedges * sizeof *e);
        if (e == NULL)
            return CK_ENOMEM;
        for (uint32_t k = 0; k < m->nedges; k++)
            CK_TRY(ck_mp__i64(r, &e[k]));
        m->edges = e;
    }
    return CK_OK;
}

static int decode_purposes(ck_mp *r, ck_schema *s, ck_schema_purpose **out)
{
    uint32_t n, v, nf, nel;
    CK_TRY(ck_mp__array(r, &n));
    if (n > CK_SCHEMA_PURPOSES_MAX)
        return CK_EFORMAT;
    ck_schema_purpose *ps = ck_arena__alloc(&s->arena, (n > 0 ? n : 1) * sizeof *ps);
    if (ps == NULL)
        return CK_ENOMEM;
    memset(ps, 0, (n > 0 ? n : 1) * sizeof *ps);
    for (uint32_t i = 0; i < n; i++) {
        ck_schema_purpose *p = &ps[i];
        /* 7 elements, 8 with a TCF mapping, 9 with a hold (the 8th nil). */
        CK_TRY(ck_mp__array(r, &nel));
        if (nel < 7 || nel > 9)
            return CK_EFORMAT;
        CK_TRY(mp_string(r, s, CK_SCHEMA_NAME_MAX, &p->name, &p->name_len));
        CK_TRY(mp_uint(r, CK_BASIS_LEGITIMATE_INTEREST, &v));
        p->basis = (ck_basis)v;
        CK_TRY(mp_string(r, s, CK_SCHEMA_TEXT_MAX, &p->description, NULL));
        CK_TRY(mp_string(r, s, CK_SCHEMA_TEXT_MAX, &p->benefit, NULL));
        CK_TRY(ck_mp__array(r, &nf));
        if (nf < 1 || nf > CK_SCHEMA_FIELDS_MAX)
            return CK_EFORMAT;
        uint16_t *ids = ck_arena__alloc(&s->arena, nf * sizeof *ids);
        ck_schema_min *min = ck_arena__alloc(&s->arena, nf * sizeof *min);
        if (ids == NULL || min == NULL)
            return CK_ENOMEM;
        memset(min, 0, nf * sizeof *min);
        for (uint32_t j = 0; j < nf; j++) {
            CK_TRY(mp_uint(r, CK_SCHEMA_FIELD_ID_MAX, &v));
            ids[j] = (uint16_t)v;
        }
        CK_TRY(mp_tuple(r, nf));
        for (uint32_t j = 0; j < nf; j++)
            CK_TRY(decode_min(r, s, &min[j]));
        p->nfields = nf;
        p->field_ids = ids;
        p->min = min;
        ck_mp_kind kind;
        CK_TRY(ck_mp__peek(r, &kind));
        if (kind == CK_MP_NIL) {
            CK_TRY(ck_mp__nil(r));
        } else {
            CK_TRY(mp_tuple(r, 4));
            CK_TRY(mp_uint(r, CK_CHANNEL_POST, &v));
            if (v == CK_CHANNEL_NONE)
                return CK_EFORMAT;
            p->channel.type = (ck_channel_type)v;
            CK_TRY(mp_uint(r, CK_SCHEMA_FIELD_ID_MAX, &v));
            p->channel.field_id = (uint16_t)v;
            CK_TRY(mp_uint(r, CK_SCHEMA_CAP_COUNT_MAX, &p->channel.cap_count));
            CK_TRY(mp_uint(r, CK_SCHEMA_CAP_DAYS_MAX, &p->channel.cap_days));
        }
        if (nel == 9) {
            CK_TRY(ck_mp__nil(r));
        } else if (nel == 8) {
            /* finish() checks the rest (ranges, basis, vendor xor publisher). */
            CK_TRY(mp_tuple(r, 4));
            CK_TRY(mp_uint(r, UINT32_MAX, &p->tcf.purposes));
            CK_TRY(mp_uint(r, UINT16_MAX, &v));
            p->tcf.special_features = (uint16_t)v;
            CK_TRY(mp_uint(r, CK_SCHEMA_TCF_VENDOR_MAX, &v));
            p->tcf.vendor = (uint16_t)v;
            CK_TRY(ck_mp__bool(r, &p->tcf.publisher));
            p->tcf.set = true;
        }
        if (nel == 9) {
            /* finish() checks the rest (basis, fields among the purpose's). */
            uint32_t nh;
            CK_TRY(mp_tuple(r, 2));
            CK_TRY(ck_mp__array(r, &nh));
            if (nh < 1 || nh > nf)
                return CK_EFORMAT;
            uint16_t *hids = ck_arena__alloc(&s->arena, nh * sizeof *hids);
            if (hids == NULL)
                return CK_ENOMEM;
            for (uint32_t j = 0; j < nh; j++) {
                CK_TRY(mp_uint(r, CK_SCHEMA_FIELD_ID_MAX, &v));
                hids[j] = (uint16_t)v;
            }
            CK_TRY(mp_uint(r, CK_SCHEMA_HOLD_DAYS_MAX, &p->hold.days));
            if (p->hold.days < 1)
                return CK_EFORMAT;
            p->hold.nfields = nh;
            p->hold.field_ids = hids;
        }
    }
    s->npurposes = n;
    *out = ps;
    return CK_OK;
}

static int decode_into(ck_schema *s, const uint8_t *p, size_t n)
{
    ck_mp r;
    uint32_t count;
    ck_schema_field *fields = NULL;
    ck_schema_purpose *purposes = NULL;
    ck_mp__init(&r, p, n);
    CK_TRY(ck_mp__map(&r, &count));
    if (count != 4)
        return CK_EFORMAT;
    /* Keys in the order the encoder writes them: the record is canonical. */
    static const char *const keys[] = {"v", "next", "fields", "purposes"};
    for (size_t k = 0; k < CK_ARRAY_LEN(keys); k++) {
        const char *key;
        uint32_t klen;
        CK_TRY(ck_mp__str(&r, &key, &klen));
        if (!ck_mp__str_eq(key, klen, keys[k]))
            return CK_EFORMAT;
        switch (k) {
        case 0:
            CK_TRY(mp_uint(&r, UINT32_MAX, &s->version));
            break;
        case 1:
            CK_TRY(mp_uint(&r, CK_SCHEMA_FIELD_ID_MAX + 1, &s->next_field_id));
            break;
        case 2:
            CK_TRY(decode_fields(&r, s, &fields));
            break;
        default:
            CK_TRY(decode_purposes(&r, s, &purposes));
            break;
        }
    }
    if (ck_mp__left(&r) != 0)
        return CK_EFORMAT;
    return finish(s, fields, purposes);
}

int ck_schema__decode(ck_schema **out, const uint8_t *p, size_t n)
{
    *out = NULL;
    ck_schema *s = schema_new();
    if (s == NULL)
        return CK_ENOMEM;
    int rc = decode_into(s, p, n);
    if (rc != CK_OK) {
        ck_schema__release(s);
        return rc == CK_ENOMEM ? CK_ENOMEM : CK_EFORMAT;
    }
    *out = s;
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Storage                                                                  */
/* ------------------------------------------------------------------------ */

static void version_key(uint8_t out[VKEY_BYTES], uint32_t version)
{
    out[0] = 'v';
    ck_be32_put(out + 1, version);
}

static void record_aad(uint8_t aad[AAD_BYTES], const ck_store *st, uint32_t version)
{
    memcpy(aad, "ckr1", 4);
    memcpy(aad + 4, st->store_id, CK_STORE_ID_BYTES);
    memcpy(aad + 4 + CK_STORE_ID_BYTES, "schema", 6);
    ck_be32_put(aad + 4 + CK_STORE_ID_BYTES + 6, version);
}

/* The current version in `txn`, 0 when no schema was applied. */
static int load_version(ck_store *st, MDB_txn *txn, uint32_t *out)
{
    MDB_val k = {sizeof CURRENT_KEY - 1, (void *)CURRENT_KEY}, v;
    *out = 0;
    int mrc = mdb_get(txn, st->dbi_schema, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return CK_OK;
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read the schema version");
    if (v.mv_size != 4 || ck_be32_get(v.mv_data) == 0)
        return ck_err__set(st, CK_EINTEGRITY, "the current schema version is malformed");
    *out = ck_be32_get(v.mv_data);
    return CK_OK;
}

/* Tag every purpose of a schema that is not shared yet (consent.h). */
static void fill_ptags(const ck_store *st, ck_schema *s)
{
    for (uint32_t i = 0; i < s->npurposes; i++) {
        ck_schema_purpose *p = (ck_schema_purpose *)&s->purposes[i]; /* owned by s's arena */
        ck_consent__ptag(p->ptag, st, p->name, p->name_len);
        p->has_ptag = true;
    }
}

static int load_record(ck_schema **out, ck_store *st, MDB_txn *txn, uint32_t version)
{
    int rc;
    uint8_t key[VKEY_BYTES], aad[AAD_BYTES];
    ck_buf pt = CK_BUF_INIT;
    *out = NULL;
    version_key(key, version);
    MDB_val k = {sizeof key, key}, v;
    int mrc = mdb_get(txn, st->dbi_schema, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return ck_err__set(st, CK_EINTEGRITY, "schema version %u is missing", version);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot read the schema");
    const uint8_t *rec = v.mv_data;
    if (v.mv_size < 1 + CK_SEAL_OVERHEAD || rec[0] != RECORD_VERSION)
        return ck_err__set(st, CK_EINTEGRITY, "schema version %u is malformed", version);
    size_t n = v.mv_size - 1 - CK_SEAL_OVERHEAD;
    CK_GUARD(ck_buf__reserve(&pt, n + 1));
    record_aad(aad, st, version);
    rc = ck_crypto__open(pt.p, rec + 1, v.mv_size - 1, aad, sizeof aad,
                         ck_store__subkey(st, CK_SUBKEY_STORE));
    CK_ENSURE(rc == CK_OK, ck_err__set(st, CK_EINTEGRITY,
                                       "schema version %u does not authenticate (tampered, "
                                       "or from another store or version)",
                                       version));
    rc = ck_schema__decode(out, pt.p, n);
    if (rc == CK_OK && (*out)->version != version) {
        ck_schema__release(*out);
        *out = NULL;
        rc = CK_EFORMAT;
    }
    CK_ENSURE(rc != CK_ENOMEM, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_ENSURE(rc == CK_OK,
              ck_err__set(st, CK_EINTEGRITY, "schema version %u does not decode", version));
    fill_ptags(st, *out);
cleanup:
    ck_buf__free(&pt);
    return rc;
}

static int store_record(ck_store *st, MDB_txn *txn, const ck_schema *s)
{
    int rc;
    uint8_t key[VKEY_BYTES], aad[AAD_BYTES], cur[4];
    ck_buf pt = CK_BUF_INIT;
    size_t rec_len;
    if (s == NULL)
        return ck_err__set(st, CK_EINTERNAL, "no schema to store");
    CK_ENSURE(ck_schema__encode(&pt, s) == CK_OK, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_ENSURE(!ck_add_overflows(pt.len, 1 + CK_SEAL_OVERHEAD, &rec_len),
              ck_err__set(st, CK_ELIMIT, "schema too large"));
    version_key(key, s->version);
    record_aad(aad, st, s->version);
    MDB_val k = {sizeof key, key}, v = {rec_len, NULL};
    int mrc = mdb_put(txn, st->dbi_schema, &k, &v, MDB_RESERVE);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot write the schema"));
    uint8_t *rec = v.mv_data;
    rec[0] = RECORD_VERSION;
    ck_crypto__seal(rec + 1, pt.p, pt.len, aad, sizeof aad, ck_store__subkey(st, CK_SUBKEY_STORE));
    ck_be32_put(cur, s->version);
    MDB_val ck = {sizeof CURRENT_KEY - 1, (void *)CURRENT_KEY}, cv = {sizeof cur, cur};
    mrc = mdb_put(txn, st->dbi_schema, &ck, &cv, 0);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot write the schema version"));
    rc = CK_OK;
cleanup:
    ck_buf__free(&pt);
    return rc;
}

static struct ck_schema_state *state_new(void)
{
    struct ck_schema_state *ss = ck_mem__calloc(1, sizeof *ss);
    if (ss != NULL && pthread_mutex_init(&ss->lock, NULL) != 0) {
        ck_mem__free(ss);
        ss = NULL;
    }
    return ss;
}

static void state_free(struct ck_schema_state *ss)
{
    if (ss == NULL)
        return;
    ck_schema__release(ss->cur);
    pthread_mutex_destroy(&ss->lock);
    ck_mem__free(ss);
}

/* The store's schema state. ck_open makes it (ck_schema__open); a store
 * fresh from ck_init has none until its first use here, which may happen
 * on several threads at once: the first to publish wins. NULL on ENOMEM. */
static struct ck_schema_state *state(ck_store *st)
{
    struct ck_schema_state *ss = __atomic_load_n(&st->schema, __ATOMIC_ACQUIRE);
    if (ss != NULL)
        return ss;
    struct ck_schema_state *mine = state_new();
    if (mine == NULL)
        return NULL;
    if (__atomic_compare_exchange_n(&st->schema, &ss, mine, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return mine;
    state_free(mine); /* another thread published first: `ss` is theirs */
    return ss;
}

/* Make `s` the store's snapshot if it is newer than the one held. */
static void install(ck_store *st, ck_schema *s)
{
    struct ck_schema_state *ss = state(st);
    ck_schema *old = NULL;
    if (ss == NULL)
        return; /* out of memory: the snapshot is simply not cached */
    pthread_mutex_lock(&ss->lock);
    if (ss->cur == NULL || ss->cur->version < s->version) {
        old = ss->cur;
        ck_schema__retain(s);
        ss->cur = s;
    }
    pthread_mutex_unlock(&ss->lock);
    ck_schema__release(old);
}

int ck_schema__open(ck_store *st, MDB_txn *dtxn)
{
    uint32_t version;
    ck_schema *s = NULL;
    struct ck_schema_state *ss = state(st);
    if (ss == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    CK_TRY(load_version(st, dtxn, &version));
    if (version == 0)
        return CK_OK;
    CK_TRY(load_record(&s, st, dtxn, version));
    install(st, s);
    ck_schema__release(s);
    return CK_OK;
}

void ck_schema__close(ck_store *st)
{
    state_free(st->schema);
    st->schema = NULL;
}

int ck_schema__get(ck_schema **out, ck_store *st, MDB_txn *txn)
{
    uint32_t version;
    ck_schema *s = NULL;
    struct ck_schema_state *ss = state(st);
    *out = NULL;
    if (ss == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    CK_TRY(load_version(st, txn, &version));
    if (version == 0)
        return ck_err__set(st, CK_ENOTFOUND, "no schema has been applied to this store");
    pthread_mutex_lock(&ss->lock);
    if (ss->cur != NULL && ss->cur->version == version) {
        s = ss->cur;
        ck_schema__retain(s);
    }
    pthread_mutex_unlock(&ss->lock);
    if (s == NULL) {
        /* Another process applied a schema (or the caller's transaction is
         * older than the snapshot held): load the one this txn sees. */
        CK_TRY(load_record(&s, st, txn, version));
        install(st, s);
    }
    *out = s;
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Apply                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct apply_ctx {
    const char *json;
    size_t len;
    unsigned flags;
    ck_schema *base; /* the current schema in the write txn, or NULL */
    ck_schema *next; /* the schema built from the file */
    bool changed;
    bool audited; /* the change's entry is written: a rerun of the body
                     (the map grew) does not write it again */
    uint64_t deleted;
} apply_ctx;

static bool same_min(const ck_schema_min *a, const ck_schema_min *b)
{
    return a->kind == b->kind && a->prefix == b->prefix && a->nedges == b->nedges &&
           (a->nedges == 0 || memcmp(a->edges, b->edges, a->nedges * sizeof *a->edges) == 0);
}

static bool same_tcf(const ck_schema_tcf *a, const ck_schema_tcf *b)
{
    return a->set == b->set && a->purposes == b->purposes &&
           a->special_features == b->special_features && a->vendor == b->vendor &&
           a->publisher == b->publisher;
}

static bool same_hold(const ck_schema_hold *a, const ck_schema_hold *b)
{
    return a->nfields == b->nfields && a->days == b->days &&
           (a->nfields == 0 ||
            memcmp(a->field_ids, b->field_ids, a->nfields * sizeof *a->field_ids) == 0);
}

static bool same_purpose(const ck_schema_purpose *a, const ck_schema_purpose *b)
{
    if (a->basis != b->basis || strcmp(a->description, b->description) != 0 ||
        strcmp(a->benefit, b->benefit) != 0 || a->nfields != b->nfields ||
        memcmp(&a->channel, &b->channel, sizeof a->channel) != 0 || !same_tcf(&a->tcf, &b->tcf) ||
        !same_hold(&a->hold, &b->hold))
        return false;
    for (uint32_t i = 0; i < a->nfields; i++)
        if (a->field_ids[i] != b->field_ids[i] || !same_min(&a->min[i], &b->min[i]))
            return false;
    return true;
}

/* Is field `f` of the base removed or retyped by `next`? */
static bool field_dropped(const ck_schema *next, const ck_schema_field *f)
{
    const ck_schema_field *g = ck_schema__field(next, f->name, f->name_len);
    return g == NULL || g->type != f->type;
}

/* Count (and, with `del`, delete) the values of the field ids marked in
 * `drop` (a bitmap over u16). counts[i] gets the number of values of
 * drop_ids[i]; a value key is sid(16) || field id, so that is also the
 * number of subjects holding the field. */
static int scan_values(ck_store *st, MDB_txn *txn, const uint64_t *drop, bool del,
                       uint64_t *counts_by_id_slot, const uint16_t *slot_of, uint64_t *total)
{
    int rc = CK_OK;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc = mdb_cursor_open(txn, st->dbi_values, &cur);
    if (mrc != 0)
        return ck_err__mdb(st, mrc, "cannot scan the values");
    *total = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != CK_VALUE_KEY_BYTES)
            continue;
        const uint8_t *kp = k.mv_data;
        uint16_t id = (uint16_t)(kp[CK_SUBJECT_ID_BYTES] << 8 | kp[CK_SUBJECT_ID_BYTES + 1]);
        if (!(drop[id >> 6] & (1ull << (id & 63))))
            continue;
        counts_by_id_slot[slot_of[id]]++;
        (*total)++;
        if (del) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != 0)
                break;
        }
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        rc = ck_err__mdb(st, mrc, del ? "cannot delete values" : "cannot scan the values");
    mdb_cursor_close(cur);
    return rc;
}

/* Removing or retyping fields that hold values: refused unless forced;
 * forced, the values go. */
static int drop_fields(ck_store *st, MDB_txn *txn, apply_ctx *c)
{
    int rc;
    const ck_schema *b = c->base;
    uint64_t *drop = NULL, *counts = NULL, total = 0;
    uint16_t *slot_of = NULL;
    uint32_t nslots = 0;

    for (uint32_t i = 0; i < b->nfields; i++)
        if (field_dropped(c->next, &b->fields[i]))
            nslots++;
    if (nslots == 0)
        return CK_OK;
    drop = ck_mem__calloc(1024, sizeof *drop); /* 65536 bits */
    slot_of = ck_mem__calloc(65536, sizeof *slot_of);
    counts = ck_mem__calloc(b->nfields, sizeof *counts);
    CK_ENSURE(drop != NULL && slot_of != NULL && counts != NULL,
              ck_err__set(st, CK_ENOMEM, "out of memory"));
    /* Slots follow the base's name order, so the message below names the
     * first such field in name order. */
    for (uint32_t i = 0; i < b->nfields; i++) {
        uint16_t id = b->fields[i].id;
        if (field_dropped(c->next, &b->fields[i])) {
            drop[id >> 6] |= 1ull << (id & 63);
            slot_of[id] = (uint16_t)i;
        }
    }
    CK_GUARD(scan_values(st, txn, drop, false, counts, slot_of, &total));
    if (total > 0 && !(c->flags & CK_SCHEMA_FORCE)) {
        uint32_t first = 0, others = 0;
        bool found = false;
        for (uint32_t i = 0; i < b->nfields; i++) {
            if (counts[i] == 0)
                continue;
            if (!found) {
                first = i;
                found = true;
            } else {
                others++;
            }
        }
        const ck_schema_field *f = &b->fields[first];
        bool removed = ck_schema__field(c->next, f->name, f->name_len) == NULL;
        char more[64] = "";
        if (others > 0)
            snprintf(more, sizeof more, " (and %u more field%s hold values)", others,
                     others > 1 ? "s" : "");
        rc =
            ck_err__set(st, CK_EDENIED,
                        "fields.%s: %llu subject%s hold%s a value for this field; %s would "
                        "delete %s%s: apply with force to do so",
                        f->name, (unsigned long long)counts[first], counts[first] > 1 ? "s" : "",
                        counts[first] > 1 ? "" : "s", removed ? "removing it" : "changing its type",
                        counts[first] > 1 ? "them" : "it", more);
        goto cleanup;
    }
    if (total > 0) {
        memset(counts, 0, b->nfields * sizeof *counts);
        CK_GUARD(scan_values(st, txn, drop, true, counts, slot_of, &c->deleted));
    }
    rc = CK_OK;
cleanup:
    ck_mem__free(drop);
    ck_mem__free(slot_of);
    ck_mem__free(counts);
    return rc;
}

static int apply_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    int rc;
    apply_ctx *c = ctx;
    uint32_t cv;
    char err[CK_ERRMSG_MAX];
    ck_buf a = CK_BUF_INIT, b = CK_BUF_INIT;

    /* This body may run again after the map grew: start afresh. */
    ck_schema__release(c->base);
    ck_schema__release(c->next);
    c->base = c->next = NULL;
    c->changed = false;
    c->deleted = 0;

    CK_GUARD(load_version(st, txn, &cv));
    if (cv > 0)
        CK_GUARD(ck_schema__get(&c->base, st, txn));
    rc = ck_schema__from_json(&c->next, c->base, c->json, c->len, err, sizeof err);
    CK_ENSURE(rc != CK_ENOMEM, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "%s", err));
    CK_ENSURE(c->next != NULL, ck_err__set(st, CK_EINTERNAL, "the schema loader gave nothing"));

    if (c->base != NULL) {
        /* Identical to the current schema: nothing to write. The encoding
         * is canonical, so compare it with the version number aligned. */
        c->next->version = c->base->version;
        CK_ENSURE(ck_schema__encode(&a, c->base) == CK_OK &&
                      ck_schema__encode(&b, c->next) == CK_OK,
                  ck_err__set(st, CK_ENOMEM, "out of memory"));
        c->next->version = c->base->version + 1;
        if (a.len == b.len && memcmp(a.p, b.p, a.len) == 0) {
            rc = CK_OK;
            goto cleanup;
        }
        CK_ENSURE(c->base->version < UINT32_MAX,
                  ck_err__set(st, CK_ELIMIT, "no schema version number left"));
        CK_GUARD(drop_fields(st, txn, c));
    }
    CK_GUARD(store_record(st, txn, c->next));
    /* Audited, durably, before the change commits (fail closed): a change
     * the log cannot record is not made. */
    if (!c->audited) {
        ck_audit_detail_item d[] = {{"version", NULL, (int64_t)c->next->version},
                                    {"values_deleted", NULL, (int64_t)c->deleted}};
        ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
        e.actor = "ckstore";
        e.action = "schema";
        e.detail = d;
        e.n_detail = CK_ARRAY_LEN(d);
        CK_GUARD(ck_audit__append(st, &e, true, NULL, NULL));
        c->audited = true;
    }
    c->changed = true;
    rc = CK_OK;
cleanup:
    ck_buf__free(&a);
    ck_buf__free(&b);
    return rc;
}

/* The result's storage: the names live in an arena. */
typedef struct result_store {
    ck_arena arena;
} result_store;

static int add_names(result_store *rs, ck_schema_names *out, const char **names, size_t n)
{
    out->names = NULL;
    out->count = 0;
    const char **arr = ck_arena__alloc(&rs->arena, (n > 0 ? n : 1) * sizeof *arr);
    if (arr == NULL)
        return CK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        arr[i] = ck_arena__dup(&rs->arena, names[i], strlen(names[i]) + 1);
        if (arr[i] == NULL)
            return CK_ENOMEM;
    }
    out->names = arr;
    out->count = n;
    return CK_OK;
}

/* Fill the result's name lists from the diff of base -> next (both sorted
 * by name, so the lists come out in name order). */
static int fill_result(ck_schema_apply_result *out, const ck_schema *base, const ck_schema *next)
{
    int rc;
    size_t cap = (size_t)(base != NULL ? base->nfields : 0) + next->nfields +
                 (base != NULL ? base->npurposes : 0) + next->npurposes + 1;
    const char **tmp = ck_mem__calloc(cap, sizeof *tmp);
    result_store *rs = ck_mem__calloc(1, sizeof *rs);
    size_t n;
    if (tmp == NULL || rs == NULL) {
        ck_mem__free(tmp);
        ck_mem__free(rs);
        return CK_ENOMEM;
    }
    out->priv_ = rs;

#define CK_LIST_(dest, count_expr, cond, name_expr)                                                \
    do {                                                                                           \
        n = 0;                                                                                     \
        for (uint32_t i = 0; i < (count_expr); i++)                                                \
            if (cond)                                                                              \
                tmp[n++] = (name_expr);                                                            \
        CK_GUARD(add_names(rs, &out->dest, tmp, n));                                               \
    } while (0)

    uint32_t bf = base != NULL ? base->nfields : 0, bp = base != NULL ? base->npurposes : 0;
    CK_LIST_(fields_added, next->nfields,
             ck_schema__field(base, next->fields[i].name, next->fields[i].name_len) == NULL,
             next->fields[i].name);
    CK_LIST_(fields_removed, bf,
             ck_schema__field(next, base->fields[i].name, base->fields[i].name_len) == NULL,
             base->fields[i].name);
    const ck_schema_field *g;
    CK_LIST_(fields_retyped, bf,
             (g = ck_schema__field(next, base->fields[i].name, base->fields[i].name_len)) != NULL &&
                 g->type != base->fields[i].type,
             base->fields[i].name);
    CK_LIST_(fields_changed, bf,
             (g = ck_schema__field(next, base->fields[i].name, base->fields[i].name_len)) != NULL &&
                 g->type == base->fields[i].type &&
                 (g->sensitivity != base->fields[i].sensitivity ||
                  g->identifying != base->fields[i].identifying ||
                  g->retention_days != base->fields[i].retention_days),
             base->fields[i].name);
    CK_LIST_(purposes_added, next->npurposes,
             ck_schema__purpose(base, next->purposes[i].name, next->purposes[i].name_len) == NULL,
             next->purposes[i].name);
    CK_LIST_(purposes_removed, bp,
             ck_schema__purpose(next, base->purposes[i].name, base->purposes[i].name_len) == NULL,
             base->purposes[i].name);
    const ck_schema_purpose *q;
    CK_LIST_(purposes_changed, bp,
             (q = ck_schema__purpose(next, base->purposes[i].name, base->purposes[i].name_len)) !=
                     NULL &&
                 !same_purpose(q, &base->purposes[i]),
             base->purposes[i].name);
#undef CK_LIST_
    rc = CK_OK;
cleanup:
    ck_mem__free(tmp);
    return rc;
}

CK_EXPORT void ck_schema_apply_result_free(ck_schema_apply_result *r)
{
    if (r == NULL)
        return;
    result_store *rs = r->priv_;
    if (rs != NULL) {
        ck_arena__free(&rs->arena);
        ck_mem__free(rs);
    }
    ck_schema_apply_result init = CK_SCHEMA_APPLY_RESULT_INIT;
    *r = init;
}

CK_EXPORT int ck_schema_apply(ck_store *st, const char *json, size_t len, unsigned int flags,
                              ck_schema_apply_result *out)
{
    int rc;
    char err[CK_ERRMSG_MAX];
    ck_schema *check = NULL;
    apply_ctx c = {json, len, flags, NULL, NULL, false, false, 0};

    if (st == NULL)
        return CK_EINVAL;
    if (out != NULL) {
        if (out->version != CK_SCHEMA_APPLY_RESULT_VERSION)
            return ck_err__set(st, CK_EINVAL, "ck_schema_apply_result version %u is not supported",
                               out->version);
        ck_schema_apply_result init = CK_SCHEMA_APPLY_RESULT_INIT;
        *out = init;
    }
    if (json == NULL && len != 0)
        return ck_err__set(st, CK_EINVAL, "no schema given");
    if (flags & ~CK_SCHEMA_FORCE)
        return ck_err__set(st, CK_EINVAL, "unknown ck_schema_apply flags");
    /* Validate before taking the writer lock: an invalid file costs other
     * writers nothing, and the message does not depend on the store. */
    rc = ck_schema__from_json(&check, NULL, json, len, err, sizeof err);
    ck_schema__release(check);
    if (rc == CK_ENOMEM)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    if (rc != CK_OK)
        return ck_err__set(st, rc, "%s", err);
    if (st->flags & CK_OPEN_RDONLY)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");

    CK_GUARD(ck_env__write(st, &st->data, apply_txn, &c));
    if (c.changed) {
        fill_ptags(st, c.next);
        install(st, c.next); /* audited in apply_txn, before the commit */
    }
    if (out != NULL) {
        out->schema_version = c.changed ? c.next->version : c.base->version;
        out->changed = c.changed ? 1 : 0;
        out->values_deleted = c.deleted;
        if (c.changed) {
            rc = fill_result(out, c.base, c.next);
            CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "out of memory"));
        }
    }
    rc = CK_OK;
cleanup:
    ck_schema__release(c.base);
    ck_schema__release(c.next);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

CK_EXPORT int ck_schema_get_json(char **out, ck_store *st)
{
    int rc;
    MDB_txn *txn = NULL;
    ck_schema *s = NULL;
    ck_buf text = CK_BUF_INIT;
    if (out == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (st == NULL)
        return CK_EINVAL;
    CK_GUARD(ck_env__read_begin(st, &st->data, &txn));
    CK_GUARD(ck_schema__get(&s, st, txn));
    ck_env__read_end(&st->data, txn);
    txn = NULL;
    CK_ENSURE(ck_schema__to_json(&text, s) == CK_OK, ck_err__set(st, CK_ENOMEM, "out of memory"));
    *out = ck_out__strndup((const char *)text.p, text.len);
    CK_ENSURE(*out != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    rc = CK_OK;
cleanup:
    if (txn != NULL)
        ck_env__read_end(&st->data, txn);
    ck_schema__release(s);
    ck_buf__free(&text);
    return rc;
}

CK_EXPORT int ck_schema_version(uint32_t *out, ck_store *st)
{
    int rc;
    MDB_txn *txn = NULL;
    if (out == NULL)
        return CK_EINVAL;
    *out = 0;
    if (st == NULL)
        return CK_EINVAL;
    CK_GUARD(ck_env__read_begin(st, &st->data, &txn));
    CK_GUARD(load_version(st, txn, out));
    rc = CK_OK;
cleanup:
    if (txn != NULL)
        ck_env__read_end(&st->data, txn);
    return rc;
}
