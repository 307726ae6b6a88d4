import Testing
import Tokenizers

@Suite("Streaming detokenizer")
struct StreamingDetokenizerTests {
    @Test("holds back a character split over byte tokens")
    func holdsBack() throws {
        let tokenizer = try TinyFixtureTests.load()
        // "é" (C3 A9) and "🙂" (F0 9F 99 82) cut into single-byte tokens of the tiny vocabulary.
        let text = "Café 🙂 ok"
        let ids = tokenizer.encode(text)
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        var pieces: [String] = []
        for id in ids { pieces.append(stream.push(id)) }
        pieces.append(stream.flush())
        #expect(pieces.joined() == text)
        #expect(pieces.allSatisfy { !$0.unicodeScalars.contains("\u{FFFD}") })
        #expect(pieces.contains(""))  // some token ended inside a character
    }

    @Test("malformed bytes come out as U+FFFD exactly as decode gives them")
    func malformed() throws {
        let tokenizer = try TinyFixtureTests.load()
        // Byte tokens of the 512 vocabulary: find ids for the single bytes 0xE2, 0x82 and "a".
        func id(ofByte byte: UInt8) -> Int32? {
            (0..<Int32(tokenizer.vocabularySize)).first { tokenizer.tokenPiece($0) == [byte] }
        }
        let e2 = try #require(id(ofByte: 0xE2)), x82 = try #require(id(ofByte: 0x82)), a = try #require(id(ofByte: 0x61))
        for ids in [[e2, a], [e2, x82, a], [x82, a], [a, e2], [e2, x82], [e2, e2, x82, x82], [x82, x82, e2]] {
            var stream = StreamingDetokenizer(tokenizer: tokenizer)
            var text = ""
            for id in ids { text += stream.push(id) }
            text += stream.flush()
            #expect(text == tokenizer.decode(ids), "\(ids)")
        }
    }
}
