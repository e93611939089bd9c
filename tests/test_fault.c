/*
 * test_fault.c - make the Nth allocation / write / fsync / transaction
 * begin or commit fail, for every N, through init, open, a key-slot change,
 * a sealed write, an import, a consent change, a release, a purge, an
 * export, a batch erasure, a restore, a compaction and a schema change. At every N the call must
 * fail cleanly (an error code, no crash, no leak under LeakSanitizer) and leave the store as it
 * was: nothing committed lost, nothing half-written visible; a restore leaves the old store or the
 * new one, whole.
 *
 * Needs a build with -DCK_FAULT_INJECTION=ON (the CI sanitizer build);
 * elsewhere every test is skipped, and says so.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "fault.h"
#include "store.h"
#include "testutil.h"

#ifdef CK_FAULT_INJECTION

#define MAX_N 100000ul

typedef struct fx {
    char *root;
    char dir[PATH_MAX];
    char key[PATH_MAX];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->root = tu_mkdtemp("fault");
    tu_path(f->dir, sizeof f->dir, f->root, "s");
    tu_path(f->key, sizeof f->key, f->root, "k");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ck_fault__arm(0);
    tu_rmtree(f->root);
    free(f->root);
    free(f);
    return 0;
}

static ck_options opts(const fx *f, unsigned flags)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    o.passphrase = "fault passphrase";
    o.passphrase_len = 16;
    o.kdf_cost = CK_KDF_MIN;
    o.flags = flags;
    return o;
}

/* A status a failed call may return under fault injection. */
static void assert_clean_failure(int rc)
{
    assert_true(rc == CK_ENOMEM || rc == CK_EIO || rc == CK_ENOSPC);
}

static void test_init_every_fault(void **state)
{
    fx *f = *state;
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        ck_options o = opts(f, CK_INIT_CREATE_KEY_FILE);
        ck_store *st = NULL;
        ck_fault__arm(n);
        int rc = ck_init(&st, f->dir, &o);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc == CK_OK) {
            ck_close(st);
            if (seen < n)
                break; /* the fault was never reached: every site covered */
            /* The fault hit a call whose failure is tolerated (e.g. an
             * error message slot): the store must still be whole. */
        } else {
            assert_clean_failure(rc);
            assert_null(st);
            /* Nothing is left: neither the store nor the key file it made. */
            if (access(f->dir, F_OK) == 0)
                fail_msg("init failed at fault %lu and left %s", n, f->dir);
            assert_int_equal(access(f->key, F_OK), -1);
            continue;
        }
        /* Succeeded despite the fault: it must open normally. */
        o = opts(f, 0);
        assert_int_equal(ck_open(&st, f->dir, &o), CK_OK);
        ck_close(st);
        tu_rmtree(f->dir);
        unlink(f->key);
    }
    assert_true(n > 10 && n < MAX_N);
}

static void test_open_every_fault(void **state)
{
    fx *f = *state;
    ck_options o = opts(f, CK_INIT_CREATE_KEY_FILE);
    assert_int_equal(ck_init(NULL, f->dir, &o), CK_OK);
    o = opts(f, 0);
    ck_store *st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK); /* lock files now exist */
    ck_close(st);
    unsigned char before[32], after[32];
    tu_digest_dir(before, f->dir);
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        st = NULL;
        if (getenv("CK_FAULT_TRACE"))
            fprintf(stderr, "open n=%lu\n", n);
        ck_fault__arm(n);
        int rc = ck_open(&st, f->dir, &o);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc == CK_OK) {
            ck_close(st);
            if (seen < n)
                break;
        } else {
            assert_clean_failure(rc);
            assert_null(st);
        }
        tu_digest_dir(after, f->dir);
        assert_memory_equal(before, after, 32); /* opening writes nothing */
    }
    assert_true(n > 5 && n < MAX_N);
}

/* A passphrase change either happens whole or not at all. */
static void test_slot_change_every_fault(void **state)
{
    fx *f = *state;
    ck_options o = opts(f, CK_INIT_CREATE_KEY_FILE);
    assert_int_equal(ck_init(NULL, f->dir, &o), CK_OK);
    char current[32] = "fault passphrase";
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        ck_options ko = CK_OPTIONS_INIT;
        ko.key_file = f->key;
        ck_store *st = NULL;
        assert_int_equal(ck_open(&st, f->dir, &ko), CK_OK);
        char newpass[32];
        int len = snprintf(newpass, sizeof newpass, "new %lu", n);
        ck_fault__arm(n);
        int rc = ck_slot_set_passphrase(st, newpass, (size_t)len, CK_KDF_MIN);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        ck_close(st);
        if (rc != CK_OK)
            assert_clean_failure(rc);

        /* Exactly one of the old and the new passphrase opens it (the new
         * one whenever the call succeeded; either after a failure, since the
         * final directory fsync may fail after the rename), and the key
         * file still does. */
        ck_options po = CK_OPTIONS_INIT;
        po.passphrase = newpass;
        po.passphrase_len = (size_t)len;
        int rc_new = ck_open(&st, f->dir, &po);
        ck_close(st);
        po.passphrase = current;
        po.passphrase_len = strlen(current);
        int rc_old = ck_open(&st, f->dir, &po);
        ck_close(st);
        if (rc == CK_OK)
            assert_int_equal(rc_new, CK_OK);
        assert_true((rc_new == CK_OK) != (rc_old == CK_OK));
        assert_true(rc_new == CK_OK || rc_new == CK_EKEY);
        assert_true(rc_old == CK_OK || rc_old == CK_EKEY);
        if (rc_new == CK_OK)
            memcpy(current, newpass, (size_t)len + 1);
        assert_int_equal(ck_open(&st, f->dir, &ko), CK_OK);
        ck_close(st);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 3 && n < MAX_N);
}

