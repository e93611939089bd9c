/*
 * test_import.c - the import's writes (ck_import_*): an upsert rewrites the
 * fields a line gives and leaves the others, also when the same subject
 * comes back later in the batch; a rejected line in the middle of a batch
 * writes nothing, even for a subject that exists; a batch that fills the
 * map is run again, whole, with its rejects reported once; the blind index
 * entries of identifying values, hashed when a line is checked, are those
 * every other write makes.
 *
 * The import writes a subject's values and consent records through write
 * cursors kept for the whole batch (subject.h, ck_wctx): these tests pin
 * down what must not change with that.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "subject.h"

#include "fixture.h"

static const char SCHEMA[] =
    "{\"fields\":{"
    "\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true},"
    "\"phone\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true},"
    "\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"note\":{\"type\":\"string\",\"sensitivity\":\"personal\"},"
    "\"born\":{\"type\":\"date\",\"sensitivity\":\"personal\"}},"
    "\"purposes\":{"
    "\"service\":{\"basis\":\"contract\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"phone\",\"city\",\"note\",\"born\"]},"
    "\"news\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\"]},"
    "\"calls\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"phone\"]},"
    "\"offers\":{\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\","
    "\"fields\":[\"email\",\"city\",\"born\"]}}}";

typedef tu_fx fx; /* tests/fixture.h */

static int setup(void **state)
{
    return tu_fx_setup(state, "import", 1700000000, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC,
                       SCHEMA);
}

static int teardown(void **state)
{
    return tu_fx_teardown(state);
}

/* Rejected lines, as on_reject reports them. */
typedef struct rejects {
    unsigned n;
    uint64_t line[16];
    char reason[16][160];
} rejects;

static void on_reject(void *ctx, uint64_t line, const char *reason)
{
    rejects *r = ctx;
    if (r->n < 16) {
        r->line[r->n] = line;
        snprintf(r->reason[r->n], sizeof r->reason[r->n], "%s", reason);
    }
    r->n++;
}

/* Import `text` in batches of `batch` lines (0: the default); the test
 * fails unless the import succeeds. */
static void import_text(ck_store *st, const char *text, unsigned batch, rejects *rj,
                        ck_import_stats *s)
{
    ck_importer *imp = NULL;
    ck_import_options o = CK_IMPORT_OPTIONS_INIT;
    o.batch_lines = batch;
    o.on_reject = on_reject;
    o.ctx = rj;
    assert_int_equal(ck_import_begin(&imp, st, &o), CK_OK);
    if (ck_import_feed(imp, text, strlen(text)) != CK_OK)
        fail_msg("import: %s", ck_errmsg(st));
    if (ck_import_finish(imp, s) != CK_OK)
        fail_msg("import: %s", ck_errmsg(st));
}

/* What the store holds about subject `ref`, from its export: its id,
 * creation, values (with their write times), look-ups and consents - not
 * the audit history, which each export extends. NULL when there is no such
 * subject. The caller decrefs. */
static json_t *view(ck_store *st, const char *ref)
{
    ck_who w = tu_by_ref(ref);
    char *text = NULL;
    int rc = ck_export(&text, st, &w, "test", 0);
    if (rc == CK_ENOTFOUND)
        return NULL;
    if (rc != CK_OK)
        fail_msg("export of %s: %s", ref, ck_errmsg(st));
    json_error_t err;
    json_t *all = json_loads(text, 0, &err);
    ck_free(text);
    assert_non_null(all);
    json_t *v = json_object();
    static const char *const keep[] = {"subject", "created", "fields", "lookups", "consents"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        json_t *m = json_object_get(all, keep[i]);
        assert_non_null(m);
        json_object_set(v, keep[i], m);
    }
    json_decref(all);
    return v;
}

/* The value of field `name` in a view, as text; NULL when unset. */
static const char *value_of(const json_t *v, const char *name)
{
    json_t *f = json_object_get(json_object_get(v, "fields"), name);
    return f != NULL ? json_string_value(json_object_get(f, "value")) : NULL;
}

/* The current consent state of `purpose` in a view; NULL when none. */
static const char *consent_of(const json_t *v, const char *purpose)
{
    json_t *c =
        json_object_get(json_object_get(json_object_get(v, "consents"), "current"), purpose);
    return c != NULL ? json_string_value(json_object_get(c, "state")) : NULL;
}

