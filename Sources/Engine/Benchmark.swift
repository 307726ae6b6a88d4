// llama-bench's measurements: pp (prompt processing: n random tokens in one pass from an empty cache)
// and tg (text generation: n tokens one at a time from an empty cache), repeated, mean ± stddev of
// tokens/s; plus a memory read-bandwidth probe to express decode speed as % of the machine's bandwidth.

import Foundation
import KVCache
import Kernels
import Models

public struct BenchSample: Sendable {
    public var test: String          // "pp512", "tg128"
    public var promptTokens: Int     // n_prompt
    public var generatedTokens: Int  // n_gen
    public var threads: Int
    public var samplesTokensPerSecond: [Double]
    public var weightBytesPerToken: Int

    public var mean: Double { samplesTokensPerSecond.reduce(0, +) / Double(max(samplesTokensPerSecond.count, 1)) }
    public var stddev: Double {
        let n = Double(samplesTokensPerSecond.count)
        guard n > 1 else { return 0 }
        let m = mean
        return (samplesTokensPerSecond.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot()
    }
    public var median: Double {
        let s = samplesTokensPerSecond.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

public enum Benchmark {
    /// Tokens after the shared prefix in prefixTTFT's prompts.
    public static let ttftSuffix = 16

    /// Times `repetitions` runs (after one warm-up) of a pp or tg test with the options' threads, batch
    /// and KV type, in a context of the test's tokens.
    /// `pipeline`: this process is the first stage of a model split across processes.
    public static func run(model: TransformerModel, promptTokens: Int, generatedTokens: Int, repetitions: Int,
                           options: RuntimeOptions, pipeline: PipelineLink? = nil) throws -> BenchSample {
        let threads = options.threads
        let ctx = RuntimeOptions.contextLength(promptTokens + generatedTokens, trained: model.config.contextLength)
        let state = InferenceState(model: model, contextLength: ctx, maxBatch: options.batch, threads: threads, kvType: options.kvType,
                                   backend: options.backend.provider)
        state.pipeline = pipeline
        var rng = SeededTokenSource(vocab: model.vocabularySize)
        var samples: [Double] = []
        for rep in 0...max(repetitions, 1) {
            state.cache.truncate(to: 0)
            let start = DispatchTime.now().uptimeNanoseconds
            if promptTokens > 0 {
                let tokens = (0..<promptTokens).map { _ in rng.next() }
                try model.forward(tokens, startPosition: 0, state: state, logits: .last)
            }
            if generatedTokens > 0 {
                var pos = state.position
                for _ in 0..<generatedTokens {
                    try model.forward([rng.next()], startPosition: pos, state: state, logits: .last)
                    pos += 1
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if rep > 0 { samples.append(Double(promptTokens + generatedTokens) / seconds) } // rep 0 = warm-up
        }
        state.pool.park()
        let name = promptTokens > 0 && generatedTokens > 0 ? "pp\(promptTokens)+tg\(generatedTokens)"
            : promptTokens > 0 ? "pp\(promptTokens)" : "tg\(generatedTokens)"
        return BenchSample(test: name, promptTokens: promptTokens, generatedTokens: generatedTokens, threads: threads,
                           samplesTokensPerSecond: samples, weightBytesPerToken: model.weightBytesPerToken)
    }

    /// Time to first token with and without a cached prefix: a prompt of `prefix` random tokens plus a
    /// `suffix`-token tail, first in a fresh KV pool (cold: the whole prompt is prefilled), then in a
    /// second sequence of the same pool with another tail (warm: the prefix pages are attached, only the
    /// rest is computed). Seconds until the logits of the last prompt token, median of `repetitions`;
    /// the options' threads, batch, KV type and state checkpoints.
    public static func prefixTTFT(model: TransformerModel, prefix: Int, suffix: Int = ttftSuffix, repetitions: Int,
                                  options: RuntimeOptions) throws -> (cold: Double, warm: Double, reused: Int) {
        let ctx = prefix + suffix, batch = options.batch, type = options.kvType
        var rng = SeededTokenSource(vocab: model.vocabularySize)
        var cold: [Double] = [], warm: [Double] = []
        var reused = 0
        for _ in 0..<max(1, repetitions) {
            let shared = (0..<prefix).map { _ in rng.next() }
            let pool = KVPagePool(shape: model.kvShape(type: type), pageTokens: InferenceState.defaultPageTokens,
                                  capacity: 2 * model.privatePoolPages(type: type, contextLength: ctx, maxBatch: batch))
            pool.checkpointLimit = options.stateCheckpoints
            func ttft(_ prompt: [Int32]) throws -> (Double, Int) {
                let state = InferenceState(model: model, contextLength: ctx, maxBatch: batch, threads: options.threads, kvPool: pool,
                                           backend: options.backend.provider)
                defer { state.pool.park() }
                let start = DispatchTime.now().uptimeNanoseconds
                let attached = state.cache.attachCachedPrefix(of: prompt, limit: prompt.count - 1)
                _ = try Session.prefill(model, prompt, from: attached, state: state)
                return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, attached)
            }
            cold.append(try ttft(shared + (0..<suffix).map { _ in rng.next() }).0)
            let (seconds, attached) = try ttft(shared + (0..<suffix).map { _ in rng.next() })
            warm.append(seconds)
            reused = attached
        }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        return (median(cold), median(warm), reused)
    }

    /// Read bandwidth in GB/s: `threads` threads sum a buffer of `megabytes` (larger than the caches),
    /// best of `repetitions` passes.
    public static func memoryReadBandwidth(megabytes: Int = 1024, threads: Int, repetitions: Int = 5) -> Double {
        let count = megabytes * 1_048_576 / 4
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buf.deallocate() }
        let pool = WorkerPool(threads: threads)
        // Touch every page first (parallel, so pages land near the threads that read them).
        pool.parallelFor(count) { r in for i in r { buf[i] = 1 } }
        var best = 0.0
        var sink = 0.0
        for _ in 0..<repetitions {
            var sums = [Double](repeating: 0, count: threads)
            let start = DispatchTime.now().uptimeNanoseconds
            sums.withUnsafeMutableBufferPointer { s in
                pool.run { ith, nth in
                    s[ith] = Kernels.readSum(buf, from: count * ith / nth, to: count * (ith + 1) / nth)
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            sink += sums.reduce(0, +)
            best = max(best, Double(count * 4) / seconds / 1e9)
        }
        pool.park()
        if sink == -1 { print("") }
        return best
    }
}

extension Benchmark {
    /// Cost of one parallel dispatch with trivial work per thread, in microseconds:
    /// (our spinning worker pool, DispatchQueue.concurrentPerform).
    public static func dispatchCost(threads: Int, iterations: Int = 20_000) -> (pool: Double, concurrentPerform: Double) {
        let pool = WorkerPool(threads: threads)
        var counters = [Int](repeating: 0, count: threads * 16)
        let poolSeconds: Double = counters.withUnsafeMutableBufferPointer { c in
            pool.run { ith, _ in c[ith * 16] += 1 } // warm-up
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations { pool.run { ith, _ in c[ith * 16] += 1 } }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        pool.park()
        let cpSeconds: Double = counters.withUnsafeMutableBufferPointer { c in
            let base = c.baseAddress!
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations { DispatchQueue.concurrentPerform(iterations: threads) { i in base[i * 16] += 1 } }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return (poolSeconds / Double(iterations) * 1e6, cpSeconds / Double(iterations) * 1e6)
    }
}

/// Deterministic pseudo-random token ids (llama-bench also feeds random tokens).
struct SeededTokenSource {
    var state: UInt64 = 0x2545_F491_4F6C_DD1D
    let vocab: Int
    init(vocab: Int) { self.vocab = vocab }
    mutating func next() -> Int32 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Int32(truncatingIfNeeded: Int(state % UInt64(vocab)))
    }
}
