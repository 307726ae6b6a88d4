#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Python semantics of operators, lookups and iteration as Jinja's sandbox applies them.
enum Operations {
    static func typeError(_ message: String) -> ChatTemplateError { ChatTemplateError(.type, message) }

    /// Throws the undefined value's error (any *use* of an undefined value fails; printing does not).
    static func requireDefined(_ value: Value) throws {
        if case .undefined(let reason) = value { throw reason.error }
    }

    /// Largest string/list a repetition or range may build (guards memory, like the sandbox's MAX_RANGE).
    static let maximumRepetition = 10_000_000
    /// Widest padding a template may ask for (center, ljust, rjust, zfill, indent, tojson's indent, a
    /// batch's fill) and most slices: far beyond any prompt's layout.
    static let maximumWidth = 100_000
    /// Longest string, in UTF-8 bytes, a template may build (concatenation, join, replace, indent) or
    /// render: far beyond any prompt, small enough never to exhaust memory.
    static let maximumStringBytes = 64 << 20

    /// Refuses a width (padding, indentation, slice count) beyond maximumWidth.
    static func checkWidth(_ width: Int, _ what: String) throws {
        guard width <= maximumWidth else {
            throw ChatTemplateError(.security, "\(what) width \(width) is larger than the limit of \(maximumWidth)")
        }
    }

    /// Refuses a string of `bytes` UTF-8 bytes beyond maximumStringBytes (checked before it is built).
    static func checkStringBytes(_ bytes: Int, _ what: String) throws {
        guard bytes <= maximumStringBytes else {
            throw ChatTemplateError(.security, "\(what) would make a string of \(bytes) bytes, more than the limit of \(maximumStringBytes)")
        }
    }

    // MARK: - Numbers

    enum Number {
        case int(Int)
        case double(Double)

        var doubleValue: Double {
            switch self {
            case .int(let value): return Double(value)
            case .double(let value): return value
            }
        }
    }

    /// Numeric view of bool/int/float (Python's bool is an int subclass).
    static func number(_ value: Value) -> Number? {
        switch value {
        case .bool(let flag): return .int(flag ? 1 : 0)
        case .int(let integer): return .int(integer)
        case .double(let double): return .double(double)
        default: return nil
        }
    }

    /// Integer view (bool counts), for indices and repetition counts.
    static func integer(_ value: Value) -> Int? {
        switch value {
        case .bool(let flag): return flag ? 1 : 0
        case .int(let integer): return integer
        default: return nil
        }
    }

    static func overflow(_ op: String) -> ChatTemplateError {
        ChatTemplateError(.runtime, "integer overflow in '\(op)' (values beyond 64-bit integers are not supported)")
    }

    // MARK: - Equality and ordering

    /// Python `==`.
    static func equals(_ lhs: Value, _ rhs: Value) -> Bool {
        if let left = number(lhs), let right = number(rhs) {
            switch (left, right) {
            case (.int(let a), .int(let b)): return a == b
            case (.double(let a), .double(let b)): return a == b
            case (.int(let a), .double(let b)), (.double(let b), .int(let a)):
                guard b.isFinite, b.rounded(.towardZero) == b, let exact = Int(exactly: b) else { return false }
                return exact == a
            }
        }
        switch (lhs, rhs) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return PythonText.equal(a, b)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { equals($0, $1) }
        case (.dict(let a), .dict(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a.entries {
                guard let other = b.value(for: key), equals(value, other) else { return false }
            }
            return true
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.callable(let a), .callable(let b)): return a === b
        case (.iterator(let a), .iterator(let b)): return a === b
        case (.loop(let a), .loop(let b)): return a === b
        default: return false
        }
    }

