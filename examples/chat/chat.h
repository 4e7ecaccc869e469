/*
 * rc-chat's private header: the server (chat), its event streams, and what
 * its files share. One idea per file:
 *
 *   main.c      main: options, the event loop, setup, run, teardown
 *   options.c   flags and environment (getopt_long), --help
 *   server.c    setup and teardown: adapter, Redis link, evhttp, listener,
 *               timers, signals; the loop's own callbacks
 *   shutdown.c  SIGINT/SIGTERM: end the streams, drain, stop the loop
 *   http.c      HTTP helpers: replies, JSON errors, status counts, paths
 *   routes.c    the request handlers, one per route
 *   conns.c     connections that are not streams: deadline, cap
 *   presence.c  member lists across nodes (a Redis hash per room)
 *   session.c   sessions by code (seed 000): create, join, message, leave,
 *               close; members-only session streams
 *   history.c   history and resume: the options, GET /rooms/{room}/messages
 *   metrics.c   GET /metrics, from one table
 *   stream.c    event streams on their own sockets
 *   text.c      pure text helpers (text.h)
 *   util.c      logging, allocation, time
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
    char *redis_copy; /* redis, when it holds a password (freed by main) */
    const char *node_id;
    const char *prefix;
    unsigned long max_streams; /* 0: from the open-file limit */
    unsigned long nofile;      /* the open-file limit (server_fd_limits) */
    unsigned long max_buffer;
    unsigned long heartbeat_ms;
    unsigned long timeout_ms;
    unsigned long lease_ms;
    unsigned long grace_ms;
    unsigned long announce_max;
    unsigned long post_rate, post_burst; /* burst 0: 2 x rate */
    unsigned long session_cap;           /* users per session */
    unsigned long tombstone_s;   /* a closed session's code stays taken */
    unsigned long session_rate;  /* POST /session per client per hour */
    unsigned long verify_ms;     /* how often closes missed are looked for */
    unsigned long history;       /* messages kept per room; 0: off */
    unsigned long history_ttl_s; /* a room's history after its last post */
    unsigned long replay_max;    /* a resume further behind: rc:reset */
    int history_strict;          /* Redis down: refuse posts instead of no id */
} options;

/* Largest POST body, and the descriptors kept free beside the streams. */
#define CHAT_BODY_MAX (RC_DEFAULT_MAX_DATA + RC_ENVELOPE_SLACK)
#define CHAT_FD_RESERVE 64
/* Redis servers /health and /metrics list (a cluster's masters). */
#define CHAT_MAX_SHARDS 64
/* HTTP connections that are not streams (reading a request, or being
 * answered) may use the descriptors the streams leave, less CHAT_FD_MISC
 * (the listener, Redis, the loop, stdio), and at least CHAT_CONN_MIN:
 * past that the oldest is closed (conns.c). */
#define CHAT_FD_MISC 24
#define CHAT_CONN_MIN (CHAT_FD_RESERVE - CHAT_FD_MISC)
/* Bytes of requests being read, all connections together (conns.c). */
#define CHAT_REQ_BYTES_MAX ((size_t)64 << 20)

/* Event priorities (event_base_priority_init(base, 3)): events default to
 * 1; writing the streams and freeing ended ones wait below them. */
#define CHAT_PRIO_LOW 2

/* Why a stream ended: the reason labels of the closes metric. The client
 * went away (or sent too much); it was too slow (output cap, stalled
 * write); shutdown; the server failed it (its room join failed); or the
 * library took it out of its room (the session was closed, or its user
 * left it or lost the seat). */
enum {
    CLOSE_CLIENT,
    CLOSE_SLOW,
    CLOSE_SHUTDOWN,
    CLOSE_ERROR,
    CLOSE_ENDED,
    CLOSE_N
};
extern const char *const chat_close_names[CLOSE_N];

#define CHAT_N_CODES 14
extern const int chat_status_codes[CHAT_N_CODES];

typedef struct chat chat;
typedef struct stream stream;
typedef struct pending pending; /* a connection that is not a stream */

/* The lists of streams: every live one (chat.streams, newest first), and
 * those with output to write at the end of this loop turn (chat.dirty). */
