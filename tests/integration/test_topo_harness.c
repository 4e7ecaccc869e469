/*
 * The topology harness, proved against real servers: a 3-master/3-replica
 * cluster (slot coverage, a live slot migration with keys, CLUSTER
 * FAILOVER, a master killed and replaced, the dead node back as a
 * replica), three sentinels failing a killed master over, and TLS
 * certificates a redis-cli --tls accepts with the right CA and refuses
 * with another. Prints how long each operation took.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "topo_harness.h"

#ifndef TH_REDIS_CLI_PATH
#define TH_REDIS_CLI_PATH "redis-cli"
#endif

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define TIMED(what, call)                                                      \
    do {                                                                       \
        long long t0_ = mono_ms();                                             \
        if ((call) != 0)                                                       \
            fail_msg("%s failed", what);                                       \
        printf("    %-28s %5lld ms\n", what, mono_ms() - t0_);                 \
        fflush(stdout);                                                        \
    } while (0)

/* The string reply of a command on port's server, or "" (static). */
static const char *str_cmd(const rh_server *s, const char *fmt, const char *a)
{
    static char buf[256];
    redisReply *r = rh_cmd(s, fmt, a);

    buf[0] = '\0';
    if (r && r->str)
        snprintf(buf, sizeof buf, "%s", r->str);
    if (r)
        freeReplyObject(r);
    return buf;
}

/* ---- the cluster ----------------------------------------------------- */

static th_cluster cl;

static int cluster_teardown(void **state)
{
    (void)state;
    return th_cluster_stop(&cl) ? -1 : 0;
}

static void check_roles(const th_cluster *c)
{
    int m, k, masters = 0;

    for (m = 0; m < c->nmasters; m++) {
        assert_true(c->master[m] >= 0);
        assert_true(c->node[c->master[m]].is_master);
        assert_int_equal(c->node[c->master[m]].shard, m);
    }
    for (k = 0; k < c->nnodes; k++)
        masters += c->node[k].alive && c->node[k].is_master;
    assert_int_equal(masters, c->nmasters);
}

/* TAGGED_KEYS keys "{topo}k<i>" = "v<i>" (one slot, more than one
 * MIGRATE batch), written on their owner; the slot. */
#define TAGGED_KEYS 250

