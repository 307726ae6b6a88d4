// ds_iquant_x86_kernels.h — x86 kernels for the i-quants (ds_iquant.h) against int8 activations,
// included by ds_dot_x86.c once per level after ds_dot_x86_kernels.h (same DS_X86_LEVEL / DS_TARGET /
// DS_FN conventions; uses its state, helpers and DS_ROW_KERNELS, which it undefines at the end).
//
// Each 32-value group becomes 32 unsigned weight bytes u (grid magnitudes; |kvalue| for IQ4; |8·g ± 1|
// for IQ1) and the activation bytes with the weights' signs applied (negated where the weight is
// negative; Q8_0/Q8_K activations lie in [-127, 127], so negation never overflows). dot_u8s8 sums them
// into 8 int32 lanes, exact; the lanes are multiplied by the group's integer scale (per 16 values where
// the type has one per 16) and summed over the block in int32, then scaled once in float per block.
// All u stay below 128, so AVX2's vpmaddubsw pair sums (2·u·127) cannot saturate.

static inline DS_TARGET uint64_t DS_FN(iq_row8)(const uint8_t *row) {
    uint64_t v;
    memcpy(&v, row, 8);
    return v;
}
static inline DS_TARGET int DS_FN(iq_row4)(const uint8_t *row) {
    int v;
    memcpy(&v, row, 4);
    return v;
}

// Four 8-value sign patterns as sign bytes (±1) from the 7-bit ksigns indices at bits 0, 7, 14, 21 of `aux`.
static inline DS_TARGET __m256i DS_FN(iq_ksigns4)(uint32_t aux) {
    return _mm256_setr_epi64x((long long)ds_ksigns_pm1[aux & 127], (long long)ds_ksigns_pm1[(aux >> 7) & 127],
                              (long long)ds_ksigns_pm1[(aux >> 14) & 127], (long long)ds_ksigns_pm1[(aux >> 21) & 127]);
}

// 32 sign bits as sign bytes: -1 where the bit is set, else +1.
static inline DS_TARGET __m256i DS_FN(iq_sign_bits)(uint32_t bits) {
    return _mm256_or_si256(DS_FN(bits_to_bytes)(bits), _mm256_set1_epi8(1));
}

static inline DS_INLINE DS_TARGET void DS_FN(iq_finish_block)(DS_FN(state) *s, __m256i total, float scale) {
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(total), s->acc);
}

// One decoded 32-value group: unsigned weight bytes u (|w|), sign bytes (nonzero, negative where the
// weight is: ±1, or the weight itself) and the scale as 16 int16 (a group's scale, or its low and high
// 16 values' scales). IQ1 groups hold other things in u and sign (see iq1s_apply); shift is IQ1_S's sign, ±1.
typedef struct {
    __m256i u, sign, scale;
    int shift;
} DS_FN(iq_group);

// What a block's groups share, decoded once per block: the types with two scales per group keep all
// 16 as int16, the groups' low-half scales in the low 128 bits and high-half ones in the high 128.
typedef struct {
    __m256i scales;
    __m256i shift;   // IQ1_S: each group's ±scale twice, against the activation's 16-value sums
} DS_FN(iq_block);

// Group ib's two scales from iq_block.scales: int16 ib of each 128-bit half, copied across the half
// (the byte-shuffle indices of group ib are row ib of ds_iq_pick_int16).
static inline DS_INLINE DS_TARGET __m256i DS_FN(iq_pick_scales)(const DS_FN(iq_block) *blk, int ib) {
    return _mm256_shuffle_epi8(blk->scales, DS_FN(load256)(ds_iq_pick_int16[ib]));
}

