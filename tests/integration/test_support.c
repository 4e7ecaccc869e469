/* Shared integration-test support: the loop and the waits (see
 * test_support.h). */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <cmocka.h>

#include "test_support.h"

void ts_note(ts_problems *p, const char *fmt, ...)
{
    va_list ap;

    if (p->count++ == 0) {
        va_start(ap, fmt);
        vsnprintf(p->first, sizeof p->first, fmt, ap);
        va_end(ap);
    }
}

void ts_assert_clean(const ts_problems *p)
{
    if (p->count)
        fail_msg("%d problem(s) seen inside callbacks; the first: %s", p->count,
                 p->first);
}

long long ts_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

int ts_loop_init(ts_loop *lp)
{
    lp->base = event_base_new();
    if (lp->base == NULL)
        return -1;
    lp->guard = evtimer_new(lp->base, guard_cb, NULL);
    return lp->guard ? 0 : -1;
}

int ts_loop_free(ts_loop *lp, int ms)
{
    long long deadline = ts_now_ms() + ms;
    int rc = 0;

    if (lp->guard != NULL) {
        event_free(lp->guard);
        lp->guard = NULL;
    }
    if (lp->base == NULL)
        return 0;
    while (event_base_loop(lp->base, EVLOOP_NONBLOCK) == 0) {
        if (ts_now_ms() > deadline) {
            rc = -1;
            break;
        }
    }
    event_base_free(lp->base);
    lp->base = NULL;
    return rc;
}

void ts_pump(ts_loop *lp)
{
    event_base_loop(lp->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

void ts_idle(ts_loop *lp)
{
    struct timeval tv = {0, 1000};

    evtimer_add(lp->guard, &tv);
    event_base_loop(lp->base, EVLOOP_ONCE);
    evtimer_del(lp->guard);
}

void ts_run_for(ts_loop *lp, int ms)
{
    long long end = ts_now_ms() + ms;

    while (ts_now_ms() < end) {
        ts_pump(lp);
        ts_idle(lp);
    }
}

void ts_timed_out(const ts_loop *lp, int ms, const char *what, const char *file,
                  int line)
{
    if (lp->dump != NULL)
        lp->dump(lp->dump_arg);
    fail_msg("%s:%d: timed out after %d ms waiting for %s", file, line, ms,
             what);
}

void ts_run_until(ts_loop *lp, int (*pred)(void *), void *arg, int ms,
                  const char *what, const char *file, int line)
{
    long long deadline = ts_now_ms() + ms;

    for (;;) {
        if (pred(arg))
            return;
        ts_pump(lp);
        if (pred(arg))
            return;
        if (ts_now_ms() >= deadline)
            ts_timed_out(lp, ms, what, file, line);
        ts_idle(lp);
    }
}
