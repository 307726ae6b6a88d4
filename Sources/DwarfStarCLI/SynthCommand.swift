// synth: write a random-weight model of realistic shape (speed tests on models larger than the caches).

import ArgumentParser
import Engine
import Foundation
import GGUF

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random-weight Llama-, DeepSeek-V3-, GLM-5- or DeepSeek-V4-shaped GGUF (for speed measurements; its text is noise).")
    @Option(help: "Architecture: llama, deepseek2 (MLA + MoE), glm-dsa (deepseek2 + DeepSeek sparse attention's lightning indexer) or deepseek4 (hyper-connections, compressed attention, MoE).")
    var arch: String = "llama"
    @Option(name: [.short, .customLong("output")], help: "GGUF file to write.") var output: String
    @Option(help: "Hidden size.") var hidden: Int = 2048
    @Option(help: "Layers (deepseek4: or chosen by --size).") var layers: Int?
    @Option(help: "deepseek4: target size of the file, e.g. 3G; picks the layer count.") var size: String?
    @Option(help: "Attention heads (default 16; deepseek4: hidden / 64).") var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "KV heads.") var kvHeads: Int = 4
    @Option(help: "Feed-forward size.") var ffn: Int = 5632
    @Option(help: "Weight type of every matrix (q4_K, q8_0, q4_1, q6_K, f16, ...); deepseek4: of the routed experts (default mxfp4; q4_K, q8_0, ...).")
    var type: String?
    @Option(name: .customLong("tokenizer-from"), help: "Model whose tokenizer metadata is copied (default smollm2; deepseek4: the deepseek4 test fixture's 512-token vocabulary when found, else smollm2).")
    var tokenizerFrom: String?
    @Option(help: "Seed of the random weights.") var seed: UInt64 = 1
    @Option(help: "deepseek2/4, glm-dsa: routed experts.") var experts: Int = 64
    @Option(name: .customLong("experts-used"), help: "deepseek2/4, glm-dsa: experts per token.") var expertsUsed: Int = 6
    @Option(name: .customLong("router-skew"), help: "deepseek2/4, glm-dsa: popularity skew of the experts (0 uniform; 0.1 Zipf-like).") var routerSkew: Float = 0
    @Option(name: .customLong("expert-ffn"), help: "deepseek2/4, glm-dsa: feed-forward size of one expert.") var expertFFN: Int = 1024
    @Option(name: .customLong("shared-experts"), help: "deepseek2/4, glm-dsa: shared experts.") var sharedExperts: Int = 1
    @Option(name: .customLong("attention-type"), help: "deepseek2, glm-dsa: weight type of the MLA (and indexer) matrices; deepseek4: of the attention, compressor, indexer and shared-expert matrices.")
    var attentionType: String = "q8_0"
    @Option(name: .customLong("q-lora-rank"), help: "deepseek2/4, glm-dsa: q low-rank width (default 768; deepseek4: hidden / 4).") var qLoraRank: Int?
    // deepseek4 shapes (defaults: DeepSeek V4 Flash scaled by hidden / 4096, see SyntheticDeepSeek4.swift).
    @Option(name: .customLong("head-dim"), help: "deepseek4: head size (K = V), 512.") var headDim: Int?
    @Option(name: .customLong("rope-dim"), help: "deepseek4: rotated dims at the end of each head, 64.") var ropeDim: Int?
    @Option(name: .customLong("output-groups"), help: "deepseek4: groups of the low-rank output, 8 (must divide the heads).") var outputGroups: Int?
    @Option(name: .customLong("output-rank"), help: "deepseek4: rank of each output group (default hidden / 4).") var outputRank: Int?
    @Option(name: .customLong("indexer-heads"), help: "deepseek4: lightning-indexer heads (default hidden / 64); glm-dsa: 32.") var indexerHeads: Int?
    @Option(name: .customLong("indexer-head-dim"), help: "deepseek4, glm-dsa: indexer head size, 128 (a multiple of 64).") var indexerHeadDim: Int?
    @Option(name: .customLong("indexer-top-k"), help: "deepseek4: compressed entries kept per query, 512; glm-dsa: positions kept per query, 2048.") var indexerTopK: Int?
    @Option(name: .customLong("indexer-types"), help: "glm-dsa: layers with their own indexer: full (every layer, GLM-5), alternate (F S F S …), glm-5.2 (F F F S S S F S S S …) or 1/0 per layer, comma-separated.")
    var indexerTypes: String?
    @Option(help: "deepseek4: sliding window of raw rows, 128.") var window: Int?
    @Option(name: .customLong("hash-layers"), help: "deepseek4: leading layers routed by token id, 3.") var hashLayers: Int?
    @Option(name: .customLong("compress-ratios"), help: "deepseek4: per-layer ratios 0/4/128, comma-separated (default 0,0,4,128,4,128,...).")
    var compressRatios: String?
    @Option(name: .customLong("embedding-type"), help: "deepseek4: type of token_embd and output, f16.") var embeddingType: String = "f16"

    /// The deepseek4 fixture (its tokenizer is what llama.cpp's converter wrote), from the working
    /// directory or from this source tree.
    static func deepSeek4Fixture() -> String? {
        let relative = "Tests/ModelsTests/Fixtures/frontier/deepseek4.mxfp4.gguf"
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return [relative, root.appendingPathComponent(relative).path].first { FileManager.default.fileExists(atPath: $0) }
    }

    func run() throws {
        guard ["llama", "deepseek2", "glm-dsa", "deepseek4"].contains(arch) else { throw ValidationError("--arch must be llama, deepseek2, glm-dsa or deepseek4") }
        let v4 = arch == "deepseek4", glm = arch == "glm-dsa"
        let typeName = type ?? (v4 ? "mxfp4" : "q4_K")
        guard let t = GGMLType(name: typeName) else { throw ValidationError("unknown type \(typeName)") }
        guard let at = GGMLType(name: attentionType) else { throw ValidationError("unknown type \(attentionType)") }
        guard let et = GGMLType(name: embeddingType) else { throw ValidationError("unknown type \(embeddingType)") }
        if !v4 {
            let v4Only: [(String, Any?)] = [("--size", size), ("--head-dim", headDim), ("--rope-dim", ropeDim), ("--output-groups", outputGroups),
                                            ("--output-rank", outputRank), ("--window", window), ("--hash-layers", hashLayers),
                                            ("--compress-ratios", compressRatios)]
            if let bad = v4Only.first(where: { $0.1 != nil }) { throw ValidationError("\(bad.0) is a deepseek4 option") }
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
            let tokenizer = tokenizerFrom ?? (v4 ? Synth.deepSeek4Fixture() ?? "smollm2" : "smollm2")
            let source = try GGUFFile(path: try ModelStore.resolveOrPull(tokenizer))
            var spec = SyntheticModelSpec()
            spec.hidden = hidden; spec.layers = layers ?? 24; spec.heads = heads ?? 16; spec.kvHeads = kvHeads
            spec.feedForward = ffn; spec.type = t; spec.seed = seed
            spec.architecture = arch; spec.experts = experts; spec.expertsUsed = expertsUsed; spec.routerSkew = routerSkew
            spec.expertFeedForward = expertFFN; spec.sharedExperts = sharedExperts; spec.attentionType = at
            if let q = qLoraRank { spec.qLoraRank = q }
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
                         + "\(experts) experts (\(expertsUsed) used) × \(expertFFN) \(t.name), attention \(at.name), tokenizer from \(tokenizer)")
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
                if let size {
                    let vocab = source["tokenizer.ggml.tokens"]?.array?.count ?? 0
                    spec.layers = SyntheticModel.deepSeek4Layers(toFit: try parseByteSize(size), spec, vocab: vocab)
                }
                spec.deepseek4.hashLayers = min(spec.deepseek4.hashLayers, spec.layers)
                printErr("deepseek4: \(spec.layers) layers, hidden \(hidden), \(s.heads) heads × \(s.headDim) (rope \(s.ropeDim)), q rank \(s.qLoraRank), "
                         + "output \(s.outputGroups) groups × rank \(s.outputRank), indexer \(s.indexerHeads) × \(s.indexerHeadDim) top-k \(s.indexerTopK), "
                         + "window \(s.window), \(experts) experts (\(expertsUsed) used) × \(expertFFN) \(t.name), attention \(at.name), "
                         + "embeddings \(et.name), tokenizer from \(tokenizer)")
            }
            try SyntheticModel.write(spec, tokenizerFrom: source, to: output, log: printErr)
            print(output)
        } catch {
            throw fail(error)
        }
    }
}
