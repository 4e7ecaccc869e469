/*
 * Presence (see roomcast.h): the state kept per presence room and per
 * member, the script calls that join, leave and reconcile, the snapshot a
 * member gets, and the ordering of presence events against it.
 *
 * A member waits (IDLE) until its room's SUBSCRIBE is confirmed and a pub
 * context takes commands, so that no change published after its snapshot
 * can be missed. It is then ASKED: a join (one member) or a sync (the
 * room's members at once) is in flight, whose answer is the snapshot and
 * the presence sequence S it stands at. Presence events coming meanwhile
 * are kept on the room; once the answer is in, the member is SYNCED: it
 * gets rc:presence, then the kept events after S, then every later event
 * after S. Events at or before S are in the snapshot already.
 */

#include "presence.h"

/* ---- asks --------------------------------------------------------------- */

/* An ask on room, which keeps the room's name (and the joiner's user,
 * ul bytes, if not NULL) for the node-wide half of its answer. */
static rc__pask *ask_new(rc_adapter *a, int kind, rc__aroom *room,
                         const char *user, size_t ul)
{
    size_t nl = room->base.name_len;
    rc__pask *k = rc__malloc(&a->mem, sizeof *k + nl + ul + 2);

    if (k == NULL)
        return NULL;
    memset(k, 0, sizeof *k);
    memcpy(k->name, room->base.name, nl + 1);
    k->name_len = nl;
    if (user != NULL) {
        k->user = k->name + nl + 1;
        memcpy(k->user, user, ul + 1);
        k->user_len = ul;
    }
    k->kind = kind;
    k->gen = a->node.gen;
    k->room = room;
    k->next = a->pres.asks;
    if (k->next != NULL)
        k->next->prev = k;
    a->pres.asks = k;
    return k;
}

static void ask_free(rc_adapter *a, rc__pask *k)
{
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        a->pres.asks = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    rc__free(&a->mem, k);
}

/* Free what no member needs any more, unless members are being given
 * the kept events right now (the last one out does it). */
static void settle(rc_adapter *a, rc__proom *p)
{
    if (p->walking > 0)
        return;
    if (p->orphan) {
        rc__kept_free(p);
        rc__plocal_free(a, &p->users);
        rc__free(&a->mem, p);
    } else if (p->asking == 0) {
        rc__kept_free(p);
        p->dropped = 0;
    }
}

/* m stops waiting (answered, or gone). */
static void unask(rc_adapter *a, rc__aroom *room, pmember *pm)
{
    if (pm->state == P_ASKED && room->pres->asking > 0) {
        room->pres->asking--;
        settle(a, room->pres);
    }
    if (pm->ask != NULL && pm->ask->kind == ASK_JOIN)
        pm->ask->m = NULL;
    pm->ask = NULL;
    pm->state = P_IDLE;
}

static void on_snapshot(rc_adapter *a, const rc__reply *r, int err, void *arg);

/* The extra arguments of a join or sync entry: conn, user, JSON, info,
 * conn as JSON. */
static size_t member_args(const rc_conn *c, const char **v, size_t *l)
{
    v[0] = c->base.id;
    l[0] = c->base.id_len;
    v[1] = c->uid ? c->uid : "";
    l[1] = c->uid_len;
    v[2] = c->uid ? c->uid_q : "";
    l[2] = c->uid_q_len;
    v[3] = c->info ? c->info : "";
    l[3] = c->info ? c->info_len : 0;
    v[4] = c->uid ? c->id_q : "";
    l[4] = c->uid ? c->id_q_len : 0;
    return 5;
}

