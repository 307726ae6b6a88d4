// llama (Llama 1-3, SmolLM2, Mistral-style): pre-norm, GQA, SwiGLU, RoPE on adjacent pairs
// (llama.cpp's converter permutes Q/K rows so interleaved RoPE matches HF's rotate_half),
// optional rope_freqs (Llama 3.1+ long-context factors), output tied to the embedding when absent.

import GGUF

public enum LlamaArchitecture: Architecture {
    public static let name = "llama"
    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        var hooks = StandardHooks(layers: config.layerCount)
        hooks.ropeStyle = .interleaved
        hooks.activation = .silu
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }
}
