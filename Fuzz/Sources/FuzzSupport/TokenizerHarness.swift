// What both tokenizer targets do with one input, on one of a fixed list of tokenizers.
//
// Input: byte 0 picks the tokenizer (index modulo the list) and options, the rest is the payload.
// * encode the payload as text (invalid UTF-8 replaced), with and without special-token parsing, and
//   through the literal-range entry the chat path uses; every id is inside the vocabulary; a whole
//   literal range with nothing counted as markup gives exactly `encode(parseSpecial: false)`, no range
//   gives exactly `encode(parseSpecial: true)`;
// * where the vocabulary can spell every byte of the text, decoding the ids gives the text back;
// * the payload read as token ids (16-bit little-endian, some outside the vocabulary), and the encoded
//   ids, pushed through StreamingDetokenizer (with a flush in the middle) give exactly `decode`.

import Tokenizers

/// A tokenizer under test and what the checks need to know about its vocabulary.
public struct FuzzTokenizer {
    public let name: String
    public let tokenizer: Tokenizer
    /// Bytes the vocabulary can spell (a byte token / byte-alphabet token exists).
    let spellable: [Bool]
    /// Decoding gives back the text for texts made of spellable bytes (no "▁" in SentencePiece-style ones).
    let roundTrips: Bool
    let escapesSpaces: Bool
    /// User-defined, control and unknown tokens (matched in text; decoded as written).
    let specialIds: Set<Int32>
    /// Nothing is markup: every user-defined token may match inside literal text.
    let noMarkup: LiteralTokenPolicy
    /// What the server uses: markup is what the fixed template below writes.
    let chatPolicy: LiteralTokenPolicy

    static let chatMarkup = "<|im_start|><|im_end|><start_of_turn><end_of_turn><tool></tool><s></s>"

    public init(name: String, vocabulary: TokenizerVocabulary) throws {
        self.name = name
        tokenizer = try Tokenizer(vocabulary)
        let types = vocabulary.tokenTypes ?? []
        var special = Set<Int32>()
        for (id, type) in types.enumerated() where type == 2 || type == 3 || type == 4 { special.insert(Int32(id)) }
        // Tokens the tokenizer makes control by their text (end of generation) count too.
        for id in 0..<Int32(tokenizer.vocabularySize) where tokenizer.isSpecial(id) { special.insert(id) }
        specialIds = special
        let byteLevel = vocabulary.model == "gpt2"
        escapesSpaces = !byteLevel
        var spellable = [Bool](repeating: false, count: 256)
        for byte in 0..<256 {
            if byteLevel {
                spellable[byte] = tokenizer.tokenId(of: FuzzTokenizer.byteAlphabet(UInt8(byte))) != nil
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                spellable[byte] = tokenizer.tokenId(of: "<0x" + (hex.count == 1 ? "0" : "") + hex + ">") != nil
            }
        }
        self.spellable = spellable
        roundTrips = byteLevel || tokenizer.tokenId(of: "\u{2581}") != nil
        noMarkup = tokenizer.literalTokenPolicy { _ in false }
        chatPolicy = tokenizer.literalTokenPolicy { text in FuzzTokenizer.chatMarkup.contains(text) }
    }

    /// GPT-2's byte alphabet: the character standing for a byte in byte-level BPE vocabularies.
    static func byteAlphabet(_ byte: UInt8) -> String {
        let b = Int(byte)
        if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
            return String(Character(Unicode.Scalar(UInt32(b))!))
        }
        var next = 256
        for other in 0..<b where !((0x21...0x7E).contains(other) || (0xA1...0xAC).contains(other) || (0xAE...0xFF).contains(other)) {
            next += 1
        }
        return String(Character(Unicode.Scalar(UInt32(next))!))
    }
}

