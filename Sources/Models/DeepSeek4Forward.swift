// DeepSeek V4's forward pass over hyper-connected residual streams (spec: docs/models/deepseek4.md §5):
//   S = [embed(token)] × hc                                                    [hc, e] per token
//   per layer, for attention then the MoE FFN:
//     mix = W_fn · rmsnorm(flatten(S))                                         [(2 + hc) · hc]
//     pre_s = σ(mix_s · a₀ + b_s) + ε;  post_s = 2σ(mix_{hc+s} · a₁ + b_{hc+s})
//     comb = Sinkhorn(mix[2hc…] · a₂ + b)  (rows = source stream, columns = destination)
//     y = block(rmsnorm(Σ_s pre_s S_s));  S'_k = post_k · y + Σ_j comb_jk S_j
//   head: pre_s = σ(W_hc · rmsnorm(flatten(S)) · a + b_s) + ε;  logits = W_out · rmsnorm(Σ_s pre_s S_s)
// The sequences of a batch share every matrix product (each weight is read once per step); attention
// and the compressors run per sequence over its cache (CompressedAttention.swift), kept in its
// KVSequence's `auxiliary` slot and rebuilt when it does not match the requested start (a shortened or
// restored sequence: SequenceState.swift).

import Kernels
import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum HyperConnections {
    /// Sinkhorn normalisation of the hc × hc logits in place: softmax over each row (+ε), then
    /// columns, then (rows, columns) × (iterations − 1), each divided by its sum + ε.
    static func sinkhorn(_ m: UnsafeMutablePointer<Float>, streams n: Int, iterations: Int, epsilon: Float) {
        for j in 0..<n {
            let row = m + j * n
            var mx = -Float.infinity
            for k in 0..<n { mx = max(mx, row[k]) }
            var sum: Float = 0
            for k in 0..<n { row[k] = expf(row[k] - mx); sum += row[k] }
            for k in 0..<n { row[k] = row[k] / sum + epsilon }
        }
        func normalizeColumns() {
            for k in 0..<n {
                var sum: Float = 0
                for j in 0..<n { sum += m[j * n + k] }
                for j in 0..<n { m[j * n + k] /= sum + epsilon }
            }
        }
        normalizeColumns()
        for _ in 1..<max(1, iterations) {
            for j in 0..<n {
                var sum: Float = 0
                for k in 0..<n { sum += m[j * n + k] }
                for k in 0..<n { m[j * n + k] /= sum + epsilon }
            }
            normalizeColumns()
        }
    }

    /// mix[t] = W_fn · rmsnorm(S[t]) for T tokens.
    static func mixes(_ w: HyperConnectionWeights, streams S: UnsafeMutablePointer<Float>, tokens T: Int, width: Int, epsilon: Float,
                      flat: UnsafeMutablePointer<Float>, into mix: UnsafeMutablePointer<Float>, ops: any Backend, mode: ProductMode) {
        ops.rmsNorm(RowBlock(S, rows: T, width: width), weight: nil, into: RowBlock(flat, rows: T, width: width), epsilon: epsilon)
        ops.multiply(w.fn, flat, tokens: T, into: mix, mode: mode)
    }

    /// Per token: pre (the block input column is Σ_s pre_s S_s), and post / comb for `apply`.
    static func prepare(_ w: HyperConnectionWeights, mix: UnsafeMutablePointer<Float>, tokens T: Int, config ds: DeepSeek4Config,
                        pre: UnsafeMutablePointer<Float>, post: UnsafeMutablePointer<Float>, comb: UnsafeMutablePointer<Float>) {
        let n = ds.streams, scale = w.scale.pointer, base = w.base.pointer
        for t in 0..<T {
            let m = mix + t * ds.mixCount
            for s in 0..<n {
                pre[t * n + s] = 1 / (1 + expf(-(m[s] * scale[0] + base[s]))) + ds.hcEpsilon
                post[t * n + s] = 2 / (1 + expf(-(m[n + s] * scale[1] + base[n + s])))
            }
            let c = comb + t * n * n
            for i in 0..<(n * n) { c[i] = m[2 * n + i] * scale[2] + base[2 * n + i] }
            sinkhorn(c, streams: n, iterations: ds.sinkhornIterations, epsilon: ds.hcEpsilon)
        }
    }
}

