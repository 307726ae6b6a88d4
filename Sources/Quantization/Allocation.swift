// The adaptive allocation: one type per tensor group minimising the summed measured ΔKLD under a byte
// budget (a multiple-choice knapsack). Solved exactly by dynamic programming over the budget cut into
// `resolution` units, each candidate's bytes rounded up to whole units (so the result always fits);
// the few units that rounding leaves unused then go to the best single upgrades that still fit.

import Foundation
import GGUF

public struct Allocation: Sendable {
    /// Chosen candidate index per group (into the table's entries).
    public var choice: [Int]
    public var bytes: Int
    /// Σ ΔKLD of the choices (the additive estimate).
    public var estimatedKLD: Double
}

public enum Allocator {
    /// Chooses a candidate per group with Σ bytes ≤ budget, minimising Σ ΔKLD (see above).
    public static func allocate(_ table: SensitivityTable, budget: Int, resolution: Int = 50_000) throws -> Allocation {
        let minimum = table.entries.reduce(0) { $0 + ($1.map(\.bytes).min() ?? 0) }
        guard minimum <= budget else {
            throw QuantizeError.budget("the budget leaves \(budget) bytes for the quantized tensors; the smallest types that fit their rows need \(minimum)")
        }
        let unit = max(1, (budget + resolution - 1) / resolution)
        let units = budget / unit
        // best[u]: least Σ ΔKLD of the groups so far within u units; pick[g][u]: group g's candidate there.
        var best = [Double](repeating: 0, count: units + 1)
        var pick = [[UInt8]](repeating: [], count: table.entries.count)
        for (g, entries) in table.entries.enumerated() {
            var next = [Double](repeating: .infinity, count: units + 1)
            var choice = [UInt8](repeating: 0, count: units + 1)
            for (i, e) in entries.enumerated() {
                let cost = (e.bytes + unit - 1) / unit
                guard cost <= units else { continue }
                for u in cost...units where best[u - cost] + e.kld < next[u] {
                    next[u] = best[u - cost] + e.kld
                    choice[u] = UInt8(i)
                }
            }
            best = next
            pick[g] = choice
        }
        guard best[units].isFinite else {
            throw QuantizeError.budget("no choice of types fits \(budget) bytes (rounded to units of \(unit))")
        }
        var choice = [Int](repeating: 0, count: table.entries.count)
        var u = units
        for g in stride(from: table.entries.count - 1, through: 0, by: -1) {
            choice[g] = Int(pick[g][u])
            u -= (table.entries[g][choice[g]].bytes + unit - 1) / unit
        }
        var bytes = choice.enumerated().reduce(0) { $0 + table.entries[$1.offset][$1.element].bytes }
        // Leftover budget: the best single change that lowers ΔKLD and still fits, while one exists.
        while true {
            var best: (g: Int, i: Int, gain: Double)? = nil
            for g in table.entries.indices {
                let cur = table.entries[g][choice[g]]
                for (i, e) in table.entries[g].enumerated() where e.kld < cur.kld && bytes - cur.bytes + e.bytes <= budget {
                    if best == nil || cur.kld - e.kld > best!.gain { best = (g, i, cur.kld - e.kld) }
                }
            }
            guard let b = best else { break }
            bytes += table.entries[b.g][b.i].bytes - table.entries[b.g][choice[b.g]].bytes
            choice[b.g] = b.i
        }
        let kld = choice.enumerated().reduce(0.0) { $0 + table.entries[$1.offset][$1.element].kld }
        return Allocation(choice: choice, bytes: bytes, estimatedKLD: kld)
    }

    /// The allocation as tensor choices for the writer (tensors outside every group kept as they are).
    public static func choices(_ file: GGUFFile, _ table: SensitivityTable, _ allocation: Allocation) -> [TensorChoice] {
        var typeOf: [String: GGMLType] = [:]
        for (g, group) in table.groups.enumerated() {
            let type = GGMLType.named(table.entries[g][allocation.choice[g]].type)!
            for t in group.tensors { typeOf[t] = type }
        }
        return MixRules.ordered(file.tensors).map { t in
            if let type = typeOf[t.name] { return TensorChoice(tensor: t, type: type, reason: .allocation) }
            return TensorChoice(tensor: t, type: t.type, reason: .kept)
        }
    }

    /// Per tensor, the estimated ΔKLD of its group's choice split by element share (for the summary).
    public static func estimates(_ table: SensitivityTable, _ allocation: Allocation, _ file: GGUFFile) -> [String: Double] {
        var out: [String: Double] = [:]
        for (g, group) in table.groups.enumerated() {
            let total = group.tensors.reduce(0) { $0 + (file.tensor($1)?.elementCount ?? 0) }
            let kld = table.entries[g][allocation.choice[g]].kld
            for t in group.tensors { out[t] = kld * Double(file.tensor(t)?.elementCount ?? 0) / Double(max(total, 1)) }
        }
        return out
    }

    /// Bytes of the file besides the quantized groups' data: header, metadata, tensors kept as they are,
    /// alignment padding.
    public static func fixedBytes(_ file: GGUFFile, _ table: SensitivityTable) -> Int {
        let grouped = Set(table.groups.flatMap(\.tensors))
        var w = GGUFWriter(alignment: file.alignment)
        for key in file.metadataKeys where !key.hasPrefix("split.") { w.set(key, file.metadata[key]!) }
        w.set("general.quantization_version", .uint32(2))
        w.set("general.file_type", .uint32(0))
        for t in file.tensors { try? w.addTensor(name: t.name, dims: t.dims, type: t.type, produce: { [] }) }
        let kept = file.tensors.filter { !grouped.contains($0.name) }.reduce(0) { $0 + $1.byteCount }
        return w.headerBytes().count + kept + file.tensors.count * (file.alignment - 1)
    }
}
