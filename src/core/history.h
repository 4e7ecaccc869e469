/* What history.c and hread.c share; not installed. */
#ifndef RC_HISTORY_H
#define RC_HISTORY_H

#include <stdio.h>

#include "presence.h"

struct rc__hroom {
    unsigned long long e, l;       /* the epoch; the last sequence seen live */
    unsigned long long rhw_e, rhw; /* our publishes' answers, highest */
    int gap; /* published without an id while Redis was away */
};

/* "E-S" (digits, each at most 18 of them): 0 and *e, *s, or -1. */
int rc__hist_parse_id(const char *id, unsigned long long *e,
                      unsigned long long *s);
/* Give member m rc:reset {"reason":R} with id "E-TOP" ("" for e 0). */
void rc__hist_reset(rc_adapter *a, rc__member *m, const char *reason,
                    unsigned long long e, unsigned long long top);
/* The room's sequence went back below seen in epoch e: a new epoch. */
void rc__hist_fence(rc_adapter *a, const char *room, unsigned long long e,
                    unsigned long long seen);
/* Hold member m and read what it misses; resume: the client's id. 0, or
 * an error (the member goes on from its cursor then). */
int rc__hist_member_read(rc_adapter *a, rc__aroom *room, rc__member *m,
                         const char *resume);

#endif /* RC_HISTORY_H */
