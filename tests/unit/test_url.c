/*
 * rc_redis_url_parse (roomcast/url.h): the accepted forms (one server,
 * TLS, sentinels, cluster seeds, Unix sockets), the defaults, the query
 * options, percent-decoding, and the errors.
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

/* Parse url, which must fail with RC_EURL and leave *out zeroed. */
static void bad_(const char *url, const char *file, int line)
{
    static const rc_redis_url zero;
    rc_redis_url u;
    int rv;

    memset(&u, 0x5a, sizeof u);
    rv = rc_redis_url_parse(url, &u);
    if (rv != RC_EURL)
        fail_msg("%s:%d: \"%s\": expected RC_EURL (%d), got %d", file, line,
                 url, RC_EURL, rv);
    if (memcmp(&u, &zero, sizeof u) != 0)
        fail_msg("%s:%d: \"%s\": *out not zeroed on error", file, line, url);
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

    /* nor of the fields added in 0.2 */
    assert_int_equal(
        rc_redis_url_parse("rediss-cluster://a,b?pubsub=classic&sni=s", &u), 0);
    assert_int_equal(rc_redis_url_parse("redis-sentinel://s/m", &u), 0);
    assert_int_equal(u.tls, 0);
    assert_int_equal(u.nhosts, 1);
    assert_int_equal(u.classic, 0);
    assert_string_equal(u.hosts[1].host, "");
    assert_string_equal(u.sni, "");
    assert_int_equal(rc_redis_url_parse("unix:///s", &u), 0);
    assert_int_equal(u.kind, RC_URL_REDIS);
    assert_int_equal(u.nhosts, 0);
    assert_string_equal(u.master, "");
}

/* ---- TLS, Sentinel and Cluster URLs (table-driven) ------------------ */

/* A good URL and what it gives, as describe() writes it. */
struct good {
    const char *url, *want;
};

static const struct good goods[] = {
    /* one server, TLS */
    {"rediss://localhost", "redis tls localhost:6379"},
    {"rediss://:pw@h:6380/2", "redis tls h:6380 :pw db=2"},
    {"rediss://h:6380/2?cacert=%2Ftmp%2Fca.pem&sni=redis.local",
     "redis tls h:6380 db=2 cacert=/tmp/ca.pem sni=redis.local"},
    {"rediss://h?capath=/etc/ssl/certs",
     "redis tls h:6379 capath=/etc/ssl/certs"},
    {"rediss://h?cert=c.pem&key=k.pem",
     "redis tls h:6379 cert=c.pem key=k.pem"},
    {"rediss://h/?key=k.pem&cert=c.pem",
     "redis tls h:6379 cert=c.pem key=k.pem"},
    {"rediss://u:p@h:1/15?cacert=a&capath=b&cert=c&key=d&sni=e",
     "redis tls h:1 u:p db=15 cacert=a capath=b cert=c key=d sni=e"},
    {"rediss://10.0.0.1?sni=redis.example.com",
     "redis tls 10.0.0.1:6379 sni=redis.example.com"},
    {"rediss://[::1]:6380?cacert=C%3A%5Cca%20x.pem",
     "redis tls [::1]:6380 cacert=C:\\ca x.pem"},
    /* an '@', '=', ':' or '?' in a query value is not user info or a port */
    {"rediss://h?cacert=/tmp/a@b.pem", "redis tls h:6379 cacert=/tmp/a@b.pem"},
    {"rediss://h?cert=c@x&key=k:1?=2", "redis tls h:6379 cert=c@x key=k:1?=2"},
    {"redis://:p%3Fw%2F@h/1", "redis h:6379 :p?w/ db=1"},
    /* sentinels */
    {"redis-sentinel://s1/mymaster", "sentinel s1:26379 master=mymaster"},
    {"redis-sentinel://s1:5000,s2,[::1]:5001/mymaster/3",
     "sentinel s1:5000,s2:26379,[::1]:5001 master=mymaster db=3"},
    {"redis-sentinel://:pw@s1,s2/m", "sentinel s1:26379,s2:26379 :pw master=m"},
    {"redis-sentinel://u:p%40@s1/my%20master%2Fx",
     "sentinel s1:26379 u:p@ master=my master/x"},
    {"redis-sentinel://s1/m/", "sentinel s1:26379 master=m"},
    {"redis-sentinel://[fe80::1]/m/1000000",
     "sentinel [fe80::1]:26379 master=m db=1000000"},
    {"rediss-sentinel://s1,s2:1/m/1?cacert=ca.pem",
     "sentinel tls s1:26379,s2:1 master=m db=1 cacert=ca.pem"},
    {"rediss-sentinel://:p%40ss@s1:26380,s2:26381/mymaster?sni=redis.local",
     "sentinel tls s1:26380,s2:26381 :p@ss master=mymaster sni=redis.local"},
    /* cluster seeds */
    {"redis-cluster://a", "cluster a:6379"},
    {"redis-cluster://a/", "cluster a:6379"},
    {"redis-cluster://a:1,b:2?pubsub=classic", "cluster a:1,b:2 classic"},
    {"redis-cluster://a,b,c?pubsub=sharded", "cluster a:6379,b:6379,c:6379"},
    {"redis-cluster://[::1]:7000,[::1]:7001", "cluster [::1]:7000,[::1]:7001"},
    {"redis-cluster://a/?pubsub=%63lassic", "cluster a:6379 classic"},
    {"redis-cluster://a:65535,10.0.0.2:1", "cluster a:65535,10.0.0.2:1"},
    {"rediss-cluster://a", "cluster tls a:6379"},
    {"rediss-cluster://u:p@a:7000,b:7001?pubsub=classic&sni=r&cacert=ca",
     "cluster tls a:7000,b:7001 u:p classic cacert=ca sni=r"},
    /* the old forms, with the new fields */
    {"redis://h", "redis h:6379"},
    {"redis://u:p@[::1]:7000/4", "redis [::1]:7000 u:p db=4"},
    {"unix:///s", "unix /s"},
    {"unix:///tmp/x.sock?db=%31%32", "unix /tmp/x.sock db=12"},
};

