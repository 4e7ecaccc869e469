/*
 * The adapter (roomcast.h, "The adapter" onwards) against a real
 * redis-server, through hiredis' async API on one libevent loop.
 *
 * Every test gets its own redis-server (redis_harness) and event_base.
 * A "node" is one adapter on two async contexts (pub, sub), as a server
 * process would have; two or three nodes share the loop and the server.
 *
 * Synchronisation is never a sleep: the loop is driven one non-blocking
 * turn at a time (event_base_loop(EVLOOP_ONCE | EVLOOP_NONBLOCK)) until a
 * condition holds -- RC_ROOM_READY / rc_room_is_ready, a sink call, the
 * counters, a PUBSUB answer -- with a deadline and a message saying what
 * was awaited. Between turns that found nothing to do, the loop may block
 * for at most 1 ms on a guard timer, so that waiting does not spin.
 *
 * "Nothing arrives" is proved with a marker: after the message that must
 * not arrive, the same publisher sends a marker that must; Redis keeps the
 * order of one publisher's messages to one subscriber connection (on any
 * channels), so once the marker is in, anything sent before it would be
 * too.
 *
 * No assertion runs inside a callback (a longjmp out of libevent and
 * hiredis would wreck the teardown): callbacks record and note problems
 * (ts_note), and every test ends with ts_assert_clean(). The world, the
 * nodes, the recording sink and the Redis-side helpers are shared with
 * the link tests (test_nodes.h).
 *
 * hiredis: only redisAsyncConnect, redisAsyncSetConnectCallback,
 * redisAsyncSetDisconnectCallback, redisLibeventAttach, redisAsyncDisconnect
 * and redisAsyncFree of the async API, so that this builds against 0.14
 * (Debian) and 1.x alike. The harness's blocking contexts play the raw
 * publisher / subscriber.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_nodes.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "roomcast/roomcast.h"

/* ---- small utilities ------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)((rng_next(s) >> 11) % n);
}

static int setup(void **state)
{
    return ts_world_setup(state, NULL, 1);
}

/* ===================================================================== */
/* Subscriptions                                                          */
/* ===================================================================== */

/* The first local member subscribes once; a second member does not. */
static void t_first_member_subscribes_once(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2");
    rc_counters c0 = ts_ctr(A), c;
    rc_conn *m[4];
    const char *names[4];

    ts_join(a1, "s1");
    c = ts_ctr(A);
    assert_int_equal(c.subscribes_sent, c0.subscribes_sent + 1);
    /* Nothing is confirmed before the loop has run. */
    assert_int_equal(rc_room_is_ready(A->a, "s1"), 0);
    ts_wait_ready(w, A, "s1");
    assert_string_equal(ts_events_since(A, 0, "s1"), "R");
    assert_int_equal(ts_numsub(w, "sse:room:s1"), 1);
    c = ts_ctr(A);
    assert_int_equal(c.subscribes_confirmed, c0.subscribes_confirmed + 1);

    /* Already a member: nothing changes. */
    assert_int_equal(rc_room_join(a1->conn, "s1"), 0);
    ts_join(a2, "s1");
    c = ts_ctr(A);
    assert_int_equal(c.subscribes_sent, c0.subscribes_sent + 1);
    assert_int_equal(rc_room_is_ready(A->a, "s1"), 1);
    ts_wait_quiet(w, A);
    assert_int_equal(ts_numsub(w, "sse:room:s1"), 1);
    assert_string_equal(ts_events_since(A, 0, "s1"), "R");
    c = ts_ctr(A);
    assert_int_equal(c.subscribes_sent, c0.subscribes_sent + 1);
    assert_int_equal(c.subscribes_confirmed, c0.subscribes_confirmed + 1);

    /* The registry agrees. */
    assert_int_equal(rc_room_size(A->a, "s1"), 2);
    assert_int_equal(rc_room_members(A->a, "s1", m, 4), 2);
    assert_ptr_equal(m[0], a1->conn);
    assert_ptr_equal(m[1], a2->conn);
    assert_int_equal(rc_adapter_rooms(A->a, names, 4), 1);
    assert_string_equal(names[0], "s1");
    assert_int_equal(c.rooms, 1);
    assert_int_equal(c.memberships, 2);
    assert_int_equal(c.connections, 2);
    ts_assert_clean(&(w)->problems);
}

