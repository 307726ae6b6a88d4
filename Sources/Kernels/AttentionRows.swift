// Decode rows of one sequence attended together (drafted tokens being verified): each row gets the
// bits of its lone decode call (Attention.attend with one token and the per-token kernel), while the
// rows that make the same choice of tasks share one pass over the K/V rows
// (ds_attend_group_rows: a tile of keys is read once for all of them).

import CKernels

typealias AttendRowsKernel = @convention(c) (UnsafePointer<Float>?, Int64, Int64, Int64, Int64, UnsafeRawPointer?, Int64,
    UnsafeRawPointer?, Int64, UnsafePointer<Int32>?, Int64, Int64, Int64, UnsafePointer<Int64>?, UnsafePointer<Int64>?,
    Int64, Int64, Float, Float, UnsafeMutablePointer<Float>?, Int64, Int64, UnsafeMutablePointer<Float>?,
    UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, Int64) -> Void

extension Attention.Layout {
    /// The several-token form of the per-token kernel (nil: none for this KV type).
    var rowsKernel: AttendRowsKernel? {
        switch kvType { case .f32: ds_attend_group_rows_f32; case .f16: ds_attend_group_rows_f16; case .q8_0: nil }
    }
}

extension Attention {
    /// Split-K ranges a call with `pairs` (token, KV head) pairs over at least `shortest` positions takes
    /// (1: none): few pairs over a long context split the positions instead of the heads.
    static func splitCount(pairs: Int, shortest: Int, threads: Int) -> Int {
        let splits = min(2 * threads / max(pairs, 1), shortest / splitMinimumPositions)
        return pairs < 2 * threads && splits >= 2 ? splits : 1
    }

    /// Query heads per task when (token, KV head) pairs are split by heads: `chunk` heads, `chunks` per group.
    static func headChunks(group: Int, pairs: Int, threads: Int) -> (chunk: Int, chunks: Int) {
        let chunksPerGroup = min(group, max(1, (2 * threads + pairs - 1) / pairs))
        let chunk = (group + chunksPerGroup - 1) / chunksPerGroup
        return (chunk, (group + chunk - 1) / chunk)
    }

    /// Row t (position startPosition + t) exactly as attend(p.row(t), tokens: 1, promptKernel: false).
    public static func attendDecodeRows(_ p: Layout, tokens: Int, startPosition: Int, span: AttentionSpan, scale: Float,
                                        softcap: Float, workspace s: AttentionWorkspace) {
        guard tokens > 1, let kernel = p.rowsKernel else {
            for t in 0..<tokens {
                attend(p.row(t), tokens: 1, startPosition: startPosition + t, span: span, scale: scale, softcap: softcap,
                       workspace: s, promptKernel: false)
            }
            return
        }
        let threads = s.pool.threads
        func loneSplits(_ t: Int) -> Int {
            let pos = startPosition + t
            return splitCount(pairs: p.kvHeads, shortest: pos + 1 - span.firstVisible(from: pos), threads: threads)
        }
        // Runs of rows whose lone calls split alike (the split count only grows with the position).
        var t0 = 0
        while t0 < tokens {
            let splits = loneSplits(t0)
            var t1 = t0 + 1
            while t1 < tokens && loneSplits(t1) == splits { t1 += 1 }
            withUnsafeTemporaryAllocation(of: Int64.self, capacity: 2 * (t1 - t0)) { ranges in
                let first = ranges.baseAddress!, end = first + (t1 - t0)
                for t in t0..<t1 {
                    first[t - t0] = Int64(span.firstVisible(from: startPosition + t))
                    end[t - t0] = Int64(startPosition + t + 1)
                }
                let run = RowsRun(first: t0, tokens: t1 - t0, begin: first, end: end)
                if splits >= 2 {
                    attendRowsSplit(p, run, splits: splits, scale: scale, softcap: softcap, kernel: kernel, workspace: s)
                } else {
                    attendRowsByHeads(p, run, scale: scale, softcap: softcap, kernel: kernel, workspace: s)
                }
            }
            t0 = t1
        }
    }

    /// Rows first ..< first + tokens and their key ranges [begin[i], end[i]).
    struct RowsRun {
        var first: Int, tokens: Int
        var begin: UnsafeMutablePointer<Int64>, end: UnsafeMutablePointer<Int64>
        var longest: Int {
            var n = 0
            for i in 0..<tokens { n = max(n, Int(end[i] - begin[i])) }
            return n
        }
    }

