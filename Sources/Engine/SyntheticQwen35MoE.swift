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

import CKernels
import Foundation
import GGUF

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
    /// What fills a tensor of the Qwen3.5-MoE layout.
    enum QwenFill {
        case matrix(GGMLType)
        case ones
        /// F32 uniform random values × scale + offset.
        case random(Float, Float)
        /// The router of layer L (rows scaled by popularity rank).
        case router(layer: Int)
    }

    /// Every tensor of the model in file order (the fixture's), with its ggml dims and fill.
    static func qwen35MoELayout(_ spec: SyntheticModelSpec, vocab: Int, _ add: (String, [Int], QwenFill) throws -> Void) rethrows {
        let s = spec.qwen35moe, e = spec.hidden, n = spec.experts, f = spec.expertFeedForward, sf = s.sharedFeedForward
        let kd = s.keyHeads * s.stateSize, vd = s.valueHeads * s.stateSize, conv = 2 * kd + vd
        let at = QwenFill.matrix(spec.attentionType), xt = QwenFill.matrix(spec.type)
        try add("output.weight", [e, vocab], at)
        try add("token_embd.weight", [e, vocab], at)
        for (l, recurrent) in s.recurrent(layers: spec.layers).enumerated() {
            let b = "blk.\(l)."
            try add(b + "attn_norm.weight", [e], .ones)
            if recurrent {
                try add(b + "ssm_a", [s.valueHeads], .random(-20, -1))        // −exp(A_log): about −0.3 … −1.7
                try add(b + "ssm_conv1d.weight", [s.convKernel, conv], .random(5, 0))
                try add(b + "ssm_dt.bias", [s.valueHeads], .ones)
                try add(b + "ssm_alpha.weight", [e, s.valueHeads], .random(1, 0))
                try add(b + "ssm_beta.weight", [e, s.valueHeads], .random(1, 0))
                try add(b + "attn_qkv.weight", [e, conv], at)
                try add(b + "attn_gate.weight", [e, vd], at)
                try add(b + "ssm_norm.weight", [s.stateSize], .ones)
                try add(b + "ssm_out.weight", [vd, e], at)
            } else {
                try add(b + "attn_q.weight", [e, 2 * s.heads * s.headDim], at)
                try add(b + "attn_k.weight", [e, s.kvHeads * s.headDim], at)
                try add(b + "attn_v.weight", [e, s.kvHeads * s.headDim], at)
                try add(b + "attn_q_norm.weight", [s.headDim], .ones)
                try add(b + "attn_k_norm.weight", [s.headDim], .ones)
                try add(b + "attn_output.weight", [s.heads * s.headDim, e], at)
            }
            try add(b + "ffn_down_exps.weight", [f, e, n], xt)
            try add(b + "ffn_gate_exps.weight", [e, f, n], xt)
            try add(b + "ffn_up_exps.weight", [e, f, n], xt)
            try add(b + "ffn_gate_inp.weight", [e, n], .router(layer: l))
            try add(b + "ffn_down_shexp.weight", [sf, e], at)
            try add(b + "ffn_gate_shexp.weight", [e, sf], at)
            try add(b + "ffn_up_shexp.weight", [e, sf], at)
            try add(b + "ffn_gate_inp_shexp.weight", [e, 1], .random(1, 0))
            try add(b + "post_attention_norm.weight", [e], .ones)
        }
        try add("output_norm.weight", [e], .ones)
    }

    static func qwenBytes(_ dims: [Int], _ fill: QwenFill) -> Int {
        let count = dims.reduce(1, *)
        if case .matrix(let t) = fill { return t.byteCount(elements: count) ?? 0 }
        return 4 * count
    }

    /// Bytes of tensor data of the Qwen3.5-MoE model `spec` with a `vocab`-token vocabulary.
    public static func qwen35MoEBytes(_ spec: SyntheticModelSpec, vocab: Int) -> Int {
        var total = 0
        qwen35MoELayout(spec, vocab: vocab) { _, dims, fill in total += qwenBytes(dims, fill) }
        return total
    }

    /// The layer count whose model is closest to `bytes` (at least 1).
    public static func qwen35MoELayers(toFit bytes: Int, _ spec: SyntheticModelSpec, vocab: Int) -> Int {
        var s = spec, best = 1, bestMiss = Int.max
        for layers in 1...4096 {
            s.layers = layers
            let size = qwen35MoEBytes(s, vocab: vocab)
            if abs(size - bytes) < bestMiss { best = layers; bestMiss = abs(size - bytes) }
            if size > bytes { break }
        }
        return best
    }

    static func checkQwen35MoE(_ spec: SyntheticModelSpec, path: String) throws {
        let s = spec.qwen35moe, e = spec.hidden
        func fail(_ field: String, _ message: String) -> GGUFError { GGUFError(file: path, field: field, message: message) }
        for (what, t) in [("type", spec.type), ("attention type", spec.attentionType)] {
            guard ds_type_supported(Int32(t.rawValue)) != 0, t != .q8_K, t != .i32 else { throw fail(what, "\(t.name) cannot be written") }
        }
        let rowLengths: [(GGMLType, String, Int)] = [
            (spec.type, "hidden", e), (spec.type, "expert feed-forward", spec.expertFeedForward),
            (spec.attentionType, "hidden", e), (spec.attentionType, "shared feed-forward", s.sharedFeedForward),
            (spec.attentionType, "value dim (value heads × state size)", s.valueHeads * s.stateSize),
            (spec.attentionType, "attention width (heads × head dim)", s.heads * s.headDim),
        ]
        for (t, what, n) in rowLengths where n % t.blockSize != 0 {
            throw fail(what, "\(what) \(n) is not a multiple of the \(t.name) block size \(t.blockSize)")
        }
        guard s.keyHeads > 0, s.valueHeads % s.keyHeads == 0, s.stateSize > 0, s.convKernel > 0 else {
            throw fail("linear heads", "value heads (\(s.valueHeads)) must be a multiple of key heads (\(s.keyHeads))")
        }
        guard s.heads > 0, s.kvHeads > 0, s.heads % s.kvHeads == 0, s.ropeDim > 0, s.ropeDim % 2 == 0, s.ropeDim <= s.headDim else {
            throw fail("heads", "heads (\(s.heads)) must be a multiple of KV heads (\(s.kvHeads)), rope dims (\(s.ropeDim)) even and ≤ head dim (\(s.headDim))")
        }
        guard spec.layers > 0, s.fullAttentionInterval > 0, spec.experts > 0, spec.expertsUsed > 0, spec.expertsUsed <= spec.experts else {
            throw fail("experts", "experts used (\(spec.expertsUsed)) must be in 1...\(spec.experts)")
        }
    }

    /// The fixture's keys in the fixture's order (docs/models/qwen35moe.md §1).
    static func setQwen35MoEMetadata(_ spec: SyntheticModelSpec, _ w: inout GGUFWriter) {
        let a = "qwen35moe", s = spec.qwen35moe, layers = spec.layers
        func u(_ key: String, _ v: Int) { w.set("\(a).\(key)", .uint32(UInt32(v))) }
        w.set("general.architecture", .string(a))
        w.set("general.type", .string("model"))
        w.set("general.name", .string("synthetic qwen35moe \(spec.hidden)x\(layers) \(spec.experts)e \(spec.type.name)"))
        w.set("general.size_label", .string("synthetic"))
        u("block_count", layers)
        u("context_length", 4096)
        u("embedding_length", spec.hidden)
        u("attention.head_count", s.heads)
        u("attention.head_count_kv", s.kvHeads)
        w.set("\(a).rope.dimension_sections", .array(.int32, s.ropeSections.map { .int32(Int32($0)) }))
        w.set("\(a).rope.freq_base", .float32(10_000_000))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-6))
        u("expert_count", spec.experts)
        u("expert_used_count", spec.expertsUsed)
        u("attention.key_length", s.headDim)
        u("attention.value_length", s.headDim)
        if let ft = fileType(spec.type) { w.set("general.file_type", .uint32(ft)) }
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
        guard let tokens = source["tokenizer.ggml.tokens"]?.array, !tokens.isEmpty else {
            throw GGUFError(file: source.path, field: "tokenizer.ggml.tokens", message: "no tokenizer to copy")
        }
        let vocab = tokens.count
        var w = GGUFWriter()
        setQwen35MoEMetadata(spec, &w)
        for key in source.metadataKeys where key.hasPrefix("tokenizer.") && key != "tokenizer.chat_template" { w.set(key, source[key]!) }
        let rows = SyntheticRows(seed: spec.seed)
        func floats(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
        let n = spec.experts, skew = spec.routerSkew
        try qwen35MoELayout(spec, vocab: vocab) { name, dims, fill in
            let count = dims.reduce(1, *)
            switch fill {
            case .matrix(let t):
                try w.addTensor(name: name, dims: dims, type: t,
                                produce: rows.matrix(rows: dims[1], cols: dims[0], count: dims.count > 2 ? dims[2] : 1, type: t))
            case .ones:
                try w.addTensor(name: name, dims: dims, type: .f32, data: floats(Array(repeating: 1, count: count)))
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
        log(String(format: "writing %@: %d tensors, %.2f GB of weights (%d layers, full attention every %d)", path, w.tensors.count,
                   Double(total) / 1e9, spec.layers, spec.qwen35moe.fullAttentionInterval))
        try w.write(to: path)
        return total
    }
}
