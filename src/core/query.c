/*
 * Presence queries, answered through the host's callback with entries
 * pointing into the reply (valid for the call). A room's users and
 * members are one script call on the room. A user's rooms and everyone
 * online are first read from the users index (<kp>{users}, one slot),
 * which lists who MAY be present where; then each room named is asked,
 * in its own slot, for the truth, and what it denies is forgotten by the
 * index (lua.c: ucount, uunreg).
 */
#include <stdlib.h>

#include "presence.h"

enum { Q_USERS, Q_MEMBERS, Q_USER, Q_ONLINE };

typedef struct query {
    int kind;
    rc_presence_cb cb;
    void *user;
    char room[]; /* the room (Q_USERS, Q_MEMBERS), or "" */
} query;

/* {seq, n, then n times user, connections, info, ...} */
static size_t users_entries(const rc__reply *r, rc_presence_entry *e,
                            const char *room)
{
    size_t n = rc__reply_len(r), i, k = 0, ul, il;
    long long c, users;

    if (rc__reply_int(r, 1, &users) != 0 || users < 0 ||
        (size_t)users > (n - 2) / 3)
        return 0;
    for (i = 2; i + 3 <= 2 + 3 * (size_t)users; i += 3) {
        e[k].user = rc__reply_str(r, i, &ul);
        e[k].info = rc__reply_str(r, i + 2, &il);
        if (e[k].user == NULL || rc__reply_int(r, i + 1, &c) != 0)
            continue;
        e[k].connections = c > 0 ? (unsigned long long)c : 0;
        e[k].info_len = e[k].info != NULL ? il : 0;
        if (e[k].info_len == 0)
            e[k].info = NULL;
        e[k].room = room;
        k++;
    }
    return k;
}

/* {conn, token \x1f user \x1f node, ...}: each user is copied, with its
 * NUL, into scratch (the reply is hiredis'); the node runs to the end of
 * the value, which hiredis ends with a NUL. */
static size_t members_entries(const rc__reply *r, rc_presence_entry *e,
                              const char *room, char *scratch)
{
    size_t n = rc__reply_len(r), i, k = 0, cl, vl;
    const char *v, *u, *nd;
    char *d = scratch;

    for (i = 0; i + 1 < n; i += 2) {
        e[k].conn = rc__reply_str(r, i, &cl);
        v = rc__reply_str(r, i + 1, &vl);
        if (e[k].conn == NULL || v == NULL ||
            (u = memchr(v, '\x1f', vl)) == NULL ||
            (nd = memchr(u + 1, '\x1f', vl - (size_t)(u + 1 - v))) == NULL)
            continue;
        e[k].user = d;
        memcpy(d, u + 1, (size_t)(nd - u - 1));
        d += nd - u - 1;
        *d++ = '\0';
        e[k].node = nd + 1; /* to the end of v, which hiredis ends with NUL */
        e[k].connections = 1;
        e[k].room = room;
        k++;
    }
    return k;
}

/* ---- a user's rooms, everyone online ---------------------------------- */

/* The candidates the index gave, each asked of its room. */
typedef struct uq {
    rc__pend pend; /* first */
    query *q;
    size_t n, waiting;
    int err;
    long long *cnt;   /* per candidate: connections, or -1: not there */
    const char **str; /* per candidate: user, room (NUL-terminated) */
    size_t *len;
    char *blob;
} uq;

/* One room's call: the candidates it answers for. */
typedef struct uroom {
    rc__pend pend; /* first */
    uq *g;
    size_t n;
    size_t idx[];
} uroom;

static void uq_free(rc_adapter *a, uq *g)
{
    rc__free(&a->mem, g->q);
    rc__free(&a->mem, g->cnt);
    rc__free(&a->mem, (void *)g->str);
    rc__free(&a->mem, g->len);
    rc__free(&a->mem, g->blob);
    rc__free(&a->mem, g);
}

