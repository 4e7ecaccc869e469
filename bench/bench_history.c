/*
 * bench_history: what history and resume cost, on a real redis-server (the
 * port is given; bench/run-history.sh starts one). Three nodes: adapters
 * on rc_link (each its own pub and sub hiredis contexts), in one process
 * on one libevent loop, as servers would run them, every one with history
 * on for room "hist" only (the room filter): the same nodes publish into a
 * history room and into a plain one, side by side. Presence is off; leases
 * and verifications are set to an hour so that nothing but the measured
 * calls reaches Redis.
 *
 * Every measured row runs after CONFIG RESETSTAT. Per message (or resume):
 * wall time, the top-level Redis calls and their Redis time (INFO
 * commandstats: evalsha + eval for the history room, whose script's time
 * includes the XADD and PUBLISH it runs; publish for the plain room), the
 * PUBLISH time inside the script, Redis' process CPU (INFO cpu: parsing,
 * replies, pub/sub fan-out too) and this process' CPU (all three nodes).
 *
 * 1. Publish: a connection in each room on every node; --msgs messages
 *    by rc_broadcast_to_room, message k from node k % 3, kept --window
 *    (then 1) in flight; a message is done when the room's member on every
 *    node has it. Plain and history rows alternate. In the history room
 *    every member must get every id of one epoch, in order, no gap.
 * 2. Resume: --resumes connections (rc_conn_add, a counting sink; one in
 *    three per node) all resume at once with rc_conn_resume from the id
 *    --behind before the room's latest; done when each has its --behind
 *    messages (exactly those, in order, no rc:reset, or the run fails).
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
#define MAX_ROWS 8
#define HIST_ROOM "hist"
#define PLAIN_ROOM "plain"

static struct {
    int port, msgs, window, resumes, behind, max_s;
} o = {0, 100000, 512, 1000, 100, 60};

static struct event_base *base;
static rc_adapter *nodes[NODES];
static rc_link *links[NODES];
static redisContext *ctl;

/* Deliveries into a set of members; done: every member has that many. */
typedef struct tally {
    long delivered, per, done;
} tally;

/* One member: what it got. */
typedef struct member {
    tally *t;
    rc_conn *c;
    int hist;                /* its messages must have ids "E-S", in order */
    long n, bad;             /* messages; out of order, no id, rc:reset */
    unsigned long long e, s; /* the last id */
} member;

static tally t_plain = {0, NODES, 0}, t_hist = {0, NODES, 0}, t_res;
static member in_plain[NODES], in_hist[NODES], *resumed;
static rc_message msg = RC_MESSAGE_INIT;
static const char data[] = "{\"user\":\"alice\",\"text\":\"hello, room\"}";
static char resume_id[48];

/* One row of the tables. */
typedef struct row {
    const char *name;
    int hist;
    long n, window;
    double ms, calls, cmd_us, pub_us, redis_cpu_ms, node_cpu_ms;
} row;

const char bu_prog[] = "bench_history";

static row rows[MAX_ROWS];
static int nrows;

/* ---- rows ---------------------------------------------------------------- */

static bu_mark mark; /* when the row began */

static void begin(void)
{
    bu_begin(ctl, &mark);
}

/* The row of n operations with window in flight since begin; its own
 * Redis calls are the commands in top (TOP_*). */
static row *finish(const char *name, int hist, long n, long window, int top)
{
    bu_span d = bu_end(ctl, &mark, name, n, window);
    long long calls, usec;
    row *r;

    if (nrows == MAX_ROWS)
        bu_die("too many rows");
    r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    r->name = name, r->hist = hist, r->n = n, r->window = window;
    r->ms = d.ms, r->redis_cpu_ms = d.redis_cpu_ms, r->node_cpu_ms = d.cpu_ms;
    bu_commandstats(ctl, top, &calls, &usec);
    r->calls = (double)calls / n;
    r->cmd_us = (double)usec / n;
    if (top & TOP_SCRIPT) {
        bu_commandstats(ctl, TOP_PUB, &calls, &usec); /* inside the scripts */
        r->pub_us = (double)usec / n;
    }
    return r;
}

