// The summary table of a quantization: tensors grouped by role (the name without its layer number,
// "attn_q.weight" for blk.0…N), then by type, with counts, bytes and bits per weight.

import Foundation
import GGUF

public struct SummaryRow: Sendable {
    public var group: String
    public var type: GGMLType
    public var tensors: Int
    public var elements: Int
    public var bytes: Int
    public var fallbacks: Int
    /// Estimated ΔKLD of the group's choice (the adaptive allocation), else nil.
    public var estimatedKLD: Double?
    public var bitsPerWeight: Double { Double(bytes * 8) / Double(max(elements, 1)) }
}

public enum QuantizeSummary {
    /// "blk.12.attn_q.weight" → "attn_q.weight"; experts keep their stacked name.
    public static func group(of name: String) -> String {
        guard MixRules.layer(name) >= 0, let dot = name.dropFirst(4).firstIndex(of: ".") else { return name }
        return String(name[name.index(after: dot)...])
    }

    public static func rows(_ choices: [TensorChoice], estimates: [String: Double] = [:]) -> [SummaryRow] {
        var rows: [String: SummaryRow] = [:]
        var order: [String] = []
        for c in choices {
            let g = group(of: c.tensor.name), key = "\(g)\u{0}\(c.type.name)"
            if rows[key] == nil {
                rows[key] = SummaryRow(group: g, type: c.type, tensors: 0, elements: 0, bytes: 0, fallbacks: 0, estimatedKLD: nil)
                order.append(key)
            }
            rows[key]!.tensors += 1
            rows[key]!.elements += c.tensor.elementCount
            rows[key]!.bytes += c.type.byteCount(elements: c.tensor.elementCount) ?? 0
            if c.fallbackFrom != nil { rows[key]!.fallbacks += 1 }
            if let e = estimates[c.tensor.name] { rows[key]!.estimatedKLD = (rows[key]!.estimatedKLD ?? 0) + e }
        }
        return order.map { rows[$0]! }
    }

    public static func table(_ choices: [TensorChoice], estimates: [String: Double] = [:]) -> String {
        let rows = rows(choices, estimates: estimates)
        let width = max(24, rows.map(\.group.count).max() ?? 0)
        var out = "\("group".padding(toLength: width, withPad: " ", startingAt: 0))  type      tensors      MiB   bits/w  est. ΔKLD\n"
        for r in rows {
            let kld = r.estimatedKLD.map { String(format: "%9.5f", $0) } ?? "        -"
            out += String(format: "%@  %-8@ %8d %8.2f %8.3f  %@%@\n", r.group.padding(toLength: width, withPad: " ", startingAt: 0), r.type.name,
                          r.tensors, Double(r.bytes) / 1_048_576, r.bitsPerWeight, kld,
                          r.fallbacks > 0 ? "  (\(r.fallbacks) by fallback)" : "")
        }
        let bytes = ModelQuantizer.dataBytes(choices), elements = choices.reduce(0) { $0 + $1.tensor.elementCount }
        out += String(format: "total: %d tensors, %.2f MiB, %.3f bits per weight", choices.count, Double(bytes) / 1_048_576,
                      Double(bytes * 8) / Double(max(elements, 1)))
        if !estimates.isEmpty { out += String(format: ", estimated ΔKLD %.5f", estimates.values.reduce(0, +)) }
        return out
    }

    /// The fallback note: tensors whose rows the chosen type cannot hold, and what they got instead.
    public static func fallbackNote(_ choices: [TensorChoice]) -> String? {
        let fell = choices.filter { $0.fallbackFrom != nil }
        guard !fell.isEmpty else { return nil }
        var byPair: [String: Int] = [:]
        for c in fell { byPair["\(c.fallbackFrom!.name) → \(c.type.name) (rows of \(c.tensor.rowLength))", default: 0] += 1 }
        let quantizable = choices.filter { $0.reason != .kept }.count
        return "\(fell.count) of \(quantizable) quantized tensors have rows their type's blocks do not divide and took another type: "
            + byPair.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: ", ")
    }
}
