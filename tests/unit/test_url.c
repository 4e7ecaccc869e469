/*
 * rc_redis_url_parse (roomcast/libevent.h): the accepted forms, the
 * defaults, percent-decoding of user and password, and the errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <roomcast/url.h>

/* Parse url, which must succeed. */
static rc_redis_url ok_(const char *url, const char *file, int line)
{
    rc_redis_url u;
    int rv;

    memset(&u, 0x5a, sizeof u); /* garbage: the parser must fill it all */
    rv = rc_redis_url_parse(url, &u);
    if (rv != 0)
        fail_msg("%s:%d: \"%s\": expected 0, got %d (%s)", file, line, url, rv,
                 rc_strerror(rv));
    return u;
}
#define ok(url) ok_((url), __FILE__, __LINE__)

/* Parse url, which must fail with RC_EURL. */
static void bad_(const char *url, const char *file, int line)
{
    rc_redis_url u;
    int rv;

    memset(&u, 0x5a, sizeof u);
    rv = rc_redis_url_parse(url, &u);
    if (rv != RC_EURL)
        fail_msg("%s:%d: \"%s\": expected RC_EURL (%d), got %d", file, line,
                 url, RC_EURL, rv);
}
#define bad(url) bad_((url), __FILE__, __LINE__)

static void host_only_defaults(void **state)
{
    rc_redis_url u;

    (void)state;
    u = ok("redis://localhost");
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.path, "");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");

    u = ok("redis://127.0.0.1");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
}

static void host_port(void **state)
{
    rc_redis_url u;

    (void)state;
    u = ok("redis://127.0.0.1:6380");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");

    u = ok("redis://redis-1.example.com:1");
    assert_string_equal(u.host, "redis-1.example.com");
    assert_int_equal(u.port, 1);

    u = ok("redis://h:65535");
    assert_int_equal(u.port, 65535);
}

static void password_port_db(void **state)
{
    rc_redis_url u;

    (void)state;
    u = ok("redis://:s3cret@10.0.0.5:7000/3");
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s3cret");
    assert_int_equal(u.db, 3);
    assert_string_equal(u.path, "");
}

static void user_password_db(void **state)
{
    rc_redis_url u;

    (void)state;
    u = ok("redis://alice:pw@cache/0");
    assert_string_equal(u.host, "cache");
    assert_int_equal(u.port, 6379);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 0);

    u = ok("redis://alice:pw@cache/15");
    assert_int_equal(u.db, 15);
}

static void percent_escapes(void **state)
{
    rc_redis_url u;

    (void)state;
    u = ok("redis://us%40er:p%40ss%3Aw%2fd@host:6379/1");
    assert_string_equal(u.user, "us@er");
    assert_string_equal(u.password, "p@ss:w/d");
    assert_string_equal(u.host, "host");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 1);

    u = ok("redis://:%25%20x@h");
    assert_string_equal(u.password, "% x");

    /* broken escapes */
    bad("redis://:p%4@h");
    bad("redis://:p%@h");
    bad("redis://:p%zz@h");
    /* an escaped NUL would truncate the password */
    bad("redis://:p%00x@h");
}

static void ipv6_brackets(void **state)
{
    rc_redis_url u;

    (void)state;
    u = ok("redis://[::1]");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6379);

    u = ok("redis://[::1]:6390/2");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 2);

    u = ok("redis://:pw@[fe80::1:2]:7000");
    assert_string_equal(u.host, "fe80::1:2");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.port, 7000);

    bad("redis://[::1");    /* unclosed */
    bad("redis://[]:6379"); /* empty */
    bad("redis://[::1]x");  /* garbage after ']' */
    bad("redis://[::1]:");  /* empty port */
}

static void unix_socket(void **state)
{
    rc_redis_url u;

    (void)state;
    u = ok("unix:///tmp/x.sock");
    assert_string_equal(u.path, "/tmp/x.sock");
    assert_string_equal(u.host, "");
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_string_equal(u.user, "");

    u = ok("unix:///tmp/x.sock?db=2");
    assert_string_equal(u.path, "/tmp/x.sock");
    assert_string_equal(u.host, "");
    assert_int_equal(u.db, 2);

    bad("unix://");                 /* no path */
    bad("unix://tmp/x.sock");       /* relative */
    bad("unix:///tmp/x.sock?db=");  /* empty db */
    bad("unix:///tmp/x.sock?db=x"); /* non-digits */
    bad("unix:///tmp/x.sock?db=-1");
    bad("unix:///tmp/x.sock?foo=1"); /* unknown parameter */
}

