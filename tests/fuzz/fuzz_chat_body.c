/*
 * rc-chat's POST body path: rc_message_check() as the gate, then the member
 * walker and the string unescaper on whatever passes it. Checks that every
 * span found lies inside the body and is one JSON value (json_check), that
 * string members unescape within their size, and that percent-decoding and
 * the name check never read or write out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <roomcast/roomcast.h>

#include "json_check.h"
#include "text.h"

static void check_span(const char *body, size_t n, chat_span s)
{
    char *out;
    long len;
    unsigned depth;

    if (s.p == NULL)
        return;
    if (s.p < body || s.p + s.n > body + n || s.n == 0)
        abort();
    if (json_text(s.p, s.n, &depth) != 1) /* each value is one JSON text */
        abort();
    out = malloc(s.n);
    len = chat_json_unquote(s.p, s.n, out);
    if (len >= (long)s.n || (len < 0 && s.p[0] == '"'))
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    rc_message m = RC_MESSAGE_INIT;
    chat_body f;
    char *dec = malloc(size + 1);

    /* Every input goes through the path and name helpers. */
    if (chat_pct_decode(body, size, dec, size & 1) >= 0)
        (void)chat_name_ok(dec, strlen(dec));
    free(dec);

    m.data = body;
    m.data_len = size;
    if (rc_message_check(&m, NULL) != 0)
        return 0;
    if (chat_body_parse(body, size, &f) != 0)
        return 0;
    check_span(body, size, f.event);
    check_span(body, size, f.data);
    check_span(body, size, f.id);
    check_span(body, size, f.except);
    check_span(body, size, f.connection);
    check_span(body, size, f.user_id);
    check_span(body, size, f.code);
    check_span(body, size, f.message);
    return 0;
}
