// Random-weight models of realistic shape, written with the project's own GGUF writer, for speed
// measurements on models larger than the caches (llama.cpp reads them too). Weights are random (text is
// noise); the tokenizer metadata is copied from a real model so both engines load the file.

import Foundation
import GGUF
import Platform
import Kernels
import Models

public struct SyntheticModelSpec: Sendable {
    public var architecture = "llama"
    public var hidden = 2048
    public var layers = 24
    public var heads = 16
    public var kvHeads = 4
    public var feedForward = 5632
    public var type: GGMLType = .q4_K
    public var seed: UInt64 = 1
    /// deepseek2 and glm-dsa: MoE shape (the first `leadingDense` layers dense) and MLA shape; attention
    /// matrices use `attentionType` (the per-head 128-wide k_b rows do not fit 256-value K-quant blocks).
    public var experts = 64
    public var expertsUsed = 6
    public var expertFeedForward = 1024
    public var sharedExperts = 1
    public var leadingDense = 1
    public var qLoraRank = 768
    public var kvLoraRank = 512
    public var ropeDim = 64
    public var nopeDim = 128
    public var valueDim = 128
    public var attentionType: GGMLType = .q8_0
    /// Popularity skew of the routed experts: the router's correction bias of the expert of rank r (a
    /// per-layer permutation) is lowered by skew · ln(r + 1), so a few experts are chosen far more
    /// often than the rest (Zipf-like, as in real MoE models). 0: uniform.
    public var routerSkew: Float = 0
    /// deepseek4 only: the DeepSeek-V4 shapes (SyntheticDeepSeek4.swift); `type` is then the routed
    /// experts' type and `attentionType` that of the attention, compressor and shared-expert matrices.
    public var deepseek4 = SyntheticDeepSeek4Shape()
    /// glm-dsa only: deepseek2's shapes (the options above) plus the lightning indexer (SyntheticGLMDSA.swift).
    public var glmDSA = SyntheticGLMDSAShape()
    /// qwen35moe only: the linear- and full-attention shapes (SyntheticQwen35MoE.swift); `type` is the routed
    /// experts' type and `attentionType` that of every other matrix (embeddings and shared expert included).
    public var qwen35moe = SyntheticQwen35MoEShape()
    /// gemma4 only: attention, per-layer-embedding and KV-sharing shapes (SyntheticGemma4.swift); `type` is the
    /// routed experts' type, `attentionType` that of every other matrix, `feedForward` the dense MLP's width.
    public var gemma4 = SyntheticGemma4Shape()
    public init() {}

    /// deepseek2 and glm-dsa: MLA + MoE.
    var isLatentMoE: Bool { architecture == "deepseek2" || architecture == "glm-dsa" }

    public var headDim: Int { hidden / heads }
}

