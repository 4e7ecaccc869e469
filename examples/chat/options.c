/*
 * rc-chat's options: the environment (PORT, REDIS_URL, NODE_ID, BIND),
 * then the flags (getopt_long: "--port N", "--port=N", or an unambiguous
 * prefix), and --help.
 */
#define _GNU_SOURCE /* getopt_long */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "text.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: rc-chat [options]\n"
        "  --port N          TCP port (PORT; default 8080; 0: any free)\n"
        "  --bind ADDR       address to listen on (BIND; default 127.0.0.1)\n"
        "  --redis URL       redis://[[user]:password@]host[:port][/db],\n"
        "                    unix:///path[?db=N], rediss://...?cacert=F "
        "(TLS),\n"
        "                    redis-sentinel://h:p[,h:p...]/master,\n"
        "                    redis-cluster://h:p[,h:p...][?pubsub=classic]\n"
        "                    (REDIS_URL); none: local rooms\n"
        "  --node-id ID      this node's id (NODE_ID; default: random UUID)\n"
        "  --prefix P        channel prefix (default sse:room:)\n"
        "  --max-streams N   concurrent event streams (default: open-file\n"
        "                    limit - %d); more get 503\n"
        "  --max-buffer N    bytes buffered per stream before it is closed\n"
        "                    (default 1048576)\n"
        "  --heartbeat-ms N  ': ping' interval (default 15000)\n"
        "  --timeout-ms N    deadline of a whole request, and of a stalled\n"
        "                    write on a stream (default 30000)\n"
        "  --lease-ms N      this node's lease in Redis: a node id held by a\n"
        "                    live node is refused; a dead node's lasts this\n"
        "                    long (default 15000)\n"
        "  --grace-ms N      presence: a user's last stream gone this long\n"
        "                    (and none back on any node) leaves (default "
        "10000)\n"
        "  --announce-max N  presence: a room with more users gets counts,\n"
        "                    not per-user events (default 100)\n"
        "  --post-rate N     POSTs per second per client address, across\n"
        "                    every node (default 20; 0: no limit); past it\n"
        "                    429 with Retry-After\n"
        "  --post-burst N    POSTs at once (default 2 x --post-rate)\n"
        "  --session-cap N   users in a session at once (default 2)\n"
        "  --tombstone-s N   a closed session's code stays refused this\n"
        "                    long (default 86400)\n"
        "  --session-rate N  POST /session per hour per client address,\n"
        "                    across every node (default 10; 0: no limit)\n"
        "  --verify-ms N     how often a node asks Redis whether a session\n"
        "                    it has streams in was closed while it was cut\n"
        "                    off (default 30000)\n"
        "  --history N       messages kept per room, with ids E-S, for\n"
        "                    Last-Event-ID resumes (default 1000; 0: off;\n"
        "                    always off without --redis)\n"
        "  --history-ttl-s N a room's history is dropped this long after\n"
        "                    its last message (default 3600)\n"
        "  --replay-max N    a resume missing more messages gets rc:reset\n"
        "                    (default 1000)\n"
        "  --history-strict  while Redis is down, refuse posts (503)\n"
        "                    instead of delivering them here without id\n"
        "  --help            this text\n",
        CHAT_FD_RESERVE);
}

