/*
 * roomcast: a Redis client of your own under an adapter.
 *
 * An adapter reaches Redis either through two hiredis async contexts the
 * host hands it (rc_adapter_set_pub, rc_adapter_set_sub) or through a
 * transport: a few functions of the host's that carry commands and
 * subscriptions over connections the host owns, on any client or loop,
 * to one Redis, a Sentinel-managed master or a Redis Cluster. The
 * libevent glue's links to rediss://, Sentinel and Cluster URLs are
 * transports (roomcast/libevent.h).
 *
 * The adapter formats every command itself (RESP, as hiredis'
 * redisFormatCommandArgv would) and says which cluster slot it belongs to;
 * the transport only routes bytes and hands back replies (hiredis'
 * redisReply, as its reader builds them). Subscriptions are one channel
 * at a time; the transport tells what Redis confirmed and what it lost.
 *
 * Threads: the transport's functions are called on the adapter's thread,
 * and the rc_transport_ calls below must be made there.
 * Re-entry: the adapter calls into the transport from inside the
 * rc_transport_ calls (a lost channel is subscribed again at once); a
 * transport must allow that. It must never call back from inside its own
 * send or subscribe.
 */
#ifndef ROOMCAST_TRANSPORT_H
#define ROOMCAST_TRANSPORT_H

#include "roomcast.h"

#ifdef __cplusplus
extern "C" {
#endif

struct redisReply;

/** The answer to one command: reply, or NULL when none will come (the
 *  connection went away, or the transport shut down). Valid for the call. */
typedef void (*rc_transport_done)(void *priv, const struct redisReply *reply);

/** What a transport does. The adapter copies it. */
typedef struct rc_transport {
    /**
     * Queue one command: cmd is len bytes of RESP, valid for the call
     * only. slot (0..16383) is the cluster slot of the command's first key
     * or channel; -1 means any node will do (SCRIPT LOAD). A cluster
     * transport follows MOVED and ASK itself. Returns 0 when queued: done
     * is then called exactly once, later (never from inside send), also
     * when the transport shuts down (with NULL). Non-zero when not queued
     * (done is not called): the adapter counts the failure.
     */
    int (*send)(void *self, int slot, const char *cmd, size_t len,
                rc_transport_done done, void *priv);
    /**
     * Subscribe (on 1) or unsubscribe (on 0) one channel (len bytes, valid
     * for the call). Non-zero when it could not be asked now: the adapter
     * asks again later. Otherwise the transport answers later with
     * rc_transport_subscribed or rc_transport_unsubscribed for it, and
     * reports a subscription that Redis dropped or that went down with a
     * connection (asked for or confirmed) with rc_transport_unsubscribed.
     */
    int (*subscribe)(void *self, int on, const char *channel, size_t len);
    void *self;
    /** 1: sharded pub/sub (SSUBSCRIBE on the slot's owner): the adapter
     *  publishes with SPUBLISH, in scripts too. 0: PUBLISH. */
    int sharded;
} rc_transport;

/**
 * Use transport t (copied; its self is borrowed until detached) instead
 * of hiredis contexts; NULL detaches it, another replaces it. Attaching
 * starts with both sides down: tell the adapter when they come up.
 * Detaching (or replacing) is like both sides going down: the lease is
 * let go of through the old transport first, replies still owed keep
 * arriving through done, and the adapter ignores them. An adapter freed
 * with a transport attached lets go of it the same way; after
 * rc_adapter_free no rc_transport_ call may name it.
 * Errors: RC_EINVAL (a NULL, or t without send or subscribe), RC_EMISUSE
 * (hiredis contexts are in use, or the adapter is being freed), RC_ENOMEM.
 */
ROOMCAST_EXTERN int rc_adapter_set_transport(rc_adapter *a,
                                             const rc_transport *t);

/**
 * The command side is up (1: commands may be sent; the adapter loads its
 * scripts, takes its lease and reconciles room state, as for a new pub
 * context) or down (0). Tell it again with 1 after a failover, when the
 * node now answering may have lost recent writes.
 */
ROOMCAST_EXTERN void rc_transport_pub(rc_adapter *a, int up);

/**
 * The subscription side is up (1: the adapter subscribes every room with
 * members) or down (0: every subscription is gone; the host hears
 * RC_ROOM_LOST per room that was ready). A cluster transport reports
 * single lost channels with rc_transport_unsubscribed instead.
 */
ROOMCAST_EXTERN void rc_transport_sub(rc_adapter *a, int up);

/** A message (or smessage) on channel. */
ROOMCAST_EXTERN void rc_transport_message(rc_adapter *a, const char *channel,
                                          size_t channel_len,
                                          const char *payload, size_t len);

/** Redis confirmed a subscription the adapter asked for. */
ROOMCAST_EXTERN void rc_transport_subscribed(rc_adapter *a, const char *channel,
                                             size_t len);

/** A channel is no longer subscribed: confirmed, or lost (the adapter
 *  then tells RC_ROOM_LOST and subscribes it again). */
ROOMCAST_EXTERN void rc_transport_unsubscribed(rc_adapter *a,
                                               const char *channel, size_t len);

/** The Redis Cluster slot of a key or channel (CRC16 of its hash tag, mod
 *  16384), as the adapter gives it to send. Pure: any thread. */
ROOMCAST_EXTERN int rc_keyslot(const char *key, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* ROOMCAST_TRANSPORT_H */
