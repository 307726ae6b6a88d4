// Sessions saved to disk and resumed without prefill, on the real default model; damaged and foreign
// files are refused with a clear error and change nothing.

import Foundation
import Testing
import Engine
import Models
import Sampling

@Suite(.serialized, .enabled(if: RealModels.available("smollm2")))
struct SessionFileTests {
    func tempPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("dskv-\(UUID())-\(name).dskv").path
    }

    func greedy(_ n: Int) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = n
        o.sampler = .greedy
        return o
    }

    /// Saving after a turn and loading into a fresh session continues exactly as the original session:
    /// the second turn needs no prefill of the first and gives the same tokens.
    @Test func savedSessionResumesWithoutPrefill() throws {
        let loaded = try RealModels.load("smollm2")
        let path = tempPath("resume")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let original = Session(loaded, contextLength: 512, threads: 2)
        var messages = [ChatMessage(role: "user", content: "Name a colour.")]
        let first = try original.generate(prompt: try PromptBuilder.chatPrompt(loaded, messages: messages), options: greedy(12)) { _ in }
        messages.append(ChatMessage(role: "assistant", content: first.text))
        try original.save(to: path, messages: messages)

        let resumed = Session(loaded, contextLength: 512, threads: 2)
        let restored = try resumed.load(from: path)
        #expect(restored == messages)
        #expect(resumed.cachedTokens == original.cachedTokens)

        messages.append(ChatMessage(role: "user", content: "And another one?"))
        let prompt = try PromptBuilder.chatPrompt(loaded, messages: messages)
        let a = try original.generate(prompt: prompt, options: greedy(12)) { _ in }
        let b = try resumed.generate(prompt: prompt, options: greedy(12)) { _ in }
        #expect(b.promptEvaluated == a.promptEvaluated && b.promptEvaluated < prompt.count / 2, "prefill after load: \(b.promptEvaluated) of \(prompt.count)")
        #expect(a.tokens == b.tokens)
    }

    func savedFile(_ loaded: LoadedModel) throws -> (String, Data) {
        let path = tempPath("damaged")
        let s = Session(loaded, contextLength: 128, threads: 2)
        _ = try s.evaluate(loaded.tokenizer.encode("The sea is wide and deep.", addSpecial: true, parseSpecial: false))
        try s.save(to: path)
        return (path, try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Each damage gives its own error; the session keeps what it held.
    @Test func damagedFilesAreRefused() throws {
        let loaded = try RealModels.load("smollm2")
        let (path, good) = try savedFile(loaded)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = Session(loaded, contextLength: 128, threads: 2)
        let kept = loaded.tokenizer.encode("Hello", addSpecial: true, parseSpecial: false)
        _ = try target.evaluate(kept)

        func expectRefused(_ bytes: Data, _ check: (SessionFileError) -> Bool, _ what: String) throws {
            try bytes.write(to: URL(fileURLWithPath: path))
            do {
                try target.load(from: path)
                Issue.record("\(what): loaded")
            } catch let e as SessionFileError {
                #expect(check(e), "\(what): \(e)")
                #expect("\(e)".contains(path))
            }
            #expect(target.cachedTokens == kept, "\(what): the session changed")
        }
        var flipped = good
        flipped[flipped.count / 2] ^= 0x40
        try expectRefused(flipped, { if case .corrupt = $0 { return true }; return false }, "flipped byte")
        try expectRefused(good.prefix(good.count - 1000), { if case .truncated = $0 { return true }; return false }, "truncated")
        try expectRefused(good.prefix(10), { if case .truncated = $0 { return true }; return false }, "cut in the header")
        try expectRefused(Data("GGUF this is something else entirely".utf8), { if case .notASessionFile = $0 { return true }; return false }, "other file")
        var version = good
        version[8] = 9
        try expectRefused(version, { if case .unsupportedVersion = $0 { return true }; return false }, "future version")
    }

    /// A session saved with one model is refused by another, naming both.
    @Test(.enabled(if: RealModels.available("gemma3-270m")))
    func foreignModelIsRefused() throws {
        let smol = try RealModels.load("smollm2")
        let gemma = try RealModels.load("gemma3-270m")
        let (path, _) = try savedFile(smol)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = Session(gemma, contextLength: 128, threads: 2)
        #expect(throws: SessionFileError.self) { try target.load(from: path) }
        do { try target.load(from: path) } catch {
            #expect("\(error)".contains("another model") && "\(error)".contains(gemma.fingerprint))
        }
    }

    @Test func sessionNamesAreChecked() throws {
        #expect(throws: SessionFileError.self) { try Session.sessionPath(named: "../etc/passwd") }
        #expect(throws: SessionFileError.self) { try Session.sessionPath(named: "") }
        #expect(try Session.sessionPath(named: "chat-1.v2").hasSuffix("/chat-1.v2.dskv"))
    }
}
