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
#include <stdio.h>

#include "internal.h"

#define DEFAULT_GRACE_MS 10000u
#define DEFAULT_SWEEP_MS 1000u
#define DEFAULT_ANNOUNCE_MAX 100u
#define MAX_GRACE_MS 86400000u
#define MAX_KEPT 4096 /* presence events kept per room while members wait */
#define USER_MAX 256

enum { P_IDLE, P_ASKED, P_SYNCED };

typedef struct pevent {
    struct pevent *next;
    long long seq;
    rc_frame *frame;
    rc_message msg;
    char bytes[]; /* event, then data */
} pevent;

struct rc__proom {
    unsigned asking;      /* members ASKED */
    pevent *first, *last; /* presence events since the oldest ask */
    size_t kept;
    long long dropped; /* the last sequence dropped from the list */
    int synced;        /* had a snapshot: the next sync is a resync */
    unsigned walking;  /* members are being given the kept events */
    int orphan;        /* the room was dropped meanwhile: free at the end */
    int local;         /* an adapter without Redis: users is the state */
    rc__map users;     /* local: user -> its connections (plocal.c) */
};

typedef struct pmember {
    int state;
    long long snap;
    rc__pask *ask; /* the call it waits for */
} pmember;

enum { ASK_JOIN, ASK_SYNC };

struct rc__pask {
    rc__pask *prev, *next; /* the adapter's asks in flight */
    int kind;
    unsigned gen;       /* the node's pub generation when sent */
    rc__aroom *room;    /* NULL once the room is dropped */
    rc__member *m;      /* ASK_JOIN: NULL once the member left */
};

static size_t quoted_len(const char *s, size_t len);

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

/* a->pres.buf: the channel, the key base "<kp>{T}:", then the room as a
 * JSON string (its length in *q). */
