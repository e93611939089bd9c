/*
 * out.c - memory the library hands to its caller.
 *
 * Results such as JSON text may hold customer values, so ck_free() wipes
 * them before releasing. The size is kept in a header before the block.
 */
#include "internal.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>

typedef union out_header {
    size_t size;
    max_align_t align; /* keep the caller's block aligned for any type */
} out_header;

void *ck_out__alloc(size_t n)
{
    size_t total;
    if (ck_add_overflows(n, sizeof(out_header), &total))
        return NULL;
    out_header *h = ck_mem__malloc(total);
    if (h == NULL)
        return NULL;
    h->size = n;
    return h + 1;
}

char *ck_out__strndup(const char *s, size_t n)
{
    size_t total;
    if (ck_add_overflows(n, 1, &total))
        return NULL;
    char *p = ck_out__alloc(total);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

CK_EXPORT void ck_free(void *p)
{
    if (p == NULL)
        return;
    out_header *h = (out_header *)p - 1;
    sodium_memzero(p, h->size);
    ck_mem__free(h);
}

void ck_out__json_text_free(char *text)
{
    if (text == NULL)
        return;
    json_free_t jfree = NULL;
    json_get_alloc_funcs(NULL, &jfree);
    sodium_memzero(text, strlen(text));
    jfree(text);
}

int ck_out__json(char **out, const json_t *root, size_t flags)
{
    char *text = json_dumps(root, flags);
    *out = text != NULL ? ck_out__strndup(text, strlen(text)) : NULL;
    ck_out__json_text_free(text);
    return *out != NULL ? CK_OK : CK_ENOMEM;
}
