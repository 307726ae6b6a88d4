// K/V rows into an F16 arena: row r of the F32 source (stride floats apart) to the words from dest[r], two
// halves per word (element 2i in the low half, as the host's F16 rows lay them out). Rows have an even
// number of elements. One workgroup per row.
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Source { float src[]; };
layout(std430, binding = 1) writeonly buffer Arena { uint arena[]; };
layout(std430, binding = 2) readonly buffer Destinations { uint dest[]; };

layout(push_constant) uniform Parameters {
    uint rows, width, srcSkew, srcStride, destSkew;
} p;

void main() {
    uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (r >= p.rows) return;
    uint from = p.srcSkew + r * p.srcStride, to = dest[p.destSkew + r];
    for (uint i = gl_LocalInvocationID.x; 2u * i < p.width; i += 64u)
        arena[to + i] = packHalf2x16(vec2(src[from + 2u * i], src[from + 2u * i + 1u]));
}
