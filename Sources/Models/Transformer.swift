// The decoder-only transformer every architecture runs on:
//   x = embed(tokens) [· embeddingScale]
//   per layer: x += [postNorm](attention(norm(x)))     standard (Wo · attn(rope(q), rope(k), v)) or latent (MLA)
//              x += [postNorm](ffn(norm(x)))           dense (Wdown · (act(Wgate·x) ⊙ Wup·x)) or mixture of experts
//   logits = Wout · norm(x) [softcap]
// Optional parts (biases, q/k norms, post-norms) are used when the GGUF has their tensors; the
// architecture files set the config switches (RoPE style, spans, NoPE layers, MoE and MLA shapes).

import GGUF
import Kernels
import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum LogitsRequest: Sendable {
    /// Logits of the last token of the batch only (generation).
    case last
    /// Logits of every token of the batch (teacher forcing).
    case all
    /// Logits of the last n tokens of the batch (perplexity scores only the second half).
    case suffix(Int)
    /// No logits (pure prefill of a prefix).
    case none
}

public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    public let gguf: GGUFFile
    public let tokenEmbedding: WeightMatrix
    public let output: WeightMatrix
    public let outputNorm: FloatBuffer
    public let layers: [LayerWeights]
    /// DeepSeek V4's layers (then `layers` is empty).
    public let deepseek4: DeepSeek4Weights?
    /// Gemma 4's layers (then `layers` is empty).
    let gemma4: Gemma4Weights?
    /// Qwen3.5-MoE's layers (then `layers` is empty).
    let qwen35: Qwen35Weights?
    let ropeGlobal: Rope
    let ropeSliding: Rope
    /// Routed experts streamed into RAM slots (--ram-budget); nil: all weights stay mapped.
    public var expertCache: ExpertCache?

    public init(gguf: GGUFFile, config: ModelConfig) throws {
        self.gguf = gguf
        self.config = config
        let r = WeightReader(gguf)
        let c = config
        guard let embInfo = gguf.tensor(TensorName.tokenEmbedding.name), embInfo.dims.count == 2 else {
            throw ModelError.missingTensor(file: gguf.path, name: TensorName.tokenEmbedding.name)
        }
        tokenEmbedding = try r.matrix(.tokenEmbedding, rows: embInfo.dims[1], cols: c.embeddingLength)
        output = r.has(.output) ? try r.matrix(.output, rows: embInfo.dims[1], cols: c.embeddingLength) : tokenEmbedding
        outputNorm = try r.vector(.outputNorm, count: c.embeddingLength)
        deepseek4 = c.deepseek4 != nil ? try r.deepSeek4(c) : nil
        gemma4 = c.gemma4 != nil ? try r.gemma4(c) : nil
        qwen35 = c.qwen35 != nil ? try r.qwen35(c) : nil
        if deepseek4 != nil || gemma4 != nil || qwen35 != nil {
            layers = []
        } else {
            layers = try (0..<c.layerCount).map { try r.layer($0, c) }
        }
        let factors = r.has(.ropeFrequencies) ? try r.vector(.ropeFrequencies, count: c.ropeDimensions / 2).array : nil
        ropeGlobal = Rope(dimensions: c.ropeDimensions, base: c.ropeBase, style: c.ropeStyle, scale: c.ropeScale,
                          frequencyFactors: factors, yarn: c.yarn, magnitude: c.ropeMagnitude)
        ropeSliding = Rope(dimensions: c.ropeDimensions, base: c.ropeBaseSliding ?? c.ropeBase, style: c.ropeStyle, scale: 1, frequencyFactors: factors)
    }

    public var vocabularySize: Int { tokenEmbedding.rows }

    /// Every MoE block of the model with its layer index, whatever the architecture's layer stack (the
    /// memory tiers stream their routed experts).
    public var moeBlocks: [(layer: Int, weights: MoEWeights)] {
        if let ds = deepseek4 { return ds.layers.enumerated().map { ($0.offset, $0.element.moe) } }
        if let g = gemma4 { return g.layers.enumerated().compactMap { l, w in w.moe.map { (l, $0) } } }
        if let q = qwen35 { return q.layers.enumerated().map { ($0.offset, $0.element.moe) } }
        return layers.enumerated().compactMap { l, w in
            if case .moe(let f) = w.ffn { return (l, f) }
            return nil
        }
    }

    /// Bytes of weights a decode step reads (all matrices once + the embedding row).
    public var weightBytesPerToken: Int {
        func bytes(_ m: WeightMatrix) -> Int { m.rows * m.rowBytes }
        var total = bytes(output)
        for l in deepseek4?.layers ?? [] {
            let a = l.attention
            for m in [a.qA, a.qB, a.kv, a.outputB, l.hcAttention.fn, l.hcFFN.fn] + a.outputA { total += bytes(m) }
            for m in [a.compressor?.kv, a.compressor?.gate, a.indexerCompressor?.kv, a.indexerCompressor?.gate, a.indexerQB, a.indexerProj] {
                if let m { total += bytes(m) }
            }
            total += l.moe.bytesPerToken(used: config.moe?.expertsUsed ?? 0)
        }
        for l in gemma4?.layers ?? [] {
            for m in [l.wq, l.wo, l.mlp.gate, l.mlp.up, l.mlp.down] + [l.wk, l.wv, l.inputGate, l.projection].compactMap({ $0 }) { total += bytes(m) }
            if let moe = l.moe { total += moe.bytesPerToken(used: config.moe?.expertsUsed ?? 0) }
        }
        for l in qwen35?.layers ?? [] {
            if let d = l.deltaNet { for m in [d.qkv, d.gate, d.alpha, d.beta, d.out] { total += bytes(m) } }
            if let a = l.attention { for m in [a.wq, a.wk, a.wv, a.wo] { total += bytes(m) } }
            total += l.moe.bytesPerToken(used: config.moe?.expertsUsed ?? 0)
        }
        for l in layers {
            switch l.attention {
            case .standard(let a): for m in [a.wq, a.wk, a.wv, a.wo] { total += bytes(m) }
            case .latent(let a): total += a.bytesPerToken()
            }
            switch l.ffn {
            case .dense(let f): for m in [f.gate, f.up, f.down] { total += bytes(m) }
            case .moe(let f): total += f.bytesPerToken(used: config.moe?.expertsUsed ?? 0)
            }
        }
        return total
    }

    /// Runs tokens at positions startPosition..<startPosition+tokens.count through the model,
    /// appending their K/V to the state's cache. Returns logits rows per `request`.
    @discardableResult
    public func forward(_ tokens: [Int32], startPosition: Int, state: InferenceState, logits request: LogitsRequest) throws -> UnsafeBufferPointer<Float> {
        var done = 0
        var result = UnsafeBufferPointer<Float>(start: nil, count: 0)
        guard !tokens.isEmpty else { return result }
        guard startPosition + tokens.count <= state.cache.maxPositions else {
            throw InferenceError.contextOverflow(needed: startPosition + tokens.count, capacity: state.cache.maxPositions)
        }
        guard startPosition <= state.cache.count else {
            throw InferenceError.positionGap(start: startPosition, cached: state.cache.count)
        }
        for t in tokens where t < 0 || Int(t) >= vocabularySize {
            throw InferenceError.invalidToken(t, vocabularySize: vocabularySize)
        }
        // Rows of the batch whose logits are wanted: [firstRow, tokens.count).
        let firstRow: Int
        switch request {
        case .all: firstRow = 0
        case .suffix(let n): firstRow = max(0, tokens.count - n)
        case .last: firstRow = tokens.count - 1
        case .none: firstRow = tokens.count
        }
        state.reserveLogits(rows: max(1, tokens.count - firstRow), vocab: vocabularySize)
        while done < tokens.count {
            let n = min(state.maxBatch, tokens.count - done)
            let lo = min(n, max(firstRow, done) - done)   // wanted rows inside this chunk: lo..<n
            try state.cache.prepareWrite(start: startPosition + done, count: n)
            _ = expertCache?.takeError()   // earlier failures left no slot in use
            tokens.withUnsafeBufferPointer { buf in
                forwardBatch(buf.baseAddress! + done, count: n,
                             segments: [BatchSegment(cache: state.cache, start: startPosition + done, offset: 0, count: n, prompt: n > 1)],
                             state: state, logitRows: Array(lo..<n), logitsOffset: max(0, done + lo - firstRow))
            }
            // A failed expert read spoils this chunk's rows: they are dropped, never committed (earlier
            // chunks were checked and stay).
            if let error = expertCache?.takeError() {
                state.cache.discardWrite(start: startPosition + done)
                throw InferenceError.weightRead(error)
            }
            tokens.withUnsafeBufferPointer { buf in
                state.cache.commit(UnsafeBufferPointer(rebasing: buf[done..<(done + n)]), start: startPosition + done)
            }
            done += n
        }
        let rows = tokens.count - firstRow
        if rows > 0 { result = UnsafeBufferPointer(start: state.logits, count: rows * vocabularySize) }
        return result
    }

    /// Runs T batch rows through the model. The rows are split into segments, each a run of consecutive
    /// positions of one sequence (its K/V prepared for writing); logits of `logitRows` (batch rows, in
    /// order) land in state.logits from row logitsOffset.
    func forwardBatch(_ tokens: UnsafePointer<Int32>, count T: Int, segments: [BatchSegment], state s: InferenceState,
                      logitRows: [Int], logitsOffset: Int) {
        if deepseek4 != nil {
            forwardDeepSeek4(tokens, segments: segments, state: s, logitRows: logitRows, logitsOffset: logitsOffset)
            return
        }
        if qwen35 != nil {
            forwardQwen35(tokens, count: T, segments: segments, state: s, logitRows: logitRows, logitsOffset: logitsOffset)
            return
        }
        if gemma4 != nil {
            forwardGemma4(tokens, count: T, segments: segments, state: s, logitRows: logitRows, logitsOffset: logitsOffset)
            return
        }
        let c = config
        let e = c.embeddingLength
        let mm = s.matmul, pool = s.pool
        let x = s.x, xn = s.xn, att = s.att, o = s.o
        let eps = c.rmsEpsilon
        /// Token-independent work of a batch runs on the pool (serially for a single token).
        func perToken(_ body: (Int) -> Void) {
            if T < 4 { for t in 0..<T { body(t) }; return }
            pool.parallelFor(T) { r in for t in r { body(t) } }
        }

        // Batch-invariant products: leading decode rows one token at a time, prompt rows multi-token.
        let decodeRows = segments.prefix { !$0.prompt }.reduce(0) { $0 + $1.count }
        mm.decodeRows = decodeRows
        defer { mm.decodeRows = nil }
        // Position and segment of every row.
        for (i, seg) in segments.enumerated() {
            for t in seg.offset..<(seg.offset + seg.count) { s.positions[t] = seg.start + t - seg.offset; s.rowSegment[t] = Int32(i) }
        }
        // Embedding rows (dequantized), optional scale; RoPE cos/sin per token for both bases.
        let ropeStride = c.ropeDimensions
        let positions = s.positions
        perToken { t in
            tokenEmbedding.dequantizeRow(Int(tokens[t]), into: x + t * e)
            if let sc = c.embeddingScale { for i in 0..<e { x[t * e + i] *= sc } }
            ropeGlobal.fill(s.ropeGlobal + t * ropeStride, position: positions[t])
            ropeSliding.fill(s.ropeSliding + t * ropeStride, position: positions[t])
        }

        for (l, w) in layers.enumerated() {
            perToken { t in Kernels.rmsNorm(x + t * e, w.attnNorm.pointer, into: xn + t * e, count: e, epsilon: eps) }
            let sliding = c.slidingLayers[l]
            let rope = sliding ? ropeSliding : ropeGlobal
            let ropeTable = sliding ? s.ropeSliding : s.ropeGlobal
            switch w.attention {
            case .standard(let a):
                standardAttention(a, layer: l, tokens: T, segments: segments, rope: rope, ropeTable: ropeTable, state: s)
            case .latent(let a):
                // One sequence at a time (its own projections); W_o over the whole batch.
                let attStride = c.headCount * c.mla!.valueDim
                for seg in segments {
                    mm.decodeRows = seg.prompt ? 0 : seg.count
                    defer { mm.decodeRows = decodeRows }
                    LatentAttentionBlock.forward(xn + seg.offset * e, tokens: seg.count, startPosition: seg.start, rowOffset: seg.offset,
                                                 cache: seg.cache,
                                                 layer: l, weights: a, config: c.mla!, model: c, rope: rope,
                                                 ropeTable: ropeTable + seg.offset * ropeStride, ropeStride: ropeStride,
                                                 state: s, scratch: s.latentScratch!, into: att + seg.offset * attStride)
                }
                mm.multiply(a.wo, att, tokens: T, into: o)
            }
            // o [post-norm] added to the residual, then the FFN input norm.
            perToken { t in
                let ot = o + t * e
                if let pn = w.postAttentionNorm { Kernels.rmsNorm(ot, pn.pointer, into: ot, count: e, epsilon: eps) }
                Kernels.add(x + t * e, ot, count: e)
                Kernels.rmsNorm(x + t * e, w.ffnNorm.pointer, into: xn + t * e, count: e, epsilon: eps)
            }
            switch w.ffn {
            case .dense(let f): denseFFN(f, input: xn, tokens: T, into: o, state: s)
            case .moe(let f):
                // Expert products group tokens across rows: no batch invariance there.
                mm.decodeRows = nil
                defer { mm.decodeRows = decodeRows }
                // With streamed experts, the next MoE layer's router is tried on this layer's input: how
                // well it foresees that layer's experts (what prefetching them would rest on).
                var next: (layer: Int, weights: MoEWeights)? = nil
                if expertCache != nil, let j = ((l + 1)..<layers.count).first(where: { if case .moe = layers[$0].ffn { return true }; return false }),
                   case .moe(let nf) = layers[j].ffn { next = (j, nf) }
                MoEBlock.forward(xn, tokens: T, into: o, weights: f, config: c.moe!, embedding: e, activation: c.activation,
                                 scratch: s.moeScratch!, matmul: mm, layer: l, cache: expertCache, predictNext: next)
            }
            perToken { t in
                let ot = o + t * e
                if let pn = w.postFFNNorm { Kernels.rmsNorm(ot, pn.pointer, into: ot, count: e, epsilon: eps) }
                Kernels.add(x + t * e, ot, count: e)
            }
        }

        // Output head on the requested rows (logit row i of the call = batch row logitRows[i]).
        if logitRows.isEmpty { return }
        let rows = logitRows.count
        let dest = s.logits + logitsOffset * vocabularySize
        for (t, row) in logitRows.enumerated() {
            Kernels.rmsNorm(x + row * e, outputNorm.pointer, into: xn + t * e, count: e, epsilon: eps)
        }
        mm.decodeRows = logitRows.filter { $0 < decodeRows }.count
        mm.multiply(output, xn, tokens: rows, into: dest)
        if let cap = c.finalLogitSoftcap, cap > 0 {
            for i in 0..<(rows * vocabularySize) { dest[i] = cap * tanhf(dest[i] / cap) }
        }
    }

    /// o = Wo · attention(q, k, v) of the layer's standard attention; K/V appended to the cache.
    private func standardAttention(_ w: StandardAttentionWeights, layer l: Int, tokens T: Int, segments: [BatchSegment],
                                   rope: Rope, ropeTable: UnsafeMutablePointer<Float>, state s: InferenceState) {
        let c = config, eps = c.rmsEpsilon
        let dk = c.headDimK, dv = c.headDimV, h = c.headCount, hkv = c.headCountKV
        let qDim = h * dk, kDim = hkv * dk, vDim = hkv * dv, ropeStride = c.ropeDimensions
        let q = s.q, k = s.k, v = s.v
        s.matmul.multiply([(w.wq, q), (w.wk, k), (w.wv, v)], s.xn, tokens: T)
        let useRope = c.ropeLayers[l]
        // Biases, q/k norms, RoPE (or NoPE temperature), then the token's K/V into its sequence's cache.
        let positions = s.positions, rowSegment = s.rowSegment
        perToken(T, s) { t in
            let qt = q + t * qDim, kt = k + t * kDim, vt = v + t * vDim
            if let b = w.bq { Kernels.add(qt, b.pointer, count: qDim) }
            if let b = w.bk { Kernels.add(kt, b.pointer, count: kDim) }
            if let b = w.bv { Kernels.add(vt, b.pointer, count: vDim) }
            if let qn = w.qNorm { for i in 0..<h { Kernels.rmsNorm(qt + i * dk, qn.pointer, into: qt + i * dk, count: dk, epsilon: eps) } }
            if let kn = w.kNorm { for i in 0..<hkv { Kernels.rmsNorm(kt + i * dk, kn.pointer, into: kt + i * dk, count: dk, epsilon: eps) } }
            let pos = positions[t]
            if useRope {
                rope.rotate(qt, heads: h, headDim: dk, table: ropeTable + t * ropeStride)
                rope.rotate(kt, heads: hkv, headDim: dk, table: ropeTable + t * ropeStride)
                if c.qkL2Norm {
                    for i in 0..<h { Kernels.rmsNorm(qt + i * dk, nil, into: qt + i * dk, count: dk, epsilon: eps) }
                    for i in 0..<hkv { Kernels.rmsNorm(kt + i * dk, nil, into: kt + i * dk, count: dk, epsilon: eps) }
                }
            } else if let temp = c.attentionTemperature {
                let f = temp.factor(position: pos)
                for i in 0..<qDim { qt[i] *= f }
            }
            let cache = segments[Int(rowSegment[t])].cache
            cache.storeK(l, pos, kt)
            cache.storeV(l, pos, vt)
        }
        for seg in segments {
            AttentionBlock.attend(AttentionBlock.paged(
                seg.cache, layer: l, q: q + seg.offset * qDim, qTokenStride: qDim, qHeadStride: dk,
                out: s.att + seg.offset * h * dv, outTokenStride: h * dv, outHeadStride: dv,
                kHeadStride: dk, vHeadStride: dv, heads: h, kvHeads: hkv, keyDim: dk, valueDim: dv),
                tokens: seg.count, startPosition: seg.start, span: c.attentionSpans[l], scale: c.attentionScale,
                softcap: c.attentionLogitSoftcap ?? 0, state: s, promptKernel: seg.prompt)
        }
        s.matmul.multiply(w.wo, s.att, tokens: T, into: s.o)
        if let b = w.bo { perToken(T, s) { t in Kernels.add(s.o + t * c.embeddingLength, b.pointer, count: c.embeddingLength) } }
    }

    /// out = down · (act(gate · x) ⊙ up · x); gate and up in one dispatch, each thread applying the
    /// activation to the rows it computed.
    private func denseFFN(_ w: DenseFFNWeights, input: UnsafeMutablePointer<Float>, tokens T: Int, into out: UnsafeMutablePointer<Float>,
                          state s: InferenceState) {
        let gate = s.gate, up = s.up, f = w.gate.rows, activation = config.activation
        s.matmul.multiply([(w.gate, gate), (w.up, up)], input, tokens: T) { rows in
            for t in 0..<T {
                let g = gate + t * f + rows.lowerBound, u = up + t * f + rows.lowerBound
                switch activation {
                case .silu: Kernels.swiglu(g, u, count: rows.count)
                case .geluTanh: Kernels.geglu(g, u, count: rows.count)
                }
            }
        }
        s.matmul.multiply(w.down, gate, tokens: T, into: out)
    }

    /// Token-independent work of a batch runs on the pool (serially for a few tokens).
    private func perToken(_ T: Int, _ s: InferenceState, _ body: (Int) -> Void) {
        if T < 4 { for t in 0..<T { body(t) }; return }
        s.pool.parallelFor(T) { r in for t in r { body(t) } }
    }
}

