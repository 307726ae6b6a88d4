// How fast this device's product kernel reads weights (GB/s): a Q8_0 matrix of `bytes` multiplied by one
// token, timed over a few repetitions after a warm-up (the best). What `plan` predicts GPU-resident weights
// cost a decode token.

import Dispatch
import GGUF
import Kernels

extension VulkanContext {
    public func productReadBandwidth(bytes: Int = 64 << 20, repetitions: Int = 5) throws -> Double {
        let cols = 4096, rowBytes = GGMLType.q8_0.byteCount(elements: cols)!
        let rows = max(1, bytes / rowBytes)
        let weights = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes, alignment: 64)
        defer { weights.deallocate() }
        // Blocks of scale 1/64 and small quants: values do not matter for the timing, only that they are finite.
        for i in 0..<(rows * rowBytes) { weights.storeBytes(of: UInt8(i % 34 == 1 ? 0x24 : i % 7), toByteOffset: i, as: UInt8.self) }
        let w = WeightMatrix(type: .q8_0, rows: rows, cols: cols, data: weights, name: "bandwidth probe")
        let x = [Float](repeating: 0.5, count: cols)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        defer { y.deallocate() }
        lock.lock()
        defer { lock.unlock() }
        let jobs = [MatmulJob(weights: w, output: y, firstInputRow: 0, tokens: 1)]
        guard try holds(w) else { throw VulkanError("Vulkan: a \(bytes >> 20) MiB probe matrix does not fit the GPU budget") }
        defer { drop(w) }
        var best = Double.infinity
        for rep in 0...repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            try multiply(jobs, onDevice: [true], x, inputRows: 1, cols: cols)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if rep > 0 { best = min(best, seconds) }
        }
        return Double(rows * rowBytes) / best / 1e9
    }
}
