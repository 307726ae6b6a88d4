/// Byte-level BPE (GGUF `tokenizer.ggml.model == "gpt2"`).
///
/// Token texts are spelled in GPT-2's byte alphabet: each byte 0...255 is one printable Unicode
/// character (`ByteAlphabet`). A pre-tokenized piece starts as one symbol per byte; the merges then
/// repeatedly join the adjacent pair with the lowest merge rank (leftmost first on ties), exactly as
/// llama.cpp's `llm_tokenizer_bpe_session` and Hugging Face's BPE do.
///
/// Merging runs in token-id space: `(left id, right id) → (rank, merged id)` is precomputed from the
/// merge list, so no strings are built while encoding. Strings that a merge mentions but the vocabulary
/// lacks get "virtual" ids past the vocabulary, so the merge sequence is the same as on strings.
struct ByteLevelBPE: Sendable {
    /// Token id of each single byte's alphabet character (virtual id when the vocabulary lacks it).
    let byteSymbol: [Int32]
    let merges: MergePairTable
    /// Number of real tokens; ids at or past it are virtual.
    let vocabularySize: Int
    /// For each virtual id (index id - vocabularySize): the real tokens llama.cpp emits for such a
    /// symbol (it looks up each byte of the symbol's text alone).
    let virtualFallback: [[Int32]]

    init(tokenTable: ByteStringTable, merges mergeLines: [String]) {
        vocabularySize = tokenTable.count
        var builder = MergeRuleBuilder(tokenTable: tokenTable)
        byteSymbol = (0..<256).map { builder.id(of: ByteAlphabet.encoded[$0]) }
        let table = builder.table(mergeLines)
        let virtualTexts = builder.virtualTexts
        merges = table
        virtualFallback = virtualTexts.map { text in
            text.compactMap { byte -> Int32? in
                let single = tokenTable.lookup([byte])
                return single >= 0 ? single : nil
            }
        }
    }

    /// Appends the tokens of one pre-tokenized piece (raw UTF-8 bytes) to `output`.
    func encodePiece(_ bytes: UnsafeBufferPointer<UInt8>, _ scratch: inout MergeScratch, _ output: inout [Int32]) {
        let count = bytes.count
        if count == 0 { return }
        if count == 1 {
            emit(byteSymbol[Int(bytes[0])], &output)
            return
        }
        scratch.reset(count: count)
        for index in 0..<count {
            scratch.symbols[index] = byteSymbol[Int(bytes[index])]
        }
        merges.merge(&scratch)
        var index = 0
        while index >= 0 {
            emit(scratch.symbols[index], &output)
            index = Int(scratch.next[index])
        }
    }

    @inline(__always)
    private func emit(_ id: Int32, _ output: inout [Int32]) {
        if Int(id) < vocabularySize {
            output.append(id)
        } else {
            output.append(contentsOf: virtualFallback[Int(id) - vocabularySize])
        }
    }
}

/// GPT-2's byte ↔ character table: printable Latin-1 bytes (! … ~, ¡ … ¬, ® … ÿ) stand for
/// themselves; the other 68 bytes map, in order, to U+0100, U+0101, ...
enum ByteAlphabet {
    /// Character of each byte.
    static let characterOfByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// UTF-8 spelling of each byte's character.
    static let encoded: [[UInt8]] = characterOfByte.map { Array(String(Character(Unicode.Scalar($0)!)).utf8) }

    /// Byte of a character of the alphabet, or nil.
    static let byteOfCharacter: [UInt32: UInt8] = {
        var table: [UInt32: UInt8] = [:]
        for (byte, character) in characterOfByte.enumerated() { table[character] = UInt8(byte) }
        return table
    }()

    /// Raw bytes a token spelled in the alphabet stands for. A character outside the alphabet is kept as
    /// its own UTF-8 (such tokens do not occur in a well-formed byte-level vocabulary).
    static func decode(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if let byte = byteOfCharacter[scalar.value] {
                bytes.append(byte)
            } else {
                bytes.append(contentsOf: String(Character(scalar)).utf8)
            }
        }
        return bytes
    }
}

/// One queued merge: symbols `left` and `right` (adjacent when queued) holding `leftId` and `rightId`
/// would become `merged`. Ordered by rank, then by position (leftmost first).
struct MergeCandidate: HeapOrdered {
    var rank: Int32
    var left: Int32
    var right: Int32
    var leftId: Int32
    var rightId: Int32
    var merged: Int32