public enum InferenceError: Error, CustomStringConvertible {
    case contextOverflow(needed: Int, capacity: Int)
    case invalidToken(Int32, vocabularySize: Int)
    case emptyPrompt
    case positionGap(start: Int, cached: Int)
    case weightRead(String)
    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty (no tokens to evaluate)"
        case .positionGap(let s, let c): return "tokens start at position \(s) but the KV cache holds only \(c) positions"
        case .contextOverflow(let n, let c): return "context overflow: \(n) positions needed, the context holds \(c) (use a larger --ctx)"
        case .invalidToken(let t, let v): return "token id \(t) is outside the vocabulary (size \(v))"
        case .weightRead(let why): return "the model file could not be read: \(why)"
        }
    }
}

/// Per-session buffers: KV cache, activations for up to maxBatch tokens, logits, worker pool.
public final class InferenceState: @unchecked Sendable {
    public let cache: KVSequence
    public let maxBatch: Int
    public let pool: WorkerPool
    public let matmul: Matmul
    let x, xn, q, k, v, att, o, gate, up, attentionScratch: UnsafeMutablePointer<Float>
    /// cos/sin of every token of a batch for the global and the sliding-window RoPE bases.
    let ropeGlobal, ropeSliding: UnsafeMutablePointer<Float>
    /// Per batch row: its position and the index of its segment.
    let positions: UnsafeMutablePointer<Int>
    let rowSegment: UnsafeMutablePointer<Int32>
    /// Floats of attention scratch per thread (scores of one query group over the whole context).
    let attentionScratchStride: Int
    let moeScratch: MoEScratch?
    let deepseek4Scratch: DeepSeek4Scratch?
    let gemma4Scratch: Gemma4Scratch?
    let qwen35Scratch: Qwen35Scratch?
    /// MLA: prompt batches of at least this many tokens run the expanded form, shorter ones (decode)
    /// the absorbed form.
    public var latentExpandedMinimumTokens: Int
    let latentScratch: LatentAttentionScratch?
    private(set) var logits: UnsafeMutablePointer<Float>
    private var logitsCapacity: Int
    private var owned: [UnsafeMutablePointer<Float>] = []

