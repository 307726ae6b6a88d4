#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Python `str` semantics on Unicode scalars (Python strings are sequences of code points, while Swift's
/// `String` APIs work on grapheme clusters and canonical equivalence — both would change results).
enum PythonText {
    typealias Scalars = [Unicode.Scalar]

    static func scalars(_ text: String) -> Scalars { Array(text.unicodeScalars) }

    static func string<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    static func length(_ text: String) -> Int { text.unicodeScalars.count }

    /// Code-point equality (Swift's `==` on String uses canonical equivalence; Python does not).
    static func equal(_ lhs: String, _ rhs: String) -> Bool {
        lhs.unicodeScalars.elementsEqual(rhs.unicodeScalars)
    }

    /// Code-point ordering, as Python compares strings.
    static func less(_ lhs: String, _ rhs: String) -> Bool {
        lhs.unicodeScalars.lexicographicallyPrecedes(rhs.unicodeScalars) { $0.value < $1.value }
    }

    // MARK: - Character classes

    /// Python `str.isspace()` for one code point.
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Python line boundaries used by `str.splitlines()`.
    static func isLineBreak(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: return true
        default: return false
        }
    }

    /// Python `str.isprintable()` for one code point (used by `repr`).
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
            .spaceSeparator:
            return false
        default:
            return true
        }
    }

    static func isCased(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isLowercase || scalar.properties.isUppercase
            || scalar.properties.generalCategory == .titlecaseLetter
    }

    static func isAlpha(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isDecimal(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .decimalNumber
    }

    static func isDigit(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.numericType == .decimal || scalar.properties.numericType == .digit
    }

    static func isNumeric(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.numericType != nil
    }

    // MARK: - Case mapping

    static func upper(_ text: String) -> String { text.uppercased() }
    static func lower(_ text: String) -> String { text.lowercased() }

    static func titleCase(_ scalar: Unicode.Scalar) -> String { scalar.properties.titlecaseMapping }

    /// Python `str.title()`: title-case the first cased character of each run, lowercase the rest.
    static func title(_ text: String) -> String {
        var result = ""
        var previousCased = false
        for scalar in text.unicodeScalars {
            if previousCased {
                result += scalar.properties.lowercaseMapping
            } else {
                result += scalar.properties.titlecaseMapping
            }
            previousCased = isCased(scalar)
        }
        return result
    }

    /// Python `str.capitalize()`: first character title-cased, the rest lowercased.
    static func capitalize(_ text: String) -> String {
        var iterator = text.unicodeScalars.makeIterator()
        guard let first = iterator.next() else { return "" }
        var rest = String.UnicodeScalarView()
        while let scalar = iterator.next() { rest.append(scalar) }
        return first.properties.titlecaseMapping + String(rest).lowercased()
    }

    static func swapcase(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.isUppercase {
                result += scalar.properties.lowercaseMapping
            } else if scalar.properties.isLowercase {
                result += scalar.properties.uppercaseMapping
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    // MARK: - Strip / split / search

    /// Python `str.strip/lstrip/rstrip(chars)`; `chars == nil` strips whitespace.
    static func strip(_ text: String, chars: String?, leading: Bool, trailing: Bool) -> String {
        let scalars = Array(text.unicodeScalars)
        let set = chars.map { Set($0.unicodeScalars) }
        func strippable(_ scalar: Unicode.Scalar) -> Bool {
            if let set { return set.contains(scalar) }
            return isWhitespace(scalar)
        }
        var start = 0
        var end = scalars.count
        if leading { while start < end, strippable(scalars[start]) { start += 1 } }
        if trailing { while end > start, strippable(scalars[end - 1]) { end -= 1 } }
        return string(scalars[start..<end])
    }

    /// Index of `needle` in `haystack` within `[start, end)`, or -1 (Python `str.find`).
    static func find(_ haystack: Scalars, _ needle: Scalars, start: Int = 0, end: Int? = nil) -> Int {
        let limit = min(end ?? haystack.count, haystack.count)
        if needle.isEmpty { return start <= limit ? start : -1 }
        if needle.count > limit - start { return -1 }
        var index = max(start, 0)
        while index + needle.count <= limit {
            if haystack[index] == needle[0] {
                var matched = true
                for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                    matched = false
                    break
                }
                if matched { return index }
            }
            index += 1
        }
        return -1
    }

    /// Last index of `needle` within `[start, end)`, or -1 (Python `str.rfind`).
    static func rfind(_ haystack: Scalars, _ needle: Scalars, start: Int = 0, end: Int? = nil) -> Int {
        let limit = min(end ?? haystack.count, haystack.count)
        let lower = max(start, 0)
        if needle.isEmpty { return lower <= limit ? limit : -1 }
        var index = limit - needle.count
        while index >= lower {
            if Array(haystack[index..<index + needle.count]) == needle { return index }
            index -= 1
        }
        return -1
    }

    static func contains(_ haystack: String, _ needle: String) -> Bool {
        find(scalars(haystack), scalars(needle)) >= 0
    }

    /// Non-overlapping occurrence count (Python `str.count`).
    static func count(_ haystack: Scalars, _ needle: Scalars) -> Int {
        if needle.isEmpty { return haystack.count + 1 }
        var total = 0
        var index = 0
        while true {
            let found = find(haystack, needle, start: index)
            if found < 0 { return total }
            total += 1
            index = found + needle.count
        }
    }

    static func hasPrefix(_ text: String, _ prefix: String) -> Bool {
        text.unicodeScalars.starts(with: prefix.unicodeScalars)
    }

    static func hasSuffix(_ text: String, _ suffix: String) -> Bool {
        text.unicodeScalars.reversed().starts(with: suffix.unicodeScalars.reversed())
    }

    /// Python `str.replace(old, new, count)`; `count < 0` replaces all. The result is bounded
    /// (Operations.maximumRepetition scalars): an empty `old` or a long `new` can multiply the text.
    static func replace(_ text: String, _ old: String, _ new: String, count limit: Int = -1) throws -> String {
        let source = scalars(text)
        let target = scalars(old)
        let replacement = scalars(new)
        var result: Scalars = []
        var replaced = 0
        // Largest result: a replacement before every scalar and at the end (empty old), else one per
        // occurrence, each at least one scalar apart.
        let most = target.isEmpty ? source.count + 1 : source.count / target.count
        let (growth, o1) = (limit < 0 ? most : min(limit, most)).multipliedReportingOverflow(by: max(0, replacement.count - target.count))
        guard !o1, growth == 0 || source.count <= Operations.maximumRepetition - growth else {
            throw ChatTemplateError(.security, "replace would make a string of more than \(Operations.maximumRepetition) characters")
        }
        if target.isEmpty {
            // Python inserts `new` before every character and at the end.
            for scalar in source {
                if limit < 0 || replaced < limit {
                    result += replacement
                    replaced += 1
                }
                result.append(scalar)
            }
            if limit < 0 || replaced < limit { result += replacement }
            return string(result)
        }
        var index = 0
        while index < source.count {
            if limit >= 0 && replaced >= limit { break }
            let found = find(source, target, start: index)
            if found < 0 { break }
            result += source[index..<found]
            result += replacement
            index = found + target.count
            replaced += 1
        }
        result += source[index...]
        return string(result)
    }

    /// Python `str.split(sep, maxsplit)`.
    static func split(_ text: String, separator: String?, maxSplit: Int = -1) -> [String] {
        let source = scalars(text)
        var parts: [String] = []
        guard let separator else {
            // Whitespace splitting: runs of whitespace separate, no empty strings.
            var index = 0
            var splits = 0
            while index < source.count {
                while index < source.count, isWhitespace(source[index]) { index += 1 }
                if index >= source.count { break }
                if maxSplit >= 0 && splits >= maxSplit {
                    var end = source.count
                    while end > index, isWhitespace(source[end - 1]) { end -= 1 }
                    parts.append(string(source[index..<end]))
                    return parts
                }
                let start = index
                while index < source.count, !isWhitespace(source[index]) { index += 1 }
                parts.append(string(source[start..<index]))
                splits += 1
            }
            return parts
        }
        let target = scalars(separator)
        var index = 0
        var splits = 0
        while maxSplit < 0 || splits < maxSplit {
            let found = find(source, target, start: index)
            if found < 0 { break }
            parts.append(string(source[index..<found]))
            index = found + target.count
            splits += 1
        }
        parts.append(string(source[index...]))
        return parts
    }

    /// Python `str.rsplit(sep, maxsplit)`.
    static func rsplit(_ text: String, separator: String?, maxSplit: Int = -1) -> [String] {
        if maxSplit < 0 { return split(text, separator: separator) }
        let source = scalars(text)
        var parts: [String] = []
        guard let separator else {
            var end = source.count
            var splits = 0
            while end > 0 {
                while end > 0, isWhitespace(source[end - 1]) { end -= 1 }
                if end == 0 { break }
                if splits >= maxSplit {
                    var start = 0
                    while start < end, isWhitespace(source[start]) { start += 1 }
                    parts.append(string(source[start..<end]))
                    return parts.reversed()
                }
                let stop = end
                while end > 0, !isWhitespace(source[end - 1]) { end -= 1 }
                parts.append(string(source[end..<stop]))
                splits += 1
            }
            return parts.reversed()
        }
        let target = scalars(separator)
        var end = source.count
        var splits = 0
        while splits < maxSplit {
            let found = rfind(source, target, start: 0, end: end)
            if found < 0 { break }
            parts.append(string(source[(found + target.count)..<end]))
            end = found
            splits += 1
        }
        parts.append(string(source[0..<end]))
        return parts.reversed()
    }

    /// Python `str.splitlines(keepends)`.
    static func splitLines(_ text: String, keepEnds: Bool = false) -> [String] {
        let source = scalars(text)
        var lines: [String] = []
        var start = 0
        var index = 0
        while index < source.count {
            if isLineBreak(source[index]) {
                var end = index + 1
                if source[index] == "\r", end < source.count, source[end] == "\n" { end += 1 }
                lines.append(string(source[start..<(keepEnds ? end : index)]))
                start = end
                index = end
            } else {
                index += 1
            }
        }
        if start < source.count { lines.append(string(source[start...])) }
        return lines
    }

    // MARK: - repr

    /// `\xNN`, `\uNNNN` or `\UNNNNNNNN` for one code point (Python's backslash escapes).
    static func backslashEscape(_ scalar: Unicode.Scalar) -> String {
        let value = scalar.value
        if value <= 0xFF { return "\\x" + hex(value, width: 2) }
        if value <= 0xFFFF { return "\\u" + hex(value, width: 4) }
        return "\\U" + hex(value, width: 8)
    }

    static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Python `repr(str)`: single quotes unless the text has `'` and no `"`.
    static func repr(_ text: String) -> String {
        let useDouble = text.unicodeScalars.contains("'") && !text.unicodeScalars.contains("\"")
        let quote: Unicode.Scalar = useDouble ? "\"" : "'"
        var result = String.UnicodeScalarView()
        result.append(quote)
        for scalar in text.unicodeScalars {
            switch scalar {
            case quote, "\\":
                result.append("\\")
                result.append(scalar)
            case "\t": result.append(contentsOf: "\\t".unicodeScalars)
            case "\n": result.append(contentsOf: "\\n".unicodeScalars)
            case "\r": result.append(contentsOf: "\\r".unicodeScalars)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    result.append(contentsOf: backslashEscape(scalar).unicodeScalars)
                } else if scalar.isASCII || isPrintable(scalar) {
                    result.append(scalar)
                } else {
                    result.append(contentsOf: backslashEscape(scalar).unicodeScalars)
                }
            }
        }
        result.append(quote)
        return String(result)
    }

    // MARK: - Numbers

    /// Python `repr(float)`: shortest round-trip digits; exponent form when the decimal exponent is
    /// below -4 or at least 16 (`1e-05`, `1e+16`), otherwise positional with at least one decimal.
    static func floatRepr(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is also the shortest round-trip representation; re-layout its digits.
        var text = Substring(value.description)
        var negative = false
        if text.first == "-" {
            negative = true
            text = text.dropFirst()
        }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        var digits = ""
        var pointPosition: Int? = nil
        for character in text {
            if character == "." {
                pointPosition = digits.count
            } else {
                digits.append(character)
            }
        }
        // value = 0.DIGITS × 10^decimalPoint, with decimalPoint counting digits before the point.
        var decimalPoint = (pointPosition ?? digits.count) + exponent
        while digits.hasPrefix("0") && digits.count > 1 {
            digits.removeFirst()
            decimalPoint -= 1
        }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        var result = negative ? "-" : ""
        if decimalPoint <= -4 || decimalPoint > 16 {
            result.append(digits.first!)
            if digits.count > 1 {
                result += "." + digits.dropFirst()
            }
            let printedExponent = decimalPoint - 1
            result += printedExponent < 0 ? "e-" : "e+"
            let magnitude = String(abs(printedExponent))
            result += (magnitude.count < 2 ? "0" : "") + magnitude
        } else if decimalPoint <= 0 {
            result += "0." + String(repeating: "0", count: -decimalPoint) + digits
        } else if decimalPoint >= digits.count {
            result += digits + String(repeating: "0", count: decimalPoint - digits.count) + ".0"
        } else {
            let split = digits.index(digits.startIndex, offsetBy: decimalPoint)
            result += digits[..<split] + "." + digits[split...]
        }
        return result
    }

    /// C `printf`-style formatting of one double (`%.*f`, `%e`, ...), used for Python's rounding and
    /// `%`-formatting. glibc rounds exactly (half-even on the binary value), like Python.
    static func cFormat(_ format: String, _ value: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        let written = withVaList([value]) { arguments in
            buffer.withUnsafeMutableBufferPointer { pointer in
                vsnprintf(pointer.baseAddress, pointer.count, format, arguments)
            }
        }
        if written >= buffer.count {
            buffer = [CChar](repeating: 0, count: Int(written) + 1)
            _ = withVaList([value]) { arguments in
                buffer.withUnsafeMutableBufferPointer { pointer in
                    vsnprintf(pointer.baseAddress, pointer.count, format, arguments)
                }
            }
        }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Python `round(value, ndigits)` for floats (correctly rounded, ties to even).
    static func round(_ value: Double, digits: Int) -> Double {
        if !value.isFinite { return value }
        if digits > 300 { return value }
        if digits >= 0 {
            return Double(cFormat("%.\(digits)f", value)) ?? value
        }
        // Negative ndigits: round to tens, hundreds, ... via scaling (exact for moderate magnitudes).
        let scale = pow(10.0, Double(-digits))
        if !scale.isFinite { return 0.0 * value }
        let scaled = value / scale
        return scaled.rounded(.toNearestOrEven) * scale
    }

    /// Python `int(text)` parsing: optional sign, surrounding whitespace, underscores between digits.
    static func parseInt(_ text: String, base: Int = 10) -> Int? {
        var body = strip(text, chars: nil, leading: true, trailing: true)
        var negative = false
        if body.hasPrefix("+") || body.hasPrefix("-") {
            negative = body.hasPrefix("-")
            body.removeFirst()
        }
        var radix = base
        let lowered = body.lowercased()
        if base == 16 && lowered.hasPrefix("0x") || base == 8 && lowered.hasPrefix("0o")
            || base == 2 && lowered.hasPrefix("0b")
        {
            body.removeFirst(2)
            if body.hasPrefix("_") { body.removeFirst() }
        } else if base == 0 {
            if lowered.hasPrefix("0x") { radix = 16 } else if lowered.hasPrefix("0o") { radix = 8 } else if lowered.hasPrefix("0b") { radix = 2 } else { radix = 10 }
            if radix != 10 {
                body.removeFirst(2)
                if body.hasPrefix("_") { body.removeFirst() }
            }
        }
        guard !body.isEmpty, !body.hasPrefix("_"), !body.hasSuffix("_"), !body.contains("__") else { return nil }
        let digits = body.replacingAll("_", with: "")
        guard digits.unicodeScalars.allSatisfy({ $0.isASCII }), let magnitude = Int(digits, radix: radix) else {
            return nil
        }
        return negative ? -magnitude : magnitude
    }

    /// Python `float(text)` parsing (whitespace, underscores, inf/nan spellings).
    static func parseFloat(_ text: String) -> Double? {
        let body = strip(text, chars: nil, leading: true, trailing: true)
        let lowered = body.lowercased()
        var unsigned = Substring(lowered)
        var negative = false
        if unsigned.hasPrefix("+") || unsigned.hasPrefix("-") {
            negative = unsigned.hasPrefix("-")
            unsigned = unsigned.dropFirst()
        }
        if unsigned == "inf" || unsigned == "infinity" { return negative ? -.infinity : .infinity }
        if unsigned == "nan" { return .nan }
        guard !body.isEmpty, !body.contains("__"), !body.hasPrefix("_"), !body.hasSuffix("_") else { return nil }
        let cleaned = body.replacingAll("_", with: "")
        guard cleaned.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isASCIIHexDigit || "+-.eE".unicodeScalars.contains($0)) }),
            !cleaned.lowercased().contains("x")
        else { return nil }
        return Double(cleaned)
    }
}
