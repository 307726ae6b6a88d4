/// Open-addressing hash tables used on the hot path: looking up byte strings without building a
/// `String` or `[UInt8]` per lookup, and looking up BPE merges by the pair of token ids.

/// FNV-1a over bytes, 64 bit. Token texts are short (a few bytes), so a byte-serial hash is cheap.
@inline(__always)
func fnv1a64(_ base: UnsafePointer<UInt8>, _ count: Int) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for index in 0..<count {
        hash = (hash ^ UInt64(base[index])) &* 0x0000_0100_0000_01b3
    }
    return hash
}

/// Byte string → id. All strings live in one buffer (`storage`, `starts[id]..<starts[id + 1]`);
/// `slots` holds ids (or -1) at power-of-two capacity with linear probing, load factor ≤ 0.5.
/// When a string occurs twice, the first id wins.
struct ByteStringTable: Sendable {
    private(set) var storage: [UInt8] = []
    private(set) var starts: [Int32] = [0]
    private var slots: [Int32] = []
    private var mask: Int = 0

    var count: Int { starts.count - 1 }

    init(strings: [[UInt8]]) {
        var capacity = 16
        while capacity < strings.count * 2 { capacity <<= 1 }
        let tableMask = capacity - 1
        var bytes: [UInt8] = []
        var offsets: [Int32] = [0]
        bytes.reserveCapacity(strings.reduce(0) { $0 + $1.count } + 1)
        offsets.reserveCapacity(strings.count + 1)
        for string in strings {
            bytes.append(contentsOf: string)
            offsets.append(Int32(bytes.count))
        }
        var table = [Int32](repeating: -1, count: capacity)
        bytes.append(0)  // never an empty buffer; not part of any string
        bytes.withUnsafeBufferPointer { stored in
            let base = stored.baseAddress!
            for id in 0..<strings.count {
                let start = Int(offsets[id]), length = Int(offsets[id + 1]) - start
                var slot = Int(truncatingIfNeeded: fnv1a64(base + start, length)) & tableMask
                var duplicate = false
                while table[slot] >= 0 {
                    let other = Int(table[slot])
                    let otherStart = Int(offsets[other])
                    if Int(offsets[other + 1]) - otherStart == length && memoryEqual(base + otherStart, base + start, length) {
                        duplicate = true  // the first id keeps the string
                        break
                    }
                    slot = (slot + 1) & tableMask
                }
                if !duplicate { table[slot] = Int32(id) }
            }
        }
        bytes.removeLast()
        storage = bytes
        starts = offsets
        slots = table
        mask = tableMask
    }

    /// The id of the byte string `base[0..<count]`, or -1.
    @inline(__always)
    func lookup(_ base: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
        let hash = fnv1a64(base, count)
        return storage.withUnsafeBufferPointer { stored -> Int32 in
            slots.withUnsafeBufferPointer { slotBuffer -> Int32 in
                starts.withUnsafeBufferPointer { startBuffer -> Int32 in
                    var slot = Int(truncatingIfNeeded: hash) & mask
                    while true {
                        let id = slotBuffer[slot]
                        if id < 0 { return -1 }
                        let start = Int(startBuffer[Int(id)])
                        let length = Int(startBuffer[Int(id) + 1]) - start
                        if length == count {
                            if count == 0 || memoryEqual(stored.baseAddress! + start, base, count) { return id }
                        }
                        slot = (slot + 1) & mask
                    }
                }
            }
        }
    }

    func lookup(_ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else {
                var empty: UInt8 = 0
                return withUnsafePointer(to: &empty) { lookup($0, 0) }
            }
            return lookup(base, buffer.count)
        }
    }

    func bytes(of id: Int) -> ArraySlice<UInt8> {
        storage[Int(starts[id])..<Int(starts[id + 1])]
    }

    func length(of id: Int) -> Int {
        Int(starts[id + 1] - starts[id])
    }
}

@inline(__always)
func memoryEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    var index = 0
    while index + 8 <= count {
        let wordA = UnsafeRawPointer(a + index).loadUnaligned(as: UInt64.self)
        let wordB = UnsafeRawPointer(b + index).loadUnaligned(as: UInt64.self)
        if wordA != wordB { return false }
        index += 8
    }
    while index < count {
        if a[index] != b[index] { return false }
        index += 1
    }
    return true
}

/// (left id, right id) → (rank, merged id) for byte-level BPE merges. Keys are `left << 32 | right`,
/// values pack `rank << 32 | merged`. Linear probing at power-of-two capacity, load factor ≤ 0.5.
struct MergePairTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private let mask: Int
    private static let emptyKey = UInt64.max

    init(capacityFor count: Int) {
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        keys = [UInt64](repeating: MergePairTable.emptyKey, count: capacity)
        values = [UInt64](repeating: 0, count: capacity)
        mask = capacity - 1
    }

    @inline(__always)
    private static func slot(of key: UInt64, mask: Int) -> Int {
        // Fibonacci hashing: the high bits of key × 2^64/φ are well mixed.
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    /// Inserts unless the pair is already present (the first, best-ranked merge wins, as in llama.cpp).
    mutating func insertIfAbsent(left: Int32, right: Int32, rank: Int32, merged: Int32) {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var slot = MergePairTable.slot(of: key, mask: mask)
        while keys[slot] != MergePairTable.emptyKey {
            if keys[slot] == key { return }
            slot = (slot + 1) & mask
        }
        keys[slot] = key
        values[slot] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
    }

    /// (rank, merged id) of the pair, or nil.
    @inline(__always)
    func lookup(left: Int32, right: Int32) -> (rank: Int32, merged: Int32)? {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        return keys.withUnsafeBufferPointer { keyBuffer in
            var slot = MergePairTable.slot(of: key, mask: mask)
            while true {
                let stored = keyBuffer[slot]
                if stored == key {
                    let value = values[slot]
                    return (Int32(truncatingIfNeeded: value >> 32), Int32(truncatingIfNeeded: value))
                }
                if stored == MergePairTable.emptyKey { return nil }
                slot = (slot + 1) & mask
            }
        }
    }
}
