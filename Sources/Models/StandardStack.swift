// The llama family's layer stack (llama, qwen2, qwen3, gemma3, qwen3moe, glm4moe, llama4, deepseek2,
// glm-dsa): pre-norm decoder layers,
//   x += [postNorm](attention(norm(x)))   standard (W_o · attn(rope(q), rope(k), v)) or latent (MLA)
//   x += [postNorm](ffn(norm(x)))         dense (W_down · (act(W_gate·x) ⊙ W_up·x)) or mixture of experts
// Optional parts (biases, q/k norms, post-norms) are used when the GGUF has their tensors; what an
// architecture chooses beyond that is one StandardHooks value, filled in its own file.

import GGUF
import Kernels
import KVCache

/// How one llama-family architecture differs from the plain llama layer; each architecture file
/// fills one (defaults: llama).
public struct StandardHooks: Sendable {
    /// RoPE pairs: adjacent (llama.cpp's NORM) or halves (NeoX).
    public var ropeStyle: RopeStyle = .interleaved
    /// The gated FFN's activation.
    public var activation: FFNActivation = .silu
    /// Multiplier on q·k (nil: 1/sqrt(key head size)).
    public var attentionScale: Float? = nil
    /// Norm placement: the FFN input norm is stored as `post_attention_norm` (then there is no
    /// post-attention norm) instead of `ffn_norm`.
    public var ffnNormStoredAsPostAttention = false
    /// Per layer: which positions its queries see.
    public var spans: [AttentionSpan]
    /// Per layer: whether RoPE is applied (false: NoPE, with the attention temperature when set).
    public var ropeLayers: [Bool]
    /// Per layer: whether its RoPE uses the sliding-window base (rope.freq_base_swa).
    public var slidingRopeLayers: [Bool]
    /// RMS-normalise q and k without a weight after RoPE (on RoPE layers).
    public var qkL2Norm = false
    /// Temperature tuning of q on NoPE layers.
    public var attentionTemperature: AttentionTemperature? = nil
    /// Multi-head latent attention instead of standard attention (every layer).
    public var latentAttention: LatentAttentionConfig? = nil
    /// Mixture of experts on the layers that have a router (ffn_gate_inp); the others are dense.
    public var moe: MoEConfig? = nil

    public init(layers n: Int) {
        spans = Array(repeating: .full, count: n)
        ropeLayers = Array(repeating: true, count: n)
        slidingRopeLayers = Array(repeating: false, count: n)
    }
}

/// One decoder layer: pre-norm attention and pre-norm FFN, each with an optional post-norm.
public struct LayerWeights: @unchecked Sendable {
    public var attnNorm: FloatBuffer
    public var attention: AttentionWeights
    public var postAttentionNorm: FloatBuffer?
    public var ffnNorm: FloatBuffer
    public var ffn: FFNWeights
    public var postFFNNorm: FloatBuffer?
}

public enum AttentionWeights: @unchecked Sendable {
    case standard(StandardAttentionWeights)
    case latent(LatentAttentionWeights)
}

/// Q/K/V/O projections with optional biases and per-head q/k norms.
public struct StandardAttentionWeights: @unchecked Sendable {
    public var wq, wk, wv, wo: WeightMatrix
    public var bq, bk, bv, bo: FloatBuffer?
    public var qNorm, kNorm: FloatBuffer?
}

public enum FFNWeights: @unchecked Sendable {
    case dense(DenseFFNWeights)
    case moe(MoEWeights)
}

/// down · (act(gate · x) ⊙ up · x)
public struct DenseFFNWeights: @unchecked Sendable {
    public var gate, up, down: WeightMatrix
}

/// Per-session buffers of the standard stack beyond InferenceState's.
final class StandardScratch {
    private let moeBuffers: MoEScratch?
    private let latentBuffers: LatentAttentionScratch?
    init(moe: MoEScratch?, latent: LatentAttentionScratch?) { moeBuffers = moe; latentBuffers = latent }

    /// The MoE buffers (made when the stack has MoE layers, which alone ask for them).
    var moe: MoEScratch {
        guard let b = moeBuffers else { preconditionFailure("MoE layer in a stack made without MoE buffers") }
        return b
    }
    /// The MoE buffers' activation rows (none without MoE layers).
    var moeRows: [UnsafeMutableRawBufferPointer] { moeBuffers?.deviceRows ?? [] }
    /// The latent-attention buffers (made when the stack uses MLA, which alone asks for them).
    var latent: LatentAttentionScratch {
        guard let b = latentBuffers else { preconditionFailure("latent attention in a stack made without its buffers") }
        return b
    }
}

