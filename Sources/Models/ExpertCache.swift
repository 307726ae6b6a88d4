// Routed MoE experts streamed from the GGUF file into a fixed number of RAM slots (the memory tier
// under a --ram-budget): everything else stays mapped, but an expert's gate/up/down rows are only ever
// read with pread into a slot, so the mapping never faults them in and the process's resident memory is
// the resident tensors plus the slots.
//
// Reads: a pool of I/O threads (storage serves parallel requests faster than one after another) with
// two queues, demand reads (a layer's experts that are missing) before prefetch reads (the experts the
// next MoE layer is predicted to use). With O_DIRECT (ExpertReadMode.direct, the default where the
// file system allows it) reads bypass the page cache: the 4 KiB-aligned range around each tensor is
// read into the slot and the matrix viewed at its offset inside; otherwise (buffered) the exact bytes are
// read and dropped from the page cache right after (posix_fadvise DONTNEED), so the system does not
// hold a second copy either.
//
// A layer call pins the experts it uses (`request`) and runs each as soon as its read is done
// (`waitReady`), so reads overlap the products of the experts already there; when more experts are
// active than slots, MoEBlock runs them in waves. Eviction (ExpertEviction): least frequently used
// (ties: least recently), the default; least recently used; or mixed (the least used of the 8 least
// recently used slots). Measured on a 0.9 GB DeepSeek-shaped model with ~10% of its experts in slots,
// 200 sampled tokens: LFU 82.3% / 89.3% hits (uniform / Zipf-skewed router), mixed 77.1% / 86.6%,
// LRU 74.0% / 84.5%.

import Platform
import Dispatch
import Foundation
import GGUF
import Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum ExpertEviction: String, Sendable, CaseIterable {
    case lru, lfu, mixed
    /// DS_EXPERT_EVICTION overrides (for comparing policies), else LFU.
    public static var fromEnvironment: ExpertEviction {
        getenv("DS_EXPERT_EVICTION").flatMap { ExpertEviction(rawValue: String(cString: $0)) } ?? .lfu
    }
}

/// How expert reads reach storage.
public enum ExpertReadMode: String, Sendable, CaseIterable {
    /// O_DIRECT: no page cache at all (aligned reads into aligned slots); falls back to buffered where
    /// the file system refuses it.
    case direct
    /// pread through the page cache, then POSIX_FADV_DONTNEED on the range.
    case buffered
    /// DS_EXPERT_IO overrides, else direct.
    public static var fromEnvironment: ExpertReadMode {
        getenv("DS_EXPERT_IO").flatMap { ExpertReadMode(rawValue: String(cString: $0)) } ?? .direct
    }

    /// Opens `path` read-only for `mode`; direct falls back to buffered where O_DIRECT is refused (e.g.
    /// tmpfs). Returns the descriptor (-1: cannot open, errno set) and the mode it reads with.
    public static func open(_ path: String, _ mode: ExpertReadMode) -> (fd: Int32, mode: ExpertReadMode) {
        if mode == .direct {
            let fd = FileIO.openDirectReadOnly(path)
            if fd >= 0 { return (fd, .direct) }
        }
        #if canImport(Glibc)
        return (Glibc.open(path, O_RDONLY), .buffered)
        #else
        return (Darwin.open(path, O_RDONLY), .buffered)
        #endif
    }
}

public struct ExpertCacheStats: Sendable {
    /// Experts a layer asked for that were in a slot (or on their way, prefetched) / that had to be read.
    public var hits = 0, misses = 0
    /// Bytes of expert matrices read (demand and prefetch), and bytes the reads covered (with O_DIRECT's
    /// alignment padding): what storage delivered.
    public var bytesRead = 0, bytesFromStorage = 0
    /// Prefetch reads started, prefetched experts then used (counted in `hits` too), prefetched experts
    /// evicted unused.
    public var prefetches = 0, prefetchHits = 0, prefetchWasted = 0
    /// Time layer calls waited for reads to finish (seconds).
    public var waitSeconds: Double = 0
    public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
    /// Next-layer prediction (the next MoE layer's router on the current layer's input): experts
    /// predicted, predicted and then used, used.
    public var predicted = 0, predictedAndUsed = 0, used = 0
    public var precision: Double { predicted == 0 ? 0 : Double(predictedAndUsed) / Double(predicted) }
    public var recall: Double { used == 0 ? 0 : Double(predictedAndUsed) / Double(used) }
}

