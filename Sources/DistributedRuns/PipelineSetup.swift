// Setting a pipeline up: every rank tells rank 0 the --layers it was given (or none), rank 0 decides the
// stages (the given ranges, or a split by bytes) and tells every rank.

import Models

public enum PipelineSetup {
    static let tag = 0x5010

    /// Agrees on the stages: every rank's layers. `given`: this rank's --layers.
    public static func agree(_ world: MPIWorld, model: TransformerModel, given: Range<Int>?) throws -> [Range<Int>] {
        if let why = model.pipelineProblem { throw DistributedError(why) }
        let layers = model.layerWeightBytes.count
        var mine: [Int64] = given.map { [Int64($0.lowerBound), Int64($0.upperBound)] } ?? [-1, -1]
        var table = [Int64](repeating: 0, count: 2 * world.size + 1)   // status (0 ok, 1 refused), then ranges
        if world.rank == 0 {
            var asked: [Range<Int>?] = [given]
            for peer in 1..<world.size {
                try mine.withUnsafeMutableBytes { try world.receive(into: $0, from: peer, tag: tag) }
                asked.append(mine[0] < 0 ? nil : Int(mine[0])..<Int(mine[1]))
            }
            var stages: [Range<Int>] = []
            var problem: String?
            do {
                if asked.allSatisfy({ $0 == nil }) {
                    stages = try PipelineSplit.byBytes(layerBytes: model.layerWeightBytes, headBytes: model.headBytes, ranks: world.size)
                } else if asked.allSatisfy({ $0 != nil }) {
                    stages = try PipelineSplit.given(asked.map { $0! }, layers: layers)
                } else {
                    throw DistributedError("--layers is given to some ranks and not others: give it to every rank or none")
                }
            } catch { problem = "\(error)" }
            table[0] = problem == nil ? 0 : 1
            for (i, r) in stages.enumerated() { table[1 + 2 * i] = Int64(r.lowerBound); table[2 + 2 * i] = Int64(r.upperBound) }
            for peer in 1..<world.size { try table.withUnsafeBytes { try world.send($0, to: peer, tag: tag) } }
            if let problem { throw DistributedError(problem) }
        } else {
            try mine.withUnsafeBytes { try world.send($0, to: 0, tag: tag) }
            try table.withUnsafeMutableBytes { try world.receive(into: $0, from: 0, tag: tag) }
            if table[0] != 0 { throw DistributedError("rank 0 refused the pipeline's layers (it says why)") }
        }
        return (0..<world.size).map { Int(table[1 + 2 * $0])..<Int(table[2 + 2 * $0]) }
    }
}
