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

DS_CLONES void ds_attend_group_f32(const float *q, int64_t g, int64_t q_stride,
                                   const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                                   const int32_t *pages, int64_t page_shift, int64_t k_page_stride,
                                   int64_t v_page_stride, int64_t j_begin, int64_t j_end, int64_t head_dim,
                                   int64_t v_dim, float scale, float softcap, float *out, int64_t out_stride,
                                   float *scratch, float *part_max, float *part_sum) {
    int64_t n = j_end - j_begin;
    if (part_max && n <= 0) for (int64_t i = 0; i < g; i++) { part_max[i] = -INFINITY; part_sum[i] = 0; }
    const int64_t page_mask = ((int64_t)1 << page_shift) - 1;
    // Row j of K (V): contiguous, or through the page table (page pages[j >> shift], row j & mask).
#define DS_K_ROW(j) (pages ? k + (int64_t)pages[(j) >> page_shift] * k_page_stride + ((j) & page_mask) * k_stride \
                           : k + (j) * k_stride)
#define DS_V_ROW(j) (pages ? v + (int64_t)pages[(j) >> page_shift] * v_page_stride + ((j) & page_mask) * v_stride \
                           : v + (j) * v_stride)
    for (int64_t i = 0; i < g; i++) memset(out + i * out_stride, 0, sizeof(float) * (size_t)v_dim);
    if (n <= 0) return;
    // Scores s[i][j] = scale · q_i · k_j: each k_j is loaded once per chunk of up to 4 heads, with 16
    // independent lanes per head (one zmm each) reduced at the end.
    // Chunks of 4 heads: each K row loaded once feeds 4 heads.
    int64_t hq = 0;
    for (; hq + 4 <= g; hq += 4) {
        const float *q0 = q + hq * q_stride, *q1 = q0 + q_stride, *q2 = q1 + q_stride, *q3 = q2 + q_stride;
        for (int64_t j = 0; j < n; j++) {
            const float *kj = DS_K_ROW(j_begin + j);
            float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
            int64_t d = 0;
            for (; d + 16 <= head_dim; d += 16)
                for (int l = 0; l < 16; l++) {
                    float kv = kj[d + l];
                    a0[l] = fmaf(q0[d + l], kv, a0[l]); a1[l] = fmaf(q1[d + l], kv, a1[l]);
                    a2[l] = fmaf(q2[d + l], kv, a2[l]); a3[l] = fmaf(q3[d + l], kv, a3[l]);
                }
            float r0 = 0, r1 = 0, r2 = 0, r3 = 0;
            for (; d < head_dim; d++) { r0 += q0[d] * kj[d]; r1 += q1[d] * kj[d]; r2 += q2[d] * kj[d]; r3 += q3[d] * kj[d]; }
            for (int l = 0; l < 16; l++) { r0 += a0[l]; r1 += a1[l]; r2 += a2[l]; r3 += a3[l]; }
            scratch[(hq + 0) * n + j] = r0 * scale; scratch[(hq + 1) * n + j] = r1 * scale;
            scratch[(hq + 2) * n + j] = r2 * scale; scratch[(hq + 3) * n + j] = r3 * scale;
        }
    }
    // Remaining heads (1-3, e.g. decode tasks of 2 heads): 4 K rows at a time per head.
    for (; hq < g; hq++) {
        const float *qi = q + hq * q_stride;
        float *si = scratch + hq * n;
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const float *k0 = DS_K_ROW(j_begin + j), *k1 = DS_K_ROW(j_begin + j + 1);
            const float *k2 = DS_K_ROW(j_begin + j + 2), *k3 = DS_K_ROW(j_begin + j + 3);
            float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
            int64_t d = 0;
            for (; d + 16 <= head_dim; d += 16)
                for (int l = 0; l < 16; l++) {
                    float qv = qi[d + l];
                    a0[l] = fmaf(qv, k0[d + l], a0[l]); a1[l] = fmaf(qv, k1[d + l], a1[l]);
                    a2[l] = fmaf(qv, k2[d + l], a2[l]); a3[l] = fmaf(qv, k3[d + l], a3[l]);
                }
            float r0 = 0, r1 = 0, r2 = 0, r3 = 0;
            for (; d < head_dim; d++) { r0 += qi[d] * k0[d]; r1 += qi[d] * k1[d]; r2 += qi[d] * k2[d]; r3 += qi[d] * k3[d]; }
            for (int l = 0; l < 16; l++) { r0 += a0[l]; r1 += a1[l]; r2 += a2[l]; r3 += a3[l]; }
            si[j] = r0 * scale; si[j + 1] = r1 * scale; si[j + 2] = r2 * scale; si[j + 3] = r3 * scale;
        }
        for (; j < n; j++) si[j] = ds_dot_f32(qi, DS_K_ROW(j_begin + j), head_dim) * scale;
    }
    if (softcap > 0)
        for (int64_t idx = 0; idx < g * n; idx++) scratch[idx] = softcap * tanhf(scratch[idx] / softcap);
    // Softmax per head.
    for (int64_t i = 0; i < g; i++) {
        float *s = scratch + i * n, maxv = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; j++) if (s[j] > maxv) maxv = s[j];
        for (int64_t j = 0; j < n; j++) s[j] = ds_exp_approx(s[j] - maxv);
        for (int64_t j = 0; j < n; j++) sum += s[j];
        if (part_max) { part_max[i] = maxv; part_sum[i] = sum; continue; }   // split-K: normalised later
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < n; j++) s[j] *= inv;
    }
    // out_i = Σ_j p[i][j] v_j, register-blocked: 4 heads × 64 values of accumulators (16 zmm) stay in
    // registers over all j, so each V slice load feeds 4 FMAs and nothing is re-stored per j.
    int64_t i = 0;
    for (; i + 4 <= g; i += 4) {
        const float *p0 = scratch + i * n, *p1 = p0 + n, *p2 = p1 + n, *p3 = p2 + n;
        int64_t d0 = 0;
        for (; d0 + 64 <= v_dim; d0 += 64) {
            float a0[64] = {0}, a1[64] = {0}, a2[64] = {0}, a3[64] = {0};
            for (int64_t j = 0; j < n; j++) {
                const float *vj = DS_V_ROW(j_begin + j) + d0;
                const float w0 = p0[j], w1 = p1[j], w2 = p2[j], w3 = p3[j];
                for (int l = 0; l < 64; l++) {
                    const float x = vj[l];
                    a0[l] = fmaf(w0, x, a0[l]); a1[l] = fmaf(w1, x, a1[l]);
                    a2[l] = fmaf(w2, x, a2[l]); a3[l] = fmaf(w3, x, a3[l]);
                }
            }
            float *o0 = out + i * out_stride + d0;
            for (int l = 0; l < 64; l++) {
                o0[l] = a0[l]; o0[out_stride + l] = a1[l]; o0[2 * out_stride + l] = a2[l]; o0[3 * out_stride + l] = a3[l];
            }
        }
        for (int64_t j = 0; j < n && d0 < v_dim; j++) {
            const float *vj = DS_V_ROW(j_begin + j);
            for (int k = 0; k < 4; k++) {
                const float p = scratch[(i + k) * n + j];
                float *o = out + (i + k) * out_stride;
                for (int64_t d = d0; d < v_dim; d++) o[d] = fmaf(p, vj[d], o[d]);
            }
        }
    }
    // Remaining heads one at a time, 64 values of accumulators in registers.
    for (; i < g; i++) {
        const float *pi = scratch + i * n;
        float *o = out + i * out_stride;
        int64_t d0 = 0;
        for (; d0 + 64 <= v_dim; d0 += 64) {
            float a[64] = {0};
            for (int64_t j = 0; j < n; j++) {
                const float *vj = DS_V_ROW(j_begin + j) + d0;
                const float w = pi[j];
                for (int l = 0; l < 64; l++) a[l] = fmaf(w, vj[l], a[l]);
            }
            for (int l = 0; l < 64; l++) o[d0 + l] = a[l];
        }
        for (int64_t j = 0; j < n && d0 < v_dim; j++) {
            const float *vj = DS_V_ROW(j_begin + j);
            for (int64_t d = d0; d < v_dim; d++) o[d] = fmaf(pi[j], vj[d], o[d]);
        }
    }
}
#undef DS_K_ROW
#undef DS_V_ROW

