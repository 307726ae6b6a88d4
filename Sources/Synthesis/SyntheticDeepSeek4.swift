// Random-weight DeepSeek-V4-shaped models (`general.architecture = deepseek4`; every key and tensor as in
// docs/models/deepseek4.md and in the fixture llama.cpp's converter wrote, sizes scaled), for speed
// measurements against llama.cpp. Shapes (ggml ne, ne0 = row length; e = hidden, hc = 4 streams,
// h heads of d = 512, q = q rank, G output groups of rank R, n experts of width f):
//
//   token_embd, output          [e, vocab]          `embeddingType` (the converter keeps BF16; F16 here)
//   output_hc_fn / base / scale [hc·e, hc] / [hc] / [1]                                       F32
//   blk.L.hc_{attn,ffn}_fn      [hc·e, (2+hc)·hc]; _base [(2+hc)·hc]; _scale [3]                 F32
//   blk.L.attn_q_a [e, q]; attn_q_b [q, h·d]; attn_kv [e, d]; attn_output_a [h·d/G, G·R];
//   attn_output_b [G·R, e]                                    `attentionType` (FP8 in the checkpoint → Q8_0)
//   blk.L.attn_sinks [h]; norms (attn, q_a, kv_a, ffn, compressor)                           F32
//   ratio ≠ 0: attn_compressor_{kv,gate} [e, coff·d] (coff = 2 for ratio 4, 1 for 128) `attentionType`;
//              attn_compressor_ape [coff·d, ratio] F32, attn_compressor_norm [d] F32
//   ratio = 4: indexer.attn_q_b [q, IH·ID] `attentionType`, indexer.proj [e, IH] F32,
//              indexer_compressor_{kv,gate} [e, 2·ID] `attentionType`, _ape [2·ID, 4] F32, _norm [ID] F32
//   blk.L.ffn_gate_inp [e, n] F32; L < hash layers: ffn_gate_tid2eid [used, vocab] I32, else exp_probs_b [n] F32
//   blk.L.ffn_{gate,up}_exps [e, f, n], ffn_down_exps [f, e, n]     `type` (MXFP4 as the converter writes)
//   blk.L.ffn_{gate,up}_shexp [e, f·s], ffn_down_shexp [f·s, e]                          `attentionType`
//
// llama.cpp's loader accepts only compress ratios 0 / 4 / 128, 4 hc streams and sqrt-softplus gating
// (expert_gating_func 4), and its lightning indexer (Hadamard-rotated) wants a head size that is a
// multiple of 64. On an all-F32 file of this layout both engines give the same logits (max |Δ| ≤ 1e-5 over
// 300 positions, llama.cpp with an F32 KV cache and flash attention off).

import Foundation
import GGUF
import Models

/// DeepSeek-V4 shapes of a synthetic model. `scaled(hidden:)` scales V4 Flash (hidden 4096: 64 heads of
/// 512, q rank 1024, 8 output groups of rank 1024, indexer 64 heads of 128) by hidden / 4096 and keeps
/// what does not scale with width: head 512 with the last 64 dims rotated, a window of 128 raw rows,
/// indexer top-k 512, 4 hc streams with 20 Sinkhorn iterations, 3 hash-routed layers, compress ratios
/// 0, 0, then 4 and 128 alternating.
public struct SyntheticDeepSeek4Shape: Sendable {
    public var heads = 32
    public var headDim = 512
    public var ropeDim = 64
    public var qLoraRank = 512
    public var outputGroups = 8
    public var outputRank = 512
    public var indexerHeads = 32
    public var indexerHeadDim = 128
    public var indexerTopK = 512
    public var window = 128
    public var hashLayers = 3
    /// Per layer 0 / 4 / 128; nil: `defaultCompressRatios`.
    public var compressRatios: [Int]? = nil
    public var embeddingType: GGMLType = .f16
    public var swigluLimit: Float = 10
    /// Fixed by llama.cpp (it asserts 4 streams).
    public let streams = 4
    public let sinkhornIterations = 20

    public init() {}

