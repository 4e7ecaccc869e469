/* topo_harness: what the cluster, sentinel and TLS parts share (time,
 * errors, bounded waits, starting servers through redis_harness, running a
 * program). See topo_harness.h; the parts are topo_cluster.c,
 * topo_sentinel.c and topo_tls.c. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* syscall(), SYS_close_range */

#include "topo_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#ifndef TH_REDIS_SERVER_PATH
#define TH_REDIS_SERVER_PATH "redis-server"
#endif
#ifndef TH_OPENSSL_PATH
#define TH_OPENSSL_PATH "openssl"
#endif

/* ---- time and errors ------------------------------------------------- */

long long th__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int th__ms_left(long long deadline)
{
    long long left = deadline - th__now_ms();

    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* A polling interval, never a synchronisation. */
void th__pause_ms(int ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void th__set_err(char *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, TH_ERROR_SIZE, fmt, ap);
    va_end(ap);
    fprintf(stderr, "topo_harness: %s\n", err);
}

void th__set_why(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

/*
 * Call pred until it says 1 (done), -1 (give up: why says why) or
 * timeout_ms passed. 0, or -1 with err saying what was awaited and the
 * last reason pred gave.
 */
int th__wait_for(char *err, th_pred pred, void *arg, int timeout_ms,
                 const char *what)
{
    long long deadline = th__now_ms() + timeout_ms;
    char why[TH_WHY_SIZE] = "not looked at yet";

    for (;;) {
        int r = pred(arg, why, sizeof why), left;

        if (r > 0)
            return 0;
        if (r < 0) {
            th__set_err(err, "%s: %s", what, why);
            return -1;
        }
        left = th__ms_left(deadline);
        if (left <= 0)
            break;
        th__pause_ms(left < TH_POLL_MS ? left : TH_POLL_MS);
    }
    th__set_err(err, "timed out after %d ms waiting for %s; last seen: %s",
                timeout_ms, what, why);
    return -1;
}

/* ---- starting servers ------------------------------------------------ */

/* An environment variable set (or unset: value NULL) for one call. */
struct env_save {
    const char *name;
    char *old;
    int had;
};

static int env_push(struct env_save *e, const char *name, const char *value)
{
    const char *old = getenv(name);

    e->name = name;
    e->had = old != NULL;
    e->old = old ? strdup(old) : NULL;
    if (old && !e->old)
        return -1;
    if (value)
        return setenv(name, value, 1);
    return unsetenv(name);
}

static void env_pop(struct env_save *e)
{
    if (e->had)
        setenv(e->name, e->old, 1);
    else
        unsetenv(e->name);
    free(e->old);
    e->old = NULL;
}

/*
 * rh_start (restart 0) or rh_restart (1) with bin as the binary (NULL: the
 * usual one). These servers must be what this file asks for, plain: a
 * harness-wide mode the environment turns on (RC_TEST_REDIS_CLUSTER=1
 * makes every rh_start a one-node cluster) is off for them.
 */
int th__launch(rh_server *s, const char *const *args, const char *bin,
               int restart)
{
    struct env_save mode, binary;
    int rc = -1;

    if (env_push(&mode, "RC_TEST_REDIS_CLUSTER", NULL) != 0) {
        snprintf(s->error, sizeof s->error, "setting the environment failed");
        return -1;
    }
    if (!bin || env_push(&binary, "RH_REDIS_SERVER", bin) == 0)
        rc = restart ? rh_restart(s) : rh_start(s, args);
    if (bin)
        env_pop(&binary);
    env_pop(&mode);
    return rc;
}

/* ---- replies --------------------------------------------------------- */

const char *th__reply_text(const redisReply *r)
{
    if (!r)
        return "no reply (connection failed, see stderr)";
    if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_STRING)
        return r->str;
    return "an unexpected reply type";
}

/* Frees r. 0 when it is +OK, else -1 with err "<what>: <reply>". */
int th__expect_ok(char *err, redisReply *r, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    int ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK");

    if (!ok) {
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        th__set_err(err, "%s: %s", what, th__reply_text(r));
    }
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* The value of "name:value" in an INFO-style text, into out. 0 or -1. */
int th__info_field(const char *text, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name), len;
    const char *p = text;

    while (p && *p) {
        if (!strncmp(p, name, n) && p[n] == ':') {
            p += n + 1;
            len = strcspn(p, "\r\n");
            if (len >= cap)
                len = cap - 1;
            memcpy(out, p, len);
            out[len] = '\0';
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    out[0] = '\0';
    return -1;
}

/* ---- running a program ----------------------------------------------- */

const char *th_redis_server(void)
{
    const char *env = getenv("RH_REDIS_SERVER");

    return env && env[0] ? env : TH_REDIS_SERVER_PATH;
}

const char *th_openssl(void)
{
    const char *env = getenv("TH_OPENSSL");

    return env && env[0] ? env : TH_OPENSSL_PATH;
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
static void run_child(const char *const argv[], int outfd, pid_t parent)
{
    static const char msg[] = "th_run: cannot execute the program\n";
    int nullfd = open("/dev/null", O_RDONLY);
    sigset_t none;

#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
#else
    (void)parent;
#endif
    if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(outfd, 1) < 0 ||
        dup2(outfd, 2) < 0)
        _exit(127);
    close_from(3);
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (strchr(argv[0], '/'))
        execv(argv[0], (char *const *)argv);
    else
        execvp(argv[0], (char *const *)argv);
    if (write(2, msg, sizeof msg - 1) < 0) {
        /* nothing more to do */
    }
    _exit(127);
}

/* Read the child's output until EOF or the deadline. 0 EOF, -1 timeout. */
static int read_output(int fd, char *out, size_t cap, long long deadline)
{
    char sink[512];
    size_t used = 0;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        int left = th__ms_left(deadline);

        if (left <= 0)
            return -1;
        if (poll(&p, 1, left) < 0 && errno != EINTR)
            return -1;
        if (!p.revents)
            continue;
        if (out && used + 1 < cap)
            n = read(fd, out + used, cap - 1 - used);
        else
            n = read(fd, sink, sizeof sink);
        if (n == 0)
            return 0;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return 0;
        if (n > 0 && out && used + 1 < cap)
            used += (size_t)n;
        if (out)
            out[used] = '\0';
    }
}

/* Reap pid by the deadline (polled), SIGKILL and reap after it. */
static int reap(pid_t pid, long long deadline, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);

        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (th__ms_left(deadline) <= 0) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        th__pause_ms(5);
    }
}

