/* Cluster key slots: rc__keyslot against what CLUSTER KEYSLOT of Redis
 * 7.0.15 answered for the same keys (hash tags, empty tags, unclosed
 * braces, a non-ASCII byte). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

static void slots_match_redis(void **state)
{
    static const struct {
        const char *key;
        unsigned slot;
    } v[] = {
        {"foo", 12182},
        {"bar", 5061},
        {"{user1000}.following", 3443},
        {"sse:room:lobby", 15902},
        {"a{}b", 13694}, /* empty tag: the whole key */
        {"{}{x}", 3257}, /* the first '{' counts, its tag is empty */
        {"x{y", 2740},   /* no '}': the whole key */
        {"", 0},
        {"sse:room:{t}x", 15891},
        {"\xc3\xa9", 10180},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(rc__keyslot(v[i].key, strlen(v[i].key)), v[i].slot);
}

static void tag_decides(void **state)
{
    (void)state;
    assert_int_equal(rc__keyslot("rc:{sse:room:lobby}:pa", 22),
                     rc__keyslot("sse:room:lobby", 14));
}

/* Every script declares its flags (#!lua): only then does Redis hold it to
 * the keys of one slot (lua.h), on a cluster of one node as on any; the
 * cluster-mode tests (RC_TEST_REDIS_CLUSTER=1) prove nothing without. */
static void scripts_declare_flags(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < RC__SCRIPTS; i++)
        if (strncmp(rc__lua[i], "#!lua\n", 6) != 0)
            fail_msg("script %d does not start with #!lua", i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slots_match_redis),
        cmocka_unit_test(tag_decides),
        cmocka_unit_test(scripts_declare_flags),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
