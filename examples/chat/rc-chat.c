/*
 * rc-chat: an SSE chat server on libevent's evhttp, with rooms shared
 * across processes through roomcast. The HTTP contract, flags and metrics
 * are in README.md beside this file.
 *
 * Shape: one event_base runs everything. This file is the HTTP side
 * (routes, member lists in Redis, metrics, options, start and stop); the
 * event streams, which take their sockets over from evhttp once the request
 * is parsed, are stream.c. evhttp 2.1 is hardened as it needs to be for a
 * public server: header and body caps, request timeouts, our own stream cap
 * (503), and a listener of our own (a long queue; it pauses on EMFILE
 * instead of spinning).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <roomcast/libevent.h>
#include <roomcast/roomcast.h>

#include "chat.h"
#include "text.h"

extern const char chat_page[];
extern const size_t chat_page_len;

#define BODY_MAX (RC_DEFAULT_MAX_DATA + RC_ENVELOPE_SLACK)
#define HEADERS_MAX 8192
#define FD_RESERVE 64
#define ACCEPT_PAUSE_MS 250
#define LISTEN_BACKLOG 1024
#define DRAIN_MS 2000
#define PRESENCE_KEY "rc-chat:members:"

const char *const chat_close_names[CLOSE_N] = {"client", "slow", "shutdown"};
const int chat_status_codes[CHAT_N_CODES] = {200, 202, 400, 404,
                                             405, 413, 500, 503};

/* ---- small things ----------------------------------------------------- */

void chat_log(const char *fmt, ...)
{
    va_list ap;

    fputs("rc-chat: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *chat_malloc(size_t n)
{
    void *p = malloc(n);

    if (p == NULL) {
        chat_log("out of memory");
        abort();
    }
    return p;
}

char *chat_strdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(chat_malloc(n), s, n);
}

static long long now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static struct timeval ms_tv(unsigned long ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}

/* Append s as a JSON string literal. */
static void add_json_str(struct evbuffer *b, const char *s)
{
    size_t n = strlen(s), need = chat_json_quote(s, n, NULL, 0);
    struct evbuffer_iovec v;

    if (evbuffer_reserve_space(b, (ev_ssize_t)need, &v, 1) < 1)
        return;
    v.iov_len = chat_json_quote(s, n, v.iov_base, need);
    evbuffer_commit_space(b, &v, 1);
}

static void count_code(chat *c, int code)
{
    size_t i;

    for (i = 0; i < CHAT_N_CODES; i++)
        if (chat_status_codes[i] == code)
            c->requests[i]++;
}

static void reply(chat *c, struct evhttp_request *req, int code,
                  const char *type, struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    count_code(c, code);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[32]; /* the GET's length, and no body */

        snprintf(len, sizeof len, "%lu",
                 (unsigned long)(body != NULL ? evbuffer_get_length(body) : 0));
        evhttp_add_header(h, "Content-Length", len);
        body = NULL;
    }
    evhttp_send_reply(req, code, NULL, body);
}

static void reply_json(chat *c, struct evhttp_request *req, int code,
                       struct evbuffer *body)
{
    reply(c, req, code, "application/json", body);
}

static void reply_error(chat *c, struct evhttp_request *req, int code,
                        const char *fmt, ...)
{
    struct evbuffer *b = evbuffer_new();
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    evbuffer_add_printf(b, "{\"error\":");
    add_json_str(b, text);
    evbuffer_add(b, "}", 1);
    reply_json(c, req, code, b);
    evbuffer_free(b);
}

static void reply_method(chat *c, struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(c, req, 405, "method not allowed (allowed: %s)", allow);
}

/* ---- streams (the socket side is stream.c) ----------------------------- */

static void on_room(rc_adapter *a, const char *room, int event, void *user)
{
    rc_conn *one, **members;
    size_t n, i;

    (void)user;
    if (event != RC_ROOM_READY)
        return;
    n = rc_room_members(a, room, &one, 1);
    members = n > 1 ? chat_malloc(n * sizeof *members) : &one;
    if (n > 1)
        rc_room_members(a, room, members, n);
    for (i = 0; i < n; i++) {
        stream *s = rc_conn_user(members[i]);

        if (!s->hello)
            stream_hello(s);
    }
    if (members != &one)
        free(members);
}

