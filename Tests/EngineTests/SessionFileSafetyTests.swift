// Session files lose nothing and clobber nothing: a save goes through a temporary file in the same
// folder that is renamed over the old one (a reader holding the old file keeps reading the old bytes)
// and is removed when the save fails; a load that fails (damaged or foreign file, a KV pool too small
// for it) leaves the live conversation exactly as it was: it goes on generating as one that never tried.

import Foundation
import Testing
import Engine
import KVCache
import Models
import Sampling

@Suite struct SessionFileSafetyTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/llama.f32.gguf").path

    func greedy(_ n: Int) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = n
        o.sampler = .greedy
        o.ignoreEOS = true
        return o
    }

    func tokens(_ n: Int, _ seed: Int) -> [Int32] { (0..<n).map { Int32(3 + ($0 * 37 + seed * 11) % 500) } }

    func directory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-sessions-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func saveReplacesByRenameAndCleansUpOnFailure() throws {
        let loaded = try LoadedModel(path: Self.fixture)
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let session = Session(loaded, contextLength: 128, threads: 2)
        _ = try session.generate(prompt: tokens(40, 1), options: greedy(4)) { _ in }
        let path = dir + "/chat.dskv"
        try session.save(to: path)
        let old = try Data(contentsOf: URL(fileURLWithPath: path))
        // A reader of the old file keeps its bytes while a new save replaces it.
        let reader = try #require(FileHandle(forReadingAtPath: path))
        _ = try session.generate(prompt: tokens(40, 1) + [9, 9], options: greedy(4)) { _ in }
        try session.save(to: path)
        #expect(try reader.readToEnd() == old)
        try reader.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) != old)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["chat.dskv"])

        // The rename cannot happen (a folder with a file in it holds the name): an error, and no
        // temporary file is left behind.
        let blocked = dir + "/blocked.dskv"
        try FileManager.default.createDirectory(atPath: blocked, withIntermediateDirectories: true)
        try Data([1]).write(to: URL(fileURLWithPath: blocked + "/inside"))
        #expect { try session.save(to: blocked) } throws: { "\($0)".contains("blocked.dskv") && "\($0)".contains("rename") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["blocked.dskv", "chat.dskv"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: blocked) == ["inside"])
    }

    /// Damaged, cut and foreign files fail to load; the live conversation then continues exactly as a
    /// conversation that never tried (same tokens, nothing evaluated again).
    @Test func failedLoadsLeaveTheConversationAsItWas() throws {
        let loaded = try LoadedModel(path: Self.fixture)
        let other = try LoadedModel(path: URL(fileURLWithPath: Self.fixture).deletingLastPathComponent().appendingPathComponent("qwen2.f32.gguf").path)
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let saver = Session(loaded, contextLength: 128, threads: 2)
        _ = try saver.generate(prompt: tokens(50, 2), options: greedy(4)) { _ in }
        let good = dir + "/good.dskv"
        try saver.save(to: good)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let foreign = Session(other, contextLength: 128, threads: 2)
        _ = try foreign.generate(prompt: tokens(20, 3), options: greedy(2)) { _ in }
        try foreign.save(to: dir + "/foreign.dskv")
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x20
        try flipped.write(to: URL(fileURLWithPath: dir + "/flipped.dskv"))
        try bytes.prefix(bytes.count - 300).write(to: URL(fileURLWithPath: dir + "/cut.dskv"))

        let first = tokens(30, 4)
        let reference = Session(loaded, contextLength: 128, threads: 2), live = Session(loaded, contextLength: 128, threads: 2)
        let r1 = try reference.generate(prompt: first, options: greedy(6)) { _ in }
        let l1 = try live.generate(prompt: first, options: greedy(6)) { _ in }
        #expect(l1.tokens == r1.tokens)
        for name in ["flipped", "cut", "foreign", "missing"] {
            #expect(throws: (any Error).self, "\(name)") { try live.load(from: "\(dir)/\(name).dskv") }
            #expect(live.cachedTokens == reference.cachedTokens, "\(name)")
        }
        let next = first + r1.tokens + [11, 12]
        let r2 = try reference.generate(prompt: next, options: greedy(6)) { _ in }
        let l2 = try live.generate(prompt: next, options: greedy(6)) { _ in }
        #expect(l2.promptEvaluated == r2.promptEvaluated && l2.promptEvaluated == 2)
        #expect(l2.tokens == r2.tokens)
    }

    /// A shared KV pool that cannot hold the live conversation and the saved one at once: the session
    /// still loads (written in place of the live one); one too large for the pool fails with the budget
    /// error and the live conversation is put back as it was.
    @Test func loadsIntoATightPoolOrPutTheConversationBack() throws {
        let loaded = try LoadedModel(path: Self.fixture)
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let big = Session(loaded, contextLength: 256, threads: 2)
        let bigPrompt = tokens(150, 5)
        _ = try big.generate(prompt: bigPrompt, options: greedy(4)) { _ in }                // 154 positions: 5 pages
        try big.save(to: dir + "/big.dskv")
        let medium = Session(loaded, contextLength: 256, threads: 2)
        _ = try medium.generate(prompt: tokens(90, 6), options: greedy(4)) { _ in }         // 94 positions: 3 pages
        try medium.save(to: dir + "/medium.dskv")

        let shape = loaded.model.kvShape()
        let first = tokens(60, 7)
        let reference = Session(loaded, contextLength: 256, threads: 2)
        let r1 = try reference.generate(prompt: first, options: greedy(4)) { _ in }          // 64 positions: 2 pages

        // 4 pages: the live 2 and the medium file's 3 do not fit together; the big file never fits.
        let tight = KVPagePool(shape: shape, pageTokens: 32, capacity: 4)
        let live = Session(loaded, contextLength: 256, threads: 2, kvPool: tight)
        _ = try live.generate(prompt: first, options: greedy(4)) { _ in }
        #expect { try live.load(from: dir + "/big.dskv") } throws: { error in
            if case KVCacheError.budgetExhausted = error { return true }
            return false
        }
        #expect(live.cachedTokens == reference.cachedTokens)
        let next = first + r1.tokens + [21, 22]
        let r2 = try reference.generate(prompt: next, options: greedy(6)) { _ in }
        let l2 = try live.generate(prompt: next, options: greedy(6)) { _ in }
        #expect(l2.promptEvaluated == 2 && l2.tokens == r2.tokens)

        try live.load(from: dir + "/medium.dskv")
        #expect(live.cachedTokens == medium.cachedTokens)
        let after = medium.cachedTokens + [31, 32]
        let m3 = try medium.generate(prompt: after, options: greedy(6)) { _ in }
        let l3 = try live.generate(prompt: after, options: greedy(6)) { _ in }
        #expect(l3.promptEvaluated == 2 && l3.tokens == m3.tokens)
    }
}
