/*
 * The subscription state machine, all of it. Each room's subscription is
 * reconciled, never fired and forgotten: the wanted state is "subscribed
 * while the room has local members", and a room only moves towards it
 * when no command for it is in flight. So a leave and a rejoin before the
 * UNSUBSCRIBE reply end subscribed, and hiredis' per-channel entry is never
 * replaced while a reply may still delete it.
 *
 * A command that cannot be sent (hiredis refuses it while the context goes
 * away, or memory ran out) is counted in subscribe_errors and leaves the
 * room where it was; it is tried again at the next reply on the sub
 * context, the next change of context, and the next join or leave of that
 * room. A context that goes away is replaced by the host, and every
 * wanted room is then subscribed on the new one.
 */
#include "internal.h"

#define BATCH 256

static void room_event(rc_adapter *a, rc__aroom *room, int event)
{
    if (a->room_cb != NULL && !a->closing && room->base.members > 0)
        a->room_cb(a, room->base.name, event, a->room_user);
}

/* (UN)SUBSCRIBE rooms[0..n): those sent move on, the rest wait for the
 * next resync. 0 or the first error. */
static int send_rooms(rc_adapter *a, rc__aroom **rooms, size_t n, int sub)
{
    size_t i, sent = 0;
    int rv = sub ? rc__port_subscribe(a, rooms, n, &sent)
                 : rc__port_unsubscribe(a, rooms, n, &sent);

    for (i = 0; i < sent; i++)
        rooms[i]->state = sub ? RC__SUBSCRIBING : RC__UNSUBSCRIBING;
    if (sub)
        a->c.subscribes_sent += sent;
    else
        a->c.unsubscribes_sent += sent;
    if (rv != 0) {
        a->c.subscribe_errors += n - sent;
        a->resync = 1;
    }
    return rv;
}

void rc__sub_reconcile(rc_adapter *a, rc__aroom *room)
{
    int want = room->base.members > 0;

    switch (room->state) {
    case RC__UNSUBSCRIBED:
        if (want && rc__port_has_sub(a))
            send_rooms(a, &room, 1, 1);
        else if (!want)
            rc__room_drop(&a->reg, &room->base);
        break;
    case RC__SUBSCRIBED:
        if (!want)
            send_rooms(a, &room, 1, 0);
        break;
    case RC__SUBSCRIBING:
    case RC__UNSUBSCRIBING:
        break; /* the reply decides */
    }
}

typedef struct batch {
    rc_adapter *a;
    rc__aroom *rooms[BATCH];
    size_t n;
    int sub; /* collecting rooms to subscribe (1) or unsubscribe (0) */
    int rv;  /* the first error */
} batch;

static void flush(batch *b)
{
    int rv = b->n > 0 ? send_rooms(b->a, b->rooms, b->n, b->sub) : 0;

    if (b->rv == 0)
        b->rv = rv;
    b->n = 0;
}

/* Sending only queues bytes in hiredis: no callback runs, so the room
 * map stays as it is during the walk. */
static int collect(void *item, void *arg)
{
    rc__aroom *room = item;
    batch *b = arg;
    int want = room->base.members > 0;

    if ((b->sub && want && room->state == RC__UNSUBSCRIBED) ||
        (!b->sub && !want && room->state == RC__SUBSCRIBED)) {
        b->rooms[b->n++] = room;
        if (b->n == BATCH)
            flush(b);
    }
    return 0;
}

/* Send what the rooms want and no command is on its way for. */
static int resync(rc_adapter *a)
{
    batch b;

    a->resync = 0;
    if (!rc__port_has_sub(a) || a->closing)
        return 0;
    b.a = a;
    b.n = 0;
    b.rv = 0;
    for (b.sub = 1; b.sub >= 0; b.sub--) {
        rc__map_each(&a->reg.rooms, collect, &b);
        flush(&b);
    }
    return b.rv;
}

void rc__sub_retry(rc_adapter *a)
{
    if (a->resync)
        resync(a);
}

rc__aroom *rc__room_of_channel(rc_adapter *a, const char *chan, size_t len)
{
    if (len < a->prefix_len || memcmp(chan, a->prefix, a->prefix_len) != 0)
        return NULL;
    return (rc__aroom *)rc__room_find(&a->reg, chan + a->prefix_len,
                                      len - a->prefix_len);
}

void rc__on_subscribed(rc_adapter *a, const char *chan, size_t len)
{
    rc__aroom *room = rc__room_of_channel(a, chan, len);

    if (room == NULL || room->state != RC__SUBSCRIBING)
        return;
    room->state = RC__SUBSCRIBED;
    a->c.subscribes_confirmed++;
    /* The host may leave, remove or even free the adapter in its
     * callback: hold frees, and look at the room again afterwards. */
    rc__enter(a);
    rc__registry_hold(&a->reg);
    room_event(a, room, RC_ROOM_READY);
    if (!room->base.removed && !a->closing)
        rc__presence_ready(a, room);
    if (!room->base.removed && !a->closing)
        rc__hist_ready(a, room);
    if (!room->base.removed)
        rc__sub_reconcile(a, room);
    rc__sub_retry(a);
    rc__registry_release(&a->reg);
    rc__exit(a);
}

/* A subscription asked for or confirmed went away without being asked
 * to (a transport lost a cluster shard, or a slot moved): the host hears
 * RC_ROOM_LOST if the room was ready, and it is subscribed again. */
static void lost_one(rc_adapter *a, rc__aroom *room)
{
    int was = room->state;

    room->state = RC__UNSUBSCRIBED;
    a->c.rooms_lost++;
    rc__enter(a);
    rc__registry_hold(&a->reg);
    if (was == RC__SUBSCRIBED)
        room_event(a, room, RC_ROOM_LOST);
    if (!room->base.removed)
        rc__sub_reconcile(a, room);
    rc__registry_release(&a->reg);
    rc__exit(a);
}

