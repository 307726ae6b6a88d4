// ds_quant_iq1.c — the IQ1_S and IQ1_M quantizers: the bytes llama-quantize writes (ggml's
// quantize_row_iq1_s_impl / quantize_row_iq1_m_impl).
//
// Values take three levels {−1, 0, 1} shifted by ±δ (δ = 1/8): x ≈ s · (q + shift). With three levels
// the best split of a sorted sub-block into (low, middle, high) is found exhaustively from prefix
// sums; the levels are then snapped onto the 2048-point grid (groups of 8).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ds_quant_iq.h"
#include <float.h>
#include <stdlib.h>
#include <string.h>

#define IQ1_DELTA 0.125f

// A value and its position; sorted by value with the C library's qsort like ggml (same element size
// and comparison, so equal values end in the same order).
typedef struct {
    float value;
    int index;
} sort_pair;

static int compare_pairs(const void *left, const void *right) {
    const float l = *(const float *)left, r = *(const float *)right;
    return l < r ? -1 : l > r ? 1 : 0;
}

static void sort_sub_block(int n, const float *xb, sort_pair *pairs) {
    for (int j = 0; j < n; ++j) pairs[j] = (sort_pair){xb[j], j};
    qsort(pairs, (size_t)n, sizeof(sort_pair), compare_pairs);
}

static void importance_or_square(int n, const float *xb, const float *qw, float sigma2, float *weight) {
    for (int i = 0; i < n; ++i) weight[i] = qw ? qw[i] * ds_sqrt(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
}

static float abs_max(int n, const float *x) {
    float max = fabsf(x[0]);
    for (int i = 1; i < n; ++i) max = DS_MAX(max, fabsf(x[i]));
    return max;
}

// Levels from the split: sorted positions below i1 → 0, below i2 → 1, the rest → 2. A negative scale
// is made positive by mirroring the levels (returns 1: the caller mirrors its shift choice too).
static int levels_from_split(int n, const sort_pair *pairs, int i1, int i2, float *scale, int8_t *L) {
    for (int j = 0; j < i1; ++j) L[pairs[j].index] = 0;
    for (int j = i1; j < i2; ++j) L[pairs[j].index] = 1;
    for (int j = i2; j < n; ++j) L[pairs[j].index] = 2;
    if (*scale >= 0) return 0;
    for (int j = 0; j < n; ++j) L[j] = (int8_t)(2 - L[j]);
    *scale = -*scale;
    return 1;
}

// Snaps each group of 8 levels onto the grid (group k's levels shifted by xg[k]: x ≈ scale · xg[l]),
// giving its grid index; when a group was off the grid, the scale is refitted to the snapped points
// (kept when that fit is not positive). Returns the scale.
static float snap_groups(const ds_iq_codebook *cb, int n, const float *xb, const float *weight, float scale,
                         const float *const *xg, int8_t *L, uint16_t *index) {
    bool all_on_grid = true;
    for (int k = 0; k < n / 8; ++k) {
        bool on_grid;
        index[k] = (uint16_t)ds_iq_snap(cb, xb + 8 * k, weight + 8 * k, scale, xg[k], L + 8 * k, &on_grid);
        all_on_grid = all_on_grid && on_grid;
    }
    if (all_on_grid) return scale;
    float sumqx = 0, sumq2 = 0;
    for (int k = 0; k < n / 8; ++k) {
        const int8_t *pg = cb->points + 8 * index[k];
        for (int j = 0; j < 8; ++j) {
            const float w = weight[8 * k + j], q = xg[k][(pg[j] - 1) / 2];
            sumqx += w * q * xb[8 * k + j];
            sumq2 += w * q * q;
        }
    }
    return sumqx > 0 && sumq2 > 0 ? sumqx / sumq2 : scale;
}

// ================================ IQ1_S: 8 × 32 ===================================================
void ds_quantize_iq1_s(const ds_iq_codebook *cb, const float *x, ds_block_iq1_s *y, int64_t n, const float *qw) {
    enum { bs = 32 };
    const float x_p[3] = {-1 + IQ1_DELTA, IQ1_DELTA, 1 + IQ1_DELTA};
    const float x_m[3] = {-1 - IQ1_DELTA, -IQ1_DELTA, 1 - IQ1_DELTA};
    float weight[bs], sumx[bs + 1], sumw[bs + 1], scales[DS_QK_K / bs];
    int8_t L[bs], shifts[DS_QK_K / bs];
    sort_pair pairs[bs];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float *xbl = x + DS_QK_K * b;
        y[b].d = 0;
        memset(y[b].qs, 0, sizeof y[b].qs);
        memset(y[b].qh, 0, sizeof y[b].qh);
        float max_scale = 0;
        const float sigma2 = 2 * ds_iq_sum_squares(xbl, DS_QK_K) / DS_QK_K;
        for (int ib = 0; ib < DS_QK_K / bs; ++ib) {
            const float *xb = xbl + bs * ib;
            importance_or_square(bs, xb, qw + DS_QK_K * b + bs * ib, sigma2, weight);
            scales[ib] = 0;
            shifts[ib] = 1;
            if (abs_max(bs, xb) < 1e-12f) continue;
            sort_sub_block(bs, xb, pairs);
            sumx[0] = sumw[0] = 0;
            for (int j = 0; j < bs; ++j) {
                const int i = pairs[j].index;
                sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                sumw[j + 1] = sumw[j] + weight[i];
            }
            float best_score = -FLT_MAX, scale = abs_max(bs, xb);
            int besti1 = -1, besti2 = -1, best_shift = 0;
            for (int i1 = 0; i1 <= bs; ++i1) {
                for (int i2 = i1; i2 <= bs; ++i2) {
                    for (int sign = 1; sign >= -1; sign -= 2) {
                        const float *v = sign == 1 ? x_p : x_m;
                        const float sumqx = (sumx[i1] - sumx[0]) * v[0] + (sumx[i2] - sumx[i1]) * v[1] + (sumx[bs] - sumx[i2]) * v[2];
                        const float sumq2 = (sumw[i1] - sumw[0]) * v[0] * v[0] + (sumw[i2] - sumw[i1]) * v[1] * v[1] +
                                            (sumw[bs] - sumw[i2]) * v[2] * v[2];
                        if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                            scale = sumqx / sumq2;
                            best_score = scale * sumqx;
                            besti1 = i1; besti2 = i2; best_shift = sign;
                        }
                    }
                }
            }
            if (besti1 < 0 || besti2 < 0 || best_shift == 0) continue;
            if (levels_from_split(bs, pairs, besti1, besti2, &scale, L)) best_shift = -best_shift;
            const float *xx = best_shift == 1 ? x_p : x_m;
            const float *const shifted[bs / 8] = {xx, xx, xx, xx};
            uint16_t index[bs / 8];
            scale = snap_groups(cb, bs, xb, weight, scale, shifted, L, index);
            uint16_t h = 0;
            for (int k = 0; k < bs / 8; ++k) {
                y[b].qs[(bs / 8) * ib + k] = (uint8_t)(index[k] & 255);
                h |= (uint16_t)((index[k] >> 8) << (3 * k));
            }
            y[b].qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_shift;
            max_scale = DS_MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        const float d = max_scale / 15;
        y[b].d = ds_fp32_to_fp16(d * 1.125f);
        const float id = 1 / d;
        for (int ib = 0; ib < DS_QK_K / bs; ++ib) {
            int l = DS_MAX(0, DS_MIN(7, ds_nearest_int(0.5f * (id * scales[ib] - 1))));
            if (shifts[ib] == -1) l |= 8;
            y[b].qh[ib] |= (uint16_t)(l << 12);
        }
    }
}

