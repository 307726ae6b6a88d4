// test_quant.c — tests and micro-benchmark for CKernels (ds_quant.h).
//
// Usage: test_quant [FIXTURE_DIR]          run all tests (default dir: Fixtures/quant)
//        test_quant --bench [SECONDS]      GB/s of weights for ds_vec_dot_rows, single thread
//        test_quant --bench-gemm [SECONDS [TOKENS]]   prefill GEMM and multi-row vs per-token ds_vec_dot_rows
//
// Tests:
//   1. type traits agree with the block structs;
//   2. fp16 / bf16 conversions (exhaustive fp16 -> fp32; fp32 -> fp16 over a dense sweep of all
//      bit patterns, compared with F16C hardware when present);
//   3. golden fixtures (made by gguf-py / ggml): ds_dequantize_row is bit-exact against <T>.f32 and
//      ds_quantize_row_ref reproduces <T>.bin from input.f32;
//   4. every SIMD kernel (single row and multi-row) equals the scalar kernel within tolerance,
//      over random data and several lengths;
//   5. the scalar kernel equals the double-precision dot of the dequantized rows within tolerance;
//   6. activation formats and zero rows;
//   7. ds_gemm (multi-token) equals ds_vec_dot_scalar per (row, token) on every ISA;
//   8. ds_vec_dot_rows_multi gives every token the bits ds_vec_dot_rows gives it alone, on every ISA.
#define _POSIX_C_SOURCE 200809L
#include "ds_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond, ...)                                  \
    do {                                                  \
        ++g_checks;                                       \
        if (!(cond)) {                                    \
            ++g_failures;                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                 \
            fprintf(stderr, "\n");                        \
        }                                                 \
    } while (0)

// ---- Deterministic random numbers (xorshift64*, Box-Muller) --------------------------------------

static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next_u64(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1DULL;
}

static double next_uniform(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

static float next_normal(void) {
    const double u1 = next_uniform() + 1e-300, u2 = next_uniform();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

// Weight-like data: normal * scale, with ~0.5% outliers of 20x.
static void fill_random(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; ++i) {
        float v = next_normal() * scale;
        if (next_u64() % 200 == 0) v *= 20.0f;
        x[i] = v;
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static const int k_all_types[] = {DS_TYPE_F32,  DS_TYPE_F16,  DS_TYPE_BF16, DS_TYPE_Q4_0, DS_TYPE_Q4_1,
                                  DS_TYPE_Q5_0, DS_TYPE_Q5_1, DS_TYPE_Q8_0, DS_TYPE_Q8_1, DS_TYPE_Q2_K,
                                  DS_TYPE_Q3_K, DS_TYPE_Q4_K, DS_TYPE_Q5_K, DS_TYPE_Q6_K, DS_TYPE_Q8_K};
#define N_ALL_TYPES ((int)(sizeof k_all_types / sizeof k_all_types[0]))

// ---- 1. Type traits ------------------------------------------------------------------------------

static void test_type_traits(void) {
    struct { int type; int64_t block; size_t bytes; } expected[] = {
        {DS_TYPE_F32, 1, 4},
        {DS_TYPE_F16, 1, 2},
        {DS_TYPE_BF16, 1, 2},
        {DS_TYPE_Q4_0, 32, sizeof(ds_block_q4_0)},
        {DS_TYPE_Q4_1, 32, sizeof(ds_block_q4_1)},
        {DS_TYPE_Q5_0, 32, sizeof(ds_block_q5_0)},
        {DS_TYPE_Q5_1, 32, sizeof(ds_block_q5_1)},
        {DS_TYPE_Q8_0, 32, sizeof(ds_block_q8_0)},
        {DS_TYPE_Q8_1, 32, sizeof(ds_block_q8_1)},
        {DS_TYPE_Q2_K, 256, sizeof(ds_block_q2_K)},
        {DS_TYPE_Q3_K, 256, sizeof(ds_block_q3_K)},
        {DS_TYPE_Q4_K, 256, sizeof(ds_block_q4_K)},
        {DS_TYPE_Q5_K, 256, sizeof(ds_block_q5_K)},
        {DS_TYPE_Q6_K, 256, sizeof(ds_block_q6_K)},
        {DS_TYPE_Q8_K, 256, sizeof(ds_block_q8_K)},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; ++i) {
        const int t = expected[i].type;
        CHECK(ds_type_supported(t), "type %d supported", t);
        CHECK(ds_type_block_size(t) == expected[i].block, "%s block size", ds_type_name(t));
        CHECK(ds_type_block_bytes(t) == (int64_t)expected[i].bytes, "%s block bytes", ds_type_name(t));
        CHECK(ds_row_bytes(t, 1024) == 1024 / expected[i].block * (int64_t)expected[i].bytes, "%s row bytes",
              ds_type_name(t));
    }
    const int unsupported[] = {4, 5, 24, 31, 34, 35, -1, 100};   // (i-quants: test_iquant.c)
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; ++i) {
        CHECK(!ds_type_supported(unsupported[i]), "type %d must be unsupported", unsupported[i]);
    }
    CHECK(ds_vec_dot_type(DS_TYPE_Q4_0) == DS_TYPE_Q8_0, "Q4_0 act");
    CHECK(ds_vec_dot_type(DS_TYPE_Q5_0) == DS_TYPE_Q8_0, "Q5_0 act");
    CHECK(ds_vec_dot_type(DS_TYPE_Q8_0) == DS_TYPE_Q8_0, "Q8_0 act");
    CHECK(ds_vec_dot_type(DS_TYPE_Q4_1) == DS_TYPE_Q8_1, "Q4_1 act");
    CHECK(ds_vec_dot_type(DS_TYPE_Q5_1) == DS_TYPE_Q8_1, "Q5_1 act");
    for (int t = DS_TYPE_Q2_K; t <= DS_TYPE_Q8_K; ++t) CHECK(ds_vec_dot_type(t) == DS_TYPE_Q8_K, "K act");
    CHECK(ds_vec_dot_type(DS_TYPE_F32) == DS_TYPE_F32, "F32 act");
    CHECK(ds_vec_dot_type(DS_TYPE_F16) == DS_TYPE_F32, "F16 act");
    CHECK(ds_vec_dot_type(DS_TYPE_BF16) == DS_TYPE_F32, "BF16 act");
}

// ---- 2. Conversions --------------------------------------------------------------------------------

#if defined(__x86_64__)
__attribute__((target("f16c"))) static float hw_half_to_float(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) static uint16_t hw_float_to_half(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
static int have_f16c(void) { return __builtin_cpu_supports("f16c"); }
#else
static float hw_half_to_float(uint16_t h) { (void)h; return 0; }
static uint16_t hw_float_to_half(float f) { (void)f; return 0; }
static int have_f16c(void) { return 0; }
#endif

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// Straightforward double-based fp16 reference (no bit tricks): exact value of a half.
static double half_value(uint16_t h) {
    const int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp((double)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp((double)(1024 + m), e - 25);
    return sign ? -v : v;
}

static void test_conversions(void) {
    const int hw = have_f16c();
    int bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = ds_fp16_to_fp32((uint16_t)h);
        const double ref = half_value((uint16_t)h);
        if (isnan(ref)) {
            if (!isnan(f)) ++bad;
            if (hw && f2u(f) != f2u(hw_half_to_float((uint16_t)h))) ++bad;
        } else {
            if ((double)f != ref) ++bad;
            // round trip is the identity on non-NaN halves
            if (ds_fp32_to_fp16(f) != h) ++bad;
        }
    }
    CHECK(bad == 0, "fp16 -> fp32: %d mismatches", bad);

    if (hw) {
        // Every 97th bit pattern (44M floats) plus a window around every half boundary region.
        bad = 0;
        for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 97) {
            const float f = u2f((uint32_t)u);
            const uint16_t mine = ds_fp32_to_fp16(f);
            if (isnan(f)) {
                if ((mine & 0x7C00) != 0x7C00 || (mine & 0x3FF) == 0) ++bad;
                continue;
            }
            if (mine != hw_float_to_half(f)) {
                if (bad < 5) fprintf(stderr, "  fp32->fp16 %08x: mine %04x hw %04x\n", (uint32_t)u, mine,
                                     hw_float_to_half(f));
                ++bad;
            }
        }
        // Exact ties and neighbours around every half value.
        for (uint32_t h = 0; h < 0x7C00; ++h) {
            const float lo = ds_fp16_to_fp32((uint16_t)h), hi = ds_fp16_to_fp32((uint16_t)(h + 1));
            const float mid = (float)(((double)lo + (double)hi) / 2);
            const float probes[] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), -mid};
            for (int k = 0; k < 4; ++k) {
                if (ds_fp32_to_fp16(probes[k]) != hw_float_to_half(probes[k])) ++bad;
            }
        }
        CHECK(bad == 0, "fp32 -> fp16 vs F16C: %d mismatches", bad);
    }

    // bf16: RNE on the upper 16 bits, NaN quieted.
    bad = 0;
    for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 101) {
        const uint32_t bits = (uint32_t)u;
        const float f = u2f(bits);
        uint16_t expect;
        if ((bits & 0x7FFFFFFF) > 0x7F800000) expect = (uint16_t)((bits >> 16) | 64);
        else {
            const uint32_t lower = bits & 0xFFFF;
            uint32_t upper = bits >> 16;
            if (lower > 0x8000 || (lower == 0x8000 && (upper & 1))) upper += 1;
            expect = (uint16_t)upper;
        }
        if (ds_fp32_to_bf16(f) != expect) ++bad;
        if (f2u(ds_bf16_to_fp32((uint16_t)(bits >> 16))) != (bits & 0xFFFF0000u)) ++bad;
    }
    CHECK(bad == 0, "bf16 conversions: %d mismatches", bad);
}

