/*
 * bench_publish: how fast one adapter publishes through Redis, and what
 * each publish costs the process in CPU time.
 *
 *   bench_publish [--redis URL] [--n N] [--size BYTES] [--window W]
 *                 [--warmup N] [--max-seconds S] [--node-id ID]
 *                 [--print-envelope]
 *
 * One adapter (rc_adapter_open, no contexts) linked to Redis with
 * rc_link_open on a libevent base, as a server would run it; one local
 * connection (its sink only counts) joined to the room "bench", so the
 * adapter subscribes "sse:room:bench" and every publish comes back to its
 * own sub context as an echo (decoded, then dropped). Once the link is up
 * and the room ready, rc_broadcast_to_room() sends messages whose data is
 * BYTES of JSON, {"s":123,"p":"xxx..."}, with at most W publishes in
 * flight (and at most W echoes not back yet, see run): the loop tops the
 * window up, runs one libevent iteration (EVLOOP_ONCE: it writes what
 * hiredis queued, reads replies and echoes), and counts completions as
 * published + publish_errors from rc_adapter_counters() (the adapter has
 * no completion callback). --warmup completions first, then N timed ones;
 * the whole run stops after --max-seconds, whatever it reached
 * ("timed_out" says so).
 *
 * One JSON line on stdout: publishes per second (wall clock, N
 * completions), and the process's CPU time (getrusage user + sys) per
 * publish, which covers all the library does for one: validating and
 * encoding the envelope, the local delivery, hiredis formatting the
 * command and parsing the reply, libevent, the syscalls, and decoding the
 * echo on the sub side. At the end it waits (up to 2 s) for the last
 * echoes, and stops with an error if a publish failed or an echo is
 * missing.
 *
 * --print-envelope writes the exact envelope bytes this run would publish
 * (no newline) and exits, so that the same payload can be handed to
 * redis-benchmark. Pass the same --node-id to both to get identical bytes.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <event2/event.h>

#include "roomcast/libevent.h"
#include "roomcast/roomcast.h"

#define BENCH_NAME "bench_publish"
/* This benchmark times itself (one timed run against Redis), so the
 * batch-timing helpers are unused here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "bench_util.h"
#pragma GCC diagnostic pop

#define ROOM "bench"
#define MIN_SIZE 16 /* {"s":123,"p":""} */
#define DRAIN_NS 2000000000ull

struct options {
    const char *url;
    const char *node_id; /* NULL: a random UUID v4 */
    unsigned long long n, warmup, size, window, max_seconds;
    int print_envelope;
};

struct bench {
    const struct options *o;
    struct event_base *base;
    struct event *tick;
    rc_adapter *a;
    rc_link *link;
    rc_message msg;
    uint64_t sent;       /* broadcasts, all runs */
    uint64_t deliveries; /* the local connection's sink */
    uint64_t deadline;   /* now_ns() after which the run stops */
    int timed_out;
};

static int count_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                      void *user)
{
    (void)conn;
    (void)frame;
    (void)msg;
    ++*(uint64_t *)user;
    return 0;
}

/* Keeps EVLOOP_ONCE from blocking longer than 50 ms, so that the
 * deadlines are looked at even when Redis says nothing. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void on_link_state(rc_link *link, int state, const char *reason,
                          void *user)
{
    (void)link;
    (void)user;
    if (state != RC_LINK_UP)
        fprintf(stderr, BENCH_NAME ": link down: %s\n", reason);
}

/* {"s":123,"p":"xxx..."}, exactly size bytes (size >= MIN_SIZE). */
static char *make_data(size_t size)
{
    char *d = xmalloc(size);
    size_t head = sizeof "{\"s\":123,\"p\":\"" - 1;

    memcpy(d, "{\"s\":123,\"p\":\"", head);
    memset(d + head, 'x', size - head - 2);
    memcpy(d + size - 2, "\"}", 2);
    return d;
}

static uint64_t completed(const rc_adapter *a, rc_counters *c)
{
    rc_adapter_counters(a, c, sizeof *c);
    return c->published + c->publish_errors;
}

/*
 * Broadcast until n more publishes have completed, or until the deadline.
 * Returns the completions. At most window publishes are in flight, and
 * at most window echoes outstanding: the sub side reads what Redis sends
 * it 16 KiB per loop iteration (hiredis), about 75 echoes, while a wide
 * window completes hundreds of publishes per iteration, so without the
 * second bound its backlog grows in Redis until Redis drops the sub
 * connection (client-output-buffer-limit pubsub, 32 MB).
 */
