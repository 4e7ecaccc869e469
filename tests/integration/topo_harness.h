/*
 * topo_harness: Redis topologies beyond one server, for integration tests:
 * a Redis Cluster, a Sentinel group, a TLS server (and its certificates).
 *
 * Built on redis_harness (read its header): every redis-server, sentinels
 * included, is started by rh_start, so the rules are the same. Code:
 * topo_harness.c (shared), topo_cluster.c, topo_sentinel.c, topo_tls.c.
 * Loopback only; every wait has a deadline and a failure says what it was
 * waiting for (in x->error, also printed to stderr); no process outlives the
 * test (redis_harness' table, atexit and signal handlers, PR_SET_PDEATHSIG).
 * Conditions are polled every TH_POLL_MS; nothing sleeps to synchronise.
 *
 * Not thread-safe: one thread drives the harness. A zeroed th_cluster or
 * th_sentinel is safe to stop, so a teardown can always call the stop
 * functions. Do not copy a started one. At most RH_MAX_SERVERS servers per
 * process in all (cluster nodes, sentinels and the rest together).
 *
 * External programs: openssl (th_tls_certs) is $TH_OPENSSL if set, else the
 * path the build found, else "openssl" on $PATH. The sentinels run the
 * redis-server redis_harness runs ($RH_REDIS_SERVER, else the build's),
 * through tests/integration/sentinel_launch.sh ($TH_SENTINEL_LAUNCHER
 * overrides the path the build compiles in).
 */
#ifndef RC_TOPO_HARNESS_H
#define RC_TOPO_HARNESS_H

#include <stddef.h>

#include "redis_harness.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TH_POLL_MS 20           /* between two looks at a condition */
#define TH_ERROR_SIZE 1024      /* x->error */
#define TH_SLOTS 16384          /* Redis Cluster hash slots */
#define TH_MAX_NODES 16         /* cluster nodes */
#define TH_MAX_SENTINELS 7      /* sentinels of a th_sentinel */
#define TH_NODE_TIMEOUT_MS 2000 /* default cluster-node-timeout */

/* ---- Redis Cluster --------------------------------------------------- */

/*
 * A "master index" m (0 <= m < masters) names a shard: the node started as
 * master m and the replicas started for it. Whichever of them is master now
 * is node[master[m]]; failovers change master[m], never the index, so a
 * test can say "fail over shard 1" twice. Nodes are numbered: masters
 * first (node m started as master m), then the replicas of master 0, of
 * master 1, ... (node masters + m * replicas + r).
 */
typedef struct th_node {
    rh_server rh;  /* rh.port, rh.pid (0 while down); do not rh_* it */
    char id[41];   /* its cluster node id (kept across restarts) */
    int bus_port;  /* its --cluster-port */
    int shard;     /* its master index */
    int is_master; /* its role, as of the harness' last look */
    int alive;     /* 0 after a kill, until th_cluster_restart_node */
} th_node;

typedef struct th_cluster {
    /* Public, read-only. */
    int nmasters, nreplicas; /* as started: masters, replicas per master */
    int nnodes;              /* nmasters * (1 + nreplicas) */
    int node_timeout_ms;
    th_node node[TH_MAX_NODES];
    int master[TH_MAX_NODES]; /* master[m]: node index, -1 if none alive */
    char error[TH_ERROR_SIZE];

    /* Private. */
    int started_;
} th_cluster;

typedef struct th_cluster_opts {
    int node_timeout_ms; /* 0: TH_NODE_TIMEOUT_MS */
    /* NULL or a NULL-terminated list passed to every node after the
     * harness' own arguments (as in rh_start). */
    const char *const *extra_args;
} th_cluster_opts;

/*
 * Start masters * (1 + replicas_per_master) nodes (masters >= 3 for
 * failovers to have a majority; 1..TH_MAX_NODES nodes in all), each an
 * rh_start with
 *   --cluster-enabled yes --cluster-config-file nodes.conf (in its dir)
 *   --cluster-port B (a free port: the default, port + 10000, is past
 *   65535 for ports above 55535) --cluster-node-timeout T
 * --cluster-allow-replica-migration no
 *   --repl-diskless-sync-delay 0
 * and make the cluster by hand: distinct config epochs, the slots split
 * evenly in ranges (CLUSTER ADDSLOTSRANGE), CLUSTER MEET, CLUSTER
 * REPLICATE. Returns once the cluster is healthy (th_cluster_wait_ok), or
 * after TH_CLUSTER_START_MS with -1, c->error saying what was missing, and
 * every node stopped. c is zeroed first.
 */
#define TH_CLUSTER_START_MS 30000
int th_cluster_start(th_cluster *c, int masters, int replicas_per_master);
int th_cluster_start_opts(th_cluster *c, int masters, int replicas_per_master,
                          const th_cluster_opts *opts);

