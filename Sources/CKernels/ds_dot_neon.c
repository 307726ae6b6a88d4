// ds_dot_neon.c — AArch64 NEON kernels using the int8 dot product instruction (SDOT, vdotq_s32).
//
// Each quantized block is widened to signed bytes and multiplied with the activation bytes by
// vdotq_s32 (4 products summed per int32 lane); zero points are removed either by subtracting them
// from the bytes (q - 8, q - 16) or, for K-quants, through the activation block sums (bsums).
// Only used when the CPU reports the dot-product extension (see ds_neon_dotprod_available).
#include "ds_internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

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

// ---- 32-element blocks ----------------------------------------------------------------------------

static DS_NEON_TARGET float neon_dot_q4_0(int64_t n, const void *vw, const void *va) {
    const ds_block_q4_0 *w = (const ds_block_q4_0 *)vw;
    const ds_block_q8_0 *a = (const ds_block_q8_0 *)va;
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t b = 0; b < n / 32; ++b) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), vdupq_n_s8(8));
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
        int32x4_t s = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(a[b].qs));
        s = vdotq_s32(s, hi, vld1q_s8(a[b].qs + 16));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), neon_half(w[b].d) * neon_half(a[b].d));
    }
    return vaddvq_f32(acc);
}

static DS_NEON_TARGET float neon_dot_q4_1(int64_t n, const void *vw, const void *va) {
    const ds_block_q4_1 *w = (const ds_block_q4_1 *)vw;
    const ds_block_q8_1 *a = (const ds_block_q8_1 *)va;
    float32x4_t acc = vdupq_n_f32(0);
    float min_sum = 0;
    for (int64_t b = 0; b < n / 32; ++b) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));
        const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
        int32x4_t s = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(a[b].qs));
        s = vdotq_s32(s, hi, vld1q_s8(a[b].qs + 16));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), neon_half(w[b].d) * neon_half(a[b].d));
        min_sum += neon_half(w[b].m) * neon_half(a[b].s);
    }
    return vaddvq_f32(acc) + min_sum;
}

static DS_NEON_TARGET float neon_dot_q5_0(int64_t n, const void *vw, const void *va) {
    const ds_block_q5_0 *w = (const ds_block_q5_0 *)vw;
    const ds_block_q8_0 *a = (const ds_block_q8_0 *)va;
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t b = 0; b < n / 32; ++b) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const uint8x16_t lo = vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), neon_bit4_bytes(qh, 0));
        const uint8x16_t hi = vorrq_u8(vshrq_n_u8(q, 4), neon_bit4_bytes(qh, 16));
        const int8x16_t lo_s = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(16));
        const int8x16_t hi_s = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(16));
        int32x4_t s = vdotq_s32(vdupq_n_s32(0), lo_s, vld1q_s8(a[b].qs));
        s = vdotq_s32(s, hi_s, vld1q_s8(a[b].qs + 16));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), neon_half(w[b].d) * neon_half(a[b].d));
    }
    return vaddvq_f32(acc);
}

static DS_NEON_TARGET float neon_dot_q5_1(int64_t n, const void *vw, const void *va) {
    const ds_block_q5_1 *w = (const ds_block_q5_1 *)vw;
    const ds_block_q8_1 *a = (const ds_block_q8_1 *)va;
    float32x4_t acc = vdupq_n_f32(0);
    float min_sum = 0;
    for (int64_t b = 0; b < n / 32; ++b) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const uint8x16_t lo = vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), neon_bit4_bytes(qh, 0));
        const uint8x16_t hi = vorrq_u8(vshrq_n_u8(q, 4), neon_bit4_bytes(qh, 16));
        int32x4_t s = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), vld1q_s8(a[b].qs));
        s = vdotq_s32(s, vreinterpretq_s8_u8(hi), vld1q_s8(a[b].qs + 16));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), neon_half(w[b].d) * neon_half(a[b].d));
        min_sum += neon_half(w[b].m) * neon_half(a[b].s);
    }
    return vaddvq_f32(acc) + min_sum;
}