static uint64_t run(struct bench *b, uint64_t n)
{
    rc_counters c;
    uint64_t done0 = completed(b->a, &c), echoes0 = c.echoes;
    uint64_t done = 0, back = 0, sent = 0;
    int rc;

    while (done < n) {
        /* sent - the oldest of (replies, echoes) still to come */
        while (sent < n && sent - (back < done ? back : done) < b->o->window) {
            rc = rc_broadcast_to_room(b->a, ROOM, &b->msg, NULL, 0);
            if (rc != 1)
                die("rc_broadcast_to_room did not deliver locally",
                    rc < 0 ? rc : 0);
            sent++;
            b->sent++;
        }
        if (now_ns() > b->deadline) {
            b->timed_out = 1;
            break;
        }
        if (event_base_loop(b->base, EVLOOP_ONCE) < 0)
            die("event_base_loop failed", 0);
        done = completed(b->a, &c) - done0;
        back = c.echoes - echoes0;
    }
    return done;
}

/* Run the loop until the link is up and the room's SUBSCRIBE confirmed. */
static void wait_ready(struct bench *b)
{
    uint64_t until = now_ns() + 10000000000ull;

    while (rc_link_state(b->link) != RC_LINK_UP ||
           !rc_room_is_ready(b->a, ROOM)) {
        if (now_ns() > until) {
            fprintf(stderr, BENCH_NAME ": %s not ready after 10 s: %s\n",
                    b->o->url, rc_link_reason(b->link));
            exit(1);
        }
        if (event_base_loop(b->base, EVLOOP_ONCE) < 0)
            die("event_base_loop failed", 0);
    }
}

/* Let every publish complete and the sub side catch up: each published
 * envelope must come back as an echo. */
