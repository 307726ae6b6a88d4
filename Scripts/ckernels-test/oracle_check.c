// oracle_check.c — optional cross-check of CKernels against ggml's own C code (not shipped, not
// needed by the normal tests). Build/run:  make -C test oracle GGML=/path/to/llama.cpp/ggml
// It links ggml-quants.c (reference quantizers, dequantizers) and ggml-cpu/quants.c (the scalar
// *_generic dot products) and compares, over many random rows:
//   * ds_quantize_row_ref vs quantize_row_*_ref: identical bytes (all supported types incl. Q8_1/Q8_K)
//   * ds_dequantize_row vs dequantize_row_*: identical floats
//   * ds_vec_dot (active ISA) and ds_vec_dot_scalar vs ggml_vec_dot_*_generic: within 1e-4 relative
//   * ds_quantize_rows vs quantize_<type> (what llama-quantize calls), without and with importance
//     weights: identical bytes
#define _POSIX_C_SOURCE 200809L
#include "ds_quant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- Stubs for the parts of ggml that ggml-quants.c references but we do not link --------------
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    (void)fmt;
    fprintf(stderr, "ggml_abort %s:%d\n", file, line);
    abort();
}
size_t ggml_row_size(int type, int64_t ne) { return (size_t)ds_row_bytes(type, ne); }   // same type ids
const char *ggml_type_name(int type) { (void)type; return "?"; }
size_t ggml_type_size(int type) { (void)type; abort(); }
float ggml_table_f32_f16[1 << 16];   // filled in main (used by GGML_CPU_FP16_TO_FP32)

// ---- ggml prototypes (blocks as void*: the layouts are what we are testing) ------------------------
#define DECL_Q(name) void quantize_row_##name##_ref(const float *x, void *y, int64_t k);
#define DECL_D(name) void dequantize_row_##name(const void *x, float *y, int64_t k);
DECL_Q(q4_0) DECL_Q(q4_1) DECL_Q(q5_0) DECL_Q(q5_1) DECL_Q(q8_0) DECL_Q(q8_1)
DECL_Q(q2_K) DECL_Q(q3_K) DECL_Q(q4_K) DECL_Q(q5_K) DECL_Q(q6_K) DECL_Q(q8_K)
DECL_D(q4_0) DECL_D(q4_1) DECL_D(q5_0) DECL_D(q5_1) DECL_D(q8_0)
DECL_D(q2_K) DECL_D(q3_K) DECL_D(q4_K) DECL_D(q5_K) DECL_D(q6_K) DECL_D(q8_K)
#define DECL_DOT(name) void ggml_vec_dot_##name##_generic(int n, float *s, size_t bs, const void *vx, \
                                                          size_t bx, const void *vy, size_t by, int nrc);
DECL_DOT(q4_0_q8_0) DECL_DOT(q4_1_q8_1) DECL_DOT(q5_0_q8_0) DECL_DOT(q5_1_q8_1) DECL_DOT(q8_0_q8_0)
DECL_DOT(q2_K_q8_K) DECL_DOT(q3_K_q8_K) DECL_DOT(q4_K_q8_K) DECL_DOT(q5_K_q8_K) DECL_DOT(q6_K_q8_K)

// The i-quants: ggml's dequantizers and scalar dots (their quantizers are compared as whole tensors below).
DECL_D(iq2_xxs) DECL_D(iq2_xs) DECL_D(iq2_s) DECL_D(iq3_xxs) DECL_D(iq3_s) DECL_D(iq1_s) DECL_D(iq1_m)
DECL_D(iq4_nl) DECL_D(iq4_xs)
DECL_DOT(iq2_xxs_q8_K) DECL_DOT(iq2_xs_q8_K) DECL_DOT(iq2_s_q8_K) DECL_DOT(iq3_xxs_q8_K) DECL_DOT(iq3_s_q8_K)
DECL_DOT(iq1_s_q8_K) DECL_DOT(iq1_m_q8_K) DECL_DOT(iq4_nl_q8_0) DECL_DOT(iq4_xs_q8_K)

