// ds_quant_ref.c — reference quantizers and dequantizers (bit-exact with ggml / gguf-py).
//
// Every float operation here is written in the same order as ggml's reference code so that the
// produced bytes (quantizers) and floats (dequantizers) are identical. For that, floating-point
// contraction (fusing a*b+c into one FMA) must be off: it is never done on baseline x86-64, and the
// pragmas below disable it on compilers / targets where it would be (clang, GCC on AArch64).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ds_quant_fit.h"
#include <float.h>

// roundf (halfway cases away from zero) without libm: for |v| < 2^23 the fraction |v| - trunc(|v|)
// is exact in float, so comparing it with 0.5 decides exactly.
static inline float ds_round_half_away(float v) {
    const float magnitude = fabsf(v);
    if (!(magnitude < 8388608.0f)) return v;                 // already an integer (or NaN)
    float whole = (float)(int32_t)magnitude;
    if (magnitude - whole >= 0.5f) whole += 1.0f;
    return copysignf(whole, v);
}

// ================================ 32-element block formats =======================================

// The activation quantizers (Q8_0, Q8_1, Q8_K) run once per matmul input row on the hot path:
// compiled per ISA level (same operations in the same order, so the bytes are identical).
#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define DS_ACT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DS_ACT_CLONES
#endif

static void quantize_q4_0(const float *x, ds_block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK4_0; ++b, x += DS_QK4_0) {
        // d = (value of largest magnitude) / -8 so that this value maps to q = 0 exactly.
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < DS_QK4_0; ++j) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = ds_float_to_half(d);
        for (int j = 0; j < DS_QK4_0 / 2; ++j) {
            const float v0 = x[j] * id, v1 = x[j + 16] * id;
            const uint8_t q0 = (uint8_t)DS_MIN(15, (int8_t)(v0 + 8.5f));
            const uint8_t q1 = (uint8_t)DS_MIN(15, (int8_t)(v1 + 8.5f));
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void quantize_q4_1(const float *x, ds_block_q4_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK4_1; ++b, x += DS_QK4_1) {
        // Affine: x ~= d * q + min with q in 0..15, d = (max - min) / 15.
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < DS_QK4_1; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = ds_float_to_half(d);
        y[b].m = ds_float_to_half(min);
        for (int j = 0; j < DS_QK4_1 / 2; ++j) {
            const float v0 = (x[j] - min) * id, v1 = (x[j + 16] - min) * id;
            const uint8_t q0 = (uint8_t)DS_MIN(15, (int8_t)(v0 + 0.5f));
            const uint8_t q1 = (uint8_t)DS_MIN(15, (int8_t)(v1 + 0.5f));
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void quantize_q5_0(const float *x, ds_block_q5_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK5_0; ++b, x += DS_QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < DS_QK5_0; ++j) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = ds_float_to_half(d);
        uint32_t high_bits = 0;
        for (int j = 0; j < DS_QK5_0 / 2; ++j) {
            const float v0 = x[j] * id, v1 = x[j + 16] * id;
            const uint8_t q0 = (uint8_t)DS_MIN(31, (int8_t)(v0 + 16.5f));
            const uint8_t q1 = (uint8_t)DS_MIN(31, (int8_t)(v1 + 16.5f));
            y[b].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            high_bits |= (uint32_t)((q0 >> 4) & 1) << j;
            high_bits |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        memcpy(y[b].qh, &high_bits, 4);
    }
}

static void quantize_q5_1(const float *x, ds_block_q5_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK5_1; ++b, x += DS_QK5_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < DS_QK5_1; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = ds_float_to_half(d);
        y[b].m = ds_float_to_half(min);
        uint32_t high_bits = 0;
        for (int j = 0; j < DS_QK5_1 / 2; ++j) {
            const float v0 = (x[j] - min) * id, v1 = (x[j + 16] - min) * id;
            const uint8_t q0 = (uint8_t)(v0 + 0.5f);
            const uint8_t q1 = (uint8_t)(v1 + 0.5f);
            y[b].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            high_bits |= (uint32_t)((q0 >> 4) & 1) << j;
            high_bits |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        memcpy(y[b].qh, &high_bits, 4);
    }
}

DS_ACT_CLONES static void quantize_q8_0(const float *x, ds_block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK8_0; ++b, x += DS_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < DS_QK8_0; ++j) amax = DS_MAX(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = ds_float_to_half(d);
        for (int j = 0; j < DS_QK8_0; ++j) y[b].qs[j] = (int8_t)ds_round_half_away(x[j] * id);
    }
}

DS_ACT_CLONES static void quantize_q8_1(const float *x, ds_block_q8_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK8_1; ++b, x += DS_QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < DS_QK8_1; ++j) amax = DS_MAX(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = ds_float_to_half(d);
        int sum = 0;
        for (int j = 0; j < DS_QK8_1; ++j) {
            y[b].qs[j] = (int8_t)ds_round_half_away(x[j] * id);
            sum += y[b].qs[j];
        }
        y[b].s = ds_float_to_half((float)sum * d);   // s = d * sum(q), for the Q4_1/Q5_1 min term
    }
}

