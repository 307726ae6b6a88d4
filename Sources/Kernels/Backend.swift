// The op interface: what a layer stack runs, in batch-sized operations (a product over every row of a
// batch, a norm over every row or head of it, attention of a segment's queries), never one kernel
// call per element. The CPU backend (CPUBackend.swift) runs today's kernels; GPU backends implement
// the same protocol and one op test suite (Tests/KernelsTests/BackendOpTests.swift) runs against
// every backend present, each against the scalar reference.
//
// Buffers are host pointers to F32 rows. A GPU backend keeps what is hot on its device (weights it was
// given to hold, copies of a session's activation buffers) and moves bytes between host and device only
// where the other side needs them: a stack that declares its host accesses (hostAccess()) lets it record a
// pass's ops and submit once per access. Numeric modes (ProductMode) and every shape are call parameters,
// never state of the backend.

import KVCache

/// `rows` rows of `width` floats, `stride` floats apart (stride ≥ width).
public struct RowBlock {
    public var base: UnsafeMutablePointer<Float>
    public var rows: Int
    public var width: Int
    public var stride: Int

    public init(_ base: UnsafeMutablePointer<Float>, rows: Int, width: Int, stride: Int? = nil) {
        self.base = base; self.rows = rows; self.width = width; self.stride = stride ?? width
    }

    /// Row r.
    @inline(__always) public func row(_ r: Int) -> UnsafeMutablePointer<Float> { base + r * stride }
}

/// The activation of a gated FFN: gate ← act(gate) ⊙ up.
public enum GateActivation: Sendable, Equatable {
    /// silu(gate) ⊙ up
    case swiglu
    /// gelu_tanh(gate) ⊙ up
    case geglu
    /// silu(min(gate, limit)) ⊙ clamp(up, −limit, limit)   (DeepSeek V4's experts)
    case swigluClamped(limit: Float)
}

/// One gated product of a grouped multiply: gate and up of the same rows, then the activation, the
/// result left in gate's output (rows `gate.weights.rows` floats apart).
public struct GatedProduct {
    public var gate: MatmulJob
    public var up: MatmulJob
    public var activation: GateActivation
    public init(gate: MatmulJob, up: MatmulJob, activation: GateActivation) {
        precondition(gate.weights.rows == up.weights.rows && gate.tokens == up.tokens && gate.firstInputRow == up.firstInputRow,
                     "gate and up of a gated product cover the same rows")
        self.gate = gate; self.up = up; self.activation = activation
    }
}

/// One sequence's rows offset ..< offset + count of a batch and its recurrent state buffers.
public struct RecurrentSegment {
    public var offset: Int
    public var count: Int
    /// Conv state [kernel − 1, channels], oldest first.
    public var conv: UnsafeMutablePointer<Float>
    /// Delta-rule state [valueHeads, stateSize, stateSize].
    public var delta: UnsafeMutablePointer<Float>
    public init(offset: Int, count: Int, conv: UnsafeMutablePointer<Float>, delta: UnsafeMutablePointer<Float>) {
        self.offset = offset; self.count = count; self.conv = conv; self.delta = delta
    }
}

