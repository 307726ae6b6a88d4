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
                        rope: Rope, ropeTable: UnsafePointer<Float>, ropeStride: Int, ops: any Backend, mode: ProductMode,
                        scratch x: SparseIndexerScratch) {
        let ix = x.config, di = ix.headDim, hi = ix.heads
        ops.multiply(w.queryB, qLatent, tokens: T, into: x.query.pointer, mode: mode)
        ops.multiply([(w.key, x.key.pointer), (w.headWeights, x.headWeights.pointer)], xn, tokens: T, mode: mode)
        let keys = RowBlock(x.key.pointer, rows: T, width: di)
        ops.layerNorm(keys, weight: w.keyNorm.pointer, bias: w.keyNormBias.pointer, into: keys, epsilon: ix.keyNormEpsilon)
        ops.rotate(keys, heads: 1, headDim: di, rope: rope, tables: ropeTable, tableStride: ropeStride)
        ops.rotate(RowBlock(x.query.pointer, rows: T, width: hi * di), heads: hi, headDim: di, rope: rope, tables: ropeTable,
                   tableStride: ropeStride)
        ops.scale(RowBlock(x.headWeights.pointer, rows: T, width: hi), by: 1 / Float(hi * di).squareRoot())
    }

    /// Selects, for token t of the batch (position startPosition + t, batch row rowOffset + t), the
    /// top_k cached positions by indexer score. Keys are read from the cache rows of `layer` at
    /// `keyOffset` floats (their rows must already hold this batch's keys), gathered once per call.
    static func select(tokens T: Int, startPosition: Int, rowOffset: Int, cache: KVSequence, layer l: Int, keyOffset: Int,
                       pool: WorkerPool, ops: any Backend, scratch x: SparseIndexerScratch) {
        let ix = x.config, di = ix.headDim
        let total = startPosition + T
        x.reserve(positions: total)
        let keys = x.keys.pointer
        pool.parallelFor(total) { range in
            for s in range { cache.loadK(l, s, offset: keyOffset, count: di, into: keys + s * di) }
        }
        ops.selectByIndexer(IndexerSelection(
            keys: keys, queries: x.query.pointer, headWeights: x.headWeights.pointer, heads: ix.heads, headDim: di, topK: ix.topK,
            tokens: T, startPosition: startPosition, selected: x.selected + rowOffset * ix.topK, counts: x.selectedCount + rowOffset,
            scratch: SelectionScratch(scores: x.scores.pointer, headScores: x.headScores.pointer, order: x.order,
                                      perThread: x.perThreadPositions)))
    }
}