    /// Tasks (KV head, chunk of its query heads) as the lone calls make them, each over all rows of the run.
    static func attendRowsByHeads(_ p: Layout, _ run: RowsRun, scale: Float, softcap: Float, kernel: AttendRowsKernel,
                                  workspace s: AttentionWorkspace) {
        let group = p.heads / p.kvHeads
        let (chunk, chunks) = headChunks(group: group, pairs: p.kvHeads, threads: s.pool.threads)
        let perThread = run.tokens * chunk * max(run.longest, 1)
        let scratch = s.rowsScratch(floatsPerThread: perThread)
        s.pool.run { ith, nth in
            for task in stride(from: ith, to: p.kvHeads * chunks, by: nth) {
                let kvh = task / chunks, h0 = kvh * group + (task % chunks) * chunk
                let n = min(chunk, kvh * group + group - h0)
                kernel(p.q + run.first * p.qTokenStride + h0 * p.qHeadStride, Int64(run.tokens), Int64(p.qTokenStride), Int64(n),
                       Int64(p.qHeadStride), p.kHead(kvh), Int64(p.kStride), p.vHead(kvh), Int64(p.vStride),
                       p.pages, Int64(p.pageShift), Int64(p.kPageStride), Int64(p.vPageStride), run.begin, run.end,
                       Int64(p.keyDim), Int64(p.valueDim), scale, softcap,
                       p.out + run.first * p.outTokenStride + h0 * p.outHeadStride, Int64(p.outTokenStride), Int64(p.outHeadStride),
                       scratch + ith * perThread, nil, nil, 0)
            }
        }
    }

    /// Tasks (KV head, split) with each row's own split ranges (as its lone call cuts them), partials laid
    /// out per (row, KV head, split) as attendSplit's, then merged the same way.
    static func attendRowsSplit(_ p: Layout, _ run: RowsRun, splits: Int, scale: Float, softcap: Float,
                                kernel: AttendRowsKernel, workspace s: AttentionWorkspace) {
        let group = p.heads / p.kvHeads, dv = p.valueDim, tokens = run.tokens
        let tasks = tokens * p.kvHeads * splits
        let partial = s.splitScratch(floats: tasks * group * (dv + 2))
        let outs = partial, maxes = partial + tasks * group * dv, sums = maxes + tasks * group
        let perThread = tokens * group * max(run.longest / splits + 1, 1)
        let scratch = s.rowsScratch(floatsPerThread: perThread)
        let taskStride = p.kvHeads * splits   // tasks per row
        s.pool.run { ith, nth in
            withUnsafeTemporaryAllocation(of: Int64.self, capacity: 2 * tokens) { ranges in
                let lo = ranges.baseAddress!, hi = lo + tokens
                for task in stride(from: ith, to: p.kvHeads * splits, by: nth) {
                    let kvh = task / splits, split = task % splits
                    for t in 0..<tokens {
                        let first = Int(run.begin[t]), n = Int(run.end[t]) - first
                        lo[t] = Int64(first + n * split / splits)
                        hi[t] = Int64(first + n * (split + 1) / splits)
                    }
                    kernel(p.q + run.first * p.qTokenStride + kvh * group * p.qHeadStride, Int64(tokens), Int64(p.qTokenStride),
                           Int64(group), Int64(p.qHeadStride), p.kHead(kvh), Int64(p.kStride), p.vHead(kvh), Int64(p.vStride),
                           p.pages, Int64(p.pageShift), Int64(p.kPageStride), Int64(p.vPageStride), lo, hi,
                           Int64(p.keyDim), Int64(dv), scale, softcap,
                           outs + task * group * dv, Int64(taskStride * group * dv), Int64(dv),
                           scratch + ith * perThread, maxes + task * group, sums + task * group, Int64(taskStride * group))
                }
            }
        }
        mergeSplits(p, firstToken: run.first, tokens: tokens, splits: splits, outs: outs, maxes: maxes, sums: sums)
    }
}

/// One sequence's decode step (one query token at `position`) for Attention.attendDecodeSteps.
public struct DecodeStep {
    public var layout: Attention.Layout
    public var position: Int
    public init(layout: Attention.Layout, position: Int) { self.layout = layout; self.position = position }
}

