// Incremental JSON recogniser driven by a compiled JSONSchema: a pushdown automaton over bytes that
// accepts exactly the prefixes of JSON texts the schema allows. Constrained decoding feeds it each
// candidate token's bytes (on a copy) and keeps only tokens it accepts; end of generation is allowed
// once the value is complete. Whitespace between tokens is allowed but limited (a run of at most 24
// bytes), so a model cannot loop on blanks.
//
// Every byte costs bounded work: enum / const values and property names are walked in tries (one child
// lookup per byte), the properties an object has seen are bits, keys outside the listed ones are
// remembered by hash, and values nest at most `maxNesting` containers deep.

public struct JSONConstraint: Sendable {
    public let schema: JSONSchema

    enum ObjectPhase: UInt8, Sendable { case open, key, afterKey, afterValue, afterComma }
    enum ArrayPhase: UInt8, Sendable { case open, afterValue, afterComma }
    enum NumberPhase: UInt8, Sendable { case start, minus, zero, int, dot, frac, exp, expSign, expDigits }

    enum Frame: Sendable {
        case value(node: Int)
        case object(node: Int, phase: ObjectPhase, seen: IndexBits, others: [UInt64], key: KeyCursor)
        case array(node: Int, phase: ArrayPhase, count: Int)
        case string(node: Int, cursor: JSONStringCursor)
        case number(integer: Bool, phase: NumberPhase)
        case literal(trie: Int, at: Int32)
    }

    /// A key being read: where it is in the trie of listed names (-1: it left them), its FNV-1a hash,
    /// and once closed, the listed property it names (-1: an additional key).
    struct KeyCursor: Sendable {
        var text = JSONStringCursor()
        var trieNode: Int32 = -1
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var property = -1
    }

    private var stack: [Frame]
    private var blanks = 0
    static let maxBlanks = 24
    /// Containers open at once (the stack holds a frame per container plus the value being read).
    public static let maxNesting = 64

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
        case .literal(let trie, let at): return schema.tries[trie].stringEnding(at: at) != nil
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

            case .object(let node, let phase, var seen, var others, var key):
                let n = schema[node]
                switch phase {
                case .open, .afterComma:
                    if JSONConstraint.isBlank(b) { return blank() }
                    if b == 0x22 {   // "
                        let cursor = KeyCursor(trieNode: n.keys == nil ? -1 : ByteTrie.root)
                        stack[stack.count - 1] = .object(node: node, phase: .key, seen: seen, others: others, key: cursor)
                        return true
                    }
                    if b == 0x7D, phase == .open, seen.containsAll(n.required) { pop(); return true }   // }
                    return false
                case .key:
                    if b == 0x22 {
                        guard key.text.canClose else { return false }
                        if key.trieNode >= 0, let p = schema.tries[n.keys!].stringEnding(at: key.trieNode) {
                            guard !seen.contains(p) else { return false }
                            seen.insert(p)
                            key.property = p
                        } else {
                            guard n.additional != nil, !others.contains(key.hash) else { return false }
                            others.append(key.hash)
                            key.property = -1
                        }
                        stack[stack.count - 1] = .object(node: node, phase: .afterKey, seen: seen, others: others, key: key)
                        return true
                    }
                    // No escapes in keys; otherwise well-formed UTF-8, as in any string.
                    guard b != 0x5C, key.text.step(b, maxLength: Int.max) == .more else { return false }
                    if key.trieNode >= 0 { key.trieNode = schema.tries[n.keys!].child(key.trieNode, b) ?? -1 }
                    if n.additional == nil {
                        // Only listed keys: the prefix must still lead to one not written yet.
                        guard key.trieNode >= 0, !seen.containsAll(schema.tries[n.keys!].stringsBelow(key.trieNode)) else { return false }
                    }
                    key.hash = (key.hash ^ UInt64(b)) &* 0x100_0000_01b3
                    stack[stack.count - 1] = .object(node: node, phase: .key, seen: seen, others: others, key: key)
                    return true
                case .afterKey:
                    if JSONConstraint.isBlank(b) { return blank() }
                    guard b == 0x3A, stack.count < JSONConstraint.maxNesting else { return false }   // :
                    let child = key.property >= 0 ? n.properties[key.property].node : n.additional!
                    stack[stack.count - 1] = .object(node: node, phase: .afterValue, seen: seen, others: others, key: KeyCursor())
                    stack.append(.value(node: child))
                    return true
                case .afterValue:
                    if JSONConstraint.isBlank(b) { return blank() }
                    if b == 0x2C {   // , only if another key may follow
                        let more = n.additional != nil || !seen.containsAll(0..<n.properties.count)
                        guard more else { return false }
                        stack[stack.count - 1] = .object(node: node, phase: .afterComma, seen: seen, others: others, key: key)
                        return true
                    }
                    if b == 0x7D, seen.containsAll(n.required) { pop(); return true }
                    return false
                }