/* ---- sinks and what each row issues -------------------------------------- */

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    member *g = user;
    unsigned long long e, s;

    (void)c, (void)f;
    if (m->event == NULL || strcmp(m->event, "message") != 0) {
        g->bad++; /* rc:reset */
        return 0;
    }
    if (g->hist) {
        if (m->id == NULL || sscanf(m->id, "%llu-%llu", &e, &s) != 2 ||
            (g->e != 0 && (e != g->e || s != g->s + 1)))
            g->bad++;
        else
            g->e = e, g->s = s;
    }
    g->n++;
    g->t->delivered++;
    g->t->done = g->t->delivered / g->t->per;
    return 0;
}

static int publish_to(long k, const char *room)
{
    int rv = rc_broadcast_to_room(nodes[k % NODES], room, &msg, NULL, 0);

    return rv < 0 ? rv : 0;
}

static int issue_plain(long k)
{
    return publish_to(k, PLAIN_ROOM);
}

static int issue_hist(long k)
{
    return publish_to(k, HIST_ROOM);
}

static int issue_resume(long k)
{
    member *g = &resumed[k];
    int rv;

    g->t = &t_res, g->hist = 1;
    if ((rv = rc_conn_add(nodes[k % NODES], NULL, sink, g, &g->c)) != 0)
        return rv;
    rv = rc_conn_resume(g->c, HIST_ROOM, resume_id);
    return rv == 1 ? 0 : rv < 0 ? rv : RC_EINVAL;
}

/* ---- the phases ---------------------------------------------------------- */

static void check_members(const member *m, int n, long want, const char *what)
{
    int i;

    for (i = 0; i < n; i++)
        if (m[i].bad != 0 || (want >= 0 && m[i].n != want))
            bu_die("%s: member %d got %ld messages (wanted %ld), %ld out of "
                   "order or resets",
                   what, i, m[i].n, want, m[i].bad);
}

static int rooms_ready(rc_adapter *a, void *arg)
{
    (void)arg;
    return rc_room_is_ready(a, PLAIN_ROOM) == 1 &&
           rc_room_is_ready(a, HIST_ROOM) == 1;
}

/* A connection in each room on every node, subscribed everywhere. */
static void join_rooms(void)
{
    rc_conn *c;
    int i;

    for (i = 0; i < NODES; i++) {
        in_plain[i].t = &t_plain;
        in_hist[i].t = &t_hist, in_hist[i].hist = 1;
        if (rc_conn_add(nodes[i], NULL, sink, &in_plain[i], &c) != 0 ||
            rc_room_join(c, PLAIN_ROOM) != 1 ||
            rc_conn_add(nodes[i], NULL, sink, &in_hist[i], &c) != 0 ||
            rc_room_join(c, HIST_ROOM) != 1)
            bu_die("cannot join the rooms");
    }
    bu_wait_nodes(base, nodes, NODES, rooms_ready, NULL,
                  "the rooms are not ready");
}

static void pub_row(int h, long n, long window)
{
    static const char *const names[] = {"history off (plain room)",
                                        "history on"};

    begin();
    bu_drive(base, o.max_s, n, window, h ? issue_hist : issue_plain,
             h ? &t_hist.done : &t_plain.done, names[h]);
    finish(names[h], h, n, window, h ? TOP_SCRIPT : TOP_PUB);
}

static void publish(void)
{
    long warm = o.msgs / 10, n1 = o.msgs / 20;
    int h;

    msg.event = "message";
    msg.data = data;
    msg.data_len = sizeof data - 1;
    join_rooms();
    bu_drive(base, o.max_s, warm, o.window, issue_plain, &t_plain.done,
             "warm-up");
    bu_drive(base, o.max_s, warm, o.window, issue_hist, &t_hist.done,
             "warm-up");
    for (h = 0; h < 2; h++)
        pub_row(h, o.msgs, o.window);
    for (h = 0; h < 2; h++)
        pub_row(h, n1, 1);
    check_members(in_plain, NODES, warm + o.msgs + n1, "plain room");
    check_members(in_hist, NODES, warm + o.msgs + n1, "history room");
    if (in_hist[0].s != in_hist[1].s || in_hist[0].s != in_hist[2].s)
        bu_die("the history room's members end on different ids");
}

