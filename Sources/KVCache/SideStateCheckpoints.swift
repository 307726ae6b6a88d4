// Checkpoints of the state a model keeps per sequence beside its pages (DeepSeek V4's compressed cache,
// Qwen3.5's recurrent state). Pages can be cut back or shared at any position; such state only moves
// forward. So the pool keeps snapshots of it, each tagged with the tokens it has seen: a sequence that
// was rolled back, or that starts on another sequence's prefix, restores the longest snapshot whose
// tokens begin its own and replays only the tokens after it (instead of its whole history).
//
// The engine takes one where a prompt's prefill ends and one where a request or turn ends, like
// llama.cpp's context checkpoints. At most `checkpointLimit` are kept; the least recently used goes.

/// State kept beside the pages; the model owns its meaning and its bytes.
public protocol KVSideState: AnyObject {
    /// Positions the state has seen.
    var count: Int { get }
    /// Back to an empty sequence.
    func reset()
}

/// One snapshot: the tokens it has seen (its position is their count) and the model's bytes.
public struct SideStateCheckpoint: Sendable {
    public let tokens: [Int32]
    public let bytes: [UInt8]
    public var position: Int { tokens.count }
}

extension KVPagePool {
    /// Keeps `bytes` as the state after `tokens` (replacing a snapshot of the same tokens).
    public func storeCheckpoint(tokens: [Int32], bytes: [UInt8]) {
        locked {
            guard checkpointLimit > 0, !tokens.isEmpty else { return }
            checkpointClock += 1
            checkpoints.removeAll { $0.checkpoint.tokens == tokens }
            checkpoints.append((SideStateCheckpoint(tokens: tokens, bytes: bytes), checkpointClock))
            while checkpoints.count > checkpointLimit {
                let oldest = checkpoints.indices.min { checkpoints[$0].used < checkpoints[$1].used }!
                checkpoints.remove(at: oldest)
            }
            checkpointStores += 1
        }
    }

    /// The snapshot with the most tokens in (above, atMost] whose tokens begin `tokens`.
    public func checkpoint(matching tokens: [Int32], above: Int, atMost: Int) -> SideStateCheckpoint? {
        locked {
            var best: Int?
            for (i, entry) in checkpoints.enumerated() {
                let n = entry.checkpoint.position
                guard n > above, n <= atMost, n <= tokens.count, n > (best.map { checkpoints[$0].checkpoint.position } ?? 0),
                      entry.checkpoint.tokens[...] == tokens[..<n] else { continue }
                best = i
            }
            guard let best else { return nil }
            checkpointClock += 1
            checkpoints[best].used = checkpointClock
            checkpointHits += 1
            return checkpoints[best].checkpoint
        }
    }

    /// Counts positions a model replayed to rebuild side state.
    public func noteReplayed(_ positions: Int) { locked { replayedPositions += positions } }

    /// Bytes the snapshots hold.
    public var checkpointBytes: Int { locked { checkpoints.reduce(0) { $0 + $1.checkpoint.bytes.count } } }
    public var checkpointCount: Int { locked { checkpoints.count } }
}
