/*
 * rc-chat's routes: which handler answers a request, and the handlers
 * (the page, /health, /ready, event streams, posted messages). Member
 * lists are presence.c, sessions session.c, /metrics is metrics.c; the
 * helpers are http.c.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "chat.h"
#include "text.h"

extern const char chat_page[];
extern const size_t chat_page_len;

static void get_page(chat *c, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_reference(b, chat_page, chat_page_len, NULL, NULL);
    http_reply(c, req, 200, "text/html; charset=utf-8", b);
    evbuffer_free(b);
}

static const char *redis_state(chat *c)
{
    if (c->link == NULL)
        return "off";
    return rc_link_state(c->link) == RC_LINK_UP ? "up" : "down";
}

/* ,"shards":[{"addr":A,"up":B,"slots":N},...]: a cluster's masters (one
 * server is the contract's "redis" alone). */
static void add_shards(chat *c, struct evbuffer *b)
{
    rc_link_shard sh[CHAT_MAX_SHARDS];
    size_t n = rc_link_shards(c->link, sh, CHAT_MAX_SHARDS), i;
    char *p;

    if (n < 2)
        return;
    evbuffer_add_printf(b, ",\"shards\":[");
    for (i = 0; i < n && i < CHAT_MAX_SHARDS; i++) {
        for (p = sh[i].addr; *p != '\0'; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
                *p = '_';
        evbuffer_add_printf(b, "%s{\"addr\":\"%s\",\"up\":%s,\"slots\":%d}",
                            i ? "," : "", sh[i].addr,
                            sh[i].up ? "true" : "false", sh[i].slots);
    }
    evbuffer_add_printf(b, "]");
}

static void get_health(chat *c, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b, "{\"status\":\"ok\",\"redis\":\"%s\"",
                        redis_state(c));
    if (c->link != NULL)
        add_shards(c, b);
    evbuffer_add_printf(b, "}");
    http_reply_json(c, req, 200, b);
    evbuffer_free(b);
}

/* Readiness: the node can serve the cluster (its Redis link is up and
 * its node id is its own, or it runs without Redis). /health stays a
 * liveness check. */
static void get_ready(chat *c, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    const char *why = NULL;

    if (c->link != NULL && rc_link_state(c->link) != RC_LINK_UP)
        why = "redis down";
    else if (rc_adapter_node_state(c->a) == RC_NODE_REFUSED)
        why = "node id in use";
    if (why == NULL)
        evbuffer_add_printf(b, "{\"status\":\"ready\"}");
    else
        evbuffer_add_printf(b,
                            "{\"status\":\"not ready\",\"reason\":"
                            "\"%s\"}",
                            why);
    http_reply_json(c, req, why == NULL ? 200 : 503, b);
    evbuffer_free(b);
}

long routes_last_id(struct evhttp_request *req, char *out, size_t size)
{
    const char *uri = evhttp_request_get_uri(req), *q;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "Last-Event-ID");
    long n;

    if (h != NULL) { /* the header wins, even empty */
        n = (long)strlen(h);
        if ((size_t)n >= size || n > CHAT_LAST_ID_MAX ||
            !chat_name_ok(h, (size_t)n))
            return -1;
        memcpy(out, h, (size_t)n + 1);
        return n;
    }
    q = uri != NULL ? strchr(uri, '?') : NULL;
    n = q != NULL ? http_query_param(q + 1, "last_event_id", out, size) : -1;
    if (n == -1) {
        out[0] = '\0';
        return 0;
    }
    if (n < 0 || n > CHAT_LAST_ID_MAX || !chat_name_ok(out, (size_t)n))
        return -1;
    return n;
}

void routes_stream(chat *c, struct evhttp_request *req, const char *room,
                   const char *user)
{
    char last[CHAT_LAST_ID_MAX * 3 + 1];
    int rc;

    if (c->stopping) {
        http_close(req);
        return http_error(c, req, 503, "shutting down");
    }
    if (evhttp_request_get_connection(req) == NULL) /* the client left while */
        return http_error(c, req, 410, "gone");     /* Redis was asked: freed */
    if (c->nstreams >= c->o.max_streams) {
        c->refused++;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                          "5");
        http_close(req);
        return http_error(c, req, 503, "too many streams (%lu)",
                          c->o.max_streams);
    }
    if (routes_last_id(req, last, sizeof last) < 0)
        last[0] = '\0'; /* checked before (open_stream) */
    rc = stream_open(c, req, room, user, last);
    if (rc < 0)
        return http_error(c, req, 500, "cannot open the stream: %s",
                          rc_strerror(rc));
    conns_detach(c, req);
    http_count(c, 200);
}

