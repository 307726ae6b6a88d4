// ds_iquant_neon.c — AArch64 NEON dot products of the i-quants against Q8_K (IQ4_NL: Q8_0) activations,
// with the int8 dot product (SDOT, vdotq_s32).
//
// Every type decodes 16 weights at a time into signed bytes and dots them with 16 activation bytes:
// - IQ2 / IQ3: codebook rows (8 or 4 unsigned bytes each) looked up by index, negated where the
//   sign bits say (x ^ m) − m, m = 0xFF where set; sub-block scales multiply the integer sums;
// - IQ1: rows of {−1, 0, 1} become 8·g ± 1 (the ±1/8 shift folded in, |8·g ± 1| ≤ 9), so one dot
//   gives 8·Σ g·q ± Σ q, the scalar kernel's integer;
// - IQ4: the 16-entry non-linear table by byte shuffle (TBL).
// The integer sums equal the scalar kernels' (ds_iquant.c); only the float finish may round differently.
#include "ds_neon_common.h"

#if defined(__aarch64__)

// 16 bytes: 0xFF where bit j of s0 (bytes 0..7) or s1 (bytes 8..15) is set.
static inline __attribute__((always_inline)) int8x16_t neon_sign_mask(uint8_t s0, uint8_t s1) {
    static const uint8_t bits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return vreinterpretq_s8_u8(vtstq_u8(vcombine_u8(vdup_n_u8(s0), vdup_n_u8(s1)), vld1q_u8(bits)));
}

// g negated where the mask is set.
static inline __attribute__((always_inline)) int8x16_t neon_apply_signs(uint8x16_t g, int8x16_t mask) {
    return vsubq_s8(veorq_s8(vreinterpretq_s8_u8(g), mask), mask);
}

// Two 8-byte codebook rows as one vector.
static inline __attribute__((always_inline)) uint8x16_t neon_rows8(const uint8_t *r0, const uint8_t *r1) {
    return vcombine_u8(vld1_u8(r0), vld1_u8(r1));
}

// Four 4-byte codebook rows as one vector.
static inline __attribute__((always_inline)) uint8x16_t neon_rows4(const uint8_t *r0, const uint8_t *r1, const uint8_t *r2,
                                                                    const uint8_t *r3) {
    uint32_t v[4];
    memcpy(&v[0], r0, 4);
    memcpy(&v[1], r1, 4);
    memcpy(&v[2], r2, 4);
    memcpy(&v[3], r3, 4);
    return vreinterpretq_u8_u32(vld1q_u32(v));
}

// Σ of the 4 lanes of two SDOTs: w0 · q[0..15] + w1 · q[16..31].
static inline __attribute__((always_inline)) DS_NEON_TARGET int32x4_t neon_dot32(int8x16_t w0, int8x16_t w1, const int8_t *q) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(q)), w1, vld1q_s8(q + 16));
}

// acc + (w0 · q[0..15]) · (2·lo + 1) + (w1 · q[16..31]) · (2·hi + 1), lo and hi the nibbles of `scales`.
static inline __attribute__((always_inline)) DS_NEON_TARGET int32x4_t neon_dot32_nibble_scales(int32x4_t acc, int8x16_t w0, int8x16_t w1,
                                                                                             const int8_t *q, uint8_t scales) {
    const int32x4_t z = vdupq_n_s32(0);
    acc = vmlaq_n_s32(acc, vdotq_s32(z, w0, vld1q_s8(q)), 2 * (scales & 0x0F) + 1);
    return vmlaq_n_s32(acc, vdotq_s32(z, w1, vld1q_s8(q + 16)), 2 * (scales >> 4) + 1);
}

// ---- IQ2: 8-value rows of {8, 25, 43}, total · d · d_a / 8 ---------------------------------------------

