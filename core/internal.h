/*
 * internal.h - declarations shared by the modules of libckstore.
 *
 * Nothing here is public. Cross-module helpers are named ck_<module>__<verb>
 * (two underscores); file-local helpers are static.
 */
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H

#include "ckstore.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Checking macros (s2n-tls style). One exit per function that owns          */
/* resources: failures jump to `cleanup`, which frees in reverse order.      */
/* ------------------------------------------------------------------------ */

/* Evaluate an int-returning call; on failure keep its code in `rc` and jump
 * to cleanup. The enclosing function declares `int rc` and a `cleanup:`
 * label. */
#define CK_GUARD(expr)                                                                             \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc != CK_OK)                                                                           \
            goto cleanup;                                                                          \
    } while (0)

/* Check a condition; when it fails set `rc` to `code` and jump to cleanup. */
#define CK_ENSURE(cond, code)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            rc = (code);                                                                           \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

/* Same, for functions that own nothing: return the code at once. */
#define CK_TRY(expr)                                                                               \
    do {                                                                                           \
        int try_rc_ = (expr);                                                                      \
        if (try_rc_ != CK_OK)                                                                      \
            return try_rc_;                                                                        \
    } while (0)

#define CK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */
/* Checked arithmetic                                                        */
/* ------------------------------------------------------------------------ */

/* *out = a + b; returns true on overflow (and *out is then unspecified),
 * like the compiler builtins it wraps. */
