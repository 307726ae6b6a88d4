// K/V rows into a Q8_0 arena: row r of the F32 source (stride floats apart) quantized to the bytes from
// dest[r] as ggml's reference quantizer does, block b of 32 elements at byte dest[r] + 34b:
//   d = max|x| / 127 (stored as f16), q_i = round(x_i · (1/d)) (half away from zero; 0 where d = 0).
// Rows are whole blocks. One invocation per block; a block's 34 bytes need not start on a word, so each
// byte is written by atomics on its word (neighbouring blocks and rows share words).
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Source { float src[]; };
layout(std430, binding = 1) buffer Arena { uint arena[]; };
layout(std430, binding = 2) readonly buffer Destinations { uint dest[]; };

layout(push_constant) uniform Parameters {
    uint rows, width, srcSkew, srcStride, destSkew;
} p;

void putByte(uint o, uint value) {
    uint shift = (o & 3u) << 3;
    atomicAnd(arena[o >> 2], ~(0xFFu << shift));
    atomicOr(arena[o >> 2], (value & 0xFFu) << shift);
}

void main() {
    uint blocks = p.width / 32u;
    uint b = gl_GlobalInvocationID.x, r = gl_WorkGroupID.y;
    if (b >= blocks || r >= p.rows) return;
    uint from = p.srcSkew + r * p.srcStride + 32u * b, to = dest[p.destSkew + r] + 34u * b;
    float amax = 0.0;
    for (uint i = 0u; i < 32u; ++i) amax = max(amax, abs(src[from + i]));
    float d = amax / 127.0, inverse = d != 0.0 ? 1.0 / d : 0.0;
    uint half_ = packHalf2x16(vec2(d, 0.0));
    putByte(to, half_);
    putByte(to + 1u, half_ >> 8);
    for (uint i = 0u; i < 32u; ++i) {
        float x = src[from + i] * inverse;
        putByte(to + 2u + i, uint(int(sign(x) * floor(abs(x) + 0.5))));
    }
}
