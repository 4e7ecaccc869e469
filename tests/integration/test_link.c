/*
 * rc_link (roomcast/libevent.h) against a real redis-server: links come
 * up from a URL, name their connections, survive kill -9 / restart,
 * start before Redis does, authenticate (password and ACL user), back off
 * on a wrong password, come back after CLIENT KILL, and shut down clean.
 *
 * Every test gets its own redis-server (redis_harness) and event_base; a
 * "node" is one adapter plus one rc_link on that base (A and B, and in one
 * test a third). Timings are small (probe 200 ms, backoff 50..500 ms) so
 * that recovery is quick.
 *
 * Synchronisation is never a sleep: the loop is driven one non-blocking
 * turn at a time until a condition holds, with a deadline and a message
 * saying what was awaited; between idle turns the loop blocks at most 1 ms
 * on a guard timer (the style of test_adapter_redis.c). Conditions that
 * need a PUBSUB answer from the server are polled at most every 20 ms.
 *
 * No assertion runs inside a callback: callbacks record, ts_note(&() notes
 * problems)->problems, and every test ends with assert_clean().
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "redis_harness.h"
#include "roomcast/libevent.h"
#include "roomcast/roomcast.h"

#ifndef WAIT_MS
#define WAIT_MS 10000 /* default deadline of one wait */
#endif
#define MAX_NODES 3
#define MAX_RECS 4
#define MAX_LOG 64
#define PREFIX RC_DEFAULT_PREFIX

#define BACKOFF_MIN 50u
#define BACKOFF_MAX 500u
#define PROBE_MS 200u

typedef struct world world;
typedef struct node node;

/* One local connection and what its sink saw. */
typedef struct rec {
    node *owner;
    char id[32];
    rc_conn *conn;
    int count;
    char data[128];
} rec;

struct node {
    world *w;
    char id[16];
    rc_adapter *a;
    rc_link *link;
    int closed; /* rc_link_close was called */
    /* state callback */
    unsigned long ups, downs, calls;
    int last_state; /* -1: no call yet */
    char last_down_reason[256];
    struct {
        int state;
        char reason[96];
    } log[MAX_LOG];
    /* room events */
    unsigned long ready_events, lost_events;
    rec recs[MAX_RECS];
    int nrecs;
};

struct world {
    rh_server rs;
    struct event_base *base;
    struct event *guard;
    node nodes[MAX_NODES];
    ts_problems problems;
};

/* ---- small utilities ------------------------------------------------ */

/* ---- the loop ---------------------------------------------------------- */

static void dump(const world *w);

static void dump_any(const void *w)
{
    dump(w);
}
#define run_until_(w, pred, arg, ms, what, file, line)                         \
    ts_run_until((w)->base, (w)->guard, (pred), (arg), (ms), (what), (file),   \
                 (line), dump_any, (w))
#define run_until(w, pred, arg, ms, what)                                      \
    run_until_((w), (pred), (arg), (ms), (what), __FILE__, __LINE__)

#define WAIT_FOR_MS(w, cond, ms, what)                                         \
    TS_WAIT_FOR((w)->base, (w)->guard, cond, ms, what, dump(w))
#define WAIT_FOR(w, cond, what) WAIT_FOR_MS(w, cond, WAIT_MS, what)

/* Run the loop for ms milliseconds (a measurement window, not a wait for
 * something to happen). */
static void run_for(world *w, int ms)
{
    long long end = ts_now_ms() + ms;

    while (ts_now_ms() < end) {
        ts_pump((w)->base);
        ts_idle((w)->base, (w)->guard);
    }
}

/* ---- nodes -------------------------------------------------------------- */

