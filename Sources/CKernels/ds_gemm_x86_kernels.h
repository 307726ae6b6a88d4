// ds_gemm_x86_kernels.h — x86 multi-token (prefill) kernels, instantiated twice by ds_dot_x86.c
// right after ds_dot_x86_kernels.h (same DS_X86_LEVEL / DS_TARGET / DS_FN, and it reuses that
// file's helpers: half, unpack_nibbles, unpack_q5, k4_scales_mins, q3k_scales, load256).
//
// out[t*out_stride + r] = dot(weight row r, activation row t).
//
// Idea: unpack every weight block ONCE per call (not once per token) into a "panel" held in L1,
// then run it against many tokens. The panel puts one weight row in each 32-bit vector lane
// (G = 16 rows per zmm with AVX-512, 8 per ymm with AVX2):
//
//   panel.q[k][lane] = quant bytes 4k..4k+3 of row `lane` (unsigned, 0..2^bits-1)
//
// so one vpdpbusd of panel.q[k] with activation bytes 4k..4k+3 of token t broadcast to all lanes
// adds the 4 products of each row to that row's lane: 64 multiply-adds per instruction, no
// horizontal sums. Per (row group, token) we keep one int32 vector per (sub-)block and one float
// accumulator; the float scales are applied once per (sub-)block:
//
//   32-element blocks (Q4_0, Q5_0, Q8_0, Q4_1, Q5_1), a = d_a * a8:
//     dot += d_w * d_a * (sum u*a8 - z * sum a8)      [+ m_w * s_a for Q4_1 / Q5_1]
//     u = q + z is the unsigned quant (z = 8, 16, 128 for Q4_0, Q5_0, Q8_0), so the zero point
//     becomes one per-(token, block) integer -z*sum(a8): it seeds the int32 accumulator.
//   K-quants (one 256-element super-block per chunk), sub-blocks j of 32 (Q4_K, Q5_K) or 16:
//     dot += d_a * ( sum_j (d_w*sc_j) * S_j  -  dmin_w * sum_j m_j * bsum_j )
//     S_j = sum u*a8 - z * bsum_j (z = 32 for Q6_K, 4 for Q3_K, else 0); the mins use vpdpwssd
//     on int16 pairs (m_2p, m_2p+1) x (bsum_2p, bsum_2p+1).
//   d_w*sc_j and d_w*d_a are exact in float (11-bit x 8-bit / 11-bit x 11-bit mantissas), so the
//   only rounding is the float accumulation, as in the single-row kernels.
//
// Loop nest (ds_gemm is called with ~16-64 rows and up to ~512 tokens):
//   for each block of up to DS_TOKEN_BLOCK tokens, each group of up to DS_GRMAX rows:
//     for each chunk of 256 weights (one K super-block, or 8 blocks of 32):
//       unpack + transpose the chunk of all those rows into the panel (L1, ~24 KiB)
//       for each tile of DS_GT tokens:
//         per-token activation terms (d_a, -z*sum a8, ...) for the chunk
//         for each 16-row panel group: micro-kernel DS_G rows x DS_GT tokens, adding into `out`
// `out` carries the partial sums between chunks (the tile is loaded and stored once per chunk).
// Packed weights (ds_pack.c) fill the same panel without the unpack + transpose
// (ds_packed_x86_kernels.h), so ds_gemm_packed gives every (row, token) the bits ds_gemm gives it;
// with a few tokens a pass takes one 16-row group, so the weights stream in order.
// Float weights (F32/F16/BF16) use the same panel idea with float lanes and vfmadd.

// ---- Level-specific vector primitives ----------------------------------------------------------

