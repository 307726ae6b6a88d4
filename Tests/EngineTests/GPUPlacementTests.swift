// Hybrid placement: the planner's ranking by value per byte (pure: made-up addresses), its plan of a real MoE
// fixture under a budget of half its weights (dense first, then the experts the statistics say are used most),
// and that plan run through the Vulkan backend (lavapipe): the transformers golden within 1e-3, the greedy
// tokens, and experts migrating between steps.

import Foundation
import Testing
import Engine
import GGUF
import Models
import VulkanBackend

private func address(_ n: Int) -> UnsafeRawPointer { UnsafeRawPointer(bitPattern: 0x10000 + n * 0x1000)! }

@Suite struct GPUPlacementTests {
    @Test func ranksByValuePerByteWithinTheBudget() {
        typealias C = GPUPlacement.Candidate
        let candidates = [
            C(start: address(0), bytes: 1000, value: 0, group: "embeddings / output", expert: false),    // row-gathered embeddings
            C(start: address(1), bytes: 400, value: 1, group: "attention", expert: false),
            C(start: address(2), bytes: 400, value: 1, group: "dense FFN", expert: false),
            C(start: address(3), bytes: 300, value: 0.5, group: "routed experts", expert: true),
            C(start: address(4), bytes: 300, value: 0.25, group: "routed experts", expert: true),
            C(start: address(5), bytes: 100, value: 0.1, group: "routed experts", expert: true),
        ]
        let plan = GPUPlacement(candidates, budgetBytes: 1250)
        let onDevice = plan.residency.regions.map(\.onDevice)
        // 400 + 400 + 300 = 1100; the 0.25 expert (300) does not fit, the 0.1 one (100) does; embeddings never.
        #expect(onDevice == [false, true, true, true, false, true])
        #expect(plan.deviceBytes == 1200 && plan.hostBytes == 1300)
        #expect(plan.groups["routed experts"]! == (device: 400, host: 300))
        #expect(plan.residency.regions.map(\.migratable) == [false, false, false, true, true, true])
        #expect(plan.description.hasPrefix("GPU placement: "))
        // Nothing fits a budget of 0; everything of value fits a large one.
        #expect(GPUPlacement(candidates, budgetBytes: 0).deviceBytes == 0)
        #expect(GPUPlacement(candidates, budgetBytes: 1 << 20).deviceBytes == 1500)
    }

    @Test func moeFixturePlanPutsDenseWeightsAndPopularExpertsFirst() throws {
        let loaded = try LoadedModel(path: modelFixtures.appendingPathComponent("qwen3moe.f32.gguf").path)
        let blocks = loaded.model.moeBlocks
        let (layer, moe) = try #require(blocks.first)
        // Statistics: expert 1 of the first MoE layer used far more than the others.
        let stats = (0..<moe.gate.count).map { (layer: layer, expert: $0, count: $0 == 1 ? 1000 : 1) }
        // Dense candidates (token embeddings read a row at a time are not: the file has its own output head).
        #expect(loaded.gguf.tensors.contains { $0.name == "output.weight" })
        let dense = loaded.gguf.tensors.filter { $0.dims.count >= 2 && !$0.name.hasSuffix("_exps.weight") && $0.name != "token_embd.weight" }
            .reduce(0) { $0 + ($1.byteCount + 3) & ~3 }
        let expertBytes = moe.expertMatrices(1).reduce(0) { $0 + $1.rows * $1.rowBytes }
        let plan = GPUPlacement(loaded, budgetBytes: dense + expertBytes + 64, statistics: stats)
        #expect(plan.groups["routed experts"]!.device == expertBytes, "just the popular expert: \(plan.description)")
        #expect(plan.deviceBytes == dense + expertBytes)
        #expect(plan.groups["embeddings / output"]!.host == loaded.gguf.tensors.first { $0.name == "token_embd.weight" }!.byteCount)
        for m in moe.expertMatrices(1) {
            let region = try #require(plan.residency.regions.first { $0.start == UInt(bitPattern: m.data) })
            #expect(region.onDevice && region.migratable)
        }
        for m in moe.expertMatrices(0) {
            #expect(plan.residency.regions.first { $0.start == UInt(bitPattern: m.data) }?.onDevice == false)
        }
    }

