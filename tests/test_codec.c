/*
 * test_codec.c - tests of the value codec (codec.c), the msgpack reader and
 * writer (mp.c), the date and timestamp helpers (codec.c), and the buffer
 * and arena (buf.c) they rest on.
 *
 * Every negative case asserts the exact status code, and every positive case
 * the exact value or bytes, so that each assertion can fail.
 */
/* ck-test: fast */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#ifdef CK_FAULT_INJECTION
#include "fault.h"
#endif

/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include "values.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

#define MIB ((size_t)1 << 20)

/* Encode v, decode it back as its own type, and require equality. Returns
 * the encoding in *enc (caller frees). */
static void roundtrip(const ck_value *v, ck_buf *enc)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_value back;

    assert_int_equal(ck_codec__check(v), CK_OK);
    assert_int_equal(ck_codec__encode(enc, v), CK_OK);
    assert_true(enc->len > 0);
    assert_int_equal(ck_codec__decode(&back, v->type, enc->p, enc->len, &arena), CK_OK);
    assert_true(value_equal(v, &back));
    ck_arena__free(&arena);
}

/* Encode and compare with the expected bytes. */
static void expect_encoding(const ck_value *v, const uint8_t *bytes, size_t n)
{
    ck_buf b = CK_BUF_INIT;

    assert_int_equal(ck_codec__encode(&b, v), CK_OK);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, bytes, n);
    ck_buf__free(&b);
}

static void expect_decode_rc(ck_type t, const uint8_t *p, size_t n, int want)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(ck_codec__decode(&out, t, p, n, &arena), want);
    if (want != CK_OK)
        assert_true(all_zero(&out, sizeof(out))); /* out is zeroed on failure */
    ck_arena__free(&arena);
}

/* Days since 1970 for a date known valid. */
static int32_t ymd(int y, int m, int d)
{
    int32_t days = 12345;
    assert_int_equal(ck_date__from_ymd(&days, y, m, d), CK_OK);
    return days;
}

/* A string of exactly n bytes of valid multi-byte UTF-8 (n % 4 == 0 is not
 * needed: the tail is ASCII). Caller frees. */
