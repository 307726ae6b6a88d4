/// Python methods reachable from templates: `text.strip()`, `message.get('x')`, `items.count(x)`.
/// Mutating list/dict methods exist but are refused, as in jinja2's ImmutableSandboxedEnvironment.
enum Methods {
    static let stringMethods: Set<String> = [
        "capitalize", "casefold", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower",
        "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
    ]
    static let dictMethods: Set<String> = ["get", "items", "keys", "values", "copy"]
    static let unsafeDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]
    static let listMethods: Set<String> = ["count", "index", "copy"]
    static let unsafeListMethods: Set<String> = ["append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"]

    /// The bound method `receiver.name`, an "unsafe" undefined for refused methods, or nil when the
    /// receiver has no such method.
    static func bound(_ receiver: Value, _ name: String) -> Value? {
        switch receiver {
        case .string(let text):
            guard stringMethods.contains(name) else { return nil }
            return method(name) { arguments, keywords in try callString(text, name, arguments, keywords) }
        case .dict(let dictionary):
            if unsafeDictMethods.contains(name) { return .undefined(.unsafe(name, on: receiver)) }
            guard dictMethods.contains(name) else { return nil }
            return method(name) { arguments, keywords in try callDict(dictionary, name, arguments, keywords) }
        case .list(let items):
            if unsafeListMethods.contains(name) { return .undefined(.unsafe(name, on: receiver)) }
            guard listMethods.contains(name) else { return nil }
            return method(name) { arguments, keywords in
                try callSequence(items, isTuple: false, name, arguments, keywords)
            }
        case .tuple(let items):
            guard name == "count" || name == "index" else { return nil }
            return method(name) { arguments, keywords in
                try callSequence(items, isTuple: true, name, arguments, keywords)
            }
        default:
            return nil
        }
    }

    private static func method(_ name: String, _ body: @escaping ([Value], [(String, Value)]) throws -> Value) -> Value {
        .callable(CallableObject(name: name) { _, arguments, keywords in try body(arguments, keywords) })
    }

    /// Binds positional/keyword arguments to parameter slots (Python's own error messages).
    static func bind(
        _ function: String, _ arguments: [Value], _ keywords: [(String, Value)], parameters: [String],
        required: Int = 0, keywordNames: Set<String>? = nil
    ) throws -> [Value?] {
        if arguments.count > parameters.count {
            throw ChatTemplateError(
                .type, "\(function)() takes at most \(parameters.count) argument\(parameters.count == 1 ? "" : "s") (\(arguments.count) given)")
        }
        var slots = [Value?](repeating: nil, count: parameters.count)
        for (index, argument) in arguments.enumerated() { slots[index] = argument }
        let allowed = keywordNames ?? Set(parameters)
        for (key, value) in keywords {
            guard allowed.contains(key), let index = parameters.firstIndex(of: key) else {
                if keywordNames?.isEmpty == true {
                    throw ChatTemplateError(.type, "\(function)() takes no keyword arguments")
                }
                throw ChatTemplateError(.type, "\(function)() got an unexpected keyword argument '\(key)'")
            }
            if slots[index] != nil {
                throw ChatTemplateError(.type, "\(function)() got multiple values for argument '\(key)'")
            }
            slots[index] = value
        }
        for index in 0..<required where slots[index] == nil {
            throw ChatTemplateError(.type, "\(function)() missing required argument '\(parameters[index])'")
        }
        return slots
    }

    /// A `str` argument (or None when allowed), with CPython's wording for the wrong type.
    private static func stringArgument(_ value: Value?, _ function: String, allowNone: Bool = true) throws -> String? {
        guard let value else { return nil }
        switch value {
        case .string(let text): return text
        case .none where allowNone: return nil
        default:
            switch function {
            case "strip", "lstrip", "rstrip": throw ChatTemplateError(.type, "\(function) arg must be None or str")
            case "split", "rsplit": throw ChatTemplateError(.type, "must be str or None, not \(value.typeName)")
            case "removeprefix", "removesuffix":
                throw ChatTemplateError(.type, "\(function)() argument must be str, not \(value.typeName)")
            default: throw ChatTemplateError(.type, "must be str, not \(value.typeName)")
            }
        }
    }

    private static func intArgument(_ value: Value?, _ function: String, default defaultValue: Int) throws -> Int {
        guard let value else { return defaultValue }
        guard let integer = Operations.integer(value) else {
            throw ChatTemplateError(.type, "'\(value.typeName)' object cannot be interpreted as an integer")
        }
        return integer
    }

    /// Python slice-style `start`/`end` arguments for `find`, `count`, `startswith`, ...
    private static func range(_ start: Value?, _ end: Value?, count: Int) throws -> (Int, Int) {
        func adjust(_ value: Value?, default defaultValue: Int) throws -> Int {
            guard let value, !{ if case .none = value { return true } else { return false } }() else {
                return defaultValue
            }
            guard var index = Operations.integer(value) else {
                throw ChatTemplateError(.type, "slice indices must be integers or None or have an __index__ method")
            }
            if index < 0 { index = max(0, index + count) }
            return min(index, count)
        }
        return (try adjust(start, default: 0), try adjust(end, default: count))
    }

    private static func padded(_ text: String, width: Int, fill: String, mode: String) -> String {
        let length = PythonText.length(text)
        guard width > length else { return text }
        let padding = width - length
        switch mode {
        case "ljust": return text + String(repeating: fill, count: padding)
        case "rjust": return String(repeating: fill, count: padding) + text
        default:
            // CPython's center: extra padding goes left when both the margin and width are odd.
            let left = padding / 2 + (padding & width & 1)
            return String(repeating: fill, count: left) + text + String(repeating: fill, count: padding - left)
        }
    }

    static func center(_ text: String, width: Int, fill: String = " ") -> String {
        padded(text, width: width, fill: fill, mode: "center")
    }

    static func callString(_ text: String, _ name: String, _ arguments: [Value], _ keywords: [(String, Value)]) throws
        -> Value
    {
        func noArguments() throws {
            _ = try bind(name, arguments, keywords, parameters: [], keywordNames: [])
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let slots = try bind(name, arguments, keywords, parameters: ["chars"], keywordNames: [])
            let chars = try stringArgument(slots[0], name)
            return .string(PythonText.strip(text, chars: chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "split", "rsplit":
            let slots = try bind(name, arguments, keywords, parameters: ["sep", "maxsplit"])
            let separator = try stringArgument(slots[0], name)
            if let separator, separator.isEmpty { throw ChatTemplateError(.type, "empty separator") }
            let maxSplit = try intArgument(slots[1], name, default: -1)
            let parts =
                name == "split"
                ? PythonText.split(text, separator: separator, maxSplit: maxSplit)
                : PythonText.rsplit(text, separator: separator, maxSplit: maxSplit)
            return .list(parts.map { .string($0) })
        case "splitlines":
            let slots = try bind(name, arguments, keywords, parameters: ["keepends"])
            return .list(PythonText.splitLines(text, keepEnds: slots[0]?.isTruthy ?? false).map { .string($0) })
        case "startswith", "endswith":
            let slots = try bind(name, arguments, keywords, parameters: ["prefix", "start", "end"], required: 1, keywordNames: [])
            let scalars = PythonText.scalars(text)
            let (start, end) = try range(slots[1], slots[2], count: scalars.count)
            let window = start <= end ? PythonText.string(scalars[start..<end]) : ""
            let candidates: [Value]
            switch slots[0]! {
            case .string: candidates = [slots[0]!]
            case .tuple(let items): candidates = items
            default:
                throw ChatTemplateError(
                    .type, "\(name) first arg must be str or a tuple of str, not \(slots[0]!.typeName)")
            }
            if start > scalars.count || start > end { return .bool(false) }
            for candidate in candidates {
                guard case .string(let affix) = candidate else {
                    throw ChatTemplateError(.type, "tuple for \(name) must only contain str, not \(candidate.typeName)")
                }
                if name == "startswith" ? PythonText.hasPrefix(window, affix) : PythonText.hasSuffix(window, affix) {
                    return .bool(true)
                }
            }
            return .bool(false)
        case "upper": try noArguments(); return .string(PythonText.upper(text))
        case "lower", "casefold": try noArguments(); return .string(PythonText.lower(text))
        case "title": try noArguments(); return .string(PythonText.title(text))
        case "capitalize": try noArguments(); return .string(PythonText.capitalize(text))
        case "swapcase": try noArguments(); return .string(PythonText.swapcase(text))
        case "replace":
            let slots = try bind(name, arguments, keywords, parameters: ["old", "new", "count"], required: 2)
            for (index, slot) in slots.prefix(2).enumerated() {
                guard case .string = slot! else {
                    throw ChatTemplateError(.type, "replace() argument \(index + 1) must be str, not \(slot!.typeName)")
                }
            }
            let old = slots[0]!.pythonString
            let new = slots[1]!.pythonString
            return .string(try PythonText.replace(text, old, new, count: try intArgument(slots[2], name, default: -1)))
        case "find", "rfind", "index", "rindex", "count":
            let slots = try bind(name, arguments, keywords, parameters: ["sub", "start", "end"], required: 1, keywordNames: [])
            guard let sub = try stringArgument(slots[0], name, allowNone: false) else {
                throw ChatTemplateError(.type, "must be str, not NoneType")
            }
            let scalars = PythonText.scalars(text)
            let (start, end) = try range(slots[1], slots[2], count: scalars.count)
            if name == "count" {
                if start > end { return .int(0) }
                return .int(PythonText.count(Array(scalars[start..<end]), PythonText.scalars(sub)))
            }
            let reverse = name == "rfind" || name == "rindex"
            let found =
                start > end
                ? -1
                : reverse
                    ? PythonText.rfind(scalars, PythonText.scalars(sub), start: start, end: end)
                    : PythonText.find(scalars, PythonText.scalars(sub), start: start, end: end)
            if found < 0 && (name == "index" || name == "rindex") {
                throw ChatTemplateError(.type, "substring not found")
            }
            return .int(found)
        case "join":
            let slots = try bind(name, arguments, keywords, parameters: ["iterable"], required: 1, keywordNames: [])
            var parts: [String] = []
            for (index, item) in try Operations.iterate(slots[0]!).enumerated() {
                guard case .string(let part) = item else {
                    throw ChatTemplateError(.type, "sequence item \(index): expected str instance, \(item.typeName) found")
                }
                parts.append(part)
            }
            try Operations.checkStringBytes(parts.reduce(0) { $0 + $1.utf8.count } + max(0, parts.count - 1) * text.utf8.count, "join")
            return .string(parts.joined(separator: text))
        case "format":
            return .string(try Formatting.braceFormat(text, arguments, keywords))
        case "center", "ljust", "rjust":
            let slots = try bind(name, arguments, keywords, parameters: ["width", "fillchar"], required: 1, keywordNames: [])
            let width = try intArgument(slots[0], name, default: 0)
            let fill = try stringArgument(slots[1], name, allowNone: false) ?? " "
            guard PythonText.length(fill) == 1 else {
                throw ChatTemplateError(.type, "The fill character must be exactly one character long")
            }
            try Operations.checkWidth(width, name)
            return .string(padded(text, width: width, fill: fill, mode: name))
        case "zfill":
            let slots = try bind(name, arguments, keywords, parameters: ["width"], required: 1, keywordNames: [])
            let width = try intArgument(slots[0], name, default: 0)
            try Operations.checkWidth(width, name)
            var scalars = PythonText.scalars(text)
            guard width > scalars.count else { return .string(text) }
            let padding = [Unicode.Scalar](repeating: "0", count: width - scalars.count)
            let insertAt = (scalars.first == "+" || scalars.first == "-") ? 1 : 0
            scalars.insert(contentsOf: padding, at: insertAt)
            return .string(PythonText.string(scalars))
        case "partition", "rpartition":
            let slots = try bind(name, arguments, keywords, parameters: ["sep"], required: 1, keywordNames: [])
            guard let separator = try stringArgument(slots[0], name, allowNone: false), !separator.isEmpty else {
                throw ChatTemplateError(.type, "empty separator")
            }
            let scalars = PythonText.scalars(text)
            let target = PythonText.scalars(separator)
            let found = name == "partition" ? PythonText.find(scalars, target) : PythonText.rfind(scalars, target)
            if found < 0 {
                return name == "partition"
                    ? .tuple([.string(text), .string(""), .string("")])
                    : .tuple([.string(""), .string(""), .string(text)])
            }
            return .tuple([
                .string(PythonText.string(scalars[0..<found])), .string(separator),
                .string(PythonText.string(scalars[(found + target.count)...])),
            ])
        case "removeprefix", "removesuffix":
            let slots = try bind(name, arguments, keywords, parameters: ["affix"], required: 1, keywordNames: [])
            guard let affix = try stringArgument(slots[0], name, allowNone: false) else { return .string(text) }
            let scalars = PythonText.scalars(text)
            let count = PythonText.length(affix)
            if name == "removeprefix" {
                return .string(PythonText.hasPrefix(text, affix) ? PythonText.string(scalars[count...]) : text)
            }
            return .string(
                PythonText.hasSuffix(text, affix) && count > 0 ? PythonText.string(scalars[..<(scalars.count - count)]) : text)
        case "isalnum", "isalpha", "isdecimal", "isdigit", "isnumeric", "isspace":
            try noArguments()
            let scalars = PythonText.scalars(text)
            if scalars.isEmpty { return .bool(false) }
            let predicate: (Unicode.Scalar) -> Bool
            switch name {
            case "isalnum": predicate = { PythonText.isAlpha($0) || PythonText.isNumeric($0) }
            case "isalpha": predicate = PythonText.isAlpha
            case "isdecimal": predicate = PythonText.isDecimal
            case "isdigit": predicate = PythonText.isDigit
            case "isnumeric": predicate = PythonText.isNumeric
            default: predicate = PythonText.isWhitespace
            }
            return .bool(scalars.allSatisfy(predicate))
        case "islower", "isupper":
            try noArguments()
            return .bool(name == "islower" ? isLower(text) : isUpper(text))
        case "istitle":
            try noArguments()
            var sawCased = false
            var previousCased = false
            for scalar in text.unicodeScalars {
                if scalar.properties.isUppercase || scalar.properties.generalCategory == .titlecaseLetter {
                    if previousCased { return .bool(false) }
                    previousCased = true
                    sawCased = true
                } else if scalar.properties.isLowercase {
                    if !previousCased { return .bool(false) }
                    previousCased = true
                    sawCased = true
                } else {
                    previousCased = false
                }
            }
            return .bool(sawCased)
        default:
            throw ChatTemplateError(.type, "'str' object has no attribute '\(name)'")
        }
    }

    /// Python `str.islower()`: has a cased character and no uppercase/titlecase ones.
    static func isLower(_ text: String) -> Bool {
        var sawCased = false
        for scalar in text.unicodeScalars {
            if scalar.properties.isUppercase || scalar.properties.generalCategory == .titlecaseLetter { return false }
            if scalar.properties.isLowercase { sawCased = true }
        }
        return sawCased
    }

    /// Python `str.isupper()`.
    static func isUpper(_ text: String) -> Bool {
        var sawCased = false
        for scalar in text.unicodeScalars {
            if scalar.properties.isLowercase || scalar.properties.generalCategory == .titlecaseLetter { return false }
            if scalar.properties.isUppercase { sawCased = true }
        }
        return sawCased
    }

    static func callDict(
        _ dictionary: ValueDictionary, _ name: String, _ arguments: [Value], _ keywords: [(String, Value)]
    ) throws -> Value {
        switch name {
        case "get":
            let slots = try bind(name, arguments, keywords, parameters: ["key", "default"], required: 1, keywordNames: [])
            if DictionaryKey(slots[0]!) == nil {
                throw ChatTemplateError(.type, "unhashable type: '\(slots[0]!.typeName)'")
            }
            return dictionary.value(for: slots[0]!) ?? slots[1] ?? .none
        case "items":
            _ = try bind(name, arguments, keywords, parameters: [], keywordNames: [])
            return .list(dictionary.entries.map { .tuple([$0.key, $0.value]) })
        case "keys":
            _ = try bind(name, arguments, keywords, parameters: [], keywordNames: [])
            return .list(dictionary.keys)
        case "values":
            _ = try bind(name, arguments, keywords, parameters: [], keywordNames: [])
            return .list(dictionary.values)
        case "copy":
            _ = try bind(name, arguments, keywords, parameters: [], keywordNames: [])
            return .dict(dictionary)
        default:
            throw ChatTemplateError(.type, "'dict' object has no attribute '\(name)'")
        }
    }

    static func callSequence(
        _ items: [Value], isTuple: Bool, _ name: String, _ arguments: [Value], _ keywords: [(String, Value)]
    ) throws -> Value {
        switch name {
        case "count":
            let slots = try bind(name, arguments, keywords, parameters: ["value"], required: 1, keywordNames: [])
            return .int(items.filter { Operations.equals($0, slots[0]!) }.count)
        case "index":
            let slots = try bind(name, arguments, keywords, parameters: ["value", "start", "stop"], required: 1, keywordNames: [])
            let (start, end) = try range(slots[1], slots[2], count: items.count)
            if start < end {
                for index in start..<end where Operations.equals(items[index], slots[0]!) { return .int(index) }
            }
            throw ChatTemplateError(
                .type, isTuple ? "tuple.index(x): x not in tuple" : "\(slots[0]!.repr) is not in list")
        case "copy":
            _ = try bind(name, arguments, keywords, parameters: [], keywordNames: [])
            return .list(items)
        default:
            throw ChatTemplateError(.type, "'list' object has no attribute '\(name)'")
        }
    }
}
