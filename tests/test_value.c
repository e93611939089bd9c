/*
 * test_value.c - tests of typed values in and out of JSON and text, and of
 * the minimisations (value.c).
 *
 * Every refusal asserts the exact status code and message, that `out` is
 * left zeroed, and that the message does not quote the input; every
 * acceptance asserts the exact value. JSON output is compared byte for byte
 * with what Jansson's json_dumps writes.
 */
/* ck-test: fast */
#include "value.h"

#include <float.h>
#include <locale.h>
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

static int32_t ymd(int y, int m, int d)
{
    int32_t days;
    assert_int_equal(ck_date__from_ymd(&days, y, m, d), CK_OK);
    return days;
}

/* from_json must accept j as `type` and give *want. */
static void expect_json_ok(ck_type type, const json_t *j, const ck_value *want)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    char err[128] = "untouched";

    assert_non_null(j);
    assert_int_equal(ck_value__from_json(&out, type, j, &arena, err, sizeof(err)), CK_OK);
    assert_string_equal(err, "");
    assert_true(value_equal(&out, want));
    assert_int_equal(ck_codec__check(&out), CK_OK);
    ck_arena__free(&arena);
}

/* from_json must refuse j as `type` with rc and exactly msg, `out` zeroed. */
static void expect_json_err(ck_type type, const json_t *j, int rc, const char *msg)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    char err[128] = "";

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(ck_value__from_json(&out, type, j, &arena, err, sizeof(err)), rc);
    assert_string_equal(err, msg);
    assert_true(all_zero(&out, sizeof(out)));
    ck_arena__free(&arena);
}

/* Take ownership of a new json_t for the duration of one check. */
static void json_ok(ck_type type, json_t *j, ck_value want)
{
    expect_json_ok(type, j, &want);
    json_decref(j);
}

static void json_err(ck_type type, json_t *j, int rc, const char *msg)
{
    expect_json_err(type, j, rc, msg);
    json_decref(j);
}

/* from_text and from_json(JSON string) must both accept text as `type`. */
static void text_ok(ck_type type, const char *text, ck_value want)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    char err[128] = "untouched";

    assert_int_equal(ck_value__from_text(&out, type, text, strlen(text), &arena, err, sizeof(err)),
                     CK_OK);
    assert_string_equal(err, "");
    assert_true(value_equal(&out, &want));
    ck_arena__free(&arena);
    if (type != CK_TYPE_LIST)
        json_ok(type, json_string(text), want);
}

/* from_text and from_json(JSON string) must both refuse the text with rc
 * and exactly msg; the message never quotes the input. */
static void text_err(ck_type type, const char *text, size_t n, int rc, const char *msg)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    char err[128] = "";

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(ck_value__from_text(&out, type, text, n, &arena, err, sizeof(err)), rc);
    assert_string_equal(err, msg);
    assert_true(all_zero(&out, sizeof(out)));
    if (n >= 3 && memchr(text, '\0', n) == NULL)
        assert_null(strstr(err, text));
    ck_arena__free(&arena);
    if (type != CK_TYPE_LIST && ck_codec__utf8_valid(text, n)) {
        json_t *j = json_stringn(text, n);
        assert_non_null(j);
        expect_json_err(type, j, rc, msg);
        json_decref(j);
    }
}

static void text_errz(ck_type type, const char *text, int rc, const char *msg)
{
    text_err(type, text, strlen(text), rc, msg);
}

/* The compact JSON text Jansson writes for j (consumes j). */
static char *dumps(json_t *j)
{
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(s);
    json_decref(j);
    return s;
}

/* ck_value__append_json(v) must equal json_dumps(to_json(v)) byte for byte,
 * append after what the buffer holds, and equal `want` when given. */
static void expect_same_json(const ck_value *v, const char *want)
{
    ck_buf b = CK_BUF_INIT;
    char *ref = dumps(ck_value__to_json(v));

    assert_int_equal(ck_buf__append(&b, "prefix|", 7), CK_OK);
    assert_int_equal(ck_value__append_json(&b, v), CK_OK);
    assert_int_equal(b.len, 7 + strlen(ref));
    assert_memory_equal(b.p, "prefix|", 7);
    assert_memory_equal(b.p + 7, ref, strlen(ref));
    if (want != NULL)
        assert_string_equal(ref, want);
    free(ref);
    ck_buf__free(&b);

    /* A secure buffer gets the same bytes. */
    ck_buf sb = CK_BUF_SECURE_INIT;
    ck_buf plain = CK_BUF_INIT;
    assert_int_equal(ck_value__append_json(&sb, v), CK_OK);
    assert_int_equal(ck_value__append_json(&plain, v), CK_OK);
    assert_int_equal(sb.len, plain.len);
    assert_memory_equal(sb.p, plain.p, plain.len);
    ck_buf__free(&sb);
    ck_buf__free(&plain);
}

/* from_json(to_json(v)) == v. */
static void expect_roundtrip(const ck_value *v)
{
    json_t *j = ck_value__to_json(v);
    assert_non_null(j);
    expect_json_ok(v->type, j, v);
    json_decref(j);
}

static ck_schema_min min_of(ck_min_kind kind)
{
    ck_schema_min m;
    memset(&m, 0, sizeof(m));
    m.kind = kind;
    return m;
}

static ck_schema_min min_prefix(uint32_t n)
{
    ck_schema_min m = min_of(CK_MIN_PREFIX);
    m.prefix = n;
    return m;
}

static ck_schema_min min_band(const int64_t *edges, uint32_t n)
{
    ck_schema_min m = min_of(CK_MIN_BAND);
    m.edges = edges;
    m.nedges = n;
    return m;
}

/* Minimise in with m and require a STRING equal to want. */
static void expect_min_str(const ck_value *in, const ck_schema_min *m, const char *want)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;

    assert_int_equal(ck_value__minimize(&out, in, m, &arena), CK_OK);
    assert_int_equal(out.type, CK_TYPE_STRING);
    assert_int_equal(out.u.str.len, strlen(want));
    assert_non_null(out.u.str.ptr);
    assert_memory_equal(out.u.str.ptr, want, strlen(want));
    assert_int_equal(ck_codec__check(&out), CK_OK);
    ck_arena__free(&arena);
}

static void expect_min_year(const ck_value *in, int64_t year)
{
    ck_value out;
    ck_schema_min m = min_of(CK_MIN_YEAR);

    assert_int_equal(ck_value__minimize(&out, in, &m, NULL), CK_OK);
    assert_int_equal(out.type, CK_TYPE_INT);
    assert_int_equal(out.u.i, year);
}

static void expect_min_rc(const ck_value *in, const ck_schema_min *m, int rc)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(ck_value__minimize(&out, in, m, &arena), rc);
    assert_true(all_zero(&out, sizeof(out)));
    ck_arena__free(&arena);
}

