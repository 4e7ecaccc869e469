/*
 * Event stream interpretation after the WHATWG HTML standard, section
 * 9.2.6 "Interpreting an event stream", on a complete byte buffer. See
 * sse_parse.h for why working on bytes is faithful here.
 *
 * Memory: one data buffer of len + 1 bytes per call (the data buffer can
 * never outgrow the input: every byte appended to it is a byte of a data
 * line's value, and every LF appended stands for that line's "data" name),
 * plus the copies handed out in sse_event.
 */
#include "sse_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    unsigned char *data; /* data buffer, capacity len + 1 */
    size_t data_len;
    const unsigned char *type; /* event type buffer: a span of the input */
    size_t type_len;
    const unsigned char *id; /* last event ID buffer: a span of the input */
    size_t id_len;
    int id_seen;
    int retry_seen;
    int retry_overflow;
    unsigned long long retry;
    sse_event *events;
    size_t max_events;
    size_t stored;
    sse_stats *st;
    int oom;
} parser;

static char *dup_bytes(const unsigned char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p == NULL)
        return NULL;
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int name_is(const unsigned char *name, size_t len, const char *want)
{
    size_t wlen = strlen(want);

    return len == wlen && memcmp(name, want, wlen) == 0;
}

static void store_event(parser *p)
{
    sse_event *ev;
    size_t dlen = p->data_len;

    /* Step 3: if the data buffer's last character is LF, remove it. */
    if (dlen > 0 && p->data[dlen - 1] == '\n')
        dlen--;
    p->st->dispatched++;
    if (p->stored >= p->max_events)
        return;
    ev = &p->events[p->stored];
    memset(ev, 0, sizeof(*ev));
    ev->type = dup_bytes(p->type, p->type_len);
    ev->data = dup_bytes(p->data, dlen);
    ev->last_id = dup_bytes(p->id, p->id_len);
    if (ev->type == NULL || ev->data == NULL || ev->last_id == NULL) {
        free(ev->type);
        free(ev->data);
        free(ev->last_id);
        p->oom = 1;
        return;
    }
    ev->type_len = p->type_len;
    ev->data_len = dlen;
    ev->last_id_len = p->id_len;
    ev->id_seen = p->id_seen;
    ev->retry_seen = p->retry_seen;
    ev->retry = p->retry;
    ev->retry_overflow = p->retry_overflow;
    p->stored++;
}

/* A blank line: dispatch the event, then reset the per-event buffers. The
 * last event ID buffer is deliberately kept (step 1's note). */
static void dispatch(parser *p)
{
    p->st->blank_lines++;
    if (p->data_len == 0)
        p->st->empty_blocks++;
    else
        store_event(p);
    p->data_len = 0;
    p->type = NULL;
    p->type_len = 0;
    p->id_seen = 0;
    p->retry_seen = 0;
    p->retry_overflow = 0;
    p->retry = 0;
}

static void field_retry(parser *p, const unsigned char *v, size_t vlen)
{
    unsigned long long n = 0;
    int overflow = 0;
    size_t i;

    p->st->retry_lines++;
    /* "If the field value consists of only ASCII digits": an empty value is
     * not a number, so it is ignored too. */
    if (vlen == 0) {
        p->st->bad_retries++;
        return;
    }
    for (i = 0; i < vlen; i++) {
        unsigned d;

        if (v[i] < '0' || v[i] > '9') {
            p->st->bad_retries++;
            return;
        }
        d = (unsigned)(v[i] - '0');
        if (n > (~0ULL - d) / 10)
            overflow = 1;
        else
            n = n * 10 + d;
    }
    p->retry_seen = 1;
    p->retry = overflow ? ~0ULL : n;
    p->retry_overflow = overflow;
}

static void field(parser *p, const unsigned char *name, size_t nlen,
                  const unsigned char *v, size_t vlen)
{
    if (name_is(name, nlen, "event")) {
        p->st->event_lines++;
        p->type = v;
        p->type_len = vlen;
    } else if (name_is(name, nlen, "data")) {
        p->st->data_lines++;
        if (vlen > 0)
            memcpy(p->data + p->data_len, v, vlen);
        p->data_len += vlen;
        p->data[p->data_len++] = '\n';
    } else if (name_is(name, nlen, "id")) {
        p->st->id_lines++;
        if (vlen > 0 && memchr(v, '\0', vlen) != NULL) {
            p->st->ignored_ids++;
            return;
        }
        p->id = v;
        p->id_len = vlen;
        p->id_seen = 1;
    } else if (name_is(name, nlen, "retry")) {
        field_retry(p, v, vlen);
    } else {
        p->st->unknown_fields++;
    }
}

/* One complete line, without its terminator. */
static void line(parser *p, const unsigned char *s, size_t n)
{
    const unsigned char *colon;

    p->st->lines++;
    if (n == 0) {
        dispatch(p);
        return;
    }
    if (s[0] == ':') {
        p->st->comments++;
        return;
    }
    colon = memchr(s, ':', n);
    if (colon == NULL) {
        /* The whole line is the field name; the value is empty. */
        field(p, s, n, s + n, 0);
    } else {
        size_t nlen = (size_t)(colon - s);
        const unsigned char *v = colon + 1;
        size_t vlen = n - nlen - 1;

        if (vlen > 0 && v[0] == ' ') {
            v++;
            vlen--;
        }
        field(p, s, nlen, v, vlen);
    }
}

