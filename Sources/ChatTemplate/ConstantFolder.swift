/// jinja2's compile-time optimizer: every expression whose value can be computed without the render
/// context, and whose value has a "safe repr" (None, bool, int, float, str, and lists/tuples/dicts
/// of those), is replaced by that constant. This is observable: a constant slice like `(1)[1:]` is
/// computed through the sandbox's lenient `getitem` (undefined, not an error), so `(0 == (1)[1:])`
/// folds to `False` while the same slice evaluated at render time would raise.
enum ConstantFolder {
    static func fold(_ statements: [Statement]) -> [Statement] {
        let folder = Interpreter(fixedTime: nil)
        return statements.map { fold($0, folder) }
    }

    private static func fold(_ statement: Statement, _ folder: Interpreter) -> Statement {
        func body(_ statements: [Statement]) -> [Statement] { statements.map { fold($0, folder) } }
        func expression(_ expression: Expression) -> Expression { fold(expression, folder) }
        switch statement {
        case .text, .breakLoop, .continueLoop:
            return statement
        case .output(let value):
            return .output(expression(value))
        case .ifChain(let branches, let elseBody):
            return .ifChain(
                branches.map { ConditionalBranch(condition: expression($0.condition), body: body($0.body)) },
                elseBody: body(elseBody))
        case .forLoop(let loop):
            return .forLoop(
                ForLoop(
                    target: loop.target, iterable: expression(loop.iterable), filter: loop.filter.map(expression),
                    recursive: loop.recursive, body: body(loop.body), elseBody: body(loop.elseBody), position: loop.position))
        case .assign(let target, let value, let position):
            return .assign(target, expression(value), position)
        case .assignBlock(let target, let filters, let statements, let position):
            return .assignBlock(target, filters: filters.map { fold($0, folder) }, body: body(statements), position)
        case .macro(let macro):
            return .macro(fold(macro, folder))
        case .callBlock(let block):
            return .callBlock(CallBlock(caller: fold(block.caller, folder), call: expression(block.call), position: block.position))
        case .filterBlock(let filters, let statements, let position):
            return .filterBlock(filters: filters.map { fold($0, folder) }, body: body(statements), position)
        case .with(let assignments, let statements):
            return .with(assignments.map { ($0.0, expression($0.1)) }, body: body(statements))
        case .scoped(let statements):
            return .scoped(body(statements))
        }
    }

    private static func fold(_ macro: MacroDefinition, _ folder: Interpreter) -> MacroDefinition {
        MacroDefinition(
            name: macro.name,
            parameters: macro.parameters.map {
                MacroParameter(name: $0.name, defaultValue: $0.defaultValue.map { fold($0, folder) })
            },
            body: macro.body.map { fold($0, folder) }, usesCaller: macro.usesCaller, usesVarargs: macro.usesVarargs,
            usesKwargs: macro.usesKwargs, position: macro.position)
    }

    private static func fold(_ filter: FilterCall, _ folder: Interpreter) -> FilterCall {
        FilterCall(name: filter.name, arguments: fold(filter.arguments, folder), position: filter.position)
    }

    private static func fold(_ arguments: Arguments, _ folder: Interpreter) -> Arguments {
        Arguments(
            positional: arguments.positional.map { fold($0, folder) },
            keywords: arguments.keywords.map { KeywordArgument(name: $0.name, value: fold($0.value, folder)) },
            extraPositional: arguments.extraPositional.map { fold($0, folder) },
            extraKeywords: arguments.extraKeywords.map { fold($0, folder) })
    }

    /// Folds children first, then the node itself (like jinja2's bottom-up `Optimizer`).
    static func fold(_ expression: Expression, _ folder: Interpreter) -> Expression {
        foldTracked(expression, folder).expression
    }

    /// Filters jinja2 never folds (they take the render context).
    private static let contextFilters: Set<String> = ["map", "select", "reject", "selectattr", "rejectattr"]

    /// Returns the folded expression and whether it could still be constant: false when a variable,
    /// call or context filter is evaluated unconditionally. Only candidates are tried, which keeps
    /// folding linear for the usual expressions over `messages` and loop variables.
    private static func foldTracked(_ expression: Expression, _ folder: Interpreter) -> (
        expression: Expression, candidate: Bool
    ) {
        let (rebuilt, candidate) = foldChildren(expression, folder)
        switch rebuilt {
        case .constant, .name: return (rebuilt, candidate)
        default: break
        }
        guard candidate, let value = folder.constantFold(rebuilt), let constant = safeConstant(value) else {
            return (rebuilt, candidate)
        }
        return (.constant(constant, rebuilt.position), true)
    }