/* ---- presence: who is in a room, across nodes ------------------------- */

/*
 * One Redis hash per room, field = connection id, value =
 * "<expires ms>\t<node>\t<user>". Each node writes its own streams at hello
 * and at every heartbeat, and deletes them when they end; readers skip
 * (and delete) expired fields, left by nodes that died.
 */
static char *presence_key(chat *c, const char *room, size_t *len)
{
    const char *prefix = c->o.prefix;
    size_t n = strlen(PRESENCE_KEY) + strlen(prefix) + strlen(room);
    char *k = chat_malloc(n + 1);

    snprintf(k, n + 1, "%s%s%s", PRESENCE_KEY, prefix, room);
    *len = n;
    return k;
}

void presence_set(stream *s)
{
    chat *c = s->c;
    redisAsyncContext *ac = rc_link_pub(c->link);
    char *key, val[64];
    size_t klen;
    long long ttl = 3 * (long long)c->o.heartbeat_ms;

    if (ac == NULL)
        return;
    key = presence_key(c, s->room, &klen);
    snprintf(val, sizeof val, "%lld\t", now_ms() + ttl);
    redisAsyncCommand(ac, NULL, NULL, "HSET %b %s %s%s\t%s", key, klen,
                      rc_conn_id(s->conn), val, rc_adapter_node_id(c->a),
                      s->user);
    redisAsyncCommand(ac, NULL, NULL, "PEXPIRE %b %lld", key, klen, ttl);
    free(key);
}

static void on_presence_deleted(redisAsyncContext *ac, void *r, void *priv);

void presence_del(stream *s)
{
    chat *c = s->c;
    redisAsyncContext *ac = rc_link_pub(c->link);
    char *key;
    size_t klen;

    if (ac == NULL)
        return;
    key = presence_key(c, s->room, &klen);
    if (redisAsyncCommand(ac, c->stopping ? on_presence_deleted : NULL, c,
                          "HDEL %b %s", key, klen,
                          rc_conn_id(s->conn)) == REDIS_OK &&
        c->stopping)
        c->pending++;
    free(key);
}

typedef struct members_query {
    chat *c;
    struct evhttp_request *req;
    char *room;
} members_query;

static void add_member(struct evbuffer *b, int *first, const char *conn,
                       size_t conn_len, const char *node, size_t node_len,
                       const char *user, size_t user_len)
{
    size_t need;
    struct evbuffer_iovec v;

    evbuffer_add_printf(b, "%s{\"connection\":", *first ? "" : ",");
    *first = 0;
    need = chat_json_quote(conn, conn_len, NULL, 0) +
           chat_json_quote(node, node_len, NULL, 0) +
           chat_json_quote(user, user_len, NULL, 0) + 32;
    if (evbuffer_reserve_space(b, (ev_ssize_t)need, &v, 1) < 1)
        return;
    {
        char *p = v.iov_base;
        size_t o = chat_json_quote(conn, conn_len, p, need);

        memcpy(p + o, ",\"node\":", 8);
        o += 8;
        o += chat_json_quote(node, node_len, p + o, need - o);
        memcpy(p + o, ",\"user\":", 8);
        o += 8;
        o += chat_json_quote(user, user_len, p + o, need - o);
        p[o++] = '}';
        v.iov_len = o;
    }
    evbuffer_commit_space(b, &v, 1);
}

/* Is conn listed among the first n field/value pairs of a HGETALL reply? */
static int listed(const redisReply *r, const char *conn)
{
    size_t i;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return 0;
    for (i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[i]->str, conn) == 0)
            return 1;
    return 0;
}

/* Answer GET /rooms/{room}: the Redis hash r (or NULL), plus this node's
 * streams missing from it. */