// 8 scale bytes holding a 4-bit scale s per 16 values (low nibble: a group's first 16) as 2s + 1.
static inline DS_INLINE DS_TARGET __m256i DS_FN(iq_nibble_scales)(const uint8_t *scales8) {
    const __m128i bytes = _mm_loadl_epi64((const __m128i *)scales8), low4 = _mm_set1_epi8(0x0F);
    const __m256i s = _mm256_cvtepu8_epi16(_mm_unpacklo_epi64(_mm_and_si128(bytes, low4), _mm_and_si128(_mm_srli_epi16(bytes, 4), low4)));
    return _mm256_add_epi16(_mm256_add_epi16(s, s), _mm256_set1_epi16(1));
}

// The group's scaled int32 lanes against 32 activation bytes q, exact: vpmaddubsw's int16 pair sums
// (|2·u·127| < 2^15 since u < 128) times the int16 scale, pairs added by vpmaddwd (one multiply for the
// scale instead of a dot then an int32 multiply).
static inline DS_INLINE DS_TARGET __m256i DS_FN(iq_apply)(const DS_FN(iq_group) *g, const ds_block_q8_K *a, int ib) {
    const __m256i q = DS_FN(load256)(a->qs + 32 * ib);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(g->u, _mm256_sign_epi8(q, g->sign)), g->scale);
}

// IQ1: x = (dl / 8) · (8·g ± 1), g in {-1, 0, 1}. IQ1_S: u holds g (signed bytes), so vpsignb gives
// g·q and a pair sum with 8 gives 8·Σ g·q; the ±1 part, Σ ±q with one shift sign per group, comes from
// the activation's 16-value sums (iq1s_block_shift). IQ1_M: u holds 8·g (ds_iq1s_grid8) and sign its
// per-row ±1, so w = 8·g ± 1 is one byte add and takes the sign trick like the other types (|w| ≤ 9).
// All exact in int16 pairs (|8·2·127| + 2·127 < 2^15).
static inline DS_INLINE DS_TARGET __m256i DS_FN(iq1s_apply)(const DS_FN(iq_group) *g, const ds_block_q8_K *a, int ib) {
    const __m256i q = DS_FN(load256)(a->qs + 32 * ib);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), _mm256_sign_epi8(q, g->u)), g->scale);
}
// IQ1_S's ±1 part of a block: Σ over groups of ±scale · Σ q, as 8 int32 lanes (a group's two 16-value
// sums times its signed scale, vpmaddwd) added to the block's lanes once. The other types have none.
static inline DS_INLINE DS_TARGET __m256i DS_FN(iq1s_block_shift)(const DS_FN(iq_block) *blk, const ds_block_q8_K *a) {
    return _mm256_madd_epi16(DS_FN(load256)(a->bsums), blk->shift);
}
static inline DS_INLINE DS_TARGET __m256i DS_FN(iq_no_shift)(const DS_FN(iq_block) *blk, const ds_block_q8_K *a) {
    (void)blk; (void)a;
    return _mm256_setzero_si256();
}
static inline DS_INLINE DS_TARGET __m256i DS_FN(iq1m_apply)(const DS_FN(iq_group) *g, const ds_block_q8_K *a, int ib) {
    const __m256i q = DS_FN(load256)(a->qs + 32 * ib);
    const __m256i w = _mm256_add_epi8(g->u, g->sign);   // 8·g ± 1, never 0
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w)), g->scale);
}

