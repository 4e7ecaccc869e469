/*
 * Admission against a real redis-server: three nodes (adapters with
 * presence, ticked every 20 ms) on one Redis.
 *
 * - exact: rounds of 50 concurrent admits spread over the nodes into a
 *   cap-2 room seat exactly 2 each round;
 * - tabs and grace: three connections of one user take one seat; the
 *   seat stays through the user's grace and is free once it ran out;
 * - close racing admits: on each node's connection, every admit sent
 *   after the close is refused (answers are OK... then CLOSED...), every
 *   member on every node gets rc:closed and is ended, and nothing joins
 *   afterwards;
 * - a node that missed the close (its sub context killed) ends its
 *   members at its next verification; a room <kp>{closed} names without
 *   being closed (a close registered there, node-wide, before its room
 *   script runs, and whose node stopped in between) ends nobody;
 * - evict: the user's connections end on every node, once, the seat is
 *   free at once;
 * - a tiny code space (alphabet "AB", 4 symbols): exactly 16 sessions,
 *   the 17th RC_ENOCODE; free again once their time ran out;
 * - send behind checks: member, closed, rate (what the room refuses is
 *   given back to the bucket);
 * - no Redis: admission fails closed (RC_EUNAVAIL).
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

#define GRACE_MS 400
#define MAX_CONNS 32

/* One connection of the test: what it got, and how it ended. */
typedef struct conn {
    rc_conn *c;
    char id[32];
    int closed_frames, leaves, messages, ended, reason;
} conn;

/* The answers of admission calls. */
typedef struct answers {
    int n, ok, full, closed, other;
    int order[64]; /* per call, in the order sent (index in user) */
    char room[64];
    unsigned long long retry;
} answers;

typedef struct at {
    conn c[MAX_CONNS];
    int nconns;
} at;

static at *A(ts_world *w)
{
    return w->user;
}

static void at_free(void *p)
{
    free(p);
}

static int setup(void **state)
{
    ts_world *w;

    if (ts_world_setup(state, NULL, 1) != 0)
        return -1;
    w = *state;
    w->user = calloc(1, sizeof(at));
    w->user_free = at_free;
    ts_world_tick(w, 20);
    return 0;
}

static void on_end(rc_conn *c, const char *room, int reason, void *user)
{
    conn *k = rc_conn_user(c);

    (void)room;
    (void)user;
    k->ended++;
    k->reason = reason;
}

/* Node i with presence and a verification every 300 ms. */
static ts_node *anode(ts_world *w, int i, const char *id)
{
    ts_node *n = ts_node_open_(w, i, id);
    rc_state_options so;
    rc_presence_options po;

    memset(&so, 0, sizeof so);
    so.lease_ms = 3000;
    so.verify_ms = 300;
    memset(&po, 0, sizeof po);
    po.grace_ms = GRACE_MS;
    po.sweep_ms = 50;
    assert_int_equal(rc_adapter_set_state_options(n->a, &so, sizeof so), 0);
    assert_int_equal(rc_adapter_set_presence(n->a, &po, sizeof po), 0);
    rc_adapter_set_end_cb(n->a, on_end, NULL);
    n->pub = ts_ctx_connect(w, n, 0);
    n->sub = ts_ctx_connect(w, n, 1);
    redisAsyncCommand(n->sub->ac, NULL, NULL, "CLIENT SETNAME n%dsub", i);
    assert_int_equal(rc_adapter_set_pub(n->a, n->pub->ac), 0);
    assert_int_equal(rc_adapter_set_sub(n->a, n->sub->ac), 0);
    n->pub->attached = n->sub->attached = 1;
    WAIT_FOR(w, rc_adapter_node_state(n->a) == RC_NODE_LIVE, "the lease");
    return n;
}

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    conn *k = user;

    (void)c;
    (void)f;
    if (m->event == NULL)
        return 0;
    k->closed_frames += strcmp(m->event, "rc:closed") == 0;
    k->leaves += strcmp(m->event, "rc:leave") == 0;
    k->messages += strcmp(m->event, "message") == 0;
    return 0;
}

