// ds_dispatch.c — type traits, CPU feature detection and the dot-product dispatch.
//
// The kernel table of each instruction set is built once, lazily: scalar entries first, then every
// SIMD level overrides what it implements (scalar -> avx2 -> avx512vnni, or scalar -> neon). The
// active ISA is the best available one unless DS_QUANT_ISA names another.
#include "ds_internal.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

// ---- Type traits -------------------------------------------------------------------------------

typedef struct {
    const char *name;
    int64_t block_size;
    int64_t block_bytes;
    int vec_dot_type;
} ds_type_traits;

static const ds_type_traits *type_traits(int type) {
    static const ds_type_traits f32 = {"F32", 1, 4, DS_TYPE_F32};
    static const ds_type_traits f16 = {"F16", 1, 2, DS_TYPE_F32};
    static const ds_type_traits bf16 = {"BF16", 1, 2, DS_TYPE_F32};
    static const ds_type_traits q4_0 = {"Q4_0", 32, sizeof(ds_block_q4_0), DS_TYPE_Q8_0};
    static const ds_type_traits q4_1 = {"Q4_1", 32, sizeof(ds_block_q4_1), DS_TYPE_Q8_1};
    static const ds_type_traits q5_0 = {"Q5_0", 32, sizeof(ds_block_q5_0), DS_TYPE_Q8_0};
    static const ds_type_traits q5_1 = {"Q5_1", 32, sizeof(ds_block_q5_1), DS_TYPE_Q8_1};
    static const ds_type_traits q8_0 = {"Q8_0", 32, sizeof(ds_block_q8_0), DS_TYPE_Q8_0};
    static const ds_type_traits q8_1 = {"Q8_1", 32, sizeof(ds_block_q8_1), DS_TYPE_Q8_1};
    static const ds_type_traits q2_k = {"Q2_K", 256, sizeof(ds_block_q2_K), DS_TYPE_Q8_K};
    static const ds_type_traits q3_k = {"Q3_K", 256, sizeof(ds_block_q3_K), DS_TYPE_Q8_K};
    static const ds_type_traits q4_k = {"Q4_K", 256, sizeof(ds_block_q4_K), DS_TYPE_Q8_K};
    static const ds_type_traits q5_k = {"Q5_K", 256, sizeof(ds_block_q5_K), DS_TYPE_Q8_K};
    static const ds_type_traits q6_k = {"Q6_K", 256, sizeof(ds_block_q6_K), DS_TYPE_Q8_K};
    static const ds_type_traits q8_k = {"Q8_K", 256, sizeof(ds_block_q8_K), DS_TYPE_Q8_K};
    // MXFP4 dots stay in float (exact dequantized weights x F32 activations): the same results as
    // the F32 weights it was quantized to, to rounding of the sum.
    static const ds_type_traits mxfp4 = {"MXFP4", 32, sizeof(ds_block_mxfp4), DS_TYPE_F32};
    // The i-quants: integer sums against Q8_K activations (IQ4_NL, a 32-element type: Q8_0).
    static const ds_type_traits iq2_xxs = {"IQ2_XXS", 256, sizeof(ds_block_iq2_xxs), DS_TYPE_Q8_K};
    static const ds_type_traits iq2_xs = {"IQ2_XS", 256, sizeof(ds_block_iq2_xs), DS_TYPE_Q8_K};
    static const ds_type_traits iq2_s = {"IQ2_S", 256, sizeof(ds_block_iq2_s), DS_TYPE_Q8_K};
    static const ds_type_traits iq3_xxs = {"IQ3_XXS", 256, sizeof(ds_block_iq3_xxs), DS_TYPE_Q8_K};
    static const ds_type_traits iq3_s = {"IQ3_S", 256, sizeof(ds_block_iq3_s), DS_TYPE_Q8_K};
    static const ds_type_traits iq1_s = {"IQ1_S", 256, sizeof(ds_block_iq1_s), DS_TYPE_Q8_K};
    static const ds_type_traits iq1_m = {"IQ1_M", 256, sizeof(ds_block_iq1_m), DS_TYPE_Q8_K};
    static const ds_type_traits iq4_nl = {"IQ4_NL", 32, sizeof(ds_block_iq4_nl), DS_TYPE_Q8_0};
    static const ds_type_traits iq4_xs = {"IQ4_XS", 256, sizeof(ds_block_iq4_xs), DS_TYPE_Q8_K};
    switch (type) {
    case DS_TYPE_F32: return &f32;
    case DS_TYPE_F16: return &f16;
    case DS_TYPE_BF16: return &bf16;
    case DS_TYPE_Q4_0: return &q4_0;
    case DS_TYPE_Q4_1: return &q4_1;
    case DS_TYPE_Q5_0: return &q5_0;
    case DS_TYPE_Q5_1: return &q5_1;
    case DS_TYPE_Q8_0: return &q8_0;
    case DS_TYPE_Q8_1: return &q8_1;
    case DS_TYPE_Q2_K: return &q2_k;
    case DS_TYPE_Q3_K: return &q3_k;
    case DS_TYPE_Q4_K: return &q4_k;
    case DS_TYPE_Q5_K: return &q5_k;
    case DS_TYPE_Q6_K: return &q6_k;
    case DS_TYPE_Q8_K: return &q8_k;
    case DS_TYPE_MXFP4: return &mxfp4;
    case DS_TYPE_IQ2_XXS: return &iq2_xxs;
    case DS_TYPE_IQ2_XS: return &iq2_xs;
    case DS_TYPE_IQ2_S: return &iq2_s;
    case DS_TYPE_IQ3_XXS: return &iq3_xxs;
    case DS_TYPE_IQ3_S: return &iq3_s;
    case DS_TYPE_IQ1_S: return &iq1_s;
    case DS_TYPE_IQ1_M: return &iq1_m;
    case DS_TYPE_IQ4_NL: return &iq4_nl;
    case DS_TYPE_IQ4_XS: return &iq4_xs;
    default: return NULL;
    }
}

