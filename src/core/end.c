/*
 * Admission's side on every node: members taken out of a room (closed, or
 * their user evicted or without a seat) and told to the end callback; the
 * control messages that say so; and the periodic check of the closes a
 * node missed while it was cut off from Redis.
 */
#include "presence.h"

#define DEFAULT_VERIFY_MS 30000u

void rc_adapter_set_end_cb(rc_adapter *a, rc_end_cb cb, void *user)
{
    if (a == NULL)
        return;
    a->adm.end_cb = cb;
    a->adm.end_user = cb ? user : NULL;
}

/* ---- calls in flight ---------------------------------------------------- */

void rc__pend_link(rc_adapter *a, rc__pend *p)
{
    p->prev = NULL;
    p->next = a->adm.pending;
    if (p->next != NULL)
        p->next->prev = p;
    a->adm.pending = p;
}

void rc__pend_unlink(rc_adapter *a, rc__pend *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        a->adm.pending = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
}

void rc__pend_free_all(rc_adapter *a)
{
    rc__pend *p;

    while ((p = a->adm.pending) != NULL) {
        rc__pend_unlink(a, p);
        if (p->free_fn != NULL)
            p->free_fn(a, p);
        else
            rc__free(&a->mem, p);
    }
}

/* ---- ending members ----------------------------------------------------- */

typedef struct ending {
    rc_adapter *a;
    const char *room; /* a copy: the room may go as its members leave */
    const char *user; /* only this user's connections, or NULL */
    int reason;
    rc__delivery d; /* rc:closed first, if frame is set */
} ending;

static int end_one(rc__member *m, void *arg)
{
    ending *e = arg;
    rc_conn *c = (rc_conn *)m->conn;
    rc_adapter *a = e->a;

    if (c == NULL ||
        (e->user != NULL && (c->uid == NULL || strcmp(c->uid, e->user) != 0)))
        return 0;
    if (e->d.frame != NULL)
        rc__deliver_one(m, &e->d);
    if (a->closing || m->conn == NULL)
        return a->closing;
    rc_room_leave(c, e->room);
    a->c.ended++;
    if (a->adm.end_cb != NULL)
        a->adm.end_cb(c, e->room, e->reason, a->adm.end_user);
    return a->closing;
}

/* e for room: 0, or RC_ENOMEM (nothing to do then). */
static int ending_init(rc_adapter *a, ending *e, rc__aroom *room, int reason,
                       const rc_message *closed)
{
    char *name = rc__malloc(&a->mem, room->base.name_len + 1);

    memset(e, 0, sizeof *e);
    if (name == NULL)
        return RC_ENOMEM;
    memcpy(name, room->base.name, room->base.name_len + 1);
    e->a = a;
    e->room = name;
    e->reason = reason;
    e->d.a = a;
    e->d.msg = closed;
    if (closed != NULL &&
        (e->d.frame = rc__frame_new(&a->mem, closed)) == NULL) {
        rc__free(&a->mem, name);
        return RC_ENOMEM;
    }
    rc__enter(a);
    return 0;
}

static void ending_done(rc_adapter *a, ending *e)
{
    rc__alloc mem = a->mem;

    rc_frame_unref(e->d.frame);
    rc__free(&mem, (void *)e->room);
    rc__exit(a);
}

void rc__room_end(rc_adapter *a, rc__aroom *room, const char *user, int reason,
                  const rc_message *closed)
{
    ending e;

    if (room->base.members == 0 ||
        ending_init(a, &e, room, reason, closed) != 0)
        return;
    e.user = user;
    rc__room_walk(&a->reg, &room->base, end_one, &e);
    ending_done(a, &e);
}

/* rc:closed {"reason":R} (R: len bytes of JSON) in *msg; data allocated
 * (NULL: out of memory). */
static char *closed_msg(rc_adapter *a, rc_message *msg, const char *reason,
                        size_t len)
{
    char *data = rc__malloc(&a->mem, len + 12);

    if (data == NULL)
        return NULL;
    memcpy(data, "{\"reason\":", 10);
    memcpy(data + 10, reason, len);
    data[10 + len] = '}';
    *msg = (rc_message)RC_MESSAGE_INIT;
    msg->event = "rc:closed";
    msg->data = data;
    msg->data_len = len + 11;
    return data;
}