static char *make_utf8(size_t n)
{
    static const char pattern[] = "\xc3\xa9"
                                  "a"
                                  "\xe2\x82\xac"
                                  "\xf0\x9f\x98\x80"; /* é a € 😀 */
    char *s = malloc(n + 1);
    size_t i = 0;

    assert_non_null(s);
    while (n - i >= sizeof(pattern) - 1) {
        memcpy(s + i, pattern, sizeof(pattern) - 1);
        i += sizeof(pattern) - 1;
    }
    while (i < n)
        s[i++] = 'x';
    s[n] = '\0';
    assert_true(ck_codec__utf8_valid(s, n));
    return s;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

static void test_roundtrip_scalars(void **state)
{
    (void)state;
    const ck_value vals[] = {
        v_int(0),
        v_int(1),
        v_int(-1),
        v_int(127),
        v_int(128),
        v_int(-32),
        v_int(-33),
        v_int(255),
        v_int(256),
        v_int(-128),
        v_int(-129),
        v_int(65535),
        v_int(65536),
        v_int(-32768),
        v_int(-32769),
        v_int(INT32_MAX),
        v_int((int64_t)INT32_MAX + 1),
        v_int(INT32_MIN),
        v_int((int64_t)INT32_MIN - 1),
        v_int(UINT32_MAX),
        v_int((int64_t)UINT32_MAX + 1),
        v_int(INT64_MAX),
        v_int(INT64_MIN),
        v_float(0.0),
        v_float(-0.0),
        v_float(1e308),
        v_float(-1e308),
        v_float(DBL_MIN),
        v_float(4.9406564584124654e-324),
        v_float(0.1),
        v_float(-2.5),
        v_float(DBL_MAX),
        v_bool(0),
        v_bool(1),
        v_date(0),
        v_date(-1),
        v_date(CK_DATE_MIN_DAYS),
        v_date(CK_DATE_MAX_DAYS),
        v_date(10957),
        v_ts(0, 0, 0),
        v_ts(-1, 999999999, 0),
        v_ts(1732475057, 120000000, 120),
        v_ts(1732475057, 1, -1439),
        v_ts(1732475057, 999999999, 1439),
        v_ts(CK_TS_MIN_SEC, 0, 0),
        v_ts(CK_TS_MAX_SEC, 999999999, 0),
        v_ts(CK_TS_MIN_SEC + 1439 * 60, 0, -1439),
        v_ts(CK_TS_MAX_SEC - 1439 * 60, 0, 1439),
        v_bytes("", 0),
        v_bytes("\x00\xff\xc1\x80", 4),
        v_cstr(""),
        v_cstr("a"),
        v_cstr("\xc3\xa9t\xc3\xa9"),
        v_str("nul\0inside", 10),
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(vals); k++) {
        ck_buf enc = CK_BUF_INIT;
        roundtrip(&vals[k], &enc);
        ck_buf__free(&enc);
    }
}

/* The exact bytes of the canonical encoding. */
static void test_encoding_bytes(void **state)
{
    (void)state;
    {
        ck_value v = v_int(0);
        expect_encoding(&v, (const uint8_t *)"\x00", 1);
    }
    {
        ck_value v = v_int(-1);
        expect_encoding(&v, (const uint8_t *)"\xff", 1);
    }
    {
        ck_value v = v_int(200);
        expect_encoding(&v, (const uint8_t *)"\xcc\xc8", 2);
    }
    {
        ck_value v = v_int(INT64_MIN);
        expect_encoding(&v, (const uint8_t *)"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    }
    {
        ck_value v = v_int(INT64_MAX);
        expect_encoding(&v, (const uint8_t *)"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
    }
    {
        ck_value v = v_float(-0.0); /* float 64 always, even when float 32 would do */
        expect_encoding(&v, (const uint8_t *)"\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    }
    {
        ck_value v = v_float(1.0);
        expect_encoding(&v, (const uint8_t *)"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9);
    }
    {
        ck_value v = v_bool(1);
        expect_encoding(&v, (const uint8_t *)"\xc3", 1);
    }
    {
        ck_value v = v_bool(0);
        expect_encoding(&v, (const uint8_t *)"\xc2", 1);
    }
    {
        ck_value v = v_cstr("ab");
        expect_encoding(&v,
                        (const uint8_t *)"\xa2"
                                         "ab",
                        3);
    }
    {
        ck_value v = v_bytes("ab", 2);
        expect_encoding(&v,
                        (const uint8_t *)"\xc4\x02"
                                         "ab",
                        4);
    }
    {
        ck_value v = v_date(-1); /* fixext 4, type 1, int32 BE */
        expect_encoding(&v, (const uint8_t *)"\xd6\x01\xff\xff\xff\xff", 6);
    }
    {
        /* ext 8, length 14, type 2: sec, nsec, offset */
        ck_value v = v_ts(0x0000000102030405, 0x0a0b0c0d, -2);
        expect_encoding(&v,
                        (const uint8_t *)"\xc7\x0e\x02"
                                         "\x00\x00\x00\x01\x02\x03\x04\x05"
                                         "\x0a\x0b\x0c\x0d"
                                         "\xff\xfe",
                        17);
    }
    {
        const ck_str items[] = {{"x", 1}, {"", 0}};
        ck_value v = v_list(items, 2);
        expect_encoding(&v, (const uint8_t *)"\x92\xa1x\xa0", 4);
    }
    {
        ck_value v = v_list(NULL, 0);
        expect_encoding(&v, (const uint8_t *)"\x90", 1);
    }
}

static void test_roundtrip_big(void **state)
{
    (void)state;
    ck_buf enc = CK_BUF_INIT;

    /* A string of exactly the limit, multi-byte characters included. */
    char *big = make_utf8(CK_VALUE_MAX_BYTES);
    ck_value v = v_str(big, CK_VALUE_MAX_BYTES);
    roundtrip(&v, &enc);
    assert_int_equal(enc.len, 5 + CK_VALUE_MAX_BYTES); /* str 32 header */
    assert_int_equal(enc.p[0], 0xdb);
    ck_buf__free(&enc);

    /* Bytes of exactly the limit, every byte value present. */
    uint8_t *raw = malloc(CK_VALUE_MAX_BYTES);
    assert_non_null(raw);
    for (size_t k = 0; k < CK_VALUE_MAX_BYTES; k++)
        raw[k] = (uint8_t)(k * 7);
    v = v_bytes(raw, CK_VALUE_MAX_BYTES);
    roundtrip(&v, &enc);
    assert_int_equal(enc.p[0], 0xc6);
    ck_buf__free(&enc);

    /* One byte more: refused on check, encode and decode. */
    char *over = make_utf8(CK_VALUE_MAX_BYTES + 1);
    v = v_str(over, CK_VALUE_MAX_BYTES + 1);
    assert_int_equal(ck_codec__check(&v), CK_ELIMIT);
    assert_int_equal(ck_codec__encode(&enc, &v), CK_ELIMIT);
    assert_int_equal(enc.len, 0);
    {
        /* Hand-made str 32 of the limit + 1. */
        ck_buf h = CK_BUF_INIT;
        const uint8_t hdr[] = {0xdb, 0x00, 0x10, 0x00, 0x01};
        assert_int_equal(ck_buf__append(&h, hdr, sizeof(hdr)), CK_OK);
        assert_int_equal(ck_buf__append(&h, over, CK_VALUE_MAX_BYTES + 1), CK_OK);
        expect_decode_rc(CK_TYPE_STRING, h.p, h.len, CK_ELIMIT);
        h.p[0] = 0xc6; /* same as bin 32 */
        expect_decode_rc(CK_TYPE_BYTES, h.p, h.len, CK_ELIMIT);
        ck_buf__free(&h);
    }
    v = v_bytes(raw, CK_VALUE_MAX_BYTES);
    v.u.str.len++;
    assert_int_equal(ck_codec__check(&v), CK_ELIMIT);

    free(over);
    free(raw);
    free(big);
}

static void test_roundtrip_lists(void **state)
{
    (void)state;
    ck_buf enc = CK_BUF_INIT;
    ck_str *items = calloc(CK_LIST_MAX_ITEMS + 1, sizeof(ck_str));
    char names[CK_LIST_MAX_ITEMS + 1][8];
    assert_non_null(items);

    /* Empty list. */
    ck_value v = v_list(NULL, 0);
    roundtrip(&v, &enc);
    ck_buf__free(&enc);

    /* 1024 distinct items. */
    for (size_t k = 0; k <= CK_LIST_MAX_ITEMS; k++) {
        int len = snprintf(names[k], sizeof(names[k]), "i%zu", k);
        items[k].ptr = names[k];
        items[k].len = (size_t)len;
    }
    v = v_list(items, CK_LIST_MAX_ITEMS);
    roundtrip(&v, &enc);
    assert_int_equal(enc.p[0], 0xdc); /* array 16 */
    ck_buf__free(&enc);

    /* One item more: CK_ELIMIT on check, encode, and decode of a hand-made
     * array of 1025 strings. */
    v = v_list(items, CK_LIST_MAX_ITEMS + 1);
    assert_int_equal(ck_codec__check(&v), CK_ELIMIT);
    assert_int_equal(ck_codec__encode(&enc, &v), CK_ELIMIT);
    {
        ck_mp_writer w;
        ck_mp_writer__init(&w, &enc);
        ck_mp_writer__array(&w, CK_LIST_MAX_ITEMS + 1);
        for (size_t k = 0; k <= CK_LIST_MAX_ITEMS; k++)
            ck_mp_writer__str(&w, items[k].ptr, items[k].len);
        assert_int_equal(w.rc, CK_OK);
        expect_decode_rc(CK_TYPE_LIST, enc.p, enc.len, CK_ELIMIT);
        ck_buf__free(&enc);
    }

    /* Items whose total is exactly the limit, then one byte more. */
    char *blob = make_utf8(CK_VALUE_MAX_BYTES / 2);
    char *blob1 = make_utf8(CK_VALUE_MAX_BYTES / 2 + 1);
    ck_str two[2] = {{blob, CK_VALUE_MAX_BYTES / 2}, {blob, CK_VALUE_MAX_BYTES / 2}};
    v = v_list(two, 2);
    roundtrip(&v, &enc);
    ck_buf__free(&enc);
    two[1].ptr = blob1;
    two[1].len++;
    assert_int_equal(ck_codec__check(&v), CK_ELIMIT);
    {
        ck_mp_writer w;
        ck_mp_writer__init(&w, &enc);
        ck_mp_writer__array(&w, 2);
        ck_mp_writer__str(&w, two[0].ptr, two[0].len);
        ck_mp_writer__str(&w, two[1].ptr, two[1].len);
        assert_int_equal(w.rc, CK_OK);
        expect_decode_rc(CK_TYPE_LIST, enc.p, enc.len, CK_ELIMIT);
        ck_buf__free(&enc);
    }

    /* An invalid item. */
    ck_str bad[2] = {{"ok", 2}, {"\xff", 1}};
    v = v_list(bad, 2);
    assert_int_equal(ck_codec__check(&v), CK_EINVAL);
    assert_int_equal(ck_codec__encode(&enc, &v), CK_EINVAL);
    /* NULL items with a count. */
    v = v_list(NULL, 1);
    assert_int_equal(ck_codec__check(&v), CK_EINVAL);

    free(blob1);
    free(blob);
    free(items);
}

/* Encoding appends, and a failed encoding leaves the buffer as it was. */
static void test_encode_append_and_rollback(void **state)
{
    (void)state;
    ck_buf b = CK_BUF_SECURE_INIT;
    ck_value a = v_int(1);
    ck_value c = v_cstr("xyz");
    ck_value bad = v_float(NAN);
    ck_str items[2] = {{"good", 4}, {"\xc0\x80", 2}};
    ck_value badlist = v_list(items, 2);

    assert_int_equal(ck_codec__encode(&b, &a), CK_OK);
    assert_int_equal(ck_codec__encode(&b, &c), CK_OK);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "\x01\xa3xyz", 5);
    assert_int_equal(ck_codec__encode(&b, &bad), CK_EINVAL);
    assert_int_equal(ck_codec__encode(&b, &badlist), CK_EINVAL);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "\x01\xa3xyz", 5);
    ck_buf__free(&b);
}

/* ------------------------------------------------------------------------ */
/* Check refusals                                                           */
/* ------------------------------------------------------------------------ */

struct utf8_case {
    const char *s;
    size_t n;
    bool valid;
};

#define U8(lit, ok)                                                                                \
    {                                                                                              \
        lit, sizeof(lit) - 1, ok                                                                   \
    }

static const struct utf8_case utf8_cases[] = {
    U8("", true),
    U8("plain ascii", true),
    U8("\x00", true),
    U8("\x7f", true),
    U8("\xc2\x80", true),         /* U+0080 */
    U8("\xdf\xbf", true),         /* U+07FF */
    U8("\xe0\xa0\x80", true),     /* U+0800 */
    U8("\xed\x9f\xbf", true),     /* U+D7FF */
    U8("\xee\x80\x80", true),     /* U+E000 */
    U8("\xef\xbf\xbf", true),     /* U+FFFF */
    U8("\xf0\x90\x80\x80", true), /* U+10000 */
    U8("\xf4\x8f\xbf\xbf", true), /* U+10FFFF */
    U8("12345678\xc3\xa9"
       "12345678",
       true),
    /* overlongs */
    U8("\xc0\x80", false),
    U8("\xc1\xbf", false),
    U8("\xe0\x80\x80", false),
    U8("\xe0\x9f\xbf", false),
    U8("\xf0\x80\x80\x80", false),
    U8("\xf0\x8f\xbf\xbf", false),
    /* surrogates */
    U8("\xed\xa0\x80", false),
    U8("\xed\xbf\xbf", false),
    U8("\xed\xa0\xbd\xed\xb8\x80", false), /* CESU-8 pair */
    /* above U+10FFFF */
    U8("\xf4\x90\x80\x80", false),
    U8("\xf5\x80\x80\x80", false),
    U8("\xf7\xbf\xbf\xbf", false),
    U8("\xf8\x88\x80\x80\x80", false),
    U8("\xfe", false),
    U8("\xff", false),
    /* lone continuation bytes, truncated sequences */
    U8("\x80", false),
    U8("a\xbf", false),
    U8("\xc3", false),
    U8("\xe2\x82", false),
    U8("\xf0\x9f\x98", false),
    U8("\xc3"
       "a",
       false),
    U8("\xe2\x82"
       "a",
       false),
    U8("\xf0\x9f\x98"
       "a",
       false),
    U8("\xe2"
       "a"
       "\xac",
       false),
    /* after the eight-byte ASCII fast path */
    U8("abcdefgh\x80", false),
    U8("abcdefghijklmnop\xed\xa0\x80", false),
    U8("abcdefg\xc3\xa9", true),
};

static void test_utf8(void **state)
{
    (void)state;
    for (size_t k = 0; k < CK_ARRAY_LEN(utf8_cases); k++) {
        const struct utf8_case *c = &utf8_cases[k];
        assert_int_equal(ck_codec__utf8_valid(c->s, c->n), c->valid);
        /* In a buffer of exactly n bytes, so that the sanitizers see a read
         * past the end of a truncated sequence. */
        char *exact = malloc(c->n ? c->n : 1);
        assert_non_null(exact);
        memcpy(exact, c->s, c->n);
        assert_int_equal(ck_codec__utf8_valid(exact, c->n), c->valid);
        free(exact);
        ck_value v = v_str(c->s, c->n);
        assert_int_equal(ck_codec__check(&v), c->valid ? CK_OK : CK_EINVAL);
        /* BYTES take anything. */
        v.type = CK_TYPE_BYTES;
        assert_int_equal(ck_codec__check(&v), CK_OK);
        /* A list item is held to the same rule. */
        ck_str item = {c->s, c->n};
        v = v_list(&item, 1);
        assert_int_equal(ck_codec__check(&v), c->valid ? CK_OK : CK_EINVAL);
    }
    assert_true(ck_codec__utf8_valid(NULL, 0));
    /* n is honoured: the bytes after it would complete the sequence. */
    assert_true(ck_codec__utf8_valid("\xe2\x82\xac", 3));
    assert_false(ck_codec__utf8_valid("\xe2\x82\xac", 2));
    assert_false(ck_codec__utf8_valid("\xf0\x9f\x98\x80", 3));
    assert_false(ck_codec__utf8_valid("abcdefgh\xc3\xa9", 9));

    /* Every code point encodes to valid UTF-8, and every surrogate does
     * not: an exhaustive check of the classification. */
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        char s[4];
        size_t n;
        if (cp < 0x80) {
            s[0] = (char)cp;
            n = 1;
        } else if (cp < 0x800) {
            s[0] = (char)(0xc0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            s[0] = (char)(0xe0 | (cp >> 12));
            s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            s[2] = (char)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            s[0] = (char)(0xf0 | (cp >> 18));
            s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
            s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
            s[3] = (char)(0x80 | (cp & 0x3f));
            n = 4;
        }
        bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
        if (ck_codec__utf8_valid(s, n) == surrogate)
            fail_msg("U+%04X classified wrongly", (unsigned)cp);
    }
}

static void test_check_refusals(void **state)
{
    (void)state;
    const struct {
        ck_value v;
        int rc;
    } cases[] = {
        {v_float(NAN), CK_EINVAL},
        {v_float(-NAN), CK_EINVAL},
        {v_float(INFINITY), CK_EINVAL},
        {v_float(-INFINITY), CK_EINVAL},
        {v_bool(2), CK_EINVAL},
        {v_bool(-1), CK_EINVAL},
        {v_date(CK_DATE_MIN_DAYS - 1), CK_EINVAL},
        {v_date(CK_DATE_MAX_DAYS + 1), CK_EINVAL},
        {v_date(INT32_MIN), CK_EINVAL},
        {v_ts(0, -1, 0), CK_EINVAL},
        {v_ts(0, 1000000000, 0), CK_EINVAL},
        {v_ts(0, INT32_MAX, 0), CK_EINVAL},
        {v_ts(0, 0, 1440), CK_EINVAL},
        {v_ts(0, 0, -1440), CK_EINVAL},
        {v_ts(0, 0, INT16_MIN), CK_EINVAL},
        {v_ts(CK_TS_MIN_SEC - 1, 0, 0), CK_EINVAL},
        {v_ts(CK_TS_MAX_SEC + 1, 0, 0), CK_EINVAL},
        {v_ts(INT64_MIN, 0, 0), CK_EINVAL},
        {v_ts(INT64_MAX, 0, 0), CK_EINVAL},
        /* UTC in range, local time in year 0000 or 10000 */
        {v_ts(CK_TS_MIN_SEC, 0, -1), CK_EINVAL},
        {v_ts(CK_TS_MAX_SEC, 0, 1), CK_EINVAL},
        {v_str(NULL, 1), CK_EINVAL},
        {v_bytes(NULL, 1), CK_EINVAL},
        {v_str(NULL, 0), CK_OK},
        {v_ts(CK_TS_MIN_SEC, 0, 1), CK_OK},
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(cases); k++) {
        ck_buf b = CK_BUF_INIT;
        assert_int_equal(ck_codec__check(&cases[k].v), cases[k].rc);
        assert_int_equal(ck_codec__encode(&b, &cases[k].v), cases[k].rc);
        if (cases[k].rc != CK_OK)
            assert_int_equal(b.len, 0);
        ck_buf__free(&b);
    }
    ck_value v;
    memset(&v, 0, sizeof(v));
    v.type = (ck_type)0;
    assert_int_equal(ck_codec__check(&v), CK_EINVAL);
    v.type = (ck_type)9;
    assert_int_equal(ck_codec__check(&v), CK_EINVAL);
    assert_int_equal(ck_codec__check(NULL), CK_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Decode refusals                                                          */
/* ------------------------------------------------------------------------ */

/* Every proper prefix of a valid encoding is CK_EFORMAT, and so is the
 * encoding with a byte appended. */
static void check_truncations(const ck_value *v)
{
    ck_buf enc = CK_BUF_INIT;
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;

    assert_int_equal(ck_codec__encode(&enc, v), CK_OK);
    for (size_t n = 0; n < enc.len; n++) {
        /* Long encodings: every prefix near either end, a sample between
         * (the middle of a long payload is all alike). */
        if (enc.len > 4096 && n > 300 && n + 300 < enc.len && n % 997 != 0)
            continue;
        /* A copy of exactly n bytes, so that ASan sees any read past it. */
        uint8_t *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, enc.p, n);
        int rc = ck_codec__decode(&out, v->type, copy, n, &arena);
        if (rc != CK_EFORMAT)
            fail_msg("type %d: prefix %zu of %zu gave %d", (int)v->type, n, enc.len, rc);
        assert_int_equal(out.type, 0);
        free(copy);
        ck_arena__reset(&arena);
    }
    assert_int_equal(ck_buf__append(&enc, "\xc0", 1), CK_OK);
    assert_int_equal(ck_codec__decode(&out, v->type, enc.p, enc.len, &arena), CK_EFORMAT);
    enc.len--;
    assert_int_equal(ck_codec__decode(&out, v->type, enc.p, enc.len, &arena), CK_OK);
    assert_true(value_equal(v, &out));
    ck_arena__free(&arena);
    ck_buf__free(&enc);
}

static void test_decode_truncations(void **state)
{
    (void)state;
    static char names[CK_LIST_MAX_ITEMS][6];
    static ck_str items[CK_LIST_MAX_ITEMS];
    for (size_t k = 0; k < CK_LIST_MAX_ITEMS; k++) {
        int len = snprintf(names[k], sizeof(names[k]), "%zu", k);
        items[k].ptr = names[k];
        items[k].len = (size_t)len;
    }
    char *s300 = make_utf8(300);
    char *s70k = make_utf8(70000);
    const ck_str few[] = {{"a", 1}, {"", 0}, {"\xe2\x82\xac", 3}};
    const ck_value vals[] = {
        v_cstr(""),
        v_cstr("hello"),
        v_str(s300, 40),
        v_str(s300, 300),
        v_str(s70k, 70000),
        v_bytes("", 0),
        v_bytes("\x01\x02\x03", 3),
        v_bytes(s300, 300),
        v_bytes(s70k, 70000),
        v_int(0),
        v_int(-1),
        v_int(200),
        v_int(-200),
        v_int(70000),
        v_int(-70000),
        v_int(5000000000),
        v_int(-5000000000),
        v_int(INT64_MIN),
        v_int(INT64_MAX),
        v_float(0.5),
        v_float(-0.0),
        v_bool(0),
        v_bool(1),
        v_date(0),
        v_date(CK_DATE_MAX_DAYS),
        v_ts(1732475057, 120000000, 120),
        v_list(NULL, 0),
        v_list(few, 3),
        v_list(items, 16),
        v_list(items, CK_LIST_MAX_ITEMS),
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(vals); k++)
        check_truncations(&vals[k]);
    free(s70k);
    free(s300);
}

/* A value of each type decoded as every other type is CK_EFORMAT. */
static void test_decode_wrong_type(void **state)
{
    (void)state;
    const ck_str one[] = {{"a", 1}};
    const ck_value vals[] = {
        v_cstr("s"),    v_int(1),        v_float(1.0),   v_bool(1),       v_date(1),
        v_ts(1, 0, 0),  v_bytes("b", 1), v_list(one, 1), v_list(NULL, 0), v_cstr(""),
        v_bytes("", 0), v_int(0),        v_bool(0),
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(vals); k++) {
        ck_buf enc = CK_BUF_INIT;
        assert_int_equal(ck_codec__encode(&enc, &vals[k]), CK_OK);
        for (int t = CK_TYPE_STRING; t <= CK_TYPE_LIST; t++) {
            int want = t == (int)vals[k].type ? CK_OK : CK_EFORMAT;
            expect_decode_rc((ck_type)t, enc.p, enc.len, want);
        }
        /* Not a type at all. */
        expect_decode_rc((ck_type)0, enc.p, enc.len, CK_EINVAL);
        expect_decode_rc((ck_type)9, enc.p, enc.len, CK_EINVAL);
        ck_buf__free(&enc);
    }
}

static void test_decode_lenient_forms(void **state)
{
    (void)state;
    ck_arena arena = CK_ARENA_INIT;
    ck_value v;

    /* INT from any integer width whose value fits. */
    const struct {
        const char *b;
        size_t n;
        int64_t want;
    } ints[] = {
        {"\xd0\x05", 2, 5},
        {"\xd1\xff\xfe", 3, -2},
        {"\xcd\x00\x01", 3, 1},
        {"\xce\xff\xff\xff\xff", 5, 4294967295},
        {"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9, INT64_MAX},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x00", 9, 0},
        {"\xd2\x80\x00\x00\x00", 5, INT32_MIN},
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(ints); k++) {
        assert_int_equal(
            ck_codec__decode(&v, CK_TYPE_INT, (const uint8_t *)ints[k].b, ints[k].n, &arena),
            CK_OK);
        assert_int_equal(v.type, CK_TYPE_INT);
        assert_true(v.u.i == ints[k].want);
    }
    /* uint 64 above INT64_MAX does not fit. */
    expect_decode_rc(CK_TYPE_INT, (const uint8_t *)"\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9,
                     CK_EFORMAT);
    expect_decode_rc(CK_TYPE_INT, (const uint8_t *)"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9,
                     CK_EFORMAT);

    /* FLOAT from float 32. */
    assert_int_equal(
        ck_codec__decode(&v, CK_TYPE_FLOAT, (const uint8_t *)"\xca\x3f\xc0\x00\x00", 5, &arena),
        CK_OK);
    assert_true(v.u.f == 1.5);
    /* ... but NaN and infinities are refused in either width. */
    expect_decode_rc(CK_TYPE_FLOAT, (const uint8_t *)"\xca\x7f\xc0\x00\x00", 5, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_FLOAT, (const uint8_t *)"\xca\xff\x80\x00\x00", 5, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_FLOAT, (const uint8_t *)"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9,
                     CK_EFORMAT);
    expect_decode_rc(CK_TYPE_FLOAT, (const uint8_t *)"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01", 9,
                     CK_EFORMAT);
    /* An int is not a float. */
    expect_decode_rc(CK_TYPE_FLOAT, (const uint8_t *)"\x01", 1, CK_EFORMAT);

    /* DATE in an ext 8 header instead of fixext 4. */
    assert_int_equal(ck_codec__decode(&v, CK_TYPE_DATE,
                                      (const uint8_t *)"\xc7\x04\x01\x00\x00\x2a\xcd", 7, &arena),
                     CK_OK);
    assert_int_equal(v.u.date, 10957);
    /* STRING in str 8/16/32 forms; BYTES in bin 16/32. */
    assert_int_equal(ck_codec__decode(&v, CK_TYPE_STRING, (const uint8_t *)"\xd9\x01x", 3, &arena),
                     CK_OK);
    assert_int_equal(v.u.str.len, 1);
    assert_int_equal(
        ck_codec__decode(&v, CK_TYPE_STRING, (const uint8_t *)"\xda\x00\x01x", 4, &arena), CK_OK);
    assert_int_equal(
        ck_codec__decode(&v, CK_TYPE_STRING, (const uint8_t *)"\xdb\x00\x00\x00\x01x", 6, &arena),
        CK_OK);
    assert_memory_equal(v.u.str.ptr, "x", 1);
    assert_int_equal(
        ck_codec__decode(&v, CK_TYPE_BYTES, (const uint8_t *)"\xc5\x00\x01\xff", 4, &arena), CK_OK);
    assert_int_equal(
        ck_codec__decode(&v, CK_TYPE_BYTES, (const uint8_t *)"\xc6\x00\x00\x00\x00", 5, &arena),
        CK_OK);
    assert_int_equal(v.u.str.len, 0);
    /* LIST in array 32 form. */
    assert_int_equal(
        ck_codec__decode(&v, CK_TYPE_LIST, (const uint8_t *)"\xdd\x00\x00\x00\x01\xa1z", 7, &arena),
        CK_OK);
    assert_int_equal(v.u.list.count, 1);
    assert_memory_equal(v.u.list.items[0].ptr, "z", 1);
    /* A LIST with items needs an arena; an empty one does not. */
    expect_decode_rc(CK_TYPE_LIST, NULL, 0, CK_EFORMAT);
    assert_int_equal(ck_codec__decode(&v, CK_TYPE_LIST, (const uint8_t *)"\x91\xa1z", 3, NULL),
                     CK_EINVAL);
    assert_int_equal(ck_codec__decode(&v, CK_TYPE_LIST, (const uint8_t *)"\x90", 1, NULL), CK_OK);
    assert_int_equal(v.u.list.count, 0);
    assert_int_equal(ck_codec__decode(&v, CK_TYPE_INT, NULL, 1, &arena), CK_EINVAL);
    ck_arena__free(&arena);
}

static void test_decode_hostile(void **state)
{
    (void)state;
    /* array 32 claiming 2^32 - 1 items, then 3 bytes. */
    const uint8_t arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xa0, 0xa0};
    expect_decode_rc(CK_TYPE_LIST, arr, sizeof(arr), CK_EFORMAT);
    /* array 32 claiming more items than bytes, but fewer than the limit. */
    const uint8_t arr4[] = {0xdd, 0x00, 0x00, 0x00, 0x04, 0xa0, 0xa0, 0xa0};
    expect_decode_rc(CK_TYPE_LIST, arr4, sizeof(arr4), CK_EFORMAT);
    /* str 32 / bin 32 / ext 32 claiming about 4 GiB. */
    const uint8_t str[] = {0xdb, 0xff, 0xff, 0xff, 0xf0, 'a', 'b'};
    expect_decode_rc(CK_TYPE_STRING, str, sizeof(str), CK_EFORMAT);
    const uint8_t bin[] = {0xc6, 0x80, 0x00, 0x00, 0x00, 'a'};
    expect_decode_rc(CK_TYPE_BYTES, bin, sizeof(bin), CK_EFORMAT);
    const uint8_t ext[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0};
    expect_decode_rc(CK_TYPE_DATE, ext, sizeof(ext), CK_EFORMAT);
    /* map 32 huge. */
    const uint8_t map[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0, 0xc0};
    ck_mp r;
    uint32_t count = 0;
    ck_mp__init(&r, map, sizeof(map));
    assert_int_equal(ck_mp__map(&r, &count), CK_EFORMAT);
    assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);
    assert_ptr_equal(r.p, map);
    for (int t = CK_TYPE_STRING; t <= CK_TYPE_LIST; t++)
        expect_decode_rc((ck_type)t, map, sizeof(map), CK_EFORMAT);
    /* 0xc1 as every type. */
    for (int t = CK_TYPE_STRING; t <= CK_TYPE_LIST; t++)
        expect_decode_rc((ck_type)t, (const uint8_t *)"\xc1", 1, CK_EFORMAT);
    /* A list item that is not a string. */
    expect_decode_rc(CK_TYPE_LIST, (const uint8_t *)"\x92\xa1x\x01", 4, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_LIST, (const uint8_t *)"\x91\x90", 2, CK_EFORMAT);
    /* A STRING with invalid UTF-8; the same bytes as BYTES are fine. */
    expect_decode_rc(CK_TYPE_STRING, (const uint8_t *)"\xa2\xc0\x80", 3, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_STRING, (const uint8_t *)"\xa3\xed\xa0\x80", 4, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_BYTES, (const uint8_t *)"\xc4\x02\xc0\x80", 4, CK_OK);
    expect_decode_rc(CK_TYPE_LIST, (const uint8_t *)"\x91\xa1\xff", 3, CK_EFORMAT);
    /* BOOL is only 0xc2 / 0xc3. */
    expect_decode_rc(CK_TYPE_BOOL, (const uint8_t *)"\x01", 1, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_BOOL, (const uint8_t *)"\xc0", 1, CK_EFORMAT);
    /* Empty input. */
    expect_decode_rc(CK_TYPE_INT, (const uint8_t *)"", 0, CK_EFORMAT);
}

static void test_decode_ext(void **state)
{
    (void)state;
    /* DATE: type 1, exactly 4 bytes. */
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd6\x01\x00\x00\x00\x00", 6, CK_OK);
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd6\x02\x00\x00\x00\x00", 6, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd6\xff\x00\x00\x00\x00", 6, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd5\x01\x00\x00", 4, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd7\x01\x00\x00\x00\x00\x00\x00\x00\x00", 10,
                     CK_EFORMAT);
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xc7\x05\x01\x00\x00\x00\x00\x00", 8,
                     CK_EFORMAT);
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xc7\x00\x01", 3, CK_EFORMAT);
    /* DATE out of range: 9999-12-31 + 1 and 0001-01-01 - 1. */
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd6\x01\x00\x2c\xc0\xa0", 6,
                     CK_OK); /* 2932896 */
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd6\x01\x00\x2c\xc0\xa1", 6, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd6\x01\xff\xf5\x06\xc6", 6,
                     CK_OK); /* -719162 */
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd6\x01\xff\xf5\x06\xc5", 6, CK_EFORMAT);
    expect_decode_rc(CK_TYPE_DATE, (const uint8_t *)"\xd6\x01\x80\x00\x00\x00", 6, CK_EFORMAT);

    /* TIMESTAMP: type 2, exactly 14 bytes. */
    uint8_t ts[17] = {0xc7, 14, 2};
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_OK);
    ts[2] = 1;
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_EFORMAT);
    ts[2] = 2;
    ts[1] = 13;
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 16, CK_EFORMAT);
    ts[1] = 14;
    /* msgpack's own timestamp (ext -1) is not ours. */
    expect_decode_rc(CK_TYPE_TIMESTAMP, (const uint8_t *)"\xd6\xff\x00\x00\x00\x00", 6, CK_EFORMAT);
    /* nsec = 10^9 (0x3b9aca00), 0xffffffff */
    memcpy(ts + 11, "\x3b\x9a\xc9\xff", 4);
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_OK);
    memcpy(ts + 11, "\x3b\x9a\xca\x00", 4);
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_EFORMAT);
    memcpy(ts + 11, "\xff\xff\xff\xff", 4);
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_EFORMAT);
    memset(ts + 11, 0, 4);
    /* offset 1439 ok, 1440 and -1440 not */
    memcpy(ts + 15, "\x05\x9f", 2);
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_OK);
    memcpy(ts + 15, "\x05\xa0", 2);
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_EFORMAT);
    memcpy(ts + 15, "\xfa\x60", 2);
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_EFORMAT);
    memset(ts + 15, 0, 2);
    /* seconds beyond 9999-12-31T23:59:59Z */
    memcpy(ts + 3, "\x00\x00\x00\x3a\xff\xf4\x41\x7f", 8); /* 253402300799 */
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_OK);
    memcpy(ts + 3, "\x00\x00\x00\x3a\xff\xf4\x41\x80", 8);
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_EFORMAT);
    memcpy(ts + 3, "\x80\x00\x00\x00\x00\x00\x00\x00", 8);
    expect_decode_rc(CK_TYPE_TIMESTAMP, ts, 17, CK_EFORMAT);
}

