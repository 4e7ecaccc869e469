/* rc-chat's text helpers: percent-decoding, name checks, JSON quoting,
 * the POST body walker and URL redaction. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <roomcast/roomcast.h>

#include "text.h"

static void pct_decode(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(chat_pct_decode("caf%C3%A9%2Fa%20b", 17, out, 0), 9);
    assert_string_equal(out, "caf\xc3\xa9/a b");
    assert_int_equal(chat_pct_decode("a+b", 3, out, 0), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(chat_pct_decode("a+b", 3, out, 1), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(chat_pct_decode("%00x", 4, out, 0), 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(chat_pct_decode("%", 1, out, 0), -1);
    assert_int_equal(chat_pct_decode("%4", 2, out, 0), -1);
    assert_int_equal(chat_pct_decode("%ZZ", 3, out, 0), -1);
    assert_int_equal(chat_pct_decode("", 0, out, 0), 0);
}

static void name_ok(void **state)
{
    (void)state;
    assert_true(chat_name_ok("lobby", 5));
    assert_true(chat_name_ok("caf\xc3\xa9 \xf0\x9f\x98\x80:/", 12));
    assert_true(chat_name_ok("", 0));
    assert_false(chat_name_ok("a\nb", 3));
    assert_false(chat_name_ok("a\tb", 3));
    assert_false(chat_name_ok("a\x7f", 2));
    assert_false(chat_name_ok("a\0b", 3));
    assert_false(chat_name_ok("\xff", 1));
    assert_false(chat_name_ok("\xc3", 1));             /* truncated */
    assert_false(chat_name_ok("\xc0\xaf", 2));         /* overlong */
    assert_false(chat_name_ok("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(chat_name_ok("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(chat_name_ok("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void json_quote(void **state)
{
    const char *in = "a\"b\\c\n\x01/\xc3\xa9";
    char out[64];
    size_t n = chat_json_quote(in, strlen(in), NULL, 0);

    (void)state;
    assert_int_equal(n, strlen("\"a\\\"b\\\\c\\n\\u0001/\xc3\xa9\""));
    assert_int_equal(chat_json_quote(in, strlen(in), out, n - 1), n);
    assert_int_equal(chat_json_quote(in, strlen(in), out, sizeof out), n);
    assert_memory_equal(out, "\"a\\\"b\\\\c\\n\\u0001/\xc3\xa9\"", n);
}

static void body_fields(void **state)
{
    const char *b =
        " {\"x\":[1,{\"data\":2}],\"\\u0065vent\":\"chat\",\"data\""
        " : {\"t\":\"}\"} , \"id\":7,\"except\":\"c1\",\"data\":[true]}";
    chat_body f;

    (void)state;
    assert_int_equal(chat_body_parse(b, strlen(b), &f), 0);
    assert_memory_equal(f.event.p, "\"chat\"", f.event.n);
    assert_int_equal(f.data.n, 6); /* the last "data" wins */
    assert_memory_equal(f.data.p, "[true]", 6);
    assert_memory_equal(f.id.p, "7", f.id.n);
    assert_memory_equal(f.except.p, "\"c1\"", f.except.n);
    assert_int_equal(chat_body_parse("[1]", 3, &f), -1);
    assert_int_equal(chat_body_parse("\"x\"", 3, &f), -1);
    assert_int_equal(chat_body_parse("{}", 2, &f), 0);
    assert_null(f.data.p);
    assert_int_equal(chat_body_parse("{\"data\":-1.5e3}", 15, &f), 0);
    assert_memory_equal(f.data.p, "-1.5e3", f.data.n);
}

/* A key is matched on its whole unescaped value: one that unescapes to
 * "data\0" (or any of ours with a NUL, or more, after it) is unknown. */
static void body_keys_whole(void **state)
{
    static const char *const keys[] = {"data", "event", "id", "except"};
    static const char *const tails[] = {"\\u0000", "\\u0000x", "x"};
    char b[64];
    size_t k, t;
    chat_body f;

    (void)state;
    for (k = 0; k < 4; k++) {
        for (t = 0; t < 3; t++) {
            int n =
                snprintf(b, sizeof b, "{\"%s%s\":\"v\"}", keys[k], tails[t]);

            assert_int_equal(chat_body_parse(b, (size_t)n, &f), 0);
            if (f.event.p != NULL || f.data.p != NULL || f.id.p != NULL ||
                f.except.p != NULL)
                fail_msg("%s taken for the key \"%s\"", b, keys[k]);
        }
        /* the key itself, escaped or not, is still found */
        snprintf(b, sizeof b, "{\"\\u00%02x%s\":1}", keys[k][0], keys[k] + 1);
        assert_int_equal(chat_body_parse(b, strlen(b), &f), 0);
        assert_true(f.event.p != NULL || f.data.p != NULL || f.id.p != NULL ||
                    f.except.p != NULL);
    }
    /* the real data is the second */
    strcpy(b, "{\"data\\u0000\":1,\"data\":2}");
    assert_int_equal(chat_body_parse(b, strlen(b), &f), 0);
    assert_int_equal(f.data.n, 1);
    assert_memory_equal(f.data.p, "2", 1);
}

static void unquote(void **state)
{
    char out[64];
    const char *in = "\"a\\n\\u00e9\\ud83d\\ude00\\/\"";

    (void)state;
    assert_int_equal(chat_json_unquote(in, strlen(in), out), 1 + 1 + 2 + 4 + 1);
    assert_string_equal(out, "a\n\xc3\xa9\xf0\x9f\x98\x80/");
    /* a lone surrogate: its 3-byte form, which UTF-8 checks refuse */
    assert_int_equal(chat_json_unquote("\"\\ud800\"", 8, out), 3);
    assert_false(chat_name_ok(out, 3));
    assert_int_equal(chat_json_unquote("7", 1, out), -1);
    assert_int_equal(chat_json_unquote("{}", 2, out), -1);
}

static void url_redact(void **state)
{
    char out[64];

    (void)state;
    assert_string_equal(chat_url_redact("redis://:sekret@h:1/2", out, 64),
                        "redis://:***@h:1/2");
    assert_string_equal(chat_url_redact("redis://u:p@ss@h", out, 64),
                        "redis://u:***@h");
    assert_string_equal(chat_url_redact("redis://sekret@h", out, 64),
                        "redis://***@h");
    assert_string_equal(chat_url_redact("redis://:a/b@h", out, 64),
                        "redis://:***@h");
    assert_string_equal(chat_url_redact("sekret@h", out, 64), "***@h");
    assert_string_equal(chat_url_redact("redis://h:6379/0", out, 64),
                        "redis://h:6379/0");
    assert_string_equal(chat_url_redact("unix:///tmp/r.sock?db=1", out, 64),
                        "unix:///tmp/r.sock?db=1");
    assert_string_equal(chat_url_redact("redis://:sekret@h", out, 12),
                        "redis://:**");
}

/* Session codes as people type them; the session keys of a body. */
static void session_code(void **state)
{
    char out[CHAT_CODE_MAX + 1];
    const char *b = "{\"userId\":\"ada\",\"code\":\"x\",\"message\":[1]}";
    chat_body f;

    (void)state;
    assert_int_equal(chat_code_norm("7k3m9q", 6, out), 6);
    assert_string_equal(out, "7K3M9Q");
    assert_int_equal(chat_code_norm("oOiIlL", 6, out), 6);
    assert_string_equal(out, "001111");
    assert_int_equal(chat_code_norm(CHAT_CODE_ALPHABET, 32, out), 32);
    assert_int_equal(chat_code_norm("", 0, out), -1);
    assert_int_equal(chat_code_norm("ABU", 3, out), -1); /* no U */
    assert_int_equal(chat_code_norm("AB-C", 4, out), -1);
    assert_int_equal(chat_code_norm("A\0B", 3, out), -1);
    assert_int_equal(
        chat_code_norm("000000000000000000000000000000000", 33, out), -1);
    assert_int_equal(chat_body_parse(b, strlen(b), &f), 0);
    assert_memory_equal(f.user_id.p, "\"ada\"", f.user_id.n);
    assert_memory_equal(f.code.p, "\"x\"", f.code.n);
    assert_memory_equal(f.message.p, "[1]", f.message.n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pct_decode),      cmocka_unit_test(name_ok),
        cmocka_unit_test(json_quote),      cmocka_unit_test(body_fields),
        cmocka_unit_test(body_keys_whole), cmocka_unit_test(unquote),
        cmocka_unit_test(url_redact),      cmocka_unit_test(session_code),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
