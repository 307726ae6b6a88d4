// ds_gemm_float_x86_kernels.h — the multi-token kernel for float weights (F32, F16, BF16, MXFP4
// dequantized exactly), included by ds_gemm_x86_kernels.h once per level (same DS_FN / DS_TARGET /
// DS_G / micro-kernel primitives).

// ---- Float weights (F32 / F16 / BF16 x F32 activations) ------------------------------------------------
// Panel fq[k][lane] = weight k of row `lane` as float; per k one vfmadd per token adds 16 (8) rows.

#define DS_FCHUNK 256

typedef __m256 (*DS_FN(load8_fn))(const void *row, int64_t i);   // 8 weights from element i
typedef float (*DS_FN(load1_fn))(const void *row, int64_t i);

static inline DS_TARGET __m256 DS_FN(f32_load8)(const void *row, int64_t i) { return _mm256_loadu_ps((const float *)row + i); }
static inline DS_TARGET __m256 DS_FN(f16_load8)(const void *row, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
}
static inline DS_TARGET __m256 DS_FN(bf16_load8)(const void *row, int64_t i) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
static inline DS_TARGET float DS_FN(f32_load1)(const void *row, int64_t i) { return ((const float *)row)[i]; }
static inline DS_TARGET float DS_FN(f16_load1)(const void *row, int64_t i) { return DS_FN(half)(((const uint16_t *)row)[i]); }
static inline DS_TARGET float DS_FN(bf16_load1)(const void *row, int64_t i) { return ds_bfloat_to_float(((const uint16_t *)row)[i]); }

// MXFP4: 8 weights from element i (a multiple of 8) of a row of blocks, dequantized exactly.
static inline DS_TARGET __m256 DS_FN(mxfp4_load8)(const void *row, int64_t i) {
    const ds_block_mxfp4 *b = (const ds_block_mxfp4 *)row + i / DS_QK_MXFP4;
    const int j = (int)(i % DS_QK_MXFP4);
    __m128i q = _mm_loadl_epi64((const __m128i *)(b->qs + (j & 15)));
    if (j >= 16) q = _mm_srli_epi16(q, 4);
    const __m128i codes = DS_FN(mxfp4_codes)(q);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes)), _mm256_set1_ps(ds_e8m0_to_float_half(b->e)));
}
static inline DS_TARGET float DS_FN(mxfp4_load1)(const void *row, int64_t i) {
    const ds_block_mxfp4 *b = (const ds_block_mxfp4 *)row + i / DS_QK_MXFP4;
    const int j = (int)(i % DS_QK_MXFP4);
    const uint8_t q = b->qs[j & 15];
    return ds_kvalues_mxfp4[j >= 16 ? q >> 4 : q & 0x0F] * ds_e8m0_to_float_half(b->e);
}

static inline DS_INLINE DS_TARGET void DS_FN(mk_float)(const int T, const float (*fq)[DS_G], int kc,
        const float *act, size_t act_stride, float *out, int64_t out_stride, int valid, int first) {
    const float *a[DS_GTF];
    DS_FN(gf) f[DS_GTF];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
        a[t] = (const float *)((const char *)act + (size_t)t * act_stride);
        f[t] = first ? DS_FN(g_zero_f)() : DS_FN(g_load_out)(out + t * out_stride, valid);
    }
    for (int k = 0; k < kc; ++k) {
        const DS_FN(gf) w = DS_FN(g_load_f)(fq[k]);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) f[t] = DS_FN(g_fma)(w, DS_FN(g_bcast_f)(a[t] + k), f[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) DS_FN(g_store_out)(out + t * out_stride, f[t], valid);
}

static DS_TARGET void DS_FN(gemm_float)(DS_FN(load8_fn) load8, DS_FN(load1_fn) load1,
                                        int64_t n, const void *w, size_t row_stride, int64_t nrows,
                                        const void *act, size_t act_stride, int64_t ntok, float *out,
                                        int64_t out_stride) {
    _Alignas(64) float fq[DS_FCHUNK][DS_G];
    for (int64_t r0 = 0; r0 < nrows; r0 += DS_G) {
        const int valid = (int)(nrows - r0 < DS_G ? nrows - r0 : DS_G);
        const char *rows = (const char *)w + (size_t)r0 * row_stride;
        for (int64_t k0 = 0; k0 < n; k0 += DS_FCHUNK) {
            const int kc = (int)(n - k0 < DS_FCHUNK ? n - k0 : DS_FCHUNK);
            const int kv = kc & ~7;
            for (int half = 0; half < DS_G / 8; ++half) {
                for (int k = 0; k < kv; k += 8) {
                    __m256i r[8];
                    for (int i = 0; i < 8; ++i) {
                        const int lane = 8 * half + i;
                        r[i] = lane < valid ? _mm256_castps_si256(load8(rows + (size_t)lane * row_stride, k0 + k))
                                            : _mm256_setzero_si256();
                    }
                    DS_FN(transpose8)(r);
                    for (int i = 0; i < 8; ++i) _mm256_store_si256((__m256i *)&fq[k + i][8 * half], r[i]);
                }
            }
            for (int k = kv; k < kc; ++k)
                for (int lane = 0; lane < DS_G; ++lane)
                    fq[k][lane] = lane < valid ? load1(rows + (size_t)lane * row_stride, k0 + k) : 0.0f;
            const float *act_chunk = (const float *)act + k0;
            for (int64_t t0 = 0; t0 < ntok; t0 += DS_GTF) {
                const int tt = (int)(ntok - t0 < DS_GTF ? ntok - t0 : DS_GTF);
                const float *at = (const float *)((const char *)act_chunk + (size_t)t0 * act_stride);
                float *ot = out + t0 * out_stride + r0;
                const int first = k0 == 0;
                int t = 0;
                if (tt == DS_GTF) { DS_FN(mk_float)(DS_GTF, fq, kc, at, act_stride, ot, out_stride, valid, first); t = DS_GTF; }
#define DS_FLOAT_TAIL(W)                                                                            \
                if ((tt - t) & (W)) {                                                               \
                    DS_FN(mk_float)(W, fq, kc, (const float *)((const char *)at + (size_t)t * act_stride), \
                                    act_stride, ot + t * out_stride, out_stride, valid, first);     \
                    t += (W);                                                                       \
                }
                DS_FLOAT_TAIL(4)
                DS_FLOAT_TAIL(2)
                DS_FLOAT_TAIL(1)
#undef DS_FLOAT_TAIL
            }
        }
    }
}

#define DS_GEMM_FLOAT(NAME)                                                                    \
    static DS_TARGET void DS_FN(gemm_##NAME)(int64_t n, const void *w, size_t row_stride, int64_t nrows, \
                                             const void *act, size_t act_stride, int64_t ntok,       \
                                             float *out, int64_t out_stride) {                       \
        DS_FN(gemm_float)(DS_FN(NAME##_load8), DS_FN(NAME##_load1), n, w, row_stride, nrows,   \
                          act, act_stride, ntok, out, out_stride);                                   \
    }
DS_GEMM_FLOAT(f32)
DS_GEMM_FLOAT(f16)
DS_GEMM_FLOAT(bf16)
DS_GEMM_FLOAT(mxfp4)

