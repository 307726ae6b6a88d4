// qwen35moe (Qwen3.5-MoE): a hybrid of Gated DeltaNet linear-attention layers (a recurrent state per
// sequence) and gated full-attention layers (the paged KV cache), every layer followed by a MoE with a
// sigmoid-gated shared expert. Norm weights are used as stored (the converter already wrote 1 + w).
// Spec and pitfalls: docs/models/qwen35moe.md.
//   DeltaNet (per token, value head j reading key head j mod H_k):
//     [q; k; v] = silu(causal depthwise conv_K(W_qkv · x))       (the conv state: the last K−1 inputs)
//     q = l2norm(q)/√S_k, k = l2norm(k), β = σ(W_β · x), g = a · softplus(W_α · x + dt_bias)   (a = −e^A)
//     S ← e^g S;  S += k (β (v − Sᵀk))ᵀ;  o = Sᵀq                  S [S_k, S_v] per value head
//     out = W_out · (rmsnorm(o) ⊙ silu(W_z · x))
//   Gated attention: W_q gives per head [q | gate]; q/k RMSNorm, partial NeoX RoPE (text positions
//     make the interleaved MRoPE sections plain RoPE), out = W_o · (attn ⊙ σ(gate)).
// The recurrent state lives beside the KV pages (KVSequence.auxiliary); going back to an earlier
// position replays the committed tokens through the DeltaNet layers (attention reads its cached K/V).

import GGUF
import Kernels
import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct Qwen35Config: Sendable {
    /// Per layer: true = Gated DeltaNet, false = gated full attention.
    public var recurrent: [Bool]
    public var convKernel: Int
    public var keyHeads: Int
    public var valueHeads: Int
    /// Key (and value) head width of the DeltaNet layers.
    public var stateSize: Int
    /// Per layer: its KV layer (attention layers only; −1 for DeltaNet layers).
    public var kvLayer: [Int]
    var keyDim: Int { keyHeads * stateSize }
    var valueDim: Int { valueHeads * stateSize }
    var convChannels: Int { 2 * keyDim + valueDim }
    var attentionLayers: Int { recurrent.filter { !$0 }.count }
    /// Bytes of a sequence's recurrent state: per DeltaNet layer the conv inputs [K−1, channels] and the
    /// delta-rule matrix [H_v, S, S], F32.
    public var stateBytes: Int { recurrent.filter { $0 }.count * ((convKernel - 1) * convChannels + valueHeads * stateSize * stateSize) * 4 }
}

struct DeltaNetWeights: @unchecked Sendable {
    var qkv, gate, alpha, beta, out: WeightMatrix
    var conv: FloatBuffer        // taps [K, channels] (tap K − 1 multiplies the current token)
    var dtBias, decay: FloatBuffer  // [H_v]; decay = −exp(A_log)
    var norm: FloatBuffer        // [S_v]
}

struct GatedAttentionWeights: @unchecked Sendable {
    var wq, wk, wv, wo: WeightMatrix
    var qNorm, kNorm: FloatBuffer
}

struct Qwen35LayerWeights: @unchecked Sendable {
    var attnNorm, ffnNorm: FloatBuffer
    var deltaNet: DeltaNetWeights?
    var attention: GatedAttentionWeights?
    var moe: MoEWeights
}

struct Qwen35Weights: @unchecked Sendable {
    var layers: [Qwen35LayerWeights]
    var rope: Rope
}

public enum Qwen35MoEArchitecture: Architecture {
    public static let name = "qwen35moe"

    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        let meta = ArchitectureMetadata(gguf, architecture: name)
        func value(_ key: String) -> GGUFValue? { meta[key] }
        let n = config.layerCount
        var recurrent: [Bool]
        if let flags = value("attention.recurrent_layers")?.array, flags.count >= n {
            recurrent = flags.prefix(n).map { $0.bool ?? false }
        } else {
            let interval = value("full_attention_interval")?.int ?? 4
            recurrent = (0..<n).map { ($0 + 1) % max(1, interval) != 0 }
        }
        guard let kernel = value("ssm.conv_kernel")?.int, let state = value("ssm.state_size")?.int,
              let groups = value("ssm.group_count")?.int, let heads = value("ssm.time_step_rank")?.int,
              kernel > 1, state > 0, groups > 0, heads > 0, heads % groups == 0 else {
            throw ModelError.missingMetadata(file: gguf.path, key: "\(name).ssm.conv_kernel / state_size / group_count / time_step_rank")
        }
        if let inner = value("ssm.inner_size")?.int, inner != heads * state {
            throw ModelError.invalidConfig(file: gguf.path, message: "\(name): ssm.inner_size \(inner) ≠ value heads \(heads) × state \(state)")
        }
        var kv = 0
        let kvLayer = recurrent.map { r -> Int in if r { return -1 }; kv += 1; return kv - 1 }
        let q = Qwen35Config(recurrent: recurrent, convKernel: kernel, keyHeads: groups, valueHeads: heads, stateSize: state,
                             kvLayer: kvLayer)
        var m = try MoEConfig.read(gguf, name, defaultGating: .softmax)
        m.normalizeWeights = true
        _ = try m.locate(in: gguf, layers: n)
        return Qwen35Stack(config: config, qwen: q, moe: m, weights: try WeightReader(gguf, layout: config.weightLayout).qwen35(config, q, moe: m))
    }
}

