/* Shared integration-test support: worlds, nodes, recorded connections
 * and the Redis side (see test_nodes.h). */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include "test_nodes.h"

char *ts_dupmem(const void *p, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- the world ------------------------------------------------------- */

int ts_world_setup(void **state, const char *const *args, int start)
{
    ts_world *w = calloc(1, sizeof *w);

    if (w == NULL)
        return -1;
    *state = w;
    if (start && rh_start(&w->rs, args) != 0) {
        fprintf(stderr, "rh_start: %s\n", w->rs.error);
        return -1;
    }
    return ts_loop_init(&w->loop);
}

void ts_start_redis(ts_world *w)
{
    if (rh_start(&w->rs, NULL) != 0)
        fail_msg("rh_start: %s", w->rs.error);
}

/*
 * The documented orders: rc_link_close, then rc_adapter_free; for async
 * contexts rc_adapter_free, then redisAsyncFree (hiredis then calls the
 * adapter's pending callbacks with NULL). Then the loop until nothing is
 * registered, then event_base_free.
 */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    ts_world *w = arg;
    struct timeval tv = {0, 0};
    int i;

    (void)fd;
    (void)what;
    for (i = 0; i < TS_MAX_NODES; i++)
        if (w->nodes[i].a != NULL)
            rc_adapter_tick(w->nodes[i].a, (unsigned long long)ts_now_ms());
    tv.tv_usec = w->tick_ms * 1000;
    evtimer_add(w->ticker, &tv);
}

void ts_world_tick(ts_world *w, int ms)
{
    struct timeval tv = {0, 0};

    w->tick_ms = ms;
    w->ticker = evtimer_new(w->loop.base, on_tick, w);
    assert_non_null(w->ticker);
    tv.tv_usec = ms * 1000;
    evtimer_add(w->ticker, &tv);
}

int ts_world_teardown(void **state)
{
    ts_world *w = *state;
    size_t i;
    int rc = 0, errors0;

    if (w == NULL)
        return 0;
    if (w->ticker != NULL) { /* the loop must go quiet */
        event_free(w->ticker);
        w->ticker = NULL;
    }
    errors0 = w->problems.count;
    for (i = 0; i < TS_MAX_NODES; i++)
        ts_node_close(&w->nodes[i]);
    for (i = 0; i < w->nctx; i++) {
        ts_ctx *l = &w->ctx[i];

        if (l->ac) {
            redisAsyncContext *ac = l->ac;

            l->ac = NULL;
            redisAsyncFree(ac);
        }
    }
    if (ts_loop_free(&w->loop, 3000) != 0) {
        fprintf(stderr, "teardown: the loop did not go quiet\n");
        rc = -1;
    }
    for (i = 0; i < w->nraw; i++)
        redisFree(w->raw[i]);
    for (i = 0; i < w->nrecs; i++) {
        free(w->recs[i].frame);
        free(w->recs[i].data);
        rc_frame_unref(w->recs[i].kept);
    }
    if (w->user_free != NULL)
        w->user_free(w->user);
    if (w->problems.count > errors0) {
        /* e.g. a sink or room event after rc_adapter_free */
        fprintf(stderr,
                "teardown: %d problem(s) seen inside callbacks; "
                "the first: %s\n",
                w->problems.count - errors0,
                errors0 ? "(see the test's own failure)" : w->problems.first);
        rc = -1;
    }
    if (rh_stop(&w->rs) != 0)
        rc = -1;
    free(w);
    return rc;
}

/* ---- nodes ------------------------------------------------------------ */

