// The layers of a model between its token embedding and its output head. Each architecture file
// builds one: the llama family a StandardStack with its hooks (StandardStack.swift), DeepSeek V4,
// Gemma 4 and Qwen3.5 their own stacks. TransformerModel owns the embedding, the head and one stack:
//
//   x[T, e]   = embed(tokens)                       (the stack calls pass.embed; it may widen x, e.g.
//                                                    DeepSeek V4's hyper-connection streams)
//   stack     : x → hidden rows, K/V into each segment's cache, side state advanced
//   logits    = W_out · rmsnorm(headInput(row))     (TransformerModel, on the wanted rows only)
//
// Everything else the engine asks of an architecture (its cache's shape and cost, the state it keeps
// beside the pages, its MoE blocks for the memory tiers, the bytes a token reads) is asked here.

import Kernels
import KVCache

public protocol LayerStack: AnyObject, Sendable {
    /// Widths of the per-session buffers every stack shares (InferenceState allocates them).
    var activations: ActivationShape { get }
    /// Whether decode rows of a batch are computed as if each ran alone (the batch-invariant mode); the
    /// head then computes its decode rows the same way.
    var batchInvariant: Bool { get }
    /// Buffers this stack needs beyond the shared ones, for batches of up to maxBatch rows (nil: none).
    func makeScratch(maxBatch: Int, threads: Int) -> AnyObject?
    /// Runs the pass's rows through the layers: embeds them (pass.embed), writes each row's K/V into its
    /// segment's cache and advances any side state. The hidden rows stay where headInput finds them.
    func forward(_ pass: ForwardPass)
    /// The final hidden state (before the output norm, e floats) of batch row `row`, which is the
    /// `index`-th row whose logits are wanted. Called for the wanted rows in order, after forward.
    func headInput(row: Int, index: Int, pass: ForwardPass) -> UnsafePointer<Float>
    /// KV rows of one position and how long each KV layer keeps them.
    func kvShape(type: KVType) -> KVShape
    /// Why `type` cannot hold this stack's KV (nil: it can).
    func kvTypeProblem(_ type: KVType) -> String?
    /// What one sequence's cache costs (bytes per token of context + bytes held whatever the length).
    func kvFootprint(type: KVType) -> KVFootprint
    /// Whether the stack keeps per-sequence state beside the KV pages (recurrent state, compressed
    /// caches); makeSideState makes an empty one.
    var keepsSideState: Bool { get }
    func makeSideState(kvType: KVType) -> KVSideState?
    /// Bytes a sequence's side state holds at `contextLength` positions (0: none).
    func sideStateBytes(contextLength: Int, type: KVType) -> Int
    /// Every MoE block with its layer index (the memory tiers stream their routed experts).
    var moeBlocks: [(layer: Int, weights: MoEWeights)] { get }
    /// Bytes of the stack's weights one decode step reads (every matrix once, `used` experts per MoE).
    var weightBytesPerToken: Int { get }
    /// Whether a segment of several decode rows (drafted tokens being verified) gives every row exactly
    /// the bits it gets as a lone decode step. Undoing part of such a pass: truncate the KV, and with
    /// side state go back through TransformerModel.markSideState / rollBack and evaluate the kept rows.
    var exactDecodeRows: Bool { get }
    /// Whether forward calls ops.hostAccess() before it reads or writes a buffer on the host itself (and
    /// hands every other access to ops), so a device backend may keep results on the device between ops.
    var declaresHostAccess: Bool { get }
    /// Whether forward runs `ForwardPass.layers` alone when given (pipeline stages), starting from the
    /// pass's input rows and leaving the residual stream in the state's x.
    var runsLayerRanges: Bool { get }
    /// Each layer's weight bytes (empty where the stack does not split).
    var layerWeightBytes: [Int] { get }
    /// The residual rows a pipeline stage passes to the next after its layers (T rows of pipelineWidth
    /// floats; the same width as the pass's inputRows on the next stage). nil width: the embedding's, in x.
    var pipelineWidth: Int? { get }
    func pipelineRows(_ state: InferenceState) -> UnsafeMutablePointer<Float>
    /// Activation rows of the stack's scratch (makeScratch's) that a device backend may keep on its device.
    func deviceBuffers(scratch: AnyObject?) -> [UnsafeMutableRawBufferPointer]
}

extension LayerStack {
    public var batchInvariant: Bool { true }
    public func makeScratch(maxBatch: Int, threads: Int) -> AnyObject? { nil }
    public func headInput(row: Int, index: Int, pass: ForwardPass) -> UnsafePointer<Float> {
        UnsafePointer(pass.state.x + row * pass.embedding.width)
    }
    public var keepsSideState: Bool { false }
    public var exactDecodeRows: Bool { false }
    public var declaresHostAccess: Bool { false }
    public var runsLayerRanges: Bool { false }
    public var layerWeightBytes: [Int] { [] }
    public var pipelineWidth: Int? { nil }
    public func pipelineRows(_ state: InferenceState) -> UnsafeMutablePointer<Float> { state.x }
    public func deviceBuffers(scratch: AnyObject?) -> [UnsafeMutableRawBufferPointer] { [] }
    public func makeSideState(kvType: KVType) -> KVSideState? { nil }
    public func sideStateBytes(contextLength: Int, type: KVType) -> Int { 0 }

