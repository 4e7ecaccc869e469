/*
 * loadgen: an SSE load generator for rc-chat and the Node reference server
 * (bench/ref-server.mjs), which speak the same HTTP contract.
 *
 *   loadgen --url http://127.0.0.1:PORT --conns K [--rooms R] [options]
 *
 * It opens K event streams (HTTP/1.1, chunked, as browsers do) spread over
 * R rooms, waits until every stream has its rc:hello, then sends messages
 * one way or the other:
 *   --redis-port P   pipelined PUBLISH of valid envelopes straight into
 *                    Redis (the measured node only receives and fans out);
 *   --post URL       HTTP POSTs to a second node (end to end).
 * Message j goes to room j % R; its data is {"s":SEQ,"t":NS} with the
 * room's sequence number and the send time (CLOCK_MONOTONIC). Every stream
 * must get every message of its room exactly once, and in order where the
 * order is defined (one connection sends everything: Redis mode, or
 * --posters 1): a miss, a duplicate or a reordering makes the exit status
 * 1. Several posters send concurrently, so their order is not defined.
 *
 * Pacing: --rate N sends N messages/s; without it, as fast as the window
 * allows (--window W messages not yet delivered to all their streams).
 * --idle instead only opens the streams and reports memory (scenario 5).
 *
 * With --pid PID it samples that process's CPU time (utime, stime) and RSS
 * from /proc over the measured interval (first send to last delivery), so
 * the report has CPU microseconds per delivery and bytes per connection.
 * The report is one JSON object on stdout. Loopback only; every phase is
 * bounded by --max-seconds.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LAT_SAMPLES (1u << 20)

typedef struct opts {
    char host[64];
    int port;
    int conns, rooms;
    long messages;
    double rate;
    int window;
    int redis_port;
    const char *prefix;
    char post_host[64];
    int post_port;
    int post_conns;
    int pid;
    double max_seconds;
    int idle;
    const char *label, *scenario;
    const char *room_tag;
} opts;

enum { ST_HEAD, ST_CHUNK_SIZE, ST_CHUNK_DATA, ST_CHUNK_END, ST_BODY };

typedef struct conn {
    int fd;
    int room;
    int state;   /* HTTP response parsing */
    int chunked; /* else the body runs to EOF */
    size_t chunk_left;
    char head[1024];
    size_t head_len;
    char *ev; /* the SSE event being read */
    size_t ev_len, ev_cap;
    int hello;
    long long next_seq;  /* one past the highest sequence number seen */
    unsigned char *seen; /* a bit per sequence number of its room */
    int closed;
} conn;

typedef struct poster {
    int fd;
    int busy; /* a request in flight */
    char in[4096];
    size_t in_len;
    char *out;
    size_t out_len, out_off;
} poster;

static opts o;
static conn *conns;
static int ep;
static long long *room_seq; /* next seq to send, per room */
static int *room_members;
static int *remaining; /* per message: streams still to receive it */
static long sent, completed;
static long long deliveries, expected_deliveries, missing, dups, reorders;
static long hellos, closed_streams, http_errors;
static uint32_t *lat; /* latency samples, microseconds */
static unsigned long long lat_seen;
static uint32_t lat_max;
static unsigned long long rng = 0x9e3779b97f4a7c15ull;

static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static unsigned long long xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void record_latency(long long ns)
{
    uint32_t us = ns < 0 ? 0 : (uint32_t)(ns / 1000);

    if (us > lat_max)
        lat_max = us;
    if (lat_seen < LAT_SAMPLES) {
        lat[lat_seen] = us;
    } else { /* reservoir sampling */
        unsigned long long k = xorshift() % (lat_seen + 1);

        if (k < LAT_SAMPLES)
            lat[k] = us;
    }
    lat_seen++;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* ---- /proc sampling ----------------------------------------------------- */

typedef struct cpu_rss {
    double user_s, sys_s;
    long rss_kib;
} cpu_rss;

static cpu_rss sample(int pid)
{
    cpu_rss u = {0, 0, 0};
    char path[64], buf[4096], *p;
    FILE *f;
    size_t n;
    long ticks = sysconf(_SC_CLK_TCK);

    if (pid <= 0)
        return u;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) != NULL) {
        n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        p = strrchr(buf, ')'); /* the name may hold spaces */
        if (p != NULL) {
            unsigned long ut = 0, st = 0;
            int field;

            p += 2; /* field 3 */
            for (field = 3; field < 14 && p != NULL; field++) {
                p = strchr(p, ' ');
                if (p != NULL)
                    p++;
            }
            if (p != NULL && sscanf(p, "%lu %lu", &ut, &st) == 2) {
                u.user_s = (double)ut / (double)ticks;
                u.sys_s = (double)st / (double)ticks;
            }
        }
    }
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) != NULL) {
        while (fgets(buf, sizeof buf, f) != NULL)
            if (strncmp(buf, "VmRSS:", 6) == 0)
                u.rss_kib = strtol(buf + 6, NULL, 10);
        fclose(f);
    }
    return u;
}

