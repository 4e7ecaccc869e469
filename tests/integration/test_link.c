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
 * No assertion runs inside a callback: callbacks record and note problems
 * (ts_note), and every test ends with ts_assert_clean(). The world, the
 * nodes (ts_node_link), their recorded state changes and the recording
 * sink are shared with the other integration tests (test_nodes.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "roomcast/libevent.h"
#include "roomcast/roomcast.h"

#define PREFIX RC_DEFAULT_PREFIX

#define BACKOFF_MIN 50u
#define BACKOFF_MAX 500u
#define PROBE_MS 200u

/* ---- nodes -------------------------------------------------------------- */

static void url_of(ts_world *w, char *buf, size_t cap, const char *userinfo)
{
    if (userinfo)
        snprintf(buf, cap, "redis://%s@127.0.0.1:%d", userinfo, w->rs.port);
    else
        snprintf(buf, cap, "redis://127.0.0.1:%d", w->rs.port);
}

/* Node i with id, linked through url with this file's timings. */
static ts_node *node_open(ts_world *w, int i, const char *id, const char *url)
{
    rc_link_options lo;

    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.connect_timeout_ms = 1000;
    lo.backoff_min_ms = BACKOFF_MIN;
    lo.backoff_max_ms = BACKOFF_MAX;
    lo.probe_interval_ms = PROBE_MS;
    return ts_node_link(w, i, id, &lo);
}

/* UP, and the state callback said so last. */
static int pred_up(void *arg)
{
    ts_node *n = arg;

    return ts_link_up(n) && n->last_state == RC_LINK_UP;
}

static void wait_up_(ts_world *w, ts_node *n, int ms, const char *file,
                     int line)
{
    char what[160];

    snprintf(what, sizeof what, "link of %s UP (last reason: %s)", n->name,
             rc_link_reason(n->link));
    ts_run_until(&w->loop, pred_up, n, ms, what, file, line);
}
#define wait_up(w, n) wait_up_((w), (n), TS_WAIT_MS, __FILE__, __LINE__)

static int bcast(ts_node *n, const char *room, const char *data)
{
    return ts_bcast(n, room, NULL, data, NULL, 0);
}

/* The nodes are UP, their rooms with members all confirmed, and (polled
 * at most every 20 ms) each room's channel has `want` subscribers on the
 * server. */
typedef struct subs_check {
    ts_world *w;
    ts_node *nodes[TS_MAX_NODES];
    int nnodes;
    const char *const *rooms;
    int nrooms;
    long long want;
    long long next_poll;
} subs_check;

/* Check for nrooms rooms subscribed want times, with node a (and b, if
 * not NULL) up. */
static void subs_init(subs_check *sc, ts_world *w, ts_node *a, ts_node *b,
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
    char ch[128];
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
    for (j = 0; j < s->nrooms; j++) {
        snprintf(ch, sizeof ch, "%s%s", PREFIX, s->rooms[j]);
        if (ts_numsub(s->w, ch) != s->want)
            return 0;
    }
    return 1;
}

/* B's connection r receives a broadcast of data from `from` on room:
 * resent every 100 ms until it arrives (a first one may race a
 * resubscription). */
static void deliver_(ts_world *w, ts_node *from, const char *room, ts_rec *r,
                     const char *data, const char *file, int line)
{
    long long deadline = ts_now_ms() + TS_WAIT_MS, resend = 0;
    int before = r->count;

    for (;;) {
        if (r->count > before && strcmp(r->data, data) == 0)
            return;
        if (ts_now_ms() >= deadline)
            fail_msg("%s:%d: %s never got %s on %s from %s (got %d)", file,
                     line, r->id, data, room, from->name, r->count - before);
        if (ts_now_ms() >= resend) {
            if (bcast(from, room, data) < 0)
                fail_msg("%s:%d: broadcast failed", file, line);
            resend = ts_now_ms() + 100;
        }
        ts_pump(&w->loop);
        ts_idle(&w->loop);
    }
}
#define deliver(w, from, room, r, data)                                        \
    deliver_((w), (from), (room), (r), (data), __FILE__, __LINE__)

/* What the nodes look like, for a failure message. */
static void dump(const void *arg)
{
    const ts_world *w = arg;
    int i;
    size_t k;

    for (i = 0; i < TS_MAX_NODES; i++) {
        const ts_node *n = &w->nodes[i];

        if (n->link == NULL)
            continue;
        fprintf(stderr,
                "# %s: state %d reason \"%s\" connects %lu failures %lu; "
                "callback: %zu calls (%lu up, %lu down), room events %lu "
                "ready %lu lost\n",
                n->name, rc_link_state(n->link), rc_link_reason(n->link),
                rc_link_connects(n->link), rc_link_failures(n->link), n->ntr,
                n->ups, n->downs, n->ready_events, n->lost_events);
        for (k = n->ntr > 8 ? n->ntr - 8 : 0; k < n->ntr && k < TS_MAX_TR; k++)
            fprintf(stderr, "#   cb %zu: %s %s\n", k,
                    n->tr[k].state == RC_LINK_UP ? "UP" : "DOWN",
                    n->tr[k].reason);
    }
    if (w->problems.count)
        fprintf(stderr, "# %d callback problem(s), first: %s\n",
                w->problems.count, w->problems.first);
}

/* ---- fixture -------------------------------------------------------- */

/* A world whose failed waits dump the nodes. */
static int world_new(void **state, const char *const *args, int start)
{
    int rc = ts_world_setup(state, args, start);
    ts_world *w = *state;

    if (w != NULL) {
        w->loop.dump = dump;
        w->loop.dump_arg = w;
    }
    return rc;
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

static int client_list_has(ts_world *w, const char *name)
{
    return ts_clients_named(w, name, NULL, 0) > 0;
}

/* ===================================================================== */

/* a) both links come up, name their connections, and carry a broadcast. */
static void t_basic(void **state)
{
    ts_world *w = *state;
    char url[128];
    ts_node *a, *b;
    ts_rec *rb;
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

    rb = ts_add_conn(b, "b1");
    ts_join(rb, "lobby");
    subs_init(&sc, w, b, NULL, rooms, 1, 1);
    RUN_UNTIL(w, pred_subscribed, &sc, TS_WAIT_MS, "lobby subscribed by B");

    assert_int_equal(bcast(a, "lobby", "{\"hello\":1}"), 0);
    WAIT_FOR(w, rb->count == 1, "B's member to get A's broadcast");
    assert_string_equal(rb->data, "{\"hello\":1}");
    assert_int_equal(ts_ctr(a).publish_errors, 0);
    ts_assert_clean(&(w)->problems);
}

#define NROOMS 5
static const char *const five_rooms[NROOMS] = {"r0", "r1", "r2", "r3", "r4"};

static void join_all(ts_rec *r)
{
    int i;

    for (i = 0; i < NROOMS; i++)
        ts_join(r, five_rooms[i]);
}

/* b) kill -9 and restart on the same port. */
static void t_kill9_restart(void **state)
{
    ts_world *w = *state;
    char url[128], what[128];
    ts_node *a, *b;
    ts_rec *ra, *rb;
    subs_check sc;
    unsigned long a_downs, b_downs, a_ups, b_ups;
    unsigned long long perr;
    long long t0;
    int i, rc;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    ra = ts_add_conn(a, "a1");
    rb = ts_add_conn(b, "b1");
    join_all(ra);
    join_all(rb);
    subs_init(&sc, w, a, b, five_rooms, NROOMS, 2);
    RUN_UNTIL(w, pred_subscribed, &sc, TS_WAIT_MS,
              "5 rooms subscribed by A, B");

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
    perr = ts_ctr(a).publish_errors;
    for (i = 0; i < NROOMS; i++) {
        rc = bcast(a, five_rooms[i], "{\"local\":true}");
        if (rc <= 0)
            fail_msg("broadcast to %s during the outage returned %d",
                     five_rooms[i], rc);
    }
    assert_int_equal(ra->count, NROOMS);
    WAIT_FOR_MS(w, ts_ctr(a).publish_errors >= perr + NROOMS, 2000,
                "publish_errors to count the 5 publishes of the outage");
    /* the rooms are not ready while the sub link is away */
    WAIT_FOR_MS(w, rc_room_is_ready(b->a, "r0") == 0, 2000,
                "B's room r0 to be not ready during the outage");

    assert_int_equal(rh_restart(&w->rs), 0);
    t0 = ts_now_ms();
    sc.next_poll = 0;
    RUN_UNTIL(w, pred_subscribed, &sc, 2000,
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
    ts_world *w = *state;
    char url[128];
    ts_node *a, *b;
    ts_rec *rb;
    subs_check sc;
    static const char *const rooms[] = {"early"};

    /* a port that was free a moment ago: start a server and stop it */
    assert_int_equal(rh_start(&w->rs, NULL), 0);
    assert_int_equal(rh_stop(&w->rs), 0);

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    rb = ts_add_conn(b, "b1");
    ts_join(rb, "early");
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
    RUN_UNTIL(w, pred_subscribed, &sc, 3000,
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
    ts_world *w = *state;
    char url[160];
    ts_node *a, *b, *c;
    ts_rec *rc1;
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
    ts_run_for(&w->loop, (int)(2000 - (ts_now_ms() - t0)));
    f = rc_link_failures(b->link);
    fprintf(stderr, "# wrong password: %lu failures in ~2 s, reason \"%s\"\n",
            f, rc_link_reason(b->link));
    assert_int_equal(rc_link_state(b->link), RC_LINK_DOWN);
    assert_int_equal(b->ups, 0);
    if (f < 2 || f > 2000 / BACKOFF_MIN)
        fail_msg("%lu failed attempts in 2 s with backoff %u..%u ms", f,
                 BACKOFF_MIN, BACKOFF_MAX);
    if (b->ntr > 0 && b->last_state == RC_LINK_DOWN &&
        !contains_auth_error(b->last_down_reason))
        fail_msg("state callback DOWN reason \"%s\" lacks the auth error",
                 b->last_down_reason);
    ts_node_close(b);

    /* an ACL user */
    ts_reply_ok(rh_cmd(&w->rs, "ACL SETUSER u on >pw ~* &* +@all"),
                "ACL SETUSER");
    url_of(w, url, sizeof url, "u:pw");
    c = node_open(w, 2, "C", url);
    wait_up(w, c);
    rc1 = ts_add_conn(c, "c1");
    ts_join(rc1, "auth");
    subs_init(&sc, w, c, NULL, rooms, 1, 1);
    RUN_UNTIL(w, pred_subscribed, &sc, TS_WAIT_MS, "C (ACL user) subscribed");
    deliver(w, a, "auth", rc1, "{\"acl\":1}");
    assert_true(client_list_has(w, "roomcast:C:sub"));
    ts_assert_clean(&(w)->problems);
}

/* Of two nodes, one with a room: how many sub connections Redis counts
 * as pubsub. hiredis links subscribe a control channel at once; links on
 * the glue's own connections (RC_LINK_ENGINE=wire) only the rooms. */
static long long subscribers_of_two(void)
{
    const char *e = getenv("RC_LINK_ENGINE");

    return e != NULL && strcmp(e, "wire") == 0 ? 1 : 2;
}

/* e) CLIENT KILL TYPE pubsub: the sub side comes back and resubscribes. */
static void t_client_kill_pubsub(void **state)
{
    ts_world *w = *state;
    char url[128];
    ts_node *a, *b;
    ts_rec *rb;
    long long killed;
    unsigned long lost0;
    static const char *const rooms[] = {"e1"};
    subs_check sc;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    wait_up(w, a);
    rb = ts_add_conn(b, "b1");
    ts_join(rb, "e1");
    subs_init(&sc, w, b, NULL, rooms, 1, 1);
    RUN_UNTIL(w, pred_subscribed, &sc, TS_WAIT_MS, "e1 subscribed by B");
    deliver(w, a, "e1", rb, "{\"before\":1}");

    lost0 = b->lost_events;
    killed = ts_reply_int(rh_cmd(&w->rs, "CLIENT KILL TYPE pubsub"));
    if (killed < subscribers_of_two())
        fail_msg("CLIENT KILL TYPE pubsub killed %lld clients (-1: no "
                 "integer reply)",
                 killed);
    WAIT_FOR(w, b->lost_events > lost0, "B's room e1 to be LOST");
    sc.next_poll = 0;
    RUN_UNTIL(w, pred_subscribed, &sc, 3000,
              "e1 subscribed again (NUMSUB 1) after CLIENT KILL");
    assert_true(client_list_has(w, "roomcast:B:sub"));
    deliver(w, a, "e1", rb, "{\"after\":1}");
    ts_assert_clean(&(w)->problems);
}

static int pred_server_clean(void *arg)
{
    ts_world *w = arg;
    redisReply *r = rh_cmd(&w->rs, "CLIENT LIST");
    int clean;

    if (r == NULL)
        return 0;
    clean = r->type == REDIS_REPLY_STRING &&
            strstr(r->str, "name=roomcast:") == NULL;
    freeReplyObject(r);
    return clean && ts_numsub(w, PREFIX "f1") == 0;
}

/* g) a server that stops answering (CLIENT PAUSE ALL) but keeps the TCP
 * connections, for longer than the probe allows a silent Redis (seven
 * intervals: 1400 ms here): only the probe can tell; both sides restart,
 * and come back once the pause ends. */
static void t_probe_lost(void **state)
{
    ts_world *w = *state;
    char url[128];
    ts_node *a, *b;
    ts_rec *rb;
    unsigned long a_downs;
    static const char *const rooms[] = {"g1"};
    subs_check sc;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    rb = ts_add_conn(b, "b1");
    ts_join(rb, "g1");
    subs_init(&sc, w, a, b, rooms, 1, 1);
    RUN_UNTIL(w, pred_subscribed, &sc, TS_WAIT_MS, "g1 subscribed by B");

    a_downs = a->downs;
    ts_reply_ok(rh_cmd(&w->rs, "CLIENT PAUSE 3000 ALL"), "CLIENT PAUSE");
    /* 7 probe intervals and some slack, well within the pause */
    WAIT_FOR_MS(w, a->downs > a_downs, 2400, "A DOWN during CLIENT PAUSE");
    if (strstr(a->last_down_reason, "probe") == NULL)
        fail_msg("A went DOWN for \"%s\", not a lost probe",
                 a->last_down_reason);
    sc.next_poll = 0;
    RUN_UNTIL(w, pred_subscribed, &sc, 6000,
              "links UP and g1 subscribed after the pause");
    deliver(w, a, "g1", rb, "{\"probe\":1}");
    ts_assert_clean(&(w)->problems);
}

/* f) 50 reconnect cycles, then a clean shutdown (under ASan/LSan in CI). */
static void t_fifty_cycles(void **state)
{
    ts_world *w = *state;
    char url[128], what[160];
    ts_node *a, *b;
    ts_rec *rb;
    static const char *const rooms[] = {"f1"};
    subs_check sc;
    int cycle;

    url_of(w, url, sizeof url, NULL);
    a = node_open(w, 0, "A", url);
    b = node_open(w, 1, "B", url);
    rb = ts_add_conn(b, "b1");
    ts_join(rb, "f1");
    subs_init(&sc, w, a, b, rooms, 1, 1);
    RUN_UNTIL(w, pred_subscribed, &sc, TS_WAIT_MS, "f1 subscribed by B");

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
            long long killed;

            how = cycle % 2 ? "CLIENT KILL TYPE pubsub"
                            : "CLIENT KILL TYPE normal";
            killed = ts_reply_int(rh_cmd(&w->rs, how));
            if (killed < (cycle % 2 ? subscribers_of_two() : 2))
                fail_msg("cycle %d: %s: %lld killed (-1: no integer reply)",
                         cycle, how, killed);
            if (cycle % 2)
                WAIT_FOR(w, b->lost_events > b_lost,
                         "B's room LOST after CLIENT KILL TYPE pubsub");
            WAIT_FOR(w,
                     (a->downs > a_downs ||
                      (cycle % 2 && subscribers_of_two() == 1)) &&
                         b->downs > b_downs,
                     "both links DOWN after CLIENT KILL");
        }
        snprintf(what, sizeof what,
                 "cycle %d (%s): links UP and f1 subscribed again", cycle, how);
        sc.next_poll = 0;
        RUN_UNTIL(w, pred_subscribed, &sc, 5000, what);
    }
    fprintf(stderr,
            "# after 50 cycles: A %lu connects %lu failures, B %lu "
            "connects %lu failures\n",
            rc_link_connects(a->link), rc_link_failures(a->link),
            rc_link_connects(b->link), rc_link_failures(b->link));
    /* A has no room: on the glue's own connections it is not a pubsub
     * client, and CLIENT KILL TYPE pubsub (20 cycles) leaves it alone. */
    assert_true(a->ups >= (subscribers_of_two() == 1 ? 31u : 51u));
    assert_true(b->ups >= 51);
    deliver(w, a, "f1", rb, "{\"cycles\":50}");

    /* the clean shutdown, here rather than in teardown, so that a leftover
     * event fails this test */
    ts_node_close(a);
    ts_node_close(b);
    if (ts_loop_free(&w->loop, 3000) != 0)
        fail_msg("the loop did not go quiet after rc_link_close");
    /* the server drops both nodes' connections and subscriptions */
    if (rh_wait_until(pred_server_clean, w, 2000,
                      "no roomcast client and no f1 subscriber left") != 0)
        fail_msg("the server still has the nodes' connections");
    ts_assert_clean(&(w)->problems);
}

/* Opening with bad arguments starts nothing. */
static void t_open_errors(void **state)
{
    ts_world *w = *state;
    rc_adapter *a = NULL;
    rc_link *l = NULL;
    rc_link_options lo;

    assert_int_equal(rc_adapter_open(NULL, NULL, NULL, &a), 0);
    memset(&lo, 0, sizeof lo);
    lo.url = "http://127.0.0.1:6379";
    assert_int_equal(rc_link_open(a, w->loop.base, &lo, &l), RC_EURL);
    lo.url = NULL;
    assert_int_equal(rc_link_open(a, w->loop.base, &lo, &l), RC_EINVAL);
    lo.url = "redis://127.0.0.1:1";
    assert_int_equal(rc_link_open(NULL, w->loop.base, &lo, &l), RC_EINVAL);
    assert_int_equal(rc_link_open(a, NULL, &lo, &l), RC_EINVAL);
    assert_int_equal(rc_link_open(a, w->loop.base, NULL, &l), RC_EINVAL);
    assert_int_equal(rc_link_open(a, w->loop.base, &lo, NULL), RC_EINVAL);
    rc_link_close(NULL);
    rc_adapter_free(a);
    assert_int_equal(event_base_loop(w->loop.base, EVLOOP_NONBLOCK), 1);
}

/* ---- callbacks that close the link ------------------------------------ */

typedef struct closer {
    ts_world *w;
    ts_node *n;
    int on_state;    /* close and free when the link reports this */
    int opened;      /* rc_link_open has returned */
    int calls, late; /* calls before the close, and after it */
} closer;

/* Close the link and free the adapter from inside the state callback, as
 * the header allows. */
static void close_on(rc_link *link, int state, const char *reason, void *user)
{
    closer *k = user;
    ts_node *n = k->n;

    (void)reason;
    if (!k->opened)
        ts_note(&k->w->problems, "state callback before rc_link_open returned");
    if (n->closed) {
        k->late++;
        return;
    }
    k->calls++;
    if (state != k->on_state)
        return;
    n->closed = 1;
    n->freed = 1;
    n->link = NULL;
    rc_link_close(link);
    rc_adapter_free(n->a);
    n->a = NULL;
}

static ts_node *closer_open(ts_world *w, closer *k, const char *url,
                            int on_state)
{
    rc_link_options lo;
    int rc;

    memset(k, 0, sizeof *k);
    k->w = w;
    k->n = ts_node_open_(w, 0, "X");
    k->on_state = on_state;
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.backoff_min_ms = BACKOFF_MIN;
    lo.backoff_max_ms = BACKOFF_MAX;
    lo.probe_interval_ms = PROBE_MS;
    lo.state_cb = close_on;
    lo.user = k;
    k->n->close_link = rc_link_close;
    rc = rc_link_open(k->n->a, w->loop.base, &lo, &k->n->link);
    assert_int_equal(rc, 0);
    k->opened = 1;
    return k->n;
}

/* The link closes itself fully on the next turns: no call after the
 * close, and its connections leave the server. */
static void closer_check(ts_world *w, closer *k, int server)
{
    WAIT_FOR(w, k->n->closed, "the state callback to close the link");
    ts_run_for(&w->loop, 100);
    assert_int_equal(k->late, 0);
    if (server)
        WAIT_FOR(w,
                 ts_clients_named(w, "roomcast:X:pub", NULL, 0) == 0 &&
                     ts_clients_named(w, "roomcast:X:sub", NULL, 0) == 0,
                 "the closed link's connections to leave");
    ts_assert_clean(&w->problems);
}

/* On UP: the callback runs inside the sub context's reply. */
static void t_state_cb_closes_on_up(void **state)
{
    ts_world *w = *state;
    char url[128];
    closer k;

    url_of(w, url, sizeof url, NULL);
    closer_open(w, &k, url, RC_LINK_UP);
    closer_check(w, &k, 1);
    assert_int_equal(k.calls, 1);
}

/* On DOWN from a refused connect: inside hiredis' connect callback. */
static void t_state_cb_closes_on_refused(void **state)
{
    ts_world *w = *state;
    closer k;

    closer_open(w, &k, "redis://127.0.0.1:1", RC_LINK_DOWN);
    closer_check(w, &k, 0);
}

/* On DOWN after CLIENT KILL: inside the context's disconnect callback. */
static void t_state_cb_closes_on_kill(void **state)
{
    ts_world *w = *state;
    unsigned long long id;
    char url[128];
    closer k;

    url_of(w, url, sizeof url, NULL);
    closer_open(w, &k, url, RC_LINK_DOWN);
    WAIT_FOR(w, rc_link_state(k.n->link) == RC_LINK_UP, "the link to be up");
    assert_int_equal(ts_clients_named(w, "roomcast:X:sub", &id, 1), 1);
    ts_reply_ok(rh_cmd(&w->rs, "CLIENT KILL ID %llu", id), "CLIENT KILL");
    closer_check(w, &k, 1);
}

/* rc_link_open calls no state callback before it returns, even when the
 * first connect fails at once (a Unix socket that is not there). */
static void t_open_calls_back_later(void **state)
{
    ts_world *w = *state;
    closer k;

    closer_open(w, &k, "unix:///nonexistent/roomcast-test.sock", -1);
    WAIT_FOR(w, k.calls > 0, "the state callback, from the loop");
    assert_int_equal(rc_link_state(k.n->link), RC_LINK_DOWN);
    ts_assert_clean(&w->problems);
}

/* ---- prompt reconnect ---------------------------------------------------- */

#define PROMPT_NODES 3
#define PROMPT_OUTAGE_MS 5000
#define PROMPT_UP_LIMIT_MS 1500 /* backoff_max_ms' default (1000) + slack */

/* All nodes UP, and the time by which the last of them came UP. */
static int all_up(ts_world *w, int n, long long *t_last)
{
    int i;

    *t_last = 0;
    for (i = 0; i < n; i++) {
        if (!pred_up(&w->nodes[i]))
            return 0;
        if (w->nodes[i].tr[w->nodes[i].ntr - 1].t > *t_last)
            *t_last = w->nodes[i].tr[w->nodes[i].ntr - 1].t;
    }
    return 1;
}

/* h) Redis is away long enough for the backoff to reach its cap, then
 * restarts on the same port: with the default backoff, every node is UP
 * again well within PROMPT_UP_LIMIT_MS (once one side is ready, the other
 * retries at once; the cap is 1 s). Before, each side waited out its own
 * backoff, up to 5 s. */
static void t_prompt_reconnect(void **state)
{
    ts_world *w = *state;
    rc_link_options lo;
    char url[128], id[8];
    long long t0, t_up = 0, worst;
    int i;

    url_of(w, url, sizeof url, NULL);
    memset(&lo, 0, sizeof lo); /* default backoff */
    lo.url = url;
    lo.probe_interval_ms = PROBE_MS;
    for (i = 0; i < PROMPT_NODES; i++) {
        snprintf(id, sizeof id, "P%d", i);
        ts_node_link(w, i, id, &lo);
    }
    WAIT_FOR(w, all_up(w, PROMPT_NODES, &t_up), "every node UP");
    assert_int_equal(rh_kill9(&w->rs), 0);
    WAIT_FOR_MS(w, !ts_link_up(&w->nodes[0]), 3000, "P0 DOWN after kill -9");
    ts_run_for(&w->loop, PROMPT_OUTAGE_MS);
    assert_int_equal(rh_restart(&w->rs), 0);
    t0 = ts_now_ms();
    WAIT_FOR_MS(w, all_up(w, PROMPT_NODES, &t_up), 10000,
                "every node UP after the restart");
    worst = t_up - t0;
    fprintf(stderr,
            "# after a %d ms outage, the last of %d nodes was UP %lld "
            "ms after Redis answered again\n",
            PROMPT_OUTAGE_MS, PROMPT_NODES, worst);
    if (worst > PROMPT_UP_LIMIT_MS)
        fail_msg("a node came UP %lld ms after the restart (limit %d ms)",
                 worst, PROMPT_UP_LIMIT_MS);
    ts_assert_clean(&w->problems);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_open_errors, setup_nostart,
                                        ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_basic, setup, ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_kill9_restart, setup,
                                        ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_start_without_redis, setup_nostart,
                                        ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_auth, setup_pass, ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_client_kill_pubsub, setup,
                                        ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_probe_lost, setup, ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_fifty_cycles, setup,
                                        ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_state_cb_closes_on_up, setup,
                                        ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_state_cb_closes_on_refused,
                                        setup_nostart, ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_state_cb_closes_on_kill, setup,
                                        ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_open_calls_back_later, setup_nostart,
                                        ts_world_teardown),
        cmocka_unit_test_setup_teardown(t_prompt_reconnect, setup,
                                        ts_world_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
