/*
 * bench_fanout: cost of the adapter's local fan-out, and of its memory.
 *
 *   bench_fanout [--time-ms N] [--warmup-ms N] [--reps N] [--max-iters N]
 *                [--case room|multi|memory] [--members K] [--rooms R]
 *
 * One JSON line per case on stdout:
 *
 * - "room": a local-only adapter (rc_adapter_new(NULL, NULL, NULL,
 *   "bench")) with one room of K members (K = 1, 100, 10000) whose sinks
 *   only count; rc_broadcast_to_room() of a 100-byte JSON message, again
 *   and again. ns_per_broadcast is the median of --reps timed runs (each
 *   --time-ms or --max-iters broadcasts, whichever comes first);
 *   ns_per_delivery = ns_per_broadcast / K.
 * - "multi": rc_broadcast() to R rooms (R = 1, 10) where each of the
 *   10000 connections is in every room: the de-duplicating path, K
 *   deliveries per broadcast for R * K memberships walked.
 * - "memory": with a counting rc_alloc (rc_adapter_open, options.alloc),
 *   the bytes the adapter asks for to hold N connections each in R rooms
 *   (10000 x 10 and 100000 x 1) -> bytes per connection and per
 *   membership. As a cross-check, the same build with libc's allocator
 *   gives the growth of RSS (/proc/self/statm) and of malloc's in-use
 *   bytes (mallinfo2).
 *
 * Every case runs in a forked child, so that each starts from the same
 * heap (see run_case).
 *
 * Each timing case also runs a short pass with the counting allocator
 * and reports allocs_per_broadcast and alloc_bytes_per_broadcast.
 *
 * Every broadcast's return value is checked (it must equal the number of
 * recipients), and every connection's own counter must equal the number
 * of broadcasts at the end of a case: a connection served twice on the
 * de-dup path, or skipped, stops the run. The frame the sinks receive is
 * checked once against rc_sse_format().
 *
 * --case, --members and --rooms run one case only (for profiling, e.g.
 * perf record -g bench_fanout --case room --members 10000).
 */
#define _GNU_SOURCE /* mallinfo2, malloc_trim */

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "roomcast/roomcast.h"

#define BENCH_NAME "bench_fanout"
#include "bench_util.h"

#define MAX_ROOMS 64

/* The message: a 100-byte chat JSON text, an event and an id. */
static const char msg_data[] =
    "{\"user\":\"alice\",\"text\":\"Deploy 10:42 is out, all green so far.\","
    "\"ts\":1732500000000,\"tags\":[\"a\",\"b\"]}";
#define MSG_DATA_LEN (sizeof msg_data - 1)
#define MSG_EVENT "message"
#define MSG_ID "1732500000000-42"

enum bcase { CASE_ROOM, CASE_MULTI, CASE_MEMORY };
static const char *const case_names[] = {"room", "multi", "memory"};

struct options {
    struct bench_timing timing;
    int only_case;       /* -1: all */
    size_t only_members; /* 0: the default sizes */
    size_t only_rooms;   /* 0: the default room counts */
};

/* ---- the counting allocator ------------------------------------------ */

/*
 * Each block carries its requested size in a 16-byte header (keeping
 * malloc's alignment), so that free and realloc can count it back. The
 * counts are of bytes the adapter asked for; what malloc spends on top
 * (its own headers, rounding) shows in the libc cross-check.
 */
#define HDR 16

struct counting {
    uint64_t live_bytes, peak_bytes, live_blocks;
    uint64_t calls, asked; /* malloc + realloc calls, bytes they asked */
};

static void count_up(struct counting *c, size_t add, size_t sub)
{
    c->live_bytes = c->live_bytes + add - sub;
    if (c->live_bytes > c->peak_bytes)
        c->peak_bytes = c->live_bytes;
    c->calls++;
    c->asked += add;
}

static void *count_malloc(size_t size, void *user)
{
    unsigned char *p = size <= SIZE_MAX - HDR ? malloc(HDR + size) : NULL;

    if (p == NULL)
        return NULL;
    memcpy(p, &size, sizeof size);
    ((struct counting *)user)->live_blocks++;
    count_up(user, size, 0);
    return p + HDR;
}

