/*
 * test_audit.c - the tamper-evident audit log: append and verify, every kind
 * of tampering named at the right entry, torn tails, fail-closed writes,
 * group commit across threads and processes, segments, checkpoints,
 * queries, the entry decoder on hostile bytes.
 *
 * Set CK_AUDIT_BENCH=1 to run the throughput measurement as well (it takes
 * a few seconds and asserts the group-commit gain; see docs/audit.md).
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#include "audit.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Fixtures and helpers                                                     */
/* ------------------------------------------------------------------------ */

typedef struct fx {
    char *root;
    char dir[PATH_MAX];
    char key[PATH_MAX];
    char seg1[PATH_MAX];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->root = tu_mkdtemp("audit");
    tu_path(f->dir, sizeof f->dir, f->root, "store");
    tu_path(f->key, sizeof f->key, f->root, "store.key");
    tu_path(f->seg1, sizeof f->seg1, f->dir, CK_AUDIT_FIRST_SEGMENT);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tu_rmtree(f->root);
    free(f->root);
    free(f);
    return 0;
}

static ck_options opts_for(const fx *f, ck_audit_mode mode, unsigned flags)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    o.flags = CK_INIT_CREATE_KEY_FILE | flags;
    o.audit_mode = mode;
    return o;
}

static ck_store *init_store(const fx *f)
{
    ck_options o = opts_for(f, CK_AUDIT_BATCHED, 0);
    ck_store *st = NULL;
    assert_int_equal(ck_init(&st, f->dir, &o), CK_OK);
    return st;
}

static ck_store *open_store(const fx *f, unsigned flags)
{
    ck_options o = opts_for(f, CK_AUDIT_BATCHED, flags);
    ck_store *st = NULL;
    char err[CK_ERRMSG_MAX] = "";
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    int rc = ck_open(&st, f->dir, &o);
    if (rc != CK_OK)
        fail_msg("ck_open: %d (%s)", rc, err);
    return st;
}

