/*
 * Presence against a real redis-server: nodes are adapters on contexts of
 * one loop, ticked every 20 ms by a timer of the test; each connection
 * records the presence frames it gets (rc:presence, rc:join, rc:leave)
 * and keeps the view they give, checking as it goes that no leave comes
 * for a user it does not see and no join for one it sees.
 *
 * - snapshot then changes: a joiner's snapshot holds everyone (itself
 *   included), then only what changed after it;
 * - tabs: a user's second connection on another node makes no event;
 * - grace: a user gone on A and back on B within the grace makes no event
 *   anywhere; gone for longer, exactly one leave ("left");
 * - leave now: no grace;
 * - a dead node (its connections killed, its token no longer renewed):
 *   its users leave exactly once ("lost"), with two nodes racing to reap;
 * - churn: users joining and leaving on three nodes while observers come
 *   and go: every observer's view equals Redis' at the end, and events
 *   kept for observers awaiting their snapshot were used (the race);
 * - SCRIPT FLUSH every 100 ms while joining: no error, same result;
 * - the node-wide keys a room script no longer touches (Redis Cluster: one
 *   slot per script) heal: a grace whose sweep registration was lost with
 *   its node is put back by the reaper; a user the users index names
 *   wrongly is not listed, and is forgotten by the query.
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
#define LEASE_MS 1000
#define MAX_OBS 512
#define MAX_USERS 64

/* One connection of the test, and the view its frames give. */
typedef struct obs {
    ts_world *w;
    rc_conn *conn;
    char id[32];
    int node;
    int snapshots, joins, leaves, lost;
    int counts, count;           /* large rooms: rc:presence with a count */
    int cjoins, cleaves, clost;  /* per-connection events */
    char last[512];              /* the last presence frame's data */
    char present[MAX_USERS][16]; /* the view: users it sees */
    int npresent;
} obs;

typedef struct pt {
    obs o[MAX_OBS];
    int nobs;
} pt;

static unsigned announce_max; /* 0: the default; set by a test */
static unsigned pflags;       /* rc_presence_options.flags */

static pt *P(ts_world *w)
{
    return w->user;
}

static void pt_free(void *p)
{
    free(p);
}

static int setup(void **state)
{
    ts_world *w;

    announce_max = 0;
    pflags = 0;
    if (ts_world_setup(state, NULL, 1) != 0)
        return -1;
    w = *state;
    w->user = calloc(1, sizeof(pt));
    w->user_free = pt_free;
    ts_world_tick(w, 20);
    return 0;
}

/* Node i with presence (grace GRACE_MS, lease LEASE_MS). */
static ts_node *pnode(ts_world *w, int i, const char *id)
{
    ts_node *n = ts_node_open_(w, i, id);
    rc_state_options so;
    rc_presence_options po;

    memset(&so, 0, sizeof so);
    so.lease_ms = LEASE_MS;
    memset(&po, 0, sizeof po);
    po.grace_ms = GRACE_MS;
    po.sweep_ms = 50;
    po.announce_max = announce_max;
    po.flags = pflags;
    assert_int_equal(rc_adapter_set_state_options(n->a, &so, sizeof so), 0);
    assert_int_equal(rc_adapter_set_presence(n->a, &po, sizeof po), 0);
    n->pub = ts_ctx_connect(w, n, 0);
    n->sub = ts_ctx_connect(w, n, 1);
    /* Named, to be killed by name (before the sub context subscribes). */
    redisAsyncCommand(n->pub->ac, NULL, NULL, "CLIENT SETNAME n%dpub", i);
    redisAsyncCommand(n->sub->ac, NULL, NULL, "CLIENT SETNAME n%dsub", i);
    assert_int_equal(rc_adapter_set_pub(n->a, n->pub->ac), 0);
    assert_int_equal(rc_adapter_set_sub(n->a, n->sub->ac), 0);
    n->pub->attached = n->sub->attached = 1;
    return n;
}

/* ---- the view ------------------------------------------------------------ */

static int find(const obs *o, const char *u)
{
    int i;

    for (i = 0; i < o->npresent; i++)
        if (strcmp(o->present[i], u) == 0)
            return i;
    return -1;
}

