/*
 * bench_presence: what presence costs, on a real redis-server (the port is
 * given; bench/run-presence.sh starts one). Nodes are adapters on rc_link,
 * in one process and one loop, as servers would run them.
 *
 * 1. Join: --nodes nodes x --users connections, each with its own user,
 *    spread over --rooms rooms; time until every one has its snapshot.
 * 2. Steady state: script calls (and Redis commands, those run inside
 *    scripts included) per second over --window-s seconds with nobody
 *    coming or going (CONFIG RESETSTAT, then INFO commandstats): liveness
 *    is per node, so this does not grow with the users. Beside it, the
 *    per-connection refresh scheme (one script per connection per room
 *    every 25 s, Centrifugo's) computed for the same connections.
 * 3. Join and leave: --ops users join a room on node 1 and leave it at
 *    once (rc_room_leave_now); the time until an observer on node 0 gets
 *    rc:join, then rc:leave (p50, p99), with Redis' CPU per script call
 *    (commandstats usec) and this process' CPU per operation.
 * 4. Snapshot: a room of --snapshot-users users (node 2); a joiner on node
 *    0: the time to its rc:presence, its size, and the script's Redis CPU.
 *
 * One JSON object on stdout. Loopback only; every wait is bounded.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "roomcast/libevent.h"
#include "roomcast/roomcast.h"

#define MAX_NODES 8

static struct {
    int port, nodes, users, rooms, window_s, ops, snapshot_users;
} o = {0, 3, 10000, 1000, 10, 200, 10000};

static struct event_base *base;
static rc_adapter *nodes[MAX_NODES];
static rc_link *links[MAX_NODES];
static redisContext *ctl;

/* What the sinks count. */
static long snapshots, joins_seen, leaves_seen;
static size_t last_snapshot_len;
static char watch_user[64]; /* the user whose join/leave is awaited */

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_presence: %s\n", what);
    exit(1);
}

/* Does p (n bytes) hold the string s? */
static int has(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s), i;

    for (i = 0; i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0)
            return 1;
    return 0;
}

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    (void)c;
    (void)f;
    (void)user;
    if (m->event == NULL)
        return 0;
    if (strcmp(m->event, "rc:presence") == 0) {
        snapshots++;
        last_snapshot_len = m->data_len;
    } else if (watch_user[0] != '\0' && has(m->data, m->data_len, watch_user)) {
        joins_seen += strcmp(m->event, "rc:join") == 0;
        leaves_seen += strcmp(m->event, "rc:leave") == 0;
    }
    return 0;
}