/* Append a release-like entry numbered `i` (actor "tester"). */
static int append_n(ck_store *st, int i, bool strict)
{
    char n[32];
    snprintf(n, sizeof n, "%d", i);
    const char *rel[] = {"first_name", "city"};
    ck_audit_withheld_field wh[] = {{"email", "no_consent"}, {"allergies", "special_category"}};
    ck_audit_detail_item d[] = {{"n", n, 0}, {"count", NULL, i}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = "tester";
    e.action = "release";
    e.purpose = (i % 2) ? "marketing.email" : "analytics";
    e.released = rel;
    e.n_released = 2;
    e.withheld = wh;
    e.n_withheld = 2;
    e.detail = d;
    e.n_detail = 2;
    return ck_audit__append(st, &e, strict, NULL, NULL);
}

static ck_audit_verify_result verify(ck_store *st, const ck_audit_checkpoint *cp, int expect)
{
    ck_audit_verify_result r = CK_AUDIT_VERIFY_INIT;
    int rc = ck_audit_verify(&r, st, cp);
    if (rc != expect)
        fail_msg("verify: got %d, want %d (%s)", rc, expect, ck_errmsg(st));
    return r;
}

/* A store with the init entry and entries 2..n+1 (n appended). */
static void make_log(const fx *f, int n)
{
    ck_store *st = init_store(f);
    for (int i = 0; i < n; i++)
        assert_int_equal(append_n(st, i, false), CK_OK);
    ck_close(st);
}

/* Frame offsets of a segment's bytes; returns their count. */
static size_t frames(const unsigned char *p, size_t n, size_t *off, size_t max)
{
    size_t k = 0, pos = 0;
    while (pos + 4 <= n && k < max) {
        uint32_t len = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 |
                       (uint32_t)p[pos + 2] << 8 | p[pos + 3];
        if (pos + 4 + len + 32 > n)
            break;
        off[k++] = pos;
        pos += 4 + len + 32;
    }
    off[k] = pos;
    return k;
}

static size_t frame_len(const unsigned char *p, size_t off)
{
    return 4 +
           ((uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 |
            p[off + 3]) +
           32;
}

/* Open the store after tampering with segment 1 and expect verify to name
 * entry `seq` at `offset` with `problem`. */
static void expect_bad(const fx *f, uint64_t seq, uint64_t offset, ck_audit_problem problem)
{
    ck_store *st = open_store(f, CK_OPEN_RDONLY);
    ck_audit_verify_result r = verify(st, NULL, CK_EINTEGRITY);
    assert_int_equal(r.problem, problem);
    assert_int_equal(r.seq, seq);
    assert_int_equal(r.offset, offset);
    assert_string_equal(r.segment, CK_AUDIT_FIRST_SEGMENT);
    assert_non_null(strstr(ck_errmsg(st), CK_AUDIT_FIRST_SEGMENT));
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* Basics                                                                   */
/* ------------------------------------------------------------------------ */

static void test_init_creates_log(void **state)
{
    fx *f = *state;
    ck_store *st = init_store(f);
    struct stat sb;
    assert_int_equal(stat(f->seg1, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 1);
    assert_int_equal(r.head_seq, 1);
    assert_int_equal(r.segments, 1);

    ck_audit_cursor *c = NULL;
    const ck_audit_record *rec;
    assert_int_equal(ck_audit_query(&c, st, NULL), CK_OK);
    assert_int_equal(ck_audit_next(c, &rec), CK_OK);
    assert_int_equal(rec->seq, 1);
    assert_string_equal(rec->action, "init");
    assert_string_equal(rec->actor, "ckstore");
    assert_memory_equal(rec->hash, r.head_hash, 32);
    assert_int_equal(ck_audit_next(c, &rec), CK_ENOTFOUND);
    assert_null(rec);
    ck_audit_cursor_free(c);
    ck_close(st);

    /* Reopen: the chain continues. */
    st = open_store(f, 0);
    assert_int_equal(append_n(st, 1, true), CK_OK);
    r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 2);
    ck_close(st);
}

static void test_missing_log_refused(void **state)
{
    fx *f = *state;
    ck_close(init_store(f));
    assert_int_equal(unlink(f->seg1), 0);
    ck_options o = opts_for(f, CK_AUDIT_BATCHED, 0);
    ck_store *st = NULL;
    char err[CK_ERRMSG_MAX] = "";
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_EINTEGRITY);
    assert_null(st);
    assert_non_null(strstr(err, "audit"));
}

static void test_append_query_filters(void **state)
{
    fx *f = *state;
    ck_store *st = init_store(f);
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
    unsigned char dk[32];
    uint8_t sid[16];
    randombytes_buf(dk, sizeof dk);
    randombytes_buf(sid, sizeof sid);
    ck_audit__pseudonym(pn, st, dk, sid);

    uint64_t t0 = (uint64_t)time(NULL) * 1000u - 1000u;
    for (int i = 0; i < 20; i++)
        assert_int_equal(append_n(st, i, i % 3 == 0), CK_OK);
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = "Jane Doe (DPO)";
    e.action = "export";
    e.subject = pn;
    e.recipient = "acme partner";
    uint64_t seq = 0;
    uint8_t hash[32];
    assert_int_equal(ck_audit__append(st, &e, true, &seq, hash), CK_OK);
    assert_int_equal(seq, 22);

    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 22);
    assert_memory_equal(r.head_hash, hash, 32);

    ck_audit_filter fl = CK_AUDIT_FILTER_INIT;
    ck_audit_cursor *c = NULL;
    const ck_audit_record *rec;
    int n;

    fl.purpose = "marketing.email";
    assert_int_equal(ck_audit_query(&c, st, &fl), CK_OK);
    for (n = 0; ck_audit_next(c, &rec) == CK_OK; n++) {
        assert_string_equal(rec->purpose, "marketing.email");
        assert_int_equal(rec->n_released, 2);
        assert_string_equal(rec->released[1], "city");
        assert_int_equal(rec->n_withheld, 2);
        assert_string_equal(rec->withheld[0].field, "email");
        assert_string_equal(rec->withheld[0].reason, "no_consent");
        assert_int_equal(rec->n_detail, 2);
        assert_null(rec->detail[1].str);
        assert_int_equal(rec->detail[1].num % 2, 1);
    }
    assert_int_equal(n, 10);
    ck_audit_cursor_free(c);

    fl = (ck_audit_filter)CK_AUDIT_FILTER_INIT;
    fl.subject = pn;
    assert_int_equal(ck_audit_query(&c, st, &fl), CK_OK);
    assert_int_equal(ck_audit_next(c, &rec), CK_OK);
    assert_string_equal(rec->actor, "Jane Doe (DPO)");
    assert_string_equal(rec->recipient, "acme partner");
    assert_memory_equal(rec->subject, pn, sizeof pn);
    assert_int_equal(ck_audit_next(c, &rec), CK_ENOTFOUND);
    ck_audit_cursor_free(c);

    fl = (ck_audit_filter)CK_AUDIT_FILTER_INIT;
    fl.actor = "tester";
    fl.action = "release";
    fl.since_ms = t0;
    assert_int_equal(ck_audit_query(&c, st, &fl), CK_OK);
    for (n = 0; ck_audit_next(c, &rec) == CK_OK; n++)
        ;
    assert_int_equal(n, 20);
    ck_audit_cursor_free(c);

    fl.until_ms = t0; /* nothing before t0 */
    fl.since_ms = 0;
    assert_int_equal(ck_audit_query(&c, st, &fl), CK_OK);
    assert_int_equal(ck_audit_next(c, &rec), CK_ENOTFOUND);
    ck_audit_cursor_free(c);

    fl.version = 99;
    assert_int_equal(ck_audit_query(&c, st, &fl), CK_EINVAL);
    assert_null(c);
    ck_close(st);
}

/* The API refuses anything that looks like a value; the log holds names. */
static void test_entries_hold_names_only(void **state)
{
    fx *f = *state;
    ck_store *st = init_store(f);
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = "crm";
    e.action = "release";
    assert_int_equal(ck_audit__append(st, NULL, false, NULL, NULL), CK_EINVAL);

    ck_audit_detail_item email[] = {{"ref", "alice@example.com", 0}};
    e.detail = email;
    e.n_detail = 1;
    assert_int_equal(ck_audit__append(st, &e, false, NULL, NULL), CK_EINVAL);
    assert_null(strstr(ck_errmsg(st), "alice"));
    ck_audit_detail_item spaced[] = {{"name", "Alice Martin", 0}};
    e.detail = spaced;
    assert_int_equal(ck_audit__append(st, &e, false, NULL, NULL), CK_EINVAL);
    e.detail = NULL;
    e.n_detail = 0;

    const char *bad_field[] = {"first name"};
    e.released = bad_field;
    e.n_released = 1;
    assert_int_equal(ck_audit__append(st, &e, false, NULL, NULL), CK_EINVAL);
    e.released = NULL;
    e.n_released = 0;
    e.purpose = "marketing email";
    assert_int_equal(ck_audit__append(st, &e, false, NULL, NULL), CK_EINVAL);
    e.purpose = NULL;
    e.actor = "bad\nactor";
    assert_int_equal(ck_audit__append(st, &e, false, NULL, NULL), CK_EINVAL);
    e.actor = NULL;
    assert_int_equal(ck_audit__append(st, &e, false, NULL, NULL), CK_EINVAL);
    e.actor = "crm";
    e.action = "";
    assert_int_equal(ck_audit__append(st, &e, false, NULL, NULL), CK_EINVAL);
    e.action = "release";
    e.n_released = CK_AUDIT_LIST_MAX + 1;
    e.released = bad_field;
    assert_int_equal(ck_audit__append(st, &e, false, NULL, NULL), CK_ELIMIT);
    /* Refused entries wrote nothing. */
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 1);
    ck_close(st);
    assert_false(tu_file_contains(f->seg1, "alice", 5));
    assert_false(tu_file_contains(f->seg1, "Alice", 5));
}

static void test_key_event(void **state)
{
    fx *f = *state;
    ck_store *st = init_store(f);
    assert_int_equal(ck_audit__key_event(st, "ckstore", "passphrase", "set"), CK_OK);
    assert_int_equal(ck_audit__key_event(st, "ckstore", "key file", "set"), CK_EINVAL);
    ck_audit_filter fl = CK_AUDIT_FILTER_INIT;
    fl.action = "key";
    ck_audit_cursor *c;
    const ck_audit_record *rec;
    assert_int_equal(ck_audit_query(&c, st, &fl), CK_OK);
    assert_int_equal(ck_audit_next(c, &rec), CK_OK);
    assert_int_equal(rec->n_detail, 2);
    assert_string_equal(rec->detail[0].str, "passphrase");
    assert_string_equal(rec->detail[1].str, "set");
    assert_int_equal(ck_audit_next(c, &rec), CK_ENOTFOUND);
    ck_audit_cursor_free(c);
    ck_close(st);
}

