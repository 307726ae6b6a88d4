/// Python's `json.dumps`, `%`-formatting and `str.format`, as far as templates use them.

struct JSONDumpOptions {
    /// nil: single line. Otherwise each nesting level is indented by this string.
    var indent: String? = nil
    /// Defaults follow Python: ", " without indent, "," with indent.
    var itemSeparator: String? = nil
    var keySeparator: String = ": "
    var ensureASCII = false
    var sortKeys = false
}

/// `json.dumps` with Python's formatting (float repr, separators, indentation, escaping).
struct JSONDumper {
    let options: JSONDumpOptions

    func dump(_ value: Value) throws -> String {
        var output = ""
        try write(value, level: 0, into: &output)
        return output
    }

    private var itemSeparator: String {
        options.itemSeparator ?? (options.indent == nil ? ", " : ",")
    }

    private func write(_ value: Value, level: Int, into output: inout String) throws {
        switch value {
        case .none: output += "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .int(let number): output += String(number)
        case .double(let number):
            if number.isNaN {
                output += "NaN"
            } else if number.isInfinite {
                output += number < 0 ? "-Infinity" : "Infinity"
            } else {
                output += PythonText.floatRepr(number)
            }
        case .string(let text): writeString(text, into: &output)
        case .list(let items), .tuple(let items):
            if items.isEmpty {
                output += "[]"
                return
            }
            output += "["
            let separator = try openIndent(level: level + 1, into: &output)
            for (index, item) in items.enumerated() {
                if index > 0 { output += separator }
                try write(item, level: level + 1, into: &output)
            }
            closeIndent(level: level, into: &output)
            output += "]"
        case .dict(let dictionary):
            if dictionary.isEmpty {
                output += "{}"
                return
            }
            output += "{"
            let separator = try openIndent(level: level + 1, into: &output)
            var entries = try dictionary.entries.map { (key: try jsonKey($0.key), value: $0.value) }
            if options.sortKeys { entries.sort { PythonText.less($0.key, $1.key) } }
            for (index, entry) in entries.enumerated() {
                if index > 0 { output += separator }
                writeString(entry.key, into: &output)
                output += options.keySeparator
                try write(entry.value, level: level + 1, into: &output)
            }
            closeIndent(level: level, into: &output)
            output += "}"
        case .undefined, .namespace, .callable, .iterator, .loop:
            throw ChatTemplateError(.type, "Object of type \(value.typeName) is not JSON serializable")
        }
    }

    /// Python converts str, int, float, bool and None keys to JSON strings.
    private func jsonKey(_ key: Value) throws -> String {
        switch key {
        case .string(let text): return text
        case .int(let number): return String(number)
        case .double(let number):
            if number.isNaN { return "NaN" }
            if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
            return PythonText.floatRepr(number)
        case .bool(let flag): return flag ? "true" : "false"
        case .none: return "null"
        default:
            throw ChatTemplateError(.type, "keys must be str, int, float, bool or None, not \(key.typeName)")
        }
    }

    /// Writes the newline+indent after an opening bracket; returns the separator between items.
    private func openIndent(level: Int, into output: inout String) throws -> String {
        guard let indent = options.indent else { return itemSeparator }
        if level > 512 { throw ChatTemplateError(.runtime, "JSON value nested too deeply") }
        let newlineIndent = "\n" + String(repeating: indent, count: level)
        output += newlineIndent
        return itemSeparator + newlineIndent
    }

    private func closeIndent(level: Int, into output: inout String) {
        guard let indent = options.indent else { return }
        output += "\n" + String(repeating: indent, count: level)
    }

    private func writeString(_ text: String, into output: inout String) {
        output.unicodeScalars.append("\"")
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            default:
                if scalar.value < 0x20 {
                    output += "\\u" + PythonText.hex(scalar.value, width: 4)
                } else if options.ensureASCII && scalar.value > 0x7E {
                    if scalar.value > 0xFFFF {
                        let offset = scalar.value - 0x10000
                        output += "\\u" + PythonText.hex(0xD800 + (offset >> 10), width: 4)
                        output += "\\u" + PythonText.hex(0xDC00 + (offset & 0x3FF), width: 4)
                    } else {
                        output += "\\u" + PythonText.hex(scalar.value, width: 4)
                    }
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output.unicodeScalars.append("\"")
    }
}

enum Formatting {
    /// Widths and precisions beyond this are refused (they would only build enormous strings).
    static let maximumFieldSize = 100_000

    static func checkFieldSize(_ size: Int) throws {
        if size > maximumFieldSize {
            throw ChatTemplateError(.type, "Too many decimal digits in format string")
        }
    }

