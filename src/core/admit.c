/*
 * Admission (see roomcast.h): create, admit, evict, close, and a publish
 * behind checks. Each is one script on the room's keys (alua.c); a
 * session first takes its code with a node-wide script, a close is named
 * in <kp>{closed} before and its code tombstoned after, a limited send
 * takes from its rate bucket before (each node-wide key is another
 * cluster slot). Answers are RC_E* codes as the scripts return them.
 */
#include "presence.h"

#define DEFAULT_TTL_S 86400u
#define MAX_TTL_S (10u * 365u * 86400u)
#define DEFAULT_HOLD_MS 15000u
#define DEFAULT_CODE_LEN 6u
#define MAX_CODE_LEN 32u
#define CANDIDATES 8
#define CODE_TRIES 4

static const char default_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static const char default_code_prefix[] = "session:";

typedef struct call {
    rc__pend pend; /* first: linked while a script call is in flight */
    rc_admit_cb cb;
    void *user;
    char *room, *uid, *abc, *cpfx; /* owned; NULL when not used */
    size_t uid_q;                  /* uid's length as a JSON string */
    rc_room_spec spec;             /* create: defaults filled in */
    unsigned tries;
    rc_message msg; /* send: a copy, for the local members */
    char *mbuf;
    char *env, *key; /* send: the envelope, the bucket's key */
    size_t env_len;
    unsigned long long rate_t; /* the bucket's emission interval (us) */
    unsigned burst;
} call;