static DS_NEON_TARGET float neon_dot_q8_0(int64_t n, const void *vw, const void *va) {
    const ds_block_q8_0 *w = (const ds_block_q8_0 *)vw;
    const ds_block_q8_0 *a = (const ds_block_q8_0 *)va;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int64_t b = 0;
    for (; b + 1 < n / 32; b += 2) {
        int32x4_t s0 = vdotq_s32(vdupq_n_s32(0), vld1q_s8(w[b].qs), vld1q_s8(a[b].qs));
        s0 = vdotq_s32(s0, vld1q_s8(w[b].qs + 16), vld1q_s8(a[b].qs + 16));
        int32x4_t s1 = vdotq_s32(vdupq_n_s32(0), vld1q_s8(w[b + 1].qs), vld1q_s8(a[b + 1].qs));
        s1 = vdotq_s32(s1, vld1q_s8(w[b + 1].qs + 16), vld1q_s8(a[b + 1].qs + 16));
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s0), neon_half(w[b].d) * neon_half(a[b].d));
        acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(s1), neon_half(w[b + 1].d) * neon_half(a[b + 1].d));
    }
    if (b < n / 32) {
        int32x4_t s0 = vdotq_s32(vdupq_n_s32(0), vld1q_s8(w[b].qs), vld1q_s8(a[b].qs));
        s0 = vdotq_s32(s0, vld1q_s8(w[b].qs + 16), vld1q_s8(a[b].qs + 16));
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s0), neon_half(w[b].d) * neon_half(a[b].d));
    }
    return vaddvq_f32(vaddq_f32(acc0, acc1));
}

// ---- K-quants ------------------------------------------------------------------------------------

// sum_s scale_s * bsum_s over the 16 sub-blocks of 16 (scales as int16).
static inline int32_t neon_scaled_bsums(const int16_t *bsums, int16x8_t sc_lo, int16x8_t sc_hi) {
    int32x4_t p = vmull_s16(vget_low_s16(vld1q_s16(bsums)), vget_low_s16(sc_lo));
    p = vmlal_s16(p, vget_high_s16(vld1q_s16(bsums)), vget_high_s16(sc_lo));
    p = vmlal_s16(p, vget_low_s16(vld1q_s16(bsums + 8)), vget_low_s16(sc_hi));
    p = vmlal_s16(p, vget_high_s16(vld1q_s16(bsums + 8)), vget_high_s16(sc_hi));
    return vaddvq_s32(p);
}

static DS_NEON_TARGET float neon_dot_q4_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q4_K *w = (const ds_block_q4_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        uint8_t scales[8], mins[8];
        for (int j = 0; j < 8; ++j) ds_k4_scale_min(j, w[b].scales, &scales[j], &mins[j]);
        // min term: sum_j m_j * (bsum_2j + bsum_2j+1)
        const int16x8_t pair_sums = vpaddq_s16(vld1q_s16(a[b].bsums), vld1q_s16(a[b].bsums + 8));
        const int16x8_t m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins)));
        int32x4_t mp = vmull_s16(vget_low_s16(pair_sums), vget_low_s16(m16));
        mp = vmlal_s16(mp, vget_high_s16(pair_sums), vget_high_s16(m16));
        const int32_t min_sum = vaddvq_s32(mp);

        int32x4_t acc = vdupq_n_s32(0);
        const uint8_t *q4 = w[b].qs;
        const int8_t *q8 = a[b].qs;
        for (int c = 0; c < 4; ++c, q4 += 32, q8 += 64) {
            const uint8x16_t q0 = vld1q_u8(q4), q1 = vld1q_u8(q4 + 16);
            const uint8x16_t mask = vdupq_n_u8(0x0F);
            int32x4_t lo = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(q0, mask)), vld1q_s8(q8));
            lo = vdotq_s32(lo, vreinterpretq_s8_u8(vandq_u8(q1, mask)), vld1q_s8(q8 + 16));
            int32x4_t hi = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vld1q_s8(q8 + 32));
            hi = vdotq_s32(hi, vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), vld1q_s8(q8 + 48));
            acc = vmlaq_n_s32(acc, lo, scales[2 * c]);
            acc = vmlaq_n_s32(acc, hi, scales[2 * c + 1]);
        }
        sum += neon_half(w[b].d) * a[b].d * (float)vaddvq_s32(acc) -
               neon_half(w[b].dmin) * a[b].d * (float)min_sum;
    }
    return sum;
}

