/*
 * codec.c - a ck_value as one msgpack object, UTF-8 validation, and the
 * text forms of dates and timestamps.
 *
 * The encoding (see internal.h) is canonical on write: INT in its shortest
 * form, FLOAT always float 64, DATE and TIMESTAMP as ext 1 / ext 2. Decoding
 * is lenient about the msgpack form (any int width, float 32, any ext header
 * form) but strict about the value: type, exact ext length, ranges, UTF-8
 * and size limits, and nothing may follow the value.
 */
#include "internal.h"

#include <math.h>
#include <sodium.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * ck_codec__utf8_valid - true when the n bytes at s are well-formed UTF-8
 * (Unicode 15, table 3-7): no overlong forms, no surrogates (U+D800..DFFF),
 * nothing above U+10FFFF, no truncated sequence. U+0000 is valid. s may be
 * NULL when n is 0.
 */
bool ck_codec__text_ok(const char *s, size_t n, size_t max)
{
    if (s == NULL || n == 0 || n > max || !ck_codec__utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

bool ck_codec__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        /* ASCII runs, eight bytes at a time. */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, sizeof(w));
            if ((w & UINT64_C(0x8080808080808080)) != 0)
                break;
            i += 8;
        }
        if (i == n)
            break;

        unsigned char c = p[i];
        size_t more;
        unsigned char lo = 0x80; /* allowed range of the second byte */
        unsigned char hi = 0xbf;

        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return false; /* continuation byte, 0xc0, 0xc1, 0xf5..0xff */
        }
        if (n - i - 1 < more)
            return false;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= more; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        }
        i += 1 + more;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Calendar                                                                 */
/* ------------------------------------------------------------------------ */

/* Floor division and modulo for a positive divisor. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Howard Hinnant's days_from_civil: days since 1970-01-01 of y-m-d in the
 * proleptic Gregorian calendar. m and d must be in range; any int y. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

int ck_date__from_ymd(int32_t *out_days, int y, int m, int d)
{
    *out_days = 0;
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return CK_EINVAL;
    *out_days = (int32_t)days_from_civil(y, m, d); /* within the DATE range */
    return CK_OK;
}

/* Howard Hinnant's civil_from_days, in 64 bits so that every int32_t input
 * is safe. */
