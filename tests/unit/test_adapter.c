/* The adapter without Redis: connections, rooms, queries, local broadcast,
 * re-entrancy from sinks, frames, counters, allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <limits.h>
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

/* ---- callbacks that call back in -------------------------------------- */

/* The header allows any rc_ call from inside a callback. Each test below
 * has one callback path (leave_all, filter, sink) remove a connection,
 * leave rooms or free the adapter, with its allocations counted; ASan
 * reports any use after free. */
typedef struct host {
    counting cnt;
    rc_alloc al;
    rc_adapter *a;
    int calls;                   /* calls of the acting callback so far */
    int act_at;                  /* it acts on this call (1-based) */
    void (*act)(struct host *h); /* what it does then */
    const char *target;          /* the connection act works on */
    int result;                  /* what act's rc_ call returned */
    char log[256];               /* sinks: "conn-id " per delivery */
    char rooms[256];             /* leave_all callbacks: "room " per call */
} host;

static void host_open(host *h)
{
    rc_adapter_options o;

    memset(h, 0, sizeof *h);
    h->al = counting_alloc(&h->cnt);
    memset(&o, 0, sizeof o);
    o.alloc = &h->al;
    o.node_id = "n";
    assert_int_equal(rc_adapter_open(&o, NULL, NULL, &h->a), 0);
}

/* Everything the adapter allocated came back. */
static void host_done(host *h)
{
    assert_int_equal(h->cnt.live, 0);
}

static void act_remove(host *h)
{
    rc_conn_remove(rc_conn_find(h->a, h->target));
}

static void act_free(host *h)
{
    rc_adapter_free(h->a);
}

static void log_room(const char *room, void *user)
{
    host *h = user;

    strcat(h->rooms, room);
    strcat(h->rooms, " ");
}

static void act_leave_all(host *h)
{
    h->result = rc_room_leave_all(rc_conn_find(h->a, h->target), log_room, h);
}

static void step(host *h)
{
    if (++h->calls == h->act_at)
        h->act(h);
}

static int log_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                    void *user)
{
    host *h = user;

    (void)frame;
    (void)msg;
    strcat(h->log, rc_conn_id(conn));
    strcat(h->log, " ");
    return 0;
}

static int acting_sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                       void *user)
{
    log_sink(conn, frame, msg, user);
    step(user);
    return 0;
}

static int acting_filter(rc_conn *conn, const rc_message *msg, const char *meta,
                         size_t meta_len, void *user)
{
    (void)conn;
    (void)msg;
    (void)meta;
    (void)meta_len;
    step(user);
    return 0; /* deliver */
}

static void acting_leave_cb(const char *room, void *user)
{
    log_room(room, user);
    step(user);
}

/* Add connection id, with sink fn, to the space-separated rooms. */
static rc_conn *add(host *h, const char *id, rc_sink_cb fn, const char *rooms)
{
    char room[16];
    rc_conn *c = NULL;
    size_t n;

    assert_int_equal(rc_conn_add(h->a, id, fn, h, &c), 0);
    for (; *rooms != '\0'; rooms += n + (rooms[n] == ' ')) {
        n = strcspn(rooms, " ");
        assert_true(n > 0 && n < sizeof room);
        memcpy(room, rooms, n);
        room[n] = '\0';
        assert_int_equal(rc_room_join(c, room), 1);
    }
    return c;
}

static const char *const first_rooms[] = {"", "r1 ", "r1 r2 ", "r1 r2 r3 "};

/* The callback of rc_room_leave_all removes the connection being walked,
 * after its first, second or last room. */
static void t_leave_all_callback_removes_its_conn(void **state)
{
    rc_conn *c1;
    host h;
    int at;

    (void)state;
    for (at = 1; at <= 3; at++) {
        host_open(&h);
        c1 = add(&h, "c1", log_sink, "r1 r2 r3");
        add(&h, "c2", log_sink, "r2");
        h.act = act_remove;
        h.act_at = at;
        h.target = "c1";
        /* The rooms the removal took are not reported by this call. */
        assert_int_equal(rc_room_leave_all(c1, acting_leave_cb, &h), at);
        assert_string_equal(h.rooms, first_rooms[at]);
        assert_null(rc_conn_find(h.a, "c1"));
        assert_int_equal(rc_room_size(h.a, "r1"), 0);
        assert_int_equal(rc_room_size(h.a, "r2"), 1);
        assert_int_equal(rc_room_size(h.a, "r3"), 0);
        assert_int_equal(rc_adapter_rooms(h.a, NULL, 0), 1);
        rc_adapter_free(h.a);
        host_done(&h);
    }
}

