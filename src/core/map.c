/* A seeded hash table from byte strings to items (see internal.h). */
#include "internal.h"

#define MIN_CAP 16

static uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= UINT64_C(0xd6e8feb86659fd93);
    x ^= x >> 32;
    x *= UINT64_C(0xd6e8feb86659fd93);
    return x ^ (x >> 32);
}

/* Never 0, which marks an empty slot. */
uint64_t rc__hash(const void *key, size_t len, uint64_t seed)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ (len * UINT64_C(0x9e3779b97f4a7c15)), tail = 0;

    for (; len >= 8; p += 8, len -= 8)
        h = mix(h ^ rc__load8(p));
    memcpy(&tail, p, len);
    h = mix(h ^ tail);
    return h != 0 ? h : 1;
}

void rc__map_init(rc__map *m, const rc__alloc *mem, uint64_t seed)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
    m->seed = seed;
    m->mem = mem;
}

void rc__map_free(rc__map *m)
{
    rc__free(m->mem, m->slots);
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

/* Index of the slot holding key, or of the empty slot ending its probe. */
static size_t find(const rc__map *m, uint64_t h, const void *key,
                   size_t key_len)
{
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    const rc__map_slot *s;

    for (;; i = (i + 1) & mask) {
        s = &m->slots[i];
        if (s->hash == 0 || (s->hash == h && s->key_len == key_len &&
                             memcmp(s->key, key, key_len) == 0))
            return i;
    }
}

void *rc__map_get(const rc__map *m, const void *key, size_t key_len)
{
    if (m->count == 0)
        return NULL;
    return m->slots[find(m, rc__hash(key, key_len, m->seed), key, key_len)]
        .item;
}

static int grow(rc__map *m)
{
    size_t cap = m->cap ? m->cap * 2 : MIN_CAP, i;
    rc__map_slot *old = m->slots, *slots;
    size_t old_cap = m->cap;

    if (cap > SIZE_MAX / sizeof *slots)
        return RC_ENOMEM;
    slots = rc__malloc(m->mem, cap * sizeof *slots);
    if (slots == NULL)
        return RC_ENOMEM;
    memset(slots, 0, cap * sizeof *slots);
    m->slots = slots;
    m->cap = cap;
    for (i = 0; i < old_cap; i++)
        if (old[i].hash != 0)
            m->slots[find(m, old[i].hash, old[i].key, old[i].key_len)] = old[i];
    rc__free(m->mem, old);
    return 0;
}

int rc__map_put(rc__map *m, const void *key, size_t key_len, void *item)
{
    uint64_t h = rc__hash(key, key_len, m->seed);
    rc__map_slot *s;

    /* Keep the load at or below 3/4, so probes stay short. */
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) != 0)
        return RC_ENOMEM;
    s = &m->slots[find(m, h, key, key_len)];
    s->hash = h;
    s->key = key;
    s->key_len = key_len;
    s->item = item;
    m->count++;
    return 0;
}

void *rc__map_del(rc__map *m, const void *key, size_t key_len)
{
    size_t mask, i, j, k;
    void *item;

    if (m->count == 0)
        return NULL;
    mask = m->cap - 1;
    i = find(m, rc__hash(key, key_len, m->seed), key, key_len);
    if (m->slots[i].hash == 0)
        return NULL;
    item = m->slots[i].item;
    /* Shift back the entries after the hole whose probe passes over it,
     * so that lookups never need tombstones. */
    for (j = (i + 1) & mask; m->slots[j].hash != 0; j = (j + 1) & mask) {
        k = (size_t)m->slots[j].hash & mask; /* where j would like to be */
        if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof m->slots[i]);
    if (--m->count == 0)
        rc__map_free(m); /* give the table back after churn */
    return item;
}

int rc__map_each(const rc__map *m, int (*fn)(void *item, void *arg), void *arg)
{
    size_t i;
    int rv;

    for (i = 0; i < m->cap; i++) {
        if (m->slots[i].hash != 0 && (rv = fn(m->slots[i].item, arg)) != 0)
            return rv;
    }
    return 0;
}
