// The sparse, compressed and stream ops of the Backend interface against scalar references in double,
// once per backend present (BackendUnderTest.all).

import Foundation
import Testing
import GGUF
import Kernels

/// RoPE of the pair (x0, x1) by `angle` (inverse: by −angle) in double.
private func rotated(_ x0: Double, _ x1: Double, angle: Double) -> (Double, Double) {
    (x0 * cos(angle) - x1 * sin(angle), x0 * sin(angle) + x1 * cos(angle))
}

/// Interleaved RoPE of v[0..<dims] at `position` (base 10 000) in double.
private func ropeInterleaved(_ v: inout [Double], dims: Int, position: Int, inverse: Bool = false) {
    for i in 0..<(dims / 2) {
        let angle = Double(position) / pow(10_000, Double(2 * i) / Double(dims)) * (inverse ? -1 : 1)
        (v[2 * i], v[2 * i + 1]) = rotated(v[2 * i], v[2 * i + 1], angle: angle)
    }
}

/// The top k of `scores` (ties: the earlier), ascending.
private func referenceTopK(_ scores: [Double], _ k: Int) -> [Int32] {
    let order = scores.indices.sorted { (scores[$0], -$0) > (scores[$1], -$1) }
    return order.prefix(k).sorted().map { Int32($0) }
}

@Suite struct SparseOpTests {
    /// Hyper-connection sums and mixes, the MoE scatter, layer norm.
    @Test(arguments: BackendUnderTest.all)
    func streamOpsMatchReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let tokens = 5, n = 3, e = 12
        let streams = opTestFloats(tokens * n * e, seed: 21), weights = opTestFloats(tokens * n, seed: 22)
        let y = opTestFloats(tokens * e, seed: 23), post = opTestFloats(tokens * n, seed: 24), comb = opTestFloats(tokens * n * n, seed: 25)
        var sum = [Float](repeating: 7, count: tokens * e), next = [Float](repeating: 7, count: tokens * n * e)
        var streamsCopy = streams, yCopy = y
        streamsCopy.withUnsafeMutableBufferPointer { s in yCopy.withUnsafeMutableBufferPointer { yb in
            sum.withUnsafeMutableBufferPointer { o in
                ops.weightedSum(RowBlock(s.baseAddress!, rows: tokens * n, width: e), weights: weights, groupSize: n,
                                into: RowBlock(o.baseAddress!, rows: tokens, width: e))
            }
            next.withUnsafeMutableBufferPointer { o in
                ops.mixStreams(RowBlock(yb.baseAddress!, rows: tokens, width: e), streams: RowBlock(s.baseAddress!, rows: tokens * n, width: e),
                               post: post, comb: comb, streamCount: n, into: RowBlock(o.baseAddress!, rows: tokens * n, width: e))
            }
        } }
        var wantSum = [Double](repeating: 0, count: tokens * e), wantNext = [Double](repeating: 0, count: tokens * n * e)
        for t in 0..<tokens { for i in 0..<e {
            for s in 0..<n { wantSum[t * e + i] += Double(weights[t * n + s]) * Double(streams[(t * n + s) * e + i]) }
            for k in 0..<n {
                var v = Double(post[t * n + k]) * Double(y[t * e + i])
                for j in 0..<n { v += Double(comb[t * n * n + j * n + k]) * Double(streams[(t * n + j) * e + i]) }
                wantNext[(t * n + k) * e + i] = v
            }
        } }
        #expect(maxRelativeError(sum, wantSum) < 1e-6)
        #expect(maxRelativeError(next, wantNext) < 1e-6)

        // Scatter: 7 rows to 3 tokens (one token gets none: zeros).
        let rows = 7, destinations: [Int32] = [0, 2, 0, 2, 2, 0, 0], rowWeights = opTestFloats(rows, seed: 26)
        var x = opTestFloats(rows * e, seed: 27), out = [Float](repeating: 9, count: 3 * e)
        let xValues = x
        x.withUnsafeMutableBufferPointer { xb in out.withUnsafeMutableBufferPointer { ob in
            ops.scatterAdd(RowBlock(xb.baseAddress!, rows: rows, width: e), weights: rowWeights, destinations: destinations,
                           into: RowBlock(ob.baseAddress!, rows: 3, width: e))
        } }
        var wantOut = [Double](repeating: 0, count: 3 * e)
        for r in 0..<rows { for i in 0..<e { wantOut[Int(destinations[r]) * e + i] += Double(rowWeights[r]) * Double(xValues[r * e + i]) } }
        #expect(maxRelativeError(out, wantOut) < 1e-6)

