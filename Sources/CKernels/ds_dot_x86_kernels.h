// ds_dot_x86_kernels.h — x86 SIMD dot-product kernels, instantiated twice by ds_dot_x86.c.
//
// Deliberately no include guard: ds_dot_x86.c includes this file once per instruction set with
//   DS_X86_LEVEL  1 = AVX2 + FMA + F16C, 2 = AVX-512 (F, BW, VL) + VNNI
//   DS_TARGET     the matching __attribute__((target(...)))
//   DS_FN(name)   appends the level suffix to every function name.
// Quantized kernels work on 256-bit vectors, one 32-value group per vector: the weights' quants
// are widened to 32 unsigned bytes u (0..2^bits-1) and multiplied with the 32 signed activation
// bytes s; "dot_u8s8" sums groups of 4 products into 8 int32 lanes (VNNI: vpdpbusd; AVX2:
// vpmaddubsw + vpmaddwd). Zero points (q - 8, q - 16, q - 32, q - 4) are removed afterwards using
// the activation sums. Integer sums are exact; only the float accumulation order differs from the
// scalar kernels. Float weight kernels (F32/F16/BF16) use 512-bit FMA at level 2.

// ---- Level-specific primitives ------------------------------------------------------------------

// Per-block steps must inline into the row loops (else the accumulators go through memory).
#ifndef DS_INLINE
#define DS_INLINE __attribute__((always_inline))
#endif

// acc + (per int32 lane) sum of 4 products u8 * s8.
static inline DS_TARGET __m256i DS_FN(dot_u8s8)(__m256i acc, __m256i u, __m256i s) {
#if DS_X86_LEVEL >= 2
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    // vpmaddubsw saturates pair sums to int16; callers keep u <= 128, so |2*u*s| <= 32512 fits.
    const __m256i pairs = _mm256_maddubs_epi16(u, s);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}

// acc + (per int32 lane) p[2i]*q[2i] + p[2i+1]*q[2i+1] for int16 p, q.
static inline DS_TARGET __m256i DS_FN(dot_s16)(__m256i acc, __m256i p, __m256i q) {
#if DS_X86_LEVEL >= 2
    return _mm256_dpwssd_epi32(acc, p, q);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, q));
#endif
}

// 32 bits -> 32 bytes: byte j is 0xFF when bit j is set, else 0.
static inline DS_TARGET __m256i DS_FN(bits_to_bytes)(uint32_t bits) {
#if DS_X86_LEVEL >= 2
    return _mm256_movm_epi8(bits);
#else
    // Copy byte j/8 of `bits` into byte j, then test bit j%8 of it.
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)bits),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i select = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
#endif
}

// Pair-scale shuffles: for p in 0..7, bytes [2p x8, 2p+1 x8] — selects the scales of sub-blocks
// 2p (low 128-bit half of a 32-value group) and 2p+1 (high half).
static const uint8_t DS_FN(k_pair_shuffle)[8][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},
    {10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13},
    {14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

// 16 int16 lanes: 8 x scale[2p] then 8 x scale[2p+1], from 16 signed byte scales. This matches
// the int16 pair products of one 32-value group, whose first 16 values are sub-block 2p.
static inline DS_TARGET __m256i DS_FN(pair_scales)(__m128i scales8, int p) {
    const __m128i picked = _mm_shuffle_epi8(scales8, _mm_loadu_si128((const __m128i *)DS_FN(k_pair_shuffle)[p]));
    return _mm256_cvtepi8_epi16(picked);
}

// ---- Shared helpers -----------------------------------------------------------------------------

static inline DS_TARGET float DS_FN(hsum_ps)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// fp16 -> fp32 via vmovd + vcvtph2ps. Clang otherwise emits `vpinsrw $0, mem, %xmmN` with some
// live register N as the pass-through operand (only lane 0 is used), a false dependency that
// chained every block onto the FMA accumulator (Q8_0 ran ~40% slower). The empty asm statement
// only pins the value into a general register, so the conversion starts from a fresh vmovd.
static inline DS_TARGET float DS_FN(half)(uint16_t h) {
    uint32_t bits = h;
    __asm__("" : "+r"(bits));
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)bits)));
}

// 16 bytes of packed nibbles -> 32 bytes: values 0..15 are the low nibbles, 16..31 the high ones.
// (Both halves get the same 16 bytes; the upper half is shifted right by 4 within each 32-bit lane —
// bits that cross into a neighbouring byte land in its high nibble, which the mask clears.)
static inline DS_TARGET __m256i DS_FN(unpack_nibbles)(const uint8_t *p) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    const __m256i shifted = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
}

