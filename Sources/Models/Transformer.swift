// The decoder-only transformer shared by llama, qwen2, qwen3 and gemma3:
//   x = embed(tokens) [· embeddingScale]
//   per layer: x += [postNorm](Wo · attn(rope(norm(x)·Wq), rope(norm(x)·Wk), norm(x)·Wv))
//              x += [postNorm](Wdown · (act(Wgate·norm(x)) ⊙ Wup·norm(x)))
//   logits = Wout · norm(x) [softcap]
// Optional parts (biases, q/k norms, post-norms) are used when the GGUF has their tensors.

import GGUF
import Kernels
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
    let ropeGlobal: Rope
    let ropeSliding: Rope

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
        layers = try (0..<c.layerCount).map { try r.layer($0, c) }
        let factors = r.has(.ropeFrequencies) ? try r.vector(.ropeFrequencies, count: c.ropeDimensions / 2).array : nil
        ropeGlobal = Rope(dimensions: c.ropeDimensions, base: c.ropeBase, style: c.ropeStyle, scale: c.ropeScale, frequencyFactors: factors)
        ropeSliding = Rope(dimensions: c.ropeDimensions, base: c.ropeBaseSliding ?? c.ropeBase, style: c.ropeStyle, scale: 1, frequencyFactors: factors)
    }

    public var vocabularySize: Int { tokenEmbedding.rows }

    /// Bytes of weights a decode step reads (all matrices once + the embedding row).
    public var weightBytesPerToken: Int {
        var total = output.rows * output.rowBytes
        for l in layers {
            for m in [l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down] { total += m.rows * m.rowBytes }
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
        guard startPosition + tokens.count <= state.cache.capacity else {
            throw InferenceError.contextOverflow(needed: startPosition + tokens.count, capacity: state.cache.capacity)
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
            tokens.withUnsafeBufferPointer { buf in
                forwardBatch(buf.baseAddress! + done, count: n, startPosition: startPosition + done, state: state,
                             logitRows: lo..<n, logitsOffset: max(0, done + lo - firstRow))
            }
            done += n
        }
        state.cache.count = startPosition + tokens.count
        let rows = tokens.count - firstRow
        if rows > 0 { result = UnsafeBufferPointer(start: state.logits, count: rows * vocabularySize) }
        return result
    }

    private func forwardBatch(_ tokens: UnsafePointer<Int32>, count T: Int, startPosition: Int, state s: InferenceState,
                              logitRows: Range<Int>, logitsOffset: Int) {
        let c = config
        let e = c.embeddingLength, dk = c.headDimK, dv = c.headDimV
        let h = c.headCount, hkv = c.headCountKV
        let qDim = h * dk, kDim = hkv * dk, vDim = hkv * dv, f = c.feedForwardLength
        let mm = s.matmul, pool = s.pool
        let x = s.x, xn = s.xn, q = s.q, k = s.k, v = s.v, att = s.att, o = s.o, gate = s.gate, up = s.up
        let eps = c.rmsEpsilon
        /// Token-independent work of a batch runs on the pool (serially for a single token).
        func perToken(_ body: (Int) -> Void) {
            if T < 4 { for t in 0..<T { body(t) }; return }
            pool.parallelFor(T) { r in for t in r { body(t) } }
        }

        // Embedding rows (dequantized), optional scale; RoPE cos/sin per token for both bases.
        let ropeStride = c.ropeDimensions
        perToken { t in
            tokenEmbedding.dequantizeRow(Int(tokens[t]), into: x + t * e)
            if let sc = c.embeddingScale { for i in 0..<e { x[t * e + i] *= sc } }
            ropeGlobal.fill(s.ropeGlobal + t * ropeStride, position: startPosition + t)
            ropeSliding.fill(s.ropeSliding + t * ropeStride, position: startPosition + t)
        }

        for (l, w) in layers.enumerated() {
            let sliding = c.slidingLayers[l]
            perToken { t in Kernels.rmsNorm(x + t * e, w.attnNorm.pointer, into: xn + t * e, count: e, epsilon: eps) }
            mm.multiply([(w.wq, q), (w.wk, k), (w.wv, v)], xn, tokens: T)
            let rope = sliding ? ropeSliding : ropeGlobal
            let ropeTable = sliding ? s.ropeSliding : s.ropeGlobal
            // Biases, q/k norms, RoPE, then the token's K/V into the cache.
            perToken { t in
                let qt = q + t * qDim, kt = k + t * kDim, vt = v + t * vDim
                if let b = w.bq { Kernels.add(qt, b.pointer, count: qDim) }
                if let b = w.bk { Kernels.add(kt, b.pointer, count: kDim) }
                if let b = w.bv { Kernels.add(vt, b.pointer, count: vDim) }
                if let qn = w.qNorm { for i in 0..<h { Kernels.rmsNorm(qt + i * dk, qn.pointer, into: qt + i * dk, count: dk, epsilon: eps) } }
                if let kn = w.kNorm { for i in 0..<hkv { Kernels.rmsNorm(kt + i * dk, kn.pointer, into: kt + i * dk, count: dk, epsilon: eps) } }
                rope.rotate(qt, heads: h, headDim: dk, table: ropeTable + t * ropeStride)
                rope.rotate(kt, heads: hkv, headDim: dk, table: ropeTable + t * ropeStride)
                let pos = startPosition + t
                (s.cache.k[l] + pos * kDim).update(from: kt, count: kDim)
                (s.cache.v[l] + pos * vDim).update(from: vt, count: vDim)
            }
            AttentionBlock.attend(q: q, att: att, tokens: T, startPosition: startPosition, cache: s.cache, layer: l,
                                  config: c, window: sliding ? c.slidingWindow : nil, pool: pool,
                                  scratch: s.attentionScratch, scratchStride: s.attentionScratchStride)
            mm.multiply(w.wo, att, tokens: T, into: o)
            // o (+bias) [post-norm] added to the residual, then the FFN input norm.
            perToken { t in
                let ot = o + t * e
                if let b = w.bo { Kernels.add(ot, b.pointer, count: e) }
                if let pn = w.postAttentionNorm { Kernels.rmsNorm(ot, pn.pointer, into: ot, count: e, epsilon: eps) }
                Kernels.add(x + t * e, ot, count: e)
                Kernels.rmsNorm(x + t * e, w.ffnNorm.pointer, into: xn + t * e, count: e, epsilon: eps)
            }
            // gate and up in one dispatch; each thread applies act(gate) ⊙ up to the rows it computed.
            let activation = c.activation
            mm.multiply([(w.gate, gate), (w.up, up)], xn, tokens: T) { rows in
                for t in 0..<T {
                    let g = gate + t * f + rows.lowerBound, u = up + t * f + rows.lowerBound
                    switch activation {
                    case .silu: Kernels.swiglu(g, u, count: rows.count)
                    case .geluTanh: Kernels.geglu(g, u, count: rows.count)
                    }
                }
            }
            mm.multiply(w.down, gate, tokens: T, into: o)
            perToken { t in
                let ot = o + t * e
                if let pn = w.postFFNNorm { Kernels.rmsNorm(ot, pn.pointer, into: ot, count: e, epsilon: eps) }
                Kernels.add(x + t * e, ot, count: e)
            }
        }

        // Output head on the requested rows (logit row i of the call = batch row logitRows.lowerBound + i).
        if logitRows.isEmpty { return }
        let first = logitRows.lowerBound, rows = logitRows.count
        let dest = s.logits + logitsOffset * vocabularySize
        for t in 0..<rows {
            Kernels.rmsNorm(x + (first + t) * e, outputNorm.pointer, into: xn + t * e, count: e, epsilon: eps)
        }
        mm.multiply(output, xn, tokens: rows, into: dest)
        if let cap = c.finalLogitSoftcap, cap > 0 {
            for i in 0..<(rows * vocabularySize) { dest[i] = cap * tanhf(dest[i] / cap) }
        }
    }
}

