/*
 * What the integration tests share: problems noted inside callbacks (where
 * cmocka may not assert), and driving a libevent loop until something
 * holds, bounded in time, without spinning and without sleeps: a guard
 * timer lets each blocking turn wait at most 1 ms.
 *
 * Include after <cmocka.h>.
 */
#ifndef RC_TEST_SUPPORT_H
#define RC_TEST_SUPPORT_H

#include <event2/event.h>

typedef struct ts_problems {
    int count;
    char first[512]; /* the first problem's text */
} ts_problems;

/* Note a problem; only the first text is kept. */
void ts_note(ts_problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Fail the test if any problem was noted. */
void ts_assert_clean(const ts_problems *p);

/* Monotonic milliseconds. */
long long ts_now_ms(void);

/* The guard timer for base (NULL if out of memory). */
struct event *ts_guard_new(struct event_base *base);

/* One turn that does not block; one that blocks at most 1 ms. */
void ts_pump(struct event_base *base);
void ts_idle(struct event_base *base, struct event *guard);

/* Run the loop until pred(arg) holds; after timeout_ms, call dump(arg of
 * dump) if given and fail the test naming what and file:line. */
void ts_run_until(struct event_base *base, struct event *guard,
                  int (*pred)(void *), void *arg, int timeout_ms,
                  const char *what, const char *file, int line,
                  void (*dump)(const void *), const void *dump_arg);

/* The same for an expression; on_timeout is a statement run before the
 * test fails (e.g. a dump of the test's state, or (void)0). */
#define TS_WAIT_FOR(base, guard, cond, ms, what, on_timeout)                   \
    do {                                                                       \
        long long ts_deadline_ = ts_now_ms() + (ms);                           \
        while (!(cond)) {                                                      \
            if (ts_now_ms() >= ts_deadline_) {                                 \
                on_timeout;                                                    \
                fail_msg("%s:%d: timed out after %d ms waiting for %s",        \
                         __FILE__, __LINE__, (int)(ms), (what));               \
            }                                                                  \
            ts_pump(base);                                                     \
            if (!(cond))                                                       \
                ts_idle((base), (guard));                                      \
        }                                                                      \
    } while (0)

#endif