extension WeightReader {
    func qwen35(_ c: ModelConfig, _ q: Qwen35Config, moe m: MoEConfig) throws -> Qwen35Weights {
        typealias Q = Qwen35TensorName
        let e = c.embeddingLength, h = c.headCount, d = c.headDimK, hkv = c.headCountKV
        var layers: [Qwen35LayerWeights] = []
        for l in 0..<c.layerCount {
            var moe = try self.moe(l, c, m)
            let gateName = Q.sharedExpertGate(l).name
            if let info = gguf.tensor(gateName) {
                guard info.elementCount == e else { throw ModelError.badTensorShape(file: gguf.path, name: gateName, expected: [e], got: info.dims) }
                moe.sharedGate = WeightMatrix(type: info.type, rows: 1, cols: e, data: gguf.data(of: info), name: gateName)
            }
            var layer = Qwen35LayerWeights(attnNorm: try vector(.attnNorm(l), count: e), ffnNorm: try vector(.postAttentionNorm(l), count: e),
                                           deltaNet: nil, attention: nil, moe: moe)
            if q.recurrent[l] {
                let conv = try matrix(named: Q.ssmConv1d(l).name, rows: q.convChannels, cols: q.convKernel)
                // Stored [channels, K]; kept transposed [K, channels] so the conv runs along channels.
                let taps = FloatBuffer(count: q.convChannels * q.convKernel), row = FloatBuffer(count: q.convKernel)
                for ch in 0..<q.convChannels {
                    conv.dequantizeRow(ch, into: row.pointer)
                    for k in 0..<q.convKernel { taps.pointer[k * q.convChannels + ch] = row.pointer[k] }
                }
                layer.deltaNet = DeltaNetWeights(
                    qkv: try matrix(named: Q.attnQKV(l).name, rows: q.convChannels, cols: e),
                    gate: try matrix(named: Q.attnGate(l).name, rows: q.valueDim, cols: e),
                    alpha: try matrix(named: Q.ssmAlpha(l).name, rows: q.valueHeads, cols: e),
                    beta: try matrix(named: Q.ssmBeta(l).name, rows: q.valueHeads, cols: e),
                    out: try matrix(named: Q.ssmOut(l).name, rows: e, cols: q.valueDim),
                    conv: taps,
                    dtBias: try vector(named: Q.ssmDtBias(l).name, count: q.valueHeads),
                    decay: try vector(named: Q.ssmA(l).name, count: q.valueHeads),
                    norm: try vector(named: Q.ssmNorm(l).name, count: q.stateSize))
            } else {
                layer.attention = GatedAttentionWeights(
                    wq: try matrix(.attnQ(l), rows: 2 * h * d, cols: e), wk: try matrix(.attnK(l), rows: hkv * d, cols: e),
                    wv: try matrix(.attnV(l), rows: hkv * d, cols: e), wo: try matrix(.attnOutput(l), rows: e, cols: h * d),
                    qNorm: try vector(.attnQNorm(l), count: d), kNorm: try vector(.attnKNorm(l), count: d))
            }
            layers.append(layer)
        }
        // Text positions: every MRoPE section gets the same position, i.e. plain partial NeoX RoPE.
        return Qwen35Weights(layers: layers, rope: Rope(dimensions: c.ropeDimensions, base: c.ropeBase, style: .neox))
    }
}