#if DS_X86_LEVEL >= 2
#define DS_G 16          // rows per panel group = 32-bit lanes of a zmm
#define DS_GT 8          // tokens per micro-tile
#define DS_GTF 8         // tokens per micro-tile, float weights
typedef __m512i DS_FN(gi);
typedef __m512 DS_FN(gf);
static inline DS_TARGET __m512i DS_FN(g_zero_i)(void) { return _mm512_setzero_si512(); }
static inline DS_TARGET __m512 DS_FN(g_zero_f)(void) { return _mm512_setzero_ps(); }
static inline DS_TARGET __m512i DS_FN(g_load_i)(const void *p) { return _mm512_load_si512(p); }
static inline DS_TARGET __m512 DS_FN(g_load_f)(const float *p) { return _mm512_load_ps(p); }
static inline DS_TARGET __m512i DS_FN(g_bcast_i)(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
static inline DS_TARGET __m512 DS_FN(g_bcast_f)(const float *p) { return _mm512_set1_ps(*p); }
// acc + per lane sum of 4 products u8 (w) x s8 (a).
static inline DS_TARGET __m512i DS_FN(g_dot)(__m512i acc, __m512i w, __m512i a) {
    return _mm512_dpbusd_epi32(acc, w, a);
}
// acc + per lane p.lo*q.lo + p.hi*q.hi (int16 pairs).
static inline DS_TARGET __m512i DS_FN(g_dot16)(__m512i acc, __m512i p, __m512i q) {
    return _mm512_dpwssd_epi32(acc, p, q);
}
static inline DS_TARGET __m512 DS_FN(g_cvt)(__m512i v) { return _mm512_cvtepi32_ps(v); }
static inline DS_TARGET __m512 DS_FN(g_fma)(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
static inline DS_TARGET __m512 DS_FN(g_fnma)(__m512 a, __m512 b, __m512 c) { return _mm512_fnmadd_ps(a, b, c); }
static inline DS_TARGET __m512 DS_FN(g_mul)(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
// First `valid` lanes of out (the rest of the group are padding rows).
static inline DS_TARGET __m512 DS_FN(g_load_out)(const float *p, int valid) {
    if (valid == DS_G) return _mm512_loadu_ps(p);
    return _mm512_maskz_loadu_ps((__mmask16)((1u << valid) - 1), p);
}
static inline DS_TARGET void DS_FN(g_store_out)(float *p, __m512 v, int valid) {
    if (valid == DS_G) _mm512_storeu_ps(p, v);
    else _mm512_mask_storeu_ps(p, (__mmask16)((1u << valid) - 1), v);
}
#else
#define DS_G 8
#define DS_GT 4          // 16 ymm registers: 4 int + 4 float accumulators + temporaries
#define DS_GTF 8
typedef __m256i DS_FN(gi);
typedef __m256 DS_FN(gf);
static inline DS_TARGET __m256i DS_FN(g_zero_i)(void) { return _mm256_setzero_si256(); }
static inline DS_TARGET __m256 DS_FN(g_zero_f)(void) { return _mm256_setzero_ps(); }
static inline DS_TARGET __m256i DS_FN(g_load_i)(const void *p) { return _mm256_load_si256((const __m256i *)p); }
static inline DS_TARGET __m256 DS_FN(g_load_f)(const float *p) { return _mm256_load_ps(p); }
static inline DS_TARGET __m256i DS_FN(g_bcast_i)(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
static inline DS_TARGET __m256 DS_FN(g_bcast_f)(const float *p) { return _mm256_broadcast_ss(p); }
// vpmaddubsw saturates pair sums at int16: callers keep u <= 127 (Q8_0 uses the sign trick).
static inline DS_TARGET __m256i DS_FN(g_dot)(__m256i acc, __m256i w, __m256i a) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1)));
}
static inline DS_TARGET __m256i DS_FN(g_dot16)(__m256i acc, __m256i p, __m256i q) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, q));
}
static inline DS_TARGET __m256 DS_FN(g_cvt)(__m256i v) { return _mm256_cvtepi32_ps(v); }
static inline DS_TARGET __m256 DS_FN(g_fma)(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
static inline DS_TARGET __m256 DS_FN(g_fnma)(__m256 a, __m256 b, __m256 c) { return _mm256_fnmadd_ps(a, b, c); }
static inline DS_TARGET __m256 DS_FN(g_mul)(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
static inline DS_TARGET __m256i DS_FN(g_lane_mask)(int valid) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline DS_TARGET __m256 DS_FN(g_load_out)(const float *p, int valid) {
    if (valid == DS_G) return _mm256_loadu_ps(p);
    return _mm256_maskload_ps(p, DS_FN(g_lane_mask)(valid));
}
static inline DS_TARGET void DS_FN(g_store_out)(float *p, __m256 v, int valid) {
    if (valid == DS_G) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, DS_FN(g_lane_mask)(valid), v);
}
#endif

#define DS_GRMAX 64                      // rows unpacked per chunk (all share one activation prep)
#define DS_NGROUPS (DS_GRMAX / DS_G)
#define DS_CHUNK 256                     // weights per chunk and row
#define DS_CHUNK_DW (DS_CHUNK / 4)       // 32-bit panel lines per chunk
#define DS_TOKEN_BLOCK 512               // tokens per pass over the weights

// Unpacked weights of DS_GRMAX rows x one chunk (lane = row within a group of DS_G).
typedef struct {
    _Alignas(64) uint32_t q[DS_NGROUPS][DS_CHUNK_DW][DS_G];  // quant bytes 4k..4k+3 per row
    _Alignas(64) float sc[DS_NGROUPS][16][DS_G];             // d_w per block / d_w*sc_j per sub-block
    _Alignas(64) float aux[DS_NGROUPS][8][DS_G];             // m_w per block (Q4_1/Q5_1); [0] = dmin (K)
    _Alignas(64) uint32_t mins[DS_NGROUPS][8][DS_G];         // int16 pairs (m_2p, m_2p+1) (K mins)
} DS_FN(panel);

// Where one row's unpacked chunk goes: bytes row-major in `q` (transposed later), scales straight
// into its panel lane (consecutive sub-blocks DS_G floats apart).
typedef struct {
    uint8_t *q;
    float *sc;
    float *aux;
    uint32_t *mins;
} DS_FN(row_sink);

// Per-token activation terms of one chunk.
typedef struct {
    _Alignas(64) float d[8];      // d_a per 32-block
    float s[8];                   // Q8_1 s = d_a * sum(a8) per block
    int32_t z[16];                // -z * sum(a8) per block, or -z * bsum_j per K sub-block
    uint32_t pairs[4];            // int16 pairs (bsum32_2p, bsum32_2p+1) of 32-element K sub-blocks
} DS_FN(prep);

// ---- Transposition into the panel ----------------------------------------------------------------

// 8 rows x 8 dwords -> 8 dwords x 8 rows (r[i] holds dwords k..k+7 of row i; afterwards r[k]
// holds dword k of rows 0..7).
static inline DS_INLINE DS_TARGET void DS_FN(transpose8)(__m256i r[8]) {
    const __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    r[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    r[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    r[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    r[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

// tmp: DS_G rows of DS_CHUNK bytes -> panel lines q[k][lane] for k < ndw (a multiple of 8).
static DS_TARGET void DS_FN(transpose_to_panel)(const uint8_t *tmp, int ndw, uint32_t (*q)[DS_G]) {
    for (int k = 0; k < ndw; k += 8) {
        for (int half = 0; half < DS_G / 8; ++half) {
            __m256i r[8];
            for (int i = 0; i < 8; ++i)
                r[i] = _mm256_load_si256((const __m256i *)(tmp + (size_t)(8 * half + i) * DS_CHUNK + 4 * k));
            DS_FN(transpose8)(r);
            for (int i = 0; i < 8; ++i) _mm256_store_si256((__m256i *)&q[k + i][8 * half], r[i]);
        }
    }
}

// ---- Row unpackers: one chunk of one row -> unsigned bytes in activation order + scales ---------
// Signature: (row, first block of the chunk, blocks in the chunk, sink).

typedef void (*DS_FN(unpack_fn))(const void *row, int64_t first, int nblocks, DS_FN(row_sink) *out);

static DS_TARGET void DS_FN(unpack_q4_0)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    const ds_block_q4_0 *w = (const ds_block_q4_0 *)row + first;
    for (int b = 0; b < nb; ++b) {
        _mm256_store_si256((__m256i *)(o->q + 32 * b), DS_FN(unpack_nibbles)(w[b].qs));
        o->sc[b * DS_G] = DS_FN(half)(w[b].d);
    }
}

static DS_TARGET void DS_FN(unpack_q4_1)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    const ds_block_q4_1 *w = (const ds_block_q4_1 *)row + first;
    for (int b = 0; b < nb; ++b) {
        _mm256_store_si256((__m256i *)(o->q + 32 * b), DS_FN(unpack_nibbles)(w[b].qs));
        o->sc[b * DS_G] = DS_FN(half)(w[b].d);
        o->aux[b * DS_G] = DS_FN(half)(w[b].m);
    }
}

static DS_TARGET void DS_FN(unpack_q5_0)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    const ds_block_q5_0 *w = (const ds_block_q5_0 *)row + first;
    for (int b = 0; b < nb; ++b) {
        _mm256_store_si256((__m256i *)(o->q + 32 * b), DS_FN(unpack_q5)(w[b].qs, w[b].qh));
        o->sc[b * DS_G] = DS_FN(half)(w[b].d);
    }
}

static DS_TARGET void DS_FN(unpack_q5_1)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    const ds_block_q5_1 *w = (const ds_block_q5_1 *)row + first;
    for (int b = 0; b < nb; ++b) {
        _mm256_store_si256((__m256i *)(o->q + 32 * b), DS_FN(unpack_q5)(w[b].qs, w[b].qh));
        o->sc[b * DS_G] = DS_FN(half)(w[b].d);
        o->aux[b * DS_G] = DS_FN(half)(w[b].m);
    }
}

// Q8_0: AVX-512 stores u = q + 128 (zero point 128, vpdpbusd takes any u8); AVX2 keeps q signed
// for the |q| x sign(a, q) trick (vpmaddubsw would saturate on u up to 255).
static DS_TARGET void DS_FN(unpack_q8_0)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    const ds_block_q8_0 *w = (const ds_block_q8_0 *)row + first;
    for (int b = 0; b < nb; ++b) {
        __m256i q = DS_FN(load256)(w[b].qs);
#if DS_X86_LEVEL >= 2
        q = _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80));
#endif
        _mm256_store_si256((__m256i *)(o->q + 32 * b), q);
        o->sc[b * DS_G] = DS_FN(half)(w[b].d);
    }
}

