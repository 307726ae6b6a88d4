// ranks: under mpirun, the ranks of the job and the link from rank 0 to each, measured with MPI itself.

import ArgumentParser
import DistributedRuns
import Foundation

struct Ranks: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Under mpirun: each rank of the job (host, cores, memory) and the link from rank 0 to each one, measured with MPI (latency, bandwidth).",
        discussion: "mpirun -np 2 dwarfstar ranks   (as root in a container: mpirun --allow-run-as-root --oversubscribe -np 2 dwarfstar ranks)")

    @Option(help: "Seconds to wait for a rank before the job is ended as failed.")
    var timeout: Double = 60

    /// Tests: this rank stays silent (sleeps past the timeout) instead of answering, as a hung peer would.
    @Option(name: .customLong("silent-rank"), help: .hidden)
    var silentRank: Int?

    static let describeTag = 0x5200

    func run() throws {
        guard MPIWorld.launched else {
            throw ValidationError("ranks runs under an MPI launcher: mpirun -np 2 dwarfstar ranks")
        }
        let world: MPIWorld
        do { world = try MPIWorld.join(timeout: timeout) } catch { throw ValidationError("\(error)") }
        do {
            try report(world)
            try world.barrier()
        } catch {
            world.abort("\(error)")
        }
        world.finalize()
    }

    /// "host, cores, memory" of this rank, as a fixed 256-byte record.
    static func describeSelf() -> [UInt8] {
        let info = ProcessInfo.processInfo
        let text = "\(info.hostName): \(info.activeProcessorCount) cores, \(info.physicalMemory >> 20) MiB"
        return Array(text.utf8.prefix(255)) + [UInt8](repeating: 0, count: 256 - min(255, text.utf8.count))
    }

    func report(_ world: MPIWorld) throws {
        guard world.rank == 0 else {
            if world.rank == silentRank {
                Thread.sleep(forTimeInterval: timeout * 3)
                return
            }
            try Ranks.describeSelf().withUnsafeBytes { try world.send($0, to: 0, tag: Ranks.describeTag) }
            try LinkProbe.answer(world, from: 0)
            return
        }
        print("mpi: \(world.library); \(world.size) ranks")
        print("rank 0: \(String(decoding: Ranks.describeSelf().prefix { $0 != 0 }, as: UTF8.self))")
        var record = [UInt8](repeating: 0, count: 256)
        for peer in 1..<world.size {
            try record.withUnsafeMutableBytes { try world.receive(into: $0, from: peer, tag: Ranks.describeTag) }
            let link = try LinkProbe.measure(world, peer: peer)
            print("rank \(peer): \(String(decoding: record.prefix { $0 != 0 }, as: UTF8.self))")
            print(String(format: "  link 0 ↔ %d: latency %.1f µs, %.2f GB/s", peer, link.latency * 1e6, link.bytesPerSecond / 1e9))
        }
    }
}
