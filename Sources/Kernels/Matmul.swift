// Y[T, rows] = X[T, cols] · W[rows, cols]ᵀ with W quantized in place.
// Activations are quantized once per call to the weight type's dot format (Q8_0 / Q8_1 / Q8_K, or
// kept F32 for float weights), then each thread takes a slice of W's rows and, for a block of rows
// that stays in L1, runs the integer dot against every token's activation row.

import CKernels
import GGUF

public final class Matmul: @unchecked Sendable {
    public let pool: WorkerPool
    /// Reused activation buffers, one per activation format in flight (grow to the largest T×cols
    /// seen; no per-token allocation after warm-up).
    private var actBuffers: [UnsafeMutableRawPointer?] = [nil, nil]
    private var actCapacities = [0, 0]

    public init(pool: WorkerPool) { self.pool = pool }
    deinit { for b in actBuffers { b?.deallocate() } }

    /// Bytes of one activation row of `cols` floats in the dot format for weight type `type`.
    public static func activationRowBytes(weightType: GGMLType, cols: Int) -> Int {
        let act = ds_vec_dot_type(Int32(weightType.rawValue))
        return Int(ds_type_block_bytes(act)) * cols / Int(ds_type_block_size(act))
    }

    private func activationStorage(_ slot: Int, _ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > actCapacities[slot] {
            actBuffers[slot]?.deallocate()
            actCapacities[slot] = max(bytes, actCapacities[slot] * 2)
            actBuffers[slot] = UnsafeMutableRawPointer.allocate(byteCount: actCapacities[slot], alignment: 64)
        }
        return actBuffers[slot]!
    }

    /// X quantized to the dot format of `type` (or X itself for float weights).
    private func activations(for type: GGMLType, _ x: UnsafePointer<Float>, cols: Int, tokens: Int, slot: Int) -> UnsafeRawPointer {
        let actType = ds_vec_dot_type(Int32(type.rawValue))
        if actType == 0 { return UnsafeRawPointer(x) }
        let rowBytes = Matmul.activationRowBytes(weightType: type, cols: cols)
        let buf = activationStorage(slot, rowBytes * tokens)
        if tokens >= 4 {
            pool.parallelFor(tokens) { range in
                for t in range { ds_quantize_activation(actType, x + t * cols, buf + t * rowBytes, Int64(cols)) }
            }
        } else {
            for t in 0..<tokens { ds_quantize_activation(actType, x + t * cols, buf + t * rowBytes, Int64(cols)) }
        }
        return UnsafeRawPointer(buf)
    }

