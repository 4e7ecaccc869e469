/*
 * rc-chat's event streams, on the raw socket.
 *
 * evhttp parses the request; then the stream takes the connection over:
 * evhttp's bufferevent is disabled and never used again (the request is
 * left unanswered in evhttp's books), and the stream writes its own
 * response head and body on the socket: HTTP/1.1, "Connection: close", the
 * body delimited by the close (no chunked framing, which SSE does not need).
 * The connection goes back to evhttp only to be freed (by the reaper, never
 * from inside a callback), which closes the socket.
 *
 * Output is a queue per stream of pieces to write: references to the
 * adapter's shared frames (rc_frame_ref; no copy per recipient), static
 * strings (pings), or the stream's own hello. Delivering a frame only
 * appends to the queue and marks the stream dirty; the flush event, at a
 * priority below every other event, writes every dirty stream with one
 * writev once no more input is ready, so the frames of all the messages
 * received in a burst from Redis go out in one system call (a stream with
 * 64 KiB queued is written at once).
 * The queue's array grows by doubling and is reused: no allocation per
 * delivery.
 *
 * Bounds: a stream whose queue would pass --max-buffer is closed ("slow"),
 * as is one whose socket takes nothing for --timeout-ms; slow streams are
 * reset (SO_LINGER 0), and each socket's send buffer is capped. Bytes the
 * client sends are read and dropped; past 16 KiB the stream is closed.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/http.h>

#include "chat.h"
#include "text.h"

#define STREAM_INPUT_MAX 16384
#define IOV_BATCH 64
#define FLUSH_AT 65536 /* queued bytes written at once, not at the flush */
/* The kernel's send buffer of a stream (Linux doubles it: 256 KiB), so
 * that what a slow client pins is bounded by --max-buffer plus this. */
#define STREAM_SNDBUF (128 * 1024)
#define STREAM_PROBE_MS 250 /* after the client's FIN: see on_eof */

static const char head[] = "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/event-stream\r\n"
                           "Cache-Control: no-cache\r\n"
                           "X-Accel-Buffering: no\r\n"
                           "Connection: close\r\n"
                           "\r\n";
static const char ping[] = ": ping\n\n";

const char *const chat_close_names[CLOSE_N] = {"client", "slow", "shutdown",
                                               "error", "ended"};

static void stream_kill(stream *s, int why);
static void stream_write(stream *s);
static void on_io(evutil_socket_t fd, short what, void *arg);

/* A slow stream ends with a reset: the kernel drops what is still queued
 * for it at once instead of keeping an orphan socket with its send buffer
 * full while the peer holds its end without reading. */
