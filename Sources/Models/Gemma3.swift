// gemma3 (text): embeddings × sqrt(hidden); every 6th layer global (RoPE base rope.freq_base, usually
// 1e6), the others sliding-window local (RoPE base rope.freq_base_swa, default 1e4); q/k RMSNorm;
// post-attention and post-FFN norms; GELU(tanh) gated FFN; q scaled by 1/sqrt(head_dim)
// (1/sqrt(hidden/heads) for the 27B). Norm weights in the GGUF already include Gemma's (1 + w).

import GGUF

public enum Gemma3Architecture: Architecture {
    public static let name = "gemma3"
    /// One global layer after every five local ones.
    public static let slidingPattern = 6

    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        var hooks = StandardHooks(layers: config.layerCount)
        hooks.ropeStyle = .neox
        hooks.activation = .geluTanh
        config.embeddingScale = Float(config.embeddingLength).squareRoot()
        if config.ropeBaseSliding == nil { config.ropeBaseSliding = 10_000 }
        // Linear RoPE scaling (the 4B+ models) applies to global layers only (Rope built per base).
        if let window = config.slidingWindow {
            hooks.slidingRopeLayers = (0..<config.layerCount).map { ($0 + 1) % slidingPattern != 0 }
            hooks.spans = hooks.slidingRopeLayers.map { $0 ? .sliding(window) : .full }
        }
        let is27B = config.layerCount == 62
        hooks.attentionScale = is27B
            ? 1 / Float(config.embeddingLength / config.headCount).squareRoot()
            : 1 / Float(config.headDimK).squareRoot()
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }
}
