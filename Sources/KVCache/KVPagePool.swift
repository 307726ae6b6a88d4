// The KV cache as virtual memory: fixed-size pages of `pageTokens` positions, each holding the K and V
// rows of one layer group (KVLayerGroups: all layers for most models; Gemma's sliding-window layers form
// their own groups, whose pages out of the window are dropped) for those positions. Sequences (KVSequence) map positions to pages through a
// page table; pages are reference-counted so sequences that share a prefix share its pages, and a
// sequence that writes into a shared page copies it first (copy-on-write).
//
// Prefix cache: a page whose positions are all written and committed is registered under a hash chain
// h_i = mix(h_{i-1}, tokens of page i) (the same tokens after the same prefix give the same K/V). When
// its last user lets go it stays cached (least-recently-used list) until its memory is needed; a later
// sequence starting with the same tokens attaches it instead of recomputing it.
//
// Memory: per slot of a layer group, one K and one V arena of capacity × pageTokens rows, zero-filled lazily by the OS
// (calloc), so the budget is a ceiling, not an up-front cost. Page bookkeeping is O(1): a free stack and
// an intrusive doubly linked LRU list over page ids. All bookkeeping is under one lock; the hot loops
// only read page tables and arenas.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum KVCacheError: Error, CustomStringConvertible, Equatable {
    /// Every page is in use by a live sequence: the KV budget cannot hold more positions.
    case budgetExhausted(pages: Int, pageTokens: Int, bytes: Int, statePagesPerSequence: Int = 0)
    /// A write back at `position` needs rows sliding-window layers have already dropped (and the prefix
    /// cache no longer holds); the sequence was emptied to `kept` positions and must be evaluated again.
    case windowDropped(position: Int, kept: Int)
    /// Pages swapped out to the disk tier came back damaged (checksum or I/O): the sequence was cut to
    /// the `kept` positions before them and must evaluate the rest again.
    case pagesLost(position: Int, kept: Int)

    public var description: String {
        switch self {
        case .budgetExhausted(let pages, let tokens, let bytes, let state):
            let tenths = (state * (bytes / max(1, pages)) * 10) >> 20
            let held = state > 0 ? "; the model's fixed state beside the cache takes \(state) pages (\(tenths / 10).\(tenths % 10) MiB) per sequence" : ""
            return "KV cache budget exhausted: all \(pages) pages of \(tokens) positions (\(bytes / (1 << 20)) MiB) are in use\(held) (raise --kv-budget or lower --ctx)"
        case .windowDropped(let p, let kept):
            return "cannot rewind the KV cache to position \(p): sliding-window layers no longer hold the rows before it (\(kept) positions kept; evaluate the tokens again)"
        case .pagesLost(let p, let kept):
            return "KV pages from position \(p) came back damaged from the disk tier and were dropped (\(kept) positions kept; evaluate the tokens again)"
        }
    }
}

/// How K/V values are stored: F32; F16 (half the memory); Q8_0 (blocks of 32 int8 values with an fp16
/// scale, 34 bytes per 32 values: 27% of F32). The attention kernels widen rows on load.
public enum KVType: String, Sendable, CaseIterable {
    case f32, f16, q8_0
    /// Kernel addressing unit: strides are in elements for F32/F16, in bytes for Q8_0.
    public var unitBytes: Int { self == .f32 ? 4 : self == .f16 ? 2 : 1 }
    /// Elements per block (rows must be whole blocks).
    public var blockSize: Int { self == .q8_0 ? 32 : 1 }
    /// Units (see unitBytes) of `n` elements.
    public func units(_ n: Int) -> Int { self == .q8_0 ? n / 32 * 34 : n }
    public func bytes(_ n: Int) -> Int { units(n) * unitBytes }
}

/// How long a layer needs a position's K/V: every position, the last `window` positions (sliding-window
/// attention), or the positions of the current aligned chunk (chunked attention).
public enum KVRetention: Sendable, Hashable {
    case all
    case window(Int)
    case chunk(Int)

    /// The earliest position a query at `position` (or any later one) reads.
    public func firstNeeded(at position: Int) -> Int {
        switch self {
        case .all: return 0
        case .window(let w): return max(0, position - w + 1)
        case .chunk(let c): return position / c * c
        }
    }

    /// Most positions a query reads (nil: unbounded).
    public var span: Int? {
        switch self {
        case .all: return nil
        case .window(let n), .chunk(let n): return n
        }
    }
}