static void ask_join(rc_adapter *a, rc__member *m)
{
    rc__aroom *room = (rc__aroom *)m->room;
    rc_conn *c = (rc_conn *)m->conn;
    pmember *pm = m->ext;
    const char *v[6];
    size_t l[6];
    rc__pask *k = ask_new(a, ASK_JOIN, room, c->uid, c->uid_len);

    if (k == NULL)
        return; /* stays IDLE: the next sync asks again */
    k->m = m;
    if (c->uid != NULL) {
        v[0] = k->name, l[0] = k->name_len;
        v[1] = c->uid, l[1] = c->uid_len;
        rc__pidx_before(a, v, l, 2, !room->pres->troom);
        room->pres->troom = 1;
    }
    member_args(c, v, l);
    /* conn, token, user, JSON, info, conn JSON */
    v[5] = v[4], l[5] = l[4];
    v[4] = v[3], l[4] = l[3];
    v[3] = v[2], l[3] = l[2];
    v[2] = v[1], l[2] = l[1];
    v[1] = a->node.token, l[1] = 32;
    if (rc__room_script(a, RC__SCRIPT_JOIN, room->base.name,
                        room->base.name_len, v, l, 6, on_snapshot, k) != 0) {
        ask_free(a, k);
        return;
    }
    unask(a, room, pm);
    pm->state = P_ASKED;
    pm->ask = k;
    room->pres->asking++;
}

/* The room's members, all at once: this node's connections in Redis made
 * exactly them; every member gets the snapshot. */
static void ask_sync(rc_adapter *a, rc__aroom *room)
{
    size_t n = room->base.members, i = 3, cap = 3 + 5 * n;
    const char **v = rc__malloc(&a->mem, cap * sizeof *v);
    size_t *l = rc__malloc(&a->mem, cap * sizeof *l);
    char grace[24];
    rc__member *m;
    rc__pask *k = NULL;

    if (v == NULL || l == NULL ||
        (k = ask_new(a, ASK_SYNC, room, NULL, 0)) == NULL)
        goto out;
    v[0] = a->node.token, l[0] = 32;
    l[1] = (size_t)(rc__dec_put(grace, a->pres.o.grace_ms) - grace);
    v[1] = grace;
    v[2] = room->pres->synced ? "1" : "0", l[2] = 1;
    for (m = room->base.first; m != NULL; m = m->room_next)
        if (m->conn != NULL && ((rc_conn *)m->conn)->uid != NULL)
            i += member_args((rc_conn *)m->conn, v + i, l + i);
    rc__pidx_members(a, room, 1);
    if (rc__room_script(a, RC__SCRIPT_SYNC, room->base.name,
                        room->base.name_len, v, l, i, on_snapshot, k) != 0) {
        ask_free(a, k);
        goto out;
    }
    for (m = room->base.first; m != NULL; m = m->room_next) {
        pmember *pm = m->ext;

        if (m->conn == NULL || pm == NULL)
            continue;
        unask(a, room, pm);
        pm->state = P_ASKED;
        pm->ask = k;
        room->pres->asking++;
    }
out:
    rc__free(&a->mem, (void *)v);
    rc__free(&a->mem, l);
}

/* ---- the snapshot ------------------------------------------------------- */

size_t rc__quoted_len(const char *s, size_t len)
{
    size_t n, q;

    return rc__field_check(s, &n, &q) == 0 && n == len ? q : 0;
}

/* Deliver to one member through the filter and its sink, as any message
 * (deliver.c), without the presence ordering. */
static void deliver_to(rc_adapter *a, rc__member *m, rc_frame *f,
                       const rc_message *msg)
{
    rc__delivery d;

    memset(&d, 0, sizeof d);
    d.a = a;
    d.frame = f;
    d.msg = msg;
    rc__deliver_one(m, &d);
}

void rc__presence_deliver_to(rc_adapter *a, rc__member *m,
                             const rc_message *msg)
{
    rc_frame *f = rc__frame_new(&a->mem, msg);

    if (f == NULL)
        return;
    rc__enter(a);
    deliver_to(a, m, f, msg);
    rc_frame_unref(f);
    rc__exit(a);
}

/* Member m's wait is over: the snapshot, then the events kept since. */
typedef struct synced {
    rc_adapter *a;
    rc__pask *k;
    long long seq;
    rc_frame *frame;
    const rc_message *msg;
} synced;