static size_t history_of(const json_t *v)
{
    return json_array_size(json_object_get(json_object_get(v, "consents"), "history"));
}

/* The ref of the subject whose identifying `field` is `value`, as a
 * subject id compared with the one of `ref`: true when they match. */
static bool found_by(ck_store *st, const char *field, const char *value, const char *ref)
{
    ck_who by = {CK_BY_LOOKUP, value, 0, field, NULL, NULL};
    ck_who w = tu_by_ref(ref);
    unsigned char a[CK_SUBJECT_ID_BYTES], b[CK_SUBJECT_ID_BYTES];
    if (ck_subject_find(a, st, &by) != CK_OK)
        return false;
    assert_int_equal(ck_subject_find(b, st, &w), CK_OK);
    return memcmp(a, b, sizeof a) == 0;
}

static void assert_same(const json_t *a, const json_t *b, const char *what)
{
    if (!json_equal((json_t *)a, (json_t *)b)) {
        char *ta = json_dumps(a, JSON_SORT_KEYS), *tb = json_dumps(b, JSON_SORT_KEYS);
        fail_msg("%s changed:\n%s\n%s", what, ta, tb);
    }
}

#define FULL_LINE(ref, n)                                                                          \
    "{\"ref\":\"" ref "\",\"fields\":{\"email\":\"" ref "@example.fr\",\"phone\":\"06 12 34 56 "   \
    "7" n "\",\"city\":\"Nantes\",\"note\":\"note " ref "\",\"born\":\"1980-05-0" n "\"},"         \
    "\"consent\":{\"news\":true,\"calls\":true,\"offers\":false}}\n"

/* An upsert writes the fields it gives (a longer value, one of the same
 * length, a date), deletes the ones it sets to null (their look-ups too),
 * and leaves every other field, consent and subject as it was - also when
 * the same subject comes back later in the same batch, and with new
 * subjects created between. */
static void test_upsert_rewrites_some_fields(void **state)
{
    fx *f = *state;
    ck_import_stats s;
    rejects rj = {0};
    import_text(f->st,
                FULL_LINE("A-1", "1") FULL_LINE("A-2", "2") FULL_LINE("A-3", "3")
                    FULL_LINE("A-4", "4") FULL_LINE("A-5", "5"),
                0, &rj, &s);
    assert_int_equal(s.created, 5);
    assert_int_equal(rj.n, 0);
    json_t *before[5];
    const char *refs[5] = {"A-1", "A-2", "A-3", "A-4", "A-5"};
    for (int i = 0; i < 5; i++)
        assert_non_null(before[i] = view(f->st, refs[i]));

    f->now += 3600;
    /* A-3 twice, a new subject between. */
#define NEW_SUBJECT FULL_LINE("N-1", "6")
    static const char update[] =
        "{\"ref\":\"A-3\",\"fields\":{\"city\":\"Saint-Sebastien-sur-Loire\",\"note\":null,"
        "\"phone\":null},\"consent\":{\"news\":false}}\n" NEW_SUBJECT
        "{\"ref\":\"A-1\",\"fields\":{\"city\":\"Rennes\"}}\n"
        "{\"ref\":\"A-3\",\"fields\":{\"born\":\"1990-01-02\",\"email\":\"new@example.fr\"},"
        "\"consent\":{\"offers\":true}}\n";
    import_text(f->st, update, 0, &rj, &s);
    assert_int_equal(rj.n, 0);
    assert_int_equal(s.imported, 4);
    assert_int_equal(s.created, 1);
    assert_int_equal(s.updated, 3);
    assert_int_equal(s.consents, 2 + 3);

    json_t *a3 = view(f->st, "A-3");
    assert_non_null(a3);
    assert_string_equal(value_of(a3, "city"), "Saint-Sebastien-sur-Loire");
    assert_string_equal(value_of(a3, "born"), "1990-01-02");
    assert_string_equal(value_of(a3, "email"), "new@example.fr");
    assert_null(value_of(a3, "note"));
    assert_null(value_of(a3, "phone"));
    assert_string_equal(consent_of(a3, "news"), "refused");
    assert_string_equal(consent_of(a3, "offers"), "granted");
    assert_string_equal(consent_of(a3, "calls"), "granted");
    assert_int_equal(history_of(a3), 3 + 2);
    /* Same subject, same creation. */
    assert_same(json_object_get(a3, "subject"), json_object_get(before[2], "subject"), "A-3's id");
    assert_same(json_object_get(a3, "created"), json_object_get(before[2], "created"),
                "A-3's creation");
    /* The look-ups follow: the old e-mail and the phone find nobody. */
    assert_true(found_by(f->st, "email", "new@example.fr", "A-3"));
    assert_false(found_by(f->st, "email", "A-3@example.fr", "A-3"));
    assert_false(found_by(f->st, "phone", "06 12 34 56 73", "A-3"));

    json_t *a1 = view(f->st, "A-1");
    assert_string_equal(value_of(a1, "city"), "Rennes"); /* same length as Nantes */
    json_object_del(json_object_get(a1, "fields"), "city");
    json_object_del(json_object_get(before[0], "fields"), "city");
    assert_same(a1, before[0], "A-1 but its city");
    json_decref(a1);

    for (int i = 1; i < 5; i++) {
        if (i == 2)
            continue;
        json_t *v = view(f->st, refs[i]);
        assert_same(v, before[i], refs[i]);
        json_decref(v);
    }
    json_t *n1 = view(f->st, "N-1");
    assert_non_null(n1);
    assert_string_equal(value_of(n1, "city"), "Nantes");
    assert_true(found_by(f->st, "phone", "06 12 34 56 76", "N-1"));
    json_decref(n1);
    json_decref(a3);
    for (int i = 0; i < 5; i++)
        json_decref(before[i]);
}