// K-quants: nb is always 1 (the chunk is one super-block).
static DS_TARGET void DS_FN(unpack_q4_K)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    (void)nb;
    const ds_block_q4_K *w = (const ds_block_q4_K *)row + first;
    uint64_t scales, mins;
    DS_FN(k4_scales_mins)(w->scales, &scales, &mins);
    const float d = DS_FN(half)(w->d);
    for (int j = 0; j < 8; ++j) o->sc[j * DS_G] = d * (float)((scales >> (8 * j)) & 0xFF);
    for (int p = 0; p < 4; ++p)
        o->mins[p * DS_G] = (uint32_t)((mins >> (16 * p)) & 0xFF) | (uint32_t)((mins >> (16 * p + 8)) & 0xFF) << 16;
    o->aux[0] = DS_FN(half)(w->dmin);
    const __m256i mask = _mm256_set1_epi8(0x0F);
    for (int c = 0; c < 4; ++c) {   // bytes 32c..: low nibbles = sub-block 2c, high = 2c+1
        const __m256i q = DS_FN(load256)(w->qs + 32 * c);
        _mm256_store_si256((__m256i *)(o->q + 64 * c), _mm256_and_si256(q, mask));
        _mm256_store_si256((__m256i *)(o->q + 64 * c + 32), _mm256_and_si256(_mm256_srli_epi16(q, 4), mask));
    }
}

static DS_TARGET void DS_FN(unpack_q5_K)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    (void)nb;
    const ds_block_q5_K *w = (const ds_block_q5_K *)row + first;
    uint64_t scales, mins;
    DS_FN(k4_scales_mins)(w->scales, &scales, &mins);
    const float d = DS_FN(half)(w->d);
    for (int j = 0; j < 8; ++j) o->sc[j * DS_G] = d * (float)((scales >> (8 * j)) & 0xFF);
    for (int p = 0; p < 4; ++p)
        o->mins[p * DS_G] = (uint32_t)((mins >> (16 * p)) & 0xFF) | (uint32_t)((mins >> (16 * p + 8)) & 0xFF) << 16;
    o->aux[0] = DS_FN(half)(w->dmin);
    const __m256i mask = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    __m256i qh = DS_FN(load256)(w->qh);   // bit 2c / 2c+1 of byte l: fifth bit of sub-block 2c / 2c+1
    for (int c = 0; c < 4; ++c, qh = _mm256_srli_epi16(qh, 2)) {
        const __m256i q = DS_FN(load256)(w->qs + 32 * c);
        const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, mask), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
        const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask),
                                           _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
        _mm256_store_si256((__m256i *)(o->q + 64 * c), lo);
        _mm256_store_si256((__m256i *)(o->q + 64 * c + 32), hi);
    }
}

static DS_TARGET void DS_FN(unpack_q6_K)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    (void)nb;
    const ds_block_q6_K *w = (const ds_block_q6_K *)row + first;
    const float d = DS_FN(half)(w->d);
    for (int j = 0; j < 16; ++j) o->sc[j * DS_G] = d * (float)w->scales[j];
    const __m256i mask = _mm256_set1_epi8(0x0F);
    for (int h = 0; h < 2; ++h) {   // values 128h + 32k + l: 4 low bits from ql, 2 high from qh
        const __m256i ql0 = DS_FN(load256)(w->ql + 64 * h), ql1 = DS_FN(load256)(w->ql + 64 * h + 32);
        const __m256i qh = DS_FN(load256)(w->qh + 32 * h);
        uint8_t *dst = o->q + 128 * h;
        _mm256_store_si256((__m256i *)dst, _mm256_or_si256(_mm256_and_si256(ql0, mask),
                           _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4)));
        _mm256_store_si256((__m256i *)(dst + 32), _mm256_or_si256(_mm256_and_si256(ql1, mask),
                           _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2)));
        _mm256_store_si256((__m256i *)(dst + 64), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask),
                           _mm256_and_si256(qh, _mm256_set1_epi8(0x30))));
        _mm256_store_si256((__m256i *)(dst + 96), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask),
                           _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8((char)0xC0)), 2)));
    }
}

// Q3_K: value 128c + 32k + l = ((qs[32c+l] >> 2k) & 3) | (hmask bit 4c+k of byte l) << 2, zero point 4.
static DS_TARGET void DS_FN(unpack_q3_K)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    (void)nb;
    const ds_block_q3_K *w = (const ds_block_q3_K *)row + first;
    const float d = DS_FN(half)(w->d);
    int8_t sc[16];
    _mm_storeu_si128((__m128i *)sc, DS_FN(q3k_scales)(w->scales));
    for (int j = 0; j < 16; ++j) o->sc[j * DS_G] = d * (float)sc[j];
    const __m256i two_bits = _mm256_set1_epi8(0x03), bit2 = _mm256_set1_epi8(0x04);
    __m256i high = DS_FN(load256)(w->hmask);   // shifted right once per group: bit 0 = current bit
    for (int c = 0; c < 2; ++c) {
        __m256i q = DS_FN(load256)(w->qs + 32 * c);
        for (int k = 0; k < 4; ++k, q = _mm256_srli_epi16(q, 2), high = _mm256_srli_epi16(high, 1)) {
            const __m256i u = _mm256_or_si256(_mm256_and_si256(q, two_bits),
                                              _mm256_and_si256(_mm256_slli_epi16(high, 2), bit2));
            _mm256_store_si256((__m256i *)(o->q + 128 * c + 32 * k), u);
        }
    }
}

// Q2_K: value 128c + 32k + l = (qs[32c+l] >> 2k) & 3; scales byte j: low nibble sc_j, high m_j.
static DS_TARGET void DS_FN(unpack_q2_K)(const void *row, int64_t first, int nb, DS_FN(row_sink) *o) {
    (void)nb;
    const ds_block_q2_K *w = (const ds_block_q2_K *)row + first;
    const float d = DS_FN(half)(w->d);
    for (int j = 0; j < 16; ++j) o->sc[j * DS_G] = d * (float)(w->scales[j] & 0xF);
    for (int p = 0; p < 8; ++p)
        o->mins[p * DS_G] = (uint32_t)(w->scales[2 * p] >> 4) | (uint32_t)(w->scales[2 * p + 1] >> 4) << 16;
    o->aux[0] = DS_FN(half)(w->dmin);
    const __m256i two_bits = _mm256_set1_epi8(0x03);
    for (int c = 0; c < 2; ++c) {
        __m256i q = DS_FN(load256)(w->qs + 32 * c);
        for (int k = 0; k < 4; ++k, q = _mm256_srli_epi16(q, 2))
            _mm256_store_si256((__m256i *)(o->q + 128 * c + 32 * k), _mm256_and_si256(q, two_bits));
    }
}