/// Ropes of a DeepSeek V4 model: the main one (window-only layers) and the compressed layers' YaRN one.
struct DeepSeek4Ropes {
    let main: Rope
    let compress: Rope
    init(_ ds: DeepSeek4Config) {
        main = Rope(dimensions: ds.ropeDim, base: ds.mainRopeBase, style: .interleaved)
        compress = Rope(dimensions: ds.ropeDim, base: ds.compressRopeBase, style: .interleaved, yarn: ds.compressYarn, magnitude: 1)
    }
}

/// One sequence's rows in a DeepSeek V4 batch.
struct DeepSeek4Part {
    let cache: DeepSeek4Cache
    let start: Int
    let offset: Int
    let count: Int
}

extension DeepSeek4Stack {
    /// Every segment (one sequence's consecutive tokens) in one pass; each sequence's compressed cache
    /// first brought to the segment's start (replaying its history when it stands elsewhere).
    /// A pipeline stage runs its layers (p.layers) from the previous stage's streams (p.inputRows, T rows of
    /// hc · e); it replays a history from the tokens through every layer up to the end of its own, since
    /// its layers' inputs for those positions were never sent, and from position 0, since its state holds
    /// no earlier layer's part.
    func forward(_ p: ForwardPass) {
        let s = p.state, x = s.scratch(DeepSeek4Scratch.self)
        let layers = p.layers ?? weights.layers.indices
        var parts: [DeepSeek4Part] = []
        for seg in p.segments {
            let halfEntries = seg.cache.pool.shape.type != .f32
            let cache = seg.cache.sideState(at: seg.start, maxBatch: s.maxBatch, partialReplay: layers.lowerBound == 0,
                                            make: { DeepSeek4Cache(config: deepseek, weights: weights, halfEntries: halfEntries) }) {
                history, start, n, cache in
                run(history, parts: [DeepSeek4Part(cache: cache, start: start, offset: 0, count: n)], pass: p, scratch: x, decodeRows: nil,
                    layers: 0..<layers.upperBound, input: nil)
            }
            parts.append(DeepSeek4Part(cache: cache, start: seg.start, offset: seg.offset, count: seg.count))
        }
        // Decode rows (they lead the batch) through the single-token kernel over cached blocks of weight
        // rows, as each would run alone; prompt rows through the multi-token one.
        run(p.tokens, parts: parts, pass: p, scratch: x, decodeRows: p.decodeRows, layers: layers, input: p.inputRows)
    }

    /// Head input of logit row `index` (batch row `row`): the streams collapsed by the output
    /// hyper-connection, y = Σ_k σ(fn_k · rmsnorm(streams) · scale + base_k) + ε) · stream_k.
    func headInput(row: Int, index i: Int, pass p: ForwardPass) -> UnsafePointer<Float> {
        let x = p.state.scratch(DeepSeek4Scratch.self), ds = deepseek, e = config.embeddingLength, n = ds.streams, width = n * e
        let out = weights.outputHc, scale = out.scale.pointer[0], base = out.base.pointer
        let st = x.streams.pointer + row * width, ops = p.state.ops
        ops.rmsNorm(RowBlock(st, rows: 1, width: width), weight: nil, into: RowBlock(x.flat.pointer, rows: 1, width: width),
                    epsilon: config.rmsEpsilon)
        ops.multiply(out.fn, x.flat.pointer, tokens: 1, into: x.mix.pointer, mode: .batched)
        for k in 0..<n { x.pre.pointer[k] = 1 / (1 + expf(-(x.mix.pointer[k] * scale + base[k]))) + ds.hcEpsilon }
        let y = x.column.pointer + i * e
        ops.weightedSum(RowBlock(st, rows: n, width: e), weights: x.pre.pointer, groupSize: n, into: RowBlock(y, rows: 1, width: e))
        return UnsafePointer(y)
    }

