/* topo_harness: a Redis Cluster made by hand (see topo_harness.h). */
#define _POSIX_C_SOURCE 200809L

#include "topo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the cluster: what each node says -------------------------------- */

/* A bulk reply from a command on an open context, as a string in out. */
static int ctx_text(redisContext *ctx, const char *cmd, char **out)
{
    redisReply *r = redisCommand(ctx, cmd);

    *out = NULL;
    if (r && r->type == REDIS_REPLY_STRING)
        *out = strdup(r->str);
    if (r)
        freeReplyObject(r);
    return *out ? 0 : -1;
}

/* One node's CLUSTER NODES, with node indexes for ids. */
struct view {
    short owner[TH_SLOTS];          /* node index or -1 */
    signed char role[TH_MAX_NODES]; /* 1 master, 0 replica, -1 unlisted */
    signed char of[TH_MAX_NODES];   /* a replica's master, -1 */
    signed char bad[TH_MAX_NODES];  /* fail, pfail, handshake, noaddr */
    int self;                       /* the "myself" line's node, -1 */
    int unknown;                    /* lines with ids we do not know */
    int open_slots;                 /* [slot->-id] / [slot-<-id] entries */
    int linked;                     /* replica: master_link_status:up */
    int master_port;                /* replica: INFO's master_port */
    char state[16];                 /* cluster_state */
    int assigned, slots_ok;         /* cluster_slots_assigned / _ok */
};

static int node_index(const th_cluster *c, const char *id, size_t len)
{
    int k;

    if (len != 40)
        return -1;
    for (k = 0; k < c->nnodes; k++)
        if (!strncmp(c->node[k].id, id, 40))
            return k;
    return -1;
}

/* Whether the comma-separated flags (len bytes at t) include flag. */
static int has(const char *t, size_t len, const char *flag)
{
    size_t n = strlen(flag), i = 0;

    while (i < len) {
        size_t e = i;

        while (e < len && t[e] != ',')
            e++;
        if (e - i == n && !memcmp(t + i, flag, n))
            return 1;
        i = e + 1;
    }
    return 0;
}

/* A slot token: "a", "a-b", or an open migration "[...]". */
static void parse_slot_token(struct view *v, const char *t, size_t len, int k)
{
    long a, b;
    char *end;

    if (t[0] == '[') {
        v->open_slots++;
        return;
    }
    a = strtol(t, &end, 10);
    b = a;
    if (end < t + len && *end == '-')
        b = strtol(end + 1, &end, 10);
    if (a < 0 || b >= TH_SLOTS || a > b)
        return;
    for (; a <= b; a++)
        v->owner[a] = (short)k;
}

/* One line of CLUSTER NODES. */
static void parse_node_line(const th_cluster *c, struct view *v,
                            const char *line, size_t len)
{
    const char *tok[8], *p = line, *end = line + len;
    size_t tl[8];
    int n = 0, k, m;

    while (p < end && n < 8) {
        tok[n] = p;
        while (p < end && *p != ' ')
            p++;
        tl[n] = (size_t)(p - tok[n]);
        n++;
        while (p < end && *p == ' ')
            p++;
    }
    if (n < 8)
        return;
    k = node_index(c, tok[0], tl[0]);
    if (k < 0) {
        v->unknown++;
        return;
    }
    v->role[k] = has(tok[2], tl[2], "master") ? 1 : 0;
    if (has(tok[2], tl[2], "myself"))
        v->self = k;
    if (has(tok[2], tl[2], "fail") || has(tok[2], tl[2], "fail?") ||
        has(tok[2], tl[2], "handshake") || has(tok[2], tl[2], "noaddr"))
        v->bad[k] = 1;
    m = node_index(c, tok[3], tl[3]);
    v->of[k] = (signed char)(v->role[k] == 0 ? m : -1);
    while (p < end) { /* slots, after the 8 fixed fields */
        const char *t = p;

        while (p < end && *p != ' ')
            p++;
        parse_slot_token(v, t, (size_t)(p - t), k);
        while (p < end && *p == ' ')
            p++;
    }
}

