// GGUF metadata values: every scalar type, strings and (nested) arrays.

public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    public var name: String {
        switch self {
        case .uint8: return "UINT8"; case .int8: return "INT8"; case .uint16: return "UINT16"; case .int16: return "INT16"
        case .uint32: return "UINT32"; case .int32: return "INT32"; case .float32: return "FLOAT32"; case .bool: return "BOOL"
        case .string: return "STRING"; case .array: return "ARRAY"; case .uint64: return "UINT64"; case .int64: return "INT64"
        case .float64: return "FLOAT64"
        }
    }
}

public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// Array of one element type (may itself be `.array` for nested arrays).
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8; case .int8: return .int8; case .uint16: return .uint16; case .int16: return .int16
        case .uint32: return .uint32; case .int32: return .int32; case .float32: return .float32; case .bool: return .bool
        case .string: return .string; case .uint64: return .uint64; case .int64: return .int64; case .float64: return .float64
        case .array: return .array
        }
    }

    /// Any integer type (or bool) as Int.
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v); case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v); case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v); case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        case .bool(let v): return v ? 1 : 0
        default: return nil
        }
    }
    /// Any numeric type as Double.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }
    public var float: Float? { double.map(Float.init) }
    public var bool: Bool? {
        if case .bool(let v) = self { return v }
        return int.map { $0 != 0 }
    }
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var array: [GGUFValue]? {
        if case .array(_, let a) = self { return a }
        return nil
    }
    public var stringArray: [String]? { array?.compactMap { $0.string } }
    public var floatArray: [Float]? { array?.compactMap { $0.float } }
    public var intArray: [Int]? { array?.compactMap { $0.int } }

    /// Short human-readable rendering (arrays abbreviated) for `inspect`.
    public func summary(maxItems: Int = 6, maxString: Int = 80) -> String {
        switch self {
        case .string(let s):
            let flat = s.replacingOccurrences(of: "\n", with: "\\n")
            return flat.count > maxString ? "\"\(flat.prefix(maxString))…\" (\(s.utf8.count) bytes)" : "\"\(flat)\""
        case .array(let t, let items):
            let head = items.prefix(maxItems).map { $0.summary(maxItems: 3, maxString: 24) }.joined(separator: ", ")
            let more = items.count > maxItems ? ", … (\(items.count) \(t.name))" : ""
            return "[\(head)\(more)]"
        case .bool(let b): return b ? "true" : "false"
        case .float32(let f): return "\(f)"
        case .float64(let d): return "\(d)"
        default: return "\(int ?? 0)"
        }
    }
}