/* Run the loop until *counter reaches want, or fail after ms. */
static void wait_for(const long *counter, long want, double ms,
                     const char *what)
{
    double end = now_ms() + ms;

    while (*counter < want) {
        if (now_ms() > end) {
            fprintf(stderr,
                    "bench_presence: timed out waiting for %s "
                    "(%ld of %ld)\n",
                    what, *counter, want);
            exit(1);
        }
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

static void run_for(double ms)
{
    double end = now_ms() + ms;
    struct timeval tv = {0, 10000};

    while (now_ms() < end) {
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static rc_conn *conn(int node, const char *user, const char *room)
{
    rc_conn *c = NULL;

    if (rc_conn_add(nodes[node], NULL, sink, NULL, &c) != 0 ||
        (user != NULL && rc_conn_set_user(c, user, NULL, 0) != 0) ||
        rc_room_join(c, room) != 1)
        die("cannot add a connection");
    return c;
}

/* INFO commandstats: calls and usec of every command, summed, and of the
 * script calls (evalsha, eval). */
typedef struct stats {
    long long calls, usec, script_calls, script_usec;
} stats;

static stats commandstats(void)
{
    redisReply *r = redisCommand(ctl, "INFO commandstats");
    stats s = {0, 0, 0, 0};
    const char *p;

    if (r == NULL || r->type != REDIS_REPLY_STRING)
        die("INFO commandstats failed");
    for (p = r->str; (p = strstr(p, "cmdstat_")) != NULL; p++) {
        long long calls = 0, usec = 0;
        const char *c = strstr(p, "calls="), *u = strstr(p, "usec=");

        if (c == NULL || u == NULL)
            break;
        calls = atoll(c + 6);
        usec = atoll(u + 5);
        if (strncmp(p + 8, "config", 6) == 0 || strncmp(p + 8, "info", 4) == 0)
            continue; /* ours, measuring */
        s.calls += calls;
        s.usec += usec;
        if (strncmp(p + 8, "evalsha", 7) == 0 ||
            strncmp(p + 8, "eval:", 5) == 0) {
            s.script_calls += calls;
            s.script_usec += usec;
        }
    }
    freeReplyObject(r);
    return s;
}

static void resetstat(void)
{
    freeReplyObject(redisCommand(ctl, "CONFIG RESETSTAT"));
}

static double cpu_ms(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void open_nodes(void)
{
    rc_presence_options po;
    rc_link_options lo;
    char url[64], id[32];
    int i;

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", o.port);
    memset(&po, 0, sizeof po);
    po.announce_max = (unsigned)o.snapshot_users + 16; /* full snapshots */
    for (i = 0; i < o.nodes; i++) {
        snprintf(id, sizeof id, "bench-%d-%d", (int)getpid(), i);
        nodes[i] = rc_adapter_new(NULL, NULL, NULL, id);
        if (nodes[i] == NULL ||
            rc_adapter_set_presence(nodes[i], &po, sizeof po) != 0)
            die("cannot open an adapter");
        memset(&lo, 0, sizeof lo);
        lo.url = url;
        if (rc_link_open(nodes[i], base, &lo, &links[i]) != 0)
            die("cannot open a link");
    }
    for (i = 0; i < o.nodes; i++) {
        double end = now_ms() + 10000;

        while (rc_adapter_node_state(nodes[i]) != RC_NODE_LIVE) {
            if (now_ms() > end)
                die("a node did not get its lease");
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        }
    }
}

int main(int argc, char **argv)
{
    int i, n, k;
    char user[64], room[64];
    double t0, cpu0, *lat_join, *lat_leave, steady_s, steady_scripts, join_ms,
        snap_ms, jps;
    stats s0, s1;
    long want;

    for (i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);

        if (strcmp(argv[i], "--port") == 0)
            o.port = v;
        else if (strcmp(argv[i], "--nodes") == 0)
            o.nodes = v;
        else if (strcmp(argv[i], "--users") == 0)
            o.users = v;
        else if (strcmp(argv[i], "--rooms") == 0)
            o.rooms = v;
        else if (strcmp(argv[i], "--window-s") == 0)
            o.window_s = v;
        else if (strcmp(argv[i], "--ops") == 0)
            o.ops = v;
        else if (strcmp(argv[i], "--snapshot-users") == 0)
            o.snapshot_users = v;
        else
            die("usage: bench_presence --port P [--nodes N] [--users N] "
                "[--rooms N] [--window-s S] [--ops N] [--snapshot-users N]");
    }
    if (o.port <= 0 || o.nodes < 3 || o.nodes > MAX_NODES || o.users < 1 ||
        o.rooms < 1 || o.ops < 1 || o.window_s < 1 || o.snapshot_users < 1)
        die("bad arguments (--port is required; 3 to 8 nodes)");
    if ((base = event_base_new()) == NULL)
        die("no event base");
    if ((ctl = redisConnect("127.0.0.1", o.port)) == NULL || ctl->err)
        die("cannot connect to redis-server");
    open_nodes();

    /* 1. Everyone joins. */
    t0 = now_ms();
    for (n = 0; n < o.nodes; n++)
        for (k = 0; k < o.users; k++) {
            snprintf(user, sizeof user, "n%du%d", n, k);
            snprintf(room, sizeof room, "r%d", k % o.rooms);
            conn(n, user, room);
        }
    want = (long)o.nodes * o.users;
    wait_for(&snapshots, want, 600000, "every joiner's snapshot");
    join_ms = now_ms() - t0;
    jps = (double)want / (join_ms / 1e3);

    /* 2. Steady state. */
    run_for(1000); /* the joins' tails */
    resetstat();
    run_for(o.window_s * 1000.0);
    s0 = commandstats();
    steady_s = (double)s0.calls / o.window_s;
    steady_scripts = (double)s0.script_calls / o.window_s;

    /* 3. Join and leave, seen from node 0. */
    conn(0, NULL, "lat");
    wait_for(&snapshots, want + 1, 10000, "the observer's snapshot");
    lat_join = calloc((size_t)o.ops, sizeof *lat_join);
    lat_leave = calloc((size_t)o.ops, sizeof *lat_leave);
    if (lat_join == NULL || lat_leave == NULL)
        die("out of memory");
    resetstat();
    cpu0 = cpu_ms();
    for (k = 0; k < o.ops; k++) {
        rc_conn *c;

        snprintf(watch_user, sizeof watch_user, "\"lat%d\"", k);
        snprintf(user, sizeof user, "lat%d", k);
        t0 = now_ms();
        c = conn(1, user, "lat");
        wait_for(&joins_seen, k + 1, 10000, "a join on the observer");
        lat_join[k] = now_ms() - t0;
        t0 = now_ms();
        rc_room_leave_now(c, "lat");
        rc_conn_remove(c);
        wait_for(&leaves_seen, k + 1, 10000, "a leave on the observer");
        lat_leave[k] = now_ms() - t0;
    }
    s1 = commandstats();
    cpu0 = cpu_ms() - cpu0;
    watch_user[0] = '\0';
    qsort(lat_join, (size_t)o.ops, sizeof *lat_join, cmp_double);
    qsort(lat_leave, (size_t)o.ops, sizeof *lat_leave, cmp_double);

    /* 4. The snapshot of a big room. */
    for (k = 0; k < o.snapshot_users; k++) {
        snprintf(user, sizeof user, "big%d", k);
        conn(2, user, "big");
    }
    want = snapshots + o.snapshot_users;
    wait_for(&snapshots, want, 600000, "the big room's joiners");
    run_for(500);
    resetstat();
    t0 = now_ms();
    conn(0, NULL, "big");
    wait_for(&snapshots, want + 1, 60000, "the big room's snapshot");
    snap_ms = now_ms() - t0;
    s0 = commandstats();

    printf("{\"nodes\":%d,\"users_per_node\":%d,\"rooms\":%d,"
           "\"join_all_ms\":%.0f,\"joins_per_s\":%.0f,"
           "\"steady_window_s\":%d,\"steady_scripts_per_s\":%.2f,"
           "\"steady_commands_per_s\":%.2f,"
           "\"refresh_scheme_per_s\":%.0f,"
           "\"ops\":%d,\"join_p50_ms\":%.2f,\"join_p99_ms\":%.2f,"
           "\"leave_p50_ms\":%.2f,\"leave_p99_ms\":%.2f,"
           "\"redis_script_us_per_call\":%.1f,\"redis_scripts_per_op\":%.2f,"
           "\"node_cpu_us_per_op\":%.1f,"
           "\"snapshot_users\":%d,\"snapshot_ms\":%.2f,"
           "\"snapshot_bytes\":%zu,\"snapshot_redis_us\":%lld}\n",
           o.nodes, o.users, o.rooms, join_ms, jps, o.window_s, steady_scripts,
           steady_s, (double)o.nodes * o.users / 25.0, o.ops,
           lat_join[o.ops / 2], lat_join[o.ops * 99 / 100],
           lat_leave[o.ops / 2], lat_leave[o.ops * 99 / 100],
           s1.script_calls ? (double)s1.script_usec / s1.script_calls : 0,
           (double)s1.script_calls / (2.0 * o.ops), cpu0 * 1e3 / (2.0 * o.ops),
           o.snapshot_users, snap_ms, last_snapshot_len, s0.script_usec);
    for (i = 0; i < o.nodes; i++) {
        rc_link_close(links[i]);
        rc_adapter_free(nodes[i]);
    }
    run_for(100);
    redisFree(ctl);
    event_base_free(base);
    free(lat_join);
    free(lat_leave);
    return 0;
}
