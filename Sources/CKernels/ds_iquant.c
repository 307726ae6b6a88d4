// ds_iquant.c — the i-quants (ds_iquant.h): dequantization bit-exact to ggml's, and the scalar dot
// products against the int8 activation formats (Q8_K; Q8_0 for IQ4_NL).
//
// Dequantization computes each value with ggml's float expression, in its order (checked against the
// gguf package's dequantization, Tests/KernelsTests/Fixtures/quant/iq). The dot products sum grid value
// × sign × activation as exact integers per sub-block; the scale factors (integers such as 2s + 1) are
// applied to those sums in integers, and only the block's d_w · d_a is float. They equal the dequantized
// weights' dot product to rounding.
#include "ds_internal.h"

#include <math.h>
#include <stddef.h>

#define IQ1S_DELTA 0.125f

// Value j of a sign pattern: -1 where bit j is set.
static inline float iq_sign(uint8_t pattern, int j) { return (pattern >> j) & 1 ? -1.0f : 1.0f; }
static inline int iq_isign(uint8_t pattern, int j) { return (pattern >> j) & 1 ? -1 : 1; }

static inline uint32_t iq_u32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// ds_ksigns_iq2xs as sign bytes for vpsignb and the like: byte j of entry k is 0xFF (-1) where bit j
// of the pattern is set, else 0x01. The pattern of the 7-bit index k is k with bit 7 its parity.
#define DS_PM1_BYTE(p, j) ((uint64_t)((((p) >> (j)) & 1) ? 0xFF : 0x01) << (8 * (j)))
#define DS_PM1(p) (DS_PM1_BYTE(p, 0) | DS_PM1_BYTE(p, 1) | DS_PM1_BYTE(p, 2) | DS_PM1_BYTE(p, 3) | \
                   DS_PM1_BYTE(p, 4) | DS_PM1_BYTE(p, 5) | DS_PM1_BYTE(p, 6) | DS_PM1_BYTE(p, 7))
#define DS_PARITY7(k) (((k) ^ (k) >> 1 ^ (k) >> 2 ^ (k) >> 3 ^ (k) >> 4 ^ (k) >> 5 ^ (k) >> 6) & 1)
#define DS_KS(k) DS_PM1((k) | DS_PARITY7(k) << 7)
#define DS_KS4(k) DS_KS(k), DS_KS((k) + 1), DS_KS((k) + 2), DS_KS((k) + 3)
#define DS_KS16(k) DS_KS4(k), DS_KS4((k) + 4), DS_KS4((k) + 8), DS_KS4((k) + 12)
const uint64_t ds_ksigns_pm1[128] = {
    DS_KS16(0), DS_KS16(16), DS_KS16(32), DS_KS16(48), DS_KS16(64), DS_KS16(80), DS_KS16(96), DS_KS16(112),
};
#define DS_PICK4(j) 2 * (j), 2 * (j) + 1, 2 * (j), 2 * (j) + 1, 2 * (j), 2 * (j) + 1, 2 * (j), 2 * (j) + 1
#define DS_PICK(j) {DS_PICK4(j), DS_PICK4(j), DS_PICK4(j), DS_PICK4(j)}
const uint8_t ds_iq_pick_int16[8][32] = {DS_PICK(0), DS_PICK(1), DS_PICK(2), DS_PICK(3), DS_PICK(4), DS_PICK(5), DS_PICK(6), DS_PICK(7)};
#define DS_ROW8(m, r) DS_ROWSIGN(m, r), DS_ROWSIGN(m, r), DS_ROWSIGN(m, r), DS_ROWSIGN(m, r), \
                      DS_ROWSIGN(m, r), DS_ROWSIGN(m, r), DS_ROWSIGN(m, r), DS_ROWSIGN(m, r)
#define DS_ROWSIGN(m, r) (((m) >> (r)) & 1 ? -1 : 1)
#define DS_ROWS(m) {DS_ROW8(m, 0), DS_ROW8(m, 1), DS_ROW8(m, 2), DS_ROW8(m, 3)}
const int8_t ds_iq1m_row_signs[16][32] = {DS_ROWS(0), DS_ROWS(1), DS_ROWS(2), DS_ROWS(3), DS_ROWS(4), DS_ROWS(5),
                                          DS_ROWS(6), DS_ROWS(7), DS_ROWS(8), DS_ROWS(9), DS_ROWS(10), DS_ROWS(11),
                                          DS_ROWS(12), DS_ROWS(13), DS_ROWS(14), DS_ROWS(15)};