    // MARK: - printf-style `%`

    private struct PercentSpec {
        var leftAlign = false
        var sign: Character? = nil  // "+" or " "
        var alternate = false
        var zeroPad = false
        var width = 0
        var precision: Int? = nil
    }

    /// Python `format % values` (used by the `format` filter and the `%` operator on strings).
    static func percentFormat(_ format: String, _ values: Value) throws -> String {
        var positional: [Value]
        var mapping: ValueDictionary? = nil
        switch values {
        case .tuple(let items): positional = items
        case .dict(let dictionary):
            positional = [values]
            mapping = dictionary
        default: positional = [values]
        }
        var nextArgument = 0
        var usedMapping = false
        func takeArgument() throws -> Value {
            guard nextArgument < positional.count else {
                throw ChatTemplateError(.type, "not enough arguments for format string")
            }
            defer { nextArgument += 1 }
            return positional[nextArgument]
        }
        let scalars = PythonText.scalars(format)
        var output = ""
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            guard scalar == "%" else {
                output.unicodeScalars.append(scalar)
                index += 1
                continue
            }
            index += 1
            guard index < scalars.count else { throw ChatTemplateError(.type, "incomplete format") }
            var argument: Value? = nil
            if scalars[index] == "(" {
                if case .undefined(let reason) = values { throw reason.error }
                guard let mapping else { throw ChatTemplateError(.type, "format requires a mapping") }
                var depth = 1
                var end = index + 1
                while end < scalars.count {
                    if scalars[end] == "(" { depth += 1 }
                    if scalars[end] == ")" {
                        depth -= 1
                        if depth == 0 { break }
                    }
                    end += 1
                }
                guard end < scalars.count else { throw ChatTemplateError(.type, "incomplete format key") }
                let key = PythonText.string(scalars[(index + 1)..<end])
                guard let value = mapping[key] else { throw ChatTemplateError(.type, PythonText.repr(key)) }
                argument = value
                usedMapping = true
                index = end + 1
            }
            var spec = PercentSpec()
            flags: while index < scalars.count {
                switch scalars[index] {
                case "-": spec.leftAlign = true
                case "+": spec.sign = "+"
                case " ": if spec.sign == nil { spec.sign = " " }
                case "#": spec.alternate = true
                case "0": spec.zeroPad = true
                default: break flags
                }
                index += 1
            }
            if index < scalars.count, scalars[index] == "*" {
                guard let width = Operations.integer(try takeArgument()) else {
                    throw ChatTemplateError(.type, "* wants int")
                }
                if width < 0 { spec.leftAlign = true }
                spec.width = Int(clamping: width.magnitude)
                try checkFieldSize(spec.width)
                index += 1
            } else {
                while index < scalars.count, let digit = Int(String(scalars[index])), scalars[index].isASCII {
                    spec.width = spec.width * 10 + digit
                    try checkFieldSize(spec.width)
                    index += 1
                }
            }
            if index < scalars.count, scalars[index] == "." {
                index += 1
                if index < scalars.count, scalars[index] == "*" {
                    guard let precision = Operations.integer(try takeArgument()) else {
                        throw ChatTemplateError(.type, "* wants int")
                    }
                    spec.precision = max(0, precision)
                    try checkFieldSize(precision)
                    index += 1
                } else {
                    var precision = 0
                    while index < scalars.count, let digit = Int(String(scalars[index])), scalars[index].isASCII {
                        precision = precision * 10 + digit
                        try checkFieldSize(precision)
                        index += 1
                    }
                    spec.precision = precision
                }
            }
            while index < scalars.count, "hlL".unicodeScalars.contains(scalars[index]) { index += 1 }
            guard index < scalars.count else { throw ChatTemplateError(.type, "incomplete format") }
            let conversion = scalars[index]
            index += 1
            if conversion == "%" {
                output += "%"
                continue
            }
            let value = try argument ?? takeArgument()
            output += try formatPercentValue(value, conversion: conversion, spec: spec)
        }
        // CPython skips this check when the argument is any non-tuple, non-str "mapping" (lists included).
        var mappingLike = mapping != nil
        switch values {
        case .list, .undefined: mappingLike = true
        default: break
        }
        if !usedMapping && nextArgument < positional.count && !mappingLike {
            throw ChatTemplateError(.type, "not all arguments converted during string formatting")
        }
        return output
    }

