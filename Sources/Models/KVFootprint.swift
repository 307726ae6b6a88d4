// What a sequence's cache costs: bytes added per token of context (the part that grows with long
// contexts) and bytes held whatever the length (sliding windows, recurrent state, compressor rings).
//   KV pages: Σ_layers (K row + V row) per position for layers that keep every position;
//             window / chunk layers are bounded (window · row)
//   plus what a stack keeps beside its pages (LayerStack.kvFootprint): compressed entries per token,
//   recurrent state or rings fixed.

import Foundation
import KVCache

public struct KVFootprint: Sendable, CustomStringConvertible {
    public init(bytesPerToken: Double, fixedBytes: Int) { self.bytesPerToken = bytesPerToken; self.fixedBytes = fixedBytes }
    /// Bytes one more token of context adds (long-context rate).
    public var bytesPerToken: Double
    /// Bytes per sequence that do not grow with the context.
    public var fixedBytes: Int
    public var description: String {
        let perToken = bytesPerToken == bytesPerToken.rounded() ? String(Int(bytesPerToken)) : String(format: "%.1f", bytesPerToken)
        return "\(perToken) bytes per token of context + \(fixedBytes) bytes per sequence"
    }
}

extension KVFootprint {
    /// The footprint of KV pages of `shape`: layers that keep every position grow per token, window and
    /// chunk layers are bounded; `fixedBytes` more per sequence (state kept beside the pages).
    public init(pages shape: KVShape, fixedBytes: Int) {
        let row = shape.type.bytes(shape.kRowFloats) + shape.type.bytes(shape.vRowFloats)
        var perToken = 0.0, fixed = fixedBytes
        for r in shape.retention {
            switch r {
            case .all: perToken += Double(row)
            case .window(let w): fixed += w * row
            case .chunk(let n): fixed += n * row
            }
        }
        self.init(bytesPerToken: perToken, fixedBytes: fixed)
    }
}

extension TransformerModel {
    /// The cache footprint of one sequence with K/V stored as `type`.
    public func kvFootprint(type: KVType = .f32) -> KVFootprint { body.kvFootprint(type: type) }

    /// Bytes of the state one sequence keeps beside its pages at `contextLength` positions (0: none).
    /// Each side-state checkpoint holds up to this much.
    public func sideStateBytes(contextLength: Int, type: KVType = .f32) -> Int {
        body.sideStateBytes(contextLength: contextLength, type: type)
    }
}
