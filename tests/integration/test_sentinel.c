/*
 * redis-sentinel:// links against real sentinels (topo_harness: a master,
 * a replica, three sentinels on loopback): the links find the master
 * through the sentinels, also when the first one named is dead; after
 * kill -9 of the master they follow the sentinels to the promoted replica
 * and every room is ready again and carries messages (nothing stays
 * deaf); a master name no sentinel knows keeps the link DOWN, saying so;
 * a sentinel naming a replica as the master is caught by ROLE.
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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

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

/* A sentinel that lies: to every command it answers the replica's
 * address as the master's (what a sentinel behind a failover says). */
static void liar_read(struct bufferevent *bev, void *arg)
{
    char ans[64], port[16];

    (void)arg;
    evbuffer_drain(bufferevent_get_input(bev), (size_t)-1);
    snprintf(port, sizeof port, "%d", th_sentinel_replica_port(&sg));
    snprintf(ans, sizeof ans, "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n",
             strlen(port), port);
    bufferevent_write(bev, ans, strlen(ans));
}

static void liar_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    bufferevent_free(bev);
}

static void liar_accept(struct evconnlistener *l, evutil_socket_t fd,
                        struct sockaddr *sa, int len, void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l),
                                                     fd, BEV_OPT_CLOSE_ON_FREE);

    (void)sa;
    (void)len;
    (void)arg;
    bufferevent_setcb(bev, liar_read, NULL, liar_event, NULL);
    bufferevent_enable(bev, EV_READ);
}

/* The one sentinel named points at the replica: the link checks ROLE and
 * refuses it, saying so (never a link to a replica). */
static void t_stale_answer_refused(void **state)
{
    ts_world *w = *state;
    struct sockaddr_in sin;
    socklen_t slen = sizeof sin;
    struct evconnlistener *l;
    char url[128];
    ts_node *a;

    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = evconnlistener_new_bind(w->loop.base, liar_accept, NULL,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(l);
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d/%s",
             ntohs(sin.sin_port), sg.name);
    a = ts_node_link_quick(w, 0, "A", url);
    WAIT_FOR(w, strstr(rc_link_reason(a->link), "not the master") != NULL,
             "the reason to say the server is not the master");
    print_message("stale answer: \"%s\"\n", rc_link_reason(a->link));
    assert_int_equal(a->ups, 0);
    ts_node_close(a);
    evconnlistener_free(l);
    ts_assert_clean(&w->problems);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_follows_failover),
        T(t_first_sentinel_dead),
        T(t_unknown_master),
        T(t_stale_answer_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
