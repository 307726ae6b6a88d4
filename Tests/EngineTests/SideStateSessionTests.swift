// Models whose sequence state is more than one KV row per position (DeepSeek V4's compressed cache,
// Qwen3.5's recurrent state) through the real session machinery: a conversation continues the same
// after the session is saved to disk and loaded into a fresh one, and after rewinding to a shorter prompt.

import Foundation
import Testing
import Engine
import Sampling

@Suite struct SideStateSessionTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/frontier")

    func greedy(_ n: Int) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = n
        o.sampler = .greedy
        o.ignoreEOS = true
        return o
    }

    @Test(arguments: ["deepseek4.mxfp4.gguf", "qwen35moe.f32.gguf"])
    func savedSessionContinuesLikeTheOriginal(file: String) throws {
        let loaded = try LoadedModel(path: Self.fixtures.appendingPathComponent(file).path)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("side-\(UUID()).dskv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // 140 prompt tokens cross DeepSeek V4's compressed-entry boundaries (every 4 and at 128).
        let prompt: [Int32] = (0..<140).map { Int32(20 + ($0 * 37) % 400) }
        let original = Session(loaded, contextLength: 512, threads: 2)
        let first = try original.generate(prompt: prompt, options: greedy(6)) { _ in }
        try original.save(to: path)

        let resumed = Session(loaded, contextLength: 512, threads: 2)
        _ = try resumed.load(from: path)
        #expect(resumed.cachedTokens == original.cachedTokens)
        let next = prompt + first.tokens + [41, 42, 43]
        let a = try original.generate(prompt: next, options: greedy(8)) { _ in }
        let b = try resumed.generate(prompt: next, options: greedy(8)) { _ in }
        #expect(a.tokens == b.tokens, "\(file): after load \(b.tokens) vs \(a.tokens)")

        // Rewind: a prompt that shares only the first 100 tokens, then the same again from scratch.
        let other = Array(prompt[..<100]) + [7, 8, 9]
        let c = try original.generate(prompt: other, options: greedy(8)) { _ in }
        let fresh = Session(loaded, contextLength: 512, threads: 2)
        let d = try fresh.generate(prompt: other, options: greedy(8)) { _ in }
        #expect(c.tokens == d.tokens, "\(file): after rewind \(c.tokens) vs fresh \(d.tokens)")
    }
}