public final class StandardStack: LayerStack, @unchecked Sendable {
    public let config: ModelConfig
    public let hooks: StandardHooks
    public let layers: [LayerWeights]
    /// The MoE layers' shape as found in the file (shared expert width included); nil: all dense.
    public let moe: MoEConfig?
    let ropeGlobal: Rope
    let ropeSliding: Rope
    let attentionScale: Float

    /// One layer of `trunk`'s kind read from block `block` of `gguf` (an MTP / next-n layer stored
    /// after the trunk), with the trunk's RoPE; its KV is layer 0 of its own cache.
    init(layer block: Int, of trunk: StandardStack, gguf: GGUFFile) throws {
        var c = trunk.config
        c.layerCount = 1
        c.nextNLayers = 0
        config = c
        var h = trunk.hooks
        h.spans = [.full]; h.ropeLayers = [true]; h.slidingRopeLayers = [false]
        hooks = h
        let routed = gguf.tensor(MoETensorName.router(block).name) != nil
        moe = routed ? trunk.moe : nil
        layers = [try WeightReader(gguf, layout: trunk.config.weightLayout).standardLayer(block, trunk.config, trunk.hooks, moe: moe)]
        ropeGlobal = trunk.ropeGlobal
        ropeSliding = trunk.ropeSliding
        attentionScale = trunk.attentionScale
    }

    /// Reads the layers `hooks` describe from `gguf`.
    public init(gguf: GGUFFile, config c: ModelConfig, hooks: StandardHooks) throws {
        config = c
        self.hooks = hooks
        let r = WeightReader(gguf, layout: c.weightLayout)
        var moeLayers = Array(repeating: false, count: c.layerCount)
        if var m = hooks.moe {
            moeLayers = try m.locate(in: gguf, layers: c.layerCount)
            moe = m
        } else {
            moe = nil
        }
        let moe = self.moe
        layers = try (0..<c.layerCount).map { try r.standardLayer($0, c, hooks, moe: moeLayers[$0] ? moe : nil) }
        let factors = r.has(.ropeFrequencies) ? try r.vector(.ropeFrequencies, count: c.ropeDimensions / 2).array : nil
        ropeGlobal = Rope(dimensions: c.ropeDimensions, base: c.ropeBase, style: hooks.ropeStyle, scale: c.ropeScale,
                          frequencyFactors: factors, yarn: c.yarn, magnitude: c.ropeMagnitude)
        ropeSliding = Rope(dimensions: c.ropeDimensions, base: c.ropeBaseSliding ?? c.ropeBase, style: hooks.ropeStyle, scale: 1,
                           frequencyFactors: factors)
        attentionScale = hooks.attentionScale ?? 1 / Float(c.headDimK).squareRoot()
    }

    public var activations: ActivationShape {
        var a = ActivationShape(config)
        if let m = hooks.latentAttention {
            // Widest key/value rows: standard heads, the latent rows, the expanded heads.
            a.attention = config.headCount * max(config.headDimV, m.valueDim)
            a.widestKey = max(config.headDimK, m.cacheRowFloats, m.nopeDim + m.ropeDim)
            a.widestValue = max(config.headDimV, m.kvLoraRank, m.valueDim)
            a.expandedAttentionMinimumTokens = LatentAttentionBlock.expandedMinimumTokens(m)
        }
        return a
    }

    public func makeScratch(maxBatch b: Int, threads: Int) -> AnyObject? {
        StandardScratch(moe: moe.map { MoEScratch(config: $0, embedding: config.embeddingLength, maxBatch: b) },
                        latent: hooks.latentAttention.map { LatentAttentionScratch(config: $0, heads: config.headCount, maxBatch: b, threads: threads) })
    }

    /// KV rows of one position: standard K and V rows, or MLA's one row of latent + rope key (values are
    /// read inside it). Sliding-window and chunked layers keep only what their span reaches.
    public func kvShape(type: KVType) -> KVShape {
        let c = config, m = hooks.latentAttention
        return KVShape(layers: c.layerCount, kRowFloats: m?.cacheRowFloats ?? c.headCountKV * c.headDimK,
                       vRowFloats: m == nil ? c.headCountKV * c.headDimV : 0, type: type, retention: hooks.spans.map(\.retention))
    }

    public func kvTypeProblem(_ type: KVType) -> String? {
        let dims = hooks.latentAttention.map { [$0.kvLoraRank, $0.ropeDim] + ($0.indexer.map { [$0.headDim] } ?? []) }
            ?? [config.headDimK, config.headDimV]
        return Self.blockProblem(type, headSizes: dims)
    }

