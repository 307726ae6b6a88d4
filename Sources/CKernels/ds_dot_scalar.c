// ds_dot_scalar.c — portable scalar dot products (the reference every SIMD kernel is tested against).
//
// Each quantized kernel forms exact integer sums of q_weight * q_activation per block (or per
// sub-block, multiplied by the integer sub-block scale), and only then scales by the float block
// scales: dot = sum_blocks d_w * d_a * isum (+ min terms). This is the same arithmetic as ggml's
// *_generic kernels, so results agree with ggml up to float summation order.
#include "ds_internal.h"

// ---- 32-element blocks ----------------------------------------------------------------------------

static float dot_q4_0(int64_t n, const void *vw, const void *va) {
    const ds_block_q4_0 *w = (const ds_block_q4_0 *)vw;
    const ds_block_q8_0 *a = (const ds_block_q8_0 *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / 32; ++b) {
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += ((w[b].qs[j] & 0x0F) - 8) * a[b].qs[j];
            isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + 16];
        }
        sum += (float)isum * (ds_half_to_float(w[b].d) * ds_half_to_float(a[b].d));
    }
    return sum;
}

// Q4_1 x Q8_1: sum_j (d_w q_j + m_w)(d_a a_j) = d_w d_a sum q_j a_j + m_w * (d_a sum a_j),
// and d_a * sum a_j is stored in the activation block as s.
static float dot_q4_1(int64_t n, const void *vw, const void *va) {
    const ds_block_q4_1 *w = (const ds_block_q4_1 *)vw;
    const ds_block_q8_1 *a = (const ds_block_q8_1 *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / 32; ++b) {
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += (w[b].qs[j] & 0x0F) * a[b].qs[j];
            isum += (w[b].qs[j] >> 4) * a[b].qs[j + 16];
        }
        sum += (float)isum * (ds_half_to_float(w[b].d) * ds_half_to_float(a[b].d)) +
               ds_half_to_float(w[b].m) * ds_half_to_float(a[b].s);
    }
    return sum;
}

static float dot_q5_0(int64_t n, const void *vw, const void *va) {
    const ds_block_q5_0 *w = (const ds_block_q5_0 *)vw;
    const ds_block_q8_0 *a = (const ds_block_q8_0 *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / 32; ++b) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = ((w[b].qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4)) - 16;
            const int q1 = ((w[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
            isum += q0 * a[b].qs[j] + q1 * a[b].qs[j + 16];
        }
        sum += (float)isum * (ds_half_to_float(w[b].d) * ds_half_to_float(a[b].d));
    }
    return sum;
}

static float dot_q5_1(int64_t n, const void *vw, const void *va) {
    const ds_block_q5_1 *w = (const ds_block_q5_1 *)vw;
    const ds_block_q8_1 *a = (const ds_block_q8_1 *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / 32; ++b) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = (w[b].qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            const int q1 = (w[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            isum += q0 * a[b].qs[j] + q1 * a[b].qs[j + 16];
        }
        sum += (float)isum * (ds_half_to_float(w[b].d) * ds_half_to_float(a[b].d)) +
               ds_half_to_float(w[b].m) * ds_half_to_float(a[b].s);
    }
    return sum;
}

// Q8_0 x Q8_0 and Q8_1 x Q8_1: both blocks hold the scale d first and 32 int8 quants at qs (Q8_1's block
// sum s does not enter a product of two 8-bit rows), so one loop serves both, stepping by the block size.
DS_STATIC_ASSERT(offsetof(ds_block_q8_0, d) == 0 && offsetof(ds_block_q8_1, d) == 0, "Q8 block scale first");
static inline float dot_q8_blocks(int64_t n, const void *vw, const void *va, size_t block_bytes, size_t qs_offset) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / 32; ++b, w += block_bytes, a += block_bytes) {
        uint16_t dw, da;
        memcpy(&dw, w, 2);
        memcpy(&da, a, 2);
        const int8_t *wq = (const int8_t *)(w + qs_offset), *aq = (const int8_t *)(a + qs_offset);
        int isum = 0;
        for (int j = 0; j < 32; ++j) isum += wq[j] * aq[j];
        sum += (float)isum * (ds_half_to_float(dw) * ds_half_to_float(da));
    }
    return sum;
}

static float dot_q8_0(int64_t n, const void *vw, const void *va) {
    return dot_q8_blocks(n, vw, va, sizeof(ds_block_q8_0), offsetof(ds_block_q8_0, qs));
}

// Q8_1 weights against Q8_1 activations (not a model format; kept for completeness).
static float dot_q8_1(int64_t n, const void *vw, const void *va) {
    return dot_q8_blocks(n, vw, va, sizeof(ds_block_q8_1), offsetof(ds_block_q8_1, qs));
}

