// ds_dot_neon.c — AArch64 NEON kernels using the int8 dot product instruction (SDOT, vdotq_s32).
//
// Each quantized block is widened to signed bytes and multiplied with the activation bytes by
// vdotq_s32 (4 products summed per int32 lane); zero points are removed either by subtracting them
// from the bytes (q - 8, q - 16) or, for K-quants, through the activation block sums (bsums).
// Only used when the CPU reports the dot-product extension (see ds_neon_dotprod_available).
#include "ds_neon_common.h"

#if defined(__aarch64__)

// ---- 32-element blocks ----------------------------------------------------------------------------

NEON_STEP neon_step_q4_0(neon_state *st, const ds_block_q4_0 *w, const ds_block_q8_0 *a) {
    const uint8x16_t q = vld1q_u8(w->qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), vdupq_n_s8(8));
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(a->qs));
    s = vdotq_s32(s, hi, vld1q_s8(a->qs + 16));
    st->acc = vfmaq_n_f32(st->acc, vcvtq_f32_s32(s), neon_half(w->d) * neon_half(a->d));
}

NEON_STEP neon_step_q4_1(neon_state *st, const ds_block_q4_1 *w, const ds_block_q8_1 *a) {
    const uint8x16_t q = vld1q_u8(w->qs);
    const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));
    const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(a->qs));
    s = vdotq_s32(s, hi, vld1q_s8(a->qs + 16));
    st->acc = vfmaq_n_f32(st->acc, vcvtq_f32_s32(s), neon_half(w->d) * neon_half(a->d));
    st->sum += neon_half(w->m) * neon_half(a->s);
}

// Q5 quants as bytes 0..31: low nibbles with bit 4 from qh (bits 0..15 low half, 16..31 high half).
static inline __attribute__((always_inline)) void neon_q5_bytes(const uint8_t *qs, const uint8_t *qh_bytes,
                                                                uint8x16_t *lo, uint8x16_t *hi) {
    uint32_t qh;
    memcpy(&qh, qh_bytes, 4);
    const uint8x16_t q = vld1q_u8(qs);
    *lo = vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), neon_bit4_bytes(qh, 0));
    *hi = vorrq_u8(vshrq_n_u8(q, 4), neon_bit4_bytes(qh, 16));
}

NEON_STEP neon_step_q5_0(neon_state *st, const ds_block_q5_0 *w, const ds_block_q8_0 *a) {
    uint8x16_t lo, hi;
    neon_q5_bytes(w->qs, w->qh, &lo, &hi);
    const int8x16_t lo_s = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(16));
    const int8x16_t hi_s = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(16));
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), lo_s, vld1q_s8(a->qs));
    s = vdotq_s32(s, hi_s, vld1q_s8(a->qs + 16));
    st->acc = vfmaq_n_f32(st->acc, vcvtq_f32_s32(s), neon_half(w->d) * neon_half(a->d));
}

NEON_STEP neon_step_q5_1(neon_state *st, const ds_block_q5_1 *w, const ds_block_q8_1 *a) {
    uint8x16_t lo, hi;
    neon_q5_bytes(w->qs, w->qh, &lo, &hi);
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), vld1q_s8(a->qs));
    s = vdotq_s32(s, vreinterpretq_s8_u8(hi), vld1q_s8(a->qs + 16));
    st->acc = vfmaq_n_f32(st->acc, vcvtq_f32_s32(s), neon_half(w->d) * neon_half(a->d));
    st->sum += neon_half(w->m) * neon_half(a->s);
}

NEON_STEP neon_step_q8_0(neon_state *st, const ds_block_q8_0 *w, const ds_block_q8_0 *a) {
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), vld1q_s8(w->qs), vld1q_s8(a->qs));
    s = vdotq_s32(s, vld1q_s8(w->qs + 16), vld1q_s8(a->qs + 16));
    st->acc = vfmaq_n_f32(st->acc, vcvtq_f32_s32(s), neon_half(w->d) * neon_half(a->d));
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

// min term of Q4_K/Q5_K: sum_j m_j * (bsum_2j + bsum_2j+1).
static inline __attribute__((always_inline)) int32_t neon_k4_min_sum(const int16_t *bsums, const uint8_t *mins) {
    const int16x8_t pair_sums = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
    const int16x8_t m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins)));
    int32x4_t mp = vmull_s16(vget_low_s16(pair_sums), vget_low_s16(m16));
    mp = vmlal_s16(mp, vget_high_s16(pair_sums), vget_high_s16(m16));
    return vaddvq_s32(mp);
}