/// Shape of one position's KV for every layer (elements per row, identical for all layers) and how long
/// each layer keeps it.
public struct KVShape: Sendable, Equatable {
    public var layers: Int
    public var kRowFloats: Int
    public var vRowFloats: Int
    public var type: KVType
    /// Per layer (layers entries).
    public var retention: [KVRetention]
    /// Bytes per position a model keeps beside the pages (DeepSeek V4's compressed entries, averaged over
    /// positions): counted in every page's size so the KV budget covers them; no arena holds them.
    public var sideBytesPerPosition: Int
    /// Bytes per sequence a model keeps beside the pages whatever its length (DeepSeek V4's raw windows
    /// and compressor rings, Qwen3.5's recurrent state): a sequence reserves that many pages' worth of
    /// the budget while its state is in RAM (KVSequence.prepareWrite).
    public var sideFixedBytes: Int
    public init(layers: Int, kRowFloats: Int, vRowFloats: Int, type: KVType = .f32, retention: [KVRetention]? = nil,
                sideBytesPerPosition: Int = 0, sideFixedBytes: Int = 0) {
        self.layers = layers; self.kRowFloats = kRowFloats; self.vRowFloats = vRowFloats; self.type = type
        self.sideBytesPerPosition = sideBytesPerPosition
        self.sideFixedBytes = sideFixedBytes
        self.retention = retention ?? Array(repeating: .all, count: layers)
        precondition(self.retention.count == layers, "KV retention needs one entry per layer")
    }
    /// Bytes of one position over all layers (with what the model keeps beside the pages).
    public var bytesPerPosition: Int { layers * (kRowBytes + vRowBytes) + sideBytesPerPosition }
    public var kRowBytes: Int { type.bytes(kRowFloats) }
    public var vRowBytes: Int { type.bytes(vRowFloats) }
}

/// Layers split into groups of equal size whose layers share a retention, so every page (one group's
/// rows for pageTokens positions) has the same size and a sequence keeps one page table per group.
/// A group of sliding-window layers drops its pages that fall out of the window; a group of full
/// layers keeps them all. Group size: the gcd of the layer counts per retention (Gemma 3 270M: 3 full +
/// 15 sliding layers → groups of 3: one full group, five sliding ones); one retention → one group.
public struct KVLayerGroups: Sendable, Equatable {
    public let layersPerGroup: Int
    /// Per group.
    public let retention: [KVRetention]
    /// Per layer: its group and its slot inside the group.
    public let group: [Int]
    public let slot: [Int]
    public var count: Int { retention.count }

    public init(_ shape: KVShape) {
        var kinds: [KVRetention] = [], members: [[Int]] = []
        for (l, r) in shape.retention.enumerated() {
            if let k = kinds.firstIndex(of: r) { members[k].append(l) } else { kinds.append(r); members.append([l]) }
        }
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let size = max(1, members.map(\.count).reduce(0, gcd))
        var retention: [KVRetention] = [], group = Array(repeating: 0, count: shape.layers), slot = group
        for (k, layers) in members.enumerated() {
            for (n, l) in layers.enumerated() {
                if n % size == 0 { retention.append(kinds[k]) }
                group[l] = retention.count - 1
                slot[l] = n % size
            }
        }
        if retention.isEmpty { retention = [.all] }
        layersPerGroup = size; self.retention = retention; self.group = group; self.slot = slot
    }
}

public final class KVPagePool: @unchecked Sendable {
    public let shape: KVShape
    /// Positions per page (a power of two).
    public let pageTokens: Int
    public let pageTokensLog2: Int
    /// Pages in the pool.
    public let capacity: Int
    public let groups: KVLayerGroups
    /// Pages each sequence holds for its fixed side state (KVShape.sideFixedBytes).
    public let sideReservationPages: Int
    /// Per layer: its group and its slot in the group (raw for the row-address hot path).
    let layerGroup: UnsafeMutablePointer<Int>
    let layerSlot: UnsafeMutablePointer<Int>
    /// Per group slot: K arena [capacity, pageTokens, kRowFloats] and V arena (elements of shape.type).
    let kArenas: [UnsafeMutableRawPointer]
    let vArenas: [UnsafeMutableRawPointer]
    /// Per page: bumped by every write of its rows on the host (stores, copies, disk reads, session loads),
    /// so a device's copy of the arenas knows which pages to take again.
    let hostWriteGenerations: UnsafeMutablePointer<UInt32>

