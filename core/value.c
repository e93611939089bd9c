/*
 * value.c - typed values in and out of JSON and command-line text, and the
 * minimisations a purpose declares. See value.h for the contract and
 * docs/schema.md ("Values in JSON") for what users see.
 *
 * Input is strict: one accepted text per value where it matters (dates,
 * integers), JSON's own number syntax for floats, padded standard base64.
 * Every value produced goes through ck_codec__check last, so it obeys
 * exactly the rules the store applies when it encodes and decodes.
 *
 * Output comes in two forms that agree byte for byte: a json_t
 * (ck_value__to_json), and compact JSON text appended to a ck_buf without
 * building one (ck_value__append_json, the release hot path), written the
 * way Jansson's json_dumps writes it.
 *
 * Error texts name the problem, never the value.
 */
#include "value.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest text read as a number (int or float given as a string). Longer
 * digit strings are either out of range or pointlessly precise. */
#define NUMBER_TEXT_MAX 1024
/* Longest command-line text read as a JSON list: a list holds at most
 * CK_VALUE_MAX_BYTES, which escaping can make six times longer. */
#define LIST_TEXT_MAX ((size_t)8 << 20)

static const char hex_upper[] = "0123456789ABCDEF";

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static void set_err(char *err, size_t err_max, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_max, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err_max == 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_max, fmt, ap);
    va_end(ap);
}

/* No error (yet): an empty message, without the cost of a format. */
static void clear_err(char *err, size_t err_max)
{
    if (err != NULL && err_max > 0)
        err[0] = '\0';
}

