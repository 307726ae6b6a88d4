// dwarfstar plan: where the weights would go under a RAM budget, and the decode speed that predicts.

import ArgumentParser
import Engine
import Foundation
import KVCache
import Models
import Kernels

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the weight placement under a RAM budget (resident vs streamed experts) and a predicted decode speed.")
    @Option(name: [.short, .customLong("model")], help: "Model name or GGUF path.") var model: String = ModelStore.defaultModelName
    @Option(name: .customLong("ram"), help: "RAM budget, e.g. 8G.") var ram: String
    @Option(name: [.short, .customLong("ctx")], help: "Context size whose KV is budgeted.") var ctx = 4096
    @Option(name: [.short, .customLong("threads")], help: "Threads for the bandwidth probe.") var threads: Int?

    func run() throws {
        do {
            let loaded = try LoadedModel(path: try ModelStore.resolveOrPull(model))
            let kv = loaded.kvBytes(contextLength: ctx, batch: 512)
            let plan = try loaded.placement(budgetBytes: try parseByteSize(ram), kvBytes: kv, scratchBytes: loaded.sessionScratchBytes(batch: 512)
                + loaded.sideStateBudgetBytes(contextLength: ctx, type: .f32, checkpoints: 8))
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
                } else if n.contains("shexp") { group = "resident: shared experts" }
                else if n.contains("attn") { group = "resident: attention" }
                else if n.contains("ffn_gate_inp") || n.contains("exp_probs") { group = "resident: routers" }
                else if n.contains("ffn") { group = "resident: dense FFN" }
                else if n.contains("norm") { group = "resident: norms" }
                else { group = "resident: embeddings / output" }
                groups[group, default: 0] += t.byteCount
            }
            print("model \(loaded.name): \(mib(loaded.gguf.fileSize - loaded.gguf.dataOffset)) of weights")
            for (g, b) in groups.sorted(by: { $0.key < $1.key }) { print("  \(mib(b))  \(g)") }
            print(plan.description)
            let threads = self.threads ?? WorkerPool.defaultThreadCount
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
