// Tools (function calling) for both APIs: tool definitions and choices, their rendering into the prompt
// (the model's own template when it renders `tools`, else a system message describing them and the call
// format), and the model's calls parsed back out of its output.
//
// Call format: with tool_choice required / a named tool, constrained decoding makes the output exactly
// {"name": "<tool>", "arguments": {...}} with arguments valid for that tool's schema. With auto, the
// model may answer in text or call a tool in that JSON form or in the Hermes/Qwen form
// <tool_call>{"name": ..., "arguments": ...}</tool_call>; output that parses as a call of a known tool
// becomes a call.

import Engine
import Foundation
import Sampling
import ChatTemplate

struct ToolDefinition {
    var name: String
    var description: String?
    /// The arguments' JSON Schema (parsed JSON).
    var parameters: Any
}

enum ToolChoice: Equatable { case none, auto, required, named(String) }

struct ToolsRequest {
    var tools: [ToolDefinition]
    var choice: ToolChoice

    /// The constraint for required / named choices (nil for auto and none).
    func constraint() throws -> OutputConstraint? {
        let chosen: [ToolDefinition]
        switch choice {
        case .none, .auto: return nil
        case .required: chosen = tools
        case .named(let n): chosen = tools.filter { $0.name == n }
        }
        return .toolCall(try chosen.map { t in
            var schema = t.parameters
            if var o = schema as? [String: Any], o["type"] == nil { o["type"] = "object"; schema = o }
            do { return ToolSchema(name: t.name, arguments: try JSONSchema(schema)) } catch let e as JSONSchemaError {
                throw APIError.invalid("tool '\(t.name)' parameters: \(e.message)", param: "tools")
            }
        })
    }
}

/// A call parsed out of the output.
struct ParsedToolCall {
    var id: String
    var name: String
    /// Arguments as compact JSON text.
    var arguments: String
}

extension APIServer {
    static let toolNameCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")

