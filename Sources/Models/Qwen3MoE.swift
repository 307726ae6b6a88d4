// qwen3moe (Qwen3-30B-A3B, Qwen3-235B-A22B): qwen3 attention (q/k RMSNorm, NeoX RoPE, no biases) and
// a mixture-of-experts FFN in every layer: softmax router, top-k, chosen weights renormalised to 1
// (llama.cpp always normalises for this architecture), no shared expert.

import GGUF

public enum Qwen3MoEArchitecture: Architecture {
    public static let name = "qwen3moe"
    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        var hooks = StandardHooks(layers: config.layerCount)
        hooks.ropeStyle = .neox
        hooks.activation = .silu
        var moe = try MoEConfig.read(gguf, name, defaultGating: .softmax)
        moe.gating = .softmax
        moe.normalizeWeights = true
        hooks.moe = moe
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }
}