/* The callback of rc_room_leave_all frees the adapter: it is not called
 * again, and the adapter's memory is gone when the call returns. */
static void t_leave_all_callback_frees_adapter(void **state)
{
    rc_conn *c1;
    host h;
    int at;

    (void)state;
    for (at = 1; at <= 3; at++) {
        host_open(&h);
        c1 = add(&h, "c1", log_sink, "r1 r2 r3");
        add(&h, "c2", log_sink, "r4");
        h.act = act_free;
        h.act_at = at;
        assert_int_equal(rc_room_leave_all(c1, acting_leave_cb, &h), at);
        assert_string_equal(h.rooms, first_rooms[at]);
        assert_int_equal(h.calls, at);
        host_done(&h);
    }
}

/* A filter removes the connection it is asked about and says "deliver":
 * that connection's sink is not called; the others' are. */
static void t_filter_removes_its_conn(void **state)
{
    rc_message m = message("1");
    rc_counters k;
    host h;

    (void)state;
    host_open(&h);
    add(&h, "c1", log_sink, "r");
    add(&h, "c2", log_sink, "r");
    add(&h, "c3", log_sink, "r");
    rc_adapter_set_filter(h.a, acting_filter, &h);
    h.act = act_remove;
    h.act_at = 2;
    h.target = "c2";
    assert_int_equal(rc_broadcast_to_room(h.a, "r", &m, NULL, 0), 2);
    assert_string_equal(h.log, "c1 c3 ");
    assert_int_equal(h.calls, 3);
    assert_null(rc_conn_find(h.a, "c2"));
    assert_int_equal(rc_room_size(h.a, "r"), 2);
    rc_adapter_counters(h.a, &k, sizeof k);
    assert_int_equal(k.delivered, 2);
    assert_int_equal(k.sink_errors, 0);
    rc_adapter_free(h.a);
    host_done(&h);
}

/* A filter frees the adapter and says "deliver": no sink runs after. */
static void t_filter_frees_adapter(void **state)
{
    rc_message m = message("1");
    host h;

    (void)state;
    host_open(&h);
    add(&h, "c1", log_sink, "r");
    add(&h, "c2", log_sink, "r");
    add(&h, "c3", log_sink, "r");
    rc_adapter_set_filter(h.a, acting_filter, &h);
    h.act = act_free;
    h.act_at = 2;
    assert_int_equal(rc_broadcast_to_room(h.a, "r", &m, NULL, 0), 1);
    assert_string_equal(h.log, "c1 ");
    assert_int_equal(h.calls, 2);
    host_done(&h);
}

/* A sink frees the adapter in the middle of a broadcast to three rooms. */
static void t_sink_frees_adapter_multi_room(void **state)
{
    const char *rooms[] = {"r1", "r2", "r3"};
    rc_message m = message("1");
    host h;

    (void)state;
    host_open(&h);
    add(&h, "c1", acting_sink, "r1 r2");
    add(&h, "c2", acting_sink, "r2 r3");
    add(&h, "c3", acting_sink, "r3");
    h.act = act_free;
    h.act_at = 2;
    assert_int_equal(rc_broadcast(h.a, rooms, 3, &m, NULL), 2);
    assert_string_equal(h.log, "c1 c2 ");
    host_done(&h);
}

/* A sink makes another connection, not yet delivered to, leave all its
 * rooms, among them the one being walked and one walked next. */
static void t_sink_leaves_all_for_another(void **state)
{
    const char *rooms[] = {"r1", "r2"};
    rc_message m = message("1");
    host h;

    (void)state;
    host_open(&h);
    add(&h, "c1", acting_sink, "r1");
    add(&h, "c2", acting_sink, "r1 r2 r3");
    add(&h, "c3", acting_sink, "r1");
    add(&h, "c4", acting_sink, "r2");
    h.act = act_leave_all;
    h.act_at = 1;
    h.target = "c2";
    assert_int_equal(rc_broadcast(h.a, rooms, 2, &m, NULL), 3);
    assert_string_equal(h.log, "c1 c3 c4 ");
    assert_int_equal(h.result, 3);
    assert_string_equal(h.rooms, "r1 r2 r3 ");
    assert_int_equal(rc_room_size(h.a, "r1"), 2);
    assert_int_equal(rc_room_size(h.a, "r2"), 1);
    assert_int_equal(rc_room_size(h.a, "r3"), 0);
    assert_int_equal(rc_conn_rooms(rc_conn_find(h.a, "c2"), NULL, 0), 0);
    rc_adapter_free(h.a);
    host_done(&h);
}

