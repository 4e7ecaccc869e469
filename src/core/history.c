/*
 * History and resume (see roomcast.h). A history room's messages get
 * their id "E-S" from one script that appends, numbers and publishes
 * them (hlua.c), and every node delivers them as they come back from
 * Redis, each member through its own cursor: a member gets S only right
 * after S - 1 (in its epoch); one that is behind (it resumes, or the sub
 * link missed messages) is held, and reads the history until it is level
 * with what the room has seen, or gets rc:reset.
 */

#include "history.h"

#define DEFAULT_MAX_LEN 1000u
#define DEFAULT_TTL_S 3600u
#define DEFAULT_REPLAY_MAX 1000u

int rc_adapter_set_history(rc_adapter *a, const rc_history_options *opts,
                           size_t size)
{
    rc_history_options o;

    if (a == NULL || opts == NULL)
        return RC_EINVAL;
    memset(&o, 0, sizeof o);
    memcpy(&o, opts, size < sizeof o ? size : sizeof o);
    if (a->closing || a->port.pub != NULL || a->node.gen > 0)
        return RC_EMISUSE;
    o.max_len = o.max_len ? o.max_len : DEFAULT_MAX_LEN;
    o.ttl_s = o.ttl_s ? o.ttl_s : DEFAULT_TTL_S;
    o.replay_max = o.replay_max ? o.replay_max : DEFAULT_REPLAY_MAX;
    a->hist.o = o;
    a->hist.on = 1;
    return 0;
}

/* The room's history state, made on first use; NULL: not a history
 * room (or out of memory: then it is not one either). */
static rc__hroom *hroom(rc_adapter *a, rc__aroom *room)
{
    const rc_history_options *o = &a->hist.o;

    if (room->hist != NULL || room->hist_checked)
        return room->hist;
    room->hist_checked = 1;
    if (!a->hist.on ||
        rc__quoted_len(room->base.name, room->base.name_len) == 0 ||
        (o->room_filter != NULL &&
         o->room_filter(room->base.name, o->filter_user) == 0))
        return NULL;
    if ((room->hist = rc__malloc(&a->mem, sizeof *room->hist)) != NULL)
        memset(room->hist, 0, sizeof *room->hist);
    return room->hist;
}

void rc__hist_room_gone(rc_adapter *a, rc__aroom *room)
{
    rc__free(&a->mem, room->hist);
    room->hist = NULL;
    room->hist_checked = 0;
}

/* "E-S" (digits, each at most 18 of them): 0 and *e, *s, or -1. */
int rc__hist_parse_id(const char *id, unsigned long long *e,
                      unsigned long long *s)
{
    unsigned long long v[2] = {0, 0};
    int part = 0, digits = 0;

    for (; *id != '\0'; id++) {
        if (*id == '-' && part == 0 && digits > 0) {
            part = 1;
            digits = 0;
        } else if (*id >= '0' && *id <= '9' && digits < 18) {
            v[part] = v[part] * 10 + (unsigned long long)(*id - '0');
            digits++;
        } else {
            return -1;
        }
    }
    if (part != 1 || digits == 0)
        return -1;
    *e = v[0];
    *s = v[1];
    return 0;
}

/* ---- fencing ------------------------------------------------------------ */

static void on_fenced(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    size_t len;

    (void)arg;
    if (err == 0 && rc__reply_str(r, 0, &len) != NULL && len > 0)
        a->c.history_fenced++;
}

/* The room's sequence went back below seen in epoch e: a new epoch. */
void rc__hist_fence(rc_adapter *a, const char *room, unsigned long long e,
                    unsigned long long seen)
{
    char ev[24], sv[24];
    const char *v[2] = {ev, sv};
    size_t l[2];

    l[0] = (size_t)(rc__dec_put(ev, e) - ev);
    l[1] = (size_t)(rc__dec_put(sv, seen) - sv);
    rc__room_script(a, RC__SCRIPT_HFENCE, room, strlen(room), v, l, 2,
                    on_fenced, NULL);
}

