/*
 * SSE frames, byte-identical to what the Node reference's clients receive
 * (its server writes id, event, data lines, retry, then a blank line, and
 * leaves out an empty id or event and a retry of 0).
 *
 * A line ends at CRLF, CR or LF, so data is split on all three; otherwise
 * a lone CR inside data would end the line early on the client. The event
 * stream format:
 * https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
#include "internal.h"

/* The next line break in [p, end): its position, or end; *brk is its
 * length (0 at end, 2 for CRLF, else 1). */
static const char *next_break(const char *p, const char *end, size_t *brk)
{
    const char *q = p;
    uint64_t x;

    while (end - q >= 8) {
        x = rc__load8(q);
        if (rc__swar_eq(x, '\n') | rc__swar_eq(x, '\r'))
            break;
        q += 8;
    }
    while (q < end && *q != '\n' && *q != '\r')
        q++;
    *brk = q == end ? 0 : (*q == '\r' && q + 1 < end && q[1] == '\n') ? 2 : 1;
    return q;
}

static char *put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

static size_t data_lines_len(const char *data, size_t len)
{
    const char *p = data, *end = data + len, *q;
    size_t need = 0, brk;

    do {
        q = next_break(p, end, &brk);
        need += sizeof("data: \n") - 1 + (size_t)(q - p);
        p = q + brk;
    } while (brk != 0);
    return need;
}

static char *put_data_lines(char *d, const char *data, size_t len)
{
    const char *p = data, *end = data + len, *q;
    size_t brk;

    do {
        q = next_break(p, end, &brk);
        d = put(d, "data: ", 6);
        d = put(d, p, (size_t)(q - p));
        *d++ = '\n';
        p = q + brk;
    } while (brk != 0);
    return d;
}

int rc_sse_format(const rc_message *msg, char *buf, size_t size, size_t *len)
{
    const char *data;
    size_t data_len, need = 1, id_len = 0, event_len = 0;
    char *d = buf;
    int rv = 0;

    if (msg == NULL || len == NULL || (buf == NULL && size > 0))
        return RC_EINVAL;
    if (msg->data == NULL)
        return RC_ENODATA;
    data_len = rc__json_trim(msg->data, msg->data_len, &data);
    if (data_len == 0)
        return RC_ENODATA;
    if (msg->event != NULL)
        rv = rc__field_check(msg->event, &event_len, NULL);
    if (rv == 0 && msg->id != NULL)
        rv = rc__field_check(msg->id, &id_len, NULL);
    if (rv == 0 && msg->retry > RC_RETRY_MAX)
        rv = RC_ERETRY;
    if (rv != 0)
        return rv;

    if (id_len > 0)
        need += sizeof("id: \n") - 1 + id_len;
    if (event_len > 0)
        need += sizeof("event: \n") - 1 + event_len;
    need += data_lines_len(data, data_len);
    if (msg->retry > 0)
        need += sizeof("retry: \n") - 1 +
                rc__dec_len((unsigned long long)msg->retry);
    *len = need;
    if (need > size)
        return RC_ENOBUFS;

    if (id_len > 0) {
        d = put(d, "id: ", 4);
        d = put(d, msg->id, id_len);
        *d++ = '\n';
    }
    if (event_len > 0) {
        d = put(d, "event: ", 7);
        d = put(d, msg->event, event_len);
        *d++ = '\n';
    }
    d = put_data_lines(d, data, data_len);
    if (msg->retry > 0) {
        d = put(d, "retry: ", 7);
        d = rc__dec_put(d, (unsigned long long)msg->retry);
        *d++ = '\n';
    }
    *d = '\n';
    return 0;
}
