// Causal (optionally sliding-window or chunked) attention of query rows over K/V rows, contiguous or
// read through a page table, with F32 / F16 / Q8_0 K/V: the per-token kernel (decode, split over the
// positions when few tokens meet a long context), the flash-style block kernel (prompts), and sparse
// attention over selected rows.

import CKernels
import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which past positions a layer's queries see.
public enum AttentionSpan: Sendable, Equatable {
    /// Every earlier position.
    case full
    /// The last `window` positions, the query's own included (Gemma's local layers).
    case sliding(Int)
    /// Positions in the same aligned chunk of `size` (Llama 4's local layers: floor(j/size) == floor(i/size)).
    case chunked(Int)

    /// How long the KV cache must keep a position for this span.
    public var retention: KVRetention {
        switch self {
        case .full: return .all
        case .sliding(let w): return .window(w)
        case .chunked(let c): return .chunk(c)
        }
    }

    /// First visible position for a query at `position`.
    @inline(__always) public func firstVisible(from position: Int) -> Int { retention.firstNeeded(at: position) }
}

/// Per-session attention scratch: the worker pool the kernels run on, per-thread scratch rows, and the
/// split-K partials (grown on demand).
public final class AttentionWorkspace: @unchecked Sendable {
    public let pool: WorkerPool
    let scratch: UnsafeMutablePointer<Float>
    /// Floats of scratch per thread.
    let scratchStride: Int
    private var splitBuffer: UnsafeMutablePointer<Float>?
    private var splitCapacity = 0

    /// Scratch for scores of one query group of `groupSize` heads over `contextLength` positions, or the
    /// block kernel's tiles for the widest key and value rows.
    public init(pool: WorkerPool, contextLength: Int, groupSize: Int, widestKey: Int, widestValue: Int, heads: Int) {
        self.pool = pool
        scratchStride = max(contextLength * groupSize,
                            Attention.blockScratchFloats(keyDim: widestKey, valueDim: widestValue, heads: heads))
        let n = max(1, pool.threads * scratchStride)
        scratch = .allocate(capacity: n)
        scratch.initialize(repeating: 0, count: n)
    }

    deinit {
        scratch.deallocate()
        splitBuffer?.deallocate()
        rowsBuffer?.deallocate()
    }

    private var rowsBuffer: UnsafeMutablePointer<Float>?
    private var rowsCapacity = 0

    /// Per-thread score scratch of `floatsPerThread` for decode rows attended together (grown on demand).
    func rowsScratch(floatsPerThread n: Int) -> UnsafeMutablePointer<Float> {
        let total = n * pool.threads
        if total > rowsCapacity {
            rowsBuffer?.deallocate()
            rowsBuffer = .allocate(capacity: total)
            rowsCapacity = total
        }
        return rowsBuffer!
    }

    /// Scratch for split-K attention partials (kept for the session).
    func splitScratch(floats n: Int) -> UnsafeMutablePointer<Float> {
        if n > splitCapacity {
            splitBuffer?.deallocate()
            splitBuffer = .allocate(capacity: n)
            splitCapacity = n
        }
        return splitBuffer!
    }
}

typealias AttendGroupKernel = @convention(c) (UnsafePointer<Float>?, Int64, Int64, UnsafeRawPointer?, Int64, UnsafeRawPointer?, Int64,
    UnsafePointer<Int32>?, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Float, Float, UnsafeMutablePointer<Float>?, Int64,
    UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?) -> Void
typealias AttendBlockKernel = @convention(c) (UnsafePointer<Float>?, Int64, Int64, UnsafePointer<Int64>?, UnsafePointer<Int64>?,
    UnsafeRawPointer?, Int64, UnsafeRawPointer?, Int64, UnsafePointer<Int32>?, Int64, Int64, Int64, Int64, Int64, Float, Float,
    UnsafeMutablePointer<Float>?, Int64, UnsafeMutablePointer<Float>?) -> Void