/* A connection of user (NULL: none) on node n, joined to room. */
static conn *open_conn(ts_world *w, ts_node *n, const char *user,
                       const char *room)
{
    at *t = A(w);
    conn *k;

    assert_true(t->nconns < MAX_CONNS);
    k = &t->c[t->nconns++];
    memset(k, 0, sizeof *k);
    snprintf(k->id, sizeof k->id, "c%d", t->nconns);
    assert_int_equal(rc_conn_add(n->a, k->id, sink, k, &k->c), 0);
    if (user != NULL)
        assert_int_equal(rc_conn_set_user(k->c, user, NULL, 0), 0);
    assert_int_equal(rc_room_join(k->c, room), 1);
    return k;
}

static void on_answer(rc_adapter *a, int rv, const char *room,
                      unsigned long long retry_ms, void *user)
{
    answers *s = user;

    (void)a;
    if (s->n < 64)
        s->order[s->n] = rv;
    s->n++;
    s->ok += rv == 0 || rv > 0;
    s->full += rv == RC_EFULL;
    s->closed += rv == RC_ECLOSED;
    s->other += rv < 0 && rv != RC_EFULL && rv != RC_ECLOSED;
    snprintf(s->room, sizeof s->room, "%s", room);
    s->retry = retry_ms;
}

/* One call's answer, waited for. */
static int one(ts_world *w, answers *s)
{
    int before = s->n;

    WAIT_FOR(w, s->n == before + 1, "the answer");
    return s->order[before < 64 ? before : 63];
}

#define CALL(w, s, expr)                                                       \
    (memset(&(s), 0, sizeof(s)), assert_int_equal((expr), 0), one((w), &(s)))

static rc_room_spec capped(unsigned cap)
{
    rc_room_spec spec;

    memset(&spec, 0, sizeof spec);
    spec.cap = cap;
    return spec;
}

/* ---- tests --------------------------------------------------------------- */

static int rounds(void)
{
    const char *e = getenv("ADMIT_ROUNDS");

    return e != NULL && atoi(e) > 0 ? atoi(e) : 1000;
}

static void t_exact(void **state)
{
    ts_world *w = *state;
    ts_node *n[3];
    rc_room_spec spec = capped(2);
    answers s;
    char room[32], user[16];
    int r, i, nr = rounds();
    long long t0 = ts_now_ms();

    n[0] = anode(w, 0, "A");
    n[1] = anode(w, 1, "B");
    n[2] = anode(w, 2, "C");
    for (r = 0; r < nr; r++) {
        snprintf(room, sizeof room, "cap:%d", r);
        assert_int_equal(
            CALL(w, s,
                 rc_room_create(n[r % 3]->a, room, &spec, NULL, on_answer, &s)),
            0);
        memset(&s, 0, sizeof s);
        for (i = 0; i < 50; i++) {
            snprintf(user, sizeof user, "u%d", i);
            assert_int_equal(
                rc_room_admit(n[i % 3]->a, room, user, 0, on_answer, &s), 0);
        }
        WAIT_FOR(w, s.n == 50, "50 answers");
        if (s.ok != 2 || s.full != 48)
            fail_msg("round %d: %d admitted, %d full, %d other", r, s.ok,
                     s.full, s.other);
    }
    print_message("%d rounds x 50 concurrent admits over 3 nodes into cap-2 "
                  "rooms: exactly 2 each, %lld ms\n",
                  nr, ts_now_ms() - t0);
    for (i = 0; i < 3; i++)
        assert_int_equal(ts_ctr(n[i]).script_errors, 0);
}