static void on_state(rc_link *link, int state, const char *reason, void *user)
{
    node *n = user;
    world *w = n->w;

    if (n->closed && n->link == NULL) {
        /* a call from inside rc_link_close is tolerated, later ones not */
        return;
    }
    if (link != n->link && n->link != NULL)
        ts_note(&(w)->problems, "%s: state callback with a foreign link",
                n->id);
    if (state != RC_LINK_UP && state != RC_LINK_DOWN)
        ts_note(&(w)->problems, "%s: state callback with state %d", n->id,
                state);
    if (reason == NULL)
        ts_note(&(w)->problems, "%s: state callback with a NULL reason", n->id);
    /* DOWN again with a new reason is reported (the implementation calls
     * on a change of reason too); the same state and reason twice is not */
    if (n->last_state == state &&
        (state == RC_LINK_UP ||
         (reason && strcmp(reason, n->last_down_reason) == 0)))
        ts_note(&(w)->problems,
                "%s: state callback repeated state %d (reason %s)", n->id,
                state, reason ? reason : "(null)");
    if (n->link != NULL && rc_link_state(link) != state)
        ts_note(&(w)->problems,
                "%s: state callback says %d, rc_link_state says %d", n->id,
                state, rc_link_state(link));
    if (n->calls < MAX_LOG) {
        n->log[n->calls].state = state;
        snprintf(n->log[n->calls].reason, sizeof n->log[n->calls].reason, "%s",
                 reason ? reason : "(null)");
    }
    n->calls++;
    n->last_state = state;
    if (state == RC_LINK_UP) {
        n->ups++;
    } else {
        n->downs++;
        snprintf(n->last_down_reason, sizeof n->last_down_reason, "%s",
                 reason ? reason : "(null)");
        if (reason && reason[0] == '\0')
            ts_note(&(w)->problems, "%s: DOWN with an empty reason", n->id);
    }
}

static void on_room_event(rc_adapter *a, const char *room, int event,
                          void *user)
{
    node *n = user;

    (void)room;
    if (a != n->a)
        ts_note(&(n->w)->problems, "%s: room event with a foreign adapter",
                n->id);
    if (event == RC_ROOM_READY)
        n->ready_events++;
    else if (event == RC_ROOM_LOST)
        n->lost_events++;
    else
        ts_note(&(n->w)->problems, "%s: unknown room event %d", n->id, event);
}

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    rec *r = user;
    size_t n =
        m->data_len < sizeof r->data - 1 ? m->data_len : sizeof r->data - 1;

    (void)f;
    if (c != r->conn)
        ts_note(&(r->owner->w)->problems, "%s: sink for the wrong connection",
                r->id);
    memcpy(r->data, m->data, n);
    r->data[n] = '\0';
    r->count++;
    return 0;
}

static void url_of(world *w, char *buf, size_t cap, const char *userinfo)
{
    if (userinfo)
        snprintf(buf, cap, "redis://%s@127.0.0.1:%d", userinfo, w->rs.port);
    else
        snprintf(buf, cap, "redis://127.0.0.1:%d", w->rs.port);
}

/* Node i with id, linked through url (the adapter is created first). */
static node *node_open(world *w, int i, const char *id, const char *url)
{
    node *n = &w->nodes[i];
    rc_adapter_options ao;
    rc_link_options lo;
    int rc;

    assert_null(n->a);
    memset(n, 0, sizeof *n);
    n->w = w;
    n->last_state = -1;
    snprintf(n->id, sizeof n->id, "%s", id);
    memset(&ao, 0, sizeof ao);
    ao.node_id = id;
    rc = rc_adapter_open(&ao, NULL, NULL, &n->a);
    if (rc != 0)
        fail_msg("rc_adapter_open: %s", rc_strerror(rc));
    rc_adapter_set_room_cb(n->a, on_room_event, n);

    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.connect_timeout_ms = 1000;
    lo.backoff_min_ms = BACKOFF_MIN;
    lo.backoff_max_ms = BACKOFF_MAX;
    lo.probe_interval_ms = PROBE_MS;
    lo.state_cb = on_state;
    lo.user = n;
    rc = rc_link_open(n->a, w->base, &lo, &n->link);
    if (rc != 0)
        fail_msg("rc_link_open(%s): %s", url, rc_strerror(rc));
    assert_non_null(n->link);
    return n;
}

/* rc_link_close, then rc_adapter_free (the documented order). */
static void node_close(node *n)
{
    if (n->link) {
        rc_link *l = n->link;

        n->closed = 1;
        n->link = NULL;
        rc_link_close(l);
    }
    if (n->a) {
        rc_adapter *a = n->a;

        n->a = NULL;
        rc_adapter_free(a);
    }
}

static int pred_up(void *arg)
{
    node *n = arg;

    return rc_link_state(n->link) == RC_LINK_UP && n->last_state == RC_LINK_UP;
}

