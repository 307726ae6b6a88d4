// glm-dsa (GLM-5 family): DeepSeek-V3's body — multi-head latent attention and sigmoid-routed MoE
// with expert groups and a shared expert (DeepSeek2.swift) — with DeepSeek sparse attention: a
// lightning indexer (SparseIndexer.swift) picks the top_k positions each query attends to, on the
// layers indexer.types marks full; the others reuse the last full layer's choice. Differences from
// deepseek2 the GGUF does not spell out: gating defaults to sigmoid, the q/kv latent norms use
// epsilon 1e-6 (the file's 1e-5 is the blocks'), the indexer key's LayerNorm 1e-6.

import GGUF

public enum GLMDSAArchitecture: Architecture {
    public static let name = "glm-dsa"

    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        var hooks = try DeepSeek2Architecture.latentMoEHooks(&config, gguf: gguf, architecture: name, defaultGating: .sigmoid)
        let meta = ArchitectureMetadata(gguf, architecture: name), int = meta.int
        hooks.latentAttention?.latentNormEpsilon = 1e-6
        guard let heads = int("attention.indexer.head_count"), let headDim = int("attention.indexer.key_length"),
              let topK = int("attention.indexer.top_k") else {
            throw ModelError.missingMetadata(file: gguf.path, key: "\(name).attention.indexer.head_count / key_length / top_k")
        }
        // indexer.types: true = full (own indexer), false = shared. Absent: every layer full.
        var full = Array(repeating: true, count: config.layerCount)
        if let types = meta["attention.indexer.types"]?.array {
            for (i, v) in types.prefix(config.layerCount).enumerated() { full[i] = v.bool ?? (v.int.map { $0 != 0 } ?? true) }
        }
        guard heads > 0, headDim >= config.ropeDimensions, topK > 0, full.first == true else {
            throw ModelError.invalidConfig(file: gguf.path, message: "indexer: \(heads) heads × \(headDim), top_k \(topK), layer 0 must have its own indexer")
        }
        hooks.latentAttention?.indexer = SparseIndexerConfig(heads: heads, headDim: headDim, topK: topK, fullLayers: full, keyNormEpsilon: 1e-6)
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }
}
