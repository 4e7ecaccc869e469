/* The adapter without Redis: connections, rooms, queries, local broadcast,
 * re-entrancy from sinks, frames, counters, allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <roomcast/roomcast.h>

#include "counting.h"

/* What sinks saw, and what they should do. */
typedef struct seen {
    char log[1024]; /* "conn-id " per delivery */
    const rc_frame *frames[64];
    int n;
    const char *refuse; /* this conn's sink returns nonzero */
    const char *remove; /* this conn's sink removes the conn named here */
    int free_adapter;   /* a sink frees the adapter */
    rc_frame *kept;     /* a frame kept with rc_frame_ref */
} seen;

static int sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                void *user)
{
    seen *s = user;
    rc_adapter *a = rc_conn_adapter(conn);

    (void)msg;
    strcat(s->log, rc_conn_id(conn));
    strcat(s->log, " ");
    if (s->n < 64)
        s->frames[s->n] = frame;
    s->n++;
    if (s->kept == NULL)
        s->kept = rc_frame_ref(frame);
    if (s->remove != NULL && strcmp(rc_conn_id(conn), "c1") == 0)
        rc_conn_remove(rc_conn_find(a, s->remove));
    if (s->free_adapter)
        rc_adapter_free(a);
    return s->refuse != NULL && strcmp(s->refuse, rc_conn_id(conn)) == 0;
}

static rc_message message(const char *data)
{
    rc_message m = RC_MESSAGE_INIT;

    m.data = data;
    m.data_len = strlen(data);
    return m;
}

static rc_conn *conn(rc_adapter *a, const char *id, seen *s)
{
    rc_conn *c = NULL;

    assert_int_equal(rc_conn_add(a, id, sink, s, &c), 0);
    assert_ptr_equal(rc_conn_user(c), s);
    return c;
}

static void cleanup(seen *s)
{
    rc_frame_unref(s->kept);
    s->kept = NULL;
}

static void create_and_ids(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, NULL), *b = NULL;
    rc_conn *c = NULL, *d = NULL;
    seen s;

    (void)state;
    memset(&s, 0, sizeof s);
    assert_non_null(a);
    assert_int_equal(strlen(rc_adapter_node_id(a)), 36); /* a UUID */
    assert_null(rc_adapter_new(NULL, NULL, NULL, "bad\nid"));
    assert_int_equal(rc_adapter_open(NULL, NULL, NULL, NULL), RC_EINVAL);
    assert_int_equal(rc_adapter_open(NULL, NULL, NULL, &b), 0);
    assert_string_not_equal(rc_adapter_node_id(a), rc_adapter_node_id(b));
    rc_adapter_free(b);

    assert_int_equal(rc_conn_add(a, NULL, sink, &s, &c), 0);
    assert_int_equal(strlen(rc_conn_id(c)), 36);
    assert_ptr_equal(rc_conn_find(a, rc_conn_id(c)), c);
    assert_int_equal(rc_conn_add(a, rc_conn_id(c), sink, &s, &d), RC_EEXIST);
    assert_int_equal(rc_conn_add(a, "x\ry", sink, &s, &d), RC_ECHAR);
    assert_int_equal(rc_conn_add(a, "x", NULL, &s, &d), RC_EINVAL);
    assert_null(rc_conn_find(a, "nobody"));
    rc_conn_remove(c);
    rc_conn_remove(NULL);
    assert_null(rc_conn_find(a, "x"));
    rc_adapter_free(a);
    rc_adapter_free(NULL);
}

static void collect_room(const char *room, void *user)
{
    strcat(user, room);
    strcat(user, " ");
}

