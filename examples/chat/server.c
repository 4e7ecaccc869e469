/*
 * rc-chat's server: setup and teardown of everything on the event loop
 * (the adapter, the Redis link, evhttp and its listener, timers, signals),
 * and the loop's own callbacks (heartbeats, room events, accept errors,
 * link state). Stopping is shutdown.c.
 *
 * evhttp 2.1 is hardened as it needs to be for a public server: header and
 * body caps, request timeouts, our own stream cap (503, routes.c), and a
 * listener of our own (a long queue; it pauses on EMFILE instead of
 * spinning).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "chat.h"
#include "text.h"

#define HEADERS_MAX 8192
#define ACCEPT_PAUSE_MS 250
#define ACCEPT_RETRY_MS 10
#define LISTEN_BACKLOG 1024

/* A room's subscription is confirmed (READY) or gone (LOST). Streams
 * waiting for their hello get it at READY; streams that had theirs when
 * the subscription was lost get rc:gap when it is back. */
static void room_streams(stream *s, int event)
{
    if (event == RC_ROOM_LOST) {
        s->lost = s->hello;
    } else if (!s->hello) {
        stream_hello(s);
    } else if (s->lost) {
        s->lost = 0;
        if (!s->c->history) /* else the library repairs it, or resets */
            stream_gap(s);
    }
}

static void on_room(rc_adapter *a, const char *room, int event, void *user)
{
    rc_conn *one, **members;
    size_t n, i;

    (void)user;
    if (event != RC_ROOM_READY && event != RC_ROOM_LOST)
        return;
    n = rc_room_members(a, room, &one, 1);
    members = n > 1 ? chat_malloc(n * sizeof *members) : &one;
    if (n > 1)
        rc_room_members(a, room, members, n);
    for (i = 0; i < n; i++)
        room_streams(rc_conn_user(members[i]), event);
    if (members != &one)
        free(members);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    streams_ping(arg);
}

/* Without Redis the adapter's timed work (presence's grace) is ours to
 * drive; rc_link does it otherwise. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    chat *c = arg;
    struct timeval tv;
    struct timespec ts;

    (void)fd;
    (void)what;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    tv = chat_ms_tv(
        rc_adapter_tick(c->a, (unsigned long long)ts.tv_sec * 1000 +
                                  (unsigned long long)ts.tv_nsec / 1000000));
    evtimer_add(c->tick, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    chat *c = arg;

    (void)fd;
    (void)what;
    if (c->bound != NULL)
        evconnlistener_enable(evhttp_bound_socket_get_listener(c->bound));
}

/* The listener's error callback gets the argument evhttp gave the
 * listener (its struct evhttp), so the one chat is found here. */
static chat *listener_chat;

/* accept() failed (EMFILE...): pause the listener instead of spinning;
 * briefly when connections over the cap are about to be closed (the
 * listener accepted a burst before the adopt event could run), since
 * their descriptors come back within a loop turn or two. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    chat *c = listener_chat;
    int ms = conns_over_cap(c) ? ACCEPT_RETRY_MS : ACCEPT_PAUSE_MS;
    struct timeval tv = chat_ms_tv((unsigned long)ms);
    int err = EVUTIL_SOCKET_ERROR();

    (void)arg;
    if (c->accept_errors++ % 1000 == 0)
        chat_log("accept: %s (%llu so far); pausing %d ms",
                 evutil_socket_error_to_string(err), c->accept_errors, ms);
    evconnlistener_disable(l);
    evtimer_add(c->resume, &tv);
}

static void on_link_state(rc_link *link, int state, const char *reason,
                          void *user)
{
    (void)link;
    (void)user;
    chat_log("redis %s%s%s", state == RC_LINK_UP ? "up" : "down",
             state == RC_LINK_UP ? "" : ": ",
             state == RC_LINK_UP ? "" : reason);
}

/* The node's lease: refused means another live node has our id, and we
 * publish nothing until it is ours (/ready says so meanwhile). */
static void on_node(rc_adapter *a, int state, int err, void *user)
{
    (void)user;
    if (state == RC_NODE_REFUSED)
        chat_log("node id %s is in use by another live node: not ready, "
                 "publishing nothing until it is free",
                 rc_adapter_node_id(a));
    else if (state == RC_NODE_LIVE)
        chat_log("node id %s: lease held", rc_adapter_node_id(a));
    else if (err != 0)
        chat_log("node lease: %s", rc_strerror(err));
}

