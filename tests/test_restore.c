/*
 * test_restore.c - tombstone files and restore with tombstone replay.
 *
 * Tombstone files: what an export holds, and that every truncation, every
 * flipped byte and another store's file are refused. (More in the restore
 * tests below, which read them.)
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "tomb.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testutil.h"

static const char SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"service\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\"]},\"news\":{\"basis\":\"consent\",\"description\":\"d\","
    "\"benefit\":\"b\",\"fields\":[\"email\",\"city\"]}}}";

typedef struct fx {
    char *root;
    char dir[PATH_MAX];
    char key[PATH_MAX];
    ck_store *st;
} fx;

static ck_options key_opts(const fx *f)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    return o;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->root = tu_mkdtemp("restore");
    tu_path(f->dir, sizeof f->dir, f->root, "store");
    tu_path(f->key, sizeof f->key, f->root, "store.key");
    ck_options o = key_opts(f);
    o.flags = CK_INIT_CREATE_KEY_FILE;
    if (ck_init(&f->st, f->dir, &o) != CK_OK ||
        ck_schema_apply(f->st, SCHEMA, strlen(SCHEMA), 0, NULL) != CK_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ck_close(f->st);
    tu_rmtree(f->root);
    free(f->root);
    free(f);
    return 0;
}

static void import_text(ck_store *st, const char *text, unsigned flags)
{
    ck_importer *imp;
    ck_import_options o = CK_IMPORT_OPTIONS_INIT;
    ck_import_stats s;
    o.flags = flags;
    assert_int_equal(ck_import_begin(&imp, st, &o), CK_OK);
    assert_int_equal(ck_import_feed(imp, text, strlen(text)), CK_OK);
    assert_int_equal(ck_import_finish(imp, &s), CK_OK);
    assert_int_equal(s.rejected, 0);
}

static void erase_ref(ck_store *st, const char *ref)
{
    ck_who w = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
    assert_int_equal(ck_erase(NULL, st, &w, "art17-request", "dpo"), CK_OK);
}

/* Count the entries of the log with `action`. */
static int count_action(ck_store *st, const char *action)
{
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = action;
    ck_audit_cursor *c;
    assert_int_equal(ck_audit_query(&c, st, &flt), CK_OK);
    const ck_audit_record *r;
    int n = 0;
    while (ck_audit_next(c, &r) == CK_OK)
        n++;
    ck_audit_cursor_free(c);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Tombstone files                                                           */
/* ------------------------------------------------------------------------ */

static void test_export(void **state)
{
    fx *f = *state;
    import_text(f->st,
                "{\"ref\":\"T-1\",\"fields\":{\"email\":\"t1@example.fr\",\"city\":\"Vannes\"}}\n"
                "{\"ref\":\"T-2\",\"fields\":{\"email\":\"t2@example.fr\"}}\n",
                0);
    ck_who w = {CK_BY_REF, "T-1", 0, NULL, NULL, NULL};
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
    char path[PATH_MAX];
    tu_path(path, sizeof path, f->root, "tombs");

    /* Nothing erased yet: an empty, valid file. */
    uint64_t n = 99;
    assert_int_equal(ck_tombstones_export(&n, f->st, path, "dpo"), CK_OK);
    assert_int_equal(n, 0);
    size_t len;
    unsigned char *bytes = tu_read_file(path, &len);
    assert_int_equal(len, CK_TOMBFILE_HEADER_BYTES + CK_TOMBFILE_MAC_BYTES);
    free(bytes);

    erase_ref(f->st, "T-1");
    assert_int_equal(ck_tombstones_export(&n, f->st, path, "dpo"), CK_OK);
    assert_int_equal(n, 3); /* ref, e-mail, subject id */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    bytes = tu_read_file(path, &len);
    assert_int_equal(len, CK_TOMBFILE_HEADER_BYTES + 3 * CK_TOMBFILE_ENTRY_BYTES +
                              CK_TOMBFILE_MAC_BYTES);
    /* No value, no subject id in it. */
    assert_null(memmem(bytes, len, "T-1", 3));
    assert_null(memmem(bytes, len, "t1@example.fr", 13));
    assert_null(memmem(bytes, len, sid, sizeof sid));
    free(bytes);

    /* It reads back: the ref's and the subject's tags are there. */
    ck_tombset s = CK_TOMBSET_INIT;
    assert_int_equal(ck_tombfile__read(f->st, &s, path, &n), CK_OK);
    assert_int_equal(n, 3);
    ck_tombset__seal(&s);
    uint8_t key[CK_INDEX_KEY_BYTES], tag[CK_TOMB_BYTES];
    ck_buf norm = CK_BUF_SECURE_INIT;
    assert_int_equal(ck_subject__unique_key(key, tag, f->st, CK_INDEX_REF, "T-1", 3, &norm), CK_OK);
    assert_non_null(ck_tombset__find(&s, tag));
    ck_subject__tomb_tag_sid(tag, f->st, sid);
    assert_non_null(ck_tombset__find(&s, tag));
    assert_int_equal(ck_subject__unique_key(key, tag, f->st, CK_INDEX_REF, "T-2", 3, &norm), CK_OK);
    assert_null(ck_tombset__find(&s, tag));
    ck_buf__free(&norm);
    ck_tombset__free(&s);

    /* Audited, with the count only. */
    assert_int_equal(count_action(f->st, "tombstones_export"), 2);

    /* Bad arguments; a read-only handle refuses. */
    assert_int_equal(ck_tombstones_export(&n, f->st, NULL, "dpo"), CK_EINVAL);
    assert_int_equal(ck_tombstones_export(&n, f->st, path, NULL), CK_EINVAL);
    ck_options o = key_opts(f);
    o.flags = CK_OPEN_RDONLY;
    ck_store *ro = NULL;
    assert_int_equal(ck_open(&ro, f->dir, &o), CK_OK);
    assert_int_equal(ck_tombstones_export(&n, ro, path, "dpo"), CK_EDENIED);
    ck_close(ro);
    /* A directory that does not exist: an error, nothing written. */
    char bad[PATH_MAX];
    tu_path(bad, sizeof bad, f->root, "no/such/dir");
    assert_int_equal(ck_tombstones_export(&n, f->st, bad, "dpo"), CK_ENOTFOUND);
}

/* Every truncation and every changed byte of a file is refused; so is a
 * file of another store, even one with the same tags' layout. */
static void test_tombfile_tampered(void **state)
{
    fx *f = *state;
    import_text(f->st, "{\"ref\":\"X-1\",\"fields\":{\"email\":\"x1@example.fr\"}}\n", 0);
    erase_ref(f->st, "X-1");
    char path[PATH_MAX], bad[PATH_MAX];
    tu_path(path, sizeof path, f->root, "tombs");
    tu_path(bad, sizeof bad, f->root, "bad");
    assert_int_equal(ck_tombstones_export(NULL, f->st, path, "dpo"), CK_OK);
    size_t len;
    unsigned char *bytes = tu_read_file(path, &len);
    assert_non_null(bytes);
    uint64_t n;
    for (size_t cut = 0; cut < len; cut++) {
        tu_write_file(bad, bytes, cut, 0600);
        ck_tombset s = CK_TOMBSET_INIT;
        int rc = ck_tombfile__read(f->st, &s, bad, &n);
        if (rc != CK_EFORMAT && rc != CK_EINTEGRITY)
            fail_msg("a file cut at %zu bytes gave %d", cut, rc);
        assert_int_equal(s.n, 0);
        ck_tombset__free(&s);
    }
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit += 3) {
            bytes[i] ^= (unsigned char)(1u << bit);
            tu_write_file(bad, bytes, len, 0600);
            bytes[i] ^= (unsigned char)(1u << bit);
            ck_tombset s = CK_TOMBSET_INIT;
            int rc = ck_tombfile__read(f->st, &s, bad, &n);
            if (rc != CK_EFORMAT && rc != CK_EINTEGRITY)
                fail_msg("byte %zu bit %u changed gave %d", i, bit, rc);
            assert_int_equal(s.n, 0);
            ck_tombset__free(&s);
        }
    }
    /* One more byte at the end. */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, bytes, len);
    longer[len] = 0;
    tu_write_file(bad, longer, len + 1, 0600);
    free(longer);
    ck_tombset s = CK_TOMBSET_INIT;
    assert_int_equal(ck_tombfile__read(f->st, &s, bad, &n), CK_EINTEGRITY);
    free(bytes);

    /* Another store's file (another root key): refused as such. */
    char other[PATH_MAX], okey[PATH_MAX];
    tu_path(other, sizeof other, f->root, "other");
    tu_path(okey, sizeof okey, f->root, "other.key");
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = okey;
    o.flags = CK_INIT_CREATE_KEY_FILE;
    ck_store *ost = NULL;
    assert_int_equal(ck_init(&ost, other, &o), CK_OK);
    assert_int_equal(ck_tombfile__read(ost, &s, path, &n), CK_EINTEGRITY);
    assert_non_null(strstr(ck_errmsg(ost), "another store"));
    ck_close(ost);
    /* A missing file. */
    tu_path(bad, sizeof bad, f->root, "missing");
    assert_int_equal(ck_tombfile__read(f->st, &s, bad, &n), CK_ENOTFOUND);
    /* The authentic file still reads. */
    assert_int_equal(ck_tombfile__read(f->st, &s, path, &n), CK_OK);
    assert_int_equal(n, 3);
    ck_tombset__free(&s);
}

