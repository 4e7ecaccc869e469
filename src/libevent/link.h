/* The hiredis links' state (link.c), shared with linkinfo.c; not
 * installed. */
#ifndef RC_LINK_H
#define RC_LINK_H

#include <event2/event.h>
#include <hiredis/async.h>

#include "elink.h"

typedef struct side {
    struct rc_link *link;
    int is_sub;
    redisAsyncContext *ac;
    int up;      /* handed over to the adapter */
    int pending; /* handshake replies still to come */
    int failed;  /* the handshake failed: error says why */
    char error[256];
    unsigned attempt;    /* failures in a row, for the backoff */
    unsigned long reads; /* readable events, for the probe */
    struct event *timer;
    char *name; /* CLIENT SETNAME */
} side;

struct rc_link {
    rc_adapter *a;
    struct event_base *base;
    rc_redis_url url;
    rc_link_options o;
    side pub, sub;
    struct event *probe;
    unsigned long probes_sent, probes_seen;
    unsigned late;            /* intervals the last probe is overdue */
    int probe_answered;       /* Redis answered the last probe's PUBLISH */
    unsigned long sub_reads0; /* sub.reads when it was sent */
    char *ctl;                /* this link's control channel */
    int state;
    char reason[256];
    unsigned long connects, failures;
    unsigned long long rng;
    unsigned in_cb;       /* entry points running */
    int closing;          /* rc_link_close waits for them */
    struct event *closer; /* finishes a deferred rc_link_close */
    rc__ticker *ticker;   /* the adapter's timed work */
    rc__elink *e;         /* TLS, Sentinel, Cluster: elink.c does it all */
};

#endif /* RC_LINK_H */
