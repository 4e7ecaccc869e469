/*
 * History and resume against a real redis-server: nodes on rc_links (so
 * that a killed connection comes back), each connection recording the
 * ids it got, in order, and the payload of each.
 *
 * - ids: three nodes publishing into one room: every member on every node
 *   gets the same ids, one epoch, S 1.. with no gap, each id one payload;
 * - resume: a connection resuming from an id while the others publish
 *   gets every later message once, in order, then the live ones;
 * - resets: unparsable, unknown epoch, ahead (which fences: a new,
 *   larger epoch), trimmed, too many;
 * - the sub link killed while messages are published: nothing is lost
 *   (read back from the history), in order;
 * - Redis restarted empty: a resume gets rc:reset, the new epoch is
 *   larger;
 * - the read API; broadcasts with an id are refused; without Redis a
 *   broadcast goes out locally without id, and a resume is told reset.
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

#define MAX_GOT 4096

typedef struct got {
    rc_conn *c;
    char id[32];
    int n, resets, noid;
    unsigned long long e[MAX_GOT], s[MAX_GOT];
    int payload[MAX_GOT];
    char reason[32], reset_id[48];
} got;

static unsigned max_len, replay_max; /* 0: defaults; set by a test */
static got pool[8];
static int npool;

static void prep(ts_node *n)
{
    rc_history_options ho;

    memset(&ho, 0, sizeof ho);
    ho.max_len = max_len;
    ho.replay_max = replay_max;
    assert_int_equal(rc_adapter_set_history(n->a, &ho, sizeof ho), 0);
}

static int setup(void **state)
{
    ts_world *w;

    max_len = replay_max = 0;
    memset(pool, 0, sizeof pool);
    npool = 0;
    if (ts_world_setup(state, NULL, 1) != 0)
        return -1;
    w = *state;
    w->node_prep = prep;
    return 0;
}

static ts_node *hnode(ts_world *w, int i, const char *id)
{
    char url[64];
    rc_link_options lo;
    ts_node *n;

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", w->rs.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.connect_timeout_ms = 1000;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 200;
    lo.probe_interval_ms = 200;
    n = ts_node_link(w, i, id, &lo);
    WAIT_FOR(w, rc_adapter_node_state(n->a) == RC_NODE_LIVE, "the lease");
    return n;
}

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    got *g = user;
    unsigned long long e = 0, s = 0;

    (void)c;
    (void)f;
    if (m->event != NULL && strcmp(m->event, "rc:reset") == 0) {
        g->resets++;
        snprintf(g->reason, sizeof g->reason, "%.*s",
                 (int)(m->data_len > 12 ? m->data_len - 13 : 0), m->data + 11);
        snprintf(g->reset_id, sizeof g->reset_id, "%s", m->id ? m->id : "");
        return 0;
    }
    if (m->event == NULL || strcmp(m->event, "msg") != 0)
        return 0;
    if (m->id == NULL || sscanf(m->id, "%llu-%llu", &e, &s) != 2) {
        g->noid++;
        return 0;
    }
    if (g->n < MAX_GOT) {
        g->e[g->n] = e;
        g->s[g->n] = s;
        g->payload[g->n] = atoi(m->data + 5); /* {"p":N} */
    }
    g->n++;
    return 0;
}

static got *conn(ts_node *n, const char *id, const char *room,
                 const char *resume)
{
    got *g;

    assert_true(npool < 8);
    g = &pool[npool++];
    snprintf(g->id, sizeof g->id, "%s", id);
    assert_int_equal(rc_conn_add(n->a, id, sink, g, &g->c), 0);
    assert_int_equal(rc_conn_resume(g->c, room, resume), 1);
    return g;
}

static void pub(ts_node *n, const char *room, int p)
{
    char data[32];
    rc_message m = RC_MESSAGE_INIT;

    snprintf(data, sizeof data, "{\"p\":%d}", p);
    m.event = "msg";
    m.data = data;
    m.data_len = strlen(data);
    assert_int_equal(rc_broadcast_to_room(n->a, room, &m, NULL, 0), 0);
}

