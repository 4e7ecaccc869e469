/*
 * The cluster links' map (ecluster.c): which master owns which slot, from
 * CLUSTER SLOTS, asked on a connection of its own to the seeds and the
 * known masters in turn; masters joining the map are connected, those
 * leaving it stopped, and channels moved to where the map says (ecsub.c).
 * When it is asked is said in ecluster.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecluster.h"

#define MAP_SLOW_MS 10000
#define MAP_FAST_MS 250

static void ask_next(rc__elink *l);

/* ---- nodes ------------------------------------------------------------- */

cnode *rc__cluster_node(rc__elink *l, const char *host, int port)
{
    rc__cluster *cl = l->cl;
    cnode *n;
    int i;

    for (i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i]->port == port && strcmp(cl->nodes[i]->host, host) == 0)
            return cl->nodes[i];
    if (cl->nnodes == CLUSTER_MAX_NODES || strlen(host) >= sizeof n->host ||
        (n = calloc(1, sizeof *n)) == NULL)
        return NULL;
    n->idx = cl->nnodes;
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    if (rc__econn_init(l, &n->cmd, ROLE_CMD, &n->sub, n) != 0 ||
        rc__econn_init(l, &n->sub, ROLE_SUB, &n->cmd, n) != 0) {
        if (n->cmd.timer != NULL)
            event_free(n->cmd.timer);
        free(n);
        return NULL;
    }
    memcpy(n->cmd.host, n->host, sizeof n->host);
    memcpy(n->sub.host, n->host, sizeof n->host);
    n->cmd.port = n->sub.port = port;
    cl->nodes[cl->nnodes++] = n;
    return n;
}

/* Start a connection that is neither up, nor connecting, nor waiting. */
void rc__econn_start(econn *c)
{
    if (c->w == NULL && !evtimer_pending(c->timer, NULL))
        rc__elink_arm(c->timer, 0);
}

/* ---- the map ------------------------------------------------------------ */

static void arm_map(rc__elink *l)
{
    rc__cluster *cl = l->cl;
    int i, degraded = cl->stale || !cl->map_ok;

    for (i = 0; i < cl->nnodes && !degraded; i++)
        if (cl->nodes[i]->in_map && !cl->nodes[i]->cmd.ready)
            degraded = 1;
    rc__elink_arm(cl->map_timer, degraded ? MAP_FAST_MS : MAP_SLOW_MS);
}

/* One range of CLUSTER SLOTS: [start, end, [host, port, ...], ...]. */
static cnode *range_owner(rc__elink *l, const redisReply *e, int *lo, int *hi)
{
    const redisReply *m;
    const char *host;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER)
        return NULL;
    m = e->element[2];
    if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
        m->element[0]->type != REDIS_REPLY_STRING ||
        m->element[1]->type != REDIS_REPLY_INTEGER)
        return NULL;
    *lo = (int)e->element[0]->integer;
    *hi = (int)e->element[1]->integer;
    if (*lo < 0 || *hi >= CLUSTER_SLOTS || *lo > *hi)
        return NULL;
    /* An empty or unknown endpoint is the host that answered. */
    host = m->element[0]->str;
    if (host[0] == '\0' || strcmp(host, "?") == 0)
        host = l->cl->mq_host;
    return rc__cluster_node(l, host, (int)m->element[1]->integer);
}

/* Masters that left the map stop (their channels are told lost); those
 * that joined start. */
static void settle_nodes(rc__elink *l, const char *was)
{
    rc__cluster *cl = l->cl;
    int i;

    for (i = 0; i < cl->nnodes; i++) {
        cnode *n = cl->nodes[i];
        n->in_map = 0;
    }
    for (i = 0; i < CLUSTER_SLOTS; i++)
        if (cl->owner[i] >= 0)
            cl->nodes[cl->owner[i]]->in_map = 1;
    for (i = 0; i < cl->nnodes; i++) {
        cnode *n = cl->nodes[i];
        if (n->in_map) {
            rc__econn_start(&n->cmd);
            rc__econn_start(&n->sub);
        } else if (was[i]) {
            rc__econn_stop(&n->cmd);
            rc__econn_stop(&n->sub);
            rc__cluster_lose_all(l, n);
        }
    }
}

