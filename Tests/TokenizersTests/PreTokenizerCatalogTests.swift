import Foundation
import Testing
import Tokenizers

/// Every pre-tokenizer of the catalog against Hugging Face `tokenizers`: the fixtures (a byte-level BPE
/// vocabulary trained with each definition's split patterns, written as GGUF, and the ids `tokenizers`
/// gives for the evaluation units) come from Scripts/make-pretokenizer-fixtures.py, which `.ci/run` runs
/// into .build/pretokenizer-fixtures (or $DWARFSTAR_PRETOKENIZER_FIXTURES).
enum PreTokenizerFixtures {
    static let directory: URL = {
        if let path = ProcessInfo.processInfo.environment["DWARFSTAR_PRETOKENIZER_FIXTURES"] {
            return URL(fileURLWithPath: path)
        }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return package.appendingPathComponent(".build/pretokenizer-fixtures")
    }()

    struct Entry: CustomTestStringConvertible, Sendable {
        let names: [String]
        let gguf: String
        let ids: String
        var testDescription: String { names.joined(separator: "/") }
    }

    static let index: (stride: Int, specialCases: [String], entries: [Entry])? = {
        guard let data = try? Data(contentsOf: directory.appendingPathComponent("index.json")),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let stride = object["stride"] as? Int, let special = object["special_cases"] as? [String],
              let definitions = object["definitions"] as? [[String: Any]] else { return nil }
        let entries = definitions.compactMap { definition -> Entry? in
            guard let names = definition["names"] as? [String], let gguf = definition["gguf"] as? String,
                  let ids = definition["ids"] as? String else { return nil }
            return Entry(names: names, gguf: gguf, ids: ids)
        }
        return (stride, special, entries)
    }()

    static var present: Bool { index != nil }

    /// The units the script encoded: every `stride`-th corpus unit, then its special cases.
    static var units: [String] {
        guard let index else { return [] }
        return Swift.stride(from: 0, to: Fixtures.corpusUnits.count, by: index.stride).map { Fixtures.corpusUnits[$0] } + index.specialCases
    }
}

@Suite("Pre-tokenizer catalog")
struct PreTokenizerCatalogTests {
    @Test("every definition compiles, and every name resolves")
    func catalogCompiles() throws {
        for definition in PreTokenizer.definitions {
            for pattern in definition.patterns {
                try PreTokenizer.validate(pattern: pattern)
            }
            for name in definition.names {
                let pre = try #require(PreTokenizer(name: name))
                #expect(pre.stageCount == definition.patterns.count)
                #expect(pre.ignoreMerges == definition.ignoreMerges)
            }
        }
        #expect(PreTokenizer.supportedNames.count >= 85)
        for name in ["qwen35", "glm5", "llama4", "kimi-k2", "gpt-4o", "tekken", "minimax-m2", "seed-coder",
                     "deepseek-llm", "deepseek-coder", "falcon"] {
            #expect(PreTokenizer(name: name) != nil, "\(name)")
        }
    }

    @Test("unknown names stay a clear error naming them")
    func unknownName() throws {
        let vocab = TokenizerVocabulary(model: "gpt2", pre: "no-such-pre", tokens: ["a", "b"], merges: ["a b"])
        #expect(throws: TokenizerError.unsupportedPreTokenizer("no-such-pre")) { try Tokenizer(vocab) }
        #expect(TokenizerError.unsupportedPreTokenizer("no-such-pre").description.contains("'no-such-pre' is not supported"))
    }

    /// The hand-coded scanners split exactly as their patterns do through the compiled matcher.
    @Test("hand-coded scanners equal the compiled patterns", arguments: ["default", "gpt2", "smollm", "llama3", "qwen2", "deepseek-v3", "superbpe", "afmoe", "tiny_aya"])
    func scannersMatchPatterns(name: String) throws {
        let definition = try #require(PreTokenizer.definitionsByName[name])
        let scanned = try PreTokenizer(name: name, patterns: definition.patterns)
        let compiled = try PreTokenizer(name: name, patterns: definition.patterns, useScanners: false)
        var differences = 0
        let digits = ["1", "12", "123", "1234", "12345678901", "½1234", "1234½567", "١٢٣٤ 1234a 1234_ 1234é x1234", "９８７６５"]
        for unit in Swift.stride(from: 0, to: Fixtures.corpusUnits.count, by: 5).map({ Fixtures.corpusUnits[$0] }) + digits {
            let expected = scanned.split(unit)
            let got = compiled.split(unit)
            if got != expected {
                differences += 1
                if differences <= 3 { print("[\(name)] \(unit.debugDescription.prefix(120)): scanner \(expected.prefix(12)) pattern \(got.prefix(12))") }
            }
        }
        #expect(differences == 0)
    }

    /// Long runs stay linear: the digit groupings are scanned, not backtracked.
    @Test("long digit and whitespace runs split in linear time", arguments: ["superbpe", "afmoe", "tiny_aya", "jais-2", "deepseek-llm", "gpt-4o"])
    func longRuns(name: String) throws {
        let pre = try #require(PreTokenizer(name: name))
        for text in [String(repeating: "7", count: 200_000) + " x", String(repeating: " ", count: 200_000) + "a",
                     String(repeating: "Ab", count: 100_000) + "."] {
            let clock = ContinuousClock()
            let started = clock.now
            let pieces = pre.split(text)
            #expect(pieces.joined() == text)
            #expect(clock.now - started < .seconds(20), "\(name) took \(clock.now - started) on a run of 200000")
        }
    }

    @Test("token ids equal Hugging Face tokenizers'",
          .enabled(if: PreTokenizerFixtures.present,
                   "no fixtures in \(PreTokenizerFixtures.directory.path): run `dwarfstar tokenize --list-pre-tokenizers --json > c.json; Scripts/make-pretokenizer-fixtures.py c.json DIR` (.ci/run does)"),
          arguments: PreTokenizerFixtures.index?.entries ?? [])
    func idsMatchTokenizers(entry: PreTokenizerFixtures.Entry) throws {
        let vocab = try vocabulary(PreTokenizerFixtures.directory.appendingPathComponent(entry.gguf).path)
        #expect(vocab.pre == entry.names[0])
        let tokenizer = try Tokenizer(vocab)
        let text = try String(contentsOf: PreTokenizerFixtures.directory.appendingPathComponent(entry.ids), encoding: .utf8)
        var expected = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.split(separator: " ").map { Int32($0)! } }
        if expected.last?.isEmpty == true { expected.removeLast() }
        let units = PreTokenizerFixtures.units
        try #require(expected.count == units.count)
        var mismatches = 0
        for (unit, ids) in zip(units, expected) {
            let got = tokenizer.encode(unit, addSpecial: false)
            if got != ids {
                mismatches += 1
                if mismatches <= 3 {
                    let pieces = PreTokenizer(name: entry.names[0])!.split(unit).prefix(30).map(\.debugDescription)
                    print("[\(entry.names[0])] \(unit.debugDescription.prefix(160)): got \(got.prefix(30)) expected \(ids.prefix(30)); pieces \(pieces)")
                }
            }
        }
        print("[\(entry.names[0])] \(units.count - mismatches)/\(units.count) units tokenized like tokenizers")
        #expect(mismatches == 0)
    }
}