/* g's sequences: one epoch, from first on, +1 each; returns the epoch. */
static unsigned long long contiguous(const got *g, unsigned long long first)
{
    int i;

    for (i = 0; i < g->n && i < MAX_GOT; i++) {
        if (g->e[i] != g->e[0] || g->s[i] != first + (unsigned long long)i)
            fail_msg("%s: message %d is %llu-%llu, expected %llu-%llu", g->id,
                     i, g->e[i], g->s[i], g->e[0],
                     first + (unsigned long long)i);
    }
    return g->n > 0 ? g->e[0] : 0;
}

/* ---- tests --------------------------------------------------------------- */

static void t_ids_one_order(void **state)
{
    ts_world *w = *state;
    ts_node *n[3];
    got *g[3];
    int i, j;

    for (i = 0; i < 3; i++) {
        n[i] = hnode(w, i, i == 0 ? "A" : i == 1 ? "B" : "C");
        g[i] = conn(n[i], i == 0 ? "a" : i == 1 ? "b" : "c", "h", NULL);
        ts_wait_ready(w, n[i], "h");
    }
    for (j = 0; j < 300; j++)
        pub(n[j % 3], "h", j);
    WAIT_FOR(w, g[0]->n == 300 && g[1]->n == 300 && g[2]->n == 300,
             "300 messages on each node");
    for (i = 0; i < 3; i++) {
        assert_int_equal(contiguous(g[i], 1), g[0]->e[0]);
        for (j = 0; j < 300; j++)
            assert_int_equal(g[i]->payload[j], g[0]->payload[j]);
        assert_int_equal(g[i]->noid + g[i]->resets, 0);
    }
    /* each node's own messages in the order it sent them */
    for (j = 0, i = -1; j < 300; j++)
        if (g[0]->payload[j] % 3 == 0) {
            assert_true(g[0]->payload[j] > i);
            i = g[0]->payload[j];
        }
}

static void t_resume_while_publishing(void **state)
{
    ts_world *w = *state;
    ts_node *a = hnode(w, 0, "A"), *b = hnode(w, 1, "B");
    got *live = conn(a, "live", "h", NULL), *back;
    char id[48];
    int j;

    ts_wait_ready(w, a, "h");
    for (j = 0; j < 50; j++)
        pub(a, "h", j);
    WAIT_FOR(w, live->n == 50, "50 messages");
    snprintf(id, sizeof id, "%llu-%d", live->e[0], 20);
    back = conn(b, "back", "h", id);
    for (j = 50; j < 150; j++) /* while it reads */
        pub(j % 2 ? a : b, "h", j);
    WAIT_FOR(w, back->n == 130 && live->n == 150, "everything after 20");
    contiguous(back, 21);
    assert_int_equal(back->payload[0], live->payload[20]);
    assert_int_equal(back->resets, 0);
    assert_true(ts_ctr(b).history_repaired >= 30);
}

/* A connection resuming from id on n: the reason of the reset it gets. */
static got *reset_of(ts_world *w, ts_node *n, const char *name, const char *id,
                     const char *reason)
{
    got *g = conn(n, name, "h", id);

    WAIT_FOR(w, g->resets == 1, "a reset");
    assert_string_equal(g->reason, reason);
    return g;
}

