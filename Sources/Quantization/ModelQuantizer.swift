// Writes a GGUF whose tensors have the chosen types: metadata copied (general.file_type,
// general.quantization_version and the imatrix keys set as llama-quantize sets them), each tensor
// copied when its type is unchanged, else dequantized and quantized by ds_quantize_rows (the bytes
// llama-quantize writes), slab by slab so that a large tensor never sits in memory as floats.

import CKernels
import Foundation
import GGUF
import Kernels

public struct QuantizeOptions: Sendable {
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    /// Allows a quantized source to be requantized (llama-quantize's --allow-requantize).
    public var allowRequantize = false
    /// general.file_type to write (nil: keep the source's).
    public var fileType: FileType?
    /// The importance matrix and its file name (for quantize.imatrix.* keys).
    public var importance: ImportanceMatrix?
    public var importanceFile: String?
    public init() {}
}

public enum ModelQuantizer {
    /// Checks the choices before any byte is written: a quantizer for every new type, an importance
    /// vector of the right size where the type needs one, no silent requantization.
    public static func validate(_ file: GGUFFile, _ choices: [TensorChoice], _ options: QuantizeOptions) throws {
        for c in choices where c.type != c.tensor.type {
            let t = c.tensor
            guard Kernels.canQuantize(c.type) else {
                throw QuantizeError.unsupported("\(t.name): DwarfStar has no quantizer for \(c.type.name); choose another type or override it with --tensor-type")
            }
            guard Kernels.isSupported(t.type) else {
                throw QuantizeError.unsupported("\(t.name): cannot read its \(t.type.name) data")
            }
            if !options.allowRequantize && ![GGMLType.f32, .f16, .bf16].contains(t.type) {
                throw QuantizeError.badArgument("\(t.name) is \(t.type.name): requantizing a quantized file loses accuracy twice; pass --allow-requantize, or `dwarfstar convert` it to f16 first")
            }
            let embeddingOrOutput = isEmbeddingOrOutput(t)
            let vector = try importanceVector(t, options.importance)
            if Kernels.needsImportance(c.type) && embeddingOrOutput {
                throw QuantizeError.unsupported("\(t.name): the \(c.type.name) quantizer needs importance, which the embedding and the output head never take (as in llama-quantize); choose another type for it with --tensor-type")
            }
            // llama-quantize's rule spares the embedding and the head.
            if (c.type.needsImportance && !embeddingOrOutput || Kernels.needsImportance(c.type)) && vector == nil {
                throw QuantizeError.needsImportance(tensor: t.name, type: c.type)
            }
        }
    }

    /// The embedding and the head are quantized without importance, as llama-quantize does.
    static func isEmbeddingOrOutput(_ t: GGUFTensorInfo) -> Bool {
        ["token_embd.weight", "per_layer_token_embd.weight", "output.weight"].contains(t.name)
    }

    /// The importance vector the quantizer of `t` receives (nil: none), checked against its width.
    static func importanceVector(_ t: GGUFTensorInfo, _ importance: ImportanceMatrix?) throws -> [Float]? {
        isEmbeddingOrOutput(t) ? nil : try importance?.importance(for: t.name, cols: t.rowLength, matrices: matrices(t))
    }

    static func matrices(_ t: GGUFTensorInfo) -> Int { t.dims.count > 2 ? t.dims.dropFirst(2).reduce(1, *) : 1 }

    /// Total bytes of the tensor data under `choices`.
    public static func dataBytes(_ choices: [TensorChoice]) -> Int {
        choices.reduce(0) { $0 + ($1.type.byteCount(elements: $1.tensor.elementCount) ?? 0) }
    }

    /// Writes `choices` (in their order) to `path`; `progress(done, total, choice)` after each tensor.
    public static func write(_ file: GGUFFile, _ choices: [TensorChoice], options: QuantizeOptions, to path: String,
                             progress: @escaping (Int, Int, TensorChoice) -> Void = { _, _, _ in }) throws {
        try validate(file, choices, options)
        var w = GGUFWriter(alignment: file.alignment)
        // Keys that are set again go to the end, in llama-quantize's order (gguf moves a key it sets).
        let reset: Set<String> = ["general.quantization_version", "general.file_type", "quantize.imatrix.file", "quantize.imatrix.dataset",
                                  "quantize.imatrix.entries_count", "quantize.imatrix.chunks_count"]
        for key in file.metadataKeys where !key.hasPrefix("split.") && !reset.contains(key) { w.set(key, file.metadata[key]!) }
        w.set("general.quantization_version", .uint32(2))
        if let f = options.fileType ?? file["general.file_type"]?.int.flatMap({ FileType.byID(UInt32($0)) }) {
            w.set("general.file_type", .uint32(f.id))
        }
        if let imatrix = options.importance {
            w.set("quantize.imatrix.file", .string(options.importanceFile ?? ""))
            if let d = imatrix.datasets.first { w.set("quantize.imatrix.dataset", .string(d)) }
            w.set("quantize.imatrix.entries_count", .uint32(UInt32(imatrix.entries.count)))
            if imatrix.chunkCount > 0 { w.set("quantize.imatrix.chunks_count", .uint32(UInt32(imatrix.chunkCount))) }
        }
        let total = choices.count
        for (i, c) in choices.enumerated() {
            try w.addTensor(name: c.tensor.name, dims: c.tensor.dims, type: c.type) {
                let bytes = tensorBytes(file, c, options)
                progress(i + 1, total, c)
                return bytes
            }
        }
        try w.write(to: path)
    }

    /// The tensor's bytes in its chosen type.
    public static func tensorBytes(_ file: GGUFFile, _ c: TensorChoice, _ options: QuantizeOptions) -> [UInt8] {
        let t = c.tensor
        let source = file.data(of: t)
        if c.type == t.type { return Array(UnsafeRawBufferPointer(start: source, count: t.byteCount)) }
        let cols = t.rowLength, rows = t.rowCount, count = matrices(t), rowsPerMatrix = rows / count
        let outRow = c.type.byteCount(elements: cols)!
        var out = [UInt8](repeating: 0, count: outRow * rows)
        let importanceValues = (try? importanceVector(t, options.importance)) ?? nil
        let importance: UnsafeMutablePointer<Float>? = importanceValues.map { v in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: v.count)
            p.initialize(from: v, count: v.count)
            return p
        }
        defer { importance?.deallocate() }
        // Slabs of whole rows within one matrix, ~4M floats, split over the threads by rows.
        let slabRows = max(1, min(rowsPerMatrix, (1 << 22) / max(cols, 1)))
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: slabRows * cols)
        defer { floats.deallocate() }
        let threads = max(1, options.threads)
        out.withUnsafeMutableBytes { dst in
            for m in 0..<count {
                var first = 0
                while first < rowsPerMatrix {
                    let n = min(slabRows, rowsPerMatrix - first), row0 = m * rowsPerMatrix + first
                    let parts = min(threads, n)
                    DispatchQueue.concurrentPerform(iterations: parts) { p in
                        let lo = n * p / parts, hi = n * (p + 1) / parts
                        guard hi > lo else { return }
                        for r in lo..<hi {
                            Kernels.dequantize(t.type, source + (row0 + r) * t.rowBytes, into: floats + r * cols, count: cols)
                        }
                        Kernels.quantize(c.type, floats + lo * cols, rows: hi - lo, cols: cols, importance: importance.map { UnsafePointer($0 + m * cols) },
                                         into: dst.baseAddress! + (row0 + lo) * outRow)
                    }
                    first += n
                }
            }
        }
        return out
    }
}
