/*
 * rc-chat's sessions (seed 000; DESIGN "rc-chat contract, room state",
 * Sessions): rooms "session:<code>" capped at --session-cap users, on the
 * library's admission (roomcast.h, "Admission"). Every route is one
 * library call (one script in Redis), answered when Redis answers:
 *
 *   POST   /session          {"userId"}                 rc_room_create
 *   POST   /session/join     {"userId","code"}          rc_room_admit
 *   POST   /session/message  {"message","code","userId"} rc_room_send
 *   PUT    /session/leave    {"userId","code"}          rc_room_evict
 *   DELETE /session/close    {"userId","code"}          admit (member?),
 *                                                       then rc_room_close
 *   GET    /rooms/session:C/events?user=U               admit (member?),
 *                                                       then the stream
 *
 * Answers are the seed's: {"success":B,"message":TEXT[,"data":{...}]}
 * (a 429 also has "error", as every rate refusal does); a stream's
 * refusals are the room routes' {"error":TEXT}. Codes are read as people
 * type them: case is ignored, O is 0, I and L are 1. The streams of a
 * closed session, or of a user who left, are ended by the library's end
 * callback (stream.c), after their rc:closed.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "chat.h"
#include "text.h"

#define PREFIX "session:"
#define PREFIX_LEN (sizeof PREFIX - 1)
#define UNAVAIL_RETRY_MS 1000

/* What a held request does; OP_CLOSE_CHECK and OP_STREAM ask whether the
 * user is a member first. */
enum {
    OP_CREATE,
    OP_JOIN,
    OP_MESSAGE,
    OP_LEAVE,
    OP_CLOSE_CHECK,
    OP_CLOSE,
    OP_STREAM
};

/* A request held while Redis answers. */
typedef struct call {
    chat *c;
    struct evhttp_request *req;
    int op;
    char user[CHAT_USER_MAX + 1];
    char code[CHAT_CODE_MAX + 1];
    char room[PREFIX_LEN + CHAT_CODE_MAX + 1];
    char *data; /* OP_MESSAGE: {"userId":U,"message":M} */
    size_t data_len;
} call;

static void start(call *k);

int session_room(const char *room)
{
    return strncmp(room, PREFIX, PREFIX_LEN) == 0 && room[PREFIX_LEN] != '\0';
}

static call *call_new(chat *c, struct evhttp_request *req, int op)
{
    call *k = chat_malloc(sizeof *k);

    memset(k, 0, sizeof *k);
    k->c = c;
    k->req = req;
    k->op = op;
    return k;
}

static void call_free(call *k)
{
    free(k->data);
    free(k);
}

/* Set k's code (canonical, n bytes) and room. */
static void set_code(call *k, const char *code, size_t n)
{
    memcpy(k->code, code, n);
    k->code[n] = '\0';
    snprintf(k->room, sizeof k->room, "%s%s", PREFIX, k->code);
}

/* Answer the seed's way ({"error":TEXT} for a stream): code, the text
 * formatted as printf does, and data {"code":C} when data_code is set. */