int ds_type_supported(int type) { return type_traits(type) != NULL; }

int ds_type_has_quantizer(int type) {
    switch (type) {
    case DS_TYPE_F32: case DS_TYPE_F16: case DS_TYPE_BF16: case DS_TYPE_MXFP4:
    case DS_TYPE_Q4_0: case DS_TYPE_Q4_1: case DS_TYPE_Q5_0: case DS_TYPE_Q5_1: case DS_TYPE_Q8_0: case DS_TYPE_Q8_1:
    case DS_TYPE_Q2_K: case DS_TYPE_Q3_K: case DS_TYPE_Q4_K: case DS_TYPE_Q5_K: case DS_TYPE_Q6_K: case DS_TYPE_Q8_K:
    case DS_TYPE_IQ4_NL: case DS_TYPE_IQ4_XS:
        return 1;
    default:
        return 0;
    }
}

int ds_type_has_tensor_quantizer(int type) {
    switch (type) {
    case DS_TYPE_IQ2_XXS: case DS_TYPE_IQ2_XS: case DS_TYPE_IQ2_S: case DS_TYPE_IQ3_XXS: case DS_TYPE_IQ3_S:
    case DS_TYPE_IQ1_S: case DS_TYPE_IQ1_M:
        return 1;
    default:
        return ds_type_has_quantizer(type);
    }
}

int ds_type_quantizer_needs_importance(int type) {
    return type == DS_TYPE_IQ2_XXS || type == DS_TYPE_IQ2_XS || type == DS_TYPE_IQ1_S;
}

int64_t ds_type_block_size(int type) {
    const ds_type_traits *t = type_traits(type);
    return t ? t->block_size : 0;
}

int64_t ds_type_block_bytes(int type) {
    const ds_type_traits *t = type_traits(type);
    return t ? t->block_bytes : 0;
}

