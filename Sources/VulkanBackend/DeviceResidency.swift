// Which weight matrices live on the device, as a placement plan decided them (Engine's GPUPlacement): address
// ranges of the model's mapped weights, each planned on the device or on the host, routed experts marked
// migratable. A context given one uploads exactly the planned matrices and, between steps, swaps experts whose
// use changed (VulkanContext.rebalance) under a bound on the bytes moved per step.

public struct DeviceResidency: Sendable {
    public struct Region: Sendable, Equatable {
        /// The region's first byte in the process (the mapped file's address of the tensor or expert slice).
        public var start: UInt
        public var bytes: Int
        /// Planned on the device (rebalance changes it for migratable regions).
        public var onDevice: Bool
        /// A routed expert's matrix: its place follows its use.
        public var migratable: Bool

        public init(start: UnsafeRawPointer, bytes: Int, onDevice: Bool, migratable: Bool) {
            self.start = UInt(bitPattern: start); self.bytes = bytes; self.onDevice = onDevice; self.migratable = migratable
        }
    }

    /// Sorted by start, not overlapping.
    public private(set) var regions: [Region]

    public init(regions: [Region]) {
        self.regions = regions.sorted { $0.start < $1.start }
    }

    /// The region holding bytes [address, address + bytes), if one does.
    func index(of address: UnsafeRawPointer, bytes: Int) -> Int? {
        let a = UInt(bitPattern: address)
        var lo = 0, hi = regions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if regions[mid].start <= a { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let r = regions[lo - 1]
        return a + UInt(bytes) <= r.start + UInt(r.bytes) ? lo - 1 : nil
    }

    mutating func setOnDevice(_ i: Int, _ value: Bool) { regions[i].onDevice = value }

    /// Bytes of the regions planned on the device (each as allocated).
    public var deviceBytes: Int { regions.reduce(0) { $0 + ($1.onDevice ? DeviceResidency.allocatedBytes($1.bytes) : 0) } }

    /// Device memory a matrix of `bytes` takes: whole 32-bit words (the shaders read words).
    public static func allocatedBytes(_ bytes: Int) -> Int { (bytes + 3) & ~3 }
}
