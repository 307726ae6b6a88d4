// The IQ1/IQ2/IQ3 mixes end to end through the CLI against llama-quantize (Fixtures/iquant, made by
// `PART=iquant Scripts/make-quantize-fixtures.sh`): the tiny models' 64-wide rows take no i-quant, so a
// 256-wide synthetic Llama is rebuilt here by `synth` (checked against the recorded SHA-256 first) and
// quantized under each mix with llama-imatrix's matrix for it; every file must equal llama-quantize's.
// The same model then goes through the adaptive allocation at a budget only the i-quants meet.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: Binaries.dwarfstar != nil, "needs the dwarfstar binary"))
struct CodebookQuantizeTests {
    static let fixtures = engineFixtures.appendingPathComponent("iquant")

    /// Rows of a tab-separated fixture, header dropped.
    static func table(_ name: String) throws -> [[String]] {
        let text = try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { $0.split(separator: "\t").map(String.init) }
    }

    static let mixes: [String] = (try? table("llamacpp-quantize.tsv").map { $0[0] }) ?? []

    struct SynthFailed: Error { let stderr: String }

    /// A new temporary folder (the caller removes it) holding the fixtures' synthetic model as m.gguf.
    static func folderWithSynthModel(_ tag: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-iq-\(tag)-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let synth = try table("synth.tsv")[0]
        let r = try runCLI(["synth"] + synth[0].split(separator: " ").map(String.init)
                           + ["--tokenizer-from", modelFixtures.appendingPathComponent("llama.f32.gguf").path, "-o", "\(dir)/m.gguf"])
        guard r.status == 0 else { throw SynthFailed(stderr: r.stderr) }
        return dir
    }

    @Test func mixesEqualLlamaQuantize() throws {
        #expect(Self.mixes.count == 10)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-iq-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func run(_ args: [String]) throws {
            let r = try runCLI(args, in: dir)
            #expect(r.status == 0, "dwarfstar \(args.joined(separator: " ")): \(r.stderr.suffix(600))")
        }
        let synth = try Self.table("synth.tsv")[0]
        let model = "\(dir)/synth.gguf"
        try run(["synth"] + synth[0].split(separator: " ").map(String.init)
                 + ["--tokenizer-from", modelFixtures.appendingPathComponent("llama.f32.gguf").path, "-o", model])
        try #require(try RealModelQuantizeTests.sha256(model) == synth[2], "synth no longer writes the file the fixtures were made from: run PART=iquant Scripts/make-quantize-fixtures.sh")
        // Beside the model, under its bare name: the file records the name as given (so did llama-quantize).
        let imatrix = "synth.imatrix.gguf"
        try FileManager.default.copyItem(atPath: Self.fixtures.appendingPathComponent(imatrix).path, toPath: "\(dir)/\(imatrix)")
        for row in try Self.table("llamacpp-quantize.tsv") {
            let (mix, sha) = (row[0], row[2])
            let out = "\(dir)/\(mix).gguf"
            try run(["quantize", model, out, mix, "--imatrix", imatrix])
            #expect(try RealModelQuantizeTests.sha256(out) == sha, "\(mix) differs from llama-quantize's file")
            try? FileManager.default.removeItem(atPath: out)
        }
    }

    /// The adaptive allocation's default candidates include the codebook i-quants: a budget of 2.2 bits
    /// per weight, below Q2_K's 2.625 (the K-quants alone cannot meet it, and say so), comes out as a
    /// file of IQ1/IQ2/IQ3 tensors that runs.
    @Test func adaptiveAllocationReachesTheIQuants() throws {
        let dir = try Self.folderWithSynthModel("adaptive")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Self.fixtures.appendingPathComponent("synth.imatrix.gguf").path, toPath: "\(dir)/imatrix.gguf")
        try String(repeating: "In the beginning God created the heaven and the earth. ", count: 40)
            .write(toFile: "\(dir)/cal.txt", atomically: true, encoding: .utf8)
        let common = ["--target-bpw", "2.2", "--imatrix", "imatrix.gguf", "--calibration", "cal.txt", "--calibration-chunks", "1",
                      "--calibration-ctx", "64", "-t", "2"]
        let kOnly = try runCLI(["quantize", "m.gguf", "k.gguf"] + common + ["--types", "Q2_K,Q3_K,Q4_K,Q8_0"], in: dir)
        #expect(kOnly.status != 0 && kOnly.stderr.contains("the budget leaves"), "\(kOnly.stderr.suffix(400))")
        let q = try runCLI(["quantize", "m.gguf", "iq.gguf"] + common, in: dir)
        try #require(q.status == 0, "\(q.stderr.suffix(600))")
        #expect(q.stdout.contains("2.200 bits per weight") || q.stderr.contains("2.200 bits per weight"), "\(q.stdout)\(q.stderr.suffix(600))")
        let inspect = try runCLI(["inspect", "iq.gguf"], in: dir)
        let lowTypes = ["IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS"].filter { inspect.stdout.contains(" \($0) ") }
        #expect(!lowTypes.isEmpty, "no tensor below 2.5 bits per weight: \(inspect.stdout)")
        let run = try runCLI(["run", "-m", "iq.gguf", "-p", "In the beginning", "-n", "4"], in: dir)
        #expect(run.status == 0 && run.stderr.contains("generation 4 tokens"), "\(run.stderr.suffix(400))")
    }

    @Test func lowBitMixRefusesWithoutAnImatrix() throws {
        let dir = try Self.folderWithSynthModel("refuse")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runCLI(["quantize", "\(dir)/m.gguf", "\(dir)/q.gguf", "IQ2_XXS"])
        #expect(r.status != 0 && r.stderr.contains("importance matrix"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/q.gguf"))
    }
}