    /// Products of decode rows (the multi-row kernel, experts too when every row is a decode row) and
    /// attention (decode rows one at a time; MLA in its absorbed form with per-head products one token
    /// at a time) give a decode row its lone bits; there is no side state.
    public var exactDecodeRows: Bool { true }

    /// Standard attention with a dense or MoE FFN: its host accesses are the batch's inputs and each MoE
    /// layer's routing (MoEBlock). Latent attention touches rows on the host in more places: not declared yet.
    public var declaresHostAccess: Bool { hooks.latentAttention == nil }

    public func deviceBuffers(scratch: AnyObject?) -> [UnsafeMutableRawBufferPointer] { (scratch as? StandardScratch)?.moeRows ?? [] }

    public var moeBlocks: [(layer: Int, weights: MoEWeights)] {
        layers.enumerated().compactMap { l, w in
            if case .moe(let f) = w.ffn { return (l, f) }
            return nil
        }
    }

    public var weightBytesPerToken: Int { layerWeightBytes.reduce(0, +) }

    public var runsLayerRanges: Bool { true }

    public var layerWeightBytes: [Int] {
        func bytes(_ m: WeightMatrix) -> Int { m.rows * m.rowBytes }
        return layers.map { l in
            var total = 0
            switch l.attention {
            case .standard(let a): for m in [a.wq, a.wk, a.wv, a.wo] { total += bytes(m) }
            case .latent(let a): total += a.bytesPerToken()
            }
            switch l.ffn {
            case .dense(let f): for m in [f.gate, f.up, f.down] { total += bytes(m) }
            case .moe(let f): total += f.bytesPerToken()
            }
            return total
        }
    }

    public func forward(_ p: ForwardPass) {
        let c = config, s = p.state, T = p.count, ops = s.ops
        let e = c.embeddingLength
        let scratch = s.scratch(StandardScratch.self)
        let x = RowBlock(s.x, rows: T, width: e), xn = RowBlock(s.xn, rows: T, width: e), o = RowBlock(s.o, rows: T, width: e)
        let eps = c.rmsEpsilon
        // Batch-invariant products: leading decode rows one token at a time, prompt rows multi-token.
        let invariant = ProductMode.invariant(decodeRows: p.decodeRows)
        // Embedding rows (or the rows given); RoPE cos/sin per token for both bases.
        ops.hostAccess()
        if let input = p.inputRows { x.base.update(from: input, count: T * e) } else { p.embedAll(into: x) }
        let ropeStride = c.ropeDimensions, positions = s.positions
        s.perToken(T) { t in
            ropeGlobal.fill(s.ropeGlobal + t * ropeStride, position: positions[t])
            ropeSliding.fill(s.ropeSliding + t * ropeStride, position: positions[t])
        }

        let range = p.layers ?? layers.indices
        for l in range {
            let w = layers[l]
            ops.rmsNorm(x, weight: w.attnNorm.pointer, into: xn, epsilon: eps)
            let sliding = hooks.slidingRopeLayers[l]
            let rope = sliding ? ropeSliding : ropeGlobal
            let ropeTable = sliding ? s.ropeSliding : s.ropeGlobal
            switch w.attention {
            case .standard(let a):
                standardAttention(a, layer: l, pass: p, rope: rope, ropeTable: ropeTable, mode: invariant)
            case .latent(let a):
                // One sequence at a time (its own projections); W_o over the whole batch.
                let attStride = c.headCount * a.config.valueDim
                for seg in p.segments {
                    LatentAttentionBlock.forward(s.xn + seg.offset * e, tokens: seg.count, startPosition: seg.start, rowOffset: seg.offset,
                                                 cache: seg.cache,
                                                 layer: l, weights: a, config: a.config, model: c, rope: rope,
                                                 ropeTable: ropeTable + seg.offset * ropeStride, ropeStride: ropeStride,
                                                 state: s, scratch: scratch.latent, into: s.att + seg.offset * attStride,
                                                 mode: .invariant(decodeRows: seg.prompt ? 0 : seg.count))
                }
                ops.multiply(a.wo, s.att, tokens: T, into: s.o, mode: invariant)
            }
            // o [post-norm] added to the residual, then the FFN input norm.
            if let pn = w.postAttentionNorm { ops.rmsNorm(o, weight: pn.pointer, into: o, epsilon: eps) }
            ops.add(o, into: x)
            ops.rmsNorm(x, weight: w.ffnNorm.pointer, into: xn, epsilon: eps)
            switch w.ffn {
            case .dense(let f):
                ops.multiplyGated(gate: f.gate, up: f.up, s.xn, tokens: T, activation: gateActivation, into: s.gate, scratch: s.up,
                                  mode: invariant)
                ops.multiply(f.down, s.gate, tokens: T, into: s.o, mode: invariant)
            case .moe(let f):
                // Expert products group tokens across rows. When every row is a decode row (a decode
                // step, drafts being verified) each expert's rows go through the multi-row kernel, so a
                // row gets the bits it gets alone; with prompt rows in the batch, the multi-token kernel.
                let expertMode = p.decodeRows >= T ? ProductMode.perTokenBelow(Int.max) : .batched
                // With streamed experts, the next MoE layer's router is tried on this layer's input: how
                // well it foresees that layer's experts (what prefetching them would rest on).
                var next: (layer: Int, weights: MoEWeights)? = nil
                if p.experts != nil, let j = ((l + 1)..<range.upperBound).first(where: { if case .moe = layers[$0].ffn { return true }; return false }),
                   case .moe(let nf) = layers[j].ffn { next = (j, nf) }
                MoEBlock.forward(s.xn, tokens: T, into: s.o, weights: f, embedding: e, activation: hooks.activation,
                                 scratch: scratch.moe, ops: s.ops, mode: expertMode, layer: l, cache: p.experts, predictNext: next, shard: p.shard)
            }
            if let pn = w.postFFNNorm { ops.rmsNorm(o, weight: pn.pointer, into: o, epsilon: eps) }
            ops.add(o, into: x)
        }
    }

