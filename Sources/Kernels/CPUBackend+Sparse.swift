// The CPU backend's sparse and compressed attention, indexer selection, compressors, and the ops over
// hyper-connection streams and gathered MoE rows (inputs: SparseOps.swift, Backend.swift).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension CPUBackend {
    public func attendSelected(_ layout: Attention.Layout, tokens: Int, rows: UnsafePointer<Int32>, rowStride: Int,
                               counts: UnsafePointer<Int32>, scale: Float, softcap: Float) {
        Attention.attendSelected(layout, tokens: tokens, rows: rows, rowStride: rowStride, counts: counts, scale: scale, softcap: softcap,
                                 workspace: attention)
    }

    /// Threads take contiguous runs of tokens; per token the keys are gathered into contiguous rows (1/H
    /// of the attention's own reads) and all heads run through the attention kernel at once (each key
    /// row read once for every head); the kernel returns unnormalised sums with their max and exp-sum,
    /// so the sink joins the denominator after.
    public func attendCompressed(_ p: CompressedAttentionInput) {
        let d = p.headDim, h = p.heads, window = p.window, scale = 1 / Float(d).squareRoot()
        let perThread = p.perThreadKeys, topK = p.topK, hi = p.indexerHeads, di = p.indexerHeadDim
        pool.run { ith, nth in
            let keys = p.gathered + ith * perThread * d, scores = p.scores + ith * perThread * max(h, 1)
            let headScores = p.headScores + ith * perThread * max(hi, 1)
            let entryScores = scores   // (indexer first, then attention)
            let order = p.order + ith * perThread
            let partMax = p.partMax + ith * h, partSum = p.partSum + ith * h
            for t in (p.tokens * ith / nth)..<(p.tokens * (ith + 1) / nth) {
                let position = p.startPosition + t
                var n = 0
                for pos in max(0, position - window + 1)...position {
                    (keys + n * d).update(from: p.recent + (pos - p.startPosition + window - 1) * d, count: d); n += 1
                }
                if let entries = p.entries {
                    let visible = min((position + 1) / p.ratio, entries.count)
                    if let ik = p.indexerKeys, visible > topK {
                        // score_w = Σ_j w_j · ReLU(qI_j · IK_w) / √dI; keep the top_k (ties: the earlier entry).
                        Selection.lightningTopK(keys: ik.storage, keyType: ik.type, keyRowBytes: ik.rowBytes, visible: visible,
                                                query: p.indexerQueries + t * hi * di, heads: hi, headDim: di,
                                                headWeights: p.indexerWeights + t * hi, scale: 1 / Float(di).squareRoot(), topK: topK,
                                                headScores: headScores, scores: entryScores, order: order)
                        for i in 0..<topK { entries.copy(rows: Int(order[i]), count: 1, into: keys + n * d); n += 1 }
                    } else if visible > 0 {
                        entries.copy(rows: 0, count: visible, into: keys + n * d); n += visible
                    }
                }
                // All heads against the n keys (K = V); then the sink joins each head's denominator.
                let o = p.out + t * h * d
                Attention.attendGroupUnnormalised(q: p.q + t * h * d, heads: h, qHeadStride: d, keys: keys, keyStride: d, values: keys,
                                                  valueStride: d, positions: n, keyDim: d, valueDim: d, scale: scale,
                                                  into: o, outHeadStride: d, scratch: scores, partialMax: partMax, partialSum: partSum)
                for head in 0..<h {
                    let norm = 1 / (partSum[head] + expf(p.sinks[head] - partMax[head]))
                    let oh = o + head * d
                    for i in 0..<d { oh[i] *= norm }
                }
                p.rope.rotateInverse(o + d - p.ropeDim, heads: h, headDim: d, table: p.tables + t * p.ropeDim)
            }
        }
    }

    /// Threads take tokens in turn (interleaved: a later token sees more positions).
    public func selectByIndexer(_ p: IndexerSelection) {
        let hi = p.heads, di = p.headDim, topK = p.topK, perThread = p.scratch.perThread
        pool.run { ith, nth in
            let scores = p.scratch.scores + ith * perThread, order = p.scratch.order + ith * perThread
            let headScores = p.scratch.headScores + ith * perThread * hi
            for t in stride(from: ith, to: p.tokens, by: nth) {
                let visible = p.startPosition + t + 1
                let out = p.selected + t * topK
                p.counts[t] = Int32(min(topK, visible))
                if visible <= topK {
                    for s in 0..<visible { out[s] = Int32(s) }
                    continue
                }
                Selection.lightningTopK(keys: UnsafeRawPointer(p.keys), keyType: .f32, keyRowBytes: di * 4, visible: visible,
                                        query: p.queries + t * hi * di, heads: hi, headDim: di, headWeights: p.headWeights + t * hi,
                                        scale: 1, topK: topK, headScores: headScores, scores: scores, order: order)
                for i in 0..<topK { out[i] = order[i] }
            }
        }
    }

    public func compress(_ p: CompressorInput, c: UnsafePointer<Float>, z: UnsafePointer<Float>, tokens: Int, startPosition: Int,
                         into entries: UnsafeMutablePointer<Float>) -> Int {
        let rf = p.rowFloats, d = p.width, ratio = p.ratio
        var made = 0
        for t in 0..<tokens {
            let position = startPosition + t
            let slot = p.ring + (position % p.ringRows) * 2 * rf
            slot.update(from: c + t * rf, count: rf)
            let zRow = slot + rf, bias = p.positionBias + (position % ratio) * rf
            for i in 0..<rf { zRow[i] = z[t * rf + i] + bias[i] }
            guard (position + 1) % ratio == 0 else { continue }
            // Window w = position / ratio is complete: pool its rows channel by channel.
            let window = position / ratio, entry = entries + made * d
            for ch in 0..<d {
                var mx = -Float.infinity
                func visit(_ body: (Float, Float) -> Void) {
                    for j in 0..<ratio {
                        let row = p.ring + ((window * ratio + j) % p.ringRows) * 2 * rf
                        // Overlapping (CSA): this window's rows give their second halves.
                        let off = p.overlapping ? d : 0
                        body(row[off + ch], row[rf + off + ch])
                    }
                    if p.overlapping && window > 0 {
                        for j in 0..<ratio {
                            let row = p.ring + (((window - 1) * ratio + j) % p.ringRows) * 2 * rf
                            body(row[ch], row[rf + ch])
                        }
                    }
                }
                visit { _, zv in mx = max(mx, zv) }
                var sum: Float = 0, acc: Float = 0
                visit { cv, zv in let e = expf(zv - mx); sum += e; acc += e * cv }
                entry[ch] = acc / sum
            }
            Kernels.rmsNorm(entry, p.norm, into: entry, count: d, epsilon: p.epsilon)
            p.rope.fill(p.table, position: window * ratio)
            p.rope.rotate(entry + d - p.ropeDim, heads: 1, headDim: d, table: p.table)
            made += 1
        }
        return made
    }

    public func weightedSum(_ x: RowBlock, weights: UnsafePointer<Float>, groupSize n: Int, into out: RowBlock) {
        for t in 0..<out.rows {
            let o = out.row(t)
            o.update(repeating: 0, count: out.width)
            for s in 0..<n { Kernels.axpy(o, x.row(t * n + s), weights[t * n + s], count: out.width) }
        }
    }

    public func mixStreams(_ y: RowBlock, streams: RowBlock, post: UnsafePointer<Float>, comb: UnsafePointer<Float>, streamCount n: Int,
                           into next: RowBlock) {
        let e = y.width
        for t in 0..<y.rows {
            let c = comb + t * n * n, yt = y.row(t)
            for k in 0..<n {
                let out = next.row(t * n + k), p = post[t * n + k]
                for i in 0..<e { out[i] = p * yt[i] }
                for j in 0..<n { Kernels.axpy(out, streams.row(t * n + j), c[j * n + k], count: e) }
            }
        }
    }

    public func scatterAdd(_ x: RowBlock, weights: UnsafePointer<Float>, destinations: UnsafePointer<Int32>, into out: RowBlock) {
        for t in 0..<out.rows { out.row(t).update(repeating: 0, count: out.width) }
        for r in 0..<x.rows { Kernels.axpy(out.row(Int(destinations[r])), x.row(r), weights[r], count: x.width) }
    }
}
