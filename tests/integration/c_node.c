/*
 * c_node: a roomcast node driven by JSON lines, for the interop tests.
 *
 *   c_node --redis redis://127.0.0.1:PORT --node-id ID [--prefix P]
 *
 * It speaks the protocol of node_ref/ref-node.mjs (commands on stdin, one
 * JSON object per line; answers and events on stdout; diagnostics on
 * stderr), on libevent with two hiredis async contexts (pub and sub) and
 * one rc_adapter. Commands run strictly one at a time, in order.
 *
 * roomcast delivers to local connections, not to a node-wide handler, so
 * rooms are joined through connections:
 *
 * - {"op":"subscribe","room":R} makes the connection "sub:R" join R (one
 *   such connection per room) and answers {"ok":"subscribe","room":R} once
 *   the room is ready (RC_ROOM_READY / rc_room_is_ready), or an error after
 *   5 s.
 * - {"op":"conn","id":ID,"room":R} does the same for a connection named ID
 *   (created if new): {"ok":"conn","id":ID,"room":R}. A connection belongs
 *   to one room only (so that every delivery names its room).
 * - {"op":"close","id":ID} removes that connection: {"ok":"close","id":ID}.
 * - {"op":"unsubscribe","room":R} removes every connection of R (which
 *   makes the adapter UNSUBSCRIBE) and answers at once: from then on no
 *   sink of this node is called for R, whatever Redis still sends.
 * - {"op":"publish","room":R,"message":{event?,data,id?,retry?},"meta":M?,
 *   "except":ID?,"local":true?} calls rc_broadcast(). data and meta travel
 *   as the exact bytes of their value in the command line (lines written
 *   with JSON.stringify give JSON.stringify's bytes); event and id must be
 *   strings (null means none); retry a non-negative integer (null: none).
 *   "local":true sets RC_LOCAL_ONLY. Local deliveries happen inside the
 *   call; the answer {"ok":"publish","room":R,"delivered":N} (N: local
 *   sinks that accepted) comes after a PING on the pub context has been
 *   answered, i.e. after Redis has handled the PUBLISH.
 * - {"op":"stats"}: {"ok":"stats","counters":{...}} from
 *   rc_adapter_counters().
 * - {"op":"ping"}: {"ok":"ping"}. {"op":"quit"} or end of stdin: answer
 *   {"ok":"quit"} (not on end of stdin), rc_adapter_free(), free both
 *   contexts, exit 0. SIGTERM and SIGINT do the same.
 * - Anything else: {"error":TEXT,"op":OP} ("op" absent when the line is not
 *   JSON), and the node goes on.
 *
 * Every sink call is written as
 *   {"event":"message","room":R,"conn":ID,"sse":FRAME,
 *    "message":{"event":E,"data":D,"id":I,"retry":N},"meta":M,
 *    "path":"local"|"remote"}
 * with FRAME the frame's bytes, message the rc_message the sink got (keys
 * absent when the field is), meta the raw meta the filter saw (absent when
 * none), and path "local" for deliveries made inside this node's own
 * rc_broadcast, "remote" for those that came through Redis.
 *
 * Start-up: {"ready":true,"node":ID} once both contexts are connected and
 * the adapter exists. Connection attempts are retried every 100 ms for 5 s,
 * then it exits 1 with "cannot reach Redis" on stderr. Bad arguments exit 2.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <roomcast/roomcast.h>

#define CONNECT_LIMIT_MS 5000
#define RETRY_MS 100
#define WAIT_LIMIT_MS 5000
#define J_MAX_DEPTH 256

/* ---- small helpers ---------------------------------------------------- */

static void oom(void)
{
    fputs("c_node: out of memory\n", stderr);
    exit(3);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* A growable byte buffer. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (np == NULL)
            oom();
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        n = (int)sizeof tmp - 1; /* only short numbers are printed */
    sb_put(b, tmp, (size_t)n);
}

/* s as a JSON string, escaped as JSON.stringify does for valid UTF-8. */
static void sb_jstr(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    sb_put(b, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];

        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        sb_put(b, s + run, i - run);
        run = i + 1;
        switch (ch) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            memcpy(u, "\\u00", 4);
            u[4] = hex[ch >> 4];
            u[5] = hex[ch & 15];
            u[6] = '\0';
            esc = u;
        }
        sb_puts(b, esc);
    }
    sb_put(b, s + run, n - run);
    sb_put(b, "\"", 1);
}

static void sb_jcstr(sbuf *b, const char *s)
{
    sb_jstr(b, s, strlen(s));
}