/// The inputs of the gated delta rule for T rows: rows [T, channels] hold [q (keyHeads · S) | k | v
/// (valueHeads · S)] after the conv and the q/k L2 norms; value head j reads key head j mod keyHeads.
public struct DeltaRuleInput {
    public var rows: UnsafePointer<Float>
    public var channels: Int
    public var keyHeads: Int
    public var valueHeads: Int
    public var stateSize: Int
    /// [T, valueHeads] logits of the decay (softplus with dtBias, times decay) and of β (sigmoid).
    public var alpha: UnsafePointer<Float>
    public var betaLogits: UnsafePointer<Float>
    /// [T, valueHeads · S] the output gate z; the output o [T, valueHeads · S].
    public var gate: UnsafePointer<Float>
    public var out: UnsafeMutablePointer<Float>
    /// [valueHeads] dt bias and decay (−exp(A_log)); [S] the output norm's weight.
    public var dtBias: UnsafePointer<Float>
    public var decay: UnsafePointer<Float>
    public var norm: UnsafePointer<Float>
    public var epsilon: Float
    /// Scratch: S floats per (segment, value head).
    public var scratch: UnsafeMutablePointer<Float>
    public init(rows: UnsafePointer<Float>, channels: Int, keyHeads: Int, valueHeads: Int, stateSize: Int, alpha: UnsafePointer<Float>,
                betaLogits: UnsafePointer<Float>, gate: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, dtBias: UnsafePointer<Float>,
                decay: UnsafePointer<Float>, norm: UnsafePointer<Float>, epsilon: Float, scratch: UnsafeMutablePointer<Float>) {
        self.rows = rows; self.channels = channels; self.keyHeads = keyHeads; self.valueHeads = valueHeads; self.stateSize = stateSize
        self.alpha = alpha; self.betaLogits = betaLogits; self.gate = gate; self.out = out; self.dtBias = dtBias; self.decay = decay
        self.norm = norm; self.epsilon = epsilon; self.scratch = scratch
    }
}

/// Sees the inputs of products as they run (the importance-matrix collector): rows X[count, cols] that
/// `weights` multiplies. Called on the thread that runs the forward pass, before the product.
public protocol ProductObserver: AnyObject {
    func observe(_ weights: WeightMatrix, rows: UnsafePointer<Float>, count: Int, cols: Int)
}

public protocol Backend: AnyObject, Sendable {
    /// "cpu", "vulkan", "cuda": for logs and test names.
    var name: String { get }

    // MARK: Products  Y[t, r] = Σ_c W[r, c] · X[t, c]

    /// Job i: W_i applied to rows firstInputRow_i ..< +tokens_i of X[inputRows, cols], results at output_i.
    func multiply(_ jobs: [MatmulJob], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode)

    /// Gated FFN products over X[inputRows, cols]: for each pair G = W_gate · X, U = W_up · X, then
    /// G ← activation(G, U) (the dense FFN: one pair over every row; MoE: one pair per expert).
    func multiplyGated(_ products: [GatedProduct], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode)

    // MARK: Rows

    /// out[r] = x[r] / sqrt(mean(x[r]²) + ε) · weight   (weight nil: none; out may be x).
    func rmsNorm(_ x: RowBlock, weight: UnsafePointer<Float>?, into out: RowBlock, epsilon: Float)

    /// out[r] = (x[r] − mean) / sqrt(var + ε) · weight + bias   (out may be x).
    func layerNorm(_ x: RowBlock, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, into out: RowBlock, epsilon: Float)

    /// y[r] += x[r]
    func add(_ x: RowBlock, into y: RowBlock)

    /// y[r] += v for every row (a bias).
    func addToRows(_ v: UnsafePointer<Float>, _ y: RowBlock)

    /// y[r] ·= factors[r]
    func scaleRows(_ y: RowBlock, by factors: UnsafePointer<Float>)

    /// y ·= factor elementwise.
    func scale(_ y: RowBlock, by factor: Float)

    /// y = (y + x · xScale) · scale elementwise (Gemma 4's per-layer inputs).
    func addScaled(_ x: RowBlock, times xScale: Float, into y: RowBlock, thenScale scale: Float)

    /// gate ← activation(gate, up) elementwise (a gated activation of two computed buffers).
    func gatedActivation(_ activation: GateActivation, gate: RowBlock, up: RowBlock)

    /// y ·= σ(gate) elementwise (gated attention).
    func multiplyBySigmoid(_ y: RowBlock, gate: RowBlock)

    /// Every row split in chunks of `chunk` floats, each ← chunk / sqrt(Σ chunk² + ε) · scale.
    func l2Normalize(_ x: RowBlock, chunk: Int, epsilon: Float, scale: Float)

    // MARK: Recurrent state

    /// Per segment: its rows of x [T, C] ← silu(causal depthwise conv over [its conv state (kernel − 1
    /// rows) ; its rows]) with taps [kernel, C]; the state keeps the last kernel − 1 inputs. window:
    /// scratch of (kernel − 1 + T) · C floats.
    func causalConvSilu(_ x: RowBlock, segments: [RecurrentSegment], taps: UnsafePointer<Float>, kernel: Int,
                        window: UnsafeMutablePointer<Float>)