public final class ExpertCache: @unchecked Sendable {
    public let slots: Int
    /// Bytes one slot spans (an expert's matrices plus alignment room for O_DIRECT).
    public let slotBytes: Int
    public let readMode: ExpertReadMode
    /// Prefetch the next MoE layer's predicted experts (DS_EXPERT_PREFETCH=0 turns it off, to measure).
    public var prefetchEnabled: Bool
    /// Prefetch whatever the miss rate, into any unpinned slot (tests: the prefetch path with few slots).
    public var prefetchAlways = false
    private let fd: Int32
    private let fileBase: UnsafeRawPointer
    private let memory: UnsafeMutableRawPointer

    private enum SlotState { case empty, loading, ready }
    /// Slot → (layer, expert) key (-1: empty), state, pin counts, LRU stamps, prefetched and not yet used.
    private var slotKey: [Int]
    private var state: [SlotState]
    private var pins: [Int]
    private var stamp: [UInt64]
    private var prefetchedUnused: [Bool]
    private var clock: UInt64 = 0
    private var index: [Int: Int] = [:]
    /// Activations per (layer << 20 | expert), since start (plus any loaded statistics).
    private var counts: [Int: Int] = [:]
    public var eviction: ExpertEviction = .fromEnvironment
    private var mutex = pthread_mutex_t()
    /// Signalled when a read finishes (waiters) and when a job is queued (I/O threads).
    private var slotReady = pthread_cond_t()
    private var jobQueued = pthread_cond_t()
    private var statistics = ExpertCacheStats()
    /// The first read that failed (reported by the next forward call).
    private var readError: String?

    /// One pending read: the slot and per matrix (destination, file offset, bytes to read, the matrix's
    /// bytes, bytes that must arrive: a direct read may end early at the end of the file).
    private struct ReadJob { var slot: Int; var reads: [(dst: UnsafeMutableRawPointer, offset: Int, count: Int, payload: Int, needed: Int)] }
    private var demandJobs: [ReadJob] = []
    private var prefetchJobs: [ReadJob] = []
    private var ioThreadList: [Thread] = []
    private var stopping = false
    private var prefetchesInFlight = 0
    /// Share of requested experts that had to be read, averaged over recent layer calls: above
    /// `prefetchMissLimit` storage is the bottleneck and prefetching (guesses) would take bandwidth
    /// from reads a layer waits for (measured: 1 GB budget on a 5.5 GB model, 57% misses, prefetch cost
    /// 20–30% of decode speed; at 3–8% misses it gained ~20%).
    private var recentMissRate = 0.0
    private let prefetchMissLimit = 0.25
    private let maxPrefetchesInFlight: Int
    private var runningThreads = 0

    public var stats: ExpertCacheStats {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return statistics
    }

    /// Bytes a slot needs for an expert whose matrices (gate, up, down) total `expertBytes`: room for
    /// each matrix's 4 KiB-aligned read.
    public static func slotBytes(expertBytes: Int, matrices: Int = 3) -> Int {
        (expertBytes + 4095) / 4096 * 4096 + 2 * matrices * 4096
    }