static void wait_up_(world *w, node *n, int ms, const char *file, int line)
{
    char what[160];

    snprintf(what, sizeof what, "link of %s UP (last reason: %s)", n->id,
             rc_link_reason(n->link));
    run_until_(w, pred_up, n, ms, what, file, line);
}
#define wait_up(w, n) wait_up_((w), (n), WAIT_MS, __FILE__, __LINE__)

static rec *add_conn(node *n, const char *id)
{
    rec *r;
    int rc;

    assert_true(n->nrecs < MAX_RECS);
    r = &n->recs[n->nrecs++];
    memset(r, 0, sizeof *r);
    r->owner = n;
    snprintf(r->id, sizeof r->id, "%s", id);
    rc = rc_conn_add(n->a, id, sink, r, &r->conn);
    if (rc != 0)
        fail_msg("rc_conn_add(%s): %s", id, rc_strerror(rc));
    return r;
}

static void join(rec *r, const char *room)
{
    assert_int_equal(rc_room_join(r->conn, room), 1);
}

static rc_counters ctr(const node *n)
{
    rc_counters c;

    rc_adapter_counters(n->a, &c, sizeof c);
    return c;
}

static int bcast(node *n, const char *room, const char *data)
{
    rc_message m = RC_MESSAGE_INIT;

    m.data = data;
    m.data_len = strlen(data);
    return rc_broadcast_to_room(n->a, room, &m, NULL, 0);
}

static long long numsub(world *w, const char *room)
{
    char ch[128];

    snprintf(ch, sizeof ch, "%s%s", PREFIX, room);
    return rh_numsub(&w->rs, ch);
}

/* The nodes are UP, their rooms with members all confirmed, and (polled
 * at most every 20 ms) each room's channel has `want` subscribers on the
 * server. */
typedef struct subs_check {
    world *w;
    node *nodes[MAX_NODES];
    int nnodes;
    const char *const *rooms;
    int nrooms;
    long long want;
    long long next_poll;
} subs_check;

/* Check for nrooms rooms subscribed want times, with node a (and b, if
 * not NULL) up. */
static void subs_init(subs_check *sc, world *w, node *a, node *b,
                      const char *const *rooms, int nrooms, long long want)
{
    memset(sc, 0, sizeof *sc);
    sc->w = w;
    sc->nodes[sc->nnodes++] = a;
    if (b != NULL)
        sc->nodes[sc->nnodes++] = b;
    sc->rooms = rooms;
    sc->nrooms = nrooms;
    sc->want = want;
}

static int pred_subscribed(void *arg)
{
    subs_check *s = arg;
    int i, j;

    for (i = 0; i < s->nnodes; i++) {
        if (!pred_up(s->nodes[i]))
            return 0;
        for (j = 0; j < s->nrooms; j++)
            if (rc_room_size(s->nodes[i]->a, s->rooms[j]) > 0 &&
                !rc_room_is_ready(s->nodes[i]->a, s->rooms[j]))
                return 0;
    }
    if (ts_now_ms() < s->next_poll)
        return 0;
    s->next_poll = ts_now_ms() + 20;
    for (j = 0; j < s->nrooms; j++)
        if (numsub(s->w, s->rooms[j]) != s->want)
            return 0;
    return 1;
}

/* B's connection r receives a broadcast of data from `from` on room:
 * resent every 100 ms until it arrives (a first one may race a
 * resubscription). */
static void deliver_(world *w, node *from, const char *room, rec *r,
                     const char *data, const char *file, int line)
{
    long long deadline = ts_now_ms() + WAIT_MS, resend = 0;
    int before = r->count;

    for (;;) {
        if (r->count > before && strcmp(r->data, data) == 0)
            return;
        if (ts_now_ms() >= deadline)
            fail_msg("%s:%d: %s never got %s on %s from %s (got %d)", file,
                     line, r->id, data, room, from->id, r->count - before);
        if (ts_now_ms() >= resend) {
            if (bcast(from, room, data) < 0)
                fail_msg("%s:%d: broadcast failed", file, line);
            resend = ts_now_ms() + 100;
        }
        ts_pump((w)->base);
        ts_idle((w)->base, (w)->guard);
    }
}
#define deliver(w, from, room, r, data)                                        \
    deliver_((w), (from), (room), (r), (data), __FILE__, __LINE__)