static void test_pseudonym(void **state)
{
    fx *f = *state;
    ck_store *st = init_store(f);
    unsigned char dk[32], dk2[32];
    uint8_t sid[16], sid2[16], a[16], b[16], c[16], d[16];
    randombytes_buf(dk, sizeof dk);
    randombytes_buf(dk2, sizeof dk2);
    randombytes_buf(sid, sizeof sid);
    memcpy(sid2, sid, sizeof sid);
    sid2[0] ^= 1;
    ck_audit__pseudonym(a, st, dk, sid);
    ck_audit__pseudonym(b, st, dk, sid);
    ck_audit__pseudonym(c, st, dk2, sid); /* data key destroyed and remade */
    ck_audit__pseudonym(d, st, dk, sid2);
    assert_memory_equal(a, b, 16);
    assert_memory_not_equal(a, c, 16);
    assert_memory_not_equal(a, d, 16);
    assert_memory_not_equal(a, sid, 16);
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* Tampering                                                                */
/* ------------------------------------------------------------------------ */

#define NLOG 10 /* entries appended: seq 2..11, plus init = 11 frames */

static void test_tamper_flip_entry_and_hash(void **state)
{
    fx *f = *state;
    make_log(f, NLOG);
    size_t n, off[64];
    unsigned char *orig = tu_read_file(f->seg1, &n);
    assert_int_equal(frames(orig, n, off, 63), NLOG + 1);
    assert_int_equal(off[NLOG + 1], n);

    /* A letter of entry 5's actor ("tester" -> "tfster"). */
    unsigned char *bad = malloc(n);
    memcpy(bad, orig, n);
    unsigned char *hit = memmem(bad + off[4], frame_len(bad, off[4]), "tester", 6);
    assert_non_null(hit);
    hit[1] = 'f';
    tu_write_file(f->seg1, bad, n, 0600);
    expect_bad(f, 5, off[4], CK_AUDIT_PROBLEM_HASH);

    /* A byte of entry 7's stored hash. */
    memcpy(bad, orig, n);
    bad[off[7] - 1] ^= 0x40; /* last byte of frame 6 = entry 7 */
    tu_write_file(f->seg1, bad, n, 0600);
    expect_bad(f, 7, off[6], CK_AUDIT_PROBLEM_HASH);

    /* Every single-bit flip anywhere is detected - in a length field too:
     * a complete frame with a wrong length is not taken for a torn tail. */
    ck_store *ro = open_store(f, CK_OPEN_RDONLY); /* verify re-reads the files */
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, orig, n);
        bad[i] ^= 0x01;
        tu_write_file(f->seg1, bad, n, 0600);
        ck_audit_verify_result r = CK_AUDIT_VERIFY_INIT;
        assert_int_equal(ck_audit_verify(&r, ro, NULL), CK_EINTEGRITY);
        assert_true(r.offset <= i);
    }
    ck_close(ro);
    tu_write_file(f->seg1, orig, n, 0600);
    ck_store *st = open_store(f, 0);
    verify(st, NULL, CK_OK);
    ck_close(st);
    free(bad);
    free(orig);
}

static void test_tamper_delete_reorder_insert(void **state)
{
    fx *f = *state;
    make_log(f, NLOG);
    size_t n, off[64];
    unsigned char *orig = tu_read_file(f->seg1, &n);
    assert_int_equal(frames(orig, n, off, 63), NLOG + 1);
    unsigned char *bad = malloc(n + 4096);
    size_t m;

    /* Delete entry 4 (frame 3): the place of entry 4 holds entry 5. */
    m = 0;
    memcpy(bad, orig, off[3]);
    m = off[3];
    memcpy(bad + m, orig + off[4], n - off[4]);
    m += n - off[4];
    tu_write_file(f->seg1, bad, m, 0600);
    expect_bad(f, 4, off[3], CK_AUDIT_PROBLEM_SEQ);

    /* Swap entries 6 and 7 (frames 5 and 6). */
    m = 0;
    memcpy(bad, orig, off[5]);
    m = off[5];
    memcpy(bad + m, orig + off[6], off[7] - off[6]);
    m += off[7] - off[6];
    memcpy(bad + m, orig + off[5], off[6] - off[5]);
    m += off[6] - off[5];
    memcpy(bad + m, orig + off[7], n - off[7]);
    m += n - off[7];
    assert_int_equal(m, n);
    tu_write_file(f->seg1, bad, m, 0600);
    expect_bad(f, 6, off[5], CK_AUDIT_PROBLEM_SEQ);

    /* Insert a forged entry after entry 3: a copy of entry 4 with another
     * actor and a made-up hash (the forger has no key). */
    size_t fl = off[4] - off[3];
    unsigned char *forged = malloc(fl);
    memcpy(forged, orig + off[3], fl);
    unsigned char *hit = memmem(forged, fl, "tester", 6);
    assert_non_null(hit);
    memcpy(hit, "forger", 6);
    randombytes_buf(forged + fl - 32, 32);
    memcpy(bad, orig, off[3]);
    m = off[3];
    memcpy(bad + m, forged, fl);
    m += fl;
    memcpy(bad + m, orig + off[3], n - off[3]);
    m += n - off[3];
    tu_write_file(f->seg1, bad, m, 0600);
    expect_bad(f, 4, off[3], CK_AUDIT_PROBLEM_HASH);
    free(forged);

    /* Cut bytes out of the middle (not on a frame boundary). */
    memcpy(bad, orig, off[5] + 10);
    m = off[5] + 10;
    memcpy(bad + m, orig + off[5] + 50, n - off[5] - 50);
    m += n - off[5] - 50;
    tu_write_file(f->seg1, bad, m, 0600);
    {
        ck_store *st = open_store(f, CK_OPEN_RDONLY);
        ck_audit_verify_result r = verify(st, NULL, CK_EINTEGRITY);
        assert_int_equal(r.seq, 6);
        assert_int_equal(r.offset, off[5]);
        ck_close(st);
    }

    /* An impossible length field. */
    memcpy(bad, orig, n);
    bad[off[2]] = 0xff;
    tu_write_file(f->seg1, bad, n, 0600);
    expect_bad(f, 3, off[2], CK_AUDIT_PROBLEM_UNDECODABLE);

    /* An empty log: entry 1 is missing. */
    tu_write_file(f->seg1, bad, 0, 0600);
    {
        ck_store *st = open_store(f, CK_OPEN_RDONLY);
        ck_audit_verify_result r = verify(st, NULL, CK_EINTEGRITY);
        assert_int_equal(r.problem, CK_AUDIT_PROBLEM_MISSING);
        assert_int_equal(r.seq, 1);
        ck_close(st);
    }
    free(bad);
    free(orig);
}

