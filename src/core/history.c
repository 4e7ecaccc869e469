/*
 * History and resume (see roomcast.h). A history room's messages get
 * their id "E-S" from one script that appends, numbers and publishes
 * them (hlua.c), and every node delivers them as they come back from
 * Redis, each member through its own cursor: a member gets S only right
 * after S - 1 (in its epoch); one that is behind (it resumes, or the sub
 * link missed messages) is held, and reads the history until it is level
 * with what the room has seen, or gets rc:reset.
 */
#include <stdio.h>

#include "presence.h"

#define DEFAULT_MAX_LEN 1000u
#define DEFAULT_TTL_S 3600u
#define DEFAULT_REPLAY_MAX 1000u

struct rc__hroom {
    unsigned long long e, l;       /* the epoch; the last sequence seen live */
    unsigned long long rhw_e, rhw; /* our publishes' answers, highest */
    int gap; /* published without an id while Redis was away */
};

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
static int parse_id(const char *id, unsigned long long *e,
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
static void fence(rc_adapter *a, const char *room, unsigned long long e,
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

static void send_reset(rc_adapter *a, rc__member *m, const char *reason,
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

static int member_read(rc_adapter *a, rc__aroom *room, rc__member *m,
                       const char *resume);

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
        member_read(v->d.a, v->room, m, NULL);
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
        send_reset(v->d.a, m, "epoch", v->room->hist->e, 0);
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

    if (h == NULL || env->msg.id == NULL || parse_id(env->msg.id, &e, &s) != 0)
        return 0;
    if (h->e != 0 && (e < h->e || (e == h->e && s <= h->l))) {
        if (e == h->e) /* the sequence went back: Redis rolled back */
            fence(a, room->base.name, e, h->l);
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
           parse_id(env->msg.id, &e, &s) == 0;
}

/* ---- reads -------------------------------------------------------------- */

enum { READ_MEMBER, READ_API };

typedef struct hread {
    rc__pend pend; /* first */
    int kind;
    char *room, *conn;         /* copies: looked up again with the answer */
    unsigned long long ce, cs; /* the cursor read after */
    int resume;                /* a resume: ce, cs are the client's */
    const char *bad;           /* a reason known before the read */
    rc_history_cb cb;          /* READ_API */
    void *user;
} hread;

static void hread_free(rc_adapter *a, rc__pend *p)
{
    hread *k = (hread *)p;

    rc__free(&a->mem, k->room);
    rc__free(&a->mem, k->conn);
    rc__free(&a->mem, k);
}

static void on_read(rc_adapter *a, const rc__reply *r, int err, void *arg);

/* Read room's history after since (0 and resume: from the oldest). */
static int send_read(rc_adapter *a, hread *k, unsigned long long since,
                     int from_oldest, unsigned limit)
{
    char sv[24], lv[24], ev[24], cv[24];
    const char *v[5] = {sv, lv, "", ev, cv};
    size_t l[5] = {0, 0, 0, 0, 0};
    int rv;

    if (!from_oldest)
        l[0] = (size_t)(rc__dec_put(sv, since) - sv);
    l[1] = (size_t)(rc__dec_put(lv, limit) - lv);
    if (k->resume && k->bad == NULL) { /* fenced there if ahead */
        l[3] = (size_t)(rc__dec_put(ev, k->ce) - ev);
        l[4] = (size_t)(rc__dec_put(cv, k->cs) - cv);
    }
    rv = rc__room_script(a, RC__SCRIPT_HREAD, k->room, strlen(k->room), v, l, 5,
                         on_read, k);
    if (rv == 0)
        rc__pend_link(a, &k->pend);
    return rv;
}

static hread *hread_new(rc_adapter *a, int kind, const char *room,
                        const char *conn)
{
    hread *k = rc__malloc(&a->mem, sizeof *k);

    if (k == NULL)
        return NULL;
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->pend.free_fn = hread_free;
    k->room = rc__malloc(&a->mem, strlen(room) + 1);
    k->conn = conn ? rc__malloc(&a->mem, strlen(conn) + 1) : NULL;
    if (k->room == NULL || (conn != NULL && k->conn == NULL)) {
        hread_free(a, &k->pend);
        return NULL;
    }
    strcpy(k->room, room);
    if (conn != NULL)
        strcpy(k->conn, conn);
    return k;
}

/* Hold member m and read what it misses; resume: the client's id ("E-S",
 * or anything else: unparsable). A read that cannot be sent leaves the
 * member held until the next catch-up (the room's next READY). */
static int member_read(rc_adapter *a, rc__aroom *room, rc__member *m,
                       const char *resume)
{
    rc_conn *c = (rc_conn *)m->conn;
    hread *k = hread_new(a, READ_MEMBER, room->base.name, c->base.id);

    m->hhold = 1;
    if (k == NULL)
        return RC_ENOMEM;
    k->ce = room->hist->e;
    k->cs = m->hseq;
    if (resume != NULL) {
        k->resume = 1;
        if (parse_id(resume, &k->ce, &k->cs) != 0)
            k->bad = "unparsable";
    }
    if (send_read(a, k, k->cs, k->bad != NULL,
                  k->bad != NULL ? 1 : a->hist.o.replay_max) != 0) {
        hread_free(a, &k->pend);
        m->hhold = 0; /* its cursor stays: the next gap reads again */
        return RC_EUNAVAIL;
    }
    return 0;
}

/* What a read found. */
typedef struct found {
    unsigned long long e, top, first;
    long long fenced; /* the cursor was ahead: a new epoch, e */
    size_t n;         /* messages: elements 4, 5 (sequence, envelope), ... */
} found;

static int found_parse(const rc__reply *r, found *f)
{
    const char *e;
    size_t len;
    long long top, first;

    memset(f, 0, sizeof *f);
    if ((e = rc__reply_str(r, 0, &len)) == NULL ||
        rc__reply_int(r, 1, &top) != 0 || rc__reply_int(r, 2, &first) != 0 ||
        rc__reply_int(r, 3, &f->fenced) != 0 || top < 0 || first < 0 ||
        (rc__reply_len(r) - 4) % 2 != 0)
        return RC_EREDIS;
    for (; len > 0 && *e >= '0' && *e <= '9'; e++, len--)
        f->e = f->e * 10 + (unsigned long long)(*e - '0');
    f->top = (unsigned long long)top;
    f->first = (unsigned long long)first;
    f->n = (rc__reply_len(r) - 4) / 2;
    return len == 0 ? 0 : RC_EREDIS;
}

/* Why a cursor (ce, cs) cannot be resumed from what was found, or NULL. */
static const char *why_not(rc_adapter *a, const found *f, unsigned long long ce,
                           unsigned long long cs)
{
    if (f->fenced) { /* Redis rolled back: the read fenced the room */
        a->c.history_fenced++;
        return "ahead";
    }
    if (f->e == 0)
        return "epoch"; /* no history (any more) */
    if (ce != f->e)
        return "epoch";
    if (cs + 1 < f->first)
        return "trimmed";
    if (f->top - cs > a->hist.o.replay_max)
        return "toomany";
    return NULL;
}

/* Envelope i of a read's answer, decoded into *env (scratch: allocated,
 * len bytes); its sequence in *s. 0 or an error. */
static int entry(rc_adapter *a, const rc__reply *r, size_t i, rc_envelope *env,
                 char **scratch, unsigned long long *s)
{
    long long seq;
    const char *p;
    size_t len;

    *scratch = NULL;
    if (rc__reply_int(r, 4 + 2 * i, &seq) != 0 || seq < 0 ||
        (p = rc__reply_str(r, 5 + 2 * i, &len)) == NULL)
        return RC_EREDIS;
    *s = (unsigned long long)seq;
    if ((*scratch = rc__malloc(&a->mem, len + 1)) == NULL)
        return RC_ENOMEM;
    return rc_envelope_decode(p, len, &a->limits, env, *scratch, len + 1);
}

/* Give member m the messages found after its cursor, in order. */
static void replay(rc_adapter *a, rc__member *m, const rc__reply *r,
                   const found *f)
{
    rc__delivery d;
    rc_envelope env;
    unsigned long long s;
    char *scratch;
    size_t i;

    for (i = 0; i < f->n && m->conn != NULL && !a->closing; i++) {
        memset(&d, 0, sizeof d);
        d.a = a;
        if (entry(a, r, i, &env, &scratch, &s) == 0 && s > m->hseq &&
            (d.frame = rc__frame_new(&a->mem, &env.msg)) != NULL) {
            d.msg = &env.msg;
            d.except = env.except ? rc_conn_find(a, env.except) : NULL;
            m->hseq = s;
            a->c.history_repaired++;
            rc__deliver_one(m, &d);
            rc_frame_unref(d.frame);
        }
        rc__free(&a->mem, scratch);
    }
}

/* A member's read is in: replay or reset, then level with the room (read
 * again while the room has seen more than was read), then live. */
static void member_answer(rc_adapter *a, hread *k, const rc__reply *r)
{
    rc_conn *c = rc_conn_find(a, k->conn);
    rc__room *base = rc__find_room(a, k->room);
    rc__aroom *room = (rc__aroom *)base;
    rc__member *m;
    const char *why;
    found f;

    if (c == NULL || room == NULL || room->hist == NULL ||
        (m = rc__member_of(&a->reg, &c->base, base)) == NULL)
        return;
    if (found_parse(r, &f) != 0) {
        a->c.script_errors++;
        m->hhold = 0;
        return;
    }
    if (room->hist->e == 0)
        room->hist->e = f.e;
    why = k->bad ? k->bad : why_not(a, &f, k->ce, k->cs);
    if (why != NULL) {
        send_reset(a, m, why, f.e, f.top);
        m->hseq = f.top;
    } else {
        m->hseq = k->cs; /* a resume's cursor is the client's */
        replay(a, m, r, &f);
    }
    if (m->conn == NULL || a->closing)
        return;
    m->hcur = f.e == room->hist->e; /* else: takes the next live as is */
    if (m->hcur && room->hist->l > m->hseq &&
        member_read(a, room, m, NULL) == 0)
        return;
    m->hhold = 0;
}

/* A member's read lost with the link: it goes on from its cursor, which
 * the next gap, or its room's next READY, reads on from. */
static void member_lost(rc_adapter *a, hread *k)
{
    rc_conn *c = rc_conn_find(a, k->conn);
    rc__room *base = rc__find_room(a, k->room);
    rc__member *m;

    if (c != NULL && base != NULL &&
        (m = rc__member_of(&a->reg, &c->base, base)) != NULL)
        m->hhold = 0;
}

static void api_answer(rc_adapter *a, hread *k, const rc__reply *r)
{
    rc_history_entry *v = NULL;
    char **scratch = NULL, latest[48], *p = latest;
    const char *why;
    unsigned long long s;
    size_t i = 0, n = 0;
    found f;
    int rv = found_parse(r, &f);

    if (rv == 0 && f.e > 0) {
        p = rc__dec_put(p, f.e);
        *p++ = '-';
        p = rc__dec_put(p, f.top);
    }
    *p = '\0';
    why = rv != 0     ? NULL
          : k->bad    ? k->bad
          : k->resume ? why_not(a, &f, k->ce, k->cs)
                      : NULL;
    if (rv == 0 && why == NULL && f.n > 0 &&
        ((v = rc__malloc(&a->mem, f.n * sizeof *v)) == NULL ||
         (scratch = rc__malloc(&a->mem, f.n * sizeof *scratch)) == NULL))
        rv = RC_ENOMEM;
    for (; rv == 0 && why == NULL && i < f.n; i++, n++) {
        rc_envelope env;

        if ((rv = entry(a, r, i, &env, &scratch[i], &s)) != 0) {
            rc__free(&a->mem, scratch[i]);
            break;
        }
        v[i].msg = env.msg;
        v[i].id = env.msg.id;
    }
    k->cb(a, rv, why, latest, why ? NULL : v, why || rv ? 0 : n, k->user);
    while (n > 0)
        rc__free(&a->mem, scratch[--n]);
    rc__free(&a->mem, scratch);
    rc__free(&a->mem, v);
}

static void on_read(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    hread *k = arg;
    rc__alloc mem = a->mem;

    rc__pend_unlink(a, &k->pend);
    rc__enter(a); /* a sink may free the adapter */
    if (!a->closing && k->kind == READ_API && err != 0)
        k->cb(a, err == RC_EMISUSE ? RC_EUNAVAIL : err, NULL, "", NULL, 0,
              k->user);
    else if (!a->closing && k->kind == READ_API)
        api_answer(a, k, r);
    else if (!a->closing && err == 0)
        member_answer(a, k, r);
    else if (!a->closing)
        member_lost(a, k);
    rc__exit(a);
    rc__free(&mem, k->room);
    rc__free(&mem, k->conn);
    rc__free(&mem, k);
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
        member_read(a, (rc__aroom *)r, m, last_event_id) != 0) {
        m->hhold = 0;
        m->hcur = h->e != 0;
        m->hseq = h->l;
        send_reset(a, m, "unavailable", h->e, h->l);
    }
    return rv;
}

int rc_history_read(rc_adapter *a, const char *room, const char *since,
                    unsigned limit, rc_history_cb cb, void *user)
{
    hread *k;
    int rv;

    if (a == NULL || room == NULL || cb == NULL || !a->hist.on ||
        rc__quoted_len(room, strlen(room)) == 0)
        return RC_EINVAL;
    if (!rc__port_has_pub(a))
        return RC_EUNAVAIL;
    if ((k = hread_new(a, READ_API, room, NULL)) == NULL)
        return RC_ENOMEM;
    k->cb = cb;
    k->user = user;
    if (since != NULL && since[0] != '\0') {
        k->resume = 1;
        if (parse_id(since, &k->ce, &k->cs) != 0)
            k->bad = "unparsable";
    }
    limit = limit ? limit : a->hist.o.replay_max;
    rv = send_read(a, k, k->cs, !k->resume || k->bad != NULL, limit);
    if (rv != 0)
        hread_free(a, &k->pend);
    return rv == RC_EMISUSE ? RC_EUNAVAIL : rv;
}

/* The room's subscription is (again) confirmed: members that may have
 * missed messages meanwhile read them back. */
static int ready_one(rc__member *m, void *arg)
{
    rc__aroom *room = arg;

    if (m->conn != NULL && m->hcur && !m->hhold)
        member_read(((rc_conn *)m->conn)->a, room, m, NULL);
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
        fence(arg, room->base.name, h->e,
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
            fence(a, k->room, e, h->rhw); /* answers went back */
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
    if (!rc__port_has_pub(a)) {
        if (a->hist.o.flags & RC_HISTORY_STRICT)
            return RC_EUNAVAIL;
        if (h != NULL)
            h->gap = 1; /* resumes here answer rc:reset until it is back */
        return RC__HISTORY_LOCAL;
    }
    if (a->node.state == RC_NODE_REFUSED) {
        a->c.publish_errors++;
        return 0;
    }
    rv = hist_publish(a, rooms[0], msg, opts->except_conn_id);
    if (rv == RC_EMISUSE) { /* the link went while sending */
        a->c.publish_errors++;
        return 0;
    }
    return rv;
}
