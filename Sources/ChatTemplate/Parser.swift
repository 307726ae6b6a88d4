/// Recursive-descent parser producing `Statement`s, following jinja2's `Parser` production by
/// production (operator precedence, tuple rules, test-argument rules, error messages).
struct Parser {
    private let tokens: [Token]
    private var index = 0
    /// Open block tags, innermost last (for "the innermost block that needs to be closed is ...").
    private var tagStack: [String] = []
    /// End tags the enclosing `subparse` calls are looking for.
    private var endTokenStack: [[String]] = []
    private var loopDepth = 0
    private var nestingDepth = 0
    /// Limit on the parse tree's depth (block nesting plus expression depth, where every operator in
    /// a chain like `a + b + c` counts as a level, because evaluating it recurses that deep). Deeper
    /// templates are rejected instead of risking stack exhaustion while parsing or rendering.
    static let maximumNesting = 100

    init(tokens: [Token]) { self.tokens = tokens }

    static func parse(_ source: String) throws -> [Statement] {
        var parser = Parser(tokens: try Lexer.tokenize(source))
        let body = try parser.subparse(endTokens: nil)
        if case .endOfInput = parser.current.kind {} else {
            throw parser.failure("unexpected \(describe(parser.current))")
        }
        try TemplateValidator.validate(body)
        return ConstantFolder.fold(body)
    }

    // MARK: - Token stream

    private var current: Token { tokens[index] }

    private func peek(_ offset: Int = 1) -> Token {
        tokens[min(index + offset, tokens.count - 1)]
    }

