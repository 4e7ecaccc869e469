/* Declarations shared between roomcast's source files; not installed. */
#ifndef RC_INTERNAL_H
#define RC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "roomcast/roomcast.h"
#include "roomcast/transport.h"

#include "scan.h"

/* ---- memory --------------------------------------------------------- */

/* The allocator an adapter uses is the public rc_alloc (libc's functions
 * where its are NULL); rc__alloc is its internal name. */
typedef rc_alloc rc__alloc;

void *rc__malloc(const rc__alloc *m, size_t size);
void *rc__realloc(const rc__alloc *m, void *ptr, size_t size);
void rc__free(const rc__alloc *m, void *ptr);
/* A copy of s[0..len) plus a NUL, or NULL. */
char *rc__strndup(const rc__alloc *m, const char *s, size_t len);

/* ---- random.c -------------------------------------------------------- */

/* Fill buf with n bytes from the kernel's random source. 0 or RC_ERANDOM
 * if none could be read. */
int rc__random(void *buf, size_t n);

/* Write a random (version 4) UUID, 36 characters and a NUL, into out. */
int rc__uuid4(char out[37]);

/* ---- map.c ----------------------------------------------------------- */

/* A hash table from byte-string keys to items. The map does not own keys
 * or items: each slot points to a key that lives in its item. Seeded, so
 * that keys chosen by clients (room names) cannot be made to collide
 * without knowing the seed. Open addressing, linear probing, backward-
 * shift deletion; the table never holds tombstones. */
typedef struct rc__map_slot {
    uint64_t hash; /* 0: empty */
    const void *key;
    size_t key_len;
    void *item;
} rc__map_slot;

typedef struct rc__map {
    rc__map_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t count;
    uint64_t seed;
    const rc__alloc *mem;
} rc__map;

/* The map's hash of a key: seeded, never 0. */
uint64_t rc__hash(const void *key, size_t len, uint64_t seed);

void rc__map_init(rc__map *m, const rc__alloc *mem, uint64_t seed);
void rc__map_free(rc__map *m);
void *rc__map_get(const rc__map *m, const void *key, size_t key_len);
/* Insert a key that is not in the map. 0 or RC_ENOMEM. */
int rc__map_put(rc__map *m, const void *key, size_t key_len, void *item);
/* Remove a key; returns its item or NULL. Never allocates. */
void *rc__map_del(rc__map *m, const void *key, size_t key_len);
/* Calls fn for each item until it returns nonzero (then returns that).
 * The map must not change during the walk. */
int rc__map_each(const rc__map *m, int (*fn)(void *item, void *arg), void *arg);

/* ---- registry.c: local connections, rooms and memberships ------------ */

typedef struct rc__member rc__member;
typedef struct rc__room rc__room;
typedef struct rc__conn rc__conn;

/* A membership: one connection in one room. It sits in two lists, the
 * room's members and the connection's rooms, both in join order. */
struct rc__member {
    rc__conn *conn; /* conn and room, adjacent: the key of the */
    rc__room *room; /* registry's membership map. conn is NULL once the
                       member is removed (it may stay linked mid-walk) */
    rc__member *room_prev, *room_next;
    rc__member *conn_prev, *conn_next; /* conn_next: the dead list, once
                                          removed */
    void *ext; /* the adapter's (presence.c), told by the gone hook */
    /* history.c: the last sequence delivered to it in its room's epoch,
     * and whether it waits for a replay (live messages skip it) */
    unsigned long long hseq;
    int hhold, hcur; /* hcur: hseq is a cursor (0: takes the next live) */
    unsigned hreq;   /* its read in flight (a connection id may be reused) */
};

struct rc__room {
    char *name; /* NUL-terminated copy */
    size_t name_len;
    rc__member *first, *last; /* may include removed members mid-walk */
    size_t members;           /* live members */
    rc__room *next_dead;
    int removed;
};

struct rc__conn {
    char *id; /* NUL-terminated copy */
    size_t id_len;
    rc__member *first, *last; /* live memberships only */
    size_t rooms;
    rc__conn *next_dead;
    int removed;
};

