/* The envelope codec: arguments, buffers, limits and the decoding rules
 * that the generated vectors (test_vectors.c) do not spell out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <roomcast/roomcast.h>

/* Decode a NUL-terminated text with default limits; scratch is static. */
static int decode(const char *text, rc_envelope *env)
{
    static char scratch[4096];

    return rc_envelope_decode(text, strlen(text), NULL, env, scratch,
                              sizeof scratch);
}

#define assert_decode_err(text, err)                                           \
    do {                                                                       \
        rc_envelope env_;                                                      \
        int rv_ = decode(text, &env_);                                         \
        if (rv_ != (err))                                                      \
            fail_msg("%s: got %s, want %s", text, rc_err_name(rv_),            \
                     rc_err_name(err));                                        \
    } while (0)

/* Encode env into a malloc'd NUL-terminated string (caller frees). */
static char *encode(const rc_envelope *env, int *rv)
{
    size_t len = 0, len2 = 0;
    char *out;

    *rv = rc_envelope_encode(env, NULL, NULL, 0, &len);
    if (*rv != RC_ENOBUFS)
        return NULL;
    out = malloc(len + 1);
    assert_non_null(out);
    *rv = rc_envelope_encode(env, NULL, out, len, &len2);
    assert_int_equal(*rv, 0);
    assert_int_equal(len, len2);
    out[len] = '\0';
    return out;
}

static rc_envelope envelope(const char *data)
{
    rc_envelope env;

    memset(&env, 0, sizeof env);
    env.msg.retry = -1;
    env.msg.data = data;
    env.msg.data_len = strlen(data);
    env.node = "n1";
    return env;
}

static void encode_minimal_and_full(void **state)
{
    rc_envelope env = envelope("{\"a\":1}");
    char *out;
    int rv;

    (void)state;
    out = encode(&env, &rv);
    assert_string_equal(out,
                        "{\"v\":1,\"m\":{\"data\":{\"a\":1}},\"n\":\"n1\"}");
    free(out);

    env.msg.event = "chat";
    env.msg.id = "7";
    env.msg.retry = 0;
    env.except = "c9";
    env.meta = " [true] ";
    env.meta_len = strlen(env.meta);
    out = encode(&env, &rv);
    assert_string_equal(out, "{\"v\":1,\"m\":{\"event\":\"chat\",\"data\":"
                             "{\"a\":1},\"id\":\"7\",\"retry\":0},\"n\":\"n1\","
                             "\"e\":\"c9\",\"meta\":[true]}");
    free(out);
}

/* JSON.stringify escapes only '"', '\\' and control characters. */
static void encode_escapes_like_json_stringify(void **state)
{
    rc_envelope env = envelope("1");
    char *out;
    int rv;

    (void)state;
    env.msg.event = "q\"b\\s/\t\b\f\x01\x1f\x7f\xc3\xa9\xe2\x80\xa8";
    out = encode(&env, &rv);
    assert_string_equal(out, "{\"v\":1,\"m\":{\"event\":\"q\\\"b\\\\s/\\t\\b"
                             "\\f\\u0001\\u001f\x7f\xc3\xa9\xe2\x80\xa8\","
                             "\"data\":1},\"n\":\"n1\"}");
    free(out);
}

static void encode_trims_data_whitespace(void **state)
{
    rc_envelope env = envelope("\r\n [1, 2]\t\n");
    char *out;
    int rv;

    (void)state;
    out = encode(&env, &rv);
    assert_string_equal(out, "{\"v\":1,\"m\":{\"data\":[1, 2]},\"n\":\"n1\"}");
    free(out);
}

static void encode_errors(void **state)
{
    rc_envelope env = envelope("{\"a\":1}");
    char buf[256];
    size_t len = 0;

    (void)state;
    assert_int_equal(rc_envelope_encode(NULL, NULL, buf, sizeof buf, &len),
                     RC_EINVAL);
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, NULL),
                     RC_EINVAL);
    assert_int_equal(rc_envelope_encode(&env, NULL, NULL, 10, &len), RC_EINVAL);

    env = envelope("{\"a\":}");
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_EJSON);
    env = envelope("1 2");
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_EJSON);
    env = envelope("  ");
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_ENODATA);
    env.msg.data = NULL;
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_ENODATA);

    env = envelope("1");
    env.msg.event = "a\nb";
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_ECHAR);
    env.msg.event = NULL;
    env.msg.id = "a\rb";
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_ECHAR);
    env.msg.id = "\xff";
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_EUTF8);
    env.msg.id = NULL;
    env.msg.retry = RC_RETRY_MAX + 1;
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_ERETRY);
    env.msg.retry = -1;
    env.node = NULL;
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_ETYPE);
    env.node = "n\n";
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_ECHAR);
    env.node = "n";
    env.except = "\xed\xa0\x80"; /* a surrogate, encoded in UTF-8 */
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_EUTF8);
    env.except = NULL;
    env.meta = "{";
    env.meta_len = 1;
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_EJSON);
    env.meta_len = 0;
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, sizeof buf, &len),
                     RC_EJSON);
}