static void *count_realloc(void *ptr, size_t size, void *user)
{
    unsigned char *h, *p;
    size_t old;

    if (ptr == NULL)
        return count_malloc(size, user);
    h = (unsigned char *)ptr - HDR;
    memcpy(&old, h, sizeof old);
    p = size <= SIZE_MAX - HDR ? realloc(h, HDR + size) : NULL;
    if (p == NULL)
        return NULL;
    memcpy(p, &size, sizeof size);
    count_up(user, size, old);
    return p + HDR;
}

static void count_free(void *ptr, void *user)
{
    struct counting *c = user;
    unsigned char *h;
    size_t old;

    if (ptr == NULL)
        return;
    h = (unsigned char *)ptr - HDR;
    memcpy(&old, h, sizeof old);
    c->live_bytes -= old;
    c->live_blocks--;
    free(h);
}

static rc_adapter *open_counting(struct counting *c, rc_alloc *alloc)
{
    rc_adapter_options opts;
    rc_adapter *a = NULL;
    int rc;

    memset(c, 0, sizeof *c);
    alloc->malloc_fn = count_malloc;
    alloc->realloc_fn = count_realloc;
    alloc->free_fn = count_free;
    alloc->user = c;
    memset(&opts, 0, sizeof opts);
    opts.node_id = "bench";
    opts.alloc = alloc;
    rc = rc_adapter_open(&opts, NULL, NULL, &a);
    if (rc != 0)
        die("rc_adapter_open failed", rc);
    return a;
}

/* ---- the sinks --------------------------------------------------------- */

/* The benchmarked sink: counts, per connection, and accepts. */
static int count_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                      void *user)
{
    (void)conn;
    (void)frame;
    (void)msg;
    ++*(uint64_t *)user;
    return 0;
}

/* Used once, before timing: what a sink receives must be the message's
 * SSE frame. */
struct check {
    char expect[512];
    size_t expect_len;
    unsigned calls;
};

static int check_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                      void *user)
{
    struct check *ck = user;

    (void)conn;
    ck->calls++;
    if (frame == NULL || rc_frame_size(frame) != ck->expect_len ||
        memcmp(rc_frame_data(frame), ck->expect, ck->expect_len) != 0)
        die("the sink's frame is not rc_sse_format(msg)", 0);
    if (msg == NULL || msg->data_len != MSG_DATA_LEN ||
        memcmp(msg->data, msg_data, MSG_DATA_LEN) != 0 || msg->event == NULL ||
        strcmp(msg->event, MSG_EVENT) != 0 || msg->id == NULL ||
        strcmp(msg->id, MSG_ID) != 0)
        die("the sink's message is not the one broadcast", 0);
    return 0;
}

static void message_init(rc_message *m)
{
    rc_message init = RC_MESSAGE_INIT;

    *m = init;
    m->event = MSG_EVENT;
    m->id = MSG_ID;
    m->data = msg_data;
    m->data_len = MSG_DATA_LEN;
}

/* Returns the frame's length. */
static size_t check_frame(void)
{
    static struct check ck;
    rc_message m;
    rc_adapter *a;
    rc_conn *c;
    int rc;

    message_init(&m);
    rc = rc_sse_format(&m, ck.expect, sizeof ck.expect, &ck.expect_len);
    if (rc != 0)
        die("rc_sse_format failed", rc);
    a = rc_adapter_new(NULL, NULL, NULL, "bench");
    if (a == NULL)
        die("rc_adapter_new failed", 0);
    rc = rc_conn_add(a, NULL, check_sink, &ck, &c);
    if (rc != 0)
        die("rc_conn_add failed", rc);
    if (rc_room_join(c, "check") != 1)
        die("rc_room_join failed", 0);
    rc = rc_broadcast_to_room(a, "check", &m, NULL, RC_LOCAL_ONLY);
    if (rc != 1 || ck.calls != 1)
        die("rc_broadcast_to_room did not deliver once", rc < 0 ? rc : 0);
    rc_adapter_free(a);
    return ck.expect_len;
}

/* ---- one child per case ------------------------------------------------ */

