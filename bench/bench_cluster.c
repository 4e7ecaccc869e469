/*
 * bench_cluster: pub/sub fan-out through one Redis or a Redis Cluster at a
 * paced, rising rate, until the delivery latency passes a limit. The URL
 * is given; bench/run-cluster.sh starts the servers and runs the modes
 * (redis://, redis-cluster:// sharded, redis-cluster://?pubsub=classic).
 *
 * Two processes. This one, on one libevent loop: --subs subscriber nodes
 * (adapters, each on its own rc_link to --url), each with --members
 * connections in every one of --rooms rooms ("r0", "r1", ...: their
 * channels hash over all the slots). A forked one (bench_cluster_pub.c),
 * on a loop of its own: the publisher node (its own rc_link, no members)
 * calling rc_broadcast_to_room round robin over the rooms at a paced
 * rate, the step, the room, the room's sequence number and the send time
 * (CLOCK_MONOTONIC, the same in both processes) in the data. (One loop
 * for both was the bottleneck before Redis was: bench/README.md.)
 *
 * After a warm-up at the first rate and --idle-ms idle (Redis' own CPU,
 * subtracted for the net cost per message), each rate of --steps runs
 * --step-ms, then until every delivery of the step is in (at most
 * --drain-ms more). Per step: sent, delivered (every member must get
 * every message of its room), latency from send to sink over every member
 * of every node (p50, p99, max; buckets of 10 us below 100 ms, 1 ms
 * above), both processes' CPU, the machine's (/proc/stat) and each Redis
 * server's (INFO cpu of each --ports). A step fails if its p99 passes
 * --limit-ms, if its deliveries are not all in after the drain ("behind")
 * or if the publisher fell behind its pace; a failed rate runs once more
 * (the machine may be busy with something else for a moment), and the
 * ramp ends at the first rate that fails twice.
 *
 * Each member checks its room's sequence numbers: one skipped is a miss
 * (of the step it was sent in), one seen again a duplicate. After a final
 * drain, misses in a step within the limit are a bug (misses_within_limit).
 * One JSON object on stdout, a line per step on stderr. Loopback only;
 * every phase is bounded in time.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_cluster.h"

#define FINAL_DRAIN_MS 5000

const char bu_prog[] = "bench_cluster";

bc_options opt = {.mode = "run",
                  .subs = 3,
                  .rooms = 256,
                  .members = 1,
                  .size = 100,
                  .step_ms = 3000,
                  .drain_ms = 2000,
                  .warmup_ms = 1000,
                  .limit_ms = 50,
                  .idle_ms = 1000};
bc_step steps[MAX_TRIES + 1];
bc_member *members;
long nmembers;
rc_adapter *subs[MAX_SUBS];
rc_link *sublinks[MAX_SUBS];
double idle_ms_per_s;
unsigned long pub_link_failures;

static struct event_base *base;
static int cur = -1; /* the step whose deliveries are measured */
static unsigned long long sent_total; /* as the publisher last said */
static int cmd_fd, rep_fd;            /* to and from the publisher */
static pid_t pub_pid;
static bc_report last; /* the publisher's last report */
static int reported;   /* last is new */
static struct event *timer, *rep_ev;
/* sent_total when each step began: message i (the i-th sent, seq i / rooms
 * in room i % rooms) belongs to the last step whose first is <= i */
static unsigned long long step_first[MAX_TRIES + 1];
static int nstep_first;

/* ---- the sink ---- */

/* The first four numbers of data (n bytes, ending in '}'): step, room,
 * sequence number, send time. */
static int scan4(const char *p, size_t n, unsigned long long *v)
{
    const char *end = p + n;
    char *e;
    int k;

    for (k = 0; k < 4; k++, p = e) {
        while (p < end && (*p < '0' || *p > '9'))
            p++;
        if (p == end)
            return -1;
        v[k] = strtoull(p, &e, 10);
    }
    return 0;
}

/* Room room's messages from seq to before end never came: each is counted
 * a miss of the step it was sent in. */
static void missed(int room, unsigned long long seq, unsigned long long end)
{
    unsigned long long i;
    int k = nstep_first - 1;

    for (; seq < end; seq++) {
        i = seq * (unsigned long long)opt.rooms + (unsigned long long)room;
        while (k > 0 && step_first[k] > i)
            k--;
        steps[k].misses++;
    }
}

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    bc_member *g = user;
    unsigned long long v[4], t = bc_now_ns();
    bc_step *st;

    (void)c, (void)f;
    if (scan4(m->data, m->data_len, v) != 0 || v[0] > MAX_TRIES ||
        v[1] != (unsigned long long)g->room) {
        g->bad++;
        return 0;
    }
    st = &steps[v[0]];
    if (v[2] == g->next) {
        g->next++;
    } else if (v[2] > g->next) {
        missed(g->room, g->next, v[2]);
        g->next = v[2] + 1;
    } else {
        st->dups++;
        return 0;
    }
    if ((int)v[0] == cur) {
        st->delivered++;
        bc_hist_add(t > v[3] ? (double)(t - v[3]) / 1e3 : 0);
    } else {
        st->late++;
    }
    return 0;
}