    /// The dense FFN's activation.
    var gateActivation: GateActivation { hooks.activation == .silu ? .swiglu : .geglu }

    /// o = Wo · attention(q, k, v) of the layer's standard attention; K/V appended to the cache.
    private func standardAttention(_ w: StandardAttentionWeights, layer l: Int, pass p: ForwardPass,
                                   rope: Rope, ropeTable: UnsafeMutablePointer<Float>, mode: ProductMode) {
        let c = config, s = p.state, T = p.count, eps = c.rmsEpsilon, segments = p.segments, ops = s.ops
        let dk = c.headDimK, dv = c.headDimV, h = c.headCount, hkv = c.headCountKV
        let qDim = h * dk, kDim = hkv * dk, vDim = hkv * dv, ropeStride = c.ropeDimensions
        let q = RowBlock(s.q, rows: T, width: qDim), k = RowBlock(s.k, rows: T, width: kDim), v = RowBlock(s.v, rows: T, width: vDim)
        let qHeads = RowBlock(s.q, rows: T * h, width: dk), kHeads = RowBlock(s.k, rows: T * hkv, width: dk)
        ops.multiply([(w.wq, s.q), (w.wk, s.k), (w.wv, s.v)], s.xn, tokens: T, mode: mode)
        // Biases, q/k norms, RoPE (or NoPE temperature), then each token's K/V into its sequence's cache.
        if let b = w.bq { ops.addToRows(b.pointer, q) }
        if let b = w.bk { ops.addToRows(b.pointer, k) }
        if let b = w.bv { ops.addToRows(b.pointer, v) }
        if let qn = w.qNorm { ops.rmsNorm(qHeads, weight: qn.pointer, into: qHeads, epsilon: eps) }
        if let kn = w.kNorm { ops.rmsNorm(kHeads, weight: kn.pointer, into: kHeads, epsilon: eps) }
        if hooks.ropeLayers[l] {
            ops.rotate(q, heads: h, headDim: dk, rope: rope, tables: ropeTable, tableStride: ropeStride)
            ops.rotate(k, heads: hkv, headDim: dk, rope: rope, tables: ropeTable, tableStride: ropeStride)
            if hooks.qkL2Norm {
                ops.rmsNorm(qHeads, weight: nil, into: qHeads, epsilon: eps)
                ops.rmsNorm(kHeads, weight: nil, into: kHeads, epsilon: eps)
            }
        } else if let temperature = hooks.attentionTemperature {
            withUnsafeTemporaryAllocation(of: Float.self, capacity: T) { factors in
                for t in 0..<T { factors[t] = temperature.factor(position: s.positions[t]) }
                ops.scaleRows(q, by: factors.baseAddress!)
            }
        }
        ops.storeKV(layer: l, k: k, v: v, positions: s.positions, segmentOfRow: s.rowSegment, caches: segments.map(\.cache))
        func layout(_ seg: BatchSegment) -> Attention.Layout {
            Attention.paged(seg.cache, layer: l, q: s.q + seg.offset * qDim, qTokenStride: qDim, qHeadStride: dk,
                            out: s.att + seg.offset * h * dv, outTokenStride: h * dv, outHeadStride: dv,
                            kHeadStride: dk, vHeadStride: dv, heads: h, kvHeads: hkv, keyDim: dk, valueDim: dv)
        }
        if segments.count > 1, segments.allSatisfy({ $0.count == 1 && !$0.prompt }) {
            // Decode steps of several sequences: one dispatch, each as its own call would compute it.
            withUnsafeTemporaryAllocation(of: DecodeStep.self, capacity: segments.count) { steps in
                for (i, seg) in segments.enumerated() { steps.initializeElement(at: i, to: DecodeStep(layout: layout(seg), position: seg.start)) }
                ops.attendDecodeSteps(UnsafeBufferPointer(steps), span: hooks.spans[l], scale: attentionScale,
                                      softcap: c.attentionLogitSoftcap ?? 0)
                steps.baseAddress!.deinitialize(count: segments.count)
            }
        } else {
            for seg in segments {
                ops.attend(layout(seg), tokens: seg.count, startPosition: seg.start, span: hooks.spans[l], scale: attentionScale,
                           softcap: c.attentionLogitSoftcap ?? 0, prompt: seg.prompt)
            }
        }
        ops.multiply(w.wo, s.att, tokens: T, into: s.o, mode: mode)
        if let b = w.bo { ops.addToRows(b.pointer, RowBlock(s.o, rows: T, width: c.embeddingLength)) }
    }
}

