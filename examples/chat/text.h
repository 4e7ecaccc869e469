/*
 * rc-chat's pure text helpers: percent-decoding, name checks, JSON string
 * escaping, and picking the members out of a POST body. No I/O, no
 * libevent; unit-tested and fuzzed on their own.
 */
#ifndef RC_CHAT_TEXT_H
#define RC_CHAT_TEXT_H

#include <stddef.h>

/* Longest room name and user name, in bytes of UTF-8. */
#define CHAT_ROOM_MAX 200
#define CHAT_USER_MAX 64
#define CHAT_LAST_ID_MAX 256

/*
 * Percent-decode n bytes of src into dst (room for n + 1 bytes), NUL-
 * terminated; plus_is_space turns '+' into ' ' (query strings). Returns the
 * decoded length, or -1 for a '%' not followed by two hex digits.
 */
long chat_pct_decode(const char *src, size_t n, char *dst, int plus_is_space);

/* 1 if s (n bytes) is valid UTF-8 (no overlongs, no surrogates) without
 * control characters (U+0000..U+001F, U+007F), else 0. */
int chat_name_ok(const char *s, size_t n);

/*
 * Write s (n bytes of UTF-8) as a JSON string literal, quotes included, the
 * way JavaScript's JSON.stringify escapes it, into dst of size bytes.
 * Returns the length needed (write nothing when it is over size; dst may
 * be NULL when size is 0).
 */
size_t chat_json_quote(const char *s, size_t n, char *dst, size_t size);

/* A span of a POST body. p NULL: the member is absent. */
typedef struct chat_span {
    const char *p;
    size_t n;
} chat_span;

/* The members of a POST body that rc-chat reads (the last one wins when a
 * key repeats, as in JSON.parse): the raw JSON text of each value. */
typedef struct chat_body {
    chat_span event, data, id, except, connection;
    chat_span user_id, code, message; /* "userId", "code", "message" */
} chat_body;

/*
 * Find the members of body, which must already be known to be one valid
 * JSON value (rc_message_check says so). Returns 0, or -1 if it is not an
 * object.
 */
int chat_body_parse(const char *body, size_t n, chat_body *out);

/*
 * Unescape a JSON string literal (quotes included, already known to be
 * valid JSON) into dst (room for n bytes), NUL-terminated. Returns the
 * length, or -1 if span is not a string. \u escapes become UTF-8; a lone
 * surrogate becomes its 3-byte form (invalid UTF-8, which the library
 * then refuses).
 */
long chat_json_unquote(const char *p, size_t n, char *dst);

/* Session codes: the symbols they are made of (Crockford's base 32: no I,
 * L, O, U), and the longest one accepted. */
#define CHAT_CODE_ALPHABET "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define CHAT_CODE_MAX 32

/*
 * A session code as a person may type it, made canonical into dst (room
 * for n + 1 bytes), NUL-terminated: lower case becomes upper case, O
 * becomes 0, I and L become 1. Returns the length, or -1 if n is 0 or over
 * CHAT_CODE_MAX, or a symbol is not in CHAT_CODE_ALPHABET.
 */
long chat_code_norm(const char *src, size_t n, char *dst);

/*
 * url with its credentials hidden, for logs and errors: whatever lies
 * between "://" (or the start) and the last '@' becomes "***", except a
 * user name before a ':' ("redis://u:pw@h" gives "redis://u:***@h"). The
 * result is cut to fit dst (size bytes, NUL-terminated). Returns dst.
 */
char *chat_url_redact(const char *url, char *dst, size_t size);
/* Where the part chat_url_redact hides starts (*off) and its length (0:
 * none, or an empty password). */
size_t chat_url_secret(const char *url, size_t *off);

#endif