// Unpacks rows [0, valid) of a group (row i at w + i*stride) for blocks [first, first+nb) and
// transposes them into panel group `g`; lanes >= valid get zero quants and zero scales.
static DS_TARGET void DS_FN(fill_group)(DS_FN(unpack_fn) unpack, int block_elems, const char *w,
                                        size_t stride, int valid, int64_t first, int nb,
                                        DS_FN(panel) *p, int g, uint8_t *tmp) {
    const int bytes = nb * block_elems;
    for (int lane = 0; lane < DS_G; ++lane) {
        DS_FN(row_sink) sink = {tmp + (size_t)lane * DS_CHUNK, &p->sc[g][0][lane], &p->aux[g][0][lane],
                                &p->mins[g][0][lane]};
        if (lane < valid) {
            unpack(w + (size_t)lane * stride, first, nb, &sink);
        } else {
            memset(sink.q, 0, (size_t)bytes);
            for (int j = 0; j < 16; ++j) p->sc[g][j][lane] = 0.0f;
            for (int j = 0; j < 8; ++j) p->aux[g][j][lane] = 0.0f;
            for (int j = 0; j < 8; ++j) p->mins[g][j][lane] = 0;
        }
    }
    DS_FN(transpose_to_panel)(tmp, bytes / 4, p->q[g]);
}

// ---- Activation terms per token and chunk ----------------------------------------------------------

// sum of the 32 int8 of each of 4 blocks -> 4 int32 (vpsadbw on a ^ 0x80 sums a + 128).
static inline DS_TARGET __m128i DS_FN(sum4_blocks_q8_0)(const ds_block_q8_0 *a) {
    const __m256i flip = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    const __m256i s0 = _mm256_sad_epu8(_mm256_xor_si256(DS_FN(load256)(a[0].qs), flip), zero);
    const __m256i s1 = _mm256_sad_epu8(_mm256_xor_si256(DS_FN(load256)(a[1].qs), flip), zero);
    const __m256i s2 = _mm256_sad_epu8(_mm256_xor_si256(DS_FN(load256)(a[2].qs), flip), zero);
    const __m256i s3 = _mm256_sad_epu8(_mm256_xor_si256(DS_FN(load256)(a[3].qs), flip), zero);
    // Each s holds 4 partial sums in dwords 0, 2, 4, 6 (dwords 1, 3, 5, 7 are zero).
    const __m256i s01 = _mm256_hadd_epi32(s0, s1), s23 = _mm256_hadd_epi32(s2, s3);
    const __m256i all = _mm256_hadd_epi32(s01, s23);   // per 128-bit half: partial sums of blocks 0..3
    const __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(all), _mm256_extracti128_si256(all, 1));
    return _mm_sub_epi32(sum, _mm_set1_epi32(32 * 128));
}

// Q8_0 activations: d_a and -zero_point * sum(a8) per block.
static DS_TARGET void DS_FN(prep_q8_0)(const char *act, size_t stride, int ntok, int64_t first, int nb,
                                       int zero_point, DS_FN(prep) *pp) {
    for (int t = 0; t < ntok; ++t) {
        const ds_block_q8_0 *a = (const ds_block_q8_0 *)(act + (size_t)t * stride) + first;
        for (int b = 0; b < nb; ++b) pp[t].d[b] = DS_FN(half)(a[b].d);
        if (!zero_point) continue;
        int b = 0;
        for (; b + 4 <= nb; b += 4) {
            const __m128i s = DS_FN(sum4_blocks_q8_0)(a + b);
            _mm_storeu_si128((__m128i *)&pp[t].z[b], _mm_mullo_epi32(s, _mm_set1_epi32(-zero_point)));
        }
        for (; b < nb; ++b) {
            int sum = 0;
            for (int j = 0; j < 32; ++j) sum += a[b].qs[j];
            pp[t].z[b] = -zero_point * sum;
        }
    }
}

// Q8_1 activations: d_a and s_a per block.
static DS_TARGET void DS_FN(prep_q8_1)(const char *act, size_t stride, int ntok, int64_t first, int nb,
                                       int zero_point, DS_FN(prep) *pp) {
    (void)zero_point;
    for (int t = 0; t < ntok; ++t) {
        const ds_block_q8_1 *a = (const ds_block_q8_1 *)(act + (size_t)t * stride) + first;
        for (int b = 0; b < nb; ++b) {
            pp[t].d[b] = DS_FN(half)(a[b].d);
            pp[t].s[b] = DS_FN(half)(a[b].s);
        }
    }
}

// Q8_K with a zero point (Q6_K, Q3_K): -zero_point * bsum_j for the 16 sub-blocks of 16.
static DS_TARGET void DS_FN(prep_q8_K_zero)(const char *act, size_t stride, int ntok, int64_t first, int nb,
                                            int zero_point, DS_FN(prep) *pp) {
    (void)nb;
    for (int t = 0; t < ntok; ++t) {
        const ds_block_q8_K *a = (const ds_block_q8_K *)(act + (size_t)t * stride) + first;
        const __m256i bs = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)a->bsums));
        const __m256i bs2 = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(a->bsums + 8)));
        const __m256i scale = _mm256_set1_epi32(-zero_point);
        _mm256_storeu_si256((__m256i *)&pp[t].z[0], _mm256_mullo_epi32(bs, scale));
        _mm256_storeu_si256((__m256i *)&pp[t].z[8], _mm256_mullo_epi32(bs2, scale));
    }
}

// Q8_K for 32-element sub-blocks with mins (Q4_K, Q5_K): bsum32_j = bsum_2j + bsum_2j+1 as int16
// pairs (|bsum32| <= 32*128 fits int16).
static DS_TARGET void DS_FN(prep_q8_K_pairs)(const char *act, size_t stride, int ntok, int64_t first, int nb,
                                             int zero_point, DS_FN(prep) *pp) {
    (void)nb;
    (void)zero_point;
    for (int t = 0; t < ntok; ++t) {
        const ds_block_q8_K *a = (const ds_block_q8_K *)(act + (size_t)t * stride) + first;
        const __m256i sums = _mm256_madd_epi16(DS_FN(load256)(a->bsums), _mm256_set1_epi16(1));   // 8 x int32
        const __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        _mm_storeu_si128((__m128i *)pp[t].pairs, packed);
    }
}

static DS_TARGET void DS_FN(prep_none)(const char *act, size_t stride, int ntok, int64_t first, int nb,
                                       int zero_point, DS_FN(prep) *pp) {
    (void)act, (void)stride, (void)ntok, (void)first, (void)nb, (void)zero_point, (void)pp;
}

typedef void (*DS_FN(prep_fn))(const char *act, size_t stride, int ntok, int64_t first, int nb,
                               int zero_point, DS_FN(prep) *pp);

// ---- Micro-kernels: DS_G rows x T tokens over one chunk -------------------------------------------

