// Frontier architectures (tiny random-weight fixtures, Fixtures/frontier/README.md) against Hugging
// Face transformers golden logits: every logit of every prompt position within 1e-3 with the same
// argmax, the 8-token greedy continuation through the cache with each step's logits within 1e-3,
// prefill in chunks of 16 equal to one batch, and two sequences batched together.

import Foundation
import Testing
import GGUF
import Models
import KVCache

struct FrontierGolden: Decodable {
    let token_ids: [Int32]
    let logits: [[Float]]
    let argmax: [Int]
    struct Greedy: Decodable { let next_ids: [Int32]; let step_logits: [[Float]] }
    let greedy: Greedy
}

let frontierDirectory = fixtureDirectory.appendingPathComponent("frontier")

func loadFrontier(_ name: String, file: String? = nil) throws -> (FrontierGolden, TransformerModel) {
    let data = try Data(contentsOf: frontierDirectory.appendingPathComponent("\(name).golden.json"))
    let golden = try JSONDecoder().decode(FrontierGolden.self, from: data)
    let gguf = try GGUFFile(path: frontierDirectory.appendingPathComponent(file ?? "\(name).f32.gguf").path)
    return (golden, try ModelRegistry.load(gguf))
}

@Suite struct FrontierFixtureTests {
    /// (golden name, GGUF file) pairs this build runs.
    static let fixtures: [(String, String)] = [("glm_dsa", "glm_dsa.f32.gguf"), ("deepseek4", "deepseek4.f32.gguf"), ("deepseek4", "deepseek4.mxfp4.gguf"), ("gemma4", "gemma4.f32.gguf"), ("qwen35moe", "qwen35moe.f32.gguf")]

    @Test(arguments: fixtures)
    func logitsMatchTransformers(name: String, file: String) throws {
        let (golden, model) = try loadFrontier(name, file: file)
        for threads in [1, 2] {
            let state = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: threads)
            let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
            let diff = maxAbsDiff(logits, golden.logits)
            #expect(diff <= 1e-3, "\(file) max |Δlogit| = \(diff) (\(threads) threads)")
            let wrong = (0..<golden.token_ids.count).filter { argmax(logits, row: $0, vocab: model.vocabularySize) != golden.argmax[$0] }
            #expect(wrong.isEmpty, "\(file) argmax differs at \(wrong)")
        }
    }

    @Test(arguments: fixtures)
    func greedyWithCacheMatchesStepLogits(name: String, file: String) throws {
        let (golden, model) = try loadFrontier(name, file: file)
        let state = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: 2)
        var logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .last)
        var generated: [Int32] = []
        for step in 0..<golden.greedy.next_ids.count {
            let diff = maxAbsDiff(logits, [golden.greedy.step_logits[step]])
            #expect(diff <= 1e-3, "\(file) step \(step) max |Δlogit| = \(diff)")
            let next = Int32(argmax(logits, row: 0, vocab: model.vocabularySize))
            generated.append(next)
            logits = try model.forward([next], startPosition: state.position, state: state, logits: .last)
        }
        #expect(generated == golden.greedy.next_ids, "\(file) greedy")
    }

    /// Prefill 16 tokens at a time equals one batch (and the golden).
    @Test(arguments: fixtures)
    func chunkedPrefillMatchesOneBatch(name: String, file: String) throws {
        let (golden, model) = try loadFrontier(name, file: file)
        let whole = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: 2)
        let one = Array(try model.forward(golden.token_ids, startPosition: 0, state: whole, logits: .all))
        let chunked = InferenceState(model: model, contextLength: 256, maxBatch: 16, threads: 2)
        let logits = try model.forward(golden.token_ids, startPosition: 0, state: chunked, logits: .all)
        var worst: Float = 0
        for i in 0..<one.count { worst = max(worst, abs(one[i] - logits[i])) }
        #expect(worst <= 1e-4, "\(file) chunks of 16 vs one batch: \(worst)")
        #expect(maxAbsDiff(logits, golden.logits) <= 1e-3)
    }

    /// Two sequences in one batch (the prompt and its first half): each gets its own logits.
    @Test(arguments: fixtures)
    func twoSequencesInOneBatch(name: String, file: String) throws {
        let (golden, model) = try loadFrontier(name, file: file)
        let n = golden.token_ids.count, half = n / 2
        let state = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: 2)
        let other = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: 2)
        let logits = try model.forward(batch: [
            SequenceBatchItem(cache: other.cache, tokens: Array(golden.token_ids[..<half]), startPosition: 0, wantsLogits: true),
            SequenceBatchItem(cache: state.cache, tokens: golden.token_ids, startPosition: 0, wantsLogits: true),
        ], state: state)
        #expect(maxAbsDiff(UnsafeBufferPointer(rebasing: logits[0..<model.vocabularySize]), [golden.logits[half - 1]]) <= 1e-3)
        #expect(maxAbsDiff(UnsafeBufferPointer(rebasing: logits[model.vocabularySize...]), [golden.logits[n - 1]]) <= 1e-3)
    }

    /// Two sequences decoding together, one token each per step (how the server batches streams): each
    /// step's logits equal the golden at that position, across compression boundaries.
    @Test(arguments: fixtures)
    func twoSequencesDecodeTogether(name: String, file: String) throws {
        let (golden, model) = try loadFrontier(name, file: file)
        let n = golden.token_ids.count, a = n / 2 - 6, b = n - 12
        let state = InferenceState(model: model, contextLength: 256, maxBatch: 64, threads: 2)
        let other = InferenceState(model: model, contextLength: 256, maxBatch: 64, threads: 2)
        try model.forward(Array(golden.token_ids[..<a]), startPosition: 0, state: other, logits: .none)
        try model.forward(Array(golden.token_ids[..<b]), startPosition: 0, state: state, logits: .none)
        var worst: Float = 0
        for step in 0..<10 {
            let logits = try model.forward(batch: [
                SequenceBatchItem(cache: other.cache, tokens: [golden.token_ids[a + step]], startPosition: a + step, wantsLogits: true, isPrompt: false),
                SequenceBatchItem(cache: state.cache, tokens: [golden.token_ids[b + step]], startPosition: b + step, wantsLogits: true, isPrompt: false),
            ], state: state)
            worst = max(worst, maxAbsDiff(UnsafeBufferPointer(rebasing: logits[0..<model.vocabularySize]), [golden.logits[a + step]]),
                        maxAbsDiff(UnsafeBufferPointer(rebasing: logits[model.vocabularySize...]), [golden.logits[b + step]]))
        }
        #expect(worst <= 1e-3, "\(file): \(worst)")
    }
}

