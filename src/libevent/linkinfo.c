/* What a link says of itself (roomcast/libevent.h), for both kinds: on
 * hiredis contexts (link.c) and on the glue's own connections (elink.c). */
#include <stdio.h>
#include <string.h>

#include "link.h"

int rc_link_state(const rc_link *l)
{
    return l->e != NULL ? l->e->state : l->state;
}

const char *rc_link_reason(const rc_link *l)
{
    return l->e != NULL ? l->e->reason : l->reason;
}

unsigned long rc_link_connects(const rc_link *l)
{
    return l->e != NULL ? l->e->connects : l->connects;
}

unsigned long rc_link_failures(const rc_link *l)
{
    return l->e != NULL ? l->e->failures : l->failures;
}

size_t rc_link_shards(const rc_link *l, rc_link_shard *out, size_t cap)
{
    if (l->e != NULL)
        return rc__elink_shards(l->e, out, cap);
    if (cap == 0)
        return 1;
    memset(out, 0, sizeof *out);
    if (l->url.path[0] != '\0')
        snprintf(out->addr, sizeof out->addr, "%s", l->url.path);
    else
        snprintf(out->addr, sizeof out->addr, "%s:%d", l->url.host,
                 l->url.port);
    out->up = l->state == RC_LINK_UP;
    out->slots = 16384;
    return 1;
}

redisAsyncContext *rc_link_pub(const rc_link *l)
{
    return l != NULL && l->e == NULL && l->pub.up ? l->pub.ac : NULL;
}
