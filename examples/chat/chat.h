/*
 * rc-chat's shared state: the server (chat) and its event streams. The
 * HTTP side is rc-chat.c; the streams' socket I/O is stream.c.
 */
#ifndef RC_CHAT_CHAT_H
#define RC_CHAT_CHAT_H

#include <stddef.h>
#include <sys/time.h>

#include <event2/event.h>
#include <event2/http.h>

#include <roomcast/libevent.h>
#include <roomcast/roomcast.h>

typedef struct options {
    const char *bind;
    unsigned port;
    const char *redis;
    const char *node_id;
    const char *prefix;
    unsigned long max_streams; /* 0: from the open-file limit */
    unsigned long max_buffer;
    unsigned long heartbeat_ms;
    unsigned long timeout_ms;
} options;

/* Event priorities (event_base_priority_init(base, 3)): events default to
 * 1; writing the streams and freeing ended ones wait below them. */
#define CHAT_PRIO_LOW 2

enum { CLOSE_CLIENT, CLOSE_SLOW, CLOSE_SHUTDOWN, CLOSE_N };
extern const char *const chat_close_names[CLOSE_N];

#define CHAT_N_CODES 8
extern const int chat_status_codes[CHAT_N_CODES];

typedef struct chat chat;
typedef struct stream stream;

/* One queued piece of a stream's output. */
typedef struct chunk {
    const char *p;
    size_t n;
    rc_frame *frame; /* a reference held until written, or NULL */
    char *own;       /* our own copy to free once written, or NULL */
} chunk;

struct stream {
    chat *c;
    int fd;
    struct evhttp_connection *evcon; /* parsed the request; freed at reap */
    struct event *ev;                /* our reads (and writes when blocked) */
    rc_conn *conn;                   /* NULL once removed */
    char *room;
    char *user;
    int hello;        /* rc:hello queued */
    int writing;      /* waiting for the socket to take more */
    const char *dead; /* ended, and why; on the reap list */
    size_t input;     /* bytes the client sent on the stream */
    chunk *q;         /* output queue, a ring of qcap */
    unsigned qhead, qlen, qcap;
    size_t qoff;           /* bytes of the first chunk already written */
    size_t qbytes;         /* bytes queued, not yet written */
    stream *prev, *next;   /* live streams */
    stream *dprev, *dnext; /* streams with output to write this turn */
    int dirty;
    stream *reap_next;
};

struct chat {
    options o;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct event *heartbeat, *reaper, *flush, *resume, *drain, *sig[2];
    rc_adapter *a;
    rc_link *link;
    stream *streams; /* live streams, newest first */
    stream *dirty;   /* streams to write at the end of this loop turn */
    stream *reap;    /* streams to free */
    unsigned long nstreams;
    unsigned long pending; /* shutdown: HDEL replies still to come */
    int stopping;
    struct timeval timeout;
    /* counters for /metrics */
    unsigned long long opened, refused, accept_errors;
    unsigned long long closed[CLOSE_N];
    unsigned long long requests[CHAT_N_CODES];
};

/* rc-chat.c */
void chat_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void *chat_malloc(size_t n); /* aborts when out of memory */
char *chat_strdup(const char *s);
void presence_set(stream *s);
void presence_del(stream *s);

/* stream.c */

/* Take the request's connection over as an event stream of room for user:
 * write the response head ourselves, register the rc_conn, join the room
 * (rc:hello at once if it is ready). Returns 0, or an rc error (nothing
 * was taken over: answer the request). */
int stream_open(chat *c, struct evhttp_request *req, const char *room,
                const char *user);
/* Queue rc:hello for s (once its room is ready). */
void stream_hello(stream *s);
/* Queue a heartbeat comment on every stream. */
void streams_ping(chat *c);
/* End every stream (shutdown): what is queued is tried once, then closed. */
void streams_end_all(chat *c);
/* The adapter's sink and filter for streams. */
int stream_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                void *user);
int stream_filter(rc_conn *conn, const rc_message *msg, const char *meta,
                  size_t meta_len, void *user);
/* Event callbacks: write every stream queued this turn; free ended ones. */
void streams_flush(evutil_socket_t fd, short what, void *arg);
void streams_reap(evutil_socket_t fd, short what, void *arg);

#endif
