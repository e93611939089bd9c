/*
 * test_stress.c - several threads and processes on one store, for a
 * bounded time (CK_STRESS_SECONDS, default 3):
 *  - a writer thread putting fields and granting/withdrawing consents;
 *  - an importer thread re-importing subjects with their consents;
 *  - two reader threads releasing random subjects for random purposes;
 *  - a segment thread streaming a purpose;
 *  - a child process running `ckstore audit verify` in a loop (when
 *    CKSTORE_BIN names the tool), and another child process releasing
 *    through its own handle.
 * Every call must succeed (no error other than the expected ones), every
 * answer must obey the rules that do not depend on timing (a purpose
 * nobody ever consented to releases nothing; a contract purpose releases
 * every field of every subject), and the audit log must verify at the
 * end. CI also runs this test under ThreadSanitizer (stage tsan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include "ckstore.h"
#include "testutil.h"

#define SUBJECTS 64

static const char SCHEMA[] =
    "{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\","
    "\"identifying\":true},\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"n\":{\"type\":\"int\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{\"service\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\",\"n\"]},"
    "\"news\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\"]},"
    "\"never\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\"]}}}";

typedef struct shared {
    ck_store *st;
    atomic_bool stop;
    atomic_long ops;
    atomic_int errors;
    char msg[256];
    pthread_mutex_t msg_lock;
} shared;

static void record_error(shared *s, const char *what, int rc)
{
    pthread_mutex_lock(&s->msg_lock);
    if (atomic_fetch_add(&s->errors, 1) == 0)
        snprintf(s->msg, sizeof s->msg, "%s: %s (%s)", what, ck_strerror(rc), ck_errmsg(s->st));
    pthread_mutex_unlock(&s->msg_lock);
}

static unsigned next_rand(unsigned *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 16;
}

static void ref_of(char out[16], unsigned i)
{
    snprintf(out, 16, "s%u", i % SUBJECTS);
}

static void *writer(void *arg)
{
    shared *s = arg;
    unsigned r = 1;
    while (!atomic_load(&s->stop)) {
        char ref[16], js[96];
        unsigned i = next_rand(&r);
        ref_of(ref, i);
        ck_who w = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
        snprintf(js, sizeof js, "{\"city\":\"C%u\",\"n\":%u}", i % 7, i);
        int rc = ck_put_json(NULL, s->st, &w, js, strlen(js), CK_PUT_CREATE);
        if (rc != CK_OK)
            record_error(s, "put", rc);
        ck_consent c = CK_CONSENT_INIT;
        c.purpose = "news";
        c.state = (i & 1) ? CK_CONSENT_GRANTED : CK_CONSENT_WITHDRAWN;
        rc = ck_consent_record(s->st, &w, &c, "stress-writer");
        if (rc != CK_OK)
            record_error(s, "consent", rc);
        atomic_fetch_add(&s->ops, 2);
    }
    return NULL;
}

static void *importer(void *arg)
{
    shared *s = arg;
    unsigned r = 7;
    while (!atomic_load(&s->stop)) {
        char text[4096];
        size_t len = 0;
        for (int k = 0; k < 16; k++) {
            unsigned i = next_rand(&r) % SUBJECTS;
            len += (size_t)snprintf(text + len, sizeof text - len,
                                    "{\"ref\":\"s%u\",\"fields\":{\"email\":\"s%u@x.fr\"},"
                                    "\"consent\":{\"news\":%s}}\n",
                                    i, i, (i & 2) ? "true" : "false");
        }
        ck_importer *imp;
        ck_import_options o = CK_IMPORT_OPTIONS_INIT;
        o.batch_lines = 5;
        ck_import_stats st;
        int rc = ck_import_begin(&imp, s->st, &o);
        if (rc == CK_OK)
            rc = ck_import_feed(imp, text, len);
        if (rc == CK_OK) {
            rc = ck_import_finish(imp, &st);
            if (rc == CK_OK && st.imported != 16)
                rc = CK_EINTERNAL;
        } else {
            ck_import_free(imp);
        }
        if (rc != CK_OK)
            record_error(s, "import", rc);
        atomic_fetch_add(&s->ops, 1);
    }
    return NULL;
}

static void *reader(void *arg)
{
    shared *s = arg;
    unsigned r = (unsigned)(uintptr_t)&r;
    static const char *const P[] = {"service", "news", "never"};
    while (!atomic_load(&s->stop)) {
        char ref[16];
        unsigned i = next_rand(&r);
        ref_of(ref, i);
        ck_request q = CK_REQUEST_INIT;
        q.actor = "stress-reader";
        q.purpose = P[i % 3];
        q.subject.by = CK_BY_REF;
        q.subject.value = ref;
        ck_result *res = NULL;
        int rc = ck_release(&res, s->st, &q);
        if (rc == CK_ENOTFOUND) /* not created yet by the writer */
            continue;
        if (rc != CK_OK) {
            record_error(s, "release", rc);
            continue;
        }
        for (size_t k = 0; k < ck_result_count(res); k++) {
            const ck_field_result *f = ck_result_field(res, k);
            if (i % 3 == 2 && f->reason != CK_WITHHELD_NO_CONSENT)
                record_error(s, "'never' released or gave another reason", CK_EINTERNAL);
            if (i % 3 == 0 && f->reason != CK_RELEASED && f->reason != CK_WITHHELD_UNSET)
                record_error(s, "'service' withheld a field for a basis reason", CK_EINTERNAL);
        }
        ck_result_free(res);
        atomic_fetch_add(&s->ops, 1);
    }
    return NULL;
}