static void rooms_and_queries(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "n");
    rc_conn *c1, *c2, *members[4];
    const char *names[4];
    char buf[128] = "";
    seen s;

    (void)state;
    memset(&s, 0, sizeof s);
    c1 = conn(a, "c1", &s);
    c2 = conn(a, "c2", &s);
    assert_int_equal(rc_room_join(c1, "lobby"), 1);
    assert_int_equal(rc_room_join(c1, "lobby"), 0);
    assert_int_equal(rc_room_join(c2, "lobby"), 1);
    assert_int_equal(rc_room_join(c1, "a:b"), 1);
    assert_int_equal(rc_room_join(c1, "z"), 1);
    assert_int_equal(rc_room_size(a, "lobby"), 2);
    assert_true(rc_room_is_ready(a, "lobby")); /* local only: always */
    assert_false(rc_room_is_ready(a, "nowhere"));
    assert_int_equal(rc_room_members(a, "lobby", members, 4), 2);
    assert_ptr_equal(members[0], c1);
    assert_ptr_equal(members[1], c2);
    assert_int_equal(rc_conn_rooms(c1, names, 4), 3);
    assert_string_equal(names[1], "a:b");
    assert_int_equal(rc_conn_rooms(c1, NULL, 0), 3);
    assert_int_equal(rc_adapter_rooms(a, names, 4), 3);
    assert_true(rc_room_has(c2, "lobby"));
    assert_false(rc_room_has(c2, "z"));

    /* Unknown rooms and non-members: nothing changes, nothing fails. */
    assert_int_equal(rc_room_leave(c2, "z"), 0);
    assert_int_equal(rc_room_leave(c2, "nowhere"), 0);
    assert_int_equal(rc_room_size(a, "nowhere"), 0);
    assert_int_equal(rc_room_members(a, "nowhere", members, 4), 0);
    assert_int_equal(rc_room_size(a, "z"), 1);

    {
        const char *some[] = {"x", "lobby", "y", "x"}, *bad[] = {"q", NULL};
        const char *gone[] = {"x", "y", "x", "nowhere"};

        assert_int_equal(rc_room_join_list(c2, some, 4), 2); /* x, y */
        assert_int_equal(rc_room_join_list(c2, bad, 2), RC_EINVAL);
        assert_false(rc_room_has(c2, "q"));
        assert_int_equal(rc_room_leave_list(c2, gone, 4), 2);
        assert_int_equal(rc_room_size(a, "x"), 0);
        assert_int_equal(rc_room_join_list(c2, NULL, 0), 0);
        assert_int_equal(rc_room_join_list(NULL, some, 1), RC_EINVAL);
    }
    assert_int_equal(rc_room_leave_all(c1, collect_room, buf), 3);
    assert_string_equal(buf, "lobby a:b z ");
    assert_int_equal(rc_adapter_rooms(a, names, 4), 1);
    assert_string_equal(names[0], "lobby");
    rc_conn_remove(c2);
    assert_int_equal(rc_adapter_rooms(a, NULL, 0), 0);
    rc_adapter_free(a);
}

static void broadcast_locally(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "n");
    rc_message m = message("{\"t\":\"hi\"}");
    rc_counters k;
    char frame[64];
    size_t len;
    seen s;

    (void)state;
    memset(&s, 0, sizeof s);
    rc_room_join(conn(a, "c1", &s), "r");
    rc_room_join(conn(a, "c2", &s), "r");
    rc_room_join(conn(a, "c3", &s), "r");
    m.event = "chat";
    assert_int_equal(rc_broadcast_to_room(a, "r", &m, NULL, 0), 3);
    assert_string_equal(s.log, "c1 c2 c3 ");
    /* One frame, shared, with the bytes rc_sse_format gives. */
    assert_ptr_equal(s.frames[0], s.frames[2]);
    assert_int_equal(rc_sse_format(&m, frame, sizeof frame, &len), 0);
    assert_int_equal(rc_frame_size(s.kept), len);
    assert_memory_equal(rc_frame_data(s.kept), frame, len);

    /* except, refusing sinks, empty and unknown rooms */
    s.log[0] = '\0';
    s.refuse = "c3";
    assert_int_equal(rc_broadcast_to_room(a, "r", &m, "c1", RC_LOCAL_ONLY), 1);
    assert_string_equal(s.log, "c2 c3 ");
    assert_int_equal(rc_broadcast_to_room(a, "nowhere", &m, NULL, 0), 0);

    rc_adapter_counters(a, &k, sizeof k);
    assert_int_equal(k.delivered, 4);
    assert_int_equal(k.sink_errors, 1);
    assert_int_equal(k.published, 0);
    assert_int_equal(k.publish_errors, 0); /* local-only adapter */
    assert_int_equal(k.connections, 3);
    assert_int_equal(k.rooms, 1);
    assert_int_equal(k.memberships, 3);

    /* Invalid messages deliver nothing. */
    s.log[0] = '\0';
    m = message("{bad");
    assert_int_equal(rc_broadcast_to_room(a, "r", &m, NULL, 0), RC_EJSON);
    m = message("1");
    m.id = "a\nb";
    assert_int_equal(rc_broadcast_to_room(a, "r", &m, NULL, 0), RC_ECHAR);
    assert_int_equal(rc_broadcast_to_room(a, "r", NULL, NULL, 0), RC_EINVAL);
    assert_int_equal(rc_broadcast_to_room(a, NULL, &m, NULL, 0), RC_EINVAL);
    assert_string_equal(s.log, "");
    rc_adapter_free(a);
    /* A frame may outlive its adapter. */
    assert_memory_equal(rc_frame_data(s.kept), "event: chat\n", 12);
    cleanup(&s);
}