/* ------------------------------------------------------------------------ */
/* The msgpack reader                                                       */
/* ------------------------------------------------------------------------ */

/* One msgpack object of every encoding, with its kind. */
struct mp_case {
    const char *b;
    size_t n;
    ck_mp_kind kind;
};

#define MPC(lit, kind)                                                                             \
    {                                                                                              \
        lit, sizeof(lit) - 1, kind                                                                 \
    }

static const struct mp_case mp_cases[] = {
    MPC("\x00", CK_MP_UINT),
    MPC("\x7f", CK_MP_UINT),
    MPC("\xcc\xff", CK_MP_UINT),
    MPC("\xcd\xff\xff", CK_MP_UINT),
    MPC("\xce\xff\xff\xff\xff", CK_MP_UINT),
    MPC("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", CK_MP_UINT),
    MPC("\xe0", CK_MP_INT),
    MPC("\xff", CK_MP_INT),
    MPC("\xd0\x80", CK_MP_INT),
    MPC("\xd0\x7f", CK_MP_UINT), /* a non-negative value in a signed form */
    MPC("\xd1\x80\x00", CK_MP_INT),
    MPC("\xd2\x80\x00\x00\x00", CK_MP_INT),
    MPC("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", CK_MP_INT),
    MPC("\xc0", CK_MP_NIL),
    MPC("\xc2", CK_MP_BOOL),
    MPC("\xc3", CK_MP_BOOL),
    MPC("\xca\x3f\x80\x00\x00", CK_MP_FLOAT),
    MPC("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", CK_MP_FLOAT),
    MPC("\xa0", CK_MP_STR),
    MPC("\xa3"
        "abc",
        CK_MP_STR),
    MPC("\xd9\x02"
        "ab",
        CK_MP_STR),
    MPC("\xda\x00\x02"
        "ab",
        CK_MP_STR),
    MPC("\xdb\x00\x00\x00\x02"
        "ab",
        CK_MP_STR),
    MPC("\xc4\x01\x00", CK_MP_BIN),
    MPC("\xc5\x00\x01\x00", CK_MP_BIN),
    MPC("\xc6\x00\x00\x00\x01\x00", CK_MP_BIN),
    MPC("\x90", CK_MP_ARRAY),
    MPC("\x92\x01\xa1x", CK_MP_ARRAY),
    MPC("\xdc\x00\x01\xc0", CK_MP_ARRAY),
    MPC("\xdd\x00\x00\x00\x01\xc0", CK_MP_ARRAY),
    MPC("\x80", CK_MP_MAP),
    MPC("\x81\xa1k\x92\x01\x81\x02\x03", CK_MP_MAP),
    MPC("\xde\x00\x01\x01\x02", CK_MP_MAP),
    MPC("\xdf\x00\x00\x00\x01\x01\x02", CK_MP_MAP),
    MPC("\xd4\x05\x01", CK_MP_EXT),
    MPC("\xd5\x05\x01\x02", CK_MP_EXT),
    MPC("\xd6\x05\x01\x02\x03\x04", CK_MP_EXT),
    MPC("\xd7\x05\x01\x02\x03\x04\x05\x06\x07\x08", CK_MP_EXT),
    MPC("\xd8\x05"
        "0123456789abcdef",
        CK_MP_EXT),
    MPC("\xc7\x00\x05", CK_MP_EXT),
    MPC("\xc7\x01\xfb\x01", CK_MP_EXT),
    MPC("\xc8\x00\x01\x05\x01", CK_MP_EXT),
    MPC("\xc9\x00\x00\x00\x01\x05\x01", CK_MP_EXT),
};

