/*
 * The one port to Redis: every command roomcast sends and every reply it
 * reads pass through this file, and only this file includes hiredis. It
 * keeps its own state (rc__port, one watch per context) and tells the core
 * what happened through the rc__on_* calls; it changes no core state.
 *
 * A watch stands for one context handed to the adapter. It is the
 * privdata of every callback the port gives hiredis (never per-room
 * memory: hiredis keeps one callback per channel, replaced on resubscribe,
 * and calls each once more with a NULL reply when the context is freed),
 * and it counts them (held), so that it is freed only when hiredis can no
 * longer call it. It also wraps the context's event-loop hooks, forwarding
 * each to the loop's own, so that the port learns by itself when the
 * context is cleaned up (freed, or disconnected): a host that forgets
 * rc_adapter_set_pub(NULL) then never has the adapter write on a freed
 * context. Pub/Sub reply formats:
 * https://redis.io/docs/latest/develop/interact/pubsub/
 */
#include <stdint.h>

#include "port.h"

/* At most this many channels per (UN)SUBSCRIBE command. */
#define BATCH 256

#ifndef REDIS_REPLY_PUSH
#define REDIS_REPLY_PUSH 12 /* RESP3, hiredis 1.x: Pub/Sub replies */
#endif

/* ---- watches: the event-loop hooks ----------------------------------- */

static void fwd_add_read(void *p)
{
    ((rc__watch *)p)->loop.addRead(((rc__watch *)p)->loop.data);
}

static void fwd_del_read(void *p)
{
    ((rc__watch *)p)->loop.delRead(((rc__watch *)p)->loop.data);
}

static void fwd_add_write(void *p)
{
    ((rc__watch *)p)->loop.addWrite(((rc__watch *)p)->loop.data);
}

static void fwd_del_write(void *p)
{
    ((rc__watch *)p)->loop.delWrite(((rc__watch *)p)->loop.data);
}

#if HIREDIS_MAJOR >= 1
static void fwd_timer(void *p, struct timeval tv)
{
    ((rc__watch *)p)->loop.scheduleTimer(((rc__watch *)p)->loop.data, tv);
}
#endif

static void fwd_cleanup(void *p);

/* Put ours in front of the loop's hooks. A hook the loop does not have
 * stays NULL (hiredis checks each before calling it). */
static void hook(rc__watch *w)
{
    redisAsyncContext *ac = w->ac;

    w->loop = ac->ev;
    ac->ev.data = w;
    ac->ev.addRead = w->loop.addRead ? fwd_add_read : NULL;
    ac->ev.delRead = w->loop.delRead ? fwd_del_read : NULL;
    ac->ev.addWrite = w->loop.addWrite ? fwd_add_write : NULL;
    ac->ev.delWrite = w->loop.delWrite ? fwd_del_write : NULL;
#if HIREDIS_MAJOR >= 1
    ac->ev.scheduleTimer = w->loop.scheduleTimer ? fwd_timer : NULL;
#endif
    ac->ev.cleanup = fwd_cleanup;
    w->hooked = 1;
}

/* Give the loop its hooks back, unless someone wrapped them after us: then
 * ours stay and forward until the context is cleaned up. */
static void unhook(rc__watch *w)
{
    if (w->hooked && w->ac != NULL && w->ac->ev.data == w) {
        w->ac->ev = w->loop;
        w->hooked = 0;
    }
}

/* Free w once nothing can call it: the adapter let go of it, hiredis
 * holds no callback with it and its hooks are out of the context. */
void rc__watch_settle(rc__watch *w)
{
    rc__alloc mem;

    if (w->a != NULL || w->busy > 0 || w->held > 0)
        return;
    unhook(w);
    if (w->hooked && w->ac != NULL)
        return; /* wrapped over: freed when the context is cleaned up */
    mem = w->mem;
    rc__free(&mem, w);
}

static void retired_unlink(rc__port *port, rc__watch *w)
{
    rc__watch **p;

    for (p = &port->retired; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            return;
        }
    }
}

/* The adapter stops using w. While hiredis still holds callbacks with it
 * (replies to come, or NULL replies after a disconnect), it is kept on the
 * retired list, and what they report is still counted. */
static void let_go(rc__port *port, rc__watch *w)
{
    if (w->held > 0) {
        w->next = port->retired;
        port->retired = w;
        return;
    }
    w->a = NULL;
    rc__watch_settle(w);
}

/* One callback of w's is done with (answered, or dropped by hiredis). */
void rc__watch_release(rc__watch *w)
{
    rc__port *port = w->a ? &w->a->port : NULL;

    if (--w->held > 0)
        return;
    if (port != NULL && port->pub != w && port->sub != w) {
        retired_unlink(port, w);
        w->a = NULL;
    }
    rc__watch_settle(w);
}