NEON_STEP neon_step_iq2_xxs(neon_state *st, const ds_block_iq2_xxs *w, const ds_block_q8_K *a) {
    const int8_t *q8 = a->qs;
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < DS_QK_K / 32; ++ib, q8 += 32) {
        uint32_t aux[2];
        memcpy(aux, w->qs + 4 * ib, 8);
        const uint8_t *idx = (const uint8_t *)aux;
        const uint8_t *s = ds_ksigns_iq2xs;
        const int8x16_t w0 = neon_apply_signs(neon_rows8(ds_iq2xxs_grid[idx[0]], ds_iq2xxs_grid[idx[1]]),
                                              neon_sign_mask(s[aux[1] & 127], s[(aux[1] >> 7) & 127]));
        const int8x16_t w1 = neon_apply_signs(neon_rows8(ds_iq2xxs_grid[idx[2]], ds_iq2xxs_grid[idx[3]]),
                                              neon_sign_mask(s[(aux[1] >> 14) & 127], s[(aux[1] >> 21) & 127]));
        acc = vmlaq_n_s32(acc, neon_dot32(w0, w1, q8), (int32_t)(2 * (aux[1] >> 28) + 1));
    }
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc) * 0.125f;
}

NEON_STEP neon_step_iq2_xs(neon_state *st, const ds_block_iq2_xs *w, const ds_block_q8_K *a) {
    const int8_t *q8 = a->qs;
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < DS_QK_K / 32; ++ib, q8 += 32) {
        const uint16_t *c = w->qs + 4 * ib;
        const uint8_t *s = ds_ksigns_iq2xs;
        const int8x16_t w0 = neon_apply_signs(neon_rows8(ds_iq2xs_grid[c[0] & 511], ds_iq2xs_grid[c[1] & 511]),
                                              neon_sign_mask(s[c[0] >> 9], s[c[1] >> 9]));
        const int8x16_t w1 = neon_apply_signs(neon_rows8(ds_iq2xs_grid[c[2] & 511], ds_iq2xs_grid[c[3] & 511]),
                                              neon_sign_mask(s[c[2] >> 9], s[c[3] >> 9]));
        acc = neon_dot32_nibble_scales(acc, w0, w1, q8, w->scales[ib]);
    }
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc) * 0.125f;
}

NEON_STEP neon_step_iq2_s(neon_state *st, const ds_block_iq2_s *w, const ds_block_q8_K *a) {
    const int8_t *q8 = a->qs;
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < DS_QK_K / 32; ++ib, q8 += 32) {
        const uint8_t *qs = w->qs + 4 * ib, *signs = w->qs + DS_QK_K / 8 + 4 * ib;
        const int qh = w->qh[ib];
        const int8x16_t w0 = neon_apply_signs(neon_rows8(ds_iq2s_grid[qs[0] | ((qh << 8) & 0x300)], ds_iq2s_grid[qs[1] | ((qh << 6) & 0x300)]),
                                              neon_sign_mask(signs[0], signs[1]));
        const int8x16_t w1 = neon_apply_signs(neon_rows8(ds_iq2s_grid[qs[2] | ((qh << 4) & 0x300)], ds_iq2s_grid[qs[3] | ((qh << 2) & 0x300)]),
                                              neon_sign_mask(signs[2], signs[3]));
        acc = neon_dot32_nibble_scales(acc, w0, w1, q8, w->scales[ib]);
    }
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc) * 0.125f;
}

// ---- IQ3: 4-value rows -------------------------------------------------------------------------------

// IQ3_XXS: rows of {4, 12, …, 62}, 7-bit sign indices and the scale in one uint32 per 32; total / 4.
NEON_STEP neon_step_iq3_xxs(neon_state *st, const ds_block_iq3_xxs *w, const ds_block_q8_K *a) {
    const int8_t *q8 = a->qs;
    const uint8_t *qs = w->qs, *scales_and_signs = w->qs + DS_QK_K / 4;
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < DS_QK_K / 32; ++ib, q8 += 32, qs += 8) {
        uint32_t aux;
        memcpy(&aux, scales_and_signs + 4 * ib, 4);
        const uint8_t *s = ds_ksigns_iq2xs;
        const int8x16_t w0 = neon_apply_signs(neon_rows4(ds_iq3xxs_grid[qs[0]], ds_iq3xxs_grid[qs[1]], ds_iq3xxs_grid[qs[2]], ds_iq3xxs_grid[qs[3]]),
                                              neon_sign_mask(s[aux & 127], s[(aux >> 7) & 127]));
        const int8x16_t w1 = neon_apply_signs(neon_rows4(ds_iq3xxs_grid[qs[4]], ds_iq3xxs_grid[qs[5]], ds_iq3xxs_grid[qs[6]], ds_iq3xxs_grid[qs[7]]),
                                              neon_sign_mask(s[(aux >> 14) & 127], s[(aux >> 21) & 127]));
        acc = vmlaq_n_s32(acc, neon_dot32(w0, w1, q8), (int32_t)(2 * (aux >> 28) + 1));
    }
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc) * 0.25f;
}