/// One sequence's recurrent state: per DeltaNet layer the conv inputs of the last K−1 tokens and the
/// delta-rule state S [H_v, S_k, S_v]. Its size does not grow with the context.
public final class Qwen35State: SequenceSideState {
    public internal(set) var count = 0
    let conv: [FloatBuffer?]     // [K−1, channels], oldest first
    let delta: [FloatBuffer?]    // [H_v, S_k, S_v]
    init(_ q: Qwen35Config) {
        conv = q.recurrent.map { $0 ? FloatBuffer(count: (q.convKernel - 1) * q.convChannels) : nil }
        delta = q.recurrent.map { $0 ? FloatBuffer(count: q.valueHeads * q.stateSize * q.stateSize) : nil }
    }
    public func reset() {
        count = 0
        for b in conv + delta { b?.pointer.update(repeating: 0, count: b!.count) }
    }
    public var bytes: Int { (conv + delta).reduce(0) { $0 + ($1?.count ?? 0) * 4 } }
    var fixedBuffers: [FloatBuffer] { (conv + delta).compactMap { $0 } }
    public func encoded() -> [UInt8] { encodeState() }
    var rowStores: [EntryRows] { [] }
}

/// Per-session buffers (largest batch).
final class Qwen35Scratch {
    let moe: MoEScratch
    let qkv, window, gate, alpha, beta, core, query: FloatBuffer
    let table: FloatBuffer
    let delta: FloatBuffer           // [B, H_v, S_v] the delta rule's scratch, one row per (sequence, value head)
    init(config c: ModelConfig, _ q: Qwen35Config, moe: MoEConfig, maxBatch b: Int) {
        self.moe = MoEScratch(config: moe, embedding: c.embeddingLength, maxBatch: b)
        delta = FloatBuffer(count: b * q.valueHeads * q.stateSize)
        qkv = FloatBuffer(count: b * q.convChannels)
        window = FloatBuffer(count: (q.convKernel - 1 + b) * q.convChannels)
        gate = FloatBuffer(count: b * max(q.valueDim, c.headCount * c.headDimK))
        alpha = FloatBuffer(count: b * q.valueHeads); beta = FloatBuffer(count: b * q.valueHeads)
        core = FloatBuffer(count: b * max(q.valueDim, c.headCount * c.headDimK))
        query = FloatBuffer(count: b * 2 * c.headCount * c.headDimK)
        table = FloatBuffer(count: b * c.ropeDimensions)
    }
}

/// Qwen3.5-MoE's layers: Gated DeltaNet and gated attention, each followed by the MoE; the recurrent
/// state of each sequence beside its pages.
final class Qwen35Stack: LayerStack, @unchecked Sendable {
    let config: ModelConfig
    let qwen: Qwen35Config
    let moe: MoEConfig
    let weights: Qwen35Weights

    init(config: ModelConfig, qwen: Qwen35Config, moe: MoEConfig, weights: Qwen35Weights) {
        self.config = config; self.qwen = qwen; self.moe = moe; self.weights = weights
    }

    var activations: ActivationShape { ActivationShape(config) }

    func makeScratch(maxBatch: Int, threads: Int) -> AnyObject? { Qwen35Scratch(config: config, qwen, moe: moe, maxBatch: maxBatch) }

    /// KV pages for the attention layers only; the recurrent state is held beside them.
    func kvShape(type: KVType) -> KVShape {
        let layers = max(1, qwen.attentionLayers), c = config
        return KVShape(layers: layers, kRowFloats: c.headCountKV * c.headDimK, vRowFloats: c.headCountKV * c.headDimV,
                       type: type, retention: Array(repeating: .all, count: layers), sideFixedBytes: qwen.stateBytes)
    }

    func kvTypeProblem(_ type: KVType) -> String? { Self.blockProblem(type, headSizes: [config.headDimK, config.headDimV]) }
    func kvFootprint(type: KVType) -> KVFootprint { KVFootprint(pages: kvShape(type: type), fixedBytes: qwen.stateBytes) }
    var keepsSideState: Bool { true }
    /// Decode rows: products by the multi-row kernel, experts per token, the conv and delta rule row by row.
    var exactDecodeRows: Bool { true }
    func makeSideState(kvType: KVType) -> KVSideState? { Qwen35State(qwen) }
    func sideStateBytes(contextLength: Int, type: KVType) -> Int { kvFootprint(type: type).fixedBytes }

    var moeBlocks: [(layer: Int, weights: MoEWeights)] { weights.layers.enumerated().map { ($0.offset, $0.element.moe) } }