/* The value of "user":"..." at or after p into u; the end, or NULL. */
static const char *next_user(const char *p, const char *end, char *u)
{
    const char *k = p, *q;
    size_t n;

    while ((k = strstr(k, "\"user\":\"")) != NULL && k < end) {
        k += 8;
        if ((q = strchr(k, '"')) == NULL)
            return NULL;
        n = (size_t)(q - k) < 15 ? (size_t)(q - k) : 15;
        memcpy(u, k, n);
        u[n] = '\0';
        return q;
    }
    return NULL;
}

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    obs *o = user;
    ts_problems *pr = &o->w->problems;
    const char *cnt;
    const char *end = m->data + m->data_len, *p = m->data;
    char u[16], buf[4096];
    int at;

    (void)c;
    (void)f;
    if (m->event == NULL || strncmp(m->event, "rc:", 3) != 0)
        return 0;
    snprintf(buf, sizeof buf, "%.*s", (int)m->data_len, m->data);
    snprintf(o->last, sizeof o->last, "%.*s", (int)sizeof o->last - 1, buf);
    p = buf;
    end = buf + strlen(buf);
    if (strncmp(buf, "{\"user\":", 8) == 0 &&
        strstr(buf, "\"connection\":") != NULL) { /* per connection */
        o->cjoins += strcmp(m->event, "rc:join") == 0;
        o->cleaves += strcmp(m->event, "rc:leave") == 0;
        o->clost += strstr(buf, "\"reason\":\"lost\"") != NULL;
        return 0;
    }
    if (strcmp(m->event, "rc:presence") == 0 &&
        (cnt = strstr(buf, "\"count\":")) != NULL) {
        o->counts++;
        o->count = atoi(cnt + 8);
    } else if (strcmp(m->event, "rc:presence") == 0) {
        o->snapshots++;
        o->npresent = 0;
        while ((p = next_user(p, end, u)) != NULL && o->npresent < MAX_USERS)
            snprintf(o->present[o->npresent++], 16, "%s", u);
    } else if (strcmp(m->event, "rc:join") == 0) {
        o->joins++;
        next_user(p, end, u);
        if (o->snapshots == 0 || find(o, u) >= 0)
            ts_note(pr, "%s: join of %s, seen already (or no snapshot)", o->id,
                    u);
        else if (o->npresent < MAX_USERS)
            snprintf(o->present[o->npresent++], 16, "%s", u);
    } else if (strcmp(m->event, "rc:leave") == 0) {
        o->leaves++;
        o->lost += strstr(buf, "\"reason\":\"lost\"") != NULL;
        next_user(p, end, u);
        if ((at = find(o, u)) < 0)
            ts_note(pr, "%s: leave of %s, not seen", o->id, u);
        else
            memcpy(o->present[at], o->present[--o->npresent], 16);
    }
    return 0;
}

/* A connection on node n of user (NULL: an observer), joined to room. */
static obs *open_obs(ts_world *w, ts_node *n, const char *user,
                     const char *room)
{
    pt *t = P(w);
    obs *o;

    assert_true(t->nobs < MAX_OBS);
    o = &t->o[t->nobs++];
    memset(o, 0, sizeof *o);
    o->w = w;
    o->node = (int)(n - w->nodes);
    snprintf(o->id, sizeof o->id, "c%d", t->nobs);
    assert_int_equal(rc_conn_add(n->a, o->id, sink, o, &o->conn), 0);
    if (user != NULL)
        assert_int_equal(rc_conn_set_user(o->conn, user, NULL, 0), 0);
    assert_int_equal(rc_room_join(o->conn, room), 1);
    return o;
}

static void close_obs(obs *o)
{
    rc_conn_remove(o->conn);
    o->conn = NULL;
}

static int sees(const obs *o, const char *u)
{
    return o->snapshots > 0 && find(o, u) >= 0;
}

#define WAIT_SNAP(w, o) WAIT_FOR(w, (o)->snapshots > 0, "a snapshot for " #o)

/* ---- tests --------------------------------------------------------------- */

