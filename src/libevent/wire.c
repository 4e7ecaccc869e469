/*
 * One Redis connection of the glue's own: a libevent bufferevent (plain
 * TCP, a Unix socket, or OpenSSL for TLS) carries the bytes, hiredis'
 * reply reader (public in 0.14 and 1.x) parses them. hiredis' async layer
 * is not used: it cannot route SSUBSCRIBE replies or smessage pushes, has
 * no TLS in 0.14, resolves names blocking on the loop thread, and reads
 * 16 KiB per readable event.
 *
 * Replies are matched to commands in order (a FIFO of what is owed). On a
 * wire that has subscribed, Redis also pushes Pub/Sub arrays that answer
 * no command: a (s)message, or an (s)unsubscribe it decided itself (a
 * slot moved, a failover). A Pub/Sub array answers the oldest command only
 * when that command is the subscription of the same kind and channel (one
 * channel per command, so every confirmation is matched one to one), or
 * a PING (its "pong"); anything else Pub/Sub goes to the push callback.
 * A non-Pub/Sub reply (an error to SSUBSCRIBE: MOVED) answers the oldest
 * command, whatever it was.
 *
 * Bounds: a reply being read may not pass MAX_REPLY bytes, and commands
 * are refused while more than MAX_OUT bytes wait to be written (a stalled
 * Redis); both end in a clear error rather than memory without bound.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/util.h>

#ifdef RC_WITH_TLS
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

#include "wire.h"

#define MAX_REPLY (256u << 20) /* bytes of one reply being read */
#define MAX_OUT (64u << 20)    /* bytes waiting to be written */
#define MAX_READ (1u << 20)    /* bytes read per readable event */
#define MAX_ELEMENTS (1 << 20) /* elements of one reply array */

/* Kinds of what a command is owed: a reply, or a Pub/Sub confirmation. */
enum { OWED_REPLY, OWED_SUB, OWED_SSUB, OWED_UNSUB, OWED_SUNSUB, OWED_PONG };

typedef struct owed {
    rc__wire_done done;
    void *priv;
    int kind;
    char *chan; /* the confirmation's channel (OWED_*SUB*) */
    size_t chan_len;
} owed;

struct rc__wire {
    struct bufferevent *bev;
    redisReader *rd;
    const rc__wire_cbs *cbs;
    void *user;
    owed *q; /* a ring: n entries from head */
    size_t head, n, cap;
    int up, dead, closed;
    int subscribed; /* a subscription was asked: pushes may come */
    unsigned busy;  /* callbacks of ours running */
    unsigned long reads;
    void *ssl; /* SSL *, for error messages */
#if HIREDIS_MAJOR < 1
    redisReplyObjectFunctions fns; /* the reader's, arrays capped */
    void *(*make_array)(const redisReadTask *t, int n);
#endif
};

static const char *const kinds[] = {
    "", "subscribe", "ssubscribe", "unsubscribe", "sunsubscribe", "pong"};

/* ---- the FIFO of what is owed --------------------------------------- */

static int owe(rc__wire *w, const owed *o)
{
    owed *q;
    size_t i;

    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        if ((q = malloc(cap * sizeof *q)) == NULL)
            return -1;
        for (i = 0; i < w->n; i++)
            q[i] = w->q[(w->head + i) % w->cap];
        free(w->q);
        w->q = q;
        w->head = 0;
        w->cap = cap;
    }
    w->q[(w->head + w->n) % w->cap] = *o;
    w->n++;
    return 0;
}

static owed pop(rc__wire *w)
{
    owed o = w->q[w->head];

    w->head = (w->head + 1) % w->cap;
    w->n--;
    return o;
}

/* Answer o (reply NULL: none will come) and forget it. */
static void pay(rc__wire *w, owed o, const redisReply *reply)
{
    w->busy++;
    if (o.done != NULL)
        o.done(o.priv, reply);
    w->busy--;
    free(o.chan);
}

/* ---- the reader -------------------------------------------------------- */

/* An array header is allocated for as it is read: a server announcing a
 * billion elements would have it allocated at once. hiredis 1.x bounds it
 * (maxelements); for 0.14 the reader's array maker is wrapped. */
#if HIREDIS_MAJOR < 1
static void *capped_array(const redisReadTask *t, int n)
{
    rc__wire *w = t->privdata;

    return n > MAX_ELEMENTS ? NULL : w->make_array(t, n);
}
#endif