// ---- 3. Golden fixtures ----------------------------------------------------------------------------

static void *read_file(const char *dir, const char *name, size_t *size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = xmalloc((size_t)len);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    *size = (size_t)len;
    return buf;
}

static void test_fixtures(const char *dir) {
    size_t input_size = 0;
    float *input = (float *)read_file(dir, "input.f32", &input_size);
    CHECK(input != NULL, "cannot read %s/input.f32", dir);
    if (!input) return;
    const int64_t n = (int64_t)(input_size / 4);
    const int types[] = {DS_TYPE_Q4_0, DS_TYPE_Q4_1, DS_TYPE_Q5_0, DS_TYPE_Q5_1, DS_TYPE_Q8_0, DS_TYPE_Q2_K,
                         DS_TYPE_Q3_K, DS_TYPE_Q4_K, DS_TYPE_Q5_K, DS_TYPE_Q6_K, DS_TYPE_F16, DS_TYPE_BF16};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; ++k) {
        const int t = types[k];
        char name[64];
        size_t bin_size = 0, f32_size = 0;
        snprintf(name, sizeof name, "%s.bin", ds_type_name(t));
        unsigned char *bin = (unsigned char *)read_file(dir, name, &bin_size);
        snprintf(name, sizeof name, "%s.f32", ds_type_name(t));
        float *golden = (float *)read_file(dir, name, &f32_size);
        CHECK(bin && golden, "missing fixture files for %s", ds_type_name(t));
        if (!bin || !golden) {
            free(bin);
            free(golden);
            continue;
        }
        CHECK((int64_t)bin_size == ds_row_bytes(t, n), "%s.bin size %zu", ds_type_name(t), bin_size);
        CHECK(f32_size == input_size, "%s.f32 size", ds_type_name(t));

        float *deq = (float *)xmalloc((size_t)n * 4);
        ds_dequantize_row(t, bin, deq, n);
        int mismatches = 0, first = -1;
        for (int64_t i = 0; i < n; ++i) {
            if (f2u(deq[i]) != f2u(golden[i])) {
                if (first < 0) first = (int)i;
                ++mismatches;
            }
        }
        CHECK(mismatches == 0, "%s dequantize: %d values differ from gguf (first at %d: %.9g vs %.9g)",
              ds_type_name(t), mismatches, first, first >= 0 ? deq[first] : 0.0, first >= 0 ? golden[first] : 0.0);

        unsigned char *q = (unsigned char *)xmalloc(bin_size);
        memset(q, 0xA5, bin_size);
        ds_quantize_row_ref(t, input, q, n);
        size_t first_byte = bin_size;
        int byte_mismatches = 0;
        for (size_t i = 0; i < bin_size; ++i) {
            if (q[i] != bin[i]) {
                if (first_byte == bin_size) first_byte = i;
                ++byte_mismatches;
            }
        }
        CHECK(byte_mismatches == 0, "%s quantize_row_ref: %d bytes differ from fixture (first at byte %zu)",
              ds_type_name(t), byte_mismatches, first_byte);
        printf("  fixture %-5s dequantize %s, quantize %s\n", ds_type_name(t),
               mismatches ? "DIFFERS" : "bit-exact", byte_mismatches ? "DIFFERS" : "byte-exact");
        free(q);
        free(deq);
        free(bin);
        free(golden);
    }
    free(input);
}

