// Attention over the paged KV cache (F32 rows; F16 where DS_KV_F16 is set: two halves per word), one
// workgroup per (query head, token):
//   out[t, h] = Σ_j softmax_j(scale · q[t, h] · K[j, kvh]) V[j, kvh]   over the positions j the span shows to
//   position start + t (kvh = h / (heads / kvHeads); softcap > 0: scores ← cap · tanh(score / cap)).
// Row j of a layer lives in page pages[j >> pageShift], row j & (pageTokens − 1) of it. The positions go in
// tiles of 64, one per invocation: its score, then the tile's maximum and the running softmax (online: the
// sums so far rescaled by e^(m_old − m_new)); each invocation keeps the output dims lane, lane + 64, …
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };
#ifdef DS_KV_F16
layout(std430, binding = 2) readonly buffer K { uint k[]; };
layout(std430, binding = 3) readonly buffer V { uint v[]; };
float kAt(uint u) { return unpackHalf2x16(k[u >> 1])[u & 1u]; }
float vAt(uint u) { return unpackHalf2x16(v[u >> 1])[u & 1u]; }
#else
layout(std430, binding = 2) readonly buffer K { float k[]; };
layout(std430, binding = 3) readonly buffer V { float v[]; };
float kAt(uint u) { return k[u]; }
float vAt(uint u) { return v[u]; }
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
} p;

#define MAX_KEY 1024
#define MAX_VALUE_PER_LANE 8

shared float qs[MAX_KEY];
shared float scores[64];
shared uint valueRow[64];

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, lane = gl_LocalInvocationID.x;
    uint kvh = h / (p.heads / p.kvHeads);
    uint position = p.start + t;
    uint first = 0u;
    if (p.spanKind == 1u) first = position + 1u > p.spanSize ? position + 1u - p.spanSize : 0u;
    if (p.spanKind == 2u) first = position / p.spanSize * p.spanSize;
    uint end = position + 1u;
    uint qBase = p.qSkew + t * p.qTokenStride + h * p.qHeadStride;
    for (uint i = lane; i < p.keyDim; i += 64u) qs[i] = q[qBase + i];
    uint mask = (1u << p.pageShift) - 1u;

    float m = -1.0 / 0.0, l = 0.0;
    float acc[MAX_VALUE_PER_LANE];
    for (uint i = 0u; i < MAX_VALUE_PER_LANE; ++i) acc[i] = 0.0;
    barrier();
    for (uint tile = first; tile < end; tile += 64u) {
        uint j = tile + lane;
        float s = -1.0 / 0.0;
        if (j < end) {
            uint page = uint(pages[p.pagesSkew + (j >> p.pageShift)]);
            uint kRow = p.kSkew + page * p.kPageStride + (j & mask) * p.kRowStride + kvh * p.kHeadStride;
            float dot = 0.0;
            for (uint i = 0u; i < p.keyDim; ++i) dot += qs[i] * kAt(kRow + i);
            s = dot * p.scale;
            if (p.softcap > 0.0) {
                float x = s / p.softcap, e = exp(-2.0 * abs(x));
                s = p.softcap * sign(x) * (1.0 - e) / (1.0 + e);
            }
            valueRow[lane] = p.vSkew + page * p.vPageStride + (j & mask) * p.vRowStride + kvh * p.vHeadStride;
        }
        scores[lane] = s;
        barrier();
        uint n = min(64u, end - tile);
        float tileMax = scores[0];
        for (uint r = 1u; r < n; ++r) tileMax = max(tileMax, scores[r]);
        float newMax = max(m, tileMax);
        float correction = exp(m - newMax);   // m = −∞ at first: 0
        barrier();
        if (lane < n) scores[lane] = exp(scores[lane] - newMax);
        barrier();
        float sum = 0.0;
        for (uint r = 0u; r < n; ++r) sum += scores[r];
        l = l * correction + sum;
        for (uint i = 0u; i < MAX_VALUE_PER_LANE; ++i) {
            uint d = lane + 64u * i;
            if (d >= p.valueDim) break;
            float a = acc[i] * correction;
            for (uint r = 0u; r < n; ++r) a += scores[r] * vAt(valueRow[r] + d);
            acc[i] = a;
        }
        m = newMax;
        barrier();
    }
    uint outBase = p.outSkew + t * p.outTokenStride + h * p.outHeadStride;
    for (uint i = 0u; i < MAX_VALUE_PER_LANE; ++i) {
        uint d = lane + 64u * i;
        if (d >= p.valueDim) break;
        o[outBase + d] = l > 0.0 ? acc[i] / l : 0.0;
    }
}
