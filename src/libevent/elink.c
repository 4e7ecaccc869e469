/*
 * Links on the glue's own wires (wire.c), for the URLs hiredis' async
 * layer cannot serve: rediss:// (TLS) and redis-sentinel:// here, the
 * cluster in ecluster.c. The adapter sees a transport
 * (roomcast/transport.h): commands go on the cmd connection, one channel
 * per (UN)SUBSCRIBE on the sub connection.
 *
 * Each connection runs the cycle of link.c's sides: (ask the sentinels
 * where the master is,) connect, handshake (AUTH, SELECT, CLIENT SETNAME,
 * and in Sentinel mode ROLE, which must say master), ready; on any
 * failure a backoff with jitter, then again; once one is ready the other
 * retries at once. A probe PINGs each ready connection every interval; a
 * PING unanswered for PROBE_STALL intervals more ends the connection
 * (a frozen path, or a half-open socket). A silent but slow Redis is
 * waited for that long: the publishes meanwhile wait in the output.
 *
 * Entry points (wire and timer callbacks) count themselves in in_cb; an
 * rc_link_close from inside one lets the adapter go at once and finishes
 * on the next loop turn, as link.c does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "ecluster.h"
#include "roomcast/transport.h"

#define PROBE_STALL 5

static const rc__wire_cbs conn_cbs;

static void enter(rc__elink *l)
{
    l->in_cb++;
}

static void leave(rc__elink *l)
{
    l->in_cb--;
}

void rc__elink_state(rc__elink *l, int state, const char *reason)
{
    int changed = state != l->state || strcmp(reason, l->reason) != 0;

    l->state = state;
    if (reason != l->reason)
        snprintf(l->reason, sizeof l->reason, "%s", reason);
    if (changed && l->o.state_cb != NULL)
        l->o.state_cb(l->owner, state, l->reason, l->o.user);
}

void rc__elink_arm(struct event *ev, unsigned ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (long)(ms % 1000) * 1000;
    evtimer_add(ev, &tv);
}

unsigned rc__elink_backoff(rc__elink *l, unsigned attempt)
{
    return rc__backoff(&l->rng, &l->o, attempt);
}

/* ---- the transport ---------------------------------------------------- */

static int t_send(void *self, int slot, const char *cmd, size_t len,
                  rc_transport_done done, void *priv)
{
    rc__elink *l = self;

    (void)slot;
    if (!l->cmd.ready || rc__wire_send(l->cmd.w, cmd, len, done, priv) != 0)
        return -1;
    l->st.commands++;
    return 0;
}

/* Redis' answer to one (UN)SUBSCRIBE; NULL when the connection went (the
 * adapter hears of that with the sub side going down). An error ends the
 * connection: everything is subscribed again after the backoff. */
