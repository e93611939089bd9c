/*
 * jalloc.c - Jansson's allocator for the ckstore tool: every block is
 * wiped when Jansson frees it.
 *
 * Customer values reach the tool as JSON (import lines, `put`, `consent`
 * evidence) and leave it as JSON (`get`, `export`); Jansson keeps them in
 * strings and buffers that it frees without wiping, so they would stay in
 * the freed heap, where a core dump or a later bug could show them.
 * json_set_alloc_funcs() is process-wide, so the library never sets it
 * behind its caller's back: a program owns that choice, and this one makes
 * it once, first thing in main(). An application that links the library
 * can do the same (SECURITY.md).
 *
 * Each block carries its size in a header (as large as max_align_t, which
 * keeps the alignment malloc gives), so that the free function knows how
 * much to wipe. Jansson 2.14 never reallocates through these functions.
 */
#include "jalloc.h"

#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef union header {
    size_t size;
    max_align_t align; /* keep Jansson's block aligned for any type */
} header;

static void *wipe_malloc(size_t n)
{
    if (n > SIZE_MAX - sizeof(header))
        return NULL;
    header *h = malloc(sizeof(header) + n);
    if (h == NULL)
        return NULL;
    h->size = n;
    return h + 1;
}

static void wipe_free(void *p)
{
    if (p == NULL)
        return;
    header *h = (header *)p - 1;
    sodium_memzero(h, sizeof(header) + h->size);
    free(h);
}

void cli_json_wipe_on_free(void)
{
    json_set_alloc_funcs(wipe_malloc, wipe_free);
}

void cli_json_text_free(char *text)
{
    if (text == NULL)
        return;
    json_free_t jfree = NULL;
    json_get_alloc_funcs(NULL, &jfree);
    jfree(text);
}
