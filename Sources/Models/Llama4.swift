// llama4 (Llama 4 Scout / Maverick): interleaved RoPE with Llama-3 frequency factors; every 4th layer
// is NoPE (no RoPE, full attention, q scaled by the attention temperature), the other layers use RoPE,
// attend within aligned chunks of 8192 positions and RMS-normalise q and k without a weight ("L2
// norm"; not on the 128-expert Maverick). MoE every interleave_moe_layer_step layers: the router
// picks top-k on its logits, sigmoid(logit) scales the expert *input*, plus one shared expert of the
// same width. A GGUF with attention.sliding_window = 0 turns chunking and NoPE off (llama.cpp's rule).

import GGUF

public enum Llama4Architecture: Architecture {
    public static let name = "llama4"
    public static let chunkSize = 8192
    public static let noRopeStep = 4

    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        let n = config.layerCount
        var hooks = StandardHooks(layers: n)
        hooks.ropeStyle = .interleaved
        hooks.activation = .silu
        var moe = try MoEConfig.read(gguf, name, defaultGating: .sigmoid)
        moe.gating = .sigmoid
        moe.weightsScaleInput = true
        moe.normalizeWeights = false
        hooks.moe = moe
        if let window = ArchitectureMetadata(gguf, architecture: name).int("attention.sliding_window"), window == 0 {
            hooks.ropeLayers = Array(repeating: true, count: n)
        } else {
            hooks.ropeLayers = (0..<n).map { ($0 + 1) % noRopeStep != 0 }
            hooks.spans = hooks.ropeLayers.map { $0 ? .chunked(chunkSize) : .full }
            hooks.attentionTemperature = AttentionTemperature(scale: 0.1, floorLength: Float(chunkSize), offset: 1)
        }
        hooks.qkL2Norm = moe.expertCount != 128
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }
}