/* The context is being freed or has disconnected: it takes no more
 * commands. hiredis may still call back after this (1.x calls the NULL
 * replies after the cleanup on a disconnect, 0.14 before it). */
static void fwd_cleanup(void *p)
{
    rc__watch *w = p;
    rc_adapter *a = w->a;

    /* No hook may run on the loop's freed data: a dead context gets none
     * (unless another wrapper sits on top of ours: its business). */
    if (w->ac->ev.data == w)
        memset(&w->ac->ev, 0, sizeof w->ac->ev);
    w->hooked = 0;
    if (w->loop.cleanup != NULL)
        w->loop.cleanup(w->loop.data);
    w->ac = NULL;
    w->busy++;
    if (a != NULL && a->port.pub == w) {
        a->port.pub = NULL;
        let_go(&a->port, w);
        rc__node_pub_changed(a);
    } else if (a != NULL && a->port.sub == w) {
        a->port.sub = NULL;
        let_go(&a->port, w);
        rc__on_sub_lost(a);
    }
    w->busy--;
    rc__watch_settle(w);
}

/* A watch for context ac, or (ac NULL) for a side of the transport. */
static rc__watch *watch_new(rc_adapter *a, redisAsyncContext *ac)
{
    rc__watch *w = rc__malloc(&a->mem, sizeof *w);

    if (w == NULL)
        return NULL;
    memset(w, 0, sizeof *w);
    w->ac = ac;
    w->a = a;
    w->mem = a->mem;
    if (ac != NULL)
        hook(w);
    else
        w->t = a->port.t;
    return w;
}

int rc__watch_live(const rc__watch *w)
{
    return w != NULL && (w->ac != NULL || w->t.send != NULL);
}

/* ---- handing contexts over ------------------------------------------- */

/* A retired watch of this context, taken off the list, or NULL. */
static rc__watch *take_retired(rc__port *port, redisAsyncContext *ac)
{
    rc__watch *w;

    for (w = port->retired; w != NULL; w = w->next) {
        if (w->ac == ac) {
            retired_unlink(port, w);
            return w;
        }
    }
    return NULL;
}

/* Make ac the context of one side. 1 if it changed, 0 if ac was already
 * in use, RC_ENOMEM, or RC_EMISUSE for a sub context given back while it
 * still holds our channels (hiredis would replace their callbacks
 * silently and the count of what it holds would be lost). */
static int set_side(rc_adapter *a, rc__watch **side, redisAsyncContext *ac,
                    int is_sub)
{
    rc__port *port = &a->port;
    rc__watch *w = NULL;

    if (port->t.send != NULL)
        return RC_EMISUSE; /* a transport is attached */
    if (*side != NULL ? (*side)->ac == ac : ac == NULL)
        return 0;
    if (ac != NULL && (w = take_retired(port, ac)) != NULL && is_sub) {
        w->next = port->retired;
        port->retired = w;
        return RC_EMISUSE;
    }
    if (ac != NULL && w == NULL && (w = watch_new(a, ac)) == NULL)
        return RC_ENOMEM;
    if (*side != NULL)
        let_go(port, *side);
    *side = w;
    return 1;
}

int rc__port_set_pub(rc_adapter *a, struct redisAsyncContext *ac)
{
    int rv = set_side(a, &a->port.pub, ac, 0);

    if (rv == 1 && ac != NULL)
        rc__port_load_scripts(a);
    return rv;
}

int rc__port_set_sub(rc_adapter *a, struct redisAsyncContext *ac)
{
    return set_side(a, &a->port.sub, ac, 1);
}

int rc__port_set_transport(rc_adapter *a, const rc_transport *t)
{
    rc__port *port = &a->port;

    if (t != NULL && port->t.send == NULL &&
        (port->pub != NULL || port->sub != NULL))
        return RC_EMISUSE; /* hiredis contexts are in use */
    if (t != NULL)
        port->t = *t;
    else
        memset(&port->t, 0, sizeof port->t);
    port->sharded = t != NULL && t->sharded;
    return 0;
}

int rc__port_tside(rc_adapter *a, int is_sub, int up)
{
    rc__port *port = &a->port;
    rc__watch **side = is_sub ? &port->sub : &port->pub, *w = NULL;

    if (port->t.send == NULL || (!up && *side == NULL))
        return 0;
    if (up && (w = watch_new(a, NULL)) == NULL)
        return RC_ENOMEM;
    if (*side != NULL) {
        memset(&(*side)->t, 0, sizeof(*side)->t); /* sends nothing more */
        let_go(port, *side);
    }
    *side = w;
    if (up && !is_sub)
        rc__port_load_scripts(a);
    return 1;
}

int rc__port_has_sub(const rc_adapter *a)
{
    return a->port.sub != NULL;
}