public enum Attention {
    /// Where q, the output and the cache rows live (strides in floats).
    public struct Layout {
        public internal(set) var q: UnsafePointer<Float>, qTokenStride: Int, qHeadStride: Int
        public internal(set) var out: UnsafeMutablePointer<Float>, outTokenStride: Int, outHeadStride: Int
        /// K/V rows of `kvType` elements; strides in elements.
        public internal(set) var k: UnsafeRawPointer, kStride: Int, kHeadStride: Int
        public internal(set) var v: UnsafeRawPointer, vStride: Int, vHeadStride: Int
        public internal(set) var heads: Int, kvHeads: Int, keyDim: Int, valueDim: Int
        /// Paged K/V (nil: contiguous rows): row j in page pages[j >> pageShift].
        public internal(set) var pages: UnsafePointer<Int32>? = nil, pageShift = 0, kPageStride = 0, vPageStride = 0
        public var kvType: KVType = .f32

        /// Contiguous K/V rows of F32 (row strides kStride / vStride floats).
        public init(q: UnsafePointer<Float>, qTokenStride: Int, qHeadStride: Int,
                    out: UnsafeMutablePointer<Float>, outTokenStride: Int, outHeadStride: Int,
                    k: UnsafeRawPointer, kStride: Int, kHeadStride: Int, v: UnsafeRawPointer, vStride: Int, vHeadStride: Int,
                    heads: Int, kvHeads: Int, keyDim: Int, valueDim: Int) {
            self.q = q; self.qTokenStride = qTokenStride; self.qHeadStride = qHeadStride
            self.out = out; self.outTokenStride = outTokenStride; self.outHeadStride = outHeadStride
            self.k = k; self.kStride = kStride; self.kHeadStride = kHeadStride
            self.v = v; self.vStride = vStride; self.vHeadStride = vHeadStride
            self.heads = heads; self.kvHeads = kvHeads; self.keyDim = keyDim; self.valueDim = valueDim
        }

        var groupKernel: AttendGroupKernel {
            switch kvType { case .f32: ds_attend_group_f32; case .f16: ds_attend_group_f16; case .q8_0: ds_attend_group_q8_0 }
        }
        var blockKernel: AttendBlockKernel {
            switch kvType { case .f32: ds_attend_block_f32; case .f16: ds_attend_block_f16; case .q8_0: ds_attend_block_q8_0 }
        }

        /// The layout of query row t alone (its q and output rows; the same K/V).
        public func row(_ t: Int) -> Layout {
            var one = self
            one.q = q + t * qTokenStride
            one.out = out + t * outTokenStride
            return one
        }

        /// K (V) rows of KV head h (head strides in elements).
        func kHead(_ h: Int) -> UnsafeRawPointer { k + kvType.bytes(h * kHeadStride) }
        func vHead(_ h: Int) -> UnsafeRawPointer { v + kvType.bytes(h * vHeadStride) }
    }

    /// Rows of `layer` read through the sequence's page table.
    public static func paged(_ seq: KVSequence, layer: Int, q: UnsafePointer<Float>, qTokenStride: Int, qHeadStride: Int,
                      out: UnsafeMutablePointer<Float>, outTokenStride: Int, outHeadStride: Int,
                      kHeadStride: Int, vHeadStride: Int, valueOffsetInK: Int? = nil,
                             heads: Int, kvHeads: Int, keyDim: Int, valueDim: Int) -> Layout {
        let pool = seq.pool, shape = pool.shape
        let k = UnsafeRawPointer(pool.kArena(layer))
        // MLA reads its values inside the key rows.
        let v = valueOffsetInK.map { k + shape.type.bytes($0) } ?? UnsafeRawPointer(pool.vArena(layer))
        var layout = Layout(q: q, qTokenStride: qTokenStride, qHeadStride: qHeadStride,
                            out: out, outTokenStride: outTokenStride, outHeadStride: outHeadStride,
                            k: k, kStride: pool.kRowUnits, kHeadStride: kHeadStride,
                            v: v, vStride: valueOffsetInK == nil ? pool.vRowUnits : pool.kRowUnits, vHeadStride: vHeadStride,
                            heads: heads, kvHeads: kvHeads, keyDim: keyDim, valueDim: valueDim)
        layout.pages = UnsafePointer(seq.pageTable(forLayer: layer))
        layout.pageShift = pool.pageTokensLog2
        layout.kPageStride = pool.kPageStride
        layout.vPageStride = valueOffsetInK == nil ? pool.vPageStride : pool.kPageStride
        layout.kvType = shape.type
        return layout
    }