static ck_value ts_of(const char *text)
{
    ck_value v;
    assert_int_equal(ck_ts__parse(&v, text, strlen(text)), CK_OK);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Input: string                                                            */
/* ------------------------------------------------------------------------ */

static void test_string(void **state)
{
    (void)state;
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    char err[128];

    text_ok(CK_TYPE_STRING, "hello", v_cstr("hello"));
    text_ok(CK_TYPE_STRING, "", v_cstr(""));
    text_ok(CK_TYPE_STRING, "\xc3\x89vry", v_cstr("\xc3\x89vry"));
    text_ok(CK_TYPE_STRING, "a\"b\\c/\n", v_cstr("a\"b\\c/\n"));

    /* The bytes are copied into the arena, not borrowed from the JSON. */
    json_t *j = json_string("copied");
    assert_int_equal(ck_value__from_json(&out, CK_TYPE_STRING, j, &arena, err, sizeof(err)), CK_OK);
    assert_ptr_not_equal(out.u.str.ptr, json_string_value(j));
    json_decref(j);
    assert_int_equal(out.u.str.len, 6);
    assert_memory_equal(out.u.str.ptr, "copied", 6);

    /* From text: not NUL-terminated, n bytes only. */
    assert_int_equal(
        ck_value__from_text(&out, CK_TYPE_STRING, "abcdef", 3, &arena, err, sizeof(err)), CK_OK);
    assert_int_equal(out.u.str.len, 3);
    assert_memory_equal(out.u.str.ptr, "abc", 3);

    /* Exactly the limit, and one byte more. */
    char *big = malloc(MIB + 2);
    assert_non_null(big);
    memset(big, 'x', MIB + 1);
    big[MIB + 1] = '\0';
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_STRING, big, MIB, &arena, err, sizeof(err)),
                     CK_OK);
    assert_int_equal(out.u.str.len, MIB);
    text_err(CK_TYPE_STRING, big, MIB + 1, CK_ELIMIT, "string longer than 1048576 bytes");
    free(big);

    /* NUL, invalid UTF-8 (text only: a JSON string is UTF-8), wrong kinds. */
    text_err(CK_TYPE_STRING, "ab\0cd", 5, CK_EINVAL, "string contains a NUL character");
    text_err(CK_TYPE_STRING, "ab\xff", 3, CK_EINVAL, "string is not valid UTF-8");
    text_err(CK_TYPE_STRING, "\xed\xa0\x80", 3, CK_EINVAL, "string is not valid UTF-8");
    text_err(CK_TYPE_STRING, "\xc0\xaf", 2, CK_EINVAL, "string is not valid UTF-8");
    json_err(CK_TYPE_STRING, json_integer(1), CK_EINVAL, "expected a string");
    json_err(CK_TYPE_STRING, json_null(), CK_EINVAL, "expected a string");
    json_err(CK_TYPE_STRING, json_pack("[s]", "a"), CK_EINVAL, "expected a string");
    /* A json_t built without Jansson's UTF-8 check is still refused. */
    json_err(CK_TYPE_STRING, json_stringn_nocheck("a\xff", 2), CK_EINVAL,
             "string is not valid UTF-8");

    ck_arena__free(&arena);
}

/* ------------------------------------------------------------------------ */
/* Input: int                                                               */
/* ------------------------------------------------------------------------ */

static void test_int(void **state)
{
    (void)state;

    json_ok(CK_TYPE_INT, json_integer(42), v_int(42));
    json_ok(CK_TYPE_INT, json_integer(INT64_MAX), v_int(INT64_MAX));
    json_ok(CK_TYPE_INT, json_integer(INT64_MIN), v_int(INT64_MIN));
    text_ok(CK_TYPE_INT, "0", v_int(0));
    text_ok(CK_TYPE_INT, "-0", v_int(0));
    text_ok(CK_TYPE_INT, "-12", v_int(-12));
    text_ok(CK_TYPE_INT, "9223372036854775807", v_int(INT64_MAX));
    text_ok(CK_TYPE_INT, "-9223372036854775808", v_int(INT64_MIN));

    text_errz(CK_TYPE_INT, "9223372036854775808", CK_EINVAL, "integer out of range");
    text_errz(CK_TYPE_INT, "-9223372036854775809", CK_EINVAL, "integer out of range");
    text_errz(CK_TYPE_INT, "18446744073709551616", CK_EINVAL, "integer out of range");
    text_errz(CK_TYPE_INT, "99999999999999999999999999", CK_EINVAL, "integer out of range");
    static const char *const bad[] = {"007", "00",  "-01",  "+1",  " 1", "1 ",  "",    "-",
                                      "1.0", "1e3", "0x10", "1_0", "١٢", "--1", "12a", "true"};
    for (size_t k = 0; k < CK_ARRAY_LEN(bad); k++)
        text_errz(CK_TYPE_INT, bad[k], CK_EINVAL, "expected an integer");
    json_err(CK_TYPE_INT, json_real(1.0), CK_EINVAL, "expected an integer");
    json_err(CK_TYPE_INT, json_true(), CK_EINVAL, "expected an integer");
    json_err(CK_TYPE_INT, json_null(), CK_EINVAL, "expected an integer");
    json_err(CK_TYPE_INT, json_array(), CK_EINVAL, "expected an integer");
}

/* ------------------------------------------------------------------------ */
/* Input: float                                                             */
/* ------------------------------------------------------------------------ */

static void test_float(void **state)
{
    (void)state;
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    char err[128];

    json_ok(CK_TYPE_FLOAT, json_real(1.5), v_float(1.5));
    json_ok(CK_TYPE_FLOAT, json_real(-0.0), v_float(-0.0));
    json_ok(CK_TYPE_FLOAT, json_real(DBL_MAX), v_float(DBL_MAX));
    json_ok(CK_TYPE_FLOAT, json_integer(3), v_float(3.0));
    /* An integer beyond 2^53 becomes the nearest double. */
    json_ok(CK_TYPE_FLOAT, json_integer(INT64_MAX), v_float(9223372036854775808.0));
    json_ok(CK_TYPE_FLOAT, json_integer(9007199254740993LL), v_float(9007199254740992.0));

    text_ok(CK_TYPE_FLOAT, "1.5", v_float(1.5));
    text_ok(CK_TYPE_FLOAT, "-2", v_float(-2.0));
    text_ok(CK_TYPE_FLOAT, "0", v_float(0.0));
    text_ok(CK_TYPE_FLOAT, "-0.0", v_float(-0.0));
    text_ok(CK_TYPE_FLOAT, "1e3", v_float(1000.0));
    text_ok(CK_TYPE_FLOAT, "1E+3", v_float(1000.0));
    text_ok(CK_TYPE_FLOAT, "2.5e-3", v_float(0.0025));
    text_ok(CK_TYPE_FLOAT, "0.1", v_float(0.1));
    text_ok(CK_TYPE_FLOAT, "1.7976931348623157e308", v_float(DBL_MAX));
    text_ok(CK_TYPE_FLOAT, "4.9406564584124654e-324", v_float(4.9406564584124654e-324));
    /* Underflow gives 0, as Jansson reads such a real. */
    text_ok(CK_TYPE_FLOAT, "1e-400", v_float(0.0));

    text_errz(CK_TYPE_FLOAT, "1e400", CK_EINVAL, "number out of range");
    text_errz(CK_TYPE_FLOAT, "-1e400", CK_EINVAL, "number out of range");
    text_errz(CK_TYPE_FLOAT, "1.8e308", CK_EINVAL, "number out of range");
    static const char *const bad[] = {"nan", "NaN",  "inf", "-inf", "Infinity", "+1",  ".5",
                                      "5.",  "01.5", "1e",  "1e+",  "0x1p3",    " 1",  "1 ",
                                      "",    "-",    "1,5", "1.5f", "--1",      "1e5e"};
    for (size_t k = 0; k < CK_ARRAY_LEN(bad); k++)
        text_errz(CK_TYPE_FLOAT, bad[k], CK_EINVAL, "expected a number");

    /* 1024 characters are read; 1025 are refused. */
    char num[1027];
    num[0] = '0';
    num[1] = '.';
    memset(num + 2, '1', sizeof(num) - 3);
    num[sizeof(num) - 1] = '\0';
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_FLOAT, num, 1024, &arena, err, sizeof(err)),
                     CK_OK);
    assert_true(fabs(out.u.f - 1.0 / 9.0) < 1e-15);
    text_err(CK_TYPE_FLOAT, num, 1025, CK_EINVAL, "number text longer than 1024 characters");

    json_err(CK_TYPE_FLOAT, json_false(), CK_EINVAL, "expected a number");
    json_err(CK_TYPE_FLOAT, json_null(), CK_EINVAL, "expected a number");
    json_err(CK_TYPE_FLOAT, json_object(), CK_EINVAL, "expected a number");
    ck_arena__free(&arena);
}