/* ---- a minimal JSON reader for the command lines ---------------------- */

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

/* A value: its type and its exact bytes [start, end). */
typedef struct jval {
    int type;
    const char *start, *end;
} jval;

static const char *j_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* p at '"'; returns the byte after the closing quote, or NULL. */
static const char *j_scan_str(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            return p + 1;
        if (ch < 0x20)
            return NULL;
        if (ch != '\\')
            continue;
        if (++p >= e)
            return NULL;
        if (*p == 'u') {
            int i;
            if (e - p < 5)
                return NULL;
            for (i = 1; i <= 4; i++)
                if (!is_hex(p[i]))
                    return NULL;
            p += 4;
        } else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
            return NULL;
        }
    }
    return NULL;
}

static const char *j_scan_num(const char *p, const char *e)
{
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0') {
        p++;
    } else if (p < e && *p >= '1' && *p <= '9') {
        while (p < e && is_digit(*p))
            p++;
    } else {
        return NULL;
    }
    if (p < e && *p == '.') {
        if (++p >= e || !is_digit(*p))
            return NULL;
        while (p < e && is_digit(*p))
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !is_digit(*p))
            return NULL;
        while (p < e && is_digit(*p))
            p++;
    }
    return p;
}

static const char *j_scan_lit(const char *p, const char *e, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(e - p) < n || memcmp(p, lit, n) != 0)
        return NULL;
    return p + n;
}

/* Parses one value at p (no leading whitespace) into *v; returns the byte
 * after it, or NULL if it is not valid JSON. */
static const char *j_scan(const char *p, const char *e, int depth, jval *v)
{
    jval inner;

    if (p >= e)
        return NULL;
    v->start = p;
    switch (*p) {
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';
        v->type = *p == '{' ? J_OBJ : J_ARR;
        if (depth >= J_MAX_DEPTH)
            return NULL;
        p = j_ws(p + 1, e);
        if (p < e && *p == close) {
            v->end = p + 1;
            return v->end;
        }
        for (;;) {
            if (v->type == J_OBJ) {
                if (p >= e || *p != '"' || (p = j_scan_str(p, e)) == NULL)
                    return NULL;
                p = j_ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p = j_ws(p + 1, e);
            }
            if ((p = j_scan(p, e, depth + 1, &inner)) == NULL)
                return NULL;
            p = j_ws(p, e);
            if (p < e && *p == ',') {
                p = j_ws(p + 1, e);
                continue;
            }
            if (p < e && *p == close) {
                v->end = p + 1;
                return v->end;
            }
            return NULL;
        }
    }
    case '"':
        v->type = J_STR;
        p = j_scan_str(p, e);
        break;
    case 't':
        v->type = J_TRUE;
        p = j_scan_lit(p, e, "true");
        break;
    case 'f':
        v->type = J_FALSE;
        p = j_scan_lit(p, e, "false");
        break;
    case 'n':
        v->type = J_NULL;
        p = j_scan_lit(p, e, "null");
        break;
    default:
        v->type = J_NUM;
        p = j_scan_num(p, e);
    }
    v->end = p;
    return p;
}

static int j_parse(const char *s, size_t n, jval *v)
{
    const char *e = s + n, *p = j_ws(s, e);
    if ((p = j_scan(p, e, 0, v)) == NULL)
        return -1;
    return j_ws(p, e) == e ? 0 : -1;
}

static unsigned j_hex4(const char *p)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v = v * 16 + (unsigned)(c <= '9'   ? c - '0'
                                : c <= 'F' ? c - 'A' + 10
                                           : c - 'a' + 10);
    }
    return v;
}

/* The string value v, unescaped, as a new NUL-terminated UTF-8 string, or
 * NULL if it holds \u0000 or a lone surrogate (not a C string). */
