// One sequence's view of the paged KV cache: per layer group a page table (position p of a layer lives
// in page pageTable(forLayer:)[p / pageTokens] at row p % pageTokens), the committed token ids and the
// hash chain of its full pages. The model writes K/V rows through kRow/vRow after prepareWrite, then
// commits the tokens; attention kernels read the rows through the page tables.
//
// Groups whose layers only look back a window (sliding-window or chunked attention) drop their pages
// that no later query can read, keeping one page of slack so short rollbacks (speculative decoding)
// stay free; dropped pages stay in the prefix cache while their memory is not needed.

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
    /// Page-table entries per group.
    let maxPages: Int
    /// Page ids, groups × maxPages (-1: no page: dropped, swapped out or not allocated).
    let pageTables: UnsafeMutablePointer<Int32>
    /// Pages 0..<pageCount are allocated in every group, less each group's dropped pages.
    public private(set) var pageCount = 0
    /// Per group: its pages below this index were dropped (out of the group's window); pages
    /// firstKept..<pageCount are in RAM or swapped out.
    private var firstKept: [Int]
    private var tokens: [Int32] = []
    /// Chain hash of each full committed page.
    private var chainHashes: [UInt64] = []
    /// Disk slot of each page swapped out (-1: in RAM), groups × maxPages.
    private var swapSlots: [Int32]
    /// Model state kept beside the pages (DeepSeek V4's compressed cache, Qwen3.5's recurrent state):
    /// the model owns its meaning and rebuilds it (from a checkpoint and `committedTokens`) when it does
    /// not match `count`. Cutting the sequence below what the state has seen empties it.
    public var auxiliary: KVSideState?
    /// Disk-tier slots holding the side state of a swapped-out sequence (its bytes, standing at
    /// `spilledSideCount` positions); the model takes it back with takeSpilledSideState.
    private var sideSlots: [Int32] = []
    /// Pages held (never written) so the budget covers the fixed side state while it is in RAM.
    private var sideReservation: [Int32] = []
    private var spilledSideBytes = 0
    private var spilledSideCount = 0
    /// Set while a forward pass writes or reads this sequence's pages (they must stay in RAM).
    var pinned = false
    var lastUsed: UInt64 = 0

    /// A number no other sequence of this process has (pipeline stages name rank 0's sequences by it).
    public let serial: Int = KVSequence.nextSerial()

    private nonisolated(unsafe) static var serials = 0
    private nonisolated(unsafe) static var serialLock = pthread_mutex_t()
    private static let serialLockReady: Void = { pthread_mutex_init(&serialLock, nil) }()
    private static func nextSerial() -> Int {
        _ = serialLockReady
        pthread_mutex_lock(&serialLock)
        defer { pthread_mutex_unlock(&serialLock) }
        serials += 1
        return serials
    }

    public init(pool: KVPagePool, maxPositions: Int) {
        self.pool = pool
        self.maxPositions = max(1, maxPositions)
        maxPages = (self.maxPositions + pool.pageTokens - 1) / pool.pageTokens
        let entries = maxPages * pool.groups.count
        pageTables = .allocate(capacity: entries)
        pageTables.initialize(repeating: -1, count: entries)
        swapSlots = Array(repeating: -1, count: entries)
        firstKept = Array(repeating: 0, count: pool.groups.count)
        pool.registerSequence(self)
    }

    deinit {
        pool.locked {
            for g in 0..<groupCount { for i in firstKept[g]..<max(firstKept[g], pageCount) { releaseEntryLocked(g, i) } }
            dropSpilledSideStateLocked()
            releaseSideReservationLocked()
        }
        pageTables.deallocate()
    }

    var groupCount: Int { pool.groups.count }

    /// Page table of layer group 0 (all layers for models without sliding-window layers).
    public var pageTable: UnsafeMutablePointer<Int32> { pageTables }
    /// Page table of the group holding `layer` (what the attention kernels read).
    public func pageTable(forLayer layer: Int) -> UnsafeMutablePointer<Int32> { pageTables + pool.layerGroup[layer] * maxPages }
    /// First position whose rows `layer` still holds (0 unless its group dropped pages out of its window).
    public func firstRetainedPosition(layer: Int) -> Int { min(count, firstKept[pool.layerGroup[layer]] * pool.pageTokens) }

    @inline(__always) private func entry(_ g: Int, _ i: Int) -> Int { g * maxPages + i }

    /// Gives a page-table entry's page (or disk slot) back; the entry becomes empty (pool lock held).
    private func releaseEntryLocked(_ g: Int, _ i: Int) {
        let e = entry(g, i)
        if swapSlots[e] >= 0 {
            pool.disk?.freeSlot(swapSlots[e])
            swapSlots[e] = -1
        } else if pageTables[e] >= 0 {
            pool.releaseLocked(pageTables[e])
        }
        pageTables[e] = -1
    }

    /// Pages of this sequence in RAM.
    var residentPages: Int {
        var n = 0
        for g in 0..<groupCount { for i in firstKept[g]..<max(firstKept[g], pageCount) where pageTables[entry(g, i)] >= 0 { n += 1 } }
        return n
    }

    /// Pages of this sequence currently on the disk tier.
    public var swappedPages: Int { pool.locked { swapSlots.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } } }

    /// Pages this sequence holds in RAM or on disk (all groups).
    public var heldPages: Int { pool.locked { residentPages + swapSlots.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } } }

    /// Writes this sequence's exclusively owned pages to the disk tier and frees their RAM (pool lock held).
    func swapOutLocked(disk: KVDiskTier) {
        for g in 0..<groupCount {
            for i in firstKept[g]..<max(firstKept[g], pageCount) {
                let e = entry(g, i), p = pageTables[e]
                guard p >= 0, pool.refCountLocked(p) == 1, let slot = disk.allocateSlot() else { continue }
                do { try disk.write(slot: slot, parts: pool.pageParts(p)) } catch {
                    disk.freeSlot(slot)
                    continue
                }
                pool.unregisterLocked(p)
                pool.releaseLocked(p)
                pageTables[e] = -1
                swapSlots[e] = slot
            }
        }
        spillSideStateLocked(disk: disk)
    }

    /// Writes the side state (when it stands at the sequence's end) to disk slots and lets its RAM go.
    private func spillSideStateLocked(disk: KVDiskTier) {
        guard let side = auxiliary, side.count == count, count > 0, sideSlots.isEmpty else { return }
        var bytes = side.encoded()
        let slotBytes = pool.pageBytes, needed = (bytes.count + slotBytes - 1) / slotBytes
        var slots: [Int32] = []
        while slots.count < needed, let s = disk.allocateSlot() { slots.append(s) }
        let total = bytes.count
        bytes += [UInt8](repeating: 0, count: needed * slotBytes - total)
        let written: Bool = slots.count == needed && bytes.withUnsafeMutableBytes { raw in
            for (i, s) in slots.enumerated() {
                do { try disk.write(slot: s, parts: [(raw.baseAddress! + i * slotBytes, slotBytes)]) } catch { return false }
            }
            return true
        }
        guard written else { for s in slots { disk.freeSlot(s) }; return }
        sideSlots = slots
        spilledSideBytes = total
        spilledSideCount = count
        auxiliary = nil
        releaseSideReservationLocked()
    }

    private func releaseSideReservationLocked() {
        for p in sideReservation { pool.releaseLocked(p) }
        sideReservation = []
    }

    private func dropSpilledSideStateLocked() {
        for s in sideSlots { pool.disk?.freeSlot(s) }
        sideSlots = []
    }

    /// The side state a swap-out wrote to disk (its bytes, and the positions it stands at), read back
    /// and released; nil when none is there.
    public func takeSpilledSideState() throws -> (bytes: [UInt8], count: Int)? {
        try pool.locked {
            guard !sideSlots.isEmpty, let disk = pool.disk else { return nil }
            let slotBytes = pool.pageBytes
            var bytes = [UInt8](repeating: 0, count: sideSlots.count * slotBytes)
            // Read or not (a damaged slot throws; the model then rebuilds the state), the slots go back.
            defer { dropSpilledSideStateLocked() }
            try bytes.withUnsafeMutableBytes { raw in
                for (i, s) in sideSlots.enumerated() { try disk.read(slot: s, parts: [(raw.baseAddress! + i * slotBytes, slotBytes)]) }
            }
            return (Array(bytes[..<spilledSideBytes]), spilledSideCount)
        }
    }

    /// Whether a swap-out left the side state on disk.
    public var sideStateSpilled: Bool { pool.locked { !sideSlots.isEmpty } }

    /// Reads swapped pages back into RAM pages (pool lock held). A page that does not come back intact
    /// (checksum mismatch, I/O error) is lost: its entry is left empty and the lowest lost page index
    /// is returned (nil: none lost); the caller cuts the sequence there (loseFrom).
    private func swapInLocked() throws -> Int? {
        guard let disk = pool.disk else { return nil }
        var lost: Int?
        for e in 0..<swapSlots.count where swapSlots[e] >= 0 {
            let p: Int32
            do { p = try pool.allocateLocked(for: self) } catch {
                // Out of pages after a loss: the caller cuts the sequence first (pages still on disk
                // stay there), so no emptied entry is ever left inside it.
                if lost != nil { return lost }
                throw error
            }
            pool.noteHostWrite(p)
            do { try disk.read(slot: swapSlots[e], parts: pool.pageParts(p)) } catch {
                pool.releaseLocked(p)
                disk.freeSlot(swapSlots[e])
                swapSlots[e] = -1
                lost = min(lost ?? Int.max, e % maxPages)
                continue
            }
            disk.freeSlot(swapSlots[e])
            swapSlots[e] = -1
            pageTables[e] = p
        }
        return lost
    }

    /// After page `page` was lost on the disk tier: keeps the positions before it. Returns the positions
    /// kept, or nil when every committed position survived (the page held only rows not yet committed).
    private func loseFrom(page: Int) -> Int? {
        let before = count
        let kept = truncate(to: page * pool.pageTokens)
        return kept < before ? kept : nil
    }

    /// Brings every page of the sequence into RAM (before reading rows directly, e.g. to save them).
    /// Throws KVCacheError.pagesLost (the sequence cut to what survived) when a page came back damaged.
    public func makeResident() throws {
        let lost: Int? = try pool.locked {
            pool.touchLocked(self)
            return try swapInLocked()
        }
        if let lost, let kept = loseFrom(page: lost) {
            throw KVCacheError.pagesLost(position: lost * pool.pageTokens, kept: kept)
        }
    }

    /// The committed token ids (positions 0..<count).
    public var committedTokens: [Int32] { tokens }

    // MARK: - Row access (hot path: no locking)

    /// The stored K row (elements of pool.shape.type) of a position.
    @inline(__always) public func kRow(_ layer: Int, _ position: Int) -> UnsafeMutableRawPointer {
        let page = Int(pageTables[pool.layerGroup[layer] * maxPages + position >> pool.pageTokensLog2])
        let unit = page * pool.kPageStride + (position & (pool.pageTokens - 1)) * pool.kRowUnits
        return pool.kArenas[pool.layerSlot[layer]] + unit * pool.shape.type.unitBytes
    }

    @inline(__always) public func vRow(_ layer: Int, _ position: Int) -> UnsafeMutableRawPointer {
        let page = Int(pageTables[pool.layerGroup[layer] * maxPages + position >> pool.pageTokensLog2])
        let unit = page * pool.vPageStride + (position & (pool.pageTokens - 1)) * pool.vRowUnits
        return pool.vArenas[pool.layerSlot[layer]] + unit * pool.shape.type.unitBytes
    }

    /// The page holding `layer`'s rows of `position`.
    @inline(__always) public func page(_ layer: Int, _ position: Int) -> Int32 {
        pageTables[pool.layerGroup[layer] * maxPages + position >> pool.pageTokensLog2]
    }

    /// Stores floats into a position's K (V) row, converting to the pool's type.
    public func storeK(_ layer: Int, _ position: Int, _ x: UnsafePointer<Float>) {
        KVSequence.store(x, into: kRow(layer, position), count: pool.shape.kRowFloats, type: pool.shape.type)
        pool.noteHostWrite(page(layer, position))
    }

    public func storeV(_ layer: Int, _ position: Int, _ x: UnsafePointer<Float>) {
        KVSequence.store(x, into: vRow(layer, position), count: pool.shape.vRowFloats, type: pool.shape.type)
        pool.noteHostWrite(page(layer, position))
    }

    /// A position's rows were written on the host through kRow / vRow (a session file's rows).
    public func noteHostWrite(_ layer: Int, _ position: Int) { pool.noteHostWrite(page(layer, position)) }

    /// Reads `count` elements of a position's K row from element `offset` as floats (Q8_0: both whole
    /// blocks).
    public func loadK(_ layer: Int, _ position: Int, offset: Int = 0, count: Int, into out: UnsafeMutablePointer<Float>) {
        KVSequence.load(kRow(layer, position), offset: offset, count: count, type: pool.shape.type, into: out)
    }

    /// The same for a position's V row.
    public func loadV(_ layer: Int, _ position: Int, offset: Int = 0, count: Int, into out: UnsafeMutablePointer<Float>) {
        KVSequence.load(vRow(layer, position), offset: offset, count: count, type: pool.shape.type, into: out)
    }

    static func load(_ row: UnsafeMutableRawPointer, offset: Int, count: Int, type: KVType, into out: UnsafeMutablePointer<Float>) {
        let src = row + type.bytes(offset)
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
    /// end. Throws when the pool has no page left (nothing is lost: committed positions stay), when
    /// `start` lies so far back that sliding-window layers have dropped rows it needs, or when pages
    /// swapped to the disk tier came back damaged (pagesLost: the sequence keeps the positions before
    /// them, the caller evaluates the rest again).
    public func prepareWrite(start: Int, count n: Int) throws {
        precondition(start >= 0 && start + n <= maxPositions, "KV write \(start)..<\(start + n) outside 0..<\(maxPositions)")
        if start < count, truncate(to: start) < start {
            throw KVCacheError.windowDropped(position: start, kept: count)
        }
        let shift = pool.pageTokensLog2
        let needed = (start + n + pool.pageTokens - 1) >> shift
        var lost: Int?
        try pool.locked {
            // Pinned until commit: the pass reads and writes these pages directly.
            pinned = true
            pool.touchLocked(self)
            do {
                lost = try swapInLocked()
                if lost != nil { pinned = false; return }
                // The budget's share for the state the model keeps beside the pages.
                while sideReservation.count < pool.sideReservationPages {
                    sideReservation.append(try pool.allocateLocked(for: self))
                }
            } catch { pinned = false; throw error }
            let first = start >> shift
            do {
                for g in 0..<groupCount where n > 0 && first < pageCount && first >= firstKept[g] {
                    let e = entry(g, first), p = pageTables[e]
                    if pool.refCountLocked(p) > 1 || pool.isRegisteredLocked(p) {
                        let copy = try pool.allocateLocked(for: self)
                        pool.copyPage(from: p, to: copy)
                        pool.releaseLocked(p)
                        pageTables[e] = copy
                    }
                }
                while pageCount < needed {
                    for g in 0..<groupCount where pageCount >= firstKept[g] {
                        do { pageTables[entry(g, pageCount)] = try pool.allocateLocked(for: self) } catch {
                            for h in 0..<g where pageCount >= firstKept[h] { releaseEntryLocked(h, pageCount) }
                            throw error
                        }
                    }
                    pageCount += 1
                }
            } catch {
                pinned = false
                throw error
            }
        }
        if let lost {
            if let kept = loseFrom(page: lost), kept < start {
                throw KVCacheError.pagesLost(position: lost * pool.pageTokens, kept: kept)
            }
            // Only rows at or after `start` were lost (about to be written anyway): prepare again.
            try prepareWrite(start: start, count: n)
        }
    }

    /// Gives up a prepared write (the batch it belonged to did not run): the pages stay allocated but
    /// the sequence is no longer pinned.
    public func abandonWrite() { pool.locked { pinned = false } }

    /// Throws away a write that ran but went wrong (a weight read failed, so the rows of
    /// start..<start+n are garbage): the sequence goes back to its first `start` positions, unpinned.
    /// Nothing of the failed pass was committed, so none of its pages is in the prefix cache (pages are
    /// registered only by commit) and the pages it allocated past `start` go back to the free list;
    /// side state the pass advanced is emptied (truncate), so the model rebuilds it.
    public func discardWrite(start: Int) {
        abandonWrite()
        truncate(to: start)
    }

    /// Records the tokens whose K/V were written at start..<start+n, registers the pages they fill in
    /// the prefix cache and drops the pages windowed groups no longer need.
    public func commit(_ newTokens: UnsafeBufferPointer<Int32>, start: Int) {
        precondition(start <= count, "KV commit at \(start) leaves a hole after \(count)")
        if start < count { tokens.removeSubrange(start...) }
        tokens.append(contentsOf: newTokens)
        count = start + newTokens.count
        let P = pool.pageTokens
        let full = count / P
        tokens.withUnsafeBufferPointer { all in
            pool.locked {
                pinned = false
                while chainHashes.count < full {
                    let i = chainHashes.count
                    let parent = i == 0 ? 0 : chainHashes[i - 1]
                    let slice = UnsafeBufferPointer(rebasing: all[(i * P)..<((i + 1) * P)])
                    let h = KVPagePool.chainHash(parent: parent, tokens: slice)
                    for g in 0..<groupCount where i >= firstKept[g] {
                        let p = pageTables[entry(g, i)]
                        if p >= 0 { pool.registerLocked(p, hash: KVPagePool.groupKey(h, group: g), parent: parent, tokens: slice) }
                    }
                    chainHashes.append(h)
                }
                dropOutOfWindowLocked()
            }
        }
    }

    /// Releases, in groups with a window, the pages entirely before the first position a query at
    /// `count` reads, less one page of slack (pool lock held).
    private func dropOutOfWindowLocked() {
        let P = pool.pageTokens
        for (g, r) in pool.groups.retention.enumerated() where r != .all {
            let keepFrom = max(0, r.firstNeeded(at: count) - P)
            let target = min(keepFrom / P, pageCount)
            while firstKept[g] < target {
                releaseEntryLocked(g, firstKept[g])
                firstKept[g] += 1
            }
        }
    }

    /// Keeps positions 0..<length; pages past it go back to the pool (or its prefix cache). Windowed
    /// groups that dropped pages the shorter sequence needs take them back from the prefix cache; when
    /// one is gone the sequence is emptied instead (its positions must be evaluated again). Returns the
    /// positions kept.
    @discardableResult
    public func truncate(to length: Int) -> Int {
        var length = max(0, min(length, count))
        let P = pool.pageTokens
        let keep = (length + P - 1) / P
        pool.locked {
            for (g, r) in pool.groups.retention.enumerated() where r != .all && length > 0 {
                let need = r.firstNeeded(at: length) / P, end = min(firstKept[g], keep)
                guard need < end else { continue }
                var found: [Int32] = []
                for i in need..<end {
                    let parent = i == 0 ? 0 : chainHashes[i - 1]
                    let page = tokens.withUnsafeBufferPointer { all in
                        pool.lookupLocked(hash: KVPagePool.groupKey(chainHashes[i], group: g), parent: parent,
                                          tokens: UnsafeBufferPointer(rebasing: all[(i * P)..<((i + 1) * P)]))
                    }
                    guard let page else { break }
                    found.append(page)
                }
                if found.count == end - need {
                    for (k, page) in found.enumerated() { pageTables[entry(g, need + k)] = page }
                    firstKept[g] = need
                } else {
                    for page in found { pool.releaseLocked(page) }
                    length = 0
                }
            }
            let keep = (length + P - 1) / P
            while pageCount > keep {
                pageCount -= 1
                for g in 0..<groupCount where pageCount >= firstKept[g] { releaseEntryLocked(g, pageCount) }
            }
            for g in 0..<groupCount { firstKept[g] = min(firstKept[g], keep) }
        }
        count = length
        if let side = auxiliary, side.count > length { side.reset() }
        if spilledSideCount > length { pool.locked { dropSpilledSideStateLocked() } }
        tokens.removeSubrange(length...)
        if chainHashes.count > length / P { chainHashes.removeSubrange((length / P)...) }
        return length
    }

    /// Takes over everything `other` holds (pages, disk slots, tokens, hash chain, side state) in place
    /// of what this sequence held, which is released; `other` is left empty. Both must come from the
    /// same pool with the same context length.
    public func replaceContents(with other: KVSequence) {
        precondition(other !== self && other.pool === pool && other.maxPages == maxPages, "replaceContents needs a sequence of the same pool and length")
        truncate(to: 0)
        let entries = maxPages * groupCount
        pool.locked {
            releaseSideReservationLocked()
            dropSpilledSideStateLocked()
            pageTables.update(from: other.pageTables, count: entries)
            other.pageTables.update(repeating: -1, count: entries)
            swapSlots = other.swapSlots
            other.swapSlots = Array(repeating: -1, count: entries)
            firstKept = other.firstKept
            other.firstKept = Array(repeating: 0, count: groupCount)
            pageCount = other.pageCount
            other.pageCount = 0
            sideSlots = other.sideSlots; other.sideSlots = []
            sideReservation = other.sideReservation; other.sideReservation = []
            spilledSideBytes = other.spilledSideBytes; spilledSideCount = other.spilledSideCount
            other.spilledSideBytes = 0; other.spilledSideCount = 0
            pinned = false
            pool.touchLocked(self)
        }
        tokens = other.tokens; other.tokens = []
        chainHashes = other.chainHashes; other.chainHashes = []
        count = other.count; other.count = 0
        auxiliary = other.auxiliary; other.auxiliary = nil
    }

    /// Before restoring saved rows into an empty sequence: the groups' pages below `firstPositions[g]`
    /// (page-aligned) will not be allocated, as if dropped out of their window.
    public func skipPages(below firstPositions: [Int]) {
        precondition(count == 0 && pageCount == 0 && firstPositions.count == groupCount)
        for g in 0..<groupCount { firstKept[g] = firstPositions[g] / pool.pageTokens }
    }

    /// Extends the sequence with cached pages that hold the next full pages of `prompt` (which must
    /// start with the committed tokens, and `count` must be page-aligned). At most `limit` positions in
    /// total. Groups with a window need only the pages their window reaches. Returns the new count.
    @discardableResult
    public func attachCachedPrefix(of prompt: [Int32], limit: Int) -> Int {
        let P = pool.pageTokens, G = groupCount, retention = pool.groups.retention
        guard count % P == 0, chainHashes.count == count / P, prompt.count >= count else { return count }
        let limit = min(limit, prompt.count, maxPositions)
        let base = count / P
        prompt.withUnsafeBufferPointer { all in
            pool.locked {
                // Look up page by page: groups keeping all positions must all hit.
                var found: [Int32] = [], hashes: [UInt64] = []
                var end = count
                while end + P <= limit {
                    let i = end / P
                    let parent = i == 0 ? 0 : (i - 1 < base ? chainHashes[i - 1] : hashes[i - 1 - base])
                    let slice = UnsafeBufferPointer(rebasing: all[end..<(end + P)])
                    let h = KVPagePool.chainHash(parent: parent, tokens: slice)
                    var row = [Int32](repeating: -1, count: G), complete = true
                    for g in 0..<G {
                        if let p = pool.lookupLocked(hash: KVPagePool.groupKey(h, group: g), parent: parent, tokens: slice) {
                            row[g] = p
                        } else if retention[g] == .all { complete = false; break }
                    }
                    guard complete else { for p in row where p >= 0 { pool.releaseLocked(p) }; break }
                    found += row
                    hashes.append(h)
                    end += P
                }
                // The longest extension whose windows are whole.
                func present(_ g: Int, _ i: Int) -> Bool { i < base ? i >= firstKept[g] : found[(i - base) * G + g] >= 0 }
                func whole(_ c: Int) -> Bool {
                    (0..<G).allSatisfy { g in (retention[g].firstNeeded(at: c) / P..<(c / P)).allSatisfy { present(g, $0) } }
                }
                while end > count && !whole(end) { end -= P }
                let newPages = end / P
                for i in newPages..<(base + hashes.count) { for g in 0..<G where found[(i - base) * G + g] >= 0 { pool.releaseLocked(found[(i - base) * G + g]) } }
                guard newPages > base else { return }
                for g in 0..<G {
                    // Pages below the first of the unbroken run that reaches the end are not kept.
                    var first = newPages
                    while first > 0 && present(g, first - 1) { first -= 1 }
                    for i in base..<newPages {
                        if i < pageCount && i >= firstKept[g] { releaseEntryLocked(g, i) }
                        pageTables[entry(g, i)] = i >= first ? found[(i - base) * G + g] : -1
                        if i < first, found[(i - base) * G + g] >= 0 { pool.releaseLocked(found[(i - base) * G + g]) }
                    }
                    while firstKept[g] < min(first, base) { releaseEntryLocked(g, firstKept[g]); firstKept[g] += 1 }
                    firstKept[g] = max(firstKept[g], first)
                }
                pageCount = max(pageCount, newPages)
                chainHashes += hashes[0..<(newPages - base)]
                tokens.append(contentsOf: all[count..<end])
                count = end
                dropOutOfWindowLocked()
            }
        }
        return count
    }
}
