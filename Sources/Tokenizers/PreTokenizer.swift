import Foundation

/// Byte-level BPE pre-tokenizers: the regex splits of llama.cpp's `llm_tokenizer_bpe` (and of the Hugging
/// Face tokenizers these models ship), for every name in `PreTokenizerTable.swift`.
///
/// A pre-tokenizer is a cascade of "isolated" regex splits: stage k cuts every piece of stage k-1 into its
/// regex matches and the unmatched gaps between them (a gap becomes a piece of its own; an empty match is
/// only a cut). Lookaheads such as `(?!\S)` see only the current piece, as in both reference
/// implementations. The common patterns run as hand-coded scanners over Unicode scalars (each returns,
/// for a start position, where the pattern's leftmost alternative that matches there ends, or the start
/// itself when nothing matches); the others through `SplitProgram`, a small backtracking matcher with
/// Oniguruma's semantics.
public struct PreTokenizer: Sendable {
    /// One regex of a cascade.
    enum Rule: Sendable {
        /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
        case gpt2
        /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
        case llama3
        /// Qwen2: the Llama 3 regex with `\p{N}` (one digit) instead of `\p{N}{1,3}`.
        case qwen2
        /// `\p{N}`: each number character alone (SmolLM's `Digits(individual_digits)`).
        case singleNumber
        /// `\p{N}{1,3}`
        case numberTriples
        /// `\p{N}+`
        case numberRun
        /// `[0-9][0-9][0-9]`
        case asciiDigitTriple
        /// `[\p{P}\$\+<=>\^~\|]+` (llama.cpp's fallback "default" pre-tokenizer)
        case punctuationRun
        /// `[一-龥぀-ゟ゠-ヿ]+`: CJK ideographs U+4E00–U+9FA5, hiragana U+3040–U+309F, katakana U+30A0–U+30FF.
        case cjkRun
        /// DeepSeek V3: ``[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+``
        case deepseekV3
        /// Digit runs grouped in threes from the right (see `DigitGrouping`).
        case digitGroups(DigitGrouping)
        /// Any other pattern, compiled.
        case pattern(SplitProgram)
    }

    /// The `tokenizer.ggml.pre` value this was made for.
    public let name: String
    let rules: [Rule]
    /// Llama 3 family: a piece that is itself a vocabulary token is emitted whole, without merges.
    public let ignoreMerges: Bool
    /// llama.cpp adds BOS by default for these (when `tokenizer.ggml.add_bos_token` is absent).
    let addsBosByDefault: Bool

    /// Names accepted by `init(name:)`, grouped as in `definitions`.
    public static let supportedNames: [String] = definitions.flatMap(\.names)

    /// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre == name` (nil: "default"), or nil if unknown.
    public init?(name: String?) {
        let key = name ?? "default"
        guard let definition = PreTokenizer.definitionsByName[key] else { return nil }
        // The table's patterns are fixed and tested (PreTokenizerTableTests): one that fails to compile is a bug.
        try! self.init(name: key, patterns: definition.patterns, ignoreMerges: definition.ignoreMerges,
                       addsBos: definition.addsBos)
    }

    /// A cascade of the given patterns (hand-coded scanners where `useScanners` and one exists).
    public init(name: String, patterns: [String], ignoreMerges: Bool = false, addsBos: Bool = false, useScanners: Bool = true) throws {
        self.name = name
        rules = try patterns.map { pattern in
            if useScanners, let scanner = PreTokenizer.scanner(for: pattern) { return scanner }
            return .pattern(try PreTokenizer.compiled(pattern))
        }
        self.ignoreMerges = ignoreMerges
        addsBosByDefault = addsBos
    }

    /// Compiled patterns, shared by every tokenizer of the process (compiling builds a BMP bitmap per set).
    private static let cache = PatternCache()

    static func compiled(_ pattern: String) throws -> SplitProgram {
        try cache.program(pattern)
    }

    /// Checks that `pattern` parses and compiles (throws `SplitPatternError` saying why not).
    public static func validate(pattern: String) throws {
        _ = try compiled(pattern)
    }

    /// Number of split stages.
    public var stageCount: Int { rules.count }

