// What attend.comp and attend_tiled.comp share: the bindings (F32 KV rows; F16 where DS_KV_F16 is set, two
// halves per word; Q8_0 where DS_KV_Q8 is set), the push constants, and where a position's span starts.

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };
// kAt(row, d) / vAt(row, d): element d of the K / V row starting at `row` (elements for F32 and F16, bytes for
// Q8_0, whose rows are blocks of an f16 scale and 32 signed bytes).
#if defined(DS_KV_F16)
layout(std430, binding = 2) readonly buffer K { uint k[]; };
layout(std430, binding = 3) readonly buffer V { uint v[]; };
float kAt(uint row, uint d) { uint u = row + d; return unpackHalf2x16(k[u >> 1])[u & 1u]; }
float vAt(uint row, uint d) { uint u = row + d; return unpackHalf2x16(v[u >> 1])[u & 1u]; }
#elif defined(DS_KV_Q8)
layout(std430, binding = 2) readonly buffer K { uint k[]; };
layout(std430, binding = 3) readonly buffer V { uint v[]; };
uint kByte(uint o) { return (k[o >> 2] >> ((o & 3u) << 3)) & 0xFFu; }
uint vByte(uint o) { return (v[o >> 2] >> ((o & 3u) << 3)) & 0xFFu; }
float kAt(uint row, uint d) {
    uint block = row + (d >> 5) * 34u;
    float scale = unpackHalf2x16(kByte(block) | (kByte(block + 1u) << 8)).x;
    return scale * float(int(kByte(block + 2u + (d & 31u)) << 24) >> 24);
}
float vAt(uint row, uint d) {
    uint block = row + (d >> 5) * 34u;
    float scale = unpackHalf2x16(vByte(block) | (vByte(block + 1u) << 8)).x;
    return scale * float(int(vByte(block + 2u + (d & 31u)) << 24) >> 24);
}
#else
layout(std430, binding = 2) readonly buffer K { float k[]; };
layout(std430, binding = 3) readonly buffer V { float v[]; };
float kAt(uint row, uint d) { return k[row + d]; }
float vAt(uint row, uint d) { return v[row + d]; }
#endif
layout(std430, binding = 4) readonly buffer Pages { int pages[]; };

layout(push_constant) uniform Parameters {
    uint tokens, start, heads, kvHeads, keyDim, valueDim;
    uint qSkew, qTokenStride, qHeadStride;
    uint outSkew, outTokenStride, outHeadStride;
    uint kSkew, kRowStride, kHeadStride, kPageStride;
    uint vSkew, vRowStride, vHeadStride, vPageStride;
    uint pagesSkew, pageShift;
    uint spanKind;  // 0 every earlier position, 1 the last spanSize, 2 the same aligned chunk of spanSize
    uint spanSize;
    float scale, softcap;
    uint rowsPerSplit, splits;  // split-K only
} p;

/// The first position `position` sees.
uint firstVisible(uint position) {
    if (p.spanKind == 1u) return position + 1u > p.spanSize ? position + 1u - p.spanSize : 0u;
    if (p.spanKind == 2u) return position / p.spanSize * p.spanSize;
    return 0u;
}

/// cap · tanh(s / cap) (cap > 0), else s.
float softcapped(float s) {
    if (p.softcap <= 0.0) return s;
    float x = s / p.softcap, e = exp(-2.0 * abs(x));
    return p.softcap * sign(x) * (1.0 - e) / (1.0 + e);
}
