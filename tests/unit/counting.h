/* A counting allocator for unit tests: it tracks live allocations (so a
 * test can check that everything came back) and can fail the k-th
 * allocation call (OOM loops). Include after <roomcast/roomcast.h>. */
#ifndef RC_TEST_COUNTING_H
#define RC_TEST_COUNTING_H

#include <stdlib.h>
#include <string.h>

typedef struct counting {
    long live;    /* allocations not yet freed */
    long calls;   /* allocation calls so far */
    long fail_at; /* fail the call with this number (1-based), 0: never */
} counting;

static void *count_malloc(size_t size, void *user)
{
    counting *c = user;

    if (++c->calls == c->fail_at)
        return NULL;
    c->live++;
    return malloc(size);
}

static void *count_realloc(void *ptr, size_t size, void *user)
{
    counting *c = user;

    if (ptr == NULL)
        return count_malloc(size, user);
    if (++c->calls == c->fail_at)
        return NULL;
    return realloc(ptr, size);
}

static void count_free(void *ptr, void *user)
{
    ((counting *)user)->live--;
    free(ptr);
}

/* Reset c and return an allocator that counts into it. */
static rc_alloc counting_alloc(counting *c)
{
    rc_alloc a = {count_malloc, count_realloc, count_free, NULL};

    memset(c, 0, sizeof *c);
    a.user = c;
    return a;
}

#endif