typedef struct rc__registry {
    const rc__alloc *mem;
    size_t room_size; /* bytes allocated per room (>= sizeof(rc__room)) */
    rc__map conns, rooms, members;
    unsigned walking; /* nesting depth of rc__room_walk */
    rc__member *dead_members;
    rc__room *dead_rooms;
    rc__conn *dead_conns;
    /* Told of a member with ext set as it leaves (it is still linked),
     * and of a room as it is dropped. May be NULL. */
    void (*member_gone)(rc__member *m, void *arg);
    void (*room_gone)(rc__room *room, void *arg);
    void *gone_arg;
} rc__registry;

/* room_size: bytes to allocate per room, >= sizeof(rc__room), so that
 * the caller can embed it (0: sizeof(rc__room)). */
void rc__registry_init(rc__registry *r, const rc__alloc *mem, uint64_t seed,
                       size_t room_size);
/* Free everything. Not during a walk. */
void rc__registry_free(rc__registry *r);

/* Add a connection; `size` bytes are allocated for it (>= sizeof(rc__conn)
 * so that the caller can embed it). 0, RC_EEXIST or RC_ENOMEM. */
int rc__conn_add(rc__registry *r, const char *id, size_t id_len, size_t size,
                 rc__conn **out);
rc__conn *rc__conn_find(const rc__registry *r, const char *id, size_t len);
/* Leave every room (rc__leave_all) and forget the connection. Its memory
 * stays valid, marked removed, until the outermost walk ends. */
void rc__conn_remove(rc__registry *r, rc__conn *c,
                     void (*left)(rc__room *room, void *arg), void *arg);

/* Join a room, creating it when new (*room_out is set either way).
 * 1 if joined, 0 if already a member, or RC_ENOMEM. */
int rc__join(rc__registry *r, rc__conn *c, const char *name, size_t len,
             rc__room **room_out);
/* 1 if c left room, 0 if it was not a member. An emptied room stays in
 * the registry until rc__room_drop (the caller may have Redis state on it).
 */
int rc__leave(rc__registry *r, rc__conn *c, rc__room *room);
/* Leave every room c is in, in join order, calling left(room) after each.
 * left may remove c, rooms or anything else (frees are held until the
 * end). Returns how many rooms were left. */
size_t rc__leave_all(rc__registry *r, rc__conn *c,
                     void (*left)(rc__room *room, void *arg), void *arg);
rc__room *rc__room_find(const rc__registry *r, const char *name, size_t len);
int rc__is_member(const rc__registry *r, const rc__conn *c,
                  const rc__room *room);
rc__member *rc__member_of(const rc__registry *r, const rc__conn *c,
                          const rc__room *room);
/* Forget an empty room (members == 0). */
void rc__room_drop(rc__registry *r, rc__room *room);

/* While held, removals are deferred (as during a walk): callers hold the
 * registry while host code that may remove things runs. */
void rc__registry_hold(rc__registry *r);
void rc__registry_release(rc__registry *r);

/* Call fn for each member of room, in join order, up to the last member
 * present when the walk starts, skipping members removed meanwhile. fn may
 * join, leave and remove anything; a nonzero return stops the walk and is
 * returned. */
int rc__room_walk(rc__registry *r, rc__room *room,
                  int (*fn)(rc__member *m, void *arg), void *arg);

/* ---- the adapter ----------------------------------------------------- */

/* A room's subscription, as far as the current sub context goes. */
enum rc__sub_state {
    RC__UNSUBSCRIBED, /* nothing registered, nothing in flight */
    RC__SUBSCRIBING,  /* SUBSCRIBE sent, not confirmed */
    RC__SUBSCRIBED,   /* confirmed */
    RC__UNSUBSCRIBING /* UNSUBSCRIBE sent, not confirmed */
};

typedef struct rc__proom rc__proom;

typedef struct rc__hroom rc__hroom;

