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
        let p = parameters
        let n = logits.count
        let needsPenalty = p.repeatPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0
        if p.temperature <= 0 && !needsPenalty { return Sampler.argmax(logits) }

        // Penalised logits only for tokens in the window: copy those into a small override table.
        counts.removeAll(keepingCapacity: true)
        if needsPenalty && p.penaltyLastN != 0 {
            let window = p.penaltyLastN < 0 ? history[...] : history.suffix(p.penaltyLastN)
            for t in window { counts[t, default: 0] += 1 }
        }
        @inline(__always) func adjusted(_ i: Int) -> Float {
            var l = logits[i]
            if let c = counts[Int32(i)] {
                if p.repeatPenalty != 1 { l = l > 0 ? l / p.repeatPenalty : l * p.repeatPenalty }
                l -= Float(c) * p.frequencyPenalty + p.presencePenalty
            }
            return l
        }
        if p.temperature <= 0 {
            var best = 0, bestV = -Float.infinity
            for i in 0..<n { let v = counts.isEmpty ? logits[i] : adjusted(i); if v > bestV { bestV = v; best = i } }
            return Int32(best)
        }

        // Top-k by partial selection: keep a min-heap-free approach — threshold from a sampled sort when
        // k is small, else a full sort.
        candidates.removeAll(keepingCapacity: true)
        candidates.reserveCapacity(n)
        for i in 0..<n { candidates.append((Int32(i), counts.isEmpty ? logits[i] : adjusted(i))) }
        let k = p.topK > 0 ? min(p.topK, n) : n
        if k < n {
            // nth_element-like: sort only the top k.
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
        let r = Float(rng.nextUnit())
        var cum: Float = 0
        for (i, q) in scaled.enumerated() {
            cum += q
            if r < cum { return candidates[i].id }
        }
        return candidates.last!.id
    }

    /// Samples among the tokens `allowed` accepts (constrained decoding), as `sample` would over logits
    /// with every other token removed. Only the most likely tokens are checked when that decides the
    /// result (greedy, or top-k ≤ 64 without penalties); otherwise every token is. nil: none is allowed.
    public func sample(_ logits: UnsafeBufferPointer<Float>, history: [Int32] = [], allowed: (Int32) -> Bool) -> Int32? {
        let p = parameters, n = logits.count
        let needsPenalty = p.repeatPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0
        let want = p.temperature <= 0 ? 1 : p.topK
        masked.removeAll(keepingCapacity: true)
        masked.append(contentsOf: logits)
        var decided = false
        if !needsPenalty && want >= 1 && want <= 64 {
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