/* What the nodes look like, for a failure message. */
static void dump(const world *w)
{
    int i;
    unsigned long k;

    for (i = 0; i < MAX_NODES; i++) {
        const node *n = &w->nodes[i];

        if (n->link == NULL)
            continue;
        fprintf(stderr,
                "# %s: state %d reason \"%s\" connects %lu failures %lu; "
                "callback: %lu calls (%lu up, %lu down), room events %lu "
                "ready %lu lost\n",
                n->id, rc_link_state(n->link), rc_link_reason(n->link),
                rc_link_connects(n->link), rc_link_failures(n->link), n->calls,
                n->ups, n->downs, n->ready_events, n->lost_events);
        for (k = n->calls > 8 ? n->calls - 8 : 0; k < n->calls && k < MAX_LOG;
             k++)
            fprintf(stderr, "#   cb %lu: %s %s\n", k,
                    n->log[k].state == RC_LINK_UP ? "UP" : "DOWN",
                    n->log[k].reason);
    }
    if (w->problems.count)
        fprintf(stderr, "# %d callback problem(s), first: %s\n",
                w->problems.count, w->problems.first);
}

/* ---- fixture -------------------------------------------------------- */

static int world_new(void **state, const char *const *args, int start)
{
    world *w = calloc(1, sizeof *w);

    if (w == NULL)
        return -1;
    *state = w;
    if (start && rh_start(&w->rs, args) != 0) {
        fprintf(stderr, "rh_start: %s\n", w->rs.error);
        return -1;
    }
    w->base = event_base_new();
    if (w->base == NULL)
        return -1;
    w->guard = ts_guard_new(w->base);
    return w->guard ? 0 : -1;
}

static int setup(void **state)
{
    return world_new(state, NULL, 1);
}

static int setup_nostart(void **state)
{
    return world_new(state, NULL, 0);
}

static int setup_pass(void **state)
{
    static const char *const args[] = {"--requirepass", "sekret", NULL};

    return world_new(state, args, 1);
}

/* rc_link_close and rc_adapter_free for every node, then the loop must go
 * quiet (nothing left registered) before event_base_free. */
static int teardown(void **state)
{
    world *w = *state;
    int i, rc = 0, errors0;
    long long deadline;

    if (w == NULL)
        return 0;
    errors0 = w->problems.count;
    for (i = 0; i < MAX_NODES; i++)
        node_close(&w->nodes[i]);
    if (w->base) {
        if (w->guard) {
            event_free(w->guard);
            w->guard = NULL;
        }
        deadline = ts_now_ms() + 3000;
        while (event_base_loop(w->base, EVLOOP_NONBLOCK) == 0) {
            if (ts_now_ms() > deadline) {
                fprintf(stderr, "teardown: the loop did not go quiet after "
                                "rc_link_close\n");
                rc = -1;
                break;
            }
        }
        event_base_free(w->base);
    }
    if (w->problems.count > errors0) {
        fprintf(stderr, "teardown: %d problem(s) in callbacks; first: %s\n",
                w->problems.count - errors0, w->problems.first);
        rc = -1;
    }
    if (rh_stop(&w->rs) != 0)
        rc = -1;
    free(w);
    return rc;
}

/* ===================================================================== */

static int client_list_has(world *w, const char *name)
{
    redisReply *r = rh_cmd(&w->rs, "CLIENT LIST");
    char needle[96];
    int found = 0;

    if (r == NULL)
        fail_msg("CLIENT LIST failed");
    snprintf(needle, sizeof needle, "name=%s ", name);
    if (r->type == REDIS_REPLY_STRING && r->str)
        found = strstr(r->str, needle) != NULL;
    freeReplyObject(r);
    return found;
}