static void on_connect(const redisAsyncContext *ac, int status)
{
    ts_ctx *l = ac->data;

    if (status == REDIS_OK) {
        l->state = TS_CTX_UP;
    } else {
        l->state = TS_CTX_FAILED;
        l->ac = NULL; /* hiredis frees it after this callback */
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    ts_ctx *l = ac->data;
    ts_node *n = l->owner;

    (void)status;
    l->state = TS_CTX_DOWN;
    l->ac = NULL;
    /* The documented pattern: tell the adapter its context is gone. */
    if (l->attached && n->a) {
        l->attached = 0;
        if (l->is_sub)
            rc_adapter_set_sub(n->a, NULL);
        else
            rc_adapter_set_pub(n->a, NULL);
    }
    l->attached = 0;
}

ts_ctx *ts_ctx_connect(ts_world *w, ts_node *n, int is_sub)
{
    ts_ctx *l;
    redisAsyncContext *ac;
    char what[96];

    assert_true(w->nctx < TS_MAX_CTX);
    l = &w->ctx[w->nctx++];
    memset(l, 0, sizeof *l);
    l->owner = n;
    l->is_sub = is_sub;
    l->state = TS_CTX_CONNECTING;
    ac = redisAsyncConnect("127.0.0.1", w->rs.port);
    if (ac == NULL)
        fail_msg("redisAsyncConnect: out of memory");
    if (ac->err) {
        char err[128];

        snprintf(err, sizeof err, "%s", ac->errstr);
        redisAsyncFree(ac);
        fail_msg("redisAsyncConnect 127.0.0.1:%d: %s", w->rs.port, err);
    }
    ac->data = l;
    l->ac = ac;
    assert_int_equal(redisLibeventAttach(ac, w->loop.base), REDIS_OK);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    snprintf(what, sizeof what, "the %s context of %s to connect",
             is_sub ? "sub" : "pub", n->name);
    WAIT_FOR(w, l->state != TS_CTX_CONNECTING, what);
    if (l->state != TS_CTX_UP)
        fail_msg("%s: connection failed", what);
    return l;
}

void ts_on_room_event(rc_adapter *a, const char *room, int event, void *user)
{
    ts_node *n = user;
    ts_problems *p = &n->w->problems;

    if (n->freed)
        ts_note(p, "%s: room event %d for %s after rc_adapter_free", n->name,
                event, room);
    else if (a != n->a)
        ts_note(p, "%s: room event with a foreign adapter", n->name);
    if (event == RC_ROOM_READY)
        n->ready_events++;
    else if (event == RC_ROOM_LOST)
        n->lost_events++;
    else
        ts_note(p, "%s: unknown room event %d", n->name, event);
    if (n->nev < TS_MAX_EV) {
        snprintf(n->ev[n->nev].room, sizeof n->ev[n->nev].room, "%s", room);
        n->ev[n->nev].event = event;
    }
    n->nev++;
}

/* Node i, empty, named id. */
static ts_node *node_init(ts_world *w, int i, const char *id)
{
    ts_node *n = &w->nodes[i];

    assert_null(n->a);
    memset(n, 0, sizeof *n);
    n->w = w;
    n->last_state = -1;
    snprintf(n->name, sizeof n->name, "%s", id);
    return n;
}

/* The adapter holds both contexts and reports room events. */
static void node_attached(ts_node *n)
{
    n->pub->attached = 1;
    n->sub->attached = 1;
    rc_adapter_set_room_cb(n->a, ts_on_room_event, n);
}

ts_node *ts_node_up(ts_world *w, int i, const char *prefix, const char *id)
{
    ts_node *n = node_init(w, i, id);

    n->pub = ts_ctx_connect(w, n, 0);
    n->sub = ts_ctx_connect(w, n, 1);
    n->a = rc_adapter_new(n->pub->ac, n->sub->ac, prefix, id);
    assert_non_null(n->a);
    node_attached(n);
    assert_string_equal(rc_adapter_node_id(n->a), id);
    return n;
}

ts_node *ts_node_up_opts(ts_world *w, int i, const rc_adapter_options *opts)
{
    ts_node *n = node_init(w, i, opts->node_id);
    int rc;

    n->pub = ts_ctx_connect(w, n, 0);
    n->sub = ts_ctx_connect(w, n, 1);
    rc = rc_adapter_open(opts, n->pub->ac, n->sub->ac, &n->a);
    if (rc != 0)
        fail_msg("rc_adapter_open: %s", rc_strerror(rc));
    node_attached(n);
    return n;
}

ts_node *ts_node_open_(ts_world *w, int i, const char *id)
{
    ts_node *n = node_init(w, i, id);
    rc_adapter_options ao;
    int rc;

    memset(&ao, 0, sizeof ao);
    ao.node_id = id;
    rc = rc_adapter_open(&ao, NULL, NULL, &n->a);
    if (rc != 0)
        fail_msg("rc_adapter_open(%s): %s", id, rc_strerror(rc));
    rc_adapter_set_room_cb(n->a, ts_on_room_event, n);
    return n;
}

void ts_node_close(ts_node *n)
{
    if (n->link) {
        rc_link *l = n->link;

        n->closed = 1;
        n->link = NULL;
        n->close_link(l);
    }
    if (n->a) {
        rc_adapter *a = n->a;

        n->freed = 1;
        n->a = NULL;
        rc_adapter_free(a);
    }
}

long ts_first_since(const ts_node *n, size_t mark, int state)
{
    size_t i;

    for (i = mark; i < n->ntr && i < TS_MAX_TR; i++)
        if (n->tr[i].state == state)
            return (long)i;
    return -1;
}

const char *ts_events_since(const ts_node *n, size_t mark, const char *room)
{
    static char out[64];
    size_t i, k = 0;

    for (i = mark; i < n->nev && i < TS_MAX_EV; i++) {
        if (strcmp(n->ev[i].room, room) != 0)
            continue;
        if (k + 1 < sizeof out)
            out[k++] = n->ev[i].event == RC_ROOM_READY  ? 'R'
                       : n->ev[i].event == RC_ROOM_LOST ? 'L'
                                                        : '?';
    }
    out[k] = '\0';
    return out;
}

rc_counters ts_ctr(const ts_node *n)
{
    rc_counters c;

    memset(&c, 0xa5, sizeof c);
    rc_adapter_counters(n->a, &c, sizeof c);
    return c;
}

int ts_is_quiet(const ts_node *n)
{
    rc_counters c = ts_ctr(n);

    return c.subscribes_sent == c.subscribes_confirmed &&
           c.unsubscribes_sent == c.unsubscribes_confirmed;
}

static int pred_quiet(void *arg)
{
    return ts_is_quiet(arg);
}

void ts_wait_quiet_(ts_world *w, ts_node *n, const char *file, int line)
{
    char what[96];

    snprintf(what, sizeof what, "%s: every SUBSCRIBE/UNSUBSCRIBE confirmed",
             n->name);
    ts_run_until(&w->loop, pred_quiet, n, TS_WAIT_MS, what, file, line);
}

struct ready_arg {
    ts_node *n;
    const char *room;
};

static int pred_ready(void *arg)
{
    struct ready_arg *r = arg;

    return rc_room_is_ready(r->n->a, r->room) == 1;
}

void ts_wait_ready_(ts_world *w, ts_node *n, const char *room, const char *file,
                    int line)
{
    char what[160];
    struct ready_arg r;

    r.n = n;
    r.room = room;
    snprintf(what, sizeof what, "%s: room \"%s\" ready (SUBSCRIBE confirmed)",
             n->name, room);
    ts_run_until(&w->loop, pred_ready, &r, TS_WAIT_MS, what, file, line);
}

/* ---- connections ------------------------------------------------------ */

/* The frame must be rc_sse_format() of the message. */
static void check_frame(ts_rec *r, rc_frame *f, const rc_message *m)
{
    ts_problems *p = &r->w->problems;
    size_t need = 0;
    char *buf;
    int rc;

    rc = rc_sse_format(m, NULL, 0, &need);
    if (rc != RC_ENOBUFS && rc != 0) {
        ts_note(p, "%s: rc_sse_format of the delivered message: %s", r->id,
                rc_strerror(rc));
        return;
    }
    buf = malloc(need ? need : 1);
    if (buf == NULL) {
        ts_note(p, "out of memory");
        return;
    }
    rc = rc_sse_format(m, buf, need, &need);
    if (rc != 0 || rc_frame_data(f) == NULL || need != rc_frame_size(f) ||
        memcmp(buf, rc_frame_data(f), need) != 0)
        ts_note(p, "%s: the frame is not rc_sse_format() of the message",
                r->id);
    free(buf);
}

/* N of data that starts with head and digits, or -1. */
static int number_after(const rc_message *m, const char *head)
{
    size_t i = strlen(head);
    int v = 0;

    if (m->data_len <= i || memcmp(m->data, head, i) != 0)
        return -1;
    for (; i < m->data_len && m->data[i] >= '0' && m->data[i] <= '9'; i++)
        v = v * 10 + (m->data[i] - '0');
    return v;
}

static void record(ts_rec *r, rc_frame *f, const rc_message *m)
{
    int seq;

    if (r->count++ == 0)
        r->first_t = ts_now_ms();
    free(r->frame);
    r->frame = ts_dupmem(rc_frame_data(f), rc_frame_size(f));
    r->frame_len = rc_frame_size(f);
    free(r->data);
    r->data = ts_dupmem(m->data, m->data_len);
    r->data_len = m->data_len;
    r->has_event = m->event != NULL;
    snprintf(r->event, sizeof r->event, "%s", m->event ? m->event : "");
    r->has_id = m->id != NULL;
    snprintf(r->msgid, sizeof r->msgid, "%s", m->id ? m->id : "");
    r->retry = m->retry;
    seq = number_after(m, "{\"seq\":");
    if (seq >= 0) {
        if (r->nseq < TS_MAX_SEQ)
            r->seqs[r->nseq] = seq;
        r->nseq++;
    }
}

int ts_sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    ts_rec *r = user;
    ts_problems *p = &r->w->problems;

    if (r->removed) {
        ts_note(p, "%s: sink called after rc_conn_remove", r->id);
        return 0;
    }
    if (r->owner->freed) {
        ts_note(p, "%s: sink called after rc_adapter_free", r->id);
        return 0;
    }
    if (c != r->conn || rc_conn_user(c) != r ||
        rc_conn_adapter(c) != r->owner->a || strcmp(rc_conn_id(c), r->id))
        ts_note(p, "%s: sink called with a wrong connection", r->id);
    if (f == NULL || m == NULL || m->data == NULL) {
        ts_note(p, "%s: sink called without frame or message", r->id);
        return 0;
    }
    check_frame(r, f, m);
    if (m->event && strcmp(m->event, "marker") == 0) {
        int v = number_after(m, "{\"marker\":");

        r->markers++;
        if (v > r->last_marker)
            r->last_marker = v;
        return r->ret;
    }
    record(r, f, m);
    if (r->hook)
        r->hook(r, c, f, m);
    return r->ret;
}