/* The last member leaving unsubscribes; while others remain it does not. */
static void t_last_member_unsubscribes(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2");
    rc_counters c0, c;
    const char *names[2];

    ts_join(a1, "l1");
    ts_join(a2, "l1");
    ts_wait_ready(w, A, "l1");
    ts_wait_quiet(w, A);
    c0 = ts_ctr(A);

    /* others remaining keep it */
    ts_leave(a1, "l1");
    c = ts_ctr(A);
    assert_int_equal(c.unsubscribes_sent, c0.unsubscribes_sent);
    assert_int_equal(rc_room_is_ready(A->a, "l1"), 1);
    assert_int_equal(rc_room_size(A->a, "l1"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:l1"), 1);
    assert_int_equal(ts_bcast(B, "l1", "hello", "1", NULL, 0), 0);
    WAIT_FOR(w, a2->count == 1, "a2 to get B's broadcast to l1");
    assert_int_equal(a1->count, 0);

    /* the last one unsubscribes */
    ts_leave(a2, "l1");
    c = ts_ctr(A);
    assert_int_equal(c.unsubscribes_sent, c0.unsubscribes_sent + 1);
    assert_int_equal(rc_room_size(A->a, "l1"), 0);
    assert_int_equal(rc_room_is_ready(A->a, "l1"), 0);
    assert_int_equal(rc_adapter_rooms(A->a, names, 2), 0);
    assert_int_equal(c.rooms, 0);
    assert_int_equal(c.memberships, 0);
    ts_wait_quiet(w, A);
    c = ts_ctr(A);
    assert_int_equal(c.unsubscribes_confirmed, c0.unsubscribes_confirmed + 1);
    assert_int_equal(ts_numsub(w, "sse:room:l1"), 0);
    assert_int_equal(rc_room_leave(a2->conn, "l1"), 0);
    ts_assert_clean(&(w)->problems);
}

/* Leaving a room one is not in, or through an unknown connection, changes
 * nothing. */
static void t_leave_noop(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1 = ts_add_conn(A, "a1");
    rc_counters c0, c;

    ts_join(a1, "n1");
    ts_wait_ready(w, A, "n1");
    ts_wait_quiet(w, A);
    c0 = ts_ctr(A);

    assert_int_equal(rc_room_leave(a1->conn, "other"), 0);
    assert_int_equal(rc_room_leave(a1->conn, "n"), 0);
    assert_null(rc_conn_find(A->a, "ghost"));
    assert_int_equal(rc_room_leave(rc_conn_find(A->a, "ghost"), "n1"),
                     RC_EINVAL);
    assert_int_equal(rc_room_leave(a1->conn, NULL), RC_EINVAL);
    assert_int_equal(rc_room_leave_all(rc_conn_find(A->a, "ghost"), NULL, NULL),
                     RC_EINVAL);
    assert_int_equal(rc_room_join(rc_conn_find(A->a, "ghost"), "n1"),
                     RC_EINVAL);
    rc_conn_remove(rc_conn_find(A->a, "ghost")); /* NULL is allowed */
    ts_pump(&w->loop);
    ts_pump(&w->loop);

    c = ts_ctr(A);
    assert_int_equal(c.subscribes_sent, c0.subscribes_sent);
    assert_int_equal(c.unsubscribes_sent, c0.unsubscribes_sent);
    assert_int_equal(c.rooms, 1);
    assert_int_equal(c.memberships, 1);
    assert_int_equal(c.connections, 1);
    assert_int_equal(rc_room_size(A->a, "n1"), 1);
    assert_int_equal(rc_room_has(a1->conn, "n1"), 1);
    assert_int_equal(rc_room_is_ready(A->a, "n1"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:n1"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:other"), 0);
    ts_assert_clean(&(w)->problems);
}

struct names_seen {
    char v[8][32];
    int n;
};

static void collect_room(const char *room, void *user)
{
    struct names_seen *s = user;

    if (s->n < 8)
        snprintf(s->v[s->n], sizeof s->v[s->n], "%s", room);
    s->n++;
}

/* rc_room_leave_all reports the rooms in join order. */
static void t_leave_all_join_order(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2");
    static const char *const order[] = {"z", "a", "m", "b:c"};
    const char *rooms[8];
    struct names_seen seen;
    size_t i;

    memset(&seen, 0, sizeof seen);
    for (i = 0; i < 4; i++)
        ts_join(a1, order[i]);
    ts_join(a2, "a");
    for (i = 0; i < 4; i++)
        ts_wait_ready(w, A, order[i]);
    assert_int_equal(rc_conn_rooms(a1->conn, rooms, 8), 4);
    for (i = 0; i < 4; i++)
        assert_string_equal(rooms[i], order[i]);

    assert_int_equal(rc_room_leave_all(a1->conn, collect_room, &seen), 4);
    assert_int_equal(seen.n, 4);
    for (i = 0; i < 4; i++)
        assert_string_equal(seen.v[i], order[i]);
    assert_int_equal(rc_conn_rooms(a1->conn, rooms, 8), 0);
    assert_int_equal(rc_room_leave_all(a1->conn, NULL, NULL), 0);

    /* "a" still has a2 and stays subscribed; the others are dropped. */
    ts_wait_quiet(w, A);
    assert_int_equal(ts_numsub(w, "sse:room:a"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:z"), 0);
    assert_int_equal(ts_numsub(w, "sse:room:m"), 0);
    assert_int_equal(ts_numsub(w, "sse:room:b:c"), 0);
    assert_int_equal(rc_adapter_rooms(A->a, rooms, 8), 1);
    assert_string_equal(rooms[0], "a");
    assert_int_equal(rc_room_is_ready(A->a, "a"), 1);
    ts_assert_clean(&(w)->problems);
}

/* Queries about unknown rooms and connections are empty, 0 or false. */
static void t_unknown_queries(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1;
    rc_conn *m[2], *dummy = NULL;
    const char *names[2];
    rc_counters c;

    assert_int_equal(rc_room_size(A->a, "nope"), 0);
    assert_int_equal(rc_room_is_ready(A->a, "nope"), 0);
    assert_int_equal(rc_room_members(A->a, "nope", NULL, 0), 0);
    assert_int_equal(rc_room_members(A->a, "nope", m, 2), 0);
    assert_int_equal(rc_adapter_rooms(A->a, names, 2), 0);
    assert_null(rc_conn_find(A->a, "nope"));
    assert_null(rc_conn_find(A->a, ""));

    a1 = ts_add_conn(A, "a1");
    assert_int_equal(rc_conn_rooms(a1->conn, names, 2), 0);
    assert_int_equal(rc_room_has(a1->conn, "nope"), 0);
    assert_int_equal(rc_conn_add(A->a, "a1", ts_sink, a1, &dummy), RC_EEXIST);
    assert_ptr_equal(rc_conn_find(A->a, "a1"), a1->conn);

    /* A room that existed and emptied is unknown again. */
    ts_join(a1, "gone");
    ts_leave(a1, "gone");
    assert_int_equal(rc_room_size(A->a, "gone"), 0);
    assert_int_equal(rc_room_is_ready(A->a, "gone"), 0);
    assert_int_equal(rc_room_members(A->a, "gone", m, 2), 0);
    assert_int_equal(rc_room_has(a1->conn, "gone"), 0);
    assert_int_equal(rc_adapter_rooms(A->a, names, 2), 0);
    ts_wait_quiet(w, A);
    c = ts_ctr(A);
    assert_int_equal(c.rooms, 0);
    assert_int_equal(c.memberships, 0);
    assert_int_equal(c.connections, 1);
    assert_int_equal(ts_numsub(w, "sse:room:gone"), 0);
    ts_assert_clean(&(w)->problems);
}

/* An adapter without contexts is local only: rooms are ready at once. */
static void t_local_only_adapter(void **state)
{
    ts_world *w = *state;
    ts_node *L = &w->nodes[0];
    ts_rec *l1;
    rc_counters c;
    int rc;

    assert_null(rc_adapter_new(NULL, NULL, NULL, "bad\nid"));
    memset(L, 0, sizeof *L);
    L->w = w;
    snprintf(L->name, sizeof L->name, "local");
    L->a = rc_adapter_new(NULL, NULL, "", NULL);
    assert_non_null(L->a);
    assert_int_equal(strlen(rc_adapter_node_id(L->a)), 36); /* a UUID */
    rc_adapter_set_room_cb(L->a, ts_on_room_event, L);
    l1 = ts_add_conn(L, "l1");
    ts_join(l1, "r");
    assert_int_equal(rc_room_is_ready(L->a, "r"), 1);
    rc = ts_bcast(L, "r", "e", "{\"x\":1}", NULL, 0);
    assert_int_equal(rc, 1);
    assert_int_equal(l1->count, 1);
    c = ts_ctr(L);
    assert_int_equal(c.published, 0);
    assert_int_equal(c.subscribes_sent, 0);
    assert_int_equal(c.delivered, 1);
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */
/* Broadcasting                                                           */
/* ===================================================================== */

/* RC_LOCAL_ONLY delivers locally and publishes nothing. */
static void t_local_only_flag(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *b1 = ts_add_conn(B, "b1");
    redisContext *raw;
    rc_counters c0, c;
    rc_broadcast_options o;
    const char *rooms[1] = {"lo"};
    rc_message m = ts_msg("local", "{\"only\":true}", NULL);
    char *ch = NULL, *payload = NULL, scratch[512];
    size_t len = 0;
    rc_envelope env;

    ts_join(a1, "lo");
    ts_join(b1, "lo");
    ts_wait_ready(w, A, "lo");
    ts_wait_ready(w, B, "lo");
    raw = ts_raw_sub(w, "sse:room:lo");
    c0 = ts_ctr(A);

    assert_int_equal(rc_broadcast_to_room(A->a, "lo", &m, NULL, RC_LOCAL_ONLY),
                     1);
    memset(&o, 0, sizeof o);
    o.flags = RC_LOCAL_ONLY;
    assert_int_equal(rc_broadcast(A->a, rooms, 1, &m, &o), 1);
    assert_int_equal(a1->count, 2);

    /* Then a normal marker on the same pub context: the first thing the raw
     * subscriber sees must be it. */
    ts_sync_marker(w, A, "lo", b1);
    WAIT_FOR(w, ts_ctr(A).published == c0.published + 1,
             "A: the marker's PUBLISH confirmed");
    c = ts_ctr(A);
    assert_int_equal(c.published, c0.published + 1);
    assert_int_equal(c.publish_errors, c0.publish_errors);
    assert_int_equal(b1->count, 0);
    ts_raw_next(raw, &ch, &payload, &len);
    assert_string_equal(ch, "sse:room:lo");
    ts_decode(payload, len, &env, scratch, sizeof scratch);
    assert_non_null(env.msg.event);
    assert_string_equal(env.msg.event, "marker");
    assert_string_equal(env.node, "node-A");
    free(ch);
    free(payload);
    ts_assert_clean(&(w)->problems);
}

/* A room without local members delivers 0 and still publishes. */
static void t_no_local_members_still_publishes(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *b1 = ts_add_conn(B, "b1");
    rc_counters c0 = ts_ctr(A);

    ts_join(b1, "e1");
    ts_wait_ready(w, B, "e1");
    assert_int_equal(ts_bcast(A, "e1", "ev", "[1,2,3]", NULL, 0), 0);
    WAIT_FOR(w, b1->count == 1,
             "b1 to get A's broadcast to a room A has no "
             "members in");
    WAIT_FOR(w, ts_ctr(A).published == c0.published + 1,
             "A: PUBLISH confirmed");
    assert_int_equal(ts_ctr(A).delivered, c0.delivered);
    assert_int_equal(rc_room_size(A->a, "e1"), 0);
    assert_int_equal(ts_numsub(w, "sse:room:e1"), 1); /* only B */
    ts_assert_clean(&(w)->problems);
}

/* `delivered` (result and counter) counts only sinks that returned 0. */
static void t_delivered_counts_accepting_sinks(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2"),
           *a3 = ts_add_conn(A, "a3");
    ts_rec *b1 = ts_add_conn(B, "b1"), *b2 = ts_add_conn(B, "b2");
    rc_counters ca0, cb0, c;
    rc_message bad = ts_msg("x", NULL, NULL);

    a2->ret = 1;
    b1->ret = -1;
    ts_join(a1, "d1");
    ts_join(a2, "d1");
    ts_join(a3, "d1");
    ts_join(b1, "d1");
    ts_join(b2, "d1");
    ts_wait_ready(w, A, "d1");
    ts_wait_ready(w, B, "d1");
    ca0 = ts_ctr(A);
    cb0 = ts_ctr(B);

    assert_int_equal(ts_bcast(A, "d1", "ev", "\"x\"", NULL, 0), 2);
    assert_int_equal(a1->count, 1);
    assert_int_equal(a2->count, 1);
    assert_int_equal(a3->count, 1);
    c = ts_ctr(A);
    assert_int_equal(c.delivered, ca0.delivered + 2);
    assert_int_equal(c.sink_errors, ca0.sink_errors + 1);

    WAIT_FOR(w, b1->count == 1 && b2->count == 1,
             "b1 and b2 to get A's broadcast");
    c = ts_ctr(B);
    assert_int_equal(c.delivered, cb0.delivered + 1);
    assert_int_equal(c.sink_errors, cb0.sink_errors + 1);

    /* An invalid message is refused before anything happens. */
    assert_int_equal(rc_broadcast_to_room(A->a, "d1", &bad, NULL, 0),
                     RC_ENODATA);
    assert_int_equal(a1->count, 1);
    ts_sync_marker(w, A, "d1", b2);
    assert_int_equal(b2->count, 1);
    assert_int_equal(b1->count, 1);
    ts_assert_clean(&(w)->problems);
}

/* A node receives nothing for rooms it has not subscribed, nor after it
 * unsubscribed. */
static void t_no_delivery_without_subscription(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *b1 = ts_add_conn(B, "b1"), *b2 = ts_add_conn(B, "b2");
    rc_counters cb0;

    ts_join(b1, "ns-x");
    ts_wait_ready(w, B, "ns-x");

    /* never subscribed */
    cb0 = ts_ctr(B);
    assert_int_equal(ts_bcast(A, "ns-y", "ev", "1", NULL, 0), 0);
    ts_sync_marker(w, A, "ns-x", b1);
    assert_int_equal(b1->count, 0);
    assert_int_equal(b2->count, 0);
    assert_int_equal(ts_ctr(B).received, cb0.received + 1); /* the marker */

    /* subscribed, then unsubscribed (confirmed) */
    ts_join(b2, "ns-z");
    ts_wait_ready(w, B, "ns-z");
    ts_leave(b2, "ns-z");
    ts_wait_quiet(w, B);
    assert_int_equal(ts_numsub(w, "sse:room:ns-z"), 0);
    cb0 = ts_ctr(B);
    assert_int_equal(ts_bcast(A, "ns-z", "ev", "2", NULL, 0), 0);
    ts_sync_marker(w, A, "ns-x", b1);
    assert_int_equal(b2->count, 0);
    assert_int_equal(b1->count, 0);
    assert_int_equal(ts_ctr(B).received, cb0.received + 1);

    /* left, UNSUBSCRIBE still in flight: Redis may still send it, nobody
     * gets it */
    ts_join(b2, "ns-w");
    ts_wait_ready(w, B, "ns-w");
    ts_leave(b2, "ns-w");
    assert_int_equal(ts_bcast(A, "ns-w", "ev", "3", NULL, 0), 0);
    ts_sync_marker(w, A, "ns-x", b1);
    ts_wait_quiet(w, B);
    assert_int_equal(b2->count, 0);
    assert_int_equal(b1->count, 0);
    ts_assert_clean(&(w)->problems);
}

/* Ten publishes in a row, without running the loop in between, arrive
 * all and in order. */
static void t_rapid_publishes_in_order(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *b1 = ts_add_conn(B, "b1");
    char data[32];
    int i;

    ts_join(b1, "o1");
    ts_wait_ready(w, B, "o1");
    for (i = 0; i < 10; i++) {
        snprintf(data, sizeof data, "{\"seq\":%d}", i);
        assert_int_equal(ts_bcast(A, "o1", "n", data, NULL, 0), 0);
    }
    WAIT_FOR(w, b1->nseq >= 10, "b1 to get 10 messages");
    ts_sync_marker(w, A, "o1", b1);
    assert_int_equal(b1->nseq, 10);
    for (i = 0; i < 10; i++)
        assert_int_equal(b1->seqs[i], i);
    ts_assert_clean(&(w)->problems);
}

/* Two nodes in one room: each gets the other's broadcasts once and never
 * its own back (the echo is dropped and counted). */
static void t_two_nodes_no_echo(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *b1 = ts_add_conn(B, "b1");
    rc_counters ca0, cb0;

    ts_join(a1, "e");
    ts_join(b1, "e");
    ts_wait_ready(w, A, "e");
    ts_wait_ready(w, B, "e");
    ca0 = ts_ctr(A);
    cb0 = ts_ctr(B);

    assert_int_equal(ts_bcast(A, "e", "from", "\"A\"", NULL, 0), 1);
    assert_int_equal(a1->count, 1);
    WAIT_FOR(w, b1->count == 1, "b1 to get A's broadcast");
    WAIT_FOR(w, ts_ctr(A).echoes == ca0.echoes + 1,
             "A to drop its own envelope (echoes)");
    assert_int_equal(a1->count, 1);
    assert_string_equal(b1->data, "\"A\"");

    assert_int_equal(ts_bcast(B, "e", "from", "\"B\"", NULL, 0), 1);
    assert_int_equal(b1->count, 2);
    WAIT_FOR(w, a1->count == 2, "a1 to get B's broadcast");
    WAIT_FOR(w, ts_ctr(B).echoes == cb0.echoes + 1,
             "B to drop its own envelope (echoes)");
    assert_string_equal(a1->data, "\"B\"");

    /* anything late would come before these markers (each marker orders
     * the other node's sub connection; the echo of a node's own marker
     * comes on its own one, so that is waited for) */
    ts_sync_marker(w, A, "e", b1);
    ts_sync_marker(w, B, "e", a1);
    WAIT_FOR(w,
             ts_ctr(A).echoes == ca0.echoes + 2 &&
                 ts_ctr(B).echoes == cb0.echoes + 2,
             "both markers to come back to their senders as echoes");
    assert_int_equal(a1->count, 2);
    assert_int_equal(b1->count, 2);
    ts_assert_clean(&(w)->problems);
}

/* except: the named connection never gets it, on either node. */
static void t_except(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2"),
           *b1 = ts_add_conn(B, "b1"), *b2 = ts_add_conn(B, "b2");

    ts_join(a1, "x");
    ts_join(a2, "x");
    ts_join(b1, "x");
    ts_join(b2, "x");
    ts_wait_ready(w, A, "x");
    ts_wait_ready(w, B, "x");

    assert_int_equal(ts_bcast(A, "x", "ev", "1", "a1", 0), 1);
    assert_int_equal(a1->count, 0);
    assert_int_equal(a2->count, 1);
    WAIT_FOR(w, b1->count == 1 && b2->count == 1, "b1 and b2 to get it");
    ts_sync_marker(w, A, "x", b1);
    assert_int_equal(a1->count, 0);
    assert_int_equal(a2->count, 1);
    assert_int_equal(b1->count, 1);
    assert_int_equal(b2->count, 1);

    /* except a remote connection */
    assert_int_equal(ts_bcast(A, "x", "ev", "2", "b1", 0), 2);
    WAIT_FOR(w, b2->count == 2, "b2 to get the second broadcast");
    ts_sync_marker(w, A, "x", b2);
    assert_int_equal(b1->count, 1);
    assert_int_equal(a1->count, 1);
    assert_int_equal(a2->count, 2);
    ts_assert_clean(&(w)->problems);
}

/* A custom prefix replaces "sse:room:" both ways; ':' in rooms is fine; an
 * empty prefix is allowed. */
static void t_custom_prefix(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, "app:x:", "node-A");
    ts_node *B = ts_node_up(w, 1, "app:x:", "node-B");
    ts_node *C = ts_node_up(w, 2, "", "node-C");
    ts_rec *a1 = ts_add_conn(A, "a1"), *b1 = ts_add_conn(B, "b1"),
           *c1 = ts_add_conn(C, "c1");
    ts_strlist l;
    redisContext *raw;
    char *ch = NULL, *payload = NULL, scratch[512];
    size_t len = 0;
    rc_envelope env;

    ts_join(a1, "a:b:c");
    ts_join(b1, "a:b:c");
    ts_join(c1, "bare");
    ts_wait_ready(w, A, "a:b:c");
    ts_wait_ready(w, B, "a:b:c");
    ts_wait_ready(w, C, "bare");

    l = ts_pubsub_channels(w, "app:x:*");
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0], "app:x:a:b:c");
    ts_strlist_free(&l);
    l = ts_pubsub_channels(w, "sse:room:*");
    assert_int_equal(l.n, 0);
    ts_strlist_free(&l);
    l = ts_pubsub_channels(w, "*");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0], "app:x:a:b:c");
    assert_string_equal(l.v[1], "bare");
    ts_strlist_free(&l);
    assert_int_equal(ts_numsub(w, "app:x:a:b:c"), 2);

    /* publishing side */
    raw = ts_raw_sub(w, "app:x:a:b:c");
    assert_int_equal(ts_bcast(A, "a:b:c", "ev", "{\"k\":\"v\"}", NULL, 0), 1);
    WAIT_FOR(w, b1->count == 1, "b1 to get A's broadcast on app:x:a:b:c");
    assert_string_equal(b1->data, "{\"k\":\"v\"}");
    ts_raw_next(raw, &ch, &payload, &len);
    assert_string_equal(ch, "app:x:a:b:c");
    ts_decode(payload, len, &env, scratch, sizeof scratch);
    assert_string_equal(env.node, "node-A");
    free(ch);
    free(payload);

    /* receiving side: the default-prefixed channel has nobody, the custom
     * one A, B and the raw subscriber */
    assert_int_equal(ts_publish_env(w, "sse:room:a:b:c", "raw", "ev", "7"), 0);
    assert_int_equal(ts_publish_env(w, "app:x:a:b:c", "raw", "ev", "7"), 3);
    /* a1 had A's own broadcast locally */
    WAIT_FOR(w, a1->count == 2 && b1->count == 2,
             "a1 and b1 to get the raw publish on app:x:a:b:c");
    assert_string_equal(a1->data, "7");
    assert_string_equal(b1->data, "7");

    /* the empty prefix: the channel is the room */
    assert_int_equal(ts_publish_env(w, "bare", "raw", "ev", "7"), 1);
    WAIT_FOR(w, c1->count == 1, "c1 to get a raw publish on \"bare\"");
    /* A publishes on app:x:bare, which C does not hear: once A's PUBLISH
     * is answered, a marker published on "bare" comes after it */
    {
        unsigned long long p0 = ts_ctr(A).published;

        assert_int_equal(ts_bcast(A, "bare", "ev", "8", NULL, 0), 0);
        WAIT_FOR(w, ts_ctr(A).published == p0 + 1, "A: PUBLISH answered");
    }
    assert_int_equal(ts_publish_env(w, "bare", "raw", "marker", "0"), 1);
    WAIT_FOR(w, c1->markers == 1, "c1 to get the raw marker on \"bare\"");
    assert_int_equal(c1->count, 1);
    ts_assert_clean(&(w)->problems);
}

