import Testing
import Tokenizers

/// Small hand-made vocabularies for paths the two real models do not take.
@Suite("Synthetic vocabularies")
struct SyntheticVocabularyTests {
    /// A Llama-2-style SentencePiece vocabulary: space prefix on, byte fallback, BOS added.
    static func sentencePiece(addSpacePrefix: Bool? = nil) throws -> Tokenizer {
        var tokens = ["<unk>", "<s>", "</s>"]
        var types: [Int32] = [2, 3, 3]
        var scores: [Float] = [0, 0, 0]
        for byte in 0..<256 {
            tokens.append("<0x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2) + ">")
            types.append(6)
            scores.append(0)
        }
        // Merge priority by score: "▁h" before "hi"; so "▁hi" comes from "▁h" + "i".
        for (text, score) in [("▁", -1.0), ("h", -2.0), ("i", -3.0), ("▁h", -4.0), ("▁hi", -5.0), ("hi", -6.0),
                              ("!", -7.0)] as [(String, Float)] {
            tokens.append(text)
            types.append(1)
            scores.append(score)
        }
        return try Tokenizer(TokenizerVocabulary(model: "llama", tokens: tokens, scores: scores, tokenTypes: types,
                                                 bosId: 1, eosId: 2, unknownId: 0, addSpacePrefix: addSpacePrefix))
    }

    @Test("SentencePiece: space prefix, merges by score, byte fallback, decode strips the prefix")
    func sentencePieceVocabulary() throws {
        let tokenizer = try Self.sentencePiece()
        let id = { (text: String) in tokenizer.tokenId(of: text)! }
        #expect(tokenizer.addsBosToken)
        #expect(tokenizer.encode("hi") == [1, id("▁hi")])
        #expect(tokenizer.encode("hi hi!", addSpecial: false) == [id("▁hi"), id("▁hi"), id("!")])
        // "é" is not a piece: its UTF-8 bytes C3 A9 as byte tokens.
        #expect(tokenizer.encode("é", addSpecial: false) == [id("▁"), id("<0xC3>"), id("<0xA9>")])
        #expect(tokenizer.decode(tokenizer.encode("hi é!")) == "<s>hi é!")
        #expect(tokenizer.decode(tokenizer.encode("hi é!"), skipSpecial: true) == "hi é!")
        // After a special token the text gets the space prefix again, as in llama.cpp.
        #expect(tokenizer.encode("</s>hi", addSpecial: false) == [2, id("▁hi")])
        let noPrefix = try Self.sentencePiece(addSpacePrefix: false)
        #expect(noPrefix.encode("hi", addSpecial: false) == [noPrefix.tokenId(of: "hi")!])
    }

    @Test("byte-level BPE: Llama 3 pre-tokenizer emits whole-vocabulary pieces without merging")
    func ignoreMerges() throws {
        // Byte alphabet for a-z and space ("Ġ"), one merge "a b", and the token "Ġabc" that no merge builds.
        let tokens = (0x61...0x7A).map { String(UnicodeScalar($0)!) } + ["Ġ", "ab", "Ġabc", "<|begin_of_text|>"]
        let types = [Int32](repeating: 1, count: tokens.count - 1) + [3]
        let vocab = TokenizerVocabulary(model: "gpt2", pre: "llama-bpe", tokens: tokens, tokenTypes: types,
                                        merges: ["a b"], bosId: tokens.count - 1)
        let tokenizer = try Tokenizer(vocab)
        let id = { (text: String) in tokenizer.tokenId(of: text)! }
        #expect(tokenizer.addsBosToken)  // llama3 pre-tokenizers add BOS unless the file says otherwise
        #expect(tokenizer.encode(" abc", addSpecial: false) == [id("Ġabc")])
        #expect(tokenizer.encode("abc", addSpecial: false) == [id("ab"), id("c")])
        var gpt2 = vocab
        gpt2.pre = "gpt2"
        let plain = try Tokenizer(gpt2)
        #expect(!plain.addsBosToken)
        #expect(plain.encode(" abc") == [id("Ġ"), id("ab"), id("c")])
    }

    @Test("empty text")
    func emptyText() throws {
        let tokenizer = try Self.sentencePiece()
        #expect(tokenizer.encode("") == [1])
        #expect(tokenizer.encode("", addSpecial: false) == [])
        #expect(tokenizer.decode([]) == "")
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        #expect(stream.flush() == "")
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