static int number(const char *flag, const char *s, unsigned long min,
                  unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < min ||
        v > max) {
        fprintf(stderr,
                "rc-chat: %s: expected a number from %lu to %lu, got '%s'\n",
                flag, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    OPT_PORT = 256,
    OPT_BIND,
    OPT_REDIS,
    OPT_NODE_ID,
    OPT_PREFIX,
    OPT_MAX_STREAMS,
    OPT_MAX_BUFFER,
    OPT_HEARTBEAT_MS,
    OPT_TIMEOUT_MS,
    OPT_LEASE_MS,
    OPT_GRACE_MS,
    OPT_ANNOUNCE_MAX,
    OPT_POST_RATE,
    OPT_POST_BURST,
    OPT_SESSION_CAP,
    OPT_TOMBSTONE_S,
    OPT_SESSION_RATE,
    OPT_VERIFY_MS,
    OPT_HISTORY,
    OPT_HISTORY_TTL_S,
    OPT_REPLAY_MAX,
    OPT_HISTORY_STRICT
};

static const struct option long_options[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"bind", required_argument, NULL, OPT_BIND},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"node-id", required_argument, NULL, OPT_NODE_ID},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"max-streams", required_argument, NULL, OPT_MAX_STREAMS},
    {"max-buffer", required_argument, NULL, OPT_MAX_BUFFER},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT_MS},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
    {"lease-ms", required_argument, NULL, OPT_LEASE_MS},
    {"grace-ms", required_argument, NULL, OPT_GRACE_MS},
    {"announce-max", required_argument, NULL, OPT_ANNOUNCE_MAX},
    {"post-rate", required_argument, NULL, OPT_POST_RATE},
    {"post-burst", required_argument, NULL, OPT_POST_BURST},
    {"session-cap", required_argument, NULL, OPT_SESSION_CAP},
    {"tombstone-s", required_argument, NULL, OPT_TOMBSTONE_S},
    {"session-rate", required_argument, NULL, OPT_SESSION_RATE},
    {"verify-ms", required_argument, NULL, OPT_VERIFY_MS},
    {"history", required_argument, NULL, OPT_HISTORY},
    {"history-ttl-s", required_argument, NULL, OPT_HISTORY_TTL_S},
    {"replay-max", required_argument, NULL, OPT_REPLAY_MAX},
    {"history-strict", no_argument, NULL, OPT_HISTORY_STRICT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The defaults, and what the environment sets. Returns 0 or 2. */
static int from_env(options *o, unsigned long *port)
{
    const char *env;

    o->bind = (env = getenv("BIND")) != NULL && *env ? env : "127.0.0.1";
    o->redis = (env = getenv("REDIS_URL")) != NULL && *env ? env : NULL;
    o->node_id = (env = getenv("NODE_ID")) != NULL && *env ? env : NULL;
    o->prefix = RC_DEFAULT_PREFIX;
    o->max_buffer = 1 << 20;
    o->heartbeat_ms = 15000;
    o->timeout_ms = 30000;
    o->lease_ms = 15000;
    o->grace_ms = 10000;
    o->announce_max = 100;
    o->post_rate = 20;
    o->session_cap = 2;
    o->tombstone_s = 86400;
    o->session_rate = 10;
    o->verify_ms = 30000;
    o->history = 1000;
    o->history_ttl_s = 3600;
    o->replay_max = 1000;
    *port = 8080;
    if ((env = getenv("PORT")) != NULL && *env &&
        number("PORT", env, 0, 65535, port) < 0)
        return 2;
    return 0;
}

/* The session and history options. Returns 0 or -1. */
static int set_session_option(options *o, int opt, const char *flag,
                              const char *v)
{
    if (opt == OPT_SESSION_CAP)
        return number(flag, v, 1, 1000000, &o->session_cap);
    if (opt == OPT_TOMBSTONE_S)
        return number(flag, v, 1, 31536000, &o->tombstone_s);
    if (opt == OPT_SESSION_RATE)
        return number(flag, v, 0, 1000000, &o->session_rate);
    if (opt == OPT_VERIFY_MS)
        return number(flag, v, 100, 86400000, &o->verify_ms);
    if (opt == OPT_HISTORY)
        return number(flag, v, 0, 10000000, &o->history);
    if (opt == OPT_HISTORY_TTL_S)
        return number(flag, v, 1, 31536000, &o->history_ttl_s);
    if (opt == OPT_REPLAY_MAX)
        return number(flag, v, 1, 10000000, &o->replay_max);
    if (opt == OPT_HISTORY_STRICT)
        o->history_strict = 1;
    return 0;
}

/* Set the option opt (long_options[index]) to v. Returns 0 or 2. */
static int set_option(options *o, unsigned long *port, int opt, int index,
                      const char *v)
{
    char flag[32];
    int rc = 0;

    snprintf(flag, sizeof flag, "--%s", long_options[index].name);
    if (opt == OPT_PORT)
        rc = number(flag, v, 0, 65535, port);
    else if (opt == OPT_BIND)
        o->bind = v;
    else if (opt == OPT_REDIS)
        o->redis = *v ? v : NULL;
    else if (opt == OPT_NODE_ID)
        o->node_id = v;
    else if (opt == OPT_PREFIX)
        o->prefix = v;
    else if (opt == OPT_MAX_STREAMS)
        rc = number(flag, v, 1, 10000000, &o->max_streams);
    else if (opt == OPT_MAX_BUFFER)
        rc = number(flag, v, 4096, 1UL << 30, &o->max_buffer);
    else if (opt == OPT_HEARTBEAT_MS)
        rc = number(flag, v, 10, 3600000, &o->heartbeat_ms);
    else if (opt == OPT_TIMEOUT_MS)
        rc = number(flag, v, 100, 3600000, &o->timeout_ms);
    else if (opt == OPT_LEASE_MS)
        rc = number(flag, v, 1000, 3600000, &o->lease_ms);
    else if (opt == OPT_GRACE_MS)
        rc = number(flag, v, 1, 86400000, &o->grace_ms);
    else if (opt == OPT_ANNOUNCE_MAX)
        rc = number(flag, v, 1, 1000000, &o->announce_max);
    else if (opt == OPT_POST_RATE)
        rc = number(flag, v, 0, 1000000, &o->post_rate);
    else if (opt == OPT_POST_BURST)
        rc = number(flag, v, 1, 1000000, &o->post_burst);
    else
        rc = set_session_option(o, opt, flag, v);
    return rc < 0 ? 2 : 0;
}

/* argv[at] is not an option we know, or lacks its value. Returns 2. */
static int bad_option(int argc, char **argv, int at)
{
    if (at + 1 >= argc)
        fprintf(stderr, "rc-chat: unknown option or missing value: %s\n",
                argv[at]);
    else
        fprintf(stderr, "rc-chat: unknown option: %s\n", argv[at]);
    usage(stderr);
    return 2;
}

/* Names that go on the wire must be printable UTF-8. Returns 0 or 2. */
static int check_names(const options *o)
{
    if (o->node_id != NULL && !chat_name_ok(o->node_id, strlen(o->node_id))) {
        fprintf(stderr,
                "rc-chat: --node-id: control characters or invalid UTF-8\n");
        return 2;
    }
    if (!chat_name_ok(o->prefix, strlen(o->prefix))) {
        fprintf(stderr,
                "rc-chat: --prefix: control characters or invalid UTF-8\n");
        return 2;
    }
    return 0;
}

/* Overwrite the password of url with '*' in s, where s holds url. */
static void blank_secret(char *s, const char *url)
{
    char *p = s != NULL ? strstr(s, url) : NULL;
    size_t off, n;

    if (p == NULL)
        return;
    n = chat_url_secret(url, &off);
    memset(p + off, '*', n);
}

/* Keep the Redis URL in a copy of our own, and blank its password where
 * ps and /proc/PID/cmdline and environ show it. */
static void hide_secret(int argc, char **argv, options *o)
{
    size_t off;
    int i;

    if (o->redis == NULL || chat_url_secret(o->redis, &off) == 0)
        return;
    o->redis_copy = chat_strdup(o->redis);
    for (i = 1; i < argc; i++)
        blank_secret(argv[i], o->redis_copy);
    blank_secret(getenv("REDIS_URL"), o->redis_copy);
    o->redis = o->redis_copy;
}

int options_parse(int argc, char **argv, options *o)
{
    unsigned long port;
    int rc = from_env(o, &port), at = optind, opt, index;

    opterr = 0; /* our messages, not getopt's */
    while (rc == 0) {
        at = optind;
        index = 0;
        /* "+": stop at the first non-option (rc-chat takes none); ":": a
         * missing value is ':', an unknown option '?'. */
        opt = getopt_long(argc, argv, "+:h", long_options, &index);
        if (opt == -1)
            break;
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == '?' || opt == ':')
            return bad_option(argc, argv, at);
        rc = set_option(o, &port, opt, index, optarg);
    }
    if (rc != 0)
        return rc;
    if (at < argc) /* a non-option, or "--" */
        return bad_option(argc, argv, at);
    o->port = (unsigned)port;
    rc = check_names(o);
    if (rc == 0)
        hide_secret(argc, argv, o);
    return rc;
}