static void t_resets(void **state)
{
    ts_world *w = *state;
    ts_node *a;
    got *live, *g;
    char id[48];
    unsigned long long e;
    int j;

    max_len = 100;
    replay_max = 20;
    a = hnode(w, 0, "A");
    live = conn(a, "live", "h", NULL);
    ts_wait_ready(w, a, "h");
    freeReplyObject(rh_cmd(&w->rs, "CONFIG SET stream-node-max-entries 10"));
    for (j = 0; j < 200; j++)
        pub(a, "h", j);
    WAIT_FOR(w, live->n == 200, "200 messages");
    e = live->e[0];
    g = reset_of(w, a, "u", "not-an-id", "unparsable");
    snprintf(id, sizeof id, "%llu-200", e);
    assert_string_equal(g->reset_id, id); /* the room's latest */
    reset_of(w, a, "ep", "12-5", "epoch");
    snprintf(id, sizeof id, "%llu-1", e);
    reset_of(w, a, "tr", id, "trimmed");
    snprintf(id, sizeof id, "%llu-170", e); /* 30 behind, kept: too many */
    reset_of(w, a, "tm", id, "toomany");
    snprintf(id, sizeof id, "%llu-190", e); /* 10 behind: replayed */
    g = conn(a, "ok", "h", id);
    WAIT_FOR(w, g->n == 10, "the last 10");
    contiguous(g, 191);
    snprintf(id, sizeof id, "%llu-250", e); /* ahead: Redis rolled back? */
    reset_of(w, a, "ah", id, "ahead");
    WAIT_FOR(w, ts_ctr(a).history_fenced == 1, "the epoch fenced");
    pub(a, "h", 999);
    WAIT_FOR(w, live->n == 201, "the next message, in a new epoch");
    assert_true(live->e[200] > e);
    assert_int_equal(live->s[200], 1);
    assert_int_equal(live->resets, 1); /* told: its cursor's epoch ended */
}

static void t_sub_link_killed(void **state)
{
    ts_world *w = *state;
    ts_node *a = hnode(w, 0, "A"), *b = hnode(w, 1, "B");
    got *g = conn(b, "g", "h", NULL);
    int j;

    ts_wait_ready(w, b, "h");
    pub(a, "h", 0);
    WAIT_FOR(w, g->n == 1, "the first message");
    for (j = 1; j <= 100; j++) {
        pub(a, "h", j);
        if (j == 10) /* every pub/sub connection goes: B's sub link too */
            freeReplyObject(rh_cmd(&w->rs, "CLIENT KILL TYPE pubsub"));
        ts_run_for(&w->loop, 2);
    }
    WAIT_FOR(w, g->n == 101, "all 101, none lost");
    contiguous(g, 1);
    assert_int_equal(g->resets, 0);
    assert_true(ts_ctr(b).history_repaired > 0);
}

static void t_redis_restarted_empty(void **state)
{
    ts_world *w = *state;
    ts_node *a = hnode(w, 0, "A");
    got *live = conn(a, "live", "h", NULL), *g;
    unsigned long long e;
    char id[48];
    int j;

    ts_wait_ready(w, a, "h");
    for (j = 0; j < 20; j++)
        pub(a, "h", j);
    WAIT_FOR(w, live->n == 20, "20 messages");
    e = live->e[0];
    assert_int_equal(rh_kill9(&w->rs), 0);
    assert_int_equal(rh_restart(&w->rs), 0);
    WAIT_FOR(w, ts_link_up(a) && rc_room_is_ready(a->a, "h") == 1,
             "A back on the new Redis");
    WAIT_FOR(w, ts_ctr(a).history_fenced >= 1, "A's fence: a new epoch");
    snprintf(id, sizeof id, "%llu-15", e);
    g = reset_of(w, a, "g", id, "epoch");
    WAIT_NUMSUB(w, "sse:room:h", 1); /* on the new server */
    pub(a, "h", 100);
    WAIT_FOR(w, live->n == 21 && g->n == 1, "the next message");
    assert_true(live->e[20] > e);
    assert_int_equal(live->s[20], 1);
    assert_int_equal(g->e[0], live->e[20]);
}

