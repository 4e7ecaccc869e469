/*
 * rc-chat's history and resume, on the library's (roomcast.h, "History
 * and resume"): with --redis and --history N (default 1000) every room,
 * session rooms included, keeps its last N messages with ids "E-S" that
 * Redis gives with the publish. A stream opened with Last-Event-ID (or
 * ?last_event_id=) resumes after it (stream.c calls rc_conn_resume; the
 * library writes the replay or the rc:reset frame itself), and
 * GET /rooms/{room}/messages?since=E-S&limit=N reads it for clients that
 * poll. Without Redis there is no history: ids would mean nothing across
 * a restart, so the node keeps none and says so at start.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "chat.h"
#include "text.h"

int history_setup(chat *c)
{
    rc_history_options ho;
    int rc;

    if (c->o.history == 0 || c->o.redis == NULL) {
        chat_log("history off%s", c->o.history == 0
                                      ? " (--history 0)"
                                      : ": no Redis (local rooms keep none)");
        return 0;
    }
    memset(&ho, 0, sizeof ho);
    ho.max_len = (unsigned)c->o.history;
    ho.ttl_s = (unsigned)c->o.history_ttl_s;
    ho.replay_max = (unsigned)c->o.replay_max;
    ho.flags = c->o.history_strict ? RC_HISTORY_STRICT : 0;
    rc = rc_adapter_set_history(c->a, &ho, sizeof ho);
    if (rc < 0) {
        chat_log("cannot turn history on: %s", rc_strerror(rc));
        return -1;
    }
    c->history = 1;
    chat_log("history on: %lu messages per room for %lu s, replays of at "
             "most %lu%s",
             c->o.history, c->o.history_ttl_s, c->o.replay_max,
             c->o.history_strict ? ", posts refused while Redis is down" : "");
    return 0;
}

/* A read waiting for Redis. */
typedef struct read_ctx {
    chat *c;
    struct evhttp_request *req;
} read_ctx;

/* {"id":I,"event":E|null,"data":D} (D the JSON text as it is). */
static void add_entry(struct evbuffer *b, const rc_history_entry *e)
{
    evbuffer_add_printf(b, "{\"id\":");
    http_add_json_str(b, e->id);
    evbuffer_add_printf(b, ",\"event\":");
    if (e->msg.event != NULL)
        http_add_json_str(b, e->msg.event);
    else
        evbuffer_add_printf(b, "null");
    evbuffer_add_printf(b, ",\"data\":");
    evbuffer_add(b, e->msg.data, e->msg.data_len);
    evbuffer_add(b, "}", 1);
}

static void on_read(rc_adapter *a, int err, const char *reset,
                    const char *latest, const rc_history_entry *e, size_t n,
                    void *user)
{
    read_ctx *r = user;
    struct evbuffer *b;
    size_t i;

    (void)a;
    (void)latest;
    if (err != 0) {
        http_retry_after(r->req, 1000, (char[24]){0});
        http_error(r->c, r->req, 503, "history unavailable: %s",
                   rc_strerror(err));
        free(r);
        return;
    }
    b = evbuffer_new();
    if (reset != NULL) {
        evbuffer_add_printf(b, "{\"reset\":");
        http_add_json_str(b, reset);
        evbuffer_add(b, "}", 1);
    } else {
        evbuffer_add_printf(b, "{\"messages\":[");
        for (i = 0; i < n; i++) {
            if (i > 0)
                evbuffer_add(b, ",", 1);
            add_entry(b, &e[i]);
        }
        evbuffer_add(b, "]}", 2);
    }
    http_reply_json(r->c, r->req, 200, b);
    evbuffer_free(b);
    free(r);
}

/* ?limit=N: 1 to --replay-max; absent: --replay-max. Returns it, or 0
 * when it is bad. */
static unsigned long read_limit(chat *c, const char *query)
{
    char v[16];
    char *end;
    unsigned long n;
    long len = http_query_param(query, "limit", v, sizeof v);

    if (len == -1)
        return c->o.replay_max;
    if (len <= 0 || v[0] < '0' || v[0] > '9')
        return 0;
    n = strtoul(v, &end, 10);
    return *end == '\0' && n <= c->o.replay_max ? n : 0;
}

void history_reply(chat *c, struct evhttp_request *req, const char *room,
                   const char *query)
{
    char since[CHAT_LAST_ID_MAX + 1];
    long slen = http_query_param(query, "since", since, sizeof since);
    unsigned long limit = read_limit(c, query);
    read_ctx *r;
    int rc;

    if (!c->history)
        return http_error(c, req, 404,
                          "no history here (--history 0, or no Redis)");
    if (slen == -1)
        since[0] = '\0';
    else if (slen < 0 || !chat_name_ok(since, (size_t)slen))
        return http_error(c, req, 400,
                          "bad since: at most %d bytes without control "
                          "characters",
                          CHAT_LAST_ID_MAX);
    if (limit == 0)
        return http_error(c, req, 400, "bad limit: 1 to %lu", c->o.replay_max);
    r = chat_malloc(sizeof *r);
    r->c = c;
    r->req = req;
    rc = rc_history_read(c->a, room, since, (unsigned)limit, on_read, r);
    if (rc == 0)
        return;
    free(r);
    if (rc == RC_EUNAVAIL) {
        http_retry_after(req, 1000, (char[24]){0});
        return http_error(c, req, 503, "Redis is unavailable");
    }
    http_error(c, req, rc == RC_EINVAL ? 400 : 500, "history read: %s",
               rc_strerror(rc));
}
