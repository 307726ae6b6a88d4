// deepseek2 (DeepSeek V2/V2.5/V3/R1, Kimi K2): multi-head latent attention (LatentAttention.swift) with
// interleaved RoPE on the rope dims (YaRN when the GGUF says so; the softmax scale then carries
// mscale² = (1 + yarn_log_multiplier · ln factor)²), the first leading_dense_block_count layers dense,
// the rest MoE: softmax or sigmoid router (expert_gating_func; softmax for old files without it),
// correction bias for choosing, expert-group limited top-k, normalised and scaled weights, shared
// experts. Newer GGUFs describe the absorbed form (head_count_kv 1, key_length = kv_lora + rope,
// key_length_mla = nope + rope, attn_k_b / attn_v_b); older ones the expanded form with a fused attn_kv_b.

import GGUF
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum DeepSeek2Architecture: Architecture {
    public static let name = "deepseek2"

    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        let hooks = try latentMoEHooks(&config, gguf: gguf, architecture: name, defaultGating: .softmax)
        return try StandardStack(gguf: gguf, config: config, hooks: hooks)
    }

    /// MLA + DeepSeek MoE from `<architecture>.*` keys (shared with the architectures built on them).
    static func latentMoEHooks(_ config: inout ModelConfig, gguf: GGUFFile, architecture name: String,
                               defaultGating: ExpertGating) throws -> StandardHooks {
        let int = ArchitectureMetadata(gguf, architecture: name).int
        var hooks = StandardHooks(layers: config.layerCount)
        hooks.ropeStyle = .interleaved
        hooks.activation = .silu
        guard let kvLora = int("attention.kv_lora_rank"), kvLora > 0 else {
            throw ModelError.missingMetadata(file: gguf.path, key: "\(name).attention.kv_lora_rank")
        }
        let qLora = int("attention.q_lora_rank") ?? 0
        let ropeDim = config.ropeDimensions
        // Per-head q/k width (nope + rope) and value width of the expanded form.
        let keyMLA = int("attention.key_length_mla") ?? config.headDimK
        let valueMLA = int("attention.value_length_mla") ?? config.headDimV
        guard keyMLA > ropeDim, ropeDim > 0, ropeDim % 2 == 0, valueMLA > 0 else {
            throw ModelError.invalidConfig(file: gguf.path, message: "MLA head sizes: key \(keyMLA), rope \(ropeDim), value \(valueMLA)")
        }
        var mscale: Float = 1
        if let yarn = config.yarn { mscale = 1 + yarn.logMultiplier * logf(yarn.factor) }
        config.ropeMagnitude = 1
        hooks.latentAttention = LatentAttentionConfig(qLoraRank: qLora, kvLoraRank: kvLora, nopeDim: keyMLA - ropeDim, ropeDim: ropeDim,
                                           valueDim: valueMLA, scale: mscale * mscale / Float(keyMLA).squareRoot())
        // The cache and attention kernels see MQA over rows of latent + rope key.
        config.headCountKV = 1
        config.headDimK = kvLora + ropeDim
        config.headDimV = kvLora
        if int("expert_count") ?? 0 > 0 {
            hooks.moe = try MoEConfig.read(gguf, name, defaultGating: defaultGating)
        }
        return hooks
    }
}
