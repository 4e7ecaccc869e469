/*
 * rediss:// links against a real redis-server listening for TLS
 * (topo_harness: certificates made by the openssl command line, a server
 * with --tls-port): a verified connection carries rooms both ways; a
 * wrong CA, a name the certificate does not carry, a missing client
 * certificate and a CA file that cannot be read each keep the link DOWN
 * with a reason that says so; after kill -9 and a restart of Redis the
 * links come back over TLS and the rooms are ready again.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_nodes.h"
#include "topo_harness.h"

typedef struct tls_world {
    char dir[256]; /* certificates */
    int port;      /* the TLS port */
} tls_world;

static tls_world tw;

static int setup_(void **state, int client_certs)
{
    ts_world *w;

    if (ts_world_setup(state, NULL, 0) != 0)
        return -1;
    w = *state;
    snprintf(tw.dir, sizeof tw.dir, "%s/rc-tls-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tw.dir) == NULL || th_tls_certs(tw.dir) != 0)
        return -1;
    tw.port = th_tls_start(&w->rs, tw.dir, client_certs);
    return tw.port > 0 ? 0 : -1;
}

static int setup(void **state)
{
    return setup_(state, 0);
}

static int setup_client_certs(void **state)
{
    return setup_(state, 1);
}

static int teardown(void **state)
{
    static const char *const files[] = {
        "ca.crt",       "ca.key",       "server.crt", "server.key",
        "client.crt",   "client.key",   "wrong.crt",  "wrong.key",
        "other-ca.crt", "other-ca.key", "ca.srl",     "other-ca.srl"};
    char path[512];
    size_t i;
    int rc = ts_world_teardown(state);

    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tw.dir, files[i]);
        (void)unlink(path);
    }
    (void)rmdir(tw.dir);
    return rc;
}

/* A rediss:// URL to the TLS port: host, then options after '?'. */
static void url_of(char *buf, size_t cap, const char *host, const char *opts)
{
    snprintf(buf, cap, "rediss://%s:%d?%s", host, tw.port, opts);
}

/* The link stays DOWN, and its reason comes to hold want. */
static void refused(ts_world *w, const char *url, const char *want)
{
    ts_node *n = ts_node_link_quick(w, 0, "X", url);

    WAIT_FOR(w, strstr(rc_link_reason(n->link), want) != NULL,
             "the link's reason to say why");
    print_message("refused: \"%s\"\n", rc_link_reason(n->link));
    assert_int_equal(rc_link_state(n->link), RC_LINK_DOWN);
    assert_int_equal(n->ups, 0);
    assert_true(rc_link_failures(n->link) > 0);
}

/* ===================================================================== */

static void t_verified(void **state)
{
    ts_world *w = *state;
    char url[1200], opts[900];
    ts_node *a, *b;
    ts_rec *ra, *rb;

    snprintf(opts, sizeof opts, "cacert=%s/ca.crt", tw.dir);
    url_of(url, sizeof url, "localhost", opts);
    a = ts_node_link_quick(w, 0, "A", url);
    b = ts_node_link_quick(w, 1, "B", url);
    ra = ts_add_conn(a, "a1");
    rb = ts_add_conn(b, "b1");
    ts_join(ra, "tls");
    ts_join(rb, "tls");
    WAIT_FOR(w, ts_link_up(a) && ts_link_up(b), "both links UP over TLS");
    ts_deliver(w, a, "tls", rb, "{\"from\":\"a\"}");
    ts_deliver(w, b, "tls", ra, "{\"from\":\"b\"}");
    /* By IP address: the certificate names 127.0.0.1 too. */
    ts_node_close(a);
    url_of(url, sizeof url, "127.0.0.1", opts);
    a = ts_node_link_quick(w, 0, "A2", url);
    ra = ts_add_conn(a, "a2");
    ts_join(ra, "tls");
    WAIT_FOR(w, ts_link_up(a) && rc_room_is_ready(a->a, "tls") == 1,
             "a link by IP address UP and its room ready");
    ts_deliver(w, b, "tls", ra, "{\"from\":\"b\",\"n\":2}");
    ts_assert_clean(&w->problems);
}

static void t_wrong_ca(void **state)
{
    char url[1200], opts[900];

    snprintf(opts, sizeof opts, "cacert=%s/other-ca.crt", tw.dir);
    url_of(url, sizeof url, "localhost", opts);
    refused(*state, url, "certificate verify failed");
}

static void t_hostname_mismatch(void **state)
{
    char url[1200], opts[900];

    /* The server's certificate is good, but not for this name. */
    snprintf(opts, sizeof opts, "cacert=%s/ca.crt&sni=redis.example", tw.dir);
    url_of(url, sizeof url, "127.0.0.1", opts);
    refused(*state, url, "hostname mismatch");
}

static void t_ca_unreadable(void **state)
{
    char url[1200], opts[900];

    snprintf(opts, sizeof opts, "cacert=%s/no-such-ca.crt", tw.dir);
    url_of(url, sizeof url, "localhost", opts);
    refused(*state, url, "cannot load CA");
}

static void t_client_cert(void **state)
{
    ts_world *w = *state;
    char url[1200], opts[900];
    ts_node *n;

    snprintf(opts, sizeof opts, "cacert=%s/ca.crt", tw.dir);
    url_of(url, sizeof url, "localhost", opts);
    refused(w, url, "TLS");
    ts_node_close(&w->nodes[0]);
    snprintf(opts, sizeof opts,
             "cacert=%s/ca.crt&cert=%s/client.crt&key=%s/client.key", tw.dir,
             tw.dir, tw.dir);
    url_of(url, sizeof url, "localhost", opts);
    n = ts_node_link_quick(w, 1, "C", url);
    WAIT_FOR(w, ts_link_up(n), "the link with a client certificate UP");
    ts_assert_clean(&w->problems);
}

static void t_reconnect(void **state)
{
    ts_world *w = *state;
    char url[1200], opts[900];
    ts_node *a, *b;
    ts_rec *rb;
    unsigned long lost;

    snprintf(opts, sizeof opts, "cacert=%s/ca.crt", tw.dir);
    url_of(url, sizeof url, "localhost", opts);
    a = ts_node_link_quick(w, 0, "A", url);
    b = ts_node_link_quick(w, 1, "B", url);
    rb = ts_add_conn(b, "b1");
    ts_join(rb, "r");
    WAIT_FOR(w, ts_link_up(a) && rc_room_is_ready(b->a, "r") == 1,
             "links UP and the room ready");
    ts_deliver(w, a, "r", rb, "{\"n\":1}");
    lost = b->lost_events;
    assert_int_equal(rh_kill9(&w->rs), 0);
    WAIT_FOR(w, !ts_link_up(a) && !ts_link_up(b) && b->lost_events > lost,
             "both links DOWN and the room LOST after kill -9");
    assert_int_equal(rh_restart(&w->rs), 0);
    WAIT_FOR(w,
             ts_link_up(a) && ts_link_up(b) && rc_room_is_ready(b->a, "r") == 1,
             "both links UP again over TLS and the room ready");
    ts_deliver(w, a, "r", rb, "{\"n\":2}");
    assert_true(rc_link_connects(b->link) >= 2);
    ts_assert_clean(&w->problems);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(t_verified),
        T(t_wrong_ca),
        T(t_hostname_mismatch),
        T(t_ca_unreadable),
        cmocka_unit_test_setup_teardown(t_client_cert, setup_client_certs,
                                        teardown),
        T(t_reconnect),
    };

    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "openssl not found: TLS tests skipped\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