#undef DS_ROWS
#undef DS_ROWSIGN
#undef DS_ROW8
#undef DS_PICK
#undef DS_PICK4
#undef DS_KS16
#undef DS_KS4
#undef DS_KS
#undef DS_PARITY7
#undef DS_PM1
#undef DS_PM1_BYTE

void ds_iq_gpu_codebook(uint8_t *out) {
    memcpy(out, ds_iq2xxs_grid, 2048);
    memcpy(out + 2048, ds_iq2xs_grid, 4096);
    memcpy(out + 6144, ds_iq2s_grid, 8192);
    memcpy(out + 14336, ds_iq3xxs_grid, 1024);
    memcpy(out + 15360, ds_iq3s_grid, 2048);
    memcpy(out + 17408, ds_iq1s_grid, 16384);
    memcpy(out + 33792, ds_ksigns_iq2xs, 128);
}
DS_STATIC_ASSERT(sizeof(ds_iq2xxs_grid) == 2048 && sizeof(ds_iq2xs_grid) == 4096 && sizeof(ds_iq2s_grid) == 8192 &&
                 sizeof(ds_iq3xxs_grid) == 1024 && sizeof(ds_iq3s_grid) == 2048 && sizeof(ds_iq1s_grid) == 16384 &&
                 sizeof(ds_ksigns_iq2xs) == 128, "codebook sizes");

// ---- Dequantization ----------------------------------------------------------------------------

static void dequantize_iq2_xxs(const ds_block_iq2_xxs *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const float d = ds_half_to_float(x[i].d);
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
            const uint8_t *idx = (const uint8_t *)(x[i].qs + 4 * ib);
            const uint32_t aux = iq_u32(x[i].qs + 4 * ib + 2);
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t *grid = ds_iq2xxs_grid[idx[l]];
                const uint8_t signs = ds_ksigns_iq2xs[(aux >> (7 * l)) & 127];
                for (int j = 0; j < 8; ++j) y[j] = db * grid[j] * iq_sign(signs, j);
            }
        }
    }
}

static void dequantize_iq2_xs(const ds_block_iq2_xs *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const float d = ds_half_to_float(x[i].d);
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[ib] & 0x0F)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint16_t q = x[i].qs[4 * ib + l];
                const uint8_t *grid = ds_iq2xs_grid[q & 511];
                const uint8_t signs = ds_ksigns_iq2xs[q >> 9];
                for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * grid[j] * iq_sign(signs, j);
            }
        }
    }
}

static void dequantize_iq2_s(const ds_block_iq2_s *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const float d = ds_half_to_float(x[i].d);
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + DS_QK_K / 8;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 4, signs += 4) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[ib] & 0x0F)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t *grid = ds_iq2s_grid[qs[l] | ((x[i].qh[ib] << (8 - 2 * l)) & 0x300)];
                for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * grid[j] * iq_sign(signs[l], j);
            }
        }
    }
}

static void dequantize_iq3_xxs(const ds_block_iq3_xxs *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const float d = ds_half_to_float(x[i].d);
        const uint8_t *qs = x[i].qs, *scales_and_signs = x[i].qs + DS_QK_K / 4;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 8) {
            const uint32_t aux = iq_u32(scales_and_signs + 4 * ib);
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t signs = ds_ksigns_iq2xs[(aux >> (7 * l)) & 127];
                const uint8_t *g1 = ds_iq3xxs_grid[qs[2 * l]], *g2 = ds_iq3xxs_grid[qs[2 * l + 1]];
                for (int j = 0; j < 4; ++j) {
                    y[j] = db * g1[j] * iq_sign(signs, j);
                    y[j + 4] = db * g2[j] * iq_sign(signs, j + 4);
                }
            }
        }
    }
}

