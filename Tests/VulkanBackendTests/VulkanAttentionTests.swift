// K/V stores and paged attention on the Vulkan backend against the CPU backend, on lavapipe: two sequences
// whose pages interleave in the pool (scattered pages), grouped query heads, full, sliding and chunked spans,
// softcapping, prompt rows and decode steps of both sequences; the host's arenas after the device stored the
// rows (write-through); a row rewritten on the host taken up again by the device.

import Foundation
import Kernels
import KVCache
import Testing
import VulkanBackend


/// Two sequences of 13 positions in a pool of 4-position pages, written in alternating chunks of 3 through
/// `ops` (so their pages interleave), layer 1's rows from seeded values.
private final class PagedCase {
    static let heads = 4, kvHeads = 2, d = 32, layers = 2
    let positions: Int

    /// Attention outputs (values in [−2, 2]): F32 to rounding, F16 within a half's precision, Q8_0 within a
    /// step of its bytes (a row the device rounds the other way moves an output by at most 2/127).
    static func tolerance(_ type: KVType) -> Float { [.f32: 1e-5, .f16: 2e-3, .q8_0: 2e-2][type]! }
    /// Stored rows against the CPU's: equal for F32; a half's last bit, a Q8_0 step (2/127) at most.
    static func storedTolerance(_ type: KVType) -> Float { [.f32: 0, .f16: 1e-3, .q8_0: 1.6e-2][type]! }
    let pool: KVPagePool
    let sequences: [KVSequence]
    let ops: any Backend

    init(_ ops: any Backend, type: KVType, positions: Int = 13) {
        self.ops = ops
        self.positions = positions
        let width = PagedCase.kvHeads * PagedCase.d
        pool = KVPagePool(shape: KVShape(layers: PagedCase.layers, kRowFloats: width, vRowFloats: width, type: type), pageTokens: 4,
                          capacity: 32)
        sequences = [KVSequence(pool: pool, maxPositions: 64), KVSequence(pool: pool, maxPositions: 64)]
        ops.keepKVOnDevice(pool)
        for start in stride(from: 0, to: positions, by: 3) {
            for (s, seq) in sequences.enumerated() {
                let n = min(3, positions - start)
                try! seq.prepareWrite(start: start, count: n)
                store(seq, s, start: start, count: n)
                [Int32](repeating: 1, count: n).withUnsafeBufferPointer { seq.commit($0, start: start) }
            }
        }
    }

    func store(_ seq: KVSequence, _ s: Int, start: Int, count n: Int) {
        let width = PagedCase.kvHeads * PagedCase.d
        var k = values(n * width, seed: UInt64(100 + 7 * start + s)), v = values(n * width, seed: UInt64(200 + 7 * start + s))
        let positions = (start..<(start + n)).map { $0 }, segments = [Int32](repeating: 0, count: n)
        k.withUnsafeMutableBufferPointer { kb in v.withUnsafeMutableBufferPointer { vb in
            ops.storeKV(layer: 1, k: RowBlock(kb.baseAddress!, rows: n, width: width), v: RowBlock(vb.baseAddress!, rows: n, width: width),
                        positions: positions, segmentOfRow: segments, caches: [seq])
        } }
        #expect(ops.passEnded())
    }

    /// Attention of `tokens` query rows at start over sequence s (layer 1).
    func attend(_ s: Int, tokens: Int, start: Int, span: AttentionSpan, softcap: Float) -> [Float] {
        let h = PagedCase.heads, d = PagedCase.d
        let q = values(tokens * h * d, seed: UInt64(300 + start + s))
        var out = [Float](repeating: 0, count: tokens * h * d)
        q.withUnsafeBufferPointer { qb in out.withUnsafeMutableBufferPointer { ob in
            let layout = Attention.paged(sequences[s], layer: 1, q: qb.baseAddress!, qTokenStride: h * d, qHeadStride: d,
                                         out: ob.baseAddress!, outTokenStride: h * d, outHeadStride: d, kHeadStride: d, vHeadStride: d,
                                         heads: h, kvHeads: PagedCase.kvHeads, keyDim: d, valueDim: d)
            ops.attend(layout, tokens: tokens, startPosition: start, span: span, scale: 0.25, softcap: softcap, prompt: tokens > 1)
        } }
        #expect(ops.passEnded())
        return out
    }

    /// One decode step of each sequence at its last position, in one call.
    func decodeSteps(span: AttentionSpan) -> [Float] {
        let h = PagedCase.heads, d = PagedCase.d, last = positions - 1
        let q = values(2 * h * d, seed: 400)
        var out = [Float](repeating: 0, count: 2 * h * d)
        q.withUnsafeBufferPointer { qb in out.withUnsafeMutableBufferPointer { ob in
            let steps = (0..<2).map { s in
                DecodeStep(layout: Attention.paged(sequences[s], layer: 1, q: qb.baseAddress! + s * h * d, qTokenStride: h * d, qHeadStride: d,
                                                   out: ob.baseAddress! + s * h * d, outTokenStride: h * d, outHeadStride: d,
                                                   kHeadStride: d, vHeadStride: d, heads: h, kvHeads: PagedCase.kvHeads, keyDim: d, valueDim: d),
                           position: last)
            }
            steps.withUnsafeBufferPointer { ops.attendDecodeSteps($0, span: span, scale: 0.25, softcap: 0) }
        } }
        #expect(ops.passEnded())
        return out
    }

