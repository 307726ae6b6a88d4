// bench_ggml.c — single-thread decode kernels of DwarfStar against ggml's own SIMD dots, same process,
// same blocks (not shipped, not needed by the tests). Build/run:
//   make -C Scripts/ckernels-test bench-ggml GGML=/path/to/llama.cpp/ggml [BENCH_TYPES="IQ1_M IQ2_S"]
// ggml's ggml-cpu/arch/x86/quants.c is compiled with -march=native, as llama.cpp's GGML_NATIVE build
// does. For each type: a ROWS × N weight matrix (random codes) against one Q8_K activation row, the way
// a decode step runs a matrix: ggml's llama.cpp path calls ggml_vec_dot_<type>_q8_K once per row
// (nrc = 1 on x86), DwarfStar's ds_vec_dot_rows once for the matrix. The two alternate K times; the
// times are medians; the ratio is the median of the rounds' ggml ms ÷ DwarfStar ms (> 1: DwarfStar
// faster), robust to the machine's speed drifting between rounds. Also checks that both
// give the same results (relative 1e-4).
#define _POSIX_C_SOURCE 200809L
#include "ds_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

float ggml_table_f32_f16[1 << 16];   // ggml's fp16 table, filled in main
float ggml_table_f32_e8m0_half[256];
float ggml_table_f32_ue4m3[256];
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k) { (void)x; (void)y; (void)k; abort(); }   // unused here

typedef void (*ggml_dot_fn)(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
#define DECL_DOT(name) void ggml_vec_dot_##name(int n, float *s, size_t bs, const void *vx, size_t bx, \
                                                const void *vy, size_t by, int nrc);
DECL_DOT(iq2_xxs_q8_K) DECL_DOT(iq2_xs_q8_K) DECL_DOT(iq2_s_q8_K) DECL_DOT(iq3_xxs_q8_K) DECL_DOT(iq3_s_q8_K)
DECL_DOT(iq1_s_q8_K) DECL_DOT(iq1_m_q8_K) DECL_DOT(iq4_xs_q8_K) DECL_DOT(q4_K_q8_K) DECL_DOT(q2_K_q8_K)
DECL_DOT(q3_K_q8_K)

static const struct { int type; ggml_dot_fn dot; } k_cases[] = {
    {DS_TYPE_IQ1_S, ggml_vec_dot_iq1_s_q8_K},     {DS_TYPE_IQ1_M, ggml_vec_dot_iq1_m_q8_K},
    {DS_TYPE_IQ2_XXS, ggml_vec_dot_iq2_xxs_q8_K}, {DS_TYPE_IQ2_XS, ggml_vec_dot_iq2_xs_q8_K},
    {DS_TYPE_IQ2_S, ggml_vec_dot_iq2_s_q8_K},     {DS_TYPE_IQ3_XXS, ggml_vec_dot_iq3_xxs_q8_K},
    {DS_TYPE_IQ3_S, ggml_vec_dot_iq3_s_q8_K},     {DS_TYPE_IQ4_XS, ggml_vec_dot_iq4_xs_q8_K},
    {DS_TYPE_Q2_K, ggml_vec_dot_q2_K_q8_K},       {DS_TYPE_Q3_K, ggml_vec_dot_q3_K_q8_K},
    {DS_TYPE_Q4_K, ggml_vec_dot_q4_K_q8_K},
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), (int)e - 25);
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits |= sign;
    memcpy(&v, &bits, 4);
    return v;
}

static int type_wanted(const char *name) {
    const char *want = getenv("BENCH_TYPES");
    if (!want || !*want) return 1;
    const size_t len = strlen(name);
    for (const char *p = want; (p = strstr(p, name)) != NULL; p += len)
        if ((p == want || p[-1] == ' ' || p[-1] == ',') && (p[len] == 0 || p[len] == ' ' || p[len] == ',')) return 1;
    return 0;
}

