/*
 * rc_link (roomcast/libevent.h) under faults, against a real redis-server:
 *
 *   half_open        a stalled TCP path (a socat proxy frozen with SIGSTOP:
 *                    the kernel still ACKs, nothing is ever answered) is
 *                    found by the probe within seven probe intervals (two,
 *                    plus the five a silent Redis is allowed); after
 *                    SIGCONT the link comes back and the room is subscribed
 *                    exactly once (the stale connections hold nothing).
 *                    Broadcasts made into the frozen path are counted as
 *                    unconfirmed (the thaw may still deliver them), those
 *                    made after it went down as never sent (they reach
 *                    nobody): each has exactly one outcome.
 *   slow_subscriber  Redis closes a subscriber that does not read
 *                    (client-output-buffer-limit pubsub, catalogue R4); the
 *                    link notices, reconnects and resubscribes, and memory
 *                    stays bounded.
 *   outage_accounting  kill -9 and restart Redis in the middle of a stream
 *                    of numbered broadcasts (catalogue R2): what arrives is
 *                    in order, without duplicates, and only what Redis
 *                    acknowledged.
 *   burst            128 KiB published between two turns of the loop, 600
 *                    messages of 64 KiB, pubsub output limit 1 MiB: the
 *                    glue drains the socket, so the subscriber keeps up,
 *                    loses nothing and is never cut.
 *   stall            Redis pauses 3 s (CLIENT PAUSE ALL) during a stream
 *                    of broadcasts: the probe waits (a slow Redis is not
 *                    a dead link), nothing fails, everything arrives once.
 *   sub_frozen       only the sub connection's socat child is frozen while
 *                    Redis answers the pub side: the probe is lost at once
 *                    (two intervals), not after the stall allowance.
 *
 * Every test gets its own redis-server (redis_harness) and event_base.
 * Synchronisation is never a sleep: the loop is driven one turn at a time
 * until a condition holds, with a deadline and a message naming what was
 * awaited (a turn that finds nothing to do blocks for at most 1 ms on a
 * guard timer). Waiting for external processes (socat, Redis) polls them
 * with a bound (rh_wait_until). No assertion runs inside a callback:
 * callbacks record and note problems (ts_note); tests end with
 * ts_assert_clean(). The world, the nodes (ts_node_link), their recorded
 * state changes and the recording sink are shared with the other
 * integration tests (test_nodes.h).
 *
 * The half-open and sub_frozen tests need socat (apt-get install socat);
 * without it they are skipped.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_nodes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "roomcast/libevent.h"
#include "roomcast/roomcast.h"

#define MAX_SEQ TS_MAX_SEQ

/* The envelopes published here come from a foreign node (so that no
 * adapter drops them as its own echo). */
#define EXTERNAL "external-publisher"

#define HALF_OPEN_PROBE_MS 300u
/* The documented bound (roomcast/libevent.h): 7 probe intervals, plus two
 * for the scheduling of a busy shared machine. */
#define HALF_OPEN_LIMIT_MS (9 * HALF_OPEN_PROBE_MS)

/* How much B's RSS may grow in slow_subscriber. Under AddressSanitizer the
 * quarantine keeps freed blocks resident (about 30 MiB for the ~4 MB read
 * there), so the bound is looser. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_GROWTH_LIMIT (256LL << 20)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_GROWTH_LIMIT (256LL << 20)
#endif
#endif
#ifndef RSS_GROWTH_LIMIT
#define RSS_GROWTH_LIMIT (64LL << 20)
#endif

/* ---- fixture -------------------------------------------------------- */

typedef struct outage outage;

typedef struct proxy {
    pid_t pid; /* socat, leader of its own process group; 0 if none */
    int port;
    int stopped;
} proxy;

/* This file's own state (w->user). */
typedef struct fx {
    proxy px;
    struct event *tick; /* outage_accounting's broadcaster */
    outage *o;
} fx;

/* ---- small utilities ------------------------------------------------ */

/* Resident set size of this process, in bytes (/proc/self/statm). */
static long long rss_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    int n;

    if (fp == NULL)
        return -1;
    n = fscanf(fp, "%lu %lu", &size, &resident);
    fclose(fp);
    if (n != 2)
        return -1;
    return (long long)resident * sysconf(_SC_PAGESIZE);
}

/* ---- nodes ------------------------------------------------------------ */

/* A connection id on node n, in room. */
static ts_rec *member(ts_node *n, const char *id, const char *room)
{
    ts_rec *r = ts_add_conn(n, id);

    ts_join(r, room);
    return r;
}

/* ---- socat: a loopback TCP proxy in its own process group ---------------- */

static int have_program(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);

        if (len > 0 && len + strlen(prog) + 2 < sizeof buf) {
            memcpy(buf, path, len);
            buf[len] = '/';
            strcpy(buf + len + 1, prog);
            if (access(buf, X_OK) == 0)
                return 1;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return 0;
}

/* A loopback port that was free a moment ago, or -1. */
static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

struct proxy_probe {
    proxy *px;
    int exited; /* socat exited (e.g. could not bind) */
};