static inline DS_TARGET __m256i DS_FN(load256)(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

#ifndef DS_PREFETCH_HINT
#define DS_PREFETCH_HINT _MM_HINT_T0
#endif
#ifndef DS_PREFETCH_BYTES
#define DS_PREFETCH_BYTES 4096
#endif
// Float-weight matrices above this size use the single-row kernel (see rows_f16).
#define DS_FLOAT_STREAM_BYTES (4u << 20)
// Whole groups of 4 rows that make up at least DS_PREFETCH_BYTES.
#define DS_PREFETCH_GROUPS(stride) ((DS_PREFETCH_BYTES + 4 * (stride) - 1) / (4 * (stride)))

// Generates a single-row kernel (two interleaved accumulator states to hide FMA latency) and a
// 4-rows-at-a-time kernel (one activation load feeds four weight rows) from a per-block step.
#define DS_ROW_KERNELS(NAME, WBLOCK, ABLOCK, ELEMS, STATE, INIT, STEP, FINISH)                       \
    static DS_TARGET float DS_FN(dot_##NAME)(int64_t n, const void *vw, const void *va) {           \
        const WBLOCK *w = (const WBLOCK *)vw;                                                       \
        const ABLOCK *a = (const ABLOCK *)va;                                                       \
        const int64_t nb = n / (ELEMS);                                                             \
        STATE s0 = INIT(), s1 = INIT();                                                             \
        int64_t b = 0;                                                                              \
        for (; b + 1 < nb; b += 2) {                                                                \
            STEP(&s0, w + b, a + b);                                                                \
            STEP(&s1, w + b + 1, a + b + 1);                                                        \
        }                                                                                           \
        if (b < nb) STEP(&s0, w + b, a + b);                                                        \
        return FINISH(&s0) + FINISH(&s1);                                                           \
    }                                                                                               \
    static DS_TARGET void DS_FN(rows_##NAME)(int64_t n, const void *vw, size_t stride,             \
                                             int64_t nrows, const void *va, float *out) {           \
        const ABLOCK *a = (const ABLOCK *)va;                                                       \
        const int64_t nb = n / (ELEMS);                                                             \
        int64_t r = 0;                                                                              \
        for (; r + 4 <= nrows; r += 4) {                                                            \
            const char *base = (const char *)vw + (size_t)r * stride;                               \
            const WBLOCK *w0 = (const WBLOCK *)base;                                                \
            const WBLOCK *w1 = (const WBLOCK *)(base + stride);                                     \
            const WBLOCK *w2 = (const WBLOCK *)(base + 2 * stride);                                 \
            const WBLOCK *w3 = (const WBLOCK *)(base + 3 * stride);                                 \
            STATE s0 = INIT(), s1 = INIT(), s2 = INIT(), s3 = INIT();                               \
            /* Reading 4 rows interleaved defeats the hardware stream prefetcher (measured: */      \
            /* Q8_0 576-wide rows from DRAM at ~7 instead of ~16 GB/s), so prefetch linearly,  */      \
            /* ~4 KiB ahead, at the pace the 4 rows are consumed (exact when rows are packed). */      \
            const char *ahead = base + DS_PREFETCH_GROUPS(stride) * 4 * stride;                     \
            for (int64_t b = 0; b < nb; ++b, ahead += 4 * sizeof(WBLOCK)) {                         \
                for (size_t off = 0; off < 4 * sizeof(WBLOCK); off += 64)                           \
                    _mm_prefetch(ahead + off, DS_PREFETCH_HINT);                                    \
                STEP(&s0, w0 + b, a + b);                                                           \
                STEP(&s1, w1 + b, a + b);                                                           \
                STEP(&s2, w2 + b, a + b);                                                           \
                STEP(&s3, w3 + b, a + b);                                                           \
            }                                                                                       \
            out[r] = FINISH(&s0);                                                                   \
            out[r + 1] = FINISH(&s1);                                                               \
            out[r + 2] = FINISH(&s2);                                                               \
            out[r + 3] = FINISH(&s3);                                                               \
        }                                                                                           \
        for (; r < nrows; ++r) out[r] = DS_FN(dot_##NAME)(n, (const char *)vw + (size_t)r * stride, va); \
    }                                                                                               \
    DS_MULTI_KERNEL(NAME, WBLOCK, ABLOCK, ELEMS, STATE, INIT, STEP, FINISH)

// Activation rows processed together by a multi-row kernel (their states stay in registers).
#define DS_MULTI_TOKENS (DS_X86_LEVEL >= 2 ? 4 : 2)
#if defined(__clang__)
#define DS_UNROLL _Pragma("unroll")
#else
#define DS_UNROLL _Pragma("GCC unroll 16")
#endif

// Generates multi_NAME: out[t·ostride + r] = dot(weight row r, activation row t) for ntok activation
// rows, each token's result bitwise equal to rows_NAME on that token alone (the same groups of 4
// weight rows from the first, the same per-block steps in block order into one state per (row, token),
// the same finish; rows past the last group through rows_NAME, which runs them through dot_NAME). Each
// weight block is loaded, and unpacked, once for the KT tokens of a pass (the inlined steps share it):
// passes of DS_MULTI_TOKENS, then one of 2, then single tokens through rows_NAME.
#define DS_MULTI_KERNEL(NAME, WBLOCK, ABLOCK, ELEMS, STATE, INIT, STEP, FINISH)                      \
    static inline DS_INLINE DS_TARGET void DS_FN(multi_pass_##NAME)(int64_t nb, const char *base, size_t stride, \
                                                                    const char *va, size_t astride, \
                                                                    const int KT, float *out, int64_t ostride) { \
        const WBLOCK *w[4] = {(const WBLOCK *)base, (const WBLOCK *)(base + stride),                \
                              (const WBLOCK *)(base + 2 * stride), (const WBLOCK *)(base + 3 * stride)}; \
        const ABLOCK *a[DS_MULTI_TOKENS];                                                           \
        STATE s[DS_MULTI_TOKENS][4];                                                                \
        DS_UNROLL for (int i = 0; i < KT; ++i) {                                                    \
            a[i] = (const ABLOCK *)(va + (size_t)i * astride);                                      \
            DS_UNROLL for (int j = 0; j < 4; ++j) s[i][j] = INIT();                                 \
        }                                                                                           \
        const char *ahead = base + DS_PREFETCH_GROUPS(stride) * 4 * stride;                         \
        for (int64_t b = 0; b < nb; ++b, ahead += 4 * sizeof(WBLOCK)) {                             \
            for (size_t off = 0; off < 4 * sizeof(WBLOCK); off += 64)                               \
                _mm_prefetch(ahead + off, DS_PREFETCH_HINT);                                        \
            DS_UNROLL for (int j = 0; j < 4; ++j)                                                   \
                DS_UNROLL for (int i = 0; i < KT; ++i)                                              \
                    STEP(&s[i][j], w[j] + b, a[i] + b);                                             \
        }                                                                                           \
        DS_UNROLL for (int i = 0; i < KT; ++i)                                                      \
            DS_UNROLL for (int j = 0; j < 4; ++j)                                                   \
                out[i * ostride + j] = FINISH(&s[i][j]);                                            \
    }                                                                                               \
    __attribute__((unused)) /* the i-quants use their own (ds_iquant_x86_kernels.h) */            \
    static DS_TARGET void DS_FN(multi_##NAME)(int64_t n, const void *vw, size_t stride, int64_t nrows, \
                                              const void *va, size_t astride, int64_t ntok, float *out, \
                                              int64_t ostride) {                                    \
        const int64_t nb = n / (ELEMS);                                                             \
        int64_t r = 0;                                                                              \
        for (; r + 4 <= nrows; r += 4) {                                                            \
            const char *base = (const char *)vw + (size_t)r * stride;                               \
            int64_t t = 0;                                                                          \
            for (; t + DS_MULTI_TOKENS <= ntok; t += DS_MULTI_TOKENS)                               \
                DS_FN(multi_pass_##NAME)(nb, base, stride, (const char *)va + (size_t)t * astride, astride, \
                                         DS_MULTI_TOKENS, out + t * ostride + r, ostride);          \
            if (DS_MULTI_TOKENS > 2 && t + 2 <= ntok) {                                             \
                DS_FN(multi_pass_##NAME)(nb, base, stride, (const char *)va + (size_t)t * astride, astride, \
                                         2, out + t * ostride + r, ostride);                        \
                t += 2;                                                                             \
            }                                                                                       \
            for (; t < ntok; ++t)                                                                   \
                DS_FN(rows_##NAME)(n, base, stride, 4, (const char *)va + (size_t)t * astride,      \
                                   out + t * ostride + r);                                          \
        }                                                                                           \
        if (r < nrows)                                                                              \
            for (int64_t t = 0; t < ntok; ++t)                                                      \
                DS_FN(rows_##NAME)(n, (const char *)vw + (size_t)r * stride, stride, nrows - r,     \
                                   (const char *)va + (size_t)t * astride, out + t * ostride + r);  \
    }

// Accumulator state shared by all quantized kernels: `acc` collects scale * integer sums, `sub`
// collects terms to subtract (K-quant mins), `add4` (lane 1) collects the Q4_1/Q5_1 min terms.
typedef struct {
    __m256 acc;
    __m256 sub;
    __m128 add4;
} DS_FN(state);

static inline DS_TARGET DS_FN(state) DS_FN(state_init)(void) {
    DS_FN(state) s;
    s.acc = _mm256_setzero_ps();
    s.sub = _mm256_setzero_ps();
    s.add4 = _mm_setzero_ps();
    return s;
}

static inline DS_TARGET float DS_FN(finish_acc)(DS_FN(state) *s) { return DS_FN(hsum_ps)(s->acc); }

static inline DS_TARGET float DS_FN(finish_acc_minus_sub)(DS_FN(state) *s) {
    return DS_FN(hsum_ps)(_mm256_sub_ps(s->acc, s->sub));
}

static inline DS_TARGET float DS_FN(finish_acc_plus_add4)(DS_FN(state) *s) {
    // add4 lane 1 holds sum of m_w * s_a (lane 0 holds unused d_w * d_a products).
    return DS_FN(hsum_ps)(s->acc) + _mm_cvtss_f32(_mm_movehdup_ps(s->add4));
}

// ---- Q4_0 x Q8_0: sum (q - 8) * a = sum q*a - 8 * sum a ------------------------------------------

static inline DS_INLINE DS_TARGET void DS_FN(step_q4_0)(DS_FN(state) *s, const ds_block_q4_0 *w,
                                              const ds_block_q8_0 *a) {
    const __m256i q = DS_FN(unpack_nibbles)(w->qs);
    const __m256i y = DS_FN(load256)(a->qs);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i sum = _mm256_sub_epi32(DS_FN(dot_u8s8)(zero, q, y),
                                         DS_FN(dot_u8s8)(zero, _mm256_set1_epi8(8), y));
    const float scale = DS_FN(half)(w->d) * DS_FN(half)(a->d);
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sum), s->acc);
}
DS_ROW_KERNELS(q4_0, ds_block_q4_0, ds_block_q8_0, 32, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q4_0), DS_FN(finish_acc))

