/*
 * Presence for an adapter without Redis (created local only): the same
 * frames and rules (rc:presence, rc:join, rc:leave, the grace), kept in
 * memory: joins are told at once, leaves at the tick after their grace
 * (or the next tick, for rc_room_leave_now). Time is the host's here,
 * from rc_adapter_tick: there is no other node to agree with.
 *
 * A linked adapter keeps the same map as its view of each presence room
 * (users and connections as its last snapshot said, then its events), so
 * that while Redis is away its local members go on hearing of each
 * other's joins and leaves, as this file tells them; the reconnect's
 * sync then sets every member's view right.
 */
#include "presence.h"

typedef struct luser {
    size_t conns;
    unsigned long long deadline; /* the grace ends (host ms), or 0 */
    int held; /* present with no connection: in another node's grace */
    size_t len, qlen, info_len; /* user, then its JSON, then info */
    char bytes[];
} luser;

#define QUOTED(u) ((u)->bytes + (u)->len + 1)
#define INFO(u) ((u)->bytes + (u)->len + 1 + (u)->qlen)

/* A user of len bytes, its JSON string of qlen bytes (quoted NULL: made
 * here from user) and info (NULL: none), put in users. NULL if out of
 * memory. */
static luser *luser_add(rc_adapter *a, rc__map *users, const char *user,
                        size_t len, const char *quoted, size_t qlen,
                        const char *info, size_t info_len)
{
    luser *u =
        rc__malloc(&a->mem, sizeof *u + len + 1 + qlen + (info ? info_len : 0));

    if (u == NULL)
        return NULL;
    memset(u, 0, sizeof *u);
    u->len = len;
    u->qlen = qlen;
    u->info_len = info != NULL ? info_len : 0;
    memcpy(u->bytes, user, len);
    u->bytes[len] = '\0';
    if (quoted != NULL)
        memcpy(QUOTED(u), quoted, qlen);
    else
        rc__json_quote(QUOTED(u), user, len, qlen);
    if (u->info_len > 0)
        memcpy(INFO(u), info, u->info_len);
    if (rc__map_put(users, u->bytes, len, u) != 0) {
        rc__free(&a->mem, u);
        return NULL;
    }
    return u;
}

/* {"user":U[,"reason":R]} for event to every member but skip. */
static void tell(rc_adapter *a, rc__room *room, const char *event,
                 const luser *u, const char *reason, const rc_conn *skip)
{
    rc_message msg = RC_MESSAGE_INIT;
    rc__delivery d;
    char *data = rc__malloc(&a->mem, u->qlen + 40);
    size_t at;

    if (data == NULL)
        return;
    memcpy(data, "{\"user\":", 8);
    memcpy(data + 8, QUOTED(u), u->qlen);
    at = 8 + u->qlen;
    if (reason != NULL) {
        memcpy(data + at, ",\"reason\":\"", 11);
        at += 11;
        memcpy(data + at, reason, strlen(reason));
        at += strlen(reason);
        data[at++] = '"';
    }
    data[at++] = '}';
    msg.event = event;
    msg.data = data;
    msg.data_len = at;
    memset(&d, 0, sizeof d);
    d.a = a;
    d.msg = &msg;
    d.except = skip;
    d.frame = rc__frame_new(&a->mem, &msg);
    if (d.frame != NULL) {
        const char *name = room->name;

        rc__enter(a);
        rc__deliver(&d, &name, 1);
        rc_frame_unref(d.frame);
        rc__exit(a);
    }
    rc__free(&a->mem, data);
}

typedef struct json {
    char *d;
    size_t at, cap;
    int err;
} json;

static void put(rc_adapter *a, json *j, const char *s, size_t n)
{
    if (j->err || rc__reserve(&a->mem, &j->d, &j->cap, j->at + n) != 0) {
        j->err = 1;
        return;
    }
    memcpy(j->d + j->at, s, n);
    j->at += n;
}

static int put_user(void *item, void *arg)
{
    luser *u = item;
    void **args = arg;
    rc_adapter *a = args[0];
    json *j = args[1];
    char n[32];

    put(a, j, j->d[j->at - 1] == '[' ? "{\"user\":" : ",{\"user\":",
        j->d[j->at - 1] == '[' ? 8 : 9);
    put(a, j, QUOTED(u), u->qlen);
    put(a, j, ",\"connections\":", 15);
    put(a, j, n, (size_t)(rc__dec_put(n, u->conns) - n));
    if (u->info_len > 0) {
        put(a, j, ",\"info\":", 8);
        put(a, j, INFO(u), u->info_len);
    }
    put(a, j, "}", 1);
    return 0;
}

