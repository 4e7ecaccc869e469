/* The hash map and the room registry: behaviour against a plain model,
 * removal during walks, allocation failures and allocator balance. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include "counting.h"

/* A small deterministic generator, so failures can be replayed. */
static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- map ------------------------------------------------------------- */

#define NKEYS 5000

static int count_item(void *item, void *arg)
{
    (void)item;
    ++*(size_t *)arg;
    return 0;
}

static void map_against_model(void **state)
{
    static char keys[NKEYS][16];
    static int present[NKEYS];
    counting cnt;
    rc__alloc a = counting_alloc(&cnt);
    rc__map m;
    size_t i, n = 0, seen = 0;
    long op;

    (void)state;
    rc__map_init(&m, &a, 42);
    for (i = 0; i < NKEYS; i++)
        snprintf(keys[i], sizeof keys[i], "room:%zu", i);
    for (op = 0; op < 200000; op++) {
        i = (size_t)(rng() % NKEYS);
        if (present[i]) {
            assert_ptr_equal(rc__map_del(&m, keys[i], strlen(keys[i])),
                             keys[i]);
            present[i] = 0;
            n--;
        } else {
            assert_null(rc__map_get(&m, keys[i], strlen(keys[i])));
            assert_int_equal(rc__map_put(&m, keys[i], strlen(keys[i]), keys[i]),
                             0);
            present[i] = 1;
            n++;
        }
        assert_int_equal(m.count, n);
    }
    for (i = 0; i < NKEYS; i++)
        assert_ptr_equal(rc__map_get(&m, keys[i], strlen(keys[i])),
                         present[i] ? keys[i] : NULL);
    rc__map_each(&m, count_item, &seen);
    assert_int_equal(seen, n);
    /* Emptying the map gives its table back. */
    for (i = 0; i < NKEYS; i++)
        if (present[i])
            rc__map_del(&m, keys[i], strlen(keys[i]));
    assert_int_equal(m.cap, 0);
    assert_int_equal(cnt.live, 0);
    rc__map_free(&m);
}

static void map_binary_keys_and_oom(void **state)
{
    counting cnt;
    rc__alloc a = counting_alloc(&cnt);
    rc__map m;
    static const char k1[] = "a\0b", k2[] = "a\0c";
    int one = 1, two = 2;

    (void)state;
    rc__map_init(&m, &a, 7);
    cnt.fail_at = 1;
    assert_int_equal(rc__map_put(&m, k1, 3, &one), RC_ENOMEM);
    assert_int_equal(m.count, 0);
    assert_int_equal(rc__map_put(&m, k1, 3, &one), 0);
    assert_int_equal(rc__map_put(&m, k2, 3, &two), 0);
    assert_ptr_equal(rc__map_get(&m, k1, 3), &one);
    assert_ptr_equal(rc__map_get(&m, k2, 3), &two);
    assert_null(rc__map_get(&m, k1, 1));
    assert_null(rc__map_del(&m, "zz", 2));
    rc__map_free(&m);
    assert_int_equal(cnt.live, 0);
}

static void uuid4_form(void **state)
{
    char a[37], b[37];
    int i;

    (void)state;
    assert_int_equal(rc__uuid4(a), 0);
    assert_int_equal(rc__uuid4(b), 0);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
}

/* ---- registry -------------------------------------------------------- */

static rc__conn *add(rc__registry *r, const char *id)
{
    rc__conn *c = NULL;

    assert_int_equal(rc__conn_add(r, id, strlen(id), sizeof *c, &c), 0);
    return c;
}

static rc__room *join(rc__registry *r, rc__conn *c, const char *room, int want)
{
    rc__room *out = NULL;

    assert_int_equal(rc__join(r, c, room, strlen(room), &out), want);
    return out;
}

/* "a,b,c": the rooms of a connection in join order. */
static void rooms_of(const rc__conn *c, char *buf, size_t size)
{
    const rc__member *m;

    buf[0] = '\0';
    for (m = c->first; m != NULL; m = m->conn_next) {
        strncat(buf, m->room->name, size - strlen(buf) - 1);
        if (m->conn_next != NULL)
            strncat(buf, ",", size - strlen(buf) - 1);
    }
}

static int collect(rc__member *m, void *arg)
{
    char *buf = arg;

    strcat(buf, m->conn->id);
    strcat(buf, " ");
    return 0;
}

static void room_left(rc__room *room, void *arg)
{
    strcat(arg, room->name);
    strcat(arg, " ");
}

