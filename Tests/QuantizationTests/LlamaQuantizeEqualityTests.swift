// `dwarfstar quantize` writes the file llama-quantize writes: the tiny test models quantized under
// several mixes, with and without llama-imatrix's importance matrices, byte for byte (SHA-256 of
// llama-quantize's output in Fixtures/llamacpp-quantize.tsv, made by Scripts/make-quantize-fixtures.sh).
// The models' rows are 64 wide, so the K- and i-quant mixes also exercise the fallback table; the
// kernel-level golden tensors (KernelsTests/QuantizeTensorTests) cover full 256-blocks.

import Foundation
import GGUF
import Platform
import Quantization
import Testing

let quantizationFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
let modelFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("ModelsTests/Fixtures")

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("ds-quant-\(getpid())-\(name)").path
}

func sha256(of path: String) throws -> String {
    var h = SHA256()
    h.update(try Data(contentsOf: URL(fileURLWithPath: path)))
    return h.hexDigest()
}

struct LlamaQuantizeCase: CustomStringConvertible, Sendable {
    let input: String, mix: String, imatrix: String?, bytes: Int, sha256: String
    var description: String { "\(input) \(mix)\(imatrix == nil ? "" : " + imatrix")" }

    static let all: [LlamaQuantizeCase] = {
        guard let text = try? String(contentsOf: quantizationFixtures.appendingPathComponent("llamacpp-quantize.tsv"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").dropFirst().map { line in
            let f = line.split(separator: "\t").map(String.init)
            return LlamaQuantizeCase(input: f[0], mix: f[1], imatrix: f[2] == "-" ? nil : f[2], bytes: Int(f[3])!, sha256: f[4])
        }
    }()
}

@Suite struct LlamaQuantizeEqualityTests {
    @Test func casesArePresent() { #expect(LlamaQuantizeCase.all.count >= 10) }

    @Test(arguments: LlamaQuantizeCase.all)
    func fileEqualsLlamaQuantize(_ c: LlamaQuantizeCase) throws {
        let file = try GGUFFile(path: modelFixtures.appendingPathComponent(c.input).path)
        let mix = try #require(FileType.named(c.mix))
        var mixOptions = MixOptions()
        var options = QuantizeOptions()
        options.fileType = mix
        options.threads = 2
        if let im = c.imatrix {
            options.importance = try ImportanceMatrix(path: quantizationFixtures.appendingPathComponent(im).path)
            options.importanceFile = im
            mixOptions.hasImportance = true
        }
        let out = temporaryPath("\(c.input)-\(c.mix).gguf")
        defer { unlink(out) }
        try ModelQuantizer.write(file, MixRules.choose(file, mix: mix, options: mixOptions), options: options, to: out)
        let size = (try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? -1
        #expect(size == c.bytes)
        #expect(try sha256(of: out) == c.sha256, "\(c): the file differs from llama-quantize's")
    }

    @Test func lowBitMixesNeedAnImportanceMatrix() throws {
        // IQ4_XS without an imatrix is fine; a tensor forced to IQ2_XXS is not (llama-quantize refuses it too).
        let file = try GGUFFile(path: modelFixtures.appendingPathComponent("llama.f32.gguf").path)
        var mixOptions = MixOptions()
        mixOptions.tensorTypes = [try MixOptions.parseTensorType("ffn_down=iq2_xxs")]
        let big = FileType.named("Q8_0")!
        let choices = MixRules.choose(file, mix: big, options: mixOptions)
        // 64-wide rows: IQ2_XXS falls back to IQ4_NL, which needs nothing.
        #expect(choices.filter { $0.tensor.name.contains("ffn_down") }.allSatisfy { $0.type == .iq4_nl || $0.type == .f16 })
        #expect(throws: Never.self) { try ModelQuantizer.validate(file, choices, QuantizeOptions()) }
    }

    @Test func quantizedInputNeedsAllowRequantize() throws {
        let file = try GGUFFile(path: modelFixtures.appendingPathComponent("llama.f32.gguf").path)
        let q8 = temporaryPath("q8.gguf")
        defer { unlink(q8) }
        var options = QuantizeOptions()
        options.fileType = FileType.named("Q8_0")
        try ModelQuantizer.write(file, MixRules.choose(file, mix: options.fileType!, options: MixOptions()), options: options, to: q8)
        let quantized = try GGUFFile(path: q8)
        let choices = MixRules.choose(quantized, mix: FileType.named("Q4_0")!, options: MixOptions())
        #expect(throws: QuantizeError.self) { try ModelQuantizer.validate(quantized, choices, QuantizeOptions()) }
        var allow = QuantizeOptions()
        allow.allowRequantize = true
        #expect(throws: Never.self) { try ModelQuantizer.validate(quantized, choices, allow) }
    }
}
