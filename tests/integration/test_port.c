/*
 * The adapter's port to Redis and the callback paths it drives, against a
 * real redis-server (see test_adapter_redis.c for how the tests wait):
 * - room events whose callback removes a connection, frees the adapter or
 *   hands it a new sub context;
 * - contexts handed back, freed behind the adapter's back, or refusing
 *   commands; (UN)SUBSCRIBEs that cannot be sent are counted and retried;
 * - a sub context speaking RESP3 (hiredis 1.x only);
 * - every allocation of a scenario that subscribes, publishes and
 *   receives made to fail in turn, each with its exact outcome.
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
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "roomcast/roomcast.h"

static int setup(void **state)
{
    return ts_world_setup(state, NULL, 1);
}

/* ===================================================================== */
/* Room events whose callback changes the adapter                         */
/* ===================================================================== */

enum { DO_REMOVE, DO_FREE, DO_NEW_SUB };

typedef struct cb_case {
    ts_world *w;
    ts_node *n;
    ts_rec *r;    /* DO_REMOVE: the connection to remove */
    int event;    /* RC_ROOM_* to act on */
    int action;   /* DO_* */
    int calls;    /* room events seen */
    int acted;    /* the action ran */
    ts_ctx *next; /* DO_NEW_SUB: the context to hand over */
} cb_case;

static void act(cb_case *k, rc_adapter *a)
{
    k->acted = 1;
    if (k->action == DO_REMOVE) {
        rc_conn_remove(k->r->conn);
        k->r->conn = NULL;
        k->r->removed = 1;
    } else if (k->action == DO_FREE) {
        k->n->a = NULL;
        k->n->freed = 1;
        k->n->pub->attached = k->n->sub->attached = 0;
        rc_adapter_free(a);
    } else if ((k->n->sub->attached = 0, rc_adapter_set_sub(a, k->next->ac)) ==
               0) {
        k->next->attached = 1;
        k->n->sub = k->next;
    } else {
        ts_note(&k->w->problems, "rc_adapter_set_sub in a LOST event failed");
    }
}

static void on_event(rc_adapter *a, const char *room, int event, void *user)
{
    cb_case *k = user;

    (void)room;
    if (k->n->freed)
        ts_note(&k->w->problems, "a room event after rc_adapter_free");
    k->calls++;
    if (event == k->event && !k->acted)
        act(k, a);
}

static cb_case cb_case_on(ts_world *w, ts_node *n, int event, int action)
{
    cb_case k;

    memset(&k, 0, sizeof k);
    k.w = w;
    k.n = n;
    k.event = event;
    k.action = action;
    return k; /* the test sets on_event with &k once k is in place */
}

/* RC_ROOM_READY: the callback removes the room's only member, which leaves
 * the room empty: it is unsubscribed once confirmed. */
static void t_ready_cb_removes_conn(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    cb_case k = cb_case_on(w, A, RC_ROOM_READY, DO_REMOVE);

    k.r = ts_add_conn(A, "a1");
    rc_adapter_set_room_cb(A->a, on_event, &k);
    ts_join(k.r, "rr");
    WAIT_FOR(w, k.acted, "RC_ROOM_READY");
    assert_int_equal(rc_room_size(A->a, "rr"), 0);
    ts_wait_quiet(w, A);
    assert_int_equal(ts_numsub(w, "sse:room:rr"), 0);
    assert_int_equal(k.calls, 1);
    ts_assert_clean(&w->problems);
}

/* RC_ROOM_READY: the callback frees the adapter; its rooms are
 * unsubscribed all the same, and nothing calls back afterwards. */
static void t_ready_cb_frees_adapter(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    cb_case k = cb_case_on(w, A, RC_ROOM_READY, DO_FREE);
    ts_rec *a1 = ts_add_conn(A, "a1");

    rc_adapter_set_room_cb(A->a, on_event, &k);
    ts_join(a1, "rf1");
    ts_join(a1, "rf2"); /* its SUBSCRIBE is in flight at the free */
    a1->removed = 1;    /* goes with the adapter */
    WAIT_FOR(w, k.acted, "RC_ROOM_READY");
    WAIT_NUMSUB(w, "sse:room:rf1", 0);
    WAIT_NUMSUB(w, "sse:room:rf2", 0);
    assert_int_equal(k.calls, 1);
    ts_assert_clean(&w->problems);
}

