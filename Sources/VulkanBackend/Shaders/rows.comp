// The row ops of the op interface (Kernels/Backend.swift) on the device, one variant per DS_OP. A workgroup
// takes one row (an activation row, or one head of it); its invocations take the row's elements in turn.
// Three bindings, each with its skew (the float of element 0 in the bound range) and row stride:
//   A  a second input (x of add, the gate of multiplyBySigmoid, up of the gated activations, rmsnorm's x)
//   B  the row written (in place, or rmsnorm's output)
//   C  a vector or table (rmsnorm's weight, a bias, per-row factors, RoPE cos/sin per row)
// Ops (DS_OP):
//   1 rmsnorm       B[r] = A[r] / sqrt(mean(A[r]²) + eps) · C        (flags & 1: no weight)
//   2 add           B[r] += A[r]
//   3 add_vector    B[r] += C
//   4 scale         B[r] ·= f
//   5 scale_rows    B[r] ·= C[r · strideC]
//   6 mul_sigmoid   B[r] ·= σ(A[r])
//   7 softcap       B[r] = f · tanh(B[r] / f)
//   8 swiglu        B[r] = silu(B[r]) ⊙ A[r]
//   9 geglu         B[r] = gelu_tanh(B[r]) ⊙ A[r]
//  10 swiglu_clamp  B[r] = silu(min(B[r], f)) ⊙ clamp(A[r], −f, f)
//  11 rope          heads of B[r] (headDim apart) rotated by the table C[r · strideC]: cos in [0, d/2), sin in
//                   [d/2, d); pairs (2i, 2i+1) when style is 0, (i, i + d/2) when 1
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) buffer B { float b[]; };
layout(std430, binding = 2) readonly buffer C { float c[]; };

layout(push_constant) uniform Parameters {
    uint rows;
    uint width;
    uint skewA, strideA;
    uint skewB, strideB;
    uint skewC, strideC;
    uint flags;
    float f;        // epsilon, factor, cap or limit
    uint heads;     // rope
    uint headDim;
    uint dims;      // rotated dims of a head
    uint style;
} p;

shared float partial[64];

float sigmoid(float x) { return 1.0 / (1.0 + exp(-clamp(x, -87.0, 87.0))); }
// tanh without overflow in exp for large |x|.
float safeTanh(float x) {
    float e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

void main() {
    uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (r >= p.rows) return; // uniform across the workgroup
    uint lane = gl_LocalInvocationID.x;
    uint ra = p.skewA + r * p.strideA, rb = p.skewB + r * p.strideB, rc = p.skewC + r * p.strideC;
#if DS_OP == 1
    float s = 0.0;
    for (uint i = lane; i < p.width; i += 64u) { float v = a[ra + i]; s += v * v; }
    partial[lane] = s;
    barrier();
    for (uint step = 32u; step > 0u; step >>= 1) {
        if (lane < step) partial[lane] += partial[lane + step];
        barrier();
    }
    float scale = inversesqrt(partial[0] / float(p.width) + p.f);
    for (uint i = lane; i < p.width; i += 64u) {
        float v = a[ra + i] * scale;
        b[rb + i] = (p.flags & 1u) != 0u ? v : v * c[p.skewC + i];
    }
#elif DS_OP == 11
    uint pairs = p.dims / 2u;
    for (uint k = lane; k < p.heads * pairs; k += 64u) {
        uint h = k / pairs, i = k % pairs;
        uint base = rb + h * p.headDim;
        uint x0 = p.style == 0u ? 2u * i : i, x1 = p.style == 0u ? 2u * i + 1u : i + pairs;
        float cs = c[rc + i], sn = c[rc + pairs + i];
        float v0 = b[base + x0], v1 = b[base + x1];
        b[base + x0] = v0 * cs - v1 * sn;
        b[base + x1] = v0 * sn + v1 * cs;
    }
#else
    for (uint i = lane; i < p.width; i += 64u) {
#if DS_OP == 2
        b[rb + i] += a[ra + i];
#elif DS_OP == 3
        b[rb + i] += c[p.skewC + i];
#elif DS_OP == 4
        b[rb + i] *= p.f;
#elif DS_OP == 5
        b[rb + i] *= c[rc];
#elif DS_OP == 6
        b[rb + i] *= sigmoid(a[ra + i]);
#elif DS_OP == 7
        b[rb + i] = p.f * safeTanh(b[rb + i] / p.f);
#elif DS_OP == 8
        float g = b[rb + i];
        b[rb + i] = g * sigmoid(g) * a[ra + i];
#elif DS_OP == 9
        float x = b[rb + i];
        float u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
        b[rb + i] = 0.5 * x * (1.0 + safeTanh(u)) * a[ra + i];
#elif DS_OP == 10
        float g = min(b[rb + i], p.f);
        b[rb + i] = g * sigmoid(g) * clamp(a[ra + i], -p.f, p.f);
#else
#error unknown DS_OP
#endif
    }
#endif
}