/*
 * Each case runs in a forked child. The parent never builds a large
 * adapter, so every case starts from the same small heap: what an earlier
 * case freed (in the hash order of its maps, which is random) does not
 * decide where this case's members and connections land, and with that how
 * well the walk uses the caches.
 */
struct job {
    enum bcase kind;
    size_t nconns, nrooms, frame_len;
    const struct options *o;
};

static void run_fan_child(const struct job *j);
static void memory_child(const struct job *j);

static void run_case(const struct job *j)
{
    pid_t pid;
    int status;

    fflush(stdout);
    pid = fork();
    if (pid < 0)
        die("fork failed", 0);
    if (pid == 0) {
        if (j->kind == CASE_MEMORY)
            memory_child(j);
        else
            run_fan_child(j);
        fflush(stdout);
        _exit(0);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr,
                "bench_fanout: the %s case (%zu conns, %zu rooms) "
                "failed\n",
                case_names[j->kind], j->nconns, j->nrooms);
        exit(1);
    }
}

/* ---- fan-out cases ------------------------------------------------------ */

struct fan {
    enum bcase kind; /* CASE_ROOM: rc_broadcast_to_room, else rc_broadcast */
    rc_adapter *a;
    size_t nconns, nrooms;
    rc_conn **conns;
    uint64_t *counts; /* per connection, the sinks' user pointers */
    uint64_t sent;    /* broadcasts so far by fan_batch */
    char names[MAX_ROOMS][16];
    const char *rooms[MAX_ROOMS];
    rc_message msg;
    rc_broadcast_options bopts;
};

/* Build the case's adapter, through alloc (NULL: rc_adapter_new). Every
 * connection joins every room. */
static void fan_setup(struct fan *f, enum bcase kind, size_t nconns,
                      size_t nrooms, struct counting *c, rc_alloc *alloc)
{
    size_t i, r;
    int rc;

    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->nconns = nconns;
    f->nrooms = nrooms;
    if (c != NULL) {
        f->a = open_counting(c, alloc);
    } else {
        f->a = rc_adapter_new(NULL, NULL, NULL, "bench");
        if (f->a == NULL)
            die("rc_adapter_new failed", 0);
    }
    f->conns = xmalloc(nconns * sizeof f->conns[0]);
    f->counts = xmalloc(nconns * sizeof f->counts[0]);
    memset(f->counts, 0, nconns * sizeof f->counts[0]);
    for (r = 0; r < nrooms; r++) {
        if (kind == CASE_ROOM)
            snprintf(f->names[r], sizeof f->names[r], "bench-room");
        else
            snprintf(f->names[r], sizeof f->names[r], "room-%zu", r);
        f->rooms[r] = f->names[r];
    }
    for (i = 0; i < nconns; i++) {
        rc = rc_conn_add(f->a, NULL, count_sink, &f->counts[i], &f->conns[i]);
        if (rc != 0)
            die("rc_conn_add failed", rc);
        for (r = 0; r < nrooms; r++)
            if ((rc = rc_room_join(f->conns[i], f->rooms[r])) != 1)
                die("rc_room_join failed", rc < 0 ? rc : 0);
    }
    for (r = 0; r < nrooms; r++)
        if (rc_room_size(f->a, f->rooms[r]) != nconns)
            die("rc_room_size is not the number of members", 0);
    message_init(&f->msg);
    f->bopts.flags = RC_LOCAL_ONLY;
}

static void fan_free(struct fan *f)
{
    rc_adapter_free(f->a);
    free(f->conns);
    free(f->counts);
}

/* n broadcasts; returns nonzero if one did not reach every member. */
static int run_batch(struct fan *f, uint64_t n)
{
    uint64_t i;
    int rc, bad = 0, want = (int)f->nconns;

    if (f->kind == CASE_ROOM) {
        for (i = 0; i < n; i++) {
            rc = rc_broadcast_to_room(f->a, f->rooms[0], &f->msg, NULL,
                                      RC_LOCAL_ONLY);
            bad |= rc != want;
        }
    } else {
        for (i = 0; i < n; i++) {
            rc = rc_broadcast(f->a, f->rooms, f->nrooms, &f->msg, &f->bopts);
            bad |= rc != want;
        }
    }
    return bad;
}

