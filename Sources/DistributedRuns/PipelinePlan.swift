// plan --ranks: what each pipeline stage holds under a per-rank RAM budget and the decode speed that
// predicts, from measured RAM, storage and link speeds. A decode token passes every stage in turn:
//   stage time  = max(resident bytes read / RAM speed, streamed expert bytes read / storage speed)
//                 (expert reads overlap compute, as a run's prefetch lets them)
//   link time   = (ranks − 1) hops of the token's x row + the logits row back to rank 0
//   tokens/s    = 1 / (Σ stage times + link time)
// A stage whose layers (with its share of the KV cache and the runtime's buffers) do not fit its budget
// streams the routed experts that do not fit: that share of its expert reads comes from storage, as one
// process under --ram-budget does.

import Foundation

public struct PipelineLayerBytes: Sendable {
    /// Bytes of the layer's tensors in the file, and of its routed experts among them.
    public var tensors: Int, routedExperts: Int
    /// Bytes read per decode token: all of it, and of routed experts.
    public var readPerToken: Int, routedReadPerToken: Int
    public init(tensors: Int, routedExperts: Int, readPerToken: Int, routedReadPerToken: Int) {
        self.tensors = tensors; self.routedExperts = routedExperts; self.readPerToken = readPerToken; self.routedReadPerToken = routedReadPerToken
    }
}

public struct StagePlan: Sendable {
    public let layers: Range<Int>
    /// Bytes the stage holds (its layers, the embedding on the first, the head on the last).
    public let bytes: Int
    /// Share of its routed expert bytes that does not fit the budget and is streamed.
    public let streamedShare: Double
    /// Per decode token: bytes read from RAM and from storage.
    public let ramReadPerToken: Int, storageReadPerToken: Int
    public let secondsPerToken: Double
    /// The budget does not even hold the stage's dense part.
    public let overBudget: Bool
}

public struct PipelinePrediction: Sendable {
    public let stages: [StagePlan]
    /// Bytes crossing the links per token: each hop's x row, and the logits row back.
    public let hiddenBytes: Int, logitsBytes: Int
    public let linkSeconds: Double
    public var tokensPerSecond: Double { 1 / max(stages.reduce(0) { $0 + $1.secondsPerToken } + linkSeconds, 1e-12) }
}

public enum PipelinePlanner {
    /// `budget`: bytes of RAM per rank (nil: everything fits), of which `runtimeBytes` (buffers, the worker
    /// pool) on every rank and `kvBytes` shared by layer; speeds in bytes per second.
    public static func predict(layers: [PipelineLayerBytes], embeddingBytes: Int, headBytes: Int, ranks: Int, budget: Int?,
                               runtimeBytes: Int = 0, kvBytes: Int = 0,
                               ramBytesPerSecond: Double, storageBytesPerSecond: Double, link: LinkMeasurement?,
                               hiddenBytes: Int, logitsBytes: Int) throws -> PipelinePrediction {
        let ranges = try PipelineSplit.byBytes(layerBytes: layers.map(\.readPerToken), headBytes: headBytes, ranks: ranks)
        let stages = ranges.enumerated().map { i, range -> StagePlan in
            let own = layers[range]
            let extra = (i == 0 ? embeddingBytes : 0) + (i == ranks - 1 ? headBytes : 0)
            let bytes = own.reduce(0) { $0 + $1.tensors } + extra
            let experts = own.reduce(0) { $0 + $1.routedExperts }
            let read = own.reduce(0) { $0 + $1.readPerToken } + (i == ranks - 1 ? headBytes : 0)
            let routedRead = own.reduce(0) { $0 + $1.routedReadPerToken }
            var share = 0.0, over = false
            let reserve = runtimeBytes + kvBytes * range.count / max(1, layers.count)
            if let budget, bytes + reserve > budget {
                let dense = bytes - experts
                over = dense + reserve > budget
                share = experts > 0 ? min(1, Double(bytes + reserve - budget) / Double(experts)) : 0
            }
            let storage = Int(Double(routedRead) * share)
            let seconds = max(Double(read - storage) / ramBytesPerSecond, storage > 0 ? Double(storage) / storageBytesPerSecond : 0)
            return StagePlan(layers: range, bytes: bytes, streamedShare: share, ramReadPerToken: read - storage, storageReadPerToken: storage,
                             secondsPerToken: seconds, overBudget: over)
        }
        let linkSeconds = ranks > 1 ? (link.map { Double(ranks - 1) * $0.seconds(hiddenBytes) + $0.seconds(logitsBytes) } ?? 0) : 0
        return PipelinePrediction(stages: stages, hiddenBytes: hiddenBytes, logitsBytes: logitsBytes, linkSeconds: linkSeconds)
    }
}

/// plan --ranks for expert parallel: every rank holds the dense weights (replicated) and 1/N of the routed
/// experts, and runs every layer for each token in step with the others:
///   per rank      held = dense + experts / N; what does not fit its budget streams, as one process does
///   token time    = max(dense read + its experts' read from RAM, streamed read from storage)   (ranks in parallel)
///                 + per MoE layer: one exchange, (N − 1) partial rows of hidden floats to every other rank
///   tokens/s      = 1 / token time
public struct ExpertParallelPrediction: Sendable {
    /// Bytes each rank holds, and the share of its routed experts it streams.
    public let heldBytes: Int
    public let streamedShare: Double
    /// Per decode token on each rank: bytes read from RAM and from storage, and bytes it sends.
    public let ramReadPerToken: Int, storageReadPerToken: Int, sentPerToken: Int
    public let linkSeconds: Double, computeSeconds: Double
    /// The budget does not even hold the dense weights.
    public let overBudget: Bool
    public var tokensPerSecond: Double { 1 / max(computeSeconds + linkSeconds, 1e-12) }
}

public enum ExpertParallelPlanner {
    /// `denseBytes`: everything but the routed experts (held by every rank); `denseReadPerToken` and
    /// `routedReadPerToken`: what one token reads of each on one process.
    public static func predict(denseBytes: Int, routedBytes: Int, denseReadPerToken: Int, routedReadPerToken: Int, moeLayers: Int,
                               hiddenBytes: Int, ranks: Int, budget: Int?, runtimeBytes: Int = 0, kvBytes: Int = 0,
                               ramBytesPerSecond: Double, storageBytesPerSecond: Double, link: LinkMeasurement?) -> ExpertParallelPrediction {
        let experts = routedBytes / max(1, ranks), held = denseBytes + experts
        var share = 0.0, over = false
        if let budget, held + runtimeBytes + kvBytes > budget {
            over = denseBytes + runtimeBytes + kvBytes > budget
            share = experts > 0 ? min(1, Double(held + runtimeBytes + kvBytes - budget) / Double(experts)) : 0
        }
        let routedRead = routedReadPerToken / max(1, ranks)
        let storage = Int(Double(routedRead) * share)
        let ram = denseReadPerToken + routedRead - storage
        let compute = max(Double(ram) / ramBytesPerSecond, storage > 0 ? Double(storage) / storageBytesPerSecond : 0)
        let sent = moeLayers * (ranks - 1) * hiddenBytes
        // Each exchange sends to N − 1 ranks one after another; their sends to this rank overlap.
        let linkSeconds = ranks > 1 ? (link.map { Double(moeLayers) * (Double(ranks - 1) * $0.seconds(hiddenBytes)) } ?? 0) : 0
        return ExpertParallelPrediction(heldBytes: held, streamedShare: share, ramReadPerToken: ram, storageReadPerToken: storage,
                                        sentPerToken: sent, linkSeconds: linkSeconds, computeSeconds: compute, overBudget: over)
    }
}