// acc[t] += sum over panel lines q[0..lines) of u8 weights x s8 activation bytes 4k..4k+3 of token t
// (act[t] + 4k). AVX-512: one vpdpbusd per line and token. AVX2: vpmaddubsw gives int16 pair sums;
// `sum16` lines of them are added in int16 before one vpmaddwd widens them (sum16 is chosen per type
// so that sum16 * 2 * max(u) * 128 stays below 32768: 8 for 4-bit quants, 4 for 5-bit, 2 for 6-bit).
static inline DS_INLINE DS_TARGET void DS_FN(dot_lines)(const int T, const int lines, const int sum16,
        const uint32_t (*q)[DS_G], const int8_t *const *act, DS_FN(gi) *acc) {
#if DS_X86_LEVEL >= 2
    (void)sum16;
#pragma GCC unroll 8
    for (int k = 0; k < lines; ++k) {
        const DS_FN(gi) w = DS_FN(g_load_i)(q[k]);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[t] = DS_FN(g_dot)(acc[t], w, DS_FN(g_bcast_i)(act[t] + 4 * k));
    }
#else
    __m256i part[DS_GT];
#pragma GCC unroll 8
    for (int k = 0; k < lines; ++k) {
        const __m256i w = DS_FN(g_load_i)(q[k]);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
            const __m256i p = _mm256_maddubs_epi16(w, DS_FN(g_bcast_i)(act[t] + 4 * k));
            part[t] = k % sum16 == 0 ? p : _mm256_add_epi16(part[t], p);
        }
        if (k % sum16 == sum16 - 1 || k == lines - 1) {
#pragma GCC unroll 8
            for (int t = 0; t < T; ++t)
                acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(part[t], _mm256_set1_epi16(1)));
        }
    }
#endif
}

#ifndef DS_MK_MODES
#define DS_MK_MODES
enum { DS_MK_ZERO_POINT = 0, DS_MK_MIN = 1, DS_MK_SIGNED = 2 };
#endif

// Micro-kernel arguments: `q`, `sc`, `aux`, `mins`: the panel group; act: activation row of token 0
// at the chunk's first block; out: row 0 of token 0 (tokens out_stride floats apart); valid: real
// rows in the group; `first` = first chunk (start from 0 instead of adding to `out`).

// 32-element blocks. mode: DS_MK_ZERO_POINT (Q4_0/Q5_0/Q8_0 with u = q + z), DS_MK_MIN (Q4_1/Q5_1,
// Q8_1 activations), DS_MK_SIGNED (AVX2 Q8_0: signed q, |q| x sign(a, q)).
static inline DS_INLINE DS_TARGET void DS_FN(mk_blocks)(const int T, const int mode, const int sum16,
        const uint32_t (*q)[DS_G], const float (*sc)[DS_G], const float (*aux)[DS_G],
        const DS_FN(prep) *pp, const char *act, size_t act_stride, int nb,
        float *out, int64_t out_stride, int valid, int first) {
    const size_t block_bytes = mode == DS_MK_MIN ? sizeof(ds_block_q8_1) : sizeof(ds_block_q8_0);
    const size_t qs_offset = mode == DS_MK_MIN ? offsetof(ds_block_q8_1, qs) : offsetof(ds_block_q8_0, qs);
    const char *a[DS_GT];
    DS_FN(gf) f[DS_GT];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
        a[t] = act + (size_t)t * act_stride + qs_offset;
        f[t] = first ? DS_FN(g_zero_f)() : DS_FN(g_load_out)(out + t * out_stride, valid);
    }
    for (int b = 0; b < nb; ++b) {
        DS_FN(gi) acc[DS_GT];
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t)
            acc[t] = mode == DS_MK_ZERO_POINT ? DS_FN(g_bcast_i)(&pp[t].z[b]) : DS_FN(g_zero_i)();
#if DS_X86_LEVEL < 2
        if (mode == DS_MK_SIGNED) {
#pragma GCC unroll 8
            for (int k = 0; k < 8; ++k) {
                const DS_FN(gi) w = DS_FN(g_load_i)(q[8 * b + k]);
                const DS_FN(gi) wabs = _mm256_abs_epi8(w);
#pragma GCC unroll 8
                for (int t = 0; t < T; ++t)
                    acc[t] = DS_FN(g_dot)(acc[t], wabs, _mm256_sign_epi8(DS_FN(g_bcast_i)(a[t] + 4 * k), w));
            }
        } else
#endif
        {
            const int8_t *ab[DS_GT];
#pragma GCC unroll 8
            for (int t = 0; t < T; ++t) ab[t] = (const int8_t *)a[t];
            DS_FN(dot_lines)(T, 8, sum16, q + 8 * b, ab, acc);
        }
        const DS_FN(gf) dw = DS_FN(g_load_f)(sc[b]);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t)
            f[t] = DS_FN(g_fma)(DS_FN(g_cvt)(acc[t]), DS_FN(g_mul)(dw, DS_FN(g_bcast_f)(&pp[t].d[b])), f[t]);
        if (mode == DS_MK_MIN) {
            const DS_FN(gf) mw = DS_FN(g_load_f)(aux[b]);
#pragma GCC unroll 8
            for (int t = 0; t < T; ++t) f[t] = DS_FN(g_fma)(mw, DS_FN(g_bcast_f)(&pp[t].s[b]), f[t]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) a[t] += block_bytes;
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) DS_FN(g_store_out)(out + t * out_stride, f[t], valid);
}

// K-quants, one super-block. nsub sub-blocks of 256/nsub; zero_point: seed S_j with prep z[j];
// min_pairs: 0, 4 (Q4_K/Q5_K: prep pairs of 32-sums) or 8 (Q2_K: raw bsums pairs of the activation).
static inline DS_INLINE DS_TARGET void DS_FN(mk_super)(const int T, const int nsub, const int zero_point,
        const int min_pairs, const int sum16, const uint32_t (*q)[DS_G], const float (*sc)[DS_G],
        const float (*aux)[DS_G], const uint32_t (*mins)[DS_G], const DS_FN(prep) *pp, const char *act, size_t act_stride,
        float *out, int64_t out_stride, int valid, int first) {
    const int lines = DS_QK_K / 4 / nsub;   // panel lines (4 values each) per sub-block
    const ds_block_q8_K *a[DS_GT];
    DS_FN(gf) f[DS_GT];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
        a[t] = (const ds_block_q8_K *)(act + (size_t)t * act_stride);
        f[t] = DS_FN(g_zero_f)();
    }
    for (int j = 0; j < nsub; ++j) {
        DS_FN(gi) acc[DS_GT];
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[t] = zero_point ? DS_FN(g_bcast_i)(&pp[t].z[j]) : DS_FN(g_zero_i)();
        const int8_t *ab[DS_GT];
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) ab[t] = a[t]->qs + 4 * lines * j;
        DS_FN(dot_lines)(T, lines, sum16, q + lines * j, ab, acc);
        const DS_FN(gf) s = DS_FN(g_load_f)(sc[j]);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) f[t] = DS_FN(g_fma)(DS_FN(g_cvt)(acc[t]), s, f[t]);
    }
    if (min_pairs) {
        DS_FN(gi) acc[DS_GT];
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[t] = DS_FN(g_zero_i)();
#pragma GCC unroll 8
        for (int p = 0; p < min_pairs; ++p) {
            const DS_FN(gi) m = DS_FN(g_load_i)(mins[p]);
#pragma GCC unroll 8
            for (int t = 0; t < T; ++t) {
                const void *pair = min_pairs == 4 ? (const void *)&pp[t].pairs[p] : (const void *)&a[t]->bsums[2 * p];
                acc[t] = DS_FN(g_dot16)(acc[t], m, DS_FN(g_bcast_i)(pair));
            }
        }
        const DS_FN(gf) dmin = DS_FN(g_load_f)(aux[0]);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) f[t] = DS_FN(g_fnma)(DS_FN(g_cvt)(acc[t]), dmin, f[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
        const DS_FN(gf) base = first ? DS_FN(g_zero_f)() : DS_FN(g_load_out)(out + t * out_stride, valid);
        DS_FN(g_store_out)(out + t * out_stride, DS_FN(g_fma)(f[t], DS_FN(g_bcast_f)(&a[t]->d), base), valid);
    }
}