// ================================ IQ1_M: 16 × 16 ==================================================
// Each group of 8 has its own shift sign; the sub-block scales are 3-bit codes of d, and d itself
// (refitted over the whole super-block) is spread over the top nibbles of the four scale words.
// Shift pattern k of a sub-block: bit 1 → first half shifted down, bit 0 → second half shifted down.
static const float *iq1m_shift_values(int pattern, int half, const float *x_p, const float *x_m) {
    return half == 0 ? (pattern < 2 ? x_p : x_m) : (pattern % 2 == 0 ? x_p : x_m);
}

// The best split and shift pattern of a sorted sub-block of 16: prefix sums per half (each half may take
// its own shift), and since v[0] − v[1] = v[1] − v[2] = −1 for both shifts, a split's Σ w·q·x collapses
// to T·v[2] − px[i1] − px[i2]. Returns the scale; -1 in *best_k when no split has Σ w·q² > 0.
static float iq1m_best_split(const float *xb, const float *weight, const sort_pair *pairs, const float *x_p,
                             const float *x_m, int *besti1, int *besti2, int *best_k) {
    enum { bs = 16 };
    float px[2][bs + 1], pw[2][bs + 1];
    px[0][0] = px[1][0] = 0;
    pw[0][0] = pw[1][0] = 0;
    for (int j = 0; j < bs; ++j) {
        const int i = pairs[j].index, h = i < bs / 2 ? 0 : 1;
        px[h][j + 1] = px[h][j] + weight[i] * xb[i];
        px[1 - h][j + 1] = px[1 - h][j];
        pw[h][j + 1] = pw[h][j] + weight[i];
        pw[1 - h][j + 1] = pw[1 - h][j];
    }
    const float txs[2] = {px[0][bs], px[1][bs]}, tws[2] = {pw[0][bs], pw[1][bs]};
    const float p2 = x_p[2], m2 = x_m[2];
    const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1], cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
    const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1], cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
    float best_score = -FLT_MAX, scale = abs_max(bs, xb);
    *besti1 = *besti2 = *best_k = -1;
    for (int i1 = 0; i1 <= bs; ++i1) {
        for (int i2 = i1; i2 <= bs; ++i2) {
            float qx_p[2], qx_m[2], q2_p[2], q2_m[2];
            for (int h = 0; h < 2; ++h) {
                const float sx = px[h][i1] + px[h][i2];
                qx_p[h] = txs[h] * p2 - sx;
                qx_m[h] = txs[h] * m2 - sx;
                q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
            }
            const float sumqx[4] = {qx_p[0] + qx_p[1], qx_p[0] + qx_m[1], qx_m[0] + qx_p[1], qx_m[0] + qx_m[1]};
            const float sumq2[4] = {q2_p[0] + q2_p[1], q2_p[0] + q2_m[1], q2_m[0] + q2_p[1], q2_m[0] + q2_m[1]};
            for (int k = 0; k < 4; ++k) {
                if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
                    scale = sumqx[k] / sumq2[k];
                    best_score = scale * sumqx[k];
                    *besti1 = i1; *besti2 = i2; *best_k = k;
                }
            }
        }
    }
    return scale;
}