static void uq_pend_free(rc_adapter *a, rc__pend *p)
{
    uq_free(a, (uq *)p);
}

/* Every room answered: the entries present, in the index's order. */
static void uq_done(rc_adapter *a, uq *g)
{
    rc_presence_entry *e = rc__malloc(&a->mem, (g->n + 1) * sizeof *e);
    size_t i, k = 0;
    int err = g->err != 0 ? g->err : e == NULL ? RC_ENOMEM : 0;

    for (i = 0; err == 0 && i < g->n; i++)
        if (g->cnt[i] >= 0) {
            memset(&e[k], 0, sizeof e[k]);
            e[k].user = g->str[2 * i];
            e[k].room = g->str[2 * i + 1];
            e[k++].connections = (unsigned long long)g->cnt[i];
        }
    rc__pend_unlink(a, &g->pend);
    if (!a->closing) {
        rc__enter(a);
        g->q->cb(a, err, err == 0 ? e : NULL, err == 0 ? k : 0, g->q->user);
        rc__exit(a);
    }
    rc__free(&a->mem, e);
    uq_free(a, g);
}

/* {now, per user: connections or -1}: the absent ones forgotten by the
 * index, unless registered again since now. */
static void on_ucount(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    uroom *u = arg;
    uq *g = u->g;
    size_t j, k = 2, *l = rc__malloc(&a->mem, (u->n + 2) * sizeof *l);
    const char **v = rc__malloc(&a->mem, (u->n + 2) * sizeof *v);
    long long c;

    rc__pend_unlink(a, &u->pend);
    if (err != 0)
        g->err = err;
    for (j = 0; err == 0 && j < u->n; j++)
        if (rc__reply_int(r, j + 1, &c) == 0 && (g->cnt[u->idx[j]] = c) < 0 &&
            v != NULL && l != NULL)
            v[k] = g->str[2 * u->idx[j]], l[k++] = g->len[2 * u->idx[j]];
    if (k > 2 && !a->closing && rc__reply_int(r, 0, &c) == 0) {
        char nb[24];

        v[0] = g->str[2 * u->idx[0] + 1], l[0] = g->len[2 * u->idx[0] + 1];
        v[1] = nb, l[1] = (size_t)(rc__dec_put(nb, (unsigned long long)c) - nb);
        rc__nw_call(a, RC__SCRIPT_UUNREG, "{users}", "", 0, v, l, k);
    }
    rc__free(&a->mem, (void *)v);
    rc__free(&a->mem, l);
    if (--g->waiting == 0)
        uq_done(a, g);
    rc__free(&a->mem, u);
}

typedef struct cand {
    const char *room;
    size_t len, i;
} cand;

static int by_room(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->room, b->room, n);

    return c != 0 ? c : a->len < b->len ? -1 : a->len > b->len;
}

/* One call for the candidates c[0..n) (one room). */
static void ask_room(rc_adapter *a, uq *g, const cand *c, size_t n)
{
    uroom *u = rc__malloc(&a->mem, sizeof *u + n * sizeof u->idx[0]);
    const char **v = rc__malloc(&a->mem, n * sizeof *v);
    size_t *l = rc__malloc(&a->mem, n * sizeof *l), i;
    int rv = RC_ENOMEM;

    if (u != NULL && v != NULL && l != NULL) {
        u->g = g;
        u->n = n;
        for (i = 0; i < n; i++) {
            u->idx[i] = c[i].i;
            v[i] = g->str[2 * c[i].i], l[i] = g->len[2 * c[i].i];
        }
        rv = rc__room_script(a, RC__SCRIPT_UCOUNT, c[0].room, c[0].len, v, l, n,
                             on_ucount, u);
    }
    if (rv == 0) {
        u->pend.free_fn = NULL;
        rc__pend_link(a, &u->pend);
        g->waiting++;
    } else {
        g->err = rv;
        rc__free(&a->mem, u);
    }
    rc__free(&a->mem, (void *)v);
    rc__free(&a->mem, l);
}

