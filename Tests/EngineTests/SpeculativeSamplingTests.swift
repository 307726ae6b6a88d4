// Speculative sampling keeps the output distribution: the acceptance rule on its own against the exact
// target distribution (deterministic drafts and drafts sampled from another distribution), and whole
// generations on a fixture (512-token vocabulary) with and without speculation, compared position by
// position with a two-sample chi-square test. Each test also shows that the chi-square check would
// notice the difference it guards against (drafts emitted unverified).

import Foundation
import Testing
import Sampling
import Engine

/// Pearson chi-square tests with a critical value from the Wilson–Hilferty approximation.
enum ChiSquare {
    /// Upper quantile of χ²(df) at significance alpha (z: the standard normal quantile of 1 − alpha).
    static func critical(df: Int, z: Double) -> Double {
        let k = Double(max(df, 1))
        let t = 1 - 2 / (9 * k) + z * (2 / (9 * k)).squareRoot()
        return k * t * t * t
    }
    /// z for alpha = 1e-4: a false alarm in 10,000 runs.
    static let z4 = 3.719

    /// Observed counts against expected probabilities; bins expecting fewer than 5 are pooled.
    static func goodnessOfFit(_ counts: [Int32: Int], expected: [Int32: Double]) -> (statistic: Double, df: Int) {
        let n = Double(counts.values.reduce(0, +))
        var statistic = 0.0, bins = 0, pooledObserved = 0.0, pooledExpected = 0.0
        for id in Set(counts.keys).union(expected.keys) {
            let e = n * (expected[id] ?? 0), o = Double(counts[id] ?? 0)
            if e < 5 { pooledObserved += o; pooledExpected += e; continue }
            statistic += (o - e) * (o - e) / e
            bins += 1
        }
        if pooledExpected > 0 || pooledObserved > 0 {
            statistic += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / max(pooledExpected, 1)
            bins += 1
        }
        return (statistic, bins - 1)
    }

    /// Two samples from one distribution? Bins with fewer than 10 in both together are pooled.
    static func twoSample(_ a: [Int32: Int], _ b: [Int32: Int]) -> (statistic: Double, df: Int) {
        let na = Double(a.values.reduce(0, +)), nb = Double(b.values.reduce(0, +))
        var cells: [(Double, Double)] = [], pooled = (0.0, 0.0)
        for id in Set(a.keys).union(b.keys) {
            let x = Double(a[id] ?? 0), y = Double(b[id] ?? 0)
            if x + y < 10 { pooled.0 += x; pooled.1 += y } else { cells.append((x, y)) }
        }
        if pooled.0 + pooled.1 > 0 { cells.append(pooled) }
        var statistic = 0.0
        for (x, y) in cells {
            let ea = (x + y) * na / (na + nb), eb = (x + y) * nb / (na + nb)
            statistic += (x - ea) * (x - ea) / ea + (y - eb) * (y - eb) / eb
        }
        return (statistic, cells.count - 1)
    }

    static func passes(_ test: (statistic: Double, df: Int)) -> Bool { test.statistic <= critical(df: test.df, z: z4) }
}

@Suite struct SpeculativeSamplingTests {
    static let targetLogits: [Float] = [2.0, 1.5, 1.4, 0.3, 0.0, -0.5, 1.0, -2.0]
    static let drafterLogits: [Float] = [0.2, 1.8, -0.3, 1.2, 0.5, 0.4, -1.0, 1.1]

    static func parameters(seed: UInt64, topK: Int = 0, temperature: Float = 1) -> SamplerParameters {
        var p = SamplerParameters()
        p.temperature = temperature; p.topK = topK; p.topP = 1; p.minP = 0; p.seed = seed
        return p
    }

    static func target(_ sampler: Sampler) -> [Int32: Double] {
        Dictionary(uniqueKeysWithValues: targetLogits.withUnsafeBufferPointer { sampler.distribution($0) }.map { ($0.id, Double($0.p)) })
    }

    /// A deterministic draft (q = 1 at d), whatever d is, even one outside top-k: what is emitted is
    /// distributed as the target.
    @Test(arguments: [Int32(0), 2, 5, 7])
    func deterministicDraftsKeepTheTargetDistribution(drafted: Int32) {
        let sampler = Sampler(Self.parameters(seed: 7 + UInt64(drafted), topK: 6))
        var counts: [Int32: Int] = [:]
        Self.targetLogits.withUnsafeBufferPointer { logits in
            for _ in 0..<20_000 {
                let emitted = sampler.verify(drafted, logits: logits) ?? drafted
                counts[emitted, default: 0] += 1
            }
        }
        let fit = ChiSquare.goodnessOfFit(counts, expected: Self.target(sampler))
        #expect(ChiSquare.passes(fit), "drafted \(drafted): χ² \(fit.statistic) over \(fit.df) degrees of freedom")
        #expect(counts[5] == nil && counts[7] == nil, "top-k 6 leaves tokens 5 and 7 out, drafted or not")
    }