// Whole tensors with optional importance weights (llama-quantize's ggml_quantize_chunk).
#define DECL_QT(name) size_t quantize_##name(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *qw);
DECL_QT(q4_0) DECL_QT(q4_1) DECL_QT(q5_0) DECL_QT(q5_1) DECL_QT(q8_0) DECL_QT(q2_K) DECL_QT(q3_K) DECL_QT(q4_K)
DECL_QT(q5_K) DECL_QT(q6_K) DECL_QT(iq4_nl) DECL_QT(iq4_xs)
DECL_QT(iq2_xxs) DECL_QT(iq2_xs) DECL_QT(iq2_s) DECL_QT(iq3_xxs) DECL_QT(iq3_s) DECL_QT(iq1_s) DECL_QT(iq1_m)
// ggml builds the codebook quantizers' grids and neighbour lists here (ggml_quantize_init calls them).
void iq2xs_init_impl(int type);
void iq3xs_init_impl(int grid_size);
typedef size_t (*tensor_quant_fn)(const float *, void *, int64_t, int64_t, const float *);
static const struct { int type; tensor_quant_fn quantize; } k_tensor_oracles[] = {
    {DS_TYPE_Q4_0, quantize_q4_0}, {DS_TYPE_Q4_1, quantize_q4_1}, {DS_TYPE_Q5_0, quantize_q5_0},
    {DS_TYPE_Q5_1, quantize_q5_1}, {DS_TYPE_Q8_0, quantize_q8_0}, {DS_TYPE_Q2_K, quantize_q2_K},
    {DS_TYPE_Q3_K, quantize_q3_K}, {DS_TYPE_Q4_K, quantize_q4_K}, {DS_TYPE_Q5_K, quantize_q5_K},
    {DS_TYPE_Q6_K, quantize_q6_K}, {DS_TYPE_IQ4_NL, quantize_iq4_nl}, {DS_TYPE_IQ4_XS, quantize_iq4_xs},
    {DS_TYPE_IQ2_XXS, quantize_iq2_xxs}, {DS_TYPE_IQ2_XS, quantize_iq2_xs}, {DS_TYPE_IQ2_S, quantize_iq2_s},
    {DS_TYPE_IQ3_XXS, quantize_iq3_xxs}, {DS_TYPE_IQ3_S, quantize_iq3_s}, {DS_TYPE_IQ1_S, quantize_iq1_s},
    {DS_TYPE_IQ1_M, quantize_iq1_m},
};

static void init_ggml_codebooks(void) {
    const int iq2_types[] = {DS_TYPE_IQ2_XXS, DS_TYPE_IQ2_XS, DS_TYPE_IQ2_S, DS_TYPE_IQ1_S};
    for (int i = 0; i < 4; ++i) iq2xs_init_impl(iq2_types[i]);
    iq3xs_init_impl(256);
    iq3xs_init_impl(512);
}

typedef void (*quant_fn)(const float *, void *, int64_t);
typedef void (*dequant_fn)(const void *, float *, int64_t);
typedef void (*dot_fn)(int, float *, size_t, const void *, size_t, const void *, size_t, int);

typedef struct {
    int type;
    quant_fn quantize;
    dequant_fn dequantize;
    dot_fn dot;
} oracle;

static const oracle k_oracles[] = {
    {DS_TYPE_Q4_0, quantize_row_q4_0_ref, dequantize_row_q4_0, ggml_vec_dot_q4_0_q8_0_generic},
    {DS_TYPE_Q4_1, quantize_row_q4_1_ref, dequantize_row_q4_1, ggml_vec_dot_q4_1_q8_1_generic},
    {DS_TYPE_Q5_0, quantize_row_q5_0_ref, dequantize_row_q5_0, ggml_vec_dot_q5_0_q8_0_generic},
    {DS_TYPE_Q5_1, quantize_row_q5_1_ref, dequantize_row_q5_1, ggml_vec_dot_q5_1_q8_1_generic},
    {DS_TYPE_Q8_0, quantize_row_q8_0_ref, dequantize_row_q8_0, ggml_vec_dot_q8_0_q8_0_generic},
    {DS_TYPE_Q8_1, quantize_row_q8_1_ref, NULL, NULL},
    {DS_TYPE_Q2_K, quantize_row_q2_K_ref, dequantize_row_q2_K, ggml_vec_dot_q2_K_q8_K_generic},
    {DS_TYPE_Q3_K, quantize_row_q3_K_ref, dequantize_row_q3_K, ggml_vec_dot_q3_K_q8_K_generic},
    {DS_TYPE_Q4_K, quantize_row_q4_K_ref, dequantize_row_q4_K, ggml_vec_dot_q4_K_q8_K_generic},
    {DS_TYPE_Q5_K, quantize_row_q5_K_ref, dequantize_row_q5_K, ggml_vec_dot_q5_K_q8_K_generic},
    {DS_TYPE_Q6_K, quantize_row_q6_K_ref, dequantize_row_q6_K, ggml_vec_dot_q6_K_q8_K_generic},
    {DS_TYPE_Q8_K, quantize_row_q8_K_ref, dequantize_row_q8_K, NULL},
};

