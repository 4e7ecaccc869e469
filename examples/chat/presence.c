/*
 * rc-chat's presence routes, on the library's presence (roomcast.h):
 * GET /rooms/{room} (members and users), GET /users, GET /users/{user},
 * POST /rooms/{room}/leave. The streams' rc:presence, rc:join and
 * rc:leave frames come from the library itself.
 *
 * Without Redis (or while it is away) the answers hold this node's own
 * streams, and say "stale":true when the node has Redis but cannot reach
 * it. Every answer is built in O(n log n) of what it holds.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "chat.h"
#include "text.h"

typedef struct query {
    chat *c;
    struct evhttp_request *req;
    struct evbuffer *b; /* GET /rooms/{room}: the users, then members */
    char *arg;          /* the room or user */
} query;

static query *query_new(chat *c, struct evhttp_request *req, const char *arg)
{
    query *q = chat_malloc(sizeof *q);

    q->c = c;
    q->req = req;
    q->b = NULL;
    q->arg = chat_strdup(arg != NULL ? arg : "");
    return q;
}

static void query_free(query *q)
{
    if (q->b != NULL)
        evbuffer_free(q->b);
    free(q->arg);
    free(q);
}

static void add_str(struct evbuffer *b, const char *key, const char *v)
{
    evbuffer_add_printf(b, "\"%s\":", key);
    http_add_json_str(b, v);
}

/* This node's streams with a user in room (NULL: all rooms), sorted by
 * user, as entries; *n set. The caller frees the array. */
static rc_presence_entry *local_entries(chat *c, const char *room, size_t *n)
{
    rc_presence_entry *e;
    stream *s;
    size_t k = 0;

    e = chat_malloc((c->nstreams + 1) * sizeof *e);
    for (s = c->streams; s != NULL; s = s->next[LIST_LIVE]) {
        if (s->conn == NULL || s->user[0] == '\0' ||
            (room != NULL && strcmp(room, s->room) != 0))
            continue;
        memset(&e[k], 0, sizeof e[k]);
        e[k].user = s->user;
        e[k].room = s->room;
        e[k].conn = rc_conn_id(s->conn);
        e[k].node = rc_adapter_node_id(c->a);
        e[k].connections = 1;
        k++;
    }
    *n = k;
    return e;
}

static int by_user_room(const void *x, const void *y)
{
    const rc_presence_entry *a = x, *b = y;
    int d = strcmp(a->user, b->user);

    return d != 0 ? d : strcmp(a->room ? a->room : "", b->room ? b->room : "");
}

/* "users":[{"user":U,"connections":N},...] from entries sorted by user:
 * the connections of one user added up. */
static void add_users(struct evbuffer *b, rc_presence_entry *e, size_t n)
{
    size_t i = 0, j;
    unsigned long long sum;

    qsort(e, n, sizeof *e, by_user_room);
    evbuffer_add_printf(b, "\"users\":[");
    while (i < n) {
        for (sum = 0, j = i; j < n && strcmp(e[j].user, e[i].user) == 0; j++)
            sum += e[j].connections;
        evbuffer_add_printf(b, "%s{", i > 0 ? "," : "");
        add_str(b, "user", e[i].user);
        evbuffer_add_printf(b, ",\"connections\":%llu}", sum);
        i = j;
    }
    evbuffer_add(b, "]", 1);
}

static void add_members(struct evbuffer *b, const rc_presence_entry *e,
                        size_t n)
{
    size_t i;

    evbuffer_add_printf(b, "\"members\":[");
    for (i = 0; i < n; i++) {
        evbuffer_add_printf(b, "%s{", i > 0 ? "," : "");
        add_str(b, "connection", e[i].conn);
        evbuffer_add(b, ",", 1);
        add_str(b, "node", e[i].node);
        evbuffer_add(b, ",", 1);
        add_str(b, "user", e[i].user);
        evbuffer_add(b, "}", 1);
    }
    evbuffer_add(b, "]", 1);
}

/* A local answer from a node that has Redis but cannot reach it: the
 * other nodes' part is missing. */
static const char *stale(const chat *c, int local)
{
    return local && c->link != NULL ? ",\"stale\":true" : "";
}

static void reply_room(chat *c, struct evhttp_request *req, const char *room,
                       struct evbuffer *users, rc_presence_entry *m, size_t n)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b, "{\"room\":");
    http_add_json_str(b, room);
    evbuffer_add(b, ",", 1);
    add_members(b, m, n);
    evbuffer_add(b, ",", 1);
    if (users != NULL) {
        evbuffer_add_buffer(b, users);
    } else {
        qsort(m, n, sizeof *m, by_user_room);
        add_users(b, m, n);
    }
    evbuffer_add_printf(b, "%s}", stale(c, users == NULL));
    http_reply_json(c, req, 200, b);
    evbuffer_free(b);
}

static void local_room(chat *c, struct evhttp_request *req, const char *room)
{
    size_t n;
    rc_presence_entry *e = local_entries(c, room, &n);

    reply_room(c, req, room, NULL, e, n);
    free(e);
}

static void on_members(rc_adapter *a, int err, const rc_presence_entry *e,
                       size_t n, void *user)
{
    query *q = user;

    (void)a;
    if (err != 0)
        local_room(q->c, q->req, q->arg);
    else
        reply_room(q->c, q->req, q->arg, q->b, (rc_presence_entry *)e, n);
    query_free(q);
}

