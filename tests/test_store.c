/*
 * test_store.c - creating and opening stores, key slots, sealed values,
 * the growing map, several processes on one store.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sys/wait.h>

#include "store.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct fx {
    char *root;         /* scratch directory */
    char dir[PATH_MAX]; /* the store */
    char key[PATH_MAX]; /* its key file */
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->root = tu_mkdtemp("store");
    tu_path(f->dir, sizeof f->dir, f->root, "store");
    tu_path(f->key, sizeof f->key, f->root, "store.key");
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

static ck_options key_opts(const fx *f)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    o.flags = CK_INIT_CREATE_KEY_FILE;
    return o;
}

static ck_store *init_with_key(const fx *f)
{
    ck_options o = key_opts(f);
    ck_store *st = NULL;
    assert_int_equal(ck_init(&st, f->dir, &o), CK_OK);
    assert_non_null(st);
    return st;
}

static ck_store *open_with_key(const fx *f, int expect)
{
    ck_options o = key_opts(f);
    ck_store *st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), expect);
    if (expect == CK_OK)
        assert_non_null(st);
    else
        assert_null(st);
    return st;
}

/* Write/read helpers over the internal modules. */
typedef struct subj_ctx {
    uint8_t sid[CK_SUBJECT_ID_BYTES];
} subj_ctx;

static int create_key_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    subj_ctx *c = ctx;
    return ck_keyring__create(st, txn, c->sid, NULL);
}

static void make_subject(ck_store *st, uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    subj_ctx c;
    randombytes_buf(c.sid, sizeof c.sid);
    assert_int_equal(ck_env__write(st, &st->keyring, create_key_txn, &c), CK_OK);
    memcpy(sid, c.sid, sizeof c.sid);
}

static void data_key(ck_store *st, const uint8_t sid[CK_SUBJECT_ID_BYTES], unsigned char dk[32])
{
    MDB_txn *t;
    assert_int_equal(ck_env__read_begin(st, &st->keyring, &t), CK_OK);
    assert_int_equal(ck_keyring__get(st, t, sid, dk), CK_OK);
    ck_env__read_end(&st->keyring, t);
}

typedef struct put_ctx {
    const uint8_t *sid;
    uint16_t field;
    const ck_value *v;
    size_t count; /* number of consecutive fields to write, from `field` */
} put_ctx;

static int put_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    put_ctx *c = ctx;
    unsigned char dk[32];
    ck_buf scratch = CK_BUF_SECURE_INIT;
    int rc = CK_OK;
    data_key(st, c->sid, dk);
    size_t n = c->count ? c->count : 1;
    for (size_t i = 0; i < n && rc == CK_OK; i++)
        rc = ck_seal__put(st, txn, c->sid, (uint16_t)(c->field + i), dk, c->v, &scratch);
    ck_buf__free(&scratch);
    sodium_memzero(dk, sizeof dk);
    return rc;
}

static void put_value(ck_store *st, const uint8_t *sid, uint16_t field, const ck_value *v)
{
    put_ctx c = {sid, field, v, 1};
    assert_int_equal(ck_env__write(st, &st->data, put_txn, &c), CK_OK);
}

/* Read (sid, field) as `type`; returns the status, value in *out (arena). */
static int get_value(ck_store *st, const uint8_t *sid, uint16_t field, ck_type type, ck_value *out,
                     ck_arena *arena)
{
    unsigned char dk[32];
    MDB_txn *t;
    data_key(st, sid, dk);
    assert_int_equal(ck_env__read_begin(st, &st->data, &t), CK_OK);
    int rc = ck_seal__get(st, t, sid, field, dk, type, out, arena);
    ck_env__read_end(&st->data, t);
    sodium_memzero(dk, sizeof dk);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Creating and opening                                                     */
/* ------------------------------------------------------------------------ */

static void test_init_creates_key_file_0600(void **state)
{
    fx *f = *state;
    ck_store *st = init_with_key(f);
    struct stat sb;
    assert_int_equal(stat(f->key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, CK_KEY_FILE_BYTES);
    assert_int_equal(stat(f->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    ck_stats s = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s, st), CK_OK);
    assert_int_equal(s.format, CK_FORMAT_VERSION);
    assert_int_equal(s.subjects, 0);
    assert_int_equal(s.slots, 1u << CK_SLOT_KEY_FILE);
    assert_true(s.data_file_bytes > 0);
    ck_close(st);

    st = open_with_key(f, CK_OK);
    ck_stats s2 = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s2, st), CK_OK);
    assert_memory_equal(s.store_id, s2.store_id, CK_STORE_ID_BYTES);
    ck_close(st);
}

