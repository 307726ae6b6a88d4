/// The regular expressions of the pre-tokenizers' `Split` steps, parsed with Oniguruma's meaning (the
/// engine Hugging Face `tokenizers` runs them with): the subset those patterns use.
///
/// Syntax: literals and escapes (`\r \n \t \f \v \e \0`, an escaped punctuation character is itself);
/// `.` (any scalar but "\n"); classes `[...]`, `[^...]` with ranges, nested classes and `&&`
/// intersection; `\s \S \d \D \w \W \h \H`, `\p{X}` / `\P{X}` / `\p{^X}` for the general categories
/// (L Lu Ll Lt Lm Lo, M Mn Mc Me, N Nd Nl No, P Pc Pd Ps Pe Pi Pf Po, S Sm Sc Sk So, Z Zs Zl Zp,
/// C Cc Cf Co Cn Cs) and `Han`; groups `(...)`, `(?:...)`, `(?i:...)`, `(?i)`, lookaheads `(?=...)`,
/// `(?!...)`, atomic groups `(?>...)`; quantifiers `? * + {n} {n,} {n,m} {,m}`, each greedy, lazy
/// (`?`) or possessive (`+`); anchors `^ $ \A \z \Z \b \B`. Anything else is a `SplitPatternError`.
/// Lookbehinds and backreferences are refused: no pre-tokenizer uses them.
struct SplitPattern {
    /// One node of the parsed expression.
    indirect enum Node {
        case set(ScalarSet)
        case empty
        case concat([Node])
        case alternate([Node])
        case quantified(Node, min: Int, max: Int?, mode: QuantifierMode)
        case lookahead(Node, negative: Bool)
        case atomic(Node)
        case anchor(Anchor)
    }

    enum QuantifierMode { case greedy, lazy, possessive }

    enum Anchor: Sendable {
        /// `^`: start of the piece or after "\n".
        case lineStart
        /// `$`: end of the piece or before "\n" (Ruby syntax, as `tokenizers` compiles).
        case lineEnd
        case textStart
        case textEnd
        /// `\Z`: end of the piece, or before a final "\n".
        case textEndOrFinalNewline
        case wordBoundary
        case notWordBoundary
    }

    let source: String
    let root: Node

    init(_ source: String) throws {
        self.source = source
        var parser = Parser(pattern: Array(source.unicodeScalars).map(\.value), source: source)
        root = try parser.parseAll()
    }
}

public struct SplitPatternError: Error, CustomStringConvertible, Equatable {
    public let pattern: String
    public let reason: String
    public var description: String { "pre-tokenizer pattern \(pattern.debugDescription): \(reason)" }
}

/// A set of Unicode scalars: the union of its terms, intersected with `intersections`, maybe negated.
struct ScalarSet: Sendable {
    indirect enum Term: Sendable {
        case range(UInt32, UInt32)
        /// Bit `k` set: general category `k` of `GeneralCategories.index`.
        case categories(UInt32)
        /// The White_Space property (`\s`).
        case whitespace
        /// `\h`: hexadecimal digit characters 0-9 a-f A-F.
        case hexDigit
        /// `\w`: letters, marks, decimal numbers, connector punctuation.
        case word
        /// Han script (`\p{Han}`).
        case han
        case not(ScalarSet)
        case set(ScalarSet)
    }

    var terms: [Term] = []
    var intersections: [ScalarSet] = []
    var negated = false

    static func single(_ term: Term) -> ScalarSet { ScalarSet(terms: [term]) }

    func contains(_ value: UInt32) -> Bool {
        var inside = false
        for term in terms where ScalarSet.termContains(term, value) {
            inside = true
            break
        }
        if inside {
            for other in intersections where !other.contains(value) {
                inside = false
                break
            }
        }
        return inside != negated
    }

    private static func termContains(_ term: Term, _ value: UInt32) -> Bool {
        switch term {
        case .range(let low, let high): return value >= low && value <= high
        case .categories(let mask): return mask & (1 << GeneralCategories.index(of: value)) != 0
        case .whitespace: return UnicodeClass.flags(of: value) & UnicodeClass.whitespace != 0
        case .hexDigit: return (0x30...0x39).contains(value) || (0x41...0x46).contains(value) || (0x61...0x66).contains(value)
        case .word: return GeneralCategories.isWord(value)
        case .han: return HanScript.contains(value)
        case .not(let set): return !set.contains(value)
        case .set(let set): return set.contains(value)
        }
    }
}