    /// Drafts drawn from another distribution q (a draft model's): accepted with min(1, p/q), else
    /// replaced from the residual; the emitted tokens follow p, while the drafts alone follow q and fail
    /// the same test.
    @Test func sampledDraftsKeepTheTargetDistribution() {
        let sampler = Sampler(Self.parameters(seed: 11)), drafter = Sampler(Self.parameters(seed: 12))
        let q = Self.drafterLogits.withUnsafeBufferPointer { drafter.distribution($0) }
        var emitted: [Int32: Int] = [:], unverified: [Int32: Int] = [:]
        Self.targetLogits.withUnsafeBufferPointer { logits in
            for _ in 0..<20_000 {
                let drafted = drafter.draw(from: q)
                unverified[drafted, default: 0] += 1
                emitted[sampler.verify(drafted, drafterDistribution: q, logits: logits) ?? drafted, default: 0] += 1
            }
        }
        let p = Self.target(sampler)
        let fit = ChiSquare.goodnessOfFit(emitted, expected: p)
        #expect(ChiSquare.passes(fit), "χ² \(fit.statistic) over \(fit.df) degrees of freedom")
        #expect(!ChiSquare.passes(ChiSquare.goodnessOfFit(unverified, expected: p)), "the test tells q from p")
    }

    /// Greedy verification is exact: the draft is kept iff it is the argmax, else the argmax replaces it.
    @Test func greedyVerificationIsTheArgmax() {
        let sampler = Sampler(.greedy)
        Self.targetLogits.withUnsafeBufferPointer { logits in
            #expect(sampler.verify(0, logits: logits) == nil)
            #expect(sampler.verify(3, logits: logits) == 0)
        }
    }

    // MARK: - Whole generations on a fixture

    static let fixtureDirectory = URL(fileURLWithPath: DiskTierRecoveryTests.fixture).deletingLastPathComponent()
    static let prompt: [Int32] = [1, 5, 9, 5, 9, 5, 9, 12, 5, 9]

    /// Tokens 2…4 of `runs` seeded generations (temperature 0.6, top-k 4: close enough to greedy that the
    /// random fixture repeats itself and n-grams find drafts), counted per position; the first token is
    /// sampled from the prompt's logits and never drafted.
    static func positionCounts(_ loaded: LoadedModel, runs: Int, speculation: SpeculationOptions?)
        throws -> (counts: [[Int32: Int]], statistics: SpeculationStatistics) {
        let session = Session(loaded, contextLength: 64, threads: 1, batch: 16)
        var counts = [[Int32: Int]](repeating: [:], count: 3), total = SpeculationStatistics()
        total.drafter = speculation?.mode.rawValue ?? "none"
        for run in 0..<runs {
            var o = GenerationOptions()
            o.maxTokens = 4
            o.ignoreEOS = true
            o.sampler = parameters(seed: UInt64(1000 + run), topK: 4, temperature: 0.6)
            o.speculation = speculation
            let r = try session.generate(prompt: prompt, options: o) { _ in }
            for i in 1..<4 { counts[i - 1][r.tokens[i], default: 0] += 1 }
            if let s = r.speculation { total.drafted += s.drafted; total.accepted += s.accepted; total.passes += s.passes }
        }
        return (counts, total)
    }

    /// N-gram drafts (deterministic) and draft-model drafts (sampled from the draft model), verified by
    /// the rule: each position's tokens are distributed as without speculation. The llama fixture is
    /// the target; the qwen3 fixture, another random model over the same vocabulary, drafts.
    @Test(.timeLimit(.minutes(3)))
    func generationsKeepTheirDistributionWithEveryDrafter() throws {
        let target = try LoadedModel(path: Self.fixtureDirectory.appendingPathComponent("llama.f32.gguf").path)
        let draftModel = try LoadedModel(path: Self.fixtureDirectory.appendingPathComponent("qwen3.f32.gguf").path)
        let runs = 1500
        let plain = try Self.positionCounts(target, runs: runs, speculation: nil).counts
        var ngram = SpeculationOptions(mode: .ngram, draftMax: 3)
        ngram.ngramMin = 1
        let drafters: [(String, SpeculationOptions)] = [("ngram", ngram),
                                                       ("draft model", SpeculationOptions(mode: .draft, draftMax: 3, draftModel: draftModel))]
        for (name, options) in drafters {
            #expect(options.problem(for: target) == nil)
            let (speculative, stats) = try Self.positionCounts(target, runs: runs, speculation: options)
            #expect(stats.drafted > runs / 5 && stats.accepted > 0 && stats.accepted < stats.drafted,
                    "\(name): drafts were made, some accepted and some not (\(stats.summary))")
            for position in 0..<3 {
                let test = ChiSquare.twoSample(plain[position], speculative[position])
                #expect(ChiSquare.passes(test), "\(name), token \(position + 2): χ² \(test.statistic) over \(test.df) degrees of freedom")
            }
        }
        // The check has power: the draft model's own tokens are told apart from the target's.
        let draftAlone = try Self.positionCounts(draftModel, runs: runs, speculation: nil).counts
        #expect(!ChiSquare.passes(ChiSquare.twoSample(plain[0], draftAlone[0])))
    }
}
