// quantize --fit end to end through the CLI on a synthetic DeepSeek-shaped MoE (MLA, routed and shared
// experts): under a RAM budget between its Q2_K and Q4_K sizes the Q4_K_M file must stream experts
// (plan says so), while the file `quantize --fit ram=…` writes from the F16 reference keeps every weight
// resident under the same budget, by the same placement code.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: Binaries.dwarfstar != nil && RealModels.available("smollm2"), "needs the dwarfstar binary and smollm2's tokenizer"))
struct QuantizeFitTests {
    @Test func fitKeepsEveryWeightResidentWhereQ4KStreams() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-fit-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func run(_ args: [String]) throws -> CLIResult {
            let r = try runCLI(args)
            #expect(r.status == 0, "dwarfstar \(args.joined(separator: " ")): \(r.stderr.suffix(600))")
            return r
        }
        _ = try run(["synth", "--arch", "deepseek2", "--hidden", "256", "--layers", "4", "--experts", "32", "--experts-used", "4",
                     "--type", "f16", "-o", "\(dir)/synth.gguf"])
        _ = try run(["convert", "\(dir)/synth.gguf", "\(dir)/ref.gguf", "--type", "f16"])
        _ = try run(["quantize", "\(dir)/ref.gguf", "\(dir)/q4.gguf", "Q4_K_M"])
        _ = try run(["quantize", "\(dir)/ref.gguf", "\(dir)/q2.gguf", "Q2_K"])
        // Weights: Q2_K 50 MiB, Q4_K_M 77 MiB; the process and buffers take ~200 MiB more.
        let budget = "265M", context = "256"
        let q4 = try run(["plan", "-m", "\(dir)/q4.gguf", "--ram-budget", budget, "-c", context, "-t", "1"])
        #expect(q4.stdout.contains("streamed from disk"), "the Q4_K_M file should need streaming at \(budget): \(q4.stdout)")
        let q2 = try run(["plan", "-m", "\(dir)/q2.gguf", "--ram-budget", budget, "-c", context, "-t", "1"])
        #expect(q2.stdout.contains("all weights resident"), "the Q2_K file should fit \(budget): \(q2.stdout)")
        let calibration = String(repeating: "In the beginning God created the heaven and the earth. ", count: 40)
        try calibration.write(toFile: "\(dir)/cal.txt", atomically: true, encoding: .utf8)
        let fit = try run(["quantize", "\(dir)/ref.gguf", "\(dir)/fit.gguf", "--fit", "ram=\(budget),ctx=\(context)", "--calibration", "\(dir)/cal.txt",
                           "--calibration-chunks", "1", "--calibration-ctx", "64", "--group-layers", "4", "--types", "Q2_K,Q4_K,Q8_0", "-t", "2"])
        #expect(fit.stderr.contains("fit: weights ≤"))
        let planned = try run(["plan", "-m", "\(dir)/fit.gguf", "--ram-budget", budget, "-c", context, "-t", "1"])
        #expect(planned.stdout.contains("all weights resident"), "the --fit file should keep every weight resident: \(planned.stdout)")
        // It spends the budget: bigger than the Q2_K file, smaller than the Q4_K_M one.
        func size(_ p: String) throws -> Int { (try FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0 }
        #expect(try size("\(dir)/fit.gguf") > size("\(dir)/q2.gguf") && size("\(dir)/fit.gguf") < size("\(dir)/q4.gguf"))
    }
}
