/* Declarations shared by the libevent glue's files; not installed. */
#ifndef RC_GLUE_H
#define RC_GLUE_H

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "roomcast/libevent.h"

/* events.c: attach ac to base with hooks that drain reads (no timer hook:
 * the link's own timers bound connects). REDIS_OK, or REDIS_ERR when ac
 * already has hooks or memory ran out. */
int rc__evl_attach(redisAsyncContext *ac, struct event_base *base);

/* options.c: *o gets in with the defaults filled in (url not kept). 0 or
 * RC_EINVAL (a timing out of range). */
int rc__link_options(rc_link_options *o, const rc_link_options *in);

/* options.c: the next retry delay after attempt failures in a row:
 * doubling from o's backoff_min_ms up to backoff_max_ms, then a random
 * point in its upper half (xorshift on *rng), so that nodes do not retry
 * in step. */
unsigned rc__backoff(unsigned long long *rng, const rc_link_options *o,
                     unsigned attempt);

/* options.c: a malloc'd "roomcast:<a>:<b>[:<c>]" with spaces and control
 * characters made '_' (client names take none), or NULL. */
char *rc__client_name(const char *a, const char *b, const char *c);

/* tick.c: calls rc_adapter_tick(a) on a timer of base, at the times it
 * asks for, from the next loop turn on. NULL when out of memory. */
typedef struct rc__ticker rc__ticker;
rc__ticker *rc__ticker_new(struct event_base *base, rc_adapter *a);
void rc__ticker_free(rc__ticker *t); /* NULL allowed */

/* link.c: called once per readable event of a context events.c serves. */
void rc__link_readable(redisAsyncContext *ac);

#endif /* RC_GLUE_H */