// ---- 4 + 5. Dot products ---------------------------------------------------------------------------

typedef struct {
    double dot;          // double-precision dot of the dequantized rows
    double magnitude;    // sum |w_i * a_i|
    double min_term_tol; // extra tolerance for fp16-rounded activation sums (Q8_1 s field)
} exact_dot;

static exact_dot dequantized_dot(int wtype, int64_t n, const void *w, const void *act) {
    const int atype = ds_vec_dot_type(wtype);
    float *dw = (float *)xmalloc((size_t)n * 4), *da = (float *)xmalloc((size_t)n * 4);
    ds_dequantize_row(wtype, w, dw, n);
    ds_dequantize_row(atype, act, da, n);
    exact_dot r = {0, 0, 0};
    for (int64_t i = 0; i < n; ++i) {
        r.dot += (double)dw[i] * da[i];
        r.magnitude += fabs((double)dw[i] * da[i]);
    }
    if (wtype == DS_TYPE_Q4_1 || wtype == DS_TYPE_Q5_1) {
        // The kernel uses m_w * s_a with s_a = fp16(d_a * sum q_a): relative error <= 2^-11.
        const ds_block_q8_1 *a = (const ds_block_q8_1 *)act;
        for (int64_t b = 0; b < n / 32; ++b) {
            const uint16_t m = wtype == DS_TYPE_Q4_1 ? ((const ds_block_q4_1 *)w)[b].m : ((const ds_block_q5_1 *)w)[b].m;
            r.min_term_tol += fabs((double)ds_fp16_to_fp32(m) * ds_fp16_to_fp32(a[b].s)) * (1.0 / 1024);
            double exact_sum = 0;
            for (int j = 0; j < 32; ++j) exact_sum += a[b].qs[j];
            r.min_term_tol += fabs(ds_fp16_to_fp32(m) * (exact_sum * ds_fp16_to_fp32(a[b].d) - ds_fp16_to_fp32(a[b].s)));
        }
    }
    free(dw);
    free(da);
    return r;
}

static void test_dot_type(int wtype, const int64_t *lengths, int nlengths) {
    const int atype = ds_vec_dot_type(wtype);
    for (int li = 0; li < nlengths; ++li) {
        const int64_t n = lengths[li];
        const int nrows = 7;   // exercises the 4-row kernels and the leftover rows
        const size_t row_bytes = (size_t)ds_row_bytes(wtype, n);
        float *x = (float *)xmalloc((size_t)n * 4);
        unsigned char *w = (unsigned char *)xmalloc(row_bytes * nrows);
        unsigned char *act = (unsigned char *)xmalloc((size_t)ds_row_bytes(atype, n));
        for (int r = 0; r < nrows; ++r) {
            fill_random(x, n, 0.02f + 0.01f * r);
            if (r == 3) for (int64_t i = 0; i < n; ++i) x[i] = fabsf(x[i]);   // all-positive row
            ds_quantize_row_ref(wtype, x, w + (size_t)r * row_bytes, n);
        }
        fill_random(x, n, 1.0f);
        ds_quantize_activation(atype, x, act, n);

        float scalar[8];
        for (int r = 0; r < nrows; ++r) {
            const void *row = w + (size_t)r * row_bytes;
            scalar[r] = ds_vec_dot_scalar(wtype, n, row, act);
            const exact_dot ex = dequantized_dot(wtype, n, row, act);
            const double tol = 1e-5 * ex.magnitude + ex.min_term_tol + 1e-30;
            CHECK(fabs(scalar[r] - ex.dot) <= tol, "%s n=%lld row %d: scalar %.9g vs dequantized %.9g (tol %.3g)",
                  ds_type_name(wtype), (long long)n, r, scalar[r], ex.dot, tol);
        }
        for (int isa = 1; isa < DS_ISA_COUNT; ++isa) {
            if (!ds_isa_available(isa)) continue;
            float rows_out[8];
            ds_vec_dot_rows_isa(isa, wtype, n, w, row_bytes, nrows, act, rows_out);
            for (int r = 0; r < nrows; ++r) {
                const void *row = w + (size_t)r * row_bytes;
                const float single = ds_vec_dot_isa(isa, wtype, n, row, act);
                const exact_dot ex = dequantized_dot(wtype, n, row, act);
                // 1e-4 relative to the result, plus float-rounding headroom for cancelling sums.
                const double tol = 1e-4 * fabs(scalar[r]) + 2e-6 * ex.magnitude + 1e-30;
                CHECK(fabs(single - scalar[r]) <= tol, "%s %s n=%lld row %d: dot %.9g vs scalar %.9g",
                      ds_isa_name(isa), ds_type_name(wtype), (long long)n, r, single, scalar[r]);
                CHECK(fabs(rows_out[r] - scalar[r]) <= tol, "%s %s n=%lld row %d: rows %.9g vs scalar %.9g",
                      ds_isa_name(isa), ds_type_name(wtype), (long long)n, r, rows_out[r], scalar[r]);
            }
        }
        // The public entry points (active ISA) agree with the per-ISA ones.
        float active_rows[8];
        ds_vec_dot_rows(wtype, n, w, row_bytes, nrows, act, active_rows);
        for (int r = 0; r < nrows; ++r) {
            const float single = ds_vec_dot(wtype, n, w + (size_t)r * row_bytes, act);
            const float via_isa = ds_vec_dot_isa(ds_active_isa(), wtype, n, w + (size_t)r * row_bytes, act);
            CHECK(single == via_isa, "%s active dot differs from its ISA", ds_type_name(wtype));
            CHECK(fabs(active_rows[r] - single) <= 1e-4 * fabs(single) + 1e-6, "%s active rows", ds_type_name(wtype));
        }
        free(x);
        free(w);
        free(act);
    }
}

