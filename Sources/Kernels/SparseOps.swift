// Inputs of the sparse and compressed attention ops (DeepSeek sparse attention's lightning indexer,
// DeepSeek V4's compressors and compressed attention) and the selection they share.
//
// Lightning indexer, per query token t over `visible` key rows K[s]:
//   score_s = scale · Σ_j w_j · ReLU(q_j · K[s])        (j < heads; w: the token's head weights)
//   keep the top_k scores (ties: the earlier row), in ascending row order.

import GGUF

/// Rows of F32 or IEEE half, `rowBytes` apart (DeepSeek V4's compressed entries and indexer keys).
public struct StoredRows {
    public var storage: UnsafeRawPointer
    public var count: Int
    public var width: Int
    public var half: Bool

    public init(storage: UnsafeRawPointer, count: Int, width: Int, half: Bool) {
        self.storage = storage; self.count = count; self.width = width; self.half = half
    }

    public var rowBytes: Int { width * (half ? 2 : 4) }
    /// The ggml type of the rows (for the GEMM over them).
    public var type: GGMLType { half ? .f16 : .f32 }

    /// Rows first ..< first + n as floats into out [n, width].
    public func copy(rows first: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        let src = storage + first * rowBytes
        if half { Kernels.fromHalf(src.assumingMemoryBound(to: UInt16.self), into: out, count: n * width) }
        else { out.update(from: src.assumingMemoryBound(to: Float.self), count: n * width) }
    }
}

/// Per-thread scratch of an indexer selection: `perThread` candidates per thread.
public struct SelectionScratch {
    /// [threads, perThread] scores; [threads, perThread · heads] per-head scores; [threads, perThread] order.
    public var scores: UnsafeMutablePointer<Float>
    public var headScores: UnsafeMutablePointer<Float>
    public var order: UnsafeMutablePointer<Int32>
    public var perThread: Int
    public init(scores: UnsafeMutablePointer<Float>, headScores: UnsafeMutablePointer<Float>, order: UnsafeMutablePointer<Int32>,
                perThread: Int) {
        self.scores = scores; self.headScores = headScores; self.order = order; self.perThread = perThread
    }
}

/// The lightning indexer of T query tokens over the keys cached so far (DeepSeek sparse attention).
public struct IndexerSelection {
    /// [positions, headDim] F32 keys of every position up to the batch's last.
    public var keys: UnsafePointer<Float>
    /// [T, heads, headDim] queries; [T, heads] head weights.
    public var queries: UnsafePointer<Float>
    public var headWeights: UnsafePointer<Float>
    public var heads: Int
    public var headDim: Int
    public var topK: Int
    public var tokens: Int
    /// Token t sees positions 0 ... startPosition + t.
    public var startPosition: Int
    /// [T, topK] selected positions (ascending) and [T] their counts.
    public var selected: UnsafeMutablePointer<Int32>
    public var counts: UnsafeMutablePointer<Int32>
    public var scratch: SelectionScratch

    public init(keys: UnsafePointer<Float>, queries: UnsafePointer<Float>, headWeights: UnsafePointer<Float>, heads: Int, headDim: Int,
                topK: Int, tokens: Int, startPosition: Int, selected: UnsafeMutablePointer<Int32>, counts: UnsafeMutablePointer<Int32>,
                scratch: SelectionScratch) {
        self.keys = keys; self.queries = queries; self.headWeights = headWeights; self.heads = heads; self.headDim = headDim
        self.topK = topK; self.tokens = tokens; self.startPosition = startPosition; self.selected = selected; self.counts = counts
        self.scratch = scratch
    }
}

/// A compressor (DeepSeek V4): token rows [C | Z] go into a ring of `ringRows` rows; when a window of
/// `ratio` positions completes, its entry is, channel by channel,
///   entry[ch] = Σ_s softmax_s(Z_s[ch]) · C_s[ch]   (overlapping: this window's second halves and the
///   previous window's first halves), then rmsnorm(entry) · norm and RoPE at the window's first position.
public struct CompressorInput {
    /// [ringRows, 2 · rowFloats]: C then Z of a position at slot position mod ringRows.
    public var ring: UnsafeMutablePointer<Float>
    public var ringRows: Int
    public var rowFloats: Int
    /// Floats of an entry.
    public var width: Int
    public var ratio: Int
    public var overlapping: Bool
    /// [ratio, rowFloats] bias added to Z by position mod ratio; [width] the entries' norm.
    public var positionBias: UnsafePointer<Float>
    public var norm: UnsafePointer<Float>
    public var epsilon: Float
    public var rope: Rope
    public var ropeDim: Int
    /// Scratch: one cos/sin table.
    public var table: UnsafeMutablePointer<Float>

    public init(ring: UnsafeMutablePointer<Float>, ringRows: Int, rowFloats: Int, width: Int, ratio: Int, overlapping: Bool,
                positionBias: UnsafePointer<Float>, norm: UnsafePointer<Float>, epsilon: Float, rope: Rope, ropeDim: Int,
                table: UnsafeMutablePointer<Float>) {
        self.ring = ring; self.ringRows = ringRows; self.rowFloats = rowFloats; self.width = width; self.ratio = ratio
        self.overlapping = overlapping; self.positionBias = positionBias; self.norm = norm; self.epsilon = epsilon; self.rope = rope
        self.ropeDim = ropeDim; self.table = table
    }
}

