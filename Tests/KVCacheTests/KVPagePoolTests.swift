// Page pool and sequences: allocation, reference counts, copy-on-write, prefix cache, LRU eviction,
// rollback, budget errors.

import Foundation
import Testing
import KVCache

@Suite struct KVPagePoolTests {
    let shape = KVShape(layers: 2, kRowFloats: 3, vRowFloats: 2)

    /// Writes a recognisable value into every row of positions start..<start+n (value = token · 10 + layer).
    func write(_ seq: KVSequence, _ tokens: [Int32], start: Int) throws {
        try seq.prepareWrite(start: start, count: tokens.count)
        for (i, t) in tokens.enumerated() {
            for l in 0..<2 {
                let k = [Float](repeating: Float(t) * 10 + Float(l), count: 3)
                let v = [Float](repeating: -Float(t) * 10 - Float(l), count: 2)
                seq.storeK(l, start + i, k)
                seq.storeV(l, start + i, v)
            }
        }
        tokens.withUnsafeBufferPointer { seq.commit($0, start: start) }
    }

    func rowsMatch(_ seq: KVSequence, _ tokens: [Int32]) -> Bool {
        for (p, t) in tokens.enumerated() {
            for l in 0..<2 {
                var k = [Float](repeating: 0, count: 3)
                seq.loadK(l, p, count: 3, into: &k)
                let v = seq.pool.shape.type == .f32 ? seq.vRow(l, p).assumingMemoryBound(to: Float.self)[1] : 0
                if k[2] != Float(t) * 10 + Float(l) { return false }
                if seq.pool.shape.type == .f32 && v != -Float(t) * 10 - Float(l) { return false }
            }
        }
        return true
    }

    /// Q8_0 pages: 34 bytes per 32 values; rows come back within the block's quantization step.
    @Test func q8RowsRoundTrip() throws {
        let pool = KVPagePool(shape: KVShape(layers: 1, kRowFloats: 64, vRowFloats: 32, type: .q8_0), pageTokens: 4, capacity: 2)
        #expect(pool.shape.bytesPerPosition == 3 * 34)
        let seq = KVSequence(pool: pool, maxPositions: 8)
        try seq.prepareWrite(start: 0, count: 1)
        let x = (0..<64).map { Float($0 - 31) * 0.37 }
        seq.storeK(0, 0, x)
        var back = [Float](repeating: 0, count: 64)
        seq.loadK(0, 0, count: 64, into: &back)
        let step = 31 * 0.37 / 127 as Float
        #expect(zip(x, back).allSatisfy { abs($0 - $1) <= step })
        var second = [Float](repeating: 0, count: 32)
        seq.loadK(0, 0, offset: 32, count: 32, into: &second)
        #expect(Array(back[32...]) == second)
    }

    /// F16 pages: rows are stored rounded to half precision and read back as floats.
    @Test func f16RowsRoundTrip() throws {
        let pool = KVPagePool(shape: KVShape(layers: 2, kRowFloats: 3, vRowFloats: 2, type: .f16), pageTokens: 4, capacity: 4)
        #expect(pool.shape.bytesPerPosition == 2 * 5 * 2)
        let seq = KVSequence(pool: pool, maxPositions: 16)
        try write(seq, [1, 2, 3, 4, 5], start: 0)      // values t·10 + l are exact in half precision
        #expect(rowsMatch(seq, [1, 2, 3, 4, 5]))
        seq.storeK(0, 0, [0.1, 1e-8, 70000])
        var back = [Float](repeating: 0, count: 3)
        seq.loadK(0, 0, count: 3, into: &back)
        #expect(back[0] == Float(Float16(0.1)) && back[1] == 0 && back[2] == .infinity)
    }

