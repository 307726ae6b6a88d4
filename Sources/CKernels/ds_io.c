#define _GNU_SOURCE
#include "ds_io.h"
#include <errno.h>
#include <fcntl.h>

int ds_open_direct_readonly(const char *path) {
#ifdef O_DIRECT
    return open(path, O_RDONLY | O_DIRECT);
#else
    (void)path;
    errno = EINVAL;
    return -1;
#endif
}

#include <string.h>

uint64_t ds_checksum_update(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    const uint64_t prime = 0x100000001b3ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * prime;
    }
    for (; i < n; i++) h = (h ^ b[i]) * prime;
    return h;
}

uint64_t ds_checksum_final(uint64_t h) {
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}