/* Redis restored from an older snapshot: no id is handed out again. */
static void t_rdb_rollback(void **state)
{
    ts_world *w = *state;
    ts_node *a = hnode(w, 0, "A");
    got *live = conn(a, "live", "h", NULL), *g;
    unsigned long long e;
    char id[48];
    int i, j;

    ts_wait_ready(w, a, "h");
    for (j = 0; j < 20; j++)
        pub(a, "h", j);
    WAIT_FOR(w, live->n == 20, "20 messages");
    e = live->e[0];
    ts_reply_ok(rh_cmd(&w->rs, "SAVE"), "SAVE");
    for (; j < 30; j++) /* acknowledged, then lost with the restore */
        pub(a, "h", j);
    WAIT_FOR(w, live->n == 30, "30 messages");
    assert_int_equal(rh_kill9(&w->rs), 0);
    assert_int_equal(rh_restart(&w->rs), 0); /* loads the 20 */
    WAIT_FOR(w, ts_ctr(a).history_fenced >= 1, "the rollback fenced");
    WAIT_NUMSUB(w, "sse:room:h", 1); /* on the restored server */
    snprintf(id, sizeof id, "%llu-30", e);
    g = conn(a, "g", "h", id);
    WAIT_FOR(w, g->resets == 1, "a reset for the client ahead");
    assert_true(strcmp(g->reason, "epoch") == 0 ||
                strcmp(g->reason, "ahead") == 0);
    for (; j < 35; j++)
        pub(a, "h", j);
    WAIT_FOR(w, live->n == 35 && g->n == 5, "5 more, in a new epoch");
    assert_true(live->e[30] > e);
    for (i = 0; i < 35; i++) /* every id once, so one payload each */
        for (j = i + 1; j < 35; j++)
            assert_false(live->e[i] == live->e[j] && live->s[i] == live->s[j]);
}

/* 100 clients over 3 nodes reconnect at random points while 3,000
 * messages go out: each sees every message after its first, once, in
 * order, across its reconnections. */
static void t_reconnect_storm(void **state)
{
    ts_world *w = *state;
    ts_node *n[3];
    got *g = calloc(100, sizeof *g);
    char id[48], what[160];
    int i, j, k, reconnects = 0;

    assert_non_null(g);
    for (i = 0; i < 3; i++)
        n[i] = hnode(w, i, i == 0 ? "A" : i == 1 ? "B" : "C");
    for (k = 0; k < 100; k++) {
        snprintf(g[k].id, sizeof g[k].id, "s%d", k);
        assert_int_equal(
            rc_conn_add(n[k % 3]->a, g[k].id, sink, &g[k], &g[k].c), 0);
        assert_int_equal(rc_conn_resume(g[k].c, "h", NULL), 1);
    }
    for (i = 0; i < 3; i++)
        ts_wait_ready(w, n[i], "h");
    srand(7);
    for (j = 0; j < 3000; j++) {
        pub(n[j % 3], "h", j);
        if (j % 10 == 0) { /* one client goes and comes back */
            k = rand() % 100;
            if (g[k].n > 0 && g[k].n < MAX_GOT) {
                rc_conn_remove(g[k].c);
                snprintf(id, sizeof id, "%llu-%llu", g[k].e[g[k].n - 1],
                         g[k].s[g[k].n - 1]);
                assert_int_equal(rc_conn_add(n[rand() % 3]->a, g[k].id, sink,
                                             &g[k], &g[k].c),
                                 0);
                assert_int_equal(rc_conn_resume(g[k].c, "h", id), 1);
                reconnects++;
            }
            ts_run_for(&w->loop, 1);
        }
    }
    for (k = 0; k < 100; k++) {
        WAIT_FOR_MS(w, g[k].n > 0 && g[k].s[g[k].n - 1] == 3000, 30000,
                    (snprintf(what, sizeof what,
                              "%s at the last message (has %d, the last "
                              "%llu, %d resets)",
                              g[k].id, g[k].n,
                              g[k].n ? g[k].s[g[k].n - 1] : 0ull, g[k].resets),
                     what));
        contiguous(&g[k], g[k].s[0]);
        assert_int_equal(g[k].resets, 0);
    }
    print_message("3,000 messages from 3 nodes, 100 clients, %d reconnects "
                  "with Last-Event-ID: every client contiguous, no reset\n",
                  reconnects);
    free(g);
}

