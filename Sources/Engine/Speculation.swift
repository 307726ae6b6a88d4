// Speculative decoding: a drafter guesses the next tokens, one forward pass of decode rows
// [sampled token, draft…] checks them, the longest prefix the model accepts is kept and the rest is
// rolled back in the KV cache. Every row of that pass computes what a lone decode step would, bit for
// bit (LayerStack.exactDecodeRows: the multi-row kernels, attention one row at a time). Greedy, a drafted
// token is accepted when it is the argmax, so the output is token for token the non-speculative one.
// Sampling (temperature > 0), the speculative-sampling rule (Sampler.verify) accepts or replaces each
// drafted token so that what is emitted is distributed exactly as without speculation.
//
// The draft length is chosen per step to maximise expected tokens per second: with per-token acceptance
// α, a draft of k gives E(k) = (1 − α^(k+1)) / (1 − α) tokens for a pass of k + 1 rows, which costs
// c(k + 1) lone steps (measured on this machine and model as the request runs). k = 0 (plain decoding)
// whenever no k gives E(k) / c(k + 1) > 1.

import Foundation
import Sampling

/// Where drafts come from.
public enum SpeculationMode: String, Sendable, CaseIterable {
    /// Prompt lookup: the tokens that followed an earlier occurrence of the text's last n-gram.
    case ngram
    /// A smaller model with the same vocabulary decodes the draft (`SpeculationOptions.draftModel`).
    case draft
    /// The model's own MTP / next-n layer (GLM-4.5/4.6 nextn, DeepSeek V3 MTP) chained from its hidden state.
    case mtp
}

public struct SpeculationOptions: Sendable, Equatable {
    public var mode: SpeculationMode = .ngram
    /// Longest draft.
    public var draftMax = 16
    /// Shortest draft: above 0 every step drafts at least this many tokens whatever the tuner measures
    /// (llama.cpp's --spec-draft-n-min; for comparisons and experiments).
    public var draftMin = 0
    /// N-gram sizes looked up, longest first.
    public var ngramMin = 2
    public var ngramMax = 4
    /// Start the draft-length tuner from the pass costs measured by earlier runs of this model on this
    /// machine, and save this run's (`<model>.dspasscosts`; run and chat).
    public var rememberPassCosts = false
    /// The draft model (mode .draft), loaded once; its vocabulary checked against the target's with
    /// `DraftModelDrafter.compatibilityProblem`.
    public var draftModel: LoadedModel?
    public init(mode: SpeculationMode = .ngram, draftMax: Int = 16, draftModel: LoadedModel? = nil) {
        self.mode = mode; self.draftMax = draftMax; self.draftModel = draftModel
    }
    public static func == (a: SpeculationOptions, b: SpeculationOptions) -> Bool {
        a.mode == b.mode && a.draftMax == b.draftMax && a.draftMin == b.draftMin && a.ngramMin == b.ngramMin && a.ngramMax == b.ngramMax
            && a.draftModel === b.draftModel && a.rememberPassCosts == b.rememberPassCosts
    }
}

/// Drafted tokens and, from a drafter that samples them, the distribution each was drawn from (nil:
/// chosen deterministically; speculative sampling then treats each as drawn with probability 1).
public struct Draft {
    public var tokens: [Int32] = []
    public var distributions: [[(id: Int32, p: Float)]]?
    public init(tokens: [Int32] = [], distributions: [[(id: Int32, p: Float)]]? = nil) {
        self.tokens = tokens; self.distributions = distributions
    }
}

extension Draft {
    /// An empty draft for a drafter sampling with `sampler` (distributions kept when it samples).
    init(for sampler: Sampler) { self.init(distributions: sampler.parameters.temperature > 0 ? [] : nil) }

    /// A drafter's choice after its `logits`: the argmax when greedy, else a token drawn from its
    /// distribution q, which comes back for the acceptance rule.
    static func choose(after logits: UnsafeBufferPointer<Float>, sampler: Sampler, history: [Int32]) -> (token: Int32, q: [(id: Int32, p: Float)]) {
        let q = sampler.distribution(logits, history: history)
        return (sampler.parameters.temperature > 0 ? sampler.draw(from: q) : q[0].id, q)
    }

    mutating func append(_ token: Int32, drawnFrom q: [(id: Int32, p: Float)]) {
        tokens.append(token)
        distributions?.append(q)
    }
}

