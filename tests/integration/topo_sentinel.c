/* topo_harness: a master, a replica and sentinels (see topo_harness.h). */
#define _POSIX_C_SOURCE 200809L

#include "topo_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Sentinel -------------------------------------------------------- */

static int make_tmp_dir(char *out, const char *tag, char *err)
{
    const char *tmp = getenv("TMPDIR");
    int n;

    if (!tmp || !tmp[0])
        tmp = "/tmp";
    n = snprintf(out, RH_DIR_SIZE, "%s/%s-XXXXXX", tmp, tag);
    if (n < 0 || n >= RH_DIR_SIZE) {
        th__set_err(err, "TMPDIR too long: %s", tmp);
        out[0] = '\0';
        return -1;
    }
    if (!mkdtemp(out)) {
        th__set_err(err, "mkdtemp(%s): %s", out, strerror(errno));
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* Remove dir and the files in it (it has no subdirectories). */
static void remove_tree(char *dir)
{
    char path[RH_DIR_SIZE + 260];
    struct dirent *e;
    DIR *d;

    if (!dir[0])
        return;
    d = opendir(dir);
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (rmdir(dir) != 0 && errno != ENOENT)
        fprintf(stderr, "topo_harness: cannot remove %s: %s\n", dir,
                strerror(errno));
    dir[0] = '\0';
}

#ifndef TH_SENTINEL_LAUNCHER
#define TH_SENTINEL_LAUNCHER "sentinel_launch.sh"
#endif

/* sentinel_launch.sh: $TH_SENTINEL_LAUNCHER, else the build's. */
static const char *launcher(void)
{
    const char *env = getenv("TH_SENTINEL_LAUNCHER");

    return env && env[0] ? env : TH_SENTINEL_LAUNCHER;
}

/* A master name fit for a config line. */
static int plain_name(const char *t)
{
    return t[0] && !strpbrk(t, "'\"\n\r \\");
}

/* A sentinel's config file: its own, since it rewrites it. */
static int sentinel_conf(th_sentinel *s, int i, const th_sentinel_opts *o,
                         char *conf, size_t cap)
{
    char text[512];

    snprintf(conf, cap, "%s/sentinel-%d.conf", s->dir, i);
    snprintf(text, sizeof text,
             "sentinel monitor %s 127.0.0.1 %d %d\n"
             "sentinel down-after-milliseconds %s %d\n"
             "sentinel failover-timeout %s %d\n",
             s->name, s->node[s->master].port, o->quorum, s->name,
             o->down_after_ms, s->name, o->failover_timeout_ms);
    return th__write_file(conf, text, 0600, s->error);
}

/*
 * rh_start runs `<binary> --port P ... <extra>`, but redis-server takes a
 * config file only as its first argument, and a sentinel needs one: the
 * binary is sentinel_launch.sh, told the real one and the file by the
 * environment (set for the start only), which puts the file first and
 * execs (the pid stays the one rh_start checks and kills).
 */
static int start_sentinel(th_sentinel *s, int i, const th_sentinel_opts *o)
{
    char conf[RH_DIR_SIZE + 32];
    int rc;

    if (sentinel_conf(s, i, o, conf, sizeof conf) != 0)
        return -1;
    if (setenv("TH_SENTINEL_BIN", th_redis_server(), 1) != 0 ||
        setenv("TH_SENTINEL_CONF", conf, 1) != 0) {
        th__set_err(s->error, "setenv: %s", strerror(errno));
        return -1;
    }
    rc = th__launch(&s->sentinel[i], NULL, launcher(), 0);
    unsetenv("TH_SENTINEL_BIN");
    unsetenv("TH_SENTINEL_CONF");
    if (rc != 0)
        th__set_err(s->error, "sentinel %d: %s", i, s->sentinel[i].error);
    return rc;
}

/* The value of key in a flat key/value array reply, or "". */
static const char *map_get(const redisReply *m, const char *key)
{
    size_t i;

    if (!m || m->type != REDIS_REPLY_ARRAY)
        return "";
    for (i = 0; i + 1 < m->elements; i += 2)
        if (m->element[i]->type == REDIS_REPLY_STRING &&
            !strcmp(m->element[i]->str, key) &&
            m->element[i + 1]->type == REDIS_REPLY_STRING)
            return m->element[i + 1]->str;
    return "";
}

/* The master port sentinel i names, or -1. */
static int named_master(redisContext *ctx, const char *name)
{
    redisReply *r =
        redisCommand(ctx, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", name);
    int port = -1;

    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(r->element[1]->str);
    if (r)
        freeReplyObject(r);
    return port;
}

/* Whether the sentinel lists the replica on port with flags exactly
 * "slave" and its link to the master ok. */
static int lists_replica(redisContext *ctx, const char *name, int port)
{
    redisReply *r = redisCommand(ctx, "SENTINEL REPLICAS %s", name);
    int found = 0;
    size_t i;

    for (i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (atoi(map_get(r->element[i], "port")) == port)
            found = !strcmp(map_get(r->element[i], "flags"), "slave") &&
                    !strcmp(map_get(r->element[i], "master-link-status"), "ok");
    if (r)
        freeReplyObject(r);
    return found;
}

/* How many other sentinels it knows and thinks up. */
static int peers_up(redisContext *ctx, const char *name)
{
    redisReply *r = redisCommand(ctx, "SENTINEL SENTINELS %s", name);
    int n = 0;
    size_t i;

    for (i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        n += !strstr(map_get(r->element[i], "flags"), "down") &&
             !strstr(map_get(r->element[i], "flags"), "disconnected");
    if (r)
        freeReplyObject(r);
    return n;
}

struct swait {
    th_sentinel *s;
    int master;  /* node index the sentinels must name */
    int replica; /* node index they must list (link ok), or -1 */
    int quorum;  /* 1: also every peer up and CKQUORUM */
};

/* What sentinel i says, against w. 1 agrees, 0 not (why). */
static int sentinel_agrees(struct swait *w, int i, char *why, size_t cap)
{
    th_sentinel *s = w->s;
    redisContext *ctx = rh_connect(&s->sentinel[i]);
    redisReply *r = NULL;
    int mport = s->node[w->master].port, ok = 0, got;

    if (!ctx) {
        th__set_why(why, cap, "cannot connect to sentinel %d", i);
        return 0;
    }
    if ((got = named_master(ctx, s->name)) != mport)
        th__set_why(why, cap, "sentinel %d names master port %d, not %d", i,
                    got, mport);
    else if (w->replica >= 0 &&
             !lists_replica(ctx, s->name, s->node[w->replica].port))
        th__set_why(why, cap, "sentinel %d does not list replica port %d (ok)",
                    i, s->node[w->replica].port);
    else if (w->quorum && (got = peers_up(ctx, s->name)) != s->nsentinels - 1)
        th__set_why(why, cap, "sentinel %d knows %d other sentinel(s) of %d", i,
                    got, s->nsentinels - 1);
    else if (w->quorum &&
             !((r = redisCommand(ctx, "SENTINEL CKQUORUM %s", s->name)) &&
               r->type == REDIS_REPLY_STATUS && !strncmp(r->str, "OK", 2)))
        th__set_why(why, cap, "sentinel %d: CKQUORUM: %s", i,
                    th__reply_text(r));
    else
        ok = 1;
    if (r)
        freeReplyObject(r);
    redisFree(ctx);
    return ok;
}

/* INFO replication field of a data node, into out. */
static int node_info(const rh_server *n, const char *field, char *out,
                     size_t cap)
{
    redisReply *r = rh_cmd(n, "INFO replication");
    int rc = -1;

    out[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING)
        rc = th__info_field(r->str, field, out, cap);
    if (r)
        freeReplyObject(r);
    return rc;
}

static int sentinels_agree(void *arg, char *why, size_t cap)
{
    struct swait *w = arg;
    th_sentinel *s = w->s;
    char role[32];
    int i;

    for (i = 0; i < s->nsentinels; i++)
        if (!sentinel_agrees(w, i, why, cap))
            return 0;
    if (node_info(&s->node[w->master], "role", role, sizeof role) != 0 ||
        strcmp(role, "master")) {
        th__set_why(why, cap, "node %d (port %d) reports role:%s", w->master,
                    s->node[w->master].port, role);
        return 0;
    }
    return 1;
}

static int sentinels_wait(th_sentinel *s, int master, int replica, int quorum,
                          int timeout_ms, const char *what)
{
    struct swait w;

    w.s = s;
    w.master = master;
    w.replica = replica;
    w.quorum = quorum;
    return th__wait_for(s->error, sentinels_agree, &w, timeout_ms, what);
}

struct linkwait {
    const rh_server *replica;
    int master_port;
};

static int link_up(void *arg, char *why, size_t cap)
{
    struct linkwait *l = arg;
    char st[32], port[16];

    if (node_info(l->replica, "master_link_status", st, sizeof st) != 0 ||
        node_info(l->replica, "master_port", port, sizeof port) != 0 ||
        strcmp(st, "up") || atoi(port) != l->master_port) {
        th__set_why(why, cap, "port %d: master_link_status:%s master_port:%s",
                    l->replica->port, st, port);
        return 0;
    }
    return 1;
}

/* REPLICAOF the master, and wait for the link. */
static int follow(th_sentinel *s, int i, long long deadline)
{
    struct linkwait l;

    l.replica = &s->node[i];
    l.master_port = s->node[s->master].port;
    if (th__expect_ok(
            s->error,
            rh_cmd(&s->node[i], "REPLICAOF 127.0.0.1 %d", l.master_port),
            "node %d: REPLICAOF", i) != 0)
        return -1;
    return th__wait_for(s->error, link_up, &l, th__ms_left(deadline),
                        "the replica's link to its master");
}

static void sentinel_defaults(th_sentinel_opts *o, int sentinels)
{
    if (!o->master_name)
        o->master_name = "mymaster";
    if (o->quorum <= 0)
        o->quorum = sentinels > 1 ? 2 : 1;
    if (o->down_after_ms <= 0)
        o->down_after_ms = 1000;
    if (o->failover_timeout_ms <= 0)
        o->failover_timeout_ms = 3000;
}

static int sentinel_setup(th_sentinel *s, int sentinels, th_sentinel_opts *o,
                          long long deadline)
{
    static const char *const data_args[] = {"--repl-diskless-sync-delay", "0",
                                            NULL};
    int i;

    if (make_tmp_dir(s->dir, "th-sentinel", s->error) != 0)
        return -1;
    for (i = 0; i < 2; i++)
        if (th__launch(&s->node[i], data_args, NULL, 0) != 0) {
            th__set_err(s->error, "data node %d: %s", i, s->node[i].error);
            return -1;
        }
    if (follow(s, 1, deadline) != 0)
        return -1;
    /* Now: the sentinels' first INFO of the master lists the replica. */
    for (i = 0; i < sentinels; i++)
        if (start_sentinel(s, i, o) != 0)
            return -1;
    for (i = 0; i < sentinels && !o->default_periods; i++) {
        /* Best effort (SENTINEL DEBUG is 7.0+): without it the waits are
         * only longer. */
        redisReply *r = rh_cmd(
            &s->sentinel[i], "SENTINEL DEBUG info-period %d publish-period %d",
            TH_SENTINEL_INFO_MS, TH_SENTINEL_HELLO_MS);

        if (r)
            freeReplyObject(r);
    }
    return sentinels_wait(s, 0, 1, 1, th__ms_left(deadline),
                          "every sentinel to know the master, the replica "
                          "and the other sentinels");
}

int th_sentinel_start_opts(th_sentinel *s, int sentinels,
                           const th_sentinel_opts *opts)
{
    th_sentinel_opts o;

    memset(s, 0, sizeof *s);
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    sentinel_defaults(&o, sentinels);
    if (sentinels < 1 || sentinels > TH_MAX_SENTINELS ||
        !plain_name(o.master_name) || strlen(o.master_name) >= sizeof s->name) {
        th__set_err(s->error,
                    "th_sentinel_start: %d sentinels (1 to %d), name %s",
                    sentinels, TH_MAX_SENTINELS, o.master_name);
        return -1;
    }
    snprintf(s->name, sizeof s->name, "%s", o.master_name);
    s->nsentinels = sentinels;
    s->started_ = 1;
    if (sentinel_setup(s, sentinels, &o, th__now_ms() + TH_SENTINEL_START_MS)) {
        char why[TH_ERROR_SIZE];

        memcpy(why, s->error, sizeof why);
        th_sentinel_stop(s);
        memcpy(s->error, why, sizeof why);
        return -1;
    }
    return 0;
}

int th_sentinel_start(th_sentinel *s, int sentinels)
{
    return th_sentinel_start_opts(s, sentinels, NULL);
}

int th_sentinel_master_port(const th_sentinel *s)
{
    return s->node[s->master].port;
}

int th_sentinel_replica_port(const th_sentinel *s)
{
    return s->node[1 - s->master].port;
}

int th_sentinel_kill_master(th_sentinel *s)
{
    int old = s->master, other = 1 - s->master;

    if (s->node[old].pid <= 0 || s->node[other].pid <= 0) {
        th__set_err(s->error, "th_sentinel_kill_master: both nodes must be up");
        return -1;
    }
    if (rh_kill9(&s->node[old]) != 0) {
        th__set_err(s->error, "node %d: %s", old, s->node[old].error);
        return -1;
    }
    if (sentinels_wait(s, other, -1, 0, TH_SENTINEL_FAILOVER_MS,
                       "the sentinels to promote the replica") != 0)
        return -1;
    s->master = other;
    return 0;
}

int th_sentinel_restart_node(th_sentinel *s, int i)
{
    long long deadline = th__now_ms() + TH_SENTINEL_START_MS;

    if (i < 0 || i > 1 || th__launch(&s->node[i], NULL, NULL, 1) != 0) {
        th__set_err(s->error, "th_sentinel_restart_node %d: %s", i,
                    i < 0 || i > 1 ? "no such node" : s->node[i].error);
        return -1;
    }
    if (i == s->master) /* the only node: it is the master again */
        return sentinels_wait(s, i, -1, 0, th__ms_left(deadline),
                              "the sentinels to see the master again");
    if (follow(s, i, deadline) != 0)
        return -1;
    return sentinels_wait(s, s->master, i, 0, th__ms_left(deadline),
                          "every sentinel to list the restarted replica");
}

int th_sentinel_stop(th_sentinel *s)
{
    int i, rc = 0;

    for (i = 0; i < TH_MAX_SENTINELS; i++)
        if (rh_stop(&s->sentinel[i]) != 0) {
            th__set_err(s->error, "sentinel %d: %s", i, s->sentinel[i].error);
            rc = -1;
        }
    for (i = 0; i < 2; i++)
        if (rh_stop(&s->node[i]) != 0) {
            th__set_err(s->error, "node %d: %s", i, s->node[i].error);
            rc = -1;
        }
    remove_tree(s->dir);
    s->started_ = 0;
    return rc;
}