/* a) both links come up, name their connections, and carry a broadcast. */
static void t_basic(void **state)
{
    world *w = *state;
    char url[128];
    node *a, *b;
    rec *rb;
    static const char *const rooms[] = {"lobby"};
    subs_check sc;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    wait_up(w, a);
    wait_up(w, b);
    assert_int_equal(rc_link_state(a->link), RC_LINK_UP);
    assert_int_equal(rc_link_state(b->link), RC_LINK_UP);
    assert_int_equal(a->last_state, RC_LINK_UP);
    assert_true(rc_link_connects(a->link) >= 1);
    assert_true(rc_link_connects(b->link) >= 1);

    assert_true(client_list_has(w, "roomcast:A:pub"));
    assert_true(client_list_has(w, "roomcast:A:sub"));
    assert_true(client_list_has(w, "roomcast:B:pub"));
    assert_true(client_list_has(w, "roomcast:B:sub"));

    rb = add_conn(b, "b1");
    join(rb, "lobby");
    subs_init(&sc, w, b, NULL, rooms, 1, 1);
    run_until(w, pred_subscribed, &sc, WAIT_MS, "lobby subscribed by B");

    assert_int_equal(bcast(a, "lobby", "{\"hello\":1}"), 0);
    WAIT_FOR(w, rb->count == 1, "B's member to get A's broadcast");
    assert_string_equal(rb->data, "{\"hello\":1}");
    assert_int_equal(ctr(a).publish_errors, 0);
    ts_assert_clean(&(w)->problems);
}

#define NROOMS 5
static const char *const five_rooms[NROOMS] = {"r0", "r1", "r2", "r3", "r4"};

static void join_all(rec *r)
{
    int i;

    for (i = 0; i < NROOMS; i++)
        join(r, five_rooms[i]);
}

/* b) kill -9 and restart on the same port. */
static void t_kill9_restart(void **state)
{
    world *w = *state;
    char url[128], what[128];
    node *a, *b;
    rec *ra, *rb;
    subs_check sc;
    unsigned long a_downs, b_downs, a_ups, b_ups;
    unsigned long long perr;
    long long t0;
    int i, rc;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    ra = add_conn(a, "a1");
    rb = add_conn(b, "b1");
    join_all(ra);
    join_all(rb);
    subs_init(&sc, w, a, b, five_rooms, NROOMS, 2);
    run_until(w, pred_subscribed, &sc, WAIT_MS, "5 rooms subscribed by A, B");

    a_downs = a->downs;
    b_downs = b->downs;
    a_ups = a->ups;
    b_ups = b->ups;
    assert_int_equal(rh_kill9(&w->rs), 0);
    WAIT_FOR(w, a->downs > a_downs && rc_link_state(a->link) == RC_LINK_DOWN,
             "A's link to go DOWN after kill -9");
    WAIT_FOR(w, b->downs > b_downs && rc_link_state(b->link) == RC_LINK_DOWN,
             "B's link to go DOWN after kill -9");
    assert_true(rc_link_reason(a->link)[0] != '\0');

    /* During the outage: local delivery goes on, publishes fail fast. */
    perr = ctr(a).publish_errors;
    for (i = 0; i < NROOMS; i++) {
        rc = bcast(a, five_rooms[i], "{\"local\":true}");
        if (rc <= 0)
            fail_msg("broadcast to %s during the outage returned %d",
                     five_rooms[i], rc);
    }
    assert_int_equal(ra->count, NROOMS);
    WAIT_FOR_MS(w, ctr(a).publish_errors >= perr + NROOMS, 2000,
                "publish_errors to count the 5 publishes of the outage");
    /* the rooms are not ready while the sub link is away */
    WAIT_FOR_MS(w, rc_room_is_ready(b->a, "r0") == 0, 2000,
                "B's room r0 to be not ready during the outage");

    assert_int_equal(rh_restart(&w->rs), 0);
    t0 = ts_now_ms();
    sc.next_poll = 0;
    run_until(w, pred_subscribed, &sc, 2000,
              "every room subscribed again (NUMSUB 2) within 2 s of the "
              "restart");
    fprintf(stderr, "# resubscribed %lld ms after the restart\n",
            ts_now_ms() - t0);
    assert_true(a->ups > a_ups);
    assert_true(b->ups > b_ups);
    /* the callback saw DOWN, then UP */
    assert_int_equal(a->last_state, RC_LINK_UP);
    assert_int_equal(b->last_state, RC_LINK_UP);

    snprintf(what, sizeof what, "{\"after\":\"restart\"}");
    deliver(w, a, "r3", rb, what);
    ts_assert_clean(&(w)->problems);
}

