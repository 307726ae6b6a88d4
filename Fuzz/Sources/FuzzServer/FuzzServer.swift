// Fuzz target: the request decoders of both HTTP APIs (Sources/Server) — POST /v1/chat/completions,
// /v1/completions and /v1/messages bodies through APIServer.decodeForFuzzing (Sources/Server/FuzzEntry.swift),
// which runs what the route handlers run before the engine: JSON, nesting check, the endpoint's parser
// (messages, content parts, tools and tool_choice, sampling parameters, stop strings, response_format
// with its schema, limits), chat template rendering with user markup marked, tokenization, the
// tool-call constraint; then, with tools, the model-output parsers (parseToolCalls, ToolCallStreamer).
//
// Model: the tiny qwen2 fixture (512-token SmolLM2 vocabulary) rewritten at start with a chat template:
// Qwen 2.5's (renders `tools` itself) and SmolLM2's (no tools: they are described in a system message).
//
// Input: the body, optionally followed by a NUL byte and the model output to parse tool calls from.
// Every input goes to the three endpoints on the Qwen 2.5 server and to the two chat endpoints on the
// SmolLM2 one. Checks: the prompt fits the context with max_tokens; markup typed in messages never
// becomes control tokens (each message renders at most one <|im_start|> and one <|im_end|>).

import ChatTemplate
import Engine
import Foundation
import FuzzSupport
import GGUF
import Server

/// The fixture with `tokenizer.chat_template` set to `template` (a file in the ChatTemplate fixtures).
func model(withTemplate template: String) throws -> LoadedModel {
    let source = Fuzz.text(Fuzz.readFile(Fuzz.path("Tests/ChatTemplateTests/Fixtures/templates/\(template).jinja")) ?? [])
    Fuzz.check(!source.isEmpty, "template \(template) not found")
    let g = try GGUFFile(path: Fuzz.path("Tests/ModelsTests/Fixtures/qwen2.f32.gguf"))
    var w = GGUFWriter(alignment: g.alignment)
    for key in g.metadataKeys { w.set(key, g[key]!) }
    w.set("tokenizer.chat_template", .string(source))
    for t in g.tensors {
        try w.addTensor(name: t.name, dims: t.dims, type: t.type, data: Array(UnsafeRawBufferPointer(start: g.data(of: t), count: t.byteCount)))
    }
    let path = Fuzz.scratchPath("\(template).gguf")
    try w.write(to: path)
    defer { unlink(path) }   // the mapping stays valid
    return try LoadedModel(path: path)
}

struct Served {
    let name: String
    let server: APIServer
    let endpoints: [APIServer.FuzzEndpoint]
    let imStart: Int32
    let imEnd: Int32
}

let servers: [Served] = Fuzz.withoutLeakChecks {
    do {
        return try [("qwen2.5", APIServer.FuzzEndpoint.allCases), ("smollm2", [.chatCompletions, .messages])].map { template, endpoints in
            let loaded = try model(withTemplate: template)
            let engine = BatchEngine(loaded, parallel: 1, contextLength: 1024, maxBatch: 64, prefillChunk: 32, threads: 1)
            var configuration = ServerConfiguration(modelID: "tiny")
            configuration.maxAdmissions = 1
            let server = APIServer(engine: engine, configuration: configuration)
            guard let imStart = loaded.tokenizer.tokenId(of: "<|im_start|>"), let imEnd = loaded.tokenizer.tokenId(of: "<|im_end|>") else {
                throw GGUFError(file: template, field: "vocabulary", message: "no <|im_start|> / <|im_end|>")
            }
            return Served(name: template, server: server, endpoints: endpoints, imStart: imStart, imEnd: imEnd)
        }
    } catch {
        Fuzz.check(false, "cannot set up the servers: \(error)")
        return []
    }
}


/// Messages of a chat body and the content blocks inside them: at most this many turns are rendered.
func turnCount(_ body: [UInt8]) -> Int? {
    guard let o = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any], let messages = o["messages"] as? [Any] else { return nil }
    return messages.reduce(0) { n, m in n + 1 + (((m as? [String: Any])?["content"] as? [Any])?.count ?? 0) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let (body, tail) = Fuzz.split(Fuzz.bytes(data, size))
    let output = Fuzz.text(tail ?? [])
    var turns: Int?? = .none
    for served in servers {
        for endpoint in served.endpoints {
            let decoded: APIServer.FuzzDecoded
            do {
                decoded = try served.server.decodeForFuzzing(endpoint, body: body, modelOutput: output)
            } catch {
                _ = String(describing: error)
                continue
            }
            let context = served.server.engine.contextLength
            Fuzz.check(!decoded.prompt.isEmpty || endpoint == .completions, "\(served.name) \(endpoint): empty prompt")
            Fuzz.check(decoded.prompt.count + decoded.maxTokens <= context,
                       "\(served.name) \(endpoint): prompt \(decoded.prompt.count) + max_tokens \(decoded.maxTokens) > context \(context)")
            Fuzz.check(decoded.maxTokens >= 0, "\(served.name) \(endpoint): max_tokens \(decoded.maxTokens)")
            if endpoint == .completions { continue }   // raw completion: markup in the prompt is the caller's
            if turns == nil { turns = .some(turnCount(body)) }
            guard case .some(.some(let n)) = turns else { continue }
            // One turn per message or content block, plus a system turn and the generation prompt.
            let most = n + 2
            let starts = decoded.prompt.filter { $0 == served.imStart }.count, ends = decoded.prompt.filter { $0 == served.imEnd }.count
            Fuzz.check(starts <= most && ends <= most,
                       "\(served.name) \(endpoint): \(starts) <|im_start|> and \(ends) <|im_end|> tokens for \(n) messages and blocks: markup typed in a message became control tokens")
        }
    }
    return 0
}