static void parse_nodes(const th_cluster *c, struct view *v, const char *text)
{
    const char *p = text;

    while (*p) {
        size_t len = strcspn(p, "\r\n");

        if (len)
            parse_node_line(c, v, p, len);
        p += len;
        while (*p == '\r' || *p == '\n')
            p++;
    }
}

static void view_reset(struct view *v)
{
    int i;

    for (i = 0; i < TH_SLOTS; i++)
        v->owner[i] = -1;
    memset(v->role, -1, sizeof v->role);
    memset(v->of, -1, sizeof v->of);
    memset(v->bad, 0, sizeof v->bad);
    v->self = -1;
    v->unknown = v->open_slots = v->linked = 0;
    v->master_port = 0;
    v->state[0] = '\0';
    v->assigned = v->slots_ok = 0;
}

/* Read node k's CLUSTER INFO, CLUSTER NODES and, for a replica, INFO
 * replication into v. 0, or -1 with why. */
static int read_view(const th_cluster *c, int k, struct view *v, char *why,
                     size_t cap)
{
    redisContext *ctx = rh_connect(&c->node[k].rh);
    char *info = NULL, *nodes = NULL, *repl = NULL, f[32];
    int rc = -1;

    view_reset(v);
    if (!ctx) {
        th__set_why(why, cap, "cannot connect to node %d (port %d)", k,
                    c->node[k].rh.port);
        return -1;
    }
    if (ctx_text(ctx, "CLUSTER INFO", &info) != 0 ||
        ctx_text(ctx, "CLUSTER NODES", &nodes) != 0) {
        th__set_why(why, cap, "node %d (port %d): CLUSTER INFO/NODES failed", k,
                    c->node[k].rh.port);
        goto out;
    }
    th__info_field(info, "cluster_state", v->state, sizeof v->state);
    v->assigned = th__info_field(info, "cluster_slots_assigned", f, sizeof f)
                      ? 0
                      : atoi(f);
    v->slots_ok =
        th__info_field(info, "cluster_slots_ok", f, sizeof f) ? 0 : atoi(f);
    parse_nodes(c, v, nodes);
    if (v->self == k && v->role[k] == 0 &&
        ctx_text(ctx, "INFO replication", &repl) == 0) {
        v->linked =
            th__info_field(repl, "master_link_status", f, sizeof f) == 0 &&
            !strcmp(f, "up");
        v->master_port =
            th__info_field(repl, "master_port", f, sizeof f) ? 0 : atoi(f);
    }
    rc = 0;
out:
    free(info);
    free(nodes);
    free(repl);
    redisFree(ctx);
    return rc;
}

/* ---- the cluster: healthy -------------------------------------------- */

/* What one live node says of itself. 1 fine, 0 not (why). */
static int self_ok(const th_cluster *c, const struct view *v, int k, char *why,
                   size_t cap)
{
    int m;

    if (v->self != k) {
        th__set_why(why, cap,
                    "node %d (port %d) has another node id than %.40s", k,
                    c->node[k].rh.port, c->node[k].id);
        return 0;
    }
    if (strcmp(v->state, "ok") || v->assigned != TH_SLOTS ||
        v->slots_ok != TH_SLOTS) {
        th__set_why(why, cap,
                    "node %d (port %d): cluster_state:%s, slots assigned %d, "
                    "ok %d",
                    k, c->node[k].rh.port, v->state, v->assigned, v->slots_ok);
        return 0;
    }
    if (v->unknown || v->open_slots) {
        th__set_why(why, cap,
                    "node %d (port %d) lists %d unknown node(s), %d open slot "
                    "migration(s)",
                    k, c->node[k].rh.port, v->unknown, v->open_slots);
        return 0;
    }
    if (v->role[k] != 0)
        return 1;
    m = v->of[k];
    if (m < 0 || !c->node[m].alive || !v->linked ||
        v->master_port != c->node[m].rh.port) {
        th__set_why(why, cap,
                    "replica node %d (port %d): master_link_status %s, "
                    "master_port %d, master node %d",
                    k, c->node[k].rh.port, v->linked ? "up" : "not up",
                    v->master_port, m);
        return 0;
    }
    return 1;
}