static void members_reply(chat *c, struct evhttp_request *req, const char *room,
                          const redisReply *r, redisAsyncContext *ac)
{
    struct evbuffer *b = evbuffer_new();
    long long now = now_ms();
    int first = 1;
    size_t i;
    stream *s;

    evbuffer_add_printf(b, "{\"room\":");
    add_json_str(b, room);
    evbuffer_add_printf(b, ",\"members\":[");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *f = r->element[i], *v = r->element[i + 1];
            char *node, *user, *end;
            long long until;

            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            until = strtoll(v->str, &end, 10);
            node = *end == '\t' ? end + 1 : NULL;
            user = node != NULL ? strchr(node, '\t') : NULL;
            if (user == NULL || until < now) { /* malformed or expired */
                if (ac != NULL) {
                    size_t klen;
                    char *key = presence_key(c, room, &klen);

                    redisAsyncCommand(ac, NULL, NULL, "HDEL %b %b", key, klen,
                                      f->str, (size_t)f->len);
                    free(key);
                }
                continue;
            }
            add_member(b, &first, f->str, (size_t)f->len, node,
                       (size_t)(user - node), user + 1, strlen(user + 1));
        }
    }
    for (s = c->streams; s != NULL; s = s->next) {
        const char *id;

        if (!s->hello || strcmp(s->room, room) != 0)
            continue;
        id = rc_conn_id(s->conn);
        if (listed(r, id))
            continue;
        add_member(b, &first, id, strlen(id), rc_adapter_node_id(c->a),
                   strlen(rc_adapter_node_id(c->a)), s->user, strlen(s->user));
    }
    evbuffer_add(b, "]}", 2);
    reply_json(c, req, 200, b);
    evbuffer_free(b);
}

static void on_members(redisAsyncContext *ac, void *r, void *priv)
{
    members_query *q = priv;

    members_reply(q->c, q->req, q->room, r, r != NULL ? ac : NULL);
    free(q->room);
    free(q);
}

/* ---- routes ----------------------------------------------------------- */

static void get_page(chat *c, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_reference(b, chat_page, chat_page_len, NULL, NULL);
    reply(c, req, 200, "text/html; charset=utf-8", b);
    evbuffer_free(b);
}

static const char *redis_state(chat *c)
{
    if (c->link == NULL)
        return "off";
    return rc_link_state(c->link) == RC_LINK_UP ? "up" : "down";
}

static void get_health(chat *c, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b, "{\"status\":\"ok\",\"redis\":\"%s\"}",
                        redis_state(c));
    reply_json(c, req, 200, b);
    evbuffer_free(b);
}

static void metric(struct evbuffer *b, const char *name, const char *type,
                   const char *help, unsigned long long v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help,
                        name, type, name, v);
}

