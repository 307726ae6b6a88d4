// Split-K attention's second step: the partials attend.comp (DS_SPLIT) wrote for (token t, head h), one per
// split z, each (m_z, l_z, acc_z[valueDim]) with acc_z = Σ_j e^(s_j − m_z) V_j and l_z = Σ_j e^(s_j − m_z) over
// its rows, combined as
//   out[t, h, d] = Σ_z e^(m_z − M) acc_z[d] / Σ_z e^(m_z − M) l_z,   M = max_z m_z.
// One workgroup per (head, token); invocation lane keeps dims lane, lane + 64, …
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Partials { float partials[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };

layout(push_constant) uniform Parameters {
    uint heads, valueDim, splits;
    uint outSkew, outTokenStride, outHeadStride;
} p;

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, lane = gl_LocalInvocationID.x;
    uint stride = p.valueDim + 2u, base = (t * p.heads + h) * p.splits * stride;
    float maxM = -1.0 / 0.0;
    for (uint z = 0u; z < p.splits; ++z) maxM = max(maxM, partials[base + z * stride]);
    float l = 0.0;
    for (uint z = 0u; z < p.splits; ++z) {
        float m = partials[base + z * stride];
        if (m > -1.0 / 0.0) l += exp(m - maxM) * partials[base + z * stride + 1u];
    }
    uint outBase = p.outSkew + t * p.outTokenStride + h * p.outHeadStride;
    for (uint d = lane; d < p.valueDim; d += 64u) {
        float a = 0.0;
        for (uint z = 0u; z < p.splits; ++z) {
            float m = partials[base + z * stride];
            if (m > -1.0 / 0.0) a += exp(m - maxM) * partials[base + z * stride + 2u + d];
        }
        o[outBase + d] = l > 0.0 ? a / l : 0.0;
    }
}
