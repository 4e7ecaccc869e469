/*
 * What other nodes publish: drop our own echoes, decode strictly, count
 * what is rejected by reason, and deliver the rest to the room's local
 * members.
 */
#include "internal.h"

int rc__echo_tail_init(rc_adapter *a)
{
    static const char before[] = "{\"v\":1,\"m\":{\"data\":0}";
    rc_envelope env;
    size_t len = 0;
    char *buf;

    memset(&env, 0, sizeof env);
    env.msg.data = "0";
    env.msg.data_len = 1;
    env.msg.retry = -1;
    env.node = a->node_id;
    if (rc_envelope_encode(&env, NULL, NULL, 0, &len) != RC_ENOBUFS ||
        (buf = rc__malloc(&a->mem, len)) == NULL)
        return RC_ENOMEM;
    rc_envelope_encode(&env, NULL, buf, len, &len);
    a->echo_tail_len = len - (sizeof before - 1);
    memmove(buf, buf + sizeof before - 1, a->echo_tail_len);
    a->echo_tail = buf;
    return 0;
}

static void reject(rc_adapter *a, int err)
{
    a->c.rejected++;
    if (-err > 0 && -err < RC_REJECT_SLOTS)
        a->c.rejected_by[-err]++;
}

/* Decode payload into env (scratch holds its strings). 0, or 1 when it is
 * to be dropped (counted). */
static int decode(rc_adapter *a, const char *payload, size_t len,
                  rc_envelope *env, int history)
{
    int rv;

    /* Refuse oversize input before sizing scratch for it. */
    if (len > RC_ENVELOPE_SLACK &&
        len - RC_ENVELOPE_SLACK > a->limits.max_data) {
        reject(a, RC_ETOOBIG);
        return 1;
    }
    /* Our own envelopes come back to us: one ending in ,"n":<our id>} has
     * our id as its last "n" (were it not valid, it would be dropped all
     * the same), so it is dropped without being decoded; but not in a
     * history room, where Redis gives our members our own messages. */
    if (!history && len >= a->echo_tail_len &&
        memcmp(payload + len - a->echo_tail_len, a->echo_tail,
               a->echo_tail_len) == 0) {
        a->c.echoes++;
        return 1;
    }
    if (rc__reserve(&a->mem, &a->scratch, &a->scratch_cap, len + 1) != 0) {
        reject(a, RC_ENOMEM);
        return 1;
    }
    rv = rc_envelope_decode(payload, len, &a->limits, env, a->scratch,
                            a->scratch_cap);
    if (rv != 0) {
        reject(a, rv);
        return 1;
    }
    return 0;
}

void rc__on_message(rc_adapter *a, const char *chan, size_t chan_len,
                    const char *payload, size_t len)
{
    rc__delivery d;
    rc_envelope env;
    rc__aroom *room;
    const char *name;

    a->c.received++;
    rc__sub_retry(a);
    if (a->closing)
        return;
    room = rc__room_of_channel(a, chan, chan_len);
    if (decode(a, payload, len, &env, rc__hist_room(a, room)) != 0)
        return;
    /* Our own envelopes are echoes, but in a history room: there Redis
     * gives our messages to our members too, in id order. */
    if (strcmp(env.node, a->node_id) == 0 && !rc__hist_own(a, room, &env)) {
        a->c.echoes++;
        return;
    }
    if (room == NULL || room->base.members == 0 ||
        rc__admit_control(a, room, &env))
        return;
    memset(&d, 0, sizeof d);
    d.a = a;
    d.msg = &env.msg;
    if (env.except != NULL)
        d.except = rc_conn_find(a, env.except);
    d.meta = env.meta;
    d.meta_len = env.meta_len;
    d.pseq = rc__presence_event(a, room, &env);
    /* A message with an id (an empty id is no id) reaches a connection in
     * several of its rooms once: keyed by the envelope's bytes. */
    if (env.msg.id != NULL && env.msg.id[0] != '\0') {
        d.key.env = rc__hash(payload, len, a->seed);
        d.key.room = rc__hash(room->base.name, room->base.name_len, a->seed);
    }
    if ((d.frame = rc__frame_new(&a->mem, &env.msg)) == NULL) {
        reject(a, RC_ENOMEM);
        return;
    }
    name = room->base.name;
    rc__enter(a);
    if (!rc__hist_live(a, room, &env, &d))
        rc__deliver(&d, &name, 1);
    rc_frame_unref(d.frame);
    rc__exit(a);
}