    /// The rows of `parts` (each: one sequence's tokens at positions start ..< +count, rows offset ..<
    /// +count, in order) through `layers`, from the tokens' embeddings or the streams `input`; the final
    /// streams stay in the scratch's `streams`. decodeRows: the leading rows computed as if alone (nil: no
    /// batch invariance, as when replaying history).
    private func run(_ tokens: UnsafePointer<Int32>, parts: [DeepSeek4Part], pass p: ForwardPass, scratch x: DeepSeek4Scratch,
                     decodeRows: Int?, layers: Range<Int>, input: UnsafePointer<Float>?) {
        let s = p.state, c = config, ds = deepseek, e = c.embeddingLength, n = ds.streams, width = n * e
        let T = parts.last.map { $0.offset + $0.count } ?? 0
        let ropes = weights.ropes
        let mode = ProductMode(decodeRows: decodeRows)
        var S = x.streams.pointer, next = x.streamsNext.pointer
        // S = hc copies of the embedding; RoPE tables of every token for both bases.
        for part in parts {
            for t in part.offset..<(part.offset + part.count) {
                let position = part.start + t - part.offset
                if let input {
                    (S + t * width).update(from: input + t * width, count: width)
                } else {
                    p.embedding.embed(tokens[t], into: S + t * width)
                    for k in 1..<n { (S + t * width + k * e).update(from: S + t * width, count: e) }
                }
                ropes.main.fill(x.mainTable.pointer + t * ds.ropeDim, position: position)
                ropes.compress.fill(x.compressTable.pointer + t * ds.ropeDim, position: position)
            }
        }
        for l in layers {
            let w = weights.layers[l]
            // Attention.
            collapse(w.hcAttention, norm: w.attnNorm, streams: S, tokens: T, scratch: x, state: s, mode: mode)
            attentionDeepSeek4(w.attention, layer: l, tokens: T, parts: parts, ropes: ropes, state: s, scratch: x, mode: mode)
            expand(streams: S, into: next, tokens: T, scratch: x, state: s)
            swap(&S, &next)
            // MoE FFN.
            collapse(w.hcFFN, norm: w.ffnNorm, streams: S, tokens: T, scratch: x, state: s, mode: mode)
            // Expert products group rows by expert; in a batch of decode rows each expert's rows go
            // through the multi-row kernel (a row gets its lone bits, and a few tokens run faster than
            // MXFP4's float GEMM tiles: 4 streams 174 -> 143 ms a step).
            MoEBlock.forward(s.xn, tokens: T, into: s.o, weights: w.moe, embedding: e, activation: .silu,
                             scratch: x.moe, ops: s.ops, mode: (decodeRows ?? 0) >= T ? .perTokenBelow(Int.max) : .batched,
                             layer: l, cache: p.experts, tokenIDs: tokens, shard: p.shard)
            expand(streams: S, into: next, tokens: T, scratch: x, state: s)
            swap(&S, &next)
        }
        for part in parts { part.cache.count = part.start + part.count }
        // The streams end where headInput reads them (an odd number of swaps leaves them in streamsNext).
        if S != x.streams.pointer { x.streams.pointer.update(from: S, count: T * width) }
    }

    /// The block input s.xn[t] = rmsnorm(Σ_s pre_s S_s) · norm of the hyper-connection `w`; its post and
    /// comb wait in the scratch for `expand`.
    private func collapse(_ w: HyperConnectionWeights, norm: FloatBuffer, streams S: UnsafeMutablePointer<Float>, tokens T: Int,
                          scratch x: DeepSeek4Scratch, state s: InferenceState, mode: ProductMode) {
        let ds = deepseek, e = config.embeddingLength, n = ds.streams, ops = s.ops
        HyperConnections.mixes(w, streams: S, tokens: T, width: n * e, epsilon: config.rmsEpsilon, flat: x.flat.pointer,
                               into: x.mix.pointer, ops: ops, mode: mode)
        HyperConnections.prepare(w, mix: x.mix.pointer, tokens: T, config: ds, pre: x.pre.pointer, post: x.post.pointer, comb: x.comb.pointer)
        let column = RowBlock(x.column.pointer, rows: T, width: e)
        ops.weightedSum(RowBlock(S, rows: T * n, width: e), weights: x.pre.pointer, groupSize: n, into: column)
        ops.rmsNorm(column, weight: norm.pointer, into: RowBlock(s.xn, rows: T, width: e), epsilon: config.rmsEpsilon)
    }

