// ds_packed_x86_kernels.h — fills the GEMM panel from packed weights (ds_pack.c's layout), included
// by ds_gemm_x86_kernels.h once per level (same DS_FN / DS_TARGET / DS_G / panel type).
//
// Packed weights already hold one row per 32-bit lane, so the panel lines come from 8-lane loads,
// masks and shifts: no per-row unpacking and no transpose. Every fill writes exactly what the
// row-major unpacker (unpack_*) and fill_group write for the same rows, so the micro-kernels, and
// therefore each (row, token) result, are bitwise the same as ds_gemm_any on the unpacked rows.
//
// Panel lines of a 32-element block b of the chunk are q[8b + k] (bytes 4k..4k+3 of the block's values
// in activation order); a K super-block fills lines 0..63.

#define DS_PK_AT(pk, T, F) ((pk) + DS_PACK_ROWS * offsetof(T, F))

// One panel group's lanes: a zmm (16 rows) with AVX-512, a ymm (8 rows, `lo` = 0 or 8 within the
// packed group of 16) with AVX2.
#if DS_X86_LEVEL >= 2
typedef __m512i DS_FN(pv);
typedef __m512 DS_FN(pvf);
static inline DS_TARGET __m512i DS_FN(pv_load)(const uint32_t *p) { return _mm512_loadu_si512(p); }
static inline DS_TARGET __m512i DS_FN(pv_set1)(uint32_t x) { return _mm512_set1_epi32((int)x); }
static inline DS_TARGET __m512i DS_FN(pv_and)(__m512i a, __m512i b) { return _mm512_and_si512(a, b); }
static inline DS_TARGET __m512i DS_FN(pv_or)(__m512i a, __m512i b) { return _mm512_or_si512(a, b); }
static inline DS_TARGET __m512i DS_FN(pv_xor)(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }
static inline DS_TARGET __m512i DS_FN(pv_sub)(__m512i a, __m512i b) { return _mm512_sub_epi32(a, b); }
static inline DS_TARGET __m512i DS_FN(pv_mullo)(__m512i a, __m512i b) { return _mm512_mullo_epi32(a, b); }
#define DS_PV_SRLI(v, n) _mm512_srli_epi32((v), (n))
#define DS_PV_SLLI(v, n) _mm512_slli_epi32((v), (n))
#define DS_PV_SRAI(v, n) _mm512_srai_epi32((v), (n))
static inline DS_TARGET __m512 DS_FN(pv_half)(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline DS_TARGET __m512 DS_FN(pv_cvt)(__m512i v) { return _mm512_cvtepi32_ps(v); }
static inline DS_TARGET __m512 DS_FN(pv_mul)(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
static inline DS_TARGET void DS_FN(pv_store)(void *p, __m512i v) { _mm512_store_si512(p, v); }
static inline DS_TARGET void DS_FN(pv_store_f)(float *p, __m512 v) { _mm512_store_ps(p, v); }
#else
typedef __m256i DS_FN(pv);
typedef __m256 DS_FN(pvf);
static inline DS_TARGET __m256i DS_FN(pv_load)(const uint32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline DS_TARGET __m256i DS_FN(pv_set1)(uint32_t x) { return _mm256_set1_epi32((int)x); }
static inline DS_TARGET __m256i DS_FN(pv_and)(__m256i a, __m256i b) { return _mm256_and_si256(a, b); }
static inline DS_TARGET __m256i DS_FN(pv_or)(__m256i a, __m256i b) { return _mm256_or_si256(a, b); }
static inline DS_TARGET __m256i DS_FN(pv_xor)(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
static inline DS_TARGET __m256i DS_FN(pv_sub)(__m256i a, __m256i b) { return _mm256_sub_epi32(a, b); }
static inline DS_TARGET __m256i DS_FN(pv_mullo)(__m256i a, __m256i b) { return _mm256_mullo_epi32(a, b); }
#define DS_PV_SRLI(v, n) _mm256_srli_epi32((v), (n))
#define DS_PV_SLLI(v, n) _mm256_slli_epi32((v), (n))
#define DS_PV_SRAI(v, n) _mm256_srai_epi32((v), (n))
static inline DS_TARGET __m256 DS_FN(pv_half)(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline DS_TARGET __m256 DS_FN(pv_cvt)(__m256i v) { return _mm256_cvtepi32_ps(v); }
static inline DS_TARGET __m256 DS_FN(pv_mul)(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
static inline DS_TARGET void DS_FN(pv_store)(void *p, __m256i v) { _mm256_store_si256((__m256i *)p, v); }
static inline DS_TARGET void DS_FN(pv_store_f)(float *p, __m256 v) { _mm256_store_ps(p, v); }
#endif

// 4-byte unit k of byte field F, and fp16 field F as floats, of this panel group's rows (`lo` in scope).
// Each unit of 16 rows is one 64-byte line: loading it also prefetches the line DS_PK_PREFETCH bytes on,
// so the reads ahead are spread over the work instead of issued in bursts.
#define DS_PK_PREFETCH 4096
static inline DS_TARGET DS_FN(pv) DS_FN(pk_unit)(const uint32_t *p, int lo) {
    if (lo == 0) _mm_prefetch((const char *)p + DS_PK_PREFETCH, _MM_HINT_T0);
    return DS_FN(pv_load)(p + lo);
}
#define DS_PK_U32(pk, T, F, k) DS_FN(pk_unit)((const uint32_t *)DS_PK_AT(pk, T, F) + (k) * DS_PACK_ROWS, lo)
#define DS_PK_HALF(pk, T, F) DS_FN(pv_half)((const uint16_t *)DS_PK_AT(pk, T, F) + lo)

// Fills panel group g from nb consecutive block groups starting at pk (lanes lo.. of each).
typedef void (*DS_FN(pk_fill_fn))(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g);

static inline DS_TARGET void DS_FN(pk_line)(DS_FN(panel) *p, int g, int line, DS_FN(pv) v) { DS_FN(pv_store)(p->q[g][line], v); }
static inline DS_TARGET DS_FN(pv) DS_FN(pk_low)(DS_FN(pv) v) { return DS_FN(pv_and)(v, DS_FN(pv_set1)(0x0F0F0F0Fu)); }
static inline DS_TARGET DS_FN(pv) DS_FN(pk_high)(DS_FN(pv) v) {
    return DS_FN(pv_and)(DS_PV_SRLI(v, 4), DS_FN(pv_set1)(0x0F0F0F0Fu));
}
// Byte j (0..3) of each lane as float, unsigned or signed.
#define DS_PK_BYTE_U(v, j) DS_FN(pv_cvt)(DS_FN(pv_and)(DS_PV_SRLI((v), 8 * (j)), DS_FN(pv_set1)(0xFF)))
#define DS_PK_BYTE_S(v, j) DS_FN(pv_cvt)(DS_PV_SRAI(DS_PV_SLLI((v), 24 - 8 * (j)), 24))
// Bits 0..3 of each lane's x to bit 4 of bytes 0..3 (x * 0x00204081 puts bit i at bit 8i).
static inline DS_TARGET DS_FN(pv) DS_FN(pk_bits_to_bit4)(DS_FN(pv) x) {
    const DS_FN(pv) spread = DS_FN(pv_mullo)(DS_FN(pv_and)(x, DS_FN(pv_set1)(0xF)), DS_FN(pv_set1)(0x00204081));
    return DS_PV_SLLI(DS_FN(pv_and)(spread, DS_FN(pv_set1)(0x01010101u)), 4);
}

// ---- 32-element blocks (b = block within the chunk, pk advanced to its block group) ---------------

#define DS_PK_BLOCKS(T) for (int b = 0; b < nb; ++b, pk += DS_PACK_ROWS * sizeof(T))

// Nibbles: line k = low nibbles of unit k, line 4+k = high nibbles (values 16..31).
#define DS_PK_NIBBLE_LINES(T)                                                                       \
    for (int k = 0; k < 4; ++k) {                                                                   \
        const DS_FN(pv) v = DS_PK_U32(pk, T, qs, k);                                                \
        DS_FN(pk_line)(p, g, 8 * b + k, DS_FN(pk_low)(v));                                          \
        DS_FN(pk_line)(p, g, 8 * b + 4 + k, DS_FN(pk_high)(v));                                     \
    }

static DS_TARGET void DS_FN(pk_fill_q4_0)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    DS_PK_BLOCKS(ds_block_q4_0) {
        DS_PK_NIBBLE_LINES(ds_block_q4_0)
        DS_FN(pv_store_f)(p->sc[g][b], DS_PK_HALF(pk, ds_block_q4_0, d));
    }
}

static DS_TARGET void DS_FN(pk_fill_q4_1)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    DS_PK_BLOCKS(ds_block_q4_1) {
        DS_PK_NIBBLE_LINES(ds_block_q4_1)
        DS_FN(pv_store_f)(p->sc[g][b], DS_PK_HALF(pk, ds_block_q4_1, d));
        DS_FN(pv_store_f)(p->aux[g][b], DS_PK_HALF(pk, ds_block_q4_1, m));
    }
}

// Q5: value i = nibble | (bit i of qh) << 4.
#define DS_PK_Q5_LINES(T)                                                                           \
    const DS_FN(pv) qh = DS_PK_U32(pk, T, qh, 0);                                                   \
    for (int k = 0; k < 4; ++k) {                                                                   \
        const DS_FN(pv) v = DS_PK_U32(pk, T, qs, k);                                                \
        DS_FN(pk_line)(p, g, 8 * b + k, DS_FN(pv_or)(DS_FN(pk_low)(v), DS_FN(pk_bits_to_bit4)(DS_PV_SRLI(qh, 4 * k)))); \
        DS_FN(pk_line)(p, g, 8 * b + 4 + k,                                                         \
                       DS_FN(pv_or)(DS_FN(pk_high)(v), DS_FN(pk_bits_to_bit4)(DS_PV_SRLI(qh, 16 + 4 * k)))); \
    }

static DS_TARGET void DS_FN(pk_fill_q5_0)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    DS_PK_BLOCKS(ds_block_q5_0) {
        DS_PK_Q5_LINES(ds_block_q5_0)
        DS_FN(pv_store_f)(p->sc[g][b], DS_PK_HALF(pk, ds_block_q5_0, d));
    }
}

static DS_TARGET void DS_FN(pk_fill_q5_1)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    DS_PK_BLOCKS(ds_block_q5_1) {
        DS_PK_Q5_LINES(ds_block_q5_1)
        DS_FN(pv_store_f)(p->sc[g][b], DS_PK_HALF(pk, ds_block_q5_1, d));
        DS_FN(pv_store_f)(p->aux[g][b], DS_PK_HALF(pk, ds_block_q5_1, m));
    }
}

// Q8_0: AVX-512 stores u = q + 128 (q ^ 0x80), AVX2 keeps q signed (as unpack_q8_0).
static DS_TARGET void DS_FN(pk_fill_q8_0)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    DS_PK_BLOCKS(ds_block_q8_0) {
        for (int k = 0; k < 8; ++k) {
            DS_FN(pv) v = DS_PK_U32(pk, ds_block_q8_0, qs, k);
#if DS_X86_LEVEL >= 2
            v = DS_FN(pv_xor)(v, DS_FN(pv_set1)(0x80808080u));
#endif
            DS_FN(pk_line)(p, g, 8 * b + k, v);
        }
        DS_FN(pv_store_f)(p->sc[g][b], DS_PK_HALF(pk, ds_block_q8_0, d));
    }
}

// ---- K-quants (one super-block per chunk: nb = 1) -------------------------------------------------

// Q4_K / Q5_K scales and mins: 6-bit codes from the 12 scale bytes (k4_scales_mins, per lane),
// sc_j = d * code_j, mins as int16 pairs (m_2p, m_2p+1), aux[0] = dmin.
#define DS_PK_K4_SCALES(T)                                                                          \
    const DS_FN(pv) d0 = DS_PK_U32(pk, T, scales, 0), d1 = DS_PK_U32(pk, T, scales, 1);             \
    const DS_FN(pv) d2 = DS_PK_U32(pk, T, scales, 2);                                               \
    const DS_FN(pv) six = DS_FN(pv_set1)(0x3F3F3F3Fu), two = DS_FN(pv_set1)(0x03030303u);           \
    const DS_FN(pv) sc_lo = DS_FN(pv_and)(d0, six), mn_lo = DS_FN(pv_and)(d1, six);                 \
    const DS_FN(pv) sc_hi = DS_FN(pv_or)(DS_FN(pk_low)(d2), DS_PV_SLLI(DS_FN(pv_and)(DS_PV_SRLI(d0, 6), two), 4)); \
    const DS_FN(pv) mn_hi = DS_FN(pv_or)(DS_FN(pk_high)(d2), DS_PV_SLLI(DS_FN(pv_and)(DS_PV_SRLI(d1, 6), two), 4)); \
    const DS_FN(pvf) d = DS_PK_HALF(pk, T, d);                                                      \
    for (int j = 0; j < 4; ++j) {                                                                   \
        DS_FN(pv_store_f)(p->sc[g][j], DS_FN(pv_mul)(d, DS_PK_BYTE_U(sc_lo, j)));                   \
        DS_FN(pv_store_f)(p->sc[g][4 + j], DS_FN(pv_mul)(d, DS_PK_BYTE_U(sc_hi, j)));               \
    }                                                                                               \
    for (int q = 0; q < 4; ++q) {                                                                   \
        const DS_FN(pv) x = DS_PV_SRLI(q < 2 ? mn_lo : mn_hi, 16 * (q & 1));                        \
        const DS_FN(pv) byte = DS_FN(pv_set1)(0xFF);                                                \
        DS_FN(pv_store)(p->mins[g][q], DS_FN(pv_or)(DS_FN(pv_and)(x, byte), DS_PV_SLLI(DS_FN(pv_and)(DS_PV_SRLI(x, 8), byte), 16))); \
    }                                                                                               \
    DS_FN(pv_store_f)(p->aux[g][0], DS_PK_HALF(pk, T, dmin));

// Q4_K values: qs bytes 32c..32c+31: low nibbles = values 64c.., high = 64c+32.. (lines 16c+i, 16c+8+i).
static DS_TARGET void DS_FN(pk_fill_q4_K)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    (void)nb;
    DS_PK_K4_SCALES(ds_block_q4_K)
    for (int u = 0; u < 32; ++u) {
        const DS_FN(pv) v = DS_PK_U32(pk, ds_block_q4_K, qs, u);
        const int c = u / 8, i = u % 8;
        DS_FN(pk_line)(p, g, 16 * c + i, DS_FN(pk_low)(v));
        DS_FN(pk_line)(p, g, 16 * c + 8 + i, DS_FN(pk_high)(v));
    }
}

