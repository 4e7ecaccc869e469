/*
 * The Redis envelope:
 *   {"v":1,"m":{"event":E,"data":D,"id":I,"retry":R},"n":NODE,"e":EXCEPT,
 *    "meta":META}
 * The encoder writes exactly that order, compact, as JSON.stringify would.
 * The decoder accepts any key order, lets a duplicate key's last value win
 * (JSON.parse does), and checks everything before it says yes.
 */
#include <string.h>

#include "internal.h"

rc_limits rc__limits(const rc_limits *limits)
{
    rc_limits l = {RC_DEFAULT_MAX_DATA, RC_DEFAULT_MAX_DEPTH};

    if (limits != NULL) {
        if (limits->max_data != 0)
            l.max_data = limits->max_data;
        if (limits->max_depth != 0)
            l.max_depth = limits->max_depth;
    }
    if (l.max_depth > RC_MAX_DEPTH_LIMIT)
        l.max_depth = RC_MAX_DEPTH_LIMIT;
    return l;
}

static int over_total(size_t len, const rc_limits *l)
{
    return len > RC_ENVELOPE_SLACK && len - RC_ENVELOPE_SLACK > l->max_data;
}

/* ---- checking and encoding ----------------------------------------- */

/* A string field once checked: its length, and its length as JSON. */
typedef struct text {
    const char *s; /* NULL: absent */
    size_t len, quoted;
} text;

static int text_check(text *t, const char *s)
{
    t->s = s;
    return s == NULL ? 0 : rc__field_check(s, &t->len, &t->quoted);
}

/* Check msg and find its data value without the whitespace around it. */
static int message_check(const rc_message *msg, const rc_limits *l,
                         const char **data, size_t *data_len, text *event,
                         text *id)
{
    int rv;

    if (msg == NULL)
        return RC_EINVAL;
    if (msg->data == NULL)
        return RC_ENODATA;
    *data_len = rc__json_trim(msg->data, msg->data_len, data);
    if (*data_len == 0)
        return RC_ENODATA;
    if (*data_len > l->max_data)
        return RC_ETOOBIG;
    rv = rc__json_check(*data, *data_len, l->max_depth);
    if (rv == 0)
        rv = text_check(event, msg->event);
    if (rv == 0)
        rv = text_check(id, msg->id);
    if (rv == 0 && msg->retry > RC_RETRY_MAX)
        rv = RC_ERETRY;
    return rv;
}

int rc_message_check(const rc_message *msg, const rc_limits *limits)
{
    rc_limits l = rc__limits(limits);
    const char *data;
    size_t data_len;
    text event, id;

    return message_check(msg, &l, &data, &data_len, &event, &id);
}

#define LIT(s) s, sizeof(s) - 1

static char *put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

/* ,"key":"value" for a present field (key given with its quotes). */
static char *put_text(char *d, const char *key, size_t key_len, const text *t)
{
    d = put(d, key, key_len);
    return rc__json_quote(d, t->s, t->len, t->quoted);
}

/* The checked parts of an envelope, ready to be sized and written. */
typedef struct parts {
    const char *data, *meta;
    size_t data_len, meta_len;
    long long retry;
    text event, id, node, except;
} parts;

static int parts_check(const rc_envelope *env, const rc_limits *l, parts *p)
{
    int rv =
        message_check(&env->msg, l, &p->data, &p->data_len, &p->event, &p->id);

    if (rv != 0)
        return rv;
    if (env->node == NULL)
        return RC_ETYPE;
    p->retry = env->msg.retry;
    p->meta = NULL;
    p->meta_len = 0;
    rv = text_check(&p->node, env->node);
    if (rv == 0)
        rv = text_check(&p->except, env->except);
    if (rv == 0 && env->meta != NULL) {
        p->meta_len = rc__json_trim(env->meta, env->meta_len, &p->meta);
        rv = rc__json_check(p->meta, p->meta_len, l->max_depth);
    }
    return rv;
}

