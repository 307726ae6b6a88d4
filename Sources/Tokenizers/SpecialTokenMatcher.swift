/// Finds control / user-defined tokens written literally in the text, before the model's tokenizer
/// sees it (llama.cpp's `tokenizer_st_partition`, Hugging Face's added-token matching).
///
/// Matching is leftmost-longest over a byte trie: scanning left to right, at each position the longest
/// special token starting there is taken, and scanning resumes after it. llama.cpp instead takes the
/// tokens longest-first over the whole text; the two agree unless two special tokens overlap in the text
/// with the longer one starting later (none of the supported vocabularies has such a pair).
struct SpecialTokenMatcher: Sendable {
    /// Trie edges: key `node << 8 | byte` → child node (stored in the merged field).
    private let edges: MergePairTable
    /// Token id ending at each node, or -1.
    private let terminal: [Int32]
    /// Whether any special token starts with this byte (a cheap pre-check for most positions).
    private let startsWith: [Bool]
    let isEmpty: Bool

    init(tokens: [(id: Int32, text: [UInt8])]) {
        var edgeList: [(parent: Int32, byte: UInt8, child: Int32)] = []
        var children: [Int64: Int32] = [:]
        var terminalIds: [Int32] = [-1]
        var firstBytes = [Bool](repeating: false, count: 256)
        for (id, text) in tokens where !text.isEmpty {
            firstBytes[Int(text[0])] = true
            var node: Int32 = 0
            for byte in text {
                let key = Int64(node) << 8 | Int64(byte)
                if let child = children[key] {
                    node = child
                } else {
                    let child = Int32(terminalIds.count)
                    terminalIds.append(-1)
                    children[key] = child
                    edgeList.append((node, byte, child))
                    node = child
                }
            }
            if terminalIds[Int(node)] < 0 { terminalIds[Int(node)] = id }  // first id wins for duplicates
        }
        var table = MergePairTable(capacityFor: edgeList.count)
        for edge in edgeList {
            table.insertIfAbsent(left: edge.parent, right: Int32(edge.byte), rank: 0, merged: edge.child)
        }
        edges = table
        terminal = terminalIds
        startsWith = firstBytes
        isEmpty = edgeList.isEmpty
    }

    /// The longest special token starting at `position`: (id, end), or nil.
    @inline(__always)
    func longestMatch(_ bytes: UnsafeBufferPointer<UInt8>, at position: Int, before limit: Int? = nil) -> (id: Int32, end: Int)? {
        guard !isEmpty, startsWith[Int(bytes[position])] else { return nil }
        let limit = limit ?? bytes.count
        var node: Int32 = 0
        var best: (id: Int32, end: Int)?
        var index = position
        while index < limit, let child = edges.lookup(left: node, right: Int32(bytes[index])) {
            node = child.merged
            index += 1
            let id = terminal[Int(node)]
            if id >= 0 { best = (id, index) }
        }
        return best
    }

    /// Calls `body` with each special token found scanning left to right (leftmost-longest). Inside the
    /// `literal` byte ranges (sorted, disjoint) only `literalTokens` may match, and no match crosses a
    /// range's edge: text a user wrote there cannot become markup.
    func forEachMatch(_ bytes: UnsafeBufferPointer<UInt8>, literal: [Range<Int>] = [], literalTokens: SpecialTokenMatcher? = nil,
                      _ body: (Int32, Range<Int>) -> Void) {
        if isEmpty && literal.isEmpty { return }
        var position = 0, next = 0
        let count = bytes.count
        while position < count {
            while next < literal.count && literal[next].upperBound <= position { next += 1 }
            let inside = next < literal.count && literal[next].contains(position)
            let limit = inside ? literal[next].upperBound : (next < literal.count ? literal[next].lowerBound : count)
            if let match = (inside ? literalTokens ?? self : self).longestMatch(bytes, at: position, before: limit) {
                body(match.id, position..<match.end)
                position = match.end
            } else {
                position += 1
            }
        }
    }

    /// Cuts `bytes` into text runs and special tokens, in order (`literal` as in `forEachMatch`).
    func partition(_ bytes: UnsafeBufferPointer<UInt8>, literal: [Range<Int>] = [], literalTokens: SpecialTokenMatcher? = nil,
                   _ body: (Fragment) -> Void) {
        var textStart = 0
        forEachMatch(bytes, literal: literal, literalTokens: literalTokens) { id, range in
            if textStart < range.lowerBound { body(.text(textStart..<range.lowerBound)) }
            body(.token(id))
            textStart = range.upperBound
        }
        if textStart < bytes.count { body(.text(textStart..<bytes.count)) }
    }

    /// The special tokens `partition` would cut out of `bytes`, with their byte ranges.
    func matches(_ bytes: UnsafeBufferPointer<UInt8>) -> [(id: Int32, range: Range<Int>)] {
        var found: [(id: Int32, range: Range<Int>)] = []
        forEachMatch(bytes) { found.append(($0, $1)) }
        return found
    }

    enum Fragment {
        case text(Range<Int>)
        case token(Int32)
    }
}
