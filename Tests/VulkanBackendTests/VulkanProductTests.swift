// The Vulkan backend's products against a scalar reference (dequantized weights · float activations, in
// double), for every weight type with a kernel, on lavapipe: single and grouped jobs, token counts across the
// 8-token tile, matrices bound in parts, a budget too small for some matrices (those run on the CPU), gated
// products, one submit per call.

import Foundation
import GGUF
import Kernels
import Testing
import VulkanBackend

/// W[rows, cols] of `type` from random floats (the reference quantizer), kept alive with its dequantization.
private final class TestMatrix {
    let bytes: UnsafeMutableRawPointer
    let matrix: WeightMatrix
    let floats: [Float]
    init(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) {
        let w = values(rows * cols, seed: seed)
        let rowBytes = type.byteCount(elements: cols)!
        let storage = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes, alignment: 64)
        // Unit importance: the i-quants need some; the others take the reference quantizers' bytes either way.
        let importance = [Float](repeating: 1, count: cols)
        let done = Kernels.quantize(type, w, rows: rows, cols: cols, importance: importance, into: storage)
        precondition(done, "\(type) has a quantizer")
        bytes = storage
        matrix = WeightMatrix(type: type, rows: rows, cols: cols, data: storage, name: "test.\(type)")
        floats = matrix.toFloats()
    }
    deinit { bytes.deallocate() }

    /// Σ_c W[r, c] · x[c]
    func reference(row r: Int, _ x: ArraySlice<Float>) -> Double {
        let cols = matrix.cols
        var s = 0.0
        for (c, v) in x.enumerated() { s += Double(floats[r * cols + c]) * Double(v) }
        return s
    }
}

private func worstError(_ got: [Float], _ want: [Double]) -> Double {
    let scale = max(1, want.map(abs).max() ?? 1)
    return zip(got, want).map { abs(Double($0) - $1) }.max().map { $0 / scale } ?? 0
}


@Suite struct VulkanProductTests {
    static let types = VulkanContext.productTypes.keys.sorted { $0.rawValue < $1.rawValue }

    /// Each weight type: Y = X · Wᵀ for 1, 3, 8, 9 and 17 tokens; float types also at a width that is not whole
    /// 32-element chunks.
    @Test(.enabled(if: hasDevice, lavapipeReason), arguments: types)
    func productsMatchTheReference(type: GGMLType) throws {
        let backend = VulkanBackend(context: try VulkanContext(deviceIndex: 0), cpu: cpuBackend())
        let widths = type.blockSize == 1 ? [256, 100] : [512]
        #expect(VulkanContext.productTypes.count == 23, "every weight type the CPU multiplies")
        for cols in widths {
            let w = TestMatrix(type, rows: 37, cols: cols, seed: 7)
            for tokens in [1, 3, 8, 9, 17] {
                let x = values(tokens * cols, seed: 11)
                var y = [Float](repeating: .nan, count: tokens * 37)
                backend.multiply(w.matrix, x, tokens: tokens, into: &y, mode: .batched)
                let want = (0..<tokens * 37).map { i in w.reference(row: i % 37, x[(i / 37) * cols ..< (i / 37 + 1) * cols]) }
                #expect(worstError(y, want) < 1e-5, "\(type) \(cols) columns, \(tokens) tokens")
            }
        }
        #expect(backend.context.residentBytes > 0, "the products ran on the device")
    }

