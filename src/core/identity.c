/*
 * Presence's set-up: the options, each connection's identity, and the
 * adapter's presence state at open and at release.
 */
#include "presence.h"

/* ---- set-up -------------------------------------------------------------- */

static int free_room_pres(void *item, void *arg)
{
    rc__aroom *room = item;

    rc__hist_room_gone(arg, room);
    if (room->pres != NULL) {
        rc__kept_free(room->pres);
        rc__plocal_free(arg, &room->pres->users);
        rc__free(&((rc_adapter *)arg)->mem, room->pres);
        room->pres = NULL;
    }
    return 0;
}

void rc__presence_free(rc_adapter *a)
{
    rc__presence *p = &a->pres;

    rc__asks_free(a);
    rc__map_each(&a->reg.rooms, free_room_pres, a);
    while (p->nowed > 0)
        rc__free(&a->mem, p->owed[--p->nowed]);
    rc__free(&a->mem, p->owed);
    rc__free(&a->mem, p->buf);
}

int rc_adapter_set_presence(rc_adapter *a, const rc_presence_options *opts,
                            size_t size)
{
    rc_presence_options o;

    if (a == NULL || opts == NULL)
        return RC_EINVAL;
    memset(&o, 0, sizeof o);
    memcpy(&o, opts, size < sizeof o ? size : sizeof o);
    if (o.grace_ms > MAX_GRACE_MS)
        return RC_EINVAL;
    if (a->closing || a->port.pub != NULL || a->node.gen > 0)
        return RC_EMISUSE;
    o.grace_ms = o.grace_ms ? o.grace_ms : DEFAULT_GRACE_MS;
    o.announce_max = o.announce_max ? o.announce_max : DEFAULT_ANNOUNCE_MAX;
    o.sweep_ms = o.sweep_ms ? o.sweep_ms : DEFAULT_SWEEP_MS;
    a->pres.o = o;
    a->pres.on = 1;
    return 0;
}

/* A user id: 1..USER_MAX bytes of UTF-8, no control character. */
int rc__user_check(const char *u, size_t *len, size_t *q)
{
    size_t i;
    int rv = rc__field_check(u, len, q);

    if (rv != 0)
        return rv;
    if (*len == 0 || *len > USER_MAX)
        return RC_EINVAL;
    for (i = 0; i < *len; i++)
        if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f)
            return RC_ECHAR;
    return 0;
}

int rc_conn_set_user(rc_conn *conn, const char *user, const char *info,
                     size_t info_len)
{
    rc_adapter *a;
    size_t len, q, iq = 0;
    const char *ti = NULL;
    size_t tl = 0;
    rc__member *m;
    char *block;
    int rv;

    if (conn == NULL || user == NULL || conn->base.removed)
        return RC_EINVAL;
    a = conn->a;
    if ((rv = rc__user_check(user, &len, &q)) != 0)
        return rv;
    if (info != NULL) {
        tl = rc__json_trim(info, info_len, &ti);
        if ((rv = rc__json_check(ti, tl, a->limits.max_depth)) != 0)
            return rv;
    }
    for (m = conn->base.first; m != NULL; m = m->conn_next)
        if (((rc__aroom *)m->room)->pres != NULL)
            return RC_EMISUSE;
    rc__field_check(conn->base.id, NULL, &iq); /* checked at rc_conn_add */
    if ((block = rc__malloc(&a->mem, len + 1 + q + tl + iq)) == NULL)
        return RC_ENOMEM;
    rc__free(&a->mem, conn->uid);
    conn->uid = block;
    memcpy(block, user, len + 1);
    conn->uid_q = block + len + 1;
    rc__json_quote(conn->uid_q, user, len, q);
    conn->info = ti != NULL ? conn->uid_q + q : NULL;
    if (ti != NULL)
        memcpy(conn->info, ti, tl);
    conn->id_q = conn->uid_q + q + tl;
    rc__json_quote(conn->id_q, conn->base.id, conn->base.id_len, iq);
    conn->uid_len = len;
    conn->uid_q_len = q;
    conn->info_len = tl;
    conn->id_q_len = iq;
    return 0;
}

const char *rc_conn_user_id(const rc_conn *conn)
{
    return conn != NULL ? conn->uid : NULL;
}
