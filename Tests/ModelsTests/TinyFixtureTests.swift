// Tiny random-weight models (512-token vocab) against Hugging Face transformers golden logits:
// every position, every logit, plus the 8-token greedy continuation through the KV cache.

import Foundation
import Testing
import GGUF
import Kernels
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
    for (r, row) in rows.enumerated() {
        for i in 0..<v {
            let d = abs(a[r * v + i] - row[i])
            if d.isNaN { return .infinity }   // NaN never passes
            m = max(m, d)
        }
    }
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
            let state = InferenceState(model: model, contextLength: 64, maxBatch: 512, threads: threads)
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
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 512, threads: 2)
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
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 512, threads: 2)
        let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
        let diff = maxAbsDiff(logits, golden.logits_f16_weights)
        #expect(diff <= 1e-3, "\(arch) F16 max |Δlogit| = \(diff)")
    }

    /// Prefill in small chunks (batch 5) gives the same logits as one batch.
    @Test(arguments: architectures)
    func chunkedPrefillMatchesOneBatch(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f32")
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 5, threads: 2)
        let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
        #expect(maxAbsDiff(logits, golden.logits) <= 1e-3)
    }

    /// A copy of a fixture with some metadata replaced (tensors copied byte for byte).
    func fixtureCopy(_ arch: String, changing changes: [String: GGUFValue]) throws -> String {
        let source = try GGUFFile(path: fixtureDirectory.appendingPathComponent("\(arch).f32.gguf").path)
        var w = GGUFWriter()
        for key in source.metadataKeys { w.set(key, changes[key] ?? source[key]!) }
        for (key, value) in changes where source[key] == nil { w.set(key, value) }
        for t in source.tensors {
            let bytes = Array(UnsafeRawBufferPointer(start: source.data(of: t), count: t.byteCount))
            try w.addTensor(name: t.name, dims: t.dims, type: t.type, data: bytes)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(arch)-\(UUID()).gguf").path
        try w.write(to: path)
        return path
    }

    /// DeepSeek's MLA in the expanded form (decompressed K/V, used for long prompt batches) gives the
    /// same logits as the absorbed form, with and without a cached prefix (batches of 5).
    @Test(arguments: ["f32", "f16"])
    func latentAttentionExpandedFormMatches(precision: String) throws {
        let golden = try loadGolden("deepseekv3")
        let model = try loadModel("deepseekv3", precision)
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 5, threads: 2)
        state.latentExpandedMinimumTokens = 2
        let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
        let diff = maxAbsDiff(logits, precision == "f32" ? golden.logits : golden.logits_f16_weights)
        #expect(diff <= 1e-3, "expanded MLA max |Δlogit| = \(diff)")
    }

    /// An unknown expert gating function fails at load, naming the key and the value.
    @Test func unknownGatingFunctionIsAClearError() throws {
        let path = try fixtureCopy("deepseekv3", changing: ["deepseek2.expert_gating_func": .uint32(9)])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let gguf = try GGUFFile(path: path)
        do {
            _ = try ModelRegistry.load(gguf)
            Issue.record("loaded a model with expert_gating_func = 9")
        } catch {
            let text = "\(error)"
            #expect(text.contains("deepseek2.expert_gating_func") && text.contains("9"), "\(text)")
        }
    }

    /// llama.cpp's rule: a Llama 4 file with attention.sliding_window = 0 has no NoPE layers (and no
    /// chunking): layer 3 then uses RoPE and L2 norms, so the logits move away from the golden ones.
    @Test func llama4SlidingWindowZeroTurnsNoPEOff() throws {
        let golden = try loadGolden("llama4")
        let path = try fixtureCopy("llama4", changing: ["llama4.attention.sliding_window": .uint32(0)])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try ModelRegistry.load(try GGUFFile(path: path))
        #expect((model.body as? StandardStack)?.hooks.ropeLayers.allSatisfy { $0 } == true)
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 512, threads: 2)
        let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
        // Layer 3 now uses RoPE and L2 norms: the logits differ from the golden (NoPE) ones.
        #expect(maxAbsDiff(logits, golden.logits) > 1e-3)
    }

    /// Llama 4's local layers see only their aligned 8192-position chunk; NoPE layers scale q by
    /// 1 + 0.1·ln(floor((pos + 1) / 8192) + 1), which first moves at position 8191.
    @Test func llama4ChunksAndTemperature() {
        let span = AttentionSpan.chunked(8192)
        #expect(span.firstVisible(from: 0) == 0 && span.firstVisible(from: 8191) == 0)
        #expect(span.firstVisible(from: 8192) == 8192 && span.firstVisible(from: 20000) == 16384)
        #expect(AttentionSpan.sliding(4).firstVisible(from: 10) == 7)
        let t = AttentionTemperature(scale: 0.1, floorLength: 8192, offset: 1)
        #expect(t.factor(position: 0) == 1 && t.factor(position: 8190) == 1)
        let ln2: Float = 0.6931472, ln4: Float = 1.3862944
        let at8191: Float = t.factor(position: 8191), at24576: Float = t.factor(position: 3 * 8192)
        #expect(abs(at8191 - (1 + 0.1 * ln2)) < 1e-6)
        #expect(abs(at24576 - (1 + 0.1 * ln4)) < 1e-6)
    }

    /// YaRN as ggml computes it, with DeepSeek V3's numbers (64 rope dims, base 1e4, factor 40, original
    /// context 4096, β 32 / 1): pairs 0…10 keep the original angle, pairs 23…31 are divided by the
    /// factor, pairs between blend linearly.
    @Test func yarnBlendsOriginalAndInterpolatedAngles() {
        let yarn = YarnConfig(factor: 40, originalContext: 4096, betaFast: 32, betaSlow: 1, extFactor: 1, logMultiplier: 0.1)
        let rope = Rope(dimensions: 64, base: 10000, style: .interleaved, yarn: yarn)
        var table = [Float](repeating: 0, count: 64)
        let pos = 1000.0
        table.withUnsafeMutableBufferPointer { rope.fill($0.baseAddress!, position: Int(pos)) }
        func theta(_ i: Int) -> Double { pos / pow(10000, Double(2 * i) / 64) }
        for i in [0, 5, 10] { #expect(abs(Double(table[i]) - cos(theta(i))) < 1e-5, "pair \(i)") }
        for i in [23, 31] { #expect(abs(Double(table[i]) - cos(theta(i) / 40)) < 1e-5, "pair \(i)") }
        let ramp = 1 - (16.0 - 10) / (23 - 10)
        #expect(abs(Double(table[16]) - cos(theta(16) / 40 * (1 - ramp) + theta(16) * ramp)) < 1e-5)
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
