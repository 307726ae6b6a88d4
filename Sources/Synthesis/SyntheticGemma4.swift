// Random-weight Gemma-4-shaped text models (`general.architecture = gemma4`; every key and tensor as in
// docs/models/gemma4.md and in the fixture llama.cpp's converter wrote, sizes scaled), for speed
// measurements against llama.cpp. Shapes (ggml ne; e = hidden, h heads, sliding layers gs KV heads × ds,
// full layers gf KV heads × df with K = V (no attn_v), L layers, P per-layer-embedding width, n experts of
// width f, dense MLP of width ff):
//
//   token_embd [e, vocab] (tied LM head), per_layer_token_embd [L·P, vocab],
//   per_layer_model_proj [e, L·P]                                         `attentionType`
//   rope_freqs [df/2] (1 on the rotated pairs, 1e30 on the rest), per_layer_proj_norm [P], output_norm [e]  F32
//   blk.L.attn_q [e, h·d]; attn_k [e, g·d] and (sliding) attn_v [e, g·d] unless KV-shared; attn_output [h·d, e];
//   ffn_{gate,up} [e, ff], ffn_down [ff, e]; inp_gate [e, P]; proj [P, e]   `attentionType`
//   blk.L.ffn_gate_up_exps [e, 2f, n], ffn_down_exps [f, e, n]             `type`
//   blk.L.ffn_gate_inp [e, n], ffn_gate_inp.scale [e], ffn_down_exps.scale [n], layer_output_scale [1],
//   the norms (attn, attn_q/k, post_attention, ffn, post_ffw(_1/_2), pre_ffw_norm_2, post_norm)       F32
//
// The last `sharedKVLayers` layers own no K/V. llama.cpp reads a shared sliding layer's K/V from layer
// n_kv − 2 and a shared full layer's from n_kv − 1 (n_kv = layers − shared), so those two layers are laid
// out sliding then full whatever the pattern says. Gemma's router has no bias: the popularity skew scales
// the router row of the expert of rank r by (r + 1)^−skew (see SyntheticQwen35MoE.swift).

import Foundation
import GGUF
import Models

/// Gemma 4 shapes of a synthetic model (hidden, layers, dense width `feedForward`, experts, expert width,
/// types in SyntheticModelSpec). Defaults: Gemma 4 26B-A4B's attention (16 heads; sliding 8 KV heads of
/// 256 with a window, full 2 KV heads of 512 with K = V and a quarter of the dims rotated; a full layer
/// every 6th layer), the E2B/E4B per-layer embeddings (P = 256) and KV sharing of the last 2 layers.
public struct SyntheticGemma4Shape: Sendable {
    public var heads = 16
    public var slidingKVHeads = 8
    public var fullKVHeads = 2
    public var slidingHeadDim = 256
    public var fullHeadDim = 512
    public var window = 512
    public var perLayerInput = 256
    public var sharedKVLayers = 2
    /// Every n-th layer is full attention.
    public var fullInterval = 6
    /// Rotated share of the full layers' head (proportional RoPE).
    public var partialRotary: Float = 0.25
    /// KV-shared layers get a dense MLP twice as wide (HF use_double_wide_mlp, as in the fixture and E2B).
    public var doubleWideShared = false

    public init() {}

    /// Per layer: true = sliding window, false = full attention. The pattern is full every `fullInterval`-th
    /// layer and on the last layer (as in every Gemma 4), except that with shared layers the last two layers
    /// owning KV are sliding, full (llama.cpp's sources).
    public func sliding(layers: Int) -> [Bool] {
        var s = (0..<layers).map { ($0 + 1) % max(1, fullInterval) != 0 && $0 != layers - 1 }
        let kv = layers - sharedKVLayers
        if sharedKVLayers > 0 && kv >= 2 { s[kv - 2] = true; s[kv - 1] = false }
        return s
    }

    /// Rotated frequency pairs of a full-attention head.
    public var fullRopePairs: Int { Int(partialRotary * Float(fullHeadDim / 2)) }
}

