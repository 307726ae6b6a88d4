#include "ds_ops.h"
#include "ds_quant.h"
#include "ds_internal.h"
#include <math.h>
#include <string.h>

// Function multi-versioning: the compiler emits an AVX-512, an AVX2 and a baseline copy of each
// loop and the loader picks one for this CPU (ifunc). Other platforms get the plain loop.
#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define DS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DS_CLONES
#endif

// Tree reduction in 16 independent lanes so the vectoriser keeps full-width FMAs.
DS_CLONES float ds_dot_f32(const float *a, const float *b, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] = fmaf(a[i + l], b[i + l], acc[l]);
    float tail = 0;
    for (; i < n; i++) tail = fmaf(a[i], b[i], tail);
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0] + tail;
}

DS_CLONES void ds_axpy_f32(float *y, const float *x, float alpha, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = fmaf(alpha, x[i], y[i]);
}

void ds_rmsnorm_f32(const float *x, const float *w, float *out, int64_t n, float eps, float weight_offset) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    if (w) for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * (w[i] + weight_offset);
    else for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale;
}

// e^x for x in [-87, 88], branch-free so the loops below vectorize: x = n·ln2 + r, |r| ≤ ln2/2,
// e^r by a degree-6 Taylor/Horner polynomial (relative error < 2e-7), 2^n through the exponent bits.
static inline float ds_exp_approx(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_roundf(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693145751953125f, x);         // ln2 split in two for accuracy
    r = fmaf(n, -1.428606765330187045e-06f, r);
    float p = 1.0f / 720.0f;
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// gate[i] = silu(gate[i]) · up[i],  silu(g) = g / (1 + e^-g)
DS_CLONES void ds_swiglu_f32(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + ds_exp_approx(-g)) * up[i];
    }
}

// DeepSeek V4's clamped SwiGLU: gate[i] = silu(min(gate[i], limit)) · clamp(up[i], -limit, limit)
DS_CLONES void ds_swiglu_clamped_f32(float *gate, const float *up, int64_t n, float limit) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i] < limit ? gate[i] : limit;
        float u = up[i] < -limit ? -limit : (up[i] > limit ? limit : up[i]);
        gate[i] = g / (1.0f + ds_exp_approx(-g)) * u;
    }
}

// One token of the gated delta rule for one head, state S[i][m] (i < dk key dims, m < dv value dims,
// rows contiguous in m):  S ← decay·S;  δ = β (v − Sᵀk);  S += k δᵀ;  out = Sᵀq.
DS_CLONES void ds_gated_delta_step_f32(float *S, const float *k, const float *v, const float *q, float beta, float decay,
                                       int64_t dk, int64_t dv, float *delta, float *out) {
    for (int64_t m = 0; m < dv; m++) delta[m] = 0;
    for (int64_t i = 0; i < dk; i++) {
        float *row = S + i * dv;
        const float ki = k[i];
        for (int64_t m = 0; m < dv; m++) { row[m] *= decay; delta[m] += row[m] * ki; }
    }
    for (int64_t m = 0; m < dv; m++) { delta[m] = beta * (v[m] - delta[m]); out[m] = 0; }
    for (int64_t i = 0; i < dk; i++) {
        float *row = S + i * dv;
        const float ki = k[i], qi = q[i];
        for (int64_t m = 0; m < dv; m++) { row[m] += ki * delta[m]; out[m] += row[m] * qi; }
    }
}

// Causal depthwise conv + SiLU over T rows: window holds K − 1 earlier rows then the T new ones
// ([K − 1 + T, C]); taps are [K, C] (tap K − 1 multiplies the current row).
DS_CLONES void ds_causal_conv_silu_f32(const float *window, const float *taps, int64_t T, int64_t C, int64_t K, float *out) {
    for (int64_t t = 0; t < T; t++) {
        float *o = out + t * C;
        for (int64_t c = 0; c < C; c++) o[c] = 0;
        for (int64_t j = 0; j < K; j++) {
            const float *x = window + (t + j) * C, *w = taps + j * C;
            for (int64_t c = 0; c < C; c++) o[c] += x[c] * w[c];
        }
        for (int64_t c = 0; c < C; c++) o[c] = o[c] / (1.0f + ds_exp_approx(-o[c]));
    }
}

