/*
 * Redis links on libevent (see roomcast/libevent.h).
 *
 * Each side (pub, sub) runs the same cycle: connect, handshake (AUTH,
 * SELECT, CLIENT SETNAME), ready (handed to the adapter; the sub side first
 * subscribes the node's control channel), and on any failure back to a
 * retry after a backoff with jitter. One timer per side bounds the connect
 * plus handshake (hiredis 0.14 has no connect timeout) or waits out the
 * backoff. hiredis frees a context itself after its disconnect callback,
 * so a context is never freed there; the link frees a context only from
 * its own timers and rc_link_close, which leaves to hiredis a context it
 * is already tearing down.
 *
 * Every entry point (hiredis callbacks, timers) counts itself in in_cb. An
 * rc_link_close made while one runs (from the state callback, say) gives
 * the contexts back to the adapter at once, so that the host may free the
 * adapter right after, and leaves the rest to the closer event: the code
 * that called back still stands on the link.
 *
 * The contexts get the glue's own event hooks rather than hiredis'
 * libevent adapter, so that a readable socket is drained (bounded) rather
 * than read 16 KiB per loop turn; they keep the standard hook contract,
 * which the core wraps. The probe tells a slow Redis (silent on both
 * connections: waited for) from a lost probe (see probe_lost).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "elink.h"
#include "roomcast/libevent.h"

#ifndef REDIS_REPLY_PUSH
#define REPLY_PUSH 12 /* RESP3 (hiredis 1.x) */
#else
#define REPLY_PUSH REDIS_REPLY_PUSH
#endif

/* Intervals a probe may be overdue while Redis says nothing at all. */
#define PROBE_STALL_INTERVALS 5

#include "link.h"

static void side_connect(side *s);
static void finish_close(rc_link *l);
static void on_closer(evutil_socket_t fd, short what, void *arg);

static void enter(rc_link *l)
{
    l->in_cb++;
}

static void leave(rc_link *l)
{
    l->in_cb--;
}

static void set_state(rc_link *l, int state, const char *reason)
{
    int changed = state != l->state || strcmp(reason, l->reason) != 0;

    l->state = state;
    if (reason != l->reason)
        snprintf(l->reason, sizeof l->reason, "%s", reason);
    if (changed && l->o.state_cb != NULL)
        l->o.state_cb(l, state, l->reason, l->o.user);
}

/* The next retry delay: doubling from backoff_min up to backoff_max, then
 * a random point in its upper half, so that nodes do not retry in step. */
static unsigned backoff_ms(rc_link *l, unsigned attempt)
{
    return rc__backoff(&l->rng, &l->o, attempt);
}

static void arm(side *s, unsigned ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (long)(ms % 1000) * 1000;
    evtimer_add(s->timer, &tv);
}

/* Tell the adapter this side's context is gone. */
static void hand_back(side *s)
{
    if (!s->up)
        return;
    s->up = 0;
    /* Taking a context back cannot fail. */
    if (s->is_sub)
        (void)rc_adapter_set_sub(s->link->a, NULL);
    else
        (void)rc_adapter_set_pub(s->link->a, NULL);
}

/* This side is down (its context already gone): report, retry later. */
static void side_failed(side *s, const char *reason)
{
    rc_link *l = s->link;

    hand_back(s);
    s->ac = NULL;
    l->failures++;
    event_del(l->probe);
    arm(s, backoff_ms(l, s->attempt++));
    set_state(l, RC_LINK_DOWN, reason);
}

/* Drop this side's context ourselves (from a timer, never from inside a
 * hiredis callback) and retry later. */
static void side_kill(side *s, const char *reason)
{
    redisAsyncContext *ac = s->ac;

    hand_back(s);
    s->ac = NULL; /* callbacks run by the free below see a stale context */
    if (ac != NULL)
        redisAsyncFree(ac);
    side_failed(s, reason);
}

static void check_up(rc_link *l)
{
    struct timeval tv;

    if (!l->pub.up || !l->sub.up)
        return;
    l->connects++;
    /* Probe numbers go on across sessions: a late probe from before is
     * never mistaken for a new one. */
    l->probes_seen = l->probes_sent;
    l->late = 0;
    tv.tv_sec = l->o.probe_interval_ms / 1000;
    tv.tv_usec = (long)(l->o.probe_interval_ms % 1000) * 1000;
    event_add(l->probe, &tv);
    set_state(l, RC_LINK_UP, "up");
}