/* A crash mid-write leaves a torn last frame: repaired at the next open,
 * logged, not counted as tampering. Removing a COMPLETE last entry cannot
 * be seen without a checkpoint - and the checkpoint sees it. */
static void test_torn_tail_vs_removed_entry(void **state)
{
    fx *f = *state;
    make_log(f, NLOG);
    size_t n, off[64];
    unsigned char *orig = tu_read_file(f->seg1, &n);
    assert_int_equal(frames(orig, n, off, 63), NLOG + 1);

    /* Torn: the last frame loses its last 5 bytes. */
    tu_write_file(f->seg1, orig, n - 5, 0600);
    ck_store *st = open_store(f, CK_OPEN_RDONLY); /* read-only: seen, not repaired */
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, NLOG);
    assert_int_equal(r.torn_bytes, n - 5 - off[NLOG]);
    ck_close(st);

    st = open_store(f, 0);
    assert_int_equal(ck_audit_recovered(st), n - 5 - off[NLOG]);
    r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, NLOG + 1); /* NLOG kept + the "recover" entry */
    assert_int_equal(r.torn_bytes, 0);
    assert_int_equal(r.recovered_bytes, n - 5 - off[NLOG]);
    ck_audit_filter fl = CK_AUDIT_FILTER_INIT;
    fl.action = "recover";
    ck_audit_cursor *c;
    const ck_audit_record *rec;
    assert_int_equal(ck_audit_query(&c, st, &fl), CK_OK);
    assert_int_equal(ck_audit_next(c, &rec), CK_OK);
    assert_int_equal(rec->seq, NLOG + 1);
    ck_audit_cursor_free(c);
    assert_int_equal(append_n(st, 1, true), CK_OK);
    verify(st, NULL, CK_OK);

    /* Checkpoint, then remove the last complete entries. */
    ck_audit_checkpoint cp;
    assert_int_equal(ck_audit_checkpoint_make(&cp, st, NULL), CK_OK);
    verify(st, &cp, CK_OK);
    ck_close(st);
    free(orig);
    orig = tu_read_file(f->seg1, &n);
    size_t k = frames(orig, n, off, 63);
    tu_write_file(f->seg1, orig, off[k - 1], 0600); /* drop the checkpoint entry */
    st = open_store(f, 0);
    r = verify(st, NULL, CK_OK); /* the chain alone cannot tell */
    r = verify(st, &cp, CK_EINTEGRITY);
    assert_int_equal(r.problem, CK_AUDIT_PROBLEM_CHECKPOINT);
    assert_int_equal(r.seq, cp.seq);
    ck_close(st);

    /* Truncating the file in the middle of an entry far from the end looks
     * like a torn tail: the chain alone keeps the prefix; the checkpoint
     * catches the loss. */
    tu_write_file(f->seg1, orig, off[3] + 7, 0600);
    st = open_store(f, 0);
    assert_int_equal(ck_audit_recovered(st), 7);
    r = verify(st, &cp, CK_EINTEGRITY);
    assert_int_equal(r.problem, CK_AUDIT_PROBLEM_CHECKPOINT);
    ck_close(st);
    free(orig);
}

/* ------------------------------------------------------------------------ */
/* Fail closed                                                              */
/* ------------------------------------------------------------------------ */

static void test_fail_closed(void **state)
{
    fx *f = *state;
    make_log(f, 3);
    ck_store *st = open_store(f, 0);
    size_t n0, n1;
    unsigned char *before = tu_read_file(f->seg1, &n0);

    ck_audit__test_fail_next(st, CK_AUDIT_FAIL_WRITE);
    assert_int_equal(append_n(st, 7, false), CK_EIO);
    assert_non_null(strstr(ck_errmsg(st), "audit"));
    unsigned char *after = tu_read_file(f->seg1, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(after);

    ck_audit__test_fail_next(st, CK_AUDIT_FAIL_PARTIAL);
    assert_int_equal(append_n(st, 8, true), CK_ENOSPC);
    after = tu_read_file(f->seg1, &n1);
    assert_int_equal(n0, n1); /* the half frame was cut back */
    assert_memory_equal(before, after, n0);
    free(after);
    verify(st, NULL, CK_OK);

    /* The log still works and the chain continues. */
    uint64_t seq;
    assert_int_equal(append_n(st, 9, true), CK_OK);
    assert_int_equal(ck_audit_verify(&(ck_audit_verify_result)CK_AUDIT_VERIFY_INIT, st, NULL),
                     CK_OK);
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = "t";
    e.action = "key";
    assert_int_equal(ck_audit__append(st, &e, true, &seq, NULL), CK_OK);
    assert_int_equal(seq, 6);

    /* A failed fsync: the strict caller is told, and every later append
     * fails until the store is reopened. */
    ck_audit__test_fail_next(st, CK_AUDIT_FAIL_FSYNC);
    assert_int_equal(append_n(st, 10, true), CK_EIO);
    assert_int_equal(append_n(st, 11, false), CK_EIO);
    ck_close(st);
    st = open_store(f, 0);
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 7); /* the unsynced entry was written */
    assert_int_equal(append_n(st, 12, true), CK_OK);
    ck_close(st);

    /* A read-only handle cannot log, so it cannot release. */
    st = open_store(f, CK_OPEN_RDONLY);
    assert_int_equal(append_n(st, 13, false), CK_EDENIED);
    verify(st, NULL, CK_OK);
    ck_close(st);
    free(before);
}

/* ------------------------------------------------------------------------ */
/* Concurrency                                                              */
/* ------------------------------------------------------------------------ */

#define NTHREADS   8
#define PER_THREAD 100