static void test_dots(void) {
    const int64_t small_lengths[] = {32, 64, 96, 576, 1536, 4128};
    const int64_t k_lengths[] = {256, 512, 1536, 2048};
    const int64_t float_lengths[] = {1, 7, 16, 33, 100, 576, 1000, 1536};
    for (int k = 0; k < N_ALL_TYPES; ++k) {
        const int t = k_all_types[k];
        const int64_t bs = ds_type_block_size(t);
        if (bs == 1) test_dot_type(t, float_lengths, 8);
        else if (bs == 32) test_dot_type(t, small_lengths, 6);
        else test_dot_type(t, k_lengths, 4);
    }
    printf("  dot kernels checked for:");
    for (int isa = 0; isa < DS_ISA_COUNT; ++isa) {
        if (ds_isa_available(isa)) printf(" %s", ds_isa_name(isa));
    }
    printf("\n");
}

// Activation quantizers write the documented formats (bsums, s) and dequantize close to input.
static void test_activation_formats(void) {
    const int64_t n = 512;
    float x[512], back[512];
    fill_random(x, n, 3.0f);
    ds_block_q8_K qk[2];
    ds_quantize_activation(DS_TYPE_Q8_K, x, qk, n);
    int bad = 0;
    for (int b = 0; b < 2; ++b) {
        for (int j = 0; j < 16; ++j) {
            int sum = 0;
            for (int i = 0; i < 16; ++i) sum += qk[b].qs[16 * j + i];
            if (sum != qk[b].bsums[j]) ++bad;
        }
    }
    CHECK(bad == 0, "Q8_K bsums");
    ds_dequantize_row(DS_TYPE_Q8_K, qk, back, n);
    double err = 0, mag = 0;
    for (int i = 0; i < n; ++i) {
        err = fmax(err, fabs(back[i] - x[i]));
        mag = fmax(mag, fabs(x[i]));
    }
    CHECK(err <= mag / 127 * 0.5001, "Q8_K round trip error %g", err);

    ds_block_q8_1 q1[16];
    ds_quantize_activation(DS_TYPE_Q8_1, x, q1, n);
    bad = 0;
    for (int b = 0; b < 16; ++b) {
        int sum = 0;
        for (int j = 0; j < 32; ++j) sum += q1[b].qs[j];
        // s = fp16(d * sum) with the unrounded float d; compare with the stored fp16 d.
        const double expect = (double)sum * ds_fp16_to_fp32(q1[b].d);
        if (fabs(ds_fp16_to_fp32(q1[b].s) - expect) > fabs(expect) * (1.0 / 1024) + 1e-7) ++bad;
    }
    CHECK(bad == 0, "Q8_1 s = d * sum(q)");
    // Zero rows quantize to zero blocks and dot to exactly 0.
    float zeros[512] = {0};
    for (int k = 0; k < N_ALL_TYPES; ++k) {
        const int t = k_all_types[k];
        unsigned char wbuf[4096], abuf[4096];
        ds_quantize_row_ref(t, zeros, wbuf, n);
        ds_quantize_activation(ds_vec_dot_type(t), x, abuf, n);
        CHECK(ds_vec_dot(t, n, wbuf, abuf) == 0.0f, "%s zero row dot", ds_type_name(t));
        ds_dequantize_row(t, wbuf, back, n);
        int nonzero = 0;
        for (int i = 0; i < n; ++i) nonzero += back[i] != 0.0f;
        CHECK(nonzero == 0, "%s zero row dequantize", ds_type_name(t));
    }
}

// ---- 7. Multi-token GEMM ---------------------------------------------------------------------------

// "  <label> kernels: <isa> (<n> types) ..." for every available ISA.
static void print_kernel_counts(const char *label, int (*has_kernel)(int isa, int weight_type)) {
    printf("  %s kernels:", label);
    for (int isa = 0; isa < DS_ISA_COUNT; ++isa) {
        if (!ds_isa_available(isa)) continue;
        int count = 0;
        for (int k = 0; k < N_ALL_TYPES; ++k) count += has_kernel(isa, k_all_types[k]);
        printf(" %s (%d types)", ds_isa_name(isa), count);
    }
    printf("\n");
}

// ds_gemm / ds_gemm_isa against ds_vec_dot_scalar for every (row, token), with strides larger than
// the rows (padding filled with garbage that must not be read) and an output stride larger than
// nrows (the padding columns must stay untouched).
// fp16 scale fields of a weight block (raw-byte tests overwrite them with sane scales).
static void weight_scale_fields(int wtype, size_t *offsets, int *count) {
    *count = 0;
    switch (wtype) {
    case DS_TYPE_Q4_0: offsets[(*count)++] = offsetof(ds_block_q4_0, d); break;
    case DS_TYPE_Q4_1: offsets[(*count)++] = offsetof(ds_block_q4_1, d); offsets[(*count)++] = offsetof(ds_block_q4_1, m); break;
    case DS_TYPE_Q5_0: offsets[(*count)++] = offsetof(ds_block_q5_0, d); break;
    case DS_TYPE_Q5_1: offsets[(*count)++] = offsetof(ds_block_q5_1, d); offsets[(*count)++] = offsetof(ds_block_q5_1, m); break;
    case DS_TYPE_Q8_0: offsets[(*count)++] = offsetof(ds_block_q8_0, d); break;
    case DS_TYPE_Q2_K: offsets[(*count)++] = offsetof(ds_block_q2_K, d); offsets[(*count)++] = offsetof(ds_block_q2_K, dmin); break;
    case DS_TYPE_Q3_K: offsets[(*count)++] = offsetof(ds_block_q3_K, d); break;
    case DS_TYPE_Q4_K: offsets[(*count)++] = offsetof(ds_block_q4_K, d); offsets[(*count)++] = offsetof(ds_block_q4_K, dmin); break;
    case DS_TYPE_Q5_K: offsets[(*count)++] = offsetof(ds_block_q5_K, d); offsets[(*count)++] = offsetof(ds_block_q5_K, dmin); break;
    case DS_TYPE_Q6_K: offsets[(*count)++] = offsetof(ds_block_q6_K, d); break;
    default: break;
    }
}

