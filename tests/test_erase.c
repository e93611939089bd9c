/*
 * test_erase.c - erasure: the receipt, nothing of the subject reachable or
 * decryptable afterwards, no copy of its wrapped data key left anywhere in
 * the keyring file, tombstones that stop a re-import or a re-creation,
 * erasing twice, and the audit entry.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "hold.h"

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fixture.h"

static const char SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"service\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\"]},\"news\":{\"basis\":\"consent\",\"description\":\"d\","
    "\"benefit\":\"b\",\"fields\":[\"email\"],\"channel\":{\"type\":\"email\",\"field\":"
    "\"email\",\"cap\":{\"count\":3,\"days\":7}}},"
    "\"records\":{\"basis\":\"legal_obligation\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"city\"],\"hold\":{\"fields\":[\"city\"],\"days\":30}}}}";

typedef tu_fx fx; /* tests/fixture.h */

static int setup(void **state)
{
    return tu_fx_setup(state, "erase", TU_FX_WALL_CLOCK, CK_INIT_CREATE_KEY_FILE, SCHEMA);
}

static int teardown(void **state)
{
    return tu_fx_teardown(state);
}

static void import_text(fx *f, const char *text, unsigned flags, ck_import_stats *s)
{
    ck_importer *imp;
    ck_import_options o = CK_IMPORT_OPTIONS_INIT;
    o.flags = flags;
    assert_int_equal(ck_import_begin(&imp, f->st, &o), CK_OK);
    assert_int_equal(ck_import_feed(imp, text, strlen(text)), CK_OK);
    assert_int_equal(ck_import_finish(imp, s), CK_OK);
}

/* The wrapped-key record of `sid` as it is in the keyring now. */
static void keyring_record(fx *f, const unsigned char sid[CK_SUBJECT_ID_BYTES],
                           uint8_t out[CK_KEYRING_RECORD_BYTES])
{
    MDB_txn *t;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->keyring, &t), CK_OK);
    MDB_val k = {CK_SUBJECT_ID_BYTES, (void *)sid}, v;
    assert_int_equal(mdb_get(t, f->st->dbi_keyring, &k, &v), 0);
    assert_int_equal(v.mv_size, CK_KEYRING_RECORD_BYTES);
    memcpy(out, v.mv_data, CK_KEYRING_RECORD_BYTES);
    ck_env__read_end(&f->st->keyring, t);
}