static void t_snapshot_then_changes(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A"), *B = pnode(w, 1, "B");
    obs *a1, *b1, *b2;

    a1 = open_obs(w, A, "alice", "r");
    WAIT_SNAP(w, a1);
    assert_true(sees(a1, "alice")); /* itself included */
    assert_int_equal(a1->joins, 0);
    b1 = open_obs(w, B, "bob", "r");
    WAIT_SNAP(w, b1);
    assert_true(sees(b1, "alice") && sees(b1, "bob"));
    WAIT_FOR(w, sees(a1, "bob"), "alice to see bob join");
    /* An observer without a user sees both and is not listed. */
    b2 = open_obs(w, B, NULL, "r");
    WAIT_SNAP(w, b2);
    assert_int_equal(b2->npresent, 2);
    ts_run_for(&w->loop, 100);
    assert_int_equal(a1->joins, 1);
    assert_int_equal(b1->joins, 0);
    assert_int_equal(b2->joins, 0);
    ts_assert_clean(&w->problems);
}

typedef struct qres {
    int done, err;
    int n;
    char users[8][16];
    unsigned long long conns[8];
} qres;

static void on_query(rc_adapter *a, int err, const rc_presence_entry *e,
                     size_t n, void *user)
{
    qres *q = user;
    size_t i;

    (void)a;
    q->done++;
    q->err = err;
    q->n = (int)n;
    for (i = 0; i < n && i < 8; i++) {
        snprintf(q->users[i], 16, "%s", e[i].user ? e[i].user : "");
        q->conns[i] = e[i].connections;
    }
}

static void t_tabs_make_no_event(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A"), *B = pnode(w, 1, "B");
    obs *a1, *obsv, *b1;
    qres q;

    obsv = open_obs(w, A, NULL, "r");
    a1 = open_obs(w, A, "alice", "r");
    WAIT_SNAP(w, a1);
    WAIT_FOR(w, sees(obsv, "alice"), "the observer to see alice");
    b1 = open_obs(w, B, "alice", "r"); /* a second tab, on B */
    WAIT_SNAP(w, b1);
    memset(&q, 0, sizeof q);
    assert_int_equal(rc_presence_users(B->a, "r", on_query, &q), 0);
    WAIT_FOR(w, q.done == 1, "the users query");
    assert_int_equal(q.err, 0);
    assert_int_equal(q.n, 1);
    assert_string_equal(q.users[0], "alice");
    assert_int_equal(q.conns[0], 2);
    close_obs(a1); /* one tab left: nothing to tell */
    ts_run_for(&w->loop, GRACE_MS + 300);
    assert_true(obsv->joins <= 1); /* alice: in its snapshot, or joined */
    assert_int_equal(obsv->leaves, 0);
    assert_true(sees(obsv, "alice"));
    ts_assert_clean(&w->problems);
}

static void t_grace_across_nodes(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A"), *B = pnode(w, 1, "B");
    obs *a1, *oa, *ob, *b1;
    long long t0;
    int joins;

    oa = open_obs(w, A, NULL, "r");
    ob = open_obs(w, B, NULL, "r");
    a1 = open_obs(w, A, "alice", "r");
    WAIT_FOR(w, sees(oa, "alice") && sees(ob, "alice"), "alice seen");
    /* Gone on A, back on B within the grace: nobody hears anything. */
    joins = oa->joins + ob->joins;
    close_obs(a1);
    ts_run_for(&w->loop, GRACE_MS / 4);
    b1 = open_obs(w, B, "alice", "r");
    WAIT_SNAP(w, b1);
    ts_run_for(&w->loop, GRACE_MS + 300);
    assert_int_equal(oa->joins + ob->joins, joins);
    assert_int_equal(oa->leaves + ob->leaves, 0);
    /* Gone for good: one leave, "left", after the grace. */
    t0 = ts_now_ms();
    close_obs(b1);
    WAIT_FOR(w, oa->leaves == 1 && ob->leaves == 1, "one leave each");
    assert_true(ts_now_ms() - t0 >= GRACE_MS - 50);
    ts_run_for(&w->loop, 300);
    assert_int_equal(oa->leaves + ob->leaves, 2);
    assert_int_equal(oa->lost + ob->lost, 0);
    assert_false(sees(oa, "alice"));
    ts_assert_clean(&w->problems);
}

