// DeepSeek sparse attention's lightning indexer (GLM-5 `glm-dsa`): a cheap scorer picks, for every
// query, the top_k past positions that multi-head latent attention then attends to.
//   iq      = rope(W_iq · qr)                      [Hi, Di]   qr: the normalised q latent of MLA
//   ik      = rope(LayerNorm(W_ik · xn))           [Di]       cached per position next to MLA's row
//   w       = W_iw · xn / sqrt(Hi · Di)            [Hi]
//   score_s = Σ_j w_j · ReLU(iq_j · ik_s)          for s ≤ p (future positions are never candidates)
//   keep    = the min(top_k, p + 1) best s         (no forced self or local window)
// RoPE is interleaved on the first rope dims of each head (the same angles as MLA's rope part).
// "Shared" layers compute nothing and reuse the selection of the last full layer for the same
// queries of the same forward call. While a query sees ≤ top_k positions its selection is all of
// them, so attention is dense until the context passes top_k. The positive scale factors change no
// ranking; they are kept so the scores have the reference's values.

import GGUF
import Kernels
import KVCache

public struct SparseIndexerConfig: Sendable {
    public var heads: Int
    public var headDim: Int
    public var topK: Int
    /// Per layer: true = own indexer ("full"), false = reuse the previous full layer's selection.
    public var fullLayers: [Bool]
    /// LayerNorm epsilon of the indexer key (transformers: 1e-6).
    public var keyNormEpsilon: Float
}

public struct SparseIndexerWeights: @unchecked Sendable {
    /// W_iq[Hi·Di, qLora], W_ik[Di, e], W_iw[Hi, e]; LayerNorm weight and bias [Di].
    public var queryB: WeightMatrix
    public var key: WeightMatrix
    public var keyNorm: FloatBuffer
    public var keyNormBias: FloatBuffer
    public var headWeights: WeightMatrix
}

extension WeightReader {
    func sparseIndexer(_ l: Int, _ c: ModelConfig, _ m: LatentAttentionConfig, _ ix: SparseIndexerConfig) throws -> SparseIndexerWeights {
        let e = c.embeddingLength
        return SparseIndexerWeights(
            queryB: try matrix(named: MoETensorName.indexerQB(l).name, rows: ix.heads * ix.headDim, cols: m.qLoraRank),
            key: try matrix(named: MoETensorName.indexerK(l).name, rows: ix.headDim, cols: e),
            keyNorm: try vector(named: MoETensorName.indexerKNorm(l).name, count: ix.headDim),
            keyNormBias: try vector(named: MoETensorName.indexerKNormBias(l).name, count: ix.headDim),
            headWeights: try matrix(named: MoETensorName.indexerProj(l).name, rows: ix.heads, cols: e))
    }
}

/// Per-session indexer buffers. The selection is kept per batch row so that shared layers of every
/// sequence of a batch find the selection their full layer made.
final class SparseIndexerScratch {
    let query: FloatBuffer       // [T, Hi, Di]
    let key: FloatBuffer         // [T, Di]
    let headWeights: FloatBuffer // [T, Hi]
    /// Per batch row: selected positions (ascending) and how many.
    let selected: UnsafeMutablePointer<Int32>   // [maxBatch, topK]
    let selectedCount: UnsafeMutablePointer<Int32>
    /// The layer's cached indexer keys gathered contiguously [positions, Di]; per thread the per-head
    /// scores [Hi, positions], the combined scores and the candidates' order over the context.
    private(set) var keys: FloatBuffer
    private(set) var headScores: FloatBuffer
    private(set) var scores: FloatBuffer
    private(set) var order: UnsafeMutablePointer<Int32>
    private(set) var perThreadPositions = 0
    let rows: UnsafeMutablePointer<Int32>       // [maxBatch, topK] cache rows of the current layer
    let config: SparseIndexerConfig
    let threads: Int

    init(config ix: SparseIndexerConfig, maxBatch b: Int, threads: Int) {
        config = ix
        self.threads = threads
        query = FloatBuffer(count: b * ix.heads * ix.headDim)
        key = FloatBuffer(count: b * ix.headDim)
        headWeights = FloatBuffer(count: b * ix.heads)
        selected = .allocate(capacity: b * ix.topK)
        selectedCount = .allocate(capacity: b)
        selectedCount.initialize(repeating: 0, count: b)
        rows = .allocate(capacity: b * ix.topK)
        scores = FloatBuffer(count: 1)
        order = .allocate(capacity: 1)
        keys = FloatBuffer(count: 1)
        headScores = FloatBuffer(count: 1)
    }
    deinit { selected.deallocate(); selectedCount.deallocate(); rows.deallocate(); order.deallocate() }

    func reserve(positions: Int) {
        guard positions > perThreadPositions else { return }
        let n = max(positions, perThreadPositions * 2)
        scores = FloatBuffer(count: threads * n)
        keys = FloatBuffer(count: n * config.headDim)
        headScores = FloatBuffer(count: threads * n * config.heads)
        order.deallocate()
        order = .allocate(capacity: threads * n)
        perThreadPositions = n
    }
}

