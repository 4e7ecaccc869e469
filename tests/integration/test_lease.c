/*
 * The node's lease, against a real redis-server: one node id is held by
 * one live adapter at a time, cluster-wide.
 * - a second adapter given a held id is refused (RC_ENODEID) and publishes
 *   nothing, while the holder and a third node carry on;
 * - the id passes on when the holder lets go (freed, or its pub context
 *   handed back) or when its lease runs out (it stopped renewing), and
 *   the old holder is then refused at its next renewal;
 * - a new pub context of the holder keeps the lease (same token);
 * - scripts lost by Redis (SCRIPT FLUSH) are loaded again by the retry,
 *   with no error reaching the host;
 * - an rc_link closed by its host lets go of the lease on its way out.
 * Ticks are driven by hand here (ts_node_up has no rc_link), with the
 * test's clock; only the rc_link test runs the glue's own ticker.
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

#include "roomcast/roomcast.h"

/* What each node's callback saw. */
typedef struct node_log {
    int state, err; /* the last call's */
    int calls, refusals, lives;
} node_log;

static node_log logs[TS_MAX_NODES];

static void on_node(rc_adapter *a, int state, int err, void *user)
{
    node_log *l = user;

    (void)a;
    l->state = state;
    l->err = err;
    l->calls++;
    l->refusals += state == RC_NODE_REFUSED;
    l->lives += state == RC_NODE_LIVE;
}

static int setup(void **state)
{
    memset(logs, 0, sizeof logs);
    return ts_world_setup(state, NULL, 1);
}

/* Node i with id and lease_ms (0: the default), on fresh contexts. */
static ts_node *lease_node(ts_world *w, int i, const char *id,
                           unsigned lease_ms)
{
    ts_node *n = ts_node_open_(w, i, id);
    rc_state_options so;

    memset(&so, 0, sizeof so);
    so.lease_ms = lease_ms;
    assert_int_equal(rc_adapter_set_state_options(n->a, &so, sizeof so), 0);
    rc_adapter_set_node_cb(n->a, on_node, &logs[i]);
    n->pub = ts_ctx_connect(w, n, 0);
    n->sub = ts_ctx_connect(w, n, 1);
    assert_int_equal(rc_adapter_set_pub(n->a, n->pub->ac), 0);
    assert_int_equal(rc_adapter_set_sub(n->a, n->sub->ac), 0);
    n->pub->attached = n->sub->attached = 1;
    return n;
}

static int is_state(const ts_node *n, int state)
{
    return rc_adapter_node_state(n->a) == state;
}

