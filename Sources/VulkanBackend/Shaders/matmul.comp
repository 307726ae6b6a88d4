// Y[t, r] = Σ_c W[r, c] · X[t, c] for one weight type (DS_TYPE, ggml's type number), weights dequantized
// in place from their GGUF blocks. A workgroup takes `rowsPerGroup` weight rows and a tile of 8 tokens; each
// subgroup takes one of its rows at a time: its lanes take the row's 32-element chunks in turn, dequantize
// each once and multiply it against the tile's tokens, and a subgroup sum gives each token's result (no
// shared memory, no barrier: whatever subgroup size the device picks). Weights are read as 32-bit words and
// bytes picked out of them, so no 8- or 16-bit storage feature is needed and blocks need no alignment
// (Q8_0's are 34 bytes).
//
// DS_INT_DOT (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): X comes quantized by quantize_q8.comp, 10 words per 32-element
// block (8 words of 4 signed bytes q, then dx and sx = dx·Σq as float bits); each weight block becomes 8
// words of 4 bytes (nibbles as 0..15, Q5's with their fifth bit, Q8_0's as they are) and
//   Σ_i w_i x_i ≈ d·(dx·Σ_i q_w,i q_x,i − offset·sx) + m·sx
// (offset 8 for Q4_0, 16 for Q5_0; m the block minimum of Q4_1/Q5_1), the integer sums by OpSDot.
#version 450
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#ifdef DS_INT_DOT
#extension GL_EXT_spirv_intrinsics : require
#endif

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Weights { uint wq[]; };
#ifdef DS_INT_DOT
layout(std430, binding = 1) readonly buffer QuantizedInputs { uint xq[]; };
// OpSDot (SPV_KHR_integer_dot_product; capabilities DotProduct, DotProductInput4x8BitPacked) on two words
// of 4 signed bytes each (packed vector format 0).
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(int a, int b, spirv_literal int format);
#else
layout(std430, binding = 1) readonly buffer Inputs { float xs[]; };
#endif
layout(std430, binding = 2) writeonly buffer Outputs { float ys[]; };
// The i-quants' codebooks (ds_iq_gpu_codebook: byte offsets below), bound for every type.
layout(std430, binding = 3) readonly buffer Codebooks { uint codebook[]; };

layout(push_constant) uniform Parameters {
    uint rows;        // weight rows in this dispatch
    uint cols;
    uint tokens;      // tokens in this dispatch
    uint rowBytes;
    uint weightSkew;  // byte of row 0 in the bound weights
    uint inputSkew;   // float of token 0's input row in the bound inputs (rows `cols` apart)
    uint outputSkew;  // float of Y[0, 0] in the bound outputs
    uint outputStride; // floats between two tokens' outputs
    uint rowsPerGroup;
} p;

#define TILE 8

uint u8(uint o) { return (wq[o >> 2] >> ((o & 3u) << 3)) & 0xFFu; }
uint u16(uint o) { return u8(o) | (u8(o + 1u) << 8); }
uint u32(uint o) { return u16(o) | (u16(o + 2u) << 16); }
int s8(uint o) { return int(u8(o) << 24) >> 24; }
float f16(uint o) { return unpackHalf2x16(u16(o)).x; }

uint cb8(uint o) { return (codebook[o >> 2] >> ((o & 3u) << 3)) & 0xFFu; }
float cbSigned(uint o) { return float(int(cb8(o) << 24) >> 24); }
#define IQ2XXS_GRID 0u
#define IQ2XS_GRID 2048u
#define IQ2S_GRID 6144u
#define IQ3XXS_GRID 14336u
#define IQ3S_GRID 15360u
#define IQ1S_GRID 17408u
#define KSIGNS 33792u
// −1 where bit j of a sign byte is set.
float signOf(uint pattern, uint j) { return ((pattern >> j) & 1u) != 0u ? -1.0 : 1.0; }
const float IQ4NL_VALUES[16] = float[16](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0, 1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);
// MXFP4's E2M1 codes doubled (ggml's kvalues_mxfp4), with the scale halved to match.
const float MXFP4_VALUES[16] = float[16](0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0);