static void on_confirm(void *priv, const redisReply *r)
{
    econn *c = priv;
    rc__elink *l = c->l;
    const redisReply *ch;
    char why[300];

    if (r == NULL || l->a == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(why, sizeof why, "SUBSCRIBE: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rc__econn_fail(c, why);
        return;
    }
    ch = r->element[1];
    if (strcmp(r->element[0]->str, "subscribe") == 0) {
        l->st.channels++;
        rc_transport_subscribed(l->a, ch->str, ch->len);
    } else {
        l->st.channels -= l->st.channels > 0;
        rc_transport_unsubscribed(l->a, ch->str, ch->len);
    }
}

static int t_subscribe(void *self, int on, const char *chan, size_t len)
{
    rc__elink *l = self;

    if (!l->sub.ready)
        return -1;
    return rc__wire_subscribe(l->sub.w, on ? "SUBSCRIBE" : "UNSUBSCRIBE", chan,
                              len, on_confirm, &l->sub);
}

/* ---- connections ------------------------------------------------------ */

static void check_up(rc__elink *l)
{
    if (l->cl != NULL) {
        rc__cluster_check_up(l);
        return;
    }
    if (!l->cmd.ready || !l->sub.ready)
        return;
    l->connects++;
    rc__elink_state(l, RC_LINK_UP, "up");
}

/* One side is ready, so Redis answers: the other retries now. */
static void prompt_other(econn *c)
{
    econn *o = c->peer;

    if (o == NULL || o->w != NULL || o->q != NULL || c->l->closing ||
        !evtimer_pending(o->timer, NULL))
        return;
    o->attempt = 0;
    rc__elink_arm(o->timer, 0);
}

void rc__econn_ready(econn *c)
{
    rc__elink *l = c->l;

    c->ready = 1;
    c->attempt = 0;
    c->ping_out = 0;
    c->late = 0;
    evtimer_del(c->timer);
    if (c->role == ROLE_WATCH) {
        rc__sentinel_watch_up(c);
        return;
    }
    prompt_other(c);
    if (c->node != NULL)
        rc__cluster_ready(c);
    else if (l->a != NULL)
        (c->role == ROLE_CMD ? rc_transport_pub : rc_transport_sub)(l->a, 1);
    check_up(l);
}

void rc__econn_fail(econn *c, const char *why)
{
    rc__elink *l = c->l;
    rc__wire *w = c->w, *q = c->q;
    int was = c->ready;

    c->w = c->q = NULL;
    c->ready = 0;
    if (c->node == NULL && was && c->role == ROLE_SUB) {
        l->st.lost += l->st.channels;
        l->st.channels = 0;
    }
    if (c->node == NULL && was && l->a != NULL && c->role != ROLE_WATCH)
        (c->role == ROLE_CMD ? rc_transport_pub : rc_transport_sub)(l->a, 0);
    rc__wire_close(q);
    rc__wire_close(w);
    if (l->closing)
        return;
    rc__elink_arm(c->timer, rc__elink_backoff(l, c->attempt++));
    if (c->role == ROLE_WATCH) { /* the next sentinel's turn */
        c->si = l->url.nhosts > 0 ? (c->si + 1) % l->url.nhosts : 0;
        return;
    }
    l->failures++;
    if (c->node != NULL)
        rc__cluster_lost(c, why);
    else
        rc__elink_state(l, RC_LINK_DOWN, why);
}

void rc__econn_stop(econn *c)
{
    rc__wire *w = c->w, *q = c->q;

    c->w = c->q = NULL;
    c->ready = 0;
    evtimer_del(c->timer);
    rc__wire_close(q);
    rc__wire_close(w);
}

/* ---- wire callbacks ----------------------------------------------------- */

static void on_wire_up(rc__wire *w, void *user)
{
    econn *c = user;

    (void)w;
    enter(c->l);
    rc__econn_handshake(c);
    leave(c->l);
}

static void on_wire_down(rc__wire *w, const char *why, void *user)
{
    econn *c = user;

    (void)w;
    enter(c->l);
    rc__econn_fail(c, why);
    leave(c->l);
}

static void on_push(rc__wire *w, const redisReply *r, void *user)
{
    econn *c = user;
    rc__elink *l = c->l;
    const char *k;

    (void)w;
    enter(l);
    if (c->role == ROLE_WATCH) {
        rc__sentinel_push(c, r);
    } else if (r->type == REDIS_REPLY_ERROR) {
        rc__econn_fail(c, r->str); /* LOADING, a kill: the server's word */
    } else if (c->node != NULL) {
        rc__cluster_push(c, r);
    } else if (c->role == ROLE_SUB && r->type == REDIS_REPLY_ARRAY &&
               r->elements >= 3 && l->a != NULL &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               r->element[1]->type == REDIS_REPLY_STRING) {
        k = r->element[0]->str;
        if (strcmp(k, "message") == 0 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            l->st.messages++;
            rc_transport_message(l->a, r->element[1]->str, r->element[1]->len,
                                 r->element[2]->str, r->element[2]->len);
        } else if (strcmp(k, "unsubscribe") == 0) {
            l->st.lost++;
            rc_transport_unsubscribed(l->a, r->element[1]->str,
                                      r->element[1]->len);
        }
    }
    leave(l);
}

static const rc__wire_cbs conn_cbs = {on_wire_up, on_wire_down, on_push};

void rc__econn_dial(econn *c)
{
    rc__elink *l = c->l;
    rc__wire_addr addr;
    char err[256];

    memset(&addr, 0, sizeof addr);
    if (l->url.path[0] != '\0' && c->role != ROLE_WATCH) {
        addr.path = l->url.path;
    } else {
        addr.host = c->host;
        addr.port = c->port;
        addr.sni = l->url.sni[0] ? l->url.sni : NULL;
    }
    c->w = rc__wire_open(l->base, l->dns, l->tls, &addr, &conn_cbs, c, err,
                         sizeof err);
    if (c->w == NULL)
        rc__econn_fail(c, err);
}

/* The timer: the connect or handshake took too long, or a backoff ended. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    econn *c = arg;
    rc__elink *l = c->l;

    (void)fd;
    (void)what;
    if (l->closing)
        return;
    enter(l);
    if (c->w != NULL || c->q != NULL) {
        rc__econn_fail(c, "connect timeout");
    } else if (l->url.tls && l->tls == NULL && !rc__elink_tls(l)) {
        rc__econn_fail(c, l->tls_err);
    } else {
        rc__elink_arm(c->timer, l->o.connect_timeout_ms);
        if (c->role == ROLE_WATCH) {
            rc__sentinel_watch_dial(c);
        } else if (c->node != NULL) {
            rc__econn_dial(c); /* its master's address */
        } else if (l->url.kind == RC_URL_SENTINEL) {
            rc__sentinel_resolve(c);
        } else {
            snprintf(c->host, sizeof c->host, "%s", l->url.host);
            c->port = l->url.port;
            rc__econn_dial(c);
        }
    }
    leave(l);
}

