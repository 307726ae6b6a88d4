// Checkpoints of the state a model keeps per sequence beside its pages (DeepSeek V4's compressed cache,
// Qwen3.5's recurrent state). Pages can be cut back or shared at any position; such state only moves
// forward. So the pool keeps snapshots of it, each tagged with the tokens it has seen: a sequence that
// was rolled back, or that starts on another sequence's prefix, restores the longest snapshot whose
// tokens begin its own and replays only the tokens after it (instead of its whole history).
//
// The engine takes one at a prompt's last page boundary, one where the prompt ends and one where the
// answer ends, like llama.cpp's context checkpoints. At most `checkpointLimit` are kept, and the parts
// that grow with the context (DeepSeek V4's entries) of all of them together at most what the pool's
// pages budget for such bytes (capacity · pageTokens · sideBytesPerPosition): snapshots can at most
// double that memory. The least recently used goes first.

/// State kept beside the pages; the model owns its meaning and its bytes.
public protocol KVSideState: AnyObject {
    /// Positions the state has seen.
    var count: Int { get }
    /// Back to an empty sequence.
    func reset()
    /// The state as bytes (the model's layout), for the disk tier.
    func encoded() -> [UInt8]
}

/// One snapshot: the tokens it has seen (its position is their count) and the model's bytes.
public struct SideStateCheckpoint: Sendable {
    public let tokens: [Int32]
    public let bytes: [UInt8]
    /// Of `bytes`, those that grow with the context.
    public let growingBytes: Int
    public var position: Int { tokens.count }
}

extension KVPagePool {
    /// Bytes of growing state all snapshots together may hold.
    public var checkpointGrowingLimit: Int { capacity * pageTokens * shape.sideBytesPerPosition }

    /// Keeps `bytes` as the state after `tokens` (replacing a snapshot of the same tokens);
    /// `growingBytes` of them grow with the context.
    public func storeCheckpoint(tokens: [Int32], bytes: [UInt8], growingBytes: Int = 0) {
        locked {
            guard checkpointLimit > 0, !tokens.isEmpty, growingBytes <= checkpointGrowingLimit else { return }
            checkpointClock += 1
            checkpoints.removeAll { $0.checkpoint.tokens == tokens }
            checkpoints.append((SideStateCheckpoint(tokens: tokens, bytes: bytes, growingBytes: growingBytes), checkpointClock))
            while checkpoints.count > checkpointLimit
                    || checkpoints.reduce(0, { $0 + $1.checkpoint.growingBytes }) > checkpointGrowingLimit {
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
