// A weight matrix W[rows, cols] used in place (mmap'd GGUF bytes or an owned F32 buffer), optionally
// with a packed copy (rows interleaved 16 at a time, CKernels' ds_pack.c layout) that the matrix
// products use instead: one kernel then serves every token count, bitwise the same per row.
// ggml order: each row holds `cols` elements (GGUF ne[0]), `rows` = ne[1] (× higher dims).

import CKernels
import GGUF

/// How dense weight matrices are held for the products (chosen once per load, passed down as a value).
public enum WeightLayout: Sendable, Equatable {
    /// The file's rows, used in place.
    case rowMajor
    /// A packed copy where this CPU has the packed kernel for the type (others stay row-major).
    case packed
}

public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int
    public let name: String
    /// The packed copy the products use (nil: they use `data`). `data` stays valid for row reads.
    public let packed: PackedWeights?

    public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer, name: String = "", packed: PackedWeights? = nil) {
        self.type = type; self.rows = rows; self.cols = cols; self.data = data; self.name = name
        self.rowBytes = type.byteCount(elements: cols) ?? 0
        self.packed = packed
    }

    /// This matrix held as `layout` asks (packed where the type and CPU allow it).
    public func laidOut(_ layout: WeightLayout) -> WeightMatrix {
        guard layout == .packed, packed == nil, let p = PackedWeights(self) else { return self }
        return WeightMatrix(type: type, rows: rows, cols: cols, data: data, name: name, packed: p)
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

/// An owned packed copy of a matrix: groups of `groupRows` rows, `groupBytes` apart.
public final class PackedWeights: @unchecked Sendable {
    public static let groupRows = Int(DS_PACK_ROWS)
    public let pointer: UnsafeMutableRawPointer
    public let groupBytes: Int
    public let byteCount: Int

    /// Packs `w`; nil where the active CPU has no packed kernel for its type or the width is not whole blocks.
    public init?(_ w: WeightMatrix) {
        let type = Int32(w.type.rawValue)
        guard w.rows > 0, ds_packed_kernel_available(type) != 0 else { return nil }
        let group = Int(ds_packed_group_bytes(type, Int64(w.cols)))
        let total = Int(ds_packed_bytes(type, Int64(w.cols), Int64(w.rows)))
        guard group > 0, total > 0 else { return nil }
        pointer = .allocate(byteCount: total, alignment: 64)
        groupBytes = group; byteCount = total
        ds_pack_weights(type, Int64(w.cols), w.data, w.rowBytes, Int64(w.rows), pointer)
    }

    deinit { pointer.deallocate() }
}