static void t_leave_now(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A");
    obs *a1, *o;
    long long t0;

    o = open_obs(w, A, NULL, "r");
    a1 = open_obs(w, A, "alice", "r");
    WAIT_FOR(w, sees(o, "alice"), "alice seen");
    t0 = ts_now_ms();
    assert_int_equal(rc_room_leave_now(a1->conn, "r"), 1);
    WAIT_FOR(w, o->leaves == 1, "the leave");
    assert_true(ts_now_ms() - t0 < GRACE_MS);
    ts_assert_clean(&w->problems);
}

/* Kill node i's connections in Redis, as kill -9 of its process would
 * (nothing is said on the way out); its adapter gets no new ones, so its
 * token is never renewed again. */
static void kill_node(ts_world *w, int i)
{
    unsigned long long id;
    char name[16];
    int k;

    for (k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "n%d%s", i, k ? "sub" : "pub");
        assert_int_equal(ts_clients_named(w, name, &id, 1), 1);
        ts_reply_ok(rh_cmd(&w->rs, "CLIENT KILL ID %llu", id), "CLIENT KILL");
    }
    WAIT_FOR(w, rc_adapter_node_state(w->nodes[i].a) == RC_NODE_OFF,
             "the dead node's pub side to be gone");
}

/* A dies: B and C race to reap it; each of its users leaves once,
 * "lost", within lease + grace + the sweep. */
static void t_dead_node_reaped_once(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A"), *B = pnode(w, 1, "B"), *C = pnode(w, 2, "C");
    obs *ob, *oc;
    long long t0;

    ob = open_obs(w, B, NULL, "r");
    oc = open_obs(w, C, NULL, "r");
    open_obs(w, A, "u1", "r");
    open_obs(w, A, "u2", "r");
    open_obs(w, A, "u3", "r");
    open_obs(w, B, "u3", "r"); /* u3 is on B too: it stays */
    WAIT_FOR(w, sees(ob, "u3") && sees(oc, "u3") && sees(oc, "u1"),
             "A's users seen");
    t0 = ts_now_ms();
    kill_node(w, 0);
    WAIT_FOR_MS(w, ob->leaves == 2 && oc->leaves == 2,
                LEASE_MS + GRACE_MS + 3000, "two leaves on B and on C");
    print_message("a dead node's users left %lld ms after it died (lease "
                  "%d ms, grace %d ms)\n",
                  ts_now_ms() - t0, LEASE_MS, GRACE_MS);
    ts_run_for(&w->loop, LEASE_MS);
    assert_int_equal(ob->leaves, 2);
    assert_int_equal(oc->leaves, 2);
    assert_int_equal(ob->lost + oc->lost, 4);
    assert_true(sees(ob, "u3") && sees(oc, "u3"));
    assert_false(sees(ob, "u1") || sees(oc, "u2"));
    ts_assert_clean(&w->problems);
}

static long long zcard(ts_world *w, const char *key)
{
    redisReply *r = rh_cmd(&w->rs, "ZCARD %s", key);
    long long n;

    assert_non_null(r);
    n = r->integer;
    freeReplyObject(r);
    return n;
}

/* A leaves with grace and dies before its grace's sweep registration
 * (made after the leave's room script, another slot) is kept: the
 * reaper's room script answers with the room's next deadline, which it
 * registers again, and the leave comes once. */
static void t_lost_sweep_put_back(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A"), *B = pnode(w, 1, "B");
    obs *ob = open_obs(w, B, NULL, "r"), *a1 = open_obs(w, A, "u1", "r");

    WAIT_FOR(w, sees(ob, "u1"), "u1 seen on B");
    close_obs(a1);
    WAIT_FOR(w, zcard(w, "rc:{sweep}") > 0, "the grace in rc:{sweep}");
    ts_reply_ok(rh_cmd(&w->rs, "DEL rc:{sweep}"), "DEL rc:{sweep}");
    kill_node(w, 0);
    WAIT_FOR_MS(w, ob->leaves == 1, LEASE_MS + GRACE_MS + 3000,
                "u1's leave after A was reaped");
    ts_run_for(&w->loop, GRACE_MS);
    assert_int_equal(ob->leaves, 1);
    assert_false(sees(ob, "u1"));
    ts_assert_clean(&w->problems);
}