static void test_init_refuses_existing_store(void **state)
{
    fx *f = *state;
    ck_close(init_with_key(f));
    unsigned char before[32], after[32];
    tu_digest_dir(before, f->dir);
    ck_options o = key_opts(f);
    char err[CK_ERRMSG_MAX] = "";
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    ck_store *st = (ck_store *)&o; /* must be reset to NULL */
    assert_int_equal(ck_init(&st, f->dir, &o), CK_EEXIST);
    assert_null(st);
    assert_non_null(strstr(err, "already holds a store"));
    tu_digest_dir(after, f->dir);
    assert_memory_equal(before, after, 32);
}

static void test_open_missing_store(void **state)
{
    fx *f = *state;
    tu_write_file(f->key, "0123456789abcdef0123456789abcdef", 32, 0600);
    open_with_key(f, CK_ENOTFOUND);
}

static void test_options_checked(void **state)
{
    fx *f = *state;
    ck_store *st = NULL;
    ck_options o = CK_OPTIONS_INIT; /* no key at all */
    assert_int_equal(ck_init(&st, f->dir, &o), CK_EINVAL);
    assert_int_equal(ck_open(&st, f->dir, &o), CK_EINVAL);
    assert_int_equal(ck_open(&st, f->dir, NULL), CK_EINVAL);
    o = key_opts(f);
    o.version = 99;
    assert_int_equal(ck_init(&st, f->dir, &o), CK_EINVAL);
    assert_int_equal(access(f->dir, F_OK), -1); /* nothing made */
}

/* A failed init leaves nothing behind: here the key file is unsafe. */
static void test_init_unsafe_key_file_leaves_nothing(void **state)
{
    fx *f = *state;
    tu_write_file(f->key, "0123456789abcdef0123456789abcdef", 32, 0644);
    ck_options o = key_opts(f);
    char err[CK_ERRMSG_MAX] = "";
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    ck_store *st = NULL;
    assert_int_equal(ck_init(&st, f->dir, &o), CK_EKEY);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(access(f->dir, F_OK), -1);
    assert_int_equal(access(f->key, F_OK), 0); /* not ours to delete */
}

static void test_key_file_permissions(void **state)
{
    fx *f = *state;
    ck_close(init_with_key(f));
    char err[CK_ERRMSG_MAX];
    ck_options o = key_opts(f);
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    static const mode_t bad[] = {0640, 0604, 0660, 0644, 0700 | 0070};
    for (size_t i = 0; i < CK_ARRAY_LEN(bad); i++) {
        ck_store *st = NULL;
        assert_int_equal(chmod(f->key, bad[i]), 0);
        assert_int_equal(ck_open(&st, f->dir, &o), CK_EKEY);
        assert_null(st);
        assert_non_null(strstr(err, "group or others"));
    }
    assert_int_equal(chmod(f->key, 0400), 0); /* owner read-only is fine */
    ck_close(open_with_key(f, CK_OK));
    assert_int_equal(chmod(f->key, 0600), 0);

    /* Wrong size. */
    unsigned char kf[40];
    size_t n;
    unsigned char *orig = tu_read_file(f->key, &n);
    assert_int_equal(n, 32);
    memcpy(kf, orig, 32);
    memset(kf + 32, 0, 8);
    tu_write_file(f->key, kf, 33, 0600);
    open_with_key(f, CK_EKEY);
    tu_write_file(f->key, orig, 32, 0600);
    ck_close(open_with_key(f, CK_OK));
    free(orig);
}