typedef struct put_ctx {
    uint8_t sid[16];
    unsigned char dk[32];
    const ck_value *v;
} put_ctx;

static int put_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    put_ctx *c = ctx;
    ck_buf scratch = CK_BUF_SECURE_INIT;
    int rc = CK_OK;
    for (uint16_t fld = 1; fld <= 20 && rc == CK_OK; fld++)
        rc = ck_seal__put(st, txn, c->sid, fld, c->dk, c->v, &scratch);
    ck_buf__free(&scratch);
    return rc;
}

static int key_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    put_ctx *c = ctx;
    return ck_keyring__create(st, txn, c->sid, c->dk);
}

/* A write transaction of 20 values commits all of them or none. */
static void test_sealed_write_every_fault(void **state)
{
    fx *f = *state;
    ck_options o = opts(f, CK_INIT_CREATE_KEY_FILE);
    ck_store *st = NULL;
    assert_int_equal(ck_init(&st, f->dir, &o), CK_OK);
    unsigned long n;
    ck_value v = {.type = CK_TYPE_STRING, .u.str = {"Marie Curie", 11}};
    for (n = 1; n < MAX_N; n++) {
        put_ctx c = {.v = &v};
        randombytes_buf(c.sid, sizeof c.sid);
        assert_int_equal(ck_env__write(st, &st->keyring, key_txn, &c), CK_OK);
        ck_fault__arm(n);
        int rc = ck_env__write(st, &st->data, put_txn, &c);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc != CK_OK)
            assert_clean_failure(rc);
        /* All or nothing. */
        MDB_txn *t;
        ck_arena a = CK_ARENA_INIT;
        assert_int_equal(ck_env__read_begin(st, &st->data, &t), CK_OK);
        for (uint16_t fld = 1; fld <= 20; fld++) {
            ck_value out;
            int g = ck_seal__get(st, t, c.sid, fld, c.dk, CK_TYPE_STRING, &out, &a);
            if (g != (rc == CK_OK ? CK_OK : CK_ENOTFOUND))
                fail_msg("fault %lu: write returned %d, field %u reads %d", n, rc, fld, g);
        }
        ck_env__read_end(&st->data, t);
        ck_arena__free(&a);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 2 && n < MAX_N);
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* Import, consent change and release, through the public API               */
/* ------------------------------------------------------------------------ */

static const char FAULT_SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"born\":{\"type\":\"date\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"news\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\"]},\"records\":{\"basis\":\"legal_obligation\","
    "\"description\":\"d\",\"benefit\":\"b\",\"fields\":[\"city\"],"
    "\"hold\":{\"fields\":[\"city\"],\"days\":30}}}}";

static ck_store *open_store(const fx *f)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    ck_store *st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK);
    return st;
}

static void make_store(const fx *f)
{
    ck_options o = opts(f, CK_INIT_CREATE_KEY_FILE);
    ck_store *st = NULL;
    assert_int_equal(ck_init(&st, f->dir, &o), CK_OK);
    assert_int_equal(ck_schema_apply(st, FAULT_SCHEMA, strlen(FAULT_SCHEMA), 0, NULL), CK_OK);
    ck_close(st);
}

static void assert_log_verifies(ck_store *st)
{
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    int rc = ck_audit_verify(&vr, st, NULL);
    if (rc != CK_OK)
        fail_msg("audit log does not verify: %s", ck_errmsg(st));
}

/* Subject `ref` holds both fields and its consent, or does not exist. */
static bool subject_whole(ck_store *st, const char *ref)
{
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "news";
    r.subject.by = CK_BY_REF;
    r.subject.value = ref;
    ck_result *res = NULL;
    int rc = ck_release(&res, st, &r);
    if (rc == CK_ENOTFOUND)
        return false;
    if (rc != CK_OK)
        fail_msg("release of %s: %s", ref, ck_errmsg(st));
    for (size_t i = 0; i < ck_result_count(res); i++)
        if (ck_result_field(res, i)->reason != CK_RELEASED)
            fail_msg("%s is half-written: %s %s", ref, ck_result_field(res, i)->field,
                     ck_reason_name(ck_result_field(res, i)->reason));
    ck_result_free(res);
    return true;
}

/* An import of 12 lines (2 bad) in batches of 4: at every fault the batches
 * committed before it are whole, the batch it hit is absent, and the log
 * verifies. */
