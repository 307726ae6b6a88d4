/// Runtime values inside the interpreter: the Python objects a Jinja template sees.

/// Why a value is undefined; the message becomes the error when the undefined value is *used*
/// (jinja2's `Undefined._fail_with_undefined_error`). Printing or testing it is fine.
struct UndefinedReason {
    let message: String
    /// `.undefined` normally; `.security` for attributes the sandbox refuses (e.g. `list.append`).
    let kind: ChatTemplateError.Kind

    static func name(_ name: String) -> UndefinedReason {
        UndefinedReason(message: "\(PythonText.repr(name)) is undefined", kind: .undefined)
    }

    static func hint(_ message: String) -> UndefinedReason {
        UndefinedReason(message: message, kind: .undefined)
    }

    /// jinja2's message for a failed attribute/item lookup on `object`.
    static func missing(_ key: Value, on object: Value) -> UndefinedReason {
        let owner = object.objectTypeDescription
        if case .string(let name) = key {
            return UndefinedReason(message: "\(PythonText.repr(owner)) has no attribute \(PythonText.repr(name))", kind: .undefined)
        }
        return UndefinedReason(message: "\(owner) has no element \(key.repr)", kind: .undefined)
    }

    static func unsafe(_ attribute: String, on object: Value) -> UndefinedReason {
        UndefinedReason(
            message: "access to attribute \(PythonText.repr(attribute)) of \(PythonText.repr(object.typeName)) object is unsafe.",
            kind: .security)
    }

    var error: ChatTemplateError { ChatTemplateError(kind, message) }
}

/// Python's hashing identity of a dictionary key: `1`, `1.0` and `True` are the same key.
enum DictionaryKey: Hashable {
    case none
    case integer(Int)
    /// Non-integral floats, by bit pattern.
    case real(UInt64)
    case string(String)
    case tuple([DictionaryKey])
    /// All undefined values are equal and share one hash in jinja2.
    case undefined

    /// nil for unhashable values (lists, dicts, namespaces, ...).
    init?(_ value: Value) {
        switch value {
        case .none: self = .none
        case .undefined: self = .undefined
        case .bool(let flag): self = .integer(flag ? 1 : 0)
        case .int(let number): self = .integer(number)
        case .double(let number):
            if number.rounded(.towardZero) == number, let exact = Int(exactly: number) {
                self = .integer(exact)
            } else {
                self = .real(number.bitPattern)
            }
        case .string(let text): self = .string(text)
        case .tuple(let items):
            var keys: [DictionaryKey] = []
            for item in items {
                guard let key = DictionaryKey(item) else { return nil }
                keys.append(key)
            }
            self = .tuple(keys)
        default: return nil
        }
    }
}

/// Insertion-ordered Python dict of runtime values. A repeated key keeps its first key object and
/// position and takes the new value, as in Python.
struct ValueDictionary {
    private(set) var keys: [Value] = []
    private(set) var values: [Value] = []
    private var index: [DictionaryKey: Int] = [:]

    init() {}

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }

    /// String-key access (template variables, JSON objects, namespaces).
    subscript(key: String) -> Value? {
        get { index[.string(key)].map { values[$0] } }
        set {
            guard let newValue else { return }
            // A string is always hashable.
            try? insert(.string(key), newValue)
        }
    }

    /// The value for any key; nil when missing (or the key is unhashable).
    func value(for key: Value) -> Value? {
        guard let hashed = DictionaryKey(key), let position = index[hashed] else { return nil }
        return values[position]
    }

    mutating func insert(_ key: Value, _ value: Value) throws {
        guard let hashed = DictionaryKey(key) else {
            throw ChatTemplateError(.type, "unhashable type: '\(key.typeName)'")
        }
        if let position = index[hashed] {
            values[position] = value
        } else {
            index[hashed] = keys.count
            keys.append(key)
            values.append(value)
        }
    }

    var entries: [(key: Value, value: Value)] { Array(zip(keys, values)).map { (key: $0.0, value: $0.1) } }
}

/// `namespace(...)` objects: the only mutable container templates can write to (`set ns.x = ...`).
final class NamespaceObject {
    var attributes = ValueDictionary()
}

/// A function value: builtins (`range`, `raise_exception`), bound methods (`text.strip`), macros.
final class CallableObject {
    typealias Body = (_ interpreter: Interpreter, _ positional: [Value], _ keywords: [(String, Value)]) throws -> Value
    let name: String
    /// Python type name used in messages: "function", "builtin_function_or_method", "Macro".
    let typeName: String
    let body: Body

