// The KV disk tier clobbers nothing and trusts nothing it reads back: a symlink or a file already at a
// page file's name is left alone (never followed, truncated or deleted while locked), the tier's lock is
// really held, and a byte changed in the page file on disk is caught by the slot's checksum: the
// damaged page is dropped and its positions are evaluated again, never used.

import Foundation
import Testing
import KVCache

@Suite struct KVDiskTierIntegrityTests {
    let shape = KVShape(layers: 2, kRowFloats: 3, vRowFloats: 2)

    func directory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvdisk-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Rows of positions start..<start+n: K = token · 10 + layer, V its negation.
    func write(_ seq: KVSequence, _ tokens: [Int32], start: Int) throws {
        try seq.prepareWrite(start: start, count: tokens.count)
        for (i, t) in tokens.enumerated() {
            for l in 0..<2 {
                seq.storeK(l, start + i, [Float](repeating: Float(t) * 10 + Float(l), count: 3))
                seq.storeV(l, start + i, [Float](repeating: -Float(t) * 10 - Float(l), count: 2))
            }
        }
        tokens.withUnsafeBufferPointer { seq.commit($0, start: start) }
    }

    func rowsMatch(_ seq: KVSequence, _ tokens: [Int32]) -> Bool {
        guard seq.committedTokens == tokens else { return false }
        for (p, t) in tokens.enumerated() {
            for l in 0..<2 {
                let k = seq.kRow(l, p).assumingMemoryBound(to: Float.self), v = seq.vRow(l, p).assumingMemoryBound(to: Float.self)
                if (0..<3).contains(where: { k[$0] != Float(t) * 10 + Float(l) }) || (0..<2).contains(where: { v[$0] != -Float(t) * 10 - Float(l) }) {
                    return false
                }
            }
        }
        return true
    }

    /// Flips one byte of the page file on disk (what another process or a bad disk could do).
    func flipByte(_ path: String, at offset: Int) throws {
        let fd = open(path, O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, off_t(offset)) == 1)
        byte ^= 0x10
        #expect(pwrite(fd, &byte, 1, off_t(offset)) == 1)
    }

    @Test func plantedSymlinksAndFilesAreNeverClobbered() throws {
        let dir = try directory(), outside = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: outside) }
        let precious = Data("precious".utf8)
        // A symlink at the tier's first name, pointing at a file elsewhere.
        let victim = outside + "/victim"
        try precious.write(to: URL(fileURLWithPath: victim))
        let link = "\(dir)/kvpages-\(getpid()).bin"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: victim)
        // A file at the next name that another live tier holds locked.
        let other = "\(dir)/kvpages-\(getpid())-1.bin"
        try precious.write(to: URL(fileURLWithPath: other))
        let held = open(other, O_RDWR)
        #expect(held >= 0 && flock(held, LOCK_EX | LOCK_NB) == 0)
        defer { close(held) }

        var disk: KVDiskTier? = try KVDiskTier(directory: dir, budgetBytes: 1 << 20)
        #expect(disk!.path == "\(dir)/kvpages-\(getpid())-2.bin")
        // Its lock is held: no one else can take it.
        let probe = open(disk!.path, O_RDWR)
        #expect(probe >= 0 && flock(probe, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        close(probe)
        // Pages go to disk (two sequences in a pool of three pages).
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 3, disk: disk)
        let a = KVSequence(pool: pool, maxPositions: 32), b = KVSequence(pool: pool, maxPositions: 32)
        try write(a, [1, 2, 3, 4, 5, 6], start: 0)
        try write(b, [11, 12, 13, 14, 15, 16, 17], start: 0)
        #expect(a.swappedPages == 2 && disk!.pagesWritten == 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: victim)) == precious)
        #expect(try Data(contentsOf: URL(fileURLWithPath: other)) == precious)
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == victim)
        _ = (a, b)
        disk = nil
        // Another tier in the folder leaves the live one's file and the symlink alone.
        let again = try KVDiskTier(directory: dir, budgetBytes: 1 << 20)
        #expect(FileManager.default.fileExists(atPath: other) && (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == victim)
        #expect(again.path != link && again.path != other)
        #expect(try Data(contentsOf: URL(fileURLWithPath: victim)) == precious)
    }

    /// A byte flipped in a swapped-out page: the sequence keeps the positions before that page and
    /// evaluates the rest again; the damaged rows are never read as K/V.
    @Test(arguments: [(1, 4), (0, 0)])
    func damagedSwappedPageIsDroppedNotUsed(page: Int, kept: Int) throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = try KVDiskTier(directory: dir, budgetBytes: 1 << 20)
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 3, disk: disk)
        let a = KVSequence(pool: pool, maxPositions: 32), b = KVSequence(pool: pool, maxPositions: 32)
        try write(a, [1, 2, 3, 4, 5, 6], start: 0)          // pages 0 and 1
        try write(b, [11, 12, 13, 14, 15, 16, 17], start: 0) // a goes to slots 0 and 1
        #expect(a.swappedPages == 2)
        try flipByte(disk.path, at: disk.offset(ofSlot: page) + 5)

        #expect(throws: KVCacheError.pagesLost(position: page * 4, kept: kept)) { try a.prepareWrite(start: 6, count: 1) }
        #expect(disk.corruptReads == 1)
        #expect(a.count == kept && a.swappedPages == 0)
        #expect(rowsMatch(a, Array([1, 2, 3, 4, 5, 6].prefix(kept))))
        // Evaluated again from where it stands, it holds what it should.
        try write(a, Array([Int32(1), 2, 3, 4, 5, 6, 7][kept...]), start: kept)
        #expect(rowsMatch(a, [1, 2, 3, 4, 5, 6, 7]))
        // Reading rows for a save swaps in too: a damaged page is reported the same way.
        try write(b, [18], start: 7)                         // a goes out again
        #expect(a.swappedPages > 0)
        let size = (try FileManager.default.attributesOfItem(atPath: disk.path)[.size] as? Int) ?? 0
        for slot in 0..<8 where disk.offset(ofSlot: slot) < size { try flipByte(disk.path, at: disk.offset(ofSlot: slot) + 1) }
        #expect(throws: KVCacheError.self) { try a.makeResident() }
        #expect(a.count < 7 && rowsMatch(a, Array([1, 2, 3, 4, 5, 6, 7].prefix(a.count))))
    }

    /// A prefix page evicted to disk and damaged there is a cache miss: the prompt attaches only the
    /// intact pages before it.
    @Test func damagedPrefixPageOnDiskIsAMiss() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = try KVDiskTier(directory: dir, budgetBytes: 1 << 20)
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 3, disk: disk)
        let prefix: [Int32] = Array(1...8)
        do {
            let a = KVSequence(pool: pool, maxPositions: 32)
            try write(a, prefix + [9], start: 0)     // pages [1-4] [5-8] registered
        }
        let b = KVSequence(pool: pool, maxPositions: 32)
        try write(b, Array(50..<62), start: 0)       // both prefix pages evicted: [1-4] to slot 0, [5-8] to slot 1
        #expect(pool.evictions == 2)
        b.truncate(to: 0)
        try flipByte(disk.path, at: disk.offset(ofSlot: 1) + 7)
        let c = KVSequence(pool: pool, maxPositions: 32)
        #expect(c.attachCachedPrefix(of: prefix + [99], limit: 8) == 4)
        #expect(pool.diskPrefixHits == 1 && disk.corruptReads == 1)
        #expect(rowsMatch(c, Array(prefix.prefix(4))))
    }
}