// Q5_K: as Q4_K plus bit 2c (low half) / 2c+1 (high half) of qh byte l as bit 4.
static DS_TARGET void DS_FN(pk_fill_q5_K)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    (void)nb;
    DS_PK_K4_SCALES(ds_block_q5_K)
    const DS_FN(pv) one = DS_FN(pv_set1)(0x01010101u);
    for (int u = 0; u < 32; ++u) {
        const DS_FN(pv) v = DS_PK_U32(pk, ds_block_q5_K, qs, u);
        const int c = u / 8, i = u % 8;
        const DS_FN(pv) qh = DS_PK_U32(pk, ds_block_q5_K, qh, i);
        const DS_FN(pv) lo5 = DS_PV_SLLI(DS_FN(pv_and)(DS_PV_SRLI(qh, 2 * c), one), 4);
        const DS_FN(pv) hi5 = DS_PV_SLLI(DS_FN(pv_and)(DS_PV_SRLI(qh, 2 * c + 1), one), 4);
        DS_FN(pk_line)(p, g, 16 * c + i, DS_FN(pv_or)(DS_FN(pk_low)(v), lo5));
        DS_FN(pk_line)(p, g, 16 * c + 8 + i, DS_FN(pv_or)(DS_FN(pk_high)(v), hi5));
    }
}

