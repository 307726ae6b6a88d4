// Pages that come back damaged from the KV disk tier are evaluated again, never used: two
// conversations share a pool too small for both, one is swapped to the page file, every slot of the
// file gets a flipped byte on disk, and the swapped conversation's next turn (and a save of it) gives
// what a conversation that never touched the disk gives.

import Foundation
import Testing
import Engine
import KVCache
import Models
import Sampling

@Suite struct DiskTierRecoveryTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/llama.f32.gguf").path

    func greedy(_ n: Int) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = n
        o.sampler = .greedy
        o.ignoreEOS = true
        return o
    }

    /// Flips a byte in each slot of the page file.
    func damageEverySlot(_ disk: KVDiskTier) throws {
        let size = (try FileManager.default.attributesOfItem(atPath: disk.path)[.size] as? Int) ?? 0
        let fd = open(disk.path, O_RDWR)
        defer { close(fd) }
        var slot = 0
        while disk.offset(ofSlot: slot) + 100 < size {
            var byte: UInt8 = 0
            _ = pread(fd, &byte, 1, off_t(disk.offset(ofSlot: slot) + 100))
            byte ^= 0x01
            _ = pwrite(fd, &byte, 1, off_t(disk.offset(ofSlot: slot) + 100))
            slot += 1
        }
        #expect(slot > 0)
    }

    @Test func damagedPagesAreEvaluatedAgain() throws {
        let loaded = try LoadedModel(path: Self.fixture)
        let first: [Int32] = (0..<100).map { Int32(3 + ($0 * 37) % 500) }
        let other: [Int32] = (0..<120).map { Int32(5 + ($0 * 53) % 500) }
        // Alone: turn one, then turn two (the whole conversation as one prompt, as after losing it all).
        let alone = Session(loaded, contextLength: 256, threads: 2)
        let a1 = try alone.generate(prompt: first, options: greedy(8)) { _ in }
        let second = first + a1.tokens + [7, 8, 9]
        let a2 = try Session(loaded, contextLength: 256, threads: 2).generate(prompt: second, options: greedy(8)) { _ in }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvdisk-recovery-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = try KVDiskTier(directory: dir, budgetBytes: 64 << 20)
        // 6 pages of 32 positions: not enough for 108 + 128 positions.
        let pool = KVPagePool(shape: loaded.model.kvShape(), pageTokens: 32, capacity: 6, disk: disk)
        let session = Session(loaded, contextLength: 256, threads: 2, kvPool: pool)
        let b1 = try session.generate(prompt: first, options: greedy(8)) { _ in }
        #expect(b1.tokens == a1.tokens)
        let neighbour = Session(loaded, contextLength: 256, threads: 2, kvPool: pool)
        _ = try neighbour.generate(prompt: other, options: greedy(8)) { _ in }
        #expect(session.state.cache.swappedPages > 0, "the first conversation should be on disk")

        try damageEverySlot(disk)
        let b2 = try session.generate(prompt: second, options: greedy(8)) { _ in }
        #expect(disk.corruptReads > 0)
        #expect(b2.promptEvaluated == second.count, "the damaged pages must be recomputed, not used")
        #expect(b2.tokens == a2.tokens)

        // Swapped out and damaged again: a save evaluates the lost positions first; loaded elsewhere, the
        // conversation goes on as one that never touched the disk.
        _ = try neighbour.generate(prompt: other + [1, 2, 3], options: greedy(8)) { _ in }
        #expect(session.state.cache.swappedPages > 0)
        try damageEverySlot(disk)
        let path = dir + "/saved.dskv"
        try session.save(to: path)
        let restored = Session(loaded, contextLength: 256, threads: 2)
        try restored.load(from: path)
        #expect(restored.cachedTokens == second + b2.tokens)
        let third = second + b2.tokens + [4, 5]
        let r3 = try restored.generate(prompt: third, options: greedy(8)) { _ in }
        let a3 = try Session(loaded, contextLength: 256, threads: 2).generate(prompt: third, options: greedy(8)) { _ in }
        #expect(r3.promptEvaluated == 2 && r3.tokens == a3.tokens)
    }
}
