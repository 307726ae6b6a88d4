// gemma4 (text): per-layer shapes (sliding layers: head dim key_length_swa, RoPE base freq_base_swa;
// full layers: key_length, proportional RoPE from rope_freqs, K = V when attn_v is absent), q/k RMSNorm
// and a weightless V norm, attention scale 1, per-layer embeddings (PLE), the last shared_kv_layers
// layers reading an earlier layer's K/V, a dense GELU MLP plus a MoE block per layer, a layer scalar on
// the whole residual, tied embeddings and a final softcap. Norm weights are used as stored (no 1 + w).
// Spec and pitfalls: docs/models/gemma4.md.
//   h  = embed(token) · √E;  ple_l = ((W_ple · h / √E → rmsnorm per layer slice) + table[token]_l · √P) / √2
//   per layer: h += post_attn_norm(attn(attn_norm(h)))
//              m = post_ffw_norm_1(MLP(ffn_norm(h))) + post_ffw_norm_2(MoE(pre_ffw_norm_2(h); router(h)))
//              h += post_ffw_norm(m);  h += post_norm(W_proj · (gelu(W_gate · h) ⊙ ple_l));  h ·= scalar_l
//   logits = 30 · tanh(W_embᵀ · norm(h) / 30)

import GGUF
import Kernels
import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct Gemma4Config: Sendable {
    public struct Layer: Sendable {
        public var sliding: Bool
        public var headDim: Int
        public var kvHeads: Int
        public var feedForward: Int
        /// KV cache layer this layer reads (its own when it writes one).
        public var kvLayer: Int
        public var ownsKV: Bool
    }
    public var layers: [Layer]
    /// KV layers (layers that write K/V).
    public var kvLayers: Int
    public var window: Int
    /// Per-layer embedding width (0: none).
    public var perLayerInput: Int
    var kvRowFloats: Int { layers.map { $0.kvHeads * $0.headDim }.max() ?? 0 }
}

struct Gemma4LayerWeights: @unchecked Sendable {
    var attnNorm, qNorm, postAttentionNorm, ffnNorm, postFFNNorm: FloatBuffer
    var kNorm: FloatBuffer?
    var wq, wo: WeightMatrix
    var wk, wv: WeightMatrix?
    var mlp: DenseFFNWeights
    /// MoE branch: its norms, the router input scale (already divided by √E) and the experts.
    var moe: MoEWeights?
    var postFFN1, preFFN2, postFFN2, routerScale: FloatBuffer?
    var inputGate, projection: WeightMatrix?
    var postNorm: FloatBuffer?
    var layerScale: Float
}

struct Gemma4Weights: @unchecked Sendable {
    var layers: [Gemma4LayerWeights]
    var perLayerTable: WeightMatrix?
    var perLayerProjection: WeightMatrix?
    var perLayerNorm: FloatBuffer?
    var ropeSliding: Rope
    var ropeFull: Rope
}