    private static func foldChildren(_ expression: Expression, _ folder: Interpreter) -> (Expression, Bool) {
        var candidate = true
        /// Folds a child whose evaluation is unconditional (it decides candidacy).
        func strict(_ expression: Expression) -> Expression {
            let (folded, childCandidate) = foldTracked(expression, folder)
            candidate = candidate && childCandidate
            return folded
        }
        /// Folds a child that is evaluated only sometimes (a lazy `if`/`and`/`or` branch).
        func lazy(_ expression: Expression) -> Expression { foldTracked(expression, folder).expression }
        func arguments(_ arguments: Arguments) -> Arguments {
            if arguments.extraPositional != nil || arguments.extraKeywords != nil { candidate = false }
            return Arguments(
                positional: arguments.positional.map(strict),
                keywords: arguments.keywords.map { KeywordArgument(name: $0.name, value: strict($0.value)) },
                extraPositional: arguments.extraPositional.map(strict), extraKeywords: arguments.extraKeywords.map(strict))
        }
        let rebuilt: Expression
        switch expression {
        case .constant:
            rebuilt = expression
        case .name:
            return (expression, false)
        case .list(let items, let position): rebuilt = .list(items.map(strict), position)
        case .tuple(let items, let position): rebuilt = .tuple(items.map(strict), position)
        case .concat(let items, let position): rebuilt = .concat(items.map(strict), position)
        case .dictionary(let items, let position):
            rebuilt = .dictionary(items.map { DictionaryItem(key: strict($0.key), value: strict($0.value)) }, position)
        case .attribute(let base, let name, let position): rebuilt = .attribute(strict(base), name, position)
        case .item(let base, let key, let position): rebuilt = .item(strict(base), strict(key), position)
        case .slice(let base, let start, let stop, let step, let position):
            rebuilt = .slice(strict(base), start: start.map(strict), stop: stop.map(strict), step: step.map(strict), position)
        case .call(let callee, let callArguments, let position):
            rebuilt = .call(strict(callee), arguments(callArguments), position)
            candidate = false
        case .filter(let base, let filter):
            let folded = FilterCall(name: filter.name, arguments: arguments(filter.arguments), position: filter.position)
            rebuilt = .filter(strict(base), folded)
            if contextFilters.contains(filter.name) || !BuiltinFilters.names.contains(filter.name) { candidate = false }
        case .test(let base, let name, let testArguments, let position):
            rebuilt = .test(strict(base), name: name, arguments(testArguments), position)
            if !BuiltinTests.names.contains(name) { candidate = false }
        case .negate(let operand, let position): rebuilt = .negate(strict(operand), position)
        case .plus(let operand, let position): rebuilt = .plus(strict(operand), position)
        case .not(let operand, let position): rebuilt = .not(strict(operand), position)
        case .binary(let op, let left, let right, let position): rebuilt = .binary(op, strict(left), strict(right), position)
        case .and(let left, let right, let position): rebuilt = .and(strict(left), lazy(right), position)
        case .or(let left, let right, let position): rebuilt = .or(strict(left), lazy(right), position)
        case .compare(let first, let steps, let position):
            rebuilt = .compare(strict(first), steps.map { ComparisonStep(op: $0.op, operand: strict($0.operand)) }, position)
        case .conditional(let test, let then, let otherwise, let position):
            rebuilt = .conditional(test: strict(test), then: lazy(then), otherwise: otherwise.map(lazy), position)
        }
        return (rebuilt, candidate)
    }

    /// The value as a constant if jinja2's `has_safe_repr` accepts it.
    static func safeConstant(_ value: Value) -> Constant? {
        switch value {
        case .none: return Constant.none
        case .bool(let flag): return .bool(flag)
        case .int(let number): return .int(number)
        case .double(let number): return .double(number)
        case .string(let text): return .string(text)
        case .list(let items):
            var constants: [Constant] = []
            for item in items {
                guard let constant = safeConstant(item) else { return nil }
                constants.append(constant)
            }
            return .list(constants)
        case .tuple(let items):
            var constants: [Constant] = []
            for item in items {
                guard let constant = safeConstant(item) else { return nil }
                constants.append(constant)
            }
            return .tuple(constants)
        case .dict(let dictionary):
            var keys: [Constant] = []
            var values: [Constant] = []
            for (key, item) in dictionary.entries {
                guard let keyConstant = safeConstant(key), let valueConstant = safeConstant(item) else { return nil }
                keys.append(keyConstant)
                values.append(valueConstant)
            }
            return .dict(keys: keys, values: values)
        default:
            return nil
        }
    }
}
