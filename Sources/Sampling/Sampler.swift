// Token sampler, in llama.cpp's default order:
//   penalties (repeat / presence / frequency over the last N tokens) → top-k → top-p → min-p
//   → temperature → draw from the softmax with a seeded RNG.  temperature ≤ 0 means greedy (argmax).

public struct SamplerParameters: Sendable, Equatable {
    public var temperature: Float = 0.8
    public var topK: Int = 40
    public var topP: Float = 0.95
    public var minP: Float = 0.05
    public var repeatPenalty: Float = 1.0
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    /// How many recent tokens the penalties look at (llama.cpp's repeat_last_n).
    public var penaltyLastN: Int = 64
    /// nil: seeded from the clock.
    public var seed: UInt64?

    public init() {}
    public static var greedy: SamplerParameters { var p = SamplerParameters(); p.temperature = 0; return p }
}

/// xoshiro256** seeded through splitmix64: the same seed gives the same stream on every platform.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3; s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }
    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

public final class Sampler {
    public let parameters: SamplerParameters
    private var rng: SeededGenerator
    /// Candidate scratch reused between calls (no per-token allocation once warm).
    private var candidates: [(id: Int32, logit: Float)] = []
    private var counts: [Int32: Int] = [:]
    /// Logits with disallowed tokens removed (constrained decoding).
    private var masked: [Float] = []

    public init(_ parameters: SamplerParameters) {
        self.parameters = parameters
        let seed = parameters.seed ?? UInt64(UInt32(truncatingIfNeeded: Int(bitPattern: UInt(clock_seed()))))
        rng = SeededGenerator(seed: seed)
    }

    /// Picks the next token from logits (vocab-sized) given the tokens so far.
    public func sample(_ logits: UnsafeBufferPointer<Float>, history: [Int32] = []) -> Int32 {
        if parameters.temperature <= 0 { return greedy(logits, history: history) }
        return draw(from: distribution(logits, history: history))
    }

    /// Whether repeat / presence / frequency penalties change any logit.
    private var penalises: Bool {
        parameters.repeatPenalty != 1 || parameters.presencePenalty != 0 || parameters.frequencyPenalty != 0
    }

    /// Counts of the tokens in the penalty window (empty when no penalty applies).
    private func countPenalised(_ history: [Int32]) {
        counts.removeAll(keepingCapacity: true)
        let p = parameters
        guard penalises && p.penaltyLastN != 0 else { return }
        let window = p.penaltyLastN < 0 ? history[...] : history.suffix(p.penaltyLastN)
        for t in window { counts[t, default: 0] += 1 }
    }

    /// logits[i] after the penalties (counts must be current).
    @inline(__always) private func adjusted(_ logits: UnsafeBufferPointer<Float>, _ i: Int) -> Float {
        let p = parameters
        var l = logits[i]
        if let c = counts[Int32(i)] {
            if p.repeatPenalty != 1 { l = l > 0 ? l / p.repeatPenalty : l * p.repeatPenalty }
            l -= Float(c) * p.frequencyPenalty + p.presencePenalty
        }
        return l
    }

    /// The greedy choice: argmax of the penalised logits.
    private func greedy(_ logits: UnsafeBufferPointer<Float>, history: [Int32]) -> Int32 {
        guard penalises else { return Sampler.argmax(logits) }
        countPenalised(history)
        var best = 0, bestV = -Float.infinity
        for i in 0..<logits.count { let v = counts.isEmpty ? logits[i] : adjusted(logits, i); if v > bestV { bestV = v; best = i } }
        return Int32(best)
    }

    /// The distribution `sample` draws from: the candidates left by penalties, top-k, top-p and min-p,
    /// with their probabilities after temperature (most likely first). Greedy: the argmax alone, p = 1.
    public func distribution(_ logits: UnsafeBufferPointer<Float>, history: [Int32] = []) -> [(id: Int32, p: Float)] {
        let p = parameters
        if p.temperature <= 0 { return [(greedy(logits, history: history), 1)] }
        let n = logits.count
        countPenalised(history)
        // Top-k by partial selection when k is small, else a full sort.
        candidates.removeAll(keepingCapacity: true)
        candidates.reserveCapacity(n)
        for i in 0..<n { candidates.append((Int32(i), counts.isEmpty ? logits[i] : adjusted(logits, i))) }
        let k = p.topK > 0 ? min(p.topK, n) : n
        if k < n {
            candidates = Sampler.topK(candidates, k)
        } else {
            candidates.sort { $0.logit > $1.logit }
        }
        // Softmax over the remaining candidates (before temperature, as llama.cpp's top-p/min-p do).
        var probs = Sampler.softmax(candidates.map { $0.logit })
        if p.topP < 1 {
            var cum: Float = 0, keep = candidates.count
            for (i, q) in probs.enumerated() { cum += q; if cum >= p.topP { keep = i + 1; break } }
            candidates.removeLast(candidates.count - keep)
            probs.removeLast(probs.count - keep)
        }
        if p.minP > 0, let top = probs.first {
            let threshold = top * p.minP
            let keep = max(1, probs.firstIndex(where: { $0 < threshold }) ?? probs.count)
            candidates.removeLast(candidates.count - keep)
        }
        let scaled = Sampler.softmax(candidates.map { $0.logit / p.temperature })
        return zip(candidates, scaled).map { ($0.id, $1) }
    }