size_t rc__room_keys(rc_adapter *a, const char *room, size_t len, size_t *q)
{
    rc__presence *p = &a->pres;
    size_t kp = strlen(a->node.kp), ch = a->prefix_len + len, at, n;
    char *d;

    *q = quoted_len(room, len);
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

    if ((base = rc__room_keys(a, room, room_len, &q)) == 0)
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
    l[5] = (size_t)(rc__dec_put(amax, a->pres.o.announce_max) - amax);
    v[5] = amax;
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

/* ---- asks --------------------------------------------------------------- */

static rc__pask *ask_new(rc_adapter *a, int kind, rc__aroom *room)
{
    rc__pask *k = rc__malloc(&a->mem, sizeof *k);

    if (k == NULL)
        return NULL;
    memset(k, 0, sizeof *k);
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

static void kept_free(rc__proom *p)
{
    pevent *e;

    while ((e = p->first) != NULL) {
        p->first = e->next;
        rc_frame_unref(e->frame);
        rc__free(&e->frame->mem, e);
    }
    p->last = NULL;
    p->kept = 0;
}

/* Free what no member needs any more, unless members are being given
 * the kept events right now (the last one out does it). */
static void settle(rc_adapter *a, rc__proom *p)
{
    if (p->walking > 0)
        return;
    if (p->orphan) {
        kept_free(p);
        if (p->local)
            rc__plocal_free(a, &p->users);
        rc__free(&a->mem, p);
    } else if (p->asking == 0) {
        kept_free(p);
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

static void on_snapshot(rc_adapter *a, const rc__reply *r, int err,
                        void *arg);

/* The extra arguments of a join or sync entry: conn, user, JSON, info. */
static size_t member_args(const rc_conn *c, const char **v, size_t *l)
{
    v[0] = c->base.id;
    l[0] = c->base.id_len;
    v[1] = c->uid ? c->uid : "";
    l[1] = c->uid_len;
    v[2] = c->uid ? c->uid_q : "";
    l[2] = c->uid_q_len;
    v[3] = c->info ? c->info : "";
    l[3] = c->info_len;
    return 4;
}

static void ask_join(rc_adapter *a, rc__member *m)
{
    rc__aroom *room = (rc__aroom *)m->room;
    rc_conn *c = (rc_conn *)m->conn;
    pmember *pm = m->ext;
    const char *v[5];
    size_t l[5];
    rc__pask *k = ask_new(a, ASK_JOIN, room);

    if (k == NULL)
        return; /* stays IDLE: the next sync asks again */
    k->m = m;
    member_args(c, v, l);
    /* conn, token, user, JSON, info */
    v[4] = v[3], l[4] = l[3];
    v[3] = v[2], l[3] = l[2];
    v[2] = v[1], l[2] = l[1];
    v[1] = a->node.token, l[1] = 32;
    if (rc__room_script(a, RC__SCRIPT_JOIN, room->base.name,
                        room->base.name_len, v, l, 5, on_snapshot, k) != 0) {
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
    size_t n = room->base.members, i = 3, cap = 3 + 4 * n;
    const char **v = rc__malloc(&a->mem, cap * sizeof *v);
    size_t *l = rc__malloc(&a->mem, cap * sizeof *l);
    char grace[24];
    rc__member *m;
    rc__pask *k = NULL;

    if (v == NULL || l == NULL || (k = ask_new(a, ASK_SYNC, room)) == NULL)
        goto out;
    v[0] = a->node.token, l[0] = 32;
    l[1] = (size_t)(rc__dec_put(grace, a->pres.o.grace_ms) - grace);
    v[1] = grace;
    v[2] = room->pres->synced ? "1" : "0", l[2] = 1;
    for (m = room->base.first; m != NULL; m = m->room_next)
        if (m->conn != NULL && ((rc_conn *)m->conn)->uid != NULL)
            i += member_args((rc_conn *)m->conn, v + i, l + i);
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

/* The JSON string length of s (len bytes, NUL-terminated), or 0 if it
 * cannot be a user or room in an event (CR, LF, NUL, invalid UTF-8). */
static size_t quoted_len(const char *s, size_t len)
{
    size_t n, q;

    return rc__field_check(s, &n, &q) == 0 && n == len ? q : 0;
}

/* {"room":R,"users":[{"user":U,"connections":N[,"info":I]},...]} from a
 * snapshot reply {seq, user, connections, info, ...}. */
static int snapshot_json(rc_adapter *a, const rc__aroom *room,
                         const rc__reply *r, char **out, size_t *len)
{
    size_t n = rc__reply_len(r), i, need, ul, il, q, at;
    const char *u, *info;
    long long cnt;
    char *d;
    int first = 1;

    need = 64 + quoted_len(room->base.name, room->base.name_len);
    if (rc__reply_int(r, 1, &cnt) == 0) /* {seq, -1, count}: a large room */
        n = 0;
    for (i = 1; i + 2 < n; i += 3) {
        if ((u = rc__reply_str(r, i, &ul)) == NULL ||
            rc__reply_str(r, i + 2, &il) == NULL)
            return RC_EREDIS;
        need += quoted_len(u, ul) + il + 64;
    }
    if ((d = rc__malloc(&a->mem, need)) == NULL)
        return RC_ENOMEM;
    memcpy(d, "{\"room\":", 8);
    at = (size_t)(rc__json_quote(d + 8, room->base.name, room->base.name_len,
                                 quoted_len(room->base.name,
                                            room->base.name_len)) -
                  d);
    if (n == 0 && rc__reply_int(r, 2, &cnt) == 0)
        at += (size_t)sprintf(d + at, ",\"count\":%lld", cnt);
    memcpy(d + at, ",\"users\":[", 10);
    at += 10;
    for (i = 1; i + 2 < n; i += 3) {
        u = rc__reply_str(r, i, &ul);
        info = rc__reply_str(r, i + 2, &il);
        if ((q = quoted_len(u, ul)) == 0)
            continue; /* not written by a roomcast node */
        if (rc__reply_int(r, i + 1, &cnt) != 0 || cnt < 0)
            cnt = 0;
        if (!first)
            d[at++] = ',';
        first = 0;
        memcpy(d + at, "{\"user\":", 8);
        at = (size_t)(rc__json_quote(d + at + 8, u, ul, q) - d);
        at += (size_t)sprintf(d + at, ",\"connections\":%lld", cnt);
        if (il > 0) {
            memcpy(d + at, ",\"info\":", 8);
            memcpy(d + at + 8, info, il);
            at += 8 + il;
        }
        d[at++] = '}';
    }
    memcpy(d + at, "]}", 2);
    *out = d;
    *len = at + 2;
    return 0;
}

void rc__presence_deliver_to(rc_adapter *a, rc__member *m,
                             const rc_message *msg)
{
    rc__delivery d;

    memset(&d, 0, sizeof d);
    d.a = a;
    d.msg = msg;
    if ((d.frame = rc__frame_new(&a->mem, msg)) == NULL)
        return;
    rc__enter(a);
    rc__deliver_one(m, &d);
    rc_frame_unref(d.frame);
    rc__exit(a);
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

/* Member m's wait is over: the snapshot, then the events kept since. */
typedef struct synced {
    rc_adapter *a;
    rc__pask *k;
    long long seq;
    rc_frame *frame;
    const rc_message *msg;
    int stale; /* the kept events do not reach back to seq */
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
    if (s->stale) { /* events after seq were dropped: ask again */
        ask_join(s->a, m);
        return 0;
    }
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
    if (rc__reply_int(r, 0, &s.seq) != 0 ||
        snapshot_json(a, room, r, &json, &len) != 0) {
        a->c.script_errors++;
        return; /* the members stay ASKED until the next sync */
    }
    room->pres->synced = 1;
    s.stale = room->pres->dropped > s.seq;
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

static void on_snapshot(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    rc__pask *k = arg;

    /* An answer on a context since let go of still counts: the members
     * it names are ASKED by it until a newer ask replaces it. */
    if (err == 0 && k->room != NULL && !a->closing)
        deliver_snapshot(a, k, r);
    if (k->kind == ASK_JOIN && k->m != NULL && k->m->ext != NULL &&
        ((pmember *)k->m->ext)->ask == k)
        unask(a, (rc__aroom *)k->m->room, k->m->ext); /* failed: IDLE */
    ask_free(a, k);
}

/* ---- members come and go ------------------------------------------------ */

static int wants_presence(rc_adapter *a, rc__aroom *room)
{
    const rc_presence_options *o = &a->pres.o;

    if (!a->pres.on || quoted_len(room->base.name, room->base.name_len) == 0)
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
    return 0;
}

/* Remember a room whose leave could not be sent: the next pub context
 * reconciles it. */
static void owe(rc_adapter *a, const rc__room *room)
{
    rc__presence *p = &a->pres;
    char **grown;
    size_t i;

    for (i = 0; i < p->nowed; i++)
        if (strcmp(p->owed[i], room->name) == 0)
            return;
    if (p->nowed == p->owed_cap) {
        grown = rc__realloc(&a->mem, p->owed,
                            (p->owed_cap * 2 + 8) * sizeof *grown);
        if (grown == NULL)
            return; /* its entries stay until this node is reaped */
        p->owed = grown;
        p->owed_cap = p->owed_cap * 2 + 8;
    }
    if ((p->owed[p->nowed] =
             rc__strndup(&a->mem, room->name, room->name_len)) != NULL)
        p->nowed++;
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
    }
    m->ext = NULL;
    if (room != NULL && room->pres != NULL)
        unask(a, room, pm);
    rc__free(&a->mem, pm);
    if (room == NULL || c->uid == NULL || room->pres == NULL)
        return;
    v[0] = c->base.id, l[0] = c->base.id_len;
    l[1] = (size_t)(rc__dec_put(grace, a->pres.leave_now ? 0 : a->pres.o.grace_ms) -
                    grace);
    v[1] = grace;
    v[2] = "left", l[2] = 4;
    if (!rc__port_has_pub(a) ||
        rc__room_script(a, RC__SCRIPT_LEAVE, room->base.name,
                        room->base.name_len, v, l, 3, NULL, NULL) != 0)
        owe(a, &room->base);
}

static void room_gone(rc__room *r, void *arg)
{
    rc_adapter *a = arg;
    rc__aroom *room = (rc__aroom *)r;
    rc__pask *k;

    if (room->pres == NULL)
        return;
    if (room->pres->local)
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
            rc__room_script(a, RC__SCRIPT_SYNC, p->owed[i],
                            strlen(p->owed[i]), v, l, 3, NULL, NULL);
        rc__free(&a->mem, p->owed[i]);
    }
    p->nowed = 0;
}

/* ---- presence events ---------------------------------------------------- */

/* meta {"ps":N} as our scripts write it: N, or 0. */
static long long meta_seq(const char *meta, size_t len)
{
    long long v = 0;
    size_t i = 6;

    if (meta == NULL || len < 8 || memcmp(meta, "{\"ps\":", 6) != 0)
        return 0;
    for (; i < len && meta[i] >= '0' && meta[i] <= '9' && v < 1000000000000000;
         i++)
        v = v * 10 + (meta[i] - '0');
    return i + 1 == len && meta[i] == '}' ? v : 0;
}

static void keep(rc_adapter *a, rc__proom *p, long long seq,
                 const rc_message *msg)
{
    size_t el = strlen(msg->event);
    pevent *e = rc__malloc(&a->mem, sizeof *e + el + 1 + msg->data_len);

    if (e == NULL || (e->frame = rc__frame_new(&a->mem, msg)) == NULL) {
        rc__free(&a->mem, e);
        p->dropped = seq; /* the waiting members will ask again */
        return;
    }
    e->next = NULL;
    e->seq = seq;
    e->msg = *msg;
    memcpy(e->bytes, msg->event, el + 1);
    memcpy(e->bytes + el + 1, msg->data, msg->data_len);
    e->msg.event = e->bytes;
    e->msg.data = e->bytes + el + 1;
    e->msg.id = NULL;
    if (p->last != NULL)
        p->last->next = e;
    else
        p->first = e;
    p->last = e;
    if (++p->kept > MAX_KEPT && p->walking == 0) {
        pevent *old = p->first;

        p->first = old->next;
        p->dropped = old->seq;
        p->kept--;
        rc_frame_unref(old->frame);
        rc__free(&a->mem, old);
    }
}

long long rc__presence_event(rc_adapter *a, rc__aroom *room,
                             const rc_envelope *env)
{
    long long seq;

    if (room->pres == NULL || env->node[0] != '\0' ||
        env->msg.event == NULL || strncmp(env->msg.event, "rc:", 3) != 0 ||
        (seq = meta_seq(env->meta, env->meta_len)) == 0)
        return 0;
    if (room->pres->asking > 0) {
        keep(a, room->pres, seq, &env->msg);
        a->c.presence_held++;
    }
    return seq;
}

int rc__presence_wants(const rc__member *m, long long seq)
{
    const pmember *pm = m->ext;

    return pm == NULL || (pm->state == P_SYNCED && seq > pm->snap);
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
            rc__room_script(a, RC__SCRIPT_SWEEP, room, len, NULL, NULL, 0,
                            NULL, NULL);
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

            rc__port_script(a, RC__SCRIPT_REAP_DONE, 1, 4, dv, dl, NULL,
                            NULL);
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

    if (room->pres != NULL && room->pres->local)
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
    if (p->on && a->local_only) {
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
    now = p->next_sweep < p->next_reap ? p->next_sweep - now
                                       : p->next_reap - now;
    return now > 0 ? (unsigned)now : 1;
}

/* ---- set-up -------------------------------------------------------------- */

void rc__presence_init(rc_adapter *a)
{
    a->reg.member_gone = member_gone;
    a->reg.room_gone = room_gone;
    a->reg.gone_arg = a;
}

static int free_room_pres(void *item, void *arg)
{
    rc__aroom *room = item;

    if (room->pres != NULL) {
        kept_free(room->pres);
        if (room->pres->local)
            rc__plocal_free(arg, &room->pres->users);
        rc__free(&((rc_adapter *)arg)->mem, room->pres);
        room->pres = NULL;
    }
    return 0;
}

void rc__presence_free(rc_adapter *a)
{
    rc__presence *p = &a->pres;

    while (p->asks != NULL)
        ask_free(a, p->asks);
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
static int user_check(const char *u, size_t *len, size_t *q)
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
    size_t len, q;
    const char *ti = NULL;
    size_t tl = 0;
    rc__member *m;
    char *block;
    int rv;

    if (conn == NULL || user == NULL || conn->base.removed)
        return RC_EINVAL;
    a = conn->a;
    if ((rv = user_check(user, &len, &q)) != 0)
        return rv;
    if (info != NULL) {
        tl = rc__json_trim(info, info_len, &ti);
        if ((rv = rc__json_check(ti, tl, a->limits.max_depth)) != 0)
            return rv;
    }
    for (m = conn->base.first; m != NULL; m = m->conn_next)
        if (((rc__aroom *)m->room)->pres != NULL)
            return RC_EMISUSE;
    if ((block = rc__malloc(&a->mem, len + 1 + q + tl + 1)) == NULL)
        return RC_ENOMEM;
    rc__free(&a->mem, conn->uid);
    conn->uid = block;
    memcpy(block, user, len + 1);
    conn->uid_q = block + len + 1;
    rc__json_quote(conn->uid_q, user, len, q);
    conn->info = ti != NULL ? conn->uid_q + q : NULL;
    if (ti != NULL)
        memcpy(conn->info, ti, tl);
    conn->uid_len = len;
    conn->uid_q_len = q;
    conn->info_len = tl;
    return 0;
}

const char *rc_conn_user_id(const rc_conn *conn)
{
    return conn != NULL ? conn->uid : NULL;
}
