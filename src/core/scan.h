/* The text scanners roomcast's core shares: SWAR byte search, UTF-8,
 * JSON and decimal numbers (utf8.c, json.c); included by internal.h, not
 * installed. */
#ifndef RC_SCAN_H
#define RC_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "roomcast/roomcast.h"

/* Eight bytes at a time ("SWAR"): rc__swar_eq(x, ch) is nonzero if some
 * byte of x equals ch. It may also flag a byte after a real hit, never
 * miss one, so callers use it to skip ahead and look closer on a hit. */
#define RC__ONES UINT64_C(0x0101010101010101)
#define RC__HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t rc__load8(const void *p)
{
    uint64_t x;

    memcpy(&x, p, sizeof x);
    return x;
}

static inline uint64_t rc__swar_eq(uint64_t x, unsigned char ch)
{
    uint64_t y = x ^ (RC__ONES * ch);

    return (y - RC__ONES) & ~y & RC__HIGHS;
}

/* Index of the first flagged byte of a nonzero SWAR mask. The lowest flag
 * is always a real hit. Where the byte order is unknown, 0: the caller then
 * looks byte by byte from the start of the chunk. */
static inline unsigned rc__swar_first(uint64_t mask)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) &&                            \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (unsigned)__builtin_ctzll(mask) >> 3;
#else
    (void)mask;
    return 0;
#endif
}

/* The limits in force: a NULL or zeroed rc_limits means the defaults, and
 * max_depth is clamped to RC_MAX_DEPTH_LIMIT. */
rc_limits rc__limits(const rc_limits *limits);

/* ---- utf8.c ---------------------------------------------------------- */

/* Length (2..4) of the well-formed UTF-8 sequence that starts at p with a
 * byte >= 0x80, or 0 if it is ill-formed (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). Never reads at or past end. */
size_t rc__utf8_seq(const unsigned char *p, const unsigned char *end);

/* 1 if the bytes from p to end are a proper prefix of a well-formed
 * sequence, i.e. the input was cut in the middle of a character. */
int rc__utf8_cut(const unsigned char *p, const unsigned char *end);

/* Append code point cp (< 0x110000) as UTF-8 at dst; returns the end. */
char *rc__utf8_put(char *dst, unsigned long cp);

/* The rule for event, id, node and except: 0, RC_ECHAR if s contains CR
 * or LF, RC_EUTF8 if it is not valid UTF-8. In the same pass, *len gets
 * strlen(s) and *quoted the length of s as a JSON string, quotes included,
 * escaped as JSON.stringify escapes (either pointer may be NULL). */
int rc__field_check(const char *s, size_t *len, size_t *quoted);

/* ---- json.c ---------------------------------------------------------- */

typedef struct rc__jcur {
    const unsigned char *p;
    const unsigned char *end;
} rc__jcur;

/* JSON whitespace (RFC 8259: space, tab, LF, CR). */
static inline int rc__json_is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static inline void rc__json_ws(rc__jcur *c)
{
    while (c->p < c->end && rc__json_is_ws(*c->p))
        c->p++;
}

/* Scan the string whose opening quote is at c->p, leaving c->p after the
 * closing quote. *body and *body_len give the bytes between the quotes;
 * *escaped is set when there is at least one backslash. Lone surrogate
 * escapes are accepted here (JSON.parse accepts them).
 * Returns 0, RC_EJSON or RC_EUTF8. */
int rc__json_string(rc__jcur *c, const unsigned char **body, size_t *body_len,
                    int *escaped);

/* Unescape a body that rc__json_string accepted into dst, which must hold
 * len bytes (the output is never longer). With strict set, an unpaired
 * surrogate escape is RC_EUTF8; otherwise it is written as its 3-byte
 * (CESU) form. Returns the length written or RC_EUTF8. */
long rc__json_unescape(const unsigned char *body, size_t len, char *dst,
                       int strict);

/* Scan a number at c->p (RFC 8259 grammar). Returns 0 or RC_EJSON. */
int rc__json_number(rc__jcur *c);

/* Validate one value at c->p (after whitespace), nesting at most
 * max_depth arrays/objects, leaving c->p after it.
 * Returns 0, RC_EJSON, RC_EDEPTH or RC_EUTF8. */
int rc__json_value(rc__jcur *c, unsigned max_depth);

/* s without the JSON whitespace around it: sets *start and returns the
 * trimmed length (0 if s holds nothing else). */
size_t rc__json_trim(const char *s, size_t len, const char **start);

/* Validate that s (len bytes, already trimmed) is exactly one JSON value.
 * Returns 0, RC_EJSON, RC_EDEPTH or RC_EUTF8. */
int rc__json_check(const char *s, size_t len, unsigned max_depth);

/* Write s (len bytes, quoted bytes once quoted, both from
 * rc__field_check) as a JSON string; returns the end. */
char *rc__json_quote(char *dst, const char *s, size_t len, size_t quoted);

/* ---- decimal numbers ------------------------------------------------- */

/* Number of decimal digits of v, and the writer, which returns the end. */
size_t rc__dec_len(unsigned long long v);
char *rc__dec_put(char *dst, unsigned long long v);

#endif /* RC_SCAN_H */
