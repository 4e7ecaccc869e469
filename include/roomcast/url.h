/*
 * roomcast: Redis URLs, parsed without any I/O, so that a host on any
 * event loop (libuv, epoll, libevent) can use the same syntax as
 * rc_link_open(). Part of the core library (link roomcast); roomcast/
 * libevent.h includes this header, so code written against it still
 * builds unchanged.
 */
#ifndef ROOMCAST_URL_H
#define ROOMCAST_URL_H

#include "roomcast.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A parsed Redis URL (rc_redis_url_parse). */
typedef struct rc_redis_url {
    char host[256];     /* TCP host, or "" for a Unix socket */
    int port;           /* TCP port (default 6379) */
    char path[108];     /* Unix socket path, or "" */
    char user[128];     /* ACL user, or "" */
    char password[256]; /* or "" */
    int db;             /* database number (default 0) */
} rc_redis_url;

/**
 * Parse a Redis URL: redis://[[user]:password@]host[:port][/db] or
 * unix:///path/to/socket[?db=N]. Percent-escapes in the user and password
 * are decoded. url is borrowed; only *out is written. Reentrant: any
 * thread. Returns 0, or RC_EINVAL (NULL arguments) or RC_EURL (malformed,
 * unknown scheme, port or db out of range, a component too long); on error
 * *out is unspecified.
 */
ROOMCAST_EXTERN int rc_redis_url_parse(const char *url, rc_redis_url *out);

#ifdef __cplusplus
}
#endif

#endif /* ROOMCAST_URL_H */
