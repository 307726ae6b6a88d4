// A copy of a standard-stack model (glm4moe, deepseek2, ...) with one MTP / next-n layer appended, the
// way GLM-4.5's GGUFs store it: block N (N = the trunk's block count) holds a decoder block, here a copy
// of the trunk's last block, plus nextn.eh_proj [2E → E], nextn.enorm, nextn.hnorm and
// nextn.shared_head_norm; block_count counts it and nextn_predict_layers = 1. W_eh is seeded noise plus
// the hidden-state half's identity (x ≈ rmsnorm(h)), norms are ones. For tests and `dwarfstar synth`:
// real MTP weights come only from a real model.

import GGUF
import Models

extension SyntheticModel {
    public static func appendNextN(to source: GGUFFile, writing path: String, seed: UInt64 = 1) throws {
        guard let arch = source.architecture, let blocks = source["\(arch).block_count"]?.int, blocks > 0,
              let e = source["\(arch).embedding_length"]?.int else {
            throw GGUFError(file: source.path, field: "block_count", message: "not a model with a block count and embedding length")
        }
        guard (source["\(arch).nextn_predict_layers"]?.int ?? 0) == 0 else {
            throw GGUFError(file: source.path, field: "nextn_predict_layers", message: "the model already has next-n layers")
        }
        var w = GGUFWriter(alignment: source.alignment)
        for key in source.metadataKeys {
            guard let value = source[key] else { continue }
            w.set(key, key == "\(arch).block_count" ? .uint32(UInt32(blocks + 1)) : value)
        }
        w.set("\(arch).nextn_predict_layers", .uint32(1))
        func copy(_ t: GGUFTensorInfo, as name: String) throws {
            let bytes = Array(UnsafeRawBufferPointer(start: source.data(of: t), count: t.byteCount))
            try w.addTensor(name: name, dims: t.dims, type: t.type, data: bytes)
        }
        let last = "blk.\(blocks - 1)."
        for t in source.tensors {
            try copy(t, as: t.name)
            if t.name.hasPrefix(last) { try copy(t, as: "blk.\(blocks)." + t.name.dropFirst(last.count)) }
        }
        // W_eh[r, c], c < E: the embedding half (noise); c ≥ E: the hidden half (identity + noise).
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func noise() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) / Float(1 << 24) - 0.5) * 0.1
        }
        var eh = [Float](repeating: 0, count: e * 2 * e)
        for r in 0..<e {
            for c in 0..<(2 * e) { eh[r * 2 * e + c] = noise() + (c == e + r ? 1 : 0) }
        }
        try w.addTensor(name: NextNTensorName.ehProjection(blocks).name, dims: [2 * e, e], floats: eh)
        let ones = [Float](repeating: 1, count: e)
        for name in [NextNTensorName.embeddingNorm(blocks), .hiddenNorm(blocks), .sharedHeadNorm(blocks)] {
            try w.addTensor(name: name.name, dims: [e], floats: ones)
        }
        try w.write(to: path)
    }
}