    var weightBytesPerToken: Int {
        func bytes(_ m: WeightMatrix) -> Int { m.rows * m.rowBytes }
        var total = 0
        for l in weights.layers {
            if let d = l.deltaNet { for m in [d.qkv, d.gate, d.alpha, d.beta, d.out] { total += bytes(m) } }
            if let a = l.attention { for m in [a.wq, a.wk, a.wv, a.wo] { total += bytes(m) } }
            total += l.moe.bytesPerToken()
        }
        return total
    }

    func forward(_ p: ForwardPass) {
        let s = p.state, x = s.scratch(Qwen35Scratch.self), segments = p.segments, qwen = self.qwen
        // Each sequence's recurrent state must stand at the segment's start: replay its history if not.
        var states: [Qwen35State] = []
        for seg in segments {
            states.append(seg.cache.sideState(at: seg.start, maxBatch: s.maxBatch, make: { Qwen35State(qwen) }) { history, start, n, st in
                let replay = BatchSegment(cache: seg.cache, start: start, offset: 0, count: n, prompt: true)
                run(history, count: n, segments: [replay], states: [st], storeKV: false, pass: p, scratch: x, mode: .batched)
            })
        }
        // Decode rows (they lead the batch) through the single-token kernel, as each would run alone.
        run(p.tokens, count: p.count, segments: segments, states: states, storeKV: true, pass: p, scratch: x,
            mode: .invariant(decodeRows: p.decodeRows))
    }

    /// The layers over T rows of `tokens` (leaves the residual in s.x). `storeKV: false` when replaying
    /// positions whose K/V are already cached (only the recurrent state is rebuilt).
    private func run(_ tokens: UnsafePointer<Int32>, count T: Int, segments: [BatchSegment], states: [Qwen35State], storeKV: Bool,
                     pass p: ForwardPass, scratch x: Qwen35Scratch, mode: ProductMode) {
        let c = config, e = c.embeddingLength, eps = c.rmsEpsilon, s = p.state, ops = s.ops
        let h = RowBlock(s.x, rows: T, width: e), xn = RowBlock(s.xn, rows: T, width: e), o = RowBlock(s.o, rows: T, width: e)
        for (i, seg) in segments.enumerated() {
            for t in seg.offset..<(seg.offset + seg.count) { s.positions[t] = seg.start + t - seg.offset; s.rowSegment[t] = Int32(i) }
        }
        ops.gatherRows(p.embedding.matrix, indices: tokens, into: h, scale: p.embedding.scale)
        for (l, w) in weights.layers.enumerated() {
            ops.rmsNorm(h, weight: w.attnNorm.pointer, into: xn, epsilon: eps)
            if let dn = w.deltaNet {
                deltaNet(dn, layer: l, tokens: T, segments: segments, states: states, inference: s, scratch: x, mode: mode)
            } else if let a = w.attention {
                gatedAttention(a, layer: l, tokens: T, segments: segments, storeKV: storeKV, state: s, scratch: x, mode: mode)
            }
            ops.add(o, into: h)
            ops.rmsNorm(h, weight: w.ffnNorm.pointer, into: xn, epsilon: eps)
            // Expert products group rows by expert: when every row is a decode row, each expert's rows
            // through the multi-row kernel (a row gets its lone bits); else the multi-token kernel.
            MoEBlock.forward(s.xn, tokens: T, into: s.o, weights: w.moe, embedding: e, activation: .silu,
                             scratch: x.moe, ops: ops, mode: (mode.decodeRows ?? 0) >= T ? .perTokenBelow(Int.max) : .batched,
                             layer: l, cache: p.experts, shard: p.shard)
            ops.add(o, into: h)
        }
        for (i, seg) in segments.enumerated() { states[i].count = seg.start + seg.count }
    }

