// ds_quant_weighted.c — importance-weighted quantizers: the bytes llama-quantize writes with an
// importance matrix (ggml's quantize_row_*_impl), and ds_quantize_rows, the whole-tensor entry point
// that picks between them and the reference quantizers exactly as ggml_quantize_chunk does.
//
// An importance vector qw[n_per_row] (mean squared activation of each input column, from an imatrix)
// weights each column's squared error. The fits weigh element i by qw[i] · sqrt(σ² + x_i²), σ² the
// row's (32-blocks) or super-block's (K-quants: twice its) mean square.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ds_quant_iq.h"

// weight[j] = qw[j] · sqrt(sigma2 + x[j]²) for j < n.
static void importance_weights(int n, const float *x, const float *qw, float sigma2, float *weight) {
    for (int j = 0; j < n; ++j) weight[j] = qw[j] * ds_sqrt(sigma2 + x[j] * x[j]);
}

static float mean_square(const float *x, int64_t n) {
    float sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += x[j] * x[j];
    return sum / n;
}

// ================================ 32-element blocks ==============================================

// Q4_0 / Q5_0 (symmetric, nmax 8 / 16: x ≈ d · (L − nmax)) and Q4_1 / Q5_1 (affine, nmax 15 / 31: x ≈
// d · L + m) share one loop over the row's blocks of 32; `store` packs block b's codes L[32].
typedef void (*store_block_fn)(void *y, int64_t b, float d, float m, const uint8_t *L);

static void weighted_blocks_32(const float *x, int64_t n, const float *qw, int affine, int nmax, store_block_fn store, void *y) {
    const float sigma2 = mean_square(x, n);
    float weight[32], min = 0;
    uint8_t L[32], scratch[32];
    for (int64_t b = 0; b < n / 32; ++b) {
        importance_weights(32, x + 32 * b, qw + 32 * b, sigma2, weight);
        const float d = affine ? ds_fit_affine(32, nmax, x + 32 * b, weight, L, &min, scratch, -0.9f, 0.05f, 36, 0)
                               : ds_fit_symmetric(32, nmax, x + 32 * b, (int8_t *)L, weight);
        store(y, b, d, -min, L);
    }
}

static void store_q4_0(void *y, int64_t b, float d, float m, const uint8_t *L) {
    ds_block_q4_0 *blk = (ds_block_q4_0 *)y + b;
    (void)m;
    blk->d = ds_float_to_half(d);
    for (int j = 0; j < 16; ++j) blk->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

static void store_q4_1(void *y, int64_t b, float d, float m, const uint8_t *L) {
    ds_block_q4_1 *blk = (ds_block_q4_1 *)y + b;
    blk->d = ds_float_to_half(d);
    blk->m = ds_float_to_half(m);
    for (int j = 0; j < 16; ++j) blk->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

static void store_q5_0(void *y, int64_t b, float d, float m, const uint8_t *L) {
    ds_block_q5_0 *blk = (ds_block_q5_0 *)y + b;
    (void)m;
    blk->d = ds_float_to_half(d);
    ds_pack_5bit(L, blk->qs, blk->qh);
}

static void store_q5_1(void *y, int64_t b, float d, float m, const uint8_t *L) {
    ds_block_q5_1 *blk = (ds_block_q5_1 *)y + b;
    blk->d = ds_float_to_half(d);
    blk->m = ds_float_to_half(m);
    ds_pack_5bit(L, blk->qs, blk->qh);
}

// ================================ K-quants =======================================================

static void weighted_q2_K(const float *x, ds_block_q2_K *y, int64_t n, const float *qw) {
    uint8_t L[DS_QK_K], scratch[16], Ls[16], Lm[16];
    float weight[16], mins[16], scales[16], sw[16];
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K, qw += DS_QK_K) {
        const float sigma2 = mean_square(x, DS_QK_K);
        for (int j = 0; j < 16; ++j) {
            importance_weights(16, x + 16 * j, qw + 16 * j, sigma2, weight);
            sw[j] = 0;
            for (int l = 0; l < 16; ++l) sw[j] += weight[l];
            scales[j] = ds_fit_affine(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], scratch, -0.9f, 0.05f, 36, 0);
        }
        // 4-bit scale and min codes, each against its own fp16 super-scale.
        const float dm = ds_fit_positive(16, 15, scales, Ls, sw);
        const float mm = ds_fit_positive(16, 15, mins, Lm, sw);
        y[b].d = ds_float_to_half(dm);
        y[b].dmin = ds_float_to_half(mm);
        for (int j = 0; j < 16; ++j) y[b].scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        ds_requantize_q2_K(x, &y[b], L);
        ds_pack_2bit(L, y[b].qs);
    }
}

