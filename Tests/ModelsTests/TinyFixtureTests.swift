// Tiny random-weight models (512-token vocab) against Hugging Face transformers golden logits:
// every position, every logit, plus the 8-token greedy continuation through the KV cache.

import Foundation
import Testing
import GGUF
import Models

struct Golden: Decodable {
    let token_ids: [Int32]
    let logits: [[Float]]
    let argmax: [Int]
    let logits_f16_weights: [[Float]]
    struct Greedy: Decodable { let next_ids: [Int32] }
    let greedy: Greedy
}

let fixtureDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

func loadGolden(_ arch: String) throws -> Golden {
    let data = try Data(contentsOf: fixtureDirectory.appendingPathComponent("\(arch).golden.json"))
    return try JSONDecoder().decode(Golden.self, from: data)
}

func loadModel(_ arch: String, _ precision: String) throws -> TransformerModel {
    let gguf = try GGUFFile(path: fixtureDirectory.appendingPathComponent("\(arch).\(precision).gguf").path)
    return try ModelRegistry.load(gguf)
}

func maxAbsDiff(_ a: UnsafeBufferPointer<Float>, _ rows: [[Float]]) -> Float {
    var m: Float = 0
    let v = rows[0].count
    for (r, row) in rows.enumerated() { for i in 0..<v { m = max(m, abs(a[r * v + i] - row[i])) } }
    return m
}

func argmax(_ p: UnsafeBufferPointer<Float>, row: Int, vocab: Int) -> Int {
    var best = 0
    for i in 0..<vocab where p[row * vocab + i] > p[row * vocab + best] { best = i }
    return best
}

@Suite struct TinyFixtureTests {
    static let architectures = ["llama", "qwen2", "qwen3", "gemma3", "qwen3moe", "glm4moe", "llama4", "deepseekv3"]

    @Test(arguments: architectures)
    func f32LogitsMatchTransformers(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f32")
        for threads in [1, 2] {
            let state = InferenceState(config: model.config, contextLength: 64, maxBatch: 512, threads: threads)
            let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
            let diff = maxAbsDiff(logits, golden.logits)
            #expect(diff <= 1e-3, "\(arch) F32 max |Δlogit| = \(diff)")
            for r in 0..<golden.token_ids.count {
                #expect(argmax(logits, row: r, vocab: model.vocabularySize) == golden.argmax[r], "\(arch) argmax at \(r)")
            }
        }
    }

    @Test(arguments: architectures)
    func f32GreedyWithKVCache(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f32")
        let state = InferenceState(config: model.config, contextLength: 64, maxBatch: 512, threads: 2)
        var logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .last)
        var generated: [Int32] = []
        for _ in 0..<golden.greedy.next_ids.count {
            let next = Int32(argmax(logits, row: 0, vocab: model.vocabularySize))
            generated.append(next)
            logits = try model.forward([next], startPosition: state.position, state: state, logits: .last)
        }
        #expect(generated == golden.greedy.next_ids, "\(arch) greedy")
    }

    @Test(arguments: architectures)
    func f16LogitsMatchF16RoundedReference(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f16")
        let state = InferenceState(config: model.config, contextLength: 64, maxBatch: 512, threads: 2)
        let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
        let diff = maxAbsDiff(logits, golden.logits_f16_weights)
        #expect(diff <= 1e-3, "\(arch) F16 max |Δlogit| = \(diff)")
    }

    /// Prefill in small chunks (batch 5) gives the same logits as one batch.
    @Test(arguments: architectures)
    func chunkedPrefillMatchesOneBatch(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f32")
        let state = InferenceState(config: model.config, contextLength: 64, maxBatch: 5, threads: 2)
        let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
        #expect(maxAbsDiff(logits, golden.logits) <= 1e-3)
    }

    @Test func unknownArchitectureIsAClearError() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("mamba9"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("arch-\(UUID()).gguf").path
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let gguf = try GGUFFile(path: path)
        #expect(throws: ModelError.self) { try ModelRegistry.load(gguf) }
        do { _ = try ModelRegistry.load(gguf) } catch {
            let text = "\(error)"
            #expect(text.contains("mamba9") && text.contains("llama") && text.contains("gemma3"))
        }
    }
}