    /// Positions per KV page (DS_KV_PAGE_TOKENS overrides; a page as long as the context is the
    /// contiguous layout, used to measure what paging costs).
    public static let defaultPageTokens: Int = {
        if let v = getenv("DS_KV_PAGE_TOKENS"), let n = Int(String(cString: v)), n > 0 { return n }
        return 32
    }()

    /// KV rows of one position for this config: MLA caches one row of latent + rope key per token and
    /// reads its values inside those rows. Sliding-window and chunked layers keep only what their span
    /// reaches.
    public static func kvShape(_ c: ModelConfig, type: KVType = .f32) -> KVShape {
        // DeepSeek V4 keeps its compressed cache beside the pages (KVSequence.auxiliary); the pages only
        // carry the sequence's tokens and positions.
        // (its entries are stored as F32, or as half for narrower KV types).
        if let ds = c.deepseek4 {
            let side = ds.compressedBytesPerPosition(elementBytes: type == .f32 ? 4 : 2).rounded(.up)
            return KVShape(layers: 1, kRowFloats: type.blockSize, vRowFloats: 0, type: type, retention: [.all],
                           sideBytesPerPosition: Int(side), sideFixedBytes: ds.fixedSideBytes)
        }
        // Gemma 4: one KV layer per layer that writes K/V (shared layers read another's), rows as wide as
        // the widest layer's.
        if let q = c.qwen35 {
            return KVShape(layers: max(1, q.attentionLayers), kRowFloats: c.headCountKV * c.headDimK, vRowFloats: c.headCountKV * c.headDimV,
                           type: type, retention: Array(repeating: .all, count: max(1, q.attentionLayers)), sideFixedBytes: q.stateBytes)
        }
        if let g = c.gemma4 {
            let owners = g.layers.filter(\.ownsKV)
            return KVShape(layers: g.kvLayers, kRowFloats: g.kvRowFloats, vRowFloats: g.kvRowFloats, type: type,
                           retention: owners.map { $0.sliding ? .window(g.window) : .all })
        }
        return KVShape(layers: c.layerCount, kRowFloats: c.mla?.cacheRowFloats ?? c.headCountKV * c.headDimK,
                vRowFloats: c.mla == nil ? c.headCountKV * c.headDimV : 0, type: type, retention: c.attentionSpans.map(\.retention))
    }