static void weighted_q3_K(const float *x, ds_block_q3_K *y, int64_t n, const float *qw) {
    int8_t L[DS_QK_K], codes[16];
    float weight[16], scales[16], sw[16];
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K, qw += DS_QK_K) {
        const float sigma2 = 2 * mean_square(x, DS_QK_K);
        for (int j = 0; j < 16; ++j) {
            importance_weights(16, x + 16 * j, qw + 16 * j, sigma2, weight);
            float sum = 0;
            for (int l = 0; l < 16; ++l) sum += weight[l];
            sw[j] = sum;
            scales[j] = ds_fit_symmetric(16, 4, x + 16 * j, L + 16 * j, weight);
        }
        // 6-bit signed scale codes (stored + 32) against one fp16 super-scale.
        const float d = ds_fit_symmetric(16, 32, scales, codes, sw);
        ds_pack_q3_K_scales(codes, y[b].scales);
        y[b].d = ds_float_to_half(d);
        ds_requantize_q3_K(x, &y[b], L);
        ds_pack_q3_K(L, y[b].hmask, y[b].qs);
    }
}

// Q4_K (nmax 15) and Q5_K (nmax 31) share the fit: 8 affine sub-blocks of 32, their scales and mins
// as 6-bit codes against fp16 super-scales, then every value re-quantized against what is stored.
static void weighted_k4(const float *x, const float *qw, int nmax, uint8_t *L, uint16_t *d, uint16_t *dmin, uint8_t *packed) {
    float weight[32], mins[8], scales[8], sw[8];
    uint8_t scratch[32], Ls[8], Lm[8];
    const float sigma2 = 2 * mean_square(x, DS_QK_K);
    for (int j = 0; j < 8; ++j) {
        importance_weights(32, x + 32 * j, qw + 32 * j, sigma2, weight);
        float sum = 0;
        for (int l = 0; l < 32; ++l) sum += weight[l];
        sw[j] = sum;
        scales[j] = ds_fit_affine(32, nmax, x + 32 * j, weight, L + 32 * j, &mins[j], scratch, -0.9f, 0.05f, 36, 0);
    }
    const float d_block = ds_fit_positive(8, 63, scales, Ls, sw);
    const float m_block = ds_fit_positive(8, 63, mins, Lm, sw);
    ds_pack_k4_scales(Ls, Lm, packed);
    *d = ds_float_to_half(d_block);
    *dmin = ds_float_to_half(m_block);
    ds_requantize_k4(x, nmax, *d, *dmin, packed, L);
}

static void weighted_q4_K(const float *x, ds_block_q4_K *y, int64_t n, const float *qw) {
    uint8_t L[DS_QK_K];
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K, qw += DS_QK_K) {
        weighted_k4(x, qw, 15, L, &y[b].d, &y[b].dmin, y[b].scales);
        ds_pack_q4_K(L, y[b].qs);
    }
}

static void weighted_q5_K(const float *x, ds_block_q5_K *y, int64_t n, const float *qw) {
    uint8_t L[DS_QK_K];
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K, qw += DS_QK_K) {
        weighted_k4(x, qw, 31, L, &y[b].d, &y[b].dmin, y[b].scales);
        ds_pack_q5_K(L, y[b].qs, y[b].qh);
    }
}