extension Sampler {
    /// A drafter's sampler: the request's parameters on a seeded stream of its own (reproducible with
    /// the request's seed, independent of the request's own draws).
    static func drafting(_ parameters: SamplerParameters) -> Sampler {
        var own = parameters
        own.seed = parameters.seed.map { $0 &+ 0x9E37_79B9 }
        return Sampler(own)
    }
}

/// Proposes the tokens likely to follow a text.
public protocol Drafter {
    /// Up to `limit` tokens after `history` (all tokens so far, the one just sampled last).
    mutating func draft(after history: [Int32], limit: Int) throws -> Draft
}

public struct SpeculationStatistics: Sendable, Equatable {
    public init() {}
    /// Verification passes, drafted tokens, drafted tokens the model agreed with.
    public var passes = 0
    public var drafted = 0
    public var accepted = 0
    /// Why speculation did not run (nil: it ran).
    public var disabledReason: String?
    public var acceptanceRate: Double { drafted > 0 ? Double(accepted) / Double(drafted) : 0 }
    /// Which drafter ran (a SpeculationMode's name).
    public var drafter = SpeculationMode.ngram.rawValue
    public var summary: String {
        if let why = disabledReason { return "speculation off: \(why)" }
        return "speculation (\(drafter)): " + String(format: "%d passes, %d drafted, %d accepted (%.0f%%)", passes, drafted, accepted,
                      100 * acceptanceRate)
    }
}

/// Prompt-lookup drafts: for n from ngramMax down to ngramMin, the latest earlier occurrence of the
/// history's last n tokens, and up to `limit` tokens that followed it.
public struct NGramDrafter: Drafter, Sendable {
    public var ngramMin: Int
    public var ngramMax: Int
    public init(ngramMin: Int = 2, ngramMax: Int = 4) { self.ngramMin = max(1, ngramMin); self.ngramMax = max(ngramMin, ngramMax) }

    public func draft(after history: [Int32], limit: Int) -> Draft {
        Draft(tokens: tokens(after: history, limit: limit))
    }

    public func tokens(after history: [Int32], limit: Int) -> [Int32] {
        let count = history.count
        guard limit > 0 else { return [] }
        for n in stride(from: min(ngramMax, count - 1), through: ngramMin, by: -1) {
            let suffix = count - n
            var start = suffix - 1
            while start >= 0 {
                var same = true
                for j in 0..<n where history[start + j] != history[suffix + j] { same = false; break }
                if same {
                    let from = start + n
                    return Array(history[from..<min(count, from + limit)])
                }
                start -= 1
            }
        }
        return []
    }
}

/// Picks the draft length from the running acceptance rate and the measured cost of passes.
public struct DraftLengthTuner: Sendable {
    /// Per drafted token, the chance the model agrees (running average; optimistic start so the first
    /// drafts get measured).
    public private(set) var acceptance = 0.7
    /// Seconds of a lone decode step, and of a verification pass by its rows (running averages).
    private var stepSeconds: Double?
    private var passSeconds: [Int: Double] = [:]
    /// Seconds the drafter takes per drafted token (running average; n-grams: about 0, a draft model:
    /// one of its decode steps).
    private var draftSecondsPerToken: Double?
    /// Plain steps since the last draft: a draft is tried every `probeEvery` of them so a request whose
    /// text turns repetitive gets speculation back.
    private var plainSteps = 0
    static let probeEvery = 32
    public let draftMax: Int
    /// Drafts are at least this long (0: the tuner may choose plain steps).
    public let draftMin: Int
    /// Pass costs (rows → lone steps) measured by earlier runs on this machine: used for the lengths not
    /// measured yet in this one.
    private let savedCosts: [Int: Double]

    public init(draftMax: Int, draftMin: Int = 0, savedCosts: [Int: Double] = [:]) {
        self.draftMax = draftMax; self.draftMin = min(max(0, draftMin), draftMax); self.savedCosts = savedCosts
    }

    /// The pass costs this run measured (rows → lone steps), to be saved for the next.
    public var measuredCosts: [Int: Double] {
        guard let step = stepSeconds else { return [:] }
        return passSeconds.mapValues { max(1, $0 / step) }
    }

    /// Drafting k tokens and a verification pass of `rows` = k + 1 rows, in lone steps: the pass
    /// measured, else extrapolated from the passes measured (their mean cost per extra row; before any,
    /// 0.15 a row: the multi-row kernels share weight reads), plus the drafter's measured time for k
    /// tokens. One measured length thus prices the others, and a model whose rows cost nearly a step
    /// each (compute-bound) stops drafting after its first pass.
    public func cost(rows: Int) -> Double {
        let drafting = stepSeconds.map { (draftSecondsPerToken ?? 0) * Double(rows - 1) / $0 } ?? 0
        if let step = stepSeconds, let pass = passSeconds[rows] { return max(1, pass / step) + drafting }
        if let saved = savedCosts[rows] { return saved + drafting }
        return 1 + extraRowCost * Double(rows - 1) + drafting
    }

