// OpenAI-compatible endpoints: POST /v1/chat/completions and POST /v1/completions, answered whole or as
// Server-Sent Events ("chat.completion.chunk" / "text_completion" objects, a final chunk with the
// finish_reason, an optional usage chunk, then "data: [DONE]").

import Engine
import Sampling
import Foundation

extension APIServer {
    func parseChatCompletion(_ body: JSONBody) throws -> GenerationRequest {
        let model = try checkModel(body)
        guard let raw = try body.array("messages") else { throw APIError.invalid("'messages' is required", param: "messages") }
        guard !raw.isEmpty else { throw APIError.invalid("'messages' must not be empty", param: "messages") }
        try checkMessageCount(raw.count)
        var messages: [ChatMessage] = []
        for (i, m) in raw.enumerated() {
            guard let o = m as? [String: Any] else { throw APIError.invalid("messages[\(i)] must be an object", param: "messages") }
            guard let role = o["role"] as? String else { throw APIError.invalid("messages[\(i)].role must be a string", param: "messages") }
            guard ["system", "developer", "user", "assistant", "tool"].contains(role) else {
                throw APIError.invalid("messages[\(i)].role '\(role)' is not one of system, developer, user, assistant, tool", param: "messages")
            }
            var message = ChatMessage(role: role == "developer" ? "system" : role,
                                      content: try contentText(o["content"], param: "messages[\(i)].content"))
            if let calls = o["tool_calls"] as? [Any] {
                for (j, c) in calls.enumerated() {
                    guard let call = c as? [String: Any], let f = call["function"] as? [String: Any], let name = f["name"] as? String else {
                        throw APIError.invalid("messages[\(i)].tool_calls[\(j)] must have function.name", param: "messages")
                    }
                    let args = (f["arguments"] as? String) ?? f["arguments"].map { String(decoding: jsonData($0), as: UTF8.self) } ?? "{}"
                    try checkArgumentsNesting(args, param: "messages[\(i)].tool_calls[\(j)].function.arguments")
                    message.toolCalls.append(ToolCall(id: call["id"] as? String ?? "call_\(i)_\(j)", name: name, arguments: args))
                }
            }
            message.toolCallId = o["tool_call_id"] as? String
            messages.append(message)
        }
        try rejectUnsupported(body)
        let tools = try parseOpenAITools(body)
        try checkPromptBytes(messages.reduce(0) { $0 + $1.textBytes }, param: "messages")
        var request = try finishOpenAI(body, prompt: try chatPrompt(messages, tools: tools), model: model)
        request.tools = tools
        if let c = try tools?.constraint() { request.constraint = c }
        return request
    }

    func parseCompletion(_ body: JSONBody) throws -> GenerationRequest {
        let model = try checkModel(body)
        let text: String
        if let s = body.object["prompt"] as? String {
            text = s
        } else if let a = body.object["prompt"] as? [Any], a.count == 1, let s = a[0] as? String {
            text = s
        } else if body.has("prompt") {
            throw APIError.invalid("'prompt' must be a string (or an array of one string)", param: "prompt")
        } else {
            throw APIError.invalid("'prompt' is required", param: "prompt")
        }
        try rejectUnsupported(body)
        try checkPromptBytes(text.utf8.count, param: "prompt")
        var request = try finishOpenAI(body, prompt: PromptBuilder.rawPrompt(engine.loaded, text), model: model)
        // Legacy completions: logprobs is the number of alternatives.
        if let n = try body.integer("logprobs", in: 0...20) { request.topLogprobs = n }
        return request
    }

    /// Features not built yet are refused clearly rather than ignored.
    private func rejectUnsupported(_ body: JSONBody) throws {
        if let n = try body.integer("n"), n != 1 { throw APIError.invalid("only n = 1 is supported", param: "n") }
    }