static const char *const bads[] = {
    /* one server: schemes and hosts */
    "", "http://localhost:6379", "REDIS://localhost", "localhost:6379",
    "redis:/localhost", "redis://", "redis://:6379", "redis://:pw@",
    "redis://:pw@:6379/0", "redis:///0",
    /* ports; no overflow into range (the last: 2^32 + 6379) */
    "redis://h:0", "redis://h:70000", "redis://h:65536", "redis://h:-1",
    "redis://h:abc", "redis://h:63a9", "redis://h:", "redis://h: 6379",
    "redis://h:99999999999999999999", "redis://h:4294973675",
    /* databases (the last: 2^32) */
    "redis://h/-1", "redis://h:6379/-1", "redis://h/x", "redis://h/1x",
    "redis://h/0x1", "redis://h/ 1", "redis://h/99999999999999999999",
    "redis://h/4294967296",
    /* trailing garbage */
    "redis://h:6379/0/1", "redis://h:6379/0?x=1", "redis://h:6379/0 ",
    "redis://h:6379 ", "redis://h ", "redis://h?db=1", "redis://h#frag",
    "redis://h:6379:6380", "redis://bad host",
    /* schemes: case and spelling */
    "Rediss://h", "redis-Cluster://a", "redis-sentinels://s/m",
    "redis+sentinel://s/m", "redis-cluster:/a", "rediss-cluster://",
    "redis-sentinel:///m", "rediss:h",
    /* host lists: not for one server; no empty entry; ports in range */
    "redis://a,b", "rediss://a:1,b:2", "redis-cluster://a,,b",
    "redis-cluster://a,", "redis-cluster://,a", "redis-sentinel://a,/m",
    "redis-cluster://a:0", "redis-cluster://a:65536", "redis-cluster://a,b:0",
    "redis-cluster://a,b:65536", "redis-sentinel://s:65536/m",
    "redis-cluster://[::1]:7000,[::1", "redis-cluster://[::1]7000,b",
    "redis-cluster://[::1,::2]", "redis-cluster://a b,c", "redis-cluster://a;b",
    "redis-cluster://x@a",
    /* sentinel paths */
    "redis-sentinel://s", "redis-sentinel://s/", "redis-sentinel://s//1",
    "redis-sentinel://s/m/x", "redis-sentinel://s/m/1/2",
    "redis-sentinel://s/m/1/", "redis-sentinel://s/m/-1",
    "redis-sentinel://s/m/1000001", "redis-sentinel://s?x=1",
    "redis-sentinel://s/m%", "redis-sentinel://s/m%00",
    "redis-sentinel://s/m#x", "redis-sentinel://s/m x",
    /* cluster paths */
    "redis-cluster://a/0", "redis-cluster://a/x", "redis-cluster://a//",
    "rediss-cluster://a/1?pubsub=classic",
    /* pubsub */
    "redis-cluster://a?pubsub=both", "redis-cluster://a?pubsub=",
    "redis-cluster://a?pubsub=classic&pubsub=classic",
    "redis-cluster://a?pubsub=sharded&pubsub=classic",
    "redis-cluster://a?pubsub=Classic", "rediss://h?pubsub=classic",
    "redis-sentinel://s/m?pubsub=classic", "unix:///s?pubsub=classic",
    /* TLS options only for TLS URLs */
    "redis://h?cacert=x", "redis://h/0?sni=x", "redis-cluster://a?sni=x",
    "redis-sentinel://s/m?cacert=x", "unix:///s?cacert=x",
    /* cert and key together */
    "rediss://h?cert=c.pem", "rediss://h?key=k.pem",
    "rediss-cluster://a?cacert=ca&key=k",
    /* option syntax */
    "rediss://h?cacert=", "rediss://h?cacert", "rediss://h?=x", "rediss://h?",
    "rediss://h/?", "rediss://h?cacert=a&", "rediss://h?&cacert=a",
    "rediss://h?cacert=a&&sni=b", "rediss://h?cacert=a&cacert=b",
    "rediss://h?CACERT=a", "rediss://h?foo=1", "rediss://h?db=1",
    "rediss://h?cacert=%zz", "rediss://h?cacert=%2", "rediss://h?cacert=%00",
    "rediss://h?cacert=a b", "rediss://h?sni=x#frag", "rediss://h/2#x",
    "rediss://h?sni=x\t",
    /* unix:// keeps its one option */
    "unix:///s?db=1&db=2", "unix:///s?db=1&", "unix:///s?db=%2D1", "unix:///s?",
    "unix:///s?sni=x",
    /* a '?' in a password must be escaped: it starts the query */
    "redis://:p?w@h"};

