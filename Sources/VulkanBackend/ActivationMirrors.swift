// Device copies of a session's activation buffers (InferenceState's x, xn, q, k, v, …), so that the ops of a
// pass read and write device memory and bytes cross the bus only where the other side needs them.
//
// Every buffer is split in chunks of `chunkBytes`; each chunk's current bytes are on the device, on the host
// or on both (never on neither):
//   a device op reading a range   uploads the chunks only the host holds;
//   a device op writing a range   leaves its chunks on the device only (a chunk it covers in part, or a
//                                 strided range's gaps, is uploaded first, so no host byte is lost);
//   downloadAll                   brings every chunk only the device holds back to the host (after the submit);
//   dropDeviceCopies              forgets the device's copies (the host may write anything next).
// Transfers are recorded into the context's command buffer in order with the dispatches. The context's lock
// is held by every caller.

import CVulkan

final class ActivationMirrors {
    static let chunkBytes = 1024

    struct Mirror {
        let base: UnsafeMutableRawPointer
        let bytes: Int
        let buffer: OpaquePointer
        /// Per chunk: whether the device's / the host's copy holds its current bytes.
        var onDevice: [Bool]
        var onHost: [Bool]
    }

    /// Sorted by base address, disjoint.
    private(set) var mirrors: [Mirror] = []
    /// Whether some chunk is on the device (false: dropDeviceCopies and downloadAll have nothing to do).
    private(set) var deviceHoldsAny = false
    /// Chunk runs (mirror, chunks) made current on the device since the last drop: uploaded or written there.
    /// downloadAll and dropDeviceCopies visit only these, not every chunk of every buffer.
    private var touched: [(mirror: Int, chunks: Range<Int>)] = []
    /// Of those, the runs a device op wrote (the host's copy stale).
    private var written: [(mirror: Int, chunks: Range<Int>)] = []
    let context: VulkanContext

    init(context: VulkanContext) { self.context = context }

    /// Makes a device copy of each buffer (buffers already mirrored, or overlapping one, are skipped).
    func add(_ buffers: [UnsafeMutableRawBufferPointer]) throws {
        for b in buffers {
            guard let base = b.baseAddress, b.count > 0, b.count <= context.bindingLimit else { continue }
            if mirrors.contains(where: { base < $0.base + $0.bytes && $0.base < base + b.count }) { continue }
            var reason = [CChar](repeating: 0, count: 512)
            guard let buffer = ds_vk_buffer_create(context.handle, UInt64(b.count), Int32(DS_VK_DEVICE_LOCAL), &reason, reason.count) else {
                throw VulkanError(reason: reason)
            }
            let chunks = (b.count + ActivationMirrors.chunkBytes - 1) / ActivationMirrors.chunkBytes
            mirrors.append(Mirror(base: base, bytes: b.count, buffer: buffer, onDevice: [Bool](repeating: false, count: chunks),
                                  onHost: [Bool](repeating: true, count: chunks)))
        }
        // The runs noted so far name mirrors by index: renumber them after the sort.
        let touchedBases = touched.map { (mirrors[$0.mirror].base, $0.chunks) }, writtenBases = written.map { (mirrors[$0.mirror].base, $0.chunks) }
        mirrors.sort { $0.base < $1.base }
        let index = { (base: UnsafeMutableRawPointer) in self.mirrors.firstIndex { $0.base == base }! }
        touched = touchedBases.map { (index($0.0), $0.1) }
        written = writtenBases.map { (index($0.0), $0.1) }
    }

    func destroy() {
        for m in mirrors { ds_vk_buffer_destroy(context.handle, m.buffer) }
        mirrors.removeAll()
    }