// Raw activation row: int8 quants in [-127, 127] (`extreme`: each block all +127 or all -127),
// consistent s / bsums fields.
static void raw_activation(int atype, int64_t n, unsigned char *dst, int extreme) {
    if (atype == DS_TYPE_Q8_K) {
        ds_block_q8_K *a = (ds_block_q8_K *)dst;
        for (int64_t b = 0; b < n / 256; ++b) {
            a[b].d = 0.01f + 0.001f * (float)(b % 5);
            for (int j = 0; j < 256; ++j) {
                const int v = extreme ? ((b & 1) ? -127 : 127) : (int)(next_u64() % 255) - 127;
                a[b].qs[j] = (int8_t)v;
            }
            for (int j = 0; j < 16; ++j) {
                int sum = 0;
                for (int i = 0; i < 16; ++i) sum += a[b].qs[16 * j + i];
                a[b].bsums[j] = (int16_t)sum;
            }
        }
        return;
    }
    const size_t block = (size_t)ds_type_block_bytes(atype), qs = atype == DS_TYPE_Q8_1 ? 4 : 2;
    for (int64_t b = 0; b < n / 32; ++b) {
        unsigned char *blk = dst + (size_t)b * block;
        const float d = 0.01f + 0.001f * (float)(b % 5);
        const uint16_t dh = ds_fp32_to_fp16(d);
        memcpy(blk, &dh, 2);
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            const int v = extreme ? ((b & 1) ? -127 : 127) : (int)(next_u64() % 255) - 127;
            blk[qs + j] = (unsigned char)(int8_t)v;
            sum += v;
        }
        if (atype == DS_TYPE_Q8_1) {
            const uint16_t sh = ds_fp32_to_fp16(ds_fp16_to_fp32(dh) * (float)sum);
            memcpy(blk + 2, &sh, 2);
        }
    }
}

// count rows of `stride` bytes, every byte 0xFF (fp16 0xFFFF = NaN: a kernel reading the padding
// past a row would show).
static unsigned char *padded_rows(size_t stride, int count) {
    unsigned char *p = (unsigned char *)xmalloc(stride * (size_t)count);
    memset(p, 0xFF, stride * (size_t)count);
    return p;
}

// data_mode 0: quantized random floats; 1: random raw weight bytes; 2: all-0xFF weight quants
// (every quant at its maximum) against +-127 activations, the largest integer sums possible.
static void test_gemm_shape_mode(int wtype, int64_t n, int nrows, int ntok, int data_mode) {
    const int atype = ds_vec_dot_type(wtype);
    const size_t row_bytes = (size_t)ds_row_bytes(wtype, n), act_bytes = (size_t)ds_row_bytes(atype, n);
    const size_t row_stride = row_bytes + 12, act_stride = act_bytes + 20;
    const int64_t out_stride = nrows + 3;
    unsigned char *w = padded_rows(row_stride, nrows), *act = padded_rows(act_stride, ntok);
    float *x = (float *)xmalloc((size_t)n * 4);
    float *dw = (float *)xmalloc((size_t)n * nrows * 4), *da = (float *)xmalloc((size_t)n * ntok * 4);
    size_t scale_offsets[2];
    int nscales = 0;
    weight_scale_fields(wtype, scale_offsets, &nscales);
    const size_t wblock = (size_t)ds_type_block_bytes(wtype);
    for (int r = 0; r < nrows; ++r) {
        unsigned char *row = w + (size_t)r * row_stride;
        if (data_mode == 0) {
            fill_random(x, n, 0.02f + 0.003f * (r % 11));
            if (r % 5 == 3) for (int64_t i = 0; i < n; ++i) x[i] = fabsf(x[i]);   // all-positive rows
            ds_quantize_row_ref(wtype, x, row, n);
        } else {
            for (size_t i = 0; i < row_bytes; ++i) row[i] = data_mode == 2 ? 0xFF : (unsigned char)next_u64();
            for (size_t b = 0; b < row_bytes / wblock; ++b) {
                for (int f = 0; f < nscales; ++f) {
                    const uint16_t h = ds_fp32_to_fp16((f ? -0.002f : 0.003f) * (float)(1 + (b + r) % 4));
                    memcpy(row + b * wblock + scale_offsets[f], &h, 2);
                }
            }
        }
        ds_dequantize_row(wtype, row, dw + (size_t)r * n, n);
    }
    for (int t = 0; t < ntok; ++t) {
        if (data_mode == 0) {
            fill_random(x, n, 0.5f + 0.25f * (t % 7));
            ds_quantize_activation(atype, x, act + (size_t)t * act_stride, n);
        } else {
            raw_activation(atype, n, act + (size_t)t * act_stride, data_mode == 2);
        }
        ds_dequantize_row(atype, act + (size_t)t * act_stride, da + (size_t)t * n, n);
    }
    float *expect = (float *)xmalloc((size_t)nrows * ntok * 4);
    double *tol = (double *)xmalloc((size_t)nrows * ntok * sizeof(double));
    for (int t = 0; t < ntok; ++t) {
        for (int r = 0; r < nrows; ++r) {
            const float e = ds_vec_dot_scalar(wtype, n, w + (size_t)r * row_stride, act + (size_t)t * act_stride);
            double magnitude = 0;
            for (int64_t i = 0; i < n; ++i) magnitude += fabs((double)dw[(size_t)r * n + i] * da[(size_t)t * n + i]);
            expect[(size_t)t * nrows + r] = e;
            tol[(size_t)t * nrows + r] = 1e-4 * fabs(e) + 2e-6 * magnitude + 1e-30;   // as for ds_vec_dot
        }
    }
    float *out = (float *)xmalloc((size_t)out_stride * ntok * 4);
    const float sentinel = -12345.5f;
    for (int isa = -1; isa < DS_ISA_COUNT; ++isa) {   // -1: the public ds_gemm (active ISA)
        if (isa >= 0 && !ds_isa_available(isa)) continue;
        for (int64_t i = 0; i < out_stride * ntok; ++i) out[i] = sentinel;
        if (isa < 0) ds_gemm(wtype, n, w, row_stride, nrows, act, act_stride, ntok, out, out_stride);
        else ds_gemm_isa(isa, wtype, n, w, row_stride, nrows, act, act_stride, ntok, out, out_stride);
        int bad = 0, untouched = 1, first_r = -1, first_t = -1;
        for (int t = 0; t < ntok; ++t) {
            for (int r = 0; r < nrows; ++r) {
                const float got = out[t * out_stride + r], e = expect[(size_t)t * nrows + r];
                if (!(fabs((double)got - e) <= tol[(size_t)t * nrows + r])) {
                    if (!bad++) first_r = r, first_t = t;
                }
            }
            for (int64_t r = nrows; r < out_stride; ++r) untouched &= out[t * out_stride + r] == sentinel;
        }
        const char *isa_name = isa < 0 ? "active" : ds_isa_name(isa);
        CHECK(bad == 0, "gemm %s %s data %d n=%lld rows=%d tok=%d: %d wrong, first (row %d, tok %d) %.9g vs scalar %.9g",
              isa_name, ds_type_name(wtype), data_mode, (long long)n, nrows, ntok, bad, first_r, first_t,
              bad ? out[first_t * out_stride + first_r] : 0.0, bad ? expect[(size_t)first_t * nrows + first_r] : 0.0);
        CHECK(untouched, "gemm %s %s n=%lld rows=%d tok=%d wrote past nrows", isa_name, ds_type_name(wtype),
              (long long)n, nrows, ntok);
    }
    free(w); free(act); free(x); free(dw); free(da); free(expect); free(tol); free(out);
}

