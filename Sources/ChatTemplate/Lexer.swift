/// Tokenizer for Jinja2 template source, configured like transformers' environment:
/// `trim_blocks=True`, `lstrip_blocks=True`, default delimiters, `keep_trailing_newline=False`.
///
/// It follows jinja2's lexer rule by rule so that whitespace handling matches byte for byte:
/// * newlines (`\r\n`, `\r`) are normalized to `\n` and one trailing newline is dropped;
/// * `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` strip all after;
/// * trim_blocks removes the single newline right after `%}` and `#}` (not after `}}`);
/// * lstrip_blocks removes spaces/tabs between a line start and `{%` or `{#` (not `{{`), unless `+`.

struct SourcePosition: Sendable, Equatable {
    let line: Int
    let column: Int
}

enum TokenKind: Sendable, Equatable {
    case data(String)
    case variableBegin
    case variableEnd
    case blockBegin
    case blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    /// An operator or punctuation: `+ - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { } ;`.
    case op(String)
    case endOfInput
}

struct Token: Sendable {
    let kind: TokenKind
    let position: SourcePosition
}

struct Lexer {
    private let source: [Unicode.Scalar]
    private var index = 0
    /// Line and column of `index`, maintained incrementally.
    private var line = 1
    private var column = 1
    /// jinja2's `line_starting`: whether the previous lexer match ended with a newline.
    private var lineStarting = true
    private var tokens: [Token] = []

