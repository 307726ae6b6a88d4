// A weight matrix W[rows, cols] used in place (mmap'd GGUF bytes or an owned F32 buffer).
// ggml order: each row holds `cols` elements (GGUF ne[0]), `rows` = ne[1] (× higher dims).

import CKernels
import GGUF

public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int
    public let name: String

    public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer, name: String = "") {
        self.type = type; self.rows = rows; self.cols = cols; self.data = data; self.name = name
        self.rowBytes = type.byteCount(elements: cols) ?? 0
    }

    /// Dequantizes row r into out[0..<cols].
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        ds_dequantize_row(Int32(type.rawValue), data + r * rowBytes, out, Int64(cols))
    }

    /// All rows dequantized (for small tensors: norms, biases).
    public func toFloats() -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        out.withUnsafeMutableBufferPointer { buf in
            for r in 0..<rows { dequantizeRow(r, into: buf.baseAddress! + r * cols) }
        }
        return out
    }
}
