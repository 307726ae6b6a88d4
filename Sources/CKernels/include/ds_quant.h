// ds_quant.h — DwarfStar quantization kernels (C11).
//
// Block formats, dequantization, reference quantizers and dot products for the GGUF/ggml tensor
// types DwarfStar runs. Memory layouts are byte-for-byte identical to ggml's (ggml-common.h), so a
// tensor's bytes from a GGUF file can be passed to these functions unchanged. fp16 values inside the
// blocks are stored as raw IEEE binary16 bits (uint16_t).
//
// Conventions:
//   * `n` is always a count of elements (weights/activations), a multiple of ds_type_block_size(type).
//   * A "row" is n consecutive elements stored as n / block_size consecutive blocks.
//   * Dot products take the weight row in its own type and the activation row in
//     ds_vec_dot_type(weight_type) format (quantize it first with ds_quantize_activation).
//   * All functions are thread-safe (the SIMD dispatch is chosen once, lazily, without locks).
#ifndef DS_QUANT_H
#define DS_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define DS_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define DS_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

// Tensor types, numbered exactly like ggml's enum ggml_type.
enum {
    DS_TYPE_F32  = 0,
    DS_TYPE_F16  = 1,
    DS_TYPE_Q4_0 = 2,
    DS_TYPE_Q4_1 = 3,
    DS_TYPE_Q5_0 = 6,
    DS_TYPE_Q5_1 = 7,
    DS_TYPE_Q8_0 = 8,
    DS_TYPE_Q8_1 = 9,
    DS_TYPE_Q2_K = 10,
    DS_TYPE_Q3_K = 11,
    DS_TYPE_Q4_K = 12,
    DS_TYPE_Q5_K = 13,
    DS_TYPE_Q6_K = 14,
    DS_TYPE_Q8_K = 15,
    DS_TYPE_IQ2_XXS = 16,
    DS_TYPE_IQ2_XS = 17,
    DS_TYPE_IQ3_XXS = 18,
    DS_TYPE_IQ1_S = 19,
    DS_TYPE_IQ4_NL = 20,
    DS_TYPE_IQ3_S = 21,
    DS_TYPE_IQ2_S = 22,
    DS_TYPE_IQ4_XS = 23,
    DS_TYPE_IQ1_M = 29,
    DS_TYPE_BF16 = 30,
    DS_TYPE_MXFP4 = 39,
    DS_TYPE_COUNT = 40   // one past the largest type number (table size)
};

// Elements per block.
#define DS_QK4_0 32
#define DS_QK4_1 32
#define DS_QK5_0 32
#define DS_QK5_1 32
#define DS_QK8_0 32
#define DS_QK8_1 32
#define DS_QK_MXFP4 32
#define DS_QK_K  256          // super-block size of the K-quants
#define DS_K_SCALE_SIZE 12    // packed 6-bit scales+mins of Q4_K / Q5_K

// ---- Block layouts (identical to ggml) ----------------------------------------------------------

// Q4_0: x = d * (q - 8), q in 0..15. qs[j] holds element j (low nibble) and j+16 (high nibble).
typedef struct {
    uint16_t d;                 // fp16 scale
    uint8_t  qs[DS_QK4_0 / 2];
} ds_block_q4_0;
DS_STATIC_ASSERT(sizeof(ds_block_q4_0) == 18, "ds_block_q4_0 size");

// Q4_1: x = d * q + m, q in 0..15. Same nibble order as Q4_0.
typedef struct {
    uint16_t d;                 // fp16 scale
    uint16_t m;                 // fp16 minimum
    uint8_t  qs[DS_QK4_1 / 2];
} ds_block_q4_1;
DS_STATIC_ASSERT(sizeof(ds_block_q4_1) == 20, "ds_block_q4_1 size");