static void set_abortive(int fd)
{
    struct linger lg = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* Put s first on list l, whose first stream is *first. */
static void list_add(stream **first, stream *s, int l)
{
    s->prev[l] = NULL;
    s->next[l] = *first;
    if (*first != NULL)
        (*first)->prev[l] = s;
    *first = s;
}

/* Take s off list l, whose first stream is *first. */
static void list_remove(stream **first, stream *s, int l)
{
    if (s->prev[l] != NULL)
        s->prev[l]->next[l] = s->next[l];
    else
        *first = s->next[l];
    if (s->next[l] != NULL)
        s->next[l]->prev[l] = s->prev[l];
    s->prev[l] = s->next[l] = NULL;
}

static void dirty_remove(stream *s)
{
    if (!s->dirty)
        return;
    list_remove(&s->c->dirty, s, LIST_DIRTY);
    s->dirty = 0;
}

static void release(chunk *k)
{
    rc_frame_unref(k->frame);
    free(k->own);
}

/* Make room for one more chunk: double the ring, and unwrap it. */
static void grow(stream *s)
{
    unsigned cap = s->qcap ? 2 * s->qcap : 8, i;
    chunk *q = chat_malloc(cap * sizeof *q);

    for (i = 0; i < s->qlen; i++)
        q[i] = s->q[(s->qhead + i) % s->qcap];
    free(s->q);
    s->q = q;
    s->qcap = cap;
    s->qhead = 0;
}

/* Put s on the list written at the end of this loop turn. */
static void mark_dirty(stream *s)
{
    chat *c = s->c;

    s->dirty = 1;
    list_add(&c->dirty, s, LIST_DIRTY);
    if (!event_pending(c->flush, EV_TIMEOUT, NULL))
        event_active(c->flush, EV_TIMEOUT, 1);
}

/*
 * Queue n bytes: a reference to frame's bytes, our own copy own (freed once
 * written), or static bytes. Past the output cap the stream is closed
 * instead; but a stream with at most FLUSH_AT waiting always takes the
 * next piece, so that the largest message reaches a client that reads.
 * Returns 0 or -1.
 */
static int push(stream *s, const char *p, size_t n, rc_frame *frame, char *own)
{
    chunk *k;

    if (s->dead != NULL) {
        free(own);
        return -1;
    }
    if (s->qbytes > FLUSH_AT && s->qbytes + n > s->c->o.max_buffer) {
        free(own);
        chat_log("closing slow stream %s in room %s (over %lu bytes queued)",
                 rc_conn_id(s->conn), s->room, s->c->o.max_buffer);
        stream_kill(s, CLOSE_SLOW);
        return -1;
    }
    if (s->qlen == s->qcap)
        grow(s);
    k = &s->q[(s->qhead + s->qlen) % s->qcap];
    k->p = p;
    k->n = n;
    k->frame = frame != NULL ? rc_frame_ref(frame) : NULL;
    k->own = own;
    s->qlen++;
    s->qbytes += n;
    if (s->qbytes >= FLUSH_AT && !s->writing) { /* enough waited */
        dirty_remove(s);
        stream_write(s);
    } else if (!s->dirty && !s->writing) {
        mark_dirty(s);
    }
    return 0;
}

/* Register s->ev for what the stream waits for: reads until the client's
 * FIN, and writes (with the write timeout) while the socket is full. */
static void arm(stream *s)
{
    short what = (s->eof ? 0 : EV_READ) | (s->writing ? EV_WRITE : 0);

    event_del(s->ev);
    if (what == 0)
        return;
    event_assign(s->ev, s->c->base, s->fd, what | EV_PERSIST, on_io, s);
    event_add(s->ev, s->writing ? &s->c->timeout : NULL);
}

/* Wait for the socket to take more (with the write timeout), or not. */
static void want_write(stream *s, int on)
{
    if (s->writing == on)
        return;
    s->writing = on;
    arm(s);
}

/* Drop the w bytes just written from the front of the queue. */
static void drop_written(stream *s, size_t w)
{
    s->qbytes -= w;
    while (w > 0) {
        chunk *k = &s->q[s->qhead];
        size_t rest = k->n - s->qoff;

        if (w < rest) {
            s->qoff += w;
            return;
        }
        w -= rest;
        release(k);
        s->qoff = 0;
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
}

/* Write what is queued, until done or the socket is full. */
static void stream_write(stream *s)
{
    while (s->qlen > 0) {
        struct iovec iov[IOV_BATCH];
        unsigned i, n = s->qlen < IOV_BATCH ? s->qlen : IOV_BATCH;
        ssize_t w;

        for (i = 0; i < n; i++) {
            chunk *k = &s->q[(s->qhead + i) % s->qcap];
            size_t off = i == 0 ? s->qoff : 0;

            iov[i].iov_base = (void *)(k->p + off);
            iov[i].iov_len = k->n - off;
        }
        w = writev(s->fd, iov, (int)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_write(s, 1);
                return;
            }
            stream_kill(s, CLOSE_CLIENT); /* EPIPE, ECONNRESET... */
            return;
        }
        drop_written(s, (size_t)w);
    }
    want_write(s, 0);
    if (s->ending) /* all written: now it ends */
        stream_kill(s, CLOSE_ENDED);
}

/* After the client's FIN: has a reset come back for the probe? */
static void on_probe(evutil_socket_t fd, short what, void *arg)
{
    stream *s = arg;
    int err = 0;
    socklen_t len = sizeof err;

    (void)fd;
    (void)what;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
        stream_kill(s, CLOSE_CLIENT);
}

/*
 * The client sent its FIN: it may have closed, or only half-closed after
 * its request (shutdown(SHUT_WR)), which SSE clients may do; the stream
 * goes on. Reading stops (EOF is always readable). A comment is written
 * at once: a closed peer answers it with a reset, which the probe sees
 * STREAM_PROBE_MS later (else a later write fails with EPIPE).
 */
static void on_eof(stream *s)
{
    struct timeval tv = chat_ms_tv(STREAM_PROBE_MS);

    s->eof = 1;
    arm(s);
    s->probe = evtimer_new(s->c->base, on_probe, s);
    if (s->probe == NULL) {
        stream_kill(s, CLOSE_CLIENT);
        return;
    }
    evtimer_add(s->probe, &tv);
    push(s, ping, sizeof ping - 1, NULL, NULL);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    stream *s = arg;
    char buf[4096];

    if (what & EV_TIMEOUT) { /* the socket took nothing for timeout_ms */
        chat_log("closing stalled stream %s in room %s", rc_conn_id(s->conn),
                 s->room);
        stream_kill(s, CLOSE_SLOW);
        return;
    }
    if (what & EV_READ) {
        ssize_t n = read(fd, buf, sizeof buf);

        if (n == 0) {
            on_eof(s);
            return;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            stream_kill(s, CLOSE_CLIENT);
            return;
        }
        if (n > 0 && (s->input += (size_t)n) > STREAM_INPUT_MAX) {
            stream_kill(s, CLOSE_CLIENT); /* nothing to say on a stream */
            return;
        }
    }
    if (what & EV_WRITE)
        stream_write(s);
}

void streams_flush(evutil_socket_t fd, short what, void *arg)
{
    chat *c = arg;
    stream *s;

    (void)fd;
    (void)what;
    while ((s = c->dirty) != NULL) {
        dirty_remove(s);
        stream_write(s);
    }
}

/* End a stream: it leaves its room at once; the connection is freed by
 * the reaper (this may run inside a sink or the stream's own callback). */
static void stream_kill(stream *s, int why)
{
    chat *c = s->c;

    if (s->dead != NULL)
        return;
    s->dead = chat_close_names[why];
    c->closed[why]++;
    if (why == CLOSE_SLOW)
        set_abortive(s->fd);
    dirty_remove(s);
    event_del(s->ev);
    if (s->probe != NULL)
        event_del(s->probe);
    while (s->qlen > 0) {
        release(&s->q[s->qhead]);
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
    s->qbytes = 0;
    rc_conn_remove(s->conn); /* its leaves go out, with the grace */
    s->conn = NULL;
    list_remove(&c->streams, s, LIST_LIVE);
    c->nstreams--;
    s->reap_next = c->reap;
    c->reap = s;
    event_active(c->reaper, EV_TIMEOUT, 1);
}

static void stream_free(stream *s)
{
    if (s->ev != NULL)
        event_free(s->ev);
    if (s->probe != NULL)
        event_free(s->probe);
    free(s->q);
    free(s->room);
    free(s->user);
    free(s);
}

void streams_reap(evutil_socket_t fd, short what, void *arg)
{
    chat *c = arg;
    stream *s;

    (void)fd;
    (void)what;
    while ((s = c->reap) != NULL) {
        c->reap = s->reap_next;
        event_del(s->ev);
        /* It frees the unanswered request and closes the socket. */
        evhttp_connection_free(s->evcon);
        stream_free(s);
    }
}

int stream_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                void *user)
{
    (void)conn;
    (void)msg;
    return push(user, rc_frame_data(frame), rc_frame_size(frame), frame, NULL);
}

/* A stream receives nothing before its hello; but a resuming stream's
 * replay (or rc:reset) is read on the pub link and may come before its
 * room's SUBSCRIBE is confirmed: then it is greeted at once, so that
 * nothing of the replay is lost (the library has it live after that). */
int stream_filter(rc_conn *conn, const rc_message *msg, const char *meta,
                  size_t meta_len, void *user)
{
    stream *s = rc_conn_user(conn);

    (void)msg;
    (void)meta;
    (void)meta_len;
    (void)user;
    if (s->hello)
        return 0;
    if (!s->resume)
        return 1;
    stream_hello(s);
    return 0;
}

/* data JSON of the hello: {"connection":ID,"node":NODE,"room":ROOM} */
static char *hello_data(stream *s, size_t *len)
{
    const char *id = rc_conn_id(s->conn), *node = rc_adapter_node_id(s->c->a);
    size_t a = chat_json_quote(id, strlen(id), NULL, 0),
           b = chat_json_quote(node, strlen(node), NULL, 0),
           r = chat_json_quote(s->room, strlen(s->room), NULL, 0);
    size_t n = a + b + r + 32, o = 0;
    char *d = chat_malloc(n);

    memcpy(d + o, "{\"connection\":", 14);
    o += 14;
    o += chat_json_quote(id, strlen(id), d + o, n - o);
    memcpy(d + o, ",\"node\":", 8);
    o += 8;
    o += chat_json_quote(node, strlen(node), d + o, n - o);
    memcpy(d + o, ",\"room\":", 8);
    o += 8;
    o += chat_json_quote(s->room, strlen(s->room), d + o, n - o);
    d[o++] = '}';
    *len = o;
    return d;
}

/* Queue event with data (JSON text) on s. Returns 0 or -1. */
static int push_event(stream *s, const char *event, const char *data,
                      size_t dlen)
{
    rc_message m = RC_MESSAGE_INIT;
    size_t len = 0;
    char *frame;

    m.event = event;
    m.data = data;
    m.data_len = dlen;
    rc_sse_format(&m, NULL, 0, &len);
    frame = chat_malloc(len);
    if (rc_sse_format(&m, frame, len, &len) < 0) {
        free(frame);
        return -1;
    }
    return push(s, frame, len, NULL, frame);
}

void stream_hello(stream *s)
{
    size_t dlen;
    char *data = hello_data(s, &dlen);

    s->hello = 1;
    push_event(s, "rc:hello", data, dlen);
    free(data);
}

void stream_gap(stream *s)
{
    size_t r = chat_json_quote(s->room, strlen(s->room), NULL, 0);
    char *data = chat_malloc(r + 10);

    memcpy(data, "{\"room\":", 8);
    chat_json_quote(s->room, strlen(s->room), data + 8, r);
    data[8 + r] = '}';
    push_event(s, "rc:gap", data, 9 + r);
    free(data);
}

void streams_ping(chat *c)
{
    stream *s, *next;

    for (s = c->streams; s != NULL; s = next) {
        next = s->next[LIST_LIVE]; /* s may be closed (too slow) */
        push(s, ping, sizeof ping - 1, NULL, NULL);
    }
}

void stream_end(stream *s)
{
    stream_kill(s, CLOSE_CLIENT);
}

/* The library took the stream out of its room (it is in no other): what
 * is queued (rc:closed) is written, then the stream ends; a socket that
 * takes nothing ends it as slow, as always. */
void stream_on_end(rc_conn *conn, const char *room, int reason, void *user)
{
    stream *s = rc_conn_user(conn);

    (void)room;
    (void)user;
    if (s == NULL || s->dead != NULL || s->ending)
        return;
    chat_log("stream %s left room %s: %s", rc_conn_id(conn), s->room,
             reason == RC_ECLOSED ? "the room was closed"
                                  : "its user holds no seat");
    s->ending = 1;
    dirty_remove(s);
    if (!s->writing)
        stream_write(s); /* ends it once all is written */
}

void streams_end_all(chat *c)
{
    while (c->streams != NULL) {
        stream *s = c->streams;

        dirty_remove(s);
        if (!s->writing)
            stream_write(s); /* one last try; it may close s itself */
        stream_kill(s, CLOSE_SHUTDOWN);
    }
}

/* Join s's room, resuming after last in a history room (the library
 * queues the replay, or rc:reset, after the hello). A stream whose room
 * is ready at once (without Redis, or subscribed already for another
 * stream) is greeted first: the library may give it rc:presence, or a
 * reset it can tell without Redis, during the join. */
static void stream_join(stream *s, const char *room, const char *last)
{
    chat *c = s->c;
    int rc;

    if (c->link == NULL || rc_room_is_ready(c->a, room))
        stream_hello(s);
    s->resume = c->history && last != NULL && last[0] != '\0';
    if (s->resume)
        rc = rc_conn_resume(s->conn, room, last);
    else
        rc = rc_room_join(s->conn, room);
    if (rc < 0) {
        chat_log("cannot join room %s: %s", room, rc_strerror(rc));
        stream_kill(s, CLOSE_ERROR);
    } else if (!s->hello && rc_room_is_ready(c->a, room)) {
        stream_hello(s);
    }
}

int stream_open(chat *c, struct evhttp_request *req, const char *room,
                const char *user, const char *last)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    stream *s = chat_malloc(sizeof *s);
    int rc, sndbuf = STREAM_SNDBUF;

    memset(s, 0, sizeof *s);
    s->c = c;
    s->evcon = evcon;
    s->fd = bufferevent_getfd(bev);
    s->room = chat_strdup(room);
    s->user = chat_strdup(user);
    s->ev = event_new(c->base, s->fd, EV_READ | EV_PERSIST, on_io, s);
    rc = s->ev != NULL ? rc_conn_add(c->a, NULL, stream_sink, s, &s->conn)
                       : RC_ENOMEM;
    if (rc == 0 && user[0] != '\0')
        rc = rc_conn_set_user(s->conn, user, NULL, 0);
    if (rc < 0) {
        rc_conn_remove(s->conn);
        stream_free(s);
        return rc;
    }
    /* From here on the socket is ours; evhttp keeps it only to free. */
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    event_add(s->ev, NULL);
    list_add(&c->streams, s, LIST_LIVE);
    c->nstreams++;
    c->opened++;
    push(s, head, sizeof head - 1, NULL, NULL);
    stream_join(s, room, last);
    return 0;
}