/* Read the object with the reader for its kind; true on success. */
static int read_kind(ck_mp *r, ck_mp_kind kind)
{
    bool b;
    uint64_t u;
    int64_t i;
    double f;
    const char *s;
    const uint8_t *p;
    uint32_t n;
    int8_t t;

    switch (kind) {
    case CK_MP_NIL:
        return ck_mp__nil(r);
    case CK_MP_BOOL:
        return ck_mp__bool(r, &b);
    case CK_MP_UINT:
        return ck_mp__u64(r, &u);
    case CK_MP_INT:
        return ck_mp__i64(r, &i);
    case CK_MP_FLOAT:
        return ck_mp__f64(r, &f);
    case CK_MP_STR:
        return ck_mp__str(r, &s, &n);
    case CK_MP_BIN:
        return ck_mp__bin(r, &p, &n);
    case CK_MP_ARRAY:
        return ck_mp__array(r, &n);
    case CK_MP_MAP:
        return ck_mp__map(r, &n);
    case CK_MP_EXT:
        return ck_mp__ext(r, &t, &p, &n);
    }
    return -1;
}

static void test_mp_kinds(void **state)
{
    (void)state;
    for (size_t k = 0; k < CK_ARRAY_LEN(mp_cases); k++) {
        const struct mp_case *c = &mp_cases[k];
        uint8_t *copy = malloc(c->n);
        assert_non_null(copy);
        memcpy(copy, c->b, c->n);
        ck_mp r;
        ck_mp_kind kind = 0;

        ck_mp__init(&r, copy, c->n);
        assert_int_equal(ck_mp__peek(&r, &kind), CK_OK);
        assert_int_equal(kind, c->kind);
        /* Skip consumes the whole object. */
        assert_int_equal(ck_mp__skip(&r), CK_OK);
        assert_ptr_equal(r.p, copy + c->n);
        assert_int_equal(ck_mp__peek(&r, &kind), CK_EFORMAT); /* at the end */

        /* Every reader of another kind refuses it and does not move. */
        for (int other = CK_MP_NIL; other <= CK_MP_EXT; other++) {
            ck_mp__init(&r, copy, c->n);
            if (other == (int)c->kind)
                continue;
            /* A non-negative value is readable as i64 too. */
            if (c->kind == CK_MP_UINT && other == CK_MP_INT)
                continue;
            assert_int_equal(read_kind(&r, (ck_mp_kind)other), CK_EFORMAT);
            assert_ptr_equal(r.p, copy);
        }

        /* The reader of its kind consumes the whole container header or
         * scalar; for scalars that is the whole object. */
        ck_mp__init(&r, copy, c->n);
        assert_int_equal(read_kind(&r, c->kind), CK_OK);
        if (c->kind != CK_MP_ARRAY && c->kind != CK_MP_MAP)
            assert_ptr_equal(r.p, copy + c->n);

        /* Every proper prefix is refused by peek, skip and the reader, and
         * leaves the position unchanged. Containers' headers alone are
         * complete objects when they claim no more than the bytes left, so
         * only scalars are checked with the reader. */
        for (size_t n = 0; n < c->n; n++) {
            ck_mp__init(&r, copy, n);
            assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);
            assert_ptr_equal(r.p, copy);
            if (c->kind != CK_MP_ARRAY && c->kind != CK_MP_MAP) {
                assert_int_equal(ck_mp__peek(&r, &kind), CK_EFORMAT);
                assert_int_equal(read_kind(&r, c->kind), CK_EFORMAT);
                assert_ptr_equal(r.p, copy);
            }
        }
        free(copy);
    }
    /* 0xc1 is never used. */
    ck_mp r;
    ck_mp_kind kind;
    ck_mp__init(&r, "\xc1", 1);
    assert_int_equal(ck_mp__peek(&r, &kind), CK_EFORMAT);
    assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);
    for (int k = CK_MP_NIL; k <= CK_MP_EXT; k++)
        assert_int_equal(read_kind(&r, (ck_mp_kind)k), CK_EFORMAT);
    assert_int_equal(ck_mp__left(&r), 1);
}