/* Every connection got exactly `total` deliveries. */
static void check_counts(const struct fan *f, uint64_t total)
{
    size_t i;

    for (i = 0; i < f->nconns; i++)
        if (f->counts[i] != total) {
            fprintf(stderr,
                    "bench_fanout: connection %zu got %llu deliveries, "
                    "expected %llu\n",
                    i, (unsigned long long)f->counts[i],
                    (unsigned long long)total);
            exit(1);
        }
    sink += f->counts[0];
}

static int fan_batch(void *ctx, uint64_t n)
{
    struct fan *f = ctx;

    f->sent += n;
    return run_batch(f, n);
}

static struct bench_result measure(struct fan *f, const struct options *o)
{
    struct bench_result r;

    r = bench_measure(fan_batch, f, &o->timing, "a broadcast missed members",
                      "a broadcast missed members during warm-up");
    check_counts(f, f->sent);
    return r;
}

/* Allocator traffic of one broadcast, with the counting allocator: calls
 * and bytes asked per broadcast, and bytes still held afterwards. */
struct traffic {
    double calls, bytes;
    long long retained; /* live bytes after the broadcasts minus before */
};

static struct traffic alloc_traffic(enum bcase kind, size_t nconns,
                                    size_t nrooms)
{
    struct counting c;
    rc_alloc alloc;
    struct fan f;
    struct traffic t;
    uint64_t calls0, asked0, live0;
    uint64_t n = nconns * nrooms >= 10000 ? 100 : 1000;

    fan_setup(&f, kind, nconns, nrooms, &c, &alloc);
    if (run_batch(&f, 10)) /* first-use allocations are not the steady state */
        die("a broadcast missed members", 0);
    calls0 = c.calls;
    asked0 = c.asked;
    live0 = c.live_bytes;
    if (run_batch(&f, n))
        die("a broadcast missed members", 0);
    t.calls = (double)(c.calls - calls0) / (double)n;
    t.bytes = (double)(c.asked - asked0) / (double)n;
    t.retained = (long long)c.live_bytes - (long long)live0;
    check_counts(&f, 10 + n);
    fan_free(&f);
    if (c.live_bytes != 0 || c.live_blocks != 0)
        die("rc_adapter_free left blocks allocated", 0);
    return t;
}

static void run_fan_child(const struct job *j)
{
    enum bcase kind = j->kind;
    size_t nconns = j->nconns, nrooms = j->nrooms, frame_len = j->frame_len;
    const struct options *o = j->o;
    struct fan f;
    struct bench_result r;
    struct traffic t;
    double per_delivery;

    fan_setup(&f, kind, nconns, nrooms, NULL, NULL);
    r = measure(&f, o);
    fan_free(&f);
    t = alloc_traffic(kind, nconns, nrooms);

    per_delivery = r.median_ns / (double)nconns;
    printf("{\"case\":\"%s\",\"api\":\"%s\",\"conns\":%zu,\"rooms\":%zu,"
           "\"memberships\":%zu,\"deliveries_per_broadcast\":%zu,"
           "\"ns_per_broadcast\":%.1f,\"ns_per_delivery\":%.2f,"
           "\"ns_per_membership\":%.2f,\"min_ns_per_broadcast\":%.1f,"
           "\"max_ns_per_broadcast\":%.1f,\"broadcasts\":%llu,\"reps\":%u,"
           "\"allocs_per_broadcast\":%.2f,\"alloc_bytes_per_broadcast\":%.1f,"
           "\"retained_bytes\":%lld,\"data_bytes\":%zu,\"frame_bytes\":%zu}\n",
           case_names[kind],
           kind == CASE_ROOM ? "rc_broadcast_to_room" : "rc_broadcast", nconns,
           nrooms, nconns * nrooms, nconns, r.median_ns, per_delivery,
           r.median_ns / (double)(nconns * nrooms), r.min_ns, r.max_ns,
           (unsigned long long)r.iters, o->timing.reps, t.calls, t.bytes,
           t.retained, (size_t)MSG_DATA_LEN, frame_len);
    fflush(stdout);
}

/* ---- memory cases ------------------------------------------------------- */

