/*
 * Local connections, rooms and memberships: three hash maps and two
 * intrusive lists per membership, so that join, leave and lookup are O(1)
 * on average and listings come in join order.
 *
 * Sinks run inside room walks and may remove anything, including the
 * member a walk will visit next. So while a walk is running, removal only
 * marks and unlinks what no walk can reach (maps, the connection's list);
 * the room list keeps removed members linked until the outermost walk
 * ends, and their memory is freed then.
 */
#include "internal.h"

void rc__registry_init(rc__registry *r, const rc__alloc *mem, uint64_t seed,
                       size_t room_size)
{
    memset(r, 0, sizeof *r);
    r->mem = mem;
    r->room_size = room_size > sizeof(rc__room) ? room_size : sizeof(rc__room);
    rc__map_init(&r->conns, mem, seed);
    rc__map_init(&r->rooms, mem, seed ^ UINT64_C(0x5bd1e9955bd1e995));
    rc__map_init(&r->members, mem, seed ^ UINT64_C(0x2545f4914f6cdd1d));
}

static int free_member(void *item, void *arg)
{
    rc__free(arg, item);
    return 0;
}

static int free_room(void *item, void *arg)
{
    rc__room *room = item;

    rc__free(arg, room->name);
    rc__free(arg, room);
    return 0;
}

static int free_conn(void *item, void *arg)
{
    rc__conn *c = item;

    rc__free(arg, c->id);
    rc__free(arg, c);
    return 0;
}

/* Free what removals deferred; called when the outermost walk ends. */
static void sweep(rc__registry *r)
{
    rc__member *m;
    rc__room *room;
    rc__conn *c;

    while ((m = r->dead_members) != NULL) {
        r->dead_members = m->conn_next;
        if (m->room_prev != NULL)
            m->room_prev->room_next = m->room_next;
        else
            m->room->first = m->room_next;
        if (m->room_next != NULL)
            m->room_next->room_prev = m->room_prev;
        else
            m->room->last = m->room_prev;
        rc__free(r->mem, m);
    }
    while ((room = r->dead_rooms) != NULL) {
        r->dead_rooms = room->next_dead;
        free_room(room, (void *)r->mem);
    }
    while ((c = r->dead_conns) != NULL) {
        r->dead_conns = c->next_dead;
        free_conn(c, (void *)r->mem);
    }
}

void rc__registry_free(rc__registry *r)
{
    sweep(r);
    rc__map_each(&r->members, free_member, (void *)r->mem);
    rc__map_each(&r->rooms, free_room, (void *)r->mem);
    rc__map_each(&r->conns, free_conn, (void *)r->mem);
    rc__map_free(&r->members);
    rc__map_free(&r->rooms);
    rc__map_free(&r->conns);
}

int rc__conn_add(rc__registry *r, const char *id, size_t id_len, size_t size,
                 rc__conn **out)
{
    rc__conn *c;

    if (rc__map_get(&r->conns, id, id_len) != NULL)
        return RC_EEXIST;
    c = rc__malloc(r->mem, size);
    if (c == NULL)
        return RC_ENOMEM;
    memset(c, 0, size);
    c->id = rc__strndup(r->mem, id, id_len);
    c->id_len = id_len;
    if (c->id == NULL || rc__map_put(&r->conns, c->id, id_len, c) != 0) {
        free_conn(c, (void *)r->mem);
        return RC_ENOMEM;
    }
    *out = c;
    return 0;
}

rc__conn *rc__conn_find(const rc__registry *r, const char *id, size_t len)
{
    return rc__map_get(&r->conns, id, len);
}

void rc__conn_remove(rc__registry *r, rc__conn *c,
                     void (*left)(rc__room *room, void *arg), void *arg)
{
    rc__leave_all(r, c, left, arg);
    rc__map_del(&r->conns, c->id, c->id_len);
    c->removed = 1;
    if (r->walking > 0) {
        c->next_dead = r->dead_conns;
        r->dead_conns = c;
    } else {
        free_conn(c, (void *)r->mem);
    }
}

rc__room *rc__room_find(const rc__registry *r, const char *name, size_t len)
{
    return rc__map_get(&r->rooms, name, len);
}

static rc__room *room_get(rc__registry *r, const char *name, size_t len)
{
    rc__room *room = rc__map_get(&r->rooms, name, len);

    if (room != NULL)
        return room;
    room = rc__malloc(r->mem, r->room_size);
    if (room == NULL)
        return NULL;
    memset(room, 0, r->room_size);
    room->name = rc__strndup(r->mem, name, len);
    room->name_len = len;
    if (room->name == NULL || rc__map_put(&r->rooms, room->name, len, room)) {
        free_room(room, (void *)r->mem);
        return NULL;
    }
    return room;
}

