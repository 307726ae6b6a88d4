// The gemma4 synthetic generator: a tiny random-weight gemma4 file has the fixture's metadata keys (same
// types) and tensor names per layer (sliding and full layers owning K/V, KV-shared sliding and full layers,
// the fixture's 6-layer pattern S S S F S F), the shapes of docs/models/gemma4.md §3, and DwarfStar loads it
// and generates from it past the sliding window.

import Foundation
import Testing
import Engine
import GGUF
import Models
import Sampling
import Synthesis

@Suite struct SyntheticGemma4Tests {
    static let fixture = frontierFixture("gemma4.f32.gguf")

    /// hidden 256, 6 layers (full every 4th and last, last 2 KV-shared: S S S F S F as in the fixture), 4 heads;
    /// sliding 2 KV × 64 with a window of 16, full 1 KV × 128; PLE 32; dense MLP 256 (double-wide when shared),
    /// 8 Q4_K experts of 256 (2 used).
    static func writeTiny(_ dir: URL) throws -> (String, SyntheticModelSpec) {
        var spec = SyntheticModelSpec()
        spec.architecture = "gemma4"
        spec.hidden = 256; spec.layers = 6; spec.feedForward = 256
        spec.experts = 8; spec.expertsUsed = 2; spec.expertFeedForward = 256; spec.routerSkew = 0.1
        spec.type = .q4_K; spec.attentionType = .q8_0
        var g = SyntheticGemma4Shape()
        g.heads = 4; g.slidingKVHeads = 2; g.fullKVHeads = 1; g.slidingHeadDim = 64; g.fullHeadDim = 128
        g.window = 16; g.perLayerInput = 32; g.sharedKVLayers = 2; g.fullInterval = 4; g.doubleWideShared = true
        spec.gemma4 = g
        return (try writeSynthetic(spec, tokenizerFrom: fixture, to: dir, name: "gemma4-tiny.gguf"), spec)
    }

    @Test func slidingPatternPutsTheSourcesBeforeTheSharedLayers() {
        var g = SyntheticGemma4Shape()
        g.fullInterval = 6; g.sharedKVLayers = 2
        // 12 layers: full at 5 and 11; layers 8, 9 (sources of the shared 10, 11) forced sliding, full.
        #expect(g.sliding(layers: 12).map { $0 ? "S" : "F" }.joined() == "SSSSSFSSSFSF")
        g.sharedKVLayers = 0
        #expect(g.sliding(layers: 12).map { $0 ? "S" : "F" }.joined() == "SSSSSFSSSSSF")
        // The last layer is full: 8 layers with 2 shared → S S S S S F (sources 4, 5) S F.
        g.sharedKVLayers = 2
        #expect(g.sliding(layers: 8).map { $0 ? "S" : "F" }.joined() == "SSSSSFSF")
    }

    @Test func layoutMatchesTheFixture() throws {
        try withTiny("gemma4", Self.writeTiny) { path, spec in
            let (synth, fixture) = try openAgainstFixture(path, Self.fixture)
            #expect(synth["tokenizer.ggml.model"]?.string == "gemma4")
            #expect(synth["gemma4.attention.sliding_window_pattern"]?.array?.compactMap(\.bool) == [true, true, true, false, true, false])
            #expect(synth["gemma4.attention.head_count_kv"]?.array?.compactMap(\.int) == [2, 2, 2, 1, 2, 1])
            #expect(synth["gemma4.feed_forward_length"]?.array?.compactMap(\.int) == [256, 256, 256, 256, 512, 512])
            expectSameTensorNames(synth, fixture, layers: 0..<6)
            // Shapes (ggml ne): e = 256, L·P = 192, sliding 4 × 64 (KV 2 × 64), full 4 × 128 (KV 1 × 128, K = V).
            let expected: [String: [Int]] = [
                "token_embd.weight": [256, 512], "per_layer_token_embd.weight": [192, 512], "per_layer_model_proj.weight": [256, 192],
                "per_layer_proj_norm.weight": [32], "rope_freqs.weight": [64],
                "blk.0.attn_q.weight": [256, 256], "blk.0.attn_k.weight": [256, 128], "blk.0.attn_v.weight": [256, 128],
                "blk.0.attn_q_norm.weight": [64], "blk.3.attn_q.weight": [256, 512], "blk.3.attn_k.weight": [256, 128],
                "blk.3.attn_output.weight": [512, 256], "blk.5.attn_q.weight": [256, 512], "blk.4.ffn_gate.weight": [256, 512],
                "blk.0.ffn_gate_up_exps.weight": [256, 512, 8], "blk.0.ffn_down_exps.weight": [256, 256, 8],
                "blk.0.ffn_down_exps.scale": [8], "blk.0.ffn_gate_inp.weight": [256, 8], "blk.0.ffn_gate_inp.scale": [256],
                "blk.0.inp_gate.weight": [256, 32], "blk.0.proj.weight": [32, 256], "blk.0.layer_output_scale.weight": [1],
            ]
            for (name, dims) in expected { #expect(synth.tensor(name)?.dims == dims, "\(name)") }
            #expect(synth.tensor("blk.0.ffn_gate_up_exps.weight")?.type == .q4_K)
            #expect(synth.tensor("blk.0.attn_q.weight")?.type == .q8_0)
            #expect(synth.tensor("rope_freqs.weight")?.type == .f32)
            #expect(SyntheticModel.totalBytes(spec, vocab: 512) == synth.tensors.reduce(0) { $0 + $1.byteCount })
        }
    }

    @Test func rejectsBadShapes() throws {
        var spec = SyntheticModelSpec()
        spec.architecture = "gemma4"; spec.hidden = 256; spec.layers = 3; spec.feedForward = 256
        spec.experts = 4; spec.expertsUsed = 2; spec.expertFeedForward = 256
        spec.gemma4.sharedKVLayers = 2   // needs at least 4 layers
        try expectRejected(spec, tokenizerFrom: Self.fixture)
        spec.layers = 6; spec.gemma4.heads = 16; spec.gemma4.slidingKVHeads = 3   // 16 heads, 3 KV heads
        try expectRejected(spec, tokenizerFrom: Self.fixture)
    }

    @Test func dwarfStarLoadsAndGenerates() throws {
        try withLoadedTiny("gemma4", Self.writeTiny) { loaded, spec in
            #expect(loaded.model.config.architecture == "gemma4" && loaded.model.body.batchInvariant && loaded.model.body.exactDecodeRows)
            #expect(loaded.model.config.layerCount == spec.layers)
            #expect(loaded.model.config.slidingWindow == 16)
            // 40 tokens: past the window of 16.
            try expectRunsAndGenerates(loaded, tokens: 40, context: 128)
        }
    }
}