    // Page bookkeeping (indices are page ids).
    private var refCount: [Int32]
    private var freeStack: [Int32]
    /// Prefix-cache registration: chain hash of a full committed page and of its parent, its tokens.
    private var pageHash: [UInt64]
    private var parentHash: [UInt64]
    private var registered: [Bool]
    private var pageTokenIds: [Int32]
    private var index: [UInt64: Int32] = [:]
    /// LRU of registered pages nobody references (evictable): head = least recent.
    private var lruPrev: [Int32], lruNext: [Int32]
    private var inLRU: [Bool]
    private var lruHead: Int32 = -1, lruTail: Int32 = -1
    private var mutex = pthread_mutex_t()

    /// Counters for tests and reports.
    public private(set) var prefixHits = 0
    public private(set) var evictions = 0
    public private(set) var swapOuts = 0
    /// Prefix pages found on the disk tier and read back.
    public private(set) var diskPrefixHits = 0

    /// Snapshots of the state models keep beside the pages (SideStateCheckpoints.swift): at most
    /// `checkpointLimit` (0: none), least recently used dropped first.
    public var checkpointLimit = 8
    var checkpoints: [(checkpoint: SideStateCheckpoint, used: UInt64)] = []
    var checkpointClock: UInt64 = 0
    public internal(set) var checkpointStores = 0
    public internal(set) var checkpointHits = 0
    /// Positions models replayed to rebuild side state (what checkpoints save).
    public internal(set) var replayedPositions = 0

    /// Prefix pages evicted from RAM but kept on the disk tier (by chain hash), oldest first.
    private struct DiskCachedPage { var slot: Int32; var parent: UInt64; var tokens: [Int32] }
    private var diskIndex: [UInt64: DiskCachedPage] = [:]
    private var diskOrder: [UInt64] = []

    /// Where idle sequences' pages go when RAM pages run out (nil: nowhere, the budget is a hard limit).
    public let disk: KVDiskTier?
    /// Live sequences (for swapping the least recently used idle one out).
    private var sequences: [WeakSequence] = []
    private var clock: UInt64 = 0
    private struct WeakSequence { weak var sequence: KVSequence? }

    /// A pool of `capacity` pages of `pageTokens` positions (rounded up to a power of two), spilling
    /// idle sequences' pages to `disk` when full.
    public init(shape: KVShape, pageTokens: Int = 32, capacity: Int, disk: KVDiskTier? = nil) {
        var log2 = 0
        while (1 << log2) < max(1, pageTokens) { log2 += 1 }
        self.shape = shape
        self.pageTokensLog2 = log2
        self.pageTokens = 1 << log2
        self.capacity = max(1, capacity)
        let rows = self.capacity * self.pageTokens
        groups = KVLayerGroups(shape)
        sideReservationPages = KVPagePool.sidePages(shape, pageTokens: 1 << log2)
        layerGroup = .allocate(capacity: max(1, shape.layers))
        layerSlot = .allocate(capacity: max(1, shape.layers))
        for l in 0..<shape.layers { layerGroup[l] = groups.group[l]; layerSlot[l] = groups.slot[l] }
        kArenas = (0..<groups.layersPerGroup).map { _ in calloc(max(1, rows * shape.kRowBytes), 1)! }
        vArenas = (0..<groups.layersPerGroup).map { _ in calloc(max(1, rows * shape.vRowBytes), 1)! }
        hostWriteGenerations = .allocate(capacity: self.capacity)
        hostWriteGenerations.initialize(repeating: 0, count: self.capacity)
        refCount = Array(repeating: 0, count: self.capacity)
        freeStack = (0..<Int32(self.capacity)).reversed().map { $0 }
        pageHash = Array(repeating: 0, count: self.capacity)
        parentHash = Array(repeating: 0, count: self.capacity)
        registered = Array(repeating: false, count: self.capacity)
        pageTokenIds = Array(repeating: 0, count: self.capacity * self.pageTokens)
        lruPrev = Array(repeating: -1, count: self.capacity)
        lruNext = Array(repeating: -1, count: self.capacity)
        inLRU = Array(repeating: false, count: self.capacity)
        self.disk = disk
        disk?.configure(slotBytes: pageBytes)
        pthread_mutex_init(&mutex, nil)
    }

