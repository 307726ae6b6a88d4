/// Post-parse checks that jinja2 performs while compiling a template.
enum TemplateValidator {
    /// Unknown filters and tests are compile errors in jinja2 — except inside an `if` statement or an
    /// inline `a if b else c` (a "soft" frame), where they only fail when actually evaluated.
    /// Loop, macro, call, filter and set-block bodies start a fresh (non-soft) frame.
    static func validate(_ statements: [Statement]) throws {
        try walk(statements, soft: false)
    }

    private static func walk(_ statements: [Statement], soft: Bool) throws {
        for statement in statements { try walk(statement, soft: soft) }
    }

    private static func walk(_ statement: Statement, soft: Bool) throws {
        switch statement {
        case .text, .breakLoop, .continueLoop:
            break
        case .output(let expression):
            try walk(expression, soft: soft)
        case .ifChain(let branches, let elseBody):
            for branch in branches {
                try walk(branch.condition, soft: true)
                try walk(branch.body, soft: true)
            }
            try walk(elseBody, soft: true)
        case .forLoop(let loop):
            try walk(loop.iterable, soft: soft)
            if let filter = loop.filter { try walk(filter, soft: false) }
            try walk(loop.body, soft: false)
            try walk(loop.elseBody, soft: false)
        case .assign(_, let value, _):
            try walk(value, soft: soft)
        case .assignBlock(_, let filters, let body, _):
            try walk(filters, soft: soft)
            try walk(body, soft: false)
        case .macro(let macro):
            try walk(macro, soft: soft)
        case .callBlock(let block):
            try walk(block.call, soft: soft)
            try walk(block.caller, soft: soft)
        case .filterBlock(let filters, let body, _):
            try walk(filters, soft: soft)
            try walk(body, soft: false)
        case .with(let assignments, let body):
            for (_, value) in assignments { try walk(value, soft: soft) }
            try walk(body, soft: false)
        case .scoped(let body):
            try walk(body, soft: false)
        }
    }

    private static func walk(_ macro: MacroDefinition, soft: Bool) throws {
        for parameter in macro.parameters {
            if let value = parameter.defaultValue { try walk(value, soft: false) }
        }
        try walk(macro.body, soft: false)
    }

    private static func walk(_ filters: [FilterCall], soft: Bool) throws {
        for filter in filters { try check(filter, soft: soft) }
    }

    private static func check(_ filter: FilterCall, soft: Bool) throws {
        if !soft && !BuiltinFilters.names.contains(filter.name) {
            throw ChatTemplateError(
                .syntax, "No filter named '\(filter.name)'.", line: filter.position.line,
                column: filter.position.column)
        }
        try walk(filter.arguments, soft: soft)
    }

    private static func walk(_ arguments: Arguments, soft: Bool) throws {
        for argument in arguments.positional { try walk(argument, soft: soft) }
        for keyword in arguments.keywords { try walk(keyword.value, soft: soft) }
        if let extra = arguments.extraPositional { try walk(extra, soft: soft) }
        if let extra = arguments.extraKeywords { try walk(extra, soft: soft) }
    }

    private static func walk(_ expression: Expression, soft: Bool) throws {
        switch expression {
        case .constant, .name:
            break
        case .list(let items, _), .tuple(let items, _), .concat(let items, _):
            for item in items { try walk(item, soft: soft) }
        case .dictionary(let items, _):
            for item in items {
                try walk(item.key, soft: soft)
                try walk(item.value, soft: soft)
            }
        case .attribute(let base, _, _):
            try walk(base, soft: soft)
        case .item(let base, let key, _):
            try walk(base, soft: soft)
            try walk(key, soft: soft)
        case .slice(let base, let start, let stop, let step, _):
            try walk(base, soft: soft)
            for part in [start, stop, step] { if let part { try walk(part, soft: soft) } }
        case .call(let callee, let arguments, _):
            try walk(callee, soft: soft)
            try walk(arguments, soft: soft)
        case .filter(let base, let filter):
            try walk(base, soft: soft)
            try check(filter, soft: soft)
        case .test(let base, let name, let arguments, let position):
            try walk(base, soft: soft)
            if !soft && !BuiltinTests.names.contains(name) {
                throw ChatTemplateError(.syntax, "No test named '\(name)'.", line: position.line, column: position.column)
            }
            try walk(arguments, soft: soft)
        case .negate(let operand, _), .plus(let operand, _), .not(let operand, _):
            try walk(operand, soft: soft)
        case .binary(_, let left, let right, _), .and(let left, let right, _), .or(let left, let right, _):
            try walk(left, soft: soft)
            try walk(right, soft: soft)
        case .compare(let first, let steps, _):
            try walk(first, soft: soft)
            for step in steps { try walk(step.operand, soft: soft) }
        case .conditional(let test, let then, let otherwise, _):
            try walk(test, soft: true)
            try walk(then, soft: true)
            if let otherwise { try walk(otherwise, soft: true) }
        }
    }

