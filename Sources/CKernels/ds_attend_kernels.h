// ds_attend_kernels.h — attention kernels over K/V rows of one element type, included by ds_ops.c once
// per KV type (no include guard):
//   DS_KV_T            the stored element (float, _Float16)
//   DS_KV_LOAD(x)      the element as float
//   DS_ATTEND_FN(name) appends the type suffix (name_f32, name_f16)
// Rows are contiguous or reached through a page table (see ds_ops.h); q, scores and outputs are F32.

#ifndef DS_KV_BLOCK_ONLY
// q · k of one head, the form of every score of ds_attend_group and ds_attend_group_rows: 16 lanes of
// FMAs over the head, the tail FMAs into r, then the lanes added to r in order (explicit fmaf, so the
// same bits whichever keys or heads are computed together).
static inline __attribute__((always_inline)) float DS_ATTEND_FN(ds_score_lanes)(const float *qi, const DS_KV_T *kj, int64_t head_dim) {
    float a[16] = {0};
    int64_t d = 0;
    for (; d + 16 <= head_dim; d += 16)
        for (int l = 0; l < 16; l++) a[l] = fmaf(qi[d + l], DS_KV_LOAD(kj[d + l]), a[l]);
    float r = 0;
    for (; d < head_dim; d++) r = fmaf(qi[d], DS_KV_LOAD(kj[d]), r);
    for (int l = 0; l < 16; l++) r += a[l];
    return r;
}

// ds_score_lanes of 4 keys (4 independent chains).
static inline __attribute__((always_inline)) void DS_ATTEND_FN(ds_score_lanes4)(const float *qi, const DS_KV_T *const *kj, int64_t head_dim, float *r) {
    float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
    const DS_KV_T *k0 = kj[0], *k1 = kj[1], *k2 = kj[2], *k3 = kj[3];
    int64_t d = 0;
    for (; d + 16 <= head_dim; d += 16)
        for (int l = 0; l < 16; l++) {
            const float qv = qi[d + l];
            a0[l] = fmaf(qv, DS_KV_LOAD(k0[d + l]), a0[l]); a1[l] = fmaf(qv, DS_KV_LOAD(k1[d + l]), a1[l]);
            a2[l] = fmaf(qv, DS_KV_LOAD(k2[d + l]), a2[l]); a3[l] = fmaf(qv, DS_KV_LOAD(k3[d + l]), a3[l]);
        }
    float r0 = 0, r1 = 0, r2 = 0, r3 = 0;
    for (; d < head_dim; d++) {
        r0 = fmaf(qi[d], DS_KV_LOAD(k0[d]), r0); r1 = fmaf(qi[d], DS_KV_LOAD(k1[d]), r1);
        r2 = fmaf(qi[d], DS_KV_LOAD(k2[d]), r2); r3 = fmaf(qi[d], DS_KV_LOAD(k3[d]), r3);
    }
    for (int l = 0; l < 16; l++) { r0 += a0[l]; r1 += a1[l]; r2 += a2[l]; r3 += a3[l]; }
    r[0] = r0; r[1] = r1; r[2] = r2; r[3] = r3;
}