    /// Python `<`, `<=`, `>`, `>=` between numbers, strings, or same-kind sequences (lexicographic).
    static func ordered(_ op: ComparisonOperator, _ lhs: Value, _ rhs: Value) throws -> Bool {
        try requireDefined(lhs)
        try requireDefined(rhs)
        func apply<T: Comparable>(_ a: T, _ b: T) -> Bool {
            switch op {
            case .less: return a < b
            case .lessOrEqual: return a <= b
            case .greater: return a > b
            default: return a >= b
            }
        }
        if let left = number(lhs), let right = number(rhs) {
            if case .int(let a) = left, case .int(let b) = right { return apply(a, b) }
            return apply(left.doubleValue, right.doubleValue)
        }
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)):
            let order = PythonText.less(a, b) ? -1 : (PythonText.equal(a, b) ? 0 : 1)
            return apply(order, 0)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            for (x, y) in zip(a, b) where !equals(x, y) { return try ordered(op, x, y) }
            return apply(a.count, b.count)
        default:
            throw typeError(
                "'\(op.rawValue)' not supported between instances of '\(lhs.typeName)' and '\(rhs.typeName)'")
        }
    }

    static func lessThan(_ lhs: Value, _ rhs: Value) throws -> Bool {
        try ordered(.less, lhs, rhs)
    }

    static func compare(_ op: ComparisonOperator, _ lhs: Value, _ rhs: Value) throws -> Bool {
        switch op {
        case .equal: return equals(lhs, rhs)
        case .notEqual: return !equals(lhs, rhs)
        case .less, .lessOrEqual, .greater, .greaterOrEqual: return try ordered(op, lhs, rhs)
        case .contains: return try contains(rhs, lhs)
        case .notContains: return try !contains(rhs, lhs)
        }
    }

    /// Python `item in container`.
    static func contains(_ container: Value, _ item: Value) throws -> Bool {
        switch container {
        case .string(let text):
            guard case .string(let needle) = item else {
                throw typeError("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return PythonText.contains(text, needle)
        case .list(let items), .tuple(let items):
            return items.contains { equals($0, item) }
        case .dict(let dictionary):
            if DictionaryKey(item) == nil { throw typeError("unhashable type: '\(item.typeName)'") }
            return dictionary.value(for: item) != nil
        case .undefined:
            return false
        case .iterator(let iterator):
            while let next = iterator.next() { if equals(next, item) { return true } }
            return false
        case .loop(let loop):
            return loop.items.contains { equals($0, item) }
        default:
            throw typeError("argument of type '\(container.typeName)' is not iterable")
        }
    }

    // MARK: - Arithmetic

    static func unsupported(_ op: String, _ lhs: Value, _ rhs: Value) -> ChatTemplateError {
        typeError("unsupported operand type(s) for \(op): '\(lhs.typeName)' and '\(rhs.typeName)'")
    }

    static func binary(_ op: BinaryOperator, _ lhs: Value, _ rhs: Value) throws -> Value {
        try requireDefined(lhs)
        // `str % x` is handled by str itself, before Undefined's reflected operator could raise.
        if case .modulo = op, case .string(let format) = lhs {
            return .string(try Formatting.percentFormat(format, rhs))
        }
        try requireDefined(rhs)
        switch op {
        case .add: return try add(lhs, rhs)
        case .subtract:
            return try arithmetic(lhs, rhs, "-", integer: { $0.subtractingReportingOverflow($1) }, double: { $0 - $1 })
        case .multiply: return try multiply(lhs, rhs)
        case .divide:
            guard let left = number(lhs), let right = number(rhs) else { throw unsupported("/", lhs, rhs) }
            if right.doubleValue == 0 {
                if case .int = right, case .int = left { throw ChatTemplateError(.type, "division by zero") }
                throw ChatTemplateError(.type, "float division by zero")
            }
            return .double(left.doubleValue / right.doubleValue)
        case .floorDivide:
            guard let left = number(lhs), let right = number(rhs) else { throw unsupported("//", lhs, rhs) }
            if case .int(let a) = left, case .int(let b) = right {
                if b == 0 { throw ChatTemplateError(.type, "integer division or modulo by zero") }
                if a == Int.min && b == -1 { throw overflow("//") }
                let quotient = a / b
                return .int((a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient)
            }
            if right.doubleValue == 0 { throw ChatTemplateError(.type, "float floor division by zero") }
            return .double(floorDivide(left.doubleValue, right.doubleValue))
        case .modulo:
            guard let left = number(lhs), let right = number(rhs) else { throw unsupported("%", lhs, rhs) }
            if case .int(let a) = left, case .int(let b) = right {
                if b == 0 { throw ChatTemplateError(.type, "integer modulo by zero") }
                if b == -1 { return .int(0) }
                let remainder = a % b
                return .int(remainder != 0 && (remainder < 0) != (b < 0) ? remainder + b : remainder)
            }
            if right.doubleValue == 0 { throw ChatTemplateError(.type, "float modulo") }
            return .double(pythonFloatModulo(left.doubleValue, right.doubleValue))
        case .power:
            guard let left = number(lhs), let right = number(rhs) else { throw unsupported("** or pow()", lhs, rhs) }
            if case .int(let base) = left, case .int(let exponent) = right, exponent >= 0 {
                var result = 1
                var factor = base
                var remaining = exponent
                while remaining > 0 {
                    if remaining & 1 == 1 {
                        let (product, overflowed) = result.multipliedReportingOverflow(by: factor)
                        if overflowed { throw overflow("**") }
                        result = product
                    }
                    remaining >>= 1
                    if remaining > 0 {
                        let (square, overflowed) = factor.multipliedReportingOverflow(by: factor)
                        if overflowed { throw overflow("**") }
                        factor = square
                    }
                }
                return .int(result)
            }
            if left.doubleValue == 0 && right.doubleValue < 0 {
                throw ChatTemplateError(.type, "0.0 cannot be raised to a negative power")
            }
            return .double(pow(left.doubleValue, right.doubleValue))
        }
    }

    /// Python float `//`: floor of the exact quotient, computed from fmod like CPython.
    static func floorDivide(_ a: Double, _ b: Double) -> Double {
        let modulo = fmod(a, b)
        var division = (a - modulo) / b
        if modulo != 0 && ((b < 0) != (modulo < 0)) { division -= 1 }
        if division != 0 {
            var floored = division.rounded(.down)
            if division - floored > 0.5 { floored += 1 }
            return floored
        }
        return a / b < 0 ? -0.0 : 0.0
    }

    /// Python float `%`: result has the sign of the divisor.
    static func pythonFloatModulo(_ a: Double, _ b: Double) -> Double {
        var modulo = fmod(a, b)
        if modulo != 0 {
            if (b < 0) != (modulo < 0) { modulo += b }
        } else {
            modulo = b < 0 ? -0.0 : 0.0
        }
        return modulo
    }

    private static func arithmetic(
        _ lhs: Value, _ rhs: Value, _ op: String,
        integer: (Int, Int) -> (partialValue: Int, overflow: Bool), double: (Double, Double) -> Double
    ) throws -> Value {
        guard let left = number(lhs), let right = number(rhs) else { throw unsupported(op, lhs, rhs) }
        if case .int(let a) = left, case .int(let b) = right {
            let (result, overflowed) = integer(a, b)
            if overflowed { throw overflow(op) }
            return .int(result)
        }
        return .double(double(left.doubleValue, right.doubleValue))
    }

    private static func add(_ lhs: Value, _ rhs: Value) throws -> Value {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)):
            try checkStringBytes(a.utf8.count + b.utf8.count, "concatenation")
            return .string(a + b)
        case (.list(let a), .list(let b)): return .list(a + b)
        case (.tuple(let a), .tuple(let b)): return .tuple(a + b)
        case (.string, _): throw typeError("can only concatenate str (not \"\(rhs.typeName)\") to str")
        case (.list, _): throw typeError("can only concatenate list (not \"\(rhs.typeName)\") to list")
        case (.tuple, _): throw typeError("can only concatenate tuple (not \"\(rhs.typeName)\") to tuple")
        default:
            return try arithmetic(lhs, rhs, "+", integer: { $0.addingReportingOverflow($1) }, double: { $0 + $1 })
        }
    }

    private static func repeated<T>(_ items: [T], _ count: Int) throws -> [T] {
        if count <= 0 || items.isEmpty { return [] }
        guard items.count <= maximumRepetition / count else {
            throw ChatTemplateError(.security, "repetition result is too large (\(items.count) × \(count) items, the limit is \(maximumRepetition))")
        }
        var result: [T] = []
        result.reserveCapacity(items.count * count)
        for _ in 0..<count { result.append(contentsOf: items) }
        return result
    }

    private static func multiply(_ lhs: Value, _ rhs: Value) throws -> Value {
        switch (lhs, rhs) {
        case (.string(let text), _):
            guard let count = integer(rhs) else {
                throw typeError("can't multiply sequence by non-int of type '\(rhs.typeName)'")
            }
            return .string(PythonText.string(try repeated(PythonText.scalars(text), count)))
        case (_, .string(let text)) where integer(lhs) != nil:
            return .string(PythonText.string(try repeated(PythonText.scalars(text), integer(lhs)!)))
        case (.list(let items), _):
            guard let count = integer(rhs) else {
                throw typeError("can't multiply sequence by non-int of type '\(rhs.typeName)'")
            }
            return .list(try repeated(items, count))
        case (_, .list(let items)) where integer(lhs) != nil:
            return .list(try repeated(items, integer(lhs)!))
        case (.tuple(let items), _):
            guard let count = integer(rhs) else {
                throw typeError("can't multiply sequence by non-int of type '\(rhs.typeName)'")
            }
            return .tuple(try repeated(items, count))
        case (_, .tuple(let items)) where integer(lhs) != nil:
            return .tuple(try repeated(items, integer(lhs)!))
        case (_, .string), (_, .list), (_, .tuple):
            throw typeError("can't multiply sequence by non-int of type '\(lhs.typeName)'")
        default:
            return try arithmetic(lhs, rhs, "*", integer: { $0.multipliedReportingOverflow(by: $1) }, double: { $0 * $1 })
        }
    }

    static func negate(_ value: Value) throws -> Value {
        try requireDefined(value)
        switch number(value) {
        case .int(let integer)?:
            if integer == Int.min { throw overflow("-") }
            return .int(-integer)
        case .double(let double)?: return .double(-double)
        case nil: throw typeError("bad operand type for unary -: '\(value.typeName)'")
        }
    }

    static func unaryPlus(_ value: Value) throws -> Value {
        try requireDefined(value)
        switch number(value) {
        case .int(let integer)?: return .int(integer)
        case .double(let double)?: return .double(double)
        case nil: throw typeError("bad operand type for unary +: '\(value.typeName)'")
        }
    }

    // MARK: - Iteration and length

    /// Python `iter(value)` materialized. Undefined iterates as empty; iterators are consumed.
    static func iterate(_ value: Value) throws -> [Value] {
        switch value {
        case .list(let items), .tuple(let items): return items
        case .dict(let dictionary): return dictionary.keys
        case .string(let text): return text.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        case .iterator(let iterator): return iterator.drain()
        case .loop(let loop): return loop.items
        default: throw typeError("'\(value.typeName)' object is not iterable")
        }
    }

    /// Python `len(value)`; undefined has length 0.
    static func length(_ value: Value) throws -> Int {
        switch value {
        case .string(let text): return PythonText.length(text)
        case .list(let items), .tuple(let items): return items.count
        case .dict(let dictionary): return dictionary.count
        case .undefined: return 0
        case .loop(let loop): return loop.items.count
        default: throw typeError("object of type '\(value.typeName)' has no len()")
        }
    }

    // MARK: - Attribute and item lookup

    /// `object.name` through the sandbox: Python attribute first (methods), then `object[name]`.
    static func attribute(_ object: Value, _ name: String) throws -> Value {
        try requireDefined(object)
        if name.hasPrefix("__") { return .undefined(.unsafe(name, on: object)) }
        if let method = Methods.bound(object, name) { return method }
        switch object {
        case .dict(let dictionary):
            return dictionary[name] ?? .undefined(.missing(.string(name), on: object))
        case .namespace(let namespace):
            return namespace.attributes[name] ?? .undefined(.missing(.string(name), on: object))
        case .loop(let loop):
            return loopAttribute(loop, name) ?? .undefined(.missing(.string(name), on: object))
        case .bool, .int, .double:
            // Python numbers expose `.real` / `.imag`.
            if name == "real" {
                if case .bool(let flag) = object { return .int(flag ? 1 : 0) }
                return object
            }
            if name == "imag" {
                if case .double = object { return .double(0) }
                return .int(0)
            }
            return .undefined(.missing(.string(name), on: object))
        default:
            return .undefined(.missing(.string(name), on: object))
        }
    }

    /// `object[key]` through the sandbox: item first, then (for string keys) the attribute.
    static func item(_ object: Value, _ key: Value) throws -> Value {
        try requireDefined(object)
        switch object {
        case .dict(let dictionary):
            if let value = dictionary.value(for: key) { return value }
        case .list(let items), .tuple(let items):
            if let index = integer(key) {
                let resolved = index < 0 ? index + items.count : index
                if resolved >= 0 && resolved < items.count { return items[resolved] }
                return .undefined(.missing(key, on: object))
            }
        case .string(let text):
            if let index = integer(key) {
                let scalars = PythonText.scalars(text)
                let resolved = index < 0 ? index + scalars.count : index
                if resolved >= 0 && resolved < scalars.count { return .string(String(scalars[resolved])) }
                return .undefined(.missing(key, on: object))
            }
        default:
            break
        }
        if case .string(let name) = key {
            if name.hasPrefix("__") { return .undefined(.unsafe(name, on: object)) }
            if let method = Methods.bound(object, name) { return method }
            if case .namespace(let namespace) = object, let value = namespace.attributes[name] { return value }
            if case .loop(let loop) = object, let value = loopAttribute(loop, name) { return value }
        }
        return .undefined(.missing(key, on: object))
    }

    /// Python slice semantics on lists, tuples and strings. jinja2 compiles `x[a:b]` to plain Python
    /// subscription (no sandbox fallback), so slicing anything else raises.
    static func slice(_ object: Value, start: Value?, stop: Value?, step: Value?) throws -> Value {
        try requireDefined(object)
        switch object {
        case .list, .tuple, .string: break
        case .dict: throw typeError("unhashable type: 'slice'")
        default: throw typeError("'\(object.typeName)' object is not subscriptable")
        }
        func bound(_ value: Value?) -> Int?? {
            guard let value else { return .some(nil) }
            if case .none = value { return .some(nil) }
            if let integer = integer(value) { return .some(integer) }
            return nil  // not a valid slice index
        }
        guard let startIndex = bound(start), let stopIndex = bound(stop), let stepValue = bound(step) else {
            for part in [start, stop, step] { if let part { try requireDefined(part) } }
            throw typeError("slice indices must be integers or None or have an __index__ method")
        }
        let stride = stepValue ?? 1
        if stride == 0 { throw ChatTemplateError(.type, "slice step cannot be zero") }
        func indices(_ count: Int) -> [Int] {
            func adjust(_ value: Int?, default defaultValue: Int) -> Int {
                guard var index = value else { return defaultValue }
                if index < 0 {
                    index += count
                    if index < 0 { index = stride < 0 ? -1 : 0 }
                } else if index >= count {
                    index = stride < 0 ? count - 1 : count
                }
                return index
            }
            let first = adjust(startIndex, default: stride < 0 ? count - 1 : 0)
            let last = adjust(stopIndex, default: stride < 0 ? -1 : count)
            var result: [Int] = []
            var index = first
            while stride > 0 ? index < last : index > last {
                result.append(index)
                let (next, overflowed) = index.addingReportingOverflow(stride)
                if overflowed { break }
                index = next
            }
            return result
        }
        switch object {
        case .list(let items): return .list(indices(items.count).map { items[$0] })
        case .tuple(let items): return .tuple(indices(items.count).map { items[$0] })
        case .string(let text):
            let scalars = PythonText.scalars(text)
            return .string(PythonText.string(indices(scalars.count).map { scalars[$0] }))
        default:
            throw typeError("'\(object.typeName)' object is not subscriptable")
        }
    }

    static func loopAttribute(_ loop: LoopObject, _ name: String) -> Value? {
        let length = loop.items.count
        switch name {
        case "index": return .int(loop.index0 + 1)
        case "index0": return .int(loop.index0)
        case "revindex": return .int(length - loop.index0)
        case "revindex0": return .int(length - loop.index0 - 1)
        case "first": return .bool(loop.index0 == 0)
        case "last": return .bool(loop.index0 == length - 1)
        case "length": return .int(length)
        case "depth": return .int(loop.depth0 + 1)
        case "depth0": return .int(loop.depth0)
        case "previtem":
            return loop.index0 > 0 ? loop.items[loop.index0 - 1] : .undefined(.hint("there is no previous item"))
        case "nextitem":
            return loop.index0 + 1 < length ? loop.items[loop.index0 + 1] : .undefined(.hint("there is no next item"))
        case "cycle":
            return .callable(
                CallableObject(name: "cycle") { _, arguments, _ in
                    guard !arguments.isEmpty else { throw typeError("no items for cycling given") }
                    return arguments[loop.index0 % arguments.count]
                })
        case "changed":
            return .callable(
                CallableObject(name: "changed") { _, arguments, _ in
                    if let previous = loop.lastChangedArguments, previous.count == arguments.count,
                        zip(previous, arguments).allSatisfy({ equals($0, $1) })
                    {
                        return .bool(false)
                    }
                    loop.lastChangedArguments = arguments
                    return .bool(true)
                })
        default: return nil
        }
    }
}
