// The HTTP server (Hummingbird 2 over SwiftNIO): routes, API-key check, body limit, error shapes, and
// the bridge from engine events to JSON answers or Server-Sent Events. It sees only the batch engine.
//
//   GET  /                    the chat page (Sources/Server/WebUI/chat.html)
//   GET  /health              {"status": "ok", ...}
//   GET  /metrics             Prometheus text
//   GET  /v1/models           the served model
//   POST /v1/chat/completions OpenAI chat
//   POST /v1/completions      OpenAI text completion
//   POST /v1/messages         Anthropic messages
//   POST /v1/responses        OpenAI Responses (GET / DELETE /v1/responses/{id}: stored ones)
//   POST /tokenize            text → token ids (llama-server's shapes)
//   POST /detokenize          token ids → text

import Engine
import Foundation
import Hummingbird
import Logging

public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Required as "Authorization: Bearer KEY" or "x-api-key: KEY" on /v1/* when set.
    public var apiKey: String?
    /// Largest request body accepted.
    public var maxBodyBytes = 8 << 20
    /// Seconds between keep-alive comments on a stream that has nothing to send (queued, long prefill).
    public var keepAliveSeconds = 5.0
    /// Name the model is served under (also accepted: its GGUF general.name and file name).
    public var modelID: String
    /// Origins whose pages may call the API (CORS); "*" allows every origin. Others get 403.
    public var corsOrigins: [String] = []
    /// Host names accepted besides the bound address and loopback names (checked unless bound to all
    /// interfaces).
    public var allowedHosts: [String] = []
    /// Requests being read, parsed, rendered and tokenized at once; more wait up to admissionWaitSeconds
    /// for a place, then get 503 + Retry-After.
    public var maxAdmissions = max(4, 2 * ProcessInfo.processInfo.activeProcessorCount)
    public var admissionWaitSeconds = 2.0
    /// Seconds a client has to send its whole body.
    public var bodyTimeoutSeconds = 30.0
    /// Seconds between the blanks written ahead of a whole (non-streamed) answer, through which a client
    /// that went away is noticed and its generation stopped.
    public var disconnectCheckSeconds = 1.0
    public var limits = RequestLimits()
    /// Markup typed inside messages becomes control tokens (off: it stays text).
    public var parseSpecialInContent = false
    /// Serve the chat page at / (`--no-webui` turns it off).
    public var webUI = true
    /// Responses kept for `previous_response_id` and GET /v1/responses/{id}: at most this many, and bytes.
    public var storedResponses = 1_024
    public var storedResponseBytes = 64 << 20
    /// A request naming a model other than the served one (or its aliases) gets 404; off: any name is
    /// answered by the served model, as llama-server does (clients often send a placeholder).
    public var strictModelName = false
    public init(modelID: String) { self.modelID = modelID }
}

public final class APIServer: Sendable {
    public let configuration: ServerConfiguration
    public let engine: BatchEngine
    let metrics = ServerMetrics()
    let modelID: String
    let modelAliases: Set<String>
    let fingerprint: String
    let startedAt = Int(Date().timeIntervalSince1970)
    let admissions: AdmissionGate
    let responseStore: ResponseStore
    /// The longest token's bytes: a text of more than context × this bytes cannot fit the context.
    let maxBytesPerToken: Int

    public init(engine: BatchEngine, configuration: ServerConfiguration) {
        self.engine = engine
        self.configuration = configuration
        modelID = configuration.modelID
        let file = URL(fileURLWithPath: engine.loaded.path).lastPathComponent
        modelAliases = [configuration.modelID, engine.loaded.name, file, (file as NSString).deletingPathExtension]
        fingerprint = "dwarfstar-" + String(engine.loaded.fingerprint.prefix(12))
        admissions = AdmissionGate(capacity: configuration.maxAdmissions)
        responseStore = ResponseStore(maxEntries: configuration.storedResponses, maxBytes: configuration.storedResponseBytes)
        let tokenizer = engine.loaded.tokenizer
        maxBytesPerToken = max(1, (0..<tokenizer.vocabularySize).reduce(0) { max($0, tokenizer.tokenPiece(Int32($1)).count) })
        engine.observer = metrics
    }

    /// Serves until the task is cancelled. `onListening` gets the bound port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var logger = Logger(label: "dwarfstar.server")
        logger.logLevel = .warning
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "dwarfstar"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        try await app.runService()
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: BrowserGuard(server: self))   // before the routes: it applies to those added after
        if configuration.webUI {
            // The page itself holds no data: it asks for the key when the API refuses it.
            router.get("/") { _, _ in
                Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                         body: ResponseBody(byteBuffer: ByteBuffer(bytes: PackageResources.chat_html)))
            }
        }
        router.get("health") { _, _ in
            let s = self.engine.snapshot
            if let why = s.unavailable {
                return self.json(["status": "unavailable", "model": self.modelID, "error": EngineError.unavailable(why).description], status: .serviceUnavailable)
            }
            return self.json(["status": "ok", "model": self.modelID, "active": s.active, "queued": s.queued,
                              "kv_pages_free": s.kvPagesFree, "kv_pages_total": s.kvPagesTotal])
        }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.render(self.engine.snapshot))))
        }
        router.get("v1/models") { request, _ in
            try self.guarded(request, .openAI) {
                self.json(["object": "list", "data": [["id": self.modelID, "object": "model", "created": self.startedAt,
                                                        "owned_by": "dwarfstar", "context_length": self.engine.contextLength,
                                                        "aliases": self.modelAliases.sorted()]]])
            }
        }
        router.post("v1/chat/completions") { request, _ in
            await self.generate(request, .openAI) { try self.parseChatCompletion($0) } respond: { self.respondOpenAI(chat: true, $0, $1) }
        }
        router.post("v1/completions") { request, _ in
            await self.generate(request, .openAI) { try self.parseCompletion($0) } respond: { self.respondOpenAI(chat: false, $0, $1) }
        }
        router.post("v1/messages") { request, _ in
            await self.generate(request, .anthropic) { try self.parseMessages($0) } respond: { self.respondAnthropic($0, $1) }
        }
        router.post("v1/responses") { request, _ in
            await self.generate(request, .openAI) { try self.parseResponses($0) } respond: { self.respondResponses($0, $1) }
        }
        router.get("v1/responses/:id") { request, context in
            try self.guarded(request, .openAI) {
                let id = context.parameters.get("id") ?? ""
                guard let entry = self.responseStore.entry(id) else { throw APIError.responseNotFound(id) }
                return self.json(entry.response)
            }
        }
        router.delete("v1/responses/:id") { request, context in
            try self.guarded(request, .openAI) {
                let id = context.parameters.get("id") ?? ""
                guard self.responseStore.remove(id) else { throw APIError.responseNotFound(id) }
                return self.json(["id": id, "object": "response", "deleted": true])
            }
        }
        router.post("tokenize") { request, _ in await self.answer(request, .openAI) { try self.tokenize($0) } }
        router.post("detokenize") { request, _ in await self.answer(request, .openAI) { try self.detokenize($0) } }
        return router
    }

    // MARK: - Plumbing

    func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonData(object))))
    }

    func errorResponse(_ e: APIError, _ api: APIFlavor) -> Response {
        metrics.requestErrors.increment()
        var response = json(e.body(api), status: HTTPResponse.Status(code: e.status))
        if let r = e.retryAfter { response.headers[.init("Retry-After")!] = String(r) }
        return response
    }

    /// Runs `body` after the API-key check, turning APIError into the API's error shape.
    func guarded(_ request: Request, _ api: APIFlavor, _ body: () throws -> Response) throws -> Response {
        do {
            try authorize(request)
            return try body()
        } catch let e as APIError {
            return errorResponse(e, api)
        }
    }

    /// Constant-time comparison of the presented key with the configured one.
    func authorize(_ request: Request) throws {
        guard let key = configuration.apiKey else { return }
        var presented = request.headers[.init("x-api-key")!] ?? ""
        if let auth = request.headers[.authorization], auth.lowercased().hasPrefix("bearer ") { presented = String(auth.dropFirst(7)) }
        let a = Array(presented.utf8), b = Array(key.utf8)
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<b.count { diff |= (i < a.count ? a[i] : 0) ^ b[i] }
        guard diff == 0 else {
            throw APIError(status: 401, kind: .authentication, message: "invalid or missing API key (send Authorization: Bearer KEY or x-api-key: KEY)")
        }
    }

    /// Reads and parses a generation request, submits it and answers with `respond`.
    func generate(_ request: Request, _ api: APIFlavor, parse: (JSONBody) throws -> GenerationRequest,
                  respond: (GenerationRequest, EngineHandle) -> Response) async -> Response {
        metrics.requests.increment()
        do {
            try authorize(request)
            guard await admissions.enter(waitingUpTo: configuration.admissionWaitSeconds) else { throw APIError.busyReading }
            defer { admissions.leave() }
            let parsed = try parse(try await readJSON(request))
            let handle: EngineHandle
            do {
                handle = try engine.submit(EngineRequest(prompt: parsed.prompt, options: parsed.options, topLogprobs: parsed.topLogprobs,
                                                            constraint: parsed.constraint))
            } catch let e as EngineError {
                switch e {
                case .queueFull:
                    throw APIError(status: 503, kind: .overloaded, message: e.description + "; retry later", retryAfter: 1)
                case .unavailable:
                    throw APIError(status: 503, kind: .overloaded, message: e.description)
                default:
                    throw APIError.invalid(e.description)
                }
            }
            return respond(parsed, handle)
        } catch let e as APIError {
            return errorResponse(e, api)
        } catch {
            return errorResponse(APIError(status: 500, kind: .internalError, message: "\(error)"), api)
        }
    }

    /// The request's body as a JSON object (size, time and nesting bounded). Callers hold an admission:
    /// reading, parsing, rendering and tokenizing run a bounded number at once, refused before the body
    /// is read when all places stay taken.
    func readJSON(_ request: Request) async throws -> JSONBody {
        let buffer = try await collectBody(request)
        let body = try JSONBody(Data(buffer.readableBytesView))
        try checkNesting(body)
        return body
    }

    /// A request answered without the engine (tokenize, detokenize): key check, admission, body, `answer`.
    func answer(_ request: Request, _ api: APIFlavor, _ answer: (JSONBody) throws -> Response) async -> Response {
        metrics.requests.increment()
        do {
            try authorize(request)
            guard await admissions.enter(waitingUpTo: configuration.admissionWaitSeconds) else { throw APIError.busyReading }
            defer { admissions.leave() }
            return try answer(try await readJSON(request))
        } catch let e as APIError {
            return errorResponse(e, api)
        } catch {
            return errorResponse(APIError(status: 500, kind: .internalError, message: "\(error)"), api)
        }
    }

    enum StreamItem: Sendable { case event(EngineEvent), keepAlive }

    /// The engine's events merged with keep-alive ticks every `interval` seconds (default: the keep-alive
    /// interval).
    func events(_ handle: EngineHandle, interval: Double? = nil) -> AsyncStream<StreamItem> {
        let interval = interval ?? configuration.keepAliveSeconds
        return AsyncStream { continuation in
            let pump = Task {
                for await e in handle.events { continuation.yield(.event(e)) }
                continuation.finish()
            }
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
                    if !Task.isCancelled { continuation.yield(.keepAlive) }
                }
            }
            continuation.onTermination = { _ in pump.cancel(); ticker.cancel(); handle.cancel() }
        }
    }

    /// A random id with a prefix ("chatcmpl-", "msg_", …).
    static func randomID(_ prefix: String) -> String {
        prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
    }

    /// The whole answer as one JSON body built by `build(text, tokens, finish)`, or the API's error.
    /// While it is generated, a blank goes out every `disconnectCheckSeconds` (JSON allows leading
    /// whitespace): a client that went away makes that write fail, and its generation stops at the next
    /// engine step, as a streamed one does.
    func wholeAnswer(_ handle: EngineHandle, _ api: APIFlavor,
                     build: @escaping @Sendable (String, [TokenLogprob], EngineFinish) -> [String: Any]) -> Response {
        let stream = events(handle, interval: configuration.disconnectCheckSeconds)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody { writer in
            defer { handle.cancel() }
            var text = "", tokens: [TokenLogprob] = [], finish: EngineFinish?, failure: String?
            for await item in stream {
                switch item {
                case .keepAlive: try await writer.write(ByteBuffer(string: " "))
                case .event(.text(let t, let lp)): text += t; tokens += lp
                case .event(.finished(let f)): finish = f
                case .event(.failed(let m)): failure = m
                case .event(.promptProgress): break
                }
                if finish != nil || failure != nil { break }
            }
            let body = finish.map { build(text, tokens, $0) }
                ?? APIError(status: 500, kind: .internalError, message: failure ?? "generation failed").body(api)
            try await writer.write(ByteBuffer(bytes: jsonData(body)))
            try await writer.finish(nil)
        })
    }

    static let sseHeaders: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]

    static func sse(_ object: Any, event: String? = nil) -> ByteBuffer {
        var s = event.map { "event: \($0)\n" } ?? ""
        s += "data: " + String(decoding: jsonData(object), as: UTF8.self) + "\n\n"
        return ByteBuffer(string: s)
    }

    static let keepAliveComment = ByteBuffer(string: ": keep-alive\n\n")

    // MARK: - Answers

    func respondOpenAI(chat: Bool, _ request: GenerationRequest, _ handle: EngineHandle) -> Response {
        let id = APIServer.randomID(chat ? "chatcmpl-" : "cmpl-")
        if !request.stream {
            return wholeAnswer(handle, .openAI) { text, tokens, f in
                self.openAIResponse(chat: chat, id: id, request: request, text: text, tokens: tokens, finish: f)
            }
        }
        let stream = events(handle)
        let callID = APIServer.randomID("call_")
        return Response(status: .ok, headers: APIServer.sseHeaders, body: ResponseBody { writer in
            defer { handle.cancel() }
            var first = true
            if chat {
                try await writer.write(APIServer.sse(self.openAIChunk(chat: true, id: id, request: request, text: "", tokens: [],
                                                                      finishReason: nil, first: true)))
                first = false
            }
            var (streamer, holding) = chat ? request.toolStreaming : (nil, false)
            var held = "", heldTokens: [TokenLogprob] = []
            func content(_ text: String, _ tokens: [TokenLogprob]) -> ByteBuffer {
                defer { first = false }
                return APIServer.sse(self.openAIChunk(chat: chat, id: id, request: request, text: text, tokens: tokens,
                                                      finishReason: nil, first: first))
            }
            for await item in stream {
                switch item {
                case .keepAlive, .event(.promptProgress):
                    try await writer.write(APIServer.keepAliveComment)
                case .event(.text(let text, let tokens)):
                    if var s = streamer {
                        let (name, arguments) = s.push(text)
                        streamer = s
                        if name != nil || !arguments.isEmpty {
                            try await writer.write(APIServer.sse(self.openAIToolChunk(id: id, request: request, index: 0, callID: callID,
                                                                                      name: name, arguments: arguments)))
                        }
                    } else if holding {
                        held += text; heldTokens += tokens
                        if !APIServer.mayBeToolCall(held) {
                            holding = false
                            try await writer.write(content(held, heldTokens))
                        }
                    } else {
                        try await writer.write(content(text, tokens))
                    }
                case .event(.finished(let f)):
                    var reason = APIServer.finishReason(f.stopReason)
                    if var s = streamer {
                        let rest = s.finish()
                        if !rest.isEmpty {
                            try await writer.write(APIServer.sse(self.openAIToolChunk(id: id, request: request, index: 0, callID: nil,
                                                                                      name: nil, arguments: rest)))
                        }
                        if s.name != nil { reason = "tool_calls" }
                    } else if holding, let tools = request.tools {
                        let calls = APIServer.parseToolCalls(held, tools: tools)
                        for (i, c) in calls.enumerated() {
                            try await writer.write(APIServer.sse(self.openAIToolChunk(id: id, request: request, index: i, callID: c.id,
                                                                                      name: c.name, arguments: c.arguments)))
                        }
                        if !calls.isEmpty { reason = "tool_calls" } else if !held.isEmpty { try await writer.write(content(held, heldTokens)) }
                    }
                    var last = self.openAIChunk(chat: chat, id: id, request: request, text: nil, tokens: [], finishReason: reason, first: first)
                    last["timings"] = APIServer.timings(f)
                    try await writer.write(APIServer.sse(last))
                    if request.includeUsage {
                        try await writer.write(APIServer.sse(["id": id, "object": chat ? "chat.completion.chunk" : "text_completion",
                                                              "created": Int(Date().timeIntervalSince1970), "model": request.model,
                                                              "choices": [Any](), "usage": APIServer.usage(f)]))
                    }
                case .event(.failed(let message)):
                    try await writer.write(APIServer.sse(APIError(status: 500, kind: .internalError, message: message).body(.openAI)))
                }
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        })
    }

    func respondAnthropic(_ request: GenerationRequest, _ handle: EngineHandle) -> Response {
        let id = APIServer.randomID("msg_")
        if !request.stream {
            return wholeAnswer(handle, .anthropic) { text, _, f in
                let calls = request.tools.map { APIServer.parseToolCalls(text, tools: $0) } ?? []
                let content: [[String: Any]] = calls.isEmpty ? [["type": "text", "text": text]] : calls.map(APIServer.toolUseBlock)
                return self.anthropicMessage(id: id, request: request, content: content, finish: f, toolUse: !calls.isEmpty)
            }
        }
        let stream = events(handle)
        let toolID = APIServer.randomID("toolu_")
        return Response(status: .ok, headers: APIServer.sseHeaders, body: ResponseBody { writer in
            defer { handle.cancel() }
            try await writer.write(APIServer.sse(["type": "message_start",
                                                  "message": self.anthropicMessage(id: id, request: request, content: [], finish: nil)],
                                                 event: "message_start"))
            try await writer.write(APIServer.sse(["type": "ping"], event: "ping"))
            var (streamer, holding) = request.toolStreaming
            var held = ""
            var blockOpen = false, blocks = 0
            func startText() -> ByteBuffer {
                blockOpen = true; blocks += 1
                return APIServer.sse(["type": "content_block_start", "index": blocks - 1, "content_block": ["type": "text", "text": ""]],
                                     event: "content_block_start")
            }
            func textDelta(_ text: String) -> ByteBuffer {
                APIServer.sse(["type": "content_block_delta", "index": blocks - 1, "delta": ["type": "text_delta", "text": text]],
                              event: "content_block_delta")
            }
            func startTool(_ id: String, _ name: String) -> ByteBuffer {
                blockOpen = true; blocks += 1
                return APIServer.sse(["type": "content_block_start", "index": blocks - 1,
                                      "content_block": ["type": "tool_use", "id": id, "name": name, "input": [String: Any]()]],
                                     event: "content_block_start")
            }
            func jsonDelta(_ json: String) -> ByteBuffer {
                APIServer.sse(["type": "content_block_delta", "index": blocks - 1, "delta": ["type": "input_json_delta", "partial_json": json]],
                              event: "content_block_delta")
            }
            func stopBlock() -> ByteBuffer {
                blockOpen = false
                return APIServer.sse(["type": "content_block_stop", "index": blocks - 1], event: "content_block_stop")
            }
            if streamer == nil && !holding { try await writer.write(startText()) }
            for await item in stream {
                switch item {
                case .keepAlive, .event(.promptProgress):
                    try await writer.write(APIServer.keepAliveComment)
                case .event(.text(let text, _)):
                    if var s = streamer {
                        let (name, arguments) = s.push(text)
                        streamer = s
                        if let name { try await writer.write(startTool(toolID, name)) }
                        if !arguments.isEmpty { try await writer.write(jsonDelta(arguments)) }
                    } else if holding {
                        held += text
                        if !APIServer.mayBeToolCall(held) {
                            holding = false
                            try await writer.write(startText())
                            try await writer.write(textDelta(held))
                        }
                    } else if !text.isEmpty {
                        try await writer.write(textDelta(text))
                    }
                case .event(.finished(let f)):
                    var toolUse = false
                    if var s = streamer {
                        let rest = s.finish()
                        if !rest.isEmpty { try await writer.write(jsonDelta(rest)) }
                        toolUse = s.name != nil
                    } else if holding, let tools = request.tools {
                        let calls = APIServer.parseToolCalls(held, tools: tools)
                        for c in calls {
                            try await writer.write(startTool("toolu_" + c.id.dropFirst(5), c.name))
                            try await writer.write(jsonDelta(c.arguments))
                            try await writer.write(stopBlock())
                        }
                        toolUse = !calls.isEmpty
                        if calls.isEmpty {
                            try await writer.write(startText())
                            if !held.isEmpty { try await writer.write(textDelta(held)) }
                        }
                    }
                    if blockOpen { try await writer.write(stopBlock()) }
                    try await writer.write(APIServer.sse(["type": "message_delta",
                                                          "delta": ["stop_reason": toolUse ? "tool_use" : APIServer.anthropicStopReason(f.stopReason),
                                                                    "stop_sequence": f.stopSequence.map { $0 as Any } ?? NSNull()],
                                                          "usage": ["output_tokens": f.completionTokens]], event: "message_delta"))
                    try await writer.write(APIServer.sse(["type": "message_stop"], event: "message_stop"))
                case .event(.failed(let message)):
                    try await writer.write(APIServer.sse(APIError(status: 500, kind: .internalError, message: message).body(.anthropic),
                                                         event: "error"))
                }
            }
            try await writer.finish(nil)
        })
    }

    static func toolUseBlock(_ c: ParsedToolCall) -> [String: Any] {
        let input = (try? JSONSerialization.jsonObject(with: Data(c.arguments.utf8))) ?? [String: Any]()
        return ["type": "tool_use", "id": "toolu_" + c.id.dropFirst(5), "name": c.name, "input": input]
    }
}