static int sync_one(rc__member *m, void *arg)
{
    synced *s = arg;
    rc__proom *p = ((rc__aroom *)m->room)->pres;
    pmember *pm = m->ext;
    pevent *e;

    if (s->a->closing)
        return 1;
    if (p == NULL || pm == NULL || pm->ask != s->k || pm->state != P_ASKED)
        return 0;
    pm->snap = s->seq;
    pm->ask = NULL;
    pm->state = P_SYNCED;
    p->asking--;
    p->walking++;
    deliver_to(s->a, m, s->frame, s->msg);
    for (e = p->first; e != NULL && m->conn != NULL && !s->a->closing;
         e = e->next)
        if (e->seq > s->seq)
            deliver_to(s->a, m, e->frame, &e->msg);
    p->walking--;
    settle(s->a, p);
    return 0;
}

/* The room's view from a snapshot newer than it. */
static void view_from(rc_adapter *a, rc__aroom *room, const rc__reply *r,
                      long long seq)
{
    rc__proom *p = room->pres;
    const char *u;
    size_t i, ul;
    long long cnt;
    snap sp;

    if (!RC__PER_USER(a) || seq < p->view_seq ||
        rc__snap_parse(r, room, &sp) != 0)
        return;
    rc__plocal_clear(a, &p->users);
    p->view_seq = seq;
    for (i = 2; i + 3 <= sp.users_end; i += 3)
        if ((u = rc__reply_str(r, i, &ul)) != NULL &&
            rc__reply_int(r, i + 1, &cnt) == 0)
            rc__plocal_put(a, &p->users, u, ul, cnt > 0 ? (size_t)cnt : 0);
}

/* A sync refused for the connections listed (their users hold no seat):
 * they are ended, and the others ask again. */
static void unseated(rc_adapter *a, rc__aroom *room, const rc__reply *r)
{
    size_t i, len;
    const char *id;
    rc_conn *c;
    rc__member *m;
    int again;

    rc__registry_hold(&a->reg);
    for (i = 1; i < rc__reply_len(r) && !a->closing; i++)
        if ((id = rc__reply_str(r, i, &len)) != NULL &&
            (c = (rc_conn *)rc__conn_find(&a->reg, id, len)) != NULL &&
            (m = rc__member_of(&a->reg, &c->base, &room->base)) != NULL)
            rc__member_end(a, m, RC_ENOTMEMBER, NULL, 0);
    again = !a->closing && room->pres != NULL && room->base.members > 0;
    rc__registry_release(&a->reg); /* a room left empty may go here */
    if (again)
        ask_sync(a, room);
}

/* A join or sync refused: the room is closed (every member of a sync, or
 * the joiner, gets rc:closed and is ended) or the joiner's user holds no
 * seat in a capped room. */
static void refused(rc_adapter *a, rc__pask *k, const rc__reply *r)
{
    rc__member *m = k->kind == ASK_JOIN ? k->m : NULL;
    rc_conn *c = m != NULL ? (rc_conn *)m->conn : NULL;
    size_t len = 0;
    const char *why = rc__reply_str(r, 1, &len), *reason;
    int closed = why != NULL && strcmp(why, "closed") == 0;

    if ((reason = rc__reply_str(r, 2, &len)) == NULL || len == 0)
        reason = "\"closed\"", len = 8;
    if (k->kind == ASK_SYNC && closed) {
        rc__room_end_closed(a, k->room, reason, len);
    } else if (k->kind == ASK_SYNC) {
        unseated(a, k->room, r);
    } else if (c != NULL) {
        rc__member_end(a, m, closed ? RC_ECLOSED : RC_ENOTMEMBER,
                       closed ? reason : NULL, len);
    }
}

