/*
 * bench_cluster_pub.c: bench_cluster's publisher, a process of its own
 * (forked before anything is opened) with its own loop, so that it and
 * the subscriber nodes do not share one loop (bench_cluster.h).
 *
 * It opens its node on --url, reports once the node is live (k -1), then
 * runs each step it is told: a 1 ms timer sends what is due since the
 * step began (at most 20 ms worth at once) for the step's time; once
 * every publish is answered (at most 2 s more) it reports the step. The
 * message i it sends (from 0, over the whole run) goes to room i % rooms
 * with sequence number i / rooms: a publish that fails at once is not
 * counted, and the next takes its place. A stop command, or the end of the
 * command pipe, ends the process.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_cluster.h"

enum { IDLE, PACING, ANSWERS };

static struct event_base *base;
static rc_adapter *node;
static rc_link *link_;
static int out_fd, state = IDLE;
static bc_cmd cmd;
static bc_report rep;
static double t0, cpu0, answers_end;
static unsigned long long sent_total, ok0, err0;

unsigned long long bc_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull +
           (unsigned long long)ts.tv_nsec;
}

static int publish_one(void)
{
    static char data[1024];
    rc_message msg = RC_MESSAGE_INIT;
    unsigned long long rooms = (unsigned long long)opt.rooms;
    int room = (int)(sent_total % rooms), n, rv;
    char name[32];

    n = snprintf(data, sizeof data,
                 "{\"k\":%d,\"r\":%d,\"s\":%llu,\"t\":%llu,\"p\":\"", cmd.k,
                 room, sent_total / rooms, bc_now_ns());
    while (n < opt.size - 2)
        data[n++] = 'x';
    data[n++] = '"';
    data[n++] = '}';
    msg.data = data;
    msg.data_len = (size_t)n;
    snprintf(name, sizeof name, "r%d", room);
    rv = rc_broadcast_to_room(node, name, &msg, NULL, 0);
    if (rv < 0)
        return rv;
    sent_total++;
    return 0;
}

/* Publishes answered (OK or not) since the step began. */
static unsigned long long answered(unsigned long long *errors)
{
    rc_counters c;

    rc_adapter_counters(node, &c, sizeof c);
    *errors = c.publish_errors - err0;
    return c.published - ok0 + *errors;
}

static void report(void)
{
    unsigned long long errors;

    (void)answered(&errors);
    rep.k = cmd.k;
    rep.pub_errors = (long)errors;
    rep.sent_total = sent_total;
    rep.cpu_ms = bu_cpu_ms() - cpu0;
    rep.link_failures = rc_link_failures(link_);
    if (write(out_fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
        exit(1);
    state = IDLE;
}

static void pace(void)
{
    double el = bu_now_ms() - t0;
    long due, most = cmd.rate / 50 + 1, n = 0;

    if (el >= cmd.ms)
        el = cmd.ms;
    due = (long)((double)cmd.rate * el / 1e3);
    while (rep.sent < due && n++ < most) {
        if (publish_one() != 0)
            rep.send_errors++, due--; /* link down: counted, not retried */
        else
            rep.sent++;
    }
    if (due - rep.sent > rep.behind_max)
        rep.behind_max = due - rep.sent;
    if (el >= cmd.ms && rep.sent >= due) {
        state = ANSWERS;
        answers_end = bu_now_ms() + 2000;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    unsigned long long errors;

    (void)fd, (void)what, (void)arg;
    if (state == PACING)
        pace();
    if (state == ANSWERS &&
        (answered(&errors) >= (unsigned long long)rep.sent ||
         bu_now_ms() > answers_end))
        report();
}

static void on_cmd(evutil_socket_t fd, short what, void *arg)
{
    rc_counters c;

    (void)what, (void)arg;
    if (read(fd, &cmd, sizeof cmd) != (ssize_t)sizeof cmd || cmd.k < 0) {
        event_base_loopbreak(base);
        return;
    }
    memset(&rep, 0, sizeof rep);
    rc_adapter_counters(node, &c, sizeof c);
    ok0 = c.published;
    err0 = c.publish_errors;
    cpu0 = bu_cpu_ms();
    t0 = bu_now_ms();
    state = PACING;
}

void bc_publisher(int in, int out)
{
    struct timeval ms1 = {0, 1000};
    struct event *tick, *ev;
    double end;

    out_fd = out;
    if ((base = event_base_new()) == NULL)
        bu_die("no event base");
    node = bc_open_node(base, "pub", 0, &link_);
    for (end = bu_now_ms() + BC_READY_MS; !bc_node_up(node, link_);) {
        if (bu_now_ms() > end)
            bu_die("publisher not ready (\"%s\")", rc_link_reason(link_));
        event_base_loop(base, EVLOOP_ONCE);
    }
    memset(&rep, 0, sizeof rep);
    rep.k = -1; /* ready */
    if (write(out_fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
        exit(1);
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    ev = event_new(base, in, EV_READ | EV_PERSIST, on_cmd, NULL);
    if (tick == NULL || ev == NULL || event_add(tick, &ms1) != 0 ||
        event_add(ev, NULL) != 0)
        bu_die("no events");
    event_base_dispatch(base);
    event_free(tick);
    event_free(ev);
    rc_link_close(link_);
    rc_adapter_free(node);
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    exit(0);
}
