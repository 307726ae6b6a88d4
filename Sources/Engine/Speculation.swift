// Speculative decoding, greedy: a drafter guesses the next tokens, one forward pass of decode rows
// [sampled token, draft…] checks them, the longest prefix the model agrees with is kept and the rest is
// rolled back in the KV cache. Every row of that pass computes what a lone decode step would, bit for
// bit (LayerStack.exactDecodeRows: the multi-row kernels, attention one row at a time), so the output
// is token for token the non-speculative one; speculation changes only the speed.
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
}

public struct SpeculationOptions: Sendable, Equatable {
    public var mode: SpeculationMode = .ngram
    /// Longest draft.
    public var draftMax = 16
    /// N-gram sizes looked up, longest first.
    public var ngramMin = 2
    public var ngramMax = 4
    public init(mode: SpeculationMode = .ngram, draftMax: Int = 16) { self.mode = mode; self.draftMax = draftMax }
}

public struct SpeculationStatistics: Sendable, Equatable {
    /// Verification passes, drafted tokens, drafted tokens the model agreed with.
    public var passes = 0
    public var drafted = 0
    public var accepted = 0
    /// Why speculation did not run (nil: it ran).
    public var disabledReason: String?
    public var acceptanceRate: Double { drafted > 0 ? Double(accepted) / Double(drafted) : 0 }
    public var summary: String {
        if let why = disabledReason { return "speculation off: \(why)" }
        return String(format: "speculation (ngram): %d passes, %d drafted, %d accepted (%.0f%%)", passes, drafted, accepted,
                      100 * acceptanceRate)
    }
}

/// Prompt-lookup drafts: for n from ngramMax down to ngramMin, the latest earlier occurrence of the
/// history's last n tokens, and up to `limit` tokens that followed it.
public struct NGramDrafter: Sendable {
    public var ngramMin: Int
    public var ngramMax: Int
    public init(ngramMin: Int = 2, ngramMax: Int = 4) { self.ngramMin = max(1, ngramMin); self.ngramMax = max(ngramMin, ngramMax) }

    public func draft(after history: [Int32], limit: Int) -> [Int32] {
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
    /// Plain steps since the last draft: a draft is tried every `probeEvery` of them so a request whose
    /// text turns repetitive gets speculation back.
    private var plainSteps = 0
    static let probeEvery = 32
    public let draftMax: Int

    public init(draftMax: Int) { self.draftMax = draftMax }

    /// A pass of `rows` rows in lone steps: measured, else a prior (the multi-row kernels share weight
    /// reads; kept optimistic so that lengths get tried).
    public func cost(rows: Int) -> Double {
        if let step = stepSeconds, let pass = passSeconds[rows] { return max(1, pass / step) }
        return 1 + 0.15 * Double(rows - 1)
    }

    /// Expected tokens per lone-step time for a draft of k.
    public func gain(_ k: Int) -> Double {
        let a = min(acceptance, 0.999)
        return (1 - pow(a, Double(k + 1))) / (1 - a) / cost(rows: k + 1)
    }

    /// The draft length to ask for now (0: decode plainly).
    public mutating func length() -> Int {
        var best = 0, bestGain = 1.0
        for k in 1...max(1, draftMax) where gain(k) > bestGain { best = k; bestGain = gain(k) }
        if best == 0 {
            plainSteps += 1
            if plainSteps >= DraftLengthTuner.probeEvery { plainSteps = 0; return min(4, draftMax) }
        }
        return best
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

    init(_ options: SpeculationOptions, session: Session, sampler: SamplerParameters) {
        self.session = session
        drafts = DraftState(options, maxDraft: min(options.draftMax, session.state.maxBatch - 1))
        if sampler.temperature > 0 {
            drafts.statistics.disabledReason = "drafts are verified greedily; use --temp 0"
        } else if !session.model.body.exactDecodeRows {
            drafts.statistics.disabledReason = "this architecture's decode rows are not exact in a batch yet (MLA or side state)"
        } else if session.state.maxBatch < 2 {
            drafts.statistics.disabledReason = "a batch of 1 token leaves no room for a draft"
        }
    }

    var statistics: SpeculationStatistics { drafts.statistics }
    var active: Bool { drafts.statistics.disabledReason == nil }

    /// Evaluates `next` (just sampled; `history` ends with it) at the cache's end, and with it a draft
    /// of the tokens after it when one pays (at most `room` tokens). Returns the logits after the last
    /// position kept and the drafted tokens the model agreed with (their K/V kept in the cache).
    mutating func step(_ next: Int32, history: [Int32], room: Int, sampler: Sampler) throws -> (UnsafeBufferPointer<Float>, [Int32]) {
        let model = session.model, state = session.state, start = state.cache.count
        let draft = active ? drafts.draft(after: history, room: room) : []
        let began = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9 }
        guard !draft.isEmpty else {
            let logits = try model.forward([next], startPosition: start, state: state, logits: .last)
            if active { drafts.recordStep(seconds: seconds()) }
            return (logits, [])
        }
        let all = try model.forward([next] + draft, startPosition: start, state: state, logits: .all, asDecodeRows: true)
        let vocabulary = model.vocabularySize
        func row(_ i: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(rebasing: all[(i * vocabulary)..<((i + 1) * vocabulary)]) }
        let accepted = DraftState.agreedPrefix(draft, rows: row, sampler: sampler, history: history)
        state.cache.truncate(to: start + 1 + accepted)
        drafts.recordPass(rows: draft.count + 1, seconds: seconds(), drafted: draft.count, accepted: accepted)
        return (row(accepted), Array(draft[..<accepted]))
    }
}

/// One request's drafter, draft-length tuner and counts (a session's Speculator, or a server request
/// whose drafts the batch engine verifies).
struct DraftState {
    let drafter: NGramDrafter
    var tuner: DraftLengthTuner
    var statistics = SpeculationStatistics()

    init(_ options: SpeculationOptions, maxDraft: Int) {
        drafter = NGramDrafter(ngramMin: options.ngramMin, ngramMax: options.ngramMax)
        tuner = DraftLengthTuner(draftMax: max(1, maxDraft))
    }

    /// The draft after `history` for this step (at most `room` tokens; empty when none pays).
    mutating func draft(after history: [Int32], room: Int) -> [Int32] {
        let length = min(tuner.length(), room)
        return length > 0 ? drafter.draft(after: history, limit: length) : []
    }

    mutating func recordStep(seconds: Double) { tuner.recordStep(seconds: seconds) }

    mutating func recordPass(rows: Int, seconds: Double, drafted: Int, accepted: Int) {
        tuner.recordPass(rows: rows, seconds: seconds, drafted: drafted, accepted: accepted)
        statistics.passes += 1
        statistics.drafted += drafted
        statistics.accepted += accepted
    }

    /// How many leading drafted tokens the model agrees with: row i holds the logits after
    /// [history, draft[0..<i]], and the model agrees with draft[i] when the (greedy) sampler picks it.
    static func agreedPrefix(_ draft: [Int32], rows: (Int) -> UnsafeBufferPointer<Float>, sampler: Sampler, history: [Int32]) -> Int {
        var agreed = 0, seen = history
        while agreed < draft.count, sampler.sample(rows(agreed), history: seen) == draft[agreed] {
            seen.append(draft[agreed])
            agreed += 1
        }
        return agreed
    }
}