    /// The int-dot products (8-bit activations, OpSDot) of each 32-element block type, for 1, 9 and 17 tokens:
    /// within the 8-bit activations' error of the reference, and with the CPU's products (which quantize the
    /// activations the same way) closer still. A run of products over the same rows quantizes them once.
    @Test(.enabled(if: hasIntegerDot, integerDotReason), arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0])
    func integerDotProductsMatchTheReference(type: GGMLType) throws {
        let context = try VulkanContext(deviceIndex: 0)
        context.integerDotProducts = true
        #expect(context.integerDotProducts && context.usesIntegerDotKernel(type))
        let backend = VulkanBackend(context: context, cpu: cpuBackend()), cpu = cpuBackend()
        let cols = 512, rows = 37
        let w = TestMatrix(type, rows: rows, cols: cols, seed: 7), w2 = TestMatrix(type, rows: 21, cols: cols, seed: 8)
        for tokens in [1, 9, 17] {
            let x = values(tokens * cols, seed: 11)
            let y = UnsafeMutablePointer<Float>.allocate(capacity: tokens * (rows + 21))
            defer { y.deallocate() }
            y.initialize(repeating: .nan, count: tokens * (rows + 21))
            let quantized = context.inputsQuantized
            backend.multiply([(w.matrix, y), (w2.matrix, y + tokens * rows)], x, tokens: tokens, mode: .batched)
            #expect(context.inputsQuantized - quantized == 1, "two products over the same rows quantize them once")
            let got = Array(UnsafeBufferPointer(start: y, count: tokens * rows))
            var onCPU = [Float](repeating: .nan, count: tokens * rows)
            cpu.multiply(w.matrix, x, tokens: tokens, into: &onCPU, mode: .batched)
            let want = (0..<tokens * rows).map { i in w.reference(row: i % rows, x[(i / rows) * cols ..< (i / rows + 1) * cols]) }
            #expect(worstError(got, want) < 2e-2, "\(type) \(tokens) tokens against the reference: \(worstError(got, want))")
            let againstCPU = worstError(got, onCPU.map { Double($0) })
            #expect(againstCPU < 2e-3, "\(type) \(tokens) tokens against the CPU: \(againstCPU)")
            let second = Array(UnsafeBufferPointer(start: y + tokens * rows, count: tokens * 21))
            let want2 = (0..<tokens * 21).map { i in w2.reference(row: i % 21, x[(i / 21) * cols ..< (i / 21 + 1) * cols]) }
            #expect(worstError(second, want2) < 2e-2, "\(type) second matrix")
        }
    }

    /// Grouped jobs over row segments of one input (MoE experts), matrices and activations bound in parts of
    /// 2 KiB, in one submit.
    @Test(.enabled(if: hasDevice, lavapipeReason))
    func groupedJobsInPartsMatchTheReference() throws {
        let context = try VulkanContext(deviceIndex: 0, bindingLimit: 2048)
        let backend = VulkanBackend(context: context, cpu: cpuBackend())
        let cols = 256
        let matrices = [TestMatrix(.q4_K, rows: 40, cols: cols, seed: 1), TestMatrix(.q8_0, rows: 29, cols: cols, seed: 2),
                        TestMatrix(.q6_K, rows: 33, cols: cols, seed: 3)]
        let segments = [(0, 5), (5, 1), (6, 14)]
        let x = values(20 * cols, seed: 5)
        let outputs = matrices.indices.map { i in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: segments[i].1 * matrices[i].matrix.rows)
            p.initialize(repeating: .nan, count: segments[i].1 * matrices[i].matrix.rows)
            return p
        }
        defer { for p in outputs { p.deallocate() } }
        let submits = context.submitCount
        let jobs = matrices.indices.map { i in
            MatmulJob(weights: matrices[i].matrix, output: outputs[i], firstInputRow: segments[i].0, tokens: segments[i].1)
        }
        backend.multiply(jobs, x, inputRows: 20, cols: cols, mode: .batched)
        #expect(context.submitCount - submits <= 4, "3 uploads and one submit for the products")
        for (i, m) in matrices.enumerated() {
            let (first, tokens) = segments[i], rows = m.matrix.rows
            let want = (0..<tokens * rows).map { k in
                m.reference(row: k % rows, x[(first + k / rows) * cols ..< (first + k / rows + 1) * cols])
            }
            #expect(worstError(Array(UnsafeBufferPointer(start: outputs[i], count: tokens * rows)), want) < 1e-5, "job \(i)")
        }
        // A second call uploads nothing: one submit.
        let before = context.submitCount
        var y = [Float](repeating: 0, count: 40)
        backend.multiply(matrices[0].matrix, x, tokens: 1, into: &y, mode: .batched)
        #expect(context.submitCount - before == 1)
    }

    /// A budget that holds the first matrix but not the second: the second's product runs on the CPU (its Q8
    /// activations: the CPU's tolerance), and both are right.
    @Test(.enabled(if: hasDevice, lavapipeReason))
    func matricesOverTheBudgetRunOnTheCPU() throws {
        let cols = 256
        let small = TestMatrix(.q8_0, rows: 16, cols: cols, seed: 1), large = TestMatrix(.q8_0, rows: 64, cols: cols, seed: 2)
        let context = try VulkanContext(deviceIndex: 0, budgetBytes: small.matrix.rows * small.matrix.rowBytes + 64)
        let backend = VulkanBackend(context: context, cpu: cpuBackend())
        let x = values(3 * cols, seed: 3)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: 3 * 16 + 3 * 64)
        defer { y.deallocate() }
        y.initialize(repeating: .nan, count: 3 * 16 + 3 * 64)
        backend.multiply([(small.matrix, y), (large.matrix, y + 48)], x, tokens: 3, mode: .batched)
        let y1 = Array(UnsafeBufferPointer(start: y, count: 48)), y2 = Array(UnsafeBufferPointer(start: y + 48, count: 192))
        #expect(context.residentBytes == (small.matrix.rows * small.matrix.rowBytes + 3) & ~3)
        let want1 = (0..<48).map { small.reference(row: $0 % 16, x[($0 / 16) * cols ..< ($0 / 16 + 1) * cols]) }
        let want2 = (0..<192).map { large.reference(row: $0 % 64, x[($0 / 64) * cols ..< ($0 / 64 + 1) * cols]) }
        #expect(worstError(y1, want1) < 1e-5)
        #expect(worstError(y2, want2) < 2e-2)
    }

    /// gate ← act(W_gate · X) ⊙ W_up · X on the device, against the reference.
    @Test(.enabled(if: hasDevice, lavapipeReason))
    func gatedProductsMatchTheReference() throws {
        let backend = VulkanBackend(context: try VulkanContext(deviceIndex: 0), cpu: cpuBackend())
        let cols = 256, rows = 24, tokens = 5
        let gate = TestMatrix(.q4_K, rows: rows, cols: cols, seed: 1), up = TestMatrix(.q5_0, rows: rows, cols: cols, seed: 2)
        let x = values(tokens * cols, seed: 3)
        for activation in [GateActivation.swiglu, .geglu, .swigluClamped(limit: 1.5)] {
            var g = [Float](repeating: .nan, count: tokens * rows), u = [Float](repeating: .nan, count: tokens * rows)
            backend.multiplyGated(gate: gate.matrix, up: up.matrix, x, tokens: tokens, activation: activation, into: &g, scratch: &u,
                                  mode: .batched)
            let want: [Double] = (0..<tokens * rows).map { i in
                let slice = x[(i / rows) * cols ..< (i / rows + 1) * cols]
                let a = gate.reference(row: i % rows, slice), b = up.reference(row: i % rows, slice)
                switch activation {
                case .swiglu: return a / (1 + exp(-a)) * b
                case .geglu: return 0.5 * a * (1 + tanh(0.7978845608028654 * (a + 0.044715 * a * a * a))) * b
                case .swigluClamped(let limit):
                    let l = Double(limit), c = min(a, l)
                    return c / (1 + exp(-c)) * min(max(b, -l), l)
                }
            }
            #expect(worstError(g, want) < 1e-4, "\(activation)")
        }
    }
}

