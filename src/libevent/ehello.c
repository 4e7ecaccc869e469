/*
 * The handshake of the glue's connections (elink.c), sent at once, one
 * reply counted down per command: AUTH (when the URL has a password),
 * SELECT (a database other than 0, not on a cluster), CLIENT SETNAME, and
 * in Sentinel mode ROLE, which must say master. An error reply ends the
 * attempt with the server's words as the reason.
 */
#include <stdio.h>
#include <string.h>

#include "elink.h"

static void hs_reply(econn *c, const redisReply *r, const char *what)
{
    char why[300];

    if (r == NULL || c->ready)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof why, "%s%s", what, r->str);
        rc__econn_fail(c, why);
        return;
    }
    if (--c->pending == 0)
        rc__econn_ready(c);
}

static void hs_auth(void *priv, const redisReply *r)
{
    hs_reply(priv, r, "");
}

static void hs_select(void *priv, const redisReply *r)
{
    hs_reply(priv, r, "SELECT: ");
}

static void hs_role(void *priv, const redisReply *r)
{
    econn *c = priv;

    if (r != NULL && !c->ready && rc__sentinel_role_ok(c, r) != 0) {
        rc__econn_fail(c, c->why);
        return;
    }
    hs_reply(c, r, "ROLE: ");
}

/* Send argv[0..n) on c as one command owed to done; 0 or -1. */
static int send_argv(econn *c, int n, const char **argv, rc__wire_done done)
{
    size_t lens[4];
    char *cmd;
    int i, len, rv;

    for (i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    if ((len = redisFormatCommandArgv(&cmd, n, argv, lens)) < 0)
        return -1;
    rv = rc__wire_send(c->w, cmd, (size_t)len, done, c);
    redisFreeCommand(cmd);
    return rv;
}

void rc__econn_handshake(econn *c)
{
    rc__elink *l = c->l;
    const rc_redis_url *u = &l->url;
    const char *v[4];
    char db[16];
    int rv = 0, n;

    c->pending = 0;
    if (c->role == ROLE_WATCH) {
        rc__econn_ready(c);
        return;
    }
    if (u->password[0] != '\0') {
        n = 0;
        v[n++] = "AUTH";
        if (u->user[0] != '\0')
            v[n++] = u->user;
        v[n++] = u->password;
        rv |= send_argv(c, n, v, hs_auth);
        c->pending++;
    }
    if (u->db != 0 && u->kind != RC_URL_CLUSTER) {
        snprintf(db, sizeof db, "%d", u->db);
        v[0] = "SELECT", v[1] = db;
        rv |= send_argv(c, 2, v, hs_select);
        c->pending++;
    }
    v[0] = "CLIENT", v[1] = "SETNAME", v[2] = l->names[c->role];
    rv |= send_argv(c, 3, v, hs_select);
    c->pending++;
    if (u->kind == RC_URL_SENTINEL) {
        v[0] = "ROLE";
        rv |= send_argv(c, 1, v, hs_role);
        c->pending++;
    }
    if (rv != 0)
        rc__econn_fail(c, "out of memory");
}