static void test_erase(void **state)
{
    fx *f = *state;
    ck_import_stats s;
    import_text(f,
                "{\"ref\":\"E-1\",\"fields\":{\"email\":\"erin@example.fr\",\"city\":\"Brest\"},"
                "\"consent\":{\"news\":true}}\n"
                "{\"ref\":\"E-2\",\"fields\":{\"email\":\"other@example.fr\",\"city\":\"Brest\"},"
                "\"consent\":{\"news\":true}}\n",
                0, &s);
    assert_int_equal(s.imported, 2);
    ck_who w = {CK_BY_REF, "E-1", 0, NULL, NULL, NULL};
    assert_int_equal(ck_contact_record(f->st, &w, "email", "mailer"), CK_OK);
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
    /* Rewrite the key's page a few times so that stale copies exist. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ck_subject_create(NULL, f->st, NULL, 0), CK_OK);
    uint8_t rec[CK_KEYRING_RECORD_BYTES];
    keyring_record(f, sid, rec);
    char kpath[PATH_MAX];
    tu_path(kpath, sizeof kpath, f->dir, "keyring.mdb");
    assert_int_equal(tu_file_contains(kpath, rec, sizeof rec), 1);

    /* bad reason codes change nothing */
    assert_int_equal(ck_erase(NULL, f->st, &w, "customer asked", "dpo"), CK_EINVAL);
    assert_int_equal(ck_erase(NULL, f->st, &w, "", "dpo"), CK_EINVAL);
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);

    char *receipt = NULL;
    assert_int_equal(ck_erase(&receipt, f->st, &w, "art17-request", "dpo"), CK_OK);
    json_t *j = json_loads(receipt, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "erased")));
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "art17-request");
    json_t *del = json_object_get(j, "deleted");
    assert_int_equal(json_integer_value(json_object_get(del, "values")), 2);
    assert_int_equal(json_integer_value(json_object_get(del, "consents")), 1);
    assert_int_equal(json_integer_value(json_object_get(del, "contacts")), 1);
    assert_int_equal(json_integer_value(json_object_get(del, "index_entries")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "tombstones")), 2);
    assert_true(json_integer_value(json_object_get(j, "keyring_copies_scrubbed")) >= 1);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "subject"))), 32);
    json_decref(j);
    ck_free(receipt);

    /* Nothing reachable; no copy of the wrapped key anywhere in the keyring. */
    unsigned char got[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(got, f->st, &w), CK_ENOTFOUND);
    ck_who we = {CK_BY_LOOKUP, "erin@example.fr", 0, "email", NULL, NULL};
    assert_int_equal(ck_subject_find(got, f->st, &we), CK_ENOTFOUND);
    char hex[33];
    ck_subject_id_hex(hex, sid);
    ck_who wi = {CK_BY_ID, hex, 0, NULL, NULL, NULL};
    assert_int_equal(ck_subject_find(got, f->st, &wi), CK_ENOTFOUND);
    assert_int_equal(tu_file_contains(kpath, rec, sizeof rec), 0);
    /* Not even after reopening (the scrub reached the file, not a cache). */
    ck_close(f->st);
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    assert_int_equal(ck_open(&f->st, f->dir, &o), CK_OK);
    assert_int_equal(tu_file_contains(kpath, rec, sizeof rec), 0);

    /* Erasing twice: not found. The other subject is untouched. */
    assert_int_equal(ck_erase(NULL, f->st, &w, "art17-request", "dpo"), CK_ENOTFOUND);
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "news";
    r.subject.by = CK_BY_REF;
    r.subject.value = "E-2";
    ck_result *res;
    assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
    assert_int_equal(ck_result_field(res, 0)->reason, CK_RELEASED);
    ck_result_free(res);
    ck_segment_request q = CK_SEGMENT_INIT;
    q.actor = "t";
    q.purpose = "news";
    ck_cursor *c;
    assert_int_equal(ck_segment(&c, f->st, &q), CK_OK);
    const ck_result *sr;
    int n = 0;
    while (ck_segment_next(c, &sr) == CK_OK)
        n++;
    ck_cursor_free(c);
    assert_int_equal(n, 1);

    /* Tombstones: the old file does not bring the customer back... */
    const char *old =
        "{\"ref\":\"E-1\",\"fields\":{\"city\":\"Brest\"},\"consent\":{\"news\":true}}\n";
    import_text(f, old, 0, &s);
    assert_int_equal(s.imported, 0);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(ck_subject_find(got, f->st, &w), CK_ENOTFOUND);
    assert_int_equal(ck_put_json(NULL, f->st, &w, "{\"city\":\"Brest\"}", 16, CK_PUT_CREATE),
                     CK_EDENIED);
    assert_int_equal(ck_subject_create(NULL, f->st, "E-1", 0), CK_EDENIED);
    /* ...unless asked: then as a new subject, with only the new consents. */
    import_text(f, old, CK_IMPORT_RECREATE_ERASED, &s);
    assert_int_equal(s.created, 1);
    assert_int_equal(ck_subject_find(got, f->st, &w), CK_OK);
    assert_memory_not_equal(got, sid, sizeof sid);

    /* The audit log has the erasure and verifies. */
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "erase";
    ck_audit_cursor *ac;
    assert_int_equal(ck_audit_query(&ac, f->st, &flt), CK_OK);
    const ck_audit_record *ar;
    n = 0;
    while (ck_audit_next(ac, &ar) == CK_OK)
        n++;
    ck_audit_cursor_free(ac);
    assert_int_equal(n, 1);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);
}

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

/* A backup made after an erasure holds no byte of the erased subject: not
 * its id (raw or hex), not its ref's blind-index key, not its wrapped key;
 * it opens with the same key and has everyone else. */