static void dequantize_iq3_s(const ds_block_iq3_s *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const float d = ds_half_to_float(x[i].d);
        const uint8_t *qs = x[i].qs, *signs = x[i].signs;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 8, signs += 4) {
            const int s = ib % 2 ? x[i].scales[ib / 2] >> 4 : x[i].scales[ib / 2] & 0x0F;
            const float db = d * (1 + 2 * s);
            const uint8_t qh = x[i].qh[ib];
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t *g1 = ds_iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)];
                const uint8_t *g2 = ds_iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)];
                for (int j = 0; j < 4; ++j) {
                    y[j] = db * g1[j] * iq_sign(signs[l], j);
                    y[j + 4] = db * g2[j] * iq_sign(signs[l], j + 4);
                }
            }
        }
    }
}

static void dequantize_iq1_s(const ds_block_iq1_s *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const float d = ds_half_to_float(x[i].d);
        const uint8_t *qs = x[i].qs;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 4) {
            const uint16_t qh = x[i].qh[ib];
            const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -IQ1S_DELTA : IQ1S_DELTA;
            for (int l = 0; l < 4; ++l, y += 8) {
                const int8_t *grid = ds_iq1s_grid[qs[l] | (((qh >> (3 * l)) & 7) << 8)];
                for (int j = 0; j < 8; ++j) y[j] = dl * ((float)grid[j] + delta);
            }
        }
    }
}

static void dequantize_iq1_m(const ds_block_iq1_m *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        uint16_t sc[4];
        const float d = ds_half_to_float(ds_iq1m_d_bits(&x[i], sc));
        const uint8_t *qs = x[i].qs, *qh = x[i].qh;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 4, qh += 2) {
            const int shift = 6 * (ib % 2);
            const float dl[2] = {d * (float)(2 * ((sc[ib / 2] >> shift) & 7) + 1),
                                 d * (float)(2 * ((sc[ib / 2] >> (shift + 3)) & 7) + 1)};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t nibble = (uint8_t)(qh[l / 2] >> (4 * (l % 2)));
                const int8_t *grid = ds_iq1s_grid[qs[l] | ((nibble & 7) << 8)];
                const float delta = nibble & 8 ? -IQ1S_DELTA : IQ1S_DELTA;
                for (int j = 0; j < 8; ++j) y[j] = dl[l / 2] * ((float)grid[j] + delta);
            }
        }
    }
}

static void dequantize_iq4_nl(const ds_block_iq4_nl *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK4_NL; ++i, y += DS_QK4_NL) {
        const float d = ds_half_to_float(x[i].d);
        for (int j = 0; j < DS_QK4_NL / 2; ++j) {
            y[j] = d * ds_kvalues_iq4nl[x[i].qs[j] & 0x0F];
            y[j + DS_QK4_NL / 2] = d * ds_kvalues_iq4nl[x[i].qs[j] >> 4];
        }
    }
}

static void dequantize_iq4_xs(const ds_block_iq4_xs *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const float d = ds_half_to_float(x[i].d);
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, y += 32) {
            const float dl = d * (float)ds_iq4xs_scale(&x[i], ib);
            const uint8_t *qs = x[i].qs + 16 * ib;
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * ds_kvalues_iq4nl[qs[j] & 0x0F];
                y[j + 16] = dl * ds_kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

int ds_dequantize_iquant(int type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case DS_TYPE_IQ2_XXS: dequantize_iq2_xxs((const ds_block_iq2_xxs *)src, dst, n); return 1;
    case DS_TYPE_IQ2_XS: dequantize_iq2_xs((const ds_block_iq2_xs *)src, dst, n); return 1;
    case DS_TYPE_IQ2_S: dequantize_iq2_s((const ds_block_iq2_s *)src, dst, n); return 1;
    case DS_TYPE_IQ3_XXS: dequantize_iq3_xxs((const ds_block_iq3_xxs *)src, dst, n); return 1;
    case DS_TYPE_IQ3_S: dequantize_iq3_s((const ds_block_iq3_s *)src, dst, n); return 1;
    case DS_TYPE_IQ1_S: dequantize_iq1_s((const ds_block_iq1_s *)src, dst, n); return 1;
    case DS_TYPE_IQ1_M: dequantize_iq1_m((const ds_block_iq1_m *)src, dst, n); return 1;
    case DS_TYPE_IQ4_NL: dequantize_iq4_nl((const ds_block_iq4_nl *)src, dst, n); return 1;
    case DS_TYPE_IQ4_XS: dequantize_iq4_xs((const ds_block_iq4_xs *)src, dst, n); return 1;
    default: return 0;
    }
}