ts_rec *ts_add_conn(ts_node *n, const char *id)
{
    ts_world *w = n->w;
    ts_rec *r;
    int rc;

    assert_true(w->nrecs < TS_MAX_RECS);
    r = &w->recs[w->nrecs++];
    memset(r, 0, sizeof *r);
    r->w = w;
    r->owner = n;
    snprintf(r->id, sizeof r->id, "%s", id);
    rc = rc_conn_add(n->a, id, ts_sink, r, &r->conn);
    if (rc != 0)
        fail_msg("rc_conn_add(%s, %s): %s", n->name, id, rc_strerror(rc));
    assert_ptr_equal(rc_conn_find(n->a, id), r->conn);
    assert_string_equal(rc_conn_id(r->conn), id);
    assert_ptr_equal(rc_conn_user(r->conn), r);
    assert_ptr_equal(rc_conn_adapter(r->conn), n->a);
    return r;
}

void ts_join(ts_rec *r, const char *room)
{
    int rc = rc_room_join(r->conn, room);

    if (rc != 1)
        fail_msg("rc_room_join(%s, \"%s\") = %d, expected 1 (joined)", r->id,
                 room, rc);
}

void ts_leave(ts_rec *r, const char *room)
{
    int rc = rc_room_leave(r->conn, room);

    if (rc != 1)
        fail_msg("rc_room_leave(%s, \"%s\") = %d, expected 1 (left)", r->id,
                 room, rc);
}