/* A line rejected in the middle of a batch writes nothing - not even the
 * fields of it that were valid, for a new subject or an existing one -
 * while the lines around it are imported. */
static void test_rejected_line_mid_batch_writes_nothing(void **state)
{
    fx *f = *state;
    ck_import_stats s;
    rejects rj = {0};
    import_text(f->st, FULL_LINE("R-1", "1"), 0, &rj, &s);
    json_t *before = view(f->st, "R-1");

    f->now += 60;
    import_text(f->st,
                FULL_LINE("R-2", "2")
                /* 2: valid city, then a date that does not exist */
                "{\"ref\":\"R-1\",\"fields\":{\"city\":\"Brest\",\"born\":\"2023-02-30\"}}\n"
                /* 3: a new subject, valid fields, an unknown purpose */
                "{\"ref\":\"R-9\",\"fields\":{\"city\":\"Brest\"},\"consent\":{\"nope\":true}}\n"
                /* 4: valid fields and consent, an e-mail that does not normalise */
                "{\"ref\":\"R-1\",\"fields\":{\"city\":\"Brest\",\"email\":\"nobody\"},"
                "\"consent\":{\"news\":false}}\n"
                /* 5: a new subject whose consent has a bad scope */
                "{\"ref\":\"R-8\",\"fields\":{\"city\":\"Brest\"},\"consent\":{\"calls\":"
                "{\"state\":\"granted\",\"fields\":[\"city\"]}}}\n" FULL_LINE("R-3", "3"),
                0, &rj, &s);
    assert_int_equal(s.imported, 2);
    assert_int_equal(s.created, 2);
    assert_int_equal(s.rejected, 4);
    assert_int_equal(s.consents, 6);
    assert_int_equal(rj.n, 4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(rj.line[i], i + 2);
    assert_non_null(strstr(rj.reason[0], "born"));
    assert_non_null(strstr(rj.reason[1], "nope"));
    assert_non_null(strstr(rj.reason[2], "email"));
    assert_non_null(strstr(rj.reason[3], "calls"));

    json_t *after = view(f->st, "R-1");
    assert_same(after, before, "R-1");
    assert_null(view(f->st, "R-9"));
    assert_null(view(f->st, "R-8"));
    json_t *r2 = view(f->st, "R-2"), *r3 = view(f->st, "R-3");
    assert_non_null(r2);
    assert_non_null(r3);
    assert_string_equal(value_of(r3, "note"), "note R-3");
    assert_string_equal(consent_of(r2, "calls"), "granted");
    ck_stats st = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&st, f->st), CK_OK);
    assert_int_equal(st.subjects, 3);
    assert_int_equal(st.values, 3 * 5);
    json_decref(r2);
    json_decref(r3);
    json_decref(after);
    json_decref(before);
}