    /// The gated delta rule (Gated DeltaNet) over each segment's rows in order, value heads independent:
    /// S ← e^g S;  δ = β (v − Sᵀk);  S += k δᵀ;  o = Sᵀq, then o ← rmsnorm(o) ⊙ silu(z).
    func gatedDeltaRule(_ p: DeltaRuleInput, segments: [RecurrentSegment])

    /// y = cap · tanh(y / cap) elementwise (logit softcapping).
    func softcap(_ y: RowBlock, cap: Float)

    /// out[i] = W[indices[i]] (dequantized) · scale (nil: none): token embeddings.
    func gatherRows(_ w: WeightMatrix, indices: UnsafePointer<Int32>, into out: RowBlock, scale: Float?)

    // MARK: Positions

    /// Rotates `heads` vectors of headDim floats (rope.dimensions of them rotated) in every row of x,
    /// row r by the cos/sin table at tables + r · tableStride (Rope.fill).
    func rotate(_ x: RowBlock, heads: Int, headDim: Int, rope: Rope, tables: UnsafePointer<Float>, tableStride: Int)

    // MARK: The KV cache

    /// Row t of k and v into layer `layer` of caches[segmentOfRow[t]] at position positions[t] (each
    /// sequence's pages prepared for writing).
    func storeKV(layer: Int, k: RowBlock, v: RowBlock, positions: UnsafePointer<Int>, segmentOfRow: UnsafePointer<Int32>,
                 caches: [KVSequence])

    /// The KV pages a session's sequences live in: a device backend keeps a copy of them in its memory and
    /// attends there (rows written on the host are taken again by their pages' write generations). The CPU:
    /// nothing.
    func keepKVOnDevice(_ pool: KVPagePool)

    // MARK: Attention

    /// out[t, h] = Σ_j softmax_j(scale · q[t,h]·K[j]ᵀ) V[j] over the positions the span shows to
    /// startPosition + t; prompt: the block kernel (a row's result independent of the batch); false: each
    /// row exactly as if it were the only one (decode rows, drafted tokens being verified); nil: chosen
    /// by the number of rows.
    func attend(_ layout: Attention.Layout, tokens: Int, startPosition: Int, span: AttentionSpan, scale: Float, softcap: Float,
                prompt: Bool?)

    /// The decode steps of several sequences (one token each, same layer and span), each exactly as its
    /// own attend call with prompt false would compute it, in one dispatch.
    func attendDecodeSteps(_ steps: UnsafeBufferPointer<DecodeStep>, span: AttentionSpan, scale: Float, softcap: Float)

    /// Sparse attention: token t attends to the counts[t] cache rows rows[t · rowStride ..< +counts[t]]
    /// (Attention.selectedRows) instead of a span.
    func attendSelected(_ layout: Attention.Layout, tokens: Int, rows: UnsafePointer<Int32>, rowStride: Int,
                        counts: UnsafePointer<Int32>, scale: Float, softcap: Float)

    /// DeepSeek V4's attention over raw recent rows and compressed entries, with sinks
    /// (CompressedAttentionInput).
    func attendCompressed(_ p: CompressedAttentionInput)

    // MARK: Sparse selection and compression

    /// The lightning indexer's top_k positions of every token (IndexerSelection).
    func selectByIndexer(_ p: IndexerSelection)

    /// Pushes T token rows (C [T, rowFloats], Z [T, rowFloats]) through a compressor in order; the entries
    /// of the windows they complete go to entries [n, width]; returns n.
    func compress(_ p: CompressorInput, c: UnsafePointer<Float>, z: UnsafePointer<Float>, tokens: Int, startPosition: Int,
                  into entries: UnsafeMutablePointer<Float>) -> Int

    // MARK: Streams and gathered rows

    /// out[t] = Σ_s weights[t · n + s] · x[t · n + s] over s < n (hyper-connection streams collapsed into
    /// one row; x has out.rows · n rows).
    func weightedSum(_ x: RowBlock, weights: UnsafePointer<Float>, groupSize n: Int, into out: RowBlock)