static void test_gemm(void) {
    const int64_t small_lengths[] = {32, 96, 288, 576, 1056};   // 288, 576, 1056: not multiples of 256
    const int64_t k_lengths[] = {256, 768, 1536};
    const int64_t float_lengths[] = {1, 7, 33, 100, 300, 520};
    // (rows, tokens): row counts that are not multiples of the 16 / 8-row groups, more rows than one
    // 64-row panel, token counts 1, 3, 5, 17 and others that exercise every tile remainder.
    // Token tiles are 8 (AVX-512) / 4 (AVX2) wide with 4-, 2- and 1-token remainders (6, 7, 11).
    const int shapes[][2] = {{1, 1}, {7, 3}, {16, 5}, {23, 17}, {70, 8}, {33, 2}, {5, 13}, {64, 1}, {17, 4},
                             {9, 6}, {40, 7}, {3, 11}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int k = 0; k < N_ALL_TYPES; ++k) {
        const int t = k_all_types[k];
        const int64_t bs = ds_type_block_size(t);
        const int64_t *lengths = bs == 1 ? float_lengths : bs == 32 ? small_lengths : k_lengths;
        const int nlengths = bs == 1 ? 6 : bs == 32 ? 5 : 3;
        for (int li = 0; li < nlengths; ++li)
            for (int s = 0; s < nshapes; ++s) test_gemm_shape_mode(t, lengths[li], shapes[s][0], shapes[s][1], 0);
    }
    // n = 0: every output is an empty dot product (0), the padding stays untouched.
    float zero_out[2 * 6];
    for (int i = 0; i < 12; ++i) zero_out[i] = 7.0f;
    ds_gemm(DS_TYPE_Q4_K, 0, zero_out, 0, 5, zero_out, 0, 2, zero_out, 6);
    int zero_ok = 1;
    for (int i = 0; i < 12; ++i) zero_ok &= zero_out[i] == (i % 6 < 5 ? 0.0f : 7.0f);
    CHECK(zero_ok, "gemm with n = 0");
    // Raw weight bytes (any quant pattern) and the extreme sums for every quantized type with a kernel.
    for (int k = 0; k < N_ALL_TYPES; ++k) {
        const int t = k_all_types[k];
        if (ds_type_block_size(t) == 1 || t == DS_TYPE_Q8_1 || t == DS_TYPE_Q8_K) continue;
        const int64_t n = ds_type_block_size(t) == 32 ? 288 : 512;
        test_gemm_shape_mode(t, n, 19, 13, 1);
        test_gemm_shape_mode(t, n, 19, 13, 2);
        test_gemm_shape_mode(t, n, 5, 530, 0);   // more tokens than one 512-token block
    }
    test_gemm_shape_mode(DS_TYPE_F16, 300, 19, 530, 0);
    print_kernel_counts("gemm", ds_isa_has_gemm_kernel);
}

// ds_vec_dot_rows_multi(_isa) against ds_vec_dot_rows(_isa) once per token: bitwise equal, padding
// columns of the output untouched.
static void test_multi_shape(int wtype, int64_t n, int nrows, int ntok) {
    const int atype = ds_vec_dot_type(wtype);
    const size_t row_bytes = (size_t)ds_row_bytes(wtype, n), act_bytes = (size_t)ds_row_bytes(atype, n);
    const size_t row_stride = row_bytes + 12, act_stride = act_bytes + 20;
    const int64_t out_stride = nrows + 3;
    unsigned char *w = padded_rows(row_stride, nrows), *act = padded_rows(act_stride, ntok);
    float *x = (float *)xmalloc((size_t)n * 4);
    for (int r = 0; r < nrows; ++r) {
        fill_random(x, n, 0.02f + 0.003f * (r % 11));
        ds_quantize_row_ref(wtype, x, w + (size_t)r * row_stride, n);
    }
    for (int t = 0; t < ntok; ++t) {
        fill_random(x, n, 0.5f + 0.25f * (t % 7));
        if (atype == DS_TYPE_F32) memcpy(act + (size_t)t * act_stride, x, (size_t)n * 4);
        else ds_quantize_activation(atype, x, act + (size_t)t * act_stride, n);
    }
    float *want = (float *)xmalloc((size_t)out_stride * ntok * 4), *got = (float *)xmalloc((size_t)out_stride * ntok * 4);
    const float sentinel = -12345.5f;
    for (int isa = -1; isa < DS_ISA_COUNT; ++isa) {   // -1: the public entry points (active ISA)
        if (isa >= 0 && !ds_isa_available(isa)) continue;
        for (int64_t i = 0; i < out_stride * ntok; ++i) want[i] = got[i] = sentinel;
        for (int t = 0; t < ntok; ++t) {
            const unsigned char *a = act + (size_t)t * act_stride;
            if (isa < 0) ds_vec_dot_rows(wtype, n, w, row_stride, nrows, a, want + t * out_stride);
            else ds_vec_dot_rows_isa(isa, wtype, n, w, row_stride, nrows, a, want + t * out_stride);
        }
        if (isa < 0) ds_vec_dot_rows_multi(wtype, n, w, row_stride, nrows, act, act_stride, ntok, got, out_stride);
        else ds_vec_dot_rows_multi_isa(isa, wtype, n, w, row_stride, nrows, act, act_stride, ntok, got, out_stride);
        int bad = 0, first = -1;
        for (int64_t i = 0; i < out_stride * ntok; ++i) {
            if (memcmp(&want[i], &got[i], 4) != 0 && !bad++) first = (int)i;
        }
        CHECK(bad == 0, "multi %s %s n=%lld rows=%d tok=%d: %d differ from rows, first (row %d, tok %d) %.9g vs %.9g",
              isa < 0 ? "active" : ds_isa_name(isa), ds_type_name(wtype), (long long)n, nrows, ntok, bad,
              bad ? first % (int)out_stride : 0, bad ? first / (int)out_stride : 0, bad ? got[first] : 0.0, bad ? want[first] : 0.0);
    }
    free(w); free(act); free(x); free(want); free(got);
}

