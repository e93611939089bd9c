/*
 * mem.c - the library's allocation wrappers and the fault-injection hook.
 *
 * Every allocation of libckstore goes through ck_mem__*, so that the
 * fault-injection build (CK_FAULT_INJECTION) can make any one of them fail
 * and the tests can check that every failure path cleans up.
 *
 * Contracts common to the allocators below: a request for 0 bytes is served
 * as a request for 1 byte, so NULL always means failure (libc may return
 * NULL for malloc(0), and realloc(p, 0) may free p).
 */
#include "internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CK_FAULT_INJECTION
#include "fault.h"

#include <stdatomic.h>

/*
 * The only global state of the library, and it exists only in the
 * fault-injection test build. The counters are _Atomic so that a test that
 * runs threads stays free of data races; the hook is still meant to be armed
 * by one test at a time.
 *
 * fault_calls counts the calls to ck_fault__hit() since the last arming;
 * the call whose 1-based number equals fault_target hits. The counter only
 * grows, so a target is hit at most once per arming.
 */
static _Atomic unsigned long fault_target;
static _Atomic unsigned long fault_calls;

void ck_fault__arm(unsigned long nth)
{
    atomic_store(&fault_target, 0UL); /* no hit while the counter restarts */
    atomic_store(&fault_calls, 0UL);
    atomic_store(&fault_target, nth);
}

unsigned long ck_fault__count(void)
{
    return atomic_load(&fault_calls);
}

bool ck_fault__hit(const char *site)
{
    (void)site; /* every site shares one counter */
    unsigned long target = atomic_load(&fault_target);
    unsigned long n = atomic_fetch_add(&fault_calls, 1UL) + 1UL;
    return target != 0 && n == target;
}

#else /* !CK_FAULT_INJECTION */

/* A real function even when it can never hit, so that every build links
 * the same symbols. */
bool ck_fault__hit(const char *site)
{
    (void)site;
    return false;
}

#endif /* CK_FAULT_INJECTION */

void *ck_mem__malloc(size_t n)
{
    if (ck_fault__hit("alloc"))
        return NULL;
    return malloc(n != 0 ? n : 1);
}

/* NULL when count * size overflows (checked here rather than left to libc,
 * whose sanitizer builds abort instead of returning NULL). */
void *ck_mem__calloc(size_t count, size_t size)
{
    size_t total;

    if (ck_fault__hit("alloc"))
        return NULL;
    if (ck_mul_overflows(count, size, &total))
        return NULL;
    if (total == 0) {
        count = 1;
        size = 1;
    }
    return calloc(count, size);
}

/* Like realloc: on failure `p` is left untouched and still owned by the
 * caller. */
void *ck_mem__realloc(void *p, size_t n)
{
    if (ck_fault__hit("alloc"))
        return NULL;
    return realloc(p, n != 0 ? n : 1);
}

void ck_mem__free(void *p)
{
    free(p);
}

/* Guarded memory (sodium_malloc: guard pages, canary). sodium_malloc needs
 * sodium_init() to have run (it sets the page size and the canary);
 * sodium_init() is idempotent and thread-safe, so it is called here rather
 * than trusting every entry point of the library to have done it. */
void *ck_mem__smalloc(size_t n)
{
    if (ck_fault__hit("alloc"))
        return NULL;
    if (sodium_init() < 0)
        return NULL;
    return sodium_malloc(n != 0 ? n : 1);
}

/* sodium_free wipes the whole region before unmapping it; NULL is a no-op. */
void ck_mem__sfree(void *p)
{
    sodium_free(p);
}

/* At most `n` bytes of `s` (fewer if a NUL comes first), NUL-terminated, in
 * memory from ck_mem__malloc. NULL on exhaustion. */
char *ck_mem__strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    size_t size;
    char *out;

    if (ck_add_overflows(len, 1, &size))
        return NULL;
    out = ck_mem__malloc(size);
    if (out == NULL)
        return NULL;
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

char *ck_mem__path_join(const char *dir, const char *name)
{
    size_t n;
    if (ck_add_overflows(strlen(dir), strlen(name), &n) || ck_add_overflows(n, 2, &n))
        return NULL;
    char *p = ck_mem__malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}
