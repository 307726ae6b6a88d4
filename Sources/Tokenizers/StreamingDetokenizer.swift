/// Turns generated token ids into text as they arrive, never splitting a UTF-8 character: a token can
/// end in the middle of a character (byte-level BPE, byte-fallback tokens), so bytes that may still
/// become a character are held back until the next token completes them (or `flush`).
///
/// The pieces concatenate to exactly `tokenizer.decode(ids, skipSpecial:)`: bytes are released only up to
/// a point after which decoding cannot change, and malformed bytes become U+FFFD the same way.
public struct StreamingDetokenizer {
    public let tokenizer: Tokenizer
    public let skipSpecial: Bool
    private var pending: [UInt8] = []
    private var isFirst = true

    public init(tokenizer: Tokenizer, skipSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// Adds one token; returns the text that is now complete (possibly empty).
    public mutating func push(_ id: Int32) -> String {
        tokenizer.appendPiece(id, skipSpecial: skipSpecial, isFirst: &isFirst, to: &pending)
        let ready = pending.count - StreamingDetokenizer.incompleteTailLength(pending)
        if ready == 0 { return "" }
        let text = String(decoding: pending[0..<ready], as: UTF8.self)
        pending.removeFirst(ready)
        return text
    }

    /// Returns whatever is held back (an unfinished character becomes U+FFFD) and starts over.
    public mutating func flush() -> String {
        let text = String(decoding: pending, as: UTF8.self)
        pending.removeAll()
        isFirst = true
        return text
    }

    /// Length of the longest suffix of `bytes` that is a proper prefix of a well-formed UTF-8 sequence
    /// (a lead byte plus fewer continuation bytes than it needs, each in the range Unicode allows at
    /// that place). Only such a suffix can still change meaning when more bytes arrive.
    static func incompleteTailLength(_ bytes: [UInt8]) -> Int {
        let count = bytes.count
        var back = 1
        while back <= min(3, count) {
            let lead = bytes[count - back]
            if lead & 0xC0 == 0x80 {  // continuation byte: keep looking for the lead
                back += 1
                continue
            }
            let needed: Int
            switch lead {
            case 0xC2...0xDF: needed = 2
            case 0xE0...0xEF: needed = 3
            case 0xF0...0xF4: needed = 4
            default: return 0  // ASCII or a byte that can never start a sequence
            }
            guard back < needed else { return 0 }  // the sequence is complete
            // Second byte ranges that keep the sequence well-formed (Unicode Table 3-7).
            if back >= 2 {
                let second = bytes[count - back + 1]
                let range: ClosedRange<UInt8>
                switch lead {
                case 0xE0: range = 0xA0...0xBF
                case 0xED: range = 0x80...0x9F
                case 0xF0: range = 0x90...0xBF
                case 0xF4: range = 0x80...0x8F
                default: range = 0x80...0xBF
                }
                if !range.contains(second) { return 0 }
            }
            return back
        }
        return 0
    }
}
