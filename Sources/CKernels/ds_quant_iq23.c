// ds_quant_iq23.c — the IQ2 and IQ3 quantizers: the bytes llama-quantize writes (ggml's
// quantize_row_iq2_xxs/iq2_xs/iq2_s/iq3_xxs/iq3_s_impl, including their fudge factors and quirks).
//
// Each sub-block's values are made non-negative (signs stored apart), fitted as x ≈ s · (2l + 1) with
// groups of levels l restricted to grid points (8 per group for IQ2, 4 for IQ3), the sub-block scales s
// stored as 4-bit codes of a super-block scale d: s ≈ d · (2c + 1).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ds_quant_iq.h"
#include <string.h>

// weight[i] = qw[i] · sqrt(σ² + x_i²), or without an importance vector `fallback_sigma` · σ² + x_i²
// (a negative fallback_sigma: x_i² alone); waux = sqrt(weight).
static void sub_block_weights(int n, const float *xb, const float *qw, float sigma2, float fallback_sigma,
                              float *weight, float *waux) {
    for (int i = 0; i < n; ++i) {
        if (qw) weight[i] = qw[i] * ds_sqrt(sigma2 + xb[i] * xb[i]);
        else if (fallback_sigma < 0) weight[i] = xb[i] * xb[i];
        else weight[i] = fallback_sigma * sigma2 + xb[i] * xb[i];
    }
    for (int i = 0; i < n; ++i) waux[i] = ds_sqrt(weight[i]);
}

static float max_of(int n, const float *x) {
    float max = x[0];
    for (int i = 1; i < n; ++i) max = DS_MAX(max, x[i]);
    return max;
}

// 4-bit code c of a sub-block scale s ≈ d · (2c + 1), given id = 1/d.
static int scale_code(float id, float s) {
    const int l = ds_nearest_int(0.5f * (id * s - 1));
    return DS_MAX(0, DS_MIN(15, l));
}

static int count_off_grid(int groups, const bool *on_grid) {
    int n = 0;
    for (int g = 0; g < groups; ++g) n += !on_grid[g];
    return n;
}

// Grid index of a group of levels that the fit left on the grid (0 if, impossibly, it is not).
static int on_grid_index(const ds_iq_codebook *cb, const int8_t *L) {
    const int index = ds_iq_grid_index(cb, L);
    return index < 0 ? 0 : index;
}

// How one type fits a sub-block (ggml's constants per type).
typedef enum { REFIT_OFF_GRID, REFIT_ALL_IF_OFF, REFIT_ALL } refit_kind;
typedef struct {
    int n, kmax;              // sub-block size; levels 0 … kmax−1
    int range;                // scale tries is = −range … range
    float step;               //   id = (2·kmax − 1 + is·step) / max
    float min_max;            // a sub-block whose largest |x| is below this (or zero) is skipped
    float fallback_sigma;     // the weights without importance (sub_block_weights)
    bool even_parity;         // 7 stored sign bits per 8 values
    bool plain_start;         // IQ2_XXS: max from the plain positive fit, which is also the default scale
    bool start_on_grid;       // on_grid before any try improves
    refit_kind refit;
} grid_fit;

// Fits one sub-block of p->n values: grid levels in L, sign bytes in signs[n/8]. Returns the scale (≥ 0,
// the signs flipped if it came out negative) or −1 for a skipped sub-block.
static float fit_sub_block(const ds_iq_codebook *cb, const grid_fit *p, const float *xb, const float *qw, float sigma2,
                           int8_t *L, uint8_t *signs) {
    float weight[32], waux[32], xval[32] = {0};   // (zeroed: GCC cannot see the folds cover all n)
    bool on_grid[8];
    const int n = p->n, groups = n / cb->dims;
    sub_block_weights(n, xb, qw, sigma2, p->fallback_sigma, weight, waux);
    for (int k = 0; k < n / 8; ++k) signs[k] = ds_iq_fold_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, p->even_parity);
    float max = max_of(n, xval);
    for (int i = 0; i < n; ++i) L[i] = 0;
    if (max < p->min_max || max == 0) return -1;
    float scale = max / (2 * p->kmax - 1);
    if (p->plain_start) {
        scale = ds_fit_positive(n, p->kmax + 1, xval, (uint8_t *)L, weight);
        max = scale * p->kmax;
        if (max <= 0) return -1;
    }
    for (int g = 0; g < groups; ++g) on_grid[g] = p->start_on_grid;
    scale = ds_iq_search_scale(cb, n, p->kmax, max, p->range, p->step, scale, xval, weight, waux, L, on_grid);
    const bool refit = p->refit == REFIT_ALL || count_off_grid(groups, on_grid) > 0;
    if (refit && scale > 0) {
        scale = ds_iq_refit(cb, n, p->kmax, scale, xval, weight, waux, L, p->refit == REFIT_OFF_GRID ? on_grid : NULL);
    }
    if (scale < 0) {
        scale = -scale;
        for (int k = 0; k < n / 8; ++k) signs[k] = (uint8_t)(~signs[k] & (p->even_parity ? 127 : 255));
    }
    return scale;
}

