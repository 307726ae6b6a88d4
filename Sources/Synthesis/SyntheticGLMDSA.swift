// Random-weight GLM-5-shaped models (`general.architecture = glm-dsa`, docs/models/glm_dsa.md), for
// speed measurements against llama.cpp: the deepseek2 synthetic model (MLA + MoE, SyntheticModel.swift)
// under the `glm-dsa.` prefix, with the keys llama.cpp's converter writes (no expert_gating_func: sigmoid
// is glm-dsa's default; general.type / file_type / quantization_version), plus DeepSeek sparse
// attention's lightning indexer on every "full" layer (ggml ne; e = hidden, q = q rank, Hi × Di heads):
//
//   blk.L.indexer.attn_q_b   [q, Hi·Di]  `attentionType`      (from the normalised q latent)
//   blk.L.indexer.attn_k     [e, Di]     `attentionType`
//   blk.L.indexer.k_norm     [Di] weight (ones) and bias (zeros), F32 (a LayerNorm)
//   blk.L.indexer.proj       [e, Hi]     F32
//
// GLM-5's indexer: 32 heads × 128, top-2048, every layer full (GLM-5/5.1; GLM-5.2 shares most layers'
// selection). llama.cpp rotates indexer q and k by a Hadamard matrix, so Di must be a multiple of 64.

import Foundation
import GGUF
import Models

public struct SyntheticGLMDSAShape: Sendable {
    public var indexerHeads = 32
    public var indexerHeadDim = 128
    public var indexerTopK = 2048
    /// Per layer: true = full (own indexer), false = shared (reuses the last full layer's selection).
    /// nil: every layer full.
    public var indexerTypes: [Bool]? = nil

    public init() {}

    public func types(layers: Int) -> [Bool] {
        guard let t = indexerTypes else { return Array(repeating: true, count: layers) }
        return Array(t.prefix(layers))
    }

    /// GLM-5.2's pattern (llama.cpp's GLM_5_2_DEFAULT_INDEXER_TYPES): layers 0–2 full, then one full
    /// layer in every four (F F F S S S F S S S …).
    public static func glm52Types(layers: Int) -> [Bool] { (0..<layers).map { $0 < 2 || ($0 - 2) % 4 == 0 } }

    /// `full` (every layer), `alternate` (F S F S …), `glm-5.2`, or one of 1/0 (F/S) per layer,
    /// comma-separated. nil when the text is none of these.
    public static func parseTypes(_ text: String, layers: Int) -> [Bool]? {
        switch text.lowercased() {
        case "full", "all": return Array(repeating: true, count: layers)
        case "alternate", "alternating": return (0..<layers).map { $0 % 2 == 0 }
        case "glm-5.2", "glm5.2": return glm52Types(layers: layers)
        default:
            let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            let values = items.compactMap { s -> Bool? in ["1", "f", "full", "true"].contains(s) ? true : (["0", "s", "shared", "false"].contains(s) ? false : nil) }
            return values.count == items.count && !values.isEmpty ? values : nil
        }
    }
}

extension SyntheticModel {
    static func checkGLMDSA(_ spec: SyntheticModelSpec, path: String) throws {
        let s = spec.glmDSA
        func fail(_ field: String, _ message: String) -> GGUFError { GGUFError(file: path, field: field, message: message) }
        guard s.indexerHeads > 0, s.indexerHeadDim > 0, s.indexerHeadDim % 64 == 0, s.indexerTopK > 0 else {
            throw fail("indexer", "indexer heads (\(s.indexerHeads)) and top-k (\(s.indexerTopK)) must be positive, the head size (\(s.indexerHeadDim)) a multiple of 64 (llama.cpp)")
        }
        guard spec.ropeDim <= s.indexerHeadDim else {
            throw fail("indexer", "the indexer head (\(s.indexerHeadDim)) must hold the rope dims (\(spec.ropeDim))")
        }
        guard spec.qLoraRank > 0 else { throw fail("q rank", "glm-dsa needs a q low-rank width (the indexer's query comes from it)") }
        let types = s.types(layers: spec.layers)
        guard types.count == spec.layers, types.first == true else {
            throw fail("indexer types", "need one type per layer (\(spec.layers)) with layer 0 full; got \(types.map { $0 ? "F" : "S" }.joined(separator: ","))")
        }
        for (what, n) in [("q rank", spec.qLoraRank), ("hidden", spec.hidden)] where n % spec.attentionType.blockSize != 0 {
            throw fail(what, "\(what) \(n) is not a multiple of the \(spec.attentionType.name) block size \(spec.attentionType.blockSize)")
        }
    }

    /// The keys the fixture carries beyond deepseek2's (set after the deepseek2 ones under `glm-dsa.`).
    static func setGLMDSAMetadata(_ spec: SyntheticModelSpec, _ w: inout GGUFWriter) {
        let a = "glm-dsa", s = spec.glmDSA
        func u(_ key: String, _ v: Int) { w.set("\(a).\(key)", .uint32(UInt32(v))) }
        w.set("general.type", .string("model"))
        w.set("\(a).rope.freq_base", .float32(1_000_000))
        if let ft = fileType(spec.type) { w.set("general.file_type", .uint32(ft)) }
        u("attention.indexer.head_count", s.indexerHeads)
        u("attention.indexer.key_length", s.indexerHeadDim)
        u("attention.indexer.top_k", s.indexerTopK)
        w.set("\(a).attention.indexer.types", .array(.bool, s.types(layers: spec.layers).map { .bool($0) }))
        w.set("general.quantization_version", .uint32(2))
    }

    /// Layer `l`'s indexer tensors when it is a full layer.
    static func writeGLMDSAIndexer(_ spec: SyntheticModelSpec, layer l: Int,
                                   matrix: (String, Int, Int, Int, GGMLType?) throws -> Void,
                                   ones: (String, Int) throws -> Void, floats: (String, [Int], [Float]) -> Void,
                                   random: (Int) -> [Float]) throws {
        let s = spec.glmDSA, e = spec.hidden, hi = s.indexerHeads, di = s.indexerHeadDim
        guard s.types(layers: spec.layers)[l] else { return }
        typealias M = MoETensorName
        try matrix(M.indexerQB(l).name, hi * di, spec.qLoraRank, 1, spec.attentionType)
        try matrix(M.indexerK(l).name, di, e, 1, spec.attentionType)
        try ones(M.indexerKNorm(l).name, di)
        floats(M.indexerKNormBias(l).name, [di], Array(repeating: 0, count: di))
        floats(M.indexerProj(l).name, [e, hi], random(e * hi))
    }
}
