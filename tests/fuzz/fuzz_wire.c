/*
 * The glue's Redis connection (src/libevent/wire.c) reading whatever a
 * server might send: the input is written to one end of a socket pair
 * whose other end is a wire that owes a plain reply, a SUBSCRIBE
 * confirmation, a PING's pong and a SUNSUBSCRIBE confirmation, then the
 * writer closes. Whatever comes (garbage, huge lengths, deep nesting,
 * pushes that look like confirmations of other channels), the wire must
 * answer every owed reply exactly once (a reply or NULL), go down at most
 * once, and free everything (ASan/LSan). Replies handed to callbacks are
 * walked to their leaves, so a malformed one would be read out of bounds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "wire.h"

typedef struct seen {
    int answered[4], downs, pushes;
    size_t bytes;
} seen;

static void walk(seen *s, const redisReply *r)
{
    size_t i;

    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR)
        for (i = 0; i < r->len; i++)
            s->bytes += (unsigned char)r->str[i];
    if (r->type == REDIS_REPLY_ARRAY)
        for (i = 0; i < r->elements; i++)
            walk(s, r->element[i]);
}

static seen *g;

#define DONE(k)                                                                \
    static void done##k(void *priv, const redisReply *r)                       \
    {                                                                          \
        (void)priv;                                                            \
        g->answered[k]++;                                                      \
        if (r != NULL)                                                         \
            walk(g, r);                                                        \
    }
DONE(0)
DONE(1)
DONE(2)
DONE(3)

static void up(rc__wire *w, void *user)
{
    (void)w;
    (void)user;
}

static void down(rc__wire *w, const char *why, void *user)
{
    (void)w;
    (void)why;
    ((seen *)user)->downs++;
}

static void push(rc__wire *w, const redisReply *r, void *user)
{
    (void)w;
    ((seen *)user)->pushes++;
    walk(user, r);
}

static const rc__wire_cbs cbs = {up, down, push};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct event_base *base = event_base_new();
    seen s;
    int fd[2], k;
    rc__wire *w;
    ssize_t n;
    size_t at = 0;

    memset(&s, 0, sizeof s);
    g = &s;
    if (base == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0)
        abort();
    w = rc__wire_adopt(base, fd[0], &cbs, &s);
    if (w == NULL ||
        rc__wire_send(w, "*1\r\n$4\r\nPING\r\n", 14, done0, NULL) != 0 ||
        rc__wire_subscribe(w, "SUBSCRIBE", "ch", 2, done1, NULL) != 0 ||
        rc__wire_ping(w, done2, NULL) != 0 ||
        rc__wire_subscribe(w, "SUNSUBSCRIBE", "sc", 2, done3, NULL) != 0)
        abort();
    evutil_make_socket_nonblocking(fd[1]);
    while (at < size && s.downs == 0 &&
           (n = write(fd[1], data + at, size - at)) != 0) {
        if (n > 0)
            at += (size_t)n;
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            break; /* the wire closed its end */
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    shutdown(fd[1], SHUT_WR);
    for (k = 0; k < 50 && s.downs == 0; k++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    rc__wire_close(w);
    for (k = 0; k < 4; k++)
        if (s.answered[k] != 1)
            abort(); /* each owed reply answered once */
    if (s.downs > 1)
        abort();
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    close(fd[0]);
    close(fd[1]);
    event_base_free(base);
    return 0;
}