static void t_tabs_and_grace(void **state)
{
    ts_world *w = *state;
    ts_node *n[3];
    rc_room_spec spec = capped(2);
    conn *tab[3], *bob;
    answers s;
    int i;

    for (i = 0; i < 3; i++)
        n[i] = anode(w, i, i == 0 ? "A" : i == 1 ? "B" : "C");
    assert_int_equal(
        CALL(w, s, rc_room_create(n[0]->a, "g", &spec, "ann", on_answer, &s)),
        0);
    for (i = 0; i < 3; i++) /* ann's three tabs, one per node */
        tab[i] = open_conn(w, n[i], "ann", "g");
    assert_int_equal(
        CALL(w, s, rc_room_admit(n[1]->a, "g", "bob", 0, on_answer, &s)), 0);
    bob = open_conn(w, n[1], "bob", "g");
    assert_int_equal(
        CALL(w, s, rc_room_admit(n[2]->a, "g", "cy", 0, on_answer, &s)),
        RC_EFULL);
    /* ann's tabs close: her seat stays through the grace */
    for (i = 0; i < 3; i++)
        rc_conn_remove(tab[i]->c);
    assert_int_equal(
        CALL(w, s, rc_room_admit(n[2]->a, "g", "cy", 0, on_answer, &s)),
        RC_EFULL);
    WAIT_FOR(w, bob->leaves == 1, "ann's leave, once the grace ran out");
    assert_int_equal(
        CALL(w, s, rc_room_admit(n[2]->a, "g", "cy", 0, on_answer, &s)), 0);
    for (i = 0; i < 3; i++)
        assert_int_equal(tab[i]->ended, 0);
}

/* Each node's admits are answered in the order sent on its connection:
 * none may pass after one was refused as closed. */
static void check_order(const answers *s, const char *who)
{
    int i, seen_closed = 0;

    for (i = 0; i < s->n && i < 64; i++) {
        if (s->order[i] == RC_ECLOSED)
            seen_closed = 1;
        else if (s->order[i] == 0 && seen_closed)
            fail_msg("%s: admit %d passed after one was refused (closed)", who,
                     i);
        else if (s->order[i] != 0)
            fail_msg("%s: admit %d: %s", who, i, rc_err_name(s->order[i]));
    }
}

static void t_close_races_admits(void **state)
{
    ts_world *w = *state;
    ts_node *n[3];
    rc_room_spec spec = capped(100);
    answers s, per[3], closing;
    conn *m[3];
    char user[16];
    int i;

    for (i = 0; i < 3; i++)
        n[i] = anode(w, i, i == 0 ? "A" : i == 1 ? "B" : "C");
    assert_int_equal(
        CALL(w, s, rc_room_create(n[0]->a, "r", &spec, NULL, on_answer, &s)),
        0);
    for (i = 0; i < 3; i++) {
        snprintf(user, sizeof user, "m%d", i);
        assert_int_equal(
            CALL(w, s, rc_room_admit(n[i]->a, "r", user, 0, on_answer, &s)), 0);
        m[i] = open_conn(w, n[i], user, "r");
        ts_wait_ready(w, n[i], "r");
    }
    memset(per, 0, sizeof per);
    memset(&closing, 0, sizeof closing);
    for (i = 0; i < 50; i++) {
        snprintf(user, sizeof user, "u%d", i);
        assert_int_equal(
            rc_room_admit(n[i % 3]->a, "r", user, 0, on_answer, &per[i % 3]),
            0);
        if (i == 24)
            assert_int_equal(rc_room_close(n[0]->a, "r", "{\"by\":\"test\"}",
                                           on_answer, &closing),
                             0);
    }
    WAIT_FOR(w, per[0].n + per[1].n + per[2].n == 50 && closing.n == 1,
             "every answer");
    assert_int_equal(closing.ok, 1);
    check_order(&per[0], "A");
    check_order(&per[1], "B");
    check_order(&per[2], "C");
    assert_true(per[0].closed >= 8); /* A's last 8 went after its close */
    for (i = 0; i < 3; i++) {
        WAIT_FOR(w, m[i]->ended == 1, "each member ended");
        assert_int_equal(m[i]->reason, RC_ECLOSED);
        assert_int_equal(m[i]->closed_frames, 1);
        assert_int_equal(rc_room_size(n[i]->a, "r"), 0);
    }
    /* afterwards: admits, joins and a second close are refused */
    assert_int_equal(
        CALL(w, s, rc_room_admit(n[1]->a, "r", "late", 0, on_answer, &s)),
        RC_ECLOSED);
    assert_int_equal(
        CALL(w, s, rc_room_close(n[2]->a, "r", NULL, on_answer, &s)),
        RC_ECLOSED);
    m[0] = open_conn(w, n[2], "m2", "r");
    WAIT_FOR(w, m[0]->ended == 1, "a join after the close is ended");
    assert_int_equal(m[0]->closed_frames, 1);
}