/* Ready when a PING through the proxy answers PONG. */
static int pred_proxy_ready(void *arg)
{
    struct proxy_probe *pp = arg;
    struct timeval tv = {0, 200000};
    redisContext *c;
    redisReply *r;
    int status, ok = 0;

    if (waitpid(pp->px->pid, &status, WNOHANG) == pp->px->pid) {
        pp->px->pid = 0;
        pp->exited = 1;
        return 1;
    }
    c = redisConnectWithTimeout("127.0.0.1", pp->px->port, tv);
    if (c == NULL)
        return 0;
    if (c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) {
        r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
             strcmp(r->str, "PONG") == 0;
        if (r != NULL)
            freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

static void proxy_kill(proxy *px)
{
    int status;

    if (px->pid <= 0)
        return;
    kill(-px->pid, SIGKILL); /* works on stopped processes too */
    kill(-px->pid, SIGCONT); /* the fork children die when their peers go */
    waitpid(px->pid, &status, 0);
    px->pid = 0;
    px->stopped = 0;
}

/* socat TCP-LISTEN:P,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:target */
static void proxy_start(proxy *px, int target)
{
    int attempt;

    for (attempt = 0; attempt < 5; attempt++) {
        char listen_arg[96], connect_arg[64];
        struct proxy_probe pp;
        pid_t pid;

        px->port = free_port();
        assert_true(px->port > 0);
        snprintf(listen_arg, sizeof listen_arg,
                 "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", px->port);
        snprintf(connect_arg, sizeof connect_arg, "TCP:127.0.0.1:%d", target);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            setpgid(0, 0);
#ifdef __linux__
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* the listener dies with us */
#endif
            execlp("socat", "socat", listen_arg, connect_arg, (char *)NULL);
            _exit(127);
        }
        setpgid(pid, pid); /* either this or the child's call wins */
        px->pid = pid;
        pp.px = px;
        pp.exited = 0;
        if (rh_wait_until(pred_proxy_ready, &pp, 5000,
                          "socat to relay a PING") != 0) {
            proxy_kill(px);
            fail_msg("socat on port %d did not relay to redis port %d",
                     px->port, target);
        }
        if (!pp.exited)
            return;
        print_message("socat exited at start (port %d taken?), retrying\n",
                      px->port);
    }
    fail_msg("socat would not start");
}

/* ---- setup / teardown ------------------------------------------------- */

static void proxy_kill(proxy *px);

static void fx_free(void *arg)
{
    fx *x = arg;

    proxy_kill(&x->px);
    free(x->o);
    free(x);
}

/* A world without redis-server (each test starts it when it needs it). */
static int setup(void **state)
{
    ts_world *w;

    if (ts_world_setup(state, NULL, 0) != 0)
        return -1;
    w = *state;
    w->user = calloc(1, sizeof(fx));
    w->user_free = fx_free;
    return w->user ? 0 : -1;
}

static int teardown(void **state)
{
    ts_world *w = *state;
    fx *x = w ? w->user : NULL;

    if (x != NULL && x->tick != NULL) {
        event_free(x->tick);
        x->tick = NULL;
    }
    return ts_world_teardown(state);
}

/* ---- a) half-open link ----------------------------------------------- */

struct gone_arg {
    ts_world *w;
    const unsigned long long *ids;
    int n;
};

static int pred_clients_gone(void *arg)
{
    struct gone_arg *g = arg;
    int i;

    for (i = 0; i < g->n; i++)
        if (ts_client_alive(g->w, g->ids[i]) != 0)
            return 0;
    return 1;
}

/* Node A linked to Redis through the socat proxy (the test is skipped
 * without socat), with member a1 (*m) in room r1, up and ready. */
static ts_node *proxied_node(ts_world *w, fx *x, ts_rec **m)
{
    char url[64]; /* parsed by rc_link_open, not kept */
    rc_link_options lo;
    ts_node *A;
    ts_rec *a1;

    if (!have_program("socat")) {
        print_message("socat is not installed: test skipped\n");
        skip();
    }
    ts_start_redis(w);
    proxy_start(&x->px, w->rs.port);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", x->px.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.probe_interval_ms = HALF_OPEN_PROBE_MS;
    lo.connect_timeout_ms = 1000;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 400;
    A = ts_node_link(w, 0, "nodeA", &lo);
    a1 = member(A, "a1", "r1");
    WAIT_FOR(w, ts_link_up(A) && rc_room_is_ready(A->a, "r1") == 1,
             "nodeA: link UP through the proxy and room r1 ready");
    if (m != NULL)
        *m = a1;
    return A;
}

/* Broadcasts made into a frozen path (written, their replies lost with
 * the link) and after the link went down (never sent). */
#define LOST_IN_PATH 10
#define LOST_UNSENT 5

static void lost_bcast(ts_node *A, int k)
{
    char data[32];

    snprintf(data, sizeof data, "{\"seq\":%d}", k);
    assert_int_equal(ts_bcast(A, "lost", NULL, data, NULL, 0), 0);
}

/* Every broadcast has exactly one outcome in the counters; those never
 * sent reached nobody, and what reached Redis at all (the frozen path's,
 * relayed late at the thaw) is within publish_unconfirmed. */
static void check_lost(ts_world *w, ts_node *A, redisContext *raw,
                       const rc_counters *c0)
{
    rc_counters c = ts_ctr(A);
    unsigned long long ok = c.published - c0->published;
    unsigned long long err = c.publish_errors - c0->publish_errors;
    unsigned long long unconf = c.publish_unconfirmed - c0->publish_unconfirmed;
    int got = 0, k;
    char *ch, *payload, *at;
    size_t len;

    ts_reply_ok(rh_cmd(&w->rs, "PUBLISH sse:room:lost end"), "PUBLISH end");
    for (;;) {
        ts_raw_next(raw, &ch, &payload, &len);
        at = strstr(payload, "\"seq\":");
        k = at ? atoi(at + 6) : 0;
        free(ch);
        free(payload);
        if (at == NULL)
            break;
        if (k > LOST_IN_PATH)
            fail_msg("seq %d, broadcast after the link went down, reached "
                     "Redis",
                     k);
        got++;
    }
    print_message("lost accounting: %d broadcasts into the frozen path, %d "
                  "after: published %llu, publish_errors %llu, of them "
                  "unconfirmed %llu; %d reached Redis after the thaw\n",
                  LOST_IN_PATH, LOST_UNSENT, ok, err, unconf, got);
    assert_int_equal(ok + err, LOST_IN_PATH + LOST_UNSENT);
    assert_int_equal(unconf, LOST_IN_PATH);
    assert_int_equal(err - unconf, LOST_UNSENT);
    assert_true((unsigned long long)got <= unconf);
}

static void test_half_open(void **state)
{
    ts_world *w = *state;
    fx *x = w->user;
    ts_node *A;
    ts_rec *m;
    redisContext *raw;
    rc_counters c0;
    int k;
    unsigned long long old[2], ids[4];
    struct gone_arg g;
    long long t0, dt, t_cont, t_up, ch_deadline;
    long down;
    size_t mark;
    int nsub, npub;

    A = proxied_node(w, x, &m);
    assert_int_equal(ts_numsub(w, "sse:room:r1"), 1);

    /* A healthy link survives several probe rounds. */
    mark = A->ntr;
    ts_run_for(&w->loop, (int)(4 * HALF_OPEN_PROBE_MS));
    if (A->ntr != mark || !ts_link_up(A))
        fail_msg("the probe took down a healthy link: \"%s\"",
                 rc_link_reason(A->link));

    /* A stall of half an interval delays one probe by less than an
     * interval: that is no reason to drop the link. */
    assert_int_equal(kill(-x->px.pid, SIGSTOP), 0);
    x->px.stopped = 1;
    ts_run_for(&w->loop, (int)(HALF_OPEN_PROBE_MS / 2));
    assert_int_equal(kill(-x->px.pid, SIGCONT), 0);
    x->px.stopped = 0;
    ts_run_for(&w->loop, (int)(3 * HALF_OPEN_PROBE_MS));
    if (A->ntr != mark || !ts_link_up(A))
        fail_msg("a %u ms stall took the link down: \"%s\"",
                 HALF_OPEN_PROBE_MS / 2, rc_link_reason(A->link));

    /* The connections through the proxy, to see them go later. */
    assert_int_equal(ts_clients_named(w, "roomcast:nodeA:sub", &old[0], 1), 1);
    assert_int_equal(ts_clients_named(w, "roomcast:nodeA:pub", &old[1], 1), 1);

    /* Freeze the proxy: TCP stays up (the kernel ACKs), nothing answers.
     * The broadcasts made meanwhile are written into the frozen path;
     * those made once the link is down are never sent. */
    raw = ts_raw_sub(w, "sse:room:lost");
    c0 = ts_ctr(A);
    mark = A->ntr;
    t0 = ts_now_ms();
    assert_int_equal(kill(-x->px.pid, SIGSTOP), 0);
    x->px.stopped = 1;
    for (k = 1; k <= LOST_IN_PATH; k++)
        lost_bcast(A, k);
    WAIT_FOR_MS(w, ts_first_since(A, mark, RC_LINK_DOWN) >= 0,
                (int)(2 * HALF_OPEN_LIMIT_MS),
                "nodeA: link DOWN after the proxy froze");
    for (; k <= LOST_IN_PATH + LOST_UNSENT; k++)
        lost_bcast(A, k);
    down = ts_first_since(A, mark, RC_LINK_DOWN);
    dt = A->tr[down].t - t0;
    print_message("half-open detected after %lld ms (probe interval %u ms, "
                  "limit %u ms), reason \"%s\"\n",
                  dt, HALF_OPEN_PROBE_MS, HALF_OPEN_LIMIT_MS,
                  A->tr[down].reason);
    if (strstr(A->tr[down].reason, "probe") == NULL)
        fail_msg("link went down for \"%s\", expected the probe",
                 A->tr[down].reason);
    if (dt > (long long)HALF_OPEN_LIMIT_MS)
        fail_msg("half-open detection took %lld ms, more than %u ms", dt,
                 HALF_OPEN_LIMIT_MS);
    assert_false(ts_link_up(A));
    assert_int_equal(rc_room_is_ready(A->a, "r1"), 0);

    /* Stay frozen past two connect timeouts: the reconnect attempts reach
     * the kernel's accept queue of the frozen proxy and get no answer;
     * none of them may bring the link up. */
    ts_run_for(&w->loop, 2500);
    if (ts_link_up(A))
        fail_msg("the link came UP through a frozen proxy");
    print_message("while frozen: %lu failed attempts, last reason \"%s\"\n",
                  rc_link_failures(A->link), rc_link_reason(A->link));

    /* Thaw: the link comes back by itself. */
    t_cont = ts_now_ms();
    assert_int_equal(kill(-x->px.pid, SIGCONT), 0);
    x->px.stopped = 0;
    WAIT_FOR_MS(w, ts_link_up(A) && rc_room_is_ready(A->a, "r1") == 1, 15000,
                "nodeA: link UP again and room r1 ready after SIGCONT");
    t_up = ts_now_ms();

    /* The stale connections (through the thawed socat children) close;
     * keep the loop running meanwhile, so that the link stays healthy. */
    g.w = w;
    g.ids = old;
    g.n = 2;
    ch_deadline = ts_now_ms() + 10000;
    for (;;) {
        if (pred_clients_gone(&g))
            break;
        if (ts_now_ms() >= ch_deadline)
            fail_msg("the connections from before the freeze (ids %llu, "
                     "%llu) are still open 10 s after SIGCONT",
                     old[0], old[1]);
        ts_run_for(&w->loop, 20);
    }
    print_message("link UP again %lld ms after SIGCONT (%lld ms after it "
                  "went down); the stale connections were gone %lld ms "
                  "later\n",
                  t_up - t_cont, t_up - A->tr[down].t, ts_now_ms() - t_up);

    /* Attempts that timed out in the frozen proxy's accept queue are
     * relayed after the thaw (a CLIENT SETNAME, then their close): wait
     * for them to go too. None of them ever got to SUBSCRIBE. */
    ch_deadline = ts_now_ms() + 10000;
    for (;;) {
        nsub = ts_clients_named(w, "roomcast:nodeA:sub", ids, 4);
        npub = ts_clients_named(w, "roomcast:nodeA:pub", ids, 4);
        if (nsub == 1 && npub == 1)
            break;
        if (ts_now_ms() >= ch_deadline)
            fail_msg("10 s after SIGCONT Redis has %d sub and %d pub "
                     "connections of nodeA, expected 1 and 1",
                     nsub, npub);
        ts_run_for(&w->loop, 20);
    }
    assert_true(ts_link_up(A));
    assert_int_equal(ts_numsub(w, "sse:room:r1"), 1);
    check_lost(w, A, raw, &c0);

    /* And it delivers, once. */
    assert_int_equal(ts_publish_env(w, "sse:room:r1", EXTERNAL, NULL,
                                    "{\"after\":\"thaw\"}"),
                     1);
    WAIT_FOR(w, m->count >= 1, "a1: the message published after the thaw");
    assert_int_equal(ts_publish_env(w, "sse:room:r1", EXTERNAL, "marker", "1"),
                     1);
    WAIT_FOR(w, m->markers >= 1, "a1: the marker after it");
    assert_int_equal(m->count, 1);
    ts_assert_clean(&w->problems);
}

/* ---- b) slow subscriber dropped by Redis (R4) ------------------------- */

#define SLOW_MSG_BYTES (16u << 10)
#define SLOW_FIRST_BYTES (2u << 20)
#define SLOW_MAX_BYTES (16u << 20)

static void test_slow_subscriber(void **state)
{
    ts_world *w = *state;
    rc_link_options lo;
    ts_node *B;
    ts_rec *slow, *other;
    char url[64], *data, *env;
    unsigned long long sub_id, ids[4];
    long long rss0, rss1, t_res, t_recv;
    unsigned long long sent = 0, nmsg = 0, env_len;
    redisContext *c;
    size_t len, mark;
    long down;
    int gone = 0;

    ts_start_redis(w);
    ts_reply_ok(rh_cmd(&w->rs, "CONFIG SET client-output-buffer-limit %s",
                       "pubsub 256kb 128kb 1"),
                "CONFIG SET client-output-buffer-limit");

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", w->rs.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 400;
    B = ts_node_link(w, 0, "nodeB", &lo);
    slow = member(B, "b-slow", "slow");
    other = member(B, "b-other", "other");
    WAIT_FOR(w,
             ts_link_up(B) && rc_room_is_ready(B->a, "slow") == 1 &&
                 rc_room_is_ready(B->a, "other") == 1,
             "nodeB: link UP, rooms slow and other ready");
    assert_int_equal(ts_clients_named(w, "roomcast:nodeB:sub", &sub_id, 1), 1);
    rss0 = rss_bytes();
    assert_true(rss0 > 0);
    mark = B->ntr;

    /* B's loop is not run from here on: B reads nothing. */
    data = malloc(SLOW_MSG_BYTES + 3);
    assert_non_null(data);
    data[0] = '"';
    memset(data + 1, 'x', SLOW_MSG_BYTES);
    data[SLOW_MSG_BYTES + 1] = '"';
    data[SLOW_MSG_BYTES + 2] = '\0';
    env = ts_envelope(EXTERNAL, NULL, data, SLOW_MSG_BYTES + 2, &len);
    env_len = len;
    free(data);
    c = rh_connect(&w->rs);
    assert_non_null(c);
    while (sent < SLOW_MAX_BYTES && !gone) {
        redisReply *r = redisCommand(c, "PUBLISH sse:room:slow %b", env, len);

        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            if (r != NULL)
                freeReplyObject(r);
            redisFree(c);
            free(env);
            fail_msg("PUBLISH failed after %llu bytes", sent);
        }
        freeReplyObject(r);
        sent += len;
        nmsg++;
        /* ~2 MB first, then check every 256 KB. */
        if (sent >= SLOW_FIRST_BYTES && nmsg % 16 == 0)
            gone = ts_client_alive(w, sub_id) == 0;
    }
    redisFree(c);
    free(env);
    print_message("published %llu bytes (%llu messages of %llu bytes) to "
                  "the stalled subscriber; Redis %s its connection\n",
                  sent, nmsg, env_len, gone ? "closed" : "did NOT close");
    if (!gone)
        fail_msg("Redis kept the non-reading subscriber (id %llu) after %llu "
                 "bytes with pubsub hard limit 256kb",
                 sub_id, sent);
    assert_int_equal(ts_clients_named(w, "roomcast:nodeB:sub", ids, 4), 0);

    /* Run B again: it must see the close, reconnect, resubscribe. */
    t_res = ts_now_ms();
    WAIT_FOR_MS(w, ts_first_since(B, mark, RC_LINK_DOWN) >= 0, 5000,
                "nodeB: link DOWN once its loop runs again");
    down = ts_first_since(B, mark, RC_LINK_DOWN);
    WAIT_FOR_MS(w, ts_link_up(B) && rc_room_is_ready(B->a, "other") == 1, 2000,
                "nodeB: link UP and room other ready again");
    assert_int_equal(ts_publish_env(w, "sse:room:other", EXTERNAL, NULL,
                                    "{\"room\":\"other\"}"),
                     1);
    WAIT_FOR_MS(w, other->count >= 1, 2000,
                "b-other: a message after the reconnect");
    t_recv = other->first_t;
    WAIT_FOR(w, rc_room_is_ready(B->a, "slow") == 1,
             "nodeB: room slow ready again");
    assert_int_equal(ts_numsub(w, "sse:room:slow"), 1);
    assert_int_equal(ts_numsub(w, "sse:room:other"), 1);
    rss1 = rss_bytes();
    print_message("down after %lld ms (\"%s\"), room other received %lld ms "
                  "after the loop resumed; b-slow got %d of %llu messages; "
                  "RSS %lld -> %lld KiB\n",
                  B->tr[down].t - t_res, B->tr[down].reason, t_recv - t_res,
                  slow->count, nmsg, rss0 / 1024, rss1 / 1024);
    if (t_recv - t_res > 2000)
        fail_msg("room other received only %lld ms after B's loop resumed",
                 t_recv - t_res);
    if (rss1 - rss0 >= RSS_GROWTH_LIMIT)
        fail_msg("RSS grew by %lld KiB (limit %lld KiB)", (rss1 - rss0) / 1024,
                 RSS_GROWTH_LIMIT / 1024);
    assert_int_equal(other->count, 1);
    ts_assert_clean(&w->problems);
}

