/// Text ↔ token ids for a GGUF vocabulary, matching llama.cpp's `llama_vocab` (and the Hugging Face
/// tokenizers of the supported models): byte-level BPE (`gpt2`) with its pre-tokenizer, SentencePiece
/// BPE (`llama`) with byte fallback, and Gemma 4's BPE over "▁"-escaped UTF-8 with byte fallback (`gemma4`).
///
/// Encoding: special tokens written in the text are cut out first (`SpecialTokenMatcher`; control tokens
/// only when `parseSpecial`, user-defined tokens always), then each text run is pre-tokenized and merged
/// (BPE) or escaped and merged (SentencePiece, Gemma 4). Immutable after `init`, so one instance can be shared
/// between threads.
/// Which special tokens are chat markup (control tokens, and user-defined ones the template writes) and
/// must never come from user text, and which may still match there (`Tokenizer.literalTokenPolicy`).
public struct LiteralTokenPolicy: Sendable {
    let markup: Set<Int32>
    let matcher: SpecialTokenMatcher
}

public final class Tokenizer: Sendable {
    enum Algorithm: Sendable {
        case byteLevel(ByteLevelBPE, PreTokenizer)
        case sentencePiece(SentencePieceBPE)
        case gemma4(Gemma4BPE)
    }

    let algorithm: Algorithm
    /// Token text → id.
    let tokenTable: ByteStringTable
    /// `TokenType` raw value of each token.
    let tokenTypes: [UInt8]
    /// Raw bytes each token stands for (`tokenPiece`), all in one buffer: `pieceStarts[id]..<pieceStarts[id + 1]`.
    let pieceBytes: [UInt8]
    let pieceStarts: [Int32]
    /// Special tokens matched in the text with `parseSpecial` (control, unknown, user-defined) and without it.
    let specialMatcher: SpecialTokenMatcher
    let userDefinedMatcher: SpecialTokenMatcher
    let endOfGeneration: Set<Int32>
    let addsBos: Bool
    let addsEos: Bool
    let addsSpacePrefix: Bool

    public let vocabularySize: Int
    public let bosId: Int32?
    public let eosId: Int32?
    public let eotId: Int32?
    public let unknownId: Int32?
    public let paddingId: Int32?