typedef struct read_result {
    int calls, err, n;
    char reset[32], latest[48], first[48];
} read_result;

static void on_read(rc_adapter *a, int err, const char *reset,
                    const char *latest, const rc_history_entry *e, size_t n,
                    void *user)
{
    read_result *r = user;

    (void)a;
    r->calls++;
    r->err = err;
    r->n = (int)n;
    snprintf(r->reset, sizeof r->reset, "%s", reset ? reset : "");
    snprintf(r->latest, sizeof r->latest, "%s", latest ? latest : "");
    snprintf(r->first, sizeof r->first, "%s", n > 0 ? e[0].id : "");
    if (n > 0 && (e[0].msg.event == NULL || strcmp(e[0].msg.event, "msg")))
        r->err = -999;
}

static void t_read_api_and_refusals(void **state)
{
    ts_world *w = *state;
    ts_node *a = hnode(w, 0, "A");
    got *live = conn(a, "live", "h", NULL);
    rc_message m = ts_msg("msg", "{\"p\":1}", "my-id");
    read_result r;
    char id[48];
    int j;

    ts_wait_ready(w, a, "h");
    assert_int_equal(rc_broadcast_to_room(a->a, "h", &m, NULL, 0), RC_EINVAL);
    for (j = 0; j < 30; j++)
        pub(a, "h", j);
    WAIT_FOR(w, live->n == 30, "30 messages");
    memset(&r, 0, sizeof r);
    snprintf(id, sizeof id, "%llu-25", live->e[0]);
    assert_int_equal(rc_history_read(a->a, "h", id, 0, on_read, &r), 0);
    WAIT_FOR(w, r.calls == 1, "the read");
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n, 5);
    snprintf(id, sizeof id, "%llu-26", live->e[0]);
    assert_string_equal(r.first, id);
    snprintf(id, sizeof id, "%llu-30", live->e[0]);
    assert_string_equal(r.latest, id);
    memset(&r, 0, sizeof r);
    assert_int_equal(rc_history_read(a->a, "h", "x-1", 0, on_read, &r), 0);
    WAIT_FOR(w, r.calls == 1, "the read");
    assert_string_equal(r.reset, "unparsable");
    memset(&r, 0, sizeof r);
    assert_int_equal(rc_history_read(a->a, "h", NULL, 10, on_read, &r), 0);
    WAIT_FOR(w, r.calls == 1, "the read");
    assert_int_equal(r.n, 10);
}

static void t_no_redis(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "solo");
    rc_history_options ho;
    got g;
    rc_conn *c;
    rc_message m = ts_msg("msg", "{\"p\":1}", NULL);

    (void)state;
    memset(&ho, 0, sizeof ho);
    memset(&g, 0, sizeof g);
    assert_int_equal(rc_adapter_set_history(a, &ho, sizeof ho), 0);
    assert_int_equal(rc_conn_add(a, "c", sink, &g, &c), 0);
    assert_int_equal(rc_conn_resume(c, "h", "5-5"), 1);
    assert_int_equal(g.resets, 1);
    assert_string_equal(g.reason, "unavailable");
    /* a local-only adapter delivers at once, without an id */
    assert_int_equal(rc_broadcast_to_room(a, "h", &m, NULL, 0), 1);
    assert_int_equal(g.noid, 1);
    rc_adapter_free(a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_ids_one_order),   T(t_resume_while_publishing), T(t_resets),
        T(t_sub_link_killed), T(t_redis_restarted_empty),   T(t_rdb_rollback),
        T(t_reconnect_storm), T(t_read_api_and_refusals),   T(t_no_redis),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
