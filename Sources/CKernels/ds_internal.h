// ds_internal.h — private declarations shared by the CKernels sources (not part of the public API).
#ifndef DS_INTERNAL_H
#define DS_INTERNAL_H

#include "include/ds_quant.h"
#include "include/ds_iquant.h"
#include <string.h>

// Block fields are read with memcpy into native integers: the byte order must be little-endian
// (x86-64, AArch64), as in GGUF files.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "CKernels assumes a little-endian target"
#endif

// One dot-product kernel: dot of n elements of a weight row with an activation row in the
// weight type's ds_vec_dot_type format.
typedef float (*ds_dot_fn)(int64_t n, const void *w, const void *a);

// Many rows against one activation (rows row_stride bytes apart).
typedef void (*ds_rows_fn)(int64_t n, const void *w, size_t row_stride, int64_t nrows,
                           const void *a, float *out);

// Many rows against many activation rows (prefill): out[t*out_stride + r] = dot(row r, act row t).
typedef void (*ds_gemm_fn)(int64_t n, const void *w, size_t row_stride, int64_t nrows,
                           const void *act, size_t act_stride, int64_t ntok, float *out,
                           int64_t out_stride);

// Packed weights (groups of DS_PACK_ROWS rows from a group boundary) against many activation rows.
typedef void (*ds_packed_fn)(int64_t n, const void *packed, int64_t nrows, const void *act, size_t act_stride,
                             int64_t ntok, float *out, int64_t out_stride);

// The kernels of one instruction set. A NULL `rows` entry means "loop over `dot`"; a NULL `gemm`
// entry means "call `rows` once per activation row"; `multi` (same signature as gemm) gives each
// activation row the bits `rows` gives it alone, NULL meaning "call `rows` once per activation row".
typedef struct {
    ds_dot_fn  dot[DS_TYPE_COUNT];
    ds_rows_fn rows[DS_TYPE_COUNT];
    ds_gemm_fn gemm[DS_TYPE_COUNT];
    ds_gemm_fn multi[DS_TYPE_COUNT];
    ds_packed_fn packed[DS_TYPE_COUNT];   // packed weights (ds_pack.c layout); NULL: none
    unsigned char own[DS_TYPE_COUNT];   // 1 where this ISA has its own kernel (not inherited)
} ds_kernel_table;

// Each filler overwrites the entries it implements (and marks them in `own`); the dispatcher fills
// a table by layering scalar -> avx2 -> avx512vnni (or scalar -> neon).
void ds_fill_scalar_kernels(ds_kernel_table *t);
void ds_fill_iquant_scalar_kernels(ds_kernel_table *t);   // ds_iquant.c, called by the scalar filler
// ds_iquant.c: dequantizes a row of an i-quant type (returns 0, writing nothing, for other types).
int  ds_dequantize_iquant(int type, const void *src, float *dst, int64_t n);
#if defined(__x86_64__) || defined(_M_X64)
void ds_fill_avx2_kernels(ds_kernel_table *t);
void ds_fill_avx512vnni_kernels(ds_kernel_table *t);
#endif
#if defined(__aarch64__)
void ds_fill_neon_kernels(ds_kernel_table *t);
void ds_fill_iquant_neon_kernels(ds_kernel_table *t);   // ds_iquant_neon.c, called by the NEON filler
int  ds_neon_dotprod_available(void);
#endif

// ---- Bit casts and exact fp16 <-> fp32 for scalar code ------------------------------------------

static inline float ds_bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t ds_float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

// binary16 -> binary32, exact. Normal halves re-bias the exponent (15 -> 127); subnormal halves
// (exponent field 0) are m * 2^-24, computed exactly in float; NaNs come out quiet with their
// payload (as F16C's vcvtph2ps does).
static inline float ds_half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1Fu;
    const uint32_t mantissa = h & 0x3FFu;
    uint32_t bits;
    if (exponent == 0x1Fu) {                 // Inf / NaN
        bits = sign | 0x7F800000u | (mantissa << 13) | (mantissa ? 0x00400000u : 0u);
    } else if (exponent != 0) {              // normal
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else {                                 // zero or subnormal: mantissa * 2^-24 (exact)
        const float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        bits = sign | ds_float_to_bits(magnitude);
    }
    return ds_bits_to_float(bits);
}

