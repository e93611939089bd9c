/*
 * fuzz_mp.c - libFuzzer target for the bounded msgpack reader.
 *
 * Walks arbitrary bytes object by object (descending into containers by
 * reading their headers) with ck_mp__peek and the reader of each kind, and
 * at every position compares ck_mp__skip with a small recursive reference
 * built from peek and the readers. Properties checked (abort() on
 * violation):
 *  - no read outside the input (ASan), every returned pointer and length
 *    inside it, the reader never past `end`;
 *  - a failed call leaves the position unchanged;
 *  - peek succeeds exactly when the kind's reader succeeds, and the integer
 *    readers agree with each other on range;
 *  - ck_mp__skip succeeds, and stops, exactly where the reference does.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -g -O1 -D_GNU_SOURCE
 *        -Iinclude -Icore core/mem.c core/buf.c core/mp.c core/codec.c
 *        tests/fuzz/fuzz_mp.c -lsodium -lmsgpackc -lm
 * Seeds: tests/fuzz/corpus/mp/ (copy them elsewhere before fuzzing).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *g_begin;
static const uint8_t *g_end;

static void in_input(const void *p, size_t n)
{
    const uint8_t *q = p;
    if (q < g_begin || q > g_end || n > (size_t)(g_end - q))
        abort();
}

static void unchanged(const ck_mp *r, const ck_mp *before)
{
    if (r->p != before->p || r->end != before->end)
        abort();
}

/* Read the next object's scalar value or container header with the reader
 * of `kind`; *count gets a container's element count (map: 2 * entries). */
static int read_one(ck_mp *r, ck_mp_kind kind, uint64_t *count)
{
    ck_mp before = *r;
    const char *s;
    const uint8_t *p;
    uint32_t n = 0;
    int8_t t;
    bool b;
    double f;
    int rc;

    *count = 0;
    switch (kind) {
    case CK_MP_NIL:
        rc = ck_mp__nil(r);
        break;
    case CK_MP_BOOL:
        rc = ck_mp__bool(r, &b);
        break;
    case CK_MP_UINT:
    case CK_MP_INT: {
        uint64_t u;
        int64_t i;
        uint32_t u32;
        ck_mp r1 = *r, r2 = *r, r3 = *r;
        int ru = ck_mp__u64(&r1, &u);
        int ri = ck_mp__i64(&r2, &i);
        int r32 = ck_mp__u32(&r3, &u32);
        if (kind == CK_MP_INT) {
            if (ru == CK_OK || r32 == CK_OK || ri != CK_OK || i >= 0)
                abort();
        } else {
            if (ru != CK_OK)
                abort();
            if ((ri == CK_OK) != (u <= (uint64_t)INT64_MAX) || (ri == CK_OK && (uint64_t)i != u))
                abort();
            if ((r32 == CK_OK) != (u <= UINT32_MAX) || (r32 == CK_OK && u32 != u))
                abort();
        }
        if (ru != CK_OK)
            unchanged(&r1, r);
        if (ri != CK_OK)
            unchanged(&r2, r);
        if (r32 != CK_OK)
            unchanged(&r3, r);
        if (ru == CK_OK && ri == CK_OK && r1.p != r2.p)
            abort();
        if (r32 == CK_OK && r3.p != r1.p)
            abort();
        /* The one that must have succeeded moves on. */
        *r = kind == CK_MP_INT ? r2 : r1;
        rc = CK_OK;
        break;
    }
    case CK_MP_FLOAT:
        rc = ck_mp__f64(r, &f);
        break;
    case CK_MP_STR:
        rc = ck_mp__str(r, &s, &n);
        if (rc == CK_OK)
            in_input(s, n);
        break;
    case CK_MP_BIN:
        rc = ck_mp__bin(r, &p, &n);
        if (rc == CK_OK)
            in_input(p, n);
        break;
    case CK_MP_EXT:
        rc = ck_mp__ext(r, &t, &p, &n);
        if (rc == CK_OK)
            in_input(p, n);
        break;
    case CK_MP_ARRAY:
        rc = ck_mp__array(r, &n);
        *count = n;
        break;
    case CK_MP_MAP:
        rc = ck_mp__map(r, &n);
        *count = 2 * (uint64_t)n;
        break;
    default:
        abort();
    }
    if (rc != CK_OK)
        unchanged(r, &before);
    else if (*count > ck_mp__left(r)) /* every element needs a byte */
        abort();
    in_input(r->p, 0);
    return rc;
}

/* The reference: recursive, depth-bounded like ck_mp__skip. */
static int ref_skip(ck_mp *r, int depth)
{
    ck_mp_kind kind;
    uint64_t count;

    CK_TRY(ck_mp__peek(r, &kind));
    if ((kind == CK_MP_ARRAY || kind == CK_MP_MAP) && depth == CK_MP_MAX_DEPTH)
        return CK_EFORMAT;
    CK_TRY(read_one(r, kind, &count));
    for (uint64_t k = 0; k < count; k++)
        CK_TRY(ref_skip(r, depth + 1));
    return CK_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_mp r;

    g_begin = data;
    g_end = data + size;
    ck_mp__init(&r, size != 0 ? data : (const uint8_t *)"", size);

    /* At most one step per input byte: each step consumes at least one. */
    while (ck_mp__left(&r) > 0) {
        ck_mp_kind kind;
        ck_mp s = r;
        ck_mp ref = r;
        uint64_t count;

        int rs = ck_mp__skip(&s);
        int rr = ref_skip(&ref, 0);
        if (rs != rr)
            abort();
        if (rs == CK_OK ? (s.p != ref.p || s.p <= r.p) : s.p != r.p)
            abort();
        in_input(s.p, 0);

        if (ck_mp__peek(&r, &kind) != CK_OK) {
            if (rs == CK_OK)
                abort();
            break;
        }
        const uint8_t *at = r.p;
        if (read_one(&r, kind, &count) != CK_OK)
            abort(); /* peek vouched for the header */
        if (r.p <= at)
            abort();
        /* A scalar is skipped exactly as far as its reader goes. */
        if (kind != CK_MP_ARRAY && kind != CK_MP_MAP && (rs != CK_OK || s.p != r.p))
            abort();
    }
    return 0;
}