// gate[i] = gelu_tanh(gate[i]) · up[i],  tanh(u) = 1 - 2 / (e^{2u} + 1)
DS_CLONES void ds_geglu_f32(float *gate, const float *up, int64_t n) {
    const float c = 0.7978845608028654f; // sqrt(2/pi)
    for (int64_t i = 0; i < n; i++) {
        float x = gate[i];
        float u = c * (x + 0.044715f * x * x * x);
        float t = 1.0f - 2.0f / (ds_exp_approx(2.0f * u) + 1.0f);
        gate[i] = 0.5f * x * (1.0f + t) * up[i];
    }
}

void ds_attend_head_f32(const float *q, const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                        int64_t j_begin, int64_t j_end, int64_t head_dim, float scale, float softcap,
                        float *out, float *scratch) {
    int64_t n = j_end - j_begin;
    memset(out, 0, sizeof(float) * (size_t)head_dim);
    if (n <= 0) return;
    float maxv = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        float s = ds_dot_f32(q, k + (j_begin + j) * k_stride, head_dim) * scale;
        if (softcap > 0) s = softcap * tanhf(s / softcap);
        scratch[j] = s;
        if (s > maxv) maxv = s;
    }
    float sum = 0;
    for (int64_t j = 0; j < n; j++) { float e = expf(scratch[j] - maxv); scratch[j] = e; sum += e; }
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; j++) ds_axpy_f32(out, v + (j_begin + j) * v_stride, scratch[j] * inv, head_dim);
}

double ds_log_softmax_at(const float *logits, int64_t n, int64_t index) {
    float maxv = -INFINITY;
    for (int64_t i = 0; i < n; i++) if (logits[i] > maxv) maxv = logits[i];
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)expf(logits[i] - maxv);
    return (double)(logits[index] - maxv) - log(sum);
}

// Attention kernels, once per KV element type (F32 rows, F16 rows).
#define DS_QB 16
#define DS_KB 16
#define DS_KV_T float
#define DS_KV_LOAD(x) (x)
#define DS_ATTEND_FN(name) name##_f32
#include "ds_attend_kernels.h"
#undef DS_KV_T
#undef DS_KV_LOAD
#undef DS_ATTEND_FN

static inline __attribute__((always_inline)) void ds_widen_f16(const _Float16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)x[i];
}
#define DS_KV_T _Float16
#define DS_KV_LOAD(x) ((float)(x))
#define DS_KV_WIDEN(src, dst, n) ds_widen_f16((src), (dst), (n))
#define DS_ATTEND_FN(name) name##_f16
#include "ds_attend_kernels.h"
#undef DS_KV_T
#undef DS_KV_LOAD
#undef DS_KV_WIDEN
#undef DS_ATTEND_FN

// Q8_0 rows (blocks of 32: fp16 scale + 32 int8), strides in bytes: the prompt kernel widens each block of
// 16 rows; decode goes through ds_attend_group_q8_0 below.
static inline __attribute__((always_inline)) void ds_widen_q8_0(const uint8_t *x, float *y, int64_t n) {
    // Same values as ds_dequantize_row(Q8_0): y = fp16 scale · int8, written so the clones vectorize it.
    for (int64_t b = 0; b < n / 32; b++, x += 34, y += 32) {
        _Float16 h;
        memcpy(&h, x, 2);
        const float d = (float)h;
        const int8_t *q = (const int8_t *)(x + 2);
        for (int i = 0; i < 32; i++) y[i] = d * (float)q[i];
    }
}
#define DS_KV_T uint8_t
#define DS_KV_LOAD(x) ((float)(x))
#define DS_KV_WIDEN(src, dst, n) ds_widen_q8_0((src), (dst), (n))
#define DS_KV_BLOCK_ONLY
#define DS_ATTEND_FN(name) name##_q8_0
#include "ds_attend_kernels.h"
#undef DS_KV_T
#undef DS_KV_LOAD
#undef DS_KV_WIDEN
#undef DS_KV_BLOCK_ONLY
#undef DS_ATTEND_FN

