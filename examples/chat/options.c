/* rc-chat's options: flags, the environment, --help. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
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
        "  --redis URL       redis://[[user]:password@]host[:port][/db] or\n"
        "                    unix:///path[?db=N] (REDIS_URL); none: local "
        "rooms\n"
        "  --node-id ID      this node's id (NODE_ID; default: random UUID)\n"
        "  --prefix P        channel prefix (default sse:room:)\n"
        "  --max-streams N   concurrent event streams (default: open-file\n"
        "                    limit - %d); more get 503\n"
        "  --max-buffer N    bytes buffered per stream before it is closed\n"
        "                    (default 1048576)\n"
        "  --heartbeat-ms N  ': ping' interval (default 15000)\n"
        "  --timeout-ms N    request read / stalled write timeout (default "
        "30000)\n"
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

int options_parse(int argc, char **argv, options *o)
{
    const char *env;
    unsigned long port = 8080;
    int i;

    o->bind = (env = getenv("BIND")) != NULL && *env ? env : "127.0.0.1";
    o->redis = (env = getenv("REDIS_URL")) != NULL && *env ? env : NULL;
    o->node_id = (env = getenv("NODE_ID")) != NULL && *env ? env : NULL;
    o->prefix = RC_DEFAULT_PREFIX;
    o->max_buffer = 1 << 20;
    o->heartbeat_ms = 15000;
    o->timeout_ms = 30000;
    if ((env = getenv("PORT")) != NULL && *env &&
        number("PORT", env, 0, 65535, &port) < 0)
        return 2;
    for (i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (v == NULL) {
            fprintf(stderr, "rc-chat: unknown option or missing value: %s\n",
                    f);
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(f, "--port") == 0) {
            if (number(f, v, 0, 65535, &port) < 0)
                return 2;
        } else if (strcmp(f, "--bind") == 0) {
            o->bind = v;
        } else if (strcmp(f, "--redis") == 0) {
            o->redis = *v ? v : NULL;
        } else if (strcmp(f, "--node-id") == 0) {
            o->node_id = v;
        } else if (strcmp(f, "--prefix") == 0) {
            o->prefix = v;
        } else if (strcmp(f, "--max-streams") == 0) {
            if (number(f, v, 1, 10000000, &o->max_streams) < 0)
                return 2;
        } else if (strcmp(f, "--max-buffer") == 0) {
            if (number(f, v, 4096, 1UL << 30, &o->max_buffer) < 0)
                return 2;
        } else if (strcmp(f, "--heartbeat-ms") == 0) {
            if (number(f, v, 10, 3600000, &o->heartbeat_ms) < 0)
                return 2;
        } else if (strcmp(f, "--timeout-ms") == 0) {
            if (number(f, v, 100, 3600000, &o->timeout_ms) < 0)
                return 2;
        } else {
            fprintf(stderr, "rc-chat: unknown option: %s\n", f);
            usage(stderr);
            return 2;
        }
    }
    o->port = (unsigned)port;
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