public enum Gemma4Architecture: Architecture {
    public static let name = "gemma4"

    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        let meta = ArchitectureMetadata(gguf, architecture: name)
        func value(_ key: String) -> GGUFValue? { meta[key] }
        let n = config.layerCount
        /// A per-layer key given as an array or one scalar.
        func perLayer(_ key: String, _ fallback: Int) -> [Int] {
            if let a = value(key)?.intArray, a.count >= n { return Array(a.prefix(n)) }
            return Array(repeating: value(key)?.int ?? fallback, count: n)
        }
        let pattern: [Bool] = value("attention.sliding_window_pattern")?.array.map { $0.prefix(n).map { $0.bool ?? false } }
            ?? Array(repeating: false, count: n)
        guard pattern.count == n, let window = value("attention.sliding_window")?.int, window > 0 else {
            throw ModelError.missingMetadata(file: gguf.path, key: "\(name).attention.sliding_window(_pattern)")
        }
        let fullDim = value("attention.key_length")?.int ?? config.headDimK
        let slidingDim = value("attention.key_length_swa")?.int ?? fullDim
        let kvHeads = perLayer("attention.head_count_kv", config.headCount)
        let ffn = perLayer("feed_forward_length", 0)
        let shared = value("attention.shared_kv_layers")?.int ?? 0
        let owners = n - shared
        guard owners > 0, kvHeads.allSatisfy({ $0 > 0 && config.headCount % $0 == 0 }), ffn.allSatisfy({ $0 > 0 }) else {
            throw ModelError.invalidConfig(file: gguf.path, message: "gemma4: \(shared) shared KV layers of \(n), kv heads \(kvHeads), ffn \(ffn)")
        }
        var layers: [Gemma4Config.Layer] = []
        for l in 0..<n {
            // A shared layer reads the last KV-owning layer of its own kind (transformers' rule).
            var source = l
            if l >= owners {
                guard let j = (0..<owners).last(where: { pattern[$0] == pattern[l] }) else {
                    throw ModelError.invalidConfig(file: gguf.path, message: "gemma4: shared layer \(l) has no earlier layer of its kind")
                }
                source = j
            }
            layers.append(.init(sliding: pattern[l], headDim: pattern[l] ? slidingDim : fullDim, kvHeads: kvHeads[source],
                                feedForward: ffn[l], kvLayer: source, ownsKV: l < owners))
        }
        let g = Gemma4Config(layers: layers, kvLayers: owners, window: window,
                             perLayerInput: value("embedding_length_per_layer_input")?.int ?? 0)
        config.embeddingScale = Float(config.embeddingLength).squareRoot()
        config.finalLogitSoftcap = config.finalLogitSoftcap ?? 30
        config.feedForwardLength = ffn.max() ?? 0
        config.headDimK = max(fullDim, slidingDim, g.kvRowFloats)
        config.headDimV = config.headDimK
        config.headCountKV = 1
        config.slidingWindow = window
        var moe: MoEConfig? = nil, moeLayers = Array(repeating: false, count: n)
        if value("expert_count")?.int ?? 0 > 0 {
            var m = try MoEConfig.read(gguf, name, defaultGating: .softmax)
            m.normalizeWeights = true
            moeLayers = try m.locate(in: gguf, layers: n)
            moe = m
        }
        return Gemma4Stack(config: config, gemma: g, moe: moe,
                               weights: try WeightReader(gguf, layout: config.weightLayout).gemma4(config, g, moe: moe, moeLayers: moeLayers))
    }
}

