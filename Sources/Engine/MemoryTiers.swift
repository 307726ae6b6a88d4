// Weight placement under a RAM budget (--ram-budget): what every token touches stays resident (mapped:
// embeddings, attention, norms, routers, dense and shared-expert FFNs, output), routed MoE experts are
// streamed from the file into a fixed number of RAM slots (ExpertCache) when they do not all fit.
//
// The budget covers the process's peak resident memory: the resident tensors (as mapped file pages),
// the expert slots, the KV pool and what the process holds besides (runtime, tokenizer, scratch),
// measured at load.

import Platform
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GGUF
import Kernels
import KVCache
import Models

public struct WeightPlacement: Sendable, CustomStringConvertible {
    public var budgetBytes: Int
    public var residentBytes: Int
    /// Bytes of routed expert tensors (all layers).
    public var expertBytes: Int
    /// Bytes of one expert's matrices, and of the slot holding one (room for aligned direct reads).
    public var expertBytesEach: Int
    public var expertSlotBytes: Int
    /// Expert slots in RAM (0: experts stay mapped, all resident).
    public var slots: Int
    public var expertCount: Int
    public var kvBytes: Int
    public var otherBytes: Int

    public var streaming: Bool { slots > 0 }

    public var description: String {
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1048576) }
        if !streaming {
            return "RAM budget \(mib(budgetBytes)): all weights resident (\(mib(residentBytes + expertBytes))), KV \(mib(kvBytes)), other \(mib(otherBytes))"
        }
        return "RAM budget \(mib(budgetBytes)): resident \(mib(residentBytes)) (embeddings, attention, norms, routers, shared experts, output); " +
            "\(expertCount) routed experts (\(mib(expertBytes))) streamed from disk through \(slots) slots × \(mib(expertSlotBytes)) " +
            "(\(mib(slots * expertSlotBytes))); KV \(mib(kvBytes)); other \(mib(otherBytes))"
    }
}

public enum MemoryTierError: Error, CustomStringConvertible {
    case budgetTooSmall(needed: Int, budget: Int, what: String)
    public var description: String {
        switch self {
        case .budgetTooSmall(let n, let b, let what):
            return "--ram-budget \(b >> 20) MiB is too small: \(what) need at least \(n >> 20) MiB"
        }
    }
}

extension LoadedModel {
    /// Routed expert tensors (streamed under a budget); everything else is resident.
    static func isRoutedExpertTensor(_ name: String) -> Bool { name.hasSuffix("_exps.weight") }