static size_t parts_size(const parts *p)
{
    size_t need = sizeof("{\"v\":1,\"m\":{\"data\":},\"n\":}") - 1 +
                  p->data_len + p->node.quoted;

    if (p->event.s != NULL)
        need += sizeof("\"event\":,") - 1 + p->event.quoted;
    if (p->id.s != NULL)
        need += sizeof(",\"id\":") - 1 + p->id.quoted;
    if (p->retry >= 0)
        need += sizeof(",\"retry\":") - 1 +
                rc__dec_len((unsigned long long)p->retry);
    if (p->except.s != NULL)
        need += sizeof(",\"e\":") - 1 + p->except.quoted;
    if (p->meta != NULL)
        need += sizeof(",\"meta\":") - 1 + p->meta_len;
    return need;
}

static void parts_write(const parts *p, char *d)
{
    d = put(d, LIT("{\"v\":1,\"m\":{"));
    if (p->event.s != NULL) {
        d = put_text(d, LIT("\"event\":"), &p->event);
        *d++ = ',';
    }
    d = put(d, LIT("\"data\":"));
    d = put(d, p->data, p->data_len);
    if (p->id.s != NULL)
        d = put_text(d, LIT(",\"id\":"), &p->id);
    if (p->retry >= 0) {
        d = put(d, LIT(",\"retry\":"));
        d = rc__dec_put(d, (unsigned long long)p->retry);
    }
    d = put_text(d, LIT("},\"n\":"), &p->node);
    if (p->except.s != NULL)
        d = put_text(d, LIT(",\"e\":"), &p->except);
    if (p->meta != NULL) {
        d = put(d, LIT(",\"meta\":"));
        d = put(d, p->meta, p->meta_len);
    }
    *d = '}';
}

int rc_envelope_encode(const rc_envelope *env, const rc_limits *limits,
                       char *buf, size_t size, size_t *len)
{
    rc_limits l = rc__limits(limits);
    size_t need;
    parts p;
    int rv;

    if (env == NULL || len == NULL || (buf == NULL && size > 0))
        return RC_EINVAL;
    if ((rv = parts_check(env, &l, &p)) != 0)
        return rv;
    need = parts_size(&p);
    if (over_total(need, &l))
        return RC_ETOOBIG;
    *len = need;
    if (need > size)
        return RC_ENOBUFS;
    parts_write(&p, buf);
    return 0;
}

/* ---- decoding -------------------------------------------------------- */

/* A string field as decoded so far; duplicates overwrite it. */
typedef struct field {
    enum { F_ABSENT, F_STRING, F_WRONG } state;
    const char *str; /* NUL-terminated, in scratch */
    size_t len;
} field;

typedef enum key {
    K_OTHER,
    K_V,
    K_M,
    K_N,
    K_E,
    K_META,
    K_EVENT,
    K_DATA,
    K_ID,
    K_RETRY
} key;

typedef struct decoder {
    rc__jcur c;
    rc_limits lim;
    char *sp; /* the free part of scratch: sp, sleft bytes */
    size_t sleft;
    int v_ok, m_ok, retry_bad;
    field event, id, node, except;
    const unsigned char *data, *meta;
    size_t data_len, meta_len;
    long long retry;
} decoder;

/* Which of our keys a key is, by its unescaped bytes. */
static key key_of(const char *name, size_t len, int in_message)
{
#define IS(word) (len == sizeof(word) - 1 && memcmp(name, word, len) == 0)
    if (!in_message) {
        if (len == 1)
            return name[0] == 'v'   ? K_V
                   : name[0] == 'm' ? K_M
                   : name[0] == 'n' ? K_N
                   : name[0] == 'e' ? K_E
                                    : K_OTHER;
        return IS("meta") ? K_META : K_OTHER;
    }
    return IS("data")    ? K_DATA
           : IS("event") ? K_EVENT
           : IS("id")    ? K_ID
           : IS("retry") ? K_RETRY
                         : K_OTHER;
#undef IS
}

/* Read an object key. Keys are compared unescaped ("\u0076" is "v"), as
 * JSON.parse would; a key too long to be one of ours is simply K_OTHER. */
static int read_key(decoder *d, int in_message, key *k)
{
    const unsigned char *body;
    size_t len;
    char name[5 * 6]; /* our longest key, every byte escaped as \uXXXX */
    long n;
    int escaped, rv;

    *k = K_OTHER;
    if (d->c.p == d->c.end || *d->c.p != '"')
        return RC_EJSON;
    rv = rc__json_string(&d->c, &body, &len, &escaped);
    if (rv != 0)
        return rv;
    if (!escaped) {
        *k = key_of((const char *)body, len, in_message);
    } else if (len <= sizeof name) {
        n = rc__json_unescape(body, len, name, 0);
        *k = key_of(name, (size_t)n, in_message);
    }
    return 0;
}

