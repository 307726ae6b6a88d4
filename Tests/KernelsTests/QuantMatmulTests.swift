// Quantized matmul through the worker pool against the scalar reference dot, on random weights of
// every type (quantized with the reference quantizer), several token counts and thread counts.

import Testing
import CKernels
import Kernels
import GGUF

@Suite struct QuantMatmulTests {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .f16, .bf16, .f32, .mxfp4,
                                    .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m, .iq4_nl, .iq4_xs]

    /// Deterministic values in about [−1.4, 1.4] (a linear congruential generator).
    static func randomValues(seed start: UInt64) -> () -> Float {
        var seed = start
        return {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 700
        }
    }

    /// rows × cols values from `values()` quantized row by row with the reference quantizer; for a type
    /// without one (the i-quants), random blocks of root mean square 0.8 (about that of the values).
    static func quantizedMatrix(_ type: GGMLType, rows: Int, cols: Int, values: () -> Float) -> [UInt8] {
        if !Kernels.hasQuantizer(type) {
            return Kernels.randomBlocks(type, count: rows * cols, seed: UInt64(values().bitPattern), rms: 0.8)!
        }
        let w = (0..<(rows * cols)).map { _ in values() }
        let rowBytes = type.byteCount(elements: cols)!
        var q = [UInt8](repeating: 0, count: rowBytes * rows)
        q.withUnsafeMutableBytes { qb in
            w.withUnsafeBufferPointer { wb in
                for r in 0..<rows {
                    ds_quantize_row_ref(Int32(type.rawValue), wb.baseAddress! + r * cols, qb.baseAddress! + r * rowBytes, Int64(cols))
                }
            }
        }
        return q
    }

    @Test(arguments: types)
    func matmulMatchesScalarReference(type: GGMLType) {
        // Rows not a multiple of any tile; 32-element types with K not a multiple of 256.
        let cols = type.blockSize == 256 ? 512 : 288, rows = 67
        let rnd = Self.randomValues(seed: 99)
        let rowBytes = type.byteCount(elements: cols)!
        let q = Self.quantizedMatrix(type, rows: rows, cols: cols, values: rnd)
        for tokens in [1, 3, 5, 17, 130] {  // decode path, and ds_gemm's token tiles with remainders
            let x = (0..<(tokens * cols)).map { _ in rnd() * 3 }
            // Reference: activation quantized the same way, scalar dot per (token, row).
            let actType = ds_vec_dot_type(Int32(type.rawValue))
            let actBytes = Matmul.activationRowBytes(weightType: type, cols: cols)
            var act = [UInt8](repeating: 0, count: actBytes)
            var ref = [Float](repeating: 0, count: tokens * rows)
            for t in 0..<tokens {
                act.withUnsafeMutableBytes { ab in
                    x.withUnsafeBufferPointer { ds_quantize_activation(actType, $0.baseAddress! + t * cols, ab.baseAddress!, Int64(cols)) }
                    q.withUnsafeBytes { qb in
                        for r in 0..<rows {
                            ref[t * rows + r] = ds_vec_dot_scalar(Int32(type.rawValue), Int64(cols), qb.baseAddress! + r * rowBytes, ab.baseAddress!)
                        }
                    }
                }
            }
            for threads in [1, 2, 3] {
                let mm = Matmul(pool: WorkerPool(threads: threads))
                var y = [Float](repeating: .nan, count: tokens * rows + 16)
                q.withUnsafeBytes { qb in
                    let m = WeightMatrix(type: type, rows: rows, cols: cols, data: qb.baseAddress!)
                    mm.multiply(m, x, tokens: tokens, into: &y, mode: .batched)
                }
                var worst: Float = 0
                for i in 0..<(tokens * rows) { worst = max(worst, abs(y[i] - ref[i]) / max(1, abs(ref[i]))) }
                #expect(worst < 1e-3, "\(type) tokens \(tokens) threads \(threads): max rel diff \(worst)")
                #expect(y[(tokens * rows)...].allSatisfy { $0.isNaN }, "wrote past the output")
            }
        }
    }

    /// Decode rows of a batch (ProductMode.invariant, the multi-row kernel) give each token the bits it
    /// gets alone (one token, the single-token kernel), for every type and 1…9 rows, with 1 and 2 threads.
    @Test(arguments: types)
    func decodeRowsEqualEachTokenAloneBitwise(type: GGMLType) {
        let cols = type.blockSize == 256 ? 512 : 288, rows = 67
        let rnd = Self.randomValues(seed: 7)
        let q = Self.quantizedMatrix(type, rows: rows, cols: cols, values: rnd)
        let x = (0..<(9 * cols)).map { _ in rnd() * 3 }
        for threads in [1, 2] {
            let mm = Matmul(pool: WorkerPool(threads: threads))
            q.withUnsafeBytes { qb in
                let m = WeightMatrix(type: type, rows: rows, cols: cols, data: qb.baseAddress!)
                var alone = [Float](repeating: 0, count: 9 * rows)
                for t in 0..<9 {
                    x.withUnsafeBufferPointer { xb in
                        alone.withUnsafeMutableBufferPointer { mm.multiply(m, xb.baseAddress! + t * cols, tokens: 1, into: $0.baseAddress! + t * rows, mode: .batched) }
                    }
                }
                for tokens in 1...9 {
                    var y = [Float](repeating: .nan, count: tokens * rows)
                    mm.multiply(m, x, tokens: tokens, into: &y, mode: .invariant(decodeRows: tokens))
                    let differing = (0..<(tokens * rows)).filter { y[$0].bitPattern != alone[$0].bitPattern }.count
                    #expect(differing == 0, "\(type) \(tokens) decode rows, \(threads) threads: \(differing) results differ from the token alone")
                }
            }
        }
    }

    /// Float matrices larger than the float kernels' streaming threshold (4 MiB a call): decode rows of
    /// a batch still give each token the bits it gets alone (the kernel's choice follows the call).
    @Test(arguments: [GGMLType.f16, .f32])
    func largeFloatMatricesKeepDecodeRowsExact(type: GGMLType) {
        let rows = type == .f16 ? 4160 : 2080, cols = 1024   // 8.1 MiB
        let q = Self.quantizedMatrix(type, rows: rows, cols: cols, values: Self.randomValues(seed: 3))
        let rnd = Self.randomValues(seed: 4)
        let x = (0..<(3 * cols)).map { _ in rnd() }
        for threads in [1, 2] {
            let mm = Matmul(pool: WorkerPool(threads: threads))
            q.withUnsafeBytes { qb in
                let m = WeightMatrix(type: type, rows: rows, cols: cols, data: qb.baseAddress!)
                var alone = [Float](repeating: 0, count: 3 * rows), batch = [Float](repeating: 0, count: 3 * rows)
                for t in 0..<3 {
                    x.withUnsafeBufferPointer { xb in
                        alone.withUnsafeMutableBufferPointer { mm.multiply(m, xb.baseAddress! + t * cols, tokens: 1, into: $0.baseAddress! + t * rows, mode: .batched) }
                    }
                }
                mm.multiply(m, x, tokens: 3, into: &batch, mode: .invariant(decodeRows: 3))
                let differing = (0..<(3 * rows)).filter { batch[$0].bitPattern != alone[$0].bitPattern }.count
                #expect(differing == 0, "\(type), \(threads) threads: \(differing) results differ from the token alone")
            }
        }
    }
}
