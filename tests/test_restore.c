/*
 * test_restore.c - tombstone files and restore with tombstone replay.
 *
 * Tombstone files: what an export holds, and that every truncation, every
 * flipped byte and another store's file are refused.
 *
 * Restore: a backup made before an erasure, restored, does not bring the
 * subject back - not by ref, look-up, alias, id, pseudonym or segment, and
 * no file of the restored store holds its id, its index keys or its
 * wrapped key - while everyone else is intact; into an empty or absent
 * directory with an exported tombstone file; each matching rule (id, ref,
 * identifying value, the creation-time guard, an unfinished erasure); and
 * every refusal changes nothing: wrong key, a forged or truncated file, a
 * busy target, another store, a tampered backup.
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
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fixture.h"

static const char SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"service\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\"]},\"news\":{\"basis\":\"consent\",\"description\":\"d\","
    "\"benefit\":\"b\",\"fields\":[\"email\",\"city\"]}}}";

typedef tu_fx fx; /* tests/fixture.h */

static ck_options key_opts(const fx *f)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    return o;
}

static int setup(void **state)
{
    return tu_fx_setup(state, "restore", TU_FX_WALL_CLOCK, CK_INIT_CREATE_KEY_FILE, SCHEMA);
}

static int teardown(void **state)
{
    return tu_fx_teardown(state);
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

/* ------------------------------------------------------------------------ */
/* Restore                                                                   */
/* ------------------------------------------------------------------------ */

/* Does any file of `dir` contain the n bytes at p? */
static int dir_contains(const char *dir, const void *p, size_t n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        tu_path(path, sizeof path, dir, e->d_name);
        found += tu_file_contains(path, p, n);
    }
    closedir(d);
    return found;
}