/* Whether node k's view of node j agrees with j's own. */
static int peer_ok(const th_cluster *c, const struct view *v, int k,
                   const struct view *vj, int j, char *why, size_t cap)
{
    if (v->role[j] < 0 || v->bad[j]) {
        th__set_why(why, cap, "node %d (port %d) %s node %d (port %d)", k,
                    c->node[k].rh.port,
                    v->role[j] < 0 ? "does not know" : "flags as failing", j,
                    c->node[j].rh.port);
        return 0;
    }
    if (v->role[j] != vj->role[j] || v->of[j] != vj->of[j]) {
        th__set_why(why, cap,
                    "node %d (port %d) does not yet see node %d as the %s it "
                    "says it is",
                    k, c->node[k].rh.port, j,
                    vj->role[j] ? "master" : "replica");
        return 0;
    }
    return 1;
}

/* The slot map of view v: every slot owned by a live master. */
static int slots_ok(const th_cluster *c, const struct view *v, char *why,
                    size_t cap)
{
    int s;

    for (s = 0; s < TH_SLOTS; s++) {
        int o = v->owner[s];

        if (o < 0 || !c->node[o].alive || v->role[o] != 1) {
            th__set_why(why, cap, "slot %d is owned by %s%d", s,
                        o < 0 ? "no node " : "the dead or non-master node ", o);
            return 0;
        }
    }
    return 1;
}

/* Exactly one live master per shard that has a live node. Fills master. */
static int shards_ok(const th_cluster *c, const struct view *v, int *master,
                     char *why, size_t cap)
{
    int m, k;

    for (m = 0; m < c->nmasters; m++) {
        int live = 0;

        master[m] = -1;
        for (k = 0; k < c->nnodes; k++) {
            int shard;

            if (!c->node[k].alive) /* no view read */
                continue;
            shard = v[k].role[k] == 0 && v[k].of[k] >= 0
                        ? c->node[v[k].of[k]].shard
                        : c->node[k].shard;
            if (shard != m)
                continue;
            live++;
            if (v[k].role[k] != 1)
                continue;
            if (master[m] >= 0) {
                th__set_why(why, cap,
                            "shard %d has two masters: nodes %d and %d", m,
                            master[m], k);
                return 0;
            }
            master[m] = k;
        }
        if (live && master[m] < 0) {
            th__set_why(why, cap, "shard %d has no live master", m);
            return 0;
        }
    }
    return 1;
}

/* Note what the (healthy) cluster said in c. */
static void record(th_cluster *c, const struct view *v, const int *master)
{
    int k;

    for (k = 0; k < c->nnodes; k++) {
        if (!c->node[k].alive)
            continue;
        c->node[k].is_master = v[k].role[k] == 1;
        if (!c->node[k].is_master && v[k].of[k] >= 0)
            c->node[k].shard = c->node[v[k].of[k]].shard;
    }
    memcpy(c->master, master, sizeof c->master);
}

struct health {
    th_cluster *c;
    struct view *v;  /* TH_MAX_NODES of them */
    int want_master; /* a node that must be master, or -1 */
};

static int healthy(void *arg, char *why, size_t cap)
{
    struct health *h = arg;
    th_cluster *c = h->c;
    int master[TH_MAX_NODES], k, j, first = -1;

    for (k = 0; k < TH_MAX_NODES; k++)
        master[k] = -1;
    for (k = 0; k < c->nnodes; k++) {
        if (!c->node[k].alive)
            continue;
        if (read_view(c, k, &h->v[k], why, cap) != 0 ||
            !self_ok(c, &h->v[k], k, why, cap))
            return 0;
        if (first < 0)
            first = k;
    }
    if (first < 0) {
        th__set_why(why, cap, "no node is alive");
        return -1;
    }
    for (k = first; k < c->nnodes; k++) {
        if (!c->node[k].alive)
            continue;
        for (j = 0; j < c->nnodes; j++)
            if (c->node[j].alive &&
                !peer_ok(c, &h->v[k], k, &h->v[j], j, why, cap))
                return 0;
        if (memcmp(h->v[k].owner, h->v[first].owner, sizeof h->v[k].owner)) {
            th__set_why(why, cap, "nodes %d and %d differ on the slot owners",
                        first, k);
            return 0;
        }
    }
    if (!slots_ok(c, &h->v[first], why, cap) ||
        !shards_ok(c, h->v, master, why, cap))
        return 0;
    if (h->want_master >= 0 && h->v[h->want_master].role[h->want_master] != 1) {
        th__set_why(why, cap, "node %d is not master yet", h->want_master);
        return 0;
    }
    record(c, h->v, master);
    return 1;
}