extension WeightReader {
    func gemma4(_ c: ModelConfig, _ g: Gemma4Config, moe: MoEConfig?, moeLayers: [Bool]) throws -> Gemma4Weights {
        typealias G = Gemma4TensorName
        let e = c.embeddingLength, h = c.headCount
        var layers: [Gemma4LayerWeights] = []
        for (l, kind) in g.layers.enumerated() {
            let d = kind.headDim
            var w = Gemma4LayerWeights(
                attnNorm: try vector(.attnNorm(l), count: e), qNorm: try vector(.attnQNorm(l), count: d),
                postAttentionNorm: try vector(.postAttentionNorm(l), count: e), ffnNorm: try vector(.ffnNorm(l), count: e),
                postFFNNorm: try vector(.postFFNNorm(l), count: e), kNorm: nil,
                wq: try matrix(.attnQ(l), rows: h * d, cols: e), wo: try matrix(.attnOutput(l), rows: e, cols: h * d),
                wk: nil, wv: nil,
                mlp: DenseFFNWeights(gate: try matrix(.ffnGate(l), rows: kind.feedForward, cols: e),
                                     up: try matrix(.ffnUp(l), rows: kind.feedForward, cols: e),
                                     down: try matrix(.ffnDown(l), rows: e, cols: kind.feedForward)),
                moe: nil, postFFN1: nil, preFFN2: nil, postFFN2: nil, routerScale: nil,
                inputGate: nil, projection: nil, postNorm: nil, layerScale: 1)
            if kind.ownsKV {
                w.wk = try matrix(.attnK(l), rows: kind.kvHeads * d, cols: e)
                w.wv = has(.attnV(l)) ? try matrix(.attnV(l), rows: kind.kvHeads * d, cols: e) : nil
                w.kNorm = try vector(.attnKNorm(l), count: d)
            }
            if let m = moe, moeLayers[l] {
                var moe = try self.moe(l, c, m)
                moe.expertScale = try vector(named: G.downExpertsScale(l).name, count: m.expertCount)
                w.moe = moe
                w.postFFN1 = try vector(named: G.postFFN1Norm(l).name, count: e)
                w.preFFN2 = try vector(named: G.preFFN2Norm(l).name, count: e)
                w.postFFN2 = try vector(named: G.postFFN2Norm(l).name, count: e)
                let scale = try vector(named: G.routerScale(l).name, count: e)
                let inv = 1 / Float(e).squareRoot()
                for i in 0..<e { scale.pointer[i] *= inv }
                w.routerScale = scale
            }
            if g.perLayerInput > 0 {
                w.inputGate = try matrix(named: G.perLayerInputGate(l).name, rows: g.perLayerInput, cols: e)
                w.projection = try matrix(named: G.perLayerProjection(l).name, rows: e, cols: g.perLayerInput)
                w.postNorm = try vector(named: G.perLayerPostNorm(l).name, count: e)
            }
            if has(G.layerOutputScale(l).name) {
                let scalar = try vector(named: G.layerOutputScale(l).name, count: 1)
                w.layerScale = withExtendedLifetime(scalar) { scalar.pointer[0] }
            }
            layers.append(w)
        }
        let fullDim = g.layers.first(where: { !$0.sliding })?.headDim ?? c.headDimK
        let slidingDim = g.layers.first(where: { $0.sliding })?.headDim ?? c.headDimK
        let factors = has(.ropeFrequencies) ? try vector(.ropeFrequencies, count: fullDim / 2).array : nil
        let swaBase = gguf["gemma4.rope.freq_base_swa"]?.float ?? 10_000
        var weights = Gemma4Weights(
            layers: layers, perLayerTable: nil, perLayerProjection: nil, perLayerNorm: nil,
            ropeSliding: Rope(dimensions: gguf["gemma4.rope.dimension_count_swa"]?.int ?? slidingDim, base: swaBase, style: .neox),
            ropeFull: Rope(dimensions: gguf["gemma4.rope.dimension_count"]?.int ?? fullDim, base: c.ropeBase, style: .neox,
                           frequencyFactors: factors))
        if g.perLayerInput > 0 {
            let width = c.layerCount * g.perLayerInput
            weights.perLayerTable = try matrix(named: G.perLayerTokenEmbedding.name, rows: c.vocabularySize, cols: width)
            weights.perLayerProjection = try matrix(named: G.perLayerModelProjection.name, rows: width, cols: e)
            weights.perLayerNorm = try vector(named: G.perLayerProjectionNorm.name, count: g.perLayerInput)
        }
        return weights
    }
}

/// Per-session Gemma 4 buffers beyond InferenceState's (sized for the largest batch).
final class Gemma4Scratch {
    let moe: MoEScratch?
    let perLayerInputs: FloatBuffer   // [B, L · P]
    let perLayerRow: FloatBuffer      // [L · P] one token's table row
    let gateP: FloatBuffer            // [B, P]
    let branch: FloatBuffer           // [B, e]
    let router: FloatBuffer           // [B, e]
    let slidingTable, fullTable: FloatBuffer   // [B, rope] cos/sin of each token, per kind of layer
    init(config c: ModelConfig, _ g: Gemma4Config, moe: MoEConfig?, maxBatch b: Int) {
        let e = c.embeddingLength
        self.moe = moe.map { MoEScratch(config: $0, embedding: e, maxBatch: b) }
        perLayerInputs = FloatBuffer(count: b * max(1, c.layerCount * g.perLayerInput))
        perLayerRow = FloatBuffer(count: max(1, c.layerCount * g.perLayerInput))
        gateP = FloatBuffer(count: b * max(1, g.perLayerInput))
        branch = FloatBuffer(count: b * e)
        router = FloatBuffer(count: b * e)
        slidingTable = FloatBuffer(count: b * 2 * c.headDimK)
        fullTable = FloatBuffer(count: b * 2 * c.headDimK)
    }
}

