/*
 * libFuzzer target for rc_sse_format().
 *
 * Input layout:
 *   byte 0      flags: bit 0 event given (else NULL), bit 1 id given (else
 *               NULL), bit 2 data NULL, bit 3 retry from the next 8 bytes
 *               (little-endian two's complement), else bits 4-6 pick a retry
 *               from a table of edge values; bit 7 exercise a short buffer.
 *   [8 bytes]   retry, if bit 3
 *   rest        event 0xFF id 0xFF data; a missing part is empty. event and
 *               id are C strings, so a NUL inside one ends it.
 *
 * Properties:
 * - the result is 0 exactly when the header's preconditions hold, and an
 *   error is always one the header documents for a condition this input
 *   has (RC_ENODATA, RC_ECHAR, RC_EUTF8, RC_ERETRY);
 * - on success the frame is byte for byte the one the header describes
 *   (data without the JSON whitespace around it, which rc_message's
 *   comment says is not part of the value), and an independent WHATWG
 *   parser (sse_parse.c) reads exactly one event from it, with nothing
 *   left over and no other kind of line, carrying the event type, last
 *   event id, data (newlines normalised) and retry;
 * - the size query (NULL, 0) gives RC_ENOBUFS and exactly the length later
 *   written; a buffer one byte short gives RC_ENOBUFS and the same length.
 *   Buffers are malloc'd to their exact size so that ASan sees overruns;
 * - rc_message_check() of the same message is 0 exactly when the header's
 *   rules hold by independent checks (json_check.c, sse_utf8_valid), gives
 *   only documented codes that fit the input, and whatever it accepts
 *   rc_sse_format() accepts too.
 */
#include <limits.h>
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
        fprintf(stderr, "fuzz_sse: property failed at %s:%d: ", __FILE__,      \
                __LINE__);                                                     \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        abort();                                                               \
    } while (0)

static const long long retry_table[8] = {
    -1, 0, 1, 3000, RC_RETRY_MAX, RC_RETRY_MAX + 1, LLONG_MAX, LLONG_MIN};

typedef struct input {
    char *event; /* NULL or a malloc'd C string */
    char *id;
    unsigned char *data; /* NULL or malloc'd, data_len bytes */
    size_t data_len;
    long long retry;
    int short_buffer;
} input;

