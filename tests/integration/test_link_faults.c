/*
 * rc_link (roomcast/libevent.h) under faults, against a real redis-server:
 *
 *   half_open        a stalled TCP path (a socat proxy frozen with SIGSTOP:
 *                    the kernel still ACKs, nothing is ever answered) is
 *                    found by the probe within two probe intervals; after
 *                    SIGCONT the link comes back and the room is subscribed
 *                    exactly once (the stale connections hold nothing).
 *   slow_subscriber  Redis closes a subscriber that does not read
 *                    (client-output-buffer-limit pubsub, catalogue R4); the
 *                    link notices, reconnects and resubscribes, and memory
 *                    stays bounded.
 *   outage_accounting  kill -9 and restart Redis in the middle of a stream
 *                    of numbered broadcasts (catalogue R2): what arrives is
 *                    in order, without duplicates, and only what Redis
 *                    acknowledged.
 *
 * Every test gets its own redis-server (redis_harness) and event_base(s).
 * Synchronisation is never a sleep: the loop is driven one turn at a time
 * until a condition holds, with a deadline and a message naming what was
 * awaited (a turn that finds nothing to do blocks for at most 1 ms on a
 * guard timer). Waiting for external processes (socat, Redis) polls them
 * with a bound (rh_wait_until). No assertion runs inside a callback:
 * callbacks record and note problems (cb_error); tests end with
 * assert_clean().
 *
 * The half-open test needs socat (apt-get install socat); without it the
 * test is skipped.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_support.h"

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

#include "redis_harness.h"
#include "roomcast/libevent.h"
#include "roomcast/roomcast.h"

#define WAIT_MS 10000 /* default deadline of one wait */
#define MAX_TR 256    /* state transitions recorded per node */
#define MAX_NODES 2
#define MAX_MEMBERS 4
#define MAX_SEQ 4096

#define HALF_OPEN_PROBE_MS 300u

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

typedef struct fx fx;

typedef struct loop {
    struct event_base *base;
    struct event *guard;
} loop;

typedef struct transition {
    long long t; /* ts_now_ms() */
    int state;
    char reason[128];
} transition;

typedef struct lnode {
    fx *f;
    char id[32];
    loop *lp;
    rc_adapter *a;
    rc_link *link;
    transition tr[MAX_TR];
    size_t ntr; /* may exceed MAX_TR: only the first MAX_TR are kept */
} lnode;

typedef struct member {
    fx *f;
    lnode *n;
    char id[32];
    rc_conn *conn;
    unsigned long count;   /* non-marker messages */
    unsigned long markers; /* messages with event "marker" */
    unsigned long long bytes;
    long long first_t; /* ts_now_ms() of the first non-marker message */
    int seqs[MAX_SEQ]; /* {"seq":N} in arrival order */
    size_t nseq;       /* may exceed MAX_SEQ */
} member;

typedef struct proxy {
    pid_t pid; /* socat, leader of its own process group; 0 if none */
    int port;
    int stopped;
} proxy;

struct fx {
    rh_server rs;
    proxy px;
    loop loops[MAX_NODES];
    lnode nodes[MAX_NODES];
    member members[MAX_MEMBERS];
    size_t nmembers;
    struct event *tick; /* outage_accounting's broadcaster */
    void *scratch;      /* freed by teardown */
    ts_problems problems;
};

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

/* ---- the loop --------------------------------------------------------- */

static void loop_init(loop *lp)
{
    lp->base = event_base_new();
    assert_non_null(lp->base);
    lp->guard = ts_guard_new(lp->base);
    assert_non_null(lp->guard);
}

/* Drive the loop for ms milliseconds (the loop's own timers do the work). */
static void run_for(loop *lp, int ms)
{
    long long deadline = ts_now_ms() + ms;

    while (ts_now_ms() < deadline) {
        ts_pump((lp)->base);
        ts_idle((lp)->base, (lp)->guard);
    }
}

#define WAIT_FOR_MS(lp, cond, ms, what)                                        \
    TS_WAIT_FOR((lp)->base, (lp)->guard, cond, ms, what, (void)0)
#define WAIT_FOR(lp, cond, what) WAIT_FOR_MS(lp, cond, WAIT_MS, what)

/* ---- envelopes ---------------------------------------------------------- */

/* An envelope from a foreign node (so that no adapter drops it as its own
 * echo); malloc'ed, *len set. */