// ---- K-quants (256-element super-blocks, activations in Q8_K) -----------------------------------

// Q2_K: x = d*sc*q - dmin*m per 16-element sub-block s. With activation a = d8 * a8:
//   dot = d8*d * sum_s sc_s * sum(q*a8)  -  d8*dmin * sum_s m_s * bsum_s.
static float dot_q2_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q2_K *w = (const ds_block_q2_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        int min_sum = 0;
        for (int s = 0; s < 16; ++s) min_sum += a[b].bsums[s] * (w[b].scales[s] >> 4);
        int isum = 0;
        const int8_t *q8 = a[b].qs;
        for (int c = 0; c < 2; ++c) {
            const uint8_t *q2 = w[b].qs + 32 * c;
            for (int k = 0; k < 4; ++k) {
                for (int half = 0; half < 2; ++half, q8 += 16) {
                    int sub = 0;
                    for (int l = 0; l < 16; ++l) sub += q8[l] * ((q2[16 * half + l] >> (2 * k)) & 3);
                    isum += (w[b].scales[8 * c + 2 * k + half] & 0xF) * sub;
                }
            }
        }
        sum += a[b].d * ds_half_to_float(w[b].d) * (float)isum -
               a[b].d * ds_half_to_float(w[b].dmin) * (float)min_sum;
    }
    return sum;
}

static float dot_q3_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q3_K *w = (const ds_block_q3_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    int8_t sc[16];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        ds_q3k_scales(w[b].scales, sc);
        int isum = 0;
        const int8_t *q8 = a[b].qs;
        for (int c = 0; c < 2; ++c) {
            const uint8_t *q3 = w[b].qs + 32 * c;
            for (int k = 0; k < 4; ++k) {
                const uint8_t bit = (uint8_t)(1u << (4 * c + k));
                for (int half = 0; half < 2; ++half, q8 += 16) {
                    int sub = 0;
                    for (int l = 16 * half; l < 16 * half + 16; ++l) {
                        const int v = ((q3[l] >> (2 * k)) & 3) - ((w[b].hmask[l] & bit) ? 0 : 4);
                        sub += v * q8[l - 16 * half];
                    }
                    isum += sc[8 * c + 2 * k + half] * sub;
                }
            }
        }
        sum += ds_half_to_float(w[b].d) * a[b].d * (float)isum;
    }
    return sum;
}

static float dot_q4_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q4_K *w = (const ds_block_q4_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        int isum = 0, min_sum = 0;
        const uint8_t *q4 = w[b].qs;
        const int8_t *q8 = a[b].qs;
        for (int c = 0; c < 4; ++c, q4 += 32, q8 += 64) {
            uint8_t sc0, m0, sc1, m1;
            ds_k4_scale_min(2 * c, w[b].scales, &sc0, &m0);
            ds_k4_scale_min(2 * c + 1, w[b].scales, &sc1, &m1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; ++l) {
                s0 += (q4[l] & 0xF) * q8[l];
                s1 += (q4[l] >> 4) * q8[l + 32];
            }
            isum += sc0 * s0 + sc1 * s1;
            min_sum += m0 * (a[b].bsums[4 * c] + a[b].bsums[4 * c + 1]) +
                       m1 * (a[b].bsums[4 * c + 2] + a[b].bsums[4 * c + 3]);
        }
        sum += ds_half_to_float(w[b].d) * a[b].d * (float)isum -
               ds_half_to_float(w[b].dmin) * a[b].d * (float)min_sum;
    }
    return sum;
}

static float dot_q5_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q5_K *w = (const ds_block_q5_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        int isum = 0, min_sum = 0;
        const uint8_t *q4 = w[b].qs;
        const int8_t *q8 = a[b].qs;
        for (int c = 0; c < 4; ++c, q4 += 32, q8 += 64) {
            uint8_t sc0, m0, sc1, m1;
            ds_k4_scale_min(2 * c, w[b].scales, &sc0, &m0);
            ds_k4_scale_min(2 * c + 1, w[b].scales, &sc1, &m1);
            const uint8_t bit0 = (uint8_t)(1u << (2 * c)), bit1 = (uint8_t)(2u << (2 * c));
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; ++l) {
                s0 += ((q4[l] & 0xF) + ((w[b].qh[l] & bit0) ? 16 : 0)) * q8[l];
                s1 += ((q4[l] >> 4) + ((w[b].qh[l] & bit1) ? 16 : 0)) * q8[l + 32];
            }
            isum += sc0 * s0 + sc1 * s1;
            min_sum += m0 * (a[b].bsums[4 * c] + a[b].bsums[4 * c + 1]) +
                       m1 * (a[b].bsums[4 * c + 2] + a[b].bsums[4 * c + 3]);
        }
        sum += ds_half_to_float(w[b].d) * a[b].d * (float)isum -
               ds_half_to_float(w[b].dmin) * a[b].d * (float)min_sum;
    }
    return sum;
}