typedef struct thr_arg {
    ck_store *st;
    int id;
    int n;
    bool strict;
    uint64_t seqs[PER_THREAD * 50];
    int rc;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *t = p;
    char actor[16];
    snprintf(actor, sizeof actor, "thread-%d", t->id);
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = "release";
    e.purpose = "analytics";
    for (int i = 0; i < t->n && t->rc == CK_OK; i++)
        t->rc = ck_audit__append(t->st, &e, t->strict, &t->seqs[i], NULL);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_threads_one_chain(void **state)
{
    fx *f = *state;
    ck_close(init_store(f));
    ck_store *st = open_store(f, 0);
    thr_arg *t = calloc(NTHREADS, sizeof *t);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        t[i] = (thr_arg){.st = st, .id = i, .n = PER_THREAD, .strict = true};
        assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].rc, CK_OK);
    }
    /* Every sequence number 2..801 handed out exactly once. */
    uint64_t *all = malloc(NTHREADS * PER_THREAD * sizeof *all);
    for (int i = 0; i < NTHREADS; i++)
        memcpy(all + i * PER_THREAD, t[i].seqs, PER_THREAD * sizeof *all);
    qsort(all, NTHREADS * PER_THREAD, sizeof *all, cmp_u64);
    for (int i = 0; i < NTHREADS * PER_THREAD; i++)
        assert_int_equal(all[i], (uint64_t)i + 2);
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 1 + NTHREADS * PER_THREAD);
    ck_close(st);
    free(all);
    free(t);
}

/* A child: open the store itself (never across fork), append n entries. */
static int child_append(const fx *f, int id, int n, uint64_t seg_max)
{
    ck_options o = opts_for(f, CK_AUDIT_BATCHED, 0);
    ck_store *st = NULL;
    if (ck_open(&st, f->dir, &o) != CK_OK)
        return 10;
    if (seg_max != 0)
        ck_audit__test_segment_max(st, seg_max);
    char actor[16];
    snprintf(actor, sizeof actor, "proc-%d", id);
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = "release";
    for (int i = 0; i < n; i++)
        if (ck_audit__append(st, &e, i % 4 == 0, NULL, NULL) != CK_OK)
            return 11;
    ck_close(st);
    return 0;
}

static void two_processes(const fx *f, uint64_t seg_max)
{
    const int per = 300;
    pid_t pid[2];
    for (int i = 0; i < 2; i++) {
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0)
            _exit(child_append(f, i, per, seg_max));
    }
    for (int i = 0; i < 2; i++) {
        int status;
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    ck_store *st = open_store(f, CK_OPEN_RDONLY);
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 1 + 2 * per);
    if (seg_max != 0)
        assert_true(r.segments > 2);
    int count[2] = {0, 0};
    ck_audit_cursor *c;
    const ck_audit_record *rec;
    assert_int_equal(ck_audit_query(&c, st, NULL), CK_OK);
    while (ck_audit_next(c, &rec) == CK_OK)
        if (strncmp(rec->actor, "proc-", 5) == 0)
            count[rec->actor[5] - '0']++;
    ck_audit_cursor_free(c);
    assert_int_equal(count[0], per);
    assert_int_equal(count[1], per);
    ck_close(st);
}

static void test_two_processes(void **state)
{
    fx *f = *state;
    ck_close(init_store(f));
    two_processes(f, 0);
}

static void test_two_processes_rolling_segments(void **state)
{
    fx *f = *state;
    ck_close(init_store(f));
    two_processes(f, 4096);
}

/* A batched append keeps the flock for a short lease; a process that then
 * goes quiet must give it back, or every other process's appends would
 * wait forever. The child is forked before the parent opens the store (no
 * thread may be running at a fork: ThreadSanitizer), waits until the
 * parent has appended and gone quiet, then appends, strict, under an
 * alarm that kills it if the lease is never given back. */
static void test_lease_given_back(void **state)
{
    fx *f = *state;
    ck_close(init_store(f));
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        alarm(10); /* a lease never given back kills the child */
        ck_options o = opts_for(f, CK_AUDIT_BATCHED, 0);
        ck_store *b = NULL;
        if (ck_open(&b, f->dir, &o) != CK_OK)
            _exit(3);
        int rc = append_n(b, 2, true);
        ck_close(b);
        _exit(rc == CK_OK ? 0 : 1);
    }
    close(go[0]);
    ck_store *a = open_store(f, 0);
    assert_int_equal(append_n(a, 1, false), CK_OK); /* takes the lease */
    assert_int_equal(write(go[1], "g", 1), 1);      /* then goes quiet */
    close(go[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* A's next batch adopts B's entry and chains after it. */
    assert_int_equal(append_n(a, 3, false), CK_OK);
    ck_audit_verify_result r = verify(a, NULL, CK_OK);
    assert_int_equal(r.entries, 4);
    ck_audit_cursor *c;
    const ck_audit_record *rec;
    const char *want[] = {"init", "1", "2", "3"};
    int k = 0;
    assert_int_equal(ck_audit_query(&c, a, NULL), CK_OK);
    while (ck_audit_next(c, &rec) == CK_OK) {
        assert_true(k < 4);
        if (k > 0) {
            assert_true(rec->n_detail > 0);
            assert_string_equal(rec->detail[0].str, want[k]);
        }
        k++;
    }
    ck_audit_cursor_free(c);
    assert_int_equal(k, 4);
    ck_close(a);
}

/* ------------------------------------------------------------------------ */
/* Staging                                                                  */
/* ------------------------------------------------------------------------ */

#define STAGE_HDR 4096u

/* The staging file's `len` (bytes staged), and its frames. */
static uint64_t stage_len(const fx *f, unsigned char **data)
{
    char p[PATH_MAX];
    size_t n;
    tu_path(p, sizeof p, f->dir, CK_AUDIT_STAGE_FILE);
    unsigned char *b = tu_read_file(p, &n);
    assert_true(n >= STAGE_HDR);
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len = len << 8 | b[24 + i];
    if (data != NULL) {
        *data = malloc(len + 1);
        memcpy(*data, b + STAGE_HDR, len);
    }
    free(b);
    return len;
}

/* In a child process: open the store, append entries 1..n in batched mode
 * and die without closing it - the frames are still staged (a lease and a
 * flush window of a minute: nothing moves them in time). Forked before the
 * parent opens the store (no thread may run at a fork). */
static void die_with_staged(const fx *f, int n)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ck_options o = opts_for(f, CK_AUDIT_BATCHED, 0);
        o.audit_flush_ms = 60000;
        ck_store *st = NULL;
        if (ck_open(&st, f->dir, &o) != CK_OK || !ck_audit__test_staging(st))
            _exit(3);
        ck_audit__test_lease(st, 60ull * 1000000000u);
        for (int i = 1; i <= n; i++)
            if (append_n(st, i, false) != CK_OK)
                _exit(1);
        _exit(0); /* no ck_close: a crash, as far as the log can tell */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Offsets of the frames in `n` bytes of frames; returns their count. */
static int frame_offsets(const unsigned char *p, size_t n, size_t *off, int max)
{
    int k = 0;
    for (size_t at = 0; at + 4 <= n && k < max;) {
        off[k++] = at;
        at += 4 + 32 +
              ((size_t)p[at] << 24 | (size_t)p[at + 1] << 16 | (size_t)p[at + 2] << 8 | p[at + 3]);
    }
    return k;
}

/* A new store whose 5 last entries a dead process left staged: their bytes
 * (malloc'ed, in *staged), the frames' offsets in them, their length. */
static uint64_t five_staged(const fx *f, unsigned char **staged, size_t off[5])
{
    ck_close(init_store(f));
    die_with_staged(f, 5);
    uint64_t len = stage_len(f, staged);
    assert_int_equal(frame_offsets(*staged, len, off, 5), 5);
    return len;
}

/* Entries staged by a process that died are replayed by the next open: not
 * one is lost, and none is counted as torn. */
static void test_stage_replayed_after_crash(void **state)
{
    fx *f = *state;
    ck_close(init_store(f));
    size_t n0, n1;
    free(tu_read_file(f->seg1, &n0));
    die_with_staged(f, 5);
    assert_true(stage_len(f, NULL) > 0);
    free(tu_read_file(f->seg1, &n1));
    assert_int_equal(n1, n0); /* staged, not in the segment */

    ck_store *st = open_store(f, 0);
    assert_int_equal(ck_audit_recovered(st), 0);
    assert_int_equal(stage_len(f, NULL), 0);
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 6);
    assert_int_equal(r.torn_bytes, 0);
    /* The chain goes on after them. */
    uint64_t seq;
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = "t";
    e.action = "key";
    assert_int_equal(ck_audit__append(st, &e, true, &seq, NULL), CK_OK);
    assert_int_equal(seq, 7);
    ck_close(st);
}

