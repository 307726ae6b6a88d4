/// A `SplitPattern` compiled to a small backtracking program (Oniguruma's leftmost-alternative,
/// greedy-first semantics), matched against the scalars of one piece.
///
/// Instructions: `set` consumes one scalar of a set; `split(a, b)` tries `a` and keeps `b` to
/// backtrack to; `jump`; `look` runs a lookahead's own program at the current position; `atomic` runs a
/// subprogram to its first match and never backtracks into it (atomic groups, possessive quantifiers);
/// `anchor` tests a position. Sets keep a bitmap of the Basic Multilingual Plane.
struct SplitProgram: Sendable {
    enum Instruction: Sendable {
        case set(Int32)
        case split(Int32, Int32)
        case jump(Int32)
        case look(program: Int32, negative: Bool)
        case atomic(program: Int32)
        case anchor(SplitPattern.Anchor)
        case match
    }

    /// A set with its BMP membership precomputed (1024 words of 64 bits).
    struct CompiledSet: Sendable {
        let bitmap: [UInt64]
        let set: ScalarSet

        init(_ set: ScalarSet) {
            var bitmap = [UInt64](repeating: 0, count: 1024)
            for value in 0..<0x10000 where set.contains(UInt32(value)) {
                bitmap[value >> 6] |= 1 << UInt64(value & 63)
            }
            self.bitmap = bitmap
            self.set = set
        }

        @inline(__always)
        func contains(_ value: UInt32) -> Bool {
            if value < 0x10000 {
                return bitmap.withUnsafeBufferPointer { $0[Int(value >> 6)] >> UInt64(value & 63) & 1 != 0 }
            }
            return set.contains(value)
        }
    }

    let source: String
    /// Program 0 is the pattern; the others are lookahead and atomic bodies.
    let programs: [[Instruction]]
    let sets: [CompiledSet]

    init(_ pattern: SplitPattern) throws {
        var compiler = Compiler(source: pattern.source)
        _ = try compiler.program(pattern.root)
        source = pattern.source
        programs = compiler.programs.map { $0! }
        sets = compiler.sets.map(CompiledSet.init)
    }

    init(_ source: String) throws {
        try self.init(SplitPattern(source))
    }

    /// Where a match starting at `index` ends (nil: none), in the piece `start..<end` of `scalars`.
    /// `stack` is scratch space, reused between calls.
    func matchEnd(_ scalars: UnsafeBufferPointer<UInt32>, _ index: Int, _ start: Int, _ end: Int,
                  _ stack: inout [Int32]) -> Int? {
        run(0, scalars, index, start, end, &stack)
    }

    private func run(_ program: Int, _ scalars: UnsafeBufferPointer<UInt32>, _ index: Int, _ start: Int, _ end: Int,
                     _ stack: inout [Int32]) -> Int? {
        let base = stack.count
        defer { stack.removeSubrange(base...) }
        return programs[program].withUnsafeBufferPointer { code -> Int? in
            var pc = 0
            var position = index
            while true {
                var ok = true
                switch code[pc] {
                case .set(let set):
                    if position < end && sets[Int(set)].contains(scalars[position]) {
                        position += 1
                        pc += 1
                    } else {
                        ok = false
                    }
                case .split(let first, let second):
                    stack.append(second)
                    stack.append(Int32(position))
                    pc = Int(first)
                case .jump(let target):
                    pc = Int(target)
                case .look(let body, let negative):
                    let found = run(Int(body), scalars, position, start, end, &stack) != nil
                    if found != negative { pc += 1 } else { ok = false }
                case .atomic(let body):
                    if let bodyEnd = run(Int(body), scalars, position, start, end, &stack) {
                        position = bodyEnd
                        pc += 1
                    } else {
                        ok = false
                    }
                case .anchor(let anchor):
                    if holds(anchor, scalars, position, start, end) { pc += 1 } else { ok = false }
                case .match:
                    return position
                }
                if !ok {
                    if stack.count == base { return nil }
                    position = Int(stack.removeLast())
                    pc = Int(stack.removeLast())
                }
            }
        }
    }

