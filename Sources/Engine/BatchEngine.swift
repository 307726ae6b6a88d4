// Continuous batching: one engine thread serves many requests at once. Each step stacks one decode
// token of every generating sequence and a chunk of at most one waiting prompt into a single batched
// forward pass (TransformerModel.forward(batch:)), so a long prompt is prefilled in chunks between
// decode steps instead of freezing the other streams. Every request has its own KV sequence in the
// model's shared page pool: a prompt starting with pages another request computed (a resent
// conversation, a shared system prompt) attaches them and prefills only the rest.
//
// Requests are admitted while the pool can hold what the active ones may still grow to (prompt +
// max_tokens each), so a running sequence never runs out of pages; the rest wait in a bounded queue.
// A cancelled request (client gone) leaves the batch at the next step and its pages go back at once.

import Foundation
import Kernels
import KVCache
import Models
import Sampling
import Tokenizers

public struct EngineRequest: Sendable {
    public var prompt: [Int32]
    public var options: GenerationOptions
    /// Log-probabilities of each generated token and of this many alternatives (nil: none).
    public var topLogprobs: Int?
    /// What the output must be (JSON of a schema, a tool call), enforced by constrained decoding;
    /// generation ends when it is complete.
    public var constraint: OutputConstraint?
    public init(prompt: [Int32], options: GenerationOptions, topLogprobs: Int? = nil, constraint: OutputConstraint? = nil) {
        self.prompt = prompt; self.options = options; self.topLogprobs = topLogprobs; self.constraint = constraint
    }
}

/// A generated token with its log-probability under the model (log-softmax of the raw logits) and the
/// most likely alternatives.
public struct TokenLogprob: Sendable {
    public var token: Int32
    public var bytes: [UInt8]
    public var logprob: Float
    public var top: [(token: Int32, bytes: [UInt8], logprob: Float)]
}

public struct EngineFinish: Sendable {
    public var promptTokens = 0
    /// Prompt tokens whose KV came from the prefix cache (not evaluated).
    public var cachedPromptTokens = 0
    public var completionTokens = 0
    public var stopReason: GenerationResult.StopReason = .length
    /// The stop string that ended generation (stopReason == .stopString).
    public var stopSequence: String?
    /// Seconds from submission to the first generated token (nil: none was generated).
    public var timeToFirstToken: Double?
    public var seconds = 0.0
    /// Speculative decoding: tokens drafted and accepted for this request.
    public var draftedTokens = 0
    public var acceptedTokens = 0
}

public enum EngineEvent: Sendable {
    /// Prompt positions evaluated so far (sent after each prefill chunk).
    case promptProgress(evaluated: Int, total: Int)
    /// Text decided since the last event (stop strings held back), and the tokens generated since.
    case text(String, tokens: [TokenLogprob])
    case finished(EngineFinish)
    case failed(String)
}

public enum EngineError: Error, CustomStringConvertible, Equatable {
    case queueFull(waiting: Int)
    case contextOverflow(prompt: Int, maxTokens: Int, context: Int)
    case emptyPrompt
    case stopped
    /// The model's other ranks cannot be reached (a distributed run's link failed): nothing can run.
    case unavailable(String)

    public var description: String {
        switch self {
        case .queueFull(let n): return "the server is busy: \(n) requests are already waiting"
        case .contextOverflow(let p, let m, let c):
            return "the prompt (\(p) tokens) plus max_tokens (\(m)) needs \(p + m) positions, \(p + m - c) more than the context holds (\(c))"
        case .emptyPrompt: return "the prompt is empty"
        case .stopped: return "the engine is shutting down"
        case .unavailable(let why): return "the model is unavailable: its other ranks cannot be reached (\(why))"
        }
    }
}

/// Receives the engine's measurements (the server turns them into Prometheus metrics).
public protocol BatchEngineObserver: AnyObject, Sendable {
    func engineStep(decodeTokens: Int, promptTokens: Int, seconds: Double)
    func requestFinished(_ finish: EngineFinish)
}

/// A submitted request: its events, and a way to cancel it.
public final class EngineHandle: @unchecked Sendable {
    public let events: AsyncStream<EngineEvent>
    fileprivate let job: BatchEngine.Job
    fileprivate weak var engine: BatchEngine?

