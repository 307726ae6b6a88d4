import Foundation
import Testing
import Tokenizers

/// The vocabulary-only GGUF files llama.cpp's source ships (models/ggml-vocab-*.gguf): real vocabularies
/// of GPT-2, Llama 3, Qwen 2, Qwen 3.5, DeepSeek LLM / Coder, Falcon, MPT, StarCoder, Refact, Command R,
/// Phi-3, Llama (SentencePiece) and Gemma 4, each with test texts (.inp) and the ids Hugging Face
/// tokenizers gave for them (.out), as llama.cpp's test-tokenizer-0 checks them. Fetched from the
/// llama-cpp-python source package by Scripts/fetch-llamacpp-vocabs.sh (.ci/run runs it).
enum LlamaCppVocabs {
    static let directory: URL = {
        if let path = ProcessInfo.processInfo.environment["DWARFSTAR_LLAMACPP_VOCABS"] { return URL(fileURLWithPath: path) }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return package.appendingPathComponent(".build/llamacpp-vocabs")
    }()

    /// The vocabularies that have test texts and a tokenizer model this engine runs (not BERT's WordPiece).
    static let names: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".gguf.inp") && !$0.contains("bert") }.map { String($0.dropLast(4)) }.sorted()
    }()
}

@Suite("llama.cpp's vocabulary files")
struct LlamaCppVocabTests {
    @Test("ids equal the Hugging Face tokenizer's for llama.cpp's test texts",
          .enabled(if: !LlamaCppVocabs.names.isEmpty,
                   "no vocabularies in \(LlamaCppVocabs.directory.path): run Scripts/fetch-llamacpp-vocabs.sh (.ci/run does)"),
          arguments: LlamaCppVocabs.names)
    func testTexts(name: String) throws {
        let path = LlamaCppVocabs.directory.appendingPathComponent(name).path
        let tokenizer = try Tokenizer(vocabulary(path))
        var texts = try String(contentsOfFile: path + ".inp", encoding: .utf8).components(separatedBy: "\n__ggml_vocab_test__\n")
        if let last = texts.last, last.hasSuffix("\n") { texts[texts.count - 1] = String(last.dropLast()) }
        let expected = try String(contentsOfFile: path + ".out", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        try #require(expected.count >= texts.count)
        var mismatches = 0
        for (text, line) in zip(texts, expected) {
            let ids = line.split(separator: " ").map { Int32($0)! }
            let got = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
            if got != ids {
                mismatches += 1
                print("[\(name)] \(text.debugDescription.prefix(80)): got \(got.prefix(24)) expected \(ids.prefix(24))")
            }
        }
        print("[\(name)] \(texts.count - mismatches)/\(texts.count) texts as Hugging Face tokenizes them")
        #expect(mismatches == 0)
        #expect(texts.count >= 40)
    }
}