void rc__on_unsubscribed(rc_adapter *a, const char *chan, size_t len)
{
    rc__aroom *room = rc__room_of_channel(a, chan, len);

    if (room != NULL && room->state == RC__UNSUBSCRIBING) {
        room->state = RC__UNSUBSCRIBED;
        a->c.unsubscribes_confirmed++;
        rc__sub_reconcile(a, room);
    } else if (room != NULL && room->state != RC__UNSUBSCRIBED) {
        lost_one(a, room);
    }
    rc__sub_retry(a);
}

/* Every room starts over as unsubscribed; rooms without members go.
 * Those that were subscribed are chained on *lost, without allocating, so
 * that RC_ROOM_LOST is told even when memory is short. */
static int lose(void *item, void *arg)
{
    rc__aroom *room = item, **lost = arg;

    if (room->state == RC__SUBSCRIBED && room->base.members > 0) {
        room->next_lost = *lost;
        *lost = room;
    }
    room->state = RC__UNSUBSCRIBED;
    return 0;
}

/* Drop the empty rooms. A drop shifts later entries of the map back into
 * the freed slot, so that slot is looked at again. */
static void drop_empty(rc_adapter *a)
{
    rc__map *m = &a->reg.rooms;
    rc__room *room;
    size_t i = 0;

    while (i < m->cap) {
        room = m->slots[i].hash ? m->slots[i].item : NULL;
        if (room != NULL && room->members == 0)
            rc__room_drop(&a->reg, room);
        else
            i++;
    }
}

/* The sub context is gone or replaced: the host hears RC_ROOM_LOST for
 * every room that was subscribed, after the map walk (a callback may
 * change the map) and with frees held off. */
static void forget(rc_adapter *a)
{
    rc__aroom *lost = NULL, *next;

    a->resync = 0;
    rc__map_each(&a->reg.rooms, lose, &lost);
    drop_empty(a);
    rc__registry_hold(&a->reg);
    for (; lost != NULL; lost = next) {
        next = lost->next_lost;
        if (!lost->base.removed)
            room_event(a, lost, RC_ROOM_LOST);
    }
    rc__registry_release(&a->reg);
}

void rc__on_sub_lost(rc_adapter *a)
{
    rc__enter(a);
    forget(a);
    rc__exit(a);
}

/* What both sides check before a context is handed over. */
static int handover_ok(const rc_adapter *a, const struct redisAsyncContext *ac)
{
    if (a == NULL)
        return RC_EINVAL;
    return ac != NULL && a->closing ? RC_EMISUSE : 0;
}

int rc_adapter_set_pub(rc_adapter *a, struct redisAsyncContext *pub)
{
    int rv = handover_ok(a, pub);

    if (rv == 0 && pub == NULL)
        rc__node_let_go(a); /* on the context, while it takes commands */
    if (rv == 0 && (rv = rc__port_set_pub(a, pub)) >= 0)
        a->local_only = 0; /* linked from now on, even while it is down */
    if (rv == 1) {
        rc__enter(a);
        rc__node_pub_changed(a);
        rc__exit(a);
    }
    return rv < 0 ? rv : 0;
}

int rc_adapter_set_sub(rc_adapter *a, struct redisAsyncContext *sub)
{
    int rv = handover_ok(a, sub);

    if (rv == 0)
        rv = rc__port_set_sub(a, sub);
    if (rv < 0)
        return rv;
    a->local_only = 0; /* linked from now on, even while it is down */
    if (rv == 0)       /* the context in use: only what failed is sent again */
        return a->resync ? resync(a) : 0;
    rc__enter(a);
    forget(a);
    rv = resync(a);
    rc__exit(a);
    return rv;
}

/* ---- a transport (roomcast/transport.h) ------------------------------ */

int rc_adapter_set_transport(rc_adapter *a, const rc_transport *t)
{
    int rv;

    if (a == NULL || (t != NULL && (t->send == NULL || t->subscribe == NULL)))
        return RC_EINVAL;
    if (t != NULL && a->closing)
        return RC_EMISUSE;
    /* Detached, or replaced: the old one's sides go down first. */
    rc_transport_pub(a, 0);
    rc_transport_sub(a, 0);
    if ((rv = rc__port_set_transport(a, t)) == 0 && t != NULL)
        a->local_only = 0;
    return rv;
}

void rc_transport_pub(rc_adapter *a, int up)
{
    if (a == NULL || (up && a->closing))
        return;
    if (!up)
        rc__node_let_go(a); /* while it may still take commands */
    if (rc__port_tside(a, 0, up) == 1) {
        rc__enter(a);
        rc__node_pub_changed(a);
        rc__exit(a);
    }
}

void rc_transport_sub(rc_adapter *a, int up)
{
    if (a == NULL || (up && a->closing))
        return;
    if (rc__port_tside(a, 1, up) != 1)
        return;
    rc__enter(a);
    forget(a);
    if (up)
        resync(a);
    rc__exit(a);
}

void rc_transport_message(rc_adapter *a, const char *chan, size_t chan_len,
                          const char *payload, size_t len)
{
    if (a != NULL && rc__port_has_sub(a))
        rc__on_message(a, chan, chan_len, payload, len);
}

void rc_transport_subscribed(rc_adapter *a, const char *chan, size_t len)
{
    if (a != NULL && rc__port_has_sub(a))
        rc__on_subscribed(a, chan, len);
}

void rc_transport_unsubscribed(rc_adapter *a, const char *chan, size_t len)
{
    if (a != NULL && rc__port_has_sub(a))
        rc__on_unsubscribed(a, chan, len);
}
