// Swift face of the C worker pool (ds_pool): one persistent set of threads per session; the caller's
// thread is worker 0. Dispatch cost is a few hundred ns while workers spin (inside a forward pass).

import CKernels

public final class WorkerPool: @unchecked Sendable {
    private let raw: OpaquePointer
    public let threads: Int

    public init(threads: Int) {
        self.threads = max(1, threads)
        self.raw = ds_pool_create(Int32(self.threads))
    }
    deinit { ds_pool_destroy(raw) }

    /// Runs body(thread, threadCount) on every thread; returns when all are done.
    public func run(_ body: (_ thread: Int, _ threadCount: Int) -> Void) {
        if threads == 1 { body(0, 1); return }
        withoutActuallyEscaping(body) { escapable in
            var box = escapable
            withUnsafeMutablePointer(to: &box) { p in
                ds_pool_run(raw, { ctx, ith, nth in
                    ctx!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(ith), Int(nth))
                }, UnsafeMutableRawPointer(p))
            }
        }
    }

    /// Splits 0..<count into contiguous per-thread ranges.
    public func parallelFor(_ count: Int, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        run { ith, nth in
            let lo = count * ith / nth, hi = count * (ith + 1) / nth
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Lets workers sleep until the next dispatch (between tokens, when waiting for input).
    public func park() { ds_pool_park(raw) }

    /// Logical CPUs available to this process.
    public static var defaultThreadCount: Int {
        #if os(Linux)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
import Foundation
#endif
