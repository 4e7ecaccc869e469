/*
 * Everything roomcast says to hiredis. One dispatcher callback serves every
 * channel, with the adapter as privdata (never per-room memory), because
 * hiredis keeps one callback per channel, may hand a reply to the wrong
 * callback on 0.14, and calls each registered callback once more with a
 * NULL reply when the context is freed.
 *
 * Reference counting: hiredis holds the adapter as privdata once per
 * pending PUBLISH (released by its reply, or NULL when the context dies)
 * and once per channel entry on a sub context (created by SUBSCRIBE,
 * released by the "unsubscribe" reply or by NULL when the context dies).
 * The adapter state machine never SUBSCRIBEs a channel that already has an
 * entry, nor while its UNSUBSCRIBE is unconfirmed, so each entry is
 * counted exactly once. Pub/Sub replies:
 * https://redis.io/docs/latest/develop/interact/pubsub/
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "internal.h"

/* Subscribe at most this many channels per SUBSCRIBE command. */
#define BATCH 256

static int is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rc_adapter *a = privdata;
    redisReply *reply = r, *kind, *chan;

    if (reply == NULL) { /* the context is being freed */
        if (ac == a->sub)
            rc__on_sub_gone(a);
        a->refs--;
        rc__maybe_release(a);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        !is_str(reply->element[0]) || !is_str(reply->element[1]))
        return;
    kind = reply->element[0];
    chan = reply->element[1];
    if (strcmp(kind->str, "unsubscribe") == 0)
        a->refs--; /* hiredis dropped this channel's entry */
    if (ac == a->sub) {
        if (strcmp(kind->str, "message") == 0 && is_str(reply->element[2]))
            rc__on_message(a, chan->str, chan->len, reply->element[2]->str,
                           reply->element[2]->len);
        else if (strcmp(kind->str, "subscribe") == 0)
            rc__on_subscribed(a, chan->str, chan->len);
        else if (strcmp(kind->str, "unsubscribe") == 0)
            rc__on_unsubscribed(a, chan->str, chan->len);
    }
    rc__maybe_release(a);
}

static void on_pub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rc_adapter *a = privdata;
    redisReply *reply = r;

    (void)ac;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
        a->c.published++;
    else
        a->c.publish_errors++; /* an error reply, or lost with the link */
    a->refs--;
    rc__maybe_release(a);
}

/* The channel of a room, in the adapter's buffer. */
static int channel(rc_adapter *a, size_t at, const rc__room *room)
{
    if (rc__reserve(&a->mem, &a->buf, &a->buf_cap,
                    at + a->prefix_len + room->name_len) != 0)
        return RC_ENOMEM;
    memcpy(a->buf + at, a->prefix, a->prefix_len);
    memcpy(a->buf + at + a->prefix_len, room->name, room->name_len);
    return 0;
}

int rc__redis_subscribe(rc_adapter *a, rc__aroom *const *rooms, size_t n)
{
    const char *argv[BATCH + 1];
    size_t argvlen[BATCH + 1], i, j, k, at;

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    for (i = 0; i < n; i += k) {
        k = n - i < BATCH ? n - i : BATCH;
        for (j = 0, at = 0; j < k; j++) {
            if (channel(a, at, &rooms[i + j]->base) != 0)
                return RC_ENOMEM;
            argvlen[j + 1] = a->prefix_len + rooms[i + j]->base.name_len;
            at += argvlen[j + 1];
        }
        /* The buffer may have moved while growing: point into it now. */
        for (j = 0, at = 0; j < k; j++) {
            argv[j + 1] = a->buf + at;
            at += argvlen[j + 1];
        }
        if (redisAsyncCommandArgv(a->sub, on_sub_reply, a, (int)k + 1, argv,
                                  argvlen) != REDIS_OK)
            return RC_EMISUSE;
        a->refs += k;
        a->c.subscribes_sent += k;
        for (j = 0; j < k; j++)
            rooms[i + j]->state = RC__SUBSCRIBING;
    }
    return 0;
}

int rc__redis_unsubscribe(rc_adapter *a, rc__aroom *room)
{
    if (channel(a, 0, &room->base) != 0)
        return RC_ENOMEM;
    /* No callback: the reply comes to the channel's entry. */
    if (redisAsyncCommand(a->sub, NULL, NULL, "UNSUBSCRIBE %b", a->buf,
                          a->prefix_len + room->base.name_len) != REDIS_OK)
        return RC_EMISUSE;
    room->state = RC__UNSUBSCRIBING;
    a->c.unsubscribes_sent++;
    return 0;
}

int rc__redis_publish(rc_adapter *a, const char *cmd, size_t cmd_len)
{
    if (redisAsyncFormattedCommand(a->pub, on_pub_reply, a, cmd, cmd_len) !=
        REDIS_OK)
        return RC_EMISUSE;
    a->refs++;
    return 0;
}
