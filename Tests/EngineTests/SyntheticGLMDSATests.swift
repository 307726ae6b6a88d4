// The glm-dsa synthetic generator: a tiny random-weight glm-dsa file has the fixture's metadata keys
// (same types; no expert_gating_func) and tensor names per layer (indexer tensors on full layers only),
// the shapes of docs/models/glm_dsa.md §3, and DwarfStar loads it and generates from it with finite
// logits past the indexer's top-k.

import Foundation
import Testing
import Engine
import GGUF
import Models
import Sampling
import Synthesis

@Suite struct SyntheticGLMDSATests {
    static let fixture = frontierFixture("glm_dsa.f32.gguf")

    /// hidden 256, 4 layers (indexer full, shared, full, shared as in the fixture), 4 MLA heads, q rank 64,
    /// kv rank 64, rope 16, 8 Q4_K experts of 256, indexer 4 heads × 64 keeping 8 positions.
    static func writeTiny(_ dir: URL) throws -> (String, SyntheticModelSpec) {
        var spec = SyntheticModelSpec()
        spec.architecture = "glm-dsa"
        spec.hidden = 256; spec.layers = 4; spec.heads = 4; spec.kvHeads = 1; spec.feedForward = 512
        spec.experts = 8; spec.expertsUsed = 2; spec.expertFeedForward = 256; spec.routerSkew = 0.1
        spec.qLoraRank = 64; spec.kvLoraRank = 64; spec.ropeDim = 16; spec.nopeDim = 32; spec.valueDim = 32
        spec.type = .q4_K; spec.attentionType = .q8_0
        spec.glmDSA.indexerHeads = 4; spec.glmDSA.indexerHeadDim = 64; spec.glmDSA.indexerTopK = 8
        spec.glmDSA.indexerTypes = SyntheticGLMDSAShape.parseTypes("alternate", layers: 4)
        return (try writeSynthetic(spec, tokenizerFrom: fixture, to: dir, name: "glm-dsa-tiny.gguf"), spec)
    }

    @Test func indexerTypePatterns() {
        #expect(SyntheticGLMDSAShape.parseTypes("full", layers: 3) == [true, true, true])
        #expect(SyntheticGLMDSAShape.parseTypes("alternate", layers: 4) == [true, false, true, false])
        #expect(SyntheticGLMDSAShape.parseTypes("glm-5.2", layers: 8) == [true, true, true, false, false, false, true, false])
        #expect(SyntheticGLMDSAShape.parseTypes("1,0,f,s", layers: 4) == [true, false, true, false])
        #expect(SyntheticGLMDSAShape.parseTypes("1,x", layers: 2) == nil)
    }

    @Test func layoutMatchesTheFixture() throws {
        try withTiny("glm", Self.writeTiny) { path, _ in
            let (synth, fixture) = try openAgainstFixture(path, Self.fixture)
            #expect(synth["glm-dsa.expert_gating_func"] == nil)
            #expect(synth["glm-dsa.attention.indexer.types"]?.array?.compactMap(\.bool) == [true, false, true, false])
            expectSameTensorNames(synth, fixture, layers: 0..<4)
            // Shapes (ggml ne): e = 256, 4 heads × (nope 32 + rope 16), v 32, q rank 64, kv rank 64, indexer 4 × 64.
            let expected: [String: [Int]] = [
                "token_embd.weight": [256, 512], "blk.0.attn_q_a.weight": [256, 64], "blk.0.attn_q_b.weight": [64, 192],
                "blk.0.attn_kv_a_mqa.weight": [256, 80], "blk.0.attn_k_b.weight": [32, 64, 4], "blk.0.attn_v_b.weight": [64, 32, 4],
                "blk.0.attn_output.weight": [128, 256], "blk.0.ffn_gate.weight": [256, 512],
                "blk.0.indexer.attn_q_b.weight": [64, 256], "blk.0.indexer.attn_k.weight": [256, 64],
                "blk.0.indexer.k_norm.weight": [64], "blk.0.indexer.k_norm.bias": [64], "blk.2.indexer.proj.weight": [256, 4],
                "blk.1.ffn_gate_inp.weight": [256, 8], "blk.1.exp_probs_b.bias": [8], "blk.1.ffn_gate_exps.weight": [256, 256, 8],
                "blk.1.ffn_down_exps.weight": [256, 256, 8], "blk.1.ffn_down_shexp.weight": [256, 256],
            ]
            for (name, dims) in expected { #expect(synth.tensor(name)?.dims == dims, "\(name)") }
            #expect(synth.tensor("blk.1.ffn_gate_exps.weight")?.type == .q4_K)
            #expect(synth.tensor("blk.0.indexer.attn_q_b.weight")?.type == .q8_0)
            #expect(synth.tensor("blk.0.indexer.proj.weight")?.type == .f32)
        }
    }

    @Test func rejectsBadIndexerShapes() throws {
        var spec = SyntheticModelSpec()
        spec.architecture = "glm-dsa"; spec.hidden = 256; spec.layers = 2; spec.heads = 4; spec.kvHeads = 1
        spec.feedForward = 512; spec.experts = 4; spec.expertsUsed = 2; spec.expertFeedForward = 256; spec.qLoraRank = 64
        spec.glmDSA.indexerHeadDim = 96   // not a multiple of 64
        try expectRejected(spec, tokenizerFrom: Self.fixture)
        spec.glmDSA.indexerHeadDim = 64
        spec.glmDSA.indexerTypes = [false, true]   // layer 0 must be full
        try expectRejected(spec, tokenizerFrom: Self.fixture)
    }

    @Test func dwarfStarLoadsAndGenerates() throws {
        try withLoadedTiny("glm", Self.writeTiny) { loaded, spec in
            let indexer = try #require((loaded.model.body as? StandardStack)?.hooks.latentAttention?.indexer)
            #expect(indexer.heads == 4 && indexer.headDim == 64 && indexer.topK == 8)
            #expect(indexer.fullLayers == [true, false, true, false])
            #expect(loaded.model.config.layerCount == spec.layers)
            // 40 tokens: past the indexer's top-8, so later queries attend to a selection.
            try expectRunsAndGenerates(loaded, tokens: 40, context: 128)
        }
    }
}
