/*
 * redis-sentinel:// links against real sentinels (topo_harness: a master,
 * a replica, three sentinels on loopback): the links find the master
 * through the sentinels, also when the first one named is dead; after
 * kill -9 of the master they follow the sentinels to the promoted replica
 * and every room is ready again and carries messages (nothing stays
 * deaf); a master name no sentinel knows keeps the link DOWN, saying so.
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

#include "test_nodes.h"
#include "topo_harness.h"

static th_sentinel sg;

static int setup(void **state)
{
    if (ts_world_setup(state, NULL, 0) != 0)
        return -1;
    return th_sentinel_start(&sg, 3);
}

static int teardown(void **state)
{
    int rc = ts_world_teardown(state);

    if (th_sentinel_stop(&sg) != 0)
        rc = -1;
    return rc;
}

/* redis-sentinel://<dead port first, if any>,s0,s1,s2/<name> */
static void url_of(char *buf, size_t cap, int dead_port, const char *name)
{
    size_t at = (size_t)snprintf(buf, cap, "redis-sentinel://");
    int i;

    if (dead_port > 0)
        at += (size_t)snprintf(buf + at, cap - at, "127.0.0.1:%d,", dead_port);
    for (i = 0; i < sg.nsentinels; i++)
        at += (size_t)snprintf(buf + at, cap - at, "127.0.0.1:%d%s",
                               sg.sentinel[i].port,
                               i + 1 < sg.nsentinels ? "," : "");
    snprintf(buf + at, cap - at, "/%s", name);
}

/* Clients named name on the data node i. */
static long long clients_on(int i, const char *name)
{
    redisReply *r = rh_cmd(&sg.node[i], "CLIENT LIST");
    long long n = 0;
    const char *p;

    if (r == NULL)
        return -1;
    for (p = r->type == REDIS_REPLY_STRING ? r->str : ""; (p = strstr(p, name));
         p++)
        n++;
    freeReplyObject(r);
    return n;
}

/* ===================================================================== */

static void t_follows_failover(void **state)
{
    ts_world *w = *state;
    char url[512];
    ts_node *a, *b;
    ts_rec *ra, *rb;
    int old = sg.master;
    long long t0;

    url_of(url, sizeof url, 0, sg.name);
    a = ts_node_link_quick(w, 0, "A", url);
    b = ts_node_link_quick(w, 1, "B", url);
    ra = ts_add_conn(a, "a1");
    rb = ts_add_conn(b, "b1");
    ts_join(ra, "s");
    ts_join(rb, "s");
    WAIT_FOR(w, ts_link_up(a) && ts_link_up(b), "both links UP");
    ts_deliver(w, a, "s", rb, "{\"n\":1}");
    assert_int_equal(clients_on(old, "roomcast:A:pub"), 1);
    assert_int_equal(th_sentinel_kill_master(&sg), 0);
    assert_true(sg.master != old);
    t0 = ts_now_ms();
    WAIT_FOR(w,
             ts_link_up(a) && ts_link_up(b) &&
                 clients_on(sg.master, "roomcast:") >= 4 &&
                 rc_room_is_ready(a->a, "s") == 1 &&
                 rc_room_is_ready(b->a, "s") == 1,
             "both links UP on the promoted replica, the room ready");
    print_message("ready on the new master %lld ms after the sentinels "
                  "agreed\n",
                  ts_now_ms() - t0);
    ts_deliver(w, a, "s", rb, "{\"n\":2}");
    ts_deliver(w, b, "s", ra, "{\"n\":3}");
    ts_assert_clean(&w->problems);
}

static void t_first_sentinel_dead(void **state)
{
    ts_world *w = *state;
    char url[512];
    ts_node *a;

    url_of(url, sizeof url, 1, sg.name); /* port 1: refused */
    a = ts_node_link_quick(w, 0, "A", url);
    WAIT_FOR(w, ts_link_up(a), "the link UP past a dead sentinel");
    ts_assert_clean(&w->problems);
}

static void t_unknown_master(void **state)
{
    ts_world *w = *state;
    char url[512];
    ts_node *a;

    url_of(url, sizeof url, 0, "nosuchmaster");
    a = ts_node_link_quick(w, 0, "A", url);
    WAIT_FOR(w,
             strstr(rc_link_reason(a->link), "no sentinel gave master "
                                             "nosuchmaster") != NULL,
             "the reason to name the unknown master");
    assert_int_equal(a->ups, 0);
    ts_assert_clean(&w->problems);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_follows_failover),
        T(t_first_sentinel_dead),
        T(t_unknown_master),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
