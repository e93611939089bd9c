/*
 * values.h - helpers the value tests and fuzz targets share: ck_value
 * constructors, exact equality, an all-zero check. Header-only; include it
 * after ckstore.h.
 */
#ifndef CK_TEST_VALUES_H
#define CK_TEST_VALUES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ckstore.h"

#if defined(__GNUC__)
#define CK_TEST_UNUSED __attribute__((unused))
#else
#define CK_TEST_UNUSED
#endif

CK_TEST_UNUSED static ck_value v_str(const char *s, size_t n)
{
    ck_value v;
    memset(&v, 0, sizeof(v));
    v.type = CK_TYPE_STRING;
    v.u.str.ptr = s;
    v.u.str.len = n;
    return v;
}

CK_TEST_UNUSED static ck_value v_cstr(const char *s)
{
    return v_str(s, strlen(s));
}

CK_TEST_UNUSED static ck_value v_bytes(const void *p, size_t n)
{
    ck_value v = v_str(p, n);
    v.type = CK_TYPE_BYTES;
    return v;
}

CK_TEST_UNUSED static ck_value v_int(int64_t i)
{
    ck_value v;
    memset(&v, 0, sizeof(v));
    v.type = CK_TYPE_INT;
    v.u.i = i;
    return v;
}

CK_TEST_UNUSED static ck_value v_float(double f)
{
    ck_value v;
    memset(&v, 0, sizeof(v));
    v.type = CK_TYPE_FLOAT;
    v.u.f = f;
    return v;
}

CK_TEST_UNUSED static ck_value v_bool(int b)
{
    ck_value v;
    memset(&v, 0, sizeof(v));
    v.type = CK_TYPE_BOOL;
    v.u.b = b;
    return v;
}

CK_TEST_UNUSED static ck_value v_date(int32_t days)
{
    ck_value v;
    memset(&v, 0, sizeof(v));
    v.type = CK_TYPE_DATE;
    v.u.date = days;
    return v;
}

CK_TEST_UNUSED static ck_value v_ts(int64_t sec, int32_t nsec, int16_t off)
{
    ck_value v;
    memset(&v, 0, sizeof(v));
    v.type = CK_TYPE_TIMESTAMP;
    v.u.ts.sec = sec;
    v.u.ts.nsec = nsec;
    v.u.ts.offset_min = off;
    return v;
}

CK_TEST_UNUSED static ck_value v_list(const ck_str *items, size_t count)
{
    ck_value v;
    memset(&v, 0, sizeof(v));
    v.type = CK_TYPE_LIST;
    v.u.list.items = items;
    v.u.list.count = count;
    return v;
}

CK_TEST_UNUSED static bool str_equal(const ck_str *a, const ck_str *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* Exact equality: floats bit for bit (so -0.0 != 0.0), strings byte for
 * byte. */
CK_TEST_UNUSED static bool value_equal(const ck_value *a, const ck_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case CK_TYPE_STRING:
    case CK_TYPE_BYTES:
        return str_equal(&a->u.str, &b->u.str);
    case CK_TYPE_INT:
        return a->u.i == b->u.i;
    case CK_TYPE_FLOAT:
        return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
    case CK_TYPE_BOOL:
        return a->u.b == b->u.b;
    case CK_TYPE_DATE:
        return a->u.date == b->u.date;
    case CK_TYPE_TIMESTAMP:
        return a->u.ts.sec == b->u.ts.sec && a->u.ts.nsec == b->u.ts.nsec &&
               a->u.ts.offset_min == b->u.ts.offset_min;
    case CK_TYPE_LIST:
        if (a->u.list.count != b->u.list.count)
            return false;
        for (size_t k = 0; k < a->u.list.count; k++) {
            if (!str_equal(&a->u.list.items[k], &b->u.list.items[k]))
                return false;
        }
        return true;
    }
    return false;
}

CK_TEST_UNUSED static bool all_zero(const void *p, size_t n)
{
    const uint8_t *q = p;
    for (size_t k = 0; k < n; k++) {
        if (q[k] != 0)
            return false;
    }
    return true;
}

#endif /* CK_TEST_VALUES_H */