    /// Peak resident memory of this process so far (VmHWM), or current RSS where that is not available.
    public static func peakResidentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0").map { $0 * 1024 }
        }
        return nil
    }

    /// Bytes a session's buffers take for batches of `batch` tokens (activations, attention, MoE and
    /// architecture scratch; KV excluded): measured by building one (they are zero-filled, so resident)
    /// and reading the resident size before and after, with the threads that will run (each has its
    /// attention scratch). At least 64 MiB.
    public func sessionScratchBytes(batch: Int, threads: Int) -> Int {
        let before = LoadedModel.currentResidentBytes()
        let measured: Int = {
            let state = InferenceState(model: model, contextLength: 16, maxBatch: batch, threads: threads)
            return withExtendedLifetime(state) { LoadedModel.currentResidentBytes() - before }
        }()
        return max(64 << 20, measured + (8 << 20))
    }

    /// Bytes of side-state snapshots (DeepSeek V4's compressed cache, Qwen3.5's recurrent state) a
    /// session may hold beyond its KV budget (which covers its live state): `checkpoints` of them at
    /// `contextLength`.
    public func sideStateBudgetBytes(contextLength: Int, type: KVType, checkpoints: Int) -> Int {
        checkpoints * model.sideStateBytes(contextLength: contextLength, type: type)
    }

    public static func currentResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 64 << 20 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
        }
        return 64 << 20
    }

    /// Where the weights go under `budgetBytes` with `kvBytes` of KV and `scratchBytes` of per-session
    /// buffers.
    public func placement(budgetBytes: Int, kvBytes: Int, scratchBytes: Int = 32 << 20) throws -> WeightPlacement {
        // A pipeline stage holds its own layers' tensors only.
        var resident = 0, experts = 0
        for t in gguf.tensors where model.holds(tensor: t.name) {
            if LoadedModel.isRoutedExpertTensor(t.name) { experts += t.byteCount } else { resident += t.byteCount }
        }
        var expertBytesEach = 0
        for (_, f) in model.moeBlocks {
            if let g = f.gate.first, let u = f.up.first, let d = f.down.first {
                expertBytesEach = max(expertBytesEach, ExpertCache.expertBytes([g, u, d]))
            }
        }
        // Expert parallel: only this rank's share of the experts is held.
        let held = model.heldExpertBytes, expertCount = held.count
        if model.expertShard != nil || model.pipelineStages != nil { experts = held.bytes }
        let slotBytes = expertBytesEach > 0 ? ExpertCache.slotBytes(expertBytes: expertBytesEach) : 0
        // What the process holds besides weights and KV: measured now (runtime, tokenizer, tables) plus
        // the session buffers to come.
        let other = LoadedModel.currentResidentBytes() + scratchBytes
        var plan = WeightPlacement(budgetBytes: budgetBytes, residentBytes: resident, expertBytes: experts, expertBytesEach: expertBytesEach, expertSlotBytes: slotBytes,
                                   slots: 0, expertCount: expertCount, kvBytes: kvBytes, otherBytes: other)
        let free = budgetBytes - resident - kvBytes - other
        if free >= experts { return plan }
        guard slotBytes > 0 else {
            throw MemoryTierError.budgetTooSmall(needed: resident + experts + kvBytes + other, budget: budgetBytes,
                                                 what: "the weights (this model has no routed experts to stream), KV and runtime")
        }
        guard free >= slotBytes else {
            throw MemoryTierError.budgetTooSmall(needed: resident + kvBytes + other + slotBytes, budget: budgetBytes,
                                                 what: "the resident weights, KV, runtime and one expert slot")
        }
        plan.slots = min(free / slotBytes, expertCount)
        return plan
    }

    /// Applies a placement: routed experts are read into slots from now on. With popularity statistics
    /// from earlier runs (beside the model), the most used experts are read into the slots at once.
    /// Returns the number of experts warmed.
    @discardableResult
    public func apply(_ plan: WeightPlacement, readMode: ExpertReadMode = .fromEnvironment) throws -> Int {
        guard plan.streaming else { model.expertCache = nil; return 0 }
        let cache = try ExpertCache(path: path, fileBase: gguf.base, expertBytes: plan.expertBytesEach, slots: plan.slots, readMode: readMode)
        model.expertCache = cache
        let stats = loadExpertStatistics()
        cache.addCounts(stats)
        var warm: [(layer: Int, expert: Int, parts: [WeightMatrix])] = []
        let blocks = Dictionary(model.moeBlocks.map { ($0.layer, $0.weights) }, uniquingKeysWith: { a, _ in a })
        let held = stats.filter { model.runsExpert(layer: $0.layer, expert: $0.expert) }
        for entry in held.sorted(by: { $0.count > $1.count }).prefix(plan.slots) {
            guard let f = blocks[entry.layer], entry.expert < f.gate.count else { continue }
            warm.append((entry.layer, entry.expert, f.expertMatrices(entry.expert)))
        }
        cache.warm(warm)
        return warm.count
    }

    /// Where this model's expert popularity statistics live: beside the model when its folder is
    /// writable, else in ~/.cache/dwarfstar/experts.
    public var expertStatisticsPath: String { sidecarPath(suffix: "dsexperts", cacheFolder: "experts") }

    /// A file kept beside the model (`<model>.<suffix>`) when its folder is writable, else in
    /// ~/.cache/dwarfstar/<cacheFolder> under the model's name and size.
    func sidecarPath(suffix: String, cacheFolder: String) -> String {
        let url = URL(fileURLWithPath: path)
        if FileManager.default.isWritableFile(atPath: url.deletingLastPathComponent().path) { return path + "." + suffix }
        let dir = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dwarfstar/" + cacheFolder)
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("\(url.lastPathComponent)-\(gguf.fileSize).\(suffix)").path
    }

    /// Activation counts saved by earlier runs: lines "layer expert count" after a header naming the
    /// model's file size (statistics of another file are ignored). A file that is not well formed
    /// (ExpertStatistics.parse) is ignored with a warning through `warn` (default: stderr).
    public func loadExpertStatistics(warn: (String) -> Void = { FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8)) })
        -> [(layer: Int, expert: Int, count: Int)] {
        let path = expertStatisticsPath
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let experts = Dictionary(model.moeBlocks.map { ($0.layer, $0.weights.gate.count) }, uniquingKeysWith: { a, _ in a })
        do {
            let data = try AtomicFile.read(path, limit: ExpertStatistics.maximumBytes)
            return try ExpertStatistics.parse(data, modelFileSize: gguf.fileSize, experts: experts)
        } catch {
            warn("ignoring the expert statistics \(path): \(error)")
            return []
        }
    }

    /// Saves the activation counts (earlier runs' included) for the next start; written to a temporary
    /// file of a unique name beside it and renamed (AtomicFile). Best effort: a failure keeps the old.
    public func saveExpertStatistics() {
        guard let cache = model.expertCache else { return }
        var text = "\(ExpertStatistics.magic) \(gguf.fileSize)\n"
        for e in cache.activationCounts { text += "\(e.layer) \(e.expert) \(e.count)\n" }
        try? AtomicFile.write(Data(text.utf8), to: expertStatisticsPath)
    }
}

/// The `.dsexperts` format: "dwarfstar-expert-statistics <model file size>", then one line per used
/// expert "<layer> <expert> <count>" (decimal). Parsed with every number bounded, so a damaged or
/// hostile file is an error, never a crash or an absurd allocation.
public enum ExpertStatistics {
    public static let magic = "dwarfstar-expert-statistics"
    /// Larger than any real file (a line per expert of every layer).
    public static let maximumBytes = 64 << 20
    /// Counts above this are not activation counts: the file is damaged (a saved count is at most
    /// ExpertCache.countLimit plus one run's uses).
    public static let maximumCount = 1 << 52

