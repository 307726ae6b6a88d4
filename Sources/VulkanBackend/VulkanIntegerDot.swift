// Products by integer dot products (Shaders/matmul.comp with DS_INT_DOT) for the 32-element block types:
// the input rows are quantized to 8-bit blocks once (Shaders/quantize_q8.comp) and every product over the
// same rows in a run of products reads them (Q, K and V from one normed row; gate and up), until something
// else is recorded, a transfer may change the rows, or the recording is submitted.

import CKernels
import CVulkan
import GGUF

/// quantize_q8.comp's push constants.
struct QuantizeParameters {
    var cols: UInt32 = 0, blocks: UInt32 = 0, inputSkew: UInt32 = 0, inputStride: UInt32 = 0, outputSkew: UInt32 = 0
}

/// Input rows quantized in this recording: source rows (buffer, first byte, rows, cols) and where their
/// blocks start in the quantized buffer (words).
struct QuantizedRows {
    let source: OpaquePointer, offset: Int, rows: Int, cols: Int
    let at: Int
    var bytes: Int { rows * cols * 4 }
}

extension VulkanContext {
    /// Weight types with an int-dot product kernel.
    static let integerDotTypes: [GGMLType: String] = [.q4_0: "q4_0", .q4_1: "q4_1", .q5_0: "q5_0", .q5_1: "q5_1", .q8_0: "q8_0"]
    /// Words of one quantized 32-element block: 8 of bytes, the scale, the scaled sum.
    static let quantizedBlockWords = 10

    /// Whether a product of this type takes the int-dot kernel now.
    public func usesIntegerDotKernel(_ type: GGMLType) -> Bool { integerDotProducts && VulkanContext.integerDotTypes[type] != nil }

    /// What was quantized is stale (a dispatch or transfer other than a product's may have written its rows).
    func forgetQuantizedInputs() {
        quantizedInputs.removeAll(keepingCapacity: true)
        quantizedWordsUsed = 0
    }

    /// A product writes bytes start ..< start + count of `buffer`: quantized rows from there are stale.
    func productWrites(_ buffer: OpaquePointer, start: Int, count: Int) {
        quantizedInputs.removeAll { $0.source == buffer && $0.offset < start + count && start < $0.offset + $0.bytes }
    }

    /// The quantized blocks of `rows` float rows of `cols` at byte `offset` of `source` (recorded now unless
    /// this run of products has them): the buffer and the word its blocks start at. Lock held.
    func quantizedInput(_ source: OpaquePointer, offset: Int, rows: Int, cols: Int) throws -> (OpaquePointer, Int) {
        if let q = quantizedInputs.first(where: { $0.source == source && $0.offset == offset && $0.rows == rows && $0.cols == cols }),
           let buffer = quantizedBuffer {
            return (buffer, q.at)
        }
        let blocks = cols / 32, words = rows * blocks * VulkanContext.quantizedBlockWords
        if quantizedBuffer == nil || (quantizedWordsUsed + words) * 4 > Int(ds_vk_buffer_size(quantizedBuffer!)) {
            // A fresh buffer; the old one is freed after the submit (what was recorded may still read it).
            let size = max(words * 4, 2 * Int(quantizedBuffer.map { ds_vk_buffer_size($0) } ?? 0), 4 << 20)
            if let old = quantizedBuffer { retiredBuffers.append(old) }
            quantizedBuffer = nil
            forgetQuantizedInputs()
            var reason = [CChar](repeating: 0, count: 512)
            guard let b = ds_vk_buffer_create(handle, UInt64(size), Int32(DS_VK_DEVICE_LOCAL), &reason, reason.count) else {
                throw VulkanError(reason: reason)
            }
            quantizedBuffer = b
        }
        let buffer = quantizedBuffer!, at = quantizedWordsUsed
        var p = QuantizeParameters(cols: UInt32(cols), blocks: UInt32(blocks), inputStride: UInt32(cols))
        let (input, inputSkew) = binding(source, start: offset, length: rows * cols * 4)
        let (output, outputSkew) = binding(buffer, start: at * 4, length: words * 4)
        p.inputSkew = UInt32(inputSkew / 4); p.outputSkew = UInt32(outputSkew / 4)
        let pipeline = try shaderPipeline("quantize_q8", bindings: 2, pushBytes: MemoryLayout<QuantizeParameters>.size)
        ds_vk_barrier(handle)
        try withUnsafeBytes(of: &p) {
            try dispatch(pipeline, [input, output], push: $0, groups: ((blocks + 63) / 64, rows, 1), keepsQuantizedInputs: true)
        }
        ds_vk_barrier(handle)
        quantizedWordsUsed += words
        inputsQuantized += 1
        quantizedInputs.append(QuantizedRows(source: source, offset: offset, rows: rows, cols: cols, at: at))
        return (buffer, at)
    }
}
