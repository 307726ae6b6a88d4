// A set of byte strings as a trie, for constrained decoding: enum / const values and an object's
// property names are matched one byte at a time in O(log 256) per byte, whatever their number (a scan
// of every literal for every candidate token would cost literals × vocabulary per step).
//
// Node 0 is the root. The strings are kept sorted, so the strings below a node are a contiguous range
// of indices [lo, hi): a caller can ask whether any string below a node is still wanted (object keys
// not yet written) without walking the subtree.

public struct ByteTrie: Sendable {
    /// Edges of node i: edgeBytes[edgeStart[i]..<edgeStart[i + 1]] (ascending), to edgeChild.
    private var edgeStart: [Int32] = []
    private var edgeBytes: [UInt8] = []
    private var edgeChild: [Int32] = []
    /// The string ending at each node (index into `strings`), or -1.
    private var terminal: [Int32] = []
    /// Strings at or below each node: indices lo..<hi.
    private var lower: [Int32] = [], upper: [Int32] = []
    /// The strings, sorted bytewise, without duplicates.
    public let strings: [[UInt8]]

    public init(_ values: [[UInt8]]) {
        strings = Array(Set(values)).sorted { $0.lexicographicallyPrecedes($1) }
        // Breadth first: node ids are assigned in the order nodes are expanded, so each node's edges are
        // appended contiguously when its turn comes.
        var queue: [(lo: Int, hi: Int, depth: Int)] = [(0, strings.count, 0)]
        var head = 0
        while head < queue.count {
            let (lo, hi, depth) = queue[head]
            head += 1
            edgeStart.append(Int32(edgeBytes.count))
            lower.append(Int32(lo)); upper.append(Int32(hi))
            var i = lo
            if i < hi && strings[i].count == depth {   // sorted: the string ending here comes first
                terminal.append(Int32(i))
                i += 1
            } else {
                terminal.append(-1)
            }
            while i < hi {
                let byte = strings[i][depth]
                var j = i + 1
                while j < hi && strings[j][depth] == byte { j += 1 }
                edgeBytes.append(byte)
                edgeChild.append(Int32(queue.count))
                queue.append((i, j, depth + 1))
                i = j
            }
        }
        edgeStart.append(Int32(edgeBytes.count))
    }

    public static let root: Int32 = 0

    /// The node reached from `node` by `byte`, or nil.
    @inline(__always)
    public func child(_ node: Int32, _ byte: UInt8) -> Int32? {
        var lo = Int(edgeStart[Int(node)]), hi = Int(edgeStart[Int(node) + 1])
        while lo < hi {
            let mid = (lo + hi) >> 1
            let b = edgeBytes[mid]
            if b == byte { return edgeChild[mid] }
            if b < byte { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    /// Index of the string that ends exactly at `node`, or nil.
    @inline(__always)
    public func stringEnding(at node: Int32) -> Int? {
        let t = terminal[Int(node)]
        return t < 0 ? nil : Int(t)
    }

    /// Indices of the strings that start with the path to `node`.
    @inline(__always)
    public func stringsBelow(_ node: Int32) -> Range<Int> { Int(lower[Int(node)])..<Int(upper[Int(node)]) }

    public var nodeCount: Int { terminal.count }
}

/// A set of small integers (property indices of one object) as bits.
public struct IndexBits: Sendable, Equatable {
    private var words: [UInt64]
    public init(count: Int) { words = [UInt64](repeating: 0, count: (count + 63) / 64) }

    @inline(__always) public func contains(_ i: Int) -> Bool { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
    @inline(__always) public mutating func insert(_ i: Int) { words[i >> 6] |= 1 << UInt64(i & 63) }

    /// Whether every index of `range` is in the set.
    public func containsAll(_ range: Range<Int>) -> Bool {
        var i = range.lowerBound
        while i < range.upperBound {
            if i & 63 == 0 && range.upperBound - i >= 64 {
                if words[i >> 6] != ~0 { return false }
                i += 64
            } else {
                if !contains(i) { return false }
                i += 1
            }
        }
        return true
    }

    /// Whether every index of `indices` is in the set.
    public func containsAll(_ indices: [Int]) -> Bool { indices.allSatisfy(contains) }
}
