// What both APIs ask of the engine, parsed from their request bodies: the prompt (rendered through the
// model's chat template), sampling parameters, limits and streaming options.

import Engine
import Foundation
import Sampling

extension ChatMessage {
    /// Bytes of text the message brings into the prompt.
    var textBytes: Int { content.utf8.count + toolCalls.reduce(0) { $0 + $1.name.utf8.count + $1.arguments.utf8.count } }
}

struct GenerationRequest {
    var prompt: [Int32]
    var options: GenerationOptions
    var stream = false
    var includeUsage = false
    /// nil: no logprobs; else the number of alternatives per token.
    var topLogprobs: Int?
    /// Output constrained to JSON of a schema or to a tool call.
    var constraint: OutputConstraint?
    /// Tools the model may call (their calls are parsed out of the output).
    var tools: ToolsRequest?
    var model: String
    /// The Responses API's own state (id, conversation to store, fields echoed in the response object).
    var responses: ResponsesContext?
}

extension APIServer {
    /// Sampling parameters shared by the APIs (llama.cpp's defaults for what a request leaves out).
    func samplerParameters(_ body: JSONBody, maxTemperature: Double) throws -> SamplerParameters {
        var p = SamplerParameters()
        if let t = try body.number("temperature", in: 0...maxTemperature) { p.temperature = Float(t) }
        if let v = try body.number("top_p", in: 0...1) { p.topP = v == 0 ? Float.leastNonzeroMagnitude : Float(v) }
        if let v = try body.integer("top_k", in: 0...1_000_000) { p.topK = v }
        if let v = try body.number("min_p", in: 0...1) { p.minP = Float(v) }
        if let v = try body.number("presence_penalty", in: -2...2) { p.presencePenalty = Float(v) }
        if let v = try body.number("frequency_penalty", in: -2...2) { p.frequencyPenalty = Float(v) }
        if let v = try body.number("repeat_penalty", in: 0.01...10) { p.repeatPenalty = Float(v) }
        if let v = try body.integer("seed") { p.seed = UInt64(bitPattern: Int64(v)) }
        return p
    }

    /// The model name a request asked for. With `strictModelName` it must be the one served (its name, file
    /// name or the name it was asked by); otherwise any name is answered by the served model.
    func checkModel(_ body: JSONBody) throws -> String {
        guard let requested = try body.string("model") else { return modelID }
        guard modelAliases.contains(requested) || !configuration.strictModelName else {
            throw APIError(status: 404, kind: .notFound,
                           message: "model '\(requested)' is not served here; this server runs '\(modelID)'", param: "model")
        }
        return requested
    }

    /// Limits max tokens to what the context leaves after the prompt; an explicit value that does not fit
    /// is an error saying by how much.
    func maxTokens(_ requested: Int?, prompt: Int, param: String) throws -> Int {
        let context = engine.contextLength
        guard prompt < context else {
            throw APIError.invalid("the prompt has \(prompt) tokens, \(prompt - context + 1) more than the context (\(context)) allows", param: "messages")
        }
        guard let requested else { return min(context - prompt, configuration.limits.defaultMaxTokens) }
        guard prompt + requested <= context else {
            throw APIError.invalid("the prompt (\(prompt) tokens) plus \(param) (\(requested)) is \(prompt + requested - context) tokens more than the context (\(context))", param: param)
        }
        return requested
    }

    func checkMessageCount(_ count: Int) throws {
        let most = configuration.limits.maxMessages
        guard count <= most else { throw APIError.invalid("'messages' may hold at most \(most) messages, got \(count)", param: "messages") }
    }

    func checkToolCount(_ count: Int) throws {
        let most = configuration.limits.maxTools
        guard count <= most else { throw APIError.invalid("'tools' may hold at most \(most) tools, got \(count)", param: "tools") }
    }

    /// Tool call arguments sent as JSON text nest no deeper than any other value of the request.
    func checkArgumentsNesting(_ text: String, param: String) throws {
        let limit = configuration.limits.maxJSONDepth
        // Text that does not parse reaches the template as a plain string.
        guard let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else { return }
        guard APIServer.nestingDepth(value, limit: limit) <= limit else {
            throw APIError.invalid("'\(param)' nests deeper than \(limit) levels", param: "messages")
        }
    }

    /// Text of a message's content: a string, or an array of text parts ({"type": "text", "text": ...}).
    func contentText(_ value: Any?, param: String) throws -> String {
        switch value {
        case nil, is NSNull: return ""
        case let s as String: return s
        case let parts as [Any]:
            var text = ""
            for part in parts {
                guard let o = part as? [String: Any], let type = o["type"] as? String else {
                    throw APIError.invalid("each part of '\(param)' must be an object with a 'type'", param: param)
                }
                guard type == "text", let t = o["text"] as? String else {
                    throw APIError.invalid("'\(param)' has a part of type '\(type)'; this server accepts text parts only", param: param)
                }
                text += t
            }
            return text
        default:
            throw APIError.invalid("'\(param)' must be a string or an array of content parts", param: param)
        }
    }

    /// Renders chat messages through the model's template.
    func chatPrompt(_ messages: [ChatMessage]) throws -> [Int32] {
        do { return try PromptBuilder.chatPrompt(engine.loaded, messages: messages, parseSpecialInContent: configuration.parseSpecialInContent) } catch {
            throw APIError.invalid("the model's chat template failed on these messages: \(error)", param: "messages")
        }
    }
}
