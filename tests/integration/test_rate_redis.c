/*
 * Cluster-wide rate limits against a real redis-server: three nodes
 * asking ten times the rate of one bucket for 3 s (RATE_SECONDS; the
 * bench runs 30) get exactly the burst and the rate's share of the time,
 * with Redis forgetting its scripts every 100 ms meanwhile (no error
 * reaches the host). The requests come from two IPv6 addresses of one
 * /64, which share the bucket.
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

typedef struct tally {
    int allowed, limited, errors, pending;
    unsigned long long max_retry;
} tally;

static void on_rate(rc_adapter *a, int rv, unsigned long long retry_ms,
                    void *user)
{
    tally *t = user;

    (void)a;
    t->pending--;
    if (rv == 1)
        t->allowed++;
    else if (rv == RC_ELIMITED)
        t->limited++;
    else
        t->errors++;
    if (retry_ms > t->max_retry)
        t->max_retry = retry_ms;
}

static int setup(void **state)
{
    return ts_world_setup(state, NULL, 1);
}

#define RATE 20.0
#define BURST 5

static int seconds(void)
{
    const char *e = getenv("RATE_SECONDS");

    return e != NULL && atoi(e) > 0 ? atoi(e) : 3;
}

static void t_cluster_bucket_exact(void **state)
{
    ts_world *w = *state;
    ts_node *n[3];
    rc_rate r = {RATE, BURST};
    tally t;
    long long end, next_flush;
    int i, k = 0, flushes = 0, secs = seconds();
    char key[2][64];

    memset(&t, 0, sizeof t);
    assert_int_equal(rc_rate_addr_key("2001:db8:7:9::1", key[0], 64), 0);
    assert_int_equal(rc_rate_addr_key("2001:db8:7:9:ffff:1:2:3", key[1], 64),
                     0);
    n[0] = ts_node_up(w, 0, NULL, "A");
    n[1] = ts_node_up(w, 1, NULL, "B");
    n[2] = ts_node_up(w, 2, NULL, "C");
    for (i = 0; i < 3; i++)
        WAIT_FOR(w, rc_adapter_node_state(n[i]->a) == RC_NODE_LIVE,
                 "each node's lease");
    end = ts_now_ms() + secs * 1000;
    next_flush = ts_now_ms() + 100;
    while (ts_now_ms() < end) {
        for (i = 0; i < 3; i++) { /* 3 x 200/s: ten times the rate */
            assert_int_equal(
                rc_rate_take(n[i]->a, key[k++ % 2], &r, on_rate, &t, NULL), 0);
            t.pending++;
        }
        if (ts_now_ms() >= next_flush) {
            ts_reply_ok(rh_cmd(&w->rs, "SCRIPT FLUSH"), "SCRIPT FLUSH");
            next_flush += 100;
            flushes++;
        }
        ts_run_for(&w->loop, 5);
    }
    WAIT_FOR(w, t.pending == 0, "every check answered");
    print_message("rate %.0f/s burst %d over %d s from 3 nodes: %d allowed, "
                  "%d limited, %d errors, %d script flushes; longest wait "
                  "told %llu ms\n",
                  RATE, BURST, secs, t.allowed, t.limited, t.errors, flushes,
                  t.max_retry);
    assert_int_equal(t.errors, 0);
    /* The burst, then one per 50 ms of Redis time (the first interval
     * spent by the burst): 5 + 59 or 60 as the 3 s fall. */
    assert_in_range(t.allowed, BURST + RATE * secs - 2,
                    BURST + RATE * secs + 1);
    assert_true(t.max_retry >= 1 && t.max_retry <= 50);
    for (i = 0; i < 3; i++)
        assert_int_equal(ts_ctr(n[i]).script_errors, 0);
    ts_assert_clean(&w->problems);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {T(t_cluster_bucket_exact)};

    return cmocka_run_group_tests(tests, NULL, NULL);
}
