// GGUF reader: mmap the file, parse header, metadata and tensor directory with full validation.
// Layout (little-endian): magic "GGUF", u32 version (2|3), u64 n_tensors, u64 n_kv,
// n_kv × (string key, u32 type, value), n_tensors × (string name, u32 n_dims, n_dims × u64 ne,
// u32 type, u64 offset), padding to general.alignment, tensor data.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct GGUFError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let field: String
    public let message: String
    public var description: String { "\(file): \(field): \(message)" }
    public init(file: String, field: String, message: String) {
        self.file = file; self.field = field; self.message = message
    }
}

public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// ggml order: dims[0] is the innermost (row length), dims[1] the number of rows, ...
    public let dims: [Int]
    public let type: GGMLType
    /// Offset relative to the start of the data section.
    public let offset: Int
    public let elementCount: Int
    public let byteCount: Int

    public var rowLength: Int { dims.first ?? 1 }
    public var rowCount: Int { elementCount / max(rowLength, 1) }
    public var rowBytes: Int { type.byteCount(elements: rowLength) ?? 0 }
}

/// A memory-mapped GGUF file. Tensor data is used in place (never copied).
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    public let tensorIndex: [String: Int]
    public let alignment: Int
    public let dataOffset: Int
    public let fileSize: Int
    public let base: UnsafeRawPointer
    private let mappedLength: Int

    /// Limits against hostile files.
    public static let maxStringLength = 1 << 30
    public static let maxArrayLength = 1 << 31
    public static let maxTensorCount = 1 << 24
    public static let maxKVCount = 1 << 24
    public static let maxDims = 8
    /// Array elements in all metadata together (each becomes a value in memory, tens of bytes: the
    /// largest real vocabularies and merge lists hold well under a million).
    public static let maxMetadataElements = 1 << 24
    /// Fewest bytes a metadata entry (key length, type, one-byte value) and a tensor entry (name length,
    /// n_dims, one dimension, type, offset) take: a count is checked against the bytes left with these
    /// before anything is sized by it.
    static let minMetadataEntryBytes = 8 + 4 + 1
    static let minTensorEntryBytes = 8 + 4 + 8 + 4 + 8

    /// Maps the GGUF at `path`. With `randomAccess` the mapping reads only the pages touched (no
    /// read-around: a device's readahead, often megabytes, would otherwise pull neighbouring tensors into
    /// the page cache); ask for whole tensors with `willNeed`.
    /// With `writable`, the mapping is a private copy-on-write one whose tensor data may be changed in
    /// memory through `mutableData(of:)` (the file itself never is): the quantization sensitivity run
    /// overwrites a tensor with its quantized values and restores it.
    public init(path: String, randomAccess: Bool = false, writable: Bool = false) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw GGUFError(file: path, field: "file", message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError(file: path, field: "file", message: "cannot stat") }
        let size = Int(st.st_size)
        guard size >= 24 else {
            throw GGUFError(file: path, field: "header", message: "truncated file: \(size) bytes, a GGUF header needs at least 24")
        }
        guard let map = mmap(nil, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw GGUFError(file: path, field: "file", message: "mmap failed: \(String(cString: strerror(errno)))")
        }
        if randomAccess { _ = posix_madvise(map, size, POSIX_MADV_RANDOM) }
        let raw = UnsafeRawPointer(map)
        do {
            let parsed = try GGUFParser.parse(base: raw, size: size, file: path)
            self.version = parsed.version
            self.metadata = parsed.metadata
            self.metadataKeys = parsed.keys
            self.tensors = parsed.tensors
            self.alignment = parsed.alignment
            self.dataOffset = parsed.dataOffset
        } catch {
            munmap(map, size)
            throw error
        }
        self.fileSize = size
        self.isWritable = writable
        self.base = raw
        self.mappedLength = size
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        self.tensorIndex = index
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// Whether the mapping was opened `writable`.
    public let isWritable: Bool

    /// The tensor's data in a writable mapping (changes stay in this process's memory).
    public func mutableData(of tensor: GGUFTensorInfo) -> UnsafeMutableRawPointer {
        precondition(isWritable, "\(path) was not mapped writable")
        return UnsafeMutableRawPointer(mutating: data(of: tensor))
    }

    /// Pointer to a tensor's bytes inside the mapping.
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawPointer { base + dataOffset + tensor.offset }

    /// Starts reading a tensor's pages into the page cache (exactly its pages, whatever the mapping's
    /// access hint).
    public func willNeed(_ tensor: GGUFTensorInfo) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (dataOffset + tensor.offset) / page * page, end = min(fileSize, dataOffset + tensor.offset + tensor.byteCount)
        guard end > start else { return }
        _ = posix_madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, POSIX_MADV_WILLNEED)
    }

    /// Unmaps the pages that lie wholly inside a tensor (a packed copy replaced it): they leave this
    /// process's resident memory, and a later read of the tensor maps them again from the file.
    public func dropPages(_ tensor: GGUFTensorInfo) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = dataOffset + tensor.offset, last = min(fileSize, first + tensor.byteCount)
        let start = (first + page - 1) / page * page, end = last / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    public subscript(key: String) -> GGUFValue? { metadata[key] }

    public var architecture: String? { metadata["general.architecture"]?.string }
}

