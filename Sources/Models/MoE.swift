// Mixture-of-experts FFN, shared by deepseek2, qwen3moe, glm4moe and llama4:
//   logits = W_router · x                                    [experts]
//   probs  = softmax | sigmoid | sqrt(softplus) (logits)     (the gating function)
//   choose = top-k over probs (+ correction bias), optionally only inside the best expert groups
//   w_j    = probs[choose_j] (normalised to sum 1, × scale)
//   y      = Σ_j w_j · down_j(act(gate_j · x) ⊙ up_j · x)  (+ shared experts' FFN of x)
// Llama 4 picks on the raw logits and multiplies the expert *input* by sigmoid(logit) instead.
//
// Execution: the batch's (token, expert) pairs are sorted by expert into one gathered input, shared
// experts appended as one more segment over every token; then one grouped matmul runs gate/up of
// every active expert (SwiGLU applied by the thread that computed the rows), one runs down, and the
// rows are scattered back with their weights. Each active expert's weights are read once per batch.

import GGUF
import Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// llama.cpp's `expert_gating_func` ids.
public enum ExpertGating: Int, Sendable {
    case softmax = 1
    case sigmoid = 2
    /// top-k on the raw logits, softmax over the chosen ones.
    case softmaxWeight = 3
    case sqrtSoftplus = 4
}

public struct MoEConfig: Sendable {
    public var expertCount: Int
    public var expertsUsed: Int
    /// Rows of one expert's gate/up.
    public var expertFeedForward: Int
    /// Rows of the shared experts' gate/up together (0: none).
    public var sharedFeedForward: Int
    public var gating: ExpertGating
    /// Expert-group limited routing (DeepSeek V3): experts split in `groupCount` groups, a group scores
    /// the sum of its best two, only the best `groupsUsed` groups are eligible.
    public var groupCount: Int
    public var groupsUsed: Int
    public var normalizeWeights: Bool
    /// Multiplier on the chosen weights (0 or 1: none).
    public var weightsScale: Float
    /// Choose on the logits and scale the expert's *input* by sigmoid(logit) instead of its output
    /// (Llama 4).
    public var weightsScaleInput: Bool

    /// Reads `<arch>.expert_*` keys; `defaultGating` when the file has no expert_gating_func.
    public static func read(_ gguf: GGUFFile, _ arch: String, defaultGating: ExpertGating, sharedRequired: Bool = false) throws -> MoEConfig {
        let meta = ArchitectureMetadata(gguf, architecture: arch), int = meta.int
        guard let count = int("expert_count"), count > 0 else { throw ModelError.missingMetadata(file: gguf.path, key: "\(arch).expert_count") }
        guard let used = int("expert_used_count"), used > 0, used <= count else {
            throw ModelError.invalidConfig(file: gguf.path, message: "\(arch).expert_used_count must be in 1...\(count)")
        }
        guard let ff = int("expert_feed_forward_length"), ff > 0 else {
            throw ModelError.missingMetadata(file: gguf.path, key: "\(arch).expert_feed_forward_length")
        }
        var gating = defaultGating
        if let id = int("expert_gating_func"), id != 0 {
            guard let g = ExpertGating(rawValue: id) else {
                throw ModelError.invalidConfig(file: gguf.path, message: "\(arch).expert_gating_func = \(id) is not a gating function this build knows (1 softmax, 2 sigmoid, 3 softmax over the chosen, 4 sqrt-softplus)")
            }
            gating = g
        }
        let groups = max(1, int("expert_group_count") ?? 1)
        let groupsUsed = int("expert_group_used_count") ?? groups
        guard count % groups == 0, groupsUsed >= 1, groupsUsed <= groups else {
            throw ModelError.invalidConfig(file: gguf.path, message: "\(arch).expert_group_count = \(groups) / expert_group_used_count = \(groupsUsed) do not fit \(count) experts")
        }
        let shared = int("expert_shared_count") ?? 0
        return MoEConfig(expertCount: count, expertsUsed: used, expertFeedForward: ff, sharedFeedForward: shared * ff,
                         gating: gating, groupCount: groups, groupsUsed: groupsUsed,
                         normalizeWeights: meta["expert_weights_norm"]?.bool ?? false,
                         weightsScale: meta["expert_weights_scale"]?.float ?? 0, weightsScaleInput: false)
    }