static void scheme_and_host_errors(void **state)
{
    (void)state;
    bad("");
    bad("http://localhost:6379");
    bad("rediss://localhost"); /* TLS is not supported */
    bad("REDIS://localhost");
    bad("localhost:6379");
    bad("redis:/localhost");
    bad("redis://");
    bad("redis://:6379");
    bad("redis://:pw@");
    bad("redis://:pw@:6379/0");
    bad("redis:///0");
}

static void port_errors(void **state)
{
    (void)state;
    bad("redis://h:0");
    bad("redis://h:70000");
    bad("redis://h:65536");
    bad("redis://h:-1");
    bad("redis://h:abc");
    bad("redis://h:63a9");
    bad("redis://h:");
    bad("redis://h: 6379");
    bad("redis://h:99999999999999999999"); /* no overflow into range */
    bad("redis://h:4294973675");           /* 2^32 + 6379 */
}

static void db_errors(void **state)
{
    (void)state;
    bad("redis://h/-1");
    bad("redis://h:6379/-1");
    bad("redis://h/x");
    bad("redis://h/1x");
    bad("redis://h/0x1");
    bad("redis://h/ 1");
    bad("redis://h/99999999999999999999");
    bad("redis://h/4294967296"); /* 2^32 */
}

static void trailing_garbage(void **state)
{
    (void)state;
    bad("redis://h:6379/0/1");
    bad("redis://h:6379/0?x=1");
    bad("redis://h:6379/0 ");
    bad("redis://h:6379 ");
    bad("redis://h ");
    bad("redis://h?db=1");
    bad("redis://h#frag");
    bad("redis://h:6379:6380");
    bad("redis://bad host");
}

static void too_long(void **state)
{
    char url[1024];
    char long_host[300];
    char long_path[200];
    char long_pw[300];
    rc_redis_url u;

    (void)state;

    /* a 255-byte host fits host[256]; 256 bytes do not */
    memset(long_host, 'a', 255);
    long_host[255] = '\0';
    snprintf(url, sizeof url, "redis://%s:6379", long_host);
    u = ok(url);
    assert_int_equal(strlen(u.host), 255);
    memset(long_host, 'a', 256);
    long_host[256] = '\0';
    snprintf(url, sizeof url, "redis://%s:6379", long_host);
    bad(url);

    /* a 107-byte path fits path[108]; 108 bytes do not */
    long_path[0] = '/';
    memset(long_path + 1, 'p', 106);
    long_path[107] = '\0';
    snprintf(url, sizeof url, "unix://%s", long_path);
    u = ok(url);
    assert_int_equal(strlen(u.path), 107);
    long_path[0] = '/';
    memset(long_path + 1, 'p', 107);
    long_path[108] = '\0';
    snprintf(url, sizeof url, "unix://%s?db=1", long_path);
    bad(url);

    /* a password of 256 decoded bytes does not fit password[256] */
    memset(long_pw, 'w', 256);
    long_pw[256] = '\0';
    snprintf(url, sizeof url, "redis://:%s@h", long_pw);
    bad(url);
    long_pw[255] = '\0';
    snprintf(url, sizeof url, "redis://:%s@h", long_pw);
    u = ok(url);
    assert_int_equal(strlen(u.password), 255);
}

static void null_arguments(void **state)
{
    rc_redis_url u;

    (void)state;
    assert_int_equal(rc_redis_url_parse(NULL, &u), RC_EINVAL);
    assert_int_equal(rc_redis_url_parse("redis://h", NULL), RC_EINVAL);
    assert_int_equal(rc_redis_url_parse(NULL, NULL), RC_EINVAL);
}

static void reparse_resets_fields(void **state)
{
    rc_redis_url u;

    (void)state;
    /* a second parse into the same struct leaves nothing of the first */
    assert_int_equal(rc_redis_url_parse("redis://u:p@h1:7000/5", &u), 0);
    assert_int_equal(rc_redis_url_parse("redis://h2", &u), 0);
    assert_string_equal(u.host, "h2");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
    assert_int_equal(rc_redis_url_parse("unix:///s", &u), 0);
    assert_string_equal(u.host, "");
    assert_string_equal(u.path, "/s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_only_defaults),
        cmocka_unit_test(host_port),
        cmocka_unit_test(password_port_db),
        cmocka_unit_test(user_password_db),
        cmocka_unit_test(percent_escapes),
        cmocka_unit_test(ipv6_brackets),
        cmocka_unit_test(unix_socket),
        cmocka_unit_test(scheme_and_host_errors),
        cmocka_unit_test(port_errors),
        cmocka_unit_test(db_errors),
        cmocka_unit_test(trailing_garbage),
        cmocka_unit_test(too_long),
        cmocka_unit_test(null_arguments),
        cmocka_unit_test(reparse_resets_fields),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