/* Entries of `dir` whose name contains `part`. */
static int count_names(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static ck_store *open_dir(const fx *f, const char *dir)
{
    ck_options o = key_opts(f);
    ck_store *st = NULL;
    int rc = ck_open(&st, dir, &o);
    if (rc != CK_OK)
        fail_msg("cannot open %s: %d", dir, rc);
    return st;
}

static int restore(const fx *f, ck_restore_result *out, const char *dir, const char *backup,
                   const char *const *files, size_t nfiles, char *err, size_t err_max)
{
    ck_options o = key_opts(f);
    o.errbuf = err;
    o.errbuf_max = err_max;
    ck_restore_options ro = CK_RESTORE_OPTIONS_INIT;
    ro.actor = "dpo";
    ro.tombstone_files = files;
    ro.n_tombstone_files = nfiles;
    return ck_restore(out, dir, backup, &o, &ro);
}

/* What identifies one subject, collected while it exists. */
typedef struct ids {
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    char hex[2 * CK_SUBJECT_ID_BYTES + 1];
    uint8_t refkey[CK_INDEX_KEY_BYTES], mailkey[CK_INDEX_KEY_BYTES];
    uint8_t rec[CK_KEYRING_RECORD_BYTES];
    char pseudonym[64];
} ids;

static void collect(ck_store *st, const ck_who *w, const char *ref, const char *mail, ids *out)
{
    memset(out, 0, sizeof *out);
    assert_int_equal(ck_subject_find(out->sid, st, w), CK_OK);
    ck_subject_id_hex(out->hex, out->sid);
    ck_buf norm = CK_BUF_SECURE_INIT;
    if (ref != NULL)
        assert_int_equal(
            ck_subject__unique_key(out->refkey, NULL, st, CK_INDEX_REF, ref, strlen(ref), &norm),
            CK_OK);
    ck_buf__free(&norm);
    if (mail != NULL)
        ck_ident__index_key(out->mailkey, st, CK_INDEX_FIELD, 1, (const uint8_t *)mail,
                            strlen(mail));
    MDB_txn *t;
    assert_int_equal(ck_env__read_begin(st, &st->keyring, &t), CK_OK);
    MDB_val k = {CK_SUBJECT_ID_BYTES, out->sid}, v;
    assert_int_equal(mdb_get(t, st->dbi_keyring, &k, &v), 0);
    memcpy(out->rec, v.mv_data, CK_KEYRING_RECORD_BYTES);
    ck_env__read_end(&st->keyring, t);
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "service";
    r.subject = *w;
    ck_result *res;
    assert_int_equal(ck_release(&res, st, &r), CK_OK);
    snprintf(out->pseudonym, sizeof out->pseudonym, "%s", ck_result_subject(res));
    ck_result_free(res);
}

/* Nothing of the subject is reachable in `st`, and no file of `dir` holds
 * its id, its index keys or its wrapped key. */
static void assert_gone(ck_store *st, const char *dir, const ids *id, const ck_who *extra,
                        size_t nextra)
{
    unsigned char got[CK_SUBJECT_ID_BYTES];
    ck_who byid = {CK_BY_ID, id->hex, 0, NULL, NULL, NULL};
    assert_int_equal(ck_subject_find(got, st, &byid), CK_ENOTFOUND);
    ck_who byps = {CK_BY_PSEUDONYM, id->pseudonym, 0, NULL, "service", NULL};
    assert_int_equal(ck_subject_find(got, st, &byps), CK_ENOTFOUND);
    for (size_t i = 0; i < nextra; i++)
        assert_int_equal(ck_subject_find(got, st, &extra[i]), CK_ENOTFOUND);
    assert_int_equal(dir_contains(dir, id->sid, sizeof id->sid), 0);
    assert_int_equal(dir_contains(dir, id->hex, 32), 0);
    uint8_t zero[CK_INDEX_KEY_BYTES] = {0};
    if (memcmp(id->refkey, zero, sizeof zero) != 0)
        assert_int_equal(dir_contains(dir, id->refkey, sizeof id->refkey), 0);
    if (memcmp(id->mailkey, zero, sizeof zero) != 0)
        assert_int_equal(dir_contains(dir, id->mailkey, sizeof id->mailkey), 0);
    assert_int_equal(dir_contains(dir, id->rec, sizeof id->rec), 0);
}

/* The subject `ref` is there with its city (and nothing withheld but unset
 * fields). */
static void assert_whole(ck_store *st, const char *ref, const char *city)
{
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "service";
    r.subject.by = CK_BY_REF;
    r.subject.value = ref;
    ck_result *res = NULL;
    int rc = ck_release(&res, st, &r);
    if (rc != CK_OK)
        fail_msg("release of %s: %d %s", ref, rc, ck_errmsg(st));
    bool seen = false;
    for (size_t i = 0; i < ck_result_count(res); i++) {
        const ck_field_result *fr = ck_result_field(res, i);
        assert_true(fr->reason == CK_RELEASED || fr->reason == CK_WITHHELD_UNSET);
        if (strcmp(fr->field, "city") == 0) {
            assert_int_equal(fr->reason, CK_RELEASED);
            assert_int_equal(fr->value.u.str.len, strlen(city));
            assert_memory_equal(fr->value.u.str.ptr, city, strlen(city));
            seen = true;
        }
    }
    assert_true(seen);
    ck_result_free(res);
}

/* Subjects a segment of "service" (a contract purpose) answers. */
static int segment_count(ck_store *st)
{
    ck_segment_request q = CK_SEGMENT_INIT;
    q.actor = "t";
    q.purpose = "service";
    ck_cursor *c;
    assert_int_equal(ck_segment(&c, st, &q), CK_OK);
    const ck_result *r;
    int n = 0;
    while (ck_segment_next(c, &r) == CK_OK)
        n++;
    ck_cursor_free(c);
    return n;
}

static void assert_log_verifies(ck_store *st)
{
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    if (ck_audit_verify(&vr, st, NULL) != CK_OK)
        fail_msg("the audit log does not verify: %s", ck_errmsg(st));
}

/* Three customers: R-1 (ref, e-mail, alias), R-2 (ref, e-mail), and one
 * without a ref known by an alias only. */
static void populate(fx *f)
{
    import_text(f->st,
                "{\"ref\":\"R-1\",\"fields\":{\"email\":\"r1@example.fr\",\"city\":\"Quimper\"}}\n"
                "{\"ref\":\"R-2\",\"fields\":{\"email\":\"r2@example.fr\",\"city\":\"Lorient\"}}\n",
                0);
    ck_who w1 = {CK_BY_REF, "R-1", 0, NULL, NULL, NULL};
    assert_int_equal(ck_alias_add(f->st, &w1, "card-1", 0), CK_OK);
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_create(sid, f->st, NULL, 0), CK_OK);
    char hex[33];
    ck_subject_id_hex(hex, sid);
    ck_who wi = {CK_BY_ID, hex, 0, NULL, NULL, NULL};
    assert_int_equal(ck_alias_add(f->st, &wi, "anon-7", 0), CK_OK);
    assert_int_equal(ck_put_json(NULL, f->st, &wi, "{\"city\":\"Auray\"}", 16, 0), CK_OK);
}

