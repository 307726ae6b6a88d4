// ds_float_x86_kernels.h — x86 kernels for float-coded weights (F32, F16, BF16, MXFP4) against F32
// activations: single-token dots and 4-row kernels, and multi-row kernels that give each token the
// single-token kernel's bits. Included by ds_dot_x86.c once per level after ds_dot_x86_kernels.h
// (same DS_X86_LEVEL / DS_TARGET / DS_FN conventions; uses its prefetch and unroll macros).

// ---- Float weights: FMA in float, four independent accumulators -------------------------------------

#if DS_X86_LEVEL >= 2

static inline DS_TARGET float DS_FN(hsum512)(__m512 v) { return _mm512_reduce_add_ps(v); }

static inline DS_TARGET __m512 DS_FN(load_f16x16)(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline DS_TARGET __m512 DS_FN(load_bf16x16)(const uint16_t *p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// Weight loaders, 16 floats at a time; masked variants for the final < 16 elements.
#define DS_W_F32(p, i) _mm512_loadu_ps((const float *)(p) + (i))
#define DS_W_F16(p, i) DS_FN(load_f16x16)((const uint16_t *)(p) + (i))
#define DS_W_BF16(p, i) DS_FN(load_bf16x16)((const uint16_t *)(p) + (i))
#define DS_WM_F32(p, i, m) _mm512_maskz_loadu_ps(m, (const float *)(p) + (i))
#define DS_WM_F16(p, i, m) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)(p) + (i)))
#define DS_WM_BF16(p, i, m) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32( \
        _mm256_maskz_loadu_epi16(m, (const uint16_t *)(p) + (i))), 16))