    /// Which of the `n` layers are MoE layers (those with a router, ffn_gate_inp), and the shared
    /// experts' width: expert_shared_count × the expert width when given, else the first MoE layer's
    /// shared tensors' (0: no shared expert).
    public mutating func locate(in gguf: GGUFFile, layers n: Int) throws -> [Bool] {
        let layers = (0..<n).map { gguf.tensor(MoETensorName.router($0).name) != nil }
        guard let first = layers.firstIndex(of: true) else {
            throw ModelError.missingTensor(file: gguf.path, name: MoETensorName.router(0).name)
        }
        if let shared = gguf.tensor(MoETensorName.sharedGate(first).name), shared.dims.count == 2 {
            sharedFeedForward = shared.dims[1]
        } else {
            sharedFeedForward = 0
        }
        return layers
    }

    /// Gathered rows of a batch of `tokens`: routed pairs + one shared segment.
    func gatheredRows(tokens: Int) -> Int { tokens * expertsUsed + (sharedFeedForward > 0 ? tokens : 0) }
    var largestFeedForward: Int { max(expertFeedForward, sharedFeedForward) }
}

public struct MoEWeights: @unchecked Sendable {
    /// The block's shape and routing rules.
    public var config: MoEConfig
    /// W_router[experts, embd] and its optional bias.
    public var router: WeightMatrix
    public var routerBias: FloatBuffer?
    /// Added to the scores for choosing only (DeepSeek V3's `e_score_correction_bias`).
    public var correctionBias: FloatBuffer?
    public var gate, up, down: [WeightMatrix]
    public var shared: DenseFFNWeights?
    /// Hash routing (DeepSeek V4's first layers): the experts of token id t are
    /// hashExperts[t·used ..< (t+1)·used]; the router still gives their weights.
    public var hashExperts: Int32Buffer? = nil
    /// Clamped SwiGLU limits of the routed and the shared experts (0: plain SwiGLU).
    public var swigluLimit: Float = 0
    public var sharedSwigluLimit: Float = 0
    /// Per-expert multiplier on the routing weight (Gemma 4's per_expert_scale).
    public var expertScale: FloatBuffer? = nil
    /// Qwen3.5 / Qwen3-Next: the shared experts' output is scaled by sigmoid(w · x) per token (W [1, e]).
    public var sharedGate: WeightMatrix? = nil

    /// Routed expert `x`'s matrices: gate, up, down (the order the expert cache's slots hold them in).
    public func expertMatrices(_ x: Int) -> [WeightMatrix] { [gate[x], up[x], down[x]] }

    /// Bytes one token reads: router, the experts it uses, shared experts.
    func bytesPerToken() -> Int {
        let used = config.expertsUsed
        func bytes(_ m: WeightMatrix) -> Int { m.rows * m.rowBytes }
        var total = bytes(router)
        if let g = gate.first, let u = up.first, let d = down.first { total += used * (bytes(g) + bytes(u) + bytes(d)) }
        if let s = shared { total += bytes(s.gate) + bytes(s.up) + bytes(s.down) }
        return total
    }
}