int main(int argc, char **argv) {
    const int64_t rows = argc > 1 ? atoll(argv[1]) : 2048, n = argc > 2 ? atoll(argv[2]) : 2048;
    const int rounds = argc > 3 ? atoi(argv[3]) : 15;
    for (int i = 0; i < 1 << 16; ++i) ggml_table_f32_f16[i] = f16_to_f32((uint16_t)i);
    srand(7);
    float *x = malloc((size_t)n * 4), *out_ds = malloc((size_t)rows * 4), *out_gg = malloc((size_t)rows * 4), *out_one = malloc((size_t)rows * 4);
    for (int64_t i = 0; i < n; ++i) x[i] = (float)rand() / RAND_MAX * 2 - 1;
    void *act = malloc((size_t)ds_row_bytes(DS_TYPE_Q8_K, n));
    ds_quantize_activation(DS_TYPE_Q8_K, x, act, n);
    printf("single thread, %lld x %lld, %d alternating rounds, medians (ISA %s)\n", (long long)rows, (long long)n,
           rounds, ds_isa_name(ds_active_isa()));
    printf("| type | ggml ms | DwarfStar ms | ggml ÷ DwarfStar | DwarfStar, a row at a time |\n| --- | ---: | ---: | ---: | ---: |\n");
    for (size_t c = 0; c < sizeof k_cases / sizeof k_cases[0]; ++c) {
        const int type = k_cases[c].type;
        if (!type_wanted(ds_type_name(type))) continue;
        const size_t row_bytes = (size_t)ds_row_bytes(type, n);
        void *w = malloc(row_bytes * (size_t)rows);
        if (!ds_random_iquant_blocks(type, 11, 0.02f, w, n * rows)) {
            float *wf = malloc((size_t)n * 4);   // the K-quants: quantize random rows
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t i = 0; i < n; ++i) wf[i] = ((float)rand() / RAND_MAX * 2 - 1) * 0.02f;
                ds_quantize_row_ref(type, wf, (char *)w + r * row_bytes, n);
            }
            free(wf);
        }
        double t_gg[256], t_ds[256], t_one[256], ratio[256];
        const int k = rounds > 256 ? 256 : rounds;
        for (int round = -1; round < k; ++round) {   // round -1 warms both up
            double t0 = now_s();
            for (int64_t r = 0; r < rows; ++r) k_cases[c].dot((int)n, out_gg + r, 0, (const char *)w + r * row_bytes, 0, act, 0, 1);
            double t1 = now_s();
            ds_vec_dot_rows(type, n, w, row_bytes, rows, act, out_ds);
            double t2 = now_s();
            for (int64_t r = 0; r < rows; ++r) out_one[r] = ds_vec_dot(type, n, (const char *)w + r * row_bytes, act);
            double t3 = now_s();
            if (round >= 0) { t_gg[round] = (t1 - t0) * 1e3; t_ds[round] = (t2 - t1) * 1e3; t_one[round] = (t3 - t2) * 1e3; ratio[round] = (t1 - t0) / (t2 - t1); }
        }
        int bad = 0;
        for (int64_t r = 0; r < rows; ++r)
            if (fabsf(out_ds[r] - out_gg[r]) > 1e-4f * (fabsf(out_gg[r]) + 1e-3f)) ++bad;
        qsort(t_gg, (size_t)k, sizeof(double), cmp_double);
        qsort(t_ds, (size_t)k, sizeof(double), cmp_double);
        qsort(t_one, (size_t)k, sizeof(double), cmp_double);
        qsort(ratio, (size_t)k, sizeof(double), cmp_double);
        printf("| %s | %.3f | %.3f | %.2f× | %.3f |%s\n", ds_type_name(type), t_gg[k / 2], t_ds[k / 2], ratio[k / 2], t_one[k / 2],
               bad ? "  (results differ!)" : "");
        free(w);
    }
    free(x); free(out_ds); free(out_gg); free(out_one); free(act);
    return 0;
}