    /// A pool holding `bytes` of KV (at least one page).
    public convenience init(shape: KVShape, pageTokens: Int = 32, budgetBytes bytes: Int, disk: KVDiskTier? = nil) {
        let perPage = max(1, KVPagePool.pageBytes(shape, pageTokens: pageTokens))
        self.init(shape: shape, pageTokens: pageTokens, capacity: max(1, bytes / perPage), disk: disk)
    }

    deinit {
        for p in kArenas { free(p) }
        for p in vArenas { free(p) }
        layerGroup.deallocate(); layerSlot.deallocate()
        hostWriteGenerations.deallocate()
        pthread_mutex_destroy(&mutex)
    }

    /// Positions per page for a requested page size (the next power of two).
    public static func roundedPageTokens(_ n: Int) -> Int {
        var tokens = 1
        while tokens < n { tokens <<= 1 }
        return tokens
    }

    /// Bytes of one page: one layer group's K and V rows for pageTokens positions.
    public static func pageBytes(_ shape: KVShape, pageTokens: Int) -> Int {
        roundedPageTokens(pageTokens) * (KVLayerGroups(shape).layersPerGroup * (shape.kRowBytes + shape.vRowBytes) + shape.sideBytesPerPosition)
    }

    /// Pages one sequence of `positions` needs at most, evaluated in batches of up to `batch` tokens:
    /// every page for groups that keep all positions; the window (or chunk), the batch and the rollback
    /// slack for the others.
    public static func pagesNeeded(_ shape: KVShape, positions: Int, batch: Int, pageTokens: Int) -> Int {
        let P = roundedPageTokens(pageTokens)
        let all = (positions + P - 1) / P + 1
        return KVLayerGroups(shape).retention.reduce(sidePages(shape, pageTokens: pageTokens)) { n, r in
            guard let span = r.span else { return n + all }
            return n + min(all, (span + P + batch + P - 1) / P + 2)
        }
    }

    /// Pages of budget one sequence's fixed side state takes (shape.sideFixedBytes).
    public static func sidePages(_ shape: KVShape, pageTokens: Int) -> Int {
        let page = max(1, pageBytes(shape, pageTokens: pageTokens))
        return (shape.sideFixedBytes + page - 1) / page
    }

    public var pageBytes: Int { pageTokens * (groups.layersPerGroup * (shape.kRowBytes + shape.vRowBytes) + shape.sideBytesPerPosition) }
    public var bytes: Int { capacity * pageBytes }

    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    /// Units (KVType.unitBytes) between consecutive pages of a layer's K (V) arena, and between rows.
    public var kPageStride: Int { pageTokens * kRowUnits }
    public var vPageStride: Int { pageTokens * vRowUnits }
    public var kRowUnits: Int { shape.type.units(shape.kRowFloats) }
    public var vRowUnits: Int { shape.type.units(shape.vRowFloats) }
    /// Base of the K (V) arena holding `layer`'s rows (shared by the layers of the same slot in other
    /// groups: a page id belongs to one group at a time).
    public func kArena(_ layer: Int) -> UnsafeMutableRawPointer { kArenas[layerSlot[layer]] }
    /// The K (V) arena of group slot `slot` and its bytes.
    public func kArena(slot: Int) -> UnsafeMutableRawPointer { kArenas[slot] }
    public func vArena(slot: Int) -> UnsafeMutableRawPointer { vArenas[slot] }
    public var kArenaBytes: Int { capacity * pageTokens * shape.kRowBytes }
    public var vArenaBytes: Int { capacity * pageTokens * shape.vRowBytes }
    /// The group slot whose arenas hold `layer`'s rows.
    public func slot(ofLayer layer: Int) -> Int { layerSlot[layer] }

    /// How many times page `page`'s rows were written on the host (a device copy taken at an older count is stale).
    @inline(__always) public func hostWriteGeneration(_ page: Int32) -> UInt32 { hostWriteGenerations[Int(page)] }
    /// Page `page`'s rows were written on the host.
    @inline(__always) public func noteHostWrite(_ page: Int32) { hostWriteGenerations[Int(page)] &+= 1 }
    public func vArena(_ layer: Int) -> UnsafeMutableRawPointer { vArenas[layerSlot[layer]] }