enum { LIST_LIVE, LIST_DIRTY, LIST_N };

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
    struct event *probe;             /* after the client's FIN, or NULL */
    int eof;                         /* the client sent its FIN */
    rc_conn *conn;                   /* NULL once removed */
    char *room;
    char *user;
    int hello;        /* rc:hello queued */
    int resume;       /* joined with a last event id (history on) */
    int lost;         /* its room's subscription was lost since its hello */
    int writing;      /* waiting for the socket to take more */
    int ending;       /* ends once what is queued is written */
    const char *dead; /* ended, and why; on the reap list */
    size_t input;     /* bytes the client sent on the stream */
    chunk *q;         /* output queue, a ring of qcap */
    unsigned qhead, qlen, qcap;
    size_t qoff;   /* bytes of the first chunk already written */
    size_t qbytes; /* bytes queued, not yet written */
    stream *prev[LIST_N], *next[LIST_N]; /* its place on each list */
    int dirty;
    stream *reap_next;
};

struct chat {
    options o;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct event *heartbeat, *reaper, *flush, *resume, *drain, *adopt, *tick;
    struct event *sig[2];
    rc_adapter *a;
    rc_link *link;
    stream *streams; /* live streams, newest first */
    stream *dirty;   /* streams to write at the end of this loop turn */
    stream *reap;    /* streams to free */
    unsigned long nstreams;
    unsigned long pending;       /* shutdown: HDEL replies still to come */
    pending *conns, *conns_last; /* connections not streams, oldest first */
    unsigned long nconns;
    size_t req_bytes; /* read of the requests being read, in all */
    int stopping;
    int history; /* every room keeps history (--history, with Redis) */
    struct timeval timeout;
    /* counters for /metrics */
    unsigned long long opened, refused, accept_errors;
    unsigned long long req_timeouts, req_evicted;
    unsigned long long closed[CLOSE_N];
    unsigned long long requests[CHAT_N_CODES];
};

/* util.c */
void chat_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void *chat_malloc(size_t n); /* aborts when out of memory */
char *chat_strdup(const char *s);
long long chat_now_ms(void); /* wall clock */
struct timeval chat_ms_tv(unsigned long ms);

/* options.c */

/* Fill o from the environment and argv. Returns 0, 1 (--help was printed:
 * exit 0) or 2 (an error was printed: exit 2). */
int options_parse(int argc, char **argv, options *o);

/* server.c */

/* Raise the soft open-file limit to the hard one; derive the stream cap. */
void server_fd_limits(options *o);
/* Make everything on c->base. Returns 0, or -1 after logging why; then
 * server_teardown frees what was made. */
int server_setup(chat *c);
/* Free everything (the streams have ended). c->base is freed too. */
void server_teardown(chat *c);

/* conns.c */

/* Track every connection evhttp accepts (call after evhttp_new). */
void conns_setup(chat *c);
/* The adopt event's callback (at the highest priority). */
void conns_adopt(evutil_socket_t fd, short what, void *arg);
/* More connections than the cap: the adopt event will close some. */
int conns_over_cap(const chat *c);
/* req was read whole: its deadline ends. */
void conns_request(chat *c, struct evhttp_request *req);
/* req's connection became a stream: no longer tracked. */
void conns_detach(chat *c, struct evhttp_request *req);

/* shutdown.c */

/* SIGINT/SIGTERM and the drain deadline. */
void shutdown_on_signal(evutil_socket_t sig, short what, void *arg);
void shutdown_on_deadline(evutil_socket_t fd, short what, void *arg);
/* hiredis callback of the PING that follows the streams' leaves while
 * stopping. */
void shutdown_leaves_done(struct redisAsyncContext *ac, void *r, void *priv);

/* http.c */

/* Append s as a JSON string literal. */
void http_add_json_str(struct evbuffer *b, const char *s);
/* Count an answer with this status in the requests metric. */
void http_count(chat *c, int code);
/* Answer with body (not sent to HEAD, whose Content-Length is the GET's). */
void http_reply(chat *c, struct evhttp_request *req, int code, const char *type,
                struct evbuffer *body);
void http_reply_json(chat *c, struct evhttp_request *req, int code,
                     struct evbuffer *body);