int64_t ds_row_bytes(int type, int64_t n) {
    const ds_type_traits *t = type_traits(type);
    return t ? n / t->block_size * t->block_bytes : 0;
}

const char *ds_type_name(int type) {
    const ds_type_traits *t = type_traits(type);
    return t ? t->name : "?";
}

int ds_vec_dot_type(int weight_type) {
    const ds_type_traits *t = type_traits(weight_type);
    return t ? t->vec_dot_type : -1;
}

// ---- CPU features ------------------------------------------------------------------------------

#if defined(__x86_64__) || defined(_M_X64)
static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}
static int cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
#endif

#if defined(__aarch64__)
int ds_neon_dotprod_available(void) {
#if defined(__ARM_FEATURE_DOTPROD)
    return 1;                                   // baseline of this build (e.g. Apple arm64)
#elif defined(__linux__)
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
    return 0;
#endif
}
#endif

int ds_isa_available(int isa) {
    switch (isa) {
    case DS_ISA_SCALAR: return 1;
#if defined(__x86_64__) || defined(_M_X64)
    case DS_ISA_AVX2: return cpu_has_avx2();
    case DS_ISA_AVX512VNNI: return cpu_has_avx512vnni();
#endif
#if defined(__aarch64__)
    case DS_ISA_NEON: return ds_neon_dotprod_available();
#endif
    default: return 0;
    }
}

const char *ds_isa_name(int isa) {
    switch (isa) {
    case DS_ISA_SCALAR: return "scalar";
    case DS_ISA_AVX2: return "avx2";
    case DS_ISA_AVX512VNNI: return "avx512vnni";
    case DS_ISA_NEON: return "neon";
    default: return "?";
    }
}

void ds_cpu_features(char *buf, int len) {
    if (!buf || len <= 0) return;
    buf[0] = 0;
    size_t used = 0;
#define DS_APPEND(word)                                                                            \
    do {                                                                                           \
        int written = snprintf(buf + used, (size_t)len - used, "%s%s", used ? " " : "", word);    \
        if (written < 0 || (size_t)written >= (size_t)len - used) return;                          \
        used += (size_t)written;                                                                   \
    } while (0)
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) DS_APPEND("avx512");
    if (__builtin_cpu_supports("avx512bw")) DS_APPEND("avx512bw");
    if (__builtin_cpu_supports("avx512vnni")) DS_APPEND("vnni");
    if (__builtin_cpu_supports("avx2")) DS_APPEND("avx2");
    if (__builtin_cpu_supports("fma")) DS_APPEND("fma");
    if (__builtin_cpu_supports("f16c")) DS_APPEND("f16c");
#elif defined(__aarch64__)
    DS_APPEND("neon");
    if (ds_neon_dotprod_available()) DS_APPEND("dotprod");
#endif
    char isa[48];
    snprintf(isa, sizeof isa, "[kernels: %s]", ds_isa_name(ds_active_isa()));
    DS_APPEND(isa);
#undef DS_APPEND
}

// ---- Kernel tables -----------------------------------------------------------------------------

static ds_kernel_table g_tables[DS_ISA_COUNT];
// Per ISA: 0 = not built, 1 = being built by one thread, 2 = ready.
static atomic_int g_table_state[DS_ISA_COUNT];
static atomic_int g_active_isa = -1;

static const ds_kernel_table *kernels_for(int isa) {
    if (atomic_load_explicit(&g_table_state[isa], memory_order_acquire) == 2) return &g_tables[isa];
    int expected = 0;
    if (atomic_compare_exchange_strong(&g_table_state[isa], &expected, 1)) {
        ds_kernel_table *table = &g_tables[isa];
        memset(table, 0, sizeof *table);
        ds_fill_scalar_kernels(table);
        if (isa != DS_ISA_SCALAR) memset(table->own, 0, sizeof table->own);
#if defined(__x86_64__) || defined(_M_X64)
        if (isa == DS_ISA_AVX2 || isa == DS_ISA_AVX512VNNI) ds_fill_avx2_kernels(table);
        if (isa == DS_ISA_AVX512VNNI) {
            memset(table->own, 0, sizeof table->own);
            ds_fill_avx512vnni_kernels(table);
        }
#endif
#if defined(__aarch64__)
        if (isa == DS_ISA_NEON) ds_fill_neon_kernels(table);
#endif
        atomic_store_explicit(&g_table_state[isa], 2, memory_order_release);
    } else {
        while (atomic_load_explicit(&g_table_state[isa], memory_order_acquire) != 2) {
            // another thread is filling this table (a few microseconds)
        }
    }
    return &g_tables[isa];
}