static void test_multi(void) {
    // Row counts around the 4-row groups, token counts around the 2- and 4-token passes.
    const int shapes[][2] = {{1, 1}, {4, 2}, {7, 3}, {16, 4}, {13, 5}, {64, 8}, {6, 9}, {33, 16}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int k = 0; k < N_ALL_TYPES; ++k) {
        const int t = k_all_types[k];
        if (t == DS_TYPE_Q8_1 || t == DS_TYPE_Q8_K) continue;   // activation formats, not weights
        const int64_t bs = ds_type_block_size(t);
        const int64_t n = bs == 1 ? 300 : bs == 32 ? 576 : 768;
        for (int s = 0; s < nshapes; ++s) test_multi_shape(t, n, shapes[s][0], shapes[s][1]);
    }
    for (int s = 0; s < nshapes; ++s) test_multi_shape(DS_TYPE_MXFP4, 576, shapes[s][0], shapes[s][1]);
    // Float rows shorter than one vector, and matrices past DS_FLOAT_STREAM_BYTES (4 MiB), where the
    // single-token kernel runs row by row instead of in groups of 4.
    const int float_types[] = {DS_TYPE_F32, DS_TYPE_F16, DS_TYPE_BF16};
    for (int k = 0; k < 3; ++k) {
        test_multi_shape(float_types[k], 13, 7, 5);
        test_multi_shape(float_types[k], 300, float_types[k] == DS_TYPE_F32 ? 3600 : 7200, 5);
    }
    print_kernel_counts("multi-row", ds_isa_has_multi_kernel);
}

// ---- Benchmark ------------------------------------------------------------------------------------

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void bench_one(int isa, int wtype, int64_t rows, int64_t n, double seconds) {
    const int atype = ds_vec_dot_type(wtype);
    const size_t row_bytes = (size_t)ds_row_bytes(wtype, n);
    const size_t bytes = row_bytes * (size_t)rows;
    unsigned char *w = (unsigned char *)xmalloc(bytes);
    float *x = (float *)xmalloc((size_t)n * 4);
    float *out = (float *)xmalloc((size_t)rows * 4);
    unsigned char *act = (unsigned char *)xmalloc((size_t)ds_row_bytes(atype, n) + 64);
    // Quantize one random row and replicate it with small variations (quantizing every row of a
    // large matrix with the reference quantizer would dominate the run time).
    fill_random(x, n, 0.02f);
    ds_quantize_row_ref(wtype, x, w, n);
    for (int64_t r = 1; r < rows; ++r) memcpy(w + r * row_bytes, w, row_bytes);
    for (size_t i = 0; i < bytes; i += 97) w[i] ^= (unsigned char)(i & 7);   // perturb quants a bit
    fill_random(x, n, 1.0f);
    ds_quantize_activation(atype, x, act, n);

    int iterations = 0;
    const double start = now_seconds();
    double elapsed = 0;
    do {
        ds_vec_dot_rows_isa(isa, wtype, n, w, row_bytes, rows, act, out);
        ++iterations;
        elapsed = now_seconds() - start;
    } while (elapsed < seconds);
    const double gbps = (double)bytes * iterations / elapsed / 1e9;
    printf("  %-10s %-5s %6lld x %-5lld %8.1f KiB  %7.2f GB/s  %8.1f us/matvec\n", ds_isa_name(isa),
           ds_type_name(wtype), (long long)rows, (long long)n, bytes / 1024.0, gbps, elapsed / iterations * 1e6);
    free(w);
    free(x);
    free(out);
    free(act);
}

static void run_bench(double seconds) {
    char features[256];
    ds_cpu_features(features, sizeof features);
    printf("CPU features: %s\n", features);
    printf("ds_vec_dot_rows, single thread, GB/s of weight bytes (rows x n):\n");
    const int types[] = {DS_TYPE_Q4_1, DS_TYPE_Q8_0, DS_TYPE_Q5_0, DS_TYPE_Q4_K, DS_TYPE_Q6_K,
                         DS_TYPE_F32, DS_TYPE_F16, DS_TYPE_Q4_0, DS_TYPE_Q5_1, DS_TYPE_Q2_K,
                         DS_TYPE_Q3_K, DS_TYPE_Q5_K, DS_TYPE_BF16};
    const int64_t shapes[][2] = {{576, 1536}, {640, 2048}};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; ++k) {
        for (size_t s = 0; s < 2; ++s) {
            for (int isa = DS_ISA_COUNT - 1; isa >= 0; --isa) {
                if (!ds_isa_available(isa)) continue;
                if (isa != DS_ISA_SCALAR && !ds_isa_has_kernel(isa, types[k])) continue;
                bench_one(isa, types[k], shapes[s][0], shapes[s][1], isa == DS_ISA_SCALAR ? seconds / 4 : seconds);
            }
        }
    }
    printf("Larger than cache (memory-bound), active ISA:\n");
    bench_one(ds_active_isa(), DS_TYPE_Q4_1, 49152, 576, seconds * 2);
    bench_one(ds_active_isa(), DS_TYPE_Q8_0, 49152, 576, seconds * 2);
    bench_one(ds_active_isa(), DS_TYPE_Q4_1, 1536 * 8, 1536, seconds * 2);
}

