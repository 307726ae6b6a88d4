// A decoder-only transformer: the token embedding, one architecture's layer stack, the output head.
//   x       = embed(tokens) [· embeddingScale]          (the stack embeds its rows, LayerStack.swift)
//   hidden  = stack(x)                                   StandardStack, or an architecture's own
//   logits  = W_out · rmsnorm(hidden) [softcap]          on the rows whose logits are wanted
// Architecture files build the stack (Registry.swift); this file knows none of them.

import GGUF
import Kernels
import KVCache
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum LogitsRequest: Sendable {
    /// Logits of the last token of the batch only (generation).
    case last
    /// Logits of every token of the batch (teacher forcing).
    case all
    /// Logits of the last n tokens of the batch (perplexity scores only the second half).
    case suffix(Int)
    /// No logits (pure prefill of a prefix).
    case none
}

public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    public let gguf: GGUFFile
    public let tokenEmbedding: WeightMatrix
    public let output: WeightMatrix
    public let outputNorm: FloatBuffer
    /// The layers between embedding and head, built by the architecture's file.
    public let body: any LayerStack
    /// Routed experts streamed into RAM slots (--ram-budget); nil: all weights stay mapped.
    public var expertCache: ExpertCache?
    /// Expert parallel: the routed experts this rank runs and the exchange of partial outputs (nil: all, here).
    public var expertShard: ExpertShard?
    /// Pipeline parallel: every rank's layers and this process's rank (nil: every layer runs here). Memory
    /// placement counts only this stage's tensors.
    public var pipelineStages: PipelineStages?
    /// The MTP / next-n layer, read on first use (nextNHead()).
    private let nextN = Mutex<Result<NextNHead?, ModelError>?>(nil)

    /// The file's first MTP / next-n layer with its head (nil: it has none), read once.
    public func nextNHead() throws -> NextNHead? {
        try nextN.withLock { cached in
            if cached == nil {
                do { cached = .success(try NextNHead.load(self)) } catch let e as ModelError { cached = .failure(e) } catch {
                    cached = .failure(.invalidConfig(file: gguf.path, message: "\(error)"))
                }
            }
            return try cached!.get()
        }
    }

    /// The embedding, head and `body` of `gguf` (the architecture read `config` and built `body`).
    /// A model over parts already read (an MTP layer with its own head).
    init(gguf: GGUFFile, config: ModelConfig, body: any LayerStack, tokenEmbedding: WeightMatrix, output: WeightMatrix, outputNorm: FloatBuffer) {
        self.gguf = gguf; self.config = config; self.body = body
        self.tokenEmbedding = tokenEmbedding; self.output = output; self.outputNorm = outputNorm
    }

    public init(gguf: GGUFFile, config c: ModelConfig, body: any LayerStack) throws {
        self.gguf = gguf
        self.config = c
        self.body = body
        let r = WeightReader(gguf, layout: c.weightLayout)
        guard let embInfo = gguf.tensor(TensorName.tokenEmbedding.name), embInfo.dims.count == 2 else {
            throw ModelError.missingTensor(file: gguf.path, name: TensorName.tokenEmbedding.name)
        }
        tokenEmbedding = try r.matrix(.tokenEmbedding, rows: embInfo.dims[1], cols: c.embeddingLength)
        output = r.has(.output) ? try r.matrix(.output, rows: embInfo.dims[1], cols: c.embeddingLength) : tokenEmbedding
        outputNorm = try r.vector(.outputNorm, count: c.embeddingLength)
    }

    public var vocabularySize: Int { tokenEmbedding.rows }

    /// Every MoE block of the model with its layer index (the memory tiers stream their routed experts).
    public var moeBlocks: [(layer: Int, weights: MoEWeights)] { body.moeBlocks }

    /// Bytes of weights a decode step reads (all matrices once + the embedding row).
    public var weightBytesPerToken: Int { output.rows * output.rowBytes + body.weightBytesPerToken }

    /// KV rows of one position and their retention per KV layer, with K/V stored as `type`.
    public func kvShape(type: KVType = .f32) -> KVShape { body.kvShape(type: type) }

    /// Why `type` cannot hold this model's KV (nil: it can).
    public func kvTypeProblem(_ type: KVType) -> String? { body.kvTypeProblem(type) }

    /// Pages a private pool needs for one sequence of `contextLength` positions in batches of maxBatch.
    public func privatePoolPages(type: KVType = .f32, contextLength: Int, maxBatch: Int) -> Int {
        KVPagePool.pagesNeeded(kvShape(type: type), positions: contextLength, batch: maxBatch, pageTokens: InferenceState.defaultPageTokens)
    }

    /// Runs tokens at positions startPosition..<startPosition+tokens.count through the model,
    /// appending their K/V to the state's cache. Returns logits rows per `request`. asDecodeRows: the
    /// tokens are generated ones (drafts being verified), each computed as a lone decode step would be
    /// (bitwise so where body.exactDecodeRows); otherwise several tokens are prompt rows.
    /// inputRows: rows to start from instead of the tokens' embeddings (an MTP layer's input), one per
    /// token. After each chunk is committed, state.onCommit sees its tokens and final hidden rows.
    @discardableResult
    public func forward(_ tokens: [Int32], startPosition: Int, state: InferenceState, logits request: LogitsRequest,
                        asDecodeRows: Bool = false, inputRows: UnsafePointer<Float>? = nil) throws -> UnsafeBufferPointer<Float> {
        var done = 0
        var result = UnsafeBufferPointer<Float>(start: nil, count: 0)
        guard !tokens.isEmpty else { return result }
        guard startPosition + tokens.count <= state.cache.maxPositions else {
            throw InferenceError.contextOverflow(needed: startPosition + tokens.count, capacity: state.cache.maxPositions)
        }
        guard startPosition <= state.cache.count else {
            throw InferenceError.positionGap(start: startPosition, cached: state.cache.count)
        }
        for t in tokens where t < 0 || Int(t) >= vocabularySize {
            throw InferenceError.invalidToken(t, vocabularySize: vocabularySize)
        }
        if state.pipeline != nil && inputRows != nil { throw PipelineError.unsupported("rows given instead of tokens (an MTP drafter) run on one process") }
        // Rows of the batch whose logits are wanted: [firstRow, tokens.count).
        let firstRow: Int
        switch request {
        case .all: firstRow = 0
        case .suffix(let n): firstRow = max(0, tokens.count - n)
        case .last: firstRow = tokens.count - 1
        case .none: firstRow = tokens.count
        }
        state.reserveLogits(rows: max(1, tokens.count - firstRow), vocab: vocabularySize)
        let chunkRows = min(state.maxBatch, state.pipeline?.microBatch ?? state.maxBatch)
        while done < tokens.count {
            let n = min(chunkRows, tokens.count - done)
            let lo = min(n, max(firstRow, done) - done)   // wanted rows inside this chunk: lo..<n
            try state.cache.prepareWrite(start: startPosition + done, count: n)
            _ = expertCache?.takeError()   // earlier failures left no slot in use
            let segment = BatchSegment(cache: state.cache, start: startPosition + done, offset: 0, count: n, prompt: n > 1 && !asDecodeRows)
            if let link = state.pipeline {
                do {
                    try tokens.withUnsafeBufferPointer { buf in
                        try forwardFirstStage(link, tokens: buf.baseAddress! + done, count: n, segments: [segment], logitRows: Array(lo..<n),
                                              state: state, logitsOffset: max(0, done + lo - firstRow))
                    }
                } catch {
                    state.cache.discardWrite(start: startPosition + done)
                    throw error
                }
            } else {
                tokens.withUnsafeBufferPointer { buf in
                    forwardBatch(buf.baseAddress! + done, count: n, segments: [segment],
                                 state: state, logitRows: Array(lo..<n), logitsOffset: max(0, done + lo - firstRow),
                                 inputRows: inputRows.map { $0 + done * config.embeddingLength })
                }
            }
            // A failed expert read spoils this chunk's rows: they are dropped, never committed (earlier
            // chunks were checked and stay).
            if let error = expertCache?.takeError() {
                state.cache.discardWrite(start: startPosition + done)
                throw InferenceError.weightRead(error)
            }
            tokens.withUnsafeBufferPointer { buf in
                state.cache.commit(UnsafeBufferPointer(rebasing: buf[done..<(done + n)]), start: startPosition + done)
                state.onCommit?(UnsafeBufferPointer(rebasing: buf[done..<(done + n)]), startPosition + done, UnsafePointer(state.x))
            }
            done += n
            if tokens.count > chunkRows { state.onChunkProgress?(done, tokens.count) }
        }
        try state.pipeline?.awaitLogits()
        let rows = tokens.count - firstRow
        if rows > 0 { result = UnsafeBufferPointer(start: state.logits, count: rows * vocabularySize) }
        return result
    }

    /// Runs T batch rows through the model. The rows are split into segments, each a run of consecutive
    /// positions of one sequence (its K/V prepared for writing); logits of `logitRows` (batch rows, in
    /// order) land in state.logits from row logitsOffset.
    /// `layers`: only these layers (a pipeline stage's; nil: all).
    func forwardBatch(_ tokens: UnsafePointer<Int32>, count T: Int, segments: [BatchSegment], state s: InferenceState,
                      logitRows: [Int], logitsOffset: Int, inputRows: UnsafePointer<Float>? = nil, layers: Range<Int>? = nil) {
        // Position and segment of every row.
        for (i, seg) in segments.enumerated() {
            for t in seg.offset..<(seg.offset + seg.count) { s.positions[t] = seg.start + t - seg.offset; s.rowSegment[t] = Int32(i) }
        }
        let decodeRows = segments.prefix { !$0.prompt }.reduce(0) { $0 + $1.count }
        let pass = ForwardPass(tokens: tokens, count: T, segments: segments, state: s, decodeRows: decodeRows,
                               embedding: TokenEmbedding(matrix: tokenEmbedding, scale: config.embeddingScale), experts: expertCache, shard: expertShard,
                               inputRows: inputRows, layers: layers)
        // A device failure during the pass spoils its results: it runs again, on the CPU (passEnded is false
        // once). At the end every result is on the host, and a device backend may move weights between steps.
        repeat {
            s.ops.passBegins(hostAccessDeclared: body.declaresHostAccess)
            body.forward(pass)
            head(pass, logitRows: logitRows, logitsOffset: logitsOffset)
        } while !s.ops.passEnded()
    }

    /// Output head on the requested rows (logit row i of the call = batch row logitRows[i]).
    private func head(_ pass: ForwardPass, logitRows: [Int], logitsOffset: Int) {
        let s = pass.state, decodeRows = pass.decodeRows
        if logitRows.isEmpty { return }
        let e = config.embeddingLength, rows = logitRows.count
        let dest = s.logits + logitsOffset * vocabularySize
        for (i, row) in logitRows.enumerated() {
            let input = UnsafeMutablePointer(mutating: body.headInput(row: row, index: i, pass: pass))
            s.ops.rmsNorm(RowBlock(input, rows: 1, width: e), weight: outputNorm.pointer, into: RowBlock(s.xn + i * e, rows: 1, width: e),
                          epsilon: config.rmsEpsilon)
        }
        // The head's inputs are the logit rows: its decode rows are those among them.
        let mode: ProductMode = body.batchInvariant ? .invariant(decodeRows: logitRows.filter { $0 < decodeRows }.count) : .batched
        s.ops.multiply(output, s.xn, tokens: rows, into: dest, mode: mode)
        if let cap = config.finalLogitSoftcap, cap > 0 { s.ops.softcap(RowBlock(dest, rows: rows, width: vocabularySize), cap: cap) }
    }
}

public enum InferenceError: Error, CustomStringConvertible {
    case contextOverflow(needed: Int, capacity: Int)
    case invalidToken(Int32, vocabularySize: Int)
    case emptyPrompt
    case positionGap(start: Int, cached: Int)
    case weightRead(String)
    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty (no tokens to evaluate)"
        case .positionGap(let s, let c): return "tokens start at position \(s) but the KV cache holds only \(c) positions"
        case .contextOverflow(let n, let c): return "context overflow: \(n) positions needed, the context holds \(c) (use a larger --ctx)"
        case .invalidToken(let t, let v): return "token id \(t) is outside the vocabulary (size \(v))"
        case .weightRead(let why): return "the model file could not be read: \(why)"
        }
    }
}

