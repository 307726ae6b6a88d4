// DeepSeek's multi-head latent attention (MLA), absorbed form, over a cache of compressed latents:
//   q      = W_qb · norm(W_qa · x)           (or W_q · x)          [H, nope + rope]
//   [c; r] = W_kva · x                                             [kvLora + rope]
//   cache  ← [norm(c); rope(r)]                                    one row of kvLora + rope per token
//   q̃_h    = [W_kb_h · q_nope_h ; rope(q_rope_h)]                  [kvLora + rope] per head
//   a_h    = Σ_j softmax_j(scale · q̃_h · cache_j) · cache_j[0..<kvLora]   (MQA: every head, one KV row)
//   out    = W_o · concat_h(W_vb_h · a_h)
// Long prompt batches use the expanded form instead (cheaper once the batch is long enough that the
// absorbed scores over kvLora + rope floats cost more than decompressing the cache, see
// expandedMinimumTokens): K_h[j] = [W_kb_hᵀ · latent_j ; rope key_j], V_h[j] = W_vb_h · latent_j for
// every cached position, then ordinary multi-head attention over nope + rope / v floats.
// W_kb_h[kvLora, nope] and W_vb_h[v, kvLora] are per-head slices of attn_k_b / attn_v_b (older files
// store them fused as attn_kv_b and are split here at load). The cache holds kvLora + rope floats per
// token instead of H·(nope + rope + v): 576 instead of 40 960 floats for DeepSeek V3.

import GGUF
import Kernels
import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct LatentAttentionConfig: Sendable {
    /// 0: no q compression (V2-Lite), W_q used directly.
    public var qLoraRank: Int
    public var kvLoraRank: Int
    public var nopeDim: Int
    public var ropeDim: Int
    public var valueDim: Int
    /// Multiplier on q̃·k (mscale² / sqrt(nope + rope)).
    public var scale: Float
    /// Epsilon of the q and kv latent norms (nil: the model's; GLM-5: 1e-6 while its blocks use 1e-5).
    public var latentNormEpsilon: Float? = nil
    /// DeepSeek sparse attention (GLM-5): the lightning indexer's shape; nil = dense attention.
    public var indexer: SparseIndexerConfig? = nil

    /// Floats MLA attends over per position: latent + rope key.
    public var attentionRowFloats: Int { kvLoraRank + ropeDim }
    /// Floats of one cache row: latent + rope key [+ the indexer key].
    public var cacheRowFloats: Int { attentionRowFloats + (indexer?.headDim ?? 0) }
    var queryDim: Int { nopeDim + ropeDim }
}

public struct LatentAttentionWeights: @unchecked Sendable {
    public var config: LatentAttentionConfig
    public var qA: WeightMatrix?
    public var qANorm: FloatBuffer?
    public var qB: WeightMatrix?
    public var q: WeightMatrix?
    public var kvA: WeightMatrix
    public var kvANorm: FloatBuffer
    /// Per head: W_kb_h[kvLora, nope], W_vb_h[v, kvLora].
    public var kB: [WeightMatrix]
    public var vB: [WeightMatrix]
    public var wo: WeightMatrix
    /// The lightning indexer of a full DSA layer (nil: dense, or a layer reusing another's selection).
    public var indexer: SparseIndexerWeights?
    /// Owns W_kb when it was transposed out of a fused attn_kv_b at load.
    var owned: FloatBuffer?

    func bytesPerToken() -> Int {
        var total = 0
        for m in [qA, qB, q, kvA, wo].compactMap({ $0 }) { total += m.rows * m.rowBytes }
        for m in kB + vB { total += m.rows * m.rowBytes }
        return total
    }
}

