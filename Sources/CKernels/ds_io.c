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