static int best_isa(void) {
    const char *forced = getenv("DS_QUANT_ISA");
    if (forced) {
        for (int isa = 0; isa < DS_ISA_COUNT; ++isa) {
            if (strcmp(forced, ds_isa_name(isa)) == 0 && ds_isa_available(isa)) return isa;
        }
    }
    if (ds_isa_available(DS_ISA_AVX512VNNI)) return DS_ISA_AVX512VNNI;
    if (ds_isa_available(DS_ISA_AVX2)) return DS_ISA_AVX2;
    if (ds_isa_available(DS_ISA_NEON)) return DS_ISA_NEON;
    return DS_ISA_SCALAR;
}

int ds_active_isa(void) {
    int isa = atomic_load_explicit(&g_active_isa, memory_order_acquire);
    if (isa < 0) {
        isa = best_isa();
        (void)kernels_for(isa);
        atomic_store_explicit(&g_active_isa, isa, memory_order_release);
    }
    return isa;
}

int ds_set_isa(int isa) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) return 0;
    (void)kernels_for(isa);
    atomic_store_explicit(&g_active_isa, isa, memory_order_release);
    return 1;
}

int ds_isa_has_kernel(int isa, int weight_type) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) return 0;
    if (weight_type < 0 || weight_type >= DS_TYPE_COUNT) return 0;
    return kernels_for(isa)->own[weight_type];
}

// ---- Dot products ------------------------------------------------------------------------------

static float dot_with(const ds_kernel_table *t, int type, int64_t n, const void *w, const void *a) {
    if (type < 0 || type >= DS_TYPE_COUNT || !t->dot[type]) return 0.0f;
    return t->dot[type](n, w, a);
}

static void rows_with(const ds_kernel_table *t, int type, int64_t n, const void *w, size_t stride,
                      int64_t nrows, const void *a, float *out) {
    if (type < 0 || type >= DS_TYPE_COUNT || !t->dot[type]) {
        for (int64_t r = 0; r < nrows; ++r) out[r] = 0.0f;
        return;
    }
    if (t->rows[type]) {
        t->rows[type](n, w, stride, nrows, a, out);
        return;
    }
    const ds_dot_fn dot = t->dot[type];
    for (int64_t r = 0; r < nrows; ++r) out[r] = dot(n, (const char *)w + (size_t)r * stride, a);
}

float ds_vec_dot(int weight_type, int64_t n, const void *weight_row, const void *act_row) {
    return dot_with(kernels_for(ds_active_isa()), weight_type, n, weight_row, act_row);
}

void ds_vec_dot_rows(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
                     const void *act, float *out) {
    rows_with(kernels_for(ds_active_isa()), weight_type, n, w, row_stride, nrows, act, out);
}

float ds_vec_dot_scalar(int weight_type, int64_t n, const void *weight_row, const void *act_row) {
    return dot_with(kernels_for(DS_ISA_SCALAR), weight_type, n, weight_row, act_row);
}

float ds_vec_dot_isa(int isa, int weight_type, int64_t n, const void *weight_row, const void *act_row) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) return 0.0f;
    return dot_with(kernels_for(isa), weight_type, n, weight_row, act_row);
}

