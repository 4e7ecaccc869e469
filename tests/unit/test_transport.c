/* An adapter on a transport of the test's own (roomcast/transport.h),
 * without Redis: what it sends (formatted commands with their slots),
 * what it subscribes, how it takes confirmations, lost channels and sides
 * going up and down, and that every owed reply it is given back frees
 * what it held. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <roomcast/roomcast.h>
#include <roomcast/transport.h>

#define MAX_OWED 256

/* What the fake transport was asked. */
typedef struct fake {
    int sends, refuse;
    char last[512]; /* the last command, cut */
    size_t last_len;
    int last_slot;
    rc_transport_done done[MAX_OWED];
    void *priv[MAX_OWED];
    int owed;
    int subs, unsubs;
    char chan[64];
    int events[4]; /* by rc_room_event */
} fake;

static int f_send(void *self, int slot, const char *cmd, size_t len,
                  rc_transport_done done, void *priv)
{
    fake *f = self;

    if (f->refuse || f->owed == MAX_OWED)
        return -1;
    f->sends++;
    f->last_slot = slot;
    f->last_len = len < sizeof f->last - 1 ? len : sizeof f->last - 1;
    memcpy(f->last, cmd, f->last_len);
    f->last[f->last_len] = '\0';
    f->done[f->owed] = done;
    f->priv[f->owed++] = priv;
    return 0;
}

static int f_subscribe(void *self, int on, const char *chan, size_t len)
{
    fake *f = self;

    if (on)
        f->subs++;
    else
        f->unsubs++;
    snprintf(f->chan, sizeof f->chan, "%.*s", (int)len, chan);
    return 0;
}

/* Every owed reply answered NULL (as a transport shutting down does). */
static void pay_all(fake *f)
{
    int i, n = f->owed;

    f->owed = 0;
    for (i = 0; i < n; i++)
        f->done[i](f->priv[i], NULL);
}

static void on_room(rc_adapter *a, const char *room, int event, void *user)
{
    (void)a;
    (void)room;
    ((fake *)user)->events[event & 3]++;
}

static int sink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    (void)c;
    (void)f;
    (void)m;
    (*(int *)user)++;
    return 0;
}

static rc_adapter *open_on(fake *f, int sharded, rc_conn **c, int *got)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "node-t");
    rc_transport t;

    memset(&t, 0, sizeof t);
    t.send = f_send;
    t.subscribe = f_subscribe;
    t.self = f;
    t.sharded = sharded;
    assert_non_null(a);
    assert_int_equal(rc_adapter_set_transport(a, &t), 0);
    rc_adapter_set_room_cb(a, on_room, f);
    assert_int_equal(rc_conn_add(a, "c1", sink, got, c), 0);
    assert_int_equal(rc_room_join(*c, "r"), 1);
    return a;
}

static void subscribes_and_publishes(void **state)
{
    fake f;
    rc_conn *c;
    int got = 0, before;
    rc_message m = RC_MESSAGE_INIT;
    rc_adapter *a;

    (void)state;
    memset(&f, 0, sizeof f);
    a = open_on(&f, 0, &c, &got);
    assert_int_equal(f.subs, 0); /* the sub side is down */
    rc_transport_sub(a, 1);
    assert_int_equal(f.subs, 1);
    assert_string_equal(f.chan, "sse:room:r");
    assert_int_equal(rc_room_is_ready(a, "r"), 0);
    rc_transport_subscribed(a, "sse:room:r", 10);
    assert_int_equal(rc_room_is_ready(a, "r"), 1);
    assert_int_equal(f.events[RC_ROOM_READY], 1);
    /* The command side: scripts loaded (any node), then the lease. */
    rc_transport_pub(a, 1);
    assert_true(f.sends > 1);
    before = f.sends;
    m.data = "{\"x\":1}";
    m.data_len = 7;
    assert_true(rc_broadcast_to_room(a, "r", &m, NULL, 0) >= 1);
    assert_int_equal(f.sends, before + 1);
    assert_int_equal(f.last_slot, rc_keyslot("sse:room:r", 10));
    assert_memory_equal(f.last, "*3\r\n$7\r\nPUBLISH\r\n$10\r\nsse:room:r\r\n",
                        34);
    assert_int_equal(got, 1); /* local first */
    /* A message from Redis reaches the member. */
    rc_transport_message(
        a, "sse:room:r", 10,
        "{\"v\":1,\"m\":{\"event\":\"e\",\"data\":1},\"n\":\"o\"}", 42);
    assert_int_equal(got, 2);
    pay_all(&f);
    rc_adapter_free(a);
    pay_all(&f); /* the lease's release, sent while letting go */
}

