/*
 * The adapter's timed work (rc_adapter_tick) on a libevent timer: each
 * call says when the next is wanted, and the timer is armed for then.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdlib.h>
#include <time.h>

#include "glue.h"

struct rc__ticker {
    struct event *ev;
    rc_adapter *a;
};

static unsigned long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000u +
           (unsigned long long)ts.tv_nsec / 1000000u;
}

static void arm_ms(struct event *ev, unsigned ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (long)(ms % 1000) * 1000;
    evtimer_add(ev, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    rc__ticker *t = arg;

    (void)fd;
    (void)what;
    arm_ms(t->ev, rc_adapter_tick(t->a, now_ms()));
}

rc__ticker *rc__ticker_new(struct event_base *base, rc_adapter *a)
{
    rc__ticker *t = calloc(1, sizeof *t);

    if (t == NULL)
        return NULL;
    t->a = a;
    if ((t->ev = evtimer_new(base, on_tick, t)) == NULL) {
        free(t);
        return NULL;
    }
    arm_ms(t->ev, 0);
    return t;
}

void rc__ticker_free(rc__ticker *t)
{
    if (t == NULL)
        return;
    event_free(t->ev);
    free(t);
}