public enum SyntheticModel {
    /// Writes the model; returns the bytes of tensor data.
    @discardableResult
    public static func write(_ spec: SyntheticModelSpec, tokenizerFrom source: GGUFFile, to path: String,
                             log: (String) -> Void = { _ in }) throws -> Int {
        if spec.architecture == "deepseek4" { return try writeDeepSeek4(spec, tokenizerFrom: source, to: path, log: log) }
        if spec.architecture == "gemma4" { return try writeGemma4(spec, tokenizerFrom: source, to: path, log: log) }
        if spec.architecture == "qwen35moe" { return try writeQwen35MoE(spec, tokenizerFrom: source, to: path, log: log) }
        let t = spec.type
        guard Kernels.isSupported(t), t != .q8_K else {
            throw GGUFError(file: path, field: "type", message: "\(t.name) cannot be written")
        }
        var sizes = [("hidden", spec.hidden), ("feed-forward", spec.feedForward)]
        if spec.isLatentMoE { sizes.append(("expert feed-forward", spec.expertFeedForward)) }
        if spec.architecture == "glm-dsa" { try checkGLMDSA(spec, path: path) }
        for (what, n) in sizes where n % t.blockSize != 0 {
            throw GGUFError(file: path, field: what, message: "\(what) size \(n) is not a multiple of the \(t.name) block size \(t.blockSize)")
        }
        guard spec.heads > 0, spec.kvHeads > 0, spec.heads % spec.kvHeads == 0, spec.hidden % spec.heads == 0 else {
            throw GGUFError(file: path, field: "heads", message: "heads must divide hidden and be a multiple of kv-heads")
        }
        let vocab = try tokenizerVocab(source)
        let a = spec.architecture
        var w = GGUFWriter()
        w.set("general.architecture", .string(a))
        w.set("general.name", .string("synthetic \(a) \(spec.hidden)x\(spec.layers) \(t.name)"))
        w.set("general.size_label", .string("synthetic"))
        w.set("\(a).block_count", .uint32(UInt32(spec.layers)))
        w.set("\(a).context_length", .uint32(4096))
        w.set("\(a).embedding_length", .uint32(UInt32(spec.hidden)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(spec.feedForward)))
        w.set("\(a).attention.head_count", .uint32(UInt32(spec.heads)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(spec.kvHeads)))
        w.set("\(a).rope.freq_base", .float32(10000))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("\(a).rope.dimension_count", .uint32(UInt32(spec.headDim)))
        w.set("\(a).vocab_size", .uint32(UInt32(vocab)))
        if spec.isLatentMoE { setDeepSeekMetadata(spec, &w) }
        if a == "glm-dsa" { setGLMDSAMetadata(spec, &w) }
        for key in source.metadataKeys where key.hasPrefix("tokenizer.") && key != "tokenizer.chat_template" {
            w.set(key, source[key]!)
        }
        let rows = SyntheticRows(seed: spec.seed)
        let random = rows.random
        /// W[rows, cols] (× `count` for a 3-D expert tensor [cols, rows, count]).
        func matrix(_ name: String, rows r: Int, cols: Int, count: Int = 1, type: GGMLType? = nil) throws {
            let type = type ?? t
            try w.addTensor(name: name, dims: count == 1 ? [cols, r] : [cols, r, count], type: type,
                            produce: rows.matrix(rows: r, cols: cols, count: count, type: type))
        }
        func ones(_ name: String, _ n: Int) throws { try w.addTensor(name: name, dims: [n], floats: Array(repeating: 1, count: n)) }
        typealias T = TensorName
        let e = spec.hidden, kv = spec.kvHeads * spec.headDim
        try matrix(T.tokenEmbedding.name, rows: vocab, cols: e)
        try ones(T.outputNorm.name, e)
        try matrix(T.output.name, rows: vocab, cols: e)
        if spec.isLatentMoE {
            var floatTensors: [(String, [Int], [Float])] = []
            try writeDeepSeekLayers(spec, matrix: matrix, ones: ones, floats: { floatTensors.append(($0, $1, $2)) }, random: random)
            for (name, dims, values) in floatTensors { try w.addTensor(name: name, dims: dims, floats: values) }
        } else {
            for l in 0..<spec.layers {
                try ones(T.attnNorm(l).name, e)
                try matrix(T.attnQ(l).name, rows: e, cols: e)
                try matrix(T.attnK(l).name, rows: kv, cols: e)
                try matrix(T.attnV(l).name, rows: kv, cols: e)
                try matrix(T.attnOutput(l).name, rows: e, cols: e)
                try ones(T.ffnNorm(l).name, e)
                try matrix(T.ffnGate(l).name, rows: spec.feedForward, cols: e)
                try matrix(T.ffnUp(l).name, rows: spec.feedForward, cols: e)
                try matrix(T.ffnDown(l).name, rows: e, cols: spec.feedForward)
            }
        }
        return try finish(w, path: path, detail: nil, log: log)
    }

