// test_packed.c — packed weights (ds_pack.c layout), linked into test_quant:
//   1. ds_pack_weights / ds_unpack_weights give the original bytes back;
//   2. ds_gemm_packed_isa gives every (row, token) the same bits for any number of tokens in the call
//      (1..9) and for calls that start at a later group;
//   3. where an ISA has a packed kernel, those bits equal its row-major multi-token kernel's
//      (ds_gemm_isa), and where it has none, its single-token kernel's (ds_vec_dot_rows_isa).
#define _POSIX_C_SOURCE 200809L
#include "ds_quant.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

static int p_checks, p_failures;
#define PCHECK(cond, ...)                                                   \
    do {                                                                    \
        ++p_checks;                                                         \
        if (!(cond)) {                                                      \
            ++p_failures;                                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                     \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
        }                                                                   \
    } while (0)

static uint64_t p_rng = 0x2545F4914F6CDD1DULL;
static float p_normal(void) {
    double s = 0;
    for (int i = 0; i < 4; ++i) {
        p_rng ^= p_rng << 13, p_rng ^= p_rng >> 7, p_rng ^= p_rng << 17;
        s += (double)(p_rng >> 11) * (1.0 / 9007199254740992.0) - 0.5;
    }
    return (float)s;
}

static int bits_equal(const float *a, const float *b, int64_t count) { return memcmp(a, b, (size_t)count * 4) == 0; }

static void test_packed_shape(int wtype, int64_t n, int nrows) {
    const int atype = ds_vec_dot_type(wtype);
    const size_t row_bytes = (size_t)ds_row_bytes(wtype, n), act_bytes = (size_t)ds_row_bytes(atype, n);
    const int ntok = 9;
    unsigned char *w = malloc(row_bytes * nrows), *back = malloc(row_bytes * nrows), *act = malloc(act_bytes * ntok);
    float *x = malloc((size_t)n * 4);
    for (int r = 0; r < nrows; ++r) {
        for (int64_t i = 0; i < n; ++i) x[i] = p_normal() * (0.02f + 0.003f * (r % 11)) + (r % 5 == 3 ? 0.01f : 0.0f);
        ds_quantize_row_ref(wtype, x, w + (size_t)r * row_bytes, n);
    }
    for (int t = 0; t < ntok; ++t) {
        for (int64_t i = 0; i < n; ++i) x[i] = p_normal() * (0.5f + 0.25f * (t % 7));
        ds_quantize_activation(atype, x, act + (size_t)t * act_bytes, n);
    }
    const size_t packed_bytes = ds_packed_bytes(wtype, n, nrows), group_bytes = ds_packed_group_bytes(wtype, n);
    PCHECK(packed_bytes == group_bytes * (size_t)((nrows + 15) / 16) && group_bytes == 16 * row_bytes,
           "packed size %s n=%lld", ds_type_name(wtype), (long long)n);
    unsigned char *packed = aligned_alloc(64, (packed_bytes + 63) / 64 * 64);
    PCHECK(ds_pack_weights(wtype, n, w, row_bytes, nrows, packed), "pack %s", ds_type_name(wtype));
    ds_unpack_weights(wtype, n, packed, nrows, back, row_bytes);
    PCHECK(memcmp(w, back, row_bytes * nrows) == 0, "unpack %s n=%lld rows=%d", ds_type_name(wtype), (long long)n, nrows);

    float *ref = malloc((size_t)nrows * ntok * 4), *got = malloc((size_t)nrows * ntok * 4), *row = malloc((size_t)nrows * ntok * 4);
    for (int isa = 0; isa < DS_ISA_COUNT; ++isa) {
        if (!ds_isa_available(isa)) continue;
        ds_gemm_packed_isa(isa, wtype, n, packed, nrows, act, act_bytes, ntok, ref, nrows);
        for (int tokens = 1; tokens < ntok; ++tokens) {
            ds_gemm_packed_isa(isa, wtype, n, packed, nrows, act, act_bytes, tokens, got, nrows);
            PCHECK(bits_equal(ref, got, (int64_t)nrows * tokens), "packed %s %s rows=%d: %d tokens differ from %d",
                   ds_isa_name(isa), ds_type_name(wtype), nrows, tokens, ntok);
        }
        if (nrows > 16) {   // from the second group on
            ds_gemm_packed_isa(isa, wtype, n, packed + group_bytes, nrows - 16, act, act_bytes, ntok, got, nrows);
            int same = 1;
            for (int t = 0; t < ntok; ++t) same &= bits_equal(ref + t * nrows + 16, got + t * nrows, nrows - 16);
            PCHECK(same, "packed %s %s rows=%d: a call from group 1 differs", ds_isa_name(isa), ds_type_name(wtype), nrows);
        }
        // What the packed kernel must match: the row-major multi-token kernel, else the single-token one.
        if (ds_isa_has_packed_kernel(isa, wtype)) {
            ds_gemm_isa(isa, wtype, n, w, row_bytes, nrows, act, act_bytes, ntok, row, nrows);
        } else {
            for (int t = 0; t < ntok; ++t) ds_vec_dot_rows_isa(isa, wtype, n, w, row_bytes, nrows, act + t * act_bytes, row + t * nrows);
        }
        int bad = 0, first = -1;
        for (int64_t i = 0; i < (int64_t)nrows * ntok; ++i) if (memcmp(&ref[i], &row[i], 4) && !bad++) first = (int)i;
        PCHECK(bad == 0, "packed %s %s n=%lld rows=%d: %d differ from the row-major kernel, first %.9g vs %.9g",
               ds_isa_name(isa), ds_type_name(wtype), (long long)n, nrows, bad, bad ? ref[first] : 0.0, bad ? row[first] : 0.0);
    }
    free(w); free(back); free(act); free(x); free(packed); free(ref); free(got); free(row);
}

