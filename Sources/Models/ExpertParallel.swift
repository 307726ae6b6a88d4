// Expert parallel, the model's side. Every rank runs every layer on the same rows (embedding, attention,
// norms, dense FFNs and KV are replicated), and each MoE layer's routed experts are shared out: rank r runs
// only the (token, expert) pairs whose expert it holds, and the shared experts where it holds them, giving
//   y_r[t] = Σ_{j : chosen_j(t) held by r} w_j · expert_j(x_t)   (+ shared(x_t) on the rank holding them)
// The ranks then exchange the partials and each adds them in rank order, y = ((y_0 + y_1) + y_2) + …, so
// every rank has the same bits and the replicated layers stay identical. A rank reads (and holds in RAM)
// only its own experts. The exchange is the link's (DistributedRuns: MPI).

/// Which rank runs each routed expert and each layer's shared experts: experts by popularity, in turns that
/// go up and down the ranks (0, 1, …, N−1, N−1, …, 0, 0, …, shifted by one rank per MoE layer), so each rank
/// holds ⌊n/N⌋ or ⌈n/N⌉ experts of a layer and about the same share of its traffic, and the ranks holding one
/// more take turns; the shared experts of the k-th MoE layer on rank k mod N.
public struct ExpertOwners: Sendable, Equatable {
    public let ranks: Int
    /// owner[layer][expert]: the rank running it (layers without MoE: empty).
    public private(set) var owner: [[Int32]]
    /// sharedOwner[layer]: the rank running the shared experts (-1: none).
    public private(set) var sharedOwner: [Int32]

    public init(ranks: Int, owner: [[Int32]], sharedOwner: [Int32]) {
        self.ranks = ranks; self.owner = owner; self.sharedOwner = sharedOwner
    }

    /// The split of `model`'s experts over `ranks`, the most used first (`statistics`: activation counts
    /// from earlier runs; none: by id).
    public static func byPopularity(_ model: TransformerModel, ranks: Int, statistics: [(layer: Int, expert: Int, count: Int)]) -> ExpertOwners {
        let layers = max(model.config.layerCount, (model.moeBlocks.map(\.layer).max() ?? -1) + 1)
        var counts: [Int: [Int: Int]] = [:]
        for s in statistics { counts[s.layer, default: [:]][s.expert, default: 0] += s.count }
        var owner = [[Int32]](repeating: [], count: layers), sharedOwner = [Int32](repeating: -1, count: layers)
        for (ordinal, block) in model.moeBlocks.enumerated() where block.layer < layers {
            let n = block.weights.gate.count, used = counts[block.layer] ?? [:]
            let order = (0..<n).sorted { (used[$0] ?? 0, -$0) > (used[$1] ?? 0, -$1) }
            var row = [Int32](repeating: 0, count: n)
            for (turn, expert) in order.enumerated() {
                let round = turn / ranks, place = turn % ranks
                row[expert] = Int32(((round % 2 == 0 ? place : ranks - 1 - place) + ordinal) % ranks)
            }
            owner[block.layer] = row
            if block.weights.shared != nil { sharedOwner[block.layer] = Int32(ordinal % ranks) }
        }
        return ExpertOwners(ranks: ranks, owner: owner, sharedOwner: sharedOwner)
    }

    /// The table as Int32 words (layers, then each layer's expert count and owners, then the shared
    /// owners), for sending; `decode` reads it back, checking every number.
    public var words: [Int32] {
        var w: [Int32] = [Int32(ranks), Int32(owner.count)]
        for row in owner { w.append(Int32(row.count)); w += row }
        return w + sharedOwner
    }

    public static func decode(_ w: [Int32]) -> ExpertOwners? {
        guard w.count >= 2, w[0] >= 1 else { return nil }
        let ranks = Int(w[0]), layers = Int(w[1])
        guard layers >= 0, layers < 1 << 16 else { return nil }
        var at = 2, owner: [[Int32]] = []
        for _ in 0..<layers {
            guard at < w.count else { return nil }
            let n = Int(w[at]); at += 1
            guard n >= 0, at + n <= w.count else { return nil }
            let row = Array(w[at..<(at + n)])
            guard row.allSatisfy({ $0 >= 0 && Int($0) < ranks }) else { return nil }
            owner.append(row); at += n
        }
        guard w.count - at == layers else { return nil }
        let shared = Array(w[at...])
        guard shared.allSatisfy({ $0 >= -1 && Int($0) < ranks }) else { return nil }
        return ExpertOwners(ranks: ranks, owner: owner, sharedOwner: shared)
    }

    /// Experts of each layer rank `rank` runs.
    public func count(rank: Int) -> Int { owner.reduce(0) { $0 + $1.filter { Int($0) == rank }.count } }
}

/// This rank's share of a model's experts and the exchange of the partial outputs.
public protocol ExpertShard: AnyObject {
    var owners: ExpertOwners { get }
    var rank: Int { get }
    /// rows[count] (this rank's partial) becomes the sum of every rank's partial, in rank order. A failure
    /// is kept for takeError (the rows are zeroed, and later calls do nothing until it is taken).
    func combine(_ rows: UnsafeMutablePointer<Float>, count: Int)
    /// The failure of a combine since the last call (nil: none).
    func takeError() -> Error?
}

extension ExpertShard {
    /// Whether this rank runs routed expert `expert` of MoE layer `layer`.
    @inline(__always) public func runs(layer: Int, expert: Int) -> Bool {
        layer < owners.owner.count && expert < owners.owner[layer].count && Int(owners.owner[layer][expert]) == rank
    }

    /// Whether this rank runs the shared experts of `layer`.
    public func runsShared(layer: Int) -> Bool { layer < owners.sharedOwner.count && Int(owners.sharedOwner[layer]) == rank }
}

/// Which experts of one layer run on this rank, looked up without a call through the shard (every one
/// without a shard).
struct ExpertShardRows {
    private let owner: [Int32]?
    private let rank: Int32

    init(_ shard: ExpertShard?, layer: Int, experts: Int) {
        if let shard, layer < shard.owners.owner.count, shard.owners.owner[layer].count == experts {
            owner = shard.owners.owner[layer]
        } else {
            owner = shard == nil ? nil : [Int32](repeating: -1, count: experts)
        }
        rank = Int32(shard?.rank ?? 0)
    }

    subscript(expert: Int) -> Bool { owner.map { $0[expert] == rank } ?? true }
    func callAsFunction(_ expert: Int) -> Bool { self[expert] }
}

extension TransformerModel {
    /// Why this model's experts cannot be shared out across ranks (nil: they can).
    public var expertParallelProblem: String? {
        moeBlocks.isEmpty ? "\(config.architecture) has no routed experts to share out (--experts-parallel is for MoE models; --pipeline splits any model by layers)" : nil
    }

    /// Bytes of the routed experts this process runs (all of them on one process; a pipeline stage's, an
    /// expert-parallel rank's share).
    public var heldExpertBytes: (bytes: Int, count: Int) {
        var bytes = 0, count = 0
        for (layer, f) in moeBlocks {
            for x in f.gate.indices where runsExpert(layer: layer, expert: x) {
                bytes += ExpertCache.expertBytes(f.expertMatrices(x)); count += 1
            }
        }
        return (bytes, count)
    }
}