static void test_import_every_fault(void **state)
{
    fx *f = *state;
    make_store(f);
    char text[4096] = "";
    size_t tl = 0;
    for (int i = 0; i < 12; i++) {
        char line[256];
        if (i == 3 || i == 9)
            snprintf(line, sizeof line, "{\"ref\":\"r%d\",\"fields\":{\"born\":\"2023-02-29\"}}\n",
                     i);
        else
            snprintf(line, sizeof line,
                     "{\"ref\":\"r%d\",\"fields\":{\"email\":\"p%d@x.fr\",\"city\":\"C%d\"},"
                     "\"consent\":{\"news\":true}}\n",
                     i, i, i);
        size_t ll = strlen(line);
        assert_true(tl + ll < sizeof text);
        memcpy(text + tl, line, ll + 1);
        tl += ll;
    }
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tu_rmtree(f->dir);
        unlink(f->key);
        make_store(f);
        ck_store *st = open_store(f);
        ck_import_options io = CK_IMPORT_OPTIONS_INIT;
        io.batch_lines = 4;
        ck_importer *imp = NULL;
        ck_import_stats s = {0};
        ck_fault__arm(n);
        int rc = ck_import_begin(&imp, st, &io);
        if (rc == CK_OK)
            rc = ck_import_feed(imp, text, strlen(text));
        if (imp != NULL) {
            int rc2 = ck_import_finish(imp, &s);
            if (rc == CK_OK)
                rc = rc2;
        }
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        ck_close(st); /* a failed fsync poisons the handle's log: reopen */
        st = open_store(f);
        if (rc != CK_OK)
            assert_clean_failure(rc);
        /* committed batches are whole and counted; nothing else exists */
        uint64_t present = 0;
        for (int i = 0; i < 12; i++) {
            char ref[8];
            snprintf(ref, sizeof ref, "r%d", i);
            if (subject_whole(st, ref)) {
                if (i == 3 || i == 9)
                    fail_msg("fault %lu: bad line %d landed", n, i + 1);
                present++;
            }
        }
        if (present != s.imported)
            fail_msg("fault %lu: %llu subjects present, %llu reported imported", n,
                     (unsigned long long)present, (unsigned long long)s.imported);
        if (rc == CK_OK)
            assert_int_equal(s.imported, 10);
        assert_log_verifies(st);
        ck_close(st);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 20 && n < MAX_N);
}

/* What the store holds about the subject of `ref` that an import can
 * change, as one line of text (the caller frees it): its values, the
 * state of each consent and the length of the consent history, and which
 * of the e-mails `mails` find it; "none" when there is no such subject.
 * Read through an export (the subject id and the times are left out: they
 * differ from one store to the next). */
static char *subject_state(ck_store *st, const char *ref, const char *const *mails, size_t nmails)
{
    ck_who w = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
    char *text = NULL;
    int rc = ck_export(&text, st, &w, "t", 0);
    if (rc == CK_ENOTFOUND)
        return strdup("none");
    if (rc != CK_OK)
        fail_msg("export of %s: %s", ref, ck_errmsg(st));
    json_t *all = json_loads(text, 0, NULL);
    ck_free(text);
    assert_non_null(all);
    json_t *out = json_object(), *fields = json_object(), *states = json_object(),
           *found = json_array();
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(all, "fields"), name, v)
        json_object_set(fields, name, json_object_get(v, "value"));
    json_t *consents = json_object_get(all, "consents");
    json_object_foreach(json_object_get(consents, "current"), name, v)
        json_object_set(states, name, json_object_get(v, "state"));
    unsigned char sid[CK_SUBJECT_ID_BYTES], by[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, st, &w), CK_OK);
    for (size_t i = 0; i < nmails; i++) {
        ck_who m = {CK_BY_LOOKUP, mails[i], 0, "email", NULL, NULL};
        if (ck_subject_find(by, st, &m) == CK_OK && memcmp(by, sid, sizeof sid) == 0)
            json_array_append_new(found, json_string(mails[i]));
    }
    json_object_set_new(out, "fields", fields);
    json_object_set_new(out, "consents", states);
    json_object_set_new(
        out, "history",
        json_integer((json_int_t)json_array_size(json_object_get(consents, "history"))));
    json_object_set_new(out, "found_by", found);
    char *line = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(line);
    json_decref(out);
    json_decref(all);
    return line;
}

/* An import batch that updates subjects (fields rewritten, deleted, an
 * e-mail changed, consents appended, one subject twice) and creates one,
 * with a rejected line among them: at every fault - the data puts through
 * the import's write cursors included - either the whole batch is there or
 * none of it: every subject exactly as before. */