    /// Pages neither referenced nor cached.
    public var freePages: Int { locked { freeStack.count } }
    /// Pages kept only as prefix cache (evictable).
    public var cachedPages: Int { locked { var n = 0; var p = lruHead; while p >= 0 { n += 1; p = lruNext[Int(p)] }; return n } }

    // MARK: - Allocation (callers hold the lock)

    /// A fresh page with refcount 1: from the free stack, else the least recently used cached page,
    /// else (with a disk tier) after swapping out the least recently used idle sequence.
    func allocateLocked(for requester: KVSequence? = nil) throws -> Int32 {
        if freeStack.isEmpty && lruHead < 0 { swapOutIdleLocked(except: requester) }
        if let p = freeStack.popLast() {
            refCount[Int(p)] = 1
            return p
        }
        guard lruHead >= 0 else {
            throw KVCacheError.budgetExhausted(pages: capacity, pageTokens: pageTokens, bytes: bytes, statePagesPerSequence: sideReservationPages)
        }
        let p = lruHead
        unlinkLRU(p)
        spillCachedPageLocked(p)
        unregister(p)
        evictions += 1
        refCount[Int(p)] = 1
        return p
    }

    /// Keeps an evicted prefix page on the disk tier (oldest disk copies make room), so a later prompt
    /// with the same prefix reads it back instead of recomputing it.
    private func spillCachedPageLocked(_ p: Int32) {
        guard let disk, registered[Int(p)] else { return }
        let i = Int(p)
        if !disk.hasFreeSlot, let oldest = diskOrder.first {
            diskOrder.removeFirst()
            if let old = diskIndex.removeValue(forKey: oldest) { disk.freeSlot(old.slot) }
        }
        guard diskIndex[pageHash[i]] == nil, let slot = disk.allocateSlot() else { return }
        do { try disk.write(slot: slot, parts: pageParts(p)) } catch { disk.freeSlot(slot); return }
        let tokens = Array(pageTokenIds[(i * pageTokens)..<((i + 1) * pageTokens)])
        diskIndex[pageHash[i]] = DiskCachedPage(slot: slot, parent: parentHash[i], tokens: tokens)
        diskOrder.append(pageHash[i])
    }

    func retainLocked(_ p: Int32) {
        if inLRU[Int(p)] { unlinkLRU(p) }
        refCount[Int(p)] += 1
    }

    func releaseLocked(_ p: Int32) {
        let i = Int(p)
        precondition(refCount[i] > 0, "KV page \(p) released more often than retained")
        refCount[i] -= 1
        guard refCount[i] == 0 else { return }
        if registered[i] { appendLRU(p) } else { freeStack.append(p) }
    }

    func refCountLocked(_ p: Int32) -> Int32 { refCount[Int(p)] }
    func isRegisteredLocked(_ p: Int32) -> Bool { registered[Int(p)] }

    /// Copies all K/V rows of page `from` into page `to`.
    func copyPage(from: Int32, to: Int32) {
        for (dst, src) in zip(pageParts(to), pageParts(from)) { dst.0.copyMemory(from: src.0, byteCount: src.1) }
        noteHostWrite(to)
    }

    // MARK: - Sequences and the disk tier

    func registerSequence(_ s: KVSequence) { locked { sequences.append(WeakSequence(sequence: s)) } }

    func touchLocked(_ s: KVSequence) {
        clock += 1
        s.lastUsed = clock
    }

    /// Writes the exclusive pages of the least recently used unpinned sequence (other than `requester`)
    /// to disk and frees their RAM. No-op without a disk tier or a candidate.
    private func swapOutIdleLocked(except requester: KVSequence?) {
        guard let disk else { return }
        sequences.removeAll { $0.sequence == nil }
        let candidates = sequences.compactMap { $0.sequence }.filter { $0 !== requester && !$0.pinned && $0.residentPages > 0 }
        guard let victim = candidates.min(by: { $0.lastUsed < $1.lastUsed }) else { return }
        victim.swapOutLocked(disk: disk)
        swapOuts += 1
    }

    /// Byte ranges of page `p` in the arenas (every slot's K rows, then V rows), for the disk tier.
    func pageParts(_ p: Int32) -> [(UnsafeMutableRawPointer, Int)] {
        var parts: [(UnsafeMutableRawPointer, Int)] = []
        let eb = shape.type.unitBytes
        for slot in 0..<groups.layersPerGroup {
            parts.append((kArenas[slot] + Int(p) * kPageStride * eb, kPageStride * eb))
            if vPageStride > 0 { parts.append((vArenas[slot] + Int(p) * vPageStride * eb, vPageStride * eb)) }
        }
        return parts
    }

