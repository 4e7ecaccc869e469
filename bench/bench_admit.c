/*
 * bench_admit: what admission and rate limits cost, on a real redis-server
 * (the port is given; bench/run-admit.sh starts one). Three nodes: adapters
 * on rc_link (each its own pub and sub hiredis contexts), in one process
 * on one libevent loop, as servers would run them. Presence is off (its
 * sweeps would add script calls); leases and verifications are set to an
 * hour so that nothing but the measured calls runs scripts.
 *
 * Every measured row is N calls kept W in flight (spread over the nodes:
 * call k goes to node k % 3), after CONFIG RESETSTAT. Per call: wall time,
 * the top-level Redis calls (INFO commandstats: evalsha + eval, publish),
 * their Redis time (commandstats usec, the commands run inside scripts
 * included in the script's), Redis' process CPU (INFO cpu: parsing,
 * replies, pub/sub fan-out too) and this process' CPU (all three nodes).
 *
 * 1. Admission: 2 x --rooms cap-2 rooms created; 50 admits per room
 *    (users u0..u49, user i on node i % 3) with 50 in flight (one room's
 *    worth) into the first half, then with W into the second; exactly 2
 *    seated and 48 refused per room, or the run fails. --sessions sessions
 *    (rc_room_create, room NULL: a code drawn, then the room made).
 * 2. Limiter: rc_gcra_take in a tight loop (--gcra calls), rc_rate_take
 *    over 1,024 keys with W and with 1 in flight (the round trip).
 * 3. Publish, a connection in room "pub" on every node, a message done
 *    when all three have it: rc_broadcast_to_room; rc_room_send with a
 *    rate_key (the check and the PUBLISH in one script); rc_rate_take, then
 *    rc_broadcast_to_room from its callback. With W and with 1 in flight.
 *    The rates are generous: nothing is refused, the checks only cost.
 *
 * One JSON object on stdout. Loopback only; every loop is bounded in
 * count and in time (--max-s per row: the run fails past it).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"

#define NODES 3
#define PER_ROOM 50
#define RATE_KEYS 1024
#define MAX_ROWS 16

static struct {
    int port, rooms, sessions, checks, msgs, window, max_s;
    long gcra;
} o = {0, 1000, 20000, 100000, 100000, 512, 60, 20000000};

static struct event_base *base;
static rc_adapter *nodes[NODES];
static rc_link *links[NODES];
static redisContext *ctl;

/* The answers of the row running (reset by begin). */
static struct {
    long done, ok, full, refused, other;
} t;
static long delivered, msgs_done; /* sinks, all nodes; messages everywhere */
static long room_ofs;             /* the admit row's first room */
static rc_room_spec cap2;
static rc_message msg = RC_MESSAGE_INIT;
static const char data[] = "{\"user\":\"alice\",\"text\":\"hello, room\"}";
/* Generous: 10 us apart, a burst of 10,000 per key; nothing is refused. */
static const rc_rate wide = {100000.0, 10000};

/* One row of the table. calls < 0: local, no Redis. */
typedef struct row {
    const char *name;
    long n, window, ok, full, refused, other;
    double ms, calls, cmd_us, redis_cpu_us, node_cpu_us;
} row;

const char bu_prog[] = "bench_admit";

static row rows[MAX_ROWS];
static int nrows;

/* ---- rows ---------------------------------------------------------------- */

static bu_mark mark; /* when the row began */

static void begin(void)
{
    memset(&t, 0, sizeof t);
    bu_begin(ctl, &mark);
}

static row *new_row(const char *name, long n, long window, double ms)
{
    row *r;

    if (nrows == MAX_ROWS)
        bu_die("too many rows");
    r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    r->name = name, r->n = n, r->window = window, r->ms = ms;
    r->ok = t.ok, r->full = t.full, r->refused = t.refused;
    r->other = t.other;
    return r;
}