/* A host program that sets a locale with a decimal comma changes neither
 * what is read nor what is written (when such a locale is installed). */
static void test_float_locale(void **state)
{
    (void)state;
    static const char *const names[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE.utf8", "fr_FR.utf8"};
    const char *set = NULL;

    for (size_t k = 0; k < CK_ARRAY_LEN(names) && set == NULL; k++)
        set = setlocale(LC_NUMERIC, names[k]);
    /* With or without such a locale, the C forms hold. */
    text_ok(CK_TYPE_FLOAT, "1.25", v_float(1.25));
    text_errz(CK_TYPE_FLOAT, "1,25", CK_EINVAL, "expected a number");
    ck_value v = v_float(1.25);
    ck_buf b = CK_BUF_INIT;
    assert_int_equal(ck_value__append_json(&b, &v), CK_OK);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.p, "1.25", 4);
    ck_buf__free(&b);
    setlocale(LC_NUMERIC, "C");
}

/* ------------------------------------------------------------------------ */
/* Input: bool                                                              */
/* ------------------------------------------------------------------------ */

static void test_bool(void **state)
{
    (void)state;

    json_ok(CK_TYPE_BOOL, json_true(), v_bool(1));
    json_ok(CK_TYPE_BOOL, json_false(), v_bool(0));
    text_ok(CK_TYPE_BOOL, "true", v_bool(1));
    text_ok(CK_TYPE_BOOL, "false", v_bool(0));
    static const char *const bad[] = {"True", "FALSE", "1", "0", "yes", "", "true\t", "truee"};
    for (size_t k = 0; k < CK_ARRAY_LEN(bad); k++)
        text_errz(CK_TYPE_BOOL, bad[k], CK_EINVAL, "expected true or false");
    json_err(CK_TYPE_BOOL, json_integer(1), CK_EINVAL, "expected true or false");
    json_err(CK_TYPE_BOOL, json_null(), CK_EINVAL, "expected true or false");
}

/* ------------------------------------------------------------------------ */
/* Input: date                                                              */
/* ------------------------------------------------------------------------ */

static void test_date(void **state)
{
    (void)state;

    text_ok(CK_TYPE_DATE, "2024-02-29", v_date(ymd(2024, 2, 29)));
    text_ok(CK_TYPE_DATE, "1970-01-01", v_date(0));
    text_ok(CK_TYPE_DATE, "0001-01-01", v_date(CK_DATE_MIN_DAYS));
    text_ok(CK_TYPE_DATE, "9999-12-31", v_date(CK_DATE_MAX_DAYS));
    text_ok(CK_TYPE_DATE, "2000-02-29", v_date(ymd(2000, 2, 29)));

    static const char *const impossible[] = {"2023-02-29", "2024-02-30", "2024-13-01",
                                             "2024-00-10", "2024-04-31", "2024-01-00",
                                             "1900-02-29", "2024-01-32"};
    for (size_t k = 0; k < CK_ARRAY_LEN(impossible); k++)
        text_errz(CK_TYPE_DATE, impossible[k], CK_EINVAL, "not a real calendar date");
    text_errz(CK_TYPE_DATE, "0000-01-01", CK_EINVAL, "date outside years 0001-9999");

    static const char *const bad[] = {"2024-1-01",  "24-01-01",    "2024/01/01",
                                      "2024-01-1",  " 2024-01-01", "2024-01-01 ",
                                      "",           "20240101",    "2024-01-01T00:00:00Z",
                                      "+024-01-01", "2024-O1-01",  "-2024-01-01"};
    for (size_t k = 0; k < CK_ARRAY_LEN(bad); k++)
        text_errz(CK_TYPE_DATE, bad[k], CK_EINVAL, "expected a date YYYY-MM-DD");
    json_err(CK_TYPE_DATE, json_integer(20240101), CK_EINVAL, "expected a date YYYY-MM-DD");
    json_err(CK_TYPE_DATE, json_null(), CK_EINVAL, "expected a date YYYY-MM-DD");
}

/* ------------------------------------------------------------------------ */
/* Input: timestamp                                                         */
/* ------------------------------------------------------------------------ */

#define TS_EXPECTED "expected an RFC 3339 timestamp YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)"

static void test_timestamp(void **state)
{
    (void)state;
    /* 2024-11-24T19:04:17Z */
    const int64_t t = (int64_t)ymd(2024, 11, 24) * 86400 + 19 * 3600 + 4 * 60 + 17;

    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24T19:04:17Z", v_ts(t, 0, 0));
    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24t19:04:17z", v_ts(t, 0, 0));
    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24T21:04:17.25+02:00", v_ts(t, 250000000, 120));
    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24T13:34:17-05:30", v_ts(t, 0, -330));
    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24T19:04:17.000000001Z", v_ts(t, 1, 0));
    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24T19:04:17.999999999-00:00", v_ts(t, 999999999, 0));
    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24T19:04:17.0Z", v_ts(t, 0, 0));
    text_ok(CK_TYPE_TIMESTAMP, "0001-01-01T00:00:00Z", v_ts(CK_TS_MIN_SEC, 0, 0));
    text_ok(CK_TYPE_TIMESTAMP, "9999-12-31T23:59:59Z", v_ts(CK_TS_MAX_SEC, 0, 0));
    /* Offsets up to 23:59 either way. */
    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24T19:04:17+23:59", v_ts(t - 1439 * 60, 0, 1439));
    text_ok(CK_TYPE_TIMESTAMP, "2024-11-24T19:04:17-23:59", v_ts(t + 1439 * 60, 0, -1439));

    text_errz(CK_TYPE_TIMESTAMP, "2023-02-29T00:00:00Z", CK_EINVAL, "not a real calendar date");
    text_errz(CK_TYPE_TIMESTAMP, "2024-04-31T10:00:00+02:00", CK_EINVAL,
              "not a real calendar date");
    text_errz(CK_TYPE_TIMESTAMP, "0000-01-01T00:00:00Z", CK_EINVAL, "date outside years 0001-9999");
    static const char *const out_of_range[] = {
        "2024-01-01T24:00:00Z",      "2024-01-01T23:60:00Z",      "2024-12-31T23:59:60Z",
        "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00-00:60", "2024-01-01T99:00:00Z"};
    for (size_t k = 0; k < CK_ARRAY_LEN(out_of_range); k++)
        text_errz(CK_TYPE_TIMESTAMP, out_of_range[k], CK_EINVAL,
                  "time of day or UTC offset out of range");
    /* The UTC instant, or the local time, outside years 0001..9999. */
    text_errz(CK_TYPE_TIMESTAMP, "0001-01-01T00:00:00+01:00", CK_EINVAL,
              "timestamp outside years 0001-9999");
    text_errz(CK_TYPE_TIMESTAMP, "9999-12-31T23:00:00-01:00", CK_EINVAL,
              "timestamp outside years 0001-9999");

    static const char *const bad[] = {"2024-01-01 00:00:00Z",
                                      "2024-01-01T00:00Z",
                                      "2024-01-01T00:00:00",
                                      "2024-01-01T00:00:00.Z",
                                      "2024-01-01T00:00:00.1234567890Z",
                                      "2024-01-01T00:00:00+0200",
                                      "2024-01-01T00:00:00+02",
                                      "2024-01-01T00:00:00Z ",
                                      "2024-01-01T00:00:00ZZ",
                                      "2024-01-01T0:00:00Z",
                                      "2024-01-01",
                                      "",
                                      "2024-1-01T00:00:00Z",
                                      "2024-01-01T00:00:00+02:00x",
                                      "2024-01-01T00:00:00 +02:00"};
    for (size_t k = 0; k < CK_ARRAY_LEN(bad); k++)
        text_errz(CK_TYPE_TIMESTAMP, bad[k], CK_EINVAL, TS_EXPECTED);
    json_err(CK_TYPE_TIMESTAMP, json_integer(1700000000), CK_EINVAL, TS_EXPECTED);
    json_err(CK_TYPE_TIMESTAMP, json_null(), CK_EINVAL, TS_EXPECTED);
}

