/*
 * The adapter: local connections and rooms (registry.c), broadcast to
 * local members and to Redis (redis.c), and delivery of what other nodes
 * publish.
 *
 * Each room's subscription is reconciled, never fired and forgotten: the
 * wanted state is "subscribed while the room has local members", and a
 * room only moves to it when no command for it is in flight. So a leave
 * and a rejoin before the UNSUBSCRIBE reply end subscribed, and hiredis'
 * per-channel entry is never replaced while a reply may still delete it.
 */
#include "internal.h"

#define DEFAULT_DEDUP 8

int rc__reserve(const rc__alloc *m, char **buf, size_t *cap, size_t n)
{
    size_t want = *cap ? *cap : 256;
    char *p;

    if (n <= *cap)
        return 0;
    while (want < n)
        want = want > SIZE_MAX / 2 ? n : want * 2;
    p = rc__realloc(m, *buf, want);
    if (p == NULL)
        return RC_ENOMEM;
    *buf = p;
    *cap = want;
    return 0;
}

/* ---- frames ---------------------------------------------------------- */

static rc_frame *frame_new(const rc__alloc *mem, const rc_message *msg)
{
    size_t size = 0;
    rc_frame *f;

    if (rc_sse_format(msg, NULL, 0, &size) != RC_ENOBUFS)
        return NULL;
    f = rc__malloc(mem, sizeof *f + size);
    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->mem = *mem;
    rc_sse_format(msg, f->data, size, &f->size);
    return f;
}

const char *rc_frame_data(const rc_frame *frame)
{
    return frame->data;
}

size_t rc_frame_size(const rc_frame *frame)
{
    return frame->size;
}

rc_frame *rc_frame_ref(rc_frame *frame)
{
    frame->refs++;
    return frame;
}

void rc_frame_unref(rc_frame *frame)
{
    rc__alloc mem;

    if (frame == NULL || --frame->refs > 0)
        return;
    mem = frame->mem;
    rc__free(&mem, frame);
}

/* ---- life ------------------------------------------------------------ */

static void release(rc_adapter *a)
{
    rc__alloc mem = a->mem;

    rc__registry_free(&a->reg);
    rc__free(&mem, a->prefix);
    rc__free(&mem, a->node_id);
    rc__free(&mem, a->buf);
    rc__free(&mem, a->scratch);
    rc__free(&mem, a->env);
    rc__free(&mem, a->echo_tail);
    rc__free(&mem, a);
}

void rc__maybe_release(rc_adapter *a)
{
    if (a->closing && a->depth == 0 && a->refs == 0 && a->reg.walking == 0)
        release(a);
}

/* The end of our own envelopes, as the encoder writes it. */
static int echo_tail(rc_adapter *a)
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

int rc_adapter_open(const rc_adapter_options *opts,
                    struct redisAsyncContext *pub,
                    struct redisAsyncContext *sub, rc_adapter **out)
{
    static const rc_adapter_options none;
    const char *prefix;
    char uuid[37];
    rc_adapter *a;
    rc__alloc mem;
    int rv;

