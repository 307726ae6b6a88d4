// synth: write a random-weight model of realistic shape (speed tests on models larger than the caches).

import ArgumentParser
import Engine
import Foundation
import GGUF
import Synthesis

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random-weight Llama-, DeepSeek-V3-, GLM-5-, DeepSeek-V4-, Qwen3.5-MoE- or Gemma-4-shaped GGUF (for speed measurements; its text is noise).")
    @Option(help: "Architecture: llama, deepseek2 (MLA + MoE), glm-dsa (deepseek2 + DeepSeek sparse attention's lightning indexer), deepseek4 (hyper-connections, compressed attention, MoE) qwen35moe (Gated DeltaNet + gated full attention every 4th layer, MoE with a gated shared expert) or gemma4 (sliding/full attention, per-layer embeddings, KV-shared last layers, dense MLP + MoE).")
    var arch: String = "llama"
    @Option(name: [.short, .customLong("output")], help: "GGUF file to write.") var output: String
    @Option(help: "Hidden size.") var hidden: Int = 2048
    @Option(help: "Layers (deepseek4, qwen35moe, gemma4: or chosen by --size; qwen35moe default 16, gemma4 12).") var layers: Int?
    @Option(help: "deepseek4, qwen35moe, gemma4: target size of the file, e.g. 3G; picks the layer count.") var size: String?
    @Option(help: "Attention heads (default 16; deepseek4: hidden / 64; qwen35moe: full-attention heads; gemma4: 16).") var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "KV heads (default 4; qwen35moe: 2; gemma4: of the sliding layers, 8).") var kvHeads: Int?
    @Option(help: "Feed-forward size (default 5632; gemma4: the dense MLP beside the experts, 1536).") var ffn: Int?
    @Option(help: "Weight type of every matrix (q4_K, q8_0, q4_1, q6_K, f16, ...); deepseek4: of the routed experts (default mxfp4; q4_K, q8_0, ...); qwen35moe, gemma4: of the routed experts (default q4_K).")
    var type: String?
    @Option(name: .customLong("tokenizer-from"), help: "Model whose tokenizer metadata is copied (default smollm2; deepseek4, qwen35moe, gemma4: the test fixture's 512-token vocabulary when found, else smollm2).")
    var tokenizerFrom: String?
    @Option(help: "Seed of the random weights.") var seed: UInt64 = 1
    @Option(help: "deepseek2/4, glm-dsa: routed experts.") var experts: Int = 64
    @Option(name: .customLong("experts-used"), help: "deepseek2/4, glm-dsa: experts per token (default 6; qwen35moe, gemma4: 8).") var expertsUsed: Int?
    @Option(name: .customLong("router-skew"), help: "deepseek2/4, glm-dsa: popularity skew of the experts (0 uniform; 0.1 Zipf-like).") var routerSkew: Float = 0
    @Option(name: .customLong("expert-ffn"), help: "deepseek2/4, glm-dsa, qwen35moe, gemma4: feed-forward size of one expert (default 1024; qwen35moe: 512; gemma4: 768).") var expertFFN: Int?
    @Option(name: .customLong("shared-experts"), help: "deepseek2/4, glm-dsa: shared experts.") var sharedExperts: Int = 1
    @Option(name: .customLong("attention-type"), help: "deepseek2, glm-dsa: weight type of the MLA (and indexer) matrices; deepseek4: of the attention, compressor, indexer and shared-expert matrices; qwen35moe, gemma4: of every matrix but the routed experts.")
    var attentionType: String = "q8_0"
    @Option(name: .customLong("q-lora-rank"), help: "deepseek2/4, glm-dsa: q low-rank width (default 768; deepseek4: hidden / 4).") var qLoraRank: Int?
    // deepseek4 shapes (defaults: DeepSeek V4 Flash scaled by hidden / 4096, see SyntheticDeepSeek4.swift).
    @Option(name: .customLong("head-dim"), help: "deepseek4: head size (K = V), 512; qwen35moe: full-attention head size, 256; gemma4: full-attention head size (K = V), 512.") var headDim: Int?
    @Option(name: .customLong("rope-dim"), help: "deepseek4: rotated dims at the end of each head, 64; qwen35moe: rotated dims per full-attention head, 64.") var ropeDim: Int?
    @Option(name: .customLong("output-groups"), help: "deepseek4: groups of the low-rank output, 8 (must divide the heads).") var outputGroups: Int?
    @Option(name: .customLong("output-rank"), help: "deepseek4: rank of each output group (default hidden / 4).") var outputRank: Int?
    @Option(name: .customLong("indexer-heads"), help: "deepseek4: lightning-indexer heads (default hidden / 64); glm-dsa: 32.") var indexerHeads: Int?
    @Option(name: .customLong("indexer-head-dim"), help: "deepseek4, glm-dsa: indexer head size, 128 (a multiple of 64).") var indexerHeadDim: Int?
    @Option(name: .customLong("indexer-top-k"), help: "deepseek4: compressed entries kept per query, 512; glm-dsa: positions kept per query, 2048.") var indexerTopK: Int?
    @Option(name: .customLong("indexer-types"), help: "glm-dsa: layers with their own indexer: full (every layer, GLM-5), alternate (F S F S …), glm-5.2 (F F F S S S F S S S …) or 1/0 per layer, comma-separated.")
    var indexerTypes: String?
    @Option(help: "deepseek4: sliding window of raw rows, 128; gemma4: sliding window, 512.") var window: Int?
    @Option(name: .customLong("hash-layers"), help: "deepseek4: leading layers routed by token id, 3.") var hashLayers: Int?
    @Option(name: .customLong("compress-ratios"), help: "deepseek4: per-layer ratios 0/4/128, comma-separated (default 0,0,4,128,4,128,...).")
    var compressRatios: String?
    // qwen35moe shapes (defaults: Qwen3.5-35B-A3B, see SyntheticQwen35MoE.swift).
    @Option(name: .customLong("linear-key-heads"), help: "qwen35moe: Gated DeltaNet key/query heads, 16.") var linearKeyHeads: Int?
    @Option(name: .customLong("linear-value-heads"), help: "qwen35moe: Gated DeltaNet value heads, 32 (a multiple of the key heads).") var linearValueHeads: Int?
    @Option(name: .customLong("state-size"), help: "qwen35moe: Gated DeltaNet key = value head size, 128.") var stateSize: Int?
    @Option(name: .customLong("conv-kernel"), help: "qwen35moe: causal conv kernel, 4.") var convKernel: Int?
    @Option(name: .customLong("full-attention-interval"), help: "qwen35moe: every n-th layer is full attention, 4; gemma4: 6.") var fullAttentionInterval: Int?
    @Option(name: .customLong("shared-ffn"), help: "qwen35moe: shared expert width, 512.") var sharedFFN: Int?
    // gemma4 shapes (defaults: Gemma 4 26B-A4B's attention with E2B's per-layer embeddings, see SyntheticGemma4.swift).
    @Option(name: .customLong("sliding-head-dim"), help: "gemma4: sliding-layer head size, 256.") var slidingHeadDim: Int?
    @Option(name: .customLong("full-kv-heads"), help: "gemma4: KV heads of the full layers, 2.") var fullKVHeads: Int?
    @Option(name: .customLong("per-layer-input"), help: "gemma4: per-layer-embedding width, 256 (0: none).") var perLayerInput: Int?
    @Option(name: .customLong("shared-kv-layers"), help: "gemma4: last layers reusing earlier layers' K/V, 2.") var sharedKVLayers: Int?
    @Option(name: .customLong("embedding-type"), help: "deepseek4: type of token_embd and output, f16.") var embeddingType: String = "f16"

    /// The deepseek4 fixture (its tokenizer is what llama.cpp's converter wrote), from the working
    /// directory or from this source tree.
    static func deepSeek4Fixture() -> String? { fixture("deepseek4.mxfp4.gguf") }

    static func fixture(_ name: String) -> String? {
        let relative = "Tests/ModelsTests/Fixtures/frontier/" + name
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return [relative, root.appendingPathComponent(relative).path].first { FileManager.default.fileExists(atPath: $0) }
    }

    @Option(name: .customLong("append-nextn"), help: ArgumentHelp(
        "Instead of a new model: copy this GGUF (a standard-stack model such as glm4moe or deepseek2) to -o with one MTP / next-n layer appended (a copy of its last block, a seeded eh_proj), for --spec mtp.",
        valueName: "file"))
    var appendNextN: String?

    func run() throws {
        if let source = appendNextN {
            do { try SyntheticModel.appendNextN(to: try GGUFFile(path: try ModelStore.resolveOrPull(source)), writing: output, seed: seed) } catch {
                throw fail(error)
            }
            printErr("wrote \(output): \(source) with a next-n layer")
            return
        }
        guard ["llama", "deepseek2", "glm-dsa", "deepseek4", "qwen35moe", "gemma4"].contains(arch) else {
            throw ValidationError("--arch must be llama, deepseek2, glm-dsa, deepseek4, qwen35moe or gemma4")
        }
        let v4 = arch == "deepseek4", glm = arch == "glm-dsa", qwen = arch == "qwen35moe", gemma = arch == "gemma4"
        if !qwen {
            let qwenOnly: [(String, Any?)] = [("--linear-key-heads", linearKeyHeads), ("--linear-value-heads", linearValueHeads), ("--state-size", stateSize),
                                              ("--conv-kernel", convKernel), ("--shared-ffn", sharedFFN)]
            if let bad = qwenOnly.first(where: { $0.1 != nil }) { throw ValidationError("\(bad.0) is a qwen35moe option") }
        }
        if !gemma {
            let gemmaOnly: [(String, Any?)] = [("--sliding-head-dim", slidingHeadDim), ("--full-kv-heads", fullKVHeads),
                                               ("--per-layer-input", perLayerInput), ("--shared-kv-layers", sharedKVLayers)]
            if let bad = gemmaOnly.first(where: { $0.1 != nil }) { throw ValidationError("\(bad.0) is a gemma4 option") }
        }
        if !qwen && !gemma && fullAttentionInterval != nil { throw ValidationError("--full-attention-interval is a qwen35moe / gemma4 option") }
        let typeName = type ?? (v4 ? "mxfp4" : "q4_K")
        guard let t = GGMLType(name: typeName) else { throw ValidationError("unknown type \(typeName)") }
        guard let at = GGMLType(name: attentionType) else { throw ValidationError("unknown type \(attentionType)") }
        guard let et = GGMLType(name: embeddingType) else { throw ValidationError("unknown type \(embeddingType)") }
        if !v4 {
            var v4Only: [(String, Any?)] = [("--output-groups", outputGroups),
                                            ("--output-rank", outputRank), ("--hash-layers", hashLayers),
                                            ("--compress-ratios", compressRatios)]
            if !qwen && !gemma { v4Only += [("--size", size), ("--head-dim", headDim)] }
            if !qwen { v4Only += [("--rope-dim", ropeDim)] }
            if !gemma { v4Only += [("--window", window)] }
            if let bad = v4Only.first(where: { $0.1 != nil }) { throw ValidationError("\(bad.0) is not a \(arch) option") }
        }
        if !glm && indexerTypes != nil { throw ValidationError("--indexer-types is a glm-dsa option") }
        if !v4 && !glm {
            let indexerOnly: [(String, Any?)] = [("--indexer-heads", indexerHeads), ("--indexer-head-dim", indexerHeadDim), ("--indexer-top-k", indexerTopK)]
            if let bad = indexerOnly.first(where: { $0.1 != nil }) { throw ValidationError("\(bad.0) is a deepseek4 / glm-dsa option") }
        }
        if size != nil && layers != nil { throw ValidationError("give --layers or --size, not both") }
        var ratios: [Int]? = nil
        if let text = compressRatios {
            ratios = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard ratios!.count == text.split(separator: ",").count else { throw ValidationError("--compress-ratios: comma-separated integers") }
        }
        do {
            let fixtureName = v4 ? "deepseek4.mxfp4.gguf" : qwen ? "qwen35moe.f32.gguf" : gemma ? "gemma4.f32.gguf" : nil
            let tokenizer = tokenizerFrom ?? fixtureName.flatMap(Synth.fixture) ?? "smollm2"
            let source = try GGUFFile(path: try ModelStore.resolveOrPull(tokenizer))
            var spec = SyntheticModelSpec()
            spec.hidden = hidden; spec.layers = layers ?? (qwen ? 16 : gemma ? 12 : 24); spec.heads = heads ?? 16; spec.kvHeads = kvHeads ?? 4
            spec.feedForward = ffn ?? (gemma ? 1536 : 5632); spec.type = t; spec.seed = seed
            spec.architecture = arch; spec.experts = experts; spec.expertsUsed = expertsUsed ?? (qwen || gemma ? 8 : 6); spec.routerSkew = routerSkew
            spec.expertFeedForward = expertFFN ?? (qwen ? 512 : gemma ? 768 : 1024); spec.sharedExperts = sharedExperts; spec.attentionType = at
            if let q = qLoraRank { spec.qLoraRank = q }
            /// --size: the layer count whose file comes closest to the target (shape set first).
            func fitSize() throws {
                guard let size else { return }
                let vocab = source["tokenizer.ggml.tokens"]?.array?.count ?? 0
                spec.layers = SyntheticModel.layers(toFit: try parseByteSize(size), spec, vocab: vocab)
            }
            if qwen {
                var q = SyntheticQwen35MoEShape()
                if let v = heads { q.heads = v }
                if let v = kvHeads { q.kvHeads = v }
                if let v = headDim { q.headDim = v }
                if let v = ropeDim { q.ropeDim = v }
                if let v = linearKeyHeads { q.keyHeads = v }
                if let v = linearValueHeads { q.valueHeads = v }
                if let v = stateSize { q.stateSize = v }
                if let v = convKernel { q.convKernel = v }
                if let v = fullAttentionInterval { q.fullAttentionInterval = v }
                if let v = sharedFFN { q.sharedFeedForward = v }
                spec.qwen35moe = q
                try fitSize()
                printErr("qwen35moe: \(spec.layers) layers (full attention every \(q.fullAttentionInterval)), hidden \(hidden), "
                         + "linear attention \(q.keyHeads) key / \(q.valueHeads) value heads × \(q.stateSize) (conv \(q.convKernel)), "
                         + "full attention \(q.heads) / \(q.kvHeads) KV heads × \(q.headDim) (rope \(q.ropeDim), sections \(q.ropeSections)), "
                         + "\(experts) experts (\(spec.expertsUsed) used) × \(spec.expertFeedForward) \(t.name), shared expert \(q.sharedFeedForward), "
                         + "other matrices \(at.name), tokenizer from \(tokenizer)")
            }
            if gemma {
                var g = SyntheticGemma4Shape()
                if let v = heads { g.heads = v }
                if let v = kvHeads { g.slidingKVHeads = v }
                if let v = fullKVHeads { g.fullKVHeads = v }
                if let v = headDim { g.fullHeadDim = v }
                if let v = slidingHeadDim { g.slidingHeadDim = v }
                if let v = window { g.window = v }
                if let v = perLayerInput { g.perLayerInput = v }
                if let v = sharedKVLayers { g.sharedKVLayers = v }
                if let v = fullAttentionInterval { g.fullInterval = v }
                spec.gemma4 = g
                try fitSize()
                printErr("gemma4: \(spec.layers) layers (\(g.sliding(layers: spec.layers).map { $0 ? "S" : "F" }.joined()), last \(g.sharedKVLayers) KV-shared), "
                         + "hidden \(hidden), \(g.heads) heads; sliding \(g.slidingKVHeads) KV × \(g.slidingHeadDim), window \(g.window); "
                         + "full \(g.fullKVHeads) KV × \(g.fullHeadDim) (K = V, \(g.fullRopePairs) rotated pairs); per-layer input \(g.perLayerInput); "
                         + "dense MLP \(spec.feedForward) + \(experts) experts (\(spec.expertsUsed) used) × \(spec.expertFeedForward) \(t.name); "
                         + "other matrices \(at.name), tokenizer from \(tokenizer)")
            }
            if glm {
                var g = SyntheticGLMDSAShape()
                if let v = indexerHeads { g.indexerHeads = v }
                if let v = indexerHeadDim { g.indexerHeadDim = v }
                if let v = indexerTopK { g.indexerTopK = v }
                guard let types = SyntheticGLMDSAShape.parseTypes(indexerTypes ?? "full", layers: spec.layers), types.count == spec.layers else {
                    throw ValidationError("--indexer-types: full, alternate, glm-5.2 or 1/0 for each of the \(spec.layers) layers, comma-separated")
                }
                g.indexerTypes = types
                spec.glmDSA = g
                printErr("glm-dsa: \(spec.layers) layers, hidden \(hidden), \(spec.heads) MLA heads (q rank \(spec.qLoraRank), kv rank \(spec.kvLoraRank)), "
                         + "indexer \(g.indexerHeads) × \(g.indexerHeadDim) top-k \(g.indexerTopK) on \(types.filter { $0 }.count) of \(spec.layers) layers, "
                         + "\(experts) experts (\(spec.expertsUsed) used) × \(spec.expertFeedForward) \(t.name), attention \(at.name), tokenizer from \(tokenizer)")
            }
            if v4 {
                var s = SyntheticDeepSeek4Shape.scaled(hidden: hidden)
                if let v = heads { s.heads = v }
                if let v = headDim { s.headDim = v }
                if let v = ropeDim { s.ropeDim = v }
                if let v = qLoraRank { s.qLoraRank = v }
                if let v = outputGroups { s.outputGroups = v }
                if let v = outputRank { s.outputRank = v }
                if let v = indexerHeads { s.indexerHeads = v }
                if let v = indexerHeadDim { s.indexerHeadDim = v }
                if let v = indexerTopK { s.indexerTopK = v }
                if let v = window { s.window = v }
                if let v = hashLayers { s.hashLayers = v }
                s.compressRatios = ratios
                s.embeddingType = et
                spec.deepseek4 = s
                try fitSize()
                spec.deepseek4.hashLayers = min(spec.deepseek4.hashLayers, spec.layers)
                printErr("deepseek4: \(spec.layers) layers, hidden \(hidden), \(s.heads) heads × \(s.headDim) (rope \(s.ropeDim)), q rank \(s.qLoraRank), "
                         + "output \(s.outputGroups) groups × rank \(s.outputRank), indexer \(s.indexerHeads) × \(s.indexerHeadDim) top-k \(s.indexerTopK), "
                         + "window \(s.window), \(experts) experts (\(spec.expertsUsed) used) × \(spec.expertFeedForward) \(t.name), attention \(at.name), "
                         + "embeddings \(et.name), tokenizer from \(tokenizer)")
            }
            try SyntheticModel.write(spec, tokenizerFrom: source, to: output, log: printErr)
            print(output)
        } catch {
            throw fail(error)
        }
    }
}
