/* A program outside the roomcast tree, built against an installed prefix:
 * by pkg-config (tests/downstream/build.sh) and by CMake find_package
 * (tests/downstream/cmake). It encodes, decodes and formats one message,
 * and parses a Redis URL: the parser is in the core, no libevent needed. */
#include <stdio.h>
#include <string.h>

#include <roomcast/roomcast.h>
#include <roomcast/url.h>

int main(void)
{
    rc_envelope env, back;
    rc_redis_url url;
    char wire[256], scratch[256], frame[256];
    const char *want = "event: hello\ndata: {\"from\":\"downstream\"}\n\n";
    size_t wire_len, frame_len;
    int rv;

    if (rc_version() != ROOMCAST_VERSION_HEX) {
        fprintf(stderr, "header %s, library %s\n", ROOMCAST_VERSION_STRING,
                rc_version_string());
        return 1;
    }
    memset(&env, 0, sizeof env);
    env.msg.event = "hello";
    env.msg.data = "{\"from\":\"downstream\"}";
    env.msg.data_len = strlen(env.msg.data);
    env.msg.retry = -1;
    env.node = "consumer";
    rv = rc_envelope_encode(&env, NULL, wire, sizeof wire, &wire_len);
    if (rv == 0)
        rv = rc_envelope_decode(wire, wire_len, NULL, &back, scratch,
                                sizeof scratch);
    if (rv == 0)
        rv = rc_sse_format(&back.msg, frame, sizeof frame, &frame_len);
    if (rv == 0)
        rv = rc_redis_url_parse("redis://127.0.0.1:6380/3", &url);
    if (rv == 0 && (url.port != 6380 || url.db != 3))
        rv = RC_EURL;
    if (rv != 0) {
        fprintf(stderr, "error: %s\n", rc_strerror(rv));
        return 1;
    }
    if (frame_len != strlen(want) || memcmp(frame, want, frame_len) != 0) {
        fprintf(stderr, "unexpected frame: %.*s\n", (int)frame_len, frame);
        return 1;
    }
    printf("roomcast %s: ok\n", rc_version_string());
    return 0;
}