    @Test func pagesAreAllocatedPerPageAndFreedOnTruncate() throws {
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 8)
        let seq = KVSequence(pool: pool, maxPositions: 32)
        try write(seq, Array(0..<10), start: 0)
        #expect(seq.pageCount == 3 && seq.count == 10)
        #expect(rowsMatch(seq, Array(0..<10)))
        seq.truncate(to: 5)
        #expect(seq.pageCount == 2 && seq.count == 5 && seq.committedTokens == Array(0..<5))
        // Two full pages were committed: the first stays cached, the second (cut) stays with the sequence.
        #expect(pool.freePages + pool.cachedPages + seq.pageCount == 8)
    }

    @Test func sharedPrefixPagesAreReusedAndCopiedOnWrite() throws {
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 16)
        let prompt: [Int32] = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
        let a = KVSequence(pool: pool, maxPositions: 32)
        try write(a, prompt, start: 0)
        let b = KVSequence(pool: pool, maxPositions: 32)
        // Two full pages of the same tokens exist: b attaches them without computing anything.
        #expect(b.attachCachedPrefix(of: prompt, limit: prompt.count - 1) == 8)
        #expect(pool.prefixHits == 2)
        #expect(b.pageTable[0] == a.pageTable[0] && b.pageTable[1] == a.pageTable[1])
        #expect(rowsMatch(b, Array(prompt[0..<8])))
        // b diverges inside the second page: it gets its own copy, a's rows are untouched.
        b.truncate(to: 6)
        try write(b, [99, 98, 97], start: 6)
        #expect(b.pageTable[1] != a.pageTable[1])
        #expect(rowsMatch(b, [5, 6, 7, 8, 9, 10, 99, 98, 97]))
        #expect(rowsMatch(a, prompt))
        // A different first page finds nothing.
        let c = KVSequence(pool: pool, maxPositions: 32)
        #expect(c.attachCachedPrefix(of: [1, 6, 7, 8, 9], limit: 4) == 0)
    }

    @Test func cachedPagesOutliveTheirSequenceUntilEvicted() throws {
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 3)
        do {
            let a = KVSequence(pool: pool, maxPositions: 16)
            try write(a, [1, 2, 3, 4, 5, 6, 7, 8], start: 0)
        }
        #expect(pool.cachedPages == 2 && pool.freePages == 1)
        let b = KVSequence(pool: pool, maxPositions: 16)
        #expect(b.attachCachedPrefix(of: [1, 2, 3, 4, 5, 6, 7, 8, 9], limit: 8) == 8)
        #expect(rowsMatch(b, [1, 2, 3, 4, 5, 6, 7, 8]))
        b.truncate(to: 0)
        // A new sequence needing all 3 pages evicts the cached ones, least recently used first.
        let c = KVSequence(pool: pool, maxPositions: 16)
        try write(c, Array(20..<32), start: 0)
        #expect(pool.evictions == 2 && pool.cachedPages == 0)
        #expect(rowsMatch(c, Array(20..<32)))
    }

    @Test func exhaustedBudgetIsAnErrorAndKeepsCommittedRows() throws {
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 2)
        let a = KVSequence(pool: pool, maxPositions: 64)
        try write(a, Array(0..<6), start: 0)
        #expect(throws: KVCacheError.self) { try a.prepareWrite(start: 6, count: 8) }
        #expect(a.count == 6 && rowsMatch(a, Array(0..<6)))
        let text = "\(KVCacheError.budgetExhausted(pages: 2, pageTokens: 4, bytes: 1 << 21))"
        #expect(text.contains("--kv-budget"))
        let state = "\(KVCacheError.budgetExhausted(pages: 2, pageTokens: 4, bytes: 1 << 21, statePagesPerSequence: 3))"
        #expect(state.contains("takes 3 pages (3.0 MiB) per sequence"), "\(state)")
    }

    @Test func budgetInBytesGivesWholePages() {
        let pool = KVPagePool(shape: shape, pageTokens: 30, budgetBytes: 10_000)
        // 32 positions per page (rounded to a power of two) × 2 layers × 5 floats × 4 bytes = 1280 bytes.
        #expect(pool.pageTokens == 32 && pool.capacity == 7)
    }

    func diskDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvdisk-\(UUID())").path
    }

    /// With a disk tier, a sequence that needs pages swaps out the least recently used idle one; that
    /// one gets its rows back bit for bit when it runs again (swapping the other out in turn).
    @Test func idleSequencesSwapToDiskAndComeBackExact() throws {
        let dir = diskDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = try KVDiskTier(directory: dir, budgetBytes: 1 << 20)
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 3, disk: disk)
        let a = KVSequence(pool: pool, maxPositions: 32), b = KVSequence(pool: pool, maxPositions: 32)
        try write(a, [1, 2, 3, 4, 5, 6], start: 0)          // 2 pages
        try write(b, [11, 12, 13, 14, 15, 16, 17], start: 0) // needs 2: a is swapped out
        #expect(a.swappedPages == 2 && b.swappedPages == 0 && pool.swapOuts == 1)
        #expect(rowsMatch(b, [11, 12, 13, 14, 15, 16, 17]))
        try write(a, [7], start: 6)                          // a comes back, b goes out
        #expect(a.swappedPages == 0 && b.swappedPages == 2)
        #expect(rowsMatch(a, [1, 2, 3, 4, 5, 6, 7]))
        try b.makeResident()
        #expect(rowsMatch(b, [11, 12, 13, 14, 15, 16, 17]))
        // a out (2), b out (2), a out again to make room for b (2); b in (2), a in (2).
        #expect(disk.pagesWritten == 6 && disk.pagesRead == 4)
        #expect(a.swappedPages == 2 && b.swappedPages == 0)
        // A sequence larger than RAM alone is still an error, not a hang.
        let c = KVSequence(pool: pool, maxPositions: 64)
        #expect(throws: KVCacheError.self) { try c.prepareWrite(start: 0, count: 20) }
    }

    /// Files of processes that are gone are removed when a tier opens; the tier's own file goes with it.
    @Test func staleDiskFilesAreCleanedUp() throws {
        let dir = diskDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let stale = dir + "/kvpages-999999.bin"
        #expect(FileManager.default.createFile(atPath: stale, contents: Data(count: 100)))
        var tier: KVDiskTier? = try KVDiskTier(directory: dir, budgetBytes: 1 << 20)
        #expect(!FileManager.default.fileExists(atPath: stale))
        let own = tier!.path
        #expect(FileManager.default.fileExists(atPath: own))
        tier = nil
        #expect(!FileManager.default.fileExists(atPath: own))
    }

    /// Prefix pages evicted from RAM go to the disk tier and come back bit for bit for a later prompt
    /// with the same prefix.
    @Test func evictedPrefixPagesComeBackFromDisk() throws {
        let dir = diskDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = try KVDiskTier(directory: dir, budgetBytes: 1 << 20)
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 3, disk: disk)
        let prefix: [Int32] = Array(1...8)
        do {
            let a = KVSequence(pool: pool, maxPositions: 32)
            try write(a, prefix + [9], start: 0)     // pages [1-4] [5-8] registered, [9] partial
        }
        // Another sequence takes every page: the two cached prefix pages are evicted to disk.
        let b = KVSequence(pool: pool, maxPositions: 32)
        try write(b, Array(50..<62), start: 0)
        #expect(pool.evictions == 2 && pool.cachedPages == 0)
        b.truncate(to: 0)
        let c = KVSequence(pool: pool, maxPositions: 32)
        #expect(c.attachCachedPrefix(of: prefix + [99], limit: 8) == 8)
        #expect(pool.diskPrefixHits == 2)
        #expect(rowsMatch(c, prefix))
    }
}

