/*
 * Local connections: an id, a sink and the host's pointer, registered with
 * the adapter's registry. The registry allocates each connection with room
 * for its de-dup ring behind it.
 */
#include "internal.h"

int rc_conn_add(rc_adapter *a, const char *conn_id, rc_sink_cb sink, void *user,
                rc_conn **out)
{
    char uuid[37];
    rc__conn *base;
    rc_conn *c;
    int rv;

    if (a == NULL || sink == NULL || out == NULL)
        return RC_EINVAL;
    if (a->closing)
        return RC_EMISUSE;
    if (conn_id == NULL) {
        if ((rv = rc__uuid4(uuid)) != 0)
            return rv;
        conn_id = uuid;
    } else if ((rv = rc__field_check(conn_id, NULL, NULL)) != 0) {
        return rv;
    }
    rv = rc__conn_add(&a->reg, conn_id, strlen(conn_id),
                      sizeof *c + a->dedup_window * sizeof c->recent[0], &base);
    if (rv != 0)
        return rv;
    c = (rc_conn *)base;
    c->a = a;
    c->sink = sink;
    c->user = user;
    *out = c;
    return 0;
}

static void left_room(rc__room *room, void *arg)
{
    rc__after_leave(arg, room);
}

void rc_conn_remove(rc_conn *conn)
{
    rc_adapter *a;
    char *uid;

    if (conn == NULL || conn->base.removed)
        return;
    a = conn->a;
    uid = conn->uid; /* its leaves need it: freed after them */
    rc__enter(a);
    rc__conn_remove(&a->reg, &conn->base, left_room, a);
    rc__free(&a->mem, uid); /* conn itself may be freed by now */
    rc__exit(a);
}

rc_conn *rc_conn_find(rc_adapter *a, const char *conn_id)
{
    if (a == NULL || conn_id == NULL)
        return NULL;
    return (rc_conn *)rc__conn_find(&a->reg, conn_id, strlen(conn_id));
}

const char *rc_conn_id(const rc_conn *conn)
{
    return conn->base.id;
}

void *rc_conn_user(const rc_conn *conn)
{
    return conn->user;
}

rc_adapter *rc_conn_adapter(const rc_conn *conn)
{
    return conn->a;
}
