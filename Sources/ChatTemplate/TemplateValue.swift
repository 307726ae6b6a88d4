/// A JSON-like value handed to a chat template (messages, tools, flags, special tokens).
///
/// Mirrors the Python values transformers passes to Jinja: `null` is Python `None`, `int` and
/// `double` stay distinct (they print differently: `1` vs `1.0`), and objects keep their key
/// insertion order because `tojson` and `items()` expose it.
public indirect enum TemplateValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([TemplateValue])
    case object(TemplateObject)
}

/// An insertion-ordered string-keyed dictionary (Python `dict` semantics).
///
/// Assigning an existing key replaces its value in place (position unchanged); a new key is appended.
/// Equality ignores order, as Python dict equality does.
public struct TemplateObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    private var values: [String: TemplateValue] = [:]

    public init() {}

    /// Builds an object from pairs; a repeated key keeps its first position and its last value.
    public init(_ pairs: [(String, TemplateValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    public subscript(key: String) -> TemplateValue? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Key/value pairs in insertion order.
    public var entries: [(key: String, value: TemplateValue)] {
        keys.map { (key: $0, value: values[$0]!) }
    }

    public static func == (lhs: TemplateObject, rhs: TemplateObject) -> Bool {
        lhs.values == rhs.values
    }
}

extension TemplateObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, TemplateValue)...) {
        self.init(elements)
    }
}

extension TemplateValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, TemplateValue)...) { self = .object(TemplateObject(elements)) }
}

extension TemplateValue {
    /// The string payload, or nil for any other case.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The object payload, or nil for any other case.
    public var objectValue: TemplateObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The array payload, or nil for any other case.
    public var arrayValue: [TemplateValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// Member lookup for objects (nil for missing keys and non-objects).
    public subscript(key: String) -> TemplateValue? {
        objectValue?[key]
    }
}