typedef struct {
    int type;
    dequant_fn dequantize;
    dot_fn dot;
} iq_oracle;

static const iq_oracle k_iq_oracles[] = {
    {DS_TYPE_IQ2_XXS, dequantize_row_iq2_xxs, ggml_vec_dot_iq2_xxs_q8_K_generic},
    {DS_TYPE_IQ2_XS, dequantize_row_iq2_xs, ggml_vec_dot_iq2_xs_q8_K_generic},
    {DS_TYPE_IQ2_S, dequantize_row_iq2_s, ggml_vec_dot_iq2_s_q8_K_generic},
    {DS_TYPE_IQ3_XXS, dequantize_row_iq3_xxs, ggml_vec_dot_iq3_xxs_q8_K_generic},
    {DS_TYPE_IQ3_S, dequantize_row_iq3_s, ggml_vec_dot_iq3_s_q8_K_generic},
    {DS_TYPE_IQ1_S, dequantize_row_iq1_s, ggml_vec_dot_iq1_s_q8_K_generic},
    {DS_TYPE_IQ1_M, dequantize_row_iq1_m, ggml_vec_dot_iq1_m_q8_K_generic},
    {DS_TYPE_IQ4_NL, dequantize_row_iq4_nl, ggml_vec_dot_iq4_nl_q8_0_generic},
    {DS_TYPE_IQ4_XS, dequantize_row_iq4_xs, ggml_vec_dot_iq4_xs_q8_K_generic},
};

