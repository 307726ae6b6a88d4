// The inside of a JSON string, one byte at a time, as a parser reads it and a validator counts it:
// escapes, \u escapes (a surrogate pair is one character: JSON Schema's lengths count code points), and
// well-formed UTF-8 only (no stray continuation bytes, overlong forms, UTF-16 surrogates or code points
// past U+10FFFF), so a constrained string always decodes.

struct JSONStringCursor: Sendable {
    enum Escape: UInt8, Sendable { case none, backslash, hex }
    enum Step { case more, closed, invalid }

    /// Characters (code points) so far.
    private(set) var length = 0
    private var escape = Escape.none
    private var hexLeft: UInt8 = 0
    private var hexValue: UInt16 = 0
    /// The last character was a \u escape of a high surrogate: a low one right after completes it.
    private var afterHighSurrogate = false
    /// Continuation bytes the current UTF-8 character still needs, and the range the next one must lie in.
    private var utf8Left: UInt8 = 0
    private var nextLow: UInt8 = 0x80, nextHigh: UInt8 = 0xBF

    /// Whether a closing quote may come now (no escape or character left open).
    var canClose: Bool { escape == .none && utf8Left == 0 }

    private mutating func count(_ maxLength: Int) -> Step {
        afterHighSurrogate = false
        length += 1
        return length <= maxLength ? .more : .invalid
    }

    /// Reads `b`: .closed for the closing quote, .invalid when `b` cannot come here (or the string would
    /// pass `maxLength` characters).
    mutating func step(_ b: UInt8, maxLength: Int) -> Step {
        if utf8Left > 0 {
            guard b >= nextLow && b <= nextHigh else { return .invalid }
            utf8Left -= 1
            nextLow = 0x80; nextHigh = 0xBF
            return .more
        }
        switch escape {
        case .backslash:
            if b == 0x75 { escape = .hex; hexLeft = 4; hexValue = 0; return .more }   // \u
            guard [0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74].contains(b) else { return .invalid }
            escape = .none
            return count(maxLength)
        case .hex:
            let digit: UInt8
            switch b {
            case 0x30...0x39: digit = b - 0x30
            case 0x41...0x46: digit = b - 0x41 + 10
            case 0x61...0x66: digit = b - 0x61 + 10
            default: return .invalid
            }
            hexValue = hexValue << 4 | UInt16(digit)
            hexLeft -= 1
            guard hexLeft == 0 else { return .more }
            escape = .none
            if (0xDC00...0xDFFF).contains(hexValue) && afterHighSurrogate {
                afterHighSurrogate = false   // the pair's second half: the same character
                return .more
            }
            let step = count(maxLength)
            afterHighSurrogate = (0xD800...0xDBFF).contains(hexValue)
            return step
        case .none:
            switch b {
            case 0x22: return .closed
            case 0x5C: escape = .backslash; return .more
            case 0x00..<0x20: return .invalid
            case 0x20..<0x80: return count(maxLength)
            case 0xC2...0xDF: utf8Left = 1
            case 0xE0: utf8Left = 2; nextLow = 0xA0
            case 0xED: utf8Left = 2; nextHigh = 0x9F
            case 0xE1...0xEF: utf8Left = 2
            case 0xF0: utf8Left = 3; nextLow = 0x90
            case 0xF4: utf8Left = 3; nextHigh = 0x8F
            case 0xF1...0xF3: utf8Left = 3
            default: return .invalid   // continuation bytes, C0, C1, F5…FF
            }
            return count(maxLength)
        }
    }
}
