// The CPU backend: the op interface over the C kernels (runtime-dispatched SIMD) and the persistent
// worker pool. Row ops run on the pool from 4 rows on (serially below: a decode token's few rows are
// not worth a dispatch); every row is computed the same way either way.

import KVCache

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class CPUBackend: Backend, @unchecked Sendable {
    public let name = "cpu"
    public let pool: WorkerPool
    public let matmul: Matmul
    public let attention: AttentionWorkspace

    /// A backend on `pool`, with attention scratch for `contextLength` positions (AttentionWorkspace).
    public init(pool: WorkerPool, attention: AttentionWorkspace) {
        self.pool = pool
        self.matmul = Matmul(pool: pool)
        self.attention = attention
    }

    /// body(r) for every row r < rows: on the pool from 4 rows on.
    @inline(__always) func eachRow(_ rows: Int, _ body: (Int) -> Void) {
        if rows < 4 { for r in 0..<rows { body(r) }; return }
        pool.parallelFor(rows) { range in for r in range { body(r) } }
    }

    /// Sees every product's input rows (nil: none, the normal case).
    public var observer: ProductObserver?

    public func multiply(_ jobs: [MatmulJob], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode) {
        if let o = observer { for j in jobs { o.observe(j.weights, rows: x + j.firstInputRow * cols, count: j.tokens, cols: cols) } }
        matmul.multiply(jobs, x, inputRows: inputRows, cols: cols, mode: mode)
    }

    /// Gate and up of every product in one dispatch (jobs g0, u0, g1, u1, …); the thread that computed
    /// rows r of an up applies the activation to those rows for every token of that product.
    public func multiplyGated(_ products: [GatedProduct], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode) {
        guard !products.isEmpty else { return }
        if let o = observer {
            for p in products {
                o.observe(p.gate.weights, rows: x + p.gate.firstInputRow * cols, count: p.gate.tokens, cols: cols)
                // A fused gate_up tensor is one weight: its input counts once.
                if p.up.weights.name != p.gate.weights.name {
                    o.observe(p.up.weights, rows: x + p.up.firstInputRow * cols, count: p.up.tokens, cols: cols)
                }
            }
        }
        var jobs: [MatmulJob] = []
        jobs.reserveCapacity(2 * products.count)
        for p in products { jobs.append(p.gate); jobs.append(p.up) }
        matmul.multiply(jobs, x, inputRows: inputRows, cols: cols, mode: mode) { job, rows in
            guard job % 2 == 1 else { return }
            let p = products[job / 2], width = p.up.weights.rows
            let g0 = p.gate.output, u0 = p.up.output
            for t in 0..<p.up.tokens {
                let g = g0 + t * width + rows.lowerBound, u = u0 + t * width + rows.lowerBound
                switch p.activation {
                case .swiglu: Kernels.swiglu(g, u, count: rows.count)
                case .geglu: Kernels.geglu(g, u, count: rows.count)
                case .swigluClamped(let limit): Kernels.swigluClamped(g, u, count: rows.count, limit: limit)
                }
            }
        }
    }

    public func rmsNorm(_ x: RowBlock, weight: UnsafePointer<Float>?, into out: RowBlock, epsilon: Float) {
        eachRow(x.rows) { r in Kernels.rmsNorm(x.row(r), weight, into: out.row(r), count: x.width, epsilon: epsilon) }
    }

    public func layerNorm(_ x: RowBlock, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, into out: RowBlock, epsilon: Float) {
        let n = x.width
        eachRow(x.rows) { r in
            let v = x.row(r), o = out.row(r)
            var mean: Float = 0
            for i in 0..<n { mean += v[i] }
            mean /= Float(n)
            var variance: Float = 0
            for i in 0..<n { let d = v[i] - mean; variance += d * d }
            let inv = 1 / (variance / Float(n) + epsilon).squareRoot()
            for i in 0..<n { o[i] = (v[i] - mean) * inv * weight[i] + bias[i] }
        }
    }

    public func add(_ x: RowBlock, into y: RowBlock) {
        eachRow(x.rows) { r in Kernels.add(y.row(r), x.row(r), count: x.width) }
    }

    public func addToRows(_ v: UnsafePointer<Float>, _ y: RowBlock) {
        eachRow(y.rows) { r in Kernels.add(y.row(r), v, count: y.width) }
    }

    public func scaleRows(_ y: RowBlock, by factors: UnsafePointer<Float>) {
        eachRow(y.rows) { r in
            let row = y.row(r), f = factors[r]
            for i in 0..<y.width { row[i] *= f }
        }
    }

    public func scale(_ y: RowBlock, by factor: Float) {
        eachRow(y.rows) { r in
            let row = y.row(r)
            for i in 0..<y.width { row[i] *= factor }
        }
    }

    public func addScaled(_ x: RowBlock, times xScale: Float, into y: RowBlock, thenScale scale: Float) {
        eachRow(y.rows) { r in
            let yr = y.row(r), xr = x.row(r)
            for i in 0..<y.width { yr[i] = (yr[i] + xr[i] * xScale) * scale }
        }
    }

    public func gatedActivation(_ activation: GateActivation, gate: RowBlock, up: RowBlock) {
        eachRow(gate.rows) { r in
            let g = gate.row(r), u = up.row(r)
            switch activation {
            case .swiglu: Kernels.swiglu(g, u, count: gate.width)
            case .geglu: Kernels.geglu(g, u, count: gate.width)
            case .swigluClamped(let limit): Kernels.swigluClamped(g, u, count: gate.width, limit: limit)
            }
        }
    }

    public func multiplyBySigmoid(_ y: RowBlock, gate: RowBlock) {
        eachRow(y.rows) { r in
            let yr = y.row(r), g = gate.row(r)
            for i in 0..<y.width { yr[i] *= 1 / (1 + expf(-g[i])) }
        }
    }

    public func l2Normalize(_ x: RowBlock, chunk: Int, epsilon: Float, scale: Float) {
        eachRow(x.rows) { r in
            for c in stride(from: 0, to: x.width, by: chunk) {
                let v = x.row(r) + c
                var sum: Float = 0
                for i in 0..<chunk { sum += v[i] * v[i] }
                let f = scale / (sum + epsilon).squareRoot()
                for i in 0..<chunk { v[i] *= f }
            }
        }
    }

    public func causalConvSilu(_ x: RowBlock, segments: [RecurrentSegment], taps: UnsafePointer<Float>, kernel K: Int,
                               window: UnsafeMutablePointer<Float>) {
        let C = x.width
        precondition(x.stride == C, "conv rows are contiguous")
        for seg in segments {
            let rows = x.row(seg.offset)
            window.update(from: seg.conv, count: (K - 1) * C)
            (window + (K - 1) * C).update(from: rows, count: seg.count * C)
            seg.conv.update(from: window + seg.count * C, count: (K - 1) * C)
            Kernels.causalConvSilu(window: window, taps: taps, tokens: seg.count, channels: C, kernel: K, into: rows)
        }
    }

    /// Threads take (segment, value head) pairs, each running its sequence's rows in order.
    public func gatedDeltaRule(_ p: DeltaRuleInput, segments: [RecurrentSegment]) {
        let hk = p.keyHeads, hv = p.valueHeads, sk = p.stateSize, C = p.channels
        let keyDim = hk * sk, valueDim = hv * sk
        let work = { (pairs: Range<Int>) in
            for pair in pairs {
                let seg = segments[pair / hv], j = pair % hv
                let state = seg.delta + j * sk * sk, delta = p.scratch + pair * sk
                let decayScale = p.decay[j], dtBias = p.dtBias[j]
                for t in seg.offset..<(seg.offset + seg.count) {
                    let row = p.rows + t * C
                    let qv = row + (j % hk) * sk, kv = row + keyDim + (j % hk) * sk, v = row + 2 * keyDim + j * sk
                    let a = p.alpha[t * hv + j] + dtBias
                    let g = decayScale * (a > 20 ? a : log1pf(expf(a)))
                    let beta = 1 / (1 + expf(-p.betaLogits[t * hv + j]))
                    let out = p.out + t * valueDim + j * sk
                    Kernels.gatedDeltaStep(state: state, key: kv, value: v, query: qv, beta: beta, decay: expf(g), keyDim: sk, valueDim: sk,
                                           delta: delta, into: out)
                    // Gated RMSNorm: rmsnorm(o) ⊙ silu(z)
                    Kernels.rmsNorm(out, p.norm, into: out, count: sk, epsilon: p.epsilon)
                    let z = p.gate + t * valueDim + j * sk
                    for m in 0..<sk { out[m] *= z[m] / (1 + expf(-z[m])) }
                }
            }
        }
        let T = segments.last.map { $0.offset + $0.count } ?? 0, pairs = segments.count * hv
        if T * hv >= 8 { pool.parallelFor(pairs, work) } else { work(0..<pairs) }
    }

    public func softcap(_ y: RowBlock, cap: Float) {
        for r in 0..<y.rows {
            let row = y.row(r)
            for i in 0..<y.width { row[i] = cap * tanhf(row[i] / cap) }
        }
    }

    public func gatherRows(_ w: WeightMatrix, indices: UnsafePointer<Int32>, into out: RowBlock, scale: Float?) {
        eachRow(out.rows) { r in
            let row = out.row(r)
            w.dequantizeRow(Int(indices[r]), into: row)
            if let scale { for i in 0..<out.width { row[i] *= scale } }
        }
    }

    public func storeKV(layer: Int, k: RowBlock, v: RowBlock, positions: UnsafePointer<Int>, segmentOfRow: UnsafePointer<Int32>,
                        caches: [KVSequence]) {
        for t in 0..<k.rows {
            let cache = caches[Int(segmentOfRow[t])]
            cache.storeK(layer, positions[t], k.row(t))
            cache.storeV(layer, positions[t], v.row(t))
        }
    }

    public func rotate(_ x: RowBlock, heads: Int, headDim: Int, rope: Rope, tables: UnsafePointer<Float>, tableStride: Int) {
        eachRow(x.rows) { r in rope.rotate(x.row(r), heads: heads, headDim: headDim, table: tables + r * tableStride) }
    }

    public func attendDecodeSteps(_ steps: UnsafeBufferPointer<DecodeStep>, span: AttentionSpan, scale: Float, softcap: Float) {
        Attention.attendDecodeSteps(steps, span: span, scale: scale, softcap: softcap, workspace: attention)
    }

    /// Decode rows (prompt false) each exactly as if it were the only one (sharing the K/V reads).
    public func attend(_ layout: Attention.Layout, tokens: Int, startPosition: Int, span: AttentionSpan, scale: Float, softcap: Float,
                       prompt: Bool?) {
        if prompt == false && tokens > 1 {
            Attention.attendDecodeRows(layout, tokens: tokens, startPosition: startPosition, span: span, scale: scale,
                                       softcap: softcap, workspace: attention)
            return
        }
        Attention.attend(layout, tokens: tokens, startPosition: startPosition, span: span, scale: scale, softcap: softcap,
                         workspace: attention, promptKernel: prompt)
    }
}
