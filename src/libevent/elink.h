/* Links on the glue's own wires (elink.c, esentinel.c): TLS, Sentinel
 * (and Cluster). Not installed. */
#ifndef RC_ELINK_H
#define RC_ELINK_H

#include "glue.h"
#include "wire.h"

typedef struct rc__elink rc__elink;
struct cnode;
struct rc__cluster;

/* One connection the link keeps up: connect (after asking the sentinels
 * where the master is, in Sentinel mode), handshake, ready; on failure a
 * backoff, then again. */
typedef struct econn {
    rc__elink *l;
    int role;           /* ROLE_CMD, ROLE_SUB, ROLE_WATCH */
    struct econn *peer; /* the other of a cmd/sub pair (probe, prompt) */
    struct cnode *node; /* Cluster mode: its master, else NULL */
    rc__wire *w;
    rc__wire *q; /* Sentinel mode: the query to a sentinel in flight */
    int ready;   /* handshake done */
    int pending; /* handshake replies to come */
    unsigned attempt;
    struct event *timer; /* bounds connect + handshake, or the backoff */
    char host[256];
    int port;
    int si;    /* Sentinel mode: the sentinel asked (or watched) now */
    int asked; /* sentinels asked in this attempt */
    int ping_out;
    unsigned late;               /* probe intervals the ping is overdue */
    unsigned long ping_seq;      /* the probe round of the ping out */
    unsigned long pong_seq;      /* the round of the last one answered */
    unsigned long reads_at_ping; /* the wire's reads when it was sent */
    char why[256];
} econn;

enum { ROLE_CMD, ROLE_SUB, ROLE_WATCH };

struct rc__elink {
    rc_link *owner;
    rc_adapter *a;
    struct event_base *base;
    struct evdns_base *dns;
    struct ssl_ctx_st *tls; /* NULL: not TLS, or tls_err says why not */
    char tls_err[256];
    rc_redis_url url;
    rc_link_options o;
    econn cmd, sub, watch;
    struct event *probe, *closer;
    unsigned long probe_seq; /* probe rounds so far */
    rc__ticker *ticker;
    struct rc__cluster *cl; /* Cluster mode */
    rc_link_shard st;       /* its one server's counters (not Cluster) */
    char *names[2];         /* CLIENT SETNAME of cmd and sub */
    int state;
    char reason[256];
    unsigned long connects, failures;
    unsigned long long rng;
    unsigned in_cb;
    int closing;
};

/* elink.c */
int rc__elink_open(rc_link *owner, rc_adapter *a, struct event_base *base,
                   const rc_link_options *o, const rc_redis_url *url,
                   rc__elink **out);
void rc__elink_close(rc__elink *l);
/* The connection is down (why): tell who must know, back off, retry. */
void rc__econn_fail(econn *c, const char *why);
/* Set up c (role, peer, node, timer); 0 or RC_ENOMEM. */
int rc__econn_init(rc__elink *l, econn *c, int role, econn *peer,
                   struct cnode *node);
/* c is connected and answered its handshake: ready. */
void rc__econn_ready(econn *c);
/* ehello.c: send c's handshake (c ready when it is all answered). */
void rc__econn_handshake(econn *c);
/* Stop c for good: no retry (its master left the map); tells nobody. */
void rc__econn_stop(econn *c);
/* Probe c once (see elink.c). */
void rc__econn_probe(econn *c);
void rc__elink_state(rc__elink *l, int state, const char *reason);
size_t rc__elink_shards(const rc__elink *l, rc_link_shard *out, size_t cap);
/* ecluster.c: the same for a cluster. */
size_t rc__cluster_shards(const rc__elink *l, rc_link_shard *out, size_t cap);
/* Open c's wire to c->host:c->port (or the URL's socket). */
void rc__econn_dial(econn *c);
void rc__elink_arm(struct event *ev, unsigned ms);
/* Make the TLS context from the URL: 1, or 0 with tls_err set. */
int rc__elink_tls(rc__elink *l);
unsigned rc__elink_backoff(rc__elink *l, unsigned attempt);

/* esentinel.c */
/* Ask the sentinels where the master is, then dial c (or fail it). */
void rc__sentinel_resolve(econn *c);
/* Dial the watch connection to the sentinel whose turn it is. */
void rc__sentinel_watch_dial(econn *c);
/* The watch connection (a sentinel's +switch-master) is up: subscribe. */
void rc__sentinel_watch_up(econn *c);
/* A push on the watch connection. */
void rc__sentinel_push(econn *c, const redisReply *r);
/* The handshake's ROLE reply: 0 if it says master, else why in c->why. */
int rc__sentinel_role_ok(econn *c, const redisReply *r);

#endif /* RC_ELINK_H */