    public init(_ vocab: TokenizerVocabulary) throws {
        let count = vocab.tokens.count
        guard count > 0 else { throw TokenizerError.emptyVocabulary }
        if let types = vocab.tokenTypes, types.count < count {
            throw TokenizerError.lengthMismatch(field: "tokenizer.ggml.token_type", expected: count, actual: types.count)
        }
        if let scores = vocab.scores, scores.count < count {
            throw TokenizerError.lengthMismatch(field: "tokenizer.ggml.scores", expected: count, actual: scores.count)
        }
        func checked(_ id: Int?, _ field: String) throws -> Int32? {
            guard let id else { return nil }
            guard id >= 0 && id < count else { throw TokenizerError.tokenIdOutOfRange(field: field, id: id, vocabularySize: count) }
            return Int32(id)
        }
        vocabularySize = count
        var types: [UInt8] = (0..<count).map { index in
            guard let raw = vocab.tokenTypes?[index], (0...6).contains(raw) else { return UInt8(TokenType.normal.rawValue) }
            return UInt8(raw)
        }
        let table = ByteStringTable(strings: vocab.tokens.map { Array($0.utf8) })
        tokenTable = table

        // Whether normal tokens spell a space as "▁" and bytes as `<0xAB>` tokens (else: GPT-2 byte alphabet).
        let isSentencePiece: Bool
        switch vocab.model {
        case "gpt2":
            guard let pre = PreTokenizer(name: vocab.pre) else {
                throw TokenizerError.unsupportedPreTokenizer(vocab.pre ?? "")
            }
            guard let merges = vocab.merges else { throw TokenizerError.missingMerges }
            algorithm = .byteLevel(ByteLevelBPE(tokenTable: table, merges: merges), pre)
            isSentencePiece = false
            addsBos = vocab.addBos ?? pre.addsBosByDefault
            addsSpacePrefix = vocab.addSpacePrefix ?? false
            bosId = try checked(vocab.bosId, "tokenizer.ggml.bos_token_id")
            eosId = try checked(vocab.eosId, "tokenizer.ggml.eos_token_id")
            unknownId = try checked(vocab.unknownId, "tokenizer.ggml.unknown_token_id")
        case "llama":
            let scores = vocab.scores ?? [Float](repeating: 0, count: count)
            let mergeable = types.map { $0 == TokenType.normal.rawValue || $0 == TokenType.userDefined.rawValue || $0 == 0 }
            // llama.cpp's defaults when the file names none: BOS 1, EOS 2, UNK 0.
            bosId = try checked(vocab.bosId ?? (count > 1 ? 1 : nil), "tokenizer.ggml.bos_token_id")
            eosId = try checked(vocab.eosId ?? (count > 2 ? 2 : nil), "tokenizer.ggml.eos_token_id")
            unknownId = try checked(vocab.unknownId ?? 0, "tokenizer.ggml.unknown_token_id")
            let unknown = unknownId ?? 0
            let byteFallback: [Int32] = (0..<256).map { byte in
                let hex = Array("0123456789ABCDEF".utf8)
                let spelled: [UInt8] = [0x3C, 0x30, 0x78, hex[byte >> 4], hex[byte & 15], 0x3E]  // <0xAB>
                let id = table.lookup(spelled)
                if id >= 0 { return id }
                let raw = table.lookup([UInt8(byte)])
                return raw >= 0 ? raw : unknown
            }
            algorithm = .sentencePiece(SentencePieceBPE(scores: Array(scores[0..<count]), mergeable: mergeable,
                                                        byteFallback: byteFallback))
            isSentencePiece = true
            addsBos = vocab.addBos ?? true
            addsSpacePrefix = vocab.addSpacePrefix ?? true
        case "gemma4":
            // llama.cpp: vocabulary type BPE, merges required, pre-tokenizer GEMMA4 whatever
            // `tokenizer.ggml.pre` says; special ids only from the file (no defaults).
            guard let merges = vocab.merges else { throw TokenizerError.missingMerges }
            algorithm = .gemma4(Gemma4BPE(tokenTable: table, merges: merges))
            isSentencePiece = true  // pieces: "▁" → space, <0xAB> → byte (escape_whitespaces)
            // llama.cpp forces add_bos on for Gemma 4 even when the file says false (PR 21500).
            addsBos = true
            // The BPE path never prepends a space (add_space_prefix is false for BPE; Gemma 4's converter
            // writes false too), so decoding has none to strip.
            addsSpacePrefix = false
            bosId = try checked(vocab.bosId, "tokenizer.ggml.bos_token_id")
            eosId = try checked(vocab.eosId, "tokenizer.ggml.eos_token_id")
            unknownId = try checked(vocab.unknownId, "tokenizer.ggml.unknown_token_id")
        default:
            throw TokenizerError.unsupportedModel(vocab.model)
        }
        addsEos = vocab.addEos ?? false
        paddingId = try checked(vocab.paddingId, "tokenizer.ggml.padding_token_id")
        eotId = try checked(vocab.eotId, "tokenizer.ggml.eot_token_id")

        // End of generation: EOS, EOT, and the tokens llama.cpp recognises by their text. llama.cpp also
        // makes each token found by its text a control token if the file did not (e.g. Gemma 4's
        // `<|tool_response>`, written as user-defined by the converter): it is then matched in the text
        // only with `parseSpecial` and left out by `skipSpecial`.
        var stops = Set<Int32>()
        if let eosId { stops.insert(eosId) }
        if let eotId { stops.insert(eotId) }
        for text in Tokenizer.endOfGenerationTexts {
            let id = table.lookup(Array(text.utf8))
            if id >= 0 {
                stops.insert(id)
                types[Int(id)] = UInt8(TokenType.control.rawValue)
            }
        }
        endOfGeneration = stops
        tokenTypes = types

        // Raw bytes of every token.
        var bytes: [UInt8] = []
        var starts: [Int32] = [0]
        bytes.reserveCapacity(table.storage.count)
        starts.reserveCapacity(count + 1)
        for (id, text) in vocab.tokens.enumerated() {
            bytes.append(contentsOf: Tokenizer.piece(text: text, type: types[id], sentencePiece: isSentencePiece))
            starts.append(Int32(bytes.count))
        }
        pieceBytes = bytes
        pieceStarts = starts

        var special: [(id: Int32, text: [UInt8])] = []
        var userDefined: [(id: Int32, text: [UInt8])] = []
        for id in 0..<count {
            switch types[id] {
            case UInt8(TokenType.control.rawValue), UInt8(TokenType.unknown.rawValue):
                special.append((Int32(id), Array(table.bytes(of: id))))
            case UInt8(TokenType.userDefined.rawValue):
                special.append((Int32(id), Array(table.bytes(of: id))))
                userDefined.append((Int32(id), Array(table.bytes(of: id))))
            default:
                break
            }
        }
        specialMatcher = SpecialTokenMatcher(tokens: special)
        userDefinedMatcher = SpecialTokenMatcher(tokens: userDefined)
    }