/* The callback of rc_room_leave_all empties the room just left, which
 * still had another member: by removing that member (the room must go
 * once, and the gauges stay right), or by freeing the adapter. */
static void t_leave_all_callback_empties_shared_room(void **state)
{
    rc_counters k;
    rc_conn *c1;
    host h;
    int at;

    (void)state;
    host_open(&h);
    c1 = add(&h, "c1", log_sink, "r1 r2 r3");
    add(&h, "c2", log_sink, "r1");
    h.act = act_remove;
    h.act_at = 1;
    h.target = "c2";
    assert_int_equal(rc_room_leave_all(c1, acting_leave_cb, &h), 3);
    assert_string_equal(h.rooms, "r1 r2 r3 ");
    assert_null(rc_conn_find(h.a, "c2"));
    assert_int_equal(rc_adapter_rooms(h.a, NULL, 0), 0);
    rc_adapter_counters(h.a, &k, sizeof k);
    assert_int_equal(k.rooms, 0);
    assert_int_equal(k.memberships, 0);
    assert_int_equal(k.connections, 1);
    rc_adapter_free(h.a);
    host_done(&h);

    for (at = 1; at <= 3; at++) {
        host_open(&h);
        c1 = add(&h, "c1", log_sink, "r1 r2 r3");
        add(&h, "c2", log_sink, "r1 r2 r3");
        h.act = act_free;
        h.act_at = at;
        assert_int_equal(rc_room_leave_all(c1, acting_leave_cb, &h), at);
        assert_string_equal(h.rooms, first_rooms[at]);
        host_done(&h);
    }
}

/* ---- arguments --------------------------------------------------------- */

/* A de-dup window over 4096 ids per connection is refused. */
static void t_dedup_window_bounds(void **state)
{
    rc_adapter_options o;
    rc_adapter *a = NULL;
    rc_conn *c = NULL;
    seen s;

    (void)state;
    memset(&s, 0, sizeof s);
    memset(&o, 0, sizeof o);
    o.node_id = "n";
    o.dedup_window = 4097;
    assert_int_equal(rc_adapter_open(&o, NULL, NULL, &a), RC_EINVAL);
    assert_null(a);
    o.dedup_window = UINT_MAX;
    assert_int_equal(rc_adapter_open(&o, NULL, NULL, &a), RC_EINVAL);
    assert_null(a);
    o.dedup_window = 4096;
    assert_int_equal(rc_adapter_open(&o, NULL, NULL, &a), 0);
    assert_int_equal(rc_conn_add(a, "c1", sink, &s, &c), 0);
    assert_int_equal(rc_room_join(c, "r"), 1);
    rc_adapter_free(a);
}

static void room_event(rc_adapter *a, const char *room, int event, void *user)
{
    (void)a;
    (void)room;
    (void)event;
    (void)user;
    fail();
}

/* The setters ignore a NULL adapter; counters of none are zeros. */
static void t_null_adapter_setters_and_counters(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "n");
    rc_counters k, zero;
    int canary = 0x5a;

    (void)state;
    rc_adapter_set_filter(NULL, only_c2, &canary);
    rc_adapter_set_room_cb(NULL, room_event, &canary);
    rc_adapter_set_filter(NULL, NULL, NULL);
    rc_adapter_set_room_cb(NULL, NULL, NULL);

    memset(&zero, 0, sizeof zero);
    memset(&k, 0xab, sizeof k);
    rc_adapter_counters(NULL, &k, sizeof k);
    assert_memory_equal(&k, &zero, sizeof k);
    /* Only size bytes are written. */
    memset(&k, 0xab, sizeof k);
    rc_adapter_counters(NULL, &k, sizeof k.published);
    assert_int_equal(k.published, 0);
    assert_int_equal(k.publish_errors, 0xababababababababULL);
    /* Nowhere to write: nothing happens. */
    rc_adapter_counters(NULL, NULL, sizeof k);
    rc_adapter_counters(a, NULL, sizeof k);
    rc_adapter_free(a);
}