/* ------------------------------------------------------------------------ */
/* Input: bytes                                                             */
/* ------------------------------------------------------------------------ */

static void test_bytes(void **state)
{
    (void)state;
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    char err[128];

    text_ok(CK_TYPE_BYTES, "", v_bytes("", 0));
    text_ok(CK_TYPE_BYTES, "AAEC/w==", v_bytes("\x00\x01\x02\xff", 4));
    text_ok(CK_TYPE_BYTES, "QQ==", v_bytes("A", 1));
    text_ok(CK_TYPE_BYTES, "QUI=", v_bytes("AB", 2));
    text_ok(CK_TYPE_BYTES, "QUJD", v_bytes("ABC", 3));
    text_ok(CK_TYPE_BYTES, "+/+/", v_bytes("\xfb\xff\xbf", 3));

    static const char *const bad[] = {
        "QQ",       "QQ=",  "Q===",  "QR==", "-_8=", "QQ==\n", " QQ==", "QQ== ",
        "QQ==QQ==", "Q Q=", "QUJD=", "====", "QQ=A", "*AAA",   "QUJDRA"};
    for (size_t k = 0; k < CK_ARRAY_LEN(bad); k++)
        text_errz(CK_TYPE_BYTES, bad[k], CK_EINVAL, "invalid base64");
    json_err(CK_TYPE_BYTES, json_integer(1), CK_EINVAL, "expected base64 text");
    json_err(CK_TYPE_BYTES, json_null(), CK_EINVAL, "expected base64 text");
    json_err(CK_TYPE_BYTES, json_pack("[i]", 1), CK_EINVAL, "expected base64 text");

    /* 1 MiB decoded is the limit. */
    size_t text_max = (MIB + 2) / 3 * 4;
    unsigned char *bin = calloc(MIB + 1, 1);
    char *b64 = malloc(text_max + 8);
    assert_non_null(bin);
    assert_non_null(b64);
    randombytes_buf(bin, MIB + 1);
    sodium_bin2base64(b64, text_max + 8, bin, MIB, sodium_base64_VARIANT_ORIGINAL);
    assert_int_equal(strlen(b64), text_max);
    assert_int_equal(
        ck_value__from_text(&out, CK_TYPE_BYTES, b64, text_max, &arena, err, sizeof(err)), CK_OK);
    assert_int_equal(out.u.str.len, MIB);
    assert_memory_equal(out.u.str.ptr, bin, MIB);
    /* The same length without padding decodes to 2 bytes too many. */
    memset(b64, 'A', text_max);
    b64[text_max] = '\0';
    text_err(CK_TYPE_BYTES, b64, text_max, CK_ELIMIT, "bytes longer than 1048576 bytes");
    /* One byte over the limit is longer text still. */
    sodium_bin2base64(b64, text_max + 8, bin, MIB + 1, sodium_base64_VARIANT_ORIGINAL);
    text_err(CK_TYPE_BYTES, b64, strlen(b64), CK_ELIMIT, "bytes longer than 1048576 bytes");
    free(b64);
    free(bin);
    ck_arena__free(&arena);
}

/* ------------------------------------------------------------------------ */
/* Input: list                                                              */
/* ------------------------------------------------------------------------ */

static void test_list(void **state)
{
    (void)state;
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    char err[128];
    const ck_str ab[] = {{"a", 1}, {"", 0}, {"\xc3\x89vry", 5}};

    json_ok(CK_TYPE_LIST, json_pack("[sss]", "a", "", "\xc3\x89vry"), v_list(ab, 3));
    json_ok(CK_TYPE_LIST, json_array(), v_list(NULL, 0));
    text_ok(CK_TYPE_LIST, "[\"a\",\"\",\"\\u00c9vry\"]", v_list(ab, 3));
    text_ok(CK_TYPE_LIST, " [ \"a\" , \"\" , \"\xc3\x89vry\" ] ", v_list(ab, 3));
    text_ok(CK_TYPE_LIST, "[]", v_list(NULL, 0));

    /* Items that are not strings, counted from 0. */
    json_err(CK_TYPE_LIST, json_pack("[i]", 1), CK_EINVAL, "item 0 is not a string");
    json_err(CK_TYPE_LIST, json_pack("[snsi]", "a", "c", 3), CK_EINVAL, "item 1 is not a string");
    json_err(CK_TYPE_LIST, json_pack("[sss[]]", "a", "b", "c"), CK_EINVAL,
             "item 3 is not a string");
    text_errz(CK_TYPE_LIST, "[\"a\",\"b\",\"c\",{}]", CK_EINVAL, "item 3 is not a string");
    text_errz(CK_TYPE_LIST, "[\"secret\",true]", CK_EINVAL, "item 1 is not a string");
    text_errz(CK_TYPE_LIST, "[\"ok\",\"a\\u0000b\"]", CK_EINVAL, "item 1 contains a NUL character");
    json_err(CK_TYPE_LIST, json_pack("[ss%]", "a", "b\0c", (size_t)3), CK_EINVAL,
             "item 1 contains a NUL character");
    json_t *bad_utf8 = json_array();
    json_array_append_new(bad_utf8, json_stringn_nocheck("\xff", 1));
    json_err(CK_TYPE_LIST, bad_utf8, CK_EINVAL, "string is not valid UTF-8");

    /* Not a list at all. */
    json_err(CK_TYPE_LIST, json_string("a"), CK_EINVAL, "expected a list of strings");
    json_err(CK_TYPE_LIST, json_object(), CK_EINVAL, "expected a list of strings");
    json_err(CK_TYPE_LIST, json_null(), CK_EINVAL, "expected a list of strings");
    static const char *const bad_text[] = {"a,b",       "\"a\"", "{}", "[\"a\"",
                                           "[\"a\"] x", "",      "[",  "{\"secret\":1}"};
    for (size_t k = 0; k < CK_ARRAY_LEN(bad_text); k++)
        text_errz(CK_TYPE_LIST, bad_text[k], CK_EINVAL, "expected a JSON array of strings");

    /* 1024 items are fine, 1025 are too many. */
    json_t *many = json_array();
    for (int k = 0; k < 1024; k++)
        json_array_append_new(many, json_string("x"));
    assert_int_equal(ck_value__from_json(&out, CK_TYPE_LIST, many, &arena, err, sizeof(err)),
                     CK_OK);
    assert_int_equal(out.u.list.count, 1024);
    json_array_append_new(many, json_string("x"));
    expect_json_err(CK_TYPE_LIST, many, CK_ELIMIT, "list has more than 1024 items");
    json_decref(many);

    /* 1 MiB in all is fine, one byte more is not. */
    char *half = malloc(MIB / 2 + 1);
    assert_non_null(half);
    memset(half, 'y', MIB / 2);
    json_t *big = json_array();
    json_array_append_new(big, json_stringn(half, MIB / 2));
    json_array_append_new(big, json_stringn(half, MIB / 2));
    assert_int_equal(ck_value__from_json(&out, CK_TYPE_LIST, big, &arena, err, sizeof(err)), CK_OK);
    assert_int_equal(out.u.list.items[1].len, MIB / 2);
    json_array_append_new(big, json_string("z"));
    expect_json_err(CK_TYPE_LIST, big, CK_ELIMIT, "list longer than 1048576 bytes in all");
    json_decref(big);
    free(half);

    /* More than 8 MiB of text is refused before it is parsed. */
    size_t huge = ((size_t)8 << 20) + 1;
    char *text = malloc(huge + 1);
    assert_non_null(text);
    memset(text, ' ', huge);
    text[0] = '[';
    text[huge - 1] = ']';
    text[huge] = '\0';
    text_err(CK_TYPE_LIST, text, huge, CK_ELIMIT, "list text longer than 8388608 bytes");
    free(text);

    ck_arena__free(&arena);
}