typedef struct rc__aroom {
    rc__room base; /* first: the registry allocates rooms this size */
    enum rc__sub_state state;
    struct rc__aroom *next_lost; /* rooms to tell RC_ROOM_LOST, no alloc */
    rc__proom *pres;             /* presence state, or NULL (presence.c) */
    rc__hroom *hist;             /* history state, or NULL (history.c) */
    int hist_checked;            /* hist NULL: not a history room */
} rc__aroom;

/* An envelope a connection got through a room, remembered for de-dup. */
typedef struct rc__seen {
    uint64_t env;  /* hash of the envelope's bytes */
    uint64_t room; /* hash of the room it came through */
} rc__seen;

struct rc_conn {
    rc__conn base; /* first: the registry allocates conns this size */
    rc_adapter *a;
    rc_sink_cb sink;
    void *user;
    char *uid;   /* rc_conn_set_user: the user, or NULL; then, in one */
    char *uid_q; /* block, the user as a JSON string, the info, and the */
    char *info;  /* connection's id as a JSON string */
    char *id_q;
    size_t uid_len, uid_q_len, info_len, id_q_len;
    unsigned long long seq; /* last multi-room broadcast delivered */
    unsigned recent_next;   /* ring of envelopes received lately */
    rc__seen recent[];
};

struct rc_frame {
    size_t refs;
    size_t size;
    rc__alloc mem; /* a copy: frames may outlive their adapter */
    char data[];
};

/* redis.c's state: what it was handed and what hiredis holds of it. */
typedef struct rc__watch rc__watch;

/* The Lua scripts roomcast runs (script.c holds their text). */
enum rc__script {
    RC__SCRIPT_LEASE,
    RC__SCRIPT_RELEASE,
    RC__SCRIPT_JOIN,
    RC__SCRIPT_LEAVE,
    RC__SCRIPT_SYNC,
    RC__SCRIPT_SNAPSHOT,
    RC__SCRIPT_MEMBERS,
    RC__SCRIPT_SWEEP,
    RC__SCRIPT_REAP,
    RC__SCRIPT_USER,
    RC__SCRIPT_ONLINE,
    RC__SCRIPT_SWEEP_DUE,
    RC__SCRIPT_REAP_DUE,
    RC__SCRIPT_REAP_DONE,
    RC__SCRIPT_RATE,
    RC__SCRIPT_CODE,
    RC__SCRIPT_CREATE,
    RC__SCRIPT_ADMIT,
    RC__SCRIPT_EVICT,
    RC__SCRIPT_CLOSE,
    RC__SCRIPT_VERIFY,
    RC__SCRIPT_SEND,
    RC__SCRIPT_HPUB,
    RC__SCRIPT_HREAD,
    RC__SCRIPT_HFENCE,
    RC__SCRIPT_CLOSED,
    RC__SCRIPT_TROOM,
    RC__SCRIPT_UREG,
    RC__SCRIPT_UUNREG,
    RC__SCRIPT_SREG,
    RC__SCRIPT_SDONE,
    RC__SCRIPT_CREG,
    RC__SCRIPT_CDONE,
    RC__SCRIPT_CTOMB,
    RC__SCRIPT_UCOUNT,
    RC__SCRIPT_RATE_BACK,
    RC__SCRIPTS
};
/* lua.c: their text. */
extern const char *const rc__lua[RC__SCRIPTS];

typedef struct rc__port {
    rc__watch *pub, *sub; /* the contexts in use, or NULL */
    rc__watch *retired;   /* let go of, still owed replies */
    char *cmd;            /* commands are formatted here */
    size_t cmd_cap;
    char sha[RC__SCRIPTS][41]; /* each script's SHA1 once Redis told it */
    int sharded;               /* see rc__port_sharded */
    struct rc_transport t;     /* attached, while t.send is set */
} rc__port;

/* presence.c: what the adapter keeps for presence. */
typedef struct rc__pask rc__pask;