    static func checkToolName(_ name: String, param: String) throws {
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ toolNameCharacters.contains($0) }) else {
            throw APIError.invalid("tool name '\(name)' must be 1-64 letters, digits, '_', '-' or '.'", param: param)
        }
    }

    /// OpenAI: tools [{"type": "function", "function": {name, description, parameters}}], tool_choice
    /// "none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}.
    func parseOpenAITools(_ body: JSONBody) throws -> ToolsRequest? {
        guard let raw = try body.array("tools"), !raw.isEmpty else {
            if body.has("tool_choice") { throw APIError.invalid("'tool_choice' needs 'tools'", param: "tool_choice") }
            return nil
        }
        try checkToolCount(raw.count)
        var tools: [ToolDefinition] = []
        for (i, t) in raw.enumerated() {
            guard let o = t as? [String: Any], (o["type"] as? String ?? "function") == "function",
                  let f = o["function"] as? [String: Any], let name = f["name"] as? String else {
                throw APIError.invalid("tools[\(i)] must be {\"type\": \"function\", \"function\": {\"name\": ...}}", param: "tools")
            }
            try APIServer.checkToolName(name, param: "tools")
            tools.append(ToolDefinition(name: name, description: f["description"] as? String,
                                        parameters: f["parameters"] ?? ["type": "object", "properties": [String: Any]()]))
        }
        var choice = ToolChoice.auto
        if let c = body.object["tool_choice"], !(c is NSNull) {
            if let s = c as? String {
                switch s {
                case "none": choice = .none
                case "auto": choice = .auto
                case "required": choice = .required
                default: throw APIError.invalid("tool_choice must be none, auto, required or a function", param: "tool_choice")
                }
            } else if let o = c as? [String: Any], let f = o["function"] as? [String: Any], let n = f["name"] as? String {
                choice = .named(n)
            } else {
                throw APIError.invalid("tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}", param: "tool_choice")
            }
        }
        if case .named(let n) = choice, !tools.contains(where: { $0.name == n }) {
            throw APIError.invalid("tool_choice names '\(n)', which is not in tools", param: "tool_choice")
        }
        return ToolsRequest(tools: tools, choice: choice)
    }

    /// Anthropic: tools [{name, description, input_schema}], tool_choice {"type": "auto" | "any" | "tool" | "none", "name"}.
    func parseAnthropicTools(_ body: JSONBody) throws -> ToolsRequest? {
        guard let raw = try body.array("tools"), !raw.isEmpty else { return nil }
        try checkToolCount(raw.count)
        var tools: [ToolDefinition] = []
        for (i, t) in raw.enumerated() {
            guard let o = t as? [String: Any], let name = o["name"] as? String else {
                throw APIError.invalid("tools.\(i) must be an object with a name and an input_schema", param: "tools")
            }
            try APIServer.checkToolName(name, param: "tools")
            tools.append(ToolDefinition(name: name, description: o["description"] as? String,
                                        parameters: o["input_schema"] ?? ["type": "object", "properties": [String: Any]()]))
        }
        var choice = ToolChoice.auto
        if let c = try body.objectValue("tool_choice") {
            switch try c.string("type") ?? "auto" {
            case "auto": choice = .auto
            case "any": choice = .required
            case "none": choice = .none
            case "tool":
                guard let n = try c.string("name"), tools.contains(where: { $0.name == n }) else {
                    throw APIError.invalid("tool_choice.name must name one of the tools", param: "tool_choice")
                }
                choice = .named(n)
            case let other: throw APIError.invalid("tool_choice.type '\(other)' is not auto, any, tool or none", param: "tool_choice")
            }
        }
        return ToolsRequest(tools: tools, choice: choice)
    }

    /// Renders the conversation with tools: through the template's own `tools` when it has them, else as
    /// a system message that lists them and the call format.
    func chatPrompt(_ messages: [ChatMessage], tools: ToolsRequest?) throws -> [Int32] {
        guard let tools, tools.choice != .none else { return try chatPrompt(messages) }
        let definitions: [[String: Any]] = tools.tools.map { t in
            var f: [String: Any] = ["name": t.name, "parameters": t.parameters]
            if let d = t.description { f["description"] = d }
            return ["type": "function", "function": f]
        }
        if engine.loaded.templateRendersTools {
            var text = String(decoding: jsonData(definitions), as: UTF8.self)
            if !configuration.parseSpecialInContent { text = PromptBuilder.markUserText(text, engine.loaded) }
            let value: TemplateValue
            do { value = try TemplateValue.parseJSON(text) } catch { throw APIError.invalid("tools could not be rendered: \(error)", param: "tools") }
            do { return try PromptBuilder.chatPrompt(engine.loaded, messages: messages, extra: ["tools": value],
                                                         parseSpecialInContent: configuration.parseSpecialInContent) } catch {
                throw APIError.invalid("the model's chat template failed on these messages: \(error)", param: "messages")
            }
        }
        let list = tools.tools.map { t -> String in
            var f: [String: Any] = ["name": t.name, "parameters": t.parameters]
            if let d = t.description { f["description"] = d }
            return String(decoding: jsonData(f), as: UTF8.self)
        }.joined(separator: "\n")
        let instructions = """
        You can call these functions (each with a JSON Schema of its arguments):
        \(list)
        To call a function, reply with only a JSON object: {"name": "<function name>", "arguments": {<arguments>}}.
        """
        var out = messages.map { m -> ChatMessage in
            // Earlier calls and results in the same plain form.
            var m = m
            if !m.toolCalls.isEmpty {
                let calls = m.toolCalls.map { "{\"name\": \"\($0.name)\", \"arguments\": \($0.arguments)}" }.joined(separator: "\n")
                m.content = m.content.isEmpty ? calls : m.content + "\n" + calls
                m.toolCalls = []
            }
            return m
        }
        if let first = out.first, first.role == "system" {
            out[0].content = first.content + "\n\n" + instructions
        } else {
            out.insert(ChatMessage(role: "system", content: instructions), at: 0)
        }
        return try chatPrompt(out)
    }

    /// The calls in a finished output (empty: the output is a text answer).
    static func parseToolCalls(_ text: String, tools: ToolsRequest) -> [ParsedToolCall] {
        var candidates: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "<tool_call>") {
            let after = rest[open.upperBound...]
            let close = after.range(of: "</tool_call>")
            candidates.append(String(after[..<(close?.lowerBound ?? after.endIndex)]))
            rest = close.map { after[$0.upperBound...] } ?? ""
        }
        if candidates.isEmpty { candidates = [text] }
        var calls: [ParsedToolCall] = []
        for c in candidates {
            guard let data = c.trimmingCharacters(in: .whitespacesAndNewlines).data(using: .utf8),
                  let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  let name = o["name"] as? String, tools.tools.contains(where: { $0.name == name }) else { return [] }
            let args = o["arguments"] ?? o["parameters"] ?? [String: Any]()
            var argText: String
            if let s = args as? String { argText = s } else { argText = String(decoding: jsonData(args), as: UTF8.self) }
            // The constrained layout: keep the arguments exactly as generated (key order, spacing).
            let prefix = String(decoding: ToolCallConstraint.prefix(name), as: UTF8.self), trimmed = c.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.hasPrefix(prefix), trimmed.hasSuffix("}") { argText = String(trimmed.dropFirst(prefix.count).dropLast()) }
            calls.append(ParsedToolCall(id: APIServer.randomID("call_"), name: name, arguments: argText))
        }
        return calls
    }

    /// Output that might still turn out to be a call is held back while streaming with tool_choice auto.
    static func mayBeToolCall(_ text: String) -> Bool {
        let t = text.drop { $0 == " " || $0 == "\n" }
        return t.isEmpty || t.hasPrefix("{") || "<tool_call>".hasPrefix(t.prefix(11)) || t.hasPrefix("<tool_call>")
    }
}