extension WeightReader {
    func latentAttention(_ l: Int, _ c: ModelConfig, _ m: LatentAttentionConfig) throws -> LatentAttentionWeights {
        let e = c.embeddingLength, h = c.headCount
        var w = LatentAttentionWeights(
            config: m,
            qA: nil, qANorm: nil, qB: nil, q: nil,
            kvA: try matrix(named: MoETensorName.kvAWithRope(l).name, rows: m.kvLoraRank + m.ropeDim, cols: e),
            kvANorm: try vector(named: MoETensorName.kvANorm(l).name, count: m.kvLoraRank),
            kB: [], vB: [],
            wo: try matrix(.attnOutput(l), rows: e, cols: h * m.valueDim), indexer: nil, owned: nil)
        if let ix = m.indexer, ix.fullLayers[l] { w.indexer = try sparseIndexer(l, c, m, ix) }
        if m.qLoraRank > 0 {
            w.qA = try matrix(named: MoETensorName.qA(l).name, rows: m.qLoraRank, cols: e)
            w.qANorm = try vector(named: MoETensorName.qANorm(l).name, count: m.qLoraRank)
            w.qB = try matrix(named: MoETensorName.qB(l).name, rows: h * m.queryDim, cols: m.qLoraRank)
        } else {
            w.q = try matrix(.attnQ(l), rows: h * m.queryDim, cols: e)
        }
        if has(MoETensorName.kB(l).name) {
            w.kB = try experts(MoETensorName.kB(l).name, count: h, rows: m.kvLoraRank, cols: m.nopeDim)
            w.vB = try experts(MoETensorName.vB(l).name, count: h, rows: m.valueDim, cols: m.kvLoraRank)
        } else {
            // Fused W_kvb[H·(nope + v), kvLora]: V parts are row slices; K parts are transposed to F32.
            let name = MoETensorName.kvB(l).name
            let perHead = m.nopeDim + m.valueDim
            let kvb = try matrix(named: name, rows: h * perHead, cols: m.kvLoraRank)
            let kT = FloatBuffer(count: h * m.kvLoraRank * m.nopeDim)
            let row = FloatBuffer(count: m.kvLoraRank)
            for hd in 0..<h {
                for d in 0..<m.nopeDim {
                    kvb.dequantizeRow(hd * perHead + d, into: row.pointer)
                    for cc in 0..<m.kvLoraRank { kT.pointer[(hd * m.kvLoraRank + cc) * m.nopeDim + d] = row.pointer[cc] }
                }
            }
            w.owned = kT
            w.kB = (0..<h).map { hd in
                WeightMatrix(type: .f32, rows: m.kvLoraRank, cols: m.nopeDim,
                             data: UnsafeRawPointer(kT.pointer + hd * m.kvLoraRank * m.nopeDim), name: "\(name)[k\(hd)]")
            }
            w.vB = (0..<h).map { hd in
                WeightMatrix(type: kvb.type, rows: m.valueDim, cols: m.kvLoraRank,
                             data: kvb.data + (hd * perHead + m.nopeDim) * kvb.rowBytes, name: "\(name)[v\(hd)]")
            }
        }
        return w
    }
}

/// Per-session MLA buffers, sized for the largest batch.
final class LatentAttentionScratch {
    let qa: UnsafeMutablePointer<Float>        // [T, qLora]
    let qFull: UnsafeMutablePointer<Float>     // [T, H, nope + rope]
    let kvpe: UnsafeMutablePointer<Float>      // [T, kvLora + rope]
    let qNope: UnsafeMutablePointer<Float>     // [H, T, nope]
    let qAbsorbed: UnsafeMutablePointer<Float> // [H, T, kvLora]
    let query: UnsafeMutablePointer<Float>     // [T, H, kvLora + rope]
    let latentOut: UnsafeMutablePointer<Float> // [H, T, kvLora]
    let valueOut: UnsafeMutablePointer<Float>  // [H, T, v]
    let cacheRow: UnsafeMutablePointer<Float>  // [T, cache row] (with an indexer: latent, rope key, indexer key)
    let indexer: SparseIndexerScratch?
    private let owned: [FloatBuffer]
    /// Expanded form: latents [S, kvLora], W_kbᵀ per head [H, nope, kvLora], K [H, S, nope + rope],
    /// V [H, S, v], K_nope [H, S, nope]; grown to the longest S seen.
    struct Expanded {
        let latents, kTransposed, keys, values, keysNope: FloatBuffer
        let capacity: Int
    }
    private var expanded: Expanded?