    @Test(.enabled(if: (try? VulkanDevices.probe().get())?.isEmpty == false, "needs a Vulkan device (Mesa's lavapipe)"))
    func plannedHybridRunMatchesTransformersAndMigrates() throws {
        let path = modelFixtures.appendingPathComponent("qwen3moe.f32.gguf").path
        let loaded = try LoadedModel(path: path)
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: modelFixtures.appendingPathComponent("qwen3moe.golden.json"))) as! [String: Any]
        let ids = (golden["token_ids"] as! [Int]).map(Int32.init)
        let reference = golden["logits"] as! [[Double]]
        let next = ((golden["greedy"] as! [String: Any])["next_ids"] as! [Int]).map(Int32.init)
        let total = loaded.gguf.tensors.filter { $0.dims.count >= 2 }.reduce(0) { $0 + $1.byteCount }
        var settings = RuntimeSettings(threads: 2, contextLength: 64)
        settings.backend = .vulkan
        settings.gpuBudgetBytes = total / 2
        let options = try RuntimeOptions(settings, for: loaded)
        let plan = try #require(options.gpuPlacement)
        #expect(plan.deviceBytes > 0 && plan.deviceBytes <= total / 2 && plan.hostBytes > 0, "\(plan.description)")
        let context = try #require((options.backend.provider as? VulkanBackendProvider)?.context)
        context.migrationBytesPerStep = 1 << 30
        let before = context.placement!.regions.map(\.onDevice)

        let state = options.inferenceState(loaded.model)
        let v = loaded.model.vocabularySize
        let logits = Array(try loaded.model.forward(ids, startPosition: 0, state: state, logits: .all))
        var worst = 0.0
        for (r, row) in reference.enumerated() { for (i, x) in row.enumerated() { worst = max(worst, abs(Double(logits[r * v + i]) - x)) } }
        #expect(worst <= 1e-3, "hybrid max |Δlogit| = \(worst)")
        var last = Array(logits[(ids.count - 1) * v ..< ids.count * v]), greedy: [Int32] = []
        for _ in next.indices {
            let token = Int32(last.indices.max { last[$0] < last[$1] }!)
            greedy.append(token)
            last = Array(try loaded.model.forward([token], startPosition: state.position, state: state, logits: .last))
        }
        #expect(greedy == next, "hybrid greedy")
        let after = context.placement!.regions.map(\.onDevice)
        #expect(after != before, "experts the prompt used moved to the device between steps")
        #expect(context.residentBytes <= context.budgetBytes)
    }
}

/// Three tiers at once: --ram-budget streams the routed experts through RAM slots (computed on the CPU) while
/// the GPU holds the rest.
@Suite(.serialized, .enabled(if: Binaries.dwarfstar != nil && (try? VulkanDevices.probe().get())?.isEmpty == false,
                             "needs the dwarfstar binary and a Vulkan device (Mesa's lavapipe)"))
struct GPUWithRAMBudgetTests {
    @Test func streamedExpertsStayOnTheCPUWhileTheGPUHoldsTheRest() throws {
        let path = try RAMBudgetTests.model()
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let args = ["run", "-m", path, "--raw", "-p", "The quick brown fox", "-n", "4", "--temp", "0", "--ctx", "64", "-t", "2",
                    "--ram-budget", "\((size / 3) >> 20)M"]
        let r = try runCLI(args + ["--backend", "vulkan"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("streamed from disk"), "\(r.stderr)")
        let plan = r.stderr.components(separatedBy: "\n").first { $0.hasPrefix("GPU placement: ") } ?? ""
        #expect(plan.contains("attention") && !plan.contains("routed experts"), "\(r.stderr)")
    }
}