    private static func pad(_ body: String, _ spec: PercentSpec, numeric: Bool) -> String {
        let length = PythonText.length(body)
        guard spec.width > length else { return body }
        let padding = spec.width - length
        if spec.leftAlign { return body + String(repeating: " ", count: padding) }
        if numeric && spec.zeroPad {
            var digits = body
            var prefix = ""
            if let first = digits.first, first == "-" || first == "+" || first == " " {
                prefix = String(first)
                digits.removeFirst()
            }
            if digits.hasPrefix("0x") || digits.hasPrefix("0X") || digits.hasPrefix("0o") {
                prefix += String(digits.prefix(2))
                digits.removeFirst(2)
            }
            return prefix + String(repeating: "0", count: padding) + digits
        }
        return String(repeating: " ", count: padding) + body
    }

    private static func formatPercentValue(_ value: Value, conversion: Unicode.Scalar, spec: PercentSpec) throws
        -> String
    {
        switch conversion {
        case "s", "r", "a":
            var text = conversion == "s" ? value.pythonString : value.repr
            if let precision = spec.precision { text = PythonText.string(PythonText.scalars(text).prefix(precision)) }
            return pad(text, spec, numeric: false)
        case "d", "i", "u", "x", "X", "o":
            let integer: Int
            switch Operations.number(value) {
            case .int(let number)?: integer = number
            case .double(let number)?:
                guard number.isFinite, let truncated = Int(exactly: number.rounded(.towardZero)) else {
                    throw ChatTemplateError(.type, "cannot convert float to integer")
                }
                integer = truncated
            case nil:
                throw ChatTemplateError(
                    .type, "%\(conversion) format: a real number is required, not \(value.typeName)")
            }
            let radix = conversion == "x" || conversion == "X" ? 16 : conversion == "o" ? 8 : 10
            var digits = String(integer.magnitude, radix: radix, uppercase: conversion == "X")
            if let precision = spec.precision, digits.count < precision {
                digits = String(repeating: "0", count: precision - digits.count) + digits
            }
            if spec.alternate && radix != 10 { digits = (radix == 16 ? (conversion == "X" ? "0X" : "0x") : "0o") + digits }
            let sign = integer < 0 ? "-" : spec.sign.map(String.init) ?? ""
            return pad(sign + digits, spec, numeric: true)
        case "f", "F", "e", "E", "g", "G":
            guard let number = Operations.number(value) else {
                throw ChatTemplateError(.type, "must be real number, not \(value.typeName)")
            }
            var format = "%"
            if spec.alternate { format += "#" }
            if let sign = spec.sign { format.append(sign) }
            format += ".\(spec.precision ?? 6)" + String(conversion)
            let body = PythonText.cFormat(format, number.doubleValue)
            return pad(body, spec, numeric: true)
        case "c":
            if case .string(let text) = value, PythonText.length(text) == 1 { return pad(text, spec, numeric: false) }
            guard let code = Operations.integer(value), let scalar = Unicode.Scalar(UInt32(clamping: max(0, code))) else {
                throw ChatTemplateError(.type, "%c requires int or char")
            }
            return pad(String(scalar), spec, numeric: false)
        default:
            throw ChatTemplateError(
                .type, "unsupported format character \(PythonText.repr(String(conversion))) (0x\(PythonText.hex(conversion.value, width: 1)))")
        }
    }

    // MARK: - str.format

