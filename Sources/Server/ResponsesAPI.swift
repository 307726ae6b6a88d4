// OpenAI's Responses API: POST /v1/responses (whole, or streamed as its typed events), GET and DELETE
// /v1/responses/{id}. Input items (messages, function calls and their outputs) become chat messages for
// the model's template, `instructions` its system message; tools are flat function definitions;
// `text.format` asks for JSON as `response_format` does in chat. A stored response (`store`, default
// true) can be continued with `previous_response_id`: its conversation is rendered again ahead of the
// new input, and the prefix cache serves the KV pages of the tokens they share.
//
// Streamed events, each with a `sequence_number`: response.created, response.in_progress, then per output
// item response.output_item.added; for text response.content_part.added, response.output_text.delta…,
// response.output_text.done, response.content_part.done; for a call response.function_call_arguments.delta…,
// response.function_call_arguments.done; response.output_item.done; last response.completed (or
// response.incomplete when max_output_tokens cut it).

import Engine
import Foundation
import Hummingbird
import Sampling

struct ResponsesContext {
    var id: String
    var createdAt: Int
    /// The conversation without `instructions` (what a follow-up continues).
    var conversation: [ChatMessage]
    var instructions: String?
    var previousResponseID: String?
    var store: Bool
    /// Request fields the response object repeats (tools, tool_choice, temperature, text, metadata, …).
    var echo: [String: Any]
}

extension APIServer {
    func parseResponses(_ body: JSONBody) throws -> GenerationRequest {
        let model = try checkModel(body)
        var conversation: [ChatMessage] = []
        let previous = try body.string("previous_response_id")
        if let previous {
            guard let entry = responseStore.entry(previous) else {
                throw APIError(status: 404, kind: .notFound, message: "previous response '\(previous)' is not stored here (unknown, deleted, or evicted from the bounded store)",
                               param: "previous_response_id", code: "previous_response_not_found")
            }
            conversation = entry.conversation
        }
        conversation += try responsesInput(body.object["input"])
        try checkMessageCount(conversation.count)
        let instructions = try body.string("instructions")
        let messages = (instructions.map { [ChatMessage(role: "system", content: $0)] } ?? []) + conversation
        let tools = try parseResponsesTools(body)
        try checkPromptBytes(messages.reduce(0) { $0 + $1.textBytes }, param: "input")
        let prompt = try chatPrompt(messages, tools: tools)
        var options = GenerationOptions()
        options.sampler = try samplerParameters(body, maxTemperature: 2)
        let requested = try body.integer("max_output_tokens", in: 1...10_000_000)
        options.maxTokens = try maxTokens(requested, prompt: prompt.count, param: "max_output_tokens")
        var request = GenerationRequest(prompt: prompt, options: options, model: model)
        request.stream = try body.bool("stream") ?? false
        let format = try responsesTextFormat(body)
        if let schema = format.schema { request.constraint = .json(schema) }
        request.tools = tools
        if let c = try tools?.constraint() { request.constraint = c }
        let metadata = try body.objectValue("metadata")?.object ?? [:]
        var echo: [String: Any] = [
            "tools": body.object["tools"] as? [Any] ?? [Any](), "tool_choice": body.object["tool_choice"] ?? "auto",
            "temperature": try body.number("temperature") ?? 1.0, "top_p": try body.number("top_p") ?? 1.0,
            "max_output_tokens": requested.map { $0 as Any } ?? NSNull(), "text": ["format": format.echo],
            "metadata": metadata, "parallel_tool_calls": try body.bool("parallel_tool_calls") ?? true,
        ]
        if let user = try body.string("user") { echo["user"] = user }
        request.responses = ResponsesContext(id: APIServer.randomID("resp_"), createdAt: Int(Date().timeIntervalSince1970),
                                             conversation: conversation, instructions: instructions, previousResponseID: previous,
                                             store: try body.bool("store") ?? true, echo: echo)
        return request
    }