static void hook_keep_frame(ts_rec *r, rc_conn *c, rc_frame *f,
                            const rc_message *m)
{
    (void)c;
    (void)m;
    if (r->kept == NULL)
        r->kept = rc_frame_ref(f);
}

/* The SSE bytes a remote sink gets are rc_sse_format of the message; a
 * frame may outlive its adapter. */
static void t_remote_frame_bytes(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *b1 = ts_add_conn(B, "b1");
    static const char data[] =
        " \n{\"a\":\n[1,\r\n2],\"s\":\"\\u2603 \xc3\xa9\"}\r\n";
    static const char trimmed[] =
        "{\"a\":\n[1,\r\n2],\"s\":\"\\u2603 \xc3\xa9\"}";
    rc_message m = ts_msg("upd\xc3\xa9", data, "id-1");
    rc_message t = m;
    char want[256];
    size_t want_len = 0;

    m.retry = 1500;
    t.data = trimmed;
    t.data_len = strlen(trimmed);
    t.retry = 1500;
    assert_int_equal(rc_sse_format(&m, want, sizeof want, &want_len), 0);

    b1->hook = hook_keep_frame;
    ts_join(a1, "f");
    ts_join(b1, "f");
    ts_wait_ready(w, A, "f");
    ts_wait_ready(w, B, "f");
    assert_int_equal(rc_broadcast_to_room(A->a, "f", &m, NULL, 0), 1);
    WAIT_FOR(w, b1->count == 1, "b1 to get the frame");

    assert_int_equal(a1->frame_len, want_len);
    assert_memory_equal(a1->frame, want, want_len);
    assert_int_equal(b1->frame_len, want_len);
    assert_memory_equal(b1->frame, want, want_len);
    /* and the message itself: data byte for byte (trimmed), fields */
    assert_int_equal(b1->data_len, strlen(trimmed));
    assert_memory_equal(b1->data, trimmed, b1->data_len);
    assert_string_equal(b1->event, "upd\xc3\xa9");
    assert_string_equal(b1->msgid, "id-1");
    assert_int_equal(b1->retry, 1500);
    /* formatting the trimmed message gives the same bytes */
    {
        char again[256];
        size_t again_len = 0;

        assert_int_equal(rc_sse_format(&t, again, sizeof again, &again_len), 0);
        assert_int_equal(again_len, want_len);
        assert_memory_equal(again, want, want_len);
    }

    /* the kept frame outlives node B's adapter */
    assert_non_null(b1->kept);
    ts_node_close(B);
    assert_int_equal(rc_frame_size(b1->kept), want_len);
    assert_memory_equal(rc_frame_data(b1->kept), want, want_len);
    rc_frame_unref(b1->kept);
    b1->kept = NULL;
    ts_assert_clean(&(w)->problems);
}

/* rc_broadcast to several rooms: locally once per connection; remotely
 * one envelope per room, de-duplicated per connection by message id. */
static void t_multi_room_broadcast(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2");
    ts_rec *b1 = ts_add_conn(B, "b1"), *b2 = ts_add_conn(B, "b2");
    const char *rooms[2] = {"m1", "m2"};
    rc_message with_id = ts_msg("multi", "{\"n\":1}", "dup-1");
    rc_message no_id = ts_msg("multi", "{\"n\":2}", NULL);
    rc_broadcast_options o;
    rc_counters ca0, cb0, c;

    ts_join(a1, "m1");
    ts_join(a1, "m2");
    ts_join(a2, "m2");
    ts_join(b1, "m1");
    ts_join(b1, "m2");
    ts_join(b2, "m1");
    ts_wait_ready(w, A, "m1");
    ts_wait_ready(w, A, "m2");
    ts_wait_ready(w, B, "m1");
    ts_wait_ready(w, B, "m2");
    ca0 = ts_ctr(A);
    cb0 = ts_ctr(B);
    memset(&o, 0, sizeof o);

    /* with an id */
    assert_int_equal(rc_broadcast(A->a, rooms, 2, &with_id, &o), 2);
    assert_int_equal(a1->count, 1);
    assert_int_equal(a2->count, 1);
    WAIT_FOR(w, ts_ctr(B).received == cb0.received + 2,
             "B to read both envelopes (one per room)");
    ts_sync_marker(w, A, "m1", b1);
    assert_int_equal(b1->count, 1); /* in both rooms: once, by id */
    assert_int_equal(b2->count, 1);
    c = ts_ctr(B);
    assert_int_equal(c.duplicates, cb0.duplicates + 1);
    WAIT_FOR(w, ts_ctr(A).published == ca0.published + 3,
             "A: 2 envelopes and the marker published");

    /* Without an id there is nothing to de-duplicate by on the remote
     * path (the envelope carries no other message identity, and the
     * contract says remote de-duplication is by message id per
     * connection): b1, in both rooms, gets it once per room. Locally the
     * connection still gets it once. */
    assert_int_equal(rc_broadcast(NULL, rooms, 2, &no_id, &o), RC_EINVAL);
    assert_int_equal(rc_broadcast(A->a, rooms, 2, &no_id, NULL), 2);
    assert_int_equal(a1->count, 2);
    assert_int_equal(a2->count, 2);
    WAIT_FOR(w, ts_ctr(B).received == cb0.received + 5,
             "B to read both envelopes of the second broadcast");
    ts_sync_marker(w, A, "m1", b1);
    assert_int_equal(b1->count, 3);
    assert_int_equal(b2->count, 2);
    assert_int_equal(ts_ctr(B).duplicates, cb0.duplicates + 1);

    /* an invalid meta is refused up front */
    o.meta = "{bad";
    o.meta_len = 4;
    assert_int_equal(rc_broadcast(A->a, rooms, 2, &no_id, &o), RC_EJSON);
    assert_int_equal(a1->count, 2);
    ts_assert_clean(&(w)->problems);
}

struct filter_seen {
    int calls;
    char meta[64];
    int had_meta;
};

static int filter_vip(rc_conn *conn, const rc_message *msg, const char *meta,
                      size_t meta_len, void *user)
{
    struct filter_seen *s = user;

    (void)msg;
    s->calls++;
    s->had_meta = meta != NULL;
    if (meta && meta_len < sizeof s->meta) {
        memcpy(s->meta, meta, meta_len);
        s->meta[meta_len] = '\0';
    }
    return meta && strstr(s->meta, "\"vip\":true") &&
           rc_conn_id(conn)[1] == '2';
}