// Prefill benchmark: rows x n weights times ntok tokens, single thread. "before" = one
// ds_vec_dot_rows per token over each 64-row slice (what prefill did), "gemm" = one ds_gemm per
// 64-row slice (what a thread of the caller does), "gemm all" = one ds_gemm over all rows.
static void bench_gemm_one(int isa, int wtype, int64_t rows, int64_t n, int64_t ntok, double seconds) {
    const int atype = ds_vec_dot_type(wtype);
    const size_t row_bytes = (size_t)ds_row_bytes(wtype, n), act_bytes = (size_t)ds_row_bytes(atype, n);
    unsigned char *w = (unsigned char *)xmalloc(row_bytes * (size_t)rows);
    unsigned char *act = (unsigned char *)xmalloc(act_bytes * (size_t)ntok);
    float *x = (float *)xmalloc((size_t)n * 4);
    float *out = (float *)xmalloc((size_t)rows * ntok * 4);
    fill_random(x, n, 0.02f);
    ds_quantize_row_ref(wtype, x, w, n);
    for (int64_t r = 1; r < rows; ++r) memcpy(w + r * row_bytes, w, row_bytes);
    for (size_t i = 0; i < row_bytes * (size_t)rows; i += 97) w[i] ^= (unsigned char)(i & 7);
    for (int64_t t = 0; t < ntok; ++t) {
        fill_random(x, n, 1.0f);
        ds_quantize_activation(atype, x, act + t * act_bytes, n);
    }
    const int64_t slice = 64;
    double times[4];
    for (int mode = 0; mode < 4; ++mode) {
        int iterations = 0;
        const double start = now_seconds();
        double elapsed = 0;
        do {
            if (mode == 0) {
                for (int64_t r0 = 0; r0 < rows; r0 += slice) {
                    const int64_t nr = rows - r0 < slice ? rows - r0 : slice;
                    for (int64_t t = 0; t < ntok; ++t)
                        ds_vec_dot_rows_isa(isa, wtype, n, w + r0 * row_bytes, row_bytes, nr, act + t * act_bytes,
                                            out + t * rows + r0);
                }
            } else if (mode == 1) {
                for (int64_t r0 = 0; r0 < rows; r0 += slice) {
                    const int64_t nr = rows - r0 < slice ? rows - r0 : slice;
                    ds_gemm_isa(isa, wtype, n, w + r0 * row_bytes, row_bytes, nr, act, act_bytes, ntok, out + r0, rows);
                }
            } else if (mode == 2) {
                ds_gemm_isa(isa, wtype, n, w, row_bytes, rows, act, act_bytes, ntok, out, rows);
            } else {
                for (int64_t r0 = 0; r0 < rows; r0 += slice) {
                    const int64_t nr = rows - r0 < slice ? rows - r0 : slice;
                    ds_vec_dot_rows_multi_isa(isa, wtype, n, w + r0 * row_bytes, row_bytes, nr, act, act_bytes, ntok,
                                              out + r0, rows);
                }
            }
            ++iterations;
            elapsed = now_seconds() - start;
        } while (elapsed < seconds);
        times[mode] = elapsed / iterations;
    }
    const double ops = 2.0 * rows * n * ntok;
    printf("  %-10s %-5s %5lld x %-5lld x %3lld tok  before %7.2f ms %6.1f GOP/s | gemm %7.2f ms %6.1f GOP/s "
           "x%.2f | gemm all rows %7.2f ms x%.2f | multi-row (bitwise) %7.2f ms x%.2f\n",
           ds_isa_name(isa), ds_type_name(wtype), (long long)rows, (long long)n, (long long)ntok,
           times[0] * 1e3, ops / times[0] / 1e9, times[1] * 1e3, ops / times[1] / 1e9, times[0] / times[1],
           times[2] * 1e3, times[0] / times[2], times[3] * 1e3, times[0] / times[3]);
    free(w); free(act); free(x); free(out);
}

static void run_bench_gemm(double seconds, int64_t ntok) {
    char features[256];
    ds_cpu_features(features, sizeof features);
    printf("CPU features: %s\n", features);
    printf("prefill, single thread (GOP/s = 2*rows*n*tokens / time):\n");
    const struct { int type; int64_t rows, n; } cases[] = {
        {DS_TYPE_Q5_0, 640, 2048}, {DS_TYPE_Q4_1, 576, 1536}, {DS_TYPE_Q4_K, 640, 2048},
        {DS_TYPE_Q6_K, 640, 2048}, {DS_TYPE_Q8_0, 640, 2048}, {DS_TYPE_Q4_0, 640, 2048},
        {DS_TYPE_Q5_1, 576, 1536}, {DS_TYPE_Q5_K, 640, 2048}, {DS_TYPE_Q3_K, 640, 2048},
        {DS_TYPE_Q2_K, 640, 2048}, {DS_TYPE_F32, 576, 1536}, {DS_TYPE_F16, 576, 1536},
        {DS_TYPE_BF16, 576, 1536},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        for (int isa = DS_ISA_COUNT - 1; isa >= 1; --isa) {
            if (!ds_isa_available(isa)) continue;
            bench_gemm_one(isa, cases[k].type, cases[k].rows, cases[k].n, ntok, seconds);
        }
    }
}

int test_packed(int *checks);   // test_packed.c
void bench_packed(double seconds);

int test_iquants(const char *fixtures, int *checks);   // test_iquant.c

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--bench-gemm") == 0) {
        run_bench_gemm(argc >= 3 ? atof(argv[2]) : 0.5, argc >= 4 ? atoll(argv[3]) : 512);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--bench-packed") == 0) {
        bench_packed(argc >= 3 ? atof(argv[2]) : 0.2);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--bench") == 0) {
        run_bench(argc >= 3 ? atof(argv[2]) : 0.3);
        return 0;
    }
    const char *fixtures = argc >= 2 ? argv[1] : "Fixtures/quant";
    char features[256];
    ds_cpu_features(features, sizeof features);
    printf("CPU features: %s\n", features);
    printf("[1] type traits\n");
    test_type_traits();
    printf("[2] fp16/bf16 conversions\n");
    test_conversions();
    printf("[3] golden fixtures in %s\n", fixtures);
    test_fixtures(fixtures);
    printf("[4,5] dot products (SIMD vs scalar, scalar vs dequantized)\n");
    test_dots();
    printf("[6] activation formats and zero rows\n");
    test_activation_formats();
    printf("[7] multi-token gemm (every ISA vs scalar, odd shapes and strides)\n");
    test_gemm();
    test_multi();
    printf("[8] packed weights (round trip, token-count invariance, equal to the row-major kernels)\n");
    int packed_checks = 0;
    g_failures += test_packed(&packed_checks);
    g_checks += packed_checks;
    printf("[9] i-quants (traits, dequantization goldens from gguf, dots vs dequantized, multi-row, gemm)\n");
    int iquant_checks = 0;
    g_failures += test_iquants(fixtures, &iquant_checks);
    g_checks += iquant_checks;
    printf("%d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