static void deliver_snapshot(rc_adapter *a, rc__pask *k, const rc__reply *r)
{
    rc_message msg = RC_MESSAGE_INIT;
    rc__aroom *room = k->room;
    synced s;
    char *json;
    size_t len;

    memset(&s, 0, sizeof s);
    s.a = a;
    s.k = k;
    if (rc__reply_int(r, 0, &s.seq) == 0 && s.seq < 0) {
        refused(a, k, r);
        return;
    }
    if (rc__reply_int(r, 0, &s.seq) == 0 && room->pres->dropped > s.seq) {
        /* Events after the snapshot were dropped (too many kept): the
         * same members ask again, at once. */
        if (k->kind == ASK_SYNC)
            ask_sync(a, room);
        else if (k->m != NULL)
            ask_join(a, k->m);
        return;
    }
    if (rc__reply_int(r, 0, &s.seq) != 0 ||
        rc__snapshot_json(a, room, r, &json, &len) != 0) {
        a->c.script_errors++;
        return; /* the members ask again at the next sweep */
    }
    room->pres->synced = 1;
    view_from(a, room, r, s.seq);
    msg.event = "rc:presence";
    msg.data = json;
    msg.data_len = len;
    s.msg = &msg;
    s.frame = rc__frame_new(&a->mem, &msg);
    if (s.frame != NULL) {
        rc__enter(a);
        if (k->kind == ASK_JOIN && k->m != NULL)
            sync_one(k->m, &s);
        else if (k->kind == ASK_SYNC)
            rc__room_walk(&a->reg, &room->base, sync_one, &s);
        rc_frame_unref(s.frame);
        rc__exit(a);
    }
    rc__free(&a->mem, json);
}

/* The node-wide half of a join's or sync's answer: the room's due
 * registered, the users gone forgotten, and the users that joined put in
 * the index again (one who left in between may have taken them out). */
static void after(rc_adapter *a, rc__pask *k, const rc__reply *r)
{
    const char *v[2];
    size_t l[2];
    long long seq;

    rc__pidx_after(a, k->name, k->name_len, r, NULL);
    if (rc__reply_int(r, 0, &seq) != 0 || seq < 0)
        return; /* refused: nothing changed */
    v[0] = k->name, l[0] = k->name_len;
    v[1] = k->user, l[1] = k->user_len;
    if (k->kind == ASK_JOIN && k->user != NULL)
        rc__pidx_users(a, v, l, 2);
    else if (k->kind == ASK_SYNC && k->room != NULL)
        rc__pidx_members(a, k->room, 0);
}

/* The members a sync asked and did not serve (it failed) wait, IDLE, for
 * the next one, at the next sweep: none keeps a pointer to it. */
static void unask_all(rc_adapter *a, rc__pask *k)
{
    rc__member *m;

    for (m = k->room->base.first; m != NULL; m = m->room_next)
        if (m->conn != NULL && m->ext != NULL &&
            ((pmember *)m->ext)->ask == k) {
            unask(a, k->room, m->ext);
            if (k->room->pres != NULL)
                k->room->pres->retry = a->pres.retry = 1;
        }
}

static void on_snapshot(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    rc__pask *k = arg;

    if (err == 0 && !a->closing)
        after(a, k, r);
    /* Refused by Redis (a cluster node says CLUSTERDOWN for a while after
     * a restart): the room syncs again at the next sweep. */
    if (err == RC_EREDIS && k->room != NULL && k->room->pres != NULL)
        k->room->pres->retry = a->pres.retry = 1;

    /* An answer on a context since let go of still counts: the members
     * it names are ASKED by it until a newer ask replaces it. */
    if (err == 0 && k->room != NULL && !a->closing)
        deliver_snapshot(a, k, r);
    if (k->kind == ASK_JOIN && k->m != NULL && k->m->ext != NULL &&
        ((pmember *)k->m->ext)->ask == k)
        unask(a, (rc__aroom *)k->m->room, k->m->ext); /* failed: IDLE */
    else if (k->kind == ASK_SYNC && k->room != NULL)
        unask_all(a, k); /* those it did not serve: IDLE */
    ask_free(a, k);
}

/* ---- members come and go ------------------------------------------------ */

static int wants_presence(rc_adapter *a, rc__aroom *room)
{
    const rc_presence_options *o = &a->pres.o;

    if (!a->pres.on ||
        rc__quoted_len(room->base.name, room->base.name_len) == 0)
        return 0;
    return o->room_filter == NULL ||
           o->room_filter(room->base.name, o->filter_user) != 0;
}

/* Joins and syncs go out once the room is subscribed (nothing published
 * after the snapshot can be missed) and a pub context takes commands. */
static int can_ask(rc_adapter *a, const rc__aroom *room)
{
    return room->state == RC__SUBSCRIBED && rc__port_has_pub(a);
}