/// Bounds-checked little-endian cursor over the mapping; every read names the field it reads.
struct GGUFCursor {
    let base: UnsafeRawPointer
    let size: Int
    let file: String
    var pos = 0

    func fail(_ field: String, _ message: String) -> GGUFError { GGUFError(file: file, field: field, message: message) }

    /// Bytes after the cursor.
    var remaining: Int { max(0, size - pos) }

    /// Throws unless `count` entries of at least `minBytes` each fit in the bytes left (checked before
    /// any allocation is sized by `count`).
    func checkCount(_ count: UInt64, minBytes: Int, _ field: String, _ what: String) throws {
        guard count <= UInt64(remaining / minBytes) else {
            throw fail(field, "\(what) \(count) exceeds the remaining file size (\(remaining) bytes hold at most \(remaining / minBytes); truncated or corrupt)")
        }
    }

    mutating func need(_ n: Int, _ field: String) throws {
        guard n >= 0, pos <= size, n <= size - pos else {
            throw fail(field, "truncated file: need \(n) bytes at offset \(pos), file has \(size)")
        }
    }
    mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: String) throws -> T {
        try need(MemoryLayout<T>.size, field)
        let v = base.loadUnaligned(fromByteOffset: pos, as: T.self)
        pos += MemoryLayout<T>.size
        return T(littleEndian: v)
    }
    mutating func readString(_ field: String) throws -> String {
        let len = try read(UInt64.self, field)
        guard len <= UInt64(GGUFFile.maxStringLength) else {
            throw fail(field, "absurd string length \(len)")
        }
        try need(Int(len), field)
        let buf = UnsafeRawBufferPointer(start: base + pos, count: Int(len))
        pos += Int(len)
        return String(decoding: buf, as: UTF8.self)
    }
}

enum GGUFParser {
    struct Parsed {
        var version: UInt32
        var metadata: [String: GGUFValue]
        var keys: [String]
        var tensors: [GGUFTensorInfo]
        var alignment: Int
        var dataOffset: Int
    }

