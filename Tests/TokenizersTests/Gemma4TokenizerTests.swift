import Foundation
import Testing
import Tokenizers
import GGUF
import Engine

/// The frontier fixtures (Tests/ModelsTests/Fixtures/frontier), read where they lie.
enum FrontierFixtures {
    static let directory = Fixtures.directory
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/frontier")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func golden(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name).golden.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(vocabulary(path("\(name).f32.gguf")))
    }
}

/// `tokenizer_check` of every frontier golden: the Hugging Face tokenizer's ids for a text (llama.cpp's
/// tokenizer gives the same ids on the GGUF). deepseek4, glm_dsa, qwen35moe: byte-level BPE (`gpt2`,
/// pre-tokenizer smollm); gemma4: `tokenizer.ggml.model = gemma4`.
@Suite("Frontier fixture tokenizers")
struct FrontierTokenizerTests {
    static let fixtures = ["gemma4", "deepseek4", "glm_dsa", "qwen35moe"]

    @Test("tokenizer_check: encode gives the reference ids, decode gives the text back", arguments: fixtures)
    func tokenizerCheck(fixture: String) throws {
        let golden = try FrontierFixtures.golden(fixture)
        let check = try #require(golden["tokenizer_check"] as? [String: Any])
        let text = try #require(check["text"] as? String)
        let expected = try #require(check["ids"] as? [Int]).map { Int32($0) }
        #expect(check["llamacpp_same_ids"] as? Bool == true)
        let tokenizer = try FrontierFixtures.tokenizer(fixture)
        #expect(tokenizer.vocabularySize == 512)
        let ids = tokenizer.encode(text, addSpecial: false)
        #expect(ids == expected, "\(fixture): \(firstDifference(ids, expected))")
        #expect(tokenizer.decode(expected) == text)
        // With special tokens: Gemma 4 adds BOS (id 2), the byte-level fixtures add nothing.
        let withSpecial = tokenizer.encode(text)
        #expect(withSpecial == (fixture == "gemma4" ? [2] + expected : expected))
        #expect(tokenizer.decode(withSpecial, skipSpecial: true) == text)
    }

    @Test("the prompt's token pieces are the tokens' texts", arguments: fixtures)
    func promptPieces(fixture: String) throws {
        let golden = try FrontierFixtures.golden(fixture)
        let ids = try #require(golden["token_ids"] as? [Int]).map { Int32($0) }
        let pieces = try #require(golden["token_pieces"] as? [String])
        let tokenizer = try FrontierFixtures.tokenizer(fixture)
        #expect(ids.count == pieces.count)
        for (id, piece) in zip(ids, pieces) {
            #expect(tokenizer.tokenId(of: piece) == id, "\(fixture): \(piece.debugDescription)")
        }
    }
}

/// Gemma 4's tokenizer (`tokenizer.ggml.model = gemma4`) against llama.cpp.
@Suite("Gemma 4 tokenizer")
struct Gemma4TokenizerTests {
    static func fixture() throws -> Tokenizer { try FrontierFixtures.tokenizer("gemma4") }

    /// (text, parseSpecial, ids with BOS) from llama.cpp's own tokenizer:
    /// `llama-tokenize -m Tests/ModelsTests/Fixtures/frontier/gemma4.f32.gguf --stdin --no-escape --ids`
    /// (`--no-parse-special` where parseSpecial is false), text given on stdin byte for byte.
    static let llamaCppCases: [(text: String, parseSpecial: Bool, ids: [Int32])] = [
        ("", true, [2]),
        (" ", true, [2, 332]),
        ("Hello", true, [2, 277, 290, 297, 297, 300]),
        (" Hello", true, [2, 332, 277, 290, 297, 297, 300]),
        ("Hello ", true, [2, 277, 290, 297, 297, 300, 332]),
        ("  leading and trailing  ", true, [2, 340, 297, 290, 286, 485, 332, 371, 336, 303, 286, 510, 418, 340]),
        ("a  b   c    d", true, [2, 286, 340, 287, 340, 332, 288, 361, 289]),
        ("\n", true, [2, 263]),
        ("\n\n", true, [2, 263, 263]),
        ("\n\n\n", true, [2, 263, 263, 263]),
        ("\n\n\n\n\n\n\n\n\n", true, [2, 263, 263, 263, 263, 263, 263, 263, 263, 263]),
        ("a\n\nb", true, [2, 286, 263, 263, 287]),
        ("line one\nline two\n", true, [2, 297, 345, 365, 300, 367, 263, 297, 345, 290, 336, 308, 300, 263]),
        ("\r\n", true, [2, 20, 263]),
        ("\t", true, [2, 16]),
        ("a\tb\t\tc", true, [2, 286, 16, 287, 16, 16, 288]),
        (" \n \n", true, [2, 332, 263, 332, 263]),
        ("🙂", true, [2, 335]),
        ("end 🙂🙃 😀!", true, [2, 348, 347, 335, 247, 166, 160, 138, 332, 247, 166, 159, 135, 40]),
        ("東京 Ωμέγα", true, [2, 334, 333, 332, 213, 176, 213, 195, 213, 180, 213, 186, 213, 184]),
        ("naïve café", true, [2, 403, 317, 307, 365, 374, 291, 316]),
        ("Zürich", true, [2, 97, 202, 195, 303, 294, 288, 293]),
        ("<bos>hi<|turn>user\nHello<turn|>", true, [2, 2, 393, 5, 306, 304, 344, 263, 277, 290, 297, 297, 300, 6]),
        ("<bos>hi<|turn>user\nHello<turn|>", false,
         [2, 67, 287, 300, 304, 69, 393, 67, 131, 305, 409, 299, 69, 306, 304, 344, 263, 277, 290, 297, 297, 300, 67,
          305, 409, 299, 131, 69]),
        ("<|turn>model\n Hi there <turn|>\n", true, [2, 5, 298, 404, 297, 263, 332, 277, 294, 336, 337, 420, 6, 263]),
        ("<0x41>", true, [2, 67, 269, 309, 273, 270, 69]),
        ("▁the", true, [2, 336, 337]),
        ("\u{0}x", true, [2, 7, 309]),
    ]