extension WeightReader {
    /// Q/K/V/O with optional biases and q/k norms.
    func standardAttention(_ l: Int, _ c: ModelConfig) throws -> StandardAttentionWeights {
        let e = c.embeddingLength, qDim = c.headCount * c.headDimK
        let kDim = c.headCountKV * c.headDimK, vDim = c.headCountKV * c.headDimV
        let attnOut = c.headCount * c.headDimV
        return StandardAttentionWeights(
            wq: try matrix(.attnQ(l), rows: qDim, cols: e),
            wk: try matrix(.attnK(l), rows: kDim, cols: e),
            wv: try matrix(.attnV(l), rows: vDim, cols: e),
            wo: try matrix(.attnOutput(l), rows: e, cols: attnOut),
            bq: try optionalVector(.attnQBias(l), count: qDim),
            bk: try optionalVector(.attnKBias(l), count: kDim),
            bv: try optionalVector(.attnVBias(l), count: vDim),
            bo: try optionalVector(.attnOutputBias(l), count: e),
            qNorm: try optionalVector(.attnQNorm(l), count: c.headDimK),
            kNorm: try optionalVector(.attnKNorm(l), count: c.headDimK))
    }

    func denseFFN(_ l: Int, _ c: ModelConfig) throws -> DenseFFNWeights {
        let e = c.embeddingLength, f = c.feedForwardLength
        return DenseFFNWeights(gate: try matrix(.ffnGate(l), rows: f, cols: e),
                               up: try matrix(.ffnUp(l), rows: f, cols: e),
                               down: try matrix(.ffnDown(l), rows: e, cols: f))
    }

    /// A pre-norm decoder layer: attention and FFN kinds per the hooks (`moe`: this layer's, nil when
    /// dense), optional parts by presence.
    func standardLayer(_ l: Int, _ c: ModelConfig, _ hooks: StandardHooks, moe: MoEConfig?) throws -> LayerWeights {
        let e = c.embeddingLength
        let attention: AttentionWeights = try hooks.latentAttention.map { .latent(try latentAttention(l, c, $0)) }
            ?? .standard(standardAttention(l, c))
        let ffn: FFNWeights = try moe.map { .moe(try self.moe(l, c, $0)) } ?? .dense(denseFFN(l, c))
        let postAttention = try optionalVector(.postAttentionNorm(l), count: e)
        let stored = hooks.ffnNormStoredAsPostAttention
        return LayerWeights(
            attnNorm: try vector(.attnNorm(l), count: e),
            attention: attention,
            postAttentionNorm: stored ? nil : postAttention,
            ffnNorm: stored ? try vector(.postAttentionNorm(l), count: e) : try vector(.ffnNorm(l), count: e),
            ffn: ffn,
            postFFNNorm: try optionalVector(.postFFNNorm(l), count: e))
    }
}