/* ---- delivery ----------------------------------------------------------- */

void rc__hist_reset(rc_adapter *a, rc__member *m, const char *reason,
                    unsigned long long e, unsigned long long top)
{
    rc_message msg = RC_MESSAGE_INIT;
    char id[48], data[64];
    char *p = id;

    if (e > 0) {
        p = rc__dec_put(p, e);
        *p++ = '-';
        p = rc__dec_put(p, top);
    }
    *p = '\0';
    msg.event = "rc:reset";
    msg.id = id;
    msg.data = data;
    msg.data_len =
        (size_t)snprintf(data, sizeof data, "{\"reason\":\"%s\"}", reason);
    a->c.history_resets++;
    rc__presence_deliver_to(a, m, &msg);
}

typedef struct live {
    rc__delivery d;
    rc__aroom *room;
    unsigned long long s;
} live;

/* One member and a live message: delivered if it is the member's next;
 * a member behind reads the history first. */
static int live_one(rc__member *m, void *arg)
{
    live *v = arg;

    if (m->conn == NULL || m->hhold || (m->hcur && v->s <= m->hseq))
        return v->d.a->closing;
    if (m->hcur && v->s > m->hseq + 1) {
        rc__hist_member_read(v->d.a, v->room, m, NULL);
        return v->d.a->closing;
    }
    m->hcur = 1;
    m->hseq = v->s;
    return rc__deliver_one(m, &v->d);
}

/* A new epoch: every member's cursor moves to its start, and it is told
 * (what the old epoch had after its cursor is gone). */
static int epoch_one(rc__member *m, void *arg)
{
    live *v = arg;

    if (m->conn == NULL)
        return 0;
    if (m->hcur)
        rc__hist_reset(v->d.a, m, "epoch", v->room->hist->e, 0);
    m->hcur = 1;
    m->hseq = 0;
    return v->d.a->closing;
}

int rc__hist_live(rc_adapter *a, rc__aroom *room, const rc_envelope *env,
                  rc__delivery *d)
{
    rc__hroom *h = hroom(a, room);
    unsigned long long e, s;
    live v;

    if (h == NULL || env->msg.id == NULL ||
        rc__hist_parse_id(env->msg.id, &e, &s) != 0)
        return 0;
    if (h->e != 0 && (e < h->e || (e == h->e && s <= h->l))) {
        if (e == h->e) /* the sequence went back: Redis rolled back */
            rc__hist_fence(a, room->base.name, e, h->l);
        return 1;
    }
    memset(&v, 0, sizeof v);
    v.d = *d;
    v.room = room;
    v.s = s;
    rc__enter(a);
    if (h->e != 0 && e > h->e) {
        h->e = e;
        rc__room_walk(&a->reg, &room->base, epoch_one, &v);
    }
    h->e = e;
    h->l = s;
    if (!a->closing)
        rc__room_walk(&a->reg, &room->base, live_one, &v);
    d->count = v.d.count;
    rc__exit(a);
    return 1;
}

int rc__hist_room(rc_adapter *a, rc__aroom *room)
{
    return room != NULL && room->base.members > 0 && hroom(a, room) != NULL;
}

int rc__hist_own(rc_adapter *a, rc__aroom *room, const rc_envelope *env)
{
    unsigned long long e, s;

    return room != NULL && hroom(a, room) != NULL && env->msg.id != NULL &&
           rc__hist_parse_id(env->msg.id, &e, &s) == 0;
}

/* ---- the public calls, and the adapter's hooks -------------------------- */

int rc_conn_resume(rc_conn *conn, const char *room, const char *last_event_id)
{
    rc_adapter *a;
    rc__room *r;
    rc__hroom *h;
    rc__member *m;
    int rv = rc_room_join(conn, room);

    if (rv != 1 || last_event_id == NULL || last_event_id[0] == '\0')
        return rv;
    a = conn->a;
    r = rc__find_room(a, room);
    if (r == NULL || (h = hroom(a, (rc__aroom *)r)) == NULL ||
        (m = rc__member_of(&a->reg, &conn->base, r)) == NULL)
        return rv;
    if (h->gap || !rc__port_has_pub(a) ||
        rc__hist_member_read(a, (rc__aroom *)r, m, last_event_id) != 0) {
        m->hhold = 0;
        m->hcur = h->e != 0;
        m->hseq = h->l;
        rc__hist_reset(a, m, "unavailable", h->e, h->l);
    }
    return rv;
}