static void get_metrics(chat *c, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    rc_counters k;
    size_t i;

    rc_adapter_counters(c->a, &k, sizeof k);
    metric(b, "rc_published_total", "counter",
           "Envelopes published (PUBLISH answered).", k.published);
    metric(b, "rc_publish_errors_total", "counter",
           "Publishes not sent, refused or lost.", k.publish_errors);
    metric(b, "rc_received_total", "counter", "Messages received from Redis.",
           k.received);
    metric(b, "rc_echoes_total", "counter",
           "Own envelopes received back and dropped.", k.echoes);
    evbuffer_add_printf(b, "# HELP rc_rejected_total Envelopes from Redis "
                           "dropped as invalid, by reason.\n"
                           "# TYPE rc_rejected_total counter\n");
    for (i = 1; i < RC_REJECT_SLOTS; i++)
        if (k.rejected_by[i] != 0)
            evbuffer_add_printf(b, "rc_rejected_total{reason=\"%s\"} %llu\n",
                                rc_err_name(-(int)i), k.rejected_by[i]);
    if (k.rejected == 0)
        evbuffer_add_printf(b, "rc_rejected_total{reason=\"EJSON\"} 0\n");
    metric(b, "rc_duplicates_total", "counter",
           "Repeated message ids dropped per connection.", k.duplicates);
    metric(b, "rc_delivered_total", "counter", "Frames accepted by streams.",
           k.delivered);
    metric(b, "rc_filtered_total", "counter",
           "Deliveries skipped (stream not yet greeted).", k.filtered);
    metric(b, "rc_sink_errors_total", "counter",
           "Deliveries refused (stream closing or too slow).", k.sink_errors);
    metric(b, "rc_link_up", "gauge", "1 while the Redis link is up.",
           c->link != NULL && rc_link_state(c->link) == RC_LINK_UP);
    metric(b, "rc_link_connects_total", "counter",
           "Times the Redis link came up.",
           c->link != NULL ? rc_link_connects(c->link) : 0);
    metric(b, "rc_link_failures_total", "counter",
           "Redis connections that failed or dropped.",
           c->link != NULL ? rc_link_failures(c->link) : 0);
    metric(b, "rc_chat_streams", "gauge", "Open event streams.", c->nstreams);
    metric(b, "rc_chat_rooms", "gauge", "Rooms with local streams.",
           rc_adapter_rooms(c->a, NULL, 0));
    metric(b, "rc_chat_streams_opened_total", "counter",
           "Event streams opened.", c->opened);
    evbuffer_add_printf(b, "# HELP rc_chat_streams_closed_total Event streams "
                           "ended, by reason.\n"
                           "# TYPE rc_chat_streams_closed_total counter\n");
    for (i = 0; i < CLOSE_N; i++)
        evbuffer_add_printf(
            b, "rc_chat_streams_closed_total{reason=\"%s\"} %llu\n",
            chat_close_names[i], c->closed[i]);
    metric(b, "rc_chat_streams_refused_total", "counter",
           "Event streams refused at --max-streams (503).", c->refused);
    evbuffer_add_printf(b, "# HELP rc_chat_requests_total HTTP requests "
                           "answered, by status.\n"
                           "# TYPE rc_chat_requests_total counter\n");
    for (i = 0; i < CHAT_N_CODES; i++) /* this answer included */
        evbuffer_add_printf(b, "rc_chat_requests_total{code=\"%d\"} %llu\n",
                            chat_status_codes[i],
                            c->requests[i] + (chat_status_codes[i] == 200));
    metric(b, "rc_chat_accept_errors_total", "counter",
           "accept() failures (the listener pauses on each).",
           c->accept_errors);
    reply(c, req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}

static void get_room(chat *c, struct evhttp_request *req, const char *room)
{
    redisAsyncContext *ac = rc_link_pub(c->link);
    members_query *q;
    char *key;
    size_t klen;

    if (ac == NULL) {
        members_reply(c, req, room, NULL, NULL);
        return;
    }
    q = chat_malloc(sizeof *q);
    q->c = c;
    q->req = req;
    q->room = chat_strdup(room);
    key = presence_key(c, room, &klen);
    if (redisAsyncCommand(ac, on_members, q, "HGETALL %b", key, klen) !=
        REDIS_OK) {
        members_reply(c, req, room, NULL, NULL);
        free(q->room);
        free(q);
    }
    free(key);
}

/* The value of name in a query string, percent-decoded into out (size
 * bytes). Returns its length, -1 if absent, -2 if malformed or too long. */
static long query_param(const char *query, const char *name, char *out,
                        size_t size)
{
    size_t nl = strlen(name);
    const char *p = query;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, '&');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

        if (n > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t vn = n - nl - 1;

            if (vn >= size) /* too long, encoded or not */
                return -2;
            long len = chat_pct_decode(v, vn, out, 1);

            return len < 0 ? -2 : len;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return -1;
}

static void open_stream(chat *c, struct evhttp_request *req, const char *room,
                        const char *query)
{
    const char *last = evhttp_find_header(evhttp_request_get_input_headers(req),
                                          "Last-Event-ID");
    char user[CHAT_USER_MAX * 3 + 1] = "";
    long ulen =
        query != NULL ? query_param(query, "user", user, sizeof user) : -1;
    int rc;

    if (ulen == -1)
        user[0] = '\0';
    else if (ulen < 0 || ulen > CHAT_USER_MAX ||
             !chat_name_ok(user, (size_t)ulen))
        return reply_error(c, req, 400,
                           "bad user name: at most %d bytes of UTF-8 "
                           "without control characters",
                           CHAT_USER_MAX);
    if (last != NULL &&
        (strlen(last) > CHAT_LAST_ID_MAX || !chat_name_ok(last, strlen(last))))
        return reply_error(c, req, 400,
                           "bad Last-Event-ID: at most %d bytes without "
                           "control characters",
                           CHAT_LAST_ID_MAX);
    if (c->nstreams >= c->o.max_streams) {
        c->refused++;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                          "5");
        return reply_error(c, req, 503, "too many streams (%lu)",
                           c->o.max_streams);
    }
    rc = stream_open(c, req, room, user);
    if (rc < 0)
        return reply_error(c, req, 500, "cannot open the stream: %s",
                           rc_strerror(rc));
    count_code(c, 200);
}

