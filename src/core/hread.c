/*
 * History's reads (see history.c): a member held while it reads what it
 * missed (a resume, a gap, a reconnect), then level with its room; and
 * rc_history_read for clients that poll.
 */
#include "history.h"

/* ---- reads -------------------------------------------------------------- */

enum { READ_MEMBER, READ_API };

typedef struct hread {
    rc__pend pend; /* first */
    int kind;
    char *room, *conn;         /* copies: looked up again with the answer */
    unsigned long long ce, cs; /* the cursor read after */
    unsigned req;              /* READ_MEMBER: the member's read number */
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
int rc__hist_member_read(rc_adapter *a, rc__aroom *room, rc__member *m,
                         const char *resume)
{
    rc_conn *c = (rc_conn *)m->conn;
    hread *k = hread_new(a, READ_MEMBER, room->base.name, c->base.id);

    m->hhold = 1;
    if (k == NULL)
        return RC_ENOMEM;
    k->req = m->hreq = ++a->hist.reads;
    k->ce = room->hist->e;
    k->cs = m->hseq;
    if (resume != NULL) {
        k->resume = 1;
        if (rc__hist_parse_id(resume, &k->ce, &k->cs) != 0)
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
        (m = rc__member_of(&a->reg, &c->base, base)) == NULL ||
        m->hreq != k->req) /* not its read: the id was reused */
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
        rc__hist_reset(a, m, why, f.e, f.top);
        m->hseq = f.top;
    } else {
        m->hseq = k->cs; /* a resume's cursor is the client's */
        replay(a, m, r, &f);
    }
    if (m->conn == NULL || a->closing)
        return;
    m->hcur = f.e == room->hist->e; /* else: takes the next live as is */
    if (m->hcur && room->hist->l > m->hseq &&
        rc__hist_member_read(a, room, m, NULL) == 0)
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
        (m = rc__member_of(&a->reg, &c->base, base)) != NULL &&
        m->hreq == k->req)
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
        if (rc__hist_parse_id(since, &k->ce, &k->cs) != 0)
            k->bad = "unparsable";
    }
    limit = limit ? limit : a->hist.o.replay_max;
    rv = send_read(a, k, k->cs, !k->resume || k->bad != NULL, limit);
    if (rv != 0)
        hread_free(a, &k->pend);
    return rv == RC_EMISUSE ? RC_EUNAVAIL : rv;
}
