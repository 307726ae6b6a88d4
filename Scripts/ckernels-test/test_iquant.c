// test_iquant.c — the i-quants (IQ1_S … IQ4_XS), linked into test_quant:
//   1. type traits: block sizes and bytes as ggml's, the activation format of each;
//   2. dequantization bit-exact to the gguf package's on the fixtures in <fixtures>/iq (made by
//      Scripts/make-iquant-fixtures.py, whose grid indices run through every codebook entry);
//   3. every ISA's dot kernel (ds_vec_dot_rows_isa) against the dequantized weights times the
//      dequantized activations (double), within rounding, on random blocks;
//   4. the multi-row kernel gives every token the bits of its lone ds_vec_dot_rows call, and ds_gemm
//      (prompt rows) matches the single-token kernel to rounding (4e-6 of Σ|w·a|).
#define _POSIX_C_SOURCE 200809L
#include "ds_quant.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int q_checks, q_failures;
#define QCHECK(cond, ...)                                                   \
    do {                                                                    \
        ++q_checks;                                                         \
        if (!(cond)) {                                                      \
            ++q_failures;                                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                     \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
        }                                                                   \
    } while (0)

static const struct { int type; const char *name; int64_t block; size_t bytes; int act; } k_iq[] = {
    {DS_TYPE_IQ2_XXS, "IQ2_XXS", 256, 66, DS_TYPE_Q8_K},  {DS_TYPE_IQ2_XS, "IQ2_XS", 256, 74, DS_TYPE_Q8_K},
    {DS_TYPE_IQ2_S, "IQ2_S", 256, 82, DS_TYPE_Q8_K},      {DS_TYPE_IQ3_XXS, "IQ3_XXS", 256, 98, DS_TYPE_Q8_K},
    {DS_TYPE_IQ3_S, "IQ3_S", 256, 110, DS_TYPE_Q8_K},     {DS_TYPE_IQ1_S, "IQ1_S", 256, 50, DS_TYPE_Q8_K},
    {DS_TYPE_IQ1_M, "IQ1_M", 256, 56, DS_TYPE_Q8_K},      {DS_TYPE_IQ4_NL, "IQ4_NL", 32, 18, DS_TYPE_Q8_0},
    {DS_TYPE_IQ4_XS, "IQ4_XS", 256, 136, DS_TYPE_Q8_K},
};
#define N_IQ ((int)(sizeof k_iq / sizeof k_iq[0]))

static uint64_t q_rng = 0x6A09E667F3BCC909ULL;
static uint64_t q_next(void) {
    q_rng ^= q_rng << 13, q_rng ^= q_rng >> 7, q_rng ^= q_rng << 17;
    return q_rng;
}
static float q_normal(void) {
    double s = 0;
    for (int i = 0; i < 4; ++i) s += (double)(q_next() >> 11) * (1.0 / 9007199254740992.0) - 0.5;
    return (float)s;
}

static void *q_read(const char *dir, const char *name, size_t *size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/iq/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *data = malloc(len > 0 ? (size_t)len : 1);
    *size = fread(data, 1, (size_t)len, f);
    fclose(f);
    return data;
}

// Random blocks of an i-quant type: random bytes, then each fp16 scale set to a small finite value
// (IQ1_M keeps its scale in the top nibbles of the 4 scale words at byte 48).
static void random_blocks(int type, unsigned char *dst, int64_t nblocks) {
    const size_t bytes = (size_t)ds_type_block_bytes(type);
    for (int64_t b = 0; b < nblocks; ++b) {
        unsigned char *blk = dst + (size_t)b * bytes;
        for (size_t i = 0; i < bytes; ++i) blk[i] = (unsigned char)q_next();
        const uint16_t d = ds_fp32_to_fp16(q_normal() * 0.02f);
        if (type == DS_TYPE_IQ1_M) {
            uint16_t sc[4];
            memcpy(sc, blk + 48, 8);
            for (int w = 0; w < 4; ++w) sc[w] = (uint16_t)((sc[w] & 0x0FFF) | (((d >> (4 * w)) & 0xF) << 12));
            memcpy(blk + 48, sc, 8);
        } else {
            memcpy(blk, &d, 2);
        }
    }
}

