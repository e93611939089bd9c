/*
 * fuzz_value.c - libFuzzer target for typed values in and out of JSON and
 * text, and for the minimisations (value.c).
 *
 * The input is read twice: as JSON (json_loadb, any value, NUL escapes
 * allowed) given to ck_value__from_json for each of the 8 types, and as
 * raw text given to ck_value__from_text for each type. Properties checked
 * (abort() on violation):
 *  - a refusal is CK_EINVAL or CK_ELIMIT with a message and `out` zeroed;
 *  - an accepted value passes ck_codec__check, with an empty message;
 *  - from_json(to_json(v)) == v (floats bit for bit);
 *  - append_json(v) == json_dumps(to_json(v), JSON_COMPACT|JSON_ENCODE_ANY)
 *    byte for byte, and that text parsed back by Jansson gives v again;
 *  - text that is valid UTF-8 gives the same result through from_text and
 *    through from_json of a JSON string holding it (lists aside);
 *  - minimisation: YEAR is the year of the value's own text form; PREFIX is
 *    a prefix of min(N, length) code points; DOMAIN is what follows the
 *    last '@' (or "" when there is none); BAND gives the label that an
 *    exact long double comparison gives (edge sets around the value and at
 *    int64's extremes).
 *
 * Build: cmake -DCK_FUZZ=ON (clang), target fuzz_value.
 * Seeds: tests/fuzz/corpus/value/ (copy them elsewhere before fuzzing).
 */
#include "value.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../values.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_refusal(int rc, const ck_value *out, const char *err)
{
    if ((rc != CK_EINVAL && rc != CK_ELIMIT) || !all_zero(out, sizeof(*out)) || err[0] == '\0')
        abort();
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */
/* ------------------------------------------------------------------------ */

static void check_output(const ck_value *v)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_buf b = CK_BUF_INIT;
    ck_value back;
    char err[128];

    json_t *j = ck_value__to_json(v);
    if (j == NULL)
        abort();
    /* Values come from the parsers here, so they hold no NUL (which is
     * written, but refused on input): the round trip must hold. */
    if (ck_value__from_json(&back, v->type, j, &arena, err, sizeof(err)) != CK_OK ||
        !value_equal(v, &back))
        abort();

    char *ref = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (ref == NULL)
        abort();
    if (ck_value__append_json(&b, v) != CK_OK || b.len != strlen(ref) ||
        memcmp(b.p, ref, b.len) != 0)
        abort();

    /* The text, parsed back, is the same JSON value. */
    json_t *again = json_loadb((const char *)b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (again == NULL || !json_equal(again, j))
        abort();
    if (v->type == CK_TYPE_FLOAT &&
        (!json_is_real(again) ||
         memcmp(&v->u.f, &(double){json_real_value(again)}, sizeof(double)) != 0))
        abort();

    json_decref(again);
    free(ref);
    json_decref(j);
    ck_buf__free(&b);
    ck_arena__free(&arena);
}

/* ------------------------------------------------------------------------ */
/* Minimisation                                                             */
/* ------------------------------------------------------------------------ */

static size_t code_points(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t k = 0; k < n; k++)
        c += ((unsigned char)s[k] & 0xc0) != 0x80;
    return c;
}

static void check_string_mins(const ck_value *v, ck_arena *arena)
{
    static const uint32_t ns[] = {1, 2, 5, 32};
    ck_schema_min m;
    ck_value out;

    memset(&m, 0, sizeof(m));
    m.kind = CK_MIN_PREFIX;
    for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
        m.prefix = ns[k];
        if (ck_value__minimize(&out, v, &m, arena) != CK_OK || out.type != CK_TYPE_STRING ||
            out.u.str.len > v->u.str.len ||
            (out.u.str.len != 0 && memcmp(out.u.str.ptr, v->u.str.ptr, out.u.str.len) != 0) ||
            !ck_codec__utf8_valid(out.u.str.ptr, out.u.str.len))
            abort();
        size_t all = code_points(v->u.str.ptr, v->u.str.len);
        if (code_points(out.u.str.ptr, out.u.str.len) != (all < ns[k] ? all : ns[k]))
            abort();
    }

    m.kind = CK_MIN_DOMAIN;
    if (ck_value__minimize(&out, v, &m, arena) != CK_OK || out.type != CK_TYPE_STRING)
        abort();
    const char *at = v->u.str.len == 0 ? NULL : memrchr(v->u.str.ptr, '@', v->u.str.len);
    if (at == NULL) {
        if (out.u.str.len != 0)
            abort();
    } else {
        size_t after = v->u.str.len - (size_t)(at + 1 - v->u.str.ptr);
        if (out.u.str.len != after || (after != 0 && memcmp(out.u.str.ptr, at + 1, after) != 0))
            abort();
    }
    if (out.u.str.len != 0 && memchr(out.u.str.ptr, '@', out.u.str.len) != NULL)
        abort();
}

