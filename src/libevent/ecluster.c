/*
 * Redis Cluster mode of the glue's links (elink.c): the slot map, a
 * command connection per master (and a subscription connection, ecsub.c),
 * commands routed by slot, redirected (MOVED, ASK) and retried (TRYAGAIN,
 * CLUSTERDOWN).
 * https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/
 *
 * The map (emap.c) comes from CLUSTER SLOTS, asked at the start, on a
 * redirect, when Redis drops a subscription by itself (a slot moved, a
 * failover), when a master's connection fails, every 10 s, and every
 * 250 ms while the map is stale or a master unreachable, so that a
 * promoted replica is found soon.
 *
 * The adapter's command side is up once every master of the first map
 * answers; each later connection of a master (back, or a promoted
 * replica) tells it up again: a failover may have lost recent writes, and
 * the adapter then reconciles its room state. A command for a master that is
 * down fails at once, as on one Redis; a redirected one waits for its new
 * master's connection, and fails if that fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecluster.h"

#define MAX_REDIRECTS 5
#define MAX_RETRIES 40 /* TRYAGAIN, CLUSTERDOWN: every RETRY_MS */
#define RETRY_MS 100

/* ---- commands ------------------------------------------------------------ */

static void cmd_reply(void *priv, const redisReply *r);

/* Lists of commands grow at the head: reversed, they are in the order the
 * commands were made, and are sent again in it (a poster's order). */
static ccmd *fifo(ccmd *k)
{
    ccmd *prev = NULL, *next;

    for (; k != NULL; k = next) {
        next = k->next;
        k->next = prev;
        prev = k;
    }
    return prev;
}

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
/* Does a command for k's slot wait to be retried (TRYAGAIN,
 * CLUSTERDOWN)? Then k waits behind it (1), so that it overtakes none. */
static int held(ccmd *k)
{
    rc__cluster *cl = k->l->cl;
    const ccmd *e;

    for (e = cl->retry; e != NULL && k->slot >= 0; e = e->next) {
        if (e->slot == k->slot) {
            k->asking = 0;
            k->next = cl->retry;
            cl->retry = k;
            return 1;
        }
    }
    return 0;
}

static void cmd_redirect(ccmd *k, cnode *n)
{
    if (held(k) || cmd_send(k, n) == 0)
        return;
    if (n->cmd.ready) { /* refused while up: out of memory */
        cmd_free(k, NULL);
        return;
    }
    k->next = n->waiting;
    n->waiting = k;
    rc__econn_start(&n->cmd);
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
    for (k = fifo(k); k != NULL; k = next) {
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
    n->st.commands++;
    if (held(k))
        return 0;
    if (cmd_send(k, n) != 0) {
        n->st.commands--;
        free(k);
        return -1;
    }
    return 0;
}

size_t rc__cluster_shards(const rc__elink *l, rc_link_shard *out, size_t cap)
{
    const rc__cluster *cl = l->cl;
    size_t k = 0;
    int i, s;

    for (i = 0; i < cl->nnodes; i++) {
        const cnode *n = cl->nodes[i];
        if (!n->in_map)
            continue;
        if (k < cap) {
            out[k] = n->st;
            snprintf(out[k].addr, sizeof out[k].addr, "%s:%d", n->host,
                     n->port);
            out[k].up = n->cmd.ready && n->sub.ready;
            out[k].channels = (unsigned long)n->chans.n;
            for (out[k].slots = 0, s = 0; s < CLUSTER_SLOTS; s++)
                out[k].slots += cl->owner[s] == n->idx;
        }
        k++;
    }
    return k;
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
    for (k = fifo(n->waiting), n->waiting = NULL; k != NULL; k = next) {
        next = k->next;
        if (!held(k) && cmd_send(k, n) != 0)
            cmd_free(k, NULL);
    }
    if (cl->pub_up && l->a != NULL) {
        /* A master back, or new (a promoted replica): it may lack recent
         * writes, so the adapter reconciles its room state. */
        rc_transport_pub(l->a, 1);
    } else if (!cl->pub_up) {
        for (i = 0; i < cl->nnodes; i++)
            if (cl->nodes[i]->in_map && !cl->nodes[i]->cmd.ready)
                all = 0;
        if (all && cl->map_ok && l->a != NULL) {
            cl->pub_up = 1;
            rc_transport_pub(l->a, 1);
        }
    }
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
        if (n->in_map && (!n->cmd.ready || !n->sub.ready))
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
    cl->map_timer = evtimer_new(l->base, rc__cluster_map_timer, l);
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
        rc__cset_free(&n->leaving);
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