/* The filter runs on both paths and sees the meta as sent. */
static void t_filter_and_meta(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2");
    ts_rec *b1 = ts_add_conn(B, "b1"), *b2 = ts_add_conn(B, "b2");
    struct filter_seen fa, fb;
    const char *rooms[1] = {"fm"};
    rc_broadcast_options o;
    rc_message m = ts_msg("ev", "1", NULL);
    rc_counters ca0, cb0;

    memset(&fa, 0, sizeof fa);
    memset(&fb, 0, sizeof fb);
    rc_adapter_set_filter(A->a, filter_vip, &fa);
    rc_adapter_set_filter(B->a, filter_vip, &fb);
    ts_join(a1, "fm");
    ts_join(a2, "fm");
    ts_join(b1, "fm");
    ts_join(b2, "fm");
    ts_wait_ready(w, A, "fm");
    ts_wait_ready(w, B, "fm");
    ca0 = ts_ctr(A);
    cb0 = ts_ctr(B);

    memset(&o, 0, sizeof o);
    o.meta = " {\"vip\":true} ";
    o.meta_len = strlen(o.meta);
    assert_int_equal(rc_broadcast(A->a, rooms, 1, &m, &o), 1);
    assert_int_equal(a1->count, 1);
    assert_int_equal(a2->count, 0);
    WAIT_FOR(w, b1->count == 1, "b1 to get the meta broadcast");
    ts_sync_marker(w, A, "fm", b1);
    assert_int_equal(b2->count, 0);
    assert_int_equal(ts_ctr(A).filtered, ca0.filtered + 1);
    assert_int_equal(ts_ctr(B).filtered, cb0.filtered + 1);
    assert_string_equal(fb.meta, "{\"vip\":true}");

    /* no meta: the filter sees NULL and lets everybody through */
    rc_adapter_set_filter(B->a, NULL, NULL);
    assert_int_equal(ts_bcast(A, "fm", "ev", "2", NULL, 0), 2);
    assert_int_equal(fa.had_meta, 0);
    WAIT_FOR(w, b1->count == 2 && b2->count == 1,
             "b1 and b2 to get the broadcast without meta");
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */
/* Leave then rejoin before the UNSUBSCRIBE reply                         */
/* ===================================================================== */

/* Apply ops to r in room: J join, L leave, '.' one loop turn. Returns
 * whether r ends up a member. */
static int apply_ops(ts_world *w, ts_rec *r, const char *room, const char *ops,
                     int member)
{
    const char *p;

    for (p = ops; *p; p++) {
        if (*p == 'J') {
            if (member)
                fail_msg("bad op string %s", ops);
            ts_join(r, room);
            member = 1;
        } else if (*p == 'L') {
            if (!member)
                fail_msg("bad op string %s", ops);
            ts_leave(r, room);
            member = 0;
        } else if (*p == '.') {
            ts_pump(&w->loop);
        }
    }
    return member;
}

/* After the ops, the subscription state must match membership: NUMSUB 1
 * and a broadcast from B arrives, or NUMSUB 0 and nothing arrives. */
static void check_rejoin_outcome(ts_world *w, ts_node *A, ts_node *B,
                                 ts_rec *a1, ts_rec *ctl, const char *room,
                                 const char *ops, int member)
{
    char ch[64], what[200];
    int before = a1->count;

    snprintf(ch, sizeof ch, "sse:room:%s", room);
    ts_wait_quiet(w, A);
    if (member) {
        snprintf(what, sizeof what,
                 "room %s ready after \"%s\" (subscription lost?)", room, ops);
        WAIT_FOR(w, rc_room_is_ready(A->a, room) == 1, what);
        if (ts_numsub(w, ch) != 1)
            fail_msg("after \"%s\" in %s: PUBSUB NUMSUB %s is %lld, "
                     "expected 1",
                     ops, room, ch, ts_numsub(w, ch));
        assert_int_equal(ts_bcast(B, room, "after", "1", NULL, 0), 0);
        snprintf(what, sizeof what,
                 "a broadcast from B in %s after \"%s\" (subscription lost "
                 "on the client side?)",
                 room, ops);
        WAIT_FOR(w, a1->count == before + 1, what);
    } else {
        assert_int_equal(rc_room_is_ready(A->a, room), 0);
        if (ts_numsub(w, ch) != 0)
            fail_msg("after \"%s\" in %s: PUBSUB NUMSUB %s is %lld, "
                     "expected 0",
                     ops, room, ch, ts_numsub(w, ch));
        assert_int_equal(ts_bcast(B, room, "after", "1", NULL, 0), 0);
    }
    ts_sync_marker(w, B, "ctl", ctl);
    if (a1->count != before + member)
        fail_msg("after \"%s\" in %s: a1 got %d message(s), expected %d", ops,
                 room, a1->count - before, member);
}

static void t_leave_rejoin_before_reply(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *ctl = ts_add_conn(A, "ctl");
    static const struct {
        const char *room;
        int ready_first; /* joined and confirmed before the ops */
        const char *ops;
    } v[] = {
        {"rj1", 1, "LJ"},  /* both calls, no loop turn between */
        {"rj2", 1, "L.J"}, /* UNSUBSCRIBE written, reply not read */
        {"rj3", 1, "LJLJ"},  {"rj4", 0, "JLJ"}, /* SUBSCRIBE not yet confirmed
                                                 */
        {"rj5", 0, "J.L.J"}, {"rj6", 1, "L.J.L.J"}, {"rj7", 1, "L..J"},
        {"rj8", 1, "LJL"}, /* ends outside: no stale subscription */
        {"rj9", 0, "J.L"},   {"rj10", 1, "L.J.L"},
    };
    size_t i;

    ts_join(ctl, "ctl");
    ts_wait_ready(w, A, "ctl");
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        int member = 0;

        if (v[i].ready_first) {
            ts_join(a1, v[i].room);
            ts_wait_ready(w, A, v[i].room);
            ts_wait_quiet(w, A);
            member = 1;
        }
        member = apply_ops(w, a1, v[i].room, v[i].ops, member);
        check_rejoin_outcome(w, A, B, a1, ctl, v[i].room, v[i].ops, member);
    }
    ts_assert_clean(&(w)->problems);
}

static void hook_flip(ts_rec *r, rc_conn *c, rc_frame *f, const rc_message *m)
{
    (void)f;
    if (m->event == NULL || strcmp(m->event, "flip") != 0)
        return;
    r->hook_rc[0] = rc_room_leave(c, r->hook_room);
    r->hook_rc[1] = rc_room_join(c, r->hook_room);
}

/* Leave and rejoin inside one loop turn: from a sink on the remote path
 * (hiredis' reply handling), and on the local path. */
