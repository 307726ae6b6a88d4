// Activations quantized for the int-dot products (matmul.comp DS_INT_DOT): each 32-element block of each
// token's row X[t, 32b ..< 32b + 32] (elements past cols as 0) becomes 10 words at ((t · blocks) + b) · 10:
//   d = max|x| / 127, q_i = round(x_i / d) (half away from zero) as 8 words of 4 signed bytes,
//   then d and sx = d · Σ q_i as float bits.
// One invocation per block; workgroup row y is the token.
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Inputs { float xs[]; };
layout(std430, binding = 1) writeonly buffer Quantized { uint xq[]; };

layout(push_constant) uniform Parameters {
    uint cols, blocks;
    uint inputSkew, inputStride;  // floats: token 0's row, between rows
    uint outputSkew;              // words: token 0's first block
} p;

void main() {
    uint b = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (b >= p.blocks) return;
    uint x = p.inputSkew + t * p.inputStride + b * 32u;
    float v[32];
    float amax = 0.0;
    for (uint i = 0u; i < 32u; ++i) {
        v[i] = b * 32u + i < p.cols ? xs[x + i] : 0.0;
        amax = max(amax, abs(v[i]));
    }
    float d = amax / 127.0, inverse = d > 0.0 ? 1.0 / d : 0.0;
    uint base = p.outputSkew + (t * p.blocks + b) * 10u;
    int sum = 0;
    for (uint k = 0u; k < 8u; ++k) {
        uint word = 0u;
        for (uint i = 0u; i < 4u; ++i) {
            float scaled = v[4u * k + i] * inverse;
            int qi = int(sign(scaled) * floor(abs(scaled) + 0.5));
            sum += qi;
            word |= (uint(qi) & 0xFFu) << (8u * i);
        }
        xq[base + k] = word;
    }
    xq[base + 8u] = floatBitsToUint(d);
    xq[base + 9u] = floatBitsToUint(d * float(sum));
}