// ---- Synthetic blocks ------------------------------------------------------------------------------

// Writes the fp16 bits of a block's scale d (IQ1_M: the top nibbles of its four scale words).
static void iq_set_d(int type, unsigned char *block, uint16_t bits) {
    if (type == DS_TYPE_IQ1_M) {
        unsigned char *sc = block + offsetof(ds_block_iq1_m, scales);
        for (int w = 0; w < 4; ++w) sc[2 * w + 1] = (unsigned char)((sc[2 * w + 1] & 0x0F) | (((bits >> (4 * w)) & 0xF) << 4));
    } else {
        memcpy(block, &bits, 2);
    }
}

int ds_random_iquant_blocks(int type, uint64_t seed, float rms, void *dst, int64_t n) {
    float values[DS_QK_K];
    const int64_t block = ds_type_block_size(type), bytes = ds_type_block_bytes(type);
    // (Dequantizing 0 elements only asks whether `type` is an i-quant.)
    if (!ds_type_supported(type) || block <= 0 || n % block != 0 || !ds_dequantize_iquant(type, dst, values, 0)) return 0;
    uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    for (int64_t b = 0; b < n / block; ++b) {
        unsigned char *blk = (unsigned char *)dst + b * bytes;
        for (int64_t i = 0; i < bytes; ++i) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            blk[i] = (unsigned char)(state >> 24);
        }
        iq_set_d(type, blk, 0x3C00);   // d = 1: measure the codes' own root mean square
        ds_dequantize_iquant(type, blk, values, block);
        double sum = 0;
        for (int64_t i = 0; i < block; ++i) sum += (double)values[i] * values[i];
        const double own = sqrt(sum / (double)block);
        iq_set_d(type, blk, ds_float_to_half(own > 0 ? (float)(rms / own) : 0.0f));
    }
    return 1;
}

// ---- Scalar dot products -------------------------------------------------------------------------
// Per block: integer sums per sub-block times the sub-block's integer scale, then d_w · d_a · sum / k
// with k the power of two the scale formula divides by (8 for IQ2, 4 for IQ3_XXS, 1 for IQ3_S).

// Σ_j grid[j] · sign_j · q[j] over 8 values.
static inline int iq_signed_dot8(const uint8_t *grid, uint8_t signs, const int8_t *q) {
    int s = 0;
    for (int j = 0; j < 8; ++j) s += grid[j] * iq_isign(signs, j) * q[j];
    return s;
}

static float dot_iq2_xxs(int64_t n, const void *vw, const void *va) {
    const ds_block_iq2_xxs *w = (const ds_block_iq2_xxs *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const int8_t *q = a[i].qs;
        int32_t total = 0;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
            const uint8_t *idx = (const uint8_t *)(w[i].qs + 4 * ib);
            const uint32_t aux = iq_u32(w[i].qs + 4 * ib + 2);
            int s = 0;
            for (int l = 0; l < 4; ++l, q += 8) s += iq_signed_dot8(ds_iq2xxs_grid[idx[l]], ds_ksigns_iq2xs[(aux >> (7 * l)) & 127], q);
            total += (int32_t)(2 * (aux >> 28) + 1) * s;
        }
        sum += ds_half_to_float(w[i].d) * a[i].d * (float)total * 0.125f;
    }
    return sum;
}

static float dot_iq2_xs(int64_t n, const void *vw, const void *va) {
    const ds_block_iq2_xs *w = (const ds_block_iq2_xs *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const int8_t *q = a[i].qs;
        int32_t total = 0;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
            for (int half = 0; half < 2; ++half) {
                const int ls = 2 * ((w[i].scales[ib] >> (4 * half)) & 0x0F) + 1;
                int s = 0;
                for (int l = 2 * half; l < 2 * half + 2; ++l, q += 8) {
                    const uint16_t code = w[i].qs[4 * ib + l];
                    s += iq_signed_dot8(ds_iq2xs_grid[code & 511], ds_ksigns_iq2xs[code >> 9], q);
                }
                total += ls * s;
            }
        }
        sum += ds_half_to_float(w[i].d) * a[i].d * (float)total * 0.125f;
    }
    return sum;
}