/// General category indices (0–29) per scalar, the BMP from a table built once.
enum GeneralCategories {
    static let order: [Unicode.GeneralCategory] = [
        .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
        .nonspacingMark, .spacingMark, .enclosingMark,
        .decimalNumber, .letterNumber, .otherNumber,
        .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
        .finalPunctuation, .otherPunctuation,
        .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol,
        .spaceSeparator, .lineSeparator, .paragraphSeparator,
        .control, .format, .surrogate, .privateUse, .unassigned,
    ]
    /// Property names (`\p{...}`) and the categories they cover.
    static let names: [String: [Int]] = {
        let short = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi",
                     "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"]
        var table: [String: [Int]] = [:]
        for (index, name) in short.enumerated() {
            table[name, default: []].append(index)
            table[String(name.first!), default: []].append(index)
        }
        let long = ["Letter": "L", "Mark": "M", "Number": "N", "Punctuation": "P", "Symbol": "S", "Separator": "Z",
                    "Other": "C", "Uppercase_Letter": "Lu", "Lowercase_Letter": "Ll", "Titlecase_Letter": "Lt",
                    "Modifier_Letter": "Lm", "Other_Letter": "Lo", "Decimal_Number": "Nd"]
        for (name, alias) in long { table[name] = table[alias] }
        return table
    }()

    static let basicPlane: [UInt8] = {
        var table = [UInt8](repeating: UInt8(order.count - 1), count: 0x10000)
        for value in 0..<0x10000 {
            if let scalar = Unicode.Scalar(UInt32(value)) {
                table[value] = UInt8(order.firstIndex(of: scalar.properties.generalCategory) ?? order.count - 1)
            } else {
                table[value] = 27  // surrogate code points
            }
        }
        return table
    }()

    @inline(__always)
    static func index(of value: UInt32) -> Int {
        if value < 0x10000 { return basicPlane.withUnsafeBufferPointer { Int($0[Int(value)]) } }
        guard let scalar = Unicode.Scalar(value) else { return order.count - 1 }
        return order.firstIndex(of: scalar.properties.generalCategory) ?? order.count - 1
    }

    /// Letters, marks, decimal numbers and connector punctuation (Oniguruma's Unicode `\w`).
    static func isWord(_ value: UInt32) -> Bool {
        let index = index(of: value)
        return index <= 8 || index == 11
    }
}

/// Han script ranges (Unicode 16 Scripts.txt).
enum HanScript {
    static let ranges: [ClosedRange<UInt32>] = [
        0x2E80...0x2E99, 0x2E9B...0x2EF3, 0x2F00...0x2FD5, 0x3005...0x3005, 0x3007...0x3007, 0x3021...0x3029,
        0x3038...0x303B, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xF900...0xFA6D, 0xFA70...0xFAD9, 0x16FE2...0x16FE3,
        0x16FF0...0x16FF1, 0x20000...0x2A6DF, 0x2A700...0x2B739, 0x2B740...0x2B81D, 0x2B820...0x2CEA1,
        0x2CEB0...0x2EBE0, 0x2EBF0...0x2EE5D, 0x2F800...0x2FA1D, 0x30000...0x3134A, 0x31350...0x323AF,
    ]
    static func contains(_ value: UInt32) -> Bool {
        if value < 0x2E80 { return false }
        for range in ranges where range.contains(value) { return true }
        return false
    }
}

/// Recursive-descent parser over the pattern's scalars.
private struct Parser {
    let pattern: [UInt32]
    let source: String
    var position = 0
    var ignoreCase = false
    var depth = 0

    init(pattern: [UInt32], source: String) {
        self.pattern = pattern
        self.source = source
    }

    func fail(_ reason: String) -> SplitPatternError {
        SplitPatternError(pattern: source, reason: "\(reason) at offset \(position)")
    }

    var atEnd: Bool { position >= pattern.count }
    func peek(_ offset: Int = 0) -> UInt32? { position + offset < pattern.count ? pattern[position + offset] : nil }
    mutating func next() -> UInt32 { defer { position += 1 }; return pattern[position] }
    mutating func accept(_ character: Character) -> Bool {
        if peek() == character.unicodeScalars.first!.value { position += 1; return true }
        return false
    }