// Q6_K: values 128hh + 32s + l: 4 low bits from ql, 2 high bits from qh (as unpack_q6_K).
static DS_TARGET void DS_FN(pk_fill_q6_K)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    (void)nb;
    const DS_FN(pvf) d = DS_PK_HALF(pk, ds_block_q6_K, d);
    for (int u = 0; u < 4; ++u) {
        const DS_FN(pv) s = DS_PK_U32(pk, ds_block_q6_K, scales, u);
        for (int j = 0; j < 4; ++j) DS_FN(pv_store_f)(p->sc[g][4 * u + j], DS_FN(pv_mul)(d, DS_PK_BYTE_S(s, j)));
    }
    const DS_FN(pv) m3 = DS_FN(pv_set1)(0x03030303u), mC = DS_FN(pv_set1)(0x0C0C0C0Cu);
    const DS_FN(pv) m30 = DS_FN(pv_set1)(0x30303030u), mC0 = DS_FN(pv_set1)(0xC0C0C0C0u);
    for (int hh = 0; hh < 2; ++hh) {
        for (int i = 0; i < 8; ++i) {
            const DS_FN(pv) ql0 = DS_PK_U32(pk, ds_block_q6_K, ql, 16 * hh + i);
            const DS_FN(pv) ql1 = DS_PK_U32(pk, ds_block_q6_K, ql, 16 * hh + 8 + i);
            const DS_FN(pv) qh = DS_PK_U32(pk, ds_block_q6_K, qh, 8 * hh + i);
            const int base = 32 * hh + i;
            DS_FN(pk_line)(p, g, base, DS_FN(pv_or)(DS_FN(pk_low)(ql0), DS_PV_SLLI(DS_FN(pv_and)(qh, m3), 4)));
            DS_FN(pk_line)(p, g, base + 8, DS_FN(pv_or)(DS_FN(pk_low)(ql1), DS_PV_SLLI(DS_FN(pv_and)(qh, mC), 2)));
            DS_FN(pk_line)(p, g, base + 16, DS_FN(pv_or)(DS_FN(pk_high)(ql0), DS_FN(pv_and)(qh, m30)));
            DS_FN(pk_line)(p, g, base + 24, DS_FN(pv_or)(DS_FN(pk_high)(ql1), DS_PV_SRLI(DS_FN(pv_and)(qh, mC0), 2)));
        }
    }
}

