/*
 * bench_codec: nanoseconds per envelope for rc_envelope_encode() and
 * rc_envelope_decode(), on chat-like data of 64 B, 1 KiB and 64 KiB.
 *
 *   bench_codec [--dump DIR] [--time-ms N] [--warmup-ms N] [--reps N]
 *               [--max-iters N] [--op encode|decode] [--size N]
 *
 * One JSON line per (op, size) on stdout, e.g.
 *   {"impl":"roomcast","op":"encode","size":64,"ns_per_op":81.2,...}
 * ns_per_op is the median of --reps timed runs; each run lasts --time-ms or
 * --max-iters iterations, whichever comes first.
 *
 * --dump DIR writes the exact envelope bytes benchmarked for each size to
 * DIR/envelope-SIZE.json, so that bench_codec.mjs times Node on the very
 * same envelopes. --op and --size run only that op / data size (for
 * profiling, e.g. under perf record).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "roomcast/roomcast.h"

#define BENCH_NAME "bench_codec"
#include "bench_util.h"

static const size_t data_sizes[] = {64, 1024, 65536};
#define N_SIZES (sizeof data_sizes / sizeof data_sizes[0])

enum op { OP_ENCODE, OP_DECODE };
static const char *const op_names[] = {"encode", "decode"};

struct options {
    const char *dump_dir;
    struct bench_timing timing;
    int only_op;      /* -1: both */
    size_t only_size; /* 0: all */
};

struct bench_case {
    size_t size;     /* data JSON text length */
    char *data;      /* the data JSON text */
    rc_envelope env; /* what encode is given */
    char *enc_buf;   /* encode output buffer, exactly enc_size bytes */
    size_t enc_size;
    char *wire; /* the encoded envelope, what decode is given */
    size_t wire_len;
    char *scratch; /* decode scratch, wire_len bytes */
    size_t scratch_size;
};

/* ---- test data -------------------------------------------------------- */

/*
 * Pieces of chat text, already in JSON form (escapes written out) and in
 * JSON.stringify's canonical form, so that Node re-serialises them to the
 * same bytes: only \" \\ \n \t as escapes, non-ASCII as raw UTF-8. Mostly
 * ASCII, with a few escapes and 2-, 3- and 4-byte UTF-8 sequences.
 */
static const char *const text_pieces[] = {
    "Hey team, ",
    "the deploy went out at 10:42 ",
    "\xe2\x80\x94 ", /* em dash */
    "all green on staging. ",
    "Dashboard says ",
    "\\\"p99 latency 38 ms\\\" ",
    "which is fine.\\n",
    "Lunch at the caf\xc3\xa9 ",
    "around noon? ",
    "Z\xc3\xbcrich folks are ",
    "joining remotely \xf0\x9f\x99\x82 ", /* slightly smiling face */
    "Logs are in C:\\\\temp\\\\deploy ",
    "if anyone wants them.\\n",
    "\\tnext: ",
    "migrate the \xe6\x97\xa5\xe6\x9c\xac region, ", /* "Japan" */
    "then rotate keys ",
    "and close the ticket. ",
    "Thanks! ",
};
#define N_PIECES (sizeof text_pieces / sizeof text_pieces[0])

static const char data_prefix[] = "{\"user\":\"alice\",\"text\":\"";
static const char data_suffix[] =
    "\",\"ts\":1732500000000,\"tags\":[\"a\",\"b\"]}";
static const char pad_text[] = "ok see you later ";

