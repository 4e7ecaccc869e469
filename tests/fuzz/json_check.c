/*
 * RFC 8259 (sections 2 to 7) as a recursive descent recognizer. Written for the
 * fuzz targets; see json_check.h.
 */
#include "json_check.h"

#include <string.h>

typedef struct jv {
    const unsigned char *p, *end;
    unsigned depth, max_depth;
    int give_up;
} jv;

static void jv_ws(jv *v)
{
    while (v->p < v->end &&
           (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
        v->p++;
}

static int jv_lit(jv *v, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(v->end - v->p) < n || memcmp(v->p, lit, n) != 0)
        return 0;
    v->p += n;
    return 1;
}

static int jv_digits(jv *v)
{
    const unsigned char *start = v->p;

    while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
        v->p++;
    return v->p > start;
}

static int jv_number(jv *v)
{
    if (v->p < v->end && *v->p == '-')
        v->p++;
    if (v->p < v->end && *v->p == '0')
        v->p++;
    else if (v->p >= v->end || *v->p < '1' || *v->p > '9' || !jv_digits(v))
        return 0;
    if (v->p < v->end && *v->p == '.') {
        v->p++;
        if (!jv_digits(v))
            return 0;
    }
    if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
        v->p++;
        if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
            v->p++;
        if (!jv_digits(v))
            return 0;
    }
    return 1;
}

static int jv_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

static int jv_string(jv *v)
{
    v->p++; /* the opening quote */
    while (v->p < v->end) {
        unsigned char c = *v->p++;

        if (c == '"')
            return 1;
        if (c < 0x20)
            return 0;
        if (c != '\\')
            continue;
        if (v->p >= v->end)
            return 0;
        c = *v->p++;
        if (c == 'u') {
            int i;

            if (v->end - v->p < 4)
                return 0;
            for (i = 0; i < 4; i++)
                if (!jv_hex(v->p[i]))
                    return 0;
            v->p += 4;
        } else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
            return 0;
        }
    }
    return 0;
}

static int jv_value(jv *v);

/* Object or array; close is '}' or ']'. */
static int jv_container(jv *v, unsigned char close)
{
    v->p++;
    if (++v->depth > v->max_depth)
        v->max_depth = v->depth;
    if (v->depth > JSON_CHECK_GIVE_UP) {
        v->give_up = 1;
        return 0;
    }
    jv_ws(v);
    if (v->p < v->end && *v->p == close) {
        v->p++;
        v->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            jv_ws(v);
            if (v->p >= v->end || *v->p != '"' || !jv_string(v))
                return 0;
            jv_ws(v);
            if (v->p >= v->end || *v->p++ != ':')
                return 0;
        }
        if (!jv_value(v))
            return 0;
        if (v->p < v->end && *v->p == ',') {
            v->p++;
            continue;
        }
        if (v->p < v->end && *v->p == close) {
            v->p++;
            v->depth--;
            return 1;
        }
        return 0;
    }
}

/* ws value ws */
static int jv_value(jv *v)
{
    int ok;

    jv_ws(v);
    if (v->p >= v->end)
        return 0;
    switch (*v->p) {
    case '{':
        ok = jv_container(v, '}');
        break;
    case '[':
        ok = jv_container(v, ']');
        break;
    case '"':
        ok = jv_string(v);
        break;
    case 't':
        ok = jv_lit(v, "true");
        break;
    case 'f':
        ok = jv_lit(v, "false");
        break;
    case 'n':
        ok = jv_lit(v, "null");
        break;
    default:
        ok = jv_number(v);
        break;
    }
    jv_ws(v);
    return ok;
}

int json_text(const void *s, size_t n, unsigned *depth)
{
    jv v;
    int ok;

    memset(&v, 0, sizeof(v));
    v.p = s;
    v.end = v.p + n;
    ok = jv_value(&v) && v.p == v.end;
    if (v.give_up)
        return -1;
    *depth = v.max_depth;
    return ok;
}