/// DeepSeek V4's compressed cache and Qwen3.5's recurrent state live beside the KV pages; going back
/// to an earlier position (a shortened sequence) rebuilds them from the committed tokens and gives the
/// golden logits again; so does a fresh sequence state over the same pages (a restored session).
@Test(arguments: ["deepseek4", "qwen35moe"])
func rewindRebuildsTheSequenceState(name: String) throws {
    let (golden, model) = try loadFrontier(name)
    let state = InferenceState(model: model, contextLength: 256, maxBatch: 64, threads: 2)
    try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .none)
    let n = golden.token_ids.count, back = n - 10
    _ = state.cache.truncate(to: back)
    var logits = try model.forward(Array(golden.token_ids[back...]), startPosition: back, state: state, logits: .all)
    #expect(maxAbsDiff(logits, Array(golden.logits[back...])) <= 1e-3)
    _ = state.cache.truncate(to: back)
    state.cache.auxiliary = nil
    logits = try model.forward(Array(golden.token_ids[back...]), startPosition: back, state: state, logits: .all)
    #expect(maxAbsDiff(logits, Array(golden.logits[back...])) <= 1e-3)
}

/// A frontier fixture with some metadata keys dropped or replaced (tensors copied byte for byte).
func frontierCopy(_ file: String, dropping: Set<String> = [], changing: [String: GGUFValue] = [:]) throws -> String {
    let source = try GGUFFile(path: frontierDirectory.appendingPathComponent(file).path)
    var w = GGUFWriter()
    for key in source.metadataKeys where !dropping.contains(key) { w.set(key, changing[key] ?? source[key]!) }
    for t in source.tensors {
        try w.addTensor(name: t.name, dims: t.dims, type: t.type, data: Array(UnsafeRawBufferPointer(start: source.data(of: t), count: t.byteCount)))
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("frontier-\(UUID())-\(file)").path
    try w.write(to: path)
    return path
}

/// Files missing what an architecture needs, or with values it cannot run, fail at load with a message
/// naming the key; nothing crashes.
@Test(arguments: [
    ("deepseek4.f32.gguf", ["deepseek4.hyper_connection.count"], [:] as [String: GGUFValue], "hyper_connection.count"),
    ("deepseek4.f32.gguf", [], ["deepseek4.attention.compress_ratios": .array(.int32, [.int32(0), .int32(1), .int32(4), .int32(4)])], "compress_ratios"),
    ("deepseek4.f32.gguf", [], ["deepseek4.attention.output_group_count": .uint32(3)], "output groups"),
    ("glm_dsa.f32.gguf", ["glm-dsa.attention.indexer.top_k"], [:], "indexer"),
    ("qwen35moe.f32.gguf", ["qwen35moe.ssm.conv_kernel"], [:], "ssm.conv_kernel"),
    ("qwen35moe.f32.gguf", [], ["qwen35moe.ssm.inner_size": .uint32(60)], "inner_size"),
    ("gemma4.f32.gguf", ["gemma4.attention.sliding_window"], [:], "sliding_window"),
])
func brokenFrontierFilesAreClearErrors(file: String, drop: [String], change: [String: GGUFValue], mention: String) throws {
    let path = try frontierCopy(file, dropping: Set(drop), changing: change)
    defer { try? FileManager.default.removeItem(atPath: path) }
    do {
        _ = try ModelRegistry.load(try GGUFFile(path: path))
        Issue.record("\(file) loaded without \(drop) / with \(change)")
    } catch {
        #expect("\(error)".contains(mention), "\(error)")
    }
}

/// DeepSeek V4 with a half-precision KV type keeps its compressed entries and indexer keys as half:
/// half the bytes per token of context, logits still close to the golden ones.
@Test func deepSeek4HalfEntries() throws {
    let (golden, model) = try loadFrontier("deepseek4")
    let state = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: 2, kvType: .f16)
    let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
    let diff = maxAbsDiff(logits, golden.logits)
    #expect(diff <= 2e-2, "F16 entries: max |Δlogit| = \(diff)")
    #expect(diff > 0, "entries were not stored as half")
    #expect(model.kvFootprint(type: .f16).bytesPerToken * 2 == model.kvFootprint(type: .f32).bytesPerToken)
}