    fileprivate init(job: BatchEngine.Job, events: AsyncStream<EngineEvent>, engine: BatchEngine) {
        self.job = job; self.events = events; self.engine = engine
    }

    /// Stops generation; the sequence leaves the batch at the next step and frees its pages.
    public func cancel() { engine?.cancel(job) }
}

public final class BatchEngine: @unchecked Sendable {
    public let loaded: LoadedModel
    /// Sequences generating at once.
    public let parallel: Int
    /// Positions per sequence (prompt + generated).
    public let contextLength: Int
    /// Requests that may wait for a slot before new ones are refused.
    public let maxQueue: Int
    /// Most prompt tokens evaluated in one step (between two decode steps of the other sequences).
    public let prefillChunk: Int
    public let pool: KVPagePool
    public weak var observer: BatchEngineObserver?
    /// Speculative decoding for unconstrained requests (nil: off).
    public let speculation: SpeculationOptions?
    /// Whether unconstrained requests speculate (asked for with a drafter the engine runs, n-grams or a
    /// draft model, and exact for this model).
    public var speculates: Bool {
        guard let speculation else { return false }
        if speculation.mode == .mtp, (try? loaded.model.nextNHead()) == nil { return false }
        return loaded.model.body.exactDecodeRows && state.maxBatch > parallel + 1
    }

    private let state: InferenceState
    /// Draft-model sessions not in use (--spec draft): one per active request at most, their KV in one
    /// pool sized for `parallel` sequences; an idle one keeps its pages, so a request that continues a
    /// conversation drafts without prefilling it again.
    private var idleDraftSessions: [Session] = []
    private lazy var draftKVPool: KVPagePool? = speculation?.draftModel.map { draft in
        KVPagePool(shape: draft.model.kvShape(), pageTokens: InferenceState.defaultPageTokens,
                   budgetBytes: RuntimeOptions.kvBudgetBytes(draft.model, contextLength: contextLength, prefillChunk: prefillChunk,
                                                             type: draft.model.kvShape().type, sequences: parallel))
    }
    private let condition = NSCondition()
    private var waiting: [Job] = []
    private var activeCount = 0
    private var running = true
    /// Set when a step's link to the model's other ranks failed: every request from then on is refused.
    private var unavailableReason: String?
    private var thread: Thread?

    /// Live counts for /metrics and /health.
    public struct Snapshot: Sendable {
        public var active = 0, queued = 0
        /// Why the engine refuses requests (a distributed run lost its ranks); nil: it serves.
        public var unavailable: String?
        public var kvPagesTotal = 0, kvPagesFree = 0, kvPagesCached = 0
        /// Side-state snapshots held (DeepSeek V4, Qwen3.5) and their bytes; restarts that restored one,
        /// and positions replayed to rebuild side state (since start).
        public var stateCheckpoints = 0, stateCheckpointBytes = 0, stateCheckpointRestores = 0, stateReplayedPositions = 0
    }

    final class Job: @unchecked Sendable {
        let request: EngineRequest
        let continuation: AsyncStream<EngineEvent>.Continuation
        let submitted = Date()
        var cancelled = false          // under the engine's lock
        // Engine-thread state.
        var sequence: KVSequence?
        var sampler: Sampler
        var detokenizer: StreamingDetokenizer
        var pendingText = ""
        var stopHit: String?
        var history: [Int32]
        var generated = 0
        var promptCursor = 0
        var cachedPrompt = 0
        var nextToken: Int32?
        /// Generated positions to evaluate again before the next decode step (their KV pages were lost
        /// on the disk tier), fed like a prompt.
        var refeed: [Int32] = []
        var firstToken: Date?
        var logprobs: [TokenLogprob] = []
        var constraint: (any TokenConstraint)?
        /// Pages this request may hold at most (prompt + max_tokens).
        var pagesNeeded = 0
        /// Speculative decoding of this request (unconstrained, engine's --spec), and this step's draft
        /// after nextToken.
        var speculation: DraftState?
        var draft = Draft()
        /// The side state before this step's draft was verified (models that keep side state).
        var sideMark: SideStateMark?
        /// Feeds the request's MTP drafter every chunk of its sequence the engine commits (--spec mtp).
        var commitObserver: ((UnsafeBufferPointer<Int32>, Int, UnsafePointer<Float>) -> Void)?

