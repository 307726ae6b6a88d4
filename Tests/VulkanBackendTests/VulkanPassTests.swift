// A declared pass on the Vulkan backend: a session's buffers mirrored on the device, the ops recorded and run
// once per host access, host writes between them taken up again, rows that are not whole chunks, strided
// blocks whose gaps must survive, and operands outside the mirrors (a weight vector, per-row factors). Each
// sequence against the same sequence on the CPU backend, on lavapipe.

import Foundation
import Kernels
import Testing
import VulkanBackend


/// Buffers a, b (rows × width, a width that is not a whole number of 1 KiB chunks) and the ops of one pass.
private final class PassBuffers {
    static let rows = 7, width = 300, headDim = 50, heads = 6
    let a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>
    let weight = values(width, seed: 3), factors = values(rows, seed: 4)
    let table: [Float]
    init() {
        let n = PassBuffers.rows * PassBuffers.width
        a = .allocate(capacity: n); b = .allocate(capacity: n)
        a.initialize(from: values(n, seed: 1), count: n)
        b.initialize(from: values(n, seed: 2), count: n)
        let rope = Rope(dimensions: 32, base: 10000, style: .neox)
        var t = [Float](repeating: 0, count: PassBuffers.rows * 32)
        t.withUnsafeMutableBufferPointer { for r in 0..<PassBuffers.rows { rope.fill($0.baseAddress! + r * 32, position: 5 + r) } }
        table = t
    }
    deinit { a.deallocate(); b.deallocate() }

    var buffers: [UnsafeMutableRawBufferPointer] {
        [UnsafeMutableRawBufferPointer(start: a, count: PassBuffers.rows * PassBuffers.width * 4),
         UnsafeMutableRawBufferPointer(start: b, count: PassBuffers.rows * PassBuffers.width * 4)]
    }

    /// A pass: norm, residual add, a host write between two host accesses, strided blocks, RoPE, activations.
    func run(_ ops: any Backend) {
        let r = PassBuffers.rows, w = PassBuffers.width
        let all = RowBlock(a, rows: r, width: w), other = RowBlock(b, rows: r, width: w)
        ops.passBegins(hostAccessDeclared: true)
        ops.rmsNorm(all, weight: weight, into: other, epsilon: 1e-6)
        ops.add(other, into: all)
        // Rows 2..<5 only, then a strided block: every other row, its first 120 floats.
        ops.scale(RowBlock(a + 2 * w, rows: 3, width: w), by: 0.5)
        ops.scaleRows(RowBlock(b, rows: 4, width: 120, stride: 2 * w), by: factors)
        ops.hostAccess()
        // The host reads a result and writes a row of its own.
        let probe = a[3 * w + 7]
        for i in 0..<w { b[5 * w + i] = probe + Float(i) / 100 }
        ops.rotate(RowBlock(a, rows: r, width: w), heads: PassBuffers.heads, headDim: PassBuffers.headDim,
                   rope: Rope(dimensions: 32, base: 10000, style: .neox), tables: table, tableStride: 32)
        ops.gatedActivation(.swiglu, gate: other, up: all)
        ops.rmsNorm(RowBlock(b, rows: r * PassBuffers.heads, width: PassBuffers.headDim), weight: nil,
                    into: RowBlock(b, rows: r * PassBuffers.heads, width: PassBuffers.headDim), epsilon: 1e-6)
        ops.addToRows(weight, all)
        ops.softcap(other, cap: 3)
        #expect(ops.passEnded())
    }
}

@Suite struct VulkanPassTests {
    @Test(.enabled(if: hasDevice, lavapipeReason))
    func declaredPassMatchesTheCPUWithOneSubmitPerHostAccess() throws {
        let cpuSide = PassBuffers(), deviceSide = PassBuffers()
        cpuSide.run(cpuBackend())
        let context = try VulkanContext(deviceIndex: 0)
        let backend = VulkanBackend(context: context, cpu: cpuBackend())
        backend.keepOnDevice(deviceSide.buffers)
        let before = context.submitCount
        deviceSide.run(backend)
        // One submit at the host access in the middle, one at the end (plus none per op).
        #expect(context.submitCount - before == 2, "submits in the pass: \(context.submitCount - before)")
        let n = PassBuffers.rows * PassBuffers.width
        var worst: Float = 0
        for i in 0..<n {
            worst = max(worst, abs(cpuSide.a[i] - deviceSide.a[i]), abs(cpuSide.b[i] - deviceSide.b[i]))
        }
        #expect(worst < 1e-4, "max |device − CPU| = \(worst)")
    }

    /// The same ops outside a declared pass: every op's results are on the host when it returns.
    @Test(.enabled(if: hasDevice, lavapipeReason))
    func undeclaredOpsReturnTheirResults() throws {
        let context = try VulkanContext(deviceIndex: 0)
        let backend = VulkanBackend(context: context, cpu: cpuBackend())
        let side = PassBuffers()
        backend.keepOnDevice(side.buffers)
        let w = PassBuffers.width
        let expected = (0..<w).map { side.b[$0] + side.a[$0] }
        backend.add(RowBlock(side.a, rows: 1, width: w), into: RowBlock(side.b, rows: 1, width: w))
        #expect((0..<w).allSatisfy { abs(side.b[$0] - expected[$0]) < 1e-6 })
        // A host write right after is what the next op reads.
        side.a[0] = 100
        backend.scale(RowBlock(side.a, rows: 1, width: 1), by: 2)
        #expect(side.a[0] == 200)
    }
}