static int only_c2(rc_conn *c, const rc_message *msg, const char *meta,
                   size_t meta_len, void *user)
{
    (void)msg;
    (void)user;
    assert_int_equal(meta_len, 7); /* without the whitespace around it */
    assert_memory_equal(meta, "{\"k\":1}", 7);
    return strcmp(rc_conn_id(c), "c2") != 0;
}

static void multi_room_and_filter(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "n");
    const char *rooms[] = {"r1", "r2", "r3"};
    rc_broadcast_options o;
    rc_message m = message("1");
    rc_conn *c1;
    seen s;

    (void)state;
    memset(&s, 0, sizeof s);
    memset(&o, 0, sizeof o);
    c1 = conn(a, "c1", &s);
    rc_room_join(c1, "r1");
    rc_room_join(c1, "r2");
    rc_room_join(conn(a, "c2", &s), "r2");
    /* c1 is in two target rooms and receives the message once. */
    assert_int_equal(rc_broadcast(a, rooms, 3, &m, NULL), 2);
    assert_string_equal(s.log, "c1 c2 ");
    s.log[0] = '\0';
    assert_int_equal(rc_broadcast(a, rooms, 3, &m, NULL), 2);
    assert_string_equal(s.log, "c1 c2 ");

    s.log[0] = '\0';
    rc_adapter_set_filter(a, only_c2, NULL);
    o.meta = " {\"k\":1} ";
    o.meta_len = strlen(o.meta);
    assert_int_equal(rc_broadcast(a, rooms, 3, &m, &o), 1);
    assert_string_equal(s.log, "c2 ");
    o.meta = "{";
    o.meta_len = 1;
    assert_int_equal(rc_broadcast(a, rooms, 3, &m, &o), RC_EJSON);
    rc_adapter_set_filter(a, NULL, NULL);
    rc_adapter_free(a);
    cleanup(&s);
}

static void removal_from_inside_sinks(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "n");
    rc_message m = message("1");
    seen s;

    (void)state;
    memset(&s, 0, sizeof s);
    rc_room_join(conn(a, "c0", &s), "r");
    rc_room_join(conn(a, "c1", &s), "r");
    rc_room_join(conn(a, "c2", &s), "r");
    rc_room_join(conn(a, "c3", &s), "r");
    /* c1's sink removes c2: c2 is never called again. */
    s.remove = "c2";
    assert_int_equal(rc_broadcast_to_room(a, "r", &m, NULL, 0), 3);
    assert_string_equal(s.log, "c0 c1 c3 ");
    /* c1's sink removes c1 itself. */
    s.log[0] = '\0';
    s.remove = "c1";
    assert_int_equal(rc_broadcast_to_room(a, "r", &m, NULL, 0), 3);
    assert_string_equal(s.log, "c0 c1 c3 ");
    assert_null(rc_conn_find(a, "c1"));
    assert_int_equal(rc_room_size(a, "r"), 2);
    /* A sink frees the adapter: no other sink runs; memory goes at the end
     * of the broadcast (ASan would see a use after free). */
    s.log[0] = '\0';
    s.remove = NULL;
    s.free_adapter = 1;
    rc_broadcast_to_room(a, "r", &m, NULL, 0);
    assert_string_equal(s.log, "c0 ");
    cleanup(&s);
}

