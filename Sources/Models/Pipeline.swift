// Pipeline parallel, the model's side: a model split by layers across processes (stages). Each stage runs a
// contiguous range of the layers for every chunk of tokens:
//   first stage   embeds the chunk, runs its layers, sends the residual rows x[T, width] on;
//   middle stage  receives x, runs its layers, sends x on;
//   last stage    receives x, runs its layers and the head, sends the wanted logits rows to the first.
// Every stage keeps the KV rows of its own layers (its sequence follows the first stage's positions: a
// chunk that starts earlier than what a stage holds cuts its sequence back first). The bytes move through
// a PipelineLink (DistributedRuns implements it over MPI).

import KVCache

/// One chunk of one forward call, as the first stage announces it to the others.
public struct PipelineStep: Sendable, Equatable {
    public var tokens: [Int32]
    public var startPosition: Int
    /// Rows of the chunk whose logits are wanted: firstLogitRow ..< tokens.count (none when equal).
    public var firstLogitRow: Int
    /// The tokens are generated ones (drafts being verified), computed as lone decode steps would be.
    public var asDecodeRows: Bool

    public init(tokens: [Int32], startPosition: Int, firstLogitRow: Int, asDecodeRows: Bool) {
        self.tokens = tokens; self.startPosition = startPosition; self.firstLogitRow = firstLogitRow; self.asDecodeRows = asDecodeRows
    }
}

/// This process's stage of a pipeline and the links to the others.
public protocol PipelineLink: AnyObject {
    /// The layers this stage runs.
    var layers: Range<Int> { get }
    var isFirst: Bool { get }
    var isLast: Bool { get }
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
}

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
            + "gemma3, the MoE and latent-attention files on them)"
    }

    /// Each layer's weight bytes (what a stage reads per token), for splitting by bytes.
    public var layerWeightBytes: [Int] { body.layerWeightBytes }

    /// Bytes of the output head (the last stage reads them per token).
    public var headBytes: Int { output.rows * output.rowBytes }

    /// The first stage's part of one chunk: announce it, run this stage's layers, pass x on, and post where
    /// the last stage's wanted logits rows go (state.logits from row logitsOffset; link.awaitLogits waits).
    func forwardFirstStage(_ link: PipelineLink, _ step: PipelineStep, state s: InferenceState, segment: BatchSegment, logitsOffset: Int) throws {
        let n = step.tokens.count, e = config.embeddingLength
        try link.announce(step)
        step.tokens.withUnsafeBufferPointer { buf in
            forwardBatch(buf.baseAddress!, count: n, segments: [segment], state: s,
                         logitRows: link.isLast ? Array(step.firstLogitRow..<n) : [], logitsOffset: logitsOffset, layers: link.layers)
        }
        guard !link.isLast else { return }
        try link.sendHidden(s.x, count: n * e)
        let rows = n - step.firstLogitRow
        if rows > 0 { try link.expectLogits(into: s.logits + logitsOffset * vocabularySize, count: rows * vocabularySize) }
    }

    /// A later stage's part of one chunk the first stage announced: x from the previous stage through this
    /// stage's layers, then on to the next stage, or (the last) through the head to the first stage.
    public func forwardStage(_ step: PipelineStep, state s: InferenceState) throws {
        guard let link = s.pipeline, !link.isFirst else { throw PipelineError.badStep("forwardStage runs on the stages after the first") }
        let n = step.tokens.count, e = config.embeddingLength, start = step.startPosition
        guard n > 0, n <= s.maxBatch, step.firstLogitRow >= 0, step.firstLogitRow <= n else {
            throw PipelineError.badStep("a chunk of \(n) tokens (logits from row \(step.firstLogitRow)) where this stage takes 1...\(s.maxBatch)")
        }
        guard start + n <= s.cache.maxPositions else { throw InferenceError.contextOverflow(needed: start + n, capacity: s.cache.maxPositions) }
        if s.cache.count > start { s.cache.truncate(to: start) }
        guard start == s.cache.count else { throw InferenceError.positionGap(start: start, cached: s.cache.count) }
        try s.cache.prepareWrite(start: start, count: n)
        try link.receiveHidden(into: s.pipelineInput(rows: n, width: e), count: n * e)
        let rows = n - step.firstLogitRow
        s.reserveLogits(rows: max(1, rows), vocab: vocabularySize)
        let segment = BatchSegment(cache: s.cache, start: start, offset: 0, count: n, prompt: n > 1 && !step.asDecodeRows)
        step.tokens.withUnsafeBufferPointer { buf in
            forwardBatch(buf.baseAddress!, count: n, segments: [segment], state: s, logitRows: link.isLast ? Array(step.firstLogitRow..<n) : [],
                         logitsOffset: 0, inputRows: UnsafePointer(s.pipelineInput(rows: n, width: e)), layers: link.layers)
        }
        if link.isLast {
            if rows > 0 { try link.sendLogits(s.logits, count: rows * vocabularySize) }
        } else {
            try link.sendHidden(s.x, count: n * e)
        }
        step.tokens.withUnsafeBufferPointer { s.cache.commit($0, start: start) }
    }
}