/* The map size ck_env__reserve gives a batch of `bytes` bytes of lines:
 * doublings of `map` up to the pages in use plus 8 times the lines. */
static uint64_t reserved_map(uint64_t map, uint64_t used, uint64_t bytes)
{
    while (map < used + 8 * bytes)
        map *= 2;
    return map;
}

/* A batch that needs more room than the import reserves for it fills the
 * map: the whole batch is run again in a bigger map. Every line lands
 * once, whole; the rejected ones are reported once; the log verifies. */
static void test_batch_rerun_after_map_grew(void **state)
{
    fx *f = *state;
    tu_fx_fini(f);
    f->root = tu_mkdtemp("import-map");
    tu_path(f->dir, sizeof f->dir, f->root, "store");
    tu_path(f->key, sizeof f->key, f->root, "store.key");
    ck_options o = tu_fx_options(f, CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC);
    o.map_size = 64 * 1024;
    assert_int_equal(ck_init(&f->st, f->dir, &o), CK_OK);
    assert_int_equal(ck_schema_apply(f->st, SCHEMA, strlen(SCHEMA), 0, NULL), CK_OK);

    /* Short lines that become many records: three consent records and
     * their index entries, the subject and its ref. */
    enum { LINES = 400, BAD = 137 }; /* BAD: a multiple of 8, plus 1 */
    size_t cap = LINES * 160, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int i = 1; i <= LINES; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                i == BAD ? "{\"ref\":\"M%d\",\"fields\":{\"born\":\"x\"}}\n"
                                         : "{\"ref\":\"M%d\",\"consent\":{\"news\":true,"
                                           "\"calls\":false,\"offers\":true}}\n",
                                i);
    assert_true(len < cap);
    ck_stats s0 = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s0, f->st), CK_OK);

    ck_import_stats s;
    rejects rj = {0};
    import_text(f->st, text, LINES, &rj, &s);
    free(text);
    assert_int_equal(s.imported, LINES - 1);
    assert_int_equal(s.created, LINES - 1);
    assert_int_equal(s.consents, 3 * (LINES - 1));
    assert_int_equal(s.rejected, 1);
    assert_int_equal(rj.n, 1);
    assert_int_equal(rj.line[0], BAD);

    /* The premise: the batch did not fit in the map reserved for it. */
    ck_stats s1 = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s1, f->st), CK_OK);
    uint64_t reserved = reserved_map(s0.map_bytes, s0.data_used_bytes, len);
    if (s1.data_used_bytes <= reserved)
        fail_msg("the batch fit in the map reserved for it (%llu of %llu bytes): no re-run",
                 (unsigned long long)s1.data_used_bytes, (unsigned long long)reserved);
    assert_true(s1.map_bytes > reserved);

    assert_int_equal(s1.subjects, LINES - 1);
    assert_int_equal(s1.values, 0);
    for (int i = 1; i <= LINES; i += 8) {
        char ref[16];
        snprintf(ref, sizeof ref, "M%d", i);
        json_t *v = view(f->st, ref);
        if (i == BAD) {
            assert_null(v);
            continue;
        }
        assert_non_null(v);
        assert_string_equal(consent_of(v, "news"), "granted");
        assert_string_equal(consent_of(v, "calls"), "refused");
        assert_string_equal(consent_of(v, "offers"), "granted");
        assert_int_equal(history_of(v), 3);
        json_decref(v);
    }
    ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
    if (ck_audit_verify(&vr, f->st, NULL) != CK_OK)
        fail_msg("audit log: %s", ck_errmsg(f->st));
}

/* The index entries (blind index key and tombstone tag, ordered) that
 * the record of subject `ref` lists for its identifying fields; returns
 * how many, at most 8. */