void ds_quantize_q6_K(const float *x, ds_block_q6_K *y, int64_t n, const float *qw) {
    int8_t L[DS_QK_K];
    float scales[16];
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int j = 0; j < 16; ++j) {
            // Q6_K weighs by the importance alone (no σ² term), or by x² without one.
            scales[j] = ds_fit_symmetric(16, 32, x + 16 * j, L + 16 * j, qw ? qw + DS_QK_K * b + 16 * j : NULL);
            const float a = fabsf(scales[j]);
            if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[j]; }
        }
        if (max_abs_scale < DS_GROUP_MAX_EPS) {
            memset(&y[b], 0, sizeof(y[b]));
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[b].d = ds_float_to_half(1 / iscale);
        for (int j = 0; j < 16; ++j) y[b].scales[j] = (int8_t)DS_MIN(127, ds_nearest_int(iscale * scales[j]));
        for (int j = 0; j < 16; ++j) {
            const float d = ds_half_to_float(y[b].d) * y[b].scales[j];
            if (d == 0.0f) continue;
            for (int i = 0; i < 16; ++i) {
                const int l = ds_nearest_int(x[16 * j + i] / d);
                L[16 * j + i] = (int8_t)(DS_MAX(-32, DS_MIN(31, l)) + 32);
            }
        }
        ds_pack_q6_K(L, y[b].ql, y[b].qh);
    }
}

// ================================ IQ4_NL / IQ4_XS ================================================