public enum TokenizerHarness {
    public static func run(_ input: [UInt8], on tokenizers: [FuzzTokenizer]) {
        guard !tokenizers.isEmpty else { return }
        var cursor = FuzzCursor(input)
        let selector = cursor.byte()
        let t = tokenizers[Int(selector) % tokenizers.count]
        let skipSpecial = selector & 0x80 != 0
        let payload = Array(cursor.remaining)
        let text = Fuzz.text(payload)
        let tokenizer = t.tokenizer
        let vocabulary = Int32(tokenizer.vocabularySize)

        // Encoding.
        let parsed = tokenizer.encode(text, addSpecial: true, parseSpecial: true)
        let plain = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        for ids in [parsed, plain] {
            Fuzz.check(ids.allSatisfy { $0 >= 0 && $0 < vocabulary }, "\(t.name): encode gave an id outside the vocabulary")
        }
        let whole = [0..<text.utf8.count]
        let literal = tokenizer.encode(text, addSpecial: false, literal: whole, policy: t.noMarkup)
        Fuzz.check(literal == plain, "\(t.name): a whole literal range without markup differs from parseSpecial: false")
        let none = tokenizer.encode(text, addSpecial: true, literal: [], policy: t.chatPolicy)
        Fuzz.check(none == parsed, "\(t.name): no literal range differs from parseSpecial: true")
        // The chat path: markup ranges of the text, every other one literal.
        let markup = tokenizer.markupRanges(text, policy: t.chatPolicy)
        var previous = 0
        for r in markup {
            Fuzz.check(r.lowerBound >= previous && r.upperBound <= text.utf8.count && !r.isEmpty, "\(t.name): markup ranges \(markup)")
            previous = r.upperBound
        }
        let mixed = tokenizer.encode(text, addSpecial: true, literal: markup.enumerated().filter { $0.offset % 2 == 0 }.map(\.element),
                                     policy: t.chatPolicy)
        Fuzz.check(mixed.allSatisfy { $0 >= 0 && $0 < vocabulary }, "\(t.name): literal encode gave an id outside the vocabulary")

        // Decoding gives the text back where the vocabulary can spell it.
        if t.roundTrips, text.utf8.allSatisfy({ t.spellable[Int($0)] }), !(t.escapesSpaces && text.unicodeScalars.contains("\u{2581}")),
           !plain.contains(where: t.specialIds.contains) {
            let back = tokenizer.decode(plain)
            Fuzz.check(back == text, "\(t.name): decode(encode(text)) != text: \(Array(text.utf8)) -> \(plain) -> \(Array(back.utf8))")
        }

        // Streaming detokenizer against decode.
        var ids: [Int32] = []
        var i = 0
        while i + 1 < payload.count {
            let raw = Int32(payload[i]) | Int32(payload[i + 1]) << 8
            ids.append(raw % (vocabulary + 4) - 2)   // a few ids outside the vocabulary on both sides
            i += 2
        }
        let cut = payload.isEmpty ? 0 : Int(payload[0]) % (ids.count + 1)
        for sequence in [ids, parsed] {
            var stream = StreamingDetokenizer(tokenizer: tokenizer, skipSpecial: skipSpecial)
            let at = min(cut, sequence.count)
            var first = ""
            var pieces: [[UInt8]] = []
            for id in sequence[..<at] {
                let piece = stream.push(id)
                pieces.append(Array(piece.utf8))
                first += piece
            }
            first += stream.flush()
            let expected = tokenizer.decode(Array(sequence[..<at]), skipSpecial: skipSpecial)
            Fuzz.check(first == expected, "\(t.name): streamed text differs from decode: ids \(Array(sequence[..<at])), token bytes "
                       + "\(sequence[..<at].map { tokenizer.tokenPiece($0) }), pieces \(pieces + [Array(first.utf8)]), decode \(Array(expected.utf8))")
            var second = ""
            for id in sequence[at...] { second += stream.push(id) }
            second += stream.flush()
            Fuzz.check(second == tokenizer.decode(Array(sequence[at...]), skipSpecial: skipSpecial),
                       "\(t.name): streamed text after a flush differs from decode: \(Array(sequence[at...]))")
        }
        _ = ids.prefix(16).map { (tokenizer.tokenPiece($0), tokenizer.isSpecial($0), tokenizer.isEndOfGeneration($0)) }
    }
}
