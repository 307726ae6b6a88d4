// Expert parallel over MPI (--experts-parallel): every rank runs every layer on the rows rank 0 announces
// (the pipeline's step messages, MPIPipelineLink(replicating:)), and each MoE layer's routed experts are
// shared out by ExpertOwners. After a MoE layer each rank sends its partial output rows y_r[T, embd] to
// every other rank (tag 0x5020) and adds the N partials in rank order, so every rank holds the same bits.
// Per MoE layer and row a rank sends (N − 1) · embd floats: the rows' activations instead of cold experts
// read from storage. Setting up: every rank tells rank 0 what it loaded; rank 0 splits the experts (by its
// popularity statistics) and tells every rank the table.

import Foundation
import Models

public final class MPIExpertShard: ExpertShard {
    public let world: MPIWorld
    public let owners: ExpertOwners
    public var rank: Int { world.rank }
    static let partialTag = 0x5020

    /// The other ranks' partials (N − 1 blocks of `capacity` floats) and the sum being formed.
    private var received: UnsafeMutablePointer<Float>?
    private var sum: UnsafeMutablePointer<Float>?
    private var capacity = 0
    private var failure: Error?
    private var broken = false

    /// Bytes this rank sent and seconds it spent in exchanges (waiting included).
    public private(set) var bytesSent = 0
    public private(set) var exchangeSeconds = 0.0
    public private(set) var exchanges = 0

    public init(world: MPIWorld, owners: ExpertOwners) {
        self.world = world; self.owners = owners
    }

    deinit { received?.deallocate(); sum?.deallocate() }

    public func combine(_ rows: UnsafeMutablePointer<Float>, count: Int) {
        guard world.size > 1 else { return }
        guard !broken else {
            rows.update(repeating: 0, count: count)
            if failure == nil { failure = DistributedError("rank \(rank): an earlier exchange of expert outputs failed") }
            return
        }
        let started = Date()
        do {
            try exchange(rows, count: count)
        } catch {
            broken = true
            failure = error
            rows.update(repeating: 0, count: count)
        }
        exchangeSeconds += Date().timeIntervalSince(started)
        exchanges += 1
    }

    /// Receives are posted first, so every rank's sends find them; then rows += the others, in rank order.
    private func exchange(_ rows: UnsafeMutablePointer<Float>, count: Int) throws {
        let n = world.size
        if count > capacity {
            received?.deallocate(); sum?.deallocate()
            received = .allocate(capacity: (n - 1) * count)
            sum = .allocate(capacity: count)
            capacity = count
        }
        guard let received, let sum else { return }
        /// Where rank r's partial is (this rank's own: rows).
        func partial(_ r: Int) -> UnsafeMutablePointer<Float> {
            r == rank ? rows : received + (r < rank ? r : r - 1) * count
        }
        var pending: [MPIWorld.PendingReceive] = []
        for peer in 0..<n where peer != rank {
            pending.append(try world.beginReceive(into: UnsafeMutableRawBufferPointer(start: partial(peer), count: count * 4), from: peer,
                                                  tag: MPIExpertShard.partialTag))
        }
        for peer in 0..<n where peer != rank {
            try world.send(UnsafeRawBufferPointer(start: rows, count: count * 4), to: peer, tag: MPIExpertShard.partialTag)
            bytesSent += count * 4
        }
        for p in pending { try world.complete(p) }
        // y = ((y_0 + y_1) + y_2) + …: the same order, so the same bits, on every rank.
        sum.update(from: partial(0), count: count)
        for r in 1..<n {
            let p = partial(r)
            for i in 0..<count { sum[i] += p[i] }
        }
        rows.update(from: sum, count: count)
    }

    public func takeError() -> Error? {
        defer { failure = nil }
        return failure
    }
}

public enum ExpertParallelSetup {
    static let tag = 0x5021

    /// Every rank reports what it loaded (file size, layers, experts); rank 0 checks they agree, splits the
    /// experts by `statistics` (its own) and sends every rank the table. Returns this rank's shard.
    public static func agree(_ world: MPIWorld, model: TransformerModel, statistics: [(layer: Int, expert: Int, count: Int)]) throws -> MPIExpertShard {
        let experts = model.moeBlocks.reduce(0) { $0 + $1.weights.gate.count }
        let mine: [Int64] = [Int64(model.gguf.fileSize), Int64(model.config.layerCount), Int64(model.moeBlocks.count), Int64(experts)]
        var problem = model.expertParallelProblem
        var words: [Int32] = []
        if world.rank == 0 {
            for peer in 1..<world.size {
                var theirs = [Int64](repeating: 0, count: mine.count)
                try theirs.withUnsafeMutableBytes { try world.receive(into: $0, from: peer, tag: tag) }
                if problem == nil && theirs != mine {
                    problem = "rank \(peer) loaded another model (file size \(theirs[0]), \(theirs[3]) experts) than rank 0 (\(mine[0]), \(mine[3])): every rank loads the same file"
                }
            }
            if problem == nil { words = ExpertOwners.byPopularity(model, ranks: world.size, statistics: statistics).words }
            let header: [Int64] = [problem == nil ? 0 : 1, Int64(words.count)]
            for peer in 1..<world.size {
                try header.withUnsafeBytes { try world.send($0, to: peer, tag: tag) }
                try words.withUnsafeBytes { try world.send($0, to: peer, tag: tag) }
            }
            if let problem { throw DistributedError(problem) }
        } else {
            try mine.withUnsafeBytes { try world.send($0, to: 0, tag: tag) }
            var header: [Int64] = [0, 0]
            try header.withUnsafeMutableBytes { try world.receive(into: $0, from: 0, tag: tag) }
            guard header[1] >= 0, header[1] < 1 << 26 else { throw DistributedError("rank \(world.rank): rank 0 sent an expert table of \(header[1]) words") }
            words = [Int32](repeating: 0, count: Int(header[1]))
            try words.withUnsafeMutableBytes { try world.receive(into: $0, from: 0, tag: tag) }
            if header[0] != 0 { throw DistributedError("rank 0 refused to share out the experts (it says why)") }
        }
        guard let owners = ExpertOwners.decode(words), owners.ranks == world.size else {
            throw DistributedError("rank \(world.rank): the expert table from rank 0 does not fit this model")
        }
        return MPIExpertShard(world: world, owners: owners)
    }
}
