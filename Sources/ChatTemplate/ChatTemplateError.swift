/// Every failure of parsing or rendering a template (or parsing JSON) is thrown as this error.
///
/// `kind` tells callers what happened: a server would map `.raised` (the template called
/// `raise_exception`, e.g. "Conversation roles must alternate") to a client error and most others
/// to "this model's template is unsupported".
public struct ChatTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The template source is malformed (unclosed block, bad token, unknown tag/filter/test).
        case syntax
        /// An undefined value was used in a way that needs a value (`undefined.attr`, `undefined + 1`).
        case undefined
        /// An operation got values of the wrong type (Python's TypeError/ValueError and friends).
        case type
        /// The template called `raise_exception(message)`; `message` is the template's text verbatim.
        case raised
        /// The sandbox refused an operation (mutating a list, underscore attributes, huge ranges).
        case security
        /// Other runtime failures (unknown filter inside an `if`, recursion limit, bad arguments).
        case runtime
        /// Malformed JSON given to `TemplateValue.parseJSON`.
        case json
    }

    public let kind: Kind
    public let message: String
    /// 1-based source line of the failing construct, when known.
    public let line: Int?
    /// 1-based column (in Unicode scalars) of the failing construct, when known.
    public let column: Int?

    public init(_ kind: Kind, _ message: String, line: Int? = nil, column: Int? = nil) {
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        var location = ""
        if let line {
            location = " (line \(line)"
            if let column { location += ", column \(column)" }
            location += ")"
        }
        return "\(kind.rawValue) error: \(message)\(location)"
    }

    /// The same error with a location attached, unless it already has one.
    func located(line: Int, column: Int) -> ChatTemplateError {
        if self.line != nil { return self }
        return ChatTemplateError(kind, message, line: line, column: column)
    }
}
