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
    func copy(rows first: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        let src = storage + first * rowBytes
        if half { Kernels.fromHalf(src.assumingMemoryBound(to: UInt16.self), into: out, count: n * width) }
        else { out.update(from: src.assumingMemoryBound(to: Float.self), count: n * width) }
    }

    func removeAll() { count = 0 }
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
    let post, comb: FloatBuffer                      // [B, hc], [B, hc · hc]
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
    let entryRow: FloatBuffer                        // [max(d, dI)] one entry being pooled
    let threads: Int

    init(config c: ModelConfig, _ ds: DeepSeek4Config, moe: MoEConfig, maxBatch b: Int, threads: Int) {
        let e = c.embeddingLength, h = c.headCount, d = ds.headDim
        self.moe = MoEScratch(config: moe, embedding: e, maxBatch: b)
        let wide = 2 * max(d, ds.indexerHeadDim)
        self.threads = threads
        streams = FloatBuffer(count: b * ds.streams * e); streamsNext = FloatBuffer(count: b * ds.streams * e)
        flat = FloatBuffer(count: b * ds.streams * e)
        mix = FloatBuffer(count: b * ds.mixCount)
        post = FloatBuffer(count: b * ds.streams); comb = FloatBuffer(count: b * ds.streams * ds.streams)
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
        entryRow = FloatBuffer(count: max(d, ds.indexerHeadDim))
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
    /// Pushes token rows (C, Z already projected; Z gets its position bias here) into a compressor's
    /// ring in order, appending an entry each time a window completes.
    static func compress(_ w: CompressorWeights, state st: CompressorState, c: UnsafePointer<Float>, z: UnsafePointer<Float>,
                         tokens T: Int, startPosition: Int, rope: Rope, ropeDim: Int, table: UnsafeMutablePointer<Float>,
                         entry: UnsafeMutablePointer<Float>, epsilon: Float) {
        let rf = st.rowFloats, d = st.width, ratio = st.ratio
        for t in 0..<T {
            let p = startPosition + t
            let slot = st.ring.pointer + (p % st.ringRows) * 2 * rf
            slot.update(from: c + t * rf, count: rf)
            let zRow = slot + rf, bias = w.position.pointer + (p % ratio) * rf
            for i in 0..<rf { zRow[i] = z[t * rf + i] + bias[i] }
            guard (p + 1) % ratio == 0 else { continue }
            // Window w = p / ratio is complete: pool its rows channel by channel.
            let window = p / ratio
            for ch in 0..<d {
                var mx = -Float.infinity
                func visit(_ body: (Float, Float) -> Void) {
                    for j in 0..<ratio {
                        let row = st.ring.pointer + ((window * ratio + j) % st.ringRows) * 2 * rf
                        // CSA: this window's rows give their second halves.
                        let off = w.overlapping ? d : 0
                        body(row[off + ch], row[rf + off + ch])
                    }
                    if w.overlapping && window > 0 {
                        for j in 0..<ratio {
                            let row = st.ring.pointer + (((window - 1) * ratio + j) % st.ringRows) * 2 * rf
                            body(row[ch], row[rf + ch])
                        }
                    }
                }
                visit { _, zv in mx = max(mx, zv) }
                var sum: Float = 0, acc: Float = 0
                visit { cv, zv in let e = expf(zv - mx); sum += e; acc += e * cv }
                entry[ch] = acc / sum
            }
            Kernels.rmsNorm(entry, w.norm.pointer, into: entry, count: d, epsilon: epsilon)
            rope.fill(table, position: window * ratio)
            rope.rotate(entry + d - ropeDim, heads: 1, headDim: d, table: table)
            st.entries.append(entry)
        }
    }

    /// Attention of token rows at positions startPosition ..< +T over the raw rows in `recent` (row r =
    /// position startPosition − (window − 1) + r) and the compressed entries; out [T, H·d] de-rotated.
    /// Per token, its keys are gathered into contiguous rows (1/H of the attention's own reads) and all
    /// heads run through the attention kernel at once (each key row read once for every head); the kernel
    /// returns unnormalised sums with their max and exp-sum, so the sink joins the denominator after.
    static func attend(q: UnsafePointer<Float>, tokens T: Int, startPosition: Int, heads h: Int, config ds: DeepSeek4Config,
                       recent: UnsafePointer<Float>, compressor: CompressorState?, indexer: CompressorState?,
                       indexerQ: UnsafePointer<Float>, indexerW: UnsafePointer<Float>,
                       sinks: UnsafePointer<Float>, rope: Rope, tables: UnsafePointer<Float>,
                       scratch x: DeepSeek4Scratch, pool: WorkerPool, into out: UnsafeMutablePointer<Float>) {
        let d = ds.headDim, window = ds.window, scale = 1 / Float(d).squareRoot()
        let entriesMax = compressor?.entries.count ?? 0
        x.reserveKeys(window + entriesMax)
        let perThread = x.perThreadKeys
        let topK = ds.indexerTopK, hi = ds.indexerHeads, di = ds.indexerHeadDim
        pool.run { ith, nth in
            let keys = x.gathered.pointer + ith * perThread * d, scores = x.scores.pointer + ith * perThread * h
            let headScores = x.headScores.pointer + ith * perThread * x.indexerHeads
            let entryScores = x.scores.pointer + ith * perThread * h   // (indexer first, then attention)
            let order = x.order + ith * perThread
            let partMax = x.partMax.pointer + ith * h, partSum = x.partSum.pointer + ith * h
            for t in (T * ith / nth)..<(T * (ith + 1) / nth) {
                let p = startPosition + t
                var n = 0
                for pos in max(0, p - window + 1)...p {
                    (keys + n * d).update(from: recent + (pos - startPosition + window - 1) * d, count: d); n += 1
                }
                if let comp = compressor {
                    let visible = min((p + 1) / comp.ratio, comp.entries.count)
                    if let ix = indexer, visible > topK {
                        // Lightning indexer: per head qI_j · IK_w for every visible entry (one GEMM), then
                        // score_w = Σ_j w_j · ReLU(·) / √dI; keep the top_k (ties: the earlier entry).
                        Kernels.gemm(ix.entries.type, cols: di, weights: ix.entries.storage, rowBytes: ix.entries.rowBytes, rows: visible,
                                     activations: indexerQ + t * hi * di, activationRowBytes: di * 4, tokens: hi,
                                     into: headScores, outputStride: visible)
                        let wI = indexerW + t * hi, iscale = 1 / Float(di).squareRoot()
                        for w in 0..<visible {
                            var s: Float = 0
                            for j in 0..<hi { s += wI[j] * max(0, headScores[j * visible + w]) }
                            entryScores[w] = s * iscale
                            order[w] = Int32(w)
                        }
                        SparseIndexerBlock.selectTop(topK, of: order, count: visible, scores: UnsafePointer(entryScores))
                        var kept = UnsafeMutableBufferPointer(start: order, count: topK)
                        kept.sort()
                        for i in 0..<topK { comp.entries.copy(rows: Int(order[i]), count: 1, into: keys + n * d); n += 1 }
                    } else if visible > 0 {
                        comp.entries.copy(rows: 0, count: visible, into: keys + n * d); n += visible
                    }
                }
                // All heads against the n keys (K = V); then the sink joins each head's denominator.
                let o = out + t * h * d
                Attention.attendGroupUnnormalised(q: q + t * h * d, heads: h, qHeadStride: d, keys: keys, keyStride: d, values: keys,
                                                  valueStride: d, positions: n, keyDim: d, valueDim: d, scale: scale,
                                                  into: o, outHeadStride: d, scratch: scores, partialMax: partMax, partialSum: partSum)
                for head in 0..<h {
                    let norm = 1 / (partSum[head] + expf(sinks[head] - partMax[head]))
                    let oh = o + head * d
                    for i in 0..<d { oh[i] *= norm }
                }
                rope.rotateInverse(o + d - ds.ropeDim, heads: h, headDim: d, table: tables + t * ds.ropeDim)
            }
        }
    }
}