static const ck_who W_R1[] = {{CK_BY_REF, "R-1", 0, NULL, NULL, NULL},
                              {CK_BY_LOOKUP, "r1@example.fr", 0, "email", NULL, NULL},
                              {CK_BY_ALIAS, "card-1", 0, NULL, NULL, NULL}};
static const ck_who W_ANON = {CK_BY_ALIAS, "anon-7", 0, NULL, NULL, NULL};

static void test_restore_replays(void **state)
{
    fx *f = *state;
    populate(f);
    ids r1, anon;
    collect(f->st, &W_R1[0], "R-1", "r1@example.fr", &r1);
    collect(f->st, &W_ANON, NULL, NULL, &anon);
    char bdir[PATH_MAX], err[CK_ERRMSG_MAX];
    tu_path(bdir, sizeof bdir, f->root, "backup");
    assert_int_equal(ck_backup(f->st, bdir, "dpo"), CK_OK);
    erase_ref(f->st, "R-1");
    assert_int_equal(ck_erase(NULL, f->st, &W_ANON, "art17-request", "dpo"), CK_OK);
    /* Written after the backup: lost by the restore (and kept aside). */
    ck_who w2 = {CK_BY_REF, "R-2", 0, NULL, NULL, NULL};
    assert_int_equal(ck_put_json(NULL, f->st, &w2, "{\"city\":\"Vannes\"}", 17, 0), CK_OK);

    /* Open here: busy, nothing changed. */
    unsigned char before[32], after[32];
    ck_close(f->st);
    f->st = NULL;
    tu_digest_store(before, f->dir);
    f->st = open_dir(f, f->dir);
    ck_restore_result res = CK_RESTORE_RESULT_INIT;
    assert_int_equal(restore(f, &res, f->dir, bdir, NULL, 0, err, sizeof err), CK_EBUSY);
    assert_non_null(strstr(err, "open elsewhere"));
    assert_null(res.kept);
    ck_close(f->st);
    f->st = NULL;
    tu_digest_store(after, f->dir);
    assert_memory_equal(before, after, 32);
    assert_int_equal(count_names(f->root, ".restore-"), 0);

    /* The backup as it is still holds both. */
    ck_store *b = open_dir(f, bdir);
    assert_whole(b, "R-1", "Quimper");
    ck_close(b);
    size_t blen;
    char bseg[PATH_MAX];
    tu_path(bseg, sizeof bseg, bdir, "audit-000001.log");
    unsigned char *blog = tu_read_file(bseg, &blen);

    assert_int_equal(restore(f, &res, f->dir, bdir, NULL, 0, err, sizeof err), CK_OK);
    assert_int_equal(res.subjects, 3);
    assert_int_equal(res.replayed, 2);
    assert_int_equal(res.replayed_by_id, 2);
    assert_int_equal(res.replayed_by_ref + res.replayed_by_value + res.replayed_unfinished, 0);
    assert_int_equal(res.tombstones_backup, 0);
    assert_int_equal(res.tombstones_target, 4); /* ref, e-mail, id; anon: id */
    assert_int_equal(res.tombstones, 4);
    assert_non_null(res.kept);
    assert_true(res.target_audit_seq > res.backup_audit_seq);
    assert_true(res.audit_seq > res.backup_audit_seq);
    assert_int_equal(count_names(f->root, ".restore-"), 0);

    f->st = open_dir(f, f->dir);
    assert_gone(f->st, f->dir, &r1, W_R1, CK_ARRAY_LEN(W_R1));
    assert_gone(f->st, f->dir, &anon, &W_ANON, 1);
    assert_whole(f->st, "R-2", "Lorient"); /* as it was in the backup */
    assert_int_equal(segment_count(f->st), 1);
    assert_log_verifies(f->st);
    /* The replay and the restore are audited; the backup's log is a
     * prefix of the restored one. */
    assert_int_equal(count_action(f->st, "restore"), 1);
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "erase";
    ck_audit_cursor *c;
    assert_int_equal(ck_audit_query(&c, f->st, &flt), CK_OK);
    const ck_audit_record *ar;
    int n = 0;
    while (ck_audit_next(c, &ar) == CK_OK) {
        assert_true(ar->seq > res.backup_audit_seq);
        bool replay = false;
        for (size_t i = 0; i < ar->n_detail; i++)
            replay |= strcmp(ar->detail[i].key, "reason") == 0 &&
                      strcmp(ar->detail[i].str, "restore-replay") == 0;
        assert_true(replay);
        n++;
    }
    ck_audit_cursor_free(c);
    assert_int_equal(n, 2);
    char rseg[PATH_MAX];
    tu_path(rseg, sizeof rseg, f->dir, "audit-000001.log");
    size_t rlen;
    unsigned char *rlog = tu_read_file(rseg, &rlen);
    assert_true(rlen > blen);
    assert_memory_equal(rlog, blog, blen);
    free(rlog);
    free(blog);
    /* The tombstones came along: the old file is refused again. */
    ck_importer *imp;
    ck_import_options io = CK_IMPORT_OPTIONS_INIT;
    ck_import_stats st;
    const char *old = "{\"ref\":\"R-1\",\"fields\":{\"city\":\"Quimper\"}}\n";
    assert_int_equal(ck_import_begin(&imp, f->st, &io), CK_OK);
    assert_int_equal(ck_import_feed(imp, old, strlen(old)), CK_OK);
    assert_int_equal(ck_import_finish(imp, &st), CK_OK);
    assert_int_equal(st.rejected, 1);
    ck_close(f->st);

    /* The replaced store is kept whole, with what came after the backup. */
    f->st = open_dir(f, res.kept);
    assert_whole(f->st, "R-2", "Vannes");
    assert_log_verifies(f->st);
    ck_close(f->st);
    ck_free(res.kept);

    /* A restore of the restored store's own backup replays nothing more,
     * and its tombstones are the backup's now. */
    char b2[PATH_MAX];
    tu_path(b2, sizeof b2, f->root, "backup2");
    f->st = open_dir(f, f->dir);
    assert_int_equal(ck_backup(f->st, b2, "dpo"), CK_OK);
    ck_close(f->st);
    f->st = NULL;
    res = (ck_restore_result)CK_RESTORE_RESULT_INIT;
    assert_int_equal(restore(f, &res, f->dir, b2, NULL, 0, err, sizeof err), CK_OK);
    assert_int_equal(res.subjects, 1);
    assert_int_equal(res.replayed, 0);
    assert_int_equal(res.tombstones_backup, 4);
    ck_free(res.kept);
    f->st = open_dir(f, f->dir);
    assert_whole(f->st, "R-2", "Lorient");
    assert_log_verifies(f->st);
    /* Restoring a store onto itself is refused. */
    ck_close(f->st);
    f->st = NULL;
    assert_int_equal(restore(f, &res, f->dir, f->dir, NULL, 0, err, sizeof err), CK_EINVAL);
}

