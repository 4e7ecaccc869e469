/*
 * rc-chat: an SSE chat server on libevent's evhttp, with rooms shared
 * across processes through roomcast. The HTTP contract, flags and metrics
 * are in README.md beside this file; chat.h says which file holds what.
 *
 * Shape: one event_base runs everything. evhttp parses requests and
 * routes.c answers them; event streams take their sockets over from evhttp
 * once the request is parsed (stream.c).
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "chat.h"

/* Make everything and run the loop. Returns main's exit status. */
static int run(chat *c)
{
    c->base = event_base_new();
    /* Three priorities: events default to the middle one. */
    if (c->base == NULL || event_base_priority_init(c->base, 3) < 0) {
        chat_log("cannot create the event loop");
        if (c->base != NULL)
            event_base_free(c->base);
        return 1;
    }
    if (server_setup(c) < 0) {
        server_teardown(c);
        return 1;
    }
    event_base_dispatch(c->base);
    server_teardown(c);
    chat_log("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    chat c;
    int rc;

    memset(&c, 0, sizeof c);
    rc = options_parse(argc, argv, &c.o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    server_fd_limits(&c.o);
    rc = run(&c);
    free(c.o.redis_copy);
    return rc;
}