int rc__port_has_pub(const rc_adapter *a)
{
    const rc__watch *w = a->port.pub;

    if (w != NULL && w->ac == NULL)
        return w->t.send != NULL;
    return w != NULL && w->ac != NULL &&
           !(w->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}

int rc__port_sharded(const rc_adapter *a)
{
    return a->port.sharded;
}

void rc__port_close(rc_adapter *a)
{
    rc__port *port = &a->port;
    rc__watch *w;

    while ((w = port->retired) != NULL) {
        port->retired = w->next;
        w->a = NULL;
        rc__watch_settle(w);
    }
    if ((w = port->pub) != NULL) {
        port->pub = NULL;
        w->a = NULL;
        rc__watch_settle(w);
    }
    if ((w = port->sub) != NULL) {
        port->sub = NULL;
        w->a = NULL;
        rc__watch_settle(w);
    }
    rc__free(&a->mem, port->cmd);
    port->cmd = NULL;
    port->cmd_cap = 0;
}

/* ---- replies ---------------------------------------------------------- */

static int is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

/* A Pub/Sub reply: RESP2 array or RESP3 push of kind, channel, payload. */
static int pubsub_reply(const redisReply *r)
{
    return (r->type == REDIS_REPLY_ARRAY || r->type == REDIS_REPLY_PUSH) &&
           r->elements >= 3 && is_str(r->element[0]) && is_str(r->element[1]);
}

static void report(rc_adapter *a, const redisReply *reply)
{
    const char *kind = reply->element[0]->str;
    const redisReply *chan = reply->element[1], *body = reply->element[2];

    if (strcmp(kind, "message") == 0 && is_str(body))
        rc__on_message(a, chan->str, chan->len, body->str, body->len);
    else if (strcmp(kind, "subscribe") == 0)
        rc__on_subscribed(a, chan->str, chan->len);
    else if (strcmp(kind, "unsubscribe") == 0)
        rc__on_unsubscribed(a, chan->str, chan->len);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rc__watch *w = privdata;
    redisReply *reply = r;
    int gone;

    (void)ac;
    if (reply == NULL) { /* the context is being freed */
        rc__watch_release(w);
        return;
    }
    if (!pubsub_reply(reply))
        return;
    /* "unsubscribe" is the last reply hiredis sends to a channel's
     * callback: it drops the entry right after this call. */
    gone = strcmp(reply->element[0]->str, "unsubscribe") == 0;
    w->busy++;
    if (w->a != NULL && w->a->port.sub == w)
        report(w->a, reply);
    else if (w->a == NULL && w->ac != NULL &&
             strcmp(reply->element[0]->str, "subscribe") == 0)
        /* Confirmed after the adapter was freed: nobody wants it. */
        redisAsyncCommand(w->ac, NULL, NULL, "UNSUBSCRIBE %b",
                          reply->element[1]->str, reply->element[1]->len);
    w->busy--;
    if (gone)
        rc__watch_release(w);
    else
        rc__watch_settle(w);
}

static void on_pub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rc__watch *w = privdata;
    const redisReply *reply = r;

    (void)ac;
    if (w->a != NULL)
        rc__on_published(w->a, reply == NULL                        ? -1
                               : reply->type == REDIS_REPLY_INTEGER ? 1
                                                                    : 0);
    rc__watch_release(w);
}

static void t_on_pub_reply(void *priv, const redisReply *reply)
{
    on_pub_reply(NULL, (void *)(uintptr_t)reply, priv);
}

/* ---- commands --------------------------------------------------------- */

char *rc__resp_head(char *d, char c, size_t n)
{
    char digits[24];
    size_t k = 0;

    do
        digits[k++] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    *d++ = c;
    while (k > 0)
        *d++ = digits[--k];
    *d++ = '\r';
    *d++ = '\n';
    return d;
}

int rc__watch_send(rc__watch *w, redisCallbackFn *hfn, rc_transport_done tfn,
                   void *priv, int slot, const char *cmd, size_t len)
{
    int rv;

    if (w != NULL && w->ac != NULL)
        rv = redisAsyncFormattedCommand(w->ac, hfn, priv, cmd, len);
    else if (w != NULL && w->t.send != NULL)
        rv = w->t.send(w->t.self, slot, cmd, len, tfn, priv);
    else
        return RC_EMISUSE;
    if (rv != 0)
        return RC_EMISUSE;
    w->held++;
    return 0;
}

/* The channels of rooms[0..k) one after another in port->cmd, with their
 * lengths in argvlen[1..k]. */