/* ---- c) outage accounting (R2) ---------------------------------------- */

enum { OUT_UNKNOWN = 0, OUT_OK, OUT_ERR, OUT_AMBIG };

struct outage {
    ts_node *A, *B;
    ts_rec *mb;
    int seq;                 /* last seq broadcast */
    int stop;                /* the tick stops broadcasting */
    unsigned long long p, e; /* A's counters as last accounted */
    unsigned long long p0;   /* published before the first seq */
    int resolved;            /* seqs 1..resolved have an outcome */
    unsigned char outcome[MAX_SEQ + 1];
    unsigned char ready_at_send[MAX_SEQ + 1];
    long long t_send[MAX_SEQ + 1];
    int ambiguous;
    int bad_rc;
};

/*
 * Publish outcomes arrive in the order of the broadcasts (replies in
 * order; on a lost link every pending one fails before the adapter is
 * told, and a broadcast without a link fails at once), so the counters'
 * increments map to seq numbers: the next dp seqs are OK, or the next de
 * failed. If both moved since the last look, the split is unknown.
 */
static void account(outage *o)
{
    rc_counters c = ts_ctr(o->A);
    unsigned long long dp = c.published - o->p, de = c.publish_errors - o->e;
    unsigned char what;
    unsigned long long k;

    if (dp == 0 && de == 0)
        return;
    what = dp && de ? OUT_AMBIG : dp ? OUT_OK : OUT_ERR;
    if (what == OUT_AMBIG)
        o->ambiguous++;
    for (k = 0; k < dp + de; k++) {
        o->resolved++;
        if (o->resolved <= MAX_SEQ)
            o->outcome[o->resolved] = what;
    }
    o->p = c.published;
    o->e = c.publish_errors;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    outage *o = arg;
    rc_message m = RC_MESSAGE_INIT;
    char data[32];
    int rc;

    (void)fd;
    (void)what;
    if (o->stop || o->seq >= MAX_SEQ)
        return;
    account(o);
    o->seq++;
    o->t_send[o->seq] = ts_now_ms();
    o->ready_at_send[o->seq] =
        (unsigned char)(rc_room_is_ready(o->B->a, "seq") == 1);
    snprintf(data, sizeof data, "{\"seq\":%d}", o->seq);
    m.data = data;
    m.data_len = strlen(data);
    rc = rc_broadcast_to_room(o->A->a, "seq", &m, NULL, 0);
    if (rc < 0)
        o->bad_rc++;
    account(o);
}