DS_CLONES void DS_ATTEND_FN(ds_attend_group)(const float *q, int64_t g, int64_t q_stride,
                                   const void *k_rows, int64_t k_stride, const void *v_rows, int64_t v_stride,
                                   const int32_t *pages, int64_t page_shift, int64_t k_page_stride,
                                   int64_t v_page_stride, int64_t j_begin, int64_t j_end, int64_t head_dim,
                                   int64_t v_dim, float scale, float softcap, float *out, int64_t out_stride,
                                   float *scratch, float *part_max, float *part_sum) {
    const DS_KV_T *k = (const DS_KV_T *)k_rows, *v = (const DS_KV_T *)v_rows;
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
            const DS_KV_T *kj = DS_K_ROW(j_begin + j);
            float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
            int64_t d = 0;
            for (; d + 16 <= head_dim; d += 16)
                for (int l = 0; l < 16; l++) {
                    float kv = DS_KV_LOAD(kj[d + l]);
                    a0[l] = fmaf(q0[d + l], kv, a0[l]); a1[l] = fmaf(q1[d + l], kv, a1[l]);
                    a2[l] = fmaf(q2[d + l], kv, a2[l]); a3[l] = fmaf(q3[d + l], kv, a3[l]);
                }
            float r0 = 0, r1 = 0, r2 = 0, r3 = 0;
            for (; d < head_dim; d++) {
                const float kd = DS_KV_LOAD(kj[d]);
                r0 = fmaf(q0[d], kd, r0); r1 = fmaf(q1[d], kd, r1); r2 = fmaf(q2[d], kd, r2); r3 = fmaf(q3[d], kd, r3);
            }
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
            const DS_KV_T *rows[4] = {DS_K_ROW(j_begin + j), DS_K_ROW(j_begin + j + 1), DS_K_ROW(j_begin + j + 2),
                                      DS_K_ROW(j_begin + j + 3)};
            float r[4];
            DS_ATTEND_FN(ds_score_lanes4)(qi, rows, head_dim, r);
            for (int x = 0; x < 4; x++) si[j + x] = r[x] * scale;
        }
        for (; j < n; j++) si[j] = DS_ATTEND_FN(ds_score_lanes)(qi, DS_K_ROW(j_begin + j), head_dim) * scale;
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
                const DS_KV_T *vj = DS_V_ROW(j_begin + j) + d0;
                const float w0 = p0[j], w1 = p1[j], w2 = p2[j], w3 = p3[j];
                for (int l = 0; l < 64; l++) {
                    const float x = DS_KV_LOAD(vj[l]);
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
            const DS_KV_T *vj = DS_V_ROW(j_begin + j);
            for (int k = 0; k < 4; k++) {
                const float p = scratch[(i + k) * n + j];
                float *o = out + (i + k) * out_stride;
                for (int64_t d = d0; d < v_dim; d++) o[d] = fmaf(p, DS_KV_LOAD(vj[d]), o[d]);
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
                const DS_KV_T *vj = DS_V_ROW(j_begin + j) + d0;
                const float w = pi[j];
                for (int l = 0; l < 64; l++) a[l] = fmaf(w, DS_KV_LOAD(vj[l]), a[l]);
            }
            for (int l = 0; l < 64; l++) o[d0 + l] = a[l];
        }
        for (int64_t j = 0; j < n && d0 < v_dim; j++) {
            const DS_KV_T *vj = DS_V_ROW(j_begin + j);
            for (int64_t d = d0; d < v_dim; d++) o[d] = fmaf(pi[j], DS_KV_LOAD(vj[d]), o[d]);
        }
    }
}
#undef DS_K_ROW
#undef DS_V_ROW

#define DS_ROWS_TILE 32   // keys per tile: each tile's K (V) rows are read once for every token

// Several query tokens of one sequence (drafted tokens being verified) over the same K/V rows: token
// t's g heads (q + t*q_token_stride + i*q_stride) see keys [j_begin[t], j_end[t]); its outputs
// (out + t*out_token_stride + i*out_stride) and, with part_max/part_sum, its partials (+ t*part_stride)
// are bitwise what ds_attend_group gives that token alone: the same score form per (head, key)
// (ds_score_lanes), the same softmax, and every output element the same chain of FMAs over its keys in
// order. Keys are taken in tiles shared by all tokens. scratch: ntok * g * max(j_end - j_begin) floats.
DS_CLONES void DS_ATTEND_FN(ds_attend_group_rows)(const float *q, int64_t ntok, int64_t q_token_stride, int64_t g,
                                   int64_t q_stride, const void *k_rows, int64_t k_stride, const void *v_rows,
                                   int64_t v_stride, const int32_t *pages, int64_t page_shift, int64_t k_page_stride,
                                   int64_t v_page_stride, const int64_t *j_begin, const int64_t *j_end,
                                   int64_t head_dim, int64_t v_dim, float scale, float softcap, float *out,
                                   int64_t out_token_stride, int64_t out_stride, float *scratch,
                                   float *part_max, float *part_sum, int64_t part_stride) {
    const DS_KV_T *k = (const DS_KV_T *)k_rows, *v = (const DS_KV_T *)v_rows;
    const int64_t page_mask = ((int64_t)1 << page_shift) - 1;
#define DS_K_ROW(j) (pages ? k + (int64_t)pages[(j) >> page_shift] * k_page_stride + ((j) & page_mask) * k_stride \
                           : k + (j) * k_stride)