    /// The pieces `text` is cut into (what the BPE then merges within), for inspection and tests.
    public func split(_ text: String) -> [String] {
        var bytes = Array(text.utf8)
        bytes.append(0)  // never an empty buffer
        var decoded = DecodedText()
        var pieces: [String] = []
        bytes.withUnsafeBufferPointer { buffer in
            decoded.decode(buffer, 0..<(buffer.count - 1))
            forEachPiece(decoded) { byteRange in
                pieces.append(String(decoding: UnsafeBufferPointer(rebasing: buffer[byteRange]), as: UTF8.self))
            }
        }
        return pieces
    }

    /// Calls `body` with the byte range (in the text `decoded` was decoded from) of every final piece, in order.
    func forEachPiece(_ decoded: DecodedText, _ body: (Range<Int>) -> Void) {
        let count = decoded.scalars.count
        if count == 0 { return }
        decoded.scalars.withUnsafeBufferPointer { scalars in
            decoded.flags.withUnsafeBufferPointer { flags in
                decoded.byteOffsets.withUnsafeBufferPointer { offsets in
                    let text = ScannedText(scalars: scalars, flags: flags)
                    var stack: [Int32] = []
                    splitStage(0, text, 0, count, &stack) { start, end in
                        body(Int(offsets[start])..<Int(offsets[end]))
                    }
                }
            }
        }
    }

    /// Applies rule `stage` to scalars `start..<end`, passing matches and gaps to the next stage.
    private func splitStage(_ stage: Int, _ text: ScannedText, _ start: Int, _ end: Int,
                            _ stack: inout [Int32], _ emit: (Int, Int) -> Void) {
        let rule = rules[stage]
        let isLast = stage + 1 == rules.count
        var position = start
        var pieceStart = start
        func pass(_ from: Int, _ to: Int, _ stack: inout [Int32]) {
            if isLast { emit(from, to) } else { splitStage(stage + 1, text, from, to, &stack, emit) }
        }
        var digitRunEnd = start  // digitGroups: end of the digit run the position is in
        while position < end {
            let matchEnd: Int?
            switch rule {
            case .pattern(let program):
                matchEnd = program.matchEnd(text.scalars, position, start, end, &stack)
            case .digitGroups(let grouping):
                matchEnd = text.digitGroupEnd(grouping, position, end, &digitRunEnd)
            default:
                let scanned = text.matchEnd(rule, position, end)
                matchEnd = scanned > position ? scanned : nil
            }
            guard let matchEnd else {
                position += 1
                continue
            }
            if pieceStart < position { pass(pieceStart, position, &stack) }
            if matchEnd > position {
                pass(position, matchEnd, &stack)
                position = matchEnd
            } else {
                position += 1  // an empty match only cuts
            }
            pieceStart = matchEnd
        }
        if pieceStart < end { pass(pieceStart, end, &stack) }
    }
}

/// The digit-grouping patterns, scanned by hand.
enum DigitGrouping: Sendable, Equatable {
    /// `(?=(\d{3})+(?!\d))`: empty matches (cuts) where the decimal digits left in the run are a multiple of 3.
    case cutsFromRight
    /// `\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))` (`numbers`) or `\d{1,3}(?=(?:\d{3})*\b)` (`boundary`):
    /// the run's first 1–3 digits so that the rest splits in threes; with `boundary`, nothing when a
    /// word character follows the run.
    case groupsFromRight(numbers: Bool, boundary: Bool)
}

/// Compiled split patterns by source, behind a lock.
final class PatternCache: @unchecked Sendable {
    private var programs: [String: SplitProgram] = [:]
    private let lock = NSLock()

    func program(_ pattern: String) throws -> SplitProgram {
        lock.lock()
        defer { lock.unlock() }
        if let program = programs[pattern] { return program }
        let program = try SplitProgram(pattern)
        programs[pattern] = program
        return program
    }
}

/// Scalars and class flags of one fragment, with the scanners for each rule.
struct ScannedText {
    let scalars: UnsafeBufferPointer<UInt32>
    let flags: UnsafeBufferPointer<UInt8>

    private static let apostrophe: UInt32 = 0x27
    private static let space: UInt32 = 0x20
    private static let carriageReturn: UInt32 = 0x0D
    private static let lineFeed: UInt32 = 0x0A

    @inline(__always) func has(_ index: Int, _ mask: UInt8) -> Bool { flags[index] & mask != 0 }
    @inline(__always) func isLetter(_ index: Int) -> Bool { has(index, UnicodeClass.letter) }
    @inline(__always) func isNumber(_ index: Int) -> Bool { has(index, UnicodeClass.number) }
    @inline(__always) func isWhitespace(_ index: Int) -> Bool { has(index, UnicodeClass.whitespace) }
    /// `[^\s\p{L}\p{N}]`
    @inline(__always) func isOther(_ index: Int) -> Bool {
        flags[index] & (UnicodeClass.whitespace | UnicodeClass.letter | UnicodeClass.number) == 0
    }
    @inline(__always) func isLineBreak(_ index: Int) -> Bool {
        scalars[index] == ScannedText.lineFeed || scalars[index] == ScannedText.carriageReturn
    }

