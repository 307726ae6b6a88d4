// Constraints on what a generation may output, checked token by token (constrained decoding): JSON of a
// schema (response_format), or one tool call `{"name": "<tool>", "arguments": <that tool's arguments>}`
// (tool_choice required / a named tool).

/// A recogniser fed the output's bytes: which continuations fit, and when the output is done.
public protocol TokenConstraint: Sendable {
    /// Whether `bytes` may come next (the state is unchanged).
    func accepts(_ bytes: [UInt8]) -> Bool
    /// Consumes `bytes` (false: they do not fit; the state is then undefined).
    mutating func feed(_ bytes: [UInt8]) -> Bool
    /// The output may end here.
    var isComplete: Bool { get }
    /// Nothing more may follow.
    var isFinished: Bool { get }
}

extension JSONConstraint: TokenConstraint {}

/// A tool's name and the schema of its arguments.
public struct ToolSchema: Sendable {
    public var name: String
    public var arguments: JSONSchema
    public init(name: String, arguments: JSONSchema) { self.name = name; self.arguments = arguments }
}

public enum OutputConstraint: Sendable {
    case json(JSONSchema)
    case toolCall([ToolSchema])

    /// A fresh recogniser for this constraint.
    public func start() -> any TokenConstraint {
        switch self {
        case .json(let s): return JSONConstraint(schema: s)
        case .toolCall(let tools): return ToolCallConstraint(tools: tools)
        }
    }
}

/// `{"name": "<one of the tools>", "arguments": <JSON its schema accepts>}`, in exactly this layout.
public struct ToolCallConstraint: TokenConstraint {
    public let tools: [ToolSchema]
    /// The text before a tool's arguments.
    public static func prefix(_ name: String) -> [UInt8] { Array("{\"name\": \"\(name)\", \"arguments\": ".utf8) }

    enum Phase: Sendable {
        case prefix(candidates: [Int], matched: Int)
        case arguments(JSONConstraint)
        case closing
        case done
    }
    private var phase: Phase
    private let prefixes: [[UInt8]]

    public init(tools: [ToolSchema]) {
        self.tools = tools
        prefixes = tools.map { ToolCallConstraint.prefix($0.name) }
        phase = .prefix(candidates: Array(tools.indices), matched: 0)
    }

    public var isComplete: Bool { if case .done = phase { return true }; return false }
    public var isFinished: Bool { isComplete }

    public func accepts(_ bytes: [UInt8]) -> Bool {
        var copy = self
        return copy.feed(bytes)
    }

    public mutating func feed(_ bytes: [UInt8]) -> Bool {
        for b in bytes {
            switch phase {
            case .prefix(let candidates, let matched):
                let rest = candidates.filter { prefixes[$0].count > matched && prefixes[$0][matched] == b }
                guard !rest.isEmpty else { return false }
                if rest.count == 1 && prefixes[rest[0]].count == matched + 1 {
                    phase = .arguments(JSONConstraint(schema: tools[rest[0]].arguments))
                } else {
                    phase = .prefix(candidates: rest, matched: matched + 1)
                }
            case .arguments(var json):
                guard json.feed([b]) else { return false }
                phase = json.isFinished ? .closing : .arguments(json)
            case .closing:
                guard b == 0x7D else { return false }
                phase = .done
            case .done:
                return false
            }
        }
        return true
    }
}