    /// The expanded form's buffers with room for `positions`.
    func reserveExpanded(positions: Int, config m: LatentAttentionConfig, heads h: Int) -> Expanded {
        if let e = expanded, e.capacity >= positions { return e }
        let n = max(positions, (expanded?.capacity ?? 0) * 2)
        let e = Expanded(latents: FloatBuffer(count: n * m.kvLoraRank),
                         kTransposed: expanded?.kTransposed ?? FloatBuffer(count: h * m.nopeDim * m.kvLoraRank),
                         keys: FloatBuffer(count: h * n * m.queryDim), values: FloatBuffer(count: h * n * m.valueDim),
                         keysNope: FloatBuffer(count: h * n * m.nopeDim), capacity: n)
        expanded = e
        return e
    }

    init(config m: LatentAttentionConfig, heads h: Int, maxBatch b: Int, threads: Int) {
        let buffers = [b * max(m.qLoraRank, 1), b * h * m.queryDim, b * m.attentionRowFloats, h * b * m.nopeDim,
                       h * b * m.kvLoraRank, b * h * m.attentionRowFloats, h * b * m.kvLoraRank, h * b * m.valueDim,
                       b * m.cacheRowFloats]
            .map { FloatBuffer(count: $0) }
        owned = buffers
        qa = buffers[0].pointer; qFull = buffers[1].pointer; kvpe = buffers[2].pointer; qNope = buffers[3].pointer
        qAbsorbed = buffers[4].pointer; query = buffers[5].pointer; latentOut = buffers[6].pointer; valueOut = buffers[7].pointer
        cacheRow = buffers[8].pointer
        indexer = m.indexer.map { SparseIndexerScratch(config: $0, maxBatch: b, threads: threads) }
    }
}