/* Run the loop for ms, accounting after every turn. */
static void run_accounting(ts_loop *lp, outage *o, int ms)
{
    long long deadline = ts_now_ms() + ms;

    while (ts_now_ms() < deadline) {
        ts_pump(lp);
        account(o);
        ts_idle(lp);
        account(o);
    }
}

static void test_outage_accounting(void **state)
{
    ts_world *w = *state;
    fx *x = w->user;
    rc_link_options lo;
    outage *o;
    ts_rec *mb;
    char url[64];
    struct timeval tv = {0, 10000};
    long long t_kill, t_restart, t_back, deadline;
    rc_counters ca, cb;
    size_t i;
    int s, received, missing_ok = 0, missing_ok_ready = 0, not_ok_received = 0;
    int errors = 0, oks = 0, ambig = 0, violations = 0, first_violation = 0;
    int max_before_restart = 0;

    o = x->o = calloc(1, sizeof *o);
    assert_non_null(o);
    ts_start_redis(w);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", w->rs.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.connect_timeout_ms = 1000;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 200;
    o->A = ts_node_link(w, 0, "nodeA", &lo);
    o->B = ts_node_link(w, 1, "nodeB", &lo);
    mb = o->mb = member(o->B, "b1", "seq");
    WAIT_FOR(w,
             ts_link_up(o->A) && ts_link_up(o->B) &&
                 rc_room_is_ready(o->B->a, "seq") == 1,
             "nodes A and B UP and B's room seq ready");
    ca = ts_ctr(o->A);
    o->p = o->p0 = ca.published;
    o->e = ca.publish_errors;

    x->tick = event_new(w->loop.base, -1, EV_PERSIST, on_tick, o);
    assert_non_null(x->tick);
    assert_int_equal(event_add(x->tick, &tv), 0);

    run_accounting(&w->loop, o, 500);
    t_kill = ts_now_ms();
    if (rh_kill9(&w->rs) != 0)
        fail_msg("rh_kill9: %s", w->rs.error);
    run_accounting(&w->loop, o, 2000);
    for (i = 0; i < mb->nseq && i < MAX_SEQ; i++)
        if (mb->seqs[i] > max_before_restart)
            max_before_restart = mb->seqs[i];
    t_restart = ts_now_ms();
    if (rh_restart(&w->rs) != 0)
        fail_msg("rh_restart: %s", w->rs.error);
    deadline = ts_now_ms() + 10000;
    while (!(ts_link_up(o->A) && ts_link_up(o->B) &&
             rc_room_is_ready(o->B->a, "seq") == 1)) {
        if (ts_now_ms() >= deadline)
            fail_msg("links not UP again 10 s after the restart");
        run_accounting(&w->loop, o, 5);
    }
    t_back = ts_now_ms();
    run_accounting(&w->loop, o, 1000);
    o->stop = 1;
    event_del(x->tick);

    /* Every publish has an outcome... */
    deadline = ts_now_ms() + 5000;
    while (o->resolved < o->seq) {
        if (ts_now_ms() >= deadline)
            fail_msg("only %d of %d publishes resolved 5 s after the end",
                     o->resolved, o->seq);
        run_accounting(&w->loop, o, 5);
    }
    /* ...and whatever reached B's connection has been read: a marker
     * published after the last seq comes back (same publisher, same
     * subscriber connection: in order). */
    deadline = ts_now_ms() + 5000;
    while (mb->markers == 0) {
        rc_message m = RC_MESSAGE_INIT;

        if (ts_now_ms() >= deadline)
            fail_msg("no marker from A reached B within 5 s");
        m.event = "marker";
        m.data = "0";
        m.data_len = 1;
        rc_broadcast_to_room(o->A->a, "seq", &m, NULL, 0);
        ts_run_for(&w->loop, 100);
    }

    ca = ts_ctr(o->A);
    cb = ts_ctr(o->B);
    received = (int)mb->nseq;
    assert_true(mb->nseq <= MAX_SEQ);
    assert_int_equal(o->bad_rc, 0);

    /* In order, no duplicates, nothing that was never sent. */
    for (i = 0; i < mb->nseq; i++) {
        if (mb->seqs[i] < 1 || mb->seqs[i] > o->seq)
            fail_msg("B received seq %d, never sent (1..%d)", mb->seqs[i],
                     o->seq);
        if (i > 0 && mb->seqs[i] <= mb->seqs[i - 1])
            fail_msg("B received seq %d after %d (index %zu): %s", mb->seqs[i],
                     mb->seqs[i - 1], i,
                     mb->seqs[i] == mb->seqs[i - 1] ? "duplicate"
                                                    : "out of order");
    }
    for (s = 1; s <= o->seq; s++) {
        int got = 0;

        for (i = 0; i < mb->nseq; i++)
            if (mb->seqs[i] == s) {
                got = 1;
                break;
            }
        switch (o->outcome[s]) {
        case OUT_OK:
            oks++;
            if (!got) {
                missing_ok++;
                if (o->ready_at_send[s])
                    missing_ok_ready++;
            }
            /* B's room was subscribed before A sent it, and Redis
             * acknowledged it: B must have it. (Sent in the last 50 ms
             * before the kill: Redis may have died between writing A's
             * reply and B's message.) */
            if (!got && o->ready_at_send[s] && o->t_send[s] < t_kill - 50) {
                if (violations++ == 0)
                    first_violation = s;
            }
            break;
        case OUT_ERR:
            errors++;
            if (got)
                not_ok_received++;
            break;
        default:
            ambig++;
            break;
        }
    }

    print_message(
        "outage: sent %d, A published OK %llu, publish_errors %llu, B "
        "received %d (counter %llu); kill at +%lld ms, restart took until "
        "+%lld, links back %lld ms after restart; per seq: %d OK, %d failed, "
        "%d ambiguous; OK but not received: %d (%d of them while B's room "
        "was ready); failed but received: %d\n",
        o->seq, ca.published, ca.publish_errors, received, cb.received,
        t_kill - o->t_send[1], t_restart - o->t_send[1], t_back - t_restart,
        oks, errors, ambig, missing_ok, missing_ok_ready, not_ok_received);

    if ((unsigned long long)received > ca.published)
        fail_msg("B received %d but A had only %llu publishes acknowledged",
                 received, ca.published);
    assert_true(received > 0);
    assert_true(mb->seqs[mb->nseq - 1] > max_before_restart); /* recovered */
    assert_true(errors > 0); /* the outage was seen */
    if (o->ambiguous == 0) {
        /* The identity: what Redis acknowledged minus what B got is
         * exactly what B is missing among the acknowledged. */
        if (not_ok_received != 0)
            fail_msg("B received %d message(s) whose PUBLISH failed",
                     not_ok_received);
        assert_int_equal((long long)(o->p - o->p0), oks);
        assert_int_equal(oks - received, missing_ok);
    } else {
        print_message("%d accounting step(s) were ambiguous: only received "
                      "<= published is checked\n",
                      o->ambiguous);
    }
    if (violations)
        fail_msg("%d acknowledged message(s) sent while B was subscribed "
                 "never reached B (first: seq %d)",
                 violations, first_violation);
    ts_assert_clean(&w->problems);
}