/// Gemma 4's layers: per-layer shapes, shared KV, per-layer embeddings, dense MLP + MoE branch.
final class Gemma4Stack: LayerStack, @unchecked Sendable {
    let config: ModelConfig
    let gemma: Gemma4Config
    let moe: MoEConfig?
    let weights: Gemma4Weights

    init(config: ModelConfig, gemma: Gemma4Config, moe: MoEConfig?, weights: Gemma4Weights) {
        self.config = config; self.gemma = gemma; self.moe = moe; self.weights = weights
    }

    var activations: ActivationShape { ActivationShape(config) }
    /// Decode rows are computed as if alone (the multi-row kernels; experts per token when every row is
    /// a decode row), prompt rows by the multi-token kernels; no side state, so drafts roll back by
    /// truncating the KV.
    var exactDecodeRows: Bool { true }

    func makeScratch(maxBatch: Int, threads: Int) -> AnyObject? { Gemma4Scratch(config: config, gemma, moe: moe, maxBatch: maxBatch) }

    /// One KV layer per layer that writes K/V (shared layers read another's), rows as wide as the widest
    /// layer's; sliding layers keep their window.
    func kvShape(type: KVType) -> KVShape {
        let g = gemma, owners = g.layers.filter(\.ownsKV)
        return KVShape(layers: g.kvLayers, kRowFloats: g.kvRowFloats, vRowFloats: g.kvRowFloats, type: type,
                       retention: owners.map { $0.sliding ? .window(g.window) : .all })
    }

    func kvTypeProblem(_ type: KVType) -> String? { Self.blockProblem(type, headSizes: [config.headDimK, config.headDimV]) }

    var moeBlocks: [(layer: Int, weights: MoEWeights)] { weights.layers.enumerated().compactMap { l, w in w.moe.map { (l, $0) } } }

    var weightBytesPerToken: Int {
        func bytes(_ m: WeightMatrix) -> Int { m.rows * m.rowBytes }
        var total = 0
        for l in weights.layers {
            for m in [l.wq, l.wo, l.mlp.gate, l.mlp.up, l.mlp.down] + [l.wk, l.wv, l.inputGate, l.projection].compactMap({ $0 }) { total += bytes(m) }
            if let moe = l.moe { total += moe.bytesPerToken() }
        }
        return total
    }

