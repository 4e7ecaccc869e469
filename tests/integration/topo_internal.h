/*
 * topo_harness' private helpers, shared by topo_harness.c (time, errors,
 * waits, starting servers, running programs), topo_cluster.c,
 * topo_sentinel.c and topo_tls.c. Not for tests: use topo_harness.h.
 */
#ifndef RC_TOPO_INTERNAL_H
#define RC_TOPO_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "topo_harness.h"

#define TH_WHY_SIZE 512 /* a predicate's "why not yet" */

long long th__now_ms(void);
int th__ms_left(long long deadline); /* 0 once passed */
void th__pause_ms(int ms);           /* a polling interval, never a sync */

/* Format into err (TH_ERROR_SIZE bytes) and print it on stderr. */
void th__set_err(char *err, const char *fmt, ...);
void th__set_why(char *why, size_t cap, const char *fmt, ...);

/*
 * A condition: 1 met, 0 not yet (why says what is missing), -1 never
 * (why says why). th__wait_for polls it every TH_POLL_MS until met, never
 * or timeout_ms passed: 0, or -1 with err naming `what` and the last why.
 */
typedef int (*th_pred)(void *arg, char *why, size_t cap);
int th__wait_for(char *err, th_pred pred, void *arg, int timeout_ms,
                 const char *what);

/*
 * rh_start (restart 0) or rh_restart (1), with bin as the redis-server
 * binary (NULL: the usual one) and RC_TEST_REDIS_CLUSTER unset for the
 * call. 0 or -1 (s->error).
 */
int th__launch(rh_server *s, const char *const *args, const char *bin,
               int restart);

/* A reply's text for a message (never NULL). */
const char *th__reply_text(const redisReply *r);
/* Frees r. 0 when it is +OK, else -1 with err "<fmt...>: <reply>". */
int th__expect_ok(char *err, redisReply *r, const char *fmt, ...);
/* The value of "name:value" in an INFO-style text, into out. 0 or -1. */
int th__info_field(const char *text, const char *name, char *out, size_t cap);

int th__write_file(const char *path, const char *text, mode_t mode, char *err);
/* A port the kernel had free on 127.0.0.1 a moment ago, or -1. */
int th__free_port(void);

#endif /* RC_TOPO_INTERNAL_H */