static void post_message(chat *c, struct evhttp_request *req, const char *room)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *body = n > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    rc_limits whole = {BODY_MAX, 0};
    rc_message m = RC_MESSAGE_INIT;
    chat_body f;
    char *event = NULL, *id = NULL, *except = NULL;
    struct evbuffer *b;
    int rc;

    m.data = body;
    m.data_len = n;
    rc = rc_message_check(&m, &whole);
    if (rc == RC_ETOOBIG)
        return reply_error(c, req, 413, "body over %lu bytes",
                           (unsigned long)BODY_MAX);
    if (rc == RC_ENODATA)
        return reply_error(c, req, 400, "empty body: expected a JSON object");
    if (rc < 0)
        return reply_error(
            c, req, 400, rc == RC_EJSON ? "body is not valid JSON" : "body: %s",
            rc_strerror(rc));
    if (chat_body_parse(body, n, &f) < 0)
        return reply_error(c, req, 400, "body is not a JSON object");
    if (f.data.p == NULL)
        return reply_error(c, req, 400, "\"data\" is required");
#define STRING_FIELD(field, var)                                               \
    if (f.field.p != NULL) {                                                   \
        long len_;                                                             \
        var = chat_malloc(f.field.n);                                          \
        len_ = chat_json_unquote(f.field.p, f.field.n, var);                   \
        if (len_ < 0) {                                                        \
            reply_error(c, req, 400, "\"" #field "\" must be a string");       \
            goto out;                                                          \
        }                                                                      \
        if (strlen(var) != (size_t)len_) {                                     \
            reply_error(c, req, 400, "NUL in \"" #field "\"");                 \
            goto out;                                                          \
        }                                                                      \
    }
    STRING_FIELD(event, event)
    STRING_FIELD(id, id)
    STRING_FIELD(except, except)
#undef STRING_FIELD
    m.event = event;
    m.id = id;
    m.data = f.data.p;
    m.data_len = f.data.n;
    rc = rc_broadcast_to_room(c->a, room, &m, except, 0);
    if (rc == RC_ETOOBIG) {
        reply_error(c, req, 413, "data over %lu bytes",
                    (unsigned long)RC_DEFAULT_MAX_DATA);
    } else if (rc == RC_ENOMEM) {
        reply_error(c, req, 500, "%s", rc_strerror(rc));
    } else if (rc < 0) {
        reply_error(c, req, 400, "bad message: %s", rc_strerror(rc));
    } else {
        b = evbuffer_new();
        evbuffer_add_printf(b, "{\"delivered\":%d}", rc);
        reply_json(c, req, 202, b);
        evbuffer_free(b);
    }
out:
    free(event);
    free(id);
    free(except);
}

/* Split "/rooms/<room>[/<what>]": the decoded, checked room into room,
 * what into *what ("" when absent). Returns 0, -1 (not such a path), or
 * -2 (a bad room name). */
static int room_path(const char *path, char *room, const char **what)
{
    const char *seg = path + strlen("/rooms/"), *slash;
    size_t n;
    long len;

    if (strncmp(path, "/rooms/", 7) != 0)
        return -1;
    slash = strchr(seg, '/');
    n = slash != NULL ? (size_t)(slash - seg) : strlen(seg);
    *what = slash != NULL ? slash + 1 : "";
    if (**what != '\0' && strcmp(*what, "events") != 0 &&
        strcmp(*what, "messages") != 0)
        return -1;
    if (n > CHAT_ROOM_MAX * 3)
        return -2;
    len = chat_pct_decode(seg, n, room, 0);
    if (len <= 0 || len > CHAT_ROOM_MAX || !chat_name_ok(room, (size_t)len))
        return -2;
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    chat *c = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    const char *uri = evhttp_request_get_uri(req), *query, *what;
    char room[CHAT_ROOM_MAX * 3 + 1], *path;
    size_t n;
    int rc;

    if (c->stopping)
        return reply_error(c, req, 503, "shutting down");
    /* The request target as sent (evhttp would read "//x" as a host). */
    if (uri == NULL || uri[0] != '/')
        return reply_error(c, req, 404, "not found");
    n = strcspn(uri, "?#");
    query = uri[n] == '?' ? uri + n + 1 : NULL;
    path = chat_malloc(n + 1);
    memcpy(path, uri, n);
    path[n] = '\0';
    if (strcmp(path, "/") == 0 || strcmp(path, "/health") == 0 ||
        strcmp(path, "/metrics") == 0) {
        if (!get)
            reply_method(c, req, "GET, HEAD");
        else if (path[1] == '\0')
            get_page(c, req);
        else if (path[1] == 'h')
            get_health(c, req);
        else
            get_metrics(c, req);
        goto out;
    }
    rc = room_path(path, room, &what);
    if (rc == -1)
        reply_error(c, req, 404, "not found");
    else if (strcmp(what, "messages") == 0 && cmd != EVHTTP_REQ_POST)
        reply_method(c, req, "POST");
    else if (strcmp(what, "events") == 0 && cmd != EVHTTP_REQ_GET)
        reply_method(c, req, "GET");
    else if (*what == '\0' && !get)
        reply_method(c, req, "GET, HEAD");
    else if (rc == -2)
        reply_error(c, req, 400,
                    "bad room name: 1 to %d bytes of UTF-8 without control "
                    "characters, percent-encoded",
                    CHAT_ROOM_MAX);
    else if (*what == '\0')
        get_room(c, req, room);
    else if (what[0] == 'e')
        open_stream(c, req, room, query);
    else
        post_message(c, req, room);
out:
    free(path);
}

/* ---- timers, listener, signals ---------------------------------------- */

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    streams_ping(arg);
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

/* accept() failed (EMFILE...): pause the listener instead of spinning. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    chat *c = listener_chat;
    struct timeval tv = ms_tv(ACCEPT_PAUSE_MS);
    int err = EVUTIL_SOCKET_ERROR();

    (void)arg;
    if (c->accept_errors++ % 1000 == 0)
        chat_log("accept: %s (%llu so far); pausing %d ms",
                 evutil_socket_error_to_string(err), c->accept_errors,
                 ACCEPT_PAUSE_MS);
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

static void finish(chat *c)
{
    event_base_loopbreak(c->base);
}

static void on_presence_deleted(redisAsyncContext *ac, void *r, void *priv)
{
    chat *c = priv;

    (void)ac;
    (void)r;
    if (c->pending > 0 && --c->pending == 0)
        finish(c);
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg);
}

/* SIGINT/SIGTERM: stop accepting, end every stream (what is queued is
 * tried once, then the connection is closed), take the streams out of the
 * member lists, and stop once Redis has answered that, or after DRAIN_MS. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    chat *c = arg;
    struct timeval tv = ms_tv(DRAIN_MS);

    (void)what;
    if (c->stopping)
        return;
    chat_log("%s: stopping (%lu streams)", sig == SIGINT ? "SIGINT" : "SIGTERM",
             c->nstreams);
    c->stopping = 1;
    evhttp_del_accept_socket(c->http, c->bound);
    c->bound = NULL;
    evtimer_del(c->resume);
    evtimer_add(c->drain, &tv);
    c->pending = 1; /* held while the HDELs go out */
    streams_end_all(c);
    on_presence_deleted(NULL, NULL, c);
}