extension SyntheticModel {
    /// Every tensor of the model in file order (the fixture's), with its ggml dims and fill.
    static func gemma4Layout(_ spec: SyntheticModelSpec, vocab: Int, _ add: (String, [Int], SyntheticFill) throws -> Void) rethrows {
        let s = spec.gemma4, e = spec.hidden, L = spec.layers, P = s.perLayerInput
        let n = spec.experts, f = spec.expertFeedForward
        let at = SyntheticFill.matrix(spec.attentionType), xt = SyntheticFill.matrix(spec.type)
        let sliding = s.sliding(layers: L), kvLayers = L - s.sharedKVLayers
        let pairs = s.fullHeadDim / 2
        typealias T = TensorName
        typealias M = MoETensorName
        typealias G = Gemma4TensorName
        try add(T.ropeFrequencies.name, [pairs], .values((0..<pairs).map { $0 < s.fullRopePairs ? 1 : 1e30 }))
        try add(T.tokenEmbedding.name, [e, vocab], at)
        if P > 0 { try add(G.perLayerTokenEmbedding.name, [L * P, vocab], at) }
        for l in 0..<L {
            let swa = sliding[l], d = swa ? s.slidingHeadDim : s.fullHeadDim
            let g = swa ? s.slidingKVHeads : s.fullKVHeads, ownsKV = l < kvLayers
            let ff = spec.feedForward * (!ownsKV && s.doubleWideShared ? 2 : 1)
            try add(M.downExperts(l).name, [f, e, n], xt)
            try add(M.gateUpExperts(l).name, [e, 2 * f, n], xt)
            try add(T.attnNorm(l).name, [e], .ones)
            try add(G.layerOutputScale(l).name, [1], .random(4, 1))
            try add(T.ffnDown(l).name, [ff, e], at)
            try add(T.ffnGate(l).name, [e, ff], at)
            try add(T.ffnUp(l).name, [e, ff], at)
            if P > 0 {
                try add(G.perLayerInputGate(l).name, [e, P], at)
                try add(G.perLayerProjection(l).name, [P, e], at)
            }
            try add(T.postAttentionNorm(l).name, [e], .ones)
            try add(T.postFFNNorm(l).name, [e], .ones)
            try add(G.postFFN1Norm(l).name, [e], .ones)
            try add(G.postFFN2Norm(l).name, [e], .ones)
            if P > 0 { try add(G.perLayerPostNorm(l).name, [e], .ones) }
            try add(T.ffnNorm(l).name, [e], .ones)
            try add(G.preFFN2Norm(l).name, [e], .ones)
            try add(G.downExpertsScale(l).name, [n], .ones)
            try add(M.router(l).name, [e, n], .router(layer: l))
            try add(G.routerScale(l).name, [e], .ones)
            if ownsKV {
                try add(T.attnKNorm(l).name, [d], .ones)
                try add(T.attnK(l).name, [e, g * d], at)
            }
            try add(T.attnOutput(l).name, [s.heads * d, e], at)
            try add(T.attnQNorm(l).name, [d], .ones)
            try add(T.attnQ(l).name, [e, s.heads * d], at)
            if ownsKV && swa { try add(T.attnV(l).name, [e, g * d], at) }
        }
        try add(T.outputNorm.name, [e], .ones)
        if P > 0 {
            try add(G.perLayerModelProjection.name, [e, L * P], at)
            try add(G.perLayerProjectionNorm.name, [P], .ones)
        }
    }

