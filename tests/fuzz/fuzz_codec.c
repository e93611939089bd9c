/*
 * fuzz_codec.c - libFuzzer target for the value codec.
 *
 * The first byte picks the expected type (data[0] % 8 + 1), the rest is
 * decoded as that type. Properties checked (abort() on violation):
 *  - a failed decode returns CK_EFORMAT or CK_ELIMIT and leaves `out` zeroed;
 *  - a decoded value passes ck_codec__check, re-encodes, and the re-encoding
 *    decodes to an equal value (floats bit for bit) and re-encodes to the
 *    same bytes (the encoder is canonical);
 *  - a decoded DATE or TIMESTAMP survives its text form;
 *  - the same bytes, read as a YYYY-MM-DD date or an RFC 3339 timestamp,
 *    either are refused or give a value whose canonical text parses back
 *    to it (a date's text is already canonical).
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -g -O1 -D_GNU_SOURCE
 *        -Iinclude -Icore core/mem.c core/buf.c core/mp.c core/codec.c
 *        tests/fuzz/fuzz_codec.c -lsodium -lmsgpackc -lm
 * Seeds: tests/fuzz/corpus/codec/ (copy them elsewhere before fuzzing).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include "../values.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text_forms(const ck_value *v)
{
    if (v->type == CK_TYPE_DATE) {
        char text[CK_DATE_TEXT_MAX];
        int32_t days;
        if (ck_date__format(text, sizeof(text), v->u.date) != CK_OK ||
            ck_date__parse(&days, text, strlen(text)) != CK_OK || days != v->u.date)
            abort();
    } else if (v->type == CK_TYPE_TIMESTAMP) {
        char text[CK_TS_TEXT_MAX];
        ck_value back;
        if (ck_ts__format(text, sizeof(text), v) != CK_OK ||
            ck_ts__parse(&back, text, strlen(text)) != CK_OK || !value_equal(v, &back))
            abort();
    }
}

/* The same bytes read as text: whatever ck_date__parse or ck_ts__parse
 * accepts formats to a canonical form that parses back to the same value
 * and formats to itself. */
static void check_text_parsers(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    int32_t days;
    ck_value v;

    if (ck_date__parse(&days, s, size) == CK_OK) {
        char text[CK_DATE_TEXT_MAX];
        int32_t again;
        if (ck_date__format(text, sizeof(text), days) != CK_OK || strlen(text) != size ||
            memcmp(text, s, size) != 0 || ck_date__parse(&again, text, size) != CK_OK ||
            again != days)
            abort();
    }
    if (ck_ts__parse(&v, s, size) == CK_OK) {
        char text[CK_TS_TEXT_MAX];
        char text2[CK_TS_TEXT_MAX];
        ck_value back;
        if (ck_codec__check(&v) != CK_OK || ck_ts__format(text, sizeof(text), &v) != CK_OK ||
            ck_ts__parse(&back, text, strlen(text)) != CK_OK || !value_equal(&v, &back) ||
            ck_ts__format(text2, sizeof(text2), &back) != CK_OK || strcmp(text, text2) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_buf enc = CK_BUF_INIT;
    ck_buf enc2 = CK_BUF_INIT;
    ck_value v;
    ck_value back;
    int rc;

    if (size < 1)
        return 0;
    ck_type type = (ck_type)(data[0] % 8 + 1);
    check_text_parsers(data + 1, size - 1);

    rc = ck_codec__decode(&v, type, data + 1, size - 1, &arena);
    if (rc != CK_OK) {
        if ((rc != CK_EFORMAT && rc != CK_ELIMIT) || !all_zero(&v, sizeof(v)))
            abort();
        goto done;
    }
    if (v.type != type || ck_codec__check(&v) != CK_OK)
        abort();
    if (ck_codec__encode(&enc, &v) != CK_OK)
        abort();
    if (ck_codec__decode(&back, type, enc.p, enc.len, &arena) != CK_OK)
        abort();
    if (!value_equal(&v, &back))
        abort();
    if (ck_codec__encode(&enc2, &back) != CK_OK || enc2.len != enc.len ||
        memcmp(enc.p, enc2.p, enc.len) != 0)
        abort();
    check_text_forms(&v);

done:
    ck_buf__free(&enc2);
    ck_buf__free(&enc);
    ck_arena__free(&arena);
    return 0;
}
