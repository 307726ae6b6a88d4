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
        var messages: [ChatMessage] = []
        if body.has("system") { messages.append(ChatMessage(role: "system", content: try contentText(body.object["system"], param: "system"))) }
        for (i, m) in raw.enumerated() {
            guard let o = m as? [String: Any] else { throw APIError.invalid("messages.\(i) must be an object", param: "messages") }
            guard let role = o["role"] as? String, role == "user" || role == "assistant" else {
                throw APIError.invalid("messages.\(i).role must be \"user\" or \"assistant\"", param: "messages")
            }
            messages.append(ChatMessage(role: role, content: try contentText(o["content"], param: "messages.\(i).content")))
        }
        if let tools = try body.array("tools"), !tools.isEmpty {
            throw APIError.invalid("tools are not supported by this server yet", param: "tools")
        }
        let prompt = try chatPrompt(messages)
        var options = GenerationOptions()
        options.sampler = try samplerParameters(body, maxTemperature: 1)
        if !body.has("temperature") { options.sampler.temperature = 1 }   // Anthropic's default
        options.stop = try body.strings("stop_sequences", max: 16)
        options.maxTokens = try self.maxTokens(maxTokens, prompt: prompt.count, param: "max_tokens")
        var request = GenerationRequest(prompt: prompt, options: options, model: model)
        request.stream = try body.bool("stream") ?? false
        return request
    }

    static func anthropicStopReason(_ r: GenerationResult.StopReason) -> String {
        switch r {
        case .endOfGeneration, .cancelled: return "end_turn"
        case .stopString: return "stop_sequence"
        case .length, .contextFull: return "max_tokens"
        }
    }

    func anthropicMessage(id: String, request: GenerationRequest, content: [[String: Any]], finish: EngineFinish?) -> [String: Any] {
        ["id": id, "type": "message", "role": "assistant", "model": request.model, "content": content,
         "stop_reason": finish.map { APIServer.anthropicStopReason($0.stopReason) } ?? NSNull(),
         "stop_sequence": finish?.stopSequence.map { $0 as Any } ?? NSNull(),
         "usage": ["input_tokens": request.prompt.count - (finish?.cachedPromptTokens ?? 0),
                   "cache_read_input_tokens": finish?.cachedPromptTokens ?? 0,
                   "output_tokens": finish?.completionTokens ?? 0]]
    }
}