static void registry_basics(void **state)
{
    counting cnt;
    rc__alloc a = counting_alloc(&cnt);
    rc__registry r;
    rc__conn *c1, *c2, *out;
    rc__room *lobby, *other;
    char buf[256];

    (void)state;
    rc__registry_init(&r, &a, 1, 0);
    c1 = add(&r, "c1");
    c2 = add(&r, "c2");
    assert_int_equal(rc__conn_add(&r, "c1", 2, sizeof *out, &out), RC_EEXIST);
    assert_ptr_equal(rc__conn_find(&r, "c2", 2), c2);
    assert_null(rc__conn_find(&r, "c3", 2));

    lobby = join(&r, c1, "lobby", 1);
    assert_ptr_equal(join(&r, c1, "lobby", 0), lobby); /* idempotent */
    join(&r, c2, "lobby", 1);
    other = join(&r, c1, "a:b:c", 1);
    join(&r, c1, "zed", 1);
    assert_int_equal(lobby->members, 2);
    assert_int_equal(c1->rooms, 3);
    rooms_of(c1, buf, sizeof buf);
    assert_string_equal(buf, "lobby,a:b:c,zed");
    assert_true(rc__is_member(&r, c2, lobby));
    assert_false(rc__is_member(&r, c2, other));
    assert_null(rc__room_find(&r, "nope", 4));

    /* Leaving a room one is not in changes nothing. */
    assert_int_equal(rc__leave(&r, c2, other), 0);
    assert_int_equal(other->members, 1);
    assert_int_equal(rc__leave(&r, c1, lobby), 1);
    assert_int_equal(rc__leave(&r, c1, lobby), 0);
    buf[0] = '\0';
    rc__room_walk(&r, lobby, collect, buf);
    assert_string_equal(buf, "c2 ");

    /* Leave-all reports the rooms in join order; emptied rooms stay until
     * dropped. */
    join(&r, c1, "lobby", 1);
    buf[0] = '\0';
    assert_int_equal(rc__leave_all(&r, c1, room_left, buf), 3);
    assert_string_equal(buf, "a:b:c zed lobby ");
    assert_int_equal(c1->rooms, 0);
    assert_ptr_equal(rc__room_find(&r, "zed", 3), rc__room_find(&r, "zed", 3));
    assert_int_equal(rc__room_find(&r, "zed", 3)->members, 0);
    rc__room_drop(&r, rc__room_find(&r, "zed", 3));
    assert_null(rc__room_find(&r, "zed", 3));

    rc__conn_remove(&r, c2, NULL, NULL);
    assert_null(rc__conn_find(&r, "c2", 2));
    assert_int_equal(lobby->members, 0);
    rc__registry_free(&r);
    assert_int_equal(cnt.live, 0);
}

/* What a walk's callback does to the registry, by member id. */
typedef struct walk_ctx {
    rc__registry *r;
    char seen[256];
    rc__conn *victim; /* removed when the walk reaches trigger */
    const char *trigger;
    int rejoin; /* trigger also rejoins the room */
} walk_ctx;

static int meddle(rc__member *m, void *arg)
{
    walk_ctx *w = arg;
    rc__room *room = m->room, *out;
    rc__conn *self = m->conn; /* m->conn is NULL once m is removed */

    strcat(w->seen, self->id);
    strcat(w->seen, " ");
    if (strcmp(self->id, w->trigger) != 0)
        return 0;
    if (w->victim != NULL)
        rc__conn_remove(w->r, w->victim, NULL, NULL);
    if (w->rejoin) {
        rc__leave(w->r, self, room);
        rc__join(w->r, self, room->name, room->name_len, &out);
    }
    return 0;
}

static void removal_during_walk(void **state)
{
    counting cnt;
    rc__alloc a = counting_alloc(&cnt);
    rc__registry r;
    rc__conn *c[5];
    rc__room *room = NULL;
    walk_ctx w;
    char id[8];
    int i;

    (void)state;
    rc__registry_init(&r, &a, 2, 0);
    for (i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "c%d", i);
        c[i] = add(&r, id);
        room = join(&r, c[i], "r", 1);
    }
    /* c1 removes c2, the next member: c2 is skipped, the walk goes on. */
    memset(&w, 0, sizeof w);
    w.r = &r;
    w.trigger = "c1";
    w.victim = c[2];
    rc__room_walk(&r, room, meddle, &w);
    assert_string_equal(w.seen, "c0 c1 c3 c4 ");
    /* c3 removes itself and c4, the last member the walk would visit. */
    memset(&w, 0, sizeof w);
    w.r = &r;
    w.trigger = "c3";
    w.victim = c[4];
    rc__room_walk(&r, room, meddle, &w);
    assert_string_equal(w.seen, "c0 c1 c3 ");
    /* c0 leaves and rejoins: it moves to the end, after the walk's stop. */
    memset(&w, 0, sizeof w);
    w.r = &r;
    w.trigger = "c0";
    w.rejoin = 1;
    rc__room_walk(&r, room, meddle, &w);
    assert_string_equal(w.seen, "c0 c1 c3 ");
    memset(&w, 0, sizeof w);
    w.r = &r;
    w.trigger = "none";
    rc__room_walk(&r, room, meddle, &w);
    assert_string_equal(w.seen, "c1 c3 c0 ");
    assert_int_equal(room->members, 3);
    rc__registry_free(&r);
    assert_int_equal(cnt.live, 0);
}