static int wait_healthy(th_cluster *c, int want_master, int timeout_ms,
                        const char *what)
{
    struct health h;
    int rc;

    h.c = c;
    h.want_master = want_master;
    h.v = malloc(sizeof *h.v * TH_MAX_NODES);
    if (!h.v) {
        th__set_err(c->error, "out of memory");
        return -1;
    }
    rc = th__wait_for(c->error, healthy, &h, timeout_ms, what);
    free(h.v);
    return rc;
}

int th_cluster_wait_ok(th_cluster *c, int timeout_ms)
{
    return wait_healthy(c, -1, timeout_ms, "a healthy cluster");
}

/* ---- the cluster: starting ------------------------------------------- */

/*
 * The cluster bus listens on --cluster-port, by default port + 10000, which
 * does not exist for the upper quarter of the ephemeral range rh_start
 * picks from: each node gets a free port of its own for it (another
 * process may take it first: a few tries).
 */
static int start_node(th_cluster *c, int k, const th_cluster_opts *o)
{
    const char *args[RH_MAX_EXTRA_ARGS + 1];
    char timeout[16], bus[16];
    int n = 0, i, attempt;

    snprintf(timeout, sizeof timeout, "%d", c->node_timeout_ms);
    args[n++] = "--cluster-enabled";
    args[n++] = "yes";
    args[n++] = "--cluster-config-file";
    args[n++] = "nodes.conf"; /* relative to --dir, the node's own */
    args[n++] = "--cluster-port";
    args[n++] = bus;
    args[n++] = "--cluster-node-timeout";
    args[n++] = timeout;
    args[n++] = "--cluster-allow-replica-migration";
    args[n++] = "no";
    args[n++] = "--repl-diskless-sync-delay";
    args[n++] = "0";
    for (i = 0; o && o->extra_args && o->extra_args[i]; i++) {
        if (n >= RH_MAX_EXTRA_ARGS) {
            th__set_err(c->error, "too many extra_args");
            return -1;
        }
        args[n++] = o->extra_args[i];
    }
    args[n] = NULL;
    for (attempt = 0; attempt < 3; attempt++) {
        c->node[k].bus_port = th__free_port();
        snprintf(bus, sizeof bus, "%d", c->node[k].bus_port);
        if (c->node[k].bus_port > 0 &&
            th__launch(&c->node[k].rh, args, NULL, 0) == 0) {
            c->node[k].alive = 1;
            return 0;
        }
    }
    th__set_err(c->error, "node %d: %s", k, c->node[k].rh.error);
    return -1;
}

