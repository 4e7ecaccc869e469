/*
 * rc-chat's shutdown. SIGINT/SIGTERM: stop accepting, end every stream
 * (what is queued is tried once, then the connection is closed; each
 * stream's presence leave goes out, with the grace), and stop the loop
 * once Redis has run them, or after DRAIN_MS. main then tears everything
 * down.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/async.h>

#include "chat.h"

#define DRAIN_MS 2000

static void finish(chat *c)
{
    event_base_loopbreak(c->base);
}

void shutdown_leaves_done(struct redisAsyncContext *ac, void *r, void *priv)
{
    chat *c = priv;

    (void)ac;
    (void)r;
    if (c->pending > 0 && --c->pending == 0)
        finish(c);
}

void shutdown_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg);
}

void shutdown_on_signal(evutil_socket_t sig, short what, void *arg)
{
    chat *c = arg;
    struct timeval tv = chat_ms_tv(DRAIN_MS);

    (void)what;
    if (c->stopping)
        return;
    chat_log("%s: stopping (%lu streams)", sig == SIGINT ? "SIGINT" : "SIGTERM",
             c->nstreams);
    c->stopping = 1;
    evhttp_del_accept_socket(c->http, c->bound);
    c->bound = NULL;
    evtimer_del(c->resume);
    evtimer_add(c->drain, &tv);
    c->pending = 1; /* held while the streams' leaves go out */
    streams_end_all(c);
    /* Answered once Redis has run every leave sent before it. */
    if (rc_link_pub(c->link) != NULL &&
        redisAsyncCommand(rc_link_pub(c->link), shutdown_leaves_done, c,
                          "PING") == REDIS_OK)
        c->pending++;
    shutdown_leaves_done(NULL, NULL, c);
}
