/*
 * fixture.h - the store fixture shared by the cmocka tests that drive a
 * fresh store through the public API. Header-only, static inline functions,
 * like testutil.h (which it includes).
 *
 * A tu_fx is a scratch directory (root) holding a store (dir) and its key
 * file (key), the open handle (st) and the store's clock (now): a handle
 * the fixture opens reads the time from f->now, so a test moves the clock
 * by assigning it. A fixture started at TU_FX_WALL_CLOCK opens its handles
 * without a test clock (the store reads the real-time clock).
 *
 * The flags of every open are the caller's (CK_OPEN_NOSYNC, read-only, ...),
 * so that how a test file opens its stores stays visible in that file.
 *
 * A file whose fixture is exactly a tu_fx:
 *
 *     static int setup(void **state)
 *     {
 *         return tu_fx_setup(state, "purge", T0, CK_INIT_CREATE_KEY_FILE, SCHEMA);
 *     }
 *     ...
 *     cmocka_unit_test_setup_teardown(test_x, setup, tu_fx_teardown),
 *
 * A file whose fixture holds more embeds a tu_fx in its own struct and calls
 * tu_fx_init / tu_fx_fini on it; so does a test that wants a second store.
 */
#ifndef CK_FIXTURE_H
#define CK_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ckstore.h"
#include "testutil.h"

/* tu_fx_init's `now` for a store on the real-time clock (no test clock). */
#define TU_FX_WALL_CLOCK INT64_MIN

typedef struct tu_fx {
    char *root;         /* scratch directory (tu_mkdtemp), owned */
    char dir[PATH_MAX]; /* <root>/store */
    char key[PATH_MAX]; /* <root>/store.key */
    ck_store *st;       /* the open handle, or NULL */
    int64_t now;        /* the store's clock, Unix seconds, or TU_FX_WALL_CLOCK */
} tu_fx;

/* The test clock: ctx is the tu_fx. */
static inline int64_t tu_fx_clock(void *ctx)
{
    return ((const tu_fx *)ctx)->now;
}

/* Options to open (or create) f's store with `flags`: its key file, and
 * f's clock unless f->now is TU_FX_WALL_CLOCK. The options borrow f, which
 * must outlive every handle opened with them. */
static inline ck_options tu_fx_options(tu_fx *f, unsigned flags)
{
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = f->key;
    o.flags = flags;
    if (f->now != TU_FX_WALL_CLOCK) {
        o.clock = tu_fx_clock;
        o.clock_ctx = f;
    }
    return o;
}

/* Close f's handle and remove its scratch directory (f itself stays the
 * caller's). Safe on a fixture already finished. */
static inline void tu_fx_fini(tu_fx *f)
{
    ck_close(f->st);
    f->st = NULL;
    if (f->root != NULL)
        tu_rmtree(f->root);
    free(f->root);
    f->root = NULL;
}

/* Make a scratch directory named after `tag` and create a store in it
 * (ck_init with `flags`, normally CK_INIT_CREATE_KEY_FILE and whatever the
 * file opens its stores with), its clock starting at `now`; then apply
 * `schema` (JSON) unless it is NULL. Every member of f is set. Returns
 * CK_OK, or the code of the call that failed, with f finished (tu_fx_fini). */
static inline int tu_fx_init(tu_fx *f, const char *tag, int64_t now, unsigned flags,
                             const char *schema)
{
    f->root = tu_mkdtemp(tag);
    tu_path(f->dir, sizeof f->dir, f->root, "store");
    tu_path(f->key, sizeof f->key, f->root, "store.key");
    f->st = NULL;
    f->now = now;
    ck_options o = tu_fx_options(f, flags);
    int rc = ck_init(&f->st, f->dir, &o);
    if (rc == CK_OK && schema != NULL)
        rc = ck_schema_apply(f->st, schema, strlen(schema), 0, NULL);
    if (rc != CK_OK)
        tu_fx_fini(f);
    return rc;
}

/* A cmocka setup: *state = a new tu_fx made by tu_fx_init. Returns 0, or
 * -1 (nothing left behind) when tu_fx_init fails. */
static inline int tu_fx_setup(void **state, const char *tag, int64_t now, unsigned flags,
                              const char *schema)
{
    tu_fx *f = calloc(1, sizeof *f);
    if (f == NULL || tu_fx_init(f, tag, now, flags, schema) != CK_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* The cmocka teardown of tu_fx_setup. */
static inline int tu_fx_teardown(void **state)
{
    tu_fx *f = *state;
    tu_fx_fini(f);
    free(f);
    return 0;
}

/* A new handle on f's store, opened with `flags` and f's clock; the test
 * fails unless ck_open returns CK_OK. The caller closes the handle. */
static inline ck_store *tu_fx_open(tu_fx *f, unsigned flags)
{
    ck_options o = tu_fx_options(f, flags);
    ck_store *st = NULL;
    assert_int_equal(ck_open(&st, f->dir, &o), CK_OK);
    return st;
}

/* Close f->st and open the store again into it, with `flags`; the test
 * fails unless ck_open returns CK_OK (f->st is then NULL). */
static inline void tu_fx_reopen(tu_fx *f, unsigned flags)
{
    ck_close(f->st);
    f->st = NULL;
    ck_options o = tu_fx_options(f, flags);
    assert_int_equal(ck_open(&f->st, f->dir, &o), CK_OK);
}

/* The subject of reference `ref` (borrowed). */
static inline ck_who tu_by_ref(const char *ref)
{
    ck_who w = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
    return w;
}

/* Write the fields of `json` to the subject of reference `ref`, creating
 * it when it is new (ck_put_json, CK_PUT_CREATE); the test fails unless
 * that returns CK_OK. */
static inline void tu_put(tu_fx *f, const char *ref, const char *json)
{
    ck_who w = tu_by_ref(ref);
    if (ck_put_json(NULL, f->st, &w, json, strlen(json), CK_PUT_CREATE) != CK_OK)
        fail_msg("put %s: %s", ref, ck_errmsg(f->st));
}

#endif /* CK_FIXTURE_H */