    /// Python `format.format(*args, **kwargs)` with the common format-spec features.
    static func braceFormat(_ format: String, _ arguments: [Value], _ keywords: [(String, Value)]) throws -> String {
        let scalars = PythonText.scalars(format)
        var output = ""
        var index = 0
        var autoIndex = 0
        var usedManualIndex = false
        func resolve(_ field: String) throws -> Value {
            // field_name: (digits | identifier | "") ("." name | "[" key "]")*
            let parts = PythonText.scalars(field)
            var cursor = 0
            var head = ""
            while cursor < parts.count, parts[cursor] != ".", parts[cursor] != "[" {
                head.unicodeScalars.append(parts[cursor])
                cursor += 1
            }
            var value: Value
            if head.isEmpty {
                if usedManualIndex {
                    throw ChatTemplateError(.type, "cannot switch from manual field specification to automatic field numbering")
                }
                guard autoIndex < arguments.count else {
                    throw ChatTemplateError(.type, "Replacement index \(autoIndex) out of range for positional args tuple")
                }
                value = arguments[autoIndex]
                autoIndex += 1
            } else if head.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }), let position = Int(head) {
                usedManualIndex = true
                guard position < arguments.count else {
                    throw ChatTemplateError(.type, "Replacement index \(position) out of range for positional args tuple")
                }
                value = arguments[position]
            } else {
                guard let found = keywords.last(where: { $0.0 == head }) else {
                    throw ChatTemplateError(.type, PythonText.repr(head))
                }
                value = found.1
            }
            while cursor < parts.count {
                if parts[cursor] == "." {
                    cursor += 1
                    var name = ""
                    while cursor < parts.count, parts[cursor] != ".", parts[cursor] != "[" {
                        name.unicodeScalars.append(parts[cursor])
                        cursor += 1
                    }
                    value = try Operations.attribute(value, name)
                } else {
                    cursor += 1
                    var key = ""
                    while cursor < parts.count, parts[cursor] != "]" {
                        key.unicodeScalars.append(parts[cursor])
                        cursor += 1
                    }
                    cursor += 1
                    let isIndex = !key.isEmpty && key.unicodeScalars.allSatisfy { ("0"..."9").contains($0) }
                    value = try Operations.item(value, isIndex ? (Int(key).map { .int($0) } ?? .string(key)) : .string(key))
                }
            }
            return value
        }
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "}" {
                guard index + 1 < scalars.count, scalars[index + 1] == "}" else {
                    throw ChatTemplateError(.type, "Single '}' encountered in format string")
                }
                output += "}"
                index += 2
                continue
            }
            guard scalar == "{" else {
                output.unicodeScalars.append(scalar)
                index += 1
                continue
            }
            if index + 1 < scalars.count, scalars[index + 1] == "{" {
                output += "{"
                index += 2
                continue
            }
            // Replacement field up to the matching "}" (nested fields allowed in the spec).
            var depth = 1
            var end = index + 1
            while end < scalars.count {
                if scalars[end] == "{" { depth += 1 }
                if scalars[end] == "}" {
                    depth -= 1
                    if depth == 0 { break }
                }
                end += 1
            }
            guard end < scalars.count else {
                throw ChatTemplateError(.type, "expected '}' before end of string")
            }
            let content = PythonText.scalars(PythonText.string(scalars[(index + 1)..<end]))
            index = end + 1
            var fieldEnd = 0
            var bracketDepth = 0
            while fieldEnd < content.count {
                let c = content[fieldEnd]
                if c == "[" { bracketDepth += 1 }
                if c == "]" { bracketDepth -= 1 }
                if bracketDepth == 0 && (c == "!" || c == ":") { break }
                fieldEnd += 1
            }
            var value = try resolve(PythonText.string(content[0..<fieldEnd]))
            var cursor = fieldEnd
            if cursor < content.count, content[cursor] == "!" {
                guard cursor + 1 < content.count else {
                    throw ChatTemplateError(.type, "end of string while looking for conversion specifier")
                }
                let conversion = content[cursor + 1]
                switch conversion {
                case "r", "a": value = .string(value.repr)
                case "s": value = .string(value.pythonString)
                default:
                    throw ChatTemplateError(.type, "Unknown conversion specifier \(String(conversion))")
                }
                cursor += 2
            }
            var spec = ""
            if cursor < content.count, content[cursor] == ":" {
                spec = try braceFormat(PythonText.string(content[(cursor + 1)...]), arguments, keywords)
            }
            output += try formatSpec(value, spec)
        }
        return output
    }

    /// Python's format-spec mini-language: `[[fill]align][sign][#][0][width][,_][.precision][type]`.
    static func formatSpec(_ value: Value, _ spec: String) throws -> String {
        if spec.isEmpty {
            return value.pythonString
        }
        let scalars = PythonText.scalars(spec)
        var index = 0
        var fill: Unicode.Scalar = " "
        var align: Unicode.Scalar? = nil
        if scalars.count >= 2, "<>=^".unicodeScalars.contains(scalars[1]) {
            fill = scalars[0]
            align = scalars[1]
            index = 2
        } else if let first = scalars.first, "<>=^".unicodeScalars.contains(first) {
            align = first
            index = 1
        }
        var sign: Unicode.Scalar = "-"
        if index < scalars.count, "+- ".unicodeScalars.contains(scalars[index]) {
            sign = scalars[index]
            index += 1
        }
        var alternate = false
        if index < scalars.count, scalars[index] == "#" {
            alternate = true
            index += 1
        }
        if index < scalars.count, scalars[index] == "0" {
            if align == nil {
                fill = "0"
                align = "="
            }
            index += 1
        }
        var width = 0
        while index < scalars.count, scalars[index].isASCII, let digit = Int(String(scalars[index])) {
            width = width * 10 + digit
            try checkFieldSize(width)
            index += 1
        }
        var grouping: Unicode.Scalar? = nil
        if index < scalars.count, scalars[index] == "," || scalars[index] == "_" {
            grouping = scalars[index]
            index += 1
        }
        var precision: Int? = nil
        if index < scalars.count, scalars[index] == "." {
            index += 1
            var digits = 0
            var sawDigit = false
            while index < scalars.count, scalars[index].isASCII, let digit = Int(String(scalars[index])) {
                digits = digits * 10 + digit
                try checkFieldSize(digits)
                index += 1
                sawDigit = true
            }
            guard sawDigit else { throw ChatTemplateError(.type, "Format specifier missing precision") }
            precision = digits
        }
        var type: Unicode.Scalar? = nil
        if index < scalars.count {
            type = scalars[index]
            index += 1
        }
        guard index == scalars.count else { throw ChatTemplateError(.type, "Invalid format specifier '\(spec)'") }

        var body: String
        var numeric = false
        var signPrefix = ""
        switch value {
        case .string(let text):
            guard type == nil || type == "s" else {
                throw ChatTemplateError(.type, "Unknown format code '\(String(type!))' for object of type 'str'")
            }
            body = precision.map { PythonText.string(PythonText.scalars(text).prefix($0)) } ?? text
        case .int, .bool, .double:
            numeric = true
            let number = Operations.number(value)!
            var magnitude: String
            let negative: Bool
            switch (number, type) {
            case (.int(let integer), nil), (.int(let integer), "d"?), (.int(let integer), "n"?):
                if case .bool(let flag) = value, type == nil { return try formatSpec(.string(flag ? "True" : "False"), spec) }
                negative = integer < 0
                magnitude = String(integer.magnitude)
            case (.int(let integer), "x"?), (.int(let integer), "X"?), (.int(let integer), "o"?), (.int(let integer), "b"?):
                negative = integer < 0
                let radix = type == "o" ? 8 : type == "b" ? 2 : 16
                magnitude = String(integer.magnitude, radix: radix, uppercase: type == "X")
                if alternate { magnitude = (type == "o" ? "0o" : type == "b" ? "0b" : type == "X" ? "0X" : "0x") + magnitude }
            case (.int(let integer), "c"?):
                guard let scalar = Unicode.Scalar(UInt32(clamping: max(0, integer))) else {
                    throw ChatTemplateError(.type, "%c arg not in range")
                }
                negative = false
                magnitude = String(scalar)
                numeric = false
            case (_, nil) where precision == nil:
                let double = number.doubleValue
                negative = double.sign == .minus
                magnitude = PythonText.floatRepr(abs(double))
            case (_, let code):
                let double = number.doubleValue
                negative = double.sign == .minus && !(double == 0 && code == nil)
                var cType = code.map { String($0) } ?? "g"
                if cType == "n" { cType = "g" }
                if cType == "%" {
                    magnitude = PythonText.cFormat("%.\(precision ?? 6)f", abs(double) * 100) + "%"
                } else if "eEfFgG".contains(cType) {
                    magnitude = PythonText.cFormat("%\(alternate ? "#" : "").\(precision ?? 6)\(cType)", abs(double))
                    // No type with a precision: like 'g', but positional results keep one decimal digit.
                    if code == nil && double.isFinite && !magnitude.contains(".") && !magnitude.contains("e") {
                        magnitude += ".0"
                    }
                } else {
                    throw ChatTemplateError(.type, "Unknown format code '\(cType)' for object of type '\(value.typeName)'")
                }
            }
            if let grouping, numeric {
                let parts = magnitude.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
                var integerPart = String(parts[0])
                var grouped = ""
                while integerPart.count > 3 {
                    grouped = String(grouping) + String(integerPart.suffix(3)) + grouped
                    integerPart.removeLast(3)
                }
                magnitude = integerPart + grouped + (parts.count > 1 ? "." + parts[1] : "")
            }
            signPrefix = negative ? "-" : (sign == "+" ? "+" : sign == " " ? " " : "")
            body = magnitude
        case .none where type == nil && width == 0:
            return "None"
        default:
            throw ChatTemplateError(.type, "unsupported format string passed to \(value.typeName).__format__")
        }
        let contentLength = PythonText.length(signPrefix) + PythonText.length(body)
        let padding = max(0, width - contentLength)
        let fillText = String(repeating: String(fill), count: padding)
        switch align ?? (numeric ? ">" : "<") {
        case "<": return signPrefix + body + fillText
        case "^":
            let left = padding / 2
            return String(repeating: String(fill), count: left) + signPrefix + body
                + String(repeating: String(fill), count: padding - left)
        case "=": return signPrefix + fillText + body
        default: return fillText + signPrefix + body
        }
    }
}