/* Died while moving its staged frames to the segment: the half frame in the
 * segment is cut as a torn tail, the frames already there are kept, the
 * rest are replayed - every entry once. */
static void test_stage_died_while_moving(void **state)
{
    fx *f = *state;
    unsigned char *staged;
    size_t off[5];
    five_staged(f, &staged, off);
    size_t part = off[2] + 10; /* two whole frames and the start of a third */
    FILE *fp = fopen(f->seg1, "ab");
    assert_non_null(fp);
    assert_int_equal(fwrite(staged, 1, part, fp), part);
    fclose(fp);

    ck_store *st = open_store(f, 0);
    assert_int_equal(ck_audit_recovered(st), 10); /* the cut-off start of the third */
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 7); /* init, 1..5, and the "recover" entry */
    ck_audit_cursor *c;
    const ck_audit_record *rec;
    int k = 0;
    assert_int_equal(ck_audit_query(&c, st, NULL), CK_OK);
    while (ck_audit_next(c, &rec) == CK_OK) {
        if (k >= 1 && k <= 5) {
            char want[8];
            snprintf(want, sizeof want, "%d", k);
            assert_string_equal(rec->detail[0].str, want);
        }
        k++;
    }
    ck_audit_cursor_free(c);
    assert_int_equal(k, 7);
    ck_close(st);
    free(staged);
}

/* Staged bytes that do not continue the chain (after a power loss the
 * staging file may hold anything) are not replayed: the frames before them
 * are, the rest is counted as torn and the repair is logged. */
static void test_stage_damaged_frames_dropped(void **state)
{
    fx *f = *state;
    unsigned char *staged;
    size_t off[5];
    uint64_t len = five_staged(f, &staged, off);
    /* flip a byte of the third frame's entry, in the file */
    char p[PATH_MAX];
    tu_path(p, sizeof p, f->dir, CK_AUDIT_STAGE_FILE);
    size_t n;
    unsigned char *b = tu_read_file(p, &n);
    b[STAGE_HDR + off[2] + 12] ^= 0x40;
    tu_write_file(p, b, n, 0600);
    free(b);

    ck_store *st = open_store(f, 0);
    assert_int_equal(ck_audit_recovered(st), len - off[2]);
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 4); /* init, 1, 2, and the "recover" entry */
    assert_int_equal(stage_len(f, NULL), 0);
    ck_close(st);
    free(staged);
}

/* Staged entries are in the chain before append returns, and a read of the
 * log by the same process sees them. A batch that cannot be staged
 * (injected) fails, changes nothing, and gives the flock back with what was
 * staged before it moved to the segment. Without staging, each batch is in
 * the segment when append returns. */
static void test_stage_visible_and_fail_closed(void **state)
{
    fx *f = *state;
    ck_close(init_store(f));
    ck_options o = opts_for(f, CK_AUDIT_BATCHED, 0);
    o.audit_flush_ms = 60000;
    ck_store *st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK);
    assert_true(ck_audit__test_staging(st));
    ck_audit__test_lease(st, 60ull * 1000000000u);
    size_t n0, n1;
    free(tu_read_file(f->seg1, &n0));
    assert_int_equal(append_n(st, 1, false), CK_OK);
    uint64_t staged = stage_len(f, NULL);
    assert_true(staged > 0);
    free(tu_read_file(f->seg1, &n1));
    assert_int_equal(n1, n0);
    ck_audit_verify_result r = verify(st, NULL, CK_OK); /* moves them first */
    assert_int_equal(r.entries, 2);
    assert_int_equal(stage_len(f, NULL), 0);
    free(tu_read_file(f->seg1, &n1));
    assert_int_equal(n1, n0 + staged);

    assert_int_equal(append_n(st, 2, false), CK_OK);
    assert_true(stage_len(f, NULL) > 0);
    ck_audit__test_fail_next(st, CK_AUDIT_FAIL_WRITE);
    assert_int_equal(append_n(st, 3, false), CK_EIO);
    assert_int_equal(stage_len(f, NULL), 0); /* entry 2 moved, 3 nowhere */
    assert_int_equal(verify(st, NULL, CK_OK).entries, 3);
    ck_audit__test_fail_next(st, CK_AUDIT_FAIL_PARTIAL);
    assert_int_equal(append_n(st, 4, false), CK_ENOSPC);
    assert_int_equal(stage_len(f, NULL), 0);
    assert_int_equal(verify(st, NULL, CK_OK).entries, 3);

    ck_audit__test_stage_off(st);
    assert_false(ck_audit__test_staging(st));
    free(tu_read_file(f->seg1, &n0));
    assert_int_equal(append_n(st, 5, false), CK_OK);
    free(tu_read_file(f->seg1, &n1));
    assert_true(n1 > n0); /* written at once */
    assert_int_equal(stage_len(f, NULL), 0);
    ck_close(st);
    st = open_store(f, 0);
    r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 4);
    assert_int_equal(r.head_seq, 4);
    ck_close(st);
}

