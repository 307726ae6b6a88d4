/// The Unicode classes the pre-tokenizer regexes ask about, one flag byte per scalar.
///
/// `\p{L}` letter (Lu Ll Lt Lm Lo), `\p{N}` number (Nd Nl No), `\p{M}` mark (Mn Mc Me),
/// `\p{P}` punctuation (Pc Pd Ps Pe Pi Pf Po), `\p{S}` symbol (Sm Sc Sk So), and `\s`: the
/// White_Space property (U+0009–000D, U+0020, U+0085, U+00A0, Zs, U+2028, U+2029), which is what
/// Oniguruma's `\s` and llama.cpp's whitespace flag both mean.
enum UnicodeClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let mark: UInt8 = 4
    static let punctuation: UInt8 = 8
    static let symbol: UInt8 = 16
    static let whitespace: UInt8 = 32

    /// Flags of every BMP scalar, computed once (65,536 look-ups of the standard library's tables).
    static let basicPlane: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 0x10000)
        for value in 0..<0x10000 {
            if let scalar = Unicode.Scalar(UInt32(value)) {
                table[value] = computeFlags(scalar)
            }
        }
        return table
    }()

    static func computeFlags(_ scalar: Unicode.Scalar) -> UInt8 {
        let properties = scalar.properties
        var flags: UInt8 = properties.isWhitespace ? whitespace : 0
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            flags |= letter
        case .decimalNumber, .letterNumber, .otherNumber:
            flags |= number
        case .nonspacingMark, .spacingMark, .enclosingMark:
            flags |= mark
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            flags |= punctuation
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            flags |= symbol
        default:
            break
        }
        return flags
    }

    @inline(__always)
    static func flags(of value: UInt32) -> UInt8 {
        if value < 0x10000 {
            return basicPlane.withUnsafeBufferPointer { $0[Int(value)] }
        }
        guard let scalar = Unicode.Scalar(value) else { return 0 }
        return computeFlags(scalar)
    }
}

/// A piece of UTF-8 text decoded once into scalars, with each scalar's class flags and byte offset,
/// so the pre-tokenizer scanners index scalars while the BPE works on the byte ranges.
/// Buffers are reused from one fragment to the next.
struct DecodedText {
    /// Unicode scalar values.
    var scalars: [UInt32] = []
    /// `UnicodeClass` flags of each scalar.
    var flags: [UInt8] = []
    /// Byte offset of each scalar in the source UTF-8, plus one final entry: the end offset.
    var byteOffsets: [Int32] = []

    /// Decodes valid UTF-8 `bytes[range]` (it comes from a Swift `String`). Offsets are absolute.
    mutating func decode(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        scalars.removeAll(keepingCapacity: true)
        flags.removeAll(keepingCapacity: true)
        byteOffsets.removeAll(keepingCapacity: true)
        var index = range.lowerBound
        let end = range.upperBound
        while index < end {
            let lead = bytes[index]
            var value: UInt32
            var length: Int
            if lead < 0x80 {
                value = UInt32(lead); length = 1
            } else if lead < 0xE0 {
                value = UInt32(lead & 0x1F); length = 2
            } else if lead < 0xF0 {
                value = UInt32(lead & 0x0F); length = 3
            } else {
                value = UInt32(lead & 0x07); length = 4
            }
            if index + length > end { length = end - index }
            var continuation = 1
            while continuation < length {
                value = value << 6 | UInt32(bytes[index + continuation] & 0x3F)
                continuation += 1
            }
            scalars.append(value)
            flags.append(UnicodeClass.flags(of: value))
            byteOffsets.append(Int32(index))
            index += length
        }
        byteOffsets.append(Int32(end))
    }
}
