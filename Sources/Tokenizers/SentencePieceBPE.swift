/// SentencePiece BPE (GGUF `tokenizer.ggml.model == "llama"`), llama.cpp's `llm_tokenizer_spm_session`.
///
/// The text (spaces already escaped as "▁", U+2581) starts as one symbol per UTF-8 character. Every
/// adjacent pair whose concatenation is a vocabulary piece is a candidate scored by that piece's score;
/// the best candidate (highest score, leftmost on ties) is merged, and the new neighbours become
/// candidates, until none is left. A final symbol that is not a piece is written as byte tokens
/// `<0xAB>` (byte fallback).
///
/// Candidate pieces are the ones SentencePiece itself merges into: normal, user-defined and undefined
/// types. llama.cpp also accepts control and byte pieces here ("<0x41>" spelled out in the text would
/// merge into the byte token); SentencePiece and the Hugging Face tokenizer do not, and neither does this.
struct SentencePieceBPE: Sendable {
    let scores: [Float]
    /// Whether a piece may be the result of a merge (see above).
    let mergeable: [Bool]
    /// Token of each byte for byte fallback: `<0xAB>`, else the byte itself as a piece, else unknown.
    let byteFallback: [Int32]

    /// Appends the tokens of `text` (UTF-8 with spaces already escaped) to `output`.
    func encode(_ text: UnsafeBufferPointer<UInt8>, _ table: ByteStringTable, _ scratch: inout PieceScratch,
                _ output: inout [Int32]) {
        let byteCount = text.count
        if byteCount == 0 { return }
        let base = text.baseAddress!
        scratch.reset()
        // One symbol per UTF-8 character (a malformed lead byte counts as one byte, as in llama.cpp).
        var offset = 0
        while offset < byteCount {
            let lead = base[offset]
            let length = min(lead < 0x80 ? 1 : lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4, byteCount - offset)
            scratch.append(start: offset, length: length)
            offset += length
        }
        let count = scratch.starts.count
        for index in 1..<max(count, 1) {
            pushPair(index - 1, index, base, table, &scratch)
        }
        while let top = scratch.heap.popFirst() {
            let left = Int(top.left), right = Int(top.right)
            let leftLength = scratch.lengths[left], rightLength = scratch.lengths[right]
            // Stale: a side was merged away or grew since the candidate was queued.
            guard leftLength != 0, rightLength != 0, leftLength + rightLength == top.size else { continue }
            scratch.lengths[left] = top.size
            scratch.lengths[right] = 0
            scratch.ids[left] = top.piece
            let after = scratch.next[right]
            scratch.next[left] = after
            if after >= 0 { scratch.previous[Int(after)] = Int32(left) }
            let before = scratch.previous[left]
            if before >= 0 { pushPair(Int(before), left, base, table, &scratch) }
            if after >= 0 { pushPair(left, Int(after), base, table, &scratch) }
        }
        var index = 0
        while index >= 0 {
            var id = scratch.ids[index]
            let start = Int(scratch.starts[index]), length = Int(scratch.lengths[index])
            if id < 0 { id = table.lookup(base + start, length) }
            if id >= 0 {
                output.append(id)
            } else {
                for byte in 0..<length { output.append(byteFallback[Int(base[start + byte])]) }
            }
            index = Int(scratch.next[index])
        }
    }

    @inline(__always)
    private func pushPair(_ left: Int, _ right: Int, _ base: UnsafePointer<UInt8>, _ table: ByteStringTable,
                          _ scratch: inout PieceScratch) {
        let start = Int(scratch.starts[left])
        let size = scratch.lengths[left] + scratch.lengths[right]
        let piece = table.lookup(base + start, Int(size))
        guard piece >= 0, mergeable[Int(piece)] else { return }
        scratch.heap.push(PieceCandidate(score: scores[Int(piece)], left: Int32(left), right: Int32(right),
                                         size: size, piece: piece))
    }
}

/// A queued SentencePiece merge of adjacent symbols `left` and `right` into `piece` (`size` bytes).
struct PieceCandidate: HeapOrdered {
    var score: Float
    var left: Int32
    var right: Int32
    var size: Int32
    var piece: Int32

    /// Higher score first; leftmost first on ties.
    @inline(__always)
    static func comesBefore(_ a: PieceCandidate, _ b: PieceCandidate) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }
}

typealias PieceHeap = BinaryHeap<PieceCandidate>

/// Symbols of one SentencePiece run: byte start and length (0 once merged away), piece id once merged
/// (-1 for an initial character, looked up at the end), and a doubly linked list over positions.
struct PieceScratch {
    var starts: [Int32] = []
    var lengths: [Int32] = []
    var ids: [Int32] = []
    var previous: [Int32] = []
    var next: [Int32] = []
    var heap = PieceHeap()

    mutating func reset() {
        starts.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
        ids.removeAll(keepingCapacity: true)
        previous.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        heap.removeAll()
    }

    @inline(__always)
    mutating func append(start: Int, length: Int) {
        let index = Int32(starts.count)
        if index > 0 { next[Int(index) - 1] = index }
        starts.append(Int32(start))
        lengths.append(Int32(length))
        ids.append(-1)
        previous.append(index - 1)
        next.append(-1)
    }
}