// Arguments of one micro-kernel call (token tile of `ntok` <= DS_GT).
typedef struct {
    const DS_FN(panel) *panel;
    int group;
    const DS_FN(prep) *pp;
    const char *act;
    size_t act_stride;
    int nb;
    float *out;
    int64_t out_stride;
    int valid;
    int first;
} DS_FN(mk_args);

typedef void (*DS_FN(mk_fn))(const DS_FN(mk_args) *m, int ntok);

// Splits a token tile into micro-kernels of compile-time width (DS_GT, then 4, 2, 1).
#define DS_MK_SPLIT(CALL)                                                                           \
    do {                                                                                            \
        int t0 = 0;                                                                                 \
        if (ntok == DS_GT) { CALL(DS_GT); t0 = DS_GT; }                                             \
        if (DS_GT > 4 && ((ntok - t0) & 4)) { CALL(4); t0 += 4; }                                   \
        if ((ntok - t0) & 2) { CALL(2); t0 += 2; }                                                  \
        if ((ntok - t0) & 1) { CALL(1); t0 += 1; }                                                  \
    } while (0)

#define DS_MK_BLOCKS_BODY(T, MODE, SUM16)                                                           \
    DS_FN(mk_blocks)(T, MODE, SUM16, m->panel->q[g], m->panel->sc[g], m->panel->aux[g], m->pp + t0, \
                     m->act + (size_t)t0 * m->act_stride, m->act_stride, m->nb,                     \
                     m->out + t0 * m->out_stride, m->out_stride, m->valid, m->first)
#define DS_MK_SUPER_BODY(T, NSUB, ZP, PAIRS, SUM16)                                                 \
    DS_FN(mk_super)(T, NSUB, ZP, PAIRS, SUM16, m->panel->q[g], m->panel->sc[g], m->panel->aux[g],   \
                    m->panel->mins[g], m->pp + t0, m->act + (size_t)t0 * m->act_stride,             \
                    m->act_stride, m->out + t0 * m->out_stride, m->out_stride, m->valid, m->first)

// One micro-kernel entry per (layout, AVX2 int16 run length): NAME, CALL(T) expression.
#define DS_MK_DEFINE(NAME, CALL)                                                                    \
    static DS_TARGET void DS_FN(mk_##NAME)(const DS_FN(mk_args) *m, int ntok) {                     \
        const int g = m->group;                                                                     \
        DS_MK_SPLIT(CALL);                                                                          \
    }

#define DS_MK_CALL_zp8(T) DS_MK_BLOCKS_BODY(T, DS_MK_ZERO_POINT, 8)      // Q4_0
#define DS_MK_CALL_zp4(T) DS_MK_BLOCKS_BODY(T, DS_MK_ZERO_POINT, 4)      // Q5_0, Q8_0 (AVX-512)
#define DS_MK_CALL_min8(T) DS_MK_BLOCKS_BODY(T, DS_MK_MIN, 8)            // Q4_1
#define DS_MK_CALL_min4(T) DS_MK_BLOCKS_BODY(T, DS_MK_MIN, 4)            // Q5_1
#define DS_MK_CALL_signed(T) DS_MK_BLOCKS_BODY(T, DS_MK_SIGNED, 1)       // Q8_0 (AVX2)
#define DS_MK_CALL_k32_8(T) DS_MK_SUPER_BODY(T, 8, 0, 4, 8)              // Q4_K
#define DS_MK_CALL_k32_4(T) DS_MK_SUPER_BODY(T, 8, 0, 4, 4)              // Q5_K
#define DS_MK_CALL_k16zp_2(T) DS_MK_SUPER_BODY(T, 16, 1, 0, 2)           // Q6_K
#define DS_MK_CALL_k16zp_4(T) DS_MK_SUPER_BODY(T, 16, 1, 0, 4)           // Q3_K
#define DS_MK_CALL_k16min_4(T) DS_MK_SUPER_BODY(T, 16, 0, 8, 4)          // Q2_K

DS_MK_DEFINE(zp4, DS_MK_CALL_zp4)
DS_MK_DEFINE(min4, DS_MK_CALL_min4)
DS_MK_DEFINE(k32_4, DS_MK_CALL_k32_4)
DS_MK_DEFINE(k16zp_4, DS_MK_CALL_k16zp_4)
DS_MK_DEFINE(k16min_4, DS_MK_CALL_k16min_4)
#if DS_X86_LEVEL >= 2
// The int16 run length only matters for AVX2: AVX-512 shares one kernel per layout.
#define DS_MK_zp8 DS_FN(mk_zp4)
#define DS_MK_min8 DS_FN(mk_min4)
#define DS_MK_k32_8 DS_FN(mk_k32_4)
#define DS_MK_k16zp_2 DS_FN(mk_k16zp_4)
#define DS_MK_q8_0 DS_FN(mk_zp4)
#else
DS_MK_DEFINE(zp8, DS_MK_CALL_zp8)
DS_MK_DEFINE(min8, DS_MK_CALL_min8)
DS_MK_DEFINE(k32_8, DS_MK_CALL_k32_8)
DS_MK_DEFINE(k16zp_2, DS_MK_CALL_k16zp_2)
DS_MK_DEFINE(signed, DS_MK_CALL_signed)
#define DS_MK_zp8 DS_FN(mk_zp8)
#define DS_MK_min8 DS_FN(mk_min8)
#define DS_MK_k32_8 DS_FN(mk_k32_8)
#define DS_MK_k16zp_2 DS_FN(mk_k16zp_2)
#define DS_MK_q8_0 DS_FN(mk_signed)
#endif
#define DS_MK_zp4 DS_FN(mk_zp4)
#define DS_MK_min4 DS_FN(mk_min4)
#define DS_MK_k32_4 DS_FN(mk_k32_4)
#define DS_MK_k16zp_4 DS_FN(mk_k16zp_4)
#define DS_MK_k16min_4 DS_FN(mk_k16min_4)

#include "ds_packed_x86_kernels.h"