static void apply_map(rc__elink *l, const redisReply *r)
{
    rc__cluster *cl = l->cl;
    char was[CLUSTER_MAX_NODES];
    int i, s, lo, hi, covered = 0, first = !cl->map_ok;
    cnode *n;

    for (i = 0; i < CLUSTER_MAX_NODES; i++)
        was[i] = i < cl->nnodes && cl->nodes[i]->in_map;
    for (s = 0; s < CLUSTER_SLOTS; s++)
        cl->owner[s] = -1;
    for (i = 0; i < (int)r->elements; i++) {
        if ((n = range_owner(l, r->element[i], &lo, &hi)) == NULL)
            continue;
        for (s = lo; s <= hi; s++)
            cl->owner[s] = (short)n->idx;
        covered += hi - lo + 1;
    }
    cl->map_ok = covered > 0;
    cl->stale = covered < CLUSTER_SLOTS; /* not all served: ask again soon */
    settle_nodes(l, was);
    rc__cluster_rehome(l);
    if (first && cl->map_ok && l->a != NULL)
        rc_transport_sub(l->a, 1);
    rc__cluster_check_up(l);
}

static void mq_done(rc__elink *l)
{
    rc__cluster *cl = l->cl;

    rc__wire_close(cl->mq);
    cl->mq = NULL;
    arm_map(l);
}

static void mq_answer(void *priv, const redisReply *r)
{
    rc__elink *l = priv;

    if (r == NULL)
        return; /* closed by whoever moves on */
    if (r->type == REDIS_REPLY_ARRAY) {
        apply_map(l, r);
        mq_done(l);
        return;
    }
    ask_next(l); /* an error: the next host */
}

static void mq_auth(void *priv, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        ask_next(priv);
}

static void mq_up(rc__wire *w, void *user)
{
    rc__elink *l = user;
    const rc_redis_url *u = &l->url;
    const char *v[3];
    size_t lens[3];
    char *cmd;
    int n = 0, len, rv = 0;

    if (u->password[0] != '\0') {
        v[n++] = "AUTH";
        if (u->user[0] != '\0')
            v[n++] = u->user;
        v[n++] = u->password;
        for (len = 0; len < n; len++)
            lens[len] = strlen(v[len]);
        if ((len = redisFormatCommandArgv(&cmd, n, v, lens)) < 0)
            rv = -1;
        else
            rv = rc__wire_send(w, cmd, (size_t)len, mq_auth, l);
        if (len >= 0)
            redisFreeCommand(cmd);
    }
    if (rv != 0 || rc__wire_send(w, "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n",
                                 28, mq_answer, l) != 0)
        ask_next(l);
}

static void mq_down(rc__wire *w, const char *why, void *user)
{
    (void)w;
    (void)why;
    ask_next(user);
}

static void mq_push(rc__wire *w, const redisReply *r, void *user)
{
    (void)w;
    (void)r;
    (void)user;
}

static const rc__wire_cbs mq_cbs = {mq_up, mq_down, mq_push};

/* Ask the next host (seeds, then known masters) for the map; after a
 * round of them all, wait for the timer. */
static void ask_next(rc__elink *l)
{
    rc__cluster *cl = l->cl;
    int hosts = l->url.nhosts + cl->nnodes, k;
    rc__wire_addr addr;
    char err[256];

    rc__wire_close(cl->mq);
    cl->mq = NULL;
    while (cl->mq == NULL && cl->mq_tried < hosts) {
        k = cl->mq_next++ % hosts;
        cl->mq_tried++;
        memset(&addr, 0, sizeof addr);
        addr.host = k < l->url.nhosts ? l->url.hosts[k].host
                                      : cl->nodes[k - l->url.nhosts]->host;
        addr.port = k < l->url.nhosts ? l->url.hosts[k].port
                                      : cl->nodes[k - l->url.nhosts]->port;
        addr.sni = l->url.sni[0] ? l->url.sni : NULL;
        snprintf(cl->mq_host, sizeof cl->mq_host, "%s", addr.host);
        cl->mq = rc__wire_open(l->base, l->dns, l->tls, &addr, &mq_cbs, l, err,
                               sizeof err);
    }
    if (cl->mq == NULL) {
        if (!cl->map_ok)
            rc__elink_state(l, RC_LINK_DOWN, "no cluster node gave the map");
        arm_map(l);
    }
}

void rc__cluster_ask_map(rc__elink *l, int stale)
{
    rc__cluster *cl = l->cl;

    if (stale)
        cl->stale = 1;
    if (cl->mq != NULL || l->closing)
        return;
    if (l->url.tls && l->tls == NULL && !rc__elink_tls(l)) {
        rc__elink_state(l, RC_LINK_DOWN, l->tls_err);
        arm_map(l);
        return;
    }
    cl->mq_tried = 0;
    ask_next(l);
}

void rc__cluster_map_timer(evutil_socket_t fd, short what, void *arg)
{
    rc__elink *l = arg;

    (void)fd;
    (void)what;
    if (l->closing)
        return;
    l->in_cb++;
    rc__cluster_ask_map(l, 0);
    l->in_cb--;
}