// ================================ K-quant helpers ================================================

// Q3_K group fit: start from iscale = -nmax/max, then up to 5 rounds of coordinate descent that
// re-pick each quant to maximize the weighted fit (weights x^2). L receives q + nmax.
static float group_scale_q3(int count, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < count; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < DS_GROUP_MAX_EPS) {
        for (int i = 0; i < count; ++i) L[i] = 0;
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < count; ++i) {
        int l = ds_nearest_int(iscale * x[i]);
        l = DS_MAX(-nmax, DS_MIN(nmax - 1, l));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int round = 0; round < 5; ++round) {
        int changed = 0;
        for (int i = 0; i < count; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = ds_nearest_int(x[i] * sl2 / slx);
                new_l = DS_MAX(-nmax, DS_MIN(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < count; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ================================ K-quant quantizers =============================================

static void quantize_q2_K(const float *x, ds_block_q2_K *y, int64_t n) {
    uint8_t L[DS_QK_K], scratch[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = ds_fit_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], scratch,
                                           -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; ++j) y[b].scales[j] = (uint8_t)ds_nearest_int(iscale * scales[j]);
            y[b].d = ds_float_to_half(max_scale / q4scale);
        } else {
            for (int j = 0; j < 16; ++j) y[b].scales[j] = 0;
            y[b].d = ds_float_to_half(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; ++j) {
                y[b].scales[j] |= (uint8_t)(ds_nearest_int(iscale * mins[j]) << 4);
            }
            y[b].dmin = ds_float_to_half(max_min / q4scale);
        } else {
            y[b].dmin = ds_float_to_half(0.f);
        }
        ds_requantize_q2_K(x, &y[b], L);
        ds_pack_2bit(L, y[b].qs);
    }
}

static void quantize_q3_K(const float *x, ds_block_q3_K *y, int64_t n) {
    int8_t L[DS_QK_K];
    float scales[16];
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; ++j) {
            scales[j] = group_scale_q3(16, 4, x + 16 * j, L + 16 * j);
            const float a = fabsf(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        int8_t codes[16] = {0};
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) codes[j] = (int8_t)(DS_MAX(-32, DS_MIN(31, ds_nearest_int(iscale * scales[j]))) + 32);
            y[b].d = ds_float_to_half(1 / iscale);
        } else {
            y[b].d = ds_float_to_half(0.f);
        }
        ds_pack_q3_K_scales(codes, y[b].scales);
        ds_requantize_q3_K(x, &y[b], L);
        ds_pack_q3_K(L, y[b].hmask, y[b].qs);
    }
}

