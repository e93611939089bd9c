/*
 * buf.c - the growable byte buffer (ck_buf) and the arena (ck_arena).
 *
 * A secure ck_buf holds plaintext (customer values): its storage is wiped
 * whenever it is reset, grown or freed, so no copy of its contents is ever
 * left behind in freed memory. It is ordinary heap memory, not guarded
 * memory: sodium_malloc costs several system calls and a locked page per
 * buffer, which the release path cannot afford for every value; guarded
 * memory is kept for key material (ck_mem__smalloc). An arena serves many small allocations that
 * die together (decoded values point into one); it wipes everything it hands out when it is reset
 * or freed.
 */
#include "internal.h"

#include <sodium.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* ck_buf                                                                   */
/* ------------------------------------------------------------------------ */

/* Hard cap on a buffer's capacity. Nothing the library builds in one buffer
 * comes near it (a value is at most CK_VALUE_MAX_BYTES); reaching it means a
 * bug or a hostile input, and is refused with CK_ELIMIT. */
#define CK_BUF_MAX ((size_t)1 << 30)

/* Smallest capacity allocated, so that a run of tiny appends does not
 * reallocate at every byte. */
#define CK_BUF_MIN_CAP ((size_t)64)

/*
 * Move a secure buffer's contents to new storage of `cap` bytes. The old
 * storage is wiped before it is freed (never realloc'ed in place, which
 * could leave a copy behind), so no copy of the plaintext survives in freed
 * memory. On failure the buffer is unchanged.
 */
static int buf_grow_secure(ck_buf *b, size_t cap)
{
    uint8_t *p = ck_mem__malloc(cap);

    if (p == NULL)
        return CK_ENOMEM;
    if (b->p != NULL && b->len != 0)
        memcpy(p, b->p, b->len);
    if (b->p != NULL) {
        sodium_memzero(b->p, b->cap);
        ck_mem__free(b->p);
    }
    b->p = p;
    b->cap = cap;
    return CK_OK;
}

/*
 * ck_buf__reserve - make room for `extra` more bytes after b->len.
 *
 * Capacity grows geometrically (doubling, at least CK_BUF_MIN_CAP) so that a
 * series of appends costs linear time, and never beyond CK_BUF_MAX.
 * Returns CK_OK; CK_ELIMIT if len + extra overflows or exceeds CK_BUF_MAX
 * (nothing is allocated then); CK_ENOMEM. On failure the buffer is
 * unchanged.
 */
int ck_buf__reserve(ck_buf *b, size_t extra)
{
    size_t need;
    size_t cap;

    if (ck_add_overflows(b->len, extra, &need) || need > CK_BUF_MAX)
        return CK_ELIMIT;
    if (need <= b->cap && b->p != NULL)
        return CK_OK;

    /* cap <= CK_BUF_MAX, so doubling cannot overflow. */
    cap = b->cap < CK_BUF_MIN_CAP ? CK_BUF_MIN_CAP : b->cap * 2;
    if (cap < need)
        cap = need;
    if (cap > CK_BUF_MAX)
        cap = CK_BUF_MAX;

    if (b->secure)
        return buf_grow_secure(b, cap);

    uint8_t *p = ck_mem__realloc(b->p, cap);
    if (p == NULL)
        return CK_ENOMEM;
    b->p = p;
    b->cap = cap;
    return CK_OK;
}

/*
 * ck_buf__append - copy `n` bytes from `data` to the end of the buffer.
 * `data` must not point into the buffer itself (growth may move it).
 * Returns CK_OK, CK_ELIMIT or CK_ENOMEM; on failure the buffer is unchanged.
 */
int ck_buf__append(ck_buf *b, const void *data, size_t n)
{
    if (n == 0)
        return CK_OK;
    /* The room is mostly there already (msgpack writes a few bytes at a
     * time): check that inline; len <= cap always holds. */
    if (b->p == NULL || n > b->cap - b->len)
        CK_TRY(ck_buf__reserve(b, n));
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return CK_OK;
}

/*
 * ck_buf__reset - forget the contents, keep the storage.
 * A secure buffer is wiped over its whole capacity, not only up to len, in
 * case a caller shortened len by hand.
 */
void ck_buf__reset(ck_buf *b)
{
    if (b->secure && b->p != NULL)
        sodium_memzero(b->p, b->cap);
    b->len = 0;
}

/*
 * ck_buf__free - release the storage (a secure buffer's is wiped first).
 * The buffer keeps its `secure` flag and may be used again.
 */
