/*
 * Rooms: join, leave and the membership queries. A room's first local
 * member makes it wanted by the subscription state machine, its last one
 * leaving makes it unwanted (subscribe.c).
 */
#include "internal.h"

rc__room *rc__find_room(const rc_adapter *a, const char *room)
{
    return room ? rc__room_find(&a->reg, room, strlen(room)) : NULL;
}

void rc__after_leave(rc_adapter *a, rc__room *room)
{
    if (room->members == 0) {
        a->live_rooms--;
        rc__sub_reconcile(a, (rc__aroom *)room);
    }
}

int rc_room_join(rc_conn *conn, const char *room)
{
    rc_adapter *a;
    rc__room *r = NULL;
    int rv;

    if (conn == NULL || room == NULL || conn->base.removed)
        return RC_EINVAL;
    a = conn->a;
    rv = rc__join(&a->reg, &conn->base, room, strlen(room), &r);
    if (rv == 1 &&
        rc__presence_joined(a, rc__member_of(&a->reg, &conn->base, r)) != 0) {
        rc__leave(&a->reg, &conn->base, r);
        rv = RC_ENOMEM;
    }
    if (rv == 1 && r->members == 1) {
        a->live_rooms++;
        rc__sub_reconcile(a, (rc__aroom *)r);
    } else if (rv < 0 && r != NULL && r->members == 0) {
        rc__sub_reconcile(a, (rc__aroom *)r); /* a room made for nothing */
    }
    return rv;
}

int rc_room_leave(rc_conn *conn, const char *room)
{
    rc__room *r;

    if (conn == NULL || room == NULL)
        return RC_EINVAL;
    r = rc__find_room(conn->a, room);
    if (r == NULL || rc__leave(&conn->a->reg, &conn->base, r) == 0)
        return 0;
    rc__after_leave(conn->a, r);
    return 1;
}

/* Join or leave each room of a list: the arguments are checked first, so
 * that a bad list changes nothing. */
static int each_room(rc_conn *conn, const char *const *rooms, size_t n,
                     int (*op)(rc_conn *conn, const char *room))
{
    size_t i;
    int rv, done = 0;

    if (conn == NULL || (rooms == NULL && n > 0))
        return RC_EINVAL;
    for (i = 0; i < n; i++)
        if (rooms[i] == NULL)
            return RC_EINVAL;
    for (i = 0; i < n; i++) {
        rv = op(conn, rooms[i]);
        if (rv < 0)
            return rv;
        done += rv;
    }
    return done;
}

int rc_room_join_list(rc_conn *conn, const char *const *rooms, size_t n)
{
    return each_room(conn, rooms, n, rc_room_join);
}

int rc_room_leave_list(rc_conn *conn, const char *const *rooms, size_t n)
{
    return each_room(conn, rooms, n, rc_room_leave);
}

typedef struct leave_ctx {
    rc_adapter *a;
    void (*cb)(const char *room, void *user);
    void *user;
} leave_ctx;

static void left_one(rc__room *room, void *arg)
{
    leave_ctx *l = arg;

    /* Settle the room before the host runs (it may empty the room
     * itself); the walk holds frees, so its name lives on for the call.
     * The host may not be called once the adapter is closing. */
    rc__after_leave(l->a, room);
    if (l->cb != NULL && !l->a->closing)
        l->cb(room->name, l->user);
}

int rc_room_leave_all(rc_conn *conn, void (*cb)(const char *room, void *user),
                      void *user)
{
    leave_ctx l;
    int n;

    if (conn == NULL)
        return RC_EINVAL;
    l.a = conn->a;
    l.cb = cb;
    l.user = user;
    rc__enter(l.a);
    n = (int)rc__leave_all(&l.a->reg, &conn->base, left_one, &l);
    rc__exit(l.a);
    return n;
}

int rc_room_has(const rc_conn *conn, const char *room)
{
    const rc__room *r;

    if (conn == NULL || room == NULL)
        return 0;
    r = rc__find_room(conn->a, room);
    return r != NULL && rc__is_member(&conn->a->reg, &conn->base, r);
}

size_t rc_room_size(const rc_adapter *a, const char *room)
{
    const rc__room *r = a ? rc__find_room(a, room) : NULL;

    return r ? r->members : 0;
}

int rc_room_is_ready(const rc_adapter *a, const char *room)
{
    const rc__room *r = a ? rc__find_room(a, room) : NULL;

    return r != NULL && r->members > 0 &&
           (a->local_only || ((const rc__aroom *)r)->state == RC__SUBSCRIBED);
}

size_t rc_room_members(const rc_adapter *a, const char *room, rc_conn **out,
                       size_t max)
{
    const rc__room *r = a ? rc__find_room(a, room) : NULL;
    const rc__member *m;
    size_t n = 0;

    for (m = r ? r->first : NULL; m != NULL; m = m->room_next) {
        if (m->conn == NULL) /* removed during a walk */
            continue;
        if (n < max)
            out[n] = (rc_conn *)m->conn;
        n++;
    }
    return n;
}

size_t rc_conn_rooms(const rc_conn *conn, const char **out, size_t max)
{
    const rc__member *m;
    size_t n = 0;

    for (m = conn ? conn->base.first : NULL; m != NULL; m = m->conn_next) {
        if (n < max)
            out[n] = m->room->name;
        n++;
    }
    return n;
}

typedef struct names {
    const char **out;
    size_t max, n;
} names;

static int name_of(void *item, void *arg)
{
    rc__room *room = item;
    names *l = arg;

    if (room->members > 0) {
        if (l->n < l->max)
            l->out[l->n] = room->name;
        l->n++;
    }
    return 0;
}

size_t rc_adapter_rooms(const rc_adapter *a, const char **out, size_t max)
{
    names l;

    l.out = out;
    l.max = max;
    l.n = 0;
    if (a != NULL)
        rc__map_each(&a->reg.rooms, name_of, &l);
    return l.n;
}
