// A MoE model about 3× larger than --ram-budget runs with its peak resident memory (VmHWM of the
// process) within the budget + 5%, its routed experts streamed from disk; and a budget that cannot
// hold even the resident part is a clear error.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: Binaries.dwarfstar != nil))
struct RAMBudgetTests {
    /// A DeepSeek-V3-shaped random model of ~0.9 GB, 91% of it routed experts (written once per machine).
    static func model() throws -> String {
        let dir = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dwarfstar/synth")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("deepseek2-512x8-128e-q4_K.gguf").path
        if !FileManager.default.fileExists(atPath: path) {
            let r = try runCLI(["synth", "--arch", "deepseek2", "-o", path + ".tmp", "--hidden", "512", "--layers", "8", "--heads", "8",
                                "--kv-heads", "8", "--ffn", "1024", "--experts", "128", "--experts-used", "6", "--expert-ffn", "1024",
                                "--type", "q4_K"])
            guard r.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
            try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
        }
        return path
    }

    @Test func peakResidentMemoryStaysWithinTheBudget() throws {
        let path = try RAMBudgetTests.model()
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let budget = size / 3
        let r = try runCLI(["run", "-m", path, "--raw", "-p", "The quick brown fox jumps over the lazy dog", "-n", "24", "--temp", "0",
                            "--ctx", "256", "-t", "2", "--ram-budget", "\(budget >> 20)M"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("streamed from disk"), "\(r.stderr)")
        let peak = r.stderr.components(separatedBy: "peak RSS ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? Int.max
        #expect(peak << 20 <= budget + budget / 20, "peak RSS \(peak) MiB for a budget of \(budget >> 20) MiB (model \(size >> 20) MiB)")

        // Same greedy text as with every expert mapped.
        let resident = try runCLI(["run", "-m", path, "--raw", "-p", "The quick brown fox jumps over the lazy dog", "-n", "24", "--temp", "0",
                                   "--ctx", "256", "-t", "2"])
        #expect(resident.status == 0 && resident.stdout == r.stdout)

        // Expert popularity is kept beside the model; the next start reads the most used experts in.
        let stats = try String(contentsOfFile: path + ".dsexperts", encoding: .utf8)
        #expect(stats.hasPrefix("dwarfstar-expert-statistics \(size)\n") && stats.split(separator: "\n").count > 10)
        let again = try runCLI(["run", "-m", path, "--raw", "-p", "The quick brown fox jumps over the lazy dog", "-n", "24", "--temp", "0",
                                "--ctx", "256", "-t", "2", "--ram-budget", "\(budget >> 20)M"])
        #expect(again.status == 0 && again.stderr.contains("most used experts read in at start") && again.stdout == r.stdout)

        let tooSmall = try runCLI(["run", "-m", path, "--raw", "-p", "hi", "-n", "2", "--ram-budget", "20M"])
        #expect(tooSmall.status != 0 && tooSmall.stderr.contains("--ram-budget 20 MiB is too small"))
    }
}