static void open_stream(chat *c, struct evhttp_request *req, const char *room,
                        const char *query)
{
    char last[CHAT_LAST_ID_MAX * 3 + 1];
    char user[CHAT_USER_MAX * 3 + 1] = "";
    long ulen =
        query != NULL ? http_query_param(query, "user", user, sizeof user) : -1;

    if (ulen == -1)
        user[0] = '\0';
    else if (ulen < 0 || ulen > CHAT_USER_MAX ||
             !chat_name_ok(user, (size_t)ulen))
        return http_error(c, req, 400,
                          "bad user name: at most %d bytes of UTF-8 "
                          "without control characters",
                          CHAT_USER_MAX);
    if (routes_last_id(req, last, sizeof last) < 0)
        return http_error(c, req, 400,
                          "bad Last-Event-ID (or last_event_id): at most %d "
                          "bytes without control characters",
                          CHAT_LAST_ID_MAX);
    if (session_room(room))
        session_stream(c, req, room, user); /* members only: Redis is asked */
    else
        routes_stream(c, req, room, user);
}

/* The whole body must be one JSON value within the size limit. Returns 0,
 * or -1 after answering. */
static int check_body(chat *c, struct evhttp_request *req, const char *body,
                      size_t n)
{
    rc_limits whole = {CHAT_BODY_MAX, 0};
    rc_message m = RC_MESSAGE_INIT;
    int rc;

    m.data = body;
    m.data_len = n;
    rc = rc_message_check(&m, &whole);
    if (rc == RC_ETOOBIG) {
        http_close(req);
        http_error(c, req, 413, "body over %lu bytes",
                   (unsigned long)CHAT_BODY_MAX);
    } else if (rc == RC_ENODATA)
        http_error(c, req, 400, "empty body: expected a JSON object");
    else if (rc == RC_EJSON)
        http_error(c, req, 400, "body is not valid JSON");
    else if (rc < 0)
        http_error(c, req, 400, "body: %s", rc_strerror(rc));
    return rc < 0 ? -1 : 0;
}

/* The string member name (span sp; absent: *out stays NULL), unescaped
 * into *out, which the caller frees. Returns 0, or -1 after answering. */
static int body_string(chat *c, struct evhttp_request *req, chat_span sp,
                       const char *name, char **out)
{
    long len;

    if (sp.p == NULL)
        return 0;
    *out = chat_malloc(sp.n);
    len = chat_json_unquote(sp.p, sp.n, *out);
    if (len < 0) {
        http_error(c, req, 400, "\"%s\" must be a string", name);
        return -1;
    }
    if (strlen(*out) != (size_t)len) {
        http_error(c, req, 400, "NUL in \"%s\"", name);
        return -1;
    }
    return 0;
}

/* Event names starting with "rc:" are the server's (rc:hello...): a
 * client must not send one. Returns 1, or 0 after answering 400. */
static int server_event_ok(chat *c, struct evhttp_request *req,
                           const char *event)
{
    if (event == NULL || strncmp(event, "rc:", 3) != 0)
        return 1;
    http_error(c, req, 400, "event names starting with \"rc:\" are reserved");
    return 0;
}

/* In a history room ids are Redis': a client must not send one. Returns
 * 1, or 0 after answering 400. */
static int history_id_ok(chat *c, struct evhttp_request *req, const char *id)
{
    if (!c->history || id == NULL)
        return 1;
    http_error(c, req, 400,
               "\"id\" is not allowed: this room keeps history, and its "
               "ids (E-S) are given by the server");
    return 0;
}

