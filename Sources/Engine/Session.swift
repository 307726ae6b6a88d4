// A session: one KV sequence over a loaded model, the tokens it holds, and generation with streaming
// text. A new prompt reuses the longest prefix it already holds (multi-turn chat never re-prefills
// history) and then whole pages that any session of the same KV pool computed for the same tokens
// (a shared system prompt or document is prefilled once).

import Foundation
import KVCache
import Models
import Kernels
import Sampling
import Tokenizers

public struct GenerationOptions: Sendable {
    public var maxTokens: Int = 256
    public var sampler = SamplerParameters()
    public var stop: [String] = []
    public var ignoreEOS = false
    /// Speculative decoding (nil: off).
    public var speculation: SpeculationOptions?
    public init() {}
}

public struct GenerationResult: Sendable {
    public var text = ""
    public var tokens: [Int32] = []
    public var promptTokens = 0
    /// Prompt tokens actually evaluated (the rest came from the cache).
    public var promptEvaluated = 0
    public var promptSeconds = 0.0
    public var generationSeconds = 0.0
    public var stopReason: StopReason = .length
    /// Drafts and acceptance when speculation was asked for.
    public var speculation: SpeculationStatistics?

    public enum StopReason: String, Sendable { case endOfGeneration = "eos", stopString = "stop", length, cancelled, contextFull = "context" }

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptEvaluated) / promptSeconds : 0 }
    public var generationTokensPerSecond: Double { generationSeconds > 0 ? Double(tokens.count) / generationSeconds : 0 }
}

public final class Session: @unchecked Sendable {
    public let loaded: LoadedModel
    public let state: InferenceState
    /// Tokens whose K/V are in the cache, in order.
    public var cachedTokens: [Int32] { state.cache.committedTokens }

    /// A session of `contextLength` positions evaluating `batch` tokens per pass on `threads` threads
    /// (resolved values: RuntimeOptions holds the defaults). `kvPool`: a pool shared with other sessions
    /// of the model (prefix pages reused across them); nil gives the session a private pool holding its
    /// context.
    public init(_ loaded: LoadedModel, contextLength: Int, threads: Int, batch: Int = RuntimeOptions.defaultBatch,
                kvType: KVType = .f32, kvPool: KVPagePool? = nil, workers: WorkerPool? = nil, backend: BackendProvider? = nil) {
        self.loaded = loaded
        state = InferenceState(model: loaded.model, contextLength: contextLength, maxBatch: batch,
                               threads: threads, kvType: kvType, kvPool: kvPool, workers: workers, backend: backend)
    }

    /// The draft model's session when speculation drafts with one (made on first use, kept across turns
    /// so a conversation is prefilled into it once; it shares this session's worker threads).
    var draftSession: Session?
    /// The MTP drafter (--spec mtp), fed every chunk this session's model commits once made.
    var nextNDrafter: MTPDrafter?

    /// A session with resolved runtime options (RuntimeOptions.session(_:) also picks the pool).
    public convenience init(_ loaded: LoadedModel, options: RuntimeOptions, kvPool: KVPagePool? = nil) {
        self.init(loaded, contextLength: options.contextLength, threads: options.threads, batch: options.batch,
                  kvType: options.kvType, kvPool: kvPool, backend: options.backend.provider)
    }

    public var contextLength: Int { state.cache.maxPositions }
    public var model: TransformerModel { loaded.model }
    public var tokenizer: Tokenizer { loaded.tokenizer }

    public func reset() {
        state.cache.truncate(to: 0)
    }

    /// Makes the cache hold exactly `tokens` and returns the logits after the last one.
    /// Evaluates only the part after the longest common prefix with what is cached. Pages that come
    /// back damaged from the disk tier are evaluated again (the cache keeps what was intact).
    @discardableResult
    public func evaluate(_ tokens: [Int32]) throws -> (logits: UnsafeBufferPointer<Float>, evaluated: Int) {
        var attempt = 0
        while true {
            do { return try evaluateOnce(tokens) } catch KVCacheError.pagesLost where attempt < 3 { attempt += 1 }
        }
    }

    private func evaluateOnce(_ tokens: [Int32]) throws -> (logits: UnsafeBufferPointer<Float>, evaluated: Int) {
        guard !tokens.isEmpty else { throw InferenceError.emptyPrompt }
        guard tokens.count <= contextLength else {
            throw InferenceError.contextOverflow(needed: tokens.count, capacity: contextLength)
        }
        let cached = state.cache.committedTokens
        var common = 0
        while common < min(tokens.count, cached.count), tokens[common] == cached[common] { common += 1 }
        if common == tokens.count { common -= 1 } // need the last token's logits
        state.cache.truncate(to: common)
        // Whole pages other sequences of the pool computed for the same tokens (at least the last token
        // is evaluated: its logits are needed).
        common = state.cache.attachCachedPrefix(of: tokens, limit: tokens.count - 1)
        let logits = try Session.prefill(model, tokens, from: common, state: state)
        return (logits, tokens.count - common)
    }