    @inline(__always)
    static func comesBefore(_ a: MergeCandidate, _ b: MergeCandidate) -> Bool {
        a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
    }
}

typealias MergeHeap = BinaryHeap<MergeCandidate>

extension MergePairTable {
    /// Runs the BPE merges over the symbols of `scratch` (ids set, list linked by `reset` or `link`): repeatedly
    /// joins the adjacent pair with the lowest rank, leftmost first on ties (llama.cpp's
    /// `llm_tokenizer_bpe_session` work queue). Negative ids (symbols outside the merge space) never merge.
    @inline(__always)
    func merge(_ scratch: inout MergeScratch) {
        let count = scratch.symbols.count
        if count < 2 { return }
        for index in 1..<count {
            pushPair(index - 1, index, &scratch)
        }
        while let top = scratch.heap.popFirst() {
            let left = Int(top.left), right = Int(top.right)
            // Stale entry: one side was merged into something else since it was queued.
            guard scratch.symbols[left] == top.leftId, scratch.symbols[right] == top.rightId,
                  scratch.next[left] == top.right else { continue }
            scratch.symbols[left] = top.merged
            scratch.symbols[right] = MergeScratch.deadSymbol
            let after = scratch.next[right]
            scratch.next[left] = after
            if after >= 0 { scratch.previous[Int(after)] = Int32(left) }
            let before = scratch.previous[left]
            if before >= 0 { pushPair(Int(before), left, &scratch) }
            if after >= 0 { pushPair(left, Int(after), &scratch) }
        }
    }

    @inline(__always)
    private func pushPair(_ left: Int, _ right: Int, _ scratch: inout MergeScratch) {
        let leftId = scratch.symbols[left], rightId = scratch.symbols[right]
        guard leftId >= 0, rightId >= 0, let merge = lookup(left: leftId, right: rightId) else { return }
        scratch.heap.push(MergeCandidate(
            rank: merge.rank, left: Int32(left), right: Int32(right), leftId: leftId, rightId: rightId,
            merged: merge.merged))
    }
}

/// Working arrays of one BPE merge run: symbol ids and a doubly linked list over symbol positions.
struct MergeScratch {
    static let deadSymbol: Int32 = .min
    var symbols: [Int32] = []
    var previous: [Int32] = []
    var next: [Int32] = []
    var heap = MergeHeap()

    mutating func reset(count: Int) {
        symbols.removeAll(keepingCapacity: true)
        symbols.append(contentsOf: repeatElement(0, count: count))
        link(count: count)
    }

    /// Links positions 0..<count in order and empties the heap; leaves `symbols` as they are.
    mutating func link(count: Int) {
        previous.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        heap.removeAll()
        for index in 0..<count {
            previous.append(Int32(index - 1))
            next.append(index + 1 < count ? Int32(index + 1) : -1)
        }
    }
}

/// Builds a BPE vocabulary's merge table from `tokenizer.ggml.merges` lines ("left right": split at the
/// first space after the first byte, as llama.cpp does). Texts a merge names that the vocabulary lacks
/// get "virtual" ids after the vocabulary's (they may still merge further).
struct MergeRuleBuilder {
    let tokenTable: ByteStringTable
    private(set) var virtualIds: [[UInt8]: Int32] = [:]
    private(set) var virtualTexts: [[UInt8]] = []

    init(tokenTable: ByteStringTable) { self.tokenTable = tokenTable }

    mutating func id(of text: [UInt8]) -> Int32 {
        let found = tokenTable.lookup(text)
        if found >= 0 { return found }
        if let existing = virtualIds[text] { return existing }
        let newId = Int32(tokenTable.count + virtualTexts.count)
        virtualIds[text] = newId
        virtualTexts.append(text)
        return newId
    }

    mutating func table(_ mergeLines: [String]) -> MergePairTable {
        var table = MergePairTable(capacityFor: mergeLines.count)
        for (rank, line) in mergeLines.enumerated() {
            let bytes = Array(line.utf8)
            guard bytes.count > 1, let split = bytes[1...].firstIndex(of: 0x20) else { continue }
            let left = Array(bytes[..<split])
            let right = Array(bytes[(split + 1)...])
            table.insertIfAbsent(left: id(of: left), right: id(of: right), rank: Int32(rank), merged: id(of: left + right))
        }
        return table
    }
}
