/*
 * Presence's script calls on a room (its keys share the slot of the
 * room's channel), their node-wide halves (the token's rooms, the users
 * index, the sweep registry: see lua.c for the keys and the order of the
 * two calls), and its timed work: sweeping the leaves whose grace ran
 * out, reaping the nodes that stopped renewing their liveness (any node
 * may; the scripts make each change happen once), and, without Redis,
 * the local leaves due.
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

#define ROOM_ARGS 8
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
    v[7] = rc__port_sharded(a) ? "SPUBLISH" : "PUBLISH";
    l[7] = strlen(v[7]);
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

/* ---- the node-wide halves ---------------------------------------------- */

int rc__nw_call(rc_adapter *a, int script, const char *mid, const char *sfx,
                size_t sfx_len, const char *const *v, const size_t *l, size_t n)
{
    size_t kp = strlen(a->node.kp), ml = strlen(mid), i;
    const char **av = rc__malloc(&a->mem, (n + 1) * sizeof *av);
    size_t *al = rc__malloc(&a->mem, (n + 1) * sizeof *al);
    char *key = rc__malloc(&a->mem, kp + ml + sfx_len + 1);
    int rv = RC_ENOMEM;

    if (av != NULL && al != NULL && key != NULL) {
        memcpy(key, a->node.kp, kp);
        memcpy(key + kp, mid, ml);
        memcpy(key + kp + ml, sfx, sfx_len);
        av[0] = key, al[0] = kp + ml + sfx_len;
        for (i = 0; i < n; i++)
            av[i + 1] = v[i], al[i + 1] = l[i];
        rv = rc__port_script(a, script, 1, n + 1, av, al, NULL, NULL);
    }
    rc__free(&a->mem, (void *)av);
    rc__free(&a->mem, al);
    rc__free(&a->mem, key);
    return rv;
}

/* The users in the index for room (argv[0]: the room, then n users). */
static void users_call(rc_adapter *a, int script, const char *const *v,
                       const size_t *l, size_t n)
{
    if (n > 1)
        rc__nw_call(a, script, "{users}", "", 0, v, l, n);
}

void rc__pidx_before(rc_adapter *a, const char *const *v, const size_t *l,
                     size_t n, int troom)
{
    /* Sent before the room's script on the same connection: an entry
     * whose room script never ran is skipped by the reaper and by the
     * queries, which forget it. */
    if (n > 1 && troom)
        rc__nw_call(a, RC__SCRIPT_TROOM, "{nodes}:rooms:", a->node.token, 32, v,
                    l, 1);
    users_call(a, RC__SCRIPT_UREG, v, l, n);
}

void rc__pidx_users(rc_adapter *a, const char *const *v, const size_t *l,
                    size_t n)
{
    users_call(a, RC__SCRIPT_UREG, v, l, n);
}

size_t rc__ptail(const rc__reply *r)
{
    size_t n = rc__reply_len(r);
    long long s, x;

    if (n < 3 || rc__reply_int(r, n - 1, &s) != 0 || s < 0 ||
        (size_t)s + 3 > n || rc__reply_int(r, (size_t)s, &x) != 0 ||
        rc__reply_int(r, (size_t)s + 1, &x) != 0)
        return n;
    return (size_t)s;
}

/* A signed integer in decimal at d; its length. */
static size_t sdec(char *d, long long v)
{
    if (v >= 0)
        return (size_t)(rc__dec_put(d, (unsigned long long)v) - d);
    d[0] = '-';
    return 1 + (size_t)(rc__dec_put(d + 1, (unsigned long long)-v) - d - 1);
}

void rc__pidx_after(rc_adapter *a, const char *room, size_t len,
                    const rc__reply *r, const char *gen)
{
    size_t s = rc__ptail(r), n = rc__reply_len(r), i, k = 2;
    const char *v[3], **u;
    size_t l[3], *ul;
    long long due, now;
    char db[24], nb[24];

    if (s == n || rc__reply_int(r, s, &due) != 0 ||
        rc__reply_int(r, s + 1, &now) != 0)
        return;
    v[0] = room, l[0] = len;
    v[1] = gen, l[1] = gen != NULL ? strlen(gen) : 0;
    v[2] = db, l[2] = sdec(db, due);
    if (gen != NULL) { /* a sweep: its claim ends */
        rc__nw_call(a, RC__SCRIPT_SDONE, "{sweep}", "", 0, v, l, 3);
    } else if (due >= 0) {
        v[1] = db, l[1] = l[2];
        rc__nw_call(a, RC__SCRIPT_SREG, "{sweep}", "", 0, v, l, 2);
    }
    u = rc__malloc(&a->mem, (n - s) * sizeof *u);
    ul = rc__malloc(&a->mem, (n - s) * sizeof *ul);
    if (u != NULL && ul != NULL && s + 3 < n) {
        u[0] = room, ul[0] = len;
        u[1] = nb, ul[1] = sdec(nb, now);
        for (i = s + 2; i + 1 < n; i++)
            if ((u[k] = rc__reply_str(r, i, &ul[k])) != NULL)
                k++;
        users_call(a, RC__SCRIPT_UUNREG, u, ul, k);
    }
    rc__free(&a->mem, (void *)u);
    rc__free(&a->mem, ul);
}

/* A presence script whose answer has a node-wide half. */
typedef struct pcall {
    rc__pend pend; /* first */
    int owe;       /* lost with the link: the room is owed a sync */
    char gen[24];  /* a sweep: the number of its claim, else "" */
    size_t len;
    char room[];
} pcall;

