// Pipeline parallel, the model's side: a model split by layers across processes (stages). Each stage runs a
// contiguous range of the layers for every chunk of rows:
//   first stage   embeds the chunk, runs its layers, sends the residual rows x[T, width] on;
//   middle stage  receives x, runs its layers, sends x on;
//   last stage    receives x, runs its layers and the head, sends the wanted logits rows to the first.
// A chunk holds rows of one or more sequences (the batch engine's), named by the first stage's sequence
// serials. Every later stage keeps its own sequence for each (the KV rows of its layers) and follows the
// first stage's positions: a segment that starts earlier than what the stage holds cuts its sequence back
// first; a sequence the first stage began from a cached prefix is begun from the same prefix here (the
// stages commit the same tokens, so their prefix caches hold the same pages); a sequence the first stage
// let go of is let go of here. The bytes move through a PipelineLink (DistributedRuns: MPI).

import KVCache

/// One sequence's rows in a chunk.
public struct PipelineSegment: Sendable, Equatable {
    /// The first stage's KVSequence.serial.
    public var sequence: Int
    public var start: Int
    public var count: Int
    /// Prompt rows (the prompt attention kernel) rather than generated ones.
    public var prompt: Bool
    public var maxPositions: Int
    /// For a sequence the later stages have not seen that starts past 0: its tokens before `start` (the
    /// cached prefix they attach).
    public var prefix: [Int32]

    public init(sequence: Int, start: Int, count: Int, prompt: Bool, maxPositions: Int, prefix: [Int32] = []) {
        self.sequence = sequence; self.start = start; self.count = count; self.prompt = prompt; self.maxPositions = maxPositions
        self.prefix = prefix
    }
}

/// One chunk of one forward call, as the first stage announces it to the others.
public struct PipelineStep: Sendable, Equatable {
    /// Every row's token, segment after segment.
    public var tokens: [Int32]
    public var segments: [PipelineSegment]
    /// Rows whose logits are wanted, in order.
    public var logitRows: [Int]
    /// Sequences the first stage let go of since the last step.
    public var released: [Int]
    /// Sequences whose side state the first stage snapshotted since the last step (before letting go of
    /// any): the others snapshot theirs first.
    public var checkpoints: [Int]

    public init(tokens: [Int32], segments: [PipelineSegment], logitRows: [Int], released: [Int] = [], checkpoints: [Int] = []) {
        self.tokens = tokens; self.segments = segments; self.logitRows = logitRows; self.released = released; self.checkpoints = checkpoints
    }
}

/// The first stage's record of the sequences the later stages know, so a step can say which are new
/// (with their prefix) and which were let go of.
public final class PipelineSequences {
    private final class Weak { weak var sequence: KVSequence?; init(_ s: KVSequence) { sequence = s } }
    private var known: [Int: Weak] = [:]

    public init() {}

    /// The segment for `count` rows of `cache` from `start`.
    func segment(_ cache: KVSequence, start: Int, count: Int, prompt: Bool) -> PipelineSegment {
        var prefix: [Int32] = []
        if known[cache.serial] == nil {
            known[cache.serial] = Weak(cache)
            if start > 0 { prefix = Array(cache.committedTokens.prefix(start)) }
        }
        return PipelineSegment(sequence: cache.serial, start: start, count: count, prompt: prompt, maxPositions: cache.maxPositions,
                               prefix: prefix)
    }

    private var checkpointed: [Int] = []

    /// The first stage snapshotted the side state of `cache` (a sequence the others know).
    func noteCheckpoint(_ cache: KVSequence) {
        if known[cache.serial] != nil { checkpointed.append(cache.serial) }
    }

    /// Snapshots noted since the last call.
    func checkpoints() -> [Int] {
        defer { checkpointed.removeAll() }
        return checkpointed
    }

    /// Sequences gone since the last call.
    func released() -> [Int] {
        let gone = known.filter { $0.value.sequence == nil }.map(\.key).sorted()
        for serial in gone { known[serial] = nil }
        return gone
    }
}

