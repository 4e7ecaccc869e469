/*
 * Redis URLs (roomcast/url.h): redis://, rediss://, redis-sentinel://,
 * rediss-sentinel://, redis-cluster://, rediss-cluster:// and
 * unix:///path. Strict: anything else is RC_EURL.
 *
 * The authority (user info and hosts) ends at the first '/' or '?', as in
 * RFC 3986 section 3.2, so a '/' or '?' in a user name or password must be
 * percent-encoded; otherwise a query value holding an '@' (a file name)
 * would be read as user info.
 */
#include <stddef.h>
#include <string.h>

#include "roomcast/url.h"

#define DB_MAX 1000000

/* Which URLs take a query option. */
#define IN_UNIX 1u
#define IN_CLUSTER 2u
#define IN_TLS 4u

struct scheme {
    const char *prefix;
    int kind;
    int tls;
};

static const struct scheme schemes[] = {
    {"redis://", RC_URL_REDIS, 0},
    {"rediss://", RC_URL_REDIS, 1},
    {"redis-sentinel://", RC_URL_SENTINEL, 0},
    {"rediss-sentinel://", RC_URL_SENTINEL, 1},
    {"redis-cluster://", RC_URL_CLUSTER, 0},
    {"rediss-cluster://", RC_URL_CLUSTER, 1},
};

/* A query option; string options name their field (cap > 0), the others
 * (db, pubsub) are read by set_option. */
struct option {
    const char *name;
    unsigned in;
    size_t off, cap;
};

#define FIELD(f) offsetof(rc_redis_url, f), sizeof(((rc_redis_url *)0)->f)

static const struct option options[] = {
    {"db", IN_UNIX, 0, 0},
    {"pubsub", IN_CLUSTER, 0, 0},
    {"cacert", IN_TLS, FIELD(cacert)},
    {"capath", IN_TLS, FIELD(capath)},
    {"cert", IN_TLS, FIELD(cert)},
    {"key", IN_TLS, FIELD(key)},
    {"sni", IN_TLS, FIELD(sni)},
};

#define NOPTIONS (sizeof options / sizeof options[0])

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        return (ch | 0x20) - 'a' + 10;
    return -1;
}

/* Copy s[0..n) percent-decoded into out (cap bytes, NUL-terminated). */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t i, k = 0;
    int hi, lo;

    for (i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return RC_EURL;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return RC_EURL;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (ch == '\0' || k + 1 >= cap)
            return RC_EURL;
        out[k++] = ch;
    }
    out[k] = '\0';
    return 0;
}

/* A whole decimal number in [min, max] from s[0..n). */
static int number(const char *s, size_t n, long min, long max, int *out)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 9)
        return RC_EURL;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RC_EURL;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return RC_EURL;
    *out = (int)v;
    return 0;
}

/* db and pubsub; the string options are copied by the caller. */
static int set_option(rc_redis_url *u, const struct option *o, const char *v,
                      size_t n)
{
    char buf[16];
    int rv = decode(v, n, buf, sizeof buf);

    if (rv != 0)
        return rv;
    if (o->in == IN_UNIX)
        return number(buf, strlen(buf), 0, DB_MAX, &u->db);
    if (strcmp(buf, "classic") == 0)
        u->classic = 1;
    else if (strcmp(buf, "sharded") != 0)
        return RC_EURL;
    return 0;
}

/* The option named s[0..n), or NULL. */
static const struct option *find_option(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == n && memcmp(options[i].name, s, n) == 0)
            return &options[i];
    return NULL;
}

/* One name=value of the query, s[0..n). seen: the options already given,
 * a bit each, for an option given twice is more likely a mistake than a
 * deliberate override. */
static int parse_option(const char *s, size_t n, rc_redis_url *u, unsigned in,
                        unsigned *seen)
{
    const char *eq = memchr(s, '=', n);
    const struct option *o;
    size_t value_len;
    unsigned bit;

    if (eq == NULL)
        return RC_EURL;
    o = find_option(s, (size_t)(eq - s));
    value_len = n - (size_t)(eq - s) - 1;
    if (o == NULL || !(o->in & in) || value_len == 0)
        return RC_EURL;
    bit = 1u << (o - options);
    if (*seen & bit)
        return RC_EURL;
    *seen |= bit;
    if (o->cap == 0)
        return set_option(u, o, eq + 1, value_len);
    return decode(eq + 1, value_len, (char *)u + o->off, o->cap);
}

/* The query after '?': options joined by '&' (an empty one is an error,
 * so "?", "a=1&" and "a=1&&b=2" are refused). */
static int parse_query(const char *q, rc_redis_url *u, unsigned in)
{
    unsigned seen = 0;
    size_t n;
    int rv;

    for (;;) {
        n = strcspn(q, "&");
        rv = parse_option(q, n, u, in, &seen);
        if (rv != 0)
            return rv;
        if (q[n] == '\0')
            break;
        q += n + 1;
    }
    /* A certificate is useless without its key, and the other way round. */
    if ((u->cert[0] != '\0') != (u->key[0] != '\0'))
        return RC_EURL;
    return 0;
}

static int parse_unix(const char *p, rc_redis_url *u)
{
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);

    if (n == 0 || p[0] != '/' || n >= sizeof u->path)
        return RC_EURL;
    memcpy(u->path, p, n);
    u->path[n] = '\0';
    if (q == NULL)
        return 0;
    return parse_query(q + 1, u, IN_UNIX);
}

static int parse_userinfo(const char *p, size_t n, rc_redis_url *u)
{
    const char *colon = memchr(p, ':', n);
    int rv;

    if (colon == NULL) /* "x@host": user or password? Say which. */
        return RC_EURL;
    rv = decode(p, (size_t)(colon - p), u->user, sizeof u->user);
    if (rv == 0)
        rv = decode(colon + 1, n - (size_t)(colon - p) - 1, u->password,
                    sizeof u->password);
    return rv;
}