    /// Footprint of a stack whose whole cache is its KV pages: full layers grow per token, window and
    /// chunk layers are bounded.
    public func kvFootprint(type: KVType) -> KVFootprint {
        KVFootprint(pages: kvShape(type: type), fixedBytes: 0)
    }

    /// Q8_0 stores whole blocks of 32: every head's slice of a row must be whole blocks.
    static func blockProblem(_ type: KVType, headSizes dims: [Int]) -> String? {
        guard type.blockSize > 1, !dims.allSatisfy({ $0 % type.blockSize == 0 }) else { return nil }
        return "--kv-type \(type.rawValue) needs head sizes divisible by \(type.blockSize); this model has \(dims.map(String.init).joined(separator: " and "))"
    }
}

/// Per-row widths of the buffers InferenceState shares among stacks (floats).
public struct ActivationShape: Sendable {
    /// x, o: the residual stream; normed: xn (the widest normalised input of a product).
    public var embedding: Int
    public var normed: Int
    public var query: Int
    public var key: Int
    public var value: Int
    /// att: attention output before W_o.
    public var attention: Int
    /// gate, up: the FFN's hidden rows.
    public var feedForward: Int
    /// cos/sin table of one token for each RoPE base (global and sliding).
    public var ropeTable: Int
    /// Attention scratch per thread: scores of one query group over the whole context (`groupSize`
    /// query heads per KV head) or the block kernel's tiles for the widest key and value rows.
    public var heads: Int
    public var groupSize: Int
    public var widestKey: Int
    public var widestValue: Int
    /// Prompt batches of at least this many rows run multi-head latent attention's expanded form,
    /// shorter ones (decode) the absorbed form (Int.max: no latent attention).
    public var expandedAttentionMinimumTokens = Int.max

    /// Standard attention over `config`'s heads and a dense FFN of config.feedForwardLength.
    public init(_ c: ModelConfig) {
        embedding = c.embeddingLength
        normed = max(c.embeddingLength, c.headCount * c.headDimV)
        query = c.headCount * c.headDimK
        key = c.headCountKV * c.headDimK
        value = c.headCountKV * c.headDimV
        attention = c.headCount * c.headDimV
        feedForward = c.feedForwardLength
        ropeTable = c.ropeDimensions
        heads = c.headCount
        groupSize = c.headCount / c.headCountKV
        widestKey = c.headDimK
        widestValue = c.headDimV
    }
}

/// The token embedding as the stacks use it: row `token` of W_emb, times `scale` when set.
public struct TokenEmbedding: @unchecked Sendable {
    public let matrix: WeightMatrix
    public let scale: Float?
    public var width: Int { matrix.cols }

    /// x[0..<width] = W_emb[token] (· scale)
    @inline(__always) public func embed(_ token: Int32, into x: UnsafeMutablePointer<Float>) {
        matrix.dequantizeRow(Int(token), into: x)
        if let scale { for i in 0..<width { x[i] *= scale } }
    }
}

/// One forward call as a stack sees it: T rows in segments (one sequence's consecutive positions
/// each), their tokens, the session's buffers, and which leading rows are decode rows.
public struct ForwardPass {
    let tokens: UnsafePointer<Int32>
    /// T, the rows of the batch.
    let count: Int
    let segments: [BatchSegment]
    let state: InferenceState
    /// Rows [0, decodeRows) are decode rows (generated tokens), the rest prompt rows.
    let decodeRows: Int
    let embedding: TokenEmbedding
    /// Routed experts streamed into RAM slots (nil: every weight stays mapped).
    let experts: ExpertCache?
    /// Expert parallel: this rank's share of the routed experts (nil: all).
    let shard: ExpertShard?
    /// The rows the stack starts from instead of the tokens' embeddings (an MTP layer's projected input, a
    /// pipeline stage's rows from the previous one), T rows of the stack's pipeline width (the embedding
    /// width but for DeepSeek V4's streams); nil: embed the tokens.
    var inputRows: UnsafePointer<Float>? = nil
    /// The layers to run (a pipeline stage's range; nil: every layer). Only stacks that say
    /// `runsLayerRanges` are given one.
    var layers: Range<Int>? = nil

    /// x[t] = embed(tokens[t]) for the rows of the pass.
    func embed(_ t: Int, into x: UnsafeMutablePointer<Float>) { embedding.embed(tokens[t], into: x) }

    /// Every row of the pass embedded into x (rows count, width e) through the op interface.
    func embedAll(into x: RowBlock) {
        state.ops.gatherRows(embedding.matrix, indices: tokens, into: x, scale: embedding.scale)
    }
}
