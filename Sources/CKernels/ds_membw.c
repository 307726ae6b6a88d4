#include "ds_membw.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define DS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DS_CLONES
#endif

// 32 independent accumulators: enough loads in flight to saturate DRAM from one core.
DS_CLONES double ds_read_sum(const float *buf, int64_t begin, int64_t end) {
    float acc[32] = {0};
    int64_t i = begin;
    for (; i + 32 <= end; i += 32)
        for (int l = 0; l < 32; l++) acc[l] += buf[i + l];
    double s = 0;
    for (; i < end; i++) s += buf[i];
    for (int l = 0; l < 32; l++) s += acc[l];
    return s;
}