/* c) the links are opened before Redis runs. */
static void t_start_without_redis(void **state)
{
    world *w = *state;
    char url[128];
    node *a, *b;
    rec *rb;
    subs_check sc;
    static const char *const rooms[] = {"early"};

    /* a port that was free a moment ago: start a server and stop it */
    assert_int_equal(rh_start(&w->rs, NULL), 0);
    assert_int_equal(rh_stop(&w->rs), 0);

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    rb = add_conn(b, "b1");
    join(rb, "early");
    /* local work goes on meanwhile */
    assert_true(bcast(b, "early", "{\"n\":0}") == 1);

    WAIT_FOR_MS(
        w, rc_link_failures(a->link) >= 2 && rc_link_failures(b->link) >= 2,
        3000, "two failed connection attempts each");
    assert_int_equal(rc_link_state(a->link), RC_LINK_DOWN);
    assert_int_equal(rc_link_state(b->link), RC_LINK_DOWN);
    assert_int_equal(a->ups, 0);
    if (rc_link_reason(a->link)[0] == '\0')
        fail_msg("DOWN without a reason after %lu failures",
                 rc_link_failures(a->link));
    fprintf(stderr, "# reason before Redis: \"%s\"\n", rc_link_reason(a->link));
    assert_int_equal(rc_room_is_ready(b->a, "early"), 0);

    assert_int_equal(rh_restart(&w->rs), 0);
    subs_init(&sc, w, a, b, rooms, 1, 1);
    run_until(w, pred_subscribed, &sc, 3000,
              "links UP and the room subscribed after Redis started");
    assert_true(rc_link_connects(a->link) >= 1);
    deliver(w, a, "early", rb, "{\"n\":1}");
    ts_assert_clean(&(w)->problems);
}

static int contains_auth_error(const char *s)
{
    return strstr(s, "WRONGPASS") != NULL ||
           strstr(s, "invalid password") != NULL ||
           strstr(s, "invalid username-password") != NULL;
}

/* d) requirepass and an ACL user. */
static void t_auth(void **state)
{
    world *w = *state;
    char url[160];
    node *a, *b, *c;
    rec *rc1;
    redisReply *r;
    unsigned long f;
    long long t0;
    static const char *const rooms[] = {"auth"};
    subs_check sc;

    /* the right password */
    url_of(w, url, sizeof url, ":sekret");
    a = node_open(w, 0, "A", url);
    wait_up(w, a);

    /* a wrong one: DOWN with the server's words, and backing off */
    url_of(w, url, sizeof url, ":wrong");
    t0 = ts_now_ms();
    b = node_open(w, 1, "B", url);
    WAIT_FOR_MS(w, contains_auth_error(rc_link_reason(b->link)), 3000,
                "the link's reason to quote the server's auth error");
    run_for(w, (int)(2000 - (ts_now_ms() - t0)));
    f = rc_link_failures(b->link);
    fprintf(stderr, "# wrong password: %lu failures in ~2 s, reason \"%s\"\n",
            f, rc_link_reason(b->link));
    assert_int_equal(rc_link_state(b->link), RC_LINK_DOWN);
    assert_int_equal(b->ups, 0);
    if (f < 2 || f > 2000 / BACKOFF_MIN)
        fail_msg("%lu failed attempts in 2 s with backoff %u..%u ms", f,
                 BACKOFF_MIN, BACKOFF_MAX);
    if (b->calls > 0 && b->last_state == RC_LINK_DOWN &&
        !contains_auth_error(b->last_down_reason))
        fail_msg("state callback DOWN reason \"%s\" lacks the auth error",
                 b->last_down_reason);
    node_close(b);

    /* an ACL user */
    r = rh_cmd(&w->rs, "ACL SETUSER u on >pw ~* &* +@all");
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("ACL SETUSER: %s", r->str);
    freeReplyObject(r);
    url_of(w, url, sizeof url, "u:pw");
    c = node_open(w, 2, "C", url);
    wait_up(w, c);
    rc1 = add_conn(c, "c1");
    join(rc1, "auth");
    subs_init(&sc, w, c, NULL, rooms, 1, 1);
    run_until(w, pred_subscribed, &sc, WAIT_MS, "C (ACL user) subscribed");
    deliver(w, a, "auth", rc1, "{\"acl\":1}");
    assert_true(client_list_has(w, "roomcast:C:sub"));
    ts_assert_clean(&(w)->problems);
}