    /// Mean cost of one more row in a pass, in lone steps, over the lengths measured here or saved
    /// (prior 0.15).
    private var extraRowCost: Double {
        let known = savedCosts.merging(measuredCosts) { _, measured in measured }.filter { $0.key > 1 }
        let slopes = known.map { ($0.value - 1) / Double($0.key - 1) }
        return slopes.isEmpty ? 0.15 : slopes.reduce(0, +) / Double(slopes.count)
    }

    /// Expected tokens per lone-step time for a draft of k, at per-token acceptance `acceptance`.
    public func gain(_ k: Int, acceptance: Double? = nil) -> Double {
        let a = min(acceptance ?? self.acceptance, 0.999)
        return (1 - pow(a, Double(k + 1))) / (1 - a) / cost(rows: k + 1)
    }

    /// The draft length to ask for now (0: decode plainly; so is the first step, which measures what a
    /// lone step costs).
    public mutating func length() -> Int {
        if draftMin > 0 { return max(draftMin, lengthByGain()) }
        return lengthByGain()
    }

    private mutating func lengthByGain() -> Int {
        guard stepSeconds != nil else { return 0 }
        var best = 0, bestGain = 1.0
        for k in 1...max(1, draftMax) where gain(k) > bestGain { best = k; bestGain = gain(k) }
        if best == 0 {
            // Probe now and then in case the text turned predictable, unless even drafts that are always
            // accepted would not pay (a draft model as slow as the model).
            guard (1...max(1, draftMax)).contains(where: { gain($0, acceptance: 1) > 1 }) else { return 0 }
            plainSteps += 1
            if plainSteps >= DraftLengthTuner.probeEvery { plainSteps = 0; return min(4, draftMax) }
        }
        return best
    }

    public mutating func recordDraft(seconds: Double, tokens: Int) {
        guard tokens > 0 else { return }
        let perToken = seconds / Double(tokens)
        draftSecondsPerToken = draftSecondsPerToken.map { 0.7 * $0 + 0.3 * perToken } ?? perToken
    }

    public mutating func recordStep(seconds: Double) {
        stepSeconds = stepSeconds.map { 0.8 * $0 + 0.2 * seconds } ?? seconds
    }

    public mutating func recordPass(rows: Int, seconds: Double, drafted: Int, accepted: Int) {
        passSeconds[rows] = passSeconds[rows].map { 0.7 * $0 + 0.3 * seconds } ?? seconds
        guard drafted > 0 else { return }
        // Acceptance per token from this pass: accepted of the drafted (a miss ends the count).
        let observed = Double(accepted) / Double(drafted)
        acceptance = 0.8 * acceptance + 0.2 * observed
    }
}

/// One request's speculative decoding over a session's sequence.
struct Speculator {
    let session: Session
    var drafts: DraftState
    let rememberPassCosts: Bool

    /// Keeps what this run measured for the next (with rememberPassCosts).
    func savePassCosts() {
        if rememberPassCosts { session.loaded.savePassCosts(drafts.tuner.measuredCosts, threads: session.state.pool.threads) }
    }

    init(_ options: SpeculationOptions, session: Session, sampler: SamplerParameters) throws {
        self.session = session
        let drafter: any Drafter
        switch options.mode {
        case .draft: drafter = try session.draftModelDrafter(options, sampler: sampler)
        case .mtp: drafter = try session.mtpDrafter(sampler: sampler)
        case .ngram: drafter = NGramDrafter(ngramMin: options.ngramMin, ngramMax: options.ngramMax)
        }
        rememberPassCosts = options.rememberPassCosts
        let saved = options.rememberPassCosts ? session.loaded.loadPassCosts(threads: session.state.pool.threads) : [:]
        drafts = DraftState(options, drafter: drafter, maxDraft: min(options.draftMax, session.state.maxBatch - 1), savedCosts: saved)
        if !session.model.body.exactDecodeRows {
            drafts.statistics.disabledReason = "this architecture's decode rows are not exact in a batch"
        } else if session.state.maxBatch < 2 {
            drafts.statistics.disabledReason = "a batch of 1 token leaves no room for a draft"
        }
    }