/* Raise the soft open-file limit to the hard one; derive the stream cap. */
void server_fd_limits(options *o)
{
    struct rlimit rl;
    unsigned long nofile = 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        nofile =
            rl.rlim_cur == RLIM_INFINITY ? 1000000 : (unsigned long)rl.rlim_cur;
    }
    o->nofile = nofile;
    if (o->max_streams == 0)
        o->max_streams = nofile > 2 * CHAT_FD_RESERVE ? nofile - CHAT_FD_RESERVE
                                                      : nofile / 2 + 1;
    if (o->max_streams + 16 > nofile)
        chat_log("warning: --max-streams %lu is near the open-file limit %lu",
                 o->max_streams, nofile);
}

/* The adapter (local rooms), its filter and room callback, and the Redis
 * link when --redis is given. */
static int setup_adapter(chat *c)
{
    rc_adapter_options ao;
    rc_state_options so;
    rc_presence_options po;
    rc_link_options lo;
    int rc;

    memset(&ao, 0, sizeof ao);
    ao.prefix = c->o.prefix;
    ao.node_id = c->o.node_id;
    rc = rc_adapter_open(&ao, NULL, NULL, &c->a);
    if (rc < 0) {
        chat_log("cannot create the adapter: %s", rc_strerror(rc));
        return -1;
    }
    rc_adapter_set_filter(c->a, stream_filter, c);
    rc_adapter_set_room_cb(c->a, on_room, c);
    rc_adapter_set_end_cb(c->a, stream_on_end, c);
    memset(&so, 0, sizeof so);
    so.lease_ms = (unsigned)c->o.lease_ms;
    so.verify_ms = (unsigned)c->o.verify_ms;
    memset(&po, 0, sizeof po);
    po.grace_ms = (unsigned)c->o.grace_ms;
    po.announce_max = (unsigned)c->o.announce_max;
    rc_adapter_set_node_cb(c->a, on_node, c);
    if ((rc = rc_adapter_set_state_options(c->a, &so, sizeof so)) < 0 ||
        (rc = rc_adapter_set_presence(c->a, &po, sizeof po)) < 0) {
        chat_log("room state options: %s", rc_strerror(rc));
        return -1;
    }
    if (history_setup(c) < 0)
        return -1;
    if (c->o.redis == NULL)
        return 0;
    memset(&lo, 0, sizeof lo);
    lo.url = c->o.redis;
    lo.state_cb = on_link_state;
    lo.user = c;
    rc = rc_link_open(c->a, c->base, &lo, &c->link);
    if (rc < 0) {
        char shown[512];

        chat_log("--redis %s: %s",
                 chat_url_redact(c->o.redis, shown, sizeof shown),
                 rc_strerror(rc));
        return -1;
    }
    return 0;
}

/* evhttp with its caps and timeout, answering every request. */
static int setup_http(chat *c)
{
    c->http = evhttp_new(c->base);
    if (c->http == NULL) {
        chat_log("cannot create the HTTP server");
        return -1;
    }
    c->timeout = chat_ms_tv(c->o.timeout_ms);
    evhttp_set_timeout_tv(c->http, &c->timeout);
    evhttp_set_max_headers_size(c->http, HEADERS_MAX);
    evhttp_set_max_body_size(c->http, (ev_ssize_t)CHAT_BODY_MAX);
    evhttp_set_allowed_methods(
        c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                     EVHTTP_REQ_PATCH);
    evhttp_set_gencb(c->http, routes_request, c);
    conns_setup(c);
    return 0;
}

/* --bind and --port as a socket address of *len bytes. Returns 0 or -1. */
static int bind_address(const options *o, struct sockaddr_storage *ss, int *len)
{
    char spec[300];

    *len = (int)sizeof *ss;
    snprintf(spec, sizeof spec, strchr(o->bind, ':') ? "[%s]" : "%s", o->bind);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)ss, len) < 0) {
        chat_log("--bind %s: not an IPv4 or IPv6 address", o->bind);
        return -1;
    }
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)o->port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)o->port);
    return 0;
}

/* The port the listener got (for --port 0), or port if it cannot tell. */
static unsigned bound_port(struct evconnlistener *l, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;

    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &sl) < 0)
        return port;
    return ntohs(ss.ss_family == AF_INET6
                     ? ((struct sockaddr_in6 *)&ss)->sin6_port
                     : ((struct sockaddr_in *)&ss)->sin_port);
}

/* Our own listener for evhttp: a long listen queue (evhttp's is 128), and
 * an error callback. */