/* Append to buf (cap bytes) at *k. */
static void put(char *buf, size_t cap, size_t *k, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    *k += (size_t)vsnprintf(buf + *k, cap - *k, fmt, ap);
    va_end(ap);
    assert_true(*k < cap);
}

/* u in one line: kind, tls, hosts or path, then the fields not at their
 * defaults. */
static void describe(const rc_redis_url *u, char *buf, size_t cap)
{
    const char *kinds[] = {"redis", "sentinel", "cluster"};
    const char *names[] = {"cacert", "capath", "cert", "key", "sni"};
    const char *values[] = {u->cacert, u->capath, u->cert, u->key, u->sni};
    size_t k = 0;
    int i;

    assert_in_range(u->kind, 0, 2);
    assert_in_range(u->nhosts, 0, RC_URL_MAX_HOSTS);
    put(buf, cap, &k, "%s%s", u->nhosts ? kinds[u->kind] : "unix",
        u->tls ? " tls" : "");
    for (i = 0; i < u->nhosts; i++)
        put(buf, cap, &k,
            strchr(u->hosts[i].host, ':') ? "%c[%s]:%d" : "%c%s:%d",
            i ? ',' : ' ', u->hosts[i].host, u->hosts[i].port);
    if (u->path[0] != '\0')
        put(buf, cap, &k, " %s", u->path);
    if (u->user[0] != '\0' || u->password[0] != '\0')
        put(buf, cap, &k, " %s:%s", u->user, u->password);
    if (u->master[0] != '\0')
        put(buf, cap, &k, " master=%s", u->master);
    if (u->db != 0)
        put(buf, cap, &k, " db=%d", u->db);
    if (u->classic)
        put(buf, cap, &k, " classic");
    for (i = 0; i < 5; i++)
        if (values[i][0] != '\0')
            put(buf, cap, &k, " %s=%s", names[i], values[i]);
}

/* Fields that hold for every parsed URL: host and port are the first
 * entry; the entries past nhosts are zero. */
static void check_invariants(const rc_redis_url *u)
{
    static const rc_redis_host zero;
    int i;

    if (u->nhosts == 0) {
        assert_string_equal(u->host, "");
        assert_true(u->path[0] == '/');
    } else {
        assert_string_equal(u->host, u->hosts[0].host);
        assert_int_equal(u->port, u->hosts[0].port);
        assert_string_equal(u->path, "");
    }
    for (i = u->nhosts; i < RC_URL_MAX_HOSTS; i++)
        assert_memory_equal(&u->hosts[i], &zero, sizeof zero);
}

