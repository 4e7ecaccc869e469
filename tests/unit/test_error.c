/* Error codes, their texts and names, and the version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <roomcast/roomcast.h>

static void every_code_has_text_and_name(void **state)
{
    static const int codes[] = {
#define RC_CODE_(name, value, text) RC_##name,
        RC_ERRNO_MAP(RC_CODE_)
#undef RC_CODE_
    };
    size_t i, j;

    (void)state;
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(rc_strerror(codes[i]), "unknown error");
        assert_string_not_equal(rc_err_name(codes[i]), "EUNKNOWN");
        for (j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(rc_strerror(codes[i]),
                                    rc_strerror(codes[j]));
        }
    }
    assert_string_equal(rc_err_name(RC_EJSON), "EJSON");
    assert_string_equal(rc_strerror(RC_EINVAL), "invalid argument");
}

static void unknown_codes(void **state)
{
    (void)state;
    assert_string_equal(rc_strerror(0), "unknown error");
    assert_string_equal(rc_strerror(-9999), "unknown error");
    assert_string_equal(rc_strerror(12), "unknown error");
    assert_string_equal(rc_err_name(-9999), "EUNKNOWN");
}

static void version_matches_macros(void **state)
{
    char buf[32];

    (void)state;
    assert_int_equal(rc_version(), ROOMCAST_VERSION_HEX);
    assert_string_equal(rc_version_string(), ROOMCAST_VERSION_STRING);
    snprintf(buf, sizeof buf, "%d.%d.%d", ROOMCAST_VERSION_MAJOR,
             ROOMCAST_VERSION_MINOR, ROOMCAST_VERSION_PATCH);
    assert_string_equal(buf, ROOMCAST_VERSION_STRING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_text_and_name),
        cmocka_unit_test(unknown_codes),
        cmocka_unit_test(version_matches_macros),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
