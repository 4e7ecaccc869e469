/* The port's own declarations, shared by redis.c and script.c (the only
 * files that include hiredis); not installed. */
#ifndef RC_PORT_H
#define RC_PORT_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "internal.h"

typedef __typeof__(((redisAsyncContext *)0)->ev) ev_hooks;

/* One context handed to the adapter (see redis.c). */
struct rc__watch {
    redisAsyncContext *ac; /* NULL once the context was cleaned up */
    rc_adapter *a;         /* NULL once the adapter let go of it */
    rc__alloc mem;         /* a copy: a watch may outlive its adapter */
    ev_hooks loop;         /* the loop's hooks, which ours forward to */
    int hooked;            /* ours are in ac->ev */
    size_t held;           /* callbacks of ours that hiredis holds */
    unsigned busy;         /* running one of them */
    unsigned loaded;       /* SCRIPT LOAD replies so far (script.c) */
    rc__watch *next;       /* in the port's retired list */
};

/* Free w if nothing can call it any more. */
void rc__watch_settle(rc__watch *w);
/* One callback of w's that hiredis held is done with. */
void rc__watch_release(rc__watch *w);

#endif /* RC_PORT_H */
