// The disk tier of the KV cache: a page file of fixed-size slots, each holding one page (the K and V
// rows of every layer for pageTokens positions). When the RAM pool has no page left, the pages of the
// least recently used idle sequence are written here and their RAM reused; when that sequence runs
// again they are read back bit for bit (KVSequence.prepareWrite), like a swap file.
//
// Plain pread/pwrite, no mmap writes. No fsync: the file is a cache of this process's sessions and is
// worthless after it exits (sessions that should survive are saved with Session.save). Each process
// owns one file `kvpages-<pid>.bin` under an exclusive flock; at start, files in the folder whose lock
// can be taken belong to processes that are gone and are deleted. The slot count is capped by the disk
// budget; running out of slots is a KVCacheError, as running out of RAM pages is.

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
    public private(set) var pagesWritten = 0
    public private(set) var pagesRead = 0

    public enum Failure: Error, CustomStringConvertible {
        case cannotOpen(String, Int32)
        case io(String, Int32)
        public var description: String {
            switch self {
            case .cannotOpen(let p, let e): return "KV disk tier: cannot open \(p): \(String(cString: strerror(e)))"
            case .io(let p, let e): return "KV disk tier: I/O error on \(p): \(String(cString: strerror(e)))"
            }
        }
    }

    /// Opens a fresh page file in `directory` (created if needed), deleting stale ones.
    public init(directory: String, budgetBytes: Int) throws {
        self.directory = directory
        self.budgetBytes = budgetBytes
        mkdir(directory, 0o700)
        KVDiskTier.removeStaleFiles(in: directory)
        path = "\(directory)/kvpages-\(getpid()).bin"
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw Failure.cannotOpen(path, errno) }
        _ = flock(fd, LOCK_EX | LOCK_NB)
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
            let f = open(file, O_RDWR)
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

    /// Writes `parts` (the byte ranges of one page, in order) to slot `s`.
    func write(slot s: Int32, parts: [(UnsafeMutableRawPointer, Int)]) throws {
        try transfer(slot: s, parts: parts) { pwrite($0, $1, $2, $3) }
        pagesWritten += 1
    }

    /// Reads slot `s` back into `parts`.
    func read(slot s: Int32, parts: [(UnsafeMutableRawPointer, Int)]) throws {
        try transfer(slot: s, parts: parts) { pread($0, $1, $2, $3) }
        pagesRead += 1
    }

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
