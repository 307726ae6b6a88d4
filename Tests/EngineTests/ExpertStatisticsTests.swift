// Expert popularity statistics (`<model>.dsexperts`) are parsed with every number bounded: a truncated,
// garbage, huge-count or oversized file is ignored with a warning, never a crash; a good one round-trips
// through a save, which goes through a unique temporary name renamed into place.

import Foundation
import Testing
import Engine
import Models

@Suite struct ExpertStatisticsTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/qwen3moe.f32.gguf").path

    /// A copy of the fixture (2 layers of 8 routed experts) in a fresh folder.
    func model() throws -> (LoadedModel, URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-stats-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("moe.gguf").path
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: path)
        return (try LoadedModel(path: path), dir)
    }

    @Test func badFilesAreIgnoredWithAWarning() throws {
        let (loaded, dir) = try model()
        defer { try? FileManager.default.removeItem(at: dir) }
        let header = "dwarfstar-expert-statistics \(loaded.gguf.fileSize)\n"
        #expect(loaded.expertStatisticsPath == loaded.path + ".dsexperts")
        let bad: [(String, Data)] = [
            ("truncated header", Data("dwarfstar-expert-stat".utf8)),
            ("cut in a line", Data((header + "0 1 5\n1 3").utf8)),
            ("huge count", Data((header + "0 1 99999999999999999999999999\n").utf8)),
            ("count past the bound", Data((header + "0 1 \(1 << 60)\n").utf8)),
            ("negative", Data((header + "0 -1 5\n").utf8)),
            ("expert out of range", Data((header + "1 8 5\n").utf8)),
            ("layer out of range", Data((header + "\(Int.max) 0 5\n").utf8)),
            ("repeated entry", Data((header + "0 2 5\n0 2 6\n").utf8)),
            ("extra field", Data((header + "0 2 5 7\n").utf8)),
            ("garbage", Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) })),
            ("huge header size", Data("dwarfstar-expert-statistics 123456789012345678901234567890\n0 1 5\n".utf8)),
        ]
        for (what, bytes) in bad {
            try bytes.write(to: URL(fileURLWithPath: loaded.expertStatisticsPath))
            var warnings: [String] = []
            let stats = loaded.loadExpertStatistics { warnings.append($0) }
            #expect(stats.isEmpty, "\(what)")
            #expect(warnings.count == 1 && warnings[0].contains(loaded.expertStatisticsPath), "\(what): \(warnings)")
        }
        // Far larger than any statistics file (sparse): refused by its size, not read.
        let fd = open(loaded.expertStatisticsPath, O_WRONLY | O_TRUNC)
        #expect(fd >= 0 && ftruncate(fd, 1 << 34) == 0)
        close(fd)
        let start = Date()
        var warnings: [String] = []
        #expect(loaded.loadExpertStatistics { warnings.append($0) }.isEmpty)
        #expect(warnings.count == 1 && Date().timeIntervalSince(start) < 5, "\(warnings)")

        // Another model file's statistics are not an error, just not ours.
        try Data("dwarfstar-expert-statistics 12\n0 1 5\n".utf8).write(to: URL(fileURLWithPath: loaded.expertStatisticsPath))
        warnings = []
        #expect(loaded.loadExpertStatistics { warnings.append($0) }.isEmpty && warnings.isEmpty)
        // A good file.
        try Data((header + "0 1 5\n1 7 3\n").utf8).write(to: URL(fileURLWithPath: loaded.expertStatisticsPath))
        let good = loaded.loadExpertStatistics { warnings.append($0) }
        #expect(warnings.isEmpty && good.map { [$0.layer, $0.expert, $0.count] } == [[0, 1, 5], [1, 7, 3]])
    }

    @Test func savedStatisticsRoundTripThroughARename() throws {
        let (loaded, dir) = try model()
        defer { try? FileManager.default.removeItem(at: dir) }
        guard let f = loaded.model.moeBlocks.first?.weights else {
            Issue.record("no MoE layer"); return
        }
        let cache = try ExpertCache(path: loaded.path, fileBase: loaded.gguf.base, expertBytes: ExpertCache.expertBytes([f.gate[0], f.up[0], f.down[0]]),
                                    slots: 4, readMode: .buffered, ioThreads: 1, prefetch: false)
        loaded.model.expertCache = cache
        // Earlier counts at the top of the range add without overflow (saturating).
        cache.addCounts([(layer: 0, expert: 3, count: ExpertStatistics.maximumCount), (layer: 0, expert: 3, count: Int.max)])
        _ = try Session(loaded, contextLength: 64, threads: 2).generate(prompt: [5, 6, 7, 8], options: GenerationOptions()) { _ in }
        loaded.saveExpertStatistics()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["moe.gguf", "moe.gguf.dsexperts"])
        var warnings: [String] = []
        let back = loaded.loadExpertStatistics { warnings.append($0) }
        let counts = cache.activationCounts
        #expect(warnings.isEmpty, "\(warnings)")
        #expect(back.count > 1 && back.map { [$0.layer, $0.expert, $0.count] } == counts.map { [$0.layer, $0.expert, $0.count] })
        let top = back.first { $0.layer == 0 && $0.expert == 3 }?.count ?? 0
        #expect(top >= ExpertCache.countLimit && top <= ExpertCache.countLimit + 64)
    }
}
