// MTP / next-n drafting (--spec mtp) on fixtures with a next-n layer appended (SyntheticModel.appendNextN:
// glm4moe with standard attention, deepseek2 with MLA): the trunk is untouched by the extra block,
// greedy output is token for token the plain decoder's while drafts are made and verified, and a model
// without the layer is refused with a clear message. No real model with MTP weights fits here, so the
// acceptance rate of a trained layer is not measured.

import Foundation
import Testing
import GGUF
import Synthesis
import Engine

@Suite struct MTPTests {
    static func withNextN(_ architecture: String, _ body: (LoadedModel, LoadedModel) throws -> Void) throws {
        let dir = try syntheticTempDirectory("nextn-" + architecture)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = SpeculationTests.fixture("\(architecture).f32.gguf")
        let path = dir.appendingPathComponent("\(architecture)-nextn.gguf").path
        try SyntheticModel.appendNextN(to: try GGUFFile(path: source), writing: path)
        try body(try LoadedModel(path: path), try LoadedModel(path: source))
    }

    @Test(arguments: ["glm4moe", "deepseekv3"])
    func trunkIsUnchangedAndTheLayerLoads(architecture: String) throws {
        try Self.withNextN(architecture) { withLayer, original in
            #expect(withLayer.model.config.layerCount == original.model.config.layerCount)
            #expect(withLayer.model.config.nextNLayers == 1)
            #expect(try withLayer.model.nextNHead() != nil)
            #expect(try original.model.nextNHead() == nil)
            let prompt: [Int32] = [1, 5, 9, 5, 9, 12, 40]
            let sessionA = Session(withLayer, contextLength: 64, threads: 1), sessionB = Session(original, contextLength: 64, threads: 1)
            let a = try sessionA.evaluate(prompt).logits.map(\.bitPattern)
            let b = try sessionB.evaluate(prompt).logits.map(\.bitPattern)
            #expect(a == b, "the next-n block must not change the trunk's logits")
        }
    }

    @Test(arguments: ["glm4moe", "deepseekv3"])
    func greedyOutputIsUnchangedWithMTPDrafts(architecture: String) throws {
        try Self.withNextN(architecture) { loaded, _ in
            let prompt: [Int32] = [1, 5, 9, 5, 9, 5, 9, 12, 5, 9]
            for draftMax in [1, 3, 8] {
                let (plain, speculative) = try SpeculationTests.compare(loaded, prompt: prompt, tokens: 40,
                                                                         speculation: SpeculationOptions(mode: .mtp, draftMax: draftMax))
                #expect(speculative.tokens == plain.tokens, "\(architecture), MTP drafts of up to \(draftMax)")
                let stats = try #require(speculative.speculation)
                #expect(stats.disabledReason == nil && stats.passes > 0 && stats.drafted > 0, "\(architecture): \(stats.summary)")
            }
            // A second turn in the same session: the layer was fed the first turn and drafts again.
            let session = Session(loaded, contextLength: 256, threads: 2, batch: 32)
            let options = SpeculationTests.options(24, speculation: SpeculationOptions(mode: .mtp, draftMax: 4))
            let first = try session.generate(prompt: prompt, options: options) { _ in }
            let second = try session.generate(prompt: prompt + first.tokens + [5, 9], options: options) { _ in }
            let alone = try Session(loaded, contextLength: 256, threads: 2, batch: 32)
                .generate(prompt: prompt + first.tokens + [5, 9], options: SpeculationTests.options(24, speculation: nil)) { _ in }
            #expect(second.tokens == alone.tokens)
            #expect((second.speculation?.drafted ?? 0) > 0)
        }
    }

    /// serve --spec mtp: each request's layer is fed its sequence's chunks by the batch engine; the
    /// answers are the engine's without speculation, and drafts are made.
    @Test(arguments: ["glm4moe", "deepseekv3"])
    func batchEngineWithMTPAnswersAsWithout(architecture: String) async throws {
        let dir = try syntheticTempDirectory("nextn-engine-" + architecture)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("nextn.gguf").path
        try SyntheticModel.appendNextN(to: try GGUFFile(path: SpeculationTests.fixture("\(architecture).f32.gguf")), writing: path)
        let loaded = try LoadedModel(path: path)
        var spec = SpeculationOptions(mode: .mtp, draftMax: 3)
        spec.draftMin = 1
        let plain = try await SpeculationTests.engineAnswers(loaded, prompts: SpeculationTests.enginePrompts, tokens: 24, speculation: nil)
        let speculative = try await SpeculationTests.engineAnswers(loaded, prompts: SpeculationTests.enginePrompts, tokens: 24, speculation: spec)
        #expect(plain.ids == speculative.ids)
        #expect(speculative.drafted > 0, "\(architecture): drafted \(speculative.drafted), accepted \(speculative.accepted)")
    }

    @Test func modelsWithoutTheLayerAreRefusedClearly() throws {
        let llama = try LoadedModel(path: SpeculationTests.fixture("llama.f32.gguf"))
        let problem = try #require(SpeculationOptions(mode: .mtp).problem(for: llama))
        #expect(problem.contains("next-n"), "\(problem)")
        #expect(throws: SpeculationError.self) {
            try Session(llama, contextLength: 64, threads: 1)
                .generate(prompt: [1, 5], options: SpeculationTests.options(4, speculation: SpeculationOptions(mode: .mtp))) { _ in }
        }
    }
}