    init(_ text: String) {
        // Normalize newlines and drop one trailing newline, like jinja2's tokeniter.
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.unicodeScalars.count)
        var iterator = text.unicodeScalars.makeIterator()
        var pending = iterator.next()
        while let scalar = pending {
            pending = iterator.next()
            if scalar == "\r" {
                scalars.append("\n")
                if pending == "\n" { pending = iterator.next() }
            } else {
                scalars.append(scalar)
            }
        }
        if scalars.last == "\n" { scalars.removeLast() }
        source = scalars
    }

    static func tokenize(_ text: String) throws -> [Token] {
        var lexer = Lexer(text)
        try lexer.run()
        return lexer.tokens
    }

    // MARK: - Position helpers

    private var currentPosition: SourcePosition { SourcePosition(line: line, column: column) }

    private func syntaxError(_ message: String, at position: SourcePosition? = nil) -> ChatTemplateError {
        let where_ = position ?? currentPosition
        return ChatTemplateError(.syntax, message, line: where_.line, column: where_.column)
    }

    /// Moves `index` forward to `target`, updating line/column.
    private mutating func advance(to target: Int) {
        while index < target {
            if source[index] == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
            index += 1
        }
    }

    private func matches(_ literal: String, at position: Int) -> Bool {
        var offset = position
        for scalar in literal.unicodeScalars {
            guard offset < source.count, source[offset] == scalar else { return false }
            offset += 1
        }
        return true
    }

    private func string(_ range: Range<Int>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: source[range])
        return String(view)
    }

    // MARK: - Root state (template data)

    private enum TagKind {
        case variable, block, comment
    }

    private mutating func run() throws {
        while index < source.count {
            // Find the next tag opener: `{{`, `{%` or `{#`.
            var cursor = index
            var found: (start: Int, kind: TagKind)? = nil
            while cursor + 1 < source.count {
                if source[cursor] == "{" {
                    let next = source[cursor + 1]
                    if next == "{" { found = (cursor, .variable); break }
                    if next == "%" { found = (cursor, .block); break }
                    if next == "#" { found = (cursor, .comment); break }
                }
                cursor += 1
            }
            guard let (tagStart, kind) = found else {
                // The rest is plain data.
                let text = string(index..<source.count)
                let position = currentPosition
                tokens.append(Token(kind: .data(text), position: position))
                lineStarting = text.unicodeScalars.last == "\n"
                advance(to: source.count)
                break
            }
            let signIndex = tagStart + 2
            let sign: Unicode.Scalar? =
                signIndex < source.count && (source[signIndex] == "-" || source[signIndex] == "+")
                ? source[signIndex] : nil

            // Whitespace control on the text before the tag.
            var textEnd = tagStart
            if sign == "-" {
                while textEnd > index, PythonText.isWhitespace(source[textEnd - 1]) { textEnd -= 1 }
            } else if sign != "+" && kind != .variable {
                // lstrip_blocks: strip spaces after the last newline if only whitespace precedes the tag.
                var lineStart = tagStart
                while lineStart > index, source[lineStart - 1] != "\n" { lineStart -= 1 }
                let hasNewline = lineStart > index
                if hasNewline || lineStarting {
                    if lineStart < tagStart,
                        source[lineStart..<tagStart].allSatisfy({ PythonText.isWhitespace($0) })
                    {
                        textEnd = lineStart
                    }
                }
            }
            if textEnd > index {
                tokens.append(Token(kind: .data(string(index..<textEnd)), position: currentPosition))
            }
            advance(to: tagStart)

            if kind == .block, try lexRawBlock(sign: sign) { continue }

            let tagPosition = currentPosition
            advance(to: signIndex + (sign == nil ? 0 : 1))
            lineStarting = false
            switch kind {
            case .comment:
                try lexComment(openedAt: tagPosition)
            case .variable:
                tokens.append(Token(kind: .variableBegin, position: tagPosition))
                try lexTagContents(isBlock: false, openedAt: tagPosition)
            case .block:
                tokens.append(Token(kind: .blockBegin, position: tagPosition))
                try lexTagContents(isBlock: true, openedAt: tagPosition)
            }
        }
        tokens.append(Token(kind: .endOfInput, position: currentPosition))
    }

    /// Comment: `{# ... #}`, ended by `+#}`, `-#}` plus all whitespace, or `#}` plus one newline.
    private mutating func lexComment(openedAt position: SourcePosition) throws {
        var cursor = index
        while cursor + 1 < source.count {
            if (source[cursor] == "-" || source[cursor] == "+"), matches("#}", at: cursor + 1) {
                var end = cursor + 3
                if source[cursor] == "-" {
                    while end < source.count, PythonText.isWhitespace(source[end]) { end += 1 }
                }
                finishMatch(endingAt: end)
                return
            }
            if matches("#}", at: cursor) {
                var end = cursor + 2
                if end < source.count, source[end] == "\n" { end += 1 }
                finishMatch(endingAt: end)
                return
            }
            cursor += 1
        }
        throw syntaxError("Missing end of comment tag", at: position)
    }

    /// Records `line_starting` for a match that ends just before `end`, then moves there.
    private mutating func finishMatch(endingAt end: Int) {
        lineStarting = end > index && source[end - 1] == "\n"
        advance(to: end)
    }

    /// `{% raw %}...{% endraw %}`: everything in between is data. Returns false if this is not a raw tag.
    private mutating func lexRawBlock(sign: Unicode.Scalar?) throws -> Bool {
        var cursor = index + 2 + (sign == nil ? 0 : 1)
        while cursor < source.count, PythonText.isWhitespace(source[cursor]) { cursor += 1 }
        guard matches("raw", at: cursor) else { return false }
        cursor += 3
        while cursor < source.count, PythonText.isWhitespace(source[cursor]) { cursor += 1 }
        var bodyStart: Int
        if matches("-%}", at: cursor) {
            bodyStart = cursor + 3
            while bodyStart < source.count, PythonText.isWhitespace(source[bodyStart]) { bodyStart += 1 }
        } else if matches("%}", at: cursor) {
            bodyStart = cursor + 2
        } else {
            return false
        }
        let rawPosition = currentPosition
        // Find `{%[-+]? endraw` followed by a block end.
        var search = bodyStart
        while search + 1 < source.count {
            if matches("{%", at: search) {
                var probe = search + 2
                let endSign: Unicode.Scalar? =
                    probe < source.count && (source[probe] == "-" || source[probe] == "+") ? source[probe] : nil
                if endSign != nil { probe += 1 }
                while probe < source.count, PythonText.isWhitespace(source[probe]) { probe += 1 }
                if matches("endraw", at: probe) {
                    probe += 6
                    while probe < source.count, PythonText.isWhitespace(source[probe]) { probe += 1 }
                    var end: Int? = nil
                    if matches("+%}", at: probe) {
                        end = probe + 3
                    } else if matches("-%}", at: probe) {
                        var e = probe + 3
                        while e < source.count, PythonText.isWhitespace(source[e]) { e += 1 }
                        end = e
                    } else if matches("%}", at: probe) {
                        var e = probe + 2
                        if e < source.count, source[e] == "\n" { e += 1 }
                        end = e
                    }
                    if let end {
                        var textEnd = search
                        if endSign == "-" {
                            while textEnd > bodyStart, PythonText.isWhitespace(source[textEnd - 1]) { textEnd -= 1 }
                        } else if endSign != "+" {
                            var lineStart = search
                            while lineStart > bodyStart, source[lineStart - 1] != "\n" { lineStart -= 1 }
                            let rawBeginEndedLine = source[bodyStart - 1] == "\n"
                            if lineStart > bodyStart || rawBeginEndedLine,
                                lineStart < search,
                                source[lineStart..<search].allSatisfy({ PythonText.isWhitespace($0) })
                            {
                                textEnd = lineStart
                            }
                        }
                        advance(to: bodyStart)
                        if textEnd > bodyStart {
                            tokens.append(Token(kind: .data(string(bodyStart..<textEnd)), position: currentPosition))
                        }
                        finishMatch(endingAt: end)
                        return true
                    }
                }
            }
            search += 1
        }
        throw syntaxError("Missing end of raw directive", at: rawPosition)
    }

    // MARK: - Tag contents (expressions)

    private mutating func lexTagContents(isBlock: Bool, openedAt tagPosition: SourcePosition) throws {
        var brackets: [Unicode.Scalar] = []
        while true {
            guard index < source.count else {
                // jinja2 stops lexing here; the parser then reports the missing tag end.
                return
            }
            // Tag end (only when brackets are balanced).
            if brackets.isEmpty {
                if isBlock {
                    if matches("+%}", at: index) {
                        tokens.append(Token(kind: .blockEnd, position: currentPosition))
                        finishMatch(endingAt: index + 3)
                        return
                    }
                    if matches("-%}", at: index) {
                        tokens.append(Token(kind: .blockEnd, position: currentPosition))
                        var end = index + 3
                        while end < source.count, PythonText.isWhitespace(source[end]) { end += 1 }
                        finishMatch(endingAt: end)
                        return
                    }
                    if matches("%}", at: index) {
                        tokens.append(Token(kind: .blockEnd, position: currentPosition))
                        var end = index + 2
                        if end < source.count, source[end] == "\n" { end += 1 }
                        finishMatch(endingAt: end)
                        return
                    }
                } else {
                    if matches("-}}", at: index) {
                        tokens.append(Token(kind: .variableEnd, position: currentPosition))
                        var end = index + 3
                        while end < source.count, PythonText.isWhitespace(source[end]) { end += 1 }
                        finishMatch(endingAt: end)
                        return
                    }
                    if matches("}}", at: index) {
                        tokens.append(Token(kind: .variableEnd, position: currentPosition))
                        finishMatch(endingAt: index + 2)
                        return
                    }
                }
            }
            let scalar = source[index]
            if PythonText.isWhitespace(scalar) {
                var end = index
                while end < source.count, PythonText.isWhitespace(source[end]) { end += 1 }
                finishMatch(endingAt: end)
                continue
            }
            let start = currentPosition
            if let (token, end) = try lexNumber() {
                tokens.append(Token(kind: token, position: start))
                finishMatch(endingAt: end)
                continue
            }
            if Self.isIdentifierStart(scalar) {
                var end = index + 1
                while end < source.count, Self.isIdentifierContinue(source[end]) { end += 1 }
                tokens.append(Token(kind: .name(string(index..<end)), position: start))
                finishMatch(endingAt: end)
                continue
            }
            if scalar == "'" || scalar == "\"" {
                if let end = stringLiteralEnd(quote: scalar) {
                    let value = try Self.unescapeStringLiteral(source[(index + 1)..<(end - 1)], at: start)
                    tokens.append(Token(kind: .string(value), position: start))
                    finishMatch(endingAt: end)
                    continue
                }
                throw syntaxError("unexpected char \(PythonText.repr(String(scalar))) (unterminated string)", at: start)
            }
            if let op = operatorAt(index) {
                let opScalar = op.unicodeScalars.first!
                if op == "(" || op == "[" || op == "{" {
                    brackets.append(op == "(" ? ")" : op == "[" ? "]" : "}")
                } else if op == ")" || op == "]" || op == "}" {
                    guard let expected = brackets.popLast() else {
                        throw syntaxError("unexpected '\(op)'", at: start)
                    }
                    if expected != opScalar {
                        throw syntaxError("unexpected '\(op)', expected '\(expected)'", at: start)
                    }
                }
                tokens.append(Token(kind: .op(op), position: start))
                finishMatch(endingAt: index + op.unicodeScalars.count)
                continue
            }
            throw syntaxError("unexpected char \(PythonText.repr(String(scalar)))", at: start)
        }
    }

    private static let operators: [String] = [
        "//", "**", "==", "!=", ">=", "<=",
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ]

    private func operatorAt(_ position: Int) -> String? {
        for op in Self.operators where matches(op, at: position) { return op }
        return nil
    }

    static func isIdentifierStart(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "_" { return true }
        if scalar.isASCII { return ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) }
        return scalar.properties.isXIDStart
    }

    static func isIdentifierContinue(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "_" { return true }
        if scalar.isASCII {
            return ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
        }
        return scalar.properties.isXIDContinue
    }

    /// Index just past the closing quote of the string literal starting at `index`, if terminated.
    private func stringLiteralEnd(quote: Unicode.Scalar) -> Int? {
        var cursor = index + 1
        while cursor < source.count {
            let scalar = source[cursor]
            if scalar == "\\" {
                cursor += 2
                continue
            }
            if scalar == quote { return cursor + 1 }
            cursor += 1
        }
        return nil
    }

    private static func isDigit(_ scalar: Unicode.Scalar) -> Bool { ("0"..."9").contains(scalar) }

    /// Reads `(\d+_)*\d+` starting at `position`; returns the end index or nil.
    private func digitRun(from position: Int) -> Int? {
        guard position < source.count, Self.isDigit(source[position]) else { return nil }
        var cursor = position
        while true {
            while cursor < source.count, Self.isDigit(source[cursor]) { cursor += 1 }
            if cursor + 1 < source.count, source[cursor] == "_", Self.isDigit(source[cursor + 1]) {
                cursor += 1
                continue
            }
            return cursor
        }
    }

    /// Float or integer literal at `index` (jinja2's float_re, then integer_re).
    private func lexNumber() throws -> (TokenKind, Int)? {
        guard Self.isDigit(source[index]) else { return nil }
        // Float: not preceded by '.', digits then (fraction? exponent | fraction).
        if index == 0 || source[index - 1] != "." {
            if let integerEnd = digitRun(from: index) {
                var cursor = integerEnd
                var hasFraction = false
                if cursor < source.count, source[cursor] == ".", let fractionEnd = digitRun(from: cursor + 1) {
                    cursor = fractionEnd
                    hasFraction = true
                }
                var hasExponent = false
                if cursor < source.count, source[cursor] == "e" || source[cursor] == "E" {
                    var exponentStart = cursor + 1
                    if exponentStart < source.count, source[exponentStart] == "+" || source[exponentStart] == "-" {
                        exponentStart += 1
                    }
                    if let exponentEnd = digitRun(from: exponentStart) {
                        cursor = exponentEnd
                        hasExponent = true
                    }
                }
                if hasFraction || hasExponent {
                    let text = string(index..<cursor).replacingAll("_", with: "")
                    guard let value = Double(text) else {
                        throw syntaxError("invalid float literal \(text)")
                    }
                    return (.float(value), cursor)
                }
            }
        }
        // Integer: 0b / 0o / 0x prefixes, decimal with underscores, or zeros.
        if source[index] == "0", index + 1 < source.count {
            let prefix = source[index + 1]
            let radix: Int? =
                (prefix == "b" || prefix == "B") ? 2 : (prefix == "o" || prefix == "O") ? 8 : (prefix == "x" || prefix == "X") ? 16 : nil
            if let radix {
                var cursor = index + 2
                var digits = ""
                while cursor < source.count {
                    if source[cursor] == "_", cursor + 1 < source.count,
                        Int(String(source[cursor + 1]), radix: radix) != nil
                    {
                        cursor += 1
                        continue
                    }
                    guard Int(String(source[cursor]), radix: radix) != nil else { break }
                    digits.unicodeScalars.append(source[cursor])
                    cursor += 1
                }
                if !digits.isEmpty {
                    guard let value = Int(digits, radix: radix) else { throw syntaxError("integer literal too large") }
                    return (.integer(value), cursor)
                }
            }
        }
        if source[index] == "0" {
            // `0(_?0)*`
            var cursor = index + 1
            while cursor < source.count {
                if source[cursor] == "0" { cursor += 1; continue }
                if source[cursor] == "_", cursor + 1 < source.count, source[cursor + 1] == "0" { cursor += 2; continue }
                break
            }
            return (.integer(0), cursor)
        }
        let end = digitRun(from: index)!
        let text = string(index..<end).replacingAll("_", with: "")
        guard let value = Int(text) else { throw syntaxError("integer literal too large: \(text)") }
        return (.integer(value), end)
    }

    /// Python `unicode-escape` decoding of a literal body, as jinja2 does after `backslashreplace`.
    static func unescapeStringLiteral(_ body: ArraySlice<Unicode.Scalar>, at position: SourcePosition) throws -> String {
        var output = String.UnicodeScalarView()
        var cursor = body.startIndex
        func fail(_ message: String) -> ChatTemplateError {
            ChatTemplateError(.syntax, message, line: position.line, column: position.column)
        }
        func hexValue(_ count: Int, _ name: String) throws -> UInt32 {
            guard cursor + count <= body.endIndex else { throw fail("truncated \(name) escape") }
            var value: UInt32 = 0
            for offset in 0..<count {
                guard let digit = Int(String(body[cursor + offset]), radix: 16) else {
                    throw fail("truncated \(name) escape")
                }
                value = value * 16 + UInt32(digit)
            }
            cursor += count
            return value
        }
        while cursor < body.endIndex {
            let scalar = body[cursor]
            guard scalar == "\\" else {
                output.append(scalar)
                cursor += 1
                continue
            }
            cursor += 1
            guard cursor < body.endIndex else {
                throw fail("\\ at end of string")
            }
            let escape = body[cursor]
            cursor += 1
            switch escape {
            case "\n": break  // line continuation
            case "\\": output.append("\\")
            case "'": output.append("'")
            case "\"": output.append("\"")
            case "a": output.append("\u{07}")
            case "b": output.append("\u{08}")
            case "f": output.append("\u{0C}")
            case "n": output.append("\n")
            case "r": output.append("\r")
            case "t": output.append("\t")
            case "v": output.append("\u{0B}")
            case "0"..."7":
                var value = UInt32(escape.value - 48)
                var digits = 1
                while digits < 3, cursor < body.endIndex, ("0"..."7").contains(body[cursor]) {
                    value = value * 8 + (body[cursor].value - 48)
                    cursor += 1
                    digits += 1
                }
                output.append(Unicode.Scalar(value) ?? "\u{FFFD}")
            case "x":
                output.append(Unicode.Scalar(try hexValue(2, "\\xXX"))!)
            case "u":
                output.append(Unicode.Scalar(try hexValue(4, "\\uXXXX")) ?? "\u{FFFD}")
            case "U":
                let value = try hexValue(8, "\\UXXXXXXXX")
                guard let scalar = Unicode.Scalar(value) else { throw fail("illegal Unicode character") }
                output.append(scalar)
            case "N":
                throw fail("\\N{...} escapes are not supported")
            default:
                output.append("\\")
                if escape.isASCII {
                    output.append(escape)
                } else {
                    // jinja2 backslash-replaces non-ASCII first, so `\é` decodes to the text `\xe9`.
                    output.append(contentsOf: PythonText.backslashEscape(escape).unicodeScalars.dropFirst())
                }
            }
        }
        return String(output)
    }
}

extension String {
    func replacingAll(_ target: Unicode.Scalar, with replacement: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if scalar == target {
                result.append(contentsOf: replacement.unicodeScalars)
            } else {
                result.append(scalar)
            }
        }
        return String(result)
    }
}