rc_message ts_msg(const char *event, const char *data, const char *id)
{
    rc_message m = RC_MESSAGE_INIT;

    m.event = event;
    m.data = data;
    m.data_len = data ? strlen(data) : 0;
    m.id = id;
    return m;
}

int ts_bcast(ts_node *n, const char *room, const char *event, const char *data,
             const char *except, unsigned flags)
{
    rc_message m = ts_msg(event, data, NULL);

    return rc_broadcast_to_room(n->a, room, &m, except, flags);
}

struct marker_arg {
    ts_rec *to;
    int number;
};

static int pred_marker(void *arg)
{
    struct marker_arg *m = arg;

    return m->to->last_marker >= m->number;
}

/* Markers are numbered, so that an earlier marker arriving late (e.g. one
 * sent for another member of the room) does not end the wait. */
void ts_sync_marker_(ts_world *w, ts_node *from, const char *room, ts_rec *to,
                     const char *file, int line)
{
    struct marker_arg m;
    int rc;
    char what[160], data[32];

    m.to = to;
    m.number = ++w->marker_seq;
    snprintf(data, sizeof data, "{\"marker\":%d}", m.number);
    rc = ts_bcast(from, room, "marker", data, NULL, 0);
    if (rc < 0)
        fail_msg("%s:%d: marker broadcast: %s", file, line, rc_strerror(rc));
    snprintf(what, sizeof what, "%s to receive a marker sent by %s to \"%s\"",
             to->id, from->name, room);
    ts_run_until(&w->loop, pred_marker, &m, TS_WAIT_MS, what, file, line);
}