    @Test("edge cases give llama.cpp's ids and decode back to the text")
    func llamaCppEdgeCases() throws {
        let tokenizer = try Self.fixture()
        for (text, parseSpecial, expected) in Self.llamaCppCases {
            let ids = tokenizer.encode(text, parseSpecial: parseSpecial)
            #expect(ids == expected, "\(text.debugDescription): \(firstDifference(ids, expected))")
            #expect(tokenizer.encode(text, addSpecial: false, parseSpecial: parseSpecial) == Array(expected.dropFirst()))
            // Every byte has a <0xXX> token in this vocabulary, so everything comes back (a "▁" written in
            // the text is a space once encoded, in llama.cpp too).
            let spaced = text.replacingOccurrences(of: "▁", with: " ")
            #expect(tokenizer.decode(expected) == "<bos>" + spaced, "\(text.debugDescription)")
            if parseSpecial {
                let plain = spaced.replacingOccurrences(of: "<bos>", with: "").replacingOccurrences(of: "<|turn>", with: "")
                    .replacingOccurrences(of: "<turn|>", with: "")
                #expect(tokenizer.decode(expected, skipSpecial: true) == plain)
            }
        }
    }

    @Test("BOS, EOS, end of generation, pieces")
    func vocabularyFacts() throws {
        let tokenizer = try Self.fixture()
        #expect(tokenizer.addsBosToken && !tokenizer.addsEosToken)
        #expect(tokenizer.bosId == 2 && tokenizer.eosId == 1 && tokenizer.paddingId == 0)
        #expect(tokenizer.isEndOfGeneration(1))  // <eos>
        #expect(tokenizer.isEndOfGeneration(6))  // <turn|>
        #expect(!tokenizer.isEndOfGeneration(5))  // <|turn>
        #expect(!tokenizer.isEndOfGeneration(2))
        // llama.cpp's token_to_piece: "▁" → " ", <0xXX> → the byte, control tokens as written.
        #expect(tokenizer.tokenPiece(332) == [0x20])  // "▁"
        #expect(tokenizer.tokenPiece(341) == Array(" the ".utf8))  // "▁the▁"
        #expect(tokenizer.tokenPiece(340) == [0x20, 0x20])  // "▁▁"
        #expect(tokenizer.tokenPiece(7) == [0x00])  // <0x00>
        #expect(tokenizer.tokenPiece(262) == [0xFF])  // <0xFF>
        #expect(tokenizer.tokenPiece(5) == Array("<|turn>".utf8))
        #expect(tokenizer.isSpecial(5) && !tokenizer.isSpecial(7))
    }

    @Test("streaming decode holds back characters split over byte tokens")
    func streaming() throws {
        let tokenizer = try Self.fixture()
        for text in ["end 🙂🙃 😀!", "東京 Ωμέγα naïve", "Zürich\n\n  x", "<|turn>model\nHi 🙃<turn|>"] {
            let ids = tokenizer.encode(text)
            var stream = StreamingDetokenizer(tokenizer: tokenizer, skipSpecial: true)
            var pieces: [String] = []
            for id in ids { pieces.append(stream.push(id)) }
            pieces.append(stream.flush())
            #expect(pieces.joined() == tokenizer.decode(ids, skipSpecial: true))
            #expect(pieces.allSatisfy { !$0.unicodeScalars.contains("\u{FFFD}") }, "\(text.debugDescription)")
        }
        // "🙃" is four byte tokens: the first three give nothing yet.
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        #expect([247, 166, 160, 138].map { stream.push($0) } == ["", "", "", "🙃"])
        // llama.cpp writes each byte token's byte; a character cut off stays U+FFFD at the end.
        #expect(stream.push(247) == "" && stream.flush() == "\u{FFFD}")
    }

    @Test("the whole corpus decodes back (byte fallback covers every character)")
    func corpusRoundTrip() throws {
        let tokenizer = try Self.fixture()
        var failures = 0
        for unit in Fixtures.corpusUnits {
            let ids = tokenizer.encode(unit, addSpecial: false, parseSpecial: false)
            if tokenizer.decode(ids) != unit {
                failures += 1
                if failures <= 3 { print("gemma4 round trip failed: \(unit.debugDescription.prefix(120))") }
            }
        }
        #expect(failures == 0)
    }

