/*
 * benchutil.c: what bench_admit and bench_history share (benchutil.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "benchutil.h"

double bu_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void bu_die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bu_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

double bu_cpu_ms(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* ---- Redis' side: INFO commandstats and INFO cpu ------------------------- */

static redisReply *info(redisContext *ctl, const char *section)
{
    redisReply *r = redisCommand(ctl, "INFO %s", section);

    if (r == NULL || r->type != REDIS_REPLY_STRING)
        bu_die("INFO failed");
    return r;
}

void bu_commandstats(redisContext *ctl, int top, long long *calls,
                     long long *usec)
{
    redisReply *r = info(ctl, "commandstats");
    const char *p;

    *calls = *usec = 0;
    for (p = r->str; (p = strstr(p, "cmdstat_")) != NULL; p++) {
        const char *c = strstr(p, "calls="), *u = strstr(p, "usec=");

        if (c == NULL || u == NULL)
            break;
        if (((top & TOP_SCRIPT) && (strncmp(p + 8, "evalsha:", 8) == 0 ||
                                    strncmp(p + 8, "eval:", 5) == 0)) ||
            ((top & TOP_PUB) && strncmp(p + 8, "publish:", 8) == 0)) {
            *calls += atoll(c + 6);
            *usec += atoll(u + 5);
        }
    }
    freeReplyObject(r);
}

double bu_redis_cpu_ms(redisContext *ctl)
{
    redisReply *r = info(ctl, "cpu");
    const char *s = strstr(r->str, "used_cpu_sys:");
    const char *u = strstr(r->str, "used_cpu_user:");
    double v;

    if (s == NULL || u == NULL)
        bu_die("no used_cpu in INFO cpu");
    v = (atof(s + 13) + atof(u + 14)) * 1e3;
    freeReplyObject(r);
    return v;
}

/* ---- rows ---------------------------------------------------------------- */

void bu_begin(redisContext *ctl, bu_mark *m)
{
    freeReplyObject(redisCommand(ctl, "CONFIG RESETSTAT"));
    m->rcpu = bu_redis_cpu_ms(ctl);
    m->cpu = bu_cpu_ms();
    m->t = bu_now_ms();
}

bu_span bu_end(redisContext *ctl, const bu_mark *m, const char *name, long n,
               long window)
{
    bu_span s;

    s.ms = bu_now_ms() - m->t;
    s.cpu_ms = bu_cpu_ms() - m->cpu;
    s.redis_cpu_ms = bu_redis_cpu_ms(ctl) - m->rcpu;
    fprintf(stderr, "%s: %s, %ld in flight: %.0f/s\n", bu_prog, name, window,
            n / (s.ms / 1e3));
    return s;
}

void bu_drive(struct event_base *base, int max_s, long n, long window,
              bu_issue_fn f, const long *done, const char *what)
{
    long sent = 0, from = *done;
    double end = bu_now_ms() + max_s * 1e3;
    int rv;

    while (*done - from < n) {
        while (sent < n && sent - (*done - from) < window)
            if ((rv = f(sent++)) != 0)
                bu_die("%s: %s", what, rc_strerror(rv));
        if (bu_now_ms() > end)
            bu_die("%s: timed out (%ld of %ld)", what, *done - from, n);
        event_base_loop(base, EVLOOP_ONCE);
    }
}

/* ---- setup --------------------------------------------------------------- */

void bu_wait_nodes(struct event_base *base, rc_adapter *const *nodes, int n,
                   int (*ready)(rc_adapter *a, void *arg), void *arg,
                   const char *what)
{
    double end = bu_now_ms() + 10000;
    int i;

    for (i = 0; i < n; i++)
        while (!ready(nodes[i], arg)) {
            if (bu_now_ms() > end)
                bu_die("%s", what);
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        }
}

void bu_connect(int port, struct event_base **base, redisContext **ctl)
{
    if ((*base = event_base_new()) == NULL)
        bu_die("no event base");
    if ((*ctl = redisConnect("127.0.0.1", port)) == NULL || (*ctl)->err)
        bu_die("cannot connect to redis-server");
}

static int is_live(rc_adapter *a, void *arg)
{
    (void)arg;
    return rc_adapter_node_state(a) == RC_NODE_LIVE;
}

void bu_open_nodes(struct event_base *base, int port, const char *prefix, int n,
                   rc_adapter **nodes, rc_link **links,
                   int (*setup)(rc_adapter *a))
{
    rc_state_options so;
    rc_link_options lo;
    char url[64], id[32];
    int i;

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    memset(&so, 0, sizeof so);
    so.lease_ms = 3600000; /* renewed every 20 min: not during the run */
    so.verify_ms = 3600000;
    for (i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        nodes[i] = rc_adapter_new(NULL, NULL, NULL, id);
        if (nodes[i] == NULL ||
            rc_adapter_set_state_options(nodes[i], &so, sizeof so) != 0 ||
            (setup != NULL && setup(nodes[i]) != 0))
            bu_die("cannot open an adapter");
        memset(&lo, 0, sizeof lo);
        lo.url = url;
        if (rc_link_open(nodes[i], base, &lo, &links[i]) != 0)
            bu_die("cannot open a link");
    }
    bu_wait_nodes(base, nodes, n, is_live, NULL,
                  "a node did not get its lease");
}

void bu_close(struct event_base *base, redisContext *ctl, int n,
              rc_adapter **nodes, rc_link **links)
{
    int i;

    for (i = 0; i < n; i++) {
        rc_link_close(links[i]);
        rc_adapter_free(nodes[i]);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    redisFree(ctl);
    event_base_free(base);
}
