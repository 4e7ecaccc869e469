/*
 * Redis Cluster mode of the glue's links (elink.c): the slot map, a
 * command connection per master (and a subscription connection, ecsub.c),
 * commands routed by slot, redirected (MOVED, ASK) and retried (TRYAGAIN,
 * CLUSTERDOWN).
 * https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/
 *
 * The map comes from CLUSTER SLOTS, asked on a connection of its own to
 * the seeds and the known masters in turn: at the start, on a redirect,
 * when Redis drops a subscription by itself (a slot moved, a failover),
 * when a master's connection fails, every MAP_SLOW_MS, and every
 * MAP_FAST_MS while the map is stale or a master unreachable, so that a
 * promoted replica is found soon.
 *
 * The adapter's command side is up once every master of the first map
 * answers; each later reconnect of a master's command connection tells it
 * up again (a failover may have lost recent writes: the adapter then
 * reconciles its room state). A command for a master that is down fails
 * at once, as on one Redis; a redirected one waits for its new master's
 * connection, and fails if that fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecluster.h"

#define MAP_SLOW_MS 10000
#define MAP_FAST_MS 250
#define MAX_REDIRECTS 5
#define MAX_RETRIES 40 /* TRYAGAIN, CLUSTERDOWN: every RETRY_MS */
#define RETRY_MS 100

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
static void start(econn *c)
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
    if (cl->csub < 0 || !cl->nodes[cl->csub]->in_map)
        for (cl->csub = -1, i = 0; i < cl->nnodes && cl->csub < 0; i++)
            if (cl->nodes[i]->in_map)
                cl->csub = i;
    for (i = 0; i < cl->nnodes; i++) {
        cnode *n = cl->nodes[i];
        if (n->in_map) {
            start(&n->cmd);
            if (rc__cluster_needs_sub(l, n))
                start(&n->sub);
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

static void on_map_timer(evutil_socket_t fd, short what, void *arg)
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

/* ---- commands ------------------------------------------------------------ */

static void cmd_reply(void *priv, const redisReply *r);

static void cmd_free(ccmd *k, const redisReply *r)
{
    if (k->done != NULL)
        k->done(k->priv, r);
    free(k);
}

/* Send k to node n (ASKING first after an ASK). -1 if n cannot take it
 * now (down): the caller decides. */
static int cmd_send(ccmd *k, cnode *n)
{
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";

    k->node = n->idx;
    if (!n->cmd.ready)
        return -1;
    if (k->asking &&
        rc__wire_send(n->cmd.w, asking, sizeof asking - 1, NULL, NULL) != 0)
        return -1;
    return rc__wire_send(n->cmd.w, k->bytes, k->len, cmd_reply, k);
}

/* Send k again (a redirect) to n, or let it wait for n to be ready. */
static void cmd_redirect(ccmd *k, cnode *n)
{
    if (cmd_send(k, n) == 0)
        return;
    if (n->cmd.ready) { /* refused while up: out of memory */
        cmd_free(k, NULL);
        return;
    }
    k->next = n->waiting;
    n->waiting = k;
    start(&n->cmd);
}

/* "MOVED 3999 127.0.0.1:6381": the node named, or NULL. */
static cnode *redirect_target(rc__elink *l, const char *err, int *slot)
{
    char host[256];
    const char *sp, *colon;
    size_t n;

    if ((sp = strchr(err, ' ')) == NULL)
        return NULL;
    *slot = atoi(sp + 1);
    if ((sp = strchr(sp + 1, ' ')) == NULL ||
        (colon = strrchr(sp, ':')) == NULL)
        return NULL;
    n = (size_t)(colon - sp - 1);
    if (n == 0 || n >= sizeof host || *slot < 0 || *slot >= CLUSTER_SLOTS)
        return NULL;
    memcpy(host, sp + 1, n);
    host[n] = '\0';
    return rc__cluster_node(l, host, atoi(colon + 1));
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    rc__elink *l = arg;
    rc__cluster *cl = l->cl;
    ccmd *k = cl->retry, *next;

    (void)fd;
    (void)what;
    if (l->closing)
        return;
    l->in_cb++;
    cl->retry = NULL;
    for (; k != NULL; k = next) {
        next = k->next;
        if (cl->owner[k->slot] < 0)
            cmd_free(k, NULL);
        else
            cmd_redirect(k, cl->nodes[cl->owner[k->slot]]);
    }
    l->in_cb--;
}

/* An error reply: 1 if k was sent again or will be, else 0. */
static int cmd_again(ccmd *k, const char *err)
{
    rc__elink *l = k->l;
    rc__cluster *cl = l->cl;
    int moved = strncmp(err, "MOVED ", 6) == 0, slot;
    cnode *n;

    if (moved || strncmp(err, "ASK ", 4) == 0) {
        if (++k->redirects > MAX_REDIRECTS ||
            (n = redirect_target(l, err, &slot)) == NULL)
            return 0;
        if (moved) {
            cl->owner[slot] = (short)n->idx;
            rc__cluster_ask_map(l, 1);
        }
        k->asking = !moved;
        cmd_redirect(k, n);
        return 1;
    }
    if ((strncmp(err, "TRYAGAIN", 8) == 0 ||
         strncmp(err, "CLUSTERDOWN", 11) == 0) &&
        k->slot >= 0 && ++k->retries <= MAX_RETRIES) {
        k->asking = 0;
        k->next = cl->retry;
        cl->retry = k;
        if (!evtimer_pending(cl->retry_timer, NULL))
            rc__elink_arm(cl->retry_timer, RETRY_MS);
        return 1;
    }
    return 0;
}

static void cmd_reply(void *priv, const redisReply *r)
{
    ccmd *k = priv;

    if (r != NULL && r->type == REDIS_REPLY_ERROR && !k->l->closing &&
        cmd_again(k, r->str))
        return;
    cmd_free(k, r);
}

int rc__cluster_send(void *self, int slot, const char *cmd, size_t len,
                     rc_transport_done done, void *priv)
{
    rc__elink *l = self;
    rc__cluster *cl = l->cl;
    cnode *n = NULL;
    ccmd *k;
    int i;

    if (slot >= CLUSTER_SLOTS || !cl->map_ok)
        return -1;
    if (slot >= 0 && cl->owner[slot] >= 0)
        n = cl->nodes[cl->owner[slot]];
    for (i = 0; slot < 0 && i < cl->nnodes && n == NULL; i++)
        if (cl->nodes[i]->in_map && cl->nodes[i]->cmd.ready)
            n = cl->nodes[i];
    if (n == NULL || !n->cmd.ready || (k = malloc(sizeof *k + len)) == NULL)
        return -1;
    memset(k, 0, sizeof *k);
    k->l = l;
    k->slot = slot;
    k->done = done;
    k->priv = priv;
    k->len = len;
    memcpy(k->bytes, cmd, len);
    if (cmd_send(k, n) != 0) {
        free(k);
        return -1;
    }
    return 0;
}

/* ---- connection events ------------------------------------------------- */

void rc__cluster_ready(econn *c)
{
    rc__elink *l = c->l;
    rc__cluster *cl = l->cl;
    cnode *n = c->node;
    ccmd *k = n->waiting, *next;
    int i, all = 1;

    if (c->role == ROLE_SUB) {
        rc__cluster_sub_ready(l, n);
        return;
    }
    for (n->waiting = NULL; k != NULL; k = next) {
        next = k->next;
        if (cmd_send(k, n) != 0)
            cmd_free(k, NULL);
    }
    if (cl->pub_up && n->was_ready && l->a != NULL) {
        rc_transport_pub(l->a, 1); /* after a failover: reconcile */
    } else if (!cl->pub_up) {
        for (i = 0; i < cl->nnodes; i++)
            if (cl->nodes[i]->in_map && !cl->nodes[i]->cmd.ready)
                all = 0;
        if (all && cl->map_ok && l->a != NULL) {
            cl->pub_up = 1;
            rc_transport_pub(l->a, 1);
        }
    }
    n->was_ready = 1;
}

void rc__cluster_lost(econn *c, const char *why)
{
    rc__elink *l = c->l;
    cnode *n = c->node;
    ccmd *k = n->waiting, *next;

    rc__elink_state(l, RC_LINK_DOWN, why);
    rc__cluster_ask_map(l, 1);
    if (c->role == ROLE_SUB) {
        rc__cluster_lose_all(l, n);
        return;
    }
    for (n->waiting = NULL; k != NULL; k = next) {
        next = k->next;
        cmd_free(k, NULL);
    }
}

void rc__cluster_check_up(rc__elink *l)
{
    rc__cluster *cl = l->cl;
    int i;

    if (!cl->map_ok || cl->nnodes == 0)
        return;
    for (i = 0; i < cl->nnodes; i++) {
        cnode *n = cl->nodes[i];
        if (n->in_map &&
            (!n->cmd.ready || (rc__cluster_needs_sub(l, n) && !n->sub.ready)))
            return;
    }
    if (l->state != RC_LINK_UP)
        l->connects++;
    rc__elink_state(l, RC_LINK_UP, "up");
}

void rc__cluster_probe(rc__elink *l)
{
    rc__cluster *cl = l->cl;
    int i;

    for (i = 0; i < cl->nnodes; i++) {
        rc__econn_probe(&cl->nodes[i]->cmd);
        rc__econn_probe(&cl->nodes[i]->sub);
    }
}

/* ---- open and close ---------------------------------------------------- */

int rc__cluster_open(rc__elink *l)
{
    rc__cluster *cl = calloc(1, sizeof *cl);
    int s;

    if ((l->cl = cl) == NULL)
        return RC_ENOMEM;
    for (s = 0; s < CLUSTER_SLOTS; s++)
        cl->owner[s] = -1;
    cl->csub = -1;
    cl->map_timer = evtimer_new(l->base, on_map_timer, l);
    cl->retry_timer = evtimer_new(l->base, on_retry_timer, l);
    if (cl->map_timer == NULL || cl->retry_timer == NULL)
        return RC_ENOMEM;
    rc__elink_arm(cl->map_timer, 0);
    return 0;
}

static void free_cmds(ccmd *k)
{
    ccmd *next;

    for (; k != NULL; k = next) {
        next = k->next;
        cmd_free(k, NULL);
    }
}

void rc__cluster_close(rc__elink *l)
{
    rc__cluster *cl = l->cl;
    int i;

    if (cl == NULL)
        return;
    rc__wire_close(cl->mq);
    for (i = 0; i < cl->nnodes; i++) {
        cnode *n = cl->nodes[i];
        rc__econn_stop(&n->cmd);
        rc__econn_stop(&n->sub);
        event_free(n->cmd.timer);
        event_free(n->sub.timer);
        free_cmds(n->waiting);
        rc__cset_free(&n->chans);
        free(n);
    }
    free_cmds(cl->retry);
    rc__cset_free(&cl->parked);
    if (cl->map_timer != NULL)
        event_free(cl->map_timer);
    if (cl->retry_timer != NULL)
        event_free(cl->retry_timer);
    free(cl);
    l->cl = NULL;
}