// Q2_K: value 128c + 32k + l = (qs[32c+l] >> 2k) & 3; scales byte j: low nibble sc_j, high m_j.
static DS_TARGET void DS_FN(pk_fill_q2_K)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    (void)nb;
    const DS_FN(pvf) d = DS_PK_HALF(pk, ds_block_q2_K, d);
    const DS_FN(pv) nib = DS_FN(pv_set1)(0xF);
    for (int u = 0; u < 4; ++u) {
        const DS_FN(pv) s = DS_PK_U32(pk, ds_block_q2_K, scales, u);
        for (int j = 0; j < 4; ++j)
            DS_FN(pv_store_f)(p->sc[g][4 * u + j], DS_FN(pv_mul)(d, DS_FN(pv_cvt)(DS_FN(pv_and)(DS_PV_SRLI(s, 8 * j), nib))));
        for (int q = 0; q < 2; ++q) {   // pair 2u + q: bytes 2q, 2q+1 of unit u
            const DS_FN(pv) x = DS_PV_SRLI(s, 16 * q);
            DS_FN(pv_store)(p->mins[g][2 * u + q], DS_FN(pv_or)(DS_FN(pv_and)(DS_PV_SRLI(x, 4), nib),
                                                                 DS_PV_SLLI(DS_FN(pv_and)(DS_PV_SRLI(x, 12), nib), 16)));
        }
    }
    DS_FN(pv_store_f)(p->aux[g][0], DS_PK_HALF(pk, ds_block_q2_K, dmin));
    const DS_FN(pv) two = DS_FN(pv_set1)(0x03030303u);
    for (int c = 0; c < 2; ++c)
        for (int i = 0; i < 8; ++i) {
            const DS_FN(pv) v = DS_PK_U32(pk, ds_block_q2_K, qs, 8 * c + i);
            for (int k = 0; k < 4; ++k) DS_FN(pk_line)(p, g, 32 * c + 8 * k + i, DS_FN(pv_and)(DS_PV_SRLI(v, 2 * k), two));
        }
}