static long long rss_bytes(void)
{
    long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL || fscanf(f, "%lld %lld", &size, &resident) != 2)
        die("cannot read /proc/self/statm", 0);
    fclose(f);
    return resident * (long long)sysconf(_SC_PAGESIZE);
}

static long long heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long long)(mi.uordblks + mi.hblkhd);
}

/* Add n connections to a, then make each join every room. */
static void populate(rc_adapter *a, rc_conn **conns, uint64_t *counts, size_t n,
                     const char *const *rooms, size_t nrooms,
                     struct counting *after_conns, const struct counting *c)
{
    size_t i, r;
    int rc;

    for (i = 0; i < n; i++)
        if ((rc = rc_conn_add(a, NULL, count_sink, &counts[i], &conns[i])))
            die("rc_conn_add failed", rc);
    if (after_conns != NULL)
        *after_conns = *c;
    for (i = 0; i < n; i++)
        for (r = 0; r < nrooms; r++)
            if ((rc = rc_room_join(conns[i], rooms[r])) != 1)
                die("rc_room_join failed", rc < 0 ? rc : 0);
}

static void memory_child(const struct job *j)
{
    size_t nconns = j->nconns, nrooms = j->nrooms;
    char names[MAX_ROOMS][16];
    const char *rooms[MAX_ROOMS];
    rc_conn **conns;
    uint64_t *counts;
    struct counting c, mid;
    rc_alloc alloc;
    rc_counters ctr;
    rc_adapter *a;
    long long rss0, rss1, heap0, heap1;
    uint64_t b0, blocks0, b1, blocks1, b2, blocks2, peak;
    size_t r, memberships = nconns * nrooms;

    for (r = 0; r < nrooms; r++) {
        snprintf(names[r], sizeof names[r], "room-%zu", r);
        rooms[r] = names[r];
    }
    /* The bench's own arrays, touched now so that they are in the
     * baseline. */
    conns = xmalloc(nconns * sizeof conns[0]);
    counts = xmalloc(nconns * sizeof counts[0]);
    memset(conns, 0, nconns * sizeof conns[0]);
    memset(counts, 0, nconns * sizeof counts[0]);

    /* Cross-check first, on a heap trimmed back to the OS: libc's
     * allocator, growth of RSS and of malloc's in-use bytes. */
    malloc_trim(0);
    rss0 = rss_bytes();
    heap0 = heap_bytes();
    a = rc_adapter_new(NULL, NULL, NULL, "bench");
    if (a == NULL)
        die("rc_adapter_new failed", 0);
    populate(a, conns, counts, nconns, rooms, nrooms, NULL, NULL);
    rss1 = rss_bytes();
    heap1 = heap_bytes();
    rc_adapter_free(a);

    /* The count: bytes the adapter asks for. */
    a = open_counting(&c, &alloc);
    b0 = c.live_bytes;
    blocks0 = c.live_blocks;
    populate(a, conns, counts, nconns, rooms, nrooms, &mid, &c);
    b1 = mid.live_bytes;
    blocks1 = mid.live_blocks;
    b2 = c.live_bytes;
    blocks2 = c.live_blocks;
    peak = c.peak_bytes;
    rc_adapter_counters(a, &ctr, sizeof ctr);
    if (ctr.connections != nconns || ctr.memberships != memberships ||
        ctr.rooms != nrooms)
        die("the adapter's gauges disagree with what was built", 0);
    rc_adapter_free(a);
    if (c.live_bytes != 0 || c.live_blocks != 0)
        die("rc_adapter_free left blocks allocated", 0);

    printf("{\"case\":\"memory\",\"conns\":%zu,\"rooms\":%zu,"
           "\"memberships\":%zu,\"adapter_bytes\":%llu,\"bytes\":%llu,"
           "\"conn_bytes\":%llu,\"membership_bytes\":%llu,"
           "\"bytes_per_conn\":%.1f,\"bytes_per_membership\":%.1f,"
           "\"bytes_per_conn_all\":%.1f,\"blocks_per_conn\":%.2f,"
           "\"blocks_per_membership\":%.2f,"
           "\"peak_bytes\":%llu,\"rss_delta_bytes\":%lld,"
           "\"heap_delta_bytes\":%lld,\"rss_over_counted\":%.2f,"
           "\"heap_over_counted\":%.2f}\n",
           nconns, nrooms, memberships, (unsigned long long)b0,
           (unsigned long long)(b2 - b0), (unsigned long long)(b1 - b0),
           (unsigned long long)(b2 - b1), (double)(b1 - b0) / (double)nconns,
           (double)(b2 - b1) / (double)memberships,
           (double)(b2 - b0) / (double)nconns,
           (double)(blocks1 - blocks0) / (double)nconns,
           (double)(blocks2 - blocks1) / (double)memberships,
           (unsigned long long)peak, rss1 - rss0, heap1 - heap0,
           (double)(rss1 - rss0) / (double)(b2 - b0),
           (double)(heap1 - heap0) / (double)(b2 - b0));
    fflush(stdout);
    free(conns);
    free(counts);
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: bench_fanout [--time-ms N] [--warmup-ms N] [--reps N]\n"
          "                    [--max-iters N] [--case room|multi|memory]\n"
          "                    [--members K] [--rooms R]\n",
          f);
}