/// Streams a constrained call's arguments as they are generated: the output is
/// {"name": "X", "arguments": ARGS} — once the prefix is known the name is announced, then ARGS is
/// passed on as it grows (the final "}" held back).
extension GenerationRequest {
    /// How a streamed answer treats tool calls: a constrained call streams its arguments as they come
    /// (`streamer`); with tool_choice auto, output that may be a call is held back until it is clearly
    /// text or finished (`holding`).
    var toolStreaming: (streamer: ToolCallStreamer?, holding: Bool) {
        guard let tools else { return (nil, false) }
        if case .toolCall = constraint { return (ToolCallStreamer(tools: tools), false) }
        return (nil, tools.choice == .auto)
    }
}

struct ToolCallStreamer {
    let tools: ToolsRequest
    private var text = ""
    private(set) var name: String?
    private var sent = 0   // characters of ARGS passed on

    init(tools: ToolsRequest) { self.tools = tools }

    /// Adds output text; returns (the call's name if it just became known, new arguments text).
    mutating func push(_ piece: String) -> (name: String?, arguments: String) {
        text += piece
        var announced: String?
        if name == nil {
            for t in tools.tools {
                let prefix = String(decoding: ToolCallConstraint.prefix(t.name), as: UTF8.self)
                if text.hasPrefix(prefix) { name = t.name; announced = t.name; break }
            }
            guard name != nil else { return (nil, "") }
        }
        let prefixCount = ToolCallConstraint.prefix(name!).count
        let args = Array(text.utf8.dropFirst(prefixCount))
        let available = max(0, args.count - 1)   // hold back the last byte: it may be the closing "}"
        guard available > sent else { return (announced, "") }
        // Only whole UTF-8 characters.
        var end = available
        while end > sent && end < args.count && args[end] & 0xC0 == 0x80 { end -= 1 }
        let out = String(decoding: args[sent..<end], as: UTF8.self)
        sent = end
        return (announced, out)
    }

    /// At the end: the rest of the arguments (without the closing "}").
    mutating func finish() -> String {
        guard let name else { return "" }
        let args = Array(text.utf8.dropFirst(ToolCallConstraint.prefix(name).count))
        let end = args.last == 0x7D ? args.count - 1 : args.count
        guard end > sent else { return "" }
        defer { sent = end }
        return String(decoding: args[sent..<end], as: UTF8.self)
    }
}
