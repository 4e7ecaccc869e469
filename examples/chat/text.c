/* rc-chat's pure text helpers (see text.h). */
#include "text.h"

#include <stdio.h>
#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long chat_pct_decode(const char *src, size_t n, char *dst, int plus_is_space)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];

        if (c == '%') {
            int hi, lo;

            if (n - i < 3)
                return -1;
            hi = hexval((unsigned char)src[i + 1]);
            lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            dst[o++] = ' ';
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o] = '\0';
    return (long)o;
}

int chat_name_ok(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i], cp, need, k;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* The escape JSON.stringify writes for byte c into esc (6 bytes at most):
 * its length, or 0 if c stands as it is. */
static size_t json_escape(unsigned char c, char *esc)
{
    static const char hex[] = "0123456789abcdef";
    static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
    const char *e = c != 0 ? strchr(from, c) : NULL;

    if (e != NULL) {
        esc[0] = '\\';
        esc[1] = to[e - from];
        return 2;
    }
    if (c >= 0x20)
        return 0;
    memcpy(esc, "\\u00", 4);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 15];
    return 6;
}

size_t chat_json_quote(const char *str, size_t n, char *dst, size_t size)
{
    const unsigned char *s = (const unsigned char *)str;
    char esc[6];
    size_t i, k, o = 0, need = 2;

    for (i = 0; i < n; i++) { /* first pass: the length */
        k = json_escape(s[i], esc);
        need += k != 0 ? k : 1;
    }
    if (need > size)
        return need;
    dst[o++] = '"';
    for (i = 0; i < n; i++) {
        k = json_escape(s[i], esc);
        if (k == 0) {
            dst[o++] = (char)s[i];
        } else {
            memcpy(dst + o, esc, k);
            o += k;
        }
    }
    dst[o++] = '"';
    return o;
}

/* The walkers below run over text already known to be valid JSON. */

static size_t skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n &&
           (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* p[i] is '"': the index just past the closing quote. */
static size_t skip_string(const char *p, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return n;
}

static size_t skip_value(const char *p, size_t i, size_t n)
{
    size_t depth = 0;

    if (i < n && p[i] == '"')
        return skip_string(p, i, n);
    while (i < n) {
        char c = p[i];

        if (c == '"') {
            i = skip_string(p, i, n);
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i; /* the end of a scalar inside a container */
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' ||
                                  c == '\n' || c == '\r')) {
            return i;
        }
        i++;
    }
    return n;
}

/*
 * The member of out that a key (a JSON string literal of n bytes, quotes
 * included) names, or NULL. The key is compared whole once unescaped: one
 * that unescapes to "data\0" is not "data", it is a key we do not know.
 */
static chat_span *member_slot(chat_body *out, const char *key, size_t n)
{
    static const char *const names[] = {"event",      "data",   "id",
                                        "except",     "userId", "code",
                                        "connection", "message"};
    chat_span *const slots[] = {&out->event,      &out->data,    &out->id,
                                &out->except,     &out->user_id, &out->code,
                                &out->connection, &out->message};
    char tmp[16];
    long len;
    size_t i;

    if (n > sizeof tmp) /* "\u0065vent" fits; longer keys are none of ours */
        return NULL;
    len = chat_json_unquote(key, n, tmp);
    for (i = 0; len > 0 && i < sizeof names / sizeof names[0]; i++)
        if ((size_t)len == strlen(names[i]) &&
            memcmp(tmp, names[i], (size_t)len) == 0)
            return slots[i];
    return NULL;
}

int chat_body_parse(const char *body, size_t n, chat_body *out)
{
    size_t i = skip_ws(body, 0, n);

    memset(out, 0, sizeof *out);
    if (i >= n || body[i] != '{')
        return -1;
    i = skip_ws(body, i + 1, n);
    while (i < n && body[i] == '"') {
        size_t kb = i, ke = skip_string(body, i, n), vb, ve;
        chat_span *slot = member_slot(out, body + kb, ke - kb);

        i = skip_ws(body, ke, n);
        i = skip_ws(body, i + 1, n); /* past ':' */
        vb = i;
        ve = skip_value(body, vb, n);
        if (slot != NULL) {
            slot->p = body + vb;
            slot->n = ve - vb;
        }
        i = skip_ws(body, ve, n);
        if (i < n && body[i] == ',')
            i = skip_ws(body, i + 1, n);
    }
    return 0;
}

static size_t put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | cp >> 6);
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | cp >> 12);
        dst[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | cp >> 18);
    dst[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    dst[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hexval((unsigned char)p[0]) << 12 |
                      hexval((unsigned char)p[1]) << 8 |
                      hexval((unsigned char)p[2]) << 4 |
                      hexval((unsigned char)p[3]));
}

/* p[*i] is the 'u' of a complete \u escape in the string p of n bytes:
 * write its code point as UTF-8 into dst (with the low surrogate that may
 * follow a high one: one code point), leave *i on its last byte, and
 * return the bytes written. 6 escaped bytes give at most 3, 12 give 4. */
static size_t unescape_u(const char *p, size_t n, size_t *i, char *dst)
{
    unsigned cp = hex4(p + *i + 1), lo;

    *i += 4;
    if (cp >= 0xd800 && cp <= 0xdbff && n - 1 - *i >= 7 && p[*i + 1] == '\\' &&
        p[*i + 2] == 'u') {
        lo = hex4(p + *i + 3);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            *i += 6;
        }
    }
    return put_utf8(dst, cp);
}

long chat_json_unquote(const char *p, size_t n, char *dst)
{
    static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
    const char *e;
    size_t i, o = 0;

    if (n < 2 || p[0] != '"' || p[n - 1] != '"')
        return -1;
    for (i = 1; i + 1 < n; i++) {
        if (p[i] != '\\') {
            dst[o++] = p[i];
            continue;
        }
        i++;
        if (p[i] == 'u') {
            if (n - 1 - i < 5)
                return -1;
            o += unescape_u(p, n, &i, dst + o);
        } else if (p[i] != '\0' && (e = strchr(from, p[i])) != NULL) {
            dst[o++] = to[e - from];
        } else {
            dst[o++] = p[i]; /* \" \\ \/ */
        }
    }
    dst[o] = '\0';
    return (long)o;
}

size_t chat_url_secret(const char *url, size_t *off)
{
    const char *sep = strstr(url, "://");
    const char *from = sep != NULL ? sep + 3 : url;
    const char *at = strrchr(from, '@'), *colon;

    *off = 0;
    if (at == NULL)
        return 0;
    colon = memchr(from, ':', (size_t)(at - from));
    if (colon != NULL)
        from = colon + 1;
    *off = (size_t)(from - url);
    return (size_t)(at - from);
}

char *chat_url_redact(const char *url, char *dst, size_t size)
{
    size_t off, n = chat_url_secret(url, &off);

    if (n == 0 && url[off] != '@')
        snprintf(dst, size, "%s", url);
    else
        snprintf(dst, size, "%.*s***%s", (int)off, url, url + off + n);
    return dst;
}

long chat_code_norm(const char *src, size_t n, char *dst)
{
    size_t i;

    if (n == 0 || n > CHAT_CODE_MAX)
        return -1;
    for (i = 0; i < n; i++) {
        char c = src[i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c == 'O')
            c = '0';
        else if (c == 'I' || c == 'L')
            c = '1';
        if (c == '\0' || strchr(CHAT_CODE_ALPHABET, c) == NULL)
            return -1;
        dst[i] = c;
    }
    dst[n] = '\0';
    return (long)n;
}