int sse_parse(const unsigned char *buf, size_t len, sse_event *events,
              size_t max_events, sse_stats *stats)
{
    parser p;
    sse_stats local;
    size_t pos = 0, done = 0, last_blank_end = 0;

    memset(&p, 0, sizeof(p));
    p.st = stats != NULL ? stats : &local;
    memset(p.st, 0, sizeof(*p.st));
    p.events = events;
    p.max_events = events != NULL ? max_events : 0;
    p.data = malloc(len + 1);
    if (p.data == NULL)
        return -1;

    /* "One leading U+FEFF BYTE ORDER MARK character must be ignored." */
    if (len >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF) {
        pos = done = last_blank_end = 3;
        p.st->bom = 1;
    }
    while (pos < len && !p.oom) {
        size_t start = pos, end, next;

        while (pos < len && buf[pos] != '\r' && buf[pos] != '\n')
            pos++;
        if (pos == len)
            break; /* an unterminated line is never processed */
        end = pos;
        next = pos + 1;
        if (buf[pos] == '\r' && next < len && buf[next] == '\n')
            next++;
        line(&p, buf + start, end - start);
        if (end == start)
            last_blank_end = next;
        pos = done = next;
    }
    free(p.data);
    if (p.oom) {
        sse_events_free(events, p.stored);
        return -1;
    }
    p.st->trailing = len - done;
    p.st->pending = len - last_blank_end;
    return (int)p.stored;
}

void sse_events_free(sse_event *events, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(events[i].type);
        free(events[i].data);
        free(events[i].last_id);
        events[i].type = events[i].data = events[i].last_id = NULL;
    }
}

/* Length of the UTF-8 sequence starting at s[0..len), or 0 if invalid.
 * Table 3-7 of the Unicode standard, "Well-Formed UTF-8 Byte Sequences". */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t n, i;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F; /* no surrogates */
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F; /* nothing above U+10FFFF */
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

int sse_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq(s + i, len - i);

        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* Bytes of one "data: L\n" per line L of d[0..n), written to out unless
 * count is set. CRLF, CR and LF end a line; the text after the last
 * terminator is a line too, even when empty (as String.split would give). */
static size_t data_lines_size(const unsigned char *d, size_t n, int count,
                              unsigned char *out)
{
    size_t i = 0, start = 0, total = 0;

    for (;;) {
        int at_end = i == n;

        if (at_end || d[i] == '\r' || d[i] == '\n') {
            size_t llen = i - start;

            if (!count) {
                memcpy(out + total, "data: ", 6);
                if (llen > 0)
                    memcpy(out + total + 6, d + start, llen);
                out[total + 6 + llen] = '\n';
            }
            total += 6 + llen + 1;
            if (at_end)
                break;
            if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n')
                i++;
            start = i + 1;
        }
        i++;
    }
    return total;
}

static size_t put_field(unsigned char *out, size_t at, const char *name,
                        const char *v, size_t vlen)
{
    size_t nlen = strlen(name);

    if (out != NULL) {
        memcpy(out + at, name, nlen);
        out[at + nlen] = ':';
        out[at + nlen + 1] = ' ';
        if (vlen > 0)
            memcpy(out + at + nlen + 2, v, vlen);
        out[at + nlen + 2 + vlen] = '\n';
    }
    return nlen + 2 + vlen + 1;
}

unsigned char *sse_build_frame(const char *event, const char *id,
                               const unsigned char *data, size_t data_len,
                               long long retry, size_t *out_len)
{
    size_t elen = event != NULL ? strlen(event) : 0;
    size_t ilen = id != NULL ? strlen(id) : 0;
    char rbuf[32];
    size_t rlen = 0, total = 0, at = 0;
    unsigned char *out;

    if (retry > 0)
        rlen = (size_t)snprintf(rbuf, sizeof(rbuf), "%lld", retry);
    if (ilen > 0)
        total += put_field(NULL, 0, "id", id, ilen);
    if (elen > 0)
        total += put_field(NULL, 0, "event", event, elen);
    total += data_lines_size(data, data_len, 1, NULL);
    if (rlen > 0)
        total += put_field(NULL, 0, "retry", rbuf, rlen);
    total += 1;

    out = malloc(total);
    if (out == NULL)
        return NULL;
    if (ilen > 0)
        at += put_field(out, at, "id", id, ilen);
    if (elen > 0)
        at += put_field(out, at, "event", event, elen);
    at += data_lines_size(data, data_len, 0, out + at);
    if (rlen > 0)
        at += put_field(out, at, "retry", rbuf, rlen);
    out[at++] = '\n';
    *out_len = at;
    return out;
}

unsigned char *sse_normalize_newlines(const unsigned char *s, size_t len,
                                      size_t *out_len)
{
    unsigned char *out = malloc(len + 1);
    size_t i, o = 0;

    if (out == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        if (s[i] == '\r') {
            out[o++] = '\n';
            if (i + 1 < len && s[i + 1] == '\n')
                i++;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}