static void check_year(const ck_value *v)
{
    char text[CK_TS_TEXT_MAX];
    ck_schema_min m;
    ck_value out;

    memset(&m, 0, sizeof(m));
    m.kind = CK_MIN_YEAR;
    if (ck_value__minimize(&out, v, &m, NULL) != CK_OK || out.type != CK_TYPE_INT)
        abort();
    int rc = v->type == CK_TYPE_DATE ? ck_date__format(text, sizeof(text), v->u.date)
                                     : ck_ts__format(text, sizeof(text), v);
    if (rc != CK_OK)
        abort();
    int64_t y =
        (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0');
    if (out.u.i != y)
        abort();
}

#if LDBL_MANT_DIG >= 64
/* The band label by exact long double comparison (int64 and double both
 * convert to long double without loss when it has 64 mantissa bits). */
static void check_band(const ck_value *v, const int64_t *edges, uint32_t n, ck_arena *arena)
{
    ck_schema_min m;
    ck_value out;
    char want[64];
    uint32_t i = 0;
    long double x = v->type == CK_TYPE_INT ? (long double)v->u.i : (long double)v->u.f;

    memset(&m, 0, sizeof(m));
    m.kind = CK_MIN_BAND;
    m.edges = edges;
    m.nedges = n;
    while (i < n && x >= (long double)edges[i])
        i++;
    if (i == 0)
        snprintf(want, sizeof(want), "<%" PRId64, edges[0]);
    else if (i == n)
        snprintf(want, sizeof(want), ">=%" PRId64, edges[n - 1]);
    else
        snprintf(want, sizeof(want), "%" PRId64 "-%" PRId64, edges[i - 1], edges[i]);
    if (ck_value__minimize(&out, v, &m, arena) != CK_OK || out.type != CK_TYPE_STRING ||
        out.u.str.len != strlen(want) || memcmp(out.u.str.ptr, want, out.u.str.len) != 0)
        abort();
}

static void check_bands(const ck_value *v, ck_arena *arena)
{
    static const int64_t wide[] = {INT64_MIN, -9007199254740993LL, -1,       0,
                                   1,         9007199254740993LL,  INT64_MAX};
    int64_t near[3];
    uint32_t n = 0;
    int64_t c;

    check_band(v, wide, sizeof(wide) / sizeof(wide[0]), arena);
    /* Edges around the value itself. */
    if (v->type == CK_TYPE_INT) {
        c = v->u.i;
    } else if (v->u.f >= -9223372036854775808.0 && v->u.f < 9223372036854775808.0) {
        c = (int64_t)v->u.f;
    } else {
        return;
    }
    if (c > INT64_MIN)
        near[n++] = c - 1;
    near[n++] = c;
    if (c < INT64_MAX)
        near[n++] = c + 1;
    check_band(v, near, n, arena);
    check_band(v, &c, 1, arena);
}
#endif

static void check_mins(const ck_value *v)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_schema_min m;
    ck_value out;

    memset(&m, 0, sizeof(m));
    m.kind = CK_MIN_NONE;
    if (ck_value__minimize(&out, v, &m, NULL) != CK_OK || !value_equal(&out, v))
        abort();
    switch (v->type) {
    case CK_TYPE_STRING:
        check_string_mins(v, &arena);
        break;
    case CK_TYPE_DATE:
    case CK_TYPE_TIMESTAMP:
        check_year(v);
        break;
    case CK_TYPE_INT:
    case CK_TYPE_FLOAT:
#if LDBL_MANT_DIG >= 64
        check_bands(v, &arena);
#endif
        break;
    default:
        /* A minimisation that does not apply is an internal error. */
        m.kind = CK_MIN_YEAR;
        if (ck_value__minimize(&out, v, &m, &arena) != CK_EINTERNAL || !all_zero(&out, sizeof(out)))
            abort();
        break;
    }
    ck_arena__free(&arena);
}

static void check_value(const ck_value *v, const char *err)
{
    if (ck_codec__check(v) != CK_OK || err[0] != '\0')
        abort();
    check_output(v);
    check_mins(v);
}

/* ------------------------------------------------------------------------ */
/* Entry                                                                    */
/* ------------------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char err[128];
    char err2[128];

    json_t *j = json_loadb(s, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    bool utf8 = ck_codec__utf8_valid(s, size);
    json_t *js = utf8 ? json_stringn(s, size) : NULL;

    for (int t = 1; t <= 8; t++) {
        ck_type type = (ck_type)t;
        ck_arena arena = CK_ARENA_INIT;
        ck_value v;
        ck_value w;
        int rc;

        if (j != NULL) {
            rc = ck_value__from_json(&v, type, j, &arena, err, sizeof(err));
            if (rc == CK_OK)
                check_value(&v, err);
            else
                check_refusal(rc, &v, err);
        }

        rc = ck_value__from_text(&v, type, s, size, &arena, err, sizeof(err));
        if (rc == CK_OK)
            check_value(&v, err);
        else
            check_refusal(rc, &v, err);

        /* The same text as a JSON string: the same outcome. */
        if (js != NULL && type != CK_TYPE_LIST) {
            int rc2 = ck_value__from_json(&w, type, js, &arena, err2, sizeof(err2));
            if (rc2 != rc || strcmp(err, err2) != 0 || (rc == CK_OK && !value_equal(&v, &w)))
                abort();
        }
        ck_arena__free(&arena);
    }
    json_decref(js);
    json_decref(j);
    return 0;
}