/* ---- the publisher ---- */

/* Messages sent into room r so far (message i went to room i % rooms). */
static unsigned long long room_sent(int r)
{
    unsigned long long rooms = (unsigned long long)opt.rooms;

    return sent_total / rooms + ((unsigned long long)r < sent_total % rooms);
}

/* Fork the publisher (before anything is opened: it opens its own). */
static void start_publisher(void)
{
    int c[2], r[2];

    if (pipe(c) != 0 || pipe(r) != 0)
        bu_die("no pipe");
    fflush(NULL);
    if ((pub_pid = fork()) < 0)
        bu_die("cannot fork");
    if (pub_pid == 0) {
        close(c[1]);
        close(r[0]);
        bc_publisher(c[0], r[1]); /* exits */
    }
    close(c[0]);
    close(r[1]);
    cmd_fd = c[1];
    rep_fd = r[0];
}

static void command(int k, long rate, long ms)
{
    bc_cmd c;

    memset(&c, 0, sizeof c);
    c.k = k, c.rate = rate, c.ms = ms;
    if (write(cmd_fd, &c, sizeof c) != (ssize_t)sizeof c)
        bu_die("the publisher is gone");
}

static void on_report(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    if (read(fd, &last, sizeof last) != (ssize_t)sizeof last)
        bu_die("the publisher is gone");
    reported = 1;
    sent_total = last.sent_total;
    pub_link_failures = last.link_failures;
}

/* Run the loop until the publisher reports step k (-1: ready). */
static void await_report(int k, double ms)
{
    double end = bu_now_ms() + ms;

    while (!reported || last.k != k) {
        if (bu_now_ms() > end)
            bu_die("no report from the publisher (step %d)", k);
        event_base_loop(base, EVLOOP_ONCE);
    }
    reported = 0;
}

/* ---- steps ---- */

