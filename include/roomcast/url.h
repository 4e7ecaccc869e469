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

/** Kinds of Redis URL. */
enum rc_redis_url_kind {
    RC_URL_REDIS = 0,    /* one server: redis://, rediss://, unix:// */
    RC_URL_SENTINEL = 1, /* a master found through sentinels */
    RC_URL_CLUSTER = 2   /* a Redis Cluster, from seed nodes */
};

#define RC_URL_MAX_HOSTS 16 /* sentinels or cluster seeds */

/** One host:port of a URL. */
typedef struct rc_redis_host {
    char host[256]; /* name, IPv4, or IPv6 (without brackets) */
    int port;
} rc_redis_host;

/** A parsed Redis URL (rc_redis_url_parse). */
typedef struct rc_redis_url {
    char host[256];     /* TCP host, or "" for a Unix socket */
    int port;           /* TCP port (default 6379) */
    char path[108];     /* Unix socket path, or "" */
    char user[128];     /* ACL user, or "" */
    char password[256]; /* or "" */
    int db;             /* database number (default 0) */
    /* Since 0.2 (fields only ever added at the end): */
    int kind;   /* enum rc_redis_url_kind */
    int tls;    /* 1: rediss, rediss-sentinel, rediss-cluster */
    int nhosts; /* sentinels or seeds in hosts (>= 1; host, port: the
                   first); 1 for a plain TCP URL, 0 for unix:// */
    rc_redis_host hosts[RC_URL_MAX_HOSTS];
    char master[128]; /* RC_URL_SENTINEL: the master's name */
    int classic;      /* RC_URL_CLUSTER: ?pubsub=classic (PUBLISH/SUBSCRIBE);
                         0: sharded (SPUBLISH/SSUBSCRIBE, the default) */
    /* TLS (query options, any TLS URL): */
    char cacert[256]; /* ?cacert=FILE: trusted CAs (PEM) */
    char capath[256]; /* ?capath=DIR: trusted CAs (hashed directory);
                         neither: the system's default store */
    char cert[256];   /* ?cert=FILE: client certificate chain (PEM) */
    char key[256];    /* ?key=FILE: its private key (PEM); with cert */
    char sni[256];    /* ?sni=NAME: the name sent and verified instead of
                         the host's (e.g. connecting by IP address) */
} rc_redis_url;

/**
 * Parse a Redis URL. Forms:
 *   redis://[[user]:password@]host[:port][/db][?options]
 *   rediss://...                       the same over TLS
 *   unix:///path/to/socket[?db=N]
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db][?options]
 *   rediss-sentinel://...              TLS to the sentinels and the master
 *   redis-cluster://[[user]:password@]host[:port][,host[:port]...][?options]
 *   rediss-cluster://...               TLS to every cluster node
 * Ports default to 6379 (26379 for sentinels). The user and password
 * (percent-escapes decoded) are those of the data nodes; sentinels are
 * asked without them. IPv6 hosts go in brackets. Options, joined by '&',
 * values percent-decoded: cacert, capath, cert, key, sni (TLS URLs only),
 * pubsub=sharded|classic (cluster URLs only), db (unix:// only). A cluster
 * URL takes no /db (a cluster has database 0 only); key and cert come
 * together. url is borrowed; only *out is written. Reentrant: any
 * thread. Returns 0, or RC_EINVAL (NULL arguments) or RC_EURL (malformed,
 * unknown scheme or option, a port or db out of range, a component too
 * long, more than RC_URL_MAX_HOSTS hosts); on error *out is zeroed.
 */
ROOMCAST_EXTERN int rc_redis_url_parse(const char *url, rc_redis_url *out);

#ifdef __cplusplus
}
#endif

#endif /* ROOMCAST_URL_H */
