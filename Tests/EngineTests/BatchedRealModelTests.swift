// Continuous batching on the real models: a sequence's logits in a batch with others are bit for bit
// those it gets alone (what lets the server promise every stream the text of the request run alone).

import Testing
import Engine
import KVCache
import Models

@Suite(.serialized)
struct BatchedRealModelTests {
    @Test(.enabled(if: RealModels.available("smollm2"), "needs the real model smollm2"))
    func smolLM2BatchedLogitsEqualAlone() throws { try batchedLogitsEqualAlone(name: "smollm2") }

    @Test(.enabled(if: RealModels.available("gemma3-270m"), "needs the real model gemma3-270m"))
    func gemma3BatchedLogitsEqualAlone() throws { try batchedLogitsEqualAlone(name: "gemma3-270m") }

    func batchedLogitsEqualAlone(name: String) throws {
        let loaded = try RealModels.load(name)
        let model = loaded.model
        let prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a land far away, there lived"]
            .map { loaded.tokenizer.encode($0, addSpecial: true, parseSpecial: false) }
        let pool = try loaded.kvPool(budgetBytes: 64 << 20)
        let shared = InferenceState(model: model, contextLength: 256, maxBatch: 64, threads: 2, kvPool: pool)
        let caches = prompts.map { _ in KVSequence(pool: pool, maxPositions: 256) }
        let alone = prompts.map { _ in InferenceState(model: model, contextLength: 256, maxBatch: 64, threads: 2) }
        let vocab = model.vocabularySize
        var batched = Array(try model.forward(batch: (0..<3).map {
            SequenceBatchItem(cache: caches[$0], tokens: prompts[$0], startPosition: 0, wantsLogits: true)
        }, state: shared))
        for i in 0..<3 {
            let solo = Array(try model.forward(prompts[i], startPosition: 0, state: alone[i], logits: .last))
            #expect(Array(batched[(i * vocab)..<((i + 1) * vocab)]) == solo, "\(name): prompt \(i)")
        }
        for step in 0..<6 {
            let next = (0..<3).map { i in Int32((0..<vocab).max { batched[i * vocab + $0] < batched[i * vocab + $1] }!) }
            batched = Array(try model.forward(batch: (0..<3).map {
                SequenceBatchItem(cache: caches[$0], tokens: [next[$0]], startPosition: caches[$0].count, wantsLogits: true)
            }, state: shared))
            for i in 0..<3 {
                let solo = Array(try model.forward([next[i]], startPosition: alone[i].position, state: alone[i], logits: .last))
                #expect(Array(batched[(i * vocab)..<((i + 1) * vocab)]) == solo, "\(name): step \(step) sequence \(i)")
            }
        }
    }
}
