/*
 * Presence's script calls on a room (its keys share the slot of the
 * room's channel), and its timed work: sweeping the leaves whose grace
 * ran out, reaping the nodes that stopped renewing their liveness (any
 * node may; the scripts make each change happen once), and, without
 * Redis, the local leaves due.
 */
#include "presence.h"

/* ---- the room's keys and script calls --------------------------------- */

/* The slot tag Redis Cluster hashes a channel by: the part between the
 * first '{' and the next '}' when not empty, else the whole name. */
static void channel_tag(const char *ch, size_t len, size_t *at, size_t *n)
{
    const char *o = memchr(ch, '{', len), *c;

    if (o != NULL && (c = memchr(o + 1, '}', len - (size_t)(o + 1 - ch))) &&
        c > o + 1) {
        *at = (size_t)(o + 1 - ch);
        *n = (size_t)(c - o - 1);
        return;
    }
    *at = 0;
    *n = len;
}

/* In a->pres.buf: the room's channel, its key base "<kp>{T}:" (T: the
 * channel's slot tag), then the room as a JSON string (*q bytes). The key
 * base's length, or 0 (out of memory, or *q 0: the room name has CR, LF
 * or invalid UTF-8). */
static size_t room_keys(rc_adapter *a, const char *room, size_t len, size_t *q)
{
    rc__presence *p = &a->pres;
    size_t kp = strlen(a->node.kp), ch = a->prefix_len + len, at, n;
    char *d;

    *q = rc__quoted_len(room, len);
    if (*q == 0 ||
        rc__reserve(&a->mem, &p->buf, &p->buf_cap, 2 * ch + kp + 4 + *q) != 0)
        return 0;
    memcpy(p->buf, a->prefix, a->prefix_len);
    memcpy(p->buf + a->prefix_len, room, len);
    channel_tag(p->buf, ch, &at, &n);
    d = p->buf + ch;
    memcpy(d, a->node.kp, kp);
    d[kp] = '{';
    memcpy(d + kp + 1, p->buf + at, n);
    memcpy(d + kp + 1 + n, "}:", 2);
    rc__json_quote(d + kp + n + 3, room, len, *q);
    return kp + n + 3;
}

#define ROOM_ARGS 7
#define MAX_EXTRA 8

int rc__room_script(rc_adapter *a, int script, const char *room,
                    size_t room_len, const char *const *extra,
                    const size_t *extra_len, size_t n, rc__script_cb cb,
                    void *arg)
{
    const char *argv[ROOM_ARGS + MAX_EXTRA], **v = argv;
    size_t lens[ROOM_ARGS + MAX_EXTRA], *l = lens, base, i, q;
    char amax[24];
    int rv;

    if ((base = room_keys(a, room, room_len, &q)) == 0)
        return q == 0 ? RC_EINVAL : RC_ENOMEM;
    if (n > MAX_EXTRA) {
        v = rc__malloc(&a->mem, (ROOM_ARGS + n) * sizeof *v);
        l = rc__malloc(&a->mem, (ROOM_ARGS + n) * sizeof *l);
        if (v == NULL || l == NULL) {
            rc__free(&a->mem, v == argv ? NULL : (void *)v);
            rc__free(&a->mem, l == lens ? NULL : (void *)l);
            return RC_ENOMEM;
        }
    }
    v[0] = a->pres.buf + a->prefix_len + room_len;
    l[0] = base;
    v[1] = a->node.kp;
    l[1] = strlen(a->node.kp);
    v[2] = room;
    l[2] = room_len;
    v[3] = a->pres.buf;
    l[3] = a->prefix_len + room_len;
    v[4] = a->node_id;
    l[4] = strlen(a->node_id);
    amax[0] = 'c'; /* per connection */
    v[5] = a->pres.o.flags & RC_PRESENCE_PER_CONNECTION ? amax : amax + 1;
    l[5] = (size_t)(rc__dec_put(amax + 1, a->pres.o.announce_max) - v[5]);
    v[6] = v[0] + base;
    l[6] = q;
    for (i = 0; i < n; i++) {
        v[ROOM_ARGS + i] = extra[i];
        l[ROOM_ARGS + i] = extra_len[i];
    }
    rv = rc__port_script(a, script, 1, ROOM_ARGS + n, v, l, cb, arg);
    if (v != argv) {
        rc__free(&a->mem, (void *)v);
        rc__free(&a->mem, l);
    }
    return rv;
}

/* ---- sweeping and reaping ---------------------------------------------- */

static void on_sweep_due(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    size_t i, n = err == 0 ? rc__reply_len(r) : 0, len;
    const char *room;

    (void)arg;
    a->pres.sweeping = 0;
    for (i = 0; i < n && !a->closing; i++)
        if ((room = rc__reply_str(r, i, &len)) != NULL)
            rc__room_script(a, RC__SCRIPT_SWEEP, room, len, NULL, NULL, 0, NULL,
                            NULL);
}