/* rc:presence to m alone. */
static void snapshot(rc_adapter *a, rc__member *m, rc__map *users)
{
    rc_message msg = RC_MESSAGE_INIT;
    json j = {NULL, 0, 0, 0};
    void *args[2];
    size_t q = 0;

    rc__field_check(m->room->name, NULL, &q);
    put(a, &j, "{\"room\":", 8);
    if (!j.err && rc__reserve(&a->mem, &j.d, &j.cap, j.at + q) == 0)
        j.at = (size_t)(rc__json_quote(j.d + j.at, m->room->name,
                                       m->room->name_len, q) -
                        j.d);
    put(a, &j, ",\"users\":[", 10);
    args[0] = a;
    args[1] = &j;
    if (!j.err)
        rc__map_each(users, put_user, args);
    put(a, &j, "]}", 2);
    if (!j.err) {
        msg.event = "rc:presence";
        msg.data = j.d;
        msg.data_len = j.at;
        rc__presence_deliver_to(a, m, &msg);
    }
    rc__free(&a->mem, j.d);
}

int rc__plocal_joined(rc_adapter *a, rc__member *m, rc__map *users)
{
    rc_conn *c = (rc_conn *)m->conn;
    luser *u = NULL;

    if (c->uid != NULL &&
        (u = rc__map_get(users, c->uid, c->uid_len)) == NULL &&
        (u = luser_add(a, users, c->uid, c->uid_len, c->uid_q, c->uid_q_len,
                       c->info, c->info_len)) == NULL)
        return RC_ENOMEM;
    /* The sinks may remove anything: m stays readable meanwhile. */
    rc__registry_hold(&a->reg);
    if (u != NULL && u->conns++ == 0) {
        if (u->deadline != 0) { /* back within the grace */
            u->deadline = 0;
            a->pres.pending--;
        } else if (u->held) {
            u->held = 0;
        } else {
            tell(a, m->room, "rc:join", u, NULL, c);
        }
    }
    if (m->conn != NULL && !a->closing)
        snapshot(a, m, users);
    rc__registry_release(&a->reg);
    return 0;
}

void rc__plocal_left(rc_adapter *a, rc__member *m, rc__map *users)
{
    rc_conn *c = (rc_conn *)m->conn;
    luser *u = c->uid ? rc__map_get(users, c->uid, c->uid_len) : NULL;

    (void)m;
    if (u == NULL || --u->conns > 0)
        return;
    /* Told at the next tick, not from inside the registry's leave. */
    u->deadline = a->pres.leave_now ? 1 : a->pres.now + a->pres.o.grace_ms;
    a->pres.pending++;
}

typedef struct due {
    rc_adapter *a;
    rc__room *room;
    luser *u; /* the first whose grace ran out */
} due;

static int find_due(void *item, void *arg)
{
    luser *u = item;
    due *d = arg;

    if (u->deadline == 0 || u->deadline > d->a->pres.now)
        return 0;
    d->u = u;
    return 1;
}

/* The leaves whose grace ran out in room (users: its map). */
void rc__plocal_sweep(rc_adapter *a, rc__room *room, rc__map *users)
{
    due d;

    d.a = a;
    d.room = room;
    for (;;) {
        d.u = NULL;
        rc__map_each(users, find_due, &d);
        if (d.u == NULL || a->closing)
            return;
        /* Out of the map first: a sink told may drop the room, map
         * and all (the registry holds the room itself). */
        rc__map_del(users, d.u->bytes, d.u->len);
        a->pres.pending--;
        tell(a, room, "rc:leave", d.u, "left", NULL);
        rc__free(&a->mem, d.u);
        if (room->removed)
            return;
    }
}

static int count_pending(void *item, void *arg)
{
    *(size_t *)arg += ((luser *)item)->deadline != 0;
    return 0;
}

size_t rc__plocal_pending(rc_adapter *a, rc__map *users)
{
    size_t n = 0;

    (void)a;
    rc__map_each(users, count_pending, &n);
    return n;
}

static int free_user(void *item, void *arg)
{
    rc__free(&((rc_adapter *)arg)->mem, item);
    return 0;
}

void rc__plocal_free(rc_adapter *a, rc__map *users)
{
    rc__map_each(users, free_user, a);
    rc__map_free(users);
}

/* ---- a linked adapter's view ------------------------------------------- */

static int drop_user(void *item, void *arg)
{
    luser *u = item;
    rc_adapter *a = arg;

    if (u->deadline != 0)
        a->pres.pending--;
    rc__free(&a->mem, u);
    return 0;
}

void rc__plocal_clear(rc_adapter *a, rc__map *users)
{
    rc__map_each(users, drop_user, a);
    rc__map_free(users);
    rc__map_init(users, &a->mem, a->seed);
}

/* Put user (len bytes, NUL-terminated) in the view with conns
 * connections (0: present, in a grace elsewhere). */
void rc__plocal_put(rc_adapter *a, rc__map *users, const char *user, size_t len,
                    size_t conns)
{
    size_t q = rc__quoted_len(user, len);
    luser *u = rc__map_get(users, user, len);

    if (u == NULL && q > 0)
        u = luser_add(a, users, user, len, NULL, q, NULL, 0);
    if (u != NULL) {
        u->conns = conns;
        u->held = conns == 0;
    }
}

void rc__plocal_remove(rc_adapter *a, rc__map *users, const char *user,
                       size_t len)
{
    luser *u = rc__map_del(users, user, len);

    if (u != NULL)
        drop_user(u, a);
}
