/*
 * redis-cluster:// links against a real 3-master, 3-replica Redis Cluster
 * on loopback (topo_harness). Rooms are spread over every shard; each
 * test counts what every member got:
 *   - sharded fan-out: two nodes, rooms on all masters, SSUBSCRIBE on the
 *     owner of each room's slot (PUBSUB SHARDNUMSUB on that master);
 *   - classic mode (PUBLISH/SUBSCRIBE) carries the same;
 *   - a busy room's slot migrated mid-traffic: the room is LOST and READY
 *     again on the new owner, and messages flow there;
 *   - CLUSTER FAILOVER, and kill -9 of a master: every room ready again
 *     within 2 s of the cluster being healthy, and carrying messages;
 *   - admission (sessions by code, a cap across nodes, close) and one
 *     cluster-wide rate bucket shared by two nodes.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomcast/transport.h"
#include "test_nodes.h"
#include "topo_harness.h"

#define ROOMS 12
#define READY_MS 2000 /* rooms ready again after the cluster is healthy */

static th_cluster cl;

static int setup(void **state)
{
    if (ts_world_setup(state, NULL, 0) != 0)
        return -1;
    return th_cluster_start(&cl, 3, 1);
}

static int teardown(void **state)
{
    int rc = ts_world_teardown(state);

    if (th_cluster_stop(&cl) != 0)
        rc = -1;
    return rc;
}

static void url_of(char *buf, size_t cap, const char *opts)
{
    int m0 = cl.master[0], m1 = cl.master[1];

    snprintf(buf, cap, "redis-cluster://127.0.0.1:%d,127.0.0.1:%d%s%s",
             cl.node[m0].rh.port, cl.node[m1].rh.port, opts ? "?" : "",
             opts ? opts : "");
}

static void room_name(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "room%d", i);
}

/* Every room of n ready. */
static int all_ready(ts_node *n)
{
    char room[32];
    int i;

    for (i = 0; i < ROOMS; i++) {
        room_name(room, sizeof room, i);
        if (rc_room_is_ready(n->a, room) != 1)
            return 0;
    }
    return 1;
}

/* Two nodes, a member of B in each room; rooms ready on both. */
static void two_nodes(ts_world *w, const char *opts, ts_node **a, ts_node **b,
                      ts_rec **recs)
{
    char url[256], room[32], id[32];
    int i;

    url_of(url, sizeof url, opts);
    *a = ts_node_link_quick(w, 0, "A", url);
    *b = ts_node_link_quick(w, 1, "B", url);
    for (i = 0; i < ROOMS; i++) {
        room_name(room, sizeof room, i);
        snprintf(id, sizeof id, "b%d", i);
        recs[i] = ts_add_conn(*b, id);
        ts_join(recs[i], room);
    }
    WAIT_FOR(w, ts_link_up(*a) && ts_link_up(*b) && all_ready(*b),
             "both links UP and every room ready on B");
}

/* Every room carries a message from A to B. */
static void every_room(ts_world *w, ts_node *a, ts_rec **recs, int round)
{
    char room[32], data[64];
    int i;

    for (i = 0; i < ROOMS; i++) {
        room_name(room, sizeof room, i);
        snprintf(data, sizeof data, "{\"round\":%d,\"room\":%d}", round, i);
        ts_deliver(w, a, room, recs[i], data);
    }
}

/* PUBSUB SHARDNUMSUB of a room's channel on the master of its slot. */
static long long shardnumsub(const char *room)
{
    char chan[64];
    int m;
    redisReply *r;
    long long n = -1;

    snprintf(chan, sizeof chan, "%s%s", RC_DEFAULT_PREFIX, room);
    m = th_cluster_node_of_slot(&cl, rc_keyslot(chan, strlen(chan)));
    r = rh_cmd(&cl.node[m].rh, "PUBSUB SHARDNUMSUB %s", chan);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        n = r->element[1]->integer;
    freeReplyObject(r);
    return n;
}

/* ===================================================================== */

static void t_sharded_fanout(void **state)
{
    ts_world *w = *state;
    ts_node *a, *b;
    ts_rec *recs[ROOMS];
    char room[32];
    int i;

    two_nodes(w, NULL, &a, &b, recs);
    every_room(w, a, recs, 1);
    for (i = 0; i < ROOMS; i++) {
        room_name(room, sizeof room, i);
        assert_int_equal(shardnumsub(room), 1);
    }
    /* Emptied (SUNSUBSCRIBE confirmed), joined again: ready again. */
    ts_leave(recs[0], "room0");
    WAIT_FOR(w, rc_room_size(b->a, "room0") == 0 && shardnumsub("room0") == 0,
             "room0 unsubscribed once empty");
    ts_join(recs[0], "room0");
    WAIT_FOR(w, rc_room_is_ready(b->a, "room0") == 1,
             "room0 ready again after a rejoin");
    ts_deliver(w, a, "room0", recs[0], "{\"again\":1}");
    ts_assert_clean(&w->problems);
}

static void t_classic(void **state)
{
    ts_world *w = *state;
    ts_node *a, *b;
    ts_rec *recs[ROOMS];

    two_nodes(w, "pubsub=classic", &a, &b, recs);
    every_room(w, a, recs, 1);
    assert_int_equal(shardnumsub("room0"), 0);
    ts_assert_clean(&w->problems);
}

