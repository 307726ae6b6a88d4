// synth: write a random-weight model of realistic shape (speed tests on models larger than the caches).

import ArgumentParser
import Engine
import Foundation
import GGUF

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random-weight Llama- or DeepSeek-V3-shaped GGUF (for speed measurements; its text is noise).")
    @Option(help: "Architecture: llama, or deepseek2 (MLA + MoE).") var arch: String = "llama"
    @Option(name: [.short, .customLong("output")], help: "GGUF file to write.") var output: String
    @Option(help: "Hidden size.") var hidden: Int = 2048
    @Option(help: "Layers.") var layers: Int = 24
    @Option(help: "Attention heads.") var heads: Int = 16
    @Option(name: .customLong("kv-heads"), help: "KV heads.") var kvHeads: Int = 4
    @Option(help: "Feed-forward size.") var ffn: Int = 5632
    @Option(help: "Weight type of every matrix (q4_K, q8_0, q4_1, q6_K, f16, ...).") var type: String = "q4_K"
    @Option(name: .customLong("tokenizer-from"), help: "Model whose tokenizer metadata is copied.") var tokenizerFrom: String = "smollm2"
    @Option(help: "Seed of the random weights.") var seed: UInt64 = 1
    @Option(help: "deepseek2: routed experts.") var experts: Int = 64
    @Option(name: .customLong("experts-used"), help: "deepseek2: experts per token.") var expertsUsed: Int = 6
    @Option(name: .customLong("router-skew"), help: "deepseek2: popularity skew of the experts (0 uniform; 0.1 Zipf-like).") var routerSkew: Float = 0
    @Option(name: .customLong("expert-ffn"), help: "deepseek2: feed-forward size of one expert.") var expertFFN: Int = 1024
    @Option(name: .customLong("shared-experts"), help: "deepseek2: shared experts.") var sharedExperts: Int = 1
    @Option(name: .customLong("attention-type"), help: "deepseek2: weight type of the MLA matrices.") var attentionType: String = "q8_0"

    func run() throws {
        guard let t = GGMLType(name: type) else { throw ValidationError("unknown type \(type)") }
        do {
            let source = try GGUFFile(path: try ModelStore.resolveOrPull(tokenizerFrom))
            var spec = SyntheticModelSpec()
            spec.hidden = hidden; spec.layers = layers; spec.heads = heads; spec.kvHeads = kvHeads
            spec.feedForward = ffn; spec.type = t; spec.seed = seed
            guard ["llama", "deepseek2"].contains(arch) else { throw ValidationError("--arch must be llama or deepseek2") }
            guard let at = GGMLType(name: attentionType) else { throw ValidationError("unknown type \(attentionType)") }
            spec.architecture = arch; spec.experts = experts; spec.expertsUsed = expertsUsed; spec.routerSkew = routerSkew
            spec.expertFeedForward = expertFFN; spec.sharedExperts = sharedExperts; spec.attentionType = at
            try SyntheticModel.write(spec, tokenizerFrom: source, to: output, log: printErr)
            print(output)
        } catch {
            throw fail(error)
        }
    }
}