static void say(call *k, int code, const char *data_code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void say(call *k, int code, const char *data_code, const char *fmt, ...)
{
    struct evbuffer *b;
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (k->op == OP_STREAM)
        return http_error(k->c, k->req, code, "%s", text);
    b = evbuffer_new();
    evbuffer_add_printf(
        b, "{\"success\":%s,\"message\":", code < 300 ? "true" : "false");
    http_add_json_str(b, text);
    if (data_code != NULL) {
        evbuffer_add_printf(b, ",\"data\":{\"code\":");
        http_add_json_str(b, data_code);
        evbuffer_add(b, "}", 1);
    }
    if (code == 429) { /* what every rate refusal carries */
        evbuffer_add_printf(b, ",\"error\":");
        http_add_json_str(b, text);
    }
    evbuffer_add(b, "}", 1);
    http_reply_json(k->c, k->req, code, b);
    evbuffer_free(b);
}

/* Answer why Redis (or the library) refused k: rv an RC_E* code. */
static void refuse(call *k, int rv, unsigned long long retry_ms)
{
    char secs[24];

    if (rv == RC_EFULL)
        say(k, 409, NULL, "Session %s is full.", k->code);
    else if (rv == RC_ECLOSED)
        say(k, 410, NULL, "Session %s has been closed and is no longer valid.",
            k->code);
    else if (rv == RC_ENOROOM)
        say(k, 404, NULL, "Session %s does not exist.", k->code);
    else if (rv == RC_ENOTMEMBER)
        say(k, 403, NULL, "%s is not a member of session %s.", k->user,
            k->code);
    else if (rv == RC_ELIMITED) {
        http_retry_after(k->req, retry_ms, secs);
        http_close(k->req);
        say(k, 429, NULL, "Too many %s from this address: retry after %s s.",
            k->op == OP_CREATE ? "new sessions" : "messages", secs);
    } else if (rv == RC_EUNAVAIL || rv == RC_EMISUSE || rv == RC_ENOCODE ||
               rv == RC_EREDIS) {
        http_retry_after(k->req, UNAVAIL_RETRY_MS, secs);
        say(k, 503, NULL, "Sessions are unavailable: %s; try again.",
            k->c->link == NULL ? "rc-chat runs without Redis"
            : rv == RC_ENOCODE ? "no free session code"
            : rv == RC_EREDIS  ? "Redis answered with an error"
                               : "Redis cannot be reached");
    } else if (rv == RC_ETOOBIG) {
        http_close(k->req);
        say(k, 413, NULL, "The message is over %lu bytes.",
            (unsigned long)RC_DEFAULT_MAX_DATA);
    } else if (rv == RC_ENOMEM) {
        say(k, 500, NULL, "Out of memory.");
    } else {
        say(k, 400, NULL, "Bad request: %s.", rc_strerror(rv));
    }
}

/* The library answered (rc_admit_cb): finish k, or go on to its next
 * step (a close or a stream once the user is known to be a member). */
static void on_done(rc_adapter *a, int rv, const char *room,
                    unsigned long long retry_ms, void *user)
{
    call *k = user;

    (void)a;
    if (rv < 0)
        refuse(k, rv, retry_ms);
    else if (k->op == OP_CREATE) {
        set_code(k, room + PREFIX_LEN, strlen(room + PREFIX_LEN));
        say(k, 201, k->code, "Session created.");
    } else if (k->op == OP_JOIN)
        say(k, 200, NULL, "%s joined session %s", k->user, k->code);
    else if (k->op == OP_MESSAGE)
        say(k, 202, NULL, "Message sent.");
    else if (k->op == OP_LEAVE)
        say(k, 200, NULL, "%s left session %s", k->user, k->code);
    else if (k->op == OP_CLOSE)
        say(k, 200, NULL, "Session %s has been closed and is no longer valid.",
            k->code);
    else if (k->op == OP_STREAM)
        routes_stream(k->c, k->req, k->room, k->user);
    else { /* OP_CLOSE_CHECK: a member; now the close */
        k->op = OP_CLOSE;
        start(k);
        return;
    }
    call_free(k);
}

/* ---- starting the calls --------------------------------------------- */

static void create_now(call *k)
{
    rc_room_spec spec;
    int rv;

    memset(&spec, 0, sizeof spec);
    spec.cap = (unsigned)k->c->o.session_cap;
    spec.ttl_s = (unsigned)k->c->o.tombstone_s;
    spec.alphabet = CHAT_CODE_ALPHABET;
    spec.code_prefix = PREFIX;
    rv = rc_room_create(k->c->a, NULL, &spec, k->user, on_done, k);
    if (rv < 0) {
        refuse(k, rv, 0);
        call_free(k);
    }
}

static void on_create_rate(rc_adapter *a, int rv, unsigned long long retry_ms,
                           void *user)
{
    call *k = user;

    (void)a;
    if (rv == RC_ELIMITED) {
        refuse(k, rv, retry_ms);
        call_free(k);
    } else { /* allowed, or the check failed: not held up */
        create_now(k);
    }
}

/* POST /session: --session-rate per hour per client address first. */
static void create_rated(call *k)
{
    chat *c = k->c;
    unsigned long long retry = 0;
    char key[64];
    rc_rate r;
    int rv;

    if (c->o.session_rate == 0 ||
        http_client_key(k->req, "session:", key, sizeof key) < 0)
        return create_now(k);
    r.per_second = (double)c->o.session_rate / 3600.0;
    r.burst = (unsigned)c->o.session_rate;
    rv = rc_rate_take(c->a, key, &r, on_create_rate, k, &retry);
    if (rv == 0)
        return; /* on_create_rate goes on */
    if (rv == RC_ELIMITED) {
        refuse(k, rv, retry);
        call_free(k);
        return;
    }
    create_now(k);
}

/* POST /session/message: member and --post-rate checked in the publish's
 * own script (the bucket is the one of POST /rooms/{room}/messages). */
static int message_now(call *k)
{
    chat *c = k->c;
    rc_message m = RC_MESSAGE_INIT;
    rc_send_guard g;
    rc_rate r;
    char key[64];

    m.event = "message";
    m.data = k->data;
    m.data_len = k->data_len;
    memset(&g, 0, sizeof g);
    g.member = k->user;
    if (c->o.post_rate > 0 &&
        http_client_key(k->req, "post:", key, sizeof key) == 0) {
        r.per_second = (double)c->o.post_rate;
        r.burst =
            (unsigned)(c->o.post_burst ? c->o.post_burst : 2 * c->o.post_rate);
        g.rate_key = key;
        g.rate = &r;
    }
    return rc_room_send(c->a, k->room, &m, &g, on_done, k);
}

static void start(call *k)
{
    rc_adapter *a = k->c->a;
    int rv = 0;

    if (k->op == OP_CREATE)
        return create_rated(k);
    if (k->op == OP_JOIN)
        rv = rc_room_admit(a, k->room, k->user, 0, on_done, k);
    else if (k->op == OP_MESSAGE)
        rv = message_now(k);
    else if (k->op == OP_LEAVE)
        rv = rc_room_evict(a, k->room, k->user, on_done, k);
    else if (k->op == OP_CLOSE)
        rv = rc_room_close(a, k->room, NULL, on_done, k);
    else /* OP_CLOSE_CHECK, OP_STREAM */
        rv = rc_room_admit(a, k->room, k->user, RC_ADMIT_MEMBER, on_done, k);
    if (rv < 0) {
        refuse(k, rv, 0);
        call_free(k);
    }
}

/* ---- the request body ------------------------------------------------ */

/* The string sp unescaped into *out (the caller frees it), *len bytes.
 * Returns 0, or -1 (absent, or not a string). */
static int unquote(chat_span sp, char **out, size_t *len)
{
    long n;

    *out = NULL;
    if (sp.p == NULL)
        return -1;
    *out = chat_malloc(sp.n + 1);
    n = chat_json_unquote(sp.p, sp.n, *out);
    if (n < 0)
        return -1;
    *len = (size_t)n;
    return 0;
}

static int take_user(call *k, chat_span sp)
{
    char *s;
    size_t n = 0;
    int ok = unquote(sp, &s, &n) == 0 && n >= 1 && n <= CHAT_USER_MAX &&
             strlen(s) == n && chat_name_ok(s, n);

    if (ok)
        memcpy(k->user, s, n + 1);
    else
        say(k, 400, NULL,
            "\"userId\" is required: a string of 1 to %d bytes of UTF-8 "
            "without control characters.",
            CHAT_USER_MAX);
    free(s);
    return ok ? 0 : -1;
}

static int take_code(call *k, chat_span sp)
{
    char *s, code[CHAT_CODE_MAX + 1];
    size_t n = 0;
    long len = unquote(sp, &s, &n) == 0 && n <= CHAT_CODE_MAX
                   ? chat_code_norm(s, n, code)
                   : -1;

    free(s);
    if (len < 0) {
        say(k, 400, NULL,
            "\"code\" is required: a session code of letters and digits.");
        return -1;
    }
    set_code(k, code, (size_t)len);
    return 0;
}

/* k->data: {"userId":U,"message":M}, compact. */
static int take_message(call *k, chat_span sp)
{
    char *s, *d;
    size_t n = 0, qu, qm, o;

    if (unquote(sp, &s, &n) < 0 || n == 0) {
        free(s);
        say(k, 400, NULL, "\"message\" is required: a non-empty string.");
        return -1;
    }
    qu = chat_json_quote(k->user, strlen(k->user), NULL, 0);
    qm = chat_json_quote(s, n, NULL, 0);
    d = k->data = chat_malloc(qu + qm + 32);
    memcpy(d, "{\"userId\":", 10);
    o = 10 + chat_json_quote(k->user, strlen(k->user), d + 10, qu);
    memcpy(d + o, ",\"message\":", 11);
    o += 11;
    o += chat_json_quote(s, n, d + o, qm);
    d[o++] = '}';
    k->data_len = o;
    free(s);
    return 0;
}

/* k's body: one JSON object with "userId", and "code" and "message" when
 * the route needs them. Returns 0, or -1 after answering 400 or 413. */
static int read_body(call *k)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(k->req);
    size_t n = evbuffer_get_length(in);
    const char *body = n > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    rc_limits whole = {CHAT_BODY_MAX, 0};
    rc_message m = RC_MESSAGE_INIT;
    chat_body f;
    int rc;

    m.data = body;
    m.data_len = n;
    rc = rc_message_check(&m, &whole);
    if (rc == RC_ETOOBIG) {
        http_close(k->req);
        say(k, 413, NULL, "The body is over %lu bytes.",
            (unsigned long)CHAT_BODY_MAX);
        return -1;
    }
    if (rc < 0 || chat_body_parse(body, n, &f) < 0) {
        say(k, 400, NULL, "The body must be a JSON object.");
        return -1;
    }
    if (take_user(k, f.user_id) < 0 ||
        (k->op != OP_CREATE && take_code(k, f.code) < 0) ||
        (k->op == OP_MESSAGE && take_message(k, f.message) < 0))
        return -1;
    return 0;
}

