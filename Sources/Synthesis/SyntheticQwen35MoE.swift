// Random-weight Qwen3.5-MoE-shaped models (`general.architecture = qwen35moe`; every key and tensor as in
// docs/models/qwen35moe.md and in the fixture llama.cpp's converter wrote, sizes scaled), for speed
// measurements against llama.cpp. Shapes (ggml ne, ne0 = row length; e = hidden, Hk × S key heads, Hv × S
// value heads, kd = Hk·S, vd = Hv·S, conv = 2·kd + vd, h × d full-attention heads, g KV heads, n experts
// of width f, shared expert of width sf):
//
//   token_embd, output                       [e, vocab]                    `attentionType`
//   recurrent layer: attn_qkv [e, conv]; attn_gate [e, vd]; ssm_out [vd, e]  `attentionType`
//                    ssm_conv1d [K, conv]; ssm_a, ssm_dt.bias [Hv]; ssm_alpha, ssm_beta [e, Hv];
//                    ssm_norm [S]                                          F32
//   full layer:      attn_q [e, 2·h·d] (query and gate per head); attn_k, attn_v [e, g·d];
//                    attn_output [h·d, e]                                  `attentionType`
//                    attn_q_norm, attn_k_norm [d]                          F32
//   every layer:     attn_norm, post_attention_norm [e]; ffn_gate_inp [e, n]; ffn_gate_inp_shexp [e, 1]  F32
//                    ffn_{gate,up}_exps [e, f, n], ffn_down_exps [f, e, n]  `type`
//                    ffn_{gate,up}_shexp [e, sf], ffn_down_shexp [sf, e]    `attentionType`
//
// llama.cpp takes the value head size from ssm.state_size (it asserts key head = value head size), runs
// ssm_conv1d in F32 and reads the router and the shared-expert gate as F32. Qwen's router has no bias, so the
// popularity skew scales the router row of the expert of rank r by (r + 1)^−skew: an expert with a wider
// logit distribution lands in the top-k more often.

import Foundation
import GGUF
import Models

/// Qwen3.5-MoE shapes of a synthetic model (hidden, layers, experts, expert width, types in
/// SyntheticModelSpec). Defaults: Qwen3.5-35B-A3B's linear attention (16 key heads, 32 value heads, all
/// 128 wide, conv kernel 4) and full attention (16 heads, 2 KV heads of 256, 64 rotated dims in MRoPE
/// sections 11/11/10), a full-attention layer every 4th layer.
public struct SyntheticQwen35MoEShape: Sendable {
    public var keyHeads = 16
    public var valueHeads = 32
    public var stateSize = 128
    public var convKernel = 4
    public var heads = 16
    public var kvHeads = 2
    public var headDim = 256
    public var ropeDim = 64
    public var fullAttentionInterval = 4
    public var sharedFeedForward = 512

    public init() {}

    /// Per layer: true = Gated DeltaNet, false = full attention ((l + 1) % interval == 0).
    public func recurrent(layers: Int) -> [Bool] {
        (0..<layers).map { ($0 + 1) % max(1, fullAttentionInterval) != 0 }
    }

    /// MRoPE sections (t, h, w, e) in frequency pairs for `ropeDim` rotated dims: Qwen's 11/11/10 of 32 pairs, scaled.
    public var ropeSections: [Int] {
        let pairs = ropeDim / 2, t = (pairs * 11 + 16) / 32, h = (pairs * 11 + 16) / 32
        return [t, h, pairs - t - h, 0]
    }
}

extension SyntheticModel {
    /// Every tensor of the model in file order (the fixture's), with its ggml dims and fill.
    static func qwen35MoELayout(_ spec: SyntheticModelSpec, vocab: Int, _ add: (String, [Int], SyntheticFill) throws -> Void) rethrows {
        let s = spec.qwen35moe, e = spec.hidden, n = spec.experts, f = spec.expertFeedForward, sf = s.sharedFeedForward
        let kd = s.keyHeads * s.stateSize, vd = s.valueHeads * s.stateSize, conv = 2 * kd + vd
        let at = SyntheticFill.matrix(spec.attentionType), xt = SyntheticFill.matrix(spec.type)
        typealias T = TensorName
        typealias M = MoETensorName
        typealias Q = Qwen35TensorName
        try add(T.output.name, [e, vocab], at)
        try add(T.tokenEmbedding.name, [e, vocab], at)
        for (l, recurrent) in s.recurrent(layers: spec.layers).enumerated() {
            try add(T.attnNorm(l).name, [e], .ones)
            if recurrent {
                try add(Q.ssmA(l).name, [s.valueHeads], .random(-20, -1))        // −exp(A_log): about −0.3 … −1.7
                try add(Q.ssmConv1d(l).name, [s.convKernel, conv], .random(5, 0))
                try add(Q.ssmDtBias(l).name, [s.valueHeads], .ones)
                try add(Q.ssmAlpha(l).name, [e, s.valueHeads], .random(1, 0))
                try add(Q.ssmBeta(l).name, [e, s.valueHeads], .random(1, 0))
                try add(Q.attnQKV(l).name, [e, conv], at)
                try add(Q.attnGate(l).name, [e, vd], at)
                try add(Q.ssmNorm(l).name, [s.stateSize], .ones)
                try add(Q.ssmOut(l).name, [vd, e], at)
            } else {
                try add(T.attnQ(l).name, [e, 2 * s.heads * s.headDim], at)
                try add(T.attnK(l).name, [e, s.kvHeads * s.headDim], at)
                try add(T.attnV(l).name, [e, s.kvHeads * s.headDim], at)
                try add(T.attnQNorm(l).name, [s.headDim], .ones)
                try add(T.attnKNorm(l).name, [s.headDim], .ones)
                try add(T.attnOutput(l).name, [s.heads * s.headDim, e], at)
            }
            try add(M.downExperts(l).name, [f, e, n], xt)
            try add(M.gateExperts(l).name, [e, f, n], xt)
            try add(M.upExperts(l).name, [e, f, n], xt)
            try add(M.router(l).name, [e, n], .router(layer: l))
            try add(M.sharedDown(l).name, [sf, e], at)
            try add(M.sharedGate(l).name, [e, sf], at)
            try add(M.sharedUp(l).name, [e, sf], at)
            try add(Q.sharedExpertGate(l).name, [e, 1], .random(1, 0))
            try add(T.postAttentionNorm(l).name, [e], .ones)
        }
        try add(T.outputNorm.name, [e], .ones)
    }

