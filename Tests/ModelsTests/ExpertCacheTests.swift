// Routed experts streamed through a few RAM slots give the same logits, bit for bit, as all experts
// mapped: with one slot (every expert in its own wave, evicted at once) and with a few.

import Foundation
import Testing
import GGUF
import KVCache
import Models

@Suite struct ExpertCacheTests {
    @Test(arguments: ["qwen3moe", "glm4moe", "llama4", "deepseekv3"])
    func streamedExpertsMatchMapped(arch: String) throws {
        let golden = try loadGolden(arch)
        let reference = try loadModel(arch, "f32")
        let vocab = reference.vocabularySize
        func run(_ model: TransformerModel) throws -> [Float] {
            let state = InferenceState(config: model.config, contextLength: 64, maxBatch: 64, threads: 2)
            var out = Array(try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all))
            for step in 0..<4 {
                let next = Int32(golden.greedy.next_ids[step])
                out += Array(try model.forward([next], startPosition: state.position, state: state, logits: .last))
            }
            return out
        }
        let expected = try run(reference)
        for slots in [1, 3] {
            let model = try loadModel(arch, "f32")
            guard case .moe(let f)? = model.layers.first(where: { if case .moe = $0.ffn { return true }; return false })?.ffn else {
                Issue.record("\(arch) has no MoE layer"); return
            }
            let bytes = ExpertCache.expertBytes([f.gate[0], f.up[0], f.down[0]])
            model.expertCache = try ExpertCache(path: model.gguf.path, fileBase: model.gguf.base, slotBytes: bytes, slots: slots)
            let got = try run(model)
            #expect(got == expected, "\(arch), \(slots) slots")
            let stats = model.expertCache!.stats
            #expect(stats.misses > 0 && stats.bytesRead == stats.misses * bytes)
            #expect(got.count == (golden.token_ids.count + 4) * vocab)
        }
    }
}