// One super-block of `super` values (32: IQ4_NL, 256: IQ4_XS) in sub-blocks of 32: x ≈ d_j ·
// kvalues[q], each d_j the best of 2·ntry + 1 least-squares fits; IQ4_XS then stores d_j as a 6-bit
// code against one fp16 scale and re-picks every q against it.
static void iq4_superblock(int super, const float *x, uint16_t *dh, uint8_t *q4, uint16_t *scales_h, uint8_t *scales_l,
                           const float *qw, int ntry) {
    const int8_t *values = ds_kvalues_iq4nl;
    float weight[32], scales[DS_QK_K / 32];
    uint8_t L[DS_QK_K];
    float sigma2 = 0;
    for (int j = 0; j < super; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / super;
    memset(q4, 0, (size_t)super / 2);
    *dh = ds_float_to_half(0.f);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < super / 32; ++ib) {
        const float *xb = x + 32 * ib;
        uint8_t *Lb = L + 32 * ib;
        if (qw) importance_weights(32, xb, qw + 32 * ib, sigma2, weight);
        else for (int j = 0; j < 32; ++j) weight[j] = xb[j] * xb[j];
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (amax < DS_GROUP_MAX_EPS) {
            scales[ib] = 0;
            continue;
        }
        float d = ntry > 0 ? -max / values[0] : max / values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const int l = ds_nearest_value_index(16, values, id * xb[j]);
            Lb[j] = (uint8_t)l;
            const float q = values[l];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int step = -ntry; step <= ntry; ++step) {
            id = (step + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; ++j) {
                const float q = values[ds_nearest_value_index(16, values, id * xb[j])];
                sumqx += weight[j] * q * xb[j];
                sumq2 += weight[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (fabsf(d) > amax_scale) { amax_scale = fabsf(d); max_scale = d; }
    }
    if (super > 32) {
        const int nb = super / 32;
        memset(scales_h, 0, (size_t)((nb + 7) / 8) * sizeof(uint16_t));
        const float d = -max_scale / 32;
        *dh = ds_float_to_half(d);
        const float id = d != 0.0f ? 1 / d : 0.f;
        for (int ib = 0; ib < nb; ++ib) {
            int l = DS_MAX(-32, DS_MIN(31, ds_nearest_int(id * scales[ib])));
            const float dl = d * l;
            const float idl = dl != 0.0f ? 1 / dl : 0.f;
            for (int j = 0; j < 32; ++j) L[32 * ib + j] = (uint8_t)ds_nearest_value_index(16, values, idl * x[32 * ib + j]);
            l += 32;
            if (ib % 2 == 0) scales_l[ib / 2] = (uint8_t)(l & 0xF);
            else scales_l[ib / 2] |= (uint8_t)((l & 0xF) << 4);
            scales_h[ib / 8] |= (uint16_t)((l >> 4) << (2 * (ib % 8)));
        }
    } else {
        *dh = ds_float_to_half(scales[0]);
        if (ntry > 0) {
            const float id = scales[0] != 0.0f ? 1 / scales[0] : 0;
            for (int j = 0; j < super; ++j) L[j] = (uint8_t)ds_nearest_value_index(16, values, id * x[j]);
        }
    }
    for (int i = 0; i < super / 32; ++i) {
        for (int j = 0; j < 16; ++j) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
    }
}

void ds_quantize_iq4(int super, const float *x, void *y, int64_t n, const float *qw, int ntry) {
    for (int64_t b = 0; b < n / super; ++b) {
        const float *w = qw ? qw + super * b : NULL;
        if (super == 32) {
            ds_block_iq4_nl *blk = (ds_block_iq4_nl *)y + b;
            iq4_superblock(32, x + 32 * b, &blk->d, blk->qs, NULL, NULL, w, ntry);
        } else {
            ds_block_iq4_xs *blk = (ds_block_iq4_xs *)y + b;
            iq4_superblock(DS_QK_K, x + DS_QK_K * b, &blk->d, blk->qs, &blk->scales_h, blk->scales_l, w, ntry);
        }
    }
}

// ================================ Whole tensors ==================================================

int ds_quantize_rows(int type, const float *x, void *dst, int64_t rows, int64_t n_per_row, const float *importance) {
    const int64_t block = ds_type_block_size(type);
    if (block == 0 || n_per_row % block != 0 || !ds_type_has_tensor_quantizer(type)) return 0;
    if (!importance && ds_type_quantizer_needs_importance(type)) return 0;
    const size_t row_bytes = (size_t)ds_row_bytes(type, n_per_row);
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * n_per_row;
        void *yr = (uint8_t *)dst + r * row_bytes;
        const float *qw = importance;
        switch (type) {
        // IQ4 files take 7 tries each side with or without an importance vector (ggml's quantize_iq4_*).
        case DS_TYPE_IQ4_NL: ds_quantize_iq4(32, xr, yr, n_per_row, qw, 7); continue;
        case DS_TYPE_IQ4_XS: ds_quantize_iq4(DS_QK_K, xr, yr, n_per_row, qw, 7); continue;
        case DS_TYPE_IQ2_XXS: case DS_TYPE_IQ2_XS: case DS_TYPE_IQ2_S: case DS_TYPE_IQ3_XXS: case DS_TYPE_IQ3_S:
        case DS_TYPE_IQ1_S: case DS_TYPE_IQ1_M:
            if (!ds_quantize_iq_row(type, xr, yr, n_per_row, qw)) return 0;
            continue;
        default: break;
        }
        if (!qw) { ds_quantize_row_ref(type, xr, yr, n_per_row); continue; }
        switch (type) {
        case DS_TYPE_Q4_0: weighted_blocks_32(xr, n_per_row, qw, 0, 8, store_q4_0, yr); break;
        case DS_TYPE_Q4_1: weighted_blocks_32(xr, n_per_row, qw, 1, 15, store_q4_1, yr); break;
        case DS_TYPE_Q5_0: weighted_blocks_32(xr, n_per_row, qw, 0, 16, store_q5_0, yr); break;
        case DS_TYPE_Q5_1: weighted_blocks_32(xr, n_per_row, qw, 1, 31, store_q5_1, yr); break;
        case DS_TYPE_Q2_K: weighted_q2_K(xr, yr, n_per_row, qw); break;
        case DS_TYPE_Q3_K: weighted_q3_K(xr, yr, n_per_row, qw); break;
        case DS_TYPE_Q4_K: weighted_q4_K(xr, yr, n_per_row, qw); break;
        case DS_TYPE_Q5_K: weighted_q5_K(xr, yr, n_per_row, qw); break;
        case DS_TYPE_Q6_K: ds_quantize_q6_K(xr, yr, n_per_row, qw); break;
        default: ds_quantize_row_ref(type, xr, yr, n_per_row); break;   // Q8_0, MXFP4, floats: no weighted form
        }
    }
    return 1;
}