void ck_date__to_ymd(int32_t days, int *y, int *m, int *d)
{
    int64_t z = (int64_t)days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;                           /* [1, 31] */
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;                              /* [1, 12] */

    /* |year| < 2^31 / 365 + 1, so it fits an int. */
    *y = (int)(yoe + era * 400 + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

static bool date_in_range(int64_t days)
{
    return days >= CK_DATE_MIN_DAYS && days <= CK_DATE_MAX_DAYS;
}

/* The UTC instant and the local time must both lie in years 0001..9999. */
static bool ts_in_range(int64_t sec, int offset_min)
{
    if (sec < CK_TS_MIN_SEC || sec > CK_TS_MAX_SEC)
        return false;
    int64_t local = sec + (int64_t)offset_min * 60; /* no overflow: bounded */
    return local >= CK_TS_MIN_SEC && local <= CK_TS_MAX_SEC;
}

/* ------------------------------------------------------------------------ */
/* Text forms                                                               */
/* ------------------------------------------------------------------------ */

/* Parse exactly `width` ASCII digits at s; false if any is not a digit. */
static bool parse_digits(const char *s, size_t width, int *out)
{
    int v = 0;

    for (size_t k = 0; k < width; k++) {
        if (s[k] < '0' || s[k] > '9')
            return false;
        v = v * 10 + (s[k] - '0');
    }
    *out = v;
    return true;
}

/* Write v (0 <= v < 10^width) as exactly `width` digits. */
static void put_digits(char *s, size_t width, unsigned long v)
{
    for (size_t k = width; k > 0; k--) {
        s[k - 1] = (char)('0' + (int)(v % 10));
        v /= 10;
    }
}

/* Parse "YYYY-MM-DD" at s (10 bytes available). */
static int parse_date10(int32_t *out, const char *s)
{
    int y, m, d;

    *out = 0;
    if (!parse_digits(s, 4, &y) || s[4] != '-' || !parse_digits(s + 5, 2, &m) || s[7] != '-' ||
        !parse_digits(s + 8, 2, &d))
        return CK_EINVAL;
    return ck_date__from_ymd(out, y, m, d);
}

/* Write "YYYY-MM-DD" (no NUL) at s; days must be in the DATE range. */
static void put_date10(char *s, int32_t days)
{
    int y, m, d;

    ck_date__to_ymd(days, &y, &m, &d);
    put_digits(s, 4, (unsigned long)y);
    s[4] = '-';
    put_digits(s + 5, 2, (unsigned long)m);
    s[7] = '-';
    put_digits(s + 8, 2, (unsigned long)d);
}

int ck_date__parse(int32_t *out, const char *s, size_t n)
{
    *out = 0;
    if (n != 10)
        return CK_EINVAL;
    return parse_date10(out, s);
}

int ck_date__format(char *out, size_t out_max, int32_t days)
{
    if (out_max > 0)
        out[0] = '\0';
    if (out_max < CK_DATE_TEXT_MAX || !date_in_range(days))
        return CK_EINVAL;
    put_date10(out, days);
    out[10] = '\0';
    return CK_OK;
}

int ck_ts__parse(ck_value *out, const char *s, size_t n)
{
    int rc = CK_EINVAL;
    int32_t days;
    int hh, mi, ss, oh, om;
    int32_t nsec = 0;
    int offset = 0;
    size_t i;

    memset(out, 0, sizeof(*out));
    /* The shortest form is "YYYY-MM-DDTHH:MM:SSZ", 20 bytes. */
    CK_ENSURE(n >= 20, CK_EINVAL);
    CK_GUARD(parse_date10(&days, s));
    CK_ENSURE(s[10] == 'T' || s[10] == 't', CK_EINVAL);
    CK_ENSURE(parse_digits(s + 11, 2, &hh) && s[13] == ':' && parse_digits(s + 14, 2, &mi) &&
                  s[16] == ':' && parse_digits(s + 17, 2, &ss),
              CK_EINVAL);
    CK_ENSURE(hh <= 23 && mi <= 59 && ss <= 59, CK_EINVAL);

    i = 19;
    if (s[i] == '.') {
        size_t digits = 0;
        int32_t scale = 1000000000;
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            CK_ENSURE(digits < 9, CK_EINVAL);
            scale /= 10;
            nsec += (int32_t)(s[i] - '0') * scale;
            digits++;
            i++;
        }
        CK_ENSURE(digits > 0, CK_EINVAL);
    }

    CK_ENSURE(i < n, CK_EINVAL);
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else {
        CK_ENSURE(s[i] == '+' || s[i] == '-', CK_EINVAL);
        CK_ENSURE(n - i == 6, CK_EINVAL);
        CK_ENSURE(parse_digits(s + i + 1, 2, &oh) && s[i + 3] == ':' &&
                      parse_digits(s + i + 4, 2, &om),
                  CK_EINVAL);
        CK_ENSURE(oh <= 23 && om <= 59, CK_EINVAL);
        offset = oh * 60 + om;
        if (s[i] == '-')
            offset = -offset;
        i += 6;
    }
    CK_ENSURE(i == n, CK_EINVAL);

    int64_t local = (int64_t)days * 86400 + hh * 3600 + mi * 60 + ss;
    int64_t sec = local - (int64_t)offset * 60;
    CK_ENSURE(ts_in_range(sec, offset), CK_EINVAL);

    out->type = CK_TYPE_TIMESTAMP;
    out->u.ts.sec = sec;
    out->u.ts.nsec = nsec;
    out->u.ts.offset_min = (int16_t)offset; /* |offset| <= 1439 */
    rc = CK_OK;

cleanup:
    if (rc != CK_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

int ck_ts__format(char *out, size_t out_max, const ck_value *v)
{
    char tmp[CK_TS_TEXT_MAX];
    size_t i;

    if (out_max > 0)
        out[0] = '\0';
    if (out_max < CK_TS_TEXT_MAX || v->type != CK_TYPE_TIMESTAMP || ck_codec__check(v) != CK_OK)
        return CK_EINVAL;

    int offset = v->u.ts.offset_min;
    int64_t local = v->u.ts.sec + (int64_t)offset * 60;
    int64_t days = floor_div(local, 86400);
    int64_t rem = local - days * 86400; /* [0, 86399] */

    put_date10(tmp, (int32_t)days); /* in range: checked above */
    tmp[10] = 'T';
    put_digits(tmp + 11, 2, (unsigned long)(rem / 3600));
    tmp[13] = ':';
    put_digits(tmp + 14, 2, (unsigned long)(rem / 60 % 60));
    tmp[16] = ':';
    put_digits(tmp + 17, 2, (unsigned long)(rem % 60));
    i = 19;

    if (v->u.ts.nsec != 0) {
        size_t digits = 9;
        unsigned long frac = (unsigned long)v->u.ts.nsec;
        while (frac % 10 == 0) { /* terminates: frac != 0 */
            frac /= 10;
            digits--;
        }
        tmp[i++] = '.';
        put_digits(tmp + i, digits, frac);
        i += digits;
    }

    if (offset == 0) {
        tmp[i++] = 'Z';
    } else {
        int a = offset < 0 ? -offset : offset;
        tmp[i++] = offset < 0 ? '-' : '+';
        put_digits(tmp + i, 2, (unsigned long)(a / 60));
        tmp[i + 2] = ':';
        put_digits(tmp + i + 3, 2, (unsigned long)(a % 60));
        i += 5;
    }
    tmp[i] = '\0';
    memcpy(out, tmp, i + 1); /* i + 1 <= CK_TS_TEXT_MAX <= out_max */
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Value check                                                              */
/* ------------------------------------------------------------------------ */

/* A string or bytes: within the size limit, and a pointer when non-empty. */
static int check_str(const ck_str *s, bool utf8)
{
    if (s->len > CK_VALUE_MAX_BYTES)
        return CK_ELIMIT;
    if (s->ptr == NULL && s->len != 0)
        return CK_EINVAL;
    if (utf8 && !ck_codec__utf8_valid(s->ptr, s->len))
        return CK_EINVAL;
    return CK_OK;
}

static int check_list(const ck_value *v)
{
    size_t total = 0;

    if (v->u.list.count > CK_LIST_MAX_ITEMS)
        return CK_ELIMIT;
    if (v->u.list.items == NULL && v->u.list.count != 0)
        return CK_EINVAL;
    /* Sizes first, so that an oversized list is refused before it is
     * scanned. */
    for (size_t k = 0; k < v->u.list.count; k++) {
        if (ck_add_overflows(total, v->u.list.items[k].len, &total) || total > CK_VALUE_MAX_BYTES)
            return CK_ELIMIT;
    }
    for (size_t k = 0; k < v->u.list.count; k++)
        CK_TRY(check_str(&v->u.list.items[k], true));
    return CK_OK;
}

/*
 * ck_codec__check - see internal.h. CK_ELIMIT for sizes (a string or bytes
 * longer than CK_VALUE_MAX_BYTES, a list of more than CK_LIST_MAX_ITEMS
 * items or whose items total more than CK_VALUE_MAX_BYTES), CK_EINVAL for
 * everything else: an unknown type, invalid UTF-8, a NaN or infinite float,
 * a BOOL other than 0 or 1, a DATE outside 0001-01-01..9999-12-31, a
 * TIMESTAMP with nsec outside 0..999 999 999, |offset| > 1439, or an
 * instant or local time outside years 0001..9999.
 */
int ck_codec__check(const ck_value *v)
{
    if (v == NULL)
        return CK_EINVAL;
    switch (v->type) {
    case CK_TYPE_STRING:
        return check_str(&v->u.str, true);
    case CK_TYPE_BYTES:
        return check_str(&v->u.str, false);
    case CK_TYPE_INT:
        return CK_OK;
    case CK_TYPE_FLOAT:
        return isfinite(v->u.f) ? CK_OK : CK_EINVAL;
    case CK_TYPE_BOOL:
        return v->u.b == 0 || v->u.b == 1 ? CK_OK : CK_EINVAL;
    case CK_TYPE_DATE:
        return date_in_range(v->u.date) ? CK_OK : CK_EINVAL;
    case CK_TYPE_TIMESTAMP:
        if (v->u.ts.nsec < 0 || v->u.ts.nsec > 999999999 || v->u.ts.offset_min < -1439 ||
            v->u.ts.offset_min > 1439 || !ts_in_range(v->u.ts.sec, v->u.ts.offset_min))
            return CK_EINVAL;
        return CK_OK;
    case CK_TYPE_LIST:
        return check_list(v);
    default:
        return CK_EINVAL;
    }
}

/* ------------------------------------------------------------------------ */
/* Encode                                                                   */
/* ------------------------------------------------------------------------ */

static void store_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t k = n; k > 0; k--) {
        p[k - 1] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

/*
 * ck_codec__encode - append the encoding of `v` to `out`.
 *
 * The value is checked first (ck_codec__check: CK_EINVAL, CK_ELIMIT).
 * On failure `out` is restored to its length before the call (the bytes
 * written are wiped first if it is secure), so a caller can encode several
 * values into one buffer and stop at the first error.
 * Returns CK_OK, CK_EINVAL, CK_ELIMIT or CK_ENOMEM.
 */
int ck_codec__encode(ck_buf *out, const ck_value *v)
{
    int rc;
    size_t start = out->len;
    ck_mp_writer w;
    uint8_t ext[14];

    CK_GUARD(ck_codec__check(v));
    ck_mp_writer__init(&w, out);
    switch (v->type) {
    case CK_TYPE_STRING:
        ck_mp_writer__str(&w, v->u.str.ptr, v->u.str.len);
        break;
    case CK_TYPE_BYTES:
        ck_mp_writer__bin(&w, v->u.str.ptr, v->u.str.len);
        break;
    case CK_TYPE_INT:
        ck_mp_writer__i64(&w, v->u.i);
        break;
    case CK_TYPE_FLOAT:
        (void)msgpack_pack_double(&w.pk, v->u.f); /* errors land in w.rc */
        break;
    case CK_TYPE_BOOL:
        ck_mp_writer__bool(&w, v->u.b != 0);
        break;
    case CK_TYPE_DATE:
        store_be(ext, (uint64_t)(int64_t)v->u.date, 4);
        if (msgpack_pack_ext(&w.pk, 4, CK_EXT_DATE) == 0)
            (void)msgpack_pack_ext_body(&w.pk, ext, 4);
        break;
    case CK_TYPE_TIMESTAMP:
        store_be(ext, (uint64_t)v->u.ts.sec, 8);
        store_be(ext + 8, (uint64_t)v->u.ts.nsec, 4);
        store_be(ext + 12, (uint64_t)(int64_t)v->u.ts.offset_min, 2);
        if (msgpack_pack_ext(&w.pk, 14, CK_EXT_TIMESTAMP) == 0)
            (void)msgpack_pack_ext_body(&w.pk, ext, 14);
        break;
    case CK_TYPE_LIST:
        /* count <= CK_LIST_MAX_ITEMS: checked */
        ck_mp_writer__array(&w, (uint32_t)v->u.list.count);
        for (size_t k = 0; k < v->u.list.count; k++)
            ck_mp_writer__str(&w, v->u.list.items[k].ptr, v->u.list.items[k].len);
        break;
    default:
        CK_ENSURE(false, CK_EINTERNAL); /* ck_codec__check refused it */
    }
    rc = w.rc;

cleanup:
    if (rc != CK_OK && out->len > start) {
        if (out->secure)
            sodium_memzero(out->p + start, out->len - start);
        out->len = start;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Decode                                                                   */
/* ------------------------------------------------------------------------ */

static int64_t load_be_signed(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t k = 0; k < n; k++)
        v = (v << 8) | p[k];
    /* Sign-extend, then reinterpret: two's complement is guaranteed for the
     * exact-width types, and memcpy avoids the implementation-defined
     * conversion of an out-of-range unsigned value. */
    if (n < 8 && (v >> (n * 8 - 1)) != 0)
        v |= UINT64_MAX << (n * 8);
    int64_t s;
    memcpy(&s, &v, sizeof(s));
    return s;
}

/* The ext of type `type` and exactly `len` bytes. */
static int decode_ext(ck_mp *r, int8_t type, uint32_t len, const uint8_t **out)
{
    int8_t t;
    uint32_t n;
    const uint8_t *p;
    ck_mp save = *r;

    CK_TRY(ck_mp__ext(r, &t, &p, &n));
    if (t != type || n != len) {
        *r = save;
        return CK_EFORMAT;
    }
    *out = p;
    return CK_OK;
}

static int decode_list(ck_value *v, ck_mp *r, ck_arena *arena)
{
    uint32_t count;
    ck_str *items;
    size_t total = 0;

    CK_TRY(ck_mp__array(r, &count));
    v->u.list.items = NULL;
    v->u.list.count = 0;
    if (count > CK_LIST_MAX_ITEMS)
        return CK_ELIMIT;
    if (count == 0)
        return CK_OK;
    if (arena == NULL)
        return CK_EINVAL;
    /* count <= CK_LIST_MAX_ITEMS: the product cannot overflow. */
    items = ck_arena__alloc(arena, count * sizeof(ck_str));
    if (items == NULL)
        return CK_ENOMEM;
    for (uint32_t k = 0; k < count; k++) {
        const char *s;
        uint32_t len;
        CK_TRY(ck_mp__str(r, &s, &len));
        /* Stop at the limit as soon as it is crossed. */
        if (ck_add_overflows(total, len, &total) || total > CK_VALUE_MAX_BYTES)
            return CK_ELIMIT;
        items[k].ptr = s;
        items[k].len = len;
    }
    v->u.list.items = items;
    v->u.list.count = count;
    return CK_OK;
}

static const uint8_t no_bytes[1];

/*
 * ck_codec__decode - see internal.h.
 *
 * `out` is all zero on failure. Sizes are checked before contents, so an
 * oversized value is CK_ELIMIT even if it is also malformed further on; a
 * value that is well-formed msgpack but breaks its type's invariants
 * (invalid UTF-8, NaN, a date out of range...) is CK_EFORMAT. A LIST with
 * items needs an `arena` (CK_EINVAL without one); on failure the arena may
 * hold an unused item array, released with the arena. `expect` outside the
 * ck_type values is CK_EINVAL.
 */
int ck_codec__decode(ck_value *out, ck_type expect, const uint8_t *p, size_t n, ck_arena *arena)
{
    int rc;
    ck_mp r;
    ck_value v;
    const uint8_t *e;
    uint32_t len;
    bool b;

    memset(out, 0, sizeof(*out));
    memset(&v, 0, sizeof(v));
    CK_ENSURE(p != NULL || n == 0, CK_EINVAL);
    /* ck_mp__init computes p + n, undefined for a NULL p even when n is 0. */
    ck_mp__init(&r, p != NULL ? p : no_bytes, n);
    v.type = expect;

    switch (expect) {
    case CK_TYPE_STRING:
        CK_GUARD(ck_mp__str(&r, &v.u.str.ptr, &len));
        v.u.str.len = len;
        break;
    case CK_TYPE_BYTES: {
        const uint8_t *bytes;
        CK_GUARD(ck_mp__bin(&r, &bytes, &len));
        v.u.str.ptr = (const char *)bytes;
        v.u.str.len = len;
        break;
    }
    case CK_TYPE_INT:
        CK_GUARD(ck_mp__i64(&r, &v.u.i));
        break;
    case CK_TYPE_FLOAT:
        CK_GUARD(ck_mp__f64(&r, &v.u.f));
        break;
    case CK_TYPE_BOOL:
        CK_GUARD(ck_mp__bool(&r, &b));
        v.u.b = b ? 1 : 0;
        break;
    case CK_TYPE_DATE:
        CK_GUARD(decode_ext(&r, CK_EXT_DATE, 4, &e));
        v.u.date = (int32_t)load_be_signed(e, 4);
        break;
    case CK_TYPE_TIMESTAMP: {
        CK_GUARD(decode_ext(&r, CK_EXT_TIMESTAMP, 14, &e));
        int64_t nsec = load_be_signed(e + 8, 4);
        /* An unsigned field: a value of 2^31 or more is out of range. */
        CK_ENSURE(nsec >= 0 && nsec <= 999999999, CK_EFORMAT);
        v.u.ts.sec = load_be_signed(e, 8);
        v.u.ts.nsec = (int32_t)nsec;
        v.u.ts.offset_min = (int16_t)load_be_signed(e + 12, 2);
        break;
    }
    case CK_TYPE_LIST:
        CK_GUARD(decode_list(&v, &r, arena));
        break;
    default:
        CK_ENSURE(false, CK_EINVAL);
    }
    CK_ENSURE(ck_mp__left(&r) == 0, CK_EFORMAT);

    rc = ck_codec__check(&v);
    if (rc == CK_EINVAL)
        rc = CK_EFORMAT; /* the bytes, not the caller, are at fault */
    CK_GUARD(rc);
    *out = v;

cleanup:
    return rc;
}

void ck_ts__text(char out[CK_TS_TEXT_MAX], int64_t sec)
{
    ck_value tv;
    memset(&tv, 0, sizeof tv);
    tv.type = CK_TYPE_TIMESTAMP;
    tv.u.ts.sec = sec;
    if (ck_ts__format(out, CK_TS_TEXT_MAX, &tv) != CK_OK)
        snprintf(out, CK_TS_TEXT_MAX, "%lld", (long long)sec);
}