    /// DeepSeek-V3-shaped hyper-parameters: MLA (absorbed-form key lengths, as llama.cpp's converter
    /// writes them), sigmoid routing with correction bias, normalised weights × 2.5, shared experts
    /// (keys under `spec.architecture`; glm-dsa has no gating key: sigmoid is its default).
    static func setDeepSeekMetadata(_ spec: SyntheticModelSpec, _ w: inout GGUFWriter) {
        let a = spec.architecture
        func u(_ key: String, _ v: Int) { w.set("\(a).\(key)", .uint32(UInt32(v))) }
        u("attention.head_count_kv", 1)
        u("attention.key_length", spec.kvLoraRank + spec.ropeDim)
        u("attention.value_length", spec.kvLoraRank)
        u("attention.key_length_mla", spec.nopeDim + spec.ropeDim)
        u("attention.value_length_mla", spec.valueDim)
        u("attention.q_lora_rank", spec.qLoraRank)
        u("attention.kv_lora_rank", spec.kvLoraRank)
        u("rope.dimension_count", spec.ropeDim)
        u("leading_dense_block_count", spec.leadingDense)
        u("expert_count", spec.experts)
        u("expert_used_count", spec.expertsUsed)
        u("expert_group_count", 1)
        u("expert_group_used_count", 1)
        if a == "deepseek2" { u("expert_gating_func", 2) }
        u("expert_feed_forward_length", spec.expertFeedForward)
        u("expert_shared_count", spec.sharedExperts)
        w.set("\(a).expert_weights_scale", .float32(2.5))
        w.set("\(a).expert_weights_norm", .bool(true))
    }

    static func writeDeepSeekLayers(_ spec: SyntheticModelSpec,
                                    matrix: (String, Int, Int, Int, GGMLType?) throws -> Void,
                                    ones: (String, Int) throws -> Void, floats: (String, [Int], [Float]) -> Void,
                                    random: (Int) -> [Float]) throws {
        typealias T = TensorName
        typealias M = MoETensorName
        let e = spec.hidden, h = spec.heads, at = spec.attentionType
        let ff = spec.expertFeedForward, n = spec.experts
        for l in 0..<spec.layers {
            try ones(T.attnNorm(l).name, e)
            if spec.qLoraRank > 0 {
                try matrix(M.qA(l).name, spec.qLoraRank, e, 1, at)
                try ones(M.qANorm(l).name, spec.qLoraRank)
                try matrix(M.qB(l).name, h * (spec.nopeDim + spec.ropeDim), spec.qLoraRank, 1, at)
            } else {
                try matrix(T.attnQ(l).name, h * (spec.nopeDim + spec.ropeDim), e, 1, at)
            }
            try matrix(M.kvAWithRope(l).name, spec.kvLoraRank + spec.ropeDim, e, 1, at)
            try ones(M.kvANorm(l).name, spec.kvLoraRank)
            try matrix(M.kB(l).name, spec.kvLoraRank, spec.nopeDim, h, at)
            try matrix(M.vB(l).name, spec.valueDim, spec.kvLoraRank, h, at)
            try matrix(T.attnOutput(l).name, e, h * spec.valueDim, 1, at)
            if spec.architecture == "glm-dsa" {
                try writeGLMDSAIndexer(spec, layer: l, matrix: matrix, ones: ones, floats: floats, random: random)
            }
            try ones(T.ffnNorm(l).name, e)
            if l < spec.leadingDense {
                try matrix(T.ffnGate(l).name, spec.feedForward, e, 1, nil)
                try matrix(T.ffnUp(l).name, spec.feedForward, e, 1, nil)
                try matrix(T.ffnDown(l).name, e, spec.feedForward, 1, nil)
            } else {
                floats(M.router(l).name, [e, n], random(e * n).map { $0 * 10 })
                floats(M.correctionBias(l).name, [n], correctionBias(noise: random(n), layer: l, skew: spec.routerSkew))
                try matrix(M.gateExperts(l).name, ff, e, n, nil)
                try matrix(M.upExperts(l).name, ff, e, n, nil)
                try matrix(M.downExperts(l).name, e, ff, n, nil)
                let sf = ff * spec.sharedExperts
                try matrix(M.sharedGate(l).name, sf, e, 1, nil)
                try matrix(M.sharedUp(l).name, sf, e, 1, nil)
                try matrix(M.sharedDown(l).name, e, sf, 1, nil)
            }
        }
    }
}