    /// Evaluates tokens[start...] of a prompt whose first `start` are cached; the logits after the last.
    /// Side state (DeepSeek V4, Qwen3.5) is checkpointed at the prompt's last page boundary, where a
    /// later prompt sharing these pages picks it up.
    static func prefill(_ model: TransformerModel, _ tokens: [Int32], from start: Int, state: InferenceState) throws -> UnsafeBufferPointer<Float> {
        var start = start
        if let boundary = model.pageAlignedCheckpoint(promptLength: tokens.count, pageTokens: state.cache.pool.pageTokens),
           boundary > start {
            try model.forward(Array(tokens[start..<boundary]), startPosition: start, state: state, logits: .none)
            model.checkpointSideState(of: state.cache, pipeline: state.pipeline)
            start = boundary
        }
        return try model.forward(Array(tokens[start...]), startPosition: start, state: state, logits: .last)
    }

    /// Generates after `prompt` (token ids, BOS included as wanted). onText receives complete UTF-8
    /// text pieces as they are decided (text that might start a stop string is held back).
    /// shouldStop is polled between tokens (Ctrl-C, client disconnect).
    public func generate(prompt: [Int32], options: GenerationOptions, shouldStop: () -> Bool = { false },
                         onText: (String) -> Void) throws -> GenerationResult {
        var result = GenerationResult()
        result.promptTokens = prompt.count
        let sampler = Sampler(options.sampler)
        // Made before the prompt runs: an MTP drafter is fed the prompt's hidden states as it is evaluated.
        var speculator = try options.speculation.map { try Speculator($0, session: self, sampler: options.sampler) }
        let t0 = Date()
        var (logits, evaluated) = try evaluate(prompt)
        model.checkpointSideState(of: state.cache, pipeline: state.pipeline)   // a later turn or rollback restarts from here
        result.promptEvaluated = evaluated
        result.promptSeconds = Date().timeIntervalSince(t0)
        let t1 = Date()
        var detok = StreamingDetokenizer(tokenizer: tokenizer)
        var pending = ""   // decided text not yet emitted (may be the start of a stop string)
        var history = prompt
        defer { state.pool.park() }
        // Drafted tokens the model accepted: already in the cache, emitted before sampling again. Then the
        // token speculative sampling put in place of a rejected one, if any (not yet in the cache).
        var verified: [Int32] = []
        var replacement: Int32?

        while result.tokens.count < options.maxTokens {
            if shouldStop() { result.stopReason = .cancelled; break }
            let fromDraft = !verified.isEmpty
            let next: Int32
            if fromDraft { next = verified.removeFirst() } else if let r = replacement { next = r; replacement = nil } else {
                next = sampler.sample(logits, history: history)
            }
            if !options.ignoreEOS && tokenizer.isEndOfGeneration(next) { result.stopReason = .endOfGeneration; break }
            result.tokens.append(next)
            history.append(next)
            pending += detok.push(next)
            if let (text, hit) = Session.applyStops(&pending, stops: options.stop) {
                result.text += text
                onText(text)
                if hit { result.stopReason = .stopString; pending = ""; break }
            }
            if state.cache.count >= contextLength { result.stopReason = .contextFull; break }
            if fromDraft { continue }   // its K/V and the logits after it came with the verification
            do {
                if speculator != nil {
                    let room = min(options.maxTokens - result.tokens.count - 1, contextLength - state.cache.count - 1)
                    (logits, verified, replacement) = try speculator!.step(next, history: history, room: room, sampler: sampler)
                } else {
                    logits = try model.forward([next], startPosition: state.cache.count, state: state, logits: .last)
                }
            } catch KVCacheError.pagesLost {
                // The cache was cut before pages damaged on disk: evaluate the conversation again from there.
                logits = try evaluate(history).logits
            }
        }
        if result.stopReason != .stopString {
            pending += detok.flush()
            if !pending.isEmpty { result.text += pending; onText(pending) }
        }
        result.generationSeconds = Date().timeIntervalSince(t1)
        result.speculation = speculator?.statistics
        speculator?.savePassCosts()
        if !result.tokens.isEmpty { model.checkpointSideState(of: state.cache, pipeline: state.pipeline) }
        return result
    }

    /// Emits what can no longer be part of a stop string. Returns (text to emit, stop hit).
    static func applyStops(_ pending: inout String, stops: [String]) -> (String, Bool)? {
        if stops.isEmpty {
            defer { pending = "" }
            return pending.isEmpty ? nil : (pending, false)
        }
        for s in stops where !s.isEmpty {
            if let r = pending.range(of: s) {
                let text = String(pending[..<r.lowerBound])
                pending = ""
                return (text, true)
            }
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        var hold = 0
        for s in stops where !s.isEmpty {
            for n in stride(from: min(s.count - 1, pending.count), to: 0, by: -1) where pending.hasSuffix(String(s.prefix(n))) {
                hold = max(hold, n); break
            }
        }
        let emitCount = pending.count - hold
        guard emitCount > 0 else { return nil }
        let text = String(pending.prefix(emitCount))
        pending = String(pending.dropFirst(emitCount))
        return (text, false)
    }
}
