// MoE rows back to their tokens: out ← 0, then out[dest[r]] += weight[r] · x[r] for every gathered row r, in
// the order of r (the CPU's order, so each sum adds the same terms in the same order). One workgroup per
// output row; its invocations take the row's elements in turn and scan the rows for those of its token.
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };
layout(std430, binding = 2) readonly buffer Weights { float w[]; };
layout(std430, binding = 3) readonly buffer Destinations { int dest[]; };

layout(push_constant) uniform Parameters {
    uint outRows, rows, width;
    uint xSkew, xStride, outSkew, outStride, wSkew, destSkew;
} p;

void main() {
    uint t = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (t >= p.outRows) return;
    for (uint i = gl_LocalInvocationID.x; i < p.width; i += 64u) {
        float acc = 0.0;
        for (uint r = 0u; r < p.rows; ++r)
            if (uint(dest[p.destSkew + r]) == t) acc += w[p.wSkew + r] * x[p.xSkew + r * p.xStride + i];
        o[p.outSkew + t * p.outStride + i] = acc;
    }
}