/* The row of n calls with window in flight since begin; top: TOP_*. */
static row *finish(const char *name, long n, long window, int top)
{
    bu_span d = bu_end(ctl, &mark, name, n, window);
    row *r = new_row(name, n, window, d.ms);
    long long calls, usec;

    bu_commandstats(ctl, top, &calls, &usec);
    r->calls = (double)calls / n;
    r->cmd_us = (double)usec / n;
    r->redis_cpu_us = d.redis_cpu_ms * 1e3 / n;
    r->node_cpu_us = d.cpu_ms * 1e3 / n;
    return r;
}

static row *measure(const char *name, long n, long window, bu_issue_fn f,
                    const long *done, int top)
{
    begin();
    bu_drive(base, o.max_s, n, window, f, done, name);
    return finish(name, n, window, top);
}

/* ---- callbacks ----------------------------------------------------------- */

static void tally(int rv)
{
    t.done++;
    if (rv >= 0)
        t.ok++;
    else if (rv == RC_EFULL)
        t.full++;
    else if (rv == RC_ELIMITED)
        t.refused++;
    else if (t.other++ == 0)
        fprintf(stderr, "bench_admit: an answer: %s\n", rc_strerror(rv));
}

static void on_admit(rc_adapter *a, int rv, const char *room,
                     unsigned long long retry_ms, void *user)
{
    (void)a, (void)room, (void)retry_ms, (void)user;
    tally(rv);
}

static void on_rate(rc_adapter *a, int rv, unsigned long long retry_ms,
                    void *user)
{
    (void)a, (void)retry_ms, (void)user;
    tally(rv == 1 ? 0 : rv);
}

/* A message that will not be delivered (refused, failed) is done. */
static void skipped(void)
{
    delivered += NODES;
    msgs_done = delivered / NODES;
}

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    (void)c, (void)f, (void)m, (void)user;
    delivered++;
    msgs_done = delivered / NODES;
    return 0;
}

static void on_sent(rc_adapter *a, int rv, const char *room,
                    unsigned long long retry_ms, void *user)
{
    (void)a, (void)room, (void)retry_ms, (void)user;
    tally(rv);
    if (rv < 0)
        skipped();
}

/* Two round trips: the check, then the publish from its answer. */
static void on_rate_then_pub(rc_adapter *a, int rv, unsigned long long retry_ms,
                             void *user)
{
    (void)retry_ms, (void)user;
    if (rv == 1 && (rv = rc_broadcast_to_room(a, "pub", &msg, NULL, 0)) >= 0)
        rv = 0;
    tally(rv == 1 ? 0 : rv);
    if (rv != 0)
        skipped();
}

/* ---- what each row issues ------------------------------------------------ */

static int issue_create(long k)
{
    char room[32];

    snprintf(room, sizeof room, "bench:%ld", k);
    return rc_room_create(nodes[k % NODES], room, &cap2, NULL, on_admit, NULL);
}

static int issue_admit(long k)
{
    char room[32], user[16];
    long i = k % PER_ROOM;

    snprintf(room, sizeof room, "bench:%ld", room_ofs + k / PER_ROOM);
    snprintf(user, sizeof user, "u%ld", i);
    return rc_room_admit(nodes[i % NODES], room, user, 0, on_admit, NULL);
}

static int issue_session(long k)
{
    return rc_room_create(nodes[k % NODES], NULL, &cap2, "host", on_admit,
                          NULL);
}

static void rate_key(long k, char *key, size_t size)
{
    snprintf(key, size, "bench:%ld", k % RATE_KEYS);
}

/* rc_rate_take answers 1 or RC_ELIMITED at once only without Redis. */
static int take(long k, rc_rate_cb cb)
{
    char key[32];
    int rv;

    rate_key(k, key, sizeof key);
    rv = rc_rate_take(nodes[k % NODES], key, &wide, cb, NULL, NULL);
    return rv == 0 ? 0 : rv < 0 && rv != RC_ELIMITED ? rv : RC_EUNAVAIL;
}

static int issue_rate(long k)
{
    return take(k, on_rate);
}

