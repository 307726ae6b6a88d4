#define _GNU_SOURCE
#include "ds_io.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int ds_open_direct_readonly(const char *path) {
#if defined(O_DIRECT)
    return open(path, O_RDONLY | O_DIRECT);
#elif defined(__APPLE__)
    // macOS has no O_DIRECT: F_NOCACHE keeps this descriptor's reads out of the unified buffer cache and
    // F_RDAHEAD off stops read-ahead around them, which is what O_DIRECT gives the expert reads on Linux.
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    if (fcntl(fd, F_NOCACHE, 1) != 0 || fcntl(fd, F_RDAHEAD, 0) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
#else
    (void)path;
    errno = EINVAL;
    return -1;
#endif
}

int ds_drop_cached(int fd, int64_t offset, int64_t length) {
#if defined(POSIX_FADV_DONTNEED)
    return posix_fadvise(fd, (off_t)offset, (off_t)length, POSIX_FADV_DONTNEED);
#else
    // No per-range eviction (macOS): nothing to do; direct reads there use F_NOCACHE instead.
    (void)fd; (void)offset; (void)length;
    return 0;
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
