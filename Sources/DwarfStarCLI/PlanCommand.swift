// dwarfstar plan: where the weights would go under a RAM budget, and the decode speed that predicts.

import ArgumentParser
import Engine
import Foundation
import KVCache
import Models
import VulkanBackend

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the weight placement under a RAM budget (resident vs streamed experts; with --gpu-budget, what the GPU holds) and a predicted decode speed.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var context: ContextOption
    @OptionGroup var kvBudget: KVBudgetOption
    @OptionGroup var checkpoints: CheckpointOption
    @OptionGroup var ramBudget: RequiredRAMBudgetOption
    @OptionGroup var batching: BatchingOptions

    @Option(name: .customLong("gpu-bandwidth"), help: "With --gpu-budget: the GPU's weight read speed in GB/s, instead of measuring the device.")
    var gpuBandwidth: Double?

    func run() throws {
        do {
            // The placement run (or serve, given --parallel or --prefill-chunk) would make with these options.
            let given: [any RuntimeOptionGroup] = [context, kvBudget, checkpoints, ramBudget] + (batching.given ? [batching] : [])
            // The run's backend is not needed: the GPU tier below is planned from --gpu-budget as a run would.
            let (loaded, runtime) = try modelOptions.loadResolved(given, applyPlacement: false) { $0.backend = .cpu }
            guard let plan = runtime.placement else { return }
            func mib(_ b: Int) -> String { String(format: "%9.1f MiB", Double(b) / 1048576) }
            // Groups of tensors per tier.
            var groups: [String: Int] = [:]
            for t in loaded.gguf.tensors {
                let n = t.name
                let group: String
                if n.hasSuffix("_exps.weight") {
                    let number = n.split(separator: ".").dropFirst().first.map(String.init) ?? "?"
                    let layer = String(repeating: " ", count: max(0, 3 - number.count)) + number   // sorts numerically
                    group = plan.streaming ? "streamed: routed experts, layer \(layer)" : "resident: routed experts, layer \(layer)"
                } else { group = "resident: " + WeightGroup.of(n) }
                groups[group, default: 0] += t.byteCount
            }
            print("model \(loaded.name): \(mib(loaded.gguf.fileSize - loaded.gguf.dataOffset)) of weights")
            for (g, b) in groups.sorted(by: { $0.key < $1.key }) { print("  \(mib(b))  \(g)") }
            print(plan.description)
            let threads = runtime.threads
            let ramBW = Benchmark.memoryReadBandwidth(threads: threads)
            let mode = ExpertReadMode.fromEnvironment
            let diskBW = loaded.storageReadBandwidth(mode: mode, chunkBytes: plan.expertBytesEach > 0 ? plan.expertBytesEach / 3 : 4 << 20)
            var (ramBytes, diskBytes) = loaded.bytesPerToken(plan)
            let gpu = try gpuTier(loaded, routedBytesPerToken: loaded.routedExpertBytesPerToken, streaming: plan.streaming)
            if let gpu {
                // What the GPU reads a token no longer comes from RAM; the experts it holds are not streamed.
                diskBytes = Int(Double(diskBytes) * (1 - gpu.expertShare))
                ramBytes = max(0, loaded.model.weightBytesPerToken - Int(gpu.placement.deviceReadBytesPerToken) - diskBytes)
            }
            let ramSeconds = Double(ramBytes) / (ramBW * 1e9), diskSeconds = diskBytes > 0 ? Double(diskBytes) / (diskBW * 1e9) : 0
            let gpuSeconds = gpu.map { $0.placement.deviceReadBytesPerToken / ($0.bandwidth * 1e9) } ?? 0
            print(String(format: "measured: RAM read %.1f GB/s (%d threads), storage read %.2f GB/s (%@ pread of one expert matrix, 4 in flight)",
                         ramBW, threads, diskBW, mode == .direct ? "O_DIRECT" : "buffered") + (gpu.map { String(format: ", GPU %.1f GB/s (%@)", $0.bandwidth, $0.source) } ?? ""))
            print(String(format: "per decode token: %@%.1f MiB from RAM, %.1f MiB from storage (uniform routing, hit rate %.0f%%)",
                         gpu.map { String(format: "%.1f MiB from GPU memory, ", $0.placement.deviceReadBytesPerToken / 1048576) } ?? "",
                         Double(ramBytes) / 1048576, Double(diskBytes) / 1048576,
                         plan.streaming ? 100 * Double(plan.slots) / Double(max(plan.expertCount, 1)) : 100))
            print(String(format: "predicted decode (bandwidth bound): %.1f tokens/s with reads overlapping compute, %.1f tokens/s without",
                         1 / max(ramSeconds, diskSeconds, gpuSeconds, 1e-9), 1 / max(ramSeconds + diskSeconds + gpuSeconds, 1e-9)))
        } catch {
            throw fail(error)
        }
    }

    /// With --gpu-budget: the GPU tier a run would plan, its groups printed, and the device's measured product
    /// read speed (--gpu-bandwidth where there is no device to measure). nil without --gpu-budget.
    /// Streamed experts stay on the CPU (computed from their RAM slots), as in a run.
    func gpuTier(_ loaded: LoadedModel, routedBytesPerToken: Int, streaming: Bool) throws
        -> (placement: GPUPlacement, bandwidth: Double, source: String, expertShare: Double)? {
        guard let text = modelOptions.gpuBudget else { return nil }
        let placement = GPUPlacement(gguf: loaded.gguf, model: loaded.model, budgetBytes: try parseByteSize(text),
                                     statistics: loaded.loadExpertStatistics(), experts: !streaming)
        func mib(_ b: Int) -> String { String(format: "%9.1f MiB", Double(b) / 1048576) }
        for (g, b) in placement.groups.sorted(by: { $0.key < $1.key }) where b.device > 0 { print("  \(mib(b.device))  GPU: \(g)") }
        print(placement.description)
        let share = routedBytesPerToken > 0 ? min(1, placement.deviceExpertReadBytesPerToken / Double(routedBytesPerToken)) : 0
        if let gpuBandwidth { return (placement, gpuBandwidth, "--gpu-bandwidth", share) }
        let choice = BackendChoice(rawValue: modelOptions.backend) ?? .auto
        let resolved = try ResolvedBackend.resolve(choice == .cpu ? .auto : choice, device: modelOptions.gpuDevice, budgetBytes: nil)
        guard let device = (resolved.provider as? VulkanBackendProvider)?.context else {
            throw ValidationError("no GPU to measure (\(resolved.line)); give its read speed with --gpu-bandwidth GB/s")
        }
        return (placement, try device.productReadBandwidth(), "measured on \(device.device.name)", share)
    }
}