/* e) CLIENT KILL TYPE pubsub: the sub side comes back and resubscribes. */
static void t_client_kill_pubsub(void **state)
{
    world *w = *state;
    char url[128];
    node *a, *b;
    rec *rb;
    redisReply *r;
    unsigned long lost0;
    static const char *const rooms[] = {"e1"};
    subs_check sc;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    wait_up(w, a);
    rb = add_conn(b, "b1");
    join(rb, "e1");
    subs_init(&sc, w, b, NULL, rooms, 1, 1);
    run_until(w, pred_subscribed, &sc, WAIT_MS, "e1 subscribed by B");
    deliver(w, a, "e1", rb, "{\"before\":1}");

    lost0 = b->lost_events;
    r = rh_cmd(&w->rs, "CLIENT KILL TYPE pubsub");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    if (r->integer < 2)
        fail_msg("CLIENT KILL TYPE pubsub killed %lld clients",
                 (long long)r->integer);
    freeReplyObject(r);
    WAIT_FOR(w, b->lost_events > lost0, "B's room e1 to be LOST");
    sc.next_poll = 0;
    run_until(w, pred_subscribed, &sc, 3000,
              "e1 subscribed again (NUMSUB 1) after CLIENT KILL");
    assert_true(client_list_has(w, "roomcast:B:sub"));
    deliver(w, a, "e1", rb, "{\"after\":1}");
    ts_assert_clean(&(w)->problems);
}

static int pred_server_clean(void *arg)
{
    world *w = arg;
    redisReply *r = rh_cmd(&w->rs, "CLIENT LIST");
    int clean;

    if (r == NULL)
        return 0;
    clean = r->type == REDIS_REPLY_STRING &&
            strstr(r->str, "name=roomcast:") == NULL;
    freeReplyObject(r);
    return clean && numsub(w, "f1") == 0;
}

/* g) a server that stops answering (CLIENT PAUSE ALL) but keeps the TCP
 * connections: only the probe can tell; both sides restart, and come back
 * once the pause ends. */
static void t_probe_lost(void **state)
{
    world *w = *state;
    char url[128];
    node *a, *b;
    rec *rb;
    redisReply *r;
    unsigned long a_downs;
    static const char *const rooms[] = {"g1"};
    subs_check sc;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    rb = add_conn(b, "b1");
    join(rb, "g1");
    subs_init(&sc, w, a, b, rooms, 1, 1);
    run_until(w, pred_subscribed, &sc, WAIT_MS, "g1 subscribed by B");

    a_downs = a->downs;
    r = rh_cmd(&w->rs, "CLIENT PAUSE 1500 ALL");
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("CLIENT PAUSE: %s", r->str);
    freeReplyObject(r);
    /* 2 probe intervals (+ one for the phase) and some slack, well within
     * the pause */
    WAIT_FOR_MS(w, a->downs > a_downs, 1200, "A DOWN during CLIENT PAUSE");
    if (strstr(a->last_down_reason, "probe") == NULL)
        fail_msg("A went DOWN for \"%s\", not a lost probe",
                 a->last_down_reason);
    sc.next_poll = 0;
    run_until(w, pred_subscribed, &sc, 6000,
              "links UP and g1 subscribed after the pause");
    deliver(w, a, "g1", rb, "{\"probe\":1}");
    ts_assert_clean(&(w)->problems);
}

