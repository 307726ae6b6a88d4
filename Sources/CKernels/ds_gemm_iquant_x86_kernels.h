// ds_gemm_iquant_x86_kernels.h — prompt (multi-token) kernels for the i-quants, included by
// ds_gemm_x86_kernels.h: the same panel and K-quant micro-kernel (16 sub-blocks of 16 with a zero
// point) as Q6_K/Q3_K. Each row's 32-value groups are decoded (ds_iquant_x86_kernels.h) to signed int8
// values w, stored as u = w + z, with one float scale per 16 values:
//   IQ2: w = grid · sign, scale d·ls/8;   IQ3_XXS: d·ls/4;   IQ3_S: d·(2s + 1);
//   IQ1: w = 8·grid ± 1 (the ±1/8 shift, times 8), scale d·ls/8;   IQ4_XS: w = kvalue, scale d·(s − 32).
// z keeps u within a byte (AVX2's vpmaddubsw also needs 2·u·127 < 2^15: u ≤ 128, so IQ4_XS, whose u
// reaches 241, has no AVX2 kernel here and runs the multi-row kernel). IQ4_NL (32-value blocks, Q8_0
// activations) runs Q8_0's kernel.

// Signed values of a decoded group: u with the signs of its sign bytes.
static inline DS_TARGET __m256i DS_FN(iq_values)(const DS_FN(iq_group) *g) {
    return _mm256_sign_epi8(g->u, g->sign);
}

// IQ1 groups hold the grid (see iq1s_apply): w = 8·g ± 1, the sign IQ1_S's shift's, IQ1_M's per row
// (IQ1_M's u is already 8·g).
static inline DS_TARGET __m256i DS_FN(iq1_eight)(__m256i g) {
    const __m256i two = _mm256_add_epi8(g, g), four = _mm256_add_epi8(two, two);
    return _mm256_add_epi8(four, four);
}
static inline DS_TARGET __m256i DS_FN(iq1s_values)(const DS_FN(iq_group) *g) {
    return _mm256_add_epi8(DS_FN(iq1_eight)(g->u), _mm256_set1_epi8(g->shift < 0 ? -1 : 1));
}
static inline DS_TARGET __m256i DS_FN(iq1m_values)(const DS_FN(iq_group) *g) {
    return _mm256_add_epi8(g->u, g->sign);
}

static inline DS_TARGET void DS_FN(iq_store_group)(DS_FN(row_sink) *o, int ib, __m256i w, int zero_point,
                                                   float scale_lo, float scale_hi) {
    _mm256_store_si256((__m256i *)(o->q + 32 * ib), _mm256_add_epi8(w, _mm256_set1_epi8((char)zero_point)));
    o->sc[(2 * ib) * DS_G] = scale_lo;
    o->sc[(2 * ib + 1) * DS_G] = scale_hi;
}

// The lane scales of a decoded group as two ints (low and high 16 values).
static inline DS_TARGET void DS_FN(iq_group_scales)(const DS_FN(iq_group) *g, int *lo, int *hi) {
    *lo = (int16_t)_mm256_extract_epi16(g->scale, 0);
    *hi = (int16_t)_mm256_extract_epi16(g->scale, 8);
}