// Shared by Q4_K / Q5_K: fit 8 sub-blocks of 32 with weights sqrt(mean x^2) + |x|, then store the
// 6-bit scales/mins, the fp16 super-scales, and re-quantize each value against the stored scales.
static void fit_k4_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *L,
                          uint16_t *d_out, uint16_t *dmin_out, uint8_t *packed) {
    float mins[8], scales[8], weights[32];
    uint8_t scratch[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = ds_sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = ds_fit_affine(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], scratch,
                                       rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = (uint8_t)ds_nearest_int(inv_scale * scales[j]);
        lm[j] = (uint8_t)ds_nearest_int(inv_min * mins[j]);
    }
    ds_pack_k4_scales(ls, lm, packed);
    *d_out = ds_float_to_half(max_scale / 63.f);
    *dmin_out = ds_float_to_half(max_min / 63.f);
    ds_requantize_k4(x, nmax, *d_out, *dmin_out, packed, L);
}

static void quantize_q4_K(const float *x, ds_block_q4_K *y, int64_t n) {
    uint8_t L[DS_QK_K];
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K) {
        fit_k4_scales(x, 15, -1.f, 20, L, &y[b].d, &y[b].dmin, y[b].scales);
        ds_pack_q4_K(L, y[b].qs);
    }
}

static void quantize_q5_K(const float *x, ds_block_q5_K *y, int64_t n) {
    uint8_t L[DS_QK_K];
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K) {
        fit_k4_scales(x, 31, -0.5f, 15, L, &y[b].d, &y[b].dmin, y[b].scales);
        ds_pack_q5_K(L, y[b].qs, y[b].qh);
    }
}

DS_ACT_CLONES static void quantize_q8_K(const float *x, ds_block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK_K; ++b, x += DS_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < DS_QK_K; ++j) {
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax == 0.0f) {
            y[b].d = 0;
            memset(y[b].qs, 0, DS_QK_K);
            // bsums keep whatever ggml leaves there too; zero them for determinism
            memset(y[b].bsums, 0, sizeof(y[b].bsums));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < DS_QK_K; ++j) {
            const int v = ds_nearest_int(iscale * x[j]);
            y[b].qs[j] = (int8_t)DS_MIN(127, v);
        }
        for (int j = 0; j < 16; ++j) {
            int sum = 0;
            for (int i = 0; i < 16; ++i) sum += y[b].qs[16 * j + i];
            y[b].bsums[j] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

// MXFP4 (ggml's quantize_row_mxfp4_ref): the shared exponent puts the block's largest magnitude in
// [4, 8) x 2^(e-127)... i.e. e = floor(log2(amax)) - 2 + 127, then each element takes the nearest
// E2M1 code (first one on ties, scanning codes 0..15 like ggml).
static int mxfp4_nearest_code(float x, float d) {
    int best = 0;
    float best_err = fabsf(ds_kvalues_mxfp4[0] * d - x);
    for (int i = 1; i < 16; ++i) {
        const float err = fabsf(ds_kvalues_mxfp4[i] * d - x);
        if (err < best_err) { best = i; best_err = err; }
    }
    return best;
}

static void quantize_mxfp4(const float *x, ds_block_mxfp4 *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK_MXFP4; ++b, x += DS_QK_MXFP4) {
        float amax = 0.0f;
        for (int j = 0; j < DS_QK_MXFP4; ++j) amax = fmaxf(amax, fabsf(x[j]));
        const uint8_t e = amax > 0.0f ? (uint8_t)(floorf(log2f(amax)) - 2 + 127) : 0;
        const float d = ds_e8m0_to_float_half(e);
        y[b].e = e;
        for (int j = 0; j < DS_QK_MXFP4 / 2; ++j)
            y[b].qs[j] = (uint8_t)(mxfp4_nearest_code(x[j], d) | mxfp4_nearest_code(x[j + 16], d) << 4);
    }
}

