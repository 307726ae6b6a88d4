// Attention over the paged KV cache (F32 rows; F16 or Q8_0 where DS_KV_F16 or DS_KV_Q8 is set), one
// workgroup per (query head, token):
//   out[t, h] = Σ_j softmax_j(scale · q[t, h] · K[j, kvh]) V[j, kvh]   over the positions j the span shows to
//   position start + t (kvh = h / (heads / kvHeads); softcap > 0: scores ← cap · tanh(score / cap)).
// Row j of a layer lives in page pages[j >> pageShift], row j & (pageTokens − 1) of it. The positions go in
// tiles of 64, one per invocation: its score, then the tile's maximum and the running softmax (online: the
// sums so far rescaled by e^(m_old − m_new)); each invocation keeps the output dims lane, lane + 64, …
// DS_SPLIT (split-K, for decode over long contexts): workgroup z takes only rows first + z·rowsPerSplit ..<
// + rowsPerSplit of the visible ones and writes its unnormalized partial (m, l, acc[valueDim]) to
// partials[((t · heads + h) · splits + z) · (valueDim + 2)]; attend_merge.comp combines the splits.
#version 450

layout(local_size_x = 64) in;

#extension GL_GOOGLE_include_directive : require
#include "attend_common.glsl"
#ifdef DS_SPLIT
layout(std430, binding = 5) writeonly buffer Partials { float partials[]; };
#endif

#define MAX_KEY 1024
#define MAX_VALUE_PER_LANE 8

shared float qs[MAX_KEY];
shared float scores[64];
shared uint valueRow[64];

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, lane = gl_LocalInvocationID.x;
    uint kvh = h / (p.heads / p.kvHeads);
    uint position = p.start + t;
    uint first = firstVisible(position);
    uint end = position + 1u;
#ifdef DS_SPLIT
    first += gl_WorkGroupID.z * p.rowsPerSplit;
    end = min(end, first + p.rowsPerSplit);
#endif
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
            for (uint i = 0u; i < p.keyDim; ++i) dot += qs[i] * kAt(kRow, i);
            s = softcapped(dot * p.scale);
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
            for (uint r = 0u; r < n; ++r) a += scores[r] * vAt(valueRow[r], d);
            acc[i] = a;
        }
        m = newMax;
        barrier();
    }
#ifdef DS_SPLIT
    uint partBase = ((t * p.heads + h) * p.splits + gl_WorkGroupID.z) * (p.valueDim + 2u);
    if (lane == 0u) { partials[partBase] = m; partials[partBase + 1u] = l; }
    for (uint i = 0u; i < MAX_VALUE_PER_LANE; ++i) {
        uint d = lane + 64u * i;
        if (d >= p.valueDim) break;
        partials[partBase + 2u + d] = acc[i];
    }
    return;
#endif
    uint outBase = p.outSkew + t * p.outTokenStride + h * p.outHeadStride;
    for (uint i = 0u; i < MAX_VALUE_PER_LANE; ++i) {
        uint d = lane + 64u * i;
        if (d >= p.valueDim) break;
        o[outBase + d] = l > 0.0 ? acc[i] / l : 0.0;
    }
}