    /// One token drawn from `distribution` (probabilities summing to about 1, most likely first).
    public func draw(from distribution: [(id: Int32, p: Float)]) -> Int32 {
        let r = Float(rng.nextUnit())
        var cum: Float = 0
        for c in distribution {
            cum += c.p
            if r < cum { return c.id }
        }
        return distribution.last!.id
    }

    /// Speculative sampling's acceptance rule (Leviathan et al. 2023; Chen et al. 2023) for a drafted
    /// token d whose drafter drew it from q (nil: chosen deterministically, q is 1 at d). With p the
    /// distribution `sample` would draw from here: d is kept with probability min(1, p(d) / q(d));
    /// otherwise the token returned is drawn from max(0, p − q), normalised. The emitted token is then
    /// distributed exactly as p, so speculation leaves the output distribution unchanged. Greedy: d is
    /// kept iff it is the argmax. Returns nil when d is kept, else the token to emit instead.
    public func verify(_ drafted: Int32, drafterDistribution q: [(id: Int32, p: Float)]? = nil,
                       logits: UnsafeBufferPointer<Float>, history: [Int32] = []) -> Int32? {
        if parameters.temperature <= 0 {
            let best = greedy(logits, history: history)
            return best == drafted ? nil : best
        }
        let target = distribution(logits, history: history)
        let pDrafted = target.first(where: { $0.id == drafted })?.p ?? 0
        let qDrafted = q.map { q in q.first(where: { $0.id == drafted })?.p ?? 0 } ?? 1
        if qDrafted > 0, Float(rng.nextUnit()) < pDrafted / qDrafted { return nil }
        // Residual max(0, p − q) over p's support (q's other tokens have p = 0, so no mass there).
        var qOf: [Int32: Float] = [:]
        if let q { for c in q { qOf[c.id] = c.p } } else { qOf[drafted] = 1 }
        var residual = target.map { (id: $0.id, p: max(0, $0.p - (qOf[$0.id] ?? 0))) }
        let mass = residual.reduce(Float(0)) { $0 + $1.p }
        guard mass > 0 else { return draw(from: target) }   // p ≤ q everywhere: only rounding rejects here
        for i in residual.indices { residual[i].p /= mass }
        return draw(from: residual)
    }

    /// Samples among the tokens `allowed` accepts (constrained decoding), as `sample` would over logits
    /// with every other token removed. Only the most likely tokens are checked when that decides the
    /// result (greedy, or top-k ≤ 64 without penalties); otherwise every token is. nil: none is allowed.
    public func sample(_ logits: UnsafeBufferPointer<Float>, history: [Int32] = [], allowed: (Int32) -> Bool) -> Int32? {
        let p = parameters, n = logits.count
        let want = p.temperature <= 0 ? 1 : p.topK
        masked.removeAll(keepingCapacity: true)
        masked.append(contentsOf: logits)
        var decided = false
        if !penalises && want >= 1 && want <= 64 {
            var all: [(id: Int32, logit: Float)] = []
            all.reserveCapacity(n)
            for i in 0..<n { all.append((Int32(i), logits[i])) }
            var found = 0
            for c in Sampler.topK(all, 64) {
                if allowed(c.id) { found += 1 } else { masked[Int(c.id)] = -.infinity }
            }
            decided = found >= want
        }
        if !decided {
            for i in 0..<n where masked[i] != -.infinity && !allowed(Int32(i)) { masked[i] = -.infinity }
        }
        guard masked.contains(where: { $0 != -.infinity }) else { return nil }
        return masked.withUnsafeBufferPointer { sample($0, history: history) }
    }

    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        var best = 0, bestV = -Float.infinity
        for i in 0..<logits.count where logits[i] > bestV { bestV = logits[i]; best = i }
        return Int32(best)
    }

    static func softmax(_ x: [Float]) -> [Float] {
        guard let m = x.max() else { return [] }
        var e = x.map { expf($0 - m) }
        let s = e.reduce(0, +)
        for i in e.indices { e[i] /= s }
        return e
    }

    /// The k largest (descending), via a bounded insertion into a sorted buffer for small k.
    static func topK(_ items: [(id: Int32, logit: Float)], _ k: Int) -> [(id: Int32, logit: Float)] {
        if k > 256 { return Array(items.sorted { $0.logit > $1.logit }.prefix(k)) }
        var top: [(id: Int32, logit: Float)] = []
        top.reserveCapacity(k + 1)
        for it in items {
            if top.count == k, it.logit <= top[k - 1].logit { continue }
            var lo = 0, hi = top.count
            while lo < hi { let mid = (lo + hi) / 2; if top[mid].logit >= it.logit { lo = mid + 1 } else { hi = mid } }
            top.insert(it, at: lo)
            if top.count > k { top.removeLast() }
        }
        return top
    }
}

#if canImport(Glibc)
import Glibc
func clock_seed() -> Int { Int(time(nil)) ^ Int(getpid()) << 16 }
#elseif canImport(Darwin)
import Darwin
func clock_seed() -> Int { Int(time(nil)) ^ Int(getpid()) << 16 }
#endif
