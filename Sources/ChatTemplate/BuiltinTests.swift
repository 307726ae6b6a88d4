/// jinja2's builtin tests (`value is name(args)`), with Python semantics.
enum BuiltinTests {
    static let names: Set<String> = [
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
        "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
        "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<", "lt",
        "lessthan", "<=", "le",
    ]

    static func apply(
        _ name: String, _ value: Value, _ arguments: [Value], _ keywords: [(String, Value)], interpreter: Interpreter
    ) throws -> Bool {
        func argument(_ parameter: String) throws -> Value {
            try Methods.bind(name, arguments, keywords, parameters: [parameter], required: 1)[0]!
        }
        func noArguments() throws {
            _ = try Methods.bind(name, arguments, keywords, parameters: [])
        }
        switch name {
        case "defined":
            try noArguments()
            return !value.isUndefined
        case "undefined":
            try noArguments()
            return value.isUndefined
        case "none":
            try noArguments()
            if case .none = value { return true }
            return false
        case "boolean":
            try noArguments()
            if case .bool = value { return true }
            return false
        case "true", "false":
            try noArguments()
            if case .bool(let flag) = value { return flag == (name == "true") }
            return false
        case "integer":
            try noArguments()
            if case .int = value { return true }
            return false
        case "float":
            try noArguments()
            if case .double = value { return true }
            return false
        case "number":
            try noArguments()
            return Operations.number(value) != nil
        case "string":
            try noArguments()
            if case .string = value { return true }
            return false
        case "mapping":
            try noArguments()
            if case .dict = value { return true }
            return false
        case "sequence":
            try noArguments()
            switch value {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "iterable":
            try noArguments()
            switch value {
            case .string, .list, .tuple, .dict, .undefined, .iterator, .loop: return true
            default: return false
            }
        case "callable":
            try noArguments()
            switch value {
            case .callable, .loop, .undefined: return true
            default: return false
            }
        case "lower", "upper":
            try noArguments()
            let text = value.pythonString
            return name == "lower" ? Methods.isLower(text) : Methods.isUpper(text)
        case "escaped":
            try noArguments()
            return false
        case "odd", "even":
            try noArguments()
            let remainder = try Operations.binary(.modulo, value, .int(2))
            return Operations.equals(remainder, .int(name == "odd" ? 1 : 0))
        case "divisibleby":
            let divisor = try argument("num")
            return Operations.equals(try Operations.binary(.modulo, value, divisor), .int(0))
        case "filter":
            try noArguments()
            if case .string(let text) = value { return BuiltinFilters.names.contains(text) }
            return false
        case "test":
            try noArguments()
            if case .string(let text) = value { return names.contains(text) }
            return false
        case "sameas":
            let other = try argument("other")
            return isSameObject(value, other)
        case "in":
            return try Operations.contains(try argument("seq"), value)
        case "==", "eq", "equalto":
            return Operations.equals(value, try argument("other"))
        case "!=", "ne":
            return !Operations.equals(value, try argument("other"))
        case ">", "gt", "greaterthan":
            return try Operations.ordered(.greater, value, try argument("other"))
        case ">=", "ge":
            return try Operations.ordered(.greaterOrEqual, value, try argument("other"))
        case "<", "lt", "lessthan":
            return try Operations.ordered(.less, value, try argument("other"))
        case "<=", "le":
            return try Operations.ordered(.lessOrEqual, value, try argument("other"))
        default:
            throw ChatTemplateError(.runtime, "No test named '\(name)' found.")
        }
    }

    /// Python `is`: singletons and small cached ints compare by value, containers by identity.
    private static func isSameObject(_ lhs: Value, _ rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case (.none, .none), (.undefined, .undefined): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b && (-5...256).contains(a)
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.callable(let a), .callable(let b)): return a === b
        case (.iterator(let a), .iterator(let b)): return a === b
        case (.loop(let a), .loop(let b)): return a === b
        default: return false
        }
    }
}
