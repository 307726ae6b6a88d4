// Memory read-bandwidth probe: sums a buffer larger than the caches (one slice per thread).
#pragma once
#include <stdint.h>
#include <stddef.h>
// Reads floats [begin, end) of buf and returns their sum (so the reads cannot be optimised away).
double ds_read_sum(const float *buf, int64_t begin, int64_t end);