// ---- Q4_1 x Q8_1: d_w d_a sum q*a + m_w * s_a ----------------------------------------------------

static inline DS_INLINE DS_TARGET void DS_FN(step_q4_1)(DS_FN(state) *s, const ds_block_q4_1 *w,
                                              const ds_block_q8_1 *a) {
    const __m256i q = DS_FN(unpack_nibbles)(w->qs);
    const __m256i y = DS_FN(load256)(a->qs);
    const __m256i sum = DS_FN(dot_u8s8)(_mm256_setzero_si256(), q, y);
    // [d_w, m_w] * [d_a, s_a] in one conversion + multiply: lane 0 = scale, lane 1 = min term.
    uint32_t wdm, ads;
    memcpy(&wdm, &w->d, 4);
    memcpy(&ads, &a->d, 4);
    const __m128 prod = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)wdm)),
                                   _mm_cvtph_ps(_mm_cvtsi32_si128((int)ads)));
    s->add4 = _mm_add_ps(s->add4, prod);
    s->acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), _mm256_cvtepi32_ps(sum), s->acc);
}
DS_ROW_KERNELS(q4_1, ds_block_q4_1, ds_block_q8_1, 32, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q4_1), DS_FN(finish_acc_plus_add4))

// ---- Q5_0 x Q8_0: q = nibble | (high bit << 4), value q - 16 ------------------------------------

