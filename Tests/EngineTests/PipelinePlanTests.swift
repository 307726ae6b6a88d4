// Pipeline stages by bytes and the plan's prediction, on made-up layer sizes.

import DistributedRuns
import Testing

@Suite struct PipelinePlanTests {
    @Test func splitByBytesBalancesWholeLayers() throws {
        // 8 equal layers, a head of two layers' bytes: the last stage takes fewer layers.
        let ranges = try PipelineSplit.byBytes(layerBytes: Array(repeating: 100, count: 8), headBytes: 200, ranks: 2)
        #expect(ranges == [0..<5, 5..<8])
        // Every stage keeps a layer even when one layer outweighs the rest.
        let lopsided = try PipelineSplit.byBytes(layerBytes: [1000, 1, 1], headBytes: 0, ranks: 3)
        #expect(lopsided == [0..<1, 1..<2, 2..<3])
        let whole = try PipelineSplit.byBytes(layerBytes: [5, 5, 5], headBytes: 0, ranks: 1)
        #expect(whole == [0..<3])
        #expect(throws: DistributedError.self) { try PipelineSplit.byBytes(layerBytes: [1, 1], headBytes: 0, ranks: 3) }
    }

    @Test func givenRangesMustTileTheLayers() throws {
        let tiled = try PipelineSplit.given([0..<2, 2..<5], layers: 5)
        #expect(tiled == [0..<2, 2..<5])
        #expect(throws: DistributedError.self) { try PipelineSplit.given([0..<2, 3..<5], layers: 5) }
        #expect(throws: DistributedError.self) { try PipelineSplit.given([0..<2, 2..<4], layers: 5) }
        let parsed = try PipelineSplit.parse("3:7")
        #expect(parsed == 3..<7)
        #expect(throws: DistributedError.self) { try PipelineSplit.parse("7:3") }
    }

    /// Four MoE layers of 100 MB (80 of routed experts; 10 MB read per token, 6 of experts): under 250 MB per
    /// rank one process streams most experts, two ranks stream a share, four none; the link adds its hops.
    @Test func predictionCountsStreamingAndTheLink() throws {
        let mb = 1_000_000
        let layers = Array(repeating: PipelineLayerBytes(tensors: 100 * mb, routedExperts: 80 * mb, readPerToken: 10 * mb, routedReadPerToken: 6 * mb),
                           count: 4)
        let link = LinkMeasurement(peer: 1, latency: 1e-4, bytesPerSecond: 1e9)
        func predict(_ ranks: Int) throws -> PipelinePrediction {
            try PipelinePlanner.predict(layers: layers, embeddingBytes: 0, headBytes: 0, ranks: ranks, budget: 250 * mb,
                                        ramBytesPerSecond: 10e9, storageBytesPerSecond: 1e9, link: link, hiddenBytes: 4096, logitsBytes: 100_000)
        }
        let one = try predict(1), two = try predict(2), four = try predict(4)
        // One process: 400 MB against 250: 150 of 320 MB of experts streamed (47%).
        #expect(abs(one.stages[0].streamedShare - 150.0 / 320) < 1e-9)
        // Two ranks of 200 MB each fit.
        #expect(two.stages.allSatisfy { $0.streamedShare == 0 && !$0.overBudget })
        #expect(four.stages.count == 4 && four.stages.allSatisfy { $0.layers.count == 1 })
        // Stage time: 40 MB from RAM at 10 GB/s = 4 ms alone; one process also waits on storage.
        #expect(one.tokensPerSecond < two.tokensPerSecond)
        #expect(abs(two.linkSeconds - (link.seconds(4096) + link.seconds(100_000))) < 1e-12)
        // A budget below a stage's dense part is flagged.
        let tight = try PipelinePlanner.predict(layers: layers, embeddingBytes: 0, headBytes: 0, ranks: 2, budget: 30 * mb,
                                                ramBytesPerSecond: 10e9, storageBytesPerSecond: 1e9, link: nil, hiddenBytes: 0, logitsBytes: 0)
        #expect(tight.stages.allSatisfy { $0.overBudget })
    }

    /// 100 MB dense (20 read per token) and 600 MB of routed experts (30 read per token) in 10 MoE layers,
    /// 300 MB per rank: one process streams, three ranks hold 300 MB each and read a third of the experts;
    /// each rank sends 10 layers × 2 peers of a 4 KiB row.
    @Test func expertParallelPrediction() {
        let mb = 1_000_000
        let link = LinkMeasurement(peer: 1, latency: 1e-5, bytesPerSecond: 1e9)
        func predict(_ ranks: Int) -> ExpertParallelPrediction {
            ExpertParallelPlanner.predict(denseBytes: 100 * mb, routedBytes: 600 * mb, denseReadPerToken: 20 * mb, routedReadPerToken: 30 * mb,
                                          moeLayers: 10, hiddenBytes: 4096, ranks: ranks, budget: 300 * mb, ramBytesPerSecond: 10e9,
                                          storageBytesPerSecond: 1e9, link: link)
        }
        let one = predict(1), three = predict(3)
        #expect(abs(one.streamedShare - 400.0 / 600) < 1e-9 && one.linkSeconds == 0 && one.sentPerToken == 0)
        #expect(three.heldBytes == 300 * mb && three.streamedShare == 0 && !three.overBudget)
        #expect(three.ramReadPerToken == 30 * mb && three.storageReadPerToken == 0)
        #expect(three.sentPerToken == 10 * 2 * 4096)
        #expect(abs(three.linkSeconds - 10 * 2 * link.seconds(4096)) < 1e-12)
        #expect(three.tokensPerSecond > one.tokensPerSecond)
        let tight = ExpertParallelPlanner.predict(denseBytes: 100 * mb, routedBytes: 600 * mb, denseReadPerToken: 1, routedReadPerToken: 1,
                                                  moeLayers: 1, hiddenBytes: 1, ranks: 3, budget: 50 * mb, ramBytesPerSecond: 1,
                                                  storageBytesPerSecond: 1, link: nil)
        #expect(tight.overBudget)
    }
}
