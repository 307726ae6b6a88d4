// The allocation on toy sensitivity tables (the optimum checked by exhaustive search), and the
// sensitivity measurement itself on a tiny fixture model: quantizing a tensor moves the output, more so
// at fewer bits, and the weights are put back exactly.

import Foundation
import Engine
import GGUF
import Quantization
import Testing

@Suite struct AllocationTests {
    static func table(_ rows: [[(String, Int, Double)]]) -> SensitivityTable {
        SensitivityTable(model: "toy", calibrationTokens: 0, imatrix: nil,
                         groups: rows.indices.map { TensorGroup(name: "g\($0)", tensors: ["t\($0)"]) },
                         entries: rows.map { $0.map { SensitivityTable.Entry(type: $0.0, bytes: $0.1, kld: $0.2) } })
    }

    /// The best total ΔKLD within the budget by trying every combination.
    static func exhaustive(_ t: SensitivityTable, budget: Int) -> Double {
        var best = Double.infinity
        func go(_ g: Int, _ bytes: Int, _ kld: Double) {
            if bytes > budget { return }
            if g == t.entries.count { best = min(best, kld); return }
            for e in t.entries[g] { go(g + 1, bytes + e.bytes, kld + e.kld) }
        }
        go(0, 0, 0)
        return best
    }

    @Test func spendsBytesWhereTheyBuyTheMost() throws {
        // g0 is sensitive (attention-like), g1 barely (experts-like): g1 goes low, g0 high.
        let t = Self.table([[("Q2_K", 100, 0.50), ("Q4_K", 150, 0.10), ("Q8_0", 280, 0.01)],
                            [("Q2_K", 400, 0.02), ("Q4_K", 600, 0.01), ("Q8_0", 1100, 0.0)]])
        let a = try Allocator.allocate(t, budget: 700)
        #expect(a.choice == [2, 0] && a.bytes == 680)
        #expect(abs(a.estimatedKLD - 0.03) < 1e-12)
        #expect(throws: QuantizeError.self) { try Allocator.allocate(t, budget: 499) }
    }

    @Test func nearOptimalOnRandomTables() throws {
        var rng = SystemRandomNumberGenerator()
        var worst = 0.0
        for _ in 0..<200 {
            let rows = (0..<5).map { _ -> [(String, Int, Double)] in
                let base = Int.random(in: 50...500, using: &rng)
                var kld = Double.random(in: 0.05...1, using: &rng)
                return (0..<4).map { i in
                    defer { kld *= Double.random(in: 0.1...0.7, using: &rng) }
                    return ("T\(i)", base * (i + 2), kld)
                }
            }
            let t = Self.table(rows)
            let minimum = t.entries.reduce(0) { $0 + $1.map(\.bytes).min()! }, maximum = t.entries.reduce(0) { $0 + $1.map(\.bytes).max()! }
            let budget = Int.random(in: minimum...maximum, using: &rng)
            let a = try Allocator.allocate(t, budget: budget)
            #expect(a.bytes <= budget)
            let best = Self.exhaustive(t, budget: budget)
            worst = max(worst, a.estimatedKLD / max(best, 1e-12))
        }
        // Exact up to the rounding of bytes to 1/50000 of the budget.
        #expect(worst < 1.0001, "worst ratio to the optimum \(worst)")
    }

    @Test func sensitivityOfATinyModel() throws {
        // The llama fixture converted to F16 (its rows are 64 wide: the 32-block types only).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-sens-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = try GGUFFile(path: modelFixtures.appendingPathComponent("llama.f32.gguf").path)
        var o = QuantizeOptions()
        o.fileType = FileType.named("F16")
        try ModelQuantizer.write(source, MixRules.choose(source, mix: o.fileType!, options: MixOptions()), options: o, to: "\(dir)/f16.gguf")
        let loaded = try LoadedModel(path: "\(dir)/f16.gguf", writableWeights: true)
        var settings = RuntimeSettings(threads: 2, contextLength: 64)
        settings.stateCheckpoints = 0
        let session = try RuntimeOptions(settings, for: loaded).session(loaded)
        let before = loaded.gguf.tensors.map { Array(UnsafeRawBufferPointer(start: loaded.gguf.data(of: $0), count: $0.byteCount)) }
        let text = try String(contentsOf: quantizationFixtures.deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("bench/data/calibration-kjv-genesis.txt"), encoding: .utf8)
        let chunks = try AdaptiveQuantization.calibrationChunks(session, text: String(text.prefix(4000)), size: 64, count: 2)
        var options = SensitivityOptions()
        options.candidates = [.q4_0, .q8_0]
        options.threads = 2
        let table = try Sensitivity.measure(loaded, session: session, chunks: chunks, options: options)
        let after = loaded.gguf.tensors.map { Array(UnsafeRawBufferPointer(start: loaded.gguf.data(of: $0), count: $0.byteCount)) }
        #expect(before == after, "the weights are restored")
        #expect(table.groups.count == Sensitivity.groups(loaded.gguf, layersPerGroup: 1).count)
        for (g, row) in zip(table.groups, table.entries) {
            let q4 = try #require(row.first { $0.type == "Q4_0" }), q8 = try #require(row.first { $0.type == "Q8_0" })
            #expect(q4.kld > q8.kld, "\(g.name): Q4_0 \(q4.kld) not above Q8_0 \(q8.kld)")
            #expect(q4.kld > 0, "\(g.name) does not move the output")
        }
        // The allocation at the budget of Q4_0 everywhere plus a little picks Q8_0 for the most sensitive.
        let q4Bytes = table.entries.reduce(0) { $0 + $1.first { $0.type == "Q4_0" }!.bytes }
        let a = try Allocator.allocate(table, budget: q4Bytes + 3000)
        #expect(a.choice.enumerated().contains { table.entries[$0.offset][$0.element].type == "Q8_0" })
    }
}