    /// Hyper-connection update of n streams per token: next[t, k] = post[t, k] · y[t] + Σ_j comb[t, j, k] ·
    /// streams[t, j]   (streams and next: T · n rows; post [T, n]; comb [T, n, n]).
    func mixStreams(_ y: RowBlock, streams: RowBlock, post: UnsafePointer<Float>, comb: UnsafePointer<Float>, streamCount n: Int,
                    into next: RowBlock)

    /// out ← 0, then out[destinations[r]] += weights[r] · x[r] for every row r in order (MoE rows back to
    /// their tokens).
    func scatterAdd(_ x: RowBlock, weights: UnsafePointer<Float>, destinations: UnsafePointer<Int32>, into out: RowBlock)

    // MARK: Passes and the host's access to buffers

    /// Buffers of a session that a device backend keeps a copy of in its memory, so that its ops read and
    /// write them there (InferenceState's activation rows). The CPU: nothing.
    func keepOnDevice(_ buffers: [UnsafeMutableRawBufferPointer])

    /// A forward pass begins. hostAccessDeclared: the stack calls hostAccess() before it reads or writes a
    /// buffer itself, so a device backend may leave results on the device and run what it recorded only
    /// then; false: every op's results are on the host when it returns.
    func passBegins(hostAccessDeclared: Bool)

    /// The host reads or writes buffers itself next (K/V stores, routing, a batch's inputs): a device backend
    /// runs what it recorded, brings its results to the host, and takes the host's bytes again after.
    func hostAccess()

    /// A forward pass ended (between steps): every result is on the host; a device backend may migrate
    /// weights now. Returns false when a device failed during the pass: its results are not whole and the
    /// pass must run again (the backend runs on the CPU from then on). The CPU: nothing, true.
    func passEnded() -> Bool
}

/// Makes the backend a session's layer stacks run on, given the session's CPU backend (which a device
/// backend runs the ops it has no kernel for on). One provider per loaded model and device: what it holds
/// on the device (weights) is shared by the sessions of that model.
public protocol BackendProvider: AnyObject, Sendable {
    /// "vulkan", …
    var name: String { get }
    /// The device, in one line (for the load message).
    var description: String { get }
    func makeBackend(cpu: CPUBackend) -> any Backend
}

extension Backend {
    public func keepKVOnDevice(_ pool: KVPagePool) {}
    public func keepOnDevice(_ buffers: [UnsafeMutableRawBufferPointer]) {}
    public func passBegins(hostAccessDeclared: Bool) {}
    public func hostAccess() {}
    public func passEnded() -> Bool { true }

    /// Y[T, rows] = X[T, cols] · Wᵀ
    public func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, mode: ProductMode) {
        multiply([MatmulJob(weights: w, output: y, firstInputRow: 0, tokens: tokens)], x, inputRows: tokens, cols: w.cols, mode: mode)
    }

    /// Several matrices over the same rows of X (Q/K/V): one dispatch.
    public func multiply(_ items: [(WeightMatrix, UnsafeMutablePointer<Float>)], _ x: UnsafePointer<Float>, tokens: Int, mode: ProductMode) {
        guard let first = items.first?.0 else { return }
        multiply(items.map { MatmulJob(weights: $0.0, output: $0.1, firstInputRow: 0, tokens: tokens) }, x, inputRows: tokens,
                 cols: first.cols, mode: mode)
    }

    /// gate ← activation(W_gate · X, W_up · X) over T rows (up: scratch for W_up · X).
    public func multiplyGated(gate: WeightMatrix, up: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, activation: GateActivation,
                              into gateOut: UnsafeMutablePointer<Float>, scratch upOut: UnsafeMutablePointer<Float>, mode: ProductMode) {
        multiplyGated([GatedProduct(gate: MatmulJob(weights: gate, output: gateOut, firstInputRow: 0, tokens: tokens),
                                    up: MatmulJob(weights: up, output: upOut, firstInputRow: 0, tokens: tokens), activation: activation)],
                      x, inputRows: tokens, cols: gate.cols, mode: mode)
    }
}
