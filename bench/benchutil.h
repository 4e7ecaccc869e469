/*
 * benchutil.h: what the benchmarks against a real redis-server
 * (bench_admit, bench_history) share: clocks, dying, Redis' INFO
 * commandstats and INFO cpu, a row's timing, the issue loop and the
 * nodes (adapters on rc_link, in one process on one libevent loop).
 *
 * A benchmark defines bu_prog, the program name its messages start with:
 *
 *   const char bu_prog[] = "bench_admit";
 */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "roomcast/libevent.h"
#include "roomcast/roomcast.h"

/* The Redis calls a row counts (bu_commandstats' top): */
#define TOP_SCRIPT 1 /* scripts: EVALSHA and EVAL */
#define TOP_PUB 2    /* PUBLISH */

extern const char bu_prog[];

/* CLOCK_MONOTONIC, in ms. */
double bu_now_ms(void);

/* This process' CPU (user + system), in ms. */
double bu_cpu_ms(void);

/* "bu_prog: " and the message on stderr, then exit(1). */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
void bu_die(const char *fmt, ...);

/* The calls and usec of the commands in top (TOP_*), summed. */
void bu_commandstats(redisContext *ctl, int top, long long *calls,
                     long long *usec);

/* used_cpu_sys + used_cpu_user of redis-server, in ms. */
double bu_redis_cpu_ms(redisContext *ctl);

/* When a row began (bu_begin: after CONFIG RESETSTAT). */
typedef struct bu_mark {
    double t, cpu, rcpu;
} bu_mark;

/* What a row took since its bu_mark: wall, this process' and Redis' CPU. */
typedef struct bu_span {
    double ms, cpu_ms, redis_cpu_ms;
} bu_span;

void bu_begin(redisContext *ctl, bu_mark *m);

/* The row of n calls with window in flight since bu_begin; says its rate
 * on stderr ("bu_prog: NAME, W in flight: R/s"). */
bu_span bu_end(redisContext *ctl, const bu_mark *m, const char *name, long n,
               long window);

typedef int (*bu_issue_fn)(long k);

/* Issue calls 0..n-1 with at most window in flight, until *done has grown
 * by n; the run fails after max_s seconds. */
void bu_drive(struct event_base *base, int max_s, long n, long window,
              bu_issue_fn f, const long *done, const char *what);

/* Run base until ready(nodes[i], arg) for every one of the n nodes; the
 * run fails ("bu_prog: what") after 10 s. */
void bu_wait_nodes(struct event_base *base, rc_adapter *const *nodes, int n,
                   int (*ready)(rc_adapter *a, void *arg), void *arg,
                   const char *what);

/* The event base and the control connection to redis-server at port. */
void bu_connect(int port, struct event_base **base, redisContext **ctl);

/* n nodes "PREFIX-i" on rc_link to redis-server at port, leases and
 * verifications an hour apart (nothing but the measured calls reaches
 * Redis); setup (if not NULL) configures each adapter further (0: done).
 * Returns once every node holds its lease. */
void bu_open_nodes(struct event_base *base, int port, const char *prefix, int n,
                   rc_adapter **nodes, rc_link **links,
                   int (*setup)(rc_adapter *a));

/* Close the n nodes, then the control connection and base. */
void bu_close(struct event_base *base, redisContext *ctl, int n,
              rc_adapter **nodes, rc_link **links);

#endif