static void test_import_upsert_every_fault(void **state)
{
    fx *f = *state;
    static const char base[] =
        "{\"ref\":\"u0\",\"fields\":{\"email\":\"u0@x.fr\",\"city\":\"Nantes\",\"born\":"
        "\"1980-01-01\"},\"consent\":{\"news\":true}}\n"
        "{\"ref\":\"u1\",\"fields\":{\"email\":\"u1@x.fr\",\"city\":\"Nantes\",\"born\":"
        "\"1981-01-01\"},\"consent\":{\"news\":true}}\n"
        "{\"ref\":\"u2\",\"fields\":{\"email\":\"u2@x.fr\",\"city\":\"Nantes\"}}\n"
        "{\"ref\":\"u3\",\"fields\":{\"email\":\"u3@x.fr\",\"city\":\"Nantes\",\"born\":"
        "\"1983-01-01\"},\"consent\":{\"news\":true}}\n";
    static const char update[] =
        "{\"ref\":\"u1\",\"fields\":{\"city\":\"Saint-Herblain\",\"born\":null}}\n"
        "{\"ref\":\"n1\",\"fields\":{\"email\":\"n1@x.fr\",\"city\":\"Vertou\"},"
        "\"consent\":{\"news\":true}}\n"
        "{\"ref\":\"u3\",\"fields\":{\"email\":\"new3@x.fr\"},\"consent\":{\"news\":false}}\n"
        "{\"ref\":\"u0\",\"fields\":{\"born\":\"2023-02-29\",\"city\":\"Rezé\"}}\n"
        "{\"ref\":\"u1\",\"fields\":{\"city\":\"Rennes\"},\"consent\":{\"news\":false}}\n"
        "{\"ref\":\"u2\",\"fields\":{\"born\":\"1982-02-02\"},\"consent\":{\"news\":true}}\n";
    static const char *const refs[] = {"u0", "u1", "u2", "u3", "n1"};
    static const char *const mails[] = {"u0@x.fr", "u1@x.fr",   "u2@x.fr",
                                        "u3@x.fr", "new3@x.fr", "n1@x.fr"};
    enum { NREFS = sizeof refs / sizeof refs[0], NMAILS = sizeof mails / sizeof mails[0] };
    char *before[NREFS], *after[NREFS];

    /* The states before and after, from a run without faults. */
    for (int pass = 0; pass < 2; pass++) {
        make_store(f);
        ck_store *st = open_store(f);
        ck_import_stats s = {0};
        ck_importer *imp = NULL;
        assert_int_equal(ck_import_begin(&imp, st, NULL), CK_OK);
        assert_int_equal(ck_import_feed(imp, base, strlen(base)), CK_OK);
        assert_int_equal(ck_import_finish(imp, &s), CK_OK);
        assert_int_equal(s.imported, 4);
        if (pass == 1) {
            assert_int_equal(ck_import_begin(&imp, st, NULL), CK_OK);
            assert_int_equal(ck_import_feed(imp, update, strlen(update)), CK_OK);
            assert_int_equal(ck_import_finish(imp, &s), CK_OK);
            assert_int_equal(s.updated, 4);
            assert_int_equal(s.created, 1);
            assert_int_equal(s.rejected, 1);
        }
        for (int i = 0; i < NREFS; i++)
            (pass == 0 ? before : after)[i] = subject_state(st, refs[i], mails, NMAILS);
        ck_close(st);
        tu_rmtree(f->dir);
        unlink(f->key);
    }
    assert_string_equal(before[4], "none");
    for (int i = 0; i < NREFS; i++)
        if (i != 0 && strcmp(before[i], after[i]) == 0)
            fail_msg("the update does not change %s", refs[i]);

    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        make_store(f);
        ck_store *st = open_store(f);
        ck_importer *imp = NULL;
        assert_int_equal(ck_import_begin(&imp, st, NULL), CK_OK);
        assert_int_equal(ck_import_feed(imp, base, strlen(base)), CK_OK);
        assert_int_equal(ck_import_finish(imp, NULL), CK_OK);
        ck_fault__arm(n);
        int rc = ck_import_begin(&imp, st, NULL);
        if (rc == CK_OK)
            rc = ck_import_feed(imp, update, strlen(update));
        if (imp != NULL) {
            int rc2 = ck_import_finish(imp, NULL);
            if (rc == CK_OK)
                rc = rc2;
        }
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        ck_close(st);
        st = open_store(f);
        if (rc != CK_OK)
            assert_clean_failure(rc);
        for (int i = 0; i < NREFS; i++) {
            char *now = subject_state(st, refs[i], mails, NMAILS);
            const char *want = rc == CK_OK ? after[i] : before[i];
            if (strcmp(now, want) != 0)
                fail_msg("fault %lu (rc %d): %s is\n%s\ninstead of\n%s", n, rc, refs[i], now, want);
            free(now);
        }
        assert_log_verifies(st);
        ck_close(st);
        tu_rmtree(f->dir);
        unlink(f->key);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 20 && n < MAX_N);
    for (int i = 0; i < NREFS; i++) {
        free(before[i]);
        free(after[i]);
    }
}

/* A consent change and a release: at every fault either done (and
 * audited) or not done at all; a release whose audit entry cannot be
 * written releases nothing. */
static void test_consent_release_every_fault(void **state)
{
    fx *f = *state;
    make_store(f);
    ck_store *st = open_store(f);
    ck_who w = {CK_BY_REF, "c1", 0, NULL, NULL, NULL};
    const char *js = "{\"email\":\"c1@x.fr\",\"city\":\"Rennes\"}";
    assert_int_equal(ck_put_json(NULL, st, &w, js, strlen(js), CK_PUT_CREATE), CK_OK);
    ck_close(st);
    ck_consent_state want = CK_CONSENT_GRANTED;
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        st = open_store(f);
        ck_consent c = CK_CONSENT_INIT;
        c.purpose = "news";
        c.state = want;
        ck_fault__arm(n);
        int rc = ck_consent_record(st, &w, &c, "dpo");
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        ck_close(st);
        st = open_store(f);
        if (rc != CK_OK)
            assert_clean_failure(rc);
        ck_request r = CK_REQUEST_INIT;
        r.actor = "t";
        r.purpose = "news";
        r.subject = w;
        ck_result *res = NULL;
        assert_int_equal(ck_release(&res, st, &r), CK_OK);
        ck_reason got = ck_result_field(res, 0)->reason;
        ck_result_free(res);
        if (rc == CK_OK) {
            assert_int_equal(got, want == CK_CONSENT_GRANTED ? CK_RELEASED : CK_WITHHELD_WITHDRAWN);
            want = want == CK_CONSENT_GRANTED ? CK_CONSENT_WITHDRAWN : CK_CONSENT_GRANTED;
        }
        assert_log_verifies(st);
        ck_close(st);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 5 && n < MAX_N);
    for (n = 1; n < MAX_N; n++) {
        st = open_store(f);
        ck_request r = CK_REQUEST_INIT;
        r.actor = "t";
        r.purpose = "news";
        r.subject = w;
        ck_result *res = NULL;
        ck_fault__arm(n);
        int rc = ck_release(&res, st, &r);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc != CK_OK) {
            assert_clean_failure(rc);
            assert_null(res);
        }
        ck_result_free(res);
        ck_close(st);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 5 && n < MAX_N);
}

/* ------------------------------------------------------------------------ */
/* Purge                                                                     */
/* ------------------------------------------------------------------------ */

#define PURGE_T0       1767225600 /* 2026-01-01 */
#define PURGE_SUBJECTS 5