static uint64_t g_rng = 12345;
static uint64_t next_u64(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1DULL;
}
static double uniform(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
static float normal(void) {
    return (float)(sqrt(-2.0 * log(uniform() + 1e-300)) * cos(6.283185307179586 * uniform()));
}

// Row kinds: 0 normal, 1 normal + outliers, 2 uniform positive, 3 heavy tails, 4 sparse,
// 5 tiny (fp16-subnormal scales), 6 small integers (exact ties), 7 constant runs.
static void fill_row(float *x, int64_t n, int kind) {
    const float scale = (float)(0.001 + uniform() * 2.0);
    for (int64_t i = 0; i < n; ++i) {
        float v = normal() * scale;
        switch (kind) {
        case 1: if (next_u64() % 50 == 0) v *= 30; break;
        case 2: v = (float)uniform() * scale; break;
        case 3: v = v * v * v; break;
        case 4: if (next_u64() % 4) v = 0; break;
        case 5: v *= 1e-6f; break;
        case 6: v = (float)((int)(next_u64() % 17) - 8); break;
        case 7: v = (i / 16) % 3 == 0 ? 0.5f : v; break;
        case 8: v = (i / 32) % 5 == 1 || (i / 256) % 4 == 3 ? 0.0f : v; break;   // zero sub- and super-blocks
        default: break;
        }
        x[i] = v;
    }
}

static int write_file(const char *dir, const char *name, const void *data, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    fclose(f);
    return 0;
}

// --dump DIR: the golden tensors of Tests/KernelsTests/Fixtures/quant/tensor, made by ggml itself:
// input.f32 (5 rows of 512), importance.f32 (512 columns), and per type TYPE.plain.bin (no importance)
// and TYPE.weighted.bin, the bytes ggml's quantize_<type> writes.
static int dump_fixtures(const char *dir) {
    enum { rows = 5, cols = 512 };
    static float x[rows * cols], qw[cols];
    static unsigned char q[rows * cols * 4];
    for (int r = 0; r < 4; ++r) fill_row(x + r * cols, cols, (int[]){0, 1, 3, 7}[r]);
    for (int i = 0; i < cols; ++i) { const float u = (float)uniform(); qw[i] = next_u64() % 7 == 0 ? 0.0f : u * u * 50; }
    fill_row(x + 4 * cols, cols, 8);   // zero sub- and super-blocks
    int bad = write_file(dir, "input.f32", x, sizeof x) + write_file(dir, "importance.f32", qw, sizeof qw);
    for (size_t k = 0; k < sizeof k_tensor_oracles / sizeof k_tensor_oracles[0]; ++k) {
        const int type = k_tensor_oracles[k].type;
        const size_t bytes = rows * (size_t)ds_row_bytes(type, cols);
        char name[64];
        for (int weighted = ds_type_quantizer_needs_importance(type); weighted < 2; ++weighted) {
            k_tensor_oracles[k].quantize(x, q, rows, cols, weighted ? qw : NULL);
            snprintf(name, sizeof name, "%s.%s.bin", ds_type_name(type), weighted ? "weighted" : "plain");
            bad += write_file(dir, name, q, bytes);
        }
    }
    return bad != 0;
}

int main(int argc, char **argv) {
    for (int h = 0; h < 65536; ++h) ggml_table_f32_f16[h] = ds_fp16_to_fp32((uint16_t)h);
    init_ggml_codebooks();
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump_fixtures(argv[2]);
    int failures = 0;
    const int64_t n = 2048;
    float *x = malloc(n * 4), *ya = malloc(n * 4), *yb = malloc(n * 4), *act_f = malloc(n * 4);
    unsigned char *qa = malloc(n * 4), *qb = malloc(n * 4), *act = malloc(n * 4);
    const int rows = 400;
    for (size_t k = 0; k < sizeof k_oracles / sizeof k_oracles[0]; ++k) {
        const oracle *o = &k_oracles[k];
        const size_t bytes = (size_t)ds_row_bytes(o->type, n);
        int quant_bad = 0, deq_bad = 0, dot_bad = 0;
        double worst_rel = 0;
        for (int r = 0; r < rows; ++r) {
            fill_row(x, n, r % 8);
            memset(qa, 0x5A, bytes);
            memset(qb, 0x5A, bytes);
            o->quantize(x, qa, n);
            ds_quantize_row_ref(o->type, x, qb, n);
            if (o->type == DS_TYPE_Q8_K) {
                // ggml leaves bsums unwritten for all-zero blocks; compare the rest of each block.
                for (int64_t b = 0; b < n / 256; ++b) {
                    const ds_block_q8_K *ba = (const ds_block_q8_K *)qa + b, *bb = (const ds_block_q8_K *)qb + b;
                    if (ba->d != bb->d || memcmp(ba->qs, bb->qs, 256) ||
                        (ba->d != 0 && memcmp(ba->bsums, bb->bsums, sizeof ba->bsums))) ++quant_bad;
                }
            } else if (memcmp(qa, qb, bytes) != 0) {
                ++quant_bad;
            }
            if (o->dequantize) {
                o->dequantize(qa, ya, n);
                ds_dequantize_row(o->type, qa, yb, n);
                if (memcmp(ya, yb, (size_t)n * 4) != 0) ++deq_bad;
            }
            if (o->dot) {
                const int atype = ds_vec_dot_type(o->type);
                fill_row(act_f, n, 0);
                ds_quantize_activation(atype, act_f, act, n);
                float ref = 0;
                o->dot((int)n, &ref, 0, qa, 0, act, 0, 1);
                const float mine_scalar = ds_vec_dot_scalar(o->type, n, qa, act);
                const float mine_fast = ds_vec_dot(o->type, n, qa, act);
                // Scale for relative error: sum |w_i a_i| of the dequantized rows.
                ds_dequantize_row(o->type, qa, ya, n);
                ds_dequantize_row(atype, act, yb, n);
                double mag = 0;
                for (int64_t i = 0; i < n; ++i) mag += fabs((double)ya[i] * yb[i]);
                const double tol = 1e-4 * fabs(ref) + 2e-6 * mag + 1e-30;
                const double err = fmax(fabs(mine_scalar - ref), fabs(mine_fast - ref));
                if (err > tol) {
                    if (dot_bad < 3) fprintf(stderr, "  %s row %d: ggml %.9g scalar %.9g fast %.9g\n",
                                             ds_type_name(o->type), r, ref, mine_scalar, mine_fast);
                    ++dot_bad;
                }
                if (fabs(ref) > 1e-3 * mag) worst_rel = fmax(worst_rel, err / fabs(ref));
            }
        }
        printf("%-5s quantize_ref %s, dequantize %s, dot %s (worst rel. diff %.2g)\n", ds_type_name(o->type),
               quant_bad ? "DIFFERS" : "identical", !o->dequantize ? "n/a" : deq_bad ? "DIFFERS" : "identical",
               !o->dot ? "n/a" : dot_bad ? "DIFFERS" : "ok", worst_rel);
        failures += quant_bad + deq_bad + dot_bad;
    }
    // i-quants: random block bytes with a finite fp16 scale (IQ1_M: in the top nibbles of its scale words).
    for (size_t k = 0; k < sizeof k_iq_oracles / sizeof k_iq_oracles[0]; ++k) {
        const iq_oracle *o = &k_iq_oracles[k];
        const size_t bytes = (size_t)ds_row_bytes(o->type, n), block = (size_t)ds_type_block_bytes(o->type);
        int deq_bad = 0, dot_bad = 0;
        double worst_rel = 0;
        for (int r = 0; r < rows; ++r) {
            for (size_t i = 0; i < bytes; ++i) qa[i] = (unsigned char)next_u64();
            for (size_t b = 0; b < bytes / block; ++b) {
                const uint16_t d = ds_fp32_to_fp16(normal() * 0.02f);
                unsigned char *blk = qa + b * block;
                if (o->type == DS_TYPE_IQ1_M) {
                    for (int w = 0; w < 4; ++w) blk[48 + 2 * w + 1] = (unsigned char)((blk[48 + 2 * w + 1] & 0x0F) | (((d >> (4 * w)) & 0xF) << 4));
                } else {
                    memcpy(blk, &d, 2);
                }
            }
            o->dequantize(qa, ya, n);
            ds_dequantize_row(o->type, qa, yb, n);
            if (memcmp(ya, yb, (size_t)n * 4) != 0) ++deq_bad;
            const int atype = ds_vec_dot_type(o->type);
            fill_row(act_f, n, 0);
            ds_quantize_activation(atype, act_f, act, n);
            float ref = 0;
            o->dot((int)n, &ref, 0, qa, 0, act, 0, 1);
            const float mine_scalar = ds_vec_dot_scalar(o->type, n, qa, act), mine_fast = ds_vec_dot(o->type, n, qa, act);
            ds_dequantize_row(atype, act, yb, n);
            double mag = 0;
            for (int64_t i = 0; i < n; ++i) mag += fabs((double)ya[i] * yb[i]);
            const double err = fmax(fabs(mine_scalar - ref), fabs(mine_fast - ref));
            if (err > 1e-4 * fabs(ref) + 2e-6 * mag + 1e-30) {
                if (dot_bad < 3) fprintf(stderr, "  %s row %d: ggml %.9g scalar %.9g fast %.9g\n", ds_type_name(o->type), r,
                                         ref, mine_scalar, mine_fast);
                ++dot_bad;
            }
            if (fabs(ref) > 1e-3 * mag) worst_rel = fmax(worst_rel, err / fabs(ref));
        }
        printf("%-7s dequantize %s, dot %s (worst rel. diff %.2g)\n", ds_type_name(o->type),
               deq_bad ? "DIFFERS" : "identical", dot_bad ? "DIFFERS" : "ok", worst_rel);
        failures += deq_bad + dot_bad;
    }
    // Whole tensors as llama-quantize writes them: 4 rows at a time, no importance and three kinds of it
    // (smooth, spiky with zeros, uniform), one importance vector per tensor as from an imatrix.
    float *importance = malloc(n * 4), *tensor = malloc(4 * n * 4);
    unsigned char *ta = malloc(4 * n * 4), *tb = malloc(4 * n * 4);
    for (size_t k = 0; k < sizeof k_tensor_oracles / sizeof k_tensor_oracles[0]; ++k) {
        const int type = k_tensor_oracles[k].type;
        const size_t bytes = 4 * (size_t)ds_row_bytes(type, n);
        int bad[4] = {0, 0, 0, 0};
        for (int r = 0; r < rows / 4; ++r) {
            for (int t = 0; t < 4; ++t) fill_row(tensor + t * n, n, (r + t) % 9);
            for (int kind = ds_type_quantizer_needs_importance(type); kind < 4; ++kind) {
                for (int64_t i = 0; i < n; ++i) {
                    const float u = (float)uniform();
                    importance[i] = kind == 1 ? 0.5f + u : kind == 2 ? (next_u64() % 5 == 0 ? 0.0f : u * u * u * 100) : 1.0f;
                }
                const float *qw = kind == 0 ? NULL : importance;
                memset(ta, 0x5A, bytes);
                memset(tb, 0xA5, bytes);
                k_tensor_oracles[k].quantize(tensor, ta, 4, n, qw);
                if (!ds_quantize_rows(type, tensor, tb, 4, n, qw) || memcmp(ta, tb, bytes) != 0) ++bad[kind];
            }
        }
        printf("%-7s tensor quantize: no importance %s, smooth %s, spiky %s, flat %s\n", ds_type_name(type),
               ds_type_quantizer_needs_importance(type) ? "n/a (needs it)" : bad[0] ? "DIFFERS" : "identical", bad[1] ? "DIFFERS" : "identical", bad[2] ? "DIFFERS" : "identical",
               bad[3] ? "DIFFERS" : "identical");
        failures += bad[0] + bad[1] + bad[2] + bad[3];
    }
    printf("%s\n", failures ? "FAILED" : "all match ggml");
    return failures != 0;
}