/// Side-state snapshots: the longest one whose tokens begin the sequence within the asked range, at
/// most `checkpointLimit` (least recently used dropped), growing bytes within the pages' side budget.
@Test func sideStateCheckpointsPickTheLongestMatchingPrefix() {
    let pool = KVPagePool(shape: KVShape(layers: 1, kRowFloats: 4, vRowFloats: 4, sideBytesPerPosition: 10), pageTokens: 4, capacity: 4)
    #expect(pool.checkpointGrowingLimit == 160)
    pool.checkpointLimit = 3
    pool.storeCheckpoint(tokens: [1, 2], bytes: [2])
    pool.storeCheckpoint(tokens: [1, 2, 3, 4], bytes: [4])
    pool.storeCheckpoint(tokens: [1, 2, 9], bytes: [9])
    let history: [Int32] = [1, 2, 3, 4, 5]
    #expect(pool.checkpoint(matching: history, above: 0, atMost: 5)?.bytes == [4])
    #expect(pool.checkpoint(matching: history, above: 0, atMost: 3)?.bytes == [2])     // [1, 2, 9] is another branch
    #expect(pool.checkpoint(matching: history, above: 2, atMost: 3) == nil)
    #expect(pool.checkpoint(matching: [7], above: 0, atMost: 1) == nil)
    // [1, 2, 9] is now the least recently used: a fourth snapshot drops it.
    pool.storeCheckpoint(tokens: [1, 2, 3, 4, 5], bytes: [5])
    #expect(pool.checkpointCount == 3)
    #expect(pool.checkpoint(matching: [1, 2, 9], above: 2, atMost: 3) == nil)
    // Growing bytes: together at most 160; one over it is not kept at all.
    pool.storeCheckpoint(tokens: [3], bytes: [], growingBytes: 100)
    pool.storeCheckpoint(tokens: [4], bytes: [], growingBytes: 100)
    #expect(pool.checkpoint(matching: [3], above: 0, atMost: 1) == nil)
    #expect(pool.checkpoint(matching: [4], above: 0, atMost: 1) != nil)
    pool.storeCheckpoint(tokens: [5], bytes: [], growingBytes: 161)
    #expect(pool.checkpoint(matching: [5], above: 0, atMost: 1) == nil)
    pool.checkpointLimit = 0
    pool.storeCheckpoint(tokens: [6], bytes: [6])
    #expect(pool.checkpoint(matching: [6], above: 0, atMost: 1) == nil)
}