/* ------------------------------------------------------------------------ */
/* Input: misuse                                                            */
/* ------------------------------------------------------------------------ */

static void test_input_misuse(void **state)
{
    (void)state;
    ck_value out;
    char err[128];
    char tiny[4];

    /* Unknown types. */
    json_err((ck_type)0, json_integer(1), CK_EINVAL, "unknown type");
    json_err((ck_type)9, json_string("x"), CK_EINVAL, "unknown type");
    text_errz((ck_type)9, "x", CK_EINVAL, "unknown type");
    /* A NULL json_t. */
    expect_json_err(CK_TYPE_INT, NULL, CK_EINVAL, "missing value");
    /* NULL text: only with n == 0 (the empty text). */
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_STRING, NULL, 3, NULL, err, sizeof(err)),
                     CK_EINVAL);
    assert_string_equal(err, "missing value");
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_STRING, NULL, 0, NULL, err, sizeof(err)),
                     CK_OK);
    assert_int_equal(out.u.str.len, 0);

    /* No arena: fine for scalars and empty strings, refused where memory is
     * needed. */
    json_t *j = json_integer(5);
    assert_int_equal(ck_value__from_json(&out, CK_TYPE_INT, j, NULL, err, sizeof(err)), CK_OK);
    json_decref(j);
    assert_int_equal(
        ck_value__from_text(&out, CK_TYPE_DATE, "2024-01-01", 10, NULL, err, sizeof(err)), CK_OK);
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_STRING, "", 0, NULL, err, sizeof(err)),
                     CK_OK);
    assert_non_null(out.u.str.ptr);
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_BYTES, "", 0, NULL, err, sizeof(err)),
                     CK_OK);
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_LIST, "[]", 2, NULL, err, sizeof(err)),
                     CK_OK);
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_STRING, "a", 1, NULL, err, sizeof(err)),
                     CK_EINVAL);
    assert_string_equal(err, "no arena for the value's memory");
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_BYTES, "QQ==", 4, NULL, err, sizeof(err)),
                     CK_EINVAL);
    assert_string_equal(err, "no arena for the value's memory");
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_LIST, "[\"a\"]", 5, NULL, err, sizeof(err)),
                     CK_EINVAL);
    assert_string_equal(err, "no arena for the value's memory");

    /* err may be NULL, or short (the message is cut, NUL-terminated). */
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_INT, "x", 1, NULL, NULL, 0), CK_EINVAL);
    assert_int_equal(ck_value__from_text(&out, CK_TYPE_INT, "x", 1, NULL, tiny, sizeof(tiny)),
                     CK_EINVAL);
    assert_string_equal(tiny, "exp");
}

/* Every refusal names the problem, never the value: a long, distinctive
 * input for each type, refused, must not appear in the message, nor any
 * 3-byte piece of it. */
static void test_errors_never_quote(void **state)
{
    (void)state;
    static const struct {
        ck_type type;
        const char *text;
    } cases[] = {
        {CK_TYPE_INT, "SECRET-4711"},
        {CK_TYPE_INT, "99999999999999999999"},
        {CK_TYPE_FLOAT, "SECRET1e5"},
        {CK_TYPE_FLOAT, "9e999"},
        {CK_TYPE_BOOL, "SECRET-yes"},
        {CK_TYPE_DATE, "2023-02-29"},
        {CK_TYPE_DATE, "SECRET-day"},
        {CK_TYPE_TIMESTAMP, "2024-02-30T12:00:00Z"},
        {CK_TYPE_TIMESTAMP, "2024-02-03T25:00:00Z"},
        {CK_TYPE_BYTES, "SECRET=="},
        {CK_TYPE_LIST, "[\"SECRET\",7]"},
        {CK_TYPE_LIST, "[\"SECRET\",\"x\\u0000\"]"},
        {CK_TYPE_LIST, "SECRET"},
        {CK_TYPE_STRING, "SECRET\xff"},
    };
    char err[CK_ERRMSG_MAX];
    ck_value out;

    for (size_t k = 0; k < CK_ARRAY_LEN(cases); k++) {
        ck_arena arena = CK_ARENA_INIT;
        const char *t = cases[k].text;
        size_t n = strlen(t);
        assert_int_not_equal(
            ck_value__from_text(&out, cases[k].type, t, n, &arena, err, sizeof(err)), CK_OK);
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "SECRET"));
        for (size_t i = 0; i + 4 <= n; i++) {
            char piece[5];
            memcpy(piece, t + i, 4);
            piece[4] = '\0';
            assert_null(strstr(err, piece));
        }
        ck_arena__free(&arena);
    }
}

/* ------------------------------------------------------------------------ */
/* Output: json_t                                                           */
/* ------------------------------------------------------------------------ */

static void test_to_json(void **state)
{
    (void)state;
    const ck_str items[] = {{"a", 1}, {"b\"", 2}};
    const int64_t t = (int64_t)ymd(2024, 11, 24) * 86400 + 19 * 3600 + 4 * 60 + 17;
    struct {
        ck_value v;
        const char *json;
    } cases[] = {
        {v_cstr("hello"), "\"hello\""},
        {v_cstr(""), "\"\""},
        {v_str(NULL, 0), "\"\""},
        {v_str("a\0b", 3), "\"a\\u0000b\""},
        {v_int(-42), "-42"},
        {v_int(INT64_MIN), "-9223372036854775808"},
        {v_float(1.5), "1.5"},
        {v_float(1.0), "1.0"},
        {v_float(-0.0), "-0.0"},
        {v_float(1e22), "1e22"},
        {v_float(2.5e-7), "2.4999999999999999e-7"},
        {v_bool(1), "true"},
        {v_bool(0), "false"},
        {v_date(ymd(2024, 2, 29)), "\"2024-02-29\""},
        {v_date(CK_DATE_MIN_DAYS), "\"0001-01-01\""},
        {v_ts(t, 0, 0), "\"2024-11-24T19:04:17Z\""},
        {v_ts(t, 0, 120), "\"2024-11-24T21:04:17+02:00\""},
        {v_ts(t, 250000000, -330), "\"2024-11-24T13:34:17.25-05:30\""},
        {v_ts(t, 1, 0), "\"2024-11-24T19:04:17.000000001Z\""},
        {v_bytes("", 0), "\"\""},
        {v_bytes("\x00\x01\x02\xff", 4), "\"AAEC/w==\""},
        {v_bytes("A", 1), "\"QQ==\""},
        {v_list(items, 2), "[\"a\",\"b\\\"\"]"},
        {v_list(NULL, 0), "[]"},
    };

    for (size_t k = 0; k < CK_ARRAY_LEN(cases); k++) {
        char *s = dumps(ck_value__to_json(&cases[k].v));
        assert_string_equal(s, cases[k].json);
        free(s);
        expect_same_json(&cases[k].v, cases[k].json);
        /* A NUL is written, but refused on input. */
        const ck_value *v = &cases[k].v;
        if (v->type != CK_TYPE_STRING || v->u.str.len == 0 ||
            memchr(v->u.str.ptr, '\0', v->u.str.len) == NULL)
            expect_roundtrip(v);
    }

    /* Values that are not valid give NULL. */
    ck_value bad[] = {
        v_float(NAN),
        v_float(INFINITY),
        v_str("\xff", 1),
        v_date(CK_DATE_MAX_DAYS + 1),
        v_ts(0, 1000000000, 0),
        v_ts(CK_TS_MAX_SEC, 0, 60),
        v_bool(2),
        v_list(NULL, 1),
        v_str(NULL, 1),
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(bad); k++)
        assert_null(ck_value__to_json(&bad[k]));
    ck_value unknown = v_int(0);
    unknown.type = (ck_type)42;
    assert_null(ck_value__to_json(&unknown));
    assert_null(ck_value__to_json(NULL));
}