/// Attention of T query tokens (DeepSeek V4) over, per token, the raw rows of its last `window`
/// positions and the compressed entries visible to it (all, or the indexer's top_k), K = V; a sink logit
/// per head joins each softmax's denominator, and the output's rope part is rotated back:
///   o_h = rope⁻¹(Σ_i e^(s_i) K_i / (Σ_i e^(s_i) + e^(sink_h))),  s_i = q_h · K_i / √d.
public struct CompressedAttentionInput {
    /// [T, heads, headDim]
    public var q: UnsafePointer<Float>
    public var tokens: Int
    public var startPosition: Int
    public var heads: Int
    public var headDim: Int
    public var window: Int
    /// Row r = position startPosition − (window − 1) + r.
    public var recent: UnsafePointer<Float>
    /// Compressed entries (entry w covers positions w · ratio ..< (w + 1) · ratio).
    public var entries: StoredRows?
    public var ratio: Int
    /// The indexer's keys (one per entry), queries [T, heads, headDim], head weights [T, heads].
    public var indexerKeys: StoredRows?
    public var indexerQueries: UnsafePointer<Float>
    public var indexerWeights: UnsafePointer<Float>
    public var indexerHeads: Int
    public var indexerHeadDim: Int
    public var topK: Int
    /// [heads] sink logits.
    public var sinks: UnsafePointer<Float>
    public var rope: Rope
    public var ropeDim: Int
    /// [T, ropeDim] cos/sin tables.
    public var tables: UnsafePointer<Float>
    /// Per thread, for `perThreadKeys` keys: gathered keys [keys, headDim], scores [keys, max(heads, 1)],
    /// indexer scores [keys, max(indexerHeads, 1)], order [keys], and [heads] running max / exp-sum.
    public var gathered: UnsafeMutablePointer<Float>
    public var scores: UnsafeMutablePointer<Float>
    public var headScores: UnsafeMutablePointer<Float>
    public var order: UnsafeMutablePointer<Int32>
    public var partMax: UnsafeMutablePointer<Float>
    public var partSum: UnsafeMutablePointer<Float>
    public var perThreadKeys: Int
    /// [T, heads, headDim]
    public var out: UnsafeMutablePointer<Float>

    public init(q: UnsafePointer<Float>, tokens: Int, startPosition: Int, heads: Int, headDim: Int, window: Int, recent: UnsafePointer<Float>,
                entries: StoredRows?, ratio: Int, indexerKeys: StoredRows?, indexerQueries: UnsafePointer<Float>,
                indexerWeights: UnsafePointer<Float>, indexerHeads: Int, indexerHeadDim: Int, topK: Int, sinks: UnsafePointer<Float>,
                rope: Rope, ropeDim: Int, tables: UnsafePointer<Float>, gathered: UnsafeMutablePointer<Float>,
                scores: UnsafeMutablePointer<Float>, headScores: UnsafeMutablePointer<Float>, order: UnsafeMutablePointer<Int32>,
                partMax: UnsafeMutablePointer<Float>, partSum: UnsafeMutablePointer<Float>, perThreadKeys: Int,
                out: UnsafeMutablePointer<Float>) {
        self.q = q; self.tokens = tokens; self.startPosition = startPosition; self.heads = heads; self.headDim = headDim
        self.window = window; self.recent = recent; self.entries = entries; self.ratio = ratio; self.indexerKeys = indexerKeys
        self.indexerQueries = indexerQueries; self.indexerWeights = indexerWeights; self.indexerHeads = indexerHeads
        self.indexerHeadDim = indexerHeadDim; self.topK = topK; self.sinks = sinks; self.rope = rope; self.ropeDim = ropeDim
        self.tables = tables; self.gathered = gathered; self.scores = scores; self.headScores = headScores; self.order = order
        self.partMax = partMax; self.partSum = partSum; self.perThreadKeys = perThreadKeys; self.out = out
    }
}

public enum Selection {
    /// The lightning indexer's choice for one query: order[0..<topK] ← the rows s < visible with the
    /// best scale · Σ_j w_j · ReLU(q_j · K[s]), ascending. keys: rows of `keyType`, keyRowBytes apart;
    /// headScores: heads · visible floats; scores, order: visible each.
    public static func lightningTopK(keys: UnsafeRawPointer, keyType: GGMLType, keyRowBytes: Int, visible: Int,
                                     query: UnsafePointer<Float>, heads: Int, headDim: Int, headWeights w: UnsafePointer<Float>,
                                     scale: Float, topK: Int, headScores: UnsafeMutablePointer<Float>,
                                     scores: UnsafeMutablePointer<Float>, order: UnsafeMutablePointer<Int32>) {
        // headScores[j][s] = q_j · K[s] for every head in one GEMM.
        Kernels.gemm(keyType, cols: headDim, weights: keys, rowBytes: keyRowBytes, rows: visible,
                     activations: query, activationRowBytes: headDim * 4, tokens: heads, into: headScores, outputStride: visible)
        for s in 0..<visible {
            var score: Float = 0
            for j in 0..<heads { score += w[j] * max(0, headScores[j * visible + s]) }
            scores[s] = score * scale
            order[s] = Int32(s)
        }
        selectTop(topK, of: order, count: visible, scores: UnsafePointer(scores))
        var kept = UnsafeMutableBufferPointer(start: order, count: topK)
        kept.sort()
    }

    /// Moves the k best candidates (higher score first, ties: the earlier position) to order[0..<k], in
    /// linear expected time (quickselect with a median-of-three pivot).
    public static func selectTop(_ k: Int, of base: UnsafeMutablePointer<Int32>, count n: Int, scores: UnsafePointer<Float>) {
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