/* n resumes at once from resume_id; the conns are removed after. */
static void resume_round(long n, row **r)
{
    static const char name[] = "resume";
    long i;

    resumed = calloc((size_t)n, sizeof *resumed);
    if (resumed == NULL)
        bu_die("out of memory");
    memset(&t_res, 0, sizeof t_res);
    t_res.per = o.behind;
    if (r != NULL)
        begin();
    bu_drive(base, o.max_s, n, n, issue_resume, &t_res.done, name);
    if (r != NULL)
        *r = finish(name, 1, n, n, TOP_SCRIPT);
    check_members(resumed, (int)n, o.behind, name);
    for (i = 0; i < n; i++)
        if (resumed[i].s != in_hist[0].s)
            bu_die("resume: member %ld ends on %llu, not %llu", i, resumed[i].s,
                   in_hist[0].s);
    for (i = 0; i < n; i++)
        rc_conn_remove(resumed[i].c);
    free(resumed);
    resumed = NULL;
}

static void resume(void)
{
    row *r;

    if (in_hist[0].s <= (unsigned long long)o.behind)
        bu_die("the history room has too few messages");
    snprintf(resume_id, sizeof resume_id, "%llu-%llu", in_hist[0].e,
             in_hist[0].s - (unsigned long long)o.behind);
    resume_round(NODES * 2, NULL); /* warm-up */
    resume_round(o.resumes, &r);
}

/* ---- setup, output ------------------------------------------------------- */

static int only_hist(const char *room, void *user)
{
    (void)user;
    return strcmp(room, HIST_ROOM) == 0;
}

/* History on, for HIST_ROOM only. */
static int set_history(rc_adapter *a)
{
    rc_history_options ho;

    memset(&ho, 0, sizeof ho);
    ho.room_filter = only_hist; /* defaults: 1000 kept, replay_max 1000 */
    return rc_adapter_set_history(a, &ho, sizeof ho);
}

static void print_row(const row *r, int first)
{
    printf("%s{\"name\":\"%s\",\"history\":%s,\"n\":%ld,\"in_flight\":%ld,"
           "\"ms\":%.1f,\"per_s\":%.0f,\"us_per_op\":%.4f,"
           "\"redis_calls_per_op\":%.3f,\"redis_cmd_us_per_op\":%.3f,"
           "\"redis_publish_us_per_op\":%.3f,\"redis_cpu_ms\":%.1f,"
           "\"redis_cpu_us_per_op\":%.3f,\"node_cpu_ms\":%.1f,"
           "\"node_cpu_us_per_op\":%.3f}",
           first ? "" : ",", r->name, r->hist ? "true" : "false", r->n,
           r->window, r->ms, r->n / (r->ms / 1e3), r->ms * 1e3 / r->n, r->calls,
           r->cmd_us, r->pub_us, r->redis_cpu_ms, r->redis_cpu_ms * 1e3 / r->n,
           r->node_cpu_ms, r->node_cpu_ms * 1e3 / r->n);
}

/* rows: the publish rows, then the resume row (last). */
static void print_json(void)
{
    int i;

    printf("{\"nodes\":%d,\"msgs\":%d,\"window\":%d,\"resumes\":%d,"
           "\"behind\":%d,\"bytes\":%d,\"publish\":[",
           NODES, o.msgs, o.window, o.resumes, o.behind, (int)sizeof data - 1);
    for (i = 0; i + 1 < nrows; i++)
        print_row(&rows[i], i == 0);
    printf("],\"resume\":");
    print_row(&rows[nrows - 1], 1);
    printf("}\n");
}

static void parse(int argc, char **argv)
{
    static const char *const names[] = {"--port",    "--msgs",   "--window",
                                        "--resumes", "--behind", "--max-s"};
    int *dst[] = {&o.port, &o.msgs, &o.window, &o.resumes, &o.behind, &o.max_s};
    int i, j;

    for (i = 1; i + 1 < argc; i += 2) {
        for (j = 0; j < 6 && strcmp(argv[i], names[j]) != 0; j++)
            ;
        if (j == 6)
            bu_die("usage: bench_history --port P [--msgs N] [--window W] "
                   "[--resumes N] [--behind N] [--max-s S]");
        *dst[j] = atoi(argv[i + 1]);
    }
    if (i != argc || o.port <= 0 || o.msgs < 20 || o.window < 1 ||
        o.resumes < 1 || o.behind < 1 || o.behind > 1000 || o.max_s < 1)
        bu_die("bad arguments (--port is required; --behind at most 1000)");
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    bu_connect(o.port, &base, &ctl);
    bu_open_nodes(base, o.port, "bench-history", NODES, nodes, links,
                  set_history);
    publish();
    resume();
    print_json();
    bu_close(base, ctl, NODES, nodes, links);
    return 0;
}