static void t_missed_close_verified(void **state)
{
    ts_world *w = *state;
    ts_node *a, *c;
    rc_room_spec spec = capped(0);
    answers s;
    conn *k;
    redisReply *rep;

    a = anode(w, 0, "A");
    c = anode(w, 2, "C");
    assert_int_equal(
        CALL(w, s, rc_room_create(a->a, "v", &spec, NULL, on_answer, &s)), 0);
    k = open_conn(w, c, NULL, "v");
    ts_wait_ready(w, c, "v");
    /* C's sub context goes: it will not hear the close pushed */
    rep = rh_cmd(&w->rs, "CLIENT KILL TYPE pubsub");
    freeReplyObject(rep);
    WAIT_FOR(w, c->sub->state == TS_CTX_DOWN, "C's sub context gone");
    assert_int_equal(CALL(w, s, rc_room_close(a->a, "v", NULL, on_answer, &s)),
                     0);
    WAIT_FOR_MS(w, k->ended == 1, 2000, "C's member ended by verification");
    assert_int_equal(k->reason, RC_ECLOSED);
    assert_int_equal(k->closed_frames, 1);
}

/* A close is named in rc:{closed} (another cluster slot) before the
 * room's script runs: a node verifying in between, or after a closer that
 * stopped there, asks the room and ends nobody; the real close later
 * ends its member, by verification too. */
static void t_named_not_closed(void **state)
{
    ts_world *w = *state;
    ts_node *a, *c;
    rc_room_spec spec = capped(0);
    answers s;
    conn *k;

    a = anode(w, 0, "A");
    c = anode(w, 2, "C");
    assert_int_equal(
        CALL(w, s, rc_room_create(a->a, "nc", &spec, NULL, on_answer, &s)), 0);
    k = open_conn(w, c, NULL, "nc");
    ts_wait_ready(w, c, "nc");
    ts_reply_ok(rh_cmd(&w->rs, "ZADD rc:{closed} 9999999999999 nc"), "ZADD");
    ts_reply_ok(rh_cmd(&w->rs, "HSET rc:{closed}:why nc \"x\""), "HSET");
    ts_reply_ok(rh_cmd(&w->rs, "INCR rc:{closed}:n"), "INCR");
    ts_run_for(&w->loop, 1000); /* three verifications */
    assert_int_equal(k->ended, 0);
    freeReplyObject(rh_cmd(&w->rs, "CLIENT KILL TYPE pubsub"));
    WAIT_FOR(w, c->sub->state == TS_CTX_DOWN, "C's sub context gone");
    assert_int_equal(CALL(w, s, rc_room_close(a->a, "nc", NULL, on_answer, &s)),
                     0);
    WAIT_FOR_MS(w, k->ended == 1, 2000, "C's member ended by verification");
    assert_int_equal(k->reason, RC_ECLOSED);
}

static void t_evict(void **state)
{
    ts_world *w = *state;
    ts_node *a, *b;
    rc_room_spec spec = capped(2);
    conn *t1, *t2, *other;
    answers s;

    a = anode(w, 0, "A");
    b = anode(w, 1, "B");
    assert_int_equal(
        CALL(w, s, rc_room_create(a->a, "e", &spec, "ann", on_answer, &s)), 0);
    assert_int_equal(
        CALL(w, s, rc_room_admit(b->a, "e", "bob", 0, on_answer, &s)), 0);
    t1 = open_conn(w, a, "ann", "e");
    t2 = open_conn(w, b, "ann", "e");
    other = open_conn(w, b, "bob", "e");
    ts_wait_ready(w, a, "e");
    ts_wait_ready(w, b, "e");
    assert_int_equal(
        CALL(w, s, rc_room_admit(b->a, "e", "cy", 0, on_answer, &s)), RC_EFULL);
    assert_int_equal(CALL(w, s, rc_room_evict(b->a, "e", "ann", on_answer, &s)),
                     0);
    WAIT_FOR(w, t1->ended == 1 && t2->ended == 1, "ann's tabs ended");
    assert_int_equal(t1->reason, RC_ENOTMEMBER);
    WAIT_FOR(w, other->leaves == 1, "bob sees ann leave");
    assert_int_equal(other->ended, 0);
    /* the seat is free at once: no grace */
    assert_int_equal(
        CALL(w, s, rc_room_admit(a->a, "e", "cy", 0, on_answer, &s)), 0);
    assert_int_equal(CALL(w, s, rc_room_evict(a->a, "e", "ann", on_answer, &s)),
                     RC_ENOTMEMBER);
    /* a user without a seat cannot stay joined in a capped room */
    t1 = open_conn(w, a, "dan", "e");
    ts_wait_ready(w, a, "e");
    WAIT_FOR(w, t1->ended == 1, "a join without a seat ended");
    assert_int_equal(t1->reason, RC_ENOTMEMBER);
    assert_int_equal(other->leaves, 1);
}

