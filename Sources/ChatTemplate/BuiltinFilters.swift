/// jinja2's builtin filters (plus transformers' `tojson` override), with Python semantics.
///
/// Not implemented (templates using them fail to compile with "No filter named ..."): filesizeformat,
/// groupby, pprint, random, striptags, urlencode, urlize, wordwrap, xmlattr.
enum BuiltinFilters {
    static let names: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first",
        "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map",
        "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "slice",
        "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "wordcount",
    ]

    static func apply(
        _ name: String, _ input: Value, _ arguments: [Value], _ keywords: [(String, Value)], interpreter: Interpreter
    ) throws -> Value {
        func bind(_ parameters: [String], required: Int = 0) throws -> [Value?] {
            try Methods.bind(name, arguments, keywords, parameters: parameters, required: required)
        }
        switch name {
        case "abs":
            _ = try bind([])
            switch Operations.number(input) {
            case .int(let integer)?:
                if integer == Int.min { throw Operations.overflow("abs") }
                return .int(abs(integer))
            case .double(let double)?: return .double(abs(double))
            case nil: throw Operations.typeError("bad operand type for abs(): '\(input.typeName)'")
            }
        case "attr":
            let slots = try bind(["name"], required: 1)
            try Operations.requireDefined(input)
            guard case .string(let attribute) = slots[0]! else {
                throw Operations.typeError("attribute name must be string, not '\(slots[0]!.typeName)'")
            }
            switch input {
            case .namespace(let namespace):
                return namespace.attributes[attribute] ?? .undefined(.missing(.string(attribute), on: input))
            case .loop(let loop):
                return Operations.loopAttribute(loop, attribute) ?? .undefined(.missing(.string(attribute), on: input))
            default:
                if attribute.hasPrefix("__") { return .undefined(.unsafe(attribute, on: input)) }
                return Methods.bound(input, attribute) ?? .undefined(.missing(.string(attribute), on: input))
            }
        case "batch":
            let slots = try bind(["linecount", "fill_with"], required: 1)
            guard let lineCount = Operations.integer(slots[0]!) else {
                throw Operations.typeError("'\(slots[0]!.typeName)' object cannot be interpreted as an integer")
            }
            var batches: [Value] = []
            var current: [Value] = []
            for item in try Operations.iterate(input) {
                if current.count == lineCount {
                    batches.append(.list(current))
                    current = []
                }
                current.append(item)
            }
            if !current.isEmpty {
                if let fill = slots[1], !isNone(fill), current.count < lineCount {
                    try Operations.checkWidth(lineCount, "batch")
                    current += [Value](repeating: fill, count: lineCount - current.count)
                }
                batches.append(.list(current))
            }
            return .iterator(IteratorObject(batches))
        case "capitalize":
            _ = try bind([])
            return .string(PythonText.capitalize(input.pythonString))
        case "center":
            let slots = try bind(["width"])
            let width = try slots[0].map { try integerArgument($0) } ?? 80
            try Operations.checkWidth(width, "center")
            return .string(Methods.center(input.pythonString, width: width))
        case "count", "length":
            _ = try bind([])
            return .int(try Operations.length(input))
        case "d", "default":
            let slots = try bind(["default_value", "boolean"])
            let useDefault = input.isUndefined || ((slots[1]?.isTruthy ?? false) && !input.isTruthy)
            return useDefault ? (slots[0] ?? .string("")) : input
        case "dictsort":
            let slots = try bind(["case_sensitive", "by", "reverse"])
            try Operations.requireDefined(input)
            guard case .dict(let dictionary) = input else {
                throw Operations.typeError("'\(input.typeName)' object has no attribute 'items'")
            }
            let caseSensitive = slots[0]?.isTruthy ?? false
            let byValue: Bool
            switch slots[1] ?? .string("key") {
            case .string(let by) where by == "key": byValue = false
            case .string(let by) where by == "value": byValue = true
            default: throw ChatTemplateError(.runtime, "You can only sort by either \"key\" or \"value\"")
            }
            var pairs = dictionary.entries
            func sortKey(_ pair: (key: Value, value: Value)) -> Value {
                let raw = byValue ? pair.value : pair.key
                return caseSensitive ? raw : ignoreCase(raw)
            }
            try stableSort(&pairs, reverse: slots[2]?.isTruthy ?? false) { try Operations.lessThan(sortKey($0), sortKey($1)) }
            return .list(pairs.map { .tuple([$0.key, $0.value]) })
        case "e", "escape", "forceescape":
            _ = try bind([])
            return .string(htmlEscape(input.pythonString))
        case "first":
            _ = try bind([])
            if case .iterator(let iterator) = input {
                return iterator.next() ?? .undefined(.hint("No first item, sequence was empty."))
            }
            return try Operations.iterate(input).first ?? .undefined(.hint("No first item, sequence was empty."))
        case "last":
            _ = try bind([])
            switch input {
            case .list, .tuple, .string, .dict, .undefined:
                return try Operations.iterate(input).last ?? .undefined(.hint("No last item, sequence was empty."))
            default:
                throw Operations.typeError("'\(input.typeName)' object is not reversible")
            }
        case "float":
            let slots = try bind(["default"])
            let fallback = slots[0] ?? .double(0)
            switch input {
            case .undefined(let reason): throw reason.error
            case .bool, .int, .double: return .double(Operations.number(input)!.doubleValue)
            case .string(let text): return PythonText.parseFloat(text).map { .double($0) } ?? fallback
            default: return fallback
            }
        case "format":
            if !arguments.isEmpty && !keywords.isEmpty {
                throw ChatTemplateError(.runtime, "can't handle positional and keyword arguments at the same time")
            }
            var values: Value = .tuple(arguments)
            if !keywords.isEmpty {
                var dictionary = ValueDictionary()
                for (key, value) in keywords { dictionary[key] = value }
                values = .dict(dictionary)
            }
            return .string(try Formatting.percentFormat(input.pythonString, values))
        case "indent":
            let slots = try bind(["width", "first", "blank"])
            try Operations.requireDefined(input)
            guard case .string(var text) = input else {
                switch input {
                case .list: throw Operations.typeError("'list' object has no attribute 'splitlines'")
                case .tuple: throw Operations.typeError("can only concatenate tuple (not \"str\") to tuple")
                default: throw Operations.typeError("unsupported operand type(s) for +=: '\(input.typeName)' and 'str'")
                }
            }
            let indentation: String
            switch slots[0] ?? .int(4) {
            case .string(let custom): indentation = custom
            case let width:
                let spaces = try integerArgument(width)
                try Operations.checkWidth(spaces, "indent")
                indentation = String(repeating: " ", count: max(0, spaces))
            }
            text += "\n"
            var lines = PythonText.splitLines(text)
            // At most one indentation per line (and one more for `first`).
            try Operations.checkStringBytes(text.utf8.count + (lines.count + 1) * indentation.utf8.count, "indent")
            var result: String
            if slots[2]?.isTruthy ?? false {
                result = lines.joined(separator: "\n" + indentation)
            } else {
                result = lines.removeFirst()
                if !lines.isEmpty {
                    result += "\n" + lines.map { $0.isEmpty ? $0 : indentation + $0 }.joined(separator: "\n")
                }
            }
            if slots[1]?.isTruthy ?? false { result = indentation + result }
            return .string(result)
        case "int":
            let slots = try bind(["default", "base"])
            let fallback = slots[0] ?? .int(0)
            let base = try slots[1].map { try integerArgument($0) } ?? 10
            switch input {
            case .undefined(let reason): throw reason.error
            case .bool, .int: return .int(Operations.integer(input)!)
            case .double(let double):
                if double.isNaN { return fallback }
                guard double.isFinite, let truncated = Int(exactly: double.rounded(.towardZero)) else {
                    throw ChatTemplateError(.type, "cannot convert float infinity to integer")
                }
                return .int(truncated)
            case .string(let text):
                if let parsed = PythonText.parseInt(text, base: base) { return .int(parsed) }
                if let double = PythonText.parseFloat(text), double.isFinite,
                    let truncated = Int(exactly: double.rounded(.towardZero))
                {
                    return .int(truncated)
                }
                return fallback
            default:
                return fallback
            }
        case "items":
            _ = try bind([])
            switch input {
            case .undefined: return .iterator(IteratorObject([]))
            case .dict(let dictionary):
                return .iterator(IteratorObject(dictionary.entries.map { .tuple([$0.key, $0.value]) }))
            default: throw Operations.typeError("Can only get item pairs from a mapping.")
            }
        case "join":
            let slots = try bind(["d", "attribute"])
            var items = try Operations.iterate(input)
            if let attribute = slots[1], !isNone(attribute) {
                items = try items.map { try attributeGetter(attribute)($0) }
            }
            let separator = slots[0]?.pythonString ?? ""
            let parts = items.map(\.pythonString)
            try Operations.checkStringBytes(parts.reduce(0) { $0 + $1.utf8.count } + max(0, parts.count - 1) * separator.utf8.count, "join")
            return .string(parts.joined(separator: separator))
        case "list":
            _ = try bind([])
            return .list(try Operations.iterate(input))
        case "lower":
            _ = try bind([])
            return .string(PythonText.lower(input.pythonString))
        case "upper":
            _ = try bind([])
            return .string(PythonText.upper(input.pythonString))
        case "map":
            return try map(input, arguments, keywords, interpreter: interpreter)
        case "max", "min":
            let slots = try bind(["case_sensitive", "attribute"])
            let items = try Operations.iterate(input)
            guard var best = items.first else { return .undefined(.hint("No aggregated item, sequence was empty.")) }
            let caseSensitive = slots[0]?.isTruthy ?? false
            let getter = try attributeGetter(slots[1] ?? .none)
            func key(_ item: Value) throws -> Value {
                let raw = try getter(item)
                return caseSensitive ? raw : ignoreCase(raw)
            }
            var bestKey = try key(best)
            for item in items.dropFirst() {
                let itemKey = try key(item)
                // Python's max/min compare `item > best` / `item < best`.
                let better = try Operations.ordered(name == "max" ? .greater : .less, itemKey, bestKey)
                if better {
                    best = item
                    bestKey = itemKey
                }
            }
            return best
        case "reject", "select", "rejectattr", "selectattr":
            return try selectOrReject(
                name, input, arguments, keywords, interpreter: interpreter,
                keep: name.hasPrefix("select"), lookupAttribute: name.hasSuffix("attr"))
        case "replace":
            let slots = try bind(["old", "new", "count"], required: 2)
            let count = try slots[2].flatMap { isNone($0) ? nil : try integerArgument($0) } ?? -1
            return .string(try PythonText.replace(input.pythonString, slots[0]!.pythonString, slots[1]!.pythonString, count: count))
        case "reverse":
            _ = try bind([])
            switch input {
            case .string(let text): return .string(PythonText.string(text.unicodeScalars.reversed()))
            case .list(let items), .tuple(let items):
                return .iterator(IteratorObject(items.reversed(), typeName: "list_reverseiterator"))
            case .dict(let dictionary):
                return .iterator(IteratorObject(dictionary.keys.reversed(), typeName: "dict_reversekeyiterator"))
            case .undefined: return .iterator(IteratorObject([], typeName: "reversed"))
            case .iterator(let iterator): return .list(iterator.drain().reversed())
            default: throw ChatTemplateError(.runtime, "argument must be iterable")
            }
        case "round":
            let slots = try bind(["precision", "method"])
            let precision = try slots[0].map { try integerArgument($0) } ?? 0
            let method = slots[1]?.pythonString ?? "common"
            guard ["common", "ceil", "floor"].contains(method) else {
                throw ChatTemplateError(.runtime, "method must be common, ceil or floor")
            }
            guard let number = Operations.number(input) else {
                throw Operations.typeError("type \(input.typeName) doesn't define __round__ method")
            }
            if method == "common" {
                switch number {
                case .int(let integer):
                    if precision >= 0 { return .int(integer) }
                    let rounded = PythonText.round(Double(integer), digits: precision)
                    return .int(Int(exactly: rounded) ?? integer)
                case .double(let double):
                    return .double(PythonText.round(double, digits: precision))
                }
            }
            let scale = Double.pow10(precision)
            let scaled = number.doubleValue * scale
            let rounded = method == "ceil" ? scaled.rounded(.up) : scaled.rounded(.down)
            return .double(rounded / scale)
        case "safe":
            _ = try bind([])
            return .string(input.pythonString)
        case "slice":
            let slots = try bind(["slices", "fill_with"], required: 1)
            let sliceCount = try integerArgument(slots[0]!)
            try Operations.checkWidth(sliceCount, "slice")
            let items = try Operations.iterate(input)
            guard sliceCount > 0 else { return .iterator(IteratorObject([])) }
            let perSlice = items.count / sliceCount
            let withExtra = items.count % sliceCount
            var offset = 0
            var result: [Value] = []
            for number in 0..<sliceCount {
                let start = offset + number * perSlice
                if number < withExtra { offset += 1 }
                let end = offset + (number + 1) * perSlice
                var part = Array(items[start..<end])
                if let fill = slots[1], !isNone(fill), number >= withExtra { part.append(fill) }
                result.append(.list(part))
            }
            return .iterator(IteratorObject(result))
        case "sort":
            let slots = try bind(["reverse", "case_sensitive", "attribute"])
            var items = try Operations.iterate(input)
            let caseSensitive = slots[1]?.isTruthy ?? false
            let getters: [(Value) throws -> Value]
            if let attribute = slots[2], case .string(let text) = attribute {
                getters = try PythonText.split(text, separator: ",").map { try attributeGetter(.string($0)) }
            } else {
                getters = [try attributeGetter(slots[2] ?? .none)]
            }
            func key(_ item: Value) throws -> Value {
                .list(try getters.map { getter in
                    let raw = try getter(item)
                    return caseSensitive ? raw : ignoreCase(raw)
                })
            }
            let keys = try items.map(key)
            var indexed = Array(zip(keys, items))
            try stableSort(&indexed, reverse: slots[0]?.isTruthy ?? false) { try Operations.lessThan($0.0, $1.0) }
            items = indexed.map(\.1)
            return .list(items)
        case "string":
            _ = try bind([])
            return .string(input.pythonString)
        case "sum":
            let slots = try bind(["attribute", "start"])
            var total = slots[1] ?? .int(0)
            let getter = try attributeGetter(slots[0] ?? .none)
            for item in try Operations.iterate(input) { total = try Operations.binary(.add, total, try getter(item)) }
            return total
        case "title":
            _ = try bind([])
            return .string(jinjaTitle(input.pythonString))
        case "tojson":
            let slots = try bind(["ensure_ascii", "indent", "separators", "sort_keys"])
            var options = JSONDumpOptions()
            options.ensureASCII = slots[0]?.isTruthy ?? false
            if let indent = slots[1], !isNone(indent) {
                if case .string(let text) = indent {
                    options.indent = text
                } else {
                    let spaces = try integerArgument(indent)
                    try Operations.checkWidth(spaces, "tojson indent")
                    options.indent = String(repeating: " ", count: max(0, spaces))
                }
            }
            if let separators = slots[2], !isNone(separators) {
                let parts = try Operations.iterate(separators)
                guard parts.count == 2, case .string(let item) = parts[0], case .string(let key) = parts[1] else {
                    throw Operations.typeError("separators must be a pair of strings")
                }
                options.itemSeparator = item
                options.keySeparator = key
            }
            options.sortKeys = slots[3]?.isTruthy ?? false
            return .string(try JSONDumper(options: options).dump(input))
        case "trim":
            let slots = try bind(["chars"])
            var chars: String? = nil
            if let value = slots[0], !isNone(value) { chars = value.pythonString }
            return .string(PythonText.strip(input.pythonString, chars: chars, leading: true, trailing: true))
        case "truncate":
            let slots = try bind(["length", "killwords", "end", "leeway"])
            let length = try slots[0].map { try integerArgument($0) } ?? 255
            let end = slots[2]?.pythonString ?? "..."
            let leeway = try slots[3].flatMap { isNone($0) ? nil : try integerArgument($0) } ?? 5
            let endLength = PythonText.length(end)
            guard length >= endLength else { throw ChatTemplateError(.runtime, "expected length >= \(endLength), got \(length)") }
            guard leeway >= 0 else { throw ChatTemplateError(.runtime, "expected leeway >= 0, got \(leeway)") }
            if try Operations.length(input) <= length + leeway { return input }
            guard case .string(let text) = input else {
                throw Operations.typeError("'\(input.typeName)' object has no attribute 'rsplit'")
            }
            let scalars = PythonText.scalars(text)
            let kept = PythonText.string(scalars.prefix(length - endLength))
            if slots[1]?.isTruthy ?? false { return .string(kept + end) }
            return .string(PythonText.rsplit(kept, separator: " ", maxSplit: 1)[0] + end)
        case "unique":
            let slots = try bind(["case_sensitive", "attribute"])
            let caseSensitive = slots[0]?.isTruthy ?? false
            let getter = try attributeGetter(slots[1] ?? .none)
            var seen: [Value] = []
            var result: [Value] = []
            for item in try Operations.iterate(input) {
                var key = try getter(item)
                if !caseSensitive { key = ignoreCase(key) }
                switch key {
                case .list, .dict, .namespace: throw Operations.typeError("unhashable type: '\(key.typeName)'")
                default: break
                }
                if !seen.contains(where: { Operations.equals($0, key) }) {
                    seen.append(key)
                    result.append(item)
                }
            }
            return .iterator(IteratorObject(result))
        case "wordcount":
            _ = try bind([])
            var count = 0
            var inWord = false
            for scalar in input.pythonString.unicodeScalars {
                let isWordCharacter = scalar == "_" || PythonText.isAlpha(scalar) || PythonText.isNumeric(scalar)
                if isWordCharacter && !inWord { count += 1 }
                inWord = isWordCharacter
            }
            return .int(count)
        default:
            throw ChatTemplateError(.runtime, "No filter named '\(name)' found.")
        }
    }

    // MARK: - Helpers

    static func isNone(_ value: Value) -> Bool {
        if case .none = value { return true }
        return false
    }

    static func integerArgument(_ value: Value) throws -> Int {
        guard let integer = Operations.integer(value) else {
            throw Operations.typeError("'\(value.typeName)' object cannot be interpreted as an integer")
        }
        return integer
    }

    /// jinja2's `ignore_case` postprocessor: lowercase strings, leave others.
    static func ignoreCase(_ value: Value) -> Value {
        if case .string(let text) = value { return .string(PythonText.lower(text)) }
        return value
    }

    /// jinja2's `make_attrgetter`: dotted path of attributes/indices looked up with `getitem`.
    static func attributeGetter(_ attribute: Value, default defaultValue: Value? = nil) throws -> (Value) throws -> Value {
        let parts: [Value]
        switch attribute {
        case .none: parts = []
        case .string(let text):
            parts = PythonText.split(text, separator: ".").map { part in
                if !part.isEmpty, part.unicodeScalars.allSatisfy({ PythonText.isDigit($0) }), let index = Int(part) {
                    return .int(index)
                }
                return .string(part)
            }
        default: parts = [attribute]
        }
        return { item in
            var current = item
            for part in parts {
                current = try Operations.item(current, part)
                if let defaultValue, current.isUndefined { current = defaultValue }
            }
            return current
        }
    }

    /// Python's `sorted(..., reverse=)`: stable, equal elements keep their order in both directions.
    static func stableSort<T>(_ items: inout [T], reverse: Bool, by less: (T, T) throws -> Bool) throws {
        var indexed = Array(items.enumerated())
        try indexed.sort { a, b in
            let ordered = reverse ? try less(b.element, a.element) : try less(a.element, b.element)
            if ordered { return true }
            let opposite = reverse ? try less(a.element, b.element) : try less(b.element, a.element)
            if opposite { return false }
            return a.offset < b.offset
        }
        items = indexed.map(\.element)
    }

    static func htmlEscape(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&#34;"
            case "'": result += "&#39;"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// jinja2's `title` filter: split on runs of `-`, whitespace, `(`, `{`, `[`, `<` (kept), and
    /// uppercase the first character / lowercase the rest of every piece.
    static func jinjaTitle(_ text: String) -> String {
        func isSeparator(_ scalar: Unicode.Scalar) -> Bool {
            PythonText.isWhitespace(scalar) || "-({[<".unicodeScalars.contains(scalar)
        }
        var result = ""
        var piece: [Unicode.Scalar] = []
        var pieceIsSeparator = false
        func flush() {
            guard let first = piece.first else { return }
            result += PythonText.upper(String(first)) + PythonText.lower(PythonText.string(piece.dropFirst()))
            piece = []
        }
        for scalar in text.unicodeScalars {
            let separator = isSeparator(scalar)
            if !piece.isEmpty && separator != pieceIsSeparator { flush() }
            pieceIsSeparator = separator
            piece.append(scalar)
        }
        flush()
        return result
    }

    private static func map(
        _ input: Value, _ arguments: [Value], _ keywords: [(String, Value)], interpreter: Interpreter
    ) throws -> Value {
        guard input.isTruthy else { return .iterator(IteratorObject([])) }
        let function: (Value) throws -> Value
        if arguments.isEmpty, let attribute = keywords.first(where: { $0.0 == "attribute" })?.1 {
            let defaultValue = keywords.first(where: { $0.0 == "default" })?.1
            if let unexpected = keywords.first(where: { $0.0 != "attribute" && $0.0 != "default" }) {
                throw ChatTemplateError(.runtime, "Unexpected keyword argument '\(unexpected.0)'")
            }
            function = try attributeGetter(attribute, default: defaultValue.flatMap { isNone($0) ? nil : $0 })
        } else {
            guard let filterName = arguments.first else {
                throw ChatTemplateError(.runtime, "map requires a filter argument")
            }
            let name = filterName.pythonString
            let rest = Array(arguments.dropFirst())
            function = { item in try apply(name, item, rest, keywords, interpreter: interpreter) }
        }
        return .iterator(IteratorObject(try Operations.iterate(input).map(function)))
    }

    private static func selectOrReject(
        _ name: String, _ input: Value, _ arguments: [Value], _ keywords: [(String, Value)], interpreter: Interpreter,
        keep: Bool, lookupAttribute: Bool
    ) throws -> Value {
        guard input.isTruthy else { return .iterator(IteratorObject([])) }
        var offset = 0
        var transform: (Value) throws -> Value = { $0 }
        if lookupAttribute {
            guard let attribute = arguments.first else {
                throw ChatTemplateError(.runtime, "Missing parameter for attribute name")
            }
            transform = try attributeGetter(attribute)
            offset = 1
        }
        let predicate: (Value) throws -> Bool
        if arguments.count > offset {
            let testName = arguments[offset].pythonString
            let testArguments = Array(arguments.dropFirst(offset + 1))
            predicate = { value in try BuiltinTests.apply(testName, value, testArguments, keywords, interpreter: interpreter) }
        } else {
            predicate = { $0.isTruthy }
        }
        var result: [Value] = []
        for item in try Operations.iterate(input) where try predicate(try transform(item)) == keep {
            result.append(item)
        }
        return .iterator(IteratorObject(result))
    }
}

extension Double {
    /// 10^exponent as jinja2 computes it for `round(method=ceil/floor)` (`10**precision`).
    static func pow10(_ exponent: Int) -> Double {
        var result = 1.0
        if exponent >= 0 {
            for _ in 0..<min(exponent, 400) { result *= 10 }
        } else {
            for _ in 0..<min(-exponent, 400) { result /= 10 }
        }
        return result
    }
}