    mutating func parseAll() throws -> SplitPattern.Node {
        let node = try parseAlternation()
        if !atEnd { throw fail("unbalanced ')'") }
        return node
    }

    mutating func parseAlternation() throws -> SplitPattern.Node {
        depth += 1
        defer { depth -= 1 }
        if depth > 64 { throw fail("nested too deeply") }
        let savedCase = ignoreCase
        defer { ignoreCase = savedCase }
        var branches = [try parseSequence()]
        while accept("|") { branches.append(try parseSequence()) }
        return branches.count == 1 ? branches[0] : .alternate(branches)
    }

    mutating func parseSequence() throws -> SplitPattern.Node {
        var items: [SplitPattern.Node] = []
        while let scalar = peek(), scalar != 0x7C, scalar != 0x29 {  // | )
            if let item = try parseQuantified() { items.append(item) }
        }
        return items.isEmpty ? .empty : items.count == 1 ? items[0] : .concat(items)
    }

    /// An atom and its quantifiers; nil for a flag group such as `(?i)`.
    mutating func parseQuantified() throws -> SplitPattern.Node? {
        guard var node = try parseAtom() else { return nil }
        while let scalar = peek() {
            var bounds: (Int, Int?)
            switch scalar {
            case 0x3F: position += 1; bounds = (0, 1)          // ?
            case 0x2A: position += 1; bounds = (0, nil)        // *
            case 0x2B: position += 1; bounds = (1, nil)        // +
            case 0x7B:                                         // {
                guard let parsed = try parseBraces() else { return node }
                bounds = parsed
            default: return node
            }
            var mode = SplitPattern.QuantifierMode.greedy
            if accept("?") { mode = .lazy } else if accept("+") { mode = .possessive }
            if let max = bounds.1, max < bounds.0 { throw fail("quantifier {\(bounds.0),\(max)} is empty") }
            if bounds.0 > 1024 || (bounds.1 ?? 0) > 1024 { throw fail("repeat count above 1024") }
            node = .quantified(node, min: bounds.0, max: bounds.1, mode: mode)
        }
        return node
    }

    /// `{n}`, `{n,}`, `{n,m}`, `{,m}`; nil (and `{` taken as a literal) when it is none of them.
    mutating func parseBraces() throws -> (Int, Int?)? {
        let start = position
        position += 1
        func number(_ parser: inout Parser) -> Int? {
            var value: Int?
            while let digit = parser.peek(), (0x30...0x39).contains(digit), (value ?? 0) < 100_000 {
                value = (value ?? 0) * 10 + Int(digit - 0x30)
                parser.position += 1
            }
            return value
        }
        let low = number(&self)
        if accept("}") {
            if let low { return (low, low) }
            position = start
            return nil
        }
        guard accept(",") else { position = start; return nil }
        let high = number(&self)
        guard accept("}"), low != nil || high != nil else { position = start; return nil }
        return (low ?? 0, high)
    }

    mutating func parseAtom() throws -> SplitPattern.Node? {
        let scalar = next()
        switch scalar {
        case 0x28: return try parseGroup()                                        // (
        case 0x5B: return .set(try parseClass())                                  // [
        case 0x2E: return .set(ScalarSet(terms: [.range(0x0A, 0x0A)], negated: true))  // .
        case 0x5E: return .anchor(.lineStart)
        case 0x24: return .anchor(.lineEnd)
        case 0x5C: return try parseEscape()
        case 0x2A, 0x2B, 0x3F: throw fail("quantifier with nothing to repeat")
        default: return .set(literal(scalar))
        }
    }

    func literal(_ scalar: UInt32) -> ScalarSet {
        guard ignoreCase, let value = Unicode.Scalar(scalar) else { return .single(.range(scalar, scalar)) }
        var set = ScalarSet.single(.range(scalar, scalar))
        for mapped in [value.properties.lowercaseMapping, value.properties.uppercaseMapping] {
            let scalars = Array(mapped.unicodeScalars)
            if scalars.count == 1 { set.terms.append(.range(scalars[0].value, scalars[0].value)) }
        }
        return set
    }

