// Incremental JSON recogniser driven by a compiled JSONSchema: a pushdown automaton over bytes that
// accepts exactly the prefixes of JSON texts the schema allows. Constrained decoding feeds it each
// candidate token's bytes (on a copy) and keeps only tokens it accepts; end of generation is allowed
// once the value is complete. Whitespace between tokens is allowed but limited (a run of at most 24
// bytes), so a model cannot loop on blanks.

public struct JSONConstraint: Sendable {
    public let schema: JSONSchema

    enum ObjectPhase: UInt8, Sendable { case open, key, afterKey, afterValue, afterComma }
    enum ArrayPhase: UInt8, Sendable { case open, afterValue, afterComma }
    enum NumberPhase: UInt8, Sendable { case start, minus, zero, int, dot, frac, exp, expSign, expDigits }
    enum StringEscape: UInt8, Sendable { case none, backslash, hex }

    enum Frame: Sendable {
        case value(node: Int)
        case object(node: Int, phase: ObjectPhase, seen: [[UInt8]], key: [UInt8])
        case array(node: Int, phase: ArrayPhase, count: Int)
        case string(node: Int, length: Int, escape: StringEscape, hexLeft: Int)
        case number(integer: Bool, phase: NumberPhase)
        case literal(candidates: [[UInt8]], matched: Int)
    }

    private var stack: [Frame]
    private var blanks = 0
    static let maxBlanks = 24

    public init(schema: JSONSchema) {
        self.schema = schema
        stack = [.value(node: schema.root)]
    }

    /// The value is finished: nothing more may follow.
    public var isFinished: Bool { stack.isEmpty }

    /// The bytes so far form a whole value (a number or literal at the end may still go on).
    public var isComplete: Bool {
        if stack.isEmpty { return true }
        guard stack.count == 1 else { return false }
        switch stack[0] {
        case .number(_, let phase): return JSONConstraint.numberCanEnd(phase)
        case .literal(let candidates, let matched): return candidates.contains { $0.count == matched }
        default: return false
        }
    }

    /// Whether `bytes` may come next (the state is unchanged).
    public func accepts(_ bytes: [UInt8]) -> Bool {
        var copy = self
        return copy.feed(bytes)
    }

    /// Consumes `bytes`; false (state undefined) when they do not fit.
    public mutating func feed(_ bytes: [UInt8]) -> Bool {
        for b in bytes where !feed(byte: b) { return false }
        return true
    }

    static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func numberCanEnd(_ p: NumberPhase) -> Bool { p == .zero || p == .int || p == .frac || p == .expDigits }

    private mutating func blank() -> Bool {
        blanks += 1
        return blanks <= JSONConstraint.maxBlanks
    }

    /// The value frame on top has completed: pop it (its parent continues).
    private mutating func pop() { stack.removeLast() }

