/*
 * Rate limits (see roomcast.h): GCRA on a local bucket, and cluster-wide
 * in Redis by one script call, with a local share while Redis is away.
 */
#define _DEFAULT_SOURCE /* inet_pton */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>

#include "internal.h"

/* Buckets kept for the local share; past this, those already full again
 * are dropped, and if none is, the check is allowed (counted). */
#define LOCAL_MAX 65536

static int rate_ok(const rc_rate *r)
{
    return r != NULL && r->per_second > 0 && r->per_second < 1e9;
}

static unsigned long long interval_us(const rc_rate *r)
{
    unsigned long long t = (unsigned long long)(1e6 / r->per_second);

    return t > 0 ? t : 1;
}

unsigned long long rc__rate_interval_us(const rc_rate *r)
{
    return rate_ok(r) ? interval_us(r) : 0;
}

int rc_gcra_take(rc_gcra *g, const rc_rate *r, unsigned long long now_us,
                 unsigned long long *retry_ms)
{
    unsigned long long t, burst, tat, allow_at;

    if (g == NULL || !rate_ok(r))
        return RC_EINVAL;
    t = interval_us(r);
    burst = r->burst ? r->burst : 1;
    tat = g->tat_us > now_us ? g->tat_us : now_us;
    allow_at = tat + t > t * burst ? tat + t - t * burst : 0;
    if (allow_at > now_us) {
        if (retry_ms != NULL)
            *retry_ms = (allow_at - now_us + 999) / 1000;
        return 0;
    }
    g->tat_us = tat + t;
    return 1;
}

/* ---- the local share -------------------------------------------------- */

typedef struct lbucket {
    rc_gcra g;
    size_t len;
    char key[];
} lbucket;

/* Drop one bucket that is full again (it remembers nothing); 0 if none. */
static int evict_one(rc_adapter *a)
{
    rc__map *m = &a->rates;
    lbucket *b;
    size_t i;

    for (i = 0; i < m->cap; i++) {
        b = m->slots[i].hash ? m->slots[i].item : NULL;
        if (b != NULL && b->g.tat_us <= a->pres.now * 1000) {
            rc__map_del(m, b->key, b->len);
            rc__free(&a->mem, b);
            return 1;
        }
    }
    return 0;
}

static lbucket *local_bucket(rc_adapter *a, const char *key, size_t len)
{
    rc__map *m = &a->rates;
    lbucket *b = rc__map_get(m, key, len);

    if (b != NULL)
        return b;
    while (m->count >= LOCAL_MAX)
        if (!evict_one(a))
            return NULL;
    if ((b = rc__malloc(&a->mem, sizeof *b + len + 1)) == NULL)
        return NULL;
    memset(&b->g, 0, sizeof b->g);
    b->len = len;
    memcpy(b->key, key, len + 1);
    if (rc__map_put(m, b->key, len, b) != 0) {
        rc__free(&a->mem, b);
        return NULL;
    }
    return b;
}

static int local_take(rc_adapter *a, const char *key, const rc_rate *r,
                      unsigned long long *retry_ms)
{
    lbucket *b = local_bucket(a, key, strlen(key));
    int rv;

    a->c.rate_local++;
    if (b == NULL) {
        a->c.rate_unchecked++;
        return 1;
    }
    rv = rc_gcra_take(&b->g, r, a->pres.now * 1000, retry_ms);
    return rv == 1 ? 1 : RC_ELIMITED;
}

static int free_bucket(void *item, void *arg)
{
    rc__free(&((rc_adapter *)arg)->mem, item);
    return 0;
}

void rc__rate_free(rc_adapter *a)
{
    rc__map_each(&a->rates, free_bucket, a);
    rc__map_free(&a->rates);
}

/* ---- cluster-wide -------------------------------------------------------- */

typedef struct ask {
    rc__pend pend; /* first */
    rc_rate_cb cb;
    void *user;
} ask;

static void on_rate(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    ask *k = arg;
    long long ok = 0, wait = 0;
    int rv = err;
    rc__alloc mem = a->mem;

    rc__pend_unlink(a, &k->pend);
    if (err == 0 &&
        (rc__reply_int(r, 0, &ok) != 0 || rc__reply_int(r, 1, &wait) != 0))
        rv = RC_EREDIS;
    else if (err == 0)
        rv = ok == 1 ? 1 : RC_ELIMITED;
    if (!a->closing) {
        rc__enter(a);
        k->cb(a, rv,
              rv == RC_ELIMITED ? (unsigned long long)(wait + 999) / 1000 : 0,
              k->user);
        rc__exit(a);
    }
    rc__free(&mem, k);
}

int rc_rate_take(rc_adapter *a, const char *key, const rc_rate *r,
                 rc_rate_cb cb, void *user, unsigned long long *retry_ms)
{
    size_t kp, klen;
    char t[24], b[24], *name;
    const char *argv[3];
    size_t len[3];
    ask *k;
    int rv;

    if (a == NULL || key == NULL || cb == NULL || !rate_ok(r))
        return RC_EINVAL;
    if (!rc__port_has_pub(a))
        return local_take(a, key, r, retry_ms);
    kp = strlen(a->node.kp);
    klen = strlen(key);
    if ((k = rc__malloc(&a->mem, sizeof *k)) == NULL ||
        (name = rc__malloc(&a->mem, kp + 3 + klen)) == NULL) {
        rc__free(&a->mem, k);
        return RC_ENOMEM;
    }
    k->cb = cb;
    k->user = user;
    memcpy(name, a->node.kp, kp);
    memcpy(name + kp, "rl:", 3);
    memcpy(name + kp + 3, key, klen);
    argv[0] = name, len[0] = kp + 3 + klen;
    argv[1] = t, len[1] = (size_t)(rc__dec_put(t, interval_us(r)) - t);
    argv[2] = b, len[2] = (size_t)(rc__dec_put(b, r->burst ? r->burst : 1) - b);
    rv = rc__port_script(a, RC__SCRIPT_RATE, 1, 3, argv, len, on_rate, k);
    rc__free(&a->mem, name);
    if (rv != 0) {
        rc__free(&a->mem, k);
        return rv;
    }
    k->pend.free_fn = NULL;
    rc__pend_link(a, &k->pend);
    return 0;
}

/* ---- keys of addresses ----------------------------------------------- */

int rc_rate_addr_key(const char *addr, char *out, size_t size)
{
    unsigned char v6[16];
    struct in_addr v4;
    int i, at;

    if (addr == NULL || out == NULL)
        return RC_EINVAL;
    if (size < 40)
        return RC_ENOBUFS;
    if (inet_pton(AF_INET, addr, &v4) == 1) {
        const unsigned char *p = (const unsigned char *)&v4;

        snprintf(out, size, "ip4:%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, v6) != 1)
        return RC_EINVAL;
    at = snprintf(out, size, "ip6:");
    for (i = 0; i < 8; i++)
        at += snprintf(out + at, size - (size_t)at, "%02x", v6[i]);
    snprintf(out + at, size - (size_t)at, "/64");
    return 0;
}