    /// out[t, h] = Σ_j softmax_j(scale · q[t,h]·K[j]ᵀ) V[j] over the positions j the span shows to
    /// position startPosition + t (causal). Tasks are (token, KV head, chunk of its query heads): each
    /// task reads the K/V rows once for its chunk; chunks shrink until every thread has work (decode).
    public static func attend(_ p: Layout, tokens: Int, startPosition: Int, span: AttentionSpan, scale: Float, softcap: Float,
                       workspace s: AttentionWorkspace, promptKernel: Bool? = nil) {
        if promptKernel ?? (tokens >= blockMinimumTokens) {
            attendBlocks(p, tokens: tokens, startPosition: startPosition, span: span, scale: scale, softcap: softcap, workspace: s)
            return
        }
        let pool = s.pool, group = p.heads / p.kvHeads
        let pairs = tokens * p.kvHeads
        // Few (token, KV head) pairs over a long context (decode): split the positions instead of the
        // heads, so every task reads each K/V row once for the whole group.
        let shortest = startPosition + 1 - span.firstVisible(from: startPosition)
        let splits = splitCount(pairs: pairs, shortest: shortest, threads: pool.threads)
        if splits >= 2 {
            attendSplit(p, tokens: tokens, startPosition: startPosition, span: span, splits: splits, scale: scale,
                        softcap: softcap, workspace: s)
            return
        }
        let (chunk, chunks) = headChunks(group: group, pairs: pairs, threads: pool.threads)
        let scratch = s.scratch, scratchStride = s.scratchStride
        pool.run { ith, nth in
            let tasks = pairs * chunks
            let sc = scratch + ith * scratchStride
            for task in stride(from: ith, to: tasks, by: nth) {  // interleaved: causal cost grows with t
                let t = task / (p.kvHeads * chunks), rest = task % (p.kvHeads * chunks)
                let kvh = rest / chunks, h0 = kvh * group + (rest % chunks) * chunk
                let n = min(chunk, kvh * group + group - h0)
                let pos = startPosition + t
                let jBegin = span.firstVisible(from: pos)
                let group = p.groupKernel
                group(p.q + t * p.qTokenStride + h0 * p.qHeadStride, Int64(n), Int64(p.qHeadStride),
                                    p.kHead(kvh), Int64(p.kStride), p.vHead(kvh), Int64(p.vStride),
                                    p.pages, Int64(p.pageShift), Int64(p.kPageStride), Int64(p.vPageStride), Int64(jBegin),
                                    Int64(pos + 1), Int64(p.keyDim), Int64(p.valueDim), scale, softcap,
                                    p.out + t * p.outTokenStride + h0 * p.outHeadStride, Int64(p.outHeadStride), sc, nil, nil)
            }
        }
    }

