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
    /// Renders messages with the model's chat template (add_generation_prompt = true) and tokenizes
    /// with special tokens parsed. A leading BOS text is dropped when the tokenizer adds BOS itself.
    public static func chatPrompt(_ loaded: LoadedModel, messages: [ChatMessage], addGenerationPrompt: Bool = true,
                                  extra: [String: TemplateValue] = [:]) throws -> [Int32] {
        guard let template = loaded.chatTemplate else {
            // Base model: plain concatenation of the turns' text.
            return loaded.tokenizer.encode(messages.map(\.content).joined(separator: "\n"), addSpecial: true, parseSpecial: false)
        }
        let bos = loaded.tokenText(loaded.tokenizer.bosId)
        let eos = loaded.tokenText(loaded.tokenizer.eosId)
        var text = try template.render(messages: messages.map(\.templateValue), addGenerationPrompt: addGenerationPrompt,
                                       bosToken: bos, eosToken: eos, extra: extra)
        let addsBos = loaded.tokenizer.encode("", addSpecial: true, parseSpecial: false).first == loaded.tokenizer.bosId
        if addsBos, !bos.isEmpty, text.hasPrefix(bos) { text.removeFirst(bos.count) }
        return loaded.tokenizer.encode(text, addSpecial: true, parseSpecial: true)
    }

    /// Raw completion prompt (--raw, or no template).
    public static func rawPrompt(_ loaded: LoadedModel, _ text: String) -> [Int32] {
        loaded.tokenizer.encode(text, addSpecial: true, parseSpecial: true)
    }
}
