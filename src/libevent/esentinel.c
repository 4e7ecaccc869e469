/*
 * Sentinel mode of the glue's links (elink.c). Before each connection to
 * the master, the sentinels are asked in turn (SENTINEL
 * GET-MASTER-ADDR-BY-NAME) where it is; the one that answered is asked
 * first next time. The handshake then asks the server its ROLE, so that a
 * stale answer (a master just demoted) is a failed attempt, not a link to
 * a replica. A watch connection to one sentinel listens on +switch-master
 * and, for our master, ends both connections at once, so that they
 * reconnect to the new one without waiting for a probe.
 * https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elink.h"

static void ask(econn *c);

/* This sentinel gave no answer: the next, or the attempt failed. */
static void next_sentinel(econn *c, const char *why)
{
    rc__elink *l = c->l;
    char msg[512];

    rc__wire_close(c->q);
    c->q = NULL;
    c->si = (c->si + 1) % l->url.nhosts;
    if (++c->asked < l->url.nhosts) {
        ask(c);
        return;
    }
    snprintf(msg, sizeof msg, "no sentinel gave master %s (last: %s)",
             l->url.master, why);
    rc__econn_fail(c, msg);
}

static void q_answer(void *priv, const redisReply *r)
{
    econn *c = priv;
    char why[300];

    if (r == NULL) /* the query was closed: whoever closed it moves on */
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len < sizeof c->host) {
        snprintf(c->host, sizeof c->host, "%s", r->element[0]->str);
        c->port = atoi(r->element[1]->str);
        rc__wire_close(c->q);
        c->q = NULL;
        rc__econn_dial(c);
        return;
    }
    snprintf(why, sizeof why, "%s",
             r->type == REDIS_REPLY_ERROR ? r->str : "unknown master");
    next_sentinel(c, why);
}

static void q_up(rc__wire *w, void *user)
{
    econn *c = user;
    const char *v[3] = {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", NULL};
    size_t lens[3] = {8, 23, 0};
    char *cmd;
    int len;

    v[2] = c->l->url.master;
    lens[2] = strlen(v[2]);
    len = redisFormatCommandArgv(&cmd, 3, v, lens);
    if (len < 0 || rc__wire_send(w, cmd, (size_t)len, q_answer, c) != 0)
        next_sentinel(c, "out of memory");
    if (len >= 0)
        redisFreeCommand(cmd);
}

static void q_down(rc__wire *w, const char *why, void *user)
{
    (void)w;
    next_sentinel(user, why);
}

static void q_push(rc__wire *w, const redisReply *r, void *user)
{
    (void)w;
    (void)r;
    (void)user;
}

static const rc__wire_cbs q_cbs = {q_up, q_down, q_push};

static void ask(econn *c)
{
    rc__elink *l = c->l;
    const rc_redis_host *h = &l->url.hosts[c->si];
    rc__wire_addr addr;
    char err[256];

    memset(&addr, 0, sizeof addr);
    addr.host = h->host;
    addr.port = h->port;
    addr.sni = l->url.sni[0] ? l->url.sni : NULL;
    c->q = rc__wire_open(l->base, l->dns, l->tls, &addr, &q_cbs, c, err,
                         sizeof err);
    if (c->q == NULL)
        next_sentinel(c, err);
}

void rc__sentinel_resolve(econn *c)
{
    c->asked = 0;
    if (c->si >= c->l->url.nhosts)
        c->si = 0;
    ask(c);
}

int rc__sentinel_role_ok(econn *c, const redisReply *r)
{
    const redisReply *e;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return 0; /* an error: hs_reply says it */
    e = r->element[0];
    if (e->type == REDIS_REPLY_STRING && strcmp(e->str, "master") == 0)
        return 0;
    snprintf(c->why, sizeof c->why, "%.200s:%d is a %.20s, not the master",
             c->host, c->port,
             e->type == REDIS_REPLY_STRING ? e->str : "server");
    return -1;
}

/* ---- the watch ------------------------------------------------------- */

void rc__sentinel_watch_dial(econn *c)
{
    rc__elink *l = c->l;
    const rc_redis_host *h = &l->url.hosts[c->si % l->url.nhosts];

    snprintf(c->host, sizeof c->host, "%s", h->host);
    c->port = h->port;
    rc__econn_dial(c);
}

static void on_watching(void *priv, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        rc__econn_fail(priv, r->str);
}

void rc__sentinel_watch_up(econn *c)
{
    if (rc__wire_subscribe(c->w, "SUBSCRIBE", "+switch-master", 14, on_watching,
                           c) != 0)
        rc__econn_fail(c, "out of memory");
}

/* Our master moved: both connections go now, and come back to it. */
static void switch_master(rc__elink *l)
{
    econn *cs[2] = {&l->cmd, &l->sub};
    int i;

    for (i = 0; i < 2; i++) {
        if (cs[i]->w == NULL && cs[i]->q == NULL)
            continue;
        rc__econn_fail(cs[i], "master switched");
        cs[i]->attempt = 0;
        rc__elink_arm(cs[i]->timer, 0);
    }
}

void rc__sentinel_push(econn *c, const redisReply *r)
{
    const char *body;
    size_t n;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[2]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "message") != 0)
        return;
    body = r->element[2]->str;
    n = strlen(c->l->url.master);
    /* "<name> <old ip> <old port> <new ip> <new port>" */
    if (strncmp(body, c->l->url.master, n) == 0 && body[n] == ' ')
        switch_master(c->l);
}
