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

void ds_swiglu_f32(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void ds_geglu_f32(float *gate, const float *up, int64_t n) {
    const float c = 0.7978845608028654f; // sqrt(2/pi)
    for (int64_t i = 0; i < n; i++) {
        float x = gate[i];
        float g = 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
        gate[i] = g * up[i];
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

DS_CLONES void ds_attend_group_f32(const float *q, int64_t g, int64_t q_stride,
                                   const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                                   int64_t j_begin, int64_t j_end, int64_t head_dim, float scale, float softcap,
                                   float *out, int64_t out_stride, float *scratch) {
    int64_t n = j_end - j_begin;
    for (int64_t i = 0; i < g; i++) memset(out + i * out_stride, 0, sizeof(float) * (size_t)head_dim);
    if (n <= 0) return;
    // Scores s[i][j] = scale · q_i · k_j (each k_j read once for all heads).
    for (int64_t j = 0; j < n; j++) {
        const float *kj = k + (j_begin + j) * k_stride;
        for (int64_t i = 0; i < g; i++) {
            float s = ds_dot_f32(q + i * q_stride, kj, head_dim) * scale;
            if (softcap > 0) s = softcap * tanhf(s / softcap);
            scratch[i * n + j] = s;
        }
    }
    // Softmax per head.
    for (int64_t i = 0; i < g; i++) {
        float *s = scratch + i * n, maxv = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; j++) if (s[j] > maxv) maxv = s[j];
        for (int64_t j = 0; j < n; j++) { s[j] = expf(s[j] - maxv); sum += s[j]; }
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < n; j++) s[j] *= inv;
    }
    // out_i = Σ_j p[i][j] v_j (each v_j read once).
    for (int64_t j = 0; j < n; j++) {
        const float *vj = v + (j_begin + j) * v_stride;
        for (int64_t i = 0; i < g; i++) {
            float p = scratch[i * n + j];
            float *o = out + i * out_stride;
            for (int64_t d = 0; d < head_dim; d++) o[d] = fmaf(p, vj[d], o[d]);
        }
    }
}
