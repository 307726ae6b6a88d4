// Decode rows attended together (Attention.attendDecodeRows, the verification of drafts) give every
// row the bits of its lone decode call, across the choices the lone calls make: head chunks (of 4 and
// the rest), split-K ranges past 512 positions, runs of rows whose split counts differ, sliding spans,
// softcap, F32 and F16 K/V, key widths with a tail.

import Foundation
import Testing
import Kernels
import KVCache

struct AttentionRowsTests {
    struct Shape: CustomTestStringConvertible, Sendable {
        var heads: Int, kvHeads: Int, dim: Int
        var testDescription: String { "\(heads)/\(kvHeads) heads of \(dim)" }
    }

    enum KV { case single([Float], [Float]), half([Float16], [Float16]) }

    /// A contiguous layout over q, out and the K/V rows, passed to body.
    static func run(_ q: [Float], _ out: inout [Float], _ kv: KV, _ shape: Shape, _ body: (Attention.Layout) -> Void) {
        let d = shape.dim, heads = shape.heads, kvHeads = shape.kvHeads
        q.withUnsafeBufferPointer { qb in
            out.withUnsafeMutableBufferPointer { ob in
                func layout(_ k: UnsafeRawPointer, _ v: UnsafeRawPointer, _ type: KVType) {
                    var l = Attention.Layout(q: qb.baseAddress!, qTokenStride: heads * d, qHeadStride: d,
                                             out: ob.baseAddress!, outTokenStride: heads * d, outHeadStride: d,
                                             k: k, kStride: kvHeads * d, kHeadStride: d, v: v, vStride: kvHeads * d, vHeadStride: d,
                                             heads: heads, kvHeads: kvHeads, keyDim: d, valueDim: d)
                    l.kvType = type
                    body(l)
                }
                switch kv {
                case .single(let k, let v):
                    k.withUnsafeBytes { kb in v.withUnsafeBytes { vb in layout(kb.baseAddress!, vb.baseAddress!, .f32) } }
                case .half(let k, let v):
                    k.withUnsafeBytes { kb in v.withUnsafeBytes { vb in layout(kb.baseAddress!, vb.baseAddress!, .f16) } }
                }
            }
        }
    }

    static let shapes = [Shape(heads: 9, kvHeads: 3, dim: 64), Shape(heads: 4, kvHeads: 1, dim: 72),
                         Shape(heads: 7, kvHeads: 1, dim: 32), Shape(heads: 6, kvHeads: 6, dim: 16)]

    @Test(arguments: shapes)
    func rowsEqualLoneCallsBitwise(shape: Shape) {
        let maxPositions = 1320, d = shape.dim, heads = shape.heads, kvHeads = shape.kvHeads
        let k = opTestFloats(maxPositions * kvHeads * d, seed: 21), v = opTestFloats(maxPositions * kvHeads * d, seed: 22)
        let kHalf = k.map { Float16($0) }, vHalf = v.map { Float16($0) }
        for threads in [2, 3] {
            let pool = WorkerPool(threads: threads)
            let workspace = AttentionWorkspace(pool: pool, contextLength: maxPositions, groupSize: heads / kvHeads, widestKey: d,
                                               widestValue: d, heads: heads)
            // Starts below, across and above the split thresholds (256 positions a split).
            for (start, tokens) in [(3, 4), (250, 9), (505, 5), (1020, 3), (1300, 17)] {
                let q = opTestFloats(tokens * heads * d, seed: UInt64(start))
                for span in [AttentionSpan.full, .sliding(700)] {
                    for softcap: Float in [0, 20] {
                        for half in [false, true] {
                            var together = [Float](repeating: 0, count: tokens * heads * d), alone = together
                            let kv = half ? KV.half(kHalf, vHalf) : KV.single(k, v)
                            AttentionRowsTests.run(q, &together, kv, shape) { layout in
                                Attention.attendDecodeRows(layout, tokens: tokens, startPosition: start, span: span, scale: 0.125,
                                                           softcap: softcap, workspace: workspace)
                            }
                            AttentionRowsTests.run(q, &alone, kv, shape) { layout in
                                for t in 0..<tokens {
                                    Attention.attend(layout.row(t), tokens: 1, startPosition: start + t, span: span, scale: 0.125,
                                                     softcap: softcap, workspace: workspace, promptKernel: false)
                                }
                            }
                            let differ = zip(together, alone).filter { $0.bitPattern != $1.bitPattern }.count
                            #expect(differ == 0, "\(threads) threads, start \(start), \(tokens) rows, \(span), softcap \(softcap), f16 \(half): \(differ) differ")
                        }
                    }
                }
            }
        }
    }

    /// Decode steps of several sequences in one dispatch equal each sequence's own call, bitwise (short and
    /// split-K contexts mixed).
    @Test(arguments: shapes)
    func decodeStepsEqualLoneCallsBitwise(shape: Shape) {
        let d = shape.dim, heads = shape.heads, kvHeads = shape.kvHeads
        let positions = [5, 700, 130, 1300, 0, 515]
        let maxPositions = positions.max()! + 1
        let pool = WorkerPool(threads: 2)
        let workspace = AttentionWorkspace(pool: pool, contextLength: maxPositions, groupSize: heads / kvHeads, widestKey: d,
                                           widestValue: d, heads: heads)
        // Each sequence's K/V rows in its own region of one array.
        let region = maxPositions * kvHeads * d
        let k = opTestFloats(positions.count * region, seed: 40), v = opTestFloats(positions.count * region, seed: 60)
        let q = opTestFloats(positions.count * heads * d, seed: 80)
        var together = [Float](repeating: 0, count: q.count), alone = together
        for batched in [true, false] {
            var out = [Float](repeating: 0, count: q.count)
            q.withUnsafeBufferPointer { qb in out.withUnsafeMutableBufferPointer { ob in k.withUnsafeBufferPointer { kb in
                v.withUnsafeBufferPointer { vb in
                    let steps = positions.enumerated().map { i, pos in
                        DecodeStep(layout: Attention.Layout(q: qb.baseAddress! + i * heads * d, qTokenStride: heads * d, qHeadStride: d,
                                                            out: ob.baseAddress! + i * heads * d, outTokenStride: heads * d, outHeadStride: d,
                                                            k: UnsafeRawPointer(kb.baseAddress! + i * region), kStride: kvHeads * d, kHeadStride: d,
                                                            v: UnsafeRawPointer(vb.baseAddress! + i * region), vStride: kvHeads * d, vHeadStride: d,
                                                            heads: heads, kvHeads: kvHeads, keyDim: d, valueDim: d),
                                   position: pos)
                    }
                    if batched {
                        steps.withUnsafeBufferPointer { Attention.attendDecodeSteps($0, span: .full, scale: 0.125, softcap: 0, workspace: workspace) }
                    } else {
                        for step in steps {
                            Attention.attend(step.layout, tokens: 1, startPosition: step.position, span: .full, scale: 0.125, softcap: 0,
                                             workspace: workspace, promptKernel: false)
                        }
                    }
                }
            } } }
            if batched { together = out } else { alone = out }
        }
        let differ = zip(together, alone).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differ == 0 && together.contains { $0 != 0 }, "\(differ) differ")
    }
}