    /// `slots` slots for experts of `expertBytes` (at least one expert's gate + up + down) over the GGUF at
    /// `path` whose mapping starts at `fileBase`, read by `ioThreads` threads.
    public init(path: String, fileBase: UnsafeRawPointer, expertBytes: Int, slots: Int, readMode: ExpertReadMode = .fromEnvironment,
                ioThreads: Int = 4, prefetch: Bool = getenv("DS_EXPERT_PREFETCH").map { String(cString: $0) != "0" } ?? true) throws {
        let (descriptor, mode) = ExpertReadMode.open(path, readMode)
        guard descriptor >= 0 else { throw ModelError.invalidConfig(file: path, message: "cannot open for expert streaming: \(String(cString: strerror(errno)))") }
        fd = descriptor
        self.readMode = mode
        prefetchEnabled = prefetch
        maxPrefetchesInFlight = max(1, ioThreads / 2)
        self.fileBase = fileBase
        self.slots = max(1, slots)
        self.slotBytes = ExpertCache.slotBytes(expertBytes: expertBytes)
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, 4096, self.slots * self.slotBytes) == 0, let mem = p else {
            close(descriptor)
            throw ModelError.invalidConfig(file: path, message: "cannot allocate \(self.slots) expert slots")
        }
        memory = mem
        slotKey = Array(repeating: -1, count: self.slots)
        state = Array(repeating: .empty, count: self.slots)
        pins = Array(repeating: 0, count: self.slots)
        stamp = Array(repeating: 0, count: self.slots)
        prefetchedUnused = Array(repeating: false, count: self.slots)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&slotReady, nil)
        pthread_cond_init(&jobQueued, nil)
        // The threads do not keep the cache alive: deinit stops them and waits.
        let unretained = Unmanaged.passUnretained(self)
        for i in 0..<max(1, ioThreads) {
            let t = Thread { unretained._withUnsafeGuaranteedRef { $0.ioLoop() } }
            t.name = "expert-io-\(i)"
            t.stackSize = 256 << 10
            ioThreadList.append(t)
        }
        runningThreads = ioThreadList.count
        for t in ioThreadList { t.start() }
    }

    deinit {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_broadcast(&jobQueued)
        while runningThreads > 0 { pthread_cond_wait(&slotReady, &mutex) }
        pthread_mutex_unlock(&mutex)
        free(memory)
        close(fd)
        pthread_cond_destroy(&slotReady)
        pthread_cond_destroy(&jobQueued)
        pthread_mutex_destroy(&mutex)
    }

    /// Bytes of one expert's matrices.
    public static func expertBytes(_ m: [WeightMatrix]) -> Int { m.reduce(0) { $0 + $1.rows * $1.rowBytes } }

    /// Where each matrix of an expert lies in slot `slot`, and the read that fills it: with O_DIRECT the
    /// aligned range around the matrix, the matrix at its offset inside.
    private func layout(slot: Int, parts: [WeightMatrix]) -> (views: [WeightMatrix], job: ReadJob) {
        var offset = 0
        var views: [WeightMatrix] = [], job = ReadJob(slot: slot, reads: [])
        let base = memory + slot * slotBytes
        for m in parts {
            let bytes = m.rows * m.rowBytes, fileOffset = fileBase.distance(to: m.data)
            let lead = fileOffset & 4095
            let span = (lead + bytes + 4095) / 4096 * 4096
            precondition(offset + span <= slotBytes, "expert cache: an expert does not fit its slot")
            views.append(WeightMatrix(type: m.type, rows: m.rows, cols: m.cols, data: UnsafeRawPointer(base + offset + lead), name: m.name))
            if readMode == .direct {
                job.reads.append((base + offset, fileOffset - lead, span, bytes, lead + bytes))
            } else {
                job.reads.append((base + offset + lead, fileOffset, bytes, bytes, bytes))
            }
            offset += span
        }
        return (views, job)
    }

    /// Pins a slot for each expert (matrices `parts`, e.g. gate, up, down, as mapped views) and starts
    /// the reads of those not in a slot; returns each expert's slot and matrices as views of it. Wait for
    /// a slot with `ready` or `waitAll` before using it; call `unpinAll` after the layer's products.
    public func request(layer: Int, experts: [(expert: Int, parts: [WeightMatrix])], countUse: Bool = true) -> [(slot: Int, views: [WeightMatrix])] {
        var result: [(slot: Int, views: [WeightMatrix])] = []
        pthread_mutex_lock(&mutex)
        let missesBefore = statistics.misses
        for (expert, parts) in experts {
            let key = layer << 20 | expert
            clock += 1
            if countUse { counts[key, default: 0] &+= 1 }
            var slot: Int, missed = false
            if let s = index[key] {
                slot = s
                statistics.hits += 1
                if prefetchedUnused[s] {
                    prefetchedUnused[s] = false
                    statistics.prefetchHits += 1
                    // Still queued behind other prefetches: it is wanted now.
                    if let j = prefetchJobs.firstIndex(where: { $0.slot == s }) {
                        demandJobs.append(prefetchJobs.remove(at: j))
                    }
                }
            } else {
                slot = victimLocked()
                while slot < 0 {
                    // Every free slot is pinned or being filled by a prefetch: wait for one to finish.
                    precondition(state.contains(.loading), "expert cache: all \(slots) slots pinned")
                    pthread_cond_wait(&slotReady, &mutex)
                    slot = victimLocked()
                }
                assign(slot, key)
                statistics.misses += 1
                missed = true
            }
            let placed = layout(slot: slot, parts: parts)
            if missed {
                demandJobs.append(placed.job)
                pthread_cond_signal(&jobQueued)
            }
            pins[slot] += 1   // pinned at once: a later miss of this call cannot take it
            stamp[slot] = clock
            result.append((slot, placed.views))
        }
        if countUse && !experts.isEmpty {
            recentMissRate = 0.95 * recentMissRate + 0.05 * Double(statistics.misses - missesBefore) / Double(experts.count)
        }
        pthread_mutex_unlock(&mutex)
        return result
    }

    /// Starts reading experts `layer` is expected to use (in order of preference) into unpinned slots,
    /// behind any demand read; at most a quarter of the slots per call and `maxPrefetchesInFlight` reads
    /// at a time (the other I/O threads stay free for demand reads), so a wrong guess costs little.
    public func prefetch(layer: Int, experts: [(expert: Int, parts: [WeightMatrix])]) {
        guard prefetchEnabled else { return }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard recentMissRate <= prefetchMissLimit || prefetchAlways else { return }
        var started = 0
        for (expert, parts) in experts where started < max(1, slots / 4) {
            let key = layer << 20 | expert
            if index[key] != nil { continue }
            let slot = victimLocked()
            if slot < 0 { break }
            // Only in place of an expert used less often so far: under slot pressure a guess must not
            // push out what is known to be used.
            if !prefetchAlways && slotKey[slot] >= 0 && (counts[slotKey[slot]] ?? 0) > (counts[key] ?? 0) { continue }
            assign(slot, key)
            prefetchedUnused[slot] = true
            prefetchJobs.append(layout(slot: slot, parts: parts).job)
            statistics.prefetches += 1
            started += 1
            pthread_cond_signal(&jobQueued)
        }
    }

    /// Gives `slot` to `key` (its previous expert leaves the index), to be filled by a read.
    private func assign(_ slot: Int, _ key: Int) {
        if slotKey[slot] >= 0 { index[slotKey[slot]] = nil }
        if prefetchedUnused[slot] { statistics.prefetchWasted += 1; prefetchedUnused[slot] = false }
        slotKey[slot] = key
        index[key] = slot
        state[slot] = .loading
    }

    /// Of `slots`, those whose reads are done; blocks until at least one is when `block` (and `slots` is
    /// not empty).
    public func ready(_ slots: [Int], block: Bool) -> [Int] {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        var done = slots.filter { state[$0] == .ready }
        if done.isEmpty && block && !slots.isEmpty {
            let start = DispatchTime.now().uptimeNanoseconds
            while done.isEmpty {
                pthread_cond_wait(&slotReady, &mutex)
                done = slots.filter { state[$0] == .ready }
            }
            statistics.waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return done
    }

    /// Blocks until the reads of all `slots` are done.
    public func waitAll(_ slots: [Int]) {
        var pending = slots
        while !pending.isEmpty {
            let done = Set(ready(pending, block: true))
            pending.removeAll { done.contains($0) }
        }
    }

    /// The unpinned, not loading slot to reuse: an empty one, else by the eviction policy (-1: none).
    private func victimLocked() -> Int {
        var candidates: [Int] = []
        for s in 0..<slots where pins[s] == 0 && state[s] != .loading {
            if slotKey[s] < 0 { return s }
            candidates.append(s)
        }
        guard !candidates.isEmpty else { return -1 }
        func count(_ s: Int) -> Int { counts[slotKey[s]] ?? 0 }
        switch eviction {
        case .lru: return candidates.min { stamp[$0] < stamp[$1] }!
        case .lfu: return candidates.min { (count($0), stamp[$0]) < (count($1), stamp[$1]) }!
        case .mixed:
            let oldest = candidates.sorted { stamp[$0] < stamp[$1] }.prefix(8)
            return oldest.min { (count($0), stamp[$0]) < (count($1), stamp[$1]) }!
        }
    }

    private var pendingPrediction: [Int: Set<Int>] = [:]

    /// The experts a layer is predicted to use (scored when the layer runs).
    func recordPrediction(layer: Int, experts: Set<Int>) {
        pthread_mutex_lock(&mutex)
        pendingPrediction[layer] = experts
        pthread_mutex_unlock(&mutex)
    }

    /// The experts a layer actually uses: scores the prediction made for it, if any.
    func recordActual(layer: Int, experts: Set<Int>) {
        pthread_mutex_lock(&mutex)
        if let p = pendingPrediction.removeValue(forKey: layer) {
            statistics.predicted += p.count
            statistics.used += experts.count
            statistics.predictedAndUsed += p.intersection(experts).count
        }
        pthread_mutex_unlock(&mutex)
    }

    /// Activation counts per (layer, expert) so far.
    public var activationCounts: [(layer: Int, expert: Int, count: Int)] {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return counts.map { ($0.key >> 20, $0.key & 0xFFFFF, $0.value) }.sorted { ($0.layer, $0.expert) < ($1.layer, $1.expert) }
    }

    /// Most a count carried over from earlier runs may be (2^48 uses).
    public static let countLimit = 1 << 48

    /// Adds counts from earlier runs (the popularity statistics beside the model).
    public func addCounts(_ entries: [(layer: Int, expert: Int, count: Int)]) {
        pthread_mutex_lock(&mutex)
        for e in entries {
            // Saturating at countLimit: counts from a file cannot overflow what this run adds.
            let (sum, overflow) = counts[e.layer << 20 | e.expert, default: 0].addingReportingOverflow(max(0, e.count))
            counts[e.layer << 20 | e.expert] = overflow ? ExpertCache.countLimit : min(sum, ExpertCache.countLimit)
        }
        pthread_mutex_unlock(&mutex)
    }

    /// Reads experts into slots ahead of use (warm start), as many at once as there are slots. Not
    /// counted in the statistics (they describe generation).
    public func warm(_ experts: [(layer: Int, expert: Int, parts: [WeightMatrix])]) {
        let saved = stats
        var start = 0
        while start < experts.count {
            let group = experts[start..<min(experts.count, start + slots)]
            waitAll(group.flatMap { e in request(layer: e.layer, experts: [(e.expert, e.parts)], countUse: false).map(\.slot) })
            unpinAll()
            start += slots
        }
        pthread_mutex_lock(&mutex)
        statistics = saved
        pthread_mutex_unlock(&mutex)
    }

    /// Unpins every slot (after a wave of products).
    public func unpinAll() {
        pthread_mutex_lock(&mutex)
        for s in 0..<slots { pins[s] = 0 }
        pthread_mutex_unlock(&mutex)
    }

    /// The first read error since the last call, if any.
    func takeError() -> String? {
        pthread_mutex_lock(&mutex)
        defer { readError = nil; pthread_mutex_unlock(&mutex) }
        return readError
    }

    /// An I/O thread: takes demand jobs first, then prefetch jobs, until the cache goes away.
    private func ioLoop() {
        pthread_mutex_lock(&mutex)
        while true {
            while demandJobs.isEmpty && (prefetchJobs.isEmpty || prefetchesInFlight >= maxPrefetchesInFlight) && !stopping {
                pthread_cond_wait(&jobQueued, &mutex)
            }
            if stopping { break }
            let isPrefetch = demandJobs.isEmpty
            let job = isPrefetch ? prefetchJobs.removeFirst() : demandJobs.removeFirst()
            if isPrefetch { prefetchesInFlight += 1 }
            pthread_mutex_unlock(&mutex)
            var failure: String?, payload = 0, covered = 0
            for r in job.reads where failure == nil {
                failure = read(into: r.dst, count: r.count, at: r.offset, needed: r.needed)
                payload += r.payload
                covered += r.count
            }
            pthread_mutex_lock(&mutex)
            if isPrefetch {
                prefetchesInFlight -= 1
                pthread_cond_signal(&jobQueued)   // another prefetch may start
            }
            state[job.slot] = .ready
            statistics.bytesRead += payload
            statistics.bytesFromStorage += covered
            if let failure {
                if readError == nil { readError = failure }
                // The slot holds zeros: forget which expert it was meant for, so it is read again.
                if slotKey[job.slot] >= 0 { index[slotKey[job.slot]] = nil }
                slotKey[job.slot] = -1
            }
            pthread_cond_broadcast(&slotReady)
        }
        runningThreads -= 1
        pthread_cond_broadcast(&slotReady)
        pthread_mutex_unlock(&mutex)
    }

    /// Reads `count` bytes at `fileOffset` into `dst` (a read past the end of the file is fine once
    /// `needed` bytes came: O_DIRECT's aligned range may reach beyond the last tensor). Returns the
    /// reason it failed, if it did.
    private func read(into dst: UnsafeMutableRawPointer, count: Int, at fileOffset: Int, needed: Int) -> String? {
        var done = 0
        while done < needed {
            let n = pread(fd, dst + done, count - done, off_t(fileOffset + done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                memset(dst, 0, count)
                return "reading expert weights at offset \(fileOffset + done): \(n == 0 ? "end of file" : String(cString: strerror(errno)))"
            }
            done += n
        }
        #if canImport(Glibc)
        if readMode == .buffered { FileIO.dropCached(fd, offset: fileOffset, length: count) }
        #endif
        return nil
    }
}