/* ---- the probe ---------------------------------------------------------- */

static void on_pong(void *priv, const redisReply *r)
{
    econn *c = priv;

    if (r != NULL) {
        c->ping_out = 0;
        c->pong_seq = c->ping_seq;
    }
}

/* A ping out while the server answered the peer's, sent no earlier, and
 * nothing came on this connection since: this one is dead (Redis is not
 * just slow). Otherwise a ping is waited for PROBE_STALL intervals. */
void rc__econn_probe(econn *c)
{
    rc__elink *l = c->l;
    const econn *peer = c->peer;

    if (!c->ready)
        return;
    if (c->ping_out) {
        if ((peer != NULL && peer->ready && peer->pong_seq >= c->ping_seq &&
             rc__wire_reads(c->w) == c->reads_at_ping) ||
            ++c->late > PROBE_STALL)
            rc__econn_fail(c, "probe lost");
        return;
    }
    if (rc__wire_ping(c->w, on_pong, c) == 0) {
        c->ping_out = 1;
        c->late = 0;
        c->ping_seq = l->probe_seq;
        c->reads_at_ping = rc__wire_reads(c->w);
    }
}

static void on_probe(evutil_socket_t fd, short what, void *arg)
{
    rc__elink *l = arg;

    (void)fd;
    (void)what;
    enter(l);
    l->probe_seq++;
    if (l->cl != NULL) {
        rc__cluster_probe(l);
    } else {
        rc__econn_probe(&l->cmd);
        rc__econn_probe(&l->sub);
        if (l->url.kind == RC_URL_SENTINEL)
            rc__econn_probe(&l->watch);
    }
    leave(l);
}

/* ---- open and close ----------------------------------------------------- */

size_t rc__elink_shards(const rc__elink *l, rc_link_shard *out, size_t cap)
{
    if (l->cl != NULL)
        return rc__cluster_shards(l, out, cap);
    if (cap == 0)
        return 1;
    *out = l->st;
    if (l->url.path[0] != '\0')
        snprintf(out->addr, sizeof out->addr, "%s", l->url.path);
    else
        snprintf(out->addr, sizeof out->addr, "%s:%d", l->cmd.host,
                 l->cmd.port);
    out->up = l->cmd.ready && l->sub.ready;
    out->slots = 16384;
    return 1;
}

int rc__elink_tls(rc__elink *l)
{
    const rc_redis_url *u = &l->url;

#ifndef RC_WITH_TLS
    snprintf(l->tls_err, sizeof l->tls_err,
             "TLS: roomcast was built without OpenSSL");
    (void)u;
    return 0;
#endif
    l->tls = rc__tls_ctx(u->cacert[0] ? u->cacert : NULL,
                         u->capath[0] ? u->capath : NULL,
                         u->cert[0] ? u->cert : NULL, u->key[0] ? u->key : NULL,
                         l->tls_err, sizeof l->tls_err);
    return l->tls != NULL;
}

static void finish(rc__elink *l)
{
    econn *cs[3] = {&l->cmd, &l->sub, &l->watch};
    int i;

    for (i = 0; i < 3; i++) {
        if (cs[i]->timer != NULL)
            event_free(cs[i]->timer);
        rc__wire_close(cs[i]->q);
        rc__wire_close(cs[i]->w);
    }
    rc__cluster_close(l);
    if (l->probe != NULL)
        event_free(l->probe);
    if (l->closer != NULL)
        event_free(l->closer);
    rc__ticker_free(l->ticker);
    if (l->dns != NULL)
        evdns_base_free(l->dns, 1);
#ifdef RC_WITH_TLS
    if (l->tls != NULL)
        rc__tls_ctx_free(l->tls);
#endif
    free(l->names[0]);
    free(l->names[1]);
    free(l->owner);
    free(l);
}

