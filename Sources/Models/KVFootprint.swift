// What a sequence's cache costs: bytes added per token of context (the part that grows with long
// contexts) and bytes held whatever the length (sliding windows, recurrent state, compressor rings).
//   standard / MLA: Σ_layers (K row + V row) per position for layers that keep every position;
//                   window / chunk layers are bounded (window · row)
//   DeepSeek V4:    Σ_compressed layers (d [+ d_indexer on CSA layers]) · 4 B / ratio per token;
//                   raw windows (window · d) and compressor rings fixed
//   Qwen3.5:        attention layers per token; conv + delta-rule state fixed

import Foundation
import KVCache

public struct KVFootprint: Sendable, CustomStringConvertible {
    /// Bytes one more token of context adds (long-context rate).
    public var bytesPerToken: Double
    /// Bytes per sequence that do not grow with the context.
    public var fixedBytes: Int
    public var description: String {
        let perToken = bytesPerToken == bytesPerToken.rounded() ? String(Int(bytesPerToken)) : String(format: "%.1f", bytesPerToken)
        return "\(perToken) bytes per token of context + \(fixedBytes) bytes per sequence"
    }
}

extension TransformerModel {
    /// The cache footprint of one sequence with K/V stored as `type` (DeepSeek V4's compressed entries:
    /// F32, or half for narrower types).
    public func kvFootprint(type: KVType = .f32) -> KVFootprint {
        let c = config
        if let ds = c.deepseek4 {
            return KVFootprint(bytesPerToken: ds.compressedBytesPerPosition(elementBytes: type == .f32 ? 4 : 2), fixedBytes: ds.fixedSideBytes)
        }
        let shape = InferenceState.kvShape(c, type: type)
        let row = type.bytes(shape.kRowFloats) + type.bytes(shape.vRowFloats)
        var perToken = 0.0, fixed = 0
        for r in shape.retention {
            switch r {
            case .all: perToken += Double(row)
            case .window(let w): fixed += w * row
            case .chunk(let n): fixed += n * row
            }
        }
        fixed += c.qwen35?.stateBytes ?? 0
        return KVFootprint(bytesPerToken: perToken, fixedBytes: fixed)
    }
}

extension TransformerModel {
    /// Bytes of the state one sequence keeps beside its pages at `contextLength` positions (DeepSeek
    /// V4's raw windows, compressor rings and entries; Qwen3.5's recurrent state); 0 for other models.
    /// Each side-state checkpoint holds up to this much.
    public func sideStateBytes(contextLength: Int, type: KVType = .f32) -> Int {
        guard keepsSideState else { return 0 }
        let f = kvFootprint(type: type)
        return config.deepseek4 != nil ? f.fixedBytes + Int(f.bytesPerToken * Double(contextLength)) : f.fixedBytes
    }
}
