/*
 * rc-envelope: look at roomcast's Redis payloads from the shell.
 *
 *   rc-envelope decode [--max-data N] [--verbose]  < payload
 *       prints the SSE frame a client would receive (exit 0), or
 *       "error: <reason>" on stderr (exit 1).
 *   rc-envelope encode --data JSON [--event E] [--id I] [--retry N]
 *                      [--node N] [--except C] [--meta JSON]
 *       prints the envelope and a newline.
 *
 * Uses the public API only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roomcast/roomcast.h>

static void usage(FILE *out)
{
    fputs(
        "usage: rc-envelope decode [--max-data BYTES] [--verbose] < payload\n"
        "       rc-envelope encode --data JSON [--event E] [--id I]"
        " [--retry MS]\n"
        "                          [--node ID] [--except CONN] [--meta JSON]\n"
        "       rc-envelope --version\n"
        "\n"
        "decode: reads one Redis payload (a roomcast envelope) on stdin and\n"
        "        prints the SSE frame a client would receive, or\n"
        "        'error: <reason>' on stderr with exit status 1.\n"
        "        --verbose also prints node, except and meta on stderr.\n"
        "encode: prints the envelope for a message, then a newline.\n"
        "        --node defaults to \"rc-envelope\".\n",
        out);
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "error: %s%s%s\n", what ? what : "", what ? ": " : "",
            rc_strerror(err));
    return 1;
}

/* A whole non-negative decimal argument, or -1. */
static long long parse_count(const char *s)
{
    char *end;
    long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    return v;
}

/* Read all of stdin: 0, RC_ETOOBIG past max bytes, RC_ENOMEM, or
 * RC_EINVAL for a read error. */
static int read_all(size_t max, char **out, size_t *len)
{
    size_t cap = 0, n = 0, got;
    char *buf = NULL, *grown;

    for (;;) {
        if (n > max) {
            free(buf);
            return RC_ETOOBIG;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                return RC_ENOMEM;
            }
            buf = grown;
        }
        got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return RC_EINVAL;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int cmd_decode(int argc, char **argv)
{
    rc_limits lim = {0, 0};
    rc_envelope env;
    char *in = NULL, *scratch = NULL, *frame = NULL;
    size_t in_len = 0, frame_len = 0;
    int verbose = 0, rv, i;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (strcmp(argv[i], "--max-data") == 0 && i + 1 < argc &&
                   parse_count(argv[i + 1]) > 0) {
            lim.max_data = (size_t)parse_count(argv[++i]);
        } else {
            usage(stderr);
            return 2;
        }
    }
    rv = read_all((lim.max_data ? lim.max_data : RC_DEFAULT_MAX_DATA) +
                      RC_ENVELOPE_SLACK,
                  &in, &in_len);
    if (rv != 0)
        return fail(rv == RC_EINVAL ? "reading stdin" : NULL, rv);
    scratch = malloc(in_len + 1);
    rv = scratch
             ? rc_envelope_decode(in, in_len, &lim, &env, scratch, in_len + 1)
             : RC_ENOMEM;
    if (rv == 0 && rc_sse_format(&env.msg, NULL, 0, &frame_len) == RC_ENOBUFS)
        rv = (frame = malloc(frame_len)) == NULL
                 ? RC_ENOMEM
                 : rc_sse_format(&env.msg, frame, frame_len, &frame_len);
    if (rv == 0) {
        if (verbose)
            fprintf(stderr, "node: %s\nexcept: %s\nmeta: %.*s\n", env.node,
                    env.except ? env.except : "(none)",
                    env.meta ? (int)env.meta_len : 6,
                    env.meta ? env.meta : "(none)");
        fwrite(frame, 1, frame_len, stdout);
        if (fflush(stdout) != 0)
            rv = RC_EINVAL;
    }
    free(frame);
    free(scratch);
    free(in);
    return rv == 0 ? 0 : fail(NULL, rv);
}

static int cmd_encode(int argc, char **argv)
{
    rc_envelope env;
    const char *data = NULL;
    char *out;
    size_t len = 0;
    int rv, i;

    memset(&env, 0, sizeof env);
    env.msg.retry = -1;
    env.node = "rc-envelope";
    for (i = 0; i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        if (strcmp(opt, "--data") == 0) {
            data = val;
        } else if (strcmp(opt, "--event") == 0) {
            env.msg.event = val;
        } else if (strcmp(opt, "--id") == 0) {
            env.msg.id = val;
        } else if (strcmp(opt, "--retry") == 0) {
            env.msg.retry = parse_count(val);
            if (env.msg.retry < 0)
                return fail("--retry", RC_ERETRY);
        } else if (strcmp(opt, "--node") == 0) {
            env.node = val;
        } else if (strcmp(opt, "--except") == 0) {
            env.except = val;
        } else if (strcmp(opt, "--meta") == 0) {
            env.meta = val;
            env.meta_len = strlen(val);
        } else {
            break;
        }
    }
    if (i != argc || data == NULL) {
        usage(stderr);
        return 2;
    }
    env.msg.data = data;
    env.msg.data_len = strlen(data);
    rv = rc_envelope_encode(&env, NULL, NULL, 0, &len);
    if (rv != RC_ENOBUFS)
        return fail(NULL, rv);
    out = malloc(len + 1);
    if (out == NULL)
        return fail(NULL, RC_ENOMEM);
    rv = rc_envelope_encode(&env, NULL, out, len, &len);
    if (rv == 0) {
        out[len++] = '\n';
        fwrite(out, 1, len, stdout);
        if (fflush(stdout) != 0)
            rv = RC_EINVAL;
    }
    free(out);
    return rv == 0 ? 0 : fail(NULL, rv);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "decode") == 0)
        return cmd_decode(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "encode") == 0)
        return cmd_encode(argc - 2, argv + 2);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("rc-envelope (roomcast %s)\n", rc_version_string());
        return 0;
    }
    if (argc == 2 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