/* ---- the Redis side ---------------------------------------------------- */

long long ts_numsub(ts_world *w, const char *channel)
{
    return rh_numsub(&w->rs, channel);
}

int ts_cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

void ts_strlist_free(ts_strlist *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

ts_strlist ts_pubsub_channels(ts_world *w, const char *pattern)
{
    ts_strlist l = {NULL, 0};
    redisReply *r = rh_cmd(&w->rs, "PUBSUB CHANNELS %s", pattern);
    size_t i;
    int ok;

    ok = r && r->type == REDIS_REPLY_ARRAY;
    if (ok) {
        l.v = calloc(r->elements + 1, sizeof *l.v);
        for (i = 0; l.v && i < r->elements; i++)
            l.v[l.n++] = ts_dupmem(r->element[i]->str, r->element[i]->len);
        ok = l.v != NULL;
    }
    if (r)
        freeReplyObject(r);
    if (!ok)
        fail_msg("PUBSUB CHANNELS %s failed", pattern);
    qsort(l.v, l.n, sizeof *l.v, ts_cmp_str);
    return l;
}

/* CLIENT LIST, or NULL. */
static redisReply *client_list(ts_world *w)
{
    redisReply *r = rh_cmd(&w->rs, "CLIENT LIST");

    if (r != NULL && r->type != REDIS_REPLY_STRING &&
        r->type != REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

int ts_clients_named(ts_world *w, const char *name, unsigned long long *ids,
                     int max)
{
    redisReply *r = client_list(w);
    const char *p;
    size_t nl = strlen(name);
    int count = 0;

    if (r == NULL)
        return -1;
    for (p = r->str; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        const char *q = strstr(p, " name=");

        if (q != NULL && (eol == NULL || q < eol) &&
            strncmp(q + 6, name, nl) == 0 &&
            (q[6 + nl] == ' ' || q[6 + nl] == '\r' || q[6 + nl] == '\n' ||
             q[6 + nl] == '\0')) {
            if (count < max && strncmp(p, "id=", 3) == 0)
                ids[count] = strtoull(p + 3, NULL, 10);
            count++;
        }
        p = eol ? eol + 1 : NULL;
    }
    freeReplyObject(r);
    return count;
}

int ts_client_alive(ts_world *w, unsigned long long id)
{
    redisReply *r = client_list(w);
    char needle[40];
    const char *p;
    int found = 0;

    if (r == NULL)
        return -1;
    snprintf(needle, sizeof needle, "id=%llu ", id);
    for (p = r->str; p != NULL && *p != '\0' && !found;) {
        const char *eol = strchr(p, '\n');

        if (strncmp(p, needle, strlen(needle)) == 0)
            found = 1;
        p = eol ? eol + 1 : NULL;
    }
    freeReplyObject(r);
    return found;
}

void ts_reply_ok(redisReply *r, const char *what)
{
    char err[256];

    if (r != NULL && r->type != REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        return;
    }
    snprintf(err, sizeof err, "%s", r ? r->str : "no reply");
    if (r)
        freeReplyObject(r);
    fail_msg("%s: %s", what, err);
}

long long ts_reply_int(redisReply *r)
{
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    if (r)
        freeReplyObject(r);
    return n;
}

char *ts_envelope(const char *from, const char *event, const char *data,
                  size_t data_len, size_t *len)
{
    rc_envelope env;
    char *buf;
    size_t need = 0;
    int rc;

    memset(&env, 0, sizeof env);
    env.msg = ts_msg(event, data, NULL);
    env.msg.data_len = data_len;
    env.node = from;
    rc = rc_envelope_encode(&env, NULL, NULL, 0, &need);
    if (rc != RC_ENOBUFS)
        fail_msg("rc_envelope_encode (size): %s", rc_strerror(rc));
    buf = malloc(need);
    assert_non_null(buf);
    rc = rc_envelope_encode(&env, NULL, buf, need, len);
    if (rc != 0) {
        free(buf);
        fail_msg("rc_envelope_encode: %s", rc_strerror(rc));
    }
    return buf;
}

long long ts_publish_env(ts_world *w, const char *channel, const char *from,
                         const char *event, const char *data)
{
    size_t len = 0;
    char *env = ts_envelope(from, event, data, strlen(data), &len);
    long long n = rh_publish(&w->rs, channel, env, len);

    free(env);
    return n;
}

redisContext *ts_raw(ts_world *w)
{
    redisContext *c;

    assert_true(w->nraw < TS_MAX_RAW);
    c = rh_connect(&w->rs);
    assert_non_null(c);
    w->raw[w->nraw++] = c;
    return c;
}

redisContext *ts_raw_sub(ts_world *w, const char *channel)
{
    redisContext *c = ts_raw(w);
    redisReply *r;
    int ok;

    r = redisCommand(c, "SUBSCRIBE %s", channel);
    ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3;
    if (r)
        freeReplyObject(r);
    if (!ok)
        fail_msg("raw SUBSCRIBE %s failed", channel);
    return c;
}

void ts_raw_next(redisContext *c, char **channel, char **payload, size_t *len)
{
    void *p = NULL;
    redisReply *r;
    int ok;

    if (redisGetReply(c, &p) != REDIS_OK || p == NULL)
        fail_msg("raw subscriber: no message within %d ms (%s)",
                 RH_IO_TIMEOUT_MS, c->errstr);
    r = p;
    ok = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
         r->element[0]->type == REDIS_REPLY_STRING &&
         strcmp(r->element[0]->str, "message") == 0;
    if (ok) {
        *channel = ts_dupmem(r->element[1]->str, r->element[1]->len);
        *payload = ts_dupmem(r->element[2]->str, r->element[2]->len);
        *len = r->element[2]->len;
    }
    freeReplyObject(r);
    if (!ok)
        fail_msg("raw subscriber: unexpected reply");
}

void ts_decode(const char *payload, size_t len, rc_envelope *env, char *scratch,
               size_t cap)
{
    int rc = rc_envelope_decode(payload, len, NULL, env, scratch, cap);

    if (rc != 0)
        fail_msg("the adapter published an envelope that does not decode: "
                 "%s",
                 rc_strerror(rc));
}

/* ---- an accounting allocator ------------------------------------------ */

#define ACCT_HDR 16
static const char acct_magic[8] = {'r', 'c', 't', 'e', 's', 't', 'm', 'm'};

/* Count a call; 1 if it is to fail. */
static int acct_fails(ts_acct *a, int is_realloc)
{
    a->calls++;
    if (a->fail_all || (is_realloc && a->fail_realloc) ||
        a->calls == a->fail_at) {
        a->failed++;
        return 1;
    }
    return 0;
}

static void *acct_block(ts_acct *a, size_t n)
{
    unsigned char *p = malloc(n + ACCT_HDR);

    if (p == NULL)
        return NULL;
    memcpy(p, acct_magic, sizeof acct_magic);
    a->live++;
    return p + ACCT_HDR;
}

static void *acct_malloc(size_t n, void *user)
{
    return acct_fails(user, 0) ? NULL : acct_block(user, n);
}

static void *acct_realloc(void *ptr, size_t n, void *user)
{
    ts_acct *a = user;
    unsigned char *h, *p;

    if (acct_fails(a, 1))
        return NULL;
    if (ptr == NULL)
        return acct_block(a, n);
    h = (unsigned char *)ptr - ACCT_HDR;
    if (memcmp(h, acct_magic, sizeof acct_magic) != 0) {
        a->foreign++;
        return NULL;
    }
    p = realloc(h, n + ACCT_HDR);
    return p ? p + ACCT_HDR : NULL;
}

static void acct_free(void *ptr, void *user)
{
    ts_acct *a = user;
    unsigned char *h;

    if (ptr == NULL)
        return;
    h = (unsigned char *)ptr - ACCT_HDR;
    if (memcmp(h, acct_magic, sizeof acct_magic) != 0) {
        a->foreign++;
        return;
    }
    memset(h, 0, sizeof acct_magic);
    a->live--;
    free(h);
}

rc_alloc ts_acct_hooks(ts_acct *acct)
{
    rc_alloc h;

    h.malloc_fn = acct_malloc;
    h.realloc_fn = acct_realloc;
    h.free_fn = acct_free;
    h.user = acct;
    return h;
}