public enum LatentAttentionBlock {
    /// att[t, h·v ..< (h+1)·v] = attention output of head h (before W_o); appends to the cache.
    static func forward(_ xn: UnsafeMutablePointer<Float>, tokens T: Int, startPosition: Int, rowOffset: Int, cache: KVSequence, layer l: Int,
                        weights w: LatentAttentionWeights, config m: LatentAttentionConfig, model c: ModelConfig,
                        rope: Rope, ropeTable: UnsafePointer<Float>, ropeStride: Int,
                        state s: InferenceState, scratch x: LatentAttentionScratch, into att: UnsafeMutablePointer<Float>,
                        mode: ProductMode) {
        let ops = s.ops, h = c.headCount, eps = m.latentNormEpsilon ?? c.rmsEpsilon
        let kvL = m.kvLoraRank, nope = m.nopeDim, qd = m.queryDim, row = m.attentionRowFloats, vd = m.valueDim
        if let qA = w.qA, let qB = w.qB, let qn = w.qANorm {
            ops.multiply([(qA, x.qa), (w.kvA, x.kvpe)], xn, tokens: T, mode: mode)
            let qa = RowBlock(x.qa, rows: T, width: m.qLoraRank)
            ops.rmsNorm(qa, weight: qn.pointer, into: qa, epsilon: eps)
            ops.multiply(qB, x.qa, tokens: T, into: x.qFull, mode: mode)
        } else if let q = w.q {
            ops.multiply([(q, x.qFull), (w.kvA, x.kvpe)], xn, tokens: T, mode: mode)
        }
        if let iw = w.indexer, let ix = x.indexer {
            SparseIndexerBlock.project(iw, qLatent: x.qa, xn: xn, tokens: T, rope: rope, ropeTable: ropeTable, ropeStride: ropeStride,
                                       ops: ops, mode: mode, scratch: ix)
        }
        // DSA: every query sees at most top_k positions, so while the context is that short the
        // selection is everything (dense); the expanded form is only for dense attention.
        let sparse = m.indexer.map { startPosition + T > $0.topK } ?? false
        // A segment of decode rows (drafts being verified, sequences decoding together) gives each row
        // its lone bits: the absorbed form, per-head products one token at a time over the same
        // slices, attention row by row. Prompt segments pick by length.
        let decodeSegment = (mode.decodeRows ?? 0) >= T
        let perHead = decodeSegment ? ProductMode.perTokenBelow(Int.max) : mode
        if T >= s.latentExpandedMinimumTokens && !sparse && !decodeSegment {
            expandedForward(tokens: T, startPosition: startPosition, cache: cache, layer: l, weights: w, config: m, model: c,
                            rope: rope, ropeTable: ropeTable, ropeStride: ropeStride, state: s, scratch: x, into: att, mode: mode)
            return
        }
        // Cache rows [norm(latent) ; rope(key) (; indexer key)] built in kvpe, then stored in the cache's type.
        cacheRows(tokens: T, startPosition: startPosition, cache: cache, layer: l, weights: w, config: m, epsilon: eps, rope: rope,
                  ropeTable: ropeTable, ropeStride: ropeStride, state: s, scratch: x)
        // q = [q_nope (head-major, for the W_kb products) ; rope(q_rope)] per head.
        for t in 0..<T {
            for hd in 0..<h {
                let qh = x.qFull + (t * h + hd) * qd
                (x.qNope + (hd * T + t) * nope).update(from: qh, count: nope)
                (x.query + (t * h + hd) * row + kvL).update(from: qh + nope, count: m.ropeDim)
            }
        }
        ops.rotate(RowBlock(x.query + kvL, rows: T, width: h * row - kvL, stride: h * row), heads: h, headDim: row, rope: rope,
                   tables: ropeTable, tableStride: ropeStride)
        // q̃_nope per head: W_kb_h · q_nope_h for all tokens of the batch, one grouped dispatch.
        let kJobs = (0..<h).map { MatmulJob(weights: w.kB[$0], output: x.qAbsorbed + $0 * T * kvL, firstInputRow: $0 * T, tokens: T) }
        ops.multiply(kJobs, x.qNope, inputRows: h * T, cols: nope, mode: perHead)
        for t in 0..<T {
            for hd in 0..<h { (x.query + (t * h + hd) * row).update(from: x.qAbsorbed + (hd * T + t) * kvL, count: kvL) }
        }
        // MQA over the latent cache; outputs land head-major for the W_vb products.
        let layout = Attention.paged(
            cache, layer: l, q: x.query, qTokenStride: h * row, qHeadStride: row,
            out: x.latentOut, outTokenStride: kvL, outHeadStride: T * kvL,
            kHeadStride: 0, vHeadStride: 0, valueOffsetInK: 0, heads: h, kvHeads: 1, keyDim: row, valueDim: kvL)
        if sparse, let ix = x.indexer {
            // Full layers select now (this batch's keys are cached); shared layers reuse the last selection.
            if w.indexer != nil {
                SparseIndexerBlock.select(tokens: T, startPosition: startPosition, rowOffset: rowOffset, cache: cache, layer: l,
                                          keyOffset: row, pool: s.pool, ops: ops, scratch: ix)
            }
            let topK = ix.config.topK
            for t in 0..<T {
                Attention.selectedRows(cache, layer: l, positions: ix.selected + (rowOffset + t) * topK,
                                            count: Int(ix.selectedCount[rowOffset + t]), into: ix.rows + t * topK)
            }
            ops.attendSelected(layout, tokens: T, rows: ix.rows, rowStride: topK, counts: ix.selectedCount + rowOffset,
                               scale: m.scale, softcap: 0)
        } else {
            ops.attend(layout, tokens: T, startPosition: startPosition, span: .full, scale: m.scale, softcap: 0,
                       prompt: decodeSegment ? false : nil)
        }
        let vJobs = (0..<h).map { MatmulJob(weights: w.vB[$0], output: x.valueOut + $0 * T * vd, firstInputRow: $0 * T, tokens: T) }
        ops.multiply(vJobs, x.latentOut, inputRows: h * T, cols: kvL, mode: perHead)
        for t in 0..<T {
            for hd in 0..<h { (att + (t * h + hd) * vd).update(from: x.valueOut + (hd * T + t) * vd, count: vd) }
        }
    }

