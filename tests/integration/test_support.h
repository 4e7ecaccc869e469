/*
 * What the integration tests share, part 1: the loop and the waits.
 *
 * Problems noted inside callbacks (where cmocka may not assert), and
 * driving a libevent loop until something holds, bounded in time, without
 * spinning and without sleeps: a guard timer lets each blocking turn wait
 * at most 1 ms. A time-out fails the test naming file:line and what was
 * awaited, after the loop's dump (if set) has printed the test's state.
 *
 * Part 2 (worlds, nodes, connections, Redis): test_nodes.h.
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

/* A loop and its guard timer; dump(dump_arg), if set, runs before a wait
 * fails. */
typedef struct ts_loop {
    struct event_base *base;
    struct event *guard;
    void (*dump)(const void *arg);
    const void *dump_arg;
} ts_loop;

/* 0, or -1 if out of memory. */
int ts_loop_init(ts_loop *lp);

/* Run the loop until nothing is registered (at most ms), then free it:
 * 0, or -1 if it did not go quiet (freed all the same). */
int ts_loop_free(ts_loop *lp, int ms);

/* One turn that does not block; one that blocks at most 1 ms. */
void ts_pump(ts_loop *lp);
void ts_idle(ts_loop *lp);

/* Run the loop for ms (a measurement window, not a wait). */
void ts_run_for(ts_loop *lp, int ms);

/* Dump, then fail "file:line: timed out after ms ms waiting for what". */
void ts_timed_out(const ts_loop *lp, int ms, const char *what, const char *file,
                  int line);

/* Run the loop until pred(arg) holds, or time out after ms. */
void ts_run_until(ts_loop *lp, int (*pred)(void *), void *arg, int ms,
                  const char *what, const char *file, int line);
#define TS_RUN_UNTIL(lp, pred, arg, ms, what)                                  \
    ts_run_until((lp), (pred), (arg), (ms), (what), __FILE__, __LINE__)

/* The same for an expression. */
#define TS_WAIT_FOR(lp, cond, ms, what)                                        \
    do {                                                                       \
        long long ts_deadline_ = ts_now_ms() + (ms);                           \
        while (!(cond)) {                                                      \
            if (ts_now_ms() >= ts_deadline_)                                   \
                ts_timed_out((lp), (ms), (what), __FILE__, __LINE__);          \
            ts_pump(lp);                                                       \
            if (!(cond))                                                       \
                ts_idle(lp);                                                   \
        }                                                                      \
    } while (0)

#endif