// Types with one scale per group need nothing per block.
#define DS_IQ_NO_BLOCK_PREP(NAME, WBLOCK) \
    static inline DS_INLINE DS_TARGET void DS_FN(prep_##NAME)(const WBLOCK *w, DS_FN(iq_block) *blk) { (void)w; (void)blk; }

DS_IQ_NO_BLOCK_PREP(iq2_xxs, ds_block_iq2_xxs)
static inline DS_INLINE DS_TARGET void DS_FN(decode_iq2_xxs)(const ds_block_iq2_xxs *w, const DS_FN(iq_block) *blk, int ib, DS_FN(iq_group) *g) {
    (void)blk;
    const uint8_t *idx = (const uint8_t *)(w->qs + 4 * ib);
    uint32_t aux;
    memcpy(&aux, w->qs + 4 * ib + 2, 4);
    g->u = _mm256_setr_epi64x((long long)DS_FN(iq_row8)(ds_iq2xxs_grid[idx[0]]), (long long)DS_FN(iq_row8)(ds_iq2xxs_grid[idx[1]]),
                              (long long)DS_FN(iq_row8)(ds_iq2xxs_grid[idx[2]]), (long long)DS_FN(iq_row8)(ds_iq2xxs_grid[idx[3]]));
    g->sign = DS_FN(iq_ksigns4)(aux);
    g->scale = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
}

static inline DS_INLINE DS_TARGET void DS_FN(prep_iq2_xs)(const ds_block_iq2_xs *w, DS_FN(iq_block) *blk) {
    blk->scales = DS_FN(iq_nibble_scales)(w->scales);
}
static inline DS_INLINE DS_TARGET void DS_FN(decode_iq2_xs)(const ds_block_iq2_xs *w, const DS_FN(iq_block) *blk, int ib, DS_FN(iq_group) *g) {
    const uint16_t *code = w->qs + 4 * ib;   // a 9-bit grid index and a 7-bit ksigns index each
    g->u = _mm256_setr_epi64x((long long)DS_FN(iq_row8)(ds_iq2xs_grid[code[0] & 511]), (long long)DS_FN(iq_row8)(ds_iq2xs_grid[code[1] & 511]),
                              (long long)DS_FN(iq_row8)(ds_iq2xs_grid[code[2] & 511]), (long long)DS_FN(iq_row8)(ds_iq2xs_grid[code[3] & 511]));
    g->sign = _mm256_setr_epi64x((long long)ds_ksigns_pm1[code[0] >> 9], (long long)ds_ksigns_pm1[code[1] >> 9],
                                 (long long)ds_ksigns_pm1[code[2] >> 9], (long long)ds_ksigns_pm1[code[3] >> 9]);
    g->scale = DS_FN(iq_pick_scales)(blk, ib);
}

static inline DS_INLINE DS_TARGET void DS_FN(prep_iq2_s)(const ds_block_iq2_s *w, DS_FN(iq_block) *blk) {
    blk->scales = DS_FN(iq_nibble_scales)(w->scales);
}
static inline DS_INLINE DS_TARGET void DS_FN(decode_iq2_s)(const ds_block_iq2_s *w, const DS_FN(iq_block) *blk, int ib, DS_FN(iq_group) *g) {
    const uint8_t *qs = w->qs + 4 * ib;
    const int qh = w->qh[ib];
    g->u = _mm256_setr_epi64x((long long)DS_FN(iq_row8)(ds_iq2s_grid[qs[0] | ((qh << 8) & 0x300)]),
                              (long long)DS_FN(iq_row8)(ds_iq2s_grid[qs[1] | ((qh << 6) & 0x300)]),
                              (long long)DS_FN(iq_row8)(ds_iq2s_grid[qs[2] | ((qh << 4) & 0x300)]),
                              (long long)DS_FN(iq_row8)(ds_iq2s_grid[qs[3] | ((qh << 2) & 0x300)]));
    uint32_t signs;
    memcpy(&signs, w->qs + DS_QK_K / 8 + 4 * ib, 4);
    g->sign = DS_FN(iq_sign_bits)(signs);
    g->scale = DS_FN(iq_pick_scales)(blk, ib);
}

DS_IQ_NO_BLOCK_PREP(iq3_xxs, ds_block_iq3_xxs)
static inline DS_INLINE DS_TARGET void DS_FN(decode_iq3_xxs)(const ds_block_iq3_xxs *w, const DS_FN(iq_block) *blk, int ib, DS_FN(iq_group) *g) {
    (void)blk;
    const uint8_t *qs = w->qs + 8 * ib;
    uint32_t aux;
    memcpy(&aux, w->qs + DS_QK_K / 4 + 4 * ib, 4);
    g->u = _mm256_setr_epi32(DS_FN(iq_row4)(ds_iq3xxs_grid[qs[0]]), DS_FN(iq_row4)(ds_iq3xxs_grid[qs[1]]),
                             DS_FN(iq_row4)(ds_iq3xxs_grid[qs[2]]), DS_FN(iq_row4)(ds_iq3xxs_grid[qs[3]]),
                             DS_FN(iq_row4)(ds_iq3xxs_grid[qs[4]]), DS_FN(iq_row4)(ds_iq3xxs_grid[qs[5]]),
                             DS_FN(iq_row4)(ds_iq3xxs_grid[qs[6]]), DS_FN(iq_row4)(ds_iq3xxs_grid[qs[7]]));
    g->sign = DS_FN(iq_ksigns4)(aux);
    g->scale = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
}

DS_IQ_NO_BLOCK_PREP(iq3_s, ds_block_iq3_s)
// IQ3_S: index j of a group is qs[j] with bit 8 from bit j of the group's qh byte, computed for the 8
// rows in one vector and read back from memory for the table loads.
static inline DS_INLINE DS_TARGET void DS_FN(decode_iq3_s)(const ds_block_iq3_s *w, const DS_FN(iq_block) *blk, int ib, DS_FN(iq_group) *g) {
    (void)blk;
    const __m256i high = _mm256_and_si256(_mm256_sllv_epi32(_mm256_set1_epi32(w->qh[ib]), _mm256_setr_epi32(8, 7, 6, 5, 4, 3, 2, 1)),
                                          _mm256_set1_epi32(256));
    _Alignas(32) uint32_t idx[8];
    _mm256_store_si256((__m256i *)idx, _mm256_or_si256(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w->qs + 8 * ib))), high));
    g->u = _mm256_setr_epi32(DS_FN(iq_row4)(ds_iq3s_grid[idx[0]]), DS_FN(iq_row4)(ds_iq3s_grid[idx[1]]),
                             DS_FN(iq_row4)(ds_iq3s_grid[idx[2]]), DS_FN(iq_row4)(ds_iq3s_grid[idx[3]]),
                             DS_FN(iq_row4)(ds_iq3s_grid[idx[4]]), DS_FN(iq_row4)(ds_iq3s_grid[idx[5]]),
                             DS_FN(iq_row4)(ds_iq3s_grid[idx[6]]), DS_FN(iq_row4)(ds_iq3s_grid[idx[7]]));
    uint32_t signs;
    memcpy(&signs, w->signs + 4 * ib, 4);
    g->sign = DS_FN(iq_sign_bits)(signs);
    g->scale = _mm256_set1_epi16((short)(1 + 2 * (ib % 2 ? w->scales[ib / 2] >> 4 : w->scales[ib / 2] & 0x0F)));
}