static void broadcast(chat *c, struct evhttp_request *req, const char *room,
                      const rc_message *m, const char *except)
{
    int rc = rc_broadcast_to_room(c->a, room, m, except, 0);
    struct evbuffer *b;

    if (rc == RC_ETOOBIG) {
        http_close(req);
        http_error(c, req, 413, "data over %lu bytes",
                   (unsigned long)RC_DEFAULT_MAX_DATA);
    } else if (rc == RC_ENOMEM) {
        http_error(c, req, 500, "%s", rc_strerror(rc));
    } else if (rc == RC_EUNAVAIL) { /* --history-strict, Redis down */
        http_retry_after(req, 1000, (char[24]){0});
        http_error(c, req, 503, "Redis is unavailable: not sent");
    } else if (rc < 0) {
        http_error(c, req, 400, "bad message: %s", rc_strerror(rc));
    } else {
        b = evbuffer_new();
        evbuffer_add_printf(b, "{\"delivered\":%d}", rc);
        http_reply_json(c, req, 202, b);
        evbuffer_free(b);
    }
}

/* A POST held for its rate check: the message points into the request's
 * body, which lives as long as the request; the strings are ours. */
typedef struct post {
    chat *c;
    struct evhttp_request *req;
    rc_message m;
    char *event, *id, *except, *room;
} post;

static void post_free(post *p)
{
    free(p->event);
    free(p->id);
    free(p->except);
    free(p->room);
    free(p);
}

static void too_many(chat *c, struct evhttp_request *req,
                     unsigned long long retry_ms)
{
    char secs[24];

    http_retry_after(req, retry_ms, secs);
    http_close(req);
    http_error(c, req, 429, "too many messages: retry after %s s", secs);
}

static void on_post_rate(rc_adapter *a, int rv, unsigned long long retry_ms,
                         void *user)
{
    post *p = user;

    (void)a;
    if (rv == RC_ELIMITED)
        too_many(p->c, p->req, retry_ms);
    else /* allowed, or the check failed: the post is not held up */
        broadcast(p->c, p->req, p->room, &p->m, p->except);
    post_free(p);
}

/* Broadcast p's message once the client's rate allows it (--post-rate). */
static void rate_then_broadcast(post *p)
{
    chat *c = p->c;
    rc_rate r;
    char key[64];
    unsigned long long retry = 0;
    int rv;

    r.per_second = (double)c->o.post_rate;
    r.burst =
        (unsigned)(c->o.post_burst ? c->o.post_burst : 2 * c->o.post_rate);
    rv = c->o.post_rate == 0 ||
                 http_client_key(p->req, "post:", key, sizeof key) < 0
             ? 1
             : rc_rate_take(c->a, key, &r, on_post_rate, p, &retry);
    if (rv == 0)
        return; /* on_post_rate finishes */
    if (rv == RC_ELIMITED)
        too_many(c, p->req, retry);
    else
        broadcast(c, p->req, p->room, &p->m, p->except);
    post_free(p);
}

static void post_message(chat *c, struct evhttp_request *req, const char *room)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *body = n > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    rc_message m = RC_MESSAGE_INIT;
    chat_body f;
    char *event = NULL, *id = NULL, *except = NULL;

    if (check_body(c, req, body, n) < 0)
        return;
    if (chat_body_parse(body, n, &f) < 0)
        return http_error(c, req, 400, "body is not a JSON object");
    if (f.data.p == NULL)
        return http_error(c, req, 400, "\"data\" is required");
    if (body_string(c, req, f.event, "event", &event) == 0 &&
        body_string(c, req, f.id, "id", &id) == 0 &&
        body_string(c, req, f.except, "except", &except) == 0 &&
        server_event_ok(c, req, event) && history_id_ok(c, req, id)) {
        post *p = chat_malloc(sizeof *p);

        m.event = event;
        m.id = id;
        m.data = f.data.p;
        m.data_len = f.data.n;
        p->c = c;
        p->req = req;
        p->m = m;
        p->event = event;
        p->id = id;
        p->except = except;
        p->room = chat_strdup(room);
        rate_then_broadcast(p);
        return;
    }
    free(event);
    free(id);
    free(except);
}

/* POST /rooms/{room}/leave {"connection":ID} */
static void post_leave(chat *c, struct evhttp_request *req, const char *room)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *body = n > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    chat_body f;
    char *conn = NULL;

    if (check_body(c, req, body, n) < 0)
        return;
    if (chat_body_parse(body, n, &f) < 0)
        return http_error(c, req, 400, "body is not a JSON object");
    if (f.connection.p == NULL)
        return http_error(c, req, 400, "\"connection\" is required");
    if (body_string(c, req, f.connection, "connection", &conn) == 0)
        presence_leave(c, req, room, conn);
    free(conn);
}