/* {"error":TEXT} with the status code; TEXT formatted as printf does. */
void http_error(chat *c, struct evhttp_request *req, int code, const char *fmt,
                ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Close the connection once the answer is sent (refusals: 503, 413). */
void http_close(struct evhttp_request *req);
/* The Retry-After header: ms rounded up to whole seconds, at least 1;
 * the seconds are written to secs (24 bytes) too. */
void http_retry_after(struct evhttp_request *req, unsigned long long ms,
                      char *secs);
/* The cluster-wide rate bucket of req's client: prefix and the key of its
 * address (rc_rate_addr_key). Returns 0, or -1 (no address known). */
int http_client_key(struct evhttp_request *req, const char *prefix, char *key,
                    size_t size);
/* Why req's framing is ambiguous and must be refused (RFC 9112 3.2, 5.1,
 * 6.3): a blank in a header name ("Transfer-Encoding : chunked"), two
 * Content-Lengths, Transfer-Encoding with Content-Length, no Host (or two)
 * in HTTP/1.1. NULL if none of these. */
const char *http_framing_error(struct evhttp_request *req);
/* 405 with an Allow header. */
void http_method(chat *c, struct evhttp_request *req, const char *allow);
/* The value of name in a query string, percent-decoded into out (size
 * bytes). Returns its length, -1 if absent, -2 if malformed or too long. */
long http_query_param(const char *query, const char *name, char *out,
                      size_t size);
/* Split "/rooms/<room>[/<what>]": the decoded, checked room into room (room
 * for CHAT_ROOM_MAX * 3 + 1 bytes), what into *what ("" when absent).
 * Returns 0, -1 (not such a path), or -2 (a bad room name). */
int http_room_path(const char *path, char *room, const char **what);

/* routes.c */

/* evhttp's callback for every request. */
void routes_request(struct evhttp_request *req, void *arg);
/* Open the event stream of room for user (checked) on req, or answer
 * why not (503 at --max-streams or while stopping). The stream resumes
 * after the request's Last-Event-ID, else its ?last_event_id= (checked
 * by the route). */
void routes_stream(chat *c, struct evhttp_request *req, const char *room,
                   const char *user);
/* The last event id a stream request resumes after, into out (size
 * bytes): the Last-Event-ID header, else ?last_event_id=. Returns its
 * length (0: none), or -1 when it is too long or holds control
 * characters. */
long routes_last_id(struct evhttp_request *req, char *out, size_t size);

/* session.c */

/* Is room a session's ("session:" and a code)? */
int session_room(const char *room);
/* The session routes (/session, /session/join, /session/message,
 * /session/leave, /session/close). Returns 1 if path is one (answered, or
 * to be answered), else 0. */
int session_route(chat *c, struct evhttp_request *req, const char *path);
/* GET /rooms/session:C/events?user=U: the stream opens for a member only
 * (asked of Redis first); else 403, 404, 410 or 503. */
void session_stream(chat *c, struct evhttp_request *req, const char *room,
                    const char *user);

/* history.c */

/* Turn history on for every room (--history N with Redis); else log that
 * it is off. Returns 0, or -1 after logging why. */
int history_setup(chat *c);
/* GET /rooms/{room}/messages?since=E-S&limit=N. */
void history_reply(chat *c, struct evhttp_request *req, const char *room,
                   const char *query);

/* metrics.c */

/* Answer GET /metrics. */
void metrics_reply(chat *c, struct evhttp_request *req);

/* presence.c */

/* Answer GET /rooms/{room}: its members (connections) and users on every
 * node; GET /users (user NULL) and GET /users/{user}. */
void presence_reply(chat *c, struct evhttp_request *req, const char *room);
void presence_users(chat *c, struct evhttp_request *req, const char *user);
/* POST /rooms/{room}/leave: conn_id's stream leaves at once and ends. */
void presence_leave(chat *c, struct evhttp_request *req, const char *room,
                    const char *conn_id);

/* stream.c */

/* Take the request's connection over as an event stream of room for user:
 * write the response head ourselves, register the rc_conn, join the room
 * (rc:hello at once if it is ready), resuming after last (the client's
 * last event id; NULL or "": none) in a history room. Returns 0, or an rc
 * error (nothing was taken over: answer the request). */
int stream_open(chat *c, struct evhttp_request *req, const char *room,
                const char *user, const char *last);
/* End s as if its client had gone. */
void stream_end(stream *s);
/* The adapter's end callback: the library took conn out of its room (a
 * closed session, an evicted user): its stream ends once what is queued
 * (rc:closed) is written. */
void stream_on_end(rc_conn *conn, const char *room, int reason, void *user);
/* Queue rc:hello for s (once its room is ready). */
void stream_hello(stream *s);
/* Queue rc:gap for s: its room's subscription was lost and is back, so it
 * may have missed messages. */
void stream_gap(stream *s);
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
