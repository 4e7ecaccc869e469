/*
 * rc-chat's GET /metrics: Prometheus text exposition (format 0.0.4) of
 * the adapter's counters, the Redis link and the server, from one table.
 * Each row is a metric: a value read from a snapshot taken once per
 * request, or a family of labelled samples written by a function.
 */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "chat.h"

/* Every value of one answer, read at once. */
typedef struct snapshot {
    rc_counters k;
    unsigned long long link_up, link_connects, link_failures, node_state;
    unsigned long long streams, rooms, opened, refused, accept_errors;
    unsigned long long conns, req_bytes, req_timeouts, req_evicted;
    rc_link_shard shards[CHAT_MAX_SHARDS]; /* the link's servers */
    size_t nshards;
    const chat *c;
} snapshot;

typedef void (*samples_fn)(struct evbuffer *b, const char *name,
                           const snapshot *s);

typedef struct metric {
    const char *name, *type, *help;
    size_t off;         /* one unlabelled value: its offset in snapshot */
    samples_fn samples; /* or labelled samples */
} metric;

/* By reason; the ones seen so far (an empty family still shows a zero). */
static void rejected_samples(struct evbuffer *b, const char *name,
                             const snapshot *s)
{
    size_t i;

    for (i = 1; i < RC_REJECT_SLOTS; i++)
        if (s->k.rejected_by[i] != 0)
            evbuffer_add_printf(b, "%s{reason=\"%s\"} %llu\n", name,
                                rc_err_name(-(int)i), s->k.rejected_by[i]);
    if (s->k.rejected == 0)
        evbuffer_add_printf(b, "%s{reason=\"EJSON\"} 0\n", name);
}

static void closed_samples(struct evbuffer *b, const char *name,
                           const snapshot *s)
{
    size_t i;

    for (i = 0; i < CLOSE_N; i++)
        evbuffer_add_printf(b, "%s{reason=\"%s\"} %llu\n", name,
                            chat_close_names[i], s->c->closed[i]);
}

static void requests_samples(struct evbuffer *b, const char *name,
                             const snapshot *s)
{
    size_t i;

    for (i = 0; i < CHAT_N_CODES; i++) /* this answer included */
        evbuffer_add_printf(b, "%s{code=\"%d\"} %llu\n", name,
                            chat_status_codes[i],
                            s->c->requests[i] + (chat_status_codes[i] == 200));
}

/* One family per field of the link's servers, labelled by address. */
static void shard_samples(struct evbuffer *b, const char *name,
                          const snapshot *s)
{
    const char *f = name + sizeof "rc_shard_" - 1;
    size_t i;

    for (i = 0; i < s->nshards; i++) {
        const rc_link_shard *h = &s->shards[i];
        unsigned long long v =
            strncmp(f, "up", 2) == 0         ? (unsigned long long)h->up
            : strncmp(f, "slots", 5) == 0    ? (unsigned long long)h->slots
            : strncmp(f, "channels", 8) == 0 ? h->channels
            : strncmp(f, "commands", 8) == 0 ? h->commands
            : strncmp(f, "messages", 8) == 0 ? h->messages
                                             : h->lost;
        evbuffer_add_printf(b, "%s{shard=\"%s\"} %llu\n", name, h->addr, v);
    }
}

#define V(field) offsetof(snapshot, field), NULL
#define F(fn) 0, fn