// Q5_0: x = d * (q - 16), q in 0..31; low 4 bits as in Q4_0, bit 4 of element j is bit j of qh.
typedef struct {
    uint16_t d;
    uint8_t  qh[4];             // little-endian uint32 of high bits
    uint8_t  qs[DS_QK5_0 / 2];
} ds_block_q5_0;
DS_STATIC_ASSERT(sizeof(ds_block_q5_0) == 22, "ds_block_q5_0 size");

// Q5_1: x = d * q + m, q in 0..31, bits as in Q5_0.
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t  qh[4];
    uint8_t  qs[DS_QK5_1 / 2];
} ds_block_q5_1;
DS_STATIC_ASSERT(sizeof(ds_block_q5_1) == 24, "ds_block_q5_1 size");

// Q8_0: x = d * q, q in -127..127 (int8).
typedef struct {
    uint16_t d;
    int8_t   qs[DS_QK8_0];
} ds_block_q8_0;
DS_STATIC_ASSERT(sizeof(ds_block_q8_0) == 34, "ds_block_q8_0 size");

// Q8_1: like Q8_0 plus s = d * sum(qs) (fp16), used as activation format for Q4_1 / Q5_1.
typedef struct {
    uint16_t d;
    uint16_t s;
    int8_t   qs[DS_QK8_1];
} ds_block_q8_1;
DS_STATIC_ASSERT(sizeof(ds_block_q8_1) == 36, "ds_block_q8_1 size");

// Q2_K: 16 sub-blocks of 16. x = d*(sc&15)*q - dmin*(sc>>4), q in 0..3.
typedef struct {
    uint8_t  scales[DS_QK_K / 16];  // low nibble: scale, high nibble: min
    uint8_t  qs[DS_QK_K / 4];       // 2-bit quants
    uint16_t d;                     // fp16 super-scale of the scales
    uint16_t dmin;                  // fp16 super-scale of the mins
} ds_block_q2_K;
DS_STATIC_ASSERT(sizeof(ds_block_q2_K) == 84, "ds_block_q2_K size");

// Q3_K: 16 sub-blocks of 16. x = d*(sc-32)*(q-4·(1-hbit)), q low 2 bits, 6-bit scales packed in 12 bytes.
typedef struct {
    uint8_t  hmask[DS_QK_K / 8];    // high bit of each quant
    uint8_t  qs[DS_QK_K / 4];       // low 2 bits
    uint8_t  scales[12];            // 16 x 6-bit scales
    uint16_t d;
} ds_block_q3_K;
DS_STATIC_ASSERT(sizeof(ds_block_q3_K) == 110, "ds_block_q3_K size");

// Q4_K: 8 sub-blocks of 32. x = d*sc*q - dmin*m, q in 0..15, sc/m 6-bit packed in 12 bytes.
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t  scales[DS_K_SCALE_SIZE];
    uint8_t  qs[DS_QK_K / 2];
} ds_block_q4_K;
DS_STATIC_ASSERT(sizeof(ds_block_q4_K) == 144, "ds_block_q4_K size");

// Q5_K: as Q4_K with a fifth bit per quant in qh (q in 0..31).
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t  scales[DS_K_SCALE_SIZE];
    uint8_t  qh[DS_QK_K / 8];
    uint8_t  qs[DS_QK_K / 2];
} ds_block_q5_K;
DS_STATIC_ASSERT(sizeof(ds_block_q5_K) == 176, "ds_block_q5_K size");

// Q6_K: 16 sub-blocks of 16. x = d*sc*(q-32), q in 0..63 (4 low bits in ql, 2 high bits in qh).
typedef struct {
    uint8_t  ql[DS_QK_K / 2];
    uint8_t  qh[DS_QK_K / 4];
    int8_t   scales[DS_QK_K / 16];
    uint16_t d;
} ds_block_q6_K;
DS_STATIC_ASSERT(sizeof(ds_block_q6_K) == 210, "ds_block_q6_K size");