void ds_quantize_iq1_m(const ds_iq_codebook *cb, const float *x, ds_block_iq1_m *y, int64_t n, const float *qw) {
    enum { bs = 16 };
    const float x_p[3] = {-1 + IQ1_DELTA, IQ1_DELTA, 1 + IQ1_DELTA};
    const float x_m[3] = {-1 - IQ1_DELTA, -IQ1_DELTA, 1 - IQ1_DELTA};
    const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    float weight[bs], scales[DS_QK_K / bs];
    int8_t L[bs], shifts[DS_QK_K / bs];
    sort_pair pairs[bs];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float *xbl = x + DS_QK_K * b;
        memset(y[b].qs, 0, sizeof y[b].qs);
        memset(y[b].qh, 0, sizeof y[b].qh);
        memset(y[b].scales, 0, sizeof y[b].scales);
        float max_scale = 0;
        const float sigma2 = 2 * ds_iq_sum_squares(xbl, DS_QK_K) / DS_QK_K;
        for (int ib = 0; ib < DS_QK_K / bs; ++ib) {
            const float *xb = xbl + bs * ib;
            importance_or_square(bs, xb, qw ? qw + DS_QK_K * b + bs * ib : NULL, sigma2, weight);
            scales[ib] = 0;
            shifts[ib] = 0;
            if (abs_max(bs, xb) < 1e-7f) continue;
            sort_sub_block(bs, xb, pairs);
            int besti1, besti2, best_k;
            float scale = iq1m_best_split(xb, weight, pairs, x_p, x_m, &besti1, &besti2, &best_k);
            if (besti1 < 0 || besti2 < 0 || best_k < 0) continue;
            if (levels_from_split(bs, pairs, besti1, besti2, &scale, L)) best_k = 3 - best_k;
            const float *const shifted[bs / 8] = {iq1m_shift_values(best_k, 0, x_p, x_m), iq1m_shift_values(best_k, 1, x_p, x_m)};
            uint16_t index[bs / 8];
            scale = snap_groups(cb, bs, xb, weight, scale, shifted, L, index);
            y[b].qs[2 * ib + 0] = (uint8_t)(index[0] & 255);
            y[b].qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
            y[b].qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_k;
            max_scale = DS_MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        // The sub-block codes, then d refitted over the super-block with the codes as they are stored.
        uint16_t sc[4];
        memcpy(sc, y[b].scales, sizeof sc);
        float d = max_scale / 15;
        const float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int ib = 0; ib < DS_QK_K / bs; ++ib) {
            const int l = DS_MAX(0, DS_MIN(7, ds_nearest_int(0.5f * (id * scales[ib] - 1))));
            sc[ib / 4] |= (uint16_t)(l << (3 * (ib % 4)));
            y[b].qh[ib] |= masks[shifts[ib]];
            const float *xb = xbl + bs * ib;
            importance_or_square(bs, xb, qw ? qw + DS_QK_K * b + bs * ib : NULL, sigma2, weight);
            for (int k = 0; k < bs / 8; ++k) {
                const float *xx = iq1m_shift_values(shifts[ib], k, x_p, x_m);
                const int index = y[b].qs[2 * ib + k] + ((y[b].qh[ib] << (8 - 4 * k)) & 0x700);
                const int8_t *pg = cb->points + 8 * index;
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j];
                    const float q = xx[(pg[j] - 1) / 2] * (2 * l + 1);
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
        }
        if (sumq2 > 0) d = sumqx / sumq2;
        const uint16_t dh = ds_fp32_to_fp16(d * 1.1125f);
        sc[0] |= (uint16_t)((dh & 0x000f) << 12);
        sc[1] |= (uint16_t)((dh & 0x00f0) << 8);
        sc[2] |= (uint16_t)((dh & 0x0f00) << 4);
        sc[3] |= (uint16_t)(dh & 0xf000);
        memcpy(y[b].scales, sc, sizeof sc);
    }
}
