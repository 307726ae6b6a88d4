// One sequence's view of the paged KV cache: a page table (position p lives in page
// pageTable[p / pageTokens] at row p % pageTokens), the committed token ids and the hash chain of its
// full pages. The model writes K/V rows through kRow/vRow after prepareWrite, then commits the tokens;
// attention kernels read the rows through the page table.

import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class KVSequence: @unchecked Sendable {
    public let pool: KVPagePool
    /// Most positions this sequence may hold (the context length).
    public let maxPositions: Int
    /// Positions written and committed.
    public private(set) var count = 0
    /// Page ids, one per pageTokens positions (the attention kernels read it directly).
    public let pageTable: UnsafeMutablePointer<Int32>
    public private(set) var pageCount = 0
    private var tokens: [Int32] = []
    /// Chain hash of each full committed page.
    private var chainHashes: [UInt64] = []
    /// Disk slot of each page swapped out (-1: in RAM).
    private var swapSlots: [Int32]
    /// Set while a forward pass writes or reads this sequence's pages (they must stay in RAM).
    var pinned = false
    var lastUsed: UInt64 = 0

    public init(pool: KVPagePool, maxPositions: Int) {
        self.pool = pool
        self.maxPositions = max(1, maxPositions)
        let pages = (self.maxPositions + pool.pageTokens - 1) / pool.pageTokens
        pageTable = .allocate(capacity: pages)
        pageTable.initialize(repeating: -1, count: pages)
        swapSlots = Array(repeating: -1, count: pages)
        pool.registerSequence(self)
    }

    deinit {
        pool.locked {
            for i in 0..<pageCount {
                if swapSlots[i] >= 0 { pool.disk?.freeSlot(swapSlots[i]) } else { pool.releaseLocked(pageTable[i]) }
            }
        }
        pageTable.deallocate()
    }

    /// Pages of this sequence in RAM.
    var residentPages: Int { (0..<pageCount).reduce(0) { $0 + (swapSlots[$1] < 0 ? 1 : 0) } }

    /// Pages of this sequence currently on the disk tier.
    public var swappedPages: Int { pool.locked { pageCount - residentPages } }

    /// Writes this sequence's exclusively owned pages to the disk tier and frees their RAM (pool lock held).
    func swapOutLocked(disk: KVDiskTier) {
        for i in 0..<pageCount where swapSlots[i] < 0 {
            let p = pageTable[i]
            guard pool.refCountLocked(p) == 1, let slot = disk.allocateSlot() else { continue }
            do { try disk.write(slot: slot, parts: pool.pageParts(p)) } catch {
                disk.freeSlot(slot)
                continue
            }
            pool.unregisterLocked(p)
            pool.releaseLocked(p)
            pageTable[i] = -1
            swapSlots[i] = slot
        }
    }

    /// Reads swapped pages back into RAM pages (pool lock held).
    private func swapInLocked() throws {
        guard let disk = pool.disk else { return }
        for i in 0..<pageCount where swapSlots[i] >= 0 {
            let p = try pool.allocateLocked(for: self)
            do { try disk.read(slot: swapSlots[i], parts: pool.pageParts(p)) } catch {
                pool.releaseLocked(p)
                throw error
            }
            disk.freeSlot(swapSlots[i])
            swapSlots[i] = -1
            pageTable[i] = p
        }
    }

    /// Brings every page of the sequence into RAM (before reading rows directly, e.g. to save them).
    public func makeResident() throws {
        try pool.locked {
            pool.touchLocked(self)
            try swapInLocked()
        }
    }

    /// The committed token ids (positions 0..<count).
    public var committedTokens: [Int32] { tokens }

    // MARK: - Row access (hot path: no locking)

    /// The stored K row (elements of pool.shape.type) of a position.
    @inline(__always) public func kRow(_ layer: Int, _ position: Int) -> UnsafeMutableRawPointer {
        let page = Int(pageTable[position >> pool.pageTokensLog2])
        let unit = page * pool.kPageStride + (position & (pool.pageTokens - 1)) * pool.kRowUnits
        return pool.kArenas[layer] + unit * pool.shape.type.unitBytes
    }

    @inline(__always) public func vRow(_ layer: Int, _ position: Int) -> UnsafeMutableRawPointer {
        let page = Int(pageTable[position >> pool.pageTokensLog2])
        let unit = page * pool.vPageStride + (position & (pool.pageTokens - 1)) * pool.vRowUnits
        return pool.vArenas[layer] + unit * pool.shape.type.unitBytes
    }

    /// Stores floats into a position's K (V) row, converting to the pool's type.
    public func storeK(_ layer: Int, _ position: Int, _ x: UnsafePointer<Float>) {
        KVSequence.store(x, into: kRow(layer, position), count: pool.shape.kRowFloats, type: pool.shape.type)
    }

    public func storeV(_ layer: Int, _ position: Int, _ x: UnsafePointer<Float>) {
        KVSequence.store(x, into: vRow(layer, position), count: pool.shape.vRowFloats, type: pool.shape.type)
    }

    /// Reads `count` elements of a position's K row from element `offset` as floats (Q8_0: both whole
    /// blocks).
    public func loadK(_ layer: Int, _ position: Int, offset: Int = 0, count: Int, into out: UnsafeMutablePointer<Float>) {
        let type = pool.shape.type, src = kRow(layer, position) + type.bytes(offset)
        switch type {
        case .f32: out.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16: ds_f16_to_f32_row(src, out, Int64(count))
        case .q8_0: ds_dequantize_row(Int32(DS_TYPE_Q8_0), src, out, Int64(count))
        }
    }

    static func store(_ x: UnsafePointer<Float>, into row: UnsafeMutableRawPointer, count: Int, type: KVType) {
        switch type {
        case .f32: row.assumingMemoryBound(to: Float.self).update(from: x, count: count)
        case .f16: ds_f32_to_f16_row(x, row, Int64(count))
        case .q8_0: ds_quantize_row_ref(Int32(DS_TYPE_Q8_0), x, row, Int64(count))
        }
    }

    // MARK: - Writing

    /// Makes positions start..<start+n writable: drops committed positions ≥ start, copies the page
    /// holding `start` if another sequence or the prefix cache shares it, allocates the pages up to the
    /// end. Throws when the pool has no page left (nothing is lost: committed positions stay).
    public func prepareWrite(start: Int, count n: Int) throws {
        precondition(start >= 0 && start + n <= maxPositions, "KV write \(start)..<\(start + n) outside 0..<\(maxPositions)")
        if start < count { truncate(to: start) }
        let shift = pool.pageTokensLog2
        let needed = (start + n + pool.pageTokens - 1) >> shift
        try pool.locked {
            // Pinned until commit: the pass reads and writes these pages directly.
            pinned = true
            pool.touchLocked(self)
            do { try swapInLocked() } catch { pinned = false; throw error }
            let first = start >> shift
            do {
                if n > 0, first < pageCount {
                    let p = pageTable[first]
                    if pool.refCountLocked(p) > 1 || pool.isRegisteredLocked(p) {
                        let copy = try pool.allocateLocked(for: self)
                        pool.copyPage(from: p, to: copy)
                        pool.releaseLocked(p)
                        pageTable[first] = copy
                    }
                }
                while pageCount < needed {
                    pageTable[pageCount] = try pool.allocateLocked(for: self)
                    pageCount += 1
                }
            } catch {
                pinned = false
                throw error
            }
        }
    }

    /// Records the tokens whose K/V were written at start..<start+n and registers the pages they fill
    /// in the prefix cache.
    public func commit(_ newTokens: UnsafeBufferPointer<Int32>, start: Int) {
        precondition(start <= count, "KV commit at \(start) leaves a hole after \(count)")
        defer { pool.locked { pinned = false } }
        if start < count { tokens.removeSubrange(start...) }
        tokens.append(contentsOf: newTokens)
        count = start + newTokens.count
        let P = pool.pageTokens
        let full = count / P
        guard chainHashes.count < full else { return }
        tokens.withUnsafeBufferPointer { all in
            pool.locked {
                while chainHashes.count < full {
                    let i = chainHashes.count
                    let parent = i == 0 ? 0 : chainHashes[i - 1]
                    let slice = UnsafeBufferPointer(rebasing: all[(i * P)..<((i + 1) * P)])
                    let h = KVPagePool.chainHash(parent: parent, tokens: slice)
                    pool.registerLocked(pageTable[i], hash: h, parent: parent, tokens: slice)
                    chainHashes.append(h)
                }
            }
        }
    }

    /// Keeps positions 0..<length; pages past it go back to the pool (or its prefix cache).
    public func truncate(to length: Int) {
        let length = max(0, min(length, count))
        count = length
        tokens.removeSubrange(length...)
        let P = pool.pageTokens
        if chainHashes.count > length / P { chainHashes.removeSubrange((length / P)...) }
        let keep = (length + P - 1) / P
        guard pageCount > keep else { return }
        pool.locked {
            while pageCount > keep {
                pageCount -= 1
                if swapSlots[pageCount] >= 0 {
                    pool.disk?.freeSlot(swapSlots[pageCount])
                    swapSlots[pageCount] = -1
                } else {
                    pool.releaseLocked(pageTable[pageCount])
                }
                pageTable[pageCount] = -1
            }
        }
    }

    /// Extends the sequence with cached pages that hold the next full pages of `prompt` (which must
    /// start with the committed tokens, and `count` must be page-aligned). At most `limit` positions in
    /// total. Returns the new count.
    @discardableResult
    public func attachCachedPrefix(of prompt: [Int32], limit: Int) -> Int {
        let P = pool.pageTokens
        guard count % P == 0, chainHashes.count == count / P, prompt.count >= count else { return count }
        let limit = min(limit, prompt.count, maxPositions)
        prompt.withUnsafeBufferPointer { all in
            pool.locked {
                while count + P <= limit {
                    let i = count / P
                    let parent = i == 0 ? 0 : chainHashes[i - 1]
                    let slice = UnsafeBufferPointer(rebasing: all[count..<(count + P)])
                    let h = KVPagePool.chainHash(parent: parent, tokens: slice)
                    guard let page = pool.lookupLocked(hash: h, parent: parent, tokens: slice) else { break }
                    if pageCount > i {
                        // A page of ours sits there with nothing committed in it (count is page-aligned).
                        if swapSlots[i] >= 0 { pool.disk?.freeSlot(swapSlots[i]); swapSlots[i] = -1 } else { pool.releaseLocked(pageTable[i]) }
                        pageTable[i] = page
                    } else {
                        pageTable[pageCount] = page
                        pageCount += 1
                    }
                    chainHashes.append(h)
                    tokens.append(contentsOf: slice)
                    count += P
                }
            }
        }
        return count
    }
}
