// How expert parallel shares a MoE model's routed experts out among ranks (ExpertOwners): every expert on
// exactly one rank, the ranks' shares within one expert of each other, the most used experts on different
// ranks, and the table's words read back exactly, a damaged table refused.

import Foundation
import Testing
import Models

@Suite struct ExpertOwnersTests {
    @Test(arguments: [1, 2, 3, 5])
    func everyExpertHasOneRankAndSharesAreEven(ranks: Int) throws {
        let model = try loadModel("deepseekv3", "f32")
        let owners = ExpertOwners.byPopularity(model, ranks: ranks, statistics: [])
        for (layer, f) in model.moeBlocks {
            let row = owners.owner[layer]
            #expect(row.count == f.gate.count)
            let shares = (0..<ranks).map { r in row.filter { Int($0) == r }.count }
            #expect(shares.reduce(0, +) == f.gate.count && shares.max()! - shares.min()! <= 1, "layer \(layer): \(shares)")
            #expect(owners.sharedOwner[layer] >= 0 && Int(owners.sharedOwner[layer]) < ranks, "layer \(layer) has a shared expert")
        }
        // Layers without experts have none to own.
        #expect(owners.owner[0].isEmpty && owners.sharedOwner[0] == -1)
        let total = (0..<ranks).reduce(0) { $0 + owners.count(rank: $1) }
        #expect(total == model.moeBlocks.reduce(0) { $0 + $1.weights.gate.count })
    }

    /// With activation counts, the `ranks` most used experts of a layer go to `ranks` different ranks.
    @Test func popularExpertsAreSpreadOut() throws {
        let model = try loadModel("deepseekv3", "f32")
        let layer = model.moeBlocks[0].layer
        let statistics = [(layer, 5, 900), (layer, 2, 800), (layer, 7, 700), (layer, 0, 10)]
        let owners = ExpertOwners.byPopularity(model, ranks: 3, statistics: statistics)
        #expect(Set([5, 2, 7].map { owners.owner[layer][$0] }).count == 3)
        #expect(owners != ExpertOwners.byPopularity(model, ranks: 3, statistics: []))
    }

    @Test func theTableReadsBackAndADamagedOneIsRefused() throws {
        let model = try loadModel("deepseekv3", "f32")
        let owners = ExpertOwners.byPopularity(model, ranks: 3, statistics: [])
        let words = owners.words
        #expect(ExpertOwners.decode(words) == owners)
        #expect(ExpertOwners.decode([]) == nil)
        #expect(ExpertOwners.decode(Array(words.dropLast())) == nil)
        #expect(ExpertOwners.decode(words + [0]) == nil)
        var badRank = words
        badRank[4] = 3   // a rank past the job's
        #expect(ExpertOwners.decode(badRank) == nil)
        var hugeLayer = words
        hugeLayer[1] = Int32.max
        #expect(ExpertOwners.decode(hugeLayer) == nil)
    }
}