extension WeightReader {
    func moe(_ l: Int, _ c: ModelConfig, _ m: MoEConfig) throws -> MoEWeights {
        let e = c.embeddingLength, n = m.expertCount, ff = m.expertFeedForward
        let gate: [WeightMatrix], up: [WeightMatrix]
        if has(MoETensorName.gateUpExperts(l).name) {
            let name = MoETensorName.gateUpExperts(l).name
            gate = try experts(name, count: n, rows: ff, cols: e, storedRows: 2 * ff, rowOffset: 0)
            up = try experts(name, count: n, rows: ff, cols: e, storedRows: 2 * ff, rowOffset: ff)
        } else {
            gate = try experts(MoETensorName.gateExperts(l).name, count: n, rows: ff, cols: e)
            up = try experts(MoETensorName.upExperts(l).name, count: n, rows: ff, cols: e)
        }
        var shared: DenseFFNWeights? = nil
        if m.sharedFeedForward > 0 {
            let sf = m.sharedFeedForward
            shared = DenseFFNWeights(gate: try matrix(named: MoETensorName.sharedGate(l).name, rows: sf, cols: e),
                                     up: try matrix(named: MoETensorName.sharedUp(l).name, rows: sf, cols: e),
                                     down: try matrix(named: MoETensorName.sharedDown(l).name, rows: e, cols: sf))
        }
        return MoEWeights(
            config: m,
            router: try matrix(named: MoETensorName.router(l).name, rows: n, cols: e),
            routerBias: try optionalVector(named: MoETensorName.routerBias(l).name, count: n),
            correctionBias: try optionalVector(named: MoETensorName.correctionBias(l).name, count: n),
            gate: gate, up: up,
            down: try experts(MoETensorName.downExperts(l).name, count: n, rows: e, cols: ff),
            shared: shared)
    }
}

/// Per-session MoE buffers, sized for the largest batch.
final class MoEScratch {
    let logits: UnsafeMutablePointer<Float>      // [T, experts]
    let scores: UnsafeMutablePointer<Float>      // [experts] selection scores of one token
    let chosen: UnsafeMutablePointer<Int32>      // [T, used]
    let chosenWeight: UnsafeMutablePointer<Float> // [T, used]
    let counts: UnsafeMutablePointer<Int>        // [experts + 1]
    let offsets: UnsafeMutablePointer<Int>       // [experts + 1]
    let rowToken: UnsafeMutablePointer<Int32>    // [rows] token of each gathered row
    let rowWeight: UnsafeMutablePointer<Float>   // [rows] weight applied to its output
    let input: UnsafeMutablePointer<Float>       // [rows, embd]
    let gate: UnsafeMutablePointer<Float>        // [rows, ff]
    let up: UnsafeMutablePointer<Float>          // [rows, ff]
    let output: UnsafeMutablePointer<Float>      // [rows, embd]
    let sharedGate: UnsafeMutablePointer<Float>  // [T] logits of the shared experts' gate
    private var owned: [UnsafeMutableRawPointer] = []
    /// The activation rows (router logits, gathered inputs, gate, up, outputs), for a device backend to keep.
    let deviceRows: [UnsafeMutableRawBufferPointer]

    init(config m: MoEConfig, embedding e: Int, maxBatch b: Int) {
        let rows = m.gatheredRows(tokens: b), ff = m.largestFeedForward
        var owned: [UnsafeMutableRawPointer] = []
        func alloc<T>(_ n: Int, _: T.Type) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1) * MemoryLayout<T>.stride, alignment: 64)
            owned.append(p)
            return p.bindMemory(to: T.self, capacity: max(n, 1))
        }
        logits = alloc(b * m.expertCount, Float.self)
        scores = alloc(m.expertCount, Float.self)
        chosen = alloc(b * m.expertsUsed, Int32.self)
        chosenWeight = alloc(b * m.expertsUsed, Float.self)
        counts = alloc(m.expertCount + 1, Int.self)
        offsets = alloc(m.expertCount + 2, Int.self)
        rowToken = alloc(rows, Int32.self)
        rowWeight = alloc(rows, Float.self)
        input = alloc(rows * e, Float.self)
        gate = alloc(rows * ff, Float.self)
        up = alloc(rows * ff, Float.self)
        output = alloc(rows * e, Float.self)
        sharedGate = alloc(b, Float.self)
        self.owned = owned
        func floats(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> UnsafeMutableRawBufferPointer {
            UnsafeMutableRawBufferPointer(start: p, count: max(n, 1) * 4)
        }
        deviceRows = [floats(logits, b * m.expertCount), floats(input, rows * e), floats(gate, rows * ff), floats(up, rows * ff),
                floats(output, rows * e), floats(sharedGate, b)]
    }
    deinit { for p in owned { p.deallocate() } }
}