static void test_wrong_key_changes_nothing(void **state)
{
    fx *f = *state;
    ck_store *st = init_with_key(f);
    uint8_t sid[16];
    make_subject(st, sid);
    ck_value v = {.type = CK_TYPE_STRING, .u.str = {"hello", 5}};
    put_value(st, sid, 1, &v);
    ck_close(st);

    unsigned char before[32], after[32];
    tu_digest_dir(before, f->dir);

    /* Another store's key file, same size and mode. */
    char other[PATH_MAX];
    tu_path(other, sizeof other, f->root, "other.key");
    unsigned char k[32];
    randombytes_buf(k, sizeof k);
    tu_write_file(other, k, sizeof k, 0600);
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = other;
    char err[CK_ERRMSG_MAX] = "";
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_EKEY);
    assert_null(st);
    assert_non_null(strstr(err, "does not open"));

    /* A passphrase on a store that has none. */
    o.key_file = NULL;
    o.passphrase = "guess";
    o.passphrase_len = 5;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_EKEY);

    tu_digest_dir(after, f->dir);
    assert_memory_equal(before, after, 32);

    /* And the right key still reads the value. */
    st = open_with_key(f, CK_OK);
    ck_arena a = CK_ARENA_INIT;
    ck_value out;
    assert_int_equal(get_value(st, sid, 1, CK_TYPE_STRING, &out, &a), CK_OK);
    assert_int_equal(out.u.str.len, 5);
    assert_memory_equal(out.u.str.ptr, "hello", 5);
    ck_arena__free(&a);
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* Passphrase slots                                                         */
/* ------------------------------------------------------------------------ */

static void test_passphrase_change(void **state)
{
    fx *f = *state;
    ck_options o = CK_OPTIONS_INIT;
    o.passphrase = "correct horse";
    o.passphrase_len = strlen(o.passphrase);
    o.kdf_cost = CK_KDF_MIN;
    ck_store *st = NULL;
    assert_int_equal(ck_init(&st, f->dir, &o), CK_OK);
    uint8_t sid[16];
    make_subject(st, sid);
    ck_value v = {.type = CK_TYPE_INT, .u.i = -42};
    put_value(st, sid, 7, &v);

    ck_stats s = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s, st), CK_OK);
    assert_int_equal(s.slots, 1u << CK_SLOT_PASSPHRASE);
    assert_int_equal(s.kdf_opslimit, crypto_pwhash_OPSLIMIT_MIN);

    /* Input checks. */
    assert_int_equal(ck_slot_set_passphrase(st, "", 0, CK_KDF_MIN), CK_EINVAL);
    assert_int_equal(ck_slot_set_passphrase(st, NULL, 3, CK_KDF_MIN), CK_EINVAL);
    /* The last slot cannot go. */
    assert_int_equal(ck_slot_remove(st, CK_SLOT_PASSPHRASE), CK_EDENIED);
    assert_int_equal(ck_slot_remove(st, CK_SLOT_KEY_FILE), CK_ENOTFOUND);

    assert_int_equal(ck_slot_set_passphrase(st, "battery staple", 14, CK_KDF_MIN), CK_OK);
    ck_close(st);

    st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_EKEY); /* old one: refused */
    o.passphrase = "battery staple";
    o.passphrase_len = 14;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK); /* new one: data intact */
    ck_arena a = CK_ARENA_INIT;
    ck_value out;
    assert_int_equal(get_value(st, sid, 7, CK_TYPE_INT, &out, &a), CK_OK);
    assert_int_equal(out.u.i, -42);
    ck_arena__free(&a);

    /* Add a key file, then drop the passphrase: only the file opens it. */
    assert_int_equal(ck_slot_set_key_file(st, f->key, CK_INIT_CREATE_KEY_FILE), CK_OK);
    assert_int_equal(ck_slot_set_key_file(st, f->key, CK_INIT_CREATE_KEY_FILE), CK_EEXIST);
    assert_int_equal(ck_slot_remove(st, CK_SLOT_PASSPHRASE), CK_OK);
    ck_close(st);
    assert_int_equal(ck_open(&st, f->dir, &o), CK_EKEY);
    ck_close(open_with_key(f, CK_OK));
}

/* ------------------------------------------------------------------------ */
/* The key-slot file and the meta record                                    */
/* ------------------------------------------------------------------------ */