    /// `input`: a string (one user message) or items: messages (content a string or input_text /
    /// output_text parts), function_call and function_call_output items; reasoning items are skipped.
    func responsesInput(_ value: Any?) throws -> [ChatMessage] {
        switch value {
        case nil, is NSNull:
            throw APIError.invalid("'input' is required", param: "input")
        case let text as String:
            return [ChatMessage(role: "user", content: text)]
        case let items as [Any]:
            guard !items.isEmpty else { throw APIError.invalid("'input' must not be empty", param: "input") }
            try checkMessageCount(items.count)
            var messages: [ChatMessage] = []
            for (i, item) in items.enumerated() {
                guard let o = item as? [String: Any] else { throw APIError.invalid("input[\(i)] must be an object", param: "input") }
                switch o["type"] as? String ?? "message" {
                case "message":
                    guard let role = o["role"] as? String, ["user", "assistant", "system", "developer"].contains(role) else {
                        throw APIError.invalid("input[\(i)].role must be user, assistant, system or developer", param: "input")
                    }
                    messages.append(ChatMessage(role: role == "developer" ? "system" : role,
                                                content: try responsesContent(o["content"], param: "input[\(i)].content")))
                case "function_call":
                    guard let name = o["name"] as? String, let arguments = o["arguments"] as? String else {
                        throw APIError.invalid("input[\(i)]: a function_call needs a name and arguments (a JSON string)", param: "input")
                    }
                    try checkArgumentsNesting(arguments, param: "input[\(i)].arguments")
                    let call = ToolCall(id: o["call_id"] as? String ?? "call_\(i)", name: name, arguments: arguments)
                    // Consecutive calls are one assistant turn.
                    if let last = messages.last, last.role == "assistant", !last.toolCalls.isEmpty {
                        messages[messages.count - 1].toolCalls.append(call)
                    } else {
                        messages.append(ChatMessage(role: "assistant", content: "", toolCalls: [call]))
                    }
                case "function_call_output":
                    let output = try responsesContent(o["output"], param: "input[\(i)].output")
                    messages.append(ChatMessage(role: "tool", content: output, toolCallId: o["call_id"] as? String))
                case "reasoning":
                    continue
                case let type:
                    throw APIError.invalid("input[\(i)] has type '\(type)'; this server accepts message, function_call and function_call_output", param: "input")
                }
            }
            return messages
        default:
            throw APIError.invalid("'input' must be a string or an array of input items", param: "input")
        }
    }

    /// A string, or text parts (input_text, output_text, text, refusal) joined.
    func responsesContent(_ value: Any?, param: String) throws -> String {
        guard let parts = value as? [Any] else { return try contentText(value, param: param) }
        var text = ""
        for (j, part) in parts.enumerated() {
            guard let o = part as? [String: Any], let type = o["type"] as? String else {
                throw APIError.invalid("\(param)[\(j)] must be an object with a type", param: "input")
            }
            switch type {
            case "input_text", "output_text", "text": text += o["text"] as? String ?? ""
            case "refusal": text += o["refusal"] as? String ?? ""
            default: throw APIError.invalid("\(param)[\(j)] has type '\(type)'; this server takes text only", param: "input")
            }
        }
        return text
    }

    /// tools: [{"type": "function", "name", "description", "parameters", "strict"}] (the chat API's nested
    /// form is accepted too); tool_choice: none | auto | required | {"type": "function", "name": ...}.
    func parseResponsesTools(_ body: JSONBody) throws -> ToolsRequest? {
        guard let raw = try body.array("tools"), !raw.isEmpty else {
            if body.has("tool_choice") && (body.object["tool_choice"] as? String) != "none" {
                throw APIError.invalid("'tool_choice' needs 'tools'", param: "tool_choice")
            }
            return nil
        }
        try checkToolCount(raw.count)
        var tools: [ToolDefinition] = []
        for (i, t) in raw.enumerated() {
            guard let o = t as? [String: Any], (o["type"] as? String ?? "function") == "function" else {
                let type = (t as? [String: Any])?["type"] as? String ?? "?"
                throw APIError.invalid("tools[\(i)] has type '\(type)'; this server runs function tools only", param: "tools")
            }
            let f = o["function"] as? [String: Any] ?? o
            guard let name = f["name"] as? String else { throw APIError.invalid("tools[\(i)].name is required", param: "tools") }
            try APIServer.checkToolName(name, param: "tools")
            tools.append(ToolDefinition(name: name, description: f["description"] as? String,
                                        parameters: f["parameters"] ?? ["type": "object", "properties": [String: Any]()]))
        }
        var choice = ToolChoice.auto
        switch body.object["tool_choice"] {
        case nil, is NSNull: break
        case let s as String:
            switch s {
            case "none": choice = .none
            case "auto": choice = .auto
            case "required": choice = .required
            default: throw APIError.invalid("tool_choice must be none, auto, required or {\"type\": \"function\", \"name\": ...}", param: "tool_choice")
            }
        case let o as [String: Any]:
            guard let name = o["name"] as? String ?? (o["function"] as? [String: Any])?["name"] as? String else {
                throw APIError.invalid("tool_choice must be none, auto, required or {\"type\": \"function\", \"name\": ...}", param: "tool_choice")
            }
            guard tools.contains(where: { $0.name == name }) else {
                throw APIError.invalid("tool_choice names '\(name)', which is not in tools", param: "tool_choice")
            }
            choice = .named(name)
        default:
            throw APIError.invalid("tool_choice must be none, auto, required or {\"type\": \"function\", \"name\": ...}", param: "tool_choice")
        }
        return ToolsRequest(tools: tools, choice: choice)
    }

