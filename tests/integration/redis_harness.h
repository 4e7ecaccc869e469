/*
 * redis_harness: run a real, throw-away redis-server for integration tests.
 *
 * Rules the harness keeps:
 *   - loopback only: the server binds 127.0.0.1 and every connection made
 *     here goes to 127.0.0.1;
 *   - every wait has a deadline and a failure says what it was waiting for;
 *   - readiness is a PING that answers (polled every 10 ms, the pause ends
 *     early if the child dies: it waits on a pidfd where Linux has one);
 *     waiting for the child to exit is an event (pidfd + poll), with a
 *     5 ms waitpid(WNOHANG) poll as the fallback;
 *   - the server never outlives the test process. Every child is recorded
 *     in a process-wide table and killed (SIGKILL) by
 *       . rh_stop()/rh_kill9(), the normal path;
 *       . an atexit() handler, when a test returns or fails without stopping
 *         its server (it says so on stderr);
 *       . a signal handler for SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGABRT,
 *         SIGSEGV, SIGBUS, SIGFPE and SIGILL (only installed where the
 *         disposition was SIG_DFL); it kills the children with
 *         async-signal-safe calls only, removes their log and directory,
 *         then re-raises the signal with the previous disposition;
 *       . on Linux, PR_SET_PDEATHSIG = SIGKILL in the child, for the deaths
 *         nothing can catch (SIGKILL, ctest's timeout kill, ASan's _exit).
 *
 * Side effects on the test process (at the first rh_start):
 *   - the handlers and atexit() above;
 *   - SIGPIPE is set to SIG_IGN if it was SIG_DFL: a test that writes to a
 *     connection whose server it has just killed must get EPIPE, not die.
 *     A test that needs the default back can restore it after rh_start.
 *
 * Not thread-safe: call the harness from one thread. At most RH_MAX_SERVERS
 * servers per process at a time. Forked children of the test process do not
 * kill their parent's servers (the table records the owning pid).
 *
 * The binary is $RH_REDIS_SERVER if set, else the RH_REDIS_SERVER_PATH the
 * build defines (harness.cmake passes find_program's result), else
 * "redis-server" on $PATH.
 *
 * Cluster mode (opt-in): with RC_TEST_REDIS_CLUSTER=1 in the environment,
 * every server is started with --cluster-enabled yes --cluster-config-file
 * <dir>/nodes.conf and is ready once it owns all 16384 slots (CLUSTER
 * ADDSLOTSRANGE 0 16383, unless a restarted node kept them in its
 * nodes.conf) and CLUSTER INFO says cluster_state:ok. One node owning
 * every slot never answers MOVED, so clients work unchanged, but Redis
 * holds scripts to the one-slot rule. Only database 0 exists there.
 *
 * Its directory is a mkdtemp() directory under $TMPDIR (else /tmp); it holds
 * redis.log (the server's log at loglevel warning plus its stdout/stderr).
 * When the server fails to start, the tail of that log is in s->error.
 */
#ifndef RC_REDIS_HARNESS_H
#define RC_REDIS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RH_MAX_SERVERS 32    /* live servers per process */
#define RH_MAX_EXTRA_ARGS 32 /* extra_args entries */
#define RH_ARGBUF_SIZE 2048  /* total bytes of extra_args strings */
#define RH_DIR_SIZE 256
#define RH_ERROR_SIZE 768

#define RH_START_TIMEOUT_MS 10000 /* rh_start / rh_restart, all attempts */
#define RH_START_ATTEMPTS 5       /* rh_start: fresh ports tried */
#define RH_RESTART_BIND_MS 5000   /* rh_restart: wait for the port */
#define RH_STOP_TIMEOUT_MS 5000   /* SIGTERM grace before SIGKILL */
#define RH_KILL_TIMEOUT_MS 2000   /* SIGKILL to reaped */
#define RH_IO_TIMEOUT_MS 2000     /* rh_connect: connect and each reply */

/*
 * One server. A zeroed rh_server (static, or = {0}) is safe to rh_stop, so
 * a test fixture can always call rh_stop in its teardown. Do not copy a
 * started rh_server: the copy and the original would share one server.
 */
