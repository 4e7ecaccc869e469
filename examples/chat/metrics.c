/* rc-chat's GET /metrics: Prometheus text exposition (format 0.0.4) of the
 * adapter's counters, the Redis link and the server. */
#define _POSIX_C_SOURCE 200809L

#include <event2/buffer.h>
#include <event2/http.h>

#include "chat.h"

static void metric(struct evbuffer *b, const char *name, const char *type,
                   const char *help, unsigned long long v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help,
                        name, type, name, v);
}

void metrics_reply(chat *c, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    rc_counters k;
    size_t i;

    rc_adapter_counters(c->a, &k, sizeof k);
    metric(b, "rc_published_total", "counter",
           "Envelopes published (PUBLISH answered).", k.published);
    metric(b, "rc_publish_errors_total", "counter",
           "Publishes not sent, refused or lost.", k.publish_errors);
    metric(b, "rc_received_total", "counter", "Messages received from Redis.",
           k.received);
    metric(b, "rc_echoes_total", "counter",
           "Own envelopes received back and dropped.", k.echoes);
    evbuffer_add_printf(b, "# HELP rc_rejected_total Envelopes from Redis "
                           "dropped as invalid, by reason.\n"
                           "# TYPE rc_rejected_total counter\n");
    for (i = 1; i < RC_REJECT_SLOTS; i++)
        if (k.rejected_by[i] != 0)
            evbuffer_add_printf(b, "rc_rejected_total{reason=\"%s\"} %llu\n",
                                rc_err_name(-(int)i), k.rejected_by[i]);
    if (k.rejected == 0)
        evbuffer_add_printf(b, "rc_rejected_total{reason=\"EJSON\"} 0\n");
    metric(b, "rc_duplicates_total", "counter",
           "Repeated message ids dropped per connection.", k.duplicates);
    metric(b, "rc_delivered_total", "counter", "Frames accepted by streams.",
           k.delivered);
    metric(b, "rc_filtered_total", "counter",
           "Deliveries skipped (stream not yet greeted).", k.filtered);
    metric(b, "rc_sink_errors_total", "counter",
           "Deliveries refused (stream closing or too slow).", k.sink_errors);
    metric(b, "rc_link_up", "gauge", "1 while the Redis link is up.",
           c->link != NULL && rc_link_state(c->link) == RC_LINK_UP);
    metric(b, "rc_link_connects_total", "counter",
           "Times the Redis link came up.",
           c->link != NULL ? rc_link_connects(c->link) : 0);
    metric(b, "rc_link_failures_total", "counter",
           "Redis connections that failed or dropped.",
           c->link != NULL ? rc_link_failures(c->link) : 0);
    metric(b, "rc_chat_streams", "gauge", "Open event streams.", c->nstreams);
    metric(b, "rc_chat_rooms", "gauge", "Rooms with local streams.",
           rc_adapter_rooms(c->a, NULL, 0));
    metric(b, "rc_chat_streams_opened_total", "counter",
           "Event streams opened.", c->opened);
    evbuffer_add_printf(b, "# HELP rc_chat_streams_closed_total Event streams "
                           "ended, by reason.\n"
                           "# TYPE rc_chat_streams_closed_total counter\n");
    for (i = 0; i < CLOSE_N; i++)
        evbuffer_add_printf(
            b, "rc_chat_streams_closed_total{reason=\"%s\"} %llu\n",
            chat_close_names[i], c->closed[i]);
    metric(b, "rc_chat_streams_refused_total", "counter",
           "Event streams refused at --max-streams (503).", c->refused);
    evbuffer_add_printf(b, "# HELP rc_chat_requests_total HTTP requests "
                           "answered, by status.\n"
                           "# TYPE rc_chat_requests_total counter\n");
    for (i = 0; i < CHAT_N_CODES; i++) /* this answer included */
        evbuffer_add_printf(b, "rc_chat_requests_total{code=\"%d\"} %llu\n",
                            chat_status_codes[i],
                            c->requests[i] + (chat_status_codes[i] == 200));
    metric(b, "rc_chat_accept_errors_total", "counter",
           "accept() failures (the listener pauses on each).",
           c->accept_errors);
    http_reply(c, req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}