    public static func scaled(hidden: Int) -> SyntheticDeepSeek4Shape {
        var s = SyntheticDeepSeek4Shape()
        s.heads = max(1, hidden / 64)
        s.qLoraRank = max(32, hidden / 4)
        s.outputRank = max(32, hidden / 4)
        s.indexerHeads = max(1, hidden / 64)
        var g = 8, h = s.heads
        while h != 0 { (g, h) = (h, g % h) }  // gcd(8, heads): the groups must divide the heads
        s.outputGroups = g
        return s
    }

    /// V4 Flash's pattern: layers 0 and 1 window only, then CSA (4) and HCA (128) alternating.
    public static func defaultCompressRatios(layers: Int) -> [Int] {
        (0..<layers).map { $0 < 2 ? 0 : ($0 % 2 == 0 ? 4 : 128) }
    }

    func ratios(layers: Int) -> [Int] { compressRatios ?? Self.defaultCompressRatios(layers: layers) }
}

extension SyntheticModel {
    /// Every tensor of the model in file order, with its ggml dims and fill.
    static func deepSeek4Layout(_ spec: SyntheticModelSpec, vocab: Int, _ add: (String, [Int], SyntheticFill) throws -> Void) rethrows {
        let s = spec.deepseek4, e = spec.hidden, hc = s.streams, mixes = (2 + hc) * hc
        let h = s.heads, d = s.headDim, q = s.qLoraRank, g = s.outputGroups, r = s.outputRank
        let n = spec.experts, f = spec.expertFeedForward, sf = f * spec.sharedExperts
        let at = SyntheticFill.matrix(spec.attentionType), xt = SyntheticFill.matrix(spec.type)
        let ratios = s.ratios(layers: spec.layers)
        typealias T = TensorName
        typealias M = MoETensorName
        typealias D = DeepSeek4TensorName
        try add(T.tokenEmbedding.name, [e, vocab], .matrix(s.embeddingType))
        try add(D.outputHcFn.name, [hc * e, hc], .random(1, 0))
        try add(D.outputHcBase.name, [hc], .random(1, 0))
        try add(D.outputHcScale.name, [1], .values([1]))
        try add(T.outputNorm.name, [e], .ones)
        try add(T.output.name, [e, vocab], .matrix(s.embeddingType))
        for l in 0..<spec.layers {
            try add(D.hcAttnFn(l).name, [hc * e, mixes], .random(1, 0))
            try add(D.hcAttnBase(l).name, [mixes], .random(1, 0))
            try add(D.hcAttnScale(l).name, [3], .values([1, 1, 1]))
            try add(T.attnNorm(l).name, [e], .ones)
            try add(M.qA(l).name, [e, q], at)
            try add(M.qANorm(l).name, [q], .ones)
            try add(M.qB(l).name, [q, h * d], at)
            try add(D.kv(l).name, [e, d], at)
            try add(M.kvANorm(l).name, [d], .ones)
            try add(D.sinks(l).name, [h], .random(10, 0))
            // Grouped low-rank output: group g's heads (h/G · d values) → R, then G·R → e.
            try add(D.outputA(l).name, [h * d / g, g * r], at)
            try add(D.outputB(l).name, [g * r, e], at)
            let ratio = ratios[l]
            if ratio != 0 {
                let coff = ratio == 4 ? 2 : 1   // CSA keeps two halves per row (overlapping windows)
                try add(D.compressorKV(l).name, [e, coff * d], at)
                try add(D.compressorGate(l).name, [e, coff * d], at)
                try add(D.compressorPosition(l).name, [coff * d, ratio], .random(1, 0))
                try add(D.compressorNorm(l).name, [d], .ones)
            }
            if ratio == 4 {
                let ih = s.indexerHeads, id = s.indexerHeadDim
                try add(M.indexerQB(l).name, [q, ih * id], at)
                try add(M.indexerProj(l).name, [e, ih], .random(1, 0))
                try add(D.indexerCompressorKV(l).name, [e, 2 * id], at)
                try add(D.indexerCompressorGate(l).name, [e, 2 * id], at)
                try add(D.indexerCompressorPosition(l).name, [2 * id, ratio], .random(1, 0))
                try add(D.indexerCompressorNorm(l).name, [id], .ones)
            }
            try add(D.hcFFNFn(l).name, [hc * e, mixes], .random(1, 0))
            try add(D.hcFFNBase(l).name, [mixes], .random(1, 0))
            try add(D.hcFFNScale(l).name, [3], .values([1, 1, 1]))
            try add(T.ffnNorm(l).name, [e], .ones)
            try add(M.router(l).name, [e, n], .random(10, 0))
            if l < s.hashLayers {
                try add(D.hashExperts(l).name, [spec.expertsUsed, vocab], .hashTable)
            } else {
                try add(M.correctionBias(l).name, [n], .correctionBias(layer: l))
            }
            try add(M.gateExperts(l).name, [e, f, n], xt)
            try add(M.downExperts(l).name, [f, e, n], xt)
            try add(M.upExperts(l).name, [e, f, n], xt)
            try add(M.sharedGate(l).name, [e, sf], at)
            try add(M.sharedDown(l).name, [sf, e], at)
            try add(M.sharedUp(l).name, [e, sf], at)
        }
    }

