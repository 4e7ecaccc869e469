/*
 * The Redis test harness, proved against a real redis-server: start, PING,
 * a binary-safe PUBLISH seen by a blocking subscriber, PUBSUB NUMSUB,
 * kill -9 + restart on the same port, requirepass, stop leaving no process,
 * and the server dying with the test process however that ends.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "redis_harness.h"

#define START(s, args)                                                         \
    do {                                                                       \
        if (rh_start((s), (args)) != 0)                                        \
            fail_msg("rh_start: %s", (s)->error);                              \
    } while (0)

/* Each test gets two servers, always stopped in the teardown, also when
 * an assertion failed half-way. */
struct fixture {
    rh_server a, b;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    if (!f)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = rh_stop(&f->a) | rh_stop(&f->b);

    free(f);
    return rc ? -1 : 0;
}

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void assert_status(redisReply *r, const char *want)
{
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STATUS)
        fail_msg("wanted status %s, got type %d (%s)", want, r->type,
                 r->str ? r->str : "");
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

static void assert_error_prefix(redisReply *r, const char *prefix)
{
    assert_non_null(r);
    if (r->type != REDIS_REPLY_ERROR)
        fail_msg("wanted an error %s..., got type %d", prefix, r->type);
    if (strncmp(r->str, prefix, strlen(prefix)) != 0)
        fail_msg("wanted an error %s..., got %s", prefix, r->str);
    freeReplyObject(r);
}

static int process_gone(pid_t pid)
{
    return kill(pid, 0) == -1 && errno == ESRCH;
}

static void assert_no_dir(const char *dir)
{
    struct stat st;

    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
}

/* ---- start, PING, stop ----------------------------------------------- */

static void start_ping_stop(void **state)
{
    struct fixture *f = *state;
    rh_server *s = &f->a;
    redisContext *c;
    redisReply *r;
    struct stat st;
    char dir[RH_DIR_SIZE];
    pid_t pid;

    START(s, NULL);
    assert_true(s->port > 0 && s->port < 65536);
    assert_true(s->pid > 0);
    assert_int_equal(stat(s->dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_string_equal(s->error, "");

    assert_status(rh_cmd(s, "PING"), "PONG");

    /* The settings the harness promises, seen from the server. */
    c = rh_connect(s);
    assert_non_null(c);
    r = redisCommand(c, "CONFIG GET bind");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[1]->str, "127.0.0.1");
    freeReplyObject(r);
    r = redisCommand(c, "CONFIG GET save");
    assert_non_null(r);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[1]->str, "");
    freeReplyObject(r);
    r = redisCommand(c, "CONFIG GET dir");
    assert_non_null(r);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[1]->str, s->dir);
    freeReplyObject(r);
    redisFree(c);

    pid = s->pid;
    snprintf(dir, sizeof dir, "%s", s->dir);
    assert_int_equal(rh_stop(s), 0);
    assert_int_equal(s->pid, 0);
    assert_true(process_gone(pid));
    assert_no_dir(dir);
    assert_string_equal(s->dir, "");

    /* Stopping again, or a server never started, is harmless. */
    assert_int_equal(rh_stop(s), 0);
    assert_int_equal(rh_stop(&f->b), 0);
    assert_null(rh_connect(s));
}

/* ---- PUBLISH to a blocking subscriber ------------------------------- */

static const char payload[] = {'a',  '\0', 'b',  '\r', '\n', 'c',
                               '\r', '\0', '\n', '\n', '\r', (char)0xff};

static redisContext *subscribe(const rh_server *s, const char *channel)
{
    redisContext *c = rh_connect(s);
    redisReply *r;

    assert_non_null(c);
    r = redisCommand(c, "SUBSCRIBE %s", channel);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "subscribe");
    assert_string_equal(r->element[1]->str, channel);
    freeReplyObject(r);
    return c;
}