static void t_tiny_code_space(void **state)
{
    ts_world *w = *state;
    ts_node *a;
    rc_room_spec spec = capped(2);
    answers s;
    char rooms[16][32];
    int i, j;

    spec.alphabet = "AB";
    spec.code_len = 4;
    spec.code_prefix = "s:";
    spec.ttl_s = 1;
    a = anode(w, 0, "A");
    for (i = 0; i < 16; i++) {
        assert_int_equal(
            CALL(w, s, rc_room_create(a->a, NULL, &spec, "u", on_answer, &s)),
            0);
        assert_int_equal(strlen(s.room), 6);
        assert_int_equal(strspn(s.room + 2, "AB"), 4);
        snprintf(rooms[i], sizeof rooms[i], "%s", s.room);
        for (j = 0; j < i; j++)
            assert_string_not_equal(rooms[i], rooms[j]);
    }
    assert_int_equal(
        CALL(w, s, rc_room_create(a->a, NULL, &spec, "u", on_answer, &s)),
        RC_ENOCODE);
    /* one closed: its tombstone keeps the code; then all time out */
    assert_int_equal(
        CALL(w, s, rc_room_close(a->a, rooms[3], NULL, on_answer, &s)), 0);
    assert_int_equal(
        CALL(w, s, rc_room_create(a->a, NULL, &spec, "u", on_answer, &s)),
        RC_ENOCODE);
    /* codes expire in Redis time: ask every 100 ms, for 5 s at most */
    for (i = 0; i < 50; i++) {
        if (CALL(w, s, rc_room_create(a->a, NULL, &spec, "u", on_answer, &s)) ==
            0)
            break;
        ts_run_for(&w->loop, 100);
    }
    assert_true(i >= 5 && i < 50); /* not before the second, not never */
}

static void t_send_guarded(void **state)
{
    ts_world *w = *state;
    ts_node *a, *b;
    rc_room_spec spec = capped(2);
    rc_rate rate = {1.0, 2};
    rc_send_guard g;
    rc_message msg = ts_msg("message", "{\"m\":1}", NULL);
    conn *here, *there;
    answers s;
    rc_counters before, after;

    a = anode(w, 0, "A");
    b = anode(w, 1, "B");
    assert_int_equal(
        CALL(w, s, rc_room_create(a->a, "s", &spec, "ann", on_answer, &s)), 0);
    here = open_conn(w, a, "ann", "s");
    there = open_conn(w, b, NULL, "s");
    ts_wait_ready(w, a, "s");
    ts_wait_ready(w, b, "s");
    memset(&g, 0, sizeof g);
    g.member = "eve";
    g.rate_key = "test:ann";
    g.rate = &rate;
    /* Refused by the room after the bucket (another slot) counted them:
     * both are given back. */
    assert_int_equal(
        CALL(w, s, rc_room_send(a->a, "s", &msg, &g, on_answer, &s)),
        RC_ENOTMEMBER);
    assert_int_equal(
        CALL(w, s, rc_room_send(a->a, "s", &msg, &g, on_answer, &s)),
        RC_ENOTMEMBER);
    g.member = "ann";
    before = ts_ctr(a);
    assert_int_equal(
        CALL(w, s, rc_room_send(a->a, "s", &msg, &g, on_answer, &s)),
        1); /* here: its one local member */
    assert_int_equal(
        CALL(w, s, rc_room_send(a->a, "s", &msg, &g, on_answer, &s)), 1);
    assert_int_equal(
        CALL(w, s, rc_room_send(a->a, "s", &msg, &g, on_answer, &s)),
        RC_ELIMITED);
    assert_true(s.retry >= 1 && s.retry <= 1000);
    WAIT_FOR(w, there->messages == 2, "both sent messages on B");
    assert_int_equal(here->messages, 2);
    after = ts_ctr(a);
    assert_int_equal(after.published - before.published, 2);
    assert_int_equal(CALL(w, s, rc_room_close(b->a, "s", NULL, on_answer, &s)),
                     0);
    g.rate_key = NULL;
    assert_int_equal(
        CALL(w, s, rc_room_send(a->a, "s", &msg, &g, on_answer, &s)),
        RC_ECLOSED);
}