typedef struct rc__presence {
    int on;
    rc_presence_options o;
    rc__pask *asks; /* script calls of presence in flight */
    char **owed;    /* rooms left while the pub side was down */
    size_t nowed, owed_cap;
    unsigned long long next_sweep, next_reap; /* host ms; 0: next tick */
    int sweeping, reaping;                    /* a *_DUE call is in flight */
    int retry; /* some room's join or sync failed in Redis (presence.c) */
    unsigned leave_now;     /* inside rc_room_leave_now: no grace */
    unsigned long long now; /* the host's time at the last tick */
    size_t pending;         /* local presence: users in their grace */
    char *buf;              /* keys and JSON are built here */
    size_t buf_cap;
} rc__presence;

/* node.c: the node's lease (see roomcast.h). */
typedef struct rc__node {
    int state;                  /* enum rc_node_state */
    char token[33];             /* this adapter's, random */
    char *kp;                   /* the key prefix */
    char *key_nodes, *key_tok;  /* "<kp>{nodes}", "<kp>{nodes}:token" */
    char *key_live, *key_sweep; /* "<kp>{nodes}:live", "<kp>{sweep}" */
    unsigned lease_ms;
    unsigned gen;           /* pub contexts so far: older replies are stale */
    int asking;             /* a lease call of this gen is in flight */
    int owed;               /* one could not be sent: ask at next tick */
    int fresh;              /* no lease reply yet on this context */
    unsigned long long due; /* host ms of the next beat; 0: next tick */
    long long live_dl;      /* the token's liveness deadline as last set */
    rc_node_cb cb;
    void *user;
} rc__node;

/* A call in flight whose callback may never run (the adapter released
 * first): linked on the adapter, freed by free_fn at release. Embedded
 * first in the call's struct. */
typedef struct rc__pend {
    struct rc__pend *prev, *next;
    void (*free_fn)(rc_adapter *a, struct rc__pend *p); /* NULL: rc__free */
} rc__pend;

/* history.c: the options. */
typedef struct rc__history {
    rc_history_options o;
    int on;
    unsigned reads; /* member reads so far: each one's number */
} rc__history;

/* end.c: admission's state on a node. */
typedef struct rc__admit {
    rc__pend *pending; /* calls in flight (admission, verify, rate) */
    rc_end_cb end_cb;
    void *end_user;
    unsigned verify_ms;
    unsigned long long verify_due; /* host ms; 0: at the next tick */
    char seen[24]; /* the close count last verified against; "": none */
    unsigned gen;  /* the pub generation seen belongs to */
    int verifying; /* a verify call is in flight */
} rc__admit;

struct rc_adapter {
    rc__alloc mem;
    rc__registry reg;
    rc__port port;
    rc_limits limits;
    char *prefix, *node_id;
    size_t prefix_len;
    uint64_t seed;
    unsigned dedup_window;
    int local_only; /* created with no Redis at all: rooms always ready */
    int resync;     /* a (UN)SUBSCRIBE could not be sent: try again */
    rc_filter_cb filter;
    void *filter_user;
    rc_room_cb room_cb;
    void *room_user;
    rc_counters c;
    unsigned long long seq; /* multi-room broadcasts so far */
    int stamping;           /* one is delivering by stamps right now */
    size_t live_rooms;      /* rooms with members */
    unsigned depth;         /* nesting of calls that may call back the host */
    int closing;
    char *scratch, *env; /* reused: decoding, envelopes */
    size_t scratch_cap, env_cap;
    /* How our own envelopes without "e" and "meta" end: ,"n":<node>} */
    char *echo_tail;
    size_t echo_tail_len;
    int env_busy; /* env holds an outer broadcast's envelope */
    rc__node node;
    rc__presence pres;
    rc__map rates; /* rate.c: the local share of cluster-wide buckets */
    rc__admit adm;
    rc__history hist;
};

/* Make room for n bytes in *buf (of *cap bytes); 0 or RC_ENOMEM. */
int rc__reserve(const rc__alloc *m, char **buf, size_t *cap, size_t n);

/* adapter.c: calls that may run host callbacks are bracketed by these, so
 * that an rc_adapter_free from inside one finishes on the way out. */
void rc__enter(rc_adapter *a);
void rc__exit(rc_adapter *a);

