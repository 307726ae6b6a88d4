#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A variable frame. jinja2 scoping: the template's top level writes the render context; `for`
/// loops, macros, call/filter/set blocks and `with` get a child frame whose assignments do not leak
/// out; `if` has no frame of its own.
final class Scope {
    private var variables: [String: Value] = [:]
    let parent: Scope?

    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var scope: Scope? = self
        while let current = scope {
            if let value = current.variables[name] { return value }
            scope = current.parent
        }
        return nil
    }

    func set(_ name: String, _ value: Value) { variables[name] = value }

    /// Forgets every variable (breaks the cycle a macro stored in the scope it captured makes).
    func clear() { variables.removeAll() }
}

/// Executes a parsed template against a context. One instance per render (not thread-shared).
final class Interpreter {
    enum Flow {
        case normal
        case breakLoop
        case continueLoop
    }

    /// Macro/recursive-loop call depth limit (deep recursion would exhaust the thread stack).
    static let maximumCallDepth = 48
    /// Limit on nested evaluation (expressions + blocks + macro bodies) so that hostile templates
    /// fail cleanly instead of overflowing the stack; real templates stay far below it.
    static let maximumEvaluationDepth = 128
    /// Limit on container nesting stored in a namespace (see `assign`).
    static let maximumValueNesting = 200

    private var callDepth = 0
    /// Set while evaluating a constant `{{ }}` expression the way jinja2's constant folding does.
    private var foldingConstantOutput = false
    private var evaluationDepth = 0
    /// Scopes captured by macros made during this render: a macro is stored in the scope it captures, a
    /// reference cycle, so they are cleared when the render ends (else every render leaks them).
    private var macroScopes: [Scope] = []
    /// Seconds since the epoch for `strftime_now`; nil reads the clock (local time, like Python).
    private let fixedTime: Int?

    init(fixedTime: Int?) { self.fixedTime = fixedTime }

    func render(_ body: [Statement], context: [String: TemplateValue]) throws -> String {
        let globals = Scope(parent: nil)
        installGlobals(into: globals)
        let root = Scope(parent: globals)
        for (name, value) in context { root.set(name, Value(value)) }
        defer {
            for scope in macroScopes { scope.clear() }
            macroScopes.removeAll()
        }
        var output = ""
        _ = try execute(body, scope: root, into: &output)
        return output
    }

    // MARK: - Statements

    func execute(_ statements: [Statement], scope: Scope, into output: inout String) throws -> Flow {
        for statement in statements {
            let flow = try execute(statement, scope: scope, into: &output)
            if case .normal = flow { continue }
            return flow
        }
        return .normal
    }

    private func enterEvaluation() throws {
        evaluationDepth += 1
        if evaluationDepth > Self.maximumEvaluationDepth {
            evaluationDepth -= 1
            throw ChatTemplateError(.runtime, "template evaluation nested too deeply (recursion limit)")
        }
    }