static void publish_binary_to_subscriber(void **state)
{
    struct fixture *f = *state;
    rh_server *s = &f->a;
    redisContext *sub;
    redisReply *r = NULL;

    START(s, NULL);
    sub = subscribe(s, "room:1");

    assert_int_equal(rh_publish(s, "room:1", payload, sizeof payload), 1);
    /* Blocking read, bounded by the context's 2 s timeout. */
    assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "message");
    assert_string_equal(r->element[1]->str, "room:1");
    assert_int_equal(r->element[2]->type, REDIS_REPLY_STRING);
    assert_int_equal(r->element[2]->len, sizeof payload);
    assert_memory_equal(r->element[2]->str, payload, sizeof payload);
    freeReplyObject(r);

    /* An empty payload too; and nobody hears another channel. */
    assert_int_equal(rh_publish(s, "room:1", "", 0), 1);
    assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    assert_int_equal(r->element[2]->len, 0);
    freeReplyObject(r);
    assert_int_equal(rh_publish(s, "room:2", "x", 1), 0);

    redisFree(sub);
}

/* ---- PUBSUB NUMSUB / CHANNELS ---------------------------------------- */

struct numsub_is {
    const rh_server *s;
    const char *channel;
    long long want;
};

static int numsub_reached(void *arg)
{
    const struct numsub_is *n = arg;

    return rh_numsub(n->s, n->channel) == n->want;
}

static size_t channel_count(const rh_server *s)
{
    redisReply *r = rh_cmd(s, "PUBSUB CHANNELS");
    size_t n;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    n = r->elements;
    freeReplyObject(r);
    return n;
}

static void numsub_counts(void **state)
{
    struct fixture *f = *state;
    rh_server *s = &f->a;
    redisContext *a1, *a2, *b1;
    struct numsub_is n;

    START(s, NULL);
    assert_int_equal(rh_numsub(s, "A"), 0);
    assert_int_equal(channel_count(s), 0);

    a1 = subscribe(s, "A");
    a2 = subscribe(s, "A");
    b1 = subscribe(s, "B");
    /* SUBSCRIBE's reply came back: the server counts them already. */
    assert_int_equal(rh_numsub(s, "A"), 2);
    assert_int_equal(rh_numsub(s, "B"), 1);
    assert_int_equal(rh_numsub(s, "C"), 0);
    assert_int_equal(channel_count(s), 2);
    assert_int_equal(rh_publish(s, "A", "x", 1), 2);

    /* A disconnect is noticed by the server later: wait for it. */
    redisFree(a2);
    n.s = s;
    n.channel = "A";
    n.want = 1;
    assert_int_equal(rh_wait_until(numsub_reached, &n, 2000,
                                   "NUMSUB A == 1 after a disconnect"),
                     0);
    redisFree(a1);
    redisFree(b1);
    n.want = 0;
    assert_int_equal(rh_wait_until(numsub_reached, &n, 2000, "NUMSUB A == 0"),
                     0);
    n.channel = "B";
    assert_int_equal(rh_wait_until(numsub_reached, &n, 2000, "NUMSUB B == 0"),
                     0);
    assert_int_equal(channel_count(s), 0);
}

/* ---- cluster mode ------------------------------------------------------ */

/* CLUSTER INFO says the one node owns every slot and is ok. */
static void assert_cluster_ok(const rh_server *s)
{
    redisReply *r = rh_cmd(s, "CLUSTER INFO");

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, "cluster_state:ok"));
    assert_non_null(strstr(r->str, "cluster_slots_assigned:16384"));
    freeReplyObject(r);
}

/* RC_TEST_REDIS_CLUSTER=1: ready means cluster_state:ok, after a start, a
 * kill -9 and restart (nodes.conf kept) and a stop and restart (fresh
 * directory: the slots are assigned again); a script with flags touching
 * two slots is refused, as on any cluster. */