            case .array(let node, let phase, let count):
                let n = schema[node]
                if JSONConstraint.isBlank(b) { return blank() }
                switch phase {
                case .open, .afterComma:
                    if b == 0x5D, phase == .open, count >= n.minItems { pop(); return true }   // ]
                    guard count < n.maxItems, stack.count < JSONConstraint.maxNesting else { return false }
                    let item = count < n.prefixItems.count ? n.prefixItems[count] : (n.items ?? node)
                    stack[stack.count - 1] = .array(node: node, phase: .afterValue, count: count + 1)
                    stack.append(.value(node: item))
                    continue
                case .afterValue:
                    if b == 0x2C, count < n.maxItems { stack[stack.count - 1] = .array(node: node, phase: .afterComma, count: count); return true }
                    if b == 0x5D, count >= n.minItems { pop(); return true }
                    return false
                }

            case .string(let node, var cursor):
                let n = schema[node]
                switch cursor.step(b, maxLength: n.maxLength) {
                case .more:
                    stack[stack.count - 1] = .string(node: node, cursor: cursor)
                    return true
                case .closed:
                    guard cursor.canClose, cursor.length >= n.minLength else { return false }
                    pop()
                    return true
                case .invalid:
                    return false
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

            case .literal(let trie, let at):
                if let next = schema.tries[trie].child(at, b) {
                    stack[stack.count - 1] = .literal(trie: trie, at: next)
                    return true
                }
                guard schema.tries[trie].stringEnding(at: at) != nil, stack.count > 1 else { return false }
                pop()
                continue
            }
        }
    }

    /// The frame a value of `node` starting with byte `b` becomes (nil: no value may start so). Branches
    /// are flat (JSONSchema links them so), so this looks one level down at most.
    private func start(_ node: Int, _ b: UInt8) -> Frame? {
        let n = schema[node]
        guard n.literals == nil, !n.branches.isEmpty else { return startLeaf(node, b) }
        guard let kind = JSONConstraint.kind(startingWith: b),
              let branch = n.branches.first(where: { !$0.kinds.intersection(kind).isEmpty }) else { return nil }
        return startLeaf(branch.node, b, kinds: branch.kinds)
    }

    /// Kinds of the values that may start with `b`.
    static func kind(startingWith b: UInt8) -> JSONKinds? {
        switch b {
        case 0x7B: return .object
        case 0x5B: return .array
        case 0x22: return .string
        case 0x74, 0x66: return .boolean
        case 0x6E: return .null
        case 0x2D, 0x30...0x39: return [.number, .integer]
        default: return nil
        }
    }

    /// `kinds`: what the value may be (a branch's kinds, narrowed by its parent's type).
    private func startLeaf(_ node: Int, _ b: UInt8, kinds: JSONKinds? = nil) -> Frame? {
        let n = schema[node]
        let allowed = kinds ?? n.kinds
        if let literals = n.literals {
            return schema.tries[literals].child(ByteTrie.root, b) == nil ? nil : .literal(trie: literals, at: ByteTrie.root)
        }
        guard let kind = JSONConstraint.kind(startingWith: b), !allowed.intersection(kind).isEmpty else { return nil }
        switch b {
        case 0x7B: return .object(node: node, phase: .open, seen: IndexBits(count: n.properties.count), others: [], key: KeyCursor())
        case 0x5B: return .array(node: node, phase: .open, count: 0)
        case 0x22: return .string(node: node, cursor: JSONStringCursor())
        case 0x74, 0x66: return .literal(trie: JSONSchema.booleanTrie, at: ByteTrie.root)
        case 0x6E: return .literal(trie: JSONSchema.nullTrie, at: ByteTrie.root)
        default: return .number(integer: !allowed.contains(.number), phase: .start)
        }
    }
}
