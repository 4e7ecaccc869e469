/*
 * What the integration tests share, part 2: a world (a redis-server of
 * its own, one loop, up to three nodes), nodes, recorded connections and
 * the Redis side. Part 1 (the loop and the waits): test_support.h.
 *
 * A node is one adapter, on two hiredis async contexts of the world's
 * loop (ts_node_up: the adapter tests), or on an rc_link
 * (ts_node_link, test_nodes_link.c: the link tests, which link
 * roomcast_libevent). Its callbacks record (room events, link states) and
 * note problems in w->problems; they never assert.
 *
 * A connection (ts_rec) records what its sink saw: every message but
 * markers (event "marker", counted apart, numbered by ts_sync_marker),
 * the {"seq":N} numbers in arrival order, the last frame and message.
 *
 * Include after <cmocka.h>.
 */
#ifndef RC_TEST_NODES_H
#define RC_TEST_NODES_H

#include <stddef.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "redis_harness.h"
#include "roomcast/libevent.h"
#include "roomcast/roomcast.h"
#include "test_support.h"

#ifndef TS_WAIT_MS
#define TS_WAIT_MS 10000 /* default deadline of one wait */
#endif
#define TS_MAX_NODES 3
#define TS_MAX_CTX 12   /* hiredis async contexts per world */
#define TS_MAX_RECS 24  /* connections per world */
#define TS_MAX_SEQ 4096 /* {"seq":N} numbers kept per connection */
#define TS_MAX_EV 512   /* room events kept per node */
#define TS_MAX_TR 256   /* link state changes kept per node */
#define TS_MAX_RAW 4    /* blocking contexts per world */

typedef struct ts_world ts_world;
typedef struct ts_node ts_node;
typedef struct ts_rec ts_rec;

/* ---- nodes ------------------------------------------------------------ */

enum { TS_CTX_CONNECTING, TS_CTX_UP, TS_CTX_FAILED, TS_CTX_DOWN };

/* One hiredis async context; ac->data points here. Its disconnect tells
 * the adapter (set_pub/set_sub NULL) while attached. */
typedef struct ts_ctx {
    ts_node *owner;
    int is_sub;
    int attached;          /* the adapter currently holds this context */
    int state;             /* TS_CTX_* */
    redisAsyncContext *ac; /* NULL once hiredis freed it */
} ts_ctx;

typedef struct ts_transition {
    long long t; /* ts_now_ms() */
    int state;
    char reason[128];
} ts_transition;

struct ts_node {
    ts_world *w;
    char name[32];
    rc_adapter *a;
    int freed; /* rc_adapter_free was called */
    /* room events (RC_ROOM_*), the first TS_MAX_EV kept */
    struct {
        char room[64];
        int event;
    } ev[TS_MAX_EV];
    size_t nev;
    unsigned long ready_events, lost_events;
    /* ts_node_up */
    ts_ctx *pub, *sub;
    /* ts_node_link: the state callbacks, the first TS_MAX_TR kept */
    rc_link *link;
    int closed; /* rc_link_close was called */
    void (*close_link)(rc_link *link);
    ts_transition tr[TS_MAX_TR];
    size_t ntr;
    unsigned long ups, downs;
    int last_state; /* -1: no call yet */
    char last_down_reason[256];
};

/* Node i: an adapter (rc_adapter_new with prefix and id) on two fresh
 * async contexts; the same through rc_adapter_open with opts. */
ts_node *ts_node_up(ts_world *w, int i, const char *prefix, const char *id);
ts_node *ts_node_up_opts(ts_world *w, int i, const rc_adapter_options *opts);

/* A fresh async context of node n, connected (not handed over). */
ts_ctx *ts_ctx_connect(ts_world *w, ts_node *n, int is_sub);

/* Node i: an adapter (node_id id) with an rc_link opened with lo (its
 * state_cb and user are set here). In test_nodes_link.c. */
ts_node *ts_node_link(ts_world *w, int i, const char *id,
                      const rc_link_options *lo);

/* The room event callback every node gets (user: the ts_node). */
void ts_on_room_event(rc_adapter *a, const char *room, int event, void *user);

/* Node i: an adapter (node_id id) without contexts, for ts_node_link. */
ts_node *ts_node_open_(ts_world *w, int i, const char *id);

/* rc_link_close (if linked), then rc_adapter_free; either may be gone. */
void ts_node_close(ts_node *n);

/* rc_link_state(n->link) is UP (test_nodes_link.c). */
int ts_link_up(const ts_node *n);

/* ts_node_link to url with short timings (connect 1 s, backoff 50-300
 * ms, probe every 200 ms), as the topology tests use (test_nodes_link.c). */