static int read_id(th_cluster *c, int k)
{
    redisReply *r = rh_cmd(&c->node[k].rh, "CLUSTER MYID");
    int ok = r && r->type == REDIS_REPLY_STRING && r->len == 40;

    if (ok)
        memcpy(c->node[k].id, r->str, 41);
    else
        th__set_err(c->error, "node %d: CLUSTER MYID: %s", k,
                    th__reply_text(r));
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Epochs, slots and MEETs: a cluster of masters that have not met yet. */
static int assign_and_meet(th_cluster *c)
{
    int k;

    for (k = 0; k < c->nnodes; k++)
        if (read_id(c, k) != 0 ||
            th__expect_ok(
                c->error,
                rh_cmd(&c->node[k].rh, "CLUSTER SET-CONFIG-EPOCH %d", k + 1),
                "node %d: CLUSTER SET-CONFIG-EPOCH", k) != 0)
            return -1;
    for (k = 0; k < c->nmasters; k++) {
        int lo = (int)((long)TH_SLOTS * k / c->nmasters);
        int hi = (int)((long)TH_SLOTS * (k + 1) / c->nmasters) - 1;

        if (th__expect_ok(
                c->error,
                rh_cmd(&c->node[k].rh, "CLUSTER ADDSLOTSRANGE %d %d", lo, hi),
                "node %d: CLUSTER ADDSLOTSRANGE %d %d", k, lo, hi) != 0)
            return -1;
    }
    for (k = 1; k < c->nnodes; k++)
        if (th__expect_ok(c->error,
                          rh_cmd(&c->node[0].rh, "CLUSTER MEET 127.0.0.1 %d %d",
                                 c->node[k].rh.port, c->node[k].bus_port),
                          "CLUSTER MEET node %d", k) != 0)
            return -1;
    return 0;
}

/* Every node lists every node, none in handshake or failing. */
static int all_met(void *arg, char *why, size_t cap)
{
    struct health *h = arg;
    th_cluster *c = h->c;
    int k, j;

    for (k = 0; k < c->nnodes; k++) {
        if (read_view(c, k, &h->v[0], why, cap) != 0)
            return 0;
        if (h->v[0].unknown) {
            th__set_why(why, cap, "node %d still has %d node(s) in handshake",
                        k, h->v[0].unknown);
            return 0;
        }
        for (j = 0; j < c->nnodes; j++)
            if (h->v[0].role[j] < 0 || h->v[0].bad[j]) {
                th__set_why(why, cap, "node %d does not know node %d yet", k,
                            j);
                return 0;
            }
    }
    return 1;
}

static int meet_and_replicate(th_cluster *c, long long deadline)
{
    struct health h;
    int k, rc;

    h.c = c;
    h.want_master = -1;
    h.v = malloc(sizeof *h.v);
    if (!h.v) {
        th__set_err(c->error, "out of memory");
        return -1;
    }
    rc = th__wait_for(c->error, all_met, &h, th__ms_left(deadline),
                      "every cluster node to know every other");
    free(h.v);
    for (k = c->nmasters; rc == 0 && k < c->nnodes; k++)
        rc = th__expect_ok(c->error,
                           rh_cmd(&c->node[k].rh, "CLUSTER REPLICATE %s",
                                  c->node[c->node[k].shard].id),
                           "node %d: CLUSTER REPLICATE", k);
    return rc;
}

int th_cluster_start_opts(th_cluster *c, int masters, int replicas_per_master,
                          const th_cluster_opts *o)
{
    long long deadline = th__now_ms() + TH_CLUSTER_START_MS;
    int k, n = masters * (1 + replicas_per_master);

    memset(c, 0, sizeof *c);
    if (masters < 1 || replicas_per_master < 0 || n > TH_MAX_NODES) {
        th__set_err(c->error,
                    "th_cluster_start: %d masters with %d replicas "
                    "each (at most %d nodes)",
                    masters, replicas_per_master, TH_MAX_NODES);
        return -1;
    }
    c->nmasters = masters;
    c->nreplicas = replicas_per_master;
    c->nnodes = n;
    c->node_timeout_ms =
        o && o->node_timeout_ms > 0 ? o->node_timeout_ms : TH_NODE_TIMEOUT_MS;
    c->started_ = 1;
    for (k = 0; k < TH_MAX_NODES; k++)
        c->master[k] = k < masters ? k : -1;
    for (k = 0; k < n; k++) {
        c->node[k].shard =
            k < masters ? k : (k - masters) / replicas_per_master;
        c->node[k].is_master = k < masters;
        if (start_node(c, k, o) != 0)
            goto fail;
    }
    if (assign_and_meet(c) != 0 || meet_and_replicate(c, deadline) != 0 ||
        wait_healthy(c, -1, th__ms_left(deadline),
                     "the new cluster to be healthy"))
        goto fail;
    return 0;
fail : {
    char why[TH_ERROR_SIZE];

    memcpy(why, c->error, sizeof why);
    th_cluster_stop(c);
    memcpy(c->error, why, sizeof why);
    return -1;
}
}

int th_cluster_start(th_cluster *c, int masters, int replicas_per_master)
{
    return th_cluster_start_opts(c, masters, replicas_per_master, NULL);
}

int th_cluster_stop(th_cluster *c)
{
    int k, rc = 0;

    for (k = 0; k < TH_MAX_NODES; k++) {
        if (rh_stop(&c->node[k].rh) != 0) {
            th__set_err(c->error, "node %d: %s", k, c->node[k].rh.error);
            rc = -1;
        }
        c->node[k].alive = 0;
    }
    c->started_ = 0;
    return rc;
}

/* ---- the cluster: slots ---------------------------------------------- */

static int first_alive(const th_cluster *c)
{
    int k;

    for (k = 0; k < c->nnodes; k++)
        if (c->node[k].alive)
            return k;
    return -1;
}

int th_cluster_keyslot(th_cluster *c, const char *key)
{
    int k = first_alive(c), slot = -1;
    redisReply *r;

    if (k < 0) {
        th__set_err(c->error, "th_cluster_keyslot: no node is alive");
        return -1;
    }
    r = rh_cmd(&c->node[k].rh, "CLUSTER KEYSLOT %s", key);
    if (r && r->type == REDIS_REPLY_INTEGER)
        slot = (int)r->integer;
    else
        th__set_err(c->error, "CLUSTER KEYSLOT: %s", th__reply_text(r));
    if (r)
        freeReplyObject(r);
    return slot;
}

int th_cluster_node_of_slot(th_cluster *c, int slot)
{
    struct view *v;
    char why[TH_WHY_SIZE];
    int k = first_alive(c), o = -1;

    if (slot < 0 || slot >= TH_SLOTS || k < 0) {
        th__set_err(c->error, "node_of_slot: slot %d, first live node %d", slot,
                    k);
        return -1;
    }
    v = malloc(sizeof *v);
    if (!v || read_view(c, k, v, why, sizeof why) != 0)
        th__set_err(c->error, "node_of_slot: %s", v ? why : "out of memory");
    else if ((o = v->owner[slot]) < 0)
        th__set_err(c->error, "node %d says no node owns slot %d", k, slot);
    free(v);
    return o;
}

int th_cluster_master_of_slot(th_cluster *c, int slot)
{
    int k = th_cluster_node_of_slot(c, slot);

    return k < 0 ? -1 : c->node[k].rh.port;
}

int th_cluster_shard_of_slot(th_cluster *c, int slot)
{
    int k = th_cluster_node_of_slot(c, slot);

    return k < 0 ? -1 : c->node[k].shard;
}

int th_cluster_master_of_key(th_cluster *c, const char *key)
{
    int slot = th_cluster_keyslot(c, key);

    return slot < 0 ? -1 : th_cluster_master_of_slot(c, slot);
}

/* ---- the cluster: migrating a slot ----------------------------------- */

/* MIGRATE the keys of one GETKEYSINSLOT reply from src to dst. */
static int migrate_batch(th_cluster *c, int src, int dst,
                         const redisReply *keys)
{
    const char *argv[8 + TH_MIGRATE_BATCH];
    size_t lens[8 + TH_MIGRATE_BATCH];
    char port[16];
    redisContext *ctx;
    redisReply *r;
    int argc = 0;
    size_t i;

    snprintf(port, sizeof port, "%d", c->node[dst].rh.port);
    argv[argc++] = "MIGRATE";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = port;
    argv[argc++] = "";
    argv[argc++] = "0";
    argv[argc++] = "1500"; /* ms; within rh_connect's reply timeout */
    argv[argc++] = "KEYS";
    for (i = 0; i < (size_t)argc; i++)
        lens[i] = strlen(argv[i]);
    for (i = 0; i < keys->elements && i < TH_MIGRATE_BATCH; i++) {
        argv[argc] = keys->element[i]->str;
        lens[argc++] = keys->element[i]->len;
    }
    ctx = rh_connect(&c->node[src].rh);
    if (!ctx) {
        th__set_err(c->error, "MIGRATE: cannot connect to node %d", src);
        return -1;
    }
    r = redisCommandArgv(ctx, argc, argv, lens);
    redisFree(ctx);
    if (r && r->type == REDIS_REPLY_STATUS) { /* OK, or NOKEY */
        freeReplyObject(r);
        return 0;
    }
    th__set_err(c->error, "MIGRATE from node %d to node %d: %s", src, dst,
                th__reply_text(r));
    if (r)
        freeReplyObject(r);
    return -1;
}

/* Move the slot's keys until the source has none, by the deadline. */
static int move_keys(th_cluster *c, int slot, int src, int dst,
                     long long deadline)
{
    for (;;) {
        redisReply *r = rh_cmd(&c->node[src].rh, "CLUSTER GETKEYSINSLOT %d %d",
                               slot, TH_MIGRATE_BATCH);
        int rc;

        if (!r || r->type != REDIS_REPLY_ARRAY) {
            th__set_err(c->error, "CLUSTER GETKEYSINSLOT on node %d: %s", src,
                        th__reply_text(r));
            if (r)
                freeReplyObject(r);
            return -1;
        }
        if (r->elements == 0) {
            freeReplyObject(r);
            return 0;
        }
        rc = migrate_batch(c, src, dst, r);
        freeReplyObject(r);
        if (rc != 0)
            return -1;
        if (th__ms_left(deadline) <= 0) {
            th__set_err(c->error,
                        "timed out after %d ms moving the keys of slot %d",
                        TH_MIGRATE_MS, slot);
            return -1;
        }
    }
}

/* SETSLOT NODE: the target, the source, then the other live masters. */
static int close_slot(th_cluster *c, int slot, int src, int dst)
{
    int order[TH_MAX_NODES], n = 0, k, i;

    order[n++] = dst;
    order[n++] = src;
    for (k = 0; k < c->nnodes; k++)
        if (k != src && k != dst && c->node[k].alive && c->node[k].is_master)
            order[n++] = k;
    for (i = 0; i < n; i++)
        if (th__expect_ok(c->error,
                          rh_cmd(&c->node[order[i]].rh,
                                 "CLUSTER SETSLOT %d NODE %s", slot,
                                 c->node[dst].id),
                          "node %d: CLUSTER SETSLOT %d NODE", order[i], slot))
            return -1;
    return 0;
}

int th_cluster_migrate_slot(th_cluster *c, int slot, int to_master)
{
    long long deadline = th__now_ms() + TH_MIGRATE_MS;
    int src, dst;

    if (slot < 0 || slot >= TH_SLOTS || to_master < 0 ||
        to_master >= c->nmasters) {
        th__set_err(c->error, "migrate_slot: slot %d, master index %d", slot,
                    to_master);
        return -1;
    }
    if (th_cluster_wait_ok(c, TH_FAILOVER_MS) != 0 ||
        (src = th_cluster_node_of_slot(c, slot)) < 0)
        return -1;
    dst = c->master[to_master];
    if (src == dst)
        return 0;
    if (th__expect_ok(c->error,
                      rh_cmd(&c->node[dst].rh,
                             "CLUSTER SETSLOT %d IMPORTING %s", slot,
                             c->node[src].id),
                      "node %d: CLUSTER SETSLOT %d IMPORTING", dst, slot) ||
        th__expect_ok(c->error,
                      rh_cmd(&c->node[src].rh,
                             "CLUSTER SETSLOT %d MIGRATING %s", slot,
                             c->node[dst].id),
                      "node %d: CLUSTER SETSLOT %d MIGRATING", src, slot) ||
        move_keys(c, slot, src, dst, deadline) ||
        close_slot(c, slot, src, dst) ||
        wait_healthy(c, -1, th__ms_left(deadline),
                     "every node to agree on the migrated slot"))
        return -1;
    if (th_cluster_node_of_slot(c, slot) != dst) {
        th__set_err(c->error, "slot %d is not on node %d after the migration",
                    slot, dst);
        return -1;
    }
    return 0;
}

/* ---- the cluster: failovers ------------------------------------------ */

/* A live replica of master index m (linked: the cluster is healthy). */
static int replica_of(const th_cluster *c, int m)
{
    int k;

    for (k = 0; k < c->nnodes; k++)
        if (c->node[k].alive && !c->node[k].is_master && c->node[k].shard == m)
            return k;
    return -1;
}

static int check_shard(th_cluster *c, int m, const char *who)
{
    if (m < 0 || m >= c->nmasters) {
        th__set_err(c->error, "%s: no master index %d", who, m);
        return -1;
    }
    if (th_cluster_wait_ok(c, TH_FAILOVER_MS) != 0)
        return -1;
    if (replica_of(c, m) < 0) {
        th__set_err(c->error, "%s: master index %d has no live replica", who,
                    m);
        return -1;
    }
    return 0;
}

int th_cluster_failover(th_cluster *c, int m)
{
    int r;

    if (check_shard(c, m, "th_cluster_failover") != 0)
        return -1;
    r = replica_of(c, m);
    if (th__expect_ok(c->error, rh_cmd(&c->node[r].rh, "CLUSTER FAILOVER"),
                      "node %d: CLUSTER FAILOVER", r) != 0)
        return -1;
    return wait_healthy(c, r, TH_FAILOVER_MS,
                        "the replica to take over after CLUSTER FAILOVER");
}

int th_cluster_kill_master(th_cluster *c, int m)
{
    int k;

    if (check_shard(c, m, "th_cluster_kill_master") != 0)
        return -1;
    k = c->master[m];
    if (rh_kill9(&c->node[k].rh) != 0) {
        th__set_err(c->error, "node %d: %s", k, c->node[k].rh.error);
        return -1;
    }
    c->node[k].alive = 0;
    return wait_healthy(c, -1, 4 * c->node_timeout_ms + TH_FAILOVER_MS,
                        "the cluster to elect a replica of the killed "
                        "master");
}

int th_cluster_kill_node(th_cluster *c, int node)
{
    if (node < 0 || node >= c->nnodes || !c->node[node].alive) {
        th__set_err(c->error, "th_cluster_kill_node: node %d is not running",
                    node);
        return -1;
    }
    c->node[node].alive = 0;
    if (rh_kill9(&c->node[node].rh) != 0) {
        th__set_err(c->error, "node %d: %s", node, c->node[node].rh.error);
        return -1;
    }
    return 0;
}

/* healthy(), and a restarted master the cluster left empty is told to
 * follow its shard's master (cluster-allow-replica-migration is off). */
struct rejoin {
    struct health h;
    int node;
};

static int rejoined(void *arg, char *why, size_t cap)
{
    struct rejoin *j = arg;
    th_cluster *c = j->h.c;
    struct view *v = &j->h.v[TH_MAX_NODES]; /* the spare */
    char ignored[TH_ERROR_SIZE];
    int k = j->node, m = c->master[c->node[k].shard], s, owned = 0;

    if (healthy(&j->h, why, cap))
        return 1;
    if (m < 0 || m == k || !c->node[m].alive ||
        read_view(c, k, v, ignored, sizeof ignored) != 0 || v->self != k ||
        v->role[k] != 1)
        return 0;
    for (s = 0; s < TH_SLOTS; s++)
        owned += v->owner[s] == k;
    if (!owned) /* an empty master: follow the shard's master */
        th__expect_ok(
            ignored,
            rh_cmd(&c->node[k].rh, "CLUSTER REPLICATE %s", c->node[m].id),
            "node %d: CLUSTER REPLICATE", k);
    return 0;
}

int th_cluster_restart_node(th_cluster *c, int node)
{
    struct rejoin j;
    char id[41];
    int rc;

    if (node < 0 || node >= c->nnodes || !c->node[node].rh.port) {
        th__set_err(c->error, "th_cluster_restart_node: no node %d", node);
        return -1;
    }
    memcpy(id, c->node[node].id, sizeof id);
    if (th__launch(&c->node[node].rh, NULL, NULL, 1) != 0) {
        th__set_err(c->error, "node %d: %s", node, c->node[node].rh.error);
        return -1;
    }
    c->node[node].alive = 1;
    if (read_id(c, node) != 0)
        return -1;
    if (strcmp(id, c->node[node].id)) {
        th__set_err(c->error,
                    "node %d came back with a new id (nodes.conf lost)", node);
        return -1;
    }
    j.h.c = c;
    j.h.want_master = -1;
    j.node = node;
    j.h.v = malloc(sizeof *j.h.v * (TH_MAX_NODES + 1));
    if (!j.h.v) {
        th__set_err(c->error, "out of memory");
        return -1;
    }
    rc = th__wait_for(c->error, rejoined, &j, TH_CLUSTER_START_MS,
                      "the restarted node to rejoin a healthy cluster");
    free(j.h.v);
    return rc;
}