// Q3_K: value 128c + 32k + l = ((qs[32c+l] >> 2k) & 3) | (hmask bit 4c+k of byte l) << 2; scales as
// q3k_scales (6-bit codes minus 32).
static DS_TARGET void DS_FN(pk_fill_q3_K)(const uint8_t *pk, int nb, int lo, DS_FN(panel) *p, int g) {
    (void)nb;
    const DS_FN(pvf) d = DS_PK_HALF(pk, ds_block_q3_K, d);
    const DS_FN(pv) w0 = DS_PK_U32(pk, ds_block_q3_K, scales, 0), w1 = DS_PK_U32(pk, ds_block_q3_K, scales, 1);
    const DS_FN(pv) hi = DS_PK_U32(pk, ds_block_q3_K, scales, 2);
    const DS_FN(pv) two = DS_FN(pv_set1)(0x03030303u), one = DS_FN(pv_set1)(0x01010101u);
    for (int u = 0; u < 4; ++u) {
        const DS_FN(pv) low = u == 0 ? DS_FN(pk_low)(w0) : u == 1 ? DS_FN(pk_low)(w1) : u == 2 ? DS_FN(pk_high)(w0) : DS_FN(pk_high)(w1);
        const DS_FN(pv) code = DS_FN(pv_or)(low, DS_PV_SLLI(DS_FN(pv_and)(DS_PV_SRLI(hi, 2 * u), two), 4));
        for (int j = 0; j < 4; ++j) {
            const DS_FN(pv) byte = DS_FN(pv_and)(DS_PV_SRLI(code, 8 * j), DS_FN(pv_set1)(0xFF));
            DS_FN(pv_store_f)(p->sc[g][4 * u + j], DS_FN(pv_mul)(d, DS_FN(pv_cvt)(DS_FN(pv_sub)(byte, DS_FN(pv_set1)(32)))));
        }
    }
    for (int c = 0; c < 2; ++c)
        for (int i = 0; i < 8; ++i) {
            const DS_FN(pv) v = DS_PK_U32(pk, ds_block_q3_K, qs, 8 * c + i);
            const DS_FN(pv) hm = DS_PK_U32(pk, ds_block_q3_K, hmask, i);
            for (int k = 0; k < 4; ++k) {
                const DS_FN(pv) high = DS_PV_SLLI(DS_FN(pv_and)(DS_PV_SRLI(hm, 4 * c + k), one), 2);
                DS_FN(pk_line)(p, g, 32 * c + 8 * k + i, DS_FN(pv_or)(DS_FN(pv_and)(DS_PV_SRLI(v, 2 * k), two), high));
            }
        }
}

#undef DS_PK_NIBBLE_LINES
#undef DS_PK_Q5_LINES
#undef DS_PK_K4_SCALES
#undef DS_PK_AT
#undef DS_PK_U32
#undef DS_PK_PREFETCH
#undef DS_PK_HALF
#undef DS_PK_BLOCKS
#undef DS_PK_BYTE_U
#undef DS_PK_BYTE_S
#undef DS_PV_SRLI
#undef DS_PV_SLLI
#undef DS_PV_SRAI
