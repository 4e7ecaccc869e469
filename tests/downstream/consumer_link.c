/* A program outside the tree using the libevent glue, built against an
 * installed prefix (pkg-config roomcast-libevent; CMake roomcast::libevent).
 */
#include <stdio.h>
#include <string.h>

#include <roomcast/libevent.h>

int main(void)
{
    rc_redis_url u;
    int rv = rc_redis_url_parse("redis://user:p%40ss@127.0.0.1:6380/2", &u);

    if (rv != 0 || strcmp(u.password, "p@ss") != 0 || u.port != 6380 ||
        u.db != 2) {
        fprintf(stderr, "error: %s\n", rc_strerror(rv));
        return 1;
    }
    printf("roomcast-libevent %s: ok\n", rc_version_string());
    return 0;
}