static inline DS_TARGET __m256i DS_FN(unpack_q5)(const uint8_t *qs, const uint8_t *qh) {
    uint32_t high;
    memcpy(&high, qh, 4);
#if DS_X86_LEVEL >= 2
    // Add 16 to the bytes whose bit is set in `high` (one masked add).
    const __m256i low = DS_FN(unpack_nibbles)(qs);
    return _mm256_mask_add_epi8(low, (__mmask32)high, low, _mm256_set1_epi8(0x10));
#else
    const __m256i high_bits = _mm256_and_si256(DS_FN(bits_to_bytes)(high), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(DS_FN(unpack_nibbles)(qs), high_bits);
#endif
}

static inline DS_INLINE DS_TARGET void DS_FN(step_q5_0)(DS_FN(state) *s, const ds_block_q5_0 *w,
                                              const ds_block_q8_0 *a) {
    const __m256i q = DS_FN(unpack_q5)(w->qs, w->qh);
    const __m256i y = DS_FN(load256)(a->qs);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i sum = _mm256_sub_epi32(DS_FN(dot_u8s8)(zero, q, y),
                                         DS_FN(dot_u8s8)(zero, _mm256_set1_epi8(16), y));
    const float scale = DS_FN(half)(w->d) * DS_FN(half)(a->d);
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sum), s->acc);
}
DS_ROW_KERNELS(q5_0, ds_block_q5_0, ds_block_q8_0, 32, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q5_0), DS_FN(finish_acc))

// ---- Q5_1 x Q8_1 ----------------------------------------------------------------------------------

static inline DS_INLINE DS_TARGET void DS_FN(step_q5_1)(DS_FN(state) *s, const ds_block_q5_1 *w,
                                              const ds_block_q8_1 *a) {
    const __m256i q = DS_FN(unpack_q5)(w->qs, w->qh);
    const __m256i y = DS_FN(load256)(a->qs);
    const __m256i sum = DS_FN(dot_u8s8)(_mm256_setzero_si256(), q, y);
    uint32_t wdm, ads;
    memcpy(&wdm, &w->d, 4);
    memcpy(&ads, &a->d, 4);
    const __m128 prod = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)wdm)),
                                   _mm_cvtph_ps(_mm_cvtsi32_si128((int)ads)));
    s->add4 = _mm_add_ps(s->add4, prod);
    s->acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), _mm256_cvtepi32_ps(sum), s->acc);
}
DS_ROW_KERNELS(q5_1, ds_block_q5_1, ds_block_q8_1, 32, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q5_1), DS_FN(finish_acc_plus_add4))

// ---- Q8_0 x Q8_0: signed x signed via |w| * (a with w's sign) -----------------------------------