/* ---- options and main ------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: rc-chat [options]\n"
        "  --port N          TCP port (PORT; default 8080; 0: any free)\n"
        "  --bind ADDR       address to listen on (BIND; default 127.0.0.1)\n"
        "  --redis URL       redis://[[user]:password@]host[:port][/db] or\n"
        "                    unix:///path[?db=N] (REDIS_URL); none: local "
        "rooms\n"
        "  --node-id ID      this node's id (NODE_ID; default: random UUID)\n"
        "  --prefix P        channel prefix (default sse:room:)\n"
        "  --max-streams N   concurrent event streams (default: open-file\n"
        "                    limit - %d); more get 503\n"
        "  --max-buffer N    bytes buffered per stream before it is closed\n"
        "                    (default 1048576)\n"
        "  --heartbeat-ms N  ': ping' interval (default 15000)\n"
        "  --timeout-ms N    request read / stalled write timeout (default "
        "30000)\n"
        "  --help            this text\n",
        FD_RESERVE);
}

static int number(const char *flag, const char *s, unsigned long min,
                  unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < min ||
        v > max) {
        fprintf(stderr,
                "rc-chat: %s: expected a number from %lu to %lu, got '%s'\n",
                flag, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    const char *env;
    unsigned long port = 8080;
    int i;

    o->bind = (env = getenv("BIND")) != NULL && *env ? env : "127.0.0.1";
    o->redis = (env = getenv("REDIS_URL")) != NULL && *env ? env : NULL;
    o->node_id = (env = getenv("NODE_ID")) != NULL && *env ? env : NULL;
    o->prefix = RC_DEFAULT_PREFIX;
    o->max_buffer = 1 << 20;
    o->heartbeat_ms = 15000;
    o->timeout_ms = 30000;
    if ((env = getenv("PORT")) != NULL && *env &&
        number("PORT", env, 0, 65535, &port) < 0)
        return 2;
    for (i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (v == NULL) {
            fprintf(stderr, "rc-chat: unknown option or missing value: %s\n",
                    f);
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(f, "--port") == 0) {
            if (number(f, v, 0, 65535, &port) < 0)
                return 2;
        } else if (strcmp(f, "--bind") == 0) {
            o->bind = v;
        } else if (strcmp(f, "--redis") == 0) {
            o->redis = *v ? v : NULL;
        } else if (strcmp(f, "--node-id") == 0) {
            o->node_id = v;
        } else if (strcmp(f, "--prefix") == 0) {
            o->prefix = v;
        } else if (strcmp(f, "--max-streams") == 0) {
            if (number(f, v, 1, 10000000, &o->max_streams) < 0)
                return 2;
        } else if (strcmp(f, "--max-buffer") == 0) {
            if (number(f, v, 4096, 1UL << 30, &o->max_buffer) < 0)
                return 2;
        } else if (strcmp(f, "--heartbeat-ms") == 0) {
            if (number(f, v, 10, 3600000, &o->heartbeat_ms) < 0)
                return 2;
        } else if (strcmp(f, "--timeout-ms") == 0) {
            if (number(f, v, 100, 3600000, &o->timeout_ms) < 0)
                return 2;
        } else {
            fprintf(stderr, "rc-chat: unknown option: %s\n", f);
            usage(stderr);
            return 2;
        }
    }
    o->port = (unsigned)port;
    if (o->node_id != NULL && !chat_name_ok(o->node_id, strlen(o->node_id))) {
        fprintf(stderr,
                "rc-chat: --node-id: control characters or invalid UTF-8\n");
        return 2;
    }
    if (!chat_name_ok(o->prefix, strlen(o->prefix))) {
        fprintf(stderr,
                "rc-chat: --prefix: control characters or invalid UTF-8\n");
        return 2;
    }
    return 0;
}

/* Raise the soft open-file limit to the hard one; derive the stream cap. */
static void fd_limits(options *o)
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
    if (o->max_streams == 0)
        o->max_streams =
            nofile > 2 * FD_RESERVE ? nofile - FD_RESERVE : nofile / 2 + 1;
    if (o->max_streams + 16 > nofile)
        chat_log("warning: --max-streams %lu is near the open-file limit %lu",
                 o->max_streams, nofile);
}