// Q8_K: activation format of the K-quants. x = d * q; bsums[j] = sum of qs[16j .. 16j+15].
typedef struct {
    float    d;                     // fp32 scale (not fp16)
    int8_t   qs[DS_QK_K];
    int16_t  bsums[DS_QK_K / 16];
} ds_block_q8_K;
DS_STATIC_ASSERT(sizeof(ds_block_q8_K) == 292, "ds_block_q8_K size");

// MXFP4 (OCP microscaling, ggml's layout): x = e2m1[q] * 2^(e - 127), q a 4-bit E2M1 code
// (sign, 2 exponent bits, 1 mantissa bit: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}), e a shared E8M0 exponent.
// qs[j] holds element j (low nibble) and j+16 (high nibble), like Q4_0. ggml stores the E2M1
// values doubled as int8 (ds_kvalues_mxfp4) and halves the scale, which is the same product.
typedef struct {
    uint8_t e;                  // E8M0 shared exponent (bias 127)
    uint8_t qs[DS_QK_MXFP4 / 2];
} ds_block_mxfp4;
DS_STATIC_ASSERT(sizeof(ds_block_mxfp4) == 17, "ds_block_mxfp4 size");

// The i-quant block layouts are in ds_iquant.h.

// ---- Type information ---------------------------------------------------------------------------

int     ds_type_supported(int type);           // 1 if this library handles `type`, else 0
int     ds_type_has_quantizer(int type);       // 1 if ds_quantize_row_ref writes `type` (of the i-quants: IQ4_NL, IQ4_XS)
int     ds_type_has_tensor_quantizer(int type); // 1 if ds_quantize_rows writes `type` (every i-quant too)
int     ds_type_quantizer_needs_importance(int type); // 1 for IQ2_XXS, IQ2_XS, IQ1_S (no quantizer without one)
// Random blocks of an i-quant type for n elements (whole blocks): random codes, signs and sub-block
// scales, each block's fp16 scale set so its dequantized values have root mean square `rms`
// (synthetic weights). Returns 0, writing nothing, for other types.
int     ds_random_iquant_blocks(int type, uint64_t seed, float rms, void *dst, int64_t n);
int64_t ds_type_block_size(int type);          // elements per block (1 for F32/F16/BF16), 0 if unsupported
int64_t ds_type_block_bytes(int type);         // bytes per block, 0 if unsupported
int64_t ds_row_bytes(int type, int64_t n);     // bytes of a row of n elements
const char *ds_type_name(int type);            // "Q4_K", ... ("?" if unsupported)

// ---- Scalar conversions -------------------------------------------------------------------------

float    ds_fp16_to_fp32(uint16_t h);          // exact
uint16_t ds_fp32_to_fp16(float f);             // round to nearest even; NaN -> quiet NaN
float    ds_bf16_to_fp32(uint16_t h);          // exact
uint16_t ds_fp32_to_bf16(float f);             // round to nearest even like ggml; NaN -> quiet NaN

// ---- Rows ---------------------------------------------------------------------------------------

// Dequantize n elements (n multiple of the block size) of one row; bit-exact to ggml's
// dequantize_row_* (and to gguf-py's dequantize).
void ds_dequantize_row(int type, const void *src, float *dst, int64_t n);

// Reference quantizer of a float row into `type` (same bytes as ggml's quantize_row_*_ref for
// Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q8_1, Q2_K..Q8_K, MXFP4, IQ4_NL and IQ4_XS; F16/BF16 round to nearest
// even; F32 copies).
void ds_quantize_row_ref(int type, const float *x, void *dst, int64_t n);

// Quantizes a tensor of `rows` rows of n_per_row floats into `type`, the bytes llama-quantize writes
// (ggml_quantize_chunk): with importance == NULL the reference quantizers (IQ4_NL / IQ4_XS with 7
// scale tries); otherwise importance[n_per_row] (an imatrix's mean squared activation per column)
// weights the fits of Q4_0/Q4_1/Q5_0/Q5_1, Q2_K..Q6_K and IQ4_NL/IQ4_XS (ggml's quantize_row_*_impl);
// the codebook i-quants IQ1_S … IQ3_S (ggml's grid-search quantizers; IQ2_XXS, IQ2_XS and IQ1_S only
// with importance); the other types ignore it. Rows are independent (any row range may run on any
// thread). Returns 0 where `type` has no quantizer, needs importance that is missing, or n_per_row is
// not a multiple of its block (nothing written in the first two cases).
int ds_quantize_rows(int type, const float *x, void *dst, int64_t rows, int64_t n_per_row, const float *importance);