static inline DS_INLINE DS_TARGET void DS_FN(step_q8_0)(DS_FN(state) *s, const ds_block_q8_0 *w,
                                              const ds_block_q8_0 *a) {
    const __m256i x = DS_FN(load256)(w->qs);
    const __m256i y = DS_FN(load256)(a->qs);
    const __m256i sum = DS_FN(dot_u8s8)(_mm256_setzero_si256(), _mm256_abs_epi8(x),
                                        _mm256_sign_epi8(y, x));
    const float scale = DS_FN(half)(w->d) * DS_FN(half)(a->d);
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sum), s->acc);
}
DS_ROW_KERNELS(q8_0, ds_block_q8_0, ds_block_q8_0, 32, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q8_0), DS_FN(finish_acc))

// ---- Q4_K x Q8_K ------------------------------------------------------------------------------------
// 8 sub-blocks of 32 with 6-bit scales sc_j and mins m_j:
//   dot = d_w*d_a * sum_j sc_j * sum(q*a)  -  dmin_w*d_a * sum_j m_j * (bsum_2j + bsum_2j+1).

// Unpacks the 12 scale bytes into 8 scale bytes and 8 min bytes (see ds_k4_scale_min).
static inline DS_TARGET void DS_FN(k4_scales_mins)(const uint8_t *packed, uint64_t *scales,
                                                    uint64_t *mins) {
    uint32_t u[3];
    memcpy(u, packed, 12);
    const uint32_t sc_lo = u[0] & 0x3F3F3F3Fu;
    const uint32_t sc_hi = (u[2] & 0x0F0F0F0Fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const uint32_t mn_lo = u[1] & 0x3F3F3F3Fu;
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0F0F0F0Fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    *scales = (uint64_t)sc_lo | ((uint64_t)sc_hi << 32);
    *mins = (uint64_t)mn_lo | ((uint64_t)mn_hi << 32);
}

// Sum_j m_j * (bsum_2j + bsum_2j+1) as 8 int32 lanes (to be summed later).
static inline DS_TARGET __m256i DS_FN(k4_min_products)(uint64_t mins, const int16_t *bsums) {
    const __m128i m8 = _mm_cvtsi64_si128((long long)mins);
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));   // m0,m0,m1,m1,...
    return _mm256_madd_epi16(DS_FN(load256)(bsums), m16);
}

static inline DS_INLINE DS_TARGET void DS_FN(step_q4_K)(DS_FN(state) *s, const ds_block_q4_K *w,
                                              const ds_block_q8_K *a) {
    uint64_t scales, mins;
    DS_FN(k4_scales_mins)(w->scales, &scales, &mins);
    const __m128i sc8 = _mm_cvtsi64_si128((long long)scales);
    const __m128i sc_dup = _mm_unpacklo_epi8(sc8, sc8);       // each 32-group scale twice
    const __m256i nibble_mask = _mm256_set1_epi8(0x0F);
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
        const __m256i q = DS_FN(load256)(w->qs + 32 * c);
        const __m256i lo = _mm256_and_si256(q, nibble_mask);                        // sub-block 2c
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble_mask);  // sub-block 2c+1
        const __m256i p0 = _mm256_maddubs_epi16(lo, DS_FN(load256)(a->qs + 64 * c));
        const __m256i p1 = _mm256_maddubs_epi16(hi, DS_FN(load256)(a->qs + 64 * c + 32));
        isum = DS_FN(dot_s16)(isum, p0, DS_FN(pair_scales)(sc_dup, 2 * c));
        isum = DS_FN(dot_s16)(isum, p1, DS_FN(pair_scales)(sc_dup, 2 * c + 1));
    }
    const float d = DS_FN(half)(w->d) * a->d;
    const float dmin = DS_FN(half)(w->dmin) * a->d;
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), s->acc);
    s->sub = _mm256_fmadd_ps(_mm256_set1_ps(dmin),
                             _mm256_cvtepi32_ps(DS_FN(k4_min_products)(mins, a->bsums)), s->sub);
}
#if DS_X86_LEVEL >= 2
// AVX-512: one 64-value chunk per 512-bit vector (the 32 low nibbles are sub-block 2c, the 32 high
// nibbles sub-block 2c+1, matching the activation bytes 64c..64c+63), so each chunk is one
// vpmaddubsw (u4 x s8 pairs, |sum| <= 3840: no saturation) and one vpdpwssd against the int16
// scales of its two sub-blocks. About half the instructions of the 256-bit step (measured: decode of
// a 1.7 GB Q4_K model was compute-bound on one core).
typedef struct {
    __m512 acc;
    __m256 sub;
} DS_FN(state_k512);

static inline DS_TARGET DS_FN(state_k512) DS_FN(state_k512_init)(void) {
    DS_FN(state_k512) s;
    s.acc = _mm512_setzero_ps();
    s.sub = _mm256_setzero_ps();
    return s;
}

static inline DS_TARGET float DS_FN(finish_k512)(DS_FN(state_k512) *s) {
    return _mm512_reduce_add_ps(s->acc) - DS_FN(hsum_ps)(s->sub);
}

