/*
 * test_secrets.c - no key material and no customer value left behind in
 * the process's memory once the library is done with them.
 *
 * A store is made with a key file, a value (a random canary) is written
 * with ck_put, released with ck_release and turned into JSON, exported
 * with ck_export (JSON and CSV), and the store is closed. Then every
 * writable private mapping of the process - the heap, anonymous mappings,
 * what a core dump would hold - is searched for the canary, for the key
 * file's bytes and for the root key and each subkey the store used. The
 * test keeps its own copies XOR-masked, so that only the library's
 * leftovers could match.
 *
 * Two runs: the typed write path (ck_put), the release path and the
 * export; then the JSON paths (ck_put_json, an import line, the result as
 * JSON). Jansson
 * frees its strings without wiping them unless the program gives it an
 * allocator that does; this test installs the ckstore tool's own
 * (cli/jalloc.c, compiled in below) first thing, as the tool does, so the
 * second run checks what the tool leaves behind.
 */
/* Not marked fast: it reads freed heap memory on purpose, which valgrind
 * reports; it skips itself under the sanitizers, whose shadow mappings are
 * terabytes of address space. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>

#include "store.h"
#include "testutil.h"

/* The tool's Jansson allocator, as the tool uses it. */
#include "../cli/jalloc.c"

#define MASK 0xa5

typedef struct needle {
    const char *what;
    uint8_t masked[64];
    size_t len;
} needle;

static void mask(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ MASK;
}

/* Is the (unmasked) needle at p? Compared byte by byte without ever
 * writing the plain needle anywhere. */
static bool match_at(const uint8_t *p, const needle *nd)
{
    for (size_t i = 0; i < nd->len; i++)
        if ((uint8_t)(p[i] ^ MASK) != nd->masked[i])
            return false;
    return true;
}

/* Search every private writable mapping (heap, anonymous, stacks of other
 * threads) for the needles; returns how many hits were reported. */
static int scan_memory(const needle *nds, size_t nn)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[512];
    int hits = 0;
    while (fgets(line, sizeof line, maps) != NULL) {
        unsigned long lo, hi;
        char perms[8] = "", path[256] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi, perms, path) < 3)
            continue;
        if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p')
            continue;
        /* file-backed private mappings: data segments of the binaries */
        if (path[0] == '/' || strcmp(path, "[vvar]") == 0 || strcmp(path, "[stack]") == 0)
            continue;
        const uint8_t *p = (const uint8_t *)lo, *end = (const uint8_t *)hi;
        for (; p + 8 <= end; p++) {
            for (size_t k = 0; k < nn; k++) {
                if ((uint8_t)(p[0] ^ MASK) == nds[k].masked[0] && (size_t)(end - p) >= nds[k].len &&
                    match_at(p, &nds[k])) {
                    fprintf(stderr, "found %s at %p in %s", nds[k].what, (const void *)p, line);
                    hits++;
                }
            }
        }
    }
    fclose(maps);
    return hits;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CK_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CK_UNDER_SANITIZER 1
#endif
#endif

/* Write the masked canary as JSON text into `out`: {"note":"<canary>"}
 * or an import line. The caller wipes it. */
static size_t canary_json(char *out, size_t max, const uint8_t *masked, size_t n, bool line)
{
    const char *pre = line ? "{\"ref\":\"S-2\",\"fields\":{\"note\":\"" : "{\"note\":\"";
    const char *post = line ? "\"}}\n" : "\"}";
    size_t a = strlen(pre), b = strlen(post);
    assert_true(a + n + b < max);
    memcpy(out, pre, a);
    mask((uint8_t *)out + a, masked, n);
    memcpy(out + a + n, post, b + 1);
    return a + n + b;
}