/* ---- allocation failures --------------------------------------------- */

/* Whether the allocation made to fail was one of the calls made since
 * cnt->calls was before. */
static int failed_since(const counting *cnt, long before)
{
    return cnt->fail_at > before && cnt->fail_at <= cnt->calls;
}

/* Run call and check what it returns, exactly: RC_ENOMEM if the failed
 * allocation was its own (the scenario ends there), want otherwise. */
#define STEP(call, want)                                                       \
    do {                                                                       \
        long before_ = cnt->calls;                                             \
        int rv_ = (call);                                                      \
        if (failed_since(cnt, before_)) {                                      \
            assert_int_equal(rv_, RC_ENOMEM);                                  \
            goto done;                                                         \
        }                                                                      \
        assert_int_equal(rv_, (want));                                         \
    } while (0)

/* One scenario on a local adapter: open, connections (one with a random
 * id), joins, broadcasts to one room and to several, a leave. Returns
 * whether it ran to the end. */
static int scenario(counting *cnt, seen *s)
{
    static const char *const some[] = {"x", "y"}, *all[] = {"r", "x", "y"};
    long fail_at = cnt->fail_at;
    rc_alloc al = counting_alloc(cnt); /* resets the counters */
    rc_adapter_options o;
    rc_broadcast_options bo;
    rc_message m = message("[1,2]");
    rc_adapter *a = NULL;
    rc_conn *c1 = NULL, *c2 = NULL;
    int end = 0;

    cnt->fail_at = fail_at;
    memset(&o, 0, sizeof o);
    memset(&bo, 0, sizeof bo);
    o.alloc = &al;
    o.node_id = "n";
    bo.meta = "{\"k\":1}";
    bo.meta_len = strlen(bo.meta);
    m.event = "e";
    STEP(rc_adapter_open(&o, NULL, NULL, &a), 0);
    STEP(rc_conn_add(a, "c1", sink, s, &c1), 0);
    STEP(rc_conn_add(a, NULL, sink, s, &c2), 0);
    STEP(rc_room_join(c1, "r"), 1);
    STEP(rc_room_join(c2, "r"), 1);
    STEP(rc_room_join_list(c2, some, 2), 2);
    STEP(rc_broadcast_to_room(a, "r", &m, NULL, 0), 2);
    STEP(rc_broadcast(a, all, 3, &m, &bo), 2);
    STEP(rc_room_leave(c2, "x"), 1);
    STEP(rc_room_leave_all(c2, NULL, NULL), 2);
    assert_int_equal(rc_room_size(a, "r"), 1);
    assert_int_equal(rc_adapter_rooms(a, NULL, 0), 1);
    end = 1;
done:
    /* Whatever failed left the adapter consistent: every room it lists
     * has members. */
    if (a != NULL) {
        const char *names[4];
        size_t i, n = rc_adapter_rooms(a, names, 4);

        for (i = 0; i < n && i < 4; i++)
            assert_true(rc_room_size(a, names[i]) > 0);
    }
    rc_adapter_free(a);
    cleanup(s);
    return end;
}

/* Fail allocation k of the scenario, for every k: the call that made it
 * returns RC_ENOMEM, every earlier call its usual result, and everything
 * allocated comes back. */
static void allocation_failures(void **state)
{
    counting cnt;
    seen s;
    long k;
    int ran, failed = 0;

    (void)state;
    for (k = 1; k < 10000; k++) {
        memset(&cnt, 0, sizeof cnt);
        memset(&s, 0, sizeof s);
        cnt.fail_at = k;
        ran = scenario(&cnt, &s);
        assert_int_equal(cnt.live, 0);
        if (ran)
            break; /* k is beyond the scenario's last allocation */
        failed++;
    }
    /* Each of the scenario's allocations, and nothing else, stopped it. */
    assert_true(cnt.calls >= 10);
    assert_int_equal(cnt.calls, k - 1);
    assert_int_equal(failed, k - 1);
}

/* An optional argument runs only the tests whose names match it. */
/* Presence without Redis: the same frames, kept in memory; leaves come
 * at the tick after the grace (host time), or the next one for
 * rc_room_leave_now; a return within the grace is silent. */