    static func parse(base: UnsafeRawPointer, size: Int, file: String) throws -> Parsed {
        var c = GGUFCursor(base: base, size: size, file: file)
        let magic = try c.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else { // "GGUF" little-endian
            let bytes = withUnsafeBytes(of: magic.littleEndian) { Array($0) }
            throw c.fail("magic", "bad magic \(bytes.map { String(format2: $0) }.joined()) (expected 47475546 \"GGUF\")")
        }
        let version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw c.fail("version", "big-endian GGUF is not supported")
            }
            throw c.fail("version", "unsupported GGUF version \(version) (supported: 2, 3)")
        }
        let nTensors = try c.read(UInt64.self, "tensor_count")
        let nKV = try c.read(UInt64.self, "kv_count")
        guard nTensors <= UInt64(GGUFFile.maxTensorCount) else { throw c.fail("tensor_count", "absurd tensor count \(nTensors)") }
        guard nKV <= UInt64(GGUFFile.maxKVCount) else { throw c.fail("kv_count", "absurd metadata count \(nKV)") }
        try c.checkCount(nKV, minBytes: GGUFFile.minMetadataEntryBytes, "kv_count", "metadata count")
        try c.checkCount(nTensors, minBytes: GGUFFile.minTensorEntryBytes, "tensor_count", "tensor count")

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(Int(nKV))
        var elements = 0
        for i in 0..<Int(nKV) {
            let key = try c.readString("metadata[\(i)].key")
            let rawType = try c.read(UInt32.self, "metadata \(key).type")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw c.fail("metadata \(key)", "unknown value type \(rawType)")
            }
            let value = try readValue(&c, type: type, field: "metadata \(key)", depth: 0, elements: &elements)
            if metadata[key] != nil { throw c.fail("metadata \(key)", "duplicate key") }
            metadata[key] = value
            keys.append(key)
        }

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.int, v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                throw c.fail("general.alignment", "must be a power of two, got \(a.summary())")
            }
            alignment = v
        }

        var infos: [(name: String, dims: [Int], type: GGMLType, offset: Int, elements: Int, bytes: Int)] = []
        try c.checkCount(nTensors, minBytes: GGUFFile.minTensorEntryBytes, "tensor_count", "tensor count")
        infos.reserveCapacity(Int(nTensors))
        var seen = Set<String>()
        for i in 0..<Int(nTensors) {
            let name = try c.readString("tensor[\(i)].name")
            let field = "tensor \(name)"
            guard seen.insert(name).inserted else { throw c.fail(field, "duplicate tensor name") }
            let nDims = try c.read(UInt32.self, "\(field).n_dims")
            guard nDims >= 1, nDims <= UInt32(GGUFFile.maxDims) else {
                throw c.fail("\(field).n_dims", "invalid number of dimensions \(nDims)")
            }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let ne = try c.read(UInt64.self, "\(field).ne[\(d)]")
                guard ne <= UInt64(Int64.max) else { throw c.fail("\(field).ne[\(d)]", "dimension \(ne) overflows") }
                let (prod, overflow) = elements.multipliedReportingOverflow(by: Int(ne))
                guard !overflow, prod <= Int(Int64.max) / 8 else {
                    throw c.fail("\(field).ne", "dimension product overflows")
                }
                dims.append(Int(ne))
                elements = prod
            }
            let rawType = try c.read(UInt32.self, "\(field).type")
            guard let type = GGMLType(rawValue: rawType) else {
                throw c.fail("\(field).type", "unknown tensor type \(rawType)")
            }
            guard dims[0] % type.blockSize == 0 else {
                throw c.fail("\(field).ne[0]", "row length \(dims[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
            }
            guard let bytes = type.byteCount(elements: elements) else {
                throw c.fail("\(field)", "byte size overflows")
            }
            let offset = try c.read(UInt64.self, "\(field).offset")
            guard offset <= UInt64(Int64.max) else { throw c.fail("\(field).offset", "offset \(offset) overflows") }
            guard Int(offset) % alignment == 0 else {
                throw c.fail("\(field).offset", "offset \(offset) is not aligned to \(alignment)")
            }
            infos.append((name, dims, type, Int(offset), elements, bytes))
        }

        let dataOffset = (c.pos + alignment - 1) / alignment * alignment
        if !infos.isEmpty && dataOffset > size {
            throw c.fail("data", "truncated file: tensor data would start at \(dataOffset), file has \(size) bytes")
        }
        let dataSize = size - min(dataOffset, size)
        // Every tensor inside the file, no two overlapping.
        for t in infos {
            let (end, o) = t.offset.addingReportingOverflow(t.bytes)
            guard !o, end <= dataSize else {
                throw c.fail("tensor \(t.name)", "data [\(t.offset), \(t.offset &+ t.bytes)) lies outside the file (data section is \(dataSize) bytes; truncated file?)")
            }
        }
        let sorted = infos.sorted { $0.offset < $1.offset }
        if sorted.count > 1 {
            for i in 1..<sorted.count where sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].bytes {
                throw c.fail("tensor \(sorted[i].name)", "data overlaps tensor \(sorted[i - 1].name)")
            }
        }
        let tensors = infos.map {
            GGUFTensorInfo(name: $0.name, dims: $0.dims, type: $0.type, offset: $0.offset, elementCount: $0.elements, byteCount: $0.bytes)
        }
        return Parsed(version: version, metadata: metadata, keys: keys, tensors: tensors, alignment: alignment, dataOffset: dataOffset)
    }

    /// Reads one value; `elements` counts the array elements read so far (all metadata together).
    static func readValue(_ c: inout GGUFCursor, type: GGUFValueType, field: String, depth: Int, elements: inout Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try c.read(UInt8.self, field))
        case .int8: return .int8(try c.read(Int8.self, field))
        case .uint16: return .uint16(try c.read(UInt16.self, field))
        case .int16: return .int16(try c.read(Int16.self, field))
        case .uint32: return .uint32(try c.read(UInt32.self, field))
        case .int32: return .int32(try c.read(Int32.self, field))
        case .uint64: return .uint64(try c.read(UInt64.self, field))
        case .int64: return .int64(try c.read(Int64.self, field))
        case .float32: return .float32(Float(bitPattern: try c.read(UInt32.self, field)))
        case .float64: return .float64(Double(bitPattern: try c.read(UInt64.self, field)))
        case .bool:
            let b = try c.read(UInt8.self, field)
            guard b <= 1 else { throw c.fail(field, "invalid bool value \(b)") }
            return .bool(b == 1)
        case .string: return .string(try c.readString(field))
        case .array:
            guard depth < 8 else { throw c.fail(field, "arrays nested too deeply") }
            let rawType = try c.read(UInt32.self, "\(field).array_type")
            guard let elemType = GGUFValueType(rawValue: rawType) else {
                throw c.fail(field, "unknown array element type \(rawType)")
            }
            let count = try c.read(UInt64.self, "\(field).array_length")
            guard count <= UInt64(GGUFFile.maxArrayLength) else { throw c.fail(field, "absurd array length \(count)") }
            // Every element takes at least one byte (strings at least 8): reject lengths the file cannot hold.
            let minElement: Int
            switch elemType {
            case .uint8, .int8, .bool: minElement = 1
            case .uint16, .int16: minElement = 2
            case .uint32, .int32, .float32: minElement = 4
            case .uint64, .int64, .float64, .string: minElement = 8
            case .array: minElement = 12
            }
            try c.checkCount(count, minBytes: minElement, field, "array length")
            elements += Int(count)
            guard elements <= GGUFFile.maxMetadataElements else {
                throw c.fail(field, "metadata arrays hold more than \(GGUFFile.maxMetadataElements) elements in all")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                items.append(try readValue(&c, type: elemType, field: field, depth: depth + 1, elements: &elements))
            }
            return .array(elemType, items)
        }
    }
}

extension String {
    init(format2 byte: UInt8) {
        let hex = Array("0123456789abcdef")
        self = String([hex[Int(byte >> 4)], hex[Int(byte & 15)]])
    }
}