typedef struct online {
    int done, err;
    size_t n;
    char users[8][16];
} online;

static void on_online(rc_adapter *a, int err, const rc_presence_entry *e,
                      size_t n, void *user)
{
    online *o = user;
    size_t i;

    (void)a;
    o->done = 1;
    o->err = err;
    o->n = n;
    for (i = 0; i < n && i < 8; i++)
        snprintf(o->users[i], 16, "%s@%s", e[i].user, e[i].room);
}

static long long hexists(ts_world *w, const char *key, const char *field)
{
    redisReply *r = rh_cmd(&w->rs, "HEXISTS %s %s", key, field);
    long long n;

    assert_non_null(r);
    n = r->integer;
    freeReplyObject(r);
    return n;
}

/* The users index lists who MAY be present (a join registers there before
 * its room script): a wrong entry is not answered, and the query that
 * found it wrong forgets it; a present user is answered by its room. */
static void t_users_index_heals(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A");
    obs *o = open_obs(w, A, NULL, "r");
    online q;

    open_obs(w, A, "alice", "r");
    WAIT_FOR(w, sees(o, "alice"), "alice seen");
    ts_reply_ok(rh_cmd(&w->rs, "HSET rc:{users}:ghost r 1"), "HSET ghost");
    ts_reply_ok(rh_cmd(&w->rs, "HSET rc:{users} ghost 1"), "HSET ghost");
    memset(&q, 0, sizeof q);
    assert_int_equal(rc_presence_online(A->a, on_online, &q), 0);
    WAIT_FOR(w, q.done, "everyone online");
    assert_int_equal(q.err, 0);
    assert_int_equal(q.n, 1);
    assert_string_equal(q.users[0], "alice@r");
    WAIT_FOR(w, !hexists(w, "rc:{users}", "ghost"), "ghost forgotten");
    memset(&q, 0, sizeof q);
    assert_int_equal(rc_presence_user(A->a, "alice", on_online, &q), 0);
    WAIT_FOR(w, q.done, "alice's rooms");
    assert_int_equal(q.n, 1);
    assert_string_equal(q.users[0], "alice@r");
    assert_int_equal(hexists(w, "rc:{users}:alice", "r"), 1);
    ts_assert_clean(&w->problems);
}

/* Presence events that reach a member between its join and its
 * snapshot are held, then given after the snapshot if they are newer
 * than it, and dropped if the snapshot holds them already. The events
 * here are published by the test (a sequence far ahead, and one far
 * behind) before the joiner's script reaches Redis, so they always come
 * first: the race, made certain. */
static void t_snapshot_race(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A"), *B = pnode(w, 1, "B");
    obs *o1, *x;
    static const char ahead[] =
        "{\"v\":1,\"m\":{\"event\":\"rc:join\",\"data\":{\"user\":"
        "\"zed\"}},\"n\":\"\",\"meta\":{\"ps\":999999}}";
    static const char behind[] =
        "{\"v\":1,\"m\":{\"event\":\"rc:leave\",\"data\":{\"user\":"
        "\"alice\",\"reason\":\"left\"}},\"n\":\"\",\"meta\":{\"ps\":1}}";
    rc_counters c;

    o1 = open_obs(w, B, NULL, "r");
    open_obs(w, A, "alice", "r");
    WAIT_FOR(w, sees(o1, "alice"), "alice seen on B");
    x = open_obs(w, B, NULL, "r"); /* its join is queued, not yet sent */
    assert_int_equal(
        rh_publish(&w->rs, "sse:room:r", behind, sizeof behind - 1), 2);
    assert_int_equal(rh_publish(&w->rs, "sse:room:r", ahead, sizeof ahead - 1),
                     2);
    WAIT_FOR(w, sees(x, "zed"), "x: its snapshot, then zed's join");
    assert_int_equal(x->snapshots, 1);
    assert_true(sees(x, "alice")); /* the stale leave was dropped */
    WAIT_FOR(w, sees(o1, "zed"), "o1: zed's join");
    c = ts_ctr(B);
    assert_true(c.presence_held >= 2);
    ts_assert_clean(&w->problems);
}

