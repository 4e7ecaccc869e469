/*
 * roomcast on libevent: Redis links for an adapter, from a URL.
 *
 * An rc_link owns the two hiredis contexts an adapter needs (one that
 * publishes, one that subscribes), attaches them to an event_base,
 * authenticates, selects the database, names the connections, and keeps
 * them up: each reconnects on its own with exponential backoff and jitter,
 * and the adapter is handed every fresh context (it then resubscribes its
 * rooms). A silently dead link is found by a probe: every interval the pub
 * side publishes on a control channel of its own that the sub side listens
 * to. A probe that has not come back when the next one is due is late,
 * not yet lost: while Redis answers nothing on either connection (a slow
 * or paused Redis: DEBUG SLEEP, CLIENT PAUSE, a long fork) the publishes
 * queued meanwhile would still be delivered, so the links get five more
 * intervals. A probe whose PUBLISH Redis answered while the sub side read
 * nothing since is lost at once. A lost probe restarts both links. So a
 * dead sub connection is found within two intervals, a dead or frozen
 * path within seven, and a stall shorter than five intervals drops
 * nothing: the publishes made meanwhile wait in hiredis' output buffer.
 *
 * Reads drain the socket: after a readable event hiredis is called again
 * while the socket holds data, up to 64 reads of 16 KiB, so a subscriber
 * keeps up with a fast publisher and one busy link cannot starve the loop.
 *
 * While Redis is away, local broadcasts keep delivering; publishes fail
 * fast and are counted (rc_counters.publish_errors); nothing queues up.
 *
 * Link with roomcast-libevent (pkg-config) or roomcast::libevent (CMake).
 * Threads: a link, like its adapter, is used only from the thread running
 * its event_base; nothing here locks.
 * Re-entry: any rc_ call may be made from inside the state callback
 * (rc_link_close and then rc_adapter_free included).
 */
#ifndef ROOMCAST_LIBEVENT_H
#define ROOMCAST_LIBEVENT_H

#include "roomcast.h"
#include "url.h" /* rc_redis_url_parse: core, declared here at first */

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef struct rc_link rc_link;

/** Link states, for rc_link_state() and the state callback. */
enum rc_link_state {
    RC_LINK_DOWN = 0, /* connecting, or waiting to reconnect */
    RC_LINK_UP = 1    /* both sides connected, ready and handed over */
};

/**
 * Called on every change of state, and while the link is down whenever the
 * reason changes (e.g. "Connection refused", then "WRONGPASS ..." once
 * Redis is up but the password is wrong). reason says why the link went
 * down ("probe lost", "connect timeout", the server's or the socket's
 * error), or "up"; valid for the call.
 */
typedef void (*rc_link_state_cb)(rc_link *link, int state, const char *reason,
                                 void *user);

/** Options for rc_link_open(). Zero fields mean the defaults. */
typedef struct rc_link_options {
    /* redis://[[user]:password@]host[:port][/db] or
     * unix:///path/to/socket[?db=N] (password via redis:// only). */
    const char *url;
    unsigned connect_timeout_ms; /* 0: 2000; also bounds the handshake */
    /* Retry delays double from backoff_min_ms (0: 100) up to
     * backoff_max_ms (0: 1000, or backoff_min_ms if that is more); each
     * actual delay is a random point in the upper half of that, so that
     * nodes do not retry in step. Once one side (pub or sub) is ready
     * again, the other, if it is waiting out a delay, retries at once:
     * after an outage the link is UP at most about backoff_max_ms after
     * Redis answers again. */
    unsigned backoff_min_ms;
    unsigned backoff_max_ms;
    /* 0: 1000. A dead link is found within 7 intervals (2 if only the
     * sub connection died); a silent Redis is waited for 5 intervals. */
    unsigned probe_interval_ms;
    rc_link_state_cb state_cb; /* may be NULL */
    void *user;
} rc_link_options;

/**
 * Start linking adapter a to Redis on base. Returns 0 at once, whether or
 * not Redis is reachable: the first attempt runs from the loop (so the
 * state callback is never called before this returns), the link keeps
 * trying, and reports through the state callback. Until the first
 * connection the adapter works locally. The options and the URL are
 * copied; a and base are borrowed for the link's life.
 *
 * The link registers hiredis' connect and disconnect callbacks and owns
 * the contexts: do not give a (other) context to the adapter yourself.
 * Close the link before freeing the adapter.
 *
 * Errors: RC_EINVAL (NULL arguments, or a timing option out of range),
 * RC_EURL, RC_ENOMEM. On error nothing was started.
 */
ROOMCAST_EXTERN int rc_link_open(rc_adapter *a, struct event_base *base,
                                 const rc_link_options *opts, rc_link **out);

/**
 * Orderly shutdown: the adapter is told the contexts are gone (at once:
 * the adapter may be freed right after), both connections are closed (the
 * server drops their subscriptions), timers are removed, and everything is
 * freed. NULL is allowed. It may be called from anywhere on the loop's
 * thread, the link's own state callback and any adapter callback
 * included; from inside the link's callbacks the freeing finishes on the
 * next turn of the loop (keep the loop running for it), and no callback
 * comes after this returns.
 */
ROOMCAST_EXTERN void rc_link_close(rc_link *link);

/** RC_LINK_UP or RC_LINK_DOWN (link must not be NULL). */
ROOMCAST_EXTERN int rc_link_state(const rc_link *link);

/** Why the link last went down ("" if it never did). Owned by the link,
 *  valid until the next change of state. */
ROOMCAST_EXTERN const char *rc_link_reason(const rc_link *link);

/**
 * The publishing context while that side is connected and handed to the
 * adapter, else NULL. The host may send its own ordinary commands on it
 * (HSET, GET...) with redisAsyncCommand; their callbacks get a NULL reply
 * if the connection goes away first. Do not free, disconnect or subscribe
 * it, and do not keep it past the next state callback reporting down.
 * NULL for a NULL link.
 */
ROOMCAST_EXTERN struct redisAsyncContext *rc_link_pub(const rc_link *link);

/** One Redis server a link uses (rc_link_shards). Counters are kept by
 *  links on the glue's own connections (TLS, Sentinel, Cluster, or
 *  RC_LINK_ENGINE=wire); a plain redis:// link on hiredis reports its one
 *  server with zero counters. */
typedef struct rc_link_shard {
    char addr[300];              /* "host:port", or the socket's path */
    int up;                      /* its connections are ready */
    int slots;                   /* cluster slots it owns (16384: all) */
    unsigned long channels;      /* channels subscribed (or asked) there */
    unsigned long long commands; /* commands sent to it */
    unsigned long long messages; /* messages received from it */
    unsigned long long lost;     /* its subscriptions dropped or lost */
} rc_link_shard;

/**
 * The servers the link uses now, each copied into out[0..cap): the one
 * Redis (for Sentinel, the master found), or every master of the cluster's
 * current map. Returns how many there are (may exceed cap; out may be NULL
 * with cap 0). link must not be NULL.
 */
ROOMCAST_EXTERN size_t rc_link_shards(const rc_link *link, rc_link_shard *out,
                                      size_t cap);

/** How many times the link came up (both sides ready), and how many times
 *  a side (pub or sub, counted apart) failed to connect, went down, or was
 *  refused by the adapter (link must not be NULL). */
ROOMCAST_EXTERN unsigned long rc_link_connects(const rc_link *link);
ROOMCAST_EXTERN unsigned long rc_link_failures(const rc_link *link);

#ifdef __cplusplus
}
#endif

#endif /* ROOMCAST_LIBEVENT_H */