/// Seeded random weights: values ~U(-0.035, 0.035) (about N(0, 0.02) in size) from an LCG, and per
/// (type, row length) a pool of 16 distinct random rows quantized once; a matrix cycles through its
/// pool in a scrambled order. Speed depends on bytes and shapes, not on the values.
final class SyntheticRows {
    private var state: UInt64
    private var pools: [String: [[UInt8]]] = [:]

    init(seed: UInt64) { state = seed }

    func random(_ n: Int) -> [Float] {
        (0..<n).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Float(state >> 40) / Float(1 << 24) - 0.5
            return u * 0.07  // ~N(0, 0.02)-sized
        }
    }

    /// A uniform integer in 0..<n from the same generator.
    func int(_ n: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(n))
    }

    func pool(cols: Int, type: GGMLType) -> [[UInt8]] {
        let key = "\(type.name)/\(cols)"
        if let p = pools[key] { return p }
        var rows: [[UInt8]] = []
        for _ in 0..<16 {
            let values = random(cols)
            if type == .f32 {
                rows.append(values.withUnsafeBytes { Array($0) })
            } else if Kernels.hasQuantizer(type) {
                rows.append(Kernels.quantizeReference(values, to: type))
            } else {
                // The codebook i-quants have no reference quantizer (their grid searches are also slow):
                // random codes at the values' root mean square.
                let rms = (values.reduce(0) { $0 + $1 * $1 } / Float(cols)).squareRoot()
                rows.append(Kernels.randomBlocks(type, count: cols, seed: UInt64(int(1 << 30)), rms: rms)!)
            }
        }
        pools[key] = rows
        return rows
    }

    /// The bytes of W[rows, cols] × count, made when the file is written (the pool is drawn now).
    func matrix(rows: Int, cols: Int, count: Int = 1, type: GGMLType) -> () -> [UInt8] {
        let p = pool(cols: cols, type: type)
        return {
            var out: [UInt8] = []
            out.reserveCapacity(rows * count * p[0].count)
            for r in 0..<(rows * count) { out.append(contentsOf: p[Int(UInt32(truncatingIfNeeded: r &* 2_654_435_761) >> 28)]) }
            return out
        }
    }
}

/// What fills a tensor of a layout-described model (deepseek4, qwen35moe, gemma4).
enum SyntheticFill {
    /// Rows from the random pool of `type` (dims [cols, rows] or [cols, rows, count]).
    case matrix(GGMLType)
    case ones
    /// F32 uniform random values × scale + offset.
    case random(Float, Float)
    case values([Float])
    /// exp_probs_b of layer L: noise − skew · ln(rank + 1) (a per-layer permutation of the ranks).
    case correctionBias(layer: Int)
    /// I32 [used, vocab]: `used` distinct random experts per token id.
    case hashTable
    /// The router [e, n] of layer L: the row of the expert of rank r scaled by (r + 1)^−skew.
    case router(layer: Int)
}

/// Every tensor of a model (spec, vocab) in file order, with its ggml dims and fill.
typealias SyntheticLayout = (SyntheticModelSpec, Int, (String, [Int], SyntheticFill) throws -> Void) throws -> Void

extension SyntheticModel {
    /// The layout of a layout-described architecture, nil for the others.
    static func layout(of architecture: String) -> SyntheticLayout? {
        switch architecture {
        case "deepseek4": return deepSeek4Layout
        case "qwen35moe": return qwen35MoELayout
        case "gemma4": return gemma4Layout
        default: return nil
        }
    }

    static func tensorBytes(_ dims: [Int], _ fill: SyntheticFill) -> Int {
        let count = dims.reduce(1, *)
        if case .matrix(let t) = fill { return t.byteCount(elements: count) ?? 0 }
        return 4 * count
    }

