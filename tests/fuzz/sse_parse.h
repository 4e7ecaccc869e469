/*
 * An independent Server-Sent Events parser for the fuzz targets, written
 * from the WHATWG HTML standard, section "Interpreting an event stream"
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html).
 *
 * It shares no code with src/: it exists to check rc_sse_format() from the
 * outside, the way a browser's EventSource reads the frame.
 *
 * The parser works on bytes. That is equivalent to the standard's decoded
 * text for this purpose: the bytes it cares about (CR, LF, ':', ' ') are
 * ASCII, and a UTF-8 decoder never swallows an ASCII byte into a
 * replacement character. Values are compared as bytes.
 *
 * Also here, for the same fuzz targets: a strict UTF-8 validator and a
 * builder of the frame that roomcast.h documents, byte for byte.
 */
#ifndef RC_FUZZ_SSE_PARSE_H
#define RC_FUZZ_SSE_PARSE_H

#include <stddef.h>

/* One dispatched event. Every pointer is a malloc'd, NUL-terminated copy
 * (the NUL is not counted in the length); sse_events_free() releases them. */
typedef struct sse_event {
    char *type; /* event type buffer; "" when no event field came (the
                   standard then dispatches the type "message") */
    size_t type_len;
    char *data; /* data buffer, its one trailing LF removed */
    size_t data_len;
    char *last_id; /* the source's last event ID string at dispatch; it
                      carries over from earlier events, "" at the start */
    size_t last_id_len;
    int id_seen;    /* an id field was applied since the previous blank line */
    int retry_seen; /* a valid retry field came since the previous blank
                       line (the standard applies it at once; it is recorded
                       here so that tests can tie it to the event) */
    unsigned long long retry; /* its value, if retry_seen */
    int retry_overflow;       /* the digits did not fit 64 bits */
} sse_event;

/* What else the parser met, for checks that a frame holds no stray lines. */
typedef struct sse_stats {
    size_t lines;          /* complete lines, blank ones included */
    size_t blank_lines;    /* blank lines (dispatch points) */
    size_t comments;       /* lines starting with ':' */
    size_t data_lines;     /* data fields */
    size_t event_lines;    /* event fields */
    size_t id_lines;       /* id fields, ignored ones included */
    size_t ignored_ids;    /* id fields ignored for holding a NUL */
    size_t retry_lines;    /* retry fields, invalid ones included */
    size_t bad_retries;    /* retry fields ignored for a non-digit value */
    size_t unknown_fields; /* any other field name */
    size_t empty_blocks;   /* blank lines with an empty data buffer */
    size_t dispatched;     /* events dispatched, stored or not */
    size_t trailing;       /* bytes after the last complete line */
    size_t pending;        /* bytes after the last blank line (lines not
                              followed by a blank line are never dispatched) */
    int bom;               /* a leading UTF-8 BOM was skipped */
} sse_stats;

/*
 * Parse the complete stream buf[0..len) (end of input closes the last line
 * only if it ends with CR or LF). Stores up to max_events dispatched events
 * in events[] and returns how many it stored; stats (may be NULL) gets the
 * rest. Returns -1 if out of memory, with nothing left to free.
 */
int sse_parse(const unsigned char *buf, size_t len, sse_event *events,
              size_t max_events, sse_stats *stats);

/* Free the copies held by events[0..n). */
void sse_events_free(sse_event *events, size_t n);

/* 1 if s[0..len) is UTF-8 as RFC 3629 defines it (no overlong forms, no
 * surrogates, nothing above U+10FFFF), else 0. */
int sse_utf8_valid(const unsigned char *s, size_t len);

/*
 * The frame roomcast.h documents for rc_sse_format(): "id: I\n" if id is
 * non-empty, "event: E\n" if event is non-empty, "data: L\n" for each line
 * L of data (lines end at CRLF, CR or LF), "retry: R\n" if retry > 0, then
 * "\n". event and id may be NULL. Returns a malloc'd buffer (length in
 * *out_len, not NUL-terminated) or NULL if out of memory.
 */
unsigned char *sse_build_frame(const char *event, const char *id,
                               const unsigned char *data, size_t data_len,
                               long long retry, size_t *out_len);

/* Copy of s[0..len) with each CRLF and each lone CR turned into LF;
 * malloc'd, NUL-terminated, length in *out_len. NULL if out of memory. */
unsigned char *sse_normalize_newlines(const unsigned char *s, size_t len,
                                      size_t *out_len);

#endif /* RC_FUZZ_SSE_PARSE_H */
