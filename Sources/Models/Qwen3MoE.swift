// qwen3moe (Qwen3-30B-A3B, Qwen3-235B-A22B): qwen3 attention (q/k RMSNorm, NeoX RoPE, no biases) and
// a mixture-of-experts FFN in every layer: softmax router, top-k, chosen weights renormalised to 1
// (llama.cpp always normalises for this architecture), no shared expert.

import GGUF

public enum Qwen3MoEArchitecture: Architecture {
    public static let name = "qwen3moe"
    public static func configure(_ config: inout ModelConfig, gguf: GGUFFile) throws {
        config.ropeStyle = .neox
        config.activation = .silu
        var moe = try MoEConfig.read(gguf, name, defaultGating: .softmax)
        moe.gating = .softmax
        moe.normalizeWeights = true
        try config.enableMoE(moe, gguf: gguf)
    }
}
