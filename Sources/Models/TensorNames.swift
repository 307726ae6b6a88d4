// GGUF tensor names (llama.cpp's naming), one table for every architecture.

public enum TensorName {
    case tokenEmbedding, outputNorm, output, ropeFrequencies
    case attnNorm(Int), attnQ(Int), attnK(Int), attnV(Int), attnOutput(Int)
    case attnQBias(Int), attnKBias(Int), attnVBias(Int), attnOutputBias(Int)
    case attnQNorm(Int), attnKNorm(Int), postAttentionNorm(Int)
    case ffnNorm(Int), ffnGate(Int), ffnUp(Int), ffnDown(Int), postFFNNorm(Int)

    public var name: String {
        switch self {
        case .tokenEmbedding: return "token_embd.weight"
        case .outputNorm: return "output_norm.weight"
        case .output: return "output.weight"
        case .ropeFrequencies: return "rope_freqs.weight"
        case .attnNorm(let l): return "blk.\(l).attn_norm.weight"
        case .attnQ(let l): return "blk.\(l).attn_q.weight"
        case .attnK(let l): return "blk.\(l).attn_k.weight"
        case .attnV(let l): return "blk.\(l).attn_v.weight"
        case .attnOutput(let l): return "blk.\(l).attn_output.weight"
        case .attnQBias(let l): return "blk.\(l).attn_q.bias"
        case .attnKBias(let l): return "blk.\(l).attn_k.bias"
        case .attnVBias(let l): return "blk.\(l).attn_v.bias"
        case .attnOutputBias(let l): return "blk.\(l).attn_output.bias"
        case .attnQNorm(let l): return "blk.\(l).attn_q_norm.weight"
        case .attnKNorm(let l): return "blk.\(l).attn_k_norm.weight"
        case .postAttentionNorm(let l): return "blk.\(l).post_attention_norm.weight"
        case .ffnNorm(let l): return "blk.\(l).ffn_norm.weight"
        case .ffnGate(let l): return "blk.\(l).ffn_gate.weight"
        case .ffnUp(let l): return "blk.\(l).ffn_up.weight"
        case .ffnDown(let l): return "blk.\(l).ffn_down.weight"
        case .postFFNNorm(let l): return "blk.\(l).post_ffw_norm.weight"
        }
    }
}

/// Tensors of mixture-of-experts layers and of multi-head latent attention.
public enum MoETensorName {
    case router(Int), routerBias(Int), correctionBias(Int)
    case gateExperts(Int), upExperts(Int), gateUpExperts(Int), downExperts(Int)
    case sharedGate(Int), sharedUp(Int), sharedDown(Int)
    case qA(Int), qANorm(Int), qB(Int), kvAWithRope(Int), kvANorm(Int), kB(Int), vB(Int), kvB(Int)
    case indexerQB(Int), indexerK(Int), indexerKNorm(Int), indexerKNormBias(Int), indexerProj(Int)

    public var name: String {
        switch self {
        case .router(let l): return "blk.\(l).ffn_gate_inp.weight"
        case .routerBias(let l): return "blk.\(l).ffn_gate_inp.bias"
        case .correctionBias(let l): return "blk.\(l).exp_probs_b.bias"
        case .gateExperts(let l): return "blk.\(l).ffn_gate_exps.weight"
        case .upExperts(let l): return "blk.\(l).ffn_up_exps.weight"
        case .gateUpExperts(let l): return "blk.\(l).ffn_gate_up_exps.weight"
        case .downExperts(let l): return "blk.\(l).ffn_down_exps.weight"
        case .sharedGate(let l): return "blk.\(l).ffn_gate_shexp.weight"
        case .sharedUp(let l): return "blk.\(l).ffn_up_shexp.weight"
        case .sharedDown(let l): return "blk.\(l).ffn_down_shexp.weight"
        case .qA(let l): return "blk.\(l).attn_q_a.weight"
        case .qANorm(let l): return "blk.\(l).attn_q_a_norm.weight"
        case .qB(let l): return "blk.\(l).attn_q_b.weight"
        case .kvAWithRope(let l): return "blk.\(l).attn_kv_a_mqa.weight"
        case .kvANorm(let l): return "blk.\(l).attn_kv_a_norm.weight"
        case .kB(let l): return "blk.\(l).attn_k_b.weight"
        case .vB(let l): return "blk.\(l).attn_v_b.weight"
        case .kvB(let l): return "blk.\(l).attn_kv_b.weight"
        case .indexerQB(let l): return "blk.\(l).indexer.attn_q_b.weight"
        case .indexerK(let l): return "blk.\(l).indexer.attn_k.weight"
        case .indexerKNorm(let l): return "blk.\(l).indexer.k_norm.weight"
        case .indexerKNormBias(let l): return "blk.\(l).indexer.k_norm.bias"
        case .indexerProj(let l): return "blk.\(l).indexer.proj.weight"
        }
    }
}

/// DeepSeek V4's own tensors (hyper-connections, compressed attention, grouped output, hash routing).
public enum DeepSeek4TensorName {
    case hcAttnFn(Int), hcAttnBase(Int), hcAttnScale(Int), hcFFNFn(Int), hcFFNBase(Int), hcFFNScale(Int)
    case kv(Int), sinks(Int), outputA(Int), outputB(Int)
    case compressorKV(Int), compressorGate(Int), compressorPosition(Int), compressorNorm(Int)
    case indexerCompressorKV(Int), indexerCompressorGate(Int), indexerCompressorPosition(Int), indexerCompressorNorm(Int)
    case hashExperts(Int)
    case outputHcFn, outputHcScale, outputHcBase

    public var name: String {
        switch self {
        case .hcAttnFn(let l): return "blk.\(l).hc_attn_fn.weight"
        case .hcAttnBase(let l): return "blk.\(l).hc_attn_base.weight"
        case .hcAttnScale(let l): return "blk.\(l).hc_attn_scale.weight"
        case .hcFFNFn(let l): return "blk.\(l).hc_ffn_fn.weight"
        case .hcFFNBase(let l): return "blk.\(l).hc_ffn_base.weight"
        case .hcFFNScale(let l): return "blk.\(l).hc_ffn_scale.weight"
        case .kv(let l): return "blk.\(l).attn_kv.weight"
        case .sinks(let l): return "blk.\(l).attn_sinks.weight"
        case .outputA(let l): return "blk.\(l).attn_output_a.weight"
        case .outputB(let l): return "blk.\(l).attn_output_b.weight"
        case .compressorKV(let l): return "blk.\(l).attn_compressor_kv.weight"
        case .compressorGate(let l): return "blk.\(l).attn_compressor_gate.weight"
        case .compressorPosition(let l): return "blk.\(l).attn_compressor_ape.weight"
        case .compressorNorm(let l): return "blk.\(l).attn_compressor_norm.weight"
        case .indexerCompressorKV(let l): return "blk.\(l).indexer_compressor_kv.weight"
        case .indexerCompressorGate(let l): return "blk.\(l).indexer_compressor_gate.weight"
        case .indexerCompressorPosition(let l): return "blk.\(l).indexer_compressor_ape.weight"
        case .indexerCompressorNorm(let l): return "blk.\(l).indexer_compressor_norm.weight"
        case .hashExperts(let l): return "blk.\(l).ffn_gate_tid2eid.weight"
        case .outputHcFn: return "output_hc_fn.weight"
        case .outputHcScale: return "output_hc_scale.weight"
        case .outputHcBase: return "output_hc_base.weight"
        }
    }
}