static char *envelope(const char *event, const char *data, size_t data_len,
                      size_t *len)
{
    rc_envelope env;
    char *buf;
    size_t need = 0;
    int rc;

    memset(&env, 0, sizeof env);
    env.msg.event = event;
    env.msg.data = data;
    env.msg.data_len = data_len;
    env.msg.retry = -1;
    env.node = "external-publisher";
    rc = rc_envelope_encode(&env, NULL, NULL, 0, &need);
    if (rc != RC_ENOBUFS)
        fail_msg("rc_envelope_encode (size): %s", rc_strerror(rc));
    buf = malloc(need);
    assert_non_null(buf);
    rc = rc_envelope_encode(&env, NULL, buf, need, len);
    if (rc != 0)
        fail_msg("rc_envelope_encode: %s", rc_strerror(rc));
    return buf;
}

/* ---- nodes, links and members -------------------------------------------- */

static void on_state(rc_link *link, int state, const char *reason, void *user)
{
    lnode *n = user;

    if (n->link != NULL && link != n->link)
        ts_note(&(n->f)->problems, "%s: state callback with a foreign link",
                n->id);
    if (state != RC_LINK_UP && state != RC_LINK_DOWN)
        ts_note(&(n->f)->problems, "%s: unknown link state %d", n->id, state);
    if (reason == NULL) {
        ts_note(&(n->f)->problems, "%s: state callback with a NULL reason",
                n->id);
        reason = "(null)";
    }
    if (n->ntr < MAX_TR) {
        transition *t = &n->tr[n->ntr];

        t->t = ts_now_ms();
        t->state = state;
        snprintf(t->reason, sizeof t->reason, "%s", reason);
    }
    n->ntr++;
}

/* Index of the first transition to state at or after index mark, or -1. */
static long first_since(const lnode *n, size_t mark, int state)
{
    size_t i;

    for (i = mark; i < n->ntr && i < MAX_TR; i++)
        if (n->tr[i].state == state)
            return (long)i;
    return -1;
}

static int link_up(const lnode *n)
{
    return rc_link_state(n->link) == RC_LINK_UP;
}

static lnode *node_open(fx *f, int i, loop *lp, const char *id,
                        const rc_link_options *base_opts)
{
    lnode *n = &f->nodes[i];
    rc_adapter_options ao;
    rc_link_options lo = *base_opts;
    int rc;

    memset(n, 0, sizeof *n);
    n->f = f;
    n->lp = lp;
    snprintf(n->id, sizeof n->id, "%s", id);
    memset(&ao, 0, sizeof ao);
    ao.node_id = id;
    rc = rc_adapter_open(&ao, NULL, NULL, &n->a);
    if (rc != 0)
        fail_msg("rc_adapter_open(%s): %s", id, rc_strerror(rc));
    lo.state_cb = on_state;
    lo.user = n;
    rc = rc_link_open(n->a, lp->base, &lo, &n->link);
    if (rc != 0)
        fail_msg("rc_link_open(%s, %s): %s", id, lo.url, rc_strerror(rc));
    return n;
}

static int sink(rc_conn *c, rc_frame *fr, const rc_message *m, void *user)
{
    member *mb = user;
    static const char head[] = "{\"seq\":";
    size_t i = sizeof head - 1;
    int v = 0;

    if (c != mb->conn || fr == NULL || m == NULL || m->data == NULL) {
        ts_note(&(mb->f)->problems, "%s: sink called with a wrong argument",
                mb->id);
        return 0;
    }
    if (m->event != NULL && strcmp(m->event, "marker") == 0) {
        mb->markers++;
        return 0;
    }
    if (mb->count++ == 0)
        mb->first_t = ts_now_ms();
    mb->bytes += m->data_len;
    if (m->data_len > i && memcmp(m->data, head, i) == 0) {
        for (; i < m->data_len && m->data[i] >= '0' && m->data[i] <= '9'; i++)
            v = v * 10 + (m->data[i] - '0');
        if (mb->nseq < MAX_SEQ)
            mb->seqs[mb->nseq] = v;
        mb->nseq++;
    }
    return 0;
}