/* The membership map's key: the (conn, room) pointer pair. */
#define PAIR_LEN (sizeof(rc__conn *) + sizeof(rc__room *))

static rc__member *member_find(const rc__registry *r, const rc__conn *c,
                               const rc__room *room)
{
    rc__member probe; /* the key has the layout of a stored member's */

    probe.conn = (rc__conn *)c;
    probe.room = (rc__room *)room;
    return rc__map_get(&r->members, &probe.conn, PAIR_LEN);
}

int rc__is_member(const rc__registry *r, const rc__conn *c,
                  const rc__room *room)
{
    return member_find(r, c, room) != NULL;
}

rc__member *rc__member_of(const rc__registry *r, const rc__conn *c,
                          const rc__room *room)
{
    return member_find(r, c, room);
}

int rc__join(rc__registry *r, rc__conn *c, const char *name, size_t len,
             rc__room **room_out)
{
    rc__room *room = room_get(r, name, len);
    rc__member *m;

    if (room == NULL)
        return RC_ENOMEM;
    *room_out = room;
    if (member_find(r, c, room) != NULL)
        return 0;
    m = rc__malloc(r->mem, sizeof *m);
    if (m == NULL)
        return RC_ENOMEM;
    memset(m, 0, sizeof *m);
    m->conn = c;
    m->room = room;
    if (rc__map_put(&r->members, &m->conn, PAIR_LEN, m) != 0) {
        rc__free(r->mem, m);
        return RC_ENOMEM;
    }
    m->room_prev = room->last;
    if (room->last != NULL)
        room->last->room_next = m;
    else
        room->first = m;
    room->last = m;
    room->members++;
    m->conn_prev = c->last;
    if (c->last != NULL)
        c->last->conn_next = m;
    else
        c->first = m;
    c->last = m;
    c->rooms++;
    return 1;
}

int rc__leave(rc__registry *r, rc__conn *c, rc__room *room)
{
    rc__member *m = member_find(r, c, room);

    if (m == NULL)
        return 0;
    if (m->ext != NULL && r->member_gone != NULL)
        r->member_gone(m, r->gone_arg);
    rc__map_del(&r->members, &m->conn, PAIR_LEN);
    if (m->conn_prev != NULL)
        m->conn_prev->conn_next = m->conn_next;
    else
        c->first = m->conn_next;
    if (m->conn_next != NULL)
        m->conn_next->conn_prev = m->conn_prev;
    else
        c->last = m->conn_prev;
    c->rooms--;
    room->members--;
    m->conn = NULL; /* removed */
    /* Unlink from the room now, or when the walks that may stand on it
     * are over. */
    m->conn_next = r->dead_members;
    r->dead_members = m;
    if (r->walking == 0)
        sweep(r);
    return 1;
}

size_t rc__leave_all(rc__registry *r, rc__conn *c,
                     void (*left)(rc__room *room, void *arg), void *arg)
{
    rc__member *m, *last = c->last;
    rc__room *room;
    size_t n = 0;
    int done = 0;

    /* left() may remove c or anything else: hold frees until the end, and
     * stop at the last room c was in when the call began. */
    rc__registry_hold(r);
    while (!done && (m = c->first) != NULL) {
        done = m == last;
        room = m->room;
        rc__leave(r, c, room);
        n++;
        if (left != NULL)
            left(room, arg);
    }
    rc__registry_release(r);
    return n;
}

void rc__room_drop(rc__registry *r, rc__room *room)
{
    if (r->room_gone != NULL)
        r->room_gone(room, r->gone_arg);
    rc__map_del(&r->rooms, room->name, room->name_len);
    room->removed = 1;
    if (r->walking > 0) {
        room->next_dead = r->dead_rooms;
        r->dead_rooms = room;
    } else {
        free_room(room, (void *)r->mem);
    }
}

void rc__registry_hold(rc__registry *r)
{
    r->walking++;
}

void rc__registry_release(rc__registry *r)
{
    if (--r->walking == 0)
        sweep(r);
}

int rc__room_walk(rc__registry *r, rc__room *room,
                  int (*fn)(rc__member *m, void *arg), void *arg)
{
    rc__member *m = room->first, *stop = room->last, *next;
    int rv = 0;

    rc__registry_hold(r);
    for (; m != NULL && rv == 0; m = next) {
        next = m == stop ? NULL : m->room_next;
        if (m->conn != NULL)
            rv = fn(m, arg);
    }
    rc__registry_release(r);
    return rv;
}