static unsigned field_entries(fx *f, const char *ref, uint8_t out[8][CK_IX_ENTRY])
{
    ck_who w = tu_by_ref(ref);
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    assert_int_equal(ck_subject_find(sid, f->st, &w), CK_OK);
    unsigned char *dk = sodium_malloc(CK_KEY_BYTES);
    assert_non_null(dk);
    MDB_txn *txn = NULL, *ktxn = NULL;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->data, &txn), CK_OK);
    assert_int_equal(ck_env__read_begin(f->st, &f->st->keyring, &ktxn), CK_OK);
    assert_int_equal(ck_subject__data_key(f->st, ktxn, sid, dk), CK_OK);
    ck_arena a = CK_ARENA_INIT;
    ck_subj s;
    assert_int_equal(ck_subject__read(&s, f->st, txn, sid, dk, &a), CK_OK);
    unsigned n = 0;
    for (uint32_t i = 0; i < s.nix; i++) {
        if (s.ix[i][0] != CK_INDEX_FIELD)
            continue;
        assert_true(n < 8);
        /* insertion sort on the index key */
        unsigned j = n++;
        while (j > 0 && memcmp(out[j - 1], s.ix[i], CK_IX_ENTRY) > 0) {
            memcpy(out[j], out[j - 1], CK_IX_ENTRY);
            j--;
        }
        memcpy(out[j], s.ix[i], CK_IX_ENTRY);
    }
    ck_subj__fini(&s);
    ck_arena__free(&a);
    ck_env__read_end(&f->st->keyring, ktxn);
    ck_env__read_end(&f->st->data, txn);
    sodium_free(dk);
    return n;
}

/* The import hashes an identifying value when it checks the line: the
 * blind index keys and tombstone tags it stores are exactly those of a
 * write through ck_put_json (which makes them as it writes), for values
 * that only normalise to the same text; both subjects are then found by
 * each value. An update that changes one value changes that entry only. */
static void test_identifying_entries_match_put(void **state)
{
    fx *f = *state;
    ck_import_stats s;
    rejects rj = {0};
    import_text(f->st,
                "{\"ref\":\"K-1\",\"fields\":{\"email\":\" Zoe.Lemaitre@Example.FR \","
                "\"phone\":\"06 12 34 56 78\",\"city\":\"Caen\"}}\n",
                0, &rj, &s);
    assert_int_equal(s.created, 1);
    tu_put(f, "K-2", "{\"email\":\"zoe.lemaitre@example.fr\",\"phone\":\"+33612345678\"}");

    uint8_t a[8][CK_IX_ENTRY], b[8][CK_IX_ENTRY];
    assert_int_equal(field_entries(f, "K-1", a), 2);
    assert_int_equal(field_entries(f, "K-2", b), 2);
    assert_memory_equal(a, b, 2 * CK_IX_ENTRY);
    unsigned char sid[CK_SUBJECT_ID_BYTES];
    ck_who by_mail = {CK_BY_LOOKUP, "ZOE.LEMAITRE@example.fr", 0, "email", NULL, NULL};
    ck_who by_phone = {CK_BY_LOOKUP, "0612345678", 0, "phone", NULL, NULL};
    assert_int_equal(ck_subject_find(sid, f->st, &by_mail), CK_EAMBIGUOUS);
    assert_int_equal(ck_subject_find(sid, f->st, &by_phone), CK_EAMBIGUOUS);

    import_text(f->st, "{\"ref\":\"K-1\",\"fields\":{\"phone\":\"07 00 00 00 01\"}}\n", 0, &rj, &s);
    assert_int_equal(s.updated, 1);
    tu_put(f, "K-2", "{\"phone\":\"+33 7 00 00 00 01\"}");
    assert_int_equal(field_entries(f, "K-1", a), 2);
    assert_int_equal(field_entries(f, "K-2", b), 2);
    assert_memory_equal(a, b, 2 * CK_IX_ENTRY);
    assert_int_equal(ck_subject_find(sid, f->st, &by_phone), CK_ENOTFOUND);
    assert_int_equal(rj.n, 0);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upsert_rewrites_some_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_line_mid_batch_writes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_rerun_after_map_grew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identifying_entries_match_put, setup, teardown),
    };
    return cmocka_run_group_tests_name("import", tests, NULL, NULL);
}