    init(name: String, typeName: String = "builtin_function_or_method", body: @escaping Body) {
        self.name = name
        self.typeName = typeName
        self.body = body
    }
}

/// A one-shot Python iterator (generators returned by `map`, `select`, `items`, `reverse`, ...):
/// always truthy, no `len()`, and exhausted after one pass.
final class IteratorObject {
    private var items: [Value]
    private var position = 0
    let typeName: String

    init(_ items: [Value], typeName: String = "generator") {
        self.items = items
        self.typeName = typeName
    }

    /// Returns the remaining items and exhausts the iterator.
    func drain() -> [Value] {
        let rest = Array(items[position...])
        position = 0
        items = []
        return rest
    }

    func next() -> Value? {
        guard position < items.count else { return nil }
        defer { position += 1 }
        return items[position]
    }
}

/// The `loop` variable inside `{% for %}`.
final class LoopObject {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    var lastChangedArguments: [Value]? = nil
    /// For `recursive` loops: renders the loop body over new items one level deeper.
    let recurse: ((Interpreter, Value) throws -> Value)?

    init(items: [Value], depth0: Int, recurse: ((Interpreter, Value) throws -> Value)?) {
        self.items = items
        self.depth0 = depth0
        self.recurse = recurse
    }
}

/// Capped container-depth measurement with memoization (see `Value.nestsDeeper(than:)`).
struct NestingMeasure {
    /// Depth found for a storage buffer / namespace, and the cap it was measured under.
    private var known: [UnsafeRawPointer: (depth: Int, cap: Int)] = [:]
    private var knownNamespaces: [ObjectIdentifier: (depth: Int, cap: Int)] = [:]
    private var namespacesOnPath: Set<ObjectIdentifier> = []

    /// Depth of `value` (scalars 0, `[]` 1, `[[1]]` 2), or `cap` if it reaches the cap.
    mutating func depth(of value: Value, cap: Int) -> Int {
        if cap <= 0 { return 0 }
        switch value {
        case .list(let items), .tuple(let items):
            return depth(ofElements: items, cap: cap)
        case .dict(let dictionary):
            return depth(ofElements: dictionary.values, cap: cap)
        case .namespace(let namespace):
            let identity = ObjectIdentifier(namespace)
            if namespacesOnPath.contains(identity) { return cap }  // a cycle counts as too deep
            if let entry = knownNamespaces[identity], entry.depth < entry.cap || entry.cap >= cap {
                return min(entry.depth, cap)
            }
            namespacesOnPath.insert(identity)
            let result = depth(ofElements: namespace.attributes.values, cap: cap)
            namespacesOnPath.remove(identity)
            knownNamespaces[identity] = (result, cap)
            return result
        default:
            return 0
        }
    }

    private mutating func depth(ofElements items: [Value], cap: Int) -> Int {
        let address = items.withUnsafeBufferPointer { $0.baseAddress.map { UnsafeRawPointer($0) } }
        if let address, let entry = known[address], entry.depth < entry.cap || entry.cap >= cap {
            return min(entry.depth, cap)
        }
        var deepest = 0
        for item in items {
            deepest = max(deepest, depth(of: item, cap: cap - 1))
            if deepest >= cap - 1 { break }
        }
        let result = min(cap, 1 + deepest)
        if let address { known[address] = (result, cap) }
        return result
    }
}

enum Value {
    case undefined(UndefinedReason)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(ValueDictionary)
    case namespace(NamespaceObject)
    case callable(CallableObject)
    case iterator(IteratorObject)
    case loop(LoopObject)

    init(_ value: TemplateValue) {
        switch value {
        case .null: self = .none
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .int(number)
        case .double(let number): self = .double(number)
        case .string(let text): self = .string(text)
        case .array(let items): self = .list(items.map(Value.init))
        case .object(let object):
            var dictionary = ValueDictionary()
            for (key, item) in object.entries { dictionary[key] = Value(item) }
            self = .dict(dictionary)
        }
    }