static const char PURGE_SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true,\"retention_days\":10},"
    "\"note\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"retention_days\":10},"
    "\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"news\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"city\"]},"
    "\"service\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"note\",\"city\"]}}}";

static int64_t purge_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

static ck_store *open_clocked(const fx *f, int64_t *now)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    o.clock = purge_clock;
    o.clock_ctx = now;
    ck_store *st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK);
    return st;
}

/* Copy the regular files of `from` into a new directory `to`. */
static void copy_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    assert_non_null(d);
    assert_int_equal(mkdir(to, 0700), 0);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char src[PATH_MAX], dst[PATH_MAX];
        struct stat sb;
        tu_path(src, sizeof src, from, e->d_name);
        tu_path(dst, sizeof dst, to, e->d_name);
        if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        size_t len;
        unsigned char *data = tu_read_file(src, &len);
        assert_true(data != NULL || len == 0);
        tu_write_file(dst, data != NULL ? data : (const unsigned char *)"", len, 0600);
        free(data);
    }
    closedir(d);
}

/* Subject P<i> purged whole (its values gone, its look-up gone, its
 * consent expired), or not at all. Returns whether it was purged. */
static bool purged_whole(ck_store *st, int i)
{
    char ref[8], email[32];
    snprintf(ref, sizeof ref, "P%d", i);
    snprintf(email, sizeof email, "p%d@x.fr", i);
    ck_who w = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "service";
    r.subject = w;
    ck_result *res = NULL;
    if (ck_release(&res, st, &r) != CK_OK)
        fail_msg("release of %s: %s", ref, ck_errmsg(st));
    /* email, note, city */
    bool gone = ck_result_field(res, 0)->reason == CK_WITHHELD_UNSET;
    if ((ck_result_field(res, 1)->reason == CK_WITHHELD_UNSET) != gone ||
        ck_result_field(res, 2)->reason != CK_RELEASED)
        fail_msg("%s is half-purged: email %s, note %s", ref,
                 ck_reason_name(ck_result_field(res, 0)->reason),
                 ck_reason_name(ck_result_field(res, 1)->reason));
    ck_result_free(res);
    unsigned char id[CK_SUBJECT_ID_BYTES];
    ck_who lw = {CK_BY_LOOKUP, email, 0, "email", NULL, NULL};
    int found = ck_subject_find(id, st, &lw);
    if (found != (gone ? CK_ENOTFOUND : CK_OK))
        fail_msg("%s: value %s but look-up %d", ref, gone ? "gone" : "kept", found);
    char *js = NULL;
    if (ck_consent_json(&js, st, &w) != CK_OK)
        fail_msg("consents of %s: %s", ref, ck_errmsg(st));
    bool expired = strstr(js, "\"state\":\"expired\"") != NULL;
    ck_free(js);
    if (expired != gone)
        fail_msg("%s: values %s but consent %s", ref, gone ? "gone" : "kept",
                 expired ? "expired" : "not expired");
    return gone;
}

/* A purge in batches of 2: at every fault the subjects are purged whole
 * or not at all, the log verifies, and a second run finishes the job. */
static void test_purge_every_fault(void **state)
{
    fx *f = *state;
    int64_t now = PURGE_T0;
    char tmpl[PATH_MAX];
    tu_path(tmpl, sizeof tmpl, f->root, "template");
    {
        ck_options o = opts(f, CK_INIT_CREATE_KEY_FILE);
        o.clock = purge_clock;
        o.clock_ctx = &now;
        ck_store *st = NULL;
        assert_int_equal(ck_init(&st, tmpl, &o), CK_OK);
        assert_int_equal(ck_schema_apply(st, PURGE_SCHEMA, strlen(PURGE_SCHEMA), 0, NULL), CK_OK);
        for (int i = 0; i < PURGE_SUBJECTS; i++) {
            char ref[8], js[128];
            snprintf(ref, sizeof ref, "P%d", i);
            snprintf(js, sizeof js, "{\"email\":\"p%d@x.fr\",\"note\":\"n\",\"city\":\"c\"}", i);
            ck_who w = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
            assert_int_equal(ck_put_json(NULL, st, &w, js, strlen(js), CK_PUT_CREATE), CK_OK);
            ck_consent c = CK_CONSENT_INIT;
            c.purpose = "news";
            c.state = CK_CONSENT_GRANTED;
            c.expires = PURGE_T0 + 5 * 86400;
            assert_int_equal(ck_consent_record(st, &w, &c, "crm"), CK_OK);
        }
        ck_close(st);
    }
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tu_rmtree(f->dir);
        copy_dir(tmpl, f->dir);
        now = PURGE_T0 + 20 * 86400;
        ck_store *st = open_clocked(f, &now);
        ck_purge_options po = CK_PURGE_OPTIONS_INIT;
        po.batch_subjects = 2;
        char *out = NULL;
        ck_fault__arm(n);
        int rc = ck_purge(&out, st, &po, "dpo");
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc != CK_OK) {
            assert_clean_failure(rc);
            assert_null(out);
            if (ck_errmsg(st)[0] == '\0')
                fail_msg("fault %lu: purge failed (%d) without a message", n, rc);
        }
        ck_free(out);
        ck_close(st); /* a failed fsync poisons the handle's log: reopen */
        st = open_clocked(f, &now);
        int done = 0;
        for (int i = 0; i < PURGE_SUBJECTS; i++)
            done += purged_whole(st, i);
        if (rc == CK_OK && done != PURGE_SUBJECTS)
            fail_msg("fault %lu: purge succeeded but %d of %d subjects purged", n, done,
                     PURGE_SUBJECTS);
        assert_log_verifies(st);
        /* the re-run finishes the job, and counts only what is left */
        assert_int_equal(ck_purge(&out, st, &po, "dpo"), CK_OK);
        char want[64];
        snprintf(want, sizeof want, "\"values_removed\":%d,", 2 * (PURGE_SUBJECTS - done));
        if (strstr(out, want) == NULL)
            fail_msg("fault %lu: %d were purged, the re-run says %s", n, done, out);
        ck_free(out);
        for (int i = 0; i < PURGE_SUBJECTS; i++)
            assert_true(purged_whole(st, i));
        assert_log_verifies(st);
        ck_close(st);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 20 && n < MAX_N);
}