static inline bool ck_add_overflows(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

static inline bool ck_mul_overflows(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* ------------------------------------------------------------------------ */
/* Big-endian integers, as every on-disk layout of ckstore stores them.      */
/* ------------------------------------------------------------------------ */

static inline void ck_be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t ck_be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void ck_be64_put(uint8_t *p, uint64_t v)
{
    ck_be32_put(p, (uint32_t)(v >> 32));
    ck_be32_put(p + 4, (uint32_t)v);
}

static inline uint64_t ck_be64_get(const uint8_t *p)
{
    return (uint64_t)ck_be32_get(p) << 32 | ck_be32_get(p + 4);
}

/* ------------------------------------------------------------------------ */
/* Memory (mem.c). Every allocation of the library goes through these so     */
/* that the fault-injection build can make the Nth one fail.                 */
/* ------------------------------------------------------------------------ */

void *ck_mem__malloc(size_t n);
void *ck_mem__calloc(size_t count, size_t size);
void *ck_mem__realloc(void *p, size_t n);
void ck_mem__free(void *p);
/* Guarded memory for secrets (sodium_malloc); freed with ck_mem__sfree,
 * which wipes it. */
void *ck_mem__smalloc(size_t n);
void ck_mem__sfree(void *p);
/* strndup through ck_mem__malloc. */
char *ck_mem__strndup(const char *s, size_t n);
/* "dir/name" in a new ck_mem__malloc block; NULL when out of memory. */
char *ck_mem__path_join(const char *dir, const char *name);

/* Memory handed to the caller (out.c), released with ck_free(), which
 * wipes it: it may hold customer data. A size header sits before the
 * pointer returned. */
void *ck_out__alloc(size_t n);
/* Copy n bytes and a NUL into a new caller-owned block. */
char *ck_out__strndup(const char *s, size_t n);
/* Wipe and free text Jansson made (json_dumps) through the free function
 * the process gave Jansson (json_set_alloc_funcs) - never free(), which
 * breaks with any other allocator (the ckstore tool sets one that wipes).
 * NULL is a no-op. */
void ck_out__json_text_free(char *text);
/* `root` dumped with json_dumps `flags` into a new caller-owned block
 * (*out, freed and wiped by ck_free); Jansson's own text is freed as
 * above. CK_OK, or CK_ENOMEM with *out NULL (no message set). */
struct json_t; /* <jansson.h> */
int ck_out__json(char **out, const struct json_t *root, size_t flags);

/* Fault injection hook (test builds, CK_FAULT_INJECTION defined): returns
 * true when the call named by `site` must fail. Always false otherwise. */
bool ck_fault__hit(const char *site);

/* ------------------------------------------------------------------------ */
/* Growable byte buffer (buf.c)                                              */
/* ------------------------------------------------------------------------ */

/* A byte buffer. With `secure` set the storage is wiped whenever it is
 * reset, released or reallocated: use it for plaintext. (Key material goes
 * to guarded memory, ck_mem__smalloc, instead.) */
typedef struct ck_buf {
    uint8_t *p;
    size_t len;
    size_t cap;
    bool secure;
} ck_buf;

#define CK_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }
#define CK_BUF_SECURE_INIT                                                                         \
    {                                                                                              \
        NULL, 0, 0, true                                                                           \
    }

/* Make room for `extra` more bytes. CK_OK, CK_ENOMEM or CK_ELIMIT. */
int ck_buf__reserve(ck_buf *b, size_t extra);
int ck_buf__append(ck_buf *b, const void *data, size_t n);
/* Forget the contents (wiped when secure), keep the storage. */
void ck_buf__reset(ck_buf *b);
/* Release the storage (wiped first when secure). The buffer is reusable. */
void ck_buf__free(ck_buf *b);

/* ------------------------------------------------------------------------ */
/* Arena (buf.c): many small allocations freed together. Decoded values      */
/* point into an arena. Its memory is wiped when it is reset or freed.      */
/* ------------------------------------------------------------------------ */

typedef struct ck_arena_chunk ck_arena_chunk;
typedef struct ck_arena {
    ck_arena_chunk *head;
} ck_arena;

#define CK_ARENA_INIT                                                                              \
    {                                                                                              \
        NULL                                                                                       \
    }

/* Allocate `n` bytes aligned to 8; NULL on exhaustion. */
void *ck_arena__alloc(ck_arena *a, size_t n);
/* Copy n bytes into the arena. */
void *ck_arena__dup(ck_arena *a, const void *p, size_t n);
/* Copy n bytes and a NUL into the arena: a C string of `s`. */
char *ck_arena__strndup(ck_arena *a, const char *s, size_t n);
/* Wipe and forget every allocation, keep the first chunk for reuse. */
void ck_arena__reset(ck_arena *a);
/* Wipe and free everything. */
void ck_arena__free(ck_arena *a);

/* ------------------------------------------------------------------------ */
/* Bounded msgpack reader (mp.c)                                             */
/*                                                                          */
/* A pull reader over untrusted bytes. It never allocates and never reads   */
/* past `end`: every length or count is checked against the bytes left      */
/* before anything is done with it (a count of elements must be at most     */
/* the bytes left, since every element takes at least one byte). Nesting    */
/* deeper than CK_MP_MAX_DEPTH is refused by ck_mp__skip. Every function   */
/* returns CK_OK, or CK_EFORMAT when the next object is not of the asked    */
/* type or is truncated (the reader is then left unchanged).                */
/* ------------------------------------------------------------------------ */

#define CK_MP_MAX_DEPTH 16

typedef struct ck_mp {
    const uint8_t *p;
    const uint8_t *end;
} ck_mp;

static inline void ck_mp__init(ck_mp *r, const void *data, size_t n)
{
    r->p = (const uint8_t *)data;
    r->end = r->p + n;
}

static inline size_t ck_mp__left(const ck_mp *r)
{
    return (size_t)(r->end - r->p);
}

/* Kinds of msgpack object, as ck_mp__peek reports them. */
typedef enum ck_mp_kind {
    CK_MP_NIL = 1,
    CK_MP_BOOL,
    CK_MP_UINT, /* non-negative integer */
    CK_MP_INT,  /* negative integer */
    CK_MP_FLOAT,
    CK_MP_STR,
    CK_MP_BIN,
    CK_MP_ARRAY,
    CK_MP_MAP,
    CK_MP_EXT
} ck_mp_kind;

/* The kind of the next object; CK_EFORMAT at the end or on a reserved byte
 * (0xc1). */
int ck_mp__peek(const ck_mp *r, ck_mp_kind *out);
int ck_mp__nil(ck_mp *r);
int ck_mp__bool(ck_mp *r, bool *out);
/* Any integer encoding whose value fits. */
int ck_mp__u64(ck_mp *r, uint64_t *out);
int ck_mp__i64(ck_mp *r, int64_t *out);
int ck_mp__u32(ck_mp *r, uint32_t *out);
/* float 32 or float 64. */
int ck_mp__f64(ck_mp *r, double *out);
/* String: *out points into the input (not NUL-terminated). */
int ck_mp__str(ck_mp *r, const char **out, uint32_t *len);
int ck_mp__bin(ck_mp *r, const uint8_t **out, uint32_t *len);
/* Container headers: the count is checked against the bytes left. */
int ck_mp__array(ck_mp *r, uint32_t *count);
int ck_mp__map(ck_mp *r, uint32_t *count);
int ck_mp__ext(ck_mp *r, int8_t *type, const uint8_t **out, uint32_t *len);
/* Skip one whole object (containers included, depth-bounded). */
int ck_mp__skip(ck_mp *r);
/* Read a string and compare it with a NUL-terminated key. */
bool ck_mp__str_eq(const char *s, uint32_t len, const char *key);

/* Writer: msgpack-c's packer appending to a ck_buf. The packer's callback
 * reports allocation failure; ck_mp_writer__error() tells afterwards. */
#include <msgpack.h>
typedef struct ck_mp_writer {
    msgpack_packer pk;
    ck_buf *out;
    int rc; /* first error seen, CK_OK if none */
} ck_mp_writer;

void ck_mp_writer__init(ck_mp_writer *w, ck_buf *out);
/* Helpers over msgpack_pack_*: they record the first error in w->rc. */
void ck_mp_writer__str(ck_mp_writer *w, const char *s, size_t len);
void ck_mp_writer__cstr(ck_mp_writer *w, const char *s);
void ck_mp_writer__bin(ck_mp_writer *w, const void *p, size_t len);
void ck_mp_writer__u64(ck_mp_writer *w, uint64_t v);
void ck_mp_writer__i64(ck_mp_writer *w, int64_t v);
void ck_mp_writer__map(ck_mp_writer *w, uint32_t n);
void ck_mp_writer__array(ck_mp_writer *w, uint32_t n);
void ck_mp_writer__bool(ck_mp_writer *w, bool v);

/* ------------------------------------------------------------------------ */
/* Value codec (codec.c): a ck_value as one msgpack object.                  */
/*                                                                          */
/*   STRING     str          INT   int (any width)   FLOAT  float 64        */
/*   BOOL       bool         BYTES bin                LIST  array of str     */
/*   DATE       ext  1, 4 bytes: int32 big-endian days since 1970-01-01      */
/*   TIMESTAMP  ext  2, 14 bytes: int64 BE seconds, uint32 BE nanoseconds,   */
/*              int16 BE UTC offset in minutes                               */
/* ------------------------------------------------------------------------ */

#define CK_EXT_DATE      1
#define CK_EXT_TIMESTAMP 2

/* Check a value against the limits and invariants of its type (UTF-8 of
 * strings and list items, finite floats, nsec and offset ranges, sizes).
 * CK_OK or CK_EINVAL / CK_ELIMIT. */
int ck_codec__check(const ck_value *v);

/* Append the encoding of `v` (which must pass ck_codec__check) to `out`.
 * CK_OK, CK_EINVAL, CK_ELIMIT or CK_ENOMEM. */
int ck_codec__encode(ck_buf *out, const ck_value *v);

/* Decode exactly one value of type `expect` from `n` bytes at `p` (trailing
 * bytes are an error). Strings and bytes of `out` point into `p`; a list's
 * item array is allocated from `arena`. The decoded value is checked like
 * ck_codec__check. CK_OK, CK_EFORMAT (not a valid encoding of that type),
 * CK_ELIMIT, CK_ENOMEM. */
int ck_codec__decode(ck_value *out, ck_type expect, const uint8_t *p, size_t n, ck_arena *arena);

/* UTF-8 validity (no overlongs, no surrogates, <= U+10FFFF). */
bool ck_codec__utf8_valid(const char *s, size_t n);

/* A short text of the store's own (an actor, a recipient, consent
 * evidence, a name in a record): 1 to `max` bytes of valid UTF-8 with no
 * control character (so no NUL either). */
bool ck_codec__text_ok(const char *s, size_t n, size_t max);

/* ------------------------------------------------------------------------ */
/* Dates and timestamps (codec.c): conversions between the ck_value forms    */
/* and their text forms (YYYY-MM-DD; RFC 3339). The calendar is the         */
/* proleptic Gregorian one; only years 0001 to 9999 are representable.      */
/* ------------------------------------------------------------------------ */

/* Days since 1970-01-01 of 0001-01-01 and of 9999-12-31. */
#define CK_DATE_MIN_DAYS (-719162)
#define CK_DATE_MAX_DAYS 2932896
/* Seconds since the epoch of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
 * A valid timestamp has its UTC instant, and also its local time (sec plus
 * the offset), within these, so that its text form has a 4-digit year. */
#define CK_TS_MIN_SEC (-62135596800LL)
#define CK_TS_MAX_SEC 253402300799LL

/* Buffer sizes for the text forms, NUL included: "YYYY-MM-DD" and
 * "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM". */
#define CK_DATE_TEXT_MAX 11
#define CK_TS_TEXT_MAX   36

/*
 * ck_date__from_ymd - days since 1970-01-01 of the date y-m-d.
 * out out: the days; 0 on failure.
 * Returns CK_OK; CK_EINVAL for a date that does not exist (month 13, day 0,
 * 2023-02-29) or a year outside 1..9999.
 */
int ck_date__from_ymd(int32_t *out_days, int y, int m, int d);

/*
 * ck_date__to_ymd - the calendar date of `days` since 1970-01-01. Total over
 * int32_t (years outside 1..9999 are given as they are, 0 and negative
 * included); the caller range-checks if it must.
 */
void ck_date__to_ymd(int32_t days, int *y, int *m, int *d);

/*
 * ck_date__parse - parse exactly "YYYY-MM-DD" (n == 10, ASCII digits).
 * out out: days since 1970-01-01; 0 on failure.
 * Returns CK_OK; CK_EINVAL on any other text or an impossible date.
 */
int ck_date__parse(int32_t *out, const char *s, size_t n);

/*
 * ck_date__format - write "YYYY-MM-DD" and a NUL to `out`.
 * out_max must be at least CK_DATE_TEXT_MAX. Returns CK_OK; CK_EINVAL if
 * `days` is outside 0001-01-01..9999-12-31 or out_max is too small (`out`
 * then holds "" when out_max > 0).
 */
int ck_date__format(char *out, size_t out_max, int32_t days);

/*
 * ck_ts__parse - parse an RFC 3339 timestamp:
 *     YYYY-MM-DD(T|t)HH:MM:SS[.F](Z|z|+HH:MM|-HH:MM)
 * where F is 1 to 9 digits. Hours 00-23, minutes and seconds 00-59 (a leap
 * second, 60, is refused), offset hours 00-23. "-00:00" is taken as UTC.
 * out out: a CK_TYPE_TIMESTAMP value: sec is the UTC instant, offset_min
 *          the offset written, nsec the fraction; all zero on failure.
 * Returns CK_OK; CK_EINVAL on any other text, an impossible date, or an
 * instant outside CK_TS_MIN_SEC..CK_TS_MAX_SEC.
 */
int ck_ts__parse(ck_value *out, const char *s, size_t n);

/*
 * ck_ts__format - the canonical RFC 3339 form of a timestamp value: the
 * local time (sec + offset) then "Z" when the offset is 0, else "+HH:MM" or
 * "-HH:MM"; a fraction only when nsec != 0, without trailing zeros (".5",
 * ".123", ".000000001"). ck_ts__parse of the result gives `v` back, and
 * formatting what ck_ts__parse accepted gives its canonical form.
 * out_max must be at least CK_TS_TEXT_MAX. Returns CK_OK; CK_EINVAL if `v`
 * is not a valid TIMESTAMP (see ck_codec__check) or out_max is too small
 * (`out` then holds "" when out_max > 0).
 */
int ck_ts__format(char *out, size_t out_max, const ck_value *v);

/* Unix seconds `sec` as RFC 3339 UTC text ("2026-11-23T16:00:00Z"), or as
 * the decimal integer when it has no such form (a year past 9999): for
 * receipts and hold records, which must say something either way. */
void ck_ts__text(char out[CK_TS_TEXT_MAX], int64_t sec);

#endif /* CK_INTERNAL_H */