    private func holds(_ anchor: SplitPattern.Anchor, _ scalars: UnsafeBufferPointer<UInt32>, _ position: Int,
                       _ start: Int, _ end: Int) -> Bool {
        switch anchor {
        case .lineStart: return position == start || scalars[position - 1] == 0x0A
        case .lineEnd: return position == end || scalars[position] == 0x0A
        case .textStart: return position == start
        case .textEnd: return position == end
        case .textEndOrFinalNewline: return position == end || (position + 1 == end && scalars[position] == 0x0A)
        case .wordBoundary, .notWordBoundary:
            let before = position > start && GeneralCategories.isWord(scalars[position - 1])
            let after = position < end && GeneralCategories.isWord(scalars[position])
            return (before != after) == (anchor == .wordBoundary)
        }
    }
}

/// Emits the instructions of each program; subprograms are reserved first so indices stay stable.
private struct Compiler {
    let source: String
    var programs: [[SplitProgram.Instruction]?] = []
    var sets: [ScalarSet] = []

    init(source: String) { self.source = source }

    func fail(_ reason: String) -> SplitPatternError { SplitPatternError(pattern: source, reason: reason) }

    /// Compiles `node` as a program of its own ending in `match`; returns its index.
    mutating func program(_ node: SplitPattern.Node) throws -> Int32 {
        let index = programs.count
        programs.append(nil)
        var code: [SplitProgram.Instruction] = []
        try emit(node, into: &code)
        code.append(.match)
        if code.count > 100_000 { throw fail("compiles to more than 100000 instructions") }
        programs[index] = code
        return Int32(index)
    }

    mutating func emit(_ node: SplitPattern.Node, into code: inout [SplitProgram.Instruction]) throws {
        switch node {
        case .empty:
            break
        case .set(let set):
            code.append(.set(Int32(sets.count)))
            sets.append(set)
        case .concat(let items):
            for item in items { try emit(item, into: &code) }
        case .alternate(let branches):
            // split(b1, next1); b1; jump end; next1: split(b2, next2); b2; jump end; ... last branch.
            var jumps: [Int] = []
            for (index, branch) in branches.enumerated() {
                if index + 1 < branches.count {
                    let split = code.count
                    code.append(.split(0, 0))
                    try emit(branch, into: &code)
                    jumps.append(code.count)
                    code.append(.jump(0))
                    code[split] = .split(Int32(split + 1), Int32(code.count))
                } else {
                    try emit(branch, into: &code)
                }
            }
            for jump in jumps { code[jump] = .jump(Int32(code.count)) }
        case .lookahead(let body, let negative):
            code.append(.look(program: try program(body), negative: negative))
        case .atomic(let body):
            code.append(.atomic(program: try program(body)))
        case .anchor(let anchor):
            code.append(.anchor(anchor))
        case .quantified(let body, let min, let max, let mode):
            if mode == .possessive {
                code.append(.atomic(program: try program(.quantified(body, min: min, max: max, mode: .greedy))))
                return
            }
            for _ in 0..<min { try emit(body, into: &code) }
            if let max {
                // Nested optionals: each further copy is tried (greedy) or skipped (lazy) first, and
                // failing one skips all the rest.
                var exits: [Int] = []
                for _ in min..<max {
                    exits.append(code.count)
                    code.append(.split(0, 0))
                    try emit(body, into: &code)
                }
                let end = Int32(code.count)
                for exit in exits {
                    code[exit] = mode == .greedy ? .split(Int32(exit + 1), end) : .split(end, Int32(exit + 1))
                }
            } else {
                if Compiler.canMatchEmpty(body) { throw fail("an unbounded repeat of something that can match nothing") }
                let loop = code.count
                code.append(.split(0, 0))
                try emit(body, into: &code)
                code.append(.jump(Int32(loop)))
                let exit = Int32(code.count)
                code[loop] = mode == .greedy ? .split(Int32(loop + 1), exit) : .split(exit, Int32(loop + 1))
            }
        }
    }

    static func canMatchEmpty(_ node: SplitPattern.Node) -> Bool {
        switch node {
        case .set: return false
        case .empty, .lookahead, .anchor: return true
        case .concat(let items): return items.allSatisfy(canMatchEmpty)
        case .alternate(let branches): return branches.contains(where: canMatchEmpty)
        case .atomic(let body): return canMatchEmpty(body)
        case .quantified(let body, let min, _, _): return min == 0 || canMatchEmpty(body)
        }
    }
}