static int setup(chat *c)
{
    struct evconnlistener *l;
    struct sockaddr_storage ss;
    int ssl = (int)sizeof ss;
    char spec[300];
    rc_adapter_options ao;
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
    if (c->o.redis != NULL) {
        rc_link_options lo;

        memset(&lo, 0, sizeof lo);
        lo.url = c->o.redis;
        lo.state_cb = on_link_state;
        lo.user = c;
        rc = rc_link_open(c->a, c->base, &lo, &c->link);
        if (rc < 0) {
            chat_log("--redis %s: %s", c->o.redis, rc_strerror(rc));
            return -1;
        }
    }

    c->http = evhttp_new(c->base);
    c->timeout = ms_tv(c->o.timeout_ms);
    evhttp_set_timeout_tv(c->http, &c->timeout);
    evhttp_set_max_headers_size(c->http, HEADERS_MAX);
    evhttp_set_max_body_size(c->http, (ev_ssize_t)BODY_MAX);
    evhttp_set_allowed_methods(
        c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                     EVHTTP_REQ_PATCH);
    evhttp_set_gencb(c->http, on_request, c);
    /* Our own listener: a long listen queue (evhttp's is 128), and an
     * error callback. */
    snprintf(spec, sizeof spec, strchr(c->o.bind, ':') ? "[%s]" : "%s",
             c->o.bind);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &ssl) < 0) {
        chat_log("--bind %s: not an IPv4 or IPv6 address", c->o.bind);
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->o.port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->o.port);
    l = evconnlistener_new_bind(c->base, NULL, NULL,
                                LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
                                    LEV_OPT_CLOSE_ON_EXEC,
                                LISTEN_BACKLOG, (struct sockaddr *)&ss, ssl);
    if (l == NULL) {
        chat_log("cannot listen on %s port %u: %s", c->o.bind, c->o.port,
                 strerror(errno));
        return -1;
    }
    c->bound = evhttp_bind_listener(c->http, l);
    listener_chat = c;
    evconnlistener_set_error_cb(l, on_accept_error);
    if (c->o.port == 0) { /* say which port we got */
        socklen_t sl = sizeof ss;

        if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss,
                        &sl) == 0)
            c->o.port = ntohs(ss.ss_family == AF_INET6
                                  ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                  : ((struct sockaddr_in *)&ss)->sin_port);
    }
    c->heartbeat = event_new(c->base, -1, EV_PERSIST, on_heartbeat, c);
    c->reaper = event_new(c->base, -1, 0, streams_reap, c);
    c->flush = event_new(c->base, -1, 0, streams_flush, c);
    /* Below everything else: streams are written once no more input is
     * ready, so that the frames of every message read in a burst go out
     * in one writev per stream (stream.c bounds how much waits). */
    event_priority_set(c->flush, CHAT_PRIO_LOW);
    event_priority_set(c->reaper, CHAT_PRIO_LOW);
    c->resume = evtimer_new(c->base, on_resume, c);
    c->drain = evtimer_new(c->base, on_drain_deadline, c);
    c->sig[0] = evsignal_new(c->base, SIGINT, on_signal, c);
    c->sig[1] = evsignal_new(c->base, SIGTERM, on_signal, c);
    {
        struct timeval hb = ms_tv(c->o.heartbeat_ms);

        event_add(c->heartbeat, &hb);
    }
    event_add(c->sig[0], NULL);
    event_add(c->sig[1], NULL);
    chat_log("node %s listening on http://%s%s%s:%u/ (redis: %s)",
             rc_adapter_node_id(c->a), strchr(c->o.bind, ':') ? "[" : "",
             c->o.bind, strchr(c->o.bind, ':') ? "]" : "", c->o.port,
             c->o.redis != NULL ? c->o.redis : "off");
    return 0;
}

