/* Shared integration-test support (see test_support.h). */
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

struct event *ts_guard_new(struct event_base *base)
{
    return evtimer_new(base, guard_cb, NULL);
}

void ts_pump(struct event_base *base)
{
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

void ts_idle(struct event_base *base, struct event *guard)
{
    struct timeval tv = {0, 1000};

    evtimer_add(guard, &tv);
    event_base_loop(base, EVLOOP_ONCE);
    evtimer_del(guard);
}

void ts_run_until(struct event_base *base, struct event *guard,
                  int (*pred)(void *), void *arg, int timeout_ms,
                  const char *what, const char *file, int line,
                  void (*dump)(const void *), const void *dump_arg)
{
    long long deadline = ts_now_ms() + timeout_ms;

    for (;;) {
        if (pred(arg))
            return;
        ts_pump(base);
        if (pred(arg))
            return;
        if (ts_now_ms() >= deadline) {
            if (dump != NULL)
                dump(dump_arg);
            fail_msg("%s:%d: timed out after %d ms waiting for %s", file, line,
                     timeout_ms, what);
        }
        ts_idle(base, guard);
    }
}
