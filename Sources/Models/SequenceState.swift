// State a model keeps per sequence beside its KV pages (KVSequence.auxiliary): DeepSeek V4's
// compressed cache, Qwen3.5's recurrent state. It stands at `count` positions; when a forward pass
// starts elsewhere (the sequence was shortened, restored from disk, or attached to a shared prefix)
// it is rebuilt by replaying the sequence's committed tokens, so it always matches the pages.

import KVCache

protocol SequenceSideState: AnyObject {
    /// Positions the state has seen.
    var count: Int { get }
    /// Back to an empty sequence.
    func reset()
}

extension KVSequence {
    /// This sequence's side state standing at `position` (made by `make` when absent); `replay` runs
    /// committed tokens [start, start + n) through the model to catch up.
    func sideState<S: SequenceSideState>(at position: Int, maxBatch: Int, make: () -> S,
                                         replay: (_ tokens: UnsafePointer<Int32>, _ start: Int, _ count: Int, _ state: S) -> Void) -> S {
        let state: S
        if let existing = auxiliary as? S { state = existing } else {
            state = make()
            auxiliary = state
        }
        if state.count > position { state.reset() }
        if state.count < position {
            let history = committedTokens
            history.withUnsafeBufferPointer { h in
                while state.count < position {
                    let start = state.count, n = min(maxBatch, position - start)
                    replay(h.baseAddress! + start, start, n, state)
                    precondition(state.count == start + n, "side-state replay did not advance")
                }
            }
        }
        return state
    }
}