/* ---- routes ------------------------------------------------------------ */

static const struct session_path {
    const char *path;
    int op;
    enum evhttp_cmd_type cmd;
    const char *allow;
} paths[] = {
    {"/session", OP_CREATE, EVHTTP_REQ_POST, "POST"},
    {"/session/join", OP_JOIN, EVHTTP_REQ_POST, "POST"},
    {"/session/message", OP_MESSAGE, EVHTTP_REQ_POST, "POST"},
    {"/session/leave", OP_LEAVE, EVHTTP_REQ_PUT, "PUT"},
    {"/session/close", OP_CLOSE_CHECK, EVHTTP_REQ_DELETE, "DELETE"},
};

int session_route(chat *c, struct evhttp_request *req, const char *path)
{
    const struct session_path *p = NULL;
    call *k;
    size_t i;

    for (i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (strcmp(path, paths[i].path) == 0)
            p = &paths[i];
    if (p == NULL)
        return 0;
    k = call_new(c, req, p->op);
    if (evhttp_request_get_command(req) != p->cmd) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          p->allow);
        say(k, 405, NULL, "Method not allowed (allowed: %s).", p->allow);
        call_free(k);
    } else if (read_body(k) < 0) {
        call_free(k);
    } else {
        start(k);
    }
    return 1;
}

void session_stream(chat *c, struct evhttp_request *req, const char *room,
                    const char *user)
{
    const char *code = room + PREFIX_LEN;
    char canon[CHAT_CODE_MAX + 1];
    size_t n = strlen(code);
    long len = n <= CHAT_CODE_MAX ? chat_code_norm(code, n, canon) : -1;
    call *k;

    if (len < 0)
        return http_error(c, req, 404, "Session %s does not exist.", code);
    if (user[0] == '\0')
        return http_error(c, req, 403,
                          "A session's stream is for its members: "
                          "?user=NAME is required.");
    k = call_new(c, req, OP_STREAM);
    set_code(k, canon, (size_t)len);
    memcpy(k->user, user, strlen(user) + 1);
    start(k);
}