/* ---- sockets ------------------------------------------------------------ */

static int connect_to(const char *host, int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0)
        die("socket: %s", strerror(errno));
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        die("%s: not an IPv4 address", host);
    if (strncmp(host, "127.", 4) != 0)
        die("%s: loopback only", host);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 &&
        errno != EINPROGRESS)
        die("connect %s:%d: %s", host, port, strerror(errno));
    return fd;
}

/* Write all of buf on a non-blocking socket (waiting for it if need be). */
static void write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);

        if (w < 0 && (errno == EAGAIN || errno == EINTR || errno == ENOTCONN)) {
            struct timespec ts = {0, 200000};

            nanosleep(&ts, NULL); /* the socket drains; bounded by callers */
            continue;
        }
        if (w < 0)
            die("write: %s", strerror(errno));
        buf += w;
        n -= (size_t)w;
    }
}

static void room_name(int r, char *out, size_t size)
{
    snprintf(out, size, "%s-%d", o.room_tag, r);
}

/* ---- SSE streams -------------------------------------------------------- */

static void on_event(conn *c, const char *ev, size_t n)
{
    const char *p = ev, *end = ev + n, *data = NULL;
    int is_hello = 0;

    while (p < end) { /* lines */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

        if (len >= 7 && memcmp(p, "event: ", 7) == 0)
            is_hello = len == 15 && memcmp(p + 7, "rc:hello", 8) == 0;
        else if (len >= 6 && memcmp(p, "data: ", 6) == 0)
            data = p + 6;
        p += len + 1;
    }
    if (is_hello) {
        if (!c->hello++)
            hellos++;
        return;
    }
    if (data == NULL)
        return; /* a comment (heartbeat) */
    {
        const char *s = strstr(data, "\"s\":"), *t = strstr(data, "\"t\":");
        long long seq, sent_ns, j;

        if (s == NULL || t == NULL)
            return;
        seq = strtoll(s + 4, NULL, 10);
        sent_ns = strtoll(t + 4, NULL, 10);
        j = seq * o.rooms + c->room;
        if (seq < 0 || j >= o.messages)
            return;
        deliveries++;
        record_latency(now_ns() - sent_ns);
        if (c->seen == NULL &&
            (c->seen = calloc((size_t)(o.messages / o.rooms) / 8 + 1, 1)) ==
                NULL)
            die("out of memory");
        if (c->seen[seq / 8] & (1u << (seq % 8))) {
            dups++;
            return;
        }
        c->seen[seq / 8] |= (unsigned char)(1u << (seq % 8));
        if (seq < c->next_seq)
            reorders++; /* an earlier message after a later one */
        else
            c->next_seq = seq + 1;
        if (j < o.messages && --remaining[j] == 0)
            completed++;
    }
}

/* Body bytes of the stream: split into events at blank lines. */
static void feed_sse(conn *c, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (c->ev_len == c->ev_cap) {
            c->ev_cap = c->ev_cap ? 2 * c->ev_cap : 256;
            c->ev = realloc(c->ev, c->ev_cap);
            if (c->ev == NULL)
                die("out of memory");
        }
        c->ev[c->ev_len++] = p[i];
        if (p[i] == '\n' && c->ev_len >= 2 && c->ev[c->ev_len - 2] == '\n') {
            c->ev[c->ev_len - 1] = '\0'; /* the event's text ends here */
            on_event(c, c->ev, c->ev_len - 1);
            c->ev_len = 0;
        }
    }
}