/* Staged frames that cannot be moved to the segment (injected): the read
 * that needed them fails, the handle appends no more (its callers had
 * their answers), and the frames stay staged - the next open replays
 * them, so not one entry is lost. */
static void test_stage_move_fails(void **state)
{
    fx *f = *state;
    ck_close(init_store(f));
    ck_options o = opts_for(f, CK_AUDIT_BATCHED, 0);
    o.audit_flush_ms = 60000;
    ck_store *st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK);
    assert_true(ck_audit__test_staging(st));
    ck_audit__test_lease(st, 60ull * 1000000000u);
    size_t n0, n1;
    free(tu_read_file(f->seg1, &n0));
    assert_int_equal(append_n(st, 1, false), CK_OK);
    uint64_t staged = stage_len(f, NULL);
    assert_true(staged > 0);

    ck_audit__test_fail_next(st, CK_AUDIT_FAIL_PARTIAL);
    ck_audit_verify_result r = CK_AUDIT_VERIFY_INIT;
    assert_int_equal(ck_audit_verify(&r, st, NULL), CK_ENOSPC);
    assert_non_null(strstr(ck_errmsg(st), "staged"));
    assert_int_equal(append_n(st, 2, false), CK_ENOSPC);
    assert_int_equal(stage_len(f, NULL), staged);
    free(tu_read_file(f->seg1, &n1));
    assert_int_equal(n1, n0); /* the half move was cut back */
    ck_close(st);

    st = open_store(f, 0);
    assert_int_equal(ck_audit_recovered(st), 0);
    r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 2); /* init and entry 1 */
    assert_int_equal(stage_len(f, NULL), 0);
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* Segments                                                                 */
/* ------------------------------------------------------------------------ */

static void test_segments(void **state)
{
    fx *f = *state;
    ck_store *st = init_store(f);
    ck_audit__test_segment_max(st, 2048);
    for (int i = 0; i < 100; i++)
        assert_int_equal(append_n(st, i, i % 10 == 0), CK_OK);
    ck_audit_verify_result r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 101);
    assert_true(r.segments >= 4);
    unsigned segs = r.segments;
    ck_close(st);

    /* Reopen: appends continue in the last segment. */
    st = open_store(f, 0);
    ck_audit__test_segment_max(st, 2048);
    assert_int_equal(append_n(st, 1, true), CK_OK);
    r = verify(st, NULL, CK_OK);
    assert_int_equal(r.entries, 102);
    assert_true(r.segments >= segs);
    ck_close(st);

    /* A missing middle segment is named. */
    char p[PATH_MAX];
    tu_path(p, sizeof p, f->dir, "audit-000002.log");
    assert_int_equal(unlink(p), 0);
    st = open_store(f, CK_OPEN_RDONLY);
    r = verify(st, NULL, CK_EINTEGRITY);
    assert_int_equal(r.problem, CK_AUDIT_PROBLEM_MISSING);
    assert_string_equal(r.segment, "audit-000002.log");
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                              */
/* ------------------------------------------------------------------------ */