static void test_slot_file_tampering(void **state)
{
    fx *f = *state;
    ck_close(init_with_key(f));
    char path[PATH_MAX];
    tu_path(path, sizeof path, f->dir, CK_KEYS_FILE);
    size_t n;
    unsigned char *orig = tu_read_file(path, &n);
    assert_non_null(orig);

    /* Every truncation is refused, without a crash. */
    for (size_t len = 0; len < n; len++) {
        tu_write_file(path, orig, len, 0600);
        ck_store *st = NULL;
        ck_options o = key_opts(f);
        int rc = ck_open(&st, f->dir, &o);
        assert_true(rc == CK_EFORMAT || rc == CK_EINTEGRITY);
        assert_null(st);
    }
    /* Every single flipped byte is refused. */
    for (size_t i = 0; i < n; i++) {
        unsigned char *bad = malloc(n);
        memcpy(bad, orig, n);
        bad[i] ^= 0x01;
        tu_write_file(path, bad, n, 0600);
        free(bad);
        ck_store *st = NULL;
        ck_options o = key_opts(f);
        int rc = ck_open(&st, f->dir, &o);
        assert_int_not_equal(rc, CK_OK);
        assert_null(st);
    }
    tu_write_file(path, orig, n, 0600);
    ck_close(open_with_key(f, CK_OK));
    free(orig);
}

/* A key-slot file from another store, moved in with its key file, opens its
 * own root key but not this data file. */
static void test_slot_file_from_other_store(void **state)
{
    fx *f = *state;
    ck_close(init_with_key(f));
    char other_dir[PATH_MAX], other_key[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    tu_path(other_dir, sizeof other_dir, f->root, "other");
    tu_path(other_key, sizeof other_key, f->root, "other.key");
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = other_key;
    o.flags = CK_INIT_CREATE_KEY_FILE;
    assert_int_equal(ck_init(NULL, other_dir, &o), CK_OK);

    tu_path(a, sizeof a, other_dir, CK_KEYS_FILE);
    tu_path(b, sizeof b, f->dir, CK_KEYS_FILE);
    assert_int_equal(rename(a, b), 0);
    ck_store *st = NULL;
    o.flags = 0;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_EINTEGRITY);
    assert_null(st);
}

static void test_newer_format_refused(void **state)
{
    fx *f = *state;
    ck_store *st = init_with_key(f);
    /* Re-serialise the slot file with a newer format number, correctly
     * MACed, as a future version would write it. */
    ck_buf file = CK_BUF_INIT, out = CK_BUF_INIT;
    ck_slotfile sf;
    assert_int_equal(ck_keys__read_file(st, &file, f->dir), CK_OK);
    assert_int_equal(ck_keys__parse(&sf, file.p, file.len), CK_OK);
    sf.format = CK_FORMAT_VERSION + 1;
    assert_int_equal(ck_keys__serialize(&out, &sf, ck_store__subkey(st, CK_SUBKEY_META)), CK_OK);
    ck_close(st);
    char path[PATH_MAX];
    tu_path(path, sizeof path, f->dir, CK_KEYS_FILE);
    tu_write_file(path, out.p, out.len, 0600);

    char err[CK_ERRMSG_MAX] = "";
    ck_options o = key_opts(f);
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_EVERSION);
    assert_non_null(strstr(err, "reads up to format"));
    ck_buf__free(&file);
    ck_buf__free(&out);
}

/* ------------------------------------------------------------------------ */
/* Sealed values                                                            */
/* ------------------------------------------------------------------------ */