/* Above announce_max users a room gets counts, not per-user events: at
 * most one per sweep while it changes; a joiner gets the count too. */
static void t_large_room_counts(void **state)
{
    ts_world *w = *state;
    ts_node *A, *B;
    obs *o, *late;
    char name[16];
    int i;

    announce_max = 3;
    A = pnode(w, 0, "A");
    B = pnode(w, 1, "B");
    o = open_obs(w, B, NULL, "r");
    WAIT_SNAP(w, o);
    for (i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "u%d", i);
        open_obs(w, i % 2 ? A : B, name, "r");
    }
    WAIT_FOR(w, o->counts > 0 && o->count == 8, "a count of 8 users");
    assert_int_equal(o->joins, 3); /* u0..u2, then counts */
    assert_true(o->counts <= 3);   /* coalesced, not one per join */
    late = open_obs(w, A, NULL, "r");
    WAIT_FOR(w, late->counts == 1, "the late joiner's count");
    assert_int_equal(late->count, 8);
    assert_int_equal(late->snapshots, 0);
    ts_assert_clean(&w->problems);
}

/* Per-connection mode: an event for every connection, at once (no
 * grace), and snapshots that list the connections. */
static void t_per_connection(void **state)
{
    ts_world *w = *state;
    ts_node *A, *B, *C;
    obs *o, *a1, *b1, *late;
    char want[128];

    pflags = RC_PRESENCE_PER_CONNECTION;
    A = pnode(w, 0, "A");
    B = pnode(w, 1, "B");
    C = pnode(w, 2, "C");
    o = open_obs(w, C, NULL, "r");
    WAIT_SNAP(w, o);
    a1 = open_obs(w, A, "alice", "r");
    b1 = open_obs(w, B, "alice", "r"); /* a second tab, another node */
    WAIT_FOR(w, o->cjoins == 2, "two per-connection joins");
    late = open_obs(w, C, NULL, "r");
    WAIT_SNAP(w, late);
    snprintf(want, sizeof want, "{\"connection\":\"%s\",\"user\":\"alice\"}",
             a1->id);
    assert_non_null(strstr(late->last, want));
    snprintf(want, sizeof want, "{\"connection\":\"%s\",\"user\":\"alice\"}",
             b1->id);
    assert_non_null(strstr(late->last, want));
    assert_non_null(strstr(late->last, "\"connections\":2"));
    close_obs(a1); /* at once: no grace per connection */
    WAIT_FOR_MS(w, o->cleaves == 1, GRACE_MS / 2, "a leave at once");
    assert_non_null(strstr(o->last, a1->id));
    kill_node(w, 1); /* B dies: its connection is lost */
    WAIT_FOR_MS(w, o->clost == 1, LEASE_MS + 3000, "a lost connection");
    assert_int_equal(o->cleaves, 2);
    assert_int_equal(o->joins + o->leaves, 0); /* nothing per user */
    ts_assert_clean(&w->problems);
}

/* Redis away from a node: its local members go on hearing of local
 * joins and leaves (on the view its last snapshot and events gave), and
 * nothing of the users elsewhere changes for them. */
static void t_outage_local(void **state)
{
    ts_world *w = *state;
    ts_node *A = pnode(w, 0, "A"), *B = pnode(w, 1, "B");
    obs *o, *alice, *carol;

    o = open_obs(w, A, NULL, "r");
    alice = open_obs(w, A, "alice", "r");
    open_obs(w, B, "bob", "r");
    WAIT_FOR(w, sees(o, "alice") && sees(o, "bob"), "alice and bob seen");
    kill_node(w, 0); /* A's links are gone for good */
    carol = open_obs(w, A, "carol", "r");
    assert_true(sees(o, "carol")); /* told at once, locally */
    assert_true(carol->snapshots == 1 && sees(carol, "bob") &&
                sees(carol, "alice") && sees(carol, "carol"));
    close_obs(alice);
    WAIT_FOR_MS(w, !sees(o, "alice"), GRACE_MS + 2000,
                "alice's leave, told locally after the grace");
    assert_true(sees(o, "bob")); /* elsewhere: as last known */
    assert_int_equal(o->leaves, 1);
    ts_assert_clean(&w->problems);
}

