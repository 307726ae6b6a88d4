// The link between two ranks measured with MPI itself: round trips of a small message (latency: half the
// median round trip) and of a large one (bandwidth: its bytes over half the median round trip, less the
// latency). `plan --ranks` predicts the time activations spend on the link from these.

import Foundation

public struct LinkMeasurement: Sendable, Equatable {
    public let peer: Int
    /// One-way latency of a small message, seconds.
    public let latency: Double
    /// Bytes per second of a large message, one way.
    public let bytesPerSecond: Double

    public init(peer: Int, latency: Double, bytesPerSecond: Double) {
        self.peer = peer; self.latency = latency; self.bytesPerSecond = bytesPerSecond
    }

    /// Seconds to send `bytes` one way.
    public func seconds(_ bytes: Int) -> Double { latency + Double(bytes) / bytesPerSecond }
}

public enum LinkProbe {
    static let tag = 0x4C00   // 'L'
    static let smallBytes = 8, largeBytes = 8 << 20

    /// Rank 0 measures its link to `peer`; `peer` calls `answer(world, from: 0)` at the same time.
    /// Round trips: `rounds` each of the small and the large message.
    public static func measure(_ world: MPIWorld, peer: Int, rounds: Int = 9) throws -> LinkMeasurement {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: largeBytes, alignment: 64)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0x5A)
        func medianRoundTrip(_ bytes: Int) throws -> Double {
            var times: [Double] = []
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bytes])
            for _ in 0..<rounds {
                let start = world.now
                try world.send(UnsafeRawBufferPointer(part), to: peer, tag: tag)
                try world.receive(into: part, from: peer, tag: tag)
                times.append(world.now - start)
            }
            return times.sorted()[times.count / 2]
        }
        // Both sides learn the plan first: rounds and sizes.
        var plan = [Int64(rounds), Int64(smallBytes), Int64(largeBytes)]
        try plan.withUnsafeBytes { try world.send($0, to: peer, tag: tag) }
        plan = []
        let small = try medianRoundTrip(smallBytes), large = try medianRoundTrip(largeBytes)
        let latency = small / 2
        let oneWay = max(large / 2 - latency, 1e-9)
        return LinkMeasurement(peer: peer, latency: latency, bytesPerSecond: Double(largeBytes) / oneWay)
    }

    /// The peer's side of `measure`: echoes each message back.
    public static func answer(_ world: MPIWorld, from measurer: Int) throws {
        var plan = [Int64](repeating: 0, count: 3)
        try plan.withUnsafeMutableBytes { try world.receive(into: $0, from: measurer, tag: tag) }
        let rounds = Int(plan[0]), sizes = [Int(plan[1]), Int(plan[2])]
        guard rounds > 0, rounds < 1000, sizes.allSatisfy({ $0 > 0 && $0 <= 1 << 30 }) else {
            throw DistributedError("rank \(world.rank): a link probe plan that makes no sense: \(plan)")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: sizes.max()!, alignment: 64)
        defer { buffer.deallocate() }
        for bytes in sizes {
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bytes])
            for _ in 0..<rounds {
                try world.receive(into: part, from: measurer, tag: tag)
                try world.send(UnsafeRawBufferPointer(part), to: measurer, tag: tag)
            }
        }
    }
}