enum MoEBlock {
    /// Chooses `used` experts for one token from its router logits; writes ids and weights.
    static func route(logits: UnsafeMutablePointer<Float>, config m: MoEConfig, weights w: MoEWeights,
                      scores: UnsafeMutablePointer<Float>, chosen: UnsafeMutablePointer<Int32>, chosenWeight: UnsafeMutablePointer<Float>,
                      hashChoice: UnsafePointer<Int32>? = nil) {
        let n = m.expertCount, k = m.expertsUsed
        if let b = w.routerBias { for i in 0..<n { logits[i] += b.pointer[i] } }
        // probs (written back into logits once the raw values are no longer needed)
        switch m.gating {
        case .softmax:
            var mx = -Float.infinity
            for i in 0..<n { mx = max(mx, logits[i]) }
            var sum: Float = 0
            for i in 0..<n { let v = expf(logits[i] - mx); scores[i] = v; sum += v }
            for i in 0..<n { scores[i] /= sum }
        case .sigmoid:
            for i in 0..<n { scores[i] = 1 / (1 + expf(-logits[i])) }
        case .softmaxWeight:
            for i in 0..<n { scores[i] = logits[i] }
        case .sqrtSoftplus:
            for i in 0..<n { let x = logits[i]; scores[i] = (x > 20 ? x : log1pf(expf(x))).squareRoot() }
        }
        // scores = probs now; logits become the selection scores.
        if m.weightsScaleInput {
            // choose on the raw logits; weight = sigmoid(logit)
        } else if let bias = w.correctionBias {
            for i in 0..<n { logits[i] = scores[i] + bias.pointer[i] }
        } else {
            for i in 0..<n { logits[i] = scores[i] }
        }
        if m.groupCount > 1 && m.groupsUsed < m.groupCount {
            // Group score = sum of its two best selection scores; keep the best `groupsUsed` groups.
            let per = n / m.groupCount, groups = m.groupCount
            withUnsafeTemporaryAllocation(of: Float.self, capacity: groups) { groupScore in
                for g in 0..<groups {
                    var best = -Float.infinity, second = -Float.infinity
                    for i in (g * per)..<((g + 1) * per) {
                        let v = logits[i]
                        if v > best { second = best; best = v } else if v > second { second = v }
                    }
                    groupScore[g] = per >= 2 ? best + second : best
                }
                // Keep the best `groupsUsed` groups: knock out the worst of the rest one by one.
                for _ in 0..<(groups - m.groupsUsed) {
                    var wi = -1
                    for g in 0..<groups where groupScore[g] != .infinity && (wi < 0 || groupScore[g] < groupScore[wi]) { wi = g }
                    groupScore[wi] = .infinity
                    for i in (wi * per)..<((wi + 1) * per) { logits[i] = -.infinity }
                }
            }
        }
        // top-k by selection score (ties: lower id first), or the token's hashed experts
        if let hashChoice {
            for j in 0..<k { chosen[j] = hashChoice[j]; chosenWeight[j] = scores[Int(hashChoice[j])] }
        }
        for j in 0..<k where hashChoice == nil {
            var bi = -1
            for i in 0..<n {
                var taken = false
                for p in 0..<j where chosen[p] == Int32(i) { taken = true; break }
                if taken { continue }
                if bi < 0 || logits[i] > logits[bi] { bi = i }
            }
            chosen[j] = Int32(bi)
            chosenWeight[j] = m.weightsScaleInput ? 1 / (1 + expf(-logits[bi])) : scores[bi]
        }
        if m.gating == .softmaxWeight {
            var mx = -Float.infinity
            for j in 0..<k { mx = max(mx, chosenWeight[j]) }
            var sum: Float = 0
            for j in 0..<k { chosenWeight[j] = expf(chosenWeight[j] - mx); sum += chosenWeight[j] }
            for j in 0..<k { chosenWeight[j] /= sum }
        }
        if m.normalizeWeights {
            var sum: Float = 0
            for j in 0..<k { sum += chosenWeight[j] }
            sum = max(sum, 6.103515625e-5)
            for j in 0..<k { chosenWeight[j] /= sum }
        }
        if m.weightsScale != 0 && m.weightsScale != 1 { for j in 0..<k { chosenWeight[j] *= m.weightsScale } }
        if let es = w.expertScale { for j in 0..<k { chosenWeight[j] *= es.pointer[Int(chosen[j])] } }
    }