void rc__room_end_closed(rc_adapter *a, rc__aroom *room, const char *reason,
                         size_t len)
{
    rc_message msg;
    char *data = closed_msg(a, &msg, reason, len);

    if (data != NULL)
        rc__room_end(a, room, NULL, RC_ECLOSED, &msg);
    rc__free(&a->mem, data);
}

void rc__member_end(rc_adapter *a, rc__member *m, int reason,
                    const char *closed, size_t len)
{
    rc_message msg;
    char *data = NULL;
    ending e;

    if (closed != NULL && (data = closed_msg(a, &msg, closed, len)) == NULL)
        return;
    if (ending_init(a, &e, (rc__aroom *)m->room, reason, data ? &msg : NULL) ==
        0) {
        end_one(m, &e);
        ending_done(a, &e);
    }
    rc__free(&a->mem, data);
}

/* ---- control messages --------------------------------------------------- */

char *rc__data_user(rc_adapter *a, const rc_message *msg)
{
    rc__jcur c;
    const unsigned char *body;
    size_t len;
    int escaped;
    long ul;
    char *user;

    c.p = (const unsigned char *)msg->data + 8;
    c.end = (const unsigned char *)msg->data + msg->data_len;
    if (msg->data_len < 10 || memcmp(msg->data, "{\"user\":", 8) != 0 ||
        rc__json_string(&c, &body, &len, &escaped) != 0 ||
        (user = rc__malloc(&a->mem, len + 1)) == NULL)
        return NULL;
    if ((ul = rc__json_unescape(body, len, user, 1)) < 0) {
        rc__free(&a->mem, user);
        return NULL;
    }
    user[ul] = '\0';
    return user;
}

int rc__admit_control(rc_adapter *a, rc__aroom *room, const rc_envelope *env)
{
    char *user;

    if (env->node[0] != '\0' || env->msg.event == NULL)
        return 0;
    if (strcmp(env->msg.event, "rc:closed") == 0) {
        rc__room_end(a, room, NULL, RC_ECLOSED, &env->msg);
        return 1;
    }
    if (strcmp(env->msg.event, "rc:evict") != 0)
        return 0;
    if ((user = rc__data_user(a, &env->msg)) != NULL) {
        rc__room_end(a, room, user, RC_ENOTMEMBER, NULL);
        rc__free(&a->mem, user);
    }
    return 1;
}

/* ---- verifying closes --------------------------------------------------- */

typedef struct verify {
    rc__pend pend; /* first */
    unsigned gen;
    int all; /* the rooms were sent */
    size_t n;
    char **rooms;
} verify;

static void verify_free(rc_adapter *a, verify *v)
{
    while (v->n > 0)
        rc__free(&a->mem, v->rooms[--v->n]);
    rc__free(&a->mem, v->rooms);
    rc__free(&a->mem, v);
}

static int ask(rc_adapter *a, int all);

/* A room <kp>{closed} names: its own state says whether it is closed
 * (the entry is made before the close runs, and stays if it never does). */
typedef struct confirm {
    rc__pend pend; /* first */
    unsigned gen;
    char room[];
} confirm;

static void on_confirm(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    confirm *c = arg;
    const char *st, *why;
    size_t sl = 0, wl = 0;
    rc__room *room;

    rc__pend_unlink(a, &c->pend);
    if (err == 0 && !a->closing && c->gen == a->node.gen &&
        (st = rc__reply_str(r, 0, &sl)) != NULL &&
        (why = rc__reply_str(r, 1, &wl)) != NULL) {
        if (strcmp(st, "closed") != 0) {
            a->adm.seen[0] = '\0'; /* not yet, or never: look again */
        } else if ((room = rc__find_room(a, c->room)) != NULL) {
            rc__enter(a);
            rc__room_end_closed(a, (rc__aroom *)room, wl ? why : "\"closed\"",
                                wl ? wl : 8);
            rc__exit(a);
        }
    }
    rc__free(&a->mem, c);
}

static void ask_room(rc_adapter *a, const char *room)
{
    size_t len = strlen(room);
    confirm *c = rc__malloc(&a->mem, sizeof *c + len + 1);

    if (c == NULL)
        return;
    c->gen = a->node.gen;
    memcpy(c->room, room, len + 1);
    if (rc__room_script(a, RC__SCRIPT_CLOSED, c->room, len, NULL, NULL, 0,
                        on_confirm, c) != 0) {
        rc__free(&a->mem, c);
        return;
    }
    c->pend.free_fn = NULL;
    rc__pend_link(a, &c->pend);
}

