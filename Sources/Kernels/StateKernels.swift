// Kernels the layer stacks need beyond products, norms and attention: the recurrent-state kernels
// (Gated DeltaNet), half-precision rows, float GEMMs over cached rows (indexers), log-softmax.

import CKernels
import GGUF

extension Kernels {
    /// One token of the gated delta rule for one head (Gated DeltaNet). S[dk, dv] (rows contiguous in
    /// the value dim): S ← decay·S;  δ = β (v − Sᵀk);  S += k δᵀ;  out = Sᵀq.  delta: dv floats of scratch.
    public static func gatedDeltaStep(state: UnsafeMutablePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                                      query: UnsafePointer<Float>, beta: Float, decay: Float, keyDim: Int, valueDim: Int,
                                      delta: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        ds_gated_delta_step_f32(state, key, value, query, beta, decay, Int64(keyDim), Int64(valueDim), delta, out)
    }

    /// out[t, c] = silu(Σ_k taps[k, c] · window[t + k, c]) for t < tokens: the causal depthwise conv over
    /// `window` = [K−1 earlier rows ; the tokens' rows], C channels, kernel K.
    public static func causalConvSilu(window: UnsafePointer<Float>, taps: UnsafePointer<Float>, tokens: Int, channels: Int, kernel: Int,
                                      into out: UnsafeMutablePointer<Float>) {
        ds_causal_conv_silu_f32(window, taps, Int64(tokens), Int64(channels), Int64(kernel), out)
    }

    /// dst[i] = IEEE half of src[i] (round to nearest even).
    public static func toHalf(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int) {
        ds_convert_f32_to_f16(src, dst, Int64(count))
    }

    /// dst[i] = float of the IEEE half src[i].
    public static func fromHalf(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        ds_convert_f16_to_f32(src, dst, Int64(count))
    }

    /// Y[t · outputStride + r] = Σ_c W[r, c] · X[t, c] for r < rows, t < tokens, with W rows of `type`
    /// (rowBytes apart) and X rows already in that type's dot format (F32 for F32 / F16 weights;
    /// activationRowBytes apart).
    public static func gemm(_ type: GGMLType, cols: Int, weights: UnsafeRawPointer, rowBytes: Int, rows: Int,
                            activations: UnsafeRawPointer, activationRowBytes: Int, tokens: Int,
                            into y: UnsafeMutablePointer<Float>, outputStride: Int) {
        ds_gemm(Int32(type.rawValue), Int64(cols), weights, rowBytes, Int64(rows), activations, activationRowBytes, Int64(tokens),
                y, Int64(outputStride))
    }

    /// log softmax(logits[0..<count])[index], summed in double.
    public static func logSoftmax(_ logits: UnsafePointer<Float>, count: Int, at index: Int) -> Double {
        ds_log_softmax_at(logits, Int64(count), Int64(index))
    }

    /// Σ buf[begin..<end] read at full memory bandwidth (the memory-bandwidth probe).
    public static func readSum(_ buf: UnsafePointer<Float>, from begin: Int, to end: Int) -> Double {
        ds_read_sum(buf, Int64(begin), Int64(end))
    }
}

extension Attention {
    /// `heads` query heads (q + i·qHeadStride) over contiguous F32 K/V rows [0, positions): out + i ·
    /// outHeadStride gets the unnormalised Σ_j e^(s_j − max_i) v_j, partialMax / partialSum (heads floats
    /// each) the max and exp-sum, to be normalised by the caller (attention sinks). scratch: heads ·
    /// positions floats.
    public static func attendGroupUnnormalised(q: UnsafePointer<Float>, heads: Int, qHeadStride: Int,
                                               keys: UnsafeRawPointer, keyStride: Int, values: UnsafeRawPointer, valueStride: Int,
                                               positions: Int, keyDim: Int, valueDim: Int, scale: Float,
                                               into out: UnsafeMutablePointer<Float>, outHeadStride: Int,
                                               scratch: UnsafeMutablePointer<Float>, partialMax: UnsafeMutablePointer<Float>,
                                               partialSum: UnsafeMutablePointer<Float>) {
        ds_attend_group_f32(q, Int64(heads), Int64(qHeadStride), keys, Int64(keyStride), values, Int64(valueStride), nil, 0, 0, 0,
                            0, Int64(positions), Int64(keyDim), Int64(valueDim), scale, 0, out, Int64(outHeadStride), scratch,
                            partialMax, partialSum)
    }
}