#define DS_Q8_CHUNK 256
// Decode over Q8_0 rows: chunks of up to 256 positions are widened to F32 and run through the F32
// kernel as split-K partials, merged with the running max / exp-sum (same result as one pass).
DS_CLONES void ds_attend_group_q8_0(const float *q, int64_t g, int64_t q_stride,
                          const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                          const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                          int64_t j_begin, int64_t j_end, int64_t head_dim, int64_t v_dim, float scale,
                          float softcap, float *out, int64_t out_stride, float *scratch,
                          float *part_max, float *part_sum) {
    const uint8_t *kb = (const uint8_t *)k, *vb = (const uint8_t *)v;
    const int64_t page_mask = ((int64_t)1 << page_shift) - 1;
    float *kt = scratch;                                   // [C][head_dim]
    float *vt = kt + DS_Q8_CHUNK * head_dim;               // [C][v_dim]
    float *acc = vt + DS_Q8_CHUNK * v_dim;                 // [g][v_dim]
    float *part = acc + g * v_dim;                         // [g][v_dim]
    float *m = part + g * v_dim, *l = m + g, *pm = l + g, *ps = pm + g;
    float *scores = ps + g;                                // [g][C]
    for (int64_t i = 0; i < g; i++) { m[i] = -INFINITY; l[i] = 0; }
    memset(acc, 0, sizeof(float) * (size_t)(g * v_dim));
    for (int64_t c0 = j_begin; c0 < j_end; c0 += DS_Q8_CHUNK) {
        const int64_t n = (j_end - c0) < DS_Q8_CHUNK ? (j_end - c0) : DS_Q8_CHUNK;
        for (int64_t r = 0; r < n; r++) {
            const int64_t j = c0 + r;
            const uint8_t *kr = pages ? kb + (int64_t)pages[j >> page_shift] * k_page_stride + (j & page_mask) * k_stride : kb + j * k_stride;
            const uint8_t *vr = pages ? vb + (int64_t)pages[j >> page_shift] * v_page_stride + (j & page_mask) * v_stride : vb + j * v_stride;
            ds_widen_q8_0(kr, kt + r * head_dim, head_dim);
            ds_widen_q8_0(vr, vt + r * v_dim, v_dim);
        }
        ds_attend_group_f32(q, g, q_stride, kt, head_dim, vt, v_dim, NULL, 0, 0, 0, 0, n, head_dim, v_dim, scale, softcap,
                            part, v_dim, scores, pm, ps);
        for (int64_t i = 0; i < g; i++) {
            const float mn = pm[i] > m[i] ? pm[i] : m[i];
            if (mn == -INFINITY) continue;
            const float a = m[i] == -INFINITY ? 0.0f : expf(m[i] - mn), b = pm[i] == -INFINITY ? 0.0f : expf(pm[i] - mn);
            for (int64_t d = 0; d < v_dim; d++) acc[i * v_dim + d] = acc[i * v_dim + d] * a + part[i * v_dim + d] * b;
            l[i] = l[i] * a + ps[i] * b;
            m[i] = mn;
        }
    }
    for (int64_t i = 0; i < g; i++) {
        float *o = out + i * out_stride;
        if (part_max) { part_max[i] = m[i]; part_sum[i] = l[i]; }
        const float inv = part_max ? 1.0f : (l[i] > 0 ? 1.0f / l[i] : 0.0f);
        for (int64_t d = 0; d < v_dim; d++) o[d] = acc[i * v_dim + d] * inv;
    }
}

// F32 rows <-> F16 rows (KV cache writes and reads), round to nearest even.
DS_CLONES void ds_f32_to_f16_row(const float *x, void *y, int64_t n) {
    _Float16 *h = (_Float16 *)y;
    for (int64_t i = 0; i < n; i++) h[i] = (_Float16)x[i];
}

DS_CLONES void ds_f16_to_f32_row(const void *x, float *y, int64_t n) {
    const _Float16 *h = (const _Float16 *)x;
    for (int64_t i = 0; i < n; i++) y[i] = (float)h[i];
}

// ---- F16 <-> F32 rows (F16C when the CPU has it, exact both ways; F32 -> F16 rounds to nearest even) ----

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
__attribute__((target("avx2,f16c"))) static void f16_to_f32_f16c(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = ds_half_to_float(src[i]);
}
__attribute__((target("avx2,f16c"))) static void f32_to_f16_f16c(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = ds_float_to_half(src[i]);
}
static int has_f16c(void) {
    static int cached = -1;
    if (cached < 0) { __builtin_cpu_init(); cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"); }
    return cached;
}
#endif

void ds_convert_f16_to_f32(const uint16_t *src, float *dst, int64_t n) {
#if defined(__x86_64__) || defined(_M_X64)
    if (has_f16c()) { f16_to_f32_f16c(src, dst, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = ds_half_to_float(src[i]);
}

void ds_convert_f32_to_f16(const float *src, uint16_t *dst, int64_t n) {
#if defined(__x86_64__) || defined(_M_X64)
    if (has_f16c()) { f32_to_f16_f16c(src, dst, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = ds_float_to_half(src[i]);
}