static void test_sealed_round_trip_every_type(void **state)
{
    fx *f = *state;
    ck_store *st = init_with_key(f);
    uint8_t sid[16];
    make_subject(st, sid);
    ck_str items[3] = {{"musique", 7}, {"", 0}, {"\xc3\xa9t\xc3\xa9", 5}};
    ck_value in[8];
    memset(in, 0, sizeof in);
    in[0].type = CK_TYPE_STRING;
    in[0].u.str = (ck_str){"L\xc3\xa9"
                           "a Martin",
                           10};
    in[1].type = CK_TYPE_INT;
    in[1].u.i = INT64_MIN;
    in[2].type = CK_TYPE_FLOAT;
    in[2].u.f = -1234.5e-7;
    in[3].type = CK_TYPE_BOOL;
    in[3].u.b = 1;
    in[4].type = CK_TYPE_DATE;
    in[4].u.date = 19723; /* 2024-01-01 */
    in[5].type = CK_TYPE_TIMESTAMP;
    in[5].u.ts.sec = 1732475057;
    in[5].u.ts.nsec = 120000000;
    in[5].u.ts.offset_min = 120;
    in[6].type = CK_TYPE_BYTES;
    in[6].u.str = (ck_str){"\x00\xff\x01", 3};
    in[7].type = CK_TYPE_LIST;
    in[7].u.list.items = items;
    in[7].u.list.count = 3;
    for (uint16_t i = 0; i < 8; i++)
        put_value(st, sid, (uint16_t)(100 + i), &in[i]);
    ck_close(st);

    st = open_with_key(f, CK_OK);
    ck_arena a = CK_ARENA_INIT;
    for (uint16_t i = 0; i < 8; i++) {
        ck_value out;
        assert_int_equal(get_value(st, sid, (uint16_t)(100 + i), in[i].type, &out, &a), CK_OK);
        assert_int_equal(out.type, in[i].type);
        switch (in[i].type) {
        case CK_TYPE_STRING:
        case CK_TYPE_BYTES:
            assert_int_equal(out.u.str.len, in[i].u.str.len);
            assert_memory_equal(out.u.str.ptr, in[i].u.str.ptr, in[i].u.str.len);
            break;
        case CK_TYPE_INT:
            assert_true(out.u.i == in[i].u.i);
            break;
        case CK_TYPE_FLOAT:
            assert_true(out.u.f == in[i].u.f);
            break;
        case CK_TYPE_BOOL:
            assert_int_equal(out.u.b, 1);
            break;
        case CK_TYPE_DATE:
            assert_int_equal(out.u.date, 19723);
            break;
        case CK_TYPE_TIMESTAMP:
            assert_true(out.u.ts.sec == in[i].u.ts.sec);
            assert_int_equal(out.u.ts.nsec, in[i].u.ts.nsec);
            assert_int_equal(out.u.ts.offset_min, 120);
            break;
        case CK_TYPE_LIST:
            assert_int_equal(out.u.list.count, 3);
            for (size_t j = 0; j < 3; j++) {
                assert_int_equal(out.u.list.items[j].len, items[j].len);
                assert_memory_equal(out.u.list.items[j].ptr, items[j].ptr, items[j].len);
            }
            break;
        }
    }
    /* Unset field; wrong type expected for a value that exists. */
    ck_value out;
    assert_int_equal(get_value(st, sid, 99, CK_TYPE_STRING, &out, &a), CK_ENOTFOUND);
    assert_int_equal(get_value(st, sid, 101, CK_TYPE_STRING, &out, &a), CK_EFORMAT);
    ck_arena__free(&a);
    ck_close(st);
}

/* No plaintext reaches the files. */
static void test_no_plaintext_in_files(void **state)
{
    fx *f = *state;
    ck_store *st = init_with_key(f);
    uint8_t sid[16];
    make_subject(st, sid);
    static const char secret[] = "gabriel.durand2@gmail.com";
    ck_value v = {.type = CK_TYPE_STRING, .u.str = {secret, sizeof secret - 1}};
    put_value(st, sid, 1, &v);
    ck_close(st);
    static const char *const files[] = {CK_DATA_FILE, CK_KEYRING_FILE, CK_KEYS_FILE};
    for (size_t i = 0; i < CK_ARRAY_LEN(files); i++) {
        char p[PATH_MAX];
        tu_path(p, sizeof p, f->dir, files[i]);
        assert_false(tu_file_contains(p, secret, sizeof secret - 1));
        assert_false(tu_file_contains(p, "durand", 6));
    }
}

/* Copy the raw record of (from_sid, from_field) over (to_sid, to_field). */
typedef struct move_ctx {
    const uint8_t *from_sid, *to_sid;
    uint16_t from_field, to_field;
    int flip; /* or: flip byte `flip - 1` of the record in place */
} move_ctx;