// ---- Dot products -------------------------------------------------------------------------------

// Activation format used with weights of `weight_type`: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for
// Q4_1/Q5_1, Q8_K for all K-quants, F32 for F32/F16/BF16 (and Q8_1 for Q8_1). -1 if unsupported.
int ds_vec_dot_type(int weight_type);

// Quantize a float activation row into `act_type` (Q8_0, Q8_1, Q8_K; F32 copies). Bytes equal
// ggml's quantize_row_*_ref for these formats.
void ds_quantize_activation(int act_type, const float *x, void *dst, int64_t n);

// dot(weight row, activation row) of n elements, using the fastest kernel of this CPU.
float ds_vec_dot(int weight_type, int64_t n, const void *weight_row, const void *act_row);

// out[r] = dot(row r of w, act) for r in [0, nrows); row r starts at (const char *)w + r*row_stride.
void ds_vec_dot_rows(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
                     const void *act, float *out);

// A few activation rows (decode rows of several sequences, drafted tokens being verified) against the
// same weight rows: out[t*out_stride + r] = dot(row r of w, activation row t) for r < nrows, t < ntok,
// each token's results bitwise equal to ds_vec_dot_rows(w, nrows, activation row t) alone. The weight
// blocks are read and unpacked once for several tokens where this CPU has a multi-row kernel;
// otherwise it is ds_vec_dot_rows once per token.
void ds_vec_dot_rows_multi(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
                           const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride);

// Plain scalar reference dot (integer block sums like ggml's *_generic kernels); used by tests.
float ds_vec_dot_scalar(int weight_type, int64_t n, const void *weight_row, const void *act_row);

// Many rows x many activation rows (prompt processing / prefill):
//   out[t*out_stride + r] = dot(row r of w, activation row t)   for r < nrows, t < ntok.
// Row r of w starts at (const char *)w + r*row_stride; activation row t (format
// ds_vec_dot_type(weight_type), n elements) at (const char *)act + t*act_stride; out_stride is in
// floats. Each weight block is unpacked once per call and reused for all ntok tokens, so calling
// this with many tokens (tens to hundreds) and a modest number of rows (16-64 per thread) is far
// faster than ds_vec_dot_rows once per token. Results equal ds_vec_dot per (row, token) up to float
// summation order. Types without a multi-token kernel on this CPU call ds_vec_dot_rows per token.
void ds_gemm(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
             const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride);
// ds_gemm with the multi-token kernel for any ntok ≥ 1 (ds_gemm uses it from 4 tokens): a row's
// result then never depends on how many tokens share the call (batch-invariant prompt rows).
void ds_gemm_any(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
                 const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride);

// ---- Packed weights (rows interleaved 16 at a time; layout in ds_pack.c) ----------------------------
// A packed matrix feeds the lane-per-row multi-token kernel without a per-call transpose, so one
// kernel serves every token count: ds_gemm_packed gives row r and token t the same bits whether the
// call has 1 token or 500 (decode, decode rows of several sequences, drafts, prompts), and the same
// bits as ds_gemm_any on the unpacked rows with the same ISA.

#define DS_PACK_ROWS 16