/* The export: at every fault either the whole text, or a clean error and
 * nothing at all (an export whose audit entry cannot be written returns
 * nothing); the log verifies either way. */
static void export_every_fault(fx *f, unsigned flags)
{
    ck_who w = {CK_BY_REF, "c1", 0, NULL, NULL, NULL};
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        ck_store *st = open_store(f);
        char *out = NULL;
        ck_fault__arm(n);
        int rc = ck_export(&out, st, &w, "dpo", flags);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc != CK_OK) {
            assert_clean_failure(rc);
            assert_null(out);
        } else if (flags == 0) {
            assert_non_null(strstr(out, "\"c1@x.fr\""));
            assert_non_null(strstr(out, "\"releases\":[{"));
        } else {
            assert_non_null(strstr(out, "\r\nnews,granted,"));
        }
        ck_free(out);
        ck_close(st); /* a failed fsync poisons the handle's log: reopen */
        st = open_store(f);
        assert_log_verifies(st);
        ck_close(st);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 10 && n < MAX_N);
}

static void test_export_every_fault(void **state)
{
    fx *f = *state;
    make_store(f);
    ck_store *st = open_store(f);
    ck_who w = {CK_BY_REF, "c1", 0, NULL, NULL, NULL};
    const char *js = "{\"email\":\"c1@x.fr\",\"city\":\"Rennes\"}";
    assert_int_equal(ck_put_json(NULL, st, &w, js, strlen(js), CK_PUT_CREATE), CK_OK);
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "news";
    c.state = CK_CONSENT_GRANTED;
    c.source = "form";
    assert_int_equal(ck_consent_record(st, &w, &c, "dpo"), CK_OK);
    ck_request r = CK_REQUEST_INIT;
    r.actor = "t";
    r.purpose = "news";
    r.subject = w;
    ck_result *res = NULL;
    assert_int_equal(ck_release(&res, st, &r), CK_OK);
    ck_result_free(res);
    ck_close(st);
    export_every_fault(f, 0);
    export_every_fault(f, CK_EXPORT_CSV);
}

/* Holds in the store. */
static size_t hold_count(ck_store *st)
{
    MDB_txn *t;
    MDB_stat ms;
    assert_int_equal(ck_env__read_begin(st, &st->keyring, &t), CK_OK);
    assert_int_equal(mdb_stat(t, st->dbi_holds, &ms), 0);
    ck_env__read_end(&st->keyring, t);
    return ms.ms_entries;
}

/* A batch erasure of 6 subjects (each leaving a hold) and an unknown ref:
 * at every fault, each subject is either whole or has lost its key - and
 * then its hold exists (they are committed together); erasing the batch
 * again finishes every one, with no second hold; the log verifies. */
static void test_erase_batch_every_fault(void **state)
{
    fx *f = *state;
    enum { NS = 6 };
    char text[2048] = "";
    size_t tl = 0;
    char refs[NS + 1][8];
    ck_who who[NS + 1];
    for (int i = 0; i <= NS; i++) {
        snprintf(refs[i], sizeof refs[i], i < NS ? "e%d" : "nope", i);
        who[i] = (ck_who){CK_BY_REF, refs[i], 0, NULL, NULL, NULL};
        if (i < NS)
            tl += (size_t)snprintf(text + tl, sizeof text - tl,
                                   "{\"ref\":\"e%d\",\"fields\":{\"email\":\"e%d@x.fr\","
                                   "\"city\":\"C%d\"},\"consent\":{\"news\":true}}\n",
                                   i, i, i);
    }
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tu_rmtree(f->dir);
        unlink(f->key);
        make_store(f);
        ck_store *st = open_store(f);
        ck_import_options io = CK_IMPORT_OPTIONS_INIT;
        ck_importer *imp = NULL;
        ck_import_stats s = {0};
        assert_int_equal(ck_import_begin(&imp, st, &io), CK_OK);
        assert_int_equal(ck_import_feed(imp, text, strlen(text)), CK_OK);
        assert_int_equal(ck_import_finish(imp, &s), CK_OK);
        assert_int_equal(s.imported, NS);
        uint64_t erased = 0;
        ck_fault__arm(n);
        int rc = ck_erase_many(&erased, st, who, NS + 1, "art17", "dpo", NULL, NULL);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        ck_close(st);
        st = open_store(f);
        if (rc != CK_OK)
            assert_clean_failure(rc);
        size_t gone = 0;
        for (int i = 0; i < NS; i++)
            gone += !subject_whole(st, refs[i]);
        if (rc == CK_OK && (gone != NS || erased != NS))
            fail_msg("fault %lu: the batch succeeded but %zu of %d are gone", n, gone, NS);
        if (hold_count(st) != gone)
            fail_msg("fault %lu: %zu subjects lost their keys but %zu holds exist", n, gone,
                     hold_count(st));
        assert_log_verifies(st);
        /* Erasing again finishes every one. */
        assert_int_equal(ck_erase_many(&erased, st, who, NS + 1, "art17", "dpo", NULL, NULL),
                         CK_OK);
        for (int i = 0; i < NS; i++) {
            unsigned char sid[CK_SUBJECT_ID_BYTES];
            if (ck_subject_find(sid, st, &who[i]) != CK_ENOTFOUND)
                fail_msg("fault %lu: %s survived a second erasure", n, refs[i]);
        }
        assert_int_equal(hold_count(st), NS);
        assert_log_verifies(st);
        ck_close(st);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 20 && n < MAX_N);
}