typedef struct plog {
    char log[2048]; /* "conn:event:data\n" per presence frame */
} plog;

static int psink(rc_conn *c, rc_frame *f, const rc_message *m, void *user)
{
    plog *p = user;
    char line[256];

    (void)f;
    if (m->event != NULL && strncmp(m->event, "rc:", 3) == 0) {
        snprintf(line, sizeof line, "%s:%s:%.*s\n", rc_conn_id(c), m->event,
                 (int)m->data_len, m->data);
        strcat(p->log, line);
    }
    return 0;
}

static rc_conn *pconn(rc_adapter *a, const char *id, const char *user, plog *p)
{
    rc_conn *c = NULL;

    assert_int_equal(rc_conn_add(a, id, psink, p, &c), 0);
    if (user != NULL)
        assert_int_equal(rc_conn_set_user(c, user, NULL, 0), 0);
    assert_int_equal(rc_room_join(c, "r"), 1);
    return c;
}

static void t_local_presence(void **state)
{
    rc_adapter *a = rc_adapter_new(NULL, NULL, NULL, "n");
    rc_presence_options po;
    plog p;
    rc_conn *obs, *ada, *ada2;

    (void)state;
    memset(&po, 0, sizeof po);
    po.grace_ms = 100;
    memset(&p, 0, sizeof p);
    assert_non_null(a);
    assert_int_equal(rc_adapter_set_presence(a, &po, sizeof po), 0);
    rc_adapter_tick(a, 1000);
    obs = pconn(a, "o", NULL, &p);
    ada = pconn(a, "a1", "ada", &p);
    assert_string_equal(p.log, "o:rc:presence:{\"room\":\"r\",\"users\":[]}\n"
                               "o:rc:join:{\"user\":\"ada\"}\n"
                               "a1:rc:presence:{\"room\":\"r\",\"users\":"
                               "[{\"user\":\"ada\",\"connections\":1}]}\n");
    /* Gone and back within the grace: nothing. */
    p.log[0] = '\0';
    rc_conn_remove(ada);
    rc_adapter_tick(a, 1050);
    ada2 = pconn(a, "a2", "ada", &p);
    rc_adapter_tick(a, 1300);
    assert_string_equal(p.log, "a2:rc:presence:{\"room\":\"r\",\"users\":"
                               "[{\"user\":\"ada\",\"connections\":1}]}\n");
    /* Gone for good: one leave at the tick after the grace. */
    p.log[0] = '\0';
    rc_conn_remove(ada2);
    rc_adapter_tick(a, 1350);
    assert_string_equal(p.log, "");
    rc_adapter_tick(a, 1401);
    assert_string_equal(p.log,
                        "o:rc:leave:{\"user\":\"ada\",\"reason\":\"left\"}\n");
    /* An explicit leave: at the next tick. */
    p.log[0] = '\0';
    ada = pconn(a, "a3", "ada", &p);
    assert_int_equal(rc_room_leave_now(ada, "r"), 1);
    rc_adapter_tick(a, 1402);
    assert_non_null(strstr(p.log, "o:rc:leave:{\"user\":\"ada\""));
    (void)obs;
    rc_adapter_free(a);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_and_ids),
        cmocka_unit_test(t_local_presence),
        cmocka_unit_test(rooms_and_queries),
        cmocka_unit_test(broadcast_locally),
        cmocka_unit_test(multi_room_and_filter),
        cmocka_unit_test(removal_from_inside_sinks),
        cmocka_unit_test(broadcast_from_inside_a_sink),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(t_leave_all_callback_removes_its_conn),
        cmocka_unit_test(t_leave_all_callback_frees_adapter),
        cmocka_unit_test(t_filter_removes_its_conn),
        cmocka_unit_test(t_filter_frees_adapter),
        cmocka_unit_test(t_sink_frees_adapter_multi_room),
        cmocka_unit_test(t_sink_leaves_all_for_another),
        cmocka_unit_test(t_dedup_window_bounds),
        cmocka_unit_test(t_null_adapter_setters_and_counters),
        /* Last: fails until rooms emptied from inside leave_all's
         * callback are dropped once (room.c left_one). */
        cmocka_unit_test(t_leave_all_callback_empties_shared_room),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