    /// Sparse attention: token t attends to the counts[t] cache rows rows[t·rowStride ..< +counts[t]]
    /// (global row numbers of `p`'s paged arena, from `selectedRows`) instead of a span. The rows act as
    /// a page table of one-row pages, so the kernels read the cache in place.
    public static func attendSelected(_ p: Layout, tokens: Int, rows: UnsafePointer<Int32>, rowStride: Int, counts: UnsafePointer<Int32>,
                               scale: Float, softcap: Float, workspace s: AttentionWorkspace) {
        var sparse = p
        sparse.pageShift = 0
        sparse.kPageStride = p.kStride
        sparse.vPageStride = p.vStride
        let group = p.heads / p.kvHeads, pairs = tokens * p.kvHeads
        let scratch = s.scratch, scratchStride = s.scratchStride
        s.pool.run { ith, nth in
            let sc = scratch + ith * scratchStride
            let kernel = sparse.groupKernel
            for task in stride(from: ith, to: pairs, by: nth) {
                let t = task / p.kvHeads, kvh = task % p.kvHeads, h0 = kvh * group
                kernel(p.q + t * p.qTokenStride + h0 * p.qHeadStride, Int64(group), Int64(p.qHeadStride),
                       sparse.kHead(kvh), Int64(p.kStride), sparse.vHead(kvh), Int64(p.vStride),
                       rows + t * rowStride, 0, Int64(sparse.kPageStride), Int64(sparse.vPageStride), 0,
                       Int64(counts[t]), Int64(p.keyDim), Int64(p.valueDim), scale, softcap,
                       p.out + t * p.outTokenStride + h0 * p.outHeadStride, Int64(p.outHeadStride), sc, nil, nil)
            }
        }
    }

    /// Global cache rows (page · pageTokens + offset) of `positions` in `layer`, for attendSelected.
    public static func selectedRows(_ seq: KVSequence, layer: Int, positions: UnsafePointer<Int32>, count: Int, into rows: UnsafeMutablePointer<Int32>) {
        let table = seq.pageTable(forLayer: layer), shift = seq.pool.pageTokensLog2, mask = Int32(seq.pool.pageTokens - 1)
        for i in 0..<count {
            let j = positions[i]
            rows[i] = (table[Int(j) >> shift] << Int32(shift)) | (j & mask)
        }
    }

    /// Split-K decode: each split covers at least this many positions.
    static let splitMinimumPositions = 256

    /// Split-K: tasks = (token, KV head, range of positions), each over all heads of the group, writing
    /// unnormalised partial outputs with their max and exp-sum; the partials of a head are then merged:
    /// out = Σ_s e^(m_s - M) o_s / Σ_s e^(m_s - M) l_s with M = max_s m_s.
    static func attendSplit(_ p: Layout, tokens: Int, startPosition: Int, span: AttentionSpan, splits: Int, scale: Float,
                            softcap: Float, workspace s: AttentionWorkspace) {
        let group = p.heads / p.kvHeads, dv = p.valueDim
        let tasks = tokens * p.kvHeads * splits
        let partial = s.splitScratch(floats: tasks * group * (dv + 2))
        let outs = partial, maxes = partial + tasks * group * dv, sums = maxes + tasks * group
        let scratch = s.scratch, scratchStride = s.scratchStride
        s.pool.run { ith, nth in
            let sc = scratch + ith * scratchStride
            for task in stride(from: ith, to: tasks, by: nth) {
                let pair = task / splits, split = task % splits
                let t = pair / p.kvHeads, kvh = pair % p.kvHeads
                let pos = startPosition + t
                let first = span.firstVisible(from: pos), n = pos + 1 - first
                let lo = first + n * split / splits, hi = first + n * (split + 1) / splits
                let kernel = p.groupKernel
                kernel(p.q + t * p.qTokenStride + kvh * group * p.qHeadStride, Int64(group), Int64(p.qHeadStride),
                                    p.kHead(kvh), Int64(p.kStride), p.vHead(kvh), Int64(p.vStride),
                                    p.pages, Int64(p.pageShift), Int64(p.kPageStride), Int64(p.vPageStride), Int64(lo),
                                    Int64(hi), Int64(p.keyDim), Int64(dv), scale, softcap,
                                    outs + task * group * dv, Int64(dv), sc, maxes + task * group, sums + task * group)
            }
        }
        mergeSplits(p, firstToken: 0, tokens: tokens, splits: splits, outs: outs, maxes: maxes, sums: sums)
    }

