/* What the presence files share (presence.c, sweep.c, identity.c,
 * plocal.c); not installed. */
#ifndef RC_PRESENCE_H
#define RC_PRESENCE_H

#include "internal.h"

#define DEFAULT_GRACE_MS 10000u
#define DEFAULT_SWEEP_MS 1000u
#define DEFAULT_ANNOUNCE_MAX 100u
#define MAX_GRACE_MS 86400000u
#define MAX_KEPT 4096 /* presence events kept per room while members wait */
#define USER_MAX 256

enum { P_IDLE, P_ASKED, P_SYNCED };

/* A presence event kept for members awaiting their snapshot. */
typedef struct pevent {
    struct pevent *next;
    long long seq;
    rc_frame *frame;
    rc_message msg;
    char bytes[]; /* event, then data */
} pevent;

struct rc__proom {
    unsigned asking;      /* members ASKED */
    pevent *first, *last; /* presence events since the oldest ask */
    size_t kept;
    long long dropped;  /* the last sequence dropped from the list */
    int synced;         /* had a snapshot: the next sync is a resync */
    unsigned walking;   /* members are being given the kept events */
    int orphan;         /* the room was dropped meanwhile: free at the end */
    int local;          /* an adapter without Redis: users is the state */
    rc__map users;      /* user -> its connections (plocal.c): the state
                           without Redis, else the view kept for outages */
    long long view_seq; /* linked: the sequence the view stands at */
    int retry; /* a join or sync failed in Redis: sync at the next sweep */
    int troom; /* registered under this node's token (a set that goes only
                  when the token is reaped: then a resync syncs, which
                  registers again) */
};

typedef struct pmember {
    int state;
    long long snap;
    rc__pask *ask; /* the call it waits for */
} pmember;

enum { ASK_JOIN, ASK_SYNC };

struct rc__pask {
    rc__pask *prev, *next; /* the adapter's asks in flight */
    int kind;
    unsigned gen;    /* the node's pub generation when sent */
    rc__aroom *room; /* NULL once the room is dropped */
    rc__member *m;   /* ASK_JOIN: NULL once the member left */
    size_t name_len, user_len;
    char *user;  /* ASK_JOIN: the joiner's user (NULL: none), after name */
    char name[]; /* the room's */
};

/* The JSON string length of s (len bytes, NUL-terminated), or 0 if it
 * cannot be a user or room in an event (CR, LF, NUL, invalid UTF-8). */
size_t rc__quoted_len(const char *s, size_t len);
/* Drop the kept events; free the asks in flight (the adapter is going). */
void rc__kept_free(rc__proom *p);
void rc__asks_free(rc_adapter *a);

/* sweep.c: the node-wide halves of presence's room scripts (lua.c). */
/* A node-wide script on the one key <kp><mid><sfx> (sfx: sfx_len bytes),
 * then the n arguments; its answer is not needed. 0 or an error. */
int rc__nw_call(rc_adapter *a, int script, const char *mid, const char *sfx,
                size_t sfx_len, const char *const *v, const size_t *l,
                size_t n);
/* Before a join or sync adding connections: v[0] the room, then n - 1
 * users: the users in the index, and (troom) the room under this node's
 * token. */
void rc__pidx_before(rc_adapter *a, const char *const *v, const size_t *l,
                     size_t n, int troom);
/* The same users in the index again, after the room's answer. */
void rc__pidx_users(rc_adapter *a, const char *const *v, const size_t *l,
                    size_t n);
/* Where the tail of a room script's reply starts (lua.h), or its length
 * when it has none. */
size_t rc__ptail(const rc__reply *r);
/* A room script's answer in r: the room's next due time registered (a
 * sweep: handed back with gen, its claim's number) and the users who
 * left forgotten by the index. */
void rc__pidx_after(rc_adapter *a, const char *room, size_t len,
                    const rc__reply *r, const char *gen);
/* A presence room script whose answer is handed to rc__pidx_after; owe:
 * if it is lost with the link, the room is owed a sync. 0 or an error. */
int rc__pcall(rc_adapter *a, int script, const char *room, size_t len,
              const char *const *extra, const size_t *extra_len, size_t n,
              const char *gen, int owe);
/* The users of room's members here in the index (before: also the room
 * under this node's token, before a sync). */
void rc__pidx_members(rc_adapter *a, rc__aroom *room, int before);
/* The next pub context syncs room (this node's connections
 * there made exactly its members). */
void rc__presence_owe(rc_adapter *a, const char *room, size_t len);

/* snapshot.c: where a snapshot reply's parts are (RC_EREDIS if it is not
 * one), and its rc:presence JSON (malloc'ed into *out). */
typedef struct snap {
    long long n;      /* users, or -1 */
    size_t end;       /* where the snapshot ends (a tail may follow) */
    size_t users_end; /* the first element after the users */
    size_t need;
} snap;
int rc__snap_parse(const rc__reply *r, const rc__aroom *room, snap *sp);
int rc__snapshot_json(rc_adapter *a, const rc__aroom *room, const rc__reply *r,
                      char **out, size_t *len);

/* plocal.c: a linked adapter's view of a room (per user, not in
 * per-connection mode). */
void rc__plocal_clear(rc_adapter *a, rc__map *users);
void rc__plocal_put(rc_adapter *a, rc__map *users, const char *user, size_t len,
                    size_t conns);
void rc__plocal_remove(rc_adapter *a, rc__map *users, const char *user,
                       size_t len);
/* Is presence told per user (the view is kept)? */
#define RC__PER_USER(a) (!((a)->pres.o.flags & RC_PRESENCE_PER_CONNECTION))

#endif /* RC_PRESENCE_H */