static const metric metrics[] = {
    {"rc_published_total", "counter", "Envelopes published (PUBLISH answered).",
     V(k.published)},
    {"rc_publish_errors_total", "counter",
     "Publishes not sent, refused or lost.", V(k.publish_errors)},
    {"rc_publish_unconfirmed_total", "counter",
     "Of the publish errors, those written whose reply was lost with the "
     "link (Redis may have delivered them).",
     V(k.publish_unconfirmed)},
    {"rc_script_errors_total", "counter",
     "Lua script calls answered with an error or lost.", V(k.script_errors)},
    {"rc_node_state", "gauge",
     "The node id's lease: 0 off, 1 claiming, 2 held, 3 refused (in use).",
     V(node_state)},
    {"rc_received_total", "counter", "Messages received from Redis.",
     V(k.received)},
    {"rc_echoes_total", "counter", "Own envelopes received back and dropped.",
     V(k.echoes)},
    {"rc_rejected_total", "counter",
     "Envelopes from Redis dropped as invalid, by reason.",
     F(rejected_samples)},
    {"rc_duplicates_total", "counter",
     "Copies of a multi-room broadcast dropped (had via another room).",
     V(k.duplicates)},
    {"rc_delivered_total", "counter", "Frames accepted by streams.",
     V(k.delivered)},
    {"rc_filtered_total", "counter",
     "Deliveries skipped (stream not yet greeted).", V(k.filtered)},
    {"rc_sink_errors_total", "counter",
     "Deliveries refused (stream closing or too slow).", V(k.sink_errors)},
    {"rc_link_up", "gauge", "1 while the Redis link is up.", V(link_up)},
    {"rc_link_connects_total", "counter", "Times the Redis link came up.",
     V(link_connects)},
    {"rc_link_failures_total", "counter",
     "Redis connections that failed or dropped.", V(link_failures)},
    {"rc_shard_up", "gauge",
     "1 while the link's connections to this Redis server are ready.",
     F(shard_samples)},
    {"rc_shard_slots", "gauge",
     "Cluster slots the server owns (16384 outside a cluster).",
     F(shard_samples)},
    {"rc_shard_channels", "gauge",
     "Room channels subscribed (or asked) on the server.", F(shard_samples)},
    {"rc_shard_commands_total", "counter", "Commands sent to the server.",
     F(shard_samples)},
    {"rc_shard_messages_total", "counter", "Messages received from the server.",
     F(shard_samples)},
    {"rc_shard_lost_total", "counter",
     "Subscriptions the server dropped or lost (each subscribed again).",
     F(shard_samples)},
    {"rc_chat_streams", "gauge", "Open event streams.", V(streams)},
    {"rc_chat_rooms", "gauge", "Rooms with local streams.", V(rooms)},
    {"rc_chat_streams_opened_total", "counter", "Event streams opened.",
     V(opened)},
    {"rc_chat_streams_closed_total", "counter",
     "Event streams ended, by reason.", F(closed_samples)},
    {"rc_chat_streams_refused_total", "counter",
     "Event streams refused at --max-streams (503).", V(refused)},
    {"rc_chat_requests_total", "counter", "HTTP requests answered, by status.",
     F(requests_samples)},
    {"rc_chat_accept_errors_total", "counter",
     "accept() failures (the listener pauses on each).", V(accept_errors)},
    {"rc_chat_connections", "gauge",
     "HTTP connections that are not streams (reading or answered).", V(conns)},
    {"rc_chat_request_bytes", "gauge",
     "Bytes read of the requests being read, all connections.", V(req_bytes)},
    {"rc_chat_request_timeouts_total", "counter",
     "Connections closed for not sending a whole request in time.",
     V(req_timeouts)},
    {"rc_chat_connections_evicted_total", "counter",
     "Connections closed to stay under the connection cap or byte budget.",
     V(req_evicted)},
};

#undef V
#undef F

static void take_snapshot(const chat *c, snapshot *s)
{
    rc_adapter_counters(c->a, &s->k, sizeof s->k);
    s->link_up = c->link != NULL && rc_link_state(c->link) == RC_LINK_UP;
    s->node_state = (unsigned long long)rc_adapter_node_state(c->a);
    s->link_connects = c->link != NULL ? rc_link_connects(c->link) : 0;
    s->link_failures = c->link != NULL ? rc_link_failures(c->link) : 0;
    s->nshards = c->link != NULL
                     ? rc_link_shards(c->link, s->shards, CHAT_MAX_SHARDS)
                     : 0;
    if (s->nshards > CHAT_MAX_SHARDS)
        s->nshards = CHAT_MAX_SHARDS;
    s->streams = c->nstreams;
    s->rooms = rc_adapter_rooms(c->a, NULL, 0);
    s->opened = c->opened;
    s->refused = c->refused;
    s->accept_errors = c->accept_errors;
    s->conns = c->nconns;
    s->req_bytes = c->req_bytes;
    s->req_timeouts = c->req_timeouts;
    s->req_evicted = c->req_evicted;
    s->c = c;
}

void metrics_reply(chat *c, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    snapshot s;
    size_t i;

    take_snapshot(c, &s);
    for (i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        const metric *m = &metrics[i];

        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help,
                            m->name, m->type);
        if (m->samples != NULL)
            m->samples(b, m->name, &s);
        else
            evbuffer_add_printf(
                b, "%s %llu\n", m->name,
                *(const unsigned long long *)((const char *)&s + m->off));
    }
    http_reply(c, req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}