static void scenario(bool json)
{
#ifdef CK_UNDER_SANITIZER
    skip(); /* the scan would read the sanitizer's own memory */
#endif
    char *root = tu_mkdtemp("secrets");
    char dir[PATH_MAX], key[PATH_MAX];
    tu_path(dir, sizeof dir, root, "s");
    tu_path(key, sizeof key, root, "k");

    needle nds[4 + CK_SUBKEY_COUNT_];
    size_t nn = 0;

    /* The canary: random printable bytes, held masked; the plain form
     * exists only in `plain` for the duration of ck_put. */
    uint8_t canary[48];
    randombytes_buf(canary, sizeof canary);
    for (size_t i = 0; i < sizeof canary; i++)
        canary[i] = (uint8_t)('a' + canary[i] % 26);
    nds[nn].what = "the canary value";
    mask(nds[nn].masked, canary, sizeof canary);
    nds[nn].len = sizeof canary;
    nn++;
    /* free() writes its list pointers over the first 16 bytes of a block,
     * so residue in freed memory is found by the canary's tail. */
    nds[nn].what = "the canary's last 24 bytes";
    mask(nds[nn].masked, canary + 24, 24);
    nds[nn].len = 24;
    nn++;

    ck_options o = CK_OPTIONS_INIT;
    o.key_file = key;
    o.flags = CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC;
    ck_store *st = NULL;
    assert_int_equal(ck_init(&st, dir, &o), CK_OK);
    const char *schema =
        "{\"fields\":{\"note\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
        "\"purposes\":{\"service\":{\"basis\":\"contract\",\"description\":\"d\","
        "\"benefit\":\"b\",\"fields\":[\"note\"]}}}";
    assert_int_equal(ck_schema_apply(st, schema, strlen(schema), 0, NULL), CK_OK);

    /* Key material, masked: the key file, the root key, every subkey. */
    size_t kflen = 0;
    unsigned char *kf = tu_read_file(key, &kflen);
    assert_int_equal(kflen, CK_KEY_FILE_BYTES);
    nds[nn].what = "the key file's bytes";
    mask(nds[nn].masked, kf, kflen);
    nds[nn].len = kflen;
    nn++;
    sodium_memzero(kf, kflen);
    free(kf);
    nds[nn].what = "the root key";
    mask(nds[nn].masked, st->keys->root, CK_KEY_BYTES);
    nds[nn].len = CK_KEY_BYTES;
    nn++;
    for (unsigned i = 1; i < CK_SUBKEY_COUNT_; i++) {
        nds[nn].what = "a subkey";
        mask(nds[nn].masked, st->keys->sub[i], CK_KEY_BYTES);
        nds[nn].len = CK_KEY_BYTES;
        nn++;
    }

    {
        ck_who w = {CK_BY_REF, "S-1", 0, NULL, NULL, NULL};
        if (json) {
            char text[128];
            size_t n = canary_json(text, sizeof text, nds[0].masked, sizeof canary, false);
            assert_int_equal(ck_put_json(NULL, st, &w, text, n, CK_PUT_CREATE), CK_OK);
            n = canary_json(text, sizeof text, nds[0].masked, sizeof canary, true);
            ck_importer *imp = NULL;
            ck_import_options io = CK_IMPORT_OPTIONS_INIT;
            ck_import_stats is;
            assert_int_equal(ck_import_begin(&imp, st, &io), CK_OK);
            assert_int_equal(ck_import_feed(imp, text, n), CK_OK);
            assert_int_equal(ck_import_finish(imp, &is), CK_OK);
            assert_int_equal(is.imported, 1); /* finish freed the importer */
            sodium_memzero(text, sizeof text);
        } else {
            char plain[sizeof canary];
            mask((uint8_t *)plain, nds[0].masked, sizeof canary);
            ck_value v = {.type = CK_TYPE_STRING, .u.str = {plain, sizeof canary}};
            ck_field_value fv = {"note", &v};
            assert_int_equal(ck_put(NULL, st, &w, &fv, 1, CK_PUT_CREATE), CK_OK);
            sodium_memzero(plain, sizeof plain);
        }

        ck_request r = CK_REQUEST_INIT;
        r.actor = "t";
        r.purpose = "service";
        r.subject = w;
        ck_result *res = NULL;
        assert_int_equal(ck_release(&res, st, &r), CK_OK);
        assert_int_equal(ck_result_field(res, 0)->reason, CK_RELEASED);
        assert_true(match_at((const uint8_t *)ck_result_field(res, 0)->value.u.str.ptr, &nds[0]));
        char *js = NULL;
        assert_int_equal(ck_result_json(&js, res), CK_OK);
        ck_free(js);
        ck_result_free(res);

        /* the export holds the value in full: gone once freed */
        assert_int_equal(ck_export(&js, st, &w, "t", 0), CK_OK);
        assert_non_null(strstr(js, "\"note\""));
        ck_free(js);
        assert_int_equal(ck_export(&js, st, &w, "t", CK_EXPORT_CSV), CK_OK);
        ck_free(js);
    }
    ck_close(st);

    /* The library has let go of everything: nothing may be left. */
    assert_int_equal(scan_memory(nds, nn), 0);

    /* The scan can find: a copy left on purpose is found. */
    uint8_t *leak = malloc(sizeof canary);
    assert_non_null(leak);
    mask(leak, nds[0].masked, sizeof canary);
    assert_int_equal(scan_memory(nds, 1), 1);
    sodium_memzero(leak, sizeof canary);
    free(leak);

    tu_rmtree(root);
    free(root);
}

static void test_typed_paths(void **state)
{
    (void)state;
    scenario(false);
}

static void test_json_paths(void **state)
{
    (void)state;
    scenario(true);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    cli_json_wipe_on_free(); /* before any JSON, as the tool does */
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_typed_paths),
                                       cmocka_unit_test(test_json_paths)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