    /// Y[t*rows + r] = Σ_c W[r, c] · X[t*cols + c]   for t < tokens.
    public func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, mode: ProductMode) {
        multiply([(w, y)], x, tokens: tokens, mode: mode)
    }

    /// Several matrices over the same input in one dispatch (Q/K/V, gate/up): X is quantized once per
    /// activation format, each thread computes its slice of every matrix, then runs
    /// `epilogue(rows)` on the row slice it computed of the last matrix (e.g. SwiGLU of gate and up,
    /// which have the same rows).
    public func multiply(_ items: [(WeightMatrix, UnsafeMutablePointer<Float>)], _ x: UnsafePointer<Float>, tokens: Int,
                         mode: ProductMode, epilogue: ((Range<Int>) -> Void)? = nil) {
        guard let first = items.first?.0 else { return }
        let jobs = items.map { MatmulJob(weights: $0.0, output: $0.1, firstInputRow: 0, tokens: tokens) }
        let last = jobs.count - 1
        multiply(jobs, x, inputRows: tokens, cols: first.cols, mode: mode,
                 epilogue: epilogue.map { e in { job, rows in if job == last { e(rows) } } })
    }

    /// Grouped products over row segments of one input X[inputRows, cols] (MoE experts, per-head
    /// projections): job i computes Y_i[t, r] = Σ_c W_i[r, c] · X[firstInputRow_i + t, c] for t < tokens_i,
    /// with Y_i rows W_i.rows apart. X is quantized once per activation format, then one dispatch runs
    /// every job: each thread takes the same fraction of every job's weight rows (so each matrix is
    /// streamed once per call, whatever the number of tokens routed to it), and calls
    /// `epilogue(job, rows)` after computing its rows of that job.
    public func multiply(_ jobs: [MatmulJob], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode,
                         epilogue: ((Int, Range<Int>) -> Void)? = nil) {
        guard let first = jobs.first?.weights else { return }
        let type0 = ds_vec_dot_type(Int32(first.type.rawValue))
        let act0 = activations(for: first.type, x, cols: cols, tokens: inputRows, slot: 0)
        var act1: UnsafeRawPointer? = nil
        for job in jobs.dropFirst() where ds_vec_dot_type(Int32(job.weights.type.rawValue)) != type0 {
            act1 = activations(for: job.weights.type, x, cols: cols, tokens: inputRows, slot: 1)
            break
        }
        let decodeRows = mode.decodeRows, perTokenBelow = mode.perTokenBelow
        pool.run { ith, nth in
            for (index, job) in jobs.enumerated() where job.tokens > 0 {
                let w = job.weights, y = job.output, tokens = job.tokens
                let wtype = Int32(w.type.rawValue)
                let sameFormat = ds_vec_dot_type(wtype) == type0
                let actRowBytes = Matmul.activationRowBytes(weightType: w.type, cols: cols)
                let act = (sameFormat ? act0 : act1!) + job.firstInputRow * actRowBytes
                let rows = w.rows, rowBytes = w.rowBytes, data = w.data
                if let packed = w.packed {
                    // Packed: one kernel for every token count (a row's bits never depend on the
                    // batch), each thread a run of whole 16-row groups.
                    let groups = (rows + PackedWeights.groupRows - 1) / PackedWeights.groupRows
                    let g0 = groups * ith / nth, g1 = groups * (ith + 1) / nth
                    let lo = g0 * PackedWeights.groupRows, hi = min(rows, g1 * PackedWeights.groupRows)
                    if lo >= hi { continue }
                    ds_gemm_packed(wtype, Int64(cols), packed.pointer + g0 * packed.groupBytes, Int64(hi - lo), act, actRowBytes,
                                   Int64(tokens), y + lo, Int64(rows))
                    epilogue?(index, lo..<hi)
                    continue
                }
                let lo = rows * ith / nth, hi = rows * (ith + 1) / nth
                if lo >= hi { continue }
                // Leading rows through the single-token kernel: batch-invariant decode rows, or every row
                // of a product of a few tokens.
                var single = -1
                if let decodeRows, job.firstInputRow == 0, job.tokens == inputRows, !(tokens == 1 && decodeRows >= 1) {
                    single = min(decodeRows, tokens)
                } else if tokens > 1, tokens < perTokenBelow {
                    single = tokens
                }
                if single >= 0 {
                    // Those rows with the multi-row kernel over the whole slice, the call a lone token
                    // makes (each token's result the single-token kernel's bits, whatever that kernel
                    // decides from the call's size; each weight block read and unpacked once for several
                    // tokens), the rest (prompt rows) with the multi-token kernel over blocks of 64 rows.
                    let k = single
                    if k > 0 {
                        ds_vec_dot_rows_multi(wtype, Int64(cols), data + lo * rowBytes, rowBytes, Int64(hi - lo), act, actRowBytes,
                                              Int64(k), y + lo, Int64(rows))
                    }
                    var r0 = lo
                    while r0 < hi && k < tokens {
                        let n = min(64, hi - r0)
                        ds_gemm_any(wtype, Int64(cols), data + r0 * rowBytes, rowBytes, Int64(n), act + k * actRowBytes,
                                    actRowBytes, Int64(tokens - k), y + k * rows + r0, Int64(rows))
                        r0 += n
                    }
                } else if tokens == 1 {
                    // One call per thread slice: the kernel streams it with prefetch running ahead.
                    ds_vec_dot_rows(wtype, Int64(cols), data + lo * rowBytes, rowBytes, Int64(hi - lo), act, y + lo)
                } else {
                    // Prompt: blocks of 64 rows; each block's weights are unpacked once and multiplied
                    // against every token (ds_gemm tiles tokens so activations stay in L2).
                    var r0 = lo
                    while r0 < hi {
                        let n = min(64, hi - r0)
                        ds_gemm(wtype, Int64(cols), data + r0 * rowBytes, rowBytes, Int64(n),
                                act, actRowBytes, Int64(tokens), y + r0, Int64(rows))
                        r0 += n
                    }
                }
                epilogue?(index, lo..<hi)
            }
        }
    }
}

/// How the rows of a product are computed: what a row's result may depend on, and which kernel runs
/// a few tokens. A parameter of every product (never state of the Matmul).
public struct ProductMode: Sendable, Equatable {
    /// Batch invariance (nil: off): the first `decodeRows` input rows of a dense product are computed
    /// one token at a time (the single-token kernel, as if each were alone), the others with the
    /// multi-token kernel whatever their number. A row's result then depends only on its own input and
    /// on whether it is a decode or a prompt row, not on what else is in the batch.
    public var decodeRows: Int?
    /// Products of 2 ..< perTokenBelow tokens run one token at a time over blocks of 64 weight rows
    /// (each block stays in cache across the tokens) instead of through the multi-token GEMM, whose
    /// tiles are wasted on a few tokens (0: off). For products no invariance rests on: MoE experts in a
    /// batch of decode rows.
    public var perTokenBelow: Int

    public init(decodeRows: Int? = nil, perTokenBelow: Int = 0) { self.decodeRows = decodeRows; self.perTokenBelow = perTokenBelow }

    /// Every row through the multi-token kernel (a single token through the single-token one).
    public static let batched = ProductMode()
    /// Leading `decodeRows` rows as if alone, the rest as prompt rows.
    public static func invariant(decodeRows: Int) -> ProductMode { ProductMode(decodeRows: decodeRows) }
    /// Products of fewer than n tokens one token at a time.
    public static func perTokenBelow(_ n: Int) -> ProductMode { ProductMode(perTokenBelow: n) }
}

/// One product of a grouped multiply: `weights` applied to `tokens` consecutive rows of the input
/// starting at `firstInputRow`, results in `output` (row stride weights.rows).
public struct MatmulJob {
    public var weights: WeightMatrix
    public var output: UnsafeMutablePointer<Float>
    public var firstInputRow: Int
    public var tokens: Int
    public init(weights: WeightMatrix, output: UnsafeMutablePointer<Float>, firstInputRow: Int, tokens: Int) {
        self.weights = weights; self.output = output; self.firstInputRow = firstInputRow; self.tokens = tokens
    }
}