/* The store is lost: restoring into an empty or absent directory brings
 * back whoever was erased after the backup, unless the tombstones exported
 * from the lost store are given. */
static void test_restore_with_file(void **state)
{
    fx *f = *state;
    populate(f);
    ids r1;
    collect(f->st, &W_R1[0], "R-1", "r1@example.fr", &r1);
    char bdir[PATH_MAX], tfile[PATH_MAX], err[CK_ERRMSG_MAX], d1[PATH_MAX], d2[PATH_MAX];
    tu_path(bdir, sizeof bdir, f->root, "backup");
    tu_path(tfile, sizeof tfile, f->root, "tombs");
    tu_path(d1, sizeof d1, f->root, "without");
    tu_path(d2, sizeof d2, f->root, "with");
    assert_int_equal(ck_backup(f->st, bdir, "dpo"), CK_OK);
    erase_ref(f->st, "R-1");
    assert_int_equal(ck_tombstones_export(NULL, f->st, tfile, "dpo"), CK_OK);
    ck_close(f->st);
    f->st = NULL;
    tu_rmtree(f->dir); /* lost */

    /* Without the file: she is back - which is why the file exists. */
    ck_restore_result res = CK_RESTORE_RESULT_INIT;
    assert_int_equal(restore(f, &res, d1, bdir, NULL, 0, err, sizeof err), CK_OK);
    assert_int_equal(res.replayed, 0);
    assert_null(res.kept);
    ck_store *st = open_dir(f, d1);
    assert_whole(st, "R-1", "Quimper");
    ck_close(st);

    /* With it, into an empty directory (with a trailing slash). */
    assert_int_equal(mkdir(d2, 0700), 0);
    char d2slash[PATH_MAX + 2];
    snprintf(d2slash, sizeof d2slash, "%s//", d2);
    const char *files[] = {tfile};
    assert_int_equal(restore(f, &res, d2slash, bdir, files, 1, err, sizeof err), CK_OK);
    assert_int_equal(res.replayed, 1);
    assert_int_equal(res.replayed_by_id, 1);
    assert_int_equal(res.tombstones_files, 3);
    assert_int_equal(res.tombstones_target, 0);
    assert_null(res.kept);
    st = open_dir(f, d2);
    assert_gone(st, d2, &r1, W_R1, CK_ARRAY_LEN(W_R1));
    assert_whole(st, "R-2", "Lorient");
    assert_log_verifies(st);
    ck_close(st);

    /* A directory that is neither empty nor a store is refused. */
    char d3[PATH_MAX], junk[PATH_MAX];
    tu_path(d3, sizeof d3, f->root, "junk");
    assert_int_equal(mkdir(d3, 0700), 0);
    tu_path(junk, sizeof junk, d3, "notes.txt");
    tu_write_file(junk, "x", 1, 0600);
    assert_int_equal(restore(f, &res, d3, bdir, files, 1, err, sizeof err), CK_EEXIST);
    assert_int_equal(restore(f, &res, junk, bdir, files, 1, err, sizeof err), CK_EEXIST);
    /* A symbolic link to a store: the exchange would move the link. */
    char link[PATH_MAX];
    tu_path(link, sizeof link, f->root, "link");
    assert_int_equal(symlink(d2, link), 0);
    assert_int_equal(restore(f, &res, link, bdir, files, 1, err, sizeof err), CK_EINVAL);
    assert_non_null(strstr(err, "symbolic link"));
    /* No parent directory. */
    char d4[PATH_MAX];
    tu_path(d4, sizeof d4, f->root, "no/such");
    assert_int_equal(restore(f, &res, d4, bdir, files, 1, err, sizeof err), CK_ENOTFOUND);
    assert_int_equal(count_names(f->root, ".restore-"), 0);
}