    func forward(_ p: ForwardPass) {
        let s = p.state, T = p.count, tokens = p.tokens, segments = p.segments, x = s.scratch(Gemma4Scratch.self), ops = s.ops
        let c = config, g = gemma, e = c.embeddingLength, eps = c.rmsEpsilon
        let h = RowBlock(s.x, rows: T, width: e), xn = RowBlock(s.xn, rows: T, width: e), o = RowBlock(s.o, rows: T, width: e)
        // Batch-invariant products: leading decode rows as if alone, prompt rows multi-token.
        let mode = ProductMode.invariant(decodeRows: p.decodeRows)
        // RoPE cos/sin of every token, once per call for each kind of layer.
        for t in 0..<T {
            weights.ropeSliding.fill(x.slidingTable.pointer + t * weights.ropeSliding.dimensions, position: s.positions[t])
            weights.ropeFull.fill(x.fullTable.pointer + t * weights.ropeFull.dimensions, position: s.positions[t])
        }
        p.embedAll(into: h)
        // Per-layer inputs: (rmsnorm_slice(W_ple · h / √E) + table[token] · √P) / √2.
        let P = g.perLayerInput, L = c.layerCount
        if P > 0, let table = weights.perLayerTable, let proj = weights.perLayerProjection, let norm = weights.perLayerNorm {
            let ple = RowBlock(x.perLayerInputs.pointer, rows: T * L, width: P)
            ops.multiply(proj, s.x, tokens: T, into: ple.base, mode: mode)
            ops.scale(ple, by: 1 / Float(e).squareRoot())
            ops.rmsNorm(ple, weight: norm.pointer, into: ple, epsilon: eps)
            let row = x.perLayerRow.pointer
            for t in 0..<T {
                ops.gatherRows(table, indices: tokens + t, into: RowBlock(row, rows: 1, width: L * P), scale: nil)
                ops.addScaled(RowBlock(row, rows: L, width: P), times: Float(P).squareRoot(),
                              into: RowBlock(ple.base + t * L * P, rows: L, width: P), thenScale: 1 / Float(2).squareRoot())
            }
        }
        for (l, w) in weights.layers.enumerated() {
            let kind = g.layers[l]
            ops.rmsNorm(h, weight: w.attnNorm.pointer, into: xn, epsilon: eps)
            gemma4Attention(w, kind: kind, tokens: T, segments: segments, weights: weights, state: s, scratch: x, mode: mode)
            ops.rmsNorm(o, weight: w.postAttentionNorm.pointer, into: o, epsilon: eps)
            ops.add(o, into: h)
            ops.rmsNorm(h, weight: w.ffnNorm.pointer, into: xn, epsilon: eps)
            // Dense GELU MLP → o.
            ops.multiplyGated(gate: w.mlp.gate, up: w.mlp.up, s.xn, tokens: T, activation: .geglu, into: s.gate, scratch: s.up, mode: mode)
            ops.multiply(w.mlp.down, s.gate, tokens: T, into: s.o, mode: mode)
            if let moe = w.moe, let p1 = w.postFFN1, let pre2 = w.preFFN2, let p2 = w.postFFN2, let rs = w.routerScale, let moeScratch = x.moe {
                let branch = RowBlock(x.branch.pointer, rows: T, width: e), router = RowBlock(x.router.pointer, rows: T, width: e)
                ops.rmsNorm(o, weight: p1.pointer, into: o, epsilon: eps)
                ops.rmsNorm(h, weight: rs.pointer, into: router, epsilon: eps)
                ops.rmsNorm(h, weight: pre2.pointer, into: xn, epsilon: eps)
                MoEBlock.forward(s.xn, tokens: T, into: branch.base, weights: moe, embedding: e, activation: .geluTanh,
                                 scratch: moeScratch, ops: ops, mode: p.decodeRows >= T ? .perTokenBelow(Int.max) : .batched,
                                 layer: l, cache: p.experts, routerInput: router.base, shard: p.shard)
                ops.rmsNorm(branch, weight: p2.pointer, into: branch, epsilon: eps)
                ops.add(branch, into: o)
            }
            ops.rmsNorm(o, weight: w.postFFNNorm.pointer, into: o, epsilon: eps)
            ops.add(o, into: h)
            // Per-layer input: h += post_norm(W_proj · (gelu(W_gate · h) ⊙ ple_l)).
            if P > 0, let ig = w.inputGate, let pr = w.projection, let pn = w.postNorm {
                let gp = RowBlock(x.gateP.pointer, rows: T, width: P)
                ops.multiply(ig, s.x, tokens: T, into: gp.base, mode: mode)
                ops.gatedActivation(.geglu, gate: gp, up: RowBlock(x.perLayerInputs.pointer + l * P, rows: T, width: P, stride: L * P))
                ops.multiply(pr, gp.base, tokens: T, into: s.o, mode: mode)
                ops.rmsNorm(o, weight: pn.pointer, into: o, epsilon: eps)
                ops.add(o, into: h)
            }
            if w.layerScale != 1 { ops.scale(h, by: w.layerScale) }
        }
    }