static int move_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    move_ctx *c = ctx;
    uint8_t kf[CK_VALUE_KEY_BYTES], kt[CK_VALUE_KEY_BYTES];
    ck_seal__value_key(kf, c->from_sid, c->from_field);
    ck_seal__value_key(kt, c->to_sid, c->to_field);
    MDB_val k = {sizeof kf, kf}, v;
    assert_int_equal(mdb_get(txn, st->dbi_values, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    if (c->flip)
        copy[c->flip - 1] ^= 0x80;
    MDB_val k2 = {sizeof kt, kt}, v2 = {v.mv_size, copy};
    assert_int_equal(mdb_put(txn, st->dbi_values, &k2, &v2, 0), 0);
    free(copy);
    return CK_OK;
}

static void test_moved_ciphertext_fails(void **state)
{
    fx *f = *state;
    ck_store *st = init_with_key(f);
    uint8_t a_sid[16], b_sid[16];
    make_subject(st, a_sid);
    make_subject(st, b_sid);
    ck_value va = {.type = CK_TYPE_STRING, .u.str = {"alice", 5}};
    ck_value vb = {.type = CK_TYPE_STRING, .u.str = {"bob", 3}};
    put_value(st, a_sid, 1, &va);
    put_value(st, a_sid, 2, &va);
    put_value(st, b_sid, 1, &vb);

    ck_arena ar = CK_ARENA_INIT;
    ck_value out;
    /* Another subject's record, same field. */
    move_ctx m1 = {a_sid, b_sid, 1, 1, 0};
    assert_int_equal(ck_env__write(st, &st->data, move_txn, &m1), CK_OK);
    assert_int_equal(get_value(st, b_sid, 1, CK_TYPE_STRING, &out, &ar), CK_EINTEGRITY);
    /* Same subject, another field. */
    move_ctx m2 = {a_sid, a_sid, 1, 3, 0};
    assert_int_equal(ck_env__write(st, &st->data, move_txn, &m2), CK_OK);
    assert_int_equal(get_value(st, a_sid, 3, CK_TYPE_STRING, &out, &ar), CK_EINTEGRITY);
    assert_non_null(strstr(ck_errmsg(st), "does not authenticate"));
    /* Every flipped byte of a record. */
    for (int i = 1; i <= 1 + 24 + 6 + 16; i++) {
        move_ctx m3 = {a_sid, a_sid, 2, 4, i};
        assert_int_equal(ck_env__write(st, &st->data, move_txn, &m3), CK_OK);
        assert_int_equal(get_value(st, a_sid, 4, CK_TYPE_STRING, &out, &ar), CK_EINTEGRITY);
    }
    /* The originals still read. */
    assert_int_equal(get_value(st, a_sid, 1, CK_TYPE_STRING, &out, &ar), CK_OK);
    assert_memory_equal(out.u.str.ptr, "alice", 5);
    ck_arena__free(&ar);
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* The map grows                                                            */
/* ------------------------------------------------------------------------ */

static void test_map_grows_from_tiny(void **state)
{
    fx *f = *state;
    ck_options o = key_opts(f);
    o.map_size = 64 * 1024; /* a few pages */
    ck_store *st = NULL;
    assert_int_equal(ck_init(&st, f->dir, &o), CK_OK);
    ck_stats s0 = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s0, st), CK_OK);

    enum { SUBJECTS = 40, FIELDS = 100 };
    char text[300];
    memset(text, 'x', sizeof text);
    ck_value v = {.type = CK_TYPE_STRING, .u.str = {text, sizeof text}};
    uint8_t sids[SUBJECTS][16];
    for (int i = 0; i < SUBJECTS; i++) {
        make_subject(st, sids[i]);
        /* A whole subject per transaction: the map fills inside the
         * transaction and at commit, and the write is run again. */
        put_ctx c = {sids[i], 0, &v, FIELDS};
        assert_int_equal(ck_env__write(st, &st->data, put_txn, &c), CK_OK);
    }
    ck_stats s1 = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s1, st), CK_OK);
    assert_true(s1.map_bytes > s0.map_bytes);
    assert_int_equal(s1.values, SUBJECTS * FIELDS);
    ck_close(st);

    /* Reopen with the tiny size again: the file's own size wins. */
    st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK);
    ck_arena a = CK_ARENA_INIT;
    for (int i = 0; i < SUBJECTS; i++) {
        ck_value out;
        assert_int_equal(get_value(st, sids[i], FIELDS - 1, CK_TYPE_STRING, &out, &a), CK_OK);
        assert_int_equal(out.u.str.len, sizeof text);
        ck_arena__reset(&a);
    }
    ck_arena__free(&a);
    ck_close(st);
}