/// This process's stage of a pipeline and the links to the others.
public protocol PipelineLink: AnyObject {
    /// The layers this stage runs.
    var layers: Range<Int> { get }
    var isFirst: Bool { get }
    var isLast: Bool { get }
    /// First stage: the sequences the others know.
    var sequences: PipelineSequences { get }
    /// First stage: tells the other stages which chunk comes next.
    func announce(_ step: PipelineStep) throws
    /// x rows (count floats) to the next stage / from the previous one.
    func sendHidden(_ rows: UnsafePointer<Float>, count: Int) throws
    func receiveHidden(into rows: UnsafeMutablePointer<Float>, count: Int) throws
    /// The wanted logits rows (count floats), last stage to first. The first stage posts where each chunk's
    /// rows go as it sends the chunk on (`expectLogits`, so the last stage never waits on it), and waits for
    /// all of them at the end of the forward call (`awaitLogits`).
    func sendLogits(_ rows: UnsafePointer<Float>, count: Int) throws
    func expectLogits(into rows: UnsafeMutablePointer<Float>, count: Int) throws
    func awaitLogits() throws
    /// Rows per chunk the first stage sends on (prompts in micro-batches, so the stages work at the same
    /// time; nil: the state's batch).
    var microBatch: Int? { get }
    /// Expert parallel: every rank runs every layer on the rows the first announces (no x rows pass, the
    /// first computes its own logits, the others none); the MoE layers exchange partial outputs through the
    /// model's expert shard.
    var replicated: Bool { get }
}

/// How a pipeline splits the model: every rank's layers, and which rank this process is.
public struct PipelineStages: Sendable, Equatable {
    public let all: [Range<Int>]
    public let rank: Int
    public init(all: [Range<Int>], rank: Int) { self.all = all; self.rank = rank }
    public var own: Range<Int> { all[rank] }
    public var isFirst: Bool { rank == 0 }
    public var isLast: Bool { rank == all.count - 1 }
}

/// An error of the link between the ranks of a distributed run (a rank died, went silent, or the transport
/// failed): the run cannot go on, and a server says it is unavailable.
public protocol PipelineLinkFailure: Error {}

public enum PipelineError: Error, CustomStringConvertible {
    case unsupported(String)
    case badStep(String)
    public var description: String {
        switch self {
        case .unsupported(let why): return "pipeline parallel: \(why)"
        case .badStep(let why): return "pipeline parallel: \(why)"
        }
    }
}

extension TransformerModel {
    /// Whether this model's layers can be split across stages, and if not why.
    public var pipelineProblem: String? {
        body.runsLayerRanges ? nil : "\(config.architecture) runs its layers as a whole here (the standard layer stacks split: llama, qwen2/3, "
            + "gemma3, the MoE and latent-attention files on them, and DeepSeek V4)"
    }

    /// Each layer's weight bytes (what a stage reads per token), for splitting by bytes.
    public var layerWeightBytes: [Int] { body.layerWeightBytes }

    /// Whether this process reads the tensor `name`: under a pipeline stage, its own layers' (`blk.N.`),
    /// the embedding on the first stage, the head on the last (the embedding too when the head is tied to
    /// it), and the model's other global tensors; else every tensor.
    public func holds(tensor name: String) -> Bool {
        guard let stages = pipelineStages else { return true }
        if name.hasPrefix("blk.") {
            let number = name.dropFirst(4).prefix { $0.isNumber }
            return Int(number).map { stages.own.contains($0) } ?? true
        }
        switch name {
        case TensorName.tokenEmbedding.name: return stages.isFirst || (stages.isLast && gguf.tensor(TensorName.output.name) == nil)
        case TensorName.output.name, TensorName.outputNorm.name: return stages.isLast
        default: return true
        }
    }

    /// Whether this process runs routed expert `expert` of layer `layer` (its stage's layers, its share).
    public func runsExpert(layer: Int, expert: Int) -> Bool {
        (pipelineStages.map { $0.own.contains(layer) } ?? true) && (expertShard?.runs(layer: layer, expert: expert) ?? true)
    }

    /// Floats of one row passed between pipeline stages.
    public var pipelineWidth: Int { body.pipelineWidth ?? config.embeddingLength }

    /// Bytes of the output head (the last stage reads them per token).
    public var headBytes: Int { output.rows * output.rowBytes }

    /// The first stage's part of one chunk (its segments prepared for writing): announce it, run this
    /// stage's layers, pass x on, and post where the last stage's wanted logits rows go (state.logits from
    /// row logitsOffset; link.awaitLogits waits).
    func forwardFirstStage(_ link: PipelineLink, tokens: UnsafePointer<Int32>, count n: Int, segments: [BatchSegment], logitRows: [Int],
                           state s: InferenceState, logitsOffset: Int) throws {
        let step = PipelineStep(tokens: Array(UnsafeBufferPointer(start: tokens, count: n)),
                                segments: segments.map { link.sequences.segment($0.cache, start: $0.start, count: $0.count, prompt: $0.prompt) },
                                logitRows: logitRows, released: link.sequences.released(), checkpoints: link.sequences.checkpoints())
        try link.announce(step)
        if link.replicated {
            forwardBatch(tokens, count: n, segments: segments, state: s, logitRows: logitRows, logitsOffset: logitsOffset)
            if let error = expertShard?.takeError() { throw error }
            return
        }
        forwardBatch(tokens, count: n, segments: segments, state: s, logitRows: link.isLast ? logitRows : [], logitsOffset: logitsOffset,
                     layers: link.layers)
        guard !link.isLast else { return }
        try link.sendHidden(body.pipelineRows(s), count: n * pipelineWidth)
        if !logitRows.isEmpty {
            try link.expectLogits(into: s.logits + logitsOffset * vocabularySize, count: logitRows.count * vocabularySize)
        }
    }