static redisReader *reader_new(rc__wire *w)
{
    redisReader *rd = redisReaderCreate();

    if (rd == NULL)
        return NULL;
#if HIREDIS_MAJOR >= 1
    (void)w;
    rd->maxelements = MAX_ELEMENTS;
#else
    w->fns = *rd->fn;
    w->make_array = w->fns.createArray;
    w->fns.createArray = capped_array;
    rd->fn = &w->fns;
    rd->privdata = w;
#endif
    return rd;
}

/* ---- life ------------------------------------------------------------ */

static void destroy(rc__wire *w)
{
    if (w->bev != NULL)
        bufferevent_free(w->bev);
    if (w->rd != NULL)
        redisReaderFree(w->rd);
    free(w->q);
    free(w);
}

/* Free a closed wire once no callback of ours runs on it. */
static void settle(rc__wire *w)
{
    if (w->closed && w->busy == 0)
        destroy(w);
}

void rc__wire_close(rc__wire *w)
{
    if (w == NULL || w->closed)
        return;
    /* Last words, without waiting (the release of a node's lease). A
     * socket bufferevent keeps its output's front frozen to all but
     * itself. */
    if (w->up && !w->dead && w->ssl == NULL && bufferevent_getfd(w->bev) >= 0) {
        struct evbuffer *out = bufferevent_get_output(w->bev);
        evbuffer_unfreeze(out, 1);
        (void)evbuffer_write(out, bufferevent_getfd(w->bev));
    }
    w->closed = 1;
    w->up = 0;
    if (w->bev != NULL)
        bufferevent_disable(w->bev, EV_READ | EV_WRITE);
    w->busy++;
    while (w->n > 0)
        pay(w, pop(w), NULL);
    w->busy--;
    settle(w);
}

/* The wire is down for good: stop it and tell the owner, once. */
static void fail(rc__wire *w, const char *why)
{
    if (w->dead || w->closed)
        return;
    w->dead = 1;
    w->up = 0;
    bufferevent_disable(w->bev, EV_READ | EV_WRITE);
    w->busy++;
    w->cbs->down(w, why, w->user);
    w->busy--;
}

/* ---- replies ---------------------------------------------------------- */

/* The owed kind a Pub/Sub array is, or -1 for anything else. */
static int pubsub_kind(const rc__wire *w, const redisReply *r)
{
    const char *k;
    size_t i;

    if (!w->subscribed || (r->type != REDIS_REPLY_ARRAY && r->type != 12) ||
        r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING)
        return -1;
    k = r->element[0]->str;
    if (strcmp(k, "message") == 0 || strcmp(k, "smessage") == 0)
        return OWED_REPLY; /* never owed */
    for (i = 1; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(k, kinds[i]) == 0)
            return (int)i;
    return -1;
}

static int confirms(const owed *o, int kind, const redisReply *r)
{
    const redisReply *c = r->element[1];

    if (o->kind != kind)
        return 0;
    return kind == OWED_PONG ||
           (c->type == REDIS_REPLY_STRING && c->len == o->chan_len &&
            memcmp(c->str, o->chan, c->len) == 0);
}

static void dispatch(rc__wire *w, const redisReply *r)
{
    int kind = pubsub_kind(w, r);

    if (w->n > 0 && (kind < 0 || (kind > OWED_REPLY &&
                                  confirms(&w->q[w->head], kind, r)))) {
        pay(w, pop(w), r);
        return;
    }
    w->busy++;
    w->cbs->push(w, r, w->user);
    w->busy--;
}

static void read_replies(rc__wire *w)
{
    void *r;
    char why[160];

    while (!w->dead && !w->closed) {
        if (redisReaderGetReply(w->rd, &r) != REDIS_OK) {
            snprintf(why, sizeof why, "protocol error: %s", w->rd->errstr);
            fail(w, why);
            return;
        }
        if (r == NULL)
            return;
        dispatch(w, r);
        freeReplyObject(r);
    }
}

static void feed(rc__wire *w, const char *p, size_t n)
{
    redisReaderFeed(w->rd, p, n);
    w->reads++;
    if (w->rd->len - w->rd->pos > MAX_REPLY)
        fail(w, "a reply passed 256 MiB");
    read_replies(w);
}

/* libevent 2.1 reads 4 KiB per readable event: on a plain socket the
 * rest waiting is read here, in 64 KiB reads, up to MAX_READ. */
static void read_more(rc__wire *w)
{
    char buf[65536];
    size_t total = 0;
    ssize_t n = -1;
    evutil_socket_t fd = bufferevent_getfd(w->bev);

    while (fd >= 0 && !w->dead && !w->closed && total < MAX_READ) {
        n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        total += (size_t)n;
        feed(w, buf, (size_t)n);
    }
    if (n == 0)
        fail(w, "connection closed by server");
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        fail(w, strerror(errno));
}