typedef struct rh_server {
    /* Public, read-only. */
    int port;                  /* 127.0.0.1:port; kept across restarts */
    pid_t pid;                 /* > 0 while running, else 0 */
    char dir[RH_DIR_SIZE];     /* its --dir; "" after rh_stop */
    char error[RH_ERROR_SIZE]; /* why the last call failed */

    /* Private. */
    int slot1_; /* 1 + index in the cleanup table, or 0 */
    int nargs_; /* extra args, NUL-separated in argbuf_ */
    char argbuf_[RH_ARGBUF_SIZE];
    int password_off_; /* "--requirepass X": 1 + X's offset */
} rh_server;

/*
 * Start a redis-server on a free loopback port:
 *   redis-server --port P --bind 127.0.0.1 --save "" --appendonly no
 *                --daemonize no --loglevel warning --dir D
 *                --logfile D/redis.log <extra_args...>
 * extra_args is NULL or a NULL-terminated list (e.g. {"--requirepass", "x",
 * NULL}); it is copied, and reused by rh_restart. The port comes from
 * binding 127.0.0.1:0; if redis cannot bind it (another process took it in
 * the meantime) a new port is tried, RH_START_ATTEMPTS times. Ready means a
 * PING answers PONG and INFO's process_id is our child (so a foreign server
 * that grabbed the port is never mistaken for ours); with --requirepass the
 * harness AUTHs first; with some other auth scheme it knows nothing of,
 * NOAUTH from our (live) child counts as ready.
 * Returns 0, or -1 with s->error set (also printed to stderr) and nothing
 * left behind. s is zeroed first, so it needs no initialisation.
 */
int rh_start(rh_server *s, const char *const *extra_args);

/*
 * SIGTERM, wait up to RH_STOP_TIMEOUT_MS, then SIGKILL; reap; remove the
 * directory. Afterwards kill(old_pid, 0) fails with ESRCH. 0 when the
 * server is gone (also when it was not running), -1 if it would not die.
 * s keeps its port and arguments: rh_restart may start it again.
 */
int rh_stop(rh_server *s);

/* SIGKILL and reap (a crash). The directory stays for rh_restart. */
int rh_kill9(rh_server *s);

/*
 * Start the server again on the same port with the same arguments (a
 * running server is stopped first, gracefully). Waits up to
 * RH_RESTART_BIND_MS for the port to be bindable, retrying when redis
 * loses the race for it. Works after rh_kill9 and after rh_stop.
 * s->pid changes; s->port does not. 0, or -1 with s->error.
 */
int rh_restart(rh_server *s);

/*
 * A blocking hiredis context to the server: RH_IO_TIMEOUT_MS for the
 * connect and for every reply (so a blocking read in a test is bounded),
 * AUTHed when the server was started with --requirepass. NULL on failure
 * (reason on stderr). Free it with redisFree().
 */
redisContext *rh_connect(const rh_server *s);

/* The same without AUTH (to see NOAUTH). */
redisContext *rh_connect_raw(const rh_server *s);

/*
 * One command on a ONE-SHOT connection (rh_connect, the command,
 * redisFree): nothing is cached, so it is always safe across
 * rh_kill9/rh_restart, and it never holds a subscription. fmt is hiredis'
 * format (%s, %b with pointer + size_t length, %d...), not printf's. The
 * reply (free it with freeReplyObject), or NULL (reason on stderr).
 * e.g. rh_cmd(s, "PUBSUB NUMSUB %s", ch), rh_cmd(s, "PUBSUB CHANNELS").
 */
redisReply *rh_cmd(const rh_server *s, const char *fmt, ...);

/*
 * PUBLISH channel payload, binary-safe (%b for both; channel is a C
 * string, payload is len bytes and may hold NUL, CR, LF). The number of
 * receivers, or -1.
 */
long long rh_publish(const rh_server *s, const char *channel,
                     const void *payload, size_t len);

/* PUBSUB NUMSUB channel: the subscriber count, or -1. */
long long rh_numsub(const rh_server *s, const char *channel);

/*
 * Call pred(arg) every 5 ms until it returns non-zero or timeout_ms has
 * passed (it is always called at least once, and once more at the
 * deadline). 0 when it became true; -1 after printing
 * "timed out after N ms waiting for <what>" to stderr.
 */
int rh_wait_until(int (*pred)(void *), void *arg, int timeout_ms,
                  const char *what);

/* 1 when RC_TEST_REDIS_CLUSTER=1: servers run in cluster mode (above). */
int rh_cluster_mode(void);

#ifdef __cplusplus
}
#endif

#endif /* RC_REDIS_HARNESS_H */
