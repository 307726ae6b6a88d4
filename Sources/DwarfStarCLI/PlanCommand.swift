// dwarfstar plan: where the weights would go under a RAM budget, and the decode speed that predicts.

import ArgumentParser
import Engine
import Foundation
import KVCache
import Models

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the weight placement under a RAM budget (resident vs streamed experts) and a predicted decode speed.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var context: ContextOption
    @OptionGroup var kvBudget: KVBudgetOption
    @OptionGroup var checkpoints: CheckpointOption
    @OptionGroup var ramBudget: RequiredRAMBudgetOption
    @OptionGroup var batching: BatchingOptions

    func run() throws {
        do {
            // The placement run (or serve, given --parallel or --prefill-chunk) would make with these options.
            let given: [any RuntimeOptionGroup] = [context, kvBudget, checkpoints, ramBudget] + (batching.given ? [batching] : [])
            let (loaded, runtime) = try modelOptions.loadResolved(given, applyPlacement: false)
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
            let (ramBytes, diskBytes) = loaded.bytesPerToken(plan)
            let ramSeconds = Double(ramBytes) / (ramBW * 1e9), diskSeconds = diskBytes > 0 ? Double(diskBytes) / (diskBW * 1e9) : 0
            print(String(format: "measured: RAM read %.1f GB/s (%d threads), storage read %.2f GB/s (%@ pread of one expert matrix, 4 in flight)",
                         ramBW, threads, diskBW, mode == .direct ? "O_DIRECT" : "buffered"))
            print(String(format: "per decode token: %.1f MiB from RAM, %.1f MiB from storage (uniform routing, hit rate %.0f%%)",
                         Double(ramBytes) / 1048576, Double(diskBytes) / 1048576,
                         plan.streaming ? 100 * Double(plan.slots) / Double(max(plan.expertCount, 1)) : 100))
            print(String(format: "predicted decode (bandwidth bound): %.1f tokens/s with reads overlapping compute, %.1f tokens/s without",
                         1 / max(ramSeconds, diskSeconds, 1e-9), 1 / max(ramSeconds + diskSeconds, 1e-9)))
        } catch {
            throw fail(error)
        }
    }
}