// The sub-block scales as 4-bit codes of d (s ≈ d · (2c + 1)), two per byte, ORed into zeroed bytes.
static void store_scale_codes(const float *scales, int count, float d, uint8_t *codes) {
    const float id = 1 / d;
    for (int ib = 0; ib < count; ++ib) codes[ib / 2] |= (uint8_t)(scale_code(id, scales[ib]) << (4 * (ib % 2)));
}

// σ² of a super-block: its mean square, doubled for all types but IQ2_XXS and IQ2_XS.
static float super_block_sigma2(const float *xbl, float factor) {
    return factor * ds_iq_sum_squares(xbl, DS_QK_K) / DS_QK_K;
}

// ================================ IQ2_XXS: 8 × 32, 256-point grid =================================
// Per 32 values: 4 grid bytes, then a uint32 of 4 × 7 sign bits and the 4-bit scale code.
void ds_quantize_iq2_xxs(const ds_iq_codebook *cb, const float *x, ds_block_iq2_xxs *y, int64_t n, const float *qw) {
    const grid_fit fit = {32, 3, 6, 0.1f, DS_GROUP_MAX_EPS, 0, true, true, true, REFIT_ALL};
    float scales[DS_QK_K / 32];
    int8_t L[32];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float *xbl = x + DS_QK_K * b;
        uint32_t q2[2 * (DS_QK_K / 32)];
        memset(q2, 0, sizeof q2);
        y[b].d = 0;
        float max_scale = 0;
        const float sigma2 = super_block_sigma2(xbl, 1);
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
            uint8_t signs[4];
            const float scale = fit_sub_block(cb, &fit, xbl + 32 * ib, qw + DS_QK_K * b + 32 * ib, sigma2, L, signs);
            scales[ib] = DS_MAX(scale, 0);
            if (scale < 0) continue;
            for (int k = 0; k < 4; ++k) {
                q2[2 * ib + 0] |= (uint32_t)on_grid_index(cb, L + 8 * k) << (8 * k);
                q2[2 * ib + 1] |= (uint32_t)signs[k] << (7 * k);
            }
            max_scale = DS_MAX(max_scale, scale);
        }
        if (!max_scale) {
            memset(y[b].qs, 0, sizeof y[b].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[b].d = ds_fp32_to_fp16(d);
        const float id = 1 / d;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) q2[2 * ib + 1] |= (uint32_t)scale_code(id, scales[ib]) << 28;
        memcpy(y[b].qs, q2, sizeof q2);
    }
}