void ds_quantize_row_ref(int type, const float *x, void *dst, int64_t n) {
    switch (type) {
    case DS_TYPE_F32: memcpy(dst, x, (size_t)n * sizeof(float)); break;
    case DS_TYPE_F16: {
        uint16_t *h = (uint16_t *)dst;
        for (int64_t i = 0; i < n; ++i) h[i] = ds_float_to_half(x[i]);
        break;
    }
    case DS_TYPE_BF16: {
        uint16_t *h = (uint16_t *)dst;
        for (int64_t i = 0; i < n; ++i) h[i] = ds_float_to_bfloat(x[i]);
        break;
    }
    case DS_TYPE_Q4_0: quantize_q4_0(x, (ds_block_q4_0 *)dst, n); break;
    case DS_TYPE_Q4_1: quantize_q4_1(x, (ds_block_q4_1 *)dst, n); break;
    case DS_TYPE_Q5_0: quantize_q5_0(x, (ds_block_q5_0 *)dst, n); break;
    case DS_TYPE_Q5_1: quantize_q5_1(x, (ds_block_q5_1 *)dst, n); break;
    case DS_TYPE_Q8_0: quantize_q8_0(x, (ds_block_q8_0 *)dst, n); break;
    case DS_TYPE_Q8_1: quantize_q8_1(x, (ds_block_q8_1 *)dst, n); break;
    case DS_TYPE_Q2_K: quantize_q2_K(x, (ds_block_q2_K *)dst, n); break;
    case DS_TYPE_Q3_K: quantize_q3_K(x, (ds_block_q3_K *)dst, n); break;
    case DS_TYPE_Q4_K: quantize_q4_K(x, (ds_block_q4_K *)dst, n); break;
    case DS_TYPE_Q5_K: quantize_q5_K(x, (ds_block_q5_K *)dst, n); break;
    case DS_TYPE_Q6_K: ds_quantize_q6_K(x, (ds_block_q6_K *)dst, n, NULL); break;
    case DS_TYPE_Q8_K: quantize_q8_K(x, (ds_block_q8_K *)dst, n); break;
    case DS_TYPE_MXFP4: quantize_mxfp4(x, (ds_block_mxfp4 *)dst, n); break;
    // ggml's quantize_row_iq4_nl_ref (no tries) and quantize_row_iq4_xs_ref (7 tries).
    case DS_TYPE_IQ4_NL: ds_quantize_iq4(32, x, dst, n, NULL, -1); break;
    case DS_TYPE_IQ4_XS: ds_quantize_iq4(DS_QK_K, x, dst, n, NULL, 7); break;
    default: break;
    }
}

void ds_quantize_activation(int act_type, const float *x, void *dst, int64_t n) {
    switch (act_type) {
    case DS_TYPE_F32:
    case DS_TYPE_Q8_0:
    case DS_TYPE_Q8_1:
    case DS_TYPE_Q8_K: ds_quantize_row_ref(act_type, x, dst, n); break;
    default: break;
    }
}

// ================================ Dequantizers ===================================================

