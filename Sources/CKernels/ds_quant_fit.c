// ds_quant_fit.c — the scale fits and block packing the weight quantizers share (see ds_quant_fit.h).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ds_quant_fit.h"

float ds_fit_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < DS_GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = ds_nearest_int(iscale * x[i]);
        l = DS_MAX(-nmax, DS_MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; ++step) {
        if (step == 0) continue;
        iscale = -(nmax + 0.1f * step) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = ds_nearest_int(iscale * x[i]);
            l = DS_MAX(-nmax, DS_MIN(nmax - 1, l));
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = ds_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + DS_MAX(-nmax, DS_MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

float ds_fit_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *min_out,
                    uint8_t *scratch, float rmin, float rdelta, int nstep, int use_abs_error) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *min_out = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = ds_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)DS_MAX(0, DS_MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_abs_error ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *min_out = -min;
        return scale;
    }
    for (int step = 0; step <= nstep; ++step) {
        iscale = (rmin + rdelta * step + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = ds_nearest_int(iscale * (x[i] - min));
            l = DS_MAX(0, DS_MIN(nmax, l));
            scratch[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        // Normal equations of min over (s, m) of Σ w (s·l + m − x)².
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * scratch[i] + this_min - x[i];
                diff = use_abs_error ? fabsf(diff) : diff * diff;
                error += weights[i] * diff;
            }
            if (error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = scratch[i];
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *min_out = -min;
    return scale;
}

float ds_fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = DS_MAX(max, x[i]);
    if (max < DS_GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    // The scale among 1/iscale and 8 neighbours with the smallest weighted squared error.
    float iscale = nmax / max;
    for (int i = 0; i < n; ++i) L[i] = (uint8_t)ds_nearest_int(iscale * x[i]);
    const float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale * L[i];
        best_error += w[i] * diff * diff;
    }
    for (int step = -4; step <= 4; ++step) {
        if (step == 0) continue;
        const float try_iscale = (0.1f * step + nmax) / max;
        const float try_scale = 1 / try_iscale;
        float error = 0;
        for (int i = 0; i < n; ++i) {
            const int l = DS_MIN(nmax, ds_nearest_int(try_iscale * x[i]));
            const float diff = x[i] - try_scale * l;
            error += w[i] * diff * diff;
        }
        if (error < best_error) {
            best_error = error;
            iscale = try_iscale;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = DS_MIN(nmax, ds_nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += w[i] * x[i] * l;
        suml2 += w[i] * l * l;
    }
    // Re-pick one value at a time while that raises (Σ w·x·l)² / Σ w·l².
    for (int round = 0; round < 5; ++round) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            float slx = sumlx - w[i] * x[i] * L[i];
            float sl2 = suml2 - w[i] * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                const int new_l = DS_MIN(nmax, ds_nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w[i] * x[i] * new_l;
                    sl2 += w[i] * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

int ds_nearest_value_index(int n, const int8_t *values, float x) {
    if (x <= values[0]) return 0;
    if (x >= values[n - 1]) return n - 1;
    int lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < values[mid]) hi = mid; else lo = mid;
    }
    return x - values[hi - 1] < values[hi] - x ? hi - 1 : hi;
}

void ds_pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < DS_QK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
}

void ds_pack_q3_K(int8_t *L, uint8_t *hmask, uint8_t *qs) {
    memset(hmask, 0, 32);
    for (int j = 0; j < DS_QK_K; ++j) {
        if (L[j] > 3) {
            hmask[j % 32] |= (uint8_t)(1u << (j / 32));
            L[j] = (int8_t)(L[j] - 4);
        }
    }
    ds_pack_2bit((const uint8_t *)L, qs);
}

void ds_pack_q3_K_scales(const int8_t *codes, uint8_t *scales) {
    memset(scales, 0, 12);
    for (int j = 0; j < 16; ++j) {
        int l = codes[j];
        if (j < 8) scales[j] = (uint8_t)(l & 0xF);
        else scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
        l >>= 4;
        scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
    }
}

void ds_pack_k4_scales(const uint8_t *ls_in, const uint8_t *lm_in, uint8_t *packed) {
    for (int j = 0; j < 8; ++j) {
        const uint8_t ls = DS_MIN(63, ls_in[j]), lm = DS_MIN(63, lm_in[j]);
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
}

void ds_pack_q4_K(const uint8_t *L, uint8_t *qs) {
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + l + 32] << 4));
    }
}

