/* Redis Cluster mode of the glue's links (ecluster.c, ecsub.c) and its
 * channel sets (cset.c). Not installed. */
#ifndef RC_ECLUSTER_H
#define RC_ECLUSTER_H

#include "elink.h"
#include "roomcast/transport.h"

#define CLUSTER_SLOTS 16384
#define CLUSTER_MAX_NODES 128 /* masters known over the link's life */

/* ---- cset.c: a set of channel names ---------------------------------- */

typedef struct cchan {
    size_t len;
    char s[]; /* NUL-terminated */
} cchan;

typedef struct cset {
    cchan **e;           /* NULL: free; CSET_TOMB: deleted */
    size_t cap, n, used; /* used: n plus tombstones */
} cset;

extern char rc__cset_tomb;
#define CSET_TOMB ((cchan *)(void *)&rc__cset_tomb)

/* 0 (added, or already there) or -1 (out of memory). */
int rc__cset_add(cset *set, const char *chan, size_t len);
int rc__cset_has(const cset *set, const char *chan, size_t len);
/* 1 if it was there (and is gone), else 0. */
int rc__cset_del(cset *set, const char *chan, size_t len);
/* Empty the set into an allocated array of *n names (free each, and the
 * array); NULL when empty or out of memory (then the set stays). */
cchan **rc__cset_take(cset *set, size_t *n);
void rc__cset_free(cset *set);

/* ---- one master ------------------------------------------------------- */

typedef struct ccmd ccmd;

typedef struct cnode {
    int idx;
    char host[256];
    int port;
    econn cmd, sub;
    cset chans;       /* the channels subscribed (or asked) here */
    cset leaving;     /* moved away by a new map: released, not yet confirmed */
    int in_map;       /* owns slots (or, classic, holds the subscriptions) */
    ccmd *waiting;    /* redirected here before cmd was ready */
    rc_link_shard st; /* counters (addr, up, slots, channels: when asked) */
} cnode;

/* A command until its reply: kept to be sent again on a redirect. */
struct ccmd {
    ccmd *next;
    rc__elink *l;
    int slot;
    rc_transport_done done;
    void *priv;
    int redirects, retries, asking, node;
    size_t len;
    char bytes[];
};

typedef struct rc__cluster {
    cnode *nodes[CLUSTER_MAX_NODES];
    int nnodes;
    short owner[CLUSTER_SLOTS]; /* a node's idx, or -1 */
    int map_ok;                 /* a map came */
    int stale;    /* something says the map changed: a new one is asked */
    int pub_up;   /* the adapter was told the command side is up */
    cset parked;  /* subscriptions waiting for a map */
    rc__wire *mq; /* the map query in flight */
    int mq_next;  /* which host to ask next (seeds, then masters) */
    int mq_tried; /* hosts tried for this map */
    char mq_host[256];
    struct event *map_timer, *retry_timer;
    ccmd *retry; /* waiting out TRYAGAIN or CLUSTERDOWN */
} rc__cluster;

/* emap.c */
/* Start a connection that is neither up, nor connecting, nor waiting. */
void rc__econn_start(econn *c);
void rc__cluster_map_timer(evutil_socket_t fd, short what, void *arg);

/* ecluster.c */
int rc__cluster_open(rc__elink *l);
void rc__cluster_close(rc__elink *l);
int rc__cluster_send(void *self, int slot, const char *cmd, size_t len,
                     rc_transport_done done, void *priv);
/* Ask for a new map now (unless one is being asked); stale: the old one
 * is known to be wrong (subscriptions wait for the new one). */
void rc__cluster_ask_map(rc__elink *l, int stale);
/* A node by address, made (and its connections started) if new; NULL
 * when CLUSTER_MAX_NODES are known. */
cnode *rc__cluster_node(rc__elink *l, const char *host, int port);
/* Connection events of a master's connection (elink.c calls them). */
void rc__cluster_ready(econn *c);
void rc__cluster_lost(econn *c, const char *why);
void rc__cluster_probe(rc__elink *l);
/* Link UP when every master in the map has its connections ready. */
void rc__cluster_check_up(rc__elink *l);

/* ecsub.c: subscriptions. */
int rc__cluster_subscribe(void *self, int on, const char *chan, size_t len);
void rc__cluster_push(econn *c, const redisReply *r);
/* The node that should hold chan under the current map, or NULL. */
cnode *rc__cluster_home(rc__elink *l, const char *chan, size_t len);
/* Ask for chan on its home (or park it while the map is stale). 0, or
 * -1 (out of memory: not taken). */
int rc__cluster_place(rc__elink *l, const char *chan, size_t len);
/* Tell the adapter each channel of node n is lost (n's set empties). */
void rc__cluster_lose_all(rc__elink *l, cnode *n);
/* After a new map: channels not at home move (told lost), parked ones
 * are placed. */
void rc__cluster_rehome(rc__elink *l);
/* Subscribe everything n holds on its (now ready) sub connection. */
void rc__cluster_sub_ready(rc__elink *l, cnode *n);

#endif /* RC_ECLUSTER_H */