/* ------------------------------------------------------------------------ */
/* Restore                                                                   */
/* ------------------------------------------------------------------------ */

/* Names in `dir` that contain `part`; the first one into `out`. */
static int find_name(const char *dir, const char *part, char *out, size_t max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, part) != NULL) {
            if (n++ == 0 && out != NULL)
                tu_path(out, max, dir, e->d_name);
        }
    }
    closedir(d);
    return n;
}

/* The store a restore of the backup makes: r0 erased again, the others
 * whole, the log verifying. */
static void assert_new_store_whole(const fx *f)
{
    ck_store *st = open_store(f);
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    ck_who w0 = {CK_BY_REF, "r0", 0, NULL, NULL, NULL};
    ck_who m0 = {CK_BY_LOOKUP, "p0@x.fr", 0, "email", NULL, NULL};
    assert_int_equal(ck_subject_find(sid, st, &w0), CK_ENOTFOUND);
    assert_int_equal(ck_subject_find(sid, st, &m0), CK_ENOTFOUND);
    assert_true(subject_whole(st, "r1"));
    assert_true(subject_whole(st, "r2"));
    assert_log_verifies(st);
    ck_close(st);
}

/* A restore over a store, with a fault at every call in turn: it fails
 * cleanly with the old store whole at the target and no copy left beside
 * it, or the new store is whole at the target (also when a step after the
 * exchange failed) and the old one kept. */
static void test_restore_every_fault(void **state)
{
    fx *f = *state;
    make_store(f);
    ck_store *st = open_store(f);
    ck_importer *imp = NULL;
    ck_import_options io = CK_IMPORT_OPTIONS_INIT;
    const char *text = "{\"ref\":\"r0\",\"fields\":{\"email\":\"p0@x.fr\",\"city\":\"C0\"},"
                       "\"consent\":{\"news\":true}}\n"
                       "{\"ref\":\"r1\",\"fields\":{\"email\":\"p1@x.fr\",\"city\":\"C1\"},"
                       "\"consent\":{\"news\":true}}\n"
                       "{\"ref\":\"r2\",\"fields\":{\"email\":\"p2@x.fr\",\"city\":\"C2\"},"
                       "\"consent\":{\"news\":true}}\n";
    assert_int_equal(ck_import_begin(&imp, st, &io), CK_OK);
    assert_int_equal(ck_import_feed(imp, text, strlen(text)), CK_OK);
    assert_int_equal(ck_import_finish(imp, NULL), CK_OK);
    char bk[PATH_MAX];
    tu_path(bk, sizeof bk, f->root, "bk");
    assert_int_equal(ck_backup(st, bk, "dpo"), CK_OK);
    ck_who w0 = {CK_BY_REF, "r0", 0, NULL, NULL, NULL};
    assert_int_equal(ck_erase(NULL, st, &w0, "art17", "dpo"), CK_OK);
    ck_close(st);
    unsigned char old[32], now[32];
    tu_digest_store(old, f->dir);

    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        char err[CK_ERRMSG_MAX] = "";
        ck_options o = CK_OPTIONS_INIT;
        o.key_file = f->key;
        o.errbuf = err;
        o.errbuf_max = sizeof err;
        ck_restore_options ro = CK_RESTORE_OPTIONS_INIT;
        ro.actor = "dpo";
        ck_restore_result res = CK_RESTORE_RESULT_INIT;
        if (getenv("CK_FAULT_TRACE"))
            fprintf(stderr, "restore n=%lu\n", n);
        ck_fault__arm(n);
        int rc = ck_restore(&res, f->dir, bk, &o, &ro);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc != CK_OK && !(rc == CK_ENOMEM || rc == CK_EIO || rc == CK_ENOSPC))
            fail_msg("fault %lu: restore failed with %d: %s", n, rc, err);
        if (res.kept == NULL) {
            /* Not done: the old store, as it was, and nothing beside it. */
            assert_true(rc != CK_OK);
            tu_digest_store(now, f->dir);
            if (memcmp(old, now, 32) != 0)
                fail_msg("fault %lu: a failed restore (%s) changed the store", n, err);
            if (find_name(f->root, ".restore-", NULL, 0) != 0)
                fail_msg("fault %lu: a failed restore (%s) left its copy", n, err);
            continue;
        }
        /* Done, or failed after the exchange: the new store, whole; the
         * old one kept whole. Put the old one back for the next round. */
        assert_new_store_whole(f);
        char kept[PATH_MAX];
        snprintf(kept, sizeof kept, "%s", res.kept);
        ck_free(res.kept);
        tu_digest_store(now, kept);
        if (memcmp(old, now, 32) != 0)
            fail_msg("fault %lu: the kept store is not the old one", n);
        tu_rmtree(f->dir);
        assert_int_equal(rename(kept, f->dir), 0);
        assert_int_equal(find_name(f->root, ".restore-", NULL, 0), 0);
        assert_int_equal(find_name(f->root, ".replaced-", NULL, 0), 0);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 50 && n < MAX_N);
}

/* ------------------------------------------------------------------------ */
/* Schema change                                                             */
/* ------------------------------------------------------------------------ */

