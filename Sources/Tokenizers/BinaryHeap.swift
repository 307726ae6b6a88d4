// Binary heap used by both BPE merge loops (byte-level ranks, SentencePiece scores); storage is
// reused between pieces.

protocol HeapOrdered {
    /// Whether `a` must come out of the heap before `b`.
    static func comesBefore(_ a: Self, _ b: Self) -> Bool
}

struct BinaryHeap<Element: HeapOrdered> {
    var items: [Element] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ item: Element) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if !Element.comesBefore(items[child], items[parent]) { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the element that comes first.
    mutating func popFirst() -> Element? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var parent = 0
        let count = items.count
        while true {
            let left = 2 * parent + 1
            if left >= count { break }
            var best = left
            let right = left + 1
            if right < count && Element.comesBefore(items[right], items[left]) { best = right }
            if !Element.comesBefore(items[best], items[parent]) { break }
            items.swapAt(best, parent)
            parent = best
        }
        return first
    }
}