static void encode_reports_size_needed(void **state)
{
    rc_envelope env = envelope("\"hello\"");
    const char *want = "{\"v\":1,\"m\":{\"data\":\"hello\"},\"n\":\"n1\"}";
    char buf[64];
    size_t len = 0, i;

    (void)state;
    for (i = 0; i < strlen(want); i++) {
        memset(buf, 'X', sizeof buf);
        assert_int_equal(rc_envelope_encode(&env, NULL, buf, i, &len),
                         RC_ENOBUFS);
        assert_int_equal(len, strlen(want));
        assert_int_equal(buf[i], 'X'); /* nothing past size */
    }
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, i, &len), 0);
    assert_memory_equal(buf, want, len);
}

/* A data text of exactly n bytes: a JSON string of n - 2 'x'. */
static char *big_string(size_t n)
{
    char *s = malloc(n);

    assert_non_null(s);
    memset(s, 'x', n);
    s[0] = s[n - 1] = '"';
    return s;
}

static void size_limits_both_ways(void **state)
{
    rc_limits small = {1000, 0};
    size_t n = RC_DEFAULT_MAX_DATA, len = 0, cap = n + 100;
    char *data = big_string(n + 1), *buf = malloc(cap + 1), *scratch;
    rc_envelope env = envelope("1"), out;

    (void)state;
    assert_non_null(buf);
    /* Exactly the default limit: accepted both ways. */
    env.msg.data = data;
    env.msg.data_len = n;
    data[n - 1] = '"';
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, cap, &len), 0);
    scratch = malloc(len);
    assert_non_null(scratch);
    assert_int_equal(rc_envelope_decode(buf, len, NULL, &out, scratch, len), 0);
    assert_int_equal(out.msg.data_len, n);
    /* One byte more: refused both ways. */
    env.msg.data_len = n + 1;
    data[n - 1] = 'x';
    data[n] = '"';
    assert_int_equal(rc_envelope_encode(&env, NULL, buf, cap, &len),
                     RC_ETOOBIG);
    memcpy(buf, "{\"v\":1,\"m\":{\"data\":", 19);
    memcpy(buf + 19, data, n + 1);
    memcpy(buf + 19 + n + 1, "},\"n\":\"a\"}", 10);
    assert_int_equal(
        rc_envelope_decode(buf, n + 30, NULL, &out, scratch, n + 30),
        RC_ETOOBIG);
    /* The whole envelope is bounded before anything is parsed. */
    assert_int_equal(rc_envelope_decode(buf, 1000 + RC_ENVELOPE_SLACK + 1,
                                        &small, &out, scratch, 0),
                     RC_ETOOBIG);
    /* And meta counts towards the envelope's total. */
    env = envelope("1");
    env.meta = data;
    env.meta_len = 1000 + RC_ENVELOPE_SLACK;
    data[env.meta_len - 1] = '"';
    assert_int_equal(rc_envelope_encode(&env, &small, buf, cap, &len),
                     RC_ETOOBIG);
    free(scratch);
    free(buf);
    free(data);
}

/* An envelope whose data is `depth` nested arrays (malloc'd). */
static char *nested(size_t depth)
{
    char *text = malloc(depth * 2 + 64), *p;

    assert_non_null(text);
    p = text + sprintf(text, "{\"v\":1,\"n\":\"x\",\"m\":{\"data\":");
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    strcpy(p + 2 * depth, "}}");
    return text;
}

static int decode_with(const char *text, const rc_limits *limits)
{
    char scratch[64];
    rc_envelope env;

    return rc_envelope_decode(text, strlen(text), limits, &env, scratch,
                              sizeof scratch);
}

/* Nesting is bounded per value and costs no C stack. */
static void depth_limits(void **state)
{
    rc_limits two = {0, 2};
    char *text;

    (void)state;
    text = nested(200000);
    assert_int_equal(decode_with(text, NULL), RC_EDEPTH);
    free(text);
    text = nested(64);
    assert_int_equal(decode_with(text, NULL), 0);
    free(text);
    text = nested(65);
    assert_int_equal(decode_with(text, NULL), RC_EDEPTH);
    free(text);

    assert_int_equal(decode_with("{\"v\":1,\"m\":{\"data\":[{}]},"
                                 "\"n\":\"x\",\"z\":[[]]}",
                                 &two),
                     0);
    assert_int_equal(decode_with("{\"v\":1,\"m\":{\"data\":[{}]},"
                                 "\"n\":\"x\",\"z\":[[[]]]}",
                                 &two),
                     RC_EDEPTH);
    assert_int_equal(decode_with("{\"v\":1,\"m\":{\"data\":[[[]]]},"
                                 "\"n\":\"x\"}",
                                 &two),
                     RC_EDEPTH);
}