    static func checkDeepSeek4(_ spec: SyntheticModelSpec, path: String) throws {
        let s = spec.deepseek4, e = spec.hidden
        func fail(_ field: String, _ message: String) -> GGUFError { GGUFError(file: path, field: field, message: message) }
        // Every row length of each type must hold whole blocks.
        let rowLengths: [(GGMLType, String, Int)] = [
            (spec.attentionType, "q rank", s.qLoraRank),
            (spec.attentionType, "output group width (heads / groups · head dim)", s.heads / max(1, s.outputGroups) * s.headDim),
            (spec.attentionType, "output groups · rank", s.outputGroups * s.outputRank),
            (spec.attentionType, "shared feed-forward", spec.expertFeedForward * spec.sharedExperts),
            (s.embeddingType, "hidden", e),
        ]
        try checkTypes(spec, moreTypes: [("embedding type", s.embeddingType)], rowLengths: rowLengths, path: path)
        let ratios = s.ratios(layers: spec.layers)
        guard ratios.count >= spec.layers, ratios.allSatisfy({ [0, 4, 128].contains($0) }) else {
            throw fail("compress ratios", "need one of 0, 4, 128 per layer (\(spec.layers) layers), got \(ratios)")
        }
        guard spec.layers > 0, e > 0, s.heads > 0, s.outputGroups > 0, s.heads % s.outputGroups == 0, s.outputRank > 0, s.qLoraRank > 0 else {
            throw fail("heads", "heads (\(s.heads)) must be a multiple of the output groups (\(s.outputGroups))")
        }
        guard s.ropeDim > 0, s.ropeDim % 2 == 0, s.ropeDim <= s.headDim, s.ropeDim <= s.indexerHeadDim else {
            throw fail("rope", "rope dims \(s.ropeDim) must be even and fit the head (\(s.headDim)) and indexer head (\(s.indexerHeadDim))")
        }
        guard s.indexerHeads > 0, s.indexerHeadDim % 64 == 0, s.indexerTopK > 0, s.window > 0 else {
            throw fail("indexer", "indexer head size \(s.indexerHeadDim) must be a multiple of 64 (llama.cpp)")
        }
        guard spec.sharedExperts > 0, s.hashLayers >= 0, s.hashLayers <= spec.layers else {
            throw fail("experts", "a shared expert is needed (\(spec.sharedExperts)) and hash layers (\(s.hashLayers)) ≤ layers")
        }
    }

    /// ggml's general.file_type of a model whose routed experts are `t` (the rest stays 8-bit or wider).
    static func fileType(_ t: GGMLType) -> UInt32? {
        switch t {
        case .mxfp4: return 38       // MOSTLY_MXFP4_MOE
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q2_K: return 10
        case .q3_K: return 12        // Q3_K_M
        case .q4_K: return 15        // Q4_K_M
        case .q5_K: return 17        // Q5_K_M
        case .q6_K: return 18
        case .bf16: return 32
        default: return nil
        }
    }