static void on_closer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg);
}

int rc__econn_init(rc__elink *l, econn *c, int role, econn *peer,
                   struct cnode *node)
{
    c->l = l;
    c->role = role;
    c->peer = peer;
    c->node = node;
    c->timer = evtimer_new(l->base, on_timer, c);
    return c->timer != NULL ? 0 : RC_ENOMEM;
}

static int setup(rc__elink *l)
{
    econn *cs[3] = {&l->cmd, &l->sub, &l->watch};
    struct timeval tv;
    int i;

    /* Without a resolv.conf: literal addresses (and the hosts file) only. */
    l->dns = evdns_base_new(l->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (l->dns == NULL)
        l->dns = evdns_base_new(l->base, 0);
    l->names[0] = rc__client_name(rc_adapter_node_id(l->a), "pub", "");
    l->names[1] = rc__client_name(rc_adapter_node_id(l->a), "sub", "");
    l->probe = event_new(l->base, -1, EV_PERSIST, on_probe, l);
    l->closer = event_new(l->base, -1, 0, on_closer, l);
    l->ticker = rc__ticker_new(l->base, l->a);
    for (i = 0; i < 3; i++)
        if (rc__econn_init(l, cs[i], i, i < 2 ? cs[1 - i] : NULL, NULL) != 0)
            return RC_ENOMEM;
    /* A CA or key that cannot be loaded is said by the link while down
     * (and tried again at each attempt: the file may come). */
    if (l->url.tls)
        (void)rc__elink_tls(l);
    if (l->dns == NULL || l->names[0] == NULL || l->names[1] == NULL ||
        l->probe == NULL || l->closer == NULL || l->ticker == NULL)
        return RC_ENOMEM;
    tv.tv_sec = l->o.probe_interval_ms / 1000;
    tv.tv_usec = (long)(l->o.probe_interval_ms % 1000) * 1000;
    event_add(l->probe, &tv);
    return 0;
}

int rc__elink_open(rc_link *owner, rc_adapter *a, struct event_base *base,
                   const rc_link_options *o, const rc_redis_url *url,
                   rc__elink **out)
{
    rc__elink *l = calloc(1, sizeof *l);
    rc_transport t;
    int rv;

    if (l == NULL)
        return RC_ENOMEM;
    l->owner = owner;
    l->a = a;
    l->base = base;
    l->o = *o;
    l->url = *url;
    l->rng = ((unsigned long long)time(NULL) ^ (unsigned long long)getpid() ^
              (unsigned long long)(size_t)l) |
             1;
    memset(&t, 0, sizeof t);
    t.send = url->kind == RC_URL_CLUSTER ? rc__cluster_send : t_send;
    t.subscribe =
        url->kind == RC_URL_CLUSTER ? rc__cluster_subscribe : t_subscribe;
    t.self = l;
    t.sharded = url->kind == RC_URL_CLUSTER && !url->classic;
    if ((rv = setup(l)) == 0 && url->kind == RC_URL_CLUSTER)
        rv = rc__cluster_open(l);
    if (rv == 0)
        rv = rc_adapter_set_transport(a, &t);
    if (rv != 0) {
        l->owner = NULL; /* the caller frees it */
        finish(l);
        return rv;
    }
    if (url->kind != RC_URL_CLUSTER) {
        rc__elink_arm(l->cmd.timer, 0);
        rc__elink_arm(l->sub.timer, 0);
    }
    if (url->kind == RC_URL_SENTINEL)
        rc__elink_arm(l->watch.timer, 0);
    *out = l;
    return 0;
}

void rc__elink_close(rc__elink *l)
{
    econn *cs[3] = {&l->cmd, &l->sub, &l->watch};
    int i;

    if (l == NULL || l->closing)
        return;
    l->o.state_cb = NULL;
    rc__ticker_free(l->ticker);
    l->ticker = NULL;
    if (l->a != NULL)
        (void)rc_adapter_set_transport(l->a, NULL);
    l->a = NULL; /* the host may free the adapter now */
    if (l->in_cb == 0) {
        finish(l);
        return;
    }
    l->closing = 1;
    for (i = 0; i < 3; i++)
        evtimer_del(cs[i]->timer);
    event_del(l->probe);
    event_active(l->closer, EV_TIMEOUT, 1);
}