/* RC_ROOM_LOST (the sub context died): the callback frees the adapter. */
static void t_lost_cb_frees_adapter(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    cb_case k = cb_case_on(w, A, RC_ROOM_LOST, DO_FREE);
    ts_rec *a1 = ts_add_conn(A, "a1");

    ts_join(a1, "lf1");
    ts_join(a1, "lf2");
    ts_wait_ready(w, A, "lf1");
    ts_wait_ready(w, A, "lf2");
    rc_adapter_set_room_cb(A->a, on_event, &k);
    a1->removed = 1;
    redisAsyncFree(A->sub->ac);
    assert_int_equal(k.acted, 1);
    assert_int_equal(k.calls, 1); /* the second room's LOST: not told */
    ts_assert_clean(&w->problems);
}

/* RC_ROOM_LOST: the callback hands over a fresh sub context at once; every
 * room is subscribed on it. */
static void t_lost_cb_hands_new_sub(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    cb_case k = cb_case_on(w, A, RC_ROOM_LOST, DO_NEW_SUB);
    ts_rec *a1 = ts_add_conn(A, "a1");

    k.next = ts_ctx_connect(w, A, 1);
    ts_join(a1, "ln1");
    ts_join(a1, "ln2");
    ts_wait_ready(w, A, "ln1");
    ts_wait_ready(w, A, "ln2");
    rc_adapter_set_room_cb(A->a, on_event, &k);
    redisAsyncFree(A->sub->ac);
    assert_int_equal(k.acted, 1);
    ts_wait_ready(w, A, "ln1");
    ts_wait_ready(w, A, "ln2");
    assert_int_equal(ts_bcast(B, "ln2", "ev", "1", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 1, "a1 to get B's broadcast on the new context");
    ts_assert_clean(&w->problems);
}

/* ===================================================================== */
/* Contexts handed back, freed behind the adapter's back, refusing        */
/* ===================================================================== */

/* Node A on an accounting allocator (freed by the teardown, after the
 * adapter). */
static ts_node *node_acct(ts_world *w, ts_acct **acct)
{
    rc_alloc hooks;
    rc_adapter_options o;

    *acct = calloc(1, sizeof **acct);
    assert_non_null(*acct);
    w->user = *acct;
    w->user_free = free;
    hooks = ts_acct_hooks(*acct);
    memset(&o, 0, sizeof o);
    o.node_id = "node-A";
    o.alloc = &hooks; /* copied by rc_adapter_open */
    return ts_node_up_opts(w, 0, &o);
}

/* A sub context taken back with set_sub(NULL) while still subscribed may
 * not be handed back: hiredis would silently replace its channels'
 * callbacks and the adapter could never be released. A fresh one is
 * taken, and once everything is freed no block is left. */
static void t_same_sub_back_refused(void **state)
{
    ts_world *w = *state;
    ts_acct *acct;
    ts_node *A;
    ts_rec *a1;
    ts_ctx *old, *fresh;

    A = node_acct(w, &acct);
    a1 = ts_add_conn(A, "a1");
    ts_join(a1, "sb");
    ts_wait_ready(w, A, "sb");
    old = A->sub;
    old->attached = 0;
    assert_int_equal(rc_adapter_set_sub(A->a, NULL), 0);
    assert_int_equal(rc_adapter_set_sub(A->a, old->ac), RC_EMISUSE);
    assert_int_equal(rc_room_is_ready(A->a, "sb"), 0);
    fresh = ts_ctx_connect(w, A, 1);
    assert_int_equal(rc_adapter_set_sub(A->a, fresh->ac), 0);
    fresh->attached = 1;
    A->sub = fresh;
    ts_wait_ready(w, A, "sb");

    ts_node_close(A);
    redisAsyncFree(old->ac);
    redisAsyncFree(fresh->ac);
    redisAsyncFree(A->pub->ac);
    assert_int_equal(acct->live, 0);
    assert_int_equal(acct->foreign, 0);
    ts_assert_clean(&w->problems);
}

/* The host frees its pub context and forgets rc_adapter_set_pub(NULL):
 * the adapter notices, and a broadcast counts a failed publish instead of
 * writing on freed memory. */
static void t_pub_freed_behind_back(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1 = ts_add_conn(A, "a1");
    rc_counters c0;

    ts_join(a1, "pf");
    ts_wait_ready(w, A, "pf");
    A->pub->attached = 0; /* its end is not told to the adapter */
    redisAsyncFree(A->pub->ac);
    c0 = ts_ctr(A);
    assert_int_equal(ts_bcast(A, "pf", "ev", "1", NULL, 0), 1);
    assert_int_equal(ts_ctr(A).publish_errors, c0.publish_errors + 1);
    assert_int_equal(ts_ctr(A).published, c0.published);
    ts_assert_clean(&w->problems);
}

/* The same for the sub context, with no room subscribed (so no channel
 * callback of the adapter's is there to hear of it): rooms joined after
 * are not ready and nothing is written on the freed context. */
static void t_sub_freed_behind_back(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_rec *a1 = ts_add_conn(A, "a1");
    rc_counters c0 = ts_ctr(A);
    ts_ctx *fresh;

    A->sub->attached = 0;
    redisAsyncFree(A->sub->ac);
    ts_join(a1, "sf");
    assert_int_equal(rc_room_is_ready(A->a, "sf"), 0);
    assert_int_equal(ts_ctr(A).subscribes_sent, c0.subscribes_sent);
    fresh = ts_ctx_connect(w, A, 1);
    assert_int_equal(rc_adapter_set_sub(A->a, fresh->ac), 0);
    fresh->attached = 1;
    A->sub = fresh;
    ts_wait_ready(w, A, "sf");
    ts_assert_clean(&w->problems);
}

typedef struct refusing {
    ts_node *n;
    ts_rec *r;
    int joined; /* rc_room_join's result, from inside the sink */
} refusing;

/* From inside a sink (hiredis is inside a reply callback): disconnect the
 * sub context, then join a room; hiredis refuses the SUBSCRIBE. */
static void hook_disconnect_join(ts_rec *r, rc_conn *c, rc_frame *f,
                                 const rc_message *m)
{
    refusing *k = r->hook_arg;

    (void)c;
    (void)f;
    (void)m;
    r->hook = NULL;
    redisAsyncDisconnect(k->n->sub->ac);
    k->joined = rc_room_join(k->r->conn, "sr2");
}

/* A SUBSCRIBE hiredis refuses (its context is going away) is counted and
 * sent again on the next context. */
static void t_subscribe_refused_counted(void **state)
{
    ts_world *w = *state;
    ts_node *A = ts_node_up(w, 0, NULL, "node-A");
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *a1 = ts_add_conn(A, "a1");
    refusing k;
    rc_counters c0;
    ts_ctx *fresh;

    ts_join(a1, "sr1");
    ts_wait_ready(w, A, "sr1");
    c0 = ts_ctr(A);
    k.n = A;
    k.r = a1;
    k.joined = 0;
    a1->hook = hook_disconnect_join;
    a1->hook_arg = &k;
    assert_int_equal(ts_bcast(B, "sr1", "ev", "1", NULL, 0), 0);
    WAIT_FOR(w, A->sub->state == TS_CTX_DOWN, "the sub context to go");
    assert_int_equal(k.joined, 1);
    assert_int_equal(ts_ctr(A).subscribe_errors, c0.subscribe_errors + 1);
    assert_int_equal(rc_room_is_ready(A->a, "sr2"), 0);
    fresh = ts_ctx_connect(w, A, 1);
    assert_int_equal(rc_adapter_set_sub(A->a, fresh->ac), 0);
    fresh->attached = 1;
    A->sub = fresh;
    ts_wait_ready(w, A, "sr1");
    ts_wait_ready(w, A, "sr2");
    ts_assert_clean(&w->problems);
}

/* A SUBSCRIBE that cannot be formatted (out of memory) on a context that
 * stays up is counted and sent again at the next reply on that context:
 * the room does not stay unsubscribed while everything looks up. */
static void t_subscribe_oom_retried(void **state)
{
    ts_world *w = *state;
    ts_acct *acct;
    char room[1100];
    ts_node *A, *B;
    ts_rec *a1;

    A = node_acct(w, &acct);
    B = ts_node_up(w, 1, NULL, "node-B");
    a1 = ts_add_conn(A, "a1");
    ts_join(a1, "so");
    ts_wait_ready(w, A, "so");
    /* a name longer than the command buffer: formatting must grow it */
    memset(room, 'x', sizeof room - 1);
    room[sizeof room - 1] = '\0';
    acct->fail_realloc = 1;
    ts_join(a1, room);
    acct->fail_realloc = 0;
    assert_int_equal(ts_ctr(A).subscribe_errors, 1);
    assert_int_equal(rc_room_is_ready(A->a, room), 0);
    /* any reply on the sub context will do */
    assert_int_equal(ts_bcast(B, "so", "ev", "1", NULL, 0), 0);
    ts_wait_ready(w, A, room);
    assert_int_equal(a1->count, 1);
    ts_assert_clean(&w->problems);
}

/* RC_ROOM_LOST is told for every room even when no memory is left. */
static void t_lost_without_memory(void **state)
{
    ts_world *w = *state;
    ts_acct *acct;
    ts_node *A;
    ts_rec *a1;
    size_t mark;

    A = node_acct(w, &acct);
    a1 = ts_add_conn(A, "a1");
    ts_join(a1, "lm1");
    ts_join(a1, "lm2");
    ts_join(a1, "lm3");
    ts_wait_ready(w, A, "lm1");
    ts_wait_ready(w, A, "lm2");
    ts_wait_ready(w, A, "lm3");
    mark = A->nev;
    acct->fail_all = 1;
    redisAsyncFree(A->sub->ac);
    acct->fail_all = 0;
    assert_string_equal(ts_events_since(A, mark, "lm1"), "L");
    assert_string_equal(ts_events_since(A, mark, "lm2"), "L");
    assert_string_equal(ts_events_since(A, mark, "lm3"), "L");
    ts_assert_clean(&w->problems);
}

/* ===================================================================== */
/* RESP3                                                                  */
/* ===================================================================== */

#if HIREDIS_MAJOR >= 1
static void on_hello(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;

    (void)ac;
    *(int *)privdata =
        reply != NULL && reply->type != REDIS_REPLY_ERROR ? 1 : -1;
}
#endif

/* A sub context switched to RESP3 (hiredis 1.x: HELLO 3) gets Pub/Sub
 * replies as pushes: rooms become ready and messages arrive. */
static void t_resp3_sub_context(void **state)
{
#if HIREDIS_MAJOR >= 1
    ts_world *w = *state;
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_node *A;
    ts_rec *a1;
    ts_ctx *sub;
    int hello = 0;

    A = ts_node_up(w, 0, NULL, "node-A");
    sub = ts_ctx_connect(w, A, 1);
    assert_int_equal(redisAsyncCommand(sub->ac, on_hello, &hello, "HELLO 3"),
                     REDIS_OK);
    WAIT_FOR(w, hello != 0, "the HELLO 3 reply");
    assert_int_equal(hello, 1);
    A->sub->attached = 0;
    assert_int_equal(rc_adapter_set_sub(A->a, sub->ac), 0);
    sub->attached = 1;
    a1 = ts_add_conn(A, "a1");
    ts_join(a1, "r3");
    ts_wait_ready(w, A, "r3");
    assert_int_equal(ts_bcast(B, "r3", "ev", "1", NULL, 0), 0);
    WAIT_FOR(w, a1->count == 1, "a1 to get B's broadcast over RESP3");
    ts_leave(a1, "r3");
    ts_wait_quiet(w, A);
    assert_int_equal(ts_numsub(w, "sse:room:r3"), 0);
    ts_assert_clean(&w->problems);
#else
    (void)state;
    print_message("hiredis %d.%d speaks RESP2 only: nothing to test\n",
                  HIREDIS_MAJOR, HIREDIS_MINOR);
    skip();
#endif
}

/* ===================================================================== */
/* Every allocation of a scenario made to fail in turn                    */
/* ===================================================================== */

/* The scenario's steps. */
enum { S_OPEN, S_ADD, S_JOIN, S_SEND, S_RECV, S_STEPS };

typedef struct oom_run {
    ts_acct acct;
    unsigned long long mark[S_STEPS]; /* calls after each step */
    int rv[S_STEPS];                  /* what each step gave */
    rc_counters c;                    /* A's counters after the last step */
    long live;                        /* blocks left once all is freed */
} oom_run;

static void on_oom_connect(const redisAsyncContext *ac, int status)
{
    *(int *)ac->data = status == REDIS_OK ? 1 : -1;
}

/* A plain async context on the world's loop, connected, that nobody
 * tells the adapter about: the scenario hands it over itself. */
static redisAsyncContext *oom_ctx(ts_world *w, int *up)
{
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", w->rs.port);

    assert_non_null(ac);
    assert_int_equal(ac->err, 0);
    *up = 0;
    ac->data = up;
    assert_int_equal(redisLibeventAttach(ac, w->loop.base), REDIS_OK);
    redisAsyncSetConnectCallback(ac, on_oom_connect);
    WAIT_FOR(w, *up != 0, "a context for the scenario to connect");
    assert_int_equal(*up, 1);
    return ac;
}

static void oom_step(oom_run *run, int s, int rv)
{
    run->rv[s] = rv;
    run->mark[s] = run->acct.calls;
}

/* B's broadcast reached A's connection, or A rejected it. */
static int oom_received(rc_adapter *a, const ts_rec *probe, int before)
{
    rc_counters c;

    rc_adapter_counters(a, &c, sizeof c);
    return probe->count > before || c.rejected > 0;
}

/* Node A, whose allocation number fail_at fails (0: none), opens, adds a
 * connection, joins a room (SUBSCRIBE), broadcasts to it (delivery and
 * PUBLISH), and receives node B's broadcast. A step after one that failed
 * does not run (its rv stays 1). */
static void oom_scenario(ts_world *w, ts_node *B, oom_run *run,
                         unsigned long long fail_at)
{
    rc_alloc hooks = ts_acct_hooks(&run->acct);
    rc_message m = ts_msg("ev", "{\"n\":1}", NULL);
    int pub_up, sub_up, before, rv = 0, s;
    redisAsyncContext *pub = oom_ctx(w, &pub_up), *sub = oom_ctx(w, &sub_up);
    rc_adapter_options o;
    rc_adapter *a = NULL;
    rc_conn *c = NULL;
    ts_node own; /* what the recording sink checks its calls against */
    ts_rec probe;

    memset(&o, 0, sizeof o);
    o.node_id = "node-A";
    o.alloc = &hooks;
    memset(&own, 0, sizeof own);
    own.w = w;
    memset(&probe, 0, sizeof probe);
    probe.w = w;
    probe.owner = &own;
    snprintf(probe.id, sizeof probe.id, "a1");
    for (s = 0; s < S_STEPS; s++)
        run->rv[s] = 1;
    run->acct.fail_at = fail_at;
    oom_step(run, S_OPEN, rv = rc_adapter_open(&o, pub, sub, &a));
    own.a = a;
    if (rv == 0)
        oom_step(run, S_ADD, rv = rc_conn_add(a, "a1", ts_sink, &probe, &c));
    probe.conn = c;
    if (rv == 0)
        oom_step(run, S_JOIN, rv = rc_room_join(c, "om"));
    if (rv == 1 && (rc_adapter_counters(a, &run->c, sizeof run->c),
                    run->c.subscribe_errors == 0))
        WAIT_FOR(w, rc_room_is_ready(a, "om"), "A's room to be ready");
    if (rv == 1)
        oom_step(run, S_SEND, rv = rc_broadcast_to_room(a, "om", &m, NULL, 0));
    if (rv == 1 && rc_room_is_ready(a, "om")) {
        before = probe.count;
        assert_int_equal(ts_bcast(B, "om", "ev", "2", NULL, 0), 1);
        WAIT_FOR(w, oom_received(a, &probe, before),
                 "A to take B's broadcast or reject it");
        oom_step(run, S_RECV, probe.count - before);
    }
    if (a != NULL)
        rc_adapter_counters(a, &run->c, sizeof run->c);
    run->acct.fail_at = 0;
    rc_adapter_free(a);
    redisAsyncFree(pub);
    redisAsyncFree(sub);
    run->live = run->acct.live;
    free(probe.frame);
    free(probe.data);
}

/* What failing allocation k (of a dry run's marks) must give. */
static void oom_check(const oom_run *dry, const oom_run *run,
                      unsigned long long k)
{
    const unsigned long long *mk = dry->mark;
    const unsigned long long *rej = run->c.rejected_by;

    assert_int_equal(run->acct.failed, 1);
    assert_int_equal(run->live, 0);
    assert_int_equal(run->acct.foreign, 0);
    if (k <= mk[S_OPEN] && run->rv[S_OPEN] == 0) {
        /* The lease's claim, which the next tick sends again: the rest
         * runs as without a failure. */
        assert_int_equal(run->c.script_errors, 1);
        assert_int_equal(run->rv[S_RECV], 1);
        return;
    }
    if (k <= mk[S_OPEN]) {
        assert_int_equal(run->rv[S_OPEN], RC_ENOMEM);
        return;
    }
    assert_int_equal(run->rv[S_OPEN], 0);
    assert_int_equal(run->rv[S_ADD], k <= mk[S_ADD] ? RC_ENOMEM : 0);
    if (k <= mk[S_ADD])
        return;
    /* A join creates the room and the membership, then formats the
     * SUBSCRIBE: that last allocation failing leaves the join made, the
     * room unsubscribed, and the failure counted. */
    assert_int_equal(run->rv[S_JOIN], k < mk[S_JOIN] ? RC_ENOMEM : 1);
    assert_int_equal(run->c.subscribe_errors, k == mk[S_JOIN] ? 1 : 0);
    if (k == mk[S_JOIN]) /* delivered here, published, never subscribed */
        assert_int_equal(run->rv[S_SEND], 1);
    if (k <= mk[S_JOIN])
        return;
    assert_int_equal(run->rv[S_SEND], k <= mk[S_SEND] ? RC_ENOMEM : 1);
    if (k <= mk[S_SEND])
        return;
    /* Receiving: the decode scratch, then the frame. */
    assert_int_equal(run->rv[S_RECV], 0);
    assert_int_equal(rej[-RC_ENOMEM], 1);
    assert_int_equal(run->c.rejected, 1);
}

static void t_every_allocation_fails(void **state)
{
    ts_world *w = *state;
    ts_node *B = ts_node_up(w, 1, NULL, "node-B");
    ts_rec *b1 = ts_add_conn(B, "b1");
    oom_run *dry = calloc(2, sizeof *dry), *run = dry + 1;
    unsigned long long k;

    assert_non_null(dry);
    w->user = dry; /* freed by the teardown */
    w->user_free = free;
    ts_join(b1, "om");
    ts_wait_ready(w, B, "om");
    oom_scenario(w, B, dry, 0);
    assert_int_equal(dry->rv[S_RECV], 1);
    assert_int_equal(dry->live, 0);
    assert_int_equal(dry->c.delivered, 2);
    print_message("%llu allocations: open %llu, add %llu, join %llu, "
                  "send %llu, receive %llu\n",
                  dry->mark[S_RECV], dry->mark[S_OPEN], dry->mark[S_ADD],
                  dry->mark[S_JOIN], dry->mark[S_SEND], dry->mark[S_RECV]);
    for (k = 1; k <= dry->mark[S_RECV]; k++) {
        memset(run, 0, sizeof *run);
        oom_scenario(w, B, run, k);
        if (run->acct.failed != 1 || run->live != 0)
            print_message("allocation %llu: failed %llu, live %ld\n", k,
                          run->acct.failed, run->live);
        oom_check(dry, run, k);
    }
    ts_assert_clean(&w->problems);
}

/* ===================================================================== */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_ready_cb_removes_conn), T(t_ready_cb_frees_adapter),
        T(t_lost_cb_frees_adapter), T(t_lost_cb_hands_new_sub),
        T(t_same_sub_back_refused), T(t_pub_freed_behind_back),
        T(t_sub_freed_behind_back), T(t_subscribe_refused_counted),
        T(t_subscribe_oom_retried), T(t_lost_without_memory),
        T(t_resp3_sub_context),     T(t_every_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