    private func finishOpenAI(_ body: JSONBody, prompt: [Int32], model: String) throws -> GenerationRequest {
        var options = GenerationOptions()
        options.sampler = try samplerParameters(body, maxTemperature: 2)
        options.stop = try body.strings("stop", max: configuration.limits.maxStopStrings, maxBytes: configuration.limits.maxStopBytes)
        options.ignoreEOS = try body.bool("ignore_eos") ?? false   // llama.cpp's extension (benchmarks)
        let requested = try body.integer("max_completion_tokens", in: 0...10_000_000) ?? body.integer("max_tokens", in: 0...10_000_000)
        options.maxTokens = try maxTokens(requested, prompt: prompt.count, param: body.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens")
        var request = GenerationRequest(prompt: prompt, options: options, model: model)
        if let schema = try responseFormat(body) { request.constraint = .json(schema) }
        request.stream = try body.bool("stream") ?? false
        if let so = try body.objectValue("stream_options") { request.includeUsage = try so.bool("include_usage") ?? false }
        if try body.bool("logprobs") == true {
            request.topLogprobs = try body.integer("top_logprobs", in: 0...20) ?? 0
        } else if body.has("top_logprobs"), !body.has("logprobs") {
            throw APIError.invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs")
        }
        return request
    }

    /// response_format: text (nil), json_object (any object) or json_schema (its schema), enforced by
    /// constrained decoding.
    func responseFormat(_ body: JSONBody) throws -> JSONSchema? {
        guard let format = try body.objectValue("response_format") else { return nil }
        guard let type = try format.string("type") else { throw APIError.invalid("response_format.type is required", param: "response_format") }
        switch type {
        case "text": return nil
        case "json_object": return JSONSchema(anyOf: .object)
        case "json_schema":
            guard let spec = try format.objectValue("json_schema") else {
                throw APIError.invalid("response_format.json_schema is required for type json_schema", param: "response_format")
            }
            guard let schema = spec.object["schema"] else { return JSONSchema(anyOf: .object) }
            do { return try JSONSchema(schema) } catch let e as JSONSchemaError {
                throw APIError.invalid("response_format.json_schema.schema: \(e.message)", param: "response_format")
            }
        default:
            throw APIError.invalid("response_format.type must be text, json_object or json_schema, got '\(type)'", param: "response_format")
        }
    }

    static func finishReason(_ r: GenerationResult.StopReason) -> String {
        switch r {
        case .endOfGeneration, .stopString, .cancelled: return "stop"
        case .length, .contextFull: return "length"
        }
    }

    static func usage(_ f: EngineFinish) -> [String: Any] {
        ["prompt_tokens": f.promptTokens, "completion_tokens": f.completionTokens, "total_tokens": f.promptTokens + f.completionTokens,
         "prompt_tokens_details": ["cached_tokens": f.cachedPromptTokens]]
    }

    /// llama-server's `timings` (its extension, in the whole answer and the last streamed chunk): prompt
    /// tokens evaluated (cached ones not counted) over the time to the first token, generated tokens over
    /// the time after it.
    static func timings(_ f: EngineFinish) -> [String: Any] {
        let promptSeconds = f.timeToFirstToken ?? f.seconds
        let evaluated = f.promptTokens - f.cachedPromptTokens
        let decodeSeconds = max(0, f.seconds - promptSeconds)
        let decoded = max(0, f.completionTokens - 1)   // the first token comes from the prompt's pass
        return ["cache_n": f.cachedPromptTokens, "prompt_n": evaluated, "prompt_ms": promptSeconds * 1000,
                "prompt_per_second": promptSeconds > 0 ? Double(evaluated) / promptSeconds : 0,
                "predicted_n": f.completionTokens, "predicted_ms": decodeSeconds * 1000,
                "predicted_per_second": decodeSeconds > 0 ? Double(decoded) / decodeSeconds : 0]
    }

    /// Chat logprobs content entries of tokens.
    static func chatLogprobs(_ tokens: [TokenLogprob]) -> [[String: Any]] {
        tokens.map { t in
            ["token": String(decoding: t.bytes, as: UTF8.self), "logprob": Double(t.logprob), "bytes": t.bytes.map(Int.init),
             "top_logprobs": t.top.map { ["token": String(decoding: $0.bytes, as: UTF8.self), "logprob": Double($0.logprob),
                                          "bytes": $0.bytes.map(Int.init)] as [String: Any] }]
        }
    }

    /// Legacy completions logprobs object.
    static func completionLogprobs(_ tokens: [TokenLogprob]) -> [String: Any] {
        ["tokens": tokens.map { String(decoding: $0.bytes, as: UTF8.self) },
         "token_logprobs": tokens.map { Double($0.logprob) },
         "top_logprobs": tokens.map { t in Dictionary(t.top.map { (String(decoding: $0.bytes, as: UTF8.self), Double($0.logprob)) },
                                                      uniquingKeysWith: { a, _ in a }) },
         "text_offset": [Int]()]
    }

    /// The whole answer of a chat or text completion.
    func openAIResponse(chat: Bool, id: String, request: GenerationRequest, text: String, tokens: [TokenLogprob],
                        finish: EngineFinish) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "finish_reason": APIServer.finishReason(finish.stopReason)]
        let calls = request.tools.map { APIServer.parseToolCalls(text, tools: $0) } ?? []
        if chat && !calls.isEmpty {
            choice["message"] = ["role": "assistant", "content": NSNull(),
                                 "tool_calls": calls.map { ["id": $0.id, "type": "function", "function": ["name": $0.name, "arguments": $0.arguments]] }]
            choice["finish_reason"] = "tool_calls"
            choice["logprobs"] = request.topLogprobs == nil ? NSNull() : ["content": APIServer.chatLogprobs(tokens)] as Any
        } else if chat {
            choice["message"] = ["role": "assistant", "content": text]
            choice["logprobs"] = request.topLogprobs == nil ? NSNull() : ["content": APIServer.chatLogprobs(tokens)] as Any
        } else {
            choice["text"] = text
            choice["logprobs"] = request.topLogprobs == nil ? NSNull() : APIServer.completionLogprobs(tokens) as Any
        }
        return ["id": id, "object": chat ? "chat.completion" : "text_completion", "created": Int(Date().timeIntervalSince1970),
                "model": request.model, "system_fingerprint": fingerprint, "choices": [choice], "usage": APIServer.usage(finish),
                "timings": APIServer.timings(finish)]
    }

    /// A streamed chunk carrying a tool call delta: the call's header (id, name) when first announced,
    /// then pieces of its arguments.
    func openAIToolChunk(id: String, request: GenerationRequest, index: Int, callID: String?, name: String?, arguments: String) -> [String: Any] {
        var function: [String: Any] = ["arguments": arguments]
        var call: [String: Any] = ["index": index]
        if let name { function["name"] = name; call["id"] = callID ?? ""; call["type"] = "function" }
        call["function"] = function
        var chunk: [String: Any] = ["id": id, "object": "chat.completion.chunk", "created": Int(Date().timeIntervalSince1970),
                                    "model": request.model, "system_fingerprint": fingerprint,
                                    "choices": [["index": 0, "delta": ["tool_calls": [call]], "logprobs": NSNull(), "finish_reason": NSNull()]]]
        if request.includeUsage { chunk["usage"] = NSNull() }
        return chunk
    }

    /// One streamed chunk (delta text, or the final chunk with a finish reason).
    func openAIChunk(chat: Bool, id: String, request: GenerationRequest, text: String?, tokens: [TokenLogprob],
                     finishReason: String?, first: Bool) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "finish_reason": finishReason ?? NSNull()]
        if chat {
            var delta: [String: Any] = [:]
            if first { delta["role"] = "assistant" }
            if let text { delta["content"] = text }
            choice["delta"] = delta
            choice["logprobs"] = request.topLogprobs == nil || tokens.isEmpty ? NSNull() : ["content": APIServer.chatLogprobs(tokens)] as Any
        } else {
            choice["text"] = text ?? ""
            choice["logprobs"] = request.topLogprobs == nil || tokens.isEmpty ? NSNull() : APIServer.completionLogprobs(tokens) as Any
        }
        var chunk: [String: Any] = ["id": id, "object": chat ? "chat.completion.chunk" : "text_completion",
                                    "created": Int(Date().timeIntervalSince1970), "model": request.model,
                                    "system_fingerprint": fingerprint, "choices": [choice]]
        if request.includeUsage { chunk["usage"] = NSNull() }
        return chunk
    }
}
