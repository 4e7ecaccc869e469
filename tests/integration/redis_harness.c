/* redis_harness: a real redis-server for integration tests. See the header. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* syscall() and SYS_* for pidfd_open/close_range */

#include "redis_harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#ifndef RH_REDIS_SERVER_PATH
#define RH_REDIS_SERVER_PATH "redis-server"
#endif

#define RH_LOOPBACK "127.0.0.1"
#define RH_LOG_NAME "redis.log"
#define RH_PROBE_PAUSE_MS 10
#define RH_PORT_PAUSE_MS 10
#define RH_WAIT_STEP_MS 5

/* spawn_and_wait(): the child lost the race for its port. */
#define RH_BIND_LOST 1

/* ---- time ------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(long long deadline)
{
    long long left = deadline - now_ms();

    if (left <= 0)
        return 0;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* A polling interval, never a synchronisation. */
static void pause_ms(int ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- errors ---------------------------------------------------------- */

static void set_err(rh_server *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "redis_harness: %s\n", s->error);
}

/* ---- the cleanup table ----------------------------------------------- */

/* Written with the handled signals blocked; the signal handler only reads
 * it. pid and owner fit sig_atomic_t (int) on every platform we run on. */
struct rh_slot {
    volatile sig_atomic_t used;
    volatile sig_atomic_t owner; /* getpid() of the process that started it */
    volatile sig_atomic_t pid;   /* running child, or 0 */
    int port;
    int pidfd; /* -1 when none */
    char dir[RH_DIR_SIZE];
    char log[RH_DIR_SIZE + sizeof "/" RH_LOG_NAME];
    char nodes[RH_DIR_SIZE + sizeof "/nodes.conf"]; /* cluster mode */
};

static struct rh_slot rh_slots[RH_MAX_SERVERS];

static const int rh_fatal_sigs[] = {SIGHUP,  SIGINT, SIGQUIT, SIGTERM, SIGABRT,
                                    SIGSEGV, SIGBUS, SIGFPE,  SIGILL};
#define RH_NSIGS ((int)(sizeof rh_fatal_sigs / sizeof rh_fatal_sigs[0]))
static struct sigaction rh_old_actions[RH_NSIGS];
static volatile sig_atomic_t rh_installed_sig[RH_NSIGS];
static int rh_installed;

/* Async-signal-safe: kill, unlink, rmdir, getpid only. */
static void kill_all_now(void)
{
    pid_t me = getpid();
    int i;

    for (i = 0; i < RH_MAX_SERVERS; i++) {
        struct rh_slot *sl = &rh_slots[i];

        if (!sl->used || (pid_t)sl->owner != me)
            continue;
        if (sl->pid > 0)
            kill((pid_t)sl->pid, SIGKILL);
        if (sl->dir[0]) {
            unlink(sl->log);
            unlink(sl->nodes);
            rmdir(sl->dir);
        }
    }
}

static void on_fatal_signal(int sig)
{
    int saved = errno;
    int i;

    kill_all_now();
    for (i = 0; i < RH_NSIGS; i++)
        if (rh_fatal_sigs[i] == sig && rh_installed_sig[i]) {
            sigaction(sig, &rh_old_actions[i], NULL);
            rh_installed_sig[i] = 0;
        }
    errno = saved;
    /* Pending until we return (sig is blocked in its handler), then the
     * previous disposition (SIG_DFL) ends the process. */
    raise(sig);
}

static void block_signals(sigset_t *old)
{
    sigset_t set;
    int i;

    sigemptyset(&set);
    for (i = 0; i < RH_NSIGS; i++)
        sigaddset(&set, rh_fatal_sigs[i]);
    sigprocmask(SIG_BLOCK, &set, old);
}

static void restore_signals(const sigset_t *old)
{
    sigprocmask(SIG_SETMASK, old, NULL);
}

static void remove_dir(const char *dir)
{
    DIR *d;
    struct dirent *e;
    char path[RH_DIR_SIZE + 256 + 2];

    if (!dir[0])
        return;
    d = opendir(dir);
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (rmdir(dir) != 0 && errno != ENOENT)
        fprintf(stderr, "redis_harness: cannot remove %s: %s\n", dir,
                strerror(errno));
}

/*
 * Wait up to timeout_ms for the child to exit and reap it. 1 reaped (status
 * in *status, or -1 if someone else reaped it), 0 still running, -1 error.
 * With a pidfd the wait is poll() on it: it returns when the child exits.
 */
static int wait_child(pid_t pid, int pidfd, int timeout_ms, int *status)
{
    long long deadline = now_ms() + timeout_ms;

    for (;;) {
        int st = 0, left;
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid) {
            if (status)
                *status = st;
            return 1;
        }
        if (r < 0 && errno != EINTR) {
            if (errno == ECHILD) { /* not ours to reap any more */
                if (status)
                    *status = -1;
                return 1;
            }
            return -1;
        }
        left = ms_left(deadline);
        if (left <= 0)
            return 0;
        if (pidfd >= 0) {
            struct pollfd p;

            p.fd = pidfd;
            p.events = POLLIN;
            p.revents = 0;
            poll(&p, 1, left); /* EINTR: loop */
        } else {
            pause_ms(left < RH_WAIT_STEP_MS ? left : RH_WAIT_STEP_MS);
        }
    }
}

