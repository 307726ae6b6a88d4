// Entry point for the fuzzing harness (Fuzz/, docs/reliability.md): the request decoders of the APIs,
// run on a raw body exactly as `generate` runs them before a request reaches the engine (JSON, nesting
// check, the endpoint's parser with template rendering and tokenization, the tool-call constraint), and
// the parsers of a model's tool calls. Nothing here is used by the server itself.

import Foundation
import Sampling

extension APIServer {
    /// The POST endpoints whose bodies are decoded.
    public enum FuzzEndpoint: CaseIterable, Sendable {
        case chatCompletions, completions, messages, responses
    }

    /// What a body decoded to, for the harness's checks.
    public struct FuzzDecoded {
        /// Prompt token ids (rendered through the chat template and tokenized).
        public var prompt: [Int32]
        public var maxTokens: Int
        public var stream: Bool
        /// Names of the tools offered (empty: none).
        public var toolNames: [String]
        /// The output constraint the request asks for (response_format or a required / named tool).
        public var constraint: OutputConstraint?
        /// Calls found by `parseToolCalls` in `modelOutput` (0 without tools).
        public var parsedCalls: Int
    }

    /// Decodes `body` as a POST to `endpoint` does. Throws the error the client would get (an API error,
    /// shown through `String(describing:)`). With tools, `modelOutput` is then read as the model's answer:
    /// tool calls parsed out of it and streamed through `ToolCallStreamer`, as the responders do.
    public func decodeForFuzzing(_ endpoint: FuzzEndpoint, body: [UInt8], modelOutput: String = "") throws -> FuzzDecoded {
        let parsedBody = try JSONBody(Data(body))
        try checkNesting(parsedBody)
        let request: GenerationRequest
        switch endpoint {
        case .chatCompletions: request = try parseChatCompletion(parsedBody)
        case .completions: request = try parseCompletion(parsedBody)
        case .messages: request = try parseMessages(parsedBody)
        case .responses: request = try parseResponses(parsedBody)
        }
        var calls = 0
        if let tools = request.tools {
            calls = APIServer.parseToolCalls(modelOutput, tools: tools).count
            var streamer = ToolCallStreamer(tools: tools)
            var piece = ""
            for character in modelOutput {
                piece.append(character)
                if piece.utf8.count >= 3 { _ = streamer.push(piece); piece = "" }
            }
            _ = streamer.push(piece)
            _ = streamer.finish()
        }
        return FuzzDecoded(prompt: request.prompt, maxTokens: request.options.maxTokens, stream: request.stream,
                           toolNames: request.tools?.tools.map(\.name) ?? [], constraint: request.constraint,
                           parsedCalls: calls)
    }
}
