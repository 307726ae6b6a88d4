// The DeepSeek-V4 synthetic generator: a tiny random-weight deepseek4 file (a few MB) has the fixture's
// metadata keys (same types) and tensor names, the shapes of docs/models/deepseek4.md §2, and DwarfStar
// loads it and generates from it with finite logits (prefill past the window, CSA and HCA entries).

import Foundation
import Testing
import Engine
import GGUF
import Models
import Sampling
import Synthesis

@Suite struct SyntheticDeepSeek4Tests {
    static let fixture = frontierFixture("deepseek4.mxfp4.gguf")

    /// hidden 256, 4 layers (ratios 0, 0, 4, 128), 4 heads of 512, 8 MXFP4 experts of 128, window 16.
    static func writeTiny(_ dir: URL) throws -> (String, SyntheticModelSpec) {
        var spec = SyntheticModelSpec()
        spec.architecture = "deepseek4"
        spec.hidden = 256; spec.layers = 4; spec.experts = 8; spec.expertsUsed = 2; spec.expertFeedForward = 128
        spec.type = .mxfp4; spec.attentionType = .q8_0; spec.routerSkew = 0.1
        spec.deepseek4 = .scaled(hidden: 256)
        spec.deepseek4.window = 16
        spec.deepseek4.indexerTopK = 8
        return (try writeSynthetic(spec, tokenizerFrom: fixture, to: dir, name: "deepseek4-tiny.gguf"), spec)
    }

    @Test func layoutMatchesTheFixture() throws {
        try withTiny("v4", Self.writeTiny) { path, spec in
            let (synth, fixture) = try openAgainstFixture(path, Self.fixture)
            // Same tensor names per layer kind (fixture: L0 ratio 0, L1 CSA, L2 HCA; synthetic: L1 ratio 0, L2 CSA, L3 HCA),
            // with the hash table only in hash layers and the correction bias only elsewhere.
            func names(_ g: GGUFFile, _ l: Int) -> Set<String> {
                layerTensorNames(g, l).subtracting(["ffn_gate_tid2eid.weight", "exp_probs_b.bias"])
            }
            #expect(names(synth, 1) == names(fixture, 0))
            #expect(names(synth, 2) == names(fixture, 1))
            #expect(names(synth, 3) == names(fixture, 2))
            #expect(globalTensorNames(synth) == globalTensorNames(fixture))
            for l in 0..<spec.layers {
                // Hash layers 0...2 route by token id; the others choose by score + correction bias.
                #expect((synth.tensor("blk.\(l).ffn_gate_tid2eid.weight") != nil) == (l < 3), "layer \(l)")
                #expect((synth.tensor("blk.\(l).exp_probs_b.bias") != nil) == (l >= 3), "layer \(l)")
            }
            // Shapes (§2, ggml ne): e = 256, hc = 4, 4 heads × 512, q rank 64, 4 groups × rank 64, indexer 4 × 128.
            let expected: [String: [Int]] = [
                "token_embd.weight": [256, 512], "output_hc_fn.weight": [1024, 4], "blk.0.hc_attn_fn.weight": [1024, 24],
                "blk.0.attn_q_b.weight": [64, 2048], "blk.0.attn_kv.weight": [256, 512], "blk.0.attn_output_a.weight": [512, 256],
                "blk.0.attn_output_b.weight": [256, 256], "blk.2.attn_compressor_kv.weight": [256, 1024],
                "blk.2.attn_compressor_ape.weight": [1024, 4], "blk.3.attn_compressor_kv.weight": [256, 512],
                "blk.3.attn_compressor_ape.weight": [512, 128], "blk.2.indexer.attn_q_b.weight": [64, 512],
                "blk.2.indexer_compressor_kv.weight": [256, 256], "blk.2.indexer.proj.weight": [256, 4],
                "blk.0.ffn_gate_tid2eid.weight": [2, 512], "blk.0.ffn_gate_exps.weight": [256, 128, 8],
                "blk.0.ffn_down_exps.weight": [128, 256, 8], "blk.0.ffn_down_shexp.weight": [128, 256],
            ]
            for (name, dims) in expected { #expect(synth.tensor(name)?.dims == dims, "\(name)") }
            #expect(synth.tensor("blk.0.ffn_gate_exps.weight")?.type == .mxfp4)
            #expect(synth["deepseek4.attention.compress_ratios"]?.array?.compactMap(\.int) == [0, 0, 4, 128])
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            #expect(size < 16 << 20)
            #expect(SyntheticModel.totalBytes(spec, vocab: 512) == synth.tensors.reduce(0) { $0 + $1.byteCount })
        }
    }

    @Test func dwarfStarLoadsAndGenerates() throws {
        try withLoadedTiny("v4", Self.writeTiny) { loaded, _ in
            #expect(loaded.model.config.architecture == "deepseek4" && loaded.model.keepsSideState)
            // 140 tokens: past the window (16), 35 CSA entries (the indexer keeps 8), one HCA entry.
            try expectRunsAndGenerates(loaded, tokens: 140, context: 256)
        }
    }
}