void ds_vec_dot_rows_isa(int isa, int weight_type, int64_t n, const void *w, size_t row_stride,
                         int64_t nrows, const void *act, float *out) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) {
        for (int64_t r = 0; r < nrows; ++r) out[r] = 0.0f;
        return;
    }
    rows_with(kernels_for(isa), weight_type, n, w, row_stride, nrows, act, out);
}

// ---- Multi-row products (decode rows, bitwise per row) -----------------------------------------

// out[i*out_stride + r] = 0 for r < nrows, i < ntok.
static void zero_outputs(int64_t nrows, int64_t ntok, float *out, int64_t out_stride) {
    for (int64_t i = 0; i < ntok; ++i)
        for (int64_t r = 0; r < nrows; ++r) out[i * out_stride + r] = 0.0f;
}

// rows_with once per activation row: out[i*out_stride + r] = dot(row r, activation row i).
static void rows_per_token(const ds_kernel_table *t, int type, int64_t n, const void *w, size_t row_stride,
                           int64_t nrows, const void *act, size_t act_stride, int64_t ntok, float *out,
                           int64_t out_stride) {
    for (int64_t i = 0; i < ntok; ++i) {
        rows_with(t, type, n, w, row_stride, nrows, (const char *)act + (size_t)i * act_stride,
                  out + i * out_stride);
    }
}

static void multi_with(const ds_kernel_table *t, int type, int64_t n, const void *w, size_t row_stride,
                       int64_t nrows, const void *act, size_t act_stride, int64_t ntok, float *out,
                       int64_t out_stride) {
    if (nrows <= 0 || ntok <= 0) return;
    if (type >= 0 && type < DS_TYPE_COUNT && t->multi[type] && t->dot[type]) {
        t->multi[type](n, w, row_stride, nrows, act, act_stride, ntok, out, out_stride);
        return;
    }
    rows_per_token(t, type, n, w, row_stride, nrows, act, act_stride, ntok, out, out_stride);
}

void ds_vec_dot_rows_multi(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
                           const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    multi_with(kernels_for(ds_active_isa()), weight_type, n, w, row_stride, nrows, act, act_stride, ntok, out,
               out_stride);
}

void ds_vec_dot_rows_multi_isa(int isa, int weight_type, int64_t n, const void *w, size_t row_stride,
                               int64_t nrows, const void *act, size_t act_stride, int64_t ntok, float *out,
                               int64_t out_stride) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) {
        zero_outputs(nrows, ntok, out, out_stride);
        return;
    }
    multi_with(kernels_for(isa), weight_type, n, w, row_stride, nrows, act, act_stride, ntok, out, out_stride);
}

int ds_isa_has_multi_kernel(int isa, int weight_type) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) return 0;
    if (weight_type < 0 || weight_type >= DS_TYPE_COUNT) return 0;
    return kernels_for(isa)->multi[weight_type] != NULL;
}

// ---- Multi-token products (prefill) ------------------------------------------------------------

// Below this many tokens the per-call unpacking of the weights (about 1.5 single-token passes)
// costs more than it saves (measured on Zen 4: 2-3 tokens are break-even, 4 tokens 1.2-2x faster).
#define DS_GEMM_MIN_TOKENS 4

static void gemm_with(const ds_kernel_table *t, int type, int64_t n, const void *w, size_t row_stride,
                      int64_t nrows, const void *act, size_t act_stride, int64_t ntok, float *out,
                      int64_t out_stride, int64_t min_tokens) {
    if (nrows <= 0 || ntok <= 0) return;
    if (n <= 0) {   // empty dot products
        zero_outputs(nrows, ntok, out, out_stride);
        return;
    }
    if (type >= 0 && type < DS_TYPE_COUNT && t->gemm[type] && ntok >= min_tokens) {
        t->gemm[type](n, w, row_stride, nrows, act, act_stride, ntok, out, out_stride);
        return;
    }
    rows_per_token(t, type, n, w, row_stride, nrows, act, act_stride, ntok, out, out_stride);
}

void ds_gemm(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
             const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    gemm_with(kernels_for(ds_active_isa()), weight_type, n, w, row_stride, nrows, act, act_stride, ntok,
              out, out_stride, DS_GEMM_MIN_TOKENS);
}