static void t_leave_rejoin_in_sink(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *ctl = ts_add_conn(A, "ctl");

    ts_join(ctl, "ctl");
    ts_join(a1, "trig");
    ts_join(a1, "rjs");
    ts_wait_ready(w, A, "ctl");
    ts_wait_ready(w, A, "trig");
    ts_wait_ready(w, A, "rjs");
    ts_wait_quiet(w, A);

    a1->hook = hook_flip;
    a1->hook_room = "rjs";
    assert_int_equal(ts_bcast(B, "trig", "flip", "0", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 1, "a1 to get the flip message");
    assert_int_equal(a1->hook_rc[0], 1);
    assert_int_equal(a1->hook_rc[1], 1);
    check_rejoin_outcome(w, A, B, a1, ctl, "rjs", "leave+join in a remote sink",
                         1);

    /* local path */
    a1->hook_rc[0] = a1->hook_rc[1] = 0;
    assert_int_equal(ts_bcast(A, "trig", "flip", "0", NULL, 0), 1);
    assert_int_equal(a1->hook_rc[0], 1);
    assert_int_equal(a1->hook_rc[1], 1);
    a1->hook = NULL;
    check_rejoin_outcome(w, A, B, a1, ctl, "rjs", "leave+join in a local sink",
                         1);
    ts_assert_clean(&(w)->problems);
}

/*
 * The node's only channel is unsubscribed while a SUBSCRIBE for another
 * room goes out in the same turn: Redis answers the UNSUBSCRIBE with a
 * count of 0 (the SUBSCRIBE comes after it). hiredis before 1.0 then
 * leaves subscribed mode although a SUBSCRIBE is pending, and the
 * "subscribe" reply that follows finds no callback (an assert in
 * redisProcessCallbacks). Also the other order, and going down to zero
 * and back up in one turn.
 */
static void t_last_channel_dropped_while_subscribing(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1");

    ts_join(a1, "only");
    ts_wait_ready(w, A, "only");
    ts_wait_quiet(w, A);

    /* UNSUBSCRIBE only (count 0), then SUBSCRIBE next */
    ts_leave(a1, "only");
    ts_join(a1, "next");
    ts_wait_quiet(w, A);
    ts_wait_ready(w, A, "next");
    assert_int_equal(ts_numsub(w, "sse:room:next"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:only"), 0);
    assert_int_equal(ts_bcast(B, "next", "ev", "1", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 1, "a1 to get B's broadcast to \"next\"");

    /* SUBSCRIBE third, then UNSUBSCRIBE next: the count never drops to 0 */
    ts_join(a1, "third");
    ts_leave(a1, "next");
    ts_wait_quiet(w, A);
    ts_wait_ready(w, A, "third");
    assert_int_equal(ts_numsub(w, "sse:room:third"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:next"), 0);

    /* the last channel goes and the same room comes back in one turn */
    ts_leave(a1, "third");
    ts_join(a1, "third");
    ts_wait_quiet(w, A);
    ts_wait_ready(w, A, "third");
    assert_int_equal(ts_numsub(w, "sse:room:third"), 1);
    assert_int_equal(ts_bcast(B, "third", "ev", "2", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 2, "a1 to get B's broadcast to \"third\"");

    /* and leaving still works afterwards */
    ts_leave(a1, "third");
    ts_wait_quiet(w, A);
    assert_int_equal(ts_numsub(w, "sse:room:third"), 0);
    ts_assert_clean(&(w)->problems);
}

/*
 * A new sub context handed over directly, without NULL first, while the
 * old one is still connected and subscribed: the rooms are subscribed on
 * the new one, and a broadcast is delivered once, not once per context.
 */
static void t_swap_sub_without_null(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1");
    ts_ctx *old = A->sub, *fresh;

    ts_join(a1, "sw");
    ts_wait_ready(w, A, "sw");
    fresh = ts_ctx_connect(w, A, 1);
    old->attached = 0; /* its end is no news to the adapter any more */
    assert_int_equal(rc_adapter_set_sub(A->a, fresh->ac), 0);
    fresh->attached = 1;
    A->sub = fresh;
    ts_wait_ready(w, A, "sw");
    ts_wait_quiet(w, A);
    assert_int_equal(ts_numsub(w, "sse:room:sw"), 2); /* old and new */
    assert_int_equal(ts_bcast(B, "sw", "ev", "1", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 1, "a1 to get B's broadcast");
    ts_sync_marker(w, B, "sw", a1);
    assert_int_equal(a1->count, 1);

    /* the old context goes; nothing changes for the adapter */
    redisAsyncFree(old->ac);
    assert_null(old->ac);
    WAIT_NUMSUB(w, "sse:room:sw", 1);
    assert_int_equal(rc_room_is_ready(A->a, "sw"), 1);
    assert_int_equal(ts_bcast(B, "sw", "ev", "2", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 2, "a1 to get B's second broadcast");
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */
/* Losing and replacing the sub context                                   */
/* ===================================================================== */

static void kill_client(ts_world *w, ts_ctx *l)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    char addr[64];
    redisReply *r;
    long long killed;

    memset(&sa, 0, sizeof sa);
    assert_int_equal(getsockname(l->ac->c.fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    r = rh_cmd(&w->rs, "CLIENT KILL ADDR %s", addr);
    killed = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    if (killed != 1)
        fail_msg("CLIENT KILL ADDR %s: %lld", addr, killed);
}

/* how: 0 = the host disconnects (redisAsyncDisconnect), 1 = the server
 * drops the connection (CLIENT KILL), 2 = the host calls
 * rc_adapter_set_sub(NULL) while the old context is still up (and
 * subscribed), and frees that context later. */
static void resubscribe_after_loss(ts_world *w, int how)
{
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2");
    ts_ctx *old = A->sub, *fresh;
    size_t mark;
    int i;

    ts_join(a1, "p1");
    ts_join(a1, "p2");
    ts_join(a2, "p3");
    ts_join(a2, "p4");
    for (i = 0; i < 4; i++) {
        char room[16];

        snprintf(room, sizeof room, "p%d", i + 1);
        ts_wait_ready(w, A, room);
    }
    ts_leave(a2, "p4"); /* empty again: must not come back */
    ts_wait_quiet(w, A);
    mark = A->nev;

    if (how == 0) {
        redisAsyncDisconnect(old->ac);
    } else if (how == 1) {
        kill_client(w, old);
    } else {
        old->attached = 0;
        assert_int_equal(rc_adapter_set_sub(A->a, NULL), 0);
        assert_int_equal(old->state, TS_CTX_UP);
        /* still subscribed on the server, but no longer the adapter's:
         * a message there now must not be delivered */
        assert_int_equal(ts_numsub(w, "sse:room:p1"), 1);
        {
            unsigned long long p0 = ts_ctr(B).published;

            assert_int_equal(ts_bcast(B, "p1", "ev", "0", NULL, 0), 0);
            /* answered: Redis has written it to the old context too */
            WAIT_FOR(w, ts_ctr(B).published == p0 + 1, "B: PUBLISH answered");
            for (i = 0; i < 3; i++)
                ts_idle(&w->loop); /* let the old context read it */
        }
        assert_int_equal(a1->count, 0);
        redisAsyncFree(old->ac);
    }
    WAIT_FOR(w, old->state == TS_CTX_DOWN, "the old sub context to go down");
    assert_string_equal(ts_events_since(A, mark, "p1"), "L");
    assert_string_equal(ts_events_since(A, mark, "p2"), "L");
    assert_string_equal(ts_events_since(A, mark, "p3"), "L");
    assert_string_equal(ts_events_since(A, mark, "p4"), "");
    assert_int_equal(rc_room_is_ready(A->a, "p1"), 0);
    assert_int_equal(rc_room_is_ready(A->a, "p3"), 0);

    /* changes while there is no sub context */
    ts_join(a2, "p5");
    assert_int_equal(rc_room_is_ready(A->a, "p5"), 0);
    ts_leave(a2, "p3");
    ts_leave(a1, "p2");
    ts_join(a1, "p2");
    WAIT_NUMSUB(w, "sse:room:p1", 0); /* the server saw the old one go */

    fresh = ts_ctx_connect(w, A, 1);
    assert_int_equal(rc_adapter_set_sub(A->a, fresh->ac), 0);
    fresh->attached = 1;
    A->sub = fresh;
    ts_wait_ready(w, A, "p1");
    ts_wait_ready(w, A, "p2");
    ts_wait_ready(w, A, "p5");
    ts_wait_quiet(w, A);
    assert_string_equal(ts_events_since(A, mark, "p1"), "LR");
    assert_string_equal(ts_events_since(A, mark, "p2"), "LR");
    assert_string_equal(ts_events_since(A, mark, "p3"), "L");
    assert_string_equal(ts_events_since(A, mark, "p4"), "");
    assert_string_equal(ts_events_since(A, mark, "p5"), "R");
    assert_int_equal(ts_numsub(w, "sse:room:p1"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:p2"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:p5"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:p3"), 0);
    assert_int_equal(ts_numsub(w, "sse:room:p4"), 0);

    assert_int_equal(ts_bcast(B, "p1", "ev", "1", NULL, 0), 0);
    assert_int_equal(ts_bcast(B, "p5", "ev", "2", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 1 && a2->count == 1,
             "broadcasts from B to arrive on the new sub context");
    assert_int_equal(ts_bcast(B, "p2", "ev", "3", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 2, "a1 to get B's broadcast to p2");
    ts_assert_clean(&(w)->problems);
}

static void t_resubscribe_after_host_disconnect(void **state)
{
    resubscribe_after_loss(*state, 0);
}

static void t_resubscribe_after_server_kill(void **state)
{
    resubscribe_after_loss(*state, 1);
}

static void t_resubscribe_after_set_sub_null(void **state)
{
    resubscribe_after_loss(*state, 2);
}

/* ===================================================================== */
/* Malformed payloads                                                     */
/* ===================================================================== */

static void t_malformed_payloads(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1 = ts_add_conn(A, "a1");
    static const char bin[] = "{\"v\":1,\0\"m\":{\"data\":1},\"n\":\"raw\"}";
    struct {
        const char *what;
        const char *payload;
        size_t len;
        int code;
    } bad[] = {
        {"garbage", "not json {", 0, RC_EJSON},
        {"NUL inside", bin, sizeof bin - 1, RC_EJSON},
        {"wrong v", "{\"v\":2,\"m\":{\"data\":1},\"n\":\"raw\"}", 0,
         RC_EVERSION},
        {"v as a string", "{\"v\":\"1\",\"m\":{\"data\":1},\"n\":\"raw\"}", 0,
         RC_EVERSION},
        {"missing m", "{\"v\":1,\"n\":\"raw\"}", 0, RC_ENOMSG},
        {"no data", "{\"v\":1,\"m\":{\"event\":\"e\"},\"n\":\"raw\"}", 0,
         RC_ENODATA},
        {"missing n", "{\"v\":1,\"m\":{\"data\":1}}", 0, RC_ETYPE},
        {"CR/LF in event",
         "{\"v\":1,\"m\":{\"event\":\"a\\r\\nb\",\"data\":1},\"n\":\"raw\"}", 0,
         RC_ECHAR},
        {"LF in id",
         "{\"v\":1,\"m\":{\"id\":\"a\\nb\",\"data\":1},\"n\":\"raw\"}", 0,
         RC_ECHAR},
        {"invalid UTF-8",
         "{\"v\":1,\"m\":{\"data\":\"\xff\xfe\"},\"n\":\"raw\"}", 0, RC_EUTF8},
        {"too big", NULL, 0, RC_ETOOBIG},
        {"not an object", "[1,2]", 0, RC_ENOTENV},
    };
    size_t nbad = sizeof bad / sizeof bad[0], i, big_len;
    char *big;
    rc_counters c0, c;
    unsigned long long expect_by[RC_REJECT_SLOTS];

    /* > RC_DEFAULT_MAX_DATA + RC_ENVELOPE_SLACK: well-formed otherwise */
    big_len = RC_DEFAULT_MAX_DATA + RC_ENVELOPE_SLACK + 1;
    big = malloc(big_len);
    assert_non_null(big);
    {
        static const char head[] = "{\"v\":1,\"n\":\"raw\",\"m\":{\"data\":\"";
        static const char tail[] = "\"}}";

        memcpy(big, head, sizeof head - 1);
        memset(big + sizeof head - 1, 'x',
               big_len - (sizeof head - 1) - (sizeof tail - 1));
        memcpy(big + big_len - (sizeof tail - 1), tail, sizeof tail - 1);
    }
    for (i = 0; i < nbad; i++) {
        if (bad[i].payload == NULL) {
            bad[i].payload = big;
            bad[i].len = big_len;
        } else if (bad[i].len == 0) {
            bad[i].len = strlen(bad[i].payload);
        }
    }

    ts_join(a1, "mal");
    ts_wait_ready(w, A, "mal");
    c0 = ts_ctr(A);
    memcpy(expect_by, c0.rejected_by, sizeof expect_by);

    for (i = 0; i < nbad; i++) {
        long long n =
            rh_publish(&w->rs, "sse:room:mal", bad[i].payload, bad[i].len);

        if (n != 1) {
            free(big);
            fail_msg("raw PUBLISH of \"%s\": %lld receivers", bad[i].what, n);
        }
        expect_by[-bad[i].code]++;
    }
    free(big);
    assert_int_equal(
        ts_publish_env(w, "sse:room:mal", "raw", "ok", "{\"fine\":true}"), 1);
    WAIT_FOR(w, a1->count >= 1, "the valid message after the bad ones");

    assert_int_equal(a1->count, 1);
    assert_string_equal(a1->event, "ok");
    c = ts_ctr(A);
    assert_int_equal(c.received, c0.received + nbad + 1);
    assert_int_equal(c.rejected, c0.rejected + nbad);
    assert_int_equal(c.delivered, c0.delivered + 1);
    for (i = 0; i < RC_REJECT_SLOTS; i++) {
        if (c.rejected_by[i] != expect_by[i])
            fail_msg("rejected_by[%zu] (%s) = %llu, expected %llu", i,
                     rc_err_name(-(int)i), c.rejected_by[i], expect_by[i]);
    }
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */
/* Re-entrancy: removing connections and freeing the adapter from a sink   */
/* ===================================================================== */

static void hook_remove_self(ts_rec *r, rc_conn *c, rc_frame *f,
                             const rc_message *m)
{
    (void)f;
    (void)m;
    rc_conn_remove(c);
    r->removed = 1;
    r->conn = NULL;
}

static void hook_remove_other(ts_rec *r, rc_conn *c, rc_frame *f,
                              const rc_message *m)
{
    ts_rec *victim = r->hook_arg;

    (void)c;
    (void)f;
    (void)m;
    if (victim && victim->conn) {
        rc_conn_remove(victim->conn);
        victim->removed = 1;
        victim->conn = NULL;
    }
}

static void remove_in_sink(ts_world *w, ts_node *A, ts_node *B, int remote,
                           const char *room)
{
    char id[3][16], ch[64];
    ts_rec *r[3];
    int i, rc;

    for (i = 0; i < 3; i++) {
        snprintf(id[i], sizeof id[i], "%s-%d", room, i + 1);
        r[i] = ts_add_conn(A, id[i]);
        ts_join(r[i], room);
    }
    ts_wait_ready(w, A, room);
    r[0]->hook = hook_remove_self;  /* removes itself */
    r[1]->hook = hook_remove_other; /* removes the member after it */
    r[1]->hook_arg = r[2];
    if (remote) {
        assert_int_equal(ts_bcast(B, room, "ev", "1", NULL, 0), 0);
        WAIT_FOR(w, r[1]->count == 1, "the second member to get it");
    } else {
        rc = ts_bcast(A, room, "ev", "1", NULL, 0);
        assert_int_equal(rc, 2);
    }
    assert_int_equal(r[0]->count, 1);
    assert_int_equal(r[1]->count, 1);
    assert_int_equal(r[2]->count, 0);
    assert_null(rc_conn_find(A->a, id[0]));
    assert_null(rc_conn_find(A->a, id[2]));
    assert_int_equal(rc_room_size(A->a, room), 1);

    /* the last one goes too: the room is unsubscribed */
    r[1]->hook = hook_remove_self;
    if (remote) {
        assert_int_equal(ts_bcast(B, room, "ev", "2", NULL, 0), 0);
        WAIT_FOR(w, r[1]->count == 2, "the second member to get it again");
    } else {
        assert_int_equal(ts_bcast(A, room, "ev", "2", NULL, 0), 1);
    }
    assert_int_equal(rc_room_size(A->a, room), 0);
    ts_wait_quiet(w, A);
    snprintf(ch, sizeof ch, "sse:room:%s", room);
    assert_int_equal(ts_numsub(w, ch), 0);
    assert_int_equal(ts_ctr(A).connections, 0);
}

static void t_conn_remove_in_sink(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");

    remove_in_sink(w, A, B, 0, "rml");
    remove_in_sink(w, A, B, 1, "rmr");
    ts_assert_clean(&(w)->problems);
}

static void hook_free_adapter(ts_rec *r, rc_conn *c, rc_frame *f,
                              const rc_message *m)
{
    (void)c;
    (void)f;
    (void)m;
    ts_node_close(r->owner);
}

/* rc_adapter_free from a sink on the remote path: the other members are
 * not called, later messages already read are dropped harmlessly, every
 * channel is unsubscribed, and nothing leaks (LSan). */
static void t_adapter_free_in_remote_sink(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2");
    ts_rec *b1 = ts_add_conn(B, "b1");

    ts_join(a1, "fr");
    ts_join(a2, "fr");
    ts_join(a1, "fr2");
    ts_join(b1, "ctl");
    ts_wait_ready(w, A, "fr");
    ts_wait_ready(w, A, "fr2");
    ts_wait_ready(w, B, "ctl");
    a1->hook = hook_free_adapter;

    /* three in a row: the next ones may sit in the same read buffer */
    assert_int_equal(ts_bcast(B, "fr", "ev", "1", NULL, 0), 0);
    assert_int_equal(ts_bcast(B, "fr", "ev", "2", NULL, 0), 0);
    assert_int_equal(ts_bcast(B, "fr2", "ev", "3", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 1, "a1 to get the message");
    assert_true(A->freed);
    WAIT_NUMSUB(w, "sse:room:fr", 0);
    WAIT_NUMSUB(w, "sse:room:fr2", 0);
    assert_int_equal(ts_bcast(B, "fr", "ev", "4", NULL, 0), 0);
    ts_sync_marker(w, B, "ctl", b1);
    assert_int_equal(a1->count, 1);
    assert_int_equal(a2->count, 0);
    ts_assert_clean(&(w)->problems);
}

/* rc_adapter_free from a sink on the local path. */
static void t_adapter_free_in_local_sink(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2");

    ts_join(a1, "fl");
    ts_join(a2, "fl");
    ts_wait_ready(w, A, "fl");
    a1->hook = hook_free_adapter;
    (void)ts_bcast(A, "fl", "ev", "1", NULL, 0); /* result: not specified */
    assert_true(A->freed);
    assert_int_equal(a1->count, 1);
    assert_int_equal(a2->count, 0);
    WAIT_NUMSUB(w, "sse:room:fl", 0);
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */
/* Teardown orders                                                         */
/* ===================================================================== */

/* Put an adapter in a busy state: rooms confirmed, one SUBSCRIBE and one
 * PUBLISH not yet sent. */
static void make_busy(ts_world *w, ts_node *n, ts_rec *r, const char *tag)
{
    char room[32];
    int i;

    for (i = 0; i < 5; i++) {
        snprintf(room, sizeof room, "%s%d", tag, i);
        ts_join(r, room);
    }
    for (i = 0; i < 5; i++) {
        snprintf(room, sizeof room, "%s%d", tag, i);
        ts_wait_ready(w, n, room);
    }
    snprintf(room, sizeof room, "%s-pending", tag);
    ts_join(r, room);
    snprintf(room, sizeof room, "%s0", tag);
    assert_true(ts_bcast(n, room, "ev", "1", NULL, 0) >= 1);
}

/* rc_adapter_free first, then the contexts: at once (hiredis hands the
 * adapter NULL replies), or after the loop ran to the replies. */
static void t_teardown_adapter_first(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *b1 = ts_add_conn(B, "b1");
    int i;

    make_busy(w, A, a1, "ta");
    make_busy(w, B, b1, "tb");

    /* A: free the adapter, then the contexts right away */
    ts_node_close(A);
    redisAsyncFree(A->pub->ac);
    redisAsyncFree(A->sub->ac);
    assert_null(A->pub->ac); /* the disconnect callbacks ran */
    assert_null(A->sub->ac);

    /* B: free the adapter, let the loop run until its UNSUBSCRIBEs are
     * answered, then free the contexts */
    ts_node_close(B);
    for (i = 0; i < 5; i++) {
        char ch[32];

        snprintf(ch, sizeof ch, "sse:room:tb%d", i);
        WAIT_NUMSUB(w, ch, 0);
        snprintf(ch, sizeof ch, "sse:room:ta%d", i);
        WAIT_NUMSUB(w, ch, 0);
    }
    WAIT_NUMSUB(w, "sse:room:tb-pending", 0);
    WAIT_NUMSUB(w, "sse:room:ta-pending", 0);
    redisAsyncFree(B->pub->ac);
    redisAsyncFree(B->sub->ac);
    ts_assert_clean(&(w)->problems);
}

/* The contexts first (their disconnect callbacks hand the adapter NULL),
 * then rc_adapter_free. In between the adapter keeps working locally. */
static void t_teardown_contexts_first(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1 = ts_add_conn(A, "a1");
    rc_counters c0, c;
    size_t mark;

    make_busy(w, A, a1, "tc");
    c0 = ts_ctr(A);
    mark = A->nev;
    /* the PUBLISH make_busy queued is lost with the context */
    redisAsyncFree(A->pub->ac);
    assert_null(A->pub->ac);
    redisAsyncFree(A->sub->ac);
    assert_null(A->sub->ac);
    assert_string_equal(ts_events_since(A, mark, "tc0"), "L");
    assert_int_equal(rc_room_is_ready(A->a, "tc0"), 0);
    c = ts_ctr(A);
    assert_int_equal(c.published, c0.published);
    assert_int_equal(c.publish_errors, c0.publish_errors + 1);

    /* no contexts: local delivery still works */
    assert_int_equal(ts_bcast(A, "tc1", "ev", "2", NULL, 0), 1);
    assert_int_equal(a1->count, 2);
    ts_join(a1, "tc-new");
    ts_leave(a1, "tc2");
    ts_pump(&w->loop);

    ts_node_close(A);
    WAIT_NUMSUB(w, "sse:room:tc0", 0);
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */
/* De-duplication window, allocator hooks, size limit, nested broadcasts  */
/* ===================================================================== */

/* PUBLISH on sse:room:<room> an envelope from a foreign node with this
 * id and data, as a multi-room broadcast publishes it on each room. */
static void publish_id(ts_world *w, const char *room, const char *id,
                       const char *data)
{
    rc_envelope env;
    char buf[256], ch[64];
    size_t len = 0;

    memset(&env, 0, sizeof env);
    env.msg = ts_msg("ev", data, id);
    env.node = "node-X";
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len), 0);
    snprintf(ch, sizeof ch, "sse:room:%s", room);
    assert_true(rh_publish(&w->rs, ch, buf, len) >= 1);
}

typedef struct dedup_case {
    ts_rec *r;       /* a member of dw1 and dw2 */
    unsigned window; /* its adapter's dedup_window */
    int want, dup;   /* deliveries and duplicates expected so far */
} dedup_case;

/* P envelopes with ids tag0..tag(P-1) through dw1, then the same bytes
 * through dw2: the second copies are duplicates while the window still
 * holds the first (P <= window), and never once they have left it. */
static void dedup_stream(ts_world *w, ts_node *A, dedup_case *k, int nk,
                         char tag, int period)
{
    char id[16];
    int i, j;

    for (j = 0; j < 2; j++) {
        for (i = 0; i < period; i++) {
            snprintf(id, sizeof id, "%c%d", tag, i);
            publish_id(w, j == 0 ? "dw1" : "dw2", id, "1");
        }
    }
    for (i = 0; i < nk; i++) {
        int dups = period <= (int)k[i].window ? period : 0;

        k[i].want += 2 * period - dups;
        k[i].dup += dups;
        ts_sync_marker(w, A, "dw1", k[i].r);
        if (k[i].r->count != k[i].want)
            fail_msg("after the period-%d stream: %s (window %u) got %d, "
                     "expected %d",
                     period, k[i].r->id, k[i].window, k[i].r->count, k[i].want);
    }
}

/* On the remote path a connection in several rooms of a multi-room
 * broadcast gets it once: it remembers the last dedup_window envelopes it
 * got (8 by default), keyed by their bytes and the room they came
 * through. A message id alone decides nothing: the same id with other
 * data, and the same envelope again in the same room, are delivered. An
 * empty id is no id. */
static void t_remote_dedup_window(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    static const int periods[] = {2, 3, 8, 9};
    rc_adapter_options o;
    dedup_case k[2];
    rc_counters c0[2];
    ts_node *C, *n[2];
    size_t i;
    int j;

    memset(&o, 0, sizeof o);
    o.node_id = "node-C";
    o.dedup_window = 2;
    C = ts_node_up_opts(w, 2, &o);
    n[0] = B;
    n[1] = C;
    for (j = 0; j < 2; j++) {
        memset(&k[j], 0, sizeof k[j]);
        k[j].r = ts_add_conn(n[j], j == 0 ? "b1" : "c1");
        k[j].window = j == 0 ? 8 : 2;
        ts_join(k[j].r, "dw1");
        ts_join(k[j].r, "dw2");
        ts_wait_ready(w, n[j], "dw1");
        ts_wait_ready(w, n[j], "dw2");
        c0[j] = ts_ctr(n[j]);
    }
    for (i = 0; i < sizeof periods / sizeof periods[0]; i++)
        dedup_stream(w, A, k, 2, (char)('p' + i), periods[i]);

    /* Mallory's id "m" first; alice's "m" (other data) still arrives, once
     * across both rooms; the same bytes again in one room arrive again;
     * an empty id is no id */
    publish_id(w, "dw1", "m", "\"mallory\"");
    publish_id(w, "dw1", "m", "\"alice\"");
    publish_id(w, "dw2", "m", "\"alice\"");
    publish_id(w, "dw1", "m", "\"alice\"");
    publish_id(w, "dw1", "", "7");
    publish_id(w, "dw2", "", "7");
    for (j = 0; j < 2; j++) {
        ts_sync_marker(w, A, "dw1", k[j].r);
        assert_int_equal(k[j].r->count, k[j].want + 5);
        assert_int_equal(ts_ctr(n[j]).duplicates,
                         c0[j].duplicates + (unsigned)k[j].dup + 1);
    }
    ts_assert_clean(&(w)->problems);
}

/* Everything an adapter allocates goes through its hooks and is given back
 * once the adapter and its contexts are gone; a frame kept by a sink is
 * the last block, freed by its unref. */
static void t_allocator_hooks(void **state)
{
    ts_world *w = *state;
    ts_acct *acct = calloc(2, sizeof *acct);
    rc_alloc hooks[2];
    rc_adapter_options o;
    ts_node *n[2];
    ts_rec *r[2];
    const char *rooms[2] = {"al1", "al2"};
    rc_message m = ts_msg("ev", "{\"big\":\"0123456789abcdef\"}", "id-al");
    rc_broadcast_options bo;
    int i;

    /* freed by the teardown after the adapters and their frames */
    assert_non_null(acct);
    w->user = acct;
    w->user_free = free;
    for (i = 0; i < 2; i++) {
        char id[16];

        hooks[i] = ts_acct_hooks(&acct[i]);
        snprintf(id, sizeof id, "node-%c", 'A' + i);
        memset(&o, 0, sizeof o);
        o.node_id = id;
        o.alloc = &hooks[i];
        n[i] = ts_node_up_opts(w, i, &o);
        snprintf(id, sizeof id, "%c1", 'a' + i);
        r[i] = ts_add_conn(n[i], id);
        ts_join(r[i], "al1");
        ts_join(r[i], "al2");
        ts_wait_ready(w, n[i], "al1");
        ts_wait_ready(w, n[i], "al2");
    }
    r[1]->hook = hook_keep_frame;
    memset(&bo, 0, sizeof bo);
    bo.meta = "{\"k\":[1,2,3]}";
    bo.meta_len = strlen(bo.meta);
    assert_int_equal(rc_broadcast(n[0]->a, rooms, 2, &m, &bo), 1);
    WAIT_FOR(w, r[1]->count == 1 && ts_ctr(n[1]).duplicates == 1,
             "b1 to get the message once (and drop its duplicate)");
    assert_true(acct[0].live > 0);
    assert_true(acct[1].live > 0);

    /* both adapters go, then their contexts */
    for (i = 0; i < 2; i++)
        ts_node_close(n[i]);
    for (i = 0; i < 2; i++) {
        WAIT_FOR(w, acct[i].live <= (i == 1 ? 1 : 0),
                 "the adapter to give back its memory once its replies "
                 "are in");
        redisAsyncFree(n[i]->pub->ac);
        redisAsyncFree(n[i]->sub->ac);
    }
    assert_int_equal(acct[0].live, 0);
    assert_int_equal(acct[1].live, 1); /* the kept frame */
    assert_non_null(r[1]->kept);
    rc_frame_unref(r[1]->kept);
    r[1]->kept = NULL;
    assert_int_equal(acct[1].live, 0);
    assert_int_equal(acct[0].foreign, 0);
    assert_int_equal(acct[1].foreign, 0);
    ts_assert_clean(&(w)->problems);
}

/* Data of exactly RC_DEFAULT_MAX_DATA bytes goes through Redis intact; one
 * byte more is refused with nothing delivered or published. */
static void t_data_size_limit(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *b1 = ts_add_conn(B, "b1");
    size_t n = RC_DEFAULT_MAX_DATA;
    char *data = malloc(n + 2);
    rc_message m = RC_MESSAGE_INIT;
    rc_counters ca0;
    int rc;

    assert_non_null(data);
    data[0] = '"';
    memset(data + 1, 'q', n - 2);
    data[n - 1] = '"';
    data[n] = '\0';
    ts_join(a1, "big");
    ts_join(b1, "big");
    ts_wait_ready(w, A, "big");
    ts_wait_ready(w, B, "big");
    ca0 = ts_ctr(A);

    m.data = data;
    m.data_len = n;
    m.id = "big-1";
    rc = rc_broadcast_to_room(A->a, "big", &m, NULL, 0);
    if (rc != 1) {
        free(data);
        fail_msg("broadcast of %zu bytes of data: %d", n, rc);
    }
    WAIT_FOR(w, b1->count == 1, "b1 to get 1 MiB of data");
    assert_int_equal(b1->data_len, n);
    assert_int_equal(memcmp(b1->data, data, n), 0);
    assert_int_equal(b1->frame_len, a1->frame_len);
    assert_int_equal(memcmp(b1->frame, a1->frame, a1->frame_len), 0);

    /* one byte more */
    data[n - 1] = 'q';
    data[n] = '"';
    m.data_len = n + 1;
    m.id = "big-2";
    rc = rc_broadcast_to_room(A->a, "big", &m, NULL, 0);
    free(data);
    assert_int_equal(rc, RC_ETOOBIG);
    assert_int_equal(a1->count, 1);
    ts_sync_marker(w, A, "big", b1);
    assert_int_equal(b1->count, 1);
    assert_int_equal(ts_ctr(A).published, ca0.published + 2); /* + marker */
    ts_assert_clean(&(w)->problems);
}

static void hook_relay(ts_rec *r, rc_conn *c, rc_frame *f, const rc_message *m)
{
    ts_node *n = r->owner;
    char data[96];
    rc_message in;
    int rc;

    (void)c;
    (void)f;
    if (m->event == NULL || strcmp(m->event, "outer") != 0)
        return;
    snprintf(data, sizeof data, "{\"relayed_by\":\"%s\"}", r->id);
    in = ts_msg("inner", data, NULL);
    rc = rc_broadcast_to_room(n->a, r->hook_room, &in, NULL, 0);
    r->hook_rc[0]++;
    if (rc < 0)
        ts_note(&(r->w)->problems, "%s: broadcast from inside a sink: %s",
                r->id, rc_strerror(rc));
}

/* Broadcasts made from inside sinks, also in the middle of a multi-room
 * broadcast: the outer one still reaches each connection once and
 * publishes its own envelope for every room; the inner ones are delivered
 * and published too. */
static void t_broadcast_from_sink(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1"), *a2 = ts_add_conn(A, "a2"),
           *a3 = ts_add_conn(A, "a3");
    ts_rec *b1 = ts_add_conn(B, "b1"), *b2 = ts_add_conn(B, "b2");
    const char *rooms[2] = {"n1", "n2"};
    rc_message outer = ts_msg("outer", "{\"o\":1}", NULL);
    redisContext *raw;
    char *ch = NULL, *payload = NULL, scratch[256];
    size_t len = 0;
    rc_envelope env;
    int i, outer_n1 = 0, outer_n2 = 0, inner = 0;
    unsigned long long p0;

    /* a1 in n1 and n2 relays to n2; a2 in n2; a3 in n3 */
    ts_join(a1, "n1");
    ts_join(a1, "n2");
    ts_join(a2, "n2");
    ts_join(a3, "n3");
    ts_join(b1, "n1");
    ts_join(b2, "n3");
    ts_wait_ready(w, A, "n1");
    ts_wait_ready(w, A, "n2");
    ts_wait_ready(w, A, "n3");
    ts_wait_ready(w, B, "n1");
    ts_wait_ready(w, B, "n3");
    raw = ts_raw_sub(w, "sse:room:n2");
    a1->hook = hook_relay;
    a1->hook_room = "n2";
    b1->hook = hook_relay; /* remote path: relays to n3 */
    b1->hook_room = "n3";

    /* outer to n1+n2 on A: a1 once (relays inner to n2: a1, a2), a2 once */
    p0 = ts_ctr(A).published;
    assert_int_equal(rc_broadcast(A->a, rooms, 2, &outer, NULL), 2);
    assert_int_equal(a1->hook_rc[0], 1);
    /* each got outer once and inner once */
    assert_int_equal(a1->count, 2);
    assert_int_equal(a2->count, 2);

    /* on the wire, n2 carries the inner and the outer envelope (read once
     * A's three PUBLISHes are answered: the raw read blocks the loop) */
    WAIT_FOR(w, ts_ctr(A).published == p0 + 3,
             "A: outer (n1, n2) and inner (n2) published");
    for (i = 0; i < 2; i++) {
        ts_raw_next(raw, &ch, &payload, &len);
        ts_decode(payload, len, &env, scratch, sizeof scratch);
        if (env.msg.event && strcmp(env.msg.event, "outer") == 0)
            outer_n2++;
        else if (env.msg.event && strcmp(env.msg.event, "inner") == 0)
            inner++;
        free(ch);
        free(payload);
    }
    assert_int_equal(outer_n2, 1);
    assert_int_equal(inner, 1);

    /* B: b1 got outer (n1) and relayed it to n3 from its sink: b2 gets it
     * locally, a3 remotely */
    WAIT_FOR(w, b1->count == 1 && b1->hook_rc[0] == 1, "b1 to get outer");
    outer_n1 = b1->count;
    assert_int_equal(b2->count, 1);
    WAIT_FOR(w, a3->count == 1, "a3 to get the message b1 relayed to n3");
    assert_string_equal(a3->event, "inner");
    assert_string_equal(a3->data, "{\"relayed_by\":\"b1\"}");
    ts_sync_marker(w, A, "n1", b1);
    assert_int_equal(outer_n1, 1);
    assert_int_equal(b1->count, 1);
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */
/* R6: echo and except, 1,000 broadcasts                                   */
/* ===================================================================== */

static void t_r6_echo_except_order(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *rs[3];
    static int expect[3][1000];
    size_t nexp[3] = {0, 0, 0};
    uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
    rc_counters ca0, cb0, c;
    long long t0 = ts_now_ms();
    int i, k;
    char data[32];

    rs[0] = ts_add_conn(A, "a1");
    rs[1] = ts_add_conn(A, "a2");
    rs[2] = ts_add_conn(B, "b1");
    for (k = 0; k < 3; k++)
        ts_join(rs[k], "r6");
    ts_wait_ready(w, A, "r6");
    ts_wait_ready(w, B, "r6");
    ca0 = ts_ctr(A);
    cb0 = ts_ctr(B);

    for (i = 0; i < 1000; i++) {
        int ex = (int)rng_below(&rng, 3);
        int rc;

        snprintf(data, sizeof data, "{\"seq\":%d}", i);
        rc = ts_bcast(A, "r6", "seq", data, rs[ex]->id, 0);
        if (rc != (ex == 2 ? 2 : 1))
            fail_msg("broadcast %d except %s: %d local deliveries", i,
                     rs[ex]->id, rc);
        for (k = 0; k < 3; k++)
            if (k != ex)
                expect[k][nexp[k]++] = i;
        if (i % 50 == 49)
            ts_pump(&w->loop);
    }
    WAIT_FOR(w, rs[2]->nseq >= nexp[2], "b1 to get all its messages");
    WAIT_FOR(w, ts_ctr(A).echoes >= ca0.echoes + 1000,
             "A to see its 1000 envelopes come back (echoes)");
    ts_sync_marker(w, A, "r6", rs[2]);
    WAIT_FOR(w, ts_ctr(A).echoes == ca0.echoes + 1001,
             "A to see the marker come back too");

    for (k = 0; k < 3; k++) {
        size_t j;

        if (rs[k]->nseq != nexp[k])
            fail_msg("%s got %zu messages, expected %zu", rs[k]->id,
                     rs[k]->nseq, nexp[k]);
        for (j = 0; j < nexp[k]; j++)
            if (rs[k]->seqs[j] != expect[k][j])
                fail_msg("%s: message #%zu is seq %d, expected %d", rs[k]->id,
                         j, rs[k]->seqs[j], expect[k][j]);
    }
    c = ts_ctr(A);
    assert_int_equal(c.echoes, ca0.echoes + 1001);
    assert_int_equal(c.delivered, ca0.delivered + nexp[0] + nexp[1] + 2);
    c = ts_ctr(B);
    assert_int_equal(c.received, cb0.received + 1001);
    assert_int_equal(c.delivered, cb0.delivered + nexp[2] + 1);
    assert_int_equal(c.echoes, cb0.echoes);
    print_message("R6: 1000 broadcasts, %zu/%zu/%zu deliveries, %lld ms\n",
                  nexp[0], nexp[1], nexp[2], ts_now_ms() - t0);
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */
/* R5: churn                                                               */
/* ===================================================================== */

#define CH_ROOMS 10000
#define CH_CONNS 2000
#define CH_OPS 200000

typedef struct churn {
    unsigned char *bits; /* conn * CH_ROOMS + room */
    int *room_n;
    int **conn_rooms; /* a conn's rooms, unordered */
    int *conn_nrooms, *conn_cap;
    rc_conn **conns;
    size_t memberships, occupied;
    unsigned long long delivered; /* sink calls */
} churn;

static void churn_free(void *arg)
{
    churn *ch = arg;
    int i;

    if (ch == NULL)
        return;
    for (i = 0; ch->conn_rooms && i < CH_CONNS; i++)
        free(ch->conn_rooms[i]);
    free(ch->conn_rooms);
    free(ch->conn_nrooms);
    free(ch->conn_cap);
    free(ch->bits);
    free(ch->room_n);
    free(ch->conns);
    free(ch);
}

static int churn_sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    churn *ch = user;

    (void)c;
    (void)f;
    (void)m;
    ch->delivered++;
    return 0;
}

static int ch_member(const churn *ch, int c, int r)
{
    size_t bit = (size_t)c * CH_ROOMS + (size_t)r;

    return (ch->bits[bit >> 3] >> (bit & 7)) & 1;
}

static void ch_set(churn *ch, int c, int r, int on)
{
    size_t bit = (size_t)c * CH_ROOMS + (size_t)r;

    if (on)
        ch->bits[bit >> 3] |= (unsigned char)(1u << (bit & 7));
    else
        ch->bits[bit >> 3] &= (unsigned char)~(1u << (bit & 7));
}

static void ch_model_add(churn *ch, int c, int r)
{
    if (ch->conn_nrooms[c] == ch->conn_cap[c]) {
        int cap = ch->conn_cap[c] ? ch->conn_cap[c] * 2 : 8;
        int *p = realloc(ch->conn_rooms[c], (size_t)cap * sizeof *p);

        if (p == NULL)
            fail_msg("out of memory");
        ch->conn_rooms[c] = p;
        ch->conn_cap[c] = cap;
    }
    ch->conn_rooms[c][ch->conn_nrooms[c]++] = r;
    ch_set(ch, c, r, 1);
    if (ch->room_n[r]++ == 0)
        ch->occupied++;
    ch->memberships++;
}

static void ch_model_del(churn *ch, int c, int r)
{
    int i;

    for (i = 0; i < ch->conn_nrooms[c]; i++) {
        if (ch->conn_rooms[c][i] == r) {
            ch->conn_rooms[c][i] = ch->conn_rooms[c][--ch->conn_nrooms[c]];
            break;
        }
    }
    ch_set(ch, c, r, 0);
    if (--ch->room_n[r] == 0)
        ch->occupied--;
    ch->memberships--;
}

static void ch_room_name(char *buf, size_t cap, int r)
{
    snprintf(buf, cap, "r%d", r);
}

static void ch_join(churn *ch, int c, int r, long op)
{
    char name[16];
    int expect = !ch_member(ch, c, r);
    int rc;

    ch_room_name(name, sizeof name, r);
    rc = rc_room_join(ch->conns[c], name);
    if (rc != expect)
        fail_msg("churn op %ld: rc_room_join(c%d, %s) = %d, expected %d", op, c,
                 name, rc, expect);
    if (expect)
        ch_model_add(ch, c, r);
}

static void ch_leave(churn *ch, int c, int r, long op)
{
    char name[16];
    int expect = ch_member(ch, c, r);
    int rc;

    ch_room_name(name, sizeof name, r);
    rc = rc_room_leave(ch->conns[c], name);
    if (rc != expect)
        fail_msg("churn op %ld: rc_room_leave(c%d, %s) = %d, expected %d", op,
                 c, name, rc, expect);
    if (expect)
        ch_model_del(ch, c, r);
}

struct leave_all_ctx {
    churn *ch;
    int c;
    int bad;
};

static void ch_left_cb(const char *room, void *user)
{
    struct leave_all_ctx *x = user;
    int r;

    if (room[0] != 'r' || (r = atoi(room + 1)) < 0 || r >= CH_ROOMS ||
        !ch_member(x->ch, x->c, r)) {
        x->bad++;
        return;
    }
    ch_model_del(x->ch, x->c, r);
}

static void ch_add_conn(churn *ch, ts_node *A, int c)
{
    char id[16];
    int rc;

    snprintf(id, sizeof id, "c%d", c);
    rc = rc_conn_add(A->a, id, churn_sink, ch, &ch->conns[c]);
    if (rc != 0)
        fail_msg("rc_conn_add(%s): %s", id, rc_strerror(rc));
}

static void t_r5_churn(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, "churn:", "node-A");
    churn *ch;
    uint64_t rng = UINT64_C(0x2545f4914f6cdd1d);
    long op;
    int c, r, i;
    long long t0 = ts_now_ms(), t_ops, t_quiet;
    rc_counters cnt;
    const char **names;
    size_t nnames;
    ts_strlist chans;
    char name[32], *env;
    size_t env_len;
    redisContext *pubc;
    unsigned long long recv0;

    rc_adapter_set_room_cb(A->a, NULL, NULL);
    ch = calloc(1, sizeof *ch);
    assert_non_null(ch);
    w->user = ch;
    w->user_free = churn_free;
    ch->bits = calloc((size_t)CH_CONNS * CH_ROOMS / 8 + 1, 1);
    ch->room_n = calloc(CH_ROOMS, sizeof *ch->room_n);
    ch->conn_rooms = calloc(CH_CONNS, sizeof *ch->conn_rooms);
    ch->conn_nrooms = calloc(CH_CONNS, sizeof *ch->conn_nrooms);
    ch->conn_cap = calloc(CH_CONNS, sizeof *ch->conn_cap);
    ch->conns = calloc(CH_CONNS, sizeof *ch->conns);
    assert_true(ch->bits && ch->room_n && ch->conn_rooms && ch->conn_nrooms &&
                ch->conn_cap && ch->conns);
    for (c = 0; c < CH_CONNS; c++)
        ch_add_conn(ch, A, c);

    for (op = 0; op < CH_OPS; op++) {
        unsigned p = rng_below(&rng, 1000);

        c = (int)rng_below(&rng, CH_CONNS);
        if (p < 450) { /* join */
            ch_join(ch, c, (int)rng_below(&rng, CH_ROOMS), op);
        } else if (p < 850) { /* leave one of its rooms */
            if (ch->conn_nrooms[c] > 0)
                r = ch->conn_rooms[c][rng_below(&rng,
                                                (unsigned)ch->conn_nrooms[c])];
            else
                r = (int)rng_below(&rng, CH_ROOMS);
            ch_leave(ch, c, r, op);
        } else if (p < 920) { /* join then leave at once, or the reverse */
            r = (int)rng_below(&rng, CH_ROOMS);
            if (ch_member(ch, c, r)) {
                ch_leave(ch, c, r, op);
                ch_join(ch, c, r, op);
            } else {
                ch_join(ch, c, r, op);
                ch_leave(ch, c, r, op);
            }
        } else if (p < 997) { /* rejoin after leave (and sometimes again) */
            if (ch->conn_nrooms[c] == 0) {
                ch_join(ch, c, (int)rng_below(&rng, CH_ROOMS), op);
            } else {
                r = ch->conn_rooms[c][rng_below(&rng,
                                                (unsigned)ch->conn_nrooms[c])];
                ch_leave(ch, c, r, op);
                ch_join(ch, c, r, op);
                if (p & 1) {
                    ch_leave(ch, c, r, op);
                    ch_join(ch, c, r, op);
                }
            }
        } else if (p < 999) { /* leave everything */
            struct leave_all_ctx x;
            int before = ch->conn_nrooms[c];
            int rc;

            x.ch = ch;
            x.c = c;
            x.bad = 0;
            rc = rc_room_leave_all(ch->conns[c], ch_left_cb, &x);
            if (rc != before || x.bad || ch->conn_nrooms[c] != 0)
                fail_msg("churn op %ld: rc_room_leave_all(c%d) = %d, "
                         "expected %d (%d unknown rooms reported)",
                         op, c, rc, before, x.bad);
        } else { /* remove the connection and add it again */
            while (ch->conn_nrooms[c] > 0)
                ch_model_del(ch, c, ch->conn_rooms[c][0]);
            rc_conn_remove(ch->conns[c]);
            ch->conns[c] = NULL;
            ch_add_conn(ch, A, c);
        }
        if (op % 1000 == 999) {
            for (i = 0; i < 4; i++)
                ts_pump(&w->loop);
        }
    }
    t_ops = ts_now_ms();

    WAIT_FOR_MS(w, ts_is_quiet(A), 30000,
                "churn: every SUBSCRIBE/UNSUBSCRIBE confirmed");
    t_quiet = ts_now_ms();

    /* the adapter's view equals the model */
    cnt = ts_ctr(A);
    if (cnt.rooms != ch->occupied || cnt.memberships != ch->memberships ||
        cnt.connections != CH_CONNS)
        fail_msg("churn: counters rooms=%llu memberships=%llu "
                 "connections=%llu, model %zu/%zu/%d",
                 cnt.rooms, cnt.memberships, cnt.connections, ch->occupied,
                 ch->memberships, CH_CONNS);
    nnames = rc_adapter_rooms(A->a, NULL, 0);
    assert_int_equal(nnames, ch->occupied);
    for (r = 0; r < CH_ROOMS; r++) {
        ch_room_name(name, sizeof name, r);
        if (rc_room_size(A->a, name) != (size_t)ch->room_n[r])
            fail_msg("churn: rc_room_size(%s) = %zu, model %d", name,
                     rc_room_size(A->a, name), ch->room_n[r]);
        if (rc_room_is_ready(A->a, name) != (ch->room_n[r] > 0))
            fail_msg("churn: rc_room_is_ready(%s) = %d with %d members after "
                     "quiesce",
                     name, rc_room_is_ready(A->a, name), ch->room_n[r]);
    }

    /* PUBSUB CHANNELS churn:* == exactly rc_adapter_rooms, prefixed */
    names = calloc(nnames + 1, sizeof *names);
    assert_non_null(names);
    assert_int_equal(rc_adapter_rooms(A->a, names, nnames), nnames);
    {
        char **want = calloc(nnames + 1, sizeof *want);
        size_t j;

        assert_non_null(want);
        for (j = 0; j < nnames; j++) {
            size_t wl = strlen(names[j]) + sizeof "churn:";

            want[j] = malloc(wl);
            if (want[j] == NULL)
                fail_msg("out of memory");
            else
                snprintf(want[j], wl, "churn:%s", names[j]);
        }
        free(names);
        qsort(want, nnames, sizeof *want, ts_cmp_str);
        chans = ts_pubsub_channels(w, "churn:*");
        {
            char wx[64] = "", wy[64] = "";
            size_t bad_at = (size_t)-1;

            for (j = 0; j < nnames || j < chans.n; j++) {
                const char *x = j < nnames ? want[j] : "(end)";
                const char *y = j < chans.n ? chans.v[j] : "(end)";

                if (strcmp(x, y) != 0) {
                    snprintf(wx, sizeof wx, "%s", x);
                    snprintf(wy, sizeof wy, "%s", y);
                    bad_at = j;
                    break;
                }
            }
            for (j = 0; j < nnames; j++)
                free(want[j]);
            free(want);
            ts_strlist_free(&chans);
            if (bad_at != (size_t)-1)
                fail_msg("churn: PUBSUB CHANNELS differs from the rooms "
                         "with members at #%zu (sorted): rooms say %s, "
                         "Redis %s",
                         bad_at, wx, wy);
        }
    }

    /* and the client side dispatches every subscribed channel: one raw
     * PUBLISH per room (pipelined), each with 1 receiver for an occupied
     * room, 0 otherwise; every member's sink runs once */
    env = ts_envelope("raw-churn", "c", "0", 1, &env_len);
    pubc = ts_raw(w);
    recv0 = ts_ctr(A).received;
    ch->delivered = 0;
    for (r = 0; r < CH_ROOMS; r++) {
        snprintf(name, sizeof name, "churn:r%d", r);
        redisAppendCommand(pubc, "PUBLISH %s %b", name, env, env_len);
    }
    free(env); /* the commands hold copies */
    for (r = 0; r < CH_ROOMS; r++) {
        void *p = NULL;
        redisReply *rep;
        long long n;

        if (redisGetReply(pubc, &p) != REDIS_OK || p == NULL)
            fail_msg("churn: PUBLISH reply %d: %s", r, pubc->errstr);
        rep = p;
        n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
        freeReplyObject(rep);
        if (n != (ch->room_n[r] > 0))
            fail_msg("churn: PUBLISH churn:r%d reached %lld subscribers, "
                     "room has %d members",
                     r, n, ch->room_n[r]);
    }
    WAIT_FOR_MS(w, ch->delivered >= ch->memberships, 30000,
                "churn: every member to get the raw publish of its room");
    assert_int_equal(ts_ctr(A).received, recv0 + ch->occupied);
    assert_int_equal(ch->delivered, ch->memberships);

    print_message("R5: %d ops in %lld ms, quiesce %lld ms, %zu rooms with "
                  "members, %zu memberships, %llu SUBSCRIBE / %llu "
                  "UNSUBSCRIBE sent\n",
                  CH_OPS, t_ops - t0, t_quiet - t_ops, ch->occupied,
                  ch->memberships, cnt.subscribes_sent, cnt.unsubscribes_sent);
    ts_assert_clean(&(w)->problems);
}

/* ===================================================================== */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_first_member_subscribes_once),
        T(t_last_member_unsubscribes),
        T(t_leave_noop),
        T(t_leave_all_join_order),
        T(t_unknown_queries),
        T(t_local_only_adapter),
        T(t_local_only_flag),
        T(t_no_local_members_still_publishes),
        T(t_delivered_counts_accepting_sinks),
        T(t_no_delivery_without_subscription),
        T(t_rapid_publishes_in_order),
        T(t_two_nodes_no_echo),
        T(t_except),
        T(t_custom_prefix),
        T(t_remote_frame_bytes),
        T(t_multi_room_broadcast),
        T(t_filter_and_meta),
        T(t_leave_rejoin_before_reply),
        T(t_leave_rejoin_in_sink),
        T(t_last_channel_dropped_while_subscribing),
        T(t_swap_sub_without_null),
        T(t_resubscribe_after_host_disconnect),
        T(t_resubscribe_after_server_kill),
        T(t_resubscribe_after_set_sub_null),
        T(t_malformed_payloads),
        T(t_conn_remove_in_sink),
        T(t_adapter_free_in_remote_sink),
        T(t_adapter_free_in_local_sink),
        T(t_teardown_adapter_first),
        T(t_teardown_contexts_first),
        T(t_remote_dedup_window),
        T(t_allocator_hooks),
        T(t_data_size_limit),
        T(t_broadcast_from_sink),
        T(t_r6_echo_except_order),
        T(t_r5_churn),
    };

    /* RC_TEST_FILTER=t_churn* runs only the matching tests. */
    if (getenv("RC_TEST_FILTER"))
        cmocka_set_test_filter(getenv("RC_TEST_FILTER"));
    return cmocka_run_group_tests_name("adapter_redis", tests, NULL, NULL);
}
