/* The glue's own Redis connections (wire.c) and TLS (tls.c); not
 * installed. */
#ifndef RC_WIRE_H
#define RC_WIRE_H

#include <stddef.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

typedef struct rc__wire rc__wire;
struct evdns_base;
struct ssl_ctx_st;

/* A reply, or NULL when none will come (the wire went down or closed). */
typedef void (*rc__wire_done)(void *priv, const redisReply *reply);

typedef struct rc__wire_cbs {
    /* Connected (TLS handshake done): commands may be sent. */
    void (*up)(rc__wire *w, void *user);
    /* Down for good (why: a message, valid for the call): close it. */
    void (*down)(rc__wire *w, const char *why, void *user);
    /* A Pub/Sub push nobody waits for (a message, an unasked
     * (s)unsubscribe), or a reply to no command. */
    void (*push)(rc__wire *w, const redisReply *r, void *user);
} rc__wire_cbs;

/* Where a wire goes: host and port, or a Unix socket path. */
typedef struct rc__wire_addr {
    const char *host; /* NULL for path */
    int port;
    const char *path;
    const char *sni; /* TLS: the name sent and verified; NULL: host */
} rc__wire_addr;

/* Start connecting (names are resolved by dns, without blocking). tls
 * NULL: plain TCP. NULL when out of memory or the address is unusable
 * (err says why). cbs and user are borrowed; no callback comes before
 * this returns. */
rc__wire *rc__wire_open(struct event_base *base, struct evdns_base *dns,
                        struct ssl_ctx_st *tls, const rc__wire_addr *addr,
                        const rc__wire_cbs *cbs, void *user, char *err,
                        size_t errlen);

/* A wire on a connected socket fd (up at once; the caller keeps fd and
 * closes it after rc__wire_close): for tests and fuzzing. */
rc__wire *rc__wire_adopt(struct event_base *base, evutil_socket_t fd,
                         const rc__wire_cbs *cbs, void *user);

/* Close w: every reply still owed is answered NULL (here), then w is
 * freed, at once or, from inside one of w's callbacks, on the way out.
 * No callback of w's comes after this returns. NULL allowed. */
void rc__wire_close(rc__wire *w);

/* Send cmd (len bytes of RESP); done(priv, reply) once, later. 0, or -1:
 * w is not up, or its output holds more than its cap (done not called). */
int rc__wire_send(rc__wire *w, const char *cmd, size_t len, rc__wire_done done,
                  void *priv);

/* verb ("SUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "SUNSUBSCRIBE") for one
 * channel: done gets Redis' confirmation for it (or an error reply). */
int rc__wire_subscribe(rc__wire *w, const char *verb, const char *chan,
                       size_t len, rc__wire_done done, void *priv);

/* PING that works on a subscribed wire too. */
int rc__wire_ping(rc__wire *w, rc__wire_done done, void *priv);

/* 1 once up (and not down since). */
int rc__wire_up(const rc__wire *w);

/* Reads so far (for probes: a wire that reads is alive). */
unsigned long rc__wire_reads(const rc__wire *w);

/* tls.c: a client context from the URL's TLS options (cacert, capath,
 * cert, key; the system's CAs when neither cacert nor capath), peer
 * verification on. NULL with err set. */
struct ssl_ctx_st *rc__tls_ctx(const char *cacert, const char *capath,
                               const char *cert, const char *key, char *err,
                               size_t errlen);
void rc__tls_ctx_free(struct ssl_ctx_st *ctx);

#endif /* RC_WIRE_H */