int test_packed(int *checks) {
    const int types[] = {DS_TYPE_Q4_0, DS_TYPE_Q4_1, DS_TYPE_Q5_0, DS_TYPE_Q5_1, DS_TYPE_Q8_0,
                         DS_TYPE_Q2_K, DS_TYPE_Q3_K, DS_TYPE_Q4_K, DS_TYPE_Q5_K, DS_TYPE_Q6_K};
    const int rows[] = {1, 7, 16, 37, 70};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; ++k) {
        const int t = types[k];
        PCHECK(ds_pack_layout_exists(t), "layout %s", ds_type_name(t));
        const int64_t lengths[] = {ds_type_block_size(t) == 32 ? 96 : 256, 768};
        for (int l = 0; l < 2; ++l)
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; ++r) test_packed_shape(t, lengths[l], rows[r]);
    }
    PCHECK(!ds_pack_layout_exists(DS_TYPE_F32) && ds_packed_bytes(DS_TYPE_F16, 64, 4) == 0, "float types have no layout");
    int with_kernel = 0;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; ++k) with_kernel += ds_packed_kernel_available(types[k]);
    printf("  packed kernels on the active ISA (%s): %d of %d types\n", ds_isa_name(ds_active_isa()), with_kernel,
           (int)(sizeof types / sizeof types[0]));
    *checks = p_checks;
    return p_failures;
}

// ---- Benchmark: decode-sized calls, single thread -------------------------------------------------
// ms per call of `rows` x n weights against ntok tokens: the single-token kernel once per token, the
// multi-row kernel (bitwise per token), and the packed kernel.