    /// out[t] = MoE(xn[t]) for t < T (overwrites out). With an expert cache, routed experts of `layer`
    /// are read into its slots (in waves when more are active than it has slots).
    static func forward(_ xn: UnsafeMutablePointer<Float>, tokens T: Int, into out: UnsafeMutablePointer<Float>,
                        weights w: MoEWeights, embedding e: Int, activation: FFNActivation,
                        scratch s: MoEScratch, ops: any Backend, mode: ProductMode, layer: Int = 0, cache: ExpertCache? = nil,
                        predictNext: (layer: Int, weights: MoEWeights)? = nil, tokenIDs: UnsafePointer<Int32>? = nil,
                        routerInput: UnsafePointer<Float>? = nil, shard: ExpertShard? = nil) {
        let m = w.config, n = m.expertCount, k = m.expertsUsed
        ops.multiply(w.router, routerInput ?? UnsafePointer(xn), tokens: T, into: s.logits, mode: mode)
        // Routing, the gathered rows and the shared rows are the host's work (reading the logits and xn).
        ops.hostAccess()
        for t in 0..<T {
            let hashed = w.hashExperts.flatMap { table in tokenIDs.map { UnsafePointer(table.pointer) + Int($0[t]) * k } }
            route(logits: s.logits + t * n, config: m, weights: w, scores: s.scores,
                  chosen: s.chosen + t * k, chosenWeight: s.chosenWeight + t * k, hashChoice: hashed)
        }
        cache?.recordActual(layer: layer, experts: Set((0..<(T * k)).map { Int(s.chosen[$0]) }))
        // Sort the (token, expert) pairs by expert: counting sort. Expert parallel: only the pairs of this
        // rank's experts (the others' counts stay 0).
        let runsHere = ExpertShardRows(shard, layer: layer, experts: n)
        for x in 0...n { s.counts[x] = 0 }
        for p in 0..<(T * k) where runsHere[Int(s.chosen[p])] { s.counts[Int(s.chosen[p])] += 1 }
        s.offsets[0] = 0
        for x in 0..<n { s.offsets[x + 1] = s.offsets[x] + s.counts[x]; s.counts[x] = 0 }
        for t in 0..<T {
            for j in 0..<k {
                let x = Int(s.chosen[t * k + j])
                if !runsHere[x] { continue }
                let row = s.offsets[x] + s.counts[x]
                s.counts[x] += 1
                s.rowToken[row] = Int32(t)
                s.rowWeight[row] = s.chosenWeight[t * k + j]
                let src = xn + t * e, dst = s.input + row * e
                if m.weightsScaleInput {
                    let g = s.rowWeight[row]
                    for i in 0..<e { dst[i] = src[i] * g }
                    s.rowWeight[row] = 1
                } else {
                    dst.update(from: src, count: e)
                }
            }
        }
        let routedRows = s.offsets[n]
        let shared = shard.map { $0.runsShared(layer: layer) } ?? true ? w.shared : nil
        if shared != nil {
            (s.input + routedRows * e).update(from: xn, count: T * e)
            for t in 0..<T { s.rowToken[routedRows + t] = Int32(t); s.rowWeight[routedRows + t] = 1 }
            if let gate = w.sharedGate {
                ops.multiply(gate, xn, tokens: T, into: s.sharedGate, mode: mode)
                ops.hostAccess()
                for t in 0..<T { s.rowWeight[routedRows + t] = 1 / (1 + expf(-s.sharedGate[t])) }
            }
        }
        let totalRows = routedRows + (shared != nil ? T : 0)

        // Active experts, in waves that fit the expert cache's slots (one wave when all are resident).
        var active: [Int] = []
        for x in 0..<n where s.offsets[x + 1] > s.offsets[x] { active.append(x) }
        guard let cache else {
            runExperts(active, active.map { (w.gate[$0], w.up[$0], w.down[$0]) }, shared: shared, tokens: T, routedRows: routedRows,
                       totalRows: totalRows, config: m, embedding: e, activation: activation, limits: (w.swigluLimit, w.sharedSwigluLimit),
                       scratch: s, ops: ops, mode: mode)
            scatter(into: out, rows: totalRows, tokens: T, embedding: e, scratch: s, ops: ops)
            combine(out, tokens: T, embedding: e, shard: shard, ops: ops)
            return
        }
        let waveSize = max(1, cache.slots)
        var waveStart = 0
        repeat {
            let wave = Array(active[waveStart..<min(active.count, waveStart + waveSize)])
            let slots = cache.request(layer: layer, experts: wave.map { ($0, w.expertMatrices($0)) })
            if waveStart == 0, let next = predictNext {
                // Behind this layer's reads: the experts the next MoE layer is expected to use.
                let predicted = predictExperts(next.weights, input: xn, tokens: T, config: m, scratch: s, ops: ops, mode: mode)
                    .filter(ExpertShardRows(shard, layer: next.layer, experts: n).callAsFunction)
                cache.recordPrediction(layer: next.layer, experts: Set(predicted))
                cache.prefetch(layer: next.layer, experts: predicted.map { ($0, next.weights.expertMatrices($0)) })
            }
            // Each expert runs as soon as its read is done (the shared experts first, while reads go on).
            var pending = Array(wave.indices)
            var sharedNow = waveStart == 0 ? shared : nil
            while !pending.isEmpty || sharedNow != nil {
                let done = Set(cache.ready(pending.map { slots[$0].slot }, block: sharedNow == nil))
                let now = pending.filter { done.contains(slots[$0].slot) }
                pending.removeAll { done.contains(slots[$0].slot) }
                runExperts(now.map { wave[$0] }, now.map { (slots[$0].views[0], slots[$0].views[1], slots[$0].views[2]) },
                           shared: sharedNow, tokens: T, routedRows: routedRows, totalRows: totalRows, config: m, embedding: e,
                           activation: activation, limits: (w.swigluLimit, w.sharedSwigluLimit), scratch: s, ops: ops, mode: mode)
                sharedNow = nil
            }
            cache.unpinAll()
            waveStart += waveSize
        } while waveStart < active.count
        scatter(into: out, rows: totalRows, tokens: T, embedding: e, scratch: s, ops: ops)
        combine(out, tokens: T, embedding: e, shard: shard, ops: ops)
    }