static void drain(struct bench *b, rc_counters *c)
{
    uint64_t until = now_ns() + DRAIN_NS;

    for (;;) {
        if ((completed(b->a, c) == b->sent && c->echoes >= c->published) ||
            now_ns() > until)
            return;
        if (event_base_loop(b->base, EVLOOP_ONCE) < 0)
            die("event_base_loop failed", 0);
    }
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void print_envelope(const rc_message *msg, const char *node)
{
    rc_envelope env;
    char *buf;
    size_t len;
    int rc;

    memset(&env, 0, sizeof env);
    env.msg = *msg;
    env.node = node;
    rc = rc_envelope_encode(&env, NULL, NULL, 0, &len);
    if (rc != RC_ENOBUFS)
        die("rc_envelope_encode failed", rc);
    buf = xmalloc(len);
    rc = rc_envelope_encode(&env, NULL, buf, len, &len);
    if (rc != 0)
        die("rc_envelope_encode failed", rc);
    fwrite(buf, 1, len, stdout);
    fflush(stdout);
    free(buf);
}

static size_t envelope_size(const rc_message *msg, const char *node)
{
    rc_envelope env;
    size_t len;

    memset(&env, 0, sizeof env);
    env.msg = *msg;
    env.node = node;
    if (rc_envelope_encode(&env, NULL, NULL, 0, &len) != RC_ENOBUFS)
        die("rc_envelope_encode failed", 0);
    return len;
}

static void usage(FILE *f)
{
    fputs("usage: bench_publish [--redis URL] [--n N] [--size BYTES]\n"
          "                     [--window W] [--warmup N] [--max-seconds S]\n"
          "                     [--node-id ID] [--print-envelope]\n"
          "defaults: --redis redis://127.0.0.1:6379 --n 200000 --size 100\n"
          "          --window 16 --warmup 20000 --max-seconds 20\n",
          f);
}

int main(int argc, char **argv)
{
    struct options o = {
        "redis://127.0.0.1:6379", NULL, 200000, 20000, 100, 16, 20, 0};
    rc_message init = RC_MESSAGE_INIT;
    rc_adapter_options aopts;
    rc_link_options lopts;
    struct bench b;
    struct timeval tick = {0, 50000};
    struct rusage ru0, ru1;
    rc_counters c0, c1;
    uint64_t t0, t1, done;
    double secs, user, sys;
    rc_conn *conn;
    char *data;
    int i, rc;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--redis") && v) {
            o.url = v;
            i++;
        } else if (!strcmp(a, "--node-id") && v) {
            o.node_id = v;
            i++;
        } else if (!strcmp(a, "--n")) {
            o.n = parse_num(a, v);
            i++;
        } else if (!strcmp(a, "--warmup")) {
            o.warmup = parse_num(a, v);
            i++;
        } else if (!strcmp(a, "--size")) {
            o.size = parse_num(a, v);
            i++;
        } else if (!strcmp(a, "--window")) {
            o.window = parse_num(a, v);
            i++;
        } else if (!strcmp(a, "--max-seconds")) {
            o.max_seconds = parse_num(a, v);
            i++;
        } else if (!strcmp(a, "--print-envelope")) {
            o.print_envelope = 1;
        } else {
            return bench_help_or_bad_arg(a, usage);
        }
    }
    if (o.size < MIN_SIZE || o.size > RC_DEFAULT_MAX_DATA) {
        fprintf(stderr, BENCH_NAME ": --size is %d to %zu\n", MIN_SIZE,
                (size_t)RC_DEFAULT_MAX_DATA);
        return 2;
    }

    memset(&b, 0, sizeof b);
    b.o = &o;
    data = make_data((size_t)o.size);
    b.msg = init;
    b.msg.data = data;
    b.msg.data_len = (size_t)o.size;
    if ((rc = rc_message_check(&b.msg, NULL)) != 0)
        die("the message data is not valid", rc);

    memset(&aopts, 0, sizeof aopts);
    aopts.node_id = o.node_id;
    if ((rc = rc_adapter_open(&aopts, NULL, NULL, &b.a)) != 0)
        die("rc_adapter_open failed", rc);
    if (o.print_envelope) {
        print_envelope(&b.msg, rc_adapter_node_id(b.a));
        rc_adapter_free(b.a);
        free(data);
        return 0;
    }

    b.base = event_base_new();
    if (b.base == NULL)
        die("event_base_new failed", 0);
    b.tick = event_new(b.base, -1, EV_PERSIST, on_tick, NULL);
    if (b.tick == NULL || event_add(b.tick, &tick) != 0)
        die("cannot add the tick event", 0);
    if ((rc = rc_conn_add(b.a, NULL, count_sink, &b.deliveries, &conn)) != 0)
        die("rc_conn_add failed", rc);
    if ((rc = rc_room_join(conn, ROOM)) != 1)
        die("rc_room_join failed", rc < 0 ? rc : 0);
    memset(&lopts, 0, sizeof lopts);
    lopts.url = o.url;
    lopts.state_cb = on_link_state;
    if ((rc = rc_link_open(b.a, b.base, &lopts, &b.link)) != 0)
        die("rc_link_open failed", rc);
    wait_ready(&b);

    b.deadline = now_ns() + o.max_seconds * 1000000000ull;
    run(&b, o.warmup);
    drain(&b, &c0);

    if (getrusage(RUSAGE_SELF, &ru0) != 0)
        die("getrusage failed", 0);
    t0 = now_ns();
    done = b.timed_out ? 0 : run(&b, o.n);
    t1 = now_ns();
    if (getrusage(RUSAGE_SELF, &ru1) != 0)
        die("getrusage failed", 0);
    drain(&b, &c1);

    secs = (double)(t1 - t0) / 1e9;
    user = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    printf("{\"impl\":\"roomcast\",\"n\":%llu,\"completed\":%llu,"
           "\"warmup\":%llu,\"window\":%llu,\"data_bytes\":%llu,"
           "\"envelope_bytes\":%zu,\"seconds\":%.4f,"
           "\"publishes_per_sec\":%.1f,\"cpu_user_s\":%.4f,"
           "\"cpu_sys_s\":%.4f,\"cpu_us_per_publish\":%.3f,"
           "\"user_us_per_publish\":%.3f,\"sys_us_per_publish\":%.3f,"
           "\"published\":%llu,\"publish_errors\":%llu,\"echoes\":%llu,"
           "\"rejected\":%llu,\"deliveries\":%llu,\"timed_out\":%s}\n",
           o.n, (unsigned long long)done, o.warmup, o.window, o.size,
           envelope_size(&b.msg, rc_adapter_node_id(b.a)), secs,
           done ? (double)done / secs : 0.0, user, sys,
           done ? (user + sys) * 1e6 / (double)done : 0.0,
           done ? user * 1e6 / (double)done : 0.0,
           done ? sys * 1e6 / (double)done : 0.0, c1.published,
           c1.publish_errors, c1.echoes, c1.rejected,
           (unsigned long long)b.deliveries, b.timed_out ? "true" : "false");
    fflush(stdout);

    rc_link_close(b.link);
    rc_adapter_free(b.a);
    event_free(b.tick);
    event_base_free(b.base);
    free(data);

    if (b.timed_out)
        fprintf(stderr,
                BENCH_NAME ": stopped after --max-seconds %llu with %llu of "
                           "%llu timed publishes\n",
                o.max_seconds, (unsigned long long)done, o.n);
    if (c1.publish_errors != 0)
        die("some publishes failed", 0);
    if (c1.published != b.sent)
        die("some publishes never completed", 0);
    if (c1.echoes != c1.published)
        die("not every publish came back to the adapter's sub side", 0);
    if (b.deliveries != b.sent)
        die("the local connection missed broadcasts", 0);
    return 0;
}