/* The room's subscription is (again) confirmed: members that may have
 * missed messages meanwhile read them back. */
static int ready_one(rc__member *m, void *arg)
{
    rc__aroom *room = arg;

    if (m->conn != NULL && m->hcur && !m->hhold)
        rc__hist_member_read(((rc_conn *)m->conn)->a, room, m, NULL);
    return 0;
}

void rc__hist_ready(rc_adapter *a, rc__aroom *room)
{
    if (room->hist != NULL && room->hist->e != 0 && rc__port_has_pub(a))
        rc__room_walk(&a->reg, &room->base, ready_one, room);
}

/* A new pub context: fence every history room at what this node saw, so
 * that a Redis that lost acknowledged writes hands out no id again. */
static int fence_room(void *item, void *arg)
{
    rc__aroom *room = item;
    rc__hroom *h = room->hist;

    if (h != NULL && h->e != 0)
        rc__hist_fence(arg, room->base.name, h->e,
                       h->rhw_e == h->e && h->rhw > h->l ? h->rhw : h->l);
    return 0;
}

void rc__hist_pub_changed(rc_adapter *a)
{
    if (a->hist.on && rc__port_has_pub(a))
        rc__map_each(&a->reg.rooms, fence_room, a);
}

/* ---- publishing --------------------------------------------------------- */

typedef struct hpub {
    rc__pend pend; /* first */
    char *room;
} hpub;

static void on_hpub(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    hpub *k = arg;
    rc__room *room = rc__find_room(a, k->room);
    rc__hroom *h = room ? ((rc__aroom *)room)->hist : NULL;
    unsigned long long e = 0;
    const char *ev;
    size_t len;
    long long s;

    rc__pend_unlink(a, &k->pend);
    if (err != 0 || (ev = rc__reply_str(r, 0, &len)) == NULL ||
        rc__reply_int(r, 1, &s) != 0 || s <= 0) {
        a->c.publish_errors++;
        a->c.publish_unconfirmed += err == RC_EMISUSE;
    } else {
        a->c.published++;
        for (; len > 0 && *ev >= '0' && *ev <= '9'; ev++, len--)
            e = e * 10 + (unsigned long long)(*ev - '0');
        if (h != NULL && h->rhw_e == e && (unsigned long long)s <= h->rhw)
            rc__hist_fence(a, k->room, e, h->rhw); /* answers went back */
        else if (h != NULL) {
            h->rhw_e = e;
            h->rhw = (unsigned long long)s;
        }
        if (h != NULL)
            h->gap = 0;
    }
    rc__free(&a->mem, k->room);
    rc__free(&a->mem, k);
}

static void hpub_free(rc_adapter *a, rc__pend *p)
{
    rc__free(&a->mem, ((hpub *)p)->room);
    rc__free(&a->mem, p);
}

/* The envelope split where its id's value goes: head, then tail. */
static int split(rc_adapter *a, const rc_message *msg, const char *except,
                 char **head, size_t *hl, size_t *tl)
{
    rc_envelope env;
    size_t la, lb, i = 0;
    char *b = NULL;
    int rv;

    memset(&env, 0, sizeof env);
    env.msg = *msg;
    env.msg.id = "";
    env.node = a->node_id;
    env.except = except;
    *head = NULL;
    if ((rv = rc_envelope_encode(&env, &a->limits, NULL, 0, &la)) != RC_ENOBUFS)
        return rv != 0 ? rv : RC_EINVAL;
    if ((*head = rc__malloc(&a->mem, la)) == NULL ||
        (b = rc__malloc(&a->mem, la + 1)) == NULL)
        return RC_ENOMEM;
    rv = rc_envelope_encode(&env, &a->limits, *head, la, &la);
    env.msg.id = "0";
    if (rv == 0)
        rv = rc_envelope_encode(&env, &a->limits, b, la + 1, &lb);
    while (rv == 0 && i < la && (*head)[i] == b[i])
        i++;
    rc__free(&a->mem, b);
    *hl = i;
    *tl = la - i;
    return rv;
}