/* Every refusal leaves the target and the backup as they were and no
 * directory beside them. */
static void assert_refused(const fx *f, const char *bdir, int want, const char *const *files,
                           size_t nfiles, const ck_options *key)
{
    unsigned char t0[32], t1[32], b0[32], b1[32];
    tu_digest_store(t0, f->dir);
    tu_digest_store(b0, bdir);
    char err[CK_ERRMSG_MAX] = "";
    ck_options o = *key;
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    ck_restore_options ro = CK_RESTORE_OPTIONS_INIT;
    ro.actor = "dpo";
    ro.tombstone_files = files;
    ro.n_tombstone_files = nfiles;
    ck_restore_result res = CK_RESTORE_RESULT_INIT;
    int rc = ck_restore(&res, f->dir, bdir, &o, &ro);
    if (rc != want)
        fail_msg("restore gave %d (%s), expected %d", rc, err, want);
    assert_true(err[0] != '\0');
    assert_null(res.kept);
    tu_digest_store(t1, f->dir);
    tu_digest_store(b1, bdir);
    assert_memory_equal(t0, t1, 32);
    assert_memory_equal(b0, b1, 32);
    assert_int_equal(count_names(f->root, ".restore-"), 0);
    assert_int_equal(count_names(f->root, ".replaced-"), 0);
}