    mutating func parseGroup() throws -> SplitPattern.Node? {
        guard accept("?") else { return try groupBody() }
        guard let kind = peek() else { throw fail("unterminated group") }
        switch kind {
        case 0x3A: position += 1; return try groupBody()                                      // (?:
        case 0x3D: position += 1; return .lookahead(try groupBody(), negative: false)         // (?=
        case 0x21: position += 1; return .lookahead(try groupBody(), negative: true)          // (?!
        case 0x3E: position += 1; return .atomic(try groupBody())                             // (?>
        case 0x3C: throw fail("lookbehind and named groups are not supported")
        default:
            // Flags: (?i) (?-i) (?i:...) (?i-m:...); only i has an effect here (m, x refused).
            var on = true
            var caseFlag: Bool?
            while let flag = peek(), flag != 0x3A, flag != 0x29 {
                position += 1
                switch flag {
                case 0x2D: on = false
                case 0x69: caseFlag = on
                default: throw fail("group flag '\(Character(Unicode.Scalar(flag)!))' is not supported")
                }
            }
            if accept(")") {
                if let caseFlag { ignoreCase = caseFlag }
                return nil
            }
            guard accept(":") else { throw fail("unterminated group") }
            let saved = ignoreCase
            if let caseFlag { ignoreCase = caseFlag }
            defer { ignoreCase = saved }
            return try groupBody()
        }
    }

    mutating func groupBody() throws -> SplitPattern.Node {
        let body = try parseAlternation()
        guard accept(")") else { throw fail("missing ')'") }
        return body
    }

    /// After a backslash, outside a class.
    mutating func parseEscape() throws -> SplitPattern.Node {
        guard let scalar = peek() else { throw fail("pattern ends with '\\'") }
        switch scalar {
        case 0x41: position += 1; return .anchor(.textStart)               // \A
        case 0x7A: position += 1; return .anchor(.textEnd)                 // \z
        case 0x5A: position += 1; return .anchor(.textEndOrFinalNewline)   // \Z
        case 0x62: position += 1; return .anchor(.wordBoundary)            // \b
        case 0x42: position += 1; return .anchor(.notWordBoundary)         // \B
        default: return .set(try parseEscapedSet())
        }
    }

    /// A class escape or an escaped literal, after the backslash (inside or outside a class).
    mutating func parseEscapedSet() throws -> ScalarSet {
        guard !atEnd else { throw fail("pattern ends with '\\'") }
        let scalar = next()
        switch scalar {
        case 0x73: return .single(.whitespace)                                     // \s
        case 0x53: return ScalarSet(terms: [.whitespace], negated: true)           // \S
        case 0x64: return .single(.categories(1 << 8))                             // \d
        case 0x44: return ScalarSet(terms: [.categories(1 << 8)], negated: true)   // \D
        case 0x77: return .single(.word)                                           // \w
        case 0x57: return ScalarSet(terms: [.word], negated: true)                 // \W
        case 0x68: return .single(.hexDigit)                                       // \h
        case 0x48: return ScalarSet(terms: [.hexDigit], negated: true)             // \H
        case 0x70, 0x50: return try parseProperty(negated: scalar == 0x50)         // \p \P
        case 0x72: return literal(0x0D)
        case 0x6E: return literal(0x0A)
        case 0x74: return literal(0x09)
        case 0x66: return literal(0x0C)
        case 0x76: return literal(0x0B)
        case 0x65: return literal(0x1B)
        case 0x61: return literal(0x07)
        case 0x30: return literal(0)
        case 0x78, 0x75: return literal(try parseHexEscape(braced: scalar == 0x78))  // \xHH \x{H..} \uHHHH
        default:
            let isAlphanumeric = (0x30...0x39).contains(scalar) || (0x41...0x5A).contains(scalar) || (0x61...0x7A).contains(scalar)
            if isAlphanumeric { throw fail("escape '\\\(Character(Unicode.Scalar(scalar)!))' is not supported") }
            return literal(scalar)
        }
    }

    mutating func parseHexEscape(braced: Bool) throws -> UInt32 {
        var digits = ""
        if braced && accept("{") {
            while let scalar = peek(), scalar != 0x7D, digits.count < 8 { digits.append(Character(Unicode.Scalar(scalar)!)); position += 1 }
            guard accept("}") else { throw fail("unterminated \\x{...}") }
        } else {
            let count = braced ? 2 : 4
            for _ in 0..<count {
                guard let scalar = peek() else { break }
                digits.append(Character(Unicode.Scalar(scalar)!))
                position += 1
            }
        }
        guard let value = UInt32(digits, radix: 16), value <= 0x10FFFF else { throw fail("bad hexadecimal escape") }
        return value
    }