    /// s.o rows = Gated DeltaNet of the normalised input rows: the products over every row, the conv
    /// and the recurrence per sequence (segment i's rows in order, with states[i]).
    private func deltaNet(_ w: DeltaNetWeights, layer l: Int, tokens T: Int, segments: [BatchSegment], states: [Qwen35State],
                          inference s: InferenceState, scratch x: Qwen35Scratch, mode: ProductMode) {
        let q = qwen, ops = s.ops, C = q.convChannels, sk = q.stateSize
        ops.multiply([(w.qkv, x.qkv.pointer), (w.gate, x.gate.pointer), (w.alpha, x.alpha.pointer), (w.beta, x.beta.pointer)], s.xn,
                     tokens: T, mode: mode)
        let recurrent = segments.enumerated().map { i, seg in
            RecurrentSegment(offset: seg.offset, count: seg.count, conv: states[i].conv[l]!.pointer, delta: states[i].delta[l]!.pointer)
        }
        // Causal conv over [state (K−1 rows) ; the sequence's rows], then the state keeps the last K−1 inputs.
        let rows = RowBlock(x.qkv.pointer, rows: T, width: C)
        ops.causalConvSilu(rows, segments: recurrent, taps: w.conv.pointer, kernel: q.convKernel, window: x.window.pointer)
        // q/k L2 norms per token and key head (q also scaled by 1/√S), then the delta rule.
        ops.l2Normalize(RowBlock(x.qkv.pointer, rows: T, width: q.keyDim, stride: C), chunk: sk, epsilon: 1e-6,
                        scale: 1 / Float(sk).squareRoot())
        ops.l2Normalize(RowBlock(x.qkv.pointer + q.keyDim, rows: T, width: q.keyDim, stride: C), chunk: sk, epsilon: 1e-6, scale: 1)
        ops.gatedDeltaRule(DeltaRuleInput(rows: x.qkv.pointer, channels: C, keyHeads: q.keyHeads, valueHeads: q.valueHeads, stateSize: sk,
                                          alpha: x.alpha.pointer, betaLogits: x.beta.pointer, gate: x.gate.pointer, out: x.core.pointer,
                                          dtBias: w.dtBias.pointer, decay: w.decay.pointer, norm: w.norm.pointer,
                                          epsilon: config.rmsEpsilon, scratch: x.delta.pointer),
                           segments: recurrent)
        ops.multiply(w.out, x.core.pointer, tokens: T, into: s.o, mode: mode)
    }

    /// s.o = W_o · (attention ⊙ σ(gate)) of a gated full-attention layer over its KV layer.
    private func gatedAttention(_ w: GatedAttentionWeights, layer l: Int, tokens T: Int, segments: [BatchSegment], storeKV: Bool,
                                state s: InferenceState, scratch x: Qwen35Scratch, mode: ProductMode) {
        let c = config, eps = c.rmsEpsilon, ops = s.ops, h = c.headCount, hkv = c.headCountKV, d = c.headDimK
        let kvLayer = qwen.kvLayer[l], rope = weights.rope, table = x.table.pointer, rs = c.ropeDimensions
        let qg = x.query.pointer, q = s.q, k = s.k, v = s.v, gate = x.gate.pointer
        ops.multiply([(w.wq, qg), (w.wk, k), (w.wv, v)], s.xn, tokens: T, mode: mode)
        // Per head [q | gate].
        for t in 0..<T {
            rope.fill(table + t * rs, position: s.positions[t])
            for i in 0..<h {
                (q + (t * h + i) * d).update(from: qg + (t * h + i) * 2 * d, count: d)
                (gate + (t * h + i) * d).update(from: qg + (t * h + i) * 2 * d + d, count: d)
            }
        }
        let qHeads = RowBlock(q, rows: T * h, width: d), kHeads = RowBlock(k, rows: T * hkv, width: d)
        ops.rmsNorm(qHeads, weight: w.qNorm.pointer, into: qHeads, epsilon: eps)
        ops.rmsNorm(kHeads, weight: w.kNorm.pointer, into: kHeads, epsilon: eps)
        ops.rotate(RowBlock(q, rows: T, width: h * d), heads: h, headDim: d, rope: rope, tables: table, tableStride: rs)
        ops.rotate(RowBlock(k, rows: T, width: hkv * d), heads: hkv, headDim: d, rope: rope, tables: table, tableStride: rs)
        if storeKV {
            for t in 0..<T {
                let cache = segments[Int(s.rowSegment[t])].cache
                cache.storeK(kvLayer, s.positions[t], k + t * hkv * d)
                cache.storeV(kvLayer, s.positions[t], v + t * hkv * d)
            }
        }
        for seg in segments {
            ops.attend(Attention.paged(
                seg.cache, layer: kvLayer, q: q + seg.offset * h * d, qTokenStride: h * d, qHeadStride: d,
                out: s.att + seg.offset * h * d, outTokenStride: h * d, outHeadStride: d,
                kHeadStride: d, vHeadStride: d, heads: h, kvHeads: hkv, keyDim: d, valueDim: d),
                tokens: seg.count, startPosition: seg.start, span: .full, scale: 1 / Float(d).squareRoot(), softcap: 0, prompt: seg.prompt)
        }
        ops.multiplyBySigmoid(RowBlock(s.att, rows: T, width: h * d), gate: RowBlock(gate, rows: T, width: h * d))
        ops.multiply(w.wo, s.att, tokens: T, into: s.o, mode: mode)
    }
}
