// dwarfstar plan: where the weights would go under a RAM budget, and the decode speed that predicts.

import ArgumentParser
import Engine
import Foundation
import KVCache
import Models
import DistributedRuns
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

    @Option(help: "Plan a pipeline over this many ranks (--pipeline), each with --ram-budget of RAM: the split and the predicted decode speed. Under mpirun with as many ranks, the link is measured with MPI.")
    var ranks: Int?

    @Option(name: .customLong("link-gbps"), help: "With --ranks outside mpirun: the link's speed in GB/s (with --link-latency-us).")
    var linkGBps: Double?

    @Option(name: .customLong("link-latency-us"), help: "With --ranks outside mpirun: the link's one-way latency in µs.")
    var linkLatency: Double = 50

    func validate() throws {
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be at least 1") }
        if let linkGBps, !(linkGBps > 0) { throw ValidationError("--link-gbps must be positive") }
    }

    func run() throws {
        // Under mpirun, ranks other than 0 only answer rank 0's link probes.
        let world = try ranks != nil && MPIWorld.launched ? MPIWorld.join(timeout: 600) : nil
        if let world, world.rank != 0 {
            do { try LinkProbe.answer(world, from: 0) } catch { world.abort("\(error)") }
            world.finalize()
            return
        }
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
            if let ranks {
                try printPipeline(loaded, ranks: ranks, budget: runtime.ramBudgetBytes, reserve: (plan.otherBytes, plan.kvBytes),
                                  ramBW: ramBW * 1e9, storageBW: diskBW * 1e9, world: world)
            }
        } catch {
            if let world { world.abort("\(error)") }
            throw fail(error)
        }
        world?.finalize()
    }

    /// --ranks: each stage's layers and bytes under the per-rank budget, and the decode speed predicted.
    func printPipeline(_ loaded: LoadedModel, ranks: Int, budget: Int?, reserve: (runtime: Int, kv: Int), ramBW: Double, storageBW: Double,
                       world: MPIWorld?) throws {
        let model = loaded.model
        if let why = model.pipelineProblem { throw ValidationError("plan --ranks: \(why)") }
        var link: LinkMeasurement?, source = "not counted (give --link-gbps, or run under mpirun -np \(ranks))"
        if let world {
            guard world.size == ranks else { throw ValidationError("plan --ranks \(ranks) under mpirun -np \(world.size): give as many ranks") }
            let links = try (1..<world.size).map { try LinkProbe.measure(world, peer: $0) }
            link = links.min { $0.bytesPerSecond < $1.bytesPerSecond }
            if let link { source = String(format: "measured with MPI: %.1f µs, %.2f GB/s (the slowest of rank 0's links)", link.latency * 1e6, link.bytesPerSecond / 1e9) }
        } else if let linkGBps {
            link = LinkMeasurement(peer: 1, latency: linkLatency * 1e-6, bytesPerSecond: linkGBps * 1e9)
            source = String(format: "given: %.1f µs, %.2f GB/s", linkLatency, linkGBps)
        }
        var layers: [PipelineLayerBytes] = model.layerWeightBytes.map { PipelineLayerBytes(tensors: 0, routedExperts: 0, readPerToken: $0, routedReadPerToken: 0) }
        for t in loaded.gguf.tensors {
            let parts = t.name.split(separator: ".")
            guard parts.count > 2, parts[0] == "blk", let l = Int(parts[1]), l < layers.count else { continue }
            layers[l].tensors += t.byteCount
            if t.name.contains("_exps.") { layers[l].routedExperts += t.byteCount }
        }
        for block in model.moeBlocks where block.layer < layers.count && !block.weights.gate.isEmpty {
            layers[block.layer].routedReadPerToken = block.weights.config.expertsUsed * block.weights.expertMatrices(0).reduce(0) { $0 + $1.rows * $1.rowBytes }
        }
        let embedding = loaded.gguf.tensors.first { $0.name == "token_embd.weight" }?.byteCount ?? 0
        let hidden = model.config.embeddingLength * 4, logits = model.vocabularySize * 4
        func predict(_ n: Int) throws -> PipelinePrediction {
            try PipelinePlanner.predict(layers: layers, embeddingBytes: embedding, headBytes: model.headBytes, ranks: n, budget: budget,
                                        runtimeBytes: reserve.runtime, kvBytes: reserve.kv, ramBytesPerSecond: ramBW, storageBytesPerSecond: storageBW, link: link, hiddenBytes: hidden, logitsBytes: logits)
        }
        let one = try predict(1), split = try predict(ranks)
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1048576) }
        print("pipeline over \(ranks) ranks" + (budget.map { ", \(mib($0)) of RAM each" } ?? "") + ":")
        for (i, stage) in split.stages.enumerated() {
            var line = "  rank \(i): layers \(stage.layers.lowerBound)..<\(stage.layers.upperBound), \(mib(stage.bytes))"
            if stage.overBudget { line += ", OVER BUDGET (its dense weights alone do not fit)" }
            else if stage.streamedShare > 0 { line += String(format: ", streams %.0f%% of its routed experts", 100 * stage.streamedShare) }
            else { line += ", fits" }
            line += ", per token \(mib(stage.ramReadPerToken)) from RAM" + (stage.storageReadPerToken > 0 ? ", \(mib(stage.storageReadPerToken)) from storage" : "")
            print(line)
        }
        print("link: \(source); per token \(hidden) B of x per hop, \(logits) B of logits back to rank 0")
        print(String(format: "predicted decode: %.1f tokens/s over %d ranks, %.1f tokens/s on one process under the same budget",
                     split.tokensPerSecond, ranks, one.tokensPerSecond))
        guard !model.moeBlocks.isEmpty, ranks > 1 else { return }
        // Expert parallel: the same ranks each holding the dense weights and a share of the experts.
        let routed = layers.reduce(0) { $0 + $1.routedExperts }, routedRead = layers.reduce(0) { $0 + $1.routedReadPerToken }
        let dense = loaded.gguf.tensors.reduce(0) { $0 + $1.byteCount } - routed
        let ep = ExpertParallelPlanner.predict(denseBytes: dense, routedBytes: routed, denseReadPerToken: model.weightBytesPerToken - routedRead,
                                               routedReadPerToken: routedRead, moeLayers: model.moeBlocks.count, hiddenBytes: hidden, ranks: ranks,
                                               budget: budget, runtimeBytes: reserve.runtime, kvBytes: reserve.kv, ramBytesPerSecond: ramBW,
                                               storageBytesPerSecond: storageBW, link: link)
        var line = "experts parallel over \(ranks) ranks (--experts-parallel): each holds \(mib(ep.heldBytes))"
        if ep.overBudget { line += ", OVER BUDGET (the dense weights alone do not fit)" }
        else if ep.streamedShare > 0 { line += String(format: ", streams %.0f%% of its routed experts", 100 * ep.streamedShare) }
        else { line += ", fits" }
        print(line + ", per token \(mib(ep.ramReadPerToken)) from RAM" + (ep.storageReadPerToken > 0 ? ", \(mib(ep.storageReadPerToken)) from storage" : "")
              + String(format: ", sends %.1f KiB", Double(ep.sentPerToken) / 1024))
        print(String(format: "predicted decode: %.1f tokens/s with the experts shared out (link %.2f ms a token)", ep.tokensPerSecond, ep.linkSeconds * 1e3))
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
