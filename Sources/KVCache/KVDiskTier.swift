// The disk tier of the KV cache: a page file of fixed-size slots, each holding one page (the K and V
// rows of every layer for pageTokens positions). When the RAM pool has no page left, the pages of the
// least recently used idle sequence are written here and their RAM reused; when that sequence runs
// again they are read back bit for bit (KVSequence.prepareWrite), like a swap file.
//
// Plain pread/pwrite, no mmap writes. No fsync: the file is a cache of this process's sessions and is
// worthless after it exits (sessions that should survive are saved with Session.save). Each tier owns
// one file `kvpages-<pid>[-<n>].bin` under an exclusive flock; at start, files in the folder whose lock
// can be taken belong to processes that are gone and are deleted. The slot count is capped by the disk
// budget; running out of slots is a KVCacheError, as running out of RAM pages is.
//
// Nothing is clobbered or trusted: the file is created with O_EXCL | O_NOFOLLOW (a symlink or a file
// already at the name is never followed, truncated or written; the next name is tried), the lock must
// be taken, and every slot written gets a checksum (ds_checksum over its bytes, kept in memory) that a
// read checks: a page damaged on disk is reported (Failure.corrupt), never used.

import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class KVDiskTier: @unchecked Sendable {
    public let directory: String
    public let path: String
    public let budgetBytes: Int
    private let fd: Int32
    private var slotBytes = 0
    private var maxSlots = 0
    private var nextSlot = 0
    private var freeSlots: [Int32] = []
    /// Checksum of what was last written to each slot (index: slot).
    private var checksums: [UInt64] = []
    public private(set) var pagesWritten = 0
    public private(set) var pagesRead = 0
    /// Reads refused because the slot's bytes no longer match their checksum.
    public private(set) var corruptReads = 0

    public enum Failure: Error, CustomStringConvertible {
        case cannotOpen(String, Int32)
        case cannotLock(String, Int32)
        case io(String, Int32)
        case corrupt(String, slot: Int)
        public var description: String {
            switch self {
            case .cannotOpen(let p, let e): return "KV disk tier: cannot create a page file in \(p): \(String(cString: strerror(e)))"
            case .cannotLock(let p, let e): return "KV disk tier: cannot lock \(p): \(String(cString: strerror(e)))"
            case .io(let p, let e): return "KV disk tier: I/O error on \(p): \(String(cString: strerror(e)))"
            case .corrupt(let p, let slot):
                return "KV disk tier: slot \(slot) of \(p) does not match its checksum (changed on disk); its positions are evaluated again"
            }
        }
    }

    /// Opens a fresh page file in `directory` (created if needed), deleting stale ones. Throws when no
    /// new file can be created there or its lock cannot be taken.
    public init(directory: String, budgetBytes: Int) throws {
        self.directory = directory
        self.budgetBytes = budgetBytes
        mkdir(directory, 0o700)
        KVDiskTier.removeStaleFiles(in: directory)
        let (fd, path) = try KVDiskTier.createExclusive(in: directory)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            close(fd)
            unlink(path)
            throw Failure.cannotLock(path, e)
        }
        self.fd = fd
        self.path = path
    }

    /// Creates a page file that did not exist: `kvpages-<pid>.bin`, else `kvpages-<pid>-<n>.bin` for the
    /// first n free (another tier of this process, or a name someone else holds). O_EXCL | O_NOFOLLOW:
    /// whatever is at a name already (a file, a symlink) is left alone.
    static func createExclusive(in directory: String) throws -> (Int32, String) {
        let pid = getpid()
        var lastError: Int32 = EEXIST
        for n in 0..<256 {
            let path = n == 0 ? "\(directory)/kvpages-\(pid).bin" : "\(directory)/kvpages-\(pid)-\(n).bin"
            let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 { return (fd, path) }
            lastError = errno
            guard lastError == EEXIST else { break }
        }
        throw Failure.cannotOpen(directory, lastError)
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Deletes `kvpages-*.bin` files no live process holds locked.
    static func removeStaleFiles(in directory: String) {
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            guard name.hasPrefix("kvpages-"), name.hasSuffix(".bin") else { continue }
            let file = "\(directory)/\(name)"
            // Never through a symlink (it would lock, and then unlink, what someone planted).
            let f = open(file, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
            guard f >= 0 else { continue }
            if flock(f, LOCK_EX | LOCK_NB) == 0 { unlink(file) }
            close(f)
        }
    }

    /// Sets the slot size (bytes of one page); called once by the pool.
    func configure(slotBytes: Int) {
        self.slotBytes = slotBytes
        maxSlots = max(0, budgetBytes / max(1, slotBytes))
    }

    var hasFreeSlot: Bool { !freeSlots.isEmpty || nextSlot < maxSlots }

    func allocateSlot() -> Int32? {
        if let s = freeSlots.popLast() { return s }
        guard nextSlot < maxSlots else { return nil }
        nextSlot += 1
        return Int32(nextSlot - 1)
    }

    func freeSlot(_ s: Int32) { freeSlots.append(s) }

    /// Writes `parts` (the byte ranges of one page, in order) to slot `s`, noting their checksum.
    func write(slot s: Int32, parts: [(UnsafeMutableRawPointer, Int)]) throws {
        let sum = KVDiskTier.checksum(parts)
        try transfer(slot: s, parts: parts) { pwrite($0, $1, $2, $3) }
        if checksums.count <= Int(s) { checksums += [UInt64](repeating: 0, count: Int(s) + 1 - checksums.count) }
        checksums[Int(s)] = sum
        pagesWritten += 1
    }

    /// Reads slot `s` back into `parts`; throws Failure.corrupt when the bytes are not those written
    /// (the parts then hold garbage the caller must not use).
    func read(slot s: Int32, parts: [(UnsafeMutableRawPointer, Int)]) throws {
        try transfer(slot: s, parts: parts) { pread($0, $1, $2, $3) }
        guard Int(s) < checksums.count, KVDiskTier.checksum(parts) == checksums[Int(s)] else {
            corruptReads += 1
            throw Failure.corrupt(path, slot: Int(s))
        }
        pagesRead += 1
    }

    /// Checksum of the parts' bytes in order.
    static func checksum(_ parts: [(UnsafeMutableRawPointer, Int)]) -> UInt64 {
        var h: UInt64 = DS_CHECKSUM_SEED
        for (p, n) in parts { h = ds_checksum_update(h, p, n) }
        return ds_checksum_final(h)
    }

    /// Byte offset of slot `s` in the page file (for tests that damage it).
    public func offset(ofSlot s: Int) -> Int { s * slotBytes }

    /// Runs pread/pwrite over the parts at the slot's offset, retrying short transfers and EINTR.
    private func transfer(slot s: Int32, parts: [(UnsafeMutableRawPointer, Int)],
                          _ io: (Int32, UnsafeMutableRawPointer, Int, off_t) -> Int) throws {
        var offset = off_t(Int(s) * slotBytes)
        for (p, n) in parts {
            var done = 0
            while done < n {
                let r = io(fd, p + done, n - done, offset + off_t(done))
                if r < 0 { if errno == EINTR { continue }; throw Failure.io(path, errno) }
                if r == 0 { throw Failure.io(path, EIO) }
                done += r
            }
            offset += off_t(n)
        }
    }
}