/* ---- d) a burst faster than 16 KiB per loop turn ------------------------ */

#define BURST_MSG_BYTES (64u << 10)
#define BURST_STEPS 300
#define BURST_PER_STEP 2

/* An envelope from EXTERNAL whose data is a JSON string of n 'x'. */
static char *big_envelope(size_t n, size_t *len)
{
    char *data = malloc(n + 3), *env;

    assert_non_null(data);
    data[0] = '"';
    memset(data + 1, 'x', n);
    data[n + 1] = '"';
    data[n + 2] = '\0';
    env = ts_envelope(EXTERNAL, NULL, data, n + 2, len);
    free(data);
    return env;
}

/* PUBLISH env k times, pipelined; how many of them reached no one (or
 * failed). */
static int publish_k(redisContext *c, const char *env, size_t len, int k)
{
    redisReply *r;
    int i, missed = 0;

    for (i = 0; i < k; i++)
        redisAppendCommand(c, "PUBLISH sse:room:burst %b", env, len);
    for (i = 0; i < k; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
            fail_msg("PUBLISH: %s", c->errstr);
        if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
            missed++;
        freeReplyObject(r);
    }
    return missed;
}

/*
 * 600 messages of 64 KiB, 128 KiB published between two turns of B's loop,
 * with Redis allowed 1 MiB of output buffer for a subscriber. Reading 16
 * KiB per readable event (hiredis 0.14 alone) falls behind by 112 KiB a
 * turn and Redis cuts the subscriber; drained reads keep up: nothing is
 * lost and the link stays up.
 */
