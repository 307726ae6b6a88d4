// Several sequences in one forward pass (continuous batching): the rows of every sequence are stacked
// into one batch, so each weight matrix is read once for all of them (a matrix-matrix product instead
// of one matrix-vector product per sequence); attention runs per sequence over its own KV pages.

import KVCache

/// Batch rows offset..<offset+count: positions start..<start+count of the sequence `cache`.
struct BatchSegment {
    let cache: KVSequence
    let start: Int
    let offset: Int
    let count: Int
    /// Prompt rows take the block attention kernel even when few (decode rows the per-token one).
    var prompt: Bool = false
}

/// One sequence's part of a batched forward pass.
public struct SequenceBatchItem {
    public var cache: KVSequence
    /// Tokens at positions startPosition..<startPosition+tokens.count (startPosition ≤ cache.count).
    public var tokens: [Int32]
    public var startPosition: Int
    /// Whether the logits after the item's last token are wanted.
    public var wantsLogits: Bool
    /// The logits after every one of the item's tokens (drafts being verified), in order.
    public var allLogits = false
    /// Prompt tokens (any number, even one chunk's last token) rather than a generated token: they take
    /// the prompt attention kernel, so a prompt's rows do not depend on how it was chunked.
    public var isPrompt: Bool
    /// Called after the item's tokens are committed, with them, the position of the first and their
    /// final hidden rows (as InferenceState.onCommit; an MTP drafter of this sequence feeds its layer).
    public var onCommit: ((_ tokens: UnsafeBufferPointer<Int32>, _ start: Int, _ hidden: UnsafePointer<Float>) -> Void)?

    public init(cache: KVSequence, tokens: [Int32], startPosition: Int, wantsLogits: Bool, isPrompt: Bool? = nil) {
        self.cache = cache; self.tokens = tokens; self.startPosition = startPosition; self.wantsLogits = wantsLogits
        self.isPrompt = isPrompt ?? (tokens.count > 1)
    }
}

/// An item of a batch could not run (nothing of the batch ran).
public struct SequenceBatchError: Error, CustomStringConvertible {
    public let item: Int
    public let underlying: Error
    public var description: String { "sequence \(item) of the batch: \(underlying)" }
}

extension TransformerModel {
    /// Runs every item's tokens through the model in one pass and appends their K/V to the items'
    /// caches. Returns one logits row per item that wants them (one per token for `allLogits`), in item order. The items' tokens
    /// together must fit state.maxBatch; each item's sequence must be distinct. Throws
    /// SequenceBatchError naming the first item that cannot run (bad tokens, context full, KV budget);
    /// InferenceError.weightRead when a weight read failed during the pass (no item's cache changed).
    public func forward(batch items: [SequenceBatchItem], state: InferenceState) throws -> UnsafeBufferPointer<Float> {
        let total = items.reduce(0) { $0 + $1.tokens.count }
        precondition(total <= state.maxBatch, "batch of \(total) tokens exceeds maxBatch \(state.maxBatch)")
        var segments: [BatchSegment] = [], rows: [Int] = [], tokens: [Int32] = []
        var observers: [((UnsafeBufferPointer<Int32>, Int, UnsafePointer<Float>) -> Void)?] = []
        tokens.reserveCapacity(total)
        for (i, item) in items.enumerated() where !item.tokens.isEmpty {
            do {
                let end = item.startPosition + item.tokens.count
                guard end <= item.cache.maxPositions else {
                    throw InferenceError.contextOverflow(needed: end, capacity: item.cache.maxPositions)
                }
                guard item.startPosition <= item.cache.count else {
                    throw InferenceError.positionGap(start: item.startPosition, cached: item.cache.count)
                }
                for t in item.tokens where t < 0 || Int(t) >= vocabularySize {
                    throw InferenceError.invalidToken(t, vocabularySize: vocabularySize)
                }
                try item.cache.prepareWrite(start: item.startPosition, count: item.tokens.count)
            } catch {
                for seg in segments { seg.cache.abandonWrite() }
                throw SequenceBatchError(item: i, underlying: error)
            }
            segments.append(BatchSegment(cache: item.cache, start: item.startPosition, offset: tokens.count, count: item.tokens.count,
                                         prompt: item.isPrompt))
            observers.append(item.onCommit)
            tokens += item.tokens
            if item.allLogits { rows += (tokens.count - item.tokens.count)..<tokens.count } else if item.wantsLogits { rows.append(tokens.count - 1) }
        }
        guard !tokens.isEmpty else { return UnsafeBufferPointer(start: nil, count: 0) }
        state.reserveLogits(rows: max(1, rows.count), vocab: vocabularySize)
        // Read failures before this pass left no slot in use (a failed slot is forgotten): only the
        // reads of this pass can spoil it.
        _ = expertCache?.takeError()
        if let link = state.pipeline {
            do {
                try tokens.withUnsafeBufferPointer { buf in
                    try forwardFirstStage(link, tokens: buf.baseAddress!, count: buf.count, segments: segments, logitRows: rows, state: state,
                                          logitsOffset: 0)
                }
                try link.awaitLogits()
            } catch {
                for seg in segments { seg.cache.discardWrite(start: seg.start) }
                throw error
            }
        } else {
            tokens.withUnsafeBufferPointer { buf in
                forwardBatch(buf.baseAddress!, count: buf.count, segments: segments, state: state, logitRows: rows, logitsOffset: 0)
            }
        }
        // A failed expert read ran the pass with zeros for that expert: its rows are wrong. They are
        // never committed (so never enter the prefix cache or the disk tier); every sequence goes back
        // to where it stood before the pass.
        if let error = expertCache?.takeError() {
            for seg in segments { seg.cache.discardWrite(start: seg.start) }
            throw InferenceError.weightRead(error)
        }
        tokens.withUnsafeBufferPointer { buf in
            for seg in segments {
                seg.cache.commit(UnsafeBufferPointer(rebasing: buf[seg.offset..<(seg.offset + seg.count)]), start: seg.start)
            }
            for (seg, observe) in zip(segments, observers) {
                observe?(UnsafeBufferPointer(rebasing: buf[seg.offset..<(seg.offset + seg.count)]), seg.start,
                         UnsafePointer(state.x + seg.offset * config.embeddingLength))
            }
        }
        return UnsafeBufferPointer(start: state.logits, count: rows.count * vocabularySize)
    }
}
