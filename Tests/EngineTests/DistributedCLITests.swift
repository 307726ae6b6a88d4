// The dwarfstar binary under Open MPI's real mpirun on this machine (ranks on loopback): the job's ranks and
// the link measured between them; outside mpirun, a one-line error.

import Foundation
import Testing

enum MPITools {
    /// mpirun on PATH (Debian: openmpi-bin).
    static var mpirun: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `mpirun -np ranks dwarfstar args` on loopback (root allowed, more ranks than cores allowed).
    static func run(ranks: Int, _ args: [String], timeout: Double = 300) throws -> CLIResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirun!)
        p.arguments = ["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo",
                       "--mca", "oob_tcp_if_include", "lo", "-np", "\(ranks)", Binaries.dwarfstar!] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        final class Box: @unchecked Sendable { var data = Data() }
        let e = Box()
        let errDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread { e.data = err.fileHandleForReading.readDataToEndOfFile(); errDone.signal() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        p.waitUntilExit()
        killer.cancel()
        return CLIResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e.data, as: UTF8.self))
    }
}

@Suite(.serialized, .enabled(if: Binaries.dwarfstar != nil, "needs the dwarfstar binary (swift build)"))
struct DistributedCLITests {
    /// Two and three ranks: rank 0 names the library and every rank, and measures a link of positive latency
    /// and bandwidth to each.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          arguments: [2, 3])
    func ranksReportsEveryRankAndTheLink(ranks: Int) throws {
        let r = try MPITools.run(ranks: ranks, ["ranks"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("mpi: Open MPI") && r.stdout.contains("\(ranks) ranks"), "\(r.stdout)")
        for peer in 0..<ranks { #expect(r.stdout.contains("rank \(peer): "), "rank \(peer) in \(r.stdout)") }
        let links = r.stdout.split(separator: "\n").filter { $0.contains("link 0 ↔") }
        #expect(links.count == ranks - 1, "\(r.stdout)")
        for line in links {
            let numbers = line.split(whereSeparator: { " ,:".contains($0) }).compactMap { Double($0) }
            // peer, latency µs, GB/s
            #expect(numbers.count >= 3 && numbers[1] > 0 && numbers[2] > 0, "\(line)")
        }
    }

    /// A rank that never answers: rank 0 gives up after the timeout, says which rank it waited for, and ends
    /// the whole job (no hang).
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"))
    func aSilentRankEndsTheJobWithAClearError() throws {
        let start = Date()
        let r = try MPITools.run(ranks: 2, ["ranks", "--timeout", "2", "--silent-rank", "1"], timeout: 60)
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 0: no progress on a message from rank 1") && r.stderr.contains("a rank died or the link broke"),
                "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 30, "ended within the timeout, not after the silent rank woke")
    }

    /// Outside mpirun: one line saying how to launch it, exit status 64.
    @Test func ranksOutsideMPIRunSaysHow() throws {
        let r = try runCLI(["ranks"])
        #expect(r.status == 64 && r.stderr.contains("mpirun -np 2 dwarfstar ranks"), "\(r.status) \(r.stderr)")
    }
}