// ================================ IQ2_XS: 16 × 16, 512-point grid =================================
// Per 8 values a uint16: 9-bit grid index, 7 sign bits; a 4-bit scale code per 16 values.
void ds_quantize_iq2_xs(const ds_iq_codebook *cb, const float *x, ds_block_iq2_xs *y, int64_t n, const float *qw) {
    const grid_fit fit = {16, 3, 9, 0.1f, DS_GROUP_MAX_EPS, 0, true, false, true, REFIT_OFF_GRID};
    float scales[DS_QK_K / 16];
    int8_t L[16];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float *xbl = x + DS_QK_K * b;
        uint16_t q2[2 * (DS_QK_K / 16)];
        memset(q2, 0, sizeof q2);
        memset(y[b].scales, 0, sizeof y[b].scales);
        y[b].d = 0;
        float max_scale = 0;
        const float sigma2 = super_block_sigma2(xbl, 1);
        for (int ib = 0; ib < DS_QK_K / 16; ++ib) {
            uint8_t signs[2];
            const float scale = fit_sub_block(cb, &fit, xbl + 16 * ib, qw + DS_QK_K * b + 16 * ib, sigma2, L, signs);
            scales[ib] = DS_MAX(scale, 0);
            if (scale < 0) continue;
            for (int k = 0; k < 2; ++k) q2[2 * ib + k] = (uint16_t)(on_grid_index(cb, L + 8 * k) | (signs[k] << 9));
            max_scale = DS_MAX(max_scale, scale);
        }
        if (!max_scale) {
            memset(y[b].qs, 0, sizeof y[b].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[b].d = ds_fp32_to_fp16(d);
        store_scale_codes(scales, DS_QK_K / 16, d, y[b].scales);
        memcpy(y[b].qs, q2, sizeof q2);
    }
}

// ================================ IQ2_S: 16 × 16, 1024-point grid =================================
// Grid indices: 8 low bits in qs[0..31], 2 high bits in qh; sign bytes in qs[32..63].
void ds_quantize_iq2_s(const ds_iq_codebook *cb, const float *x, ds_block_iq2_s *y, int64_t n, const float *qw) {
    const grid_fit fit = {16, 3, 9, 0.1f, 1e-8f, 0.25f, false, false, true, REFIT_OFF_GRID};
    float scales[DS_QK_K / 16];
    int8_t L[16];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float *xbl = x + DS_QK_K * b;
        memset(&y[b], 0, sizeof y[b]);
        float max_scale = 0;
        const float sigma2 = super_block_sigma2(xbl, 2);
        for (int ib = 0; ib < DS_QK_K / 16; ++ib) {
            uint8_t signs[2];
            const float scale = fit_sub_block(cb, &fit, xbl + 16 * ib, qw ? qw + DS_QK_K * b + 16 * ib : NULL, sigma2, L, signs);
            scales[ib] = DS_MAX(scale, 0);
            if (scale < 0) continue;
            for (int k = 0; k < 2; ++k) {
                const int index = on_grid_index(cb, L + 8 * k), i8 = 2 * ib + k;
                y[b].qs[i8] = (uint8_t)(index & 255);
                y[b].qh[i8 / 4] |= (uint8_t)((index >> 8) << (2 * (i8 % 4)));
                y[b].qs[DS_QK_K / 8 + i8] = signs[k];
            }
            max_scale = DS_MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[b].d = ds_fp32_to_fp16(d * 0.9875f);
        store_scale_codes(scales, DS_QK_K / 16, d, y[b].scales);
    }
}

// ================================ IQ3_XXS: 8 × 32, 256-point grid of 4 ============================
// 64 grid bytes, then per 32 values a uint32 of 4 × 7 sign bits and the 4-bit scale code.
void ds_quantize_iq3_xxs(const ds_iq_codebook *cb, const float *x, ds_block_iq3_xxs *y, int64_t n, const float *qw) {
    const grid_fit fit = {32, 8, 15, 0.2f, 1e-8f, -1, true, false, true, REFIT_OFF_GRID};
    float scales[DS_QK_K / 32];
    int8_t L[32];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float *xbl = x + DS_QK_K * b;
        uint8_t q3[DS_QK_K / 4];
        uint32_t scales_and_signs[DS_QK_K / 32];
        memset(q3, 0, sizeof q3);
        memset(scales_and_signs, 0, sizeof scales_and_signs);
        y[b].d = 0;
        float max_scale = 0;
        const float sigma2 = super_block_sigma2(xbl, 2);
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
            uint8_t signs[4];
            const float scale = fit_sub_block(cb, &fit, xbl + 32 * ib, qw ? qw + DS_QK_K * b + 32 * ib : NULL, sigma2, L, signs);
            scales[ib] = DS_MAX(scale, 0);
            if (scale < 0) continue;
            for (int k = 0; k < 8; ++k) q3[8 * ib + k] = (uint8_t)on_grid_index(cb, L + 4 * k);
            scales_and_signs[ib] = signs[0] | (signs[1] << 7) | (signs[2] << 14) | ((uint32_t)signs[3] << 21);
            max_scale = DS_MAX(max_scale, scale);
        }
        if (!max_scale) {
            memset(y[b].qs, 0, sizeof y[b].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[b].d = ds_fp32_to_fp16(d * 1.0125f);
        const float id = 1 / d;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) scales_and_signs[ib] |= (uint32_t)scale_code(id, scales[ib]) << 28;
        memcpy(y[b].qs, q3, sizeof q3);
        memcpy(y[b].qs + sizeof q3, scales_and_signs, sizeof scales_and_signs);
    }
}

// ================================ IQ3_S: 8 × 32, 512-point grid of 4 ==============================
// 8 low index bits in qs, the 9th in qh, 8 sign bits per 8 values, 4-bit scale codes in pairs.
// Like ggml, a sub-block of zeros does not advance the qs and signs cursors, so the next sub-block's
// bytes land in its place (the dequantizer then reads them at the wrong position; kept for equal bytes).
void ds_quantize_iq3_s(const ds_iq_codebook *cb, const float *x, ds_block_iq3_s *y, int64_t n, const float *qw) {
    const grid_fit fit = {32, 8, 9, 0.2f, 0, -1, false, false, false, REFIT_ALL_IF_OFF};
    float scales[DS_QK_K / 32];
    int8_t L[32];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float *xbl = x + DS_QK_K * b;
        memset(&y[b], 0, sizeof y[b]);
        uint8_t *qs = y[b].qs, *signs_out = y[b].signs;
        float max_scale = 0;
        const float sigma2 = super_block_sigma2(xbl, 2);
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
            uint8_t signs[4];
            const float scale = fit_sub_block(cb, &fit, xbl + 32 * ib, qw ? qw + DS_QK_K * b + 32 * ib : NULL, sigma2, L, signs);
            scales[ib] = DS_MAX(scale, 0);
            if (scale < 0) continue;
            for (int k = 0; k < 8; ++k) {
                const int index = on_grid_index(cb, L + 4 * k);
                qs[k] = (uint8_t)(index & 255);
                y[b].qh[(8 * ib + k) / 8] |= (uint8_t)((index >> 8) << ((8 * ib + k) % 8));
            }
            qs += 8;
            memcpy(signs_out, signs, 4);
            signs_out += 4;
            max_scale = DS_MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[b].d = ds_fp32_to_fp16(d * 1.033f);
        store_scale_codes(scales, DS_QK_K / 32, d, y[b].scales);
    }
}