extension Attention {
    /// The decode steps of several sequences in one dispatch: each step gets the bits of its lone call
    /// (attend with one token and the per-token kernel: the same head chunks or split ranges, the same
    /// merge), while the threads take tasks from every sequence instead of one sequence at a time.
    public static func attendDecodeSteps(_ steps: UnsafeBufferPointer<DecodeStep>, span: AttentionSpan, scale: Float, softcap: Float,
                                         workspace s: AttentionWorkspace) {
        guard let first = steps.first else { return }
        let n = steps.count, threads = s.pool.threads
        let group = first.layout.heads / first.layout.kvHeads, dv = first.layout.valueDim
        let (chunk, chunks) = headChunks(group: group, pairs: first.layout.kvHeads, threads: threads)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * n + 1) { plan in
            // splits[i] (1: by head chunks), taskStart[i] (prefix sums, taskStart[n] = all), partial offset.
            let splits = plan.baseAddress!, taskStart = splits + n, partialAt = taskStart + n + 1
            var tasks = 0, partialFloats = 0
            for i in 0..<n {
                let p = steps[i].layout, pos = steps[i].position
                splits[i] = splitCount(pairs: p.kvHeads, shortest: pos + 1 - span.firstVisible(from: pos), threads: threads)
                taskStart[i] = tasks
                partialAt[i] = partialFloats
                if splits[i] >= 2 {
                    tasks += p.kvHeads * splits[i]
                    partialFloats += p.kvHeads * splits[i] * group * (dv + 2)
                } else {
                    tasks += p.kvHeads * chunks
                }
            }
            taskStart[n] = tasks
            let partial = s.splitScratch(floats: max(partialFloats, 1))
            let scratch = s.scratch, scratchStride = s.scratchStride
            s.pool.run { ith, nth in
                let sc = scratch + ith * scratchStride
                var item = 0
                for task in stride(from: ith, to: tasks, by: nth) {
                    while taskStart[item + 1] <= task { item += 1 }
                    let p = steps[item].layout, pos = steps[item].position, local = task - taskStart[item]
                    let kernel = p.groupKernel, jBegin = span.firstVisible(from: pos)
                    if splits[item] >= 2 {
                        let sp = splits[item], kvh = local / sp, split = local % sp, count = pos + 1 - jBegin
                        let lo = jBegin + count * split / sp, hi = jBegin + count * (split + 1) / sp
                        let tasksHere = p.kvHeads * sp
                        let outs = partial + partialAt[item], maxes = outs + tasksHere * group * dv, sums = maxes + tasksHere * group
                        kernel(p.q + kvh * group * p.qHeadStride, Int64(group), Int64(p.qHeadStride),
                               p.kHead(kvh), Int64(p.kStride), p.vHead(kvh), Int64(p.vStride),
                               p.pages, Int64(p.pageShift), Int64(p.kPageStride), Int64(p.vPageStride), Int64(lo), Int64(hi),
                               Int64(p.keyDim), Int64(dv), scale, softcap, outs + local * group * dv, Int64(dv), sc,
                               maxes + local * group, sums + local * group)
                    } else {
                        let kvh = local / chunks, h0 = kvh * group + (local % chunks) * chunk
                        let heads = min(chunk, kvh * group + group - h0)
                        kernel(p.q + h0 * p.qHeadStride, Int64(heads), Int64(p.qHeadStride),
                               p.kHead(kvh), Int64(p.kStride), p.vHead(kvh), Int64(p.vStride),
                               p.pages, Int64(p.pageShift), Int64(p.kPageStride), Int64(p.vPageStride), Int64(jBegin),
                               Int64(pos + 1), Int64(p.keyDim), Int64(p.valueDim), scale, softcap,
                               p.out + h0 * p.outHeadStride, Int64(p.outHeadStride), sc, nil, nil)
                    }
                }
            }
            for i in 0..<n where splits[i] >= 2 {
                let p = steps[i].layout, tasksHere = p.kvHeads * splits[i]
                let outs = partial + partialAt[i], maxes = outs + tasksHere * group * dv, sums = maxes + tasksHere * group
                mergeSplits(p, firstToken: 0, tokens: 1, splits: splits[i], outs: outs, maxes: maxes, sums: sums)
            }
        }
    }
}