    static func checkQwen35MoE(_ spec: SyntheticModelSpec, path: String) throws {
        let s = spec.qwen35moe
        func fail(_ field: String, _ message: String) -> GGUFError { GGUFError(file: path, field: field, message: message) }
        let rowLengths: [(GGMLType, String, Int)] = [
            (spec.attentionType, "shared feed-forward", s.sharedFeedForward),
            (spec.attentionType, "value dim (value heads × state size)", s.valueHeads * s.stateSize),
            (spec.attentionType, "attention width (heads × head dim)", s.heads * s.headDim),
        ]
        try checkTypes(spec, rowLengths: rowLengths, path: path)
        guard s.keyHeads > 0, s.valueHeads % s.keyHeads == 0, s.stateSize > 0, s.convKernel > 0 else {
            throw fail("linear heads", "value heads (\(s.valueHeads)) must be a multiple of key heads (\(s.keyHeads))")
        }
        guard s.heads > 0, s.kvHeads > 0, s.heads % s.kvHeads == 0, s.ropeDim > 0, s.ropeDim % 2 == 0, s.ropeDim <= s.headDim else {
            throw fail("heads", "heads (\(s.heads)) must be a multiple of KV heads (\(s.kvHeads)), rope dims (\(s.ropeDim)) even and ≤ head dim (\(s.headDim))")
        }
        guard spec.layers > 0, s.fullAttentionInterval > 0 else {
            throw fail("layers", "layers (\(spec.layers)) and the full-attention interval (\(s.fullAttentionInterval)) must be positive")
        }
    }

    /// The fixture's keys in the fixture's order (docs/models/qwen35moe.md §1).
    static func setQwen35MoEMetadata(_ spec: SyntheticModelSpec, _ w: inout GGUFWriter) {
        let a = "qwen35moe", s = spec.qwen35moe, layers = spec.layers
        func u(_ key: String, _ v: Int) { w.set("\(a).\(key)", .uint32(UInt32(v))) }
        setHeader(a, spec, &w)
        u("attention.head_count", s.heads)
        u("attention.head_count_kv", s.kvHeads)
        w.set("\(a).rope.dimension_sections", .array(.int32, s.ropeSections.map { .int32(Int32($0)) }))
        w.set("\(a).rope.freq_base", .float32(10_000_000))
        setNormExpertsAndHeadSize(a, spec, headDim: s.headDim, &w)
        u("expert_feed_forward_length", spec.expertFeedForward)
        u("expert_shared_feed_forward_length", s.sharedFeedForward)
        u("ssm.conv_kernel", s.convKernel)
        u("ssm.state_size", s.stateSize)
        u("ssm.group_count", s.keyHeads)
        u("ssm.time_step_rank", s.valueHeads)
        u("ssm.inner_size", s.valueHeads * s.stateSize)
        w.set("\(a).attention.recurrent_layers", .array(.bool, s.recurrent(layers: layers).map { .bool($0) }))
        u("full_attention_interval", s.fullAttentionInterval)
        u("rope.dimension_count", s.ropeDim)
        w.set("general.quantization_version", .uint32(2))
    }

    /// Writes a Qwen3.5-MoE-shaped model (every tokenizer.* key of `source` but the chat template copied);
    /// returns the bytes of tensor data.
    static func writeQwen35MoE(_ spec: SyntheticModelSpec, tokenizerFrom source: GGUFFile, to path: String,
                               log: (String) -> Void) throws -> Int {
        try checkQwen35MoE(spec, path: path)
        return try writeLayout(spec, tokenizerFrom: source, to: path, chatTemplate: false, setMetadata: setQwen35MoEMetadata, layout: qwen35MoELayout,
                               detail: "\(spec.layers) layers, full attention every \(spec.qwen35moe.fullAttentionInterval)", log: log)
    }
}