    static func undefinedName(_ name: String) -> Value { .undefined(.name(name)) }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// Python `type(value).__name__`.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable(let function): return function.typeName
        case .iterator(let iterator): return iterator.typeName
        case .loop: return "LoopContext"
        }
    }

    /// jinja2's `object_type_repr`: "None", or "<type> object".
    var objectTypeDescription: String {
        switch self {
        case .none: return "None"
        case .namespace: return "jinja2.utils.Namespace object"
        case .loop: return "jinja2.runtime.LoopContext object"
        case .callable(let function) where function.typeName == "Macro": return "jinja2.runtime.Macro object"
        default: return "\(typeName) object"
        }
    }

    /// Python truthiness (`bool(value)`).
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let flag): return flag
        case .int(let number): return number != 0
        case .double(let number): return number != 0
        case .string(let text): return !text.isEmpty
        case .list(let items), .tuple(let items): return !items.isEmpty
        case .dict(let dictionary): return !dictionary.isEmpty
        case .namespace, .callable, .iterator, .loop: return true
        }
    }

    // MARK: - str() and repr()

    /// Python `str(value)` — what `{{ value }}` prints. Undefined prints as "".
    var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let text): return text
        default: return repr
        }
    }

    /// Python `repr(value)`.
    var repr: String {
        var namespacesInProgress: [ObjectIdentifier] = []
        var output = ""
        writeRepr(into: &output, namespacesInProgress: &namespacesInProgress)
        return output
    }

    /// Appends `repr(self)`. A namespace that (indirectly) contains itself prints `<Namespace {...}>`
    /// for the inner occurrence, as Python's recursive-repr guard on its attribute dict does.
    private func writeRepr(into output: inout String, namespacesInProgress: inout [ObjectIdentifier]) {
        func writeItems(_ items: [Value], open: String, close: String, trailingComma: Bool) {
            output += open
            for (index, item) in items.enumerated() {
                if index > 0 { output += ", " }
                item.writeRepr(into: &output, namespacesInProgress: &namespacesInProgress)
            }
            if trailingComma && items.count == 1 { output += "," }
            output += close
        }
        switch self {
        case .undefined: output += "Undefined"
        case .none: output += "None"
        case .bool(let flag): output += flag ? "True" : "False"
        case .int(let number): output += String(number)
        case .double(let number): output += PythonText.floatRepr(number)
        case .string(let text): output += PythonText.repr(text)
        case .list(let items): writeItems(items, open: "[", close: "]", trailingComma: false)
        case .tuple(let items): writeItems(items, open: "(", close: ")", trailingComma: true)
        case .dict(let dictionary):
            output += "{"
            for (index, entry) in dictionary.entries.enumerated() {
                if index > 0 { output += ", " }
                entry.key.writeRepr(into: &output, namespacesInProgress: &namespacesInProgress)
                output += ": "
                entry.value.writeRepr(into: &output, namespacesInProgress: &namespacesInProgress)
            }
            output += "}"
        case .namespace(let namespace):
            let identity = ObjectIdentifier(namespace)
            if namespacesInProgress.contains(identity) {
                output += "<Namespace {...}>"
                return
            }
            namespacesInProgress.append(identity)
            output += "<Namespace "
            Value.dict(namespace.attributes).writeRepr(into: &output, namespacesInProgress: &namespacesInProgress)
            output += ">"
            namespacesInProgress.removeLast()
        case .callable(let function):
            output += function.typeName == "Macro" ? "<Macro '\(function.name)'>" : "<built-in function \(function.name)>"
        case .iterator(let iterator): output += "<\(iterator.typeName) object>"
        case .loop(let loop): output += "<LoopContext \(loop.index0 + 1)/\(loop.items.count)>"
        }
    }

    /// Whether containers (lists, tuples, dicts, namespaces) nest deeper than `limit` levels, or a
    /// namespace contains itself. Shared storage is measured once (memoized by buffer address or
    /// object identity), so structures built by doubling (`[x, x]`) do not take exponential time.
    func nestsDeeper(than limit: Int) -> Bool {
        var measure = NestingMeasure()
        return measure.depth(of: self, cap: limit + 1) > limit
    }

    // MARK: - Conversion back to TemplateValue

    /// JSON-like projection (used by tests and tooling); non-data values become their `str()`.
    var templateValue: TemplateValue {
        switch self {
        case .undefined, .none: return .null
        case .bool(let flag): return .bool(flag)
        case .int(let number): return .int(number)
        case .double(let number): return .double(number)
        case .string(let text): return .string(text)
        case .list(let items), .tuple(let items): return .array(items.map(\.templateValue))
        case .dict(let dictionary):
            var object = TemplateObject()
            for (key, value) in dictionary.entries { object[key.pythonString] = value.templateValue }
            return .object(object)
        case .namespace, .callable, .iterator, .loop: return .string(pythonString)
        }
    }
}
