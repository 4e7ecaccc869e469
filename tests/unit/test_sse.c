/* SSE framing: field order, omissions, line splitting, errors, sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <roomcast/roomcast.h>

static rc_message message(const char *data)
{
    rc_message m = RC_MESSAGE_INIT;

    m.data = data;
    m.data_len = strlen(data);
    return m;
}

/* Format m and compare with want; on error return the code. */
static int format_is(const rc_message *m, const char *want)
{
    char buf[512];
    size_t len = 0;
    int rv = rc_sse_format(m, buf, sizeof buf, &len);

    if (rv != 0)
        return rv;
    if (len != strlen(want) || memcmp(buf, want, len) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)len, buf, want);
    return 0;
}

static void field_order_and_omissions(void **state)
{
    rc_message m = message("{\"text\":\"hi\"}");

    (void)state;
    assert_int_equal(format_is(&m, "data: {\"text\":\"hi\"}\n\n"), 0);
    m.event = "chat";
    m.id = "42";
    m.retry = 2500;
    assert_int_equal(format_is(&m, "id: 42\nevent: chat\ndata: "
                                   "{\"text\":\"hi\"}\nretry: 2500\n\n"),
                     0);
    /* As the reference: empty id and event and a retry of 0 are left out. */
    m.event = "";
    m.id = "";
    m.retry = 0;
    assert_int_equal(format_is(&m, "data: {\"text\":\"hi\"}\n\n"), 0);
    m.retry = RC_RETRY_MAX;
    assert_int_equal(
        format_is(&m, "data: {\"text\":\"hi\"}\nretry: 9007199254740991\n\n"),
        0);
}

static void values_written_as_given(void **state)
{
    rc_message m = message("\"x\"");

    (void)state;
    m.event = " lead: colon\t";
    m.id = "\xc3\xa9:1";
    assert_int_equal(format_is(&m, "id: \xc3\xa9:1\nevent:  lead: colon\t\n"
                                   "data: \"x\"\n\n"),
                     0);
}

static void data_split_on_every_line_break(void **state)
{
    rc_message m = message("[1,\n2,\r\n3,\r4,\n\n5]");

    (void)state;
    assert_int_equal(format_is(&m, "data: [1,\ndata: 2,\ndata: 3,\ndata: 4,\n"
                                   "data: \ndata: 5]\n\n"),
                     0);
    /* Whitespace around the value is not part of it. */
    m = message("\r\n\t [ 1 ]  \n\r");
    assert_int_equal(format_is(&m, "data: [ 1 ]\n\n"), 0);
    m = message("[\r\r]");
    assert_int_equal(format_is(&m, "data: [\ndata: \ndata: ]\n\n"), 0);
}

static void errors(void **state)
{
    rc_message m = message("1");
    char buf[64];
    size_t len;

    (void)state;
    assert_int_equal(rc_sse_format(NULL, buf, sizeof buf, &len), RC_EINVAL);
    assert_int_equal(rc_sse_format(&m, buf, sizeof buf, NULL), RC_EINVAL);
    assert_int_equal(rc_sse_format(&m, NULL, 1, &len), RC_EINVAL);
    m.data = NULL;
    assert_int_equal(rc_sse_format(&m, buf, sizeof buf, &len), RC_ENODATA);
    m = message(" \r\n\t");
    assert_int_equal(rc_sse_format(&m, buf, sizeof buf, &len), RC_ENODATA);
    m = message("1");
    m.data_len = 0;
    assert_int_equal(rc_sse_format(&m, buf, sizeof buf, &len), RC_ENODATA);

    m = message("1");
    m.event = "a\nb";
    assert_int_equal(format_is(&m, ""), RC_ECHAR);
    m.event = "a\r";
    assert_int_equal(format_is(&m, ""), RC_ECHAR);
    m.event = NULL;
    m.id = "\r\n";
    assert_int_equal(format_is(&m, ""), RC_ECHAR);
    m.id = "\xe2\x82";
    assert_int_equal(format_is(&m, ""), RC_EUTF8);
    m.id = NULL;
    m.retry = RC_RETRY_MAX + 1;
    assert_int_equal(format_is(&m, ""), RC_ERETRY);
}

static void reports_size_needed(void **state)
{
    rc_message m = message("[1,\r\n2]");
    const char *want = "id: 9\nevent: e\ndata: [1,\ndata: 2]\nretry: 10\n\n";
    char buf[128];
    size_t len = 0, i;

    (void)state;
    m.id = "9";
    m.event = "e";
    m.retry = 10;
    assert_int_equal(rc_sse_format(&m, NULL, 0, &len), RC_ENOBUFS);
    assert_int_equal(len, strlen(want));
    for (i = 0; i < strlen(want); i++) {
        memset(buf, 'X', sizeof buf);
        assert_int_equal(rc_sse_format(&m, buf, i, &len), RC_ENOBUFS);
        assert_int_equal(len, strlen(want));
        assert_int_equal(buf[i], 'X');
    }
    assert_int_equal(rc_sse_format(&m, buf, i, &len), 0);
    assert_memory_equal(buf, want, len);
}

/* A large payload is one data line, copied whole. */
static void large_data(void **state)
{
    size_t n = 1 << 20, len = 0;
    char *data = malloc(n), *buf = malloc(n + 16);
    rc_message m = RC_MESSAGE_INIT;

    (void)state;
    assert_non_null(data);
    assert_non_null(buf);
    memset(data, 'a', n);
    data[0] = data[n - 1] = '"';
    m.data = data;
    m.data_len = n;
    assert_int_equal(rc_sse_format(&m, buf, n + 16, &len), 0);
    assert_int_equal(len, n + 8);
    assert_memory_equal(buf, "data: ", 6);
    assert_memory_equal(buf + 6, data, n);
    assert_memory_equal(buf + 6 + n, "\n\n", 2);
    free(buf);
    free(data);
}

static void message_check(void **state)
{
    rc_message m = message("{\"a\":[1,2]}");
    rc_limits tight = {4, 1};

    (void)state;
    assert_int_equal(rc_message_check(NULL, NULL), RC_EINVAL);
    assert_int_equal(rc_message_check(&m, NULL), 0);
    assert_int_equal(rc_message_check(&m, &tight), RC_ETOOBIG);
    m = message("[[1]]");
    tight.max_data = 100;
    assert_int_equal(rc_message_check(&m, &tight), RC_EDEPTH);
    m = message("[1,]");
    assert_int_equal(rc_message_check(&m, NULL), RC_EJSON);
    m = message("\"\xff\"");
    assert_int_equal(rc_message_check(&m, NULL), RC_EUTF8);
    m = message("1");
    m.event = "x\n";
    assert_int_equal(rc_message_check(&m, NULL), RC_ECHAR);
    m.event = NULL;
    m.retry = RC_RETRY_MAX + 1;
    assert_int_equal(rc_message_check(&m, NULL), RC_ERETRY);
    m.retry = -7; /* any negative value means "none" */
    assert_int_equal(rc_message_check(&m, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(field_order_and_omissions),
        cmocka_unit_test(values_written_as_given),
        cmocka_unit_test(data_split_on_every_line_break),
        cmocka_unit_test(errors),
        cmocka_unit_test(reports_size_needed),
        cmocka_unit_test(large_data),
        cmocka_unit_test(message_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