        init(_ request: EngineRequest, tokenizer: Tokenizer, continuation: AsyncStream<EngineEvent>.Continuation) {
            self.request = request
            self.continuation = continuation
            sampler = Sampler(request.options.sampler)
            detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
            history = request.prompt
            constraint = request.constraint?.start()
        }
    }

    /// An engine of `parallel` sequences of `contextLength` positions on `threads` threads (resolved
    /// values: RuntimeOptions holds the defaults). Without `kvPool`, a pool of `kvBudgetBytes` (default:
    /// what `parallel` sequences need) is made.
    public init(_ loaded: LoadedModel, parallel: Int = 4, contextLength: Int, maxBatch: Int = RuntimeOptions.defaultBatch,
                prefillChunk: Int = 256, threads: Int, kvPool: KVPagePool? = nil, kvBudgetBytes: Int? = nil, maxQueue: Int = 64,
                speculation: SpeculationOptions? = nil, backend: BackendProvider? = nil) {
        self.loaded = loaded
        self.speculation = speculation
        self.parallel = max(1, parallel)
        self.contextLength = contextLength
        self.maxQueue = max(0, maxQueue)
        let batch = max(self.parallel + 1, maxBatch)
        self.prefillChunk = max(1, min(prefillChunk, batch - self.parallel))
        let shape = loaded.model.kvShape()
        pool = kvPool ?? KVPagePool(
            shape: shape, pageTokens: InferenceState.defaultPageTokens,
            budgetBytes: kvBudgetBytes ?? RuntimeOptions.kvBudgetBytes(loaded.model, contextLength: contextLength, prefillChunk: self.prefillChunk,
                                                                       type: shape.type, sequences: self.parallel))
        state = InferenceState(model: loaded.model, contextLength: contextLength, maxBatch: batch, threads: threads, kvPool: pool,
                               backend: backend)
        let t = Thread { [weak self] in self?.run() }
        t.name = "dwarfstar-engine"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// An engine with resolved runtime options: `options.sequences` sequences, their KV in the model's
    /// shared pool of `options.kvBudgetBytes` (RuntimeOptions.kvPool(_:)).
    public convenience init(_ loaded: LoadedModel, options: RuntimeOptions, maxQueue: Int = 64, speculation: SpeculationOptions? = nil) throws {
        self.init(loaded, parallel: options.sequences, contextLength: options.contextLength, maxBatch: options.batch,
                  prefillChunk: options.prefillChunk, threads: options.threads, kvPool: try options.kvPool(loaded), maxQueue: maxQueue,
                  speculation: speculation, backend: options.backend.provider)
    }

    /// The engine's batch state: rank 0 of a pipeline sets its link before the first request; a later rank
    /// serves its layers through it (the same batch and KV pool as rank 0's engine).
    public var batchState: InferenceState { state }

    /// Stops the engine thread; waiting and active requests fail.
    public func shutdown() {
        condition.lock()
        running = false
        condition.broadcast()
        condition.unlock()
    }

    deinit { shutdown() }

    public var snapshot: Snapshot {
        condition.lock()
        var s = Snapshot(active: activeCount, queued: waiting.count, unavailable: unavailableReason)
        condition.unlock()
        s.kvPagesTotal = pool.capacity
        s.kvPagesFree = pool.freePages
        s.kvPagesCached = pool.cachedPages
        s.stateCheckpoints = pool.checkpointCount
        s.stateCheckpointBytes = pool.checkpointBytes
        s.stateCheckpointRestores = pool.checkpointHits
        s.stateReplayedPositions = pool.replayedPositions
        return s
    }

    /// Queues a request. Throws EngineError for an empty or too long prompt, or when the queue is full.
    public func submit(_ request: EngineRequest) throws -> EngineHandle {
        guard !request.prompt.isEmpty else { throw EngineError.emptyPrompt }
        let maxTokens = max(0, request.options.maxTokens)
        guard request.prompt.count + maxTokens <= contextLength else {
            throw EngineError.contextOverflow(prompt: request.prompt.count, maxTokens: maxTokens, context: contextLength)
        }
        var continuation: AsyncStream<EngineEvent>.Continuation!
        let events = AsyncStream<EngineEvent>(bufferingPolicy: .unbounded) { continuation = $0 }
        let job = Job(request, tokenizer: loaded.tokenizer, continuation: continuation)
        job.pagesNeeded = KVPagePool.pagesNeeded(pool.shape, positions: request.prompt.count + maxTokens,
                                                 batch: prefillChunk, pageTokens: pool.pageTokens)
        condition.lock()
        defer { condition.unlock() }
        guard running else { throw EngineError.stopped }
        if let unavailableReason { throw EngineError.unavailable(unavailableReason) }
        guard waiting.count < maxQueue + max(0, parallel - activeCount) else { throw EngineError.queueFull(waiting: waiting.count) }
        waiting.append(job)
        condition.signal()
        let handle = EngineHandle(job: job, events: events, engine: self)
        continuation.onTermination = { [weak self, weak job] _ in if let self, let job { self.cancel(job) } }
        return handle
    }

    fileprivate func cancel(_ job: Job) {
        condition.lock()
        job.cancelled = true
        condition.signal()
        condition.unlock()
    }

    // MARK: - Engine thread

    private var active: [Job] = []
    private var finishedRequests = 0

    private func run() {
        while true {
            condition.lock()
            if active.isEmpty && waiting.isEmpty && running {
                condition.unlock()
                state.pool.park()
                condition.lock()
                while running && waiting.isEmpty && !active.contains(where: { $0.cancelled }) && active.isEmpty { condition.wait() }
            }
            guard running else {
                let all = active + waiting
                waiting.removeAll()
                condition.unlock()
                for job in all { job.continuation.yield(.failed(EngineError.stopped.description)); job.continuation.finish() }
                active.removeAll()
                return
            }
            // Cancelled requests leave (waiting ones too); new ones are admitted while their pages fit.
            let cancelled = active.filter { $0.cancelled } + waiting.filter { $0.cancelled }
            waiting.removeAll { $0.cancelled }
            condition.unlock()
            for job in cancelled { finish(job, .cancelled) }
            admit()
            if !active.isEmpty { step() }
        }
    }

    /// Moves waiting requests into the batch while a slot is free and the pool can hold what every
    /// active request may still need.
    private func admit() {
        while active.count < parallel {
            condition.lock()
            guard let job = waiting.first else { condition.unlock(); return }
            condition.unlock()
            let outstanding = active.reduce(0) { $0 + max(0, $1.pagesNeeded - ($1.sequence?.heldPages ?? 0)) }
            let available = pool.freePages + pool.cachedPages - outstanding
            // With nothing running, admit anyway: an oversized request then fails with a clear error.
            guard available >= job.pagesNeeded || active.isEmpty else { return }
            condition.lock()
            waiting.removeFirst()
            activeCount = active.count + 1
            condition.unlock()
            let sequence = KVSequence(pool: pool, maxPositions: contextLength)
            // At least two prompt tokens are evaluated, so the prompt's last rows take the same (block)
            // attention kernel as in a cold run: cached or not, the answer is the same.
            job.cachedPrompt = sequence.attachCachedPrefix(of: job.request.prompt, limit: job.request.prompt.count - 2)
            job.promptCursor = job.cachedPrompt
            job.sequence = sequence
            if speculates, let spec = speculation, job.constraint == nil {
                job.speculation = DraftState(spec, drafter: drafter(spec, for: job), maxDraft: min(spec.draftMax, prefillChunk / 2))
            }
            active.append(job)
        }
    }

    /// A request's drafter: n-grams of its own text, an idle draft-model session, or an MTP drafter of
    /// its own (fed every chunk of its sequence; a prompt partly taken from the prefix cache leaves it
    /// without those positions, and it drafts nothing).
    private func drafter(_ options: SpeculationOptions, for job: Job) -> any Drafter {
        if options.mode == .mtp, let head = try? loaded.model.nextNHead() {
            let mtp = MTPDrafter(head: head, target: state, contextLength: contextLength, sampler: job.request.options.sampler)
            job.commitObserver = { [weak mtp] tokens, start, hidden in mtp?.observe(tokens, start: start, hidden: hidden) }
            return mtp
        }
        guard options.mode == .draft, let draftModel = options.draftModel, let kv = draftKVPool else {
            return NGramDrafter(ngramMin: options.ngramMin, ngramMax: options.ngramMax)
        }
        let session = idleDraftSessions.popLast()
            ?? Session(draftModel, contextLength: contextLength, threads: state.pool.threads, batch: prefillChunk, kvPool: kv, workers: state.pool)
        return DraftModelDrafter(session: session, sampler: job.request.options.sampler, targetVocabulary: loaded.model.vocabularySize)
    }

    /// One batched forward pass: a decode token of every generating sequence, then prompt chunks.
    private func step() {
        var items: [SequenceBatchItem] = [], members: [Job] = []
        var draftTokens = 0
        for job in active where job.nextToken != nil && job.refeed.isEmpty {
            let next = job.nextToken!, start = job.sequence!.count
            job.draft = Draft()
            if job.speculation != nil {
                let room = min(job.request.options.maxTokens - job.generated - 1, contextLength - start - 2, prefillChunk / 2 - draftTokens)
                // A drafter that fails (its own cache full) only costs the draft.
                job.draft = (try? job.speculation!.draft(after: job.history, room: room)) ?? Draft()
                job.sideMark = job.draft.tokens.isEmpty || !loaded.model.keepsSideState ? nil : loaded.model.markSideState(of: job.sequence!)
                if loaded.model.keepsSideState && job.sideMark == nil { job.draft = Draft() }   // cannot be undone: no draft
                draftTokens += job.draft.tokens.count
            }
            var item = SequenceBatchItem(cache: job.sequence!, tokens: [next] + job.draft.tokens, startPosition: start, wantsLogits: true,
                                         isPrompt: false)
            item.allLogits = !job.draft.tokens.isEmpty
            item.onCommit = job.commitObserver
            items.append(item)
            members.append(job)
        }
        let decodeTokens = items.count
        var budget = prefillChunk - draftTokens
        for job in active where !job.refeed.isEmpty && budget > 0 {
            let n = min(job.refeed.count, budget)
            var item = SequenceBatchItem(cache: job.sequence!, tokens: Array(job.refeed.prefix(n)), startPosition: job.sequence!.count,
                                         wantsLogits: false, isPrompt: true)
            item.onCommit = job.commitObserver
            items.append(item)
            members.append(job)
            budget -= n
        }
        for job in active where job.nextToken == nil && budget > 0 {
            let prompt = job.request.prompt
            var n = min(prompt.count - job.promptCursor, budget)
            // Side state is checkpointed at the prompt's last page boundary: a chunk ends there.
            if let boundary = loaded.model.pageAlignedCheckpoint(promptLength: prompt.count, pageTokens: pool.pageTokens),
               job.promptCursor < boundary, boundary < job.promptCursor + n { n = boundary - job.promptCursor }
            var item = SequenceBatchItem(cache: job.sequence!, tokens: Array(prompt[job.promptCursor..<(job.promptCursor + n)]),
                                         startPosition: job.promptCursor, wantsLogits: job.promptCursor + n == prompt.count, isPrompt: true)
            item.onCommit = job.commitObserver
            items.append(item)
            members.append(job)
            budget -= n
        }
        let start = Date()
        let logits: UnsafeBufferPointer<Float>
        do {
            logits = try loaded.model.forward(batch: items, state: state)
        } catch let e as SequenceBatchError {
            // Pages lost on the disk tier: that sequence evaluates the lost positions again (nothing of
            // the batch ran; the others go on at the next step).
            if case KVCacheError.pagesLost(_, let kept) = e.underlying {
                rewind(members[e.item], to: kept)
            } else {
                fail(members[e.item], "\(e.underlying)")
            }
            return
        } catch let failure as PipelineLinkFailure {
            // The other ranks are gone or silent: this step's requests, and every one waiting or to come,
            // are refused at once rather than each waiting out the link's timeout.
            let message = EngineError.unavailable("\(failure)").description
            condition.lock()
            unavailableReason = "\(failure)"
            let queued = waiting
            waiting.removeAll()
            condition.unlock()
            for job in active { fail(job, message) }
            for job in queued { job.continuation.yield(.failed(message)); job.continuation.finish() }
            return
        } catch {
            for job in members { fail(job, "\(error)") }
            return
        }
        let stepSeconds = Date().timeIntervalSince(start)
        observer?.engineStep(decodeTokens: decodeTokens + draftTokens,
                             promptTokens: items.count > decodeTokens ? prefillChunk - draftTokens - budget : 0, seconds: stepSeconds)
        let vocab = loaded.model.vocabularySize
        var row = 0
        for (job, item) in zip(members, items) {
            if job.nextToken != nil && !job.refeed.isEmpty {
                job.refeed.removeFirst(item.tokens.count)
                continue
            }
            if job.nextToken == nil {
                job.promptCursor += item.tokens.count
                if !item.wantsLogits {
                    if job.promptCursor == loaded.model.pageAlignedCheckpoint(promptLength: job.request.prompt.count, pageTokens: pool.pageTokens) {
                        loaded.model.checkpointSideState(of: job.sequence!, pipeline: state.pipeline)
                    }
                    job.continuation.yield(.promptProgress(evaluated: job.promptCursor, total: job.request.prompt.count))
                    continue
                }
                loaded.model.checkpointSideState(of: job.sequence!, pipeline: state.pipeline)   // the prompt's end, for a resent conversation
            }
            func rowLogits(_ r: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(rebasing: logits[(r * vocab)..<((r + 1) * vocab)]) }
            if job.draft.tokens.isEmpty {
                job.speculation?.recordStep(seconds: stepSeconds)
                accept(job, logits: rowLogits(row))
                row += 1
                continue
            }
            // Drafts: keep the prefix the model accepts, roll the rest back, then emit every kept token
            // and the one after it (the rule's replacement for a rejected one, else sampled from its row).
            let draft = job.draft.tokens, first = row
            let (kept, replacement) = DraftState.verify(job.draft, rows: { rowLogits(first + $0) }, sampler: job.sampler, history: job.history)
            do {
                // The kept rows stay (with side state: evaluated again; the batch's logits stay in place).
                try loaded.model.keepVerified(Array(item.tokens[...kept]), of: job.sequence!, from: item.startPosition, mark: job.sideMark,
                                              state: state)
            } catch {
                fail(job, "\(error)")
                row += draft.count + 1
                continue
            }
            job.sideMark = nil
            job.speculation!.recordPass(rows: draft.count + 1, seconds: stepSeconds, drafted: draft.count, accepted: kept)
            row += draft.count + 1
            for i in 0...kept {
                accept(job, logits: rowLogits(first + i), chosen: i < kept ? draft[i] : replacement)
                if job.sequence == nil { break }   // finished (end, stop string, length)
            }
        }
    }

    /// Samples the token after `logits` (or takes `chosen`, a token speculation decided), emits its text,
    /// and decides whether the request goes on.
    private func accept(_ job: Job, logits: UnsafeBufferPointer<Float>, chosen: Int32? = nil) {
        let options = job.request.options
        let tokenizer = loaded.tokenizer
        guard options.maxTokens > 0 else { finish(job, .length); return }
        let next: Int32
        if let constraint = job.constraint {
            // Constrained: only tokens that keep the output a prefix of what is allowed; end once complete.
            if constraint.isFinished { finish(job, .endOfGeneration); return }
            let bytes = tokenBytes
            guard let t = job.sampler.sample(logits, history: job.history, allowed: { id in
                if tokenizer.isEndOfGeneration(id) { return constraint.isComplete }
                return !tokenizer.isSpecial(id) && !bytes[Int(id)].isEmpty && constraint.accepts(bytes[Int(id)])
            }) else { fail(job, "no token can continue the constrained output"); return }
            next = t
            if !tokenizer.isEndOfGeneration(t) { _ = job.constraint!.feed(bytes[Int(t)]) }
        } else {
            next = chosen ?? job.sampler.sample(logits, history: job.history)
        }
        if job.firstToken == nil { job.firstToken = Date() }
        if !options.ignoreEOS && tokenizer.isEndOfGeneration(next) { finish(job, .endOfGeneration); return }
        job.generated += 1
        job.history.append(next)
        if let top = job.request.topLogprobs { job.logprobs.append(BatchEngine.logprob(of: next, in: logits, top: top, tokenizer: tokenizer)) }
        job.pendingText += job.detokenizer.push(next)
        let before = job.pendingText
        if let (text, hit) = Session.applyStops(&job.pendingText, stops: options.stop) {
            job.continuation.yield(.text(text, tokens: job.logprobs))
            job.logprobs.removeAll()
            if hit {
                job.stopHit = options.stop.first { !$0.isEmpty && before.contains($0) }
                job.pendingText = ""
                finish(job, .stopString)
                return
            }
        }
        if job.constraint?.isFinished == true { finish(job, .endOfGeneration); return }
        if job.generated >= options.maxTokens { finish(job, .length); return }
        if job.sequence!.count + 1 >= contextLength { finish(job, .contextFull); return }
        job.nextToken = next
    }

    private func finish(_ job: Job, _ reason: GenerationResult.StopReason) {
        if reason != .stopString {
            job.pendingText += job.detokenizer.flush()
            if !job.pendingText.isEmpty || !job.logprobs.isEmpty { job.continuation.yield(.text(job.pendingText, tokens: job.logprobs)) }
        }
        var f = EngineFinish()
        f.promptTokens = job.request.prompt.count
        f.cachedPromptTokens = job.cachedPrompt
        f.completionTokens = job.generated
        f.stopReason = reason
        f.stopSequence = job.stopHit
        f.timeToFirstToken = job.firstToken.map { $0.timeIntervalSince(job.submitted) }
        f.seconds = Date().timeIntervalSince(job.submitted)
        f.draftedTokens = job.speculation?.statistics.drafted ?? 0
        f.acceptedTokens = job.speculation?.statistics.accepted ?? 0
        // Slot, pages and metrics are settled before the client hears the end: a client that asks /health
        // or /metrics right after its answer sees its request gone.
        if let sequence = job.sequence { loaded.model.checkpointSideState(of: sequence, pipeline: state.pipeline) }
        remove(job)
        observer?.requestFinished(f)
        job.continuation.yield(.finished(f))
        job.continuation.finish()
        finishedRequests += 1
        if finishedRequests % 64 == 0 { loaded.saveExpertStatistics() }   // popularity for the next start
    }

    /// After the job's sequence was cut to `kept` positions: a prompt resumes from there; a generating
    /// request first evaluates its lost positions again (prompt and generated tokens before the pending
    /// one), then decodes on.
    private func rewind(_ job: Job, to kept: Int) {
        if job.nextToken == nil {
            job.promptCursor = min(job.promptCursor, kept)
        } else {
            // history = prompt + generated tokens; the last one (nextToken) is not in the cache yet.
            job.refeed = Array(job.history[min(kept, job.history.count - 1)..<(job.history.count - 1)])
        }
    }

    private func fail(_ job: Job, _ message: String) {
        remove(job)
        job.continuation.yield(.failed(message))
        job.continuation.finish()
    }

    /// Drops the job from the batch; its sequence (and with it its page references) goes away.
    private func remove(_ job: Job) {
        active.removeAll { $0 === job }
        job.sequence = nil
        if let drafter = job.speculation?.drafter as? DraftModelDrafter { idleDraftSessions.append(drafter.session) }
        job.speculation = nil
        job.commitObserver = nil
        condition.lock()
        activeCount = active.count
        condition.unlock()
    }

    /// Bytes of every token (constrained decoding), built on first use.
    private lazy var tokenBytes: [[UInt8]] = (0..<loaded.tokenizer.vocabularySize).map { loaded.tokenizer.tokenPiece(Int32($0)) }

    /// log p(token) = logit − log Σ exp(logits), and the `top` most likely tokens.
    static func logprob(of token: Int32, in logits: UnsafeBufferPointer<Float>, top: Int, tokenizer: Tokenizer) -> TokenLogprob {
        var maxLogit = -Float.infinity
        for v in logits where v > maxLogit { maxLogit = v }
        var sum: Double = 0
        for v in logits { sum += Double(expf(v - maxLogit)) }
        let lse = maxLogit + Float(log(sum))
        var best: [(Int32, Float)] = []
        if top > 0 {
            for (i, v) in logits.enumerated() where best.count < top || v > best[best.count - 1].1 {
                let at = best.firstIndex { v > $0.1 } ?? best.count
                best.insert((Int32(i), v), at: at)
                if best.count > top { best.removeLast() }
            }
        }
        return TokenLogprob(token: token, bytes: tokenizer.tokenPiece(token), logprob: logits[Int(token)] - lse,
                            top: best.map { ($0.0, tokenizer.tokenPiece($0.0), $0.1 - lse) })
    }
}
