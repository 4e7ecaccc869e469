/*
 * libFuzzer target for rc_envelope_decode(): the input is one Redis payload.
 *
 * Properties:
 * - decoding with scratch_size == len never gives RC_ENOBUFS, and an error
 *   is always one of the reasons the header lists for decoding, RC_EJSON
 *   exactly for (valid UTF-8) input that is not JSON by an independent
 *   check of RFC 8259's grammar (other reasons that need no parsed value
 *   may come first: RC_EDEPTH, RC_EUTF8, RC_ETOOBIG);
 * - a decoded envelope satisfies the header: its spans lie inside the input
 *   and its strings inside scratch, node is set, event/id/node/except hold
 *   no CR, LF (a NUL would have ended them) and are valid UTF-8, the whole
 *   input is valid UTF-8 and, by an independent check of RFC 8259's
 *   grammar, one JSON text; data and meta are JSON values no deeper than
 *   the default limit; retry is -1 or in 0..RC_RETRY_MAX, and
 *   rc_message_check() accepts the message;
 * - round trip: encoding it succeeds (the size query giving exactly the
 *   length written), decoding that gives the same fields, and encoding the
 *   second decode gives the same bytes as the first encoding;
 * - tighter limits (picked from the input's last byte) only refuse more,
 *   with RC_ETOOBIG or RC_EDEPTH for a cause the input has, and never change
 *   what is decoded;
 * - rc_sse_format() accepts the message; its frame is the documented one
 *   and reads, with the independent parser, as exactly one event carrying
 *   the event type, last event id, data (CRLF and CR turned into LF) and
 *   retry, with nothing left over.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roomcast/roomcast.h>

#include "json_check.h"
#include "sse_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "fuzz_decode: property failed at %s:%d: ", __FILE__,   \
                __LINE__);                                                     \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        abort();                                                               \
    } while (0)

static int decode_reason(int err)
{
    switch (err) {
    case RC_ETOOBIG:
    case RC_EJSON:
    case RC_EDEPTH:
    case RC_EUTF8:
    case RC_ENOTENV:
    case RC_EVERSION:
    case RC_ENOMSG:
    case RC_ENODATA:
    case RC_ETYPE:
    case RC_ERETRY:
    case RC_ECHAR:
        return 1;
    default:
        return 0;
    }
}

static int inside(const void *p, size_t n, const void *base, size_t size)
{
    const char *c = p, *b = base;

    return c >= b && (size_t)(c - b) <= size && n <= size - (size_t)(c - b);
}

static void check_string(const char *what, const char *s, const char *scratch,
                         size_t scratch_size)
{
    size_t n;

    if (s == NULL)
        return;
    n = strlen(s); /* ASan reports a string running off scratch */
    if (!inside(s, n + 1, scratch, scratch_size))
        FAIL("%s is not inside scratch", what);
    if (strpbrk(s, "\r\n") != NULL)
        FAIL("%s holds CR or LF", what);
    if (!sse_utf8_valid((const unsigned char *)s, n))
        FAIL("%s is not valid UTF-8", what);
}

static int json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A raw JSON span: inside the input, without the whitespace around it. */
static void check_span(const char *what, const char *p, size_t n,
                       const uint8_t *in, size_t size)
{
    if (n == 0 || !inside(p, n, in, size))
        FAIL("%s span is not inside the input", what);
    if (json_ws(p[0]) || json_ws(p[n - 1]))
        FAIL("%s span keeps whitespace around the value", what);
}

static void check_decoded(const rc_envelope *env, const uint8_t *in,
                          size_t size, const char *scratch)
{
    unsigned depth = 0;
    int r;

    if (env->node == NULL)
        FAIL("node is NULL");
    check_string("event", env->msg.event, scratch, size);
    check_string("id", env->msg.id, scratch, size);
    check_string("node", env->node, scratch, size);
    check_string("except", env->except, scratch, size);
    if (env->msg.data == NULL)
        FAIL("data is NULL");
    check_span("data", env->msg.data, env->msg.data_len, in, size);
    if (env->meta != NULL)
        check_span("meta", env->meta, env->meta_len, in, size);
    if (env->msg.retry < -1 || env->msg.retry > RC_RETRY_MAX)
        FAIL("retry %lld out of range", env->msg.retry);
    if (!sse_utf8_valid(in, size))
        FAIL("accepted an envelope that is not valid UTF-8");
    if (json_text(in, size, &depth) == 0)
        FAIL("accepted an envelope that is not JSON (RFC 8259)");
    if (json_text(env->msg.data, env->msg.data_len, &depth) == 0)
        FAIL("data is not one JSON value");
    if (depth > RC_DEFAULT_MAX_DEPTH)
        FAIL("data nested %u deep, over the default limit", depth);
    if (env->meta != NULL) {
        if (json_text(env->meta, env->meta_len, &depth) == 0)
            FAIL("meta is not one JSON value");
        if (depth > RC_DEFAULT_MAX_DEPTH)
            FAIL("meta nested %u deep, over the default limit", depth);
    }
    r = rc_message_check(&env->msg, NULL);
    if (r != 0)
        FAIL("rc_message_check refuses a decoded message: %s", rc_err_name(r));
}