/* This side is ready, so Redis is back: the other side, if it is waiting
 * out a backoff, retries now rather than up to backoff_max_ms later (each
 * side backs off on its own, and the link is down until both are up). */
static void prompt_other(side *s)
{
    side *o = s->is_sub ? &s->link->pub : &s->link->sub;

    if (o->ac != NULL || s->link->closing)
        return;
    o->attempt = 0;
    arm(o, 0);
}

/* Hand the context to the adapter. Should it refuse (out of memory, or
 * its SUBSCRIBEs could not be sent), the side goes down with the reason
 * and is retried, rather than look up while rooms miss messages. */
static void side_ready(side *s)
{
    rc_link *l = s->link;
    int rv;

    evtimer_del(s->timer);
    rv = s->is_sub ? rc_adapter_set_sub(l->a, s->ac)
                   : rc_adapter_set_pub(l->a, s->ac);
    s->up = 1;
    if (rv != 0) {
        s->failed = 1;
        snprintf(s->error, sizeof s->error,
                 "cannot hand over the %s "
                 "context: %s",
                 s->is_sub ? "sub" : "pub", rc_strerror(rv));
        redisAsyncDisconnect(s->ac); /* on_disconnect reports, retries */
        return;
    }
    s->attempt = 0;
    prompt_other(s);
    check_up(l);
}

/* The control channel: its confirmation readies the sub side; its
 * messages are the probes the pub side sent. */
static void on_ctl(redisAsyncContext *ac, void *r, void *privdata)
{
    side *s = ac->data;
    rc_link *l = s ? s->link : NULL;
    redisReply *reply = r;
    unsigned long seq;

    (void)privdata;
    if (reply == NULL || l == NULL || ac != l->sub.ac || l->closing ||
        (reply->type != REDIS_REPLY_ARRAY && reply->type != REPLY_PUSH) ||
        reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(reply->element[0]->str, "subscribe") == 0 && !l->sub.up) {
        enter(l);
        side_ready(&l->sub);
        leave(l);
    } else if (strcmp(reply->element[0]->str, "message") == 0 &&
               reply->element[2]->type == REDIS_REPLY_STRING) {
        seq = strtoul(reply->element[2]->str, NULL, 10);
        if (seq > l->probes_seen)
            l->probes_seen = seq;
    }
}

static void on_handshake(redisAsyncContext *ac, void *r, void *privdata)
{
    side *s = ac->data;
    redisReply *reply = r;

    (void)privdata;
    if (reply == NULL || s == NULL || ac != s->ac || s->failed ||
        s->link->closing)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* The disconnect callback reports it and schedules the retry. */
        s->failed = 1;
        snprintf(s->error, sizeof s->error, "%s", reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    if (--s->pending > 0)
        return;
    if (s->is_sub) {
        redisAsyncCommand(ac, on_ctl, NULL, "SUBSCRIBE %s", s->link->ctl);
        return;
    }
    enter(s->link);
    side_ready(s);
    leave(s->link);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    side *s = c->data;
    redisAsyncContext *ac = (redisAsyncContext *)c;
    const rc_redis_url *u;

    if (s == NULL || ac != s->ac)
        return;
    u = &s->link->url;
    if (status != REDIS_OK && s->link->closing)
        s->ac = NULL; /* hiredis frees it after this */
    if (s->link->closing)
        return;
    if (status != REDIS_OK) { /* hiredis frees the context after this */
        evtimer_del(s->timer);
        enter(s->link);
        side_failed(s, c->errstr[0] ? c->errstr : "cannot connect");
        leave(s->link);
        return;
    }
    s->pending = 0;
    s->failed = 0;
    if (u->password[0] != '\0') {
        if (u->user[0] != '\0')
            redisAsyncCommand(ac, on_handshake, NULL, "AUTH %s %s", u->user,
                              u->password);
        else
            redisAsyncCommand(ac, on_handshake, NULL, "AUTH %s", u->password);
        s->pending++;
    }
    if (u->db != 0) {
        redisAsyncCommand(ac, on_handshake, NULL, "SELECT %d", u->db);
        s->pending++;
    }
    redisAsyncCommand(ac, on_handshake, NULL, "CLIENT SETNAME %s", s->name);
    s->pending++;
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    side *s = c->data;
    char reason[256];

    if (s == NULL || c != s->ac) /* one the link dropped itself */
        return;
    if (s->link->closing) {
        s->ac = NULL; /* hiredis frees it after this */
        return;
    }
    evtimer_del(s->timer);
    if (s->failed)
        snprintf(reason, sizeof reason, "%s", s->error);
    else
        snprintf(reason, sizeof reason, "%s",
                 status != REDIS_OK && c->errstr[0] ? c->errstr
                                                    : "connection closed");
    enter(s->link);
    side_failed(s, reason);
    leave(s->link);
}

/* The side's timer: the connect/handshake deadline, or the retry. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    side *s = arg;

    (void)fd;
    (void)what;
    if (s->link->closing)
        return;
    enter(s->link);
    if (s->ac != NULL)
        side_kill(s, "connect timeout");
    else
        side_connect(s);
    leave(s->link);
}

/* events.c: one readable event on a context of ours (the probe tells a
 * silent Redis from a dead link by it). */
void rc__link_readable(redisAsyncContext *ac)
{
    side *s = ac->data;

    if (s != NULL)
        s->reads++;
}

/* ---- connecting -------------------------------------------------------- */

static void side_connect(side *s)
{
    rc_link *l = s->link;
    redisAsyncContext *ac;

    ac = l->url.path[0] != '\0' ? redisAsyncConnectUnix(l->url.path)
                                : redisAsyncConnect(l->url.host, l->url.port);
    if (ac == NULL || ac->err) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s",
                 ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        side_failed(s, reason);
        return;
    }
    ac->data = s;
    s->ac = ac;
    s->up = 0;
    s->failed = 0;
    if (rc__evl_attach(ac, l->base) != REDIS_OK ||
        redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK) {
        side_kill(s, "cannot attach to the event loop");
        return;
    }
    arm(s, l->o.connect_timeout_ms);
}