// K-quants' 6-bit scale and min of sub-block j (Q4_K, Q5_K), from the 12 bytes at s.
void scaleMinK4(uint j, uint s, out float scale, out float minimum) {
    if (j < 4u) {
        scale = float(u8(s + j) & 63u);
        minimum = float(u8(s + j + 4u) & 63u);
    } else {
        scale = float((u8(s + j + 4u) & 15u) | ((u8(s + j - 4u) >> 6) << 4));
        minimum = float((u8(s + j + 4u) >> 4) | ((u8(s + j) >> 6) << 4));
    }
}

// Elements 32c ..< 32c + 32 of the row at byte `row` (float types: those below cols, the rest 0).
void dequantizeChunk(uint row, uint c, inout float w[32]) {
#if DS_TYPE == 0 // F32
    for (uint i = 0u; i < 32u; ++i) {
        uint e = c * 32u + i;
        w[i] = e < p.cols ? uintBitsToFloat(wq[(row >> 2) + e]) : 0.0;
    }
#elif DS_TYPE == 1 // F16
    for (uint i = 0u; i < 32u; ++i) {
        uint e = c * 32u + i;
        w[i] = e < p.cols ? f16(row + 2u * e) : 0.0;
    }
#elif DS_TYPE == 30 // BF16
    for (uint i = 0u; i < 32u; ++i) {
        uint e = c * 32u + i;
        w[i] = e < p.cols ? uintBitsToFloat(u16(row + 2u * e) << 16) : 0.0;
    }
#elif DS_TYPE == 2 // Q4_0: d, 16 bytes of nibbles (low: elements 0-15, high: 16-31), q − 8
    uint b = row + c * 18u;
    float d = f16(b);
    for (uint j = 0u; j < 16u; ++j) {
        uint q = u8(b + 2u + j);
        w[j] = d * float(int(q & 15u) - 8);
        w[j + 16u] = d * float(int(q >> 4) - 8);
    }
#elif DS_TYPE == 3 // Q4_1: d, m, nibbles; d·q + m
    uint b = row + c * 20u;
    float d = f16(b), m = f16(b + 2u);
    for (uint j = 0u; j < 16u; ++j) {
        uint q = u8(b + 4u + j);
        w[j] = d * float(q & 15u) + m;
        w[j + 16u] = d * float(q >> 4) + m;
    }
#elif DS_TYPE == 6 // Q5_0: d, 32 high bits, nibbles; q − 16
    uint b = row + c * 22u;
    float d = f16(b);
    uint qh = u32(b + 2u);
    for (uint j = 0u; j < 16u; ++j) {
        uint q = u8(b + 6u + j);
        uint h0 = ((qh >> j) << 4) & 16u, h1 = (qh >> (j + 12u)) & 16u;
        w[j] = d * float(int((q & 15u) | h0) - 16);
        w[j + 16u] = d * float(int((q >> 4) | h1) - 16);
    }
#elif DS_TYPE == 7 // Q5_1: d, m, 32 high bits, nibbles; d·q + m
    uint b = row + c * 24u;
    float d = f16(b), m = f16(b + 2u);
    uint qh = u32(b + 4u);
    for (uint j = 0u; j < 16u; ++j) {
        uint q = u8(b + 8u + j);
        uint h0 = ((qh >> j) << 4) & 16u, h1 = (qh >> (j + 12u)) & 16u;
        w[j] = d * float((q & 15u) | h0) + m;
        w[j + 16u] = d * float((q >> 4) | h1) + m;
    }
#elif DS_TYPE == 8 // Q8_0: d, 32 signed bytes
    uint b = row + c * 34u;
    float d = f16(b);
    for (uint j = 0u; j < 32u; ++j) w[j] = d * float(s8(b + 2u + j));
#elif DS_TYPE == 10 // Q2_K: 16 scale bytes (low nibble scale, high min), 64 bytes of 2-bit quants, d, dmin
    uint b = row + (c >> 3) * 84u, sub = c & 7u, h = sub >> 2, j = sub & 3u;
    float d = f16(b + 80u), dmin = f16(b + 82u);
    for (uint l = 0u; l < 32u; ++l) {
        uint sc = u8(b + 8u * h + 2u * j + (l >> 4));
        uint q = (u8(b + 16u + 32u * h + l) >> (2u * j)) & 3u;
        w[l] = d * float(sc & 15u) * float(q) - dmin * float(sc >> 4);
    }
#elif DS_TYPE == 11 // Q3_K: 32 bytes of high bits, 64 bytes of 2-bit quants, 12 bytes of 6-bit scales, d
    uint b = row + (c >> 3) * 110u, sub = c & 7u, h = sub >> 2, j = sub & 3u;
    float d = f16(b + 108u);
    uint mask = 1u << (4u * h + j);
    for (uint l = 0u; l < 32u; ++l) {
        uint k = 8u * h + 2u * j + (l >> 4);
        uint low = k < 8u ? (u8(b + 96u + k) & 15u) : (u8(b + 96u + k - 8u) >> 4);
        uint high = (u8(b + 104u + (k & 3u)) >> (2u * (k >> 2))) & 3u;
        int scale = int(low | (high << 4)) - 32;
        int q = int((u8(b + 32u + 32u * h + l) >> (2u * j)) & 3u) - ((u8(b + l) & mask) != 0u ? 0 : 4);
        w[l] = d * float(scale) * float(q);
    }
#elif DS_TYPE == 12 // Q4_K: d, dmin, 12 bytes of scales/mins, 128 bytes of nibbles (pairs of sub-blocks)
    uint b = row + (c >> 3) * 144u, sub = c & 7u;
    float d = f16(b), dmin = f16(b + 2u), scale, minimum;
    scaleMinK4(sub, b + 4u, scale, minimum);
    uint qs = b + 16u + 32u * (sub >> 1), shift = (sub & 1u) * 4u;
    for (uint l = 0u; l < 32u; ++l) w[l] = d * scale * float((u8(qs + l) >> shift) & 15u) - dmin * minimum;
#elif DS_TYPE == 13 // Q5_K: d, dmin, scales/mins, 32 bytes of high bits, 128 bytes of nibbles
    uint b = row + (c >> 3) * 176u, sub = c & 7u;
    float d = f16(b), dmin = f16(b + 2u), scale, minimum;
    scaleMinK4(sub, b + 4u, scale, minimum);
    uint qs = b + 48u + 32u * (sub >> 1), shift = (sub & 1u) * 4u, bit = 1u << sub;
    for (uint l = 0u; l < 32u; ++l) {
        uint q = ((u8(qs + l) >> shift) & 15u) + ((u8(b + 16u + l) & bit) != 0u ? 16u : 0u);
        w[l] = d * scale * float(q) - dmin * minimum;
    }
#elif DS_TYPE == 14 // Q6_K: 128 bytes of low nibbles, 64 of high 2 bits, 16 signed scales, d; q − 32
    uint b = row + (c >> 3) * 210u, sub = c & 7u, h = sub >> 2, part = sub & 3u;
    float d = f16(b + 208u);
    uint ql = b + 64u * h + (part & 1u) * 32u, shift = (part >> 1) * 4u;
    for (uint l = 0u; l < 32u; ++l) {
        uint high = (u8(b + 128u + 32u * h + l) >> (2u * part)) & 3u;
        int q = int(((u8(ql + l) >> shift) & 15u) | (high << 4)) - 32;
        w[l] = d * float(s8(b + 192u + 8u * h + 2u * part + (l >> 4))) * float(q);
    }
#elif DS_TYPE == 16 // IQ2_XXS: per 32, 4 grid bytes and a word of 4 × 7-bit sign indices + a 4-bit scale
    uint b = row + (c >> 3) * 66u, ib = c & 7u;
    uint aux = u32(b + 2u + 8u * ib + 4u);
    float db = f16(b) * (0.5 + float(aux >> 28)) * 0.25;
    for (uint l = 0u; l < 4u; ++l) {
        uint grid = IQ2XXS_GRID + 8u * u8(b + 2u + 8u * ib + l), signs = cb8(KSIGNS + ((aux >> (7u * l)) & 127u));
        for (uint j = 0u; j < 8u; ++j) w[8u * l + j] = db * float(cb8(grid + j)) * signOf(signs, j);
    }
#elif DS_TYPE == 17 // IQ2_XS: 16-bit codes (9-bit grid index, 7-bit sign index), a 4-bit scale per 16
    uint b = row + (c >> 3) * 74u, ib = c & 7u;
    float d = f16(b);
    uint scales = u8(b + 66u + ib);
    for (uint l = 0u; l < 4u; ++l) {
        uint q = u16(b + 2u + 2u * (4u * ib + l));
        float db = d * (0.5 + float(l < 2u ? scales & 15u : scales >> 4)) * 0.25;
        uint grid = IQ2XS_GRID + 8u * (q & 511u), signs = cb8(KSIGNS + (q >> 9));
        for (uint j = 0u; j < 8u; ++j) w[8u * l + j] = db * float(cb8(grid + j)) * signOf(signs, j);
    }
#elif DS_TYPE == 22 // IQ2_S: 10-bit grid indices (8 bits in qs, 2 in qh), sign bytes, a 4-bit scale per 16
    uint b = row + (c >> 3) * 82u, ib = c & 7u;
    float d = f16(b);
    uint scales = u8(b + 74u + ib), qh = u8(b + 66u + ib);
    for (uint l = 0u; l < 4u; ++l) {
        float db = d * (0.5 + float(l < 2u ? scales & 15u : scales >> 4)) * 0.25;
        uint grid = IQ2S_GRID + 8u * (u8(b + 2u + 4u * ib + l) | ((qh << (8u - 2u * l)) & 0x300u));
        uint signs = u8(b + 34u + 4u * ib + l);
        for (uint j = 0u; j < 8u; ++j) w[8u * l + j] = db * float(cb8(grid + j)) * signOf(signs, j);
    }
#elif DS_TYPE == 18 // IQ3_XXS: 8 grid bytes (4 values each) per 32, a word of sign indices + 4-bit scale
    uint b = row + (c >> 3) * 98u, ib = c & 7u;
    uint aux = u32(b + 66u + 4u * ib);
    float db = f16(b) * (0.5 + float(aux >> 28)) * 0.5;
    for (uint l = 0u; l < 4u; ++l) {
        uint signs = cb8(KSIGNS + ((aux >> (7u * l)) & 127u));
        uint g1 = IQ3XXS_GRID + 4u * u8(b + 2u + 8u * ib + 2u * l), g2 = IQ3XXS_GRID + 4u * u8(b + 2u + 8u * ib + 2u * l + 1u);
        for (uint j = 0u; j < 4u; ++j) {
            w[8u * l + j] = db * float(cb8(g1 + j)) * signOf(signs, j);
            w[8u * l + 4u + j] = db * float(cb8(g2 + j)) * signOf(signs, j + 4u);
        }
    }
#elif DS_TYPE == 21 // IQ3_S: 9-bit grid indices (8 in qs, 1 in qh), sign bytes, a 4-bit scale per 32
    uint b = row + (c >> 3) * 110u, ib = c & 7u;
    uint s = (ib & 1u) != 0u ? u8(b + 106u + ib / 2u) >> 4 : u8(b + 106u + ib / 2u) & 15u;
    float db = f16(b) * float(1u + 2u * s);
    uint qh = u8(b + 66u + ib);
    for (uint l = 0u; l < 4u; ++l) {
        uint g1 = IQ3S_GRID + 4u * (u8(b + 2u + 8u * ib + 2u * l) | ((qh << (8u - 2u * l)) & 256u));
        uint g2 = IQ3S_GRID + 4u * (u8(b + 2u + 8u * ib + 2u * l + 1u) | ((qh << (7u - 2u * l)) & 256u));
        uint signs = u8(b + 74u + 4u * ib + l);
        for (uint j = 0u; j < 4u; ++j) {
            w[8u * l + j] = db * float(cb8(g1 + j)) * signOf(signs, j);
            w[8u * l + 4u + j] = db * float(cb8(g2 + j)) * signOf(signs, j + 4u);
        }
    }
#elif DS_TYPE == 19 // IQ1_S: 11-bit indices into a grid of {−1, 0, 1}; per 32 a 3-bit scale and a shift sign
    uint b = row + (c >> 3) * 50u, ib = c & 7u;
    uint qh = u16(b + 34u + 2u * ib);
    float dl = f16(b) * float(2u * ((qh >> 12) & 7u) + 1u);
    float delta = (qh & 0x8000u) != 0u ? -0.125 : 0.125;
    for (uint l = 0u; l < 4u; ++l) {
        uint grid = IQ1S_GRID + 8u * (u8(b + 2u + 4u * ib + l) | (((qh >> (3u * l)) & 7u) << 8));
        for (uint j = 0u; j < 8u; ++j) w[8u * l + j] = dl * (cbSigned(grid + j) + delta);
    }
#elif DS_TYPE == 29 // IQ1_M: a 3-bit scale per 16, a shift sign per 8; d spread over the scale words' top nibbles
    uint b = row + (c >> 3) * 56u, ib = c & 7u;
    uint s0 = u16(b + 48u), s1 = u16(b + 50u), s2 = u16(b + 52u), s3 = u16(b + 54u);
    float d = unpackHalf2x16((s0 >> 12) | ((s1 >> 8) & 0xF0u) | ((s2 >> 4) & 0xF00u) | (s3 & 0xF000u)).x;
    uint sc = u16(b + 48u + 2u * (ib / 2u)), shift = 6u * (ib & 1u);
    float dl0 = d * float(2u * ((sc >> shift) & 7u) + 1u), dl1 = d * float(2u * ((sc >> (shift + 3u)) & 7u) + 1u);
    for (uint l = 0u; l < 4u; ++l) {
        uint nibble = u8(b + 32u + 2u * ib + l / 2u) >> (4u * (l & 1u));
        uint grid = IQ1S_GRID + 8u * (u8(b + 4u * ib + l) | ((nibble & 7u) << 8));
        float delta = (nibble & 8u) != 0u ? -0.125 : 0.125;
        for (uint j = 0u; j < 8u; ++j) w[8u * l + j] = (l < 2u ? dl0 : dl1) * (cbSigned(grid + j) + delta);
    }
#elif DS_TYPE == 20 // IQ4_NL: d, nibbles through the non-linear table
    uint b = row + c * 18u;
    float d = f16(b);
    for (uint j = 0u; j < 16u; ++j) {
        uint q = u8(b + 2u + j);
        w[j] = d * IQ4NL_VALUES[q & 15u];
        w[j + 16u] = d * IQ4NL_VALUES[q >> 4];
    }
#elif DS_TYPE == 23 // IQ4_XS: 6-bit scales (4 low bits in scales_l, 2 high in scales_h), IQ4_NL's table
    uint b = row + (c >> 3) * 136u, ib = c & 7u;
    uint low = (u8(b + 4u + ib / 2u) >> (4u * (ib & 1u))) & 15u, high = (u16(b + 2u) >> (2u * ib)) & 3u;
    float dl = f16(b) * float(int(low | (high << 4)) - 32);
    for (uint j = 0u; j < 16u; ++j) {
        uint q = u8(b + 8u + 16u * ib + j);
        w[j] = dl * IQ4NL_VALUES[q & 15u];
        w[j + 16u] = dl * IQ4NL_VALUES[q >> 4];
    }
#elif DS_TYPE == 39 // MXFP4: an E8M0 exponent, E2M1 nibbles
    uint b = row + c * 17u, e = u8(b);
    float d = uintBitsToFloat(e < 2u ? (0x00200000u << e) : (e - 1u) << 23);
    for (uint j = 0u; j < 16u; ++j) {
        uint q = u8(b + 1u + j);
        w[j] = d * MXFP4_VALUES[q & 15u];
        w[j + 16u] = d * MXFP4_VALUES[q >> 4];
    }
#else
#error unknown DS_TYPE
#endif
}