static member *member_add(fx *f, lnode *n, const char *id, const char *room)
{
    member *mb;
    int rc;

    assert_true(f->nmembers < MAX_MEMBERS);
    mb = &f->members[f->nmembers++];
    memset(mb, 0, sizeof *mb);
    mb->f = f;
    mb->n = n;
    snprintf(mb->id, sizeof mb->id, "%s", id);
    rc = rc_conn_add(n->a, id, sink, mb, &mb->conn);
    if (rc != 0)
        fail_msg("rc_conn_add(%s): %s", id, rc_strerror(rc));
    rc = rc_room_join(mb->conn, room);
    if (rc != 1)
        fail_msg("rc_room_join(%s, %s) = %d", id, room, rc);
    return mb;
}

static rc_counters counters(const lnode *n)
{
    rc_counters c;

    memset(&c, 0, sizeof c);
    rc_adapter_counters(n->a, &c, sizeof c);
    return c;
}

/* ---- Redis-side helpers ---------------------------------------------- */

/* The ids of the clients named name in CLIENT LIST (up to max); returns
 * how many there are, or -1 if CLIENT LIST failed. */
static int clients_named(const rh_server *rs, const char *name,
                         unsigned long long *ids, int max)
{
    redisReply *r = rh_cmd(rs, "CLIENT LIST");
    const char *p;
    size_t nl = strlen(name);
    int count = 0;

    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        return -1;
    }
    for (p = r->str; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        const char *q = strstr(p, " name=");

        if (q != NULL && (eol == NULL || q < eol) &&
            strncmp(q + 6, name, nl) == 0 &&
            (q[6 + nl] == ' ' || q[6 + nl] == '\r' || q[6 + nl] == '\n' ||
             q[6 + nl] == '\0')) {
            if (count < max && strncmp(p, "id=", 3) == 0)
                ids[count] = strtoull(p + 3, NULL, 10);
            count++;
        }
        p = eol ? eol + 1 : NULL;
    }
    freeReplyObject(r);
    return count;
}

/* Is the client with this id still connected? 1, 0, or -1 on failure. */
static int client_alive(const rh_server *rs, unsigned long long id)
{
    redisReply *r = rh_cmd(rs, "CLIENT LIST");
    char needle[40];
    const char *p;
    int found = 0;

    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        return -1;
    }
    snprintf(needle, sizeof needle, "id=%llu ", id);
    for (p = r->str; p != NULL && *p != '\0' && !found;) {
        const char *eol = strchr(p, '\n');

        if (strncmp(p, needle, strlen(needle)) == 0)
            found = 1;
        p = eol ? eol + 1 : NULL;
    }
    freeReplyObject(r);
    return found;
}

static void config_set(const rh_server *rs, const char *key, const char *value)
{
    redisReply *r = rh_cmd(rs, "CONFIG SET %s %s", key, value);

    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fail_msg("CONFIG SET %s %s: %s", key, value, r ? r->str : "no reply");
    freeReplyObject(r);
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

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);

    if (f == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    int i;

    if (f->tick != NULL)
        event_free(f->tick);
    free(f->scratch);
    for (i = 0; i < MAX_NODES; i++) {
        rc_link_close(f->nodes[i].link);
        f->nodes[i].link = NULL;
        rc_adapter_free(f->nodes[i].a);
        f->nodes[i].a = NULL;
    }
    for (i = 0; i < MAX_NODES; i++) {
        if (f->loops[i].guard != NULL)
            event_free(f->loops[i].guard);
        if (f->loops[i].base != NULL)
            event_base_free(f->loops[i].base);
    }
    proxy_kill(&f->px);
    rh_stop(&f->rs);
    free(f);
    return 0;
}

static void start_redis(fx *f)
{
    if (rh_start(&f->rs, NULL) != 0)
        fail_msg("rh_start: %s", f->rs.error);
}

/* ---- a) half-open link ----------------------------------------------- */

struct gone_arg {
    const rh_server *rs;
    const unsigned long long *ids;
    int n;
};

static int pred_clients_gone(void *arg)
{
    struct gone_arg *g = arg;
    int i;

    for (i = 0; i < g->n; i++)
        if (client_alive(g->rs, g->ids[i]) != 0)
            return 0;
    return 1;
}

