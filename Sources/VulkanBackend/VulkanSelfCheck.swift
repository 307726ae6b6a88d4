// `dwarfstar devices --check`: each product kernel on a device against the scalar reference (the weights
// dequantized by the CPU's reference code, float activations, sums in double), for 1 and 9 tokens, and the
// device's product read speed. What to run first on a new GPU or driver.

import GGUF
import Kernels

public struct VulkanKernelCheck: Sendable {
    public var type: GGMLType
    /// max |device − reference| / max(1, max |reference|) over the outputs.
    public var relativeError: Double
    public var passed: Bool { relativeError < VulkanKernelCheck.tolerance }
    /// Float activations against a double-precision reference: only summation order differs.
    public static let tolerance = 1e-4
}

extension VulkanContext {
    /// Every product type's kernel on this device, in ggml type order.
    public func checkKernels() throws -> [VulkanKernelCheck] {
        let rows = 67, cols = 512
        var seed: UInt64 = 0x9E3779B97F4A7C15
        func next() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 500
        }
        let w = (0..<(rows * cols)).map { _ in next() }
        let x = (0..<(9 * cols)).map { _ in next() }
        var results: [VulkanKernelCheck] = []
        for type in VulkanContext.productTypes.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            let rowBytes = type.byteCount(elements: cols)!
            let bytes = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes, alignment: 64)
            defer { bytes.deallocate() }
            // Unit importance: the i-quants need some.
            guard Kernels.quantize(type, w, rows: rows, cols: cols, importance: [Float](repeating: 1, count: cols), into: bytes) else {
                throw VulkanError("no quantizer for \(type)")
            }
            let m = WeightMatrix(type: type, rows: rows, cols: cols, data: bytes, name: "check.\(type)")
            let floats = m.toFloats()
            var worst = 0.0, scale = 1.0
            for tokens in [1, 9] {
                let y = UnsafeMutablePointer<Float>.allocate(capacity: tokens * rows)
                defer { y.deallocate() }
                lock.lock()
                do {
                    defer { lock.unlock() }
                    guard try holds(m) else { throw VulkanError("Vulkan: the check matrix does not fit the GPU budget") }
                    defer { drop(m) }
                    try multiply([MatmulJob(weights: m, output: y, firstInputRow: 0, tokens: tokens)], onDevice: [true], x,
                                 inputRows: tokens, cols: cols)
                }
                for t in 0..<tokens {
                    for r in 0..<rows {
                        var s = 0.0
                        for c in 0..<cols { s += Double(floats[r * cols + c]) * Double(x[t * cols + c]) }
                        scale = max(scale, abs(s))
                        worst = max(worst, abs(Double(y[t * rows + r]) - s))
                    }
                }
            }
            results.append(VulkanKernelCheck(type: type, relativeError: worst / scale))
        }
        return results
    }
}