#define WAIT_STATE(w, n, st)                                                   \
    WAIT_FOR(w, is_state((n), (st)), "node " #n " to be " #st)

/* The lease deadline Redis holds for id, or -1. */
static long long deadline(ts_world *w, const char *id)
{
    redisReply *r = rh_cmd(&w->rs, "ZSCORE rc:{nodes} %s", id);
    long long v = r != NULL && r->type == REDIS_REPLY_STRING
                      ? strtoll(r->str, NULL, 10)
                      : -1;

    freeReplyObject(r);
    return v;
}

/* Tick n as if beat ms had passed since the last tick, until its lease
 * call is answered (state or counters moved). */
typedef struct ticking {
    ts_node *n;
    unsigned long long now;
    int want;
} ticking;

static int tick_until(void *arg)
{
    ticking *t = arg;

    t->now += 1000;
    rc_adapter_tick(t->n->a, t->now);
    return is_state(t->n, t->want);
}

static void t_second_holder_refused(void **state)
{
    ts_world *w = *state;
    ts_node *A = lease_node(w, 0, "dup", 0), *B, *C;
    ts_rec *a1, *c1;
    rc_counters cb;

    WAIT_STATE(w, A, RC_NODE_LIVE);
    assert_true(deadline(w, "dup") > 0);
    B = lease_node(w, 1, "dup", 0);
    WAIT_STATE(w, B, RC_NODE_REFUSED);
    assert_int_equal(logs[1].err, RC_ENODEID);
    assert_int_equal(logs[1].lives, 0);
    C = lease_node(w, 2, "other", 0);
    WAIT_STATE(w, C, RC_NODE_LIVE);
    a1 = ts_add_conn(A, "a1");
    c1 = ts_add_conn(C, "c1");
    ts_join(a1, "r");
    ts_join(c1, "r");
    ts_wait_ready(w, A, "r");
    ts_wait_ready(w, C, "r");
    /* B publishes nothing under A's id... */
    assert_int_equal(ts_bcast(B, "r", "ev", "{\"seq\":1}", NULL, 0), 0);
    cb = ts_ctr(B);
    assert_int_equal(cb.publish_errors, 1);
    assert_int_equal(cb.published, 0);
    /* ...so A and C still hear each other, and nobody heard B. */
    assert_int_equal(ts_bcast(A, "r", "ev", "{\"seq\":2}", NULL, 0), 1);
    ts_sync_marker(w, C, "r", a1);
    ts_sync_marker(w, A, "r", c1);
    assert_int_equal(c1->count, 1);
    assert_int_equal(c1->seqs[0], 2);
    /* What A dropped as its own echoes is exactly what it published. */
    WAIT_FOR(w, ts_ctr(A).echoes == 2, "A's own two envelopes back");
    assert_int_equal(ts_ctr(A).published, 2);
    assert_int_equal(rc_adapter_node_state(A->a), RC_NODE_LIVE);
    ts_assert_clean(&w->problems);
}

static void t_passes_on_when_freed(void **state)
{
    ts_world *w = *state;
    ts_node *A = lease_node(w, 0, "dup", 0), *B;
    ticking t;

    WAIT_STATE(w, A, RC_NODE_LIVE);
    B = lease_node(w, 1, "dup", 0);
    WAIT_STATE(w, B, RC_NODE_REFUSED);
    ts_node_close(A); /* lets go of the lease on its pub context */
    WAIT_FOR(w, deadline(w, "dup") < 0, "A's lease to be gone");
    memset(&t, 0, sizeof t);
    t.n = B;
    t.want = RC_NODE_LIVE;
    RUN_UNTIL(w, tick_until, &t, TS_WAIT_MS, "B to take the id over");
    assert_int_equal(logs[1].lives, 1);
    assert_int_equal(ts_bcast(B, "r", "ev", "1", NULL, 0), 0);
    WAIT_FOR(w, ts_ctr(B).published == 1, "B's publish to be answered");
    ts_assert_clean(&w->problems);
}

static void t_passes_on_when_handed_back(void **state)
{
    ts_world *w = *state;
    ts_node *A = lease_node(w, 0, "dup", 0);

    WAIT_STATE(w, A, RC_NODE_LIVE);
    A->pub->attached = 0;
    assert_int_equal(rc_adapter_set_pub(A->a, NULL), 0);
    assert_int_equal(rc_adapter_node_state(A->a), RC_NODE_OFF);
    WAIT_FOR(w, deadline(w, "dup") < 0, "A's lease to be let go of");
    ts_assert_clean(&w->problems);
}

/* A holder that stops renewing (a frozen or dead process) loses the id
 * once its lease runs out in Redis' time; when it renews again, it is
 * the one refused. */
static void t_lapsed_lease_taken_over(void **state)
{
    ts_world *w = *state;
    ts_node *A = lease_node(w, 0, "dup", 1000), *B;
    ticking t;
    long long first;

    WAIT_STATE(w, A, RC_NODE_LIVE);
    first = deadline(w, "dup");
    B = lease_node(w, 1, "dup", 1000);
    WAIT_STATE(w, B, RC_NODE_REFUSED);
    memset(&t, 0, sizeof t);
    t.n = B;
    t.want = RC_NODE_LIVE;
    RUN_UNTIL(w, tick_until, &t, 5000, "B to take the lapsed id over");
    assert_true(deadline(w, "dup") > first);
    memset(&t, 0, sizeof t);
    t.n = A;
    t.want = RC_NODE_REFUSED;
    RUN_UNTIL(w, tick_until, &t, 5000, "A to learn it lost the id");
    assert_int_equal(logs[0].err, RC_ENODEID);
    assert_int_equal(ts_bcast(A, "r", "ev", "1", NULL, 0), 0);
    assert_int_equal(ts_ctr(A).publish_errors, 1);
    ts_assert_clean(&w->problems);
}

/* A reconnect (a new pub context) renews with the same token. */
static void t_new_pub_keeps_lease(void **state)
{
    ts_world *w = *state;
    ts_node *A = lease_node(w, 0, "dup", 0);
    ts_ctx *p2;

    WAIT_STATE(w, A, RC_NODE_LIVE);
    p2 = ts_ctx_connect(w, A, 0);
    A->pub->attached = 0;
    assert_int_equal(rc_adapter_set_pub(A->a, p2->ac), 0);
    p2->attached = 1;
    A->pub = p2;
    assert_int_equal(rc_adapter_node_state(A->a), RC_NODE_CLAIMING);
    WAIT_STATE(w, A, RC_NODE_LIVE);
    assert_int_equal(logs[0].refusals, 0);
    assert_int_equal(ts_ctr(A).script_errors, 0);
    ts_assert_clean(&w->problems);
}

/* Calls of a script Redis forgot come back NOSCRIPT and are sent again
 * with the script (EVAL): the host sees no error. */
static void t_noscript_retried(void **state)
{
    ts_world *w = *state;
    ts_node *A = lease_node(w, 0, "dup", 0);
    ticking t;
    int i;

    WAIT_STATE(w, A, RC_NODE_LIVE);
    memset(&t, 0, sizeof t);
    t.n = A;
    for (i = 0; i < 5; i++) {
        int before = logs[0].calls;
        unsigned long long sent = ts_ctr(A).script_errors;

        ts_reply_ok(rh_cmd(&w->rs, "SCRIPT FLUSH"), "SCRIPT FLUSH");
        t.now += 60000; /* past any due time */
        rc_adapter_tick(A->a, t.now);
        WAIT_FOR(w, deadline(w, "dup") > 0 && !is_state(A, RC_NODE_CLAIMING),
                 "the renewal to be answered");
        assert_int_equal(logs[0].calls, before);
        assert_int_equal(ts_ctr(A).script_errors, sent);
    }
    assert_int_equal(rc_adapter_node_state(A->a), RC_NODE_LIVE);
    ts_assert_clean(&w->problems);
}

/* rc_link_close writes the release out before closing the socket, so a
 * restart with the same id is not refused. */
static void t_link_close_releases(void **state)
{
    ts_world *w = *state;
    rc_link_options lo;
    char url[64];
    ts_node *A;

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", w->rs.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    A = ts_node_link(w, 0, "linked", &lo);
    rc_adapter_set_node_cb(A->a, on_node, &logs[0]);
    WAIT_FOR(w, is_state(A, RC_NODE_LIVE), "the linked node's lease");
    assert_true(deadline(w, "linked") > 0);
    ts_node_close(A);
    WAIT_FOR(w, deadline(w, "linked") < 0, "the lease to be let go of");
    ts_assert_clean(&w->problems);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_second_holder_refused),      T(t_passes_on_when_freed),
        T(t_passes_on_when_handed_back), T(t_lapsed_lease_taken_over),
        T(t_new_pub_keeps_lease),        T(t_noscript_retried),
        T(t_link_close_releases),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
