// The real models through the Vulkan backend (on lavapipe), resolved as a user's `--backend vulkan` is: every
// position's 64 largest reference logits within 1e-3 of transformers running the dequantized weights in
// float32 (Scripts/make-real-model-goldens.py; the device's products use float activations, as transformers
// does) and the same argmax. Covers the kernels of Q4_1, Q8_0 (SmolLM2) and Q5_0, Q4_K, Q6_K, Q8_0 (Gemma 3).

import Foundation
import Testing
import Engine
import VulkanBackend

private struct RealGolden: Decodable {
    let token_ids: [Int32]
    let top_ids: [[Int]]
    let top_logits: [[Float]]
}

private let hasVulkanDevice = (try? VulkanDevices.probe().get())?.isEmpty == false

@Suite(.serialized)
struct VulkanRealModelTests {
    @Test(.enabled(if: hasVulkanDevice, "needs a Vulkan device (Mesa's lavapipe: apt install mesa-vulkan-drivers libvulkan-dev)"),
          .enabled(if: RealModels.available("smollm2") && RealModels.available("gemma3-270m"), "needs the real models"),
          arguments: ["smollm2", "gemma3-270m"])
    func logitsMatchFloatReference(name: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/vulkan-goldens/\(name).json")
        let golden = try JSONDecoder().decode(RealGolden.self, from: Data(contentsOf: url))
        let loaded = try RealModels.load(name)
        var settings = RuntimeSettings(threads: 2, contextLength: 64)
        settings.backend = .vulkan
        let options = try RuntimeOptions(settings, for: loaded)
        #expect(options.backend.line.hasPrefix("backend: vulkan:"), "\(options.backend.line)")
        let state = options.inferenceState(loaded.model)
        #expect(state.ops.name == "vulkan")
        let logits = try loaded.model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
        let v = loaded.model.vocabularySize
        var worst: Float = 0
        for (r, ids) in golden.top_ids.enumerated() {
            for (k, id) in ids.enumerated() { worst = max(worst, abs(logits[r * v + id] - golden.top_logits[r][k])) }
            let best = (0..<v).max { logits[r * v + $0] < logits[r * v + $1] }!
            #expect(best == ids[0], "\(name) argmax at \(r)")
        }
        #expect(worst <= 1e-3, "\(name) max |Δlogit| over the reference's top 64 = \(worst)")
    }
}
