/* Shared integration-test support: nodes on an rc_link (see
 * test_nodes.h); linked with roomcast_libevent. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "test_nodes.h"

/* Records every call; notes a foreign link, an unknown state, a NULL or
 * empty DOWN reason, a call that repeats the last one (DOWN again with a
 * new reason is a change), and a state rc_link_state does not report. */
static void on_state(rc_link *link, int state, const char *reason, void *user)
{
    ts_node *n = user;
    ts_problems *p = &n->w->problems;
    const char *why = reason ? reason : "(null)";

    if (n->closed && n->link == NULL)
        return; /* a call from inside rc_link_close is tolerated */
    if (link != n->link && n->link != NULL)
        ts_note(p, "%s: state callback with a foreign link", n->name);
    if (state != RC_LINK_UP && state != RC_LINK_DOWN)
        ts_note(p, "%s: state callback with state %d", n->name, state);
    if (reason == NULL)
        ts_note(p, "%s: state callback with a NULL reason", n->name);
    if (n->last_state == state &&
        (state == RC_LINK_UP ||
         (reason && strcmp(reason, n->last_down_reason) == 0)))
        ts_note(p, "%s: state callback repeated state %d (reason %s)", n->name,
                state, why);
    if (n->link != NULL && rc_link_state(link) != state)
        ts_note(p, "%s: state callback says %d, rc_link_state says %d", n->name,
                state, rc_link_state(link));
    if (n->ntr < TS_MAX_TR) {
        ts_transition *t = &n->tr[n->ntr];

        t->t = ts_now_ms();
        t->state = state;
        snprintf(t->reason, sizeof t->reason, "%s", why);
    }
    n->ntr++;
    n->last_state = state;
    if (state == RC_LINK_UP) {
        n->ups++;
    } else {
        n->downs++;
        snprintf(n->last_down_reason, sizeof n->last_down_reason, "%s", why);
        if (reason && reason[0] == '\0')
            ts_note(p, "%s: DOWN with an empty reason", n->name);
    }
}

ts_node *ts_node_link(ts_world *w, int i, const char *id,
                      const rc_link_options *lo)
{
    ts_node *n = ts_node_open_(w, i, id);
    rc_link_options o = *lo;
    int rc;

    o.state_cb = on_state;
    o.user = n;
    n->close_link = rc_link_close;
    if (w->node_prep != NULL)
        w->node_prep(n);
    rc = rc_link_open(n->a, w->loop.base, &o, &n->link);
    if (rc != 0)
        fail_msg("rc_link_open(%s, %s): %s", id, o.url, rc_strerror(rc));
    assert_non_null(n->link);
    return n;
}

int ts_link_up(const ts_node *n)
{
    return rc_link_state(n->link) == RC_LINK_UP;
}

ts_node *ts_node_link_quick(ts_world *w, int i, const char *id, const char *url)
{
    rc_link_options lo;

    memset(&lo, 0, sizeof lo);
    lo.url = url;
    lo.connect_timeout_ms = 1000;
    lo.backoff_min_ms = 50;
    lo.backoff_max_ms = 300;
    lo.probe_interval_ms = 200;
    return ts_node_link(w, i, id, &lo);
}

void ts_deliver(ts_world *w, ts_node *from, const char *room, ts_rec *to,
                const char *data)
{
    long long deadline = ts_now_ms() + TS_WAIT_MS, resend = 0;
    int before = to->count;

    while (to->count == before || strcmp(to->data, data) != 0) {
        if (ts_now_ms() >= deadline)
            fail_msg("%s never got %s on %s (links: \"%s\", \"%s\")", to->id,
                     data, room, rc_link_reason(from->link),
                     rc_link_reason(to->owner->link));
        if (ts_now_ms() >= resend) {
            (void)ts_bcast(from, room, NULL, data, NULL, 0);
            resend = ts_now_ms() + 100;
        }
        ts_pump(&w->loop);
        ts_idle(&w->loop);
    }
}