    mutating func parseProperty(negated: Bool) throws -> ScalarSet {
        var name = ""
        if accept("{") {
            while let scalar = peek(), scalar != 0x7D, name.count < 40 { name.append(Character(Unicode.Scalar(scalar)!)); position += 1 }
            guard accept("}") else { throw fail("unterminated \\p{...}") }
        } else {
            guard let scalar = peek() else { throw fail("\\p needs a name") }
            name = String(Character(Unicode.Scalar(scalar)!))
            position += 1
        }
        var negate = negated
        if name.hasPrefix("^") { negate.toggle(); name.removeFirst() }
        let term: ScalarSet.Term
        if name == "Han" {
            term = .han
        } else if let categories = GeneralCategories.names[name] {
            term = .categories(categories.reduce(0) { $0 | (1 << UInt32($1)) })
        } else {
            throw fail("property '\(name)' is not supported")
        }
        return ScalarSet(terms: [term], negated: negate)
    }

    /// After `[`: items up to `]`, with `&&` intersections and nested classes.
    mutating func parseClass() throws -> ScalarSet {
        depth += 1
        defer { depth -= 1 }
        if depth > 64 { throw fail("classes nested too deeply") }
        var result = ScalarSet()
        if accept("^") { result.negated = true }
        var current = ScalarSet()
        var first = true
        while true {
            guard let scalar = peek() else { throw fail("missing ']'") }
            if scalar == 0x5D && !first { position += 1; break }   // ] (a leading ] is literal)
            first = false
            if scalar == 0x26 && peek(1) == 0x26 {                   // &&
                position += 2
                result.intersections.append(current)
                current = ScalarSet()
                continue
            }
            if scalar == 0x5B {                                      // nested class
                position += 1
                current.terms.append(.set(try parseClass()))
                continue
            }
            let low: UInt32
            if scalar == 0x5C {
                position += 1
                let escaped = try parseEscapedSet()
                guard let single = Parser.singleScalar(escaped) else {
                    current.terms.append(.set(escaped))
                    continue
                }
                low = single
            } else {
                position += 1
                low = scalar
            }
            // A range `a-z` (a '-' before ']' or at the end is literal).
            if peek() == 0x2D, let after = peek(1), after != 0x5D {
                position += 1
                let high: UInt32
                if after == 0x5C {
                    position += 1
                    guard let single = Parser.singleScalar(try parseEscapedSet()) else { throw fail("class range ends in a class escape") }
                    high = single
                } else {
                    position += 1
                    high = after
                }
                if high < low { throw fail("class range out of order") }
                current.terms.append(.range(low, high))
                if ignoreCase { appendCaseVariants(low, high, to: &current) }
            } else {
                current.terms.append(contentsOf: literal(low).terms)
            }
        }
        if result.intersections.isEmpty {
            result.terms = current.terms
        } else {
            // a && b && c: the first operand is the union, the others intersect it.
            let operands = result.intersections + [current]
            result.terms = operands[0].terms
            result.intersections = Array(operands.dropFirst())
        }
        return result
    }

    /// The other ASCII case of a range's letters (ignore-case classes).
    func appendCaseVariants(_ low: UInt32, _ high: UInt32, to set: inout ScalarSet) {
        let upperLow = max(low, 0x41), upperHigh = min(high, 0x5A)
        if upperLow <= upperHigh { set.terms.append(.range(upperLow + 0x20, upperHigh + 0x20)) }
        let lowerLow = max(low, 0x61), lowerHigh = min(high, 0x7A)
        if lowerLow <= lowerHigh { set.terms.append(.range(lowerLow - 0x20, lowerHigh - 0x20)) }
    }

    /// The scalar a literal escape stands for (nil for a class escape such as `\s`).
    static func singleScalar(_ set: ScalarSet) -> UInt32? {
        guard !set.negated, set.intersections.isEmpty, let first = set.terms.first,
              case .range(let low, let high) = first, low == high else { return nil }
        return low
    }
}