        // Layer norm in place over rows 16 floats apart (12 used).
        let normWeight = opTestFloats(e, seed: 28), bias = opTestFloats(e, seed: 29)
        var z = opTestFloats(4 * 16, seed: 30)
        let zValues = z
        z.withUnsafeMutableBufferPointer { zb in
            let block = RowBlock(zb.baseAddress!, rows: 4, width: e, stride: 16)
            ops.layerNorm(block, weight: normWeight, bias: bias, into: block, epsilon: 1e-5)
        }
        var worst = 0.0
        for r in 0..<4 {
            let v = (0..<e).map { Double(zValues[r * 16 + $0]) }
            let mean = v.reduce(0, +) / Double(e), variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(e)
            for i in 0..<e {
                let want = (v[i] - mean) / (variance + 1e-5).squareRoot() * Double(normWeight[i]) + Double(bias[i])
                worst = max(worst, abs(Double(z[r * 16 + i]) - want))
            }
            #expect((e..<16).allSatisfy { z[r * 16 + $0] == zValues[r * 16 + $0] }, "floats past the width untouched")
        }
        #expect(worst < 1e-5)
    }

    /// Each token attends only to its own list of rows.
    @Test(arguments: BackendUnderTest.all)
    func attendSelectedMatchesReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let heads = 4, d = 16, tokens = 3, positions = 10, stride = 5
        let q = opTestFloats(tokens * heads * d, seed: 31), kv = opTestFloats(positions * d, seed: 32)
        let rows: [Int32] = [0, 3, 7, 9, 0,  1, 2, 0, 0, 0,  9, 8, 4, 2, 5]
        let counts: [Int32] = [4, 2, 5]
        var out = [Float](repeating: 0, count: tokens * heads * d)
        q.withUnsafeBufferPointer { qb in kv.withUnsafeBufferPointer { kb in out.withUnsafeMutableBufferPointer { ob in
            // MLA's shape: every head over one K row, V the first d floats of it.
            let layout = Attention.Layout(q: qb.baseAddress!, qTokenStride: heads * d, qHeadStride: d,
                                          out: ob.baseAddress!, outTokenStride: heads * d, outHeadStride: d,
                                          k: UnsafeRawPointer(kb.baseAddress!), kStride: d, kHeadStride: 0,
                                          v: UnsafeRawPointer(kb.baseAddress!), vStride: d, vHeadStride: 0,
                                          heads: heads, kvHeads: 1, keyDim: d, valueDim: d)
            ops.attendSelected(layout, tokens: tokens, rows: rows, rowStride: stride, counts: counts, scale: 0.25, softcap: 0)
        } } }
        var want = [Double](repeating: 0, count: tokens * heads * d)
        for t in 0..<tokens { for h in 0..<heads {
            let chosen = (0..<Int(counts[t])).map { Int(rows[t * stride + $0]) }
            let scores = chosen.map { j in 0.25 * (0..<d).reduce(0.0) { $0 + Double(q[(t * heads + h) * d + $1]) * Double(kv[j * d + $1]) } }
            let m = scores.max()!, z = scores.reduce(0.0) { $0 + exp($1 - m) }
            for (s, j) in zip(scores, chosen) { for c in 0..<d { want[(t * heads + h) * d + c] += exp(s - m) / z * Double(kv[j * d + c]) } }
        } }
        #expect(maxRelativeError(out, want) < 1e-5)
    }

    /// The lightning indexer's top_k per token: every position while the context is short, then the best.
    @Test(arguments: BackendUnderTest.all)
    func indexerSelectionMatchesReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let heads = 3, di = 8, topK = 4, start = 2, tokens = 6, positions = start + tokens, threads = 8
        let keys = opTestFloats(positions * di, seed: 41), queries = opTestFloats(tokens * heads * di, seed: 42)
        let headWeights = opTestFloats(tokens * heads, seed: 43)
        var selected = [Int32](repeating: -1, count: tokens * topK), counts = [Int32](repeating: -1, count: tokens)
        var scores = [Float](repeating: 0, count: threads * positions), headScores = [Float](repeating: 0, count: threads * positions * heads)
        var order = [Int32](repeating: 0, count: threads * positions)
        scores.withUnsafeMutableBufferPointer { sb in headScores.withUnsafeMutableBufferPointer { hb in order.withUnsafeMutableBufferPointer { ob in
            selected.withUnsafeMutableBufferPointer { selb in counts.withUnsafeMutableBufferPointer { cb in
                ops.selectByIndexer(IndexerSelection(
                    keys: keys, queries: queries, headWeights: headWeights, heads: heads, headDim: di, topK: topK, tokens: tokens,
                    startPosition: start, selected: selb.baseAddress!, counts: cb.baseAddress!,
                    scratch: SelectionScratch(scores: sb.baseAddress!, headScores: hb.baseAddress!, order: ob.baseAddress!, perThread: positions)))
            } }
        } } }
        for t in 0..<tokens {
            let visible = start + t + 1
            let want: [Int32]
            if visible <= topK {
                want = (0..<visible).map { Int32($0) }
            } else {
                let s = (0..<visible).map { p in
                    (0..<heads).reduce(0.0) { acc, j in
                        let dot = (0..<di).reduce(0.0) { $0 + Double(queries[(t * heads + j) * di + $1]) * Double(keys[p * di + $1]) }
                        return acc + Double(headWeights[t * heads + j]) * max(0, dot)
                    }
                }
                want = referenceTopK(s, topK)
            }
            #expect(Int(counts[t]) == want.count, "token \(t)")
            #expect(Array(selected[(t * topK)..<(t * topK + want.count)]) == want, "token \(t)")
        }
    }

    /// Compressed entries: softmax(Z + bias)-pooled C per channel over each completed window (overlapping:
    /// with the previous window's first halves), normalised and rotated; two calls continue the ring.
    @Test(arguments: BackendUnderTest.all)
    func compressMatchesReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let d = 8, ratio = 2, ropeDim = 4, tokens = 7, eps: Float = 1e-6
        let rope = Rope(dimensions: ropeDim, base: 10_000, style: .interleaved)
        for overlapping in [false, true] {
            let rf = overlapping ? 2 * d : d, ringRows = overlapping ? 2 * ratio : ratio
            let c = opTestFloats(tokens * rf, seed: 51), z = opTestFloats(tokens * rf, seed: 52)
            let bias = opTestFloats(ratio * rf, seed: 53), norm = opTestFloats(d, seed: 54)
            var ring = [Float](repeating: 0, count: ringRows * 2 * rf), table = [Float](repeating: 0, count: ropeDim)
            var entries = [Float](repeating: 0, count: tokens * d)
            var made = 0
            c.withUnsafeBufferPointer { cb in z.withUnsafeBufferPointer { zb in
            ring.withUnsafeMutableBufferPointer { rb in table.withUnsafeMutableBufferPointer { tb in entries.withUnsafeMutableBufferPointer { eb in
                let input = CompressorInput(ring: rb.baseAddress!, ringRows: ringRows, rowFloats: rf, width: d, ratio: ratio,
                                            overlapping: overlapping, positionBias: bias, norm: norm, epsilon: eps, rope: rope,
                                            ropeDim: ropeDim, table: tb.baseAddress!)
                for (first, count) in [(0, 3), (3, 4)] {
                    made += ops.compress(input, c: cb.baseAddress! + first * rf, z: zb.baseAddress! + first * rf, tokens: count,
                                         startPosition: first, into: eb.baseAddress! + made * d)
                }
            } } }
            } }
            #expect(made == tokens / ratio, "overlapping \(overlapping)")
            var worst = 0.0
            for w in 0..<made {
                var pairs: [[(Double, Double)]] = Array(repeating: [], count: d)
                let off = overlapping ? d : 0
                for p in (w * ratio)..<((w + 1) * ratio) { for ch in 0..<d {
                    pairs[ch].append((Double(c[p * rf + off + ch]), Double(z[p * rf + off + ch]) + Double(bias[(p % ratio) * rf + off + ch])))
                } }
                if overlapping && w > 0 {
                    for p in ((w - 1) * ratio)..<(w * ratio) { for ch in 0..<d {
                        pairs[ch].append((Double(c[p * rf + ch]), Double(z[p * rf + ch]) + Double(bias[(p % ratio) * rf + ch])))
                    } }
                }
                var entry = pairs.map { ps -> Double in
                    let m = ps.map(\.1).max()!
                    return ps.reduce(0.0) { $0 + exp($1.1 - m) * $1.0 } / ps.reduce(0.0) { $0 + exp($1.1 - m) }
                }
                let rms = (entry.reduce(0) { $0 + $1 * $1 } / Double(d) + Double(eps)).squareRoot()
                entry = entry.enumerated().map { $0.element / rms * Double(norm[$0.offset]) }
                var tail = Array(entry[(d - ropeDim)...])
                ropeInterleaved(&tail, dims: ropeDim, position: w * ratio)
                entry.replaceSubrange((d - ropeDim)..., with: tail)
                for ch in 0..<d { worst = max(worst, abs(Double(entries[w * d + ch]) - entry[ch])) }
            }
            #expect(worst < 1e-5, "overlapping \(overlapping)")
        }
    }

    /// Attention over a window of raw rows and the compressed entries (all, or the indexer's top_k), with
    /// sinks and the output's rope part rotated back.
    @Test(arguments: BackendUnderTest.all)
    func attendCompressedMatchesReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let heads = 2, d = 8, ropeDim = 4, window = 3, tokens = 4, start = 5, ratio = 2, entryCount = 3
        let hi = 2, di = 4, topK = 2, threads = 8, perThread = window + entryCount
        let rope = Rope(dimensions: ropeDim, base: 10_000, style: .interleaved)
        let q = opTestFloats(tokens * heads * d, seed: 61), recent = opTestFloats((window - 1 + tokens) * d, seed: 62)
        let entries = opTestFloats(entryCount * d, seed: 63), sinks = opTestFloats(heads, seed: 64)
        let indexerKeys = opTestFloats(entryCount * di, seed: 65), indexerQ = opTestFloats(tokens * hi * di, seed: 66)
        let indexerW = opTestFloats(tokens * hi, seed: 67)
        var tables = [Float](repeating: 0, count: tokens * ropeDim)
        for t in 0..<tokens { tables.withUnsafeMutableBufferPointer { rope.fill($0.baseAddress! + t * ropeDim, position: start + t) } }
        for withIndexer in [false, true] {
            var out = [Float](repeating: 0, count: tokens * heads * d)
            var gathered = [Float](repeating: 0, count: threads * perThread * d), scores = [Float](repeating: 0, count: threads * perThread * heads)
            var headScores = [Float](repeating: 0, count: threads * perThread * hi), order = [Int32](repeating: 0, count: threads * perThread)
            var partMax = [Float](repeating: 0, count: threads * heads), partSum = [Float](repeating: 0, count: threads * heads)
            entries.withUnsafeBytes { eb in indexerKeys.withUnsafeBytes { ib in
                gathered.withUnsafeMutableBufferPointer { g in scores.withUnsafeMutableBufferPointer { s in
                    headScores.withUnsafeMutableBufferPointer { h in order.withUnsafeMutableBufferPointer { o in
                        partMax.withUnsafeMutableBufferPointer { pm in partSum.withUnsafeMutableBufferPointer { ps in
                            out.withUnsafeMutableBufferPointer { ob in
                                ops.attendCompressed(CompressedAttentionInput(
                                    q: q, tokens: tokens, startPosition: start, heads: heads, headDim: d, window: window, recent: recent,
                                    entries: StoredRows(storage: eb.baseAddress!, count: entryCount, width: d, half: false), ratio: ratio,
                                    indexerKeys: withIndexer ? StoredRows(storage: ib.baseAddress!, count: entryCount, width: di, half: false) : nil,
                                    indexerQueries: indexerQ, indexerWeights: indexerW, indexerHeads: hi, indexerHeadDim: di, topK: topK,
                                    sinks: sinks, rope: rope, ropeDim: ropeDim, tables: tables, gathered: g.baseAddress!,
                                    scores: s.baseAddress!, headScores: h.baseAddress!, order: o.baseAddress!, partMax: pm.baseAddress!,
                                    partSum: ps.baseAddress!, perThreadKeys: perThread, out: ob.baseAddress!))
                            }
                        } }
                    } }
                } }
            } }
            var worst = 0.0
            for t in 0..<tokens {
                let p = start + t
                var keys: [[Float]] = ((p - window + 1)...p).map { pos in
                    let r = pos - start + window - 1
                    return Array(recent[(r * d)..<((r + 1) * d)])
                }
                let visible = min((p + 1) / ratio, entryCount)
                var chosen = Array(0..<visible)
                if withIndexer && visible > topK {
                    let s = (0..<visible).map { w in
                        (0..<hi).reduce(0.0) { acc, j in
                            let dot = (0..<di).reduce(0.0) { $0 + Double(indexerQ[(t * hi + j) * di + $1]) * Double(indexerKeys[w * di + $1]) }
                            return acc + Double(indexerW[t * hi + j]) * max(0, dot)
                        }
                    }
                    chosen = referenceTopK(s, topK).map(Int.init)
                }
                keys += chosen.map { Array(entries[($0 * d)..<(($0 + 1) * d)]) }
                for h in 0..<heads {
                    let qh = (0..<d).map { Double(q[(t * heads + h) * d + $0]) }
                    let s = keys.map { k in (0..<d).reduce(0.0) { $0 + qh[$1] * Double(k[$1]) } / Double(d).squareRoot() }
                    let m = s.max()!
                    let denominator = s.reduce(0.0) { $0 + exp($1 - m) } + exp(Double(sinks[h]) - m)
                    var o = (0..<d).map { c in zip(s, keys).reduce(0.0) { $0 + exp($1.0 - m) * Double($1.1[c]) } / denominator }
                    var tail = Array(o[(d - ropeDim)...])
                    ropeInterleaved(&tail, dims: ropeDim, position: p, inverse: true)
                    o.replaceSubrange((d - ropeDim)..., with: tail)
                    for c in 0..<d { worst = max(worst, abs(Double(out[(t * heads + h) * d + c]) - o[c])) }
                }
            }
            #expect(worst < 1e-5, "indexer \(withIndexer)")
        }
    }
}