    /// Dispatches one statement. Kept small (heavy cases are outlined) because it recurses once per
    /// nested block and debug builds give every local of a big switch its own stack slot.
    private func execute(_ statement: Statement, scope: Scope, into output: inout String) throws -> Flow {
        try enterEvaluation()
        defer { evaluationDepth -= 1 }
        switch statement {
        case .text(let text):
            output += text
            try Operations.checkStringBytes(output.utf8.count, "the rendered template")
        case .output(let expression):
            output += try evaluateOutput(expression, scope: scope).pythonString
            try Operations.checkStringBytes(output.utf8.count, "the rendered template")
        case .ifChain(let branches, let elseBody):
            return try executeIf(branches, elseBody, scope: scope, into: &output)
        case .forLoop(let loop):
            try runLoop(loop, scope: scope, iterable: nil, depth0: 0, into: &output)
        case .assign(let target, let expression, let position):
            try executeAssign(target, expression, position, scope: scope)
        case .assignBlock(let target, let filters, let body, let position):
            try executeAssignBlock(target, filters, body, position, scope: scope)
        case .macro(let definition):
            scope.set(definition.name, makeMacro(definition, closure: scope))
        case .callBlock(let block):
            try executeCallBlock(block, scope: scope, into: &output)
        case .filterBlock(let filters, let body, _):
            try executeFilterBlock(filters, body, scope: scope, into: &output)
        case .with(let assignments, let body):
            return try executeWith(assignments, body, scope: scope, into: &output)
        case .scoped(let body):
            _ = try execute(body, scope: Scope(parent: scope), into: &output)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    /// Thrown while constant folding when the expression needs the render context.
    private struct FoldingImpossible: Error {}

    /// Filters jinja2 never folds at compile time (they take the render context).
    private static let contextFilters: Set<String> = ["map", "select", "reject", "selectattr", "rejectattr"]

    /// `{{ expression }}`. jinja2 first tries to evaluate an output expression at compile time
    /// (`as_const`: no variables or calls, lazy `if`/`and`/`or`), where slicing goes through the
    /// sandbox's lenient `getitem` (a failed slice is undefined). If that fails for any reason the
    /// expression is compiled normally, and plain Python slicing raises at render time.
    @inline(never)
    private func evaluateOutput(_ expression: Expression, scope: Scope) throws -> Value {
        foldingConstantOutput = true
        do {
            let value = try evaluate(expression, scope: scope)
            foldingConstantOutput = false
            return value
        } catch {
            foldingConstantOutput = false
            return try evaluate(expression, scope: scope)
        }
    }

    @inline(never)
    private func executeIf(
        _ branches: [ConditionalBranch], _ elseBody: [Statement], scope: Scope, into output: inout String
    ) throws -> Flow {
        for branch in branches where try evaluate(branch.condition, scope: scope).isTruthy {
            return try execute(branch.body, scope: scope, into: &output)
        }
        return try execute(elseBody, scope: scope, into: &output)
    }

    @inline(never)
    private func executeAssign(_ target: AssignTarget, _ expression: Expression, _ position: SourcePosition, scope: Scope)
        throws
    {
        let value = try evaluate(expression, scope: scope)
        try located(position) { try assign(target, value, scope: scope) }
    }

    @inline(never)
    private func executeAssignBlock(
        _ target: AssignTarget, _ filters: [FilterCall], _ body: [Statement], _ position: SourcePosition, scope: Scope
    ) throws {
        var captured = ""
        _ = try execute(body, scope: Scope(parent: scope), into: &captured)
        let value = try applyFilters(filters, to: .string(captured), scope: scope)
        try located(position) { try assign(target, value, scope: scope) }
    }

    @inline(never)
    private func executeCallBlock(_ block: CallBlock, scope: Scope, into output: inout String) throws {
        guard case .call(let callee, let arguments, let position) = block.call else { return }
        let function = try evaluate(callee, scope: scope)
        var (positional, keywords) = try evaluateArguments(arguments, scope: scope)
        keywords.append(("caller", makeMacro(block.caller, closure: scope)))
        let result = try located(position) { try call(function, positional, keywords) }
        output += result.pythonString
    }

    @inline(never)
    private func executeFilterBlock(_ filters: [FilterCall], _ body: [Statement], scope: Scope, into output: inout String)
        throws
    {
        var captured = ""
        _ = try execute(body, scope: Scope(parent: scope), into: &captured)
        output += try applyFilters(filters, to: .string(captured), scope: scope).pythonString
    }

    @inline(never)
    private func executeWith(
        _ assignments: [(AssignTarget, Expression)], _ body: [Statement], scope: Scope, into output: inout String
    ) throws -> Flow {
        let inner = Scope(parent: scope)
        let values = try assignments.map { try evaluate($0.1, scope: scope) }
        for ((target, _), value) in zip(assignments, values) { try assign(target, value, scope: inner) }
        return try execute(body, scope: inner, into: &output)
    }

    private func located<T>(_ position: SourcePosition, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ChatTemplateError {
            throw error.located(line: position.line, column: position.column)
        }
    }

    private func applyFilters(_ filters: [FilterCall], to input: Value, scope: Scope) throws -> Value {
        var value = input
        for filter in filters {
            let (positional, keywords) = try evaluateArguments(filter.arguments, scope: scope)
            value = try located(filter.position) {
                try BuiltinFilters.apply(filter.name, value, positional, keywords, interpreter: self)
            }
        }
        return value
    }

    /// `{% for target in iterable [if filter] [recursive] %}`: every iteration runs in a fresh child
    /// frame, so a `set` inside the body never leaks out and does not carry over to the next iteration.
    private func runLoop(
        _ loop: ForLoop, scope: Scope, iterable: Value?, depth0: Int, into output: inout String
    ) throws {
        let source = try iterable ?? evaluate(loop.iterable, scope: scope)
        var items = try located(loop.position) { try Operations.iterate(source) }
        if let filter = loop.filter {
            var kept: [Value] = []
            for item in items {
                let filterScope = Scope(parent: scope)
                try located(loop.position) { try assign(loop.target, item, scope: filterScope) }
                if try evaluate(filter, scope: filterScope).isTruthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try execute(loop.elseBody, scope: Scope(parent: scope), into: &output)
            return
        }
        var recurse: ((Interpreter, Value) throws -> Value)? = nil
        if loop.recursive {
            recurse = { interpreter, children in
                var rendered = ""
                try interpreter.enterCall()
                defer { interpreter.leaveCall() }
                try interpreter.runLoop(loop, scope: scope, iterable: children, depth0: depth0 + 1, into: &rendered)
                return .string(rendered)
            }
        }
        let loopObject = LoopObject(items: items, depth0: depth0, recurse: recurse)
        for (index, item) in items.enumerated() {
            // jinja2 re-reads outer variables at the start of every iteration: a fresh frame each time.
            let iterationScope = Scope(parent: scope)
            iterationScope.set("loop", .loop(loopObject))
            loopObject.index0 = index
            try located(loop.position) { try assign(loop.target, item, scope: iterationScope) }
            if case .breakLoop = try execute(loop.body, scope: iterationScope, into: &output) { break }
        }
    }

    private func assign(_ target: AssignTarget, _ value: Value, scope: Scope) throws {
        switch target {
        case .name(let name):
            scope.set(name, value)
        case .tuple(let targets):
            let items = try Operations.iterate(value)
            if items.count < targets.count {
                throw ChatTemplateError(.type, "not enough values to unpack (expected \(targets.count), got \(items.count))")
            }
            if items.count > targets.count {
                throw ChatTemplateError(.type, "too many values to unpack (expected \(targets.count))")
            }
            for (target, item) in zip(targets, items) { try assign(target, item, scope: scope) }
        case .namespaceAttribute(let base, let attribute):
            guard case .namespace(let namespace)? = scope.lookup(base) else {
                throw ChatTemplateError(.runtime, "cannot assign attribute on non-namespace object")
            }
            if attribute.hasPrefix("_") {
                throw ChatTemplateError(
                    .security,
                    "Chat templates cannot store underscore-prefixed attributes on a namespace, but got \(PythonText.repr(attribute)). Please rename the attribute."
                )
            }
            // Only namespaces carry values across loop iterations, so this is where a template could
            // grow a structure without bound (`set ns.x = [ns.x]` in a loop); deep values would
            // overflow the stack when printed or freed.
            if value.nestsDeeper(than: Self.maximumValueNesting) {
                throw ChatTemplateError(
                    .runtime, "value nested too deeply (more than \(Self.maximumValueNesting) levels) for a namespace attribute")
            }
            namespace.attributes[attribute] = value
        }
    }

    // MARK: - Macros and calls

    func enterCall() throws {
        callDepth += 1
        if callDepth > Self.maximumCallDepth {
            callDepth -= 1
            throw ChatTemplateError(.runtime, "maximum recursion depth exceeded (\(Self.maximumCallDepth) nested macro calls)")
        }
    }

    func leaveCall() { callDepth -= 1 }

    private func makeMacro(_ definition: MacroDefinition, closure: Scope) -> Value {
        macroScopes.append(closure)
        return .callable(
            CallableObject(name: definition.name, typeName: "Macro") { interpreter, positional, keywords in
                try interpreter.invokeMacro(definition, closure: closure, positional, keywords)
            })
    }

    /// jinja2's `Macro.__call__`: positional, then keyword, then defaults; `caller`, `varargs`,
    /// `kwargs` only when the body references them.
    private func invokeMacro(
        _ definition: MacroDefinition, closure: Scope, _ positional: [Value], _ keywords: [(String, Value)]
    ) throws -> Value {
        try enterCall()
        defer { leaveCall() }
        var remainingKeywords = keywords
        func takeKeyword(_ name: String) -> Value? {
            guard let index = remainingKeywords.lastIndex(where: { $0.0 == name }) else { return nil }
            let value = remainingKeywords[index].1
            remainingKeywords.removeAll { $0.0 == name }
            return value
        }
        let parameterCount = definition.parameters.count
        var provided: [Value?] = Array(positional.prefix(parameterCount))
        var foundCaller = false
        if provided.count != parameterCount {
            for parameter in definition.parameters[provided.count...] {
                if parameter.name == "caller" { foundCaller = true }
                provided.append(takeKeyword(parameter.name))
            }
        } else {
            foundCaller = definition.parameters.contains { $0.name == "caller" }
        }
        let frame = Scope(parent: closure)
        if definition.usesCaller && !foundCaller {
            frame.set("caller", takeKeyword("caller") ?? .undefined(.hint("No caller defined")))
        }
        if definition.usesKwargs {
            var dictionary = ValueDictionary()
            for (key, value) in remainingKeywords { dictionary[key] = value }
            frame.set("kwargs", .dict(dictionary))
        } else if let first = remainingKeywords.first {
            if remainingKeywords.contains(where: { $0.0 == "caller" }) {
                throw ChatTemplateError(
                    .type,
                    "macro '\(definition.name)' was invoked with two values for the special caller argument. This is most likely a bug."
                )
            }
            throw ChatTemplateError(.type, "macro '\(definition.name)' takes no keyword argument '\(first.0)'")
        }
        if definition.usesVarargs {
            frame.set("varargs", .tuple(Array(positional.dropFirst(parameterCount))))
        } else if positional.count > parameterCount {
            throw ChatTemplateError(
                .type, "macro '\(definition.name)' takes not more than \(parameterCount) argument(s)")
        }
        for (parameter, value) in zip(definition.parameters, provided) {
            if let value {
                frame.set(parameter.name, value)
            } else if let defaultValue = parameter.defaultValue {
                frame.set(parameter.name, try evaluate(defaultValue, scope: frame))
            } else {
                frame.set(parameter.name, .undefined(.hint("parameter \(PythonText.repr(parameter.name)) was not provided")))
            }
        }
        var output = ""
        _ = try execute(definition.body, scope: frame, into: &output)
        return .string(output)
    }

    func call(_ function: Value, _ positional: [Value], _ keywords: [(String, Value)]) throws -> Value {
        switch function {
        case .callable(let callable):
            return try callable.body(self, positional, keywords)
        case .undefined(let reason):
            throw reason.error
        case .loop(let loop):
            guard let recurse = loop.recurse else {
                throw ChatTemplateError(
                    .type, "Tried to call non recursive loop.  Maybe you forgot the 'recursive' modifier.")
            }
            guard positional.count == 1, keywords.isEmpty else {
                throw ChatTemplateError(.type, "loop() takes exactly one argument")
            }
            return try recurse(self, positional[0])
        default:
            throw ChatTemplateError(.type, "'\(function.typeName)' object is not callable")
        }
    }

    private func evaluateArguments(_ arguments: Arguments, scope: Scope) throws -> ([Value], [(String, Value)]) {
        var positional = try arguments.positional.map { try evaluate($0, scope: scope) }
        var keywords = try arguments.keywords.map { ($0.name, try evaluate($0.value, scope: scope)) }
        if let extra = arguments.extraPositional {
            positional += try Operations.iterate(try evaluate(extra, scope: scope))
        }
        if let extra = arguments.extraKeywords {
            let value = try evaluate(extra, scope: scope)
            guard case .dict(let dictionary) = value else {
                throw ChatTemplateError(.type, "argument after ** must be a mapping, not \(value.typeName)")
            }
            for (key, value) in dictionary.entries {
                guard case .string(let name) = key else { throw ChatTemplateError(.type, "keywords must be strings") }
                keywords.append((name, value))
            }
        }
        return (positional, keywords)
    }

    // MARK: - Expressions

    func evaluate(_ expression: Expression, scope: Scope) throws -> Value {
        try enterEvaluation()
        defer { evaluationDepth -= 1 }
        do {
            return try evaluateUnlocated(expression, scope: scope)
        } catch {
            throw Self.locate(error, at: expression)
        }
    }

    @inline(never)
    private static func locate(_ error: Error, at expression: Expression) -> Error {
        guard let templateError = error as? ChatTemplateError else { return error }
        let position = expression.position
        return templateError.located(line: position.line, column: position.column)
    }

    /// Dispatches one expression node; heavy cases are outlined to keep this recursive frame small.
    private func evaluateUnlocated(_ expression: Expression, scope: Scope) throws -> Value {
        switch expression {
        case .constant(let constant, _):
            return Self.constantValue(constant)
        case .name(let name, _):
            if foldingConstantOutput { throw FoldingImpossible() }
            return scope.lookup(name) ?? .undefinedName(name)
        case .list(let items, _):
            return .list(try evaluateAll(items, scope: scope))
        case .tuple(let items, _):
            return .tuple(try evaluateAll(items, scope: scope))
        case .dictionary(let items, _):
            return try evaluateDictionary(items, scope: scope)
        case .attribute(let base, let name, _):
            return try Operations.attribute(try evaluate(base, scope: scope), name)
        case .item(let base, let key, _):
            return try evaluateItem(base, key, scope: scope)
        case .slice(let base, let start, let stop, let step, _):
            return try evaluateSlice(base, start, stop, step, scope: scope)
        case .call(let callee, let arguments, _):
            return try evaluateCall(callee, arguments, scope: scope)
        case .filter(let base, let filter):
            return try evaluateFilter(base, filter, scope: scope)
        case .test(let base, let name, let arguments, _):
            return try evaluateTest(base, name, arguments, scope: scope)
        case .negate(let operand, _):
            return try Operations.negate(try evaluate(operand, scope: scope))
        case .plus(let operand, _):
            return try Operations.unaryPlus(try evaluate(operand, scope: scope))
        case .not(let operand, _):
            return .bool(!(try evaluate(operand, scope: scope).isTruthy))
        case .binary(let op, let left, let right, _):
            return try evaluateBinary(op, left, right, scope: scope)
        case .and(let left, let right, _):
            return try evaluateLogical(isAnd: true, left, right, scope: scope)
        case .or(let left, let right, _):
            return try evaluateLogical(isAnd: false, left, right, scope: scope)
        case .compare(let first, let steps, _):
            return try evaluateComparison(first, steps, scope: scope)
        case .concat(let items, _):
            return try evaluateConcat(items, scope: scope)
        case .conditional(let test, let then, let otherwise, let position):
            return try evaluateConditional(test, then, otherwise, position, scope: scope)
        }
    }

    static func constantValue(_ constant: Constant) -> Value {
        switch constant {
        case .none: return .none
        case .bool(let flag): return .bool(flag)
        case .int(let number): return .int(number)
        case .double(let number): return .double(number)
        case .string(let text): return .string(text)
        case .list(let items): return .list(items.map(constantValue))
        case .tuple(let items): return .tuple(items.map(constantValue))
        case .dict(let keys, let values):
            var dictionary = ValueDictionary()
            for (key, value) in zip(keys, values) { try? dictionary.insert(constantValue(key), constantValue(value)) }
            return .dict(dictionary)
        }
    }

    /// jinja2's `as_const`: the expression's value if it can be computed without the render context
    /// (no variables, calls or context filters; lazy `if`/`and`/`or`; lenient slices), else nil.
    func constantFold(_ expression: Expression) -> Value? {
        foldingConstantOutput = true
        defer { foldingConstantOutput = false }
        return try? evaluate(expression, scope: Scope(parent: nil))
    }

    @inline(never)
    private func evaluateAll(_ items: [Expression], scope: Scope) throws -> [Value] {
        try items.map { try evaluate($0, scope: scope) }
    }

    @inline(never)
    private func evaluateDictionary(_ items: [DictionaryItem], scope: Scope) throws -> Value {
        var dictionary = ValueDictionary()
        for item in items {
            let key = try evaluate(item.key, scope: scope)
            try dictionary.insert(key, try evaluate(item.value, scope: scope))
        }
        return .dict(dictionary)
    }

    @inline(never)
    private func evaluateItem(_ base: Expression, _ key: Expression, scope: Scope) throws -> Value {
        let object = try evaluate(base, scope: scope)
        return try Operations.item(object, try evaluate(key, scope: scope))
    }

    @inline(never)
    private func evaluateSlice(
        _ base: Expression, _ start: Expression?, _ stop: Expression?, _ step: Expression?, scope: Scope
    ) throws -> Value {
        let object = try evaluate(base, scope: scope)
        let bounds = (
            start: try start.map { try evaluate($0, scope: scope) }, stop: try stop.map { try evaluate($0, scope: scope) },
            step: try step.map { try evaluate($0, scope: scope) }
        )
        do {
            return try Operations.slice(object, start: bounds.start, stop: bounds.stop, step: bounds.step)
        } catch let error as ChatTemplateError where error.kind == .type && foldingConstantOutput {
            return .undefined(.hint(error.message))
        }
    }

    @inline(never)
    private func evaluateCall(_ callee: Expression, _ arguments: Arguments, scope: Scope) throws -> Value {
        if foldingConstantOutput { throw FoldingImpossible() }
        let function = try evaluate(callee, scope: scope)
        let (positional, keywords) = try evaluateArguments(arguments, scope: scope)
        return try call(function, positional, keywords)
    }

    @inline(never)
    private func evaluateFilter(_ base: Expression, _ filter: FilterCall, scope: Scope) throws -> Value {
        if foldingConstantOutput && Self.contextFilters.contains(filter.name) { throw FoldingImpossible() }
        let input = try evaluate(base, scope: scope)
        let (positional, keywords) = try evaluateArguments(filter.arguments, scope: scope)
        return try BuiltinFilters.apply(filter.name, input, positional, keywords, interpreter: self)
    }

    @inline(never)
    private func evaluateTest(_ base: Expression, _ name: String, _ arguments: Arguments, scope: Scope) throws -> Value {
        let value = try evaluate(base, scope: scope)
        let (positional, keywords) = try evaluateArguments(arguments, scope: scope)
        return .bool(try BuiltinTests.apply(name, value, positional, keywords, interpreter: self))
    }

    @inline(never)
    private func evaluateBinary(_ op: BinaryOperator, _ left: Expression, _ right: Expression, scope: Scope) throws
        -> Value
    {
        let lhs = try evaluate(left, scope: scope)
        let rhs = try evaluate(right, scope: scope)
        // jinja2 quirk: a folded negative constant is emitted as plain `-3` in the generated Python,
        // so `-3 ** x` (x not constant) computes -(3 ** x).
        if case .power = op, case .constant(let constant, _) = left, !isConstant(right), let magnitude = Self.negativeMagnitude(constant) {
            return try Operations.negate(try Operations.binary(.power, magnitude, rhs))
        }
        return try Operations.binary(op, lhs, rhs)
    }

    private func isConstant(_ expression: Expression) -> Bool {
        if case .constant = expression { return true }
        return false
    }

    /// `-x` for a negative numeric constant (including -0.0), else nil.
    private static func negativeMagnitude(_ constant: Constant) -> Value? {
        switch constant {
        case .int(let number) where number < 0 && number != Int.min: return .int(-number)
        case .double(let number) where number.sign == .minus && !number.isNaN: return .double(-number)
        default: return nil
        }
    }

    /// Python `and`/`or` return one of their operands.
    @inline(never)
    private func evaluateLogical(isAnd: Bool, _ left: Expression, _ right: Expression, scope: Scope) throws -> Value {
        let lhs = try evaluate(left, scope: scope)
        if lhs.isTruthy == isAnd { return try evaluate(right, scope: scope) }
        return lhs
    }

    /// Chained comparisons: `a < b < c` is `a < b and b < c`, each operand evaluated once.
    @inline(never)
    private func evaluateComparison(_ first: Expression, _ steps: [ComparisonStep], scope: Scope) throws -> Value {
        var left = try evaluate(first, scope: scope)
        for step in steps {
            let right = try evaluate(step.operand, scope: scope)
            if !(try Operations.compare(step.op, left, right)) { return .bool(false) }
            left = right
        }
        return .bool(true)
    }

    @inline(never)
    private func evaluateConcat(_ items: [Expression], scope: Scope) throws -> Value {
        var text = ""
        for item in items {
            let part = try evaluate(item, scope: scope).pythonString
            try Operations.checkStringBytes(text.utf8.count + part.utf8.count, "concatenation")
            text += part
        }
        return .string(text)
    }

    @inline(never)
    private func evaluateConditional(
        _ test: Expression, _ then: Expression, _ otherwise: Expression?, _ position: SourcePosition, scope: Scope
    ) throws -> Value {
        if try evaluate(test, scope: scope).isTruthy { return try evaluate(then, scope: scope) }
        if let otherwise { return try evaluate(otherwise, scope: scope) }
        return .undefined(
            .hint("the inline if-expression on line \(position.line) evaluated to false and no else section was defined."))
    }

    // MARK: - Globals

    private func installGlobals(into globals: Scope) {
        globals.set(
            "raise_exception",
            .callable(
                CallableObject(name: "raise_exception", typeName: "function") { _, positional, keywords in
                    let slots = try Methods.bind("raise_exception", positional, keywords, parameters: ["message"], required: 1)
                    throw ChatTemplateError(.raised, slots[0]!.pythonString)
                }))
        globals.set(
            "strftime_now",
            .callable(
                CallableObject(name: "strftime_now", typeName: "function") { interpreter, positional, keywords in
                    let slots = try Methods.bind("strftime_now", positional, keywords, parameters: ["format"], required: 1)
                    guard case .string(let format) = slots[0]! else {
                        throw ChatTemplateError(.type, "strftime() argument 1 must be str, not \(slots[0]!.typeName)")
                    }
                    return .string(try interpreter.formatNow(format))
                }))
        globals.set(
            "range",
            .callable(
                CallableObject(name: "range", typeName: "type") { _, positional, keywords in
                    guard keywords.isEmpty else { throw ChatTemplateError(.type, "range() takes no keyword arguments") }
                    let bounds = try positional.map { value -> Int in
                        guard let integer = Operations.integer(value) else {
                            throw ChatTemplateError(.type, "'\(value.typeName)' object cannot be interpreted as an integer")
                        }
                        return integer
                    }
                    let (start, stop, step): (Int, Int, Int)
                    switch bounds.count {
                    case 1: (start, stop, step) = (0, bounds[0], 1)
                    case 2: (start, stop, step) = (bounds[0], bounds[1], 1)
                    case 3: (start, stop, step) = (bounds[0], bounds[1], bounds[2])
                    default: throw ChatTemplateError(.type, "range expected at most 3 arguments, got \(bounds.count)")
                    }
                    if step == 0 { throw ChatTemplateError(.type, "range() arg 3 must not be zero") }
                    // Python's range length; an overflowing span is certainly beyond the sandbox limit.
                    let (span, spanOverflow) =
                        step > 0 ? stop.subtractingReportingOverflow(start) : start.subtractingReportingOverflow(stop)
                    let stepSize = Int(clamping: step.magnitude)
                    let length = span <= 0 ? 0 : span / stepSize + (span % stepSize == 0 ? 0 : 1)
                    if spanOverflow || length > 100_000 {
                        throw ChatTemplateError(
                            .security, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
                    }
                    return .list((0..<length).map { .int(start + $0 * step) })
                }))
        globals.set(
            "namespace",
            .callable(
                CallableObject(name: "namespace", typeName: "type") { _, positional, keywords in
                    let namespace = NamespaceObject()
                    for (keyValue, value) in try Self.dictionaryArguments("namespace", positional, keywords) {
                        guard case .string(let key) = keyValue else {
                            throw ChatTemplateError(.type, "namespace attribute names must be strings")
                        }
                        if key.hasPrefix("_") {
                            throw ChatTemplateError(
                                .security,
                                "Chat templates cannot store underscore-prefixed attributes on a namespace, but got \(PythonText.repr(key)). Please rename the attribute."
                            )
                        }
                        namespace.attributes[key] = value
                    }
                    return .namespace(namespace)
                }))
        globals.set(
            "dict",
            .callable(
                CallableObject(name: "dict", typeName: "type") { _, positional, keywords in
                    var dictionary = ValueDictionary()
                    for (key, value) in try Self.dictionaryArguments("dict", positional, keywords) {
                        try dictionary.insert(key, value)
                    }
                    return .dict(dictionary)
                }))
        globals.set(
            "joiner",
            .callable(
                CallableObject(name: "joiner", typeName: "type") { _, positional, keywords in
                    let slots = try Methods.bind("joiner", positional, keywords, parameters: ["sep"])
                    let separator = slots[0]?.pythonString ?? ", "
                    var used = false
                    return .callable(
                        CallableObject(name: "joiner") { _, _, _ in
                            if !used {
                                used = true
                                return .string("")
                            }
                            return .string(separator)
                        })
                }))
    }

    /// `dict(mapping_or_pairs, **kwargs)` argument handling shared by `dict` and `namespace`.
    private static func dictionaryArguments(_ function: String, _ positional: [Value], _ keywords: [(String, Value)])
        throws -> [(Value, Value)]
    {
        var pairs: [(Value, Value)] = []
        if positional.count > 1 {
            throw ChatTemplateError(.type, "\(function) expected at most 1 argument, got \(positional.count)")
        }
        if let source = positional.first {
            switch source {
            case .dict(let dictionary):
                pairs += dictionary.entries.map { ($0.key, $0.value) }
            case .namespace(let namespace):
                pairs += namespace.attributes.entries.map { ($0.key, $0.value) }
            default:
                for element in try Operations.iterate(source) {
                    let pair = try Operations.iterate(element)
                    guard pair.count == 2 else {
                        throw ChatTemplateError(.type, "dictionary update sequence element has length \(pair.count); 2 is required")
                    }
                    pairs.append((pair[0], pair[1]))
                }
            }
        }
        return pairs + keywords.map { (.string($0.0), $0.1) }
    }

    /// `datetime.now().strftime(format)`.
    func formatNow(_ format: String) throws -> String {
        var seconds = time_t(fixedTime ?? Int(time(nil)))
        var parts = tm()
        if fixedTime != nil {
            gmtime_r(&seconds, &parts)
        } else {
            localtime_r(&seconds, &parts)
        }
        // Python handles %f (microseconds) itself; the frozen clock has none.
        let prepared = try PythonText.replace(format, "%f", "000000")
        guard !prepared.isEmpty else { return "" }
        var capacity = 256
        while capacity <= 65536 {
            var buffer = [CChar](repeating: 0, count: capacity)
            let written = strftime(&buffer, capacity, prepared, &parts)
            if written > 0 {
                return String(decoding: buffer.prefix(written).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            capacity *= 4
        }
        return ""
    }
}