static int issue_bcast(long k)
{
    int rv = rc_broadcast_to_room(nodes[k % NODES], "pub", &msg, NULL, 0);

    tally(rv);
    return rv < 0 ? rv : 0;
}

static int issue_send(long k)
{
    char key[32];
    rc_send_guard g = {NULL, key, &wide};

    rate_key(k, key, sizeof key);
    return rc_room_send(nodes[k % NODES], "pub", &msg, &g, on_sent, NULL);
}

static int issue_rate_then_pub(long k)
{
    return take(k, on_rate_then_pub);
}

/* ---- the phases ---------------------------------------------------------- */

static void expect(const row *r, long ok, long full)
{
    if (r->ok != ok || r->full != full || r->other != 0 || r->refused != 0)
        bu_die("%s: %ld ok, %ld full, %ld refused, %ld other (wanted %ld ok, "
               "%ld full)",
               r->name, r->ok, r->full, r->refused, r->other, ok, full);
}

static void admission(void)
{
    long r = o.rooms, n = (long)o.rooms * PER_ROOM;

    expect(measure("rc_room_create, named cap-2 room", 2 * r, o.window,
                   issue_create, &t.done, TOP_SCRIPT),
           2 * r, 0);
    room_ofs = 0;
    expect(measure("rc_room_admit, 50 per cap-2 room", n, PER_ROOM, issue_admit,
                   &t.done, TOP_SCRIPT),
           2 * r, (PER_ROOM - 2) * r);
    room_ofs = r;
    expect(measure("rc_room_admit, 50 per cap-2 room", n, o.window, issue_admit,
                   &t.done, TOP_SCRIPT),
           2 * r, (PER_ROOM - 2) * r);
    expect(measure("rc_room_create, session (code drawn)", o.sessions, o.window,
                   issue_session, &t.done, TOP_SCRIPT),
           o.sessions, 0);
}

/* rc_gcra_take: 64 buckets taken in turn, about half the takes refused. */
static void local_gcra(void)
{
    static rc_gcra g[64];
    const rc_rate r = {1000.0, 50};
    unsigned long long now = 1, retry = 0;
    long k, allowed = 0;
    double t0 = bu_now_ms(), end = t0 + o.max_s * 1e3;
    row *w;

    for (k = 0; k < o.gcra; k++, now += 8) { /* 0.5 ms apart per bucket */
        allowed += rc_gcra_take(&g[k & 63], &r, now, &retry);
        if ((k & 0xfffff) == 0 && bu_now_ms() > end)
            bu_die("rc_gcra_take: timed out");
    }
    w = new_row("rc_gcra_take (local, no Redis)", o.gcra, 1, bu_now_ms() - t0);
    w->ok = allowed, w->refused = o.gcra - allowed;
    w->calls = -1;
    w->node_cpu_us = w->ms * 1e3 / o.gcra;
    fprintf(stderr, "bench_admit: rc_gcra_take: %.1f ns (%ld allowed)\n",
            w->node_cpu_us * 1e3, allowed);
}

/* n calls with W in flight, then n / 20 one at a time: each allowed. */
static void twice(const char *name, long n, bu_issue_fn f, const long *done,
                  int top)
{
    expect(measure(name, n, o.window, f, done, top), n, 0);
    expect(measure(name, n / 20, 1, f, done, top), n / 20, 0);
}

static void limiter(void)
{
    local_gcra();
    twice("rc_rate_take", o.checks, issue_rate, &t.done, TOP_SCRIPT);
}

static int pub_ready(rc_adapter *a, void *arg)
{
    (void)arg;
    return rc_room_is_ready(a, "pub") == 1;
}

/* A connection in room "pub" on every node, subscribed everywhere. */
static void pub_room(void)
{
    rc_conn *c;
    int i;

    for (i = 0; i < NODES; i++)
        if (rc_conn_add(nodes[i], NULL, sink, NULL, &c) != 0 ||
            rc_room_join(c, "pub") != 1)
            bu_die("cannot join room pub");
    bu_wait_nodes(base, nodes, NODES, pub_ready, NULL, "room pub not ready");
}