// ---- Quantized driver --------------------------------------------------------------------------------

// Everything the driver needs to know about one weight type.
typedef struct {
    DS_FN(unpack_fn) unpack;
    DS_FN(pk_fill_fn) pk_fill;   // the same panel from packed weights
    DS_FN(prep_fn) prep;
    DS_FN(mk_fn) kernel;
    int block_elems;        // 32 or 256
    size_t block_bytes;     // weight block
    size_t act_block_bytes; // activation block
    int zero_point;         // passed to prep
} DS_FN(gemm_type);

// Where a call's weights come from: rows `row_stride` bytes apart, or packed groups of DS_PACK_ROWS
// rows `group_bytes` apart (w at a group boundary).
typedef struct {
    const char *w;
    size_t row_stride;
    size_t group_bytes;     // 0: row-major
} DS_FN(weight_src);

#define DS_PREP_TILES 2      // token tiles whose activation terms a packed call keeps
#define DS_PREP_CHUNKS 32    // chunks of the row (n up to 8192)

// Panel group g <- rows [row, row + DS_G) of packed weights, blocks [b0, b0 + nb).
static inline DS_TARGET void DS_FN(fill_group_packed)(const DS_FN(gemm_type) *ty, const DS_FN(weight_src) *src,
                                                      int64_t row, int64_t b0, int nb, DS_FN(panel) *p, int g) {
    const uint8_t *group = (const uint8_t *)src->w + (size_t)(row / DS_PACK_ROWS) * src->group_bytes;
    const uint8_t *chunk = group + (size_t)b0 * DS_PACK_ROWS * ty->block_bytes;
    ty->pk_fill(chunk, nb, (int)(row % DS_PACK_ROWS), p, g);
}

// Tokens [t_begin, t_end) (at most DS_TOKEN_BLOCK) against all rows.
static DS_TARGET void DS_FN(gemm_quant_tokens)(const DS_FN(gemm_type) *ty, int64_t n, const DS_FN(weight_src) *src,
                                               int64_t nrows, const void *act,
                                               size_t act_stride, int64_t t_begin, int64_t t_end,
                                               float *out, int64_t out_stride) {
    DS_FN(panel) panel;
    _Alignas(64) uint8_t tmp[DS_G * DS_CHUNK];
    DS_FN(prep) pp[DS_GT];
    const int64_t nblocks = n / ty->block_elems;
    const int chunk_blocks = DS_CHUNK / ty->block_elems;
    // Packed weights with a few tokens: one group of rows per pass, so the weights stream in order (a
    // pass of DS_GRMAX rows reads 4 groups far apart); the activation terms of each (tile, chunk) are
    // computed in the first pass and kept for the others when they fit.
    const int64_t pass_rows = src->group_bytes && t_end - t_begin <= DS_PREP_TILES * DS_GT ? DS_PACK_ROWS : DS_GRMAX;
    const int64_t nchunks = (nblocks + chunk_blocks - 1) / chunk_blocks;
    const int keep = pass_rows == DS_PACK_ROWS && nchunks <= DS_PREP_CHUNKS;
    const int64_t tiles = (t_end - t_begin + DS_GT - 1) / DS_GT;
    DS_FN(prep) kept[keep ? tiles * nchunks : 1][DS_GT];
    for (int64_t r0 = 0; r0 < nrows; r0 += pass_rows) {
        const int rows = (int)(nrows - r0 < pass_rows ? nrows - r0 : pass_rows);
        const int groups = (rows + DS_G - 1) / DS_G;
        for (int64_t b0 = 0; b0 < nblocks; b0 += chunk_blocks) {
            const int nb = (int)(nblocks - b0 < chunk_blocks ? nblocks - b0 : chunk_blocks);
            for (int g = 0; g < groups; ++g) {
                const int valid = rows - g * DS_G < DS_G ? rows - g * DS_G : DS_G;
                if (src->group_bytes) {
                    DS_FN(fill_group_packed)(ty, src, r0 + g * DS_G, b0, nb, &panel, g);
                } else {
                    DS_FN(fill_group)(ty->unpack, ty->block_elems, src->w + (size_t)(r0 + g * DS_G) * src->row_stride,
                                      src->row_stride, valid, b0, nb, &panel, g, tmp);
                }
            }
            const char *act_chunk = (const char *)act + (size_t)b0 * ty->act_block_bytes;
            for (int64_t t0 = t_begin; t0 < t_end; t0 += DS_GT) {
                const int tt = (int)(t_end - t0 < DS_GT ? t_end - t0 : DS_GT);
                const char *act_tile = act_chunk + (size_t)t0 * act_stride;
                DS_FN(prep) *terms = pp;
                if (keep) {
                    terms = kept[((t0 - t_begin) / DS_GT) * nchunks + b0 / chunk_blocks];
                    if (r0 == 0) ty->prep(act_tile, act_stride, tt, 0, nb, ty->zero_point, terms);
                } else {
                    ty->prep(act_tile, act_stride, tt, 0, nb, ty->zero_point, pp);
                }
                for (int g = 0; g < groups; ++g) {
                    const int valid = rows - g * DS_G < DS_G ? rows - g * DS_G : DS_G;
                    const DS_FN(mk_args) m = {&panel, g, terms, act_tile, act_stride, nb,
                                              out + t0 * out_stride + r0 + g * DS_G, out_stride, valid, b0 == 0};
                    ty->kernel(&m, tt);
                }
            }
        }
    }
}

// Token blocks keep one chunk of activations and the output tile of DS_GRMAX rows in L2
// (512 tokens: ~140 KiB + 128 KiB); each token block unpacks the weights again.
static DS_TARGET void DS_FN(gemm_quant)(const DS_FN(gemm_type) *ty, int64_t n, const DS_FN(weight_src) *src,
                                        int64_t nrows, const void *act, size_t act_stride, int64_t ntok,
                                        float *out, int64_t out_stride) {
    for (int64_t tb = 0; tb < ntok; tb += DS_TOKEN_BLOCK) {
        const int64_t t_end = ntok - tb < DS_TOKEN_BLOCK ? ntok : tb + DS_TOKEN_BLOCK;
        DS_FN(gemm_quant_tokens)(ty, n, src, nrows, act, act_stride, tb, t_end, out, out_stride);
    }
}

