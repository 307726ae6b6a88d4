// Drafting with the model's own MTP / next-n layer (`--spec mtp`; NextNHead). The layer keeps a KV
// cache of its own that mirrors the model's positions: every chunk the model commits (prompt, plain
// steps, verification passes) is fed to it through InferenceState.onCommit as pairs (token at p, the
// model's hidden state at p − 1), as llama.cpp's draft-mtp does. A draft chains the layer from the
// token just sampled: each step's output hidden state stands in for the model's at the next position,
// and its head gives the next drafted token. The chained positions are dropped afterwards (the
// verification pass feeds the true pairs); positions past a rejected draft are dropped when the next
// draft starts.

import Foundation
import Models
import Sampling

final class MTPDrafter: Drafter {
    let head: NextNHead
    let state: InferenceState
    /// The request's sampling (set per generate call; its own seeded stream).
    var sampler: Sampler
    /// The model's hidden rows of the last committed chunk (positions lastStart ..< lastStart + lastCount).
    private var lastHidden: [Float] = []
    private var lastStart = 0, lastCount = 0
    /// Set when a chunk could not be fed (its previous hidden row or positions were never seen): the
    /// layer's cache no longer mirrors the model's, so it drafts nothing until fed from position 0.
    private var broken = false
    /// Scratch: [2E] pairs and [E] input rows for up to maxBatch rows.
    private var pairs: [Float]
    private var inputs: [Float]

    init(head: NextNHead, target: InferenceState, contextLength: Int, sampler parameters: SamplerParameters) {
        self.head = head
        state = InferenceState(model: head.model, contextLength: contextLength, maxBatch: target.maxBatch, threads: target.pool.threads,
                               workers: target.pool)
        sampler = Sampler.drafting(parameters)
        pairs = [Float](repeating: 0, count: target.maxBatch * 2 * head.width)
        inputs = [Float](repeating: 0, count: target.maxBatch * head.width)
    }

    /// The model's hidden row at `position`, if the last chunk holds it (position −1: zeros, as for the
    /// first token of a sequence).
    private func hiddenRow(_ position: Int) -> [Float]? {
        let e = head.width
        if position < 0 { return [Float](repeating: 0, count: e) }
        guard position >= lastStart && position < lastStart + lastCount else { return nil }
        let i = position - lastStart
        return Array(lastHidden[(i * e)..<((i + 1) * e)])
    }

    /// Feeds a committed chunk of the model: pairs (tokens[t], hidden of position start + t − 1).
    func observe(_ tokens: UnsafeBufferPointer<Int32>, start: Int, hidden: UnsafePointer<Float>) {
        let e = head.width, n = tokens.count
        if start == 0 { broken = false }
        guard !broken, n > 0, let previous = hiddenRow(start - 1), state.cache.count >= start else { broken = true; return }
        // Row t of the layer's input pairs tokens[t] with the hidden row before it.
        var shifted = previous
        shifted.reserveCapacity(n * e)
        shifted.append(contentsOf: UnsafeBufferPointer(start: hidden, count: (n - 1) * e))
        do {
            state.cache.truncate(to: start)
            try feed(Array(tokens), hidden: shifted, start: start, logits: .none)
        } catch { broken = true }
        lastHidden = Array(UnsafeBufferPointer(start: hidden, count: n * e))
        lastStart = start
        lastCount = n
    }

    /// Runs the layer on `tokens` (with their hidden rows) at positions start…; the logits asked for.
    @discardableResult
    private func feed(_ tokens: [Int32], hidden: [Float], start: Int, logits: LogitsRequest) throws -> UnsafeBufferPointer<Float> {
        let e = head.width, batch = state.maxBatch
        var result = UnsafeBufferPointer<Float>(start: nil, count: 0)
        var done = 0
        while done < tokens.count {
            let n = min(batch, tokens.count - done)
            tokens.withUnsafeBufferPointer { t in
                hidden.withUnsafeBufferPointer { h in
                    pairs.withUnsafeMutableBufferPointer { p in
                        inputs.withUnsafeMutableBufferPointer { x in
                            head.inputRows(tokens: t.baseAddress! + done, hidden: h.baseAddress! + done * e, count: n, ops: state.ops,
                                           pair: p.baseAddress!, into: x.baseAddress!)
                        }
                    }
                }
            }
            let last = done + n == tokens.count
            result = try inputs.withUnsafeBufferPointer { x in
                try head.model.forward(Array(tokens[done..<(done + n)]), startPosition: start + done, state: state,
                                       logits: last ? logits : .none, inputRows: x.baseAddress!)
            }
            done += n
        }
        return result
    }

    /// Up to `limit` tokens after `history` (its last token, at position history.count − 1, is the one
    /// just sampled, not yet run through the model).
    func draft(after history: [Int32], limit: Int) throws -> Draft {
        let position = history.count - 1, e = head.width
        guard !broken, limit > 0, position >= 0, state.cache.count >= position,
              position + limit <= state.cache.maxPositions, var hidden = hiddenRow(position - 1) else { return Draft() }
        state.cache.truncate(to: position)   // positions past a rejected draft
        var draft = Draft(for: sampler)
        var token = history[position], seen = history
        defer { state.cache.truncate(to: position) }   // the verification pass feeds the true pairs
        while draft.tokens.count < limit {
            let logits = try feed([token], hidden: hidden, start: position + draft.tokens.count, logits: .last)
            let q: [(id: Int32, p: Float)]
            (token, q) = Draft.choose(after: logits, sampler: sampler, history: seen)
            draft.append(token, drawnFrom: q)
            seen.append(token)
            hidden = Array(UnsafeBufferPointer(start: head.outputHidden(row: 0, state: state), count: e))   // stands in for h
        }
        return draft
    }
}

extension Session {
    /// The MTP drafter of this session (made on first use and fed every chunk the model commits from
    /// then on, so it must exist before the prompt is evaluated).
    func mtpDrafter(sampler: SamplerParameters) throws -> MTPDrafter {
        if let drafter = nextNDrafter {
            drafter.sampler = Sampler.drafting(sampler)
            return drafter
        }
        guard let head = try model.nextNHead() else { throw SpeculationError.noNextNLayer(loaded.name) }
        let drafter = MTPDrafter(head: head, target: state, contextLength: contextLength, sampler: sampler)
        state.onCommit = { [weak drafter] tokens, start, hidden in drafter?.observe(tokens, start: start, hidden: hidden) }
        nextNDrafter = drafter
        return drafter
    }
}