    private mutating func advance() -> Token {
        let token = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    private func isName(_ name: String, _ token: Token? = nil) -> Bool {
        if case .name(let value) = (token ?? current).kind { return value == name }
        return false
    }

    private func isOp(_ op: String, _ token: Token? = nil) -> Bool {
        if case .op(let value) = (token ?? current).kind { return value == op }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        if isName(name) {
            _ = advance()
            return true
        }
        return false
    }

    private mutating func skipOp(_ op: String) -> Bool {
        if isOp(op) {
            _ = advance()
            return true
        }
        return false
    }

    private func failure(_ message: String, at position: SourcePosition? = nil) -> ChatTemplateError {
        let where_ = position ?? current.position
        return ChatTemplateError(.syntax, message, line: where_.line, column: where_.column)
    }

    static func describe(_ token: Token) -> String {
        switch token.kind {
        case .data: return "template data / text"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name(let name): return name
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .op(let op): return op
        case .endOfInput: return "end of template"
        }
    }

    private static func describeExpected(_ expected: String) -> String {
        switch expected {
        case "variable_end": return "end of print statement"
        case "block_end": return "end of statement block"
        case "name": return "name"
        default: return expected
        }
    }

    private mutating func expectOp(_ op: String) throws {
        guard isOp(op) else { throw unexpected(expected: op) }
        _ = advance()
    }

    private mutating func expectBlockEnd() throws {
        guard case .blockEnd = current.kind else { throw unexpected(expected: "end of statement block") }
        _ = advance()
    }

    private mutating func expectVariableEnd() throws {
        guard case .variableEnd = current.kind else { throw unexpected(expected: "end of print statement") }
        _ = advance()
    }

    private mutating func expectName() throws -> String {
        guard case .name(let name) = current.kind else { throw unexpected(expected: "name") }
        _ = advance()
        return name
    }

    private mutating func expectName(_ name: String) throws {
        guard isName(name) else { throw unexpected(expected: name) }
        _ = advance()
    }

    private func unexpected(expected: String) -> ChatTemplateError {
        if case .endOfInput = current.kind {
            return failure("unexpected end of template, expected '\(expected)'.")
        }
        return failure("expected token '\(expected)', got '\(Self.describe(current))'")
    }

    /// `weight`: how many levels one nesting step costs; brackets cost more because parsing one
    /// recurses through every precedence level.
    private mutating func enterNesting(weight: Int = 1) throws {
        nestingDepth += weight
        if nestingDepth > Self.maximumNesting {
            throw failure("template nesting is too deep (more than \(Self.maximumNesting) levels)")
        }
    }

    private mutating func leaveNesting(weight: Int = 1) { nestingDepth -= weight }

    /// One more level for a left-deep operator chain; callers undo `levels` when the chain ends.
    private mutating func deepen(_ levels: inout Int, weight: Int = 1) throws {
        try enterNesting(weight: weight)
        levels += weight
    }

    // MARK: - Statements

    private mutating func subparse(endTokens: [String]?) throws -> [Statement] {
        var body: [Statement] = []
        if let endTokens { endTokenStack.append(endTokens) }
        defer { if endTokens != nil { endTokenStack.removeLast() } }
        while true {
            let token = current
            switch token.kind {
            case .endOfInput:
                return body
            case .data(let text):
                body.append(.text(text))
                _ = advance()
            case .variableBegin:
                _ = advance()
                body.append(.output(try parseTuple(withConditional: true)))
                try expectVariableEnd()
            case .blockBegin:
                _ = advance()
                if let endTokens, case .name(let name) = current.kind, endTokens.contains(name) {
                    return body
                }
                body.append(contentsOf: try parseStatement())
                try expectBlockEnd()
            default:
                throw failure("unexpected \(Self.describe(token))")
            }
        }
    }

    /// Parses the block end, then statements until one of `endTokens`; optionally consumes that tag name.
    private mutating func parseStatements(_ endTokens: [String], dropNeedle: Bool = false) throws -> [Statement] {
        _ = skipOp(":")
        try expectBlockEnd()
        try enterNesting(weight: 2)
        defer { leaveNesting(weight: 2) }
        let result = try subparse(endTokens: endTokens)
        if case .endOfInput = current.kind { throw eofFailure(endTokens) }
        if dropNeedle { _ = advance() }
        return result
    }

    private func eofFailure(_ endTokens: [String]?) -> ChatTemplateError {
        var stack = endTokenStack
        if let endTokens { stack.append(endTokens) }
        return unknownTagOrEOF(name: nil, endTokenStack: stack)
    }

    private func unknownTagOrEOF(name: String?, endTokenStack stack: [[String]]) -> ChatTemplateError {
        let expected = Set(stack.flatMap { $0 })
        let currentlyLooking = stack.last.map { $0.map { "'\($0)'" }.joined(separator: " or ") }
        var message = name == nil ? ["Unexpected end of template."] : ["Encountered unknown tag '\(name!)'."]
        if let currentlyLooking {
            if let name, expected.contains(name) {
                message.append(
                    "You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for \(currentlyLooking)."
                )
            } else {
                message.append("Jinja was looking for the following tags: \(currentlyLooking).")
            }
        }
        if let innermost = tagStack.last {
            message.append("The innermost block that needs to be closed is '\(innermost)'.")
        }
        return failure(message.joined(separator: " "))
    }

    private mutating func parseStatement() throws -> [Statement] {
        guard case .name(let tag) = current.kind else { throw failure("tag name expected") }
        let position = current.position
        tagStack.append(tag)
        defer { tagStack.removeLast() }
        switch tag {
        case "for": return [try parseFor()]
        case "if": return [try parseIf()]
        case "set": return [try parseSet()]
        case "macro": return [try parseMacro()]
        case "call": return [try parseCallBlock()]
        case "filter": return [try parseFilterBlock()]
        case "with": return [try parseWith()]
        case "print":
            _ = advance()
            var outputs: [Statement] = []
            while true {
                if case .blockEnd = current.kind { break }
                if !outputs.isEmpty { try expectOp(",") }
                outputs.append(.output(try parseExpression()))
            }
            return outputs
        case "break", "continue":
            _ = advance()
            guard loopDepth > 0 else { throw failure("'\(tag)' outside loop", at: position) }
            return [tag == "break" ? .breakLoop(position) : .continueLoop(position)]
        case "generation":
            // transformers' AssistantTracker extension: renders its body (through a caller frame).
            _ = advance()
            return [.scoped(try parseStatements(["endgeneration"], dropNeedle: true))]
        case "block", "extends", "include", "import", "from", "autoescape":
            throw failure("the '\(tag)' tag is not supported in chat templates", at: position)
        default:
            tagStack.removeLast()
            defer { tagStack.append(tag) }
            throw unknownTagOrEOF(name: tag, endTokenStack: endTokenStack)
        }
    }

    private mutating func parseFor() throws -> Statement {
        let position = advance().position
        let target = try parseAssignTarget(extraEndRules: ["in"])
        try expectName("in")
        let iterable = try parseTuple(withConditional: false, extraEndRules: ["recursive"])
        var filter: Expression? = nil
        if skipName("if") { filter = try parseExpression() }
        let recursive = skipName("recursive")
        loopDepth += 1
        let body = try parseStatements(["endfor", "else"])
        loopDepth -= 1
        var elseBody: [Statement] = []
        if isName("else", advance()) {
            elseBody = try parseStatements(["endfor"], dropNeedle: true)
        }
        return .forLoop(
            ForLoop(
                target: target, iterable: iterable, filter: filter, recursive: recursive, body: body,
                elseBody: elseBody, position: position))
    }

    private mutating func parseIf() throws -> Statement {
        _ = advance()
        var branches: [ConditionalBranch] = []
        var elseBody: [Statement] = []
        while true {
            let condition = try parseTuple(withConditional: false)
            let body = try parseStatements(["elif", "else", "endif"])
            branches.append(ConditionalBranch(condition: condition, body: body))
            let token = advance()
            if isName("elif", token) { continue }
            if isName("else", token) {
                elseBody = try parseStatements(["endif"], dropNeedle: true)
            }
            break
        }
        return .ifChain(branches, elseBody: elseBody)
    }

    private mutating func parseSet() throws -> Statement {
        let position = advance().position
        let target = try parseAssignTarget(withNamespace: true)
        if skipOp("=") {
            return .assign(target, try parseTuple(withConditional: true), position)
        }
        let filters = try parseFilterChain(startInline: false)
        let body = try parseStatements(["endset"], dropNeedle: true)
        return .assignBlock(target, filters: filters, body: body, position)
    }

    private mutating func parseWith() throws -> Statement {
        _ = advance()
        var assignments: [(AssignTarget, Expression)] = []
        while true {
            if case .blockEnd = current.kind { break }
            if !assignments.isEmpty { try expectOp(",") }
            let target = try parseAssignTarget()
            try expectOp("=")
            assignments.append((target, try parseExpression()))
        }
        let body = try parseStatements(["endwith"], dropNeedle: true)
        return .with(assignments, body: body)
    }

    private mutating func parseSignature() throws -> [MacroParameter] {
        var parameters: [MacroParameter] = []
        var sawDefault = false
        try expectOp("(")
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            let name = try expectName()
            var defaultValue: Expression? = nil
            if skipOp("=") {
                defaultValue = try parseExpression()
                sawDefault = true
            } else if sawDefault {
                throw failure("non-default argument follows default argument")
            }
            parameters.append(MacroParameter(name: name, defaultValue: defaultValue))
        }
        try expectOp(")")
        return parameters
    }

