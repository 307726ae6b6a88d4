// Chat conversations rendered through the model's own template, tokenized for a Session.

import Foundation
import ChatTemplate
import Tokenizers

public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    /// Calls an assistant message made.
    public var toolCalls: [ToolCall] = []
    /// The call a "tool" message answers.
    public var toolCallId: String?
    public init(role: String, content: String, toolCalls: [ToolCall] = [], toolCallId: String? = nil) {
        self.role = role; self.content = content; self.toolCalls = toolCalls; self.toolCallId = toolCallId
    }

    /// The message as chat templates expect it (transformers' layout: tool_calls[i].function.arguments is
    /// an object when it parses).
    var templateValue: TemplateValue {
        var o = TemplateObject()
        o["role"] = .string(role)
        o["content"] = .string(content)
        if !toolCalls.isEmpty {
            o["tool_calls"] = .array(toolCalls.map { call in
                var f = TemplateObject()
                f["name"] = .string(call.name)
                f["arguments"] = (try? TemplateValue.parseJSON(call.arguments)) ?? .string(call.arguments)
                var c = TemplateObject()
                c["id"] = .string(call.id)
                c["type"] = .string("function")
                c["function"] = .object(f)
                return .object(c)
            })
        }
        if let id = toolCallId { o["tool_call_id"] = .string(id) }
        return .object(o)
    }
}

/// A function call: its id, the function's name and its arguments (JSON text).
public struct ToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    public var arguments: String
    public init(id: String, name: String, arguments: String) { self.id = id; self.name = name; self.arguments = arguments }
}

public enum PromptBuilder {
    /// Renders messages with the model's chat template (add_generation_prompt = true) and tokenizes it.
    /// Markup tokens (`<|im_end|>`, `<start_of_turn>`, …) are parsed only where the template wrote them:
    /// the same text inside a message (content, tool calls, tool results) stays text, so a user cannot
    /// forge a turn, unless `parseSpecialInContent` (the old behaviour) is asked for. A leading BOS text
    /// is dropped when the tokenizer adds BOS itself.
    public static func chatPrompt(_ loaded: LoadedModel, messages: [ChatMessage], addGenerationPrompt: Bool = true,
                                  extra: [String: TemplateValue] = [:], parseSpecialInContent: Bool = false) throws -> [Int32] {
        guard let template = loaded.chatTemplate else {
            // Base model: plain concatenation of the turns' text.
            return loaded.tokenizer.encode(messages.map(\.content).joined(separator: "\n"), addSpecial: true, parseSpecial: false)
        }
        let bos = loaded.tokenText(loaded.tokenizer.bosId)
        let eos = loaded.tokenText(loaded.tokenizer.eosId)
        let shown = parseSpecialInContent ? messages : messages.map { markUserText($0, loaded) }
        var text = try template.render(messages: shown.map(\.templateValue), addGenerationPrompt: addGenerationPrompt,
                                       bosToken: bos, eosToken: eos, extra: extra)
        let addsBos = loaded.tokenizer.encode("", addSpecial: true, parseSpecial: false).first == loaded.tokenizer.bosId
        if addsBos, !bos.isEmpty, text.hasPrefix(bos) { text.removeFirst(bos.count) }
        if parseSpecialInContent { return loaded.tokenizer.encode(text, addSpecial: true, parseSpecial: true) }
        let (plain, literal) = UserTextMarks.extract(text)
        return loaded.tokenizer.encode(plain, addSpecial: true, literal: literal, policy: loaded.contentTokenPolicy)
    }

    /// Raw completion prompt (--raw, or no template): the whole text is the caller's, markup included.
    public static func rawPrompt(_ loaded: LoadedModel, _ text: String) -> [Int32] {
        loaded.tokenizer.encode(text, addSpecial: true, parseSpecial: true)
    }

    /// Marks the markup tokens written in user text so that rendering keeps them text (see
    /// UserTextMarks). For text that reaches the template other than through messages (tool lists).
    public static func markUserText(_ text: String, _ loaded: LoadedModel) -> String {
        UserTextMarks.mark(text, ranges: loaded.tokenizer.markupRanges(UserTextMarks.strip(text), policy: loaded.contentTokenPolicy))
    }

    static func markUserText(_ m: ChatMessage, _ loaded: LoadedModel) -> ChatMessage {
        var m = m
        m.content = markUserText(m.content, loaded)
        m.toolCalls = m.toolCalls.map { ToolCall(id: markUserText($0.id, loaded), name: markUserText($0.name, loaded),
                                                 arguments: markUserText($0.arguments, loaded)) }
        m.toolCallId = m.toolCallId.map { markUserText($0, loaded) }
        return m
    }
}

/// Markup written by a user is wrapped in two Unicode noncharacters (U+FDD0 … U+FDD1) before the
/// template renders the messages; after rendering, the marks are removed and the byte ranges they
/// enclosed are where the tokenizer parses no markup. Marks survive what templates do to content
/// (trim, concatenation, tojson without ASCII escaping); the noncharacters a user sends are replaced
/// by U+FFFD first, so they cannot open or close a range.
enum UserTextMarks {
    static let open: [UInt8] = [0xEF, 0xB7, 0x90], close: [UInt8] = [0xEF, 0xB7, 0x91]

    /// `text` without the mark characters (each becomes U+FFFD).
    static func strip(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value == 0xFDD0 || $0.value == 0xFDD1 }) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value == 0xFDD0 || $0.value == 0xFDD1 ? "\u{FFFD}" : $0 }))
    }

    /// `text` (stripped) with marks around the byte `ranges` (sorted, disjoint, of the stripped text).
    static func mark(_ text: String, ranges: [Range<Int>]) -> String {
        let bytes = Array(strip(text).utf8)
        guard !ranges.isEmpty else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + ranges.count * 6)
        var at = 0
        for r in ranges {
            out += bytes[at..<r.lowerBound]
            out += open
            out += bytes[r]
            out += close
            at = r.upperBound
        }
        out += bytes[at...]
        return String(decoding: out, as: UTF8.self)
    }

    /// The rendered text without marks, and the byte ranges (of that text) the marks enclosed. A mark
    /// left open (a template that cut the text) runs to the end.
    static func extract(_ text: String) -> (text: String, literal: [Range<Int>]) {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var literal: [Range<Int>] = []
        var openedAt: Int?
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0xEF, i + 2 < bytes.count, bytes[i + 1] == 0xB7, bytes[i + 2] == 0x90 || bytes[i + 2] == 0x91 {
                if bytes[i + 2] == 0x90 {
                    if openedAt == nil { openedAt = out.count }
                } else if let start = openedAt {
                    if start < out.count { literal.append(start..<out.count) }
                    openedAt = nil
                }
                i += 3
                continue
            }
            out.append(bytes[i])
            i += 1
        }
        if let start = openedAt, start < out.count { literal.append(start..<out.count) }
        return (String(decoding: out, as: UTF8.self), literal)
    }
}
