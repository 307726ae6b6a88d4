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

import CKernels
import Foundation
import GGUF

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
    enum Gemma4Fill {
        case matrix(GGMLType)
        case ones
        case values([Float])
        /// F32 uniform random values × scale + offset.
        case random(Float, Float)
        case router(layer: Int)
    }

    /// Every tensor of the model in file order (the fixture's), with its ggml dims and fill.
    static func gemma4Layout(_ spec: SyntheticModelSpec, vocab: Int, _ add: (String, [Int], Gemma4Fill) throws -> Void) rethrows {
        let s = spec.gemma4, e = spec.hidden, L = spec.layers, P = s.perLayerInput
        let n = spec.experts, f = spec.expertFeedForward
        let at = Gemma4Fill.matrix(spec.attentionType), xt = Gemma4Fill.matrix(spec.type)
        let sliding = s.sliding(layers: L), kvLayers = L - s.sharedKVLayers
        let pairs = s.fullHeadDim / 2
        try add("rope_freqs.weight", [pairs], .values((0..<pairs).map { $0 < s.fullRopePairs ? 1 : 1e30 }))
        try add("token_embd.weight", [e, vocab], at)
        if P > 0 { try add("per_layer_token_embd.weight", [L * P, vocab], at) }
        for l in 0..<L {
            let b = "blk.\(l).", swa = sliding[l], d = swa ? s.slidingHeadDim : s.fullHeadDim
            let g = swa ? s.slidingKVHeads : s.fullKVHeads, ownsKV = l < kvLayers
            let ff = spec.feedForward * (!ownsKV && s.doubleWideShared ? 2 : 1)
            try add(b + "ffn_down_exps.weight", [f, e, n], xt)
            try add(b + "ffn_gate_up_exps.weight", [e, 2 * f, n], xt)
            try add(b + "attn_norm.weight", [e], .ones)
            try add(b + "layer_output_scale.weight", [1], .random(4, 1))
            try add(b + "ffn_down.weight", [ff, e], at)
            try add(b + "ffn_gate.weight", [e, ff], at)
            try add(b + "ffn_up.weight", [e, ff], at)
            if P > 0 {
                try add(b + "inp_gate.weight", [e, P], at)
                try add(b + "proj.weight", [P, e], at)
            }
            try add(b + "post_attention_norm.weight", [e], .ones)
            try add(b + "post_ffw_norm.weight", [e], .ones)
            try add(b + "post_ffw_norm_1.weight", [e], .ones)
            try add(b + "post_ffw_norm_2.weight", [e], .ones)
            if P > 0 { try add(b + "post_norm.weight", [e], .ones) }
            try add(b + "ffn_norm.weight", [e], .ones)
            try add(b + "pre_ffw_norm_2.weight", [e], .ones)
            try add(b + "ffn_down_exps.scale", [n], .ones)
            try add(b + "ffn_gate_inp.weight", [e, n], .router(layer: l))
            try add(b + "ffn_gate_inp.scale", [e], .ones)
            if ownsKV {
                try add(b + "attn_k_norm.weight", [d], .ones)
                try add(b + "attn_k.weight", [e, g * d], at)
            }
            try add(b + "attn_output.weight", [s.heads * d, e], at)
            try add(b + "attn_q_norm.weight", [d], .ones)
            try add(b + "attn_q.weight", [e, s.heads * d], at)
            if ownsKV && swa { try add(b + "attn_v.weight", [e, g * d], at) }
        }
        try add("output_norm.weight", [e], .ones)
        if P > 0 {
            try add("per_layer_model_proj.weight", [e, L * P], at)
            try add("per_layer_proj_norm.weight", [P], .ones)
        }
    }

    static func gemma4TensorBytes(_ dims: [Int], _ fill: Gemma4Fill) -> Int {
        let count = dims.reduce(1, *)
        if case .matrix(let t) = fill { return t.byteCount(elements: count) ?? 0 }
        return 4 * count
    }

    /// Bytes of tensor data of the Gemma 4 model `spec` with a `vocab`-token vocabulary.
    public static func gemma4Bytes(_ spec: SyntheticModelSpec, vocab: Int) -> Int {
        var total = 0
        gemma4Layout(spec, vocab: vocab) { _, dims, fill in total += gemma4TensorBytes(dims, fill) }
        return total
    }

    /// The layer count whose model is closest to `bytes` (at least `sharedKVLayers` + 2).
    public static func gemma4Layers(toFit bytes: Int, _ spec: SyntheticModelSpec, vocab: Int) -> Int {
        let first = spec.gemma4.sharedKVLayers + 2
        var s = spec, best = first, bestMiss = Int.max
        for layers in first...4096 {
            s.layers = layers
            let size = gemma4Bytes(s, vocab: vocab)
            if abs(size - bytes) < bestMiss { best = layers; bestMiss = abs(size - bytes) }
            if size > bytes { break }
        }
        return best
    }

    static func checkGemma4(_ spec: SyntheticModelSpec, path: String) throws {
        let s = spec.gemma4, e = spec.hidden
        func fail(_ field: String, _ message: String) -> GGUFError { GGUFError(file: path, field: field, message: message) }
        for (what, t) in [("type", spec.type), ("attention type", spec.attentionType)] {
            guard ds_type_supported(Int32(t.rawValue)) != 0, t != .q8_K, t != .i32 else { throw fail(what, "\(t.name) cannot be written") }
        }
        var rowLengths: [(GGMLType, String, Int)] = [
            (spec.type, "hidden", e), (spec.type, "expert feed-forward", spec.expertFeedForward),
            (spec.attentionType, "hidden", e), (spec.attentionType, "feed-forward", spec.feedForward),
            (spec.attentionType, "sliding attention width (heads × head dim)", s.heads * s.slidingHeadDim),
            (spec.attentionType, "full attention width (heads × head dim)", s.heads * s.fullHeadDim),
        ]
        if s.perLayerInput > 0 {
            rowLengths += [(spec.attentionType, "per-layer input", s.perLayerInput),
                           (spec.attentionType, "layers × per-layer input", spec.layers * s.perLayerInput)]
        }
        for (t, what, n) in rowLengths where n % t.blockSize != 0 {
            throw fail(what, "\(what) \(n) is not a multiple of the \(t.name) block size \(t.blockSize)")
        }
        guard s.heads > 0, s.slidingKVHeads > 0, s.fullKVHeads > 0, s.heads % s.slidingKVHeads == 0, s.heads % s.fullKVHeads == 0,
              s.slidingHeadDim % 2 == 0, s.fullHeadDim % 2 == 0, s.fullRopePairs > 0, s.window > 0 else {
            throw fail("heads", "heads (\(s.heads)) must be a multiple of the KV heads (\(s.slidingKVHeads), \(s.fullKVHeads)), head dims even")
        }
        guard s.sharedKVLayers >= 0, spec.layers >= s.sharedKVLayers + (s.sharedKVLayers > 0 ? 2 : 1) else {
            throw fail("shared KV layers", "\(s.sharedKVLayers) shared layers need at least \(s.sharedKVLayers + 2) layers")
        }
        guard spec.experts > 0, spec.expertsUsed > 0, spec.expertsUsed <= spec.experts else {
            throw fail("experts", "experts used (\(spec.expertsUsed)) must be in 1...\(spec.experts)")
        }
    }

    /// The fixture's keys in the fixture's order (docs/models/gemma4.md §2).
    static func setGemma4Metadata(_ spec: SyntheticModelSpec, _ w: inout GGUFWriter) {
        let a = "gemma4", s = spec.gemma4, L = spec.layers
        func u(_ key: String, _ v: Int) { w.set("\(a).\(key)", .uint32(UInt32(v))) }
        func ints(_ key: String, _ v: [Int]) { w.set("\(a).\(key)", .array(.int32, v.map { .int32(Int32($0)) })) }
        let sliding = s.sliding(layers: L), kvLayers = L - s.sharedKVLayers
        w.set("general.architecture", .string(a))
        w.set("general.type", .string("model"))
        w.set("general.name", .string("synthetic gemma4 \(spec.hidden)x\(L) \(spec.experts)e \(spec.type.name)"))
        w.set("general.size_label", .string("synthetic"))
        u("block_count", L)
        u("context_length", 4096)
        u("embedding_length", spec.hidden)
        ints("feed_forward_length", (0..<L).map { spec.feedForward * ($0 >= kvLayers && s.doubleWideShared ? 2 : 1) })
        u("attention.head_count", s.heads)
        ints("attention.head_count_kv", sliding.map { $0 ? s.slidingKVHeads : s.fullKVHeads })
        w.set("\(a).rope.freq_base", .float32(1_000_000))
        w.set("\(a).rope.freq_base_swa", .float32(10_000))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-6))
        u("expert_count", spec.experts)
        u("expert_used_count", spec.expertsUsed)
        u("attention.key_length", s.fullHeadDim)
        u("attention.value_length", s.fullHeadDim)
        if let ft = fileType(spec.type) { w.set("general.file_type", .uint32(ft)) }
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
        guard let tokens = source["tokenizer.ggml.tokens"]?.array, !tokens.isEmpty else {
            throw GGUFError(file: source.path, field: "tokenizer.ggml.tokens", message: "no tokenizer to copy")
        }
        let vocab = tokens.count
        var w = GGUFWriter()
        setGemma4Metadata(spec, &w)
        for key in source.metadataKeys where key.hasPrefix("tokenizer.") && key != "tokenizer.chat_template" { w.set(key, source[key]!) }
        let rows = SyntheticRows(seed: spec.seed)
        func floats(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
        let n = spec.experts, skew = spec.routerSkew
        try gemma4Layout(spec, vocab: vocab) { name, dims, fill in
            let count = dims.reduce(1, *)
            switch fill {
            case .matrix(let t):
                try w.addTensor(name: name, dims: dims, type: t,
                                produce: rows.matrix(rows: dims[1], cols: dims[0], count: dims.count > 2 ? dims[2] : 1, type: t))
            case .ones:
                try w.addTensor(name: name, dims: dims, type: .f32, data: floats(Array(repeating: 1, count: count)))
            case .values(let v):
                try w.addTensor(name: name, dims: dims, type: .f32, data: floats(v))
            case .random(let scale, let offset):
                try w.addTensor(name: name, dims: dims, type: .f32) { floats(rows.random(count).map { $0 * scale + offset }) }
            case .router(let l):
                let e = dims[0]
                try w.addTensor(name: name, dims: dims, type: .f32) {
                    let v = rows.random(count)
                    return floats((0..<count).map { i in
                        let rank = ((i / e) * 37 + l * 11) % n
                        return v[i] * 10 * powf(Float(rank + 1), -skew)
                    })
                }
            }
        }
        let total = w.tensors.reduce(0) { $0 + $1.byteCount }
        log(String(format: "writing %@: %d tensors, %.2f GB of weights (%d layers, %@)", path, w.tensors.count, Double(total) / 1e9,
                   spec.layers, spec.gemma4.sliding(layers: spec.layers).map { $0 ? "S" : "F" }.joined()))
        try w.write(to: path)
        return total
    }
}