/* What Redis says is present in room r: users with connections or in
 * the grace. */
static int redis_users(ts_world *w, char users[][16], int max)
{
    redisReply *r = rh_cmd(&w->rs, "HKEYS rc:{sse:room:r}:pu");
    redisReply *g = rh_cmd(&w->rs, "ZRANGE rc:{sse:room:r}:pg 0 -1");
    int n = 0;
    size_t i;

    for (i = 0; r && i < r->elements && n < max; i++)
        snprintf(users[n++], 16, "%s", r->element[i]->str);
    for (i = 0; g && i < g->elements && n < max; i++)
        snprintf(users[n++], 16, "%s", g->element[i]->str);
    freeReplyObject(r);
    freeReplyObject(g);
    return n;
}

static void check_view(ts_world *w, const obs *o, char users[][16], int n)
{
    int i;

    if (o->npresent != n)
        fail_msg("%s sees %d users, Redis has %d", o->id, o->npresent, n);
    for (i = 0; i < n; i++)
        if (find(o, users[i]) < 0)
            fail_msg("%s does not see %s", o->id, users[i]);
    (void)w;
}

/* Users come and go on three nodes while observers open (their snapshot
 * racing the changes) and, with flush set, while Redis forgets its
 * scripts every 100 ms. */
static void churn(ts_world *w, int flush)
{
    ts_node *N[3];
    obs *user_conn[24] = {0}, *watchers[24];
    char users[MAX_USERS][16], name[16];
    unsigned seed = 7;
    int step, k, nw = 0, n;
    long long next_flush = ts_now_ms() + 100;
    rc_counters c;

    N[0] = pnode(w, 0, "A");
    N[1] = pnode(w, 1, "B");
    N[2] = pnode(w, 2, "C");
    for (step = 0; step < 240; step++) {
        k = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 24;
        if (user_conn[k] == NULL) {
            snprintf(name, sizeof name, "u%d", k % 12); /* two tabs each */
            user_conn[k] = open_obs(w, N[k % 3], name, "r");
        } else {
            close_obs(user_conn[k]);
            user_conn[k] = NULL;
        }
        if (step % 10 == 0 && nw < 24)
            watchers[nw++] = open_obs(w, N[step % 3], NULL, "r");
        if (flush && ts_now_ms() >= next_flush) {
            ts_reply_ok(rh_cmd(&w->rs, "SCRIPT FLUSH"), "SCRIPT FLUSH");
            next_flush = ts_now_ms() + 100;
        }
        ts_run_for(&w->loop, 5);
    }
    /* Quiesce: every grace over, every sweep done. */
    ts_run_for(&w->loop, GRACE_MS + 600);
    n = redis_users(w, users, MAX_USERS);
    for (k = 0; k < nw; k++) {
        WAIT_SNAP(w, watchers[k]);
        check_view(w, watchers[k], users, n);
    }
    c = ts_ctr(&w->nodes[0]);
    print_message("churn%s: %d users present at the end, %d watchers; "
                  "presence events held for a snapshot on A: %llu\n",
                  flush ? " with SCRIPT FLUSH" : "", n, nw, c.presence_held);
    for (k = 0; k < 3; k++)
        assert_int_equal(ts_ctr(N[k]).script_errors, 0);
    ts_assert_clean(&w->problems);
}

static void t_churn(void **state)
{
    churn(*state, 0);
}

static void t_churn_script_flush(void **state)
{
    churn(*state, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_snapshot_then_changes), T(t_tabs_make_no_event),
        T(t_grace_across_nodes),    T(t_leave_now),
        T(t_dead_node_reaped_once), T(t_snapshot_race),
        T(t_large_room_counts),     T(t_per_connection),
        T(t_outage_local),          T(t_churn),
        T(t_churn_script_flush),    T(t_lost_sweep_put_back),
        T(t_users_index_heals),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