void ds_pack_q5_K(const uint8_t *L, uint8_t *qs, uint8_t *qh) {
    memset(qh, 0, 32);
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            int l1 = L[64 * c + l], l2 = L[64 * c + l + 32];
            if (l1 > 15) { l1 -= 16; qh[l] |= (uint8_t)(1u << (2 * c)); }
            if (l2 > 15) { l2 -= 16; qh[l] |= (uint8_t)(2u << (2 * c)); }
            qs[32 * c + l] = (uint8_t)(l1 | (l2 << 4));
        }
    }
}

void ds_pack_q6_K(const int8_t *L, uint8_t *ql_out, uint8_t *qh_out) {
    // Per 128 values (h): ql[64h + l] = low nibbles of L[l] | L[l+64] << 4,
    // ql[64h + 32 + l] = L[l+32] | L[l+96] << 4, qh[32h + l] = the four 2-bit high parts.
    for (int h = 0; h < 2; ++h) {
        const int8_t *Lh = L + 128 * h;
        uint8_t *ql = ql_out + 64 * h;
        uint8_t *qh = qh_out + 32 * h;
        for (int l = 0; l < 32; ++l) {
            ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
            ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
            qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
        }
    }
}

void ds_pack_5bit(const uint8_t *L, uint8_t *qs, uint8_t *qh) {
    uint32_t high_bits = 0;
    for (int j = 0; j < 16; ++j) {
        qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
        high_bits |= (uint32_t)((L[j] >> 4) & 1) << j;
        high_bits |= (uint32_t)((L[j + 16] >> 4) & 1) << (j + 16);
    }
    memcpy(qh, &high_bits, 4);
}

void ds_requantize_q2_K(const float *x, const ds_block_q2_K *block, uint8_t *L) {
    for (int j = 0; j < 16; ++j) {
        const float d = ds_half_to_float(block->d) * (block->scales[j] & 0xF);
        if (d == 0.0f) continue;
        const float dm = ds_half_to_float(block->dmin) * (block->scales[j] >> 4);
        for (int i = 0; i < 16; ++i) {
            const int l = ds_nearest_int((x[16 * j + i] + dm) / d);
            L[16 * j + i] = (uint8_t)DS_MAX(0, DS_MIN(3, l));
        }
    }
}

void ds_requantize_q3_K(const float *x, const ds_block_q3_K *block, int8_t *L) {
    int8_t sc[16];
    ds_q3k_scales(block->scales, sc);
    for (int j = 0; j < 16; ++j) {
        const float d = ds_half_to_float(block->d) * sc[j];
        if (d == 0.0f) continue;
        for (int i = 0; i < 16; ++i) {
            const int l = ds_nearest_int(x[16 * j + i] / d);
            L[16 * j + i] = (int8_t)(DS_MAX(-4, DS_MIN(3, l)) + 4);
        }
    }
}

void ds_requantize_k4(const float *x, int nmax, uint16_t d_half, uint16_t dmin_half, const uint8_t *packed, uint8_t *L) {
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        ds_k4_scale_min(j, packed, &sc, &m);
        const float d = ds_half_to_float(d_half) * sc;
        if (d == 0.0f) continue;
        const float dm = ds_half_to_float(dmin_half) * m;
        for (int i = 0; i < 32; ++i) {
            const int l = ds_nearest_int((x[32 * j + i] + dm) / d);
            L[32 * j + i] = (uint8_t)DS_MAX(0, DS_MIN(nmax, l));
        }
    }
}