/* Random joins, leaves and removals, checked against a plain matrix. */
#define NCONN 200
#define NROOM 1000

static void churn_against_model(void **state)
{
    static unsigned char in[NCONN][NROOM];
    static rc__conn *conns[NCONN];
    static size_t members[NROOM];
    counting cnt;
    rc__alloc a = counting_alloc(&cnt);
    rc__registry r;
    rc__room *room;
    char name[32];
    long op;
    size_t ci, ri, k;

    (void)state;
    rc__registry_init(&r, &a, 3, 0);
    for (op = 0; op < 200000; op++) {
        ci = (size_t)(rng() % NCONN);
        ri = (size_t)(rng() % NROOM);
        snprintf(name, sizeof name, "c%zu", ci);
        if (conns[ci] == NULL)
            conns[ci] = add(&r, name);
        snprintf(name, sizeof name, "room:%zu", ri);
        if (rng() % 50 == 0) { /* remove the whole connection */
            rc__conn_remove(&r, conns[ci], NULL, NULL);
            conns[ci] = NULL;
            for (k = 0; k < NROOM; k++) {
                members[k] -= in[ci][k];
                in[ci][k] = 0;
            }
        } else if (in[ci][ri]) {
            room = rc__room_find(&r, name, strlen(name));
            assert_int_equal(rc__leave(&r, conns[ci], room), 1);
            in[ci][ri] = 0;
            members[ri]--;
        } else {
            join(&r, conns[ci], name, 1);
            in[ci][ri] = 1;
            members[ri]++;
        }
    }
    for (ri = 0; ri < NROOM; ri++) {
        snprintf(name, sizeof name, "room:%zu", ri);
        room = rc__room_find(&r, name, strlen(name));
        assert_int_equal(room ? room->members : 0, members[ri]);
        for (ci = 0; ci < NCONN && room != NULL; ci++)
            if (conns[ci] != NULL)
                assert_int_equal(rc__is_member(&r, conns[ci], room),
                                 in[ci][ri]);
    }
    rc__registry_free(&r);
    assert_int_equal(cnt.live, 0);
}

/* Every allocation of a scenario fails in turn: the call reports
 * RC_ENOMEM, the registry stays consistent, and nothing leaks. */
static void allocation_failures(void **state)
{
    counting cnt;
    rc__alloc a = counting_alloc(&cnt);
    rc__registry r;
    rc__conn *c1, *c2;
    rc__room *room;
    long k, total;
    int rv, failures = 0;

    (void)state;
    for (k = 1;; k++) {
        a = counting_alloc(&cnt);
        cnt.fail_at = k;
        rc__registry_init(&r, &a, 4, 0);
        c1 = c2 = NULL;
        rv = rc__conn_add(&r, "c1", 2, sizeof *c1, &c1);
        if (rv == 0)
            rv = rc__conn_add(&r, "c2", 2, sizeof *c2, &c2);
        if (rv == 0)
            rv = rc__join(&r, c1, "lobby", 5, &room) < 0 ? RC_ENOMEM : 0;
        if (rv == 0)
            rv = rc__join(&r, c2, "lobby", 5, &room) < 0 ? RC_ENOMEM : 0;
        if (rv == 0)
            rv = rc__join(&r, c2, "other", 5, &room) < 0 ? RC_ENOMEM : 0;
        total = cnt.calls;
        if (rv != 0) {
            assert_int_equal(rv, RC_ENOMEM);
            failures++;
        } else {
            assert_int_equal(rc__room_find(&r, "lobby", 5)->members, 2);
            assert_int_equal(c2->rooms, 2);
        }
        rc__registry_free(&r);
        assert_int_equal(cnt.live, 0);
        if (k > total)
            break;
    }
    assert_true(failures >= 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_against_model),
        cmocka_unit_test(map_binary_keys_and_oom),
        cmocka_unit_test(uuid4_form),
        cmocka_unit_test(registry_basics),
        cmocka_unit_test(removal_during_walk),
        cmocka_unit_test(churn_against_model),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