static void test_mp_values(void **state)
{
    (void)state;
    ck_mp r;
    const char *s;
    const uint8_t *p;
    uint32_t n;
    int8_t t;
    double f;
    bool b;

    ck_mp__init(&r,
                "\xa3"
                "abc\xc4\x02\x00\xff\xd6\xfe\x01\x02\x03\x04\xca\xbf\xc0\x00\x00\xc3\xc2\xc0",
                22);
    assert_int_equal(ck_mp__str(&r, &s, &n), CK_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "abc", 3);
    assert_int_equal(ck_mp__bin(&r, &p, &n), CK_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "\x00\xff", 2);
    assert_int_equal(ck_mp__ext(&r, &t, &p, &n), CK_OK);
    assert_int_equal(t, -2);
    assert_int_equal(n, 4);
    assert_memory_equal(p, "\x01\x02\x03\x04", 4);
    assert_int_equal(ck_mp__f64(&r, &f), CK_OK);
    assert_true(f == -1.5);
    assert_int_equal(ck_mp__bool(&r, &b), CK_OK);
    assert_true(b);
    assert_int_equal(ck_mp__bool(&r, &b), CK_OK);
    assert_false(b);
    assert_int_equal(ck_mp__nil(&r), CK_OK);
    assert_int_equal(ck_mp__left(&r), 0);

    /* Container counts. */
    uint32_t count;
    ck_mp__init(&r, "\xdc\x00\x03\x01\x02\x03", 6);
    assert_int_equal(ck_mp__array(&r, &count), CK_OK);
    assert_int_equal(count, 3);
    assert_int_equal(ck_mp__left(&r), 3);
    ck_mp__init(&r, "\xdc\x00\x04\x01\x02\x03", 6); /* one element short */
    assert_int_equal(ck_mp__array(&r, &count), CK_EFORMAT);
    assert_int_equal(ck_mp__left(&r), 6);
    ck_mp__init(&r, "\x82\x01\x02\x03\x04", 5);
    assert_int_equal(ck_mp__map(&r, &count), CK_OK);
    assert_int_equal(count, 2);
    ck_mp__init(&r, "\x82\x01\x02\x03", 4); /* 2 entries need 4 bytes */
    assert_int_equal(ck_mp__map(&r, &count), CK_EFORMAT);
    assert_int_equal(ck_mp__left(&r), 4);
    assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);

    /* str_eq */
    assert_true(ck_mp__str_eq("abc", 3, "abc"));
    assert_false(ck_mp__str_eq("abc", 2, "abc"));
    assert_false(ck_mp__str_eq("abd", 3, "abc"));
    assert_false(ck_mp__str_eq("abcd", 4, "abc"));
    assert_true(ck_mp__str_eq("", 0, ""));
    assert_true(ck_mp__str_eq(NULL, 0, ""));
}

/* Integers of every width into u64, i64 and u32. */
static void test_mp_ints(void **state)
{
    (void)state;
    /* ok flags: u64, i64, u32 */
    const struct {
        const char *b;
        size_t n;
        bool u64_ok, i64_ok, u32_ok;
        uint64_t u;
        int64_t i;
    } cases[] = {
        {"\x00", 1, true, true, true, 0, 0},
        {"\x7f", 1, true, true, true, 127, 127},
        {"\xff", 1, false, true, false, 0, -1},
        {"\xe0", 1, false, true, false, 0, -32},
        {"\xcc\x80", 2, true, true, true, 128, 128},
        {"\xcd\xff\xff", 3, true, true, true, 65535, 65535},
        {"\xce\xff\xff\xff\xff", 5, true, true, true, UINT32_MAX, UINT32_MAX},
        {"\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9, true, true, false, 4294967296ULL, 4294967296LL},
        {"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9, true, true, false, INT64_MAX, INT64_MAX},
        {"\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9, true, false, false, 1ULL << 63, 0},
        {"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, true, false, false, UINT64_MAX, 0},
        {"\xd0\x00", 2, true, true, true, 0, 0},
        {"\xd0\x80", 2, false, true, false, 0, -128},
        {"\xd1\x7f\xff", 3, true, true, true, 32767, 32767},
        {"\xd1\x80\x00", 3, false, true, false, 0, -32768},
        {"\xd2\x7f\xff\xff\xff", 5, true, true, true, INT32_MAX, INT32_MAX},
        {"\xd2\x80\x00\x00\x00", 5, false, true, false, 0, INT32_MIN},
        {"\xd3\x00\x00\x00\x00\xff\xff\xff\xff", 9, true, true, true, UINT32_MAX, UINT32_MAX},
        {"\xd3\x00\x00\x00\x01\x00\x00\x00\x00", 9, true, true, false, 4294967296ULL, 4294967296LL},
        {"\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", 9, true, true, false, INT64_MAX, INT64_MAX},
        {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, false, true, false, 0, INT64_MIN},
        {"\xd3\xff\xff\xff\xff\xff\xff\xff\xff", 9, false, true, false, 0, -1},
        /* not integers */
        {"\xc0", 1, false, false, false, 0, 0},
        {"\xca\x00\x00\x00\x00", 5, false, false, false, 0, 0},
        {"\xa1"
         "1",
         2, false, false, false, 0, 0},
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(cases); k++) {
        ck_mp r;
        uint64_t u = 0xdead;
        int64_t i = 0xdead;
        uint32_t u32 = 0xdead;

        ck_mp__init(&r, cases[k].b, cases[k].n);
        assert_int_equal(ck_mp__u64(&r, &u), cases[k].u64_ok ? CK_OK : CK_EFORMAT);
        assert_int_equal(ck_mp__left(&r), cases[k].u64_ok ? 0 : cases[k].n);
        if (cases[k].u64_ok)
            assert_true(u == cases[k].u);
        else
            assert_true(u == 0xdead); /* untouched */

        ck_mp__init(&r, cases[k].b, cases[k].n);
        assert_int_equal(ck_mp__i64(&r, &i), cases[k].i64_ok ? CK_OK : CK_EFORMAT);
        assert_int_equal(ck_mp__left(&r), cases[k].i64_ok ? 0 : cases[k].n);
        if (cases[k].i64_ok)
            assert_true(i == cases[k].i);

        ck_mp__init(&r, cases[k].b, cases[k].n);
        assert_int_equal(ck_mp__u32(&r, &u32), cases[k].u32_ok ? CK_OK : CK_EFORMAT);
        assert_int_equal(ck_mp__left(&r), cases[k].u32_ok ? 0 : cases[k].n);
        if (cases[k].u32_ok)
            assert_true(u32 == (uint32_t)cases[k].u);
    }
}

/* Build `depth` nested one-element arrays around a nil. Caller frees. */
static uint8_t *nested(size_t depth, size_t *n)
{
    uint8_t *p = malloc(depth + 1);
    assert_non_null(p);
    memset(p, 0x91, depth);
    p[depth] = 0xc0;
    *n = depth + 1;
    return p;
}

static void test_mp_skip_depth(void **state)
{
    (void)state;
    ck_mp r;
    size_t n;
    uint8_t *p;

    /* CK_MP_MAX_DEPTH nested containers are fine, one more is not. */
    p = nested(CK_MP_MAX_DEPTH, &n);
    ck_mp__init(&r, p, n);
    assert_int_equal(ck_mp__skip(&r), CK_OK);
    assert_int_equal(ck_mp__left(&r), 0);
    free(p);
    p = nested(CK_MP_MAX_DEPTH + 1, &n);
    ck_mp__init(&r, p, n);
    assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);
    assert_ptr_equal(r.p, p);
    /* ... even when the innermost one is empty. */
    p[CK_MP_MAX_DEPTH] = 0x90;
    ck_mp__init(&r, p, n);
    assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);
    free(p);

    /* 10 000 nested arrays: refused, at once. */
    p = nested(10000, &n);
    ck_mp__init(&r, p, n);
    assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);
    assert_ptr_equal(r.p, p);
    expect_decode_rc(CK_TYPE_LIST, p, n, CK_EFORMAT);
    /* Nested maps too. */
    for (size_t k = 0; k < 10000; k += 2) {
        p[k] = 0x81;
        p[k + 1] = 0xc0;
    }
    ck_mp__init(&r, p, n);
    assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);
    free(p);

    /* Skip of siblings after a closed container: [[nil], 1] then 2. */
    ck_mp__init(&r, "\x92\x91\xc0\x01\x02", 5);
    assert_int_equal(ck_mp__skip(&r), CK_OK);
    assert_int_equal(ck_mp__left(&r), 1);
    assert_int_equal(*r.p, 0x02);

    /* Wide and deep at once: 16 levels each of 4096 elements of which the
     * first is the next level; the cost stays linear (about 64 K steps). */
    {
        ck_buf b = CK_BUF_INIT;
        ck_mp_writer w;
        ck_mp_writer__init(&w, &b);
        for (int d = 0; d < CK_MP_MAX_DEPTH; d++) {
            ck_mp_writer__array(&w, 4096);
        }
        ck_mp_writer__u64(&w, 7);
        for (int d = 0; d < CK_MP_MAX_DEPTH; d++) {
            for (int k = 1; k < 4096; k++)
                (void)msgpack_pack_nil(&w.pk);
        }
        assert_int_equal(w.rc, CK_OK);
        ck_mp__init(&r, b.p, b.len);
        assert_int_equal(ck_mp__skip(&r), CK_OK);
        assert_int_equal(ck_mp__left(&r), 0);
        ck_mp__init(&r, b.p, b.len - 1);
        assert_int_equal(ck_mp__skip(&r), CK_EFORMAT);
        ck_buf__free(&b);
    }

    /* A flat array of a million nils. */
    {
        size_t cnt = 1000000;
        uint8_t *q = malloc(cnt + 5);
        assert_non_null(q);
        q[0] = 0xdd;
        q[1] = (uint8_t)(cnt >> 24);
        q[2] = (uint8_t)(cnt >> 16);
        q[3] = (uint8_t)(cnt >> 8);
        q[4] = (uint8_t)cnt;
        memset(q + 5, 0xc0, cnt);
        ck_mp__init(&r, q, cnt + 5);
        assert_int_equal(ck_mp__skip(&r), CK_OK);
        assert_int_equal(ck_mp__left(&r), 0);
        free(q);
    }
}