// gemm_NAME (row-major weights) and gemm_packed_NAME (ds_pack.c layout) over the same panel.
#define DS_GEMM_QUANT(NAME, UNPACK, PREP, KERNEL, ELEMS, WBLOCK, ABLOCK, ZP)                          \
    static const DS_FN(gemm_type) DS_FN(gemm_type_##NAME) = {DS_FN(UNPACK), DS_FN(pk_fill_##NAME), DS_FN(PREP), \
                                                            KERNEL, ELEMS, sizeof(WBLOCK), sizeof(ABLOCK), ZP}; \
    static DS_TARGET void DS_FN(gemm_##NAME)(int64_t n, const void *w, size_t row_stride, int64_t nrows, \
                                             const void *act, size_t act_stride, int64_t ntok,       \
                                             float *out, int64_t out_stride) {                       \
        const DS_FN(weight_src) src = {(const char *)w, row_stride, 0};                              \
        DS_FN(gemm_quant)(&DS_FN(gemm_type_##NAME), n, &src, nrows, act, act_stride, ntok, out, out_stride); \
    }                                                                                               \
    static DS_TARGET void DS_FN(gemm_packed_##NAME)(int64_t n, const void *w, int64_t nrows,         \
                                                    const void *act, size_t act_stride, int64_t ntok, \
                                                    float *out, int64_t out_stride) {                \
        const DS_FN(weight_src) src = {(const char *)w, 0, (size_t)(n / (ELEMS)) * DS_PACK_ROWS * sizeof(WBLOCK)}; \
        DS_FN(gemm_quant)(&DS_FN(gemm_type_##NAME), n, &src, nrows, act, act_stride, ntok, out, out_stride); \
    }

#if DS_X86_LEVEL >= 2
#define DS_Q8_0_ZERO_POINT 128   // u = q + 128
#else
#define DS_Q8_0_ZERO_POINT 0     // signed q, sign trick
#endif
DS_GEMM_QUANT(q4_0, unpack_q4_0, prep_q8_0, DS_MK_zp8, 32, ds_block_q4_0, ds_block_q8_0, 8)
DS_GEMM_QUANT(q5_0, unpack_q5_0, prep_q8_0, DS_MK_zp4, 32, ds_block_q5_0, ds_block_q8_0, 16)
DS_GEMM_QUANT(q8_0, unpack_q8_0, prep_q8_0, DS_MK_q8_0, 32, ds_block_q8_0, ds_block_q8_0, DS_Q8_0_ZERO_POINT)
DS_GEMM_QUANT(q4_1, unpack_q4_1, prep_q8_1, DS_MK_min8, 32, ds_block_q4_1, ds_block_q8_1, 0)
DS_GEMM_QUANT(q5_1, unpack_q5_1, prep_q8_1, DS_MK_min4, 32, ds_block_q5_1, ds_block_q8_1, 0)
DS_GEMM_QUANT(q4_K, unpack_q4_K, prep_q8_K_pairs, DS_MK_k32_8, DS_QK_K, ds_block_q4_K, ds_block_q8_K, 0)
DS_GEMM_QUANT(q5_K, unpack_q5_K, prep_q8_K_pairs, DS_MK_k32_4, DS_QK_K, ds_block_q5_K, ds_block_q8_K, 0)
DS_GEMM_QUANT(q6_K, unpack_q6_K, prep_q8_K_zero, DS_MK_k16zp_2, DS_QK_K, ds_block_q6_K, ds_block_q8_K, 32)
DS_GEMM_QUANT(q3_K, unpack_q3_K, prep_q8_K_zero, DS_MK_k16zp_4, DS_QK_K, ds_block_q3_K, ds_block_q8_K, 4)
DS_GEMM_QUANT(q2_K, unpack_q2_K, prep_none, DS_MK_k16min_4, DS_QK_K, ds_block_q2_K, ds_block_q8_K, 0)
#undef DS_Q8_0_ZERO_POINT

#include "ds_gemm_float_x86_kernels.h"
#include "ds_gemm_iquant_x86_kernels.h"

static void DS_FN(fill_gemm)(ds_kernel_table *t) {
    DS_FN(fill_gemm_iquant)(t);
    t->gemm[DS_TYPE_F32] = DS_FN(gemm_f32);
    t->gemm[DS_TYPE_F16] = DS_FN(gemm_f16);
    t->gemm[DS_TYPE_BF16] = DS_FN(gemm_bf16);
    t->gemm[DS_TYPE_MXFP4] = DS_FN(gemm_mxfp4);
    t->gemm[DS_TYPE_Q4_0] = DS_FN(gemm_q4_0);
    t->gemm[DS_TYPE_Q4_1] = DS_FN(gemm_q4_1);
    t->gemm[DS_TYPE_Q5_0] = DS_FN(gemm_q5_0);
    t->gemm[DS_TYPE_Q5_1] = DS_FN(gemm_q5_1);
    t->gemm[DS_TYPE_Q8_0] = DS_FN(gemm_q8_0);
    t->gemm[DS_TYPE_Q2_K] = DS_FN(gemm_q2_K);
    t->gemm[DS_TYPE_Q3_K] = DS_FN(gemm_q3_K);
    t->gemm[DS_TYPE_Q4_K] = DS_FN(gemm_q4_K);
    t->gemm[DS_TYPE_Q5_K] = DS_FN(gemm_q5_K);
    t->gemm[DS_TYPE_Q6_K] = DS_FN(gemm_q6_K);
    t->packed[DS_TYPE_Q4_0] = DS_FN(gemm_packed_q4_0);
    t->packed[DS_TYPE_Q4_1] = DS_FN(gemm_packed_q4_1);
    t->packed[DS_TYPE_Q5_0] = DS_FN(gemm_packed_q5_0);
    t->packed[DS_TYPE_Q5_1] = DS_FN(gemm_packed_q5_1);
    t->packed[DS_TYPE_Q8_0] = DS_FN(gemm_packed_q8_0);
    t->packed[DS_TYPE_Q2_K] = DS_FN(gemm_packed_q2_K);
    t->packed[DS_TYPE_Q3_K] = DS_FN(gemm_packed_q3_K);
    t->packed[DS_TYPE_Q4_K] = DS_FN(gemm_packed_q4_K);
    t->packed[DS_TYPE_Q5_K] = DS_FN(gemm_packed_q5_K);
    t->packed[DS_TYPE_Q6_K] = DS_FN(gemm_packed_q6_K);
}

#undef DS_G
#undef DS_GT
#undef DS_GTF
#undef DS_GRMAX
#undef DS_NGROUPS
#undef DS_CHUNK
#undef DS_CHUNK_DW
#undef DS_TOKEN_BLOCK
#undef DS_PREP_TILES
#undef DS_PREP_CHUNKS
#undef DS_FCHUNK
#undef DS_MK_SPLIT
#undef DS_MK_BLOCKS_BODY
#undef DS_MK_SUPER_BODY
#undef DS_MK_DEFINE
#undef DS_MK_CALL_zp8
#undef DS_MK_CALL_zp4
#undef DS_MK_CALL_min8
#undef DS_MK_CALL_min4
#undef DS_MK_CALL_signed
#undef DS_MK_CALL_k32_8
#undef DS_MK_CALL_k32_4
#undef DS_MK_CALL_k16zp_2
#undef DS_MK_CALL_k16zp_4
#undef DS_MK_CALL_k16min_4
#undef DS_MK_zp8
#undef DS_MK_zp4
#undef DS_MK_min8
#undef DS_MK_min4
#undef DS_MK_k32_8
#undef DS_MK_k32_4
#undef DS_MK_k16zp_2
#undef DS_MK_k16zp_4
#undef DS_MK_k16min_4
#undef DS_MK_q8_0
#undef DS_GEMM_QUANT
#undef DS_GEMM_FLOAT
