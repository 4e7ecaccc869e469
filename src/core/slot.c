/*
 * Redis Cluster key slots: CRC16 (XMODEM: polynomial 0x1021, initial 0,
 * no reflection) of the key's hash tag, mod 16384. The rule for the tag
 * is the cluster specification's ("Hash tags"):
 * https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/
 */
#include "internal.h"

static unsigned crc16(const unsigned char *p, size_t n)
{
    unsigned crc = 0;
    size_t i;
    int b;

    for (i = 0; i < n; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff
                                 : (crc << 1) & 0xffff;
    }
    return crc;
}

unsigned rc__keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len), *close;

    if (open != NULL) {
        close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close != NULL && close > open + 1)
            key = open + 1, len = (size_t)(close - open - 1);
    }
    return crc16((const unsigned char *)key, len) & 16383;
}

int rc_keyslot(const char *key, size_t len)
{
    return key == NULL ? 0 : (int)rc__keyslot(key, len);
}