    /// A hand-made Gemma 4 vocabulary for the cases the fixture lacks: a "\n\n" token that no merge makes
    /// (llama.cpp's "fix for gemma 4"), merges whose result is no token, a character known only to the
    /// merges, missing byte tokens (dropped), a user-defined `<|tool_response>` (llama.cpp makes it a
    /// control token), add_bos false in the file (llama.cpp forces it on).
    static let synthetic: TokenizerVocabulary = {
        let C: Int32 = 3, U: Int32 = 4, B: Int32 = 6, N: Int32 = 1
        var tokens: [(String, Int32)] = [
            ("<pad>", C), ("<eos>", C), ("<bos>", C), ("<unk>", 2), ("<|turn>", C), ("<turn|>", C),
            ("<|tool_response>", U), ("<|\"|>", U),
        ]
        for byte in [0x0A, 0x61, 0x63, 0x78, 0xC3, 0xA9, 0xF0, 0x9F, 0x99, 0x82, 0x20] {
            tokens.append((String(format: "<0x%02X>", byte), B))
        }
        for text in ["\n", "\n\n", "▁", "a", "b", "c", "h", "e", "l", "o", "ab", "▁a", "he", "hel", "lo", "xy", "▁▁▁"] {
            tokens.append((text, N))
        }
        return TokenizerVocabulary(
            model: "gemma4", tokens: tokens.map(\.0), scores: [Float](repeating: 0, count: tokens.count),
            tokenTypes: tokens.map(\.1),
            merges: ["a b", "ab c", "▁ a", "h e", "he l", "hel lo", "l o", "x y", "▁▁ ▁"],
            bosId: 2, eosId: 1, unknownId: 3, paddingId: 0, addBos: false, addSpacePrefix: false)
    }()

    /// (text, parseSpecial, addSpecial, ids) from llama.cpp's llama-tokenize (`--stdin --no-escape --ids`, plus
    /// `--no-parse-special` / `--no-bos`) on a GGUF holding exactly `synthetic` (written with llama.cpp's gguf-py).
    static let syntheticCases: [(text: String, parseSpecial: Bool, addSpecial: Bool, ids: [Int32])] = [
        ("", true, true, [2]),
        ("hello hel", true, true, [2, 21, 32]),  // "hello" merges into a non-token without byte tokens: dropped
        ("abc ab abcc", true, true, [2, 9, 10, 21, 29, 21, 9, 10, 24]),  // "abc" → <0x61> (<0x62> missing) <0x63>
        ("x xy xz xyz", true, true, [2, 11, 21, 34, 21, 11, 21, 34]),
        ("\n", true, true, [2, 19]),
        ("\n\n", true, true, [2, 20]),
        ("\n\n\n", true, true, [2, 19, 19, 19]),
        ("a\n\nb\n\n\n\nc", true, true, [2, 22, 20, 23, 19, 19, 19, 19, 24]),
        ("   a    a", true, true, [2, 21, 21, 30, 21, 21, 21, 30]),
        ("café 🙂\t!", true, true, [2, 24, 22, 12, 13, 21, 14, 15, 16, 17]),
        ("<|turn>a<turn|><|tool_response>b<|\"|>c", true, true, [2, 4, 22, 5, 6, 23, 7, 24]),
        ("<|turn>a<turn|><|tool_response>b<|\"|>c", false, true, [2, 22, 28, 28, 27, 26, 28, 26, 23, 7, 24]),
        ("<bos> a", true, false, [2, 30]),
    ]

    @Test("synthetic vocabulary gives llama.cpp's ids")
    func syntheticCases() throws {
        let tokenizer = try Tokenizer(Self.synthetic)
        #expect(tokenizer.addsBosToken)  // forced on although the file says false
        for (text, parseSpecial, addSpecial, expected) in Self.syntheticCases {
            let ids = tokenizer.encode(text, addSpecial: addSpecial, parseSpecial: parseSpecial)
            #expect(ids == expected, "\(text.debugDescription): \(firstDifference(ids, expected))")
        }
        #expect(tokenizer.isEndOfGeneration(6) && tokenizer.isSpecial(6))  // <|tool_response>: control, EOG
        #expect(!tokenizer.isSpecial(7))  // <|"|> stays user-defined
        #expect(tokenizer.decode([2, 21, 32, 20, 7, 6]) == "<bos> hel\n\n<|\"|><|tool_response>")
        #expect(tokenizer.decode([2, 21, 32, 20, 7, 6], skipSpecial: true) == " hel\n\n<|\"|>")
        #expect(tokenizer.decode([24, 22, 12, 13, 21, 14, 15, 16, 17]) == "caé 🙂")
    }

    @Test("gemma4 without merges is refused")
    func missingMerges() throws {
        var vocab = Self.synthetic
        vocab.merges = nil
        #expect(throws: TokenizerError.missingMerges) { try Tokenizer(vocab) }
    }
}