/* Each room of the candidates asked once, for its candidates. */
static void ask_rooms(rc_adapter *a, uq *g)
{
    cand *c = rc__malloc(&a->mem, (g->n + 1) * sizeof *c);
    size_t i, j;

    g->waiting = 1; /* held until every call is sent */
    for (i = 0; c != NULL && i < g->n; i++) {
        c[i].room = g->str[2 * i + 1];
        c[i].len = g->len[2 * i + 1];
        c[i].i = i;
    }
    if (c == NULL)
        g->err = RC_ENOMEM;
    else
        qsort(c, g->n, sizeof *c, by_room);
    for (i = 0; c != NULL && i < g->n && g->err == 0; i = j) {
        for (j = i + 1; j < g->n && by_room(&c[i], &c[j]) == 0; j++)
            ;
        ask_room(a, g, c + i, j - i);
    }
    rc__free(&a->mem, c);
    if (--g->waiting == 0)
        uq_done(a, g);
}

/* The index's answer, {room, ...} (a user's) or {user, room, ...}, copied
 * into g; NULL if out of memory (or nothing to copy: *n 0). */
static uq *uq_new(rc_adapter *a, query *q, const rc__reply *r, int *err)
{
    int online = q->kind == Q_ONLINE;
    size_t m = rc__reply_len(r), n = online ? m / 2 : m, i, at = 0, ul;
    size_t bytes = rc__reply_strings_len(r) + strlen(q->room) + 1;
    const char *s;
    uq *g = rc__malloc(&a->mem, sizeof *g);

    *err = RC_ENOMEM;
    if (g == NULL)
        return NULL;
    memset(g, 0, sizeof *g);
    g->q = q;
    g->cnt = rc__malloc(&a->mem, (n + 1) * sizeof *g->cnt);
    g->str = rc__malloc(&a->mem, (2 * n + 1) * sizeof *g->str);
    g->len = rc__malloc(&a->mem, (2 * n + 1) * sizeof *g->len);
    g->blob = rc__malloc(&a->mem, bytes);
    if (!g->cnt || !g->str || !g->len || !g->blob) {
        g->q = NULL;
        uq_free(a, g);
        return NULL;
    }
    for (i = 0; i < (online ? 2 * n : n); i++) {
        if ((s = rc__reply_str(r, i, &ul)) == NULL)
            s = "", ul = 0;
        memcpy(g->blob + at, s, ul);
        g->blob[at + ul] = '\0';
        g->str[online ? i : 2 * i + 1] = g->blob + at;
        g->len[online ? i : 2 * i + 1] = ul;
        if (!online) /* the user asked about */
            g->str[2 * i] = q->room, g->len[2 * i] = strlen(q->room);
        g->cnt[online ? i / 2 : i] = -1;
        at += ul + 1;
    }
    g->n = n;
    *err = 0;
    return g;
}

/* The index answered: each room it names is asked. */
static void on_index(rc_adapter *a, query *q, const rc__reply *r, int err)
{
    uq *g = NULL;

    if (err == 0 && !a->closing && (g = uq_new(a, q, r, &err)) != NULL) {
        g->pend.free_fn = uq_pend_free;
        rc__pend_link(a, &g->pend);
        ask_rooms(a, g);
        return;
    }
    if (!a->closing) {
        rc__enter(a);
        q->cb(a, err, NULL, 0, q->user);
        rc__exit(a);
    }
    rc__free(&a->mem, q);
}

