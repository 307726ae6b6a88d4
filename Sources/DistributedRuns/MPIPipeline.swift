// Pipeline parallel over MPI: rank r is stage r of the model's layers. Rank 0 (the first stage) runs the
// session (tokenizer, sampler, HTTP), announces each chunk to every other rank, and sends x on; the others
// run PipelineFollower.serve until rank 0 says stop. Messages (tags below):
//   step    rank 0 → every rank   a header of Int64 [kind, rows, segments, logit rows, released, prefix
//                                 tokens, checkpoints] (kind 1: stop, nothing follows), a body of Int64 (per
//                                 segment: sequence, start, count, prompt, max positions, prefix length;
//                                 then the logit rows, the released and the checkpointed sequences), then
//                                 the rows' tokens and the prefixes as Int32
//   hidden  rank r → rank r + 1   x rows, floats
//   logits  last rank → rank 0    the wanted logits rows, floats
// Prompts go in micro-batches: rank 0 sends each chunk on as soon as its layers are done and posts the
// receive of its logits rows at once, so while rank r runs chunk i, rank r − 1 runs chunk i + 1.
// Waits for data inside a chunk are bounded by the world's timeout; a later stage waits for the next step
// without a bound (rank 0 may wait on a user), and mpirun ends every rank when one dies.

import Foundation
import KVCache
import Models

public final class MPIPipelineLink: PipelineLink {
    public let world: MPIWorld
    /// Every stage's layers, by rank.
    public let stages: [Range<Int>]
    public var layers: Range<Int> { stages[world.rank] }
    public var isFirst: Bool { world.rank == 0 }
    public var isLast: Bool { world.rank == world.size - 1 }

    static let stepTag = 0x5000, stepBodyTag = 0x5001, hiddenTag = 0x5002, logitsTag = 0x5003, stepTokensTag = 0x5004
    /// Step header words: kind (0 step, 1 stop), rows, segments, logit rows, released, prefix tokens, checkpoints.
    static let headerWords = 7
    /// Words per segment in the step's body.
    static let segmentWords = 6

    public let sequences = PipelineSequences()
    public var microBatch: Int?
    public let replicated: Bool
    /// Logits receives posted and not yet waited for.
    private var pendingLogits: [MPIWorld.PendingReceive] = []

    public init(world: MPIWorld, stages: [Range<Int>], microBatch: Int? = nil) {
        precondition(stages.count == world.size)
        self.world = world; self.stages = stages; self.microBatch = microBatch; replicated = false
    }

    /// Expert parallel: every rank runs all `layers` on the rows rank 0 announces (steps only pass).
    public init(world: MPIWorld, replicating layers: Range<Int>) {
        self.world = world; stages = Array(repeating: layers, count: world.size); microBatch = nil; replicated = true
    }

    /// Rows of the steps this rank ran (rank 0: announced).
    public private(set) var rowsRun = 0


    public func announce(_ step: PipelineStep) throws {
        let prefixes = step.segments.flatMap(\.prefix)
        let header: [Int64] = [0, Int64(step.tokens.count), Int64(step.segments.count), Int64(step.logitRows.count), Int64(step.released.count),
                               Int64(prefixes.count), Int64(step.checkpoints.count)]
        var body: [Int64] = []
        for seg in step.segments {
            body += [Int64(seg.sequence), Int64(seg.start), Int64(seg.count), seg.prompt ? 1 : 0, Int64(seg.maxPositions), Int64(seg.prefix.count)]
        }
        body += step.logitRows.map(Int64.init) + step.released.map(Int64.init) + step.checkpoints.map(Int64.init)
        let ints = step.tokens + prefixes
        rowsRun += step.tokens.count
        for peer in 1..<world.size {
            try header.withUnsafeBytes { try world.send($0, to: peer, tag: MPIPipelineLink.stepTag) }
            try body.withUnsafeBytes { try world.send($0, to: peer, tag: MPIPipelineLink.stepBodyTag) }
            try ints.withUnsafeBytes { try world.send($0, to: peer, tag: MPIPipelineLink.stepTokensTag) }
        }
    }

