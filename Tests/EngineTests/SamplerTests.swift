// Sampler: greedy is argmax, seeds reproduce, filters keep what they should.

import Testing
import Sampling

@Suite struct SamplerTests {
    let logits: [Float] = [1.0, 3.0, 2.5, -1.0, 0.0, 2.9]

    func draw(_ p: SamplerParameters, _ n: Int = 200, history: [Int32] = []) -> [Int32] {
        let s = Sampler(p)
        return logits.withUnsafeBufferPointer { buf in (0..<n).map { _ in s.sample(buf, history: history) } }
    }

    @Test func greedyIsArgmax() {
        #expect(Set(draw(.greedy, 10)) == [1])
    }

    @Test func sameSeedSameOutput() {
        var p = SamplerParameters(); p.temperature = 1.0; p.topK = 0; p.topP = 1; p.minP = 0; p.seed = 42
        #expect(draw(p) == draw(p))
        var q = p; q.seed = 43
        #expect(draw(p) != draw(q))
    }

    @Test func topKOneIsGreedy() {
        var p = SamplerParameters(); p.temperature = 1.5; p.topK = 1; p.seed = 1
        #expect(Set(draw(p)) == [1])
    }

    @Test func topKLimitsCandidates() {
        var p = SamplerParameters(); p.temperature = 5; p.topK = 3; p.topP = 1; p.minP = 0; p.seed = 7
        #expect(Set(draw(p, 500)).isSubset(of: [1, 2, 5]))
        #expect(Set(draw(p, 500)).count == 3)
    }

    @Test func topPKeepsTheNucleus() {
        // softmax of logits: token 1 ≈ 0.39, 5 ≈ 0.35, 2 ≈ 0.24 → top-p 0.5 keeps {1, 5}.
        var p = SamplerParameters(); p.temperature = 1; p.topK = 0; p.topP = 0.5; p.minP = 0; p.seed = 3
        #expect(Set(draw(p, 500)) == [1, 5])
    }

    @Test func minPDropsUnlikelyTokens() {
        // p(4)/p(1) = e^-3 ≈ 0.05 and p(3)/p(1) = e^-4 → min-p 0.1 removes tokens 3 and 4 (p(0)/p(1) = e^-2 stays).
        var p = SamplerParameters(); p.temperature = 1; p.topK = 0; p.topP = 1; p.minP = 0.1; p.seed = 5
        let drawn = Set(draw(p, 2000))
        #expect(drawn.isSubset(of: [0, 1, 2, 5]) && drawn.contains(0))
    }

    @Test func repeatPenaltyChangesGreedyChoice() {
        var p = SamplerParameters.greedy; p.repeatPenalty = 1.5
        // Token 1 (3.0) penalised to 2.0 → 5 (2.9) wins.
        #expect(Set(draw(p, 5, history: [1])) == [5])
        var q = SamplerParameters.greedy; q.presencePenalty = 0.5; q.frequencyPenalty = 0.1
        #expect(Set(draw(q, 5, history: [1, 1, 5])) == [2])
    }

    @Test func seededGeneratorIsStable() {
        var g = SeededGenerator(seed: 123)
        let first = (0..<3).map { _ in g.next() }
        var h = SeededGenerator(seed: 123)
        #expect(first == (0..<3).map { _ in h.next() })
    }
}