#define DS_V_ROW(j) (pages ? v + (int64_t)pages[(j) >> page_shift] * v_page_stride + ((j) & page_mask) * v_stride \
                           : v + (j) * v_stride)
    int64_t nmax = 0, jfirst = INT64_MAX, jlast = 0;
    for (int64_t t = 0; t < ntok; t++) {
        const int64_t n = j_end[t] - j_begin[t];
        for (int64_t i = 0; i < g; i++) memset(out + t * out_token_stride + i * out_stride, 0, sizeof(float) * (size_t)v_dim);
        if (n <= 0) {
            if (part_max) for (int64_t i = 0; i < g; i++) { part_max[t * part_stride + i] = -INFINITY; part_sum[t * part_stride + i] = 0; }
            continue;
        }
        if (n > nmax) nmax = n;
        if (j_begin[t] < jfirst) jfirst = j_begin[t];
        if (j_end[t] > jlast) jlast = j_end[t];
    }
    if (nmax == 0) return;
    // Scores: token t, head i, key jj at scratch[(t*g + i)*nmax + jj].
    const DS_KV_T *rows[DS_ROWS_TILE];
    for (int64_t j0 = jfirst; j0 < jlast; j0 += DS_ROWS_TILE) {
        const int64_t j1 = j0 + DS_ROWS_TILE < jlast ? j0 + DS_ROWS_TILE : jlast;
        for (int64_t j = j0; j < j1; j++) rows[j - j0] = DS_K_ROW(j);
        for (int64_t t = 0; t < ntok; t++) {
            const int64_t jb = j_begin[t];
            const int64_t lo = j0 > jb ? j0 : jb, hi = j1 < j_end[t] ? j1 : j_end[t];
            const float *qt = q + t * q_token_stride;
            float *st = scratch + t * g * nmax - jb;   // st[i*nmax + j] for key j
            for (int64_t i = 0; i < g; i++) {
                const float *qi = qt + i * q_stride;
                float *si = st + i * nmax;
                int64_t j = lo;
                for (; j + 4 <= hi; j += 4) {
                    float r[4];
                    DS_ATTEND_FN(ds_score_lanes4)(qi, rows + (j - j0), head_dim, r);
                    for (int x = 0; x < 4; x++) si[j + x] = r[x] * scale;
                }
                for (; j < hi; j++) si[j] = DS_ATTEND_FN(ds_score_lanes)(qi, rows[j - j0], head_dim) * scale;
            }
        }
    }
    // Softcap and softmax per (token, head), as ds_attend_group.
    for (int64_t t = 0; t < ntok; t++) {
        const int64_t n = j_end[t] - j_begin[t];
        if (n <= 0) continue;
        for (int64_t i = 0; i < g; i++) {
            float *s = scratch + (t * g + i) * nmax, maxv = -INFINITY, sum = 0;
            if (softcap > 0) for (int64_t j = 0; j < n; j++) s[j] = softcap * tanhf(s[j] / softcap);
            for (int64_t j = 0; j < n; j++) if (s[j] > maxv) maxv = s[j];
            for (int64_t j = 0; j < n; j++) s[j] = ds_exp_approx(s[j] - maxv);
            for (int64_t j = 0; j < n; j++) sum += s[j];
            if (part_max) { part_max[t * part_stride + i] = maxv; part_sum[t * part_stride + i] = sum; continue; }
            float inv = 1.0f / sum;
            for (int64_t j = 0; j < n; j++) s[j] *= inv;
        }
    }
    // out[t][i][d] = fmaf(p, v_j[d], ...) over the token's keys in order, 16 values at a time per tile.
    for (int64_t j0 = jfirst; j0 < jlast; j0 += DS_ROWS_TILE) {
        const int64_t j1 = j0 + DS_ROWS_TILE < jlast ? j0 + DS_ROWS_TILE : jlast;
        for (int64_t j = j0; j < j1; j++) rows[j - j0] = DS_V_ROW(j);
        for (int64_t t = 0; t < ntok; t++) {
            const int64_t jb = j_begin[t];
            const int64_t lo = j0 > jb ? j0 : jb, hi = j1 < j_end[t] ? j1 : j_end[t];
            if (lo >= hi) continue;
            for (int64_t i = 0; i < g; i++) {
                const float *pi = scratch + (t * g + i) * nmax - jb;   // pi[j] for key j
                float *o = out + t * out_token_stride + i * out_stride;
                int64_t d0 = 0;
                for (; d0 + 64 <= v_dim; d0 += 64) {   // 4 independent chains of 16
                    float a[64];
                    for (int l = 0; l < 64; l++) a[l] = o[d0 + l];
                    for (int64_t j = lo; j < hi; j++) {
                        const DS_KV_T *vj = rows[j - j0] + d0;
                        const float w = pi[j];
                        for (int l = 0; l < 64; l++) a[l] = fmaf(w, DS_KV_LOAD(vj[l]), a[l]);
                    }
                    for (int l = 0; l < 64; l++) o[d0 + l] = a[l];
                }
                for (; d0 + 16 <= v_dim; d0 += 16) {
                    float a[16];
                    for (int l = 0; l < 16; l++) a[l] = o[d0 + l];
                    for (int64_t j = lo; j < hi; j++) {
                        const DS_KV_T *vj = rows[j - j0] + d0;
                        const float w = pi[j];
                        for (int l = 0; l < 16; l++) a[l] = fmaf(w, DS_KV_LOAD(vj[l]), a[l]);
                    }
                    for (int l = 0; l < 16; l++) o[d0 + l] = a[l];
                }
                for (int64_t j = lo; j < hi && d0 < v_dim; j++) {
                    const DS_KV_T *vj = rows[j - j0];
                    for (int64_t d = d0; d < v_dim; d++) o[d] = fmaf(pi[j], DS_KV_LOAD(vj[d]), o[d]);
                }
            }
        }
    }
}
#undef DS_ROWS_TILE
#undef DS_K_ROW
#undef DS_V_ROW

