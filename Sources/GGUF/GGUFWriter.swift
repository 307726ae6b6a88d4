// GGUF v3 writer: metadata in insertion order, tensor directory, aligned tensor data.
// llama.cpp reads its output; GGUFFile reads it back bit-exactly.

import Foundation

public struct GGUFWriter {
    public private(set) var metadata: [(String, GGUFValue)] = []
    public private(set) var tensors: [(name: String, dims: [Int], type: GGMLType, data: [UInt8])] = []
    public var alignment: Int

    public init(alignment: Int = 32) { self.alignment = alignment }

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) { metadata[i].1 = value } else { metadata.append((key, value)) }
        if key == "general.alignment", let a = value.int { alignment = a }
    }

    /// Adds a tensor; `dims` in ggml order (dims[0] = row length). `data` must hold exactly its bytes.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, data: [UInt8]) throws {
        let elements = dims.reduce(1, *)
        guard let bytes = type.byteCount(elements: elements), bytes == data.count, dims[0] % type.blockSize == 0 else {
            throw GGUFError(file: "<writer>", field: "tensor \(name)", message: "data size \(data.count) does not match \(type.name) \(dims)")
        }
        guard !tensors.contains(where: { $0.name == name }) else {
            throw GGUFError(file: "<writer>", field: "tensor \(name)", message: "duplicate tensor name")
        }
        tensors.append((name, dims, type, data))
    }

    public mutating func addTensor(name: String, dims: [Int], floats: [Float]) throws {
        let bytes = floats.withUnsafeBytes { Array($0) }
        try addTensor(name: name, dims: dims, type: .f32, data: bytes)
    }

    public func serialize() -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { let u = Array(s.utf8); u64(UInt64(u.count)); out.append(contentsOf: u) }
        func value(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): out.append(x)
            case .int8(let x): out.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .uint32(let x): u32(x)
            case .int32(let x): u32(UInt32(bitPattern: x))
            case .uint64(let x): u64(x)
            case .int64(let x): u64(UInt64(bitPattern: x))
            case .float32(let x): u32(x.bitPattern)
            case .float64(let x): u64(x.bitPattern)
            case .bool(let b): out.append(b ? 1 : 0)
            case .string(let s): str(s)
            case .array(let t, let items):
                u32(t.rawValue); u64(UInt64(items.count))
                for item in items { value(item) }
            }
        }
        out.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(metadata.count))
        for (k, v) in metadata { str(k); u32(v.type.rawValue); value(v) }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (i, t) in tensors.enumerated() {
            str(t.name)
            u32(UInt32(t.dims.count))
            for d in t.dims { u64(UInt64(d)) }
            u32(t.type.rawValue)
            u64(UInt64(offsets[i]))
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out.append(contentsOf: t.data)
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    /// Writes atomically (temp file + rename) so a failed write never leaves a half file.
    public func write(to path: String) throws {
        let bytes = serialize()
        let url = URL(fileURLWithPath: path)
        try Data(bytes).write(to: url, options: .atomic)
    }
}