static void on_probe_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    side *s = ac->data;

    (void)privdata;
    if (r != NULL && s != NULL && ac == s->ac && !s->link->closing)
        s->link->probe_answered = 1;
}

/* Is an overdue probe lost, rather than late? A Redis that is merely slow
 * (DEBUG SLEEP, CLIENT PAUSE, a long fork or fsync) answers nothing on
 * either connection: the publishes queued meanwhile would still be
 * delivered, so it gets PROBE_STALL_INTERVALS more. Past those, or when
 * Redis answered the probe's PUBLISH while the sub side has read nothing
 * since it was sent, the links are dead. */
static int probe_lost(rc_link *l)
{
    if (l->late > PROBE_STALL_INTERVALS)
        return 1;
    return l->probe_answered && l->sub.reads == l->sub_reads0;
}

/* Every interval: the previous probe must have come back through the sub
 * side, or the links are dead though no error says so (half-open TCP). */
static void on_probe(evutil_socket_t fd, short what, void *arg)
{
    rc_link *l = arg;

    (void)fd;
    (void)what;
    if (!l->pub.up || !l->sub.up || l->closing)
        return;
    if (l->probes_seen < l->probes_sent) {
        l->late++;
        if (!probe_lost(l))
            return;
        enter(l);
        side_kill(&l->pub, "probe lost");
        if (!l->closing)
            side_kill(&l->sub, "probe lost");
        leave(l);
        return;
    }
    l->late = 0;
    l->probe_answered = 0;
    l->sub_reads0 = l->sub.reads;
    l->probes_sent++;
    redisAsyncCommand(l->pub.ac, on_probe_reply, NULL, "PUBLISH %s %lu", l->ctl,
                      l->probes_sent);
}

/* TLS, Sentinel and Cluster URLs go on the glue's own connections
 * (elink.c). RC_LINK_ENGINE=wire in the environment sends plain ones
 * there too (the tests run the link suite on both). */
static int on_wires(const rc_redis_url *u)
{
    const char *e = getenv("RC_LINK_ENGINE");

    return u->tls || u->kind != RC_URL_REDIS ||
           (e != NULL && strcmp(e, "wire") == 0);
}

