/* The adapter's allocator: the host's functions, or libc's. */
#include <stdlib.h>

#include "internal.h"

void *rc__malloc(const rc__alloc *m, size_t size)
{
    if (m != NULL && m->malloc_fn != NULL)
        return m->malloc_fn(size, m->user);
    return malloc(size);
}

void *rc__realloc(const rc__alloc *m, void *ptr, size_t size)
{
    if (m != NULL && m->realloc_fn != NULL)
        return m->realloc_fn(ptr, size, m->user);
    return realloc(ptr, size);
}

void rc__free(const rc__alloc *m, void *ptr)
{
    if (ptr == NULL)
        return;
    if (m != NULL && m->free_fn != NULL)
        m->free_fn(ptr, m->user);
    else
        free(ptr);
}

char *rc__strndup(const rc__alloc *m, const char *s, size_t len)
{
    char *p = len < SIZE_MAX ? rc__malloc(m, len + 1) : NULL;

    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

int rc__reserve(const rc__alloc *m, char **buf, size_t *cap, size_t n)
{
    size_t want = *cap ? *cap : 256;
    char *p;

    if (n <= *cap)
        return 0;
    while (want < n)
        want = want > SIZE_MAX / 2 ? n : want * 2;
    p = rc__realloc(m, *buf, want);
    if (p == NULL)
        return RC_ENOMEM;
    *buf = p;
    *cap = want;
    return 0;
}