static float dot_iq2_s(int64_t n, const void *vw, const void *va) {
    const ds_block_iq2_s *w = (const ds_block_iq2_s *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const int8_t *q = a[i].qs;
        const uint8_t *qs = w[i].qs, *signs = w[i].qs + DS_QK_K / 8;
        int32_t total = 0;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 4, signs += 4) {
            for (int half = 0; half < 2; ++half) {
                const int ls = 2 * ((w[i].scales[ib] >> (4 * half)) & 0x0F) + 1;
                int s = 0;
                for (int l = 2 * half; l < 2 * half + 2; ++l, q += 8)
                    s += iq_signed_dot8(ds_iq2s_grid[qs[l] | ((w[i].qh[ib] << (8 - 2 * l)) & 0x300)], signs[l], q);
                total += ls * s;
            }
        }
        sum += ds_half_to_float(w[i].d) * a[i].d * (float)total * 0.125f;
    }
    return sum;
}

// Σ over the 8 values of two 4-value grid rows g1, g2 with one sign pattern.
static inline int iq_signed_dot4x2(const uint8_t *g1, const uint8_t *g2, uint8_t signs, const int8_t *q) {
    int s = 0;
    for (int j = 0; j < 4; ++j) s += g1[j] * iq_isign(signs, j) * q[j] + g2[j] * iq_isign(signs, j + 4) * q[j + 4];
    return s;
}

static float dot_iq3_xxs(int64_t n, const void *vw, const void *va) {
    const ds_block_iq3_xxs *w = (const ds_block_iq3_xxs *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const int8_t *q = a[i].qs;
        const uint8_t *qs = w[i].qs, *scales_and_signs = w[i].qs + DS_QK_K / 4;
        int32_t total = 0;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 8) {
            const uint32_t aux = iq_u32(scales_and_signs + 4 * ib);
            int s = 0;
            for (int l = 0; l < 4; ++l, q += 8)
                s += iq_signed_dot4x2(ds_iq3xxs_grid[qs[2 * l]], ds_iq3xxs_grid[qs[2 * l + 1]],
                                      ds_ksigns_iq2xs[(aux >> (7 * l)) & 127], q);
            total += (int32_t)(2 * (aux >> 28) + 1) * s;
        }
        sum += ds_half_to_float(w[i].d) * a[i].d * (float)total * 0.25f;
    }
    return sum;
}

static float dot_iq3_s(int64_t n, const void *vw, const void *va) {
    const ds_block_iq3_s *w = (const ds_block_iq3_s *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const int8_t *q = a[i].qs;
        const uint8_t *qs = w[i].qs, *signs = w[i].signs;
        int32_t total = 0;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 8, signs += 4) {
            const int s4 = ib % 2 ? w[i].scales[ib / 2] >> 4 : w[i].scales[ib / 2] & 0x0F;
            const uint8_t qh = w[i].qh[ib];
            int s = 0;
            for (int l = 0; l < 4; ++l, q += 8)
                s += iq_signed_dot4x2(ds_iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)],
                                      ds_iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)], signs[l], q);
            total += (1 + 2 * s4) * s;
        }
        sum += ds_half_to_float(w[i].d) * a[i].d * (float)total;
    }
    return sum;
}

// Σ grid · q and Σ q over 8 values of a {-1, 0, 1} grid row.
static inline void iq1_sums8(const int8_t *grid, const int8_t *q, int *grid_sum, int *q_sum) {
    int g = 0, s = 0;
    for (int j = 0; j < 8; ++j) { g += grid[j] * q[j]; s += q[j]; }
    *grid_sum = g;
    *q_sum = s;
}

// x = dl · (grid ± 1/8): Σ x·q = dl · (8·Σ grid·q ± Σ q) / 8, an integer before the final / 8.
static float dot_iq1_s(int64_t n, const void *vw, const void *va) {
    const ds_block_iq1_s *w = (const ds_block_iq1_s *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        const int8_t *q = a[i].qs;
        const uint8_t *qs = w[i].qs;
        int32_t total = 0;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 4) {
            const uint16_t qh = w[i].qh[ib];
            int g = 0, s = 0;
            for (int l = 0; l < 4; ++l, q += 8) {
                int gl, sl;
                iq1_sums8(ds_iq1s_grid[qs[l] | (((qh >> (3 * l)) & 7) << 8)], q, &gl, &sl);
                g += gl;
                s += sl;
            }
            const int shift = qh & 0x8000 ? -s : s;
            total += (2 * ((qh >> 12) & 7) + 1) * (8 * g + shift);
        }
        sum += ds_half_to_float(w[i].d) * a[i].d * (float)total * 0.125f;
    }
    return sum;
}

