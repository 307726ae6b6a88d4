// Per-session buffers: the KV sequence, activations for batches of up to maxBatch rows (widths from the
// model's layer stack), the stack's own scratch, logits, the worker pool. Allocated once per session.

import Kernels
import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class InferenceState: @unchecked Sendable {
    public let cache: KVSequence
    public let maxBatch: Int
    public let pool: WorkerPool
    /// Called by TransformerModel.forward after each chunk is committed: its tokens, the position of
    /// the first, and the final hidden rows (before the output norm; one per token, the model's width),
    /// valid during the call. For stacks whose head reads x (the standard stack). An MTP drafter feeds
    /// its layer from here.
    public var onCommit: ((_ tokens: UnsafeBufferPointer<Int32>, _ start: Int, _ hidden: UnsafePointer<Float>) -> Void)?
    /// Called by TransformerModel.forward after each committed chunk of a call of several chunks: tokens
    /// done and the call's total (a progress bar for long prompts).
    public var onChunkProgress: ((_ done: Int, _ total: Int) -> Void)?
    /// The op interface the layer stacks run on: the CPU backend over `pool`, or the backend a provider
    /// (a GPU device) makes over it.
    public let ops: any Backend
    /// [maxBatch, width] rows: x, o the residual stream and a layer's output; xn a normalised input;
    /// q, k, v, att attention; gate, up the FFN's hidden rows (ActivationShape gives the widths).
    let x, xn, q, k, v, att, o, gate, up: UnsafeMutablePointer<Float>
    /// cos/sin of every token of a batch for the global and the sliding-window RoPE bases.
    let ropeGlobal, ropeSliding: UnsafeMutablePointer<Float>
    /// Per batch row: its position and the index of its segment.
    let positions: UnsafeMutablePointer<Int>
    let rowSegment: UnsafeMutablePointer<Int32>
    /// The attention kernels' per-thread scratch and split-K partials.
    public let attention: AttentionWorkspace
    /// The layer stack's own buffers (LayerStack.makeScratch).
    let stackScratch: AnyObject?
    /// Multi-head latent attention: prompt batches of at least this many tokens run the expanded form,
    /// shorter ones (decode) the absorbed form.
    public var latentExpandedMinimumTokens: Int
    /// This session's stage of a model split across processes (nil: the whole model here).
    public var pipeline: PipelineLink?
    /// x rows received from the previous stage (made on first use).
    private var pipelineRows: UnsafeMutablePointer<Float>?
    private(set) var logits: UnsafeMutablePointer<Float>
    private var logitsCapacity: Int
    private var owned: [UnsafeMutablePointer<Float>] = []

    /// Positions per KV page (DS_KV_PAGE_TOKENS overrides; a page as long as the context is the
    /// contiguous layout, used to measure what paging costs).
    public static let defaultPageTokens: Int = {
        if let v = getenv("DS_KV_PAGE_TOKENS"), let n = Int(String(cString: v)), n > 0 { return n }
        return 32
    }()

    /// Buffers for batches of up to maxBatch tokens and a KV sequence of up to contextLength positions,
    /// in `kvPool` (shared with other sessions of the model: prefix pages are reused across them) or,
    /// when nil, in a private pool of `kvType` just large enough. `workers`: the worker threads of another
    /// state that never runs at the same time as this one (a draft model's and its target's), else new ones.
    public init(model: TransformerModel, contextLength: Int, maxBatch: Int = 512, threads: Int, kvType: KVType = .f32,
                kvPool: KVPagePool? = nil, workers: WorkerPool? = nil, backend: BackendProvider? = nil) {
        self.maxBatch = max(1, maxBatch)
        let ctx = max(1, contextLength)
        let shape = model.kvShape(type: kvPool?.shape.type ?? kvType)
        precondition(model.kvTypeProblem(shape.type) == nil, model.kvTypeProblem(shape.type) ?? "")
        let pageTokens = InferenceState.defaultPageTokens
        let pages = kvPool ?? KVPagePool(shape: shape, pageTokens: pageTokens,
                                         capacity: KVPagePool.pagesNeeded(shape, positions: ctx, batch: self.maxBatch, pageTokens: pageTokens))
        precondition(pages.shape == shape, "KV pool shape \(pages.shape) does not fit the model (\(shape))")
        cache = KVSequence(pool: pages, maxPositions: ctx)
        pool = workers ?? WorkerPool(threads: threads)
        let b = self.maxBatch
        var owned: [UnsafeMutablePointer<Float>] = []
        func alloc(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            owned.append(p)
            return p
        }
        let a = model.body.activations
        x = alloc(b * a.embedding); xn = alloc(b * a.normed)
        q = alloc(b * a.query); k = alloc(b * a.key); v = alloc(b * a.value)
        att = alloc(b * a.attention)
        o = alloc(b * a.embedding); gate = alloc(b * a.feedForward); up = alloc(b * a.feedForward)
        ropeGlobal = alloc(b * a.ropeTable)
        ropeSliding = alloc(b * a.ropeTable)
        positions = .allocate(capacity: b)
        rowSegment = .allocate(capacity: b)
        attention = AttentionWorkspace(pool: pool, contextLength: ctx, groupSize: a.groupSize, widestKey: a.widestKey,
                                       widestValue: a.widestValue, heads: a.heads)
        let cpu = CPUBackend(pool: pool, attention: attention)
        ops = backend?.makeBackend(cpu: cpu) ?? cpu
        // The activation rows and the KV pages stay on a device backend's device between ops.
        ops.keepKVOnDevice(pages)
        ops.keepOnDevice([(x, b * a.embedding), (xn, b * a.normed), (q, b * a.query), (k, b * a.key), (v, b * a.value),
                          (att, b * a.attention), (o, b * a.embedding), (gate, b * a.feedForward), (up, b * a.feedForward),
                          (ropeGlobal, b * a.ropeTable), (ropeSliding, b * a.ropeTable)]
            .map { UnsafeMutableRawBufferPointer(start: $0.0, count: max($0.1, 1) * 4) })
        logitsCapacity = 0
        logits = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        self.owned = owned
        stackScratch = model.body.makeScratch(maxBatch: b, threads: pool.threads)
        ops.keepOnDevice(model.body.deviceBuffers(scratch: stackScratch))
        latentExpandedMinimumTokens = a.expandedAttentionMinimumTokens
    }

    deinit {
        for p in owned { p.deallocate() }
        logits.deallocate()
        positions.deallocate()
        rowSegment.deallocate()
        pipelineRows?.deallocate()
    }

    /// Room for the x rows of a chunk from the previous pipeline stage (maxBatch rows of `width`).
    func pipelineInput(rows: Int, width: Int) -> UnsafeMutablePointer<Float> {
        if let pipelineRows { return pipelineRows }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: maxBatch * width)
        p.initialize(repeating: 0, count: maxBatch * width)
        pipelineRows = p
        return p
    }

    /// The stack's scratch as the type its makeScratch made.
    func scratch<S: AnyObject>(_: S.Type) -> S {
        guard let s = stackScratch as? S else { preconditionFailure("this state was made for another layer stack") }
        return s
    }

    func reserveLogits(rows: Int, vocab: Int) {
        let n = rows * vocab
        if n > logitsCapacity {
            logits.deallocate()
            logits = .allocate(capacity: n)
            logitsCapacity = n
        }
    }

    /// Position of the next token.
    public var position: Int { cache.count }

    /// Token-independent work of a batch runs on the pool (serially for a few tokens).
    func perToken(_ T: Int, _ body: (Int) -> Void) {
        if T < 4 { for t in 0..<T { body(t) }; return }
        pool.parallelFor(T) { r in for t in r { body(t) } }
    }
}
