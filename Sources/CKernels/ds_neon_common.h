// ds_neon_common.h — what the AArch64 NEON kernel files share (ds_dot_neon.c, ds_iquant_neon.c): the
// dot-product target attribute, the per-(row, token) accumulator state and the macro that makes a
// type's single and multi-row kernels from its per-block step.
#ifndef DS_NEON_COMMON_H
#define DS_NEON_COMMON_H

#include "ds_internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

// Enable the dot-product extension for the quantized kernels only. (GCC 12 mis-compiles the first
// function of a file marked target("+dotprod"); the "arch=" spelling works.)
#if defined(__ARM_FEATURE_DOTPROD)
#define DS_NEON_TARGET
#elif defined(__clang__)
#define DS_NEON_TARGET __attribute__((target("dotprod")))
#else
#define DS_NEON_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

// fp16 -> fp32 with the hardware conversion (FCVT).
static inline float neon_half(uint16_t h) {
    __fp16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}

// 16 bits of `bits` (starting at `first`) -> 16 bytes, 0x10 where the bit is set.
static inline uint8x16_t neon_bit4_bytes(uint32_t bits, int first) {
    static const uint8_t select[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t spread = vcombine_u8(vdup_n_u8((uint8_t)(bits >> first)),
                                          vdup_n_u8((uint8_t)(bits >> (first + 8))));
    return vandq_u8(vtstq_u8(spread, vld1q_u8(select)), vdupq_n_u8(0x10));
}

// ---- Per-block steps and the kernels made from them -----------------------------------------------
// Every quantized kernel accumulates one state per (row, token): `acc` collects scale · integer sums
// of 32-element blocks, `sum` the K-quants' block totals and the Q4_1/Q5_1 min terms.
typedef struct {
    float32x4_t acc;
    float sum;
} neon_state;

#define NEON_STEP static inline __attribute__((always_inline)) DS_NEON_TARGET void

static inline __attribute__((always_inline)) neon_state neon_init(void) {
    neon_state s = {vdupq_n_f32(0), 0};
    return s;
}
static inline __attribute__((always_inline)) float neon_finish(const neon_state *s) {
    return vaddvq_f32(s->acc) + s->sum;
}

// Tokens a multi-row pass carries (their states stay in registers).
#define NEON_MULTI_TOKENS 4

// neon_dot_NAME: two states over alternate blocks (hides the FMA latency), added at the end.
// neon_multi_NAME: out[t·ostride + r] = dot(weight row r, activation row t), each token's result the
// bits neon_dot_NAME gives it alone (same states, same steps in block order, same finish); each weight
// block is loaded and unpacked once for NEON_MULTI_TOKENS tokens (the inlined steps share it).
#define NEON_QUANT_KERNELS(NAME, WBLOCK, ABLOCK, ELEMS)                                               \
    static DS_NEON_TARGET float neon_dot_##NAME(int64_t n, const void *vw, const void *va) {        \
        const WBLOCK *w = (const WBLOCK *)vw;                                                         \
        const ABLOCK *a = (const ABLOCK *)va;                                                         \
        const int64_t nb = n / (ELEMS);                                                               \
        neon_state s0 = neon_init(), s1 = neon_init();                                                \
        int64_t b = 0;                                                                                \
        for (; b + 1 < nb; b += 2) {                                                                  \
            neon_step_##NAME(&s0, w + b, a + b);                                                      \
            neon_step_##NAME(&s1, w + b + 1, a + b + 1);                                              \
        }                                                                                             \
        if (b < nb) neon_step_##NAME(&s0, w + b, a + b);                                              \
        return neon_finish(&s0) + neon_finish(&s1);                                                   \
    }                                                                                                 \
    static DS_NEON_TARGET void neon_multi_##NAME(int64_t n, const void *vw, size_t stride, int64_t nrows, \
                                                 const void *va, size_t astride, int64_t ntok, float *out, \
                                                 int64_t ostride) {                                   \
        const int64_t nb = n / (ELEMS);                                                               \
        for (int64_t r = 0; r < nrows; ++r) {                                                         \
            const WBLOCK *w = (const WBLOCK *)((const char *)vw + (size_t)r * stride);                \
            int64_t t = 0;                                                                            \
            for (; t + NEON_MULTI_TOKENS <= ntok; t += NEON_MULTI_TOKENS) {                           \
                const ABLOCK *a[NEON_MULTI_TOKENS];                                                   \
                neon_state s[NEON_MULTI_TOKENS][2];                                                   \
                for (int k = 0; k < NEON_MULTI_TOKENS; ++k) {                                         \
                    a[k] = (const ABLOCK *)((const char *)va + (size_t)(t + k) * astride);            \
                    s[k][0] = neon_init();                                                            \
                    s[k][1] = neon_init();                                                            \
                }                                                                                     \
                int64_t b = 0;                                                                        \
                for (; b + 1 < nb; b += 2) {                                                          \
                    for (int k = 0; k < NEON_MULTI_TOKENS; ++k) neon_step_##NAME(&s[k][0], w + b, a[k] + b); \
                    for (int k = 0; k < NEON_MULTI_TOKENS; ++k) neon_step_##NAME(&s[k][1], w + b + 1, a[k] + b + 1); \
                }                                                                                     \
                if (b < nb)                                                                           \
                    for (int k = 0; k < NEON_MULTI_TOKENS; ++k) neon_step_##NAME(&s[k][0], w + b, a[k] + b); \
                for (int k = 0; k < NEON_MULTI_TOKENS; ++k)                                           \
                    out[(t + k) * ostride + r] = neon_finish(&s[k][0]) + neon_finish(&s[k][1]);       \
            }                                                                                         \
            for (; t < ntok; ++t) out[t * ostride + r] = neon_dot_##NAME(n, w, (const char *)va + (size_t)t * astride); \
        }                                                                                             \
    }

#endif // __aarch64__
#endif
