/* rc-chat's small process-wide helpers: the log, allocation, time. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

void chat_log(const char *fmt, ...)
{
    va_list ap;

    fputs("rc-chat: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *chat_malloc(size_t n)
{
    void *p = malloc(n);

    if (p == NULL) {
        chat_log("out of memory");
        abort();
    }
    return p;
}

char *chat_strdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(chat_malloc(n), s, n);
}

long long chat_now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

struct timeval chat_ms_tv(unsigned long ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}
