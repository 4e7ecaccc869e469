/*
 * Presence queries: one script call each, answered through the host's
 * callback with entries pointing into the reply (valid for the call).
 */
#include "internal.h"

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

/* {room, connections, ...} or {user, room, connections, ...}. */
static size_t rooms_entries(const rc__reply *r, rc_presence_entry *e,
                            const char *user, int triples)
{
    size_t n = rc__reply_len(r), i, k = 0, l, step = triples ? 3 : 2;
    long long c;
    const char *s;

    for (i = 0; i + step - 1 < n; i += step) {
        e[k].user = triples ? rc__reply_str(r, i, &l) : user;
        s = rc__reply_str(r, i + step - 2, &l);
        if (e[k].user == NULL || s == NULL ||
            rc__reply_int(r, i + step - 1, &c) != 0)
            continue;
        e[k].room = s;
        e[k].connections = c > 0 ? (unsigned long long)c : 0;
        k++;
    }
    return k;
}

static void on_answer(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    query *q = arg;
    size_t n = err == 0 ? rc__reply_len(r) : 0, k = 0, bytes = 0;
    rc_presence_entry *e = NULL;
    char *scratch = NULL;

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
        else if (q->kind == Q_MEMBERS)
            k = members_entries(r, e, q->room, scratch);
        else
            k = rooms_entries(r, e, q->room, q->kind == Q_ONLINE);
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
