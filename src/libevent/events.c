/*
 * The glue's event hooks for a hiredis context on libevent: what hiredis'
 * own adapter (hiredis/adapters/libevent.h) does, with reads drained
 * after each readable event. They follow the standard hook contract, so
 * the core may wrap them as it wraps any loop's.
 */
#include <stdlib.h>

#include <sys/ioctl.h>

#include "glue.h"

/* Reads per readable event: hiredis reads 16 KiB a call (0.14 and 1.x),
 * so up to 1 MiB before the loop serves others. */
#define DRAIN_READS 64

/* The glue's own event hooks for one context: hiredis' libevent adapter
 * with reads drained (see on_readable). */
typedef struct evl {
    redisAsyncContext *ac;
    struct event *rev, *wev;
    int reading; /* inside on_readable */
    int gone;    /* cleaned up meanwhile: freed on the way out */
} evl;

static void evl_free(evl *e)
{
    if (e->rev != NULL)
        event_free(e->rev);
    if (e->wev != NULL)
        event_free(e->wev);
    free(e);
}

static int bytes_waiting(evutil_socket_t fd)
{
    int n = 0;

    return ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
}

/* hiredis reads 16 KiB per call, so one call per event lets a fast
 * publisher outrun a subscriber until Redis cuts it at its pubsub output
 * limit. Read on while the socket holds more, up to DRAIN_READS calls,
 * so that one busy link cannot starve the rest of the loop (the event
 * stays active and comes back on the next turn). hiredis may free the
 * context from inside a read (cleanup then marks this one gone). */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    evl *e = arg;
    int n = 0;

    (void)what;
    rc__link_readable(e->ac);
    e->reading = 1;
    do
        redisAsyncHandleRead(e->ac);
    while (!e->gone && ++n < DRAIN_READS && bytes_waiting(fd) > 0);
    e->reading = 0;
    if (e->gone)
        evl_free(e);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleWrite(((evl *)arg)->ac);
}

static void evl_add_read(void *p)
{
    event_add(((evl *)p)->rev, NULL);
}

static void evl_del_read(void *p)
{
    event_del(((evl *)p)->rev);
}

static void evl_add_write(void *p)
{
    event_add(((evl *)p)->wev, NULL);
}

static void evl_del_write(void *p)
{
    event_del(((evl *)p)->wev);
}

static void evl_cleanup(void *p)
{
    evl *e = p;

    event_del(e->rev);
    event_del(e->wev);
    if (e->reading)
        e->gone = 1;
    else
        evl_free(e);
}

/* The standard hook contract (what hiredis' adapters set), so that the
 * core may wrap these hooks as it wraps any loop's. No timer hook: the
 * side's own timer bounds connects. */
int rc__evl_attach(redisAsyncContext *ac, struct event_base *base)
{
    evl *e;

    if (ac->ev.data != NULL || (e = calloc(1, sizeof *e)) == NULL)
        return REDIS_ERR;
    e->ac = ac;
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_readable, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE | EV_PERSIST, on_writable, e);
    if (e->rev == NULL || e->wev == NULL) {
        evl_free(e);
        return REDIS_ERR;
    }
    ac->ev.data = e;
    ac->ev.addRead = evl_add_read;
    ac->ev.delRead = evl_del_read;
    ac->ev.addWrite = evl_add_write;
    ac->ev.delWrite = evl_del_write;
    ac->ev.cleanup = evl_cleanup;
    return REDIS_OK;
}