    /// Parses a macro-like body with loop controls reset (a `break` cannot cross a macro boundary).
    private mutating func parseIsolatedBody(_ endTag: String) throws -> [Statement] {
        let savedLoopDepth = loopDepth
        loopDepth = 0
        defer { loopDepth = savedLoopDepth }
        return try parseStatements([endTag], dropNeedle: true)
    }

    private mutating func parseMacro() throws -> Statement {
        let position = advance().position
        let name = try expectName()
        let parameters = try parseSignature()
        let body = try parseIsolatedBody("endmacro")
        return .macro(Self.makeMacro(name: name, parameters: parameters, body: body, position: position))
    }

    static func makeMacro(name: String, parameters: [MacroParameter], body: [Statement], position: SourcePosition)
        -> MacroDefinition
    {
        let used = TemplateValidator.referencedNames(in: body)
        return MacroDefinition(
            name: name, parameters: parameters, body: body,
            usesCaller: used.contains("caller"), usesVarargs: used.contains("varargs"),
            usesKwargs: used.contains("kwargs"), position: position)
    }

    private mutating func parseCallBlock() throws -> Statement {
        let position = advance().position
        let parameters = isOp("(") ? try parseSignature() : []
        let call = try parseExpression()
        guard case .call = call else { throw failure("expected call", at: position) }
        let body = try parseIsolatedBody("endcall")
        let caller = Self.makeMacro(name: "caller", parameters: parameters, body: body, position: position)
        return .callBlock(CallBlock(caller: caller, call: call, position: position))
    }

    private mutating func parseFilterBlock() throws -> Statement {
        let position = advance().position
        let filters = try parseFilterChain(startInline: true)
        let body = try parseStatements(["endfilter"], dropNeedle: true)
        return .filterBlock(filters: filters, body: body, position)
    }