static void test_burst(void **state)
{
    ts_world *w = *state;
    rc_link_options lo;
    ts_node *B;
    ts_rec *m;
    char url[64], *env;
    redisContext *c;
    size_t len, mark;
    long long t0, t1;
    int step, missed = 0, total = BURST_STEPS * BURST_PER_STEP;

    ts_start_redis(w);
    ts_reply_ok(rh_cmd(&w->rs, "CONFIG SET client-output-buffer-limit %s",
                       "pubsub 1mb 0 0"),
                "CONFIG SET client-output-buffer-limit");
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", w->rs.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 400;
    B = ts_node_link(w, 0, "nodeB", &lo);
    m = member(B, "b1", "burst");
    WAIT_FOR(w, ts_link_up(B) && rc_room_is_ready(B->a, "burst") == 1,
             "nodeB: link UP and room burst ready");
    mark = B->ntr;
    env = big_envelope(BURST_MSG_BYTES, &len);
    c = rh_connect(&w->rs);
    assert_non_null(c);
    t0 = ts_now_ms();
    for (step = 0; step < BURST_STEPS; step++) {
        missed += publish_k(c, env, len, BURST_PER_STEP);
        ts_pump(&w->loop); /* one turn of B's loop */
    }
    t1 = ts_now_ms();
    redisFree(c);
    free(env);
    WAIT_FOR_MS(w, m->count >= total || B->ntr != mark, 10000,
                "b1: every message of the burst, or a link change");
    print_message("burst: %d messages of %u bytes in %lld ms; %d reached no "
                  "subscriber; b1 got %d; link changes %zu (\"%s\")\n",
                  total, BURST_MSG_BYTES, t1 - t0, missed, m->count,
                  B->ntr - mark, rc_link_reason(B->link));
    if (B->ntr != mark)
        fail_msg("the link went DOWN during the burst: \"%s\"",
                 B->tr[mark].reason);
    assert_int_equal(missed, 0);
    ts_run_for(&w->loop, 100);
    assert_int_equal(m->count, total);
    assert_true(ts_link_up(B));
    ts_assert_clean(&w->problems);
}