NEON_STEP neon_step_q4_K(neon_state *st, const ds_block_q4_K *w, const ds_block_q8_K *a) {
    uint8_t scales[8], mins[8];
    for (int j = 0; j < 8; ++j) ds_k4_scale_min(j, w->scales, &scales[j], &mins[j]);
    const int32_t min_sum = neon_k4_min_sum(a->bsums, mins);
    int32x4_t acc = vdupq_n_s32(0);
    const uint8_t *q4 = w->qs;
    const int8_t *q8 = a->qs;
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
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc) - neon_half(w->dmin) * a->d * (float)min_sum;
}

NEON_STEP neon_step_q5_K(neon_state *st, const ds_block_q5_K *w, const ds_block_q8_K *a) {
    uint8_t scales[8], mins[8];
    for (int j = 0; j < 8; ++j) ds_k4_scale_min(j, w->scales, &scales[j], &mins[j]);
    const int32_t min_sum = neon_k4_min_sum(a->bsums, mins);
    const uint8x16_t qh0 = vld1q_u8(w->qh), qh1 = vld1q_u8(w->qh + 16);
    const uint8x16_t mask = vdupq_n_u8(0x0F), bit4 = vdupq_n_u8(0x10);
    int32x4_t acc = vdupq_n_s32(0);
    const uint8_t *q4 = w->qs;
    const int8_t *q8 = a->qs;
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
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc) - neon_half(w->dmin) * a->d * (float)min_sum;
}

NEON_STEP neon_step_q6_K(neon_state *st, const ds_block_q6_K *w, const ds_block_q8_K *a) {
    const int8x16_t sc8 = vld1q_s8(w->scales);
    // q in 0..63 stands for q - 32: subtract 32 * sum_s sc_s * bsum_s at the end.
    const int32_t offset = neon_scaled_bsums(a->bsums, vmovl_s8(vget_low_s8(sc8)), vmovl_s8(vget_high_s8(sc8)));
    int32x4_t acc = vdupq_n_s32(0);
    const uint8x16_t mask = vdupq_n_u8(0x0F), two = vdupq_n_u8(0x03);
    for (int h = 0; h < 2; ++h) {
        const uint8_t *ql = w->ql + 64 * h;
        const uint8_t *qh = w->qh + 32 * h;
        const int8_t *q8 = a->qs + 128 * h;
        const int8_t *sc = w->scales + 8 * h;
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
    st->sum += neon_half(w->d) * a->d * (float)(vaddvq_s32(acc) - 32 * offset);
}

NEON_QUANT_KERNELS(q4_0, ds_block_q4_0, ds_block_q8_0, 32)
NEON_QUANT_KERNELS(q4_1, ds_block_q4_1, ds_block_q8_1, 32)
NEON_QUANT_KERNELS(q5_0, ds_block_q5_0, ds_block_q8_0, 32)
NEON_QUANT_KERNELS(q5_1, ds_block_q5_1, ds_block_q8_1, 32)
NEON_QUANT_KERNELS(q8_0, ds_block_q8_0, ds_block_q8_0, 32)
NEON_QUANT_KERNELS(q4_K, ds_block_q4_K, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(q5_K, ds_block_q5_K, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(q6_K, ds_block_q6_K, ds_block_q8_K, DS_QK_K)

// ---- Float weights ---------------------------------------------------------------------------------
// Four accumulators over 16 elements, a 4-element tail into the first, then a scalar tail: the same
// for F32, F16 and BF16 (their loaders convert 4 weights to float).

static inline __attribute__((always_inline)) float32x4_t neon_w4_f32(const void *w, int64_t i) {
    return vld1q_f32((const float *)w + i);
}
static inline __attribute__((always_inline)) float32x4_t neon_w4_f16(const void *w, int64_t i) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)w + i)));
}
static inline __attribute__((always_inline)) float32x4_t neon_w4_bf16(const void *w, int64_t i) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)w + i), 16));
}
static inline __attribute__((always_inline)) float neon_w1_f32(const void *w, int64_t i) { return ((const float *)w)[i]; }
static inline __attribute__((always_inline)) float neon_w1_f16(const void *w, int64_t i) { return neon_half(((const uint16_t *)w)[i]); }
static inline __attribute__((always_inline)) float neon_w1_bf16(const void *w, int64_t i) {
    return ds_bfloat_to_float(((const uint16_t *)w)[i]);
}