static void stream_closed(conn *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = 1;
    closed_streams++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (closed_streams <= 3)
        fprintf(stderr, "loadgen: stream %ld closed: %s\n", (long)(c - conns),
                why);
}

static void read_stream(conn *c)
{
    char buf[65536];

    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        size_t i = 0;

        if (n == 0)
            return stream_closed(c, "EOF");
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            return stream_closed(c, strerror(errno));
        }
        while (i < (size_t)n) {
            switch (c->state) {
            case ST_HEAD: {
                char *e;

                c->head[c->head_len++] = buf[i++];
                c->head[c->head_len] = '\0';
                if (c->head_len + 1 >= sizeof c->head)
                    return stream_closed(c, "response head too long");
                if ((e = strstr(c->head, "\r\n\r\n")) == NULL)
                    break;
                if (strncmp(c->head, "HTTP/1.1 200", 12) != 0 &&
                    strncmp(c->head, "HTTP/1.0 200", 12) != 0) {
                    http_errors++;
                    return stream_closed(c, "status not 200");
                }
                c->chunked =
                    strcasestr(c->head, "transfer-encoding: chunked") != NULL;
                c->state = c->chunked ? ST_CHUNK_SIZE : ST_BODY;
                c->head_len = 0;
                break;
            }
            case ST_CHUNK_SIZE: /* hex digits, then CRLF */
                if (buf[i] == '\n') {
                    c->head[c->head_len] = '\0';
                    c->chunk_left = strtoul(c->head, NULL, 16);
                    c->head_len = 0;
                    c->state = c->chunk_left ? ST_CHUNK_DATA : ST_CHUNK_END;
                    if (c->chunk_left == 0)
                        return stream_closed(c, "stream ended");
                } else if (buf[i] != '\r' && c->head_len < 16) {
                    c->head[c->head_len++] = buf[i];
                }
                i++;
                break;
            case ST_CHUNK_DATA: {
                size_t take = (size_t)n - i < c->chunk_left ? (size_t)n - i
                                                            : c->chunk_left;

                feed_sse(c, buf + i, take);
                i += take;
                c->chunk_left -= take;
                if (c->chunk_left == 0)
                    c->state = ST_CHUNK_END;
                break;
            }
            case ST_CHUNK_END: /* the CRLF after the data */
                if (buf[i++] == '\n')
                    c->state = ST_CHUNK_SIZE;
                break;
            default:
                feed_sse(c, buf + i, (size_t)n - i);
                i = (size_t)n;
            }
        }
    }
}

static void open_streams(void)
{
    char req[512], room[128];
    int i;

    conns = calloc((size_t)o.conns, sizeof *conns);
    for (i = 0; i < o.conns; i++) {
        conn *c = &conns[i];
        struct epoll_event e;
        int len;

        c->room = i % o.rooms;
        c->fd = connect_to(o.host, o.port);
        room_name(c->room, room, sizeof room);
        len = snprintf(req, sizeof req,
                       "GET /rooms/%s/events?user=u%d HTTP/1.1\r\n"
                       "Host: %s:%d\r\nAccept: text/event-stream\r\n\r\n",
                       room, i, o.host, o.port);
        write_all(c->fd, req, (size_t)len);
        e.events = EPOLLIN;
        e.data.u64 = (uint64_t)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0)
            die("epoll_ctl: %s", strerror(errno));
        room_members[c->room]++;
    }
}

/* ---- senders ------------------------------------------------------------ */

static int redis_fd = -1;
static long redis_replies_pending;
static poster *posters;
static long posts_ok;

#define POSTER_BASE (1ull << 40) /* epoll tags above the stream indexes */
#define REDIS_TAG (1ull << 41)

/* Message j: its data text. */
static int message_data(long j, char *out, size_t size, long long *seq_out)
{
    int r = (int)(j % o.rooms);
    long long seq = room_seq[r]++;

    *seq_out = seq;
    return snprintf(out, size, "{\"s\":%lld,\"t\":%lld}", seq, now_ns());
}