/* Encode env into a malloc'd buffer of the exact size the query gives. */
static char *encode(const rc_envelope *env, size_t *len)
{
    size_t need = 0, got = 0;
    char *buf;
    int r;

    r = rc_envelope_encode(env, NULL, NULL, 0, &need);
    if (r != RC_ENOBUFS || need == 0)
        FAIL("size query: %s, length %zu", rc_err_name(r), need);
    buf = malloc(need);
    if (buf == NULL)
        abort();
    r = rc_envelope_encode(env, NULL, buf, need, &got);
    if (r != 0)
        FAIL("encoding a decoded envelope: %s", rc_err_name(r));
    if (got != need)
        FAIL("encode wrote %zu bytes, size query said %zu", got, need);
    *len = got;
    return buf;
}

static int same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int same_span(const char *a, size_t alen, const char *b, size_t blen)
{
    if (a == NULL || b == NULL)
        return a == b;
    return alen == blen && memcmp(a, b, alen) == 0;
}

static void check_round_trip(const rc_envelope *env)
{
    rc_envelope env2;
    char *enc1, *enc2, *scratch;
    size_t len1, len2;
    int r;

    enc1 = encode(env, &len1);
    scratch = malloc(len1);
    if (scratch == NULL)
        abort();
    r = rc_envelope_decode(enc1, len1, NULL, &env2, scratch, len1);
    if (r != 0)
        FAIL("decoding the re-encoded envelope: %s", rc_err_name(r));
    if (!same_str(env->msg.event, env2.msg.event) ||
        !same_str(env->msg.id, env2.msg.id) ||
        !same_str(env->node, env2.node) || !same_str(env->except, env2.except))
        FAIL("a string field changed in the round trip");
    if (!same_span(env->msg.data, env->msg.data_len, env2.msg.data,
                   env2.msg.data_len))
        FAIL("data changed in the round trip");
    if (!same_span(env->meta, env->meta_len, env2.meta, env2.meta_len))
        FAIL("meta changed in the round trip");
    if (env->msg.retry != env2.msg.retry)
        FAIL("retry changed in the round trip: %lld, %lld", env->msg.retry,
             env2.msg.retry);
    enc2 = encode(&env2, &len2);
    if (len1 != len2 || memcmp(enc1, enc2, len1) != 0)
        FAIL("encoding is not idempotent");
    free(enc2);
    free(scratch);
    free(enc1);
}

static void check_frame(const rc_message *msg)
{
    const unsigned char *d = (const unsigned char *)msg->data;
    unsigned char *frame, *want, *norm;
    size_t need = 0, len = 0, want_len, norm_len;
    sse_event ev[2];
    sse_stats st;
    int r, n;

    r = rc_sse_format(msg, NULL, 0, &need);
    if (r != RC_ENOBUFS || need == 0)
        FAIL("rc_sse_format size query: %s, length %zu", rc_err_name(r), need);
    frame = malloc(need);
    if (frame == NULL)
        abort();
    r = rc_sse_format(msg, (char *)frame, need, &len);
    if (r != 0 || len != need)
        FAIL("rc_sse_format of a decoded message: %s, %zu of %zu bytes",
             rc_err_name(r), len, need);

    want = sse_build_frame(msg->event, msg->id, d, msg->data_len, msg->retry,
                           &want_len);
    if (want == NULL)
        abort();
    if (want_len != len || memcmp(want, frame, len) != 0)
        FAIL("frame differs from the documented one");
    free(want);

    n = sse_parse(frame, len, ev, 2, &st);
    if (n < 0)
        abort();
    if (n != 1 || st.dispatched != 1 || st.pending != 0)
        FAIL("%zu events and %zu bytes left over, want 1 and 0", st.dispatched,
             st.pending);
    if (st.comments || st.unknown_fields || st.ignored_ids || st.bad_retries)
        FAIL("stray lines in the frame");
    if (msg->event != NULL && msg->event[0] != '\0'
            ? strcmp(ev[0].type, msg->event) != 0
            : ev[0].type_len != 0)
        FAIL("event type differs");
    if (msg->id != NULL && msg->id[0] != '\0'
            ? strcmp(ev[0].last_id, msg->id) != 0
            : ev[0].last_id_len != 0)
        FAIL("last event id differs");
    norm = sse_normalize_newlines(d, msg->data_len, &norm_len);
    if (norm == NULL)
        abort();
    if (ev[0].data_len != norm_len || memcmp(ev[0].data, norm, norm_len) != 0)
        FAIL("data differs");
    free(norm);
    if (msg->retry > 0
            ? !ev[0].retry_seen || ev[0].retry != (unsigned long long)msg->retry
            : ev[0].retry_seen)
        FAIL("retry differs");
    sse_events_free(ev, (size_t)n);
    free(frame);
}

