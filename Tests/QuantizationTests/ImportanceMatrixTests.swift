// Importance matrices: llama-imatrix's GGUF files read, both formats written and read back, the
// importance vectors llama-quantize derives, and hostile files refused with a clear error.

import Foundation
import Engine
import GGUF
import Quantization
import Testing

@Suite struct ImportanceMatrixTests {
    static func sample() -> ImportanceMatrix {
        var m = ImportanceMatrix()
        m.datasets = ["calibration.txt"]
        m.chunkCount = 3
        m.chunkSize = 64
        m.entries["blk.0.attn_q.weight"] = .init(sums: [4, 8, 12, 16], counts: [4])
        m.entries["blk.0.ffn_up_exps.weight"] = .init(sums: [2, 4, 6, 8, 1, 1], counts: [2, 0, 1].map(Float.init))  // 3 experts × 2 columns
        return m
    }

    @Test func readsLlamaImatrixFiles() throws {
        let m = try ImportanceMatrix(path: quantizationFixtures.appendingPathComponent("qwen3moe.f16.imatrix.gguf").path)
        #expect(!m.isLegacy && m.chunkSize == 64 && m.chunkCount == 8)
        let experts = try #require(m.entries["blk.0.ffn_up_exps.weight"])
        #expect(experts.counts.count == 8 && experts.sums.count == 8 * 64)
        #expect(experts.counts.reduce(0, +) > 0)
        let v = try #require(try m.importance(for: "blk.0.ffn_up_exps.weight", cols: 64, matrices: 8))
        #expect(v.count == 512 && v.allSatisfy { $0 > 0 && $0.isFinite })
    }

    @Test(arguments: [ImportanceMatrix.Format.gguf, .dat])
    func roundTrip(format: ImportanceMatrix.Format) throws {
        let m = Self.sample()
        let path = temporaryPath("imatrix.\(format.rawValue)")
        defer { unlink(path) }
        try m.write(to: path, format: format)
        let back = try ImportanceMatrix(path: path)
        #expect(back.chunkCount == 3 && back.datasets == ["calibration.txt"])
        // The vectors llama-quantize would use are the same from either format: mean x² per column,
        // 1 for an expert that saw no token.
        for (name, cols, matrices) in [("blk.0.attn_q.weight", 4, 1), ("blk.0.ffn_up_exps.weight", 2, 3)] {
            #expect(try back.importance(for: name, cols: cols, matrices: matrices) == m.importance(for: name, cols: cols, matrices: matrices))
        }
        #expect(try m.importance(for: "blk.0.attn_q.weight", cols: 4, matrices: 1) == [1, 2, 3, 4])
        #expect(try m.importance(for: "blk.0.ffn_up_exps.weight", cols: 2, matrices: 3) == [1, 2, 1, 1, 1, 1])
        #expect(throws: QuantizeError.self) { try m.importance(for: "blk.0.attn_q.weight", cols: 8, matrices: 1) }
        #expect(try m.importance(for: "blk.9.attn_q.weight", cols: 4, matrices: 1) == nil)
    }

    @Test func hostileFilesAreRefused() throws {
        let path = temporaryPath("hostile.dat")
        defer { unlink(path) }
        func write(_ ints: [Int32], _ tail: [UInt8] = []) throws {
            var d = Data()
            for v in ints { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
            d.append(contentsOf: tail)
            try d.write(to: URL(fileURLWithPath: path))
        }
        for bad: ([Int32], [UInt8]) in [([], []), ([0], []), ([Int32.max], []), ([1, -5], []), ([1, 1_000_000], []),
                                        ([1, 3], Array("abc".utf8) + [1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F]),
                                        ([1, 3], Array("abc".utf8) + [1, 0, 0, 0, 4, 0, 0, 0, 0, 0])] {
            try write(bad.0, bad.1)
            #expect(throws: QuantizeError.self) { try ImportanceMatrix(path: path) }
        }
        #expect(throws: QuantizeError.self) { try ImportanceMatrix(path: temporaryPath("does-not-exist")) }
    }
}

/// Our collector against llama-imatrix on the tiny fixture models: the same calibration text (the first
/// 20 000 bytes of bench/data's Genesis), chunks of 64 tokens, 8 chunks (Scripts/make-quantize-fixtures.sh).
@Suite struct ImportanceCollectorTests {
    @Test(arguments: ["llama.f32", "qwen3moe.f16", "gemma3.f16"])
    func matchesLlamaImatrix(model: String) throws {
        let reference = try ImportanceMatrix(path: quantizationFixtures.appendingPathComponent("\(model).imatrix.gguf").path)
        let loaded = try LoadedModel(path: modelFixtures.appendingPathComponent("\(model).gguf").path)
        var settings = RuntimeSettings(threads: 2, contextLength: 64)
        settings.stateCheckpoints = 0
        let session = try RuntimeOptions(settings, for: loaded).session(loaded)
        let genesis = try String(contentsOf: quantizationFixtures.deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("bench/data/calibration-kjv-genesis.txt"), encoding: .utf8)
        let (ours, _) = try ImportanceRun.collect(session: session, file: loaded.gguf, text: String(genesis.utf8.prefix(20000))!,
                                                  dataset: "calibration.txt", contextSize: 64, maxChunks: 8, processOutput: false)
        #expect(ours.chunkCount == reference.chunkCount)
        #expect(Set(ours.entries.keys) == Set(reference.entries.keys))
        var worst = 0.0
        for (name, r) in reference.entries {
            let o = try #require(ours.entries[name])
            #expect(o.counts == r.counts, "\(name): counts \(o.counts) vs llama-imatrix's \(r.counts)")
            let scale = Double(r.sums.map(abs).max() ?? 1)
            for (a, b) in zip(o.sums, r.sums) { worst = max(worst, abs(Double(a) - Double(b)) / max(scale, 1e-30)) }
        }
        #expect(worst < 2e-3, "\(model): sums differ from llama-imatrix's by up to \(worst) of each entry's largest")
    }
}