static void dequantize_q4_0(const ds_block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK4_0; ++b, y += DS_QK4_0) {
        const float d = ds_half_to_float(x[b].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = ((x[b].qs[j] & 0x0F) - 8) * d;
            y[j + 16] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequantize_q4_1(const ds_block_q4_1 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK4_1; ++b, y += DS_QK4_1) {
        const float d = ds_half_to_float(x[b].d), m = ds_half_to_float(x[b].m);
        for (int j = 0; j < 16; ++j) {
            y[j] = (x[b].qs[j] & 0x0F) * d + m;
            y[j + 16] = (x[b].qs[j] >> 4) * d + m;
        }
    }
}

static void dequantize_q5_0(const ds_block_q5_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK5_0; ++b, y += DS_QK5_0) {
        const float d = ds_half_to_float(x[b].d);
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        for (int j = 0; j < 16; ++j) {
            const int q0 = (x[b].qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            const int q1 = (x[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = (q0 - 16) * d;
            y[j + 16] = (q1 - 16) * d;
        }
    }
}

static void dequantize_q5_1(const ds_block_q5_1 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK5_1; ++b, y += DS_QK5_1) {
        const float d = ds_half_to_float(x[b].d), m = ds_half_to_float(x[b].m);
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        for (int j = 0; j < 16; ++j) {
            const int q0 = (x[b].qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            const int q1 = (x[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = q0 * d + m;
            y[j + 16] = q1 * d + m;
        }
    }
}

static void dequantize_q8_0(const ds_block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK8_0; ++b, y += DS_QK8_0) {
        const float d = ds_half_to_float(x[b].d);
        for (int j = 0; j < DS_QK8_0; ++j) y[j] = x[b].qs[j] * d;
    }
}

static void dequantize_q8_1(const ds_block_q8_1 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK8_1; ++b, y += DS_QK8_1) {
        const float d = ds_half_to_float(x[b].d);
        for (int j = 0; j < DS_QK8_1; ++j) y[j] = x[b].qs[j] * d;
    }
}

static void dequantize_q2_K(const ds_block_q2_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float d = ds_half_to_float(x[b].d), dmin = ds_half_to_float(x[b].dmin);
        // Element 128c + 32k + l (c: chunk, k: bit pair, l: 0..31) is bits 2k of qs[32c + l];
        // its sub-block (16 values) is 8c + 2k + l/16.
        for (int c = 0; c < 2; ++c) {
            const uint8_t *q = x[b].qs + 32 * c;
            for (int k = 0; k < 4; ++k) {
                for (int half = 0; half < 2; ++half) {
                    const uint8_t sc = x[b].scales[8 * c + 2 * k + half];
                    const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; ++l) {
                        *y++ = dl * ((q[16 * half + l] >> (2 * k)) & 3) - ml;
                    }
                }
            }
        }
    }
}

static void dequantize_q3_K(const ds_block_q3_K *x, float *y, int64_t n) {
    int8_t sc[16];
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float d_all = ds_half_to_float(x[b].d);
        ds_q3k_scales(x[b].scales, sc);
        // Element j = 128c + 32k + l: low bits (qs[32c + l] >> 2k) & 3, high bit hmask[l] bit 4c+k;
        // value = low - 4 when the high bit is clear.
        for (int c = 0; c < 2; ++c) {
            const uint8_t *q = x[b].qs + 32 * c;
            for (int k = 0; k < 4; ++k) {
                const uint8_t bit = (uint8_t)(1u << (4 * c + k));
                for (int half = 0; half < 2; ++half) {
                    const float dl = d_all * sc[8 * c + 2 * k + half];
                    for (int l = 16 * half; l < 16 * half + 16; ++l) {
                        const int v = ((q[l] >> (2 * k)) & 3) - ((x[b].hmask[l] & bit) ? 0 : 4);
                        *y++ = dl * v;
                    }
                }
            }
        }
    }
}