static int channels(rc_adapter *a, rc__aroom *const *rooms, size_t k,
                    const char **argv, size_t *argvlen)
{
    rc__port *port = &a->port;
    size_t j, at = 0, len;

    for (j = 0; j < k; j++) {
        len = a->prefix_len + rooms[j]->base.name_len;
        if (rc__reserve(&a->mem, &port->cmd, &port->cmd_cap, at + len) != 0)
            return RC_ENOMEM;
        memcpy(port->cmd + at, a->prefix, a->prefix_len);
        memcpy(port->cmd + at + a->prefix_len, rooms[j]->base.name,
               rooms[j]->base.name_len);
        argvlen[j + 1] = len;
        at += len;
    }
    /* The buffer may have moved while growing: point into it now. */
    for (j = 0, at = 0; j < k; j++) {
        argv[j + 1] = port->cmd + at;
        at += argvlen[j + 1];
    }
    return 0;
}

/* A transport subscribes one channel at a time. */
static int t_channels(rc_adapter *a, rc__watch *w, int on,
                      rc__aroom *const *rooms, size_t n, size_t *sent)
{
    const char *argv[2];
    size_t argvlen[2], i;

    for (i = 0; i < n; i++) {
        if (channels(a, rooms + i, 1, argv, argvlen) != 0)
            return RC_ENOMEM;
        if (w->t.subscribe(w->t.self, on, argv[1], argvlen[1]) != 0)
            return RC_EMISUSE;
        (*sent)++;
    }
    return 0;
}

/* One command naming the channels of n rooms, in batches. The channel
 * entries SUBSCRIBE creates in hiredis each hold the watch once; an
 * UNSUBSCRIBE takes no callback (its replies go to those entries). */
static int channel_command(rc_adapter *a, const char *verb,
                           rc__aroom *const *rooms, size_t n, size_t *sent)
{
    rc__watch *w = a->port.sub;
    const char *argv[BATCH + 1];
    size_t argvlen[BATCH + 1], i, k;
    int subscribe = verb[0] == 'S';

    *sent = 0;
    if (w != NULL && w->ac == NULL && w->t.subscribe != NULL)
        return t_channels(a, w, subscribe, rooms, n, sent);
    if (w == NULL || w->ac == NULL)
        return RC_EMISUSE;
    argv[0] = verb;
    argvlen[0] = strlen(verb);
    for (i = 0; i < n; i += k) {
        k = n - i < BATCH ? n - i : BATCH;
        if (channels(a, rooms + i, k, argv, argvlen) != 0)
            return RC_ENOMEM;
        if (redisAsyncCommandArgv(w->ac, subscribe ? on_sub_reply : NULL,
                                  subscribe ? w : NULL, (int)k + 1, argv,
                                  argvlen) != REDIS_OK)
            return RC_EMISUSE;
        if (subscribe)
            w->held += k;
        *sent += k;
    }
    return 0;
}

int rc__port_subscribe(rc_adapter *a, rc__aroom *const *rooms, size_t n,
                       size_t *sent)
{
    return channel_command(a, "SUBSCRIBE", rooms, n, sent);
}

int rc__port_unsubscribe(rc_adapter *a, rc__aroom *const *rooms, size_t n,
                         size_t *sent)
{
    return channel_command(a, "UNSUBSCRIBE", rooms, n, sent);
}

/* PUBLISH <prefix><room> <env> (SPUBLISH when sharded), formatted here in
 * one pass into a reused buffer (hiredis' own formatting costs more than
 * the rest of a publish). */
int rc__port_publish(rc_adapter *a, const char *room, const char *env,
                     size_t len)
{
    static const char head[] = "*3\r\n$7\r\nPUBLISH\r\n";
    static const char shead[] = "*3\r\n$8\r\nSPUBLISH\r\n";
    rc__port *port = &a->port;
    rc__watch *w = port->pub;
    size_t room_len = strlen(room), chan_len = a->prefix_len + room_len;
    char *d, *chan;

    if (!rc__watch_live(w))
        return RC_EMISUSE;
    if (rc__reserve(&a->mem, &port->cmd, &port->cmd_cap,
                    sizeof shead + chan_len + len + 2 * (24 + 4)) != 0)
        return RC_ENOMEM;
    d = port->cmd;
    if (port->sharded)
        d = (char *)memcpy(d, shead, sizeof shead - 1) + sizeof shead - 1;
    else
        d = (char *)memcpy(d, head, sizeof head - 1) + sizeof head - 1;
    d = rc__resp_head(d, '$', chan_len);
    chan = d;
    memcpy(d, a->prefix, a->prefix_len);
    memcpy(d + a->prefix_len, room, room_len);
    d += chan_len;
    *d++ = '\r';
    *d++ = '\n';
    d = rc__resp_head(d, '$', len);
    memcpy(d, env, len);
    d += len;
    *d++ = '\r';
    *d++ = '\n';
    return rc__watch_send(w, on_pub_reply, t_on_pub_reply, w,
                          w->ac != NULL ? -1 : (int)rc__keyslot(chan, chan_len),
                          port->cmd, (size_t)(d - port->cmd));
}
