import Foundation
import Testing
import Tokenizers
import GGUF
import Engine

/// The 512-token cut of SmolLM2's tokenizer in the tiny llama fixture (shared/models/tiny), checked
/// against the ids Hugging Face and llama.cpp give (`tokenizer_check` in llama.golden.json).
@Suite("Tiny fixture tokenizer")
struct TinyFixtureTests {
    static func load() throws -> Tokenizer {
        try Tokenizer(vocabulary(Fixtures.path("llama.f32.gguf")))
    }

    @Test("tokenizer_check ids")
    func tokenizerCheck() throws {
        let tokenizer = try Self.load()
        let golden = try #require(try Fixtures.json("llama.golden.json") as? [String: Any])
        let check = try #require(golden["tokenizer_check"] as? [String: Any])
        let text = try #require(check["text"] as? String)
        let expected = try #require(check["ids"] as? [Int]).map { Int32($0) }
        #expect(tokenizer.vocabularySize == 512)
        #expect(tokenizer.addsBosToken == false)
        let ids = tokenizer.encode(text)
        #expect(ids == expected, "\(firstDifference(ids, expected))")
        #expect(tokenizer.decode(ids) == text)
    }

    @Test("prompt ids decode to the prompt text")
    func promptDecodes() throws {
        let tokenizer = try Self.load()
        let golden = try #require(try Fixtures.json("llama.golden.json") as? [String: Any])
        let ids = try #require(golden["token_ids"] as? [Int]).map { Int32($0) }
        let text = try #require(golden["prompt_text"] as? String)
        #expect(tokenizer.decode(ids) == text)
    }

    @Test("special tokens, BOS/EOS flags and end of generation")
    func specialTokens() throws {
        let tokenizer = try Self.load()
        #expect(tokenizer.bosId == 1)
        #expect(tokenizer.eosId == 2)
        #expect(tokenizer.encode("<|im_start|>hi<|im_end|>") == [1] + tokenizer.encode("hi") + [2])
        #expect(tokenizer.encode("<|im_start|>", parseSpecial: false).count > 1)
        #expect(tokenizer.isEndOfGeneration(2))  // <|im_end|>
        #expect(tokenizer.isEndOfGeneration(0))  // <|endoftext|>
        #expect(!tokenizer.isEndOfGeneration(1))
        #expect(tokenizer.decode([1, 2], skipSpecial: true) == "")
        #expect(tokenizer.decode([1]) == "<|im_start|>")
        #expect(tokenizer.tokenPiece(216) == [0x20])  // "Ġ"
    }

    @Test("bytes the 512-token vocabulary lacks are dropped, as llama.cpp does")
    func missingBytes() throws {
        let tokenizer = try Self.load()
        // 0xC0 0xC1 0xF5... have no token in this vocabulary; U+0004 (byte 0x04) neither.
        #expect(tokenizer.encode("a\u{4}b") == tokenizer.encode("a") + tokenizer.encode("b"))
    }

    @Test("unsupported models and pre-tokenizers give clear errors")
    func errors() throws {
        var vocab = TokenizerVocabulary(model: "bert", tokens: ["a"])
        #expect(throws: TokenizerError.unsupportedModel("bert")) { try Tokenizer(vocab) }
        vocab.model = "gpt2"
        vocab.pre = "no-such-pre"
        vocab.merges = []
        #expect(throws: TokenizerError.unsupportedPreTokenizer("no-such-pre")) { try Tokenizer(vocab) }
        let message = TokenizerError.unsupportedPreTokenizer("no-such-pre").description
        #expect(message.contains("'no-such-pre'") && message.contains("--list-pre-tokenizers"))
    }
}