static void dequantize_q4_K(const ds_block_q4_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float d = ds_half_to_float(x[b].d), dmin = ds_half_to_float(x[b].dmin);
        const uint8_t *q = x[b].qs;
        for (int c = 0; c < 4; ++c, q += 32) {
            uint8_t sc, m;
            ds_k4_scale_min(2 * c, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            ds_k4_scale_min(2 * c + 1, x[b].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static void dequantize_q5_K(const ds_block_q5_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float d = ds_half_to_float(x[b].d), dmin = ds_half_to_float(x[b].dmin);
        const uint8_t *q = x[b].qs;
        for (int c = 0; c < 4; ++c, q += 32) {
            uint8_t sc, m;
            ds_k4_scale_min(2 * c, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            ds_k4_scale_min(2 * c + 1, x[b].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            const uint8_t bit1 = (uint8_t)(1u << (2 * c)), bit2 = (uint8_t)(2u << (2 * c));
            for (int l = 0; l < 32; ++l) {
                *y++ = d1 * ((q[l] & 0xF) + ((x[b].qh[l] & bit1) ? 16 : 0)) - m1;
            }
            for (int l = 0; l < 32; ++l) {
                *y++ = d2 * ((q[l] >> 4) + ((x[b].qh[l] & bit2) ? 16 : 0)) - m2;
            }
        }
    }
}

static void dequantize_q6_K(const ds_block_q6_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        const float d = ds_half_to_float(x[b].d);
        for (int h = 0; h < 2; ++h, y += 128) {
            const uint8_t *ql = x[b].ql + 64 * h;
            const uint8_t *qh = x[b].qh + 32 * h;
            const int8_t *sc = x[b].scales + 8 * h;
            for (int l = 0; l < 32; ++l) {
                const int s = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[s] * q1;
                y[l + 32] = d * sc[s + 2] * q2;
                y[l + 64] = d * sc[s + 4] * q3;
                y[l + 96] = d * sc[s + 6] * q4;
            }
        }
    }
}

static void dequantize_q8_K(const ds_block_q8_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK_K; ++b) {
        for (int j = 0; j < DS_QK_K; ++j) *y++ = x[b].d * x[b].qs[j];
    }
}

// MXFP4: x[j] = kvalue(low nibble of qs[j]) * d, x[j+16] = kvalue(high nibble) * d (exact).
static void dequantize_mxfp4(const ds_block_mxfp4 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DS_QK_MXFP4; ++b, y += DS_QK_MXFP4) {
        const float d = ds_e8m0_to_float_half(x[b].e);
        for (int j = 0; j < DS_QK_MXFP4 / 2; ++j) {
            y[j] = ds_kvalues_mxfp4[x[b].qs[j] & 0x0F] * d;
            y[j + 16] = ds_kvalues_mxfp4[x[b].qs[j] >> 4] * d;
        }
    }
}

void ds_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case DS_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case DS_TYPE_F16: {
        const uint16_t *h = (const uint16_t *)src;
        for (int64_t i = 0; i < n; ++i) dst[i] = ds_half_to_float(h[i]);
        break;
    }
    case DS_TYPE_BF16: {
        const uint16_t *h = (const uint16_t *)src;
        for (int64_t i = 0; i < n; ++i) dst[i] = ds_bfloat_to_float(h[i]);
        break;
    }
    case DS_TYPE_Q4_0: dequantize_q4_0((const ds_block_q4_0 *)src, dst, n); break;
    case DS_TYPE_Q4_1: dequantize_q4_1((const ds_block_q4_1 *)src, dst, n); break;
    case DS_TYPE_Q5_0: dequantize_q5_0((const ds_block_q5_0 *)src, dst, n); break;
    case DS_TYPE_Q5_1: dequantize_q5_1((const ds_block_q5_1 *)src, dst, n); break;
    case DS_TYPE_Q8_0: dequantize_q8_0((const ds_block_q8_0 *)src, dst, n); break;
    case DS_TYPE_Q8_1: dequantize_q8_1((const ds_block_q8_1 *)src, dst, n); break;
    case DS_TYPE_Q2_K: dequantize_q2_K((const ds_block_q2_K *)src, dst, n); break;
    case DS_TYPE_Q3_K: dequantize_q3_K((const ds_block_q3_K *)src, dst, n); break;
    case DS_TYPE_Q4_K: dequantize_q4_K((const ds_block_q4_K *)src, dst, n); break;
    case DS_TYPE_Q5_K: dequantize_q5_K((const ds_block_q5_K *)src, dst, n); break;
    case DS_TYPE_Q6_K: dequantize_q6_K((const ds_block_q6_K *)src, dst, n); break;
    case DS_TYPE_Q8_K: dequantize_q8_K((const ds_block_q8_K *)src, dst, n); break;
    case DS_TYPE_MXFP4: dequantize_mxfp4((const ds_block_mxfp4 *)src, dst, n); break;
    default: ds_dequantize_iquant(type, src, dst, n); break;
    }
}

// ================================ Public scalar conversions ======================================

float ds_fp16_to_fp32(uint16_t h) { return ds_half_to_float(h); }
uint16_t ds_fp32_to_fp16(float f) { return ds_float_to_half(f); }
float ds_bf16_to_fp32(uint16_t h) { return ds_bfloat_to_float(h); }
uint16_t ds_fp32_to_bf16(float f) { return ds_float_to_bfloat(f); }