static void cluster_mode_slots(void **state)
{
    struct fixture *f = *state;
    rh_server *s = &f->a;
    redisReply *r;

    if (!rh_cluster_mode())
        skip();
    START(s, NULL);
    assert_cluster_ok(s);
    assert_int_equal(rh_kill9(s), 0);
    if (rh_restart(s) != 0)
        fail_msg("rh_restart: %s", s->error);
    assert_cluster_ok(s);
    assert_int_equal(rh_stop(s), 0);
    if (rh_restart(s) != 0)
        fail_msg("rh_restart: %s", s->error);
    assert_cluster_ok(s);
    /* With flags (#!lua): a script without them may touch any local key. */
    r = rh_cmd(s, "EVAL %s 1 %s", "#!lua\nreturn redis.call('GET', 'b{y}')",
               "a{x}");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* ---- kill -9 and restart on the same port ---------------------------- */

static void kill9_restart_same_port(void **state)
{
    struct fixture *f = *state;
    rh_server *s = &f->a;
    redisContext *old, *c;
    redisReply *r;
    int port, round;
    pid_t pid;

    START(s, NULL);
    port = s->port;
    old = rh_connect(s);
    assert_non_null(old);
    assert_status(redisCommand(old, "PING"), "PONG");

    for (round = 0; round < 3; round++) {
        pid = s->pid;
        assert_int_equal(rh_kill9(s), 0);
        assert_int_equal(s->pid, 0);
        assert_true(process_gone(pid));
        assert_null(rh_connect(s)); /* not running */

        if (rh_restart(s) != 0)
            fail_msg("rh_restart: %s", s->error);
        assert_int_equal(s->port, port);
        assert_true(s->pid > 0);
        assert_int_not_equal(s->pid, pid);

        c = rh_connect(s);
        assert_non_null(c);
        assert_status(redisCommand(c, "PING"), "PONG");
        redisFree(c);
    }

    /* The connection from before the crash is dead (an error, not a
     * SIGPIPE: the harness ignores SIGPIPE). */
    r = redisCommand(old, "PING");
    assert_null(r);
    assert_int_not_equal(old->err, 0);
    redisFree(old);

    /* Restarting a running server stops it first. */
    pid = s->pid;
    if (rh_restart(s) != 0)
        fail_msg("rh_restart: %s", s->error);
    assert_true(process_gone(pid));
    assert_int_equal(s->port, port);
    assert_status(rh_cmd(s, "PING"), "PONG");
}

static void restart_after_stop(void **state)
{
    struct fixture *f = *state;
    rh_server *s = &f->a;
    struct stat st;
    int port;

    START(s, NULL);
    port = s->port;
    assert_int_equal(rh_stop(s), 0);
    if (rh_restart(s) != 0)
        fail_msg("rh_restart: %s", s->error);
    assert_int_equal(s->port, port);
    assert_int_equal(stat(s->dir, &st), 0);
    assert_status(rh_cmd(s, "PING"), "PONG");
}

/* ---- requirepass ----------------------------------------------------- */

static void requirepass_noauth_then_auth(void **state)
{
    static const char *const args[] = {"--requirepass", "s3cret", NULL};
    struct fixture *f = *state;
    rh_server *s = &f->a;
    redisContext *c;

    START(s, args);

    c = rh_connect_raw(s);
    assert_non_null(c);
    assert_error_prefix(redisCommand(c, "PING"), "NOAUTH");
    assert_error_prefix(redisCommand(c, "AUTH wrong"), "WRONGPASS");
    assert_status(redisCommand(c, "AUTH s3cret"), "OK");
    assert_status(redisCommand(c, "PING"), "PONG");
    redisFree(c);

    /* rh_connect / rh_cmd / rh_publish authenticate by themselves. */
    c = rh_connect(s);
    assert_non_null(c);
    assert_status(redisCommand(c, "PING"), "PONG");
    redisFree(c);
    assert_status(rh_cmd(s, "PING"), "PONG");
    assert_int_equal(rh_publish(s, "ch", "x", 1), 0);

    /* A restart keeps the password. */
    assert_int_equal(rh_kill9(s), 0);
    if (rh_restart(s) != 0)
        fail_msg("rh_restart: %s", s->error);
    c = rh_connect_raw(s);
    assert_non_null(c);
    assert_error_prefix(redisCommand(c, "PING"), "NOAUTH");
    redisFree(c);
    assert_status(rh_cmd(s, "PING"), "PONG");
}

/* ---- two servers, distinct ------------------------------------------- */

static void two_servers_are_separate(void **state)
{
    struct fixture *f = *state;
    redisReply *r;

    START(&f->a, NULL);
    START(&f->b, NULL);
    assert_int_not_equal(f->a.port, f->b.port);
    assert_int_not_equal(f->a.pid, f->b.pid);
    assert_string_not_equal(f->a.dir, f->b.dir);
    assert_status(rh_cmd(&f->a, "SET k a"), "OK");
    r = rh_cmd(&f->b, "GET k");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
}

/* ---- failures are reported ------------------------------------------- */

static void bad_argument_fails_cleanly(void **state)
{
    static const char *const args[] = {"--no-such-directive", "x", NULL};
    struct fixture *f = *state;
    rh_server *s = &f->a;

    assert_int_equal(rh_start(s, args), -1);
    assert_int_equal(s->pid, 0);
    assert_string_equal(s->dir, "");
    /* What redis said is in the message. */
    if (!strstr(s->error, "exited with status 1") ||
        !strstr(s->error, "Bad directive"))
        fail_msg("unexpected error: %s", s->error);
}

static void missing_binary_fails_cleanly(void **state)
{
    struct fixture *f = *state;
    rh_server *s = &f->a;
    int rc;

    setenv("RH_REDIS_SERVER", "/nonexistent/redis-server", 1);
    rc = rh_start(s, NULL);
    unsetenv("RH_REDIS_SERVER");
    assert_int_equal(rc, -1);
    if (!strstr(s->error, "cannot run /nonexistent/redis-server"))
        fail_msg("unexpected error: %s", s->error);
    assert_int_equal(s->pid, 0);
}

/* ---- rh_wait_until --------------------------------------------------- */

static int third_time(void *arg)
{
    int *calls = arg;

    return ++*calls >= 3;
}

static int never(void *arg)
{
    int *calls = arg;

    ++*calls;
    return 0;
}

static void wait_until_polls_and_times_out(void **state)
{
    long long t0;
    int calls = 0;

    (void)state;
    assert_int_equal(rh_wait_until(third_time, &calls, 1000, "3 calls"), 0);
    assert_int_equal(calls, 3);

    calls = 0;
    t0 = mono_ms();
    assert_int_equal(rh_wait_until(never, &calls, 50, "never (expected)"), -1);
    assert_true(mono_ms() - t0 >= 50);
    assert_true(mono_ms() - t0 < 1000);
    assert_true(calls >= 2); /* at least the first and the last call */
}

/* ---- the server dies with the test process --------------------------- */

#ifdef __linux__
enum how_to_die { DIE_EXIT, DIE_SIGTERM, DIE_ABORT, DIE_SIGKILL };

struct started {
    pid_t pid;
    int port;
    char dir[RH_DIR_SIZE];
};

struct reaped {
    pid_t pid;
    int status;
};

/* The test process is a child subreaper (main), so an orphaned
 * redis-server comes to us and is reaped here, then ESRCH. */
static int reaped_or_gone(void *arg)
{
    struct reaped *r = arg;
    pid_t w = waitpid(r->pid, &r->status, WNOHANG);

    return w == r->pid || process_gone(r->pid);
}

static void dies_with_test_process(enum how_to_die how)
{
    struct started st;
    struct reaped child, server;
    struct pollfd pfd;
    int p[2], n;
    pid_t pid;

    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rh_server s;

        close(p[0]);
        memset(&st, 0, sizeof st);
        if (rh_start(&s, NULL) == 0) {
            st.pid = s.pid;
            st.port = s.port;
            snprintf(st.dir, sizeof st.dir, "%s", s.dir);
        }
        if (write(p[1], &st, sizeof st) != (ssize_t)sizeof st)
            _exit(3);
        close(p[1]);
        if (st.pid <= 0)
            _exit(2);
        switch (how) { /* never rh_stop */
        case DIE_EXIT:
            exit(0);
        case DIE_SIGTERM:
            raise(SIGTERM);
            break;
        case DIE_ABORT:
            abort();
        case DIE_SIGKILL:
            raise(SIGKILL);
            break;
        }
        _exit(4);
    }
    close(p[1]);
    pfd.fd = p[0];
    pfd.events = POLLIN;
    assert_int_equal(poll(&pfd, 1, 15000), 1);
    n = (int)read(p[0], &st, sizeof st);
    close(p[0]);
    assert_int_equal(n, (int)sizeof st);
    assert_true(st.pid > 0);

    child.pid = pid;
    assert_int_equal(
        rh_wait_until(reaped_or_gone, &child, 10000, "the test child to end"),
        0);
    switch (how) {
    case DIE_EXIT:
        assert_true(WIFEXITED(child.status));
        assert_int_equal(WEXITSTATUS(child.status), 0);
        break;
    case DIE_SIGTERM:
        assert_true(WIFSIGNALED(child.status));
        assert_int_equal(WTERMSIG(child.status), SIGTERM);
        break;
    case DIE_ABORT:
        assert_true(WIFSIGNALED(child.status));
        assert_int_equal(WTERMSIG(child.status), SIGABRT);
        break;
    case DIE_SIGKILL:
        assert_true(WIFSIGNALED(child.status));
        assert_int_equal(WTERMSIG(child.status), SIGKILL);
        break;
    }

    server.pid = st.pid;
    assert_int_equal(rh_wait_until(reaped_or_gone, &server, 5000,
                                   "the orphaned redis-server to die"),
                     0);
    assert_true(process_gone(st.pid));

    if (how == DIE_SIGKILL) {
        /* Nothing ran in the child to clean its directory: we do. */
        char log[RH_DIR_SIZE + 16];

        snprintf(log, sizeof log, "%s/redis.log", st.dir);
        unlink(log);
        snprintf(log, sizeof log, "%s/nodes.conf", st.dir); /* cluster mode */
        unlink(log);
        rmdir(st.dir);
    }
    assert_no_dir(st.dir);
}