static float dot_iq1_m(int64_t n, const void *vw, const void *va) {
    const ds_block_iq1_m *w = (const ds_block_iq1_m *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        uint16_t sc[4];
        const float d = ds_half_to_float(ds_iq1m_d_bits(&w[i], sc));
        const int8_t *q = a[i].qs;
        const uint8_t *qs = w[i].qs, *qh = w[i].qh;
        int32_t total = 0;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib, qs += 4, qh += 2) {
            const int shift = 6 * (ib % 2);
            for (int half = 0; half < 2; ++half) {
                const int ls = 2 * ((sc[ib / 2] >> (shift + 3 * half)) & 7) + 1;
                int part = 0;
                for (int l = 2 * half; l < 2 * half + 2; ++l, q += 8) {
                    const uint8_t nibble = (uint8_t)(qh[l / 2] >> (4 * (l % 2)));
                    int gl, sl;
                    iq1_sums8(ds_iq1s_grid[qs[l] | ((nibble & 7) << 8)], q, &gl, &sl);
                    part += 8 * gl + (nibble & 8 ? -sl : sl);
                }
                total += ls * part;
            }
        }
        sum += d * a[i].d * (float)total * 0.125f;
    }
    return sum;
}

static float dot_iq4_nl(int64_t n, const void *vw, const void *va) {
    const ds_block_iq4_nl *w = (const ds_block_iq4_nl *)vw;
    const ds_block_q8_0 *a = (const ds_block_q8_0 *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK4_NL; ++i) {
        int s = 0;
        for (int j = 0; j < DS_QK4_NL / 2; ++j)
            s += ds_kvalues_iq4nl[w[i].qs[j] & 0x0F] * a[i].qs[j] + ds_kvalues_iq4nl[w[i].qs[j] >> 4] * a[i].qs[j + 16];
        sum += ds_half_to_float(w[i].d) * ds_half_to_float(a[i].d) * (float)s;
    }
    return sum;
}

static float dot_iq4_xs(int64_t n, const void *vw, const void *va) {
    const ds_block_iq4_xs *w = (const ds_block_iq4_xs *)vw;
    const ds_block_q8_K *a = (const ds_block_q8_K *)va;
    float sum = 0;
    for (int64_t i = 0; i < n / DS_QK_K; ++i) {
        int32_t total = 0;
        for (int ib = 0; ib < DS_QK_K / 32; ++ib) {
            const uint8_t *qs = w[i].qs + 16 * ib;
            const int8_t *q = a[i].qs + 32 * ib;
            int s = 0;
            for (int j = 0; j < 16; ++j) s += ds_kvalues_iq4nl[qs[j] & 0x0F] * q[j] + ds_kvalues_iq4nl[qs[j] >> 4] * q[j + 16];
            total += ds_iq4xs_scale(&w[i], ib) * s;
        }
        sum += ds_half_to_float(w[i].d) * a[i].d * (float)total;
    }
    return sum;
}

void ds_fill_iquant_scalar_kernels(ds_kernel_table *t) {
#define DS_SET(TYPE, FN) \
    t->dot[TYPE] = FN;   \
    t->own[TYPE] = 1;
    DS_SET(DS_TYPE_IQ2_XXS, dot_iq2_xxs)
    DS_SET(DS_TYPE_IQ2_XS, dot_iq2_xs)
    DS_SET(DS_TYPE_IQ2_S, dot_iq2_s)
    DS_SET(DS_TYPE_IQ3_XXS, dot_iq3_xxs)
    DS_SET(DS_TYPE_IQ3_S, dot_iq3_s)
    DS_SET(DS_TYPE_IQ1_S, dot_iq1_s)
    DS_SET(DS_TYPE_IQ1_M, dot_iq1_m)
    DS_SET(DS_TYPE_IQ4_NL, dot_iq4_nl)
    DS_SET(DS_TYPE_IQ4_XS, dot_iq4_xs)
#undef DS_SET
}
