// Y[T, rows] = X[T, cols] · W[rows, cols]ᵀ with W quantized in place.
// Activations are quantized once per call to the weight type's dot format (Q8_0 / Q8_1 / Q8_K, or
// kept F32 for float weights), then each thread takes a slice of W's rows and, for a block of rows
// that stays in L1, runs the integer dot against every token's activation row.

import CKernels
import GGUF

public final class Matmul: @unchecked Sendable {
    public let pool: WorkerPool
    /// Reused activation buffer (grows to the largest T×cols seen; no per-token allocation after warm-up).
    private var actBuffer: UnsafeMutableRawPointer?
    private var actCapacity = 0

    public init(pool: WorkerPool) { self.pool = pool }
    deinit { actBuffer?.deallocate() }

    /// Bytes of one activation row of `cols` floats in the dot format for weight type `type`.
    public static func activationRowBytes(weightType: GGMLType, cols: Int) -> Int {
        let act = ds_vec_dot_type(Int32(weightType.rawValue))
        return Int(ds_type_block_bytes(act)) * cols / Int(ds_type_block_size(act))
    }

    private func activationStorage(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > actCapacity {
            actBuffer?.deallocate()
            actCapacity = max(bytes, actCapacity * 2)
            actBuffer = UnsafeMutableRawPointer.allocate(byteCount: actCapacity, alignment: 64)
        }
        return actBuffer!
    }

    /// Y[t*rows + r] = Σ_c W[r, c] · X[t*cols + c]   for t < tokens.
    public func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>) {
        let wtype = Int32(w.type.rawValue)
        let actType = ds_vec_dot_type(wtype)
        let cols = w.cols, rows = w.rows
        let actRowBytes = Matmul.activationRowBytes(weightType: w.type, cols: cols)
        let act: UnsafeRawPointer
        if actType == 0 {
            act = UnsafeRawPointer(x)
        } else {
            let buf = activationStorage(actRowBytes * tokens)
            if tokens >= 4 {
                pool.parallelFor(tokens) { range in
                    for t in range { ds_quantize_activation(actType, x + t * cols, buf + t * actRowBytes, Int64(cols)) }
                }
            } else {
                for t in 0..<tokens { ds_quantize_activation(actType, x + t * cols, buf + t * actRowBytes, Int64(cols)) }
            }
            act = UnsafeRawPointer(buf)
        }
        let rowBytes = w.rowBytes
        let data = w.data
        // Rows per inner block: keep ~16 KB of weights hot while sweeping the tokens. A single token
        // streams its whole slice in one call (the kernel prefetches ahead within a call).
        let block = tokens == 1 ? rows : max(1, min(64, 16384 / max(rowBytes, 1)))
        pool.parallelFor(rows) { range in
            var r0 = range.lowerBound
            while r0 < range.upperBound {
                let n = min(block, range.upperBound - r0)
                for t in 0..<tokens {
                    ds_vec_dot_rows(wtype, Int64(cols), data + r0 * rowBytes, rowBytes, Int64(n),
                                    act + t * actRowBytes, y + t * rows + r0)
                }
                r0 += n
            }
        }
    }
}