#define DS_FLOAT_KERNEL(NAME, LOAD, LOADM, ELEM_BYTES)                                              \
    static DS_TARGET float DS_FN(dot_##NAME)(int64_t n, const void *w, const void *va) {            \
        const float *a = (const float *)va;                                                         \
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();                                  \
        __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();                                  \
        int64_t i = 0;                                                                              \
        for (; i + 64 <= n; i += 64) {                                                              \
            s0 = _mm512_fmadd_ps(LOAD(w, i), _mm512_loadu_ps(a + i), s0);                           \
            s1 = _mm512_fmadd_ps(LOAD(w, i + 16), _mm512_loadu_ps(a + i + 16), s1);                 \
            s2 = _mm512_fmadd_ps(LOAD(w, i + 32), _mm512_loadu_ps(a + i + 32), s2);                 \
            s3 = _mm512_fmadd_ps(LOAD(w, i + 48), _mm512_loadu_ps(a + i + 48), s3);                 \
        }                                                                                           \
        for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(LOAD(w, i), _mm512_loadu_ps(a + i), s0); \
        if (i < n) {                                                                                \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                   \
            s1 = _mm512_fmadd_ps(LOADM(w, i, m), _mm512_maskz_loadu_ps(m, a + i), s1);              \
        }                                                                                           \
        return DS_FN(hsum512)(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));         \
    }                                                                                               \
    /* 4 rows at a time: each activation vector is loaded once for four weight rows. */            \
    static DS_TARGET void DS_FN(rows_##NAME)(int64_t n, const void *w, size_t stride,              \
                                             int64_t nrows, const void *va, float *out) {           \
        const float *a = (const float *)va;                                                         \
        int64_t r = 0;                                                                              \
        /* Matrices far larger than L2 stream from DRAM faster one row at a time (measured). */    \
        if ((size_t)nrows * stride > DS_FLOAT_STREAM_BYTES) {                                       \
            for (; r < nrows; ++r) out[r] = DS_FN(dot_##NAME)(n, (const char *)w + (size_t)r * stride, va); \
            return;                                                                                 \
        }                                                                                           \
        for (; r + 4 <= nrows; r += 4) {                                                            \
            const char *w0 = (const char *)w + (size_t)r * stride;                                  \
            const char *w1 = w0 + stride, *w2 = w0 + 2 * stride, *w3 = w0 + 3 * stride;             \
            __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();                              \
            __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();                              \
            int64_t i = 0;                                                                          \
            const char *ahead = w0 + DS_PREFETCH_GROUPS(stride) * 4 * stride;                       \
            for (; i + 16 <= n; i += 16, ahead += 4 * 16 * (ELEM_BYTES)) {                          \
                for (int off = 0; off < 4 * 16 * (ELEM_BYTES); off += 64)                           \
                    _mm_prefetch(ahead + off, DS_PREFETCH_HINT);                                    \
                const __m512 x = _mm512_loadu_ps(a + i);                                            \
                s0 = _mm512_fmadd_ps(LOAD(w0, i), x, s0);                                           \
                s1 = _mm512_fmadd_ps(LOAD(w1, i), x, s1);                                           \
                s2 = _mm512_fmadd_ps(LOAD(w2, i), x, s2);                                           \
                s3 = _mm512_fmadd_ps(LOAD(w3, i), x, s3);                                           \
            }                                                                                       \
            if (i < n) {                                                                            \
                const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                               \
                const __m512 x = _mm512_maskz_loadu_ps(m, a + i);                                   \
                s0 = _mm512_fmadd_ps(LOADM(w0, i, m), x, s0);                                       \
                s1 = _mm512_fmadd_ps(LOADM(w1, i, m), x, s1);                                       \
                s2 = _mm512_fmadd_ps(LOADM(w2, i, m), x, s2);                                       \
                s3 = _mm512_fmadd_ps(LOADM(w3, i, m), x, s3);                                       \
            }                                                                                       \
            out[r] = DS_FN(hsum512)(s0);                                                            \
            out[r + 1] = DS_FN(hsum512)(s1);                                                        \
            out[r + 2] = DS_FN(hsum512)(s2);                                                        \
            out[r + 3] = DS_FN(hsum512)(s3);                                                        \
        }                                                                                           \
        for (; r < nrows; ++r) out[r] = DS_FN(dot_##NAME)(n, (const char *)w + (size_t)r * stride, va); \
    }


// Multi-row kernels: out[t·ostride + r] = dot(weight row r, activation row t), each token's result
// bitwise equal to rows_NAME on that token alone: the same path by matrix size (rows one at a time
// above DS_FLOAT_STREAM_BYTES, else groups of 4 rows), the same accumulators and order per (row, token).
// Each weight vector is loaded and converted once for up to DS_MULTI_TOKENS tokens (KT, a constant
// after inlining).
#define DS_FLOAT_MULTI(NAME, LOAD, LOADM, ELEM_BYTES)                                               \
    /* dot_NAME of one row against KT tokens a[k]: out[k·ostride]. */                               \
    static inline DS_INLINE DS_TARGET void DS_FN(dots_##NAME)(int64_t n, const char *w, const float *const *a, \
                                                              const int KT, float *out, int64_t ostride) { \
        __m512 s[DS_MULTI_TOKENS][4];                                                               \
        DS_UNROLL for (int k = 0; k < KT; ++k) DS_UNROLL for (int j = 0; j < 4; ++j) s[k][j] = _mm512_setzero_ps(); \
        int64_t i = 0;                                                                              \
        for (; i + 64 <= n; i += 64) {                                                              \
            const __m512 v0 = LOAD(w, i), v1 = LOAD(w, i + 16), v2 = LOAD(w, i + 32), v3 = LOAD(w, i + 48); \
            DS_UNROLL for (int k = 0; k < KT; ++k) {                                                \
                s[k][0] = _mm512_fmadd_ps(v0, _mm512_loadu_ps(a[k] + i), s[k][0]);                 \
                s[k][1] = _mm512_fmadd_ps(v1, _mm512_loadu_ps(a[k] + i + 16), s[k][1]);            \
                s[k][2] = _mm512_fmadd_ps(v2, _mm512_loadu_ps(a[k] + i + 32), s[k][2]);            \
                s[k][3] = _mm512_fmadd_ps(v3, _mm512_loadu_ps(a[k] + i + 48), s[k][3]);            \
            }                                                                                       \
        }                                                                                           \
        for (; i + 16 <= n; i += 16) {                                                              \
            const __m512 v = LOAD(w, i);                                                            \
            DS_UNROLL for (int k = 0; k < KT; ++k) s[k][0] = _mm512_fmadd_ps(v, _mm512_loadu_ps(a[k] + i), s[k][0]); \
        }                                                                                           \
        if (i < n) {                                                                                \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                   \
            const __m512 v = LOADM(w, i, m);                                                        \
            DS_UNROLL for (int k = 0; k < KT; ++k)                                                  \
                s[k][1] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, a[k] + i), s[k][1]);          \
        }                                                                                           \
        DS_UNROLL for (int k = 0; k < KT; ++k)                                                      \
            out[k * ostride] = DS_FN(hsum512)(_mm512_add_ps(_mm512_add_ps(s[k][0], s[k][1]),        \
                                                            _mm512_add_ps(s[k][2], s[k][3])));      \
    }                                                                                               \
    /* rows_NAME's group of 4 rows from w0 against KT tokens: out[k·ostride + j]. */                \
    static inline DS_INLINE DS_TARGET void DS_FN(group4_##NAME)(int64_t n, const char *w0, size_t stride,    \
                                                                const float *const *a, const int KT, \
                                                                float *out, int64_t ostride) {      \
        const char *w1 = w0 + stride, *w2 = w0 + 2 * stride, *w3 = w0 + 3 * stride;                 \
        __m512 s[DS_MULTI_TOKENS][4];                                                               \
        DS_UNROLL for (int k = 0; k < KT; ++k) DS_UNROLL for (int j = 0; j < 4; ++j) s[k][j] = _mm512_setzero_ps(); \
        int64_t i = 0;                                                                              \
        const char *ahead = w0 + DS_PREFETCH_GROUPS(stride) * 4 * stride;                           \
        for (; i + 16 <= n; i += 16, ahead += 4 * 16 * (ELEM_BYTES)) {                              \
            for (int off = 0; off < 4 * 16 * (ELEM_BYTES); off += 64) _mm_prefetch(ahead + off, DS_PREFETCH_HINT); \
            const __m512 v0 = LOAD(w0, i), v1 = LOAD(w1, i), v2 = LOAD(w2, i), v3 = LOAD(w3, i);    \
            DS_UNROLL for (int k = 0; k < KT; ++k) {                                                \
                const __m512 x = _mm512_loadu_ps(a[k] + i);                                         \
                s[k][0] = _mm512_fmadd_ps(v0, x, s[k][0]);                                          \
                s[k][1] = _mm512_fmadd_ps(v1, x, s[k][1]);                                          \
                s[k][2] = _mm512_fmadd_ps(v2, x, s[k][2]);                                          \
                s[k][3] = _mm512_fmadd_ps(v3, x, s[k][3]);                                          \
            }                                                                                       \
        }                                                                                           \
        if (i < n) {                                                                                \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                   \
            const __m512 v0 = LOADM(w0, i, m), v1 = LOADM(w1, i, m), v2 = LOADM(w2, i, m), v3 = LOADM(w3, i, m); \
            DS_UNROLL for (int k = 0; k < KT; ++k) {                                                \
                const __m512 x = _mm512_maskz_loadu_ps(m, a[k] + i);                                \
                s[k][0] = _mm512_fmadd_ps(v0, x, s[k][0]);                                          \
                s[k][1] = _mm512_fmadd_ps(v1, x, s[k][1]);                                          \
                s[k][2] = _mm512_fmadd_ps(v2, x, s[k][2]);                                          \
                s[k][3] = _mm512_fmadd_ps(v3, x, s[k][3]);                                          \
            }                                                                                       \
        }                                                                                           \
        DS_UNROLL for (int k = 0; k < KT; ++k)                                                      \
            DS_UNROLL for (int j = 0; j < 4; ++j) out[k * ostride + j] = DS_FN(hsum512)(s[k][j]);   \
    }                                                                                               \
    DS_FLOAT_MULTI_DRIVER(NAME)

