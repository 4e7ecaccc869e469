/*
 * A strict, bounded JSON scanner (RFC 8259, as JSON.parse reads it). It
 * validates and measures; it builds nothing and allocates nothing. Nesting
 * is tracked in a fixed bit stack, so a depth bomb costs no C stack.
 */
#include "internal.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The first byte at or after p that a string scan must look at: '"',
 * '\\', a control character or a non-ASCII byte; or a point near end from
 * which the caller goes on byte by byte. */
static const unsigned char *skip_plain(const unsigned char *p,
                                       const unsigned char *end)
{
    uint64_t x, m;

#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    __m128i v;
    unsigned mask;

    /* Signed compare: bytes 0x80..0xFF are negative, so "< 0x20" catches
     * control characters and non-ASCII together. */
    while (end - p >= 16) {
        v = _mm_loadu_si128((const __m128i *)(const void *)p);
        mask = (unsigned)_mm_movemask_epi8(_mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
            _mm_cmplt_epi8(v, space)));
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        x = rc__load8(p);
        m = rc__swar_eq(x, '"') | rc__swar_eq(x, '\\') |
            ((x - RC__ONES * 0x20) & ~x & RC__HIGHS) | (x & RC__HIGHS);
        if (m != 0)
            return p + rc__swar_first(m);
        p += 8;
    }
    return p;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* The four hex digits at p (p + 4 <= end), or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    int i, d;

    for (i = 0; i < 4; i++) {
        d = hexval(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* An escape at p (p[0] == '\\'): its length, or 0 if malformed. */
static size_t escape_len(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 2)
        return 0;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return 2;
    case 'u':
        return end - p >= 6 && hex4(p + 2) >= 0 ? 6 : 0;
    }
    return 0;
}

int rc__json_string(rc__jcur *c, const unsigned char **body, size_t *body_len,
                    int *escaped)
{
    const unsigned char *p = c->p + 1;
    const unsigned char *end = c->end;
    size_t n;

    *escaped = 0;
    for (;;) {
        p = skip_plain(p, end);
        if (p == end)
            return RC_EJSON;
        if (*p == '"')
            break;
        if (*p == '\\') {
            n = escape_len(p, end);
            if (n == 0)
                return RC_EJSON;
            *escaped = 1;
        } else if (*p < 0x20) {
            return RC_EJSON;
        } else if (*p >= 0x80) {
            n = rc__utf8_seq(p, end);
            if (n == 0)
                return rc__utf8_cut(p, end) ? RC_EJSON : RC_EUTF8;
        } else {
            n = 1;
        }
        p += n;
    }
    *body = c->p + 1;
    *body_len = (size_t)(p - *body);
    c->p = p + 1;
    return 0;
}

/* JSON's short escapes, as pairs: the letter after the backslash, then
 * the byte it stands for. "\/" is read as '/' but never written. */
static const char short_escapes[] = "\"\"\\\\b\bf\fn\nr\rt\t";

static char unescape_char(unsigned char ch)
{
    const char *e;

    for (e = short_escapes; *e != '\0'; e += 2)
        if ((unsigned char)e[0] == ch)
            return e[1];
    return (char)ch; /* '/' */
}

long rc__json_unescape(const unsigned char *body, size_t len, char *dst,
                       int strict)
{
    const unsigned char *p = body, *end = body + len;
    char *d = dst;
    long cp, lo;

    while (p < end) {
        if (*p != '\\') {
            *d++ = (char)*p++;
            continue;
        }
        if (p[1] != 'u') {
            *d++ = unescape_char(p[1]);
            p += 2;
            continue;
        }
        cp = hex4(p + 2);
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' &&
            p[1] == 'u' && (lo = hex4(p + 2)) >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        } else if (cp >= 0xD800 && cp <= 0xDFFF && strict) {
            return RC_EUTF8;
        }
        d = rc__utf8_put(d, (unsigned long)cp);
    }
    return (long)(d - dst);
}

static int is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

int rc__json_number(rc__jcur *c)
{
    const unsigned char *p = c->p, *end = c->end;

    if (p < end && *p == '-')
        p++;
    if (!is_digit(p, end))
        return RC_EJSON;
    if (*p++ != '0')
        while (is_digit(p, end))
            p++;
    if (p < end && *p == '.') {
        if (!is_digit(++p, end))
            return RC_EJSON;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return RC_EJSON;
        while (is_digit(p, end))
            p++;
    }
    c->p = p;
    return 0;
}

static int literal(rc__jcur *c, const char *word, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return RC_EJSON;
    c->p += n;
    return 0;
}