/* GET / , /health, /ready, /metrics. */
static void top_route(chat *c, struct evhttp_request *req, const char *path,
                      int get)
{
    if (!get)
        http_method(c, req, "GET, HEAD");
    else if (path[1] == '\0')
        get_page(c, req);
    else if (path[1] == 'h')
        get_health(c, req);
    else if (path[1] == 'r')
        get_ready(c, req);
    else
        metrics_reply(c, req);
}

/* /rooms/{room}[/events|/messages], or 404. */
static void room_route(chat *c, struct evhttp_request *req, const char *path,
                       const char *query)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    char room[CHAT_ROOM_MAX * 3 + 1];
    const char *what;
    int rc = http_room_path(path, room, &what);

    if (rc == -1)
        http_error(c, req, 404, "not found");
    else if (what[0] == 'l' && cmd != EVHTTP_REQ_POST)
        http_method(c, req, "POST");
    else if (what[0] == 'm' && cmd != EVHTTP_REQ_POST && !get)
        http_method(c, req, "GET, HEAD, POST");
    else if (strcmp(what, "events") == 0 && cmd != EVHTTP_REQ_GET)
        http_method(c, req, "GET");
    else if (*what == '\0' && !get)
        http_method(c, req, "GET, HEAD");
    else if (rc == -2)
        http_error(c, req, 400,
                   "bad room name: 1 to %d bytes of UTF-8 without control "
                   "characters, percent-encoded",
                   CHAT_ROOM_MAX);
    else if (*what == '\0')
        presence_reply(c, req, room);
    else if (what[0] == 'e')
        open_stream(c, req, room, query);
    else if (what[0] == 'l')
        post_leave(c, req, room);
    else if (get) /* GET /rooms/{room}/messages */
        history_reply(c, req, room, query != NULL ? query : "");
    else if (session_room(room)) /* only members post, through the route */
        http_error(c, req, 403,
                   "a session's messages are sent with POST /session/message");
    else
        post_message(c, req, room);
}

/* /users or /users/{user}, or 404. */
static void users_route(chat *c, struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    char user[CHAT_USER_MAX * 3 + 1];
    size_t n;
    long len;

    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)
        return http_method(c, req, "GET, HEAD");
    if (path[6] == '\0')
        return presence_users(c, req, NULL);
    n = strlen(path + 7);
    len = n <= CHAT_USER_MAX * 3 ? chat_pct_decode(path + 7, n, user, 0) : -1;
    if (len <= 0 || len > CHAT_USER_MAX || !chat_name_ok(user, (size_t)len))
        return http_error(c, req, 400,
                          "bad user name: 1 to %d bytes of UTF-8 without "
                          "control characters, percent-encoded",
                          CHAT_USER_MAX);
    user[len] = '\0';
    presence_users(c, req, user);
}

void routes_request(struct evhttp_request *req, void *arg)
{
    chat *c = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *uri = evhttp_request_get_uri(req), *query, *bad;
    char *path;
    size_t n;

    conns_request(c, req);
    if (c->stopping) {
        http_close(req);
        return http_error(c, req, 503, "shutting down");
    }
    if ((bad = http_framing_error(req)) != NULL) {
        http_close(req); /* what follows cannot be trusted as a request */
        return http_error(c, req, 400, "bad request framing: %s", bad);
    }
    /* The request target as sent (evhttp would read "//x" as a host). */
    if (uri == NULL || uri[0] != '/')
        return http_error(c, req, 404, "not found");
    n = strcspn(uri, "?#");
    query = uri[n] == '?' ? uri + n + 1 : NULL;
    path = chat_malloc(n + 1);
    memcpy(path, uri, n);
    path[n] = '\0';
    if (strcmp(path, "/") == 0 || strcmp(path, "/health") == 0 ||
        strcmp(path, "/ready") == 0 || strcmp(path, "/metrics") == 0)
        top_route(c, req, path,
                  cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD);
    else if (strncmp(path, "/session", 8) == 0 && session_route(c, req, path))
        ; /* answered there */
    else if (strcmp(path, "/users") == 0 ||
             (strncmp(path, "/users/", 7) == 0 && path[7] != '\0' &&
              strchr(path + 7, '/') == NULL))
        users_route(c, req, path);
    else
        room_route(c, req, path, query);
    free(path);
}
