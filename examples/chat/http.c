/*
 * rc-chat's HTTP helpers: answers (with the status counted for /metrics),
 * JSON errors, 405s, and reading the request target (query parameters,
 * room paths). The handlers are routes.c.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/util.h>
#include <event2/keyvalq_struct.h>

#include "chat.h"
#include "text.h"

const int chat_status_codes[CHAT_N_CODES] = {200, 201, 202, 204, 400, 403, 404,
                                             405, 409, 410, 413, 429, 500, 503};

void http_add_json_str(struct evbuffer *b, const char *s)
{
    size_t n = strlen(s), need = chat_json_quote(s, n, NULL, 0);
    struct evbuffer_iovec v;

    if (evbuffer_reserve_space(b, (ev_ssize_t)need, &v, 1) < 1)
        return;
    v.iov_len = chat_json_quote(s, n, v.iov_base, need);
    evbuffer_commit_space(b, &v, 1);
}

void http_count(chat *c, int code)
{
    size_t i;

    for (i = 0; i < CHAT_N_CODES; i++)
        if (chat_status_codes[i] == code)
            c->requests[i]++;
}

void http_reply(chat *c, struct evhttp_request *req, int code, const char *type,
                struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    http_count(c, code);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[32]; /* the GET's length, and no body */

        snprintf(len, sizeof len, "%lu",
                 (unsigned long)(body != NULL ? evbuffer_get_length(body) : 0));
        evhttp_add_header(h, "Content-Length", len);
        body = NULL;
    }
    evhttp_send_reply(req, code, NULL, body);
}

void http_reply_json(chat *c, struct evhttp_request *req, int code,
                     struct evbuffer *body)
{
    http_reply(c, req, code, "application/json", body);
}

void http_error(chat *c, struct evhttp_request *req, int code, const char *fmt,
                ...)
{
    struct evbuffer *b = evbuffer_new();
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    evbuffer_add_printf(b, "{\"error\":");
    http_add_json_str(b, text);
    evbuffer_add(b, "}", 1);
    http_reply_json(c, req, code, b);
    evbuffer_free(b);
}

void http_close(struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
                      "close");
}

void http_retry_after(struct evhttp_request *req, unsigned long long ms,
                      char *secs)
{
    unsigned long long s = (ms + 999) / 1000;

    snprintf(secs, 24, "%llu", s > 0 ? s : 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                      secs);
}

int http_client_key(struct evhttp_request *req, const char *prefix, char *key,
                    size_t size)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    size_t n = strlen(prefix);
    char *addr = NULL;
    ev_uint16_t port;

    if (evcon == NULL || n >= size)
        return -1;
    evhttp_connection_get_peer(evcon, &addr, &port);
    memcpy(key, prefix, n);
    return addr != NULL && rc_rate_addr_key(addr, key + n, size - n) == 0 ? 0
                                                                          : -1;
}

/* Is name (a header name as evhttp split it) the header want? Any blank
 * in a name is refused by http_framing_error, so compare whole. */
static int is_header(const char *name, const char *want)
{
    return evutil_ascii_strcasecmp(name, want) == 0;
}

const char *http_framing_error(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    int cl = 0, te = 0, host = 0;

    /* keyvalq_struct.h has the list's fields, not sys/queue.h's macros */
    for (kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        if (kv->key[strcspn(kv->key, " \t")] != '\0')
            return "whitespace in a header name";
        cl += is_header(kv->key, "Content-Length");
        te += is_header(kv->key, "Transfer-Encoding");
        host += is_header(kv->key, "Host");
    }
    if (cl > 1)
        return "more than one Content-Length";
    if (te > 0 && cl > 0)
        return "both Transfer-Encoding and Content-Length";
    if (host > 1 ||
        (host == 0 && (req->major > 1 || (req->major == 1 && req->minor >= 1))))
        return "HTTP/1.1 needs exactly one Host header";
    return NULL;
}

void http_method(chat *c, struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    http_error(c, req, 405, "method not allowed (allowed: %s)", allow);
}

long http_query_param(const char *query, const char *name, char *out,
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

int http_room_path(const char *path, char *room, const char **what)
{
    const char *seg, *slash;
    size_t n;
    long len;

    if (strncmp(path, "/rooms/", 7) != 0)
        return -1;
    seg = path + 7;
    slash = strchr(seg, '/');
    n = slash != NULL ? (size_t)(slash - seg) : strlen(seg);
    *what = slash != NULL ? slash + 1 : "";
    if (**what != '\0' && strcmp(*what, "events") != 0 &&
        strcmp(*what, "messages") != 0 && strcmp(*what, "leave") != 0)
        return -1;
    if (n > CHAT_ROOM_MAX * 3)
        return -2;
    len = chat_pct_decode(seg, n, room, 0);
    if (len <= 0 || len > CHAT_ROOM_MAX || !chat_name_ok(room, (size_t)len))
        return -2;
    return 0;
}