/* Stop every node (rh_stop) and remove their directories. 0, or -1 when a
 * node would not die (c->error). Safe on a zeroed or stopped cluster. */
int th_cluster_stop(th_cluster *c);

/*
 * Wait until the cluster is healthy, as seen from every live node:
 *   - CLUSTER INFO: cluster_state:ok, cluster_slots_assigned and
 *     cluster_slots_ok 16384;
 *   - CLUSTER NODES: it knows every live node, none flagged fail, pfail,
 *     handshake or noaddr, and no node it does not know of us; no slot is
 *     migrating or importing; the slot map (slot -> owner) is the same on
 *     every live node and every owner is a live master; each node's role
 *     is the same in every view;
 *   - each shard with a live node has exactly one live master;
 *   - each replica: INFO replication master_link_status:up, to the master
 *     CLUSTER NODES names.
 * Then c->master[] and the nodes' is_master/shard are updated. 0, or -1
 * after timeout_ms with c->error naming the first unmet condition.
 */
int th_cluster_wait_ok(th_cluster *c, int timeout_ms);

/* CLUSTER KEYSLOT key, asked of a live node: 0..16383, or -1. */
int th_cluster_keyslot(th_cluster *c, const char *key);

/* The owner of a slot, from a live node's CLUSTER NODES (after the
 * operations below every node agrees): its port, node index or master
 * index; -1 on error or when no node owns it. */
int th_cluster_master_of_slot(th_cluster *c, int slot);
int th_cluster_master_of_key(th_cluster *c, const char *key);
int th_cluster_node_of_slot(th_cluster *c, int slot);
int th_cluster_shard_of_slot(th_cluster *c, int slot);

/*
 * Move a slot, with its keys, to master index to_master, live, the way
 * redis-cli --cluster reshard does: wait until healthy; SETSLOT IMPORTING
 * on the target, MIGRATING on the source; CLUSTER GETKEYSINSLOT + MIGRATE
 * ... KEYS (TH_MIGRATE_BATCH keys a time) until the slot is empty on the
 * source (bounded by TH_MIGRATE_MS); SETSLOT NODE on the target, the
 * source, then every other live master; then wait until every live node
 * names the target as the owner (th_cluster_wait_ok). 0 (also when the
 * slot is there already) or -1 with c->error.
 */
#define TH_MIGRATE_BATCH 100
#define TH_MIGRATE_MS 30000
int th_cluster_migrate_slot(th_cluster *c, int slot, int to_master);

/*
 * CLUSTER FAILOVER (a graceful, manual one) on the first replica of
 * master index m whose link is up; then wait until that replica says
 * role:master, the old master is its replica with its link up, and every
 * live node agrees (th_cluster_wait_ok). 0 or -1 (c->error; also when the
 * shard has no live replica). Bounded by TH_FAILOVER_MS.
 */
#define TH_FAILOVER_MS 20000
int th_cluster_failover(th_cluster *c, int m);

/*
 * kill -9 the master of master index m, then wait until the cluster has
 * elected one of its replicas and the live nodes are healthy again
 * (th_cluster_wait_ok): failure detection takes node_timeout_ms, the
 * election 0.5 to 1.5 s more. Bounded by 4 * node_timeout_ms +
 * TH_FAILOVER_MS. The killed node stays down (alive 0) until
 * th_cluster_restart_node. -1 at once if the shard has no live replica.
 */
int th_cluster_kill_master(th_cluster *c, int m);

/* kill -9 any node, wait for nothing (the others are not told). */
int th_cluster_kill_node(th_cluster *c, int node);

/*
 * Start node again (gracefully stopped first if running) on its port with
 * its nodes.conf, so it keeps its id; then wait until healthy. A master
 * that was replaced while down comes back as a replica of its shard's new
 * master (the harness says CLUSTER REPLICATE if the cluster left it an
 * empty master). Bounded by TH_CLUSTER_START_MS.
 */
int th_cluster_restart_node(th_cluster *c, int node);

/* ---- Sentinel -------------------------------------------------------- */

typedef struct th_sentinel {
    /* Public, read-only. */
    rh_server node[2]; /* the data nodes: 0 started as master, 1 replica */
    int master;        /* index in node[] of the master the sentinels name */
    int nsentinels;
    rh_server sentinel[TH_MAX_SENTINELS];
    char name[64];         /* the master name */
    char dir[RH_DIR_SIZE]; /* the sentinels' config files */
    char error[TH_ERROR_SIZE];

    /* Private. */
    int started_;
} th_sentinel;

typedef struct th_sentinel_opts {
    const char *master_name; /* NULL: "mymaster" */
    int quorum;              /* 0: 2 (1 with a single sentinel) */
    int down_after_ms;       /* 0: 1000 */
    int failover_timeout_ms; /* 0: 3000 */
    /* 0: SENTINEL DEBUG info-period TH_SENTINEL_INFO_MS publish-period
     * TH_SENTINEL_HELLO_MS on every sentinel, so replicas' state and the
     * sentinels' hellos travel within a second; 1: Redis' own periods (INFO
     * every 10 s, hello every 2 s: a replica that came back may then wait
     * 10 s to be listed with its link ok). */
    int default_periods;
} th_sentinel_opts;

