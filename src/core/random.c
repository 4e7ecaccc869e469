/* Randomness for node ids, connection ids and hash seeds. */
#define _DEFAULT_SOURCE /* syscall(), O_CLOEXEC */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "internal.h"

#if defined(__linux__) && defined(SYS_getrandom)
static ssize_t from_getrandom(int fd, void *buf, size_t n)
{
    (void)fd;
    return syscall(SYS_getrandom, buf, n, 0);
}
#endif

/* Read until n bytes came, an error, or the end; returns what is left. */
static size_t fill(unsigned char *p, size_t n,
                   ssize_t (*get)(int fd, void *buf, size_t n), int fd)
{
    ssize_t got;

    while (n > 0) {
        got = get(fd, p, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        p += got;
        n -= (size_t)got;
    }
    return n;
}

int rc__random(void *buf, size_t n)
{
    size_t left = n;
    int fd;

#if defined(__linux__) && defined(SYS_getrandom)
    left = fill(buf, n, from_getrandom, -1);
    if (left == 0)
        return 0;
#endif
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return RC_ERANDOM;
    left = fill((unsigned char *)buf + (n - left), left, read, fd);
    close(fd);
    return left == 0 ? 0 : RC_ERANDOM;
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
