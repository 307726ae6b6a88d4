// GGUF v3 writer: metadata in insertion order, tensor directory, aligned tensor data.
// llama.cpp reads its output; GGUFFile reads it back bit-exactly.

import Foundation

public struct GGUFWriter {
    public struct Tensor {
        public let name: String
        public let dims: [Int]
        public let type: GGMLType
        public let byteCount: Int
        /// Produces the tensor's bytes when the file is written (large tensors need not sit in memory).
        let produce: () -> [UInt8]
    }

    public private(set) var metadata: [(String, GGUFValue)] = []
    public private(set) var tensors: [Tensor] = []
    public var alignment: Int

    public init(alignment: Int = 32) { self.alignment = alignment }

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) { metadata[i].1 = value } else { metadata.append((key, value)) }
        if key == "general.alignment", let a = value.int { alignment = a }
    }

    /// Adds a tensor whose bytes come from `produce` at write time; `dims` in ggml order (dims[0] = row length).
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, produce: @escaping () -> [UInt8]) throws {
        let elements = dims.reduce(1, *)
        guard dims[0] % type.blockSize == 0, let bytes = type.byteCount(elements: elements) else {
            throw GGUFError(file: "<writer>", field: "tensor \(name)", message: "\(type.name) cannot hold shape \(dims)")
        }
        guard !tensors.contains(where: { $0.name == name }) else {
            throw GGUFError(file: "<writer>", field: "tensor \(name)", message: "duplicate tensor name")
        }
        tensors.append(Tensor(name: name, dims: dims, type: type, byteCount: bytes, produce: produce))
    }

    /// Adds a tensor; `data` must hold exactly its bytes.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, data: [UInt8]) throws {
        let elements = dims.reduce(1, *)
        guard let bytes = type.byteCount(elements: elements), bytes == data.count else {
            throw GGUFError(file: "<writer>", field: "tensor \(name)", message: "data size \(data.count) does not match \(type.name) \(dims)")
        }
        try addTensor(name: name, dims: dims, type: type, produce: { data })
    }

    public mutating func addTensor(name: String, dims: [Int], floats: [Float]) throws {
        let bytes = floats.withUnsafeBytes { Array($0) }
        try addTensor(name: name, dims: dims, type: .f32, data: bytes)
    }

    func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Header, metadata, tensor directory and padding up to the data section.
    public func headerBytes() -> [UInt8] {
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
        for t in tensors {
            str(t.name)
            u32(UInt32(t.dims.count))
            for d in t.dims { u64(UInt64(d)) }
            u32(t.type.rawValue)
            u64(UInt64(offset))
            offset += padded(t.byteCount)
        }
        while out.count % alignment != 0 { out.append(0) }
        return out
    }

    /// The whole file in memory (small files, tests).
    public func serialize() -> [UInt8] {
        var out = headerBytes()
        for t in tensors {
            out.append(contentsOf: t.produce())
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    /// Streams the file to a temporary name beside `path` (unique, created with O_EXCL | O_NOFOLLOW: nothing
    /// there is followed or overwritten), then renames it over `path` in one rename(2): a failed write (full
    /// disk) never leaves a half file under the real name, and the temporary file is removed.
    /// `progress` sees the bytes of tensor data written so far and their total, after each tensor.
    public func write(to path: String, progress: ((_ done: Int64, _ total: Int64) -> Void)? = nil) throws {
        let totalBytes = Int64(tensors.reduce(0) { $0 + $1.byteCount })
        var written: Int64 = 0
        let tmp = "\(path).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw GGUFError(file: path, field: "file", message: "cannot create \(tmp): \(String(cString: strerror(errno)))")
        }
        let h = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        var isOpen = true
        do {
            try h.write(contentsOf: headerBytes())
            for t in tensors {
                let data = t.produce()
                guard data.count == t.byteCount else {
                    throw GGUFError(file: path, field: "tensor \(t.name)", message: "produced \(data.count) bytes, expected \(t.byteCount)")
                }
                try h.write(contentsOf: data)
                let pad = padded(data.count) - data.count
                if pad > 0 { try h.write(contentsOf: [UInt8](repeating: 0, count: pad)) }
                written += Int64(data.count)
                progress?(written, totalBytes)
            }
            try h.synchronize()
            isOpen = false
            guard close(fd) == 0 else { throw GGUFError(file: path, field: "file", message: "close: \(String(cString: strerror(errno)))") }
            guard rename(tmp, path) == 0 else {
                throw GGUFError(file: path, field: "file", message: "cannot rename \(tmp) to it: \(String(cString: strerror(errno)))")
            }
        } catch {
            if isOpen { close(fd) }
            unlink(tmp)
            throw error
        }
    }
}