int    ds_pack_layout_exists(int weight_type);                 // 1 for Q4_0..Q8_0, Q2_K..Q6_K
// Bytes of one group of 16 packed rows of n elements (0: no layout, or n not whole blocks).
size_t ds_packed_group_bytes(int weight_type, int64_t n);
size_t ds_packed_bytes(int weight_type, int64_t n, int64_t nrows);   // all groups, last one padded
// Packs nrows rows (row r at w + r*row_stride) into dst (ds_packed_bytes); 0 if the type has no layout.
int    ds_pack_weights(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows, void *dst);
// The inverse: rows back into w (row r at w + r*row_stride).
int    ds_unpack_weights(int weight_type, int64_t n, const void *packed, int64_t nrows, void *w, size_t row_stride);
// 1 if the active ISA multiplies packed weights of this type with its own kernel (the only case in
// which packing pays; elsewhere ds_gemm_packed unpacks each group first).
int    ds_packed_kernel_available(int weight_type);
// out[t*out_stride + r] = dot(row r, activation row t) for r < nrows, t < ntok; `packed` points at
// a group boundary (group g of a matrix: base + g * ds_packed_group_bytes). A row's result does not
// depend on ntok or on the other rows of the call.
void   ds_gemm_packed(int weight_type, int64_t n, const void *packed, int64_t nrows, const void *act,
                      size_t act_stride, int64_t ntok, float *out, int64_t out_stride);
int    ds_isa_has_packed_kernel(int isa, int weight_type);
void   ds_gemm_packed_isa(int isa, int weight_type, int64_t n, const void *packed, int64_t nrows, const void *act,
                          size_t act_stride, int64_t ntok, float *out, int64_t out_stride);

// ---- Instruction-set dispatch (tests, benchmarks, logging) --------------------------------------

enum {
    DS_ISA_SCALAR     = 0,
    DS_ISA_AVX2       = 1,   // x86-64 AVX2 + FMA + F16C
    DS_ISA_AVX512VNNI = 2,   // x86-64 AVX-512 F/BW/VL + VNNI
    DS_ISA_NEON       = 3,   // AArch64 NEON + dot product (vdotq_s32)
    DS_ISA_COUNT      = 4
};

int         ds_isa_available(int isa);          // 1 if this CPU (and build) can run `isa`
int         ds_active_isa(void);                // ISA used by ds_vec_dot / ds_vec_dot_rows
int         ds_set_isa(int isa);                // force an ISA (returns 0 if unavailable). Not for
                                                // use while other threads are computing.
const char *ds_isa_name(int isa);               // "scalar", "avx2", "avx512vnni", "neon"
// 1 if `isa` has a hand-written kernel for `weight_type` (otherwise it falls back to a lesser ISA).
int         ds_isa_has_kernel(int isa, int weight_type);
// Same as ds_vec_dot but with the kernel table of `isa` (which must be available).
float       ds_vec_dot_isa(int isa, int weight_type, int64_t n, const void *weight_row,
                           const void *act_row);
void        ds_vec_dot_rows_isa(int isa, int weight_type, int64_t n, const void *w, size_t row_stride,
                                int64_t nrows, const void *act, float *out);
void        ds_gemm_isa(int isa, int weight_type, int64_t n, const void *w, size_t row_stride,
                        int64_t nrows, const void *act, size_t act_stride, int64_t ntok, float *out,
                        int64_t out_stride);
void        ds_vec_dot_rows_multi_isa(int isa, int weight_type, int64_t n, const void *w, size_t row_stride,
                                      int64_t nrows, const void *act, size_t act_stride, int64_t ntok,
                                      float *out, int64_t out_stride);
// 1 if `isa` has a multi-row kernel for `weight_type` (else ds_vec_dot_rows_multi loops over tokens).
int         ds_isa_has_multi_kernel(int isa, int weight_type);
// 1 if `isa` has a multi-token kernel for `weight_type` (else ds_gemm loops over ds_vec_dot_rows).
int         ds_isa_has_gemm_kernel(int isa, int weight_type);

// Space-separated CPU features relevant here, e.g. "avx512 vnni avx2 fma f16c", for logging.
// The environment variable DS_QUANT_ISA=scalar|avx2|avx512vnni|neon overrides the automatic choice.
void ds_cpu_features(char *buf, int len);

#ifdef __cplusplus
}
#endif

#endif // DS_QUANT_H