/* {token, claim, n, room1..roomn, ...}: each room reaped, then the token
 * forgotten unless it came back. */
static void on_reap_due(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    size_t i = 0, j, n = err == 0 ? rc__reply_len(r) : 0, tl, rl, cl;
    const char *tok, *room, *v[3];
    size_t l[3];
    long long claim, rooms;
    char grace[24], cbuf[24];

    (void)arg;
    a->pres.reaping = 0;
    l[1] = (size_t)(rc__dec_put(grace, a->pres.o.grace_ms) - grace);
    v[1] = grace;
    while (i + 2 < n && !a->closing) {
        tok = rc__reply_str(r, i, &tl);
        if (tok == NULL || rc__reply_int(r, i + 1, &claim) != 0 ||
            rc__reply_int(r, i + 2, &rooms) != 0 || rooms < 0)
            return;
        v[0] = tok, l[0] = tl;
        for (j = 0; j < (size_t)rooms && i + 3 + j < n; j++)
            if ((room = rc__reply_str(r, i + 3 + j, &rl)) != NULL)
                rc__room_script(a, RC__SCRIPT_REAP, room, rl, v, l, 2, NULL,
                                NULL);
        cl = (size_t)(rc__dec_put(cbuf, (unsigned long long)claim) - cbuf);
        {
            const char *dv[4] = {a->node.key_live, a->node.kp, tok, cbuf};
            size_t dl[4] = {strlen(a->node.key_live), strlen(a->node.kp), tl,
                            cl};

            rc__port_script(a, RC__SCRIPT_REAP_DONE, 1, 4, dv, dl, NULL, NULL);
        }
        i += 3 + (size_t)rooms;
    }
}

typedef struct rooms {
    rc__aroom **v;
    size_t n;
} rooms;

static int collect(void *item, void *arg)
{
    rooms *r = arg;
    rc__aroom *room = item;

    if (room->pres != NULL)
        r->v[r->n++] = room;
    return 0;
}

/* Local leaves due: the rooms are listed first (the sinks told may drop
 * rooms from the map), and the registry holds their memory meanwhile. */
static void local_sweep(rc_adapter *a)
{
    rooms r;
    size_t i;

    r.n = 0;
    r.v = rc__malloc(&a->mem, (a->reg.rooms.count + 1) * sizeof *r.v);
    if (r.v == NULL)
        return; /* the next tick tries again */
    rc__map_each(&a->reg.rooms, collect, &r);
    rc__registry_hold(&a->reg);
    for (i = 0; i < r.n && !a->closing; i++)
        if (!r.v[i]->base.removed && r.v[i]->pres != NULL)
            rc__plocal_sweep(a, &r.v[i]->base, &r.v[i]->pres->users);
    rc__registry_release(&a->reg);
    rc__free(&a->mem, r.v);
}

unsigned rc__presence_tick(rc_adapter *a, unsigned long long now)
{
    rc__presence *p = &a->pres;
    unsigned reap_ms = a->node.lease_ms / 3, sweep_ms = p->o.sweep_ms;
    char lease[24];
    const char *v[3];
    size_t l[3];

    p->now = now;
    /* Without Redis, or while it is away: the leaves told here. */
    if (p->on && (a->local_only || !rc__port_has_pub(a))) {
        if (p->pending > 0)
            local_sweep(a);
        return sweep_ms;
    }
    if (!p->on || !rc__port_has_pub(a))
        return sweep_ms;
    if (p->next_sweep == 0 || p->next_reap == 0) {
        p->next_sweep = now + sweep_ms;
        p->next_reap = now + reap_ms;
    }
    if (now >= p->next_sweep && !p->sweeping) {
        p->next_sweep = now + sweep_ms;
        v[0] = a->node.key_sweep, l[0] = strlen(v[0]);
        if (rc__port_script(a, RC__SCRIPT_SWEEP_DUE, 1, 1, v, l, on_sweep_due,
                            NULL) == 0)
            p->sweeping = 1;
    }
    if (now >= p->next_reap && !p->reaping) {
        p->next_reap = now + reap_ms;
        v[0] = a->node.key_live, l[0] = strlen(v[0]);
        v[1] = a->node.kp, l[1] = strlen(v[1]);
        l[2] = (size_t)(rc__dec_put(lease, a->node.lease_ms) - lease);
        v[2] = lease;
        if (rc__port_script(a, RC__SCRIPT_REAP_DUE, 1, 3, v, l, on_reap_due,
                            NULL) == 0)
            p->reaping = 1;
    }
    now =
        p->next_sweep < p->next_reap ? p->next_sweep - now : p->next_reap - now;
    return now > 0 ? (unsigned)now : 1;
}