static void rh_atexit(void)
{
    pid_t me = getpid();
    sigset_t old;
    int i;

    block_signals(&old);
    for (i = 0; i < RH_MAX_SERVERS; i++) {
        struct rh_slot *sl = &rh_slots[i];

        if (!sl->used || (pid_t)sl->owner != me)
            continue;
        if (sl->pid > 0) {
            fprintf(stderr,
                    "redis_harness: at exit: killing redis-server pid %d "
                    "(127.0.0.1:%d), it was never stopped\n",
                    (int)sl->pid, sl->port);
            kill((pid_t)sl->pid, SIGKILL);
            if (wait_child((pid_t)sl->pid, sl->pidfd, RH_KILL_TIMEOUT_MS,
                           NULL) == 0)
                fprintf(stderr,
                        "redis_harness: at exit: pid %d not reaped after "
                        "%d ms\n",
                        (int)sl->pid, RH_KILL_TIMEOUT_MS);
        }
        if (sl->pidfd >= 0)
            close(sl->pidfd);
        remove_dir(sl->dir);
        sl->pid = 0;
        sl->pidfd = -1;
        sl->used = 0;
    }
    restore_signals(&old);
}

static void install_once(void)
{
    struct sigaction sa, cur;
    int i;

    if (rh_installed)
        return;
    rh_installed = 1;
    for (i = 0; i < RH_MAX_SERVERS; i++)
        rh_slots[i].pidfd = -1;
    atexit(rh_atexit);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigfillset(&sa.sa_mask);
    for (i = 0; i < RH_NSIGS; i++) {
        if (sigaction(rh_fatal_sigs[i], NULL, &cur) != 0 ||
            cur.sa_handler != SIG_DFL || (cur.sa_flags & SA_SIGINFO))
            continue; /* somebody else's: leave it */
        if (sigaction(rh_fatal_sigs[i], &sa, &rh_old_actions[i]) == 0)
            rh_installed_sig[i] = 1;
    }
    if (sigaction(SIGPIPE, NULL, &cur) == 0 && cur.sa_handler == SIG_DFL &&
        !(cur.sa_flags & SA_SIGINFO)) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

static int slot_alloc(rh_server *s)
{
    sigset_t old;
    int i;

    block_signals(&old);
    for (i = 0; i < RH_MAX_SERVERS; i++) {
        struct rh_slot *sl = &rh_slots[i];

        /* A slot a parent process left in our copy of the table is not
         * ours to use or clean; skip it. */
        if (sl->used)
            continue;
        memset(sl->dir, 0, sizeof sl->dir);
        snprintf(sl->dir, sizeof sl->dir, "%s", s->dir);
        snprintf(sl->log, sizeof sl->log, "%s/%s", s->dir, RH_LOG_NAME);
        snprintf(sl->nodes, sizeof sl->nodes, "%s/nodes.conf", s->dir);
        sl->port = s->port;
        sl->pid = 0;
        sl->pidfd = -1;
        sl->owner = (sig_atomic_t)getpid();
        sl->used = 1;
        restore_signals(&old);
        s->slot1_ = i + 1;
        return 0;
    }
    restore_signals(&old);
    set_err(s, "more than %d servers at once", RH_MAX_SERVERS);
    return -1;
}

/* The child is gone (reaped) or never existed: forget it. */
static void slot_child_gone(rh_server *s)
{
    sigset_t old;

    s->pid = 0;
    if (s->slot1_ == 0)
        return;
    block_signals(&old);
    rh_slots[s->slot1_ - 1].pid = 0;
    if (rh_slots[s->slot1_ - 1].pidfd >= 0)
        close(rh_slots[s->slot1_ - 1].pidfd);
    rh_slots[s->slot1_ - 1].pidfd = -1;
    restore_signals(&old);
}

/* Remove the directory and free the slot. The child must be gone. */
static void slot_release(rh_server *s)
{
    sigset_t old;

    slot_child_gone(s);
    remove_dir(s->dir);
    s->dir[0] = '\0';
    if (s->slot1_ == 0)
        return;
    block_signals(&old);
    rh_slots[s->slot1_ - 1].dir[0] = '\0';
    rh_slots[s->slot1_ - 1].used = 0;
    restore_signals(&old);
    s->slot1_ = 0;
}

/* ---- the directory and the log --------------------------------------- */

static int make_dir(rh_server *s)
{
    const char *tmp = getenv("TMPDIR");
    char tmpl[RH_DIR_SIZE];
    int n;

    if (!tmp || !tmp[0])
        tmp = "/tmp";
    n = snprintf(tmpl, sizeof tmpl, "%s/rh-redis-XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof tmpl) {
        set_err(s, "TMPDIR too long: %s", tmp);
        return -1;
    }
    if (!mkdtemp(tmpl)) {
        set_err(s, "mkdtemp(%s): %s", tmpl, strerror(errno));
        return -1;
    }
    memcpy(s->dir, tmpl, (size_t)n + 1);
    return 0;
}

/* The log's size: what this run writes starts there (the log is kept
 * across restarts and start attempts). */
static long log_size(const rh_server *s)
{
    char path[sizeof rh_slots[0].log];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s", s->dir, RH_LOG_NAME);
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* The end of the log from byte `from` on, as one line (newlines shown as
 * " | "), at most cap - 1 bytes: whole last lines when they fit, else the
 * end of the last. */
static void log_tail(const rh_server *s, long from, char *out, size_t cap)
{
    char path[sizeof rh_slots[0].log];
    char buf[1024];
    FILE *f;
    long size;
    size_t n, i, o = 0, shown;
    const char *p, *q;

    out[0] = '\0';
    if (cap < 8)
        return;
    snprintf(path, sizeof path, "%s/%s", s->dir, RH_LOG_NAME);
    f = fopen(path, "rb");
    if (!f)
        return;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0)
        size = 0;
    if (size - from > (long)sizeof buf - 1)
        from = size - ((long)sizeof buf - 1);
    if (from > size || fseek(f, from, SEEK_SET) != 0)
        rewind(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (i = 0; i < n; i++)
        if (buf[i] == '\r' || buf[i] == '\0')
            buf[i] = ' ';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    p = buf;
    while (*p == '\n' || *p == ' ')
        p++;
    /* shown length: each newline becomes 3 bytes */
    for (;;) {
        for (shown = 0, q = p; *q; q++)
            shown += *q == '\n' ? 3 : 1;
        if (shown < cap || !strchr(p, '\n'))
            break;
        p = strchr(p, '\n') + 1;
    }
    if (shown >= cap) { /* one line, too long: its end */
        memcpy(out, "...", 3);
        o = 3;
        p += strlen(p) - (cap - 1 - o);
    }
    for (; *p && o + 1 < cap; p++) {
        if (*p == '\n') {
            if (o + 4 > cap)
                break;
            memcpy(out + o, " | ", 3);
            o += 3;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* Whether the log from byte `from` on has a line containing needle. */
static int log_says(const rh_server *s, long from, const char *needle)
{
    char path[sizeof rh_slots[0].log];
    char line[1024];
    FILE *f;
    int found = 0;

    snprintf(path, sizeof path, "%s/%s", s->dir, RH_LOG_NAME);
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (fseek(f, from, SEEK_SET) != 0)
        rewind(f);
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ---- ports ----------------------------------------------------------- */

static int loopback_socket(int port, int reuse, int *err)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    *err = 0;
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (reuse)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

/* A port the kernel had free on 127.0.0.1 a moment ago. */
static int pick_port(rh_server *s)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int err, port;
    int fd = loopback_socket(0, 0, &err);

    if (fd < 0) {
        set_err(s, "bind(127.0.0.1:0): %s", strerror(err));
        return -1;
    }
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        set_err(s, "getsockname: %s", strerror(errno));
        close(fd);
        return -1;
    }
    port = ntohs(a.sin_port);
    close(fd); /* never listened: leaves no TIME_WAIT */
    return port;
}

/* Poll (every RH_PORT_PAUSE_MS) until 127.0.0.1:port can be bound the way
 * redis binds it (SO_REUSEADDR), or the deadline. */
static int wait_port_bindable(rh_server *s, long long deadline)
{
    int err = 0;

    for (;;) {
        int fd = loopback_socket(s->port, 1, &err);

        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (err != EADDRINUSE) {
            set_err(s, "bind(127.0.0.1:%d): %s", s->port, strerror(err));
            return -1;
        }
        if (ms_left(deadline) <= 0) {
            set_err(s,
                    "timed out after %d ms waiting for 127.0.0.1:%d to be "
                    "free for the restart (still in use)",
                    RH_RESTART_BIND_MS, s->port);
            return -1;
        }
        pause_ms(RH_PORT_PAUSE_MS);
    }
}

/* ---- hiredis --------------------------------------------------------- */

static redisContext *connect_ctx(int port, int timeout_ms, char *why,
                                 size_t whycap)
{
    struct timeval tv;
    redisContext *c;

    if (timeout_ms < 1)
        timeout_ms = 1;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    c = redisConnectWithTimeout(RH_LOOPBACK, port, tv);
    if (!c) {
        snprintf(why, whycap, "connect: out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(why, whycap, "connect to 127.0.0.1:%d: %s", port, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(why, whycap, "setting the timeout: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* c->errstr, saying "timed out" when a blocking read hit the timeout
 * (hiredis 0.14 reports it as EAGAIN). */
static const char *ctx_error(const redisContext *c, int timeout_ms, char *buf,
                             size_t cap)
{
#ifdef REDIS_ERR_TIMEOUT
    if (c->err == REDIS_ERR_TIMEOUT) {
        snprintf(buf, cap, "timed out after %d ms waiting for the reply",
                 timeout_ms);
        return buf;
    }
#endif
    if (c->err == REDIS_ERR_IO && (!strcmp(c->errstr, strerror(EAGAIN)) ||
                                   !strcmp(c->errstr, strerror(EWOULDBLOCK)))) {
        snprintf(buf, cap, "timed out after %d ms waiting for the reply (%s)",
                 timeout_ms, c->errstr);
        return buf;
    }
    snprintf(buf, cap, "%s", c->errstr);
    return buf;
}

/* A connect to a free port in the ephemeral range can, rarely, pick that
 * very port as its source and connect to itself. */
static int is_self_connect(const redisContext *c, int port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;

    if (getsockname(c->fd, (struct sockaddr *)&a, &len) != 0)
        return 0;
    return a.sin_family == AF_INET && ntohs(a.sin_port) == port;
}

/* The --requirepass password, or NULL. */
static const char *password(const rh_server *s)
{
    return s->password_off_ > 0 ? s->argbuf_ + s->password_off_ - 1 : NULL;
}

static int reply_is(const redisReply *r, int type, const char *prefix)
{
    return r && r->type == type && r->str &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* 0 ok; -1 with why set. */
static int do_auth(redisContext *c, const char *pw, int timeout_ms, char *why,
                   size_t whycap)
{
    redisReply *r = redisCommand(c, "AUTH %s", pw);

    if (!r) {
        char e[256];

        snprintf(why, whycap, "AUTH: %s",
                 ctx_error(c, timeout_ms, e, sizeof e));
        return -1;
    }
    if (!reply_is(r, REDIS_REPLY_STATUS, "OK")) {
        snprintf(why, whycap, "AUTH: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

static redisContext *open_conn(const rh_server *s, int with_auth,
                               const char *who)
{
    char why[256];
    redisContext *c;

    if (s->pid <= 0 || s->port <= 0) {
        fprintf(stderr, "redis_harness: %s: the server is not running\n", who);
        return NULL;
    }
    c = connect_ctx(s->port, RH_IO_TIMEOUT_MS, why, sizeof why);
    if (c && with_auth && password(s) &&
        do_auth(c, password(s), RH_IO_TIMEOUT_MS, why, sizeof why) != 0) {
        redisFree(c);
        c = NULL;
    }
    if (!c)
        fprintf(stderr, "redis_harness: %s: %s\n", who, why);
    return c;
}

/* ---- readiness ------------------------------------------------------- */

enum { PROBE_NOT_YET, PROBE_READY };

/*
 * One readiness probe. why gets what was seen, for the timeout message.
 * Only our child counts: INFO's process_id must be s->pid.
 */
static int probe(const rh_server *s, int timeout_ms, char *why, size_t cap)
{
    redisContext *c;
    redisReply *r;
    int ready = PROBE_NOT_YET;

    if (timeout_ms > 1000)
        timeout_ms = 1000;
    c = connect_ctx(s->port, timeout_ms, why, cap);
    if (!c)
        return PROBE_NOT_YET;
    if (is_self_connect(c, s->port)) {
        snprintf(why, cap, "connect to 127.0.0.1:%d connected to itself",
                 s->port);
        redisFree(c);
        return PROBE_NOT_YET;
    }
    if (password(s) && do_auth(c, password(s), timeout_ms, why, cap) != 0) {
        redisFree(c);
        return PROBE_NOT_YET;
    }
    r = redisCommand(c, "PING");
    if (!r) {
        char e[256];

        snprintf(why, cap, "PING: %s", ctx_error(c, timeout_ms, e, sizeof e));
    } else if (reply_is(r, REDIS_REPLY_STATUS, "PONG")) {
        ready = PROBE_READY;
    } else if (!password(s) && reply_is(r, REDIS_REPLY_ERROR, "NOAUTH")) {
        /* Some auth we were not told about: our child is alive (checked
         * just before) and someone answers; that is as far as we can see. */
        freeReplyObject(r);
        redisFree(c);
        return PROBE_READY;
    } else {
        snprintf(why, cap, "PING answered %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "something else");
    }
    if (r)
        freeReplyObject(r);
    if (ready == PROBE_READY) {
        r = redisCommand(c, "INFO server");
        if (r && r->type == REDIS_REPLY_STRING && r->str) {
            const char *p = strstr(r->str, "process_id:");
            long pid = p ? strtol(p + strlen("process_id:"), NULL, 10) : -1;

            if (p && pid != (long)s->pid) {
                snprintf(why, cap,
                         "127.0.0.1:%d is answered by another redis "
                         "(pid %ld, ours is %d)",
                         s->port, pid, (int)s->pid);
                ready = PROBE_NOT_YET;
            }
        }
        /* INFO refused (renamed, ACL): PONG with our child alive will do. */
        if (r)
            freeReplyObject(r);
    }
    redisFree(c);
    return ready;
}

/* ---- cluster mode (RC_TEST_REDIS_CLUSTER=1) ---------------------------- */

int rh_cluster_mode(void)
{
    const char *e = getenv("RC_TEST_REDIS_CLUSTER");

    return e != NULL && strcmp(e, "1") == 0;
}

static void discard_child(rh_server *s);

/* CLUSTER INFO's text (a copy in out), or 0 with why set. */
static int cluster_info(redisContext *c, char *out, size_t cap, char *why,
                        size_t wcap)
{
    redisReply *r = redisCommand(c, "CLUSTER INFO");

    if (!r || r->type != REDIS_REPLY_STRING) {
        snprintf(why, wcap, "CLUSTER INFO: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
        if (r)
            freeReplyObject(r);
        return 0;
    }
    snprintf(out, cap, "%s", r->str);
    freeReplyObject(r);
    return 1;
}

/*
 * The node just started owns every slot and says cluster_state:ok. A node
 * restarted in its directory keeps its nodes.conf, and with it its slots;
 * a fresh one (or one whose slots are gone) gets CLUSTER ADDSLOTSRANGE 0
 * 16383. One node owning every slot never answers MOVED, yet Redis applies
 * the one-slot rule to scripts. 0, or -1 with s->error (the child killed).
 */
static int cluster_up(rh_server *s, long long deadline)
{
    char info[2048], why[300] = "no CLUSTER INFO yet";
    redisContext *c = open_conn(s, 1, "cluster mode");
    redisReply *r;
    int ok = 0;

    while (c != NULL && !ok) {
        if (cluster_info(c, info, sizeof info, why, sizeof why) &&
            strstr(info, "cluster_slots_assigned:16384") == NULL) {
            r = redisCommand(c, "CLUSTER ADDSLOTSRANGE 0 16383");
            if (!r || r->type == REDIS_REPLY_ERROR)
                snprintf(why, sizeof why, "CLUSTER ADDSLOTSRANGE: %s",
                         r ? r->str : "no answer");
            if (r)
                freeReplyObject(r);
        } else if (strstr(info, "cluster_state:ok") != NULL) {
            ok = 1;
            break;
        } else {
            snprintf(why, sizeof why, "cluster_state is not ok yet");
        }
        if (ms_left(deadline) <= 0)
            break;
        pause_ms(RH_PROBE_PAUSE_MS);
    }
    if (c != NULL)
        redisFree(c);
    if (ok)
        return 0;
    discard_child(s);
    set_err(s,
            "cluster mode: timed out after %d ms waiting for redis-server on "
            "127.0.0.1:%d to say cluster_state:ok (last: %s)",
            RH_START_TIMEOUT_MS, s->port, why);
    return -1;
}

/* ---- spawning -------------------------------------------------------- */

static const char *server_binary(void)
{
    const char *env = getenv("RH_REDIS_SERVER");

    return env && env[0] ? env : RH_REDIS_SERVER_PATH;
}

static void close_from(int lowfd)
{
#if defined(__linux__) && defined(SYS_close_range)
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0U) == 0)
        return;
#endif
    {
        long max = sysconf(_SC_OPEN_MAX);
        int fd;

        if (max < 0 || max > 65536)
            max = 65536;
        for (fd = lowfd; fd < max; fd++)
            close(fd);
    }
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child_exec(const char *bin, char *const argv[], const char *log,
                       int status_fd, pid_t parent)
{
    struct sigaction dfl;
    sigset_t none;
    int nullfd, logfd, wfd, err, i;

#ifdef __linux__
    /* Die with the test process, whatever kills it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
#else
    (void)parent;
#endif
    /* The status pipe above 2 before 0..2 are replaced. */
    wfd = fcntl(status_fd, F_DUPFD, 3);
    nullfd = open("/dev/null", O_RDONLY);
    logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (wfd < 0 || nullfd < 0 || logfd < 0)
        _exit(127);
    dup2(nullfd, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    if (wfd != 3)
        dup2(wfd, 3);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    /* No test connection may be kept open by the server process. */
    close_from(4);

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGPIPE, &dfl, NULL);
    for (i = 0; i < RH_NSIGS; i++)
        sigaction(rh_fatal_sigs[i], &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (strchr(bin, '/'))
        execv(bin, argv);
    else
        execvp(bin, argv);
    err = errno;
    if (write(3, &err, sizeof err) < 0) {
        /* nothing more to do */
    }
    _exit(127);
}

static int open_pidfd(pid_t pid)
{
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0U); /* O_CLOEXEC implied */
#else
    (void)pid;
    return -1;
#endif
}

static void describe_status(int st, char *out, size_t cap)
{
    if (st == -1)
        snprintf(out, cap, "exited (reaped elsewhere)");
    else if (WIFEXITED(st))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, cap, "was killed by signal %d", WTERMSIG(st));
    else
        snprintf(out, cap, "ended (status 0x%x)", st);
}

/* Kill and reap a child that is not wanted any more. */
static void discard_child(rh_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        wait_child(s->pid, rh_slots[s->slot1_ - 1].pidfd, RH_KILL_TIMEOUT_MS,
                   NULL);
    }
    slot_child_gone(s);
}

/* The child exited (reaped, status st) before it was ready. */
static int child_ended(rh_server *s, long log_from, int st)
{
    char tail[400], how[64];
    pid_t pid = s->pid;

    slot_child_gone(s);
    if (log_says(s, log_from, "Address already in use")) {
        snprintf(s->error, sizeof s->error,
                 "redis-server could not bind 127.0.0.1:%d "
                 "(address already in use)",
                 s->port);
        return RH_BIND_LOST;
    }
    describe_status(st, how, sizeof how);
    log_tail(s, log_from, tail, sizeof tail);
    set_err(s,
            "redis-server (pid %d, port %d) %s before answering PING; "
            "its log: %s",
            (int)pid, s->port, how, tail[0] ? tail : "(empty)");
    return -1;
}

/* Cluster mode: --cluster-enabled and its files appended to argv at argc
 * (nodes and bus hold the strings); the new argc, or -1 (s->error). */
static int cluster_args(rh_server *s, const char **argv, int argc, char *nodes,
                        size_t cap, char bus[16])
{
    /* The bus port defaults to port + 10000, which a port above 55535
     * cannot have: a free one of its own (lost to a race: retried as the
     * main port is). */
    int p = pick_port(s);

    if (p < 0)
        return -1;
    snprintf(bus, 16, "%d", p);
    snprintf(nodes, cap, "%s/nodes.conf", s->dir);
    argv[argc++] = "--cluster-port";
    argv[argc++] = bus;
    argv[argc++] = "--cluster-enabled";
    argv[argc++] = "yes";
    argv[argc++] = "--cluster-config-file";
    argv[argc++] = nodes;
    return argc;
}

/*
 * Start redis on s->port in s->dir (slot allocated) and wait until it is
 * ready or deadline. 0 ready; RH_BIND_LOST it could not bind the port;
 * -1 any other failure (s->error set). No child is left on failure.
 */
static int spawn_and_wait(rh_server *s, long long deadline)
{
    const char *bin = server_binary();
    const char *argv[26 + RH_MAX_EXTRA_ARGS];
    char port[16], log[sizeof rh_slots[0].log], why[300] = "no answer yet";
    char nodes[sizeof rh_slots[0].log], bus[16];
    char tail[400];
    int ep[2], argc = 0, i, st, n, e;
    size_t off;
    long log_from = log_size(s);
    sigset_t old;
    pid_t pid, parent = getpid();
    struct pollfd pfd;

    snprintf(port, sizeof port, "%d", s->port);
    snprintf(log, sizeof log, "%s/%s", s->dir, RH_LOG_NAME);
    argv[argc++] = bin;
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--bind";
    argv[argc++] = RH_LOOPBACK;
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--daemonize";
    argv[argc++] = "no";
    argv[argc++] = "--loglevel";
    argv[argc++] = "warning";
    argv[argc++] = "--dir";
    argv[argc++] = s->dir;
    argv[argc++] = "--logfile";
    argv[argc++] = log;
    if (rh_cluster_mode() &&
        (argc = cluster_args(s, argv, argc, nodes, sizeof nodes, bus)) < 0)
        return -1;
    for (i = 0, off = 0; i < s->nargs_; i++) {
        argv[argc++] = s->argbuf_ + off;
        off += strlen(s->argbuf_ + off) + 1;
    }
    argv[argc] = NULL;

    if (pipe(ep) != 0) {
        set_err(s, "pipe: %s", strerror(errno));
        return -1;
    }
    fcntl(ep[0], F_SETFD, FD_CLOEXEC);
    fcntl(ep[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL); /* nothing buffered is written twice */

    /* No fatal signal between fork and the table knowing the pid. */
    block_signals(&old);
    pid = fork();
    if (pid == 0) {
        close(ep[0]);
        child_exec(bin, (char *const *)argv, log, ep[1], parent);
    }
    e = errno;
    if (pid > 0) {
        s->pid = pid;
        rh_slots[s->slot1_ - 1].pid = (sig_atomic_t)pid;
        rh_slots[s->slot1_ - 1].pidfd = open_pidfd(pid);
    }
    restore_signals(&old);
    close(ep[1]);
    if (pid < 0) {
        close(ep[0]);
        set_err(s, "fork: %s", strerror(e));
        return -1;
    }

    /* exec succeeded when the close-on-exec pipe reads EOF. */
    pfd.fd = ep[0];
    pfd.events = POLLIN;
    for (;;) {
        pfd.revents = 0;
        n = poll(&pfd, 1, ms_left(deadline));
        if (n > 0 || (n < 0 && errno != EINTR))
            break;
        if (n == 0) {
            close(ep[0]);
            discard_child(s);
            set_err(s, "timed out after %d ms waiting for the exec of %s",
                    RH_START_TIMEOUT_MS, bin);
            return -1;
        }
    }
    e = 0;
    do
        n = (int)read(ep[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (int)sizeof e) {
        discard_child(s);
        set_err(s, "cannot run %s: %s", bin, strerror(e));
        return -1;
    }

    for (;;) {
        int left;

        if (wait_child(s->pid, rh_slots[s->slot1_ - 1].pidfd, 0, &st) == 1)
            return child_ended(s, log_from, st);
        if (probe(s, ms_left(deadline), why, sizeof why) == PROBE_READY)
            return rh_cluster_mode() ? cluster_up(s, deadline) : 0;
        left = ms_left(deadline);
        if (left <= 0)
            break;
        /* Pause between probes; ends at once if the child dies. */
        if (wait_child(s->pid, rh_slots[s->slot1_ - 1].pidfd,
                       left < RH_PROBE_PAUSE_MS ? left : RH_PROBE_PAUSE_MS,
                       &st) == 1)
            return child_ended(s, log_from, st);
    }
    pid = s->pid;
    discard_child(s);
    log_tail(s, log_from, tail, sizeof tail);
    set_err(s,
            "timed out after %d ms waiting for redis-server (pid %d) on "
            "127.0.0.1:%d to answer PING (last: %s); its log: %s",
            RH_START_TIMEOUT_MS, (int)pid, s->port, why,
            tail[0] ? tail : "(empty)");
    return -1;
}

/* ---- the API --------------------------------------------------------- */

static int copy_args(rh_server *s, const char *const *extra)
{
    size_t used = 0;
    int i;

    for (i = 0; extra && extra[i]; i++) {
        size_t len = strlen(extra[i]) + 1;

        if (i >= RH_MAX_EXTRA_ARGS) {
            set_err(s, "more than %d extra arguments", RH_MAX_EXTRA_ARGS);
            return -1;
        }
        if (used + len > sizeof s->argbuf_) {
            set_err(s, "extra arguments longer than %d bytes", RH_ARGBUF_SIZE);
            return -1;
        }
        memcpy(s->argbuf_ + used, extra[i], len);
        /* The last --requirepass wins, as in redis. */
        if (i > 0 && !strcmp(extra[i - 1], "--requirepass"))
            s->password_off_ = extra[i][0] ? (int)used + 1 : 0;
        used += len;
    }
    s->nargs_ = i;
    return 0;
}

int rh_start(rh_server *s, const char *const *extra_args)
{
    long long deadline;
    int attempt, r = -1;

    memset(s, 0, sizeof *s);
    install_once();
    if (copy_args(s, extra_args) != 0 || make_dir(s) != 0)
        return -1;
    if (slot_alloc(s) != 0) {
        remove_dir(s->dir);
        s->dir[0] = '\0';
        return -1;
    }
    deadline = now_ms() + RH_START_TIMEOUT_MS;
    for (attempt = 1; attempt <= RH_START_ATTEMPTS; attempt++) {
        s->port = pick_port(s);
        if (s->port < 0) {
            r = -1;
            break;
        }
        rh_slots[s->slot1_ - 1].port = s->port;
        r = spawn_and_wait(s, deadline);
        if (r != RH_BIND_LOST)
            break;
        fprintf(stderr, "redis_harness: %s; trying another port\n", s->error);
        if (ms_left(deadline) <= 0)
            break;
    }
    if (r == 0) {
        s->error[0] = '\0';
        return 0;
    }
    if (r == RH_BIND_LOST) {
        char last[RH_ERROR_SIZE];

        memcpy(last, s->error, sizeof last);
        set_err(s, "gave up after %d attempt(s): %.600s",
                attempt > RH_START_ATTEMPTS ? RH_START_ATTEMPTS : attempt,
                last);
    }
    slot_release(s);
    s->port = 0;
    return -1;
}

/* Make the child go away: SIGTERM (graceful) or SIGKILL, reap. */
static int end_child(rh_server *s, int graceful)
{
    int pidfd, n;

    if (s->pid <= 0)
        return 0;
    pidfd = rh_slots[s->slot1_ - 1].pidfd;
    n = 0;
    if (graceful) {
        if (kill(s->pid, SIGTERM) != 0 && errno != ESRCH) {
            set_err(s, "kill(%d, SIGTERM): %s", (int)s->pid, strerror(errno));
            return -1;
        }
        n = wait_child(s->pid, pidfd, RH_STOP_TIMEOUT_MS, NULL);
        if (n == 0)
            fprintf(stderr,
                    "redis_harness: redis-server pid %d ignored SIGTERM for "
                    "%d ms; sending SIGKILL\n",
                    (int)s->pid, RH_STOP_TIMEOUT_MS);
    }
    if (n != 1) {
        kill(s->pid, SIGKILL);
        n = wait_child(s->pid, pidfd, RH_KILL_TIMEOUT_MS, NULL);
    }
    if (n != 1) {
        set_err(s,
                "timed out after %d ms waiting for redis-server pid %d "
                "to die after SIGKILL",
                RH_KILL_TIMEOUT_MS, (int)s->pid);
        return -1;
    }
    slot_child_gone(s);
    return 0;
}

int rh_stop(rh_server *s)
{
    if (s->slot1_ == 0) { /* never started, or already stopped */
        s->pid = 0;
        return 0;
    }
    if (end_child(s, 1) != 0)
        return -1; /* still registered: the atexit handler tries again */
    slot_release(s);
    return 0;
}

int rh_kill9(rh_server *s)
{
    if (s->slot1_ == 0 || s->pid <= 0) {
        set_err(s, "rh_kill9: the server is not running");
        return -1;
    }
    return end_child(s, 0);
}

int rh_restart(rh_server *s)
{
    long long deadline, bind_deadline;
    int r;

    if (s->port <= 0) {
        set_err(s, "rh_restart: the server was never started");
        return -1;
    }
    install_once();
    if (s->pid > 0 && end_child(s, 1) != 0)
        return -1;
    if (s->slot1_ == 0) { /* after rh_stop: a fresh directory */
        if (make_dir(s) != 0)
            return -1;
        if (slot_alloc(s) != 0) {
            remove_dir(s->dir);
            s->dir[0] = '\0';
            return -1;
        }
    }
    deadline = now_ms() + RH_START_TIMEOUT_MS;
    bind_deadline = now_ms() + RH_RESTART_BIND_MS;
    for (;;) {
        if (wait_port_bindable(s, bind_deadline) != 0)
            return -1;
        r = spawn_and_wait(s, deadline);
        if (r == 0) {
            s->error[0] = '\0';
            return 0;
        }
        if (r != RH_BIND_LOST)
            return -1;
        if (ms_left(bind_deadline) <= 0) {
            char last[RH_ERROR_SIZE];

            memcpy(last, s->error, sizeof last);
            set_err(s,
                    "timed out after %d ms trying to restart on "
                    "127.0.0.1:%d: %.500s",
                    RH_RESTART_BIND_MS, s->port, last);
            return -1;
        }
        pause_ms(RH_PORT_PAUSE_MS);
    }
}

redisContext *rh_connect(const rh_server *s)
{
    return open_conn(s, 1, "rh_connect");
}

redisContext *rh_connect_raw(const rh_server *s)
{
    return open_conn(s, 0, "rh_connect_raw");
}

static redisReply *vcmd(const rh_server *s, const char *fmt, va_list ap)
{
    redisContext *c = open_conn(s, 1, "rh_cmd");
    redisReply *r;

    if (!c)
        return NULL;
    r = redisvCommand(c, fmt, ap);
    if (!r) {
        char e[256];

        fprintf(stderr, "redis_harness: rh_cmd \"%s\": %s\n", fmt,
                ctx_error(c, RH_IO_TIMEOUT_MS, e, sizeof e));
    }
    redisFree(c);
    return r;
}

redisReply *rh_cmd(const rh_server *s, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = vcmd(s, fmt, ap);
    va_end(ap);
    return r;
}

long long rh_publish(const rh_server *s, const char *channel,
                     const void *payload, size_t len)
{
    redisReply *r =
        rh_cmd(s, "PUBLISH %b %b", channel, strlen(channel), payload, len);
    long long n = -1;

    if (r && r->type == REDIS_REPLY_INTEGER)
        n = r->integer;
    else if (r)
        fprintf(stderr, "redis_harness: PUBLISH: %s\n",
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r)
        freeReplyObject(r);
    return n;
}

long long rh_numsub(const rh_server *s, const char *channel)
{
    redisReply *r = rh_cmd(s, "PUBSUB NUMSUB %b", channel, strlen(channel));
    long long n = -1;

    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER)
        n = r->element[1]->integer;
    else if (r)
        fprintf(stderr, "redis_harness: PUBSUB NUMSUB: %s\n",
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r)
        freeReplyObject(r);
    return n;
}

int rh_wait_until(int (*pred)(void *), void *arg, int timeout_ms,
                  const char *what)
{
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);

    for (;;) {
        int left;

        if (pred(arg))
            return 0;
        left = ms_left(deadline);
        if (left <= 0)
            break;
        pause_ms(left < RH_WAIT_STEP_MS ? left : RH_WAIT_STEP_MS);
    }
    fprintf(stderr, "timed out after %d ms waiting for %s\n", timeout_ms,
            what ? what : "a condition");
    return -1;
}
