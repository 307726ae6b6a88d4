// Several sequences in one forward pass give each sequence the logits it gets alone: bit for bit for
// dense models (every row of a batched matmul is computed like a lone row, attention runs per
// sequence); MoE models group the tokens of all sequences per expert, whose F32 products then take
// another kernel path, so their rows agree to rounding (≤ 1e-5).

import Testing
import KVCache
import Models

@Suite struct SequenceBatchTests {
    @Test(arguments: TinyFixtureTests.architectures)
    func batchedSequencesMatchEachAlone(arch: String) throws {
        let model = try loadModel(arch, "f32")
        let shape = model.kvShape()
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 64 * KVLayerGroups(shape).count)
        let prompts: [[Int32]] = [[1, 5, 9, 13, 17], Array(20..<29), [2, 4, 6, 8, 10, 12, 14]]
        let shared = InferenceState(model: model, contextLength: 64, maxBatch: 32, threads: 2, kvPool: pool)
        let caches = prompts.map { _ in KVSequence(pool: pool, maxPositions: 64) }
        let alone = prompts.map { _ in InferenceState(model: model, contextLength: 64, maxBatch: 32, threads: 2) }
        let vocab = model.vocabularySize
        let tolerance: Float = model.moeBlocks.isEmpty ? 0 : 1e-5
        func maxDiff(_ a: ArraySlice<Float>, _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

        // Prompts together (the middle one without logits), then 4 decode steps of all three.
        var batched = Array(try model.forward(batch: (0..<3).map {
            SequenceBatchItem(cache: caches[$0], tokens: prompts[$0], startPosition: 0, wantsLogits: $0 != 1)
        }, state: shared))
        #expect(batched.count == 2 * vocab)
        for (row, i) in [0, 2].enumerated() {
            let solo = Array(try model.forward(prompts[i], startPosition: 0, state: alone[i], logits: .last))
            #expect(maxDiff(batched[(row * vocab)..<((row + 1) * vocab)], solo) <= tolerance, "\(arch): prompt \(i)")
        }
        _ = try model.forward(prompts[1], startPosition: 0, state: alone[1], logits: .none)
        for step in 0..<4 {
            let next = (0..<3).map { Int32(30 + 7 * step + $0) }
            batched = Array(try model.forward(batch: (0..<3).map {
                SequenceBatchItem(cache: caches[$0], tokens: [next[$0]], startPosition: caches[$0].count, wantsLogits: true)
            }, state: shared))
            for i in 0..<3 {
                let solo = Array(try model.forward([next[i]], startPosition: alone[i].position, state: alone[i], logits: .last))
                #expect(maxDiff(batched[(i * vocab)..<((i + 1) * vocab)], solo) <= tolerance, "\(arch): step \(step) sequence \(i)")
            }
        }
    }

    @Test func badItemIsNamedAndNothingRuns() throws {
        let model = try loadModel("llama", "f32")
        let shape = model.kvShape()
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 16)
        let state = InferenceState(model: model, contextLength: 16, maxBatch: 32, threads: 2, kvPool: pool)
        let a = KVSequence(pool: pool, maxPositions: 16), b = KVSequence(pool: pool, maxPositions: 16)
        do {
            _ = try model.forward(batch: [SequenceBatchItem(cache: a, tokens: [1, 2], startPosition: 0, wantsLogits: true),
                                          SequenceBatchItem(cache: b, tokens: [1, -4], startPosition: 0, wantsLogits: true)], state: state)
            Issue.record("a bad token ran")
        } catch let e as SequenceBatchError {
            #expect(e.item == 1 && "\(e)".contains("-4"))
        }
        #expect(a.count == 0 && b.count == 0)
    }
}