public enum InferenceError: Error, CustomStringConvertible {
    case contextOverflow(needed: Int, capacity: Int)
    case invalidToken(Int32, vocabularySize: Int)
    case emptyPrompt
    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty (no tokens to evaluate)"
        case .contextOverflow(let n, let c): return "context overflow: \(n) positions needed, the context holds \(c) (use a larger --ctx)"
        case .invalidToken(let t, let v): return "token id \(t) is outside the vocabulary (size \(v))"
        }
    }
}

/// Per-session buffers: KV cache, activations for up to maxBatch tokens, logits, worker pool.
public final class InferenceState: @unchecked Sendable {
    public let cache: KVCache
    public let maxBatch: Int
    public let pool: WorkerPool
    public let matmul: Matmul
    let x, xn, q, k, v, att, o, gate, up, attentionScratch: UnsafeMutablePointer<Float>
    /// cos/sin of every token of a batch for the global and the sliding-window RoPE bases.
    let ropeGlobal, ropeSliding: UnsafeMutablePointer<Float>
    /// Floats of attention scratch per thread (scores of one query group over the whole context).
    let attentionScratchStride: Int
    private(set) var logits: UnsafeMutablePointer<Float>
    private var logitsCapacity: Int
    private var owned: [UnsafeMutablePointer<Float>] = []

    public init(config c: ModelConfig, contextLength: Int, maxBatch: Int = 512, threads: Int) {
        self.maxBatch = max(1, maxBatch)
        let ctx = max(1, contextLength)
        cache = KVCache(layers: c.layerCount, capacity: ctx, kRowFloats: c.headCountKV * c.headDimK,
                        vRowFloats: c.headCountKV * c.headDimV)
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
        v = alloc(b * c.headCountKV * c.headDimV); att = alloc(b * c.headCount * c.headDimV)
        o = alloc(b * e); gate = alloc(b * c.feedForwardLength); up = alloc(b * c.feedForwardLength)
        ropeGlobal = alloc(b * c.ropeDimensions)
        ropeSliding = alloc(b * c.ropeDimensions)
        attentionScratchStride = ctx * (c.headCount / c.headCountKV)
        attentionScratch = alloc(pool.threads * attentionScratchStride)
        logitsCapacity = 0
        logits = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        self.owned = owned
    }

    deinit {
        for p in owned { p.deallocate() }
        logits.deallocate()
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