static void send_redis(long j)
{
    char data[128], env[256], room[128], cmd[512];
    long long seq;
    int dl, el, cl, rl;

    dl = message_data(j, data, sizeof data, &seq);
    (void)dl;
    el = snprintf(
        env, sizeof env,
        "{\"v\":1,\"m\":{\"event\":\"b\",\"data\":%s},\"n\":\"loadgen\"}",
        data);
    room_name((int)(j % o.rooms), room, sizeof room);
    rl = (int)strlen(o.prefix) + (int)strlen(room);
    cl = snprintf(cmd, sizeof cmd,
                  "*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s%s\r\n$%d\r\n%s\r\n", rl,
                  o.prefix, room, el, env);
    write_all(redis_fd, cmd, (size_t)cl);
    redis_replies_pending++;
}

static void read_redis(void)
{
    char buf[65536];

    for (;;) {
        ssize_t n = read(redis_fd, buf, sizeof buf), i;

        if (n == 0)
            die("redis closed the connection");
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            die("redis read: %s", strerror(errno));
        }
        for (i = 0; i < n; i++) {
            if (buf[i] == '-')
                die("redis error reply");
            if (buf[i] == '\n')
                redis_replies_pending--;
        }
    }
}

static poster *idle_poster(void)
{
    int i;

    for (i = 0; i < o.post_conns; i++)
        if (!posters[i].busy)
            return &posters[i];
    return NULL;
}

static void send_post(poster *p, long j)
{
    char data[128], body[256], room[128], req[768];
    long long seq;
    int bl, rl;

    message_data(j, data, sizeof data, &seq);
    bl = snprintf(body, sizeof body, "{\"event\":\"b\",\"data\":%s}", data);
    room_name((int)(j % o.rooms), room, sizeof room);
    rl = snprintf(
        req, sizeof req,
        "POST /rooms/%s/messages HTTP/1.1\r\nHost: %s:%d\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
        room, o.post_host, o.post_port, bl, body);
    p->busy = 1;
    write_all(p->fd, req, (size_t)rl);
}

/* One answer per request: status line, headers, Content-Length body. */
static void read_poster(poster *p)
{
    for (;;) {
        ssize_t n =
            read(p->fd, p->in + p->in_len, sizeof p->in - 1 - p->in_len);
        char *e, *cl;
        size_t need;

        if (n == 0 && !p->busy) { /* closed after an answer: reconnect */
            struct epoll_event ee = {
                EPOLLIN, {.u64 = POSTER_BASE + (uint64_t)(p - posters)}};

            epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
            close(p->fd);
            p->fd = connect_to(o.post_host, o.post_port);
            epoll_ctl(ep, EPOLL_CTL_ADD, p->fd, &ee);
            p->in_len = 0;
            return;
        }
        if (n == 0)
            die("POST connection closed by the server before answering");
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            die("POST read: %s", strerror(errno));
        }
        p->in_len += (size_t)n;
        p->in[p->in_len] = '\0';
        while ((e = strstr(p->in, "\r\n\r\n")) != NULL) {
            cl = strcasestr(p->in, "content-length:");
            need = (size_t)(e + 4 - p->in) +
                   (cl != NULL && cl < e ? strtoul(cl + 15, NULL, 10) : 0);
            if (p->in_len < need)
                break;
            if (strncmp(p->in + 9, "202", 3) != 0) {
                http_errors++;
                fprintf(stderr, "loadgen: POST answered %.40s\n", p->in);
            } else {
                posts_ok++;
            }
            memmove(p->in, p->in + need, p->in_len - need);
            p->in_len -= need;
            p->in[p->in_len] = '\0';
            p->busy = 0;
        }
    }
}

/* ---- main loop ---------------------------------------------------------- */

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms), i;

    for (i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;

        if (tag == REDIS_TAG)
            read_redis();
        else if (tag >= POSTER_BASE)
            read_poster(&posters[tag - POSTER_BASE]);
        else
            read_stream(&conns[tag]);
    }
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: loadgen --url http://127.0.0.1:PORT --conns K [--rooms R]\n"
        "         (--redis-port P [--prefix sse:room:] | --post URL [--posters "
        "N])\n"
        "         [--messages M] [--rate N | --window W] [--idle]\n"
        "         [--pid PID] [--label L] [--scenario S] [--max-seconds S]\n");
    exit(2);
}

static void parse_url(const char *url, char *host, size_t hsize, int *port)
{
    const char *p = url, *colon;

    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    colon = strchr(p, ':');
    if (colon == NULL || (size_t)(colon - p) >= hsize)
        die("%s: expected http://HOST:PORT", url);
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    *port = atoi(colon + 1);
}