ts_node *ts_node_link_quick(ts_world *w, int i, const char *id,
                            const char *url);

/* Broadcast data on room from `from` every 100 ms until `to` got it (a
 * subscription on the far side may not be confirmed yet); fails after
 * TS_WAIT_MS naming both links' reasons (test_nodes_link.c). */
void ts_deliver(ts_world *w, ts_node *from, const char *room, ts_rec *to,
                const char *data);

/* Index of the first state change to state at or after mark, or -1. */
long ts_first_since(const ts_node *n, size_t mark, int state);

/* The room events of room since mark: R = READY, L = LOST (static). */
const char *ts_events_since(const ts_node *n, size_t mark, const char *room);

/* The adapter's counters (unset fields would read 0xa5...). */
rc_counters ts_ctr(const ts_node *n);

/* Every SUBSCRIBE and UNSUBSCRIBE sent has been confirmed. */
int ts_is_quiet(const ts_node *n);

/* Wait for ts_is_quiet; for rc_room_is_ready(room) == 1. */
#define ts_wait_quiet(w, n) ts_wait_quiet_((w), (n), __FILE__, __LINE__)
#define ts_wait_ready(w, n, room)                                              \
    ts_wait_ready_((w), (n), (room), __FILE__, __LINE__)
void ts_wait_quiet_(ts_world *w, ts_node *n, const char *file, int line);
void ts_wait_ready_(ts_world *w, ts_node *n, const char *room, const char *file,
                    int line);

/* ---- connections ------------------------------------------------------ */

typedef void (*ts_hook)(ts_rec *r, rc_conn *c, rc_frame *f,
                        const rc_message *m);

struct ts_rec {
    ts_world *w;
    ts_node *owner;
    char id[48];
    rc_conn *conn;
    int removed;       /* rc_conn_remove'd: the sink must not run again */
    int ret;           /* what the sink returns */
    int count;         /* sink calls, markers excluded */
    long long first_t; /* ts_now_ms() of the first of them */
    int markers;       /* sink calls with event "marker" */
    int last_marker;   /* the highest {"marker":N} it got */
    char *frame;       /* the last frame (non-marker), copied */
    size_t frame_len;
    char *data; /* the last msg->data, copied */
    size_t data_len;
    char event[64];
    int has_event;
    char msgid[64];
    int has_id;
    long long retry;
    int seqs[TS_MAX_SEQ]; /* {"seq":N} messages, in arrival order */
    size_t nseq;          /* may exceed TS_MAX_SEQ */
    ts_hook hook;         /* runs after recording (not for markers) */
    void *hook_arg;
    const char *hook_room;
    int hook_rc[4];
    rc_frame *kept; /* unref'd by the teardown */
};

/* The recording sink (user: the ts_rec). */
int ts_sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user);

/* A connection id on node n, recorded by ts_sink. */
ts_rec *ts_add_conn(ts_node *n, const char *id);

/* rc_room_join / rc_room_leave, which must return 1. */
void ts_join(ts_rec *r, const char *room);
void ts_leave(ts_rec *r, const char *room);

/* A message (data may be NULL); a broadcast of one to room. */
rc_message ts_msg(const char *event, const char *data, const char *id);
int ts_bcast(ts_node *n, const char *room, const char *event, const char *data,
             const char *except, unsigned flags);

/* Broadcast a numbered marker from `from` to room and wait until `to` (a
 * member of room on another node) has it: whatever `from` published
 * before is in by then. */
#define ts_sync_marker(w, from, room, to)                                      \
    ts_sync_marker_((w), (from), (room), (to), __FILE__, __LINE__)
void ts_sync_marker_(ts_world *w, ts_node *from, const char *room, ts_rec *to,
                     const char *file, int line);

/* ---- the world ------------------------------------------------------- */

struct ts_world {
    rh_server rs;
    ts_loop loop;
    ts_problems problems;
    ts_node nodes[TS_MAX_NODES];
    ts_ctx ctx[TS_MAX_CTX];
    size_t nctx;
    ts_rec recs[TS_MAX_RECS];
    size_t nrecs;
    redisContext *raw[TS_MAX_RAW];
    size_t nraw;
    int marker_seq;                /* ts_sync_marker numbers its markers */
    struct event *ticker;          /* ts_world_tick */
    void (*node_prep)(ts_node *n); /* ts_node_link: before its link */
    int tick_ms;
    void *user;                    /* the test file's own state, */
    void (*user_free)(void *user); /* freed last by the teardown */
};