int th_run(const char *const argv[], char *out, size_t cap, int timeout_ms)
{
    long long deadline = th__now_ms() + timeout_ms;
    int pfd[2], st = 0, timed_out;
    pid_t pid, parent = getpid();

    if (out && cap)
        out[0] = '\0';
    if (pipe(pfd) != 0)
        return -1;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        run_child(argv, pfd[1], parent);
    }
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return -1;
    }
    timed_out = read_output(pfd[0], out, cap, deadline) != 0;
    close(pfd[0]);
    if (timed_out)
        deadline = 0; /* kill it now */
    if (reap(pid, deadline, &st) != 0 || timed_out) {
        if (out && cap)
            snprintf(out, cap, "%s: timed out after %d ms (killed)", argv[0],
                     timeout_ms);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- directories ----------------------------------------------------- */

int th__write_file(const char *path, const char *text, mode_t mode, char *err)
{
    FILE *f;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

    if (fd < 0) {
        th__set_err(err, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        th__set_err(err, "fdopen %s: %s", path, strerror(errno));
        return -1;
    }
    if (fputs(text, f) == EOF || fclose(f) != 0) {
        th__set_err(err, "cannot write %s", path);
        return -1;
    }
    return 0;
}

/* A port the kernel had free on 127.0.0.1 a moment ago, or -1. */
int th__free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}