/* Record `msg` and give `rc`, for `return fail(...)` in the parsers. */
static int fail(char *err, size_t err_max, int rc, const char *msg)
{
    set_err(err, err_max, "%s", msg);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The C numeric locale, so that "1.5" parses whatever locale the host      */
/* program set (Jansson does the same for the reals it reads).              */
/* ------------------------------------------------------------------------ */

static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;
static locale_t c_numeric = (locale_t)0;

static void c_numeric_init(void)
{
    c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

/* Copy n bytes into the arena as a ck_str. An empty string needs no memory
 * (and no arena). */
static int copy_str(ck_str *out, ck_arena *arena, const char *s, size_t n, char *err,
                    size_t err_max)
{
    if (n == 0) {
        out->ptr = "";
        out->len = 0;
        return CK_OK;
    }
    if (arena == NULL)
        return fail(err, err_max, CK_EINVAL, "no arena for the value's memory");
    char *p = ck_arena__dup(arena, s, n);
    if (p == NULL)
        return fail(err, err_max, CK_ENOMEM, "out of memory");
    out->ptr = p;
    out->len = n;
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Parsers of the text forms (a JSON string's content, or command-line text) */
/* ------------------------------------------------------------------------ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!is_digit(s[k]))
            return false;
    }
    return true;
}

/* A strict decimal integer: -?(0|[1-9][0-9]*), within int64. */
static int parse_int(int64_t *out, const char *s, size_t n, char *err, size_t err_max)
{
    size_t k = 0;
    bool neg = false;
    uint64_t mag = 0;

    if (n > 0 && s[0] == '-') {
        neg = true;
        k = 1;
    }
    if (k == n || !all_digits(s + k, n - k) || (s[k] == '0' && n - k > 1))
        return fail(err, err_max, CK_EINVAL, "expected an integer");

    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; k < n; k++) {
        uint64_t d = (uint64_t)(s[k] - '0');
        if (mag > (limit - d) / 10)
            return fail(err, err_max, CK_EINVAL, "integer out of range");
        mag = mag * 10 + d;
    }
    if (neg)
        *out = mag == 0 ? 0 : -(int64_t)(mag - 1) - 1; /* no overflow at INT64_MIN */
    else
        *out = (int64_t)mag;
    return CK_OK;
}

/* JSON's number syntax: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_syntax(const char *s, size_t n)
{
    size_t k = 0;
    size_t d;

    if (k < n && s[k] == '-')
        k++;
    if (k < n && s[k] == '0') {
        k++;
    } else {
        for (d = k; k < n && is_digit(s[k]); k++)
            ;
        if (k == d)
            return false;
    }
    if (k < n && s[k] == '.') {
        k++;
        for (d = k; k < n && is_digit(s[k]); k++)
            ;
        if (k == d)
            return false;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        for (d = k; k < n && is_digit(s[k]); k++)
            ;
        if (k == d)
            return false;
    }
    return k == n;
}

/* A number in JSON's syntax whose double is finite. */
static int parse_float(double *out, const char *s, size_t n, char *err, size_t err_max)
{
    char buf[NUMBER_TEXT_MAX + 1];
    char *end = NULL;

    if (!json_number_syntax(s, n))
        return fail(err, err_max, CK_EINVAL, "expected a number");
    if (n > NUMBER_TEXT_MAX)
        return fail(err, err_max, CK_EINVAL, "number text longer than 1024 characters");
    (void)pthread_once(&c_numeric_once, c_numeric_init);
    if (c_numeric == (locale_t)0)
        return fail(err, err_max, CK_ENOMEM, "out of memory");
    memcpy(buf, s, n);
    buf[n] = '\0';
    double d = strtod_l(buf, &end, c_numeric);
    if (end != buf + n)
        return fail(err, err_max, CK_EINVAL, "expected a number");
    /* Overflow gives +-HUGE_VAL (infinite); underflow gives 0 or a
     * subnormal, which is kept as Jansson keeps it for JSON reals. */
    if (!isfinite(d))
        return fail(err, err_max, CK_EINVAL, "number out of range");
    *out = d;
    return CK_OK;
}

static int parse_bool(int *out, const char *s, size_t n, char *err, size_t err_max)
{
    if (n == 4 && memcmp(s, "true", 4) == 0) {
        *out = 1;
        return CK_OK;
    }
    if (n == 5 && memcmp(s, "false", 5) == 0) {
        *out = 0;
        return CK_OK;
    }
    return fail(err, err_max, CK_EINVAL, "expected true or false");
}

/* "DDDD-DD-DD" at s, 10 bytes available. */
static bool date_shape(const char *s)
{
    return all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) && s[7] == '-' &&
           all_digits(s + 8, 2);
}

/* Why a date of the right shape is refused. */
static int date_refused(const char *s, char *err, size_t err_max)
{
    if (memcmp(s, "0000", 4) == 0)
        return fail(err, err_max, CK_EINVAL, "date outside years 0001-9999");
    return fail(err, err_max, CK_EINVAL, "not a real calendar date");
}

static int parse_date(int32_t *out, const char *s, size_t n, char *err, size_t err_max)
{
    if (n != 10 || !date_shape(s))
        return fail(err, err_max, CK_EINVAL, "expected a date YYYY-MM-DD");
    if (ck_date__parse(out, s, n) != CK_OK)
        return date_refused(s, err, err_max);
    return CK_OK;
}

#define TS_EXPECTED "expected an RFC 3339 timestamp YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)"

static int two_digits(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* ck_ts__parse refused s: say why, from the shape of the text. */
static int ts_refused(const char *s, size_t n, char *err, size_t err_max)
{
    size_t k;
    bool zone_ok = true;

    if (n < 20 || !date_shape(s) || (s[10] != 'T' && s[10] != 't') || !all_digits(s + 11, 2) ||
        s[13] != ':' || !all_digits(s + 14, 2) || s[16] != ':' || !all_digits(s + 17, 2))
        return fail(err, err_max, CK_EINVAL, TS_EXPECTED);
    k = 19;
    if (s[k] == '.') {
        size_t d = ++k;
        while (k < n && is_digit(s[k]))
            k++;
        if (k == d || k - d > 9)
            return fail(err, err_max, CK_EINVAL, TS_EXPECTED);
    }
    if (k < n && (s[k] == 'Z' || s[k] == 'z')) {
        k++;
    } else if (k < n && (s[k] == '+' || s[k] == '-') && n - k == 6 && all_digits(s + k + 1, 2) &&
               s[k + 3] == ':' && all_digits(s + k + 4, 2)) {
        zone_ok = two_digits(s + k + 1) <= 23 && two_digits(s + k + 4) <= 59;
        k += 6;
    } else {
        return fail(err, err_max, CK_EINVAL, TS_EXPECTED);
    }
    if (k != n)
        return fail(err, err_max, CK_EINVAL, TS_EXPECTED);

    int32_t days;
    if (ck_date__parse(&days, s, 10) != CK_OK)
        return date_refused(s, err, err_max);
    if (two_digits(s + 11) > 23 || two_digits(s + 14) > 59 || two_digits(s + 17) > 59 || !zone_ok)
        return fail(err, err_max, CK_EINVAL, "time of day or UTC offset out of range");
    return fail(err, err_max, CK_EINVAL, "timestamp outside years 0001-9999");
}

static int parse_ts(ck_value *v, const char *s, size_t n, char *err, size_t err_max)
{
    ck_value t;

    if (ck_ts__parse(&t, s, n) != CK_OK)
        return ts_refused(s, n, err, err_max);
    v->u.ts = t.u.ts;
    return CK_OK;
}

/* Standard base64 with padding, nothing else (no whitespace). */
static int parse_base64(ck_str *out, const char *s, size_t n, ck_arena *arena, char *err,
                        size_t err_max)
{
    /* The longest text that can decode to CK_VALUE_MAX_BYTES bytes. */
    const size_t text_max = (CK_VALUE_MAX_BYTES + 2) / 3 * 4;
    size_t bin_len = 0;
    const char *end = NULL;

    if (n > text_max)
        return fail(err, err_max, CK_ELIMIT, "bytes longer than 1048576 bytes");
    if (n % 4 != 0)
        return fail(err, err_max, CK_EINVAL, "invalid base64");
    if (n == 0) {
        out->ptr = "";
        out->len = 0;
        return CK_OK;
    }
    if (arena == NULL)
        return fail(err, err_max, CK_EINVAL, "no arena for the value's memory");
    size_t bin_max = n / 4 * 3;
    unsigned char *bin = ck_arena__alloc(arena, bin_max);
    if (bin == NULL)
        return fail(err, err_max, CK_ENOMEM, "out of memory");
    if (sodium_base642bin(bin, bin_max, s, n, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != s + n)
        return fail(err, err_max, CK_EINVAL, "invalid base64");
    if (bin_len > CK_VALUE_MAX_BYTES)
        return fail(err, err_max, CK_ELIMIT, "bytes longer than 1048576 bytes");
    out->ptr = (const char *)bin;
    out->len = bin_len;
    return CK_OK;
}

/* A string value's text: size first, then (for command-line text, which no
 * JSON parser checked) UTF-8, then no NUL. */
static int parse_string(ck_str *out, const char *s, size_t n, bool check_utf8, ck_arena *arena,
                        char *err, size_t err_max)
{
    if (n > CK_VALUE_MAX_BYTES)
        return fail(err, err_max, CK_ELIMIT, "string longer than 1048576 bytes");
    if (check_utf8 && !ck_codec__utf8_valid(s, n))
        return fail(err, err_max, CK_EINVAL, "string is not valid UTF-8");
    if (n != 0 && memchr(s, '\0', n) != NULL)
        return fail(err, err_max, CK_EINVAL, "string contains a NUL character");
    return copy_str(out, arena, s, n, err, err_max);
}

/* Every type but LIST from its text form. */
static int scalar_from_text(ck_value *v, const char *s, size_t n, bool check_utf8, ck_arena *arena,
                            char *err, size_t err_max)
{
    switch (v->type) {
    case CK_TYPE_STRING:
        return parse_string(&v->u.str, s, n, check_utf8, arena, err, err_max);
    case CK_TYPE_INT:
        return parse_int(&v->u.i, s, n, err, err_max);
    case CK_TYPE_FLOAT:
        return parse_float(&v->u.f, s, n, err, err_max);
    case CK_TYPE_BOOL:
        return parse_bool(&v->u.b, s, n, err, err_max);
    case CK_TYPE_DATE:
        return parse_date(&v->u.date, s, n, err, err_max);
    case CK_TYPE_TIMESTAMP:
        return parse_ts(v, s, n, err, err_max);
    case CK_TYPE_BYTES:
        return parse_base64(&v->u.str, s, n, arena, err, err_max);
    case CK_TYPE_LIST:
        return fail(err, err_max, CK_EINVAL, "expected a list of strings");
    }
    return fail(err, err_max, CK_EINVAL, "unknown type");
}

/* A JSON array of strings. Sizes and kinds are checked for every item
 * before anything is copied; the items' bytes then go into one block. */
static int list_from_json(ck_value *v, const json_t *j, ck_arena *arena, char *err, size_t err_max)
{
    size_t count = json_array_size(j);
    size_t total = 0;

    if (count > CK_LIST_MAX_ITEMS)
        return fail(err, err_max, CK_ELIMIT, "list has more than 1024 items");
    for (size_t k = 0; k < count; k++) {
        const json_t *item = json_array_get(j, k);
        if (!json_is_string(item)) {
            set_err(err, err_max, "item %zu is not a string", k);
            return CK_EINVAL;
        }
        size_t len = json_string_length(item);
        if (ck_add_overflows(total, len, &total) || total > CK_VALUE_MAX_BYTES)
            return fail(err, err_max, CK_ELIMIT, "list longer than 1048576 bytes in all");
        if (len != 0 && memchr(json_string_value(item), '\0', len) != NULL) {
            set_err(err, err_max, "item %zu contains a NUL character", k);
            return CK_EINVAL;
        }
    }
    v->u.list.items = NULL;
    v->u.list.count = 0;
    if (count == 0)
        return CK_OK;
    if (arena == NULL)
        return fail(err, err_max, CK_EINVAL, "no arena for the value's memory");

    /* count <= CK_LIST_MAX_ITEMS: no overflow. */
    ck_str *items = ck_arena__alloc(arena, count * sizeof(ck_str));
    char *data = ck_arena__alloc(arena, total);
    if (items == NULL || data == NULL)
        return fail(err, err_max, CK_ENOMEM, "out of memory");
    size_t off = 0;
    for (size_t k = 0; k < count; k++) {
        const json_t *item = json_array_get(j, k);
        size_t len = json_string_length(item);
        if (len != 0)
            memcpy(data + off, json_string_value(item), len);
        items[k].ptr = data + off;
        items[k].len = len;
        off += len;
    }
    v->u.list.items = items;
    v->u.list.count = count;
    return CK_OK;
}

/* The last step of both parsers: the same checks the store applies. */
static int finish(ck_value *out, const ck_value *v, char *err, size_t err_max)
{
    int rc = ck_codec__check(v);

    if (rc == CK_ELIMIT)
        return fail(err, err_max, rc, "value too large");
    if (rc != CK_OK) {
        bool text = v->type == CK_TYPE_STRING || v->type == CK_TYPE_LIST;
        return fail(err, err_max, rc, text ? "string is not valid UTF-8" : "invalid value");
    }
    *out = *v;
    return CK_OK;
}

int ck_value__from_json(ck_value *out, ck_type type, const json_t *j, ck_arena *arena, char *err,
                        size_t err_max)
{
    int rc;
    ck_value v;

    memset(out, 0, sizeof(*out));
    memset(&v, 0, sizeof(v));
    v.type = type;
    clear_err(err, err_max);
    if (j == NULL)
        return fail(err, err_max, CK_EINVAL, "missing value");

    if (json_is_string(j) && type != CK_TYPE_LIST) {
        /* Jansson checked the UTF-8 of the strings it parsed; finish()
         * checks it again for strings built without that check. */
        CK_TRY(scalar_from_text(&v, json_string_value(j), json_string_length(j), false, arena, err,
                                err_max));
        return finish(out, &v, err, err_max);
    }

    switch (type) {
    case CK_TYPE_STRING:
        return fail(err, err_max, CK_EINVAL, "expected a string");
    case CK_TYPE_INT:
        if (!json_is_integer(j))
            return fail(err, err_max, CK_EINVAL, "expected an integer");
        v.u.i = json_integer_value(j);
        break;
    case CK_TYPE_FLOAT:
        if (json_is_real(j))
            v.u.f = json_real_value(j);
        else if (json_is_integer(j))
            v.u.f = (double)json_integer_value(j); /* the nearest double */
        else
            return fail(err, err_max, CK_EINVAL, "expected a number");
        if (!isfinite(v.u.f))
            return fail(err, err_max, CK_EINVAL, "number out of range");
        break;
    case CK_TYPE_BOOL:
        if (!json_is_boolean(j))
            return fail(err, err_max, CK_EINVAL, "expected true or false");
        v.u.b = json_is_true(j) ? 1 : 0;
        break;
    case CK_TYPE_DATE:
        return fail(err, err_max, CK_EINVAL, "expected a date YYYY-MM-DD");
    case CK_TYPE_TIMESTAMP:
        return fail(err, err_max, CK_EINVAL, TS_EXPECTED);
    case CK_TYPE_BYTES:
        return fail(err, err_max, CK_EINVAL, "expected base64 text");
    case CK_TYPE_LIST:
        if (!json_is_array(j))
            return fail(err, err_max, CK_EINVAL, "expected a list of strings");
        rc = list_from_json(&v, j, arena, err, err_max);
        if (rc != CK_OK)
            return rc;
        break;
    default:
        return fail(err, err_max, CK_EINVAL, "unknown type");
    }
    return finish(out, &v, err, err_max);
}

int ck_value__from_text(ck_value *out, ck_type type, const char *s, size_t n, ck_arena *arena,
                        char *err, size_t err_max)
{
    int rc;
    ck_value v;

    memset(out, 0, sizeof(*out));
    memset(&v, 0, sizeof(v));
    v.type = type;
    clear_err(err, err_max);
    if (s == NULL && n != 0)
        return fail(err, err_max, CK_EINVAL, "missing value");
    if (s == NULL)
        s = "";

    if (type != CK_TYPE_LIST) {
        CK_TRY(scalar_from_text(&v, s, n, true, arena, err, err_max));
        return finish(out, &v, err, err_max);
    }

    /* A list: the text is a JSON array. Jansson's own error text may quote
     * the input, so it is not passed on. NUL escapes are let through the
     * parser so that the refusal names the item. */
    if (n > LIST_TEXT_MAX)
        return fail(err, err_max, CK_ELIMIT, "list text longer than 8388608 bytes");
    json_error_t jerr;
    json_t *j = json_loadb(s, n, JSON_ALLOW_NUL, &jerr);
    if (j == NULL || !json_is_array(j)) {
        json_decref(j);
        return fail(err, err_max, CK_EINVAL, "expected a JSON array of strings");
    }
    rc = ck_value__from_json(out, type, j, arena, err, err_max);
    json_decref(j);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Output: json_t                                                           */
/* ------------------------------------------------------------------------ */

/* The bytes of a valid string, never NULL (json_stringn refuses NULL). */
static const char *str_ptr(const ck_str *s)
{
    return s->len == 0 || s->ptr == NULL ? "" : s->ptr;
}

/* Base64 text of `n` bytes at `p` into `out` (reserved here), no quotes. */
static int append_base64(ck_buf *out, const char *p, size_t n, bool quoted)
{
    /* n <= CK_VALUE_MAX_BYTES for a valid value; larger is refused before
     * the size computation could overflow. */
    if (n > CK_VALUE_MAX_BYTES)
        return CK_EINVAL;
    size_t enc = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL); /* with NUL */
    CK_TRY(ck_buf__reserve(out, enc + 2));
    char *dst = (char *)out->p + out->len;
    size_t k = 0;
    if (quoted)
        dst[k++] = '"';
    (void)sodium_bin2base64(dst + k, enc, (const unsigned char *)(n == 0 ? "" : p), n,
                            sodium_base64_VARIANT_ORIGINAL);
    k += enc - 1; /* the NUL is overwritten or left past len */
    if (quoted)
        dst[k++] = '"';
    out->len += k;
    return CK_OK;
}

static json_t *bytes_to_json(const ck_str *s)
{
    ck_buf b = CK_BUF_INIT;
    json_t *j = NULL;

    if (append_base64(&b, str_ptr(s), s->len, false) == CK_OK)
        j = json_stringn_nocheck((const char *)b.p, b.len); /* base64 is ASCII */
    if (b.p != NULL)
        sodium_memzero(b.p, b.cap);
    ck_buf__free(&b);
    return j;
}

static json_t *list_to_json(const ck_value *v)
{
    json_t *a = json_array();

    if (a == NULL)
        return NULL;
    for (size_t k = 0; k < v->u.list.count; k++) {
        const ck_str *it = &v->u.list.items[k];
        /* UTF-8 checked by ck_codec__check. */
        if (json_array_append_new(a, json_stringn_nocheck(str_ptr(it), it->len)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *ck_value__to_json(const ck_value *v)
{
    char text[CK_TS_TEXT_MAX];

    if (v == NULL || ck_codec__check(v) != CK_OK)
        return NULL;
    switch (v->type) {
    case CK_TYPE_STRING:
        /* UTF-8 checked by ck_codec__check. */
        return json_stringn_nocheck(str_ptr(&v->u.str), v->u.str.len);
    case CK_TYPE_INT:
        return json_integer(v->u.i);
    case CK_TYPE_FLOAT:
        return json_real(v->u.f);
    case CK_TYPE_BOOL:
        return json_boolean(v->u.b);
    case CK_TYPE_DATE:
        if (ck_date__format(text, sizeof(text), v->u.date) != CK_OK)
            return NULL;
        return json_string_nocheck(text);
    case CK_TYPE_TIMESTAMP:
        if (ck_ts__format(text, sizeof(text), v) != CK_OK)
            return NULL;
        return json_string_nocheck(text);
    case CK_TYPE_BYTES:
        return bytes_to_json(&v->u.str);
    case CK_TYPE_LIST:
        return list_to_json(v);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Output: JSON text, as json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) writes   */
/* ------------------------------------------------------------------------ */

/* The letter that follows the backslash in the escape of a byte Jansson
 * escapes ('"', '\\' and U+0000..U+001F; 'u' for the \u00XX form). */
static char escape_letter(unsigned char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    default:
        return 'u';
    }
}

/* Put the buffer back as it was at `start` after a failed append. */
static void buf_restore(ck_buf *out, size_t start)
{
    if (out->len > start) {
        if (out->secure)
            sodium_memzero(out->p + start, out->len - start);
        out->len = start;
    }
}

/* ck_value__json_string without the restore on failure. */
static int append_string(ck_buf *out, const char *s, size_t n)
{
    size_t need;
    size_t run = 0;

    if (s == NULL)
        s = "";
    /* Room for the common case, nothing to escape, in one go. */
    if (ck_add_overflows(n, 2, &need))
        return CK_ELIMIT;
    CK_TRY(ck_buf__reserve(out, need));
    out->p[out->len++] = '"';
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue; /* copied as is, '/' and non-ASCII included */
        char e = escape_letter(c);
        char seq[6] = {'\\', e, '0', '0', hex_upper[c >> 4], hex_upper[c & 15]};
        CK_TRY(ck_buf__append(out, s + run, k - run));
        CK_TRY(ck_buf__append(out, seq, e == 'u' ? 6 : 2));
        run = k + 1;
    }
    CK_TRY(ck_buf__append(out, s + run, n - run));
    return ck_buf__append(out, "\"", 1);
}

int ck_value__json_string(ck_buf *out, const char *s, size_t n)
{
    size_t start = out->len;
    int rc = append_string(out, s, n);

    if (rc != CK_OK)
        buf_restore(out, start);
    return rc;
}

/* Decimal digits of v into buf (at least 20 bytes); returns the length. */
static size_t format_i64(char *buf, int64_t v)
{
    char tmp[20];
    size_t k = 0;
    size_t i = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[k++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[i++] = '-';
    while (k > 0)
        buf[i++] = tmp[--k];
    return i;
}

/*
 * A finite double as Jansson writes a real (jsonp_dtostr, precision 17):
 * "%.17g", the locale's decimal point turned into '.', ".0" appended when
 * there is neither '.' nor 'e', and the exponent without '+' or leading
 * zeros ("1e22", "1.5e-7"). buf holds at least 40 bytes; returns the
 * length, or 0 if snprintf failed.
 */
static size_t format_real(char *buf, size_t max, double d)
{
    int r = snprintf(buf, max, "%.17g", d);
    size_t n;

    if (r <= 0 || (size_t)r >= max - 3)
        return 0;
    n = (size_t)r;

    /* The decimal point, whatever the locale spells it: the bytes between
     * the integer digits and the next digit. */
    size_t k = buf[0] == '-' ? 1 : 0;
    while (k < n && is_digit(buf[k]))
        k++;
    if (k < n && buf[k] != 'e') {
        size_t e = k;
        while (e < n && !is_digit(buf[e]))
            e++;
        buf[k] = '.';
        memmove(buf + k + 1, buf + e, n - e + 1);
        n -= e - k - 1;
    }

    char *exp = memchr(buf, 'e', n);
    if (exp == NULL) {
        if (memchr(buf, '.', n) == NULL) {
            memcpy(buf + n, ".0", 3);
            n += 2;
        }
        return n;
    }
    /* Exponent: keep '-', drop '+' and leading zeros (keep one digit). */
    size_t start = (size_t)(exp - buf) + 1;
    size_t from = start;
    if (buf[from] == '-')
        start = ++from;
    else if (buf[from] == '+')
        from++;
    while (from + 1 < n && buf[from] == '0')
        from++;
    memmove(buf + start, buf + from, n - from + 1);
    n -= from - start;
    return n;
}

static int append_scalar(ck_buf *out, const ck_value *v)
{
    char text[48];
    size_t n;

    switch (v->type) {
    case CK_TYPE_INT:
        n = format_i64(text, v->u.i);
        return ck_buf__append(out, text, n);
    case CK_TYPE_FLOAT:
        if (!isfinite(v->u.f))
            return CK_EINVAL;
        n = format_real(text, sizeof(text), v->u.f);
        if (n == 0)
            return CK_EINVAL;
        return ck_buf__append(out, text, n);
    case CK_TYPE_BOOL:
        return v->u.b ? ck_buf__append(out, "true", 4) : ck_buf__append(out, "false", 5);
    case CK_TYPE_DATE:
        text[0] = '"';
        if (ck_date__format(text + 1, sizeof(text) - 2, v->u.date) != CK_OK)
            return CK_EINVAL;
        n = 1 + strlen(text + 1);
        text[n++] = '"';
        return ck_buf__append(out, text, n);
    case CK_TYPE_TIMESTAMP:
        text[0] = '"';
        if (ck_ts__format(text + 1, sizeof(text) - 2, v) != CK_OK)
            return CK_EINVAL;
        n = 1 + strlen(text + 1);
        text[n++] = '"';
        return ck_buf__append(out, text, n);
    default:
        return CK_EINVAL;
    }
}

int ck_value__append_json(ck_buf *out, const ck_value *v)
{
    int rc;
    size_t start = out->len;

    switch (v->type) {
    case CK_TYPE_STRING:
        rc = append_string(out, v->u.str.ptr, v->u.str.len);
        break;
    case CK_TYPE_BYTES:
        rc = append_base64(out, str_ptr(&v->u.str), v->u.str.len, true);
        break;
    case CK_TYPE_LIST:
        rc = v->u.list.count > 0 && v->u.list.items == NULL ? CK_EINVAL : CK_OK;
        if (rc == CK_OK)
            rc = ck_buf__append(out, "[", 1);
        for (size_t k = 0; rc == CK_OK && k < v->u.list.count; k++) {
            if (k > 0)
                rc = ck_buf__append(out, ",", 1);
            if (rc == CK_OK)
                rc = append_string(out, v->u.list.items[k].ptr, v->u.list.items[k].len);
        }
        if (rc == CK_OK)
            rc = ck_buf__append(out, "]", 1);
        break;
    default:
        rc = append_scalar(out, v);
        break;
    }
    if (rc != CK_OK)
        buf_restore(out, start);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Minimisation                                                             */
/* ------------------------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* The civil year of a DATE or TIMESTAMP, in the offset it was written. */
static int min_year(ck_value *out, const ck_value *in)
{
    int y, m, d;
    int32_t days;

    if ((in->type != CK_TYPE_DATE && in->type != CK_TYPE_TIMESTAMP) || ck_codec__check(in) != CK_OK)
        return CK_EINTERNAL;
    if (in->type == CK_TYPE_DATE) {
        days = in->u.date;
    } else {
        /* In range (checked): no overflow, and the day fits an int32. */
        int64_t local = in->u.ts.sec + (int64_t)in->u.ts.offset_min * 60;
        days = (int32_t)floor_div(local, 86400);
    }
    ck_date__to_ymd(days, &y, &m, &d);
    out->type = CK_TYPE_INT;
    out->u.i = y;
    return CK_OK;
}

/* The first `count` code points of a string (counting lead bytes, so that a
 * cut never splits a character). */
static int min_prefix(ck_value *out, const ck_value *in, uint32_t count)
{
    const unsigned char *p = (const unsigned char *)in->u.str.ptr;
    size_t n = in->u.str.len;
    size_t k;
    uint32_t seen = 0;

    if (in->type != CK_TYPE_STRING || count == 0 || (p == NULL && n != 0))
        return CK_EINTERNAL;
    for (k = 0; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80) {
            if (seen == count)
                break;
            seen++;
        }
    }
    out->type = CK_TYPE_STRING;
    out->u.str.ptr = k == 0 ? "" : in->u.str.ptr;
    out->u.str.len = k;
    return CK_OK;
}

static int min_domain(ck_value *out, const ck_value *in)
{
    const char *p = in->u.str.ptr;
    size_t n = in->u.str.len;

    if (in->type != CK_TYPE_STRING || (p == NULL && n != 0))
        return CK_EINTERNAL;
    const char *at = n == 0 ? NULL : memrchr(p, '@', n);
    out->type = CK_TYPE_STRING;
    if (at == NULL) {
        out->u.str.ptr = "";
        out->u.str.len = 0;
    } else {
        out->u.str.ptr = at + 1;
        out->u.str.len = n - (size_t)(at + 1 - p);
    }
    return CK_OK;
}

/* -1, 0 or 1 as the finite double f is below, equal to or above the int64 e,
 * exactly (no conversion of e to double, which would round it beyond 2^53).
 * Outside [-2^63, 2^63) f is beyond every int64. Inside, the conversion to
 * int64 truncates toward zero without loss, and the fraction left (exact:
 * below 2^53 the integer part is a double, above it f has no fraction)
 * decides a tie. */
static int cmp_f64_i64(double f, int64_t e)
{
    if (f < -9223372036854775808.0)
        return -1;
    if (f >= 9223372036854775808.0)
        return 1;
    int64_t ti = (int64_t)f;
    if (ti != e)
        return ti < e ? -1 : 1;
    double frac = f - (double)ti;
    return frac < 0 ? -1 : frac > 0 ? 1 : 0;
}

static int cmp_value_edge(const ck_value *in, int64_t e)
{
    if (in->type == CK_TYPE_INT)
        return in->u.i < e ? -1 : in->u.i > e ? 1 : 0;
    return cmp_f64_i64(in->u.f, e);
}

static int min_band(ck_value *out, const ck_value *in, const ck_schema_min *m, ck_arena *arena)
{
    char label[48]; /* ">=" or two int64 and '-': at most 41 bytes */
    size_t n = 0;
    uint32_t i = 0;

    if ((in->type != CK_TYPE_INT && in->type != CK_TYPE_FLOAT) ||
        (in->type == CK_TYPE_FLOAT && !isfinite(in->u.f)) || m->edges == NULL || m->nedges == 0 ||
        arena == NULL)
        return CK_EINTERNAL;
    /* i = the number of edges <= v (the edges ascend). */
    while (i < m->nedges && cmp_value_edge(in, m->edges[i]) >= 0)
        i++;
    if (i == 0) {
        label[n++] = '<';
        n += format_i64(label + n, m->edges[0]);
    } else if (i == m->nedges) {
        label[n++] = '>';
        label[n++] = '=';
        n += format_i64(label + n, m->edges[i - 1]);
    } else {
        n += format_i64(label + n, m->edges[i - 1]);
        label[n++] = '-';
        n += format_i64(label + n, m->edges[i]);
    }
    char *p = ck_arena__dup(arena, label, n);
    if (p == NULL)
        return CK_ENOMEM;
    out->type = CK_TYPE_STRING;
    out->u.str.ptr = p;
    out->u.str.len = n;
    return CK_OK;
}

int ck_value__minimize(ck_value *out, const ck_value *in, const ck_schema_min *m, ck_arena *arena)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (in == NULL || m == NULL)
        return CK_EINTERNAL;
    switch (m->kind) {
    case CK_MIN_NONE:
        *out = *in;
        return CK_OK;
    case CK_MIN_YEAR:
        rc = min_year(out, in);
        break;
    case CK_MIN_PREFIX:
        rc = min_prefix(out, in, m->prefix);
        break;
    case CK_MIN_DOMAIN:
        rc = min_domain(out, in);
        break;
    case CK_MIN_BAND:
        rc = min_band(out, in, m, arena);
        break;
    default:
        rc = CK_EINTERNAL;
        break;
    }
    if (rc != CK_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}
