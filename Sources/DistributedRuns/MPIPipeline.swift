// Pipeline parallel over MPI: rank r is stage r of the model's layers. Rank 0 (the first stage) runs the
// session (tokenizer, sampler, HTTP), announces each chunk to every other rank, and sends x on; the others
// run PipelineFollower.serve until rank 0 says stop. Messages (tags below):
//   step    rank 0 → every rank   [kind, tokens, start, first logit row, as decode rows] as Int64, then the
//                                 tokens as Int32 (kind 1: stop, nothing follows)
//   hidden  rank r → rank r + 1   x rows, floats
//   logits  last rank → rank 0    the wanted logits rows, floats
// Prompts go in micro-batches: rank 0 sends each chunk on as soon as its layers are done and posts the
// receive of its logits rows at once, so while rank r runs chunk i, rank r − 1 runs chunk i + 1.
// Waits for data inside a chunk are bounded by the world's timeout; a later stage waits for the next step
// without a bound (rank 0 may wait on a user), and mpirun ends every rank when one dies.

import Foundation
import Models

public final class MPIPipelineLink: PipelineLink {
    public let world: MPIWorld
    /// Every stage's layers, by rank.
    public let stages: [Range<Int>]
    public var layers: Range<Int> { stages[world.rank] }
    public var isFirst: Bool { world.rank == 0 }
    public var isLast: Bool { world.rank == world.size - 1 }

    static let stepTag = 0x5000, tokensTag = 0x5001, hiddenTag = 0x5002, logitsTag = 0x5003
    static let stepWords = 5

    public var microBatch: Int?
    /// Logits receives posted and not yet waited for.
    private var pendingLogits: [MPIWorld.PendingReceive] = []

    public init(world: MPIWorld, stages: [Range<Int>], microBatch: Int? = nil) {
        precondition(stages.count == world.size)
        self.world = world; self.stages = stages; self.microBatch = microBatch
    }

    public func announce(_ step: PipelineStep) throws {
        let header: [Int64] = [0, Int64(step.tokens.count), Int64(step.startPosition), Int64(step.firstLogitRow), step.asDecodeRows ? 1 : 0]
        for peer in 1..<world.size {
            try header.withUnsafeBytes { try world.send($0, to: peer, tag: MPIPipelineLink.stepTag) }
            try step.tokens.withUnsafeBytes { try world.send($0, to: peer, tag: MPIPipelineLink.tokensTag) }
        }
    }

    /// Rank 0: the run is over; the other ranks leave their loops.
    public func finish() throws {
        let header: [Int64] = [1, 0, 0, 0, 0]
        for peer in 1..<world.size { try header.withUnsafeBytes { try world.send($0, to: peer, tag: MPIPipelineLink.stepTag) } }
    }

    /// A later rank: the next step from rank 0 (nil: stop). Waits without a bound.
    func nextStep() throws -> PipelineStep? {
        var header = [Int64](repeating: 0, count: MPIPipelineLink.stepWords)
        try header.withUnsafeMutableBytes { try world.receive(into: $0, from: 0, tag: MPIPipelineLink.stepTag, timeout: .infinity) }
        guard header[0] == 0 else { return nil }
        let count = Int(header[1])
        guard count > 0, count <= 1 << 24 else { throw DistributedError("rank \(world.rank): a step of \(count) tokens from rank 0") }
        var tokens = [Int32](repeating: 0, count: count)
        try tokens.withUnsafeMutableBytes { try world.receive(into: $0, from: 0, tag: MPIPipelineLink.tokensTag) }
        return PipelineStep(tokens: tokens, startPosition: Int(header[2]), firstLogitRow: Int(header[3]), asDecodeRows: header[4] != 0)
    }

    public func sendHidden(_ rows: UnsafePointer<Float>, count: Int) throws {
        try world.send(UnsafeRawBufferPointer(start: rows, count: count * 4), to: world.rank + 1, tag: MPIPipelineLink.hiddenTag)
    }

    public func receiveHidden(into rows: UnsafeMutablePointer<Float>, count: Int) throws {
        try world.receive(into: UnsafeMutableRawBufferPointer(start: rows, count: count * 4), from: world.rank - 1, tag: MPIPipelineLink.hiddenTag)
    }

    public func sendLogits(_ rows: UnsafePointer<Float>, count: Int) throws {
        try world.send(UnsafeRawBufferPointer(start: rows, count: count * 4), to: 0, tag: MPIPipelineLink.logitsTag)
    }

    public func expectLogits(into rows: UnsafeMutablePointer<Float>, count: Int) throws {
        pendingLogits.append(try world.beginReceive(into: UnsafeMutableRawBufferPointer(start: rows, count: count * 4), from: world.size - 1,
                                                    tag: MPIPipelineLink.logitsTag))
    }

    public func awaitLogits() throws {
        defer { pendingLogits.removeAll() }
        for pending in pendingLogits { try world.complete(pending) }
    }
}

/// The stages after the first: each step rank 0 announces, through this rank's layers, until it says stop.
public enum PipelineFollower {
    public static func serve(_ model: TransformerModel, state: InferenceState, link: MPIPipelineLink) throws {
        state.pipeline = link
        while let step = try link.nextStep() { try model.forwardStage(step, state: state) }
    }
}