/* ---- e) a slow Redis is not a dead link -------------------------------- */

#define STALL_PAUSE_MS 3000

/* Node A broadcasts numbered messages to B every 20 ms while Redis stops
 * answering for STALL_PAUSE_MS (CLIENT PAUSE ALL), with the default probe
 * interval (1 s): no link goes DOWN, no publish fails, and B gets every
 * message, in order, once. Before, the probe restarted both links after
 * 1-2 s and the publishes queued meanwhile failed. */
static void test_stall(void **state)
{
    ts_world *w = *state;
    fx *x = w->user;
    rc_link_options lo;
    outage *o;
    char url[64];
    struct timeval tv = {0, 20000};
    size_t mark_a, mark_b, i;
    rc_counters ca;
    long long t0;

    o = x->o = calloc(1, sizeof *o);
    assert_non_null(o);
    ts_start_redis(w);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", w->rs.port);
    memset(&lo, 0, sizeof lo); /* default probe interval */
    lo.url = url;
    o->A = ts_node_link(w, 0, "nodeA", &lo);
    o->B = ts_node_link(w, 1, "nodeB", &lo);
    o->mb = member(o->B, "b1", "seq");
    WAIT_FOR(w,
             ts_link_up(o->A) && ts_link_up(o->B) &&
                 rc_room_is_ready(o->B->a, "seq") == 1,
             "nodes A and B UP and B's room seq ready");
    ca = ts_ctr(o->A);
    o->p = o->p0 = ca.published;
    o->e = ca.publish_errors;
    mark_a = o->A->ntr;
    mark_b = o->B->ntr;
    x->tick = event_new(w->loop.base, -1, EV_PERSIST, on_tick, o);
    assert_non_null(x->tick);
    assert_int_equal(event_add(x->tick, &tv), 0);
    run_accounting(&w->loop, o, 1500);
    t0 = ts_now_ms();
    ts_reply_ok(rh_cmd(&w->rs, "CLIENT PAUSE %d ALL", STALL_PAUSE_MS),
                "CLIENT PAUSE");
    run_accounting(&w->loop, o, STALL_PAUSE_MS + 1500);
    o->stop = 1;
    event_del(x->tick);
    WAIT_FOR_MS(w, (int)o->mb->nseq >= o->seq || o->A->ntr != mark_a, 10000,
                "b1: every numbered message");
    ca = ts_ctr(o->A);
    print_message("stall: %d ms pause; A sent %d, published %llu, errors "
                  "%llu; B got %zu; link changes A %zu B %zu; %lld ms\n",
                  STALL_PAUSE_MS, o->seq, ca.published - o->p0,
                  ca.publish_errors - o->e, o->mb->nseq, o->A->ntr - mark_a,
                  o->B->ntr - mark_b, ts_now_ms() - t0);
    if (o->A->ntr != mark_a || o->B->ntr != mark_b)
        fail_msg("a link went DOWN during a %d ms pause: \"%s\"",
                 STALL_PAUSE_MS,
                 o->A->ntr != mark_a ? o->A->tr[mark_a].reason
                                     : o->B->tr[mark_b].reason);
    assert_true(o->seq <= MAX_SEQ);
    assert_int_equal((long long)o->mb->nseq, o->seq);
    for (i = 0; i < o->mb->nseq; i++)
        assert_int_equal(o->mb->seqs[i], (int)i + 1);
    assert_int_equal(ca.publish_errors, o->e);
    ts_assert_clean(&w->problems);
}