// vpshufb patterns (within each 128-bit lane) over 4 copies of the 8 int16 scales: chunk c takes
// scale 2c for its first 16 int16 lanes (128-bit lanes 0-1) and 2c+1 for the next 16 (lanes 2-3).
#define DS_K512_PICK(j) (char)(2 * (j) + 1), (char)(2 * (j)) /* _mm512_set_epi8 lists bytes high to low */
#define DS_K512_PICK8(j) DS_K512_PICK(j), DS_K512_PICK(j), DS_K512_PICK(j), DS_K512_PICK(j), \
                         DS_K512_PICK(j), DS_K512_PICK(j), DS_K512_PICK(j), DS_K512_PICK(j)
#define DS_K512_PATTERN(c) _mm512_set_epi8(DS_K512_PICK8(2 * (c) + 1), DS_K512_PICK8(2 * (c) + 1), \
                                           DS_K512_PICK8(2 * (c)), DS_K512_PICK8(2 * (c)))

// acc + p[2i]*q[2i] + p[2i+1]*q[2i+1] per int32 lane, as one vpdpwssd. Clang's generic tuning splits
// the intrinsic into vpmaddwd + vpaddd (shorter latency, one more instruction); these loops are
// throughput-bound, so the asm keeps the single instruction.
static inline DS_INLINE DS_TARGET __m512i DS_FN(dpwssd512)(__m512i acc, __m512i p, __m512i q) {
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(p), "v"(q));
    return acc;
}

static inline DS_INLINE DS_TARGET void DS_FN(step_q4_K_512)(DS_FN(state_k512) *s, const ds_block_q4_K *w,
                                                  const ds_block_q8_K *a) {
    uint64_t scales, mins;
    DS_FN(k4_scales_mins)(w->scales, &scales, &mins);
    const __m512i sc16 = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)scales)));
    const __m512i nibble_mask = _mm512_set1_epi8(0x0F);
    __m512i isum = _mm512_setzero_si512();
#define DS_Q4K_CHUNK(c)                                                                              \
    {                                                                                                \
        const __m256i q = DS_FN(load256)(w->qs + 32 * (c));                                          \
        const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1); \
        const __m512i p = _mm512_maddubs_epi16(_mm512_and_si512(both, nibble_mask),                  \
                                               _mm512_loadu_si512(a->qs + 64 * (c)));                 \
        isum = DS_FN(dpwssd512)(isum, p, _mm512_shuffle_epi8(sc16, DS_K512_PATTERN(c)));             \
    }
    DS_Q4K_CHUNK(0) DS_Q4K_CHUNK(1) DS_Q4K_CHUNK(2) DS_Q4K_CHUNK(3)
#undef DS_Q4K_CHUNK
    const float d = DS_FN(half)(w->d) * a->d;
    const float dmin = DS_FN(half)(w->dmin) * a->d;
    s->acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(isum), s->acc);
    s->sub = _mm256_fmadd_ps(_mm256_set1_ps(dmin),
                             _mm256_cvtepi32_ps(DS_FN(k4_min_products)(mins, a->bsums)), s->sub);
}
DS_ROW_KERNELS(q4_K, ds_block_q4_K, ds_block_q8_K, DS_QK_K, DS_FN(state_k512), DS_FN(state_k512_init),
               DS_FN(step_q4_K_512), DS_FN(finish_k512))
#else
DS_ROW_KERNELS(q4_K, ds_block_q4_K, ds_block_q8_K, DS_QK_K, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q4_K), DS_FN(finish_acc_minus_sub))
#endif

// ---- Q5_K x Q8_K: Q4_K plus a fifth bit (qh[l] bit 2c for sub-block 2c, bit 2c+1 for 2c+1) ---------

static inline DS_INLINE DS_TARGET void DS_FN(step_q5_K)(DS_FN(state) *s, const ds_block_q5_K *w,
                                              const ds_block_q8_K *a) {
    uint64_t scales, mins;
    DS_FN(k4_scales_mins)(w->scales, &scales, &mins);
    const __m128i sc8 = _mm_cvtsi64_si128((long long)scales);
    const __m128i sc_dup = _mm_unpacklo_epi8(sc8, sc8);
    const __m256i nibble_mask = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    // `qh` is shifted right by 2 per chunk so that bits 0 / 1 are the current chunk's high bits;
    // constant left shifts move them to bit 4 (neighbouring bytes only reach bits 0..3).
    __m256i qh = DS_FN(load256)(w->qh);
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c, qh = _mm256_srli_epi16(qh, 2)) {
        const __m256i q = DS_FN(load256)(w->qs + 32 * c);
        const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4);
        const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4);
        const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, nibble_mask), h0);
        const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), nibble_mask), h1);
        const __m256i p0 = _mm256_maddubs_epi16(lo, DS_FN(load256)(a->qs + 64 * c));
        const __m256i p1 = _mm256_maddubs_epi16(hi, DS_FN(load256)(a->qs + 64 * c + 32));
        isum = DS_FN(dot_s16)(isum, p0, DS_FN(pair_scales)(sc_dup, 2 * c));
        isum = DS_FN(dot_s16)(isum, p1, DS_FN(pair_scales)(sc_dup, 2 * c + 1));
    }
    const float d = DS_FN(half)(w->d) * a->d;
    const float dmin = DS_FN(half)(w->dmin) * a->d;
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), s->acc);
    s->sub = _mm256_fmadd_ps(_mm256_set1_ps(dmin),
                             _mm256_cvtepi32_ps(DS_FN(k4_min_products)(mins, a->bsums)), s->sub);
}
DS_ROW_KERNELS(q5_K, ds_block_q5_K, ds_block_q8_K, DS_QK_K, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q5_K), DS_FN(finish_acc_minus_sub))