// IQ1: the four 8-value grid rows of a group as signed bytes (g in {-1, 0, 1}, or 8·g for IQ1_M; u).
static inline DS_TARGET __m256i DS_FN(iq1_rows)(const int8_t *r0, const int8_t *r1, const int8_t *r2, const int8_t *r3) {
    return _mm256_setr_epi64x((long long)DS_FN(iq_row8)((const uint8_t *)r0), (long long)DS_FN(iq_row8)((const uint8_t *)r1),
                              (long long)DS_FN(iq_row8)((const uint8_t *)r2), (long long)DS_FN(iq_row8)((const uint8_t *)r3));
}

// IQ1_S: each group's qh holds its scale s (bits 12..14, as 2s + 1) and shift sign (bit 15).
static inline DS_INLINE DS_TARGET void DS_FN(prep_iq1_s)(const ds_block_iq1_s *w, DS_FN(iq_block) *blk) {
    const __m128i qh = _mm_loadu_si128((const __m128i *)w->qh);
    const __m128i s = _mm_and_si128(_mm_srli_epi16(qh, 12), _mm_set1_epi16(7));
    const __m128i scale = _mm_add_epi16(_mm_add_epi16(s, s), _mm_set1_epi16(1));
    blk->scales = _mm256_broadcastsi128_si256(scale);
    const __m128i signed_scale = _mm_sign_epi16(scale, _mm_or_si128(qh, _mm_set1_epi16(1)));   // qh < 0: bit 15
    blk->shift = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(signed_scale, signed_scale)),
                                         _mm_unpackhi_epi16(signed_scale, signed_scale), 1);
}
static inline DS_INLINE DS_TARGET void DS_FN(decode_iq1_s)(const ds_block_iq1_s *w, const DS_FN(iq_block) *blk, int ib, DS_FN(iq_group) *g) {
    const uint8_t *qs = w->qs + 4 * ib;
    const int qh = w->qh[ib];
    g->u = DS_FN(iq1_rows)(ds_iq1s_grid[qs[0] | ((qh << 8) & 0x700)], ds_iq1s_grid[qs[1] | ((qh << 5) & 0x700)],
                           ds_iq1s_grid[qs[2] | ((qh << 2) & 0x700)], ds_iq1s_grid[qs[3] | ((qh >> 1) & 0x700)]);
    g->scale = DS_FN(iq_pick_scales)(blk, ib);
    g->shift = qh & 0x8000 ? -1 : 1;
}