static void *segmenter(void *arg)
{
    shared *s = arg;
    while (!atomic_load(&s->stop)) {
        ck_segment_request q = CK_SEGMENT_INIT;
        q.actor = "stress-segment";
        q.purpose = "news";
        ck_cursor *c;
        int rc = ck_segment(&c, s->st, &q);
        if (rc != CK_OK) {
            record_error(s, "segment", rc);
            continue;
        }
        const ck_result *res;
        while ((rc = ck_segment_next(c, &res)) == CK_OK) {
            /* granted in this snapshot: nothing is withheld for the basis */
            for (size_t k = 0; k < ck_result_count(res); k++)
                if (ck_result_field(res, k)->reason != CK_RELEASED &&
                    ck_result_field(res, k)->reason != CK_WITHHELD_UNSET)
                    record_error(s, "segment answer withheld a field", CK_EINTERNAL);
        }
        if (rc != CK_ENOTFOUND)
            record_error(s, "segment_next", rc);
        ck_cursor_free(c);
        atomic_fetch_add(&s->ops, 1);
    }
    return NULL;
}

/* A second process with its own handle: releases in a loop. */
static int child_releases(const char *dir, const char *key, double seconds)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = key;
    ck_store *st;
    if (ck_open(&st, dir, &o) != CK_OK)
        return 2;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int bad = 0;
    unsigned r = 99;
    do {
        char ref[16];
        ref_of(ref, next_rand(&r));
        ck_request q = CK_REQUEST_INIT;
        q.actor = "stress-child";
        q.purpose = "service";
        q.subject.by = CK_BY_REF;
        q.subject.value = ref;
        ck_result *res = NULL;
        int rc = ck_release(&res, st, &q);
        if (rc != CK_OK && rc != CK_ENOTFOUND)
            bad = 1;
        ck_result_free(res);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (!bad &&
             (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    ck_close(st);
    return bad;
}

static void test_stress(void **state)
{
    (void)state;
    char *root = tu_mkdtemp("stress");
    char dir[PATH_MAX], key[PATH_MAX];
    tu_path(dir, sizeof dir, root, "s");
    tu_path(key, sizeof key, root, "k");
    const char *secs_env = getenv("CK_STRESS_SECONDS");
    double secs = secs_env != NULL ? strtod(secs_env, NULL) : 3.0;
    shared s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.msg_lock, NULL);
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = key;
    o.flags = CK_INIT_CREATE_KEY_FILE;
    assert_int_equal(ck_init(&s.st, dir, &o), CK_OK);
    assert_int_equal(ck_schema_apply(s.st, SCHEMA, strlen(SCHEMA), 0, NULL), CK_OK);

    /* Other processes: the CLI verifying the log, a second handle. */
    pid_t verifier = -1, releaser;
    const char *bin = getenv("CKSTORE_BIN");
    if (bin != NULL) {
        verifier = fork();
        assert_true(verifier >= 0);
        if (verifier == 0) {
            struct timespec t0, t;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            do {
                pid_t p = fork();
                if (p == 0) {
                    freopen("/dev/null", "w", stdout);
                    execl(bin, bin, "--store", dir, "--key-file", key, "audit", "verify",
                          (char *)NULL);
                    _exit(127);
                }
                int ws;
                if (p < 0 || waitpid(p, &ws, 0) != p || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
                    _exit(1);
                clock_gettime(CLOCK_MONOTONIC, &t);
            } while ((double)(t.tv_sec - t0.tv_sec) < secs);
            _exit(0);
        }
    }
    /* A fresh process (exec, not just fork: the parent has threads), with
     * its own handle on the store. */
    releaser = fork();
    assert_true(releaser >= 0);
    if (releaser == 0) {
        char sbuf[32];
        snprintf(sbuf, sizeof sbuf, "%f", secs);
        execl("/proc/self/exe", "test_stress", "--child-release", dir, key, sbuf, (char *)NULL);
        _exit(127);
    }

    pthread_t th[5];
    void *(*fns[5])(void *) = {writer, importer, reader, reader, segmenter};
    for (int i = 0; i < 5; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fns[i], &s), 0);
    struct timespec d = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&d, NULL);
    atomic_store(&s.stop, true);
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    if (atomic_load(&s.errors) > 0)
        fail_msg("%d errors; first: %s", atomic_load(&s.errors), s.msg);
    int ws;
    assert_int_equal(waitpid(releaser, &ws, 0), releaser);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    if (verifier > 0) {
        assert_int_equal(waitpid(verifier, &ws, 0), verifier);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            fail_msg("ckstore audit verify failed while the store was in use");
    }
    assert_true(atomic_load(&s.ops) > 10);
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&vr, s.st, NULL), CK_OK);
    printf("stress: %ld operations in %.1f s, audit log of %llu entries verifies\n",
           atomic_load(&s.ops), secs, (unsigned long long)vr.entries);
    ck_close(s.st);
    pthread_mutex_destroy(&s.msg_lock);
    tu_rmtree(root);
    free(root);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child-release") == 0)
        return child_releases(argv[2], argv[3], strtod(argv[4], NULL));
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stress)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