static char *j_str(const jval *v)
{
    const char *p = v->start + 1, *e = v->end - 1;
    char *out = xmalloc((size_t)(e - p) + 1), *o = out;

    while (p < e) {
        unsigned cp;
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        switch (*p++) {
        case 'b':
            *o++ = '\b';
            continue;
        case 'f':
            *o++ = '\f';
            continue;
        case 'n':
            *o++ = '\n';
            continue;
        case 'r':
            *o++ = '\r';
            continue;
        case 't':
            *o++ = '\t';
            continue;
        case 'u':
            break;
        default:
            *o++ = p[-1];
            continue; /* " \ / */
        }
        cp = j_hex4(p);
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            goto bad;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (e - p < 6 || p[0] != '\\' || p[1] != 'u')
                goto bad;
            lo = j_hex4(p + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                goto bad;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp == 0)
            goto bad;
        /* A \uXXXX escape takes at least as many bytes as its UTF-8. */
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else if (cp < 0x800) {
            *o++ = (char)(0xC0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *o++ = (char)(0xE0 | (cp >> 12));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (char)(0xF0 | (cp >> 18));
            *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* The member key of object obj (last one wins, as in JSON.parse). */
static int j_get(const jval *obj, const char *key, jval *out)
{
    const char *e = obj->end - 1, *p = j_ws(obj->start + 1, e);
    int found = 0;

    if (obj->type != J_OBJ)
        return 0;
    while (p < e && *p == '"') {
        jval k = {J_STR, p, j_scan_str(p, e)};
        jval v;
        char *name;

        p = j_ws(k.end, e);
        p = j_ws(p + 1, e); /* ':' */
        p = j_scan(p, e, 0, &v);
        name = j_str(&k);
        if (name != NULL && strcmp(name, key) == 0) {
            *out = v;
            found = 1;
        }
        free(name);
        p = j_ws(p, e);
        if (p < e && *p == ',')
            p = j_ws(p + 1, e);
    }
    return found;
}

/* ---- the node ---------------------------------------------------------- */

/* One local connection: its id and its one room. */
typedef struct cconn {
    struct node *node;
    char *id;
    char *room;
    rc_conn *conn;
    struct cconn *next;
} cconn;

enum wait_kind { WAIT_NONE, WAIT_READY, WAIT_PING };

typedef struct node {
    struct event_base *base;
    char *url, *host, *node_id;
    const char *prefix;
    int port;

    redisAsyncContext *pub, *sub;
    int pub_up, sub_up;
    struct event *connect_deadline, *retry_ev;
    rc_adapter *a;

    struct bufferevent *in;
    int in_eof, started, quitting, exit_code;
    struct event *pump_ev, *quit_ev, *wait_timer;
    struct event *sigterm_ev, *sigint_ev;

    /* the command in progress */
    enum wait_kind waiting;
    char *wait_room;
    char *wait_op;
    sbuf wait_answer;

    cconn *conns;
    int in_broadcast;

    /* meta of the message being delivered, as the filter last saw it */
    const rc_message *meta_msg;
    sbuf meta;
    int has_meta;
} node;

static void diag(const node *n, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "c_node[%s]: ", n->node_id ? n->node_id : "?");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void start_quit(node *n, int code);

static void emit(node *n, sbuf *line)
{
    sb_put(line, "\n", 1);
    if (fwrite(line->p, 1, line->len, stdout) != line->len ||
        fflush(stdout) != 0) {
        /* The reader has gone away. */
        n->exit_code = 1;
        start_quit(n, 1);
    }
    line->len = 0;
}

static void emit_error(node *n, const char *op, const char *fmt, ...)
{
    char text[512];
    sbuf b = {0};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    diag(n, "%s: %s", op ? op : "command", text);
    sb_puts(&b, "{\"error\":");
    sb_jcstr(&b, text);
    if (op != NULL) {
        sb_puts(&b, ",\"op\":");
        sb_jcstr(&b, op);
    }
    sb_puts(&b, "}");
    emit(n, &b);
    free(b.p);
}

static cconn *find_conn(node *n, const char *id)
{
    cconn *c;
    for (c = n->conns; c != NULL; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

static void drop_conn(node *n, cconn *c)
{
    cconn **pp;
    for (pp = &n->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    rc_conn_remove(c->conn);
    free(c->id);
    free(c->room);
    free(c);
}

static void free_conns(node *n)
{
    while (n->conns != NULL) {
        cconn *c = n->conns;
        n->conns = c->next;
        free(c->id);
        free(c->room);
        free(c);
    }
}

/* ---- adapter callbacks ------------------------------------------------- */

static int on_filter(rc_conn *conn, const rc_message *msg, const char *meta,
                     size_t meta_len, void *user)
{
    node *n = user;
    (void)conn;
    n->meta_msg = msg;
    n->meta.len = 0;
    n->has_meta = meta != NULL;
    if (meta != NULL)
        sb_put(&n->meta, meta, meta_len);
    return 0;
}

static int on_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                   void *user)
{
    cconn *c = user;
    node *n = c->node;
    sbuf b = {0};

    (void)conn;
    sb_puts(&b, "{\"event\":\"message\",\"room\":");
    sb_jcstr(&b, c->room);
    sb_puts(&b, ",\"conn\":");
    sb_jcstr(&b, c->id);
    sb_puts(&b, ",\"sse\":");
    sb_jstr(&b, rc_frame_data(frame), rc_frame_size(frame));
    sb_puts(&b, ",\"message\":{");
    if (msg->event != NULL) {
        sb_puts(&b, "\"event\":");
        sb_jcstr(&b, msg->event);
        sb_puts(&b, ",");
    }
    sb_puts(&b, "\"data\":");
    sb_put(&b, msg->data, msg->data_len);
    if (msg->id != NULL) {
        sb_puts(&b, ",\"id\":");
        sb_jcstr(&b, msg->id);
    }
    if (msg->retry >= 0)
        sb_printf(&b, ",\"retry\":%lld", msg->retry);
    sb_puts(&b, "}");
    if (n->meta_msg == msg && n->has_meta) {
        sb_puts(&b, ",\"meta\":");
        sb_put(&b, n->meta.p, n->meta.len);
    }
    sb_puts(&b, ",\"path\":");
    sb_puts(&b, n->in_broadcast ? "\"local\"" : "\"remote\"");
    sb_puts(&b, "}");
    emit(n, &b);
    free(b.p);
    return 0;
}

/* ---- the command in progress ------------------------------------------- */

static void finish_wait(node *n)
{
    if (n->waiting == WAIT_NONE)
        return;
    if (n->wait_answer.len)
        emit(n, &n->wait_answer);
    n->waiting = WAIT_NONE;
    free(n->wait_room);
    free(n->wait_op);
    n->wait_room = n->wait_op = NULL;
    n->wait_answer.len = 0;
    evtimer_del(n->wait_timer);
    event_active(n->pump_ev, EV_READ, 0);
}

static void begin_wait(node *n, enum wait_kind kind, const char *op,
                       const char *room)
{
    struct timeval tv = {WAIT_LIMIT_MS / 1000, (WAIT_LIMIT_MS % 1000) * 1000};
    n->waiting = kind;
    n->wait_op = xstrdup(op);
    n->wait_room = room ? xstrdup(room) : NULL;
    evtimer_add(n->wait_timer, &tv);
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    (void)fd;
    (void)what;
    if (n->waiting == WAIT_NONE)
        return;
    if (n->waiting == WAIT_READY)
        emit_error(n, n->wait_op, "room %s not ready within %d ms",
                   n->wait_room, WAIT_LIMIT_MS);
    else
        emit_error(n, n->wait_op, "no PING reply within %d ms", WAIT_LIMIT_MS);
    n->wait_answer.len = 0;
    finish_wait(n);
}

static void on_room_event(rc_adapter *a, const char *room, int event,
                          void *user)
{
    node *n = user;
    (void)a;
    if (event == RC_ROOM_LOST)
        diag(n, "room %s lost its subscription", room);
    if (event == RC_ROOM_READY && n->waiting == WAIT_READY &&
        strcmp(room, n->wait_room) == 0)
        finish_wait(n);
}

static void on_ping_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    node *n = privdata;
    redisReply *reply = r;
    (void)ac;
    if (n->quitting || n->waiting != WAIT_PING)
        return;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        emit_error(n, n->wait_op, "PING after PUBLISH failed");
        n->wait_answer.len = 0;
    }
    finish_wait(n);
}

/* ---- commands ---------------------------------------------------------- */

/* A string member, or NULL (absent, null or not a string: *bad is set for
 * a value that is neither a string nor null). */
static char *get_str(const jval *obj, const char *key, int *bad)
{
    jval v;
    char *s;
    if (!j_get(obj, key, &v) || v.type == J_NULL)
        return NULL;
    if (v.type != J_STR || (s = j_str(&v)) == NULL) {
        *bad = 1;
        return NULL;
    }
    return s;
}

/* Makes connection id join room and answers (now or once ready). */
static void join(node *n, const char *op, const char *id, const char *room)
{
    cconn *c = find_conn(n, id);
    int rc;

    if (c != NULL && strcmp(c->room, room) != 0) {
        emit_error(n, op, "connection %s is already in room %s", id, c->room);
        return;
    }
    if (c == NULL) {
        c = xmalloc(sizeof *c);
        c->node = n;
        c->id = xstrdup(id);
        c->room = xstrdup(room);
        rc = rc_conn_add(n->a, id, on_sink, c, &c->conn);
        if (rc < 0) {
            emit_error(n, op, "rc_conn_add: %s", rc_strerror(rc));
            free(c->id);
            free(c->room);
            free(c);
            return;
        }
        c->next = n->conns;
        n->conns = c;
        rc = rc_room_join(c->conn, room);
        if (rc < 0) {
            emit_error(n, op, "rc_room_join: %s", rc_strerror(rc));
            drop_conn(n, c);
            return;
        }
    }
    sb_puts(&n->wait_answer, "{\"ok\":");
    sb_jcstr(&n->wait_answer, op);
    if (strcmp(op, "conn") == 0) {
        sb_puts(&n->wait_answer, ",\"id\":");
        sb_jcstr(&n->wait_answer, id);
    }
    sb_puts(&n->wait_answer, ",\"room\":");
    sb_jcstr(&n->wait_answer, room);
    sb_puts(&n->wait_answer, "}");
    begin_wait(n, WAIT_READY, op, room);
    if (rc_room_is_ready(n->a, room))
        finish_wait(n);
}

static void cmd_publish(node *n, const jval *cmd, const char *room)
{
    rc_message msg = RC_MESSAGE_INIT;
    rc_broadcast_options opts;
    jval m, v;
    char *event = NULL, *id = NULL, *except = NULL;
    int bad = 0, rc;

    memset(&opts, 0, sizeof opts);
    if (!j_get(cmd, "message", &m) || m.type != J_OBJ) {
        emit_error(n, "publish", "\"message\" must be an object");
        return;
    }
    if (!j_get(&m, "data", &v)) {
        emit_error(n, "publish", "\"message.data\" is required");
        return;
    }
    msg.data = v.start;
    msg.data_len = (size_t)(v.end - v.start);
    event = get_str(&m, "event", &bad);
    id = get_str(&m, "id", &bad);
    except = get_str(cmd, "except", &bad);
    if (bad) {
        emit_error(n, "publish",
                   "event, id and except must be strings (without \\u0000 "
                   "or lone surrogates) or null");
        goto done;
    }
    if (j_get(&m, "retry", &v) && v.type != J_NULL) {
        char num[64];
        double d;
        size_t len = (size_t)(v.end - v.start);
        if (v.type != J_NUM || len >= sizeof num) {
            emit_error(n, "publish", "\"retry\" must be a number");
            goto done;
        }
        memcpy(num, v.start, len);
        num[len] = '\0';
        d = strtod(num, NULL);
        if (!(d >= 0 && d <= 9007199254740991.0) || d != (double)(long long)d) {
            emit_error(n, "publish",
                       "\"retry\" must be an integer in 0 .. 2^53-1");
            goto done;
        }
        msg.retry = (long long)d;
    }
    msg.event = event;
    msg.id = id;
    opts.except_conn_id = except;
    if (j_get(cmd, "meta", &v)) {
        opts.meta = v.start;
        opts.meta_len = (size_t)(v.end - v.start);
    }
    if (j_get(cmd, "local", &v) && v.type == J_TRUE)
        opts.flags |= RC_LOCAL_ONLY;

    n->in_broadcast = 1;
    rc = rc_broadcast(n->a, &room, 1, &msg, &opts);
    n->in_broadcast = 0;
    if (rc < 0) {
        emit_error(n, "publish", "rc_broadcast: %s (%s)", rc_strerror(rc),
                   rc_err_name(rc));
        goto done;
    }
    sb_puts(&n->wait_answer, "{\"ok\":\"publish\",\"room\":");
    sb_jcstr(&n->wait_answer, room);
    sb_printf(&n->wait_answer, ",\"delivered\":%d}", rc);
    begin_wait(n, WAIT_PING, "publish", NULL);
    if (n->pub == NULL || (opts.flags & RC_LOCAL_ONLY) ||
        redisAsyncCommand(n->pub, on_ping_reply, n, "PING") != REDIS_OK)
        finish_wait(n);
done:
    free(event);
    free(id);
    free(except);
}

static void cmd_unsubscribe(node *n, const char *room)
{
    cconn **pp = &n->conns;
    sbuf b = {0};

    while (*pp != NULL) {
        cconn *c = *pp;
        if (strcmp(c->room, room) == 0)
            drop_conn(n, c); /* unlinks *pp */
        else
            pp = &c->next;
    }
    sb_puts(&b, "{\"ok\":\"unsubscribe\",\"room\":");
    sb_jcstr(&b, room);
    sb_puts(&b, "}");
    emit(n, &b);
    free(b.p);
}

static void cmd_stats(node *n)
{
    rc_counters c;
    sbuf b = {0};
    int i, first = 1;

    rc_adapter_counters(n->a, &c, sizeof c);
#define F(name) sb_printf(&b, ",\"" #name "\":%llu", c.name)
    sb_printf(&b, "{\"ok\":\"stats\",\"counters\":{\"published\":%llu",
              c.published);
    F(publish_errors);
    F(received);
    F(echoes);
    F(rejected);
    F(duplicates);
    F(delivered);
    F(filtered);
    F(sink_errors);
    F(subscribes_sent);
    F(subscribes_confirmed);
    F(unsubscribes_sent);
    F(unsubscribes_confirmed);
    F(connections);
    F(rooms);
    F(memberships);
#undef F
    sb_puts(&b, ",\"rejected_by\":{");
    for (i = 1; i < RC_REJECT_SLOTS; i++) {
        if (c.rejected_by[i] == 0)
            continue;
        if (!first)
            sb_puts(&b, ",");
        first = 0;
        sb_jcstr(&b, rc_err_name(-i));
        sb_printf(&b, ":%llu", c.rejected_by[i]);
    }
    sb_puts(&b, "}}}");
    emit(n, &b);
    free(b.p);
}

static void handle_line(node *n, const char *line, size_t len)
{
    jval cmd, v;
    char *op = NULL, *room = NULL, *id = NULL;
    int bad = 0;
    size_t i;

    for (i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            break;
    if (i == len)
        return; /* blank line */
    if (j_parse(line, len, &cmd) != 0) {
        emit_error(n, NULL, "bad JSON");
        return;
    }
    if (cmd.type != J_OBJ) {
        emit_error(n, NULL, "command must be a JSON object");
        return;
    }
    if (!j_get(&cmd, "op", &v) || v.type != J_STR || (op = j_str(&v)) == NULL) {
        /* As the reference: {"error":...,"op":null}. */
        sbuf b = {0};
        diag(n, "command without a string op");
        sb_puts(&b, "{\"error\":\"unknown op\",\"op\":null}");
        emit(n, &b);
        free(b.p);
        return;
    }
    if (strcmp(op, "quit") == 0) {
        sbuf b = {0};
        sb_puts(&b, "{\"ok\":\"quit\"}");
        emit(n, &b);
        free(b.p);
        start_quit(n, 0);
        goto done;
    }
    if (strcmp(op, "ping") == 0) {
        sbuf b = {0};
        sb_puts(&b, "{\"ok\":\"ping\"}");
        emit(n, &b);
        free(b.p);
        goto done;
    }
    if (strcmp(op, "stats") == 0) {
        cmd_stats(n);
        goto done;
    }
    room = get_str(&cmd, "room", &bad);
    id = get_str(&cmd, "id", &bad);
    if (strcmp(op, "close") == 0) {
        cconn *c;
        sbuf b = {0};
        if (id == NULL) {
            emit_error(n, op, "\"id\" must be a string");
            goto done;
        }
        if ((c = find_conn(n, id)) == NULL) {
            emit_error(n, op, "no connection %s", id);
            goto done;
        }
        drop_conn(n, c);
        sb_puts(&b, "{\"ok\":\"close\",\"id\":");
        sb_jcstr(&b, id);
        sb_puts(&b, "}");
        emit(n, &b);
        free(b.p);
        goto done;
    }
    if (strcmp(op, "subscribe") != 0 && strcmp(op, "unsubscribe") != 0 &&
        strcmp(op, "publish") != 0 && strcmp(op, "conn") != 0) {
        emit_error(n, op, "unknown op \"%s\"", op);
        goto done;
    }
    if (room == NULL) {
        emit_error(n, op, "\"room\" must be a string");
        goto done;
    }
    if (strcmp(op, "subscribe") == 0) {
        char *sub_id = xmalloc(strlen(room) + 5);
        memcpy(sub_id, "sub:", 4);
        strcpy(sub_id + 4, room);
        join(n, op, sub_id, room);
        free(sub_id);
    } else if (strcmp(op, "conn") == 0) {
        if (id == NULL)
            emit_error(n, op, "\"id\" must be a string");
        else
            join(n, op, id, room);
    } else if (strcmp(op, "unsubscribe") == 0) {
        cmd_unsubscribe(n, room);
    } else {
        cmd_publish(n, &cmd, room);
    }
done:
    free(op);
    free(room);
    free(id);
}

/* Runs the commands read so far, one at a time. */
static void pump(node *n)
{
    struct evbuffer *in = bufferevent_get_input(n->in);

    while (!n->quitting && n->waiting == WAIT_NONE) {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
        if (line == NULL) {
            size_t rest = evbuffer_get_length(in);
            if (!n->in_eof)
                break;
            if (rest > 0) { /* a last line without its newline */
                line = xmalloc(rest + 1);
                evbuffer_remove(in, line, rest);
                len = rest;
            } else {
                start_quit(n, 0);
                break;
            }
        }
        handle_line(n, line, len);
        free(line);
    }
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static void on_stdin_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    pump(arg);
}

static void on_stdin_event(struct bufferevent *bev, short what, void *arg)
{
    node *n = arg;
    (void)bev;
    if (what & BEV_EVENT_ERROR)
        diag(n, "stdin: %s", strerror(errno));
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        n->in_eof = 1;
        pump(n);
    }
}

/* ---- start-up and shut-down ------------------------------------------- */

static void on_quit(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    redisAsyncContext *ac;
    (void)fd;
    (void)what;

    rc_adapter_free(n->a);
    n->a = NULL;
    free_conns(n);
    /* Freeing a context runs its pending callbacks with NULL replies and
     * then its disconnect callback, which must not touch it again. */
    if ((ac = n->pub) != NULL) {
        n->pub = NULL;
        redisAsyncFree(ac);
    }
    if ((ac = n->sub) != NULL) {
        n->sub = NULL;
        redisAsyncFree(ac);
    }
    event_base_loopbreak(n->base);
}

static void start_quit(node *n, int code)
{
    if (n->quitting)
        return;
    n->quitting = 1;
    n->exit_code = code;
    event_active(n->quit_ev, EV_READ, 0);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_quit(arg, 0);
}

static void connect_missing(node *n);

static void on_connect(const redisAsyncContext *ac, int status)
{
    node *n = ac->data;
    int is_pub = ac == n->pub;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        struct timeval tv = {0, RETRY_MS * 1000};
        diag(n, "%s: %s", is_pub ? "pub" : "sub", ac->errstr);
        if (is_pub)
            n->pub = NULL;
        else
            n->sub = NULL;
        if (!n->quitting)
            evtimer_add(n->retry_ev, &tv);
        return;
    }
    if (is_pub)
        n->pub_up = 1;
    else
        n->sub_up = 1;
    if (!(n->pub_up && n->sub_up) || n->quitting)
        return;

    evtimer_del(n->connect_deadline);
    n->a = rc_adapter_new(n->pub, n->sub, n->prefix, n->node_id);
    if (n->a == NULL) {
        diag(n, "rc_adapter_new failed (bad --node-id or out of memory)");
        start_quit(n, 2);
        return;
    }
    rc_adapter_set_filter(n->a, on_filter, n);
    rc_adapter_set_room_cb(n->a, on_room_event, n);
    {
        sbuf b = {0};
        sb_puts(&b, "{\"ready\":true,\"node\":");
        sb_jcstr(&b, rc_adapter_node_id(n->a));
        sb_puts(&b, "}");
        emit(n, &b);
        free(b.p);
    }
    n->started = 1;
    bufferevent_enable(n->in, EV_READ);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    node *n = ac->data;
    int is_pub;

    if (n->quitting)
        return; /* our own redisAsyncFree */
    is_pub = ac == n->pub;
    diag(n, "%s link lost: %s", is_pub ? "pub" : "sub",
         status == REDIS_OK ? "closed" : ac->errstr);
    if (is_pub) {
        n->pub = NULL;
        if (n->a)
            rc_adapter_set_pub(n->a, NULL);
    } else {
        n->sub = NULL;
        if (n->a)
            rc_adapter_set_sub(n->a, NULL);
    }
}

static redisAsyncContext *open_ctx(node *n)
{
    redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);
    if (ac == NULL)
        oom();
    if (ac->err) {
        diag(n, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = n;
    if (redisLibeventAttach(ac, n->base) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void connect_missing(node *n)
{
    int again = 0;
    if (n->pub == NULL && (n->pub = open_ctx(n)) == NULL)
        again = 1;
    if (n->sub == NULL && (n->sub = open_ctx(n)) == NULL)
        again = 1;
    if (again) {
        struct timeval tv = {0, RETRY_MS * 1000};
        evtimer_add(n->retry_ev, &tv);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_missing(arg);
}

static void on_connect_deadline(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    (void)fd;
    (void)what;
    diag(n, "cannot reach Redis at %s within %d ms", n->url, CONNECT_LIMIT_MS);
    evtimer_del(n->retry_ev);
    start_quit(n, 1);
}

static void usage(const char *text)
{
    fprintf(stderr, "c_node: %s\n", text);
    fputs("usage: c_node --redis redis://HOST:PORT --node-id ID "
          "[--prefix P]\n",
          stderr);
    exit(2);
}

/* redis://HOST:PORT[/...] into host and port. */
static int parse_url(node *n, const char *url)
{
    const char *p, *colon, *end;
    char *stop;
    long port;

    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    p = url + 8;
    end = p + strcspn(p, "/?");
    colon = memchr(p, ':', (size_t)(end - p));
    if (colon == NULL || colon == p)
        return -1;
    errno = 0;
    port = strtol(colon + 1, &stop, 10);
    if (stop != end || colon + 1 == end || errno || port < 1 || port > 65535)
        return -1;
    n->host = xstrndup(p, (size_t)(colon - p));
    n->port = (int)port;
    return 0;
}

static void parse_args(node *n, int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL, *eq = strchr(arg, '=');
        size_t name_len =
            eq && strncmp(arg, "--", 2) == 0 ? (size_t)(eq - arg) : strlen(arg);
        if (eq && strncmp(arg, "--", 2) == 0)
            value = eq + 1;
        if (value == NULL) {
            if (i + 1 >= argc)
                usage("an option needs a value");
            value = argv[++i];
        }
        if (name_len == 7 && strncmp(arg, "--redis", 7) == 0) {
            free(n->url);
            n->url = xstrdup(value);
        } else if (name_len == 9 && strncmp(arg, "--node-id", 9) == 0) {
            free(n->node_id);
            n->node_id = xstrdup(value);
        } else if (name_len == 8 && strncmp(arg, "--prefix", 8) == 0) {
            n->prefix = value;
        } else {
            usage("unknown argument");
        }
    }
    if (n->url == NULL)
        usage("--redis is required");
    if (n->node_id == NULL)
        usage("--node-id is required");
    if (parse_url(n, n->url) != 0)
        usage("--redis must be redis://HOST:PORT");
}

int main(int argc, char **argv)
{
    static node nd;
    node *n = &nd;
    struct event_config *cfg;
    struct stat st;
    struct timeval deadline = {CONNECT_LIMIT_MS / 1000,
                               (CONNECT_LIMIT_MS % 1000) * 1000};
    int code;

    parse_args(n, argc, argv);
    signal(SIGPIPE, SIG_IGN);

    /* epoll cannot watch a regular file: with stdin redirected from one,
     * use another backend. */
    cfg = event_config_new();
    if (cfg == NULL)
        oom();
    if (fstat(0, &st) == 0 && S_ISREG(st.st_mode))
        event_config_avoid_method(cfg, "epoll");
    n->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (n->base == NULL) {
        diag(n, "cannot create an event base");
        return 1;
    }

    n->pump_ev = event_new(n->base, -1, 0, on_pump, n);
    n->quit_ev = event_new(n->base, -1, 0, on_quit, n);
    n->wait_timer = evtimer_new(n->base, on_wait_timeout, n);
    n->retry_ev = evtimer_new(n->base, on_retry, n);
    n->connect_deadline = evtimer_new(n->base, on_connect_deadline, n);
    n->sigterm_ev = evsignal_new(n->base, SIGTERM, on_signal, n);
    n->sigint_ev = evsignal_new(n->base, SIGINT, on_signal, n);
    n->in = bufferevent_socket_new(n->base, 0, 0);
    if (!n->pump_ev || !n->quit_ev || !n->wait_timer || !n->retry_ev ||
        !n->connect_deadline || !n->sigterm_ev || !n->sigint_ev || !n->in)
        oom();
    bufferevent_setcb(n->in, on_stdin_read, NULL, on_stdin_event, n);
    bufferevent_disable(n->in, EV_READ); /* until ready */
    evsignal_add(n->sigterm_ev, NULL);
    evsignal_add(n->sigint_ev, NULL);
    evtimer_add(n->connect_deadline, &deadline);

    connect_missing(n);
    event_base_dispatch(n->base);

    code = n->exit_code;
    if (!n->quitting) { /* the loop ran dry: not expected */
        diag(n, "event loop ended unexpectedly");
        n->quitting = 1;
        on_quit(-1, 0, n);
        code = 1;
    }
    bufferevent_free(n->in);
    event_free(n->pump_ev);
    event_free(n->quit_ev);
    event_free(n->wait_timer);
    event_free(n->retry_ev);
    event_free(n->connect_deadline);
    event_free(n->sigterm_ev);
    event_free(n->sigint_ev);
    event_base_free(n->base);
    free(n->wait_room);
    free(n->wait_op);
    free(n->wait_answer.p);
    free(n->meta.p);
    free(n->url);
    free(n->host);
    free(n->node_id);
    return code;
}