    /// Bytes of tensor data of the deepseek4, qwen35moe or gemma4 model `spec` with a `vocab`-token vocabulary.
    public static func totalBytes(_ spec: SyntheticModelSpec, vocab: Int) -> Int {
        var total = 0
        try? layout(of: spec.architecture)?(spec, vocab) { _, dims, fill in total += tensorBytes(dims, fill) }
        return total
    }

    /// The layer counts `layers(toFit:)` tries: gemma4 needs its KV-shared layers + 2, deepseek4 a compress
    /// ratio per layer when they are given.
    static func layerRange(_ spec: SyntheticModelSpec) -> (first: Int, last: Int) {
        switch spec.architecture {
        case "gemma4": return (spec.gemma4.sharedKVLayers + 2, 4096)
        case "deepseek4": return (1, min(4096, spec.deepseek4.compressRatios?.count ?? 4096))
        default: return (1, 4096)
        }
    }

    /// The layer count whose deepseek4, qwen35moe or gemma4 model is closest to `bytes` (at least the
    /// first of `layerRange`).
    public static func layers(toFit bytes: Int, _ spec: SyntheticModelSpec, vocab: Int) -> Int {
        let (first, last) = layerRange(spec)
        var s = spec, best = first, bestMiss = Int.max
        guard last >= first else { return first }
        for layers in first...last {
            s.layers = layers
            let size = totalBytes(s, vocab: vocab)
            if abs(size - bytes) < bestMiss { best = layers; bestMiss = abs(size - bytes) }
            if size > bytes { break }
        }
        return best
    }

    /// The vocabulary size of the tokenizer to copy.
    static func tokenizerVocab(_ source: GGUFFile) throws -> Int {
        guard let tokens = source["tokenizer.ggml.tokens"]?.array, !tokens.isEmpty else {
            throw GGUFError(file: source.path, field: "tokenizer.ggml.tokens", message: "no tokenizer to copy")
        }
        return tokens.count
    }

    /// Throws unless `spec.type`, `spec.attentionType` and `moreTypes` can be written, the hidden size (in
    /// both types), the expert feed-forward (in `spec.type`) and every row length of `rowLengths` hold whole
    /// blocks of their types, and the experts used are 1 ... experts (the frontier MoE generators).
    static func checkTypes(_ spec: SyntheticModelSpec, moreTypes: [(String, GGMLType)] = [], rowLengths: [(GGMLType, String, Int)],
                           path: String) throws {
        for (what, t) in [("type", spec.type), ("attention type", spec.attentionType)] + moreTypes {
            guard Kernels.isSupported(t), t != .q8_K, t != .i32 else {
                throw GGUFError(file: path, field: what, message: "\(t.name) cannot be written")
            }
        }
        let common = [(spec.type, "hidden", spec.hidden), (spec.type, "expert feed-forward", spec.expertFeedForward),
                      (spec.attentionType, "hidden", spec.hidden)]
        for (t, what, n) in common + rowLengths where n % t.blockSize != 0 {
            throw GGUFError(file: path, field: what, message: "\(what) \(n) is not a multiple of the \(t.name) block size \(t.blockSize)")
        }
        guard spec.experts > 0, spec.expertsUsed > 0, spec.expertsUsed <= spec.experts else {
            throw GGUFError(file: path, field: "experts", message: "experts used (\(spec.expertsUsed)) must be in 1...\(spec.experts)")
        }
    }

    /// The general.* keys and the first three architecture keys every layout-described model starts with.
    static func setHeader(_ a: String, _ spec: SyntheticModelSpec, _ w: inout GGUFWriter) {
        w.set("general.architecture", .string(a))
        w.set("general.type", .string("model"))
        w.set("general.name", .string("synthetic \(a) \(spec.hidden)x\(spec.layers) \(spec.experts)e \(spec.type.name)"))
        w.set("general.size_label", .string("synthetic"))
        w.set("\(a).block_count", .uint32(UInt32(spec.layers)))
        w.set("\(a).context_length", .uint32(4096))
        w.set("\(a).embedding_length", .uint32(UInt32(spec.hidden)))
    }