static void test_restore_refusals(void **state)
{
    fx *f = *state;
    populate(f);
    char bdir[PATH_MAX], tfile[PATH_MAX], bad[PATH_MAX];
    tu_path(bdir, sizeof bdir, f->root, "backup");
    tu_path(tfile, sizeof tfile, f->root, "tombs");
    tu_path(bad, sizeof bad, f->root, "bad");
    assert_int_equal(ck_backup(f->st, bdir, "dpo"), CK_OK);
    erase_ref(f->st, "R-1");
    assert_int_equal(ck_tombstones_export(NULL, f->st, tfile, "dpo"), CK_OK);
    ck_close(f->st);
    f->st = NULL;
    /* Open the backup once, so its lock files exist before digests. */
    ck_store *b = open_dir(f, bdir);
    ck_close(b);
    ck_options key = key_opts(f);

    /* A wrong key: another key file, a passphrase the store has no slot for. */
    char okey[PATH_MAX];
    tu_path(okey, sizeof okey, f->root, "other.key");
    unsigned char kb[CK_KEY_FILE_BYTES];
    randombytes_buf(kb, sizeof kb);
    tu_write_file(okey, kb, sizeof kb, 0600);
    ck_options wrong = CK_OPTIONS_INIT;
    wrong.key_file = okey;
    assert_refused(f, bdir, CK_EKEY, NULL, 0, &wrong);
    wrong.key_file = NULL;
    wrong.passphrase = "not it";
    wrong.passphrase_len = 6;
    assert_refused(f, bdir, CK_EKEY, NULL, 0, &wrong);

    /* A forged, a truncated, a missing tombstone file. */
    size_t len;
    unsigned char *bytes = tu_read_file(tfile, &len);
    bytes[CK_TOMBFILE_HEADER_BYTES + 3] ^= 0x40; /* a tag changed */
    tu_write_file(bad, bytes, len, 0600);
    const char *files[] = {tfile, bad};
    assert_refused(f, bdir, CK_EINTEGRITY, files, 2, &key);
    bytes[CK_TOMBFILE_HEADER_BYTES + 3] ^= 0x40;
    tu_write_file(bad, bytes, len - CK_TOMBFILE_ENTRY_BYTES, 0600); /* an entry cut */
    assert_refused(f, bdir, CK_EINTEGRITY, files, 2, &key);
    free(bytes);
    tu_path(bad, sizeof bad, f->root, "missing");
    files[1] = bad;
    assert_refused(f, bdir, CK_ENOTFOUND, files, 2, &key);

    /* The backup's audit log altered. */
    char bseg[PATH_MAX];
    tu_path(bseg, sizeof bseg, bdir, "audit-000001.log");
    bytes = tu_read_file(bseg, &len);
    bytes[len / 2] ^= 0x01;
    tu_write_file(bseg, bytes, len, 0600);
    assert_refused(f, bdir, CK_EINTEGRITY, NULL, 0, &key);
    bytes[len / 2] ^= 0x01;
    tu_write_file(bseg, bytes, len, 0600);
    free(bytes);

    /* A subject record of the backup that does not authenticate. */
    ck_options wo = key_opts(f);
    b = NULL;
    assert_int_equal(ck_open(&b, bdir, &wo), CK_OK);
    ck_who w2 = {CK_BY_REF, "R-2", 0, NULL, NULL, NULL};
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, b, &w2), CK_OK);
    MDB_txn *t;
    assert_int_equal(mdb_txn_begin(b->data.env, NULL, 0, &t), 0);
    MDB_val k = {sizeof sid, sid}, v;
    assert_int_equal(mdb_get(t, b->dbi_subjects, &k, &v), 0);
    uint8_t *rec = malloc(v.mv_size);
    memcpy(rec, v.mv_data, v.mv_size);
    size_t rlen = v.mv_size;
    rec[rlen - 1] ^= 0x01;
    v.mv_data = rec;
    assert_int_equal(mdb_put(t, b->dbi_subjects, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    ck_close(b);
    assert_refused(f, bdir, CK_EINTEGRITY, NULL, 0, &key);

    /* A target that holds another store, even one the same key file opens. */
    tu_rmtree(f->dir);
    ck_options io = key_opts(f);
    assert_int_equal(ck_init(&f->st, f->dir, &io), CK_OK);
    ck_close(f->st);
    f->st = open_dir(f, f->dir);
    ck_close(f->st);
    f->st = NULL;
    /* (the backup is intact again for this one: repair the record) */
    assert_int_equal(ck_open(&b, bdir, &wo), CK_OK);
    assert_int_equal(mdb_txn_begin(b->data.env, NULL, 0, &t), 0);
    rec[rlen - 1] ^= 0x01;
    v.mv_data = rec;
    v.mv_size = rlen;
    assert_int_equal(mdb_put(t, b->dbi_subjects, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    ck_close(b);
    free(rec);
    assert_refused(f, bdir, CK_EEXIST, NULL, 0, &key);
    f->st = open_dir(f, f->dir); /* for teardown */
}

/* Tombstones left before erasures tagged the subject's id (or given in a
 * file that lacks the id's tag) match by ref and by identifying value,
 * with the creation-time guard; an erasure cut short in the backup is
 * finished. */
static int64_t fake_now;
static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void write_tombfile(ck_store *st, const char *path, const ck_tombset *s)
{
    ck_buf out = CK_BUF_INIT;
    unsigned char *key = ck_store__key_take(st);
    ck_tombfile__mac_key(key, st);
    assert_int_equal(ck_tombfile__serialize(&out, st->store_id, s, key), CK_OK);
    ck_store__key_give(st, key);
    tu_write_file(path, out.p, out.len, 0600);
    ck_buf__free(&out);
}

static void ref_tag(ck_store *st, const char *ref, uint8_t tag[CK_TOMB_BYTES])
{
    uint8_t key[CK_INDEX_KEY_BYTES];
    ck_buf norm = CK_BUF_SECURE_INIT;
    assert_int_equal(ck_subject__unique_key(key, tag, st, CK_INDEX_REF, ref, strlen(ref), &norm),
                     CK_OK);
    ck_buf__free(&norm);
}

static int drop_key_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    return ck_keyring__delete(st, ktxn, ctx);
}

static void test_restore_matching(void **state)
{
    fx *f = *state;
    ck_close(f->st);
    f->st = NULL;
    tu_rmtree(f->dir);
    ck_options o = key_opts(f);
    o.clock = fake_clock;
    fake_now = 1000000;
    assert_int_equal(ck_init(&f->st, f->dir, &o), CK_OK);
    assert_int_equal(ck_schema_apply(f->st, SCHEMA, strlen(SCHEMA), 0, NULL), CK_OK);
    /* L-1: ref tag at an erasure after its creation: erased again.
     * L-2: ref tag of an erasure BEFORE it was created: someone new, kept.
     * A no-ref subject whose e-mail has a tag: erased again; R-9, with a
     * ref, shares that e-mail (a family address): kept.
     * U-1: its erasure was cut in the backup (key gone, records left). */
    import_text(f->st,
                "{\"ref\":\"L-1\",\"fields\":{\"city\":\"Dinan\"}}\n"
                "{\"ref\":\"L-2\",\"fields\":{\"city\":\"Vitre\"}}\n"
                "{\"ref\":\"R-9\",\"fields\":{\"email\":\"fam@example.fr\",\"city\":\"Dol\"}}\n"
                "{\"ref\":\"U-1\",\"fields\":{\"city\":\"Fougeres\"}}\n",
                0);
    unsigned char anon[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_create(anon, f->st, NULL, 0), CK_OK);
    char hex[33];
    ck_subject_id_hex(hex, anon);
    ck_who wa = {CK_BY_ID, hex, 0, NULL, NULL, NULL};
    assert_int_equal(
        ck_put_json(NULL, f->st, &wa, "{\"email\":\"fam@example.fr\",\"city\":\"Dol\"}", 39, 0),
        CK_OK);
    ck_who wu = {CK_BY_REF, "U-1", 0, NULL, NULL, NULL};
    unsigned char usid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(usid, f->st, &wu), CK_OK);
    assert_int_equal(ck_env__write(f->st, &f->st->keyring, drop_key_txn, usid), CK_OK);

    char bdir[PATH_MAX], tfile[PATH_MAX], err[CK_ERRMSG_MAX];
    tu_path(bdir, sizeof bdir, f->root, "backup");
    tu_path(tfile, sizeof tfile, f->root, "tombs");
    assert_int_equal(ck_backup(f->st, bdir, "dpo"), CK_OK);

    ck_tombset s = CK_TOMBSET_INIT;
    uint8_t tag[CK_TOMB_BYTES];
    ref_tag(f->st, "L-1", tag);
    assert_int_equal(ck_tombset__add(&s, tag, 2000000), CK_OK);
    ref_tag(f->st, "L-2", tag);
    assert_int_equal(ck_tombset__add(&s, tag, 999999), CK_OK);
    ck_subject__tomb_tag(tag, f->st, CK_INDEX_FIELD, 1, (const uint8_t *)"fam@example.fr", 14);
    assert_int_equal(ck_tombset__add(&s, tag, 2000000), CK_OK);
    ck_tombset__seal(&s);
    write_tombfile(f->st, tfile, &s);
    ck_tombset__free(&s);
    ck_close(f->st);
    f->st = NULL;

    fake_now = 3000000;
    ck_options ro = key_opts(f);
    ro.clock = fake_clock;
    ro.errbuf = err;
    ro.errbuf_max = sizeof err;
    ck_restore_options rop = CK_RESTORE_OPTIONS_INIT;
    rop.actor = "dpo";
    const char *files[] = {tfile};
    rop.tombstone_files = files;
    rop.n_tombstone_files = 1;
    ck_restore_result res = CK_RESTORE_RESULT_INIT;
    int rc = ck_restore(&res, f->dir, bdir, &ro, &rop);
    if (rc != CK_OK)
        fail_msg("restore: %s", err);
    assert_int_equal(res.subjects, 5);
    assert_int_equal(res.replayed, 3);
    assert_int_equal(res.replayed_by_ref, 1);
    assert_int_equal(res.replayed_by_value, 1);
    assert_int_equal(res.replayed_unfinished, 1);
    assert_int_equal(res.replayed_by_id, 0);
    ck_free(res.kept);

    f->st = open_dir(f, f->dir);
    unsigned char got[CK_SUBJECT_ID_BYTES];
    ck_who wl1 = {CK_BY_REF, "L-1", 0, NULL, NULL, NULL};
    assert_int_equal(ck_subject_find(got, f->st, &wl1), CK_ENOTFOUND);
    assert_int_equal(ck_subject_find(got, f->st, &wa), CK_ENOTFOUND);
    assert_int_equal(ck_subject_find(got, f->st, &wu), CK_ENOTFOUND);
    assert_int_equal(dir_contains(f->dir, usid, sizeof usid), 0);
    assert_int_equal(dir_contains(f->dir, anon, sizeof anon), 0);
    assert_whole(f->st, "L-2", "Vitre");
    assert_whole(f->st, "R-9", "Dol");
    ck_who wf = {CK_BY_LOOKUP, "fam@example.fr", 0, "email", NULL, NULL};
    assert_int_equal(ck_subject_find(got, f->st, &wf), CK_OK); /* R-9 alone now */
    assert_int_equal(segment_count(f->st), 2);
    /* The file's times were kept: L-2's tag still predates L-2. */
    ck_tombset now = CK_TOMBSET_INIT;
    assert_int_equal(ck_tombset__load(&now, f->st, NULL), CK_OK);
    ck_tombset__seal(&now);
    ref_tag(f->st, "L-2", tag);
    assert_int_equal(ck_tombset__find(&now, tag)->at, 999999);
    ref_tag(f->st, "L-1", tag);
    assert_int_equal(ck_tombset__find(&now, tag)->at, 2000000);
    ck_tombset__free(&now);
    assert_log_verifies(f->st);
}

/* A process that waits to open a store while a restore holds it, and is
 * let in after the directory was exchanged, locks the new store's lock
 * file - not the old one's, which has moved away - so that a compaction
 * or a restore of the new store sees it. */
static void test_open_waits_for_restore(void **state)
{
    fx *f = *state;
    char bdir[PATH_MAX], aside[PATH_MAX], lock[PATH_MAX];
    tu_path(bdir, sizeof bdir, f->root, "backup");
    tu_path(aside, sizeof aside, f->root, "aside");
    assert_int_equal(ck_backup(f->st, bdir, "dpo"), CK_OK);
    ck_close(f->st);
    f->st = NULL;
    tu_path(lock, sizeof lock, f->dir, CK_LOCK_FILE);
    int held = open(lock, O_RDWR);
    assert_true(held >= 0);
    assert_int_equal(flock(held, LOCK_EX), 0); /* as a restore holds it */

    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(held); /* the lock stays the parent's */
        close(ready[0]);
        close(go[1]); /* so that a parent gone away reads as end of file */
        ck_options o = key_opts(f);
        ck_store *st = NULL;
        char c = ck_open(&st, f->dir, &o) == CK_OK ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(2);
        ck_close(st);
        _exit(0);
    }
    usleep(300000); /* the child is now waiting for the lock */
    assert_int_equal(rename(f->dir, aside), 0);
    assert_int_equal(rename(bdir, f->dir), 0);
    close(held);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    /* The new store is held (shared) by the child; the old one by nobody. */
    int fd = open(lock, O_RDWR);
    assert_true(fd >= 0);
    assert_int_not_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
    tu_path(lock, sizeof lock, aside, CK_LOCK_FILE);
    fd = open(lock, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
    assert_int_equal(write(go[1], "x", 1), 1);
    int ws;
    assert_int_equal(waitpid(child, &ws, 0), child);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    f->st = open_dir(f, f->dir);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tombset),
        cmocka_unit_test_setup_teardown(test_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombfile_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_with_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_waits_for_restore, setup, teardown),
    };
    return cmocka_run_group_tests_name("restore", tests, NULL, NULL);
}