/* f) 50 reconnect cycles, then a clean shutdown (under ASan/LSan in CI). */
static void t_fifty_cycles(void **state)
{
    world *w = *state;
    char url[128], what[160];
    node *a, *b;
    rec *rb;
    static const char *const rooms[] = {"f1"};
    subs_check sc;
    int cycle;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    rb = add_conn(b, "b1");
    join(rb, "f1");
    subs_init(&sc, w, a, b, rooms, 1, 1);
    run_until(w, pred_subscribed, &sc, WAIT_MS, "f1 subscribed by B");

    for (cycle = 0; cycle < 50; cycle++) {
        unsigned long a_downs = a->downs, b_downs = b->downs;
        unsigned long b_lost = b->lost_events;
        const char *how;

        if (cycle % 5 == 4) {
            how = "kill -9 + restart";
            assert_int_equal(rh_kill9(&w->rs), 0);
            WAIT_FOR(w, a->downs > a_downs && b->downs > b_downs,
                     "both links DOWN after kill -9");
            assert_int_equal(rh_restart(&w->rs), 0);
        } else {
            redisReply *r;

            how = cycle % 2 ? "CLIENT KILL TYPE pubsub"
                            : "CLIENT KILL TYPE normal";
            r = rh_cmd(&w->rs, how);
            assert_non_null(r);
            if (r->type != REDIS_REPLY_INTEGER || r->integer < 2)
                fail_msg("cycle %d: %s: type %d, %lld killed", cycle, how,
                         r->type, (long long)r->integer);
            freeReplyObject(r);
            if (cycle % 2)
                WAIT_FOR(w, b->lost_events > b_lost,
                         "B's room LOST after CLIENT KILL TYPE pubsub");
            WAIT_FOR(w, a->downs > a_downs && b->downs > b_downs,
                     "both links DOWN after CLIENT KILL");
        }
        snprintf(what, sizeof what,
                 "cycle %d (%s): links UP and f1 subscribed again", cycle, how);
        sc.next_poll = 0;
        run_until(w, pred_subscribed, &sc, 5000, what);
    }
    fprintf(stderr,
            "# after 50 cycles: A %lu connects %lu failures, B %lu "
            "connects %lu failures\n",
            rc_link_connects(a->link), rc_link_failures(a->link),
            rc_link_connects(b->link), rc_link_failures(b->link));
    assert_true(a->ups >= 51);
    assert_true(b->ups >= 51);
    deliver(w, a, "f1", rb, "{\"cycles\":50}");

    /* the clean shutdown, here rather than in teardown, so that a leftover
     * event fails this test */
    node_close(a);
    node_close(b);
    {
        long long deadline = ts_now_ms() + 3000;

        event_free(w->guard);
        w->guard = NULL;
        while (event_base_loop(w->base, EVLOOP_NONBLOCK) == 0)
            if (ts_now_ms() > deadline)
                fail_msg("the loop did not go quiet after rc_link_close");
    }
    event_base_free(w->base);
    w->base = NULL;
    /* the server drops both nodes' connections and subscriptions */
    if (rh_wait_until(pred_server_clean, w, 2000,
                      "no roomcast client and no f1 subscriber left") != 0)
        fail_msg("the server still has the nodes' connections");
    ts_assert_clean(&(w)->problems);
}

/* Opening with bad arguments starts nothing. */
static void t_open_errors(void **state)
{
    world *w = *state;
    rc_adapter *a = NULL;
    rc_link *l = NULL;
    rc_link_options lo;

    assert_int_equal(rc_adapter_open(NULL, NULL, NULL, &a), 0);
    memset(&lo, 0, sizeof lo);
    lo.url = "http://127.0.0.1:6379";
    assert_int_equal(rc_link_open(a, w->base, &lo, &l), RC_EURL);
    lo.url = NULL;
    assert_int_equal(rc_link_open(a, w->base, &lo, &l), RC_EINVAL);
    lo.url = "redis://127.0.0.1:1";
    assert_int_equal(rc_link_open(NULL, w->base, &lo, &l), RC_EINVAL);
    assert_int_equal(rc_link_open(a, NULL, &lo, &l), RC_EINVAL);
    assert_int_equal(rc_link_open(a, w->base, NULL, &l), RC_EINVAL);
    assert_int_equal(rc_link_open(a, w->base, &lo, NULL), RC_EINVAL);
    rc_link_close(NULL);
    rc_adapter_free(a);
    assert_int_equal(event_base_loop(w->base, EVLOOP_NONBLOCK), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_open_errors, setup_nostart, teardown),
        cmocka_unit_test_setup_teardown(t_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(t_kill9_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(t_start_without_redis, setup_nostart,
                                        teardown),
        cmocka_unit_test_setup_teardown(t_auth, setup_pass, teardown),
        cmocka_unit_test_setup_teardown(t_client_kill_pubsub, setup, teardown),
        cmocka_unit_test_setup_teardown(t_probe_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(t_fifty_cycles, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