static void test_mp_writer(void **state)
{
    (void)state;
    ck_buf b = CK_BUF_INIT;
    ck_mp_writer w;
    ck_mp r;
    uint32_t n;
    const char *s;
    const uint8_t *p;
    uint64_t u;
    int64_t i;
    bool bo;

    ck_mp_writer__init(&w, &b);
    ck_mp_writer__map(&w, 2);
    ck_mp_writer__cstr(&w, "k");
    ck_mp_writer__array(&w, 3);
    ck_mp_writer__u64(&w, UINT64_MAX);
    ck_mp_writer__i64(&w, INT64_MIN);
    ck_mp_writer__bool(&w, true);
    ck_mp_writer__str(&w, "bin", 3);
    ck_mp_writer__bin(&w, "\x00\x01", 2);
    assert_int_equal(w.rc, CK_OK);

    ck_mp__init(&r, b.p, b.len);
    assert_int_equal(ck_mp__map(&r, &n), CK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ck_mp__str(&r, &s, &n), CK_OK);
    assert_true(ck_mp__str_eq(s, n, "k"));
    assert_int_equal(ck_mp__array(&r, &n), CK_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ck_mp__u64(&r, &u), CK_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(ck_mp__i64(&r, &i), CK_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(ck_mp__bool(&r, &bo), CK_OK);
    assert_true(bo);
    assert_int_equal(ck_mp__str(&r, &s, &n), CK_OK);
    assert_true(ck_mp__str_eq(s, n, "bin"));
    assert_int_equal(ck_mp__bin(&r, &p, &n), CK_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "\x00\x01", 2);
    assert_int_equal(ck_mp__left(&r), 0);
    ck_buf__free(&b);

#if SIZE_MAX > UINT32_MAX
    /* A length beyond msgpack's 32 bits is refused before anything is
     * written (the pointer is never read). */
    ck_mp_writer__init(&w, &b);
    ck_mp_writer__str(&w, "x", (size_t)UINT32_MAX + 1);
    assert_int_equal(w.rc, CK_ELIMIT);
    assert_int_equal(b.len, 0);
    ck_mp_writer__init(&w, &b);
    ck_mp_writer__bin(&w, "x", (size_t)UINT32_MAX + 1);
    assert_int_equal(w.rc, CK_ELIMIT);
    assert_int_equal(b.len, 0);
#endif

    /* The first error is kept and later writes add nothing: a buffer that
     * is (as far as ck_buf knows) already at its cap. */
    ck_buf full = {NULL, (size_t)1 << 30, 0, false};
    ck_mp_writer__init(&w, &full);
    ck_mp_writer__u64(&w, 1);
    assert_int_equal(w.rc, CK_ELIMIT);
    ck_mp_writer__cstr(&w, "more");
    ck_mp_writer__bool(&w, false);
    assert_int_equal(w.rc, CK_ELIMIT);
    assert_int_equal(full.len, (size_t)1 << 30);
    assert_null(full.p);
}

/* ------------------------------------------------------------------------ */
/* Dates                                                                    */
/* ------------------------------------------------------------------------ */

static void test_dates(void **state)
{
    (void)state;
    const struct {
        int y, m, d;
        bool ok;
        int32_t days; /* when ok and not 0x7fffffff */
    } cases[] = {
        {1970, 1, 1, true, 0},       {2000, 1, 1, true, 10957},     {1969, 12, 31, true, -1},
        {1, 1, 1, true, -719162},    {9999, 12, 31, true, 2932896}, {2000, 2, 29, true, 11016},
        {2024, 2, 29, true, 19782},  {1600, 2, 29, true, -135081},  {2004, 2, 29, true, 12477},
        {2024, 12, 31, true, 20088}, {1900, 2, 29, false, 0},       {2023, 2, 29, false, 0},
        {2100, 2, 29, false, 0},     {2024, 2, 30, false, 0},       {2024, 4, 31, false, 0},
        {2024, 13, 1, false, 0},     {2024, 0, 1, false, 0},        {2024, 1, 0, false, 0},
        {2024, 1, 32, false, 0},     {0, 1, 1, false, 0},           {10000, 1, 1, false, 0},
        {-1, 1, 1, false, 0},
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(cases); k++) {
        int32_t days = 777;
        int rc = ck_date__from_ymd(&days, cases[k].y, cases[k].m, cases[k].d);
        assert_int_equal(rc, cases[k].ok ? CK_OK : CK_EINVAL);
        assert_int_equal(days, cases[k].ok ? cases[k].days : 0);
        if (cases[k].ok) {
            int y, m, d;
            ck_date__to_ymd(days, &y, &m, &d);
            assert_int_equal(y, cases[k].y);
            assert_int_equal(m, cases[k].m);
            assert_int_equal(d, cases[k].d);
        }
    }

    /* Every day of the range: to_ymd and from_ymd are inverse, and each
     * day is the day after the previous one. */
    int py = 0, pm = 12, pd = 31;
    for (int32_t days = CK_DATE_MIN_DAYS; days <= CK_DATE_MAX_DAYS; days++) {
        int y, m, d;
        int32_t back;
        ck_date__to_ymd(days, &y, &m, &d);
        if (d == pd + 1) {
            if (m != pm || y != py)
                fail_msg("day %d", (int)days);
        } else if (d == 1 && m == pm % 12 + 1) {
            if (y != (m == 1 ? py + 1 : py))
                fail_msg("day %d", (int)days);
        } else {
            fail_msg("day %d: %d-%d-%d after %d-%d-%d", (int)days, y, m, d, py, pm, pd);
        }
        if (ck_date__from_ymd(&back, y, m, d) != CK_OK || back != days)
            fail_msg("day %d does not round-trip", (int)days);
        py = y;
        pm = m;
        pd = d;
    }
    assert_int_equal(py, 9999);

    /* Outside the range, to_ymd still answers (and never overflows). */
    int y, m, d;
    ck_date__to_ymd(INT32_MIN, &y, &m, &d);
    assert_true(y < -5000000);
    ck_date__to_ymd(INT32_MAX, &y, &m, &d);
    assert_true(y > 5000000);
    ck_date__to_ymd(CK_DATE_MIN_DAYS - 1, &y, &m, &d);
    assert_int_equal(y, 0);
    assert_int_equal(m, 12);
    assert_int_equal(d, 31);
}

static void test_date_text(void **state)
{
    (void)state;
    const struct {
        const char *s;
        int32_t days; /* INT32_MIN: invalid */
    } cases[] = {
        {"1970-01-01", 0},
        {"2000-01-01", 10957},
        {"2024-02-29", 19782},
        {"0001-01-01", CK_DATE_MIN_DAYS},
        {"9999-12-31", CK_DATE_MAX_DAYS},
        {"2023-02-29", INT32_MIN},
        {"1900-02-29", INT32_MIN},
        {"0000-12-31", INT32_MIN},
        {"2024-13-01", INT32_MIN},
        {"2024-00-10", INT32_MIN},
        {"2024-1-01", INT32_MIN},
        {"2024-01-1", INT32_MIN},
        {"2024/01/01", INT32_MIN},
        {"2024-01-01 ", INT32_MIN},
        {" 2024-01-01", INT32_MIN},
        {"2024-01-01T00:00:00Z", INT32_MIN},
        {"+024-01-01", INT32_MIN},
        {"-024-01-01", INT32_MIN},
        {"20240101", INT32_MIN},
        {"2O24-01-01", INT32_MIN},
        {"", INT32_MIN},
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(cases); k++) {
        int32_t days = 99;
        int rc = ck_date__parse(&days, cases[k].s, strlen(cases[k].s));
        if (cases[k].days == INT32_MIN) {
            assert_int_equal(rc, CK_EINVAL);
            assert_int_equal(days, 0);
            continue;
        }
        assert_int_equal(rc, CK_OK);
        assert_int_equal(days, cases[k].days);
        char out[CK_DATE_TEXT_MAX];
        assert_int_equal(ck_date__format(out, sizeof(out), days), CK_OK);
        assert_string_equal(out, cases[k].s);
    }
    /* The length is honoured: a valid date followed by more bytes in
     * memory parses only when n says so. */
    int32_t days;
    assert_int_equal(ck_date__parse(&days, "2024-02-29xyz", 10), CK_OK);
    assert_int_equal(days, 19782);
    assert_int_equal(ck_date__parse(&days, "2024-02-29", 9), CK_EINVAL);

    char out[CK_DATE_TEXT_MAX];
    memset(out, 'x', sizeof(out));
    assert_int_equal(ck_date__format(out, CK_DATE_TEXT_MAX - 1, 0), CK_EINVAL);
    assert_int_equal(out[0], '\0');
    assert_int_equal(ck_date__format(out, sizeof(out), CK_DATE_MAX_DAYS + 1), CK_EINVAL);
    assert_int_equal(ck_date__format(out, sizeof(out), CK_DATE_MIN_DAYS - 1), CK_EINVAL);
    assert_int_equal(ck_date__format(out, sizeof(out), -1), CK_OK);
    assert_string_equal(out, "1969-12-31");
}

/* ------------------------------------------------------------------------ */
/* Timestamps                                                               */
/* ------------------------------------------------------------------------ */

static void test_ts_text(void **state)
{
    (void)state;
    /* The instant used below, computed independently. */
    assert_true((int64_t)ymd(2024, 11, 24) * 86400 + 19 * 3600 + 4 * 60 + 17 == 1732475057);
    assert_true((int64_t)ymd(2024, 3, 1) * 86400 == 1709251200);
    const struct {
        const char *in;
        const char *canon; /* NULL: refused */
        int64_t sec;
        int32_t nsec;
        int16_t off;
    } cases[] = {
        {"2024-11-24T19:04:17Z", "2024-11-24T19:04:17Z", 1732475057, 0, 0},
        {"2024-11-24T19:04:17.120+02:00", "2024-11-24T19:04:17.12+02:00", 1732475057 - 7200,
         120000000, 120},
        {"2024-11-24t19:04:17z", "2024-11-24T19:04:17Z", 1732475057, 0, 0},
        {"2024-11-24T19:04:17+00:00", "2024-11-24T19:04:17Z", 1732475057, 0, 0},
        {"2024-11-24T19:04:17-00:00", "2024-11-24T19:04:17Z", 1732475057, 0, 0},
        {"2024-11-24T19:04:17.5Z", "2024-11-24T19:04:17.5Z", 1732475057, 500000000, 0},
        {"2024-11-24T19:04:17.000Z", "2024-11-24T19:04:17Z", 1732475057, 0, 0},
        {"2024-11-24T19:04:17.000000001Z", "2024-11-24T19:04:17.000000001Z", 1732475057, 1, 0},
        {"2024-11-24T19:04:17.999999999-05:30", "2024-11-24T19:04:17.999999999-05:30",
         1732475057 + 5 * 3600 + 1800, 999999999, -330},
        {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", 0, 0, 0},
        {"1969-12-31T23:59:59.9Z", "1969-12-31T23:59:59.9Z", -1, 900000000, 0},
        {"1970-01-01T00:00:00+23:59", "1970-01-01T00:00:00+23:59", -1439 * 60, 0, 1439},
        {"1970-01-01T00:00:00-23:59", "1970-01-01T00:00:00-23:59", 1439 * 60, 0, -1439},
        {"2024-02-29T23:59:59+01:00", "2024-02-29T23:59:59+01:00", 1709247599, 0, 60},
        {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", CK_TS_MIN_SEC, 0, 0},
        {"9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59.999999999Z", CK_TS_MAX_SEC,
         999999999, 0},
        {"0001-01-01T01:00:00+01:00", "0001-01-01T01:00:00+01:00", CK_TS_MIN_SEC, 0, 60},
        /* refused */
        {"2024-11-24T19:04:17", NULL, 0, 0, 0},       /* no offset */
        {"2024-11-24T24:00:00Z", NULL, 0, 0, 0},      /* hour 24 */
        {"2024-11-24T19:04:17+24:00", NULL, 0, 0, 0}, /* offset 24 h */
        {"2024-11-24T19:04:17+02:60", NULL, 0, 0, 0},
        {"2024-11-24T19:04:60Z", NULL, 0, 0, 0}, /* leap second */
        {"2024-11-24T19:60:00Z", NULL, 0, 0, 0},
        {"2024-11-24T19:04:17.Z", NULL, 0, 0, 0},           /* empty fraction */
        {"2024-11-24T19:04:17.1234567890Z", NULL, 0, 0, 0}, /* 10 digits */
        {"2024-11-24 19:04:17Z", NULL, 0, 0, 0},
        {"2024-11-24T19:04Z", NULL, 0, 0, 0},
        {"2024-11-24T19:04:17+0200", NULL, 0, 0, 0},
        {"2024-11-24T19:04:17+02", NULL, 0, 0, 0},
        {"2024-11-24T19:04:17+02:00 ", NULL, 0, 0, 0},
        {"2024-11-24T19:04:17ZZ", NULL, 0, 0, 0},
        {"2024-11-24T19:04:17UTC", NULL, 0, 0, 0},
        {"2024-11-24T1:04:17Z", NULL, 0, 0, 0},
        {"2023-02-29T00:00:00Z", NULL, 0, 0, 0},
        {"2024-11-24T19:04:17.12a+02:00", NULL, 0, 0, 0},
        {"0001-01-01T00:00:00+00:01", NULL, 0, 0, 0}, /* UTC before year 1 */
        {"9999-12-31T23:59:59-00:01", NULL, 0, 0, 0}, /* UTC after year 9999 */
        {"", NULL, 0, 0, 0},
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(cases); k++) {
        ck_value v;
        memset(&v, 0x5a, sizeof(v));
        int rc = ck_ts__parse(&v, cases[k].in, strlen(cases[k].in));
        if (cases[k].canon == NULL) {
            if (rc != CK_EINVAL)
                fail_msg("accepted %s", cases[k].in);
            assert_true(all_zero(&v, sizeof(v)));
            continue;
        }
        if (rc != CK_OK)
            fail_msg("refused %s", cases[k].in);
        assert_int_equal(v.type, CK_TYPE_TIMESTAMP);
        assert_true(v.u.ts.sec == cases[k].sec);
        assert_int_equal(v.u.ts.nsec, cases[k].nsec);
        assert_int_equal(v.u.ts.offset_min, cases[k].off);

        char out[CK_TS_TEXT_MAX];
        assert_int_equal(ck_ts__format(out, sizeof(out), &v), CK_OK);
        assert_string_equal(out, cases[k].canon);
        /* The canonical form parses to the same value. */
        ck_value again;
        assert_int_equal(ck_ts__parse(&again, out, strlen(out)), CK_OK);
        assert_true(value_equal(&v, &again));
    }
}

static void test_ts_format(void **state)
{
    (void)state;
    char out[CK_TS_TEXT_MAX];
    ck_value v = v_ts(-1, 1, -1);

    /* The local time printed is sec + offset. */
    assert_int_equal(ck_ts__format(out, sizeof(out), &v), CK_OK);
    assert_string_equal(out, "1969-12-31T23:58:59.000000001-00:01");
    /* The longest form fits CK_TS_TEXT_MAX exactly. */
    v = v_ts(0, 100000001, -1439);
    assert_int_equal(ck_ts__format(out, sizeof(out), &v), CK_OK);
    assert_int_equal(strlen(out), CK_TS_TEXT_MAX - 1);
    assert_string_equal(out, "1969-12-31T00:01:00.100000001-23:59");

    memset(out, 'x', sizeof(out));
    assert_int_equal(ck_ts__format(out, CK_TS_TEXT_MAX - 1, &v), CK_EINVAL);
    assert_int_equal(out[0], '\0');
    v = v_ts(0, 1000000000, 0);
    assert_int_equal(ck_ts__format(out, sizeof(out), &v), CK_EINVAL);
    v = v_ts(0, 0, 1440);
    assert_int_equal(ck_ts__format(out, sizeof(out), &v), CK_EINVAL);
    v = v_ts(CK_TS_MAX_SEC, 0, 1);
    assert_int_equal(ck_ts__format(out, sizeof(out), &v), CK_EINVAL);
    v = v_int(0);
    assert_int_equal(ck_ts__format(out, sizeof(out), &v), CK_EINVAL);

    /* Pseudo-random values: format then parse gives the value back. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int k = 0; k < 20000; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t span = CK_TS_MAX_SEC - CK_TS_MIN_SEC - 2 * 1439 * 60;
        int64_t sec = CK_TS_MIN_SEC + 1439 * 60 + (int64_t)(x % (uint64_t)span);
        int32_t nsec = (int32_t)((x >> 20) % 1000000000u);
        if (k % 3 == 0)
            nsec = (nsec / 1000000) * 1000000; /* trailing zeros */
        int16_t off = (int16_t)((int)((x >> 50) % 2879) - 1439);
        v = v_ts(sec, nsec, off);
        assert_int_equal(ck_ts__format(out, sizeof(out), &v), CK_OK);
        ck_value back;
        if (ck_ts__parse(&back, out, strlen(out)) != CK_OK || !value_equal(&v, &back))
            fail_msg("%s does not round-trip", out);
    }
}

/* ------------------------------------------------------------------------ */
/* Arena and buffer                                                         */
/* ------------------------------------------------------------------------ */

static void test_arena(void **state)
{
    (void)state;
    ck_arena a = CK_ARENA_INIT;
    enum { N = 5000 };
    uint8_t **ptrs = calloc(N, sizeof(*ptrs));
    size_t *sizes = calloc(N, sizeof(*sizes));
    assert_non_null(ptrs);
    assert_non_null(sizes);

    /* Many allocations of varied sizes (some beyond the chunk size): each
     * aligned to 8, and none overlapping (each keeps its own pattern). */
    for (size_t k = 0; k < N; k++) {
        sizes[k] = (k * 37) % 300;
        if (k % 500 == 7)
            sizes[k] = 5000 + k;
        ptrs[k] = ck_arena__alloc(&a, sizes[k]);
        assert_non_null(ptrs[k]);
        assert_int_equal((uintptr_t)ptrs[k] % 8, 0);
        memset(ptrs[k], (int)(k & 0xff), sizes[k]);
    }
    for (size_t k = 0; k < N; k++) {
        for (size_t j = 0; j < sizes[k]; j++) {
            if (ptrs[k][j] != (uint8_t)(k & 0xff))
                fail_msg("allocation %zu overwritten", k);
        }
    }
    /* Distinct addresses even for zero-byte requests. */
    void *z1 = ck_arena__alloc(&a, 0);
    void *z2 = ck_arena__alloc(&a, 0);
    assert_non_null(z1);
    assert_non_null(z2);
    assert_ptr_not_equal(z1, z2);

    /* dup copies. */
    char *d = ck_arena__dup(&a, "hello", 6);
    assert_non_null(d);
    assert_string_equal(d, "hello");
    assert_non_null(ck_arena__dup(&a, NULL, 0));

    /* Impossible sizes. */
    assert_null(ck_arena__alloc(&a, SIZE_MAX));
    assert_null(ck_arena__alloc(&a, SIZE_MAX - 8));

    /* Reset keeps the first chunk, wiped: the next allocation is the first
     * one's address again and reads as zeros. */
    uint8_t *first = ptrs[0];
    ck_arena__reset(&a);
    assert_non_null(a.head);
    uint8_t *again = ck_arena__alloc(&a, 64);
    assert_ptr_equal(again, first);
    assert_true(all_zero(again, 64));
    /* And it serves again. */
    for (size_t k = 0; k < N; k++) {
        uint8_t *p = ck_arena__alloc(&a, 24);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 8, 0);
    }
    ck_arena__free(&a);
    assert_null(a.head);
    /* A freed arena is reusable; reset and free of an empty one are no-ops. */
    ck_arena__reset(&a);
    assert_null(a.head);
    assert_non_null(ck_arena__alloc(&a, 1));
    ck_arena__free(&a);
    ck_arena__free(&a);

    /* A large first allocation: its chunk is the one kept. */
    uint8_t *big = ck_arena__alloc(&a, 10000);
    assert_non_null(big);
    memset(big, 0xee, 10000);
    assert_non_null(ck_arena__alloc(&a, 10));
    assert_non_null(ck_arena__alloc(&a, 20000));
    ck_arena__reset(&a);
    assert_ptr_equal(ck_arena__alloc(&a, 10000), big);
    assert_true(all_zero(big, 10000));
    ck_arena__free(&a);

    free(sizes);
    free(ptrs);
}

/* A chunk partly used: reset wipes every byte handed out (the wipe covers
 * what was used, not the whole chunk). */
static void test_arena_partial_wipe(void **state)
{
    (void)state;
    ck_arena a = CK_ARENA_INIT;
    uint8_t *p[3];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) {
            uint8_t *q = ck_arena__alloc(&a, 40 + (size_t)i);
            assert_non_null(q);
            if (round > 0) {
                assert_ptr_equal(q, p[i]); /* the same bytes again */
                assert_true(all_zero(q, 40 + (size_t)i));
            }
            p[i] = q;
            memset(q, 0xab, 40 + (size_t)i);
        }
        ck_arena__reset(&a);
    }
    ck_arena__free(&a);
}

