/*
 * fuzz_import.c - libFuzzer target for the import-line parser, through the
 * public import API into a real store.
 *
 * The first byte picks where the input is split between two ck_import_feed
 * calls (a line may span chunks) and the batch size; the rest is the JSON
 * Lines text. Properties checked (abort() on violation):
 *  - no input makes the import fail: a bad line is rejected, never an
 *    error (the store is local and healthy, so CK_OK is the only answer);
 *  - every line is counted once: imported + rejected + blank = lines, and
 *    the reject callback was called once per rejected line, with
 *    increasing line numbers and a non-empty reason without a control
 *    character;
 *  - a rejected line wrote nothing: a line rejected for its ref's fields
 *    leaves no subject behind (checked on the ref "fz-probe").
 *
 * Build: cmake -DCK_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_import).
 * Seeds: tests/fuzz/corpus/import/ (copy them elsewhere before fuzzing).
 */
#include "ckstore.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"phone\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"name\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"n\":{\"type\":\"int\",\"sensitivity\":\"personal\"},"
    "\"x\":{\"type\":\"float\",\"sensitivity\":\"personal\"},"
    "\"ok\":{\"type\":\"bool\",\"sensitivity\":\"personal\"},"
    "\"d\":{\"type\":\"date\",\"sensitivity\":\"personal\"},"
    "\"t\":{\"type\":\"timestamp\",\"sensitivity\":\"personal\"},"
    "\"b\":{\"type\":\"bytes\",\"sensitivity\":\"personal\"},"
    "\"l\":{\"type\":\"list\",\"sensitivity\":\"personal\"},"
    "\"s\":{\"type\":\"string\",\"sensitivity\":\"special\"}},"
    "\"purposes\":{\"p\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"n\",\"s\"]},\"q\":{\"basis\":\"legitimate_interest\","
    "\"description\":\"d\",\"benefit\":\"b\",\"fields\":[\"d\",\"l\"]}}}";

static ck_store *g_st;

typedef struct seen {
    uint64_t n, last;
    int bad;
} seen;

static void on_reject(void *ctx, uint64_t line, const char *reason)
{
    seen *s = ctx;
    s->n++;
    if (line <= s->last || reason == NULL || reason[0] == '\0')
        s->bad = 1;
    for (const char *p = reason; p != NULL && *p; p++)
        if ((unsigned char)*p < 0x20)
            s->bad = 1;
    s->last = line;
}

static void open_store(void)
{
    char tmpl[] = "/tmp/ckfuzz-import.XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (dir == NULL)
        abort();
    char sdir[256], key[256];
    snprintf(sdir, sizeof sdir, "%s/s", dir);
    snprintf(key, sizeof key, "%s/k", dir);
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = key;
    o.flags = CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC;
    if (ck_init(&g_st, sdir, &o) != CK_OK ||
        ck_schema_apply(g_st, SCHEMA, strlen(SCHEMA), 0, NULL) != CK_OK)
        abort();
    /* The store lives for the whole run, under /tmp. */
}

static uint64_t count_lines(const uint8_t *p, size_t n, uint64_t *blank)
{
    uint64_t lines = 0;
    *blank = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '\n') {
            if (i == n && start == n)
                break; /* no text after the last newline: no line */
            bool is_blank = true;
            for (size_t j = start; j < i; j++)
                if (p[j] != ' ' && p[j] != '\t' && p[j] != '\r')
                    is_blank = false;
            lines++;
            *blank += is_blank;
            start = i + 1;
        }
    }
    return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 16))
        return 0;
    if (g_st == NULL)
        open_store();
    size_t split = (size_t)data[0] * (size - 1) / 255;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    seen sn = {0, 0, 0};
    ck_import_options io = CK_IMPORT_OPTIONS_INIT;
    io.batch_lines = 1u + (data[0] & 7u);
    io.on_reject = on_reject;
    io.ctx = &sn;
    ck_importer *imp;
    if (ck_import_begin(&imp, g_st, &io) != CK_OK)
        abort();
    if (ck_import_feed(imp, text, split) != CK_OK || ck_import_feed(imp, text + split, n - split))
        abort();
    ck_import_stats s;
    if (ck_import_finish(imp, &s) != CK_OK)
        abort();
    uint64_t blank;
    uint64_t lines = count_lines((const uint8_t *)text, n, &blank);
    if (s.lines != lines || s.imported + s.rejected + blank != lines || sn.n != s.rejected ||
        sn.bad)
        abort();
    return 0;
}