static void test_backup_after_erase(void **state)
{
    fx *f = *state;
    ck_import_stats s;
    char text[8192];
    size_t len = 0;
    for (int i = 0; i < 50; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "{\"ref\":\"B-%d\",\"fields\":{\"email\":\"b%d@example.fr\","
                                "\"city\":\"Lille\"},\"consent\":{\"news\":true}}\n",
                                i, i);
    import_text(f, text, 0, &s);
    assert_int_equal(s.imported, 50);
    ck_who w = {CK_BY_REF, "B-7", 0, NULL, NULL, NULL};
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
    char hex[33];
    ck_subject_id_hex(hex, sid);
    uint8_t rec[CK_KEYRING_RECORD_BYTES], ixkey[CK_INDEX_KEY_BYTES];
    keyring_record(f, sid, rec);
    ck_buf norm = CK_BUF_SECURE_INIT;
    assert_int_equal(ck_subject__unique_key(ixkey, NULL, f->st, CK_INDEX_REF, "B-7", 3, &norm),
                     CK_OK);
    ck_buf__free(&norm);
    /* the live store holds them */
    assert_true(dir_contains(f->dir, sid, sizeof sid) > 0);
    assert_true(dir_contains(f->dir, ixkey, sizeof ixkey) > 0);

    assert_int_equal(ck_erase(NULL, f->st, &w, "art17-request", "dpo"), CK_OK);
    char bdir[PATH_MAX];
    tu_path(bdir, sizeof bdir, f->root, "backup");
    assert_int_equal(ck_backup(f->st, bdir, "dpo"), CK_OK);
    assert_int_equal(ck_backup(f->st, bdir, "dpo"), CK_EEXIST);

    assert_int_equal(dir_contains(bdir, sid, sizeof sid), 0);
    assert_int_equal(dir_contains(bdir, hex, 32), 0);
    assert_int_equal(dir_contains(bdir, ixkey, sizeof ixkey), 0);
    assert_int_equal(dir_contains(bdir, rec, sizeof rec), 0);

    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    ck_store *b = NULL;
    assert_int_equal(ck_open(&b, bdir, &o), CK_OK);
    unsigned char got[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(got, b, &w), CK_ENOTFOUND);
    ck_who w8 = {CK_BY_REF, "B-8", 0, NULL, NULL, NULL};
    assert_int_equal(ck_subject_find(got, b, &w8), CK_OK);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, b, NULL), CK_OK);
    ck_close(b);
}

/* Compaction: after it, no file of the store directory holds a byte of
 * the erased subject; refused while another process has the store open. */