#else // AVX2: 8 floats per vector, scalar tail

static inline DS_TARGET __m256 DS_FN(load_f16x8)(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline DS_TARGET __m256 DS_FN(load_bf16x8)(const uint16_t *p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

#define DS_W_F32(p, i) _mm256_loadu_ps((const float *)(p) + (i))
#define DS_W_F16(p, i) DS_FN(load_f16x8)((const uint16_t *)(p) + (i))
#define DS_W_BF16(p, i) DS_FN(load_bf16x8)((const uint16_t *)(p) + (i))
#define DS_WS_F32(p, i) (((const float *)(p))[i])
#define DS_WS_F16(p, i) DS_FN(half)(((const uint16_t *)(p))[i])
#define DS_WS_BF16(p, i) ds_bfloat_to_float(((const uint16_t *)(p))[i])

#define DS_FLOAT_KERNEL(NAME, LOAD, LOADS, ELEM_BYTES)                                              \
    static DS_TARGET float DS_FN(dot_##NAME)(int64_t n, const void *w, const void *va) {            \
        const float *a = (const float *)va;                                                         \
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                                  \
        __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();                                  \
        int64_t i = 0;                                                                              \
        for (; i + 32 <= n; i += 32) {                                                              \
            s0 = _mm256_fmadd_ps(LOAD(w, i), _mm256_loadu_ps(a + i), s0);                           \
            s1 = _mm256_fmadd_ps(LOAD(w, i + 8), _mm256_loadu_ps(a + i + 8), s1);                   \
            s2 = _mm256_fmadd_ps(LOAD(w, i + 16), _mm256_loadu_ps(a + i + 16), s2);                 \
            s3 = _mm256_fmadd_ps(LOAD(w, i + 24), _mm256_loadu_ps(a + i + 24), s3);                 \
        }                                                                                           \
        for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(LOAD(w, i), _mm256_loadu_ps(a + i), s0);   \
        float sum = DS_FN(hsum_ps)(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));   \
        for (; i < n; ++i) sum += LOADS(w, i) * a[i];                                               \
        return sum;                                                                                 \
    }                                                                                               \
    static DS_TARGET void DS_FN(rows_##NAME)(int64_t n, const void *w, size_t stride,              \
                                             int64_t nrows, const void *va, float *out) {           \
        const float *a = (const float *)va;                                                         \
        int64_t r = 0;                                                                              \
        /* Matrices far larger than L2 stream from DRAM faster one row at a time (measured). */    \
        if ((size_t)nrows * stride > DS_FLOAT_STREAM_BYTES) {                                       \
            for (; r < nrows; ++r) out[r] = DS_FN(dot_##NAME)(n, (const char *)w + (size_t)r * stride, va); \
            return;                                                                                 \
        }                                                                                           \
        for (; r + 4 <= nrows; r += 4) {                                                            \
            const char *w0 = (const char *)w + (size_t)r * stride;                                  \
            const char *w1 = w0 + stride, *w2 = w0 + 2 * stride, *w3 = w0 + 3 * stride;             \
            __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                              \
            __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();                              \
            int64_t i = 0;                                                                          \
            const char *ahead = w0 + DS_PREFETCH_GROUPS(stride) * 4 * stride;                       \
            for (; i + 8 <= n; i += 8, ahead += 4 * 8 * (ELEM_BYTES)) {                             \
                for (int off = 0; off < 4 * 8 * (ELEM_BYTES); off += 64)                            \
                    _mm_prefetch(ahead + off, DS_PREFETCH_HINT);                                    \
                const __m256 x = _mm256_loadu_ps(a + i);                                            \
                s0 = _mm256_fmadd_ps(LOAD(w0, i), x, s0);                                           \
                s1 = _mm256_fmadd_ps(LOAD(w1, i), x, s1);                                           \
                s2 = _mm256_fmadd_ps(LOAD(w2, i), x, s2);                                           \
                s3 = _mm256_fmadd_ps(LOAD(w3, i), x, s3);                                           \
            }                                                                                       \
            float t0 = DS_FN(hsum_ps)(s0), t1 = DS_FN(hsum_ps)(s1);                                 \
            float t2 = DS_FN(hsum_ps)(s2), t3 = DS_FN(hsum_ps)(s3);                                 \
            for (; i < n; ++i) {                                                                    \
                t0 += LOADS(w0, i) * a[i];                                                          \
                t1 += LOADS(w1, i) * a[i];                                                          \
                t2 += LOADS(w2, i) * a[i];                                                          \
                t3 += LOADS(w3, i) * a[i];                                                          \
            }                                                                                       \
            out[r] = t0; out[r + 1] = t1; out[r + 2] = t2; out[r + 3] = t3;                         \
        }                                                                                           \
        for (; r < nrows; ++r) out[r] = DS_FN(dot_##NAME)(n, (const char *)w + (size_t)r * stride, va); \
    }


// Multi-row kernels, as at level 2 (see there): each token gets rows_NAME's bits, weight vectors
// loaded and converted once for DS_MULTI_TOKENS tokens.
#define DS_FLOAT_MULTI(NAME, LOAD, LOADS, ELEM_BYTES)                                               \
    static inline DS_INLINE DS_TARGET void DS_FN(dots_##NAME)(int64_t n, const char *w, const float *const *a, \
                                                              const int KT, float *out, int64_t ostride) { \
        __m256 s[DS_MULTI_TOKENS][4];                                                               \
        DS_UNROLL for (int k = 0; k < KT; ++k) DS_UNROLL for (int j = 0; j < 4; ++j) s[k][j] = _mm256_setzero_ps(); \
        int64_t i = 0;                                                                              \
        for (; i + 32 <= n; i += 32) {                                                              \
            const __m256 v0 = LOAD(w, i), v1 = LOAD(w, i + 8), v2 = LOAD(w, i + 16), v3 = LOAD(w, i + 24); \
            DS_UNROLL for (int k = 0; k < KT; ++k) {                                                \
                s[k][0] = _mm256_fmadd_ps(v0, _mm256_loadu_ps(a[k] + i), s[k][0]);                 \
                s[k][1] = _mm256_fmadd_ps(v1, _mm256_loadu_ps(a[k] + i + 8), s[k][1]);             \
                s[k][2] = _mm256_fmadd_ps(v2, _mm256_loadu_ps(a[k] + i + 16), s[k][2]);            \
                s[k][3] = _mm256_fmadd_ps(v3, _mm256_loadu_ps(a[k] + i + 24), s[k][3]);            \
            }                                                                                       \
        }                                                                                           \
        for (; i + 8 <= n; i += 8) {                                                                \
            const __m256 v = LOAD(w, i);                                                            \
            DS_UNROLL for (int k = 0; k < KT; ++k) s[k][0] = _mm256_fmadd_ps(v, _mm256_loadu_ps(a[k] + i), s[k][0]); \
        }                                                                                           \
        DS_UNROLL for (int k = 0; k < KT; ++k) {                                                    \
            float sum = DS_FN(hsum_ps)(_mm256_add_ps(_mm256_add_ps(s[k][0], s[k][1]), _mm256_add_ps(s[k][2], s[k][3]))); \
            for (int64_t e = i; e < n; ++e) sum += LOADS(w, e) * a[k][e];                           \
            out[k * ostride] = sum;                                                                 \
        }                                                                                           \
    }                                                                                               \
    static inline DS_INLINE DS_TARGET void DS_FN(group4_##NAME)(int64_t n, const char *w0, size_t stride,    \
                                                                const float *const *a, const int KT, \
                                                                float *out, int64_t ostride) {      \
        const char *w1 = w0 + stride, *w2 = w0 + 2 * stride, *w3 = w0 + 3 * stride;                 \
        __m256 s[DS_MULTI_TOKENS][4];                                                               \
        DS_UNROLL for (int k = 0; k < KT; ++k) DS_UNROLL for (int j = 0; j < 4; ++j) s[k][j] = _mm256_setzero_ps(); \
        int64_t i = 0;                                                                              \
        const char *ahead = w0 + DS_PREFETCH_GROUPS(stride) * 4 * stride;                           \
        for (; i + 8 <= n; i += 8, ahead += 4 * 8 * (ELEM_BYTES)) {                                 \
            for (int off = 0; off < 4 * 8 * (ELEM_BYTES); off += 64) _mm_prefetch(ahead + off, DS_PREFETCH_HINT); \
            const __m256 v0 = LOAD(w0, i), v1 = LOAD(w1, i), v2 = LOAD(w2, i), v3 = LOAD(w3, i);    \
            DS_UNROLL for (int k = 0; k < KT; ++k) {                                                \
                const __m256 x = _mm256_loadu_ps(a[k] + i);                                         \
                s[k][0] = _mm256_fmadd_ps(v0, x, s[k][0]);                                          \
                s[k][1] = _mm256_fmadd_ps(v1, x, s[k][1]);                                          \
                s[k][2] = _mm256_fmadd_ps(v2, x, s[k][2]);                                          \
                s[k][3] = _mm256_fmadd_ps(v3, x, s[k][3]);                                          \
            }                                                                                       \
        }                                                                                           \
        DS_UNROLL for (int k = 0; k < KT; ++k) {                                                    \
            float t0 = DS_FN(hsum_ps)(s[k][0]), t1 = DS_FN(hsum_ps)(s[k][1]);                       \
            float t2 = DS_FN(hsum_ps)(s[k][2]), t3 = DS_FN(hsum_ps)(s[k][3]);                       \
            for (int64_t e = i; e < n; ++e) {                                                       \
                t0 += LOADS(w0, e) * a[k][e];                                                       \
                t1 += LOADS(w1, e) * a[k][e];                                                       \
                t2 += LOADS(w2, e) * a[k][e];                                                       \
                t3 += LOADS(w3, e) * a[k][e];                                                       \
            }                                                                                       \
            out[k * ostride] = t0; out[k * ostride + 1] = t1; out[k * ostride + 2] = t2; out[k * ostride + 3] = t3; \
        }                                                                                           \
    }                                                                                               \
    DS_FLOAT_MULTI_DRIVER(NAME)

#define DS_WM_F32 DS_WS_F32
#define DS_WM_F16 DS_WS_F16
#define DS_WM_BF16 DS_WS_BF16

#endif


// Both levels: multi_NAME over dots_NAME / group4_NAME, passes of DS_MULTI_TOKENS tokens, then 2, then 1.
#define DS_FLOAT_MULTI_DRIVER(NAME)                                                                 \
    static DS_TARGET void DS_FN(multi_##NAME)(int64_t n, const void *vw, size_t stride, int64_t nrows, \
                                              const void *va, size_t astride, int64_t ntok, float *out, \
                                              int64_t ostride) {                                    \
        const char *w = (const char *)vw;                                                           \
        const float *a[DS_MULTI_TOKENS];                                                            \
        int64_t r = 0;                                                                              \
        if ((size_t)nrows * stride <= DS_FLOAT_STREAM_BYTES) {                                      \
            for (; r + 4 <= nrows; r += 4) {                                                        \
                int64_t t = 0;                                                                      \
                for (; t + DS_MULTI_TOKENS <= ntok; t += DS_MULTI_TOKENS) {                         \
                    for (int k = 0; k < DS_MULTI_TOKENS; ++k) a[k] = (const float *)((const char *)va + (size_t)(t + k) * astride); \
                    DS_FN(group4_##NAME)(n, w + (size_t)r * stride, stride, a, DS_MULTI_TOKENS, out + t * ostride + r, ostride); \
                }                                                                                   \
                if (DS_MULTI_TOKENS > 2 && t + 2 <= ntok) {                                         \
                    for (int k = 0; k < 2; ++k) a[k] = (const float *)((const char *)va + (size_t)(t + k) * astride); \
                    DS_FN(group4_##NAME)(n, w + (size_t)r * stride, stride, a, 2, out + t * ostride + r, ostride); \
                    t += 2;                                                                         \
                }                                                                                   \
                for (; t < ntok; ++t) {                                                             \
                    a[0] = (const float *)((const char *)va + (size_t)t * astride);                 \
                    DS_FN(group4_##NAME)(n, w + (size_t)r * stride, stride, a, 1, out + t * ostride + r, ostride); \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        for (; r < nrows; ++r) {                                                                    \
            int64_t t = 0;                                                                          \
            for (; t + DS_MULTI_TOKENS <= ntok; t += DS_MULTI_TOKENS) {                             \
                for (int k = 0; k < DS_MULTI_TOKENS; ++k) a[k] = (const float *)((const char *)va + (size_t)(t + k) * astride); \
                DS_FN(dots_##NAME)(n, w + (size_t)r * stride, a, DS_MULTI_TOKENS, out + t * ostride + r, ostride); \
            }                                                                                       \
            if (DS_MULTI_TOKENS > 2 && t + 2 <= ntok) {                                             \
                for (int k = 0; k < 2; ++k) a[k] = (const float *)((const char *)va + (size_t)(t + k) * astride); \
                DS_FN(dots_##NAME)(n, w + (size_t)r * stride, a, 2, out + t * ostride + r, ostride); \
                t += 2;                                                                             \
            }                                                                                       \
            for (; t < ntok; ++t) {                                                                 \
                a[0] = (const float *)((const char *)va + (size_t)t * astride);                     \
                DS_FN(dots_##NAME)(n, w + (size_t)r * stride, a, 1, out + t * ostride + r, ostride); \
            }                                                                                       \
        }                                                                                           \
    }

DS_FLOAT_KERNEL(f32, DS_W_F32, DS_WM_F32, 4)
DS_FLOAT_KERNEL(f16, DS_W_F16, DS_WM_F16, 2)
DS_FLOAT_KERNEL(bf16, DS_W_BF16, DS_WM_BF16, 2)
DS_FLOAT_MULTI(f32, DS_W_F32, DS_WM_F32, 4)
DS_FLOAT_MULTI(f16, DS_W_F16, DS_WM_F16, 2)
DS_FLOAT_MULTI(bf16, DS_W_BF16, DS_WM_BF16, 2)

#undef DS_W_F32
#undef DS_W_F16
#undef DS_W_BF16
#undef DS_WM_F32
#undef DS_WM_F16
#undef DS_WM_BF16
#undef DS_WS_F32
#undef DS_WS_F16
#undef DS_WS_BF16
#undef DS_FLOAT_KERNEL
#undef DS_FLOAT_MULTI
#undef DS_FLOAT_MULTI_DRIVER

// ---- MXFP4 weights x F32 activations ----------------------------------------------------------------
// A block's 32 codes become int8 (doubled E2M1, one byte shuffle per 16 codes), then float; the block
// sum is scaled once by its power-of-two scale (exact), so results equal the dequantized F32 weights'
// to the rounding of the sum.

static inline DS_TARGET __m128i DS_FN(mxfp4_codes)(__m128i packed_nibbles) {
    return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)ds_kvalues_mxfp4),
                            _mm_and_si128(packed_nibbles, _mm_set1_epi8(0x0F)));
}

#if DS_X86_LEVEL >= 2
// Σ_j code_j · a_j over one block (unscaled): elements 0..15 are the low nibbles, 16..31 the high.
// Each code indexes a 16-float table of the doubled E2M1 values (vpermps reads the low 4 bits of
// every lane, so the low nibbles need no mask).
static inline DS_INLINE DS_TARGET void DS_FN(mxfp4_decode16)(const ds_block_mxfp4 *b, __m512 *lo, __m512 *hi) {
    const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->qs));
    *lo = _mm512_permutexvar_ps(q, table);
    *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table);
}
// The block sum from decoded codes: the one expression every MXFP4 kernel at this level uses.
static inline DS_INLINE DS_TARGET __m512 DS_FN(mxfp4_apply16)(__m512 lo, __m512 hi, __m512 a_lo, __m512 a_hi) {
    return _mm512_fmadd_ps(hi, a_hi, _mm512_mul_ps(lo, a_lo));
}
static inline DS_TARGET __m512 DS_FN(mxfp4_block16)(const ds_block_mxfp4 *b, const __m512 a_lo, const __m512 a_hi) {
    __m512 lo, hi;
    DS_FN(mxfp4_decode16)(b, &lo, &hi);
    return DS_FN(mxfp4_apply16)(lo, hi, a_lo, a_hi);
}

static DS_TARGET float DS_FN(dot_mxfp4)(int64_t n, const void *vw, const void *va) {
    const ds_block_mxfp4 *w = (const ds_block_mxfp4 *)vw;
    const float *a = (const float *)va;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    const int64_t nb = n / DS_QK_MXFP4;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, a += 2 * DS_QK_MXFP4) {
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(ds_e8m0_to_float_half(w[b].e)),
                             DS_FN(mxfp4_block16)(&w[b], _mm512_loadu_ps(a), _mm512_loadu_ps(a + 16)), s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(ds_e8m0_to_float_half(w[b + 1].e)),
                             DS_FN(mxfp4_block16)(&w[b + 1], _mm512_loadu_ps(a + 32), _mm512_loadu_ps(a + 48)), s1);
    }
    if (b < nb)
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(ds_e8m0_to_float_half(w[b].e)),
                             DS_FN(mxfp4_block16)(&w[b], _mm512_loadu_ps(a), _mm512_loadu_ps(a + 16)), s0);
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// 4 rows at a time: each block of activations is loaded once for four weight rows.
static DS_TARGET void DS_FN(rows_mxfp4)(int64_t n, const void *w, size_t stride, int64_t nrows,
                                        const void *va, float *out) {
    const int64_t nb = n / DS_QK_MXFP4;
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) {
        const ds_block_mxfp4 *w0 = (const ds_block_mxfp4 *)((const char *)w + (size_t)r * stride);
        const ds_block_mxfp4 *w1 = (const ds_block_mxfp4 *)((const char *)w0 + stride);
        const ds_block_mxfp4 *w2 = (const ds_block_mxfp4 *)((const char *)w0 + 2 * stride);
        const ds_block_mxfp4 *w3 = (const ds_block_mxfp4 *)((const char *)w0 + 3 * stride);
        const char *ahead = (const char *)w0 + DS_PREFETCH_GROUPS(stride) * 4 * stride;
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
        const float *a = (const float *)va;
        for (int64_t b = 0; b < nb; ++b, a += DS_QK_MXFP4) {
            if ((b & 3) == 0)
                for (int i = 0; i < 4; ++i) _mm_prefetch(ahead + (size_t)i * stride + (size_t)b * sizeof(ds_block_mxfp4), DS_PREFETCH_HINT);
            const __m512 x0 = _mm512_loadu_ps(a), x1 = _mm512_loadu_ps(a + 16);
            s0 = _mm512_fmadd_ps(_mm512_set1_ps(ds_e8m0_to_float_half(w0[b].e)), DS_FN(mxfp4_block16)(&w0[b], x0, x1), s0);
            s1 = _mm512_fmadd_ps(_mm512_set1_ps(ds_e8m0_to_float_half(w1[b].e)), DS_FN(mxfp4_block16)(&w1[b], x0, x1), s1);
            s2 = _mm512_fmadd_ps(_mm512_set1_ps(ds_e8m0_to_float_half(w2[b].e)), DS_FN(mxfp4_block16)(&w2[b], x0, x1), s2);
            s3 = _mm512_fmadd_ps(_mm512_set1_ps(ds_e8m0_to_float_half(w3[b].e)), DS_FN(mxfp4_block16)(&w3[b], x0, x1), s3);
        }
        out[r] = _mm512_reduce_add_ps(s0);
        out[r + 1] = _mm512_reduce_add_ps(s1);
        out[r + 2] = _mm512_reduce_add_ps(s2);
        out[r + 3] = _mm512_reduce_add_ps(s3);
    }
    for (; r < nrows; ++r) out[r] = DS_FN(dot_mxfp4)(n, (const char *)w + (size_t)r * stride, va);
}


// rows_mxfp4's group of 4 rows against KT tokens a[k] (out[k·ostride + j]): each block's codes decoded
// once for every token, each (row, token) accumulated as rows_mxfp4 does it.
static inline DS_INLINE DS_TARGET void DS_FN(mxfp4_group4)(int64_t nb, const char *w0, size_t stride,
                                                           const float *const *a, const int KT, float *out,
                                                           int64_t ostride) {
    const ds_block_mxfp4 *w[4];
    for (int j = 0; j < 4; ++j) w[j] = (const ds_block_mxfp4 *)(w0 + (size_t)j * stride);
    const char *ahead = w0 + DS_PREFETCH_GROUPS(stride) * 4 * stride;
    __m512 s[DS_MULTI_TOKENS][4];
    DS_UNROLL for (int k = 0; k < KT; ++k) DS_UNROLL for (int j = 0; j < 4; ++j) s[k][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        if ((b & 3) == 0)
            for (int i = 0; i < 4; ++i) _mm_prefetch(ahead + (size_t)i * stride + (size_t)b * sizeof(ds_block_mxfp4), DS_PREFETCH_HINT);
        __m512 lo[4], hi[4], scale[4];
        DS_UNROLL for (int j = 0; j < 4; ++j) {
            DS_FN(mxfp4_decode16)(&w[j][b], &lo[j], &hi[j]);
            scale[j] = _mm512_set1_ps(ds_e8m0_to_float_half(w[j][b].e));
        }
        DS_UNROLL for (int k = 0; k < KT; ++k) {
            const __m512 x0 = _mm512_loadu_ps(a[k] + b * DS_QK_MXFP4), x1 = _mm512_loadu_ps(a[k] + b * DS_QK_MXFP4 + 16);
            DS_UNROLL for (int j = 0; j < 4; ++j)
                s[k][j] = _mm512_fmadd_ps(scale[j], DS_FN(mxfp4_apply16)(lo[j], hi[j], x0, x1), s[k][j]);
        }
    }
    DS_UNROLL for (int k = 0; k < KT; ++k) DS_UNROLL for (int j = 0; j < 4; ++j) out[k * ostride + j] = _mm512_reduce_add_ps(s[k][j]);
}

// Every token gets rows_mxfp4's bits: groups of 4 rows through mxfp4_group4 (passes of DS_MULTI_TOKENS
// tokens, then 2, then 1), the last nrows % 4 rows through dot_mxfp4 as rows_mxfp4 runs them.
static DS_TARGET void DS_FN(multi_mxfp4)(int64_t n, const void *vw, size_t stride, int64_t nrows, const void *va,
                                         size_t astride, int64_t ntok, float *out, int64_t ostride) {
    const int64_t nb = n / DS_QK_MXFP4;
    const float *a[DS_MULTI_TOKENS];
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) {
        const char *w0 = (const char *)vw + (size_t)r * stride;
        int64_t t = 0;
        for (; t + DS_MULTI_TOKENS <= ntok; t += DS_MULTI_TOKENS) {
            for (int k = 0; k < DS_MULTI_TOKENS; ++k) a[k] = (const float *)((const char *)va + (size_t)(t + k) * astride);
            DS_FN(mxfp4_group4)(nb, w0, stride, a, DS_MULTI_TOKENS, out + t * ostride + r, ostride);
        }
        if (t + 2 <= ntok) {
            for (int k = 0; k < 2; ++k) a[k] = (const float *)((const char *)va + (size_t)(t + k) * astride);
            DS_FN(mxfp4_group4)(nb, w0, stride, a, 2, out + t * ostride + r, ostride);
            t += 2;
        }
        for (; t < ntok; ++t) {
            a[0] = (const float *)((const char *)va + (size_t)t * astride);
            DS_FN(mxfp4_group4)(nb, w0, stride, a, 1, out + t * ostride + r, ostride);
        }
    }
    for (; r < nrows; ++r)
        for (int64_t t = 0; t < ntok; ++t)
            out[t * ostride + r] = DS_FN(dot_mxfp4)(n, (const char *)vw + (size_t)r * stride, (const char *)va + (size_t)t * astride);
}

#else // AVX2: 8 floats per vector

// A block's 32 codes as 4 vectors of 8 floats (elements 0..15 the low nibbles, 16..31 the high).
static inline DS_INLINE DS_TARGET void DS_FN(mxfp4_decode8)(const ds_block_mxfp4 *b, __m256 c[4]) {
    const __m128i q = _mm_loadu_si128((const __m128i *)b->qs);
    const __m128i lo = DS_FN(mxfp4_codes)(q), hi = DS_FN(mxfp4_codes)(_mm_srli_epi16(q, 4));
    c[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    c[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    c[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    c[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}
// The block sum from decoded codes: the one expression every MXFP4 kernel at this level uses.
static inline DS_INLINE DS_TARGET __m256 DS_FN(mxfp4_apply8)(const __m256 c[4], const float *a) {
    __m256 s = _mm256_mul_ps(c[0], _mm256_loadu_ps(a));
    s = _mm256_fmadd_ps(c[1], _mm256_loadu_ps(a + 8), s);
    s = _mm256_fmadd_ps(c[2], _mm256_loadu_ps(a + 16), s);
    return _mm256_fmadd_ps(c[3], _mm256_loadu_ps(a + 24), s);
}
static inline DS_TARGET __m256 DS_FN(mxfp4_block8)(const ds_block_mxfp4 *b, const float *a) {
    __m256 c[4];
    DS_FN(mxfp4_decode8)(b, c);
    return DS_FN(mxfp4_apply8)(c, a);
}

static DS_TARGET float DS_FN(dot_mxfp4)(int64_t n, const void *vw, const void *va) {
    const ds_block_mxfp4 *w = (const ds_block_mxfp4 *)vw;
    const float *a = (const float *)va;
    __m256 s = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / DS_QK_MXFP4; ++b, a += DS_QK_MXFP4)
        s = _mm256_fmadd_ps(_mm256_set1_ps(ds_e8m0_to_float_half(w[b].e)), DS_FN(mxfp4_block8)(&w[b], a), s);
    return DS_FN(hsum_ps)(s);
}

static DS_TARGET void DS_FN(rows_mxfp4)(int64_t n, const void *w, size_t stride, int64_t nrows,
                                        const void *va, float *out) {
    for (int64_t r = 0; r < nrows; ++r) out[r] = DS_FN(dot_mxfp4)(n, (const char *)w + (size_t)r * stride, va);
}
// Every token gets rows_mxfp4's bits (dot_mxfp4 per row); each block's codes decoded once for 4 tokens.
static DS_TARGET void DS_FN(multi_mxfp4)(int64_t n, const void *vw, size_t stride, int64_t nrows, const void *va,
                                         size_t astride, int64_t ntok, float *out, int64_t ostride) {
    const int64_t nb = n / DS_QK_MXFP4;
    for (int64_t r = 0; r < nrows; ++r) {
        const ds_block_mxfp4 *w = (const ds_block_mxfp4 *)((const char *)vw + (size_t)r * stride);
        int64_t t = 0;
        for (; t + 4 <= ntok; t += 4) {
            const float *a[4];
            __m256 s[4];
            DS_UNROLL for (int k = 0; k < 4; ++k) {
                a[k] = (const float *)((const char *)va + (size_t)(t + k) * astride);
                s[k] = _mm256_setzero_ps();
            }
            for (int64_t b = 0; b < nb; ++b) {
                __m256 c[4];
                DS_FN(mxfp4_decode8)(&w[b], c);
                const __m256 scale = _mm256_set1_ps(ds_e8m0_to_float_half(w[b].e));
                DS_UNROLL for (int k = 0; k < 4; ++k)
                    s[k] = _mm256_fmadd_ps(scale, DS_FN(mxfp4_apply8)(c, a[k] + b * DS_QK_MXFP4), s[k]);
            }
            DS_UNROLL for (int k = 0; k < 4; ++k) out[(t + k) * ostride + r] = DS_FN(hsum_ps)(s[k]);
        }
        for (; t < ntok; ++t) out[t * ostride + r] = DS_FN(dot_mxfp4)(n, w, (const char *)va + (size_t)t * astride);
    }
}
#endif


// ---- Table ------------------------------------------------------------------------------------------

static void DS_FN(fill_float)(ds_kernel_table *t) {
#define DS_SET_FLOAT(TYPE, NAME)           \
    t->dot[TYPE] = DS_FN(dot_##NAME);      \
    t->rows[TYPE] = DS_FN(rows_##NAME);    \
    t->multi[TYPE] = DS_FN(multi_##NAME);  \
    t->own[TYPE] = 1;
    DS_SET_FLOAT(DS_TYPE_F32, f32)
    DS_SET_FLOAT(DS_TYPE_F16, f16)
    DS_SET_FLOAT(DS_TYPE_BF16, bf16)
    DS_SET_FLOAT(DS_TYPE_MXFP4, mxfp4)
#undef DS_SET_FLOAT
}