    public struct ParseError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The counts in `data` for a model file of `modelFileSize` bytes with `experts[layer]` routed
    /// experts in each MoE layer. Statistics of another file (other size) give none; a malformed line,
    /// an unknown layer or expert, an absurd or repeated entry throws ParseError.
    public static func parse(_ data: Data, modelFileSize: Int, experts: [Int: Int]) throws -> [(layer: Int, expert: Int, count: Int)] {
        guard data.count <= maximumBytes else { throw ParseError(message: "\(data.count) bytes, more than any statistics file") }
        guard let text = String(data: data, encoding: .utf8) else { throw ParseError(message: "not UTF-8 text") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard let header = lines.first, header.hasPrefix(magic + " "),
              let size = decimal(header.dropFirst(magic.count + 1)) else {
            throw ParseError(message: "no '\(magic) <size>' header")
        }
        guard size == modelFileSize else { return [] }   // another model file's statistics
        var seen = Set<Int>(), entries: [(layer: Int, expert: Int, count: Int)] = []
        for (n, line) in lines.dropFirst().enumerated() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 3, let layer = decimal(fields[0]), let expert = decimal(fields[1]), let count = decimal(fields[2]) else {
                throw ParseError(message: "line \(n + 2) is not '<layer> <expert> <count>'")
            }
            guard let total = experts[layer] else { throw ParseError(message: "line \(n + 2): layer \(layer) has no routed experts") }
            guard expert < total else { throw ParseError(message: "line \(n + 2): expert \(expert) of layer \(layer), which has \(total)") }
            guard count <= maximumCount else { throw ParseError(message: "line \(n + 2): count \(count) is absurd") }
            guard seen.insert(layer << 20 | expert).inserted else { throw ParseError(message: "line \(n + 2): layer \(layer) expert \(expert) repeated") }
            entries.append((layer, expert, count))
        }
        return entries
    }

    /// A non-negative decimal of at most 18 digits (no sign, no spaces), else nil.
    static func decimal(_ s: Substring) -> Int? {
        guard !s.isEmpty, s.count <= 18, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(s)
    }
}

extension LoadedModel {
    /// Read speed of this model's file from storage (GB/s) the way the expert cache reads: `chunkBytes`
    /// reads at offsets spread over the file, `parallel` in flight, O_DIRECT (or buffered with each range
    /// dropped from the page cache first, so the disk is read). 256 MiB in all.
    public func storageReadBandwidth(mode: ExpertReadMode = .fromEnvironment, chunkBytes: Int = 4 << 20, parallel: Int = 4) -> Double {
        let chunk = max(4096, chunkBytes / 4096 * 4096)
        let reads = max(parallel, (256 << 20) / chunk)
        let (fd, mode) = ExpertReadMode.open(path, mode)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let span = max(0, gguf.fileSize - chunk)
        let bytes = UnsafeMutablePointer<Int>.allocate(capacity: parallel)
        bytes.initialize(repeating: 0, count: parallel)
        defer { bytes.deallocate() }
        let start = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: parallel) { worker in
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 4096)
            defer { buffer.deallocate() }
            for i in stride(from: worker, to: reads, by: parallel) {
                // A spread of offsets (a multiplicative hash of i), aligned for O_DIRECT.
                let offset = Int((UInt64(i) &* 0x9E3779B97F4A7C15) % UInt64(max(span, 1))) / 4096 * 4096
                #if canImport(Glibc)
                if mode == .buffered { FileIO.dropCached(fd, offset: offset, length: chunk) }
                #endif
                let n = pread(fd, buffer, chunk, off_t(offset))
                if n > 0 { bytes[worker] += n }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let total = (0..<parallel).reduce(0) { $0 + bytes[$1] }
        return seconds > 0 ? Double(total) / seconds / 1e9 : 0
    }

    /// Weight bytes a decode token reads from RAM and (streaming) from storage under `plan`, with routed
    /// experts chosen uniformly (hit rate = slots / experts).
    /// Bytes of routed experts a decode token reads (experts used per token × one expert's matrices, all layers).
    public var routedExpertBytesPerToken: Int {
        model.moeBlocks.reduce(0) { total, block in
            guard !block.weights.gate.isEmpty else { return total }
            return total + block.weights.config.expertsUsed * block.weights.expertMatrices(0).reduce(0) { $0 + $1.rows * $1.rowBytes }
        }
    }

    public func bytesPerToken(_ plan: WeightPlacement) -> (ram: Int, storage: Int) {
        let total = model.weightBytesPerToken
        let blocks = model.moeBlocks
        guard plan.streaming, plan.expertCount > 0, !blocks.isEmpty else { return (total, 0) }
        let expertsPerToken = blocks.reduce(0) { $0 + $1.weights.config.expertsUsed }
        let routed = expertsPerToken * plan.expertBytesEach
        let missRate = 1 - Double(plan.slots) / Double(plan.expertCount)
        let fromStorage = Int(Double(routed) * missRate)
        return (total - fromStorage, fromStorage)
    }
}
