/// Post-parse checks that jinja2 performs while compiling a template, and name collection.
///
/// Both walk the syntax tree with an explicit work list rather than recursion, so a deep tree
/// cannot exhaust the stack here.
enum TemplateValidator {
    /// A node still to visit, with whether it sits in a "soft" frame.
    private enum Item {
        case statement(Statement, soft: Bool)
        case expression(Expression, soft: Bool)
        case filter(FilterCall, soft: Bool)
        case arguments(Arguments, soft: Bool)
    }

    /// Unknown filters and tests are compile errors in jinja2 — except inside an `if` statement or an
    /// inline `a if b else c` (a "soft" frame), where they only fail when actually evaluated.
    /// Loop, macro, call, filter and set-block bodies start a fresh (non-soft) frame.
    static func validate(_ statements: [Statement]) throws {
        try walk(statements) { item in
            switch item {
            case .filter(let filter, let soft) where !soft && !BuiltinFilters.names.contains(filter.name):
                throw ChatTemplateError(
                    .syntax, "No filter named '\(filter.name)'.", line: filter.position.line, column: filter.position.column)
            case .expression(.test(_, let name, _, let position), let soft) where !soft && !BuiltinTests.names.contains(name):
                throw ChatTemplateError(.syntax, "No test named '\(name)'.", line: position.line, column: position.column)
            default:
                break
            }
        }
    }

    /// Every variable name read anywhere in `statements` (including nested macros), plus namespace
    /// variables written through `set ns.attr`.
    static func referencedNames(in statements: [Statement]) -> Set<String> {
        var names = Set<String>()
        try? walk(statements) { item in
            switch item {
            case .expression(.name(let name, _), _):
                names.insert(name)
            case .statement(.assign(.namespaceAttribute(let base, _), _, _), _),
                .statement(.assignBlock(.namespaceAttribute(let base, _), _, _, _), _):
                names.insert(base)
            default:
                break
            }
        }
        return names
    }

    /// Visits every statement, expression, filter and argument list (pre-order, iteratively).
    private static func walk(_ statements: [Statement], visit: (Item) throws -> Void) throws {
        var pending: [Item] = statements.reversed().map { .statement($0, soft: false) }
        while let item = pending.popLast() {
            try visit(item)
            var children: [Item] = []
            switch item {
            case .statement(let statement, let soft):
                children = Self.children(of: statement, soft: soft)
            case .expression(let expression, let soft):
                children = Self.children(of: expression, soft: soft)
            case .filter(let filter, let soft):
                children = [.arguments(filter.arguments, soft: soft)]
            case .arguments(let arguments, let soft):
                children = arguments.positional.map { .expression($0, soft: soft) }
                children += arguments.keywords.map { .expression($0.value, soft: soft) }
                if let extra = arguments.extraPositional { children.append(.expression(extra, soft: soft)) }
                if let extra = arguments.extraKeywords { children.append(.expression(extra, soft: soft)) }
            }
            pending.append(contentsOf: children.reversed())
        }
    }

    private static func statements(_ body: [Statement], soft: Bool) -> [Item] {
        body.map { .statement($0, soft: soft) }
    }

    private static func children(of macro: MacroDefinition) -> [Item] {
        macro.parameters.compactMap { $0.defaultValue.map { .expression($0, soft: false) } }
            + statements(macro.body, soft: false)
    }

    private static func children(of statement: Statement, soft: Bool) -> [Item] {
        switch statement {
        case .text, .breakLoop, .continueLoop:
            return []
        case .output(let expression):
            return [.expression(expression, soft: soft)]
        case .ifChain(let branches, let elseBody):
            return branches.flatMap { [.expression($0.condition, soft: true)] + statements($0.body, soft: true) }
                + statements(elseBody, soft: true)
        case .forLoop(let loop):
            return [.expression(loop.iterable, soft: soft)] + (loop.filter.map { [.expression($0, soft: false)] } ?? [])
                + statements(loop.body, soft: false) + statements(loop.elseBody, soft: false)
        case .assign(_, let value, _):
            return [.expression(value, soft: soft)]
        case .assignBlock(_, let filters, let body, _):
            return filters.map { .filter($0, soft: soft) } + statements(body, soft: false)
        case .macro(let macro):
            return children(of: macro)
        case .callBlock(let block):
            return [.expression(block.call, soft: soft)] + children(of: block.caller)
        case .filterBlock(let filters, let body, _):
            return filters.map { .filter($0, soft: soft) } + statements(body, soft: false)
        case .with(let assignments, let body):
            return assignments.map { .expression($0.1, soft: soft) } + statements(body, soft: false)
        case .scoped(let body):
            return statements(body, soft: false)
        }
    }

    private static func children(of expression: Expression, soft: Bool) -> [Item] {
        switch expression {
        case .constant, .name:
            return []
        case .list(let items, _), .tuple(let items, _), .concat(let items, _):
            return items.map { .expression($0, soft: soft) }
        case .dictionary(let items, _):
            return items.flatMap { [.expression($0.key, soft: soft), .expression($0.value, soft: soft)] }
        case .attribute(let base, _, _):
            return [.expression(base, soft: soft)]
        case .item(let base, let key, _):
            return [.expression(base, soft: soft), .expression(key, soft: soft)]
        case .slice(let base, let start, let stop, let step, _):
            return [.expression(base, soft: soft)] + [start, stop, step].compactMap { $0.map { .expression($0, soft: soft) } }
        case .call(let callee, let arguments, _):
            return [.expression(callee, soft: soft), .arguments(arguments, soft: soft)]
        case .filter(let base, let filter):
            return [.expression(base, soft: soft), .filter(filter, soft: soft)]
        case .test(let base, _, let arguments, _):
            return [.expression(base, soft: soft), .arguments(arguments, soft: soft)]
        case .negate(let operand, _), .plus(let operand, _), .not(let operand, _):
            return [.expression(operand, soft: soft)]
        case .binary(_, let left, let right, _), .and(let left, let right, _), .or(let left, let right, _):
            return [.expression(left, soft: soft), .expression(right, soft: soft)]
        case .compare(let first, let steps, _):
            return [.expression(first, soft: soft)] + steps.map { .expression($0.operand, soft: soft) }
        case .conditional(let test, let then, let otherwise, _):
            return [.expression(test, soft: true), .expression(then, soft: true)]
                + (otherwise.map { [.expression($0, soft: true)] } ?? [])
        }
    }
}
