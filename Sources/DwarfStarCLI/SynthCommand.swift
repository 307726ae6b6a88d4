// synth: write a random-weight model of realistic shape (speed tests on models larger than the caches).

import ArgumentParser
import Engine
import Foundation
import GGUF

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random-weight Llama-shaped GGUF (for speed measurements; its text is noise).")
    @Option(name: [.short, .customLong("output")], help: "GGUF file to write.") var output: String
    @Option(help: "Hidden size.") var hidden: Int = 2048
    @Option(help: "Layers.") var layers: Int = 24
    @Option(help: "Attention heads.") var heads: Int = 16
    @Option(name: .customLong("kv-heads"), help: "KV heads.") var kvHeads: Int = 4
    @Option(help: "Feed-forward size.") var ffn: Int = 5632
    @Option(help: "Weight type of every matrix (q4_K, q8_0, q4_1, q6_K, f16, ...).") var type: String = "q4_K"
    @Option(name: .customLong("tokenizer-from"), help: "Model whose tokenizer metadata is copied.") var tokenizerFrom: String = "smollm2"
    @Option(help: "Seed of the random weights.") var seed: UInt64 = 1

    func run() throws {
        guard let t = GGMLType(name: type) else { throw ValidationError("unknown type \(type)") }
        do {
            let source = try GGUFFile(path: try ModelStore.resolveOrPull(tokenizerFrom))
            var spec = SyntheticModelSpec()
            spec.hidden = hidden; spec.layers = layers; spec.heads = heads; spec.kvHeads = kvHeads
            spec.feedForward = ffn; spec.type = t; spec.seed = seed
            try SyntheticModel.write(spec, tokenizerFrom: source, to: output, log: printErr)
            print(output)
        } catch {
            throw fail(error)
        }
    }
}