static DS_NEON_TARGET float neon_dot_q5_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q5_K *w = (const ds_block_q5_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        uint8_t scales[8], mins[8];
        for (int j = 0; j < 8; ++j) ds_k4_scale_min(j, w[b].scales, &scales[j], &mins[j]);
        const int16x8_t pair_sums = vpaddq_s16(vld1q_s16(a[b].bsums), vld1q_s16(a[b].bsums + 8));
        const int16x8_t m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins)));
        int32x4_t mp = vmull_s16(vget_low_s16(pair_sums), vget_low_s16(m16));
        mp = vmlal_s16(mp, vget_high_s16(pair_sums), vget_high_s16(m16));
        const int32_t min_sum = vaddvq_s32(mp);

        const uint8x16_t qh0 = vld1q_u8(w[b].qh), qh1 = vld1q_u8(w[b].qh + 16);
        const uint8x16_t mask = vdupq_n_u8(0x0F), bit4 = vdupq_n_u8(0x10);
        int32x4_t acc = vdupq_n_s32(0);
        const uint8_t *q4 = w[b].qs;
        const int8_t *q8 = a[b].qs;
        for (int c = 0; c < 4; ++c, q4 += 32, q8 += 64) {
            const uint8x16_t q0 = vld1q_u8(q4), q1 = vld1q_u8(q4 + 16);
            const uint8x16_t sel0 = vdupq_n_u8((uint8_t)(1u << (2 * c)));
            const uint8x16_t sel1 = vdupq_n_u8((uint8_t)(2u << (2 * c)));
            const uint8x16_t l0 = vorrq_u8(vandq_u8(q0, mask), vandq_u8(vtstq_u8(qh0, sel0), bit4));
            const uint8x16_t l1 = vorrq_u8(vandq_u8(q1, mask), vandq_u8(vtstq_u8(qh1, sel0), bit4));
            const uint8x16_t h0 = vorrq_u8(vshrq_n_u8(q0, 4), vandq_u8(vtstq_u8(qh0, sel1), bit4));
            const uint8x16_t h1 = vorrq_u8(vshrq_n_u8(q1, 4), vandq_u8(vtstq_u8(qh1, sel1), bit4));
            int32x4_t lo = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(l0), vld1q_s8(q8));
            lo = vdotq_s32(lo, vreinterpretq_s8_u8(l1), vld1q_s8(q8 + 16));
            int32x4_t hi = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(h0), vld1q_s8(q8 + 32));
            hi = vdotq_s32(hi, vreinterpretq_s8_u8(h1), vld1q_s8(q8 + 48));
            acc = vmlaq_n_s32(acc, lo, scales[2 * c]);
            acc = vmlaq_n_s32(acc, hi, scales[2 * c + 1]);
        }
        sum += neon_half(w[b].d) * a[b].d * (float)vaddvq_s32(acc) -
               neon_half(w[b].dmin) * a[b].d * (float)min_sum;
    }
    return sum;
}

static DS_NEON_TARGET float neon_dot_q6_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q6_K *w = (const ds_block_q6_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const int8x16_t sc8 = vld1q_s8(w[b].scales);
        // q in 0..63 stands for q - 32: subtract 32 * sum_s sc_s * bsum_s at the end.
        const int32_t offset = neon_scaled_bsums(a[b].bsums, vmovl_s8(vget_low_s8(sc8)), vmovl_s8(vget_high_s8(sc8)));
        int32x4_t acc = vdupq_n_s32(0);
        const uint8x16_t mask = vdupq_n_u8(0x0F), two = vdupq_n_u8(0x03);
        for (int h = 0; h < 2; ++h) {
            const uint8_t *ql = w[b].ql + 64 * h;
            const uint8_t *qh = w[b].qh + 32 * h;
            const int8_t *q8 = a[b].qs + 128 * h;
            const int8_t *sc = w[b].scales + 8 * h;
            // 16-byte halves (i = 0: values l = 0..15, i = 1: l = 16..31) of the four 32-value groups.
            for (int i = 0; i < 2; ++i) {
                const uint8x16_t l0 = vld1q_u8(ql + 16 * i), l1 = vld1q_u8(ql + 32 + 16 * i);
                const uint8x16_t hb = vld1q_u8(qh + 16 * i);
                const uint8x16_t v0 = vorrq_u8(vandq_u8(l0, mask), vshlq_n_u8(vandq_u8(hb, two), 4));
                const uint8x16_t v1 = vorrq_u8(vandq_u8(l1, mask), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), two), 4));
                const uint8x16_t v2 = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), two), 4));
                const uint8x16_t v3 = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
                const int32x4_t zero = vdupq_n_s32(0);
                acc = vmlaq_n_s32(acc, vdotq_s32(zero, vreinterpretq_s8_u8(v0), vld1q_s8(q8 + 16 * i)), sc[0 + i]);
                acc = vmlaq_n_s32(acc, vdotq_s32(zero, vreinterpretq_s8_u8(v1), vld1q_s8(q8 + 32 + 16 * i)), sc[2 + i]);
                acc = vmlaq_n_s32(acc, vdotq_s32(zero, vreinterpretq_s8_u8(v2), vld1q_s8(q8 + 64 + 16 * i)), sc[4 + i]);
                acc = vmlaq_n_s32(acc, vdotq_s32(zero, vreinterpretq_s8_u8(v3), vld1q_s8(q8 + 96 + 16 * i)), sc[6 + i]);
            }
        }
        sum += neon_half(w[b].d) * a[b].d * (float)(vaddvq_s32(acc) - 32 * offset);
    }
    return sum;
}