/* room.c */
rc__room *rc__find_room(const rc_adapter *a, const char *room);
/* After a member left room: an emptied room unsubscribes. */
void rc__after_leave(rc_adapter *a, rc__room *room);

/* subscribe.c: the subscription state machine. */
void rc__sub_reconcile(rc_adapter *a, rc__aroom *room);
/* Send again what could not be sent (a reply came on the sub context). */
void rc__sub_retry(rc_adapter *a);
rc__aroom *rc__room_of_channel(rc_adapter *a, const char *chan, size_t len);

/* frame.c: one frame for msg, refs 1; NULL if out of memory. */
rc_frame *rc__frame_new(const rc__alloc *mem, const rc_message *msg);

/* deliver.c: one message to the local members of some rooms. */
typedef struct rc__delivery {
    rc_adapter *a;
    rc_frame *frame;
    const rc_message *msg;
    const rc_conn *except;
    const char *meta;
    size_t meta_len;
    rc__seen key; /* remote path, message with an id: what it is (env 0:
                     no de-dup) */
    const char *const *rooms;
    size_t room;            /* index of the room being walked */
    long long pseq;         /* a presence event's sequence, or 0 */
    unsigned long long seq; /* multi-room by stamps: this broadcast's */
    int count;              /* sinks that accepted */
} rc__delivery;

void rc__deliver(rc__delivery *d, const char *const *rooms, size_t n);

/* receive.c: the end of our own envelopes, made once at open. */
int rc__echo_tail_init(rc_adapter *a);

/* ---- redis.c: the one port to Redis ----------------------------------- */

/* Every byte roomcast sends to Redis and every reply it reads pass through
 * redis.c. It keeps its own state (rc__port) and tells the core what
 * happened through the rc__on_* calls below; it changes no core state. */

/* Hand the port a context for one side (NULL: none). The old one, if any
 * and still alive, is let go of: its hooks are restored once hiredis holds
 * no callback of ours. 1 if the context changed, 0 if it was the one in
 * use, RC_ENOMEM, or RC_EMISUSE (a sub context handed back while it still
 * holds the adapter's channels). */
int rc__port_set_pub(rc_adapter *a, struct redisAsyncContext *ac);
int rc__port_set_sub(rc_adapter *a, struct redisAsyncContext *ac);
/* Attach transport t (copied), or detach it (NULL; its sides must be down
 * first). 0, or RC_EMISUSE: contexts are in use. */
int rc__port_set_transport(rc_adapter *a, const struct rc_transport *t);
/* A side of the transport came up or went down: 1 if that changed the
 * side, 0 if not (or no transport), RC_ENOMEM. A new pub side loads the
 * scripts. */
int rc__port_tside(rc_adapter *a, int is_sub, int up);
/* 1 if there is a sub context in use. */
int rc__port_has_sub(const rc_adapter *a);
/* The adapter is being released: let go of every context. */
void rc__port_close(rc_adapter *a);

/* (UN)SUBSCRIBE the channels of n rooms on the sub context, in batches.
 * 0 when all were sent; else how many were (>= 0) is in *sent and the
 * result is RC_ENOMEM, or RC_EMISUSE when hiredis refused (the context is
 * going away). */
int rc__port_subscribe(rc_adapter *a, rc__aroom *const *rooms, size_t n,
                       size_t *sent);
int rc__port_unsubscribe(rc_adapter *a, rc__aroom *const *rooms, size_t n,
                         size_t *sent);
/* PUBLISH env on <prefix><room>. 0, RC_EMISUSE (no pub context, or it
 * refused) or RC_ENOMEM. */
int rc__port_publish(rc_adapter *a, const char *room, const char *env,
                     size_t len);

/* script.c: Lua scripts on the pub context. Each is loaded (SCRIPT LOAD)
 * on every new pub context and called by EVALSHA once its SHA1 is known,
 * by EVAL before; a call answered NOSCRIPT (Redis lost its scripts) is
 * sent again as EVAL, so calls keep their order. */