static void test_read_only(void **state)
{
    fx *f = *state;
    ck_close(init_with_key(f));
    ck_options o = key_opts(f);
    o.flags = CK_OPEN_RDONLY;
    ck_store *st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK);
    uint8_t sid[16] = {1};
    subj_ctx c;
    memcpy(c.sid, sid, 16);
    assert_int_equal(ck_env__write(st, &st->keyring, create_key_txn, &c), CK_EDENIED);
    assert_int_equal(ck_slot_set_passphrase(st, "x", 1, CK_KDF_MIN), CK_EDENIED);
    ck_stats s = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s, st), CK_OK);
    ck_close(st);
}

/* ------------------------------------------------------------------------ */
/* Several processes                                                        */
/* ------------------------------------------------------------------------ */

/* A child process: open the store itself (never across fork), then write
 * `n` values one transaction each, or read until it has seen them all. */
static int child_writer(const fx *f, const uint8_t sid[16], int n)
{
    ck_options o = key_opts(f);
    ck_store *st = NULL;
    if (ck_open(&st, f->dir, &o) != CK_OK)
        return 10;
    for (int i = 0; i < n; i++) {
        ck_value v = {.type = CK_TYPE_INT, .u.i = i};
        put_ctx c = {sid, (uint16_t)i, &v, 1};
        if (ck_env__write(st, &st->data, put_txn, &c) != CK_OK)
            return 11;
    }
    ck_close(st);
    return 0;
}

static int child_reader(const fx *f, const uint8_t sid[16], int n)
{
    ck_options o = key_opts(f);
    ck_store *st = NULL;
    if (ck_open(&st, f->dir, &o) != CK_OK)
        return 20;
    unsigned char dk[32];
    MDB_txn *t;
    if (ck_env__read_begin(st, &st->keyring, &t) != CK_OK || ck_keyring__get(st, t, sid, dk))
        return 21;
    ck_env__read_end(&st->keyring, t);
    ck_arena a = CK_ARENA_INIT;
    int seen = 0, last = -1;
    for (int spins = 0; spins < 200000 && seen < n; spins++) {
        if (ck_env__read_begin(st, &st->data, &t) != CK_OK)
            return 22;
        /* Values appear in order: a reader never sees i+1 without i. */
        seen = 0;
        for (int i = 0; i < n; i++) {
            ck_value out;
            int rc = ck_seal__get(st, t, sid, (uint16_t)i, dk, CK_TYPE_INT, &out, &a);
            if (rc == CK_ENOTFOUND)
                break;
            if (rc != CK_OK || out.u.i != i)
                return 23;
            seen++;
        }
        for (int i = seen + 1; i < n; i++) {
            ck_value out;
            if (ck_seal__get(st, t, sid, (uint16_t)i, dk, CK_TYPE_INT, &out, &a) != CK_ENOTFOUND)
                return 24;
        }
        ck_env__read_end(&st->data, t);
        ck_arena__reset(&a);
        if (seen < last)
            return 25;
        last = seen;
    }
    ck_arena__free(&a);
    ck_close(st);
    return seen == n ? 0 : 26;
}

static void test_two_readers_one_writer(void **state)
{
    fx *f = *state;
    ck_store *st = init_with_key(f);
    uint8_t sid[16];
    make_subject(st, sid);
    ck_close(st);

    enum { N = 300 };
    pid_t pids[3];
    for (int p = 0; p < 3; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0)
            _exit(p == 0 ? child_writer(f, sid, N) : child_reader(f, sid, N));
    }
    for (int p = 0; p < 3; p++) {
        int status = 0;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    st = open_with_key(f, CK_OK);
    ck_stats s = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s, st), CK_OK);
    assert_int_equal(s.values, N);
    ck_close(st);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_creates_key_file_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_refuses_existing_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_missing_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_unsafe_key_file_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passphrase_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_file_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_file_from_other_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_format_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_round_trip_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_plaintext_in_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_ciphertext_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_grows_from_tiny, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_readers_one_writer, setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