static void on_read(struct bufferevent *bev, void *arg)
{
    rc__wire *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[16];
    int i, n;
    size_t fed;

    w->busy++;
    while (!w->dead && !w->closed && evbuffer_get_length(in) > 0) {
        n = evbuffer_peek(in, -1, NULL, v, 16);
        for (i = 0, fed = 0; i < n && i < 16; i++)
            fed += v[i].iov_len;
        /* Fed as one piece when it is one (the usual case). */
        for (i = 0; i < n && i < 16 && !w->dead && !w->closed; i++)
            feed(w, v[i].iov_base, v[i].iov_len);
        evbuffer_drain(in, fed);
    }
    if (w->ssl == NULL)
        read_more(w);
    w->busy--;
    settle(w);
}

/* ---- connecting ------------------------------------------------------- */

static void why_down(rc__wire *w, short what, char *buf, size_t len)
{
    int dns = bufferevent_socket_get_dns_error(w->bev);
#ifdef RC_WITH_TLS
    unsigned long e = w->ssl ? bufferevent_get_openssl_error(w->bev) : 0;
    long vr = w->ssl ? SSL_get_verify_result(w->ssl) : X509_V_OK;

    if (vr != X509_V_OK) {
        snprintf(buf, len, "TLS: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        return;
    }
    if (e != 0 && ERR_GET_LIB(e) != 0) {
        char s[200];
        ERR_error_string_n(e, s, sizeof s);
        snprintf(buf, len, "TLS: %s", s);
        return;
    }
#endif
    if (dns != 0)
        snprintf(buf, len, "cannot resolve host: %s", evutil_gai_strerror(dns));
    else if ((what & BEV_EVENT_EOF) || w->ssl != NULL)
        snprintf(buf, len, "%sconnection closed by server",
                 w->ssl != NULL ? "TLS: " : "");
    else
        snprintf(buf, len, "%s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    rc__wire *w = arg;
    char why[256];
    int one = 1;

    (void)bev;
    w->busy++;
    if (what & BEV_EVENT_CONNECTED) {
        evutil_socket_t fd = bufferevent_getfd(w->bev);
        if (fd >= 0)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        w->up = 1;
        w->cbs->up(w, w->user);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        why_down(w, what, why, sizeof why);
        fail(w, why);
    }
    w->busy--;
    settle(w);
}

static struct bufferevent *make_bev(rc__wire *w, struct event_base *base,
                                    struct ssl_ctx_st *tls,
                                    const rc__wire_addr *addr)
{
    int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
#ifdef RC_WITH_TLS
    const char *name = addr->sni ? addr->sni : addr->host;
    struct in6_addr ip;
    SSL *ssl;
    int literal;

    if (tls != NULL) {
        if ((ssl = SSL_new(tls)) == NULL)
            return NULL;
        literal = name != NULL && (evutil_inet_pton(AF_INET, name, &ip) == 1 ||
                                   evutil_inet_pton(AF_INET6, name, &ip) == 1);
        if (name != NULL && !literal)
            SSL_set_tlsext_host_name(ssl, name);
        if (name != NULL &&
            (literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
                     : X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), name,
                                                   0)) != 1) {
            SSL_free(ssl);
            return NULL;
        }
        w->ssl = ssl;
        return bufferevent_openssl_socket_new(base, -1, ssl,
                                              BUFFEREVENT_SSL_CONNECTING, opts);
    }
#else
    (void)w;
    (void)tls;
    (void)addr;
#endif
    return bufferevent_socket_new(base, -1, opts);
}

static int start_connect(rc__wire *w, struct evdns_base *dns,
                         const rc__wire_addr *addr)
{
    struct sockaddr_un sun;

    if (addr->host != NULL)
        return bufferevent_socket_connect_hostname(w->bev, dns, AF_UNSPEC,
                                                   addr->host, addr->port);
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (addr->path == NULL || strlen(addr->path) >= sizeof sun.sun_path)
        return -1;
    strcpy(sun.sun_path, addr->path);
    return bufferevent_socket_connect(w->bev, (struct sockaddr *)&sun,
                                      (int)sizeof sun);
}