/* A sink that broadcasts, once, to rooms "x" and "y" from inside. */
static int nested_count;

static int nesting_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                        void *user)
{
    static const char *inner[] = {"x", "y"};
    seen *s = user;

    (void)frame;
    strcat(s->log, rc_conn_id(conn));
    strcat(s->log, " ");
    if (nested_count++ == 0)
        rc_broadcast(rc_conn_adapter(conn), inner, 2, msg, NULL);
    return 0;
}

static void broadcast_from_inside_a_sink(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "n");
    const char *outer[] = {"a", "b"};
    rc_message m = message("1");
    rc_conn *c0 = NULL, *c1 = NULL;
    seen s;

    (void)state;
    memset(&s, 0, sizeof s);
    nested_count = 0;
    assert_int_equal(rc_conn_add(a, "c0", nesting_sink, &s, &c0), 0);
    assert_int_equal(rc_conn_add(a, "c1", nesting_sink, &s, &c1), 0);
    rc_room_join(c0, "a");
    rc_room_join(c0, "b");
    rc_room_join(c1, "a");
    rc_room_join(c1, "b");
    rc_room_join(c0, "x");
    rc_room_join(c0, "y");
    /* Outer: c0 (which broadcasts to x and y: c0 once), then c1. Each
     * broadcast reaches each connection once. */
    assert_int_equal(rc_broadcast(a, outer, 2, &m, NULL), 2);
    assert_string_equal(s.log, "c0 c0 c1 ");
    rc_adapter_free(a);
}

/* ---- allocation failures --------------------------------------------- */

/* One scenario; returns the first error, or 0. */
static int scenario(counting *cnt, seen *s)
{
    long fail_at = cnt->fail_at;
    rc_alloc al = counting_alloc(cnt); /* resets the counters */
    rc_adapter_options o;
    rc_message m = message("[1,2]");
    rc_adapter *a = NULL;
    rc_conn *c1 = NULL, *c2 = NULL;
    int rv;

    cnt->fail_at = fail_at;
    memset(&o, 0, sizeof o);
    o.alloc = &al;
    o.node_id = "n";
    rv = rc_adapter_open(&o, NULL, NULL, &a);
    if (rv == 0)
        rv = rc_conn_add(a, "c1", sink, s, &c1);
    if (rv == 0)
        rv = rc_conn_add(a, NULL, sink, s, &c2);
    if (rv == 0)
        rv = rc_room_join(c1, "r") < 0 ? RC_ENOMEM : 0;
    if (rv == 0)
        rv = rc_room_join(c2, "r") < 0 ? RC_ENOMEM : 0;
    if (rv == 0)
        rv = rc_broadcast_to_room(a, "r", &m, NULL, 0) < 0 ? RC_ENOMEM : 0;
    if (rv == 0 && rc_room_size(a, "r") != 2)
        rv = -100;
    rc_adapter_free(a);
    cleanup(s);
    return rv;
}

static void allocation_failures(void **state)
{
    counting cnt;
    seen s;
    long k, total;
    int rv, failed = 0;

    (void)state;
    for (k = 1;; k++) {
        memset(&cnt, 0, sizeof cnt);
        memset(&s, 0, sizeof s);
        cnt.fail_at = k;
        rv = scenario(&cnt, &s);
        total = cnt.calls;
        if (rv != 0) {
            assert_int_equal(rv, RC_ENOMEM);
            failed++;
        }
        assert_int_equal(cnt.live, 0);
        if (k > total)
            break;
    }
    assert_true(failed >= 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_and_ids),
        cmocka_unit_test(rooms_and_queries),
        cmocka_unit_test(broadcast_locally),
        cmocka_unit_test(multi_room_and_filter),
        cmocka_unit_test(removal_from_inside_sinks),
        cmocka_unit_test(broadcast_from_inside_a_sink),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