    /// s.o = W_o · attention of layer `kind` over its KV layer (written first when the layer owns it).
    private func gemma4Attention(_ w: Gemma4LayerWeights, kind: Gemma4Config.Layer, tokens T: Int, segments: [BatchSegment],
                                 weights: Gemma4Weights, state s: InferenceState, scratch x: Gemma4Scratch, mode: ProductMode) {
        let c = config, eps = c.rmsEpsilon, ops = s.ops
        let d = kind.headDim, hq = c.headCount, hkv = kind.kvHeads
        let q = s.q, k = s.k, v = s.v
        let rope = kind.sliding ? weights.ropeSliding : weights.ropeFull
        let table = kind.sliding ? x.slidingTable.pointer : x.fullTable.pointer, ropeStride = rope.dimensions
        ops.multiply(w.wq, s.xn, tokens: T, into: q, mode: mode)
        let qHeads = RowBlock(q, rows: T * hq, width: d)
        ops.rmsNorm(qHeads, weight: w.qNorm.pointer, into: qHeads, epsilon: eps)
        ops.rotate(RowBlock(q, rows: T, width: hq * d), heads: hq, headDim: d, rope: rope, tables: table, tableStride: ropeStride)
        if kind.ownsKV, let wk = w.wk, let kn = w.kNorm {
            if let wv = w.wv { ops.multiply([(wk, k), (wv, v)], s.xn, tokens: T, mode: mode) } else {
                ops.multiply(wk, s.xn, tokens: T, into: k, mode: mode)
                v.update(from: k, count: T * hkv * d)   // K = V: the raw projection
            }
            let kHeads = RowBlock(k, rows: T * hkv, width: d), vHeads = RowBlock(v, rows: T * hkv, width: d)
            ops.rmsNorm(kHeads, weight: kn.pointer, into: kHeads, epsilon: eps)
            ops.rmsNorm(vHeads, weight: nil, into: vHeads, epsilon: eps)
            ops.rotate(RowBlock(k, rows: T, width: hkv * d), heads: hkv, headDim: d, rope: rope, tables: table, tableStride: ropeStride)
            let row = gemma.kvRowFloats
            for t in 0..<T {
                let kt = k + t * hkv * d, vt = v + t * hkv * d
                let cache = segments[Int(s.rowSegment[t])].cache, pos = s.positions[t]
                if hkv * d == row {
                    cache.storeK(kind.kvLayer, pos, kt)
                    cache.storeV(kind.kvLayer, pos, vt)
                } else {
                    // Rows are as wide as the widest layer's: pad.
                    let pad = s.att + t * hq * d
                    pad.update(repeating: 0, count: row); pad.update(from: kt, count: hkv * d); cache.storeK(kind.kvLayer, pos, pad)
                    pad.update(repeating: 0, count: row); pad.update(from: vt, count: hkv * d); cache.storeV(kind.kvLayer, pos, pad)
                }
            }
        }
        let span: AttentionSpan = kind.sliding ? .sliding(gemma.window) : .full
        for seg in segments {
            ops.attend(Attention.paged(
                seg.cache, layer: kind.kvLayer, q: q + seg.offset * hq * d, qTokenStride: hq * d, qHeadStride: d,
                out: s.att + seg.offset * hq * d, outTokenStride: hq * d, outHeadStride: d,
                kHeadStride: d, vHeadStride: d, heads: hq, kvHeads: hkv, keyDim: d, valueDim: d),
                tokens: seg.count, startPosition: seg.start, span: span, scale: 1, softcap: 0, prompt: seg.prompt)
        }
        ops.multiply(w.wo, s.att, tokens: T, into: s.o, mode: mode)
    }
}