static void on_pcall(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    pcall *c = arg;

    rc__pend_unlink(a, &c->pend);
    if (err == 0 && !a->closing)
        rc__pidx_after(a, c->room, c->len, r, c->gen[0] ? c->gen : NULL);
    else if (err == RC_EMISUSE && c->owe && !a->closing)
        rc__presence_owe(a, c->room, c->len);
    rc__free(&a->mem, c);
}

int rc__pcall(rc_adapter *a, int script, const char *room, size_t len,
              const char *const *extra, const size_t *extra_len, size_t n,
              const char *gen, int owe)
{
    pcall *c = rc__malloc(&a->mem, sizeof *c + len + 1);
    size_t gl = gen != NULL ? strlen(gen) : 0;
    int rv;

    if (c == NULL)
        return RC_ENOMEM;
    memset(c, 0, sizeof *c);
    c->owe = owe;
    if (gl < sizeof c->gen)
        memcpy(c->gen, gen != NULL ? gen : "", gl + 1);
    c->len = len;
    memcpy(c->room, room, len);
    c->room[len] = '\0';
    rv = rc__room_script(a, script, c->room, len, extra, extra_len, n, on_pcall,
                         c);
    if (rv != 0) {
        rc__free(&a->mem, c);
        return rv;
    }
    rc__pend_link(a, &c->pend);
    return 0;
}

/* The users of room's members here in the index (before: with the room
 * under this node's token, before a sync). */
void rc__pidx_members(rc_adapter *a, rc__aroom *room, int before)
{
    size_t n = room->base.members + 1, k = 1;
    const char **u = rc__malloc(&a->mem, n * sizeof *u);
    size_t *ul = rc__malloc(&a->mem, n * sizeof *ul);
    rc__member *m;
    rc_conn *c;

    if (before && room->pres != NULL)
        room->pres->troom = 1;
    if (u != NULL && ul != NULL) {
        u[0] = room->base.name, ul[0] = room->base.name_len;
        for (m = room->base.first; m != NULL && k < n; m = m->room_next)
            if ((c = (rc_conn *)m->conn) != NULL && c->uid != NULL)
                u[k] = c->uid, ul[k++] = c->uid_len;
        if (before)
            rc__pidx_before(a, u, ul, k, 1);
        else
            rc__pidx_users(a, u, ul, k);
    }
    rc__free(&a->mem, (void *)u);
    rc__free(&a->mem, ul);
}

/* ---- rooms owed a sync -------------------------------------------------- */

/* Remember a room whose leave could not be sent (or was lost with the
 * link): the next pub context reconciles it. */
void rc__presence_owe(rc_adapter *a, const char *room, size_t len)
{
    rc__presence *p = &a->pres;
    char **grown;
    size_t i;

    for (i = 0; i < p->nowed; i++)
        if (strlen(p->owed[i]) == len && memcmp(p->owed[i], room, len) == 0)
            return;
    if (p->nowed == p->owed_cap) {
        grown = rc__realloc(&a->mem, p->owed,
                            (p->owed_cap * 2 + 8) * sizeof *grown);
        if (grown == NULL)
            return; /* its entries stay until this node is reaped */
        p->owed = grown;
        p->owed_cap = p->owed_cap * 2 + 8;
    }
    if ((p->owed[p->nowed] = rc__strndup(&a->mem, room, len)) != NULL)
        p->nowed++;
}

static int resync_room(void *item, void *arg)
{
    rc__presence_ready(arg, item);
    return 0;
}

void rc__presence_resync(rc_adapter *a)
{
    rc__presence *p = &a->pres;
    size_t i;
    char grace[24];
    const char *v[3];
    size_t l[3];

    if (!p->on || !rc__port_has_pub(a))
        return;
    rc__map_each(&a->reg.rooms, resync_room, a);
    /* Rooms left while the link was down and gone here since: this
     * node's connections there are made none. */
    v[0] = a->node.token, l[0] = 32;
    l[1] = (size_t)(rc__dec_put(grace, p->o.grace_ms) - grace);
    v[1] = grace;
    v[2] = "1", l[2] = 1;
    for (i = 0; i < p->nowed; i++) {
        if (rc__find_room(a, p->owed[i]) == NULL)
            rc__pcall(a, RC__SCRIPT_SYNC, p->owed[i], strlen(p->owed[i]), v, l,
                      3, NULL, 0);
        rc__free(&a->mem, p->owed[i]);
    }
    p->nowed = 0;
}

/* ---- sweeping and reaping ---------------------------------------------- */

/* {room, the number of its registration, ...}: each room swept, and its
 * next deadline handed back with that number. */
static void on_sweep_due(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    size_t i, n = err == 0 ? rc__reply_len(r) : 0, len, gl;
    const char *room, *gen;

    (void)arg;
    a->pres.sweeping = 0;
    for (i = 0; i + 1 < n && !a->closing; i += 2)
        if ((room = rc__reply_str(r, i, &len)) != NULL &&
            (gen = rc__reply_str(r, i + 1, &gl)) != NULL && gl < 24)
            rc__pcall(a, RC__SCRIPT_SWEEP, room, len, NULL, NULL, 0, gen, 0);
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
                rc__pcall(a, RC__SCRIPT_REAP, room, rl, v, l, 2, NULL, 0);
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

static int retry_room(void *item, void *arg)
{
    rc__aroom *room = item;

    if (room->pres != NULL && room->pres->retry) {
        room->pres->retry = 0;
        rc__presence_ready(arg, room);
    }
    return 0;
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
        if (p->retry) { /* rooms whose sync Redis refused ask again */
            p->retry = 0;
            rc__map_each(&a->reg.rooms, retry_room, a);
        }
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