static void test_compact_after_erase(void **state)
{
    fx *f = *state;
    ck_import_stats s;
    char text[8192];
    size_t len = 0;
    for (int i = 0; i < 50; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "{\"ref\":\"K-%d\",\"fields\":{\"email\":\"k%d@example.fr\","
                                "\"city\":\"Arras\"},\"consent\":{\"news\":true}}\n",
                                i, i);
    import_text(f, text, 0, &s);
    ck_who w = {CK_BY_REF, "K-3", 0, NULL, NULL, NULL};
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
    char hex[33];
    ck_subject_id_hex(hex, sid);
    uint8_t rec[CK_KEYRING_RECORD_BYTES], ixkey[CK_INDEX_KEY_BYTES];
    keyring_record(f, sid, rec);
    ck_buf norm = CK_BUF_SECURE_INIT;
    assert_int_equal(ck_subject__unique_key(ixkey, NULL, f->st, CK_INDEX_REF, "K-3", 3, &norm),
                     CK_OK);
    ck_buf__free(&norm);
    char *receipt = NULL;
    assert_int_equal(ck_erase(&receipt, f->st, &w, "art17-request", "dpo"), CK_OK);
    /* The subject leaves a hold of its city (the "records" purpose). */
    json_t *rj = json_loads(receipt, 0, NULL);
    ck_free(receipt);
    char hold_id[CK_HOLD_ID_CHARS + 1];
    json_t *h0 = json_array_get(json_object_get(rj, "holds"), 0);
    assert_non_null(h0);
    snprintf(hold_id, sizeof hold_id, "%s", json_string_value(json_object_get(h0, "hold")));
    json_decref(rj);

    /* Another process holds the store open: refused, nothing changed. */
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        ck_options o = CK_OPTIONS_INIT;
        o.key_file = f->key;
        ck_store *other = NULL;
        char c = ck_open(&other, f->dir, &o) == CK_OK ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(2);
        ck_close(other);
        _exit(0);
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    assert_int_equal(ck_compact(f->st, "dpo"), CK_EBUSY);
    assert_int_equal(write(go[1], "x", 1), 1);
    int ws;
    assert_int_equal(waitpid(child, &ws, 0), child);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);

    assert_int_equal(ck_compact(f->st, "dpo"), CK_OK);
    assert_int_equal(dir_contains(f->dir, sid, sizeof sid), 0);
    assert_int_equal(dir_contains(f->dir, hex, 32), 0);
    assert_int_equal(dir_contains(f->dir, ixkey, sizeof ixkey), 0);
    assert_int_equal(dir_contains(f->dir, rec, sizeof rec), 0);
    /* The hold survives the compaction, with the kept value only. */
    char *held = NULL;
    assert_int_equal(ck_hold_get(&held, f->st, hold_id, "auditor"), CK_OK);
    assert_non_null(strstr(held, "\"fields\":{\"city\":\"Arras\"}"));
    ck_free(held);

    /* The handle goes on working on the new files, and so does a reopen. */
    unsigned char got[CK_SUBJECT_ID_BYTES];
    ck_who w4 = {CK_BY_REF, "K-4", 0, NULL, NULL, NULL};
    assert_int_equal(ck_subject_find(got, f->st, &w4), CK_OK);
    assert_int_equal(ck_put_json(NULL, f->st, &w4, "{\"city\":\"Lens\"}", 15, 0), CK_OK);
    ck_close(f->st);
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    assert_int_equal(ck_open(&f->st, f->dir, &o), CK_OK);
    assert_int_equal(ck_subject_find(got, f->st, &w4), CK_OK);
    assert_int_equal(ck_subject_find(got, f->st, &w), CK_ENOTFOUND);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);
}

static int drop_key_txn(ck_store *st, MDB_txn *ktxn, void *ctx)
{
    return ck_keyring__delete(st, ktxn, ctx);
}

/* An erasure cut after its key was destroyed and before its data commit
 * leaves records nothing can open; erasing again finishes it, finding the
 * index entries without the record. */
static void test_erase_finishes_an_interrupted_one(void **state)
{
    fx *f = *state;
    ck_import_stats s;
    import_text(f,
                "{\"ref\":\"H-1\",\"fields\":{\"email\":\"h1@example.fr\"},"
                "\"consent\":{\"news\":true}}\n",
                0, &s);
    ck_who w = {CK_BY_REF, "H-1", 0, NULL, NULL, NULL};
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
    assert_int_equal(ck_env__write(f->st, &f->st->keyring, drop_key_txn, sid), CK_OK);
    /* The record is still indexed but cannot be released. */
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "service";
    r.subject = w;
    ck_result *res = NULL;
    assert_int_equal(ck_release(&res, f->st, &r), CK_ENOTFOUND);
    char *receipt = NULL;
    assert_int_equal(ck_erase(&receipt, f->st, &w, "art17-request", "dpo"), CK_OK);
    assert_non_null(strstr(receipt, "\"index_entries\":2"));
    assert_non_null(strstr(receipt, "\"values\":1"));
    ck_free(receipt);
    unsigned char got[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(got, f->st, &w), CK_ENOTFOUND);
    ck_who we = {CK_BY_LOOKUP, "h1@example.fr", 0, "email", NULL, NULL};
    assert_int_equal(ck_subject_find(got, f->st, &we), CK_ENOTFOUND);
    assert_int_equal(ck_erase(NULL, f->st, &w, "art17-request", "dpo"), CK_ENOTFOUND);
}