/* The set: sealing keeps one entry per tag, with the latest time. */
static void test_tombset(void **state)
{
    (void)state;
    ck_tombset s = CK_TOMBSET_INIT;
    uint8_t a[CK_TOMB_BYTES] = {1}, b[CK_TOMB_BYTES] = {2}, c[CK_TOMB_BYTES] = {3};
    assert_int_equal(ck_tombset__add(&s, c, 5), CK_OK);
    assert_int_equal(ck_tombset__add(&s, a, 10), CK_OK);
    assert_int_equal(ck_tombset__add(&s, c, 7), CK_OK);
    assert_int_equal(ck_tombset__add(&s, a, 3), CK_OK);
    ck_tombset__seal(&s);
    assert_int_equal(s.n, 2);
    assert_int_equal(ck_tombset__find(&s, a)->at, 10);
    assert_int_equal(ck_tombset__find(&s, c)->at, 7);
    assert_null(ck_tombset__find(&s, b));
    ck_tombset__free(&s);
    ck_tombset__seal(&s);
    assert_null(ck_tombset__find(&s, a));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tombset),
        cmocka_unit_test_setup_teardown(test_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombfile_tampered, setup, teardown),
    };
    return cmocka_run_group_tests_name("restore", tests, NULL, NULL);
}