/* ---- f) only the sub connection frozen --------------------------------- */

/* The local port of the connection named name, as Redis sees it (the
 * socat child's end), or -1. */
static int client_port(ts_world *w, const char *name)
{
    redisReply *r = rh_cmd(&w->rs, "CLIENT LIST");
    char needle[96];
    const char *p, *line, *a;
    int port = -1;

    if (r == NULL)
        return -1;
    snprintf(needle, sizeof needle, " name=%s ", name);
    p = r->type == REDIS_REPLY_STRING ? strstr(r->str, needle) : NULL;
    if (p != NULL) {
        for (line = p; line > r->str && line[-1] != '\n'; line--)
            ;
        a = strstr(line, " addr=");
        if (a != NULL && a < p && (a = strchr(a, ':')) != NULL)
            port = atoi(a + 1);
    }
    freeReplyObject(r);
    return port;
}

/* The inode of the loopback TCP socket lport -> rport (/proc/net/tcp). */
static unsigned long socket_inode(int lport, int rport)
{
    FILE *fp = fopen("/proc/net/tcp", "r");
    char line[512];
    unsigned l, r, inode = 0, ino;

    if (fp == NULL)
        return 0;
    while (inode == 0 && fgets(line, sizeof line, fp) != NULL)
        if (sscanf(line, " %*d: %*x:%x %*x:%x %*x %*s %*s %*s %*d %*d %u", &l,
                   &r, &ino) == 3 &&
            (int)l == lport && (int)r == rport)
            inode = ino;
    fclose(fp);
    return inode;
}

/* Does process pid hold the socket with this inode? */
static int holds_socket(pid_t pid, unsigned long inode)
{
    char path[64], link[64], want[48];
    int fd;
    ssize_t n;

    snprintf(want, sizeof want, "socket:[%lu]", inode);
    for (fd = 0; fd < 64; fd++) {
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
        n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, want) == 0)
            return 1;
    }
    return 0;
}

/* The child of parent holding that socket, or -1 (socat forks one child
 * per connection). */
static pid_t child_with_socket(pid_t parent, unsigned long inode)
{
    pid_t pid;
    char path[64];
    int ppid;

    for (pid = parent + 1; pid < parent + 4096; pid++) {
        FILE *fp;

        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        if (fscanf(fp, "%*d %*s %*c %d", &ppid) != 1)
            ppid = -1;
        fclose(fp);
        if (ppid == parent && holds_socket(pid, inode))
            return pid;
    }
    return -1;
}

/* Only the sub connection stalls (its socat child frozen) while Redis
 * answers the pub side: the probe's PUBLISH is answered, the sub side
 * reads nothing, so the probe is lost at once, not after the allowance a
 * silent Redis gets: DOWN within two intervals (plus two of slack). */
static void test_sub_frozen(void **state)
{
    ts_world *w = *state;
    fx *x = w->user;
    ts_node *A;
    int port;
    unsigned long inode;
    pid_t child;
    long long t0, dt;
    size_t mark;
    long down;

    A = proxied_node(w, x, NULL);
    port = client_port(w, "roomcast:nodeA:sub");
    inode = port > 0 ? socket_inode(port, w->rs.port) : 0;
    child = inode ? child_with_socket(x->px.pid, inode) : -1;
    if (child <= 0)
        fail_msg("no socat child found for the sub connection (port %d, "
                 "inode %lu)",
                 port, inode);
    mark = A->ntr;
    t0 = ts_now_ms();
    assert_int_equal(kill(child, SIGSTOP), 0);
    WAIT_FOR_MS(w, ts_first_since(A, mark, RC_LINK_DOWN) >= 0,
                (int)(2 * HALF_OPEN_LIMIT_MS),
                "nodeA: link DOWN after its sub connection froze");
    kill(child, SIGCONT);
    down = ts_first_since(A, mark, RC_LINK_DOWN);
    dt = A->tr[down].t - t0;
    print_message("sub connection frozen: DOWN after %lld ms (probe interval "
                  "%u ms), reason \"%s\"\n",
                  dt, HALF_OPEN_PROBE_MS, A->tr[down].reason);
    if (strstr(A->tr[down].reason, "probe") == NULL)
        fail_msg("link went down for \"%s\", expected the probe",
                 A->tr[down].reason);
    if (dt > (long long)(4 * HALF_OPEN_PROBE_MS))
        fail_msg("took %lld ms, more than 4 probe intervals", dt);
    WAIT_FOR(w, ts_link_up(A) && rc_room_is_ready(A->a, "r1") == 1,
             "nodeA: link UP again and room r1 ready");
    ts_assert_clean(&w->problems);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_half_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage_accounting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sub_frozen, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