/* Build the data JSON text of exactly size bytes into a new buffer. */
static char *make_data(size_t size)
{
    size_t pre = sizeof data_prefix - 1, suf = sizeof data_suffix - 1;
    size_t room, pos = 0, i = 0, k = 0;
    char *text, *out;

    if (size < pre + suf)
        die("data size too small for the chat object", 0);
    room = size - pre - suf;
    text = xmalloc(room + 1);
    /* Whole pieces while they fit, then single ASCII letters to the end, so
     * that no escape or UTF-8 sequence is ever cut. */
    for (;;) {
        size_t n = strlen(text_pieces[i % N_PIECES]);
        if (pos + n > room)
            break;
        memcpy(text + pos, text_pieces[i % N_PIECES], n);
        pos += n;
        i++;
    }
    while (pos < room)
        text[pos++] = pad_text[k++ % (sizeof pad_text - 1)];

    out = xmalloc(size);
    memcpy(out, data_prefix, pre);
    memcpy(out + pre, text, room);
    memcpy(out + pre + room, data_suffix, suf);
    free(text);
    return out;
}

static void case_init(struct bench_case *c, size_t size)
{
    rc_message init = RC_MESSAGE_INIT;
    rc_envelope back;
    size_t need = 0, len = 0;
    int rc;

    memset(c, 0, sizeof *c);
    c->size = size;
    c->data = make_data(size);

    c->env.msg = init;
    c->env.msg.event = "message";
    c->env.msg.data = c->data;
    c->env.msg.data_len = size;
    c->env.msg.id = "1732500000000-42";
    c->env.node = "5f0c6e3a-9b1d-4c7e-8a2f-3d4b5c6d7e8f";
    c->env.except = NULL;
    c->env.meta = NULL;
    c->env.meta_len = 0;

    rc = rc_envelope_encode(&c->env, NULL, NULL, 0, &need);
    if (rc != RC_ENOBUFS && rc != 0)
        die("sizing encode failed", rc);
    c->enc_size = need;
    c->enc_buf = xmalloc(need);
    rc = rc_envelope_encode(&c->env, NULL, c->enc_buf, c->enc_size, &len);
    if (rc != 0)
        die("encode failed", rc);
    if (len != need)
        die("encode wrote a length other than the one it asked for", 0);

    c->wire_len = len;
    c->wire = xmalloc(len);
    memcpy(c->wire, c->enc_buf, len);
    c->scratch_size = len;
    c->scratch = xmalloc(c->scratch_size);

    /* Check the round trip once, so that a decoder failing early (and so
     * looking fast) cannot go unnoticed. The loops check rc as well. */
    rc = rc_envelope_decode(c->wire, c->wire_len, NULL, &back, c->scratch,
                            c->scratch_size);
    if (rc != 0)
        die("decode of our own envelope failed", rc);
    if (back.msg.data_len != size || memcmp(back.msg.data, c->data, size) ||
        !back.msg.event || strcmp(back.msg.event, c->env.msg.event) ||
        !back.msg.id || strcmp(back.msg.id, c->env.msg.id) || !back.node ||
        strcmp(back.node, c->env.node) || back.except || back.meta ||
        back.msg.retry != -1)
        die("decode(encode(env)) differs from env", 0);
}

static void case_free(struct bench_case *c)
{
    free(c->data);
    free(c->enc_buf);
    free(c->wire);
    free(c->scratch);
}

static void case_dump(const struct bench_case *c, const char *dir)
{
    char path[4096];
    FILE *f;

    if (snprintf(path, sizeof path, "%s/envelope-%zu.json", dir, c->size) >=
        (int)sizeof path)
        die("--dump path too long", 0);
    f = fopen(path, "wb");
    if (!f || fwrite(c->wire, 1, c->wire_len, f) != c->wire_len ||
        fclose(f) != 0) {
        fprintf(stderr, "bench_codec: cannot write %s: %s\n", path,
                strerror(errno));
        exit(1);
    }
}

/* ---- timing ------------------------------------------------------------ */