    if (out == NULL)
        return RC_EINVAL;
    if (opts == NULL)
        opts = &none;
    prefix = opts->prefix ? opts->prefix : RC_DEFAULT_PREFIX;
    if (opts->node_id != NULL &&
        (rv = rc__field_check(opts->node_id, NULL, NULL)) != 0)
        return rv;
    memset(&mem, 0, sizeof mem);
    if (opts->alloc != NULL)
        mem = *opts->alloc;
    a = rc__malloc(&mem, sizeof *a);
    if (a == NULL)
        return RC_ENOMEM;
    memset(a, 0, sizeof *a);
    a->mem = mem;
    a->limits = rc__limits(&opts->limits);
    a->dedup_window = opts->dedup_window ? opts->dedup_window : DEFAULT_DEDUP;
    a->local_only = pub == NULL && sub == NULL;
    a->pub = pub;
    a->prefix_len = strlen(prefix);
    a->prefix = rc__strndup(&a->mem, prefix, a->prefix_len);
    if (opts->node_id == NULL && rc__uuid4(uuid) == 0)
        a->node_id = rc__strndup(&a->mem, uuid, 36);
    else if (opts->node_id != NULL)
        a->node_id = rc__strndup(&a->mem, opts->node_id, strlen(opts->node_id));
    if (rc__random(&a->seed, sizeof a->seed) != 0)
        a->seed = (uint64_t)(uintptr_t)a;
    rc__registry_init(&a->reg, &a->mem, a->seed, sizeof(rc__aroom));
    if (a->prefix == NULL || a->node_id == NULL || echo_tail(a) != 0) {
        release(a);
        return RC_ENOMEM;
    }
    *out = a;
    if (sub != NULL)
        rc_adapter_set_sub(a, sub);
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

/* Remove every item of map for which fn says so. Removal shifts later
 * entries back into the freed slot, so a slot is looked at again after a
 * removal; emptying the map frees its table (cap becomes 0). */
static void sweep_map(rc__map *m, int (*fn)(void *item, void *arg), void *arg)
{
    size_t i = 0;

    while (i < m->cap) {
        if (m->slots[i].hash == 0 || fn(m->slots[i].item, arg) == 0)
            i++;
    }
}

static int remove_conn(void *item, void *arg)
{
    (void)arg;
    rc_conn_remove(item);
    return 1;
}

void rc_adapter_free(rc_adapter *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = 1; /* from here on, no host callback runs */
    a->depth++;
    sweep_map(&a->reg.conns, remove_conn, NULL);
    a->depth--;
    rc__maybe_release(a);
}

const char *rc_adapter_node_id(const rc_adapter *a)
{
    return a->node_id;
}

void rc_adapter_set_filter(rc_adapter *a, rc_filter_cb cb, void *user)
{
    a->filter = cb;
    a->filter_user = user;
}

void rc_adapter_set_room_cb(rc_adapter *a, rc_room_cb cb, void *user)
{
    a->room_cb = cb;
    a->room_user = user;
}

/* ---- subscriptions --------------------------------------------------- */

static void room_event(rc_adapter *a, rc__aroom *room, int event)
{
    if (a->room_cb != NULL && !a->closing && room->base.members > 0)
        a->room_cb(a, room->base.name, event, a->room_user);
}

/* Move a room towards "subscribed while it has members". */
static void reconcile(rc_adapter *a, rc__aroom *room)
{
    int want = room->base.members > 0;

    switch (room->state) {
    case RC__UNSUBSCRIBED:
        if (want && a->sub != NULL)
            rc__redis_subscribe(a, &room, 1);
        else if (!want)
            rc__room_drop(&a->reg, &room->base);
        break;
    case RC__SUBSCRIBED:
        if (!want && a->sub != NULL)
            rc__redis_unsubscribe(a, room);
        else if (!want) {
            room->state = RC__UNSUBSCRIBED;
            rc__room_drop(&a->reg, &room->base);
        }
        break;
    case RC__SUBSCRIBING:
    case RC__UNSUBSCRIBING:
        break; /* the reply decides */
    }
}

static rc__aroom *room_of_channel(rc_adapter *a, const char *chan, size_t len)
{
    if (len < a->prefix_len || memcmp(chan, a->prefix, a->prefix_len) != 0)
        return NULL;
    return (rc__aroom *)rc__room_find(&a->reg, chan + a->prefix_len,
                                      len - a->prefix_len);
}

void rc__on_subscribed(rc_adapter *a, const char *chan, size_t len)
{
    rc__aroom *room = room_of_channel(a, chan, len);

    if (room == NULL || room->state != RC__SUBSCRIBING)
        return;
    room->state = RC__SUBSCRIBED;
    a->c.subscribes_confirmed++;
    /* The host may leave, remove or even drop the link in its callback:
     * hold frees, and look at the room again afterwards. */
    rc__registry_hold(&a->reg);
    a->depth++;
    room_event(a, room, RC_ROOM_READY);
    a->depth--;
    if (!room->base.removed)
        reconcile(a, room);
    rc__registry_release(&a->reg);
}

void rc__on_unsubscribed(rc_adapter *a, const char *chan, size_t len)
{
    rc__aroom *room = room_of_channel(a, chan, len);

    if (room == NULL || room->state != RC__UNSUBSCRIBING)
        return;
    room->state = RC__UNSUBSCRIBED;
    a->c.unsubscribes_confirmed++;
    reconcile(a, room);
}

typedef struct collect {
    rc__aroom **rooms;
    size_t n;
} collect;

/* Note the rooms that lose their subscription; all start over. */
static int lose(void *item, void *arg)
{
    rc__aroom *room = item;
    collect *c = arg;

    if (room->state == RC__SUBSCRIBED && room->base.members > 0 &&
        c->rooms != NULL)
        c->rooms[c->n++] = room;
    room->state = RC__UNSUBSCRIBED;
    return 0;
}

static int drop_if_empty(void *item, void *arg)
{
    rc__aroom *room = item;

    if (room->base.members > 0)
        return 0;
    rc__room_drop(&((rc_adapter *)arg)->reg, &room->base);
    return 1;
}

/* Every room is back to unsubscribed; rooms without members go. The host
 * hears RC_ROOM_LOST for rooms that were subscribed, after the map walk
 * (a callback may change the map) and with frees held off. */
static void forget_subscriptions(rc_adapter *a)
{
    collect c;
    size_t i;

    c.n = 0;
    c.rooms =
        a->room_cb && !a->closing
            ? rc__malloc(&a->mem, (a->reg.rooms.count + 1) * sizeof *c.rooms)
            : NULL;
    rc__map_each(&a->reg.rooms, lose, &c);
    sweep_map(&a->reg.rooms, drop_if_empty, a);
    rc__registry_hold(&a->reg);
    a->depth++;
    for (i = 0; i < c.n; i++)
        if (!c.rooms[i]->base.removed)
            room_event(a, c.rooms[i], RC_ROOM_LOST);
    a->depth--;
    rc__registry_release(&a->reg);
    rc__free(&a->mem, c.rooms);
}

void rc__on_sub_gone(rc_adapter *a)
{
    a->sub = NULL;
    forget_subscriptions(a);
}

int rc_adapter_set_pub(rc_adapter *a, struct redisAsyncContext *pub)
{
    if (a == NULL)
        return RC_EINVAL;
    a->pub = pub;
    a->local_only = 0; /* linked from now on, even while the link is down */
    return 0;
}

static int collect_wanted(void *item, void *arg)
{
    rc__aroom *room = item;
    collect *c = arg;

    if (room->base.members > 0 && room->state == RC__UNSUBSCRIBED)
        c->rooms[c->n++] = room;
    return 0;
}

int rc_adapter_set_sub(rc_adapter *a, struct redisAsyncContext *sub)
{
    collect c;
    int rv;

    if (a == NULL)
        return RC_EINVAL;
    a->local_only = 0; /* linked from now on, even while the link is down */
    if (sub == a->sub)
        return 0;
    /* Entries on an old context stay counted in refs until it answers
     * or is freed; the rooms start over on the new one. */
    a->sub = NULL;
    forget_subscriptions(a);
    a->sub = sub;
    if (sub == NULL || a->closing)
        return 0;
    c.n = 0;
    c.rooms = rc__malloc(&a->mem, (a->reg.rooms.count + 1) * sizeof *c.rooms);
    if (c.rooms == NULL)
        return RC_ENOMEM;
    rc__map_each(&a->reg.rooms, collect_wanted, &c);
    rv = rc__redis_subscribe(a, c.rooms, c.n);
    rc__free(&a->mem, c.rooms);
    return rv;
}

/* ---- connections and rooms ------------------------------------------- */

int rc_conn_add(rc_adapter *a, const char *conn_id, rc_sink_cb sink, void *user,
                rc_conn **out)
{
    char uuid[37];
    rc__conn *base;
    rc_conn *c;
    int rv;

    if (a == NULL || sink == NULL || out == NULL)
        return RC_EINVAL;
    if (a->closing)
        return RC_EMISUSE;
    if (conn_id == NULL) {
        if (rc__uuid4(uuid) != 0)
            return RC_ENOMEM;
        conn_id = uuid;
    } else if ((rv = rc__field_check(conn_id, NULL, NULL)) != 0) {
        return rv;
    }
    rv = rc__conn_add(&a->reg, conn_id, strlen(conn_id),
                      sizeof *c + a->dedup_window * sizeof c->recent[0], &base);
    if (rv != 0)
        return rv;
    c = (rc_conn *)base;
    c->a = a;
    c->sink = sink;
    c->user = user;
    *out = c;
    return 0;
}

static void after_leave(rc__room *room, void *arg)
{
    rc_adapter *a = arg;

    if (room->members == 0) {
        a->live_rooms--;
        reconcile(a, (rc__aroom *)room);
    }
}

void rc_conn_remove(rc_conn *conn)
{
    if (conn == NULL || conn->base.removed)
        return;
    rc__conn_remove(&conn->a->reg, &conn->base, after_leave, conn->a);
}

rc_conn *rc_conn_find(rc_adapter *a, const char *conn_id)
{
    if (a == NULL || conn_id == NULL)
        return NULL;
    return (rc_conn *)rc__conn_find(&a->reg, conn_id, strlen(conn_id));
}

const char *rc_conn_id(const rc_conn *conn)
{
    return conn->base.id;
}

void *rc_conn_user(const rc_conn *conn)
{
    return conn->user;
}

rc_adapter *rc_conn_adapter(const rc_conn *conn)
{
    return conn->a;
}

int rc_room_join(rc_conn *conn, const char *room)
{
    rc_adapter *a;
    rc__room *r = NULL;
    int rv;

    if (conn == NULL || room == NULL || conn->base.removed)
        return RC_EINVAL;
    a = conn->a;
    rv = rc__join(&a->reg, &conn->base, room, strlen(room), &r);
    if (rv == 1 && r->members == 1) {
        a->live_rooms++;
        reconcile(a, (rc__aroom *)r);
    } else if (rv < 0 && r != NULL && r->members == 0) {
        reconcile(a, (rc__aroom *)r); /* a room created for nothing */
    }
    return rv;
}

static rc__room *find_room(const rc_adapter *a, const char *room)
{
    return room ? rc__room_find(&a->reg, room, strlen(room)) : NULL;
}

int rc_room_leave(rc_conn *conn, const char *room)
{
    rc__room *r;

    if (conn == NULL || room == NULL)
        return RC_EINVAL;
    r = find_room(conn->a, room);
    if (r == NULL || rc__leave(&conn->a->reg, &conn->base, r) == 0)
        return 0;
    after_leave(r, conn->a);
    return 1;
}

/* Join or leave each room of a list: the arguments are checked first, so
 * that a bad list changes nothing. */
static int each_room(rc_conn *conn, const char *const *rooms, size_t n,
                     int (*op)(rc_conn *conn, const char *room))
{
    size_t i;
    int rv, done = 0;

    if (conn == NULL || (rooms == NULL && n > 0))
        return RC_EINVAL;
    for (i = 0; i < n; i++)
        if (rooms[i] == NULL)
            return RC_EINVAL;
    for (i = 0; i < n; i++) {
        rv = op(conn, rooms[i]);
        if (rv < 0)
            return rv;
        done += rv;
    }
    return done;
}

int rc_room_join_list(rc_conn *conn, const char *const *rooms, size_t n)
{
    return each_room(conn, rooms, n, rc_room_join);
}

int rc_room_leave_list(rc_conn *conn, const char *const *rooms, size_t n)
{
    return each_room(conn, rooms, n, rc_room_leave);
}

typedef struct leave_ctx {
    rc_adapter *a;
    void (*cb)(const char *room, void *user);
    void *user;
} leave_ctx;

static void left_one(rc__room *room, void *arg)
{
    leave_ctx *l = arg;

    /* Report before the room may be dropped, while its name lives. */
    if (l->cb != NULL)
        l->cb(room->name, l->user);
    after_leave(room, l->a);
}

int rc_room_leave_all(rc_conn *conn, void (*cb)(const char *room, void *user),
                      void *user)
{
    leave_ctx l;

    if (conn == NULL)
        return RC_EINVAL;
    l.a = conn->a;
    l.cb = cb;
    l.user = user;
    return (int)rc__leave_all(&conn->a->reg, &conn->base, left_one, &l);
}

int rc_room_has(const rc_conn *conn, const char *room)
{
    const rc__room *r;

    if (conn == NULL || room == NULL)
        return 0;
    r = find_room(conn->a, room);
    return r != NULL && rc__is_member(&conn->a->reg, &conn->base, r);
}

size_t rc_room_size(const rc_adapter *a, const char *room)
{
    const rc__room *r = a ? find_room(a, room) : NULL;

    return r ? r->members : 0;
}

int rc_room_is_ready(const rc_adapter *a, const char *room)
{
    const rc__room *r = a ? find_room(a, room) : NULL;

    return r != NULL && r->members > 0 &&
           (a->local_only || ((const rc__aroom *)r)->state == RC__SUBSCRIBED);
}

size_t rc_room_members(const rc_adapter *a, const char *room, rc_conn **out,
                       size_t max)
{
    const rc__room *r = a ? find_room(a, room) : NULL;
    const rc__member *m;
    size_t n = 0;

    for (m = r ? r->first : NULL; m != NULL; m = m->room_next) {
        if (m->conn == NULL) /* removed during a walk */
            continue;
        if (n < max)
            out[n] = (rc_conn *)m->conn;
        n++;
    }
    return n;
}

size_t rc_conn_rooms(const rc_conn *conn, const char **out, size_t max)
{
    const rc__member *m;
    size_t n = 0;

    for (m = conn ? conn->base.first : NULL; m != NULL; m = m->conn_next) {
        if (n < max)
            out[n] = m->room->name;
        n++;
    }
    return n;
}

typedef struct names {
    const char **out;
    size_t max, n;
} names;

static int name_of(void *item, void *arg)
{
    rc__room *room = item;
    names *l = arg;

    if (room->members > 0) {
        if (l->n < l->max)
            l->out[l->n] = room->name;
        l->n++;
    }
    return 0;
}

size_t rc_adapter_rooms(const rc_adapter *a, const char **out, size_t max)
{
    names l;

    l.out = out;
    l.max = max;
    l.n = 0;
    if (a != NULL)
        rc__map_each(&a->reg.rooms, name_of, &l);
    return l.n;
}

/* ---- delivery -------------------------------------------------------- */

typedef struct delivery {
    rc_adapter *a;
    rc_frame *frame;
    const rc_message *msg;
    const rc_conn *except;
    const char *meta;
    size_t meta_len;
    uint64_t id_hash; /* remote path with an id: de-dup by it */
    const char *const *rooms;
    size_t room;            /* index of the room being walked */
    unsigned long long seq; /* multi-room by stamps: this broadcast's */
    int count;
} delivery;

/* Has conn seen this message id lately? Remembers it if not. */
static int seen(rc_conn *c, unsigned window, uint64_t h)
{
    unsigned i;

    for (i = 0; i < window; i++)
        if (c->recent[i] == h)
            return 1;
    c->recent[c->recent_next] = h;
    c->recent_next = (c->recent_next + 1) % window;
    return 0;
}

/* A multi-room broadcast reaches a connection once. The outermost one
 * stamps connections; one made from inside a sink during it must not
 * overwrite those stamps, so it looks for the connection in the rooms
 * it has already walked instead. */
static int already_had(delivery *d, rc_conn *c)
{
    const rc__room *r;
    size_t i;

    if (d->seq != 0) {
        if (c->seq == d->seq)
            return 1;
        c->seq = d->seq;
        return 0;
    }
    for (i = 0; i < d->room; i++) {
        r = find_room(d->a, d->rooms[i]);
        if (r != NULL && rc__is_member(&d->a->reg, &c->base, r))
            return 1;
    }
    return 0;
}

static int deliver(rc__member *m, void *arg)
{
    delivery *d = arg;
    rc_adapter *a = d->a;
    rc_conn *c = (rc_conn *)m->conn;

    if (a->closing)
        return 1;
    if (c == d->except || ((d->seq != 0 || d->room > 0) && already_had(d, c)))
        return 0;
    if (d->id_hash != 0 && seen(c, a->dedup_window, d->id_hash)) {
        a->c.duplicates++;
        return 0;
    }
    if (a->filter != NULL &&
        a->filter(c, d->msg, d->meta, d->meta_len, a->filter_user) != 0) {
        a->c.filtered++;
        return 0;
    }
    if (c->sink(c, d->frame, d->msg, c->user) == 0) {
        a->c.delivered++;
        d->count++;
    } else {
        a->c.sink_errors++;
    }
    return 0;
}

/* Deliver d to the local members of its rooms. */
static void deliver_rooms(delivery *d, const char *const *rooms, size_t n)
{
    rc_adapter *a = d->a;
    rc__room *r;
    int stamping = n > 1 && !a->stamping;

    d->rooms = rooms;
    if (stamping) {
        d->seq = ++a->seq;
        a->stamping = 1;
    }
    /* Frees wait until every room is walked: rooms[i] stay findable. */
    rc__registry_hold(&a->reg);
    for (d->room = 0; d->room < n && !a->closing; d->room++) {
        r = find_room(a, rooms[d->room]);
        if (r != NULL && r->members > 0)
            rc__room_walk(&a->reg, r, deliver, d);
    }
    rc__registry_release(&a->reg);
    if (stamping)
        a->stamping = 0;
}

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

/* Write "$<n>\r\n" at d; returns the end. */
static char *bulk_head(char *d, size_t n)
{
    char digits[24];
    size_t k = 0;

    do
        digits[k++] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    *d++ = '$';
    while (k > 0)
        *d++ = digits[--k];
    *d++ = '\r';
    *d++ = '\n';
    return d;
}

/* PUBLISH <prefix><room> <env>, formatted here in one pass into a reused
 * buffer (hiredis' own formatting costs more than the rest of a publish). */
static void publish(rc_adapter *a, const char *room, const char *env,
                    size_t len)
{
    static const char head[] = "*3\r\n$7\r\nPUBLISH\r\n";
    size_t room_len = strlen(room), chan_len = a->prefix_len + room_len;
    char *d;

    if (a->pub == NULL ||
        rc__reserve(&a->mem, &a->buf, &a->buf_cap,
                    sizeof head + chan_len + len + 2 * (24 + 4)) != 0) {
        a->c.publish_errors++;
        return;
    }
    d = a->buf;
    memcpy(d, head, sizeof head - 1);
    d = bulk_head(d + sizeof head - 1, chan_len);
    memcpy(d, a->prefix, a->prefix_len);
    memcpy(d + a->prefix_len, room, room_len);
    d += chan_len;
    *d++ = '\r';
    *d++ = '\n';
    d = bulk_head(d, len);
    memcpy(d, env, len);
    d += len;
    *d++ = '\r';
    *d++ = '\n';
    if (rc__redis_publish(a, a->buf, (size_t)(d - a->buf)) != 0)
        a->c.publish_errors++;
}

int rc_broadcast(rc_adapter *a, const char *const *rooms, size_t nrooms,
                 const rc_message *msg, const rc_broadcast_options *opts)
{
    static const rc_broadcast_options none;
    rc_envelope env;
    delivery d;
    char *wire;
    size_t i, len;
    int rv, publishing;

    if (a == NULL || msg == NULL || (rooms == NULL && nrooms > 0))
        return RC_EINVAL;
    if (opts == NULL)
        opts = &none;
    for (i = 0; i < nrooms; i++)
        if (rooms[i] == NULL)
            return RC_EINVAL;
    if (a->closing)
        return RC_EMISUSE;
    memset(&env, 0, sizeof env);
    env.msg = *msg;
    env.node = a->node_id;
    env.except = opts->except_conn_id;
    env.meta = opts->meta;
    env.meta_len = opts->meta_len;
    /* Check everything the message carries before anything is delivered
     * or published: encoding checks it all, and without a publish there
     * is no need to write the envelope out. */
    publishing = !(opts->flags & RC_LOCAL_ONLY) && !a->local_only;
    wire = NULL;
    len = 0;
    rv = publishing ? encode(a, &env, &wire, &len)
                    : rc_envelope_encode(&env, &a->limits, NULL, 0, &len);
    if (rv != 0 && !(rv == RC_ENOBUFS && !publishing))
        return rv;

    memset(&d, 0, sizeof d);
    d.a = a;
    d.msg = msg;
    if (opts->except_conn_id != NULL)
        d.except = rc_conn_find(a, opts->except_conn_id);
    if (opts->meta != NULL) /* as remote nodes will see it */
        d.meta_len = rc__json_trim(opts->meta, opts->meta_len, &d.meta);
    d.frame = frame_new(&a->mem, msg);
    rv = d.frame != NULL ? 0 : RC_ENOMEM;
    a->depth++;
    if (rv == 0)
        deliver_rooms(&d, rooms, nrooms);
    rc_frame_unref(d.frame);
    for (i = 0; rv == 0 && publishing && i < nrooms && !a->closing; i++)
        publish(a, rooms[i], wire, len);
    if (wire != NULL && wire == a->env)
        a->env_busy = 0;
    else
        rc__free(&a->mem, wire);
    a->depth--;
    rc__maybe_release(a);
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

static void reject(rc_adapter *a, int err)
{
    a->c.rejected++;
    if (-err > 0 && -err < RC_REJECT_SLOTS)
        a->c.rejected_by[-err]++;
}

void rc__on_message(rc_adapter *a, const char *chan, size_t chan_len,
                    const char *payload, size_t len)
{
    rc__aroom *room;
    rc_envelope env;
    const char *name;
    delivery d;
    int rv;

    a->c.received++;
    if (a->closing)
        return;
    /* Refuse oversize input before sizing scratch for it. */
    if (len > RC_ENVELOPE_SLACK &&
        len - RC_ENVELOPE_SLACK > a->limits.max_data) {
        reject(a, RC_ETOOBIG);
        return;
    }
    /* Our own envelopes come back to us: one ending in ,"n":<our id>} has
     * our id as its last "n" (were it not valid, it would be dropped all
     * the same), so it is dropped without being decoded. */
    if (len >= a->echo_tail_len &&
        memcmp(payload + len - a->echo_tail_len, a->echo_tail,
               a->echo_tail_len) == 0) {
        a->c.echoes++;
        return;
    }
    if (rc__reserve(&a->mem, &a->scratch, &a->scratch_cap, len + 1) != 0) {
        reject(a, RC_ENOMEM);
        return;
    }
    rv = rc_envelope_decode(payload, len, &a->limits, &env, a->scratch,
                            a->scratch_cap);
    if (rv != 0) {
        reject(a, rv);
        return;
    }
    if (strcmp(env.node, a->node_id) == 0) {
        a->c.echoes++;
        return;
    }
    room = room_of_channel(a, chan, chan_len);
    if (room == NULL || room->base.members == 0)
        return;
    memset(&d, 0, sizeof d);
    d.a = a;
    d.msg = &env.msg;
    if (env.except != NULL)
        d.except = rc_conn_find(a, env.except);
    d.meta = env.meta;
    d.meta_len = env.meta_len;
    /* An empty id is no id (no "id:" line is written for it). */
    if (env.msg.id != NULL && env.msg.id[0] != '\0')
        d.id_hash = rc__hash(env.msg.id, strlen(env.msg.id), a->seed);
    d.frame = frame_new(&a->mem, &env.msg);
    if (d.frame == NULL) {
        reject(a, RC_ENOMEM);
        return;
    }
    name = room->base.name;
    a->depth++;
    deliver_rooms(&d, &name, 1);
    a->depth--;
    rc_frame_unref(d.frame);
}

void rc_adapter_counters(const rc_adapter *a, rc_counters *out, size_t size)
{
    rc_counters c;

    if (a == NULL || out == NULL)
        return;
    c = a->c;
    c.connections = a->reg.conns.count;
    c.rooms = a->live_rooms;
    c.memberships = a->reg.members.count;
    memcpy(out, &c, size < sizeof c ? size : sizeof c);
}
