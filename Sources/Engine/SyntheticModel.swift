// Random-weight models of realistic shape, written with the project's own GGUF writer, for speed
// measurements on models larger than the caches (llama.cpp reads them too). Weights are random (text is
// noise); the tokenizer metadata is copied from a real model so both engines load the file.

import CKernels
import Foundation
import GGUF

public struct SyntheticModelSpec: Sendable {
    public var architecture = "llama"
    public var hidden = 2048
    public var layers = 24
    public var heads = 16
    public var kvHeads = 4
    public var feedForward = 5632
    public var type: GGMLType = .q4_K
    public var seed: UInt64 = 1
    public init() {}

    public var headDim: Int { hidden / heads }
}

public enum SyntheticModel {
    /// Writes the model; returns the bytes of tensor data.
    @discardableResult
    public static func write(_ spec: SyntheticModelSpec, tokenizerFrom source: GGUFFile, to path: String,
                             log: (String) -> Void = { _ in }) throws -> Int {
        let t = spec.type
        guard ds_type_supported(Int32(t.rawValue)) != 0, t != .q8_K else {
            throw GGUFError(file: path, field: "type", message: "\(t.name) cannot be written")
        }
        for (what, n) in [("hidden", spec.hidden), ("feed-forward", spec.feedForward)] where n % t.blockSize != 0 {
            throw GGUFError(file: path, field: what, message: "\(what) size \(n) is not a multiple of the \(t.name) block size \(t.blockSize)")
        }
        guard spec.heads > 0, spec.kvHeads > 0, spec.heads % spec.kvHeads == 0, spec.hidden % spec.heads == 0 else {
            throw GGUFError(file: path, field: "heads", message: "heads must divide hidden and be a multiple of kv-heads")
        }
        guard let tokens = source["tokenizer.ggml.tokens"]?.array, !tokens.isEmpty else {
            throw GGUFError(file: source.path, field: "tokenizer.ggml.tokens", message: "no tokenizer to copy")
        }
        let vocab = tokens.count
        let a = spec.architecture
        var w = GGUFWriter()
        w.set("general.architecture", .string(a))
        w.set("general.name", .string("synthetic \(a) \(spec.hidden)x\(spec.layers) \(t.name)"))
        w.set("general.size_label", .string("synthetic"))
        w.set("\(a).block_count", .uint32(UInt32(spec.layers)))
        w.set("\(a).context_length", .uint32(4096))
        w.set("\(a).embedding_length", .uint32(UInt32(spec.hidden)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(spec.feedForward)))
        w.set("\(a).attention.head_count", .uint32(UInt32(spec.heads)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(spec.kvHeads)))
        w.set("\(a).rope.freq_base", .float32(10000))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("\(a).rope.dimension_count", .uint32(UInt32(spec.headDim)))
        w.set("\(a).vocab_size", .uint32(UInt32(vocab)))
        for key in source.metadataKeys where key.hasPrefix("tokenizer.") && key != "tokenizer.chat_template" {
            w.set(key, source[key]!)
        }
        var rngState = spec.seed
        // A pool of distinct random rows per row length, quantized once; a matrix cycles through them
        // in a scrambled order. Speed depends on bytes and shapes, not on the values.
        var pools: [Int: [[UInt8]]] = [:]
        func pool(cols: Int) -> [[UInt8]] {
            if let p = pools[cols] { return p }
            var rows: [[UInt8]] = []
            for _ in 0..<16 {
                let values = (0..<cols).map { _ -> Float in
                    rngState = rngState &* 6364136223846793005 &+ 1442695040888963407
                    let u = Float(rngState >> 40) / Float(1 << 24) - 0.5
                    return u * 0.07  // ~N(0, 0.02)-sized
                }
                var bytes = [UInt8](repeating: 0, count: t.byteCount(elements: cols)!)
                if t == .f32 { bytes = values.withUnsafeBytes { Array($0) } } else {
                    ds_quantize_row_ref(Int32(t.rawValue), values, &bytes, Int64(cols))
                }
                rows.append(bytes)
            }
            pools[cols] = rows
            return rows
        }
        func matrix(_ name: String, rows: Int, cols: Int) throws {
            let p = pool(cols: cols)
            try w.addTensor(name: name, dims: [cols, rows], type: t) {
                var out: [UInt8] = []
                out.reserveCapacity(rows * p[0].count)
                for r in 0..<rows { out.append(contentsOf: p[Int(UInt32(truncatingIfNeeded: r &* 2_654_435_761) >> 28)]) }
                return out
            }
        }
        func ones(_ name: String, _ n: Int) throws { try w.addTensor(name: name, dims: [n], floats: Array(repeating: 1, count: n)) }
        let e = spec.hidden, kv = spec.kvHeads * spec.headDim
        try matrix("token_embd.weight", rows: vocab, cols: e)
        try ones("output_norm.weight", e)
        try matrix("output.weight", rows: vocab, cols: e)
        for l in 0..<spec.layers {
            try ones("blk.\(l).attn_norm.weight", e)
            try matrix("blk.\(l).attn_q.weight", rows: e, cols: e)
            try matrix("blk.\(l).attn_k.weight", rows: kv, cols: e)
            try matrix("blk.\(l).attn_v.weight", rows: kv, cols: e)
            try matrix("blk.\(l).attn_output.weight", rows: e, cols: e)
            try ones("blk.\(l).ffn_norm.weight", e)
            try matrix("blk.\(l).ffn_gate.weight", rows: spec.feedForward, cols: e)
            try matrix("blk.\(l).ffn_up.weight", rows: spec.feedForward, cols: e)
            try matrix("blk.\(l).ffn_down.weight", rows: e, cols: spec.feedForward)
        }
        let total = w.tensors.reduce(0) { $0 + $1.byteCount }
        log(String(format: "writing %@: %d tensors, %.2f GB of weights", path, w.tensors.count, Double(total) / 1e9))
        try w.write(to: path)
        return total
    }
}