    var statistics: SpeculationStatistics { drafts.statistics }
    var active: Bool { drafts.statistics.disabledReason == nil }

    /// Evaluates `next` (just sampled; `history` ends with it) at the cache's end, and with it a draft
    /// of the tokens after it when one pays (at most `room` tokens). Returns the logits after the last
    /// position kept, the drafted tokens accepted (their K/V kept in the cache) and, when a drafted token
    /// was rejected, the token to emit in its place (nil: sample from the logits).
    mutating func step(_ next: Int32, history: [Int32], room: Int, sampler: Sampler)
        throws -> (logits: UnsafeBufferPointer<Float>, accepted: [Int32], replacement: Int32?) {
        let model = session.model, state = session.state, start = state.cache.count
        // Side state (recurrent, compressed) is marked before the pass, to go back to if drafts are
        // rejected; where it cannot be marked this step decodes plainly.
        let mark = model.keepsSideState ? model.markSideState(of: state.cache) : nil
        let draft = active && (mark != nil || !model.keepsSideState) ? try drafts.draft(after: history, room: room) : Draft()
        let began = DispatchTime.now().uptimeNanoseconds   // the pass; drafting is timed on its own
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9 }
        guard !draft.tokens.isEmpty else {
            let logits = try model.forward([next], startPosition: start, state: state, logits: .last)
            if active { drafts.recordStep(seconds: seconds()) }
            return (logits, [], nil)
        }
        let all = try model.forward([next] + draft.tokens, startPosition: start, state: state, logits: .all, asDecodeRows: true)
        let vocabulary = model.vocabularySize
        func row(_ i: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(rebasing: all[(i * vocabulary)..<((i + 1) * vocabulary)]) }
        let (accepted, replacement) = DraftState.verify(draft, rows: row, sampler: sampler, history: history)
        try model.keepVerified([next] + draft.tokens[..<accepted], of: state.cache, from: start, mark: mark, state: state)
        drafts.recordPass(rows: draft.tokens.count + 1, seconds: seconds(), drafted: draft.tokens.count, accepted: accepted)
        return (row(accepted), Array(draft.tokens[..<accepted]), replacement)
    }
}

/// One request's drafter, draft-length tuner and counts (a session's Speculator, or a server request
/// whose drafts the batch engine verifies).
struct DraftState {
    var drafter: any Drafter
    var tuner: DraftLengthTuner
    var statistics = SpeculationStatistics()

    init(_ options: SpeculationOptions, drafter: any Drafter, maxDraft: Int, savedCosts: [Int: Double] = [:]) {
        self.drafter = drafter
        tuner = DraftLengthTuner(draftMax: max(1, maxDraft), draftMin: options.draftMin, savedCosts: savedCosts)
        statistics.drafter = options.mode.rawValue
    }

    /// The draft after `history` for this step (at most `room` tokens; empty when none pays).
    mutating func draft(after history: [Int32], room: Int) throws -> Draft {
        let length = min(tuner.length(), room)
        guard length > 0 else { return Draft() }
        let began = DispatchTime.now().uptimeNanoseconds
        let draft = try drafter.draft(after: history, limit: length)
        tuner.recordDraft(seconds: Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9, tokens: draft.tokens.count)
        return draft
    }

    mutating func recordStep(seconds: Double) { tuner.recordStep(seconds: seconds) }

    mutating func recordPass(rows: Int, seconds: Double, drafted: Int, accepted: Int) {
        tuner.recordPass(rows: rows, seconds: seconds, drafted: drafted, accepted: accepted)
        statistics.passes += 1
        statistics.drafted += drafted
        statistics.accepted += accepted
    }

    /// Which leading drafted tokens the model accepts: row i holds the logits after
    /// [history, draft[0..<i]]; each drafted token in turn goes through the sampler's speculative rule
    /// (greedy: it is the argmax) until one is rejected. Returns how many were accepted and the token the
    /// rule emits in place of the first rejected one (nil when all were accepted: the token after them
    /// is sampled from row `accepted` as usual).
    static func verify(_ draft: Draft, rows: (Int) -> UnsafeBufferPointer<Float>, sampler: Sampler,
                       history: [Int32]) -> (accepted: Int, replacement: Int32?) {
        var seen = history
        for (i, token) in draft.tokens.enumerated() {
            if let other = sampler.verify(token, drafterDistribution: draft.distributions?[i], logits: rows(i), history: seen) {
                return (i, other)
            }
            seen.append(token)
        }
        return (draft.tokens.count, nil)
    }
}