    private mutating func parseAssignTarget(
        extraEndRules: [String] = [], withNamespace: Bool = false
    ) throws -> AssignTarget {
        let position = current.position
        let expression = try parseTuple(
            simplified: true, withConditional: true, extraEndRules: extraEndRules, withNamespace: withNamespace)
        func convert(_ expression: Expression) throws -> AssignTarget {
            switch expression {
            case .name(let name, _):
                return .name(name)
            case .tuple(let items, _):
                return .tuple(try items.map(convert))
            case .attribute(.name(let base, _), let attribute, _) where withNamespace:
                return .namespaceAttribute(base, attribute)
            default:
                throw failure("can't assign to '\(Self.nodeKind(expression))'", at: position)
            }
        }
        return try convert(expression)
    }

    private static func nodeKind(_ expression: Expression) -> String {
        switch expression {
        case .constant: return "const"
        case .list: return "list"
        case .dictionary: return "dict"
        case .attribute: return "getattr"
        case .item, .slice: return "getitem"
        case .call: return "call"
        default: return "expression"
        }
    }

    // MARK: - Expressions

    mutating func parseExpression(withConditional: Bool = true) throws -> Expression {
        withConditional ? try parseConditional() : try parseOr()
    }

    private mutating func parseConditional() throws -> Expression {
        var position = current.position
        var expression = try parseOr()
        var levels = 0
        defer { nestingDepth -= levels }
        while skipName("if") {
            try deepen(&levels)
            let test = try parseOr()
            var otherwise: Expression? = nil
            if skipName("else") { otherwise = try parseConditional() }
            expression = .conditional(test: test, then: expression, otherwise: otherwise, position)
            position = current.position
        }
        return expression
    }

    private mutating func parseOr() throws -> Expression {
        var left = try parseAnd()
        var levels = 0
        defer { nestingDepth -= levels }
        while isName("or") {
            try deepen(&levels)
            let position = advance().position
            left = .or(left, try parseAnd(), position)
        }
        return left
    }

    private mutating func parseAnd() throws -> Expression {
        var left = try parseNot()
        var levels = 0
        defer { nestingDepth -= levels }
        while isName("and") {
            try deepen(&levels)
            let position = advance().position
            left = .and(left, try parseNot(), position)
        }
        return left
    }