    /// text.format: text (no schema), json_object, or json_schema with its schema at the top level.
    func responsesTextFormat(_ body: JSONBody) throws -> (schema: JSONSchema?, echo: [String: Any]) {
        guard let text = try body.objectValue("text"), let format = try text.objectValue("format") else { return (nil, ["type": "text"]) }
        switch try format.string("type") ?? "text" {
        case "text": return (nil, ["type": "text"])
        case "json_object": return (JSONSchema(anyOf: .object), format.object)
        case "json_schema":
            guard let schema = format.object["schema"] else { return (JSONSchema(anyOf: .object), format.object) }
            do { return (try JSONSchema(schema), format.object) } catch let e as JSONSchemaError {
                throw APIError.invalid("text.format.schema: \(e.message)", param: "text")
            }
        case let type:
            throw APIError.invalid("text.format.type must be text, json_object or json_schema, got '\(type)'", param: "text")
        }
    }

    // MARK: - Answers

    /// The response object (`status` in_progress, completed or incomplete).
    func responseObject(_ request: GenerationRequest, status: String, output: [[String: Any]], finish: EngineFinish?) -> [String: Any] {
        let context = request.responses!
        let instructions: Any = context.instructions ?? NSNull()
        let previous: Any = context.previousResponseID ?? NSNull()
        let usage: Any = finish.map(APIServer.responsesUsage) ?? NSNull()
        let reasoning: [String: Any] = ["effort": NSNull(), "summary": NSNull()]
        var object: [String: Any] = [
            "id": context.id, "object": "response", "created_at": context.createdAt, "status": status, "model": request.model,
            "output": output, "error": NSNull(), "incomplete_details": NSNull(), "instructions": instructions,
            "previous_response_id": previous, "store": context.store, "truncation": "disabled", "reasoning": reasoning, "usage": usage,
        ]
        object.merge(context.echo) { current, _ in current }
        if status == "incomplete" { object["incomplete_details"] = ["reason": "max_output_tokens"] }
        return object
    }

    static func responsesUsage(_ f: EngineFinish) -> [String: Any] {
        let input: [String: Any] = ["cached_tokens": f.cachedPromptTokens]
        let output: [String: Any] = ["reasoning_tokens": 0]
        return ["input_tokens": f.promptTokens, "input_tokens_details": input, "output_tokens": f.completionTokens,
                "output_tokens_details": output, "total_tokens": f.promptTokens + f.completionTokens]
    }

    static func responsesStatus(_ f: EngineFinish) -> String {
        switch f.stopReason {
        case .length, .contextFull: return "incomplete"
        default: return "completed"
        }
    }

    static func messageItem(id: String, text: String, status: String) -> [String: Any] {
        let content: [Any] = status == "in_progress" && text.isEmpty ? [] : [outputTextPart(text)]
        return ["type": "message", "id": id, "status": status, "role": "assistant", "content": content]
    }

    static func outputTextPart(_ text: String) -> [String: Any] {
        ["type": "output_text", "text": text, "annotations": [Any](), "logprobs": [Any]()]
    }

    static func functionCallItem(id: String, callID: String, name: String, arguments: String, status: String) -> [String: Any] {
        ["type": "function_call", "id": id, "call_id": callID, "name": name, "arguments": arguments, "status": status]
    }

    /// Stores the finished exchange when the request asked to.
    func storeResponse(_ request: GenerationRequest, answer: ChatMessage, object: [String: Any]) {
        guard let context = request.responses, context.store else { return }
        responseStore.store(id: context.id, conversation: context.conversation + [answer], response: object)
    }

    /// The whole response for the generated text (a message, or the calls it makes), stored when asked.
    func finishedResponse(_ request: GenerationRequest, text: String, finish: EngineFinish) -> [String: Any] {
        let calls = request.tools.map { APIServer.parseToolCalls(text, tools: $0) } ?? []
        var output: [[String: Any]] = []
        var answer = ChatMessage(role: "assistant", content: "")
        if calls.isEmpty {
            output.append(APIServer.messageItem(id: APIServer.randomID("msg_"), text: text, status: "completed"))
            answer.content = text
        }
        for call in calls {
            output.append(APIServer.functionCallItem(id: APIServer.randomID("fc_"), callID: call.id, name: call.name,
                                                     arguments: call.arguments, status: "completed"))
            answer.toolCalls.append(ToolCall(id: call.id, name: call.name, arguments: call.arguments))
        }
        let object = responseObject(request, status: APIServer.responsesStatus(finish), output: output, finish: finish)
        storeResponse(request, answer: answer, object: object)
        return object
    }

    func respondResponses(_ request: GenerationRequest, _ handle: EngineHandle) -> Response {
        if !request.stream {
            return wholeAnswer(handle, .openAI) { (text: String, _: [TokenLogprob], f: EngineFinish) -> [String: Any] in
                self.finishedResponse(request, text: text, finish: f)
            }
        }
        return streamResponses(request, handle)
    }
}