    /// Drops a page from the prefix index (its content is about to leave RAM or change).
    func unregisterLocked(_ p: Int32) { unregister(p) }

    // MARK: - Prefix index

    /// Prefix-index key of layer group `group`'s page with chain hash `hash` (group 0: the hash itself).
    static func groupKey(_ hash: UInt64, group: Int) -> UInt64 {
        group == 0 ? hash : hash ^ (UInt64(group) &* 0xD6E8_FEB8_6659_FD93)
    }

    /// Chain hash of a page's tokens after a prefix with hash `parent` (FNV-1a over the ids, then a
    /// 64-bit finaliser).
    public static func chainHash(parent: UInt64, tokens: UnsafeBufferPointer<Int32>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ parent &* 0x9E37_79B9_7F4A_7C15
        for t in tokens {
            h ^= UInt64(UInt32(bitPattern: t))
            h = h &* 0x0000_0100_0000_01B3
        }
        h ^= h >> 33; h = h &* 0xff51_afd7_ed55_8ccd; h ^= h >> 33
        return h
    }

    /// Registers a full, committed page (no-op if registered already or another page holds the hash).
    func registerLocked(_ p: Int32, hash: UInt64, parent: UInt64, tokens: UnsafeBufferPointer<Int32>) {
        let i = Int(p)
        guard !registered[i], index[hash] == nil else { return }
        registered[i] = true
        pageHash[i] = hash
        parentHash[i] = parent
        for (k, t) in tokens.enumerated() { pageTokenIds[i * pageTokens + k] = t }
        index[hash] = p
    }

    /// The cached page for `tokens` after a prefix with chain hash `parent`, retained, or nil.
    func lookupLocked(hash: UInt64, parent: UInt64, tokens: UnsafeBufferPointer<Int32>) -> Int32? {
        guard let p = index[hash] else { return lookupOnDiskLocked(hash: hash, parent: parent, tokens: tokens) }
        let i = Int(p)
        guard parentHash[i] == parent else { return nil }
        for (k, t) in tokens.enumerated() where pageTokenIds[i * pageTokens + k] != t { return nil }
        retainLocked(p)
        prefixHits += 1
        return p
    }

    /// A prefix page kept on the disk tier, read back into a fresh RAM page (registered again), or nil.
    private func lookupOnDiskLocked(hash: UInt64, parent: UInt64, tokens: UnsafeBufferPointer<Int32>) -> Int32? {
        guard let disk, let entry = diskIndex[hash], entry.parent == parent, entry.tokens.elementsEqual(tokens) else { return nil }
        // Taken out of the disk index first: making room in RAM may spill other pages to disk.
        diskIndex[hash] = nil
        diskOrder.removeAll { $0 == hash }
        defer { disk.freeSlot(entry.slot) }
        guard let p = try? allocateLocked() else { return nil }
        do { try disk.read(slot: entry.slot, parts: pageParts(p)) } catch { releaseLocked(p); return nil }
        noteHostWrite(p)
        registerLocked(p, hash: hash, parent: parent, tokens: tokens)
        prefixHits += 1
        diskPrefixHits += 1
        return p
    }

    private func unregister(_ p: Int32) {
        let i = Int(p)
        guard registered[i] else { return }
        if index[pageHash[i]] == p { index[pageHash[i]] = nil }
        registered[i] = false
    }

    // MARK: - LRU list

    private func appendLRU(_ p: Int32) {
        let i = Int(p)
        lruPrev[i] = lruTail
        lruNext[i] = -1
        if lruTail >= 0 { lruNext[Int(lruTail)] = p } else { lruHead = p }
        lruTail = p
        inLRU[i] = true
    }

    private func unlinkLRU(_ p: Int32) {
        let i = Int(p)
        let prev = lruPrev[i], next = lruNext[i]
        if prev >= 0 { lruNext[Int(prev)] = next } else { lruHead = next }
        if next >= 0 { lruPrev[Int(next)] = prev } else { lruTail = prev }
        lruPrev[i] = -1; lruNext[i] = -1
        inLRU[i] = false
    }
}