void ds_gemm_any(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
                 const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    gemm_with(kernels_for(ds_active_isa()), weight_type, n, w, row_stride, nrows, act, act_stride, ntok,
              out, out_stride, 1);
}

void ds_gemm_isa(int isa, int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
                 const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) {
        zero_outputs(nrows, ntok, out, out_stride);
        return;
    }
    gemm_with(kernels_for(isa), weight_type, n, w, row_stride, nrows, act, act_stride, ntok, out, out_stride,
              DS_GEMM_MIN_TOKENS);
}

int ds_isa_has_gemm_kernel(int isa, int weight_type) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) return 0;
    if (weight_type < 0 || weight_type >= DS_TYPE_COUNT) return 0;
    return kernels_for(isa)->gemm[weight_type] != NULL;
}

// ---- Packed weights ------------------------------------------------------------------------------

int ds_packed_kernel_available(int weight_type) {
    if (weight_type < 0 || weight_type >= DS_TYPE_COUNT) return 0;
    return kernels_for(ds_active_isa())->packed[weight_type] != NULL;
}

int ds_isa_has_packed_kernel(int isa, int weight_type) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) return 0;
    if (weight_type < 0 || weight_type >= DS_TYPE_COUNT) return 0;
    return kernels_for(isa)->packed[weight_type] != NULL;
}

// Without a packed kernel: each group unpacked to rows, then the single-token kernel per token (a
// row's bits still independent of the call's tokens).
static void packed_by_rows(const ds_kernel_table *t, int type, int64_t n, const void *packed, int64_t nrows,
                           const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    const size_t group_bytes = ds_packed_group_bytes(type, n);
    const size_t row_bytes = (size_t)(n / ds_type_block_size(type)) * (size_t)ds_type_block_bytes(type);
    unsigned char *rows = malloc(row_bytes * DS_PACK_ROWS);
    if (!rows || !group_bytes) {
        free(rows);
        zero_outputs(nrows, ntok, out, out_stride);
        return;
    }
    for (int64_t r0 = 0; r0 < nrows; r0 += DS_PACK_ROWS) {
        const int64_t count = nrows - r0 < DS_PACK_ROWS ? nrows - r0 : DS_PACK_ROWS;
        ds_unpack_weights(type, n, (const char *)packed + (size_t)(r0 / DS_PACK_ROWS) * group_bytes, count, rows, row_bytes);
        rows_per_token(t, type, n, rows, row_bytes, count, act, act_stride, ntok, out + r0, out_stride);
    }
    free(rows);
}

static void packed_with(const ds_kernel_table *t, int type, int64_t n, const void *packed, int64_t nrows,
                        const void *act, size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    if (nrows <= 0 || ntok <= 0) return;
    if (n <= 0 || !ds_packed_group_bytes(type, n)) {   // no layout, or n not whole blocks
        zero_outputs(nrows, ntok, out, out_stride);
        return;
    }
    if (t->packed[type]) {
        t->packed[type](n, packed, nrows, act, act_stride, ntok, out, out_stride);
        return;
    }
    packed_by_rows(t, type, n, packed, nrows, act, act_stride, ntok, out, out_stride);
}

void ds_gemm_packed(int weight_type, int64_t n, const void *packed, int64_t nrows, const void *act,
                    size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    packed_with(kernels_for(ds_active_isa()), weight_type, n, packed, nrows, act, act_stride, ntok, out, out_stride);
}

void ds_gemm_packed_isa(int isa, int weight_type, int64_t n, const void *packed, int64_t nrows, const void *act,
                        size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    if (isa < 0 || isa >= DS_ISA_COUNT || !ds_isa_available(isa)) {
        zero_outputs(nrows, ntok, out, out_stride);
        return;
    }
    packed_with(kernels_for(isa), weight_type, n, packed, nrows, act, act_stride, ntok, out, out_stride);
}