static int skip_value(decoder *d)
{
    return rc__json_value(&d->c, d->lim.max_depth);
}

/* A string value for event, id, n or e: unescape it into scratch. Any
 * other JSON value is validated and marks the field as the wrong type. */
static int read_field(decoder *d, field *f)
{
    const unsigned char *body;
    size_t len;
    long n;
    int escaped, rv;

    if (*d->c.p != '"') {
        f->state = F_WRONG;
        return skip_value(d);
    }
    rv = rc__json_string(&d->c, &body, &len, &escaped);
    if (rv != 0)
        return rv;
    if (d->sleft < len + 1)
        return RC_ENOBUFS;
    if (escaped) {
        n = rc__json_unescape(body, len, d->sp, 1);
        if (n < 0)
            return (int)n;
    } else {
        memcpy(d->sp, body, len);
        n = (long)len;
    }
    d->sp[n] = '\0';
    f->state = F_STRING;
    f->str = d->sp;
    f->len = (size_t)n;
    d->sp += n + 1;
    d->sleft -= (size_t)n + 1;
    return 0;
}

/* The span of any JSON value. */
static int read_raw(decoder *d, const unsigned char **start, size_t *len)
{
    const unsigned char *p = d->c.p;
    int rv = skip_value(d);

    *start = p;
    *len = (size_t)(d->c.p - p);
    return rv;
}

/* Is the number token [p, end) exactly 1? Written D (integer and fraction
 * digits) times 10^E, it is 1 when D holds a single nonzero digit, a 1,
 * followed by k digits, and E equals (fraction length - k). */
static int number_is_one(const unsigned char *p, const unsigned char *end)
{
    long nonzero = 0, after = 0, frac = 0, exp = 0;
    int in_frac = 0, neg_exp = 0, one = 0;

    if (*p == '-')
        return 0;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            in_frac = 1;
            continue;
        }
        frac += in_frac;
        after++;
        if (*p != '0') {
            nonzero++;
            one = *p == '1';
            after = 0;
        }
    }
    if (nonzero != 1 || !one)
        return 0;
    if (p < end) {
        p++;
        if (*p == '+' || *p == '-')
            neg_exp = *p++ == '-';
        for (; p < end; p++) {
            if (exp > 100000000L)
                return 0; /* far beyond any input length */
            exp = exp * 10 + (*p - '0');
        }
    }
    return (neg_exp ? -exp : exp) == frac - after;
}

/* retry must be written as a plain non-negative integer within range,
 * since it is echoed to clients as ASCII digits. [p, end) is a value that
 * has already been validated. */
static void read_retry(decoder *d, const unsigned char *p,
                       const unsigned char *end)
{
    long long v = 0;

    d->retry_bad = 1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || v > RC_RETRY_MAX / 10)
            return;
        v = v * 10 + (*p - '0');
    }
    if (v > RC_RETRY_MAX)
        return;
    d->retry = v;
    d->retry_bad = 0;
}

static int message_member(decoder *d, key k)
{
    const unsigned char *p = d->c.p;
    int rv;

    switch (k) {
    case K_EVENT:
        return read_field(d, &d->event);
    case K_ID:
        return read_field(d, &d->id);
    case K_DATA:
        return read_raw(d, &d->data, &d->data_len);
    case K_RETRY:
        rv = skip_value(d);
        if (rv == 0)
            read_retry(d, p, d->c.p);
        return rv;
    default:
        return skip_value(d);
    }
}

static int parse_object(decoder *d, int in_message);

static int root_member(decoder *d, key k)
{
    const unsigned char *p = d->c.p;
    int rv;

    switch (k) {
    case K_V:
        rv = skip_value(d);
        d->v_ok = rv == 0 && (*p == '-' || (*p >= '0' && *p <= '9')) &&
                  number_is_one(p, d->c.p);
        return rv;
    case K_M:
        /* A later "m" replaces an earlier one whole. */
        memset(&d->event, 0, sizeof d->event);
        memset(&d->id, 0, sizeof d->id);
        d->data = NULL;
        d->retry = -1;
        d->retry_bad = 0;
        d->m_ok = *p == '{';
        return d->m_ok ? parse_object(d, 1) : skip_value(d);
    case K_N:
        return read_field(d, &d->node);
    case K_E:
        return read_field(d, &d->except);
    case K_META:
        return read_raw(d, &d->meta, &d->meta_len);
    default:
        return skip_value(d);
    }
}