// ---- Flash-style attention for a block of queries -----------------------------------------------------
// Up to 16 queries (lanes r) of one head against one KV head, keys in blocks of 16 with an online
// softmax: S[k][r] = scale · K_k · Q_r is computed with Q transposed once (Qt[d][r]), so each key element
// broadcast feeds 16 queries and no horizontal sums are needed; the running max m[r] and sum l[r] are
// vectors over queries; O is kept transposed (Ot[d][r]) and rescaled when the max grows. Keys outside a
// query's [j_begin[r], j_end[r]) are masked. Written over r-loops of 16 so the vectoriser maps r to one
// zmm (two ymm on AVX2).
#define DS_QB 16
#define DS_KB 16
DS_CLONES void ds_attend_block_f32(const float *q, int64_t nq, int64_t q_stride,
                                   const int64_t *j_begin, const int64_t *j_end,
                                   const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                                   const int32_t *pages, int64_t page_shift, int64_t k_page_stride,
                                   int64_t v_page_stride, int64_t head_dim, int64_t v_dim, float scale,
                                   float softcap, float *out, int64_t out_stride, float *scratch) {
    const int64_t page_mask = ((int64_t)1 << page_shift) - 1;
    float *qt = scratch;                              // [head_dim][QB]
    float *ot = qt + head_dim * DS_QB;                // [v_dim][QB]
    float *zero = ot + v_dim * DS_QB;                 // [max(head_dim, v_dim)] zeros (missing keys)
    const int64_t zn = head_dim > v_dim ? head_dim : v_dim;
    memset(zero, 0, sizeof(float) * (size_t)zn);
    memset(ot, 0, sizeof(float) * (size_t)(v_dim * DS_QB));
    float m[DS_QB], l[DS_QB], lo[DS_QB], hi[DS_QB];
    int64_t jmin = INT64_MAX, jmax = 0;
    for (int r = 0; r < DS_QB; r++) {
        m[r] = -INFINITY; l[r] = 0;
        if (r < nq && j_end[r] > j_begin[r]) {
            lo[r] = (float)j_begin[r]; hi[r] = (float)j_end[r];
            if (j_begin[r] < jmin) jmin = j_begin[r];
            if (j_end[r] > jmax) jmax = j_end[r];
        } else {
            lo[r] = 0; hi[r] = 0;   // sees nothing
        }
        for (int64_t d = 0; d < head_dim; d++) qt[d * DS_QB + r] = r < nq ? q[r * q_stride + d] * scale : 0.0f;
    }
    if (jmin == INT64_MAX) jmin = 0;
    for (int64_t j0 = jmin; j0 < jmax; j0 += DS_KB) {
        const float *krow[DS_KB], *vrow[DS_KB];
        for (int kk = 0; kk < DS_KB; kk++) {
            const int64_t j = j0 + kk;
            if (j < jmax) {
                krow[kk] = pages ? k + (int64_t)pages[j >> page_shift] * k_page_stride + (j & page_mask) * k_stride : k + j * k_stride;
                vrow[kk] = pages ? v + (int64_t)pages[j >> page_shift] * v_page_stride + (j & page_mask) * v_stride : v + j * v_stride;
            } else {
                krow[kk] = zero; vrow[kk] = zero;
            }
        }
        // S[kk][r]
        float s[DS_KB][DS_QB];
        for (int kk = 0; kk < DS_KB; kk++) for (int r = 0; r < DS_QB; r++) s[kk][r] = 0;
        for (int64_t d = 0; d < head_dim; d++) {
            const float *qd = qt + d * DS_QB;
            for (int kk = 0; kk < DS_KB; kk++) {
                const float kv = krow[kk][d];
                for (int r = 0; r < DS_QB; r++) s[kk][r] = fmaf(kv, qd[r], s[kk][r]);
            }
        }
        // Mask, softcap, online softmax.
        float mnew[DS_QB], corr[DS_QB], psum[DS_QB];
        for (int r = 0; r < DS_QB; r++) { mnew[r] = m[r]; psum[r] = 0; }
        for (int kk = 0; kk < DS_KB; kk++) {
            const float j = (float)(j0 + kk);
            for (int r = 0; r < DS_QB; r++) {
                float x = s[kk][r];
                if (softcap > 0) x = softcap * tanhf(x / softcap);
                x = (j >= lo[r] && j < hi[r]) ? x : -INFINITY;
                s[kk][r] = x;
                mnew[r] = x > mnew[r] ? x : mnew[r];
            }
        }
        for (int r = 0; r < DS_QB; r++) corr[r] = mnew[r] == -INFINITY ? 1.0f : ds_exp_approx(m[r] - mnew[r]);
        for (int kk = 0; kk < DS_KB; kk++)
            for (int r = 0; r < DS_QB; r++) {
                const float p = s[kk][r] == -INFINITY ? 0.0f : ds_exp_approx(s[kk][r] - mnew[r]);
                s[kk][r] = p;
                psum[r] += p;
            }
        for (int r = 0; r < DS_QB; r++) { l[r] = l[r] * corr[r] + psum[r]; m[r] = mnew[r]; }
        // Ot[d][r] = Ot[d][r] · corr[r] + Σ_kk P[kk][r] · V_kk[d]
        for (int64_t d = 0; d < v_dim; d++) {
            float *od = ot + d * DS_QB;
            float acc[DS_QB];
            for (int r = 0; r < DS_QB; r++) acc[r] = od[r] * corr[r];
            for (int kk = 0; kk < DS_KB; kk++) {
                const float vv = vrow[kk][d];
                for (int r = 0; r < DS_QB; r++) acc[r] = fmaf(s[kk][r], vv, acc[r]);
            }
            for (int r = 0; r < DS_QB; r++) od[r] = acc[r];
        }
    }
    for (int64_t r = 0; r < nq; r++) {
        const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        float *o = out + r * out_stride;
        for (int64_t d = 0; d < v_dim; d++) o[d] = ot[d * DS_QB + r] * inv;
    }
}