#define TH_SENTINEL_INFO_MS 1000
#define TH_SENTINEL_HELLO_MS 500

/*
 * A master, a replica (REPLICAOF, link up) and `sentinels` (1 to
 * TH_MAX_SENTINELS) sentinels, each a "redis-server <conf> --sentinel"
 * with its own config file (written into s->dir: sentinel monitor <name>
 * 127.0.0.1 <master> <quorum>, down-after-milliseconds, failover-timeout)
 * started through rh_start (its binary is sentinel_launch.sh, which puts
 * the config file first, where redis-server wants it). Waits until every
 * sentinel names the master (SENTINEL GET-MASTER-ADDR-BY-NAME), lists the
 * replica with its link ok (SENTINEL REPLICAS) and knows every other sentinel
 * (SENTINEL SENTINELS), and SENTINEL CKQUORUM says OK. Bounded by
 * TH_SENTINEL_START_MS; -1 with s->error and nothing left running.
 */
#define TH_SENTINEL_START_MS 30000
int th_sentinel_start(th_sentinel *s, int sentinels);
int th_sentinel_start_opts(th_sentinel *s, int sentinels,
                           const th_sentinel_opts *opts);

/* The port of the master / replica as the harness last saw them. */
int th_sentinel_master_port(const th_sentinel *s);
int th_sentinel_replica_port(const th_sentinel *s);

/*
 * kill -9 the current master; wait until every live sentinel names the
 * other node in SENTINEL GET-MASTER-ADDR-BY-NAME and that node reports
 * role:master. s->master changes; the killed node stays down until
 * th_sentinel_restart_node. Bounded by TH_SENTINEL_FAILOVER_MS (a split
 * vote among the sentinels costs 2 * failover_timeout_ms).
 */
#define TH_SENTINEL_FAILOVER_MS 30000
int th_sentinel_kill_master(th_sentinel *s);

/*
 * Start data node i again (stopped first if running): if it is not the
 * master the sentinels name, REPLICAOF that master; wait until its link is
 * up and every sentinel lists it as a replica with its link ok.
 */
int th_sentinel_restart_node(th_sentinel *s, int i);

/* Stop the sentinels, then the data nodes; remove s->dir. */
int th_sentinel_stop(th_sentinel *s);

/* ---- TLS ------------------------------------------------------------- */

/*
 * Write test certificates into the existing directory dir with the openssl
 * command line (fork + exec, no shell), EC P-256 keys, valid 2 days:
 *   ca.crt ca.key            the CA
 *   server.crt server.key    CN and SAN localhost, SAN IP 127.0.0.1,
 *                            signed by the CA (serverAuth, clientAuth)
 *   client.crt client.key    CN roomcast-test-client, signed by the CA
 *   wrong.crt wrong.key      SAN DNS:wrong.example only, signed by the CA
 *   other-ca.crt other-ca.key  an unrelated CA, for "wrong CA" tests
 * 0, or -1 with the reason (openssl's output) on stderr. Each openssl run
 * is bounded by TH_RUN_MS.
 */
int th_tls_certs(const char *dir);

/*
 * rh_start a redis-server that also listens for TLS on 127.0.0.1 (a second
 * free port): --tls-port P --tls-cert-file server.crt --tls-key-file
 * server.key --tls-ca-cert-file ca.crt (from certdir, made absolute)
 * --tls-auth-clients yes|no. Its plain port s->port stays open, for the
 * harness' readiness PING and rh_cmd (the TLS listener is up before redis
 * answers a PING); a test wanting a TLS-only server says CONFIG SET port 0
 * over it. Returns the TLS port, or -1 (s->error). Stop it with rh_stop.
 */
int th_tls_start(rh_server *s, const char *certdir, int require_client_cert);

/* ---- running a program ----------------------------------------------- */

/*
 * Run argv[0] (a path, or a name looked up in $PATH) with argv, no shell,
 * stdin /dev/null, stdout and stderr captured into out (NUL-terminated,
 * truncated to cap - 1 bytes; out may be NULL). Killed (SIGKILL) after
 * timeout_ms. Returns the exit status (0..255), or -1 when it could not be
 * run, was killed by a signal or timed out (out then says so).
 */
#define TH_RUN_MS 10000
int th_run(const char *const argv[], char *out, size_t cap, int timeout_ms);

/* The openssl binary th_tls_certs runs, the redis-server nodes run. */
const char *th_openssl(void);
const char *th_redis_server(void);

#ifdef __cplusplus
}
#endif

#endif /* RC_TOPO_HARNESS_H */