    /// The layer-norm epsilon (1e-6), expert counts, key = value head size and file type, in qwen35moe's and
    /// gemma4's order.
    static func setNormExpertsAndHeadSize(_ a: String, _ spec: SyntheticModelSpec, headDim: Int, _ w: inout GGUFWriter) {
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-6))
        w.set("\(a).expert_count", .uint32(UInt32(spec.experts)))
        w.set("\(a).expert_used_count", .uint32(UInt32(spec.expertsUsed)))
        w.set("\(a).attention.key_length", .uint32(UInt32(headDim)))
        w.set("\(a).attention.value_length", .uint32(UInt32(headDim)))
        if let ft = fileType(spec.type) { w.set("general.file_type", .uint32(ft)) }
    }

    /// exp_probs_b of layer `l`: `noise` lowered by skew · ln(rank + 1), the ranks a per-layer permutation.
    static func correctionBias(noise: [Float], layer l: Int, skew: Float) -> [Float] {
        let n = noise.count
        return (0..<n).map { x in
            let rank = (x * 37 + l * 11) % n
            return noise[x] - skew * logf(Float(rank + 1))
        }
    }

    /// Writes a layout-described model: the metadata `setMetadata` sets, then every tokenizer.* key of
    /// `source` (the chat template only with `chatTemplate`), then the tensors of `layout`; returns the
    /// bytes of tensor data.
    static func writeLayout(_ spec: SyntheticModelSpec, tokenizerFrom source: GGUFFile, to path: String, chatTemplate: Bool,
                            setMetadata: (SyntheticModelSpec, inout GGUFWriter) -> Void, layout: SyntheticLayout,
                            detail: String, log: (String) -> Void) throws -> Int {
        let vocab = try tokenizerVocab(source)
        var w = GGUFWriter()
        setMetadata(spec, &w)
        for key in source.metadataKeys where key.hasPrefix("tokenizer.") && (chatTemplate || key != "tokenizer.chat_template") {
            w.set(key, source[key]!)
        }
        let rows = SyntheticRows(seed: spec.seed)
        func floats(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
        let n = spec.experts, used = spec.expertsUsed, skew = spec.routerSkew
        try layout(spec, vocab) { name, dims, fill in
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
                // Drawn when written (in file order), so large F32 tensors are not held in memory.
                try w.addTensor(name: name, dims: dims, type: .f32) { floats(rows.random(count).map { $0 * scale + offset }) }
            case .correctionBias(let l):
                try w.addTensor(name: name, dims: dims, type: .f32, data: floats(correctionBias(noise: rows.random(n), layer: l, skew: skew)))
            case .hashTable:
                var table = [Int32](repeating: 0, count: count)
                for t in 0..<vocab {
                    var chosen = Set<Int>()
                    while chosen.count < used { chosen.insert(rows.int(n)) }
                    for (i, x) in chosen.sorted().enumerated() { table[t * used + i] = Int32(x) }
                }
                try w.addTensor(name: name, dims: dims, type: .i32, data: table.withUnsafeBytes { Array($0) })
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
        return try finish(w, path: path, detail: detail, log: log)
    }

    /// Logs what is written (with `detail` in parentheses when given), writes the file, returns the bytes of tensor data.
    static func finish(_ w: GGUFWriter, path: String, detail: String?, log: (String) -> Void) throws -> Int {
        let total = w.tensors.reduce(0) { $0 + $1.byteCount }
        log(String(format: "writing %@: %d tensors, %.2f GB of weights", path, w.tensors.count, Double(total) / 1e9)
            + (detail.map { " (\($0))" } ?? ""))
        let bar = TerminalProgress("synth", total: Int64(total), unit: .bytes)
        defer { bar.finish() }
        try w.write(to: path) { done, _ in bar.update(done) }
        return total
    }
}