    /// Rank 0: the run is over; the other ranks leave their loops.
    public func finish() throws {
        let header: [Int64] = [1, 0, 0, 0, 0, 0, 0]
        for peer in 1..<world.size { try header.withUnsafeBytes { try world.send($0, to: peer, tag: MPIPipelineLink.stepTag) } }
    }

    /// A later rank: the next step from rank 0 (nil: stop). Waits without a bound.
    func nextStep() throws -> PipelineStep? {
        var header = [Int64](repeating: 0, count: MPIPipelineLink.headerWords)
        try header.withUnsafeMutableBytes { try world.receive(into: $0, from: 0, tag: MPIPipelineLink.stepTag, timeout: .infinity) }
        guard header[0] == 0 else { return nil }
        let rows = Int(header[1]), segmentCount = Int(header[2]), logitRows = Int(header[3]), released = Int(header[4]), prefixTotal = Int(header[5])
        let checkpoints = Int(header[6])
        let limit = 1 << 24
        guard rows > 0, rows <= limit, segmentCount > 0, segmentCount <= rows, logitRows >= 0, logitRows <= rows,
              released >= 0, released <= limit, prefixTotal >= 0, prefixTotal <= limit, checkpoints >= 0, checkpoints <= limit else {
            throw DistributedError("rank \(world.rank): a step from rank 0 that makes no sense: \(header)")
        }
        var body = [Int64](repeating: 0, count: segmentCount * MPIPipelineLink.segmentWords + logitRows + released + checkpoints)
        try body.withUnsafeMutableBytes { try world.receive(into: $0, from: 0, tag: MPIPipelineLink.stepBodyTag) }
        var ints = [Int32](repeating: 0, count: rows + prefixTotal)
        try ints.withUnsafeMutableBytes { try world.receive(into: $0, from: 0, tag: MPIPipelineLink.stepTokensTag) }
        var segments: [PipelineSegment] = [], prefixAt = rows
        for i in 0..<segmentCount {
            let w = Array(body[(i * MPIPipelineLink.segmentWords)..<((i + 1) * MPIPipelineLink.segmentWords)])
            let prefixCount = Int(w[5])
            guard prefixCount >= 0, prefixAt + prefixCount <= ints.count else { throw DistributedError("rank \(world.rank): a segment's prefix runs past the step") }
            segments.append(PipelineSegment(sequence: Int(w[0]), start: Int(w[1]), count: Int(w[2]), prompt: w[3] != 0, maxPositions: Int(w[4]),
                                            prefix: Array(ints[prefixAt..<(prefixAt + prefixCount)])))
            prefixAt += prefixCount
        }
        let tail = body[(segmentCount * MPIPipelineLink.segmentWords)...]
        rowsRun += rows
        return PipelineStep(tokens: Array(ints[0..<rows]), segments: segments, logitRows: tail.prefix(logitRows).map { Int($0) },
                            released: tail.dropFirst(logitRows).prefix(released).map { Int($0) }, checkpoints: tail.suffix(checkpoints).map { Int($0) })
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
    /// A test's ways to make a rank fail after that many steps: `stallAfter` stops answering (it sleeps until
    /// the job is ended), `exitAfter` ends the process at once, as a crash would.
    public static func serve(_ model: TransformerModel, state: InferenceState, link: MPIPipelineLink, stallAfter: Int? = nil,
                             exitAfter: Int? = nil) throws {
        state.pipeline = link
        var sequences: [Int: KVSequence] = [:], steps = 0
        while let step = try link.nextStep() {
            if let stallAfter, steps >= stallAfter { while true { sleep(3600) } }
            if let exitAfter, steps >= exitAfter {
                FileHandle.standardError.write(Data("rank \(link.world.rank): ending after \(steps) steps (a test's crash)\n".utf8))
                exit(3)
            }
            try model.forwardStage(step, state: state, sequences: &sequences)
            steps += 1
        }
    }
}