    /// next = the streams after the block: S'_k = post_k · s.o + Σ_j comb_jk S_j.
    private func expand(streams S: UnsafeMutablePointer<Float>, into next: UnsafeMutablePointer<Float>, tokens T: Int,
                        scratch x: DeepSeek4Scratch, state s: InferenceState) {
        let e = config.embeddingLength, n = deepseek.streams
        s.ops.mixStreams(RowBlock(s.o, rows: T, width: e), streams: RowBlock(S, rows: T * n, width: e), post: x.post.pointer,
                       comb: x.comb.pointer, streamCount: n, into: RowBlock(next, rows: T * n, width: e))
    }

    /// s.o[t] = attention output (e floats) of the T rows of layer l; appends to each part's cache.
    private func attentionDeepSeek4(_ w: CompressedAttentionWeights, layer l: Int, tokens T: Int, parts: [DeepSeek4Part],
                                    ropes: DeepSeek4Ropes, state s: InferenceState, scratch x: DeepSeek4Scratch, mode: ProductMode) {
        let c = config, ds = deepseek, h = c.headCount, d = ds.headDim, eps = c.rmsEpsilon
        let ops = s.ops, rd = ds.ropeDim, window = ds.window
        let compressed = ds.compressRatios[l] > 0
        let rope = compressed ? ropes.compress : ropes.main
        let tables = compressed ? x.compressTable.pointer : x.mainTable.pointer
        let qr = x.qr.pointer, q = x.q.pointer, kv = x.kv.pointer
        ops.multiply([(w.qA, qr), (w.kv, kv)], s.xn, tokens: T, mode: mode)
        let qrRows = RowBlock(qr, rows: T, width: ds.qLoraRank), kvRows = RowBlock(kv, rows: T, width: d)
        ops.rmsNorm(qrRows, weight: w.qANorm.pointer, into: qrRows, epsilon: eps)
        ops.rmsNorm(kvRows, weight: w.kvNorm.pointer, into: kvRows, epsilon: eps)
        // RoPE on the last rd floats of the kv row and of every q head.
        ops.rotate(RowBlock(kv + d - rd, rows: T, width: rd, stride: d), heads: 1, headDim: d, rope: rope, tables: tables, tableStride: rd)
        ops.multiply(w.qB, qr, tokens: T, into: q, mode: mode)
        let qHeads = RowBlock(q, rows: T * h, width: d)
        ops.rmsNorm(qHeads, weight: nil, into: qHeads, epsilon: eps)
        ops.rotate(RowBlock(q + d - rd, rows: T, width: h * d - (d - rd), stride: h * d), heads: h, headDim: d, rope: rope, tables: tables,
                   tableStride: rd)
        // Compressor and indexer products of every row.
        let hi = ds.indexerHeads, di = ds.indexerHeadDim
        if let cw = w.compressor {
            ops.multiply([(cw.kv, x.compressC.pointer), (cw.gate, x.compressZ.pointer)], s.xn, tokens: T, mode: mode)
        }
        if let iw = w.indexerCompressor, let qB = w.indexerQB, let proj = w.indexerProj {
            ops.multiply([(iw.kv, x.indexerC.pointer), (iw.gate, x.indexerZ.pointer)], s.xn, tokens: T, mode: mode)
            ops.multiply(qB, qr, tokens: T, into: x.indexerQ.pointer, mode: mode)
            ops.multiply(proj, s.xn, tokens: T, into: x.indexerW.pointer, mode: mode)
            ops.rotate(RowBlock(x.indexerQ.pointer + di - rd, rows: T, width: hi * di - (di - rd), stride: hi * di), heads: hi, headDim: di,
                       rope: ropes.compress, tables: x.compressTable.pointer, tableStride: rd)
            ops.scale(RowBlock(x.indexerW.pointer, rows: T, width: hi), by: 1 / Float(hi).squareRoot())
        }
        for part in parts {
            let cache = part.cache, start = part.start, count = part.count, row = part.offset
            // Raw rows: the ring's last window − 1 positions, then this part's rows.
            let recent = x.recent.pointer, raw = cache.raw[l].pointer
            for r in 0..<(window - 1) {
                let pos = start - (window - 1) + r
                if pos >= 0 { (recent + r * d).update(from: raw + (pos % window) * d, count: d) }
            }
            (recent + (window - 1) * d).update(from: kv + row * d, count: count * d)
            // Compressors (entries made before attention: an entry completing at p is visible to p).
            let compressor = cache.compressors[l], indexer = cache.indexers[l]
            if let cw = w.compressor, let st = compressor {
                CompressedAttentionBlock.compress(cw, state: st, c: x.compressC.pointer + row * st.rowFloats, z: x.compressZ.pointer + row * st.rowFloats,
                                                  tokens: count, startPosition: start, rope: ropes.compress, ropeDim: rd,
                                                  table: x.entryTable.pointer, entries: x.entryRows.pointer, epsilon: eps, ops: ops)
            }
            if let iw = w.indexerCompressor, let st = indexer {
                CompressedAttentionBlock.compress(iw, state: st, c: x.indexerC.pointer + row * st.rowFloats, z: x.indexerZ.pointer + row * st.rowFloats,
                                                  tokens: count, startPosition: start, rope: ropes.compress, ropeDim: rd,
                                                  table: x.entryTable.pointer, entries: x.entryRows.pointer, epsilon: eps, ops: ops)
            }
            CompressedAttentionBlock.attend(q: q + row * h * d, tokens: count, startPosition: start, heads: h, config: ds, recent: recent,
                                            compressor: compressor, indexer: indexer, indexerQ: x.indexerQ.pointer + row * hi * di,
                                            indexerW: x.indexerW.pointer + row * hi, sinks: w.sinks.pointer, rope: rope,
                                            tables: tables + row * rd, scratch: x, ops: ops, into: x.attended.pointer + row * h * d)
            // Keep the last `window` raw rows.
            for pos in max(0, start + count - window)..<(start + count) {
                (raw + (pos % window) * d).update(from: recent + (pos - start + window - 1) * d, count: d)
            }
        }
        // Grouped low-rank output: z_g = W_a[g] · o_g, then W_b · concat_g z_g.
        let groups = ds.outputGroups, groupWidth = h / groups * d, rank = ds.outputRank
        let grouped = x.grouped.pointer, lowRank = x.lowRank.pointer, lowRankTokens = x.lowRankTokens.pointer
        for g in 0..<groups {
            for t in 0..<T { (grouped + (g * T + t) * groupWidth).update(from: x.attended.pointer + t * h * d + g * groupWidth, count: groupWidth) }
        }
        let jobs = (0..<groups).map { MatmulJob(weights: w.outputA[$0], output: lowRank + $0 * T * rank, firstInputRow: $0 * T, tokens: T) }
        // Decode rows through the single-token kernel here too (their rows are grouped, not leading).
        var groupedMode = mode
        if (mode.decodeRows ?? 0) >= T { groupedMode.perTokenBelow = T + 1 }
        ops.multiply(jobs, grouped, inputRows: groups * T, cols: groupWidth, mode: groupedMode)
        for t in 0..<T {
            for g in 0..<groups { (lowRankTokens + t * groups * rank + g * rank).update(from: lowRank + (g * T + t) * rank, count: rank) }
        }
        ops.multiply(w.outputB, lowRankTokens, tokens: T, into: s.o, mode: mode)
    }
}
