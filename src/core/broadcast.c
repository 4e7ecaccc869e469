/*
 * Broadcasts: check and encode the message once, deliver it to the local
 * members of its rooms with one shared frame, then publish one envelope
 * per room through the port.
 */
#include "internal.h"

/* Encode env once for every room (it names no room). A broadcast made
 * from inside a sink during another broadcast gets its own buffer, since
 * the outer one still has to publish from the shared one. */
static int encode(rc_adapter *a, const rc_envelope *env, char **out,
                  size_t *len)
{
    char **buf = &a->env, *own = NULL;
    size_t own_cap = 0, *cap = &a->env_cap;
    int rv;

    if (a->env_busy) {
        buf = &own;
        cap = &own_cap;
    }
    rv = rc_envelope_encode(env, &a->limits, *buf, *cap, len);
    if (rv == RC_ENOBUFS) {
        rv = rc__reserve(&a->mem, buf, cap, *len);
        if (rv == 0)
            rv = rc_envelope_encode(env, &a->limits, *buf, *cap, len);
    }
    if (rv != 0) {
        rc__free(&a->mem, own);
        return rv;
    }
    if (own == NULL)
        a->env_busy = 1;
    *out = *buf;
    return 0;
}

static void encoded_done(rc_adapter *a, char *wire)
{
    if (wire != NULL && wire == a->env)
        a->env_busy = 0;
    else
        rc__free(&a->mem, wire);
}

/* Check everything the message carries before anything is delivered or
 * published: encoding checks it all, and without a publish there is no
 * need to write the envelope out. */
static int check(rc_adapter *a, const rc_message *msg,
                 const rc_broadcast_options *opts, int publishing, char **wire,
                 size_t *len)
{
    rc_envelope env;
    int rv;

    memset(&env, 0, sizeof env);
    env.msg = *msg;
    env.node = a->node_id;
    env.except = opts->except_conn_id;
    env.meta = opts->meta;
    env.meta_len = opts->meta_len;
    *wire = NULL;
    *len = 0;
    if (publishing)
        return encode(a, &env, wire, len);
    rv = rc_envelope_encode(&env, &a->limits, NULL, 0, len);
    return rv == RC_ENOBUFS ? 0 : rv;
}

static void publish_all(rc_adapter *a, const char *const *rooms, size_t n,
                        const char *wire, size_t len)
{
    size_t i;

    if (a->node.state == RC_NODE_REFUSED) { /* another node has our id */
        a->c.publish_errors += n;
        return;
    }
    for (i = 0; i < n && !a->closing; i++)
        if (rc__port_publish(a, rooms[i], wire, len) != 0)
            a->c.publish_errors++;
}

static int args_ok(const rc_adapter *a, const char *const *rooms, size_t nrooms,
                   const rc_message *msg)
{
    size_t i;

    if (a == NULL || msg == NULL || (rooms == NULL && nrooms > 0))
        return 0;
    for (i = 0; i < nrooms; i++)
        if (rooms[i] == NULL)
            return 0;
    return 1;
}

int rc_broadcast(rc_adapter *a, const char *const *rooms, size_t nrooms,
                 const rc_message *msg, const rc_broadcast_options *opts)
{
    static const rc_broadcast_options none;
    rc__delivery d;
    char *wire;
    size_t len;
    int rv, publishing;

    if (!args_ok(a, rooms, nrooms, msg))
        return RC_EINVAL;
    if (a->closing)
        return RC_EMISUSE;
    opts = opts ? opts : &none;
    publishing = !(opts->flags & RC_LOCAL_ONLY) && !a->local_only;
    if (publishing && a->hist.on) { /* history rooms: Redis delivers */
        rv = rc__hist_broadcast(a, rooms, nrooms, msg, opts);
        if (rv == RC__HISTORY_LOCAL)
            publishing = 0;
        else if (rv != RC__NOT_HISTORY)
            return rv;
    }
    if ((rv = check(a, msg, opts, publishing, &wire, &len)) != 0)
        return rv;
    memset(&d, 0, sizeof d);
    d.a = a;
    d.msg = msg;
    if (opts->except_conn_id != NULL)
        d.except = rc_conn_find(a, opts->except_conn_id);
    if (opts->meta != NULL) /* as remote nodes will see it */
        d.meta_len = rc__json_trim(opts->meta, opts->meta_len, &d.meta);
    d.frame = rc__frame_new(&a->mem, msg);
    rv = d.frame != NULL ? 0 : RC_ENOMEM;
    rc__enter(a);
    if (rv == 0)
        rc__deliver(&d, rooms, nrooms);
    rc_frame_unref(d.frame);
    if (rv == 0 && publishing)
        publish_all(a, rooms, nrooms, wire, len);
    encoded_done(a, wire);
    rc__exit(a);
    return rv != 0 ? rv : d.count;
}

int rc_broadcast_to_room(rc_adapter *a, const char *room, const rc_message *msg,
                         const char *except_conn_id, unsigned flags)
{
    rc_broadcast_options opts;

    if (room == NULL)
        return RC_EINVAL;
    memset(&opts, 0, sizeof opts);
    opts.except_conn_id = except_conn_id;
    opts.flags = flags;
    return rc_broadcast(a, &room, 1, msg, &opts);
}

void rc__on_published(rc_adapter *a, int ok)
{
    if (ok > 0) {
        a->c.published++;
        return;
    }
    a->c.publish_errors++;
    if (ok < 0) /* written, perhaps delivered: the reply was lost */
        a->c.publish_unconfirmed++;
}