typedef struct batch_seen {
    int rc[32];
    char *receipt[32];
    size_t calls;
    size_t last;
} batch_seen;

static void on_one(void *ctx, size_t i, int rc, const char *receipt)
{
    batch_seen *b = ctx;
    assert_true(i < 32);
    /* Once per subject, in order. */
    assert_int_equal(i, b->calls);
    b->calls++;
    b->rc[i] = rc;
    b->receipt[i] = receipt != NULL ? strdup(receipt) : NULL;
    assert_true((rc == CK_OK) == (receipt != NULL));
}

/* A batch: every subject named is erased (receipts, keys scrubbed, holds
 * kept), a ref that names nobody - unknown, empty, or listed twice - is
 * reported and left, and the others are erased all the same. */
static void test_erase_many(void **state)
{
    fx *f = *state;
    ck_import_stats s;
    char text[8192];
    size_t len = 0;
    for (int i = 0; i < 20; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "{\"ref\":\"B-%d\",\"fields\":{\"email\":\"b%d@example.fr\"%s},"
                                "\"consent\":{\"news\":true}}\n",
                                i, i, i % 2 == 0 ? ",\"city\":\"Lille\"" : "");
    import_text(f, text, 0, &s);
    assert_int_equal(s.imported, 20);
    static const char *const refs[] = {"B-0", "B-1", "B-2", "B-3",  "B-4", "B-5", "B-6",
                                       "B-7", "B-8", "B-9", "NOPE", "B-3", ""};
    ck_who who[14];
    for (size_t i = 0; i < CK_ARRAY_LEN(refs); i++)
        who[i] = (ck_who){CK_BY_REF, refs[i], 0, NULL, NULL, NULL};
    who[13] = (ck_who){CK_BY_LOOKUP, "B11@example.fr", 0, "email", NULL, NULL};
    uint8_t recs[14][CK_KEYRING_RECORD_BYTES];
    char kpath[PATH_MAX];
    tu_path(kpath, sizeof kpath, f->dir, "keyring.mdb");
    for (size_t i = 0; i < 14; i++) {
        unsigned char sid[CK_SUBJECT_ID_BYTES];
        if (i >= 10 && i < 13)
            continue;
        assert_int_equal(ck_subject_find(sid, f->st, &who[i]), CK_OK);
        keyring_record(f, sid, recs[i]);
        assert_int_equal(tu_file_contains(kpath, recs[i], sizeof recs[i]), 1);
    }

    /* Bad arguments change nothing. */
    batch_seen b;
    memset(&b, 0, sizeof b);
    uint64_t erased = 99;
    assert_int_equal(ck_erase_many(&erased, f->st, who, 14, "not a code", "dpo", on_one, &b),
                     CK_EINVAL);
    assert_int_equal(erased, 0);
    assert_int_equal(ck_erase_many(&erased, f->st, who, 14, "art17", NULL, on_one, &b), CK_EINVAL);
    assert_int_equal(b.calls, 0);
    assert_int_equal(ck_erase_many(&erased, f->st, who, 0, "art17", "dpo", on_one, &b), CK_OK);
    assert_int_equal(erased, 0);

    assert_int_equal(ck_erase_many(&erased, f->st, who, 14, "art17-request", "dpo", on_one, &b),
                     CK_OK);
    assert_int_equal(b.calls, 14);
    assert_int_equal(erased, 11);
    uint64_t last_seq = 0;
    for (size_t i = 0; i < 14; i++) {
        int want = i == 10 || i == 11 ? CK_ENOTFOUND : i == 12 ? CK_EINVAL : CK_OK;
        assert_int_equal(b.rc[i], want);
        if (want != CK_OK)
            continue;
        json_t *j = json_loads(b.receipt[i], 0, NULL);
        assert_non_null(j);
        assert_true(json_is_true(json_object_get(j, "erased")));
        assert_string_equal(json_string_value(json_object_get(j, "reason")), "art17-request");
        assert_true(json_integer_value(json_object_get(j, "keyring_copies_scrubbed")) >= 1);
        json_t *del = json_object_get(j, "deleted");
        /* B-even and B-10..: email and city; B-odd: email only. */
        size_t idx = i == 13 ? 11 : i;
        assert_int_equal(json_integer_value(json_object_get(del, "values")), idx % 2 ? 1 : 2);
        assert_int_equal(json_array_size(json_object_get(j, "holds")), idx % 2 ? 0 : 1);
        /* One audit entry each (plus one per hold), in order. */
        uint64_t seq =
            (uint64_t)json_integer_value(json_object_get(json_object_get(j, "audit"), "seq"));
        assert_true(seq > last_seq);
        last_seq = seq;
        json_decref(j);
        /* Gone, and no copy of its wrapped key left in the keyring file. */
        unsigned char got[CK_SUBJECT_ID_BYTES];
        assert_int_equal(ck_subject_find(got, f->st, &who[i]), CK_ENOTFOUND);
        assert_int_equal(tu_file_contains(kpath, recs[i], sizeof recs[i]), 0);
    }
    for (size_t i = 0; i < 14; i++)
        free(b.receipt[i]);
    /* The others are whole. */
    for (int i = 10; i < 20; i++) {
        if (i == 11)
            continue;
        char ref[8];
        snprintf(ref, sizeof ref, "B-%d", i);
        ck_request r = CK_REQUEST_INIT;
        r.actor = "t";
        r.purpose = "service";
        r.subject = (ck_who){CK_BY_REF, ref, 0, NULL, NULL, NULL};
        ck_result *res;
        assert_int_equal(ck_release(&res, f->st, &r), CK_OK);
        assert_int_equal(ck_result_field(res, 0)->reason, CK_RELEASED);
        ck_result_free(res);
    }
    /* Tombstones hold them off as for ck_erase. */
    assert_int_equal(ck_subject_create(NULL, f->st, "B-4", 0), CK_EDENIED);
    ck_audit_filter flt = CK_AUDIT_FILTER_INIT;
    flt.action = "erase";
    ck_audit_cursor *ac;
    assert_int_equal(ck_audit_query(&ac, f->st, &flt), CK_OK);
    const ck_audit_record *ar;
    int n = 0;
    while (ck_audit_next(ac, &ar) == CK_OK)
        n++;
    ck_audit_cursor_free(ac);
    assert_int_equal(n, 11);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, f->st, NULL), CK_OK);

    /* Again: every one is reported, nothing erased. */
    memset(&b, 0, sizeof b);
    assert_int_equal(ck_erase_many(&erased, f->st, who, 14, "art17-request", "dpo", on_one, &b),
                     CK_OK);
    assert_int_equal(erased, 0);
    for (size_t i = 0; i < 14; i++)
        assert_int_equal(b.rc[i], i == 12 ? CK_EINVAL : CK_ENOTFOUND);
}

/* More subjects than one chunk: every one erased, in several chunks. */
static void test_erase_many_chunks(void **state)
{
    fx *f = *state;
    enum { N = 2100 };
    size_t cap = (size_t)N * 64, len = 0;
    char *text = malloc(cap);
    static char refs[N][12];
    static ck_who who[N];
    for (int i = 0; i < N; i++) {
        len += (size_t)snprintf(text + len, cap - len,
                                "{\"ref\":\"M-%d\",\"fields\":{\"city\":"
                                "\"Metz\"}}\n",
                                i);
        snprintf(refs[i], sizeof refs[i], "M-%d", i);
        who[i] = (ck_who){CK_BY_REF, refs[i], 0, NULL, NULL, NULL};
    }
    ck_import_stats s;
    import_text(f, text, 0, &s);
    free(text);
    assert_int_equal(s.imported, N);
    uint64_t erased = 0;
    assert_int_equal(ck_erase_many(&erased, f->st, who, N, "art17", "dpo", NULL, NULL), CK_OK);
    assert_int_equal(erased, N);
    ck_stats st = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&st, f->st), CK_OK);
    assert_int_equal(st.subjects, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_erase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_after_erase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_after_erase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_finishes_an_interrupted_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_many_chunks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