/* A user admitted while already connected holds the seat as long as it
 * stays, not for the hold alone. */
static void t_seat_of_present_user(void **state)
{
    ts_world *w = *state;
    ts_node *a = anode(w, 0, "A");
    rc_room_spec spec = capped(0);
    answers s;

    spec.hold_ms = 200;
    assert_int_equal(
        CALL(w, s, rc_room_create(a->a, "p", &spec, NULL, on_answer, &s)), 0);
    open_conn(w, a, "ann", "p");
    ts_wait_ready(w, a, "p");
    assert_int_equal(
        CALL(w, s, rc_room_admit(a->a, "p", "ann", 0, on_answer, &s)), 0);
    assert_int_equal(
        CALL(w, s, rc_room_admit(a->a, "p", "bob", 0, on_answer, &s)), 0);
    ts_run_for(&w->loop, 400); /* twice the hold, in Redis time too */
    assert_int_equal(
        CALL(w, s,
             rc_room_admit(a->a, "p", "ann", RC_ADMIT_MEMBER, on_answer, &s)),
        0);
    assert_int_equal(
        CALL(w, s,
             rc_room_admit(a->a, "p", "bob", RC_ADMIT_MEMBER, on_answer, &s)),
        RC_ENOTMEMBER);
}

static void t_no_redis_fails_closed(void **state)
{
    ts_world *w = *state;
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "solo");
    answers s;
    conn k;
    rc_conn *c;

    (void)w;
    memset(&s, 0, sizeof s);
    memset(&k, 0, sizeof k);
    assert_non_null(a);
    assert_int_equal(rc_room_create(a, NULL, NULL, "u", on_answer, &s),
                     RC_EUNAVAIL);
    assert_int_equal(rc_room_admit(a, "r", "u", 0, on_answer, &s), RC_EUNAVAIL);
    assert_int_equal(rc_room_admit(a, "r", "", 0, on_answer, &s), RC_EINVAL);
    assert_int_equal(rc_room_create(a, "bad\nroom", NULL, NULL, on_answer, &s),
                     RC_EINVAL);
    /* a close without Redis ends the local members at once */
    rc_adapter_set_end_cb(a, on_end, NULL);
    assert_int_equal(rc_conn_add(a, "c1", sink, &k, &c), 0);
    assert_int_equal(rc_room_join(c, "r"), 1);
    assert_int_equal(rc_room_close(a, "r", NULL, on_answer, &s), RC_EUNAVAIL);
    assert_int_equal(rc_room_size(a, "r"), 0);
    assert_int_equal(k.ended, 1);
    assert_int_equal(k.closed_frames, 1);
    assert_int_equal(s.n, 0);
    rc_adapter_free(a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_exact),
        T(t_tabs_and_grace),
        T(t_close_races_admits),
        T(t_missed_close_verified),
        T(t_named_not_closed),
        T(t_evict),
        T(t_tiny_code_space),
        T(t_send_guarded),
        T(t_seat_of_present_user),
        T(t_no_redis_fails_closed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