// ---- Q6_K x Q8_K --------------------------------------------------------------------------------------
// 16 sub-blocks of 16 with int8 scales; q in 0..63, value q - 32:
//   dot = d_w*d_a * (sum_s sc_s * sum(q*a) - 32 * sum_s sc_s * bsum_s).

static inline DS_INLINE DS_TARGET void DS_FN(step_q6_K)(DS_FN(state) *s, const ds_block_q6_K *w,
                                              const ds_block_q8_K *a) {
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)w->scales);
    const __m256i offset = _mm256_madd_epi16(DS_FN(load256)(a->bsums), _mm256_cvtepi8_epi16(sc8));
    const __m256i nibble_mask = _mm256_set1_epi8(0x0F);
    __m256i isum = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = DS_FN(load256)(w->ql + 64 * h);
        const __m256i ql1 = DS_FN(load256)(w->ql + 64 * h + 32);
        const __m256i qh = DS_FN(load256)(w->qh + 32 * h);
        // Values 32k + l of this half: low nibble from ql, 2 high bits from qh bits 2k..2k+1.
        const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, nibble_mask),
                                           _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
        const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, nibble_mask),
                                           _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
        const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), nibble_mask),
                                           _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
        const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), nibble_mask),
                                           _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8((char)0xC0)), 2));
        const int8_t *y = a->qs + 128 * h;
        isum = DS_FN(dot_s16)(isum, _mm256_maddubs_epi16(q0, DS_FN(load256)(y)), DS_FN(pair_scales)(sc8, 4 * h + 0));
        isum = DS_FN(dot_s16)(isum, _mm256_maddubs_epi16(q1, DS_FN(load256)(y + 32)), DS_FN(pair_scales)(sc8, 4 * h + 1));
        isum = DS_FN(dot_s16)(isum, _mm256_maddubs_epi16(q2, DS_FN(load256)(y + 64)), DS_FN(pair_scales)(sc8, 4 * h + 2));
        isum = DS_FN(dot_s16)(isum, _mm256_maddubs_epi16(q3, DS_FN(load256)(y + 96)), DS_FN(pair_scales)(sc8, 4 * h + 3));
    }
    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(offset, 5));
    const float d = DS_FN(half)(w->d) * a->d;
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), s->acc);
}
DS_ROW_KERNELS(q6_K, ds_block_q6_K, ds_block_q8_K, DS_QK_K, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q6_K), DS_FN(finish_acc))

// ---- Q3_K x Q8_K: q = low 2 bits | (hmask bit << 2) in 0..7, value q - 4 ---------------------------

// The 16 signed scales of a Q3_K block as bytes, computed in registers (same word arithmetic as
// ds_q3k_scale_codes: words 0,1 give the low nibbles of codes 0..7 / 8..15 (shifted by 0 / 4),
// word 2 gives the two high bits of each code, shifted by 0, 2, 4, 6 for codes 4k..4k+3).
static inline DS_TARGET __m128i DS_FN(q3k_scales)(const uint8_t *packed) {
    uint32_t high;
    memcpy(&high, packed + 8, 4);
    const __m128i words = _mm_loadl_epi64((const __m128i *)packed);                 // w0, w1
    const __m128i low = _mm_and_si128(
        _mm_srlv_epi32(_mm_shuffle_epi32(words, _MM_SHUFFLE(1, 0, 1, 0)), _mm_setr_epi32(0, 0, 4, 4)),
        _mm_set1_epi8(0x0F));
    const __m128i high_bits = _mm_and_si128(
        _mm_srlv_epi32(_mm_set1_epi32((int)high), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(0x03));
    const __m128i codes = _mm_or_si128(low, _mm_slli_epi32(high_bits, 4));
    return _mm_sub_epi8(codes, _mm_set1_epi8(32));
}

static inline DS_INLINE DS_TARGET void DS_FN(step_q3_K)(DS_FN(state) *s, const ds_block_q3_K *w,
                                              const ds_block_q8_K *a) {
    const __m128i sc8 = DS_FN(q3k_scales)(w->scales);
    const __m256i offset = _mm256_madd_epi16(DS_FN(load256)(a->bsums), _mm256_cvtepi8_epi16(sc8));
    const __m256i two_bits = _mm256_set1_epi8(0x03), bit2 = _mm256_set1_epi8(0x04);
    // `high` holds hmask shifted right by the group index: its bit 0 is the current high bit,
    // moved to bit 2 by a left shift of 2 (all shifts are by constants).
    __m256i high = DS_FN(load256)(w->hmask);
    __m256i isum = _mm256_setzero_si256();
#define DS_Q3K_GROUP(c, k)                                                                         \
    do {                                                                                           \
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(q, 2 * (k)), two_bits);            \
        const __m256i u = _mm256_or_si256(low, _mm256_and_si256(_mm256_slli_epi16(high, 2), bit2)); \
        const __m256i p = _mm256_maddubs_epi16(u, DS_FN(load256)(a->qs + 128 * (c) + 32 * (k))); \
        isum = DS_FN(dot_s16)(isum, p, DS_FN(pair_scales)(sc8, 4 * (c) + (k)));                   \
        high = _mm256_srli_epi16(high, 1);                                                         \
    } while (0)
    {
        const __m256i q = DS_FN(load256)(w->qs);
        DS_Q3K_GROUP(0, 0); DS_Q3K_GROUP(0, 1); DS_Q3K_GROUP(0, 2); DS_Q3K_GROUP(0, 3);
    }
    {
        const __m256i q = DS_FN(load256)(w->qs + 32);
        DS_Q3K_GROUP(1, 0); DS_Q3K_GROUP(1, 1); DS_Q3K_GROUP(1, 2); DS_Q3K_GROUP(1, 3);
    }
#undef DS_Q3K_GROUP
    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(offset, 2));
    const float d = DS_FN(half)(w->d) * a->d;
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), s->acc);
}
DS_ROW_KERNELS(q3_K, ds_block_q3_K, ds_block_q8_K, DS_QK_K, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q3_K), DS_FN(finish_acc))

