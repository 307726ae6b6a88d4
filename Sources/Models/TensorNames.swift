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

/// Gemma 4's own tensors: the per-layer embeddings (PLE), the second (MoE) feed-forward branch's norms and
/// scales, and the per-layer output scale.
public enum Gemma4TensorName {
    case perLayerTokenEmbedding, perLayerModelProjection, perLayerProjectionNorm
    case perLayerInputGate(Int), perLayerProjection(Int), perLayerPostNorm(Int)
    case postFFN1Norm(Int), preFFN2Norm(Int), postFFN2Norm(Int)
    case routerScale(Int), downExpertsScale(Int), layerOutputScale(Int)

    public var name: String {
        switch self {
        case .perLayerTokenEmbedding: return "per_layer_token_embd.weight"
        case .perLayerModelProjection: return "per_layer_model_proj.weight"
        case .perLayerProjectionNorm: return "per_layer_proj_norm.weight"
        case .perLayerInputGate(let l): return "blk.\(l).inp_gate.weight"
        case .perLayerProjection(let l): return "blk.\(l).proj.weight"
        case .perLayerPostNorm(let l): return "blk.\(l).post_norm.weight"
        case .postFFN1Norm(let l): return "blk.\(l).post_ffw_norm_1.weight"
        case .preFFN2Norm(let l): return "blk.\(l).pre_ffw_norm_2.weight"
        case .postFFN2Norm(let l): return "blk.\(l).post_ffw_norm_2.weight"
        case .routerScale(let l): return "blk.\(l).ffn_gate_inp.scale"
        case .downExpertsScale(let l): return "blk.\(l).ffn_down_exps.scale"
        case .layerOutputScale(let l): return "blk.\(l).layer_output_scale.weight"
        }
    }
}

/// Qwen3.5's own tensors: the Gated DeltaNet (linear attention) layers and the shared expert's gate.
public enum Qwen35TensorName {
    case attnQKV(Int), attnGate(Int)
    case ssmConv1d(Int), ssmAlpha(Int), ssmBeta(Int), ssmDtBias(Int), ssmA(Int), ssmNorm(Int), ssmOut(Int)
    case sharedExpertGate(Int)

    public var name: String {
        switch self {
        case .attnQKV(let l): return "blk.\(l).attn_qkv.weight"
        case .attnGate(let l): return "blk.\(l).attn_gate.weight"
        case .ssmConv1d(let l): return "blk.\(l).ssm_conv1d.weight"
        case .ssmAlpha(let l): return "blk.\(l).ssm_alpha.weight"
        case .ssmBeta(let l): return "blk.\(l).ssm_beta.weight"
        case .ssmDtBias(let l): return "blk.\(l).ssm_dt.bias"
        case .ssmA(let l): return "blk.\(l).ssm_a"
        case .ssmNorm(let l): return "blk.\(l).ssm_norm.weight"
        case .ssmOut(let l): return "blk.\(l).ssm_out.weight"
        case .sharedExpertGate(let l): return "blk.\(l).ffn_gate_inp_shexp.weight"
        }
    }
}

/// Tensors of an MTP / next-n layer (block N, after the trunk), beside that block's decoder tensors.
public enum NextNTensorName {
    case ehProjection(Int), embeddingNorm(Int), hiddenNorm(Int), sharedHeadNorm(Int), sharedHead(Int), embedTokens(Int)

    public var name: String {
        switch self {
        case .ehProjection(let l): return "blk.\(l).nextn.eh_proj.weight"
        case .embeddingNorm(let l): return "blk.\(l).nextn.enorm.weight"
        case .hiddenNorm(let l): return "blk.\(l).nextn.hnorm.weight"
        case .sharedHeadNorm(let l): return "blk.\(l).nextn.shared_head_norm.weight"
        case .sharedHead(let l): return "blk.\(l).nextn.shared_head_head.weight"
        case .embedTokens(let l): return "blk.\(l).nextn.embed_tokens.weight"
        }
    }
}