    /// Pages a private pool needs for one sequence of `contextLength` positions in batches of maxBatch.
    public static func privatePoolPages(_ c: ModelConfig, type: KVType = .f32, contextLength: Int, maxBatch: Int) -> Int {
        KVPagePool.pagesNeeded(kvShape(c, type: type), positions: contextLength, batch: maxBatch, pageTokens: defaultPageTokens)
    }

    /// Why `type` cannot hold this model's KV (nil: it can). Q8_0 stores whole blocks of 32: every head's
    /// slice of a row must be whole blocks.
    public static func kvTypeProblem(_ type: KVType, _ c: ModelConfig) -> String? {
        guard type.blockSize > 1, c.deepseek4 == nil else { return nil }
        let dims = c.mla.map { [$0.kvLoraRank, $0.ropeDim] + ($0.indexer.map { [$0.headDim] } ?? []) } ?? [c.headDimK, c.headDimV]
        guard dims.allSatisfy({ $0 % type.blockSize == 0 }) else {
            return "--kv-type \(type.rawValue) needs head sizes divisible by \(type.blockSize); this model has \(dims.map(String.init).joined(separator: " and "))"
        }
        return nil
    }

    /// Buffers for batches of up to maxBatch tokens and a KV sequence of up to contextLength positions,
    /// in `kvPool` (shared with other sessions of the model: prefix pages are reused across them) or,
    /// when nil, in a private pool of `kvType` just large enough.
    public init(config c: ModelConfig, contextLength: Int, maxBatch: Int = 512, threads: Int, kvType: KVType = .f32,
                kvPool: KVPagePool? = nil) {
        self.maxBatch = max(1, maxBatch)
        let ctx = max(1, contextLength)
        let shape = InferenceState.kvShape(c, type: kvPool?.shape.type ?? kvType)
        precondition(InferenceState.kvTypeProblem(shape.type, c) == nil, InferenceState.kvTypeProblem(shape.type, c) ?? "")
        let pageTokens = InferenceState.defaultPageTokens
        let pages = kvPool ?? KVPagePool(shape: shape, pageTokens: pageTokens,
                                         capacity: KVPagePool.pagesNeeded(shape, positions: ctx, batch: self.maxBatch, pageTokens: pageTokens))
        precondition(pages.shape == shape, "KV pool shape \(pages.shape) does not fit the model (\(shape))")
        cache = KVSequence(pool: pages, maxPositions: ctx)
        pool = WorkerPool(threads: threads)
        matmul = Matmul(pool: pool)
        let b = self.maxBatch
        var owned: [UnsafeMutablePointer<Float>] = []
        func alloc(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            owned.append(p)
            return p
        }
        let e = c.embeddingLength
        x = alloc(b * e); xn = alloc(b * max(e, c.headCount * c.headDimV))
        q = alloc(b * c.headCount * c.headDimK); k = alloc(b * c.headCountKV * c.headDimK)
        v = alloc(b * c.headCountKV * c.headDimV)
        att = alloc(b * c.headCount * max(c.headDimV, c.mla?.valueDim ?? 0))
        o = alloc(b * e); gate = alloc(b * c.feedForwardLength); up = alloc(b * c.feedForwardLength)
        ropeGlobal = alloc(b * c.ropeDimensions)
        ropeSliding = alloc(b * c.ropeDimensions)
        positions = .allocate(capacity: b)
        rowSegment = .allocate(capacity: b)
        // Scores of one query group over the whole context (decode kernel) or the block kernel's tiles
        // (widest key/value rows: standard heads, MLA's latent rows, MLA's expanded heads).
        let widestKey = max(c.headDimK, c.mla?.cacheRowFloats ?? 0, c.mla.map { $0.nopeDim + $0.ropeDim } ?? 0)
        let widestValue = max(c.headDimV, c.mla?.kvLoraRank ?? 0, c.mla?.valueDim ?? 0)
        attentionScratchStride = max(ctx * (c.headCount / c.headCountKV),
                                     AttentionBlock.blockScratchFloats(keyDim: widestKey, valueDim: widestValue, heads: c.headCount))
        attentionScratch = alloc(pool.threads * attentionScratchStride)
        logitsCapacity = 0
        logits = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        self.owned = owned
        moeScratch = c.moe.map { MoEScratch(config: $0, embedding: e, maxBatch: b) }
        let threadCount = pool.threads
        latentScratch = c.mla.map { LatentAttentionScratch(config: $0, heads: c.headCount, maxBatch: b, threads: threadCount) }
        gemma4Scratch = c.gemma4 != nil ? Gemma4Scratch(config: c, maxBatch: b) : nil
        qwen35Scratch = c.qwen35 != nil ? Qwen35Scratch(config: c, maxBatch: b) : nil
        deepseek4Scratch = c.deepseek4 != nil ? DeepSeek4Scratch(config: c, maxBatch: b, threads: threadCount) : nil
        latentExpandedMinimumTokens = c.mla.map { LatentAttentionBlock.expandedMinimumTokens($0) } ?? Int.max
    }

    deinit {
        for p in owned { p.deallocate() }
        logits.deallocate()
        splitBuffer?.deallocate()
        positions.deallocate()
        rowSegment.deallocate()
    }

    private var splitBuffer: UnsafeMutablePointer<Float>?
    private var splitCapacity = 0

    /// Scratch for split-K attention partials (grown on demand, kept for the session).
    func splitScratch(floats n: Int) -> UnsafeMutablePointer<Float> {
        if n > splitCapacity {
            splitBuffer?.deallocate()
            splitBuffer = .allocate(capacity: n)
            splitCapacity = n
        }
        return splitBuffer!
    }

    func reserveLogits(rows: Int, vocab: Int) {
        let n = rows * vocab
        if n > logitsCapacity {
            logits.deallocate()
            logits = .allocate(capacity: n)
            logitsCapacity = n
        }
    }

    /// Position of the next token.
    public var position: Int { cache.count }
}