    /// The mirror holding bytes p ..< p + bytes and the offset of p in it.
    func locate(_ p: UnsafeRawPointer, bytes: Int) -> (index: Int, offset: Int)? {
        var lo = 0, hi = mirrors.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if UnsafeRawPointer(mirrors[mid].base) <= p { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let m = mirrors[lo - 1], offset = p - UnsafeRawPointer(m.base)
        guard offset + bytes <= m.bytes else { return nil }
        return (lo - 1, offset)
    }

    private func chunks(_ range: Range<Int>) -> Range<Int> {
        range.lowerBound / ActivationMirrors.chunkBytes ..< (range.upperBound + ActivationMirrors.chunkBytes - 1) / ActivationMirrors.chunkBytes
    }

    /// Runs of consecutive chunks in `chunks` whose flag is false.
    private static func missing(_ flags: [Bool], in chunks: Range<Int>) -> [Range<Int>] {
        var runs: [Range<Int>] = [], c = chunks.lowerBound
        while c < chunks.upperBound {
            guard !flags[c] else { c += 1; continue }
            var end = c + 1
            while end < chunks.upperBound && !flags[end] { end += 1 }
            runs.append(c..<end)
            c = end
        }
        return runs
    }

    /// Bytes of chunks `run` in mirror i.
    private func byteRange(_ i: Int, _ run: Range<Int>) -> Range<Int> {
        run.lowerBound * ActivationMirrors.chunkBytes ..< min(run.upperBound * ActivationMirrors.chunkBytes, mirrors[i].bytes)
    }

    /// Uploads the chunks of `range` (bytes of mirror i) that only the host holds.
    func prepareRead(_ i: Int, _ range: Range<Int>) throws {
        for run in ActivationMirrors.missing(mirrors[i].onDevice, in: chunks(range)) {
            let bytes = byteRange(i, run)
            var reason = [CChar](repeating: 0, count: 512)
            context.forgetQuantizedInputs()
            guard ds_vk_upload(context.handle, mirrors[i].base + bytes.lowerBound, UInt64(bytes.count), mirrors[i].buffer,
                               UInt64(bytes.lowerBound), &reason, reason.count) == 0 else { throw VulkanError(reason: reason) }
            for k in run { mirrors[i].onDevice[k] = true }
            touched.append((i, run))
            deviceHoldsAny = true
        }
    }

    /// Before a device op writes `range` of mirror i (`dense`: every byte of it; false: a strided range with
    /// gaps it leaves alone): afterwards its chunks are on the device only.
    func prepareWrite(_ i: Int, _ range: Range<Int>, dense: Bool) throws {
        let cs = chunks(range)
        guard !cs.isEmpty else { return }
        if !dense {
            try prepareRead(i, range)
        } else {
            // Chunks the range covers in part keep bytes it does not write.
            let size = ActivationMirrors.chunkBytes
            if range.lowerBound % size != 0 { try prepareRead(i, range.lowerBound ..< range.lowerBound + 1) }
            if range.upperBound % size != 0 && range.upperBound < mirrors[i].bytes { try prepareRead(i, range.upperBound - 1 ..< range.upperBound) }
        }
        for c in cs { mirrors[i].onDevice[c] = true; mirrors[i].onHost[c] = false }
        touched.append((i, cs)); written.append((i, cs))
        deviceHoldsAny = true
    }

    /// Records the copies that bring every chunk only the device holds to the host; they land there at the
    /// next submit (the caller submits; a barrier before them orders them after the dispatches).
    func downloadAll() throws {
        guard deviceHoldsAny else { return }
        for (i, cs) in written {
            for run in ActivationMirrors.missing(mirrors[i].onHost, in: cs) {
                let bytes = byteRange(i, run)
                var reason = [CChar](repeating: 0, count: 512)
                guard ds_vk_download(context.handle, mirrors[i].buffer, UInt64(bytes.lowerBound), mirrors[i].base + bytes.lowerBound,
                                     UInt64(bytes.count), &reason, reason.count) == 0 else { throw VulkanError(reason: reason) }
                for k in run { mirrors[i].onHost[k] = true }
            }
        }
        written.removeAll(keepingCapacity: true)
    }

    /// Forgets the device's copies: every chunk is the host's alone (after downloadAll and its submit, or after
    /// a device failure, when the host's bytes are what there is).
    func dropDeviceCopies() {
        guard deviceHoldsAny else { return }
        for (i, cs) in touched {
            for c in cs { mirrors[i].onDevice[c] = false; mirrors[i].onHost[c] = true }
        }
        touched.removeAll(keepingCapacity: true); written.removeAll(keepingCapacity: true)
        deviceHoldsAny = false
    }

    /// Chunks only the device holds (tests).
    var chunksOnlyOnDevice: Int { mirrors.reduce(0) { $0 + $1.onHost.filter { !$0 }.count } }
}