static int setup_listener(chat *c)
{
    struct evconnlistener *l;
    struct sockaddr_storage ss;
    int len;

    if (bind_address(&c->o, &ss, &len) < 0)
        return -1;
    l = evconnlistener_new_bind(c->base, NULL, NULL,
                                LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
                                    LEV_OPT_CLOSE_ON_EXEC,
                                LISTEN_BACKLOG, (struct sockaddr *)&ss, len);
    if (l == NULL) {
        chat_log("cannot listen on %s port %u: %s", c->o.bind, c->o.port,
                 strerror(errno));
        return -1;
    }
    c->bound = evhttp_bind_listener(c->http, l);
    if (c->bound == NULL) {
        chat_log("cannot hand the listener to the HTTP server");
        evconnlistener_free(l);
        return -1;
    }
    listener_chat = c;
    evconnlistener_set_error_cb(l, on_accept_error);
    if (c->o.port == 0) /* say which port we got */
        c->o.port = bound_port(l, c->o.port);
    return 0;
}

/* One of the loop's own events: where it goes, and how it is made. */
typedef struct event_spec {
    struct event **ev;
    const char *name;
    evutil_socket_t fd;
    short what;
    event_callback_fn cb;
    int prio;                 /* -1: the default */
    int add;                  /* added now (else when needed) */
    const struct timeval *tv; /* its timeout when added */
} event_spec;

/* Make (and add) the event e says. Returns 0, or -1 after logging why. */
static int make_event(chat *c, const event_spec *e)
{
    struct event *ev = event_new(c->base, e->fd, e->what, e->cb, c);

    if (ev == NULL) {
        chat_log("cannot create the %s event", e->name);
        return -1;
    }
    *e->ev = ev; /* server_teardown frees it from here on */
    if (e->prio >= 0 && event_priority_set(ev, e->prio) < 0) {
        chat_log("cannot set the priority of the %s event", e->name);
        return -1;
    }
    if (e->add && event_add(ev, e->tv) < 0) {
        chat_log("cannot add the %s event", e->name);
        return -1;
    }
    return 0;
}

/* Heartbeats, the stream writer and reaper, the listener's pause, the
 * shutdown deadline, and the signals that start shutdown. The writer and
 * reaper run below everything else: streams are written once no more input
 * is ready, so that the frames of every message read in a burst go out in
 * one writev per stream (stream.c bounds how much waits). */
static int setup_events(chat *c)
{
    struct timeval hb = chat_ms_tv(c->o.heartbeat_ms), now = {0, 0};
    const short sig = EV_SIGNAL | EV_PERSIST;
    const event_spec events[] = {
        {&c->heartbeat, "heartbeat", -1, EV_PERSIST, on_heartbeat, -1, 1, &hb},
        {&c->reaper, "reaper", -1, 0, streams_reap, CHAT_PRIO_LOW, 0, NULL},
        {&c->flush, "flush", -1, 0, streams_flush, CHAT_PRIO_LOW, 0, NULL},
        {&c->resume, "resume", -1, 0, on_resume, -1, 0, NULL},
        {&c->drain, "drain", -1, 0, shutdown_on_deadline, -1, 0, NULL},
        {&c->adopt, "adopt", -1, 0, conns_adopt, 0, 0, NULL},
        {&c->tick, "tick", -1, 0, on_tick, -1, c->link == NULL, &now},
        {&c->sig[0], "SIGINT", SIGINT, sig, shutdown_on_signal, -1, 1, NULL},
        {&c->sig[1], "SIGTERM", SIGTERM, sig, shutdown_on_signal, -1, 1, NULL},
    };
    size_t i;

    for (i = 0; i < sizeof events / sizeof events[0]; i++)
        if (make_event(c, &events[i]) < 0)
            return -1;
    return 0;
}

int server_setup(chat *c)
{
    const char *v6 = strchr(c->o.bind, ':');
    char shown[512]; /* the Redis URL without its password */

    if (setup_adapter(c) < 0 || setup_http(c) < 0 || setup_listener(c) < 0 ||
        setup_events(c) < 0)
        return -1;
    chat_log("node %s listening on http://%s%s%s:%u/ (redis: %s)",
             rc_adapter_node_id(c->a), v6 ? "[" : "", c->o.bind, v6 ? "]" : "",
             c->o.port,
             c->o.redis != NULL
                 ? chat_url_redact(c->o.redis, shown, sizeof shown)
                 : "off");
    return 0;
}

void server_teardown(chat *c)
{
    struct event **evs[] = {&c->heartbeat, &c->reaper, &c->flush,
                            &c->resume,    &c->drain,  &c->adopt,
                            &c->tick,      &c->sig[0], &c->sig[1]};
    size_t i;

    /* Every stream has ended (shutdown.c): free their connections before
     * evhttp_free would. */
    streams_reap(-1, 0, c);
    rc_link_close(c->link); /* answers pending member queries */
    if (c->http != NULL)
        evhttp_free(c->http);
    rc_adapter_free(c->a);
    for (i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i] != NULL)
            event_free(*evs[i]);
    event_base_free(c->base);
}