static float dot_q6_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q6_K *w = (const ds_block_q6_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        int isum = 0;
        for (int h = 0; h < 2; ++h) {
            const uint8_t *ql = w[b].ql + 64 * h;
            const uint8_t *qh = w[b].qh + 32 * h;
            const int8_t *q8 = a[b].qs + 128 * h;
            const int8_t *sc = w[b].scales + 8 * h;
            // Sub-block sums: value index 32k + l belongs to sub-block 2k + l/16 of this half.
            int sub[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int l = 0; l < 32; ++l) {
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                const int s = l / 16;
                sub[0 + s] += q1 * q8[l];
                sub[2 + s] += q2 * q8[l + 32];
                sub[4 + s] += q3 * q8[l + 64];
                sub[6 + s] += q4 * q8[l + 96];
            }
            for (int s = 0; s < 8; ++s) isum += sc[s] * sub[s];
        }
        sum += ds_half_to_float(w[b].d) * a[b].d * (float)isum;
    }
    return sum;
}

static float dot_q8_K(int64_t n, const void *vw, const void *va) {
    const ds_block_q8_K *w = (const ds_block_q8_K *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        int isum = 0;
        for (int j = 0; j < DS_QK_K; ++j) isum += w[b].qs[j] * a[b].qs[j];
        sum += w[b].d * a[b].d * (float)isum;
    }
    return sum;
}

// ---- Float weights (activations stay F32) ---------------------------------------------------------

static float dot_f32(int64_t n, const void *vw, const void *va) {
    const float *w = (const float *)vw, *a = (const float *)va;
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += w[i] * a[i];
    return sum;
}

static float dot_f16(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = (const uint16_t *)vw;
    const float *a = (const float *)va;
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += ds_half_to_float(w[i]) * a[i];
    return sum;
}

static float dot_bf16(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = (const uint16_t *)vw;
    const float *a = (const float *)va;
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += ds_bfloat_to_float(w[i]) * a[i];
    return sum;
}

static float dot_mxfp4(int64_t n, const void *vw, const void *va) {
    const ds_block_mxfp4 *w = (const ds_block_mxfp4 *)vw;
    const float *a = (const float *)va;
    float sum = 0;
    for (int64_t b = 0; b < n / DS_QK_MXFP4; ++b, a += DS_QK_MXFP4) {
        float block = 0;
        for (int j = 0; j < DS_QK_MXFP4 / 2; ++j)
            block += ds_kvalues_mxfp4[w[b].qs[j] & 0x0F] * a[j] + ds_kvalues_mxfp4[w[b].qs[j] >> 4] * a[j + 16];
        sum += ds_e8m0_to_float_half(w[b].e) * block;
    }
    return sum;
}

void ds_fill_scalar_kernels(ds_kernel_table *t) {
    t->dot[DS_TYPE_F32] = dot_f32;
    t->dot[DS_TYPE_F16] = dot_f16;
    t->dot[DS_TYPE_BF16] = dot_bf16;
    t->dot[DS_TYPE_MXFP4] = dot_mxfp4;
    t->dot[DS_TYPE_Q4_0] = dot_q4_0;
    t->dot[DS_TYPE_Q4_1] = dot_q4_1;
    t->dot[DS_TYPE_Q5_0] = dot_q5_0;
    t->dot[DS_TYPE_Q5_1] = dot_q5_1;
    t->dot[DS_TYPE_Q8_0] = dot_q8_0;
    t->dot[DS_TYPE_Q8_1] = dot_q8_1;
    t->dot[DS_TYPE_Q2_K] = dot_q2_K;
    t->dot[DS_TYPE_Q3_K] = dot_q3_K;
    t->dot[DS_TYPE_Q4_K] = dot_q4_K;
    t->dot[DS_TYPE_Q5_K] = dot_q5_K;
    t->dot[DS_TYPE_Q6_K] = dot_q6_K;
    t->dot[DS_TYPE_Q8_K] = dot_q8_K;
    ds_fill_iquant_scalar_kernels(t);
    for (int i = 0; i < DS_TYPE_COUNT; ++i) {
        t->rows[i] = NULL;
        t->multi[i] = NULL;
        t->own[i] = t->dot[i] != NULL;
    }
}