static char *dup(rc_adapter *a, const char *s, size_t len)
{
    char *d = rc__malloc(&a->mem, len + 1);

    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static void call_free(const rc__alloc *mem, call *k)
{
    rc__free(mem, k->room);
    rc__free(mem, k->uid);
    rc__free(mem, k->abc);
    rc__free(mem, k->cpfx);
    rc__free(mem, k->mbuf);
    rc__free(mem, k->env);
    rc__free(mem, k->key);
    rc__free(mem, k);
}

static void call_pend_free(rc_adapter *a, rc__pend *p)
{
    call_free(&a->mem, (call *)p);
}

/* A call that will not be answered (its script could not be sent). */
static void drop(rc_adapter *a, call *k)
{
    rc__pend_unlink(a, &k->pend);
    call_free(&a->mem, k);
}

/* The answer to the host, once; the adapter may be freed inside. */
static void finish(rc_adapter *a, call *k, int rv, unsigned long long retry)
{
    rc__alloc mem = a->mem;

    rc__pend_unlink(a, &k->pend);
    if (!a->closing) {
        rc__enter(a);
        k->cb(a, rv, k->room != NULL ? k->room : "", retry, k->user);
        rc__exit(a);
    }
    call_free(&mem, k);
}

/* A script's {code, ...} answer as an RC_E* value. */
static int answer(const rc__reply *r, int err)
{
    long long v;

    if (err == RC_EMISUSE)
        return RC_EUNAVAIL;
    if (err != 0)
        return err;
    if (rc__reply_int(r, 0, &v) != 0 || v > 0 || v < -1000)
        return RC_EREDIS;
    return (int)v;
}

static void on_answer(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    finish(a, arg, answer(r, err), 0);
}

/* An evict: the users it made leave are forgotten by the index. */
static void on_evicted(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    call *k = arg;

    if (err == 0 && !a->closing)
        rc__pidx_after(a, k->room, strlen(k->room), r, NULL);
    finish(a, k, answer(r, err), 0);
}

/* A call with room and user checked and copied; NULL and *rv set if not. */
static call *call_new(rc_adapter *a, const char *room, const char *user,
                      rc_admit_cb cb, void *cb_user, int *rv)
{
    size_t len, q = 0;
    call *k;

    *rv = RC_EINVAL;
    if (a == NULL || cb == NULL || a->closing ||
        (room != NULL && rc__quoted_len(room, strlen(room)) == 0) ||
        (user != NULL && rc__user_check(user, &len, &q) != 0))
        return NULL;
    *rv = RC_EUNAVAIL;
    if (!rc__port_has_pub(a) || a->node.state == RC_NODE_REFUSED)
        return NULL;
    *rv = RC_ENOMEM;
    if ((k = rc__malloc(&a->mem, sizeof *k)) == NULL)
        return NULL;
    memset(k, 0, sizeof *k);
    k->cb = cb;
    k->user = cb_user;
    k->uid_q = q;
    if ((room != NULL && (k->room = dup(a, room, strlen(room))) == NULL) ||
        (user != NULL && (k->uid = dup(a, user, strlen(user))) == NULL)) {
        call_free(&a->mem, k);
        return NULL;
    }
    k->pend.free_fn = call_pend_free;
    rc__pend_link(a, &k->pend);
    *rv = 0;
    return k;
}

/* Send a room script for k: 0, or an error (RC_EUNAVAIL: no link). */
static int room_call(rc_adapter *a, call *k, int script, const char **v,
                     const size_t *l, size_t n, rc__script_cb cb)
{
    int rv =
        rc__room_script(a, script, k->room, strlen(k->room), v, l, n, cb, k);

    return rv == RC_EMISUSE ? RC_EUNAVAIL : rv;
}

/* ---- create ------------------------------------------------------------- */

static void on_created(rc_adapter *a, const rc__reply *r, int err, void *arg);

static int send_create(rc_adapter *a, call *k, const char *code)
{
    char cap[24], ttl[24], hold[24];
    const char *v[5];
    size_t l[5];

    v[0] = cap, l[0] = (size_t)(rc__dec_put(cap, k->spec.cap) - cap);
    v[1] = ttl;
    l[1] = (size_t)(rc__dec_put(ttl, k->spec.ttl_s * 1000ull) - ttl);
    v[2] = hold, l[2] = (size_t)(rc__dec_put(hold, k->spec.hold_ms) - hold);
    v[3] = k->uid ? k->uid : "", l[3] = k->uid ? strlen(k->uid) : 0;
    v[4] = code, l[4] = strlen(code);
    return room_call(a, k, RC__SCRIPT_CREATE, v, l, 5, on_created);
}

/* n symbols of the alphabet, uniform (bytes past the largest multiple of
 * its size are drawn again). 0 or RC_ERANDOM. */
static int draw(const char *abc, char *out, size_t n)
{
    size_t m = strlen(abc), limit = 256 - 256 % m, i = 0, j;
    unsigned char raw[64];

    while (i < n) {
        if (rc__random(raw, sizeof raw) != 0)
            return RC_ERANDOM;
        for (j = 0; j < sizeof raw && i < n; j++)
            if (raw[j] < limit)
                out[i++] = abc[raw[j] % m];
    }
    return 0;
}

/* Ask for a free code: CANDIDATES drawn here, Redis takes the first free
 * one (or enumerates a small space); taken: a code found in use. */
static void on_code(rc_adapter *a, const rc__reply *r, int err, void *arg);

static int send_code(rc_adapter *a, call *k, const char *taken)
{
    unsigned len = k->spec.code_len;
    char ttl[24], clen[24], rnd[24], codes[CANDIDATES * MAX_CODE_LEN];
    const char *v[6 + CANDIDATES];
    size_t l[6 + CANDIDATES], kp = strlen(a->node.kp), i;
    unsigned char r[4];
    char key[256];
    int rv;

    if (kp + 8 > sizeof key)
        return RC_EINVAL;
    memcpy(key, a->node.kp, kp);
    memcpy(key + kp, "{codes}", 8);
    if (rc__random(r, sizeof r) != 0 ||
        draw(k->abc, codes, len * CANDIDATES) != 0)
        return RC_ERANDOM;
    v[0] = key, l[0] = kp + 7;
    v[1] = ttl;
    l[1] = (size_t)(rc__dec_put(ttl, k->spec.ttl_s * 1000ull) - ttl);
    v[2] = k->abc, l[2] = strlen(k->abc);
    v[3] = clen, l[3] = (size_t)(rc__dec_put(clen, len) - clen);
    v[4] = rnd;
    l[4] = (size_t)(rc__dec_put(rnd, (unsigned long long)r[0] << 24 |
                                         (unsigned long long)r[1] << 16 |
                                         (unsigned long long)r[2] << 8 | r[3]) -
                    rnd);
    v[5] = taken, l[5] = strlen(taken);
    for (i = 0; i < CANDIDATES; i++)
        v[6 + i] = codes + i * len, l[6 + i] = len;
    rv = rc__port_script(a, RC__SCRIPT_CODE, 1, 6 + CANDIDATES, v, l, on_code,
                         k);
    return rv == RC_EMISUSE ? RC_EUNAVAIL : rv;
}

/* A session's room made, or taken meanwhile under a free code (its code
 * outlived its entry in the codes set): that code is marked taken again
 * and another one asked for. */
static void on_created(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    call *k = arg;
    int rv = answer(r, err);

    if (rv == RC_EEXIST && k->cpfx != NULL && ++k->tries < CODE_TRIES &&
        !a->closing) {
        char code[MAX_CODE_LEN + 1];

        memcpy(code, k->room + strlen(k->cpfx), k->spec.code_len + 1);
        if ((rv = send_code(a, k, code)) == 0)
            return;
    }
    finish(a, k, rv == RC_EEXIST && k->cpfx != NULL ? RC_ENOCODE : rv, 0);
}

static void on_code(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    call *k = arg;
    size_t pl = strlen(k->cpfx), cl;
    const char *code = NULL;
    int rv = answer(r, err);
    char *room;

    if (rv == 0 && (a->closing || (code = rc__reply_str(r, 1, &cl)) == NULL ||
                    cl != k->spec.code_len))
        rv = RC_EREDIS;
    if (rv == 0 && (room = rc__malloc(&a->mem, pl + cl + 1)) == NULL)
        rv = RC_ENOMEM;
    if (rv != 0) {
        finish(a, k, rv, 0);
        return;
    }
    memcpy(room, k->cpfx, pl);
    memcpy(room + pl, code, cl + 1);
    rc__free(&a->mem, k->room);
    k->room = room;
    if ((rv = send_create(a, k, room + pl)) != 0)
        finish(a, k, rv, 0);
}

/* k->spec from spec (NULL: defaults); a session's alphabet and prefix
 * checked and copied. 0, RC_EINVAL or RC_ENOMEM. */
static int spec_fill(rc_adapter *a, call *k, const rc_room_spec *spec,
                     int session)
{
    rc_room_spec o;
    const char *abc, *pfx;
    size_t m, i;

    memset(&o, 0, sizeof o);
    if (spec != NULL)
        o = *spec;
    if (o.ttl_s > MAX_TTL_S || o.hold_ms > MAX_TTL_S)
        return RC_EINVAL;
    o.ttl_s = o.ttl_s ? o.ttl_s : DEFAULT_TTL_S;
    o.hold_ms = o.hold_ms ? o.hold_ms : DEFAULT_HOLD_MS;
    o.code_len = o.code_len ? o.code_len : DEFAULT_CODE_LEN;
    abc = o.alphabet ? o.alphabet : default_alphabet;
    pfx = o.code_prefix ? o.code_prefix : default_code_prefix;
    o.alphabet = o.code_prefix = NULL;
    k->spec = o;
    if (!session)
        return 0;
    m = strlen(abc);
    if (m < 2 || m > 255 || o.code_len > MAX_CODE_LEN ||
        (pfx[0] != '\0' && rc__quoted_len(pfx, strlen(pfx)) == 0))
        return RC_EINVAL;
    for (i = 0; i < m; i++) /* one printable ASCII byte per symbol, once */
        if (abc[i] < 0x21 || abc[i] > 0x7e || abc[i] == '{' || abc[i] == '}' ||
            strchr(abc + i + 1, abc[i]) != NULL)
            return RC_EINVAL;
    if ((k->abc = dup(a, abc, m)) == NULL ||
        (k->cpfx = dup(a, pfx, strlen(pfx))) == NULL)
        return RC_ENOMEM;
    return 0;
}

int rc_room_create(rc_adapter *a, const char *room, const rc_room_spec *spec,
                   const char *user, rc_admit_cb cb, void *cb_user)
{
    int rv;
    call *k = call_new(a, room, user, cb, cb_user, &rv);

    if (k == NULL)
        return rv;
    if ((rv = spec_fill(a, k, spec, room == NULL)) == 0)
        rv = room == NULL ? send_code(a, k, "") : send_create(a, k, "");
    if (rv != 0)
        drop(a, k);
    return rv;
}

/* ---- admit, evict ------------------------------------------------------- */

int rc_room_admit(rc_adapter *a, const char *room, const char *user,
                  unsigned flags, rc_admit_cb cb, void *cb_user)
{
    const char *v[2];
    size_t l[2];
    call *k;
    int rv;

    if (room == NULL || user == NULL ||
        (k = call_new(a, room, user, cb, cb_user, &rv)) == NULL)
        return room == NULL || user == NULL ? RC_EINVAL : rv;
    v[0] = k->uid, l[0] = strlen(k->uid);
    v[1] = (flags & RC_ADMIT_MEMBER) ? "m" : "", l[1] = v[1][0] ? 1 : 0;
    if ((rv = room_call(a, k, RC__SCRIPT_ADMIT, v, l, 2, on_answer)) != 0)
        drop(a, k);
    return rv;
}

int rc_room_evict(rc_adapter *a, const char *room, const char *user,
                  rc_admit_cb cb, void *cb_user)
{
    const char *v[2];
    size_t l[2];
    char *q = NULL;
    call *k;
    int rv;

    if (room == NULL || user == NULL ||
        (k = call_new(a, room, user, cb, cb_user, &rv)) == NULL)
        return room == NULL || user == NULL ? RC_EINVAL : rv;
    rv = RC_ENOMEM;
    if ((q = rc__malloc(&a->mem, k->uid_q)) != NULL) {
        rc__json_quote(q, k->uid, strlen(k->uid), k->uid_q);
        v[0] = k->uid, l[0] = strlen(k->uid);
        v[1] = q, l[1] = k->uid_q;
        rv = room_call(a, k, RC__SCRIPT_EVICT, v, l, 2, on_evicted);
    }
    rc__free(&a->mem, q);
    if (rv != 0)
        drop(a, k);
    return rv;
}

/* ---- close -------------------------------------------------------------- */

#define MAX_REASON 4096
/* How long a close's entry in <kp>{closed} lives until its answer sets
 * the tombstone's deadline (the default ttl). */
#define PROVISIONAL_MS "86400000"

/* The close's node-wide half: its entry in <kp>{closed} given the
 * tombstone's deadline (or taken out: there was no room), the code
 * tombstoned, the users gone forgotten by the index. */
static void on_closed(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    call *k = arg;
    int rv = answer(r, err);
    const char *v[2], *code;
    size_t l[2], cl = 0;
    long long dl;
    char db[24];

    v[0] = k->room, l[0] = strlen(k->room);
    v[1] = "", l[1] = 0;
    if (rv == 0 && rc__reply_int(r, 1, &dl) == 0 && dl > 0) {
        v[1] = db;
        l[1] = (size_t)(rc__dec_put(db, (unsigned long long)dl) - db);
    }
    if (!a->closing && ((rv == 0 && l[1] > 0) || rv == RC_ENOROOM))
        rc__nw_call(a, RC__SCRIPT_CDONE, "{closed}", "", 0, v, l, 2);
    if (rv == 0 && !a->closing) {
        if ((code = rc__reply_str(r, 2, &cl)) != NULL && cl > 0 && l[1] > 0) {
            const char *cv[2] = {code, db};
            size_t cls[2] = {cl, l[1]};

            rc__nw_call(a, RC__SCRIPT_CTOMB, "{codes}", "", 0, cv, cls, 2);
        }
        rc__pidx_after(a, k->room, l[0], r, NULL);
    }
    finish(a, k, rv, 0);
}

int rc_room_close(rc_adapter *a, const char *room, const char *reason,
                  rc_admit_cb cb, void *cb_user)
{
    const char *why = reason ? reason : "\"closed\"";
    size_t len = rc__json_trim(why, strlen(why), &why);
    rc__room *r;
    call *k;
    int rv;

    if (a == NULL || room == NULL || cb == NULL || len == 0 ||
        len > MAX_REASON || rc__json_check(why, len, a->limits.max_depth))
        return RC_EINVAL;
    k = call_new(a, room, NULL, cb, cb_user, &rv);
    if (rv == RC_EUNAVAIL && (r = rc__find_room(a, room)) != NULL)
        rc__room_end_closed(a, (rc__aroom *)r, why, len);
    if (k == NULL)
        return rv;
    /* Named first: a node that verifies before the room is closed (or
     * after a close that never ran) asks the room and finds it open. */
    {
        const char *v[3] = {room, why, PROVISIONAL_MS};
        size_t l[3] = {strlen(room), len, sizeof PROVISIONAL_MS - 1};

        rv = rc__nw_call(a, RC__SCRIPT_CREG, "{closed}", "", 0, v, l, 3);
    }
    if (rv == 0)
        rv = room_call(a, k, RC__SCRIPT_CLOSE, &why, &len, 1, on_closed);
    if (rv != 0)
        drop(a, k);
    return rv == RC_EMISUSE ? RC_EUNAVAIL : rv;
}

/* ---- a publish behind checks ------------------------------------------- */

/* Give back to the bucket what a send the room refused took from it. */
static void give_back(rc_adapter *a, call *k)
{
    char t[24];
    const char *v[2];
    size_t l[2];

    v[0] = k->key, l[0] = strlen(k->key);
    v[1] = t, l[1] = (size_t)(rc__dec_put(t, k->rate_t) - t);
    rc__port_script(a, RC__SCRIPT_RATE_BACK, 1, 2, v, l, NULL, NULL);
}

static void on_sent(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    call *k = arg;
    int rv = answer(r, err);

    /* Refused (or failed) by the script, which publishes last: nothing
     * went out. Lost with the link: it may have. */
    if (rv != 0 && rv != RC_EUNAVAIL && k->key != NULL && !a->closing)
        give_back(a, k);
    rc__enter(a); /* a sink may free the adapter */
    if (rv == 0 && !a->closing) {
        a->c.published++;
        rv = rc_broadcast_to_room(a, k->room, &k->msg, NULL, RC_LOCAL_ONLY);
    } else if (rv != 0) {
        a->c.publish_errors++;
    }
    finish(a, k, rv, 0);
    rc__exit(a);
}

/* The room's script: its checks, then the publish. */
static int send_room(rc_adapter *a, call *k)
{
    const char *v[2];
    size_t l[2];

    v[0] = k->uid ? k->uid : "", l[0] = k->uid ? strlen(k->uid) : 0;
    v[1] = k->env, l[1] = k->env_len;
    return room_call(a, k, RC__SCRIPT_SEND, v, l, 2, on_sent);
}

/* The bucket answered (its own slot, before the room's): {1, 0} taken,
 * {0, us to wait}. */
static void on_rated(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    call *k = arg;
    long long ok = 0, wait = 0;
    int rv = err == RC_EMISUSE ? RC_EUNAVAIL : err;

    if (rv == 0 &&
        (rc__reply_int(r, 0, &ok) != 0 || rc__reply_int(r, 1, &wait) != 0))
        rv = RC_EREDIS;
    if (rv == 0 && !ok) {
        finish(a, k, RC_ELIMITED, (unsigned long long)wait / 1000 + 1);
        return;
    }
    if (rv == 0 && !a->closing && (rv = send_room(a, k)) == 0)
        return;
    a->c.publish_errors++;
    finish(a, k, rv != 0 ? rv : RC_EUNAVAIL, 0);
}

static int send_rate(rc_adapter *a, call *k)
{
    char t[24], b[24];
    const char *v[3];
    size_t l[3];
    int rv;

    v[0] = k->key, l[0] = strlen(k->key);
    v[1] = t, l[1] = (size_t)(rc__dec_put(t, k->rate_t) - t);
    v[2] = b, l[2] = (size_t)(rc__dec_put(b, k->burst) - b);
    rv = rc__port_script(a, RC__SCRIPT_RATE, 1, 3, v, l, on_rated, k);
    return rv == RC_EMISUSE ? RC_EUNAVAIL : rv;
}

/* k->msg: a copy of msg in k->mbuf. */
static int keep_msg(rc_adapter *a, call *k, const rc_message *msg)
{
    size_t el = msg->event ? strlen(msg->event) + 1 : 0;
    size_t il = msg->id ? strlen(msg->id) + 1 : 0;
    char *p;

    if ((p = k->mbuf = rc__malloc(&a->mem, el + il + msg->data_len + 1)) ==
        NULL)
        return RC_ENOMEM;
    k->msg = *msg;
    if (msg->event != NULL)
        k->msg.event = memcpy(p, msg->event, el), p += el;
    if (msg->id != NULL)
        k->msg.id = memcpy(p, msg->id, il), p += il;
    k->msg.data = memcpy(p, msg->data, msg->data_len);
    return 0;
}

/* The envelope (k->env) and the bucket's key and rate (k->key: NULL for
 * none). */
static int send_args(rc_adapter *a, call *k, const rc_message *msg,
                     const rc_send_guard *g)
{
    size_t kp = strlen(a->node.kp), kl;
    rc_envelope e;
    int rv;

    memset(&e, 0, sizeof e);
    e.msg = *msg;
    e.node = a->node_id;
    if ((rv = rc_envelope_encode(&e, &a->limits, NULL, 0, &k->env_len)) !=
        RC_ENOBUFS)
        return rv != 0 ? rv : RC_EINVAL;
    if ((k->env = rc__malloc(&a->mem, k->env_len)) == NULL)
        return RC_ENOMEM;
    if ((rv = rc_envelope_encode(&e, &a->limits, k->env, k->env_len,
                                 &k->env_len)) != 0)
        return rv;
    if (g == NULL || g->rate_key == NULL)
        return 0;
    kl = strlen(g->rate_key);
    if ((k->key = rc__malloc(&a->mem, kp + kl + 4)) == NULL)
        return RC_ENOMEM;
    memcpy(k->key, a->node.kp, kp);
    memcpy(k->key + kp, "rl:", 3);
    memcpy(k->key + kp + 3, g->rate_key, kl + 1);
    k->rate_t = rc__rate_interval_us(g->rate);
    k->burst = g->rate->burst ? g->rate->burst : 1;
    return 0;
}

int rc_room_send(rc_adapter *a, const char *room, const rc_message *msg,
                 const rc_send_guard *guard, rc_admit_cb cb, void *cb_user)
{
    call *k = NULL;
    int rv = RC_EINVAL;

    if (room == NULL || msg == NULL ||
        (guard != NULL && guard->rate_key != NULL &&
         rc__rate_interval_us(guard->rate) == 0) ||
        (k = call_new(a, room, guard ? guard->member : NULL, cb, cb_user,
                      &rv)) == NULL ||
        (rv = keep_msg(a, k, msg)) != 0 ||
        (rv = send_args(a, k, msg, guard)) != 0)
        goto out;
    /* The bucket first: a stop in between costs one request of the
     * bucket, and a refusal by the room gives it back. */
    rv = k->key != NULL ? send_rate(a, k) : send_room(a, k);
out:
    if (rv != 0 && k != NULL)
        drop(a, k);
    return rv;
}
