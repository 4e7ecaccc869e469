/*
 * rc-chat's HTTP connections before they become streams: every connection
 * evhttp accepts is tracked here from accept (evhttp_set_bevcb) until it
 * closes or is taken over as an event stream.
 *
 * Three bounds that evhttp 2.1 does not give:
 * - a deadline: a request must be complete within --timeout-ms of the
 *   connection's accept (or of the previous answer on a kept-alive one),
 *   however slowly its bytes trickle in; evhttp's own timeout is reset by
 *   every byte;
 * - a cap: such connections may use the descriptors the streams leave
 *   (less a few for Redis and the loop), at least CHAT_CONN_MIN; past it
 *   the oldest still reading a request is closed. With the stream cap
 *   below the open-file limit by CHAT_FD_RESERVE, this keeps descriptors
 *   for /health and POSTs whatever the streams and the idle or trickling
 *   connections do;
 * - a budget: the bytes read of the requests being read, all connections
 *   together, stay under CHAT_REQ_BYTES_MAX (the connection holding the
 *   most is closed), since evhttp buffers each body whole.
 *
 * evhttp makes its connection only after the bevcb returns, so a new
 * entry is "adopted" (its connection found from its bufferevent, a close
 * callback set) by an event at the highest priority, before any of its
 * input is read.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "chat.h"

struct pending {
    chat *c;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL until adopted */
    struct event *deadline;          /* pending while a request is read */
    size_t bytes;                    /* read of the request being read */
    int reading;
    pending *prev, *next; /* on c's list, oldest first */
};

static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info,
                     void *arg);

static void unlink_pending(pending *p)
{
    chat *c = p->c;

    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        c->conns = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        c->conns_last = p->prev;
    p->prev = p->next = NULL;
    c->nconns--;
}

static void append_pending(pending *p)
{
    chat *c = p->c;

    p->prev = c->conns_last;
    p->next = NULL;
    if (c->conns_last != NULL)
        c->conns_last->next = p;
    else
        c->conns = p;
    c->conns_last = p;
    c->nconns++;
}

/* The request being read is no longer counted in the bytes in flight. */
static void uncount(pending *p)
{
    p->c->req_bytes -= p->bytes;
    p->bytes = 0;
    p->reading = 0;
}

static void pending_free(pending *p)
{
    /* evhttp drains the input after the close callback: not ours then */
    evbuffer_remove_cb(bufferevent_get_input(p->bev), on_input, p);
    uncount(p);
    unlink_pending(p);
    event_free(p->deadline);
    free(p);
}

/* evhttp is closing the connection (or we are). */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    pending_free(arg);
}

/* Close p's connection now; on_close frees p. */
static void pending_close(pending *p)
{
    struct evhttp_connection *evcon = p->evcon;

    if (evcon == NULL) /* not adopted yet: cannot happen before adopt runs */
        return;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    pending_free(p);
    evhttp_connection_free(evcon);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    pending *p = arg;

    (void)fd;
    (void)what;
    p->c->req_timeouts++;
    pending_close(p);
}

/* The connection whose request holds the most bytes. */
static pending *largest(chat *c)
{
    pending *p, *big = NULL;

    for (p = c->conns; p != NULL; p = p->next)
        if (p->evcon != NULL && (big == NULL || p->bytes > big->bytes))
            big = p;
    return big;
}

/* The oldest connection still reading its request (one being answered
 * is left to finish), or NULL. */
static pending *oldest_reading(chat *c)
{
    pending *p;

    for (p = c->conns; p != NULL; p = p->next)
        if (p->reading && p->evcon != NULL)
            return p;
    return NULL;
}

/* How many connections may be open beside the streams. */
static unsigned long conns_cap(const chat *c)
{
    unsigned long used = c->nstreams + CHAT_FD_MISC;

    if (c->o.nofile < used + CHAT_CONN_MIN)
        return CHAT_CONN_MIN;
    return c->o.nofile - used;
}

int conns_over_cap(const chat *c)
{
    return c->nconns > conns_cap(c);
}

/* Find the connections of the entries made since the last run, then close
 * the oldest entries past the cap. */
void conns_adopt(evutil_socket_t fd, short what, void *arg)
{
    chat *c = arg;
    pending *p;

    (void)fd;
    (void)what;
    for (p = c->conns; p != NULL; p = p->next) {
        void *evcon = NULL;

        if (p->evcon != NULL)
            continue;
        bufferevent_getcb(p->bev, NULL, NULL, NULL, &evcon);
        p->evcon = evcon;
        evhttp_connection_set_closecb(p->evcon, on_close, p);
    }
    while (c->nconns > conns_cap(c) && (p = oldest_reading(c)) != NULL) {
        c->req_evicted++;
        pending_close(p);
    }
    while (c->req_bytes > CHAT_REQ_BYTES_MAX && (p = largest(c)) != NULL &&
           p->bytes > 0) {
        c->req_evicted++;
        pending_close(p);
    }
}

/* Bytes came in: while a request is read they count in the total, which
 * the adopt event keeps under CHAT_REQ_BYTES_MAX. Nothing is closed from
 * here: this runs inside evhttp's read. */
static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info,
                     void *arg)
{
    pending *p = arg;

    (void)in;
    if (!p->reading || info->n_added == 0)
        return;
    p->bytes += info->n_added;
    p->c->req_bytes += info->n_added;
    if (p->c->req_bytes > CHAT_REQ_BYTES_MAX)
        event_active(p->c->adopt, EV_TIMEOUT, 1);
}

/* evhttp's bufferevent callback: a connection was accepted. */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
    chat *c = arg;
    pending *p = chat_malloc(sizeof *p);

    memset(p, 0, sizeof *p);
    p->c = c;
    p->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    p->deadline = evtimer_new(base, on_deadline, p);
    if (p->bev == NULL || p->deadline == NULL) {
        chat_log("out of memory");
        abort();
    }
    append_pending(p);
    p->reading = 1;
    evbuffer_add_cb(bufferevent_get_input(p->bev), on_input, p);
    evtimer_add(p->deadline, &c->timeout);
    event_active(c->adopt, EV_TIMEOUT, 1);
    return p->bev;
}

void conns_setup(chat *c)
{
    evhttp_set_bevcb(c->http, on_new_bev, c);
}

/* The entry of req's connection, or NULL (a stream's, or unknown). */
static pending *find(chat *c, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    pending *p;

    for (p = c->conns_last; p != NULL; p = p->prev)
        if (p->evcon == evcon)
            return p;
    return NULL;
}

/* A kept-alive connection reads its next request: a new deadline, and it
 * counts as the newest. */
static void on_complete(struct evhttp_request *req, void *arg)
{
    pending *p = arg;

    (void)req;
    unlink_pending(p);
    append_pending(p);
    p->reading = 1;
    evtimer_add(p->deadline, &p->c->timeout);
}

void conns_request(chat *c, struct evhttp_request *req)
{
    pending *p = find(c, req);

    if (p == NULL)
        return;
    evtimer_del(p->deadline);
    uncount(p);
    evhttp_request_set_on_complete_cb(req, on_complete, p);
}

void conns_detach(chat *c, struct evhttp_request *req)
{
    pending *p = find(c, req);

    if (p == NULL)
        return;
    evhttp_request_set_on_complete_cb(req, NULL, NULL);
    evhttp_connection_set_closecb(p->evcon, NULL, NULL);
    pending_free(p);
}
