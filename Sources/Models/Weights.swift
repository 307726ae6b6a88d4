// Weights of a decoder-only transformer, bound to the mmap'd GGUF (matrices in place) with small
// vectors (norms, biases) copied to owned float buffers.

import GGUF
import Kernels

/// An owned, fixed-size float buffer (no ARC traffic in hot loops: use `pointer`).
public final class FloatBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    public init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }
    deinit { pointer.deallocate() }
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// An owned, fixed-size Int32 buffer (token → expert tables).
public final class Int32Buffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Int32>
    public let count: Int
    public init(_ values: UnsafeBufferPointer<Int32>) {
        count = values.count
        pointer = .allocate(capacity: max(count, 1))
        if let base = values.baseAddress { pointer.update(from: base, count: count) }
    }
    deinit { pointer.deallocate() }
}

/// Reads tensors by name with shape and type checks.
public struct WeightReader {
    public let gguf: GGUFFile
    /// How `matrix` hands out dense matrices (packed copies where the CPU has the kernel).
    public let layout: WeightLayout

    public init(_ gguf: GGUFFile, layout: WeightLayout = .rowMajor) { self.gguf = gguf; self.layout = layout }

    public func has(_ t: TensorName) -> Bool { gguf.tensor(t.name) != nil }
    public func has(_ name: String) -> Bool { gguf.tensor(name) != nil }

    /// Matrix W[rows, cols] (GGUF dims [cols, rows]).
    public func matrix(_ t: TensorName, rows: Int, cols: Int) throws -> WeightMatrix {
        try matrix(named: t.name, rows: rows, cols: cols)
    }

    public func matrix(named name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        guard let info = gguf.tensor(name) else { throw ModelError.missingTensor(file: gguf.path, name: name) }
        guard info.dims.count == 2, info.dims[0] == cols, info.dims[1] == rows else {
            throw ModelError.badTensorShape(file: gguf.path, name: name, expected: [cols, rows], got: info.dims)
        }
        try checkComputable(info)
        let m = WeightMatrix(type: info.type, rows: rows, cols: cols, data: gguf.data(of: info), name: name).laidOut(layout)
        if m.packed != nil { gguf.dropPages(info) }   // packing read them; the products use the copy
        return m
    }

    public func vector(_ t: TensorName, count: Int) throws -> FloatBuffer { try vector(named: t.name, count: count) }

    public func vector(named name: String, count: Int) throws -> FloatBuffer {
        guard let info = gguf.tensor(name) else { throw ModelError.missingTensor(file: gguf.path, name: name) }
        guard info.elementCount == count else {
            throw ModelError.badTensorShape(file: gguf.path, name: name, expected: [count], got: info.dims)
        }
        try checkComputable(info)
        let m = WeightMatrix(type: info.type, rows: 1, cols: count, data: gguf.data(of: info), name: name)
        let buf = FloatBuffer(count: count)
        m.dequantizeRow(0, into: buf.pointer)
        return buf
    }

    public func optionalVector(_ t: TensorName, count: Int) throws -> FloatBuffer? {
        has(t) ? try vector(t, count: count) : nil
    }

    public func optionalVector(named name: String, count: Int) throws -> FloatBuffer? {
        has(name) ? try vector(named: name, count: count) : nil
    }

    func checkComputable(_ info: GGUFTensorInfo) throws {
        guard Kernels.isSupported(info.type) else {
            throw ModelError.unsupportedTensorType(file: gguf.path, name: info.name, type: info.type.name)
        }
    }

    /// The experts of a 3-D tensor [cols, rows, experts] as one matrix view per expert, optionally a
    /// row range of each (fused gate_up tensors: gate = rows 0..<n, up = rows n..<2n).
    public func experts(_ name: String, count: Int, rows: Int, cols: Int, storedRows: Int? = nil, rowOffset: Int = 0) throws -> [WeightMatrix] {
        let stored = storedRows ?? rows
        guard let info = gguf.tensor(name) else { throw ModelError.missingTensor(file: gguf.path, name: name) }
        guard info.dims == [cols, stored, count] else {
            throw ModelError.badTensorShape(file: gguf.path, name: name, expected: [cols, stored, count], got: info.dims)
        }
        try checkComputable(info)
        let base = gguf.data(of: info)
        let rowBytes = info.type.byteCount(elements: cols) ?? 0
        return (0..<count).map { x in
            WeightMatrix(type: info.type, rows: rows, cols: cols, data: base + (x * stored + rowOffset) * rowBytes, name: "\(name)[\(x)]")
        }
    }
}
