/*
 * A snapshot reply read (its parts and size) and written out as the
 * rc:presence JSON a joiner gets.
 */
#include <stdio.h>

#include "presence.h"

/* The snapshot reply: {seq, n, then n times user, connections, info;
 * then conn, user per connection (per-connection mode)}, or {seq, -1,
 * count} for a large room (a join's or sync's: then the tail, lua.h).
 * Where its parts are, and how many bytes of
 * JSON they make at most; RC_EREDIS if it is not one. */

int rc__snap_parse(const rc__reply *r, const rc__aroom *room, snap *sp)
{
    size_t n = rc__ptail(r), i, ul, il;
    const char *u;

    sp->end = n;
    if (rc__reply_int(r, 1, &sp->n) != 0 ||
        (sp->n >= 0 && (size_t)sp->n > (n - 2) / 3))
        return RC_EREDIS;
    sp->users_end = sp->n < 0 ? 2 : 2 + 3 * (size_t)sp->n;
    sp->need = 80 + rc__quoted_len(room->base.name, room->base.name_len);
    for (i = 2; i + 3 <= sp->users_end; i += 3) {
        if ((u = rc__reply_str(r, i, &ul)) == NULL ||
            rc__reply_str(r, i + 2, &il) == NULL)
            return RC_EREDIS;
        sp->need += rc__quoted_len(u, ul) + il + 64;
    }
    for (i = sp->users_end; sp->n >= 0 && i + 1 < n; i += 2) {
        if ((u = rc__reply_str(r, i, &ul)) == NULL)
            return RC_EREDIS;
        sp->need += rc__quoted_len(u, ul) + 32;
        if ((u = rc__reply_str(r, i + 1, &ul)) == NULL)
            return RC_EREDIS;
        sp->need += rc__quoted_len(u, ul);
    }
    return 0;
}

/* Write s as a JSON string at d + at (nothing if it cannot be one);
 * returns the new at, or 0 if nothing was written. */
static size_t quote_at(char *d, size_t at, const char *s, size_t len)
{
    size_t q = rc__quoted_len(s, len);

    return q == 0 ? 0 : (size_t)(rc__json_quote(d + at, s, len, q) - d);
}

static size_t users_json(char *d, size_t at, const rc__reply *r, const snap *sp)
{
    size_t i, ul, il, next, start;
    const char *u, *info;
    long long cnt;

    for (i = 2; i + 3 <= sp->users_end; i += 3) {
        u = rc__reply_str(r, i, &ul);
        info = rc__reply_str(r, i + 2, &il);
        if (rc__reply_int(r, i + 1, &cnt) != 0 || cnt < 0)
            cnt = 0;
        start = at;
        if (i > 2 && d[at - 1] == '}')
            d[start++] = ',';
        memcpy(d + start, "{\"user\":", 8);
        if ((next = quote_at(d, start + 8, u, ul)) == 0)
            continue; /* not written by a roomcast node */
        at = next + (size_t)sprintf(d + next, ",\"connections\":%lld", cnt);
        if (il > 0) {
            memcpy(d + at, ",\"info\":", 8);
            memcpy(d + at + 8, info, il);
            at += 8 + il;
        }
        d[at++] = '}';
    }
    return at;
}

static size_t conns_json(char *d, size_t at, const rc__reply *r, const snap *sp)
{
    size_t i, cl, ul, c, u, start;
    const char *conn, *user;

    memcpy(d + at, ",\"connections\":[", 16);
    at += 16;
    for (i = sp->users_end; i + 1 < sp->end; i += 2) {
        conn = rc__reply_str(r, i, &cl);
        user = rc__reply_str(r, i + 1, &ul);
        start = at;
        if (d[at - 1] == '}')
            d[start++] = ',';
        memcpy(d + start, "{\"connection\":", 14);
        if ((c = quote_at(d, start + 14, conn, cl)) == 0)
            continue;
        memcpy(d + c, ",\"user\":", 8);
        if ((u = quote_at(d, c + 8, user, ul)) == 0)
            continue;
        d[u] = '}';
        at = u + 1;
    }
    d[at++] = ']';
    return at;
}

/* {"room":R[,"count":N],"users":[{"user":U,"connections":N[,"info":I]},
 * ...][,"connections":[{"connection":C,"user":U},...]]} */
int rc__snapshot_json(rc_adapter *a, const rc__aroom *room, const rc__reply *r,
                      char **out, size_t *len)
{
    long long cnt;
    size_t at;
    snap sp;
    char *d;
    int rv = rc__snap_parse(r, room, &sp);

    if (rv != 0)
        return rv;
    if ((d = rc__malloc(&a->mem, sp.need)) == NULL)
        return RC_ENOMEM;
    memcpy(d, "{\"room\":", 8);
    at = quote_at(d, 8, room->base.name, room->base.name_len);
    if (sp.n < 0 && rc__reply_int(r, 2, &cnt) == 0)
        at += (size_t)sprintf(d + at, ",\"count\":%lld", cnt);
    memcpy(d + at, ",\"users\":[", 10);
    at = users_json(d, at + 10, r, &sp);
    d[at++] = ']';
    if (sp.n >= 0 && (a->pres.o.flags & RC_PRESENCE_PER_CONNECTION))
        at = conns_json(d, at, r, &sp);
    d[at++] = '}';
    *out = d;
    *len = at;
    return 0;
}