// ---- Q2_K x Q8_K: x = d*sc*q - dmin*m, q in 0..3 ----------------------------------------------------

static inline DS_INLINE DS_TARGET void DS_FN(step_q2_K)(DS_FN(state) *s, const ds_block_q2_K *w,
                                              const ds_block_q8_K *a) {
    const __m128i packed = _mm_loadu_si128((const __m128i *)w->scales);
    const __m128i sc8 = _mm_and_si128(packed, _mm_set1_epi8(0x0F));
    const __m128i mn8 = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F));
    const __m256i min_products = _mm256_madd_epi16(DS_FN(load256)(a->bsums), _mm256_cvtepu8_epi16(mn8));
    const __m256i two_bits = _mm256_set1_epi8(0x03);
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 2; ++c) {
        __m256i q = DS_FN(load256)(w->qs + 32 * c);
        for (int k = 0; k < 4; ++k, q = _mm256_srli_epi16(q, 2)) {   // bit pair k moved to bits 0..1
            const __m256i u = _mm256_and_si256(q, two_bits);
            const __m256i p = _mm256_maddubs_epi16(u, DS_FN(load256)(a->qs + 128 * c + 32 * k));
            isum = DS_FN(dot_s16)(isum, p, DS_FN(pair_scales)(sc8, 4 * c + k));
        }
    }
    const float d = DS_FN(half)(w->d) * a->d;
    const float dmin = DS_FN(half)(w->dmin) * a->d;
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), s->acc);
    s->sub = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(min_products), s->sub);
}
DS_ROW_KERNELS(q2_K, ds_block_q2_K, ds_block_q8_K, DS_QK_K, DS_FN(state), DS_FN(state_init),
               DS_FN(step_q2_K), DS_FN(finish_acc_minus_sub))

// (DS_ROW_KERNELS stays defined for ds_iquant_x86_kernels.h, which undefines it.)

// ---- Table ------------------------------------------------------------------------------------------

static void DS_FN(fill)(ds_kernel_table *t) {
// A type's multi-row entry is always set with its rows entry (an inherited one would not match it).
#define DS_SET(TYPE, NAME)                 \
    t->dot[TYPE] = DS_FN(dot_##NAME);      \
    t->rows[TYPE] = DS_FN(rows_##NAME);    \
    t->multi[TYPE] = NULL;                 \
    t->own[TYPE] = 1;
#define DS_SET_MULTI(TYPE, NAME)           \
    DS_SET(TYPE, NAME)                     \
    t->multi[TYPE] = DS_FN(multi_##NAME);
    DS_SET_MULTI(DS_TYPE_Q4_0, q4_0)
    DS_SET_MULTI(DS_TYPE_Q4_1, q4_1)
    DS_SET_MULTI(DS_TYPE_Q5_0, q5_0)
    DS_SET_MULTI(DS_TYPE_Q5_1, q5_1)
    DS_SET_MULTI(DS_TYPE_Q8_0, q8_0)
    DS_SET_MULTI(DS_TYPE_Q2_K, q2_K)
    DS_SET_MULTI(DS_TYPE_Q3_K, q3_K)
    DS_SET_MULTI(DS_TYPE_Q4_K, q4_K)
    DS_SET_MULTI(DS_TYPE_Q5_K, q5_K)
    DS_SET_MULTI(DS_TYPE_Q6_K, q6_K)
#undef DS_SET_MULTI
#undef DS_SET
}