#ifdef DS_INT_DOT
// The 4 bits of x (bits 0-3) as bit 0 of bytes 0-3.
uint spreadBits(uint x) { return (x & 1u) | ((x & 2u) << 7) | ((x & 4u) << 14) | ((x & 8u) << 21); }

// Chunk c of the row at byte `row` as 8 words of 4 bytes (elements 4k ..< 4k + 4 in word k), its scale d,
// minimum m and offset (Σ w x ≈ d·(dx·Σ q q − offset·sx) + m·sx).
void packChunk(uint row, uint c, out int q[8], out float d, out float m, out float offset) {
    m = 0.0; offset = 0.0;
#if DS_TYPE == 2 || DS_TYPE == 3 // Q4_0, Q4_1: byte j holds elements j (low nibble) and j + 16 (high)
    uint b = row + c * (DS_TYPE == 2 ? 18u : 20u), nibbles = b + (DS_TYPE == 2 ? 2u : 4u);
    d = f16(b);
    if (DS_TYPE == 2) offset = 8.0; else m = f16(b + 2u);
    for (uint k = 0u; k < 4u; ++k) {
        uint word = u32(nibbles + 4u * k);
        q[k] = int(word & 0x0F0F0F0Fu);
        q[k + 4u] = int((word >> 4) & 0x0F0F0F0Fu);
    }
#elif DS_TYPE == 6 || DS_TYPE == 7 // Q5_0, Q5_1: as Q4, bit j of qh the fifth bit of element j
    uint b = row + c * (DS_TYPE == 6 ? 22u : 24u), high = b + (DS_TYPE == 6 ? 2u : 4u);
    d = f16(b);
    if (DS_TYPE == 6) offset = 16.0; else m = f16(b + 2u);
    uint qh = u32(high);
    for (uint k = 0u; k < 4u; ++k) {
        uint word = u32(high + 4u + 4u * k);
        q[k] = int((word & 0x0F0F0F0Fu) | (spreadBits(qh >> (4u * k)) << 4));
        q[k + 4u] = int(((word >> 4) & 0x0F0F0F0Fu) | (spreadBits(qh >> (16u + 4u * k)) << 4));
    }
#elif DS_TYPE == 8 // Q8_0: d, 32 signed bytes
    uint b = row + c * 34u;
    d = f16(b);
    for (uint k = 0u; k < 8u; ++k) q[k] = int(u32(b + 2u + 4u * k));
#else
#error DS_INT_DOT takes Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0
#endif
}