static void table_good(void **state)
{
    const struct good *g;
    char buf[1024];
    rc_redis_url u;

    (void)state;
    for (g = goods; g < goods + sizeof goods / sizeof goods[0]; g++) {
        u = ok_(g->url, __FILE__, __LINE__);
        describe(&u, buf, sizeof buf);
        if (strcmp(buf, g->want) != 0)
            fail_msg("\"%s\":\n  got  \"%s\"\n  want \"%s\"", g->url, buf,
                     g->want);
        check_invariants(&u);
    }
}

static void table_bad(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bads / sizeof bads[0]; i++)
        bad_(bads[i], __FILE__, __LINE__);
}

/* scheme, then n hosts "hI:(7000+I)" joined by ',', then tail. */
static void host_list(char *url, size_t cap, const char *scheme, int n,
                      const char *tail)
{
    size_t k = (size_t)snprintf(url, cap, "%s", scheme);
    int i;

    for (i = 0; i < n; i++)
        k += (size_t)snprintf(url + k, cap - k, "%sh%d:%d", i ? "," : "", i,
                              7000 + i);
    snprintf(url + k, cap - k, "%s", tail);
}

static void max_hosts(void **state)
{
    char url[512];
    rc_redis_url u;

    (void)state;
    host_list(url, sizeof url, "redis-cluster://", RC_URL_MAX_HOSTS,
              "?pubsub=classic");
    u = ok(url);
    assert_int_equal(u.nhosts, RC_URL_MAX_HOSTS);
    assert_string_equal(u.hosts[15].host, "h15");
    assert_int_equal(u.hosts[15].port, 7015);
    assert_int_equal(u.classic, 1);
    host_list(url, sizeof url, "redis-cluster://", RC_URL_MAX_HOSTS + 1, "");
    bad(url);

    host_list(url, sizeof url, "rediss-sentinel://:pw@", RC_URL_MAX_HOSTS,
              "/m/2");
    u = ok(url);
    assert_int_equal(u.nhosts, RC_URL_MAX_HOSTS);
    assert_string_equal(u.master, "m");
    assert_string_equal(u.password, "pw");
    host_list(url, sizeof url, "rediss-sentinel://:pw@", RC_URL_MAX_HOSTS + 1,
              "/m/2");
    bad(url);
}

/* url = prefix + n times ch + suffix. */
static void repeat(char *url, size_t cap, const char *prefix, char ch, size_t n,
                   const char *suffix)
{
    size_t k = (size_t)snprintf(url, cap, "%s", prefix);

    assert_true(k + n < cap);
    memset(url + k, ch, n);
    snprintf(url + k + n, cap - k - n, "%s", suffix);
}

static void new_fields_too_long(void **state)
{
    char url[1024];
    rc_redis_url u;

    (void)state;
    /* master[128]: 127 bytes fit, 128 do not; escapes count decoded */
    repeat(url, sizeof url, "redis-sentinel://s/", 'm', 127, "/1");
    u = ok(url);
    assert_int_equal(strlen(u.master), 127);
    repeat(url, sizeof url, "redis-sentinel://s/", 'm', 128, "");
    bad(url);
    repeat(url, sizeof url, "redis-sentinel://s/%41", 'm', 126, "");
    u = ok(url);
    assert_int_equal(strlen(u.master), 127);

    /* the TLS fields hold 255 bytes */
    repeat(url, sizeof url, "rediss://h?sni=x&cacert=", 'c', 255, "");
    u = ok(url);
    assert_int_equal(strlen(u.cacert), 255);
    repeat(url, sizeof url, "rediss://h?cacert=", 'c', 256, "");
    bad(url);
    repeat(url, sizeof url, "rediss://h?key=k&cert=", 'c', 256, "");
    bad(url);
    repeat(url, sizeof url, "rediss-cluster://a?sni=", 's', 256, "");
    bad(url);
    repeat(url, sizeof url, "rediss://h?capath=%2F", 'p', 254, "&sni=x");
    u = ok(url);
    assert_int_equal(strlen(u.capath), 255);

    /* a host of the list: 255 bytes, not 256 */
    repeat(url, sizeof url, "redis-cluster://a,", 'h', 255, ":7000");
    u = ok(url);
    assert_int_equal(strlen(u.hosts[1].host), 255);
    repeat(url, sizeof url, "redis-cluster://a,", 'h', 256, ":7000");
    bad(url);
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
        cmocka_unit_test(too_long),
        cmocka_unit_test(null_arguments),
        cmocka_unit_test(reparse_resets_fields),
        cmocka_unit_test(table_good),
        cmocka_unit_test(table_bad),
        cmocka_unit_test(max_hosts),
        cmocka_unit_test(new_fields_too_long),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