static void test_traits(void) {
    for (int k = 0; k < N_IQ; ++k) {
        const int t = k_iq[k].type;
        QCHECK(ds_type_supported(t), "%s supported", k_iq[k].name);
        QCHECK(strcmp(ds_type_name(t), k_iq[k].name) == 0, "%s name", k_iq[k].name);
        QCHECK(ds_type_block_size(t) == k_iq[k].block && ds_type_block_bytes(t) == (int64_t)k_iq[k].bytes,
               "%s block size/bytes", k_iq[k].name);
        QCHECK(ds_vec_dot_type(t) == k_iq[k].act, "%s activation format", k_iq[k].name);
    }
}

static void test_fixtures(const char *dir) {
    for (int k = 0; k < N_IQ; ++k) {
        char name[64];
        size_t bin_size = 0, f32_size = 0;
        snprintf(name, sizeof name, "%s.bin", k_iq[k].name);
        unsigned char *bin = q_read(dir, name, &bin_size);
        snprintf(name, sizeof name, "%s.f32", k_iq[k].name);
        float *golden = q_read(dir, name, &f32_size);
        QCHECK(bin && golden, "fixture %s in %s/iq", k_iq[k].name, dir);
        if (!bin || !golden) { free(bin); free(golden); continue; }
        const int64_t n = (int64_t)(bin_size / k_iq[k].bytes) * k_iq[k].block;
        QCHECK((int64_t)f32_size == n * 4, "fixture %s sizes", k_iq[k].name);
        float *got = malloc((size_t)n * 4);
        ds_dequantize_row(k_iq[k].type, bin, got, n);
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < n; ++i)
            if (memcmp(&got[i], &golden[i], 4) != 0 && !bad++) first = i;
        QCHECK(bad == 0, "%s dequantize: %lld of %lld differ from gguf, first [%lld] %.9g vs %.9g", k_iq[k].name,
               (long long)bad, (long long)n, (long long)first, bad ? got[first] : 0.0, bad ? golden[first] : 0.0);
        if (bad == 0) printf("  fixture %-7s dequantize bit-exact (%lld values)\n", k_iq[k].name, (long long)n);
        free(bin); free(golden); free(got);
    }
}

// Dots, multi-row and gemm on random blocks of one type: rows x n weights, ntok activation rows.
static void test_kernels(int k, int64_t n, int rows, int ntok) {
    const int t = k_iq[k].type, atype = k_iq[k].act;
    const size_t row_bytes = (size_t)ds_row_bytes(t, n), act_bytes = (size_t)ds_row_bytes(atype, n);
    unsigned char *w = malloc(row_bytes * rows), *act = malloc(act_bytes * ntok);
    float *x = malloc((size_t)n * 4), *wf = malloc((size_t)n * rows * 4), *af = malloc((size_t)n * ntok * 4);
    float *want = malloc((size_t)rows * ntok * 4), *got = malloc((size_t)rows * ntok * 4);
    double *mags = malloc((size_t)rows * ntok * sizeof(double));   // Σ |w·a| per (token, row)
    random_blocks(t, w, (int64_t)rows * (n / k_iq[k].block));
    for (int r = 0; r < rows; ++r) ds_dequantize_row(t, w + r * row_bytes, wf + (size_t)r * n, n);
    for (int j = 0; j < ntok; ++j) {
        for (int64_t i = 0; i < n; ++i) x[i] = q_normal() * 2.0f;
        ds_quantize_activation(atype, x, act + j * act_bytes, n);
        ds_dequantize_row(atype, act + j * act_bytes, af + (size_t)j * n, n);
    }
    for (int isa = 0; isa < DS_ISA_COUNT; ++isa) {
        if (!ds_isa_available(isa)) continue;
        // 3. each token alone against the double-precision reference
        int bad = 0;
        for (int j = 0; j < ntok; ++j) {
            ds_vec_dot_rows_isa(isa, t, n, w, row_bytes, rows, act + j * act_bytes, want + (size_t)j * rows);
            for (int r = 0; r < rows; ++r) {
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < n; ++i) {
                    ref += (double)wf[(size_t)r * n + i] * af[(size_t)j * n + i];
                    mag += fabs((double)wf[(size_t)r * n + i] * af[(size_t)j * n + i]);
                }
                mags[(size_t)j * rows + r] = mag;
                if (!(fabs(want[(size_t)j * rows + r] - ref) <= 2e-6 * mag + 1e-30)) {
                    if (!bad++) printf("  %s %s n=%lld row %d tok %d: %.9g vs reference %.9g\n", ds_isa_name(isa),
                                       k_iq[k].name, (long long)n, r, j, want[(size_t)j * rows + r], ref);
                }
            }
        }
        QCHECK(bad == 0, "%s %s dot vs dequantized reference: %d wrong", ds_isa_name(isa), k_iq[k].name, bad);
        // 4. multi-row: each token's lone bits; gemm: the same to rounding
        ds_vec_dot_rows_multi_isa(isa, t, n, w, row_bytes, rows, act, act_bytes, ntok, got, rows);
        QCHECK(memcmp(got, want, (size_t)rows * ntok * 4) == 0, "%s %s multi-row differs from single-token rows",
               ds_isa_name(isa), k_iq[k].name);
        ds_gemm_isa(isa, t, n, w, row_bytes, rows, act, act_bytes, ntok, got, rows);
        int far = 0;
        for (int i = 0; i < rows * ntok; ++i)
            if (!(fabs((double)got[i] - want[i]) <= 4e-6 * mags[i] + 1e-30) && !far++)
                printf("  %s %s gemm [%d]: %.9g vs single-token %.9g\n", ds_isa_name(isa), k_iq[k].name, i, got[i], want[i]);
        QCHECK(far == 0, "%s %s gemm: %d of %d far from the single-token kernel", ds_isa_name(isa), k_iq[k].name,
               far, rows * ntok);
    }
    free(w); free(act); free(x); free(wf); free(af); free(want); free(got); free(mags);
}