    /// A later stage's part of one chunk the first stage announced: x from the previous stage through this
    /// stage's layers, then on to the next stage, or (the last) through the head to the first stage.
    /// `sequences`: this stage's sequence for each of the first stage's.
    public func forwardStage(_ step: PipelineStep, state s: InferenceState, sequences: inout [Int: KVSequence]) throws {
        guard let link = s.pipeline, !link.isFirst else { throw PipelineError.badStep("forwardStage runs on the stages after the first") }
        let n = step.tokens.count, e = pipelineWidth
        guard n > 0, n <= s.maxBatch, step.segments.reduce(0, { $0 + $1.count }) == n, step.logitRows.allSatisfy({ $0 >= 0 && $0 < n }) else {
            throw PipelineError.badStep("a chunk of \(n) rows in \(step.segments.count) segments where this stage takes 1...\(s.maxBatch)")
        }
        for serial in step.checkpoints { if let cache = sequences[serial] { checkpointSideState(of: cache) } }
        for serial in step.released { sequences[serial] = nil }
        var segments: [BatchSegment] = [], offset = 0
        for seg in step.segments {
            let cache = try stageSequence(seg, pool: s.cache.pool, sequences: &sequences)
            try cache.prepareWrite(start: seg.start, count: seg.count)
            segments.append(BatchSegment(cache: cache, start: seg.start, offset: offset, count: seg.count, prompt: seg.prompt))
            offset += seg.count
        }
        if link.replicated {
            // Every layer from the tokens, no head: only the first rank's logits are wanted.
            step.tokens.withUnsafeBufferPointer { buf in
                forwardBatch(buf.baseAddress!, count: n, segments: segments, state: s, logitRows: [], logitsOffset: 0)
            }
            if let error = expertShard?.takeError() {
                for seg in segments { seg.cache.discardWrite(start: seg.start) }
                throw error
            }
            commit(step, segments)
            return
        }
        try link.receiveHidden(into: s.pipelineInput(rows: n, width: e), count: n * e)
        s.reserveLogits(rows: max(1, step.logitRows.count), vocab: vocabularySize)
        step.tokens.withUnsafeBufferPointer { buf in
            forwardBatch(buf.baseAddress!, count: n, segments: segments, state: s, logitRows: link.isLast ? step.logitRows : [],
                         logitsOffset: 0, inputRows: UnsafePointer(s.pipelineInput(rows: n, width: e)), layers: link.layers)
        }
        if link.isLast {
            if !step.logitRows.isEmpty { try link.sendLogits(s.logits, count: step.logitRows.count * vocabularySize) }
        } else {
            try link.sendHidden(body.pipelineRows(s), count: n * e)
        }
        commit(step, segments)
    }

    /// The step's tokens committed to this stage's sequences.
    private func commit(_ step: PipelineStep, _ segments: [BatchSegment]) {
        step.tokens.withUnsafeBufferPointer { buf in
            for seg in segments { seg.cache.commit(UnsafeBufferPointer(rebasing: buf[seg.offset..<(seg.offset + seg.count)]), start: seg.start) }
        }
    }

    /// This stage's sequence for a segment, brought to the segment's start: made (from the cached prefix the
    /// first stage began it with) when new, cut back when it holds more.
    private func stageSequence(_ seg: PipelineSegment, pool: KVPagePool, sequences: inout [Int: KVSequence]) throws -> KVSequence {
        let cache: KVSequence
        if let known = sequences[seg.sequence] {
            cache = known
        } else {
            cache = KVSequence(pool: pool, maxPositions: seg.maxPositions)
            sequences[seg.sequence] = cache
            if !seg.prefix.isEmpty {
                let attached = cache.attachCachedPrefix(of: seg.prefix, limit: seg.prefix.count)
                guard attached == seg.start else {
                    throw PipelineError.badStep("this stage's prefix cache holds \(attached) of the \(seg.start) positions rank 0 began a sequence from")
                }
            }
        }
        guard seg.start + seg.count <= cache.maxPositions else {
            throw InferenceError.contextOverflow(needed: seg.start + seg.count, capacity: cache.maxPositions)
        }
        if cache.count > seg.start { cache.truncate(to: seg.start) }
        guard seg.start == cache.count else { throw InferenceError.positionGap(start: seg.start, cached: cache.count) }
        return cache
    }
}
