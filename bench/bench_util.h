/*
 * bench_util.h: what the benchmarks share. Every function is static, so
 * each benchmark is still one .c file; each of them uses all of these.
 *
 * Before including it, a benchmark defines its feature-test macro (before
 * any #include: clock_gettime needs POSIX under -std=c99) and BENCH_NAME,
 * the program name its messages start with:
 *
 *   #define _POSIX_C_SOURCE 200809L
 *   ... system headers ...
 *   #define BENCH_NAME "bench_codec"
 *   #include "bench_util.h"
 *
 * Timing method, shared by all: the batch grows until one takes >= 100 us,
 * then --warmup-ms of warm-up and --reps timed runs of --time-ms or
 * --max-iters iterations each, whichever comes first; the result is the
 * median run, with the fastest and slowest.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_util.h"
#endif

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "roomcast/roomcast.h"

#define BENCH_MAX_REPS 15

/* --time-ms, --warmup-ms, --reps, --max-iters */
struct bench_timing {
    unsigned time_ms;
    unsigned warmup_ms;
    unsigned reps;
    unsigned long long max_iters;
};

#define BENCH_TIMING_DEFAULTS                                                  \
    {                                                                          \
        500, 200, 5, 20000000ull                                               \
    }

struct bench_result {
    double median_ns, min_ns, max_ns; /* per iteration */
    uint64_t iters; /* iterations of the run that gave the median */
};

/* Runs n iterations; returns nonzero if one of them failed. */
typedef int bench_batch_fn(void *ctx, uint64_t n);

/* Whatever the loops compute ends up here, so nothing can be dropped. */
static volatile uint64_t sink;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
    if (err < 0)
        fprintf(stderr, BENCH_NAME ": %s: %s (%s)\n", what, rc_err_name(err),
                rc_strerror(err));
    else
        fprintf(stderr, BENCH_NAME ": %s\n", what);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory", 0);
    return p;
}

/* ---- options ------------------------------------------------------------ */

static unsigned long long parse_num(const char *flag, const char *s)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno || v == 0) {
        fprintf(stderr, BENCH_NAME ": %s wants a positive integer\n", flag);
        exit(2);
    }
    return v;
}

/* If a is one of the timing options, stores its value v (exits 2 if v is
 * not a positive integer) and returns 1: the caller skips v. Else 0. */
static int bench_timing_arg(struct bench_timing *t, const char *a,
                            const char *v)
{
    if (!strcmp(a, "--time-ms"))
        t->time_ms = (unsigned)parse_num(a, v);
    else if (!strcmp(a, "--warmup-ms"))
        t->warmup_ms = (unsigned)parse_num(a, v);
    else if (!strcmp(a, "--reps"))
        t->reps = (unsigned)parse_num(a, v);
    else if (!strcmp(a, "--max-iters"))
        t->max_iters = parse_num(a, v);
    else
        return 0;
    return 1;
}

/* For the argument a that no option took, the option loop's last case:
 * -h or --help prints the usage to stdout and gives 0, anything else prints
 * it to stderr and gives 2. main returns that. */
static int bench_help_or_bad_arg(const char *a, void (*print_usage)(FILE *))
{
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        print_usage(stdout);
        return 0;
    }
    print_usage(stderr);
    return 2;
}

/* Nonzero, after saying why, if bench_measure cannot take t. */
static int bench_timing_bad(const struct bench_timing *t)
{
    if (t->reps > BENCH_MAX_REPS) {
        fprintf(stderr, BENCH_NAME ": --reps is at most %d\n", BENCH_MAX_REPS);
        return 1;
    }
    return 0;
}

/* ---- timing ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times run(ctx, batch) by the method above. A failing batch stops the
 * program with failed (failed_warmup before the timed runs). */
static struct bench_result bench_measure(bench_batch_fn *run, void *ctx,
                                         const struct bench_timing *t,
                                         const char *failed,
                                         const char *failed_warmup)
{
    uint64_t batch = 1, t0, t1, warm_end;
    uint64_t budget = (uint64_t)t->time_ms * 1000000u;
    double ns[BENCH_MAX_REPS], sorted[BENCH_MAX_REPS];
    uint64_t iters[BENCH_MAX_REPS];
    struct bench_result r;
    unsigned rep, mid;

    /* Grow the batch until one takes >= 100 us, so that reading the clock
     * costs nothing next to the work between two reads. */
    for (;;) {
        t0 = now_ns();
        if (run(ctx, batch))
            die(failed_warmup, 0);
        t1 = now_ns();
        if (t1 - t0 >= 100000u || batch >= ((uint64_t)1 << 30))
            break;
        batch *= 2;
    }
    /* Warm-up: caches, branch predictors, CPU clock. */
    warm_end = now_ns() + (uint64_t)t->warmup_ms * 1000000u;
    while (now_ns() < warm_end)
        if (run(ctx, batch))
            die(failed_warmup, 0);

    for (rep = 0; rep < t->reps; rep++) {
        uint64_t n = 0;
        t0 = now_ns();
        do {
            if (run(ctx, batch))
                die(failed, 0);
            n += batch;
            t1 = now_ns();
        } while (t1 - t0 < budget && n < t->max_iters);
        ns[rep] = (double)(t1 - t0) / (double)n;
        iters[rep] = n;
    }

    memcpy(sorted, ns, t->reps * sizeof ns[0]);
    qsort(sorted, t->reps, sizeof sorted[0], cmp_double);
    mid = t->reps / 2;
    r.median_ns = sorted[mid];
    r.min_ns = sorted[0];
    r.max_ns = sorted[t->reps - 1];
    r.iters = 0;
    for (rep = 0; rep < t->reps; rep++)
        if (ns[rep] == r.median_ns) {
            r.iters = iters[rep];
            break;
        }
    return r;
}

#endif