/* from_json(to_json(v)) == v over every type and its edges. */
static void test_roundtrip(void **state)
{
    (void)state;
    const ck_str items[] = {{"x", 1}, {"", 0}, {"a\0b", 3}, {"\xf0\x9f\x98\x80", 4}};
    unsigned char rnd[300];
    randombytes_buf(rnd, sizeof(rnd));
    ck_value vals[] = {
        v_cstr("plain"),
        v_cstr("\xc3\x89vry \xf0\x9f\x98\x80 \"q\" \\ / \x1f"),
        v_int(0),
        v_int(INT64_MAX),
        v_int(INT64_MIN),
        v_float(0.1),
        v_float(-0.0),
        v_float(DBL_MAX),
        v_float(-DBL_MIN),
        v_float(4.9406564584124654e-324),
        v_float(1.0 / 3.0),
        v_float(123456789012345678.0),
        v_bool(0),
        v_bool(1),
        v_date(CK_DATE_MIN_DAYS),
        v_date(CK_DATE_MAX_DAYS),
        v_date(-1),
        v_ts(CK_TS_MIN_SEC, 0, 0),
        v_ts(CK_TS_MAX_SEC, 999999999, 0),
        v_ts(CK_TS_MIN_SEC + 1439 * 60, 5, 1439),
        v_ts(CK_TS_MAX_SEC - 1439 * 60, 120000, -1439),
        v_ts(-1, 999999999, -1),
        v_bytes(rnd, 0),
        v_bytes(rnd, 1),
        v_bytes(rnd, 2),
        v_bytes(rnd, 3),
        v_bytes(rnd, sizeof(rnd)),
        v_list(items, 1),
        v_list(items, 2),
        v_list(NULL, 0),
    };
    for (size_t k = 0; k < CK_ARRAY_LEN(vals); k++) {
        expect_roundtrip(&vals[k]);
        expect_same_json(&vals[k], NULL);
    }
    /* A list with a NUL item is written fine but refused on input. */
    ck_value nul = v_list(items, 4);
    expect_same_json(&nul, "[\"x\",\"\",\"a\\u0000b\",\"\xf0\x9f\x98\x80\"]");
}

/* ------------------------------------------------------------------------ */
/* Output: JSON text                                                        */
/* ------------------------------------------------------------------------ */

/* Every byte alone, and runs of them, escaped exactly like Jansson. */
static void test_json_string_escaping(void **state)
{
    (void)state;

    for (unsigned c = 0; c < 0x80; c++) {
        char s[3] = {'a', (char)c, 'b'};
        ck_value v = v_str(s, 3);
        expect_same_json(&v, NULL);
    }
    char all[128];
    for (unsigned c = 0; c < 128; c++)
        all[c] = (char)c;
    ck_value v = v_str(all, sizeof(all));
    expect_same_json(&v, NULL);

    v = v_cstr("\"\\/\b\f\n\r\t\x01\x1f\x7f");
    expect_same_json(&v, "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001F\x7f\"");
    v = v_cstr("\xc3\x89vry \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xc2\x80");
    expect_same_json(&v, "\"\xc3\x89vry \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xc2\x80\"");

    /* The bare string helper. */
    ck_buf b = CK_BUF_INIT;
    assert_int_equal(ck_value__json_string(&b, "k\ney", 4), CK_OK);
    assert_int_equal(ck_value__json_string(&b, NULL, 0), CK_OK);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.p, "\"k\\ney\"\"\"", 9);
    ck_buf__free(&b);

    /* A long string of escapes grows the buffer many times. */
    char *ctl = malloc(100000);
    assert_non_null(ctl);
    for (size_t k = 0; k < 100000; k++)
        ctl[k] = (char)(k % 32);
    v = v_str(ctl, 100000);
    expect_same_json(&v, NULL);
    free(ctl);
}

static void test_json_numbers(void **state)
{
    (void)state;
    static const double reals[] = {0.0,
                                   -0.0,
                                   1.0,
                                   -1.0,
                                   0.1,
                                   0.5,
                                   1.0 / 3.0,
                                   100.0,
                                   1e15,
                                   1e16,
                                   1e17,
                                   1e21,
                                   1e22,
                                   123456789012345678.0,
                                   9007199254740993.0,
                                   1e300,
                                   -1e300,
                                   1e-5,
                                   1e-4,
                                   1.5e-7,
                                   -2.5e-10,
                                   1e-300,
                                   DBL_MAX,
                                   -DBL_MAX,
                                   DBL_MIN,
                                   4.9406564584124654e-324,
                                   2.2250738585072009e-308,
                                   9223372036854775808.0,
                                   3.141592653589793,
                                   -273.15};
    for (size_t k = 0; k < CK_ARRAY_LEN(reals); k++) {
        ck_value v = v_float(reals[k]);
        expect_same_json(&v, NULL);
        expect_roundtrip(&v);
    }
    static const int64_t ints[] = {
        0,       1,       -1,        9,        10, -10, INT64_MAX, INT64_MIN, INT64_MIN + 1,
        1000000, -999999, INT32_MAX, INT32_MIN};
    for (size_t k = 0; k < CK_ARRAY_LEN(ints); k++) {
        ck_value v = v_int(ints[k]);
        expect_same_json(&v, NULL);
    }
    ck_value v = v_float(1e22);
    expect_same_json(&v, "1e22");
    v = v_float(1e300);
    expect_same_json(&v, "1.0000000000000001e300");
    v = v_float(1e-7);
    expect_same_json(&v, "9.9999999999999995e-8");
    v = v_float(5.0);
    expect_same_json(&v, "5.0");
}

/* What no valid value has is refused, and the buffer is left as it was. */
static void test_append_json_refusals(void **state)
{
    (void)state;
    ck_value bad[] = {v_float(NAN),
                      v_float(-INFINITY),
                      v_date(CK_DATE_MIN_DAYS - 1),
                      v_ts(0, -1, 0),
                      v_ts(CK_TS_MAX_SEC + 1, 0, 0),
                      v_list(NULL, 2),
                      v_bytes("x", (size_t)CK_VALUE_MAX_BYTES + 1)};
    ck_value unknown = v_int(0);
    unknown.type = (ck_type)0;

    for (size_t k = 0; k <= CK_ARRAY_LEN(bad); k++) {
        ck_buf b = CK_BUF_INIT;
        assert_int_equal(ck_buf__append(&b, "keep", 4), CK_OK);
        const ck_value *v = k < CK_ARRAY_LEN(bad) ? &bad[k] : &unknown;
        assert_int_equal(ck_value__append_json(&b, v), CK_EINVAL);
        assert_int_equal(b.len, 4);
        assert_memory_equal(b.p, "keep", 4);
        ck_buf__free(&b);
    }
    /* A secure buffer too. */
    ck_buf sb = CK_BUF_SECURE_INIT;
    assert_int_equal(ck_buf__append(&sb, "ab", 2), CK_OK);
    assert_int_equal(ck_value__append_json(&sb, &bad[0]), CK_EINVAL);
    assert_int_equal(sb.len, 2);
    ck_buf__free(&sb);
}

