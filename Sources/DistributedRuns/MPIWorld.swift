// This process's place in an MPI job (CMPI: Open MPI opened at run time). Ranks exchange bytes by tag;
// every wait is bounded: a message or barrier that does not come within `timeout` seconds (a rank died, a
// link broke) is an error naming the peer, and `abort` ends every rank of the job with that line.

import CMPI
import Foundation
import Models

public struct DistributedError: PipelineLinkFailure, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public final class MPIWorld: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// The MPI library's version line.
    public let library: String
    /// Longest wait for one message or barrier, in seconds.
    public var timeout: Double
    /// Whether a message failed or timed out: the job's ranks no longer agree on where they are, so it can
    /// only be ended (abort), not finished in order.
    public private(set) var broken = false
    /// One caller at a time (MPI_THREAD_SERIALIZED).
    private let lock = NSLock()

    /// Messages go in parts of at most this many bytes (MPI counts are 32-bit).
    static let largestPart = 1 << 30

    nonisolated(unsafe) private static var joined: MPIWorld?
    private static let joinLock = NSLock()

    /// Whether this process was started by mpirun / mpiexec.
    public static var launched: Bool { ds_mpi_launched() != 0 }

    /// Joins the job this process was launched into (once per process; later calls return the same world).
    public static func join(timeout: Double = 120) throws -> MPIWorld {
        joinLock.lock()
        defer { joinLock.unlock() }
        if let joined { return joined }
        guard launched else {
            throw DistributedError("this process was not started by mpirun (for example: mpirun -np 2 dwarfstar …)")
        }
        var rank: Int32 = 0, size: Int32 = 0
        var reason = [CChar](repeating: 0, count: 512)
        guard ds_mpi_init(&rank, &size, &reason, reason.count) == 0 else { throw DistributedError("MPI: " + String(cString: reason)) }
        var version = [CChar](repeating: 0, count: 512)
        ds_mpi_library_version(&version, version.count)
        let world = MPIWorld(rank: Int(rank), size: Int(size), library: String(cString: version), timeout: timeout)
        joined = world
        return world
    }

    private init(rank: Int, size: Int, library: String, timeout: Double) {
        self.rank = rank; self.size = size; self.library = library; self.timeout = timeout
    }

    // MARK: Messages

    /// Sends `bytes` to rank `peer` under `tag` (in parts of at most 1 GiB, each acknowledged by the receive).
    public func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: Int) throws {
        try inParts(bytes.count) { offset, count in
            var request: ds_mpi_request?
            let status = ds_mpi_isend(bytes.baseAddress.map { $0 + offset }, count, Int32(peer), Int32(tag), &request)
            guard status == 0 else { throw failure(status, "sending \(count) bytes to rank \(peer)") }
            _ = try wait(&request, "sending \(count) bytes to rank \(peer) (tag \(tag))", timeout: timeout)
        }
    }

    /// Receives exactly `bytes.count` bytes from rank `peer` under `tag`, waiting at most `timeout` seconds
    /// (nil: the world's; .infinity for a rank that waits on a user, as the pipeline's later stages do for
    /// the next request: a dead rank still ends the job, since mpirun ends every rank when one dies).
    public func receive(into bytes: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int, timeout: Double? = nil) throws {
        try inParts(bytes.count) { offset, count in
            var request: ds_mpi_request?
            let status = ds_mpi_irecv(bytes.baseAddress.map { $0 + offset }, count, Int32(peer), Int32(tag), &request)
            guard status == 0 else { throw failure(status, "receiving from rank \(peer)") }
            let received = try wait(&request, "a message from rank \(peer) (tag \(tag), \(count) bytes)", timeout: timeout ?? self.timeout)
            guard received == count else {
                throw DistributedError("rank \(rank): rank \(peer) sent \(received) bytes under tag \(tag) where \(count) were expected")
            }
        }
    }

    /// A receive started and not yet waited for (beginReceive / complete).
    public struct PendingReceive {
        var requests: [(request: ds_mpi_request?, count: Int)]
        let peer: Int, tag: Int
    }

    /// Starts receiving exactly `bytes.count` bytes from `peer` under `tag` (so a sender is never held up by
    /// this rank being busy); `complete` waits for it. The bytes must stay valid until then.
    public func beginReceive(into bytes: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int) throws -> PendingReceive {
        var pending = PendingReceive(requests: [], peer: peer, tag: tag)
        try inParts(bytes.count) { offset, count in
            var request: ds_mpi_request?
            let status = ds_mpi_irecv(bytes.baseAddress.map { $0 + offset }, count, Int32(peer), Int32(tag), &request)
            guard status == 0 else { throw failure(status, "receiving from rank \(peer)") }
            pending.requests.append((request, count))
        }
        return pending
    }

    /// Waits (bounded by the timeout) for a receive `beginReceive` started.
    public func complete(_ pending: PendingReceive) throws {
        lock.lock()
        defer { lock.unlock() }
        for var part in pending.requests {
            let received = try wait(&part.request, "a message from rank \(pending.peer) (tag \(pending.tag), \(part.count) bytes)",
                                    timeout: timeout)
            guard received == part.count else {
                throw DistributedError("rank \(rank): rank \(pending.peer) sent \(received) bytes under tag \(pending.tag) where \(part.count) were expected")
            }
        }
    }

    /// `body(offset, count)` for the parts of a message of `total` bytes (one part for an empty message),
    /// under the lock.
    private func inParts(_ total: Int, _ body: (Int, Int) throws -> Void) throws {
        lock.lock()
        defer { lock.unlock() }
        var offset = 0
        repeat {
            let count = min(MPIWorld.largestPart, total - offset)
            try body(offset, count)
            offset += count
        } while offset < total
    }

    /// Every rank reaches this point (bounded by `timeout`).
    public func barrier() throws {
        lock.lock()
        defer { lock.unlock() }
        var request: ds_mpi_request?
        let status = ds_mpi_ibarrier(&request)
        guard status == 0 else { throw failure(status, "a barrier") }
        _ = try wait(&request, "the other ranks at a barrier", timeout: timeout)
    }

    /// Polls `request` until it finishes or `timeout` passes (then it is cancelled). The bytes received.
    private func wait(_ request: inout ds_mpi_request?, _ what: String, timeout: Double) throws -> Int {
        let deadline = timeout.isFinite ? Date().addingTimeInterval(timeout) : Date.distantFuture
        var spins = 0
        while true {
            var done: Int32 = 0, received = 0
            let status = ds_mpi_test(&request, &done, nil, nil, &received)
            guard status == 0 else { throw failure(status, what) }
            if done != 0 { return received }
            spins += 1
            if spins > 1000 {
                // Past a short spin, sleep between polls (a slow peer should not burn a core).
                if Date() > deadline {
                    ds_mpi_cancel(&request)
                    broken = true
                    throw DistributedError("rank \(rank): no progress on \(what) in \(Int(timeout)) s: a rank died or the link broke")
                }
                usleep(spins > 20000 ? 1000 : 50)
            }
        }
    }

    private func failure(_ status: Int32, _ what: String) -> DistributedError {
        broken = true
        var text = [CChar](repeating: 0, count: 512)
        ds_mpi_error_string(status, &text, text.count)
        return DistributedError("rank \(rank): MPI error on \(what): \(String(cString: text))")
    }

    // MARK: The job

    /// Prints `message` (which names this rank where it comes from an error here) on stderr and ends every
    /// rank of the job.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        let line = message.hasPrefix("rank ") ? message : "rank \(rank): \(message)"
        FileHandle.standardError.write(Data((line + "\n").utf8))
        ds_mpi_abort(code)
        exit(code)
    }

    /// Ends this rank's part (after its last message).
    public func finalize() { _ = ds_mpi_finalize() }

    /// Seconds on MPI's clock.
    public var now: Double { ds_mpi_wtime() }
}