    static func checkGemma4(_ spec: SyntheticModelSpec, path: String) throws {
        let s = spec.gemma4
        func fail(_ field: String, _ message: String) -> GGUFError { GGUFError(file: path, field: field, message: message) }
        var rowLengths: [(GGMLType, String, Int)] = [
            (spec.attentionType, "feed-forward", spec.feedForward),
            (spec.attentionType, "sliding attention width (heads × head dim)", s.heads * s.slidingHeadDim),
            (spec.attentionType, "full attention width (heads × head dim)", s.heads * s.fullHeadDim),
        ]
        if s.perLayerInput > 0 {
            rowLengths += [(spec.attentionType, "per-layer input", s.perLayerInput),
                           (spec.attentionType, "layers × per-layer input", spec.layers * s.perLayerInput)]
        }
        try checkTypes(spec, rowLengths: rowLengths, path: path)
        guard s.heads > 0, s.slidingKVHeads > 0, s.fullKVHeads > 0, s.heads % s.slidingKVHeads == 0, s.heads % s.fullKVHeads == 0,
              s.slidingHeadDim % 2 == 0, s.fullHeadDim % 2 == 0, s.fullRopePairs > 0, s.window > 0 else {
            throw fail("heads", "heads (\(s.heads)) must be a multiple of the KV heads (\(s.slidingKVHeads), \(s.fullKVHeads)), head dims even")
        }
        guard s.sharedKVLayers >= 0, spec.layers >= s.sharedKVLayers + (s.sharedKVLayers > 0 ? 2 : 1) else {
            throw fail("shared KV layers", "\(s.sharedKVLayers) shared layers need at least \(s.sharedKVLayers + 2) layers")
        }
    }

    /// The fixture's keys in the fixture's order (docs/models/gemma4.md §2).
    static func setGemma4Metadata(_ spec: SyntheticModelSpec, _ w: inout GGUFWriter) {
        let a = "gemma4", s = spec.gemma4, L = spec.layers
        func u(_ key: String, _ v: Int) { w.set("\(a).\(key)", .uint32(UInt32(v))) }
        func ints(_ key: String, _ v: [Int]) { w.set("\(a).\(key)", .array(.int32, v.map { .int32(Int32($0)) })) }
        let sliding = s.sliding(layers: L), kvLayers = L - s.sharedKVLayers
        setHeader(a, spec, &w)
        ints("feed_forward_length", (0..<L).map { spec.feedForward * ($0 >= kvLayers && s.doubleWideShared ? 2 : 1) })
        u("attention.head_count", s.heads)
        ints("attention.head_count_kv", sliding.map { $0 ? s.slidingKVHeads : s.fullKVHeads })
        w.set("\(a).rope.freq_base", .float32(1_000_000))
        w.set("\(a).rope.freq_base_swa", .float32(10_000))
        setNormExpertsAndHeadSize(a, spec, headDim: s.fullHeadDim, &w)
        w.set("\(a).final_logit_softcapping", .float32(30))
        u("attention.sliding_window", s.window)
        u("attention.shared_kv_layers", s.sharedKVLayers)
        u("embedding_length_per_layer_input", s.perLayerInput)
        w.set("\(a).attention.sliding_window_pattern", .array(.bool, sliding.map { .bool($0) }))
        u("attention.key_length_swa", s.slidingHeadDim)
        u("attention.value_length_swa", s.slidingHeadDim)
        u("expert_feed_forward_length", spec.expertFeedForward)
        u("rope.dimension_count", s.fullHeadDim)
        u("rope.dimension_count_swa", s.slidingHeadDim)
        w.set("general.quantization_version", .uint32(2))
    }

    /// Writes a Gemma-4-shaped model (every tokenizer.* key of `source` but the chat template copied);
    /// returns the bytes of tensor data.
    static func writeGemma4(_ spec: SyntheticModelSpec, tokenizerFrom source: GGUFFile, to path: String,
                            log: (String) -> Void) throws -> Int {
        try checkGemma4(spec, path: path)
        let pattern = spec.gemma4.sliding(layers: spec.layers).map { $0 ? "S" : "F" }.joined()
        return try writeLayout(spec, tokenizerFrom: source, to: path, chatTemplate: false, setMetadata: setGemma4Metadata,
                               layout: gemma4Layout, detail: "\(spec.layers) layers, \(pattern)", log: log)
    }
}