static char *cstr(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* The next 0xFF-terminated part of p[*pos..size), or the rest. */
static size_t next_part(const uint8_t *p, size_t size, size_t *pos,
                        const uint8_t **part)
{
    const uint8_t *start = p + *pos;
    const uint8_t *sep = memchr(start, 0xFF, size - *pos);
    size_t n = sep != NULL ? (size_t)(sep - start) : size - *pos;

    *part = start;
    *pos += sep != NULL ? n + 1 : n;
    return n;
}

static void split_input(const uint8_t *p, size_t size, input *in)
{
    unsigned flags = size > 0 ? p[0] : 0;
    size_t pos = size > 0 ? 1 : 0, n;
    const uint8_t *part;

    memset(in, 0, sizeof(*in));
    in->retry = retry_table[(flags >> 4) & 7];
    if ((flags & 8) && size - pos >= 8) {
        unsigned long long u = 0;
        int i;

        for (i = 7; i >= 0; i--)
            u = (u << 8) | p[pos + (size_t)i];
        memcpy(&in->retry, &u, sizeof(u));
        pos += 8;
    }
    in->short_buffer = (flags & 0x80) != 0;
    n = next_part(p, size, &pos, &part);
    if (flags & 1)
        in->event = cstr(part, n);
    n = next_part(p, size, &pos, &part);
    if (flags & 2)
        in->id = cstr(part, n);
    part = p + pos;
    n = size - pos;
    if (!(flags & 4)) {
        in->data = malloc(n > 0 ? n : 1);
        if (in->data == NULL)
            abort();
        if (n > 0)
            memcpy(in->data, part, n);
        in->data_len = n;
    }
}

static int json_ws_only(const unsigned char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

static int has_crlf(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") != NULL;
}

static int bad_utf8(const char *s)
{
    return s != NULL && !sse_utf8_valid((const unsigned char *)s, strlen(s));
}

/* Does the input have the condition under which the header documents err? */
static int error_applies(const input *in, int err)
{
    switch (err) {
    case RC_ENODATA:
        return in->data == NULL || json_ws_only(in->data, in->data_len);
    case RC_ECHAR:
        return has_crlf(in->event) || has_crlf(in->id);
    case RC_EUTF8:
        return bad_utf8(in->event) || bad_utf8(in->id);
    case RC_ERETRY:
        return in->retry > RC_RETRY_MAX;
    default:
        return 0;
    }
}

static int any_error_applies(const input *in)
{
    return error_applies(in, RC_ENODATA) || error_applies(in, RC_ECHAR) ||
           error_applies(in, RC_EUTF8) || error_applies(in, RC_ERETRY);
}

/* rc_message's contract: "whitespace around the value is not part of it
 * and is dropped", so the frame carries data without it. */
static const unsigned char *json_trim(const unsigned char *s, size_t n,
                                      size_t *out_len)
{
    while (n > 0 && json_ws_only(s, 1)) {
        s++;
        n--;
    }
    while (n > 0 && json_ws_only(s + n - 1, 1))
        n--;
    *out_len = n;
    return s;
}

static size_t slen(const char *s)
{
    return s != NULL ? strlen(s) : 0;
}

static void check_frame(const input *in, const unsigned char *frame, size_t len)
{
    const unsigned char *data;
    unsigned char *want, *norm;
    size_t data_len, want_len, norm_len;
    sse_event ev[2];
    sse_stats st;
    int n;

    data = json_trim(in->data, in->data_len, &data_len);
    want = sse_build_frame(in->event, in->id, data, data_len, in->retry,
                           &want_len);
    if (want == NULL)
        abort();
    if (want_len != len || memcmp(want, frame, len) != 0)
        FAIL("frame differs from the documented one (%zu vs %zu bytes)", len,
             want_len);
    free(want);

    n = sse_parse(frame, len, ev, 2, &st);
    if (n < 0)
        abort();
    if (n != 1 || st.dispatched != 1)
        FAIL("%zu events parsed, want 1", st.dispatched);
    if (st.pending != 0 || st.blank_lines != 1)
        FAIL("%zu bytes after the blank line, %zu blank lines", st.pending,
             st.blank_lines);
    if (st.comments || st.unknown_fields || st.ignored_ids || st.bad_retries)
        FAIL("stray lines in the frame");
    if (slen(in->event) > 0 ? strcmp(ev[0].type, in->event) != 0
                            : ev[0].type_len != 0)
        FAIL("event type differs");
    if (slen(in->id) > 0 ? strcmp(ev[0].last_id, in->id) != 0
                         : ev[0].last_id_len != 0 || ev[0].id_seen)
        FAIL("last event id differs");
    norm = sse_normalize_newlines(data, data_len, &norm_len);
    if (norm == NULL)
        abort();
    if (ev[0].data_len != norm_len || memcmp(ev[0].data, norm, norm_len) != 0)
        FAIL("data differs");
    free(norm);
    if (in->retry > 0) {
        if (!ev[0].retry_seen || ev[0].retry_overflow ||
            ev[0].retry != (unsigned long long)in->retry)
            FAIL("retry %lld not carried", in->retry);
    } else if (ev[0].retry_seen || st.retry_lines != 0) {
        FAIL("retry line for retry %lld", in->retry);
    }
    sse_events_free(ev, (size_t)n);
}

static rc_message message_of(const input *in)
{
    rc_message msg = RC_MESSAGE_INIT;

    msg.event = in->event;
    msg.id = in->id;
    msg.data = (const char *)in->data;
    msg.data_len = in->data_len;
    msg.retry = in->retry;
    return msg;
}

/* Returns what the size query gave. */
static int run(const input *in)
{
    rc_message msg = message_of(in);
    size_t need = 0, len = 0, len2 = 0;
    unsigned char *buf;
    int r0, r1;

    r0 = rc_sse_format(&msg, NULL, 0, &need);
    if (r0 == 0)
        FAIL("size query with a NULL buffer succeeded");
    if (r0 != RC_ENOBUFS) {
        /* Refused without needing a buffer: must be a documented reason
         * that this input has, and refused the same way with a buffer. */
        if (!error_applies(in, r0))
            FAIL("error %d (%s) not documented for this input", r0,
                 rc_err_name(r0));
        buf = malloc(4096);
        if (buf == NULL)
            abort();
        r1 = rc_sse_format(&msg, (char *)buf, 4096, &len);
        free(buf);
        if (r1 != r0)
            FAIL("error %d with a buffer, %d without", r1, r0);
        return r0;
    }
    if (need == 0)
        FAIL("size query gave RC_ENOBUFS and length 0");

    buf = malloc(need);
    if (buf == NULL)
        abort();
    r1 = rc_sse_format(&msg, (char *)buf, need, &len);
    if (r1 != 0) {
        if (!error_applies(in, r1))
            FAIL("error %d (%s) not documented for this input", r1,
                 rc_err_name(r1));
        free(buf);
        return r1;
    }
    if (any_error_applies(in))
        FAIL("accepted a message the header says to refuse");
    if (len != need)
        FAIL("wrote %zu bytes, size query said %zu", len, need);
    check_frame(in, buf, len);
    free(buf);

    if (in->short_buffer) {
        buf = malloc(need - 1 > 0 ? need - 1 : 1);
        if (buf == NULL)
            abort();
        r1 = rc_sse_format(&msg, (char *)buf, need - 1, &len2);
        free(buf);
        if (r1 != RC_ENOBUFS || len2 != need)
            FAIL("short buffer: %d, length %zu, want RC_ENOBUFS and %zu", r1,
                 len2, need);
    }
    return 0;
}

/*
 * rc_message_check() on the same message: 0 exactly when the header's
 * rules hold (data one JSON text in UTF-8, no deeper than the default
 * limit; event and id without CR/LF and in UTF-8; retry in range), else a
 * documented code whose condition this input has. Whatever it accepts,
 * rc_sse_format() must accept too (format_rc).
 */
static void check_message(const input *in, const rc_message *msg, int format_rc)
{
    unsigned depth = 0;
    int json = in->data != NULL ? json_text(in->data, in->data_len, &depth) : 0;
    int data_utf8 = in->data == NULL || sse_utf8_valid(in->data, in->data_len);
    int too_deep = json == -1 || (json == 1 && depth > RC_DEFAULT_MAX_DEPTH);
    int ok = json == 1 && data_utf8 && !too_deep && !any_error_applies(in);
    int r = rc_message_check(msg, NULL), fits;

    if (ok) {
        if (r != 0)
            FAIL("rc_message_check refuses a valid message: %s",
                 rc_err_name(r));
        if (format_rc != 0 && format_rc != RC_ENOBUFS)
            FAIL("rc_sse_format refuses (%s) what rc_message_check accepts",
                 rc_err_name(format_rc));
        return;
    }
    switch (r) {
    case 0:
        FAIL("rc_message_check accepts an invalid message");
    case RC_EJSON: /* whitespace only is no JSON text either */
        fits = json != 1 || !data_utf8;
        break;
    case RC_EDEPTH:
        /* may be seen before a syntax error further on */
        fits = too_deep || json != 1;
        break;
    case RC_EUTF8:
        fits = error_applies(in, RC_EUTF8) || !data_utf8;
        break;
    case RC_ENODATA:
    case RC_ECHAR:
    case RC_ERETRY:
        fits = error_applies(in, r);
        break;
    default:
        fits = 0;
        break;
    }
    if (!fits)
        FAIL("rc_message_check: %s does not fit this input", rc_err_name(r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in;
    rc_message msg;
    int format_rc;

    split_input(data, size, &in);
    format_rc = run(&in);
    msg = message_of(&in);
    check_message(&in, &msg, format_rc);
    free(in.event);
    free(in.id);
    free(in.data);
    return 0;
}
