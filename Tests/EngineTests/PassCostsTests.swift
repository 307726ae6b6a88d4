// Pass costs kept beside the model: what a run measured comes back in the next (same model size,
// threads and CPU), other machines' or models' files are ignored, a damaged file is ignored with a
// warning, and the tuner prices lengths from them before measuring any.

import Foundation
import Testing
import Engine

@Suite struct PassCostsTests {
    /// A copy of the llama fixture in a fresh folder, loaded.
    static func withCopy(_ body: (LoadedModel) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("passcosts-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("llama.gguf").path
        try FileManager.default.copyItem(atPath: SpeculationTests.fixture("llama.f32.gguf"), toPath: path)
        try body(try LoadedModel(path: path))
    }

    @Test func savedCostsComeBackForTheSameMachineOnly() throws {
        try Self.withCopy { loaded in
            #expect(loaded.loadPassCosts(threads: 2).isEmpty)
            loaded.savePassCosts([2: 1.5, 5: 3.0], threads: 2)
            #expect(loaded.loadPassCosts(threads: 2) == [2: 1.5, 5: 3.0])
            loaded.savePassCosts([2: 2.5], threads: 2)   // averaged in
            #expect(loaded.loadPassCosts(threads: 2) == [2: 2.0, 5: 3.0])
            #expect(loaded.loadPassCosts(threads: 4).isEmpty, "another thread count")
            let text = try String(contentsOfFile: loaded.passCostsPath, encoding: .utf8)
            #expect(text.hasPrefix(PassCosts.magic + " \(loaded.gguf.fileSize) 2 "))
            try text.replacingOccurrences(of: PassCosts.cpu, with: "Another_CPU").write(toFile: loaded.passCostsPath, atomically: true, encoding: .utf8)
            #expect(loaded.loadPassCosts(threads: 2).isEmpty, "another CPU")
        }
    }

    @Test(arguments: ["garbage", "\(PassCosts.magic) 1 2 x\n2 1.5\n", "HEADER\n2 nan\n", "HEADER\n99 2\n", "HEADER\n2 1.5\n2 1.6\n",
                      "HEADER\n2 0.5\n", "HEADER\n2\n", "HEADER\n" + String(repeating: "3 2.0\n", count: 1000)])
    func damagedFilesAreIgnoredWithAWarning(content: String) throws {
        try Self.withCopy { loaded in
            let header = PassCosts.header(modelFileSize: loaded.gguf.fileSize, threads: 2)
            try content.replacingOccurrences(of: "HEADER", with: header).write(toFile: loaded.passCostsPath, atomically: true, encoding: .utf8)
            var warnings: [String] = []
            #expect(loaded.loadPassCosts(threads: 2, warn: { warnings.append($0) }).isEmpty)
            let otherModel = content.hasPrefix(PassCosts.magic + " 1 ")
            #expect(warnings.count == (otherModel ? 0 : 1), "\(warnings)")
        }
    }

    @Test func tunerStartsFromSavedCosts() {
        // Saved: every row costs a whole step (compute-bound): no length pays, even before measuring.
        var expensive = DraftLengthTuner(draftMax: 8, savedCosts: Dictionary(uniqueKeysWithValues: (2...9).map { ($0, Double($0)) }))
        expensive.recordStep(seconds: 0.01)
        #expect(expensive.length() == 0)
        // Saved: passes nearly free: the longest draft pays at once.
        var cheap = DraftLengthTuner(draftMax: 8, savedCosts: Dictionary(uniqueKeysWithValues: (2...9).map { ($0, 1 + 0.02 * Double($0 - 1)) }))
        cheap.recordStep(seconds: 0.01)
        #expect(cheap.length() == 8)
        #expect(cheap.measuredCosts.isEmpty)
        cheap.recordPass(rows: 9, seconds: 0.012, drafted: 8, accepted: 8)
        #expect(abs((cheap.measuredCosts[9] ?? 0) - 1.2) < 1e-9)
    }
}
