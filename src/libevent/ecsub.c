/*
 * Subscriptions of the cluster links (ecluster.c): one channel per
 * SSUBSCRIBE on the master owning its slot (classic mode: SUBSCRIBE, on
 * the same master). Each master keeps the set of channels it holds
 * for us, asked or confirmed; a confirmation counts only while the
 * channel is still there (it may have moved since it was asked).
 *
 * A channel is told lost to the adapter (which tells RC_ROOM_LOST and
 * subscribes it again) when its master's subscription connection fails,
 * when Redis drops it by itself (a slot migrated, a failover: an unasked
 * sunsubscribe), and when a new map gives its slot to another master.
 * While the map is stale, channels asked for wait (parked) and are placed
 * when the new map comes, so that they do not go to the old master.
 */
#include <stdlib.h>
#include <string.h>

#include "ecluster.h"

cnode *rc__cluster_home(rc__elink *l, const char *chan, size_t len)
{
    rc__cluster *cl = l->cl;
    int owner;

    /* Classic subscriptions could sit anywhere (Redis relays every
     * PUBLISH to every node); at the slot's master they spread the
     * deliveries over the masters as sharded ones do. */
    if (!cl->map_ok)
        return NULL;
    owner = cl->owner[rc_keyslot(chan, len)];
    return owner >= 0 ? cl->nodes[owner] : NULL;
}

static void on_confirm(void *priv, const redisReply *r)
{
    cnode *n = priv;
    rc__elink *l = n->sub.l;
    const redisReply *ch;

    if (r == NULL || l->a == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) { /* MOVED: the map moved */
        rc__cluster_ask_map(l, 1);
        rc__econn_fail(&n->sub, r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        rc__econn_fail(&n->sub, "SSUBSCRIBE: unexpected reply");
        return;
    }
    ch = r->element[1];
    if (strstr(r->element[0]->str, "unsubscribe") != NULL) {
        /* Asked by the adapter, or a channel moving to its new master
         * (told lost only now: every message this master had for it came
         * first, so none overtakes the new master's). */
        rc__cset_del(&n->leaving, ch->str, ch->len);
        rc_transport_unsubscribed(l->a, ch->str, ch->len);
    } else if (rc__cset_has(&n->chans, ch->str, ch->len))
        rc_transport_subscribed(l->a, ch->str, ch->len);
}

static int send_sub(rc__elink *l, cnode *n, int on, const char *chan,
                    size_t len)
{
    const char *verb = l->url.classic ? (on ? "SUBSCRIBE" : "UNSUBSCRIBE")
                                      : (on ? "SSUBSCRIBE" : "SUNSUBSCRIBE");

    return rc__wire_subscribe(n->sub.w, verb, chan, len, on_confirm, n);
}

int rc__cluster_place(rc__elink *l, const char *chan, size_t len)
{
    rc__cluster *cl = l->cl;
    cnode *n = cl->stale ? NULL : rc__cluster_home(l, chan, len);

    if (n == NULL)
        return rc__cset_add(&cl->parked, chan, len);
    if (rc__cset_add(&n->chans, chan, len) != 0)
        return -1;
    if (n->sub.ready && send_sub(l, n, 1, chan, len) != 0) {
        rc__cset_del(&n->chans, chan, len);
        return -1;
    }
    return 0;
}

int rc__cluster_subscribe(void *self, int on, const char *chan, size_t len)
{
    rc__elink *l = self;
    rc__cluster *cl = l->cl;
    cnode *n;
    int i;

    if (on)
        return rc__cluster_place(l, chan, len);
    for (i = 0; i < cl->nnodes; i++) {
        n = cl->nodes[i];
        if (!rc__cset_has(&n->chans, chan, len))
            continue;
        if (!n->sub.ready)
            return -1;
        if (send_sub(l, n, 0, chan, len) != 0)
            return -1;
        rc__cset_del(&n->chans, chan, len);
        return 0;
    }
    return -1;
}

void rc__cluster_push(econn *c, const redisReply *r)
{
    rc__elink *l = c->l;
    const redisReply *ch;
    const char *k;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING || l->a == NULL)
        return;
    k = r->element[0]->str;
    ch = r->element[1];
    if ((strcmp(k, "smessage") == 0 || strcmp(k, "message") == 0) &&
        r->elements >= 3 && r->element[2]->type == REDIS_REPLY_STRING) {
        c->node->st.messages++;
        rc_transport_message(l->a, ch->str, ch->len, r->element[2]->str,
                             r->element[2]->len);
    } else if (strstr(k, "unsubscribe") != NULL &&
               rc__cset_del(&c->node->chans, ch->str, ch->len)) {
        /* Redis dropped it: a slot moved, a failover. */
        c->node->st.lost++;
        rc__cluster_ask_map(l, 1);
        rc_transport_unsubscribed(l->a, ch->str, ch->len);
    }
}

/* Tell the adapter the channels of all[0..n) are lost, and free them. */
static void tell_lost(rc__elink *l, cchan **all, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (l->a != NULL)
            rc_transport_unsubscribed(l->a, all[i]->s, all[i]->len);
        free(all[i]);
    }
    free(all);
}

void rc__cluster_lose_all(rc__elink *l, cnode *n)
{
    size_t k;
    cchan **all = rc__cset_take(&n->chans, &k);

    n->st.lost += k;
    tell_lost(l, all, k);
    all = rc__cset_take(&n->leaving, &k); /* their release will not come */
    tell_lost(l, all, k);
}

void rc__cluster_rehome(rc__elink *l)
{
    rc__cluster *cl = l->cl;
    cchan **all, **lost = NULL, **grown;
    size_t k, i, nlost = 0;
    int j;

    for (j = 0; j < cl->nnodes; j++) {
        cnode *n = cl->nodes[j];
        all = rc__cset_take(&n->chans, &k);
        for (i = 0; i < k; i++) {
            if (rc__cluster_home(l, all[i]->s, all[i]->len) == n &&
                rc__cset_add(&n->chans, all[i]->s, all[i]->len) == 0) {
                free(all[i]);
                continue;
            }
            n->st.lost++;
            if (n->sub.ready && /* held there: lost once released */
                rc__cset_add(&n->leaving, all[i]->s, all[i]->len) == 0 &&
                send_sub(l, n, 0, all[i]->s, all[i]->len) == 0) {
                free(all[i]);
                continue;
            }
            rc__cset_del(&n->leaving, all[i]->s, all[i]->len);
            grown = realloc(lost, (nlost + 1) * sizeof *lost);
            if (grown == NULL) {
                free(all[i]);
                continue;
            }
            lost = grown;
            lost[nlost++] = all[i];
        }
        free(all);
    }
    all = rc__cset_take(&cl->parked, &k);
    for (i = 0; i < k; i++) {
        if (rc__cluster_place(l, all[i]->s, all[i]->len) != 0)
            (void)rc__cset_add(&cl->parked, all[i]->s, all[i]->len);
        free(all[i]);
    }
    free(all);
    tell_lost(l, lost, nlost);
}

void rc__cluster_sub_ready(rc__elink *l, cnode *n)
{
    size_t i;

    for (i = 0; i < n->chans.cap; i++) {
        const cchan *e = n->chans.e[i];
        if (e != NULL && e != CSET_TOMB &&
            send_sub(l, n, 1, e->s, e->len) != 0) {
            rc__econn_fail(&n->sub, "out of memory");
            return;
        }
    }
}