// ---- Float weights ---------------------------------------------------------------------------------

static float neon_dot_f32(int64_t n, const void *vw, const void *va) {
    const float *w = (const float *)vw, *a = (const float *)va;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(w + i), vld1q_f32(a + i));
        s1 = vfmaq_f32(s1, vld1q_f32(w + i + 4), vld1q_f32(a + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(w + i + 8), vld1q_f32(a + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(w + i + 12), vld1q_f32(a + i + 12));
    }
    for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(w + i), vld1q_f32(a + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; ++i) sum += w[i] * a[i];
    return sum;
}

static float neon_dot_f16(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = (const uint16_t *)vw;
    const float *a = (const float *)va;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(w + i));
        const float16x8_t h1 = vreinterpretq_f16_u16(vld1q_u16(w + i + 8));
        s0 = vfmaq_f32(s0, vcvt_f32_f16(vget_low_f16(h0)), vld1q_f32(a + i));
        s1 = vfmaq_f32(s1, vcvt_high_f32_f16(h0), vld1q_f32(a + i + 4));
        s2 = vfmaq_f32(s2, vcvt_f32_f16(vget_low_f16(h1)), vld1q_f32(a + i + 8));
        s3 = vfmaq_f32(s3, vcvt_high_f32_f16(h1), vld1q_f32(a + i + 12));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; ++i) sum += neon_half(w[i]) * a[i];
    return sum;
}

static float neon_dot_bf16(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = (const uint16_t *)vw;
    const float *a = (const float *)va;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vld1q_u16(w + i);
        s0 = vfmaq_f32(s0, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)), vld1q_f32(a + i));
        s1 = vfmaq_f32(s1, vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16)), vld1q_f32(a + i + 4));
    }
    float sum = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; ++i) sum += ds_bfloat_to_float(w[i]) * a[i];
    return sum;
}

void ds_fill_neon_kernels(ds_kernel_table *t) {
#define DS_SET(TYPE, FN)    \
    t->dot[TYPE] = FN;      \
    t->rows[TYPE] = NULL;   \
    t->multi[TYPE] = NULL;  \
    t->own[TYPE] = 1;
    DS_SET(DS_TYPE_F32, neon_dot_f32)
    DS_SET(DS_TYPE_F16, neon_dot_f16)
    DS_SET(DS_TYPE_BF16, neon_dot_bf16)
    DS_SET(DS_TYPE_Q4_0, neon_dot_q4_0)
    DS_SET(DS_TYPE_Q4_1, neon_dot_q4_1)
    DS_SET(DS_TYPE_Q5_0, neon_dot_q5_0)
    DS_SET(DS_TYPE_Q5_1, neon_dot_q5_1)
    DS_SET(DS_TYPE_Q8_0, neon_dot_q8_0)
    DS_SET(DS_TYPE_Q4_K, neon_dot_q4_K)
    DS_SET(DS_TYPE_Q5_K, neon_dot_q5_K)
    DS_SET(DS_TYPE_Q6_K, neon_dot_q6_K)
#undef DS_SET
}

#endif // __aarch64__