static void t_migrate_busy_room(void **state)
{
    ts_world *w = *state;
    ts_node *a, *b;
    ts_rec *recs[ROOMS];
    char chan[64];
    int slot, from, to, k;
    unsigned long lost;

    two_nodes(w, NULL, &a, &b, recs);
    snprintf(chan, sizeof chan, "%sroom0", RC_DEFAULT_PREFIX);
    slot = rc_keyslot(chan, strlen(chan));
    from = th_cluster_shard_of_slot(&cl, slot);
    to = (from + 1) % 3;
    lost = b->lost_events;
    for (k = 0; k < 20; k++) /* traffic in flight */
        (void)ts_bcast(a, "room0", NULL, "{\"busy\":1}", NULL, 0);
    assert_int_equal(th_cluster_migrate_slot(&cl, slot, to), 0);
    WAIT_FOR(w, b->lost_events > lost && all_ready(b),
             "room0 LOST and READY again after its slot moved");
    ts_deliver(w, a, "room0", recs[0], "{\"after\":\"migration\"}");
    assert_int_equal(shardnumsub("room0"), 1);
    every_room(w, a, recs, 2);
    ts_assert_clean(&w->problems);
}

/* The cluster is healthy again (the harness waited for it, the loop
 * standing still): B hears its rooms of that shard LOST, then has every
 * room ready within READY_MS. */
static void ready_again(ts_world *w, ts_node *b, unsigned long lost,
                        const char *what)
{
    long long t0 = ts_now_ms();

    WAIT_FOR(w, b->lost_events > lost, "B's rooms of that shard LOST");
    WAIT_FOR_MS(w, all_ready(b), READY_MS, what);
    print_message("%s: %lu rooms lost, every room ready %lld ms after the "
                  "cluster was ok\n",
                  what, b->lost_events - lost, ts_now_ms() - t0);
}

/* Rooms carry messages, fault(&cl, m) runs (the harness returns once the
 * cluster is healthy), then every room is ready again within READY_MS and
 * carries messages. */
static void across(ts_world *w, int (*fault)(th_cluster *, int), int m,
                   const char *what)
{
    ts_node *a, *b;
    ts_rec *recs[ROOMS];
    unsigned long lost;

    two_nodes(w, NULL, &a, &b, recs);
    every_room(w, a, recs, 1);
    lost = b->lost_events;
    assert_int_equal(fault(&cl, m), 0);
    ready_again(w, b, lost, what);
    every_room(w, a, recs, 2);
    ts_assert_clean(&w->problems);
}

static void t_failover(void **state)
{
    across(*state, th_cluster_failover, 1, "CLUSTER FAILOVER");
}

static void t_kill_master(void **state)
{
    across(*state, th_cluster_kill_master, 2, "kill -9 of a master");
}

/* An admission or rate answer. */
typedef struct answer {
    int calls, rv;
    char room[64];
} answer;

static void on_admit(rc_adapter *a, int rv, const char *room,
                     unsigned long long retry_ms, void *user)
{
    answer *x = user;

    (void)a;
    (void)retry_ms;
    x->calls++;
    x->rv = rv;
    snprintf(x->room, sizeof x->room, "%s", room ? room : "");
}

static void on_rate(rc_adapter *a, int rv, unsigned long long retry_ms,
                    void *user)
{
    answer *x = user;

    (void)a;
    (void)retry_ms;
    x->calls++;
    x->rv = rv;
}

/* A call was made (sent: its return): wait for its one answer, give its
 * rv. */
static int answer_of(ts_world *w, answer *x, int sent, const char *what)
{
    if (sent != 0)
        fail_msg("%s: %s", what, rc_strerror(sent));
    WAIT_FOR(w, x->calls == 1, "the admission call answered");
    return x->rv;
}
#define ANSWER(w, x, call) ((x)->calls = 0, answer_of((w), (x), (call), #call))

/* Admission and cluster-wide rate limits on three masters: sessions under
 * codes spread over the slots, a cap held across nodes, a close, and one
 * rate bucket shared by both nodes. */
static void t_admission_and_limits(void **state)
{
    ts_world *w = *state;
    ts_node *a, *b;
    ts_rec *recs[ROOMS];
    rc_room_spec spec;
    rc_rate rate = {1.0, 3};
    answer x;
    char room[64];
    int i, allowed = 0;

    two_nodes(w, NULL, &a, &b, recs);
    memset(&spec, 0, sizeof spec);
    spec.cap = 1;
    for (i = 0; i < 6; i++) { /* codes spread over the slots */
        assert_int_equal(
            ANSWER(w, &x,
                   rc_room_create(a->a, NULL, &spec, "u1", on_admit, &x)),
            0);
        snprintf(room, sizeof room, "%s", x.room);
        assert_int_equal(
            ANSWER(w, &x, rc_room_admit(b->a, room, "u2", 0, on_admit, &x)),
            RC_EFULL);
        assert_int_equal(
            ANSWER(w, &x, rc_room_admit(b->a, room, "u1", 0, on_admit, &x)), 0);
        assert_int_equal(
            ANSWER(w, &x, rc_room_close(b->a, room, "\"done\"", on_admit, &x)),
            0);
        assert_int_equal(
            ANSWER(w, &x, rc_room_admit(a->a, room, "u1", 0, on_admit, &x)),
            RC_ECLOSED);
    }
    for (i = 0; i < 6; i++) {
        x.calls = 0;
        assert_int_equal(rc_rate_take(i % 2 ? a->a : b->a, "cl-key", &rate,
                                      on_rate, &x, NULL),
                         0);
        WAIT_FOR(w, x.calls == 1, "the rate check answered");
        allowed += x.rv == 1;
    }
    assert_int_equal(allowed, 3); /* the burst, shared by both nodes */
    ts_assert_clean(&w->problems);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_sharded_fanout), T(t_classic),     T(t_migrate_busy_room),
        T(t_failover),       T(t_kill_master), T(t_admission_and_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