static inline DS_TARGET uint16_t DS_FN(iq1m_scales)(const ds_block_iq1_m *w, uint16_t sc[4]) {
    return ds_iq1m_d_bits(w, sc);
}

// IQ1_M's 3-bit scales: word k of the four scale words holds groups 2k and 2k+1 as (low, high) at bits
// 0, 3 and 6, 9. Each int16 lane j gets its word (lane j of a half is group j: word j / 2), multiplied
// by 2^(9 - bit) so its field lands at bits 9..11, then shifted down.
static inline DS_INLINE DS_TARGET void DS_FN(prep_iq1_m)(const ds_block_iq1_m *w, DS_FN(iq_block) *blk) {
    uint64_t words;
    memcpy(&words, w->scales, 8);
    const __m256i each = _mm256_shuffle_epi8(_mm256_set1_epi64x((long long)words),
        _mm256_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7));
    const __m256i placed = _mm256_mullo_epi16(each, _mm256_setr_epi16(1 << 9, 1 << 3, 1 << 9, 1 << 3, 1 << 9, 1 << 3, 1 << 9, 1 << 3,
                                                                      1 << 6, 1 << 0, 1 << 6, 1 << 0, 1 << 6, 1 << 0, 1 << 6, 1 << 0));
    const __m256i s = _mm256_and_si256(_mm256_srli_epi16(placed, 9), _mm256_set1_epi16(7));
    blk->scales = _mm256_add_epi16(_mm256_add_epi16(s, s), _mm256_set1_epi16(1));
}
static inline DS_INLINE DS_TARGET void DS_FN(decode_iq1_m)(const ds_block_iq1_m *w, const DS_FN(iq_block) *blk, int ib, DS_FN(iq_group) *g) {
    const uint8_t *qs = w->qs + 4 * ib, *qh = w->qh + 2 * ib;
    // Each 8-value row has its own shift sign, bit 3 of its qh nibble: bits 3, 7, 11, 15 of the group's
    // 16 qh bits. One multiply gathers them into bits 12..15 (the four shifted copies land on distinct
    // bits, so nothing carries), the row of ds_iq1m_row_signs they pick holds the ±1 bytes.
    uint16_t qh16;
    memcpy(&qh16, qh, 2);
    const uint32_t rows = (((uint32_t)qh16 & 0x8888) * 0x249) >> 12 & 15;
    g->sign = DS_FN(load256)(ds_iq1m_row_signs[rows]);
    g->u = DS_FN(iq1_rows)(ds_iq1s_grid8[qs[0] | ((qh[0] << 8) & 0x700)], ds_iq1s_grid8[qs[1] | ((qh[0] << 4) & 0x700)],
                           ds_iq1s_grid8[qs[2] | ((qh[1] << 8) & 0x700)], ds_iq1s_grid8[qs[3] | ((qh[1] << 4) & 0x700)]);
    g->scale = DS_FN(iq_pick_scales)(blk, ib);
}