// IQ3_S: 9-bit indices (the 9th bit in qh), explicit sign bytes, 4-bit scales s: weight 1 + 2s.
NEON_STEP neon_step_iq3_s(neon_state *st, const ds_block_iq3_s *w, const ds_block_q8_K *a) {
    const int8_t *q8 = a->qs;
    const uint8_t *qs = w->qs, *signs = w->signs;
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < DS_QK_K / 32; ++ib, q8 += 32, qs += 8, signs += 4) {
        const int qh = w->qh[ib];
        const int8x16_t w0 = neon_apply_signs(neon_rows4(ds_iq3s_grid[qs[0] | ((qh << 8) & 256)], ds_iq3s_grid[qs[1] | ((qh << 7) & 256)],
                                                         ds_iq3s_grid[qs[2] | ((qh << 6) & 256)], ds_iq3s_grid[qs[3] | ((qh << 5) & 256)]),
                                              neon_sign_mask(signs[0], signs[1]));
        const int8x16_t w1 = neon_apply_signs(neon_rows4(ds_iq3s_grid[qs[4] | ((qh << 4) & 256)], ds_iq3s_grid[qs[5] | ((qh << 3) & 256)],
                                                         ds_iq3s_grid[qs[6] | ((qh << 2) & 256)], ds_iq3s_grid[qs[7] | ((qh << 1) & 256)]),
                                              neon_sign_mask(signs[2], signs[3]));
        const int s4 = (w->scales[ib / 2] >> (4 * (ib % 2))) & 0x0F;
        acc = vmlaq_n_s32(acc, neon_dot32(w0, w1, q8), 1 + 2 * s4);
    }
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc);
}

// ---- IQ1: rows of {−1, 0, 1} with a ±1/8 shift, total · d · d_a / 8 ------------------------------------

// Two grid rows as 8·g + shift (shift0 for bytes 0..7, shift1 for 8..15).
static inline __attribute__((always_inline)) int8x16_t neon_iq1_rows(int r0, int r1, int8_t shift0, int8_t shift1) {
    const int8x16_t g = vcombine_s8(vld1_s8(ds_iq1s_grid[r0]), vld1_s8(ds_iq1s_grid[r1]));
    return vaddq_s8(vshlq_n_s8(g, 3), vcombine_s8(vdup_n_s8(shift0), vdup_n_s8(shift1)));
}

NEON_STEP neon_step_iq1_s(neon_state *st, const ds_block_iq1_s *w, const ds_block_q8_K *a) {
    const int8_t *q8 = a->qs;
    const uint8_t *qs = w->qs;
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < DS_QK_K / 32; ++ib, q8 += 32, qs += 4) {
        const int qh = w->qh[ib];
        const int8_t shift = qh & 0x8000 ? -1 : 1;
        const int8x16_t w0 = neon_iq1_rows(qs[0] | ((qh << 8) & 0x700), qs[1] | ((qh << 5) & 0x700), shift, shift);
        const int8x16_t w1 = neon_iq1_rows(qs[2] | ((qh << 2) & 0x700), qs[3] | ((qh >> 1) & 0x700), shift, shift);
        acc = vmlaq_n_s32(acc, neon_dot32(w0, w1, q8), 2 * ((qh >> 12) & 7) + 1);
    }
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc) * 0.125f;
}