    /// End of the run of scalars from `index` that satisfy `predicate`.
    @inline(__always)
    func run(from index: Int, _ end: Int, _ predicate: (Int) -> Bool) -> Int {
        var position = index
        while position < end && predicate(position) { position += 1 }
        return position
    }

    func matchEnd(_ rule: PreTokenizer.Rule, _ index: Int, _ end: Int) -> Int {
        switch rule {
        case .gpt2: return gpt2(index, end)
        case .llama3: return llama3(index, end, maxDigits: 3)
        case .qwen2: return llama3(index, end, maxDigits: 1)
        case .singleNumber: return isNumber(index) ? index + 1 : index
        case .numberTriples: return isNumber(index) ? min(run(from: index, end, isNumber), index + 3) : index
        case .numberRun: return run(from: index, end, isNumber)
        case .asciiDigitTriple:
            guard index + 3 <= end else { return index }
            for offset in 0..<3 where !(0x30...0x39).contains(scalars[index + offset]) { return index }
            return index + 3
        case .punctuationRun:
            return run(from: index, end) { position in
                if self.has(position, UnicodeClass.punctuation) { return true }
                switch self.scalars[position] {
                case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C: return true  // $ + < = > ^ ~ |
                default: return false
                }
            }
        case .cjkRun:
            return run(from: index, end) { position in
                let value = self.scalars[position]
                return (0x4E00...0x9FA5).contains(value) || (0x3040...0x30FF).contains(value)
            }
        case .deepseekV3: return deepseekV3(index, end)
        case .pattern, .digitGroups: preconditionFailure("compiled patterns and digit groups run in PreTokenizer.splitStage")
        }
    }

    /// Digit groups in threes from the right, in linear time (as patterns, each attempt scans the rest of
    /// the run: quadratic on a long run). `runEnd` caches the end of the current run between calls of
    /// one stage (positions only increase). Nil: no match at `index`.
    func digitGroupEnd(_ grouping: DigitGrouping, _ index: Int, _ end: Int, _ runEnd: inout Int) -> Int? {
        let anyNumber: Bool
        switch grouping {
        case .cutsFromRight: anyNumber = false
        case .groupsFromRight(let numbers, _): anyNumber = numbers
        }
        let isDigit: (Int) -> Bool = anyNumber ? isNumber : { GeneralCategories.index(of: self.scalars[$0]) == 8 }
        guard isDigit(index) else { return nil }
        if runEnd <= index { runEnd = run(from: index, end, isDigit) }
        let remaining = runEnd - index
        switch grouping {
        case .cutsFromRight:
            return remaining >= 3 && remaining % 3 == 0 ? index : nil
        case .groupsFromRight(_, let boundary):
            if boundary && runEnd < end && GeneralCategories.isWord(scalars[runEnd]) { return nil }
            return index + (remaining % 3 == 0 ? 3 : remaining % 3)
        }
    }

