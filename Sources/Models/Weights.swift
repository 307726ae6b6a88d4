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

/// One decoder layer: pre-norm attention and pre-norm FFN, each with an optional post-norm.
public struct LayerWeights: @unchecked Sendable {
    public var attnNorm: FloatBuffer
    public var attention: AttentionWeights
    public var postAttentionNorm: FloatBuffer?
    public var ffnNorm: FloatBuffer
    public var ffn: FFNWeights
    public var postFFNNorm: FloatBuffer?
}

public enum AttentionWeights: @unchecked Sendable {
    case standard(StandardAttentionWeights)
    case latent(LatentAttentionWeights)
}

/// Q/K/V/O projections with optional biases and per-head q/k norms.
public struct StandardAttentionWeights: @unchecked Sendable {
    public var wq, wk, wv, wo: WeightMatrix
    public var bq, bk, bv, bo: FloatBuffer?
    public var qNorm, kNorm: FloatBuffer?
}

public enum FFNWeights: @unchecked Sendable {
    case dense(DenseFFNWeights)
    case moe(MoEWeights)
}

/// down · (act(gate · x) ⊙ up · x)
public struct DenseFFNWeights: @unchecked Sendable {
    public var gate, up, down: WeightMatrix
}

/// Reads tensors by name with shape and type checks.
public struct WeightReader {
    public let gguf: GGUFFile

    public init(_ gguf: GGUFFile) { self.gguf = gguf }

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
        return WeightMatrix(type: info.type, rows: rows, cols: cols, data: gguf.data(of: info), name: name)
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

    /// Q/K/V/O with optional biases and q/k norms.
    func standardAttention(_ l: Int, _ c: ModelConfig) throws -> StandardAttentionWeights {
        let e = c.embeddingLength, qDim = c.headCount * c.headDimK
        let kDim = c.headCountKV * c.headDimK, vDim = c.headCountKV * c.headDimV
        let attnOut = c.headCount * c.headDimV
        return StandardAttentionWeights(
            wq: try matrix(.attnQ(l), rows: qDim, cols: e),
            wk: try matrix(.attnK(l), rows: kDim, cols: e),
            wv: try matrix(.attnV(l), rows: vDim, cols: e),
            wo: try matrix(.attnOutput(l), rows: e, cols: attnOut),
            bq: try optionalVector(.attnQBias(l), count: qDim),
            bk: try optionalVector(.attnKBias(l), count: kDim),
            bv: try optionalVector(.attnVBias(l), count: vDim),
            bo: try optionalVector(.attnOutputBias(l), count: e),
            qNorm: try optionalVector(.attnQNorm(l), count: c.headDimK),
            kNorm: try optionalVector(.attnKNorm(l), count: c.headDimK))
    }

    func denseFFN(_ l: Int, _ c: ModelConfig) throws -> DenseFFNWeights {
        let e = c.embeddingLength, f = c.feedForwardLength
        return DenseFFNWeights(gate: try matrix(.ffnGate(l), rows: f, cols: e),
                               up: try matrix(.ffnUp(l), rows: f, cols: e),
                               down: try matrix(.ffnDown(l), rows: e, cols: f))
    }

    /// A pre-norm decoder layer: attention and FFN kinds per the config, optional parts by presence.
    public func layer(_ l: Int, _ c: ModelConfig) throws -> LayerWeights {
        let e = c.embeddingLength
        let attention: AttentionWeights = try c.mla.map { .latent(try latentAttention(l, c, $0)) }
            ?? .standard(standardAttention(l, c))
        let ffn: FFNWeights = try c.moeLayers[l] && c.moe != nil ? .moe(moe(l, c, c.moe!)) : .dense(denseFFN(l, c))
        let postAttention = try optionalVector(.postAttentionNorm(l), count: e)
        return LayerWeights(
            attnNorm: try vector(.attnNorm(l), count: e),
            attention: attention,
            postAttentionNorm: c.ffnNormIsPostAttentionNorm ? nil : postAttention,
            ffnNorm: c.ffnNormIsPostAttentionNorm ? try vector(.postAttentionNorm(l), count: e) : try vector(.ffnNorm(l), count: e),
            ffn: ffn,
            postFFNNorm: try optionalVector(.postFFNNorm(l), count: e))
    }
}