rc__wire *rc__wire_open(struct event_base *base, struct evdns_base *dns,
                        struct ssl_ctx_st *tls, const rc__wire_addr *addr,
                        const rc__wire_cbs *cbs, void *user, char *err,
                        size_t errlen)
{
    rc__wire *w = calloc(1, sizeof *w);

    snprintf(err, errlen, "out of memory");
    if (w == NULL)
        return NULL;
    w->cbs = cbs;
    w->user = user;
    if ((w->rd = reader_new(w)) == NULL ||
        (w->bev = make_bev(w, base, tls, addr)) == NULL) {
        destroy(w);
        return NULL;
    }
    bufferevent_setcb(w->bev, on_read, NULL, on_event, w);
    bufferevent_set_max_single_read(w->bev, MAX_READ);
    bufferevent_enable(w->bev, EV_READ | EV_WRITE);
#ifdef RC_WITH_TLS
    if (w->ssl != NULL)
        bufferevent_openssl_set_allow_dirty_shutdown(w->bev, 1);
#endif
    if (start_connect(w, dns, addr) != 0) {
        snprintf(err, errlen, "cannot connect to %s",
                 addr->host   ? addr->host
                 : addr->path ? addr->path
                              : "?");
        destroy(w);
        return NULL;
    }
    return w;
}

rc__wire *rc__wire_adopt(struct event_base *base, evutil_socket_t fd,
                         const rc__wire_cbs *cbs, void *user)
{
    rc__wire *w = calloc(1, sizeof *w);

    if (w == NULL)
        return NULL;
    w->cbs = cbs;
    w->user = user;
    if (evutil_make_socket_nonblocking(fd) != 0 ||
        (w->rd = reader_new(w)) == NULL ||
        (w->bev = bufferevent_socket_new(base, fd, BEV_OPT_DEFER_CALLBACKS)) ==
            NULL) {
        destroy(w);
        return NULL;
    }
    bufferevent_setcb(w->bev, on_read, NULL, on_event, w);
    bufferevent_enable(w->bev, EV_READ | EV_WRITE);
    w->up = 1;
    return w;
}

/* ---- commands --------------------------------------------------------- */

static int send_owed(rc__wire *w, const char *cmd, size_t len, const owed *o)
{
    struct evbuffer *out;

    if (w == NULL || !w->up || w->dead || w->closed)
        return -1;
    out = bufferevent_get_output(w->bev);
    if (evbuffer_get_length(out) > MAX_OUT || owe(w, o) != 0)
        return -1;
    if (bufferevent_write(w->bev, cmd, len) != 0) {
        w->n--; /* take it back: nothing was written */
        return -1;
    }
    return 0;
}

int rc__wire_send(rc__wire *w, const char *cmd, size_t len, rc__wire_done done,
                  void *priv)
{
    owed o;

    memset(&o, 0, sizeof o);
    o.done = done;
    o.priv = priv;
    return send_owed(w, cmd, len, &o);
}

int rc__wire_subscribe(rc__wire *w, const char *verb, const char *chan,
                       size_t len, rc__wire_done done, void *priv)
{
    char head[64];
    size_t vlen = strlen(verb), i, hl;
    owed o;
    char *cmd;
    int rv;

    memset(&o, 0, sizeof o);
    for (i = 1; i < sizeof kinds / sizeof kinds[0] - 1; i++)
        if (strcasecmp(verb, kinds[i]) == 0)
            o.kind = (int)i;
    if (o.kind == 0 || (o.chan = malloc(len ? len : 1)) == NULL)
        return -1;
    memcpy(o.chan, chan, len);
    o.chan_len = len;
    o.done = done;
    o.priv = priv;
    hl = (size_t)snprintf(head, sizeof head, "*2\r\n$%zu\r\n%s\r\n$%zu\r\n",
                          vlen, verb, len);
    if ((cmd = malloc(hl + len + 2)) == NULL) {
        free(o.chan);
        return -1;
    }
    memcpy(cmd, head, hl);
    memcpy(cmd + hl, chan, len);
    memcpy(cmd + hl + len, "\r\n", 2);
    if ((rv = send_owed(w, cmd, hl + len + 2, &o)) != 0)
        free(o.chan);
    else
        w->subscribed = 1;
    free(cmd);
    return rv;
}

int rc__wire_ping(rc__wire *w, rc__wire_done done, void *priv)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    owed o;

    memset(&o, 0, sizeof o);
    o.done = done;
    o.priv = priv;
    o.kind = OWED_PONG;
    return send_owed(w, ping, sizeof ping - 1, &o);
}

int rc__wire_up(const rc__wire *w)
{
    return w != NULL && w->up && !w->dead && !w->closed;
}

unsigned long rc__wire_reads(const rc__wire *w)
{
    return w != NULL ? w->reads : 0;
}