// neon_dots_NAME: one row against KT tokens (a constant after inlining), out[k·ostride]; the single-token
// dot is its KT = 1 case, so a token's bits never depend on the others.
#define NEON_FLOAT_KERNELS(NAME)                                                                      \
    static inline __attribute__((always_inline)) void neon_dots_##NAME(int64_t n, const void *w,     \
                                                                       const float *const *a, const int KT, \
                                                                       float *out, int64_t ostride) { \
        float32x4_t s[NEON_MULTI_TOKENS][4];                                                          \
        for (int k = 0; k < KT; ++k)                                                                  \
            for (int j = 0; j < 4; ++j) s[k][j] = vdupq_n_f32(0);                                     \
        int64_t i = 0;                                                                                \
        for (; i + 16 <= n; i += 16) {                                                                \
            const float32x4_t v0 = neon_w4_##NAME(w, i), v1 = neon_w4_##NAME(w, i + 4);              \
            const float32x4_t v2 = neon_w4_##NAME(w, i + 8), v3 = neon_w4_##NAME(w, i + 12);         \
            for (int k = 0; k < KT; ++k) {                                                            \
                s[k][0] = vfmaq_f32(s[k][0], v0, vld1q_f32(a[k] + i));                                \
                s[k][1] = vfmaq_f32(s[k][1], v1, vld1q_f32(a[k] + i + 4));                            \
                s[k][2] = vfmaq_f32(s[k][2], v2, vld1q_f32(a[k] + i + 8));                            \
                s[k][3] = vfmaq_f32(s[k][3], v3, vld1q_f32(a[k] + i + 12));                           \
            }                                                                                         \
        }                                                                                             \
        for (; i + 4 <= n; i += 4) {                                                                  \
            const float32x4_t v = neon_w4_##NAME(w, i);                                               \
            for (int k = 0; k < KT; ++k) s[k][0] = vfmaq_f32(s[k][0], v, vld1q_f32(a[k] + i));        \
        }                                                                                             \
        for (int k = 0; k < KT; ++k) {                                                                \
            float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s[k][0], s[k][1]), vaddq_f32(s[k][2], s[k][3]))); \
            for (int64_t e = i; e < n; ++e) sum = fmaf(neon_w1_##NAME(w, e), a[k][e], sum);           \
            out[k * ostride] = sum;                                                                   \
        }                                                                                             \
    }                                                                                                 \
    static float neon_dot_##NAME(int64_t n, const void *w, const void *va) {                         \
        const float *a[1] = {(const float *)va};                                                      \
        float out;                                                                                    \
        neon_dots_##NAME(n, w, a, 1, &out, 0);                                                        \
        return out;                                                                                   \
    }                                                                                                 \
    static void neon_multi_##NAME(int64_t n, const void *vw, size_t stride, int64_t nrows, const void *va, \
                                  size_t astride, int64_t ntok, float *out, int64_t ostride) {       \
        const float *a[NEON_MULTI_TOKENS];                                                            \
        for (int64_t r = 0; r < nrows; ++r) {                                                         \
            const char *w = (const char *)vw + (size_t)r * stride;                                    \
            int64_t t = 0;                                                                            \
            for (; t + NEON_MULTI_TOKENS <= ntok; t += NEON_MULTI_TOKENS) {                           \
                for (int k = 0; k < NEON_MULTI_TOKENS; ++k) a[k] = (const float *)((const char *)va + (size_t)(t + k) * astride); \
                neon_dots_##NAME(n, w, a, NEON_MULTI_TOKENS, out + t * ostride + r, ostride);        \
            }                                                                                         \
            for (; t < ntok; ++t) {                                                                   \
                a[0] = (const float *)((const char *)va + (size_t)t * astride);                       \
                neon_dots_##NAME(n, w, a, 1, out + t * ostride + r, ostride);                         \
            }                                                                                         \
        }                                                                                             \
    }

NEON_FLOAT_KERNELS(f32)
NEON_FLOAT_KERNELS(f16)
NEON_FLOAT_KERNELS(bf16)

void ds_fill_neon_kernels(ds_kernel_table *t) {
#define DS_SET(TYPE, NAME)                \
    t->dot[TYPE] = neon_dot_##NAME;       \
    t->rows[TYPE] = NULL;                 \
    t->multi[TYPE] = neon_multi_##NAME;   \
    t->own[TYPE] = 1;
    DS_SET(DS_TYPE_F32, f32)
    DS_SET(DS_TYPE_F16, f16)
    DS_SET(DS_TYPE_BF16, bf16)
    DS_SET(DS_TYPE_Q4_0, q4_0)
    DS_SET(DS_TYPE_Q4_1, q4_1)
    DS_SET(DS_TYPE_Q5_0, q5_0)
    DS_SET(DS_TYPE_Q5_1, q5_1)
    DS_SET(DS_TYPE_Q8_0, q8_0)
    DS_SET(DS_TYPE_Q4_K, q4_K)
    DS_SET(DS_TYPE_Q5_K, q5_K)
    DS_SET(DS_TYPE_Q6_K, q6_K)
#undef DS_SET
    ds_fill_iquant_neon_kernels(t);
}

#endif // __aarch64__