static void test_checkpoint(void **state)
{
    fx *f = *state;
    make_log(f, 5);
    ck_store *st = open_store(f, 0);
    ck_audit_checkpoint cp;
    assert_int_equal(ck_audit_checkpoint_make(&cp, st, NULL), CK_OK);
    assert_int_equal(cp.seq, 7);
    assert_int_equal(ck_audit_checkpoint_check(&cp), CK_OK);
    char kp[PATH_MAX];
    tu_path(kp, sizeof kp, f->dir, "audit-signing.key");
    struct stat sb;
    assert_int_equal(stat(kp, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* The log goes on and still extends the checkpoint. */
    assert_int_equal(append_n(st, 1, false), CK_OK);
    ck_audit_verify_result r = verify(st, &cp, CK_OK);
    assert_int_equal(r.entries, 8);

    /* The same key signs the next checkpoint. */
    ck_audit_checkpoint cp2;
    assert_int_equal(ck_audit_checkpoint_make(&cp2, st, NULL), CK_OK);
    assert_memory_equal(cp2.public_key, cp.public_key, 32);
    assert_true(cp2.seq > cp.seq);

    /* A wrong signature, a changed head, another store. */
    ck_audit_checkpoint bad = cp;
    bad.signature[3] ^= 1;
    assert_int_equal(ck_audit_checkpoint_check(&bad), CK_EINTEGRITY);
    r = verify(st, &bad, CK_EINTEGRITY);
    assert_int_equal(r.problem, CK_AUDIT_PROBLEM_CHECKPOINT);
    bad = cp;
    bad.seq = 3; /* signed for 7 */
    verify(st, &bad, CK_EINTEGRITY);
    bad = cp;
    bad.store_id[0] ^= 1;
    verify(st, &bad, CK_EINTEGRITY);
    bad = cp;
    bad.version = 0;
    verify(st, &bad, CK_EINVAL);

    /* A checkpoint whose hash the log does not hold at that seq (a log
     * rewritten by someone holding the store key would be like this):
     * re-sign it with the same key so that only the hash differs. */
    unsigned char seed[32], pk[32], sk[64];
    size_t klen;
    unsigned char *kb = tu_read_file(kp, &klen);
    assert_int_equal(klen, 32);
    memcpy(seed, kb, 32);
    free(kb);
    crypto_sign_seed_keypair(pk, sk, seed);
    bad = cp;
    bad.hash[0] ^= 1;
    uint8_t msg[27 + 16 + 16 + 32];
    memcpy(msg, "ckstore-audit-checkpoint-v1", 27);
    memcpy(msg + 27, bad.store_id, 16);
    for (int i = 0; i < 8; i++) {
        msg[43 + i] = (uint8_t)(bad.seq >> (56 - 8 * i));
        msg[51 + i] = (uint8_t)(bad.time_ms >> (56 - 8 * i));
    }
    memcpy(msg + 59, bad.hash, 32);
    crypto_sign_detached(bad.signature, NULL, msg, sizeof msg, sk);
    assert_int_equal(ck_audit_checkpoint_check(&bad), CK_OK);
    r = verify(st, &bad, CK_EINTEGRITY);
    assert_int_equal(r.problem, CK_AUDIT_PROBLEM_CHECKPOINT);
    assert_int_equal(r.seq, 7);

    /* An unsafe signing key file is refused. */
    chmod(kp, 0644);
    assert_int_equal(ck_audit_checkpoint_make(&cp2, st, NULL), CK_EKEY);
    chmod(kp, 0600);
    char other[PATH_MAX];
    tu_path(other, sizeof other, f->root, "other-signing.key");
    assert_int_equal(ck_audit_checkpoint_make(&cp2, st, other), CK_OK);
    assert_memory_not_equal(cp2.public_key, cp.public_key, 32);
    ck_close(st);

    /* Read-only: no checkpoint (it is logged). */
    st = open_store(f, CK_OPEN_RDONLY);
    assert_int_equal(ck_audit_checkpoint_make(&cp2, st, NULL), CK_EDENIED);
    verify(st, &cp, CK_OK);
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* The decoder on hostile bytes                                             */
/* ------------------------------------------------------------------------ */

static void test_decode_hostile(void **state)
{
    fx *f = *state;
    make_log(f, 1);
    size_t n, off[8];
    unsigned char *b = tu_read_file(f->seg1, &n);
    assert_int_equal(frames(b, n, off, 7), 2);
    const unsigned char *entry = b + off[1] + 4;
    size_t len = frame_len(b, off[1]) - 36;
    ck_arena a = CK_ARENA_INIT;
    ck_audit_record rec;
    assert_int_equal(ck_audit__decode(&rec, entry, len, &a), CK_OK);
    assert_int_equal(rec.seq, 2);
    /* Every strict prefix fails cleanly. */
    for (size_t i = 0; i < len; i++)
        assert_int_equal(ck_audit__decode(&rec, entry, i, &a), CK_EFORMAT);
    /* Trailing bytes fail. */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, entry, len);
    longer[len] = 0xc0;
    assert_int_equal(ck_audit__decode(&rec, longer, len + 1, &a), CK_EFORMAT);
    free(longer);
    /* Random bytes never crash. */
    unsigned char junk[256];
    for (int i = 0; i < 2000; i++) {
        randombytes_buf(junk, sizeof junk);
        junk[0] = (uint8_t)(0x80 | (junk[0] & 0x0f));
        (void)ck_audit__decode(&rec, junk, 1 + randombytes_uniform(sizeof junk), &a);
        ck_arena__reset(&a);
    }
    /* Hand-made: a value where a name must be, a duplicate key, seq 0. */
    static const unsigned char dup[] = {0x84, 0xa3, 's', 'e', 'q', 0x01, 0xa3, 's',  'e', 'q',
                                        0x02, 0xa5, 'a', 'c', 't', 'o',  'r',  0xa1, 'x', 0xa6,
                                        'a',  'c',  't', 'i', 'o', 'n',  0xa1, 'y'};
    assert_int_equal(ck_audit__decode(&rec, dup, sizeof dup, &a), CK_EFORMAT);
    static const unsigned char ok[] = {0x84, 0xa3, 's',  'e', 'q', 0x01, 0xa4, 't',  'i',  'm',
                                       'e',  0x02, 0xa5, 'a', 'c', 't',  'o',  'r',  0xa1, 'x',
                                       0xa6, 'a',  'c',  't', 'i', 'o',  'n',  0xa1, 'y'};
    assert_int_equal(ck_audit__decode(&rec, ok, sizeof ok, &a), CK_OK);
    unsigned char space[sizeof ok];
    memcpy(space, ok, sizeof ok);
    space[sizeof ok - 1] = ' ';
    assert_int_equal(ck_audit__decode(&rec, space, sizeof space, &a), CK_EFORMAT);
    memcpy(space, ok, sizeof ok);
    space[5] = 0x00; /* seq 0 */
    assert_int_equal(ck_audit__decode(&rec, space, sizeof space, &a), CK_EFORMAT);
    ck_arena__free(&a);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Throughput (CK_AUDIT_BENCH=1)                                            */
/* ------------------------------------------------------------------------ */

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run_threads(ck_store *st, int nthreads, int per, bool strict)
{
    thr_arg *t = calloc((size_t)nthreads, sizeof *t);
    pthread_t th[NTHREADS];
    double t0 = secs();
    for (int i = 0; i < nthreads; i++) {
        t[i] = (thr_arg){.st = st, .id = i, .n = per, .strict = strict};
        assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].rc, CK_OK);
    }
    double dt = secs() - t0;
    free(t);
    return (double)(nthreads * per) / dt;
}

static void test_bench(void **state)
{
    fx *f = *state;
    const char *on = getenv("CK_AUDIT_BENCH");
    if (on == NULL || strcmp(on, "1") != 0)
        skip();
    ck_close(init_store(f));
    ck_store *st = open_store(f, 0);
    double batched = run_threads(st, 1, 5000, false);
    double strict1 = run_threads(st, 1, 300, true);
    double strict8 = run_threads(st, NTHREADS, 300, true);
    verify(st, NULL, CK_OK);
    ck_close(st);
    printf("audit bench: batched 1 thread %.0f appends/s; strict 1 thread %.0f/s; "
           "strict %d threads %.0f/s (x%.1f)\n",
           batched, strict1, NTHREADS, strict8, strict8 / strict1);
    assert_true(strict8 >= 5.0 * strict1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_creates_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_log_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_query_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_hold_names_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pseudonym, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_flip_entry_and_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_reorder_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_vs_removed_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_one_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_rolling_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_given_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_replayed_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_died_while_moving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_damaged_frames_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_visible_and_fail_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_move_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bench, setup, teardown),
    };
    return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
