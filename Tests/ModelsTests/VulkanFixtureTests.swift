// Every fixture architecture through the Vulkan backend (products on the device, the other ops on the CPU),
// on lavapipe: logits within 1e-3 of the transformers golden with the same argmax, the 8 greedy tokens
// through the KV cache, and hybrid runs where a GPU budget holds only part of the weights (the rest of the
// products on the CPU) giving the same. deepseek4.mxfp4 runs its experts through the MXFP4 kernel.

import Foundation
import Testing
import GGUF
import Kernels
import Models
import VulkanBackend

private let hasVulkanDevice = (try? VulkanDevices.probe().get())?.isEmpty == false
private let noDevice: Comment = "needs a Vulkan device (Mesa's lavapipe: apt install mesa-vulkan-drivers libvulkan-dev)"

/// A provider on device 0 holding at most `budget` bytes of weights (nil: its default).
private func vulkan(budget: Int? = nil) throws -> VulkanBackendProvider {
    VulkanBackendProvider(context: try VulkanContext(deviceIndex: 0, budgetBytes: budget))
}

/// Bytes of the matrices the products use (the layer stack's weights, embeddings and head).
private func productBytes(_ path: String) throws -> Int {
    let gguf = try GGUFFile(path: path)
    return gguf.tensors.filter { $0.dims.count >= 2 }.reduce(0) { $0 + $1.byteCount }
}

/// Logits of every prompt position and the 8 greedy tokens through the cache, on `provider`.
private func run(_ model: TransformerModel, _ tokens: [Int32], steps: Int, provider: VulkanBackendProvider,
                 context: Int = 256) throws -> (all: [Float], greedy: [Int32], stepLogits: [[Float]]) {
    let state = InferenceState(model: model, contextLength: context, maxBatch: 512, threads: 2, backend: provider)
    #expect(state.ops.name == "vulkan")
    let all = Array(try model.forward(tokens, startPosition: 0, state: state, logits: .all))
    let v = model.vocabularySize
    var last = Array(all[(tokens.count - 1) * v ..< tokens.count * v])
    var greedy: [Int32] = [], stepLogits: [[Float]] = []
    for _ in 0..<steps {
        stepLogits.append(last)
        let next = Int32(last.indices.max { last[$0] < last[$1] }!)
        greedy.append(next)
        last = Array(try model.forward([next], startPosition: state.position, state: state, logits: .last))
    }
    return (all, greedy, stepLogits)
}

private func worst(_ got: [Float], _ want: [[Float]]) -> Float {
    got.withUnsafeBufferPointer { maxAbsDiff($0, want) }
}

private func argmaxes(_ logits: [Float], vocab: Int) -> [Int] {
    stride(from: 0, to: logits.count, by: vocab).map { r in (0..<vocab).max { logits[r + $0] < logits[r + $1] }! }
}