static void publish(void)
{
    static const struct {
        const char *name;
        bu_issue_fn f;
        int top;
    } v[] = {
        {"publish: rc_broadcast_to_room (no limit)", issue_bcast, TOP_PUB},
        {"publish: rc_room_send, guard.rate_key", issue_send, TOP_SCRIPT},
        {"publish: rc_rate_take, then rc_broadcast_to_room",
         issue_rate_then_pub, TOP_SCRIPT | TOP_PUB},
    };
    size_t i;

    msg.event = "message";
    msg.data = data;
    msg.data_len = sizeof data - 1;
    pub_room();
    bu_drive(base, o.max_s, o.msgs / 10, o.window, issue_bcast, &msgs_done,
             "warm-up");
    for (i = 0; i < sizeof v / sizeof v[0]; i++)
        twice(v[i].name, o.msgs, v[i].f, &msgs_done, v[i].top);
}

/* ---- setup, output ------------------------------------------------------- */

/* Scripts loaded and called once by EVALSHA on every node. */
static void warm_up(void)
{
    bu_drive(base, o.max_s, 300, o.window, issue_rate, &t.done, "warm-up");
    bu_drive(base, o.max_s, NODES, NODES, issue_session, &t.done, "warm-up");
    if (t.other != 0)
        bu_die("the warm-up failed");
}

static void print_json(void)
{
    int i;

    printf("{\"nodes\":%d,\"rooms\":%d,\"per_room\":%d,\"window\":%d,"
           "\"rows\":[",
           NODES, o.rooms, PER_ROOM, o.window);
    for (i = 0; i < nrows; i++) {
        const row *r = &rows[i];

        printf("%s{\"name\":\"%s\",\"n\":%ld,\"in_flight\":%ld,\"ms\":%.1f,"
               "\"per_s\":%.0f,\"us_per_op\":%.4f,\"ok\":%ld,\"full\":%ld,"
               "\"refused\":%ld,\"redis_calls_per_op\":%.3f,"
               "\"redis_cmd_us_per_op\":%.2f,\"redis_cpu_us_per_op\":%.2f,"
               "\"node_cpu_us_per_op\":%.4f}",
               i ? "," : "", r->name, r->n, r->window, r->ms,
               r->n / (r->ms / 1e3), r->ms * 1e3 / r->n, r->ok, r->full,
               r->refused, r->calls, r->cmd_us, r->redis_cpu_us,
               r->node_cpu_us);
    }
    printf("]}\n");
}

static void parse(int argc, char **argv)
{
    static const char *const names[] = {"--port",   "--rooms", "--sessions",
                                        "--checks", "--msgs",  "--window",
                                        "--max-s",  "--gcra"};
    int *dst[] = {&o.port, &o.rooms,  &o.sessions, &o.checks,
                  &o.msgs, &o.window, &o.max_s};
    int i, j;

    for (i = 1; i + 1 < argc; i += 2) {
        for (j = 0; j < 8 && strcmp(argv[i], names[j]) != 0; j++)
            ;
        if (j == 8)
            bu_die("usage: bench_admit --port P [--rooms N] [--sessions N] "
                   "[--checks N] [--msgs N] [--window W] [--max-s S] "
                   "[--gcra N]");
        if (j == 7)
            o.gcra = atol(argv[i + 1]);
        else
            *dst[j] = atoi(argv[i + 1]);
    }
    if (i != argc || o.port <= 0 || o.rooms < 1 || o.sessions < 1 ||
        o.checks < 20 || o.msgs < 20 || o.window < 1 || o.max_s < 1 ||
        o.gcra < 1)
        bu_die("bad arguments (--port is required)");
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    cap2.cap = 2;
    bu_connect(o.port, &base, &ctl);
    bu_open_nodes(base, o.port, "bench-admit", NODES, nodes, links, NULL);
    warm_up();
    admission();
    limiter();
    publish();
    print_json();
    bu_close(base, ctl, NODES, nodes, links);
    return 0;
}