int rc_link_open(rc_adapter *a, struct event_base *base,
                 const rc_link_options *opts, rc_link **out)
{
    char token[32];
    rc_link *l;
    int rv;

    if (a == NULL || base == NULL || opts == NULL || out == NULL)
        return RC_EINVAL;
    if ((l = calloc(1, sizeof *l)) == NULL)
        return RC_ENOMEM;
    if ((rv = rc_redis_url_parse(opts->url, &l->url)) == 0 &&
        (rv = rc__link_options(&l->o, opts)) == 0 && on_wires(&l->url))
        rv = rc__elink_open(l, a, base, &l->o, &l->url, &l->e);
    if (rv != 0 || l->e != NULL) {
        if (rv != 0)
            free(l);
        else
            *out = l;
        return rv;
    }
    l->a = a;
    l->base = base;
    l->rng = (unsigned long long)time(NULL) ^ (unsigned long long)getpid() ^
             (unsigned long long)(size_t)l;
    l->rng |= 1;
    /* The control channel carries a random token, so that two links never
     * share it, not even two processes given the same node id. */
    snprintf(token, sizeof token, "%016llx", l->rng);
    l->ctl = rc__client_name("ctl", rc_adapter_node_id(a), token);
    l->pub.link = l->sub.link = l;
    l->sub.is_sub = 1;
    l->pub.name = rc__client_name(rc_adapter_node_id(a), "pub", "");
    l->sub.name = rc__client_name(rc_adapter_node_id(a), "sub", "");
    l->pub.timer = evtimer_new(base, on_timer, &l->pub);
    l->sub.timer = evtimer_new(base, on_timer, &l->sub);
    l->probe = event_new(base, -1, EV_PERSIST, on_probe, l);
    l->closer = event_new(base, -1, 0, on_closer, l);
    l->ticker = rc__ticker_new(base, a);
    if (l->pub.timer == NULL || l->sub.timer == NULL || l->probe == NULL ||
        l->closer == NULL || l->ticker == NULL || l->ctl == NULL ||
        l->pub.name == NULL || l->sub.name == NULL) {
        finish_close(l);
        return RC_ENOMEM;
    }
    /* Linked from now on: until Redis answers, rooms are not ready and
     * publishes are counted as failed. */
    (void)rc_adapter_set_pub(a, NULL);
    (void)rc_adapter_set_sub(a, NULL);
    /* The first attempts run from the loop, so that no state callback
     * comes before this returns. */
    arm(&l->pub, 0);
    arm(&l->sub, 0);
    *out = l;
    return 0;
}

static void side_close(side *s)
{
    redisAsyncContext *ac = s->ac;
    int done;

    if (s->timer != NULL)
        event_free(s->timer);
    s->timer = NULL;
    hand_back(s);
    s->ac = NULL;
    if (ac == NULL)
        return;
    ac->data = NULL; /* its callbacks find no side from here on */
    /* One that is disconnecting is freed by hiredis: a free from inside
     * its teardown (an adapter callback it caused) would be a second. */
    if (ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))
        return;
    /* Last words, without waiting: what the adapter said while letting go
     * (the release of its node's lease). */
    if (ac->c.flags & REDIS_CONNECTED)
        (void)redisBufferWrite(&ac->c, &done);
    redisAsyncFree(ac);
}

static void finish_close(rc_link *l)
{
    if (l->probe != NULL)
        event_free(l->probe);
    if (l->closer != NULL)
        event_free(l->closer);
    rc__ticker_free(l->ticker);
    side_close(&l->sub);
    side_close(&l->pub);
    free(l->sub.name);
    free(l->pub.name);
    free(l->ctl);
    free(l);
}

static void on_closer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish_close(arg);
}

void rc_link_close(rc_link *l)
{
    if (l != NULL && l->e != NULL) {
        rc__elink_close(l->e); /* it frees l when done */
        return;
    }
    if (l == NULL || l->closing)
        return;
    l->o.state_cb = NULL; /* no callbacks from here on */
    rc__ticker_free(l->ticker);
    l->ticker = NULL;
    hand_back(&l->sub);
    hand_back(&l->pub);
    l->a = NULL; /* the host may free the adapter now */
    if (l->in_cb == 0) {
        finish_close(l);
        return;
    }
    /* Called from inside one of the link's callbacks, which still stands
     * on the link: finish on the next loop turn. */
    l->closing = 1;
    evtimer_del(l->pub.timer);
    evtimer_del(l->sub.timer);
    event_del(l->probe);
    event_active(l->closer, EV_TIMEOUT, 1);
}