/* ------------------------------------------------------------------------ */
/* Minimisation                                                             */
/* ------------------------------------------------------------------------ */

static void test_min_none(void **state)
{
    (void)state;
    ck_schema_min m = min_of(CK_MIN_NONE);
    ck_value in = v_cstr("kept");
    ck_value out;

    assert_int_equal(ck_value__minimize(&out, &in, &m, NULL), CK_OK);
    assert_true(value_equal(&in, &out));
    assert_ptr_equal(out.u.str.ptr, in.u.str.ptr); /* shallow */
    in = v_float(-0.0);
    assert_int_equal(ck_value__minimize(&out, &in, &m, NULL), CK_OK);
    assert_true(value_equal(&in, &out));
}

static void test_min_year(void **state)
{
    (void)state;

    ck_value d = v_date(ymd(2024, 2, 29));
    expect_min_year(&d, 2024);
    d = v_date(CK_DATE_MIN_DAYS);
    expect_min_year(&d, 1);
    d = v_date(CK_DATE_MAX_DAYS);
    expect_min_year(&d, 9999);
    d = v_date(ymd(1969, 12, 31));
    expect_min_year(&d, 1969);

    /* A timestamp's year as written, in its own offset, near New Year. */
    ck_value t = ts_of("2024-12-31T23:30:00-05:00"); /* 2025 in UTC */
    expect_min_year(&t, 2024);
    t = ts_of("2024-12-31T23:59:59.999999999-00:01");
    expect_min_year(&t, 2024);
    t = ts_of("2025-01-01T00:00:00-05:00");
    expect_min_year(&t, 2025);
    t = ts_of("2025-01-01T00:30:00+01:00"); /* 2024 in UTC */
    expect_min_year(&t, 2025);
    t = ts_of("1970-01-01T00:00:00-01:00"); /* 01:00 UTC */
    expect_min_year(&t, 1970);
    t = ts_of("1969-12-31T23:00:00-01:00"); /* the epoch in UTC */
    expect_min_year(&t, 1969);
    t = ts_of("0001-01-01T00:00:00Z");
    expect_min_year(&t, 1);
    t = ts_of("9999-12-31T23:59:59+23:59");
    expect_min_year(&t, 9999);

    /* Wrong types and invalid values. */
    ck_schema_min m = min_of(CK_MIN_YEAR);
    ck_value s = v_cstr("2024");
    expect_min_rc(&s, &m, CK_EINTERNAL);
    ck_value i = v_int(2024);
    expect_min_rc(&i, &m, CK_EINTERNAL);
    d = v_date(CK_DATE_MAX_DAYS + 1);
    expect_min_rc(&d, &m, CK_EINTERNAL);
    t = v_ts(INT64_MAX, 0, 1439);
    expect_min_rc(&t, &m, CK_EINTERNAL);
}

static void test_min_prefix(void **state)
{
    (void)state;
    ck_schema_min m;

    ck_value in = v_cstr("75011");
    m = min_prefix(2);
    expect_min_str(&in, &m, "75");
    m = min_prefix(5);
    expect_min_str(&in, &m, "75011");
    m = min_prefix(32);
    expect_min_str(&in, &m, "75011");

    /* Code points, not bytes: "É" is two bytes. */
    in = v_cstr("\xc3\x89vry");
    m = min_prefix(1);
    expect_min_str(&in, &m, "\xc3\x89");
    m = min_prefix(2);
    expect_min_str(&in, &m, "\xc3\x89v");
    m = min_prefix(4);
    expect_min_str(&in, &m, "\xc3\x89vry");
    m = min_prefix(5);
    expect_min_str(&in, &m, "\xc3\x89vry");
    in = v_cstr("\xf0\x9f\x98\x80\xe2\x82\xac!");
    m = min_prefix(1);
    expect_min_str(&in, &m, "\xf0\x9f\x98\x80");
    m = min_prefix(2);
    expect_min_str(&in, &m, "\xf0\x9f\x98\x80\xe2\x82\xac");
    in = v_cstr("");
    m = min_prefix(3);
    expect_min_str(&in, &m, "");

    /* The prefix points into the input. */
    ck_value out;
    in = v_cstr("abcdef");
    m = min_prefix(3);
    assert_int_equal(ck_value__minimize(&out, &in, &m, NULL), CK_OK);
    assert_ptr_equal(out.u.str.ptr, in.u.str.ptr);

    m = min_prefix(0);
    expect_min_rc(&in, &m, CK_EINTERNAL);
    m = min_prefix(2);
    ck_value i = v_int(75011);
    expect_min_rc(&i, &m, CK_EINTERNAL);
    ck_value l = v_list(NULL, 0);
    expect_min_rc(&l, &m, CK_EINTERNAL);
}

static void test_min_domain(void **state)
{
    (void)state;
    ck_schema_min m = min_of(CK_MIN_DOMAIN);
    ck_value in;

    in = v_cstr("jane.doe@example.org");
    expect_min_str(&in, &m, "example.org");
    in = v_cstr("\"a@b\"@example.com"); /* two '@': the last one counts */
    expect_min_str(&in, &m, "example.com");
    in = v_cstr("a@b@c.fr");
    expect_min_str(&in, &m, "c.fr");
    in = v_cstr("no-at-sign"); /* nothing of the value is revealed */
    expect_min_str(&in, &m, "");
    in = v_cstr("trailing@");
    expect_min_str(&in, &m, "");
    in = v_cstr("@only.domain");
    expect_min_str(&in, &m, "only.domain");
    in = v_cstr("");
    expect_min_str(&in, &m, "");
    in = v_cstr("j@\xc3\xa9t\xc3\xa9.fr");
    expect_min_str(&in, &m, "\xc3\xa9t\xc3\xa9.fr");

    ck_value i = v_int(1);
    expect_min_rc(&i, &m, CK_EINTERNAL);
    ck_value b = v_bytes("a@b", 3);
    expect_min_rc(&b, &m, CK_EINTERNAL);
}