static void verify_pend_free(rc_adapter *a, rc__pend *p)
{
    verify_free(a, (verify *)p);
}

/* The answer: a count unchanged, or which rooms sent <kp>{closed} names
 * (each is then asked). */
static void on_verify(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    verify *v = arg;
    rc__admit *d = &a->adm;
    const char *n, *why;
    size_t nl, wl, i;
    rc__room *room;

    rc__pend_unlink(a, &v->pend);
    d->verifying = 0;
    if (err != 0 || a->closing || v->gen != a->node.gen ||
        (n = rc__reply_str(r, 0, &nl)) == NULL || nl >= sizeof d->seen) {
        verify_free(a, v);
        return;
    }
    rc__enter(a); /* the host may free the adapter from its end callback */
    for (i = 0; i < v->n && !a->closing; i++)
        if ((why = rc__reply_str(r, i + 1, &wl)) != NULL && wl > 0 &&
            (room = rc__find_room(a, v->rooms[i])) != NULL)
            ask_room(a, v->rooms[i]);
    if (v->all || strcmp(n, d->seen) == 0)
        memcpy(d->seen, n, nl + 1);
    else if (!a->closing)
        ask(a, 1); /* closes happened: which of our rooms? */
    verify_free(a, v);
    rc__exit(a);
}

/* Ask whether closes happened since the count last seen (all: tell for
 * every room with members here). 0, or an error (tried again later). */
static int ask(rc_adapter *a, int all)
{
    size_t n = all ? rc_adapter_rooms(a, NULL, 0) : 0, kp, i;
    const char **v = rc__malloc(&a->mem, (n + 2) * sizeof *v);
    size_t *l = rc__malloc(&a->mem, (n + 2) * sizeof *l);
    verify *vf = rc__malloc(&a->mem, sizeof *vf);
    char key[256];
    int rv = RC_ENOMEM;

    kp = strlen(a->node.kp);
    if (v == NULL || l == NULL || vf == NULL || kp + 9 > sizeof key)
        goto out;
    memset(vf, 0, sizeof *vf);
    vf->gen = a->node.gen;
    vf->all = all;
    if (n > 0 &&
        (vf->rooms = rc__malloc(&a->mem, n * sizeof *vf->rooms)) == NULL)
        goto out;
    rc_adapter_rooms(a, v + 2, n);
    for (; vf->n < n; vf->n++)
        if ((vf->rooms[vf->n] =
                 rc__malloc(&a->mem, strlen(v[2 + vf->n]) + 1)) == NULL)
            goto out;
        else
            strcpy(vf->rooms[vf->n], v[2 + vf->n]);
    memcpy(key, a->node.kp, kp);
    memcpy(key + kp, "{closed}", 9);
    v[0] = key, l[0] = kp + 8;
    v[1] = all ? "" : a->adm.seen, l[1] = strlen(v[1]);
    for (i = 0; i < n; i++)
        v[2 + i] = vf->rooms[i], l[2 + i] = strlen(vf->rooms[i]);
    if ((rv = rc__port_script(a, RC__SCRIPT_VERIFY, 1, n + 2, v, l, on_verify,
                              vf)) == 0) {
        a->adm.verifying = 1;
        vf->pend.free_fn = verify_pend_free;
        rc__pend_link(a, &vf->pend);
        vf = NULL;
    }
out:
    if (vf != NULL)
        verify_free(a, vf);
    rc__free(&a->mem, (void *)v);
    rc__free(&a->mem, l);
    return rv;
}

unsigned rc__admit_tick(rc_adapter *a, unsigned long long now)
{
    rc__admit *d = &a->adm;
    unsigned every = d->verify_ms ? d->verify_ms : DEFAULT_VERIFY_MS;

    if (!rc__port_has_pub(a))
        return every;
    if (d->gen != a->node.gen) { /* a new link: every room, at once */
        d->gen = a->node.gen;
        d->seen[0] = '\0';
        d->verify_due = 0;
        d->verifying = 0;
    }
    if (!d->verifying && (d->verify_due == 0 || now >= d->verify_due)) {
        d->verify_due = now + every;
        ask(a, d->seen[0] == '\0');
    }
    return d->verify_due > now ? (unsigned)(d->verify_due - now) : every;
}
