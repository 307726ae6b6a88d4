// qwen2 (Qwen2, Qwen2.5): llama layout with q/k/v biases, NeoX RoPE (halves), tied embeddings in
// small models. Biases are picked up by presence of attn_{q,k,v}.bias.

import GGUF

public enum Qwen2Architecture: Architecture {
    public static let name = "qwen2"
    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        guard gguf.tensor(TensorName.attnQBias(0).name) != nil else {
            throw ModelError.missingTensor(file: gguf.path, name: TensorName.attnQBias(0).name)
        }
        var hooks = StandardHooks(layers: config.layerCount)
        hooks.ropeStyle = .neox
        hooks.activation = .silu
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }
}