// Synthetic blocks: finite values whose root mean square is the one asked for (to fp16 rounding of d).
static void test_random_blocks(void) {
    for (int k = 0; k < N_IQ; ++k) {
        const int64_t n = 4 * 256;
        unsigned char *w = malloc((size_t)ds_row_bytes(k_iq[k].type, n));
        float *x = malloc((size_t)n * 4);
        QCHECK(ds_random_iquant_blocks(k_iq[k].type, 7, 0.02f, w, n) == 1, "%s random blocks", k_iq[k].name);
        ds_dequantize_row(k_iq[k].type, w, x, n);
        double sum = 0;
        int finite = 1;
        for (int64_t i = 0; i < n; ++i) { sum += (double)x[i] * x[i]; finite &= isfinite(x[i]) != 0; }
        const double rms = sqrt(sum / (double)n);
        QCHECK(finite && fabs(rms - 0.02) < 0.0005, "%s random blocks rms %.5f (want 0.02)", k_iq[k].name, rms);
        const int has_quantizer = k_iq[k].type == DS_TYPE_IQ4_NL || k_iq[k].type == DS_TYPE_IQ4_XS;
        QCHECK(ds_type_has_quantizer(k_iq[k].type) == has_quantizer, "%s quantizer %s", k_iq[k].name,
               has_quantizer ? "present" : "absent");
        free(w); free(x);
    }
    unsigned char dummy[144];
    QCHECK(ds_random_iquant_blocks(DS_TYPE_Q4_K, 7, 0.02f, dummy, 256) == 0, "random blocks refuse Q4_K");
    QCHECK(ds_type_has_quantizer(DS_TYPE_Q4_K) && ds_type_has_quantizer(DS_TYPE_MXFP4), "quantizers of Q4_K, MXFP4");
}

int test_iquants(const char *fixtures, int *checks) {
    test_traits();
    test_random_blocks();
    test_fixtures(fixtures);
    for (int k = 0; k < N_IQ; ++k) {
        const int64_t n = k_iq[k].block == 32 ? 288 : 768;
        test_kernels(k, n, 9, 5);
        test_kernels(k, n, 1, 1);
        test_kernels(k, n, 37, 19);   // more rows than one 16-row panel group, full token tiles
    }
    printf("  i-quant kernels checked on:");
    for (int isa = 0; isa < DS_ISA_COUNT; ++isa)
        if (ds_isa_available(isa)) printf(" %s", ds_isa_name(isa));
    printf("\n");
    *checks = q_checks;
    return q_failures;
}