static int hist_publish(rc_adapter *a, const char *room, const rc_message *msg,
                        const char *except)
{
    char ml[24], tl[24], *env = NULL;
    const char *v[4];
    size_t l[4], hl, tlen;
    hpub *k = NULL;
    int rv = split(a, msg, except, &env, &hl, &tlen);

    if (rv == 0 && ((k = rc__malloc(&a->mem, sizeof *k)) == NULL ||
                    (k->room = rc__malloc(&a->mem, strlen(room) + 1)) == NULL))
        rv = RC_ENOMEM;
    if (rv == 0) {
        strcpy(k->room, room);
        v[0] = ml, l[0] = (size_t)(rc__dec_put(ml, a->hist.o.max_len) - ml);
        v[1] = tl;
        l[1] = (size_t)(rc__dec_put(tl, a->hist.o.ttl_s * 1000ull) - tl);
        v[2] = env, l[2] = hl;
        v[3] = env + hl, l[3] = tlen;
        rv = rc__room_script(a, RC__SCRIPT_HPUB, room, strlen(room), v, l, 4,
                             on_hpub, k);
    }
    if (rv == 0) {
        k->pend.free_fn = hpub_free;
        rc__pend_link(a, &k->pend);
    } else if (k != NULL) {
        rc__free(&a->mem, k->room);
        rc__free(&a->mem, k);
    }
    rc__free(&a->mem, env);
    return rv;
}

/* Is room (by name) a history room? Its state, if it has local members,
 * in *h. */
static int is_hist(rc_adapter *a, const char *room, rc__hroom **h)
{
    rc__room *r = rc__find_room(a, room);
    const rc_history_options *o = &a->hist.o;

    *h = r != NULL ? hroom(a, (rc__aroom *)r) : NULL;
    if (r != NULL)
        return *h != NULL;
    return rc__quoted_len(room, strlen(room)) != 0 &&
           (o->room_filter == NULL || o->room_filter(room, o->filter_user));
}

/* A history message Redis cannot take now: refused when strict, else
 * delivered here only, and resumes in the room answer rc:reset until it is
 * back (what was delivered meanwhile is in no history). */
static int unsent(rc_adapter *a, rc__hroom *h)
{
    if (a->hist.o.flags & RC_HISTORY_STRICT)
        return RC_EUNAVAIL;
    if (h != NULL)
        h->gap = 1;
    return RC__HISTORY_LOCAL;
}

int rc__hist_broadcast(rc_adapter *a, const char *const *rooms, size_t n,
                       const rc_message *msg, const rc_broadcast_options *opts)
{
    rc__hroom *h = NULL;
    size_t i, hist = 0;
    int rv;

    for (i = 0; i < n; i++)
        hist += (size_t)is_hist(a, rooms[i], &h);
    if (hist == 0)
        return RC__NOT_HISTORY;
    if (n > 1 || (msg->id != NULL && msg->id[0] != '\0') || opts->meta)
        return RC_EINVAL; /* one history room at a time; its ids are Redis' */
    if (!rc__port_has_pub(a))
        return unsent(a, h);
    if (a->node.state == RC_NODE_REFUSED) {
        a->c.publish_errors++;
        return 0;
    }
    rv = hist_publish(a, rooms[0], msg, opts->except_conn_id);
    if (rv != RC_EMISUSE)
        return rv;
    /* Not sent: the link went, or (a cluster) the room's master is down
     * while the others answer. */
    a->c.publish_errors++;
    return unsent(a, h);
}
