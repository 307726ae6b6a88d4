// State a model keeps per sequence beside its KV pages (KVSequence.auxiliary): DeepSeek V4's
// compressed cache, Qwen3.5's recurrent state. It stands at `count` positions; when a forward pass
// starts elsewhere (the sequence was shortened, restored from disk, or attached to a shared prefix) it
// is rebuilt: from the pool's longest matching checkpoint (SideStateCheckpoints.swift), then by
// replaying the committed tokens after it, so it always matches the pages.
//
// Its bytes (checkpoints, session files), little-endian:
//   u64 magic "DSSIDE01"  u64 count  u64 buffers  u64 floats per buffer …  u64 row stores
//   per row store: u64 width  u64 half (0/1)  u64 rows
//   then every buffer's floats, then every row store's rows (F32 or half)

import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

protocol SequenceSideState: KVSideState {
    var count: Int { get set }
    /// Fixed-size parts (rings, recurrent matrices), in a fixed order.
    var fixedBuffers: [FloatBuffer] { get }
    /// Parts that grow with the sequence (compressed entries), in a fixed order.
    var rowStores: [EntryRows] { get }
}

extension SequenceSideState {
    static var magic: UInt64 { 0x3130_4544_4953_5344 }   // "DSSIDE01"

    /// The state as bytes (layout above).
    func encodeState() -> [UInt8] {
        let buffers = fixedBuffers, stores = rowStores
        var header: [UInt64] = [Self.magic, UInt64(count), UInt64(buffers.count)] + buffers.map { UInt64($0.count) }
        header.append(UInt64(stores.count))
        for s in stores { header += [UInt64(s.width), s.half ? 1 : 0, UInt64(s.count)] }
        var out: [UInt8] = []
        out.reserveCapacity(header.count * 8 + buffers.reduce(0) { $0 + $1.count * 4 } + stores.reduce(0) { $0 + $1.bytes })
        for v in header { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        for b in buffers { out.append(contentsOf: UnsafeRawBufferPointer(start: b.pointer, count: b.count * 4)) }
        for s in stores { out.append(contentsOf: UnsafeRawBufferPointer(start: s.storage, count: s.bytes)) }
        return out
    }

    /// Takes the state from `bytes` (made by `encoded` for the same model and KV type). Returns false,
    /// changing nothing, when they do not fit this state's layout exactly.
    func decode(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        func next() -> UInt64? {
            guard offset + 8 <= bytes.count else { return nil }
            defer { offset += 8 }
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        let buffers = fixedBuffers, stores = rowStores
        guard next() == Self.magic, let n = next(), n <= UInt64(Int32.max), next() == UInt64(buffers.count) else { return false }
        for b in buffers { guard next() == UInt64(b.count) else { return false } }
        guard next() == UInt64(stores.count) else { return false }
        var rows: [Int] = []
        var payload = buffers.reduce(0) { $0 + $1.count * 4 }
        for s in stores {
            guard next() == UInt64(s.width), next() == (s.half ? 1 : 0), let r = next(), r <= UInt64(Int32.max) else { return false }
            rows.append(Int(r))
            payload += Int(r) * s.rowBytes
        }
        guard bytes.count - offset == payload else { return false }
        for b in buffers {
            memcpy(b.pointer, bytes.baseAddress! + offset, b.count * 4)
            offset += b.count * 4
        }
        for (s, r) in zip(stores, rows) {
            s.replaceAll(rows: r, from: bytes.baseAddress! + offset)
            offset += r * s.rowBytes
        }
        count = Int(n)
        return true
    }
}

extension KVSequence {
    /// This sequence's side state standing at `position` (made by `make` when absent): restored from
    /// the pool's best checkpoint when that is closer, then `replay` runs committed tokens
    /// [start, start + n) through the model to catch up.
    /// `partialReplay` false (a later pipeline stage, whose state holds only its own layers' part): a replay
    /// starts from position 0, since the earlier layers it runs have no state before; a checkpoint is
    /// taken only where it stands at `position`.
    func sideState<S: SequenceSideState>(at position: Int, maxBatch: Int, partialReplay: Bool = true, make: () -> S,
                                         replay: (_ tokens: UnsafePointer<Int32>, _ start: Int, _ count: Int, _ state: S) -> Void) -> S {
        let state: S
        if let existing = auxiliary as? S { state = existing } else {
            state = make()
            auxiliary = state
            // Swapped out to the disk tier with the pages: read it back.
            if let spilled = try? takeSpilledSideState(), !spilled.bytes.withUnsafeBytes({ state.decode($0) }) { state.reset() }
        }
        if state.count > position || (!partialReplay && state.count < position) { state.reset() }
        guard state.count < position else { return state }
        let history = committedTokens
        if let checkpoint = pool.checkpoint(matching: history, above: partialReplay ? state.count : position - 1, atMost: position) {
            if !checkpoint.bytes.withUnsafeBytes({ state.decode($0) }) { state.reset() }
        }
        history.withUnsafeBufferPointer { h in
            while state.count < position {
                let start = state.count, n = min(maxBatch, position - start)
                replay(h.baseAddress! + start, start, n, state)
                precondition(state.count == start + n, "side-state replay did not advance")
                pool.noteReplayed(n)
            }
        }
        return state
    }
}

/// Where a sequence's side state stood before a pass that may be partly undone (drafts being verified):
/// the fixed parts' values and the growing parts' lengths (rows are only appended after it).
public struct SideStateMark {
    let count: Int
    let fixed: [[Float]]
    let rows: [Int]
}

extension TransformerModel {
    /// The side state of `sequence` as it stands at the sequence's end (nil: none, or elsewhere).
    public func markSideState(of sequence: KVSequence) -> SideStateMark? {
        guard let state = sequence.auxiliary as? SequenceSideState, state.count == sequence.count else { return nil }
        return SideStateMark(count: state.count, fixed: state.fixedBuffers.map(\.array), rows: state.rowStores.map(\.count))
    }

    /// Undoes a pass that started at `mark`: the side state back to the mark, then the sequence cut to
    /// the mark's position (what the pass appended to the KV goes too). The caller evaluates again the
    /// tokens it keeps. Returns false (and cuts the sequence, leaving the state to be rebuilt from
    /// checkpoints) when the state is no longer the one marked.
    @discardableResult
    public func rollBack(_ sequence: KVSequence, to mark: SideStateMark) -> Bool {
        guard let state = sequence.auxiliary as? SequenceSideState, state.count >= mark.count,
              state.fixedBuffers.count == mark.fixed.count, state.rowStores.count == mark.rows.count else {
            sequence.truncate(to: mark.count)
            return false
        }
        for (buffer, values) in zip(state.fixedBuffers, mark.fixed) where buffer.count == values.count {
            values.withUnsafeBufferPointer { buffer.pointer.update(from: $0.baseAddress!, count: values.count) }
        }
        for (store, rows) in zip(state.rowStores, mark.rows) { store.truncate(to: rows) }
        state.count = mark.count
        sequence.truncate(to: mark.count)   // the state now stands there: it is kept
        return true
    }

    /// After a pass of decode rows from position `start` (drafts being verified): keeps the leading rows
    /// whose tokens are `kept`, drops the rest. Without side state the sequence is cut after them; with
    /// it (`mark`, taken before the pass) the state goes back to the mark and the kept rows are
    /// evaluated again as decode rows, which gives them the same bits. No head runs, so state.logits
    /// still holds the pass's rows.
    public func keepVerified(_ kept: [Int32], of sequence: KVSequence, from start: Int, mark: SideStateMark?, state: InferenceState) throws {
        guard let mark, start + kept.count < sequence.count else {
            sequence.truncate(to: start + kept.count)
            return
        }
        rollBack(sequence, to: mark)
        _ = try forward(batch: [SequenceBatchItem(cache: sequence, tokens: kept, startPosition: start, wantsLogits: false, isPrompt: false)],
                        state: state)
    }

    /// Snapshots the side state of `sequence` into its pool's checkpoints, when it has one that stands
    /// at the sequence's end (call after a prompt or a generated answer). In a distributed run (`pipeline`:
    /// the first rank's link) the other ranks take the same snapshot of their sequence before the next step,
    /// so that all of them later restore, or replay, the same positions.
    public func checkpointSideState(of sequence: KVSequence, pipeline: PipelineLink? = nil) {
        guard let state = sequence.auxiliary as? SequenceSideState, state.count == sequence.count, state.count > 0,
              sequence.pool.checkpointLimit > 0 else { return }
        pipeline?.sequences.noteCheckpoint(sequence)
        sequence.pool.storeCheckpoint(tokens: sequence.committedTokens, bytes: state.encodeState(),
                                      growingBytes: state.rowStores.reduce(0) { $0 + $1.bytes })
    }

    /// The side state of `sequence` as bytes (nil: the model keeps none, or it does not stand at the
    /// sequence's end), for session files.
    public func sideStateBytes(of sequence: KVSequence) -> [UInt8]? {
        if sequence.auxiliary == nil, let spilled = try? sequence.takeSpilledSideState() {
            sequence.auxiliary = spilled.bytes.withUnsafeBytes { sideState(from: $0, position: spilled.count, kvType: sequence.pool.shape.type) }
        }
        guard let state = sequence.auxiliary as? SequenceSideState, state.count == sequence.count else { return nil }
        return state.encodeState()
    }

    /// Where a prompt of `length` tokens should also be checkpointed (its last page boundary before the
    /// end: a later prompt sharing its pages starts from there), or nil (no side state, no boundary).
    /// The engine ends a prefill chunk there.
    public func pageAlignedCheckpoint(promptLength length: Int, pageTokens: Int) -> Int? {
        guard keepsSideState else { return nil }
        let boundary = (length - 1) / pageTokens * pageTokens
        return boundary > 0 ? boundary : nil
    }

    /// Whether this architecture keeps state beside the pages.
    public var keepsSideState: Bool { body.keepsSideState }

    /// A side state from `bytes` (made by `sideStateBytes` with this model and KV type) standing at
    /// `position`, for KVSequence.auxiliary; nil when they do not fit.
    public func sideState(from bytes: UnsafeRawBufferPointer, position: Int, kvType: KVType) -> KVSideState? {
        guard let state = makeSideState(kvType: kvType), state.decode(bytes), state.count == position else { return nil }
        return state
    }

    /// An empty side state for this architecture (nil: it keeps none).
    func makeSideState(kvType: KVType) -> SequenceSideState? { body.makeSideState(kvType: kvType) as? SequenceSideState }
}
