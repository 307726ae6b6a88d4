// The real models through convert and quantize, byte for byte against llama.cpp's tools: SmolLM2
// (Q4_1) and Gemma 3 270M (Q4_K_M) dequantized to F16 equal `llama-quantize --allow-requantize … F16`,
// and those F16 files quantized under named mixes equal llama-quantize's output (SHA-256 recorded from
// the llama.cpp anchor, llama-cpp-python 0.3.36's vendored llama.cpp).

import Foundation
import GGUF
import Platform
import Quantization
import Testing

@Suite(.serialized) struct RealModelQuantizeTests {
    static func sha256(_ path: String) throws -> String {
        var h = SHA256()
        let fd = FileHandle(forReadingAtPath: path)!
        defer { try? fd.close() }
        while let d = try fd.read(upToCount: 1 << 24), !d.isEmpty { h.update(d) }
        return h.hexDigest()
    }

    static func write(_ input: String, _ mix: String, to out: String) throws {
        let file = try GGUFFile(path: input)
        var options = QuantizeOptions()
        options.fileType = FileType.named(mix)
        options.allowRequantize = true
        try ModelQuantizer.write(file, MixRules.choose(file, mix: options.fileType!, options: MixOptions()), options: options, to: out)
    }

    func check(model: String, f16: String, mixes: [(String, String)]) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-realquant-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reference = "\(dir)/f16.gguf"
        try Self.write(RealModels.path(model)!, "F16", to: reference)
        #expect(try Self.sha256(reference) == f16, "\(model) → F16 differs from llama-quantize's")
        for (mix, sha) in mixes {
            let out = "\(dir)/\(mix).gguf"
            try Self.write(reference, mix, to: out)
            #expect(try Self.sha256(out) == sha, "\(model) F16 → \(mix) differs from llama-quantize's")
            unlink(out)
        }
    }

    @Test(.enabled(if: RealModels.available("smollm2"), "needs the real model smollm2"))
    func smolLM2() throws {
        try check(model: "smollm2", f16: "a269e3181fcbb25046f99f64ba8d3c159165b211c2ff4ffca7ba1bb219d2ccd0",
                  mixes: [("Q4_K_M", "27e1496775b07d69415cc5b6658f448ded3829cd2d769473cf2781e77d020b19"),
                          ("IQ4_XS", "55774849f739670f6843cc6f1e5cce50b4fda4a44e2bea59138ddbc272400998")])
    }

    @Test(.enabled(if: RealModels.available("gemma3-270m"), "needs the real model gemma3-270m"))
    func gemma3() throws {
        try check(model: "gemma3-270m", f16: "2fc5918b02d754e17a06566a9a3aaea876575e6a3d33800628a6f38546547d85",
                  mixes: [("Q4_K_M", "0b6d7a9d554bfcb663a8e742f62a430183d01d8c6800321c238211733cf0bc1e"),
                          ("Q3_K_M", "4535f731114c1b2ef21fb63de25c4709823874ac60137656bc8440754fa2240e")])
    }
}
