// DeepSeek V4's attention and the cache it keeps per sequence (spec: docs/models/deepseek4.md §5.5–5.7, §6).
//   qr  = rmsnorm(W_qa · x);  q_h = rope(rmsnorm(W_qb · qr)_h)            [H, d]   (per-head norm without weight)
//   kv  = rope(rmsnorm(W_kv · x))                                          [d]      K = V, one head
//   keys for the query at p: raw kv of positions p − window + 1 … p, then compressed entries
//        w < (p + 1) / ratio: all of them (HCA), or the indexer's top_k (CSA)
//   o_h = rope⁻¹(Σ_i softmax_i(q_h · K_i / √d ; sink_h) K_i)               (the sink: a logit with no value)
//   out = W_b · concat_g(W_a[g] · concat(o_h of group g))
// A compressor turns every `ratio` tokens into one entry: C = W_kv · x, Z = W_gate · x + position[p mod
// ratio]; entry w = rope(rmsnorm(Σ_s softmax_s(Z_s) ⊙ C_s)) at position w · ratio, over the window's
// rows (CSA: the previous window's first halves and this window's second halves). RoPE is
// interleaved on the last rope dims; ratio-0 layers use the main base, others the compress base + YaRN.
//
// Cache per layer: the last `window` raw rows (a ring), the compressed entries (and the indexer's keys),
// and the compressor's ring of pending C/Z rows (2·ratio rows when windows overlap): what the model
// needs, nothing per position beyond the window. Entries grow by d floats per `ratio` tokens.

