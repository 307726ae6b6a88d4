// Attention over the paged KV cache for prompt rows, tiled flash-style: one workgroup per (query head, block
// of BR = 16 consecutive tokens). Each tile of BC = 16 key/value rows is read from the pages into shared
// memory once and used by all 16 query rows (attend.comp reads every row once per token):
//   S[r, c] = scale · q[t0 + r, h] · K[tile + c, kvh]   (masked to the span each row sees; softcap as there),
//   then per row the online softmax: m' = max(m, max_c S), l' = l·e^(m − m') + Σ_c e^(S − m'),
//   acc' = acc·e^(m − m') + Σ_c e^(S − m') V[tile + c]; out = acc / l at the end.
// Invocation lane keeps query row r = lane / 4: scores of keys c ≡ lane (mod 4), output dims d ≡ lane (mod 4).
// Rows of at most MAXD = 128 key and value floats (wider heads take attend.comp). F16 or Q8_0 rows where
// DS_KV_F16 or DS_KV_Q8.
#version 450

layout(local_size_x = 64) in;

#extension GL_GOOGLE_include_directive : require
#include "attend_common.glsl"

#define BR 16u
#define BC 16u
#define MAXD 128u
#define NEG_INF (-1.0 / 0.0)

shared float qs[BR * MAXD];
shared float ks[BC * MAXD];
shared float vs[BC * MAXD];
shared float ss[BR * BC];

void main() {
    uint h = gl_WorkGroupID.x, t0 = gl_WorkGroupID.y * BR, lane = gl_LocalInvocationID.x;
    uint kvh = h / (p.heads / p.kvHeads);
    uint rows = min(BR, p.tokens - t0);
    uint mask = (1u << p.pageShift) - 1u;
    for (uint i = lane; i < BR * p.keyDim; i += 64u) {
        uint r = i / p.keyDim, d = i % p.keyDim;
        qs[r * MAXD + d] = r < rows ? q[p.qSkew + (t0 + r) * p.qTokenStride + h * p.qHeadStride + d] : 0.0;
    }
    uint r = lane / 4u, quarter = lane % 4u;
    uint position = p.start + t0 + r;
    uint rowFirst = firstVisible(position), rowEnd = position + 1u;
    // The rows' spans start no earlier than the first row's (firstVisible grows with the position).
    uint tileEnd = p.start + t0 + rows;
    float m = NEG_INF, l = 0.0;
    float acc[MAXD / 4u];
    for (uint i = 0u; i < MAXD / 4u; ++i) acc[i] = 0.0;

    for (uint tile = firstVisible(p.start + t0); tile < tileEnd; tile += BC) {
        uint n = min(BC, tileEnd - tile);
        barrier();   // the last tile's rows and scores are read by all
        for (uint i = lane; i < BC * p.keyDim; i += 64u) {
            uint c = i / p.keyDim, d = i % p.keyDim, j = tile + c;
            float x = 0.0;
            if (c < n) {
                uint page = uint(pages[p.pagesSkew + (j >> p.pageShift)]);
                x = kAt(p.kSkew + page * p.kPageStride + (j & mask) * p.kRowStride + kvh * p.kHeadStride, d);
            }
            ks[c * MAXD + d] = x;
        }
        for (uint i = lane; i < BC * p.valueDim; i += 64u) {
            uint c = i / p.valueDim, d = i % p.valueDim, j = tile + c;
            float x = 0.0;
            if (c < n) {
                uint page = uint(pages[p.pagesSkew + (j >> p.pageShift)]);
                x = vAt(p.vSkew + page * p.vPageStride + (j & mask) * p.vRowStride + kvh * p.vHeadStride, d);
            }
            vs[c * MAXD + d] = x;
        }
        barrier();
        for (uint i = 0u; i < BC / 4u; ++i) {
            uint c = quarter + 4u * i, j = tile + c;
            float s = NEG_INF;
            if (r < rows && c < n && j >= rowFirst && j < rowEnd) {
                float dot = 0.0;
                for (uint d = 0u; d < p.keyDim; ++d) dot += qs[r * MAXD + d] * ks[c * MAXD + d];
                s = softcapped(dot * p.scale);
            }
            ss[r * BC + c] = s;
        }
        barrier();
        float tileMax = NEG_INF;
        for (uint c = 0u; c < BC; ++c) tileMax = max(tileMax, ss[r * BC + c]);
        float newMax = max(m, tileMax);
        float correction = m == NEG_INF ? 0.0 : exp(m - newMax);
        barrier();   // every lane of the row has its maximum before the scores become weights
        for (uint i = 0u; i < BC / 4u; ++i) {
            uint c = quarter + 4u * i;
            float s = ss[r * BC + c];
            ss[r * BC + c] = s == NEG_INF ? 0.0 : exp(s - newMax);
        }
        barrier();
        float sum = 0.0;
        for (uint c = 0u; c < n; ++c) sum += ss[r * BC + c];
        l = l * correction + sum;
        for (uint i = 0u; i < MAXD / 4u; ++i) {
            uint d = quarter + 4u * i;
            if (d >= p.valueDim) break;
            float a = acc[i] * correction;
            for (uint c = 0u; c < n; ++c) a += ss[r * BC + c] * vs[c * MAXD + d];
            acc[i] = a;
        }
        m = newMax;
    }
    if (r >= rows) return;
    uint outBase = p.outSkew + (t0 + r) * p.outTokenStride + h * p.outHeadStride;
    for (uint i = 0u; i < MAXD / 4u; ++i) {
        uint d = quarter + 4u * i;
        if (d >= p.valueDim) break;
        o[outBase + d] = l > 0.0 ? acc[i] / l : 0.0;
    }
}