int main(int argc, char **argv)
{
    long long t0, t_end, deadline, hello_ns;
    cpu_rss u0, u1;
    struct rlimit rl;
    int i;

    o.rooms = 1;
    o.messages = 1000;
    o.window = 64;
    o.prefix = "sse:room:";
    o.post_conns = 4;
    o.max_seconds = 60;
    o.label = "server";
    o.scenario = "";
    o.room_tag = "bench";
    for (i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(f, "--idle") == 0) {
            o.idle = 1;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(f, "--url") == 0)
            parse_url(v, o.host, sizeof o.host, &o.port);
        else if (strcmp(f, "--conns") == 0)
            o.conns = atoi(v);
        else if (strcmp(f, "--rooms") == 0)
            o.rooms = atoi(v);
        else if (strcmp(f, "--messages") == 0)
            o.messages = atol(v);
        else if (strcmp(f, "--rate") == 0)
            o.rate = atof(v);
        else if (strcmp(f, "--window") == 0)
            o.window = atoi(v);
        else if (strcmp(f, "--redis-port") == 0)
            o.redis_port = atoi(v);
        else if (strcmp(f, "--prefix") == 0)
            o.prefix = v;
        else if (strcmp(f, "--post") == 0)
            parse_url(v, o.post_host, sizeof o.post_host, &o.post_port);
        else if (strcmp(f, "--posters") == 0)
            o.post_conns = atoi(v);
        else if (strcmp(f, "--pid") == 0)
            o.pid = atoi(v);
        else if (strcmp(f, "--label") == 0)
            o.label = v;
        else if (strcmp(f, "--scenario") == 0)
            o.scenario = v;
        else if (strcmp(f, "--room-tag") == 0)
            o.room_tag = v;
        else if (strcmp(f, "--max-seconds") == 0)
            o.max_seconds = atof(v);
        else
            usage();
    }
    if (o.port <= 0 || o.conns <= 0 || o.rooms <= 0 || o.rooms > o.conns ||
        o.messages < 0 || o.window <= 0 || o.post_conns <= 0 ||
        o.max_seconds <= 0 || (!o.idle && !o.redis_port && !o.post_port))
        usage();
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    room_seq = calloc((size_t)o.rooms, sizeof *room_seq);
    room_members = calloc((size_t)o.rooms, sizeof *room_members);
    lat = malloc(LAT_SAMPLES * sizeof *lat);
    if (ep < 0 || room_seq == NULL || room_members == NULL || lat == NULL)
        die("setup failed");

    /* Phase 1: streams up, every hello in. */
    u0 = sample(o.pid);
    t0 = now_ns();
    deadline = t0 + (long long)(o.max_seconds * 1e9);
    open_streams();
    while (hellos + closed_streams < o.conns && now_ns() < deadline)
        poll_once(50);
    hello_ns = now_ns() - t0;
    if (hellos < o.conns)
        die("only %ld of %d streams got rc:hello within %.0f s (%ld closed)",
            hellos, o.conns, o.max_seconds, closed_streams);

    if (o.idle) {
        u1 = sample(o.pid);
        printf("{\"label\":\"%s\",\"scenario\":\"%s\",\"conns\":%d,"
               "\"rooms\":%d,\"hello_s\":%.3f,\"rss_before_kib\":%ld,"
               "\"rss_kib\":%ld,\"rss_per_conn_bytes\":%.0f}\n",
               o.label, o.scenario, o.conns, o.rooms, hello_ns / 1e9,
               u0.rss_kib, u1.rss_kib,
               (double)(u1.rss_kib - u0.rss_kib) * 1024.0 / o.conns);
        return 0;
    }

    /* Phase 2: send, until every message reached every stream. */
    remaining =
        malloc((size_t)(o.messages ? o.messages : 1) * sizeof *remaining);
    for (i = 0; i < o.messages; i++) {
        remaining[i] = room_members[i % o.rooms];
        expected_deliveries += remaining[i];
    }
    if (o.redis_port) {
        struct epoll_event e = {EPOLLIN, {.u64 = REDIS_TAG}};

        redis_fd = connect_to("127.0.0.1", o.redis_port);
        epoll_ctl(ep, EPOLL_CTL_ADD, redis_fd, &e);
    } else {
        posters = calloc((size_t)o.post_conns, sizeof *posters);
        for (i = 0; i < o.post_conns; i++) {
            struct epoll_event e = {EPOLLIN,
                                    {.u64 = POSTER_BASE + (uint64_t)i}};

            posters[i].fd = connect_to(o.post_host, o.post_port);
            epoll_ctl(ep, EPOLL_CTL_ADD, posters[i].fd, &e);
        }
    }
    u0 = sample(o.pid);
    t0 = now_ns();
    deadline = t0 + (long long)(o.max_seconds * 1e9);
    while (completed < o.messages && closed_streams == 0 &&
           now_ns() < deadline) {
        long long now = now_ns();
        int timeout = 10;

        /* Send what is due: by the rate, or while the window allows. */
        while (sent < o.messages) {
            long long due =
                o.rate > 0 ? t0 + (long long)(sent * 1e9 / o.rate) : 0;
            poster *p = NULL;

            if (o.rate > 0 && due > now) {
                timeout = (int)((due - now) / 1000000);
                break;
            }
            if (o.rate <= 0 && sent - completed >= o.window)
                break;
            if (o.post_port && (p = idle_poster()) == NULL)
                break;
            if (p != NULL)
                send_post(p, sent);
            else
                send_redis(sent);
            sent++;
        }
        poll_once(timeout);
    }
    t_end = now_ns();
    u1 = sample(o.pid);

    {
        double secs = (t_end - t0) / 1e9;
        double du = u1.user_s - u0.user_s, ds = u1.sys_s - u0.sys_s;
        double d = deliveries > 0 ? (double)deliveries : 1;
        unsigned long long ns = lat_seen < LAT_SAMPLES ? lat_seen : LAT_SAMPLES;
        uint32_t p50 = 0, p99 = 0;
        int ok, order_defined;

        if (ns > 0) {
            qsort(lat, (size_t)ns, sizeof *lat, cmp_u32);
            p50 = lat[ns / 2];
            p99 = lat[(size_t)((double)ns * 0.99)];
        }
        /* Order is defined when one connection sends everything: Redis
         * mode, or one poster. */
        order_defined = o.redis_port || o.post_conns == 1;
        missing = expected_deliveries - (deliveries - dups);
        ok = completed == o.messages && dups == 0 &&
             (reorders == 0 || !order_defined) && closed_streams == 0 &&
             http_errors == 0;
        printf("{\"label\":\"%s\",\"scenario\":\"%s\",\"mode\":\"%s\","
               "\"conns\":%d,\"rooms\":%d,\"messages\":%ld,\"rate\":%.0f,"
               "\"sent\":%ld,\"completed\":%ld,\"deliveries\":%lld,"
               "\"expected\":%lld,\"missing\":%lld,\"duplicates\":%lld,"
               "\"out_of_order\":%lld,"
               "\"closed\":%ld,\"http_errors\":%ld,\"ok\":%s,"
               "\"seconds\":%.3f,\"deliveries_per_s\":%.0f,"
               "\"lat_p50_us\":%u,\"lat_p99_us\":%u,\"lat_max_us\":%u,"
               "\"cpu_user_us_per_delivery\":%.3f,"
               "\"cpu_sys_us_per_delivery\":%.3f,"
               "\"cpu_us_per_delivery\":%.3f,\"rss_kib\":%ld}\n",
               o.label, o.scenario, o.redis_port ? "redis" : "post", o.conns,
               o.rooms, o.messages, o.rate, sent, completed, deliveries,
               expected_deliveries, missing, dups, reorders, closed_streams,
               http_errors, ok ? "true" : "false", secs,
               (double)deliveries / secs, p50, p99, lat_max, du * 1e6 / d,
               ds * 1e6 / d, (du + ds) * 1e6 / d, u1.rss_kib);
        if (!ok)
            fprintf(stderr,
                    "loadgen: %ld of %ld messages reached every stream; "
                    "%lld duplicates, %lld out of order, %ld streams closed, "
                    "%ld HTTP errors\n",
                    completed, o.messages, dups, reorders, closed_streams,
                    http_errors);
        return ok ? 0 : 1;
    }
}