static void dies_on_exit_without_stop(void **state)
{
    (void)state;
    dies_with_test_process(DIE_EXIT);
}

static void dies_on_sigterm(void **state)
{
    (void)state;
    dies_with_test_process(DIE_SIGTERM);
}

static void dies_on_abort(void **state)
{
    (void)state;
    dies_with_test_process(DIE_ABORT);
}

static void dies_on_sigkill(void **state)
{
    (void)state;
    dies_with_test_process(DIE_SIGKILL);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(start_ping_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(publish_binary_to_subscriber, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(numsub_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(cluster_mode_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(kill9_restart_same_port, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(restart_after_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(requirepass_noauth_then_auth, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(two_servers_are_separate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_argument_fails_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(missing_binary_fails_cleanly, setup,
                                        teardown),
        cmocka_unit_test(wait_until_polls_and_times_out),
#ifdef __linux__
        cmocka_unit_test(dies_on_exit_without_stop),
        cmocka_unit_test(dies_on_sigterm),
        cmocka_unit_test(dies_on_abort),
        cmocka_unit_test(dies_on_sigkill),
#endif
    };

#ifdef __linux__
    /* Orphaned grandchildren (the servers of the dies_* children) are
     * re-parented to us, so they can be reaped and checked for ESRCH. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
#endif
    return cmocka_run_group_tests(tests, NULL, NULL);
}
