/*
 * rc-chat's member lists: who is in a room, across nodes.
 *
 * One Redis hash per room, field = connection id, value =
 * "<expires ms>\t<node>\t<user>". Each node writes its own streams at hello
 * and at every heartbeat, and deletes them when they end; readers skip
 * (and delete) expired fields, left by nodes that died.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "chat.h"
#include "text.h"

#define PRESENCE_KEY "rc-chat:members:"

typedef struct members_query {
    chat *c;
    struct evhttp_request *req;
    char *room;
} members_query;

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
    snprintf(val, sizeof val, "%lld\t", chat_now_ms() + ttl);
    redisAsyncCommand(ac, NULL, NULL, "HSET %b %s %s%s\t%s", key, klen,
                      rc_conn_id(s->conn), val, rc_adapter_node_id(c->a),
                      s->user);
    redisAsyncCommand(ac, NULL, NULL, "PEXPIRE %b %lld", key, klen, ttl);
    free(key);
}

void presence_del(stream *s)
{
    chat *c = s->c;
    redisAsyncContext *ac = rc_link_pub(c->link);
    char *key;
    size_t klen;

    if (ac == NULL)
        return;
    key = presence_key(c, s->room, &klen);
    if (redisAsyncCommand(ac, c->stopping ? shutdown_hdel_done : NULL, c,
                          "HDEL %b %s", key, klen,
                          rc_conn_id(s->conn)) == REDIS_OK &&
        c->stopping)
        c->pending++;
    free(key);
}

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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The field names of the HGETALL reply r, sorted for bsearch, in *n; NULL
 * when there are none. The caller frees the array. */
static const char **sorted_fields(const redisReply *r, size_t *n)
{
    const char **f;
    size_t i, k = 0;

    *n = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return NULL;
    f = chat_malloc(r->elements / 2 * sizeof *f);
    for (i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            f[k++] = r->element[i]->str;
    qsort(f, k, sizeof *f, cmp_str);
    *n = k;
    return f;
}

/* Add the live entries of the Redis hash r to b; delete the expired and
 * malformed ones (when ac is not NULL). */
static void add_hash_members(chat *c, struct evbuffer *b, int *first,
                             const char *room, const redisReply *r,
                             redisAsyncContext *ac)
{
    long long now = chat_now_ms();
    size_t i;

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
        add_member(b, first, f->str, (size_t)f->len, node,
                   (size_t)(user - node), user + 1, strlen(user + 1));
    }
}

/* Add this node's streams in room that the hash r does not list: each
 * looked up in r's sorted fields, so the answer costs O(n log n). */
static void add_local_members(chat *c, struct evbuffer *b, int *first,
                              const char *room, const redisReply *r)
{
    const char *node = rc_adapter_node_id(c->a), **fields;
    size_t nf, n = rc_room_members(c->a, room, NULL, 0), i;
    rc_conn **members;

    if (n == 0)
        return;
    members = chat_malloc(n * sizeof *members);
    n = rc_room_members(c->a, room, members, n);
    fields = sorted_fields(r, &nf);
    for (i = 0; i < n; i++) {
        stream *s = rc_conn_user(members[i]);
        const char *id = rc_conn_id(members[i]);

        if (!s->hello ||
            (nf > 0 && bsearch(&id, fields, nf, sizeof *fields, cmp_str)))
            continue;
        add_member(b, first, id, strlen(id), node, strlen(node), s->user,
                   strlen(s->user));
    }
    free(fields);
    free(members);
}

/* Answer GET /rooms/{room}: the Redis hash r (or NULL), plus this node's
 * streams missing from it. */
static void members_reply(chat *c, struct evhttp_request *req, const char *room,
                          const redisReply *r, redisAsyncContext *ac)
{
    struct evbuffer *b = evbuffer_new();
    int first = 1;

    evbuffer_add_printf(b, "{\"room\":");
    http_add_json_str(b, room);
    evbuffer_add_printf(b, ",\"members\":[");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY)
        add_hash_members(c, b, &first, room, r, ac);
    add_local_members(c, b, &first, room, r);
    evbuffer_add(b, "]}", 2);
    http_reply_json(c, req, 200, b);
    evbuffer_free(b);
}

static void on_members(redisAsyncContext *ac, void *r, void *priv)
{
    members_query *q = priv;

    members_reply(q->c, q->req, q->room, r, r != NULL ? ac : NULL);
    free(q->room);
    free(q);
}

void presence_reply(chat *c, struct evhttp_request *req, const char *room)
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