enum SparseIndexerBlock {
    /// Indexer query, key and head weights of T tokens (keys normalised and rotated, ready to cache).
    /// `qLatent` [T, qLora] is MLA's normalised q latent, `xn` [T, e] the layer's normalised input.
    static func project(_ w: SparseIndexerWeights, qLatent: UnsafePointer<Float>, xn: UnsafePointer<Float>, tokens T: Int,
                        rope: Rope, ropeTable: UnsafePointer<Float>, ropeStride: Int, matmul mm: Matmul, mode: ProductMode,
                        scratch x: SparseIndexerScratch) {
        let ix = x.config, di = ix.headDim, hi = ix.heads
        mm.multiply(w.queryB, qLatent, tokens: T, into: x.query.pointer, mode: mode)
        mm.multiply([(w.key, x.key.pointer), (w.headWeights, x.headWeights.pointer)], xn, tokens: T, mode: mode)
        let scale = 1 / Float(hi * di).squareRoot()
        for t in 0..<T {
            let table = ropeTable + t * ropeStride
            let k = x.key.pointer + t * di
            layerNorm(k, weight: w.keyNorm.pointer, bias: w.keyNormBias.pointer, count: di, epsilon: ix.keyNormEpsilon)
            rope.rotate(k, heads: 1, headDim: di, table: table)
            rope.rotate(x.query.pointer + t * hi * di, heads: hi, headDim: di, table: table)
            for j in 0..<hi { x.headWeights.pointer[t * hi + j] *= scale }
        }
    }

    /// x ← (x − mean) / sqrt(var + eps) · weight + bias
    static func layerNorm(_ x: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, count n: Int, epsilon: Float) {
        var mean: Float = 0
        for i in 0..<n { mean += x[i] }
        mean /= Float(n)
        var variance: Float = 0
        for i in 0..<n { let d = x[i] - mean; variance += d * d }
        let inv = 1 / (variance / Float(n) + epsilon).squareRoot()
        for i in 0..<n { x[i] = (x[i] - mean) * inv * weight[i] + bias[i] }
    }

    /// Selects, for token t of the batch (position startPosition + t, batch row rowOffset + t), the
    /// top_k cached positions by indexer score. Keys are read from the cache rows of `layer` at
    /// `keyOffset` floats (their rows must already hold this batch's keys): gathered once per call, then
    /// per token one GEMM gives every head's q · k over the visible positions.
    static func select(tokens T: Int, startPosition: Int, rowOffset: Int, cache: KVSequence, layer l: Int, keyOffset: Int,
                       pool: WorkerPool, scratch x: SparseIndexerScratch) {
        let ix = x.config, di = ix.headDim, hi = ix.heads, topK = ix.topK
        let total = startPosition + T
        x.reserve(positions: total)
        let perThread = x.perThreadPositions
        let keys = x.keys.pointer, query = x.query.pointer, weights = x.headWeights.pointer
        let selected = x.selected, counts = x.selectedCount
        pool.parallelFor(total) { range in
            for s in range { cache.loadK(l, s, offset: keyOffset, count: di, into: keys + s * di) }
        }
        pool.run { ith, nth in
            let scores = x.scores.pointer + ith * perThread, order = x.order + ith * perThread
            let headScores = x.headScores.pointer + ith * perThread * hi
            for t in stride(from: ith, to: T, by: nth) {
                let visible = startPosition + t + 1
                let out = selected + (rowOffset + t) * topK
                counts[rowOffset + t] = Int32(min(topK, visible))
                if visible <= topK {
                    for s in 0..<visible { out[s] = Int32(s) }
                    continue
                }
                // headScores[j][s] = iq_j · ik_s;  score_s = Σ_j w_j · ReLU(headScores[j][s])
                Kernels.gemm(.f32, cols: di, weights: keys, rowBytes: di * 4, rows: visible,
                             activations: query + t * hi * di, activationRowBytes: di * 4, tokens: hi, into: headScores, outputStride: visible)
                let w = weights + t * hi
                for s in 0..<visible { scores[s] = 0; order[s] = Int32(s) }
                for j in 0..<hi {
                    let row = headScores + j * visible, wj = w[j]
                    for s in 0..<visible { scores[s] += wj * max(0, row[s]) }
                }
                selectTop(topK, of: order, count: visible, scores: UnsafePointer(scores))
                var kept = UnsafeMutableBufferPointer(start: order, count: topK)
                kept.sort()
                for i in 0..<topK { out[i] = order[i] }
            }
        }
    }

    /// Moves the k best candidates (higher score first, ties: the earlier position) to order[0..<k], in
    /// linear expected time (quickselect with a median-of-three pivot).
    static func selectTop(_ k: Int, of base: UnsafeMutablePointer<Int32>, count n: Int, scores: UnsafePointer<Float>) {
        let order = UnsafeMutableBufferPointer(start: base, count: n)
        @inline(__always) func better(_ a: Int32, _ b: Int32) -> Bool {
            let sa = scores[Int(a)], sb = scores[Int(b)]
            return sa > sb || (sa == sb && a < b)
        }
        var lo = 0, hi = n - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            // Median of three as the pivot, placed at hi.
            if better(order[mid], order[lo]) { order.swapAt(lo, mid) }
            if better(order[hi], order[lo]) { order.swapAt(lo, hi) }
            if better(order[mid], order[hi]) { order.swapAt(mid, hi) }
            let pivot = order[hi]
            var store = lo
            for i in lo..<hi where better(order[i], pivot) {
                order.swapAt(i, store)
                store += 1
            }
            order.swapAt(store, hi)
            if store == k - 1 || store == k { return }
            if store > k { hi = store - 1 } else { lo = store + 1 }
        }
    }
}
