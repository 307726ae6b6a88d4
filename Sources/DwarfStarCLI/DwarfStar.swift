// dwarfstar: command-line interface.

import ArgumentParser
import Foundation

@main
struct DwarfStar: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dwarfstar",
        abstract: "Run GGUF language models on the CPU.",
        subcommands: [Run.self, Chat.self, Serve.self, Plan.self, Pull.self, Inspect.self, Logits.self, PerplexityCommand.self, Bench.self, Synth.self,
                      Quantize.self, Convert.self, IMatrix.self, KLD.self, Tokenize.self, Devices.self, Ranks.self, ListModels.self],
        defaultSubcommand: nil)
}
