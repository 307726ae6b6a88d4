// The IQ1/IQ2/IQ3 mixes end to end through the CLI against llama-quantize (Fixtures/iquant, made by
// `PART=iquant Scripts/make-quantize-fixtures.sh`): the tiny models' 64-wide rows take no i-quant, so a
// 256-wide synthetic Llama is rebuilt here by `synth` (checked against the recorded SHA-256 first) and
// quantized under each mix with llama-imatrix's matrix for it; every file must equal llama-quantize's.

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

    @Test func lowBitMixRefusesWithoutAnImatrix() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-iq-refuse-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let synth = try Self.table("synth.tsv")[0]
        let r0 = try runCLI(["synth"] + synth[0].split(separator: " ").map(String.init)
                            + ["--tokenizer-from", modelFixtures.appendingPathComponent("llama.f32.gguf").path, "-o", "\(dir)/m.gguf"])
        #expect(r0.status == 0)
        let r = try runCLI(["quantize", "\(dir)/m.gguf", "\(dir)/q.gguf", "IQ2_XXS"])
        #expect(r.status != 0 && r.stderr.contains("importance matrix"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/q.gguf"))
    }
}