static void sharded_publishes_spublish(void **state)
{
    fake f;
    rc_conn *c;
    int got = 0;
    rc_message m = RC_MESSAGE_INIT;
    rc_adapter *a;

    (void)state;
    memset(&f, 0, sizeof f);
    a = open_on(&f, 1, &c, &got);
    rc_transport_pub(a, 1);
    m.data = "1";
    m.data_len = 1;
    assert_true(rc_broadcast_to_room(a, "r", &m, NULL, 0) >= 1);
    assert_memory_equal(f.last, "*3\r\n$8\r\nSPUBLISH\r\n", 18);
    pay_all(&f);
    rc_adapter_free(a);
    pay_all(&f); /* the lease's release, sent while letting go */
}

static void lost_channel_subscribed_again(void **state)
{
    fake f;
    rc_conn *c;
    int got = 0;
    rc_counters k;
    rc_adapter *a;

    (void)state;
    memset(&f, 0, sizeof f);
    a = open_on(&f, 1, &c, &got);
    rc_transport_sub(a, 1);
    rc_transport_subscribed(a, "sse:room:r", 10);
    /* Redis dropped it (a slot moved): LOST, and asked for again. */
    rc_transport_unsubscribed(a, "sse:room:r", 10);
    assert_int_equal(f.events[RC_ROOM_LOST], 1);
    assert_int_equal(f.subs, 2);
    assert_int_equal(rc_room_is_ready(a, "r"), 0);
    rc_transport_subscribed(a, "sse:room:r", 10);
    assert_int_equal(f.events[RC_ROOM_READY], 2);
    rc_adapter_counters(a, &k, sizeof k);
    assert_int_equal(k.rooms_lost, 1);
    /* Lost while still asked for: asked again, no LOST (it was not ready). */
    rc_transport_unsubscribed(a, "sse:room:r", 10);
    rc_transport_unsubscribed(a, "sse:room:r", 10);
    assert_int_equal(f.events[RC_ROOM_LOST], 2);
    assert_int_equal(f.subs, 4);
    /* The last member leaves: UNSUBSCRIBE once confirmed. */
    rc_transport_subscribed(a, "sse:room:r", 10);
    assert_int_equal(rc_room_leave(c, "r"), 1);
    assert_int_equal(f.unsubs, 1);
    rc_transport_unsubscribed(a, "sse:room:r", 10);
    assert_int_equal(f.subs, 4);
    pay_all(&f);
    rc_adapter_free(a);
    pay_all(&f); /* the lease's release, sent while letting go */
}

static void sides_down_and_detach(void **state)
{
    fake f;
    rc_conn *c;
    int got = 0;
    rc_message m = RC_MESSAGE_INIT;
    rc_counters k;
    rc_adapter *a;

    (void)state;
    memset(&f, 0, sizeof f);
    a = open_on(&f, 0, &c, &got);
    rc_transport_sub(a, 1);
    rc_transport_subscribed(a, "sse:room:r", 10);
    rc_transport_sub(a, 0); /* every subscription gone */
    assert_int_equal(f.events[RC_ROOM_LOST], 1);
    assert_int_equal(rc_room_is_ready(a, "r"), 0);
    rc_transport_pub(a, 1);
    f.refuse = 1; /* the transport cannot take it: counted, local still */
    m.data = "2";
    m.data_len = 1;
    assert_true(rc_broadcast_to_room(a, "r", &m, NULL, 0) >= 1);
    assert_int_equal(got, 1);
    rc_adapter_counters(a, &k, sizeof k);
    assert_true(k.publish_errors >= 1);
    f.refuse = 0;
    /* Owed replies answered after the detach are taken and ignored. */
    assert_int_equal(rc_adapter_set_transport(a, NULL), 0);
    assert_int_equal(rc_adapter_set_transport(a, NULL), 0);
    pay_all(&f);
    assert_int_equal(rc_adapter_set_pub(a, NULL), 0); /* contexts again */
    rc_adapter_free(a);
}

static void bad_arguments(void **state)
{
    rc_transport t;
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "node-b");

    (void)state;
    memset(&t, 0, sizeof t);
    assert_int_equal(rc_adapter_set_transport(NULL, NULL), RC_EINVAL);
    assert_int_equal(rc_adapter_set_transport(a, &t), RC_EINVAL);
    rc_transport_pub(NULL, 1);
    rc_transport_message(a, "x", 1, "y", 1); /* no transport: ignored */
    assert_int_equal(rc_keyslot("foo", 3), 12182);
    rc_adapter_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subscribes_and_publishes),
        cmocka_unit_test(sharded_publishes_spublish),
        cmocka_unit_test(lost_channel_subscribed_again),
        cmocka_unit_test(sides_down_and_detach),
        cmocka_unit_test(bad_arguments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