/* The envelope object (in_message 0) or its "m" (in_message 1); c.p is at
 * the opening brace. The envelope's own two levels do not count towards
 * max_depth: the limit applies to each value inside. */
static int parse_object(decoder *d, int in_message)
{
    rc__jcur *c = &d->c;
    key k;
    int rv;

    c->p++;
    rc__json_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        rc__json_ws(c);
        rv = read_key(d, in_message, &k);
        if (rv != 0)
            return rv;
        rc__json_ws(c);
        if (c->p == c->end || *c->p != ':')
            return RC_EJSON;
        c->p++;
        rc__json_ws(c);
        if (c->p == c->end)
            return RC_EJSON;
        rv = in_message ? message_member(d, k) : root_member(d, k);
        if (rv != 0)
            return rv;
        rc__json_ws(c);
        if (c->p == c->end)
            return RC_EJSON;
        if (*c->p == '}') {
            c->p++;
            return 0;
        }
        if (*c->p++ != ',')
            return RC_EJSON;
    }
}

/* CR, LF or NUL in a decoded string. */
static int bad_chars(const field *f)
{
    size_t i;

    for (i = 0; f->state == F_STRING && i < f->len; i++)
        if (f->str[i] == '\r' || f->str[i] == '\n' || f->str[i] == '\0')
            return 1;
    return 0;
}

/* The checks after a successful parse, in the documented order. */
static int finish(const decoder *d, rc_envelope *out)
{
    if (!d->v_ok)
        return RC_EVERSION;
    if (!d->m_ok)
        return RC_ENOMSG;
    if (d->data == NULL)
        return RC_ENODATA;
    if (d->event.state == F_WRONG || d->id.state == F_WRONG ||
        d->node.state != F_STRING || d->except.state == F_WRONG)
        return RC_ETYPE;
    if (d->retry_bad)
        return RC_ERETRY;
    if (bad_chars(&d->event) || bad_chars(&d->id) || bad_chars(&d->node) ||
        bad_chars(&d->except))
        return RC_ECHAR;
    if (d->data_len > d->lim.max_data)
        return RC_ETOOBIG;

    out->msg.event = d->event.str;
    out->msg.data = (const char *)d->data;
    out->msg.data_len = d->data_len;
    out->msg.id = d->id.str;
    out->msg.retry = d->retry;
    out->node = d->node.str;
    out->except = d->except.str;
    out->meta = (const char *)d->meta;
    out->meta_len = d->meta_len;
    return 0;
}

int rc_envelope_decode(const char *buf, size_t len, const rc_limits *limits,
                       rc_envelope *out, char *scratch, size_t scratch_size)
{
    decoder d;
    int rv;

    if ((buf == NULL && len > 0) || out == NULL ||
        (scratch == NULL && scratch_size > 0))
        return RC_EINVAL;
    memset(&d, 0, sizeof d);
    d.lim = rc__limits(limits);
    if (over_total(len, &d.lim))
        return RC_ETOOBIG;
    /* Pointer arithmetic on NULL is undefined even for + 0. */
    d.c.p = (const unsigned char *)(buf != NULL ? buf : "");
    d.c.end = d.c.p + len;
    d.sp = scratch;
    d.sleft = scratch_size; /* no pointer sum: scratch may be NULL */
    d.retry = -1;

    rc__json_ws(&d.c);
    if (d.c.p < d.c.end && *d.c.p == '{') {
        rv = parse_object(&d, 0);
    } else {
        /* Not an envelope; but say so only for valid JSON. */
        rv = skip_value(&d);
        if (rv == 0)
            rv = RC_ENOTENV;
    }
    if (rv == 0 || rv == RC_ENOTENV) {
        rc__json_ws(&d.c);
        if (d.c.p != d.c.end)
            return RC_EJSON;
    }
    return rv != 0 ? rv : finish(&d, out);
}