/// DeepSeek V4's compressed entries are counted in the KV pages' size: a budget too small for the
/// prompt's entries refuses it with the budget error instead of growing past it.
@Test func deepSeek4CompressedCacheCountsAgainstTheKVBudget() throws {
    let (golden, model) = try loadFrontier("deepseek4")
    let shape = model.kvShape()
    #expect(shape.sideBytesPerPosition == 258)   // docs/models/deepseek4.md §6
    #expect(model.kvShape(type: .f16).sideBytesPerPosition == 129)
    let pool = KVPagePool(shape: shape, pageTokens: 32, budgetBytes: 3 * KVPagePool.pageBytes(shape, pageTokens: 32))
    let state = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: 2, kvPool: pool)
    do {
        try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .last)
        Issue.record("136 positions fit a 96-position budget")
    } catch {
        #expect("\(error)".contains("budget"), "\(error)")
    }
}

/// The state kept beside the pages whatever the length (DeepSeek V4's windows and compressor rings,
/// Qwen3.5's recurrent state) takes its share of the KV budget: KVShape.sideFixedBytes is what the
/// state really holds, a sequence reserves that many pages' worth, and a pool with room for the
/// positions' pages only is refused with the budget error.
@Test(arguments: ["deepseek4", "qwen35moe"])
func fixedSideStateIsReservedInTheKVBudget(name: String) throws {
    let (golden, model) = try loadFrontier(name)
    let shape = model.kvShape()
    let reserve = KVPagePool.sidePages(shape, pageTokens: 32)
    #expect(reserve > 0)
    let probe = InferenceState(model: model, contextLength: 64, maxBatch: 8, threads: 2)
    try model.forward([golden.token_ids[0]], startPosition: 0, state: probe, logits: .none)
    let held = (probe.cache.auxiliary as? DeepSeek4Cache)?.bytes ?? (probe.cache.auxiliary as? Qwen35State)?.bytes
    #expect(held == shape.sideFixedBytes)
    #expect(model.kvFootprint().fixedBytes == shape.sideFixedBytes)

    let pages = (golden.token_ids.count + 31) / 32
    let tight = KVPagePool(shape: shape, pageTokens: 32, capacity: pages)
    let refused = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: 2, kvPool: tight)
    #expect(throws: KVCacheError.self) { try model.forward(golden.token_ids, startPosition: 0, state: refused, logits: .none) }
    let enough = KVPagePool(shape: shape, pageTokens: 32, capacity: pages + reserve)
    let state = InferenceState(model: model, contextLength: 256, maxBatch: 512, threads: 2, kvPool: enough)
    let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
    #expect(maxAbsDiff(logits, golden.logits) <= 1e-3)
    #expect(enough.freePages == 0)
}