static void test_half_open(void **state)
{
    fx *f = *state;
    loop *lp = &f->loops[0];
    rc_link_options lo;
    lnode *A;
    member *m;
    char url[64], *env;
    unsigned long long old[2], ids[4];
    struct gone_arg g;
    long long t0, dt, t_cont, t_up, ch_deadline;
    long down;
    size_t mark, len;
    int nsub, npub;

    if (!have_program("socat")) {
        print_message("socat is not installed: half-open test skipped\n");
        skip();
    }
    start_redis(f);
    proxy_start(&f->px, f->rs.port);
    loop_init(lp);

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->px.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.probe_interval_ms = HALF_OPEN_PROBE_MS;
    lo.connect_timeout_ms = 1000;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 400;
    A = node_open(f, 0, lp, "nodeA", &lo);
    m = member_add(f, A, "a1", "r1");
    WAIT_FOR(lp, link_up(A) && rc_room_is_ready(A->a, "r1") == 1,
             "nodeA: link UP through the proxy and room r1 ready");
    assert_int_equal(rh_numsub(&f->rs, "sse:room:r1"), 1);

    /* A healthy link survives several probe rounds. */
    mark = A->ntr;
    run_for(lp, (int)(4 * HALF_OPEN_PROBE_MS));
    if (A->ntr != mark || !link_up(A))
        fail_msg("the probe took down a healthy link: \"%s\"",
                 rc_link_reason(A->link));

    /* A stall of half an interval delays one probe by less than an
     * interval: that is no reason to drop the link. */
    assert_int_equal(kill(-f->px.pid, SIGSTOP), 0);
    f->px.stopped = 1;
    run_for(lp, (int)(HALF_OPEN_PROBE_MS / 2));
    assert_int_equal(kill(-f->px.pid, SIGCONT), 0);
    f->px.stopped = 0;
    run_for(lp, (int)(3 * HALF_OPEN_PROBE_MS));
    if (A->ntr != mark || !link_up(A))
        fail_msg("a %u ms stall took the link down: \"%s\"",
                 HALF_OPEN_PROBE_MS / 2, rc_link_reason(A->link));

    /* The connections through the proxy, to see them go later. */
    assert_int_equal(clients_named(&f->rs, "roomcast:nodeA:sub", &old[0], 1),
                     1);
    assert_int_equal(clients_named(&f->rs, "roomcast:nodeA:pub", &old[1], 1),
                     1);

    /* Freeze the proxy: TCP stays up (the kernel ACKs), nothing answers. */
    mark = A->ntr;
    t0 = ts_now_ms();
    assert_int_equal(kill(-f->px.pid, SIGSTOP), 0);
    f->px.stopped = 1;
    WAIT_FOR_MS(lp, first_since(A, mark, RC_LINK_DOWN) >= 0,
                (int)(10 * HALF_OPEN_PROBE_MS),
                "nodeA: link DOWN after the proxy froze");
    down = first_since(A, mark, RC_LINK_DOWN);
    dt = A->tr[down].t - t0;
    print_message("half-open detected after %lld ms (probe interval %u ms, "
                  "limit %u ms), reason \"%s\"\n",
                  dt, HALF_OPEN_PROBE_MS, 3 * HALF_OPEN_PROBE_MS,
                  A->tr[down].reason);
    if (strstr(A->tr[down].reason, "probe") == NULL)
        fail_msg("link went down for \"%s\", expected the probe",
                 A->tr[down].reason);
    if (dt > (long long)(3 * HALF_OPEN_PROBE_MS))
        fail_msg("half-open detection took %lld ms, more than 3 probe "
                 "intervals (%u ms)",
                 dt, 3 * HALF_OPEN_PROBE_MS);
    assert_false(link_up(A));
    assert_int_equal(rc_room_is_ready(A->a, "r1"), 0);

    /* Stay frozen past two connect timeouts: the reconnect attempts reach
     * the kernel's accept queue of the frozen proxy and get no answer;
     * none of them may bring the link up. */
    run_for(lp, 2500);
    if (link_up(A))
        fail_msg("the link came UP through a frozen proxy");
    print_message("while frozen: %lu failed attempts, last reason \"%s\"\n",
                  rc_link_failures(A->link), rc_link_reason(A->link));

    /* Thaw: the link comes back by itself. */
    t_cont = ts_now_ms();
    assert_int_equal(kill(-f->px.pid, SIGCONT), 0);
    f->px.stopped = 0;
    WAIT_FOR_MS(lp, link_up(A) && rc_room_is_ready(A->a, "r1") == 1, 15000,
                "nodeA: link UP again and room r1 ready after SIGCONT");
    t_up = ts_now_ms();

    /* The stale connections (through the thawed socat children) close;
     * keep the loop running meanwhile, so that the link stays healthy. */
    g.rs = &f->rs;
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
        run_for(lp, 20);
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
        nsub = clients_named(&f->rs, "roomcast:nodeA:sub", ids, 4);
        npub = clients_named(&f->rs, "roomcast:nodeA:pub", ids, 4);
        if (nsub == 1 && npub == 1)
            break;
        if (ts_now_ms() >= ch_deadline)
            fail_msg("10 s after SIGCONT Redis has %d sub and %d pub "
                     "connections of nodeA, expected 1 and 1",
                     nsub, npub);
        run_for(lp, 20);
    }
    assert_true(link_up(A));
    assert_int_equal(rh_numsub(&f->rs, "sse:room:r1"), 1);

    /* And it delivers, once. */
    env = envelope(NULL, "{\"after\":\"thaw\"}", 16, &len);
    assert_int_equal(rh_publish(&f->rs, "sse:room:r1", env, len), 1);
    free(env);
    WAIT_FOR(lp, m->count >= 1, "a1: the message published after the thaw");
    env = envelope("marker", "1", 1, &len);
    assert_int_equal(rh_publish(&f->rs, "sse:room:r1", env, len), 1);
    free(env);
    WAIT_FOR(lp, m->markers >= 1, "a1: the marker after it");
    assert_int_equal(m->count, 1);
    ts_assert_clean(&(f)->problems);
}

