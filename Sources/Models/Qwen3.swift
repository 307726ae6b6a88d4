// qwen3 (dense): no biases, per-head RMSNorm on q and k before RoPE (attn_{q,k}_norm), NeoX RoPE,
// head_dim independent of hidden size (key_length).

import GGUF

public enum Qwen3Architecture: Architecture {
    public static let name = "qwen3"
    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        for t in [TensorName.attnQNorm(0), .attnKNorm(0)] where gguf.tensor(t.name) == nil {
            throw ModelError.missingTensor(file: gguf.path, name: t.name)
        }
        var hooks = StandardHooks(layers: config.layerCount)
        hooks.ropeStyle = .neox
        hooks.activation = .silu
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }
}