static void on_users(rc_adapter *a, int err, const rc_presence_entry *e,
                     size_t n, void *user)
{
    query *q = user;
    rc_presence_entry *copy;

    if (err == 0) {
        copy = chat_malloc((n + 1) * sizeof *copy);
        if (n > 0)
            memcpy(copy, e, n * sizeof *copy);
        q->b = evbuffer_new();
        add_users(q->b, copy, n);
        free(copy);
        if (rc_presence_members(a, q->arg, on_members, q) == 0)
            return;
    }
    local_room(q->c, q->req, q->arg);
    query_free(q);
}

void presence_reply(chat *c, struct evhttp_request *req, const char *room)
{
    query *q = query_new(c, req, room);

    if (rc_presence_users(c->a, room, on_users, q) != 0) {
        local_room(c, req, room);
        query_free(q);
    }
}

/* ---- users ------------------------------------------------------------ */

/* One user's entries e[0..n) (sorted by room): its rooms and connections,
 * "connections" and "rooms" members. */
static void add_user_rooms(struct evbuffer *b, const rc_presence_entry *e,
                           size_t n)
{
    unsigned long long sum = 0;
    size_t i;

    for (i = 0; i < n; i++)
        sum += e[i].connections;
    evbuffer_add_printf(b, "\"connections\":%llu,\"rooms\":[", sum);
    for (i = 0; i < n; i++) {
        if (i > 0)
            evbuffer_add(b, ",", 1);
        http_add_json_str(b, e[i].room);
    }
    evbuffer_add(b, "]", 1);
}

/* GET /users: {"users":[{"user":U,"connections":N,"rooms":[...]},...]} */
static void reply_users(chat *c, struct evhttp_request *req,
                        rc_presence_entry *e, size_t n, int local)
{
    struct evbuffer *b = evbuffer_new();
    size_t i = 0, j;

    qsort(e, n, sizeof *e, by_user_room);
    evbuffer_add_printf(b, "{\"users\":[");
    while (i < n) {
        for (j = i; j < n && strcmp(e[j].user, e[i].user) == 0; j++)
            ;
        evbuffer_add_printf(b, "%s{", i > 0 ? "," : "");
        add_str(b, "user", e[i].user);
        evbuffer_add(b, ",", 1);
        add_user_rooms(b, e + i, j - i);
        evbuffer_add(b, "}", 1);
        i = j;
    }
    evbuffer_add_printf(b, "]%s}", stale(c, local));
    http_reply_json(c, req, 200, b);
    evbuffer_free(b);
}

/* GET /users/{user}: {"user":U,"online":B,"connections":N,"rooms":[...]} */
static void reply_user(chat *c, struct evhttp_request *req, const char *user,
                       rc_presence_entry *e, size_t n, int local)
{
    struct evbuffer *b = evbuffer_new();

    qsort(e, n, sizeof *e, by_user_room);
    evbuffer_add(b, "{", 1);
    add_str(b, "user", user);
    evbuffer_add_printf(b, ",\"online\":%s,", n > 0 ? "true" : "false");
    add_user_rooms(b, e, n);
    evbuffer_add_printf(b, "%s}", stale(c, local));
    http_reply_json(c, req, 200, b);
    evbuffer_free(b);
}

/* Local answers keep only the entries of user (when one is asked). */
static void local_users(chat *c, struct evhttp_request *req, const char *user)
{
    size_t n, i, k = 0;
    rc_presence_entry *e = local_entries(c, NULL, &n);

    if (user == NULL) {
        reply_users(c, req, e, n, 1);
    } else {
        for (i = 0; i < n; i++)
            if (strcmp(e[i].user, user) == 0)
                e[k++] = e[i];
        reply_user(c, req, user, e, k, 1);
    }
    free(e);
}

static void on_online(rc_adapter *a, int err, const rc_presence_entry *e,
                      size_t n, void *user)
{
    query *q = user;
    rc_presence_entry *copy;

    (void)a;
    if (err != 0) {
        local_users(q->c, q->req, q->arg[0] ? q->arg : NULL);
    } else {
        copy = chat_malloc((n + 1) * sizeof *copy);
        if (n > 0)
            memcpy(copy, e, n * sizeof *copy);
        if (q->arg[0] != '\0') {
            size_t i;

            for (i = 0; i < n; i++)
                copy[i].user = q->arg;
            reply_user(q->c, q->req, q->arg, copy, n, 0);
        } else {
            reply_users(q->c, q->req, copy, n, 0);
        }
        free(copy);
    }
    query_free(q);
}

void presence_users(chat *c, struct evhttp_request *req, const char *user)
{
    query *q = query_new(c, req, user);
    int rc = user != NULL ? rc_presence_user(c->a, user, on_online, q)
                          : rc_presence_online(c->a, on_online, q);

    if (rc != 0) {
        local_users(c, req, user);
        query_free(q);
    }
}

/* ---- POST /rooms/{room}/leave {"connection":ID} ---------------------- */

void presence_leave(chat *c, struct evhttp_request *req, const char *room,
                    const char *conn_id)
{
    rc_conn *conn = conn_id != NULL ? rc_conn_find(c->a, conn_id) : NULL;

    if (conn == NULL || !rc_room_has(conn, room))
        return http_error(c, req, 404, "no such connection in this room");
    /* At once, without the grace; then the stream ends. */
    rc_room_leave_now(conn, room);
    stream_end(rc_conn_user(conn));
    http_count(c, 204);
    evhttp_send_reply(req, 204, NULL, NULL);
}