/* ---- b) slow subscriber dropped by Redis (R4) ------------------------- */

#define SLOW_MSG_BYTES (16u << 10)
#define SLOW_FIRST_BYTES (2u << 20)
#define SLOW_MAX_BYTES (16u << 20)

static void test_slow_subscriber(void **state)
{
    fx *f = *state;
    loop *lp = &f->loops[0];
    rc_link_options lo;
    lnode *B;
    member *slow, *other;
    char url[64], *data, *env;
    unsigned long long sub_id, ids[4];
    long long rss0, rss1, t_res, t_recv;
    unsigned long long sent = 0, nmsg = 0, env_len;
    redisContext *c;
    size_t len, mark;
    long down;
    int gone = 0;

    start_redis(f);
    config_set(&f->rs, "client-output-buffer-limit", "pubsub 256kb 128kb 1");
    loop_init(lp);

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->rs.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 400;
    B = node_open(f, 0, lp, "nodeB", &lo);
    slow = member_add(f, B, "b-slow", "slow");
    other = member_add(f, B, "b-other", "other");
    WAIT_FOR(lp,
             link_up(B) && rc_room_is_ready(B->a, "slow") == 1 &&
                 rc_room_is_ready(B->a, "other") == 1,
             "nodeB: link UP, rooms slow and other ready");
    assert_int_equal(clients_named(&f->rs, "roomcast:nodeB:sub", &sub_id, 1),
                     1);
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
    env = envelope(NULL, data, SLOW_MSG_BYTES + 2, &len);
    env_len = len;
    free(data);
    c = rh_connect(&f->rs);
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
            gone = client_alive(&f->rs, sub_id) == 0;
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
    assert_int_equal(clients_named(&f->rs, "roomcast:nodeB:sub", ids, 4), 0);

    /* Run B again: it must see the close, reconnect, resubscribe. */
    t_res = ts_now_ms();
    WAIT_FOR_MS(lp, first_since(B, mark, RC_LINK_DOWN) >= 0, 5000,
                "nodeB: link DOWN once its loop runs again");
    down = first_since(B, mark, RC_LINK_DOWN);
    WAIT_FOR_MS(lp, link_up(B) && rc_room_is_ready(B->a, "other") == 1, 2000,
                "nodeB: link UP and room other ready again");
    env = envelope(NULL, "{\"room\":\"other\"}", 16, &len);
    assert_int_equal(rh_publish(&f->rs, "sse:room:other", env, len), 1);
    free(env);
    WAIT_FOR_MS(lp, other->count >= 1, 2000,
                "b-other: a message after the reconnect");
    t_recv = other->first_t;
    WAIT_FOR(lp, rc_room_is_ready(B->a, "slow") == 1,
             "nodeB: room slow ready again");
    assert_int_equal(rh_numsub(&f->rs, "sse:room:slow"), 1);
    assert_int_equal(rh_numsub(&f->rs, "sse:room:other"), 1);
    rss1 = rss_bytes();
    print_message("down after %lld ms (\"%s\"), room other received %lld ms "
                  "after the loop resumed; b-slow got %lu of %llu messages; "
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
    ts_assert_clean(&(f)->problems);
}

/* ---- c) outage accounting (R2) ---------------------------------------- */

enum { OUT_UNKNOWN = 0, OUT_OK, OUT_ERR, OUT_AMBIG };

typedef struct outage {
    fx *f;
    lnode *A, *B;
    member *mb;
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
} outage;

/*
 * Publish outcomes arrive in the order of the broadcasts (replies in
 * order; on a lost link every pending one fails before the adapter is
 * told, and a broadcast without a link fails at once), so the counters'
 * increments map to seq numbers: the next dp seqs are OK, or the next de
 * failed. If both moved since the last look, the split is unknown.
 */
static void account(outage *o)
{
    rc_counters c = counters(o->A);
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
static void run_accounting(loop *lp, outage *o, int ms)
{
    long long deadline = ts_now_ms() + ms;

    while (ts_now_ms() < deadline) {
        ts_pump((lp)->base);
        account(o);
        ts_idle((lp)->base, (lp)->guard);
        account(o);
    }
}

static void test_outage_accounting(void **state)
{
    fx *f = *state;
    loop *lp = &f->loops[0];
    rc_link_options lo;
    outage *o;
    member *mb;
    char url[64];
    struct timeval tv = {0, 10000};
    long long t_kill, t_restart, t_back, deadline;
    rc_counters ca, cb;
    size_t i;
    int s, received, missing_ok = 0, missing_ok_ready = 0, not_ok_received = 0;
    int errors = 0, oks = 0, ambig = 0, violations = 0, first_violation = 0;
    int max_before_restart = 0;

    o = f->scratch = calloc(1, sizeof *o);
    assert_non_null(o);
    start_redis(f);
    loop_init(lp);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->rs.port);
    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.connect_timeout_ms = 1000;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 200;
    o->f = f;
    o->A = node_open(f, 0, lp, "nodeA", &lo);
    o->B = node_open(f, 1, lp, "nodeB", &lo);
    mb = o->mb = member_add(f, o->B, "b1", "seq");
    WAIT_FOR(lp,
             link_up(o->A) && link_up(o->B) &&
                 rc_room_is_ready(o->B->a, "seq") == 1,
             "nodes A and B UP and B's room seq ready");
    ca = counters(o->A);
    o->p = o->p0 = ca.published;
    o->e = ca.publish_errors;

    f->tick = event_new(lp->base, -1, EV_PERSIST, on_tick, o);
    assert_non_null(f->tick);
    assert_int_equal(event_add(f->tick, &tv), 0);

    run_accounting(lp, o, 500);
    t_kill = ts_now_ms();
    if (rh_kill9(&f->rs) != 0)
        fail_msg("rh_kill9: %s", f->rs.error);
    run_accounting(lp, o, 2000);
    for (i = 0; i < mb->nseq && i < MAX_SEQ; i++)
        if (mb->seqs[i] > max_before_restart)
            max_before_restart = mb->seqs[i];
    t_restart = ts_now_ms();
    if (rh_restart(&f->rs) != 0)
        fail_msg("rh_restart: %s", f->rs.error);
    deadline = ts_now_ms() + 10000;
    while (!(link_up(o->A) && link_up(o->B) &&
             rc_room_is_ready(o->B->a, "seq") == 1)) {
        if (ts_now_ms() >= deadline)
            fail_msg("links not UP again 10 s after the restart");
        run_accounting(lp, o, 5);
    }
    t_back = ts_now_ms();
    run_accounting(lp, o, 1000);
    o->stop = 1;
    event_del(f->tick);

    /* Every publish has an outcome... */
    deadline = ts_now_ms() + 5000;
    while (o->resolved < o->seq) {
        if (ts_now_ms() >= deadline)
            fail_msg("only %d of %d publishes resolved 5 s after the end",
                     o->resolved, o->seq);
        run_accounting(lp, o, 5);
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
        run_for(lp, 100);
    }

    ca = counters(o->A);
    cb = counters(o->B);
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
    ts_assert_clean(&(f)->problems);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_half_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage_accounting, setup,
                                        teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