    /// Token texts llama.cpp treats as end of generation (its EOT/EOG lists and the FIM pad/repo/sep tokens).
    static let endOfGenerationTexts = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>",
        "<eos>", "<turn|>", "<|tool_response>",  // Gemma 4
        "<｜end▁of▁sentence｜>", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>",
        "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
    ]

    /// The bytes a token stands for: control, unknown and user-defined tokens as written; normal tokens
    /// through the byte alphabet (byte-level BPE) or with "▁" read as a space (SentencePiece, Gemma 4:
    /// llama.cpp's `llama_unescape_whitespace`); byte tokens `<0xAB>` as that byte; unused tokens as
    /// nothing (llama.cpp's `token_to_piece`).
    static func piece(text: String, type: UInt8, sentencePiece: Bool) -> [UInt8] {
        switch type {
        case UInt8(TokenType.control.rawValue), UInt8(TokenType.unknown.rawValue), UInt8(TokenType.userDefined.rawValue):
            return Array(text.utf8)
        case UInt8(TokenType.byte.rawValue):
            let utf8 = Array(text.utf8)
            if utf8.count == 6, utf8[0] == 0x3C, utf8[1] == 0x30, utf8[2] == 0x78, utf8[5] == 0x3E,
               let value = UInt8(String(decoding: utf8[3...4], as: UTF8.self), radix: 16) {
                return [value]
            }
            return utf8
        case UInt8(TokenType.unused.rawValue):
            return []
        default:
            if sentencePiece {
                var bytes: [UInt8] = []
                var utf8 = Array(text.utf8)[...]
                while let first = utf8.first {
                    // U+2581 "▁" is E2 96 81.
                    if first == 0xE2 && utf8.count >= 3 && utf8[utf8.startIndex + 1] == 0x96 && utf8[utf8.startIndex + 2] == 0x81 {
                        bytes.append(0x20)
                        utf8 = utf8.dropFirst(3)
                    } else {
                        bytes.append(first)
                        utf8 = utf8.dropFirst()
                    }
                }
                return bytes
            }
            return ByteAlphabet.decode(text)
        }
    }

    // MARK: - Encoding

    /// Token ids of `text`. `addSpecial`: add BOS / EOS as the vocabulary's flags say. `parseSpecial`:
    /// control tokens written in the text (e.g. `<|im_start|>`) become those tokens; otherwise they are
    /// tokenized as plain text. User-defined tokens are always matched.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int32] {
        encode(text, addSpecial: addSpecial) { bytes, body in
            (parseSpecial ? specialMatcher : userDefinedMatcher).partition(bytes, body)
        }
    }

    /// Token ids of a rendered chat prompt whose `literal` byte ranges (sorted, disjoint) hold text a user
    /// wrote: special tokens are parsed everywhere else (the template's markup), and inside them only
    /// the tokens `policy` allows, so `<|im_end|>` typed in a message stays text.
    public func encode(_ text: String, addSpecial: Bool = true, literal ranges: [Range<Int>], policy: LiteralTokenPolicy) -> [Int32] {
        encode(text, addSpecial: addSpecial) { bytes, body in
            specialMatcher.partition(bytes, literal: ranges, literalTokens: policy.matcher, body)
        }
    }

    /// Byte ranges of `text` that `encode` with special tokens parsed would turn into markup tokens.
    public func markupRanges(_ text: String, policy: LiteralTokenPolicy) -> [Range<Int>] {
        var bytes = Array(text.utf8)
        let count = bytes.count
        bytes.append(0)
        return bytes.withUnsafeBufferPointer {
            specialMatcher.matches(UnsafeBufferPointer(rebasing: $0[0..<count])).filter { policy.markup.contains($0.id) }.map(\.range)
        }
    }

    /// Control and unknown tokens are markup; a user-defined token is markup when `isMarkup` claims its
    /// text. The other user-defined tokens (plain vocabulary added by hand, e.g. HTML tags or runs of
    /// spaces) still match inside user text, as they do without special-token parsing.
    public func literalTokenPolicy(isMarkup: (String) -> Bool) -> LiteralTokenPolicy {
        var allowed: [(id: Int32, text: [UInt8])] = []
        var markup = Set<Int32>()
        for id in 0..<vocabularySize {
            switch tokenTypes[id] {
            case UInt8(TokenType.control.rawValue), UInt8(TokenType.unknown.rawValue):
                markup.insert(Int32(id))
            case UInt8(TokenType.userDefined.rawValue):
                let text = Array(tokenTable.bytes(of: id))
                if isMarkup(String(decoding: text, as: UTF8.self)) { markup.insert(Int32(id)) } else { allowed.append((Int32(id), text)) }
            default:
                break
            }
        }
        return LiteralTokenPolicy(markup: markup, matcher: SpecialTokenMatcher(tokens: allowed))
    }

    private func encode(_ text: String, addSpecial: Bool,
                        partition: (UnsafeBufferPointer<UInt8>, (SpecialTokenMatcher.Fragment) -> Void) -> Void) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(text.utf8.count / 3 + 2)
        if addSpecial && addsBos, let bosId { output.append(bosId) }
        var bytes = Array(text.utf8)
        let textCount = bytes.count
        bytes.append(0)  // never an empty buffer; the terminator is outside every range used
        var scratch = EncodingScratch()
        bytes.withUnsafeBufferPointer { whole in
            let buffer = UnsafeBufferPointer(rebasing: whole[0..<textCount])
            var previousWasSpecial = true
            partition(buffer) { fragment in
                switch fragment {
                case .token(let id):
                    output.append(id)
                    previousWasSpecial = true
                case .text(let range):
                    encodeText(buffer, range, spacePrefix: addsSpacePrefix && previousWasSpecial, &scratch, &output)
                    previousWasSpecial = false
                }
            }
        }
        if addSpecial && addsEos, let eosId { output.append(eosId) }
        return output
    }

    /// SentencePiece-style text: every " " becomes "▁" (E2 96 81), optionally one "▁" first.
    private func escapeSpaces(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, prefix: Bool, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        if prefix { out.append(contentsOf: [0xE2, 0x96, 0x81]) }
        for index in range {
            let byte = bytes[index]
            if byte == 0x20 { out.append(contentsOf: [0xE2, 0x96, 0x81]) } else { out.append(byte) }
        }
    }

    private func encodeText(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, spacePrefix: Bool,
                            _ scratch: inout EncodingScratch, _ output: inout [Int32]) {
        switch algorithm {
        case .byteLevel(let bpe, let pre):
            scratch.decoded.decode(bytes, range)
            pre.forEachPiece(scratch.decoded) { pieceRange in
                let piece = UnsafeBufferPointer(rebasing: bytes[pieceRange])
                if pre.ignoreMerges {
                    let whole = wholeTokenId(piece, &scratch.spelled)
                    if whole >= 0 {
                        output.append(whole)
                        return
                    }
                }
                bpe.encodePiece(piece, &scratch.merge, &output)
            }
        case .sentencePiece(let spm):
            // Spaces become "▁" (E2 96 81); a leading one is added after BOS / a special token if the
            // vocabulary asks for a space prefix.
            escapeSpaces(bytes, range, prefix: spacePrefix, into: &scratch.escaped)
            let escaped = scratch.escaped
            escaped.withUnsafeBufferPointer { buffer in
                spm.encode(buffer, tokenTable, &scratch.pieces, &output)
            }
        case .gemma4(let bpe):
            // llama.cpp (escape_whitespaces): every " " becomes "▁" (E2 96 81), nothing else changes and no
            // space is prepended, also after BOS or a special token.
            escapeSpaces(bytes, range, prefix: false, into: &scratch.escaped)
            let escaped = scratch.escaped
            escaped.withUnsafeBufferPointer { buffer in
                bpe.encode(buffer, tokenTable, &scratch.merge, &output)
            }
        }
    }

    /// Id of the token spelled exactly as this piece in the byte alphabet, or -1.
    private func wholeTokenId(_ piece: UnsafeBufferPointer<UInt8>, _ spelled: inout [UInt8]) -> Int32 {
        spelled.removeAll(keepingCapacity: true)
        for byte in piece { spelled.append(contentsOf: ByteAlphabet.encoded[Int(byte)]) }
        return spelled.withUnsafeBufferPointer { tokenTable.lookup($0.baseAddress!, $0.count) }
    }

    // MARK: - Decoding

    /// The raw bytes of one token (see `piece(text:type:sentencePiece:)`); empty for an id outside the vocabulary.
    public func tokenPiece(_ id: Int32) -> [UInt8] {
        guard id >= 0 && Int(id) < vocabularySize else { return [] }
        return Array(pieceBytes[Int(pieceStarts[Int(id)])..<Int(pieceStarts[Int(id) + 1])])
    }

    /// Whether a token is a control or unknown token (what `skipSpecial` leaves out).
    public func isSpecial(_ id: Int32) -> Bool {
        guard id >= 0 && Int(id) < vocabularySize else { return false }
        let type = tokenTypes[Int(id)]
        return type == UInt8(TokenType.control.rawValue) || type == UInt8(TokenType.unknown.rawValue)
    }

    /// The text of `ids`. `skipSpecial` leaves out control and unknown tokens (BOS, EOS, `<|im_end|>`, ...).
    /// Byte sequences that are not valid UTF-8 become U+FFFD. With a SentencePiece space prefix, the
    /// leading space of the first piece is removed (it was added by `encode`).
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        var first = true
        for id in ids {
            appendPiece(id, skipSpecial: skipSpecial, isFirst: &first, to: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends one token's bytes for decoding: skips special tokens if asked, strips the space prefix.
    func appendPiece(_ id: Int32, skipSpecial: Bool, isFirst: inout Bool, to bytes: inout [UInt8]) {
        guard id >= 0 && Int(id) < vocabularySize else { return }
        if skipSpecial && isSpecial(id) { return }
        var start = Int(pieceStarts[Int(id)])
        let end = Int(pieceStarts[Int(id) + 1])
        if isFirst {
            if addsSpacePrefix, case .sentencePiece = algorithm, start < end, pieceBytes[start] == 0x20,
               tokenTypes[Int(id)] != UInt8(TokenType.control.rawValue) {
                start += 1
            }
            if !isSpecial(id) { isFirst = false }
        }
        bytes.append(contentsOf: pieceBytes[start..<end])
    }

    // MARK: - Special tokens

    /// Whether generation should stop at this token: EOS, EOT, and control tokens that end a turn or a
    /// text (`<|im_end|>`, `<|endoftext|>`, `<end_of_turn>`, `<|eot_id|>`, ...), as llama.cpp's EOG set.
    public func isEndOfGeneration(_ id: Int32) -> Bool {
        endOfGeneration.contains(id)
    }

    /// The id of a token by its exact text (e.g. "<|im_start|>"), or nil.
    public func tokenId(of text: String) -> Int32? {
        let id = tokenTable.lookup(Array(text.utf8))
        return id >= 0 ? id : nil
    }

    /// Whether `encode` adds BOS / EOS when `addSpecial` is true.
    public var addsBosToken: Bool { addsBos && bosId != nil }
    public var addsEosToken: Bool { addsEos && eosId != nil }
}

/// Buffers one `encode` call reuses from fragment to fragment and piece to piece.
struct EncodingScratch {
    var decoded = DecodedText()
    var merge = MergeScratch()
    var pieces = PieceScratch()
    var escaped: [UInt8] = []
    var spelled: [UInt8] = []
}