/* cmocka setup: a world in *state, its loop, and redis-server started
 * with args when start (else ts_start_redis later). 0 or -1. */
int ts_world_setup(void **state, const char *const *args, int start);

/* cmocka teardown: every node closed (rc_link_close, rc_adapter_free),
 * then the hiredis contexts freed, the loop run until quiet and freed,
 * the recorded copies and w->user freed, redis-server stopped. -1 if the
 * loop did not go quiet or a callback noted a new problem meanwhile. */
int ts_world_teardown(void **state);

/* Tick every node's adapter (rc_adapter_tick on ts_now_ms) every ms
 * from now on, until the teardown. */
void ts_world_tick(ts_world *w, int ms);

/* rh_start, failing the test with the harness's reason. */
void ts_start_redis(ts_world *w);

/* Waits on the world's loop (the dump, if set, runs before a failure). */
#define WAIT_FOR_MS(w, cond, ms, what) TS_WAIT_FOR(&(w)->loop, cond, ms, what)
#define WAIT_FOR(w, cond, what) WAIT_FOR_MS(w, cond, TS_WAIT_MS, what)
#define RUN_UNTIL(w, pred, arg, ms, what)                                      \
    TS_RUN_UNTIL(&(w)->loop, pred, arg, ms, what)

/* ---- an accounting allocator ------------------------------------------ */

/* Counts the blocks an adapter holds, spots frees of blocks not its own,
 * and fails on request: call number fail_at (counting from 1; 0: never),
 * every realloc while fail_realloc, every call while fail_all. */
typedef struct ts_acct {
    long live; /* blocks handed out and not freed */
    unsigned long long calls;
    int foreign; /* frees/reallocs of blocks not ours */
    unsigned long long fail_at;
    int fail_realloc, fail_all;
    unsigned long long failed; /* calls made to fail */
} ts_acct;

rc_alloc ts_acct_hooks(ts_acct *acct);

/* ---- the Redis side ---------------------------------------------------- */

/* PUBSUB NUMSUB channel, or -1; wait until it is n. */
long long ts_numsub(ts_world *w, const char *channel);
#define WAIT_NUMSUB(w, channel, n)                                             \
    do {                                                                       \
        char wn_what_[160];                                                    \
        snprintf(wn_what_, sizeof wn_what_, "PUBSUB NUMSUB %s == %d",          \
                 (channel), (int)(n));                                         \
        WAIT_FOR(w, ts_numsub((w), (channel)) == (n), wn_what_);               \
    } while (0)

typedef struct ts_strlist {
    char **v;
    size_t n;
} ts_strlist;

/* PUBSUB CHANNELS pattern, sorted (ts_cmp_str); free with
 * ts_strlist_free. */
ts_strlist ts_pubsub_channels(ts_world *w, const char *pattern);
void ts_strlist_free(ts_strlist *l);
int ts_cmp_str(const void *x, const void *y);

/* The ids (up to max, ids may be NULL) of the clients named name in
 * CLIENT LIST: how many there are, or -1. */
int ts_clients_named(ts_world *w, const char *name, unsigned long long *ids,
                     int max);

/* Is the client with this id connected? 1, 0, or -1. */
int ts_client_alive(ts_world *w, unsigned long long id);

/* Consume a reply of rh_cmd: fail (naming what) if it is missing or an
 * error; its integer, or -1 if it is not one. */
void ts_reply_ok(redisReply *r, const char *what);
long long ts_reply_int(redisReply *r);

/* An envelope from node `from` (malloc'ed, *len set), e.g. from a
 * foreign node that no adapter drops as its own echo. */
char *ts_envelope(const char *from, const char *event, const char *data,
                  size_t data_len, size_t *len);

/* PUBLISH an envelope to channel: the number of receivers, or -1. */
long long ts_publish_env(ts_world *w, const char *channel, const char *from,
                         const char *event, const char *data);

/* A blocking context of the harness (reads time out after
 * RH_IO_TIMEOUT_MS), freed by the teardown; one SUBSCRIBEd to channel. */
redisContext *ts_raw(ts_world *w);
redisContext *ts_raw_sub(ts_world *w, const char *channel);

/* The next message of a raw subscriber (channel and payload malloc'ed);
 * fails on a time-out. */
void ts_raw_next(redisContext *c, char **channel, char **payload, size_t *len);

/* Decode an envelope the adapter published (strings in scratch). */
void ts_decode(const char *payload, size_t len, rc_envelope *env, char *scratch,
               size_t cap);

/* n bytes of p and a NUL, malloc'ed (NULL if out of memory). */
char *ts_dupmem(const void *p, size_t n);

#endif