static void teardown(chat *c)
{
    size_t i;

    /* Every stream has ended (on_signal): free their connections before
     * evhttp_free would. */
    streams_reap(-1, 0, c);
    rc_link_close(c->link); /* answers pending member queries */
    if (c->http != NULL)
        evhttp_free(c->http);
    rc_adapter_free(c->a);
    if (c->heartbeat != NULL)
        event_free(c->heartbeat);
    if (c->reaper != NULL)
        event_free(c->reaper);
    if (c->flush != NULL)
        event_free(c->flush);
    if (c->resume != NULL)
        event_free(c->resume);
    if (c->drain != NULL)
        event_free(c->drain);
    for (i = 0; i < 2; i++)
        if (c->sig[i] != NULL)
            event_free(c->sig[i]);
    event_base_free(c->base);
}

int main(int argc, char **argv)
{
    chat c;
    int rc;

    memset(&c, 0, sizeof c);
    rc = parse_options(argc, argv, &c.o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    fd_limits(&c.o);
    c.base = event_base_new();
    /* Three priorities: events default to the middle one. */
    if (c.base == NULL || event_base_priority_init(c.base, 3) < 0) {
        chat_log("cannot create the event loop");
        return 1;
    }
    if (setup(&c) < 0) {
        teardown(&c);
        return 1;
    }
    event_base_dispatch(c.base);
    teardown(&c);
    chat_log("stopped");
    return 0;
}