static void decode_arguments_and_scratch(void **state)
{
    const char *text = "{\"v\":1,\"m\":{\"data\":1,\"event\":\"abc\"},"
                       "\"n\":\"node\"}";
    size_t len = strlen(text);
    char scratch[64];
    rc_envelope env;

    (void)state;
    assert_int_equal(rc_envelope_decode(NULL, 1, NULL, &env, scratch, 64),
                     RC_EINVAL);
    assert_int_equal(rc_envelope_decode(text, len, NULL, NULL, scratch, 64),
                     RC_EINVAL);
    assert_int_equal(rc_envelope_decode(text, len, NULL, &env, NULL, 64),
                     RC_EINVAL);
    assert_int_equal(rc_envelope_decode(NULL, 0, NULL, &env, NULL, 0),
                     RC_EJSON);
    /* "abc" and "node" need 4 + 5 bytes of scratch. */
    assert_int_equal(rc_envelope_decode(text, len, NULL, &env, scratch, 8),
                     RC_ENOBUFS);
    assert_int_equal(rc_envelope_decode(text, len, NULL, &env, scratch, 9), 0);
    assert_string_equal(env.msg.event, "abc");
    assert_string_equal(env.node, "node");
    assert_null(env.msg.id);
    assert_null(env.except);
    assert_null(env.meta);
    assert_int_equal(env.msg.retry, -1);
    assert_ptr_equal(env.msg.data, text + 19);
    assert_int_equal(env.msg.data_len, 1);
}

/* No scratch at all (NULL, 0) for an envelope with string fields: not
 * enough room, said without arithmetic on the NULL pointer. */
static void t_decode_null_scratch(void **state)
{
    const char *text = "{\"v\":1,\"m\":{\"data\":1,\"id\":\"i\"},"
                       "\"n\":\"node\"}";
    const char *none = "{\"v\":1,\"m\":{\"data\":{\"a\":\"b\"}},\"n\":\"\"}";
    rc_envelope env;

    (void)state;
    assert_int_equal(
        rc_envelope_decode(text, strlen(text), NULL, &env, NULL, 0),
        RC_ENOBUFS);
    /* Even the empty node name needs its NUL. */
    assert_int_equal(
        rc_envelope_decode(none, strlen(none), NULL, &env, NULL, 0),
        RC_ENOBUFS);
}

static void decode_version_forms(void **state)
{
    static const char *ones[] = {"1",      "1.0",   "1.000", "1e0",
                                 "1E+0",   "10e-1", "0.1e1", "0.001e3",
                                 "100e-2", "1.0e-0"};
    static const char *others[] = {"2",     "-1",   "0",    "1.5", "11",
                                   "\"1\"", "true", "null", "[1]", "0.1",
                                   "1e1",   "10",   "1e-1", "-1.0"};
    char text[128];
    rc_envelope env;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof ones / sizeof ones[0]; i++) {
        snprintf(text, sizeof text, "{\"m\":{\"data\":0},\"n\":\"x\",\"v\":%s}",
                 ones[i]);
        assert_decode_err(text, 0);
    }
    for (i = 0; i < sizeof others / sizeof others[0]; i++) {
        snprintf(text, sizeof text, "{\"m\":{\"data\":0},\"n\":\"x\",\"v\":%s}",
                 others[i]);
        assert_decode_err(text, RC_EVERSION);
    }
    assert_decode_err("{\"m\":{\"data\":0},\"n\":\"x\"}", RC_EVERSION);
    /* The last duplicate wins, either way round. */
    assert_decode_err("{\"v\":2,\"v\":1,\"m\":{\"data\":0},\"n\":\"x\"}", 0);
    assert_decode_err("{\"v\":1,\"v\":2,\"m\":{\"data\":0},\"n\":\"x\"}",
                      RC_EVERSION);
    (void)env;
}