void rc__port_load_scripts(rc_adapter *a);
/* 1 if there is a pub context that takes commands. */
int rc__port_has_pub(const rc_adapter *a);
/* 1 when the adapter's Redis is a cluster in sharded mode: a room's
 * channel is published with SPUBLISH (scripts too), not PUBLISH. */
int rc__port_sharded(const rc_adapter *a);

/* A reply, seen through the accessors below; valid for the callback. */
typedef struct rc__reply rc__reply;
/* Elements of an array reply (0 for any other). */
size_t rc__reply_len(const rc__reply *r);
/* Element i as an integer: 0, or RC_ETYPE. */
int rc__reply_int(const rc__reply *r, size_t i, long long *out);

/* Called once per call with the reply (err 0), or with r NULL and err
 * RC_EREDIS (an error reply) or RC_EMISUSE (lost with the link), also
 * for a context the adapter has since let go of; never once the adapter
 * is released. */
typedef void (*rc__script_cb)(rc_adapter *a, const rc__reply *r, int err,
                              void *arg);
/* Call a script with nkeys keys then the other arguments: n byte strings
 * in all (copied). cb may be NULL. 0, RC_EMISUSE (no pub context that
 * takes commands) or RC_ENOMEM. */
int rc__port_script(rc_adapter *a, int script, size_t nkeys, size_t n,
                    const char *const *argv, const size_t *argvlen,
                    rc__script_cb cb, void *arg);

/* Element i as a string (or status): its bytes and *len, or NULL. The
 * bytes are followed by a NUL. */
const char *rc__reply_str(const rc__reply *r, size_t i, size_t *len);
/* The bytes of all string elements, plus one per element. */
size_t rc__reply_strings_len(const rc__reply *r);

/* presence.c */
void rc__presence_init(rc_adapter *a);
void rc__presence_free(rc_adapter *a);
/* A member joined room (registry join done). 0 or RC_ENOMEM. */
int rc__presence_joined(rc_adapter *a, rc__member *m);
/* The room's SUBSCRIBE is confirmed (after the host heard READY). */
void rc__presence_ready(rc_adapter *a, rc__aroom *room);
/* A pub context is in use (new, or the token's liveness had lapsed):
 * reconcile every presence room. */
void rc__presence_resync(rc_adapter *a);
/* A message on a presence room: its presence sequence (> 0) if it is a
 * presence event to be ordered, else 0; kept for members awaiting their
 * snapshot. */
long long rc__presence_event(rc_adapter *a, rc__aroom *room,
                             const rc_envelope *env);
/* Should member m get the presence event of sequence seq now? */
int rc__presence_wants(const rc__member *m, long long seq);
/* The timed work: ms until it wants to run again. */
unsigned rc__presence_tick(rc_adapter *a, unsigned long long now);
/* Call a room script: KEYS[1] the room's base, ARGV key prefix, room,
 * channel, node id, then the n strings of extra. */
int rc__room_script(rc_adapter *a, int script, const char *room,
                    size_t room_len, const char *const *extra,
                    const size_t *extra_len, size_t n, rc__script_cb cb,
                    void *arg);

/* Deliver msg to member m alone (its own frame), through the filter. */
void rc__presence_deliver_to(rc_adapter *a, rc__member *m,
                             const rc_message *msg);

/* plocal.c: presence without Redis, on the room's map of users. */
int rc__plocal_joined(rc_adapter *a, rc__member *m, rc__map *users);
void rc__plocal_left(rc_adapter *a, rc__member *m, rc__map *users);
void rc__plocal_sweep(rc_adapter *a, rc__room *room, rc__map *users);
size_t rc__plocal_pending(rc_adapter *a, rc__map *users);
void rc__plocal_free(rc_adapter *a, rc__map *users);

/* deliver.c: one member (the walk's callback; arg: an rc__delivery). */
int rc__deliver_one(rc__member *m, void *arg);

/* rate.c */
void rc__rate_free(rc_adapter *a);
/* The emission interval of a rate in microseconds; 0 if the rate is bad. */
unsigned long long rc__rate_interval_us(const rc_rate *r);