    /// kvpe's rows [latent ; rope key] ← [rmsnorm(latent) · norm ; rope(rope key)], stored into the cache.
    private static func cacheRows(tokens T: Int, startPosition: Int, cache: KVSequence, layer l: Int, weights w: LatentAttentionWeights,
                                  config m: LatentAttentionConfig, epsilon: Float, rope: Rope, ropeTable: UnsafePointer<Float>,
                                  ropeStride: Int, state s: InferenceState, scratch x: LatentAttentionScratch) {
        let kvL = m.kvLoraRank, row = m.attentionRowFloats
        let latents = RowBlock(x.kvpe, rows: T, width: kvL, stride: row)
        s.ops.rmsNorm(latents, weight: w.kvANorm.pointer, into: latents, epsilon: epsilon)
        s.ops.rotate(RowBlock(x.kvpe + kvL, rows: T, width: m.ropeDim, stride: row), heads: 1, headDim: m.ropeDim, rope: rope,
                     tables: ropeTable, tableStride: ropeStride)
        s.perToken(T) { t in
            storeRow(x.kvpe + t * row, token: t, position: startPosition + t, cache: cache, layer: l, weights: w, config: m, scratch: x)
        }
    }

    /// Stores token t's cache row: [latent ; rope key] from `kv`, then this layer's indexer key (zeros on
    /// layers that reuse another layer's selection).
    private static func storeRow(_ kv: UnsafePointer<Float>, token t: Int, position: Int, cache: KVSequence, layer l: Int,
                                 weights w: LatentAttentionWeights, config m: LatentAttentionConfig, scratch x: LatentAttentionScratch) {
        guard let ix = m.indexer else { cache.storeK(l, position, kv); return }
        let rowFloats = m.cacheRowFloats, row = x.cacheRow + t * rowFloats
        row.update(from: kv, count: m.attentionRowFloats)
        let key = row + m.attentionRowFloats
        if w.indexer != nil, let scratch = x.indexer {
            key.update(from: scratch.key.pointer + t * ix.headDim, count: ix.headDim)
        } else {
            key.update(repeating: 0, count: ix.headDim)
        }
        cache.storeK(l, position, row)
    }

    /// Batches of at least this many tokens use the expanded form. Per cached position and head, the
    /// absorbed scores and sums cost T·(2·kvLora + rope) multiply-adds, the expanded form
    /// (nope + v)·kvLora to decompress plus T·(nope + rope + v): expanded wins for
    /// T > γ·(nope + v)·kvLora / (2·kvLora − nope − v), whatever the cached length. γ = 1.1 is measured
    /// (GEMM and attention multiply-adds cost about the same here): pp512 on the DeepSeek-shaped model,
    /// batches of 128 → absorbed 8% faster, 256 → expanded 8% faster (docs/performance.md). DeepSeek V3's
    /// dims (512, 64, 128, 128) give 188. DS_MLA_EXPANDED_MIN_TOKENS overrides.
    public static func expandedMinimumTokens(_ m: LatentAttentionConfig) -> Int {
        if let v = getenv("DS_MLA_EXPANDED_MIN_TOKENS"), let n = Int(String(cString: v)), n > 0 { return n }
        let saved = max(1, 2 * m.kvLoraRank - m.nopeDim - m.valueDim)
        return Int((1.1 * Double((m.nopeDim + m.valueDim) * m.kvLoraRank) / Double(saved)).rounded(.up))
    }