static int tagged_slot(th_cluster *c)
{
    int slot = th_cluster_keyslot(c, "{topo}k0"), i;
    int owner = th_cluster_node_of_slot(c, slot);
    redisContext *ctx;

    assert_true(slot >= 0 && owner >= 0);
    ctx = rh_connect(&c->node[owner].rh);
    assert_non_null(ctx);
    for (i = 0; i < TAGGED_KEYS; i++) {
        redisReply *r = redisCommand(ctx, "SET {topo}k%d v%d", i, i);

        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    redisFree(ctx);
    return slot;
}

static void cluster_life(void **state)
{
    int slot, from, to, old, k, m;
    redisReply *r;

    (void)state;
    TIMED("cluster start 3x1", th_cluster_start(&cl, 3, 1));
    assert_int_equal(cl.nnodes, 6);
    check_roles(&cl);
    r = rh_cmd(&cl.node[0].rh, "CLUSTER INFO");
    assert_non_null(r);
    assert_non_null(strstr(r->str, "cluster_slots_ok:16384"));
    freeReplyObject(r);
    for (k = 0; k < 3; k++) /* the even split */
        assert_int_equal(th_cluster_shard_of_slot(&cl, k * 5461 + 1), k);

    /* A slot with keys moves, and the keys with it. */
    slot = tagged_slot(&cl);
    from = th_cluster_shard_of_slot(&cl, slot);
    to = (from + 1) % 3;
    TIMED("slot migration (250 keys)", th_cluster_migrate_slot(&cl, slot, to));
    assert_int_equal(th_cluster_shard_of_slot(&cl, slot), to);
    assert_int_equal(th_cluster_master_of_key(&cl, "{topo}k1"),
                     cl.node[cl.master[to]].rh.port);
    assert_string_equal(
        str_cmd(&cl.node[cl.master[to]].rh, "GET %s", "{topo}k1"), "v1");
    assert_memory_equal(
        str_cmd(&cl.node[cl.master[from]].rh, "GET %s", "{topo}k1"), "MOVED",
        5);
    r = rh_cmd(&cl.node[cl.master[to]].rh, "CLUSTER COUNTKEYSINSLOT %d", slot);
    assert_non_null(r);
    assert_int_equal(r->integer, TAGGED_KEYS);
    freeReplyObject(r);

    /* A manual failover: the replica leads, the old master follows. */
    old = cl.master[0];
    TIMED("CLUSTER FAILOVER", th_cluster_failover(&cl, 0));
    assert_int_not_equal(cl.master[0], old);
    assert_false(cl.node[old].is_master);
    check_roles(&cl);

    /* kill -9 the master holding the keys: its replica takes over. */
    m = to;
    old = cl.master[m];
    TIMED("kill master + recovery", th_cluster_kill_master(&cl, m));
    assert_false(cl.node[old].alive);
    assert_int_not_equal(cl.master[m], old);
    check_roles(&cl);
    assert_string_equal(
        str_cmd(&cl.node[cl.master[m]].rh, "GET %s", "{topo}k249"), "v249");

    /* The dead master comes back as its replacement's replica. */
    TIMED("restart the killed master", th_cluster_restart_node(&cl, old));
    assert_true(cl.node[old].alive);
    assert_false(cl.node[old].is_master);
    assert_int_equal(cl.node[old].shard, m);
    check_roles(&cl);

    TIMED("cluster stop", th_cluster_stop(&cl));
    assert_int_equal(cl.node[0].rh.pid, 0);
}

/* ---- sentinel -------------------------------------------------------- */

static th_sentinel sn;

static int sentinel_teardown(void **state)
{
    (void)state;
    return th_sentinel_stop(&sn) ? -1 : 0;
}

static void sentinel_failover(void **state)
{
    int old_port, i;
    redisReply *r;

    (void)state;
    TIMED("sentinel start (3)", th_sentinel_start(&sn, 3));
    assert_string_equal(sn.name, "mymaster");
    old_port = th_sentinel_master_port(&sn);
    for (i = 0; i < 3; i++) {
        r = rh_cmd(&sn.sentinel[i], "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                   "mymaster");
        assert_non_null(r);
        assert_int_equal(r->elements, 2);
        assert_string_equal(r->element[0]->str, "127.0.0.1");
        assert_int_equal(atoi(r->element[1]->str), old_port);
        freeReplyObject(r);
    }
    TIMED("sentinel failover", th_sentinel_kill_master(&sn));
    assert_int_not_equal(th_sentinel_master_port(&sn), old_port);
    assert_int_equal(sn.node[1 - sn.master].pid, 0);
    TIMED("old master back as replica",
          th_sentinel_restart_node(&sn, 1 - sn.master));
    assert_int_equal(th_sentinel_replica_port(&sn), old_port);
    /* Ready for a second failover, back to the first node. */
    TIMED("second sentinel failover", th_sentinel_kill_master(&sn));
    assert_int_equal(th_sentinel_master_port(&sn), old_port);
    TIMED("sentinel stop", th_sentinel_stop(&sn));
}

/* ---- TLS ------------------------------------------------------------- */

static char certdir[RH_DIR_SIZE];
static rh_server tls;

static int tls_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");

    (void)state;
    snprintf(certdir, sizeof certdir, "%s/th-certs-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(certdir) ? 0 : -1;
}

static int tls_teardown(void **state)
{
    static const char *const files[] = {
        "ca.crt",       "ca.key",      "server.crt", "server.key",
        "client.crt",   "client.key",  "wrong.crt",  "wrong.key",
        "other-ca.crt", "other-ca.key"};
    char path[RH_DIR_SIZE + 32];
    size_t i;
    int rc = rh_stop(&tls);

    (void)state;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", certdir, files[i]);
        unlink(path);
    }
    rmdir(certdir);
    return rc ? -1 : 0;
}

static int have(const char *bin, const char *arg)
{
    const char *argv[] = {bin, arg, NULL};
    char out[256];

    return th_run(argv, out, sizeof out, TH_RUN_MS) >= 0 &&
           !strstr(out, "cannot execute");
}

/* redis-cli --tls ... PING against port with CA ca and, if client, the
 * client certificate; its exit status, output in out. */
static int tls_ping(int port, const char *ca, int client, char *out, size_t cap)
{
    char p[16], cacert[RH_DIR_SIZE + 32], cert[RH_DIR_SIZE + 32],
        key[RH_DIR_SIZE + 32];
    const char *argv[16] = {
        TH_REDIS_CLI_PATH, "--tls", "--cacert", cacert, "-h",
        "127.0.0.1",       "-p",    p};
    int n = 8;

    snprintf(p, sizeof p, "%d", port);
    snprintf(cacert, sizeof cacert, "%s/%s", certdir, ca);
    snprintf(cert, sizeof cert, "%s/client.crt", certdir);
    snprintf(key, sizeof key, "%s/client.key", certdir);
    if (client) {
        argv[n++] = "--cert";
        argv[n++] = cert;
        argv[n++] = "--key";
        argv[n++] = key;
    }
    argv[n++] = "PING";
    argv[n] = NULL;
    return th_run(argv, out, cap, TH_RUN_MS);
}

/* openssl verify -CAfile <ca> [-verify_hostname h] <crt>: exit status. */
static int verify(const char *ca, const char *host, const char *crt)
{
    char cafile[RH_DIR_SIZE + 32], file[RH_DIR_SIZE + 32], out[1024];
    const char *argv[] = {th_openssl(),
                          "verify",
                          "-CAfile",
                          cafile,
                          host ? "-verify_hostname" : file,
                          host ? host : NULL,
                          file,
                          NULL};

    snprintf(cafile, sizeof cafile, "%s/%s", certdir, ca);
    snprintf(file, sizeof file, "%s/%s", certdir, crt);
    return th_run(argv, out, sizeof out, TH_RUN_MS);
}

static void tls_certs_and_server(void **state)
{
    char out[2048];
    int port;

    (void)state;
    if (!have(th_openssl(), "version") ||
        !have(TH_REDIS_CLI_PATH, "--version")) {
        printf("    TLS: no openssl or redis-cli: skipped\n");
        skip();
    }
    TIMED("th_tls_certs", th_tls_certs(certdir));
    assert_int_equal(verify("ca.crt", "localhost", "server.crt"), 0);
    assert_int_equal(verify("ca.crt", NULL, "client.crt"), 0);
    assert_int_equal(verify("ca.crt", NULL, "wrong.crt"), 0);
    assert_int_not_equal(verify("ca.crt", "localhost", "wrong.crt"), 0);
    assert_int_not_equal(verify("other-ca.crt", NULL, "server.crt"), 0);

    port = th_tls_start(&tls, certdir, 0);
    if (port < 0)
        fail_msg("th_tls_start: %s", tls.error);
    assert_int_equal(tls_ping(port, "ca.crt", 0, out, sizeof out), 0);
    assert_string_equal(out, "PONG\n");
    assert_int_not_equal(tls_ping(port, "other-ca.crt", 0, out, sizeof out), 0);
    printf("    other CA: %s", out);
    assert_int_equal(rh_stop(&tls), 0);

    port = th_tls_start(&tls, certdir, 1);
    if (port < 0)
        fail_msg("th_tls_start: %s", tls.error);
    tls_ping(port, "ca.crt", 0, out, sizeof out);
    assert_null(strstr(out, "PONG"));
    assert_int_equal(tls_ping(port, "ca.crt", 1, out, sizeof out), 0);
    assert_string_equal(out, "PONG\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(cluster_life, cluster_teardown),
        cmocka_unit_test_teardown(sentinel_failover, sentinel_teardown),
        cmocka_unit_test_setup_teardown(tls_certs_and_server, tls_setup,
                                        tls_teardown),
    };
    const char *argv[] = {th_redis_server(), "--version", NULL};
    char out[256];

    if (th_run(argv, out, sizeof out, TH_RUN_MS) != 0) {
        out[strcspn(out, "\n")] = '\0';
        printf("test_topo_harness: cannot run %s (%s): skipped\n",
               th_redis_server(), out);
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
