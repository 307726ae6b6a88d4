#include "ds_ops.h"
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

static inline void ds_widen_f16(const _Float16 *x, float *y, int64_t n) {
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

// F32 rows <-> F16 rows (KV cache writes and reads), round to nearest even.
DS_CLONES void ds_f32_to_f16_row(const float *x, void *y, int64_t n) {
    _Float16 *h = (_Float16 *)y;
    for (int64_t i = 0; i < n; i++) h[i] = (_Float16)x[i];
}

DS_CLONES void ds_f16_to_f32_row(const void *x, float *y, int64_t n) {
    const _Float16 *h = (const _Float16 *)x;
    for (int64_t i = 0; i < n; i++) y[i] = (float)h[i];
}
