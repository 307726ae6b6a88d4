/// The parsed template: statements and expressions (a subset of jinja2's `nodes`).

/// A literal value in the source, or a value computed by constant folding (which can be a list,
/// tuple or dict of constants, like Python values with a "safe repr" in jinja2's optimizer).
indirect enum Constant: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Constant])
    case tuple([Constant])
    case dict(keys: [Constant], values: [Constant])
}

enum BinaryOperator: String, Sendable {
    case add = "+"
    case subtract = "-"
    case multiply = "*"
    case divide = "/"
    case floorDivide = "//"
    case modulo = "%"
    case power = "**"
}

enum ComparisonOperator: String, Sendable {
    case equal = "=="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case contains = "in"
    case notContains = "not in"
}

struct KeywordArgument: Sendable {
    let name: String
    let value: Expression
}

/// Call arguments: `f(a, b, key=c, *rest, **more)`.
struct Arguments: Sendable {
    var positional: [Expression] = []
    var keywords: [KeywordArgument] = []
    var extraPositional: Expression? = nil
    var extraKeywords: Expression? = nil

    static let empty = Arguments()
}

/// One `|name(args)` application; `name` may be dotted (jinja2 allows it, though no builtin uses it).
struct FilterCall: Sendable {
    let name: String
    let arguments: Arguments
    let position: SourcePosition
}

struct ComparisonStep: Sendable {
    let op: ComparisonOperator
    let operand: Expression
}

struct DictionaryItem: Sendable {
    let key: Expression
    let value: Expression
}

indirect enum Expression: Sendable {
    case constant(Constant, SourcePosition)
    case name(String, SourcePosition)
    case list([Expression], SourcePosition)
    case tuple([Expression], SourcePosition)
    case dictionary([DictionaryItem], SourcePosition)
    /// `value.name`
    case attribute(Expression, String, SourcePosition)
    /// `value[key]`
    case item(Expression, Expression, SourcePosition)
    /// `value[start:stop:step]`
    case slice(Expression, start: Expression?, stop: Expression?, step: Expression?, SourcePosition)
    case call(Expression, Arguments, SourcePosition)
    case filter(Expression, FilterCall)
    /// `value is [not] name(args)`; negation is a separate `.not` node, as in jinja2.
    case test(Expression, name: String, Arguments, SourcePosition)
    case negate(Expression, SourcePosition)
    case plus(Expression, SourcePosition)
    case not(Expression, SourcePosition)
    case binary(BinaryOperator, Expression, Expression, SourcePosition)
    case and(Expression, Expression, SourcePosition)
    case or(Expression, Expression, SourcePosition)
    case compare(Expression, [ComparisonStep], SourcePosition)
    /// `a ~ b ~ c`
    case concat([Expression], SourcePosition)
    /// `then if test else otherwise`; without `else` the false branch is undefined.
    case conditional(test: Expression, then: Expression, otherwise: Expression?, SourcePosition)

    var position: SourcePosition {
        switch self {
        case .constant(_, let p), .name(_, let p), .list(_, let p), .tuple(_, let p), .dictionary(_, let p),
            .attribute(_, _, let p), .item(_, _, let p), .slice(_, _, _, _, let p), .call(_, _, let p),
            .test(_, _, _, let p), .negate(_, let p), .plus(_, let p), .not(_, let p), .binary(_, _, _, let p),
            .and(_, _, let p), .or(_, _, let p), .compare(_, _, let p), .concat(_, let p),
            .conditional(_, _, _, let p):
            return p
        case .filter(_, let call):
            return call.position
        }
    }
}

/// Left-hand side of `set`, `for` targets and `with`.
indirect enum AssignTarget: Sendable {
    case name(String)
    case tuple([AssignTarget])
    /// `namespace_variable.attribute`
    case namespaceAttribute(String, String)
}

struct ConditionalBranch: Sendable {
    let condition: Expression
    let body: [Statement]
}

struct ForLoop: Sendable {
    let target: AssignTarget
    let iterable: Expression
    let filter: Expression?
    let recursive: Bool
    let body: [Statement]
    let elseBody: [Statement]
    let position: SourcePosition
}

struct MacroParameter: Sendable {
    let name: String
    let defaultValue: Expression?
}

struct MacroDefinition: Sendable {
    let name: String
    let parameters: [MacroParameter]
    let body: [Statement]
    /// Whether the body mentions `caller`, `varargs` or `kwargs` (jinja2 decides extra-argument
    /// acceptance from this).
    let usesCaller: Bool
    let usesVarargs: Bool
    let usesKwargs: Bool
    let position: SourcePosition
}

struct CallBlock: Sendable {
    /// The `caller` macro built from the block body.
    let caller: MacroDefinition
    let call: Expression
    let position: SourcePosition
}

indirect enum Statement: Sendable {
    case text(String)
    case output(Expression)
    case ifChain([ConditionalBranch], elseBody: [Statement])
    case forLoop(ForLoop)
    case assign(AssignTarget, Expression, SourcePosition)
    /// `{% set x | filters %}body{% endset %}`
    case assignBlock(AssignTarget, filters: [FilterCall], body: [Statement], SourcePosition)
    case macro(MacroDefinition)
    case callBlock(CallBlock)
    /// `{% filter f %}body{% endfilter %}`
    case filterBlock(filters: [FilterCall], body: [Statement], SourcePosition)
    /// `{% with a = 1 %}body{% endwith %}`
    case with([(AssignTarget, Expression)], body: [Statement])
    /// A body run in its own scope (e.g. transformers' `{% generation %}` block).
    case scoped([Statement])
    case breakLoop(SourcePosition)
    case continueLoop(SourcePosition)
}