    /// Length of a contraction (`'s 't 're 've 'm 'll 'd`) at `index`, 0 if none.
    @inline(__always)
    func contraction(_ index: Int, _ end: Int, caseInsensitive: Bool) -> Int {
        guard scalars[index] == ScannedText.apostrophe, index + 1 < end else { return 0 }
        func lower(_ value: UInt32) -> UInt32 {
            caseInsensitive && (0x41...0x5A).contains(value) ? value + 0x20 : value
        }
        let first = lower(scalars[index + 1])
        switch first {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        default: break
        }
        guard index + 2 < end else { return 0 }
        let second = lower(scalars[index + 2])
        switch (first, second) {
        case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C): return 3  // re ve ll
        default: return 0
        }
    }

    /// Whitespace alternatives shared by all patterns: `\s+(?!\S)|\s+`. A run that reaches the end of
    /// the piece is taken whole; otherwise its last character is left to start the next piece (so " word"
    /// keeps its space), unless the run is a single character.
    @inline(__always)
    func whitespaceRun(_ index: Int, _ end: Int) -> Int {
        let runEnd = run(from: index, end, isWhitespace)
        if runEnd == end || runEnd - index == 1 { return runEnd }
        return runEnd - 1
    }

    /// `\s*[\r\n]+` at `index` (a whitespace position): up to and including the last line break of the
    /// whitespace run, or `index` if the run has none.
    @inline(__always)
    func whitespaceThroughLineBreak(_ index: Int, _ end: Int) -> Int {
        let runEnd = run(from: index, end, isWhitespace)
        var position = runEnd
        while position > index {
            if isLineBreak(position - 1) { return position }
            position -= 1
        }
        return index
    }

    func gpt2(_ index: Int, _ end: Int) -> Int {
        let length = contraction(index, end, caseInsensitive: false)
        if length > 0 { return index + length }
        let hasSpace = scalars[index] == ScannedText.space && index + 1 < end
        if hasSpace && isLetter(index + 1) { return run(from: index + 1, end, isLetter) }
        if isLetter(index) { return run(from: index, end, isLetter) }
        if hasSpace && isNumber(index + 1) { return run(from: index + 1, end, isNumber) }
        if isNumber(index) { return run(from: index, end, isNumber) }
        if hasSpace && isOther(index + 1) { return run(from: index + 1, end, isOther) }
        if isOther(index) { return run(from: index, end, isOther) }
        return whitespaceRun(index, end)
    }

    func llama3(_ index: Int, _ end: Int, maxDigits: Int) -> Int {
        let length = contraction(index, end, caseInsensitive: true)
        if length > 0 { return index + length }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !isLineBreak(index) && !isLetter(index) && !isNumber(index) && index + 1 < end && isLetter(index + 1) {
            return run(from: index + 1, end, isLetter)
        }
        if isLetter(index) { return run(from: index, end, isLetter) }
        // \p{N}{1,maxDigits}
        if isNumber(index) { return min(run(from: index, end, isNumber), index + maxDigits) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        if scalars[index] == ScannedText.space && index + 1 < end && isOther(index + 1) {
            return run(from: run(from: index + 1, end, isOther), end, isLineBreak)
        }
        if isOther(index) { return run(from: run(from: index, end, isOther), end, isLineBreak) }
        // \s*[\r\n]+ | \s+(?!\S) | \s+
        let throughBreak = whitespaceThroughLineBreak(index, end)
        if throughBreak > index { return throughBreak }
        return whitespaceRun(index, end)
    }

    func deepseekV3(_ index: Int, _ end: Int) -> Int {
        let value = scalars[index]
        // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
        let isAsciiPunctuation = (0x21...0x2F).contains(value) || (0x3A...0x40).contains(value)
            || (0x5B...0x60).contains(value) || (0x7B...0x7E).contains(value)
        func isAsciiLetter(_ position: Int) -> Bool {
            let scalar = scalars[position] | 0x20
            return scalar >= 0x61 && scalar <= 0x7A && scalars[position] < 0x80
        }
        if isAsciiPunctuation && index + 1 < end && isAsciiLetter(index + 1) {
            return run(from: index + 1, end, isAsciiLetter)
        }
        // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
        let letterOrMark = UnicodeClass.letter | UnicodeClass.mark
        let punctuationOrSymbol = UnicodeClass.punctuation | UnicodeClass.symbol
        let isLetterOrMark: (Int) -> Bool = { self.flags[$0] & letterOrMark != 0 }
        let isPunctuationOrSymbol: (Int) -> Bool = { self.flags[$0] & punctuationOrSymbol != 0 }
        if !isLineBreak(index) && flags[index] & (UnicodeClass.letter | punctuationOrSymbol) == 0
            && index + 1 < end && isLetterOrMark(index + 1) {
            return run(from: index + 1, end, isLetterOrMark)
        }
        if isLetterOrMark(index) { return run(from: index, end, isLetterOrMark) }
        // ` ?[\p{P}\p{S}]+[\r\n]*`
        if value == ScannedText.space && index + 1 < end && isPunctuationOrSymbol(index + 1) {
            return run(from: run(from: index + 1, end, isPunctuationOrSymbol), end, isLineBreak)
        }
        if isPunctuationOrSymbol(index) {
            return run(from: run(from: index, end, isPunctuationOrSymbol), end, isLineBreak)
        }
        if !isWhitespace(index) { return index }  // no alternative matches here
        let throughBreak = whitespaceThroughLineBreak(index, end)
        if throughBreak > index { return throughBreak }
        return whitespaceRun(index, end)
    }
}