static void test_min_band(void **state)
{
    (void)state;
    static const int64_t e3[] = {1000, 5000, 10000};
    ck_schema_min m = min_band(e3, 3);
    ck_value v;

    /* Ints: below the first edge, exactly on each edge, at/above the last. */
    static const struct {
        int64_t v;
        const char *label;
    } ints[] = {{INT64_MIN, "<1000"}, {-1, "<1000"},       {999, "<1000"},
                {1000, "1000-5000"},  {4999, "1000-5000"}, {5000, "5000-10000"},
                {9999, "5000-10000"}, {10000, ">=10000"},  {INT64_MAX, ">=10000"}};
    for (size_t k = 0; k < CK_ARRAY_LEN(ints); k++) {
        v = v_int(ints[k].v);
        expect_min_str(&v, &m, ints[k].label);
    }
    /* Floats, compared exactly. */
    static const struct {
        double v;
        const char *label;
    } reals[] = {{-1e300, "<1000"},
                 {999.9999999999999, "<1000"},
                 {1000.0, "1000-5000"},
                 {1000.0000000000001, "1000-5000"},
                 {4999.999, "1000-5000"},
                 {5000.0, "5000-10000"},
                 {9999.999999999998, "5000-10000"},
                 {10000.0, ">=10000"},
                 {1e300, ">=10000"},
                 {DBL_MAX, ">=10000"}};
    for (size_t k = 0; k < CK_ARRAY_LEN(reals); k++) {
        v = v_float(reals[k].v);
        expect_min_str(&v, &m, reals[k].label);
    }

    /* One edge; zero and its sign. */
    static const int64_t zero[] = {0};
    m = min_band(zero, 1);
    v = v_int(0);
    expect_min_str(&v, &m, ">=0");
    v = v_int(-1);
    expect_min_str(&v, &m, "<0");
    v = v_float(-0.0);
    expect_min_str(&v, &m, ">=0");
    v = v_float(-4.9406564584124654e-324);
    expect_min_str(&v, &m, "<0");
    v = v_float(4.9406564584124654e-324);
    expect_min_str(&v, &m, ">=0");

    /* Negative edges. */
    static const int64_t neg[] = {-100, -50, 0};
    m = min_band(neg, 3);
    v = v_int(-75);
    expect_min_str(&v, &m, "-100--50");
    v = v_float(-50.5);
    expect_min_str(&v, &m, "-100--50");
    v = v_int(-50);
    expect_min_str(&v, &m, "-50-0");
    v = v_float(-0.5);
    expect_min_str(&v, &m, "-50-0");
    v = v_int(-101);
    expect_min_str(&v, &m, "<-100");

    /* Large magnitudes: 2^53 + 1 is no double, and rounds to 2^53; 2^53
     * is below it, exactly. */
    static const int64_t big[] = {9007199254740993LL, INT64_MAX};
    m = min_band(big, 2);
    v = v_float(9007199254740992.0);
    expect_min_str(&v, &m, "<9007199254740993");
    v = v_float(9007199254740994.0);
    expect_min_str(&v, &m, "9007199254740993-9223372036854775807");
    v = v_int(9007199254740993LL);
    expect_min_str(&v, &m, "9007199254740993-9223372036854775807");
    v = v_float(9223372036854774784.0); /* the largest double below 2^63 */
    expect_min_str(&v, &m, "9007199254740993-9223372036854775807");
    v = v_float(9223372036854775808.0); /* 2^63 > INT64_MAX */
    expect_min_str(&v, &m, ">=9223372036854775807");
    v = v_int(INT64_MAX);
    expect_min_str(&v, &m, ">=9223372036854775807");

    static const int64_t low[] = {INT64_MIN, -9007199254740993LL};
    m = min_band(low, 2);
    v = v_float(-9223372036854775808.0);
    expect_min_str(&v, &m, "-9223372036854775808--9007199254740993");
    v = v_float(-1e19);
    expect_min_str(&v, &m, "<-9223372036854775808");
    v = v_int(INT64_MIN);
    expect_min_str(&v, &m, "-9223372036854775808--9007199254740993");
    v = v_float(-9007199254740992.0);
    expect_min_str(&v, &m, ">=-9007199254740993");
    v = v_float(-9007199254740994.0);
    expect_min_str(&v, &m, "-9223372036854775808--9007199254740993");

    /* Fractions either side of an edge. */
    static const int64_t unit[] = {0, 1};
    m = min_band(unit, 2);
    v = v_float(0.5);
    expect_min_str(&v, &m, "0-1");
    v = v_float(-0.5);
    expect_min_str(&v, &m, "<0");
    v = v_float(0.9999999999999999);
    expect_min_str(&v, &m, "0-1");
    v = v_float(1.0000000000000002);
    expect_min_str(&v, &m, ">=1");

    /* Refusals: wrong type, no edges, NaN, no arena, unknown kind. */
    m = min_band(e3, 3);
    v = v_cstr("5000");
    expect_min_rc(&v, &m, CK_EINTERNAL);
    v = v_date(0);
    expect_min_rc(&v, &m, CK_EINTERNAL);
    v = v_float(NAN);
    expect_min_rc(&v, &m, CK_EINTERNAL);
    v = v_float(INFINITY);
    expect_min_rc(&v, &m, CK_EINTERNAL);
    v = v_int(1);
    m = min_band(e3, 0);
    expect_min_rc(&v, &m, CK_EINTERNAL);
    m = min_band(NULL, 3);
    expect_min_rc(&v, &m, CK_EINTERNAL);
    m = min_band(e3, 3);
    ck_value out;
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(ck_value__minimize(&out, &v, &m, NULL), CK_EINTERNAL);
    assert_true(all_zero(&out, sizeof(out)));
    m = min_of((ck_min_kind)99);
    expect_min_rc(&v, &m, CK_EINTERNAL);
    assert_int_equal(ck_value__minimize(&out, NULL, &m, NULL), CK_EINTERNAL);
    assert_int_equal(ck_value__minimize(&out, &v, NULL, NULL), CK_EINTERNAL);
}

#ifdef CK_FAULT_INJECTION
/* Every allocation failure is reported as CK_ENOMEM and leaves nothing
 * behind: `out` zeroed, the buffer as it was. */
static void test_fault_injection(void **state)
{
    (void)state;

    for (unsigned long n = 1;; n++) {
        ck_arena arena = CK_ARENA_INIT;
        ck_value out;
        char err[128];
        ck_fault__arm(n);
        int rc =
            ck_value__from_text(&out, CK_TYPE_LIST, "[\"a\",\"bc\"]", 10, &arena, err, sizeof(err));
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        ck_arena__free(&arena);
        if (seen < n) {
            assert_int_equal(rc, CK_OK);
            break;
        }
        /* Jansson's own allocations do not go through the hook. */
        assert_int_equal(rc, CK_ENOMEM);
        assert_string_equal(err, "out of memory");
        assert_true(all_zero(&out, sizeof(out)));
    }
    for (unsigned long n = 1;; n++) {
        ck_arena arena = CK_ARENA_INIT;
        ck_value out;
        char err[128];
        ck_fault__arm(n);
        int rc = ck_value__from_text(&out, CK_TYPE_BYTES, "QUJD", 4, &arena, err, sizeof(err));
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        ck_arena__free(&arena);
        if (seen < n) {
            assert_int_equal(rc, CK_OK);
            break;
        }
        assert_int_equal(rc, CK_ENOMEM);
        assert_true(all_zero(&out, sizeof(out)));
    }
    const ck_str items[] = {{"a\n", 2}, {"b", 1}};
    ck_value l = v_list(items, 2);
    for (unsigned long n = 1;; n++) {
        ck_buf b = CK_BUF_INIT;
        ck_fault__arm(n);
        int rc = ck_value__append_json(&b, &l);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (seen < n) {
            assert_int_equal(rc, CK_OK);
            ck_buf__free(&b);
            break;
        }
        assert_int_equal(rc, CK_ENOMEM);
        assert_int_equal(b.len, 0);
        ck_buf__free(&b);
    }
    static const int64_t e[] = {1};
    ck_schema_min m = min_band(e, 1);
    ck_value v = v_int(5);
    ck_arena arena = CK_ARENA_INIT;
    ck_value out;
    ck_fault__arm(1);
    assert_int_equal(ck_value__minimize(&out, &v, &m, &arena), CK_ENOMEM);
    ck_fault__arm(0);
    assert_true(all_zero(&out, sizeof(out)));
    ck_arena__free(&arena);
}
#endif

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_float),
        cmocka_unit_test(test_float_locale),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_input_misuse),
        cmocka_unit_test(test_errors_never_quote),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_json_string_escaping),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_append_json_refusals),
        cmocka_unit_test(test_min_none),
        cmocka_unit_test(test_min_year),
        cmocka_unit_test(test_min_prefix),
        cmocka_unit_test(test_min_domain),
        cmocka_unit_test(test_min_band),
#ifdef CK_FAULT_INJECTION
        cmocka_unit_test(test_fault_injection),
#endif
    };
    return cmocka_run_group_tests_name("value", tests, NULL, NULL);
}