#endif // DS_KV_BLOCK_ONLY

// ---- Flash-style attention for a block of queries -----------------------------------------------------
// Up to 16 queries (lanes r) of one head against one KV head, keys in blocks of 16 with an online
// softmax: S[k][r] = scale · K_k · Q_r is computed with Q transposed once (Qt[d][r]), so each key element
// broadcast feeds 16 queries and no horizontal sums are needed; the running max m[r] and sum l[r] are
// vectors over queries; O is kept transposed (Ot[d][r]) and rescaled when the max grows. Keys outside a
// query's [j_begin[r], j_end[r]) are masked. Written over r-loops of 16 so the vectoriser maps r to one
// zmm (two ymm on AVX2).
DS_CLONES void DS_ATTEND_FN(ds_attend_block)(const float *q, int64_t nq, int64_t q_stride,
                                   const int64_t *j_begin, const int64_t *j_end,
                                   const void *k_rows, int64_t k_stride, const void *v_rows, int64_t v_stride,
                                   const int32_t *pages, int64_t page_shift, int64_t k_page_stride,
                                   int64_t v_page_stride, int64_t head_dim, int64_t v_dim, float scale,
                                   float softcap, float *out, int64_t out_stride, float *scratch) {
    const DS_KV_T *k = (const DS_KV_T *)k_rows, *v = (const DS_KV_T *)v_rows;
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
    // Key tiles at multiples of DS_KB whatever the block's queries: a lane's result then does not depend
    // on which other queries share its block (tiles outside its range leave its state exactly as it was).
    // Rows before the block's first visible one (pages a sliding window may have dropped) are never
    // read: the zero row stands in for them.
    const int64_t jfirst = jmin == INT64_MAX ? 0 : jmin;
    jmin = jfirst / DS_KB * DS_KB;
    for (int64_t j0 = jmin; j0 < jmax; j0 += DS_KB) {
        const DS_KV_T *krow[DS_KB], *vrow[DS_KB];
        for (int kk = 0; kk < DS_KB; kk++) {
            const int64_t j = j0 + kk;
            if (j < jmax && j >= jfirst) {
                krow[kk] = pages ? k + (int64_t)pages[j >> page_shift] * k_page_stride + (j & page_mask) * k_stride : k + j * k_stride;
                vrow[kk] = pages ? v + (int64_t)pages[j >> page_shift] * v_page_stride + (j & page_mask) * v_stride : v + j * v_stride;
            } else {
                krow[kk] = (const DS_KV_T *)zero; vrow[kk] = (const DS_KV_T *)zero;   // zero bits: 0 in any float format
            }
        }
        // F32 views of the 16 rows: the rows themselves, or (narrower types) widened once into tiles that
        // the 16 queries then share, so the inner loops stay plain float loops.
        const float *kf[DS_KB], *vf[DS_KB];
#ifdef DS_KV_WIDEN
        float *ktile = zero + zn, *vtile = ktile + DS_KB * head_dim;
        for (int kk = 0; kk < DS_KB; kk++) {
            DS_KV_WIDEN(krow[kk], ktile + kk * head_dim, head_dim);
            DS_KV_WIDEN(vrow[kk], vtile + kk * v_dim, v_dim);
            kf[kk] = ktile + kk * head_dim;
            vf[kk] = vtile + kk * v_dim;
        }
#else
        for (int kk = 0; kk < DS_KB; kk++) { kf[kk] = (const float *)krow[kk]; vf[kk] = (const float *)vrow[kk]; }
#endif
        // S[kk][r]
        float s[DS_KB][DS_QB];
        for (int kk = 0; kk < DS_KB; kk++) for (int r = 0; r < DS_QB; r++) s[kk][r] = 0;
        for (int64_t d = 0; d < head_dim; d++) {
            const float *qd = qt + d * DS_QB;
            for (int kk = 0; kk < DS_KB; kk++) {
                const float kv = kf[kk][d];
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
                const float vv = vf[kk][d];
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
