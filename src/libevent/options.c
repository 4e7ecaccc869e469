/* A link's options with their defaults, and the names its connections
 * and control channel get. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glue.h"

/* A malloc'd "roomcast:<a>:<b>[:<c>]". Client names take no spaces or
 * control characters, so those become '_'. */
char *rc__client_name(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 16, i;
    char *s = malloc(n);

    if (s == NULL)
        return NULL;
    snprintf(s, n, "roomcast:%s:%s%s%s", a, b, *c ? ":" : "", c);
    for (i = 0; s[i] != '\0'; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] == 0x7f)
            s[i] = '_';
    return s;
}

int rc__link_options(rc_link_options *o, const rc_link_options *in)
{
    *o = *in;
    if (o->connect_timeout_ms == 0)
        o->connect_timeout_ms = 2000;
    if (o->backoff_min_ms == 0)
        o->backoff_min_ms = 100;
    if (o->backoff_max_ms == 0) /* no less than an explicit minimum */
        o->backoff_max_ms = o->backoff_min_ms > 1000 ? o->backoff_min_ms : 1000;
    if (o->probe_interval_ms == 0)
        o->probe_interval_ms = 1000;
    o->url = NULL; /* parsed, not kept */
    return o->backoff_max_ms < o->backoff_min_ms ||
                   o->backoff_max_ms > 3600000u ||
                   o->connect_timeout_ms > 3600000u ||
                   o->probe_interval_ms > 3600000u
               ? RC_EINVAL
               : 0;
}

unsigned rc__backoff(unsigned long long *rng, const rc_link_options *o,
                     unsigned attempt)
{
    unsigned long d = o->backoff_min_ms;

    while (attempt-- > 0 && d < o->backoff_max_ms)
        d *= 2;
    if (d > o->backoff_max_ms)
        d = o->backoff_max_ms;
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    return (unsigned)(d / 2 + *rng % (d / 2 + 1));
}