@Suite struct VulkanFixtureTests {
    @Test(.enabled(if: hasVulkanDevice, noDevice), arguments: TinyFixtureTests.architectures)
    func tinyFixturesMatchTransformers(arch: String) throws {
        let golden = try loadGolden(arch)
        for precision in ["f32", "f16"] {
            let model = try loadModel(arch, precision)
            let provider = try vulkan()
            let (all, greedy, _) = try run(model, golden.token_ids, steps: golden.greedy.next_ids.count, provider: provider, context: 64)
            let want = precision == "f32" ? golden.logits : golden.logits_f16_weights
            #expect(worst(all, want) <= 1e-3, "\(arch) \(precision) max |Δlogit| = \(worst(all, want))")
            #expect(argmaxes(all, vocab: model.vocabularySize) == golden.argmax, "\(arch) \(precision) argmax")
            if precision == "f32" { #expect(greedy == golden.greedy.next_ids, "\(arch) greedy") }
            #expect(provider.context.residentBytes > 0, "\(arch): products ran on the device")
        }
    }

    /// A decode step of a standard stack (K/V stores and attention on the device too) is one recording,
    /// submitted at the end of the pass and at each MoE layer's routing (the host picks the experts), with
    /// the logits of the CPU backend.
    @Test(.enabled(if: hasVulkanDevice, noDevice), arguments: ["llama", "qwen3moe"])
    func decodeStepSubmitsOncePlusOncePerRouting(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f32")
        let provider = try vulkan()
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 64, threads: 2, backend: provider)
        let cpuState = InferenceState(model: model, contextLength: 64, maxBatch: 64, threads: 2)
        _ = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .last)
        _ = try model.forward(golden.token_ids, startPosition: 0, state: cpuState, logits: .last)
        let before = provider.context.submitCount
        let next = golden.greedy.next_ids[0]
        let device = Array(try model.forward([next], startPosition: state.position, state: state, logits: .last))
        let submits = provider.context.submitCount - before
        let cpu = Array(try model.forward([next], startPosition: cpuState.position, state: cpuState, logits: .last))
        #expect(submits == 1 + model.moeBlocks.count, "submits in a decode step: \(submits)")
        #expect(worst(device, [cpu]) < 1e-3)
    }

    /// A device failure in the middle of a recorded pass: the pass runs again on the CPU (its spoiled results
    /// are not used), and the session goes on on the CPU with the CPU's logits.
    @Test(.enabled(if: hasVulkanDevice, noDevice))
    func aDeviceFailureMidPassRunsThePassAgainOnTheCPU() throws {
        let golden = try loadGolden("llama")
        let model = try loadModel("llama", "f32")
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 64, threads: 2, backend: try vulkan())
        let backend = try #require(state.ops as? VulkanBackend)
        backend.failAfterDeviceOps = 7
        let all = Array(try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all))
        #expect(backend.failed, "the device failed during the pass")
        #expect(worst(all, golden.logits) <= 1e-3, "max |Δlogit| = \(worst(all, golden.logits))")
        let next = Array(try model.forward([golden.greedy.next_ids[0]], startPosition: state.position, state: state, logits: .last))
        #expect(next.indices.max { next[$0] < next[$1] } == Int(golden.greedy.next_ids[1]), "the next greedy token")
    }

    /// A GPU budget of half the weights: some products on the device, the rest on the CPU, same logits.
    @Test(.enabled(if: hasVulkanDevice, noDevice), arguments: ["qwen3moe", "deepseekv3", "llama"])
    func hybridPlacementMatchesTransformers(arch: String) throws {
        let golden = try loadGolden(arch)
        let path = fixtureDirectory.appendingPathComponent("\(arch).f32.gguf").path
        let model = try loadModel(arch, "f32")
        let total = try productBytes(path)
        let provider = try vulkan(budget: total / 2)
        let (all, greedy, _) = try run(model, golden.token_ids, steps: golden.greedy.next_ids.count, provider: provider, context: 64)
        #expect(worst(all, golden.logits) <= 1e-3, "\(arch) hybrid max |Δlogit| = \(worst(all, golden.logits))")
        #expect(greedy == golden.greedy.next_ids, "\(arch) hybrid greedy")
        let resident = provider.context.residentBytes
        #expect(resident > 0 && resident <= total / 2, "\(arch): \(resident) of \(total) bytes on the device")
    }

    @Test(.enabled(if: hasVulkanDevice, noDevice), arguments: FrontierFixtureTests.fixtures)
    func frontierFixturesMatchTransformers(name: String, file: String) throws {
        let (golden, model) = try loadFrontier(name, file: file)
        let provider = try vulkan()
        let (all, greedy, steps) = try run(model, golden.token_ids, steps: golden.greedy.next_ids.count, provider: provider)
        #expect(worst(all, golden.logits) <= 1e-3, "\(file) max |Δlogit| = \(worst(all, golden.logits))")
        #expect(argmaxes(all, vocab: model.vocabularySize) == golden.argmax, "\(file) argmax")
        #expect(greedy == golden.greedy.next_ids, "\(file) greedy")
        for (i, step) in steps.enumerated() { #expect(worst(step, [golden.greedy.step_logits[i]]) <= 1e-3, "\(file) step \(i)") }
        #expect(provider.context.residentBytes > 0, "\(file): products ran on the device")
    }
}
