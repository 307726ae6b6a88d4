import Foundation
import Testing
import Tokenizers

@Suite("Pre-tokenizers")
struct PreTokenizerTests {
    /// Reference splits from Hugging Face `tokenizers` (Oniguruma regexes) for one mixed line.
    static let sample = "I'M here:  12345 apples\n\n\tdon't (x) 東京タワーへ行く 😀!!"
    static let expected: [String: [String]] = [
        "gpt2": ["I", "'", "M", " here", ":", " ", " 12345", " apples", "\n\n", "\t", "don", "'t", " (", "x", ")",
                 " 東京タワーへ行く", " 😀!!"],
        "smollm": ["I", "'", "M", " here", ":", "  ", "1", "2", "3", "4", "5", " apples", "\n\n", "\t", "don", "'t",
                   " (", "x", ")", " 東京タワーへ行く", " 😀!!"],
        "llama3": ["I", "'M", " here", ":", " ", " ", "123", "45", " apples", "\n\n", "\tdon", "'t", " (", "x", ")",
                   " 東京タワーへ行く", " 😀!!"],
        "qwen2": ["I", "'M", " here", ":", " ", " ", "1", "2", "3", "4", "5", " apples", "\n\n", "\tdon", "'t", " (",
                  "x", ")", " 東京タワーへ行く", " 😀!!"],
        "deepseek-v3": ["I", "'M", " here", ":", "  ", "123", "45", " apples", "\n\n", "\tdon", "'t", " (", "x", ")",
                        " ", "東京タワーへ行く", " 😀!!"],
    ]

    @Test("hand-checked splits", arguments: ["gpt2", "smollm", "llama3", "qwen2", "deepseek-v3"])
    func sampleSplit(name: String) throws {
        let pre = try #require(PreTokenizer(name: name))
        #expect(pre.split(Self.sample) == Self.expected[name]!)
    }

    @Test("unknown pre-tokenizer names are refused")
    func unknownName() {
        #expect(PreTokenizer(name: "no-such-pre") == nil)
        #expect(PreTokenizer(name: nil) != nil)  // llama.cpp's "default"
    }

    /// Every 4th corpus unit, for each pre-tokenizer, against the piece lengths from `tokenizers`.
    @Test("corpus splits match Hugging Face tokenizers", arguments: ["gpt2", "smollm", "llama3", "qwen2", "deepseek-v3"])
    func corpusSplits(name: String) throws {
        let golden = try #require(try Fixtures.json("pretokenizer-splits.json") as? [String: Any])
        let stride = try #require(golden["stride"] as? Int)
        let rows = try #require((golden["splits"] as? [String: [String]])?[name])
        let pre = try #require(PreTokenizer(name: name))
        let units = Fixtures.corpusUnits
        #expect(rows.count == (units.count + stride - 1) / stride)
        var mismatches = 0
        for (row, unitIndex) in Swift.stride(from: 0, to: units.count, by: stride).enumerated() where row < rows.count {
            let pieces = pre.split(units[unitIndex])
            let lengths = pieces.map { String($0.unicodeScalars.count) }.joined(separator: ",")
            let summary = "\(pieces.count):" + String(format: "%08x", fnv1a32(lengths))
            if summary != rows[row] {
                mismatches += 1
                if mismatches <= 5 {
                    print("[\(name)] unit \(unitIndex) \(units[unitIndex].debugDescription.prefix(160)): got \(summary) expected \(rows[row]); pieces \(pieces.map(\.debugDescription).prefix(40))")
                }
            }
            #expect(pieces.joined() == units[unitIndex])
        }
        print("[\(name)] pre-tokenizer: \(rows.count - mismatches)/\(rows.count) units split like tokenizers")
        #expect(mismatches == 0)
    }
}