void main() {
    uint t0 = gl_WorkGroupID.z * TILE;
    uint tileTokens = min(uint(TILE), p.tokens - t0);
    uint chunks = p.cols / 32u;
    uint groupFirstRow = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * p.rowsPerGroup;
    int q[8];
    for (uint k = gl_SubgroupID; k < p.rowsPerGroup; k += gl_NumSubgroups) {
        uint row = groupFirstRow + k;
        if (row >= p.rows) break; // uniform across the subgroup
        float acc[TILE];
        for (uint t = 0u; t < TILE; ++t) acc[t] = 0.0;
        uint rowStart = p.weightSkew + row * p.rowBytes;
        for (uint c = gl_SubgroupInvocationID; c < chunks; c += gl_SubgroupSize) {
            float d, m, offset;
            packChunk(rowStart, c, q, d, m, offset);
            for (uint t = 0u; t < tileTokens; ++t) {
                uint x = p.inputSkew + ((t0 + t) * chunks + c) * 10u;
                int dot = 0;
                for (uint i = 0u; i < 8u; ++i) dot += sdot4x8(q[i], int(xq[x + i]), 0);
                float dx = uintBitsToFloat(xq[x + 8u]), sx = uintBitsToFloat(xq[x + 9u]);
                acc[t] += d * (dx * float(dot) - offset * sx) + m * sx;
            }
        }
        for (uint t = 0u; t < tileTokens; ++t) {
            float total = subgroupAdd(acc[t]);
            if (subgroupElect()) ys[p.outputSkew + (t0 + t) * p.outputStride + row] = total;
        }
    }
}
#else
void main() {
    uint t0 = gl_WorkGroupID.z * TILE;
    uint tileTokens = min(uint(TILE), p.tokens - t0);
    uint chunks = (p.cols + 31u) / 32u;
    uint groupFirstRow = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * p.rowsPerGroup;
    float w[32];
    for (uint k = gl_SubgroupID; k < p.rowsPerGroup; k += gl_NumSubgroups) {
        uint row = groupFirstRow + k;
        if (row >= p.rows) break; // uniform across the subgroup
        float acc[TILE];
        for (uint t = 0u; t < TILE; ++t) acc[t] = 0.0;
        uint rowStart = p.weightSkew + row * p.rowBytes;
        for (uint c = gl_SubgroupInvocationID; c < chunks; c += gl_SubgroupSize) {
            dequantizeChunk(rowStart, c, w);
            uint width = min(32u, p.cols - c * 32u);
            for (uint t = 0u; t < tileTokens; ++t) {
                uint x = p.inputSkew + (t0 + t) * p.cols + c * 32u;
                float s = 0.0;
                for (uint i = 0u; i < width; ++i) s += w[i] * xs[x + i];
                acc[t] += s;
            }
        }
        for (uint t = 0u; t < tileTokens; ++t) {
            float total = subgroupAdd(acc[t]);
            if (subgroupElect()) ys[p.outputSkew + (t0 + t) * p.outputStride + row] = total;
        }
    }
}
#endif