    private mutating func parseNot() throws -> Expression {
        if isName("not") {
            let position = advance().position
            try enterNesting()
            defer { leaveNesting() }
            return .not(try parseNot(), position)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expression {
        let position = current.position
        let expression = try parseMath1()
        var steps: [ComparisonStep] = []
        while true {
            if case .op(let op) = current.kind, let comparison = ComparisonOperator(rawValue: op),
                comparison != .contains, comparison != .notContains
            {
                _ = advance()
                steps.append(ComparisonStep(op: comparison, operand: try parseMath1()))
            } else if skipName("in") {
                steps.append(ComparisonStep(op: .contains, operand: try parseMath1()))
            } else if isName("not") && isName("in", peek()) {
                _ = advance()
                _ = advance()
                steps.append(ComparisonStep(op: .notContains, operand: try parseMath1()))
            } else {
                break
            }
        }
        return steps.isEmpty ? expression : .compare(expression, steps, position)
    }

    private mutating func parseMath1() throws -> Expression {
        var left = try parseConcat()
        var levels = 0
        defer { nestingDepth -= levels }
        while isOp("+") || isOp("-") {
            try deepen(&levels)
            let token = advance()
            left = .binary(isOp("+", token) ? .add : .subtract, left, try parseConcat(), token.position)
        }
        return left
    }

    private mutating func parseConcat() throws -> Expression {
        let position = current.position
        var items = [try parseMath2()]
        var levels = 0
        defer { nestingDepth -= levels }
        while skipOp("~") {
            try deepen(&levels)
            items.append(try parseMath2())
        }
        return items.count == 1 ? items[0] : .concat(items, position)
    }

    private mutating func parseMath2() throws -> Expression {
        var left = try parsePow()
        var levels = 0
        defer { nestingDepth -= levels }
        while true {
            let op: BinaryOperator
            if isOp("*") { op = .multiply } else if isOp("/") { op = .divide } else if isOp("//") {
                op = .floorDivide
            } else if isOp("%") { op = .modulo } else { break }
            try deepen(&levels)
            let position = advance().position
            left = .binary(op, left, try parsePow(), position)
        }
        return left
    }

    private mutating func parsePow() throws -> Expression {
        var left = try parseUnary()
        var levels = 0
        defer { nestingDepth -= levels }
        while isOp("**") {
            try deepen(&levels)
            let position = advance().position
            left = .binary(.power, left, try parseUnary(), position)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> Expression {
        try enterNesting()
        defer { leaveNesting() }
        var node: Expression
        if isOp("-") {
            let position = advance().position
            node = .negate(try parseUnary(withFilter: false), position)
        } else if isOp("+") {
            let position = advance().position
            node = .plus(try parseUnary(withFilter: false), position)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpression(node) }
        return node
    }

    private mutating func parsePrimary(withNamespace: Bool = false) throws -> Expression {
        let token = current
        switch token.kind {
        case .name(let name):
            _ = advance()
            switch name {
            case "true", "True": return .constant(.bool(true), token.position)
            case "false", "False": return .constant(.bool(false), token.position)
            case "none", "None": return .constant(.none, token.position)
            default:
                if withNamespace && isOp(".") {
                    _ = advance()
                    let attribute = try expectName()
                    return .attribute(.name(name, token.position), attribute, token.position)
                }
                return .name(name, token.position)
            }
        case .string(let value):
            _ = advance()
            var text = value
            while case .string(let more) = current.kind {
                text += more
                _ = advance()
            }
            return .constant(.string(text), token.position)
        case .integer(let value):
            _ = advance()
            return .constant(.int(value), token.position)
        case .float(let value):
            _ = advance()
            return .constant(.double(value), token.position)
        case .op("("):
            _ = advance()
            try enterNesting(weight: 4)
            defer { leaveNesting(weight: 4) }
            let node = try parseTuple(withConditional: true, explicitParentheses: true)
            try expectOp(")")
            return node
        case .op("["):
            return try parseList()
        case .op("{"):
            return try parseDictionary()
        default:
            if case .endOfInput = token.kind { throw failure("unexpected end of template") }
            throw failure("unexpected '\(Self.describe(token))'")
        }
    }

    private func isTupleEnd(_ extraEndRules: [String]) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .op(")"): return true
        case .name(let name): return extraEndRules.contains(name)
        default: return false
        }
    }

    mutating func parseTuple(
        simplified: Bool = false, withConditional: Bool = true, extraEndRules: [String] = [],
        explicitParentheses: Bool = false, withNamespace: Bool = false
    ) throws -> Expression {
        let position = current.position
        var items: [Expression] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            items.append(
                simplified
                    ? try parsePrimary(withNamespace: withNamespace) : try parseExpression(withConditional: withConditional))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let first = items.first { return first }
            if !explicitParentheses {
                throw failure("Expected an expression, got '\(Self.describe(current))'")
            }
        }
        return .tuple(items, position)
    }

    private mutating func parseList() throws -> Expression {
        let position = advance().position
        try enterNesting(weight: 4)
        defer { leaveNesting(weight: 4) }
        var items: [Expression] = []
        while !isOp("]") {
            if !items.isEmpty { try expectOp(",") }
            if isOp("]") { break }
            items.append(try parseExpression())
        }
        try expectOp("]")
        return .list(items, position)
    }

    private mutating func parseDictionary() throws -> Expression {
        let position = advance().position
        try enterNesting(weight: 4)
        defer { leaveNesting(weight: 4) }
        var items: [DictionaryItem] = []
        while !isOp("}") {
            if !items.isEmpty { try expectOp(",") }
            if isOp("}") { break }
            let key = try parseExpression()
            try expectOp(":")
            items.append(DictionaryItem(key: key, value: try parseExpression()))
        }
        try expectOp("}")
        return .dictionary(items, position)
    }

    private mutating func parsePostfix(_ start: Expression) throws -> Expression {
        var node = start
        var levels = 0
        defer { nestingDepth -= levels }
        while true {
            if isOp(".") || isOp("[") || isOp("(") { try deepen(&levels) }
            if isOp(".") || isOp("[") {
                node = try parseSubscript(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpression(_ start: Expression) throws -> Expression {
        var node = start
        var levels = 0
        defer { nestingDepth -= levels }
        while true {
            if isOp("|") || isName("is") || isOp("(") { try deepen(&levels) }
            if isOp("|") {
                for filter in try parseFilterChain(startInline: false) {
                    try deepen(&levels, weight: 2)
                    node = .filter(node, filter)
                }
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ node: Expression) throws -> Expression {
        let token = advance()
        if isOp(".", token) {
            let attributeToken = advance()
            switch attributeToken.kind {
            case .name(let name):
                return .attribute(node, name, token.position)
            case .integer(let value):
                return .item(node, .constant(.int(value), attributeToken.position), token.position)
            default:
                throw failure("expected name or number", at: attributeToken.position)
            }
        }
        // `[` subscript: one key, a slice, or several (a tuple key).
        var arguments: [Expression] = []
        while !isOp("]") {
            if !arguments.isEmpty { try expectOp(",") }
            arguments.append(try parseSubscribed(node))
        }
        try expectOp("]")
        if arguments.count == 1 {
            if case .slice = arguments[0] { return arguments[0] }
            return .item(node, arguments[0], token.position)
        }
        return .item(node, .tuple(arguments, token.position), token.position)
    }

    /// One subscript element: an expression, or `start:stop:step` (returned as a `.slice` of `node`).
    private mutating func parseSubscribed(_ node: Expression) throws -> Expression {
        let position = current.position
        var start: Expression? = nil
        if isOp(":") {
            _ = advance()
        } else {
            let expression = try parseExpression()
            guard isOp(":") else { return expression }
            _ = advance()
            start = expression
        }
        var stop: Expression? = nil
        if !isOp(":") && !isOp("]") && !isOp(",") { stop = try parseExpression() }
        var step: Expression? = nil
        if skipOp(":") {
            if !isOp("]") && !isOp(",") { step = try parseExpression() }
        }
        return .slice(node, start: start, stop: stop, step: step, position)
    }

    private mutating func parseCallArguments() throws -> Arguments {
        let open = current.position
        try expectOp("(")
        var arguments = Arguments()
        var requireComma = false
        func ensure(_ condition: Bool) throws {
            if !condition { throw failure("invalid syntax for function call expression", at: open) }
        }
        while !isOp(")") {
            if requireComma {
                try expectOp(",")
                if isOp(")") { break }
            }
            if isOp("*") {
                try ensure(arguments.extraPositional == nil && arguments.extraKeywords == nil)
                _ = advance()
                arguments.extraPositional = try parseExpression()
            } else if isOp("**") {
                try ensure(arguments.extraKeywords == nil)
                _ = advance()
                arguments.extraKeywords = try parseExpression()
            } else if case .name(let key) = current.kind, isOp("=", peek()) {
                try ensure(arguments.extraKeywords == nil)
                _ = advance()
                _ = advance()
                arguments.keywords.append(KeywordArgument(name: key, value: try parseExpression()))
            } else {
                try ensure(
                    arguments.extraPositional == nil && arguments.extraKeywords == nil && arguments.keywords.isEmpty)
                arguments.positional.append(try parseExpression())
            }
            requireComma = true
        }
        try expectOp(")")
        return arguments
    }

    private mutating func parseCall(_ node: Expression) throws -> Expression {
        let position = current.position
        try enterNesting(weight: 4)
        defer { leaveNesting(weight: 4) }
        return .call(node, try parseCallArguments(), position)
    }

    private mutating func parseFilterChain(startInline: Bool) throws -> [FilterCall] {
        var filters: [FilterCall] = []
        var inline = startInline
        while isOp("|") || inline {
            if !inline { _ = advance() }
            let position = current.position
            var name = try expectName()
            while skipOp(".") { name += "." + (try expectName()) }
            var arguments = Arguments.empty
            if isOp("(") {
                try enterNesting(weight: 4)
                defer { leaveNesting(weight: 4) }
                arguments = try parseCallArguments()
            }
            filters.append(FilterCall(name: name, arguments: arguments, position: position))
            inline = false
        }
        return filters
    }

    private mutating func parseTest(_ node: Expression) throws -> Expression {
        let position = advance().position  // `is`
        let negated = skipName("not")
        var name = try expectName()
        while skipOp(".") { name += "." + (try expectName()) }
        var arguments = Arguments()
        if isOp("(") {
            try enterNesting(weight: 4)
            defer { leaveNesting(weight: 4) }
            arguments = try parseCallArguments()
        } else {
            var takesArgument = false
            switch current.kind {
            case .name(let word): takesArgument = !["else", "or", "and"].contains(word)
            case .string, .integer, .float, .op("("), .op("["), .op("{"): takesArgument = true
            default: break
            }
            if takesArgument {
                if isName("is") { throw failure("You cannot chain multiple tests with is") }
                arguments.positional = [try parsePostfix(try parsePrimary())]
            }
        }
        let test = Expression.test(node, name: name, arguments, position)
        return negated ? .not(test, position) : test
    }
}
