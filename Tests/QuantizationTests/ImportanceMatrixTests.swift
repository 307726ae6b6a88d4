// Importance matrices: llama-imatrix's GGUF files read, both formats written and read back, the
// importance vectors llama-quantize derives, and hostile files refused with a clear error.

import Foundation
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