static const size_t room_sizes[] = {1, 100, 10000};
static const size_t multi_rooms[] = {1, 10};
#define MULTI_CONNS 10000
static const size_t memory_cases[][2] = {{10000, 10}, {100000, 1}};

#define COUNT(x) (sizeof(x) / sizeof((x)[0]))

int main(int argc, char **argv)
{
    struct options o = {BENCH_TIMING_DEFAULTS, -1, 0, 0};
    size_t i, frame_len;
    enum bcase k;

    for (i = 1; i < (size_t)argc; i++) {
        const char *a = argv[i], *v = i + 1 < (size_t)argc ? argv[i + 1] : NULL;
        if (bench_timing_arg(&o.timing, a, v)) {
            i++;
        } else if (!strcmp(a, "--case") && v) {
            for (o.only_case = 0; o.only_case < (int)COUNT(case_names) &&
                                  strcmp(v, case_names[o.only_case]);
                 o.only_case++)
                ;
            if (o.only_case == (int)COUNT(case_names)) {
                usage(stderr);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--members")) {
            o.only_members = (size_t)parse_num(a, v);
            i++;
        } else if (!strcmp(a, "--rooms")) {
            o.only_rooms = (size_t)parse_num(a, v);
            i++;
        } else {
            return bench_help_or_bad_arg(a, usage);
        }
    }
    if (bench_timing_bad(&o.timing))
        return 2;
    if (o.only_rooms > MAX_ROOMS) {
        fprintf(stderr, "bench_fanout: --rooms is at most %d\n", MAX_ROOMS);
        return 2;
    }
    if (o.only_rooms > 1 && o.only_case == CASE_ROOM) {
        fputs("bench_fanout: the room case has one room\n", stderr);
        return 2;
    }
    if ((o.only_members || o.only_rooms) && o.only_case < 0) {
        fputs("bench_fanout: --members and --rooms go with --case\n", stderr);
        return 2;
    }
    if (MSG_DATA_LEN != 100)
        die("the message data is not 100 bytes", 0);

    frame_len = check_frame();
    for (k = CASE_ROOM; k <= CASE_MEMORY; k++) {
        struct job j = {k, 0, 0, frame_len, &o};
        size_t n = k == CASE_ROOM    ? COUNT(room_sizes)
                   : k == CASE_MULTI ? COUNT(multi_rooms)
                                     : COUNT(memory_cases);
        if (o.only_case >= 0 && (int)k != o.only_case)
            continue;
        for (i = 0; i < n; i++) {
            if (k == CASE_ROOM) {
                j.nconns = room_sizes[i];
                j.nrooms = 1;
            } else if (k == CASE_MULTI) {
                j.nconns = MULTI_CONNS;
                j.nrooms = multi_rooms[i];
            } else {
                j.nconns = memory_cases[i][0];
                j.nrooms = memory_cases[i][1];
            }
            if (o.only_members || o.only_rooms) { /* one case only */
                if (o.only_members)
                    j.nconns = o.only_members;
                if (o.only_rooms)
                    j.nrooms = o.only_rooms;
                i = n;
            }
            run_case(&j);
        }
    }
    return 0;
}