static double p_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void bench_packed_one(int wtype, int64_t rows, int64_t n, int ntok, double seconds) {
    const int isa = ds_active_isa(), atype = ds_vec_dot_type(wtype);
    const size_t row_bytes = (size_t)ds_row_bytes(wtype, n), act_bytes = (size_t)ds_row_bytes(atype, n);
    unsigned char *w = malloc(row_bytes * rows), *act = malloc(act_bytes * ntok);
    const int has_packed = ds_pack_layout_exists(wtype);   // F32/F16/BF16/MXFP4: rows and multi-row only
    unsigned char *packed = has_packed ? aligned_alloc(64, (ds_packed_bytes(wtype, n, rows) + 63) / 64 * 64) : NULL;
    float *x = malloc((size_t)n * 4), *out = malloc((size_t)rows * ntok * 4);
    if (!ds_type_has_quantizer(wtype)) {
        ds_random_iquant_blocks(wtype, 1, 0.02f, w, n * rows);   // the i-quants: random codes
    } else {
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t i = 0; i < n; ++i) x[i] = p_normal() * 0.02f;
            ds_quantize_row_ref(wtype, x, w + r * row_bytes, n);
        }
    }
    for (int t = 0; t < ntok; ++t) {
        for (int64_t i = 0; i < n; ++i) x[i] = p_normal();
        if (atype == DS_TYPE_F32) memcpy(act + t * act_bytes, x, (size_t)n * 4);
        else ds_quantize_activation(atype, x, act + t * act_bytes, n);
    }
    if (has_packed) ds_pack_weights(wtype, n, w, row_bytes, rows, packed);
    double ms[3] = {0, 0, 0};
    for (int mode = 0; mode < (has_packed ? 3 : 2); ++mode) {
        int it = 0;
        const double start = p_now();
        do {
            if (mode == 0) for (int t = 0; t < ntok; ++t) ds_vec_dot_rows_isa(isa, wtype, n, w, row_bytes, rows, act + t * act_bytes, out + t * rows);
            else if (mode == 1) ds_vec_dot_rows_multi_isa(isa, wtype, n, w, row_bytes, rows, act, act_bytes, ntok, out, rows);
            else ds_gemm_packed_isa(isa, wtype, n, packed, rows, act, act_bytes, ntok, out, rows);
            ++it;
        } while (p_now() - start < seconds);
        ms[mode] = (p_now() - start) / it * 1e3;
    }
    if (has_packed)
        printf("  %-5s %5lld x %-5lld %2d tok: per-token rows %7.3f ms | multi-row %7.3f ms | packed %7.3f ms (x%.2f vs rows, per token %.3f ms)\n",
               ds_type_name(wtype), (long long)rows, (long long)n, ntok, ms[0], ms[1], ms[2], ms[0] / ms[2], ms[2] / ntok);
    else
        printf("  %-5s %5lld x %-5lld %2d tok: per-token rows %7.3f ms | multi-row %7.3f ms (x%.2f vs rows)\n",
               ds_type_name(wtype), (long long)rows, (long long)n, ntok, ms[0], ms[1], ms[0] / ms[1]);
    free(w); free(act); if (packed) free(packed); free(x); free(out);
}

void bench_packed(double seconds) {
    const struct { int type; int64_t rows, n; } cases[] = {
        {DS_TYPE_Q4_1, 1536, 576}, {DS_TYPE_Q8_0, 8192, 576}, {DS_TYPE_Q4_K, 2048, 768}, {DS_TYPE_Q5_0, 2048, 640},
        {DS_TYPE_Q6_K, 8192, 768}, {DS_TYPE_Q4_K, 8192, 3072}, {DS_TYPE_Q8_0, 8192, 2048},
        // No packed layout: one thread's slice of an MXFP4 expert matrix, float matrices below and above
        // the 4 MiB where the single-token kernel switches to one row at a time.
        {DS_TYPE_MXFP4, 512, 2048}, {DS_TYPE_F16, 1536, 576}, {DS_TYPE_BF16, 1536, 576}, {DS_TYPE_F32, 1536, 576},
        {DS_TYPE_F16, 8192, 576},
        {DS_TYPE_IQ1_S, 1024, 2048}, {DS_TYPE_IQ1_M, 1024, 2048}, {DS_TYPE_IQ2_XXS, 1024, 2048},
        {DS_TYPE_IQ2_S, 1024, 2048}, {DS_TYPE_IQ3_S, 1024, 2048}, {DS_TYPE_IQ4_NL, 1024, 2048},
    };
    const int toks[] = {1, 2, 4, 8};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k)
        for (int i = 0; i < 4; ++i) bench_packed_one(cases[k].type, cases[k].rows, cases[k].n, toks[i], seconds);
}
