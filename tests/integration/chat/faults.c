/*
 * rc-chat-faults: rc-chat with faults injected, for chat_faults
 * (faults.test.mjs). It is rc-chat's own objects linked with
 * -Wl,--wrap=NAME for each call below, so that rc-chat's calls to NAME come
 * here first.
 *
 *   RC_CHAT_FAIL=NAME:N   the Nth call (from 1) of NAME fails, the way it
 *                         fails for want of memory: NULL, -1, or RC_ENOMEM
 *
 * Every other call, and every call when RC_CHAT_FAIL is unset, goes through
 * to the real function.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <roomcast/roomcast.h>

/* Count a call of name; 1 if it is the one to fail. */
static int fail(const char *name, unsigned long *calls)
{
    const char *spec = getenv("RC_CHAT_FAIL");
    size_t n = strlen(name);

    ++*calls;
    return spec != NULL && strncmp(spec, name, n) == 0 && spec[n] == ':' &&
           strtoul(spec + n + 1, NULL, 10) == *calls;
}

struct event_base *__real_event_base_new(void);
struct event_base *__wrap_event_base_new(void);
struct event_base *__wrap_event_base_new(void)
{
    static unsigned long calls;

    return fail("event_base_new", &calls) ? NULL : __real_event_base_new();
}

int __real_event_base_priority_init(struct event_base *base, int n);
int __wrap_event_base_priority_init(struct event_base *base, int n);
int __wrap_event_base_priority_init(struct event_base *base, int n)
{
    static unsigned long calls;

    return fail("event_base_priority_init", &calls)
               ? -1
               : __real_event_base_priority_init(base, n);
}

struct evhttp *__real_evhttp_new(struct event_base *base);
struct evhttp *__wrap_evhttp_new(struct event_base *base);
struct evhttp *__wrap_evhttp_new(struct event_base *base)
{
    static unsigned long calls;

    return fail("evhttp_new", &calls) ? NULL : __real_evhttp_new(base);
}

struct evhttp_bound_socket *
__real_evhttp_bind_listener(struct evhttp *http, struct evconnlistener *l);
struct evhttp_bound_socket *
__wrap_evhttp_bind_listener(struct evhttp *http, struct evconnlistener *l);
struct evhttp_bound_socket *
__wrap_evhttp_bind_listener(struct evhttp *http, struct evconnlistener *l)
{
    static unsigned long calls;

    return fail("evhttp_bind_listener", &calls)
               ? NULL
               : __real_evhttp_bind_listener(http, l);
}

struct event *__real_event_new(struct event_base *base, evutil_socket_t fd,
                               short what, event_callback_fn cb, void *arg);
struct event *__wrap_event_new(struct event_base *base, evutil_socket_t fd,
                               short what, event_callback_fn cb, void *arg);
struct event *__wrap_event_new(struct event_base *base, evutil_socket_t fd,
                               short what, event_callback_fn cb, void *arg)
{
    static unsigned long calls;

    return fail("event_new", &calls)
               ? NULL
               : __real_event_new(base, fd, what, cb, arg);
}

int __real_event_add(struct event *ev, const struct timeval *tv);
int __wrap_event_add(struct event *ev, const struct timeval *tv);
int __wrap_event_add(struct event *ev, const struct timeval *tv)
{
    static unsigned long calls;

    return fail("event_add", &calls) ? -1 : __real_event_add(ev, tv);
}

int __real_event_priority_set(struct event *ev, int priority);
int __wrap_event_priority_set(struct event *ev, int priority);
int __wrap_event_priority_set(struct event *ev, int priority)
{
    static unsigned long calls;

    return fail("event_priority_set", &calls)
               ? -1
               : __real_event_priority_set(ev, priority);
}

int __real_rc_room_join(rc_conn *conn, const char *room);
int __wrap_rc_room_join(rc_conn *conn, const char *room);
int __wrap_rc_room_join(rc_conn *conn, const char *room)
{
    static unsigned long calls;

    return fail("rc_room_join", &calls) ? RC_ENOMEM
                                        : __real_rc_room_join(conn, room);
}