static void buf_growth(bool secure)
{
    ck_buf b = secure ? (ck_buf)CK_BUF_SECURE_INIT : (ck_buf)CK_BUF_INIT;
    uint8_t chunk[100];

    /* One byte at a time: geometric growth (powers of two from 64), so
     * only five capacities are ever seen. */
    size_t caps_seen = 0;
    size_t last_cap = 0;
    for (size_t k = 0; k < 1000; k++) {
        uint8_t c = (uint8_t)(k * 13);
        assert_int_equal(ck_buf__append(&b, &c, 1), CK_OK);
        assert_true(b.cap >= b.len);
        if (b.cap != last_cap) {
            assert_int_equal(b.cap, (size_t)64 << caps_seen);
            caps_seen++;
            last_cap = b.cap;
        }
    }
    assert_int_equal(caps_seen, 5);
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.cap, 1024);
    for (size_t k = 0; k < 1000; k++)
        assert_int_equal(b.p[k], (uint8_t)(k * 13));

    /* A large append grows to exactly what is needed when doubling is not
     * enough. */
    for (size_t k = 0; k < sizeof(chunk); k++)
        chunk[k] = (uint8_t)k;
    uint8_t *large = malloc(10000);
    assert_non_null(large);
    memset(large, 0x42, 10000);
    assert_int_equal(ck_buf__append(&b, large, 10000), CK_OK);
    assert_int_equal(b.len, 11000);
    assert_int_equal(b.cap, 11000);
    assert_int_equal(b.p[999], (uint8_t)(999 * 13));
    assert_int_equal(b.p[10999], 0x42);
    free(large);

    /* Zero-length appends change nothing. */
    assert_int_equal(ck_buf__append(&b, NULL, 0), CK_OK);
    assert_int_equal(b.len, 11000);

    /* Reset keeps the storage; a secure buffer is wiped. */
    uint8_t *p = b.p;
    size_t cap = b.cap;
    ck_buf__reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.cap, cap);
    if (secure)
        assert_true(all_zero(b.p, b.cap));
    else
        assert_int_equal(b.p[10], (uint8_t)(10 * 13)); /* not wiped */
    assert_int_equal(ck_buf__append(&b, chunk, sizeof(chunk)), CK_OK);
    assert_memory_equal(b.p, chunk, sizeof(chunk));
    assert_ptr_equal(b.p, p);

    ck_buf__free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.secure, secure);
    /* Reusable after free; a fresh reserve makes a minimum capacity. */
    assert_int_equal(ck_buf__reserve(&b, 0), CK_OK);
    assert_non_null(b.p);
    assert_int_equal(b.cap, 64);
    ck_buf__free(&b);
    ck_buf__free(&b); /* twice is harmless */

    /* Limits: overflow and more than 1 GiB, with nothing allocated. */
    assert_int_equal(ck_buf__reserve(&b, SIZE_MAX), CK_ELIMIT);
    assert_int_equal(ck_buf__reserve(&b, ((size_t)1 << 30) + 1), CK_ELIMIT);
    assert_null(b.p);
    assert_int_equal(ck_buf__append(&b, "x", 1), CK_OK);
    assert_int_equal(ck_buf__reserve(&b, (size_t)1 << 30), CK_ELIMIT);
    assert_int_equal(ck_buf__reserve(&b, SIZE_MAX), CK_ELIMIT);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.p[0], 'x');
    ck_buf__free(&b);
}