    /// Merges split-K partials, laid out per task (token t - firstToken, KV head, split) as attendSplit
    /// writes them, into the outputs of tokens firstToken ..< firstToken + tokens.
    static func mergeSplits(_ p: Layout, firstToken: Int, tokens: Int, splits: Int, outs: UnsafePointer<Float>,
                            maxes: UnsafePointer<Float>, sums: UnsafePointer<Float>) {
        let group = p.heads / p.kvHeads, dv = p.valueDim
        for pair in 0..<(tokens * p.kvHeads) {
            let t = firstToken + pair / p.kvHeads, kvh = pair % p.kvHeads
            for i in 0..<group {
                var m = -Float.infinity
                for sp in 0..<splits { m = max(m, maxes[(pair * splits + sp) * group + i]) }
                let out = p.out + t * p.outTokenStride + (kvh * group + i) * p.outHeadStride
                out.update(repeating: 0, count: dv)
                var total: Float = 0
                for sp in 0..<splits {
                    let task = pair * splits + sp
                    let w = maxes[task * group + i] == -.infinity ? 0 : expf(maxes[task * group + i] - m)
                    total += w * sums[task * group + i]
                    Kernels.axpy(out, outs + (task * group + i) * dv, w, count: dv)
                }
                let inv = total > 0 ? 1 / total : 0
                for d in 0..<dv { out[d] *= inv }
            }
        }
    }

    /// Every segment of more than one token (a prompt or a chunk of one) uses the flash-style block
    /// kernel, single tokens (decode) the per-token kernel. A row's result then depends only on its own
    /// query and keys, not on how the prompt was chunked or which prefix came from the cache (the block
    /// kernel's lanes are independent and its key tiles aligned to multiples of 16).
    static let blockMinimumTokens = 2
    static let queryBlock = 16

    /// Floats of per-thread scratch the block kernel needs.
    public static func blockScratchFloats(keyDim: Int, valueDim: Int, heads: Int) -> Int {
        // Block kernel: Qt, Ot, widened K/V tiles, a zero row. Q8_0 decode: 256 widened rows + per-head state.
        max(2 * queryBlock * (keyDim + valueDim) + max(keyDim, valueDim),
            256 * (keyDim + valueDim) + heads * (2 * valueDim + 4 + 256))
    }

    /// Tasks = (query head, block of 16 consecutive tokens): ds_attend_block_f32 runs the 16 queries
    /// against the KV head's rows with an online softmax. Interleaved across threads (causal cost grows
    /// with the block's position).
    static func attendBlocks(_ p: Layout, tokens: Int, startPosition: Int, span: AttentionSpan, scale: Float, softcap: Float,
                             workspace s: AttentionWorkspace) {
        let group = p.heads / p.kvHeads
        let blocks = (tokens + queryBlock - 1) / queryBlock
        let scratch = s.scratch, scratchStride = s.scratchStride
        s.pool.run { ith, nth in
            let sc = scratch + ith * scratchStride
            withUnsafeTemporaryAllocation(of: Int64.self, capacity: 2 * queryBlock) { ranges in
                let begin = ranges.baseAddress!, end = begin + queryBlock
                // Later blocks first in each thread's sequence of tasks: the costly ones start early.
                for task in stride(from: ith, to: blocks * p.heads, by: nth) {
                    let b = blocks - 1 - task / p.heads, h = task % p.heads, kvh = h / group
                    let t0 = b * queryBlock, nq = min(queryBlock, tokens - t0)
                    for r in 0..<nq {
                        let pos = startPosition + t0 + r
                        begin[r] = Int64(span.firstVisible(from: pos))
                        end[r] = Int64(pos + 1)
                    }
                    let kernel = p.blockKernel
                    kernel(p.q + t0 * p.qTokenStride + h * p.qHeadStride, Int64(nq), Int64(p.qTokenStride),
                                        begin, end,
                                        p.kHead(kvh), Int64(p.kStride), p.vHead(kvh), Int64(p.vStride),
                                        p.pages, Int64(p.pageShift), Int64(p.kPageStride), Int64(p.vPageStride),
                                        Int64(p.keyDim), Int64(p.valueDim), scale, softcap,
                                        p.out + t0 * p.outTokenStride + h * p.outHeadStride, Int64(p.outTokenStride), sc)
                }
            }
        }
    }
}