// IQ4: codes through the 16-entry non-linear table (one byte shuffle); u = |w|, and w itself carries
// the signs (no table value is 0).
static inline DS_TARGET void DS_FN(iq4_weights)(const uint8_t *qs16, DS_FN(iq_group) *g) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)ds_kvalues_iq4nl));
    const __m256i w = _mm256_shuffle_epi8(table, DS_FN(unpack_nibbles)(qs16));
    g->u = _mm256_sign_epi8(w, w);
    g->sign = w;
}

DS_IQ_NO_BLOCK_PREP(iq4_xs, ds_block_iq4_xs)
static inline DS_INLINE DS_TARGET void DS_FN(decode_iq4_xs)(const ds_block_iq4_xs *w, const DS_FN(iq_block) *blk, int ib, DS_FN(iq_group) *g) {
    (void)blk;
    DS_FN(iq4_weights)(w->qs + 16 * ib, g);
    g->scale = _mm256_set1_epi16((short)ds_iq4xs_scale(w, ib));
}

#undef DS_IQ_NO_BLOCK_PREP

// Block scales: d_w · d_a · (the power of two the type's scale formula divides by).
#define DS_IQ_SCALE_HALF_D(F) (DS_FN(half)(w->d) * a_d * (F))

// Generates step_NAME (one block against one activation block: the group sums in int32, then one
// fmadd per block into the state) and, through DS_ROW_KERNELS, dot_NAME / rows_NAME; then
// shared_NAME, the multi-row kernel that decodes each weight group once for up to 4 tokens. Its
// per-(row, token) results are those of rows_NAME on the token alone: the block's int32 sums are exact
// whatever the order, and each state takes the same fmadd per block in block order, one state per row
// in the groups of 4 rows, two alternating states in the rows past them (as dot_NAME).
#define DS_IQ_KERNELS(NAME, WBLOCK, BLOCK_SCALE, APPLY, SHIFT)                                 \
    static inline DS_INLINE DS_TARGET float DS_FN(scale_##NAME)(const WBLOCK *w, float a_d) { return BLOCK_SCALE; } \
    static inline DS_INLINE DS_TARGET void DS_FN(step_##NAME)(DS_FN(state) *s, const WBLOCK *w, const ds_block_q8_K *a) { \
        __m256i total = _mm256_setzero_si256();                                                     \
        DS_FN(iq_block) blk;                                                                        \
        DS_FN(prep_##NAME)(w, &blk);                                                                \
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {                                                 \
            DS_FN(iq_group) g;                                                                      \
            DS_FN(decode_##NAME)(w, &blk, ib, &g);                                                  \
            total = _mm256_add_epi32(total, APPLY(&g, a, ib));                                      \
        }                                                                                           \
        DS_FN(iq_finish_block)(s, _mm256_add_epi32(total, SHIFT(&blk, a)), DS_FN(scale_##NAME)(w, a->d)); \
    }                                                                                               \
    DS_ROW_KERNELS(NAME, WBLOCK, ds_block_q8_K, DS_QK_K, DS_FN(state), DS_FN(state_init), DS_FN(step_##NAME), DS_FN(finish_acc)) \
    /* One row against KT tokens; two_states: dot_NAME's even/odd block states. */                  \
    static inline DS_INLINE DS_TARGET void DS_FN(shared_row_##NAME)(int64_t nb, const WBLOCK *w, const ds_block_q8_K *const *a, \
                                                                    const int KT, int two_states, float *out, int64_t ostride) { \
        __m256 acc[2][4];                                                                           \
        for (int k = 0; k < 4; ++k) acc[0][k] = acc[1][k] = _mm256_setzero_ps();                    \
        for (int64_t b = 0; b < nb; ++b) {                                                          \
            __m256i total[4];                                                                       \
            DS_UNROLL for (int k = 0; k < KT; ++k) total[k] = _mm256_setzero_si256();               \
            DS_FN(iq_block) blk;                                                                    \
            DS_FN(prep_##NAME)(w + b, &blk);                                                        \
            for (int ib = 0; ib < DS_QK_K / 32; ++ib) {                                             \
                DS_FN(iq_group) g;                                                                  \
                DS_FN(decode_##NAME)(w + b, &blk, ib, &g);                                          \
                DS_UNROLL for (int k = 0; k < KT; ++k)                                              \
                    total[k] = _mm256_add_epi32(total[k], APPLY(&g, &a[k][b], ib));                 \
            }                                                                                       \
            const int which = two_states ? (int)(b & 1) : 0;                                        \
            DS_UNROLL for (int k = 0; k < KT; ++k)                                                  \
                acc[which][k] = _mm256_fmadd_ps(_mm256_set1_ps(DS_FN(scale_##NAME)(w + b, a[k][b].d)), \
                                                _mm256_cvtepi32_ps(_mm256_add_epi32(total[k], SHIFT(&blk, &a[k][b]))), acc[which][k]); \
        }                                                                                           \
        DS_UNROLL for (int k = 0; k < KT; ++k)                                                      \
            out[k * ostride] = two_states ? DS_FN(hsum_ps)(acc[0][k]) + DS_FN(hsum_ps)(acc[1][k]) : DS_FN(hsum_ps)(acc[0][k]); \
    }                                                                                               \
    static DS_TARGET void DS_FN(shared_##NAME)(int64_t n, const void *vw, size_t stride, int64_t nrows, const void *va, \
                                               size_t astride, int64_t ntok, float *out, int64_t ostride) { \
        const int64_t nb = n / DS_QK_K, grouped = nrows / 4 * 4;                                    \
        const ds_block_q8_K *a[4];                                                                  \
        for (int64_t r = 0; r < nrows; ++r) {                                                       \
            const WBLOCK *w = (const WBLOCK *)((const char *)vw + (size_t)r * stride);              \
            const int two = r >= grouped;                                                           \
            int64_t t = 0;                                                                          \
            for (; t + 4 <= ntok; t += 4) {                                                         \
                for (int k = 0; k < 4; ++k) a[k] = (const ds_block_q8_K *)((const char *)va + (size_t)(t + k) * astride); \
                DS_FN(shared_row_##NAME)(nb, w, a, 4, two, out + t * ostride + r, ostride);         \
            }                                                                                       \
            for (; t < ntok; ++t) {                                                                 \
                a[0] = (const ds_block_q8_K *)((const char *)va + (size_t)t * astride);             \
                DS_FN(shared_row_##NAME)(nb, w, a, 1, two, out + t * ostride + r, ostride);         \
            }                                                                                       \
        }                                                                                           \
    }

DS_IQ_KERNELS(iq2_xxs, ds_block_iq2_xxs, DS_IQ_SCALE_HALF_D(0.125f), DS_FN(iq_apply), DS_FN(iq_no_shift))
DS_IQ_KERNELS(iq2_xs, ds_block_iq2_xs, DS_IQ_SCALE_HALF_D(0.125f), DS_FN(iq_apply), DS_FN(iq_no_shift))
DS_IQ_KERNELS(iq2_s, ds_block_iq2_s, DS_IQ_SCALE_HALF_D(0.125f), DS_FN(iq_apply), DS_FN(iq_no_shift))
DS_IQ_KERNELS(iq3_xxs, ds_block_iq3_xxs, DS_IQ_SCALE_HALF_D(0.25f), DS_FN(iq_apply), DS_FN(iq_no_shift))
DS_IQ_KERNELS(iq3_s, ds_block_iq3_s, DS_IQ_SCALE_HALF_D(1.0f), DS_FN(iq_apply), DS_FN(iq_no_shift))
DS_IQ_KERNELS(iq1_s, ds_block_iq1_s, DS_IQ_SCALE_HALF_D(0.125f), DS_FN(iq1s_apply), DS_FN(iq1s_block_shift))
DS_IQ_KERNELS(iq1_m, ds_block_iq1_m, DS_FN(half)(DS_FN(iq1m_scales)(w, (uint16_t[4]){0})) * a_d * 0.125f, DS_FN(iq1m_apply), DS_FN(iq_no_shift))
DS_IQ_KERNELS(iq4_xs, ds_block_iq4_xs, DS_IQ_SCALE_HALF_D(1.0f), DS_FN(iq_apply), DS_FN(iq_no_shift))

#undef DS_IQ_KERNELS
#undef DS_IQ_SCALE_HALF_D

// IQ4_NL: 32-value blocks against Q8_0, one straight-line step (the multi-row kernel's inlined steps
// share each block's table lookup).
static inline DS_INLINE DS_TARGET void DS_FN(step_iq4_nl)(DS_FN(state) *s, const ds_block_iq4_nl *w,
                                                          const ds_block_q8_0 *a) {
    DS_FN(iq_group) g;
    DS_FN(iq4_weights)(w->qs, &g);
    const __m256i q = DS_FN(load256)(a->qs);
    const __m256i lanes = DS_FN(dot_u8s8)(_mm256_setzero_si256(), g.u, _mm256_sign_epi8(q, g.sign));
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(DS_FN(half)(w->d) * DS_FN(half)(a->d)), _mm256_cvtepi32_ps(lanes), s->acc);
}
DS_ROW_KERNELS(iq4_nl, ds_block_iq4_nl, ds_block_q8_0, DS_QK4_NL, DS_FN(state), DS_FN(state_init), DS_FN(step_iq4_nl), DS_FN(finish_acc))

#undef DS_ROW_KERNELS

// Prompt rows (the gemm entry) also run the multi-row kernel: it builds each weight group's grid bytes
// and sign-free magnitudes once for the tokens of a pass, which is most of an i-quant dot's work.
static void DS_FN(fill_iquant)(ds_kernel_table *t) {
#define DS_SET_IQ(TYPE, NAME)              \
    t->dot[TYPE] = DS_FN(dot_##NAME);      \
    t->rows[TYPE] = DS_FN(rows_##NAME);    \
    t->multi[TYPE] = DS_FN(shared_##NAME); \
    t->gemm[TYPE] = DS_FN(shared_##NAME);  \
    t->own[TYPE] = 1;
    DS_SET_IQ(DS_TYPE_IQ2_XXS, iq2_xxs)
    DS_SET_IQ(DS_TYPE_IQ2_XS, iq2_xs)
    DS_SET_IQ(DS_TYPE_IQ2_S, iq2_s)
    DS_SET_IQ(DS_TYPE_IQ3_XXS, iq3_xxs)
    DS_SET_IQ(DS_TYPE_IQ3_S, iq3_s)
    DS_SET_IQ(DS_TYPE_IQ1_S, iq1_s)
    DS_SET_IQ(DS_TYPE_IQ1_M, iq1_m)
    t->dot[DS_TYPE_IQ4_NL] = DS_FN(dot_iq4_nl);
    t->rows[DS_TYPE_IQ4_NL] = DS_FN(rows_iq4_nl);
    t->multi[DS_TYPE_IQ4_NL] = t->gemm[DS_TYPE_IQ4_NL] = DS_FN(multi_iq4_nl);
    t->own[DS_TYPE_IQ4_NL] = 1;
    DS_SET_IQ(DS_TYPE_IQ4_XS, iq4_xs)
#undef DS_SET_IQ
}