static void test_buf(void **state)
{
    (void)state;
    buf_growth(false);
    buf_growth(true);

    /* A buffer (faked) just below the cap: growth beyond 1 GiB is refused
     * before any allocation, and the buffer is untouched. */
    ck_buf fake = {NULL, ((size_t)1 << 30) - 10, 0, false};
    assert_int_equal(ck_buf__reserve(&fake, 11), CK_ELIMIT);
    assert_int_equal(ck_buf__append(&fake, "0123456789a", 11), CK_ELIMIT);
    assert_null(fake.p);
    assert_int_equal(fake.len, ((size_t)1 << 30) - 10);
}

/* ------------------------------------------------------------------------ */
/* Memory wrappers                                                          */
/* ------------------------------------------------------------------------ */

static void test_mem(void **state)
{
    (void)state;
    char *s = ck_mem__strndup("abcdef", 3);
    assert_non_null(s);
    assert_string_equal(s, "abc");
    ck_mem__free(s);
    s = ck_mem__strndup("ab", 10);
    assert_string_equal(s, "ab");
    ck_mem__free(s);

    void *p = ck_mem__malloc(0);
    assert_non_null(p);
    p = ck_mem__realloc(p, 0);
    assert_non_null(p);
    ck_mem__free(p);
    uint8_t *z = ck_mem__calloc(16, 4);
    assert_non_null(z);
    assert_true(all_zero(z, 64));
    ck_mem__free(z);
    assert_null(ck_mem__calloc(SIZE_MAX, 2));
    z = ck_mem__calloc(0, 8); /* never NULL for an empty request */
    assert_non_null(z);
    ck_mem__free(z);
    uint8_t *g = ck_mem__smalloc(100);
    assert_non_null(g);
    memset(g, 1, 100);
    ck_mem__sfree(g);
    ck_mem__sfree(NULL);
    ck_mem__free(NULL);
#ifndef CK_FAULT_INJECTION
    assert_false(ck_fault__hit("alloc"));
#endif
}

#ifdef CK_FAULT_INJECTION
/* Every allocation of an encode and a decode, failed in turn: the call
 * reports CK_ENOMEM and leaves nothing behind (the sanitizers and valgrind
 * see any leak). */
static void test_fault_injection(void **state)
{
    (void)state;
    ck_arena arena = CK_ARENA_INIT;
    ck_str items[40];
    char names[40][4];
    for (size_t k = 0; k < 40; k++) {
        int len = snprintf(names[k], sizeof(names[k]), "%zu", k);
        items[k].ptr = names[k];
        items[k].len = (size_t)len;
    }
    ck_value v = v_list(items, 40);

    /* The counter and the single hit. */
    ck_fault__arm(3);
    assert_false(ck_fault__hit("x"));
    assert_false(ck_fault__hit("x"));
    assert_true(ck_fault__hit("x"));
    assert_false(ck_fault__hit("x"));
    assert_int_equal(ck_fault__count(), 4);
    ck_fault__arm(0);
    assert_false(ck_fault__hit("x"));
    assert_int_equal(ck_fault__count(), 1);

    unsigned long n;
    int failures = 0;
    for (n = 1;; n++) {
        ck_buf b = CK_BUF_SECURE_INIT;
        assert_int_equal(ck_buf__append(&b, "pre", 3), CK_OK);
        ck_fault__arm(n);
        int rc = ck_codec__encode(&b, &v);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (seen < n) {
            assert_int_equal(rc, CK_OK);
            ck_buf__free(&b);
            break;
        }
        assert_int_equal(rc, CK_ENOMEM);
        assert_int_equal(b.len, 3); /* rolled back */
        assert_memory_equal(b.p, "pre", 3);
        failures++;
        ck_buf__free(&b);
    }
    assert_true(failures >= 1);

    ck_buf enc = CK_BUF_INIT;
    assert_int_equal(ck_codec__encode(&enc, &v), CK_OK);
    failures = 0;
    for (n = 1;; n++) {
        ck_value out;
        ck_fault__arm(n);
        int rc = ck_codec__decode(&out, CK_TYPE_LIST, enc.p, enc.len, &arena);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (seen < n) {
            assert_int_equal(rc, CK_OK);
            assert_true(value_equal(&v, &out));
            break;
        }
        assert_int_equal(rc, CK_ENOMEM);
        assert_int_equal(out.type, 0);
        failures++;
        ck_arena__free(&arena);
    }
    assert_int_equal(failures, 1);
    ck_arena__free(&arena);
    ck_buf__free(&enc);

    /* Each wrapper fails when hit. */
    ck_fault__arm(1);
    assert_null(ck_mem__malloc(1));
    ck_fault__arm(1);
    assert_null(ck_mem__calloc(1, 1));
    ck_fault__arm(1);
    assert_null(ck_mem__realloc(NULL, 1));
    ck_fault__arm(1);
    assert_null(ck_mem__smalloc(1));
    ck_fault__arm(1);
    assert_null(ck_mem__strndup("a", 1));
    ck_fault__arm(1);
    assert_null(ck_arena__alloc(&arena, 1));
    /* A plain buffer whose growth fails keeps its contents. */
    ck_buf plain = CK_BUF_INIT;
    assert_int_equal(ck_buf__append(&plain, "abc", 3), CK_OK);
    uint8_t *before = plain.p;
    ck_fault__arm(1);
    assert_int_equal(ck_buf__reserve(&plain, 1000), CK_ENOMEM);
    assert_ptr_equal(plain.p, before);
    assert_int_equal(plain.len, 3);
    assert_int_equal(plain.cap, 64);
    assert_memory_equal(plain.p, "abc", 3);
    ck_buf__free(&plain);
    ck_fault__arm(0);
}
#endif

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_scalars),
        cmocka_unit_test(test_encoding_bytes),
        cmocka_unit_test(test_roundtrip_big),
        cmocka_unit_test(test_roundtrip_lists),
        cmocka_unit_test(test_encode_append_and_rollback),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_check_refusals),
        cmocka_unit_test(test_decode_truncations),
        cmocka_unit_test(test_decode_wrong_type),
        cmocka_unit_test(test_decode_lenient_forms),
        cmocka_unit_test(test_decode_hostile),
        cmocka_unit_test(test_decode_ext),
        cmocka_unit_test(test_mp_kinds),
        cmocka_unit_test(test_mp_values),
        cmocka_unit_test(test_mp_ints),
        cmocka_unit_test(test_mp_skip_depth),
        cmocka_unit_test(test_mp_writer),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_date_text),
        cmocka_unit_test(test_ts_text),
        cmocka_unit_test(test_ts_format),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_arena_partial_wipe),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_mem),
#ifdef CK_FAULT_INJECTION
        cmocka_unit_test(test_fault_injection),
#endif
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