// IQ1_M: per 8 values 3 index bits and the shift sign in a nibble of qh; per 16 a 3-bit scale.
NEON_STEP neon_step_iq1_m(neon_state *st, const ds_block_iq1_m *w, const ds_block_q8_K *a) {
    uint16_t sc[4];
    const float d = neon_half(ds_iq1m_d_bits(w, sc));
    const int8_t *q8 = a->qs;
    const uint8_t *qs = w->qs, *qh = w->qh;
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < DS_QK_K / 32; ++ib, q8 += 32, qs += 4, qh += 2) {
        const int shift = 6 * (ib % 2);
        for (int half = 0; half < 2; ++half) {
            const int h = qh[half], lo = h & 0x0F, hi = h >> 4;
            const int8x16_t v = neon_iq1_rows(qs[2 * half] | ((lo & 7) << 8), qs[2 * half + 1] | ((hi & 7) << 8),
                                              lo & 8 ? -1 : 1, hi & 8 ? -1 : 1);
            const int ls = 2 * ((sc[ib / 2] >> (shift + 3 * half)) & 7) + 1;
            acc = vmlaq_n_s32(acc, vdotq_s32(vdupq_n_s32(0), v, vld1q_s8(q8 + 16 * half)), ls);
        }
    }
    st->sum += d * a->d * (float)vaddvq_s32(acc) * 0.125f;
}

// ---- IQ4: the non-linear 16-value table by TBL ----------------------------------------------------------

// 16 packed bytes → the table values of their low nibbles (lo) and high nibbles (hi).
static inline __attribute__((always_inline)) void neon_iq4_values(const uint8_t *qs, int8x16_t *lo, int8x16_t *hi) {
    const int8x16_t table = vld1q_s8(ds_kvalues_iq4nl);
    const uint8x16_t q = vld1q_u8(qs);
    *lo = vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0F)));
    *hi = vqtbl1q_s8(table, vshrq_n_u8(q, 4));
}

NEON_STEP neon_step_iq4_nl(neon_state *st, const ds_block_iq4_nl *w, const ds_block_q8_0 *a) {
    int8x16_t lo, hi;
    neon_iq4_values(w->qs, &lo, &hi);
    st->acc = vfmaq_n_f32(st->acc, vcvtq_f32_s32(neon_dot32(lo, hi, a->qs)), neon_half(w->d) * neon_half(a->d));
}

NEON_STEP neon_step_iq4_xs(neon_state *st, const ds_block_iq4_xs *w, const ds_block_q8_K *a) {
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
        int8x16_t lo, hi;
        neon_iq4_values(w->qs + 16 * ib, &lo, &hi);
        acc = vmlaq_n_s32(acc, neon_dot32(lo, hi, a->qs + 32 * ib), ds_iq4xs_scale(w, ib));
    }
    st->sum += neon_half(w->d) * a->d * (float)vaddvq_s32(acc);
}

NEON_QUANT_KERNELS(iq2_xxs, ds_block_iq2_xxs, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(iq2_xs, ds_block_iq2_xs, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(iq2_s, ds_block_iq2_s, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(iq3_xxs, ds_block_iq3_xxs, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(iq3_s, ds_block_iq3_s, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(iq1_s, ds_block_iq1_s, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(iq1_m, ds_block_iq1_m, ds_block_q8_K, DS_QK_K)
NEON_QUANT_KERNELS(iq4_nl, ds_block_iq4_nl, ds_block_q8_0, 32)
NEON_QUANT_KERNELS(iq4_xs, ds_block_iq4_xs, ds_block_q8_K, DS_QK_K)

void ds_fill_iquant_neon_kernels(ds_kernel_table *t) {
#define DS_SET(TYPE, NAME)              \
    t->dot[TYPE] = neon_dot_##NAME;     \
    t->rows[TYPE] = NULL;               \
    t->multi[TYPE] = neon_multi_##NAME; \
    t->own[TYPE] = 1;
    DS_SET(DS_TYPE_IQ2_XXS, iq2_xxs)
    DS_SET(DS_TYPE_IQ2_XS, iq2_xs)
    DS_SET(DS_TYPE_IQ2_S, iq2_s)
    DS_SET(DS_TYPE_IQ3_XXS, iq3_xxs)
    DS_SET(DS_TYPE_IQ3_S, iq3_s)
    DS_SET(DS_TYPE_IQ1_S, iq1_s)
    DS_SET(DS_TYPE_IQ1_M, iq1_m)
    DS_SET(DS_TYPE_IQ4_NL, iq4_nl)
    DS_SET(DS_TYPE_IQ4_XS, iq4_xs)
#undef DS_SET
}

#endif // __aarch64__
