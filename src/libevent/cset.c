/*
 * Sets of channel names (the cluster links' subscriptions per master):
 * open addressing, FNV-1a, tombstones; each name allocated once.
 */
#include <stdlib.h>
#include <string.h>

#include "ecluster.h"

char rc__cset_tomb;

static size_t hash(const char *s, size_t n)
{
    size_t h = 2166136261u, i;

    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Index of chan in set, or of the free slot where it would go. */
static size_t cset_find(const cset *set, const char *chan, size_t len)
{
    size_t i = hash(chan, len) & (set->cap - 1), tomb = (size_t)-1;

    for (;; i = (i + 1) & (set->cap - 1)) {
        const cchan *e = set->e[i];
        if (e == NULL)
            return tomb != (size_t)-1 ? tomb : i;
        if (e == CSET_TOMB) {
            if (tomb == (size_t)-1)
                tomb = i;
        } else if (e->len == len && memcmp(e->s, chan, len) == 0) {
            return i;
        }
    }
}

static int cset_grow(cset *set)
{
    cset big;
    size_t i;

    big.cap = set->cap ? 2 * set->cap : 64;
    big.n = big.used = 0;
    if ((big.e = calloc(big.cap, sizeof *big.e)) == NULL)
        return -1;
    for (i = 0; i < set->cap; i++) {
        cchan *e = set->e[i];
        if (e != NULL && e != CSET_TOMB) {
            big.e[cset_find(&big, e->s, e->len)] = e;
            big.n++;
            big.used++;
        }
    }
    free(set->e);
    *set = big;
    return 0;
}

int rc__cset_add(cset *set, const char *chan, size_t len)
{
    size_t i;
    cchan *e;

    if ((set->used + 1) * 4 > set->cap * 3 && cset_grow(set) != 0)
        return -1;
    i = cset_find(set, chan, len);
    if (set->e[i] != NULL && set->e[i] != CSET_TOMB)
        return 0;
    if ((e = malloc(sizeof *e + len + 1)) == NULL)
        return -1;
    e->len = len;
    memcpy(e->s, chan, len);
    e->s[len] = '\0';
    if (set->e[i] == NULL)
        set->used++;
    set->e[i] = e;
    set->n++;
    return 0;
}

int rc__cset_del(cset *set, const char *chan, size_t len)
{
    size_t i;

    if (set->n == 0)
        return 0;
    i = cset_find(set, chan, len);
    if (set->e[i] == NULL || set->e[i] == CSET_TOMB)
        return 0;
    free(set->e[i]);
    set->e[i] = CSET_TOMB;
    set->n--;
    return 1;
}

/* Move every channel out of set into a fresh array (the set is empty
 * after): *n of them; free each and the array. NULL when empty. */
cchan **rc__cset_take(cset *set, size_t *n)
{
    cchan **all = NULL;
    size_t i, k = 0;

    *n = 0;
    if (set->n > 0 && (all = malloc(set->n * sizeof *all)) == NULL)
        return NULL; /* out of memory: the set stays */
    for (i = 0; i < set->cap; i++)
        if (set->e[i] != NULL && set->e[i] != CSET_TOMB)
            all[k++] = set->e[i];
    free(set->e);
    memset(set, 0, sizeof *set);
    *n = k;
    return all;
}

void rc__cset_free(cset *set)
{
    size_t n, i;
    cchan **all = rc__cset_take(set, &n);

    for (i = 0; i < n; i++)
        free(all[i]);
    free(all);
    free(set->e);
    memset(set, 0, sizeof *set);
}

int rc__cset_has(const cset *set, const char *chan, size_t len)
{
    size_t i;

    if (set->n == 0)
        return 0;
    i = cset_find(set, chan, len);
    return set->e[i] != NULL && set->e[i] != CSET_TOMB;
}
