/* Rate limits without Redis: the GCRA of a local bucket (exact counts
 * over time, the wait it tells), the local share an adapter without Redis
 * uses, and the bucket keys of addresses (an IPv6 /64 is one key). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <roomcast/roomcast.h>

static void t_gcra_counts(void **state)
{
    rc_rate r = {10.0, 5}; /* 10/s, 5 at once */
    rc_gcra g = {0};
    unsigned long long t = 1000000, retry = 0, now;
    int ok = 0;

    (void)state;
    /* The burst at once, then nothing. */
    while (rc_gcra_take(&g, &r, t, &retry) == 1)
        ok++;
    assert_int_equal(ok, 5);
    assert_true(retry >= 1 && retry <= 100);
    /* Then exactly one per 100 ms, asked 10 times as often: the burst
     * spent the first interval, so 29 more in the 3 s from t (at t+100,
     * t+200, ... t+2900 ms). */
    for (now = t; now < t + 3000000; now += 10000)
        ok += rc_gcra_take(&g, &r, now, NULL);
    assert_int_equal(ok, 5 + 29);
    assert_int_equal(rc_gcra_take(NULL, &r, t, NULL), RC_EINVAL);
    r.per_second = 0;
    assert_int_equal(rc_gcra_take(&g, &r, t, NULL), RC_EINVAL);
}

static void t_local_share(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "n");
    rc_rate r = {2.0, 3};
    unsigned long long retry = 0;
    rc_counters c;
    int i, ok = 0;

    (void)state;
    assert_non_null(a);
    rc_adapter_tick(a, 5000);
    for (i = 0; i < 10; i++)
        if (rc_rate_take(a, "k", &r, (rc_rate_cb)1, NULL, &retry) == 1)
            ok++;
    assert_int_equal(ok, 3);
    assert_int_equal(rc_rate_take(a, "k", &r, (rc_rate_cb)1, NULL, &retry),
                     RC_ELIMITED);
    assert_true(retry >= 1 && retry <= 500);
    assert_int_equal(rc_rate_take(a, "other", &r, (rc_rate_cb)1, NULL, NULL),
                     1);
    rc_adapter_tick(a, 5500); /* half a second: one more */
    assert_int_equal(rc_rate_take(a, "k", &r, (rc_rate_cb)1, NULL, NULL), 1);
    assert_int_equal(rc_rate_take(a, "k", &r, (rc_rate_cb)1, NULL, NULL),
                     RC_ELIMITED);
    rc_adapter_counters(a, &c, sizeof c);
    assert_int_equal(c.rate_local, 14); /* every check said it was local */
    rc_adapter_free(a);
}

static void t_addr_keys(void **state)
{
    char a[64], b[64];

    (void)state;
    assert_int_equal(rc_rate_addr_key("192.0.2.7", a, sizeof a), 0);
    assert_string_equal(a, "ip4:192.0.2.7");
    assert_int_equal(rc_rate_addr_key("2001:db8:1:2:aaaa::1", a, sizeof a), 0);
    assert_int_equal(
        rc_rate_addr_key("2001:db8:1:2:bbbb:cccc:dddd:eeee", b, sizeof b), 0);
    assert_string_equal(a, b); /* one /64, one bucket */
    assert_string_equal(a, "ip6:20010db800010002/64");
    assert_int_equal(rc_rate_addr_key("2001:db8:1:3::1", b, sizeof b), 0);
    assert_true(strcmp(a, b) != 0);
    assert_int_equal(rc_rate_addr_key("not an address", a, sizeof a),
                     RC_EINVAL);
    assert_int_equal(rc_rate_addr_key("192.0.2.7", a, 8), RC_ENOBUFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_gcra_counts),
        cmocka_unit_test(t_local_share),
        cmocka_unit_test(t_addr_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