static void on_answer(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    query *q = arg;
    size_t n = err == 0 ? rc__reply_len(r) : 0, k = 0, bytes = 0;
    rc_presence_entry *e = NULL;
    char *scratch = NULL;

    if (q->kind == Q_USER || q->kind == Q_ONLINE) {
        on_index(a, q, r, err);
        return;
    }
    if (n > 0) {
        e = rc__malloc(&a->mem, n * sizeof *e);
        if (q->kind == Q_MEMBERS && e != NULL)
            bytes = rc__reply_strings_len(r);
        if (e == NULL ||
            (bytes > 0 && (scratch = rc__malloc(&a->mem, bytes)) == NULL))
            err = RC_ENOMEM;
        else
            memset(e, 0, n * sizeof *e);
    }
    if (err == 0 && n > 0) {
        if (q->kind == Q_USERS)
            k = users_entries(r, e, q->room);
        else
            k = members_entries(r, e, q->room, scratch);
    }
    if (!a->closing) {
        rc__enter(a);
        q->cb(a, err, err == 0 ? e : NULL, err == 0 ? k : 0, q->user);
        rc__exit(a);
    }
    rc__free(&a->mem, scratch);
    rc__free(&a->mem, e);
    rc__free(&a->mem, q);
}

static query *query_new(rc_adapter *a, int kind, const char *s,
                        rc_presence_cb cb, void *user)
{
    size_t len = s ? strlen(s) : 0;
    query *q = rc__malloc(&a->mem, sizeof *q + len + 1);

    if (q == NULL)
        return NULL;
    q->kind = kind;
    q->cb = cb;
    q->user = user;
    memcpy(q->room, s ? s : "", len + 1);
    return q;
}

static int ask(rc_adapter *a, int kind, const char *s, rc_presence_cb cb,
               void *user)
{
    query *q;
    const char *argv[1];
    size_t len[1], kp;
    int rv;

    if (a == NULL || cb == NULL || (kind != Q_ONLINE && s == NULL))
        return RC_EINVAL;
    if (!a->pres.on || a->closing || !rc__port_has_pub(a))
        return RC_EMISUSE;
    if ((q = query_new(a, kind, s, cb, user)) == NULL)
        return RC_ENOMEM;
    if (kind == Q_USERS || kind == Q_MEMBERS) {
        rv = rc__room_script(
            a, kind == Q_USERS ? RC__SCRIPT_SNAPSHOT : RC__SCRIPT_MEMBERS, s,
            strlen(s), NULL, NULL, 0, on_answer, q);
    } else {
        /* <kp>{users} or <kp>{users}:<user> */
        kp = strlen(a->node.kp);
        len[0] = kp + 7 + (kind == Q_USER ? 1 + strlen(s) : 0);
        rv = rc__reserve(&a->mem, &a->pres.buf, &a->pres.buf_cap, len[0]);
        if (rv == 0) {
            memcpy(a->pres.buf, a->node.kp, kp);
            memcpy(a->pres.buf + kp, "{users}", 7);
            if (kind == Q_USER) {
                a->pres.buf[kp + 7] = ':';
                memcpy(a->pres.buf + kp + 8, s, strlen(s));
            }
            argv[0] = a->pres.buf;
            rv = rc__port_script(
                a, kind == Q_USER ? RC__SCRIPT_USER : RC__SCRIPT_ONLINE, 1, 1,
                argv, len, on_answer, q);
        }
    }
    if (rv != 0)
        rc__free(&a->mem, q);
    return rv;
}

int rc_presence_users(rc_adapter *a, const char *room, rc_presence_cb cb,
                      void *user)
{
    return ask(a, Q_USERS, room, cb, user);
}

int rc_presence_members(rc_adapter *a, const char *room, rc_presence_cb cb,
                        void *user)
{
    return ask(a, Q_MEMBERS, room, cb, user);
}

int rc_presence_user(rc_adapter *a, const char *user_id, rc_presence_cb cb,
                     void *user)
{
    return ask(a, Q_USER, user_id, cb, user);
}

int rc_presence_online(rc_adapter *a, rc_presence_cb cb, void *user)
{
    return ask(a, Q_ONLINE, NULL, cb, user);
}
