/*
 * Delivery to local members: the except rule, de-duplication, the
 * host's filter and the sinks. Host code runs here and may remove any
 * connection or free the adapter; the registry holds frees during the
 * walk, and each connection is looked at again after the filter.
 */
#include "internal.h"

/* One multi-room broadcast is one envelope, the same bytes on each room's
 * channel: has conn lately got these bytes through another room? The key
 * is nothing a client chooses alone (a message id is the client's), and
 * the same envelope again in the same room is a new message. */
static int seen_elsewhere(rc_conn *c, unsigned window, const rc__seen *k)
{
    unsigned i;

    for (i = 0; i < window; i++)
        if (c->recent[i].env == k->env)
            return c->recent[i].room != k->room;
    c->recent[c->recent_next] = *k;
    c->recent_next = (c->recent_next + 1) % window;
    return 0;
}

/* A multi-room broadcast reaches a connection once. The outermost one
 * stamps connections; one made from inside a sink during it must not
 * overwrite those stamps, so it looks for the connection in the rooms
 * it has already walked instead. */
static int already_had(rc__delivery *d, rc_conn *c)
{
    const rc__room *r;
    size_t i;

    if (d->seq != 0) {
        if (c->seq == d->seq)
            return 1;
        c->seq = d->seq;
        return 0;
    }
    for (i = 0; i < d->room; i++) {
        r = rc__find_room(d->a, d->rooms[i]);
        if (r != NULL && rc__is_member(&d->a->reg, &c->base, r))
            return 1;
    }
    return 0;
}

/* Should c get d at all (before the filter)? */
static int wanted(rc__delivery *d, rc_conn *c)
{
    rc_adapter *a = d->a;

    if (c == d->except || ((d->seq != 0 || d->room > 0) && already_had(d, c)))
        return 0;
    if (d->key.env != 0 && seen_elsewhere(c, a->dedup_window, &d->key)) {
        a->c.duplicates++;
        return 0;
    }
    return 1;
}

int rc__deliver_one(rc__member *m, void *arg)
{
    rc__delivery *d = arg;
    rc_adapter *a = d->a;
    rc_conn *c = (rc_conn *)m->conn;

    if (a->closing)
        return 1;
    if (d->pseq > 0 && !rc__presence_wants(m, d->pseq))
        return 0;
    if (!wanted(d, c))
        return 0;
    if (a->filter != NULL &&
        a->filter(c, d->msg, d->meta, d->meta_len, a->filter_user) != 0) {
        a->c.filtered++;
        return 0;
    }
    /* The filter may have removed c, or freed the adapter. */
    if (a->closing)
        return 1;
    if (c->base.removed)
        return 0;
    if (c->sink(c, d->frame, d->msg, c->user) == 0) {
        a->c.delivered++;
        d->count++;
    } else {
        a->c.sink_errors++;
    }
    return 0;
}

void rc__deliver(rc__delivery *d, const char *const *rooms, size_t n)
{
    rc_adapter *a = d->a;
    rc__room *r;
    int stamping = n > 1 && !a->stamping;

    d->rooms = rooms;
    if (stamping) {
        d->seq = ++a->seq;
        a->stamping = 1;
    }
    /* Frees wait until every room is walked: rooms[i] stay findable. */
    rc__registry_hold(&a->reg);
    for (d->room = 0; d->room < n && !a->closing; d->room++) {
        r = rc__find_room(a, rooms[d->room]);
        if (r != NULL && r->members > 0)
            rc__room_walk(&a->reg, r, rc__deliver_one, d);
    }
    rc__registry_release(&a->reg);
    if (stamping)
        a->stamping = 0;
}