    /// Every stored K and V value of layer 1, both sequences, as the host holds them (widened to floats).
    var hostRows: [Float] {
        let width = PagedCase.kvHeads * PagedCase.d
        var rows: [Float] = [], row = [Float](repeating: 0, count: width)
        for seq in sequences {
            for p in 0..<positions {
                seq.loadK(1, p, count: width, into: &row); rows += row
                seq.loadV(1, p, count: width, into: &row); rows += row
            }
        }
        return rows
    }
}

private func worst(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

@Suite struct VulkanAttentionTests {
    /// F32 rows, F16 and Q8_0 rows (converted or quantized on the device as they are stored; its rounding may
    /// differ from the CPU's in the last bit of a half or of a byte, so they match within that precision).
    @Test(.enabled(if: hasDevice, lavapipeReason), arguments: KVType.allCases)
    func pagedAttentionMatchesTheCPU(type: KVType) throws {
        let context = try VulkanContext(deviceIndex: 0)
        let cpu = PagedCase(cpuBackend(), type: type), device = PagedCase(VulkanBackend(context: context, cpu: cpuBackend()), type: type)
        let tolerance = PagedCase.tolerance(type)
        // The pages of the two sequences interleave in the pool.
        let pagesA = (0..<4).map { device.sequences[0].page(1, 4 * $0) }, pagesB = (0..<4).map { device.sequences[1].page(1, 4 * $0) }
        #expect(Set(pagesA).isDisjoint(with: pagesB) && pagesA.max()! > pagesB.min()!, "scattered pages: \(pagesA) and \(pagesB)")
        // The device stored the rows; the host's arenas hold them after the pass (write-through).
        #expect(worst(device.hostRows, cpu.hostRows) <= PagedCase.storedTolerance(type), "stored rows: \(worst(device.hostRows, cpu.hostRows))")
        for span in [AttentionSpan.full, .sliding(5), .chunked(4)] {
            for softcap: Float in [0, 5] {
                for s in 0..<2 {
                    let want = cpu.attend(s, tokens: 3, start: 10, span: span, softcap: softcap)
                    let got = device.attend(s, tokens: 3, start: 10, span: span, softcap: softcap)
                    #expect(worst(got, want) < tolerance, "\(span) softcap \(softcap) sequence \(s): \(worst(got, want))")
                }
            }
            #expect(worst(device.decodeSteps(span: span), cpu.decodeSteps(span: span)) < tolerance, "decode steps, \(span)")
        }
        // A row rewritten on the host (a CPU store bumps its page's generation): the device takes the page again.
        let backend = try #require(device.ops as? VulkanBackend)
        #expect(backend.kvRowsStoredOnDevice == 2 * device.positions && backend.attentionCallsOnDevice == 3 * 2 * 2 + 3 * 2,
                "on the device: \(backend.kvRowsStoredOnDevice) rows stored, \(backend.attentionCallsOnDevice) attention calls")
        let width = PagedCase.kvHeads * PagedCase.d
        let row = values(width, seed: 999)
        for c in [cpu, device] { row.withUnsafeBufferPointer { c.sequences[0].storeK(1, 5, $0.baseAddress!) } }
        #expect(worst(device.attend(0, tokens: 1, start: 12, span: .full, softcap: 0), cpu.attend(0, tokens: 1, start: 12, span: .full, softcap: 0))
                < tolerance)
    }

    /// The split-K kernel (decode steps over more visible rows than `attentionSplitRows`, merged after) and the
    /// tiled prompt kernel (blocks of 16 tokens; 37 tokens make two whole blocks and a part) against the CPU.
    @Test(.enabled(if: hasDevice, lavapipeReason), arguments: KVType.allCases)
    func splitAndTiledAttentionMatchTheCPU(type: KVType) throws {
        let context = try VulkanContext(deviceIndex: 0)
        let backend = VulkanBackend(context: context, cpu: cpuBackend())
        backend.attentionSplitRows = 4
        let cpu = PagedCase(cpuBackend(), type: type, positions: 40), device = PagedCase(backend, type: type, positions: 40)
        let tolerance = PagedCase.tolerance(type)
        for span in [AttentionSpan.full, .sliding(7), .chunked(8)] {
            for softcap: Float in [0, 5] {
                for (tokens, start) in [(37, 3), (10, 30), (1, 39), (3, 20)] {
                    let want = cpu.attend(1, tokens: tokens, start: start, span: span, softcap: softcap)
                    let got = device.attend(1, tokens: tokens, start: start, span: span, softcap: softcap)
                    #expect(worst(got, want) < tolerance, "\(span) softcap \(softcap) \(tokens) tokens at \(start): \(worst(got, want))")
                }
            }
            #expect(worst(device.decodeSteps(span: span), cpu.decodeSteps(span: span)) < tolerance, "decode steps, \(span)")
        }
        // Tiled: 37 and 10 tokens, each span and softcap. Split: 1 and 3 tokens over more than 4 visible rows
        // (every span: sliding 7 and chunked 8 show up to 7 and 8), and both decode steps.
        #expect(backend.attentionTiledCalls == 3 * 2 * 2, "tiled calls: \(backend.attentionTiledCalls)")
        #expect(backend.attentionSplitCalls == 3 * 2 * 2 + 3 * 2, "split calls: \(backend.attentionSplitCalls)")
    }
}