// binary32 -> binary16 with round-to-nearest-even (like F16C's vcvtps2ph with imm 0, and numpy's
// astype(float16)); NaN becomes the quiet NaN 0x7E00 with the input's sign (like ggml).
static inline uint16_t ds_float_to_half(float f) {
    const uint32_t bits = ds_float_to_bits(f);
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);       // NaN
    if (magnitude >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);      // rounds to >= 65520 -> Inf
    if (magnitude < 0x38800000u) {
        // Result is a half subnormal (or zero): value / 2^-24 rounded to an integer, RNE.
        // Adding 0.5f (= 2^-1) as a float aligns the mantissa so the FPU rounds for us:
        // |f| * 2^24 < 2^10, and x + 2^23 keeps exactly the integer part (RNE) in the low bits.
        const float scaled = ds_bits_to_float(magnitude) * 16777216.0f;   // * 2^24, exact
        const uint32_t rounded = ds_float_to_bits(scaled + 8388608.0f) - 0x4B000000u;  // + 2^23
        return (uint16_t)(sign | rounded);
    }
    // Normal half: drop 13 mantissa bits with round-to-nearest-even, re-bias exponent (127 -> 15).
    const uint32_t lsb = (magnitude >> 13) & 1u;
    const uint32_t rounded = magnitude + 0xFFFu + lsb;
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

static inline float ds_bfloat_to_float(uint16_t h) { return ds_bits_to_float((uint32_t)h << 16); }

// MXFP4: E2M1 values doubled (int8) and the E8M0 scale halved, 2^(e-128); their product is exact.
static const int8_t ds_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
static inline float ds_e8m0_to_float_half(uint8_t e) {
    // e < 2: the subnormals 2^-128 (0x00200000) and 2^-127; otherwise exponent field e - 1.
    return ds_bits_to_float(e < 2 ? (0x00200000u << e) : (uint32_t)(e - 1) << 23);
}

static inline uint16_t ds_float_to_bfloat(float f) {
    const uint32_t u = ds_float_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 64u);   // NaN -> quiet
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// ds_ksigns_iq2xs[k] as 8 sign bytes, 0xFF (-1) or 0x01 (ds_iquant.c).
extern const uint64_t ds_ksigns_pm1[128];
// Row j: the byte-shuffle indices that copy int16 j of each 128-bit half across the half (2j, 2j + 1).
extern const uint8_t ds_iq_pick_int16[8][32];
// Row m: 4 runs of 8 bytes, run r -1 where bit r of m is set, else +1 (IQ1_M's per-row shift signs).
extern const int8_t ds_iq1m_row_signs[16][32];

// IQ1_M's fp16 d: the top nibbles of its four uint16 scale words (copied to sc), lowest word first.
static inline uint16_t ds_iq1m_d_bits(const ds_block_iq1_m *b, uint16_t sc[4]) {
    memcpy(sc, b->scales, 8);
    return (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
}

// IQ4_XS group ib's 6-bit scale minus 32.
static inline int ds_iq4xs_scale(const ds_block_iq4_xs *b, int ib) {
    const int low = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    const int high = (b->scales_h >> (2 * ib)) & 3;
    return (low | (high << 4)) - 32;
}

// Unpack the 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
// Bytes 0..3: low 6 bits = scale j (j<4), top 2 bits = high bits of scale j+4.
// Bytes 4..7: low 6 bits = min j (j<4), top 2 bits = high bits of min j+4.
// Bytes 8..11: low nibble = low 4 bits of scale j+4, high nibble = low 4 bits of min j+4.
static inline void ds_k4_scale_min(int j, const uint8_t *packed, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = packed[j] & 63;
        *min = packed[j + 4] & 63;
    } else {
        *scale = (uint8_t)((packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4));
        *min = (uint8_t)((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
    }
}

// Unpack the 16 6-bit scale codes (0..63) of a Q3_K block as 16 bytes (4 little-endian words):
// scales[0..7] low nibbles -> codes 0..7, high nibbles -> codes 8..15; bytes 8..11 hold the 2 high
// bits of each code: byte 8 + (j % 4), bit pair j / 4. Word k of the result holds codes 4k..4k+3.
static inline void ds_q3k_scale_codes(const uint8_t *packed, uint32_t out[4]) {
    uint32_t w[3];
    memcpy(w, packed, 12);
    const uint32_t high = w[2];
    out[0] = (w[0] & 0x0F0F0F0Fu) | (((high >> 0) & 0x03030303u) << 4);
    out[1] = (w[1] & 0x0F0F0F0Fu) | (((high >> 2) & 0x03030303u) << 4);
    out[2] = ((w[0] >> 4) & 0x0F0F0F0Fu) | (((high >> 4) & 0x03030303u) << 4);
    out[3] = ((w[1] >> 4) & 0x0F0F0F0Fu) | (((high >> 6) & 0x03030303u) << 4);
}

// The 16 signed scales of a Q3_K block (codes minus 32).
static inline void ds_q3k_scales(const uint8_t *packed, int8_t out[16]) {
    uint32_t codes[4];
    ds_q3k_scale_codes(packed, codes);
    const uint8_t *bytes = (const uint8_t *)codes;
    for (int j = 0; j < 16; ++j) out[j] = (int8_t)(bytes[j] - 32);
}

#endif // DS_INTERNAL_H