void ck_buf__free(ck_buf *b)
{
    if (b->secure && b->p != NULL)
        sodium_memzero(b->p, b->cap);
    ck_mem__free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* ck_arena                                                                 */
/* ------------------------------------------------------------------------ */

/* Default chunk size; a larger request gets a chunk of exactly its size. */
#define CK_ARENA_CHUNK ((size_t)4096)
#define CK_ARENA_ALIGN ((size_t)8)

/*
 * A chunk: this header, then `cap` bytes of which the first `used` have been
 * handed out. `used` is always a multiple of CK_ARENA_ALIGN and the data
 * start at an aligned offset from the (malloc-aligned) chunk, so every
 * allocation is 8-byte aligned.
 *
 * The list runs from the newest chunk (a->head) to the oldest, the first one
 * allocated; new chunks are inserted at the front or right behind the head,
 * never at the end, so the oldest chunk stays last.
 *
 * Only the first `used` bytes were ever handed out since the chunk was made
 * or last wiped (`used` only grows in between), so wiping those wipes
 * everything the arena's users wrote: a release's arena uses a few hundred
 * bytes of its 4 KiB chunk, and wiping all of it was most of its cost.
 */
struct ck_arena_chunk {
    ck_arena_chunk *next;
    size_t used;
    size_t cap;
};

#define CK_ARENA_HDR ((sizeof(ck_arena_chunk) + CK_ARENA_ALIGN - 1) & ~(CK_ARENA_ALIGN - 1))

static uint8_t *chunk_data(ck_arena_chunk *c)
{
    return (uint8_t *)c + CK_ARENA_HDR;
}

/* Wipe and free one chunk. */
static void chunk_free(ck_arena_chunk *c)
{
    sodium_memzero(chunk_data(c), c->used);
    ck_mem__free(c);
}

/*
 * ck_arena__alloc - `n` bytes aligned to 8, valid until the arena is reset or
 * freed. A request for 0 bytes gets a valid pointer too. NULL on exhaustion
 * (or if `n` is too large to represent).
 */
void *ck_arena__alloc(ck_arena *a, size_t n)
{
    ck_arena_chunk *c = a->head;
    size_t rn;
    size_t cap;
    size_t total;
    void *p;

    /* Round up to the alignment; a zero request still takes one slot so
     * that distinct allocations have distinct addresses. */
    if (n == 0)
        n = 1;
    if (ck_add_overflows(n, CK_ARENA_ALIGN - 1, &rn))
        return NULL;
    rn &= ~(CK_ARENA_ALIGN - 1);

    if (c != NULL && c->cap - c->used >= rn) {
        p = chunk_data(c) + c->used;
        c->used += rn;
        return p;
    }

    cap = rn > CK_ARENA_CHUNK ? rn : CK_ARENA_CHUNK;
    if (ck_add_overflows(CK_ARENA_HDR, cap, &total))
        return NULL;
    c = ck_mem__malloc(total);
    if (c == NULL)
        return NULL;
    c->used = rn;
    c->cap = cap;

    /* A dedicated large chunk goes behind the head, so that the head's free
     * space keeps serving small requests; but never at the end of the
     * list, where the first chunk must stay. */
    if (rn > CK_ARENA_CHUNK && a->head != NULL && a->head->next != NULL) {
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    return chunk_data(c);
}

/* ck_arena__dup - copy `n` bytes (p may be NULL when n is 0) into the arena.
 * NULL on exhaustion. */
void *ck_arena__dup(ck_arena *a, const void *p, size_t n)
{
    void *q = ck_arena__alloc(a, n);

    if (q != NULL && n != 0)
        memcpy(q, p, n);
    return q;
}

char *ck_arena__strndup(ck_arena *a, const char *s, size_t n)
{
    char *q = n < SIZE_MAX ? ck_arena__alloc(a, n + 1) : NULL;
    if (q != NULL) {
        if (n > 0)
            memcpy(q, s, n);
        q[n] = '\0';
    }
    return q;
}

/*
 * ck_arena__reset - wipe every chunk's contents and free every chunk but the
 * first one allocated, which is kept (wiped, empty) for reuse. Every pointer
 * the arena handed out becomes invalid. Of the chunk kept, the part handed
 * out since the last reset is wiped (everything written to it lies there):
 * not its whole capacity, which an operation using a few hundred bytes
 * would pay for at each reset.
 */
void ck_arena__reset(ck_arena *a)
{
    ck_arena_chunk *c = a->head;

    if (c == NULL)
        return;
    while (c->next != NULL) {
        ck_arena_chunk *next = c->next;
        chunk_free(c);
        c = next;
    }
    sodium_memzero(chunk_data(c), c->used);
    c->used = 0;
    a->head = c;
}

/* ck_arena__free - wipe and free every chunk. The arena is empty and may be
 * used again. */
void ck_arena__free(ck_arena *a)
{
    ck_arena_chunk *c = a->head;

    while (c != NULL) {
        ck_arena_chunk *next = c->next;
        chunk_free(c);
        c = next;
    }
    a->head = NULL;
}