    mutating func feed(byte b: UInt8) -> Bool {
        // A byte may complete the top frame (number, literal) and then be handled by the parent.
        while true {
            guard let top = stack.last else { return false }   // after the value: nothing more
            if !JSONConstraint.isBlank(b) { blanks = 0 }
            switch top {
            case .value(let node):
                if JSONConstraint.isBlank(b) { return blank() }
                guard let next = start(node, b) else { return false }
                stack[stack.count - 1] = next
                switch next {
                case .object, .array, .string: return true   // b was the opening bracket or quote
                default: continue                            // numbers and literals read b themselves
                }

            case .object(let node, let phase, let seen, let key):
                let n = schema[node]
                switch phase {
                case .open, .afterComma:
                    if JSONConstraint.isBlank(b) { return blank() }
                    if b == 0x22 {   // "
                        stack[stack.count - 1] = .object(node: node, phase: .key, seen: seen, key: [])
                        return true
                    }
                    if b == 0x7D, phase == .open, n.required.isSubset(of: Set(seen)) { pop(); return true }   // }
                    return false
                case .key:
                    if b == 0x22 {
                        guard !seen.contains(key), n.properties.contains(where: { $0.name == key }) || n.additional != nil else { return false }
                        stack[stack.count - 1] = .object(node: node, phase: .afterKey, seen: seen + [key], key: key)
                        return true
                    }
                    guard b >= 0x20, b != 0x5C else { return false }   // no control bytes or escapes in keys
                    let k = key + [b]
                    if n.additional == nil {
                        guard n.properties.contains(where: { $0.name.starts(with: k) && !seen.contains($0.name) }) else { return false }
                    }
                    stack[stack.count - 1] = .object(node: node, phase: .key, seen: seen, key: k)
                    return true
                case .afterKey:
                    if JSONConstraint.isBlank(b) { return blank() }
                    guard b == 0x3A else { return false }   // :
                    let child = n.properties.first { $0.name == key }?.node ?? n.additional!
                    stack[stack.count - 1] = .object(node: node, phase: .afterValue, seen: seen, key: [])
                    stack.append(.value(node: child))
                    return true
                case .afterValue:
                    if JSONConstraint.isBlank(b) { return blank() }
                    if b == 0x2C {   // , only if another key may follow
                        let more = n.additional != nil || n.properties.contains { !seen.contains($0.name) }
                        guard more else { return false }
                        stack[stack.count - 1] = .object(node: node, phase: .afterComma, seen: seen, key: [])
                        return true
                    }
                    if b == 0x7D, n.required.isSubset(of: Set(seen)) { pop(); return true }
                    return false
                }

            case .array(let node, let phase, let count):
                let n = schema[node]
                if JSONConstraint.isBlank(b) { return blank() }
                switch phase {
                case .open, .afterComma:
                    if b == 0x5D, phase == .open, count >= n.minItems { pop(); return true }   // ]
                    guard count < n.maxItems else { return false }
                    let item = count < n.prefixItems.count ? n.prefixItems[count] : (n.items ?? node)
                    stack[stack.count - 1] = .array(node: node, phase: .afterValue, count: count + 1)
                    stack.append(.value(node: item))
                    continue
                case .afterValue:
                    if b == 0x2C, count < n.maxItems { stack[stack.count - 1] = .array(node: node, phase: .afterComma, count: count); return true }
                    if b == 0x5D, count >= n.minItems { pop(); return true }
                    return false
                }

            case .string(let node, let length, let escape, let hexLeft):
                let n = schema[node]
                switch escape {
                case .backslash:
                    if b == 0x75 { stack[stack.count - 1] = .string(node: node, length: length, escape: .hex, hexLeft: 4); return true }
                    guard [0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74].contains(b), length + 1 <= n.maxLength else { return false }
                    stack[stack.count - 1] = .string(node: node, length: length + 1, escape: .none, hexLeft: 0)
                    return true
                case .hex:
                    let hex = JSONConstraint.isDigit(b) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x66)
                    guard hex else { return false }
                    if hexLeft > 1 { stack[stack.count - 1] = .string(node: node, length: length, escape: .hex, hexLeft: hexLeft - 1); return true }
                    guard length + 1 <= n.maxLength else { return false }
                    stack[stack.count - 1] = .string(node: node, length: length + 1, escape: .none, hexLeft: 0)
                    return true
                case .none:
                    if b == 0x22 {
                        guard length >= n.minLength else { return false }
                        pop()
                        return true
                    }
                    if b == 0x5C { stack[stack.count - 1] = .string(node: node, length: length, escape: .backslash, hexLeft: 0); return true }
                    guard b >= 0x20 else { return false }
                    let isNewChar = b & 0xC0 != 0x80   // UTF-8 continuation bytes belong to the previous character
                    if isNewChar { guard length + 1 <= n.maxLength else { return false } }
                    stack[stack.count - 1] = .string(node: node, length: length + (isNewChar ? 1 : 0), escape: .none, hexLeft: 0)
                    return true
                }

            case .number(let integer, let phase):
                let digit = JSONConstraint.isDigit(b)
                var next: NumberPhase?
                switch phase {
                case .start: next = b == 0x2D ? .minus : (b == 0x30 ? .zero : (digit ? .int : nil))
                case .minus: next = b == 0x30 ? .zero : (digit ? .int : nil)
                case .zero: next = (!integer && b == 0x2E) ? .dot : ((!integer && (b | 0x20) == 0x65) ? .exp : nil)
                case .int: next = digit ? .int : ((!integer && b == 0x2E) ? .dot : ((!integer && (b | 0x20) == 0x65) ? .exp : nil))
                case .dot: next = digit ? .frac : nil
                case .frac: next = digit ? .frac : ((b | 0x20) == 0x65 ? .exp : nil)
                case .exp: next = (b == 0x2B || b == 0x2D) ? .expSign : (digit ? .expDigits : nil)
                case .expSign: next = digit ? .expDigits : nil
                case .expDigits: next = digit ? .expDigits : nil
                }
                if let next {
                    stack[stack.count - 1] = .number(integer: integer, phase: next)
                    return true
                }
                guard JSONConstraint.numberCanEnd(phase), stack.count > 1 else { return false }
                pop()
                continue

            case .literal(let candidates, let matched):
                let rest = candidates.filter { $0.count > matched && $0[matched] == b }
                if !rest.isEmpty {
                    stack[stack.count - 1] = .literal(candidates: rest, matched: matched + 1)
                    return true
                }
                guard candidates.contains(where: { $0.count == matched }), stack.count > 1 else { return false }
                pop()
                continue
            }
        }
    }

    /// The frame a value of `node` starting with byte `b` becomes (nil: no value may start so).
    private func start(_ node: Int, _ b: UInt8) -> Frame? {
        let n = schema[node]
        if let literals = n.literals {
            let fits = literals.filter { $0.first == b }
            return fits.isEmpty ? nil : .literal(candidates: fits, matched: 0)
        }
        let kind: JSONKinds
        switch b {
        case 0x7B: kind = .object
        case 0x5B: kind = .array
        case 0x22: kind = .string
        case 0x74, 0x66: kind = .boolean
        case 0x6E: kind = .null
        case 0x2D, 0x30...0x39: kind = [.number, .integer]
        default: return nil
        }
        if !n.branches.isEmpty {
            guard let branch = n.branches.first(where: { !$0.kinds.intersection(kind).isEmpty }) else { return nil }
            return start(branch.node, b)
        }
        guard !n.kinds.intersection(kind).isEmpty else { return nil }
        switch b {
        case 0x7B: return .object(node: node, phase: .open, seen: [], key: [])
        case 0x5B: return .array(node: node, phase: .open, count: 0)
        case 0x22: return .string(node: node, length: 0, escape: .none, hexLeft: 0)
        case 0x74, 0x66: return .literal(candidates: [Array("true".utf8), Array("false".utf8)].filter { $0.first == b }, matched: 0)
        case 0x6E: return .literal(candidates: [Array("null".utf8)], matched: 0)
        default: return .number(integer: !n.kinds.contains(.number), phase: .start)
        }
    }
}