    /// The fixture's keys in the fixture's order (docs/models/deepseek4.md §1), V4 Flash's values where
    /// they do not scale: YaRN 16× over 65536 on the compressed layers (base 160000), base 10000 on the
    /// others, eps 1e-6, sqrt-softplus routing with normalised weights × 1.5, SwiGLU clamp 10.
    static func setDeepSeek4Metadata(_ spec: SyntheticModelSpec, _ w: inout GGUFWriter) {
        let a = "deepseek4", s = spec.deepseek4, layers = spec.layers
        func u(_ key: String, _ v: Int) { w.set("\(a).\(key)", .uint32(UInt32(v))) }
        func f(_ key: String, _ v: Float) { w.set("\(a).\(key)", .float32(v)) }
        setHeader(a, spec, &w)
        u("attention.head_count", s.heads)
        u("attention.head_count_kv", 1)
        w.set("\(a).rope.scaling.type", .string("yarn"))
        f("rope.scaling.factor", 16)
        u("rope.scaling.original_context_length", 65536)
        f("rope.scaling.yarn_beta_fast", 32)
        f("rope.scaling.yarn_beta_slow", 1)
        f("rope.freq_base", 10000)
        f("attention.layer_norm_rms_epsilon", 1e-6)
        u("expert_count", spec.experts)
        u("expert_used_count", spec.expertsUsed)
        u("expert_gating_func", 4)
        u("attention.key_length", s.headDim)
        u("attention.value_length", s.headDim)
        if let ft = fileType(spec.type) { w.set("general.file_type", .uint32(ft)) }
        u("rope.dimension_count", s.ropeDim)
        u("attention.q_lora_rank", s.qLoraRank)
        u("attention.sliding_window", s.window)
        u("expert_feed_forward_length", spec.expertFeedForward)
        u("expert_shared_count", spec.sharedExperts)
        f("expert_weights_scale", 1.5)
        w.set("\(a).expert_weights_norm", .bool(true))
        let limits = GGUFValue.array(.float32, Array(repeating: .float32(s.swigluLimit), count: layers))
        w.set("\(a).swiglu_clamp_exp", limits)
        w.set("\(a).swiglu_clamp_shexp", limits)
        u("attention.indexer.head_count", s.indexerHeads)
        u("attention.indexer.key_length", s.indexerHeadDim)
        u("attention.indexer.top_k", s.indexerTopK)
        u("attention.output_group_count", s.outputGroups)
        u("attention.output_lora_rank", s.outputRank)
        w.set("\(a).attention.compress_ratios", .array(.int32, s.ratios(layers: layers).prefix(layers).map { .int32(Int32($0)) }))
        f("attention.compress_rope_freq_base", 160000)
        u("hyper_connection.count", s.streams)
        u("hyper_connection.sinkhorn_iterations", s.sinkhornIterations)
        f("hyper_connection.epsilon", 1e-6)
        u("hash_layer_count", s.hashLayers)
        u("embedding_length_out", s.streams * spec.hidden)
        w.set("general.quantization_version", .uint32(2))
    }

    /// Writes a DeepSeek-V4-shaped model (every tokenizer.* key of `source` copied, chat template
    /// included); returns the bytes of tensor data.
    static func writeDeepSeek4(_ spec: SyntheticModelSpec, tokenizerFrom source: GGUFFile, to path: String,
                               log: (String) -> Void) throws -> Int {
        try checkDeepSeek4(spec, path: path)
        let ratios = spec.deepseek4.ratios(layers: spec.layers).prefix(spec.layers).map(String.init).joined(separator: ",")
        return try writeLayout(spec, tokenizerFrom: source, to: path, chatTemplate: true, setMetadata: setDeepSeek4Metadata,
                               layout: deepSeek4Layout, detail: "\(spec.layers) layers, ratios \(ratios)", log: log)
    }
}