    /// The expanded form for a prompt batch: decompress K (nope part) and V of every cached position,
    /// then multi-head attention with q = [q_nope ; rope(q_rope)] as the model was trained.
    static func expandedForward(tokens T: Int, startPosition: Int, cache: KVSequence, layer l: Int,
                                weights w: LatentAttentionWeights, config m: LatentAttentionConfig, model c: ModelConfig,
                                rope: Rope, ropeTable: UnsafePointer<Float>, ropeStride: Int,
                                state s: InferenceState, scratch x: LatentAttentionScratch, into att: UnsafeMutablePointer<Float>,
                        mode: ProductMode) {
        let ops = s.ops, h = c.headCount, eps = m.latentNormEpsilon ?? c.rmsEpsilon
        let kvL = m.kvLoraRank, rd = m.ropeDim, nope = m.nopeDim, qd = m.queryDim, vd = m.valueDim
        let positions = startPosition + T
        let buffers = x.reserveExpanded(positions: positions, config: m, heads: h)
        let latents = buffers.latents.pointer, kT = buffers.kTransposed.pointer
        let keys = buffers.keys.pointer, values = buffers.values.pointer, keysNope = buffers.keysNope.pointer
        // New cache rows, and RoPE on q's rope part in place (q rows are [nope ; rope] per head).
        cacheRows(tokens: T, startPosition: startPosition, cache: cache, layer: l, weights: w, config: m, epsilon: eps, rope: rope,
                  ropeTable: ropeTable, ropeStride: ropeStride, state: s, scratch: x)
        ops.rotate(RowBlock(x.qFull + nope, rows: T, width: h * qd - nope, stride: h * qd), heads: h, headDim: qd, rope: rope,
                   tables: ropeTable, tableStride: ropeStride)
        // Latents of every position, contiguous; W_kb_h transposed to [nope, kvLora] in F32.
        s.pool.parallelFor(positions) { range in
            for j in range { cache.loadK(l, j, count: kvL, into: latents + j * kvL) }
        }
        s.pool.parallelFor(h) { range in
            let column = UnsafeMutablePointer<Float>.allocate(capacity: nope)
            defer { column.deallocate() }
            for hd in range {
                let base = kT + hd * nope * kvL
                for cc in 0..<kvL {
                    w.kB[hd].dequantizeRow(cc, into: column)
                    for d in 0..<nope { base[d * kvL + cc] = column[d] }
                }
            }
        }
        // K_nope_h = latents · W_kb_h, V_h = latents · W_vb_hᵀ for all positions, one grouped dispatch.
        var jobs: [MatmulJob] = []
        jobs.reserveCapacity(2 * h)
        for hd in 0..<h {
            let kw = WeightMatrix(type: .f32, rows: nope, cols: kvL, data: UnsafeRawPointer(kT + hd * nope * kvL))
            jobs.append(MatmulJob(weights: kw, output: keysNope + hd * positions * nope, firstInputRow: 0, tokens: positions))
            jobs.append(MatmulJob(weights: w.vB[hd], output: values + hd * positions * vd, firstInputRow: 0, tokens: positions))
        }
        ops.multiply(jobs, latents, inputRows: positions, cols: kvL, mode: mode)
        // K rows [K_nope_h[j] ; rope key_j], head-major.
        s.pool.parallelFor(h) { range in
            for hd in range {
                for j in 0..<positions {
                    let k = keys + (hd * positions + j) * qd
                    k.update(from: keysNope + (hd * positions + j) * nope, count: nope)
                    cache.loadK(l, j, offset: kvL, count: rd, into: k + nope)
                }
            }
        }
        ops.attend(Attention.Layout(
            q: x.qFull, qTokenStride: h * qd, qHeadStride: qd,
            out: att, outTokenStride: h * vd, outHeadStride: vd,
            k: UnsafeRawPointer(keys), kStride: qd, kHeadStride: positions * qd, v: UnsafeRawPointer(values), vStride: vd,
            vHeadStride: positions * vd,
            heads: h, kvHeads: h, keyDim: qd, valueDim: vd),
            tokens: T, startPosition: startPosition, span: .full, scale: m.scale, softcap: 0, prompt: nil)
    }
}
