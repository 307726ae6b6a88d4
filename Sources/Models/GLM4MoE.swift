// glm4moe (GLM-4.5, GLM-4.5-Air, GLM-4.6): q/k/v biases, q/k RMSNorm, NeoX RoPE on the first
// rope.dimension_count dims of each head (partial rotary), the FFN input norm stored as
// post_attention_norm; the first leading_dense_block_count layers dense, the rest MoE with a sigmoid
// router, correction bias, normalised and scaled weights and one shared expert. The nextn (MTP) layers
// appended after the trunk are not run (ModelConfig drops them from layerCount).

import GGUF

public enum GLM4MoEArchitecture: Architecture {
    public static let name = "glm4moe"
    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        var hooks = StandardHooks(layers: config.layerCount)
        hooks.ropeStyle = .neox
        hooks.activation = .silu
        hooks.ffnNormStoredAsPostAttention = true
        hooks.moe = try MoEConfig.read(gguf, name, defaultGating: .sigmoid)
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }
}
