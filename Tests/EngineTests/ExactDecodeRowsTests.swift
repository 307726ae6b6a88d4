// Exact decode rows: a pass of several decode rows (drafts being verified) gives every row the logits
// a lone decode step gives, bit for bit, on every architecture that says so (LayerStack.exactDecodeRows):
// the fixtures (MLA included) and the synthetic Gemma 4 and GLM-DSA files (sparse MLA past the
// indexer's top-k). The architectures that keep side state say they are not exact.

import Foundation
import Testing
import Engine

@Suite struct ExactDecodeRowsTests {
    /// Logits after each of `rows` fed one at a time, and after one pass of all of them as decode rows,
    /// both after the same prompt.
    static func logits(_ loaded: LoadedModel, prompt: [Int32], rows: [Int32], threads: Int) throws -> (lone: [UInt32], batched: [UInt32]) {
        let lone = Session(loaded, contextLength: 128, threads: threads, batch: 32)
        try lone.evaluate(prompt)
        var loneBits: [UInt32] = []
        for token in rows {
            let l = try lone.model.forward([token], startPosition: lone.state.cache.count, state: lone.state, logits: .last)
            loneBits += l.map(\.bitPattern)
        }
        let batched = Session(loaded, contextLength: 128, threads: threads, batch: 32)
        try batched.evaluate(prompt)
        let all = try batched.model.forward(rows, startPosition: batched.state.cache.count, state: batched.state, logits: .all,
                                            asDecodeRows: true)
        return (loneBits, all.map(\.bitPattern))
    }

    static func expectExact(_ loaded: LoadedModel, _ name: String, prompt: [Int32]) throws {
        #expect(loaded.model.body.exactDecodeRows, "\(name) says its decode rows are exact")
        for threads in [1, 2] {
            for count in [2, 5, 16] {
                let rows = (0..<count).map { Int32(($0 * 37 + 11) % 500) }
                let (lone, batched) = try logits(loaded, prompt: prompt, rows: rows, threads: threads)
                let differing = zip(lone, batched).filter { $0 != $1 }.count
                #expect(lone.count == batched.count && differing == 0,
                        "\(name), \(count) decode rows, \(threads) threads: \(differing) of \(lone.count) logits differ from lone steps")
            }
        }
    }

    static let prompt: [Int32] = [1, 5, 9, 5, 9, 5, 9, 12, 5, 9, 33, 71, 2, 8]

    @Test(arguments: ["llama", "qwen2", "qwen3", "gemma3", "qwen3moe", "glm4moe", "llama4", "deepseekv3"])
    func fixtureDecodeRowsAreLoneBits(architecture: String) throws {
        let loaded = try LoadedModel(path: SpeculationTests.fixture("\(architecture).f32.gguf"))
        try Self.expectExact(loaded, architecture, prompt: Self.prompt)
        let f16 = try LoadedModel(path: SpeculationTests.fixture("\(architecture).f16.gguf"))
        try Self.expectExact(f16, architecture + " F16", prompt: Self.prompt)
    }

    /// Gemma 4 (per-layer inputs, KV-shared layers, dense MLP + MoE) and GLM-DSA (MLA with the
    /// lightning indexer; the prompt is past its top-k of 8, so attention is sparse), quantized.
    @Test func syntheticGemma4AndGLMDSADecodeRowsAreLoneBits() throws {
        try withLoadedTiny("gemma4", SyntheticGemma4Tests.writeTiny) { loaded, _ in
            try Self.expectExact(loaded, "gemma4", prompt: Self.prompt)
        }
        try withLoadedTiny("glm-dsa", SyntheticGLMDSATests.writeTiny) { loaded, _ in
            try Self.expectExact(loaded, "glm-dsa", prompt: Self.prompt)
        }
    }

    /// Qwen3.5 (recurrent Gated DeltaNet state) and DeepSeek V4 (compressed cache, past its window of 16
    /// and the indexer's top-k): the rows themselves are exact too.
    @Test func sideStateArchitecturesDecodeRowsAreLoneBits() throws {
        try withLoadedTiny("qwen35moe", SyntheticQwen35MoETests.writeTiny) { loaded, _ in
            try Self.expectExact(loaded, "qwen35moe", prompt: Self.prompt)
        }
        try withLoadedTiny("deepseek4", SyntheticDeepSeek4Tests.writeTiny) { loaded, _ in
            try Self.expectExact(loaded, "deepseek4", prompt: Self.prompt + Self.prompt)
        }
    }
}
