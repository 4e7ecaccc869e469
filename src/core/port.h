/* The port's own declarations, shared by redis.c and script.c (the only
 * files that include hiredis); not installed. */
#ifndef RC_PORT_H
#define RC_PORT_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "internal.h"
#include "roomcast/transport.h"

typedef __typeof__(((redisAsyncContext *)0)->ev) ev_hooks;

/* One context handed to the adapter, or one side of a transport while it
 * is up (see redis.c). */
struct rc__watch {
    redisAsyncContext *ac; /* NULL once the context was cleaned up */
    rc_transport t;        /* a transport's side: send set while usable */
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

/* Write "<c><n>\r\n" (a RESP array or bulk header) at d; the end. */
char *rc__resp_head(char *d, char c, size_t n);

/* Does w take commands (a live context, or a transport side)? */
int rc__watch_live(const rc__watch *w);

/* Send a command on w: cmd (len bytes of RESP) with its cluster slot (-1:
 * any node), or argc strings (formatted here). The reply goes to hfn on
 * a context, to tfn on a transport (both get priv); each send that
 * returns 0 holds w once until then. 0, RC_EMISUSE or RC_ENOMEM. */
int rc__watch_send(rc__watch *w, redisCallbackFn *hfn, rc_transport_done tfn,
                   void *priv, int slot, const char *cmd, size_t len);
int rc__watch_sendv(rc__watch *w, redisCallbackFn *hfn, rc_transport_done tfn,
                    void *priv, int slot, int argc, const char **argv,
                    const size_t *argvlen);

#endif /* RC_PORT_H */
