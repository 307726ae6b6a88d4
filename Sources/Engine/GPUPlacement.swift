// Hybrid placement (--gpu-budget): which weight matrices live in the GPU's memory. Each candidate is ranked
// by its value per byte, the bytes a decode token reads from it per byte it occupies: 1 for what every token
// reads whole (attention, dense and shared-expert FFNs, routers, the output head), a routed expert's chance of
// being chosen (experts used per token × its share of the layer's activations in the `.dsexperts`
// statistics, uniform without them), 0 for token embeddings read a row at a time (unless they are the tied
// output head). The best go to the GPU until the budget is spent; the rest run on the CPU where they live.
// Experts migrate later as their use changes (VulkanContext.rebalance).

import GGUF
import Kernels
import Models
import VulkanBackend

public struct GPUPlacement: Sendable, CustomStringConvertible {
    public var budgetBytes: Int
    public var deviceBytes: Int
    public var hostBytes: Int
    /// Bytes per group (WeightGroup names), on the device and on the host.
    public var groups: [String: (device: Int, host: Int)]
    /// The plan as address ranges of the mapped weights, for the device context.
    public var residency: DeviceResidency
    /// Bytes a decode token reads from the device's weights, and of those from routed experts (each
    /// candidate's bytes times its value).
    public var deviceReadBytesPerToken: Double
    public var deviceExpertReadBytesPerToken: Double

    /// One candidate: a tensor, or one routed expert's matrix.
    public struct Candidate {
        public var start: UnsafeRawPointer
        public var bytes: Int
        /// Bytes a decode token reads from it per byte (see above).
        public var value: Double
        public var group: String
        public var expert: Bool
        public init(start: UnsafeRawPointer, bytes: Int, value: Double, group: String, expert: Bool) {
            self.start = start; self.bytes = bytes; self.value = value; self.group = group; self.expert = expert
        }
    }

    /// The best candidates by value per byte (ties: in address order, i.e. layer order) while they fit;
    /// those of value 0 never.
    public init(_ candidates: [Candidate], budgetBytes: Int) {
        self.budgetBytes = budgetBytes
        let order = candidates.indices.sorted {
            let a = candidates[$0], b = candidates[$1]
            return a.value != b.value ? a.value > b.value : UInt(bitPattern: a.start) < UInt(bitPattern: b.start)
        }
        var left = budgetBytes, device = 0, host = 0, reads = 0.0, expertReads = 0.0
        var groups: [String: (device: Int, host: Int)] = [:]
        var regions: [DeviceResidency.Region] = []
        for i in order {
            let c = candidates[i], size = DeviceResidency.allocatedBytes(c.bytes)
            let here = c.value > 0 && size <= left
            if here {
                left -= size; device += c.bytes
                reads += Double(c.bytes) * c.value
                if c.expert { expertReads += Double(c.bytes) * c.value }
            } else {
                host += c.bytes
            }
            groups[c.group, default: (0, 0)].device += here ? c.bytes : 0
            groups[c.group, default: (0, 0)].host += here ? 0 : c.bytes
            regions.append(DeviceResidency.Region(start: c.start, bytes: c.bytes, onDevice: here, migratable: c.expert))
        }
        deviceBytes = device; hostBytes = host; self.groups = groups
        deviceReadBytesPerToken = reads; deviceExpertReadBytesPerToken = expertReads
        residency = DeviceResidency(regions: regions)
    }

    /// `loaded`'s matrices ranked as above, `statistics` the experts' activation counts (loadExpertStatistics).
    public init(_ loaded: LoadedModel, budgetBytes: Int, statistics: [(layer: Int, expert: Int, count: Int)]) {
        self.init(gguf: loaded.gguf, model: loaded.model, budgetBytes: budgetBytes, statistics: statistics)
    }

    /// The matrices of `model`, loaded from `gguf`, ranked as above; `experts` false leaves the routed experts out
    /// (streamed through RAM slots under --ram-budget, they are computed on the CPU).
    public init(gguf: GGUFFile, model: TransformerModel, budgetBytes: Int, statistics: [(layer: Int, expert: Int, count: Int)],
                experts: Bool = true) {
        var candidates: [Candidate] = []
        let tiedHead = !gguf.tensors.contains { $0.name == "output.weight" }
        for t in gguf.tensors where t.dims.count >= 2 && !LoadedModel.isRoutedExpertTensor(t.name) {
            let group = WeightGroup.of(t.name)
            let value: Double = t.name == "token_embd.weight" && !tiedHead ? 0 : 1
            candidates.append(Candidate(start: gguf.data(of: t), bytes: t.byteCount, value: value, group: group, expert: false))
        }
        var counts: [Int: [Int: Int]] = [:]
        for s in statistics { counts[s.layer, default: [:]][s.expert] = s.count }
        for (layer, moe) in experts ? model.moeBlocks : [] {
            let n = moe.gate.count, used = Double(moe.config.expertsUsed)
            let total = counts[layer].map { $0.values.reduce(0, +) } ?? 0
            var seen = Set<UInt>()
            for x in 0..<n {
                // Laplace-smoothed share: an expert never seen keeps a little value.
                let share = total > 0 ? (Double(counts[layer]?[x] ?? 0) + 1) / Double(total + n) : 1 / Double(n)
                for m in moe.expertMatrices(x) where seen.insert(UInt(bitPattern: m.data)).inserted {
                    candidates.append(Candidate(start: m.data, bytes: m.rows * m.rowBytes, value: used * share,
                                                group: "routed experts", expert: true))
                }
            }
        }
        self.init(candidates, budgetBytes: budgetBytes)
    }

    public var description: String {
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1048576) }
        let parts = groups.sorted { $0.key < $1.key }.map { "\($0.key) \(mib($0.value.device)) of \(mib($0.value.device + $0.value.host))" }
        return "GPU placement: \(mib(deviceBytes)) of \(mib(deviceBytes + hostBytes)) of weights on the GPU (budget \(mib(budgetBytes))): "
            + parts.joined(separator: ", ")
    }
}

/// The groups weights are reported in (plan, placement lines), by tensor name.
public enum WeightGroup {
    public static func of(_ name: String) -> String {
        if name.hasSuffix("_exps.weight") { return "routed experts" }
        if name.contains("shexp") { return "shared experts" }
        if name.contains("attn") { return "attention" }
        if name.contains("ffn_gate_inp") || name.contains("exp_probs") { return "routers" }
        if name.contains("ffn") { return "dense FFN" }
        if name.contains("norm") { return "norms" }
        return "embeddings / output"
    }
}