    /// Expert parallel: out (this rank's partial sums) becomes every rank's partials added in rank order.
    private static func combine(_ out: UnsafeMutablePointer<Float>, tokens T: Int, embedding e: Int, shard: ExpertShard?, ops: any Backend) {
        guard let shard else { return }
        ops.hostAccess()
        shard.combine(out, count: T * e)
    }

    /// The experts the next MoE layer (`next`) is expected to use: its router on this layer's input,
    /// top-k per token, the experts most tokens chose first. Overwrites `s.logits` (this layer's routing
    /// is done with it).
    private static func predictExperts(_ next: MoEWeights, input xn: UnsafeMutablePointer<Float>, tokens T: Int, config m: MoEConfig,
                                       scratch s: MoEScratch, ops: any Backend, mode: ProductMode) -> [Int] {
        let n = m.expertCount, k = m.expertsUsed
        ops.multiply(next.router, xn, tokens: T, into: s.logits, mode: mode)
        ops.hostAccess()
        var votes = [Int](repeating: 0, count: n)
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: k) { chosen in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: k) { weight in
                for t in 0..<T {
                    route(logits: s.logits + t * n, config: m, weights: next, scores: s.scores, chosen: chosen.baseAddress!, chosenWeight: weight.baseAddress!)
                    for j in 0..<k { votes[Int(chosen[j])] += 1 }
                }
            }
        }
        return (0..<n).filter { votes[$0] > 0 }.sorted { (votes[$0], -$0) > (votes[$1], -$1) }
    }

    /// out[t] = Σ weight · expert output (+ shared) over the gathered rows of token t.
    private static func scatter(into out: UnsafeMutablePointer<Float>, rows totalRows: Int, tokens T: Int, embedding e: Int, scratch s: MoEScratch,
                                ops: any Backend) {
        ops.scatterAdd(RowBlock(s.output, rows: totalRows, width: e), weights: s.rowWeight, destinations: s.rowToken,
                       into: RowBlock(out, rows: T, width: e))
    }

    /// gate/up of the given experts (and the shared one) in one dispatch, the thread that computed rows r
    /// of an expert's up applying the activation to them for every token of that expert; then down.
    private static func runExperts(_ wave: [Int], _ experts: [(gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix)],
                                   shared: DenseFFNWeights?, tokens T: Int, routedRows: Int, totalRows: Int, config m: MoEConfig,
                                   embedding e: Int, activation: FFNActivation, limits: (routed: Float, shared: Float),
                                   scratch s: MoEScratch, ops: any Backend, mode: ProductMode) {
        let ff = m.expertFeedForward
        /// The activation of experts with SwiGLU clamp `limit` (0: none).
        func gated(_ limit: Float) -> GateActivation {
            limit > 0 ? .swigluClamped(limit: limit) : activation == .silu ? .swiglu : .geglu
        }
        var products: [GatedProduct] = [], downJobs: [MatmulJob] = []
        products.reserveCapacity(wave.count + 1)
        for (x, weights) in zip(wave, experts) {
            let first = s.offsets[x], count = s.offsets[x + 1] - first
            products.append(GatedProduct(gate: MatmulJob(weights: weights.gate, output: s.gate + first * ff, firstInputRow: first, tokens: count),
                                         up: MatmulJob(weights: weights.up, output: s.up + first * ff, firstInputRow: first, tokens: count),
                                         activation: gated(limits.routed)))
            downJobs.append(MatmulJob(weights: weights.down, output: s.output + first * e, firstInputRow: first, tokens: count))
        }
        // The shared segment's rows are laid out with its own width (its ff may differ from experts').
        let sharedFF = m.sharedFeedForward
        if let sh = shared {
            let g = s.gate + routedRows * ff, u = s.up + routedRows * ff
            products.append(GatedProduct(gate: MatmulJob(weights: sh.gate, output: g, firstInputRow: routedRows, tokens: T),
                                         up: MatmulJob(weights: sh.up, output: u, firstInputRow: routedRows, tokens: T),
                                         activation: gated(limits.shared)))
        }
        guard !products.isEmpty else { return }
        ops.multiplyGated(products, s.input, inputRows: totalRows, cols: e, mode: mode)
        // down: routed rows have width ff in s.gate, the shared rows (from routedRows · ff on) sharedFF.
        if let sh = shared, sharedFF == ff {
            downJobs.append(MatmulJob(weights: sh.down, output: s.output + routedRows * e, firstInputRow: routedRows, tokens: T))
            ops.multiply(downJobs, s.gate, inputRows: totalRows, cols: ff, mode: mode)
        } else {
            if !downJobs.isEmpty { ops.multiply(downJobs, s.gate, inputRows: routedRows, cols: ff, mode: mode) }
            if let sh = shared {
                ops.multiply(sh.down, s.gate + routedRows * ff, tokens: T, into: s.output + routedRows * e, mode: mode)
            }
        }
    }
}