    // MARK: - Name references

    /// Every variable name read anywhere in `statements` (including nested macros).
    static func referencedNames(in statements: [Statement]) -> Set<String> {
        var names = Set<String>()
        for statement in statements { collect(statement, into: &names) }
        return names
    }

    private static func collect(_ statement: Statement, into names: inout Set<String>) {
        switch statement {
        case .text, .breakLoop, .continueLoop:
            break
        case .output(let expression):
            collect(expression, into: &names)
        case .ifChain(let branches, let elseBody):
            for branch in branches {
                collect(branch.condition, into: &names)
                for child in branch.body { collect(child, into: &names) }
            }
            for child in elseBody { collect(child, into: &names) }
        case .forLoop(let loop):
            collect(loop.iterable, into: &names)
            if let filter = loop.filter { collect(filter, into: &names) }
            for child in loop.body + loop.elseBody { collect(child, into: &names) }
        case .assign(let target, let value, _):
            if case .namespaceAttribute(let base, _) = target { names.insert(base) }
            collect(value, into: &names)
        case .assignBlock(let target, let filters, let body, _):
            if case .namespaceAttribute(let base, _) = target { names.insert(base) }
            for filter in filters { collect(filter.arguments, into: &names) }
            for child in body { collect(child, into: &names) }
        case .macro(let macro):
            for parameter in macro.parameters {
                if let value = parameter.defaultValue { collect(value, into: &names) }
            }
            for child in macro.body { collect(child, into: &names) }
        case .callBlock(let block):
            collect(block.call, into: &names)
            for child in block.caller.body { collect(child, into: &names) }
        case .filterBlock(let filters, let body, _):
            for filter in filters { collect(filter.arguments, into: &names) }
            for child in body { collect(child, into: &names) }
        case .with(let assignments, let body):
            for (_, value) in assignments { collect(value, into: &names) }
            for child in body { collect(child, into: &names) }
        case .scoped(let body):
            for child in body { collect(child, into: &names) }
        }
    }

    private static func collect(_ arguments: Arguments, into names: inout Set<String>) {
        for argument in arguments.positional { collect(argument, into: &names) }
        for keyword in arguments.keywords { collect(keyword.value, into: &names) }
        if let extra = arguments.extraPositional { collect(extra, into: &names) }
        if let extra = arguments.extraKeywords { collect(extra, into: &names) }
    }

    private static func collect(_ expression: Expression, into names: inout Set<String>) {
        switch expression {
        case .constant:
            break
        case .name(let name, _):
            names.insert(name)
        case .list(let items, _), .tuple(let items, _), .concat(let items, _):
            for item in items { collect(item, into: &names) }
        case .dictionary(let items, _):
            for item in items {
                collect(item.key, into: &names)
                collect(item.value, into: &names)
            }
        case .attribute(let base, _, _):
            collect(base, into: &names)
        case .item(let base, let key, _):
            collect(base, into: &names)
            collect(key, into: &names)
        case .slice(let base, let start, let stop, let step, _):
            collect(base, into: &names)
            for part in [start, stop, step] { if let part { collect(part, into: &names) } }
        case .call(let callee, let arguments, _):
            collect(callee, into: &names)
            collect(arguments, into: &names)
        case .filter(let base, let filter):
            collect(base, into: &names)
            collect(filter.arguments, into: &names)
        case .test(let base, _, let arguments, _):
            collect(base, into: &names)
            collect(arguments, into: &names)
        case .negate(let operand, _), .plus(let operand, _), .not(let operand, _):
            collect(operand, into: &names)
        case .binary(_, let left, let right, _), .and(let left, let right, _), .or(let left, let right, _):
            collect(left, into: &names)
            collect(right, into: &names)
        case .compare(let first, let steps, _):
            collect(first, into: &names)
            for step in steps { collect(step.operand, into: &names) }
        case .conditional(let test, let then, let otherwise, _):
            collect(test, into: &names)
            collect(then, into: &names)
            if let otherwise { collect(otherwise, into: &names) }
        }
    }
}
