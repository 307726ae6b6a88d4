// Float kernels and the worker pool against plain reference loops.

import Testing
import CKernels
import Kernels
import GGUF

@Suite struct FloatKernelTests {
    func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 500
        }
    }

    @Test(arguments: [1, 7, 16, 33, 576, 1000])
    func dotMatchesDouble(n: Int) {
        let a = randomFloats(n, seed: 1), b = randomFloats(n, seed: 2)
        var ref = 0.0
        for i in 0..<n { ref += Double(a[i]) * Double(b[i]) }
        let got = ds_dot_f32(a, b, Int64(n))
        #expect(abs(Double(got) - ref) <= 1e-4 * max(1, abs(ref)))
    }

    @Test func rmsNormMatchesFormula() {
        let x = randomFloats(64, seed: 3), w = randomFloats(64, seed: 4)
        var out = [Float](repeating: 0, count: 64)
        ds_rmsnorm_f32(x, w, &out, 64, 1e-5, 0)
        let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / 64
        for i in 0..<64 { #expect(abs(Double(out[i]) - Double(x[i]) / (ms + 1e-5).squareRoot() * Double(w[i])) < 1e-5) }
    }

    @Test func attentionHeadIsSoftmaxWeightedSum() {
        let d = 8, n = 5
        let q = randomFloats(d, seed: 5), k = randomFloats(n * d, seed: 6), v = randomFloats(n * d, seed: 7)
        var out = [Float](repeating: 0, count: d), scratch = [Float](repeating: 0, count: n)
        ds_attend_head_f32(q, k, Int64(d), v, Int64(d), 1, Int64(n), Int64(d), 0.5, 0, &out, &scratch)
        var s = [Double](), ref = [Double](repeating: 0, count: d)
        for j in 1..<n { s.append(0.5 * (0..<d).reduce(0.0) { $0 + Double(q[$1]) * Double(k[j * d + $1]) }) }
        let m = s.max()!, z = s.reduce(0.0) { $0 + exp($1 - m) }
        for (i, j) in (1..<n).enumerated() { for c in 0..<d { ref[c] += exp(s[i] - m) / z * Double(v[j * d + c]) } }
        for c in 0..<d { #expect(abs(Double(out[c]) - ref[c]) < 1e-5) }
    }

    /// The grouped (GQA) kernel equals the per-head kernel for every head of the group.
    @Test(arguments: [1, 3, 4])
    func groupedAttentionMatchesPerHead(group: Int) {
        let d = 32, n = 19
        let q = randomFloats(group * d, seed: 11), k = randomFloats(n * d * 2, seed: 12), v = randomFloats(n * d * 2, seed: 13)
        var grouped = [Float](repeating: 0, count: group * d), scratch = [Float](repeating: 0, count: group * n)
        ds_attend_group_f32(q, Int64(group), Int64(d), k, Int64(2 * d), v, Int64(2 * d), nil, 0, 0, 0, 2, Int64(n), Int64(d), Int64(d), 0.3, 0,
                            &grouped, Int64(d), &scratch, nil, nil)
        for i in 0..<group {
            var one = [Float](repeating: 0, count: d), s = [Float](repeating: 0, count: n)
            q.withUnsafeBufferPointer { qb in
                ds_attend_head_f32(qb.baseAddress! + i * d, k, Int64(2 * d), v, Int64(2 * d), 2, Int64(n), Int64(d), 0.3, 0, &one, &s)
            }
            for c in 0..<d { #expect(abs(one[c] - grouped[i * d + c]) < 1e-5) }
        }
    }

    /// MLA's absorbed form: scores over head_dim floats of each cache row, values = the first v_dim
    /// floats of the same row (V lives inside K), checked against the formula in Double.
    @Test func latentAttentionReadsValuesInsideKeys() {
        let dk = 24, dv = 16, n = 7, group = 5
        let q = randomFloats(group * dk, seed: 21), kv = randomFloats(n * dk, seed: 22)
        var out = [Float](repeating: 0, count: group * dv), scratch = [Float](repeating: 0, count: group * n)
        ds_attend_group_f32(q, Int64(group), Int64(dk), kv, Int64(dk), kv, Int64(dk), nil, 0, 0, 0, 0, Int64(n), Int64(dk), Int64(dv),
                            0.25, 0, &out, Int64(dv), &scratch, nil, nil)
        for i in 0..<group {
            let s = (0..<n).map { j in 0.25 * (0..<dk).reduce(0.0) { $0 + Double(q[i * dk + $1]) * Double(kv[j * dk + $1]) } }
            let m = s.max()!, z = s.reduce(0.0) { $0 + exp($1 - m) }
            for c in 0..<dv {
                let ref = (0..<n).reduce(0.0) { $0 + exp(s[$1] - m) / z * Double(kv[$1 * dk + c]) }
                #expect(abs(Double(out[i * dv + c]) - ref) < 1e-5)
            }
        }
    }

    /// Rows read through a page table (pages of 4 rows scattered in an arena, as the paged KV cache
    /// stores them) give bit-identical output to the same rows stored contiguously.
    @Test func pagedRowsMatchContiguousBitwise() {
        let d = 24, dv = 20, n = 37, group = 6, pageShift = 2, pageRows = 1 << pageShift
        let pageCount = (n + pageRows - 1) / pageRows
        let q = randomFloats(group * d, seed: 31), k = randomFloats(n * d, seed: 32), v = randomFloats(n * dv, seed: 33)
        // Page i of the sequence lives at arena page pages[i] (a permutation with gaps).
        let pages: [Int32] = (0..<pageCount).map { Int32(($0 * 7 + 3) % (2 * pageCount)) }
        var kArena = [Float](repeating: .nan, count: 2 * pageCount * pageRows * d)
        var vArena = [Float](repeating: .nan, count: 2 * pageCount * pageRows * dv)
        for j in 0..<n {
            let page = Int(pages[j >> pageShift]), row = j & (pageRows - 1)
            for c in 0..<d { kArena[(page * pageRows + row) * d + c] = k[j * d + c] }
            for c in 0..<dv { vArena[(page * pageRows + row) * dv + c] = v[j * dv + c] }
        }
        var a = [Float](repeating: 0, count: group * dv), b = a, s = [Float](repeating: 0, count: group * n)
        ds_attend_group_f32(q, Int64(group), Int64(d), k, Int64(d), v, Int64(dv), nil, 0, 0, 0, 3, Int64(n), Int64(d), Int64(dv),
                            0.2, 0, &a, Int64(dv), &s, nil, nil)
        ds_attend_group_f32(q, Int64(group), Int64(d), kArena, Int64(d), vArena, Int64(dv), pages, Int64(pageShift),
                            Int64(pageRows * d), Int64(pageRows * dv), 3, Int64(n), Int64(d), Int64(dv), 0.2, 0, &b, Int64(dv), &s, nil, nil)
        #expect(a == b)
    }

    /// The vectorised exp behind SiLU/GELU stays within float rounding of the exact functions.
    @Test func activationsMatchExactFunctions() {
        let xs = (0..<4001).map { Float($0 - 2000) / 100 }  // -20 … 20
        var g1 = xs, g2 = xs
        let ones = [Float](repeating: 1, count: xs.count)
        ds_swiglu_f32(&g1, ones, Int64(xs.count))
        ds_geglu_f32(&g2, ones, Int64(xs.count))
        var worst = 0.0
        for (i, x) in xs.enumerated() {
            let d = Double(x)
            let silu = d / (1 + exp(-d))
            let gelu = 0.5 * d * (1 + tanh(0.7978845608028654 * (d + 0.044715 * d * d * d)))
            // 1e-5 relative plus 1e-6 absolute: near gelu's zero tail (x ≪ 0) 1 + tanh cancels in float,
            // as it does with libm's tanhf.
            worst = max(worst, abs(Double(g1[i]) - silu) / (1e-5 * abs(silu) + 1e-6), abs(Double(g2[i]) - gelu) / (1e-5 * abs(gelu) + 1e-6))
        }
        #expect(worst < 1, "error \(worst) × the tolerance")
    }

    @Test func poolCoversEveryIndexOnce() {
        for threads in [1, 2, 3, 8] {
            let pool = WorkerPool(threads: threads)
            for count in [0, 1, 5, 1000] {
                var hits = [Int](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { h in
                    for _ in 0..<50 { pool.parallelFor(count) { r in for i in r { h[i] += 1 } } }
                }
                #expect(hits.allSatisfy { $0 == 50 })
            }
            pool.park()
            var sum = 0
            withUnsafeMutablePointer(to: &sum) { p in pool.run { ith, _ in if ith == 0 { p.pointee = 7 } } }
            #expect(sum == 7)
        }
    }

    @Test func f32MatmulMatchesNaive() {
        let rows = 37, cols = 64, tokens = 5
        let w = randomFloats(rows * cols, seed: 8), x = randomFloats(tokens * cols, seed: 9)
        var y = [Float](repeating: 0, count: tokens * rows)
        let pool = WorkerPool(threads: 2)
        let mm = Matmul(pool: pool)
        w.withUnsafeBytes { wb in
            let m = WeightMatrix(type: .f32, rows: rows, cols: cols, data: wb.baseAddress!)
            mm.multiply(m, x, tokens: tokens, into: &y, mode: .batched)
        }
        for t in 0..<tokens {
            for r in 0..<rows {
                let ref = (0..<cols).reduce(0.0) { $0 + Double(w[r * cols + $1]) * Double(x[t * cols + $1]) }
                #expect(abs(Double(y[t * rows + r]) - ref) < 1e-4)
            }
        }
    }
}

import Foundation