/* Run op n times; returns the OR of every return code (0 if all passed). */
static int run_batch(const struct bench_case *c, enum op op, uint64_t n)
{
    uint64_t acc = 0, i;
    int bad = 0;

    if (op == OP_ENCODE) {
        for (i = 0; i < n; i++) {
            size_t len = 0;
            int rc = rc_envelope_encode(&c->env, NULL, c->enc_buf, c->enc_size,
                                        &len);
            bad |= rc;
            if (rc == 0) /* on error len and buf are unspecified */
                acc += len + (unsigned char)c->enc_buf[len - 1];
        }
    } else {
        for (i = 0; i < n; i++) {
            rc_envelope out;
            int rc = rc_envelope_decode(c->wire, c->wire_len, NULL, &out,
                                        c->scratch, c->scratch_size);
            bad |= rc;
            if (rc == 0) /* on error out is unspecified */
                acc += out.msg.data_len + (unsigned char)out.node[0];
        }
    }
    sink += acc;
    return bad;
}

/* One op on one case, for bench_measure. */
struct codec_run {
    const struct bench_case *c;
    enum op op;
};

static int codec_batch(void *ctx, uint64_t n)
{
    const struct codec_run *run = ctx;
    return run_batch(run->c, run->op, n);
}

static struct bench_result measure(const struct bench_case *c, enum op op,
                                   const struct options *o)
{
    struct codec_run run;

    run.c = c;
    run.op = op;
    return bench_measure(codec_batch, &run, &o->timing, "codec call failed",
                         "codec call failed during warm-up");
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: bench_codec [--dump DIR] [--time-ms N] [--warmup-ms N]\n"
          "                   [--reps N] [--max-iters N]\n"
          "                   [--op encode|decode] [--size 64|1024|65536]\n",
          f);
}

int main(int argc, char **argv)
{
    struct options o = {NULL, BENCH_TIMING_DEFAULTS, -1, 0};
    struct bench_case cases[N_SIZES];
    size_t s;
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dump") && v) {
            o.dump_dir = v;
            i++;
        } else if (bench_timing_arg(&o.timing, a, v)) {
            i++;
        } else if (!strcmp(a, "--op") && v &&
                   (!strcmp(v, "encode") || !strcmp(v, "decode"))) {
            o.only_op = !strcmp(v, "encode") ? OP_ENCODE : OP_DECODE;
            i++;
        } else if (!strcmp(a, "--size")) {
            o.only_size = (size_t)parse_num(a, v);
            i++;
        } else {
            return bench_help_or_bad_arg(a, usage);
        }
    }
    if (o.only_size) {
        for (s = 0; s < N_SIZES && data_sizes[s] != o.only_size; s++)
            ;
        if (s == N_SIZES) {
            fputs("bench_codec: --size is one of 64, 1024, 65536\n", stderr);
            return 2;
        }
    }
    if (bench_timing_bad(&o.timing))
        return 2;

    if (o.dump_dir && mkdir(o.dump_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_codec: cannot create %s: %s\n", o.dump_dir,
                strerror(errno));
        return 1;
    }

    for (s = 0; s < N_SIZES; s++) {
        case_init(&cases[s], data_sizes[s]);
        if (o.dump_dir)
            case_dump(&cases[s], o.dump_dir);
    }

    for (s = 0; s < N_SIZES; s++) {
        enum op op;
        if (o.only_size && o.only_size != cases[s].size)
            continue;
        for (op = OP_ENCODE; op <= OP_DECODE; op++) {
            struct bench_result r;
            if (o.only_op >= 0 && (int)op != o.only_op)
                continue;
            r = measure(&cases[s], op, &o);
            printf("{\"impl\":\"roomcast\",\"op\":\"%s\",\"size\":%zu,"
                   "\"ns_per_op\":%.1f,\"iters\":%llu,\"reps\":%u,"
                   "\"min_ns\":%.1f,\"max_ns\":%.1f,\"envelope_bytes\":%zu}\n",
                   op_names[op], cases[s].size, r.median_ns,
                   (unsigned long long)r.iters, o.timing.reps, r.min_ns,
                   r.max_ns, cases[s].wire_len);
            fflush(stdout);
        }
    }

    for (s = 0; s < N_SIZES; s++)
        case_free(&cases[s]);
    return 0;
}
