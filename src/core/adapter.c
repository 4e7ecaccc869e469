/*
 * The adapter's life: options, creation, the deferred free, callbacks and
 * counters. The other ideas live in their own files: connections (conn.c),
 * rooms and queries (room.c), frames (frame.c), subscriptions
 * (subscribe.c), delivery to sinks (deliver.c), broadcasts (broadcast.c),
 * what other nodes publish (receive.c), the node's lease (node.c) and the
 * port to Redis (redis.c, script.c).
 */
#include "internal.h"

#define DEFAULT_DEDUP 8

static void release(rc_adapter *a)
{
    rc__alloc mem = a->mem;

    rc__presence_free(a);
    rc__rate_free(a);
    rc__port_close(a);
    rc__pend_free_all(a); /* calls whose answers will never come */
    rc__node_free(a);
    rc__registry_free(&a->reg);
    rc__free(&mem, a->prefix);
    rc__free(&mem, a->node_id);
    rc__free(&mem, a->scratch);
    rc__free(&mem, a->env);
    rc__free(&mem, a->echo_tail);
    rc__free(&mem, a);
}

void rc__enter(rc_adapter *a)
{
    a->depth++;
}

/* An rc_adapter_free made from inside a callback finishes here, once the
 * outermost call that may have run host code returns. */
void rc__exit(rc_adapter *a)
{
    if (--a->depth == 0 && a->closing && a->reg.walking == 0)
        release(a);
}

static int check_options(const rc_adapter_options *opts)
{
    if (opts->dedup_window > RC_MAX_DEDUP) /* each delivery scans it */
        return RC_EINVAL;
    if (opts->node_id != NULL && opts->node_id[0] == '\0')
        return RC_EINVAL; /* "": the node of presence events */
    if (opts->node_id != NULL)
        return rc__field_check(opts->node_id, NULL, NULL);
    return 0;
}

/* The strings an adapter copies: prefix and node id (given or random). */
static int copy_names(rc_adapter *a, const rc_adapter_options *opts)
{
    const char *prefix = opts->prefix ? opts->prefix : RC_DEFAULT_PREFIX;
    const char *node = opts->node_id;
    char uuid[37];
    int rv;

    if (node == NULL) {
        if ((rv = rc__uuid4(uuid)) != 0)
            return rv;
        node = uuid;
    }
    a->prefix_len = strlen(prefix);
    a->prefix = rc__strndup(&a->mem, prefix, a->prefix_len);
    a->node_id = rc__strndup(&a->mem, node, strlen(node));
    return a->prefix && a->node_id ? rc__echo_tail_init(a) : RC_ENOMEM;
}

int rc_adapter_open(const rc_adapter_options *opts,
                    struct redisAsyncContext *pub,
                    struct redisAsyncContext *sub, rc_adapter **out)
{
    static const rc_adapter_options none;
    rc_adapter *a;
    rc__alloc mem;
    int rv;

    if (out == NULL)
        return RC_EINVAL;
    opts = opts ? opts : &none;
    if ((rv = check_options(opts)) != 0)
        return rv;
    memset(&mem, 0, sizeof mem);
    if (opts->alloc != NULL)
        mem = *opts->alloc;
    if ((a = rc__malloc(&mem, sizeof *a)) == NULL)
        return RC_ENOMEM;
    memset(a, 0, sizeof *a);
    a->mem = mem;
    a->limits = rc__limits(&opts->limits);
    a->dedup_window = opts->dedup_window ? opts->dedup_window : DEFAULT_DEDUP;
    a->local_only = pub == NULL && sub == NULL;
    /* The hash seed only needs to be unguessable by clients; an address
     * will do when the system has no random bytes. */
    if (rc__random(&a->seed, sizeof a->seed) != 0)
        a->seed = (uint64_t)(uintptr_t)a;
    rc__registry_init(&a->reg, &a->mem, a->seed, sizeof(rc__aroom));
    rc__presence_init(a);
    rc__map_init(&a->rates, &a->mem, a->seed ^ UINT64_C(0x9e3779b97f4a7c15));
    if ((rv = copy_names(a, opts)) == 0)
        rv = rc__node_init(a);
    if (rv == 0 && pub != NULL)
        rv = rc_adapter_set_pub(a, pub);
    if (rv == 0 && sub != NULL)
        rv = rc_adapter_set_sub(a, sub);
    if (rv != 0) {
        release(a);
        return rv;
    }
    *out = a;
    return 0;
}

rc_adapter *rc_adapter_new(struct redisAsyncContext *pub,
                           struct redisAsyncContext *sub, const char *prefix,
                           const char *node_id)
{
    rc_adapter_options opts;
    rc_adapter *a = NULL;

    memset(&opts, 0, sizeof opts);
    opts.prefix = prefix;
    opts.node_id = node_id;
    return rc_adapter_open(&opts, pub, sub, &a) == 0 ? a : NULL;
}

/* Remove every connection. Removal shifts later entries of the map back
 * into the freed slot, so a slot is looked at again after a removal. */
static void remove_all(rc_adapter *a)
{
    rc__map *m = &a->reg.conns;
    size_t i = 0;

    while (i < m->cap) {
        if (m->slots[i].hash == 0)
            i++;
        else
            rc_conn_remove(m->slots[i].item);
    }
}

void rc_adapter_free(rc_adapter *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = 1; /* from here on, no host callback runs */
    rc__enter(a);
    rc__node_let_go(a);
    remove_all(a);
    rc__exit(a);
}

const char *rc_adapter_node_id(const rc_adapter *a)
{
    return a->node_id;
}

void rc_adapter_set_filter(rc_adapter *a, rc_filter_cb cb, void *user)
{
    if (a == NULL)
        return;
    a->filter = cb;
    a->filter_user = cb ? user : NULL;
}

void rc_adapter_set_room_cb(rc_adapter *a, rc_room_cb cb, void *user)
{
    if (a == NULL)
        return;
    a->room_cb = cb;
    a->room_user = cb ? user : NULL;
}

void rc_adapter_counters(const rc_adapter *a, rc_counters *out, size_t size)
{
    rc_counters c;

    if (out == NULL)
        return;
    memset(&c, 0, sizeof c);
    if (a != NULL) {
        c = a->c;
        c.connections = a->reg.conns.count;
        c.rooms = a->live_rooms;
        c.memberships = a->reg.members.count;
    }
    memcpy(out, &c, size < sizeof c ? size : sizeof c);
}
