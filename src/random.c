/* Randomness for node ids, connection ids and hash seeds. */
#define _DEFAULT_SOURCE /* syscall(), O_CLOEXEC */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "internal.h"

int rc__random(void *buf, size_t n)
{
    unsigned char *p = buf;
    ssize_t got;
    int fd;

#if defined(__linux__) && defined(SYS_getrandom)
    while (n > 0) {
        got = syscall(SYS_getrandom, p, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        p += got;
        n -= (size_t)got;
    }
    if (n == 0)
        return 0;
#endif
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return RC_EINVAL;
    while (n > 0) {
        got = read(fd, p, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        p += got;
        n -= (size_t)got;
    }
    close(fd);
    return n == 0 ? 0 : RC_EINVAL;
}

int rc__uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int i, rv = rc__random(b, sizeof b);

    if (rv != 0)
        return rv;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *out++ = '-';
        *out++ = hex[b[i] >> 4];
        *out++ = hex[b[i] & 0xF];
    }
    *out = '\0';
    return 0;
}