static unsigned depth_of(const char *p, size_t n)
{
    unsigned depth = 0;

    if (p != NULL && json_text(p, n, &depth) != 1)
        depth = 0;
    return depth;
}

/*
 * The same input under tighter limits picked from its last byte (max_data
 * 2 .. 32768 or the default, max_depth 1 .. 15 or the default): limits only
 * tighten, so this may fail only where the default decode failed or with
 * RC_ETOOBIG / RC_EDEPTH for a cause the input has, and a success gives the
 * same envelope. def_rc and def are the default decode's result.
 */
static void check_limits(const uint8_t *in, size_t size, int def_rc,
                         const rc_envelope *def)
{
    unsigned b = size > 0 ? in[size - 1] : 0;
    rc_limits lim = {0, 0};
    size_t max_data = RC_DEFAULT_MAX_DATA;
    unsigned max_depth = RC_DEFAULT_MAX_DEPTH, whole = 0;
    rc_envelope env;
    char *scratch = malloc(size > 0 ? size : 1);
    int r;

    if (scratch == NULL)
        abort();
    if ((b & 0x0f) != 0)
        lim.max_data = max_data = (size_t)1 << (b & 0x0f);
    if ((b >> 4) != 0)
        lim.max_depth = max_depth = b >> 4;
    r = rc_envelope_decode((const char *)in, size, &lim, &env, scratch, size);
    if (r != 0 && !decode_reason(r))
        FAIL("decode with limits returned %d (%s)", r, rc_err_name(r));
    if (r == 0 && def_rc != 0)
        FAIL("tighter limits accept what the defaults refuse (%s)",
             rc_err_name(def_rc));
    if (r == 0) {
        if (!same_str(env.msg.event, def->msg.event) ||
            !same_str(env.msg.id, def->msg.id) ||
            !same_str(env.node, def->node) ||
            !same_str(env.except, def->except) ||
            env.msg.data != def->msg.data ||
            env.msg.data_len != def->msg.data_len || env.meta != def->meta ||
            env.meta_len != def->meta_len || env.msg.retry != def->msg.retry)
            FAIL("limits changed the decoded envelope");
        if (env.msg.data_len > max_data)
            FAIL("data of %zu bytes accepted with max_data %zu",
                 env.msg.data_len, max_data);
        if (depth_of(env.msg.data, env.msg.data_len) > max_depth ||
            depth_of(env.meta, env.meta_len) > max_depth)
            FAIL("data or meta deeper than max_depth %u", max_depth);
    } else if (def_rc == 0) {
        int cause = 0;

        if (json_text(in, size, &whole) != 1)
            whole = 0;
        if (r == RC_ETOOBIG)
            cause = def->msg.data_len > max_data ||
                    (size > RC_ENVELOPE_SLACK &&
                     size - RC_ENVELOPE_SLACK > max_data);
        else if (r == RC_EDEPTH)
            /* an unknown key's value nests at most whole - 1 deep */
            cause = depth_of(def->msg.data, def->msg.data_len) > max_depth ||
                    depth_of(def->meta, def->meta_len) > max_depth ||
                    (whole > 0 && whole - 1 > max_depth);
        if (!cause)
            FAIL("limits max_data %zu max_depth %u: %s has no cause", max_data,
                 max_depth, rc_err_name(r));
    }
    free(scratch);
}

/* An error must be a decode reason and fit the input's syntax: RC_EJSON
 * only for what is not JSON, and what is not JSON never gets a reason that
 * needs a parsed value (RC_ENOTENV is "valid JSON, not an object";
 * truncation and syntax errors are RC_EJSON). RC_EDEPTH, RC_EUTF8 and
 * RC_ETOOBIG may be found before a syntax error. */
static void check_reason(int r, const uint8_t *in, size_t size)
{
    unsigned depth;
    int valid;

    if (!decode_reason(r))
        FAIL("decode returned %d (%s), not a decode reason", r, rc_err_name(r));
    if (!sse_utf8_valid(in, size))
        return;
    valid = json_text(in, size, &depth);
    if (valid == 1 && r == RC_EJSON)
        FAIL("RC_EJSON for a valid JSON text");
    if (valid == 0 && r != RC_EJSON && r != RC_EDEPTH && r != RC_EUTF8 &&
        r != RC_ETOOBIG)
        FAIL("%s for a text that is not JSON, want EJSON", rc_err_name(r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rc_envelope env;
    char *scratch = malloc(size > 0 ? size : 1);
    int r;

    if (scratch == NULL)
        abort();
    r = rc_envelope_decode((const char *)data, size, NULL, &env, scratch, size);
    check_limits(data, size, r, &env);
    if (r != 0) {
        check_reason(r, data, size);
        free(scratch);
        return 0;
    }
    check_decoded(&env, data, size, scratch);
    check_round_trip(&env);
    check_frame(&env.msg);
    free(scratch);
    return 0;
}
