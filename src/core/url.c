/*
 * Redis URLs: redis://[[user]:password@]host[:port][/db] and
 * unix:///path/to/socket[?db=N]. Strict: anything else is RC_EURL.
 */
#include <string.h>

#include "roomcast/url.h"

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
    if (strncmp(q, "?db=", 4) != 0)
        return RC_EURL;
    return number(q + 4, strlen(q + 4), 0, 1000000, &u->db);
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

static int parse_hostport(const char *p, size_t n, rc_redis_url *u)
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
    if (host_len == 0 || host_len >= sizeof u->host ||
        !host_ok(host, host_len, host != p))
        return RC_EURL;
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';
    if (port != NULL)
        return number(port, (size_t)(p + n - port), 1, 65535, &u->port);
    return 0;
}

static int parse_tcp(const char *p, rc_redis_url *u)
{
    const char *slash = strchr(p, '/'), *at;
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    int rv = 0;

    /* The last '@' ends the user info (a password may hold an '@' only
     * percent-encoded, but be lenient about where the host starts). */
    for (at = p + n; at > p && at[-1] != '@'; at--)
        ;
    if (at > p)
        rv = parse_userinfo(p, (size_t)(at - 1 - p), u);
    if (rv == 0)
        rv = parse_hostport(at, n - (size_t)(at - p), u);
    if (rv == 0 && slash != NULL && slash[1] != '\0')
        rv = number(slash + 1, strlen(slash + 1), 0, 1000000, &u->db);
    return rv;
}

int rc_redis_url_parse(const char *url, rc_redis_url *out)
{
    int rv;

    if (url == NULL || out == NULL)
        return RC_EINVAL;
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, "redis://", 8) == 0)
        rv = parse_tcp(url + 8, out);
    else if (strncmp(url, "unix://", 7) == 0)
        rv = parse_unix(url + 7, out);
    else
        rv = RC_EURL;
    if (rv != 0)
        memset(out, 0, sizeof *out);
    return rv;
}