import GGUF
import Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A growable array of fixed-width rows of F32 or IEEE half (DeepSeek V4's compressed entries; half
/// when the session's KV type is narrower than F32). Rows go in and out as floats.
final class EntryRows {
    let width: Int
    let half: Bool
    private(set) var count = 0
    private(set) var capacity = 16
    private(set) var storage: UnsafeMutableRawPointer

    init(width: Int, half: Bool) {
        self.width = width
        self.half = half
        storage = .allocate(byteCount: capacity * width * (half ? 2 : 4), alignment: 64)
    }
    deinit { storage.deallocate() }

    var rowBytes: Int { width * (half ? 2 : 4) }
    /// The ggml type of the rows (for the GEMM over them).
    var type: GGMLType { half ? .f16 : .f32 }

    func append(_ row: UnsafePointer<Float>) {
        if count == capacity {
            let grown = UnsafeMutableRawPointer.allocate(byteCount: 2 * capacity * rowBytes, alignment: 64)
            grown.copyMemory(from: storage, byteCount: count * rowBytes)
            storage.deallocate()
            storage = grown
            capacity *= 2
        }
        let dst = storage + count * rowBytes
        if half { Kernels.toHalf(row, into: dst.assumingMemoryBound(to: UInt16.self), count: width) }
        else { dst.assumingMemoryBound(to: Float.self).update(from: row, count: width) }
        count += 1
    }

    /// Rows first ..< first + n as floats into out [n, width].
    func copy(rows first: Int, count n: Int, into out: UnsafeMutablePointer<Float>) { view.copy(rows: first, count: n, into: out) }

    /// The rows as the ops read them.
    var view: StoredRows { StoredRows(storage: UnsafeRawPointer(storage), count: count, width: width, half: half) }

    func removeAll() { count = 0 }
    /// Keeps the first `n` rows.
    func truncate(to n: Int) { count = min(count, max(0, n)) }
    var bytes: Int { count * rowBytes }

    /// Replaces every row with `n` rows of this store's layout from `source`.
    func replaceAll(rows n: Int, from source: UnsafeRawPointer) {
        if n > capacity {
            storage.deallocate()
            capacity = max(16, n)
            storage = .allocate(byteCount: capacity * rowBytes, alignment: 64)
        }
        storage.copyMemory(from: source, byteCount: n * rowBytes)
        count = n
    }
}

/// A compressor's state: the ring of pending rows [C | Z] and the entries made so far.
final class CompressorState {
    let ratio: Int
    let width: Int
    let rowFloats: Int
    let ringRows: Int
    let ring: FloatBuffer   // [ringRows, 2 · rowFloats]
    let entries: EntryRows

    init(_ w: CompressorWeights, halfEntries: Bool) {
        ratio = w.ratio; width = w.width; rowFloats = w.rowFloats
        ringRows = w.overlapping ? 2 * w.ratio : w.ratio
        ring = FloatBuffer(count: ringRows * 2 * rowFloats)
        entries = EntryRows(width: w.width, half: halfEntries)
    }
}

/// One sequence's DeepSeek V4 cache.
public final class DeepSeek4Cache: SequenceSideState {
    /// Positions processed.
    public internal(set) var count = 0
    let window: Int
    let headDim: Int
    /// Per layer: raw kv rows of the last `window` positions (slot = position mod window).
    let raw: [FloatBuffer]
    let compressors: [CompressorState?]
    let indexers: [CompressorState?]

    /// halfEntries: compressed entries and indexer keys stored as IEEE half (half the bytes per token).
    init(config ds: DeepSeek4Config, weights: DeepSeek4Weights, halfEntries: Bool) {
        window = ds.window
        headDim = ds.headDim
        raw = weights.layers.map { _ in FloatBuffer(count: ds.window * ds.headDim) }
        compressors = weights.layers.map { $0.attention.compressor.map { CompressorState($0, halfEntries: halfEntries) } }
        indexers = weights.layers.map { $0.attention.indexerCompressor.map { CompressorState($0, halfEntries: halfEntries) } }
    }

    public func reset() {
        count = 0
        for c in compressors { c?.entries.removeAll() }
        for c in indexers { c?.entries.removeAll() }
    }

    /// Bytes held now: raw windows, compressor rings and the entries (the part that grows).
    public var bytes: Int {
        var total = raw.reduce(0) { $0 + $1.count * 4 }
        for s in compressors + indexers { if let s { total += s.ring.count * 4 + s.entries.bytes } }
        return total
    }

    var fixedBuffers: [FloatBuffer] { raw + (compressors + indexers).compactMap { $0?.ring } }
    var rowStores: [EntryRows] { (compressors + indexers).compactMap { $0?.entries } }
    public func encoded() -> [UInt8] { encodeState() }
}

/// Per-session buffers of the DeepSeek V4 forward pass (sized for the largest batch).
final class DeepSeek4Scratch {
    let moe: MoEScratch
    let streams, streamsNext, flat: FloatBuffer      // [B, hc · e]
    let mix: FloatBuffer                             // [B, mixes]
    let pre, post, comb: FloatBuffer                 // [B, hc], [B, hc], [B, hc · hc]
    let column: FloatBuffer                          // [B, e]
    let qr, q, kv: FloatBuffer                       // [B, qLora], [B, H·d], [B, d]
    let compressC, compressZ: FloatBuffer            // [B, 2·max(d, dI)]
    let indexerC, indexerZ: FloatBuffer
    let indexerQ, indexerW: FloatBuffer              // [B, HI·dI], [B, HI]
    let attended: FloatBuffer                        // [B, H·d]
    let grouped: FloatBuffer                         // [G, B, H/G·d]
    let lowRank, lowRankTokens: FloatBuffer          // [G, B, R], [B, G·R]
    let recent: FloatBuffer                          // [window − 1 + B, d]
    let mainTable, compressTable: FloatBuffer        // [B, rope]
    /// Per thread (grown to the most keys a query sees): the query's keys gathered into contiguous rows
    /// [keys, d], the attention kernel's scores [H, keys], indexer scores per head [HI, entries] and per
    /// entry, the candidates' order, and the heads' running max / exp-sum.
    private(set) var perThreadKeys = 0
    private(set) var gathered: FloatBuffer
    private(set) var scores: FloatBuffer
    private(set) var headScores: FloatBuffer
    private(set) var order: UnsafeMutablePointer<Int32>
    let partMax, partSum: FloatBuffer
    let entryTable: FloatBuffer                      // [rope] cos/sin of one entry's position
    let entryRows: FloatBuffer                       // [B, max(d, dI)] the entries a batch completes
    let threads: Int

    init(config c: ModelConfig, _ ds: DeepSeek4Config, moe: MoEConfig, maxBatch b: Int, threads: Int) {
        let e = c.embeddingLength, h = c.headCount, d = ds.headDim
        self.moe = MoEScratch(config: moe, embedding: e, maxBatch: b)
        let wide = 2 * max(d, ds.indexerHeadDim)
        self.threads = threads
        streams = FloatBuffer(count: b * ds.streams * e); streamsNext = FloatBuffer(count: b * ds.streams * e)
        flat = FloatBuffer(count: b * ds.streams * e)
        mix = FloatBuffer(count: b * ds.mixCount)
        pre = FloatBuffer(count: b * ds.streams); post = FloatBuffer(count: b * ds.streams); comb = FloatBuffer(count: b * ds.streams * ds.streams)
        column = FloatBuffer(count: b * e)
        qr = FloatBuffer(count: b * ds.qLoraRank); q = FloatBuffer(count: b * h * d); kv = FloatBuffer(count: b * d)
        compressC = FloatBuffer(count: b * wide); compressZ = FloatBuffer(count: b * wide)
        indexerC = FloatBuffer(count: b * wide); indexerZ = FloatBuffer(count: b * wide)
        indexerQ = FloatBuffer(count: b * max(1, ds.indexerHeads * ds.indexerHeadDim)); indexerW = FloatBuffer(count: b * max(1, ds.indexerHeads))
        attended = FloatBuffer(count: b * h * d)
        grouped = FloatBuffer(count: b * h * d)
        lowRank = FloatBuffer(count: b * ds.outputGroups * ds.outputRank); lowRankTokens = FloatBuffer(count: b * ds.outputGroups * ds.outputRank)
        recent = FloatBuffer(count: (ds.window - 1 + b) * d)
        mainTable = FloatBuffer(count: b * ds.ropeDim); compressTable = FloatBuffer(count: b * ds.ropeDim)
        entryTable = FloatBuffer(count: ds.ropeDim)
        entryRows = FloatBuffer(count: b * max(d, ds.indexerHeadDim))
        gathered = FloatBuffer(count: 1); scores = FloatBuffer(count: 1); headScores = FloatBuffer(count: 1)
        order = .allocate(capacity: 1)
        partMax = FloatBuffer(count: threads * h); partSum = FloatBuffer(count: threads * h)
        heads = h; width = d; indexerHeads = max(1, ds.indexerHeads)
    }
    deinit { order.deallocate() }
    let heads, width, indexerHeads: Int

    /// Room for `n` keys per thread.
    func reserveKeys(_ n: Int) {
        guard n > perThreadKeys else { return }
        let m = max(n, 2 * perThreadKeys, 64)
        gathered = FloatBuffer(count: threads * m * width)
        scores = FloatBuffer(count: threads * m * max(heads, 1))
        headScores = FloatBuffer(count: threads * m * indexerHeads)
        order.deallocate(); order = .allocate(capacity: threads * m)
        perThreadKeys = m
    }
}

enum CompressedAttentionBlock {
    /// Pushes token rows (C, Z already projected; Z gets its position bias) into a compressor's ring in
    /// order, appending an entry each time a window completes. entries: scratch for the T rows' entries.
    static func compress(_ w: CompressorWeights, state st: CompressorState, c: UnsafePointer<Float>, z: UnsafePointer<Float>,
                         tokens T: Int, startPosition: Int, rope: Rope, ropeDim: Int, table: UnsafeMutablePointer<Float>,
                         entries: UnsafeMutablePointer<Float>, epsilon: Float, ops: any Backend) {
        let input = CompressorInput(ring: st.ring.pointer, ringRows: st.ringRows, rowFloats: st.rowFloats, width: st.width, ratio: st.ratio,
                                    overlapping: w.overlapping, positionBias: w.position.pointer, norm: w.norm.pointer, epsilon: epsilon,
                                    rope: rope, ropeDim: ropeDim, table: table)
        let made = ops.compress(input, c: c, z: z, tokens: T, startPosition: startPosition, into: entries)
        for i in 0..<made { st.entries.append(entries + i * st.width) }
    }

    /// Attention of token rows at positions startPosition ..< +T over the raw rows in `recent` (row r =
    /// position startPosition − (window − 1) + r) and the compressed entries; out [T, H·d] de-rotated.
    static func attend(q: UnsafePointer<Float>, tokens T: Int, startPosition: Int, heads h: Int, config ds: DeepSeek4Config,
                       recent: UnsafePointer<Float>, compressor: CompressorState?, indexer: CompressorState?,
                       indexerQ: UnsafePointer<Float>, indexerW: UnsafePointer<Float>,
                       sinks: UnsafePointer<Float>, rope: Rope, tables: UnsafePointer<Float>,
                       scratch x: DeepSeek4Scratch, ops: any Backend, into out: UnsafeMutablePointer<Float>) {
        x.reserveKeys(ds.window + (compressor?.entries.count ?? 0))
        ops.attendCompressed(CompressedAttentionInput(
            q: q, tokens: T, startPosition: startPosition, heads: h, headDim: ds.headDim, window: ds.window, recent: recent,
            entries: compressor?.entries.view, ratio: compressor?.ratio ?? 1, indexerKeys: indexer?.entries.view,
            indexerQueries: indexerQ, indexerWeights: indexerW, indexerHeads: ds.indexerHeads, indexerHeadDim: ds.indexerHeadDim,
            topK: ds.indexerTopK, sinks: sinks, rope: rope, ropeDim: ds.ropeDim, tables: tables,
            gathered: x.gathered.pointer, scores: x.scores.pointer, headScores: x.headScores.pointer, order: x.order,
            partMax: x.partMax.pointer, partSum: x.partSum.pointer, perThreadKeys: x.perThreadKeys, out: out))
    }
}
