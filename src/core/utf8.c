/* UTF-8 validation and encoding (RFC 3629). */
#include "internal.h"

static int is_cont(unsigned char ch)
{
    return (ch & 0xC0) == 0x80;
}

/* Sequence length announced by a lead byte, 0 for a byte that cannot lead
 * (continuation bytes, C0/C1 overlongs, F5..FF). */
static size_t lead_len(unsigned char ch)
{
    if (ch >= 0xC2 && ch <= 0xDF)
        return 2;
    if (ch >= 0xE0 && ch <= 0xEF)
        return 3;
    if (ch >= 0xF0 && ch <= 0xF4)
        return 4;
    return 0;
}

size_t rc__utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t n = lead_len(p[0]);
    size_t i;

    if (n == 0 || (size_t)(end - p) < n)
        return 0;
    for (i = 1; i < n; i++)
        if (!is_cont(p[i]))
            return 0;
    /* The second byte's range excludes overlong forms (E0, F0), UTF-16
     * surrogates (ED) and code points above U+10FFFF (F4). */
    switch (p[0]) {
    case 0xE0:
        return p[1] >= 0xA0 ? n : 0;
    case 0xED:
        return p[1] < 0xA0 ? n : 0;
    case 0xF0:
        return p[1] >= 0x90 ? n : 0;
    case 0xF4:
        return p[1] < 0x90 ? n : 0;
    }
    return n;
}

int rc__utf8_cut(const unsigned char *p, const unsigned char *end)
{
    size_t n = lead_len(p[0]);
    const unsigned char *q;

    if (n == 0 || (size_t)(end - p) >= n)
        return 0;
    for (q = p + 1; q < end; q++)
        if (!is_cont(*q))
            return 0;
    return 1;
}

char *rc__utf8_put(char *dst, unsigned long cp)
{
    unsigned char *d = (unsigned char *)dst;

    if (cp < 0x80) {
        *d++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *d++ = (unsigned char)(0xC0 | (cp >> 6));
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (unsigned char)(0xE0 | (cp >> 12));
        *d++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (unsigned char)(0xF0 | (cp >> 18));
        *d++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *d++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return (char *)d;
}

/* Bytes that JSON.stringify writes as a two-byte escape. */
static int short_escape(unsigned char ch)
{
    return ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' ||
           ch == '\r' || ch == '\t';
}

int rc__field_check(const char *s, size_t *len, size_t *quoted)
{
    const unsigned char *p = (const unsigned char *)s, *start = p;
    size_t q = 2, n;

    for (; *p != '\0'; p += n) {
        n = 1;
        if (*p == '\r' || *p == '\n')
            return RC_ECHAR;
        if (*p >= 0x80) {
            /* A sequence is at most 4 bytes and ends at the NUL. */
            while (n < 4 && p[n] != '\0')
                n++;
            n = rc__utf8_seq(p, p + n);
            if (n == 0)
                return RC_EUTF8;
        }
        q += n;
        if (short_escape(*p))
            q++;
        else if (*p < 0x20)
            q += 5; /* \u00XX */
    }
    if (len != NULL)
        *len = (size_t)(p - start);
    if (quoted != NULL)
        *quoted = q;
    return 0;
}