/* Redis is away from a room that had its snapshot: its local members
 * go on with the view (plocal.c). */
static int outage(rc_adapter *a, const rc__aroom *room)
{
    return room->pres->synced && RC__PER_USER(a) && !rc__port_has_pub(a);
}

int rc__presence_joined(rc_adapter *a, rc__member *m)
{
    rc__aroom *room = (rc__aroom *)m->room;
    pmember *pm;

    if (room->pres == NULL) {
        if (room->base.members > 1 || !wants_presence(a, room))
            return 0;
        if ((room->pres = rc__malloc(&a->mem, sizeof *room->pres)) == NULL)
            return RC_ENOMEM;
        memset(room->pres, 0, sizeof *room->pres);
        room->pres->local = a->local_only;
        rc__map_init(&room->pres->users, &a->mem, a->seed);
    }
    if ((pm = rc__malloc(&a->mem, sizeof *pm)) == NULL)
        return RC_ENOMEM;
    memset(pm, 0, sizeof *pm);
    m->ext = pm;
    if (room->pres->local) {
        pm->state = P_SYNCED;
        return rc__plocal_joined(a, m, &room->pres->users);
    }
    if (can_ask(a, room))
        ask_join(a, m);
    else if (outage(a, room)) /* told here; the reconnect asks */
        return rc__plocal_joined(a, m, &room->pres->users);
    return 0;
}

static void member_gone(rc__member *m, void *arg)
{
    rc_adapter *a = arg;
    rc__aroom *room = (rc__aroom *)m->room;
    rc_conn *c = (rc_conn *)m->conn;
    pmember *pm = m->ext;
    const char *v[3];
    size_t l[3];
    char grace[24];

    if (room->pres != NULL && room->pres->local) {
        rc__plocal_left(a, m, &room->pres->users);
        room = NULL; /* nothing to send */
    } else if (room->pres != NULL && outage(a, room)) {
        rc__plocal_left(a, m, &room->pres->users); /* and owed, below */
    }
    m->ext = NULL;
    if (room != NULL && room->pres != NULL)
        unask(a, room, pm);
    rc__free(&a->mem, pm);
    if (room == NULL || c->uid == NULL || room->pres == NULL)
        return;
    v[0] = c->base.id, l[0] = c->base.id_len;
    l[1] = (size_t)(rc__dec_put(grace,
                                a->pres.leave_now ? 0 : a->pres.o.grace_ms) -
                    grace);
    v[1] = grace;
    v[2] = "left", l[2] = 4;
    if (!rc__port_has_pub(a) ||
        rc__pcall(a, RC__SCRIPT_LEAVE, room->base.name, room->base.name_len, v,
                  l, 3, NULL, 1) != 0)
        rc__presence_owe(a, room->base.name, room->base.name_len);
}

static void room_gone(rc__room *r, void *arg)
{
    rc_adapter *a = arg;
    rc__aroom *room = (rc__aroom *)r;
    rc__pask *k;

    rc__hist_room_gone(a, room);
    if (room->pres == NULL)
        return;
    a->pres.pending -= rc__plocal_pending(a, &room->pres->users);
    for (k = a->pres.asks; k != NULL; k = k->next)
        if (k->room == room)
            k->room = NULL;
    room->pres->orphan = 1;
    settle(a, room->pres);
    room->pres = NULL;
}

int rc_room_leave_now(rc_conn *conn, const char *room)
{
    int rv;

    if (conn == NULL)
        return RC_EINVAL;
    conn->a->pres.leave_now++;
    rv = rc_room_leave(conn, room);
    conn->a->pres.leave_now--;
    return rv;
}

void rc__presence_ready(rc_adapter *a, rc__aroom *room)
{
    if (room->pres != NULL && !room->base.removed && room->base.members > 0 &&
        can_ask(a, room))
        ask_sync(a, room);
}

void rc__asks_free(rc_adapter *a)
{
    while (a->pres.asks != NULL)
        ask_free(a, a->pres.asks);
}

void rc__presence_init(rc_adapter *a)
{
    a->reg.member_gone = member_gone;
    a->reg.room_gone = room_gone;
    a->reg.gone_arg = a;
}
