// ds_dot_x86.c — x86-64 SIMD kernels (AVX2 and AVX-512 VNNI), built without -march flags: every
// function carries its own target attribute and is only called after runtime detection
// (see ds_dispatch.c). The kernel bodies live in ds_dot_x86_kernels.h (quantized single-token dots and
// multi-row kernels), ds_float_x86_kernels.h (F32/F16/BF16/MXFP4 weights), ds_iquant_x86_kernels.h
// (the i-quants) and ds_gemm_x86_kernels.h (multi-token GEMM), included once per level.
#include "ds_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define DS_X86_LEVEL 1
#define DS_TARGET __attribute__((target("avx2,fma,f16c")))
#define DS_FN(name) name##_avx2
#include "ds_dot_x86_kernels.h"
#include "ds_float_x86_kernels.h"
#include "ds_iquant_x86_kernels.h"
#include "ds_gemm_x86_kernels.h"
#undef DS_X86_LEVEL
#undef DS_TARGET
#undef DS_FN

#define DS_X86_LEVEL 2
#define DS_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define DS_FN(name) name##_avx512
#include "ds_dot_x86_kernels.h"
#include "ds_float_x86_kernels.h"
#include "ds_iquant_x86_kernels.h"
#include "ds_gemm_x86_kernels.h"
#undef DS_X86_LEVEL
#undef DS_TARGET
#undef DS_FN

void ds_fill_avx2_kernels(ds_kernel_table *t) {
    fill_avx2(t);
    fill_float_avx2(t);
    fill_iquant_avx2(t);
    fill_gemm_avx2(t);
}
void ds_fill_avx512vnni_kernels(ds_kernel_table *t) {
    fill_avx512(t);
    fill_float_avx512(t);
    fill_iquant_avx512(t);
    fill_gemm_avx512(t);
}

#endif