static void run_ms(double ms)
{
    double end = bu_now_ms() + ms;

    while (bu_now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
}

static void say(const bc_step *st)
{
    fprintf(stderr,
            "%s: %s %ld msgs/s: sent %ld, delivered %ld of %ld, p50 %.2f "
            "p99 %.2f max %.1f ms, cpu %.0f %% + %.0f %% (machine %.0f %%), "
            "redis %.0f ms%s%s\n",
            bu_prog, opt.mode, st->rate, st->sent, st->delivered, st->expected,
            st->p50, st->p99, st->max, 100 * st->cpu_ms / st->ms,
            100 * st->pub_cpu_ms / st->ms, st->machine_pct, st->redis_total,
            st->why ? ": " : "", st->why ? st->why : "");
}

/* Why step st is past the limit, or NULL. */
static const char *verdict(const bc_step *st, long ms)
{
    if (st->send_errors || st->pub_errors)
        return "publish errors";
    if (st->delivered < st->expected)
        return "behind";
    if ((double)st->sent < 0.95 * (double)st->rate * (double)ms / 1e3)
        return "publisher behind";
    if (st->p99 > opt.limit_ms)
        return "p99";
    return NULL;
}

static void run_step(int k, long rate, long ms)
{
    bc_step *st = &steps[k];
    double r0[MAX_SERVERS], r1[MAX_SERVERS], m0[2], m1[2], t0, cpu0, end;
    int i;

    memset(st, 0, sizeof *st);
    st->rate = rate;
    step_first[k] = sent_total;
    nstep_first = k + 1;
    bc_hist_reset();
    bc_redis_cpu(r0);
    bc_machine_cpu(m0);
    cpu0 = bu_cpu_ms();
    cur = k;
    t0 = bu_now_ms();
    command(k, rate, ms);
    await_report(k, (double)ms + 10000);
    st->sent = last.sent, st->send_errors = last.send_errors;
    st->pub_errors = last.pub_errors, st->behind_max = last.behind_max;
    st->pub_cpu_ms = last.cpu_ms;
    st->expected = st->sent * opt.subs * opt.members;
    end = bu_now_ms() + opt.drain_ms;
    while (st->delivered < st->expected && bu_now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    st->ms = bu_now_ms() - t0;
    cur = -1;
    st->cpu_ms = bu_cpu_ms() - cpu0;
    bc_redis_cpu(r1);
    for (i = 0; i < opt.nports; i++)
        st->redis_total += st->redis_ms[i] = r1[i] - r0[i];
    st->p50 = bc_hist_q(0.50);
    st->p99 = bc_hist_q(0.99);
    st->max = bc_hist_max_ms();
    bc_machine_cpu(m1);
    st->machine_pct = 100 * (m1[0] - m0[0]) / (m1[1] - m0[1] + 1e-9);
    st->why = verdict(st, ms);
    say(st);
}

/* Redis' CPU over --idle-ms with nothing published (cluster gossip,
 * serverCron): subtracted from each step's for its cost per message. */
static void measure_idle(void)
{
    double r0[MAX_SERVERS], r1[MAX_SERVERS], t0 = bu_now_ms(), sum;

    sum = -bc_redis_cpu(r0);
    run_ms(opt.idle_ms);
    sum += bc_redis_cpu(r1);
    idle_ms_per_s = sum / ((bu_now_ms() - t0) / 1e3);
}

/* ---- setup ---- */

rc_adapter *bc_open_node(struct event_base *b, const char *role, int i,
                         rc_link **link)
{
    rc_state_options so;
    rc_link_options lo;
    rc_adapter *a;
    char id[64];

    snprintf(id, sizeof id, "bc-%d-%s-%d", (int)getpid(), role, i);
    memset(&so, 0, sizeof so);
    so.lease_ms = 3600000; /* renewed every 20 min: not during the run */
    so.verify_ms = 3600000;
    if ((a = rc_adapter_new(NULL, NULL, NULL, id)) == NULL ||
        rc_adapter_set_state_options(a, &so, sizeof so) != 0)
        bu_die("cannot open an adapter");
    memset(&lo, 0, sizeof lo);
    lo.url = opt.url;
    if (rc_link_open(a, b, &lo, link) != 0)
        bu_die("cannot open a link to %s", opt.url);
    return a;
}

/* --members connections per room on every subscriber node. */
static void join_rooms(void)
{
    char name[32];
    rc_conn *c;
    long k = 0;
    int s, r, m;

    nmembers = (long)opt.subs * opt.rooms * opt.members;
    members = calloc((size_t)nmembers, sizeof *members);
    if (members == NULL)
        bu_die("out of memory");
    for (s = 0; s < opt.subs; s++)
        for (r = 0; r < opt.rooms; r++)
            for (m = 0; m < opt.members; m++) {
                members[k].room = r;
                snprintf(name, sizeof name, "r%d", r);
                if (rc_conn_add(subs[s], NULL, sink, &members[k++], &c) != 0 ||
                    rc_room_join(c, name) != 1)
                    bu_die("cannot join room %s", name);
            }
}

int bc_node_up(rc_adapter *a, rc_link *l)
{
    return rc_link_state(l) == RC_LINK_UP &&
           rc_adapter_node_state(a) == RC_NODE_LIVE;
}

/* Every subscriber's link up, its node live, every room ready on it. */
static int all_ready(void)
{
    char name[32];
    int s, r;

    for (s = 0; s < opt.subs; s++) {
        if (!bc_node_up(subs[s], sublinks[s]))
            return 0;
        for (r = 0; r < opt.rooms; r++) {
            snprintf(name, sizeof name, "r%d", r);
            if (rc_room_is_ready(subs[s], name) != 1)
                return 0;
        }
    }
    return 1;
}

static void wait_ready(void)
{
    double end = bu_now_ms() + BC_READY_MS;

    while (!all_ready()) {
        if (bu_now_ms() > end)
            bu_die("not ready after %d ms (first subscriber's link: \"%s\")",
                   BC_READY_MS, rc_link_reason(sublinks[0]));
        event_base_loop(base, EVLOOP_ONCE);
    }
    await_report(-1, BC_READY_MS); /* the publisher's node */
}

/* ---- the end ---- */

static int caught_up(void)
{
    long i;

    for (i = 0; i < nmembers; i++)
        if (members[i].next != room_sent(members[i].room))
            return 0;
    return 1;
}

/* Wait for what is still coming; what never came is missed in step last. */
/* Run the loop until every member has every message sent, or ms. */
static void drain(double ms)
{
    double end = bu_now_ms() + ms;

    while (!caught_up() && bu_now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
}

/* What is still missing after the final drain never came. */
static void final_misses(void)
{
    long i;

    for (i = 0; i < nmembers; i++)
        missed(members[i].room, members[i].next, room_sent(members[i].room));
}

/* ---- arguments, main ---- */

/* "a,b,c" into at most max numbers; returns how many. */
static int list(const char *s, long *v, int max)
{
    int n = 0;
    char *end;

    while (n < max && *s) {
        v[n++] = strtol(s, &end, 10);
        if (end == s || (*end != ',' && *end != '\0'))
            bu_die("bad list: %s", s);
        s = *end ? end + 1 : end;
    }
    return n;
}

static void usage(void)
{
    bu_die("usage: bench_cluster --url URL --ports P[,P...] [--mode NAME] "
           "[--subs S] [--rooms R] [--members M] [--size BYTES] "
           "[--steps RATE,RATE...] [--step-ms MS] [--drain-ms MS] "
           "[--warmup-ms MS] [--idle-ms MS] [--limit-ms MS]");
}

static void parse(int argc, char **argv)
{
    static const char *const names[] = {
        "--subs",     "--rooms",     "--members",  "--size",    "--step-ms",
        "--drain-ms", "--warmup-ms", "--limit-ms", "--idle-ms", "--url",
        "--mode",     "--steps",     "--ports"};
    int *dst[] = {&opt.subs,      &opt.rooms,    &opt.members,
                  &opt.size,      &opt.step_ms,  &opt.drain_ms,
                  &opt.warmup_ms, &opt.limit_ms, &opt.idle_ms};
    int i, j;

    for (i = 1; i + 1 < argc; i += 2) {
        for (j = 0; j < 13 && strcmp(argv[i], names[j]) != 0; j++)
            ;
        if (j < 9)
            *dst[j] = atoi(argv[i + 1]);
        else if (j == 9 || j == 10)
            *(j == 9 ? &opt.url : &opt.mode) = argv[i + 1];
        else if (j == 11)
            opt.nsteps = list(argv[i + 1], opt.rate, MAX_STEPS);
        else if (j == 12)
            opt.nports = list(argv[i + 1], opt.port, MAX_SERVERS);
        else
            usage();
    }
    if (i != argc || opt.url == NULL || opt.nports < 1 || opt.subs < 1 ||
        opt.subs > MAX_SUBS || opt.rooms < 1 || opt.members < 1 ||
        opt.size < 64 || opt.size > 1000 || opt.step_ms < 100 ||
        opt.drain_ms < 0 || opt.warmup_ms < 100 || opt.limit_ms < 1 ||
        opt.idle_ms < 100)
        usage();
    if (opt.nsteps == 0)
        opt.nsteps = list("1000,2000,5000,10000,20000,50000,100000", opt.rate,
                          MAX_STEPS);
    for (j = 0; j < opt.nsteps; j++)
        if (opt.rate[j] < 1)
            usage();
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg; /* wakes the loop: deadlines */
}

static void setup(void)
{
    struct timeval ms5 = {0, 5000};
    int i;

    start_publisher();
    if ((base = event_base_new()) == NULL)
        bu_die("no event base");
    if ((timer = event_new(base, -1, EV_PERSIST, on_timer, NULL)) == NULL ||
        (rep_ev = event_new(base, rep_fd, EV_READ | EV_PERSIST, on_report,
                            NULL)) == NULL ||
        event_add(timer, &ms5) != 0 || event_add(rep_ev, NULL) != 0)
        bu_die("no events");
    bc_servers_open();
    for (i = 0; i < opt.subs; i++)
        subs[i] = bc_open_node(base, "sub", i, &sublinks[i]);
    join_rooms();
    wait_ready();
    bc_map_rooms();
}

static void teardown(void)
{
    int i, status;

    command(-1, 0, 0);
    close(cmd_fd);
    event_free(timer);
    event_free(rep_ev);
    for (i = 0; i < opt.subs; i++)
        rc_link_close(sublinks[i]), rc_adapter_free(subs[i]);
    event_base_loop(base, EVLOOP_NONBLOCK);
    bc_servers_close();
    event_base_free(base);
    free(members);
    if (waitpid(pub_pid, &status, 0) != pub_pid || status != 0)
        bu_die("the publisher failed");
}

int main(int argc, char **argv)
{
    unsigned long f0;
    int k, end = 0, r, again = 0;

    parse(argc, argv);
    setup();
    f0 = bc_link_failures();
    run_step(0, opt.rate[0], opt.warmup_ms); /* warm-up, not reported */
    run_ms(300);
    measure_idle();
    for (k = 1, r = 0; r < opt.nsteps && k <= MAX_TRIES; k++) {
        run_step(k, opt.rate[r], opt.step_ms);
        end = k;
        if (steps[k].why == NULL)
            r++, again = 0;
        else if (again++) /* failed twice: the end of the ramp */
            break;
        run_ms(300);
        drain(opt.drain_ms); /* a failed step's backlog */
    }
    drain(FINAL_DRAIN_MS);
    final_misses();
    bc_print_json(end, bc_link_failures() - f0 + pub_link_failures);
    teardown();
    return 0;
}