/* One scalar at c->p: string, number or literal. */
static int scalar(rc__jcur *c)
{
    const unsigned char *body;
    size_t len;
    int escaped;

    switch (*c->p) {
    case '"':
        return rc__json_string(c, &body, &len, &escaped);
    case 't':
        return literal(c, "true", 4);
    case 'f':
        return literal(c, "false", 5);
    case 'n':
        return literal(c, "null", 4);
    }
    return rc__json_number(c);
}

/* An object key and its colon. */
static int key(rc__jcur *c)
{
    int rv;

    rc__json_ws(c);
    if (c->p == c->end || *c->p != '"')
        return RC_EJSON;
    if ((rv = scalar(c)) != 0)
        return rv;
    rc__json_ws(c);
    if (c->p == c->end || *c->p != ':')
        return RC_EJSON;
    c->p++;
    return 0;
}

/* The scanner is a small state machine over three states: expecting a
 * value, expecting an object key, and having just finished a value. Bit i
 * of `objects` says whether nesting level i is an object. */
int rc__json_value(rc__jcur *c, unsigned max_depth)
{
    unsigned char objects[RC_MAX_DEPTH_LIMIT / 8];
    unsigned depth = 0;
    int rv, in_object;

value:
    rc__json_ws(c);
    if (c->p == c->end)
        return RC_EJSON;
    if (*c->p == '{' || *c->p == '[') {
        if (depth >= max_depth)
            return RC_EDEPTH;
        in_object = *c->p == '{';
        if (in_object)
            objects[depth / 8] |= (unsigned char)(1u << depth % 8);
        else
            objects[depth / 8] &= (unsigned char)~(1u << depth % 8);
        depth++;
        c->p++;
        rc__json_ws(c);
        if (c->p < c->end && *c->p == (in_object ? '}' : ']')) {
            c->p++;
            depth--;
            goto done;
        }
        if (in_object)
            goto key;
        goto value;
    }
    rv = scalar(c);
    if (rv != 0)
        return rv;
    goto done;

key:
    if ((rv = key(c)) != 0)
        return rv;
    goto value;

done:
    if (depth == 0)
        return 0;
    rc__json_ws(c);
    if (c->p == c->end)
        return RC_EJSON;
    in_object = objects[(depth - 1) / 8] >> (depth - 1) % 8 & 1;
    if (*c->p == ',') {
        c->p++;
        if (in_object)
            goto key;
        goto value;
    }
    if (*c->p != (in_object ? '}' : ']'))
        return RC_EJSON;
    c->p++;
    depth--;
    goto done;
}

size_t rc__json_trim(const char *s, size_t len, const char **start)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end && rc__json_is_ws(*p))
        p++;
    while (end > p && rc__json_is_ws(end[-1]))
        end--;
    *start = (const char *)p;
    return (size_t)(end - p);
}

int rc__json_check(const char *s, size_t len, unsigned max_depth)
{
    rc__jcur c;
    int rv;

    c.p = (const unsigned char *)s;
    c.end = c.p + len;
    rv = rc__json_value(&c, max_depth);
    if (rv == 0 && c.p != c.end)
        rv = RC_EJSON;
    return rv;
}

/* What JSON.stringify writes for a byte of a string: 0 for the byte
 * itself, else the short escape letter, or 'u' for \u00XX. */
static char escape_for(unsigned char ch)
{
    const char *e;

    for (e = short_escapes; *e != '\0'; e += 2)
        if ((unsigned char)e[1] == ch)
            return e[0];
    return ch < 0x20 ? 'u' : 0;
}

char *rc__json_quote(char *dst, const char *s, size_t len, size_t quoted)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    char e;

    *dst++ = '"';
    if (quoted == len + 2) { /* nothing to escape: the common case */
        memcpy(dst, s, len);
        dst += len;
        p = end;
    }
    for (; p < end; p++) {
        e = escape_for(*p);
        if (e == 0) {
            *dst++ = (char)*p;
            continue;
        }
        *dst++ = '\\';
        *dst++ = e;
        if (e == 'u') {
            memcpy(dst, "00", 2);
            dst[2] = hex[*p >> 4];
            dst[3] = hex[*p & 0xF];
            dst += 4;
        }
    }
    *dst++ = '"';
    return dst;
}

size_t rc__dec_len(unsigned long long v)
{
    size_t n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

char *rc__dec_put(char *dst, unsigned long long v)
{
    size_t n = rc__dec_len(v), i;

    for (i = n; i > 0; i--) {
        dst[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    return dst + n;
}