static void decode_retry_forms(void **state)
{
    rc_envelope env;

    (void)state;
    assert_int_equal(
        decode("{\"v\":1,\"m\":{\"data\":0,\"retry\":9007199254740991},"
               "\"n\":\"x\"}",
               &env),
        0);
    assert_true(env.msg.retry == RC_RETRY_MAX);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"retry\":9007199254740992},"
                      "\"n\":\"x\"}",
                      RC_ERETRY);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"retry\":"
                      "99999999999999999999999},\"n\":\"x\"}",
                      RC_ERETRY);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"retry\":-5},\"n\":\"x\"}",
                      RC_ERETRY);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"retry\":5.0},\"n\":\"x\"}",
                      RC_ERETRY);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"retry\":{}},\"n\":\"x\"}",
                      RC_ERETRY);
    /* The last one wins, and a later "m" replaces the earlier whole. */
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"retry\":-5,\"retry\":5},"
                      "\"n\":\"x\"}",
                      0);
    assert_int_equal(decode("{\"v\":1,\"m\":{\"data\":0,\"retry\":\"x\",\"id\":"
                            "\"a\"},\"m\":{\"data\":2},\"n\":\"x\"}",
                            &env),
                     0);
    assert_int_equal(env.msg.retry, -1);
    assert_null(env.msg.id);
    assert_memory_equal(env.msg.data, "2", 1);
}

static void decode_strings(void **state)
{
    rc_envelope env;

    (void)state;
    assert_int_equal(decode("{\"\\u0076\":1,\"\\u006d\":{\"d\\u0061ta\":0,"
                            "\"event\":\"\\ud83d\\ude00\\u00e9\\/\\\"\\\\\"},"
                            "\"n\":\"\\t\"}",
                            &env),
                     0);
    assert_string_equal(env.msg.event, "\xf0\x9f\x98\x80\xc3\xa9/\"\\");
    assert_string_equal(env.node, "\t");
    /* Lone surrogates: fine inside data, refused in the fields we read. */
    assert_decode_err("{\"v\":1,\"m\":{\"data\":\"\\ud800\"},\"n\":\"x\"}", 0);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0},\"n\":\"\\ud800x\"}",
                      RC_EUTF8);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"id\":\"\\udc00\"},"
                      "\"n\":\"x\"}",
                      RC_EUTF8);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0},\"n\":\"x\","
                      "\"e\":\"\\ude00\\ud83d\"}",
                      RC_EUTF8);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0},\"n\":\"a\\u0000\"}",
                      RC_ECHAR);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"event\":\"\\r\"},"
                      "\"n\":\"x\"}",
                      RC_ECHAR);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":\"\xc0\xaf\"},\"n\":\"x\"}",
                      RC_EUTF8);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":\"a\tb\"},\"n\":\"x\"}",
                      RC_EJSON);
}

static void decode_reasons(void **state)
{
    (void)state;
    assert_decode_err("", RC_EJSON);
    assert_decode_err("[1]", RC_ENOTENV);
    assert_decode_err(" \"x\" ", RC_ENOTENV);
    assert_decode_err("[1", RC_EJSON);
    assert_decode_err("{\"v\":1,\"n\":\"x\"}", RC_ENOMSG);
    assert_decode_err("{\"v\":1,\"m\":[],\"n\":\"x\"}", RC_ENOMSG);
    assert_decode_err("{\"v\":1,\"m\":{},\"n\":\"x\"}", RC_ENODATA);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":null}}", RC_ETYPE);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":null},\"n\":1}", RC_ETYPE);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":null,\"event\":null},"
                      "\"n\":\"x\"}",
                      RC_ETYPE);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":null},\"n\":\"x\",\"e\":[]}",
                      RC_ETYPE);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":null},\"n\":\"x\"} x",
                      RC_EJSON);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":null},\"n\":\"x\",}", RC_EJSON);
    assert_decode_err("\xef\xbb\xbf{\"v\":1,\"m\":{\"data\":0},\"n\":\"x\"}",
                      RC_EJSON);
    /* Unknown keys are validated, then ignored. */
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0,\"x\":{\"y\":[1,{}]}},"
                      "\"n\":\"x\",\"meta\":null,\"z\":\"\\ud800\"}",
                      0);
    assert_decode_err("{\"v\":1,\"m\":{\"data\":0},\"n\":\"x\",\"z\":01}",
                      RC_EJSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_minimal_and_full),
        cmocka_unit_test(encode_escapes_like_json_stringify),
        cmocka_unit_test(encode_trims_data_whitespace),
        cmocka_unit_test(encode_errors),
        cmocka_unit_test(encode_reports_size_needed),
        cmocka_unit_test(size_limits_both_ways),
        cmocka_unit_test(depth_limits),
        cmocka_unit_test(decode_arguments_and_scratch),
        cmocka_unit_test(t_decode_null_scratch),
        cmocka_unit_test(decode_version_forms),
        cmocka_unit_test(decode_retry_forms),
        cmocka_unit_test(decode_strings),
        cmocka_unit_test(decode_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