/* A second schema (a field and a purpose more) applied with a fault at
 * every call in turn: it fails cleanly and the store keeps version 1, or
 * it succeeds with version 2; reopened, the version read back is the one
 * the call said, the subject written under version 1 is whole, and the
 * log verifies. */
static void test_schema_apply_every_fault(void **state)
{
    static const char v2[] =
        "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
        "\"identifying\":true},\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
        "\"born\":{\"type\":\"date\",\"sensitivity\":\"personal\"},"
        "\"nick\":{\"type\":\"string\",\"sensitivity\":\"personal\"}},"
        "\"purposes\":{\"news\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
        "\"fields\":[\"email\",\"city\"]},\"records\":{\"basis\":\"legal_obligation\","
        "\"description\":\"d\",\"benefit\":\"b\",\"fields\":[\"city\"],"
        "\"hold\":{\"fields\":[\"city\"],\"days\":30}},"
        "\"club\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
        "\"fields\":[\"nick\"]}}}";
    fx *f = *state;
    make_store(f);
    ck_store *st = open_store(f);
    ck_who w = {CK_BY_REF, "r1", 0, NULL, NULL, NULL};
    const char *js = "{\"email\":\"p1@x.fr\",\"city\":\"C1\"}";
    assert_int_equal(ck_put_json(NULL, st, &w, js, strlen(js), CK_PUT_CREATE), CK_OK);
    ck_consent c = CK_CONSENT_INIT;
    c.purpose = "news";
    c.state = CK_CONSENT_GRANTED;
    assert_int_equal(ck_consent_record(st, &w, &c, "crm"), CK_OK);
    ck_close(st);

    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        st = open_store(f);
        ck_fault__arm(n);
        int rc = ck_schema_apply(st, v2, strlen(v2), 0, NULL);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc != CK_OK)
            assert_clean_failure(rc);
        ck_close(st);
        st = open_store(f);
        uint32_t ver = 0;
        assert_int_equal(ck_schema_version(&ver, st), CK_OK);
        if (ver != (rc == CK_OK ? 2u : 1u))
            fail_msg("fault %lu: apply returned %d, the store has version %u", n, rc, ver);
        assert_true(subject_whole(st, "r1"));
        assert_log_verifies(st);
        if (rc == CK_OK) {
            ck_close(st);
            break;
        }
        ck_close(st);
        (void)seen;
    }
    assert_true(n > 5 && n < MAX_N);
}

/* ------------------------------------------------------------------------ */
/* Compaction                                                                */
/* ------------------------------------------------------------------------ */

/* A compaction after an erasure, with a fault at every call in turn: it
 * fails cleanly or succeeds; either way, reopened, the store holds the two
 * live subjects whole, the erased one stays erased, and the log verifies
 * (the files in place are the old ones or the new ones, never a mix that
 * loses data). */
static void test_compact_every_fault(void **state)
{
    fx *f = *state;
    make_store(f);
    ck_store *st = open_store(f);
    ck_importer *imp = NULL;
    ck_import_options io = CK_IMPORT_OPTIONS_INIT;
    const char *text = "{\"ref\":\"r0\",\"fields\":{\"email\":\"p0@x.fr\",\"city\":\"C0\"},"
                       "\"consent\":{\"news\":true}}\n"
                       "{\"ref\":\"r1\",\"fields\":{\"email\":\"p1@x.fr\",\"city\":\"C1\"},"
                       "\"consent\":{\"news\":true}}\n"
                       "{\"ref\":\"r2\",\"fields\":{\"email\":\"p2@x.fr\",\"city\":\"C2\"},"
                       "\"consent\":{\"news\":true}}\n";
    assert_int_equal(ck_import_begin(&imp, st, &io), CK_OK);
    assert_int_equal(ck_import_feed(imp, text, strlen(text)), CK_OK);
    assert_int_equal(ck_import_finish(imp, NULL), CK_OK);
    ck_who w0 = {CK_BY_REF, "r0", 0, NULL, NULL, NULL};
    assert_int_equal(ck_erase(NULL, st, &w0, "art17", "dpo"), CK_OK);
    ck_close(st);

    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        st = open_store(f);
        ck_fault__arm(n);
        int rc = ck_compact(st, "dpo");
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (rc != CK_OK) {
            assert_clean_failure(rc);
            if (ck_errmsg(st)[0] == '\0')
                fail_msg("fault %lu: compact failed (%d) without a message", n, rc);
        }
        ck_close(st); /* after a failure past the copy the handle is unusable */
        st = open_store(f);
        unsigned char sid[CK_SUBJECT_ID_BYTES];
        assert_int_equal(ck_subject_find(sid, st, &w0), CK_ENOTFOUND);
        if (!subject_whole(st, "r1") || !subject_whole(st, "r2"))
            fail_msg("fault %lu: a live subject is gone after compact (%d)", n, rc);
        assert_log_verifies(st);
        ck_close(st);
        if (rc == CK_OK && seen < n)
            break;
    }
    assert_true(n > 10 && n < MAX_N);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_change_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_write_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_upsert_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consent_release_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_batch_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_apply_every_fault, setup, teardown),
    };
    return cmocka_run_group_tests_name("fault", tests, NULL, NULL);
}

#else /* !CK_FAULT_INJECTION */

static void test_needs_fault_injection(void **state)
{
    (void)state;
    skip(); /* built without -DCK_FAULT_INJECTION=ON: nothing to inject */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_needs_fault_injection)};
    return cmocka_run_group_tests_name("fault", tests, NULL, NULL);
}

#endif