/// Migration between steps: four experts' matrices planned two on the device; the other two used more, they
/// swap places at a rebalance, at most migrationBytesPerStep at a time; results stay right throughout.
@Suite struct VulkanMigrationTests {
    @Test(.enabled(if: hasDevice, lavapipeReason))
    func usedExpertsMigrateWithinTheTransferBound() throws {
        let cols = 256
        let experts = (0..<4).map { TestMatrix(.q8_0, rows: 32, cols: cols, seed: UInt64($0 + 1)) }
        let size = (experts[0].matrix.rows * experts[0].matrix.rowBytes + 3) & ~3
        let context = try VulkanContext(deviceIndex: 0, budgetBytes: 2 * size)
        context.migrationBytesPerStep = size
        context.place(DeviceResidency(regions: experts.enumerated().map {
            DeviceResidency.Region(start: $0.element.matrix.data, bytes: size, onDevice: $0.offset < 2, migratable: true)
        }))
        let backend = VulkanBackend(context: context, cpu: cpuBackend())
        let x = values(cols, seed: 9)
        func product(_ e: Int) -> Double {
            var y = [Float](repeating: .nan, count: 32)
            backend.multiply(experts[e].matrix, x, tokens: 1, into: &y, mode: .batched)
            return worstError(y, (0..<32).map { experts[e].reference(row: $0, x[0..<cols]) })
        }
        #expect(product(0) < 1e-5 && context.residentBytes == size)
        for _ in 0..<3 { #expect(product(2) < 2e-2); #expect(product(3) < 2e-2) }
        // One step moves one expert (the bound): expert 2 (or 3) in place of unused expert 1 first.
        #expect(context.rebalance() == size)
        #expect(context.placement!.regions.filter(\.onDevice).count == 2)
        for _ in 0..<3 { _ = product(2); _ = product(3) }
        #expect(context.rebalance() == size)
        let onDevice = context.placement!.regions.map(\.onDevice)
        let started = experts.map { UInt(bitPattern: $0.matrix.data) }
        let placed = Dictionary(uniqueKeysWithValues: context.placement!.regions.map { ($0.start, $0.onDevice) })
        #expect(placed[started[2]] == true && placed[started[3]] == true && placed[started[0]] == false && placed[started[1]] == false,
                "\(onDevice)")
        // Now on the device: float activations, the reference's precision.
        #expect(product(2) < 1e-5 && product(3) < 1e-5)
        #expect(context.residentBytes <= context.budgetBytes)
        // Nothing used more than what is there: nothing moves.
        for _ in 0..<4 { _ = product(2); _ = product(3) }
        #expect(context.rebalance() == 0)
    }
}