// Every type: w = |w| with its signs (IQ1: w8 = 8·g ± 1), from the decoded group.
#define DS_IQ_UNPACK(NAME, WBLOCK, ZP, D_EXPR, FACTOR, VALUES)                                      \
    static DS_TARGET void DS_FN(unpack_##NAME)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) { \
        (void)nb;                                                                                   \
        const WBLOCK *w = (const WBLOCK *)row + first;                                              \
        const float d = D_EXPR;                                                                     \
        DS_FN(iq_block) blk;                                                                        \
        DS_FN(prep_##NAME)(w, &blk);                                                                \
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {                                                 \
            DS_FN(iq_group) g;                                                                      \
            DS_FN(decode_##NAME)(w, &blk, ib, &g);                                                  \
            int lo, hi;                                                                             \
            DS_FN(iq_group_scales)(&g, &lo, &hi);                                                   \
            DS_FN(iq_store_group)(o, ib, VALUES(&g), ZP, d * (float)lo * (FACTOR), d * (float)hi * (FACTOR)); \
        }                                                                                           \
    }

DS_IQ_UNPACK(iq2_xxs, ds_block_iq2_xxs, 64, DS_FN(half)(w->d), 0.125f, DS_FN(iq_values))
DS_IQ_UNPACK(iq2_xs, ds_block_iq2_xs, 64, DS_FN(half)(w->d), 0.125f, DS_FN(iq_values))
DS_IQ_UNPACK(iq2_s, ds_block_iq2_s, 64, DS_FN(half)(w->d), 0.125f, DS_FN(iq_values))
DS_IQ_UNPACK(iq3_xxs, ds_block_iq3_xxs, 64, DS_FN(half)(w->d), 0.25f, DS_FN(iq_values))
DS_IQ_UNPACK(iq3_s, ds_block_iq3_s, 64, DS_FN(half)(w->d), 1.0f, DS_FN(iq_values))
DS_IQ_UNPACK(iq4_xs, ds_block_iq4_xs, 128, DS_FN(half)(w->d), 1.0f, DS_FN(iq_values))
DS_IQ_UNPACK(iq1_s, ds_block_iq1_s, 16, DS_FN(half)(w->d), 0.125f, DS_FN(iq1s_values))
DS_IQ_UNPACK(iq1_m, ds_block_iq1_m, 16, DS_FN(half)(DS_FN(iq1m_scales)(w, (uint16_t[4]){0})), 0.125f, DS_FN(iq1m_values))

#undef DS_IQ_UNPACK

#if DS_X86_LEVEL >= 2
#define DS_MK_iq DS_FN(mk_k16zp_4)   // AVX-512: the run length is not used
#else
#define DS_MK_CALL_k16zp_1(T) DS_MK_SUPER_BODY(T, 16, 1, 0, 1)
DS_MK_DEFINE(k16zp_1, DS_MK_CALL_k16zp_1)
#undef DS_MK_CALL_k16zp_1
#define DS_MK_iq DS_FN(mk_k16zp_1)   // AVX2: u up to 126, one int16 pair sum per widening
#endif

#define DS_GEMM_IQUANT(NAME, WBLOCK, ZP)                                                            \
    static const DS_FN(gemm_type) DS_FN(gemm_type_##NAME) = {DS_FN(unpack_##NAME), NULL, DS_FN(prep_q8_K_zero), \
                                                            DS_MK_iq, DS_QK_K, sizeof(WBLOCK), sizeof(ds_block_q8_K), ZP}; \
    static DS_TARGET void DS_FN(gemm_##NAME)(int64_t n, const void *w, size_t row_stride, int64_t nrows, \
                                             const void *act, size_t act_stride, int64_t ntok,       \
                                             float *out, int64_t out_stride) {                       \
        const DS_FN(weight_src) src = {(const char *)w, row_stride, 0};                              \
        DS_FN(gemm_quant)(&DS_FN(gemm_type_##NAME), n, &src, nrows, act, act_stride, ntok, out, out_stride); \
    }

DS_GEMM_IQUANT(iq2_xxs, ds_block_iq2_xxs, 64)
DS_GEMM_IQUANT(iq2_xs, ds_block_iq2_xs, 64)
DS_GEMM_IQUANT(iq2_s, ds_block_iq2_s, 64)
DS_GEMM_IQUANT(iq3_xxs, ds_block_iq3_xxs, 64)
DS_GEMM_IQUANT(iq3_s, ds_block_iq3_s, 64)
DS_GEMM_IQUANT(iq1_s, ds_block_iq1_s, 16)
DS_GEMM_IQUANT(iq1_m, ds_block_iq1_m, 16)
#if DS_X86_LEVEL >= 2
DS_GEMM_IQUANT(iq4_xs, ds_block_iq4_xs, 128)
#endif

#undef DS_GEMM_IQUANT
#undef DS_MK_iq

// IQ4_NL: 32-value blocks against Q8_0, stored as Q8_0's GEMM stores its quants (u = w + 128 on
// AVX-512, signed w for AVX2's sign trick), so it runs Q8_0's micro-kernel.
static DS_TARGET void DS_FN(unpack_iq4_nl)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    const ds_block_iq4_nl *w = (const ds_block_iq4_nl *)row + first;
    for (int b = 0; b < nb; ++b) {
        DS_FN(iq_group) g;
        DS_FN(iq4_weights)(w[b].qs, &g);
        __m256i q = DS_FN(iq_values)(&g);
#if DS_X86_LEVEL >= 2
        q = _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80));
#endif
        _mm256_store_si256((__m256i *)(o->q + 32 * b), q);
        o->sc[b * DS_G] = DS_FN(half)(w[b].d);
    }
}
#if DS_X86_LEVEL >= 2
#define DS_IQ4_NL_ZERO_POINT 128
#else
#define DS_IQ4_NL_ZERO_POINT 0
#endif
static const DS_FN(gemm_type) DS_FN(gemm_type_iq4_nl) = {DS_FN(unpack_iq4_nl), NULL, DS_FN(prep_q8_0), DS_MK_q8_0, 32,
                                                        sizeof(ds_block_iq4_nl), sizeof(ds_block_q8_0), DS_IQ4_NL_ZERO_POINT};
#undef DS_IQ4_NL_ZERO_POINT
static DS_TARGET void DS_FN(gemm_iq4_nl)(int64_t n, const void *w, size_t row_stride, int64_t nrows, const void *act,
                                         size_t act_stride, int64_t ntok, float *out, int64_t out_stride) {
    const DS_FN(weight_src) src = {(const char *)w, row_stride, 0};
    DS_FN(gemm_quant)(&DS_FN(gemm_type_iq4_nl), n, &src, nrows, act, act_stride, ntok, out, out_stride);
}

static void DS_FN(fill_gemm_iquant)(ds_kernel_table *t) {
    t->gemm[DS_TYPE_IQ2_XXS] = DS_FN(gemm_iq2_xxs);
    t->gemm[DS_TYPE_IQ2_XS] = DS_FN(gemm_iq2_xs);
    t->gemm[DS_TYPE_IQ2_S] = DS_FN(gemm_iq2_s);
    t->gemm[DS_TYPE_IQ3_XXS] = DS_FN(gemm_iq3_xxs);
    t->gemm[DS_TYPE_IQ3_S] = DS_FN(gemm_iq3_s);
    t->gemm[DS_TYPE_IQ1_S] = DS_FN(gemm_iq1_s);
    t->gemm[DS_TYPE_IQ1_M] = DS_FN(gemm_iq1_m);
    t->gemm[DS_TYPE_IQ4_NL] = DS_FN(gemm_iq4_nl);
#if DS_X86_LEVEL >= 2
    t->gemm[DS_TYPE_IQ4_XS] = DS_FN(gemm_iq4_xs);
#else
    (void)DS_FN(unpack_iq4_xs);
#endif
}
