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

public struct LayerWeights: @unchecked Sendable {
    public var attnNorm: FloatBuffer
    public var wq, wk, wv, wo: WeightMatrix
    public var bq, bk, bv, bo: FloatBuffer?
    public var qNorm, kNorm: FloatBuffer?
    public var postAttentionNorm: FloatBuffer?
    public var ffnNorm: FloatBuffer
    public var gate, up, down: WeightMatrix
    public var postFFNNorm: FloatBuffer?
}

/// Reads tensors by name with shape and type checks.
public struct WeightReader {
    public let gguf: GGUFFile

    public init(_ gguf: GGUFFile) { self.gguf = gguf }

    public func has(_ t: TensorName) -> Bool { gguf.tensor(t.name) != nil }

    /// Matrix W[rows, cols] (GGUF dims [cols, rows]).
    public func matrix(_ t: TensorName, rows: Int, cols: Int) throws -> WeightMatrix {
        guard let info = gguf.tensor(t.name) else { throw ModelError.missingTensor(file: gguf.path, name: t.name) }
        guard info.dims.count == 2, info.dims[0] == cols, info.dims[1] == rows else {
            throw ModelError.badTensorShape(file: gguf.path, name: t.name, expected: [cols, rows], got: info.dims)
        }
        try checkComputable(info)
        return WeightMatrix(type: info.type, rows: rows, cols: cols, data: gguf.data(of: info), name: t.name)
    }

    public func vector(_ t: TensorName, count: Int) throws -> FloatBuffer {
        guard let info = gguf.tensor(t.name) else { throw ModelError.missingTensor(file: gguf.path, name: t.name) }
        guard info.elementCount == count else {
            throw ModelError.badTensorShape(file: gguf.path, name: t.name, expected: [count], got: info.dims)
        }
        try checkComputable(info)
        let m = WeightMatrix(type: info.type, rows: 1, cols: count, data: gguf.data(of: info), name: t.name)
        let buf = FloatBuffer(count: count)
        m.dequantizeRow(0, into: buf.pointer)
        return buf
    }

    public func optionalVector(_ t: TensorName, count: Int) throws -> FloatBuffer? {
        has(t) ? try vector(t, count: count) : nil
    }

    func checkComputable(_ info: GGUFTensorInfo) throws {
        guard Kernels.isSupported(info.type) else {
            throw ModelError.unsupportedTensorType(file: gguf.path, name: info.name, type: info.type.name)
        }
    }

    /// The standard pre-norm decoder layer tensors (optional ones by presence).
    public func layer(_ l: Int, _ c: ModelConfig) throws -> LayerWeights {
        let e = c.embeddingLength, qDim = c.headCount * c.headDimK
        let kDim = c.headCountKV * c.headDimK, vDim = c.headCountKV * c.headDimV
        let attnOut = c.headCount * c.headDimV, f = c.feedForwardLength
        return LayerWeights(
            attnNorm: try vector(.attnNorm(l), count: e),
            wq: try matrix(.attnQ(l), rows: qDim, cols: e),
            wk: try matrix(.attnK(l), rows: kDim, cols: e),
            wv: try matrix(.attnV(l), rows: vDim, cols: e),
            wo: try matrix(.attnOutput(l), rows: e, cols: attnOut),
            bq: try optionalVector(.attnQBias(l), count: qDim),
            bk: try optionalVector(.attnKBias(l), count: kDim),
            bv: try optionalVector(.attnVBias(l), count: vDim),
            bo: try optionalVector(.attnOutputBias(l), count: e),
            qNorm: try optionalVector(.attnQNorm(l), count: c.headDimK),
            kNorm: try optionalVector(.attnKNorm(l), count: c.headDimK),
            postAttentionNorm: try optionalVector(.postAttentionNorm(l), count: e),
            ffnNorm: try vector(.ffnNorm(l), count: e),
            gate: try matrix(.ffnGate(l), rows: f, cols: e),
            up: try matrix(.ffnUp(l), rows: f, cols: e),
            down: try matrix(.ffnDown(l), rows: e, cols: f),
            postFFNNorm: try optionalVector(.postFFNNorm(l), count: e))
    }
}