/* slot.c: the Redis Cluster hash slot of a key (or channel): CRC16
 * (XMODEM) of its hash tag, the part between the first '{' and the next
 * '}' when that is not empty, else of the whole key; mod 16384. */
unsigned rc__keyslot(const char *key, size_t len);

/* identity.c: a user id, 1..256 bytes of UTF-8 without control
 * characters: 0 (*len, *q: its length and as a JSON string) or an error. */
int rc__user_check(const char *u, size_t *len, size_t *q);

/* admit.c, end.c: admission (see roomcast.h). */
/* Take the members of room (those of user, if not NULL) out of it and
 * tell the end callback reason; closed: a message they get first. */
void rc__room_end(rc_adapter *a, rc__aroom *room, const char *user, int reason,
                  const rc_message *closed);
/* The same for a close: rc:closed {"reason":R} (R: len bytes of JSON). */
void rc__room_end_closed(rc_adapter *a, rc__aroom *room, const char *reason,
                         size_t len);
/* The user of a message's data {"user":U,...}, unescaped and allocated
 * (rc__free it); NULL if none. */
char *rc__data_user(rc_adapter *a, const rc_message *msg);
/* The same for one member (closed NULL: no rc:closed). */
void rc__member_end(rc_adapter *a, rc__member *m, int reason,
                    const char *closed, size_t len);
/* An envelope from Redis on room: 1 if it was a control message (rc:closed
 * or rc:evict), handled here: not to be delivered as usual. */
int rc__admit_control(rc_adapter *a, rc__aroom *room, const rc_envelope *env);
/* The timed work: ms until it wants to run again. */
unsigned rc__admit_tick(rc_adapter *a, unsigned long long now);
/* history.c */
#define RC__NOT_HISTORY (-1000)   /* rc__hist_broadcast: go on as usual */
#define RC__HISTORY_LOCAL (-1001) /* the same, local only (no Redis) */
int rc__hist_broadcast(rc_adapter *a, const char *const *rooms, size_t n,
                       const rc_message *msg, const rc_broadcast_options *opts);
/* A message from Redis in room: 1 if history handled it (a message with
 * an id "E-S" in a history room), else 0 (d: the delivery prepared). */
int rc__hist_live(rc_adapter *a, rc__aroom *room, const rc_envelope *env,
                  rc__delivery *d);
/* Is room (may be NULL) a history room with members here? */
int rc__hist_room(rc_adapter *a, rc__aroom *room);
/* Is env, one of our own, a history message of room (not an echo)? */
int rc__hist_own(rc_adapter *a, rc__aroom *room, const rc_envelope *env);
void rc__hist_ready(rc_adapter *a, rc__aroom *room);
void rc__hist_pub_changed(rc_adapter *a);
void rc__hist_room_gone(rc_adapter *a, rc__aroom *room);

/* Link p (a block of a->mem, free_fn set) on the adapter until unlinked;
 * at release, whatever is still linked is freed. */
void rc__pend_link(rc_adapter *a, rc__pend *p);
void rc__pend_unlink(rc_adapter *a, rc__pend *p);
void rc__pend_free_all(rc_adapter *a);

/* node.c */
int rc__node_init(rc_adapter *a);
void rc__node_free(rc_adapter *a);
/* Before the pub context is taken back (NULL) or the adapter is freed:
 * let go of the lease on it while it still takes commands. */
void rc__node_let_go(rc_adapter *a);
/* After the port changed pub contexts. */
void rc__node_pub_changed(rc_adapter *a);

/* What the port reports. */
void rc__on_message(rc_adapter *a, const char *channel, size_t channel_len,
                    const char *payload, size_t payload_len);
void rc__on_subscribed(rc_adapter *a, const char *channel, size_t len);
void rc__on_unsubscribed(rc_adapter *a, const char *channel, size_t len);
/* ok: 1 answered, 0 refused or never sent, -1 lost with the link. */
void rc__on_published(rc_adapter *a, int ok);
/* The sub context went away: every subscription is gone. */
void rc__on_sub_lost(rc_adapter *a);

#endif /* RC_INTERNAL_H */
