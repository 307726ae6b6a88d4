// ds_quant_fit.h — what the weight quantizers share (ds_quant_ref.c, ds_quant_weighted.c): ggml's
// rounding, the least-squares scale fits and the bit packing of the K-quant blocks. Every float
// operation keeps ggml's order so that the bytes match; the including files turn FP contraction off.
#ifndef DS_QUANT_FIT_H
#define DS_QUANT_FIT_H

#include "ds_internal.h"
#include <math.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#define DS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DS_MAX(a, b) ((a) > (b) ? (a) : (b))

// Below this absolute maximum a group is treated as all zeros (same threshold as ggml).
#define DS_GROUP_MAX_EPS 1e-15f

// Round to nearest integer, ties to even, for |v| < 2^22: adding 1.5 * 2^23 puts the rounded
// integer into the low mantissa bits. Same result as ggml's nearest_int.
static inline int ds_nearest_int(float v) {
    const float shifted = v + 12582912.0f;
    return (int)(ds_float_to_bits(shifted) & 0x007FFFFFu) - 0x00400000;
}

// Correctly rounded square root without a libm call (SSE sqrtss / AArch64 fsqrt).
static inline float ds_sqrt(float v) {
#if defined(__x86_64__) || defined(_M_X64)
    return _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(v)));
#elif defined(__aarch64__)
    return vget_lane_f32(vsqrt_f32(vdup_n_f32(v)), 0);
#else
    return sqrtf(v);
#endif
}

// Symmetric fit x ≈ scale · l, l ∈ [−nmax, nmax−1], weights qw (NULL: x²): tries iscale = −(nmax +
// 0.1·k)/max for k ∈ −9..9 and keeps the one maximising (Σ w·x·l)² / Σ w·l² (ggml's make_qx_quants,
// rmse_type 1). L receives l + nmax.
float ds_fit_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw);

// Affine fit x ≈ scale · l − min_out, l ∈ 0..nmax, min_out ≥ 0, weighted: starts from the min/max
// fit, then scans iscale = (rmin + rdelta·k + nmax)/(max − min), k = 0..nstep, solving the weighted
// least squares for (scale, min) each time and keeping the smallest weighted error (absolute if
// use_abs_error, else squared). ggml's make_qkx2_quants (= make_qkx3_quants with weights).
float ds_fit_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *min_out,
                    uint8_t *scratch, float rmin, float rdelta, int nstep, int use_abs_error);

// Fit of non-negative values (sub-block scales) x ≈ scale · l, l ∈ 0..nmax, weights w: best of 9
// scales by weighted squared error, then up to 5 rounds of per-value re-picks (ggml's make_qp_quants).
float ds_fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *w);

// Index of the value of the sorted table `values[n]` nearest to x (ties to the lower one).
int ds_nearest_value_index(int n, const int8_t *values, float x);

// ---- Packing ------------------------------------------------------------------------------------

// 256 2-bit values: byte l of each 32-byte chunk c holds L[128c + l + 32k] in bits 2k..2k+1.
void ds_pack_2bit(const uint8_t *L, uint8_t *qs);
// Q3_K: values 0..7; the high bit of element j goes to hmask[j % 32] bit j / 32, the low 2 bits to qs.
void ds_pack_q3_K(int8_t *L, uint8_t *hmask, uint8_t *qs);
// Q3_K: 16 signed 6-bit scale codes (−32..31 stored + 32) into the 12 scale bytes.
void ds_pack_q3_K_scales(const int8_t *codes, uint8_t *scales);
// Q4_K / Q5_K: 8 six-bit scales and mins (clamped to 63) into the 12 scale bytes.
void ds_pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *packed);
// Q4_K: chunk c holds sub-block 2c in low nibbles and 2c+1 in high nibbles.
void ds_pack_q4_K(const uint8_t *L, uint8_t *qs);
// Q5_K: low 4 bits as in Q4_K; bit 4 of sub-block s element l goes to qh[l], bit s.
void ds_pack_q5_K(const uint8_t *L, uint8_t *qs, uint8_t *qh);
// Q6_K: values 0..63 into ql (low nibbles) and qh (2-bit high parts).
void ds_pack_q6_K(const int8_t *L, uint8_t *ql, uint8_t *qh);
// 32 values 0..31 (Q5_0 / Q5_1): low nibbles of j and j+16 in qs[j], bit 4 in qh bit j (j+16).
void ds_pack_5bit(const uint8_t *L, uint8_t *qs, uint8_t *qh);

// ---- Re-quantizing against the stored (rounded) scales -------------------------------------------

// Q2_K: L[256] ← clamp(round((x + dmin·m_j) / (d·s_j)), 0, 3) per sub-block j with d·s_j ≠ 0.
void ds_requantize_q2_K(const float *x, const ds_block_q2_K *block, uint8_t *L);
// Q3_K: L[256] ← clamp(round(x / (d·s_j)), −4, 3) + 4 per sub-block j with d·s_j ≠ 0.
void ds_requantize_q3_K(const float *x, const ds_block_q3_K *block, int8_t *L);
// Q4_K / Q5_K: L[256] ← clamp(round((x + dmin·m_j) / (d·s_j)), 0, nmax) per sub-block of 32.
void ds_requantize_k4(const float *x, int nmax, uint16_t d, uint16_t dmin, const uint8_t *packed, uint8_t *L);

// ---- Quantizers shared by the reference and the importance-weighted paths -----------------------

// Q6_K rows of n values; qw (n values) weights each column's error, NULL: x².
void ds_quantize_q6_K(const float *x, ds_block_q6_K *y, int64_t n, const float *qw);
// IQ4_NL (super = 32) or IQ4_XS (super = 256) blocks of n values; qw as above (NULL: x²); ntry
// scales tried each side of the first guess (ggml: 7 for files, −1 for quantize_row_iq4_nl_ref).
void ds_quantize_iq4(int super, const float *x, void *y, int64_t n, const float *qw, int ntry);

#endif