/* Host names and IPv4 addresses; inside brackets, IPv6 addresses. */
static int host_ok(const char *h, size_t n, int v6)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char ch = h[i];
        int ok = (ch >= '0' && ch <= '9') || ch == '.' ||
                 (v6 ? ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') || ch == ':'
                     : ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
                           ch == '-' || ch == '_');
        if (!ok)
            return 0;
    }
    return 1;
}

/* host[:port] or [IPv6][:port] from p[0..n); h->port holds the default. */
static int parse_hostport(const char *p, size_t n, rc_redis_host *h)
{
    const char *host = p, *port = NULL;
    size_t host_len = n;

    if (n > 0 && p[0] == '[') { /* [IPv6]:port */
        const char *close = memchr(p, ']', n);
        if (close == NULL)
            return RC_EURL;
        host = p + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < p + n) {
            if (close[1] != ':')
                return RC_EURL;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon != NULL) {
            host_len = (size_t)(colon - p);
            port = colon + 1;
        }
    }
    if (host_len == 0 || host_len >= sizeof h->host ||
        !host_ok(host, host_len, host != p))
        return RC_EURL;
    memcpy(h->host, host, host_len);
    h->host[host_len] = '\0';
    if (port != NULL)
        return number(port, (size_t)(p + n - port), 1, 65535, &h->port);
    return 0;
}

/* host[:port][,host[:port]...] from p[0..n): a list only for sentinels and
 * cluster seeds. host and port repeat the first entry, for callers written
 * before the list. */
static int parse_hosts(const char *p, size_t n, rc_redis_url *u)
{
    const char *end = p + n, *stop;
    int port = u->kind == RC_URL_SENTINEL ? 26379 : 6379;
    rc_redis_host *h;
    int rv;

    for (;;) {
        stop = memchr(p, ',', (size_t)(end - p));
        if (stop == NULL)
            stop = end;
        else if (u->kind == RC_URL_REDIS)
            return RC_EURL;
        if (u->nhosts == RC_URL_MAX_HOSTS)
            return RC_EURL;
        h = &u->hosts[u->nhosts++];
        h->port = port;
        rv = parse_hostport(p, (size_t)(stop - p), h);
        if (rv != 0)
            return rv;
        if (stop == end)
            break;
        p = stop + 1;
    }
    memcpy(u->host, u->hosts[0].host, sizeof u->host);
    u->port = u->hosts[0].port;
    return 0;
}

/* Sentinel: /master[/db], the master required. */
static int parse_master(const char *p, size_t n, rc_redis_url *u)
{
    const char *slash;
    size_t len;
    int rv;

    if (n == 0 || p[0] != '/')
        return RC_EURL;
    p++;
    n--;
    slash = memchr(p, '/', n);
    len = slash ? (size_t)(slash - p) : n;
    if (len == 0)
        return RC_EURL;
    rv = decode(p, len, u->master, sizeof u->master);
    if (rv != 0 || slash == NULL || len + 1 == n)
        return rv;
    return number(slash + 1, n - len - 1, 0, DB_MAX, &u->db);
}

/* The path p[0..n): /db for one server, /master[/db] for sentinels,
 * nothing for a cluster (which has database 0 only). A lone '/' after the
 * host, or after the master, is no db at all. */
static int parse_path(const char *p, size_t n, rc_redis_url *u)
{
    if (u->kind == RC_URL_SENTINEL)
        return parse_master(p, n, u);
    if (n <= 1) /* "" or "/" */
        return 0;
    if (u->kind == RC_URL_CLUSTER)
        return RC_EURL;
    return number(p + 1, n - 1, 0, DB_MAX, &u->db);
}

/* After the authority: no space, control character or fragment ('#'),
 * which a copy-paste or a shell may have added; a '#' for a file name or a
 * master's name is written %23. */
static int tail_ok(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '#')
            return 0;
    return 1;
}

static int parse_tcp(const char *p, rc_redis_url *u)
{
    size_t n = strcspn(p, "/?"); /* the authority */
    const char *tail = p + n, *q = strchr(tail, '?'), *at;
    unsigned in =
        (u->tls ? IN_TLS : 0) | (u->kind == RC_URL_CLUSTER ? IN_CLUSTER : 0);
    int rv = 0;

    if (!tail_ok(tail))
        return RC_EURL;
    for (at = tail; at > p && at[-1] != '@'; at--)
        ;
    if (at > p)
        rv = parse_userinfo(p, (size_t)(at - 1 - p), u);
    if (rv == 0)
        rv = parse_hosts(at, (size_t)(tail - at), u);
    if (rv == 0)
        rv = parse_path(tail, q ? (size_t)(q - tail) : strlen(tail), u);
    if (rv == 0 && q != NULL)
        rv = parse_query(q + 1, u, in);
    return rv;
}

static int parse_url(const char *url, rc_redis_url *u)
{
    size_t i, n;

    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, u);
    for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        n = strlen(schemes[i].prefix);
        if (strncmp(url, schemes[i].prefix, n) == 0) {
            u->kind = schemes[i].kind;
            u->tls = schemes[i].tls;
            return parse_tcp(url + n, u);
        }
    }
    return RC_EURL;
}

int rc_redis_url_parse(const char *url, rc_redis_url *out)
{
    int rv;

    if (url == NULL || out == NULL)
        return RC_EINVAL;
    memset(out, 0, sizeof *out);
    out->port = 6379;
    rv = parse_url(url, out);
    if (rv != 0)
        memset(out, 0, sizeof *out);
    return rv;
}
