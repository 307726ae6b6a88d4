// Anthropic-compatible endpoint: POST /v1/messages, answered whole or as the Messages streaming events
// (message_start, content_block_start, ping, content_block_delta…, content_block_stop, message_delta
// with the stop reason and output usage, message_stop).

import Engine
import Foundation

extension APIServer {
    func parseMessages(_ body: JSONBody) throws -> GenerationRequest {
        let model = try checkModel(body)
        guard let maxTokens = try body.integer("max_tokens", in: 1...10_000_000) else {
            throw APIError.invalid("'max_tokens' is required", param: "max_tokens")
        }
        guard let raw = try body.array("messages") else { throw APIError.invalid("'messages' is required", param: "messages") }
        guard !raw.isEmpty else { throw APIError.invalid("'messages' must not be empty", param: "messages") }
        try checkMessageCount(raw.count)
        var messages: [ChatMessage] = []
        if body.has("system") { messages.append(ChatMessage(role: "system", content: try contentText(body.object["system"], param: "system"))) }
        for (i, m) in raw.enumerated() {
            guard let o = m as? [String: Any] else { throw APIError.invalid("messages.\(i) must be an object", param: "messages") }
            guard let role = o["role"] as? String, role == "user" || role == "assistant" else {
                throw APIError.invalid("messages.\(i).role must be \"user\" or \"assistant\"", param: "messages")
            }
            messages += try anthropicMessages(role: role, content: o["content"], index: i)
        }
        let tools = try parseAnthropicTools(body)
        try checkPromptBytes(messages.reduce(0) { $0 + $1.textBytes }, param: "messages")
        let prompt = try chatPrompt(messages, tools: tools)
        var options = GenerationOptions()
        options.sampler = try samplerParameters(body, maxTemperature: 1)
        if !body.has("temperature") { options.sampler.temperature = 1 }   // Anthropic's default
        options.stop = try body.strings("stop_sequences", max: configuration.limits.maxStopStrings, maxBytes: configuration.limits.maxStopBytes)
        options.maxTokens = try self.maxTokens(maxTokens, prompt: prompt.count, param: "max_tokens")
        var request = GenerationRequest(prompt: prompt, options: options, model: model)
        request.stream = try body.bool("stream") ?? false
        request.tools = tools
        request.constraint = try tools?.constraint()
        return request
    }

    /// One Anthropic message as chat messages: text blocks, tool_use blocks (an assistant's calls) and
    /// tool_result blocks (one "tool" message each).
    func anthropicMessages(role: String, content: Any?, index i: Int) throws -> [ChatMessage] {
        guard let blocks = content as? [Any] else {
            return [ChatMessage(role: role, content: try contentText(content, param: "messages.\(i).content"))]
        }
        var text = "", calls: [ToolCall] = [], results: [ChatMessage] = []
        for (j, b) in blocks.enumerated() {
            guard let o = b as? [String: Any], let type = o["type"] as? String else {
                throw APIError.invalid("messages.\(i).content.\(j) must be an object with a type", param: "messages")
            }
            switch type {
            case "text": text += o["text"] as? String ?? ""
            case "tool_use":
                guard let name = o["name"] as? String else { throw APIError.invalid("messages.\(i).content.\(j).name is required", param: "messages") }
                calls.append(ToolCall(id: o["id"] as? String ?? "toolu_\(i)_\(j)", name: name,
                                      arguments: String(decoding: jsonData(o["input"] ?? [String: Any]()), as: UTF8.self)))
            case "tool_result":
                let value = try contentText(o["content"], param: "messages.\(i).content.\(j).content")
                results.append(ChatMessage(role: "tool", content: value, toolCallId: o["tool_use_id"] as? String))
            default:
                throw APIError.invalid("messages.\(i).content.\(j) has type '\(type)'; this server accepts text, tool_use and tool_result", param: "messages")
            }
        }
        var out = results
        if !text.isEmpty || !calls.isEmpty || results.isEmpty { out.append(ChatMessage(role: role, content: text, toolCalls: calls)) }
        return out
    }

    static func anthropicStopReason(_ r: GenerationResult.StopReason) -> String {
        switch r {
        case .endOfGeneration, .cancelled: return "end_turn"
        case .stopString: return "stop_sequence"
        case .length, .contextFull: return "max_tokens"
        }
    }

    func anthropicMessage(id: String, request: GenerationRequest, content: [[String: Any]], finish: EngineFinish?,
                          toolUse: Bool = false) -> [String: Any] {
        ["id": id, "type": "message", "role": "assistant", "model": request.model, "content": content,
         "stop_reason": toolUse ? "tool_use" : (finish.map { APIServer.anthropicStopReason($0.stopReason) } ?? NSNull()) as Any,
         "stop_sequence": finish?.stopSequence.map { $0 as Any } ?? NSNull(),
         "usage": ["input_tokens": request.prompt.count - (finish?.cachedPromptTokens ?? 0),
                   "cache_read_input_tokens": finish?.cachedPromptTokens ?? 0,
                   "output_tokens": finish?.completionTokens ?? 0]]
    }
}
